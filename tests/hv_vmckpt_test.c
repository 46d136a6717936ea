// SPDX-License-Identifier: MIT
/*
 * VM checkpoints: `gpup checkpoint VM --to FILE [--incremental BASE]` of a
 * running dirty guest, the VM killed, and `gpup run --restore FILE` on a
 * fresh partition of the same type, where the guest finishes with every
 * byte of RAM and VRAM and every fence checked.  Then what must be
 * refused, with its exact line and exit status (a cut file, a flipped
 * byte in a payload, a chunk head or the file head, a missing or foreign
 * base), and what a crash leaves: a checkpoint write killed at several
 * points (and a full disk) leaves the previous chain restorable.  Skips
 * with one line where /dev/kvm is absent.
 */
#include <criterion/criterion.h>
#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <xxhash.h>

#include "tests/daemonlib.h"
#include "tests/testlib.h"
#include "uapi/gpup_vmmig.h"

#define OUT_MAX 16384

static struct dl_daemon dd;

struct vm {
	pid_t pid;
	char out[256], err[256];
	int code;
	char out_buf[OUT_MAX], err_buf[OUT_MAX];
};

static void need_kvm(void)
{
	if (access("/dev/kvm", R_OK | W_OK) != 0)
		cr_skip_test("no usable /dev/kvm here: the VMM tests need KVM");
}

static void setup(void)
{
	static const char *const args[] = { "--sim-gpus", "1", "--vram", "1G", NULL };

	if (access("/dev/kvm", R_OK | W_OK) != 0)
		return;
	cr_assert(getenv("GPUP_BIN") && getenv("GPUP_GUESTS"),
		  "run through make test: GPUP_BIN and GPUP_GUESTS unset");
	cr_assert_eq(dl_start(&dd, &(struct dl_opts){ .name = "vmckpt", .args = args }), 0);
}

static void teardown(void)
{
	dl_teardown(&dd);
}

TestSuite(hv_vmckpt, .init = setup, .fini = teardown, .timeout = 120);

static void create(char *uuid)
{
	char out[256];

	cr_assert_eq(tl_gpup(dd.dir, out, sizeof(out), "create --gpu gpu0 --type sim-64m-16"), 0,
		     "create: %s", out);
	memcpy(uuid, out, 36);
	uuid[36] = 0;
}

/* `gpup --run-dir D/run run ARGS...`, stdout and stderr in files, with
 * GPUP_TEST_CKPT_FAULT=fault when fault is not NULL. */
static void spawn(struct vm *p, const char *tag, const char *fault, char *const *args)
{
	char *argv[24], rd[128];
	int n = 0;

	snprintf(p->out, sizeof(p->out), "%s/%s.out", dd.dir, tag);
	snprintf(p->err, sizeof(p->err), "%s/%s.err", dd.dir, tag);
	snprintf(rd, sizeof(rd), "%s/run", dd.dir);
	argv[n++] = "gpup";
	argv[n++] = "--run-dir";
	argv[n++] = rd;
	argv[n++] = "run";
	while (*args && n < 23)
		argv[n++] = *args++;
	argv[n] = NULL;
	p->pid = fork();
	cr_assert_neq(p->pid, -1);
	if (p->pid == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		int o = open(p->out, O_WRONLY | O_CREAT | O_TRUNC, 0600);
		int e = open(p->err, O_WRONLY | O_CREAT | O_TRUNC, 0600);

		dup2(o, 1);
		dup2(e, 2);
		if (fault)
			setenv("GPUP_TEST_CKPT_FAULT", fault, 1);
		execv(getenv("GPUP_BIN"), argv);
		_exit(127);
	}
}

static void finish(struct vm *p)
{
	int st;

	cr_assert_eq(waitpid(p->pid, &st, 0), p->pid);
	p->code = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
	tl_slurp(p->out, p->out_buf, OUT_MAX);
	tl_slurp(p->err, p->err_buf, OUT_MAX);
}

static void kill_vm(struct vm *p)
{
	kill(p->pid, SIGKILL);
	finish(p);
	cr_assert_eq(p->code, 128 + SIGKILL, "%s", p->err_buf);
}

static void ctl_path(char *sock, size_t len)
{
	snprintf(sock, len, "%s/run/vms/vm.sock", dd.dir);
}

/* What a killed VM left is not a VM. */
static void unlink_ctl(void)
{
	char sock[256];

	ctl_path(sock, sizeof(sock));
	unlink(sock);
}

static void wait_ctl(void)
{
	char sock[256];

	ctl_path(sock, sizeof(sock));
	for (int i = 0; i < 300 && access(sock, F_OK); i++)
		usleep(10000);
	cr_assert_eq(access(sock, F_OK), 0, "the VM's control socket never came");
}

