// SPDX-License-Identifier: MIT
/*
 * VM checkpoint files without KVM: migrate's atomic file writer
 * (mig_wfile: commit, abort, a full disk, a writer killed mid-file or
 * before its rename, the temporary file a dead writer left) and the
 * VMM's reader of checkpoint chains (hv/vm_ckpt.c: hv_ckpt_chain and
 * hv_ckpt_feed, as `gpup run --restore` calls them) on files built here:
 * a full file and an increment load exactly, and each way a file can be
 * wrong is refused with its errno and its exact line.  The suites with
 * VMs (hv_vmckpt) skip where /dev/kvm is absent; this one runs anywhere.
 */
#include <criterion/criterion.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
#include <xxhash.h>

#include "hv/hv_int.h"
#include "migrate/mig.h"

#define PG 4096u
#define RAM (2u << 20)
#define MAXF (1u << 20)

static char dir[64];

static void setup(void)
{
	snprintf(dir, sizeof(dir), "/tmp/vmckpt-wb-XXXXXX");
	cr_assert_not_null(mkdtemp(dir));
}

static void teardown(void)
{
	char cmd[128];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	if (system(cmd) != 0)
		fprintf(stderr, "cannot remove %s\n", dir);
}

TestSuite(hv_vmckpt_wb, .init = setup, .fini = teardown, .timeout = 60);

static void path(char *out, const char *name)
{
	snprintf(out, 256, "%s/%s", dir, name);
}

static size_t slurp(const char *name, uint8_t *buf, size_t max)
{
	char p[256];
	FILE *f;
	size_t n;

	path(p, name);
	f = fopen(p, "rb");
	if (!f)
		return 0;
	n = fread(buf, 1, max, f);
	fclose(f);
	return n;
}

static void spill(const char *name, const uint8_t *buf, size_t n)
{
	char p[256];
	FILE *f;

	path(p, name);
	f = fopen(p, "wb");
	cr_assert_not_null(f);
	cr_assert_eq(fwrite(buf, 1, n, f), n);
	fclose(f);
}

static int temps(const char *name)
{
	char pre[128];
	DIR *d = opendir(dir);
	struct dirent *e;
	int n = 0;

	snprintf(pre, sizeof(pre), ".%s.tmp.", name);
	while ((e = readdir(d)))
		n += !strncmp(e->d_name, pre, strlen(pre));
	closedir(d);
	return n;
}

/* ---- mig_wfile ---- */

static uint8_t pattern[3 << 20];

static int write_file(const char *name, size_t len, enum mig_wfile_fault fault, uint64_t at,
		      char *err)
{
	struct mig_wfile *f;
	int rc = mig_wfile_open(dir, name, &f, err, 256);

	if (rc)
		return rc;
	if (fault)
		mig_wfile_fault(f, fault, at);
	/* Pieces of odd sizes, as a VMM's flushes come. */
	for (size_t off = 0; !rc && off < len; off += 77777)
		rc = mig_wfile_write(f, pattern + off, len - off < 77777 ? len - off : 77777, err,
				     256);
	if (rc) {
		mig_wfile_abort(f);
		return rc;
	}
	return mig_wfile_commit(f, err, 256);
}

Test(hv_vmckpt_wb, a_file_is_written_whole_or_not_at_all)
{
	static uint8_t got[sizeof(pattern)];
	char err[256] = "", want[512], p[256];
	struct mig_wfile *f;

	for (size_t i = 0; i < sizeof(pattern); i++)
		pattern[i] = (uint8_t)(i * 131 + (i >> 12));
	cr_assert_eq(write_file("a", sizeof(pattern) - 5, 0, 0, err), 0, "%s", err);
	cr_assert_eq(slurp("a", got, sizeof(got)), sizeof(pattern) - 5);
	cr_assert_eq(memcmp(got, pattern, sizeof(pattern) - 5), 0);

	/* Aborted: no new file, no temporary one. */
	cr_assert_eq(mig_wfile_open(dir, "b", &f, err, sizeof(err)), 0);
	cr_assert_eq(mig_wfile_write(f, pattern, 1000, err, sizeof(err)), 0);
	mig_wfile_abort(f);
	path(p, "b");
	cr_assert_neq(access(p, F_OK), 0);
	cr_assert_eq(temps("b"), 0);

	/* A full disk at 1.5 MiB: the error names the temporary file, a is
	 * the old one, nothing is left. */
	cr_assert_eq(write_file("a", 1000, MIG_WFILE_ENOSPC, 3 << 19, err), 0, "%s", err);
	cr_assert_eq(write_file("a", 2 << 20, MIG_WFILE_ENOSPC, 3 << 19, err), -ENOSPC);
	snprintf(want, sizeof(want), "cannot write %s/.a.tmp.%d: No space left on device", dir,
		 (int)getpid());
	cr_assert_str_eq(err, want);
	cr_assert_eq(slurp("a", got, sizeof(got)), 1000);
	cr_assert_eq(temps("a"), 0);
	cr_assert_eq(mig_wfile_open(dir, "x/y", &f, err, sizeof(err)), -EINVAL);
	cr_assert_str_eq(err, "bad checkpoint name 'x/y'");
}

