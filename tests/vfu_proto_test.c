// SPDX-License-Identifier: MIT
/*
 * The vfio-user server against malformed and hostile input: each case gets
 * the protocol's error reply or a closed connection, the server stays up,
 * the partition's state is what it was, and a second partition served
 * alongside never notices.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <setjmp.h>
#include <signal.h>
#include <stdio.h>
#include <time.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "gpup/drv/drv.h"
#include "gpup/gpu/gpu.h"
#include "gpup/vgpu/vgpu.h"
#include "vfu/vfu.h"
#include "iommu/iommu.h"
#include "uapi/gpup_vgpu.h"

#define MIB (1ull << 20)

struct part {
	struct iommu_domain *dom;
	struct vgpu *vg;
	struct vfu_server *srv;
};

static struct gpup_gpu *gpu;
static struct part pa, pb;

static void part_init(struct part *p, uint64_t off, const char *name)
{
	struct iommu_domain_cfg dc = { .name = name, .max_table_bytes = VGPU_IOMMU_TABLE_BYTES };

	p->dom = iommu_domain_create(&dc);
	cr_assert_not_null(p->dom);
	struct vgpu_cfg vc = { .gpu = gpu, .vram_offset = off, .vram_size = 8 * MIB,
			       .iommu = p->dom, .name = name };
	p->vg = vgpu_create(&vc);
	cr_assert_not_null(p->vg);
	p->srv = vgpu_serve(p->vg, NULL, NULL);
	cr_assert_not_null(p->srv);
}

static void part_fini(struct part *p)
{
	vfu_server_destroy(p->srv);
	vgpu_destroy(p->vg);
	iommu_domain_destroy(p->dom);
}

/* A raw connected socket to partition p (no negotiation). */
static int raw_conn(struct part *p)
{
	int sv[2];

	cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	cr_assert_eq(vfu_server_attach(p->srv, sv[0]), 0);
	return sv[1];
}

static struct vfu_client *client(struct part *p)
{
	int err = 0;
	struct vfu_client *c = vfu_client_open_fd(raw_conn(p), &err);

	cr_assert_not_null(c, "%s", strerror(-err));
	return c;
}

static void setup(void)
{
	struct gpup_gpu_cfg gc = { .index = 0, .vram_size = 16 * MIB, .ncompute = 1, .ncopy = 1 };

	gpu = gpup_sim_gpu_create(&gc);
	cr_assert_not_null(gpu);
	part_init(&pa, 0, "a");
	part_init(&pb, 8 * MIB, "b");
}

static void teardown(void)
{
	part_fini(&pa);
	part_fini(&pb);
	gpup_gpu_destroy(gpu);
}

TestSuite(vfu_proto, .init = setup, .fini = teardown, .timeout = 30);

static void send_raw(int s, uint16_t cmd, uint32_t size, uint32_t flags, const void *payload,
		     size_t len)
{
	struct vfio_user_header h = { .msg_id = 7, .command = cmd, .msg_size = size,
				      .flags = flags };

	cr_assert_eq(send(s, &h, sizeof(h), MSG_NOSIGNAL), (ssize_t)sizeof(h));
	if (len)
		cr_assert_eq(send(s, payload, len, MSG_NOSIGNAL), (ssize_t)len);
}

/* A DMA_MAP carrying n fds, sent raw (the client caps n at 16). */
static void send_fds(int s, const void *payload, size_t len, const int *fds, unsigned int n)
{
	union {
		char buf[CMSG_SPACE(32 * sizeof(int))];
		struct cmsghdr align;
	} ctl;
	struct vfio_user_header h = { .msg_id = 7, .command = VFIO_USER_DMA_MAP,
				      .msg_size = (uint32_t)(sizeof(h) + len) };
	struct iovec iov[2] = { { &h, sizeof(h) }, { (void *)payload, len } };
	struct msghdr mh = { .msg_iov = iov, .msg_iovlen = 2, .msg_control = ctl.buf,
			     .msg_controllen = CMSG_SPACE(n * sizeof(int)) };
	struct cmsghdr *c = CMSG_FIRSTHDR(&mh);

	c->cmsg_level = SOL_SOCKET;
	c->cmsg_type = SCM_RIGHTS;
	c->cmsg_len = CMSG_LEN(n * sizeof(int));
	memcpy(CMSG_DATA(c), fds, n * sizeof(int));
	cr_assert_eq(sendmsg(s, &mh, MSG_NOSIGNAL), (ssize_t)(sizeof(h) + len));
}

/* Read one reply header (skipping its payload): the error_no if it is an
 * error reply, 0 for success, -1 on EOF. */
static int read_reply(int s, struct vfio_user_header *h)
{
	uint8_t junk[4096];
	size_t left;

	if (recv(s, h, sizeof(*h), MSG_WAITALL) != (ssize_t)sizeof(*h))
		return -1;
	cr_assert_eq(h->flags & VFIO_USER_F_TYPE_MASK, VFIO_USER_F_TYPE_REPLY);
	for (left = h->msg_size - sizeof(*h); left;) {
		ssize_t n = recv(s, junk, left < sizeof(junk) ? left : sizeof(junk), 0);

		cr_assert_gt(n, 0);
		left -= (size_t)n;
	}
	return h->flags & VFIO_USER_F_ERROR ? (int)h->error_no : 0;
}

