// SPDX-License-Identifier: MIT
/*
 * The Debian package: `dpkg-buildpackage -b -us -uc` on a copy of the
 * tree builds it (the build dependencies are scripts/deps.sh's), and the
 * .deb, unpacked into a scratch root, holds what docs/SERVICE.md lists:
 * `man gpup-create` reads its page, the README demo runs from its binary
 * and guests, the unit is there and its /etc file is a conffile.  The
 * package is built with the plain flags whatever the suite's build, so the
 * sanitized pass of `make test` skips it rather than build it twice.
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

TestSuite(deb, .fini = cleanup, .timeout = 600);

static int sh(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

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

static const char *out(void)
{
	static char buf[16384];
	char path[128];

	snprintf(path, sizeof(path), "%s/out", dir);
	tl_slurp(path, buf, sizeof(buf));
	return buf;
}

Test(deb, builds_installs_and_runs)
{
	const char *bin = getenv("GPUP_BIN");

	if (bin && strstr(bin, "/asan/"))
		cr_skip_test("the package's build is the plain one: tested in the plain pass");
	snprintf(dir, sizeof(dir), "/tmp/gpup-deb-XXXXXX");
	cr_assert_not_null(mkdtemp(dir));
	cr_assert_eq(sh("mkdir %s/src && tar --exclude=./build --exclude=./.git --exclude=./debian/gpup "
			"--exclude=./debian/.debhelper -cf - . | tar -xf - -C %s/src", dir, dir), 0,
		     "%s", out());
	cr_assert_eq(sh("cd %s/src && dpkg-buildpackage -b -us -uc -j2", dir), 0, "%s", out());
	cr_assert_eq(sh("dpkg-deb -x %s/gpup_*_amd64.deb %s/root", dir, dir), 0, "%s", out());
	cr_assert_eq(sh("dpkg-deb -f %s/gpup_*_amd64.deb Depends | grep -q libjson-c", dir), 0,
		     "%s", out());
	cr_assert_eq(sh("dpkg-deb -e %s/gpup_*_amd64.deb %s/control && grep -qx /etc/gpup/gpup.conf "
			"%s/control/conffiles", dir, dir, dir), 0, "%s", out());
	cr_assert_eq(sh("test -f %s/root/lib/systemd/system/gpup.service && grep -qx "
			"'ExecStart=/usr/bin/gpup daemon' %s/root/lib/systemd/system/gpup.service",
			dir, dir), 0);
	cr_assert_eq(sh("MANPATH=%s/root/usr/share/man MANWIDTH=80 man -P cat gpup-create", dir), 0,
		     "%s", out());
	cr_assert_not_null(strstr(out(), "gpup-create - create a partition"), "%s", out());
	cr_assert_eq(sh("GPUP_BIN=%s/root/usr/bin/gpup GPUP_GUESTS=%s/root/usr/lib/gpup/guests "
			"sh scripts/demo.sh", dir, dir), 0, "%s", out());
	cr_assert_not_null(strstr(out(), "demo done"), "%s", out());
}
