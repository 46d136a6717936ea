// SPDX-License-Identifier: MIT
/*
 * The watch word (GPUP_Q_WATCH_LO): while the device looks at a queue's
 * producer index by itself it holds the word at 1, and a guest that reads
 * 1 there after publishing its index need not ring the doorbell.  These
 * tests drive a vgpu as a guest would, through BAR0 and guest RAM, and
 * check what the guest relies on: work published without a doorbell runs
 * while the word reads 1; the watch ends by itself, leaving 0; no
 * publication is lost at the moment it ends (the guest's and the device's
 * barriers, hammered); a disabled queue leaves 0; bad words fault the
 * queue; a client with the doorbells' ioeventfds is not offered the watch.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "gpup/gpu/gpu.h"
#include "gpup/vgpu/vgpu.h"
#include "iommu/iommu.h"
#include "uapi/gpup_vgpu.h"
#include "uapi/gpup_vgpu_state.h"

#define PART (16ull << 20)
#define RAM_SIZE (2ull << 20)
#define RAM_IOVA 0x100000000ull
#define RING RAM_IOVA
#define PI (RAM_IOVA + 0x10000ull)
#define WATCH (RAM_IOVA + 0x10040ull)
#define DONE (RAM_IOVA + 0x10080ull)
#define UNMAPPED_IOVA 0x300000000ull
#define ENTRIES 64u
#define Q 1u

static struct gpup_gpu *gpu;
static struct iommu_domain *dom;
static struct vgpu *vg;
static uint8_t *ram;
static uint32_t pi;

static void setup(void)
{
	struct gpup_gpu_cfg gc = { .index = 0, .vram_size = 2 * PART, .ncompute = 1, .ncopy = 1 };
	struct iommu_domain_cfg dc = { .name = "watch" };

	gpu = gpup_sim_gpu_create(&gc);
	cr_assert_not_null(gpu);
	ram = mmap(NULL, RAM_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	cr_assert_neq(ram, MAP_FAILED);
	dom = iommu_domain_create(&dc);
	cr_assert_not_null(dom);
	cr_assert_eq(iommu_map(dom, RAM_IOVA, ram, RAM_SIZE, IOMMU_READ | IOMMU_WRITE), 0);
	struct vgpu_cfg vc = { .gpu = gpu, .vram_offset = 0, .vram_size = PART, .iommu = dom,
			       .name = "watch" };

	vg = vgpu_create(&vc);
	cr_assert_not_null(vg);
	pi = 0;
}

static void teardown(void)
{
	vgpu_destroy(vg);
	iommu_domain_destroy(dom);
	munmap(ram, RAM_SIZE);
	gpup_gpu_destroy(gpu);
}

TestSuite(vgpu_watch, .init = setup, .fini = teardown, .timeout = 120);

static void wr(uint32_t off, uint32_t val)
{
	cr_assert_eq(vgpu_bar0_write(vg, off, &val, 4), 0);
}

static uint32_t rd(uint32_t off)
{
	uint32_t val;

	cr_assert_eq(vgpu_bar0_read(vg, off, &val, 4), 0);
	return val;
}

static volatile uint32_t *word(uint64_t iova)
{
	return (volatile uint32_t *)(ram + (iova - RAM_IOVA));
}

static uint64_t done(void)
{
	return __atomic_load_n((uint64_t *)(ram + (DONE - RAM_IOVA)), __ATOMIC_ACQUIRE);
}

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* Queue Q on engine with its watch word at watch. */
static void queue_up_on(uint64_t watch, uint32_t engine)
{
	uint32_t qb = GPUP_REG_QUEUE(Q);

	wr(GPUP_REG_CONTROL, GPUP_CTRL_ENABLE);
	wr(qb + GPUP_Q_RING_LO, (uint32_t)RING);
	wr(qb + GPUP_Q_RING_HI, (uint32_t)(RING >> 32));
	wr(qb + GPUP_Q_RING_ENTRIES, ENTRIES);
	wr(qb + GPUP_Q_ENGINE, engine);
	wr(qb + GPUP_Q_PI_ADDR_LO, (uint32_t)PI);
	wr(qb + GPUP_Q_PI_ADDR_HI, (uint32_t)(PI >> 32));
	wr(qb + GPUP_Q_WATCH_LO, (uint32_t)watch);
	wr(qb + GPUP_Q_WATCH_HI, (uint32_t)(watch >> 32));
	wr(qb + GPUP_Q_CONTROL, GPUP_QCTL_ENABLE);
}

static void queue_up(uint64_t watch)
{
	queue_up_on(watch, GPUP_ENGINE_COPY);
}

