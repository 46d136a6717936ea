// SPDX-License-Identifier: MIT
/*
 * vfu/'s vfio-user client against a server that stops answering, on a
 * socketpair, without KVM or a daemon: with a timeout set, a call returns
 * -ETIMEDOUT in about that time instead of waiting for ever; the client
 * is then out of step for good, so a late reply is never taken for the
 * answer to a later request (every later call is -ENOTCONN and sends
 * nothing); a server that hangs up is -ECONNRESET, then -ENOTCONN.  And
 * the client's side of memory mapped without an fd: the server's
 * DMA_READ / DMA_WRITE answered from the window, between a request and
 * its reply or between calls.
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

/* A command of the server's, written to the client's socket. */
static void server_cmd(uint16_t id, uint16_t cmd, uint64_t addr, uint64_t count,
		       const void *data)
{
	struct {
		struct vfio_user_header h;
		struct vfio_user_dma_rw rw;
	} m = { .h = { .msg_id = id, .command = cmd,
		       .msg_size = (uint32_t)(sizeof(m) + (data ? count : 0)) },
		.rw = { .addr = addr, .count = count } };

	cr_assert_eq(write(srv, &m, sizeof(m)), (ssize_t)sizeof(m));
	if (data)
		cr_assert_eq(write(srv, data, count), (ssize_t)count);
}

static void server_reply(uint16_t id, uint16_t cmd)
{
	struct vfio_user_header h = { .msg_id = id, .command = cmd, .msg_size = sizeof(h),
				      .flags = VFIO_USER_F_TYPE_REPLY };

	cr_assert_eq(write(srv, &h, sizeof(h)), (ssize_t)sizeof(h));
}

/* The next message the client sent: its header, its payload into buf. */
static struct vfio_user_header client_msg(void *buf, size_t size)
{
	struct vfio_user_header h;

	cr_assert_eq(recv(srv, &h, sizeof(h), MSG_WAITALL), (ssize_t)sizeof(h));
	cr_assert_leq(h.msg_size - sizeof(h), size);
	if (h.msg_size > sizeof(h))
		cr_assert_eq(recv(srv, buf, h.msg_size - sizeof(h), MSG_WAITALL),
			     (ssize_t)(h.msg_size - sizeof(h)));
	return h;
}

/* Memory mapped without an fd: the server's DMA_READ / DMA_WRITE, sent
 * between a request and its reply (the spec allows it) or while no call
 * waits, are answered from the window, inside it and its prot only. */
