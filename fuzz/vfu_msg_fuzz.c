// SPDX-License-Identifier: MIT
/*
 * libFuzzer harness for the vfio-user server of one partition: the bytes a
 * hostile VMM can send.  Each input is a session on a fresh partition
 * (IOMMU domain, vgpu and server, in process, on a real sim GPU kept
 * across inputs) over a
 * socketpair: optionally a proper VERSION first, then up to 64 messages,
 * each either raw bytes (any framing at all) or a header built around a
 * fuzzed command and payload, with 0..19 fds attached (memfds of fuzzed
 * size, eventfds, pipes) so that SCM_RIGHTS handling, truncation and fd
 * ownership are exercised.  The memfds may start with a page of guest RAM
 * from the input (rings and packets), and the input may store into the
 * last one sent as a vCPU would (a producer index), so that engines run
 * DMA on memory the client maps and unmaps under them, or maps without an
 * fd (the input then carries the replies to the server's DMA_READ /
 * DMA_WRITE, right or wrong).  A reader thread drains the replies and
 * the server's own requests and checks that each is a well-formed reply (type,
 * size, error number), tries to resize every file they carry (BAR2's
 * VRAM: it must refuse) and closes their fds.
 *
 * A session may also have a second client try to attach while the first
 * is served, and may end with the partition destroyed under the client
 * instead of the client hanging up.
 *
 * After the session: the server has dropped the client's DMA (the IOMMU
 * domain is empty) and holds no fd it did not hold before; a fresh
 * connection still negotiates VERSION and answers DEVICE_GET_INFO and a
 * BAR0 read exactly; after teardown every fd is gone, the partition's
 * window reads as zeros (its VRAM went back with it) and the VRAM around
 * it is byte-identical to what it was.
 */
#include <errno.h>
#include <fcntl.h>
#include <json-c/json.h>
#include <linux/vfio.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fuzz/fuzz_util.h"
#include "gpup/gpu/gpu.h"
#include "gpup/vgpu/vgpu.h"
#include "iommu/iommu.h"
#include "uapi/gpup_vgpu.h"
#include "uapi/vfio_user.h"
#include "vfu/vfu.h"

#define MIB (1ull << 20)
#define GPU_VRAM (4 * MIB)
#define PART_OFF (1 * MIB)
#define PART_SIZE (1 * MIB)
#define MAX_MSGS 64
#define MAX_SEND_FDS 19u  /* more than the server takes (16) */

static struct gpup_gpu *gpu;
static uint8_t *vram, *vram_ref;

struct part {
	struct iommu_domain *dom;
	struct vgpu *vg;
	struct vfu_server *srv;
};

static void init_once(void)
{
	struct gpup_gpu_cfg gc = { .index = 0, .vram_size = GPU_VRAM, .ncompute = 1, .ncopy = 1 };

	if (gpu)
		return;
	gpu = gpup_sim_gpu_create(&gc);
	fz_check(gpu, "sim GPU: %s", strerror(errno));
	vram = gpup_gpu_vram_map(gpu);
	vram_ref = malloc(GPU_VRAM);
	fz_check(vram && vram_ref, "VRAM");
	for (uint64_t i = 0; i < GPU_VRAM; i++)
		vram[i] = (uint8_t)(i * 131 + (i >> 12));
	memcpy(vram_ref, vram, GPU_VRAM);
}

static void part_create(struct part *p)
{
	struct iommu_domain_cfg dc = { .name = "fuzz", .max_table_bytes = VGPU_IOMMU_TABLE_BYTES };

	p->dom = iommu_domain_create(&dc);
	fz_check(p->dom, "domain");
	struct vgpu_cfg vc = { .gpu = gpu, .vram_offset = PART_OFF, .vram_size = PART_SIZE,
			       .iommu = p->dom, .name = "fuzz" };

	p->vg = vgpu_create(&vc);
	fz_check(p->vg, "vgpu: %s", strerror(errno));
	p->srv = vgpu_serve(p->vg, fz_log(), NULL);
	fz_check(p->srv, "server: %s", strerror(errno));
}

