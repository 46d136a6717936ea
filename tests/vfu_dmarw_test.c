// SPDX-License-Identifier: MIT
/*
 * Client memory mapped without an fd (DMA_MAP with no fd, what QEMU does
 * for guest RAM it does not share), reached by the vGPU's engines through
 * the server's DMA_READ / DMA_WRITE: a real command sequence bit-exact
 * with its ring, producer index, data and fences in such memory; a client
 * that refuses, one that never answers (while another partition on the
 * same engine keeps running), an unmap during an outstanding request, and
 * malformed replies.  Two partitions share one sim GPU with one engine of
 * each kind.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "gpup/drv/drv.h"
#include "gpup/gpu/gpu.h"
#include "gpup/jail/jail.h"
#include "gpup/vgpu/vgpu.h"
#include "iommu/iommu.h"
#include "vfu/vfu.h"

#define MIB (1ull << 20)
#define RAM_SIZE (16 * MIB)
#define IOVA GPUP_VG_IOVA_BASE
#define RING(q) ((uint64_t)(q) * GPUP_VG_RING_BYTES)
#define PI(q) (GPUP_VG_PI_OFF + (uint64_t)(q) * 8)
#define FENCE(q) (GPUP_VG_FENCE_OFF + (uint64_t)(q) * 8)
#define DATA GPUP_VG_DATA_OFF
/* A second window, which the client may refuse or ignore. */
#define HOLE_IOVA 0x200000000ull
#define HOLE_SIZE (2 * MIB)
#define QA 1u

struct part {
	struct iommu_domain *dom;
	struct vgpu *vg;
	struct vfu_server *srv;
	struct vfu_client *cl;
};

static struct gpup_gpu *gpu;
static struct part pa, pb;
static uint8_t *ram;
static uint32_t pi_a;

static int (*serving_init)(void);

static void part_init(struct part *p, uint64_t off, const char *name)
{
	struct iommu_domain_cfg dc = { .name = name };
	int sv[2], err = 0;

	p->dom = iommu_domain_create(&dc);
	cr_assert_not_null(p->dom);
	struct vgpu_cfg vc = { .gpu = gpu, .vram_offset = off, .vram_size = 16 * MIB,
			       .iommu = p->dom, .name = name };
	p->vg = vgpu_create(&vc);
	cr_assert_not_null(p->vg);
	p->srv = vgpu_serve(p->vg, NULL, serving_init);
	cr_assert_not_null(p->srv);
	cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	cr_assert_eq(vfu_server_attach(p->srv, sv[0]), 0);
	p->cl = vfu_client_open_fd(sv[1], &err);
	cr_assert_not_null(p->cl, "negotiation: %s", strerror(-err));
}

static void part_fini(struct part *p)
{
	vfu_client_close(p->cl);
	vfu_server_destroy(p->srv);
	vgpu_destroy(p->vg);
	iommu_domain_destroy(p->dom);
}

static int engine_init(void)
{
	return gpup_jail_thread(GPUP_JAIL_ENGINE);
}

static int serving_jail(void)
{
	return gpup_jail_thread(GPUP_JAIL_SERVING);
}

static void setup_gpu(int (*engine)(void))
{
	struct gpup_gpu_cfg gc = { .index = 0, .vram_size = 64 * MIB, .ncompute = 1, .ncopy = 1,
				   .thread_init = engine };

	gpu = gpup_sim_gpu_create(&gc);
	cr_assert_not_null(gpu);
	part_init(&pa, 0, "a");
	part_init(&pb, 32 * MIB, "b");
	ram = aligned_alloc(4096, RAM_SIZE);
	cr_assert_not_null(ram);
	memset(ram, 0, RAM_SIZE);
	pi_a = 0;
}

static void setup(void)
{
	serving_init = NULL;
	setup_gpu(NULL);
}

/* The daemon's seccomp filters on the engines and serving threads, in
 * the mode that kills the process for a call outside them. */
static void setup_jailed(void)
{
	struct gpup_jail_cfg jc = { .mode = GPUP_JAIL_KILL };
	struct vfu_caps caps = { .max_fds = 1, .max_xfer = 4096 };
	uint16_t major, minor;
	char v[256];
	int n = vfu_version_encode(v, sizeof(v), 0, 1, &caps);

	/* json-c seeds its hash (getrandom) at its first parse in the
	 * process: the daemon's main thread has parsed long before a client
	 * comes, so this one does too. */
	cr_assert_gt(n, 0);
	cr_assert_eq(vfu_version_decode(v, (uint32_t)n, &major, &minor, &caps), 0);
	cr_assert_eq(gpup_jail_prepare(&jc), 0);
	serving_init = serving_jail;
	setup_gpu(engine_init);
}

