// SPDX-License-Identifier: MIT
/*
 * `gpup sched` on a GPU with VMs on it: two VMs boot sample guests on two
 * partitions (vdi renders frames and checks every pixel, infer runs gemm
 * and reduce and checks them bit for bit), and while they run the GPU's
 * policy changes four times and the vdi partition becomes interactive.
 * Both guests must finish with correct results.
 */
#include <criterion/criterion.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "tests/daemonlib.h"
#include "tests/testlib.h"

static char dir[64];

static int gpup(char *out, size_t len, const char *args)
{
	return tl_gpup(dir, out, len, args);
}

/* Boot guest NAME on partition uuid in the background; its console goes
 * to DIR/NAME.txt. */
static FILE *vm(const char *name, const char *uuid, const char *append)
{
	char cmd[1024];

	snprintf(cmd, sizeof(cmd), "%s --run-dir %s/run run --kernel %s/%s.elf --gpu %s/run/%s.sock "
		 "--serial %s/%s.txt --append '%s' 2>&1", getenv("GPUP_BIN"), dir,
		 getenv("GPUP_GUESTS"), name, dir, uuid, dir, name, append);
	return popen(cmd, "r");
}

static void create(char *out, size_t len, char *uuid)
{
	cr_assert_eq(gpup(out, len, "create --type sim-256m-4"), 0, "%s", out);
	cr_assert_eq(sscanf(out, "%63s", uuid), 1);
}

/* Runs even when an assertion ended the test: no daemon is left behind. */
static void stop_daemon(void)
{
	dl_teardown_dir(dir);
}

TestSuite(sched_vm, .fini = stop_daemon);

Test(sched_vm, policy_changes_under_running_vms, .timeout = 120)
{
	static const char *const steps[] = {
		"sched --gpu gpu0 --policy weighted --slice 1",
		"sched --gpu gpu0 --policy equal-share --slice 0.5",
		"sched --gpu gpu0 --policy fixed-share",
		"sched --gpu gpu0 --policy best-effort --slice 2",
	};
	char out[4096], args[256], vdi[64], infer[64];
	FILE *v, *i;
	int fd = open("/dev/kvm", O_RDWR | O_CLOEXEC);

	if (fd < 0)
		cr_skip_test("no usable /dev/kvm here");
	close(fd);
	cr_assert_not_null(getenv("GPUP_BIN"), "GPUP_BIN must name the gpup binary");
	cr_assert_not_null(getenv("GPUP_GUESTS"), "GPUP_GUESTS must name the guest images");
	snprintf(dir, sizeof(dir), "/tmp/gpup-schedvm-XXXXXX");
	cr_assert_not_null(mkdtemp(dir));
	snprintf(args, sizeof(args), "daemon --detach --state-dir %s/state --sim-gpus 1 --vram 1G", dir);
	cr_assert_eq(gpup(out, sizeof(out), args), 0, "%s", out);
	create(out, sizeof(out), vdi);
	create(out, sizeof(out), infer);
	cr_assert_not_null(v = vm("vdi", vdi, "frames=60"));
	cr_assert_not_null(i = vm("infer", infer, "n=32 iters=1500 sample"));
	for (int k = 0; k < 4; k++) {
		usleep(150000);
		cr_assert_eq(gpup(out, sizeof(out), steps[k]), 0, "%s", out);
		if (k == 0) {
			snprintf(args, sizeof(args), "sched --partition %s --class interactive", vdi);
			cr_assert_eq(gpup(out, sizeof(out), args), 0, "%s", out);
		}
	}
	cr_assert_eq(pclose(v), 0, "the vdi guest failed");
	cr_assert_eq(pclose(i), 0, "the infer guest failed");
	snprintf(args, sizeof(args), "%s/infer.txt", dir);
	tl_slurp(args, out, sizeof(out));
	cr_assert_not_null(strstr(out, " ok, "), "infer: %s", out);
	cr_assert_eq(gpup(out, sizeof(out), "stats --json"), 0, "%s", out);
	cr_assert_not_null(strstr(out, "\"best-effort\""), "%s", out);
}
