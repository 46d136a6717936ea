// SPDX-License-Identifier: MIT
/*
 * vfu_msg_splicev: a reply whose big pieces go to the socket by reference
 * must arrive as vfu_msg_sendv would send it, byte for byte and in order,
 * whatever the mix of small (copied) and big (spliced) pieces and however
 * the pipe's room splits them; a reader that has gone is an error, not a
 * signal that kills the server.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "vfu/vfu.h"

struct reader {
	int fd;
	uint8_t *buf;
	size_t want, got;
};

static void *read_all(void *arg)
{
	struct reader *r = arg;

	while (r->got < r->want) {
		ssize_t n = read(r->fd, r->buf + r->got, r->want - r->got);

		if (n <= 0)
			break;
		r->got += (size_t)n;
	}
	return NULL;
}

static void fill(uint8_t *p, size_t n, uint32_t seed)
{
	for (size_t i = 0; i < n; i++)
		p[i] = (uint8_t)((i * 131 + seed * 7) ^ (i >> 9));
}

Test(vfu_splice, pieces_arrive_in_order_bit_for_bit)
{
	/* Small pieces between big ones, big ones at odd offsets and
	 * lengths, and more than a pipe of 1 MiB holds in all. */
	static const size_t len[] = { 16, 3 << 20, 24, 4096, 1, 1000000, 4095, 8192 + 5, 48 };
	const unsigned int n = sizeof(len) / sizeof(len[0]);
	struct iovec iov[sizeof(len) / sizeof(len[0])];
	struct vfio_user_header h = { .msg_id = 7, .command = VFIO_USER_MIG_DATA_READ };
	size_t total = sizeof(h), at = sizeof(h);
	uint8_t *mem = malloc(8 << 20), *p = mem + 3;
	int sv[2], pf[2];
	struct reader r;
	pthread_t th;

	cr_assert_not_null(mem);
	for (unsigned int i = 0; i < n; i++) {
		fill(p, len[i], i);
		iov[i] = (struct iovec){ p, len[i] };
		p += len[i] + 17;
		total += len[i];
	}
	h.msg_size = (uint32_t)total;
	cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	cr_assert_eq(vfu_splice_pipe(pf), 0);
	r = (struct reader){ sv[1], malloc(total), total, 0 };
	pthread_create(&th, NULL, read_all, &r);
	cr_assert_eq(vfu_msg_splicev(sv[0], pf, &h, iov, n, NULL), 0);
	pthread_join(th, NULL);
	cr_assert_eq(r.got, total);
	cr_assert_eq(memcmp(r.buf, &h, sizeof(h)), 0, "the header first");
	for (unsigned int i = 0; i < n; i++) {
		cr_assert_eq(memcmp(r.buf + at, iov[i].iov_base, len[i]), 0, "piece %u", i);
		at += len[i];
	}
	/* The pipe is empty again: a second reply through it is whole too. */
	r.got = 0;
	pthread_create(&th, NULL, read_all, &r);
	cr_assert_eq(vfu_msg_splicev(sv[0], pf, &h, iov, n, NULL), 0);
	pthread_join(th, NULL);
	cr_assert_eq(r.got, total);
	cr_assert_eq(memcmp(r.buf + sizeof(h) + 16, iov[1].iov_base, len[1]), 0);
	close(sv[0]);
	close(sv[1]);
	close(pf[0]);
	close(pf[1]);
	free(r.buf);
	free(mem);
}

Test(vfu_splice, a_gone_reader_is_an_error)
{
	struct vfio_user_header h = { .msg_id = 1, .msg_size = sizeof(h) + (1 << 20) };
	uint8_t *big = calloc(1, 1 << 20);
	struct iovec iov = { big, 1 << 20 };
	int sv[2], pf[2];

	/* What vfu_server_create arranges for a serving process. */
	signal(SIGPIPE, SIG_IGN);
	cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	cr_assert_eq(vfu_splice_pipe(pf), 0);
	close(sv[1]);
	cr_assert_eq(vfu_msg_splicev(sv[0], pf, &h, &iov, 1, NULL), -EPIPE);
	close(sv[0]);
	close(pf[0]);
	close(pf[1]);
	free(big);
}

/* A reply whose end stays in the pipe (the server's way while the device
 * prepares the next one): the call returns without a reader, every byte
 * in the pipe or the socket; a non-blocking socket takes more of it when
 * the reader makes room and never waits for it; the flush sends the rest;
 * and a message sent after the flush arrives after the whole reply. */
Test(vfu_splice, a_reply_left_in_the_pipe_comes_whole_and_first)
{
	const size_t big = 1000000;
	struct vfio_user_header h = { .msg_id = 9, .command = VFIO_USER_MIG_DATA_READ,
				      .msg_size = (uint32_t)(sizeof(h) + big) };
	struct vfio_user_header after = { .msg_id = 10, .msg_size = sizeof(after) };
	const size_t total = sizeof(h) + big + sizeof(after);
	uint8_t *mem = malloc(big);
	struct iovec iov = { mem, big };
	size_t left = 0, before;
	int sv[2], pf[2], fl, sndbuf = 64 << 10;
	struct reader r;
	pthread_t th;

	cr_assert_not_null(mem);
	fill(mem, big, 3);
	cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	cr_assert_eq(setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof(sndbuf)), 0);
	cr_assert_eq(vfu_splice_pipe(pf), 0);
	cr_assert_eq(vfu_msg_splicev(sv[0], pf, &h, &iov, 1, &left), 0, "waited for no one");
	cr_assert_gt(left, 0, "a socket of 64 KiB holds all of a MiB");
	cr_assert_leq(left, sizeof(h) + big);
	/* Nobody reads: a push takes what fits and returns. */
	fl = fcntl(sv[0], F_GETFL);
	cr_assert_eq(fcntl(sv[0], F_SETFL, fl | O_NONBLOCK), 0);
	before = left;
	cr_assert_eq(vfu_splice_push(sv[0], pf, &left), 0);
	cr_assert_leq(left, before);
	cr_assert_gt(left, 0);
	cr_assert_eq(fcntl(sv[0], F_SETFL, fl), 0);
	r = (struct reader){ sv[1], malloc(total), total, 0 };
	cr_assert_not_null(r.buf);
	pthread_create(&th, NULL, read_all, &r);
	cr_assert_eq(vfu_splice_flush(sv[0], pf, &left), 0);
	cr_assert_eq(left, 0);
	cr_assert_eq(vfu_msg_send(sv[0], &after, NULL, 0, NULL, 0), 0);
	pthread_join(th, NULL);
	cr_assert_eq(r.got, total);
	cr_assert_eq(memcmp(r.buf, &h, sizeof(h)), 0);
	cr_assert_eq(memcmp(r.buf + sizeof(h), mem, big), 0, "the reply bit for bit");
	cr_assert_eq(memcmp(r.buf + sizeof(h) + big, &after, sizeof(after)), 0,
		     "the next message after the whole reply");
	close(sv[0]);
	close(sv[1]);
	close(pf[0]);
	close(pf[1]);
	free(r.buf);
	free(mem);
}
