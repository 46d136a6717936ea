// SPDX-License-Identifier: MIT
/*
 * The scheduler's policies pinned with small deterministic traces: exact
 * pick orders, exact shares, the debt bound, overrun repayment, idle
 * return, fixed-share idling and elastic caps, the interactive class and a
 * policy switch with contexts present.
 */
#include <criterion/criterion.h>
#include <errno.h>

#include "scheduler/sched.h"

#define MS SCHED_NS_PER_MS

struct rig {
	struct sched_engine *e;
	struct sched_ctx *c[16];
	unsigned int n;
	uint64_t now;
};

static void rig_init(struct rig *r, enum sched_policy p, uint64_t slice,
		     unsigned int n, const uint32_t *weights)
{
	struct sched_engine_cfg cfg = { .policy = p, .slice_ns = slice };

	r->e = sched_engine_create(&cfg);
	cr_assert_not_null(r->e);
	r->n = n;
	r->now = 0;
	for (unsigned int i = 0; i < n; i++) {
		struct sched_ctx_cfg cc = {
			.weight = weights ? weights[i] : 1,
			.priv = (void *)(uintptr_t)i,
		};

		cr_assert_eq(sched_ctx_add(r->e, &cc, 0, &r->c[i]), 0);
	}
}

static unsigned int id(struct sched_ctx *c)
{
	return (unsigned int)(uintptr_t)sched_ctx_priv(c);
}

static uint64_t engine_ns(struct sched_ctx *c)
{
	struct sched_ctx_stats st;

	sched_ctx_stats(c, &st);
	return st.engine_ns;
}

/* One slice: pick, run `ran` (0: the whole slice), account as preempted.
 * Returns the picked id, or -1 (and idles to the hint) when none. */
static int step(struct rig *r, uint64_t ran)
{
	uint64_t slice;
	struct sched_ctx *c = sched_pick(r->e, r->now, &slice);

	if (!c) {
		cr_assert_neq(slice, SCHED_NEVER, "nothing runnable at all");
		r->now += slice;
		return -1;
	}
	if (!ran)
		ran = slice;
	r->now += ran;
	cr_assert_eq(sched_account(c, ran, r->now, SCHED_ACCT_PREEMPTED), 0);
	return (int)id(c);
}

static void wake_all(struct rig *r)
{
	for (unsigned int i = 0; i < r->n; i++)
		sched_wake(r->c[i], r->now);
}

Test(sched_policy, fifo_runs_jobs_in_arrival_order)
{
	struct rig r;
	uint64_t slice;
	struct sched_ctx *c;

	rig_init(&r, SCHED_POLICY_FIFO, 0, 3, NULL);
	sched_wake(r.c[2], 0);
	sched_wake(r.c[0], 1);
	sched_wake(r.c[1], 2);
	c = sched_pick(r.e, 3, &slice);
	cr_assert_eq(id(c), 2);
	cr_assert_eq(slice, SCHED_SLICE_JOB);
	/* a 7 ms job runs to its end; then the context goes to the tail */
	cr_assert_eq(sched_account(c, 7 * MS, 7 * MS + 3, 0), 0);
	r.now = 7 * MS + 3;
	cr_assert_eq(step(&r, 5 * MS), 0);
	cr_assert_eq(step(&r, 1 * MS), 1);
	cr_assert_eq(step(&r, 1 * MS), 2);
	cr_assert_eq(engine_ns(r.c[2]), 8 * MS);
	sched_engine_destroy(r.e);
}

Test(sched_policy, best_effort_round_robin_and_default_slices)
{
	struct rig r;
	int seq[6];

	rig_init(&r, SCHED_POLICY_BEST_EFFORT, 0, 3, NULL);
	cr_assert_eq(sched_slice(r.e), 2 * MS, "2 ms up to 8 contexts");
	wake_all(&r);
	for (int i = 0; i < 6; i++)
		seq[i] = step(&r, 0);
	cr_assert_arr_eq(seq, ((int[]){ 0, 1, 2, 0, 1, 2 }), sizeof(seq));
	/* an overrun is not repaid under best-effort */
	cr_assert_eq(step(&r, 9 * MS), 0);
	cr_assert_eq(step(&r, 0), 1);
	cr_assert_eq(engine_ns(r.c[0]), 13 * MS);
	sched_engine_destroy(r.e);

	rig_init(&r, SCHED_POLICY_BEST_EFFORT, 0, 9, NULL);
	cr_assert_eq(sched_slice(r.e), 1 * MS, "1 ms above 8 contexts");
	sched_engine_destroy(r.e);
}

