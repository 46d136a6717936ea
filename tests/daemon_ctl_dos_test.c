// SPDX-License-Identifier: MIT
/*
 * The daemon's control socket against a local client that hogs it: many
 * connections holding half a request, and a client that sends a request
 * and never reads the reply.  Honest `gpup` commands are served all the
 * while, and the daemon's loop never waits on the hog.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "tests/daemonlib.h"
#include "tests/testlib.h"

#define HOGS 64

static struct dl_daemon dmn;

static void setup(void)
{
	static const char *const args[] = { "--sim-gpus", "1", "--vram", "256M", NULL };
	struct dl_opts o = { .name = "gpup-ctl-dos", .args = args };

	cr_assert_eq(dl_start(&dmn, &o), 0, "daemon did not start");
}

static void teardown(void)
{
	dl_teardown(&dmn);
}

TestSuite(ctl_dos, .init = setup, .fini = teardown, .timeout = 60);

/* The backlog may be full for a moment while the daemon accepts (the
 * kernel then refuses): try again. */
static int ctl_connect(void)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };

	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s/gpup.sock", dmn.run_dir);
	for (int i = 0; i < 10000; i++) {
		int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

		cr_assert_geq(fd, 0);
		if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0)
			return fd;
		cr_assert(errno == EAGAIN || errno == ECONNREFUSED, "connect: %s",
			  strerror(errno));
		close(fd);
		usleep(1000);
	}
	cr_assert_fail("the daemon stopped accepting (pid %d)", (int)dmn.pid);
	return -1;
}

/* Twice the connection cap of half-requests, kept open: every honest
 * command still gets its answer (it used to fail with "Broken pipe"). */
Test(ctl_dos, half_requests_do_not_lock_out_honest_clients)
{
	int hog[HOGS];
	char out[4096];

	for (int i = 0; i < HOGS; i++) {
		hog[i] = ctl_connect();
		cr_assert_eq(write(hog[i], "{\"method\":", 10), 10);
	}
	for (int i = 0; i < 20; i++) {
		cr_assert_eq(tl_gpup(dmn.dir, out, sizeof(out), "list"), 0, "try %d: %s", i, out);
		/* The hog keeps its slots full between honest calls. */
		close(hog[i]);
		hog[i] = ctl_connect();
		cr_assert_eq(write(hog[i], "{", 1), 1);
	}
	for (int i = 0; i < HOGS; i++)
		close(hog[i]);
}

/* Requests whose replies are never read, on a socket that takes little:
 * the loop goes on serving others. */
Test(ctl_dos, unread_replies_do_not_stall_the_loop)
{
	static const char req[] = "{\"method\":\"gpus\"}\n";
	int hog[16], small = 1;
	char out[4096];

	for (int i = 0; i < 16; i++) {
		hog[i] = ctl_connect();
		setsockopt(hog[i], SOL_SOCKET, SO_RCVBUF, &small, sizeof(small));
		cr_assert_eq(write(hog[i], req, sizeof(req) - 1), (ssize_t)(sizeof(req) - 1));
	}
	for (int i = 0; i < 5; i++)
		cr_assert_eq(tl_gpup(dmn.dir, out, sizeof(out), "gpus"), 0, "%s", out);
	for (int i = 0; i < 16; i++)
		close(hog[i]);
}