static bool closed_by_server(int s)
{
	struct pollfd p = { .fd = s, .events = POLLIN };
	char c;

	return poll(&p, 1, 5000) == 1 && recv(s, &c, 1, 0) == 0;
}

/* Partition b still works: the isolation check every case ends with. */
static void other_partition_fine(void)
{
	struct vfu_client *c = client(&pb);
	uint32_t v = 0;

	cr_assert_eq(vfu_client_region_read(c, VFIO_PCI_BAR0_REGION_INDEX, GPUP_REG_ID, &v, 4), 0);
	cr_assert_eq(v, GPUP_ID_MAGIC);
	vfu_client_close(c);
}


static void wait_disconnected(struct part *p)
{
	for (int i = 0; i < 500 && !vfu_server_idle(p->srv); i++)
		usleep(10000);
	cr_assert(vfu_server_idle(p->srv), "the last client's teardown never ended");
}

Test(vfu_proto, command_before_version)
{
	struct vfio_user_device_info di = { .argsz = sizeof(di) };
	struct vfio_user_header h;
	int s = raw_conn(&pa);

	send_raw(s, VFIO_USER_DEVICE_GET_INFO, sizeof(h) + sizeof(di), 0, &di, sizeof(di));
	cr_assert_eq(read_reply(s, &h), EINVAL);
	cr_assert_eq(h.msg_id, 7);
	close(s);
	other_partition_fine();
}

Test(vfu_proto, wrong_major_version_closes)
{
	struct vfio_user_version v = { .major = 1, .minor = 0 };
	struct vfio_user_header h;
	int s = raw_conn(&pa);

	send_raw(s, VFIO_USER_VERSION, sizeof(h) + sizeof(v), 0, &v, sizeof(v));
	cr_assert_eq(read_reply(s, &h), ENOTSUP);
	cr_assert(closed_by_server(s));
	close(s);
}

Test(vfu_proto, bad_version_json)
{
	char buf[64];
	struct vfio_user_version *v = (void *)buf;
	struct vfio_user_header h;
	int s = raw_conn(&pa);
	size_t n;

	v->major = 0;
	v->minor = 1;
	n = (size_t)sprintf(v->data, "{\"capabilities\":{\"max_msg_fds\":\"x\"}}") + 1;
	send_raw(s, VFIO_USER_VERSION, (uint32_t)(sizeof(h) + 4 + n), 0, buf, 4 + n);
	cr_assert_eq(read_reply(s, &h), EINVAL);
	close(s);
	wait_disconnected(&pa);
	s = raw_conn(&pa);
	/* Not NUL-terminated. */
	send_raw(s, VFIO_USER_VERSION, (uint32_t)(sizeof(h) + 4 + n - 1), 0, buf, 4 + n - 1);
	cr_assert_eq(read_reply(s, &h), EINVAL);
	close(s);
}

/* VERSION with json (NULL: none); the reply's JSON into out. */
static void version_reply(int s, const char *json, char *out, size_t size)
{
	char buf[256];
	struct vfio_user_version *v = (void *)buf;
	struct vfio_user_header h;
	size_t n = json ? strlen(json) + 1 : 0;

	v->major = VFIO_USER_MAJOR;
	v->minor = VFIO_USER_MINOR;
	if (json)
		memcpy(v->data, json, n);
	send_raw(s, VFIO_USER_VERSION, (uint32_t)(sizeof(h) + 4 + n), 0, buf, 4 + n);
	cr_assert_eq(recv(s, &h, sizeof(h), MSG_WAITALL), (ssize_t)sizeof(h));
	cr_assert_eq(h.flags, VFIO_USER_F_TYPE_REPLY);
	cr_assert_gt(h.msg_size, sizeof(h) + 4);
	cr_assert_leq(h.msg_size - sizeof(h), size);
	cr_assert_eq(recv(s, out, h.msg_size - sizeof(h), MSG_WAITALL),
		     (ssize_t)(h.msg_size - sizeof(h)));
	memmove(out, out + 4, h.msg_size - sizeof(h) - 4);
}

/* The spec: the reply's capability list is a subset of those proposed. */
Test(vfu_proto, version_reply_is_a_subset_of_the_proposal)
{
	char out[256];
	int s = raw_conn(&pa);

	version_reply(s, "{\"capabilities\":{\"max_msg_fds\":4,\"migration\":{}}}", out,
		      sizeof(out));
	cr_assert_str_eq(out, "{\"capabilities\":{\"max_msg_fds\":16}}");
	close(s);
	wait_disconnected(&pa);
	s = raw_conn(&pa);
	version_reply(s, NULL, out, sizeof(out));
	cr_assert_str_eq(out, "{\"capabilities\":{}}");
	close(s);
	wait_disconnected(&pa);
	s = raw_conn(&pa);
	version_reply(s, "{\"capabilities\":{\"pgsizes\":4096,\"max_dma_maps\":9,"
			 "\"max_data_xfer_size\":65536}}", out, sizeof(out));
	cr_assert_str_eq(out, "{\"capabilities\":{\"max_data_xfer_size\":1048576,"
			      "\"max_dma_maps\":1024,\"pgsizes\":4096}}");
	close(s);
	other_partition_fine();
}