Test(sched_policy, weighted_exact_shares)
{
	static const uint32_t w[] = { 1, 2, 3 };
	struct rig r;

	rig_init(&r, SCHED_POLICY_WEIGHTED, 1 * MS, 3, w);
	wake_all(&r);
	for (int i = 0; i < 600; i++)
		step(&r, 0);
	cr_assert_eq(engine_ns(r.c[0]), 100 * MS);
	cr_assert_eq(engine_ns(r.c[1]), 200 * MS);
	cr_assert_eq(engine_ns(r.c[2]), 300 * MS);
	sched_engine_destroy(r.e);
}

Test(sched_policy, idle_return_runs_within_a_round_with_bounded_credit)
{
	struct rig r;
	struct sched_ctx_stats st;
	int run_c = 0, first;

	rig_init(&r, SCHED_POLICY_WEIGHTED, 1 * MS, 3, NULL);
	sched_wake(r.c[0], 0);
	sched_wake(r.c[1], 0);
	for (int i = 0; i < 1000; i++)   /* c2 idles for a second */
		step(&r, 0);
	sched_wake(r.c[2], r.now);
	sched_ctx_stats(r.c[2], &st);
	cr_assert_eq(st.debt_ns, -(int64_t)MS, "exactly one slice of credit");
	first = step(&r, 0);
	cr_assert_eq(first, 2, "runs at the next pick");
	/* it may use its one slice of credit, not its second of idling */
	for (int i = 0; i < 30; i++)
		run_c += step(&r, 0) == 2;
	cr_assert_eq(run_c, 10, "one extra slice, then exactly a third");
	sched_engine_destroy(r.e);
}

Test(sched_policy, overrun_charged_and_repaid_before_next_slice)
{
	struct rig r;
	int seq[6];
	struct sched_ctx_stats st;

	rig_init(&r, SCHED_POLICY_WEIGHTED, 1 * MS, 2, NULL);
	wake_all(&r);
	cr_assert_eq(step(&r, 5 * MS), 0, "a non-preemptible 5 ms job");
	sched_ctx_stats(r.c[0], &st);
	cr_assert_eq(st.overrun_ns, 4 * MS);
	cr_assert_eq(st.debt_ns, 5 * MS);
	for (int i = 0; i < 6; i++)
		seq[i] = step(&r, 0);
	cr_assert_arr_eq(seq, ((int[]){ 1, 1, 1, 1, 1, 0 }), sizeof(seq));
	cr_assert_eq(engine_ns(r.c[0]), engine_ns(r.c[1]) + 1 * MS);
	sched_engine_destroy(r.e);
}

Test(sched_policy, overrun_debt_survives_a_short_block)
{
	struct rig r;
	struct sched_ctx_stats st;
	uint64_t slice;
	struct sched_ctx *c;

	rig_init(&r, SCHED_POLICY_WEIGHTED, 1 * MS, 2, NULL);
	wake_all(&r);
	c = sched_pick(r.e, 0, &slice);
	cr_assert_eq(id(c), 0);
	sched_block(c, 6 * MS);
	sched_account(c, 6 * MS, 6 * MS, 0);
	sched_wake(c, 6 * MS);
	sched_ctx_stats(c, &st);
	cr_assert_eq(st.debt_ns, 5 * MS, "own overrun kept; only 1 slice clamped off");
	sched_engine_destroy(r.e);
}

Test(sched_policy, equal_share_idles_instead_of_lending)
{
	struct rig r;
	int idle = 0;

	rig_init(&r, SCHED_POLICY_EQUAL_SHARE, 1 * MS, 4, NULL);
	sched_wake(r.c[1], 0);
	while (r.now < 1000 * MS)
		idle += step(&r, 0) < 0;
	cr_assert_gt(idle, 0);
	cr_assert_geq(engine_ns(r.c[1]), 249 * MS);
	cr_assert_leq(engine_ns(r.c[1]), 252 * MS, "%lu", engine_ns(r.c[1]));
	sched_engine_destroy(r.e);
}

