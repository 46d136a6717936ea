// SPDX-License-Identifier: MIT
/*
 * The vGPU register file as uapi/gpup_vgpu.h defines it: identity and
 * reset values, RO/RW/RW1C semantics, 8-byte accesses split in two, bad
 * sizes, alignments and ranges refused with nothing changed; then reset
 * (also with queues busy), device loss, destroy with work in flight, the
 * eventfd calls and creation errors.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <poll.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <unistd.h>

#include "gpup/gpu/gpu.h"
#include "gpup/vgpu/vgpu.h"
#include "iommu/iommu.h"
#include "uapi/gpup_vgpu.h"

#define VRAM (32ull << 20)
#define PART (8ull << 20)
#define RAM_IOVA 0x40000000ull
#define RAM_SIZE (1ull << 20)
#define RING_IOVA RAM_IOVA
#define PI_IOVA (RAM_IOVA + 0x8000)
#define QR(q, r) (GPUP_REG_QUEUE(q) + (r))

static struct gpup_gpu *gpu;
static struct iommu_domain *dom;
static uint8_t *ram;
static struct vgpu *v;
static int fault_fd;

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

static void setup(void)
{
	struct gpup_gpu_cfg gc = { .index = 1, .vram_size = VRAM, .ncompute = 2, .ncopy = 1 };
	struct iommu_domain_cfg dc = { .name = "regs" };

	gpu = gpup_sim_gpu_create(&gc);
	cr_assert_not_null(gpu);
	dom = iommu_domain_create(&dc);
	ram = mmap(NULL, RAM_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	cr_assert_neq(ram, MAP_FAILED);
	cr_assert_eq(iommu_map(dom, RAM_IOVA, ram, RAM_SIZE, IOMMU_READ | IOMMU_WRITE), 0);
	struct vgpu_cfg vc = { .gpu = gpu, .vram_offset = PART, .vram_size = PART,
			       .iommu = dom, .name = "regs" };

	v = vgpu_create(&vc);
	cr_assert_not_null(v);
	fault_fd = eventfd(0, EFD_NONBLOCK);
	cr_assert_eq(vgpu_set_irq_fd(v, GPUP_MAX_QUEUES, fault_fd), 0);
}

static void teardown(void)
{
	vgpu_destroy(v);
	close(fault_fd);
	iommu_domain_destroy(dom);
	munmap(ram, RAM_SIZE);
	gpup_gpu_destroy(gpu);
}

TestSuite(vgpu_regs, .init = setup, .fini = teardown, .timeout = 30);

Test(vgpu_regs, identity_and_reset_values)
{
	cr_assert_eq(rd(GPUP_REG_ID), GPUP_ID_MAGIC);
	cr_assert_eq(rd(GPUP_REG_VERSION), GPUP_ABI_VERSION);
	/* No client took the doorbells' ioeventfds: the watch is offered. */
	cr_assert_eq(rd(GPUP_REG_CAPS), GPUP_CAP_MSIX | GPUP_CAP_SHADOW_PI | GPUP_CAP_FAULT_LOG |
						GPUP_CAP_TIMESTAMP | GPUP_CAP_RECOVERY | GPUP_CAP_WATCH);
	cr_assert_eq(rd(GPUP_REG_NUM_QUEUES), GPUP_MAX_QUEUES);
	cr_assert_eq(rd(GPUP_REG_VRAM_SIZE_LO), (uint32_t)PART);
	cr_assert_eq(rd(GPUP_REG_VRAM_SIZE_HI), 0);
	cr_assert_eq(rd(GPUP_REG_NUM_ENGINES), 2);
	cr_assert_eq(rd(GPUP_REG_KERNELS), (1u << GPUP_KERNEL_MAX) - 1);
	cr_assert_eq(rd(GPUP_REG_CONTROL), 0);
	cr_assert_eq(rd(GPUP_REG_STATUS), 0);
	cr_assert_eq(rd(GPUP_REG_INTR_STATUS), 0);
	cr_assert_eq(rd(GPUP_REG_INTR_MASK), 0);
	cr_assert_eq(rd(GPUP_REG_FAULT_VECTOR), GPUP_MAX_QUEUES);
	cr_assert_eq(rd(GPUP_REG_FAULT_COUNT), 0);
	for (unsigned int q = 0; q < GPUP_MAX_QUEUES; q++) {
		for (uint32_t r = 0; r < GPUP_REG_QUEUE_STRIDE; r += 4)
			cr_assert_eq(rd(QR(q, r)), r == GPUP_Q_VECTOR ? q : 0, "q%u +%#x", q, r);
	}
	for (uint32_t off = GPUP_REG_FAULT_LOG; off < GPUP_REG_QUEUE_BASE; off += 4)
		cr_assert_eq(rd(off), 0);
}

