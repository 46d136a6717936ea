// SPDX-License-Identifier: MIT
/*
 * Preemption by wake on a real engine executor: an interactive context's
 * doorbell, rung while a normal context spins through a long slice, ends
 * that slice at the next preemption point instead of its deadline.  How
 * long the interactive context waited is measured in the normal context's
 * work-groups (engine time, not wall time), so a loaded host does not
 * change the verdict.
 */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "gpup/gpu/gpu.h"

#define MS 1000000ull
#define GROUP_NS 50000ull        /* a work-group, as the sim's SPIN */
#define SLICE_NS (30 * MS)       /* the longest slice: a missed preemption shows */
#define RINGS 8

struct spinner {
	struct gpup_ectx c;
	bool saturating;             /* else: one 200 µs job per doorbell */
	/* written by the executor, read by the test thread */
	uint64_t groups;             /* work-groups run, ever */
	uint64_t left_ns;            /* engine time left in the current slice */
	uint64_t in_run;             /* 1 while its run op runs */
	uint64_t runs;
	uint64_t slices;             /* run op calls, ever */
	uint64_t other_groups_at_start; /* the bulk's groups when this run began */
};

static struct gpup_engine *eng;
static struct spinner bulk, vdi;

static uint64_t load(uint64_t *p)
{
	return __atomic_load_n(p, __ATOMIC_SEQ_CST);
}

/* Work-groups with a preemption point after each, as SPIN does. */
static enum gpup_run_result spin(struct gpup_ectx *c, uint64_t deadline)
{
	struct spinner *s = c->opaque;
	uint64_t want = s->saturating ? UINT64_MAX : 4;

	__atomic_add_fetch(&s->slices, 1, __ATOMIC_SEQ_CST);
	__atomic_store_n(&s->other_groups_at_start, load(&bulk.groups), __ATOMIC_SEQ_CST);
	__atomic_store_n(&s->in_run, 1, __ATOMIC_SEQ_CST);
	for (uint64_t g = 0; g < want; g++) {
		uint64_t t0 = gpup_thread_cpu_ns(), t = t0;

		while (t - t0 < GROUP_NS)
			t = gpup_thread_cpu_ns();
		__atomic_add_fetch(&s->groups, 1, __ATOMIC_SEQ_CST);
		__atomic_store_n(&s->left_ns, deadline > t ? deadline - t : 0, __ATOMIC_SEQ_CST);
		if (g + 1 < want && gpup_slice_over(deadline)) {
			__atomic_store_n(&s->in_run, 0, __ATOMIC_SEQ_CST);
			return GPUP_RUN_MORE;
		}
	}
	__atomic_store_n(&s->in_run, 0, __ATOMIC_SEQ_CST);
	__atomic_add_fetch(&s->runs, 1, __ATOMIC_SEQ_CST);
	return GPUP_RUN_IDLE;
}

static const struct gpup_ectx_ops ops = { .run = spin };

static void attach(struct spinner *s, bool saturating, int doorbell)
{
	memset(s, 0, sizeof(*s));
	s->c.ops = &ops;
	s->c.opaque = s;
	s->c.doorbell_fd = doorbell;
	s->saturating = saturating;
	cr_assert_eq(gpup_engine_attach(eng, &s->c), 0);
}

static void setup(void)
{
	int fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);

	cr_assert_geq(fd, 0);
	eng = gpup_engine_create(GPUP_ENGINE_KIND_COMPUTE, 0, "pre", NULL);
	cr_assert_not_null(eng);
	attach(&bulk, true, -1);
	attach(&vdi, false, fd);
}

static void teardown(void)
{
	gpup_engine_detach(&bulk.c);
	gpup_engine_detach(&vdi.c);
	gpup_engine_destroy(eng);
	close(vdi.c.doorbell_fd);
}

TestSuite(sched_preempt, .init = setup, .fini = teardown, .timeout = 60);

static void sleep_us(unsigned int us)
{
	struct timespec ts = { 0, (long)us * 1000 };

	nanosleep(&ts, NULL);
}

static void set_policy(enum sched_policy p)
{
	struct sched_ctx_cfg ia = { .weight = 1, .klass = SCHED_CLASS_INTERACTIVE };

	cr_assert_eq(gpup_tsched_set_policy(eng, p, SLICE_NS), 0);
	cr_assert_eq(gpup_tsched_set_ctx(eng, &vdi.c, &ia), 0);
	gpup_ectx_kick(&bulk.c);
}