static void teardown(void)
{
	part_fini(&pa);
	part_fini(&pb);
	gpup_gpu_destroy(gpu);
	free(ram);
}

TestSuite(vfu_dmarw, .init = setup, .fini = teardown, .timeout = 60);
TestSuite(vfu_dmarw_jailed, .init = setup_jailed, .fini = teardown, .timeout = 60);

static void reg_write(struct vfu_client *c, uint32_t off, uint32_t val)
{
	cr_assert_eq(vfu_client_region_write(c, VFIO_PCI_BAR0_REGION_INDEX, off, &val, 4), 0,
		     "BAR0 write %#x", off);
}

static uint32_t bar0_a(uint32_t off)
{
	uint32_t v = 0;

	cr_assert_eq(vgpu_bar0_read(pa.vg, off, &v, 4), 0);
	return v;
}

/* Serve the device's requests until QA has taken its start index
 * (STARTING clears), as a guest driver waits after enabling a queue. */
static void wait_started(void)
{
	struct pollfd p = { .fd = vfu_client_socket(pa.cl), .events = POLLIN };
	uint32_t sts;

	for (int i = 0; (sts = bar0_a(GPUP_REG_QUEUE(QA) + GPUP_Q_STATUS)) & GPUP_QSTS_STARTING;
	     i++) {
		cr_assert_lt(i, 5000, "QA still STARTING after 5 s");
		if (poll(&p, 1, 1) == 1)
			cr_assert_geq(vfu_client_serve(pa.cl), 0);
	}
	cr_assert_eq(sts, GPUP_QSTS_ENABLED, "QA status %#x", sts);
	cr_assert_eq(bar0_a(GPUP_REG_QUEUE(QA) + GPUP_Q_CI), pi_a, "CI := PI");
}

/* Program QA with its ring and producer index (7) in fd-less RAM, up to
 * the enable. */
static void program_fdless(uint32_t engine)
{
	uint32_t qb = GPUP_REG_QUEUE(QA);

	cr_assert_eq(vfu_client_dma_map_mem(pa.cl, ram, IOVA, RAM_SIZE,
					    VFIO_USER_DMA_F_READ | VFIO_USER_DMA_F_WRITE), 0);
	reg_write(pa.cl, GPUP_REG_CONTROL, GPUP_CTRL_ENABLE);
	reg_write(pa.cl, qb + GPUP_Q_RING_LO, (uint32_t)(IOVA + RING(QA)));
	reg_write(pa.cl, qb + GPUP_Q_RING_HI, (uint32_t)((IOVA + RING(QA)) >> 32));
	reg_write(pa.cl, qb + GPUP_Q_RING_ENTRIES, GPUP_VG_RING_ENTRIES);
	reg_write(pa.cl, qb + GPUP_Q_ENGINE, engine);
	reg_write(pa.cl, qb + GPUP_Q_PI_ADDR_LO, (uint32_t)(IOVA + PI(QA)));
	reg_write(pa.cl, qb + GPUP_Q_PI_ADDR_HI, (uint32_t)((IOVA + PI(QA)) >> 32));
	*(volatile uint32_t *)(ram + PI(QA)) = 7;
	pi_a = 7;
}

/* Map guest RAM without an fd, enable the device and queue QA on engine
 * with its ring and producer index in that RAM. */
static void open_fdless(uint32_t engine)
{
	program_fdless(engine);
	/* Enabling reads the producer index from that RAM: a DMA_READ the
	 * engine sends after the write is answered. */
	reg_write(pa.cl, GPUP_REG_QUEUE(QA) + GPUP_Q_CONTROL, GPUP_QCTL_ENABLE);
	wait_started();
}

/* Put packets on QA's ring and publish them (no doorbell yet). */
static void put(const union gpup_cmd *c, unsigned int n)
{
	for (unsigned int i = 0; i < n; i++, pi_a++)
		memcpy(ram + RING(QA) + (pi_a % GPUP_VG_RING_ENTRIES) * GPUP_CMD_SIZE, &c[i],
		       sizeof(c[i]));
	__atomic_store_n((uint32_t *)(ram + PI(QA)), pi_a, __ATOMIC_RELEASE);
}