/* The dirty guest on a fresh partition, named "vm". */
static void boot(struct vm *p, const char *append)
{
	char kernel[512], uuid[40];
	char *args[] = { "--kernel", kernel, "--gpu", uuid, "--name", "vm", "--append",
			 (char *)append, NULL };

	create(uuid);
	snprintf(kernel, sizeof(kernel), "%s/dirty.elf", getenv("GPUP_GUESTS"));
	unlink_ctl();
	spawn(p, "boot", NULL, args);
	wait_ctl();
}

static void path_of(char *out, size_t len, const char *name)
{
	snprintf(out, len, "%s/%s", dd.dir, name);
}

/* `gpup run --restore DIR/name` on a fresh partition, named "vm" when
 * named (then back once its control socket is there). */
static void restore(struct vm *p, const char *name, const char *fault, bool named)
{
	char file[256], uuid[40], tag[64];
	char *args[] = { "--restore", file, "--gpu", uuid, named ? "--name" : NULL, "vm", NULL };

	create(uuid);
	path_of(file, sizeof(file), name);
	snprintf(tag, sizeof(tag), "restore-%s", name);
	for (char *c = tag; *c; c++)
		*c = *c == '/' ? '_' : *c;
	if (named)
		unlink_ctl();
	spawn(p, tag, fault, args);
	if (named)
		wait_ctl();
}

/* `gpup checkpoint vm --to DIR/name [--incremental DIR/base] [--json]`. */
static int checkpoint_as(const char *name, const char *base, bool json, char *out,
			 size_t len)
{
	char args[1024], f[256], b[256];

	path_of(f, sizeof(f), name);
	path_of(b, sizeof(b), base ? base : "");
	snprintf(args, sizeof(args), "checkpoint vm --to %s%s%s%s", f,
		 base ? " --incremental " : "", base ? b : "", json ? " --json" : "");
	return tl_gpup(dd.dir, out, len, args);
}

static int checkpoint(const char *name, const char *base, char *out, size_t len)
{
	return checkpoint_as(name, base, true, out, len);
}

static long long json_num(const char *json, const char *key)
{
	char k[64];
	const char *p;

	snprintf(k, sizeof(k), "\"%s\": ", key);
	p = strstr(json, k);
	cr_assert(p, "no %s in %s", key, json);
	return atoll(p + strlen(k));
}

static void check_ok(const struct vm *p, const char *who)
{
	cr_assert_eq(p->code, 0, "%s: out: %s err: %s", who, p->out_buf, p->err_buf);
	cr_assert(strstr(p->out_buf, "dirty: ok: "), "%s: %s", who, p->out_buf);
}

Test(hv_vmckpt, a_checkpointed_dirty_guest_is_restored_and_checks_out)
{
	struct vm s, d;
	char out[4096];

	need_kvm();
	boot(&s, "ram=8 vram=8 rate=32 ms=3000 epoch=100");
	usleep(700000);
	cr_assert_eq(checkpoint("c1.ckpt", NULL, out, sizeof(out)), 0, "%s", out);
	cr_assert(strstr(out, "\"ident\"") && strstr(out, "\"incremental\": false"), "%s", out);
	cr_assert(json_num(out, "device_bytes") > (4ll << 20), "the partition's VRAM: %s", out);
	kill_vm(&s);
	cr_assert(strstr(s.err_buf, "checkpoint written to "), "%s", s.err_buf);
	cr_assert_null(strstr(s.out_buf, "dirty: ok"), "%s", s.out_buf);
	restore(&d, "c1.ckpt", NULL, false);
	finish(&d);
	check_ok(&d, "the restored VM");
	cr_assert(strstr(d.err_buf, "c1.ckpt (1 file, "), "%s", d.err_buf);
}

/* Full, incremental, then incremental on the restored VM: three files,
 * restored as one chain. */