Test(vfu_proto, short_message_closes)
{
	struct vfio_user_header h;
	struct vfu_client *c = client(&pa);
	int s = vfu_client_socket(c);

	send_raw(s, VFIO_USER_DEVICE_RESET, 8, 0, NULL, 0);
	cr_assert_eq(read_reply(s, &h), EINVAL);
	cr_assert(closed_by_server(s));
	vfu_client_close(c);
	wait_disconnected(&pa);
	other_partition_fine();
}

Test(vfu_proto, oversized_message_closes)
{
	struct vfio_user_header h;
	struct vfu_client *c = client(&pa);
	int s = vfu_client_socket(c);

	send_raw(s, VFIO_USER_REGION_WRITE, 64u << 20, 0, NULL, 0);
	cr_assert_eq(read_reply(s, &h), E2BIG);
	cr_assert(closed_by_server(s));
	vfu_client_close(c);
	other_partition_fine();
}

Test(vfu_proto, unknown_and_unimplemented_commands)
{
	struct vfu_client *c = client(&pa);
	struct vfio_user_device_info di;

	cr_assert_eq(vfu_client_call(c, 99, NULL, 0, NULL, 0, NULL, 0, NULL, NULL), -ENOSYS);
	/* Migration is served now: a short MIG_DATA_READ is malformed, a
	 * whole one wrong outside a saving state. */
	cr_assert_eq(vfu_client_call(c, VFIO_USER_MIG_DATA_READ, NULL, 0, NULL, 0, NULL, 0, NULL, NULL),
		     -EINVAL);
	cr_assert_eq(vfu_client_mig_read(c, &di, 8), -EINVAL, "RUNNING has no stream to read");
	cr_assert_eq(vfu_client_call(c, VFIO_USER_DMA_READ, NULL, 0, NULL, 0, NULL, 0, NULL, NULL),
		     -ENOSYS);
	cr_assert_eq(vfu_client_call(c, VFIO_USER_VERSION, "\0\0\1\0", 4, NULL, 0, NULL, 0, NULL,
				 NULL), -EINVAL, "a second VERSION");
	cr_assert_eq(vfu_client_device_info(c, &di), 0, "the connection goes on");
	vfu_client_close(c);
}

Test(vfu_proto, short_payloads)
{
	struct vfu_client *c = client(&pa);
	uint8_t z[64] = { 0 };

	cr_assert_eq(vfu_client_call(c, VFIO_USER_DMA_UNMAP, z, 8, NULL, 0, NULL, 0, NULL, NULL),
		     -EINVAL);
	cr_assert_eq(vfu_client_call(c, VFIO_USER_DEVICE_GET_REGION_INFO, z, 16, NULL, 0, NULL, 0,
				 NULL, NULL), -EINVAL);
	cr_assert_eq(vfu_client_call(c, VFIO_USER_REGION_READ, z, 12, NULL, 0, NULL, 0, NULL, NULL),
		     -EINVAL);
	/* argsz smaller than the reply it asks for. */
	cr_assert_eq(vfu_client_call(c, VFIO_USER_DEVICE_GET_INFO, z, 16, NULL, 0, NULL, 0, NULL,
				 NULL), -EINVAL);
	/* A REGION_WRITE whose count disagrees with its size. */
	struct vfio_user_region_access *w = (void *)z;

	w->region = VFIO_PCI_BAR0_REGION_INDEX;
	w->offset = GPUP_REG_SCRATCH;
	w->count = 8;
	cr_assert_eq(vfu_client_call(c, VFIO_USER_REGION_WRITE, z, sizeof(*w) + 4, NULL, 0, NULL, 0,
				 NULL, NULL), -EINVAL);
	vfu_client_close(c);
}

Test(vfu_proto, fds_where_none_expected)
{
	struct vfu_client *c = client(&pa);
	struct vfio_user_device_info di = { .argsz = sizeof(di) };
	int efd = eventfd(0, 0), fds[VFU_MAX_FDS + 1];

	cr_assert_eq(vfu_client_call(c, VFIO_USER_DEVICE_GET_INFO, &di, sizeof(di), &efd, 1, NULL, 0,
				 NULL, NULL), -EINVAL);
	for (unsigned int i = 0; i <= VFU_MAX_FDS; i++)
		fds[i] = efd;
	struct vfio_user_dma_map m = { .argsz = sizeof(m), .flags = 1, .size = 4096 };

	cr_assert_eq(vfu_client_call(c, VFIO_USER_DMA_MAP, &m, sizeof(m), fds, VFU_MAX_FDS, NULL,
				 0, NULL, NULL), -EINVAL, "16 fds where one belongs");
	/* More fds than the server takes at all: the kernel truncates them and
	 * the server refuses the command. */
	send_fds(vfu_client_socket(c), &m, sizeof(m), fds, VFU_MAX_FDS + 1);
	struct vfio_user_header h;

	cr_assert_eq(read_reply(vfu_client_socket(c), &h), EINVAL);
	cr_assert_eq(vfu_client_device_info(c, (struct vfio_user_device_info *)&di), 0);
	close(efd);
	vfu_client_close(c);
}

