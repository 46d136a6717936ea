// SPDX-License-Identifier: MIT
/*
 * End to end: a real daemon with a sim GPU, partitions created through the
 * CLI, and guests booted by `gpup run` that use them through vfio-user,
 * KVM ioeventfds and irqfds.  The infer, vdi and hostile sample guests
 * check their own results bit for bit; here we check their exit statuses
 * and output, a hostile guest beside an honest one on the same GPU, and a
 * partition that disappears under a running guest.  Skips with one line
 * where /dev/kvm is absent.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "hv/hv.h"
#include "tests/daemonlib.h"
#include "tests/testlib.h"

static struct dl_daemon dmn;

static void need_kvm(void)
{
	if (access("/dev/kvm", R_OK | W_OK) != 0)
		cr_skip_test("no usable /dev/kvm here: the VMM tests need KVM");
	cr_assert(getenv("GPUP_BIN") && getenv("GPUP_GUESTS"),
		  "run through make test: GPUP_BIN and GPUP_GUESTS unset");
}

static const char *guest(const char *name)
{
	static char path[4][512];
	static int next;
	char *p = path[next++ % 4];

	snprintf(p, 512, "%s/%s.elf", getenv("GPUP_GUESTS"), name);
	return p;
}

/* `gpup --run-dir RUN create --gpu gpu0 --type TYPE`: the UUID. */
static void create(const char *type, char *uuid)
{
	char *argv[] = { "gpup", "--run-dir", dmn.run_dir, "create", "--gpu", "gpu0",
			 "--type", (char *)type, NULL };
	struct tl_proc p;

	tl_proc_start(&p, argv);
	tl_proc_finish(&p);
	cr_assert_eq(p.code, 0, "create: %s", p.err_buf);
	cr_assert_eq(strlen(p.out_buf), 37, "%s", p.out_buf);
	memcpy(uuid, p.out_buf, 36);
	uuid[36] = 0;
}

static char *sock_of(const char *uuid)
{
	static char path[2][200];
	static int next;
	char *p = path[next++ % 2];

	snprintf(p, 200, "%s/%s.sock", dmn.run_dir, uuid);
	return p;
}

/* One sim GPU of 8 GiB: room for the 4 GiB partition infer runs on. */
static void setup(void)
{
	static const char *const args[] = { "--sim-gpus", "1", "--vram", "8G", NULL };

	if (access("/dev/kvm", R_OK | W_OK) != 0 || !getenv("GPUP_BIN"))
		return; /* each test skips with its reason */
	cr_assert_eq(dl_start(&dmn, &(struct dl_opts){ .name = "hv-gpu", .args = args }), 0,
		     "the daemon did not start");
}

static void teardown(void)
{
	cr_assert_eq(dl_teardown(&dmn), 0);
}

TestSuite(hv_gpu, .init = setup, .fini = teardown, .timeout = 120);

static void boot(struct tl_proc *p, const char *image, const char *sock,
		 const char *append)
{
	char *argv[] = { "gpup", "run", "--kernel", (char *)guest(image), "--gpu",
			 (char *)sock, "--append", (char *)append, NULL };

	tl_proc_start(p, argv);
}

Test(hv_gpu, infer_is_bit_exact)
{
	struct tl_proc p;
	char u[40];

	need_kvm();
	/* 4 GiB: BAR2 sizing must not lose the upper half of the mask. */
	create("sim-4g-2", u);
	boot(&p, "infer", sock_of(u), "n=16 iters=2");
	tl_proc_finish(&p);
	cr_assert_eq(p.code, 0, "out: %s err: %s", p.out_buf, p.err_buf);
	cr_assert(strstr(p.out_buf, "infer: n=16 iters=2 ok, sum -0.531,"), "%s", p.out_buf);
	cr_assert_str_eq(p.err_buf, "");
}

/* Also: --gpu by UUID, found in the run directory given to gpup. */
Test(hv_gpu, vdi_renders_frames)
{
	struct tl_proc p;
	char u[40];
	char *argv[] = { "gpup", "--run-dir", dmn.run_dir, "run", "--kernel",
			 (char *)guest("vdi"), "--gpu", u, "--append",
			 "w=64 h=48 frames=10 fps=100", NULL };

	need_kvm();
	create("sim-1g-8", u);
	tl_proc_start(&p, argv);
	tl_proc_finish(&p);
	cr_assert_eq(p.code, 0, "out: %s err: %s", p.out_buf, p.err_buf);
	cr_assert(strstr(p.out_buf, "vdi: 64x48, 10 frames at 100 fps"), "%s", p.out_buf);
}

