// SPDX-License-Identifier: MIT
/*
 * The vGPU end to end without vfio-user: a sim GPU, an IOMMU domain over a
 * memfd of "guest RAM", a vgpu programmed through BAR0 writes, packets and
 * the producer index written into guest memory, doorbells rung through
 * their eventfds and completion seen on the FENCE interrupt eventfd.  Data
 * is checked bit for bit; every fault code with its exact record, and that
 * a faulting command changes no byte.
 */
#include <criterion/criterion.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <unistd.h>

#include "gpup/gpu/gpu.h"
#include "gpup/vgpu/vgpu.h"
#include "iommu/iommu.h"
#include "uapi/gpup_vgpu.h"

#define VRAM (64ull << 20)
#define PART (16ull << 20)      /* the vgpu's window, at PART_OFF */
#define PART_OFF (32ull << 20)
#define RAM_SIZE (8ull << 20)
#define RAM_IOVA 0x100000000ull
#define RO_IOVA 0x200000000ull  /* a read-only mapping of the last RAM MiB */
/* Rings, producer indices and completion fences of each vgpu's queues. */
#define QSLOT(q) (cur->slot * GPUP_MAX_QUEUES + (q))
#define RING(q) (RAM_IOVA + QSLOT(q) * 0x1000ull)
#define PI(q) (RAM_IOVA + 0x80000ull + QSLOT(q) * 8)
#define DONE(q) (RAM_IOVA + 0x90000ull + QSLOT(q) * 8)
#define DATA (RAM_IOVA + (1ull << 20))
#define ENTRIES 64u

/* One vgpu under test with its interrupt eventfds and producer indices. */
struct tv {
	struct vgpu *v;
	struct iommu_domain *dom;
	uint64_t part_off;
	unsigned int slot;
	int irq[GPUP_MSIX_VECTORS];
	uint32_t pi[GPUP_MAX_QUEUES];
};

static struct gpup_gpu *gpu;
static uint8_t *ram;
static struct tv tv0, tv1, *cur = &tv0;

static uint8_t *hva(uint64_t iova)
{
	return ram + (iova - RAM_IOVA);
}

static void wr(uint32_t off, uint32_t val)
{
	cr_assert_eq(vgpu_bar0_write(cur->v, off, &val, 4), 0);
}

static uint32_t rd(uint32_t off)
{
	uint32_t val;

	cr_assert_eq(vgpu_bar0_read(cur->v, off, &val, 4), 0);
	return val;
}

static void queue_setup(unsigned int q, uint32_t engine)
{
	wr(GPUP_REG_QUEUE(q) + GPUP_Q_RING_LO, (uint32_t)RING(q));
	wr(GPUP_REG_QUEUE(q) + GPUP_Q_RING_HI, (uint32_t)(RING(q) >> 32));
	wr(GPUP_REG_QUEUE(q) + GPUP_Q_RING_ENTRIES, ENTRIES);
	wr(GPUP_REG_QUEUE(q) + GPUP_Q_ENGINE, engine);
	wr(GPUP_REG_QUEUE(q) + GPUP_Q_PI_ADDR_LO, (uint32_t)PI(q));
	wr(GPUP_REG_QUEUE(q) + GPUP_Q_PI_ADDR_HI, (uint32_t)(PI(q) >> 32));
	wr(GPUP_REG_QUEUE(q) + GPUP_Q_CONTROL, GPUP_QCTL_ENABLE);
	cr_assert_eq(rd(GPUP_REG_QUEUE(q) + GPUP_Q_STATUS), GPUP_QSTS_ENABLED);
	cur->pi[q] = rd(GPUP_REG_QUEUE(q) + GPUP_Q_CI);
}

static struct iommu_domain *domain_new(void)
{
	struct iommu_domain_cfg dc = { .name = "test" };
	struct iommu_domain *d = iommu_domain_create(&dc);

	cr_assert_not_null(d);
	cr_assert_eq(iommu_map(d, RAM_IOVA, ram, RAM_SIZE - (1 << 20),
			       IOMMU_READ | IOMMU_WRITE), 0);
	cr_assert_eq(iommu_map(d, RO_IOVA, ram + RAM_SIZE - (1 << 20), 1 << 20, IOMMU_READ), 0);
	return d;
}

/* A vgpu on window part_off with queues 0 (compute) and 1 (copy) up. */
static void tv_init(struct tv *t, uint64_t part_off, unsigned int slot)
{
	t->slot = slot;
	t->dom = domain_new();
	t->part_off = part_off;
	struct vgpu_cfg vc = { .gpu = gpu, .vram_offset = part_off, .vram_size = PART,
			       .iommu = t->dom, .name = "t" };

	t->v = vgpu_create(&vc);
	cr_assert_not_null(t->v);
	cur = t;
	for (unsigned int i = 0; i < GPUP_MSIX_VECTORS; i++) {
		cur->irq[i] = eventfd(0, EFD_NONBLOCK);
		cr_assert_eq(vgpu_set_irq_fd(cur->v, i, cur->irq[i]), 0);
	}
	wr(GPUP_REG_CONTROL, GPUP_CTRL_ENABLE);
	queue_setup(0, GPUP_ENGINE_COMPUTE);
	queue_setup(1, GPUP_ENGINE_COPY);
}

static void tv_fini(struct tv *t)
{
	if (!t->v)
		return;
	vgpu_destroy(t->v);
	for (unsigned int i = 0; i < GPUP_MSIX_VECTORS; i++)
		close(t->irq[i]);
	iommu_domain_destroy(t->dom);
	t->v = NULL;
}