/* Ring QA's doorbell through the client and serve the engine's requests
 * until the fence word reads value, or QA faults: 0 or -EIO. */
static int run_until_fence(uint64_t value, int timeout_ms)
{
	struct pollfd p = { .fd = vfu_client_socket(pa.cl), .events = POLLIN };

	reg_write(pa.cl, GPUP_DOORBELL(QA), 1);
	for (int i = 0; i < timeout_ms; i++) {
		if (__atomic_load_n((uint64_t *)(ram + FENCE(QA)), __ATOMIC_ACQUIRE) == value)
			return 0;
		if (bar0_a(GPUP_REG_QUEUE(QA) + GPUP_Q_STATUS) & GPUP_QSTS_FAULTED)
			return -EIO;
		if (poll(&p, 1, 1) == 1)
			cr_assert_geq(vfu_client_serve(pa.cl), 0);
	}
	return -ETIMEDOUT;
}

static uint32_t f32_bits(float f)
{
	uint32_t u;

	memcpy(&u, &f, 4);
	return u;
}

/* SAXPY over 3 MiB vectors (several DMA_READs of the client's 1 MiB
 * max, more than one engine chunk), an IOVA-to-IOVA copy (read and
 * write through the bounce), a FILL of client memory, all bit-exact. */
static void saxpy_copy_fill(void)
{
	const uint64_t n = 3 * MIB / 4, xo = DATA, yo = DATA + 3 * MIB, co = DATA + 6 * MIB;
	const uint64_t fo = DATA + 9 * MIB;
	float *x = (float *)(ram + xo), *y = (float *)(ram + yo), *want = malloc(n * 4);
	const float a = 1.5f;
	union gpup_cmd c[7];

	cr_assert_not_null(want);
	for (uint64_t i = 0; i < n; i++) {
		x[i] = (float)i * 0.25f - 17.0f;
		y[i] = (float)(i % 1000) / 7.0f;
		want[i] = a * x[i];
		want[i] = want[i] + y[i];
	}
	open_fdless(GPUP_ENGINE_COMPUTE);
	uint64_t args[4] = { n, f32_bits(a), 0, 4 * MIB };

	c[0] = gpup_cmd_copy(GPUP_SPACE_IOVA, IOVA + xo, GPUP_SPACE_VRAM, 0, n * 4);
	c[1] = gpup_cmd_copy(GPUP_SPACE_IOVA, IOVA + yo, GPUP_SPACE_VRAM, 4 * MIB, n * 4);
	c[2] = gpup_cmd_kernel(GPUP_KERNEL_SAXPY, args, 4);
	c[3] = gpup_cmd_copy(GPUP_SPACE_VRAM, 4 * MIB, GPUP_SPACE_IOVA, IOVA + yo, n * 4);
	c[4] = gpup_cmd_copy(GPUP_SPACE_IOVA, IOVA + yo, GPUP_SPACE_IOVA, IOVA + co, n * 4);
	c[5] = gpup_cmd_fill(GPUP_SPACE_IOVA, IOVA + fo, 5 * 4096 + 12, 0xa5c3e1f0);
	c[6] = gpup_cmd_fence(GPUP_SPACE_IOVA, IOVA + FENCE(QA), 0x1234, 0);
	put(c, 7);
	cr_assert_eq(run_until_fence(0x1234, 10000), 0, "fault %u",
		     bar0_a(GPUP_REG_QUEUE(QA) + GPUP_Q_FAULT));
	/* CI is published just after the fence lands. */
	for (int i = 0; i < 1000 && bar0_a(GPUP_REG_QUEUE(QA) + GPUP_Q_CI) != pi_a; i++)
		usleep(1000);
	cr_assert_eq(memcmp(y, want, n * 4), 0, "SAXPY result");
	cr_assert_eq(memcmp(ram + co, want, n * 4), 0, "the IOVA-to-IOVA copy");
	for (uint64_t i = 0; i < (5 * 4096 + 12) / 4; i++)
		cr_assert_eq(((uint32_t *)(ram + fo))[i], 0xa5c3e1f0u, "fill word %llu",
			     (unsigned long long)i);
	cr_assert_eq(((uint32_t *)(ram + fo))[(5 * 4096 + 12) / 4], 0, "nothing past the fill");
	cr_assert_eq(bar0_a(GPUP_REG_QUEUE(QA) + GPUP_Q_CI), pi_a);
	cr_assert_eq(bar0_a(GPUP_REG_FAULT_COUNT), 0);
	free(want);
}