static void set_fixed(struct rig *r, unsigned int i, uint32_t reserve, uint32_t cap)
{
	struct sched_ctx_cfg cc = { .reserve_ppm = reserve, .cap_ppm = cap,
				    .priv = (void *)(uintptr_t)i };

	cr_assert_eq(sched_ctx_update(r->c[i], &cc, r->now), 0);
}

Test(sched_policy, fixed_share_reserve_and_elastic_cap)
{
	struct rig r;

	rig_init(&r, SCHED_POLICY_FIXED_SHARE, 1 * MS, 3, NULL);
	set_fixed(&r, 0, 500000, 0);
	set_fixed(&r, 1, 250000, 0);
	set_fixed(&r, 2, 250000, 600000);
	sched_wake(r.c[1], 0);
	sched_wake(r.c[2], 0);
	while (r.now < 1000 * MS)
		step(&r, 0);
	/* c1 gets its 25% even though half the engine is idle; c2 borrows
	 * up to its elastic cap of 60% */
	cr_assert_geq(engine_ns(r.c[1]), 249 * MS);
	cr_assert_leq(engine_ns(r.c[1]), 252 * MS);
	cr_assert_geq(engine_ns(r.c[2]), 599 * MS);
	cr_assert_leq(engine_ns(r.c[2]), 602 * MS);
	/* with everyone busy, reserves hold: 50/25/25 */
	sched_wake(r.c[0], r.now);
	for (int i = 0; i < 3; i++)
		cr_assert_eq(sched_ctx_update(r.c[i], &(struct sched_ctx_cfg){
			.reserve_ppm = i ? 250000 : 500000,
			.cap_ppm = i == 2 ? 600000 : 0,
			.priv = (void *)(uintptr_t)i }, r.now), 0);
	{
		uint64_t b[3], t0 = r.now;

		for (int i = 0; i < 3; i++)
			b[i] = engine_ns(r.c[i]);
		while (r.now < t0 + 1000 * MS)
			step(&r, 0);
		cr_assert_geq(engine_ns(r.c[0]) - b[0], 497 * MS);
		cr_assert_geq(engine_ns(r.c[1]) - b[1], 247 * MS);
		cr_assert_geq(engine_ns(r.c[2]) - b[2], 247 * MS);
	}
	sched_engine_destroy(r.e);
}

Test(sched_policy, interactive_preempts_and_cannot_starve_others)
{
	struct rig r;
	struct sched_ctx_cfg ia = { .klass = SCHED_CLASS_INTERACTIVE,
				    .priv = (void *)(uintptr_t)4 };
	struct sched_ctx_stats st;
	uint64_t slice, b0, b4;
	struct sched_ctx *c;

	rig_init(&r, SCHED_POLICY_WEIGHTED, 1 * MS, 4, NULL);
	cr_assert_eq(sched_ctx_add(r.e, &ia, 0, &r.c[4]), 0);
	wake_all(&r);
	sched_block(r.c[4], 0);
	for (int i = 0; i < 100; i++)
		step(&r, 0);
	c = sched_pick(r.e, r.now, &slice);
	cr_assert_neq(id(c), 4);
	cr_assert_eq(sched_wake(r.c[4], r.now + 100000), 1, "preempt the bulk ctx");
	r.now += 150000;
	sched_account(c, 150000, r.now, SCHED_ACCT_PREEMPTED);
	cr_assert_eq(step(&r, 0), 4);
	sched_ctx_stats(r.c[4], &st);
	cr_assert_eq(st.wait_max_ns, 50000);
	/* saturating, it gets its share plus at most four slices (one of
	 * credit from its wake, SCHED_IA_AHEAD = three of priority ahead of
	 * its share) */
	b0 = engine_ns(r.c[0]);
	b4 = engine_ns(r.c[4]);
	for (int i = 0; i < 500; i++)
		step(&r, 0);
	cr_assert_leq(engine_ns(r.c[4]) - b4, engine_ns(r.c[0]) - b0 + 4 * MS);
	cr_assert_geq(engine_ns(r.c[4]) - b4 + 1 * MS, engine_ns(r.c[0]) - b0);
	sched_engine_destroy(r.e);
}