/* Ring while the bulk context is deep inside a slice (more than 20 ms of
 * it left, so the ring cannot land at its end); *rung: the bulk's
 * work-groups when rung.  Whether the ring counts: it must have landed in
 * that same slice with 15 ms of it still left, which a loaded host can
 * deny (this thread may lose its CPU between the look and the write). */
static bool ring_mid_slice(uint64_t *rung)
{
	uint64_t one = 1, slice;

	while (!load(&bulk.in_run) || load(&bulk.left_ns) < 20 * MS)
		sleep_us(100);
	slice = load(&bulk.slices);
	*rung = load(&bulk.groups);
	cr_assert_eq(write(vdi.c.doorbell_fd, &one, sizeof(one)), (ssize_t)sizeof(one));
	return load(&bulk.slices) == slice && load(&bulk.left_ns) >= 15 * MS;
}

/* The vdi's run count reaches n; returns the bulk's groups between the
 * ring (at `rung`) and the vdi's start. */
static uint64_t await_vdi(uint64_t n, uint64_t rung)
{
	while (load(&vdi.runs) < n)
		sleep_us(100);
	return load(&vdi.other_groups_at_start) - rung;
}

/* A ring that counts, and the bulk's groups until the vdi ran; one that
 * does not is waited out and made again.  *rings: all rings made. */
static uint64_t ring_and_wait(uint64_t *rings)
{
	for (int tries = 0;; tries++) {
		uint64_t rung;
		bool counts = ring_mid_slice(&rung);
		uint64_t waited = await_vdi(++*rings, rung);

		if (counts)
			return waited;
		cr_assert_lt(tries, 20, "no ring landed mid-slice in 20 tries");
	}
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return (x > y) - (x < y);
}

Test(sched_preempt, interactive_doorbell_ends_a_normal_slice_early)
{
	struct gpup_ectx_stats bs, vs;
	struct sched_ctx_stats st;
	uint64_t waited[RINGS], rings = 0;

	set_policy(SCHED_POLICY_WEIGHTED);
	for (uint64_t i = 0; i < RINGS; i++)
		waited[i] = ring_and_wait(&rings);
	qsort(waited, RINGS, sizeof(waited[0]), cmp_u64);
	/* One poll period (two groups) plus the group it lands in, and one
	 * of slack; the slice's end was 400 groups or more away.  The median,
	 * because this thread may lose its CPU between reading the count and
	 * ringing; the worst must still be far from a slice. */
	cr_assert_leq(waited[RINGS / 2], GPUP_ENGINE_PREEMPT_POLL_NS / GROUP_NS + 2,
		      "the vdi waited %lu bulk work-groups", (unsigned long)waited[RINGS / 2]);
	cr_assert_lt(waited[RINGS - 1], 100, "the vdi waited %lu bulk work-groups",
		     (unsigned long)waited[RINGS - 1]);
	gpup_ectx_stats(&bulk.c, &bs);
	gpup_ectx_stats(&vdi.c, &vs);
	/* A ring that did not count may have met the bulk between slices. */
	cr_assert_geq(bs.yields, RINGS, "one early end per ring");
	cr_assert_leq(bs.yields, rings, "no early end without a ring");
	cr_assert_geq(bs.preemptions, RINGS);
	cr_assert_eq(vs.yields, 0);
	cr_assert_eq(vs.doorbells, rings);
	cr_assert_eq(gpup_tsched_ctx_stats(eng, &bulk.c, &st), 0);
	cr_assert_geq(st.preemptions, RINGS, "yields are preemptions to the scheduler");
}

/* Under best-effort there is no interactive class: the ring waits for the
 * slice to end, and nothing yields. */
Test(sched_preempt, best_effort_waits_for_the_slice_end)
{
	struct gpup_ectx_stats bs;
	uint64_t rings = 0;

	set_policy(SCHED_POLICY_BEST_EFFORT);
	uint64_t waited = ring_and_wait(&rings);

	cr_assert_geq(waited, 15 * MS / GROUP_NS,
		      "the vdi waited only %lu bulk work-groups", (unsigned long)waited);
	gpup_ectx_stats(&bulk.c, &bs);
	cr_assert_eq(bs.yields, 0);
}