Test(vgpu_regs, read_only_registers_ignore_writes)
{
	uint32_t ro[] = { GPUP_REG_ID, GPUP_REG_VERSION, GPUP_REG_CAPS, GPUP_REG_NUM_QUEUES,
			  GPUP_REG_VRAM_SIZE_LO, GPUP_REG_NUM_ENGINES, GPUP_REG_KERNELS,
			  GPUP_REG_STATUS, GPUP_REG_FAULT_COUNT, GPUP_REG_FAULT_LOG,
			  QR(3, GPUP_Q_CI), QR(3, GPUP_Q_STATUS), QR(3, GPUP_Q_FAULT) };
	uint32_t before[sizeof(ro) / sizeof(ro[0])];

	for (size_t i = 0; i < sizeof(ro) / sizeof(ro[0]); i++)
		before[i] = rd(ro[i]);
	for (size_t i = 0; i < sizeof(ro) / sizeof(ro[0]); i++)
		wr(ro[i], 0xdeadbeef);
	for (size_t i = 0; i < sizeof(ro) / sizeof(ro[0]); i++)
		cr_assert_eq(rd(ro[i]), before[i], "%#x", ro[i]);
}

Test(vgpu_regs, read_write_registers_hold_values)
{
	uint32_t rw[] = { GPUP_REG_INTR_MASK, GPUP_REG_FAULT_VECTOR, GPUP_REG_SCRATCH,
			  QR(5, GPUP_Q_RING_LO), QR(5, GPUP_Q_RING_HI), QR(5, GPUP_Q_RING_ENTRIES),
			  QR(5, GPUP_Q_ENGINE), QR(5, GPUP_Q_PI_ADDR_LO), QR(5, GPUP_Q_PI_ADDR_HI),
			  QR(5, GPUP_Q_VECTOR), QR(5, GPUP_Q_PRIORITY) };

	for (size_t i = 0; i < sizeof(rw) / sizeof(rw[0]); i++)
		wr(rw[i], 0x1000u + (uint32_t)i * 0x111);
	for (size_t i = 0; i < sizeof(rw) / sizeof(rw[0]); i++)
		cr_assert_eq(rd(rw[i]), 0x1000u + (uint32_t)i * 0x111, "%#x", rw[i]);
	/* Setup written while a queue is disabled does not start it. */
	cr_assert_eq(rd(QR(5, GPUP_Q_STATUS)), 0);
	/* Reserved offsets read 0 and ignore writes (a queue's block is full:
	 * Q_FENCE and Q_WATCH took its last words; past the last queue's). */
	uint32_t reserved[] = { 0x028, 0x03c, 0x044, 0x054, 0x3fc, GPUP_REG_QUEUE(GPUP_MAX_QUEUES),
				0xffc, GPUP_DOORBELL(0), GPUP_PAGE_MSIX_TABLE,
				GPUP_PAGE_MSIX_PBA + 0xffc };

	for (size_t i = 0; i < sizeof(reserved) / sizeof(reserved[0]); i++) {
		wr(reserved[i], 0xffffffff);
		cr_assert_eq(rd(reserved[i]), 0, "%#x", reserved[i]);
	}
	/* Q_FENCE is the device's: 0 until a FENCE completes, not writable. */
	wr(QR(2, GPUP_Q_FENCE_LO), 0xffffffff);
	wr(QR(2, GPUP_Q_FENCE_HI), 0xffffffff);
	cr_assert_eq(rd(QR(2, GPUP_Q_FENCE_LO)), 0);
	cr_assert_eq(rd(QR(2, GPUP_Q_FENCE_HI)), 0);
}