/* sched_should_preempt: a woken interactive context within its priority
 * ends a normal context's slice; nothing else does. */
Test(sched_policy, should_preempt_exact_decisions)
{
	struct rig r;
	struct sched_ctx_cfg ia = { .klass = SCHED_CLASS_INTERACTIVE,
				    .priv = (void *)(uintptr_t)1 };
	struct sched_ctx_stats st;
	uint64_t slice;
	struct sched_ctx *c;

	rig_init(&r, SCHED_POLICY_WEIGHTED, 1 * MS, 1, NULL);
	cr_assert_eq(sched_ctx_add(r.e, &ia, 0, &r.c[1]), 0);
	cr_assert_not(sched_should_preempt(r.e, 0), "nothing running");
	sched_wake(r.c[0], 0);
	c = sched_pick(r.e, 0, &slice);
	cr_assert_eq(id(c), 0);
	cr_assert_not(sched_should_preempt(r.e, 100000), "no one waiting");
	sched_wake(r.c[1], 200000);
	cr_assert(sched_should_preempt(r.e, 300000));
	r.now = 300000;
	sched_account(c, 300000, r.now, SCHED_ACCT_PREEMPTED);
	c = sched_pick(r.e, r.now, &slice);
	cr_assert_eq(id(c), 1, "the interactive context runs next");
	sched_ctx_stats(r.c[1], &st);
	cr_assert_eq(st.wait_max_ns, 100000, "woken at 0.2 ms, picked at 0.3 ms");
	cr_assert_not(sched_should_preempt(r.e, r.now), "it never preempts itself");
	/* a normal wake never preempts an interactive context */
	sched_block(r.c[0], r.now);
	sched_wake(r.c[0], r.now);
	cr_assert_not(sched_should_preempt(r.e, r.now));
	sched_engine_destroy(r.e);
}

/* Past its priority (a 5 ms overrun it still owes) the interactive context
 * waits its turn: no preemption; nor under a policy without the class. */
Test(sched_policy, should_preempt_respects_debt_and_policy)
{
	struct rig r;
	struct sched_ctx_cfg ia = { .klass = SCHED_CLASS_INTERACTIVE,
				    .priv = (void *)(uintptr_t)1 };
	uint64_t slice;
	struct sched_ctx *c;

	rig_init(&r, SCHED_POLICY_WEIGHTED, 1 * MS, 1, NULL);
	cr_assert_eq(sched_ctx_add(r.e, &ia, 0, &r.c[1]), 0);
	wake_all(&r);
	sched_wake(r.c[1], 0);
	c = sched_pick(r.e, 0, &slice);
	cr_assert_eq(id(c), 1);
	sched_account(c, 5 * MS, 5 * MS, 0);   /* a non-preemptible 5 ms job */
	sched_block(r.c[1], 5 * MS);
	c = sched_pick(r.e, 5 * MS, &slice);
	cr_assert_eq(id(c), 0);
	sched_wake(r.c[1], 5 * MS);
	cr_assert_not(sched_should_preempt(r.e, 5 * MS), "4 ms of debt kept");
	sched_account(c, 1 * MS, 6 * MS, SCHED_ACCT_PREEMPTED);
	cr_assert_eq(sched_set_policy(r.e, SCHED_POLICY_BEST_EFFORT, 1 * MS, 6 * MS), 0);
	c = sched_pick(r.e, 6 * MS, &slice);
	cr_assert_not_null(c);
	cr_assert_not(sched_should_preempt(r.e, 6 * MS), "best-effort: no class");
	sched_engine_destroy(r.e);
}

/* A frame held by its fps limit preempts once its hold ends, with no
 * further wake. */
