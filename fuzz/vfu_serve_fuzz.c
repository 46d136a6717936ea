// SPDX-License-Identifier: MIT
/*
 * libFuzzer harness for the vfio-user server's message handling at speed:
 * one partition (sim GPU, IOMMU domain, vgpu, server) lives across all
 * inputs, and each input is a connection served on the fuzzer's own
 * thread, message by message (vfu_server_serve_one), with no thread or
 * partition made per input.  The input's messages (built around a fuzzed
 * command and payload, or raw bytes; the format is vfu_msg_fuzz's, so the
 * two share seeds) are written into a socketpair with 0..4 fds each
 * (memfds of fuzzed size, eventfds, pipes), optionally after a proper
 * VERSION; the server reads them to the end of the stream; the replies
 * are drained after each one, checked as well-formed replies and their
 * fds closed.
 *
 * What vfu_msg_fuzz checks at the end of every session is checked here
 * too, as cheaply as it can be: after each input the connection's
 * leftovers are dropped as a hang-up drops them, the device is reset, and
 * the IOMMU domain must be empty; every 256 inputs the VRAM around the
 * partition must be byte-identical to what it was and no fd may have
 * leaked.  State the device keeps across inputs (VRAM contents, counters)
 * is what makes this harness fast; vfu_msg_fuzz keeps the per-session
 * teardown checks.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/vfio.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include "fuzz/fuzz_util.h"
#include "gpup/gpu/gpu.h"
#include "gpup/vgpu/vgpu.h"
#include "iommu/iommu.h"
#include "uapi/vfio_user.h"
#include "vfu/vfu.h"
#include "vfu/vfu_int.h"

#define MIB (1ull << 20)
#define GPU_VRAM (4 * MIB)
#define PART_OFF (1 * MIB)
#define PART_SIZE (1 * MIB)
#define MAX_MSGS 64
#define CHECK_EVERY 256u

static struct gpup_gpu *gpu;
static uint8_t *vram, *vram_ref;
static struct iommu_domain *dom;
static struct vgpu *vg;
static struct vfu_server *srv;
static unsigned int inputs;
static uint8_t *reply_buf;

static void init_once(void)
{
	struct gpup_gpu_cfg gc = { .index = 0, .vram_size = GPU_VRAM, .ncompute = 1, .ncopy = 1 };
	struct iommu_domain_cfg dc = { .name = "fuzz", .max_table_bytes = VGPU_IOMMU_TABLE_BYTES };

	gpu = gpup_sim_gpu_create(&gc);
	fz_check(gpu, "sim GPU: %s", strerror(errno));
	vram = gpup_gpu_vram_map(gpu);
	vram_ref = malloc(GPU_VRAM);
	reply_buf = malloc(VFU_SERVER_MAX_MSG);
	fz_check(vram && vram_ref && reply_buf, "VRAM");
	for (uint64_t i = 0; i < GPU_VRAM; i++)
		vram[i] = (uint8_t)(i * 131 + (i >> 12));
	memcpy(vram_ref, vram, GPU_VRAM);
	dom = iommu_domain_create(&dc);
	fz_check(dom, "domain");
	struct vgpu_cfg vc = { .gpu = gpu, .vram_offset = PART_OFF, .vram_size = PART_SIZE,
			       .iommu = dom, .name = "fuzz" };

	vg = vgpu_create(&vc);
	fz_check(vg, "vgpu: %s", strerror(errno));
	srv = vgpu_serve(vg, fz_log(), NULL);
	fz_check(srv, "server: %s", strerror(errno));
}

/* kind 1: memfds, 2: eventfds, 3: a memfd, an eventfd, a pipe, ... */
static int make_fd(unsigned int kind, unsigned int i, uint8_t shape)
{
	int fd, p[2];

	switch ((kind == 3 ? i : kind - 1) % 3) {
	case 0: /* a memfd of 0..15 pages */
		fd = memfd_create("fuzz-dma", MFD_CLOEXEC | (shape & 0x80 ? MFD_ALLOW_SEALING : 0));
		fz_check(fd >= 0 && ftruncate(fd, (off_t)(shape & 15) * 4096) == 0, "memfd");
		return fd;
	case 1:
		fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
		fz_check(fd >= 0, "eventfd: %s", strerror(errno));
		return fd;
	default:
		fz_check(pipe2(p, O_CLOEXEC) == 0, "pipe");
		close(p[1]);
		return p[0];
	}
}

/* Queue len bytes with n fds into the socket; the server reads later. */
static bool send_with_fds(int s, const void *buf, size_t len, uint8_t spec, uint8_t shape)
{
	union {
		char b[CMSG_SPACE(4 * sizeof(int))];
		struct cmsghdr align;
	} ctl;
	struct iovec iov = { (void *)buf, len };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };
	unsigned int kind = spec & 3, n = kind ? 1 + (spec >> 2) % 4 : 0;
	int fds[4];
	ssize_t w;

	for (unsigned int i = 0; i < n; i++)
		fds[i] = make_fd(kind, i, shape);
	if (n) {
		memset(ctl.b, 0, sizeof(ctl.b));
		mh.msg_control = ctl.b;
		mh.msg_controllen = CMSG_SPACE(n * sizeof(int));
		struct cmsghdr *c = CMSG_FIRSTHDR(&mh);

		c->cmsg_level = SOL_SOCKET;
		c->cmsg_type = SCM_RIGHTS;
		c->cmsg_len = CMSG_LEN(n * sizeof(int));
		memcpy(CMSG_DATA(c), fds, n * sizeof(int));
	}
	w = sendmsg(s, &mh, MSG_NOSIGNAL | MSG_DONTWAIT);
	for (unsigned int i = 0; i < n; i++)
		close(fds[i]);
	return w == (ssize_t)len;
}