Test(vgpu_regs, eight_byte_accesses_are_split)
{
	uint64_t val = 0x1122334455667780ull, got;

	cr_assert_eq(vgpu_bar0_write(v, QR(1, GPUP_Q_RING_LO), &val, 8), 0);
	cr_assert_eq(rd(QR(1, GPUP_Q_RING_LO)), 0x55667780u);
	cr_assert_eq(rd(QR(1, GPUP_Q_RING_HI)), 0x11223344u);
	cr_assert_eq(vgpu_bar0_read(v, QR(1, GPUP_Q_RING_LO), &got, 8), 0);
	cr_assert_eq(got, val);
	cr_assert_eq(vgpu_bar0_read(v, GPUP_REG_ID, &got, 8), 0);
	cr_assert_eq(got, ((uint64_t)GPUP_ABI_VERSION << 32) | GPUP_ID_MAGIC);
	uint64_t t0, t1;

	cr_assert_eq(vgpu_bar0_read(v, GPUP_REG_TIME_LO, &t0, 8), 0);
	usleep(2000);
	cr_assert_eq(vgpu_bar0_read(v, GPUP_REG_TIME_LO, &t1, 8), 0);
	cr_assert_geq(t1 - t0, 2000000ull, "the device clock runs in ns");
	cr_assert_eq(rd(GPUP_REG_TIME_HI), (uint32_t)(t1 >> 32), "HI latched by the LO read");
}

Test(vgpu_regs, bad_accesses_are_refused_and_change_nothing)
{
	uint64_t buf = 0xffffffffffffffffull;
	struct { uint64_t off; size_t len; } bad[] = {
		{ GPUP_REG_SCRATCH, 0 }, { GPUP_REG_SCRATCH, 16 }, { GPUP_REG_SCRATCH, 9 },
		{ GPUP_BAR0_SIZE, 4 }, { GPUP_BAR0_SIZE - 4, 8 }, { GPUP_BAR0_SIZE - 1, 2 },
		{ UINT64_MAX - 3, 4 }, { UINT64_MAX - 7, 8 }, { 1ull << 32, 4 },
	};

	wr(GPUP_REG_SCRATCH, 0xabcd);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		cr_assert_eq(vgpu_bar0_write(v, bad[i].off, &buf, bad[i].len), -EINVAL, "%zu", i);
		cr_assert_eq(vgpu_bar0_read(v, bad[i].off, &buf, bad[i].len), -EINVAL, "%zu", i);
		cr_assert_eq(buf, 0xffffffffffffffffull, "a refused read fills nothing");
	}
	cr_assert_eq(rd(GPUP_REG_SCRATCH), 0xabcd);
	cr_assert_eq(rd(GPUP_REG_SCRATCH + 4), 0);
	cr_assert_eq(vgpu_bar0_read(v, GPUP_BAR0_SIZE - 4, &buf, 4), 0, "the last word is fine");
	cr_assert_eq(vgpu_bar0_write(v, 0, NULL, 4), -EINVAL);
}

/* What a PCI device does with loads and stores of 1 and 2 bytes and
 * unaligned ones: reads return the bytes of the registers they cover;
 * writes merge into a plain register (read-modify-write), clear only the
 * written bits of the RW1C INTR_STATUS, and ring a doorbell whatever they
 * carry. */