Test(vfu_dmarw, saxpy_copy_fill_in_fdless_memory_bit_exact)
{
	saxpy_copy_fill();
}

/* No system call the filters lack: a forbidden one kills the process. */
Test(vfu_dmarw_jailed, saxpy_copy_fill_under_the_daemons_filters)
{
	saxpy_copy_fill();
}


/* The newest fault record of partition a. */
static void last_fault(uint32_t *code, uint64_t *addr)
{
	uint32_t n = bar0_a(GPUP_REG_FAULT_COUNT);
	uint32_t rec = GPUP_REG_FAULT_LOG + ((n - 1) % GPUP_FAULT_LOG_ENTRIES) * GPUP_FAULT_REC_SIZE;

	cr_assert_geq(n, 1, "a fault is logged");
	*code = bar0_a(rec + GPUP_FAULT_REC_CODE);
	*addr = bar0_a(rec + GPUP_FAULT_REC_ADDR_LO) |
		(uint64_t)bar0_a(rec + GPUP_FAULT_REC_ADDR_HI) << 32;
}

/* A window the client maps without an fd but has no memory behind: it
 * answers every DMA_READ / DMA_WRITE there with an error. */
static void map_hole(struct vfu_client *c)
{
	struct vfio_user_dma_map m = { .argsz = sizeof(m), .addr = HOLE_IOVA, .size = HOLE_SIZE,
				       .flags = VFIO_USER_DMA_F_READ | VFIO_USER_DMA_F_WRITE };

	cr_assert_eq(vfu_client_call(c, VFIO_USER_DMA_MAP, &m, sizeof(m), NULL, 0, NULL, 0, NULL,
				     NULL), 0);
}

static void assert_remote_fault(uint64_t iova)
{
	struct iommu_fault f;
	uint32_t code;
	uint64_t addr;

	last_fault(&code, &addr);
	cr_assert_eq(code, GPUP_FAULT_IOMMU_UNMAPPED);
	cr_assert_eq(addr, iova);
	cr_assert_eq(bar0_a(GPUP_REG_QUEUE(QA) + GPUP_Q_FAULT), GPUP_FAULT_IOMMU_UNMAPPED);
	cr_assert_eq(iommu_fault_pop(pa.dom, &f), 0);
	cr_assert_eq(f.iova, iova);
	cr_assert_eq(f.reason, IOMMU_FAULT_REMOTE);
	cr_assert_eq(f.access, IOMMU_READ);
}

/* QEMU answers the device's DMA_READ from its main loop, which the vCPU
 * holds until its register write has a reply.  Enabling a queue whose
 * producer index lies in fd-less memory must therefore answer the write
 * before it asks for the index: the first message after the write is its
 * reply.  The queue then takes the index, and runs from there. */
Test(vfu_dmarw, enable_is_answered_before_the_device_asks_for_the_index)
{
	const uint32_t off = GPUP_REG_QUEUE(QA) + GPUP_Q_CONTROL, val = GPUP_QCTL_ENABLE;
	struct vfio_user_region_access a = { .offset = off,
					     .region = VFIO_PCI_BAR0_REGION_INDEX,
					     .count = 4 };
	struct vfio_user_header h = { .msg_id = 0x7e57, .command = VFIO_USER_REGION_WRITE,
				      .msg_size = sizeof(h) + sizeof(a) + 4 };
	int s = vfu_client_socket(pa.cl);
	uint8_t w[sizeof(a) + 4], buf[64];
	struct vfu_msg m;
	union gpup_cmd c;

	program_fdless(GPUP_ENGINE_COPY);
	memcpy(w, &a, sizeof(a));
	memcpy(w + sizeof(a), &val, 4);
	cr_assert_eq(vfu_msg_send(s, &h, w, sizeof(w), NULL, 0), 0);
	cr_assert_eq(vfu_msg_recv(s, &m, buf, sizeof(buf)), 0);
	cr_assert_eq(m.hdr.flags & VFIO_USER_F_TYPE_MASK, VFIO_USER_F_TYPE_REPLY,
		     "command %u came before the write's reply", m.hdr.command);
	cr_assert_eq(m.hdr.msg_id, 0x7e57);
	cr_assert_eq(m.hdr.error_no, 0);
	wait_started();
	c = gpup_cmd_fence(GPUP_SPACE_IOVA, IOVA + FENCE(QA), 0x5eed, 0);
	put(&c, 1);
	cr_assert_eq(run_until_fence(0x5eed, 5000), 0);
	/* CI moves just after the fence lands. */
	for (int i = 0; i < 1000 && bar0_a(GPUP_REG_QUEUE(QA) + GPUP_Q_CI) != 8; i++)
		usleep(1000);
	cr_assert_eq(bar0_a(GPUP_REG_QUEUE(QA) + GPUP_Q_CI), 8);
}

