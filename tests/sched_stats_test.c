// SPDX-License-Identifier: MIT
/*
 * The scheduler's accounting and its edges: dispatch-wait percentiles,
 * state flags, default slices and caps that follow the number of contexts,
 * over-subscribed reserves, removal of queued and throttled contexts, and
 * absurd inputs that must not break the engine.
 */
#include <criterion/criterion.h>
#include <errno.h>

#include "scheduler/sched.h"

#define MS SCHED_NS_PER_MS

static struct sched_engine *mk(enum sched_policy p, uint64_t slice)
{
	struct sched_engine_cfg cfg = { .policy = p, .slice_ns = slice };
	struct sched_engine *e = sched_engine_create(&cfg);

	cr_assert_not_null(e);
	return e;
}

static struct sched_ctx *add(struct sched_engine *e, struct sched_ctx_cfg cc)
{
	struct sched_ctx *c;

	cr_assert_eq(sched_ctx_add(e, &cc, 0, &c), 0);
	return c;
}

static struct sched_ctx_stats stats(struct sched_ctx *c)
{
	struct sched_ctx_stats st;

	sched_ctx_stats(c, &st);
	return st;
}

Test(sched_stats, dispatch_wait_percentiles)
{
	struct sched_engine *e = mk(SCHED_POLICY_BEST_EFFORT, MS);
	struct sched_ctx *a = add(e, (struct sched_ctx_cfg){ 0 });
	struct sched_ctx_stats st;
	uint64_t slice, t = 0;

	/* 100 dispatches: 98 wait 10 µs, one 2 ms, one 5 ms */
	for (int i = 0; i < 100; i++) {
		uint64_t wait = i == 50 ? 2 * MS : i == 99 ? 5 * MS : 10000;

		sched_wake(a, t);
		t += wait;
		cr_assert_eq(sched_pick(e, t, &slice), a);
		t += 100000;
		sched_block(a, t);
		sched_account(a, 100000, t, 0);
	}
	st = stats(a);
	cr_assert_eq(st.waits, 100);
	cr_assert_eq(st.slices, 100);
	cr_assert_eq(st.preemptions, 0);
	cr_assert_eq(st.engine_ns, 100 * 100000);
	cr_assert_eq(st.wait_max_ns, 5 * MS);
	cr_assert_eq(st.wait_sum_ns, 98 * 10000 + 7 * MS);
	/* p50 is in the bucket of 10 µs: within its 3% width */
	cr_assert_geq(st.wait_p50_ns, 10000);
	cr_assert_leq(st.wait_p50_ns, 10000 + 10000 / 32 + 1);
	cr_assert_geq(st.wait_p99_ns, 2 * MS);
	cr_assert_leq(st.wait_p99_ns, 2 * MS + 2 * MS / 32);
	sched_engine_destroy(e);
}

Test(sched_stats, state_flags)
{
	struct sched_engine *e = mk(SCHED_POLICY_EQUAL_SHARE, MS);
	struct sched_ctx *a = add(e, (struct sched_ctx_cfg){ 0 });
	struct sched_ctx *b = add(e, (struct sched_ctx_cfg){ 0 });
	uint64_t slice;

	(void)b;
	cr_assert(!stats(a).runnable);
	sched_wake(a, 0);
	cr_assert(stats(a).runnable);
	cr_assert_eq(sched_pick(e, 0, &slice), a);
	cr_assert(stats(a).running);
	/* runs 5 ms at a 50% cap: throttled until it has earned it back */
	sched_account(a, 5 * MS, 5 * MS, SCHED_ACCT_PREEMPTED);
	cr_assert(stats(a).throttled);
	cr_assert_null(sched_pick(e, 5 * MS, &slice));
	cr_assert_eq(slice, MS + 2, "budget 2 + 2.5 - 5 ms, refilled at 1/2");
	cr_assert_null(sched_pick(e, 6 * MS + 1, &slice));
	cr_assert_eq(sched_pick(e, 6 * MS + 2, &slice), a);
	sched_stall(a, 9 * MS);
	cr_assert(stats(a).stalled);
	cr_assert(!stats(a).runnable);
	sched_account(a, MS, 9 * MS, 0);
	cr_assert_null(sched_pick(e, 9 * MS, &slice), "stalled contexts do not run");
	cr_assert_eq(slice, SCHED_NEVER);
	sched_wake(a, 10 * MS);
	cr_assert(stats(a).runnable && !stats(a).stalled);
	sched_engine_destroy(e);
}

Test(sched_stats, slice_and_caps_follow_the_context_count)
{
	struct sched_engine *e = mk(SCHED_POLICY_EQUAL_SHARE, 0);
	struct sched_ctx *c[9];
	struct sched_engine_stats es;

	for (int i = 0; i < 8; i++)
		c[i] = add(e, (struct sched_ctx_cfg){ 0 });
	cr_assert_eq(sched_slice(e), 2 * MS);
	c[8] = add(e, (struct sched_ctx_cfg){ 0 });
	cr_assert_eq(sched_slice(e), 1 * MS);
	cr_assert_eq(sched_ctx_remove(c[8]), 0);
	cr_assert_eq(sched_slice(e), 2 * MS);
	sched_engine_stats(e, &es);
	cr_assert_eq(es.nctx, 8);
	cr_assert_eq(es.policy, SCHED_POLICY_EQUAL_SHARE);
	/* with two of eight left, each may use a quarter */
	for (int i = 2; i < 8; i++)
		cr_assert_eq(sched_ctx_remove(c[i]), 0);
	sched_wake(c[0], 0);
	{
		uint64_t t = 0, slice;

		while (t < 1000 * MS) {
			struct sched_ctx *p = sched_pick(e, t, &slice);

			if (!p) {
				t += slice;
				continue;
			}
			t += slice;
			sched_account(p, slice, t, SCHED_ACCT_PREEMPTED);
		}
	}
	cr_assert_geq(stats(c[0]).engine_ns, 499 * MS);
	cr_assert_leq(stats(c[0]).engine_ns, 503 * MS);
	sched_engine_destroy(e);
}