Test(vgpu_regs, byte_word_and_unaligned_accesses)
{
	uint8_t b;
	uint16_t w;
	uint32_t d;
	uint64_t q;

	for (unsigned int i = 0; i < 4; i++) {
		cr_assert_eq(vgpu_bar0_read(v, GPUP_REG_ID + i, &b, 1), 0);
		cr_assert_eq(b, (uint8_t)(GPUP_ID_MAGIC >> (8 * i)), "byte %u", i);
	}
	cr_assert_eq(vgpu_bar0_read(v, GPUP_REG_ID + 1, &w, 2), 0);
	cr_assert_eq(w, (uint16_t)(GPUP_ID_MAGIC >> 8));
	cr_assert_eq(vgpu_bar0_read(v, GPUP_REG_ID + 3, &d, 4), 0, "across two registers");
	cr_assert_eq(d, (GPUP_ID_MAGIC >> 24) | (GPUP_ABI_VERSION << 8));
	wr(GPUP_REG_SCRATCH, 0x11223344);
	b = 0xaa;
	cr_assert_eq(vgpu_bar0_write(v, GPUP_REG_SCRATCH + 2, &b, 1), 0);
	cr_assert_eq(rd(GPUP_REG_SCRATCH), 0x11aa3344, "read-modify-write");
	w = 0xbeef;
	cr_assert_eq(vgpu_bar0_write(v, GPUP_REG_SCRATCH + 3, &w, 2), 0);
	cr_assert_eq(rd(GPUP_REG_SCRATCH), 0xefaa3344);
	cr_assert_eq(rd(GPUP_REG_SCRATCH + 4), 0, "the reserved word after it ignores its byte");
	/* An unaligned 8-byte store of a 64-bit pair: three registers. */
	q = 0x0102030405060708ull;
	cr_assert_eq(vgpu_bar0_write(v, QR(2, GPUP_Q_RING_LO) + 2, &q, 8), 0);
	cr_assert_eq(rd(QR(2, GPUP_Q_RING_LO)), 0x07080000u);
	cr_assert_eq(rd(QR(2, GPUP_Q_RING_HI)), 0x03040506u);
	cr_assert_eq(rd(QR(2, GPUP_Q_RING_ENTRIES)), 0x0102u);
	cr_assert_eq(vgpu_bar0_read(v, QR(2, GPUP_Q_RING_LO) + 2, &q, 8), 0);
	cr_assert_eq(q, 0x0102030405060708ull);
	/* A byte of CONTROL keeps its other bits: ENABLE stays on. */
	wr(GPUP_REG_CONTROL, GPUP_CTRL_ENABLE);
	b = 0;
	cr_assert_eq(vgpu_bar0_write(v, GPUP_REG_CONTROL + 1, &b, 1), 0);
	cr_assert_eq(rd(GPUP_REG_CONTROL), GPUP_CTRL_ENABLE);
	cr_assert_eq(vgpu_bar0_write(v, GPUP_REG_CONTROL, &b, 1), 0);
	cr_assert_eq(rd(GPUP_REG_CONTROL), 0, "the byte holding ENABLE clears it");
	/* A partial write of the mask is plain; one of RW1C status clears
	 * only the bits it writes (not the whole register read back). */
	wr(GPUP_REG_INTR_MASK, 0xffffffff);
	b = 0;
	cr_assert_eq(vgpu_bar0_write(v, GPUP_REG_INTR_MASK + 3, &b, 1), 0);
	cr_assert_eq(rd(GPUP_REG_INTR_MASK), 0x00ffffffu);
	b = 0xff;
	cr_assert_eq(vgpu_bar0_write(v, GPUP_REG_INTR_STATUS + 1, &b, 1), 0);
	cr_assert_eq(rd(GPUP_REG_INTR_STATUS), 0);
}

static void queue_up(unsigned int q, uint32_t engine)
{
	wr(QR(q, GPUP_Q_RING_LO), (uint32_t)(RING_IOVA + q * 0x1000));
	wr(QR(q, GPUP_Q_RING_HI), 0);
	wr(QR(q, GPUP_Q_RING_ENTRIES), 16);
	wr(QR(q, GPUP_Q_ENGINE), engine);
	wr(QR(q, GPUP_Q_PI_ADDR_LO), (uint32_t)(PI_IOVA + q * 8));
	wr(QR(q, GPUP_Q_CONTROL), GPUP_QCTL_ENABLE);
}

