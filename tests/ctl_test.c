// SPDX-License-Identifier: MIT
/* Control-API framing and envelope, over a socketpair: no daemon. */
#include <criterion/criterion.h>
#include <errno.h>
#include <pthread.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "gpup/ctl.h"
#include "uapi/gpup_ctl.h"

static int sv[2];

static void setup(void)
{
	cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
}

static void teardown(void)
{
	close(sv[0]);
	if (sv[1] >= 0)
		close(sv[1]);
}

TestSuite(ctl, .init = setup, .fini = teardown);

Test(ctl, round_trip)
{
	json_object *req = gpup_ctl_request(GPUP_CTL_M_CREATE), *got = NULL;

	json_object_object_add(req, GPUP_CTL_F_TYPE, json_object_new_string("sim-4g-2"));
	cr_assert_eq(gpup_ctl_send(sv[0], req), 0);
	cr_assert_eq(gpup_ctl_recv(sv[1], &got), 0);
	cr_assert_str_eq(gpup_ctl_str(got, GPUP_CTL_F_METHOD, ""), "create");
	cr_assert_str_eq(gpup_ctl_str(got, GPUP_CTL_F_TYPE, ""), "sim-4g-2");
	cr_assert_eq(gpup_ctl_int(got, GPUP_CTL_F_VERSION, 0), GPUP_CTL_VERSION);
	cr_assert_eq(gpup_ctl_int(got, GPUP_CTL_F_TYPE, -7), -7, "mistyped field: default");
	json_object_put(req);
	json_object_put(got);
}

Test(ctl, failure_envelope)
{
	json_object *f = gpup_ctl_fail(ENOSPC, "gpu%d is full", 1), *ok;

	cr_assert(json_object_object_get_ex(f, GPUP_CTL_F_OK, &ok));
	cr_assert_not(json_object_get_boolean(ok));
	cr_assert_str_eq(gpup_ctl_str(f, GPUP_CTL_F_ERROR, ""), "gpu1 is full");
	cr_assert_str_eq(gpup_ctl_str(f, GPUP_CTL_F_CODE, ""), "ENOSPC");
	json_object_put(f);
	cr_assert_str_eq(gpup_ctl_errno_name(EEXIST), "EEXIST");
	cr_assert_str_eq(gpup_ctl_errno_name(12345), "EIO");
}

Test(ctl, recv_rejects_bad_input)
{
	json_object *got = NULL;

	cr_assert_eq(write(sv[0], "[1,2]\n", 6), 6);
	cr_assert_eq(gpup_ctl_recv(sv[1], &got), -EPROTO, "an array is not a request");
	cr_assert_eq(write(sv[0], "{\"a\":\n", 6), 6);
	cr_assert_eq(gpup_ctl_recv(sv[1], &got), -EPROTO, "truncated JSON");
	cr_assert_eq(write(sv[0], "{\"a\":1", 6), 6);
	close(sv[0]);
	sv[0] = socket(AF_UNIX, SOCK_STREAM, 0);
	cr_assert_eq(gpup_ctl_recv(sv[1], &got), -ECONNRESET, "EOF before the newline");
}

static char big[GPUP_CTL_MAX_MSG + 4096];

static void *write_big(void *arg)
{
	size_t off = 0;

	(void)arg;
	while (off < sizeof(big)) {
		ssize_t n = send(sv[0], big + off, sizeof(big) - off, MSG_NOSIGNAL);

		if (n <= 0)
			break;
		off += (size_t)n;
	}
	return NULL;
}

Test(ctl, recv_caps_the_size)
{
	json_object *got = NULL;
	pthread_t t;

	memset(big, ' ', sizeof(big));
	cr_assert_eq(pthread_create(&t, NULL, write_big, NULL), 0);
	cr_assert_eq(gpup_ctl_recv(sv[1], &got), -EPROTO);
	shutdown(sv[1], SHUT_RDWR);
	pthread_join(t, NULL);
}

Test(ctl, no_daemon)
{
	json_object *req = gpup_ctl_request(GPUP_CTL_M_LIST), *rep = NULL;

	cr_assert_eq(gpup_ctl_call("/nonexistent-gpup-dir", req, &rep), -ENOENT);
	json_object_put(req);
}
