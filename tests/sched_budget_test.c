// SPDX-License-Identifier: MIT
/*
 * Budgets (latency guarantees for interactive contexts, scheduler/sched.h
 * "DOC: budgets"): the admission rule and its refusals with their numbers,
 * the settings a budget needs, exact decisions of the budget tier (turns,
 * preemption, renewal, demand above the budget by weight), and the bound
 * as a property: in random admitted sets run in the model, no holder's
 * wait within its budget exceeds 2 slices + the longest non-preemptible
 * stretch its engine saw, and where nothing runs on for more than 0.1 ms
 * its p99 stays within 1 slice + 0.1 ms.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "gpup/bench/bench.h"
#include "scheduler/sched.h"

#define MS SCHED_NS_PER_MS
#define US 1000ull
#define P60 (1000000000ull / 60)

static struct sched_engine *engine(enum sched_policy p, uint64_t slice)
{
	struct sched_engine_cfg cfg = { .policy = p, .slice_ns = slice };
	struct sched_engine *e = sched_engine_create(&cfg);

	cr_assert_not_null(e);
	return e;
}

static struct sched_ctx *add(struct sched_engine *e, uint32_t fps, uint32_t budget_us)
{
	struct sched_ctx_cfg cfg = {
		.klass = budget_us || fps ? SCHED_CLASS_INTERACTIVE : SCHED_CLASS_NORMAL,
		.fps_limit = fps, .budget_us = budget_us,
	};
	struct sched_ctx *c;

	cr_assert_eq(sched_ctx_add(e, &cfg, 0, &c), 0);
	return c;
}

static struct sched_ctx_stats stats(struct sched_ctx *c)
{
	struct sched_ctx_stats st;

	sched_ctx_stats(c, &st);
	return st;
}

Test(sched_budget, admission_takes_a_vdi_farm)
{
	struct sched_budget b[8];
	struct sched_admit a;
	char why[256];

	for (int i = 0; i < 8; i++)
		b[i] = (struct sched_budget){ (i < 4 ? 1200 : 2200) * US, P60 };
	cr_assert_eq(sched_admit(b, 8, MS, 100 * US, &a), 0);
	cr_expect_eq(a.verdict, SCHED_ADMIT_OK);
	cr_expect_eq(a.quantum_ns, 125 * US);
	cr_expect_eq(a.budget_ppm, 816000);   /* 4 x 7.2% + 4 x 13.2% */
	cr_expect_eq(a.block_ppm, 6000);      /* 0.1 ms of 16.67 ms */
	sched_admit_explain(&a, why, sizeof(why));
	cr_expect(strstr(why, "81.6%") != NULL, "%s", why);
}

Test(sched_budget, too_many_holders_for_the_slice_are_refused_with_the_numbers)
{
	struct sched_budget b[11];
	struct sched_admit a;
	char why[256];

	for (int i = 0; i < 11; i++)
		b[i] = (struct sched_budget){ 500 * US, P60 };
	cr_assert_eq(sched_admit(b, 10, MS, 0, &a), 0);
	cr_assert_eq(sched_admit(b, 11, MS, 0, &a), -ENOSPC);
	cr_expect_eq(a.verdict, SCHED_ADMIT_TOO_MANY);
	sched_admit_explain(&a, why, sizeof(why));
	cr_expect_str_eq(why, "11 budgets need turns of at least 0.10 ms each (1.10 ms), "
			      "more than the 1.00 ms slice");
	/* the same eleven fit a 2 ms slice */
	cr_expect_eq(sched_admit(b, 11, 2 * MS, 0, &a), 0);
}