static void part_destroy(struct part *p)
{
	vfu_server_destroy(p->srv);
	vgpu_destroy(p->vg);
	iommu_domain_destroy(p->dom);
}

/* ---- the client side of the socket ---- */

/* Every reply the server sends must be a well-formed reply. */
static void check_reply_hdr(const struct vfio_user_header *h)
{
	fz_check((h->flags & VFIO_USER_F_TYPE_MASK) == VFIO_USER_F_TYPE_REPLY,
		 "reply flags %#x", h->flags);
	fz_check(h->msg_size >= sizeof(*h) && h->msg_size <= VFU_SERVER_MAX_MSG,
		 "reply size %u", h->msg_size);
	if (h->flags & VFIO_USER_F_ERROR)
		fz_check(h->msg_size == sizeof(*h) && h->error_no > 0 && h->error_no < 4096,
			 "error reply size %u errno %u", h->msg_size, h->error_no);
	else
		fz_check(h->error_no == 0, "success reply with errno %u", h->error_no);
}

/* A hostile client tries to resize every file the server hands it
 * (BAR2's VRAM): the daemon touches that memory unguarded, so the file
 * must refuse.  Punching it is allowed and zeroes the partition's own
 * VRAM, under engines that may be running on it. */
static void resize_attempt(int fd)
{
	struct stat st;

	if (fstat(fd, &st) || !S_ISREG(st.st_mode))
		return;
	fz_check(ftruncate(fd, 0) < 0 && errno == EPERM, "a file from the server shrank");
	fz_check(ftruncate(fd, st.st_size + 4096) < 0 && errno == EPERM,
		 "a file from the server grew");
	fz_check(fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 0, st.st_size) == 0,
		 "punch: %s", strerror(errno));
}

/* Replies are received with vfu/'s framing; the files among their fds
 * are attacked, then every fd is closed.  The buffer is allocated once:
 * a fresh one per session cost a large mmap and munmap each input under
 * ASan; one reader runs at a time (session joins it). */
static void *reader(void *arg)
{
	static uint8_t *buf;
	int s = *(int *)arg, rc;
	struct vfu_msg m;

	if (!buf)
		buf = malloc(VFU_SERVER_MAX_MSG);
	fz_check(buf, "reply buffer");
	while ((rc = vfu_msg_recv(s, &m, buf, VFU_SERVER_MAX_MSG - sizeof(m.hdr))) == 0) {
		for (unsigned int i = 0; i < m.nfds; i++)
			resize_attempt(m.fds[i]);
		if (fz_vfu_dma_request(&m))
			continue;
		vfu_msg_close_fds(&m);
		check_reply_hdr(&m.hdr);
		fz_check(!m.fds_dropped, "a reply with more than %u fds", VFU_MAX_FDS);
	}
	vfu_msg_close_fds(&m);
	fz_check(rc != -EMSGSIZE, "reply size %u", m.hdr.msg_size);
	return NULL;
}

/* ---- fds to attach ---- */

/* Guest RAM as the session's memfds start: rings, packets and producer
 * indices for the engines to run while the client maps and unmaps. */
static uint8_t ram_image[4096];
static size_t ram_len;
/* The last memfd sent, kept so that the "guest" can store into it later
 * (a producer index after the queue is enabled), as a VMM's vCPU would. */
static int last_memfd = -1;

static int make_fd(unsigned int kind, unsigned int i, uint8_t shape)
{
	int fd, p[2];

	switch ((kind == 3 ? i : kind - 1) % 3) {
	case 0: /* a memfd of 0..15 pages, sealable or not */
		fd = memfd_create("fuzz-dma", MFD_CLOEXEC | (shape & 0x80 ? MFD_ALLOW_SEALING : 0));
		fz_check(fd >= 0, "memfd: %s", strerror(errno));
		fz_check(ftruncate(fd, (off_t)(shape & 15) * 4096) == 0, "ftruncate");
		if (ram_len && (shape & 15))
			fz_check(pwrite(fd, ram_image, ram_len, 0) == (ssize_t)ram_len, "pwrite");
		if (last_memfd >= 0)
			close(last_memfd);
		last_memfd = fcntl(fd, F_DUPFD_CLOEXEC, 0);
		return fd;
	case 1:
		fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
		fz_check(fd >= 0, "eventfd: %s", strerror(errno));
		return fd;
	default: /* neither a file nor an eventfd */
		fz_check(pipe2(p, O_CLOEXEC) == 0, "pipe");
		close(p[1]);
		return p[0];
	}
}

