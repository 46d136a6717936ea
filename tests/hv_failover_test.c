// SPDX-License-Identifier: MIT
/*
 * The dirty sample guest under `gpup run` on a protected partition whose
 * GPU fails (docs/MIGRATION.md, "Failover"): the partition is recovered
 * on the other GPU from its last checkpoint link while the VM runs, the
 * guest is told (STATUS.RECOVERED), checks every block the checkpoint
 * must hold exactly, writes the rest again, resubmits its fences and
 * finishes with every byte of RAM and VRAM and every fence verified, at
 * protection intervals of 100 ms and 1 s, for a lost and for a hung GPU.
 * `gpup stats` reports RPO and RTO.  Unprotected, the same guest finds
 * its device lost and says so.  Skips with one line where /dev/kvm is
 * absent.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tests/daemonlib.h"
#include "tests/testlib.h"

#define TYPE "sim-64m-8"

static struct dl_daemon dmn;

static bool have_kvm(void)
{
	return access("/dev/kvm", R_OK | W_OK) == 0 && getenv("GPUP_BIN") && getenv("GPUP_GUESTS");
}

static void setup(void)
{
	static const char *const args[] = { "--sim-gpus", "2", "--vram", "512M", NULL };

	if (!have_kvm())
		return;
	cr_assert_eq(dl_start(&dmn, &(struct dl_opts){ .name = "hv-failover", .args = args,
						       .log = true }), 0,
		     "the daemon did not start");
}

static void teardown(void)
{
	cr_assert_eq(dl_teardown(&dmn), 0);
}

TestSuite(hv_failover, .init = setup, .fini = teardown, .timeout = 90);

/* `gpup run` of the dirty guest with append, on sock. */
static void boot(struct tl_proc *p, const char *sock, const char *append)
{
	char kernel[512];
	char *argv[] = { "gpup", "run", "--kernel", kernel, "--append", (char *)append, "--gpu",
			 (char *)sock, NULL };

	snprintf(kernel, sizeof(kernel), "%s/dirty.elf", getenv("GPUP_GUESTS"));
	tl_proc_start(p, argv);
}

static void gpup(char *out, size_t len, const char *fmt, const char *a)
{
	char args[256];

	snprintf(args, sizeof(args), fmt, a);
	cr_assert_eq(tl_gpup(dmn.dir, out, len, args), 0, "%s: %s", args, out);
}

/* A partition on gpu0, protected every `every` ms unless NULL. */
static void create(char *uuid, char *sock, size_t len, const char *every)
{
	char out[256], args[128];

	gpup(out, sizeof(out), "create --gpu gpu0 --type " TYPE "%s", "");
	memcpy(uuid, out, 36);
	uuid[36] = 0;
	snprintf(sock, len, "%s/%s.sock", dmn.run_dir, uuid);
	if (!every)
		return;
	snprintf(args, sizeof(args), "protect %s --every %s", uuid, every);
	cr_assert_eq(tl_gpup(dmn.dir, out, sizeof(out), args), 0, "%s", out);
}

static void survives(const char *every, const char *kind)
{
	char uuid[40], sock[200], out[8192], args[128];
	struct tl_proc p;

	if (!have_kvm())
		cr_skip_test("no usable /dev/kvm here: the VMM tests need KVM");
	create(uuid, sock, sizeof(sock), every);
	boot(&p, sock, "ram=8 vram=8 rate=32 ms=3000 epoch=100 timeout=10");
	usleep(1300000);
	snprintf(args, sizeof(args), "fault inject --gpu gpu0 --kind %s", kind);
	cr_assert_eq(tl_gpup(dmn.dir, out, sizeof(out), args), 0, "%s", out);
	cr_assert(strstr(out, ": recovered on gpu1: RTO "), "%s", out);
	tl_proc_finish(&p);
	cr_assert_eq(p.code, 0, "out: %s err: %s", p.out_buf, p.err_buf);
	cr_assert(strstr(p.out_buf, ": device recovered (checkpoint at fences "), "%s", p.out_buf);
	cr_log_info("%.200s", strstr(p.out_buf, "device recovered"));
	cr_assert(strstr(p.out_buf, "dirty: ok: ") && strstr(p.out_buf, ", through a recovery"),
		  "%s", p.out_buf);
	cr_assert_eq(tl_gpup(dmn.dir, out, sizeof(out), "stats"), 0, "%s", out);
	cr_assert(strstr(out, "recovered from gpu0: RTO "), "%s", out);
	cr_log_info("%s", strstr(out, "recovered from gpu0"));
}

Test(hv_failover, every_byte_survives_a_lost_gpu_protected_every_100ms)
{
	survives("100", "lost");
}

Test(hv_failover, every_byte_survives_a_hung_gpu_protected_every_second)
{
	survives("1000", "hang");
}

Test(hv_failover, unprotected_the_guest_finds_its_device_lost)
{
	char uuid[40], sock[200], out[8192];
	struct tl_proc p;

	if (!have_kvm())
		cr_skip_test("no usable /dev/kvm here: the VMM tests need KVM");
	create(uuid, sock, sizeof(sock), NULL);
	boot(&p, sock, "ram=4 vram=4 rate=16 ms=3000 epoch=100 timeout=5");
	usleep(700000);
	gpup(out, sizeof(out), "fault inject --gpu %s", "gpu0");
	cr_assert(strstr(out, ": lost: it is not protected"), "%s", out);
	tl_proc_finish(&p);
	cr_assert_eq(p.code, 5, "out: %s err: %s", p.out_buf, p.err_buf);
	cr_assert_null(strstr(p.out_buf, "dirty: ok"), "%s", p.out_buf);
}