/* A child writes len bytes of the pattern to name and is killed at the
 * fault: what the parent finds afterwards. */
static void killed_writer(const char *name, size_t len, enum mig_wfile_fault fault, uint64_t at)
{
	char err[256];
	int st;
	pid_t pid = fork();

	if (pid == 0)
		_exit(write_file(name, len, fault, at, err) ? 1 : 0);
	cr_assert_eq(waitpid(pid, &st, 0), pid);
	cr_assert(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL, "the writer was not killed");
}

Test(hv_vmckpt_wb, a_writer_killed_anywhere_leaves_the_old_file)
{
	static const uint64_t at[] = { 0, 1, 4096, (1 << 20) + 17, 2 << 20 };
	static uint8_t got[sizeof(pattern)];
	char err[256] = "";

	for (size_t i = 0; i < sizeof(pattern); i++)
		pattern[i] = (uint8_t)(i * 7);
	cr_assert_eq(write_file("c", 5000, 0, 0, err), 0, "%s", err);
	for (unsigned int i = 0; i < sizeof(at) / sizeof(at[0]); i++) {
		killed_writer("c", 3 << 20, MIG_WFILE_KILL, at[i]);
		cr_assert_eq(slurp("c", got, sizeof(got)), 5000, "killed at %llu",
			     (unsigned long long)at[i]);
		cr_assert_eq(memcmp(got, pattern, 5000), 0);
		cr_assert_eq(temps("c"), 1, "the dead writer's temporary file");
	}
	killed_writer("c", 3 << 20, MIG_WFILE_KILL_RENAME, 0);
	cr_assert_eq(slurp("c", got, sizeof(got)), 5000, "killed before the rename");
	/* The next writer removes what the dead one left. */
	cr_assert_eq(write_file("c", 6000, 0, 0, err), 0, "%s", err);
	cr_assert_eq(slurp("c", got, sizeof(got)), 6000);
	cr_assert_eq(temps("c"), 0);
}

/* ---- checkpoint files ---- */

struct file {
	uint8_t p[MAXF];
	size_t len;
	uint32_t seq;
	uint64_t ident;
	struct gpup_vmmig_end end;
};

static void put(struct file *f, unsigned int kind, const void *h, uint32_t hl, const void *d,
		uint32_t dl)
{
	struct gpup_vmmig_chunk c;
	uint8_t *pl = f->p + f->len + sizeof(c);

	memcpy(pl, h, hl);
	if (dl)
		memcpy(pl + hl, d, dl);
	hv_vms_seal(&c, kind, f->seq++, pl, hl + dl);
	memcpy(f->p + f->len, &c, sizeof(c));
	f->ident = XXH3_64bits_withSeed(&c, sizeof(c), f->ident);
	f->len += sizeof(c) + hl + dl;
	f->end.chunks = f->seq;
	f->end.bytes = f->len - sizeof(struct gpup_vmckpt_head);
}

/* A checkpoint of a 2 MiB VM without partitions: page `page` filled with
 * `fill` (0: a zero run), incremental on base_ident when not 0. */