/* Send buf with n fds; false once the server has closed the connection. */
static bool send_with_fds(int s, const void *buf, size_t len, uint8_t spec, uint8_t shape)
{
	union {
		char b[CMSG_SPACE(MAX_SEND_FDS * sizeof(int))];
		struct cmsghdr align;
	} ctl;
	unsigned int kind = spec & 3, n = kind ? 1 + (spec >> 2) % MAX_SEND_FDS : 0;
	int fds[MAX_SEND_FDS];
	struct iovec iov = { (void *)buf, len };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };
	size_t sent = 0;
	bool ok = true;

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
	while (sent < len) {
		ssize_t w = sendmsg(s, &mh, MSG_NOSIGNAL);

		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0) {
			ok = false;
			break;
		}
		sent += (size_t)w;
		iov.iov_base = (char *)buf + sent;
		iov.iov_len = len - sent;
		mh.msg_control = NULL;
		mh.msg_controllen = 0;
	}
	for (unsigned int i = 0; i < n; i++)
		close(fds[i]);
	return ok;
}

/* One message from the input: built (a header around a fuzzed command and
 * payload), raw (the bytes as they are), or none but a guest store into
 * the last memfd sent, or with nothing to store a millisecond for the
 * engines to run (returns 0). */
static size_t next_msg(struct fz_in *in, uint8_t *buf, uint16_t id)
{
	uint8_t op = fz_u8(in);
	struct vfio_user_header *h = (void *)buf;
	size_t len;

	if (op & 0x40) {
		uint16_t off = fz_u16(in);

		len = fz_bytes(in, buf, fz_u8(in) % 65);
		if (!len)
			usleep(1000);
		else if (last_memfd >= 0)
			fz_check(pwrite(last_memfd, buf, len, off) == (ssize_t)len, "guest store");
		return 0;
	}
	if (op & 1) {
		*h = (struct vfio_user_header){ .msg_id = id };
		h->command = fz_u8(in) % (VFIO_USER_MAX + 2);
		h->flags = op & 0x20 ? fz_u8(in) & 0x3f : 0;
		len = fz_bytes(in, h + 1, fz_u16(in) % 2048);
		h->msg_size = (uint32_t)(sizeof(*h) + len);
		return sizeof(*h) + len;
	}
	return fz_bytes(in, buf, fz_u16(in) % 4096);
}

/* What a session leaves behind. */
struct outcome {
	int second;       /* a second client's socket the server took, or -1 */
	bool destroyed;   /* the partition was destroyed under the client */
};

/* A second client while the first is served: refused (-EBUSY: its VERSION
 * gets an EBUSY error reply, then its socket is closed) or, if the first
 * has already gone, taken to be served next. */
static int second_client(struct part *p)
{
	uint8_t buf[512];
	struct vfu_msg m;
	int sv[2], rc;

	fz_check(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == 0, "socketpair");
	rc = vfu_server_attach(p->srv, sv[0]);
	fz_check(rc == 0 || rc == -EBUSY, "second client: %d", rc);
	if (rc == 0)
		return sv[1];
	fz_check(send_with_fds(sv[1], buf, fz_vfu_version_msg(buf, 9), 0, 0), "refused VERSION sent");
	fz_check(vfu_msg_recv(sv[1], &m, buf, sizeof(buf)) == 0 &&
		 (m.hdr.flags & VFIO_USER_F_ERROR) && m.hdr.error_no == EBUSY && m.hdr.msg_id == 9,
		 "the refused client's VERSION is not answered EBUSY");
	fz_check(vfu_msg_recv(sv[1], &m, buf, sizeof(buf)) == 1, "refused, yet not closed");
	close(sv[1]);
	return -1;
}