/* Put a FENCE writing value on the ring and publish it; ring the doorbell
 * only where a guest must: after a full barrier, the word reads 0 (or
 * always, with ring).  Whether it rang. */
static bool publish(uint64_t value, bool ring)
{
	union gpup_cmd c = gpup_cmd_fence(GPUP_SPACE_IOVA, DONE, value, 0);

	memcpy(ram + (RING - RAM_IOVA) + (pi % ENTRIES) * GPUP_CMD_SIZE, &c, sizeof(c));
	pi++;
	__atomic_store_n(word(PI), pi, __ATOMIC_RELEASE);
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
	if (!ring && __atomic_load_n(word(WATCH), __ATOMIC_ACQUIRE))
		return false;
	vgpu_doorbell(vg, Q);
	return true;
}

static bool done_within(uint64_t value, unsigned int ms)
{
	for (uint64_t t0 = now_ns(); now_ns() - t0 < ms * 1000000ull;)
		if (done() == value)
			return true;
	return done() == value;
}

Test(vgpu_watch, offered_and_read_back)
{
	cr_assert(rd(GPUP_REG_CAPS) & GPUP_CAP_WATCH);
	queue_up(WATCH);
	cr_assert_eq(rd(GPUP_REG_QUEUE(Q) + GPUP_Q_WATCH_LO), (uint32_t)WATCH);
	cr_assert_eq(rd(GPUP_REG_QUEUE(Q) + GPUP_Q_WATCH_HI), (uint32_t)(WATCH >> 32));
	/* Taken at enable: a write while enabled is ignored. */
	wr(GPUP_REG_QUEUE(Q) + GPUP_Q_WATCH_LO, 0x40);
	cr_assert_eq(rd(GPUP_REG_QUEUE(Q) + GPUP_Q_WATCH_LO), (uint32_t)WATCH);
}

/* After it ran, the device watches for a while: work published then
 * runs without a doorbell.  Then the watch ends by itself and leaves 0,
 * and work published after that waits for its doorbell. */
Test(vgpu_watch, work_runs_without_a_doorbell_while_watched_and_the_watch_ends)
{
	unsigned int skipped = 0;

	queue_up(WATCH);
	cr_assert_eq(*word(WATCH), 0);
	cr_assert(publish(1, true));
	cr_assert(done_within(1, 5000));
	/* Each fence lands while the device still looks, so the next
	 * needs no doorbell, unless this thread was off its CPU for longer
	 * than the window (a loaded host): count twenty that ran without. */
	uint64_t v;

	for (v = 2; v < 20000 && skipped < 20; v++) {
		skipped += !publish(v, false);
		cr_assert(done_within(v, 5000), "fence %lu", (unsigned long)v);
	}
	cr_assert_eq(skipped, 20, "skipped %u of %lu doorbells", skipped, (unsigned long)v - 2);
	/* Bounded: a hundred windows later nobody watches. */
	usleep(100 * GPUP_ENGINE_WATCH_NS / 1000);
	cr_assert_eq(*word(WATCH), 0);
	cr_assert(publish(500, false), "word 0: the guest must ring");
	cr_assert(done_within(500, 5000));
	/* A publication without the doorbell a guest owed is not seen. */
	usleep(100 * GPUP_ENGINE_WATCH_NS / 1000);
	union gpup_cmd c = gpup_cmd_fence(GPUP_SPACE_IOVA, DONE, 501, 0);

	memcpy(ram + (RING - RAM_IOVA) + (pi % ENTRIES) * GPUP_CMD_SIZE, &c, sizeof(c));
	__atomic_store_n(word(PI), ++pi, __ATOMIC_RELEASE);
	cr_assert_not(done_within(501, 50));
	vgpu_doorbell(vg, Q);
	cr_assert(done_within(501, 5000));
}

/* The moment the watch ends is where a publication could be lost: the
 * device withdraws the word, then looks once more; the guest publishes,
 * then looks at the word.  Publish at every distance from that moment
 * (random delays within a millisecond of the window's end) and lose
 * none. */
Test(vgpu_watch, no_publication_is_lost_as_the_watch_ends)
{
	unsigned int rang = 0, skipped = 0;

	srand(12345);
	queue_up(WATCH);
	cr_assert(publish(1, true));
	cr_assert(done_within(1, 5000));
	for (uint64_t v = 2; v < 1000; v++) {
		uint64_t delay = GPUP_ENGINE_WATCH_NS - 1000000 + (uint64_t)rand() % 2000000;
		uint64_t t0 = now_ns();

		while (now_ns() - t0 < delay)
			;
		if (publish(v, false))
			rang++;
		else
			skipped++;
		cr_assert(done_within(v, 2000), "fence %lu lost (rang %u, skipped %u)",
			  (unsigned long)v, rang, skipped);
	}
	cr_assert_gt(rang, 0);
	cr_assert_gt(skipped, 0);
}

