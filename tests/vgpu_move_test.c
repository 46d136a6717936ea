// SPDX-License-Identifier: MIT
/*
 * A running partition moved to another GPU as itself (vgpu_move): the
 * same vgpu, doorbell and irq eventfds, IOMMU domain and VRAM file, now
 * on the other GPU's window and engines.  A long queue of SAXPY launches
 * moved back and forth while it runs finishes exactly once; what a
 * client writes through its mapping of the VRAM file before and after a
 * move is what the new GPU's engines read; the device clock never goes
 * back; register writes a vCPU makes during moves all land; a
 * destination that fails at each step leaves the partition
 * running on its source; features decide where a partition may go.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <poll.h>
#include <pthread.h>
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
#define PART (16ull << 20)
#define OFF_A (16ull << 20)
#define OFF_B (32ull << 20)
#define RAM_SIZE (4ull << 20)
#define RAM_IOVA 0x100000000ull
#define RING RAM_IOVA
#define PI (RAM_IOVA + 0x80000ull)
#define DONE (RAM_IOVA + 0x90000ull)
#define TS (RAM_IOVA + 0x90100ull)
#define ENTRIES 256u
#define Q 0u

static uint8_t *ram;
static struct gpup_gpu *ga, *gb;
static struct iommu_domain *dom;
static struct vgpu *v;
static uint8_t *bar2;             /* the client's mapping of the VRAM file */
static int irq;
static uint32_t pi;

static struct gpup_gpu *gpu(unsigned int index, const char *gen)
{
	struct gpup_gpu_cfg gc = { .index = index, .vram_size = VRAM, .ncompute = 1, .ncopy = 1,
				   .gen = gen };
	struct gpup_gpu *g = gpup_sim_gpu_create(&gc);

	cr_assert_not_null(g);
	return g;
}

/* A partition on ga at OFF_A exposing kernels (0: ga's set), with a
 * client's view of it: BAR2 mapped from the fd REGION_INFO would give. */