Test(sched_budget, overload_counts_the_longest_nonpreemptible_stretch)
{
	struct sched_budget b[2] = { { 6 * MS, P60 }, { 6 * MS, 2 * P60 } };
	struct sched_admit a;
	char why[320];

	/* 36% + 18% = 54%: fits with no blocking, and with 5 ms (30%) */
	cr_assert_eq(sched_admit(b, 2, MS, 0, &a), 0);
	cr_assert_eq(sched_admit(b, 2, MS, 5 * MS, &a), 0);
	/* with 7 ms (42%) it is 96% */
	cr_assert_eq(sched_admit(b, 2, MS, 7 * MS, &a), -ENOSPC);
	cr_expect_eq(a.verdict, SCHED_ADMIT_OVERLOAD);
	sched_admit_explain(&a, why, sizeof(why));
	cr_expect_str_eq(why, "2 budget(s) take 54.0% of the engine and the longest "
			      "non-preemptible stretch seen (7.00 ms) 42.0% of the shortest "
			      "period (16.67 ms): 96.0%, above 90%");
	b[0].budget_ns = P60 + 1;
	cr_expect_eq(sched_admit(b, 2, MS, 0, &a), -EINVAL);
	cr_expect_eq(a.verdict, SCHED_ADMIT_BAD);
}

Test(sched_budget, a_budget_needs_the_interactive_class_an_fps_and_room)
{
	struct sched_ctx_cfg ok = { .klass = SCHED_CLASS_INTERACTIVE, .fps_limit = 60,
				    .budget_us = 16666 };
	struct sched_ctx_cfg c;

	cr_expect_eq(sched_ctx_cfg_check(&ok), 0);
	c = ok;
	c.klass = SCHED_CLASS_NORMAL;
	cr_expect_eq(sched_ctx_cfg_check(&c), -EINVAL);
	c = ok;
	c.fps_limit = 0;
	cr_expect_eq(sched_ctx_cfg_check(&c), -EINVAL);
	c = ok;
	c.budget_us = 16667;                  /* more than 1/60 s */
	cr_expect_eq(sched_ctx_cfg_check(&c), -EINVAL);
}

Test(sched_budget, holders_preempt_others_and_take_turns_of_slice_over_holders)
{
	struct sched_engine *e = engine(SCHED_POLICY_WEIGHTED, 2 * MS);
	struct sched_ctx *bulk = add(e, 0, 0), *ia = add(e, 60, 0);
	struct sched_ctx *h1 = add(e, 60, 3000), *h2 = add(e, 60, 3000);
	struct sched_engine_stats es;
	uint64_t s;

	sched_engine_stats(e, &es);
	cr_expect_eq(es.budgets, 2);
	cr_expect_eq(es.budget_quantum_ns, MS);
	sched_wake(bulk, 0);
	cr_assert_eq(sched_pick(e, 0, &s), bulk);
	cr_expect_not(sched_should_preempt(e, 10 * US));
	cr_expect_eq(sched_wake(h1, 100 * US), 1);
	cr_expect_eq(sched_wake(h2, 100 * US), 1);
	cr_expect(sched_should_preempt(e, 150 * US));
	cr_assert_eq(sched_account(bulk, 200 * US, 200 * US, SCHED_ACCT_PREEMPTED), 0);
	/* an unbudgeted interactive context waits behind the holders */
	sched_wake(ia, 200 * US);
	cr_assert_eq(sched_pick(e, 200 * US, &s), h1);
	cr_expect_eq(s, MS);
	cr_expect_not(sched_should_preempt(e, 300 * US));   /* h2 waits its turn */
	sched_account(h1, MS, 1200 * US, SCHED_ACCT_PREEMPTED);
	cr_assert_eq(sched_pick(e, 1200 * US, &s), h2);
	sched_account(h2, MS, 2200 * US, SCHED_ACCT_PREEMPTED);
	/* h1 has 2 ms of its 3 left; the turn is still 1 ms */
	cr_assert_eq(sched_pick(e, 2200 * US, &s), h1);
	cr_expect_eq(s, MS);
	sched_account(h1, MS, 3200 * US, SCHED_ACCT_PREEMPTED);
	cr_assert_eq(sched_pick(e, 3200 * US, &s), h2);
	sched_account(h2, MS, 4200 * US, SCHED_ACCT_PREEMPTED);
	cr_assert_eq(sched_pick(e, 4200 * US, &s), h1);
	sched_account(h1, MS, 5200 * US, SCHED_ACCT_PREEMPTED);
	/* h1's budget is spent: it queues by weight, after ia's priority */
	cr_assert_eq(sched_pick(e, 5200 * US, &s), h2);
	sched_account(h2, MS, 6200 * US, SCHED_ACCT_PREEMPTED);
	cr_expect_eq(stats(h1).budget_exhausted, 1);
	cr_expect_eq(stats(h1).budget_waits, 3);
	cr_expect_eq(stats(h1).budget_wait_max_ns, 1000 * US);
	cr_assert_eq(sched_pick(e, 6200 * US, &s), ia);
	sched_engine_stats(e, &es);
	cr_expect_eq(es.nonpreempt_max_ns, 100 * US);       /* bulk ran on 100 us */
	sched_engine_destroy(e);
}

