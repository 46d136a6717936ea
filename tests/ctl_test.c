// SPDX-License-Identifier: MIT
/* Control-API framing and envelope, over a socketpair: no daemon. */
#include <criterion/criterion.h>
#include <errno.h>
#include <pthread.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "gpup/ctl/ctl.h"
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

/* A request that is not UTF-8 (here an invalid byte, an overlong '/', a
 * UTF-16 surrogate and a code point past U+10FFFF, all of which json-c
 * takes) is a bad request: the daemon would otherwise echo the bytes into
 * an error reply that is no longer JSON.  Found by fuzz/ctl_fuzz.c. */
Test(ctl, recv_rejects_what_is_not_utf8)
{
	static const char *const bad[] = {
		"{\"method\":\"\xff\"}\n", "{\"method\":\"\xc0\xaf\"}\n",
		"{\"method\":\"\xed\xa0\x80\"}\n", "{\"method\":\"\xf4\x90\x80\x80\"}\n",
		"{\"method\":\"\xe2\x82\"}\n",
	};
	json_object *got = NULL;

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		cr_assert_eq(write(sv[0], bad[i], strlen(bad[i])), (ssize_t)strlen(bad[i]));
		cr_assert_eq(gpup_ctl_recv(sv[1], &got), -EPROTO, "request %zu", i);
		cr_assert_null(got);
	}
	cr_assert_eq(write(sv[0], "{\"method\":\"\xe2\x82\xac\xf0\x9f\x98\x80\"}\n", 21), 21);
	cr_assert_eq(gpup_ctl_recv(sv[1], &got), 0, "well-formed UTF-8 is fine");
	cr_assert_str_eq(gpup_ctl_str(got, GPUP_CTL_F_METHOD, ""), "\xe2\x82\xac\xf0\x9f\x98\x80");
	json_object_put(got);
}

/* An error message is UTF-8 whatever it echoes, also when truncation cuts
 * a character in two. */
Test(ctl, failure_message_is_utf8)
{
	char name[199 * 3 + 1];
	json_object *f = gpup_ctl_fail(ENOSYS, "unknown method '%s'", "a\xff" "b");
	const char *msg;

	cr_assert_str_eq(gpup_ctl_str(f, GPUP_CTL_F_ERROR, ""), "unknown method 'a?b'");
	json_object_put(f);
	for (size_t i = 0; i < 199; i++)
		memcpy(name + 3 * i, "\xe2\x82\xac", 3);
	name[sizeof(name) - 1] = '\0';
	/* 511 bytes kept: "xy", 169 euro signs, two bytes of the 170th. */
	f = gpup_ctl_fail(ENOSYS, "xy%s", name);
	msg = gpup_ctl_str(f, GPUP_CTL_F_ERROR, "");
	cr_assert_eq(strlen(msg), 511);
	cr_assert_eq(memcmp(msg + 506, "\xe2\x82\xac", 3), 0);
	cr_assert_eq(msg[509], '?');
	cr_assert_eq(msg[510], '?');
	json_object_put(f);
}
