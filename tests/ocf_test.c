// SPDX-License-Identifier: MIT
/*
 * The cluster resource agent (dist/ocf/gpup-vm) as a cluster manager runs
 * it, against real daemons and real VMs: ocf-tester's compliance run
 * (Debian's resource-agents, installed by scripts/deps.sh), the exit
 * codes of validate-all, a VM that dies found by monitor and started
 * again, and a live migration between two daemons on this host
 * (migration_transport=local) with the `dirty` guest checking its RAM and
 * VRAM on the destination; checkpoints into checkpoint_dir (full and
 * incremental, two chains kept) and a start from the newest valid one,
 * an older one when the newest is cut, a cold boot when none is left.
 */
#include <criterion/criterion.h>
#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "tests/daemonlib.h"
#include "tests/testlib.h"

#define OCF_SUCCESS 0
#define OCF_ERR_INSTALLED 5
#define OCF_ERR_CONFIGURED 6
#define OCF_NOT_RUNNING 7

static struct dl_daemon a, b;

static void cleanup(void)
{
	char cmd[256];

	/* VMs the agent left (a failed assertion mid-test). */
	for (int i = 0; i < 2; i++) {
		snprintf(cmd, sizeof(cmd), "pkill -f -- '--run-dir %s' 2>/dev/null",
			 (i ? &b : &a)->run_dir);
		if ((i ? &b : &a)->run_dir[0] && system(cmd) < 0)
			break;
	}
	dl_teardown(&a);
	dl_teardown(&b);
}

TestSuite(ocf, .fini = cleanup, .timeout = 240);

static void need(void)
{
	if (access("/dev/kvm", R_OK | W_OK) != 0)
		cr_skip_test("no usable /dev/kvm here: the agent runs VMs");
	cr_assert_eq(system("command -v ocf-tester >/dev/null 2>&1"), 0,
		     "ocf-tester missing: scripts/deps.sh installs resource-agents");
}

static const char *agent(void)
{
	static char path[512];

	cr_assert_not_null(realpath("dist/ocf/gpup-vm", path), "run from the tree's root");
	return path;
}

static const char *guest(const char *name)
{
	static char path[512];

	snprintf(path, sizeof(path), "%s/%s.elf", getenv("GPUP_GUESTS"), name);
	return path;
}

static void start_daemon(struct dl_daemon *d, const char *name)
{
	const char *args[] = { "--sim-gpus", "1", "--vram", "1G", NULL };
	struct dl_opts o = { .name = name, .args = args, .log = true };

	cr_assert_eq(dl_start(d, &o), 0, "daemon %s did not start", name);
}

/* A partition of type sim-512m-2 under uuid on d (or a new UUID). */
static void partition(struct dl_daemon *d, const char *uuid, char *out, size_t len)
{
	char args[160];

	snprintf(args, sizeof(args), "create --type sim-512m-2%s%s", uuid ? " --uuid " : "",
		 uuid ? uuid : "");
	cr_assert_eq(tl_gpup(d->dir, out, len, args), 0, "%s", out);
	out[strcspn(out, "\n")] = '\0';
}

/* Run the agent's action with the resource's parameters as a cluster
 * manager passes them (OCF_RESKEY_*); its exit status. */
static int ra(const char *action, const char *env_fmt, ...)
	__attribute__((format(printf, 2, 3)));