static void partition(const char *gen_a, const char *gen_b, uint32_t kernels)
{
	struct iommu_domain_cfg dc = { .name = "move" };
	int fd = memfd_create("guest-ram", 0);

	cr_assert_eq(ftruncate(fd, RAM_SIZE), 0);
	ram = mmap(NULL, RAM_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	cr_assert_neq(ram, MAP_FAILED);
	close(fd);
	ga = gpu(0, gen_a);
	gb = gpu(1, gen_b);
	dom = iommu_domain_create(&dc);
	cr_assert_not_null(dom);
	cr_assert_eq(iommu_map(dom, RAM_IOVA, ram, RAM_SIZE, IOMMU_READ | IOMMU_WRITE), 0);
	struct vgpu_cfg vc = { .gpu = ga, .vram_offset = OFF_A, .vram_size = PART, .iommu = dom,
			       .name = "move", .type = "sim-16m-4", .kernels = kernels };

	v = vgpu_create(&vc);
	cr_assert_not_null(v);
	bar2 = mmap(NULL, PART, PROT_READ | PROT_WRITE, MAP_SHARED,
		    gpup_gpu_vram_fd(ga, OFF_A), 0);
	cr_assert_neq(bar2, MAP_FAILED);
	irq = eventfd(0, EFD_NONBLOCK);
	cr_assert_eq(vgpu_set_irq_fd(v, Q, irq), 0);
	pi = 0;
}

static void setup(void)
{
	partition(NULL, NULL, 0);
}

static void teardown(void)
{
	munmap(bar2, PART);
	vgpu_destroy(v);
	close(irq);
	iommu_domain_destroy(dom);
	gpup_gpu_destroy(gb);
	gpup_gpu_destroy(ga);
	munmap(ram, RAM_SIZE);
}

TestSuite(vgpu_move, .init = setup, .fini = teardown, .timeout = 120);

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

static void queue_up(void)
{
	wr(GPUP_REG_CONTROL, GPUP_CTRL_ENABLE);
	wr(GPUP_REG_QUEUE(Q) + GPUP_Q_RING_LO, (uint32_t)RING);
	wr(GPUP_REG_QUEUE(Q) + GPUP_Q_RING_HI, (uint32_t)(RING >> 32));
	wr(GPUP_REG_QUEUE(Q) + GPUP_Q_RING_ENTRIES, ENTRIES);
	wr(GPUP_REG_QUEUE(Q) + GPUP_Q_ENGINE, GPUP_ENGINE_COMPUTE);
	wr(GPUP_REG_QUEUE(Q) + GPUP_Q_PI_ADDR_LO, (uint32_t)PI);
	wr(GPUP_REG_QUEUE(Q) + GPUP_Q_PI_ADDR_HI, (uint32_t)(PI >> 32));
	wr(GPUP_REG_QUEUE(Q) + GPUP_Q_CONTROL, GPUP_QCTL_ENABLE);
}

/* Packets in, producer index published, and the doorbell rung the way
 * KVM would: a write to the vgpu's own eventfd. */
static void submit(const union gpup_cmd *c, unsigned int n)
{
	uint64_t one = 1;

	for (unsigned int i = 0; i < n; i++)
		memcpy(hva(RING) + (pi + i) % ENTRIES * GPUP_CMD_SIZE, &c[i], GPUP_CMD_SIZE);
	pi += n;
	__atomic_store_n((uint32_t *)hva(PI), pi, __ATOMIC_RELEASE);
	cr_assert_eq(write(vgpu_doorbell_fd(v, Q), &one, 8), 8);
}

static bool irq_within(int ms)
{
	struct pollfd p = { .fd = irq, .events = POLLIN };
	uint64_t n;

	if (poll(&p, 1, ms) != 1)
		return false;
	cr_assert_eq(read(irq, &n, 8), 8);
	return true;
}

/* Faults go to the fault vector, not the queue's: watch Q_FAULT. */
static uint32_t fault_within(int ms)
{
	for (int i = 0; i < ms; i++) {
		uint32_t f = rd(GPUP_REG_QUEUE(Q) + GPUP_Q_FAULT);

		if (f)
			return f;
		usleep(1000);
	}
	return 0;
}

static void fence(uint64_t val)
{
	union gpup_cmd c = gpup_cmd_fence(GPUP_SPACE_IOVA, DONE, val, GPUP_FENCE_IRQ);

	submit(&c, 1);
	cr_assert(irq_within(10000), "fence %#llx never came", (unsigned long long)val);
	cr_assert_eq(*(uint64_t *)hva(DONE), val);
}

static union gpup_cmd saxpy(uint64_t n, float a, uint64_t x, uint64_t y)
{
	uint32_t abits;

	memcpy(&abits, &a, 4);
	return gpup_cmd_kernel(GPUP_KERNEL_SAXPY, (uint64_t[4]){ n, abits, x, y }, 4);
}

static int move_to(struct gpup_gpu *g, uint64_t off, uint32_t kernels, char *err)
{
	struct vgpu_move_stats st;

	err[0] = '\0';
	return vgpu_move(v, g, off, kernels, &st, err, 256);
}

#define N (1u << 20)
#define X 0ull
#define Y (4ull << 20)
#define ROUNDS 96u

/* Launches of y += 2 * x, the partition moved between the GPUs every
 * few ms while they run, with the x the client wrote through its BAR2
 * mapping: every y exactly 192, the fence's interrupt on the client's own
 * eventfd, and the pause of every move short. */
Test(vgpu_move, busy_partition_moves_back_and_forth_exactly_once)
{
	union gpup_cmd c[ROUNDS + 1];
	struct gpup_gpu *to = gb;
	unsigned int moves = 0;
	uint64_t worst = 0;
	char err[256];
	float one = 1.0f;

	for (uint64_t i = 0; i < N; i++)
		memcpy(bar2 + X + 4 * i, &one, 4);
	memset(bar2 + Y, 0, 4ull * N);
	queue_up();
	for (unsigned int i = 0; i < ROUNDS; i++)
		c[i] = saxpy(N, 2.0f, X, Y);
	c[ROUNDS] = gpup_cmd_fence(GPUP_SPACE_IOVA, DONE, 0xd0e, GPUP_FENCE_IRQ);
	submit(c, ROUNDS + 1);
	while (!irq_within(2)) {
		struct vgpu_move_stats st;

		cr_assert_eq(vgpu_move(v, to, to == gb ? OFF_B : OFF_A, 0, &st, err, sizeof(err)),
			     0, "%s", err);
		worst = st.pause_ns > worst ? st.pause_ns : worst;
		cr_assert_eq(gpup_gpu_vram_backing(to == gb ? ga : gb, to == gb ? OFF_A : OFF_B),
			     GPUP_VRAM_BACKING_NONE, "the source let go of the file");
		to = to == gb ? ga : gb;
		cr_assert_lt(++moves, 20000, "the work never finished");
	}
	cr_assert_eq(*(uint64_t *)hva(DONE), 0xd0e);
	cr_assert_eq(rd(GPUP_REG_QUEUE(Q) + GPUP_Q_CI), pi);
	for (uint64_t i = 0; i < N; i++) {
		float y;

		memcpy(&y, bar2 + Y + 4 * i, 4);
		cr_assert_eq(y, 2.0f * ROUNDS, "y[%lu] = %f after %u moves", (unsigned long)i,
			     (double)y, moves);
	}
	cr_log_info("%u moves, worst pause %.3f ms", moves, worst / 1e6);
	cr_assert_gt(moves, 2);
}

/* The client's writes through BAR2 after a move reach the new GPU's
 * engines (a CHECKSUM of them), and the engines' writes reach the
 * client's mapping. */
Test(vgpu_move, bar2_mapping_stays_coherent_across_moves)
{
	union gpup_cmd c[2];
	char err[256];
	uint64_t h1, h2;

	queue_up();
	for (unsigned int i = 0; i < 4096; i++)
		bar2[i] = (uint8_t)(i * 7);
	c[0] = gpup_cmd_kernel(GPUP_KERNEL_CHECKSUM, (uint64_t[3]){ 4096, 0, 8192 }, 3);
	submit(c, 1);
	fence(1);
	memcpy(&h1, bar2 + 8192, 8);
	cr_assert_eq(move_to(gb, OFF_B, 0, err), 0, "%s", err);
	cr_assert_eq(gpup_gpu_vram_fd(gb, OFF_B) >= 0, true);
	for (unsigned int i = 0; i < 4096; i++)
		bar2[i] = (uint8_t)(i * 13);
	memset(bar2 + 8192, 0, 8);
	submit(c, 1);
	fence(2);
	memcpy(&h2, bar2 + 8192, 8);
	cr_assert_neq(h1, h2);
	cr_assert_eq(memcmp((uint8_t *)gpup_gpu_vram_map(gb) + OFF_B, bar2, 16384), 0,
		     "the new GPU's VRAM map shows the client's file");
	/* And the engines' writes land in the same file. */
	c[0] = gpup_cmd_fill(GPUP_SPACE_VRAM, 65536, 4096, 0x01020304);
	submit(c, 1);
	fence(3);
	cr_assert_eq(*(uint32_t *)(bar2 + 65536 + 4092), 0x01020304u);
}

/* TIMESTAMPs taken before and after moves to a GPU that came up later
 * never go back. */
Test(vgpu_move, device_clock_never_goes_back)
{
	union gpup_cmd ts = { .timestamp = { .hdr = { .opcode = GPUP_OP_TIMESTAMP },
					     .space = GPUP_SPACE_IOVA, .addr = TS } };
	uint64_t before, after;
	char err[256];

	gpup_gpu_destroy(gb);
	usleep(50000);
	gb = gpu(1, NULL);  /* its clock starts 50 ms behind ga's */
	queue_up();
	submit(&ts, 1);
	fence(1);
	before = *(uint64_t *)hva(TS);
	cr_assert_eq(move_to(gb, OFF_B, 0, err), 0, "%s", err);
	submit(&ts, 1);
	fence(2);
	after = *(uint64_t *)hva(TS);
	cr_assert_gt(after, before);
}

/* A destination that fails at each step it takes: the partition is still
 * on its source, its work finishes there, the destination holds nothing
 * of it, and a later move succeeds. */
static void fail_at(unsigned int op, int err_no)
{
	union gpup_cmd c[33];
	char err[256];
	float one = 1.0f;

	for (uint64_t i = 0; i < 4096; i++)
		memcpy(bar2 + X + 4 * i, &one, 4);
	memset(bar2 + Y, 0, 4 * 4096);
	queue_up();
	for (unsigned int i = 0; i < 32; i++)
		c[i] = saxpy(4096, 1.0f, X, Y);
	c[32] = gpup_cmd_fence(GPUP_SPACE_IOVA, DONE, 0xfa11, GPUP_FENCE_IRQ);
	gpup_gpu_inject_fault(gb, op, err_no);
	submit(c, 33);
	cr_assert_neq(move_to(gb, OFF_B, 0, err), 0);
	cr_log_info("refused: %s", err);
	cr_assert(err[0], "the failure names its step");
	gpup_gpu_inject_fault(gb, 0, 0);
	cr_assert_eq(gpup_gpu_vram_backing(gb, OFF_B), GPUP_VRAM_BACKING_NONE);
	cr_assert_eq(gpup_gpu_vram_fd(ga, OFF_A) >= 0, true, "the source keeps the file");
	cr_assert(irq_within(10000), "the work did not finish on the source");
	cr_assert_eq(*(uint64_t *)hva(DONE), 0xfa11);
	for (uint64_t i = 0; i < 4096; i++)
		cr_assert_eq(((float *)(bar2 + Y))[i], 32.0f);
	cr_assert_eq(move_to(gb, OFF_B, 0, err), 0, "%s", err);
	fence(0x900d);
}

Test(vgpu_move, destination_cannot_adopt_the_vram)
{
	fail_at(GPUP_GPU_OP_VRAM_ADOPT, EIO);
}

Test(vgpu_move, destination_vram_cannot_be_mapped)
{
	fail_at(GPUP_GPU_OP_VRAM_MAP, ENOMEM);
}

Test(vgpu_move, destination_engines_are_gone)
{
	fail_at(GPUP_GPU_OP_ENGINE, ENODEV);
}

/* A window already taken on the destination, or a move to where it is. */
Test(vgpu_move, bad_destinations_are_refused)
{
	char err[256];

	cr_assert_eq(gpup_gpu_vram_attach(gb, OFF_B, PART), 0);
	cr_assert_eq(move_to(gb, OFF_B, 0, err), -EBUSY, "%s", err);
	cr_assert_eq(move_to(ga, OFF_A, 0, err), -EINVAL, "%s", err);
	cr_assert_eq(move_to(gb, VRAM - 4096, 0, err), -EINVAL, "%s", err);
	queue_up();
	fence(5);
}

/* A partition exposing gen2's set cannot go to gen1, which lacks RENDER;
 * one masked to gen1 can, and faults RENDER as an unknown kernel, here
 * and there alike. */
Test(vgpu_move, features_decide_where_it_may_go)
{
	const struct gpup_gpu_gen *g1 = gpup_gpu_gen_find("gen1");
	union gpup_cmd r = gpup_cmd_kernel(GPUP_KERNEL_RENDER, (uint64_t[5]){ 8, 8, 32, 0, 0 }, 5);
	char err[256];

	/* ga a gen2, gb a gen1. */
	teardown();
	partition("gen2", "gen1", 0);
	cr_assert_not_null(g1);
	cr_assert_eq(rd(GPUP_REG_KERNELS), GPUP_KERNELS_BUILTIN);
	cr_assert_eq(move_to(gb, OFF_B, 0, err), -EOPNOTSUPP);
	cr_assert(strstr(err, "RENDER"), "%s", err);
	cr_assert_eq(move_to(gb, OFF_B, GPUP_KERNELS_BUILTIN, err), -EOPNOTSUPP);
	cr_assert(strstr(err, "RENDER"), "%s", err);
	vgpu_destroy(v);
	munmap(bar2, PART);
	struct vgpu_cfg vc = { .gpu = ga, .vram_offset = OFF_A, .vram_size = PART, .iommu = dom,
			       .name = "move", .kernels = g1->kernels };

	v = vgpu_create(&vc);
	cr_assert_not_null(v);
	bar2 = mmap(NULL, PART, PROT_READ | PROT_WRITE, MAP_SHARED, gpup_gpu_vram_fd(ga, OFF_A), 0);
	cr_assert_eq(vgpu_set_irq_fd(v, Q, irq), 0);
	cr_assert_eq(rd(GPUP_REG_KERNELS), g1->kernels);
	queue_up();
	submit(&r, 1);
	cr_assert_eq(fault_within(5000), GPUP_FAULT_BAD_KERNEL, "on gen2, masked");
	cr_assert_eq(move_to(gb, OFF_B, g1->kernels, err), 0, "%s", err);
	cr_assert_eq(rd(GPUP_REG_KERNELS), g1->kernels);
	wr(GPUP_REG_QUEUE(Q) + GPUP_Q_CONTROL, 0);
	pi = 0;
	*(uint32_t *)hva(PI) = 0;
	queue_up();
	fence(6);
	submit(&r, 1);
	cr_assert_eq(fault_within(5000), GPUP_FAULT_BAD_KERNEL, "on gen1");
	/* Back to gen2 it keeps its mask: it exposed gen1's set and still does. */
	cr_assert_eq(move_to(ga, OFF_A, g1->kernels, err), 0, "%s", err);
	cr_assert_eq(rd(GPUP_REG_KERNELS), g1->kernels);
}

static volatile int guest_stop;
static volatile uint32_t guest_iters;

/* A vCPU that keeps writing SCRATCH and reading it back, and toggling a
 * second queue, while the partition moves: no write may be lost or
 * undone by a move. */
static void *vcpu(void *arg)
{
	uint32_t *bad = arg;

	for (uint32_t i = 1; !guest_stop; i++) {
		uint32_t got;

		wr(GPUP_REG_SCRATCH, i);
		got = rd(GPUP_REG_SCRATCH);
		if (got != i && !*bad)
			*bad = i;
		wr(GPUP_REG_QUEUE(1) + GPUP_Q_CONTROL, i & 1 ? GPUP_QCTL_ENABLE : 0);
		guest_iters = i;
	}
	return NULL;
}

Test(vgpu_move, register_writes_during_moves_land)
{
	uint32_t bad = 0;
	pthread_t t;
	char err[256];

	queue_up();
	wr(GPUP_REG_QUEUE(1) + GPUP_Q_RING_LO, (uint32_t)(RING + 0x10000));
	wr(GPUP_REG_QUEUE(1) + GPUP_Q_RING_HI, (uint32_t)(RING >> 32));
	wr(GPUP_REG_QUEUE(1) + GPUP_Q_RING_ENTRIES, 16);
	wr(GPUP_REG_QUEUE(1) + GPUP_Q_PI_ADDR_LO, (uint32_t)(PI + 64));
	wr(GPUP_REG_QUEUE(1) + GPUP_Q_PI_ADDR_HI, (uint32_t)(PI >> 32));
	pthread_create(&t, NULL, vcpu, &bad);
	/* Enough moves, and the vCPU busy across them. */
	for (unsigned int i = 0; i < 200 || guest_iters < 20000; i++)
		cr_assert_eq(move_to(i % 2 ? ga : gb, i % 2 ? OFF_A : OFF_B, 0, err), 0, "%s", err);
	guest_stop = 1;
	pthread_join(t, NULL);
	cr_assert_eq(bad, 0, "SCRATCH written %u read back otherwise", bad);
	fence(0x5c);
}