/* A producer index the client refuses to read faults the queue, after
 * the enable has been answered, and STARTING clears. */
Test(vfu_dmarw, refused_start_index_faults_the_queue)
{
	uint32_t qb = GPUP_REG_QUEUE(QA), sts = 0;

	program_fdless(GPUP_ENGINE_COPY);
	map_hole(pa.cl);
	reg_write(pa.cl, qb + GPUP_Q_PI_ADDR_LO, (uint32_t)HOLE_IOVA);
	reg_write(pa.cl, qb + GPUP_Q_PI_ADDR_HI, (uint32_t)(HOLE_IOVA >> 32));
	reg_write(pa.cl, qb + GPUP_Q_CONTROL, GPUP_QCTL_ENABLE);
	/* Our client refuses requests into the hole it did not register. */
	for (int i = 0; i < 5000; i++) {
		struct pollfd p = { .fd = vfu_client_socket(pa.cl), .events = POLLIN };

		sts = bar0_a(qb + GPUP_Q_STATUS);
		if (!(sts & GPUP_QSTS_STARTING))
			break;
		if (poll(&p, 1, 1) == 1)
			cr_assert_geq(vfu_client_serve(pa.cl), 0);
	}
	cr_assert_eq(sts, GPUP_QSTS_ENABLED | GPUP_QSTS_FAULTED, "status %#x", sts);
	assert_remote_fault(HOLE_IOVA);
}

/* The device's own DMA_READs stay within VFU_DMA_RW_MAX whatever the
 * client's max_xfer (1 MiB here): a reply QEMU cannot write whole stalls
 * behind its main lock.  A 256 KiB COPY from fd-less memory, answered by
 * hand: every request fits, and they cover the range in order. */
Test(vfu_dmarw, device_requests_fit_a_socket_buffer)
{
	int s = vfu_client_socket(pa.cl);
	static uint8_t buf[sizeof(struct vfio_user_dma_rw) + (1u << 20)];
	union gpup_cmd c[2] = {
		gpup_cmd_copy(GPUP_SPACE_IOVA, IOVA + DATA, GPUP_SPACE_VRAM, 0, 256 << 10),
		gpup_cmd_fence(GPUP_SPACE_IOVA, IOVA + FENCE(QA), 0xc0, 0),
	};
	uint64_t next = IOVA + DATA;
	struct vfu_msg m;

	cr_assert_geq(vfu_client_max_xfer(pa.cl), 1u << 20);
	open_fdless(GPUP_ENGINE_COPY);
	put(c, 2);
	vgpu_doorbell(pa.vg, QA);
	while (next < IOVA + DATA + (256 << 10)) {
		cr_assert_eq(vfu_msg_recv(s, &m, buf, sizeof(buf)), 0);
		if (m.hdr.command != VFIO_USER_DMA_READ)
			continue; /* the packets' own reads come first */
		struct vfio_user_dma_rw rw;

		memcpy(&rw, buf, sizeof(rw));
		cr_assert_leq(rw.count, 64u << 10, "a request for %lu bytes",
			      (unsigned long)rw.count);
		if (rw.addr >= IOVA + DATA) {
			cr_assert_eq(rw.addr, next);
			next += rw.count;
		}
		memcpy(buf + sizeof(rw), ram + (rw.addr - IOVA), rw.count);
		struct vfio_user_header h = { .msg_id = m.hdr.msg_id, .command = VFIO_USER_DMA_READ,
					      .msg_size = (uint32_t)(sizeof(h) + sizeof(rw) + rw.count),
					      .flags = VFIO_USER_F_TYPE_REPLY };

		cr_assert_eq(vfu_msg_send(s, &h, buf, (uint32_t)(sizeof(rw) + rw.count), NULL, 0),
			     0);
	}
	cr_assert_eq(run_until_fence(0xc0, 5000), 0);
}