Test(vfu_proto, bad_dma_fds)
{
	struct vfu_client *c = client(&pa);
	int p[2], mfd = memfd_create("t", MFD_CLOEXEC);

	cr_assert_eq(pipe(p), 0);
	cr_assert_eq(ftruncate(mfd, 4096), 0);
	cr_assert_eq(vfu_client_dma_map(c, p[0], 0, 0, 4096, VFIO_USER_DMA_F_READ), -EBADF);
	cr_assert_eq(vfu_client_dma_map(c, mfd, 0, 0, 8192, VFIO_USER_DMA_F_READ), -EINVAL,
		     "past the end of the file");
	cr_assert_eq(vfu_client_dma_map(c, mfd, 0, 100, 4096, VFIO_USER_DMA_F_READ), -EINVAL,
		     "unaligned IOVA");
	cr_assert_eq(vfu_client_dma_map(c, mfd, 0, 0, 4096, 0), -EINVAL, "no permission");
	cr_assert_eq(vfu_client_dma_map(c, mfd, 0, 1ull << 48, 4096, VFIO_USER_DMA_F_READ), -EINVAL);
	cr_assert_eq(iommu_translate(pa.dom, 0, IOMMU_READ, &(void *){ NULL }, NULL), -EFAULT,
		     "nothing was mapped");
	close(p[0]);
	close(p[1]);
	close(mfd);
	vfu_client_close(c);
}

/* A window without an fd is recorded (QEMU maps every RAM region) but
 * never reaches the IOMMU: device access to it faults. */
Test(vfu_proto, dma_map_without_fd)
{
	struct vfu_client *c = client(&pa);
	struct vfio_user_dma_map m = { .argsz = sizeof(m), .flags = 3, .addr = 0x40000,
				       .size = 8192 };
	int mfd = memfd_create("t", MFD_CLOEXEC);
	uint8_t b;

	cr_assert_eq(ftruncate(mfd, 4096), 0);
	cr_assert_eq(vfu_client_call(c, VFIO_USER_DMA_MAP, &m, sizeof(m), NULL, 0, NULL, 0, NULL,
				 NULL), 0);
	cr_assert_eq(iommu_dma_read(pa.dom, 0x40000, &b, 1), -EFAULT);
	cr_assert_eq(vfu_client_dma_map(c, mfd, 0, 0x41000, 4096, VFIO_USER_DMA_F_READ), -EEXIST,
		     "it still occupies its range");
	cr_assert_eq(vfu_client_dma_unmap(c, 0x40000, 8192), 0);
	cr_assert_eq(vfu_client_dma_map(c, mfd, 0, 0x41000, 4096, VFIO_USER_DMA_F_READ), 0);
	cr_assert_eq(iommu_dma_read(pa.dom, 0x41000, &b, 1), 0);
	close(mfd);
	vfu_client_close(c);
}

Test(vfu_proto, overlapping_dma_maps)
{
	struct vfu_client *c = client(&pa);
	int mfd = memfd_create("t", MFD_CLOEXEC);
	uint8_t *ram, b = 0;

	cr_assert_eq(ftruncate(mfd, 4 * 4096), 0);
	ram = mmap(NULL, 4 * 4096, PROT_READ | PROT_WRITE, MAP_SHARED, mfd, 0);
	ram[4096] = 0x77;
	cr_assert_eq(vfu_client_dma_map(c, mfd, 0, 0x4000, 2 * 4096, VFIO_USER_DMA_F_READ), 0);
	cr_assert_eq(vfu_client_dma_map(c, mfd, 0, 0x5000, 2 * 4096, VFIO_USER_DMA_F_READ), -EEXIST);
	cr_assert_eq(vfu_client_dma_map(c, mfd, 0, 0x3000, 2 * 4096, VFIO_USER_DMA_F_READ), -EEXIST);
	cr_assert_eq(vfu_client_dma_map(c, mfd, 0, 0x6000, 4096, VFIO_USER_DMA_F_READ), 0, "adjacent");
	cr_assert_eq(iommu_dma_read(pa.dom, 0x5000, &b, 1), 0, "the first map is intact");
	cr_assert_eq(b, 0x77);
	munmap(ram, 4 * 4096);
	close(mfd);
	vfu_client_close(c);
}

/* Sparse memory costs a client nothing: what it can make the daemon map
 * is capped (ENOSPC past VGPU_MAX_DMA_BYTES, nothing changed), and what
 * it does map takes 2 MiB blocks, so page tables stay small. */
Test(vfu_proto, sparse_dma_is_bounded)
{
	struct vfu_client *c = client(&pa);
	int mfd = memfd_create("sparse", MFD_CLOEXEC);
	uint64_t big = VGPU_MAX_DMA_BYTES - (1ull << 30);
	struct iommu_stats st;

	cr_assert_eq(ftruncate(mfd, (off_t)(2 * VGPU_MAX_DMA_BYTES)), 0);
	cr_assert_eq(vfu_client_dma_map(c, mfd, 0, 1ull << 40, big, VFIO_USER_DMA_F_READ), 0);
	iommu_get_stats(pa.dom, &st);
	cr_assert_eq(st.mapped_bytes, big);
	/* One table per GiB with blocks; 4 KiB pages would need ~540 MiB. */
	cr_assert_lt(st.table_bytes, 2ull << 20, "%llu bytes of tables",
		     (unsigned long long)st.table_bytes);
	cr_assert_eq(vfu_client_dma_map(c, mfd, 0, 1ull << 42, 2ull << 30, VFIO_USER_DMA_F_READ),
		     -ENOSPC);
	iommu_get_stats(pa.dom, &st);
	cr_assert_eq(st.mapped_bytes, big, "the refused map changed nothing");
	cr_assert_eq(vfu_client_dma_map(c, mfd, 0, 1ull << 42, 1ull << 30, VFIO_USER_DMA_F_READ), 0,
		     "what fits still maps");
	close(mfd);
	vfu_client_close(c);
	wait_disconnected(&pa);
	iommu_get_stats(pa.dom, &st);
	cr_assert_eq(st.mapped_bytes, 0u);
	other_partition_fine();
}