/* One message: a header around a fuzzed command and payload, or raw
 * bytes with any framing at all. */
static size_t next_msg(struct fz_in *in, uint8_t *buf, uint8_t op, uint16_t id)
{
	struct vfio_user_header *h = (void *)buf;
	size_t len;

	if (op & 1) {
		*h = (struct vfio_user_header){ .msg_id = id };
		h->command = fz_u8(in) % (VFIO_USER_MAX + 2);
		h->flags = op & 0x20 ? fz_u8(in) & 0x3f : 0;
		len = fz_bytes(in, h + 1, fz_u16(in) % 2048);
		h->msg_size = (uint32_t)(sizeof(*h) + len);
		return sizeof(*h) + len;
	}
	return fz_bytes(in, buf, fz_u16(in) % 2048);
}

/* Every reply waiting on the client's end: well formed, fds closed. */
static void drain(int s)
{
	struct vfu_msg m;

	while (vfu_msg_recv(s, &m, reply_buf, VFU_SERVER_MAX_MSG - sizeof(m.hdr)) == 0) {
		const struct vfio_user_header *h = &m.hdr;

		if (fz_vfu_dma_request(&m))
			continue;
		vfu_msg_close_fds(&m);
		fz_check((h->flags & VFIO_USER_F_TYPE_MASK) == VFIO_USER_F_TYPE_REPLY,
			 "reply flags %#x", h->flags);
		if (h->flags & VFIO_USER_F_ERROR)
			fz_check(h->msg_size == sizeof(*h) && h->error_no > 0 &&
					 h->error_no < 4096,
				 "error reply size %u errno %u", h->msg_size, h->error_no);
		else
			fz_check(h->error_no == 0, "success reply with errno %u", h->error_no);
	}
	vfu_msg_close_fds(&m);
}

/* The stream is queued whole before the server reads it, so the
 * socket's buffers must hold the largest replies (REGION_READ up to the
 * transfer size) without a reader. */
static void buffers(int sv[2])
{
	int big = 8 * MIB;

	if (setsockopt(sv[0], SOL_SOCKET, SO_SNDBUFFORCE, &big, sizeof(big)))
		setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &big, sizeof(big));
	if (setsockopt(sv[1], SOL_SOCKET, SO_SNDBUFFORCE, &big, sizeof(big)))
		setsockopt(sv[1], SOL_SOCKET, SO_SNDBUF, &big, sizeof(big));
	struct timeval tv = { .tv_sec = 1 };

	/* A reply the buffer cannot take ends the connection, not the run. */
	setsockopt(sv[0], SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	fcntl(sv[1], F_SETFL, O_NONBLOCK);
}

/* The input is vfu_msg_fuzz's, so the two share seeds: a mode byte (1:
 * VERSION first; 8: a guest RAM image follows, skipped here, where there
 * is no guest), then per message an fd spec, an fd shape, an op byte and
 * the message; vfu_msg's guest stores (op 0x40) are skipped too. */
static void session(struct fz_in *in)
{
	static uint8_t buf[4096];
	uint8_t mode = fz_u8(in);
	int sv[2], rc = 0;

	if (mode & 8)
		fz_bytes(in, buf, fz_u16(in) % sizeof(buf));
	fz_check(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == 0, "socketpair");
	buffers(sv);
	bool up = !(mode & 1) || send_with_fds(sv[1], buf, fz_vfu_version_msg(buf, 0), 0, 0);

	for (uint16_t i = 1; up && in->n && i <= MAX_MSGS; i++) {
		uint8_t spec = fz_u8(in), shape = fz_u8(in), op = fz_u8(in);

		if (op & 0x40) {
			fz_u16(in);
			fz_bytes(in, buf, fz_u8(in) % 65);
			continue;
		}
		size_t len = next_msg(in, buf, op, i);

		up = send_with_fds(sv[1], buf, len, spec, shape);
	}
	shutdown(sv[1], SHUT_WR);
	while (rc == 0) {
		rc = vfu_server_serve_one(srv, sv[0]);
		drain(sv[1]);
	}
	close(sv[0]);
	drain(sv[1]);
	close(sv[1]);
}

/* After every input as after a hang-up: the connection's leftovers
 * dropped, the device reset, nothing mapped.  Every CHECK_EVERY inputs,
 * also the VRAM around the partition and the fds: counted around the
 * session, because libFuzzer itself may open some between inputs (its
 * symbolizer's pipes). */
static void check_after(unsigned int fds_before)
{
	struct iommu_stats st;

	vfu_server_conn_reset(srv);
	vgpu_reset(vg);
	iommu_get_stats(dom, &st);
	fz_check(st.mapped_bytes == 0, "%llu bytes still mapped after the client left",
		 (unsigned long long)st.mapped_bytes);
	if (!fds_before)
		return;
	fz_check(memcmp(vram, vram_ref, PART_OFF) == 0 &&
			 memcmp(vram + PART_OFF + PART_SIZE, vram_ref + PART_OFF + PART_SIZE,
				GPU_VRAM - PART_OFF - PART_SIZE) == 0,
		 "VRAM outside the partition changed");
	fz_check(fz_count_fds() == fds_before, "fds: %u, %u before the input", fz_count_fds(),
		 fds_before);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fz_in in = { data, size };

	unsigned int fds_before;

	if (!gpu)
		init_once();
	fds_before = inputs++ % CHECK_EVERY ? 0 : fz_count_fds();
	session(&in);
	check_after(fds_before);
	return 0;
}