/* Mode bits: 1 negotiate first, 2 a second client tries to attach after
 * the first message, 4 the partition is destroyed under the client
 * (gpup destroy --force) instead of the client hanging up, 8 the input
 * next gives the first page of guest RAM in every memfd sent. */
static void session(struct part *p, struct fz_in *in, struct outcome *out)
{
	static uint8_t buf[8192];
	int sv[2];
	pthread_t rd;
	uint8_t mode = fz_u8(in);

	out->second = -1;
	out->destroyed = false;
	ram_len = mode & 8 ? fz_bytes(in, ram_image, fz_u16(in) % sizeof(ram_image)) : 0;
	fz_check(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == 0, "socketpair");
	fz_check(vfu_server_attach(p->srv, sv[0]) == 0, "attach");
	fz_check(pthread_create(&rd, NULL, reader, &sv[1]) == 0, "reader thread");
	bool up = !(mode & 1) || send_with_fds(sv[1], buf, fz_vfu_version_msg(buf, 0), 0, 0);

	for (uint16_t i = 1; up && in->n && i <= MAX_MSGS; i++) {
		uint8_t spec = fz_u8(in), shape = fz_u8(in);
		size_t len = next_msg(in, buf, i);

		if (len)
			up = send_with_fds(sv[1], buf, len, spec, shape);
		if (i == 1 && (mode & 2))
			out->second = second_client(p);
	}
	if (mode & 4) {
		vfu_server_destroy(p->srv);
		p->srv = NULL;
		out->destroyed = true;
	} else {
		shutdown(sv[1], SHUT_WR);
	}
	pthread_join(rd, NULL);
	close(sv[1]);
	if (last_memfd >= 0)
		close(last_memfd);
	last_memfd = -1;
}

/* ---- the checks after a session ---- */

static void call(int s, uint16_t cmd, const void *req, size_t len, void *rep, size_t rlen)
{
	uint8_t buf[1024], in[4096];
	struct vfio_user_header *h = (void *)buf;
	struct vfu_msg m;

	*h = (struct vfio_user_header){ .msg_id = 0x4242, .command = cmd,
					.msg_size = (uint32_t)(sizeof(*h) + len) };
	memcpy(h + 1, req, len);
	fz_check(send_with_fds(s, buf, sizeof(*h) + len, 0, 0), "send command %u", cmd);
	fz_check(vfu_msg_recv(s, &m, in, sizeof(in)) == 0, "no reply to command %u", cmd);
	vfu_msg_close_fds(&m);
	h = &m.hdr;
	check_reply_hdr(h);
	fz_check(h->msg_id == 0x4242 && h->command == cmd, "reply id %u cmd %u", h->msg_id,
		 h->command);
	fz_check(!(h->flags & VFIO_USER_F_ERROR), "command %u failed: %u", cmd, h->error_no);
	fz_check(m.len == rlen, "command %u reply of %u bytes, want %zu", cmd, m.len, rlen);
	memcpy(rep, m.data, rlen);
}

static void check_caps(const char *json)
{
	json_object *o = json_tokener_parse(json), *caps, *v;

	fz_check(o && json_object_object_get_ex(o, VFIO_USER_CAP_OBJECT, &caps),
		 "VERSION capabilities: %s", json);
	fz_check(json_object_object_get_ex(caps, VFIO_USER_CAP_MAX_FDS, &v) &&
		 json_object_get_int64(v) == VFU_MAX_FDS, "max_msg_fds: %s", json);
	fz_check(json_object_object_get_ex(caps, VFIO_USER_CAP_MAX_XFER, &v) &&
		 json_object_get_int64(v) == VFU_SERVER_MAX_XFER, "max_data_xfer_size: %s", json);
	/* A subset of what version_msg proposed, as the spec asks. */
	fz_check(json_object_object_length(caps) == 2, "unproposed capabilities: %s", json);
	json_object_put(o);
}

/* A well-behaved client on a fresh connection (sock, or a new one) gets
 * exact answers. */