/* Put n copies of cmd on queue q at producer index pi and ring. */
static void post(unsigned int q, const union gpup_cmd *cmd, uint32_t pi, uint32_t n)
{
	for (uint32_t i = 0; i < n; i++)
		memcpy(ram + q * 0x1000 + (pi + i) % 16 * GPUP_CMD_SIZE, cmd, GPUP_CMD_SIZE);
	__atomic_store_n((uint32_t *)(ram + 0x8000 + q * 8), pi + n, __ATOMIC_RELEASE);
	wr(GPUP_DOORBELL(q), 1);
}

static bool wait_for(uint32_t off, uint32_t mask, uint32_t want)
{
	for (int i = 0; i < 5000; i++) {
		if ((rd(off) & mask) == want)
			return true;
		usleep(1000);
	}
	return false;
}

Test(vgpu_regs, doorbells_run_queues_and_intr_status_is_rw1c)
{
	union gpup_cmd f = { .fence = { .hdr = { .opcode = GPUP_OP_FENCE, .flags = GPUP_FENCE_IRQ },
			     .space = GPUP_SPACE_VRAM, .addr = 0, .value = 5 } };

	wr(GPUP_REG_CONTROL, GPUP_CTRL_ENABLE);
	cr_assert_eq(rd(GPUP_REG_STATUS), GPUP_STS_READY);
	queue_up(2, GPUP_ENGINE_COMPUTE);
	queue_up(3, GPUP_ENGINE_COPY);
	wr(GPUP_REG_INTR_MASK, 0xc); /* masked: status bits only */
	post(2, &f, 0, 3);
	post(3, &f, 0, 1);
	cr_assert(wait_for(QR(2, GPUP_Q_CI), ~0u, 3));
	cr_assert(wait_for(QR(3, GPUP_Q_CI), ~0u, 1));
	cr_assert_eq(rd(GPUP_REG_INTR_STATUS), 0xc);
	wr(GPUP_REG_INTR_STATUS, 0x4 | 0x100);
	cr_assert_eq(rd(GPUP_REG_INTR_STATUS), 0x8);
	wr(GPUP_REG_INTR_STATUS, 0);
	cr_assert_eq(rd(GPUP_REG_INTR_STATUS), 0x8);

	struct vgpu_stats st;

	vgpu_get_stats(v, &st);
	cr_assert_eq(st.commands, 4);
	cr_assert_eq(st.doorbells, 2);
	cr_assert_eq(st.interrupts, 0);
	cr_assert_eq(st.faults, 0);
}

Test(vgpu_regs, disabled_device_runs_nothing_until_enabled)
{
	union gpup_cmd f = { .fence = { .hdr = { .opcode = GPUP_OP_FENCE },
			     .space = GPUP_SPACE_IOVA, .addr = RAM_IOVA + 0x9000, .value = 7 } };

	queue_up(0, GPUP_ENGINE_COMPUTE);
	post(0, &f, 0, 1);
	usleep(20000);
	cr_assert_eq(rd(QR(0, GPUP_Q_CI)), 0);
	cr_assert_eq(*(uint64_t *)(ram + 0x9000), 0);
	wr(GPUP_REG_CONTROL, GPUP_CTRL_ENABLE);
	cr_assert(wait_for(QR(0, GPUP_Q_CI), ~0u, 1));
	cr_assert_eq(*(uint64_t *)(ram + 0x9000), 7);
}

static void check_reset_state(void)
{
	cr_assert_eq(rd(GPUP_REG_CONTROL), 0);
	cr_assert_eq(rd(GPUP_REG_STATUS), 0);
	cr_assert_eq(rd(GPUP_REG_INTR_STATUS), 0);
	cr_assert_eq(rd(GPUP_REG_INTR_MASK), 0);
	cr_assert_eq(rd(GPUP_REG_SCRATCH), 0);
	cr_assert_eq(rd(GPUP_REG_FAULT_COUNT), 0);
	cr_assert_eq(rd(GPUP_REG_FAULT_LOG), 0);
	for (unsigned int q = 0; q < GPUP_MAX_QUEUES; q++)
		for (uint32_t r = 0; r < GPUP_REG_QUEUE_STRIDE; r += 4)
			cr_assert_eq(rd(QR(q, r)), r == GPUP_Q_VECTOR ? q : 0);
}