static void build(struct file *f, const char *base, uint64_t base_ident, uint64_t page,
		  uint8_t fill)
{
	struct gpup_vmckpt_head h = { .magic = GPUP_VMCKPT_MAGIC, .version = GPUP_VMCKPT_VERSION };
	struct gpup_vmmig_header vh = { GPUP_VMMIG_MAGIC, GPUP_VMMIG_VERSION, PG, RAM, 1, 0, 0,
					0, { 0 } };
	struct kvm_regs regs = { .rip = 0x1000 };
	struct kvm_sregs sregs = { .cr0 = 1 };
	static uint8_t data[PG], recs[4096];
	struct gpup_vmmig_cpu c = { 0, 0 };
	uint32_t off = 0;

	memset(f, 0, sizeof(*f));
	if (base) {
		h.flags = GPUP_VMCKPT_F_INCREMENTAL;
		h.base_ident = base_ident;
		strcpy(h.base, base);
	}
	h.head_hash = XXH3_64bits(&h, offsetof(struct gpup_vmckpt_head, head_hash));
	memcpy(f->p, &h, sizeof(h));
	f->len = sizeof(h);
	f->ident = XXH3_64bits(&h, sizeof(h));
	put(f, GPUP_VMMIG_HEADER, &vh, sizeof(vh), NULL, 0);
	if (fill) {
		struct gpup_vmmig_pages pg = { 0, 1, page * PG };

		memset(data, fill, PG);
		f->end.pages = 1;
		put(f, GPUP_VMMIG_PAGES, &pg, sizeof(pg), data, PG);
	} else {
		struct gpup_vmmig_zero z = { 0, 0, page * PG, 1 };

		f->end.zero_pages = 1;
		put(f, GPUP_VMMIG_ZERO, &z, sizeof(z), NULL, 0);
	}
	hv_rec_put(recs, sizeof(recs), &off, GPUP_VMMIG_T_REGS, &regs, sizeof(regs));
	hv_rec_put(recs, sizeof(recs), &off, GPUP_VMMIG_T_SREGS, &sregs, sizeof(sregs));
	put(f, GPUP_VMMIG_CPU, &c, sizeof(c), recs, off);
	put(f, GPUP_VMMIG_VMSTATE, "", 0, NULL, 0);
	struct gpup_vmmig_end e = f->end;

	put(f, GPUP_VMMIG_END, &e, sizeof(e), NULL, 0);
	struct gpup_vmckpt_tail t = { GPUP_VMCKPT_TAIL_MAGIC,
				      f->len - sizeof(struct gpup_vmckpt_head), f->ident, 0 };

	t.tail_hash = XXH3_64bits(&t, offsetof(struct gpup_vmckpt_tail, tail_hash));
	memcpy(f->p + f->len, &t, sizeof(t));
	f->len += sizeof(t);
}

static uint8_t ram[RAM];
static unsigned int cpus;

static int s_pages(void *o, uint32_t sp, uint64_t off, const uint8_t *d, uint32_t n)
{
	(void)o;
	cr_assert_eq(sp, 0);
	memcpy(ram + off, d, (size_t)n * PG);
	return 0;
}

static int s_zero(void *o, uint32_t sp, uint64_t off, uint64_t n)
{
	(void)o;
	cr_assert_eq(sp, 0);
	memset(ram + off, 0, n * PG);
	return 0;
}

static int s_cpu(void *o, uint32_t index, const uint8_t *recs, uint32_t len)
{
	(void)o, (void)index, (void)recs, (void)len;
	cpus++;
	return 0;
}

static const struct hv_vms_ops ops = { .pages = s_pages, .zero = s_zero, .cpu = s_cpu };

/* The restore's reading of name: 0 or -errno, the line in err. */
static int restore(const char *name, char *err, size_t len, unsigned int *files)
{
	static struct hv_ckpt_file chain[GPUP_VMCKPT_MAX_CHAIN];
	struct hv_vms_reader r;
	char top[256];
	unsigned int n = 0;
	int rc;

	path(top, name);
	memset(ram, 0, sizeof(ram));
	cpus = 0;
	err[0] = 0;
	rc = hv_ckpt_chain(top, chain, &n, err, len);
	for (unsigned int i = 0; rc == 0 && i < n; i++) {
		hv_vms_reader_init(&r, &ops, NULL);
		rc = hv_ckpt_feed(&chain[i], &r, err, len);
		hv_vms_reader_free(&r);
	}
	hv_ckpt_close(chain, n);
	if (files)
		*files = n;
	return rc;
}

static struct file fa, fb, fc, fx;

/* a.ckpt (page 3 = 0x11, page 5 zero), b.ckpt on it (page 5 = 0x22),
 * c.ckpt on b (page 3 zero again). */
static void chain3(void)
{
	build(&fa, NULL, 0, 3, 0x11);
	spill("a.ckpt", fa.p, fa.len);
	build(&fb, "a.ckpt", fa.ident, 5, 0x22);
	spill("b.ckpt", fb.p, fb.len);
	build(&fc, "b.ckpt", fb.ident, 3, 0);
	spill("c.ckpt", fc.p, fc.len);
}

