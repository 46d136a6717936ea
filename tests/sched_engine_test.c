// SPDX-License-Identifier: MIT
/*
 * The time-slice scheduler driving a real engine executor: contexts that
 * burn engine time to their deadline share it by weight, a policy change
 * takes effect on a running engine, per-context settings and statistics
 * reach the scheduler, and its watchdog hands a stuck context to its
 * owner.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <string.h>
#include <unistd.h>

#include "gpup/gpu/gpu.h"

#define MS 1000000ull

struct tctx {
	struct gpup_ectx c;
	bool wait;         /* a WAIT that never completes */
	int stuck;
};

static enum gpup_run_result burn(struct gpup_ectx *c, uint64_t deadline)
{
	struct tctx *t = c->opaque;

	if (__atomic_load_n(&t->wait, __ATOMIC_SEQ_CST))
		return GPUP_RUN_WAIT;
	while (gpup_thread_cpu_ns() < deadline)
		;
	__atomic_add_fetch(&c->progress, 1, __ATOMIC_SEQ_CST);
	return GPUP_RUN_MORE;
}

static void stuck(struct gpup_ectx *c)
{
	struct tctx *t = c->opaque;

	__atomic_add_fetch(&t->stuck, 1, __ATOMIC_SEQ_CST);
	__atomic_store_n(&t->wait, false, __ATOMIC_SEQ_CST);
}

static const struct gpup_ectx_ops ops = { .run = burn, .stuck = stuck };

static struct gpup_engine *eng;
static struct tctx t[2];

static void setup(void)
{
	eng = gpup_engine_create(GPUP_ENGINE_KIND_COMPUTE, 0, "tsch", NULL);
	cr_assert_not_null(eng);
}

static void teardown(void)
{
	for (int i = 0; i < 2; i++)
		if (t[i].c.ops)
			gpup_engine_detach(&t[i].c);
	gpup_engine_destroy(eng);
}

TestSuite(sched_engine, .init = setup, .fini = teardown, .timeout = 30);

static void attach(int i, uint32_t weight, bool wait)
{
	memset(&t[i], 0, sizeof(t[i]));
	t[i].c.ops = &ops;
	t[i].c.opaque = &t[i];
	t[i].c.doorbell_fd = -1;
	t[i].c.weight = weight;
	t[i].wait = wait;
	cr_assert_eq(gpup_engine_attach(eng, &t[i].c), 0);
	gpup_ectx_kick(&t[i].c);
}

static uint64_t engine_ns(int i)
{
	struct gpup_ectx_stats st;

	gpup_ectx_stats(&t[i].c, &st);
	return st.engine_ns;
}

/* Engine time each context gets while the pair receives `total` more. */
static void share(uint64_t total, uint64_t got[2])
{
	uint64_t b0 = engine_ns(0), b1 = engine_ns(1);

	while (engine_ns(0) - b0 + engine_ns(1) - b1 < total)
		usleep(2000);
	got[0] = engine_ns(0) - b0;
	got[1] = engine_ns(1) - b1;
}

Test(sched_engine, weights_share_a_running_engine)
{
	uint64_t got[2];
	double ratio;

	cr_assert_eq(gpup_tsched_set_policy(eng, SCHED_POLICY_WEIGHTED, MS), 0);
	attach(0, 1, false);
	attach(1, 3, false);
	share(200 * MS, got);
	ratio = (double)got[1] / (double)got[0];
	cr_assert(ratio > 2.4 && ratio < 3.75, "weights 1:3 gave %lu:%lu", got[0], got[1]);
}