Test(sched_stats, oversubscribed_reserves_scale_down)
{
	struct sched_engine *e = mk(SCHED_POLICY_FIXED_SHARE, MS);
	struct sched_ctx *a = add(e, (struct sched_ctx_cfg){ .reserve_ppm = 800000 });
	struct sched_ctx *b = add(e, (struct sched_ctx_cfg){ .reserve_ppm = 800000 });
	uint64_t t = 0, slice;

	sched_wake(a, 0);
	while (t < 1000 * MS) {
		struct sched_ctx *p = sched_pick(e, t, &slice);

		if (!p) {
			t += slice;
			continue;
		}
		t += slice;
		sched_account(p, slice, t, SCHED_ACCT_PREEMPTED);
	}
	/* 80% + 80% is scaled to 50% + 50%; b idles, a keeps to its half */
	cr_assert_geq(stats(a).engine_ns, 499 * MS);
	cr_assert_leq(stats(a).engine_ns, 503 * MS);
	cr_assert_eq(stats(b).engine_ns, 0);
	sched_engine_destroy(e);
}

Test(sched_stats, removing_queued_and_throttled_contexts)
{
	struct sched_engine *e = mk(SCHED_POLICY_EQUAL_SHARE, MS);
	struct sched_ctx *a = add(e, (struct sched_ctx_cfg){ 0 });
	struct sched_ctx *b = add(e, (struct sched_ctx_cfg){ 0 });
	struct sched_ctx *c = add(e, (struct sched_ctx_cfg){ 0 });
	uint64_t slice;

	sched_wake(a, 0);
	sched_wake(b, 0);
	sched_wake(c, 0);
	cr_assert_eq(sched_pick(e, 0, &slice), a);
	sched_account(a, 10 * MS, 10 * MS, SCHED_ACCT_PREEMPTED);
	cr_assert(stats(a).throttled);
	cr_assert_eq(sched_ctx_remove(a), 0);
	cr_assert_eq(sched_ctx_remove(b), 0, "queued");
	cr_assert_eq(sched_pick(e, 10 * MS, &slice), c);
	cr_assert_eq(sched_account(c, MS, 11 * MS, 0), 0);
	cr_assert_eq(sched_pick(e, 11 * MS, &slice), c, "alone: cap is 100%");
	sched_engine_destroy(e);
}

Test(sched_stats, absurd_inputs_keep_the_engine_sane)
{
	struct sched_engine *e = mk(SCHED_POLICY_WEIGHTED, MS);
	struct sched_ctx *a = add(e, (struct sched_ctx_cfg){ .weight = 1 });
	struct sched_ctx *b = add(e, (struct sched_ctx_cfg){ .weight = SCHED_WEIGHT_MAX });
	struct sched_ctx *out[2];
	uint64_t slice;

	sched_wake(a, 0);
	sched_wake(b, 0);
	sched_wake(b, 0);                      /* twice: still queued once */
	cr_assert_eq(sched_pick(e, 0, &slice), a);
	cr_assert_eq(sched_account(a, UINT64_MAX, 1, 0), 0);
	cr_assert_eq(sched_pick(e, 2, &slice), b);
	cr_assert_eq(sched_account(b, 0, 3, 0), 0);
	cr_assert_eq(sched_pick(e, 3, &slice), b, "a repays its bogus time");
	cr_assert_eq(sched_account(b, MS, 4, 0), 0);
	cr_assert_eq(sched_watchdog_check(e, UINT64_MAX, out, 0), 0, "watchdog off");
	cr_assert_eq(sched_ctx_update(a, &(struct sched_ctx_cfg){ .cap_ppm = 2000000 }, 5),
		     -EINVAL);
	cr_assert_eq(sched_ctx_update(a, &(struct sched_ctx_cfg){ .fps_limit = 5000 }, 5),
		     -EINVAL);
	cr_assert_eq(sched_set_policy(e, SCHED_POLICY_COUNT, 0, 5), -EINVAL);
	cr_assert_eq(sched_set_policy(e, SCHED_POLICY_BEST_EFFORT, 0, 5), 0);
	cr_assert_eq(sched_pick(e, 5, &slice), a, "the longest waiting goes first");
	cr_assert_eq(slice, 2 * MS, "default slice for two contexts");
	cr_assert_str_eq(sched_policy_name(SCHED_POLICY_FIXED_SHARE), "fixed-share");
	cr_assert_str_eq(sched_policy_name(SCHED_POLICY_COUNT), "?");
	sched_engine_destroy(e);
}