static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* A tenant hands over a blocking eventfd whose counter is at its maximum
 * and asks for interrupts on it.  Signalling it would block whoever
 * writes: no engine may, so the neighbour on the same engines keeps
 * getting its fences, the tenant's own commands still complete, and
 * taking the partition down does not hang. */
Test(vfu_proto, a_full_interrupt_eventfd_stalls_nobody)
{
	struct vfu_client *ca = client(&pa), *cb = client(&pb);
	int full = eventfd(0, EFD_CLOEXEC);
	uint64_t max = 0xfffffffffffffffeull, t0;
	struct gpup_vg ga, gb;
	union gpup_cmd f[64];
	uint32_t ci = 0;

	cr_assert_eq(write(full, &max, sizeof(max)), (ssize_t)sizeof(max));
	cr_assert_eq(gpup_vg_open(&ga, ca, 2 * MIB), 0);
	cr_assert_eq(gpup_vg_open(&gb, cb, 2 * MIB), 0);
	cr_assert_eq(vfu_client_set_irqs(ca, VFIO_PCI_MSIX_IRQ_INDEX, 0, 1, &full), 0);
	cr_assert_eq(gpup_vg_queue_setup(&ga, 0, GPUP_ENGINE_COPY), 0);
	cr_assert_eq(gpup_vg_queue_setup(&gb, 0, GPUP_ENGINE_COPY), 0);
	for (unsigned int i = 0; i < 64; i++)
		f[i] = gpup_cmd_fence(GPUP_SPACE_IOVA, gpup_vg_iova(GPUP_VG_FENCE_OFF), i + 1,
				      GPUP_FENCE_IRQ);
	cr_assert_eq(gpup_vg_submit(&ga, 0, f, 64), 0);
	t0 = now_ms();
	for (int i = 0; i < 20; i++)
		cr_assert_eq(gpup_vg_fence_wait(&gb, 0, 2000, NULL), 0, "neighbour's fence %d", i);
	cr_assert_lt(now_ms() - t0, 5000u);
	for (int i = 0; i < 500 && ci != 64; i++) {
		usleep(2000);
		cr_assert_eq(gpup_vg_reg_read(&ga, GPUP_REG_QUEUE(0) + GPUP_Q_CI, &ci), 0);
	}
	cr_assert_eq(ci, 64u, "the tenant's own fences completed");
	gpup_vg_close(&gb);
	t0 = now_ms();
	vfu_server_destroy(pa.srv);
	vgpu_destroy(pa.vg);
	cr_assert_lt(now_ms() - t0, 3000u, "taking the partition down hung");
	struct vgpu_cfg vc = { .gpu = gpu, .vram_size = 8 * MIB, .iommu = pa.dom, .name = "a" };
	pa.vg = vgpu_create(&vc);
	cr_assert_not_null(pa.vg);
	pa.srv = vgpu_serve(pa.vg, NULL, NULL);
	cr_assert_not_null(pa.srv);
	gpup_vg_close(&ga);
	vfu_client_close(ca);
	vfu_client_close(cb);
	close(full);
}

Test(vfu_proto, out_of_range_region_access)
{
	struct vfu_client *c = client(&pa);
	uint8_t buf[16];

	cr_assert_eq(vfu_client_region_read(c, VFIO_PCI_BAR0_REGION_INDEX, GPUP_BAR0_SIZE, buf, 4),
		     -EINVAL);
	cr_assert_eq(vfu_client_region_read(c, VFIO_PCI_BAR0_REGION_INDEX, GPUP_BAR0_SIZE - 2, buf, 4),
		     -EINVAL);
	cr_assert_eq(vfu_client_region_read(c, VFIO_PCI_CONFIG_REGION_INDEX, 255, buf, 2), -EINVAL);
	cr_assert_eq(vfu_client_region_write(c, VFIO_PCI_BAR2_REGION_INDEX, 8 * MIB - 4, buf, 8),
		     -EINVAL, "past the partition's VRAM");
	cr_assert_eq(vfu_client_region_read(c, VFIO_PCI_BAR2_REGION_INDEX, UINT64_MAX - 3, buf, 8),
		     -EINVAL, "offset + count wraps");
	cr_assert_eq(vfu_client_region_read(c, VFIO_PCI_BAR4_REGION_INDEX, 0, buf, 4), -EINVAL);
	cr_assert_eq(vfu_client_region_read(c, 42, 0, buf, 4), -EINVAL);
	struct vfio_user_region_access zero = { .region = VFIO_PCI_BAR0_REGION_INDEX };

	cr_assert_eq(vfu_client_call(c, VFIO_USER_REGION_READ, &zero, sizeof(zero), NULL, 0, NULL, 0,
				 NULL, NULL), -EINVAL, "zero bytes");
	/* Partition b's VRAM starts right after a's: a write past a's end
	 * must not have reached it. */
	cr_assert_eq(((uint8_t *)gpup_gpu_vram_map(gpu))[8 * MIB], 0);
	vfu_client_close(c);
}