Test(hv_gpu, hostile_beside_honest)
{
	struct tl_proc bad, good;
	char a[40], b[40];
	char *argv[] = { "gpup", "run", "--kernel", (char *)guest("hostile"), "--gpu",
			 NULL, "--append", "storm=5000", "--stats", NULL };
	unsigned long long all, io, mmio;
	const char *line;

	need_kvm();
	create("sim-2g-4", a);
	create("sim-2g-4", b);
	argv[5] = sock_of(a);
	tl_proc_start(&bad, argv);
	boot(&good, "infer", sock_of(b), "n=64 iters=6");
	tl_proc_finish(&good);
	tl_proc_finish(&bad);
	cr_assert_eq(bad.code, 0, "hostile: %s %s", bad.out_buf, bad.err_buf);
	cr_assert(strstr(bad.out_buf, "hostile: 0 check(s) failed"), "%s", bad.out_buf);
	cr_assert_eq(good.code, 0, "honest: %s %s", good.out_buf, good.err_buf);
	cr_assert(strstr(good.out_buf, "n=64 iters=6 ok, sum -4.125,"), "%s", good.out_buf);
	cr_assert_str_eq(good.err_buf, "", "the honest VM saw nothing of it");
	/* The VMM said one line for each BAR it would not decode, and no more:
	 * decoding off and on, MSI-X entries off the APICs, masks, odd widths
	 * and unclaimed addresses are quietly handled. */
	cr_assert(strstr(bad.err_buf, "gpup run: PCI 00:01.0 BAR0 at 0x") &&
		  strstr(bad.err_buf, " overlaps guest RAM; not decoded until moved\n"),
		  "%s", bad.err_buf);
	cr_assert(strstr(bad.err_buf, "gpup run: PCI 00:01.0 BAR2 at 0x80000000 overlaps the "
				      "interrupt controllers; not decoded until moved\n"),
		  "%s", bad.err_buf);
	line = strstr(bad.err_buf, "gpup run: stats: ");
	cr_assert_not_null(line, "%s", bad.err_buf);
	cr_assert_eq(strchr(strchr(bad.err_buf, '\n') + 1, '\n') + 1, line,
		     "two lines, then the stats: %s", bad.err_buf);
	cr_assert_eq(strchr(line, '\n'), bad.err_buf + strlen(bad.err_buf) - 1);
	/* 5000 doorbells rung after BAR0 moved and decoding went off and on:
	 * had their ioeventfds not come back, each would be an MMIO exit. */
	cr_assert_eq(sscanf(line, "gpup run: stats: %llu userspace exits (%llu port I/O, "
				  "%llu MMIO)", &all, &io, &mmio), 3, "%s", line);
	cr_assert_lt(mmio, 2500, "doorbells trapped: %llu MMIO exits", mmio);
}

/* Doorbells (KVM ioeventfds) and completions (irqfds) must not reach the
 * VMM: the latency guest rings 1200+ doorbells and takes 600+ interrupts,
 * while only its 2 x 300 deliberately trapped writes (and setup) may exit. */
Test(hv_gpu, doorbells_and_interrupts_bypass_the_vmm)
{
	struct tl_proc p;
	char u[40], *argv[] = { "gpup", "run", "--kernel", (char *)guest("latency"),
				"--gpu", NULL, "--append", "n=300", "--stats", NULL };
	unsigned long long all, io, mmio;
	const char *line;

	need_kvm();
	create("sim-512m-16", u);
	argv[5] = sock_of(u);
	tl_proc_start(&p, argv);
	tl_proc_finish(&p);
	cr_assert_eq(p.code, 0, "out: %s err: %s", p.out_buf, p.err_buf);
	line = strstr(p.err_buf, "stats: ");
	cr_assert_not_null(line, "%s", p.err_buf);
	cr_assert_eq(sscanf(line, "stats: %llu userspace exits (%llu port I/O, %llu MMIO)",
			    &all, &io, &mmio), 3, "%s", line);
	cr_assert_geq(mmio, 600, "the trapped writes trap");
	cr_assert_lt(mmio, 900, "doorbells trapped: %llu MMIO exits", mmio);
}

enum loss { LOSS_DESTROY, LOSS_KILL, LOSS_STALL };

static void lose_device(enum loss how, const char *line)
{
	struct tl_proc p;
	char u[40], *argv[] = { "gpup", "--run-dir", dmn.run_dir, "destroy", "--force", u, NULL };
	struct tl_proc d;

	create("sim-512m-16", u);
	boot(&p, "infer", sock_of(u), "n=4 iters=1000000");
	usleep(700000);
	if (how == LOSS_DESTROY) {
		tl_proc_start(&d, argv);
		tl_proc_finish(&d);
		cr_assert_eq(d.code, 0, "destroy: %s", d.err_buf);
	} else {
		/* A stopped daemon neither answers nor hangs up. */
		kill(dmn.pid, how == LOSS_KILL ? SIGKILL : SIGSTOP);
	}
	tl_proc_finish(&p);
	if (how != LOSS_DESTROY) {
		kill(dmn.pid, SIGKILL);
		dl_stop(&dmn);
	}
	/* The guest saw the device fail (its status 5), the VMM said so once. */
	cr_assert_eq(p.code, 5, "out: %s err: %s", p.out_buf, p.err_buf);
	cr_assert(strstr(p.out_buf, "infer: device error -3"), "%s", p.out_buf);
	cr_assert(strstr(p.err_buf, line), "%s", p.err_buf);
	cr_assert_eq(strchr(p.err_buf, '\n'), p.err_buf + strlen(p.err_buf) - 1,
		     "one line: %s", p.err_buf);
}

