// SPDX-License-Identifier: MIT
/*
 * `make install` into a scratch root (what it does: scripts/install.sh,
 * with the man pages of scripts/man.sh): every file where the layout says,
 * the unit naming the installed binary (and clean under systemd-analyze
 * verify where systemd is there), a man page per command, the README demo
 * run from the installed binary and guests, a model benchmark of an
 * installed scenario, and bash completion of commands, flags and the
 * daemon's type names.
 */
#include <criterion/criterion.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "tests/daemonlib.h"
#include "tests/testlib.h"

static char dir[64];

static void cleanup(void)
{
	dl_teardown_dir(dir);
}

TestSuite(install, .fini = cleanup, .timeout = 240);

static int sh(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* A shell command (output into DIR/out); its exit status. */
static int sh(const char *fmt, ...)
{
	char cmd[4096];
	va_list ap;
	int n, st;

	va_start(ap, fmt);
	n = vsnprintf(cmd, sizeof(cmd), fmt, ap);
	va_end(ap);
	snprintf(cmd + n, sizeof(cmd) - (size_t)n, " >%s/out 2>&1", dir);
	st = system(cmd);
	return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static void out(char *buf, size_t len)
{
	char path[128];

	snprintf(path, sizeof(path), "%s/out", dir);
	tl_slurp(path, buf, len);
}

static void installed(const char *path)
{
	char p[256];

	snprintf(p, sizeof(p), "%s/root%s", dir, path);
	cr_assert_eq(access(p, R_OK), 0, "%s is not installed", path);
}

Test(install, into_a_scratch_root)
{
	static const char *const files[] = {
		"/usr/bin/gpup", "/usr/lib/gpup/guests/tenant.elf", "/usr/lib/gpup/guests/hello.elf",
		"/usr/share/gpup/scenarios/interactive.json",
		"/usr/share/gpup/schema/bench-scenario.schema.json",
		"/usr/share/man/man1/gpup.1", "/usr/share/man/man1/gpup-create.1",
		"/usr/share/man/man1/gpup-daemon.1", "/usr/share/man/man1/gpup-bench.1",
		"/usr/share/man/man1/gpup-define.1", "/usr/share/man/man1/gpup-undefine.1",
		"/usr/share/man/man1/gpup-start.1",
		"/usr/lib/systemd/system/gpup.service",
		"/usr/share/bash-completion/completions/gpup", "/etc/gpup/gpup.conf",
		"/usr/lib/ocf/resource.d/gpup/vm",
	};
	const char *bin = getenv("GPUP_BIN"), *guests = getenv("GPUP_GUESTS");
	char buf[65536];

	cr_assert(bin && guests, "GPUP_BIN and GPUP_GUESTS must be set (make test sets them)");
	snprintf(dir, sizeof(dir), "/tmp/gpup-install-XXXXXX");
	cr_assert_not_null(mkdtemp(dir));
	cr_assert_eq(sh("sh scripts/man.sh %s %s/man", bin, dir), 0, "%s", (out(buf, sizeof(buf)), buf));
	cr_assert_eq(sh("DESTDIR=%s/root PREFIX=/usr sh scripts/install.sh %s %s %s/man", dir, bin,
			guests, dir), 0, "%s", (out(buf, sizeof(buf)), buf));
	for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++)
		installed(files[i]);

	/* the unit names the installed binary; systemd finds nothing to say */
	snprintf(buf, sizeof(buf), "%s/root/usr/lib/systemd/system/gpup.service", dir);
	cr_assert_eq(sh("grep -qx 'ExecStart=/usr/bin/gpup daemon' %s && grep -qx 'Type=notify' %s",
			buf, buf), 0);
	if (sh("command -v systemd-analyze") == 0) {
		cr_assert_eq(sh("sed 's|=/usr/bin/gpup|=%s/root/usr/bin/gpup|' %s >%s/gpup.service && "
				"systemd-analyze verify --man=no %s/gpup.service 2>&1 | tee %s/verify; "
				"test ! -s %s/verify", dir, buf, dir, dir, dir, dir), 0, "%s",
			     (out(buf, sizeof(buf)), buf));
	}

	/* a page per command, named as the command */
	cr_assert_eq(sh("grep -q 'gpup-create' %s/root/usr/share/man/man1/gpup-create.1", dir), 0);
	cr_assert_eq(sh("grep -q -- '--type' %s/root/usr/share/man/man1/gpup-create.1", dir), 0);

	/* the demo and a benchmark from the installed paths */
	cr_assert_eq(sh("TMPDIR=%s GPUP_BIN=%s/root/usr/bin/gpup GPUP_GUESTS=%s/root/usr/lib/gpup/guests "
			"sh scripts/demo.sh", dir, dir, dir), 0, "%s", (out(buf, sizeof(buf)), buf));
	cr_assert_eq(sh("%s/root/usr/bin/gpup bench %s/root/usr/share/gpup/scenarios/vm-small.json "
			"--model --duration 1 --no-baselines", dir, dir), 0, "%s",
		     (out(buf, sizeof(buf)), buf));
	out(buf, sizeof(buf));
	cr_assert_not_null(strstr(buf, "/root/usr/share/gpup/scenarios/vm-small.json --model"),
			   "the reproduce line names the installed scenario: %s", buf);
}

/* COMP_WORDS as typed; what _gpup offers, one a line, into buf. */
static void complete(const char *words, int cword, char *buf, size_t len)
{
	int rc = sh("PATH=%s/root/usr/bin:$PATH bash -c '. %s/root/usr/share/bash-completion/"
		    "completions/gpup; COMP_WORDS=(%s); COMP_CWORD=%d; _gpup; "
		    "printf \"%%s\\n\" \"${COMPREPLY[@]}\"'", dir, dir, words, cword);

	out(buf, len);
	cr_assert_eq(rc, 0, "%s", buf);
}

Test(install, bash_completion)
{
	const char *bin = getenv("GPUP_BIN"), *guests = getenv("GPUP_GUESTS");
	char buf[8192], args[512];

	snprintf(dir, sizeof(dir), "/tmp/gpup-install-XXXXXX");
	cr_assert_not_null(mkdtemp(dir));
	cr_assert_eq(sh("mkdir -p %s/man && touch %s/man/gpup.1 && DESTDIR=%s/root PREFIX=/usr "
			"sh scripts/install.sh %s %s %s/man", dir, dir, dir, bin, guests, dir), 0);
	complete("gpup cr", 1, buf, sizeof(buf));
	cr_assert_str_eq(buf, "create\n");
	complete("gpup create --t", 2, buf, sizeof(buf));
	cr_assert_str_eq(buf, "--type\n");
	complete("gpup sched --policy e", 3, buf, sizeof(buf));
	cr_assert_str_eq(buf, "equal-share\n");
	complete("gpup und", 1, buf, sizeof(buf));
	cr_assert_str_eq(buf, "undefine\n");
	complete("gpup define --start m", 3, buf, sizeof(buf));
	cr_assert_str_eq(buf, "manual\n");
	/* type names from the daemon at --run-dir */
	snprintf(args, sizeof(args), "%s --run-dir %s/run daemon --detach --state-dir %s/state "
		 "--sim-gpus 1 --vram 64M --config ''", bin, dir, dir);
	cr_assert_eq(sh("%s", args), 0, "%s", (out(buf, sizeof(buf)), buf));
	snprintf(args, sizeof(args), "gpup --run-dir %s/run create --type sim-64m-", dir);
	complete(args, 5, buf, sizeof(buf));
	cr_assert_str_eq(buf, "sim-64m-1\n");
	/* partition UUIDs for start and undefine */
	cr_assert_eq(sh("%s --run-dir %s/run define --type sim-16m-4 --uuid "
			"aaaaaaaa-0000-4000-8000-00000000000a", bin, dir), 0);
	snprintf(args, sizeof(args), "gpup --run-dir %s/run start a", dir);
	complete(args, 4, buf, sizeof(buf));
	cr_assert_str_eq(buf, "aaaaaaaa-0000-4000-8000-00000000000a\n");
}