Test(sched_engine, policy_change_takes_effect_with_contexts_running)
{
	struct sched_engine_stats es;
	uint64_t got[2];
	double ratio;

	attach(0, 1, false);
	attach(1, 3, false);
	share(40 * MS, got);            /* a new engine's best-effort: 1:1 */
	ratio = (double)got[1] / (double)got[0];
	cr_assert(ratio > 0.6 && ratio < 1.6, "best-effort gave %lu:%lu", got[0], got[1]);
	cr_assert_eq(gpup_tsched_engine_stats(eng, &es), 0);
	cr_assert_eq(es.policy, SCHED_POLICY_BEST_EFFORT, "the default policy");
	cr_assert_eq(gpup_tsched_set_policy(eng, SCHED_POLICY_WEIGHTED, MS), 0);
	share(200 * MS, got);
	ratio = (double)got[1] / (double)got[0];
	cr_assert(ratio > 2.4 && ratio < 3.75, "weighted gave %lu:%lu", got[0], got[1]);
	/* and back to equal shares, on the same scheduler */
	cr_assert_eq(gpup_tsched_set_policy(eng, SCHED_POLICY_EQUAL_SHARE, 2 * MS), 0);
	cr_assert_eq(gpup_tsched_engine_stats(eng, &es), 0);
	cr_assert_eq(es.policy, SCHED_POLICY_EQUAL_SHARE);
	cr_assert_eq(es.slice_ns, 2 * MS);
	cr_assert_eq(es.nctx, 2);
	share(200 * MS, got);
	ratio = (double)got[1] / (double)got[0];
	cr_assert(ratio > 0.75 && ratio < 1.33, "equal-share gave %lu:%lu", got[0], got[1]);
	cr_assert_eq(gpup_tsched_set_policy(eng, SCHED_POLICY_COUNT, 0), -EINVAL);
	cr_assert_eq(gpup_tsched_set_policy(eng, SCHED_POLICY_WEIGHTED, 40 * MS), -EINVAL);
}

Test(sched_engine, per_context_settings_and_stats)
{
	struct sched_ctx_stats st;
	uint64_t got[2];
	double ratio;

	cr_assert_eq(gpup_tsched_set_policy(eng, SCHED_POLICY_WEIGHTED, MS), 0);
	attach(0, 1, false);
	attach(1, 1, false);
	cr_assert_eq(gpup_tsched_set_ctx(eng, &t[1].c,
		&(struct sched_ctx_cfg){ .weight = 4 }), 0);
	cr_assert_eq(gpup_tsched_set_ctx(eng, &t[1].c,
		&(struct sched_ctx_cfg){ .weight = SCHED_WEIGHT_MAX + 1 }), -EINVAL);
	share(150 * MS, got);
	ratio = (double)got[1] / (double)got[0];
	cr_assert(ratio > 3.2 && ratio < 5, "weights 1:4 gave %lu:%lu", got[0], got[1]);
	cr_assert_eq(gpup_tsched_ctx_stats(eng, &t[1].c, &st), 0);
	cr_assert_gt(st.slices, 10);
	cr_assert_gt(st.engine_ns, 100 * MS);
	cr_assert_leq(st.engine_ns, engine_ns(1));
	cr_assert_gt(st.waits, 0);
}

Test(sched_engine, watchdog_hands_a_stuck_context_to_its_owner)
{
	struct sched_engine_cfg cfg = { .policy = SCHED_POLICY_WEIGHTED,
					.slice_ns = MS, .watchdog_ns = 30 * MS };
	int waited = 0;

	cr_assert_eq(gpup_engine_set_sched(eng, &gpup_sched_tslice, &cfg), 0);
	attach(0, 1, false);
	attach(1, 1, true);
	while (!__atomic_load_n(&t[1].stuck, __ATOMIC_SEQ_CST) && waited++ < 2000)
		usleep(1000);
	cr_assert_eq(__atomic_load_n(&t[1].stuck, __ATOMIC_SEQ_CST), 1);
	cr_assert_eq(__atomic_load_n(&t[0].stuck, __ATOMIC_SEQ_CST), 0,
		     "the busy neighbour progresses");
}

Test(sched_engine, watchdog_switched_on_at_run_time)
{
	struct sched_engine_stats es;
	int waited = 0;

	cr_assert_eq(gpup_tsched_engine_stats(eng, &es), 0);
	cr_assert_eq(es.watchdog_ns, 0, "a new engine has no watchdog");
	attach(0, 1, false);
	attach(1, 1, true);
	cr_assert_eq(gpup_tsched_set_policy(eng, SCHED_POLICY_WEIGHTED, MS), 0);
	usleep(100000);
	cr_assert_eq(__atomic_load_n(&t[1].stuck, __ATOMIC_SEQ_CST), 0, "no watchdog yet");
	cr_assert_eq(gpup_tsched_set_watchdog(eng, 30 * MS), 0);
	while (!__atomic_load_n(&t[1].stuck, __ATOMIC_SEQ_CST) && waited++ < 2000)
		usleep(1000);
	cr_assert_eq(__atomic_load_n(&t[1].stuck, __ATOMIC_SEQ_CST), 1);
	cr_assert_eq(__atomic_load_n(&t[0].stuck, __ATOMIC_SEQ_CST), 0);
}