Test(hv_vmckpt_wb, a_chain_loads_oldest_first)
{
	char err[1024];
	unsigned int n;

	chain3();
	cr_assert_eq(restore("b.ckpt", err, sizeof(err), &n), 0, "%s", err);
	cr_assert_eq(n, 2);
	cr_assert(ram[3 * PG] == 0x11 && ram[4 * PG - 1] == 0x11 && ram[5 * PG] == 0x22);
	cr_assert_eq(cpus, 2, "every file's vCPUs reach the consumer here (the VMM skips "
		     "the older files')");
	cr_assert_eq(restore("c.ckpt", err, sizeof(err), &n), 0, "%s", err);
	cr_assert_eq(n, 3);
	cr_assert(ram[3 * PG] == 0 && ram[5 * PG] == 0x22);
}

/* The restore of name is refused with errno rc and "DIR/name: what". */
static void refused(const char *name, int rc, const char *what)
{
	char err[1024], want[1024];

	snprintf(want, sizeof(want), "%s/%s: %s", dir, name, what);
	cr_assert_eq(restore(name, err, sizeof(err), NULL), rc, "%s", err);
	cr_assert_str_eq(err, want);
}

Test(hv_vmckpt_wb, each_wrong_file_is_refused_with_its_line)
{
	char what[512];
	struct file *t = &fx;

	chain3();
	/* Cut: inside the head, after it, inside a chunk, without the tail. */
	spill("x", fa.p, 100);
	refused("x", -EBADMSG, "not a gpup VM checkpoint (100 bytes, shorter than a file head)");
	for (size_t cut = 256; cut < fa.len; cut += 1000) {
		spill("x", fa.p, cut);
		snprintf(what, sizeof(what), "truncated: no valid tail at byte %zu (the write did "
			 "not finish)", cut - 32);
		refused("x", -ENODATA, what);
	}
	/* A byte of the head, of the HEADER chunk's head, of the PAGES payload,
	 * of the tail. */
	memcpy(t, &fa, sizeof(*t));
	t->p[0] ^= 1;
	spill("x", t->p, t->len);
	refused("x", -EBADMSG, "not a gpup VM checkpoint (bad magic)");
	t->p[0] ^= 1;
	t->p[30] ^= 1;
	spill("x", t->p, t->len);
	refused("x", -EBADMSG, "file head checksum mismatch");
	t->p[30] ^= 1;
	t->p[256 + 12] ^= 1;
	spill("x", t->p, t->len);
	refused("x", -EBADMSG, "stream refused: chunk 0 (HEADER) at byte 256: chunk head "
		"checksum mismatch");
	t->p[256 + 12] ^= 1;
	t->p[256 + 32 + 104 + 32 + 16 + 9] ^= 1;
	spill("x", t->p, t->len);
	refused("x", -EBADMSG, "stream refused: chunk 1 (PAGES) at byte 392: payload checksum "
		"mismatch");
	t->p[256 + 32 + 104 + 32 + 16 + 9] ^= 1;
	t->p[t->len - 20] ^= 1;
	spill("x", t->p, t->len);
	snprintf(what, sizeof(what), "truncated: no valid tail at byte %zu (the write did not "
		 "finish)", t->len - 32);
	refused("x", -ENODATA, what);
	/* A tail whose identity is not the chunks' (resealed). */
	t->p[t->len - 20] ^= 1;
	t->p[t->len - 16] ^= 1;
	{
		struct gpup_vmckpt_tail tl;

		memcpy(&tl, t->p + t->len - 32, 32);
		tl.tail_hash = XXH3_64bits(&tl, 24);
		memcpy(t->p + t->len - 32, &tl, 32);
	}
	spill("x", t->p, t->len);
	refused("x", -EBADMSG, "its chunks do not make the identity its tail names");

	/* Chains: the base gone, another file in its place, a file its own
	 * base. */
	cr_assert_eq(rename(strcat(strcpy(what, dir), "/a.ckpt"),
			    strcat(strcpy(what + 256, dir), "/a.old")), 0);
	snprintf(what, sizeof(what), "its base %s/a.ckpt is missing", dir);
	refused("b.ckpt", -ENOENT, what);
	spill("a.ckpt", fc.p, fc.len);
	snprintf(what, sizeof(what), "its base %s/a.ckpt is not the checkpoint it was taken on "
		 "(identity %016llx, it names %016llx)", dir, (unsigned long long)fc.ident,
		 (unsigned long long)fa.ident);
	refused("b.ckpt", -ESTALE, what);
	build(t, "loop.ckpt", 1, 3, 0x33);
	spill("loop.ckpt", t->p, t->len);
	snprintf(what, sizeof(what), "its base %s/loop.ckpt is not the checkpoint it was taken "
		 "on (identity %016llx, it names 0000000000000001)", dir,
		 (unsigned long long)t->ident);
	refused("loop.ckpt", -ESTALE, what);
}