/* Reset with a queue in the middle of a long kernel: the engine drops
 * it, every register returns to its reset value, and the device works
 * again once set up. */
static void reset_while_busy(bool through_bar0)
{
	union gpup_cmd spin = { .kernel = { .hdr = { .opcode = GPUP_OP_KERNEL },
				.kernel = GPUP_KERNEL_SPIN, .args = { 10000000000ull } } };
	union gpup_cmd bad = { .hdr = { .opcode = 77 } };

	wr(GPUP_REG_CONTROL, GPUP_CTRL_ENABLE);
	wr(GPUP_REG_SCRATCH, 9);
	queue_up(0, GPUP_ENGINE_COMPUTE);
	queue_up(1, GPUP_ENGINE_COMPUTE);
	post(0, &spin, 0, 1);
	post(1, &bad, 0, 1);
	cr_assert(wait_for(GPUP_REG_FAULT_COUNT, ~0u, 1));
	cr_assert(wait_for(QR(0, GPUP_Q_STATUS), GPUP_QSTS_BUSY, GPUP_QSTS_BUSY));
	if (through_bar0)
		wr(GPUP_REG_CONTROL, GPUP_CTRL_RESET | GPUP_CTRL_ENABLE);
	else
		vgpu_reset(v);
	check_reset_state();

	union gpup_cmd f = { .fence = { .hdr = { .opcode = GPUP_OP_FENCE },
			     .space = GPUP_SPACE_VRAM, .addr = 8, .value = 3 } };

	wr(GPUP_REG_CONTROL, GPUP_CTRL_ENABLE);
	queue_up(0, GPUP_ENGINE_COMPUTE);
	post(0, &f, 1, 1);
	cr_assert(wait_for(QR(0, GPUP_Q_CI), ~0u, 2));
	cr_assert_eq(*(uint64_t *)((uint8_t *)gpup_gpu_vram_map(gpu) + PART + 8), 3);
}

Test(vgpu_regs, reset_stops_busy_queues_and_restores_registers)
{
	reset_while_busy(false);
}

Test(vgpu_regs, control_reset_bit_is_a_function_reset)
{
	reset_while_busy(true);
}

Test(vgpu_regs, lost_device_faults_every_queue)
{
	uint64_t n;

	wr(GPUP_REG_CONTROL, GPUP_CTRL_ENABLE);
	queue_up(0, GPUP_ENGINE_COMPUTE);
	queue_up(4, GPUP_ENGINE_COPY);
	vgpu_set_lost(v);
	cr_assert_eq(rd(GPUP_REG_STATUS), GPUP_STS_FAULT | GPUP_STS_LOST);
	cr_assert_eq(rd(GPUP_REG_FAULT_COUNT), 2);
	for (unsigned int i = 0; i < 2; i++) {
		uint32_t rec = GPUP_REG_FAULT_LOG + i * GPUP_FAULT_REC_SIZE;

		cr_assert_eq(rd(rec + GPUP_FAULT_REC_CODE), GPUP_FAULT_DEVICE_LOST);
		cr_assert_eq(rd(rec + GPUP_FAULT_REC_QUEUE), i * 4);
		cr_assert_eq(rd(rec + GPUP_FAULT_REC_SEQ_LO), i + 1);
	}
	cr_assert_eq(rd(QR(4, GPUP_Q_FAULT)), GPUP_FAULT_DEVICE_LOST);
	cr_assert_eq(read(fault_fd, &n, 8), 8);
	cr_assert_eq(n, 2);

	union gpup_cmd f = { .fence = { .hdr = { .opcode = GPUP_OP_FENCE },
			     .space = GPUP_SPACE_VRAM, .addr = 0, .value = 1 } };

	post(0, &f, 0, 1);
	usleep(20000);
	cr_assert_eq(rd(QR(0, GPUP_Q_CI)), 0, "a lost device runs nothing");
	vgpu_reset(v);
	check_reset_state();
}