/* A holder that stays busy past its budget gets its budget back when its
 * period ends, and the context running then is preempted for it. */
Test(sched_budget, a_busy_holder_is_renewed_at_the_end_of_its_period)
{
	struct sched_engine *e = engine(SCHED_POLICY_WEIGHTED, MS);
	struct sched_ctx *bulk = add(e, 0, 0), *h = add(e, 60, 1000), *c;
	uint64_t s, t;

	sched_wake(h, 0);
	sched_wake(bulk, 0);
	cr_assert_eq(sched_pick(e, 0, &s), h);
	cr_expect_eq(s, MS);
	sched_account(h, MS, MS, SCHED_ACCT_PREEMPTED);
	for (t = MS; t < 16 * MS; t += MS) {
		c = sched_pick(e, t, &s);
		cr_assert_not_null(c);
		sched_account(c, MS, t + MS, SCHED_ACCT_PREEMPTED);
	}
	cr_expect_eq(stats(h).budget_waits, 1);
	cr_expect_eq(stats(h).budget_exhausted, 1);
	c = sched_pick(e, t, &s);
	if (c == bulk)
		cr_expect(sched_should_preempt(e, P60));
	else
		cr_expect_not(sched_should_preempt(e, P60));
	sched_account(c, P60 - t, P60, SCHED_ACCT_PREEMPTED);
	cr_assert_eq(sched_pick(e, P60, &s), h);
	cr_expect_eq(s, MS);
	cr_expect_eq(stats(h).budget_waits, 2);
	sched_engine_destroy(e);
}

/* Above its budget a holder shares what is left by weight: a holder that
 * always has work beside a normal context gets its budget plus half the
 * rest, the normal one the other half; nobody starves. */
Test(sched_budget, demand_above_the_budget_shares_the_rest_by_weight)
{
	struct sched_engine *e = engine(SCHED_POLICY_WEIGHTED, MS);
	struct sched_ctx *bulk = add(e, 0, 0), *h = add(e, 60, 2000);
	uint64_t s, t = 0, end = 1000 * MS;
	double hs, bs;

	sched_wake(h, 0);
	sched_wake(bulk, 0);
	while (t < end) {
		struct sched_ctx *c = sched_pick(e, t, &s);
		uint64_t ran = s < 250 * US ? s : 250 * US;

		cr_assert_not_null(c);
		/* run in 250 us boundaries, asking at each as the executor does */
		t += ran;
		while (ran < s && !sched_should_preempt(e, t)) {
			ran += 250 * US;
			t += 250 * US;
		}
		sched_account(c, ran, t, SCHED_ACCT_PREEMPTED);
	}
	hs = (double)stats(h).engine_ns / (double)t;
	bs = (double)stats(bulk).engine_ns / (double)t;
	cr_expect(hs > 0.54 && hs < 0.58, "holder %.3f", hs);   /* 12% + 44% */
	cr_expect(bs > 0.42 && bs < 0.46, "bulk %.3f", bs);
	cr_expect_gt(stats(h).budget_exhausted, 55);
	sched_engine_destroy(e);
}

/* The daemon's path: a queue's context is added plain, and its
 * partition's budget arrives by update. */