Test(vfu_client, dma_read_and_write_from_memory_mapped_without_an_fd)
{
	static uint8_t ram[8192];
	uint8_t buf[256];
	struct vfio_user_dma_rw *rw = (void *)buf;
	struct vfio_user_header h;
	const uint64_t iova = 0x100000;

	for (size_t i = 0; i < sizeof(ram); i++)
		ram[i] = (uint8_t)i;
	drain();
	/* A read may come before DMA_MAP's reply: the window is known. */
	server_cmd(0x100, VFIO_USER_DMA_READ, iova + 16, 8, NULL);
	server_reply(1, VFIO_USER_DMA_MAP);
	cr_assert_eq(vfu_client_dma_map_mem(c, ram, iova, sizeof(ram),
					    VFIO_USER_DMA_F_READ | VFIO_USER_DMA_F_WRITE), 0);
	h = client_msg(buf, sizeof(buf));
	cr_assert_eq(h.command, VFIO_USER_DMA_MAP);
	cr_assert_eq(((struct vfio_user_dma_map *)buf)->addr, iova);
	h = client_msg(buf, sizeof(buf));
	cr_assert_eq(h.msg_id, 0x100);
	cr_assert_eq(h.command, VFIO_USER_DMA_READ);
	cr_assert_eq(h.flags, VFIO_USER_F_TYPE_REPLY);
	cr_assert_eq(h.msg_size, sizeof(h) + sizeof(*rw) + 8);
	cr_assert_eq(rw->addr, iova + 16);
	cr_assert_eq(rw->count, 8);
	cr_assert_arr_eq(rw->data, ram + 16, 8);

	/* A write, a read past the window, then the reply to a reset. */
	server_cmd(0x101, VFIO_USER_DMA_WRITE, iova + 100, 4, "\xde\xad\xbe\xef");
	server_cmd(0x102, VFIO_USER_DMA_READ, iova + sizeof(ram) - 4, 8, NULL);
	server_cmd(0x103, VFIO_USER_DEVICE_RESET, 0, 0, NULL);
	server_reply(2, VFIO_USER_DEVICE_RESET);
	cr_assert_eq(vfu_client_reset(c), 0);
	cr_assert_not(vfu_client_broken(c));
	cr_assert_arr_eq(ram + 100, "\xde\xad\xbe\xef", 4);
	cr_assert_eq(client_msg(buf, sizeof(buf)).command, VFIO_USER_DEVICE_RESET);
	h = client_msg(buf, sizeof(buf));
	cr_assert_eq(h.msg_id, 0x101);
	cr_assert_eq(h.msg_size, sizeof(h) + sizeof(*rw));
	cr_assert_eq(rw->count, 4);
	h = client_msg(buf, sizeof(buf));
	cr_assert_eq(h.msg_id, 0x102);
	cr_assert_eq(h.flags, VFIO_USER_F_TYPE_REPLY | VFIO_USER_F_ERROR);
	cr_assert_eq(h.error_no, EFAULT);
	h = client_msg(buf, sizeof(buf));
	cr_assert_eq(h.msg_id, 0x103);
	cr_assert_eq(h.error_no, ENOSYS, "no other command of the server's is served");

	/* Between calls: vfu_client_serve. */
	cr_assert_eq(vfu_client_serve(c), 0, "nothing waiting");
	server_cmd(0x104, VFIO_USER_DMA_READ, iova + 100, 4, NULL);
	cr_assert_eq(vfu_client_serve(c), 1);
	h = client_msg(buf, sizeof(buf));
	cr_assert_eq(h.msg_id, 0x104);
	cr_assert_arr_eq(rw->data, "\xde\xad\xbe\xef", 4);

	/* After DMA_UNMAP the window is gone. */
	server_reply(3, VFIO_USER_DMA_UNMAP);
	cr_assert_eq(vfu_client_dma_unmap(c, iova, sizeof(ram)), 0);
	client_msg(buf, sizeof(buf));
	server_cmd(0x105, VFIO_USER_DMA_WRITE, iova, 4, "gone");
	cr_assert_eq(vfu_client_serve(c), 1);
	h = client_msg(buf, sizeof(buf));
	cr_assert_eq(h.error_no, EFAULT);
	cr_assert_eq(ram[0], 0);

	/* A reply no call waits for is out of step. */
	server_reply(9, VFIO_USER_DEVICE_RESET);
	cr_assert_eq(vfu_client_serve(c), -EPROTO);
	cr_assert(vfu_client_broken(c));
}

Test(vfu_client, dma_map_mem_checks_its_window)
{
	static uint8_t ram[4096];

	drain();
	cr_assert_eq(vfu_client_dma_map_mem(c, NULL, 0, 4096, VFIO_USER_DMA_F_READ), -EINVAL);
	cr_assert_eq(vfu_client_dma_map_mem(c, ram, 0, 0, VFIO_USER_DMA_F_READ), -EINVAL);
	cr_assert_eq(vfu_client_dma_map_mem(c, ram, UINT64_MAX - 10, 4096, VFIO_USER_DMA_F_READ),
		     -EINVAL);
	cr_assert_eq(vfu_client_dma_map_mem(c, ram, 0, 4096, 4), -EINVAL);
	/* A refused map leaves no window behind. */
	{
		struct vfio_user_header e = { .msg_id = 1, .command = VFIO_USER_DMA_MAP,
					      .msg_size = sizeof(e), .error_no = EEXIST,
					      .flags = VFIO_USER_F_TYPE_REPLY | VFIO_USER_F_ERROR };
		uint8_t buf[128];

		cr_assert_eq(write(srv, &e, sizeof(e)), (ssize_t)sizeof(e));
		cr_assert_eq(vfu_client_dma_map_mem(c, ram, 0, 4096, VFIO_USER_DMA_F_READ),
			     -EEXIST);
		client_msg(buf, sizeof(buf));
		server_cmd(0x100, VFIO_USER_DMA_READ, 0, 4, NULL);
		cr_assert_eq(vfu_client_serve(c), 1);
		cr_assert_eq(client_msg(buf, sizeof(buf)).error_no, EFAULT);
	}
}