Test(vfu_proto, disconnect_mid_command)
{
	struct vfu_client *c = client(&pa);
	int mfd = memfd_create("t", MFD_CLOEXEC), s = vfu_client_socket(c);
	uint8_t b;

	cr_assert_eq(ftruncate(mfd, 4096), 0);
	cr_assert_eq(vfu_client_dma_map(c, mfd, 0, 0x1000, 4096, VFIO_USER_DMA_F_READ), 0);
	cr_assert_eq(iommu_dma_read(pa.dom, 0x1000, &b, 1), 0);
	send_raw(s, VFIO_USER_REGION_WRITE, 100, 0, "partial", 7);
	vfu_client_close(c);
	wait_disconnected(&pa);
	cr_assert_eq(iommu_dma_read(pa.dom, 0x1000, &b, 1), -EFAULT,
		     "the gone client's memory is unmapped");
	close(mfd);
	/* The partition takes a new client. */
	c = client(&pa);
	cr_assert_eq(vfu_client_reset(c), 0);
	vfu_client_close(c);
	other_partition_fine();
}

Test(vfu_proto, second_client_refused)
{
	struct vfu_client *c = client(&pa);
	int sv[2];

	cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	cr_assert_eq(vfu_server_attach(pa.srv, sv[0]), -EBUSY);
	/* Its VERSION is answered: the device is in use.  Then it is closed. */
	int err = 0;
	struct vfu_client *second = vfu_client_open_fd(sv[1], &err);

	cr_assert_null(second);
	cr_assert_eq(err, -EBUSY);
	cr_assert_eq(vfu_client_reset(c), 0, "the first client is unaffected");
	vfu_client_close(c);
}

/* A client that connects and never negotiates does not hold the device:
 * after VFU_SERVER_NEGOTIATE_MS it is dropped and the next one served. */
Test(vfu_proto, a_silent_client_is_dropped)
{
	int silent = raw_conn(&pa);

	cr_assert(closed_by_server(silent) || closed_by_server(silent),
		  "still connected after twice the 5 s deadline");
	close(silent);
	wait_disconnected(&pa);
	vfu_client_close(client(&pa));
}

/* A client right after one that hung up is served, even before the
 * server has read the hang-up. */
Test(vfu_proto, a_new_client_after_a_dead_one_is_served)
{
	for (int i = 0; i < 50; i++) {
		struct vfu_client *c = client(&pa);

		vfu_client_close(c);
	}
	other_partition_fine();
}

Test(vfu_proto, reply_type_and_no_reply)
{
	struct vfu_client *c = client(&pa);
	int s = vfu_client_socket(c);
	struct vfio_user_header h;
	uint32_t v = 0x1234abcd;
	uint8_t w[sizeof(struct vfio_user_region_access) + 4];
	struct vfio_user_region_access *a = (void *)w;

	send_raw(s, VFIO_USER_DEVICE_RESET, sizeof(h), VFIO_USER_F_TYPE_REPLY, NULL, 0);
	cr_assert_eq(read_reply(s, &h), EINVAL, "a reply where a command belongs");
	a->offset = GPUP_REG_SCRATCH;
	a->region = VFIO_PCI_BAR0_REGION_INDEX;
	a->count = 4;
	memcpy(a->data, &v, 4);
	send_raw(s, VFIO_USER_REGION_WRITE, sizeof(h) + sizeof(w), VFIO_USER_F_NO_REPLY, w,
		 sizeof(w));
	v = 0;
	cr_assert_eq(vfu_client_region_read(c, VFIO_PCI_BAR0_REGION_INDEX, GPUP_REG_SCRATCH, &v, 4),
		     0, "the next reply is this read's, none came for the write");
	cr_assert_eq(v, 0x1234abcd);
	vfu_client_close(c);
}

/* "Disable all" (DATA_NONE, count 0) on an index without vectors, as a
 * VMM sends for INTx when it switches to MSI-X, leaves the MSI-X eventfds
 * connected; on MSI-X itself it disconnects them. */