Test(vgpu_watch, disabling_the_queue_leaves_0)
{
	queue_up(WATCH);
	cr_assert(publish(1, true));
	cr_assert(done_within(1, 5000));
	/* Keep it watched: publish without doorbells until one is skipped. */
	bool watched = false;

	for (uint64_t v = 2; v < 20000 && !watched; v++) {
		watched = !publish(v, false);
		cr_assert(done_within(v, 5000));
	}
	cr_assert(watched);
	wr(GPUP_REG_QUEUE(Q) + GPUP_Q_CONTROL, 0);
	cr_assert_eq(*word(WATCH), 0);
	/* And a reset too. */
	queue_up(WATCH);
	pi = rd(GPUP_REG_QUEUE(Q) + GPUP_Q_CI);
	cr_assert(publish(200, true));
	cr_assert(done_within(200, 5000));
	wr(GPUP_REG_CONTROL, GPUP_CTRL_RESET);
	cr_assert_eq(*word(WATCH), 0);
}

static void last_fault(uint32_t *code, uint64_t *addr, uint32_t *detail)
{
	uint32_t n = rd(GPUP_REG_FAULT_COUNT);
	uint32_t rec = GPUP_REG_FAULT_LOG + ((n - 1) % GPUP_FAULT_LOG_ENTRIES) * GPUP_FAULT_REC_SIZE;

	cr_assert_geq(n, 1);
	*code = rd(rec + GPUP_FAULT_REC_CODE);
	*addr = rd(rec + GPUP_FAULT_REC_ADDR_LO) | (uint64_t)rd(rec + GPUP_FAULT_REC_ADDR_HI) << 32;
	*detail = rd(rec + GPUP_FAULT_REC_DETAIL_LO);
}

Test(vgpu_watch, a_misaligned_word_faults_the_enable)
{
	uint32_t code, detail;
	uint64_t addr;

	queue_up(WATCH + 2);
	cr_assert(rd(GPUP_REG_QUEUE(Q) + GPUP_Q_STATUS) & GPUP_QSTS_FAULTED);
	last_fault(&code, &addr, &detail);
	cr_assert_eq(code, GPUP_FAULT_RING);
	cr_assert_eq(addr, WATCH + 2);
}

/* A word the device cannot write faults the queue when it first would,
 * after the work before it ran. */
Test(vgpu_watch, an_unmapped_word_faults_the_queue_when_it_runs_dry)
{
	uint32_t code, detail;
	uint64_t addr;

	queue_up(UNMAPPED_IOVA);
	cr_assert(publish(7, true));
	cr_assert(done_within(7, 5000));
	for (int i = 0; i < 5000 && !(rd(GPUP_REG_QUEUE(Q) + GPUP_Q_STATUS) & GPUP_QSTS_FAULTED);
	     i++)
		usleep(1000);
	cr_assert(rd(GPUP_REG_QUEUE(Q) + GPUP_Q_STATUS) & GPUP_QSTS_FAULTED);
	last_fault(&code, &addr, &detail);
	cr_assert_eq(code, GPUP_FAULT_IOMMU_UNMAPPED);
	cr_assert_eq(addr, UNMAPPED_IOVA);
	cr_assert_eq(detail, GPUP_FAULT_DETAIL_WRITE);
}

/* A client that rings through the doorbells' ioeventfds (a KVM VMM) has
 * cheap doorbells: no watch is offered, and none is kept. */
Test(vgpu_watch, not_offered_where_doorbells_are_cheap)
{
	vgpu_set_doorbell_fds_out(vg, true);
	cr_assert_not(rd(GPUP_REG_CAPS) & GPUP_CAP_WATCH);
	queue_up(WATCH);
	for (uint64_t v = 1; v < 50; v++) {
		cr_assert(publish(v, false), "fence %lu: the word must stay 0", (unsigned long)v);
		cr_assert(done_within(v, 5000));
	}
	vgpu_set_doorbell_fds_out(vg, false);
	cr_assert(rd(GPUP_REG_CAPS) & GPUP_CAP_WATCH);
}

/* The watch word moves with the partition's state, and a misaligned one
 * in a state blob is refused. */
