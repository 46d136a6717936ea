// SPDX-License-Identifier: MIT
/*
 * gpup.service under real systemd.  This host's PID 1 is not systemd, so
 * the test gives systemd a machine of its own: new PID, mount, UTS, IPC
 * and network namespaces whose PID 1 is /lib/systemd/systemd, in a root
 * built by tests/systemd/pid1.sh (the host's /usr read-only, /etc as an
 * overlay in memory, fresh /var, /tmp and /run, /sys and /proc/sys
 * read-only), with gpup installed under /usr/local by scripts/install.sh
 * exactly as `make install` does.  systemd boots to a target that wants
 * gpup.service; the test then does what an operator would, from inside:
 * systemctl, the CLI, curl of the metrics endpoint (checked by
 * scripts/check-metrics.py), man gpup-create, a stop and a start that
 * brings the partition back, and powers that machine off.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "tests/testlib.h"

#define UU "5eed0000-0000-4000-8000-000000000001"
#define PORT "9464"

static char dir[64];
static pid_t ns_pid;    /* unshare, outside */
static pid_t sd_pid;    /* systemd: PID 1 inside, this pid outside */
static char out[65536];

/* Run a shell command on the host into out: its exit status. */
static int host(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static int host(const char *fmt, ...)
{
	char cmd[2048], path[128];
	va_list ap;
	int n, st;

	va_start(ap, fmt);
	n = vsnprintf(cmd, sizeof(cmd), fmt, ap);
	va_end(ap);
	snprintf(path, sizeof(path), "%s/out", dir);
	snprintf(cmd + n, sizeof(cmd) - (size_t)n, " >%s 2>&1", path);
	st = system(cmd);
	tl_slurp(path, out, sizeof(out));
	return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/* The same inside systemd's machine, as root there. */
static int in(const char *cmd)
{
	return host("nsenter -t %d -a sh -c '%s'", (int)sd_pid, cmd);
}

static void poweroff(void)
{
	int st;

	if (ns_pid <= 0)
		return;
	if (sd_pid > 0)
		kill(sd_pid, SIGRTMIN + 4);  /* systemd's poweroff */
	for (int i = 0; i < 300 && waitpid(ns_pid, &st, WNOHANG) == 0; i++)
		usleep(100000);
	if (waitpid(ns_pid, &st, WNOHANG) == 0) {
		kill(ns_pid, SIGKILL);  /* --kill-child takes systemd with it */
		waitpid(ns_pid, &st, 0);
	}
	ns_pid = sd_pid = 0;
	/* Without a cgroup namespace of its own, systemd left the empty
	 * init.scope it moved itself into (on a host whose PID 1 is systemd,
	 * that one is busy and stays). */
	system("for d in /sys/fs/cgroup/*/init.scope /sys/fs/cgroup/init.scope; do "
	       "rmdir \"$d\" 2>/dev/null; done; true");
}

static void teardown(void)
{
	poweroff();
	if (dir[0])
		host("rm -rf %s", dir);
}

TestSuite(systemd, .fini = teardown, .timeout = 240);

/* What the test needs of the host: root, systemd, util-linux's tools. */
static const char *missing(void)
{
	if (geteuid() != 0)
		return "needs root (namespaces)";
	if (access("/lib/systemd/systemd", X_OK))
		return "needs systemd installed (scripts/deps.sh installs it)";
	if (system("command -v unshare nsenter setpriv curl man >/dev/null"))
		return "needs unshare, nsenter, setpriv, curl and man (scripts/deps.sh)";
	return NULL;
}

/* Install as `make install` would, under DIR/root/usr/local. */
static void install(void)
{
	const char *bin = getenv("GPUP_BIN"), *guests = getenv("GPUP_GUESTS");
	char path[128];
	FILE *f;

	cr_assert(bin && guests, "GPUP_BIN and GPUP_GUESTS must be set (make test sets them)");
	cr_assert_eq(host("sh scripts/man.sh %s %s/man", bin, dir), 0, "%s", out);
	cr_assert_eq(host("DESTDIR=%s/root PREFIX=/usr/local sh scripts/install.sh %s %s %s/man",
			  dir, bin, guests, dir), 0, "%s", out);
	snprintf(path, sizeof(path), "%s/gpup.conf", dir);
	f = fopen(path, "w");
	cr_assert_not_null(f);
	fputs("sim-gpus = 1\nvram = 256M\nmetrics = 127.0.0.1:" PORT "\n", f);
	cr_assert_eq(fclose(f), 0);	/* An ASan build's LeakSanitizer stops the process's threads with
	 * ptrace at exit, which the unit's SystemCallFilter (rightly) does not
	 * allow a production daemon: only for such a build, a drop-in allows
	 * it and passes the suites' sanitizer options on. */
	if (host("ldd %s | grep -q libasan", bin) == 0) {
		snprintf(path, sizeof(path), "%s/sanitizer.conf", dir);
		f = fopen(path, "w");
		cr_assert_not_null(f);
		fprintf(f, "[Service]\nSystemCallFilter=ptrace\nEnvironment=ASAN_OPTIONS=%s\n",
			getenv("ASAN_OPTIONS") ? getenv("ASAN_OPTIONS") : "");
		cr_assert_eq(fclose(f), 0);
	}
}

static void boot(void)
{
	char path[64], buf[32] = "";

	ns_pid = fork();
	cr_assert_geq(ns_pid, 0);
	if (ns_pid == 0) {
		execlp("unshare", "unshare", "--pid", "--fork", "--kill-child", "--mount", "--uts",
		       "--ipc", "--net", "sh", "tests/systemd/pid1.sh", dir, (char *)NULL);
		_exit(127);
	}
	snprintf(path, sizeof(path), "/proc/%d/task/%d/children", (int)ns_pid, (int)ns_pid);
	for (int i = 0; i < 100 && !atoi(buf); i++) {
		usleep(50000);
		tl_slurp(path, buf, sizeof(buf));
	}
	sd_pid = atoi(buf);
	cr_assert_gt(sd_pid, 0, "unshare started nothing");
}

/* systemctl is-active until it says want (or 30 s pass). */
static void wait_state(const char *want)
{
	char cmd[128];

	snprintf(cmd, sizeof(cmd), "systemctl is-active gpup.service | grep -qx %s", want);
	for (int i = 0; i < 300; i++) {
		if (in(cmd) == 0)
			return;
		usleep(100000);
	}
	in("systemctl status gpup.service --no-pager; journalctl -u gpup --no-pager | tail -20");
	cr_assert_fail("gpup.service is not %s:\n%s", want, out);
}

Test(systemd, the_unit_runs_under_systemd_as_pid1)
{
	const char *why = missing();
	char path[128];

	if (why)
		cr_skip("%s", why);
	snprintf(dir, sizeof(dir), "/tmp/gpup-systemd-XXXXXX");
	cr_assert_not_null(mkdtemp(dir));
	install();
	boot();
	wait_state("active");
	cr_assert_eq(in("systemctl show -p Type,StatusText gpup.service"), 0, "%s", out);
	cr_assert_str_eq(out, "Type=notify\nStatusText=serving /run/gpup/gpup.sock\n");
	cr_assert_eq(in("gpup create --type sim-64m-4 --uuid " UU), 0, "%s", out);
	cr_assert_str_eq(out, UU "\n");

	/* The metrics endpoint, scraped as Prometheus would, in its format. */
	cr_assert_eq(in("curl -sf http://127.0.0.1:" PORT "/metrics"), 0, "%s", out);
	cr_assert(strstr(out, "gpup_partition_vram_bytes{partition=\"" UU "\",gpu=\"gpu0\"} "
			      "67108864\n"), "%s", out);
	snprintf(path, sizeof(path), "%s/metrics", dir);
	cr_assert_eq(host("nsenter -t %d -a curl -sf http://127.0.0.1:" PORT "/metrics >%s",
			  (int)sd_pid, path), 0);
	cr_assert_eq(host("scripts/check-metrics.py <%s", path), 0, "%s", out);

	cr_assert_eq(in("man -w gpup-create"), 0, "%s", out);
	cr_assert_str_eq(out, "/usr/local/share/man/man1/gpup-create.1\n");

	/* A stop and a start: the partition's definition brings it back. */
	cr_assert_eq(in("systemctl stop gpup.service"), 0, "%s", out);
	wait_state("inactive");
	cr_assert_eq(in("test -e /run/gpup/gpup.sock"), 1, "the socket is removed");
	cr_assert_eq(in("ls /var/lib/gpup/definitions/gpu0"), 0, "%s", out);
	cr_assert_str_eq(out, UU "\n");
	cr_assert_eq(in("systemctl start gpup.service"), 0, "%s", out);
	wait_state("active");
	cr_assert_eq(in("gpup list --json | grep -c \"\\\"uuid\\\": \\\"" UU "\\\"\""), 0, "%s", out);
	cr_assert_eq(in("journalctl -u gpup.service -p err --no-pager -q"), 0, "%s", out);
	cr_assert_str_eq(out, "", "no error in the journal");
	poweroff();
}
