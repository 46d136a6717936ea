// SPDX-License-Identifier: MIT
/*
 * The dirty sample guest under `gpup run` on a daemon's partition: it
 * rewrites guest RAM and VRAM at a set rate (CPU stores, BAR2 stores,
 * FILL, COPY, RENDER) and checks every byte and fence after each epoch.
 * Here: it passes on its own, with no device at all, through a
 * checkpoint of its partition, a paused VM and a paused daemon, and
 * through `gpup move` between GPUs and across generations; and its
 * checks fail when they should: a VRAM byte changed behind its back
 * (written into the partition's VRAM file from outside) is named by
 * offset, and an older checkpoint restored under it does not go
 * unnoticed.  Skips with one line where /dev/kvm is absent.
 */
#include <criterion/criterion.h>
#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "tests/daemonlib.h"
#include "tests/testlib.h"

#define TYPE "sim-64m-16"
/* Where the corruption test strikes: inside the guest's VRAM working
 * set, which starts at offset 0 (it is the partition's only user). */
#define POKE_OFF 0x5123

static struct dl_daemon dmn;

static void need_kvm(void)
{
	if (access("/dev/kvm", R_OK | W_OK) != 0)
		cr_skip_test("no usable /dev/kvm here: the VMM tests need KVM");
	cr_assert(getenv("GPUP_BIN") && getenv("GPUP_GUESTS"),
		  "run through make test: GPUP_BIN and GPUP_GUESTS unset");
}

static void setup(void)
{
	/* gpu0 and gpu1 are gen2 (every kernel), gpu2 a gen1 (no RENDER) */
	static const char *const args[] = { "--sim-gpus", "2:gen2,1:gen1", "--vram", "1G", NULL };

	if (access("/dev/kvm", R_OK | W_OK) != 0 || !getenv("GPUP_BIN"))
		return; /* each test skips with its reason */
	cr_assert_eq(dl_start(&dmn, &(struct dl_opts){ .name = "hv-dirty", .args = args }), 0,
		     "the daemon did not start");
}

static void teardown(void)
{
	cr_assert_eq(dl_teardown(&dmn), 0);
}

TestSuite(hv_dirty, .init = setup, .fini = teardown, .timeout = 60);

/* `gpup run` of the dirty guest with append, on sock (NULL: no device). */
static void boot(struct tl_proc *p, const char *sock, const char *append)
{
	char kernel[512];
	char *argv[] = { "gpup", "run", "--kernel", kernel, "--append", (char *)append,
			 sock ? "--gpu" : NULL, (char *)sock, NULL };

	snprintf(kernel, sizeof(kernel), "%s/dirty.elf", getenv("GPUP_GUESTS"));
	tl_proc_start(p, argv);
}

/* Without reaping it: tl_proc_finish() does that. */
static bool running(const struct tl_proc *p)
{
	siginfo_t si = { .si_pid = 0 };

	return waitid(P_PID, (id_t)p->pid, &si, WEXITED | WNOHANG | WNOWAIT) == 0 && !si.si_pid;
}

/* A new partition on gpu0, with more create options: its socket path
 * into sock. */
static void create(char *sock, size_t len, const char *more)
{
	char args[256], out[256];

	snprintf(args, sizeof(args), "create --gpu gpu0 --type " TYPE " %s", more);
	cr_assert_eq(tl_gpup(dmn.dir, out, sizeof(out), args), 0, "create: %s", out);
	cr_assert_eq(strlen(out), 37, "%s", out);
	out[36] = 0;
	snprintf(sock, len, "%s/%s.sock", dmn.run_dir, out);
}

static const char *uuid_of(const char *sock)
{
	static char u[37];

	snprintf(u, sizeof(u), "%s", strrchr(sock, '/') + 1);
	return u;
}

static void mig(const char *cmd, const char *sock, const char *file)
{
	char args[512], out[1024];

	snprintf(args, sizeof(args), "%s --partition %s --%s %s/%s", cmd, uuid_of(sock),
		 strcmp(cmd, "checkpoint") ? "from" : "to", dmn.dir, file);
	cr_assert_eq(tl_gpup(dmn.dir, out, sizeof(out), args), 0, "%s: %s", cmd, out);
}

static void move(const char *sock, const char *gpu)
{
	char args[256], out[1024];

	snprintf(args, sizeof(args), "move %s --to-gpu %s", uuid_of(sock), gpu);
	cr_assert_eq(tl_gpup(dmn.dir, out, sizeof(out), args), 0, "move to %s: %s", gpu, out);
}

/* Moves while it works, hops apart, ending where hops[n - 1] says. */
static void moved_while_working(const char *create_opts, const char *const *hops,
				bool render)
{
	struct tl_proc p;
	char sock[200];

	create(sock, sizeof(sock), create_opts);
	boot(&p, sock, "ram=8 vram=8 rate=32 ms=2500 epoch=100 timeout=10");
	usleep(500000);
	for (; *hops; hops++) {
		move(sock, *hops);
		usleep(400000);
	}
	tl_proc_finish(&p);
	cr_assert_eq(p.code, 0, "out: %s err: %s", p.out_buf, p.err_buf);
	cr_assert_eq(!strstr(p.out_buf, "no RENDER kernel here: FILL instead"), render, "%s",
		     p.out_buf);
	cr_assert(strstr(p.out_buf, "dirty: ok: "), "%s", p.out_buf);
	cr_assert_str_eq(p.err_buf, "", "the VMM saw nothing of the moves");
}

Test(hv_dirty, every_byte_survives_moves_between_gpus)
{
	static const char *const hops[] = { "gpu1", "gpu0", "gpu1", NULL };

	need_kvm();
	moved_while_working("", hops, true);
}