Test(vgpu_watch, the_word_moves_with_the_state)
{
	static struct gpup_vgpu_state st;

	queue_up(WATCH);
	cr_assert_eq(vgpu_quiesce(vg), 0);
	cr_assert_eq(vgpu_state_save(vg, &st, sizeof(st)), (int)sizeof(st));
	cr_assert_eq(st.q[Q].watch_lo, (uint32_t)WATCH);
	cr_assert_eq(st.q[Q].watch_hi, (uint32_t)(WATCH >> 32));
	vgpu_resume(vg);
	st.q[Q].watch_lo += 2;
	cr_assert_eq(vgpu_state_load(vg, &st, sizeof(st)), -EINVAL);
	st.q[Q].watch_lo -= 2;
	cr_assert_eq(vgpu_state_load(vg, &st, sizeof(st)), 0);
	cr_assert_eq(rd(GPUP_REG_QUEUE(Q) + GPUP_Q_WATCH_LO), (uint32_t)WATCH);
	vgpu_resume(vg);
	pi = rd(GPUP_REG_QUEUE(Q) + GPUP_Q_CI);
	cr_assert(publish(9, true));
	cr_assert(done_within(9, 5000));
}

/* Queue 0 on the compute engine, no watch: the busy neighbour. */
#define RING0 (RAM_IOVA + 0x20000ull)
#define PI0 (RAM_IOVA + 0x30000ull)
#define DONE0 (RAM_IOVA + 0x30040ull)

static void spin_on_queue0(uint64_t ns, uint32_t *pi0, uint64_t value)
{
	union gpup_cmd c[2] = {
		gpup_cmd_kernel(GPUP_KERNEL_SPIN, (uint64_t[1]){ ns }, 1),
		gpup_cmd_fence(GPUP_SPACE_IOVA, DONE0, value, 0),
	};

	for (unsigned int i = 0; i < 2; i++, (*pi0)++)
		memcpy(ram + (RING0 - RAM_IOVA) + (*pi0 % ENTRIES) * GPUP_CMD_SIZE, &c[i],
		       sizeof(c[i]));
	__atomic_store_n(word(PI0), *pi0, __ATOMIC_RELEASE);
	vgpu_doorbell(vg, 0);
}

/* A watched queue is looked at between the slices of others and at their
 * preemption polls, not only when its engine idles: work published
 * without a doorbell runs while a neighbour keeps the engine busy. */
Test(vgpu_watch, a_busy_engine_still_looks)
{
	uint32_t pi0 = 0;
	unsigned int tries = 0, skipped = 0;

	queue_up_on(WATCH, GPUP_ENGINE_COMPUTE);
	wr(GPUP_REG_QUEUE(0) + GPUP_Q_RING_LO, (uint32_t)RING0);
	wr(GPUP_REG_QUEUE(0) + GPUP_Q_RING_HI, (uint32_t)(RING0 >> 32));
	wr(GPUP_REG_QUEUE(0) + GPUP_Q_RING_ENTRIES, ENTRIES);
	wr(GPUP_REG_QUEUE(0) + GPUP_Q_ENGINE, GPUP_ENGINE_COMPUTE);
	wr(GPUP_REG_QUEUE(0) + GPUP_Q_PI_ADDR_LO, (uint32_t)PI0);
	wr(GPUP_REG_QUEUE(0) + GPUP_Q_PI_ADDR_HI, (uint32_t)(PI0 >> 32));
	wr(GPUP_REG_QUEUE(0) + GPUP_Q_CONTROL, GPUP_QCTL_ENABLE);
	for (uint64_t v = 1; tries < 200 && skipped < 3; v += 2, tries++) {
		/* Q runs dry (watched); the neighbour starts 300 ms of work;
		 * Q publishes while its word may still read 1. */
		publish(v, true);
		cr_assert(done_within(v, 5000));
		spin_on_queue0(300000000ull, &pi0, v);
		if (publish(v + 1, false)) {
			cr_assert(done_within(v + 1, 5000));
		} else {
			uint64_t t0 = now_ns();

			skipped++;
			cr_assert(done_within(v + 1, 5000));
			cr_assert_lt(now_ns() - t0, 150000000ull,
				     "watched work waited %lu ms behind a 300 ms neighbour",
				     (unsigned long)((now_ns() - t0) / 1000000));
		}
		for (int i = 0; i < 5000 && __atomic_load_n((uint64_t *)(ram + (DONE0 - RAM_IOVA)),
							     __ATOMIC_ACQUIRE) != v; i++)
			usleep(1000);
	}
	cr_assert_eq(skipped, 3, "%u of %u tries skipped the doorbell", skipped, tries);
}
