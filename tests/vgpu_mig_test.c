// SPDX-License-Identifier: MIT
/*
 * The vGPU's side of migration, without the stream: a partition stopped
 * while its engines work, its state and VRAM carried to a partition on
 * another GPU and resumed there, many times over, must finish its work
 * exactly once (SAXPY is not idempotent: a work-group run twice shows);
 * VRAM pages the device writes are tracked to the page; a blob that no
 * device could have produced is refused and leaves the device reset.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "gpup/gpu/gpu.h"
#include "gpup/vgpu/vgpu.h"
#include "iommu/iommu.h"
#include "uapi/gpup_vgpu.h"
#include "uapi/gpup_vgpu_state.h"

#define VRAM (64ull << 20)
#define PART (16ull << 20)
#define PART_OFF (16ull << 20)
#define RAM_SIZE (4ull << 20)
#define RAM_IOVA 0x100000000ull
#define RING RAM_IOVA
#define PI (RAM_IOVA + 0x80000ull)
#define DONE (RAM_IOVA + 0x90000ull)
#define ENTRIES 128u
#define Q 0u

/* One partition: a vgpu on its own GPU, an IOMMU domain over the same
 * guest RAM (a guest does not notice which GPU serves it). */
struct side {
	struct gpup_gpu *gpu;
	struct iommu_domain *dom;
	struct vgpu *v;
	int irq;
};

static uint8_t *ram;
static struct side sa, sb;
static uint32_t pi;
static unsigned int mid_kernel;   /* moves that caught a launch half done */

static void side_init(struct side *s, unsigned int index)
{
	struct gpup_gpu_cfg gc = { .index = index, .vram_size = VRAM, .ncompute = 1, .ncopy = 1 };
	struct iommu_domain_cfg dc = { .name = "mig" };

	s->gpu = gpup_sim_gpu_create(&gc);
	cr_assert_not_null(s->gpu);
	s->dom = iommu_domain_create(&dc);
	cr_assert_not_null(s->dom);
	cr_assert_eq(iommu_map(s->dom, RAM_IOVA, ram, RAM_SIZE, IOMMU_READ | IOMMU_WRITE), 0);
	struct vgpu_cfg vc = { .gpu = s->gpu, .vram_offset = PART_OFF, .vram_size = PART,
			       .iommu = s->dom, .name = "mig" };

	s->v = vgpu_create(&vc);
	cr_assert_not_null(s->v);
	s->irq = eventfd(0, EFD_NONBLOCK);
	cr_assert_eq(vgpu_set_irq_fd(s->v, Q, s->irq), 0);
}

static void side_fini(struct side *s)
{
	vgpu_destroy(s->v);
	close(s->irq);
	iommu_domain_destroy(s->dom);
	gpup_gpu_destroy(s->gpu);
}