Test(sched_budget, a_budget_given_by_update_takes_effect)
{
	struct sched_engine *e = engine(SCHED_POLICY_WEIGHTED, MS);
	struct sched_ctx *bulk = add(e, 0, 0), *h = add(e, 0, 0);
	struct sched_ctx_cfg cfg = { .klass = SCHED_CLASS_INTERACTIVE, .fps_limit = 60,
				     .budget_us = 1500 };
	uint64_t s;

	sched_wake(bulk, 0);
	cr_assert_eq(sched_pick(e, 0, &s), bulk);
	cr_assert_eq(sched_ctx_update(h, &cfg, 0), 0);
	cr_expect_eq(sched_wake(h, 50 * US), 1);
	sched_account(bulk, 100 * US, 100 * US, SCHED_ACCT_PREEMPTED);
	cr_assert_eq(sched_pick(e, 100 * US, &s), h);
	cr_expect_eq(s, MS);
	cr_expect_eq(stats(h).budget_waits, 1);
	cr_expect_eq(stats(h).budget_wait_max_ns, 50 * US);
	cr_expect_eq(stats(bulk).budget_waits, 0);
	sched_engine_destroy(e);
}

Test(sched_budget, fifo_and_best_effort_ignore_budgets)
{
	struct sched_engine *e = engine(SCHED_POLICY_BEST_EFFORT, MS);
	struct sched_ctx *bulk = add(e, 0, 0), *h = add(e, 60, 2000);
	struct sched_engine_stats es;
	uint64_t s;

	sched_engine_stats(e, &es);
	cr_expect_eq(es.budgets, 0);
	sched_wake(bulk, 0);
	cr_assert_eq(sched_pick(e, 0, &s), bulk);
	cr_expect_eq(sched_wake(h, 10 * US), 0);
	cr_expect_not(sched_should_preempt(e, 20 * US));
	cr_assert_eq(sched_set_policy(e, SCHED_POLICY_WEIGHTED, MS, 30 * US), 0);
	sched_engine_stats(e, &es);
	cr_expect_eq(es.budgets, 1);
	cr_expect(sched_should_preempt(e, 40 * US));
	sched_engine_destroy(e);
}

/* ---- the bound as a property of random admitted sets ---- */

static uint64_t rnd(uint64_t *s, uint64_t lo, uint64_t hi)
{
	return lo + (uint64_t)(bench_rng_unit(s) * (double)(hi - lo + 1));
}

static void frames(struct bench_tenant_spec *t, uint64_t *s, unsigned int i)
{
	static const uint32_t rates[] = { 30, 60, 60, 75, 120 };
	uint32_t fps = rates[rnd(s, 0, 4)];
	uint64_t period = 1000000000ull / fps;
	uint64_t frame = rnd(s, 200 * US, period / 5);

	snprintf(t->name, sizeof(t->name), "desk-%u", i);
	t->klass = SCHED_CLASS_INTERACTIVE;
	t->weight = 1;
	t->fps_limit = fps;
	/* mostly a little above the frame, sometimes below it */
	t->budget_us = (uint32_t)(frame * (bench_rng_unit(s) < 0.8 ? 11 : 8) / 10 / US);
	t->wl.kind = BENCH_WL_FRAMES;
	t->wl.fps = fps;
	t->wl.job = (struct bench_dist){ BENCH_DIST_UNIFORM, (double)frame * 0.7,
					 (double)frame * 1.1 };
	t->wl.preempt_ns = rnd(s, 20, 100) * US;
}

static void batch(struct bench_tenant_spec *t, uint64_t *s, unsigned int i, bool noisy)
{
	snprintf(t->name, sizeof(t->name), "batch-%u", i);
	t->weight = (uint32_t)rnd(s, 1, 4);
	t->wl.kind = BENCH_WL_SATURATING;
	t->wl.job = (struct bench_dist){ BENCH_DIST_UNIFORM, 50e3, (double)rnd(s, 1, 8) * MS };
	t->wl.preempt_ns = noisy ? 0 : 100 * US;
}

/* A random scenario; false when its budgets do not pass admission. */
static bool random_set(struct bench_scenario *sc, struct bench_gpu_spec *g,
		       struct bench_tenant_spec *t, uint64_t *s)
{
	unsigned int nd = (unsigned int)rnd(s, 1, 12), nb = (unsigned int)rnd(s, 1, 3);
	struct sched_budget b[16];
	struct sched_admit a;
	uint64_t np = 0;