static void check_fresh(struct part *p, int sock)
{
	uint8_t vbuf[512], rbuf[64];
	int sv[2] = { -1, sock };

	if (sock < 0) {
		fz_check(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == 0, "socketpair");
		fz_check(vfu_server_attach(p->srv, sv[0]) == 0, "fresh connection refused");
	}

	size_t vlen = fz_vfu_version_msg(vbuf, 0) - sizeof(struct vfio_user_header);
	/* Only the two capabilities version_msg proposed come back. */
	const char *caps = "{\"capabilities\":{\"max_msg_fds\":16,\"max_data_xfer_size\":1048576}}";
	struct vfio_user_version *v;
	char reply[512];

	call(sv[1], VFIO_USER_VERSION, vbuf + sizeof(struct vfio_user_header), vlen, reply,
	     sizeof(*v) + strlen(caps) + 1);
	v = (void *)reply;
	fz_check(v->major == VFIO_USER_MAJOR && v->minor == VFIO_USER_MINOR, "version %u.%u",
		 v->major, v->minor);
	fz_check(v->data[strlen(caps)] == '\0', "caps not NUL-terminated");
	check_caps(v->data);

	struct vfio_user_device_info di = { .argsz = sizeof(di) }, dr;

	call(sv[1], VFIO_USER_DEVICE_GET_INFO, &di, sizeof(di), &dr, sizeof(dr));
	fz_check(dr.argsz == sizeof(dr) && dr.flags == (VFIO_DEVICE_FLAGS_RESET | VFIO_DEVICE_FLAGS_PCI) &&
		 dr.num_regions == VFIO_PCI_NUM_REGIONS && dr.num_irqs == VFIO_PCI_NUM_IRQS,
		 "DEVICE_GET_INFO: argsz %u flags %#x regions %u irqs %u", dr.argsz, dr.flags,
		 dr.num_regions, dr.num_irqs);

	struct vfio_user_region_access ra = { .offset = GPUP_REG_ID,
					      .region = VFIO_PCI_BAR0_REGION_INDEX, .count = 4 };
	uint32_t id;

	call(sv[1], VFIO_USER_REGION_READ, &ra, sizeof(ra), rbuf, sizeof(ra) + 4);
	memcpy(&id, rbuf + sizeof(ra), 4);
	fz_check(id == GPUP_ID_MAGIC, "BAR0 ID %#x", id);
	close(sv[1]);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fz_in in = { data, size };
	struct iommu_stats st;
	struct outcome out;
	struct part p;

	init_once();
	unsigned int fds0 = fz_count_fds();

	part_create(&p);
	unsigned int fds1 = fz_count_fds();

	session(&p, &in, &out);
	if (fz_verbose()) {
		struct vgpu_stats vs;

		vgpu_get_stats(p.vg, &vs);
		fprintf(stderr, "device: commands %llu faults %llu doorbells %llu\n",
			(unsigned long long)vs.commands, (unsigned long long)vs.faults,
			(unsigned long long)vs.doorbells);
	}
	/* The client has seen EOF: the server closed its end only after
	 * unmapping the client's DMA and releasing its interrupts. */
	iommu_get_stats(p.dom, &st);
	fz_check(st.mapped_bytes == 0, "%llu bytes still mapped after disconnect",
		 (unsigned long long)st.mapped_bytes);
	if (out.destroyed) {
		if (out.second >= 0)
			close(out.second);
	} else {
		/* A second client taken meanwhile holds its two ends. */
		unsigned int want = fds1 + (out.second >= 0 ? 2 : 0);

		fz_check(fz_count_fds() == want, "fds: %u before the session, %u after, want %u",
			 fds1, fz_count_fds(), want);
		check_fresh(&p, out.second);
	}
	part_destroy(&p);
	fz_check(fz_count_fds() == fds0, "fds: %u before the partition, %u after", fds0,
		 fz_count_fds());
	fz_check(memcmp(vram, vram_ref, PART_OFF) == 0 &&
		 memcmp(vram + PART_OFF + PART_SIZE, vram_ref + PART_OFF + PART_SIZE,
			GPU_VRAM - PART_OFF - PART_SIZE) == 0,
		 "VRAM outside the partition's window changed");
	fz_check(fz_all_zero(vram + PART_OFF, PART_SIZE),
		 "the destroyed partition's VRAM was not released");
	return 0;
}
