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

#include "gpup/gpu.h"
#include "gpup/vgpu.h"
#include "iommu/iommu.h"
#include "uapi/gpup_vgpu.h"

#define VRAM (64ull << 20)
#define PART (16ull << 20)      /* the vgpu's window, at PART_OFF */
#define PART_OFF (32ull << 20)
#define RAM_SIZE (8ull << 20)
#define RAM_IOVA 0x100000000ull
#define RO_IOVA 0x200000000ull  /* a read-only mapping of the last RAM MiB */
#define RING(q) (RAM_IOVA + (q) * 0x10000ull)
#define PI(q) (RAM_IOVA + 0x80000ull + (q) * 8)
#define DATA (RAM_IOVA + (1ull << 20))
#define ENTRIES 64u

static struct gpup_gpu *gpu;
static struct iommu_domain *dom;
static uint8_t *ram;
static struct vgpu *v;
static int irq[GPUP_MSIX_VECTORS];
static uint32_t pi[GPUP_MAX_QUEUES];

static uint8_t *hva(uint64_t iova)
{
	return ram + (iova - RAM_IOVA);
}

static void wr(uint32_t off, uint32_t val)
{
	cr_assert_eq(vgpu_bar0_write(v, off, &val, 4), 0);
}

static uint32_t rd(uint32_t off)
{
	uint32_t val;

	cr_assert_eq(vgpu_bar0_read(v, off, &val, 4), 0);
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
	pi[q] = rd(GPUP_REG_QUEUE(q) + GPUP_Q_CI);
}

static void setup(void)
{
	struct gpup_gpu_cfg gc = { .index = 0, .vram_size = VRAM, .ncompute = 1, .ncopy = 1 };
	struct iommu_domain_cfg dc = { .name = "test" };

	gpu = gpup_sim_gpu_create(&gc);
	cr_assert_not_null(gpu);
	dom = iommu_domain_create(&dc);
	cr_assert_not_null(dom);
	int fd = memfd_create("guest-ram", 0);

	cr_assert_eq(ftruncate(fd, RAM_SIZE), 0);
	ram = mmap(NULL, RAM_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	cr_assert_neq(ram, MAP_FAILED);
	close(fd);
	cr_assert_eq(iommu_map(dom, RAM_IOVA, ram, RAM_SIZE - (1 << 20),
			       IOMMU_READ | IOMMU_WRITE), 0);
	cr_assert_eq(iommu_map(dom, RO_IOVA, ram + RAM_SIZE - (1 << 20), 1 << 20, IOMMU_READ), 0);
	struct vgpu_cfg vc = { .gpu = gpu, .vram_offset = PART_OFF, .vram_size = PART,
			       .iommu = dom, .name = "t0" };

	v = vgpu_create(&vc);
	cr_assert_not_null(v);
	for (unsigned int i = 0; i < GPUP_MSIX_VECTORS; i++) {
		irq[i] = eventfd(0, EFD_NONBLOCK);
		cr_assert_eq(vgpu_set_irq_fd(v, i, irq[i]), 0);
	}
	wr(GPUP_REG_CONTROL, GPUP_CTRL_ENABLE);
	queue_setup(0, GPUP_ENGINE_COMPUTE);
	queue_setup(1, GPUP_ENGINE_COPY);
}

static void teardown(void)
{
	vgpu_destroy(v);
	for (unsigned int i = 0; i < GPUP_MSIX_VECTORS; i++)
		close(irq[i]);
	iommu_domain_destroy(dom);
	munmap(ram, RAM_SIZE);
	gpup_gpu_destroy(gpu);
}

TestSuite(vgpu_cmd, .init = setup, .fini = teardown, .timeout = 30);

static uint8_t *vram(uint64_t off)
{
	return (uint8_t *)gpup_gpu_vram_map(gpu) + PART_OFF + off;
}

/* Put packets on queue q, publish PI, ring the doorbell through its fd. */
static void submit(unsigned int q, const union gpup_cmd *cmds, unsigned int n)
{
	uint64_t one = 1;

	for (unsigned int i = 0; i < n; i++)
		memcpy(hva(RING(q)) + (pi[q] + i) % ENTRIES * GPUP_CMD_SIZE, &cmds[i],
		       GPUP_CMD_SIZE);
	pi[q] += n;
	__atomic_store_n((uint32_t *)hva(PI(q)), pi[q], __ATOMIC_RELEASE);
	cr_assert_eq(write(vgpu_doorbell_fd(v, q), &one, 8), 8);
}

/* Wait for an interrupt on vector; false on timeout. */
static bool wait_irq(unsigned int vector, int ms)
{
	struct pollfd p = { .fd = irq[vector], .events = POLLIN };
	uint64_t n;

	if (poll(&p, 1, ms) != 1)
		return false;
	cr_assert_eq(read(irq[vector], &n, 8), 8);
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
	union gpup_cmd c[2] = { cmd, fence(RAM_IOVA + 0x90000 + q * 8, pi[q] + 2, true) };

	submit(q, c, 2);
	cr_assert(wait_irq(q, 5000), "fence interrupt on queue %u", q);
	cr_assert_eq(*(uint64_t *)hva(RAM_IOVA + 0x90000 + q * 8), pi[q]);
	cr_assert_eq(rd(GPUP_REG_QUEUE(q) + GPUP_Q_CI), pi[q]);
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