Test(vfu_proto, disabling_intx_keeps_msix)
{
	struct vfu_client *c = client(&pa);
	struct vfio_irq_set off = { .argsz = sizeof(off),
				    .flags = VFIO_IRQ_SET_DATA_NONE | VFIO_IRQ_SET_ACTION_TRIGGER,
				    .index = VFIO_PCI_INTX_IRQ_INDEX };
	struct vfio_irq_set trig = off;
	int efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	uint64_t v = 0;

	trig.index = VFIO_PCI_MSIX_IRQ_INDEX;
	trig.count = 1;
	cr_assert_eq(vfu_client_set_irqs(c, VFIO_PCI_MSIX_IRQ_INDEX, 0, 1, &efd), 0);
	for (uint32_t i = VFIO_PCI_INTX_IRQ_INDEX; i < VFIO_PCI_NUM_IRQS; i++) {
		off.index = i;
		if (i != VFIO_PCI_MSIX_IRQ_INDEX)
			cr_assert_eq(vfu_client_call(c, VFIO_USER_DEVICE_SET_IRQS, &off, sizeof(off),
						 NULL, 0, NULL, 0, NULL, NULL), 0, "index %u", i);
	}
	cr_assert_eq(vfu_client_call(c, VFIO_USER_DEVICE_SET_IRQS, &trig, sizeof(trig), NULL, 0, NULL,
				 0, NULL, NULL), 0);
	cr_assert_eq(read(efd, &v, 8), 8, "vector 0 still connected");
	cr_assert_eq(v, 1);
	off.index = VFIO_PCI_MSIX_IRQ_INDEX;
	cr_assert_eq(vfu_client_call(c, VFIO_USER_DEVICE_SET_IRQS, &off, sizeof(off), NULL, 0, NULL,
				 0, NULL, NULL), 0);
	cr_assert_eq(vfu_client_call(c, VFIO_USER_DEVICE_SET_IRQS, &trig, sizeof(trig), NULL, 0, NULL,
				 0, NULL, NULL), 0);
	cr_assert_eq(read(efd, &v, 8), -1, "MSI-X disabled: nothing fires");
	close(efd);
	vfu_client_close(c);
}

/* BAR2 as a client gets it: the partition's own file, mapped from 0. */
static int bar2_fd(struct vfu_client *c)
{
	struct vfio_region_info ri;
	int fd = -1;

	cr_assert_eq(vfu_client_region_info(c, VFIO_PCI_BAR2_REGION_INDEX, &ri, &fd), 0);
	cr_assert_geq(fd, 0);
	cr_assert(ri.flags & VFIO_REGION_INFO_FLAG_MMAP);
	cr_assert_eq(ri.size, 8 * MIB);
	cr_assert_eq(ri.offset, 0u, "the partition's VRAM is its file from byte 0");
	return fd;
}

static sigjmp_buf touch_jb;

static void touch_fault(int sig)
{
	(void)sig;
	siglongjmp(touch_jb, 1);
}

/* Whether reading *p faults: past the end of the file mapped there. */
static bool read_faults(const volatile uint8_t *p)
{
	struct sigaction sa = { .sa_handler = touch_fault }, old;
	volatile bool faulted = false;

	sigemptyset(&sa.sa_mask);
	cr_assert_eq(sigaction(SIGBUS, &sa, &old), 0);
	if (sigsetjmp(touch_jb, 1))
		faulted = true;
	else
		(void)*p;
	sigaction(SIGBUS, &old, NULL);
	return faulted;
}

static bool all_zero(const uint8_t *p, uint64_t len)
{
	for (uint64_t i = 0; i < len; i++)
		if (p[i])
			return false;
	return true;
}

/* Partition a's BAR2 fd is a's VRAM and nothing else: a file of exactly
 * its size, nothing past its end, and b's bytes never show through it. */
Test(vfu_proto, bar2_fd_reaches_only_its_partition)
{
	struct vfu_client *ca = client(&pa), *cb = client(&pb);
	uint8_t pat[4096], back[4096];
	int fd = bar2_fd(ca);
	struct stat st;

	cr_assert_eq(fstat(fd, &st), 0);
	cr_assert_eq((uint64_t)st.st_size, 8 * MIB, "the file is a's VRAM size, not the GPU's");
	memset(pat, 0xb5, sizeof(pat));
	for (uint64_t off = 0; off < 8 * MIB; off += 256 * 1024)
		cr_assert_eq(vfu_client_region_write(cb, VFIO_PCI_BAR2_REGION_INDEX, off, pat,
						     sizeof(pat)), 0);
	uint8_t *map = mmap(NULL, 16 * MIB, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);

	cr_assert_neq(map, MAP_FAILED);
	cr_assert(all_zero(map, 8 * MIB), "a sees only its own (zeroed) VRAM");
	cr_assert(read_faults(map + 8 * MIB), "a mapping past a's VRAM reaches nothing");
	cr_assert(read_faults(map + 16 * MIB - 1));
	cr_assert_eq(pread(fd, back, sizeof(back), (off_t)(8 * MIB)), 0, "end of file");
	memset(map, 0x1a, 8 * MIB);
	cr_assert_eq(vfu_client_region_read(cb, VFIO_PCI_BAR2_REGION_INDEX, 0, back, sizeof(back)),
		     0);
	cr_assert_eq(memcmp(back, pat, sizeof(back)), 0, "a's stores stay in a");
	munmap(map, 16 * MIB);
	close(fd);
	vfu_client_close(ca);
	vfu_client_close(cb);
	other_partition_fine();
}