Test(sched_policy, should_preempt_when_a_held_frame_becomes_due)
{
	struct rig r;
	struct sched_ctx_cfg ia = { .klass = SCHED_CLASS_INTERACTIVE,
				    .fps_limit = 100, .priv = (void *)(uintptr_t)1 };
	uint64_t slice;
	struct sched_ctx *c;

	rig_init(&r, SCHED_POLICY_WEIGHTED, 30 * MS, 1, NULL);
	cr_assert_eq(sched_ctx_add(r.e, &ia, 0, &r.c[1]), 0);
	sched_wake(r.c[1], 0);
	c = sched_pick(r.e, 0, &slice);
	cr_assert_eq(id(c), 1);
	sched_account(c, 1 * MS, 1 * MS, 0);
	sched_block(r.c[1], 1 * MS);
	sched_wake(r.c[0], 1 * MS);
	c = sched_pick(r.e, 1 * MS, &slice);
	cr_assert_eq(id(c), 0);
	sched_wake(r.c[1], 2 * MS);             /* the next frame, held to 10 ms */
	cr_assert_not(sched_should_preempt(r.e, 9 * MS));
	cr_assert(sched_should_preempt(r.e, 10 * MS));
	sched_account(c, 9 * MS, 10 * MS, SCHED_ACCT_PREEMPTED);
	c = sched_pick(r.e, 10 * MS, &slice);
	cr_assert_eq(id(c), 1);
	sched_engine_destroy(r.e);
}

Test(sched_policy, fps_limit_holds_early_frames)
{
	struct rig r;
	struct sched_ctx_cfg ia = { .klass = SCHED_CLASS_INTERACTIVE,
				    .fps_limit = 100, .priv = (void *)(uintptr_t)1 };
	uint64_t slice;

	rig_init(&r, SCHED_POLICY_WEIGHTED, 1 * MS, 1, NULL);
	cr_assert_eq(sched_ctx_add(r.e, &ia, 0, &r.c[1]), 0);
	sched_wake(r.c[1], 0);
	cr_assert_eq(step(&r, 0), 1);
	sched_block(r.c[1], r.now);
	sched_wake(r.c[1], 2 * MS);       /* the next frame, 8 ms early */
	cr_assert_null(sched_pick(r.e, 2 * MS, &slice));
	cr_assert_eq(slice, 8 * MS);
	r.now = 10 * MS;
	cr_assert_eq(step(&r, 0), 1);
	sched_engine_destroy(r.e);
}

Test(sched_policy, switch_policy_with_contexts_present)
{
	static const uint32_t w[] = { 1, 3 };
	struct rig r;
	uint64_t slice, b0, b1;
	struct sched_ctx *c;

	rig_init(&r, SCHED_POLICY_FIFO, 0, 2, w);
	wake_all(&r);
	c = sched_pick(r.e, 0, &slice);
	cr_assert_eq(slice, SCHED_SLICE_JOB);
	cr_assert_eq(sched_set_policy(r.e, SCHED_POLICY_WEIGHTED, 50000, 0), -EINVAL);
	cr_assert_eq(sched_set_policy(r.e, SCHED_POLICY_WEIGHTED, 1 * MS, 0), 0);
	r.now = 20 * MS;
	sched_account(c, 20 * MS, r.now, 0);
	b0 = engine_ns(r.c[0]);
	b1 = engine_ns(r.c[1]);
	for (int i = 0; i < 400; i++)
		step(&r, 0);
	cr_assert_eq(engine_ns(r.c[0]) - b0 + engine_ns(r.c[1]) - b1, 400 * MS);
	/* weights 1:3 now, and the 20 ms job that started under fifo is
	 * charged under the new policy: of 420 ms, c0 is owed 105 */
	cr_assert_eq(engine_ns(r.c[0]) - b0, 85 * MS);
	cr_assert_eq(engine_ns(r.c[1]) - b1, 315 * MS);
	sched_engine_destroy(r.e);
}