Test(vfu_dmarw, refused_request_faults_the_command)
{
	union gpup_cmd c[2];

	open_fdless(GPUP_ENGINE_COPY);
	map_hole(pa.cl);
	c[0] = gpup_cmd_copy(GPUP_SPACE_IOVA, HOLE_IOVA + 4096, GPUP_SPACE_VRAM, 0, 8192);
	c[1] = gpup_cmd_fence(GPUP_SPACE_IOVA, IOVA + FENCE(QA), 1, 0);
	put(c, 2);
	cr_assert_eq(run_until_fence(1, 10000), -EIO, "the COPY faults");
	assert_remote_fault(HOLE_IOVA + 4096);
	cr_assert_eq(*(uint64_t *)(ram + FENCE(QA)), 0, "nothing after it ran");
	cr_assert_not(vfu_client_broken(pa.cl), "a refusal is no protocol error");
	cr_assert(vfu_server_connected(pa.srv));
}

/*
 * A hand-made client end for partition a, on its own thread once the
 * queue is set up: answers DMA_READ / DMA_WRITE into guest RAM, and
 * treats requests into the hole as the test says.
 */
enum hole_mode { HOLE_SILENT, HOLE_UNMAP, HOLE_SHORT, HOLE_BAD_ID };

struct responder {
	pthread_t t;
	int sock;
	enum hole_mode mode;
	int stop_fd;                 /* readable: stop */
	bool saw_hole, eof, unmapped;
	uint64_t unmap_ns;           /* when the unmap's reply came */
	struct vfio_user_header held;/* the request left unanswered */
	uint8_t *buf;
};

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void answer(struct responder *r, const struct vfu_msg *m, int err_no, uint32_t count,
		   uint16_t id)
{
	const struct vfio_user_dma_rw *in = (const void *)m->data;
	struct vfio_user_dma_rw *out = (void *)r->buf;
	bool rd = m->hdr.command == VFIO_USER_DMA_READ;
	struct vfio_user_header h = { .msg_id = id, .command = m->hdr.command,
				      .flags = VFIO_USER_F_TYPE_REPLY };
	uint32_t len = 0;

	if (err_no) {
		h.flags |= VFIO_USER_F_ERROR;
		h.error_no = (uint32_t)err_no;
	} else if (in->addr >= HOLE_IOVA) {
		/* Bytes of a hole the client has no memory for. */
		out->addr = in->addr;
		out->count = in->count;
		memset(out->data, 0x5a, rd ? count : 0);
	} else {
		uint8_t *p = ram + (in->addr - IOVA);

		out->addr = in->addr;
		out->count = in->count;
		if (rd)
			memcpy(out->data, p, count);
		else
			memcpy(p, in->data, in->count);
		len = (uint32_t)sizeof(*out) + (rd ? count : 0);
	}
	h.msg_size = (uint32_t)sizeof(h) + len;
	cr_assert_eq(vfu_msg_send(r->sock, &h, out, len, NULL, 0), 0);
}

static void unmap_hole(struct responder *r)
{
	struct vfio_user_dma_unmap u = { .argsz = sizeof(u), .addr = HOLE_IOVA,
					 .size = HOLE_SIZE };
	struct vfio_user_header h = { .msg_id = 0x7777, .command = VFIO_USER_DMA_UNMAP,
				      .msg_size = sizeof(h) + sizeof(u),
				      .flags = VFIO_USER_F_TYPE_COMMAND };

	cr_assert_eq(vfu_msg_send(r->sock, &h, &u, sizeof(u), NULL, 0), 0);
}

static void handle(struct responder *r, const struct vfu_msg *m)
{
	const struct vfio_user_dma_rw *in = (const void *)m->data;

	if ((m->hdr.flags & VFIO_USER_F_TYPE_MASK) == VFIO_USER_F_TYPE_REPLY) {
		cr_assert_eq(m->hdr.msg_id, 0x7777, "only our unmap is answered");
		cr_assert_not(m->hdr.flags & VFIO_USER_F_ERROR, "the unmap succeeds");
		r->unmapped = true;
		r->unmap_ns = now_ns();
		/* The late answer to the request the unmap cancelled is
		 * dropped, not taken for a stray one. */
		answer(r, &(struct vfu_msg){ .hdr = r->held, .data = r->buf + 4096 }, EFAULT, 0,
		       r->held.msg_id);
		return;
	}
	if (in->addr < HOLE_IOVA || in->addr >= HOLE_IOVA + HOLE_SIZE) {
		answer(r, m, 0, (uint32_t)in->count, m->hdr.msg_id);
		return;
	}
	r->saw_hole = true;
	r->held = m->hdr;
	if (r->mode == HOLE_UNMAP)
		unmap_hole(r);
	else if (r->mode == HOLE_SHORT)
		answer(r, m, 0, (uint32_t)in->count - 1, m->hdr.msg_id);
	else if (r->mode == HOLE_BAD_ID)
		answer(r, m, 0, (uint32_t)in->count, (uint16_t)(m->hdr.msg_id + 1000));
}