	memset(sc, 0, sizeof(*sc));
	memset(&sc->targets, 0xff, sizeof(sc->targets));   /* none (all < 0) */
	*g = (struct bench_gpu_spec){ .name = "gpu0", .engines = 1,
				      .switch_ns = rnd(s, 0, 20) * US };
	snprintf(sc->name, sizeof(sc->name), "random");
	sc->policy = SCHED_POLICY_WEIGHTED;
	sc->slice_ns = rnd(s, 1, 4) * MS / 2;
	sc->duration_ns = 2000 * MS;
	sc->seed = *s;
	sc->gpus = g;
	sc->ngpus = 1;
	sc->tenants = t;
	for (unsigned int i = 0; i < nd; i++) {
		frames(&t[i], s, i);
		b[i] = (struct sched_budget){ t[i].budget_us * US, 1000000000ull / t[i].fps_limit };
		np = t[i].wl.preempt_ns > np ? t[i].wl.preempt_ns : np;
	}
	for (unsigned int i = 0; i < nb; i++) {
		struct bench_tenant_spec *x = &t[nd + i];

		batch(x, s, i, i == 0 && bench_rng_unit(s) < 0.5);
		np = x->wl.preempt_ns ? (x->wl.preempt_ns > np ? x->wl.preempt_ns : np)
				      : (uint64_t)x->wl.job.b > np ? (uint64_t)x->wl.job.b : np;
	}
	sc->ntenants = nd + nb;
	return sched_admit(b, nd, sc->slice_ns, np, &a) == 0;
}

Test(sched_budget, no_admitted_holder_waits_past_its_bound, .timeout = 120)
{
	uint64_t seed = 20261204;
	unsigned int admitted = 0, holders = 0;
	double worst = 0, worst_p99 = 0, worst_p99_pre = 0;

	for (unsigned int k = 0; admitted < 200 && k < 2000; k++) {
		struct bench_tenant_spec t[16] = { 0 };
		struct bench_gpu_spec g;
		struct bench_scenario sc;
		struct bench_run r;

		if (!random_set(&sc, &g, t, &seed))
			continue;
		admitted++;
		cr_assert_eq(bench_model_run(&sc, sc.policy, sc.seed, &r), 0);
		for (unsigned int i = 0; i < sc.ntenants; i++) {
			const struct bench_tenant_result *x = &r.tenants[i];

			if (!t[i].budget_us)
				continue;
			holders++;
			cr_expect_leq(x->budget_wait_max_us, x->wait_bound_us,
				      "set %u (slice %.1f ms) %s: waited %.0f us, bound %.0f us",
				      k, sc.slice_ns / 1e6, t[i].name, x->budget_wait_max_us,
				      x->wait_bound_us);
			if (x->budget_wait_max_us / x->wait_bound_us > worst)
				worst = x->budget_wait_max_us / x->wait_bound_us;
			if (x->budget_wait_p99_us / x->wait_p99_bound_us > worst_p99)
				worst_p99 = x->budget_wait_p99_us / x->wait_p99_bound_us;
			/* the p99 target, where everything preempts at 0.1 ms */
			if (r.engines[0].nonpreempt_max_us > 100)
				continue;
			cr_expect_leq(x->budget_wait_p99_us, x->wait_p99_bound_us,
				      "set %u %s: p99 %.0f us", k, t[i].name,
				      x->budget_wait_p99_us);
			if (x->budget_wait_p99_us / x->wait_p99_bound_us > worst_p99_pre)
				worst_p99_pre = x->budget_wait_p99_us / x->wait_p99_bound_us;
		}
		bench_run_free(&r);
	}
	cr_expect_geq(admitted, 200);
	cr_log_info("%u admitted sets, %u holders; worst wait %.2f of its bound, "
		    "worst p99 %.2f of slice + 0.1 ms (%.2f where nothing ran on past "
		    "0.1 ms)", admitted, holders, worst, worst_p99, worst_p99_pre);
}