Test(vgpu_regs, fault_log_wraps_and_keeps_the_newest)
{
	union gpup_cmd bad = { .hdr = { .opcode = 50, .tag = 0 } };

	wr(GPUP_REG_CONTROL, GPUP_CTRL_ENABLE);
	queue_up(0, GPUP_ENGINE_COMPUTE);
	for (uint32_t i = 0; i < GPUP_FAULT_LOG_ENTRIES + 3; i++) {
		bad.hdr.tag = i;
		post(0, &bad, i, 1);
		cr_assert(wait_for(GPUP_REG_FAULT_COUNT, ~0u, i + 1));
		wr(QR(0, GPUP_Q_CONTROL), 0);
		wr(QR(0, GPUP_Q_CONTROL), GPUP_QCTL_ENABLE);
	}
	for (uint32_t i = 3; i < GPUP_FAULT_LOG_ENTRIES + 3; i++) {
		uint32_t rec = GPUP_REG_FAULT_LOG + i % GPUP_FAULT_LOG_ENTRIES * GPUP_FAULT_REC_SIZE;

		cr_assert_eq(rd(rec + GPUP_FAULT_REC_SEQ_LO), i + 1);
		cr_assert_eq(rd(rec + GPUP_FAULT_REC_DETAIL_HI), i, "the packet's tag");
	}
}

Test(vgpu_regs, destroy_with_work_in_flight)
{
	union gpup_cmd spin = { .kernel = { .hdr = { .opcode = GPUP_OP_KERNEL },
				.kernel = GPUP_KERNEL_SPIN, .args = { 10000000000ull } } };
	union gpup_cmd w = { .wait = { .hdr = { .opcode = GPUP_OP_WAIT },
			     .space = GPUP_SPACE_VRAM, .op = GPUP_WAIT_EQ, .addr = 0,
			     .value = 1, .mask = ~0ull } };

	wr(GPUP_REG_CONTROL, GPUP_CTRL_ENABLE);
	queue_up(0, GPUP_ENGINE_COMPUTE);
	queue_up(1, GPUP_ENGINE_COPY);
	post(0, &spin, 0, 1);
	post(1, &w, 0, 1);
	cr_assert(wait_for(QR(0, GPUP_Q_STATUS), GPUP_QSTS_BUSY, GPUP_QSTS_BUSY));
	cr_assert(wait_for(QR(1, GPUP_Q_STATUS), GPUP_QSTS_BUSY, GPUP_QSTS_BUSY));
	vgpu_destroy(v);
	/* The engines carry on for other partitions. */
	struct vgpu_cfg vc = { .gpu = gpu, .vram_offset = 0, .vram_size = PART, .iommu = dom };

	v = vgpu_create(&vc);
	cr_assert_not_null(v);
	wr(GPUP_REG_CONTROL, GPUP_CTRL_ENABLE);
	queue_up(0, GPUP_ENGINE_COMPUTE);
	union gpup_cmd nop = { .hdr = { .opcode = GPUP_OP_NOP } };

	post(0, &nop, 0, 5);
	cr_assert(wait_for(QR(0, GPUP_Q_CI), ~0u, 5));
}

Test(vgpu_regs, fd_calls_check_arguments)
{
	int fd = eventfd(0, 0);

	cr_assert_geq(vgpu_doorbell_fd(v, 0), 0);
	cr_assert_neq(vgpu_doorbell_fd(v, 0), vgpu_doorbell_fd(v, 1));
	cr_assert_eq(vgpu_doorbell_fd(v, GPUP_MAX_QUEUES), -EINVAL);
	cr_assert_eq(vgpu_set_irq_fd(v, GPUP_MSIX_VECTORS, fd), -EINVAL);
	cr_assert_eq(vgpu_set_irq_fd(v, 0, -2), -EINVAL);
	cr_assert_eq(vgpu_set_irq_fd(v, 0, 9999), -EBADF);
	cr_assert_eq(vgpu_set_irq_fd(v, 0, fd), 0);
	close(fd); /* the vgpu keeps its own copy */
	cr_assert_eq(vgpu_set_irq_fd(v, 0, -1), 0);
	vgpu_doorbell(v, GPUP_MAX_QUEUES); /* ignored, no crash */
}