Test(hv_vmckpt, an_incremental_chain_is_restored_and_checks_out)
{
	struct vm s, d, e;
	char out[4096], out2[4096], want[512];

	need_kvm();
	/* The working set is written at 16 MiB/s: whole after a second, and
	 * less than a third of it rewritten between c1 and c2. */
	boot(&s, "ram=16 vram=8 rate=16 ms=5000 epoch=100");
	usleep(1500000);
	cr_assert_eq(checkpoint("c1.ckpt", NULL, out, sizeof(out)), 0, "%s", out);
	usleep(300000);
	cr_assert_eq(checkpoint("c2.ckpt", "c1.ckpt", out2, sizeof(out2)), 0, "%s", out2);
	cr_assert(strstr(out2, "\"incremental\": true"), "%s", out2);
	/* c1 is no longer the VM's last checkpoint. */
	cr_assert_eq(checkpoint_as("c9.ckpt", "c1.ckpt", false, out, sizeof(out)), 1, "%s", out);
	snprintf(want, sizeof(want), "gpup checkpoint: %s/c1.ckpt is not this VM's last "
		 "checkpoint (written or restored): take a full one\n", dd.dir);
	cr_assert_str_eq(out, want);
	/* A full one now holds every page with data; the increment held
	 * only those written since c1. */
	cr_assert_eq(checkpoint("full.ckpt", NULL, out, sizeof(out)), 0, "%s", out);
	cr_assert_lt(json_num(out2, "ram_pages"), json_num(out, "ram_pages") / 2,
		     "only what changed: %s\n%s", out2, out);
	kill_vm(&s);

	restore(&d, "c2.ckpt", NULL, true);
	usleep(300000);
	cr_assert_eq(checkpoint("c3.ckpt", "c2.ckpt", out, sizeof(out)), 0, "%s", out);
	kill_vm(&d);
	cr_assert(strstr(d.err_buf, "c2.ckpt (2 files, "), "%s", d.err_buf);
	restore(&e, "c3.ckpt", NULL, false);
	finish(&e);
	check_ok(&e, "the VM restored from three files");
	cr_assert(strstr(e.err_buf, "c3.ckpt (3 files, "), "%s", e.err_buf);
}

/* ---- refusals ---- */