Test(sched_policy, bad_input_is_refused)
{
	struct sched_engine_cfg cfg = { .policy = SCHED_POLICY_COUNT };
	struct rig r;
	struct sched_ctx *c = NULL;
	uint64_t slice;

	errno = 0;
	cr_assert_null(sched_engine_create(&cfg));
	cr_assert_eq(errno, EINVAL);
	cfg = (struct sched_engine_cfg){ .slice_ns = 31 * MS };
	cr_assert_null(sched_engine_create(&cfg));
	rig_init(&r, SCHED_POLICY_WEIGHTED, 1 * MS, 2, NULL);
	cr_assert_eq(sched_ctx_add(r.e, &(struct sched_ctx_cfg){
		.weight = SCHED_WEIGHT_MAX + 1 }, 0, &c), -EINVAL);
	cr_assert_null(c);
	cr_assert_eq(sched_ctx_add(r.e, &(struct sched_ctx_cfg){ .klass = 7 }, 0, &c),
		     -EINVAL);
	wake_all(&r);
	cr_assert_eq(sched_account(r.c[1], MS, 0, 0), -EINVAL, "not running");
	c = sched_pick(r.e, 0, &slice);
	cr_assert_null(sched_pick(r.e, 0, &slice), "one at a time");
	cr_assert_eq(slice, 0);
	cr_assert_eq(sched_ctx_remove(c), -EBUSY);
	cr_assert_eq(sched_account(c, MS, MS, 0), 0);
	cr_assert_eq(sched_ctx_remove(c), 0);
	cr_assert_eq(step(&r, 0), 1, "the remaining context still runs");
	cr_assert_eq(sched_policy_parse("nope", &cfg.policy), -EINVAL);
	sched_engine_destroy(r.e);
}

Test(sched_policy, watchdog_reports_stuck_contexts_once)
{
	struct sched_engine_cfg cfg = { .policy = SCHED_POLICY_FIFO,
					.watchdog_ns = 100 * MS };
	struct sched_engine *e = sched_engine_create(&cfg);
	struct sched_ctx *spin, *wait, *starved, *idle, *out[4];
	struct sched_ctx_stats st;
	uint64_t slice;

	sched_ctx_add(e, &(struct sched_ctx_cfg){ 0 }, 0, &spin);
	sched_ctx_add(e, &(struct sched_ctx_cfg){ 0 }, 0, &wait);
	sched_ctx_add(e, &(struct sched_ctx_cfg){ 0 }, 0, &starved);
	sched_ctx_add(e, &(struct sched_ctx_cfg){ 0 }, 0, &idle);
	sched_wake(spin, 0);
	sched_wake(wait, 0);
	sched_wake(starved, 0);
	sched_stall(wait, 10 * MS);              /* a WAIT nobody satisfies */
	/* a kernel that never ends: engine time, no command completes */
	cr_assert_eq(sched_pick(e, 10 * MS, &slice), spin);
	sched_account(spin, 60 * MS, 70 * MS, SCHED_ACCT_PREEMPTED);
	cr_assert_eq(sched_watchdog_check(e, 109 * MS, out, 4), 0);
	cr_assert_eq(sched_watchdog_check(e, 110 * MS, out, 4), 1);
	cr_assert_eq(out[0], wait, "100 ms stalled");
	cr_assert_eq(sched_watchdog_check(e, 120 * MS, out, 4), 0, "once");
	cr_assert_eq(sched_pick(e, 120 * MS, &slice), starved);
	sched_account(starved, MS, 121 * MS, 0);
	cr_assert_eq(sched_pick(e, 121 * MS, &slice), spin);
	sched_account(spin, 40 * MS, 161 * MS, SCHED_ACCT_PREEMPTED);
	cr_assert_eq(sched_watchdog_check(e, 161 * MS, out, 4), 1);
	cr_assert_eq(out[0], spin, "100 ms of engine time without progress");
	/* starved waited 120 ms for the engine but ran 1 ms: not stuck */
	cr_assert_eq(sched_watchdog_check(e, 900 * MS, out, 4), 0);
	sched_block(wait, 900 * MS);              /* the partition was reset */
	sched_wake(wait, 900 * MS);
	sched_stall(wait, 900 * MS);
	cr_assert_eq(sched_watchdog_check(e, 950 * MS, out, 4), 0, "a fresh start");
	sched_progress(spin, 950 * MS);
	cr_assert_eq(sched_watchdog_check(e, 1000 * MS, out, 4), 1);
	cr_assert_eq(out[0], wait);
	sched_ctx_stats(spin, &st);
	cr_assert_eq(st.watchdog_fired, 1);
	sched_ctx_stats(idle, &st);
	cr_assert_eq(st.watchdog_fired, 0, "idle contexts are never reported");
	sched_engine_destroy(e);
}