static void *responder_main(void *arg)
{
	struct responder *r = arg;
	struct pollfd p[2] = { { .fd = r->sock, .events = POLLIN },
			       { .fd = r->stop_fd, .events = POLLIN } };
	uint8_t *in = malloc(2 * MIB);

	while (poll(p, 2, -1) > 0 && !p[1].revents) {
		struct vfu_msg m;
		int rc = vfu_msg_recv(r->sock, &m, in, 2 * MIB);

		if (rc) {
			r->eof = true;
			break;
		}
		handle(r, &m);
		vfu_msg_close_fds(&m);
	}
	free(in);
	return NULL;
}

static int stop_pipe[2];

static void responder_start(struct responder *r, enum hole_mode mode)
{
	cr_assert_eq(pipe(stop_pipe), 0);
	*r = (struct responder){ .sock = vfu_client_socket(pa.cl), .mode = mode,
				 .stop_fd = stop_pipe[0], .buf = malloc(2 * MIB) };
	cr_assert_eq(pthread_create(&r->t, NULL, responder_main, r), 0);
}

static void responder_stop(struct responder *r)
{
	cr_assert_eq(write(stop_pipe[1], "x", 1), 1);
	pthread_join(r->t, NULL);
	close(stop_pipe[0]);
	close(stop_pipe[1]);
	free(r->buf);
}

/* Ring QA's doorbell without the client library (the responder owns the
 * socket now): its ioeventfd, as KVM would. */
static void doorbell_a(void)
{
	uint64_t one = 1;

	cr_assert_eq(write(vgpu_doorbell_fd(pa.vg, QA), &one, 8), 8);
}

static bool wait_faulted(int ms)
{
	for (int i = 0; i < ms; i++) {
		if (bar0_a(GPUP_REG_QUEUE(QA) + GPUP_Q_STATUS) & GPUP_QSTS_FAULTED)
			return true;
		usleep(1000);
	}
	return false;
}

/* Partition b, on the same copy engine with fd-backed RAM, runs COPY
 * after COPY while a's client sits on a's request; then a's command
 * faults at its deadline. */
Test(vfu_dmarw, silent_client_faults_at_deadline_other_partition_runs)
{
	struct responder r;
	struct gpup_vg g;
	union gpup_cmd c[2];
	uint64_t t0;

	open_fdless(GPUP_ENGINE_COPY);
	map_hole(pa.cl);
	cr_assert_eq(gpup_vg_open(&g, pb.cl, 4 * MIB), 0);
	cr_assert_eq(gpup_vg_queue_setup(&g, 0, GPUP_ENGINE_COPY), 0);
	c[0] = gpup_cmd_copy(GPUP_SPACE_IOVA, HOLE_IOVA, GPUP_SPACE_VRAM, 0, 4096);
	c[1] = gpup_cmd_fence(GPUP_SPACE_IOVA, IOVA + FENCE(QA), 1, 0);
	put(c, 2);
	responder_start(&r, HOLE_SILENT);
	t0 = now_ns();
	doorbell_a();
	for (int i = 0; i < 200 && !r.saw_hole; i++)
		usleep(1000);
	cr_assert(r.saw_hole, "a's engine asked for the hole");
	for (unsigned int i = 0; i < 50; i++) {
		union gpup_cmd cp = gpup_cmd_copy(GPUP_SPACE_IOVA, gpup_vg_iova(GPUP_VG_DATA_OFF),
						  GPUP_SPACE_VRAM, 0, MIB);

		cr_assert_eq(gpup_vg_submit(&g, 0, &cp, 1), 0);
		cr_assert_eq(gpup_vg_fence_wait(&g, 0, 5000, NULL), 0, "b's copy %u", i);
	}
	cr_assert_not(bar0_a(GPUP_REG_QUEUE(QA) + GPUP_Q_STATUS) & GPUP_QSTS_FAULTED,
		      "b's 50 copies ran while a waited (%llu ms in)",
		      (unsigned long long)((now_ns() - t0) / 1000000));
	cr_assert(wait_faulted(5000), "a faults at its deadline");
	cr_assert_geq(now_ns() - t0, 1000000000ull, "not before it");
	responder_stop(&r);
	assert_remote_fault(HOLE_IOVA);
	gpup_vg_close(&g);
}