static void setup(void)
{
	int fd = memfd_create("guest-ram", 0);

	cr_assert_eq(ftruncate(fd, RAM_SIZE), 0);
	ram = mmap(NULL, RAM_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	cr_assert_neq(ram, MAP_FAILED);
	close(fd);
	side_init(&sa, 0);
	side_init(&sb, 1);
	pi = 0;
}

static void teardown(void)
{
	side_fini(&sb);
	side_fini(&sa);
	munmap(ram, RAM_SIZE);
}

TestSuite(vgpu_mig, .init = setup, .fini = teardown, .timeout = 60);

static uint8_t *hva(uint64_t iova)
{
	return ram + (iova - RAM_IOVA);
}

static uint8_t *vram(const struct side *s)
{
	return (uint8_t *)gpup_gpu_vram_map(s->gpu) + PART_OFF;
}

static void wr(struct vgpu *v, uint32_t off, uint32_t val)
{
	cr_assert_eq(vgpu_bar0_write(v, off, &val, 4), 0);
}

static uint32_t rd(struct vgpu *v, uint32_t off)
{
	uint32_t val;

	cr_assert_eq(vgpu_bar0_read(v, off, &val, 4), 0);
	return val;
}

static void queue_up(struct vgpu *v)
{
	wr(v, GPUP_REG_CONTROL, GPUP_CTRL_ENABLE);
	wr(v, GPUP_REG_QUEUE(Q) + GPUP_Q_RING_LO, (uint32_t)RING);
	wr(v, GPUP_REG_QUEUE(Q) + GPUP_Q_RING_HI, (uint32_t)(RING >> 32));
	wr(v, GPUP_REG_QUEUE(Q) + GPUP_Q_RING_ENTRIES, ENTRIES);
	wr(v, GPUP_REG_QUEUE(Q) + GPUP_Q_ENGINE, GPUP_ENGINE_COMPUTE);
	wr(v, GPUP_REG_QUEUE(Q) + GPUP_Q_PI_ADDR_LO, (uint32_t)PI);
	wr(v, GPUP_REG_QUEUE(Q) + GPUP_Q_PI_ADDR_HI, (uint32_t)(PI >> 32));
	wr(v, GPUP_REG_QUEUE(Q) + GPUP_Q_CONTROL, GPUP_QCTL_ENABLE);
}

static void submit(struct vgpu *v, const union gpup_cmd *c, unsigned int n)
{
	for (unsigned int i = 0; i < n; i++)
		memcpy(hva(RING) + (pi + i) % ENTRIES * GPUP_CMD_SIZE, &c[i], GPUP_CMD_SIZE);
	pi += n;
	__atomic_store_n((uint32_t *)hva(PI), pi, __ATOMIC_RELEASE);
	vgpu_doorbell(v, Q);
}

static bool irq_within(const struct side *s, int ms)
{
	struct pollfd p = { .fd = s->irq, .events = POLLIN };
	uint64_t n;

	if (poll(&p, 1, ms) != 1)
		return false;
	cr_assert_eq(read(s->irq, &n, 8), 8);
	return true;
}

static union gpup_cmd saxpy(uint64_t n, float a, uint64_t x, uint64_t y)
{
	uint32_t abits;

	memcpy(&abits, &a, 4);
	return gpup_cmd_kernel(GPUP_KERNEL_SAXPY, (uint64_t[4]){ n, abits, x, y }, 4);
}

/* Stop `from`, carry its state and VRAM to `to`, start `to`. */
static void move(struct side *from, struct side *to)
{
	static uint8_t blob[sizeof(struct gpup_vgpu_state)];

	cr_assert_eq(vgpu_quiesce(from->v), 0);
	cr_assert_eq(vgpu_state_save(from->v, blob, sizeof(blob)), (int)sizeof(blob));
	const struct gpup_vgpu_state_queue *q = &((struct gpup_vgpu_state *)blob)->q[Q];

	if ((q->flags & GPUP_VST_Q_STARTED) && q->kernel_next > 0)
		mid_kernel++;
	memcpy(vram(to), vram(from), PART);
	cr_assert_eq(vgpu_state_load(to->v, blob, sizeof(blob)), 0);
	vgpu_mig_reset(from->v);
	vgpu_resume(to->v);
}

#define N (1u << 20)            /* floats per vector: 4 MiB */
#define X 0ull
#define Y (4ull << 20)
#define ROUNDS 64u

/* 64 launches of y += 2 * x over 1 Mi floats, moved between two GPUs
 * every few ms while they run: every y must be exactly 128, and some
 * moves must have caught a launch between its work-groups. */
Test(vgpu_mig, work_moved_mid_kernel_finishes_exactly_once)
{
	union gpup_cmd c[ROUNDS + 1];
	struct side *cur = &sa, *other = &sb;
	unsigned int moves = 0;
	float one = 1.0f, zero = 0.0f;

	for (uint64_t i = 0; i < N; i++) {
		memcpy(vram(&sa) + X + 4 * i, &one, 4);
		memcpy(vram(&sa) + Y + 4 * i, &zero, 4);
	}
	queue_up(sa.v);
	for (unsigned int i = 0; i < ROUNDS; i++)
		c[i] = saxpy(N, 2.0f, X, Y);
	c[ROUNDS] = gpup_cmd_fence(GPUP_SPACE_IOVA, DONE, 0xd0e, GPUP_FENCE_IRQ);
	submit(sa.v, c, ROUNDS + 1);
	while (!irq_within(cur, 3)) {
		struct side *t = cur;

		move(cur, other);
		cur = other;
		other = t;
		moves++;
		cr_assert_lt(moves, 20000, "the work never finished");
	}
	cr_assert_eq(*(uint64_t *)hva(DONE), 0xd0e);
	cr_assert_eq(rd(cur->v, GPUP_REG_QUEUE(Q) + GPUP_Q_CI), pi);
	for (uint64_t i = 0; i < N; i++) {
		float y;

		memcpy(&y, vram(cur) + Y + 4 * i, 4);
		cr_assert_eq(y, 2.0f * ROUNDS, "y[%lu] = %f after %u moves", (unsigned long)i,
			     (double)y, moves);
	}
	cr_log_info("%u moves, %u in the middle of a launch", moves, mid_kernel);
	cr_assert_gt(mid_kernel, 0);
}

/* A stopped partition runs nothing, even with work queued, until it is
 * resumed. */
Test(vgpu_mig, quiesced_partition_runs_nothing)
{
	union gpup_cmd c = gpup_cmd_fence(GPUP_SPACE_IOVA, DONE, 7, GPUP_FENCE_IRQ);

	queue_up(sa.v);
	cr_assert_eq(vgpu_quiesce(sa.v), 0);
	submit(sa.v, &c, 1);
	cr_assert_not(irq_within(&sa, 100));
	cr_assert_eq(*(uint64_t *)hva(DONE), 0);
	vgpu_resume(sa.v);
	cr_assert(irq_within(&sa, 5000));
	cr_assert_eq(*(uint64_t *)hva(DONE), 7);
}

/* A queue the guest enables while the partition is stopped waits too. */
Test(vgpu_mig, queue_enabled_while_stopped_waits)
{
	union gpup_cmd c = gpup_cmd_fence(GPUP_SPACE_IOVA, DONE, 9, GPUP_FENCE_IRQ);

	cr_assert_eq(vgpu_quiesce(sa.v), 0);
	queue_up(sa.v);
	submit(sa.v, &c, 1);
	cr_assert_not(irq_within(&sa, 100));
	vgpu_resume(sa.v);
	cr_assert(irq_within(&sa, 5000));
	cr_assert_eq(*(uint64_t *)hva(DONE), 9);
}

static void harvest(struct side *s, uint64_t *bm, size_t words)
{
	memset(bm, 0, words * 8);
	vgpu_vram_harvest(s->v, bm);
}

/* FILL of [1 MiB + 100, +64 KiB) touches pages 256..272; a FENCE into
 * VRAM page 4000 marks that page; nothing else is marked, and a harvest
 * clears what it returns. */
Test(vgpu_mig, device_writes_are_tracked_to_the_page)
{
	enum { WORDS = PART / 4096 / 64 };
	uint64_t bm[WORDS];
	union gpup_cmd c[3] = {
		gpup_cmd_fill(GPUP_SPACE_VRAM, (1 << 20) + 100, 64 << 10, 0xabababab),
		gpup_cmd_fence(GPUP_SPACE_VRAM, 4000ull * 4096 + 8, 1, 0),
		gpup_cmd_fence(GPUP_SPACE_IOVA, DONE, 3, GPUP_FENCE_IRQ),
	};

	queue_up(sa.v);
	cr_assert_eq(vgpu_vram_track(sa.v, true), 0);
	submit(sa.v, c, 3);
	cr_assert(irq_within(&sa, 5000));
	harvest(&sa, bm, WORDS);
	for (unsigned int p = 0; p < PART / 4096; p++) {
		bool want = (p >= 256 && p <= 272) || p == 4000;

		cr_assert_eq(!!(bm[p / 64] & (1ull << (p % 64))), want, "page %u", p);
	}
	harvest(&sa, bm, WORDS);
	for (unsigned int w = 0; w < WORDS; w++)
		cr_assert_eq(bm[w], 0);
	cr_assert_eq(vgpu_vram_track(sa.v, false), 0);
	submit(sa.v, c, 1);
	cr_assert_eq(vgpu_vram_track(sa.v, true), 0);
	harvest(&sa, bm, WORDS);
	for (unsigned int w = 0; w < WORDS; w++)
		cr_assert_eq(bm[w], 0, "tracking restarts empty");
}

/* Each way a blob can lie is refused with its errno, and leaves the
 * device reset (the queue it loaded is gone). */
Test(vgpu_mig, bad_state_is_refused)
{
	static struct gpup_vgpu_state good, bad;
	union gpup_cmd c = gpup_cmd_copy(GPUP_SPACE_VRAM, 0, GPUP_SPACE_VRAM, 8 << 20, 4 << 20);

	queue_up(sa.v);
	wr(sa.v, GPUP_REG_SCRATCH, 0x5c);
	cr_assert_eq(vgpu_state_save(sa.v, &good, sizeof(good)), -EBUSY, "not stopped");
	cr_assert_eq(vgpu_quiesce(sa.v), 0);
	cr_assert_eq(vgpu_state_save(sa.v, &good, sizeof(good) - 1), -ENOSPC);
	cr_assert_eq(vgpu_state_save(sa.v, &good, sizeof(good)), (int)sizeof(good));
	cr_assert_eq(vgpu_state_load(sb.v, &good, sizeof(good)), 0);
	cr_assert_eq(rd(sb.v, GPUP_REG_SCRATCH), 0x5c);

	bad = good;
	bad.magic ^= 1;
	cr_assert_eq(vgpu_state_load(sb.v, &bad, sizeof(bad)), -EPROTO);
	bad = good;
	bad.version++;
	cr_assert_eq(vgpu_state_load(sb.v, &bad, sizeof(bad)), -EPROTO);
	cr_assert_eq(vgpu_state_load(sb.v, &good, sizeof(good) - 8), -EPROTO);
	bad = good;
	bad.vram_size *= 2;
	cr_assert_eq(vgpu_state_load(sb.v, &bad, sizeof(bad)), -ERANGE);
	bad = good;
	bad.q[Q].run_entries = 3;
	cr_assert_eq(vgpu_state_load(sb.v, &bad, sizeof(bad)), -EINVAL);
	bad = good;
	bad.q[Q].flags &= ~GPUP_VST_Q_RUNNING;
	cr_assert_eq(vgpu_state_load(sb.v, &bad, sizeof(bad)), -EINVAL, "live, not running");
	bad = good;
	bad.q[Q].done = 4096;
	cr_assert_eq(vgpu_state_load(sb.v, &bad, sizeof(bad)), -EINVAL, "progress, no command");
	bad = good;
	bad.sched_set = 1;
	bad.sched_class = 99;
	cr_assert_eq(vgpu_state_load(sb.v, &bad, sizeof(bad)), -EINVAL);

	/* A COPY resumed mid-way skips its start's checks: a destination
	 * past the window must be caught at load. */
	bad = good;
	bad.q[Q].flags |= GPUP_VST_Q_HAVE_CMD;
	memcpy(bad.q[Q].cmd, &c, sizeof(c));
	bad.q[Q].done = 2 << 20;
	cr_assert_eq(vgpu_state_load(sb.v, &bad, sizeof(bad)), 0, "a sound copy mid-way");
	c.copy.dst = PART - (1 << 20);
	memcpy(bad.q[Q].cmd, &c, sizeof(c));
	cr_assert_eq(vgpu_state_load(sb.v, &bad, sizeof(bad)), -EINVAL);
	cr_assert_eq(rd(sb.v, GPUP_REG_SCRATCH), 0, "left reset");
	cr_assert_eq(rd(sb.v, GPUP_REG_QUEUE(Q) + GPUP_Q_STATUS), 0);
	bad.q[Q].done = 1 << 19;
	c.copy.dst = 8 << 20;
	memcpy(bad.q[Q].cmd, &c, sizeof(c));
	cr_assert_eq(vgpu_state_load(sb.v, &bad, sizeof(bad)), -EINVAL, "not at a chunk");
}

/* A queue caught between its enable and its start index (STARTING: a PI
 * the device reads through the client) takes the index at the
 * destination once resumed, and runs from there; a STARTING queue that is
 * faulted or has a packet in hand is not a state a device can be in. */
Test(vgpu_mig, queue_moved_while_starting_takes_its_index_there)
{
	static struct gpup_vgpu_state st, bad;
	union gpup_cmd c = gpup_cmd_fence(GPUP_SPACE_IOVA, DONE, 0xfe4ce, 0);
	uint32_t sts = 0;

	queue_up(sa.v);
	cr_assert_eq(vgpu_quiesce(sa.v), 0);
	cr_assert_eq(vgpu_state_save(sa.v, &st, sizeof(st)), (int)sizeof(st));
	cr_assert_eq(st.q[Q].status, GPUP_QSTS_ENABLED);
	st.q[Q].status |= GPUP_QSTS_STARTING;

	bad = st;
	bad.q[Q].status |= GPUP_QSTS_FAULTED;
	cr_assert_eq(vgpu_state_load(sb.v, &bad, sizeof(bad)), -EINVAL, "faulted and starting");
	bad = st;
	bad.q[Q].flags |= GPUP_VST_Q_HAVE_CMD;
	cr_assert_eq(vgpu_state_load(sb.v, &bad, sizeof(bad)), -EINVAL, "a packet before CI := PI");

	/* Published while the move was under way: not run, started from. */
	pi = 5;
	__atomic_store_n((uint32_t *)hva(PI), pi, __ATOMIC_RELEASE);
	cr_assert_eq(vgpu_state_load(sb.v, &st, sizeof(st)), 0);
	cr_assert_eq(rd(sb.v, GPUP_REG_QUEUE(Q) + GPUP_Q_STATUS),
		     GPUP_QSTS_ENABLED | GPUP_QSTS_STARTING);
	vgpu_mig_reset(sa.v);
	vgpu_resume(sb.v);
	for (int i = 0; i < 5000; i++) {
		sts = rd(sb.v, GPUP_REG_QUEUE(Q) + GPUP_Q_STATUS);
		if (!(sts & GPUP_QSTS_STARTING))
			break;
		usleep(1000);
	}
	cr_assert_eq(sts, GPUP_QSTS_ENABLED);
	cr_assert_eq(rd(sb.v, GPUP_REG_QUEUE(Q) + GPUP_Q_CI), 5);
	submit(sb.v, &c, 1);
	for (int i = 0; i < 5000 && *(volatile uint64_t *)hva(DONE) != 0xfe4ce; i++)
		usleep(1000);
	cr_assert_eq(*(volatile uint64_t *)hva(DONE), 0xfe4ce);
}