#define CLOSED "the daemon closed the connection; its registers now read as all-ones\n"

Test(hv_gpu, partition_destroyed_under_a_running_guest)
{
	need_kvm();
	lose_device(LOSS_DESTROY, CLOSED);
}

Test(hv_gpu, daemon_killed_under_a_running_guest)
{
	need_kvm();
	lose_device(LOSS_KILL, CLOSED);
}

/* A daemon that stops answering must not hold a vCPU for ever: after the
 * VMM's timeout the device is lost, as if the daemon had gone. */
Test(hv_gpu, daemon_stalled_under_a_running_guest)
{
	need_kvm();
	lose_device(LOSS_STALL, "the daemon did not answer a register access within "
				"3 s; its registers now read as all-ones\n");
}

Test(hv_gpu, attach_failures_are_clear)
{
	struct tl_proc p;
	char path[160];
	FILE *f;

	need_kvm();
	boot(&p, "hello", "/nonexistent/partition.sock", "");
	tl_proc_finish(&p);
	cr_assert_eq(p.code, HV_EXIT_GPU);
	cr_assert(strstr(p.err_buf, "cannot attach GPU partition /nonexistent/partition.sock"),
		  "%s", p.err_buf);
	/* A socket path that is a plain file. */
	snprintf(path, sizeof(path), "%s/not-a-socket", dmn.dir);
	f = fopen(path, "w");
	fclose(f);
	boot(&p, "hello", path, "");
	tl_proc_finish(&p);
	cr_assert_eq(p.code, HV_EXIT_GPU);
	cr_assert_str_eq(p.out_buf, "", "the guest never ran");
}

/* A socket that takes the connection but never answers (a wedged
 * daemon): the attach gives up after the timeout, with one line. */
Test(hv_gpu, attach_to_a_silent_socket_times_out)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd = socket(AF_UNIX, SOCK_STREAM, 0);
	struct tl_proc p;

	need_kvm();
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s/silent.sock", dmn.dir);
	cr_assert_eq(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	cr_assert_eq(listen(fd, 1), 0);
	boot(&p, "hello", sa.sun_path, "");
	tl_proc_finish(&p);
	close(fd);
	cr_assert_eq(p.code, HV_EXIT_GPU, "%s", p.err_buf);
	cr_assert(strstr(p.err_buf, "silent.sock: Connection timed out"), "%s", p.err_buf);
	cr_assert_eq(strchr(p.err_buf, '\n'), p.err_buf + strlen(p.err_buf) - 1,
		     "one line: %s", p.err_buf);
	cr_assert_str_eq(p.out_buf, "", "the guest never ran");
}

static int ctl_request(const char *path, const char *req, char *reply, size_t len)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd = socket(AF_UNIX, SOCK_STREAM, 0);
	ssize_t n;

	strcpy(sa.sun_path, path);
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		close(fd);
		return -errno;
	}
	cr_assert_eq(write(fd, req, strlen(req)), (ssize_t)strlen(req));
	n = read(fd, reply, len - 1);
	close(fd);
	reply[n > 0 ? n : 0] = 0;
	return 0;
}

/* Two partitions in one VM: two functions, BARs assigned without overlap
 * (BAR0 back to back below 4 GiB, BAR2 size-aligned from 64 GiB). */
Test(hv_gpu, control_socket_lists_two_partitions)
{
	struct tl_proc p;
	char u1[40], u2[40], ctl[128], reply[4096];
	struct stat st;

	need_kvm();
	create("sim-512m-16", u1);
	create("sim-1g-8", u2);
	snprintf(ctl, sizeof(ctl), "%s/vm.sock", dmn.dir);
	{
		char *argv[] = { "gpup", "run", "--kernel", (char *)guest("hello"), "--gpu",
				 sock_of(u1), "--gpu", sock_of(u2), "--append", "spin",
				 "--ctl", ctl, NULL };

		tl_proc_start(&p, argv);
	}
	for (int i = 0; i < 500 && stat(ctl, &st) != 0; i++)
		usleep(10000);
	cr_assert_eq(ctl_request(ctl, "{\"cmd\":\"status\"}\n", reply, sizeof(reply)), 0);
	cr_assert(strstr(reply, u1) && strstr(reply, u2), "%s", reply);
	cr_assert(strstr(reply, "\"vram_bytes\":536870912,\"bar0\":3221225472,"
			       "\"bar2\":68719476736,\"msix_vectors\":9"), "%s", reply);
	cr_assert(strstr(reply, "\"vram_bytes\":1073741824,\"bar0\":3221241856,"
			       "\"bar2\":69793218560,\"msix_vectors\":9"), "%s", reply);
	cr_assert_eq(ctl_request(ctl, "{\"cmd\":\"stop\"}\n", reply, sizeof(reply)), 0);
	tl_proc_finish(&p);
	cr_assert_eq(p.code, HV_EXIT_STOPPED, "%s", p.err_buf);
}