Test(vgpu_regs, create_rejects_bad_windows)
{
	struct vgpu_cfg bad[] = {
		{ .gpu = gpu, .vram_offset = 0, .vram_size = 0, .iommu = dom },
		{ .gpu = gpu, .vram_offset = VRAM - PART + 4096, .vram_size = PART, .iommu = dom },
		{ .gpu = gpu, .vram_offset = UINT64_MAX - 4095, .vram_size = PART, .iommu = dom },
		{ .gpu = gpu, .vram_offset = 0, .vram_size = VRAM + 1, .iommu = dom },
		{ .gpu = gpu, .vram_offset = 0, .vram_size = PART, .iommu = NULL },
		{ .gpu = NULL, .vram_offset = 0, .vram_size = PART, .iommu = dom },
	};

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		errno = 0;
		cr_assert_null(vgpu_create(&bad[i]), "%zu", i);
		cr_assert_eq(errno, EINVAL);
	}
	cr_assert_null(vgpu_create(NULL));
}

Test(vgpu_regs, gpu_failures_at_the_backend_boundary)
{
	struct vgpu_cfg vc = { .gpu = gpu, .vram_offset = 0, .vram_size = PART, .iommu = dom };

	gpup_gpu_inject_fault(gpu, GPUP_GPU_OP_VRAM_MAP, EIO);
	errno = 0;
	cr_assert_null(vgpu_create(&vc));
	cr_assert_eq(errno, ENODEV);
	gpup_gpu_inject_fault(gpu, GPUP_GPU_OP_ENGINE, EIO);
	wr(GPUP_REG_CONTROL, GPUP_CTRL_ENABLE);
	queue_up(6, GPUP_ENGINE_COPY);
	cr_assert_eq(rd(QR(6, GPUP_Q_STATUS)), GPUP_QSTS_ENABLED | GPUP_QSTS_FAULTED);
	cr_assert_eq(rd(QR(6, GPUP_Q_FAULT)), GPUP_FAULT_DEVICE_LOST);
	cr_assert_eq(rd(GPUP_REG_FAULT_LOG + GPUP_FAULT_REC_DETAIL_LO), ENODEV);
	gpup_gpu_inject_fault(gpu, 0, 0);
	wr(QR(6, GPUP_Q_CONTROL), 0);
	wr(QR(6, GPUP_Q_CONTROL), GPUP_QCTL_ENABLE);
	cr_assert_eq(rd(QR(6, GPUP_Q_STATUS)), GPUP_QSTS_ENABLED);
	union gpup_cmd nop = { .hdr = { .opcode = GPUP_OP_NOP } };

	post(6, &nop, 0, 2);
	cr_assert(wait_for(QR(6, GPUP_Q_CI), ~0u, 2));
}

Test(vgpu_regs, a_new_partition_never_sees_old_data)
{
	uint8_t *vram = gpup_gpu_vram_map(gpu);
	struct vgpu_cfg vc = { .gpu = gpu, .vram_offset = 2 * PART, .vram_size = PART,
			       .iommu = dom };

	memset(vram, 0xab, VRAM);
	gpup_gpu_inject_fault(gpu, GPUP_GPU_OP_VRAM_ATTACH, EIO);
	errno = 0;
	cr_assert_null(vgpu_create(&vc), "no partition without fresh VRAM of its own");
	cr_assert_eq(errno, EIO);
	gpup_gpu_inject_fault(gpu, 0, 0);
	struct vgpu *w = vgpu_create(&vc);

	cr_assert_not_null(w);
	for (uint64_t i = 0; i < VRAM; i += 512)
		cr_assert_eq(vram[i], i >= 2 * PART && i < 3 * PART ? 0 : 0xab, "byte %lu",
			     (unsigned long)i);
	cr_assert_eq(vram[2 * PART - 1], 0xab);
	cr_assert_eq(vram[3 * PART], 0xab);
	vgpu_destroy(w);
}
