// SPDX-License-Identifier: MIT
/*
 * vfu/'s vfio-user client against a server that stops answering, on a
 * socketpair, without KVM or a daemon: with a timeout set, a call returns
 * -ETIMEDOUT in about that time instead of waiting for ever; the client
 * is then out of step for good, so a late reply is never taken for the
 * answer to a later request (every later call is -ENOTCONN and sends
 * nothing); a server that hangs up is -ECONNRESET, then -ENOTCONN.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "vfu/vfu.h"

static int srv = -1;
static struct vfu_client *c;

static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* A client whose VERSION reply is already waiting in the socket. */
static void setup(void)
{
	struct {
		struct vfio_user_header h;
		struct vfio_user_version v;
	} reply = {
		.h = { .msg_id = 0, .command = VFIO_USER_VERSION,
		       .msg_size = sizeof(reply), .flags = VFIO_USER_F_TYPE_REPLY },
		.v = { .major = VFIO_USER_MAJOR, .minor = VFIO_USER_MINOR },
	};
	int sv[2], err = 0;

	cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	cr_assert_eq(write(sv[1], &reply, sizeof(reply)), (ssize_t)sizeof(reply));
	srv = sv[1];
	c = vfu_client_open_fd(sv[0], &err);
	cr_assert_not_null(c, "open: %d", err);
	cr_assert_eq(vfu_client_set_timeout(c, 200), 0);
}

static void teardown(void)
{
	vfu_client_close(c);
	if (srv >= 0)
		close(srv);
}

TestSuite(vfu_client, .init = setup, .fini = teardown, .timeout = 20);

/* What the server has been sent since the last call: bytes, drained. */
static ssize_t drain(void)
{
	char buf[4096];
	ssize_t n = recv(srv, buf, sizeof(buf), MSG_DONTWAIT);

	return n < 0 ? 0 : n;
}

Test(vfu_client, a_silent_server_times_out_once_then_never_again)
{
	uint32_t v = 0;
	uint64_t t0 = now_ms(), took;

	drain();
	cr_assert_not(vfu_client_broken(c));
	cr_assert_eq(vfu_client_region_read(c, 0, 0, &v, 4), -ETIMEDOUT);
	took = now_ms() - t0;
	cr_assert(took >= 190 && took < 2000, "took %llu ms", (unsigned long long)took);
	cr_assert_eq(drain(), (ssize_t)(sizeof(struct vfio_user_header) +
					sizeof(struct vfio_user_region_access)),
		     "the request went out");
	cr_assert(vfu_client_broken(c));
	/* The late reply arrives: it must not answer the next request. */
	{
		struct {
			struct vfio_user_header h;
			struct vfio_user_region_access a;
			uint32_t data;
		} late = { .h = { .msg_id = 1, .command = VFIO_USER_REGION_READ,
				  .msg_size = sizeof(late), .flags = VFIO_USER_F_TYPE_REPLY },
			   .a = { .count = 4 }, .data = 0x600d };

		cr_assert_eq(write(srv, &late, sizeof(late)), (ssize_t)sizeof(late));
	}
	cr_assert_eq(vfu_client_region_read(c, 0, 0, &v, 4), -ENOTCONN);
	cr_assert_eq(vfu_client_region_write(c, 0, 0, &v, 4), -ENOTCONN);
	cr_assert_eq(v, 0);
	cr_assert_eq(drain(), 0, "nothing more was sent");
}

Test(vfu_client, a_server_that_hangs_up)
{
	uint32_t v = 0;

	close(srv);
	srv = -1;
	cr_assert_eq(vfu_client_region_read(c, 0, 0, &v, 4), -EPIPE);
	cr_assert(vfu_client_broken(c));
	cr_assert_eq(vfu_client_reset(c), -ENOTCONN);
}

Test(vfu_client, an_error_reply_keeps_the_client_in_step)
{
	struct vfio_user_header err = { .msg_id = 1, .command = VFIO_USER_DEVICE_RESET,
					.msg_size = sizeof(err),
					.flags = VFIO_USER_F_TYPE_REPLY | VFIO_USER_F_ERROR,
					.error_no = EINVAL };

	cr_assert_eq(write(srv, &err, sizeof(err)), (ssize_t)sizeof(err));
	cr_assert_eq(vfu_client_reset(c), -EINVAL);
	cr_assert_not(vfu_client_broken(c));
	err.msg_id = 2;
	err.flags = VFIO_USER_F_TYPE_REPLY;
	err.error_no = 0;
	cr_assert_eq(write(srv, &err, sizeof(err)), (ssize_t)sizeof(err));
	cr_assert_eq(vfu_client_reset(c), 0);
}