static int ra(const char *action, const char *env_fmt, ...)
{
	char env[1024], cmd[2048];
	va_list ap;
	int st;

	va_start(ap, env_fmt);
	vsnprintf(env, sizeof(env), env_fmt, ap);
	va_end(ap);
	snprintf(cmd, sizeof(cmd), "env OCF_ROOT=/usr/lib/ocf OCF_RESKEY_gpup=%s %s %s %s "
		 ">/dev/null 2>&1", getenv("GPUP_BIN"), env, agent(), action);
	st = system(cmd);
	return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

Test(ocf, ocf_tester_passes)
{
	char uuid[64], cmd[2048];

	need();
	start_daemon(&a, "ocf-a");
	partition(&a, NULL, uuid, sizeof(uuid));
	snprintf(cmd, sizeof(cmd), "OCF_ROOT=/usr/lib/ocf ocf-tester -n vm1 -o name=vm1 "
		 "-o kernel=%s -o gpus=%s -o run_dir=%s -o gpup=%s -o append=ms=600000 %s "
		 ">%s/ocf-tester.log 2>&1", guest("dirty"), uuid, a.run_dir, getenv("GPUP_BIN"),
		 agent(), a.dir);
	if (system(cmd)) {
		/* The directory goes with the test: show what it said. */
		snprintf(cmd, sizeof(cmd), "tail -n 20 %s/ocf-tester.log >&2", a.dir);
		cr_assert_eq(system(cmd), 0);
		cr_assert_fail("ocf-tester failed (its log above)");
	}
	/* It stops what it started. */
	cr_assert_eq(ra("monitor", "OCF_RESKEY_name=vm1 OCF_RESKEY_kernel=%s OCF_RESKEY_run_dir=%s",
			guest("dirty"), a.run_dir), OCF_NOT_RUNNING);
}

Test(ocf, validate_all_names_what_is_wrong)
{
	need();
	cr_assert_eq(ra("validate-all", "OCF_RESKEY_name=vm1 OCF_RESKEY_kernel=%s", guest("dirty")),
		     OCF_SUCCESS);
	cr_assert_eq(ra("validate-all", "OCF_RESKEY_name=vm1 OCF_RESKEY_kernel=/nonexistent.elf"),
		     OCF_ERR_INSTALLED);
	cr_assert_eq(ra("validate-all", "OCF_RESKEY_name=vm1"), OCF_ERR_CONFIGURED);
	cr_assert_eq(ra("validate-all", "OCF_RESKEY_name=a/b OCF_RESKEY_kernel=%s", guest("dirty")),
		     OCF_ERR_CONFIGURED);
	cr_assert_eq(ra("validate-all", "OCF_RESKEY_name=vm1 OCF_RESKEY_kernel=%s "
			"OCF_RESKEY_migration_transport=carrier-pigeon", guest("dirty")),
		     OCF_ERR_CONFIGURED);
	/* Stop of a resource that cannot be configured here succeeds: nothing
	 * of it can be running. */
	cr_assert_eq(ra("stop", "OCF_RESKEY_name=vm1"), OCF_SUCCESS);
}

Test(ocf, a_dead_vm_is_not_running_and_starts_again)
{
	char uuid[64], env[1024], pidfile[256], buf[32];
	pid_t pid;

	need();
	start_daemon(&a, "ocf-a");
	partition(&a, NULL, uuid, sizeof(uuid));
	snprintf(env, sizeof(env), "OCF_RESKEY_name=vm2 OCF_RESKEY_kernel=%s OCF_RESKEY_gpus=%s "
		 "OCF_RESKEY_run_dir=%s OCF_RESKEY_append=ms=600000", guest("dirty"), uuid,
		 a.run_dir);
	cr_assert_eq(ra("start", "%s", env), OCF_SUCCESS);
	cr_assert_eq(ra("monitor", "%s", env), OCF_SUCCESS);
	snprintf(pidfile, sizeof(pidfile), "%s/ocf/vm2.pid", a.run_dir);
	tl_slurp(pidfile, buf, sizeof(buf));
	pid = (pid_t)atoi(buf);
	cr_assert_gt(pid, 0);
	cr_assert_eq(kill(pid, SIGKILL), 0);
	for (int i = 0; i < 100 && kill(pid, 0) == 0; i++)
		usleep(20000);
	cr_assert_eq(ra("monitor", "%s", env), OCF_NOT_RUNNING, "a killed VM is not running");
	cr_assert_eq(ra("start", "%s", env), OCF_SUCCESS, "recovery: started again");
	cr_assert_eq(ra("monitor", "%s", env), OCF_SUCCESS);
	cr_assert_eq(ra("stop", "%s", env), OCF_SUCCESS);
	cr_assert_eq(ra("monitor", "%s", env), OCF_NOT_RUNNING);
	cr_assert_eq(ra("stop", "%s", env), OCF_SUCCESS, "stop is idempotent");
}

Test(ocf, migrate_to_and_from_between_two_daemons)
{
	char ua[64], ub[64], src[1024], dst[1024], log[256], text[8192];

	need();
	start_daemon(&a, "ocf-a");
	start_daemon(&b, "ocf-b");
	partition(&a, NULL, ua, sizeof(ua));
	partition(&b, ua, ub, sizeof(ub));
	cr_assert_str_eq(ub, ua);
	/* epochs=0 and ms long: the guest checks every epoch until stopped;
	 * a lost byte would end it with a nonzero status. */
	snprintf(src, sizeof(src), "OCF_RESKEY_name=vm3 OCF_RESKEY_kernel=%s OCF_RESKEY_gpus=%s "
		 "OCF_RESKEY_run_dir=%s OCF_RESKEY_target_run_dir=%s "
		 "OCF_RESKEY_migration_transport=local OCF_RESKEY_migration_port=%d "
		 "OCF_RESKEY_append=ms=600000 OCF_RESKEY_CRM_meta_migrate_target=localhost",
		 guest("dirty"), ua, a.run_dir, b.run_dir, 20000 + (int)(getpid() % 20000));
	snprintf(dst, sizeof(dst), "OCF_RESKEY_name=vm3 OCF_RESKEY_kernel=%s OCF_RESKEY_gpus=%s "
		 "OCF_RESKEY_run_dir=%s", guest("dirty"), ua, b.run_dir);
	cr_assert_eq(ra("start", "%s", src), OCF_SUCCESS);
	usleep(500000); /* a few of the guest's epochs before it moves */
	cr_assert_eq(ra("migrate_to", "%s", src), OCF_SUCCESS);
	cr_assert_eq(ra("migrate_from", "%s", dst), OCF_SUCCESS);
	cr_assert_eq(ra("monitor", "%s", src), OCF_NOT_RUNNING, "gone from the source");
	cr_assert_eq(ra("monitor", "%s", dst), OCF_SUCCESS, "running on the target");
	usleep(1000000); /* epochs verified on the destination */
	cr_assert_eq(ra("monitor", "%s", dst), OCF_SUCCESS, "the guest's checks still pass");
	cr_assert_eq(ra("stop", "%s", dst), OCF_SUCCESS);
	cr_assert_eq(ra("monitor", "%s", dst), OCF_NOT_RUNNING);
	snprintf(log, sizeof(log), "%s/ocf/vm3.console", b.run_dir);
	tl_slurp(log, text, sizeof(text));
	/* Its reports of a lost byte or fence ("expected ..., found") or of
	 * a device error. */
	cr_assert(!strstr(text, "expected") && !strstr(text, "error"),
		  "the guest on the destination: %s", text);
}

Test(ocf, a_refused_migration_leaves_the_vm_running_here)
{
	char ua[64], src[1024], pidfile[256];

	need();
	start_daemon(&a, "ocf-a");
	start_daemon(&b, "ocf-b");
	partition(&a, NULL, ua, sizeof(ua));
	/* b has no partition under ua: its incoming gpup run cannot attach. */
	snprintf(src, sizeof(src), "OCF_RESKEY_name=vm4 OCF_RESKEY_kernel=%s OCF_RESKEY_gpus=%s "
		 "OCF_RESKEY_run_dir=%s OCF_RESKEY_target_run_dir=%s "
		 "OCF_RESKEY_migration_transport=local OCF_RESKEY_migration_port=%d "
		 "OCF_RESKEY_append=ms=600000 OCF_RESKEY_CRM_meta_migrate_target=localhost",
		 guest("dirty"), ua, a.run_dir, b.run_dir, 20000 + (int)((getpid() + 7) % 20000));
	cr_assert_eq(ra("start", "%s", src), OCF_SUCCESS);
	cr_assert_neq(ra("migrate_to", "%s", src), OCF_SUCCESS);
	cr_assert_eq(ra("monitor", "%s", src), OCF_SUCCESS, "the VM runs on the source");
	snprintf(pidfile, sizeof(pidfile), "%s/ocf/vm4.pid", b.run_dir);
	cr_assert_neq(access(pidfile, F_OK), 0, "nothing left on the target");
	cr_assert_eq(ra("stop", "%s", src), OCF_SUCCESS);
}

/* The same with the agent's own lines (stderr) in err. */
static int ra_err(char *err, size_t len, const char *action, const char *env)
{
	char cmd[4096], path[256];
	int st;

	snprintf(path, sizeof(path), "%s/agent.err", a.dir);
	snprintf(cmd, sizeof(cmd), "env OCF_ROOT=/usr/lib/ocf OCF_RESKEY_gpup=%s %s %s %s "
		 ">/dev/null 2>%s", getenv("GPUP_BIN"), env, agent(), action, path);
	st = system(cmd);
	tl_slurp(path, err, len);
	return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/* The checkpoints in dir, newest first, in names[n][64]: how many. */
static int ckpts(const char *dir, char names[][256], int max, int *fulls)
{
	struct dirent **e;
	int n = scandir(dir, &e, NULL, alphasort), k = 0;

	*fulls = 0;
	for (int i = n - 1; i >= 0; i--) {
		if (strstr(e[i]->d_name, ".ckpt") && e[i]->d_name[0] != '.' && k < max) {
			snprintf(names[k++], 256, "%s", e[i]->d_name);
			*fulls += strstr(e[i]->d_name, ".full.ckpt") != NULL;
		}
		free(e[i]);
	}
	free(e);
	return k;
}

static void kill_agent_vm(const char *name)
{
	char pidfile[256], buf[32];
	pid_t pid;

	snprintf(pidfile, sizeof(pidfile), "%s/ocf/%s.pid", a.run_dir, name);
	tl_slurp(pidfile, buf, sizeof(buf));
	pid = (pid_t)atoi(buf);
	cr_assert_gt(pid, 0);
	cr_assert_eq(kill(pid, SIGKILL), 0);
	for (int i = 0; i < 100 && kill(pid, 0) == 0; i++)
		usleep(20000);
}

Test(ocf, start_restores_the_newest_valid_checkpoint_or_boots_cold)
{
	char uuid[64], env[2048], dir[256], err[8192], want[1024], names[16][256], path[512];
	int fulls;

	need();
	start_daemon(&a, "ocf-a");
	partition(&a, NULL, uuid, sizeof(uuid));
	snprintf(dir, sizeof(dir), "%s/ckpt", a.dir);
	cr_assert_eq(mkdir(dir, 0700), 0);
	snprintf(env, sizeof(env), "OCF_RESKEY_name=vm6 OCF_RESKEY_kernel=%s OCF_RESKEY_gpus=%s "
		 "OCF_RESKEY_run_dir=%s OCF_RESKEY_checkpoint_dir=%s "
		 "OCF_RESKEY_checkpoint_full_every=3 "
		 "'OCF_RESKEY_append=ram=8 vram=8 rate=8 ms=600000'", guest("dirty"), uuid,
		 a.run_dir, dir);
	cr_assert_eq(ra_err(err, sizeof(err), "start", env), OCF_SUCCESS, "%s", err);
	snprintf(want, sizeof(want), "no valid checkpoint of vm6 in %s: cold boot", dir);
	cr_assert(strstr(err, want), "%s", err);
	usleep(400000);
	/* full, inc, inc, full, inc, inc, full: the oldest chain goes. */
	for (int i = 0; i < 7; i++)
		cr_assert_eq(ra_err(err, sizeof(err), "checkpoint", env), OCF_SUCCESS, "%d: %s", i,
			     err);
	cr_assert_eq(ckpts(dir, names, 16, &fulls), 4);
	cr_assert_eq(fulls, 2);
	cr_assert(strstr(names[0], ".full.ckpt") && strstr(names[3], ".full.ckpt") &&
		  strstr(names[1], ".inc.ckpt"), "%s %s %s", names[0], names[1], names[3]);

	kill_agent_vm("vm6");
	cr_assert_eq(ra("monitor", "%s", env), OCF_NOT_RUNNING);
	cr_assert_eq(ra_err(err, sizeof(err), "start", env), OCF_SUCCESS, "%s", err);
	snprintf(want, sizeof(want), "started from checkpoint %s/%s", dir, names[0]);
	cr_assert(strstr(err, want), "%s", err);
	cr_assert_eq(ra("monitor", "%s", env), OCF_SUCCESS);
	/* Incremental on the restored one. */
	cr_assert_eq(ra_err(err, sizeof(err), "checkpoint", env), OCF_SUCCESS, "%s", err);
	cr_assert(strstr(err, "(incremental on "), "%s", err);

	/* The newest cut short: the one before it. */
	cr_assert_eq(ckpts(dir, names, 16, &fulls), 5);
	snprintf(path, sizeof(path), "%s/%.200s", dir, names[0]);
	cr_assert_eq(truncate(path, 1000), 0);
	kill_agent_vm("vm6");
	cr_assert_eq(ra_err(err, sizeof(err), "start", env), OCF_SUCCESS, "%s", err);
	snprintf(want, sizeof(want), "restore refused: %s: truncated: no valid tail", path);
	cr_assert(strstr(err, want), "%s", err);
	snprintf(want, sizeof(want), "started from checkpoint %s/%s", dir, names[1]);
	cr_assert(strstr(err, want), "%s", err);
	usleep(500000);
	cr_assert_eq(ra("monitor", "%s", env), OCF_SUCCESS, "the guest's checks still pass");

	/* None left: a cold boot. */
	for (int i = 0; i < 5; i++) {
		snprintf(path, sizeof(path), "%s/%.200s", dir, names[i]);
		unlink(path);
	}
	kill_agent_vm("vm6");
	cr_assert_eq(ra_err(err, sizeof(err), "start", env), OCF_SUCCESS, "%s", err);
	snprintf(want, sizeof(want), "no valid checkpoint of vm6 in %s: cold boot", dir);
	cr_assert(strstr(err, want), "%s", err);
	cr_assert_eq(ra("stop", "%s", env), OCF_SUCCESS);
	snprintf(path, sizeof(path), "%s/ocf/vm6.console", a.run_dir);
	tl_slurp(path, err, sizeof(err));
	cr_assert(!strstr(err, "expected") && !strstr(err, "error"), "the guest: %s", err);
}