Test(vfu_dmarw, unmap_cancels_the_outstanding_request)
{
	struct responder r;
	union gpup_cmd c[2];
	uint64_t got = 0;

	open_fdless(GPUP_ENGINE_COPY);
	map_hole(pa.cl);
	c[0] = gpup_cmd_copy(GPUP_SPACE_IOVA, HOLE_IOVA + 8192, GPUP_SPACE_VRAM, 0, 4096);
	c[1] = gpup_cmd_fence(GPUP_SPACE_IOVA, IOVA + FENCE(QA), 1, 0);
	put(c, 2);
	responder_start(&r, HOLE_UNMAP);
	doorbell_a();
	cr_assert(wait_faulted(5000));
	responder_stop(&r);
	cr_assert(r.unmapped, "the unmap was answered");
	cr_assert_lt(now_ns() - r.unmap_ns, 500000000ull, "cancelled, not timed out");
	assert_remote_fault(HOLE_IOVA + 8192);
	/* The late answer was dropped quietly: the client still talks. */
	cr_assert_eq(vfu_client_region_read(pa.cl, VFIO_PCI_BAR0_REGION_INDEX, GPUP_REG_ID, &got,
					    4), 0);
	cr_assert_eq(got, GPUP_ID_MAGIC);
	cr_assert(vfu_server_connected(pa.srv));
}

static void malformed(enum hole_mode mode)
{
	struct responder r;
	union gpup_cmd c[2];
	struct gpup_vg g;

	open_fdless(GPUP_ENGINE_COPY);
	map_hole(pa.cl);
	c[0] = gpup_cmd_copy(GPUP_SPACE_IOVA, HOLE_IOVA, GPUP_SPACE_VRAM, 0, 4096);
	c[1] = gpup_cmd_fence(GPUP_SPACE_IOVA, IOVA + FENCE(QA), 1, 0);
	put(c, 2);
	responder_start(&r, mode);
	doorbell_a();
	cr_assert(wait_faulted(5000), "the command faults");
	for (int i = 0; i < 500 && !r.eof; i++)
		usleep(1000);
	cr_assert(r.eof, "the server hung up on the client");
	responder_stop(&r);
	for (int i = 0; i < 500 && !vfu_server_idle(pa.srv); i++)
		usleep(1000);
	cr_assert(vfu_server_idle(pa.srv), "a's client is gone");
	/* Only that client: b is served as before. */
	cr_assert_eq(gpup_vg_open(&g, pb.cl, 2 * MIB), 0);
	cr_assert_eq(gpup_vg_queue_setup(&g, 0, GPUP_ENGINE_COPY), 0);
	c[0] = gpup_cmd_fill(GPUP_SPACE_IOVA, gpup_vg_iova(GPUP_VG_DATA_OFF), 64, 0x01020304);
	cr_assert_eq(gpup_vg_submit(&g, 0, c, 1), 0);
	cr_assert_eq(gpup_vg_fence_wait(&g, 0, 5000, NULL), 0);
	cr_assert_eq(*(uint32_t *)(g.ram + GPUP_VG_DATA_OFF + 60), 0x01020304u);
	gpup_vg_close(&g);
}

Test(vfu_dmarw, short_reply_drops_only_that_client)
{
	malformed(HOLE_SHORT);
}

Test(vfu_dmarw, reply_with_unknown_id_drops_only_that_client)
{
	malformed(HOLE_BAD_ID);
}

Test(vfu_dmarw_jailed, refusal_and_unmap_under_the_daemons_filters)
{
	union gpup_cmd c[2];

	open_fdless(GPUP_ENGINE_COPY);
	map_hole(pa.cl);
	c[0] = gpup_cmd_copy(GPUP_SPACE_IOVA, HOLE_IOVA, GPUP_SPACE_VRAM, 0, 8192);
	c[1] = gpup_cmd_fence(GPUP_SPACE_IOVA, IOVA + FENCE(QA), 1, 0);
	put(c, 2);
	cr_assert_eq(run_until_fence(1, 10000), -EIO);
	cr_assert_eq(vfu_client_dma_unmap(pa.cl, HOLE_IOVA, HOLE_SIZE), 0);
	cr_assert_eq(vfu_client_dma_unmap(pa.cl, IOVA, RAM_SIZE), 0);
}