/* b's engines copy and fill its VRAM and copy it back, bit-exact. */
static void engine_work_exact(struct vfu_client *cb)
{
	struct gpup_vg g;
	union gpup_cmd c[3];
	uint32_t *w;

	cr_assert_eq(gpup_vg_open(&g, cb, 2 * MIB), 0);
	cr_assert_eq(gpup_vg_queue_setup(&g, 0, GPUP_ENGINE_COPY), 0);
	w = (uint32_t *)(g.ram + GPUP_VG_DATA_OFF);
	for (uint32_t i = 0; i < 8192; i++)
		w[i] = i * 2654435761u;
	c[0] = gpup_cmd_copy(GPUP_SPACE_IOVA, gpup_vg_iova(GPUP_VG_DATA_OFF), GPUP_SPACE_VRAM,
			    1 * MIB, 32768);
	c[1] = gpup_cmd_fill(GPUP_SPACE_VRAM, 1 * MIB + 4096, 64, 0xabcd0123);
	c[2] = gpup_cmd_copy(GPUP_SPACE_VRAM, 1 * MIB, GPUP_SPACE_IOVA,
			    gpup_vg_iova(GPUP_VG_DATA_OFF + 65536), 32768);
	cr_assert_eq(gpup_vg_submit(&g, 0, c, 3), 0);
	cr_assert_eq(gpup_vg_fence_wait(&g, 0, 10000, NULL), 0);
	w = (uint32_t *)(g.ram + GPUP_VG_DATA_OFF + 65536);
	for (uint32_t i = 0; i < 8192; i++)
		cr_assert_eq(w[i], i >= 1024 && i < 1040 ? 0xabcd0123 : i * 2654435761u,
			     "word %u", i);
	gpup_vg_close(&g);
}

/* A tenant cannot resize the file behind its BAR2 (it is sealed), so it
 * cannot make the daemon's next access to it fault.  Punching a hole is
 * allowed (it cannot be refused without refusing writes) and zeroes only
 * the tenant's own bytes.  The daemon goes on serving a, and b's engine
 * work stays exact. */
Test(vfu_proto, a_tenant_cannot_resize_its_vram)
{
	struct vfu_client *ca = client(&pa), *cb = client(&pb);
	int fd = bar2_fd(ca);
	uint8_t buf[8];
	off_t sizes[] = { 0, 4096, 4 * MIB, 16 * MIB, 64 * MIB };

	for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		errno = 0;
		cr_assert_eq(ftruncate(fd, sizes[i]), -1, "ftruncate to %lld", (long long)sizes[i]);
		cr_assert_eq(errno, EPERM);
	}
	cr_assert_eq(fallocate(fd, 0, (off_t)(8 * MIB), 4096), -1, "growing by fallocate");
	cr_assert_eq(errno, EPERM);
	cr_assert_eq(fcntl(fd, F_ADD_SEALS, F_SEAL_WRITE), -1, "the seals are sealed");
	cr_assert_eq(errno, EPERM);
	cr_assert_eq(vfu_client_region_write(ca, VFIO_PCI_BAR2_REGION_INDEX, 4096, "tenant a", 8), 0);
	cr_assert_eq(fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 0, (off_t)(8 * MIB)),
		     0);
	cr_assert_eq(vfu_client_region_read(ca, VFIO_PCI_BAR2_REGION_INDEX, 4096, buf, 8), 0);
	cr_assert(all_zero(buf, 8), "the hole zeroed a's own bytes");
	cr_assert_eq(vfu_client_region_read(ca, VFIO_PCI_BAR2_REGION_INDEX, 8 * MIB - 8, buf, 8), 0,
		     "the daemon still serves a's last bytes");
	engine_work_exact(cb);
	close(fd);
	vfu_client_close(ca);
	vfu_client_close(cb);
}

/* Destroying a partition takes its VRAM back: the fd its client kept
 * holds no pages and reads zeros, and it reaches nothing of the partition
 * that takes the slot next, which starts from zeros. */
Test(vfu_proto, a_destroyed_partitions_vram_is_released)
{
	struct vfu_client *ca = client(&pa);
	int fd = bar2_fd(ca), fd2;
	uint8_t *old = mmap(NULL, 8 * MIB, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0), buf[4096];
	struct stat st, st2;

	cr_assert_neq(old, MAP_FAILED);
	memset(old, 0xa7, 8 * MIB);
	cr_assert_eq(fstat(fd, &st), 0);
	cr_assert_geq((uint64_t)st.st_blocks * 512, 8 * MIB);
	vfu_client_close(ca);
	vfu_server_destroy(pa.srv);
	vgpu_destroy(pa.vg);
	cr_assert_eq(fstat(fd, &st), 0);
	cr_assert_eq(st.st_blocks, 0, "the destroyed partition's pages went back to the host");
	cr_assert(all_zero(old, 8 * MIB), "its data is gone");
	struct vgpu_cfg vc = { .gpu = gpu, .vram_size = 8 * MIB, .iommu = pa.dom, .name = "a" };

	pa.vg = vgpu_create(&vc);
	cr_assert_not_null(pa.vg);
	pa.srv = vgpu_serve(pa.vg, NULL, NULL);
	cr_assert_not_null(pa.srv);
	ca = client(&pa);
	fd2 = bar2_fd(ca);
	cr_assert_eq(fstat(fd2, &st2), 0);
	cr_assert_neq(st2.st_ino, st.st_ino, "the new partition has a file of its own");
	memset(old, 0x3c, 8 * MIB);
	for (uint64_t off = 0; off < 8 * MIB; off += sizeof(buf)) {
		cr_assert_eq(vfu_client_region_read(ca, VFIO_PCI_BAR2_REGION_INDEX, off, buf,
						    sizeof(buf)), 0);
		cr_assert(all_zero(buf, sizeof(buf)), "the old fd reached the new partition at %llu",
			  (unsigned long long)off);
	}
	munmap(old, 8 * MIB);
	close(fd);
	close(fd2);
	vfu_client_close(ca);
	other_partition_fine();
}