/* A MIG_DATA_READ reply from the fake server: header, size, data. */
static void server_mig_reply(uint16_t id, uint32_t size, const void *data, uint32_t claimed)
{
	struct {
		struct vfio_user_header h;
		struct vfio_user_mig_data d;
	} m = { .h = { .msg_id = id, .command = VFIO_USER_MIG_DATA_READ,
		       .msg_size = (uint32_t)(sizeof(m) + size), .flags = VFIO_USER_F_TYPE_REPLY },
		.d = { .argsz = (uint32_t)sizeof(m.d) + claimed, .size = claimed } };

	cr_assert_eq(write(srv, &m, sizeof(m)), (ssize_t)sizeof(m));
	if (size)
		cr_assert_eq(write(srv, data, size), (ssize_t)size);
}

/* MIG_DATA_READ's data lands in the caller's buffer, exactly, with a
 * command of the server's answered on the way; a short read is the end
 * of the stream; an error reply keeps the client in step; a reply that
 * claims more than was asked for breaks the connection. */
Test(vfu_client, mig_read_into_the_callers_buffer)
{
	static uint8_t ram[4096];
	uint8_t data[3000], got[3000 + 16], buf[256];
	struct vfio_user_header err = { .msg_id = 3, .command = VFIO_USER_MIG_DATA_READ,
					.msg_size = sizeof(err),
					.flags = VFIO_USER_F_TYPE_REPLY | VFIO_USER_F_ERROR,
					.error_no = EINVAL };

	for (size_t i = 0; i < sizeof(data); i++)
		data[i] = (uint8_t)(i * 7 + 1);
	for (size_t i = 0; i < sizeof(ram); i++)
		ram[i] = (uint8_t)~i;
	drain();
	server_reply(1, VFIO_USER_DMA_MAP);
	cr_assert_eq(vfu_client_dma_map_mem(c, ram, 0x10000, sizeof(ram), VFIO_USER_DMA_F_READ),
		     0);
	client_msg(buf, sizeof(buf));

	memset(got, 0xee, sizeof(got));
	server_cmd(0x200, VFIO_USER_DMA_READ, 0x10000 + 8, 16, NULL);
	server_mig_reply(2, sizeof(data), data, sizeof(data));
	cr_assert_eq(vfu_client_mig_read(c, got, sizeof(data)), (int)sizeof(data));
	cr_assert_arr_eq(got, data, sizeof(data));
	cr_assert_eq(got[sizeof(data)], 0xee, "nothing past what came");
	cr_assert_not(vfu_client_broken(c));
	cr_assert_eq(client_msg(buf, sizeof(buf)).command, VFIO_USER_MIG_DATA_READ);
	cr_assert_eq(client_msg(buf, sizeof(buf)).msg_id, 0x200, "the server's read answered");
	cr_assert_arr_eq(((struct vfio_user_dma_rw *)buf)->data, ram + 8, 16);

	cr_assert_eq(write(srv, &err, sizeof(err)), (ssize_t)sizeof(err));
	cr_assert_eq(vfu_client_mig_read(c, got, 64), -EINVAL);
	cr_assert_not(vfu_client_broken(c));
	client_msg(buf, sizeof(buf));

	server_mig_reply(4, 10, data, 10);
	cr_assert_eq(vfu_client_mig_read(c, got, 64), 10, "a short read: the end of the data");
	cr_assert_arr_eq(got, data, 10);
	client_msg(buf, sizeof(buf));

	server_mig_reply(5, 100, data, 100);
	cr_assert_eq(vfu_client_mig_read(c, got, 64), -EPROTO, "more than was asked for");
	cr_assert(vfu_client_broken(c));
	cr_assert_eq(vfu_client_mig_read(c, got, 64), -ENOTCONN);
}