/* Masked to gen1 (no RENDER, so the guest FILLs instead), the partition
 * moves onto a gen1 GPU and back to gen2 ones. */
Test(hv_dirty, every_byte_survives_moves_across_generations)
{
	static const char *const hops[] = { "gpu2", "gpu1", "gpu2", NULL };

	need_kvm();
	moved_while_working("--compat gen1", hops, false);
}

Test(hv_dirty, ram_only_without_a_device)
{
	struct tl_proc p;

	need_kvm();
	boot(&p, NULL, "vram=0 ram=4 rate=32 epochs=5 epoch=100");
	tl_proc_finish(&p);
	cr_assert_eq(p.code, 0, "out: %s err: %s", p.out_buf, p.err_buf);
	cr_assert(strstr(p.out_buf, "dirty: ok: 5 epochs in "), "%s", p.out_buf);
	cr_assert(strstr(p.out_buf, "verified 20 MiB and 0 fences"), "%s", p.out_buf);
}

/* The device stopped for a checkpoint's last copy, the whole VM stopped,
 * the daemon stopped: fences come late, every byte still checks out. */
Test(hv_dirty, every_byte_survives_a_checkpoint_and_pauses)
{
	struct tl_proc p;
	char sock[200];

	need_kvm();
	create(sock, sizeof(sock), "");
	boot(&p, sock, "ram=8 vram=8 rate=32 ms=3000 epoch=100 timeout=10");
	usleep(700000);
	mig("checkpoint", sock, "ck");
	usleep(300000);
	kill(p.pid, SIGSTOP);
	usleep(300000);
	kill(p.pid, SIGCONT);
	usleep(300000);
	kill(dmn.pid, SIGSTOP);
	usleep(500000);
	kill(dmn.pid, SIGCONT);
	tl_proc_finish(&p);
	cr_assert_eq(p.code, 0, "out: %s err: %s", p.out_buf, p.err_buf);
	cr_assert(strstr(p.out_buf, "dirty: ok: "), "%s", p.out_buf);
	cr_assert(strstr(p.out_buf, "MiB of RAM and ") && strstr(p.out_buf, " fences, longest"),
		  "%s", p.out_buf);
	cr_assert_str_eq(p.err_buf, "", "the VMM saw nothing wrong");
}

/* The daemon's descriptor of the partition's VRAM file, opened anew. */
static int open_vram(void)
{
	char dir[64], path[400], link[256];
	struct dirent *de;
	struct stat st;
	DIR *d;
	int fd = -1;
	ssize_t n;

	snprintf(dir, sizeof(dir), "/proc/%d/fd", (int)dmn.pid);
	d = opendir(dir);
	cr_assert_not_null(d, "%s", dir);
	while (fd < 0 && (de = readdir(d)) != NULL) {
		snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
		n = readlink(path, link, sizeof(link) - 1);
		link[n > 0 ? n : 0] = 0;
		if (strstr(link, "memfd:gpup-vram-"))
			fd = open(path, O_RDWR);
	}
	closedir(d);
	cr_assert_geq(fd, 0, "no VRAM file among the daemon's descriptors");
	/* the partition's own file, so that an offset in it is one in VRAM */
	cr_assert_eq(fstat(fd, &st), 0);
	cr_assert_eq(st.st_size, 64 << 20, "the VRAM file is not the partition's alone");
	return fd;
}

/* One byte of VRAM changed behind the guest's back, again whenever it
 * may have rewritten it since: the guest must name that very offset. */
Test(hv_dirty, a_vram_byte_changed_behind_its_back_is_named)
{
	struct tl_proc p;
	char sock[200];
	uint8_t b;
	int fd;

	need_kvm();
	create(sock, sizeof(sock), "");
	boot(&p, sock, "ram=4 vram=4 rate=16 ms=8000 epoch=100");
	fd = open_vram();
	usleep(500000);
	/* A second flip of a byte the guest left alone would undo the
	 * first: strike again only after several epochs went by unnoticed. */
	for (int i = 0; i < 6 && running(&p); i++) {
		cr_assert_eq(pread(fd, &b, 1, POKE_OFF), 1);
		b ^= 0xa5;
		cr_assert_eq(pwrite(fd, &b, 1, POKE_OFF), 1);
		for (int t = 0; t < 20 && running(&p); t++)
			usleep(50000);
	}
	close(fd);
	tl_proc_finish(&p);
	cr_assert_eq(p.code, 4, "out: %s err: %s", p.out_buf, p.err_buf);
	cr_assert(strstr(p.out_buf, ": VRAM offset 0x5123 (BAR2 address 0x"), "%s", p.out_buf);
	cr_assert(strstr(p.out_buf, "expected 0x") && strstr(p.out_buf, "block written by "),
		  "%s", p.out_buf);
}

/* The partition rolled back to what it was a second earlier: its VRAM
 * and queues no longer match what the guest did since, and the guest
 * says so instead of finishing. */
Test(hv_dirty, an_older_checkpoint_restored_under_it_is_caught)
{
	struct tl_proc p;
	char sock[200];

	need_kvm();
	create(sock, sizeof(sock), "");
	boot(&p, sock, "ram=4 vram=4 rate=16 ms=6000 epoch=100 timeout=5");
	usleep(600000);
	mig("checkpoint", sock, "old");
	usleep(1000000);
	mig("restore", sock, "old");
	tl_proc_finish(&p);
	cr_assert(p.code == 4 || p.code == 5, "out: %s err: %s", p.out_buf, p.err_buf);
	cr_assert(strstr(p.out_buf, "\ndirty: epoch "), "%s", p.out_buf);
	cr_assert_null(strstr(p.out_buf, "dirty: ok"), "%s", p.out_buf);
}