static void copy_file(const char *from, const char *to, off_t len)
{
	char a[256], b[256], buf[65536];
	int i, o;
	ssize_t n;

	path_of(a, sizeof(a), from);
	path_of(b, sizeof(b), to);
	i = open(a, O_RDONLY);
	o = open(b, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	cr_assert(i >= 0 && o >= 0);
	while (len && (n = read(i, buf, (size_t)(len < (off_t)sizeof(buf) ? len : (off_t)sizeof(buf)))) > 0) {
		cr_assert_eq(write(o, buf, (size_t)n), n);
		len -= n;
	}
	close(i);
	close(o);
}

static void flip(const char *name, off_t at)
{
	char p[256];
	uint8_t b;
	int fd;

	path_of(p, sizeof(p), name);
	fd = open(p, O_RDWR);
	cr_assert(fd >= 0);
	cr_assert_eq(pread(fd, &b, 1, at), 1);
	b ^= 0x5a;
	cr_assert_eq(pwrite(fd, &b, 1, at), 1);
	close(fd);
}

/* The first chunk of kind in name: its sequence number and file offset. */
static void find_chunk(const char *name, unsigned int kind, uint32_t *seq, off_t *at)
{
	struct gpup_vmmig_chunk h;
	char p[256];
	off_t off = sizeof(struct gpup_vmckpt_head);
	int fd;

	path_of(p, sizeof(p), name);
	fd = open(p, O_RDONLY);
	cr_assert(fd >= 0);
	while (pread(fd, &h, sizeof(h), off) == sizeof(h)) {
		if (h.kind == kind) {
			*seq = h.seq;
			*at = off;
			close(fd);
			return;
		}
		off += (off_t)sizeof(h) + h.len;
	}
	cr_assert_fail("no chunk of kind %u in %s", kind, name);
}

static off_t file_size(const char *name)
{
	char p[256];
	struct stat st;

	path_of(p, sizeof(p), name);
	cr_assert_eq(stat(p, &st), 0, "%s", p);
	return st.st_size;
}

/* The restore of name is refused: exit 127, and stderr is exactly
 * "gpup run: restore refused: DIR/name: " followed by what. */
static void refused(const char *name, const char *what)
{
	char want[1024], file[256];
	struct vm r;

	path_of(file, sizeof(file), name);
	restore(&r, name, NULL, false);
	finish(&r);
	snprintf(want, sizeof(want), "gpup run: restore refused: %s: %s\n", file, what);
	cr_assert_eq(r.code, 127, "%s: %s", name, r.err_buf);
	cr_assert_str_eq(r.err_buf, want);
	cr_assert_str_eq(r.out_buf, "");
}

Test(hv_vmckpt, cut_or_corrupt_files_and_broken_chains_are_refused_with_one_line)
{
	char out[4096], what[512], dir[256], base[256];
	struct vm s;
	uint32_t seq;
	off_t at, size;

	need_kvm();
	boot(&s, "ram=8 vram=8 rate=16 ms=3000 epoch=100");
	usleep(500000);
	cr_assert_eq(checkpoint("c1.ckpt", NULL, out, sizeof(out)), 0, "%s", out);
	cr_assert_eq(checkpoint("c2.ckpt", "c1.ckpt", out, sizeof(out)), 0, "%s", out);
	cr_assert_eq(checkpoint("other.ckpt", NULL, out, sizeof(out)), 0, "%s", out);
	kill_vm(&s);
	size = file_size("c1.ckpt");

	copy_file("c1.ckpt", "pay.ckpt", size);
	find_chunk("pay.ckpt", GPUP_VMMIG_PAGES, &seq, &at);
	flip("pay.ckpt", at + 32 + 16 + 100);
	snprintf(what, sizeof(what), "stream refused: chunk %u (PAGES) at byte %lld: payload "
		 "checksum mismatch", seq, (long long)at);
	refused("pay.ckpt", what);

	copy_file("c1.ckpt", "head.ckpt", size);
	find_chunk("head.ckpt", GPUP_VMMIG_DEV, &seq, &at);
	flip("head.ckpt", at + 8);
	snprintf(what, sizeof(what), "stream refused: chunk %u (DEV) at byte %lld: chunk head "
		 "checksum mismatch", seq, (long long)at);
	refused("head.ckpt", what);

	copy_file("c1.ckpt", "fhead.ckpt", size);
	flip("fhead.ckpt", 20);
	refused("fhead.ckpt", "file head checksum mismatch");

	copy_file("c1.ckpt", "tiny.ckpt", 100);
	refused("tiny.ckpt", "not a gpup VM checkpoint (100 bytes, shorter than a file head)");
	for (off_t cut = 256; cut < size; cut += size / 3) {
		copy_file("c1.ckpt", "cut.ckpt", cut);
		snprintf(what, sizeof(what), "truncated: no valid tail at byte %lld (the write did "
			 "not finish)", (long long)(cut - 32));
		refused("cut.ckpt", what);
	}
	copy_file("c1.ckpt", "cut.ckpt", size - 1);
	snprintf(what, sizeof(what), "truncated: no valid tail at byte %lld (the write did not "
		 "finish)", (long long)(size - 33));
	refused("cut.ckpt", what);

	/* The increment alone, then with a base of another checkpoint. */
	path_of(dir, sizeof(dir), "alone");
	cr_assert_eq(mkdir(dir, 0700), 0);
	copy_file("c2.ckpt", "alone/c2.ckpt", file_size("c2.ckpt"));
	path_of(base, sizeof(base), "alone/c1.ckpt");
	snprintf(what, sizeof(what), "its base %s is missing", base);
	refused("alone/c2.ckpt", what);
	copy_file("other.ckpt", "alone/c1.ckpt", file_size("other.ckpt"));
	{
		char want[1024], file[256];
		struct vm r;

		path_of(file, sizeof(file), "alone/c2.ckpt");
		restore(&r, "alone/c2.ckpt", NULL, false);
		finish(&r);
		snprintf(want, sizeof(want), "gpup run: restore refused: %s: its base %s is not "
			 "the checkpoint it was taken on (identity ", file, base);
		cr_assert_eq(r.code, 127, "%s", r.err_buf);
		cr_assert_eq(strncmp(r.err_buf, want, strlen(want)), 0, "%s", r.err_buf);
		cr_assert_eq(strchr(r.err_buf, '\n') - r.err_buf + 1, (long)strlen(r.err_buf),
			     "one line: %s", r.err_buf);
	}
	/* A command line without the VM's partition. */
	{
		char file[256], want[512];
		char *args[] = { "--restore", file, NULL };
		struct vm r;

		path_of(file, sizeof(file), "c1.ckpt");
		spawn(&r, "nogpu", NULL, args);
		finish(&r);
		snprintf(want, sizeof(want), "gpup run: restore refused: %s: the VM has 1 GPU "
			 "partitions, this command line gives 0 (--gpu)\n", file);
		cr_assert_eq(r.code, 127, "%s", r.err_buf);
		cr_assert_str_eq(r.err_buf, want);
	}
	/* The intact files still restore. */
	restore(&s, "c2.ckpt", NULL, false);
	finish(&s);
	check_ok(&s, "the intact chain");
}

/* ---- crashes ---- */

static uint64_t file_hash(const char *name)
{
	char p[256];
	off_t size = file_size(name);
	uint8_t *buf = malloc((size_t)size);
	int fd;
	uint64_t h;

	path_of(p, sizeof(p), name);
	fd = open(p, O_RDONLY);
	cr_assert(fd >= 0 && buf);
	cr_assert_eq(read(fd, buf, (size_t)size), size);
	close(fd);
	h = XXH3_64bits(buf, (size_t)size);
	free(buf);
	return h;
}

/* Temporary files of name left in the directory. */
static int temps(const char *name)
{
	char pre[128];
	DIR *d = opendir(dd.dir);
	struct dirent *e;
	int n = 0;

	snprintf(pre, sizeof(pre), ".%s.tmp.", name);
	cr_assert(d);
	while ((e = readdir(d)))
		n += !strncmp(e->d_name, pre, strlen(pre));
	closedir(d);
	return n;
}

/* A VM restored from c1 whose writer kills itself at fault while it
 * writes `to` (incremental on c1, or a full one over c1 itself). */
static void killed_while_writing(const char *fault, const char *to, const char *base)
{
	char out[4096], p[256];
	struct vm v;

	restore(&v, "c1.ckpt", fault, true);
	cr_assert_eq(checkpoint_as(to, base, false, out, sizeof(out)), 1, "%s: %s", fault, out);
	cr_assert(strstr(out, "the VM went away before the checkpoint ended"), "%s: %s", fault,
		  out);
	finish(&v);
	cr_assert_eq(v.code, 128 + SIGKILL, "%s: %s", fault, v.err_buf);
	path_of(p, sizeof(p), "c2.ckpt");
	cr_assert(access(p, F_OK) != 0, "%s: c2.ckpt must not exist", fault);
}

Test(hv_vmckpt, a_checkpoint_killed_at_any_point_leaves_the_last_chain_restorable)
{
	/* Increments (small: as much as the guest changed) killed in the
	 * head, in HEADER and after the fsync before the rename; full ones
	 * (at least c1's ~14 MiB) in the first PAGES and further on. */
	/* Increments (small: as much as the guest changed) killed in the
	 * head, in HEADER and after the fsync before the rename; full ones
	 * (at least as big as c1: the restored guest only adds data) at a
	 * fiftieth, half and nine tenths of c1's size. */
	static const struct { const char *fault, *base; long part; } faults[] = {
		{ "kill@0", "c1.ckpt", 0 }, { "kill@200", "c1.ckpt", 0 },
		{ "kill@", NULL, 50 },      { "kill@", NULL, 2 },
		{ "kill@", NULL, -10 },     { "kill@rename", "c1.ckpt", 0 },
	};
	char out[4096], fault[64];
	uint64_t c1_hash;
	off_t size;
	struct vm s;

	need_kvm();
	boot(&s, "ram=8 vram=8 rate=16 ms=3000 epoch=100");
	usleep(500000);
	cr_assert_eq(checkpoint("c1.ckpt", NULL, out, sizeof(out)), 0, "%s", out);
	kill_vm(&s);
	size = file_size("c1.ckpt");
	c1_hash = file_hash("c1.ckpt");
	for (unsigned int i = 0; i < sizeof(faults) / sizeof(faults[0]); i++) {
		long p = faults[i].part;

		snprintf(fault, sizeof(fault), "%s", faults[i].fault);
		if (p)
			snprintf(fault, sizeof(fault), "kill@%lld", (long long)(p > 0 ? size / p :
										size * 9 / 10));
		killed_while_writing(fault, "c2.ckpt", faults[i].base);
	}
	/* Each save removes what the dead writers before it left. */
	cr_assert_eq(temps("c2.ckpt"), 1, "the last dead writer's temporary file");
	/* Over c1 itself: c1 stays the old one. */
	snprintf(fault, sizeof(fault), "kill@%lld", (long long)(size / 3));
	killed_while_writing(fault, "c1.ckpt", NULL);
	cr_assert_eq(file_hash("c1.ckpt"), c1_hash, "c1 changed");

	/* A full disk: the checkpoint fails, the VM runs on, nothing is left. */
	snprintf(fault, sizeof(fault), "enospc@%lld", (long long)(size / 2));
	restore(&s, "c1.ckpt", fault, true);
	cr_assert_eq(checkpoint_as("c2.ckpt", NULL, false, out, sizeof(out)), 1, "%s", out);
	cr_assert(strstr(out, "gpup checkpoint: cannot write ") &&
		  strstr(out, "/.c2.ckpt.tmp.") && strstr(out, ": No space left on device\n"),
		  "%s", out);
	cr_assert_eq(temps("c2.ckpt"), 0, "the failed write and the dead ones are gone");
	finish(&s);
	check_ok(&s, "the VM after a failed checkpoint");
	cr_assert(strstr(s.err_buf, "failed, the VM runs on here"), "%s", s.err_buf);

	restore(&s, "c1.ckpt", NULL, false);
	finish(&s);
	check_ok(&s, "c1 after all the crashes");
}