static void setup(void)
{
	struct gpup_gpu_cfg gc = { .index = 0, .vram_size = VRAM, .ncompute = 1, .ncopy = 1 };

	gpu = gpup_sim_gpu_create(&gc);
	cr_assert_not_null(gpu);
	int fd = memfd_create("guest-ram", 0);

	cr_assert_eq(ftruncate(fd, RAM_SIZE), 0);
	ram = mmap(NULL, RAM_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	cr_assert_neq(ram, MAP_FAILED);
	close(fd);
	tv_init(&tv0, PART_OFF, 0);
}

static void teardown(void)
{
	tv_fini(&tv1);
	tv_fini(&tv0);
	munmap(ram, RAM_SIZE);
	gpup_gpu_destroy(gpu);
}

TestSuite(vgpu_cmd, .init = setup, .fini = teardown, .timeout = 30);

static uint8_t *vram(uint64_t off)
{
	return (uint8_t *)gpup_gpu_vram_map(gpu) + cur->part_off + off;
}

/* Put packets on queue q, publish PI, ring the doorbell through its fd. */
static void submit(unsigned int q, const union gpup_cmd *cmds, unsigned int n)
{
	uint64_t one = 1;

	for (unsigned int i = 0; i < n; i++)
		memcpy(hva(RING(q)) + (cur->pi[q] + i) % ENTRIES * GPUP_CMD_SIZE, &cmds[i],
		       GPUP_CMD_SIZE);
	cur->pi[q] += n;
	__atomic_store_n((uint32_t *)hva(PI(q)), cur->pi[q], __ATOMIC_RELEASE);
	cr_assert_eq(write(vgpu_doorbell_fd(cur->v, q), &one, 8), 8);
}

/* Wait for an interrupt on vector; false on timeout. */
static bool wait_irq(unsigned int vector, int ms)
{
	struct pollfd p = { .fd = cur->irq[vector], .events = POLLIN };
	uint64_t n;

	if (poll(&p, 1, ms) != 1)
		return false;
	cr_assert_eq(read(cur->irq[vector], &n, 8), 8);
	return true;
}

static union gpup_cmd fence(uint64_t iova, uint64_t value, bool irq_flag)
{
	union gpup_cmd c = { .fence = { .hdr = { .opcode = GPUP_OP_FENCE,
				      .flags = irq_flag ? GPUP_FENCE_IRQ : 0, .tag = 0xfe },
			     .space = GPUP_SPACE_IOVA, .addr = iova, .value = value } };

	return c;
}

/* Submit cmd followed by an interrupting fence, and wait for it. */
static void run_one(unsigned int q, union gpup_cmd cmd)
{
	union gpup_cmd c[2] = { cmd, fence(DONE(q), cur->pi[q] + 2, true) };

	submit(q, c, 2);
	cr_assert(wait_irq(q, 5000), "fence interrupt on queue %u", q);
	cr_assert_eq(*(uint64_t *)hva(DONE(q)), cur->pi[q]);
	cr_assert_eq(rd(GPUP_REG_QUEUE(q) + GPUP_Q_CI), cur->pi[q]);
}

static union gpup_cmd copy(uint8_t ss, uint64_t src, uint8_t ds, uint64_t dst, uint64_t len)
{
	union gpup_cmd c = { .copy = { .hdr = { .opcode = GPUP_OP_COPY, .tag = 0xc0 },
			    .src_space = ss, .dst_space = ds, .src = src, .dst = dst,
			    .len = len } };

	return c;
}

static uint32_t ld32(const uint8_t *p)
{
	uint32_t x;

	memcpy(&x, p, 4);
	return x;
}

static void randomize(uint8_t *p, size_t n, uint32_t seed)
{
	for (size_t i = 0; i < n; i++) {
		seed = seed * 1103515245u + 12345u;
		p[i] = (uint8_t)(seed >> 16);
	}
}

Test(vgpu_cmd, fence_writes_value_and_interrupts)
{
	run_one(0, fence(DATA, 0x1122334455667788ull, false));
	cr_assert_eq(*(uint64_t *)hva(DATA), 0x1122334455667788ull);
	cr_assert_eq(rd(GPUP_REG_INTR_STATUS), 1u);
	wr(GPUP_REG_INTR_STATUS, 1u);
	cr_assert_eq(rd(GPUP_REG_INTR_STATUS), 0u);
}

Test(vgpu_cmd, copy_every_direction_is_exact)
{
	const uint64_t len = 3 * (1 << 20) + 4093; /* crosses copy chunks */

	randomize(hva(DATA), len, 1);
	run_one(1, copy(GPUP_SPACE_IOVA, DATA, GPUP_SPACE_VRAM, 4096 + 3, len));
	cr_assert_eq(memcmp(vram(4096 + 3), hva(DATA), len), 0, "IOVA -> VRAM");
	run_one(1, copy(GPUP_SPACE_VRAM, 4096 + 3, GPUP_SPACE_VRAM, 8 << 20, len));
	cr_assert_eq(memcmp(vram(8 << 20), hva(DATA), len), 0, "VRAM -> VRAM");
	memset(hva(DATA + (4 << 20)), 0, 1 << 20);
	run_one(0, copy(GPUP_SPACE_VRAM, 8 << 20, GPUP_SPACE_IOVA, DATA + (4 << 20) + 1,
			(1 << 20) - 2));
	cr_assert_eq(memcmp(hva(DATA + (4 << 20) + 1), hva(DATA), (1 << 20) - 2), 0,
		     "VRAM -> IOVA");
	cr_assert_eq(hva(DATA + (4 << 20))[0], 0);
	cr_assert_eq(hva(DATA + (5 << 20))[-1], 0, "nothing past the end");
	run_one(0, copy(GPUP_SPACE_IOVA, DATA, GPUP_SPACE_IOVA, DATA + (5 << 20) + 7, 300000));
	cr_assert_eq(memcmp(hva(DATA + (5 << 20) + 7), hva(DATA), 300000), 0, "IOVA -> IOVA");
}

Test(vgpu_cmd, fill_vram_and_iova)
{
	union gpup_cmd f = { .fill = { .hdr = { .opcode = GPUP_OP_FILL },
			    .dst_space = GPUP_SPACE_VRAM, .pattern = 0xa1b2c3d4, .dst = 5,
			    .len = 4 * 1000003 } };

	memset(vram(0), 0, 5 * (1 << 20));
	run_one(0, f);
	for (uint64_t i = 0; i < 4 * 1000003; i += 4)
		cr_assert_eq(ld32(vram(5 + i)), 0xa1b2c3d4);
	cr_assert_eq(*vram(4), 0);
	cr_assert_eq(*vram(5 + 4 * 1000003), 0);
	f.fill.dst_space = GPUP_SPACE_IOVA;
	f.fill.dst = DATA + 2;
	f.fill.len = 600000;
	memset(hva(DATA), 0x55, 700000);
	run_one(1, f);
	for (uint64_t i = 0; i < 600000; i += 4)
		cr_assert_eq(ld32(hva(DATA + 2 + i)), 0xa1b2c3d4);
	cr_assert_eq(hva(DATA)[1], 0x55);
	cr_assert_eq(hva(DATA)[600002], 0x55);
}

static union gpup_cmd kernel(uint32_t id, uint64_t a0, uint64_t a1, uint64_t a2, uint64_t a3,
			     uint64_t a4, uint64_t a5)
{
	union gpup_cmd c = { .kernel = { .hdr = { .opcode = GPUP_OP_KERNEL, .tag = 0x4b },
			    .kernel = id, .args = { a0, a1, a2, a3, a4, a5 } } };

	return c;
}

static float rndf(uint32_t *seed)
{
	*seed = *seed * 1103515245u + 12345u;
	return ((float)(*seed >> 8 & 0xfffff) - 524288.0f) / 977.0f;
}

/* GEMM of a size that spans several 2 ms slices, data in and out by COPY,
 * against the plain C definition. */
Test(vgpu_cmd, gemm_through_queue_matches_reference)
{
	const uint64_t m = 96, n = 160, k = 200;
	float *a = (float *)hva(DATA), *b = a + m * k, *c = b + k * n;
	float *ref = malloc(m * n * sizeof(float));
	uint32_t seed = 7;

	for (uint64_t i = 0; i < m * k; i++)
		a[i] = rndf(&seed);
	for (uint64_t i = 0; i < k * n; i++)
		b[i] = rndf(&seed);
	for (uint64_t i = 0; i < m; i++)
		for (uint64_t j = 0; j < n; j++) {
			float s = 0.0f;

			for (uint64_t p = 0; p < k; p++) {
				float prod = a[i * k + p] * b[p * n + j];

				s = s + prod;
			}
			ref[i * n + j] = s;
		}
	uint64_t in = (m * k + k * n) * 4, cv = 1 << 20;

	run_one(1, copy(GPUP_SPACE_IOVA, DATA, GPUP_SPACE_VRAM, 0, in));
	run_one(0, kernel(GPUP_KERNEL_GEMM, m, n, k, 0, m * k * 4, cv));
	run_one(1, copy(GPUP_SPACE_VRAM, cv, GPUP_SPACE_IOVA, DATA + in, m * n * 4));
	cr_assert_eq(memcmp(c, ref, m * n * 4), 0);
	free(ref);
}

Test(vgpu_cmd, checksum_and_render_through_queue)
{
	randomize(vram(0), 100003, 3);
	uint64_t h = 0xcbf29ce484222325ull;

	for (int i = 0; i < 100003; i++)
		h = (h ^ vram(0)[i]) * 0x100000001b3ull;
	run_one(0, kernel(GPUP_KERNEL_CHECKSUM, 100003, 0, 200000, 0, 0, 0));
	cr_assert_eq(*(uint64_t *)vram(200000), h);
	run_one(0, kernel(GPUP_KERNEL_RENDER, 33, 5, 33 * 4, 4096, 9, 0));
	for (uint32_t y = 0; y < 5; y++)
		for (uint32_t x = 0; x < 33; x++)
			cr_assert_eq(ld32(vram(4096 + y * 132 + x * 4)), gpup_render_pixel(x, y, 9));
}

/* A queue spinning for 300 ms of engine time on the only compute engine
 * does not hold back another queue on it: the engine's default scheduler
 * (best-effort round robin) preempts the spin at a slice boundary. */
Test(vgpu_cmd, long_kernel_is_preempted_for_another_queue)
{
	union gpup_cmd spin[2] = { kernel(GPUP_KERNEL_SPIN, 300000000, 0, 0, 0, 0, 0),
				   fence(DONE(0), 1, true) };

	queue_setup(2, GPUP_ENGINE_COMPUTE);
	submit(0, spin, 2);
	run_one(2, fence(DATA, 42, false));
	cr_assert_eq(*(uint64_t *)hva(DATA), 42);
	cr_assert_eq(rd(GPUP_REG_QUEUE(0) + GPUP_Q_STATUS), GPUP_QSTS_ENABLED | GPUP_QSTS_BUSY,
		     "the spin is still running");
	cr_assert_eq(rd(GPUP_REG_QUEUE(0) + GPUP_Q_CI), cur->pi[0] - 2);
	cr_assert(wait_irq(0, 20000));
	cr_assert_eq(rd(GPUP_REG_QUEUE(0) + GPUP_Q_CI), cur->pi[0]);

	struct vgpu_stats st;

	vgpu_get_stats(cur->v, &st);
	cr_assert_geq(st.engine_ns[0], 300000000ull);
}

static union gpup_cmd wait_cmd(uint8_t op, uint64_t addr, uint64_t value, uint64_t mask)
{
	union gpup_cmd c = { .wait = { .hdr = { .opcode = GPUP_OP_WAIT, .tag = 0x3a },
			    .space = GPUP_SPACE_IOVA, .op = op, .addr = addr, .value = value,
			    .mask = mask } };

	return c;
}

Test(vgpu_cmd, wait_blocks_until_another_queue_signals)
{
	union gpup_cmd w[2] = { wait_cmd(GPUP_WAIT_GE, DATA, 5, ~0ull), fence(DONE(0), 9, true) };

	*(uint64_t *)hva(DATA) = 4;
	submit(0, w, 2);
	cr_assert_not(wait_irq(0, 50), "WAIT holds the queue");
	cr_assert_eq(rd(GPUP_REG_QUEUE(0) + GPUP_Q_CI), cur->pi[0] - 2);
	run_one(1, fence(DATA, 5, false));
	cr_assert(wait_irq(0, 5000));
	cr_assert_eq(*(uint64_t *)hva(DONE(0)), 9);

	/* EQ under a mask, satisfied by a CPU store in guest memory. */
	w[0] = wait_cmd(GPUP_WAIT_EQ, DATA + 8, 0x30, 0xf0);
	*(uint64_t *)hva(DATA + 8) = 0x4f;
	submit(0, w, 2);
	cr_assert_not(wait_irq(0, 30));
	__atomic_store_n((uint64_t *)hva(DATA + 8), 0x13f, __ATOMIC_RELEASE);
	cr_assert(wait_irq(0, 5000));
}

Test(vgpu_cmd, wait_on_vram_and_timestamps_are_ordered)
{
	union gpup_cmd ts = { .timestamp = { .hdr = { .opcode = GPUP_OP_TIMESTAMP },
				   .space = GPUP_SPACE_IOVA, .addr = DATA } };
	union gpup_cmd w = wait_cmd(GPUP_WAIT_GE, 64, 1, ~0ull);
	uint64_t t0, t3;

	cr_assert_eq(vgpu_bar0_read(cur->v, GPUP_REG_TIME_LO, &t0, 8), 0);
	run_one(0, ts);
	run_one(0, kernel(GPUP_KERNEL_SPIN, 5000000, 0, 0, 0, 0, 0));
	ts.timestamp.space = GPUP_SPACE_VRAM;
	ts.timestamp.addr = 0;
	run_one(0, ts);
	cr_assert_eq(vgpu_bar0_read(cur->v, GPUP_REG_TIME_LO, &t3, 8), 0);
	uint64_t t1 = *(uint64_t *)hva(DATA), t2 = *(uint64_t *)vram(0);

	cr_assert(t0 <= t1 && t1 + 5000000 <= t2 && t2 <= t3, "%lu %lu %lu %lu",
		  (unsigned long)t0, (unsigned long)t1, (unsigned long)t2, (unsigned long)t3);
	w.wait.space = GPUP_SPACE_VRAM;
	*(uint64_t *)vram(64) = 0;
	union gpup_cmd c[2] = { w, fence(DONE(0), 1, true) };

	submit(0, c, 2);
	cr_assert_not(wait_irq(0, 30));
	__atomic_store_n((uint64_t *)vram(64), 1, __ATOMIC_RELEASE);
	cr_assert(wait_irq(0, 5000));
}

/* ---- faults ---- */

#define FAULT_VEC GPUP_MAX_QUEUES
#define WINDOW_AND_DATA_SIZE (PART + (6u << 20) + (1u << 20))

/* What a fault must not change: the partition's VRAM, the guest's data
 * area and the read-only page. */
static uint8_t *snapshot(void)
{
	uint8_t *s = malloc(WINDOW_AND_DATA_SIZE);

	memcpy(s, vram(0), PART);
	memcpy(s + PART, hva(DATA), 6u << 20);
	memcpy(s + PART + (6u << 20), ram + RAM_SIZE - (1 << 20), 1 << 20);
	return s;
}

static void assert_unchanged(uint8_t *s)
{
	cr_assert_eq(memcmp(s, vram(0), PART), 0, "VRAM untouched");
	cr_assert_eq(memcmp(s + PART, hva(DATA), 6u << 20), 0, "guest data untouched");
	cr_assert_eq(memcmp(s + PART + (6u << 20), ram + RAM_SIZE - (1 << 20), 1 << 20), 0);
	free(s);
}

static uint64_t rd64(uint32_t off)
{
	uint64_t x;

	cr_assert_eq(vgpu_bar0_read(cur->v, off, &x, 8), 0);
	return x;
}

/* The newest fault record and every register that reports it. */
static void expect_fault(unsigned int q, uint32_t code, uint64_t addr, uint64_t detail,
			 uint32_t count)
{
	uint32_t rec = GPUP_REG_FAULT_LOG + (count - 1) % GPUP_FAULT_LOG_ENTRIES *
		       GPUP_FAULT_REC_SIZE;

	cr_assert(wait_irq(FAULT_VEC, 5000), "fault interrupt for code %u", code);
	cr_assert_eq(rd(GPUP_REG_FAULT_COUNT), count);
	cr_assert_eq(rd(rec + GPUP_FAULT_REC_CODE), code);
	cr_assert_eq(rd(rec + GPUP_FAULT_REC_QUEUE), q);
	cr_assert_eq(rd64(rec + GPUP_FAULT_REC_ADDR_LO), addr, "code %u addr %#lx", code,
		     (unsigned long)rd64(rec + GPUP_FAULT_REC_ADDR_LO));
	cr_assert_eq(rd64(rec + GPUP_FAULT_REC_DETAIL_LO), detail, "code %u detail %#lx", code,
		     (unsigned long)rd64(rec + GPUP_FAULT_REC_DETAIL_LO));
	cr_assert_eq(rd64(rec + GPUP_FAULT_REC_SEQ_LO), count);
	cr_assert_eq(rd(GPUP_REG_QUEUE(q) + GPUP_Q_FAULT), code);
	cr_assert_eq(rd(GPUP_REG_QUEUE(q) + GPUP_Q_STATUS), GPUP_QSTS_ENABLED | GPUP_QSTS_FAULTED);
	cr_assert_eq(rd(GPUP_REG_STATUS), GPUP_STS_READY | GPUP_STS_FAULT);
	cr_assert_eq(rd(GPUP_REG_INTR_STATUS) & GPUP_INTR_FAULT, GPUP_INTR_FAULT);
}

/* The guest's recovery: acknowledge, disable and re-enable the queue. */
static void recover(unsigned int q)
{
	wr(GPUP_REG_INTR_STATUS, GPUP_INTR_FAULT);
	cr_assert_eq(rd(GPUP_REG_STATUS), GPUP_STS_READY);
	wr(GPUP_REG_QUEUE(q) + GPUP_Q_CONTROL, 0);
	cr_assert_eq(rd(GPUP_REG_QUEUE(q) + GPUP_Q_STATUS), 0);
	wr(GPUP_REG_QUEUE(q) + GPUP_Q_CONTROL, GPUP_QCTL_ENABLE);
	cr_assert_eq(rd(GPUP_REG_QUEUE(q) + GPUP_Q_STATUS), GPUP_QSTS_ENABLED);
	cr_assert_eq(rd(GPUP_REG_QUEUE(q) + GPUP_Q_CI), cur->pi[q], "CI := PI on enable");
}

#define TAGGED(t, lo) (((uint64_t)(t) << 32) | (lo))
#define RD GPUP_FAULT_DETAIL_READ
#define WRT GPUP_FAULT_DETAIL_WRITE

struct fault_case {
	union gpup_cmd cmd;
	uint32_t code;
	uint64_t addr;   /* 0: the packet's own IOVA */
	uint64_t detail;
};

Test(vgpu_cmd, every_packet_fault_is_reported_exactly_and_writes_nothing)
{
	const uint64_t end = RAM_IOVA + RAM_SIZE - (1 << 20);
	union gpup_cmd bad_op = { .hdr = { .opcode = 99, .tag = 0x99 } };
	union gpup_cmd bad_space = fence(DATA, 1, true), bad_wait = wait_cmd(9, DATA, 0, 0);
	union gpup_cmd fill6 = { .fill = { .hdr = { .opcode = GPUP_OP_FILL, .tag = 0xf1 },
				 .dst_space = GPUP_SPACE_VRAM, .pattern = 1, .dst = 64,
				 .len = 6 } };

	bad_space.fence.space = 7;
	const struct fault_case cases[] = {
		{ copy(GPUP_SPACE_IOVA, 0x300000000ull, GPUP_SPACE_VRAM, 0, 4096),
		  GPUP_FAULT_IOMMU_UNMAPPED, 0x300000000ull, TAGGED(0xc0, RD) },
		{ copy(GPUP_SPACE_VRAM, 0, GPUP_SPACE_IOVA, end - 100, 200),
		  GPUP_FAULT_IOMMU_UNMAPPED, end, TAGGED(0xc0, WRT) },
		{ copy(GPUP_SPACE_VRAM, 0, GPUP_SPACE_IOVA, RO_IOVA, 4096),
		  GPUP_FAULT_IOMMU_PERM, RO_IOVA, TAGGED(0xc0, WRT) },
		{ fence(RO_IOVA + 8, 1, true), GPUP_FAULT_IOMMU_PERM, RO_IOVA + 8,
		  TAGGED(0xfe, WRT) },
		{ copy(GPUP_SPACE_IOVA, DATA, GPUP_SPACE_VRAM, PART - 10, 20),
		  GPUP_FAULT_VRAM_RANGE, PART - 10, TAGGED(0xc0, 20) },
		{ copy(GPUP_SPACE_VRAM, UINT64_MAX - 7, GPUP_SPACE_VRAM, 0, 16),
		  GPUP_FAULT_VRAM_RANGE, UINT64_MAX - 7, TAGGED(0xc0, 16) },
		{ bad_op, GPUP_FAULT_BAD_OPCODE, 0, TAGGED(0x99, 99) },
		{ kernel(77, 0, 0, 0, 0, 0, 0), GPUP_FAULT_BAD_KERNEL, 0, TAGGED(0x4b, 77) },
		{ kernel(GPUP_KERNEL_SAXPY, 16, 0, 2, 64, 0, 0), GPUP_FAULT_BAD_ARGS, 2,
		  TAGGED(0x4b, 0) },
		{ kernel(GPUP_KERNEL_SAXPY, 16, 0, 0, PART - 60, 0, 0), GPUP_FAULT_VRAM_RANGE,
		  PART - 60, TAGGED(0x4b, 0) },
		{ fence(DATA + 4, 1, true), GPUP_FAULT_BAD_ARGS, DATA + 4, TAGGED(0xfe, 4) },
		{ fill6, GPUP_FAULT_BAD_ARGS, 64, TAGGED(0xf1, 6) },
		{ copy(GPUP_SPACE_VRAM, 0, GPUP_SPACE_VRAM, 100, 200), GPUP_FAULT_BAD_ARGS, 100,
		  TAGGED(0xc0, 200) },
		{ copy(GPUP_SPACE_IOVA, DATA + 8, GPUP_SPACE_IOVA, DATA, 9), GPUP_FAULT_BAD_ARGS,
		  DATA, TAGGED(0xc0, 9) },
		{ bad_space, GPUP_FAULT_BAD_ARGS, 0, TAGGED(0xfe, 7) },
		{ bad_wait, GPUP_FAULT_BAD_ARGS, 0, TAGGED(0x3a, 9) },
	};

	randomize(vram(0), PART, 11);
	randomize(hva(DATA), 6u << 20, 12);
	for (uint32_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		uint64_t pkt = RING(0) + cur->pi[0] % ENTRIES * GPUP_CMD_SIZE;
		uint8_t *snap = snapshot();
		union gpup_cmd c[2] = { cases[i].cmd, fence(DONE(0), 1, true) };

		submit(0, c, 2);
		expect_fault(0, cases[i].code, cases[i].addr ? cases[i].addr : pkt,
			     cases[i].detail, i + 1);
		cr_assert_eq(rd(GPUP_REG_QUEUE(0) + GPUP_Q_CI), cur->pi[0] - 2, "case %u", i);
		cr_assert_not(wait_irq(0, 0), "no completion interrupt");
		assert_unchanged(snap);
		cr_assert_eq(rd(GPUP_REG_QUEUE(1) + GPUP_Q_STATUS), GPUP_QSTS_ENABLED,
			     "the other queue is untouched");
		recover(0);
	}
	run_one(0, fence(DATA, 77, false));
	cr_assert_eq(*(uint64_t *)hva(DATA), 77, "the queue works after recovery");
	run_one(1, fence(DATA, 78, false));
}

Test(vgpu_cmd, ring_faults)
{
	uint64_t one = 1;

	/* A producer index more than a ring ahead. */
	__atomic_store_n((uint32_t *)hva(PI(0)), cur->pi[0] + ENTRIES + 1, __ATOMIC_RELEASE);
	cr_assert_eq(write(vgpu_doorbell_fd(cur->v, 0), &one, 8), 8);
	expect_fault(0, GPUP_FAULT_RING, PI(0), cur->pi[0] + ENTRIES + 1, 1);
	cur->pi[0] += ENTRIES + 1;
	recover(0);
	/* Bad setup is reported when the queue is enabled. */
	wr(GPUP_REG_QUEUE(0) + GPUP_Q_CONTROL, 0);
	wr(GPUP_REG_QUEUE(0) + GPUP_Q_RING_ENTRIES, 3);
	wr(GPUP_REG_QUEUE(0) + GPUP_Q_CONTROL, GPUP_QCTL_ENABLE);
	expect_fault(0, GPUP_FAULT_RING, 3, 0, 2);
	wr(GPUP_REG_QUEUE(0) + GPUP_Q_CONTROL, 0);
	wr(GPUP_REG_QUEUE(0) + GPUP_Q_RING_ENTRIES, ENTRIES);
	wr(GPUP_REG_QUEUE(0) + GPUP_Q_ENGINE, 2);
	wr(GPUP_REG_QUEUE(0) + GPUP_Q_CONTROL, GPUP_QCTL_ENABLE);
	expect_fault(0, GPUP_FAULT_RING, 2, 0, 3);
	/* A producer index the IOMMU does not map. */
	wr(GPUP_REG_QUEUE(0) + GPUP_Q_CONTROL, 0);
	wr(GPUP_REG_QUEUE(0) + GPUP_Q_ENGINE, 0);
	wr(GPUP_REG_QUEUE(0) + GPUP_Q_PI_ADDR_HI, 3);
	wr(GPUP_REG_QUEUE(0) + GPUP_Q_CONTROL, GPUP_QCTL_ENABLE);
	expect_fault(0, GPUP_FAULT_IOMMU_UNMAPPED, 0x300000000ull | (uint32_t)PI(0), RD, 4);
	/* A ring the IOMMU does not map: found when a packet is fetched. */
	wr(GPUP_REG_QUEUE(0) + GPUP_Q_CONTROL, 0);
	wr(GPUP_REG_QUEUE(0) + GPUP_Q_PI_ADDR_HI, (uint32_t)(PI(0) >> 32));
	wr(GPUP_REG_QUEUE(0) + GPUP_Q_RING_HI, 5);
	wr(GPUP_REG_QUEUE(0) + GPUP_Q_CONTROL, GPUP_QCTL_ENABLE);
	cr_assert_eq(rd(GPUP_REG_QUEUE(0) + GPUP_Q_STATUS), GPUP_QSTS_ENABLED);
	__atomic_store_n((uint32_t *)hva(PI(0)), cur->pi[0] + 1, __ATOMIC_RELEASE);
	cr_assert_eq(write(vgpu_doorbell_fd(cur->v, 0), &one, 8), 8);
	expect_fault(0, GPUP_FAULT_IOMMU_UNMAPPED,
		     0x500000000ull | (uint32_t)(RING(0) + cur->pi[0] % ENTRIES * 64), RD, 5);
}

Test(vgpu_cmd, masked_fault_sets_status_without_interrupt)
{
	union gpup_cmd bad = { .hdr = { .opcode = 42 } };

	wr(GPUP_REG_INTR_MASK, GPUP_INTR_FAULT);
	submit(0, &bad, 1);
	for (int i = 0; i < 500 && !(rd(GPUP_REG_STATUS) & GPUP_STS_FAULT); i++)
		usleep(1000);
	cr_assert_eq(rd(GPUP_REG_STATUS), GPUP_STS_READY | GPUP_STS_FAULT);
	cr_assert_not(wait_irq(FAULT_VEC, 0));
	cr_assert_eq(rd(GPUP_REG_FAULT_COUNT), 1);
}

/* Two partitions on one GPU: one faults while the other computes; the
 * other's results stay exact and it sees no fault. */
Test(vgpu_cmd, fault_in_one_vgpu_leaves_the_other_exact)
{
	const uint64_t n = 200000;
	uint32_t seed = 5;
	float *x = (float *)hva(DATA + (4 << 20)), *y = x + n, a = 1.75f;
	float *ref = malloc(n * 4);
	uint32_t abits;

	memcpy(&abits, &a, 4);
	for (uint64_t i = 0; i < 2 * n; i++)
		x[i] = rndf(&seed);
	for (uint64_t i = 0; i < n; i++) {
		float p = a * x[i];

		ref[i] = p + y[i];
	}
	tv_init(&tv1, 0, 1);
	union gpup_cmd work[4] = {
		copy(GPUP_SPACE_IOVA, DATA + (4 << 20), GPUP_SPACE_VRAM, 0, 8 * n),
		kernel(GPUP_KERNEL_SAXPY, n, abits, 0, 4 * n, 0, 0),
		copy(GPUP_SPACE_VRAM, 4 * n, GPUP_SPACE_IOVA, DATA + (4 << 20), 4 * n),
		fence(DONE(0), 1, true),
	};
	union gpup_cmd bad = { .hdr = { .opcode = 200, .tag = 1 } };

	submit(0, work, 4);
	cur = &tv0;
	submit(0, &bad, 1);
	expect_fault(0, GPUP_FAULT_BAD_OPCODE, RING(0) + (cur->pi[0] - 1) % ENTRIES * 64,
		     TAGGED(1, 200), 1);
	cur = &tv1;
	cr_assert(wait_irq(0, 10000));
	cr_assert_eq(memcmp(x, ref, n * 4), 0);
	cr_assert_eq(rd(GPUP_REG_FAULT_COUNT), 0);
	cr_assert_eq(rd(GPUP_REG_STATUS), GPUP_STS_READY);
	free(ref);
	cur = &tv0;
}

/* The guest unmaps a buffer while copies into it are queued: each copy
 * either lands whole before the unmap or faults IOMMU_UNMAPPED on that
 * buffer; nothing is written after the unmap returns. */
Test(vgpu_cmd, unmap_racing_queued_copies)
{
	const uint64_t iova = 0x400000000ull, len = 2ull << 20;
	uint8_t *buf = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	union gpup_cmd c[ENTRIES / 2];

	cr_assert_neq(buf, MAP_FAILED);
	cr_assert_eq(iommu_map(cur->dom, iova, buf, len, IOMMU_READ | IOMMU_WRITE), 0);
	memset(vram(0), 0x77, len);
	for (unsigned int i = 0; i < ENTRIES / 2 - 1; i++)
		c[i] = copy(GPUP_SPACE_VRAM, 0, GPUP_SPACE_IOVA, iova, len);
	c[ENTRIES / 2 - 1] = fence(DONE(1), 1, true);
	submit(1, c, ENTRIES / 2);
	usleep(1000);
	cr_assert_eq(iommu_unmap(cur->dom, iova, len), 0);
	memset(buf, 0, len);
	struct pollfd p[2] = { { .fd = cur->irq[1], .events = POLLIN },
			       { .fd = cur->irq[FAULT_VEC], .events = POLLIN } };

	cr_assert_eq(poll(p, 2, 10000) > 0, 1);
	usleep(20000);
	for (size_t i = 0; i < len; i++)
		cr_assert_eq(buf[i], 0, "written after the unmap returned (byte %zu)", i);
	if (p[1].revents) {
		uint64_t addr;

		cr_assert_eq(rd(GPUP_REG_QUEUE(1) + GPUP_Q_FAULT), GPUP_FAULT_IOMMU_UNMAPPED);
		cr_assert_eq(vgpu_bar0_read(cur->v, GPUP_REG_FAULT_LOG + GPUP_FAULT_REC_ADDR_LO,
					    &addr, 8), 0);
		cr_assert(addr >= iova && addr < iova + len, "%#lx", (unsigned long)addr);
	} else {
		cr_assert_eq(rd(GPUP_REG_QUEUE(1) + GPUP_Q_CI), cur->pi[1], "all copies landed");
	}
	munmap(buf, len);
}

/* ---- the watchdog ---- */

#define WD_NS (50ull * 1000000)

/* The compute engine under the time-slice scheduler, as the daemon runs
 * it, with a watchdog of wd_ns. */
static void compute_watchdog(uint64_t wd_ns)
{
	struct gpup_engine *e = gpup_gpu_engine(gpu, GPUP_ENGINE_KIND_COMPUTE, 0);

	cr_assert_eq(gpup_tsched_set_policy(e, SCHED_POLICY_WEIGHTED, 1000000), 0);
	cr_assert_eq(gpup_tsched_set_watchdog(e, wd_ns), 0);
}

static bool reset_done(struct tv *t)
{
	uint32_t ctl;

	cr_assert_eq(vgpu_bar0_read(t->v, GPUP_REG_CONTROL, &ctl, 4), 0);
	return ctl == 0;
}

/* One SAXPY round on queue 0 of the current vgpu (data in and out by
 * COPY), checked bit for bit against plain C. */
static void saxpy_round(uint32_t seed)
{
	const uint64_t n = 50000;
	float *x = (float *)hva(DATA + (4 << 20)), *y = x + n, a = 1.75f;
	float ref[50000];
	uint32_t abits;

	memcpy(&abits, &a, 4);
	for (uint64_t i = 0; i < 2 * n; i++)
		x[i] = rndf(&seed);
	for (uint64_t i = 0; i < n; i++) {
		float p = a * x[i];

		ref[i] = p + y[i];
	}
	union gpup_cmd work[4] = {
		copy(GPUP_SPACE_IOVA, DATA + (4 << 20), GPUP_SPACE_VRAM, 0, 8 * n),
		kernel(GPUP_KERNEL_SAXPY, n, abits, 0, 4 * n, 0, 0),
		copy(GPUP_SPACE_VRAM, 4 * n, GPUP_SPACE_IOVA, DATA + (4 << 20), 4 * n),
		fence(DONE(0), cur->pi[0] + 4, true),
	};

	submit(0, work, 4);
	cr_assert(wait_irq(0, 10000), "round %u", seed);
	cr_assert_eq(*(uint64_t *)hva(DONE(0)), cur->pi[0]);
	cr_assert_eq(memcmp(x, ref, n * 4), 0, "round %u", seed);
}

/* After a WATCHDOG fault on queue q: the fault interrupt, the reset of
 * the whole function, and the fault record kept through it. */
static void expect_watchdog_reset(unsigned int q, uint64_t addr, uint64_t detail,
				  uint32_t count)
{
	uint32_t rec = GPUP_REG_FAULT_LOG + (count - 1) % GPUP_FAULT_LOG_ENTRIES *
		       GPUP_FAULT_REC_SIZE;

	cr_assert(wait_irq(FAULT_VEC, 5000), "fault interrupt");
	for (int i = 0; i < 5000 && !reset_done(cur); i++)
		usleep(1000);
	cr_assert(reset_done(cur), "the partition is reset");
	for (unsigned int i = 0; i < GPUP_MAX_QUEUES; i++) {
		cr_assert_eq(rd(GPUP_REG_QUEUE(i) + GPUP_Q_STATUS), 0, "queue %u stopped", i);
		cr_assert_eq(rd(GPUP_REG_QUEUE(i) + GPUP_Q_CONTROL), 0, "queue %u disabled", i);
		cr_assert_eq(rd(GPUP_REG_QUEUE(i) + GPUP_Q_RING_ENTRIES), 0);
	}
	cr_assert_eq(rd(GPUP_REG_STATUS), GPUP_STS_FAULT, "not ready, fault kept");
	cr_assert_eq(rd(GPUP_REG_INTR_STATUS), GPUP_INTR_FAULT);
	cr_assert_eq(rd(GPUP_REG_FAULT_COUNT), count);
	cr_assert_eq(rd(rec + GPUP_FAULT_REC_CODE), GPUP_FAULT_WATCHDOG);
	cr_assert_eq(rd(rec + GPUP_FAULT_REC_QUEUE), q);
	cr_assert_eq(rd64(rec + GPUP_FAULT_REC_ADDR_LO), addr);
	cr_assert_eq(rd64(rec + GPUP_FAULT_REC_DETAIL_LO), detail);
	cr_assert_eq(rd64(rec + GPUP_FAULT_REC_SEQ_LO), count);
}

/* What a guest does after a reset: acknowledge, enable, set queues up. */
static void reinit(void)
{
	wr(GPUP_REG_INTR_STATUS, GPUP_INTR_FAULT);
	wr(GPUP_REG_CONTROL, GPUP_CTRL_ENABLE);
	cr_assert_eq(rd(GPUP_REG_STATUS), GPUP_STS_READY);
	queue_setup(0, GPUP_ENGINE_COMPUTE);
	queue_setup(1, GPUP_ENGINE_COPY);
}

/* A hung queue of tv0 (hang[0] on queue 0, with queues 1 and 2 up beside
 * it) while tv1 on the same GPU computes: tv1 stays exact throughout and
 * after; tv0 is reset with its fault readable, and works once set up
 * again. */
static void hung_partition_is_reset(const union gpup_cmd *hang, uint64_t detail)
{
	compute_watchdog(WD_NS);
	tv_init(&tv1, 0, 1);
	cur = &tv0;
	*(uint64_t *)hva(DATA) = 0;
	queue_setup(2, GPUP_ENGINE_COMPUTE);
	uint64_t pkt = RING(0) + cur->pi[0] % ENTRIES * GPUP_CMD_SIZE;
	union gpup_cmd c[2] = { *hang, fence(DONE(0), 1, true) };

	submit(0, c, 2);
	cur = &tv1;
	for (uint32_t r = 0; r < 2 || !reset_done(&tv0); r++) {
		cr_assert_lt(r, 2000, "tv0 never reset");
		saxpy_round(r);
	}
	cur = &tv0;
	expect_watchdog_reset(0, pkt, detail, 1);
	cr_assert_not(wait_irq(0, 0), "the hung packet's fence never ran");
	cur = &tv1;
	saxpy_round(9999);
	cr_assert_eq(rd(GPUP_REG_FAULT_COUNT), 0, "tv1 saw no fault");
	cr_assert_eq(rd(GPUP_REG_STATUS), GPUP_STS_READY);
	cur = &tv0;
	reinit();
	run_one(0, fence(DATA + 8, 5, false));
	cr_assert_eq(*(uint64_t *)hva(DATA + 8), 5, "tv0 computes again");
	run_one(1, fence(DATA + 16, 6, false));
	cr_assert_eq(rd(GPUP_REG_FAULT_COUNT), 1, "the record stays until a guest reset");
	wr(GPUP_REG_CONTROL, GPUP_CTRL_RESET);
	cr_assert_eq(rd(GPUP_REG_FAULT_COUNT), 0);
}

Test(vgpu_cmd, watchdog_resets_partition_of_a_wait_that_never_completes)
{
	union gpup_cmd w = wait_cmd(GPUP_WAIT_EQ, DATA, 1, ~0ull);

	hung_partition_is_reset(&w, TAGGED(0x3a, GPUP_OP_WAIT));
}

Test(vgpu_cmd, watchdog_resets_partition_of_an_endless_spin)
{
	union gpup_cmd k = kernel(GPUP_KERNEL_SPIN, UINT64_MAX, 0, 0, 0, 0, 0);

	hung_partition_is_reset(&k, TAGGED(0x4b, GPUP_OP_KERNEL));
}

/* A guest that sets its queues up again the moment it takes the fault
 * interrupt, before the reset thread may have run: the reset comes first,
 * never after, so the new setup stands. */
Test(vgpu_cmd, guest_setup_right_after_the_watchdog_fault_stands)
{
	union gpup_cmd w[2] = { wait_cmd(GPUP_WAIT_EQ, DATA, 1, ~0ull), fence(DONE(0), 1, true) };

	compute_watchdog(20ull * 1000000);
	*(uint64_t *)hva(DATA) = 0;
	for (uint32_t i = 1; i <= 4; i++) {
		submit(0, w, 2);
		cr_assert(wait_irq(FAULT_VEC, 5000));
		reinit();
		usleep(30000);
		cr_assert_eq(rd(GPUP_REG_QUEUE(0) + GPUP_Q_STATUS), GPUP_QSTS_ENABLED);
		cr_assert_eq(rd(GPUP_REG_QUEUE(1) + GPUP_Q_STATUS), GPUP_QSTS_ENABLED);
		cr_assert_eq(rd(GPUP_REG_FAULT_COUNT), i);
		run_one(1, fence(DATA + 8, i, false));
		cr_assert_eq(*(uint64_t *)hva(DATA + 8), i);
	}
}

/* Destroying a partition while its watchdog fires, or just after, while
 * the reset thread is owed or running: no use after free (ASan), and the
 * other partition carries on. */
Test(vgpu_cmd, destroy_racing_the_watchdog_reset)
{
	union gpup_cmd w[2] = { wait_cmd(GPUP_WAIT_EQ, DATA, 1, ~0ull), fence(DONE(0), 1, true) };
	union gpup_cmd k[2] = { kernel(GPUP_KERNEL_SPIN, UINT64_MAX, 0, 0, 0, 0, 0),
				fence(DONE(2), 1, true) };

	compute_watchdog(20ull * 1000000);
	*(uint64_t *)hva(DATA) = 0;
	for (unsigned int i = 0; i < 8; i++) {
		tv_init(&tv1, 0, 1);
		queue_setup(2, GPUP_ENGINE_COMPUTE);
		submit(0, w, 2);
		submit(2, k, 2);
		if (i % 2)
			cr_assert(wait_irq(FAULT_VEC, 5000));
		else
			usleep(15000 + i * 4000);
		tv_fini(&tv1);
	}
	cur = &tv0;
	run_one(0, fence(DATA + 8, 7, false));
	cr_assert_eq(*(uint64_t *)hva(DATA + 8), 7);
	cr_assert_eq(rd(GPUP_REG_FAULT_COUNT), 0);
}

/* Interrupts go to the vectors the guest programs, read at queue enable. */
Test(vgpu_cmd, vectors_route_interrupts)
{
	union gpup_cmd bad = { .hdr = { .opcode = 123 } };

	wr(GPUP_REG_QUEUE(0) + GPUP_Q_CONTROL, 0);
	wr(GPUP_REG_QUEUE(0) + GPUP_Q_VECTOR, 6);
	wr(GPUP_REG_QUEUE(0) + GPUP_Q_CONTROL, GPUP_QCTL_ENABLE);
	wr(GPUP_REG_QUEUE(0) + GPUP_Q_VECTOR, 2); /* not seen until re-enabled */
	wr(GPUP_REG_FAULT_VECTOR, 5);
	submit(0, (union gpup_cmd[]){ fence(DATA, 1, true) }, 1);
	cr_assert(wait_irq(6, 5000));
	cr_assert_not(wait_irq(0, 0));
	cr_assert_not(wait_irq(2, 0));
	submit(0, &bad, 1);
	cr_assert(wait_irq(5, 5000));
	cr_assert_not(wait_irq(FAULT_VEC, 0));
	cr_assert_eq(vgpu_set_irq_fd(cur->v, 5, -1), 0);
	wr(GPUP_REG_INTR_STATUS, GPUP_INTR_FAULT);
	submit(1, &bad, 1);
	for (int i = 0; i < 500 && !(rd(GPUP_REG_STATUS) & GPUP_STS_FAULT); i++)
		usleep(1000);
	cr_assert_eq(rd(GPUP_REG_FAULT_COUNT), 2, "a disconnected vector still logs");
	cr_assert_not(wait_irq(5, 0));

	struct vgpu_stats st;

	vgpu_get_stats(cur->v, &st);
	cr_assert_eq(st.interrupts, 2);
	cr_assert_eq(st.faults, 2);
}
