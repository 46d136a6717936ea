// SPDX-License-Identifier: MIT
/*
 * One model run of a scenario, from setup to the numbers in the report:
 * groups tenants by engine, gives each its fairness reference (weight and
 * cap) under the scenario's policy, runs the model, and sets what every
 * tenant received against its fluid service: shares, share errors, Jain's
 * index over 100 ms windows, lag.
 */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "gpup/bench/bench.h"
#include "gpup/bench/bench_int.h"

/* Weight and cap a tenant is owed under policy p (mirrors the scheduler). */
static void fair_reference(enum sched_policy p, struct sim_engine *se)
{
	double rsum = 0, n = se->n;

	for (unsigned int i = 0; i < se->n; i++) {
		const struct bench_tenant_spec *ts = se->t[i]->spec;

		rsum += ts->reserve_ppm ? ts->reserve_ppm / 1e6 : 1 / n;
	}
	for (unsigned int i = 0; i < se->n; i++) {
		struct sim_tenant *t = se->t[i];
		const struct bench_tenant_spec *ts = t->spec;
		double cap = ts->cap_ppm ? ts->cap_ppm / 1e6 : 1;
		double r = ts->reserve_ppm ? ts->reserve_ppm / 1e6 : 1 / n;

		t->w = 1;
		t->cap = 1;
		if (p == SCHED_POLICY_WEIGHTED) {
			t->w = ts->weight;
			t->cap = cap;
		} else if (p == SCHED_POLICY_EQUAL_SHARE) {
			t->cap = cap < 1 / n ? cap : 1 / n;
		} else if (p == SCHED_POLICY_FIXED_SHARE) {
			t->w = rsum > 1 ? r / rsum : r;
			t->cap = ts->cap_ppm && cap > t->w ? cap : t->w;
		}
	}
}

/* Weighted max-min fair shares of one engine, bounded by demand and cap. */
/* Engine time that could be given to tenants: switching is nobody's. */
static double usable(const struct sim_engine *se)
{
	return (double)(se->duration - se->switch_total);
}

double bench_jain(const double *x, unsigned int n)
{
	double s = 0, s2 = 0;

	for (unsigned int i = 0; i < n; i++) {
		s += x[i];
		s2 += x[i] * x[i];
	}
	return s2 > 0 ? s * s / (n * s2) : 1;
}

/* Jain's index, per window, of what each tenant received over its fluid
 * service, across the tenants that had work throughout the window. */
static void engine_jain(struct sim_engine *se, struct bench_run *run,
			double *jsum, double *x)
{
	for (unsigned int w = 0; w < se->nwin; w++) {
		unsigned int k = 0;

		for (unsigned int i = 0; i < se->n; i++)
			if (se->t[i]->win_idle[w] == 0 && se->t[i]->win_fair[w] > 0)
				x[k++] = se->t[i]->win_recv[w] / se->t[i]->win_fair[w];
		if (k < 2)
			continue;
		double j = bench_jain(x, k);

		if (run->jain_windows == 0 || j < run->jain_min)
			run->jain_min = j;
		*jsum += j;
		run->jain_windows++;
	}
}

/* The largest relative difference between received and fluid service
 * over the 1 s windows in which the tenant had work throughout. */
static double window_error(const struct sim_engine *se, const struct sim_tenant *t)
{
	double worst = -1;

	for (unsigned int w0 = 0; w0 + BENCH_LONG_WINDOW <= se->nwin;
	     w0 += BENCH_LONG_WINDOW) {
		uint64_t recv = 0, idle = 0;
		double fair = 0;

		for (unsigned int w = w0; w < w0 + BENCH_LONG_WINDOW; w++) {
			recv += t->win_recv[w];
			idle += t->win_idle[w];
			fair += t->win_fair[w];
		}
		if (!idle && fair > 0)
			worst = fmax(worst, fabs((double)recv - fair) / fair);
	}
	return worst;
}

/* A budget holder's waits against the bounds of its engine (its slice,
 * the longest stretch it could not cut): the picks within the budget, or
 * every pick under a policy that ignores budgets (the baselines). */
static void budget_result(const struct sim_engine *se, const struct sim_tenant *t,
			  const struct sched_ctx_stats *st, struct bench_tenant_result *r)
{
	struct sched_engine_stats es;

	r->budget_wait_p99_us = r->budget_wait_max_us = -1;
	r->wait_p99_bound_us = r->wait_bound_us = -1;
	if (!t->spec->budget_us)
		return;
	sched_engine_stats(se->e, &es);
	r->budget_exhausted = st->budget_exhausted;
	r->budget_wait_p99_us = (st->budget_waits ? st->budget_wait_p99_ns : st->wait_p99_ns) / 1e3;
	r->budget_wait_max_us = (st->budget_waits ? st->budget_wait_max_ns : st->wait_max_ns) / 1e3;
	r->wait_p99_bound_us = sched_budget_wait_p99(es.slice_ns) / 1e3;
	r->wait_bound_us = sched_budget_wait_bound(es.slice_ns, es.nonpreempt_max_ns) / 1e3;
}

static void tenant_result(const struct sim_engine *se, struct sim_tenant *t,
			  struct bench_tenant_result *r)
{
	double d = (double)se->duration;
	struct sched_ctx_stats st;

	sched_ctx_stats(t->ctx, &st);
	r->target_share = t->fair / usable(se);
	r->share = t->recv / usable(se);
	r->share_error = t->fair > 0 ? fabs((double)t->recv - t->fair) / t->fair : 0;
	r->window_share_error_max = window_error(se, t);
	r->jobs = t->jobs;
	r->jobs_per_s = t->jobs / (d / 1e9);
	r->engine_ms = st.engine_ns / 1e6;
	r->overrun_ms = st.overrun_ns / 1e6;
	r->max_lag_ms = t->max_lag / 1e6;
	r->debt_us = st.debt_ns / 1e3;
	r->wait_p50_us = st.wait_p50_ns / 1e3;
	r->wait_p99_us = st.wait_p99_ns / 1e3;
	r->wait_max_us = st.wait_max_ns / 1e3;
	r->slices = st.slices;
	r->preemptions = st.preemptions;
	budget_result(se, t, &st, r);
	r->frames = t->frames;
	r->frames_missed = t->frames_missed;
	for (unsigned int w = 0; w < se->nwin; w++) {
		uint64_t len = (w + 1) * BENCH_WINDOW_NS > se->duration
				       ? se->duration - w * BENCH_WINDOW_NS : BENCH_WINDOW_NS;

		r->window_share[w] = t->win_recv[w] / (double)len;
	}
}

static void engine_result(const struct sim_engine *se, struct bench_engine_result *r)
{
	struct sched_engine_stats st;
	uint64_t busy = 0;
	double d = (double)se->duration;

	sched_engine_stats(se->e, &st);
	for (unsigned int i = 0; i < se->n; i++)
		busy += se->t[i]->recv;
	r->ntenants = se->n;
	r->utilisation = busy / d;
	r->switches_per_s = st.switches / (d / 1e9);
	r->picks = st.picks;
	r->idle_picks = st.idle_picks;
	r->nonpreempt_max_us = st.nonpreempt_max_ns / 1e3;
	r->sched_cpu_ns = se->sched_ns;
	r->overhead = se->sched_ns / d;
}

static int sim_alloc(const struct bench_scenario *sc, uint64_t seed,
		     struct sim_tenant *st, unsigned int nwin)
{
	for (unsigned int i = 0; i < sc->ntenants; i++) {
		st[i].spec = &sc->tenants[i];
		st[i].rng = seed * 0x9e3779b97f4a7c15ull + i * 0xd1b54a32d192ed03ull + 1;
		st[i].win_recv = calloc(nwin, sizeof(uint64_t));
		st[i].win_idle = calloc(nwin, sizeof(uint64_t));
		st[i].win_fair = calloc(nwin, sizeof(double));
		if (!st[i].win_recv || !st[i].win_idle || !st[i].win_fair)
			return -ENOMEM;
	}
	return 0;
}

static void sim_free(const struct bench_scenario *sc, struct sim_tenant *st)
{
	for (unsigned int i = 0; st && i < sc->ntenants; i++) {
		free(st[i].win_recv);
		free(st[i].win_idle);
		free(st[i].win_fair);
	}
	free(st);
}

/* Run one engine's tenants and fill their results. */
static int run_engine(const struct bench_scenario *sc, enum sched_policy p,
		      struct sim_engine *se, struct sim_tenant *st,
		      struct bench_run *run, double *jsum)
{
	double *x = calloc(se->n, sizeof(double));
	int rc;

	se->win_switch = calloc(se->nwin, sizeof(uint64_t));
	rc = x && se->win_switch ? 0 : -ENOMEM;
	fair_reference(sc->policy, se);
	if (!rc)
		rc = bench_sim_engine(sc, p, se);
	if (!rc) {
		for (unsigned int i = 0; i < se->n; i++)
			tenant_result(se, se->t[i], &run->tenants[se->t[i] - st]);
		engine_result(se, &run->engines[run->nengines++]);
		run->slice_ns = sched_slice(se->e);
		engine_jain(se, run, jsum, x);
	}
	sched_engine_destroy(se->e);
	free(se->win_switch);
	free(x);
	return rc;
}

static int run_engines(const struct bench_scenario *sc, enum sched_policy p,
		       struct sim_tenant *st, struct bench_run *run, double *jsum)
{
	struct sim_tenant **list = calloc(sc->ntenants, sizeof(*list));
	int rc = list ? 0 : -ENOMEM;

	for (unsigned int g = 0; !rc && g < sc->ngpus; g++) {
		for (unsigned int k = 0; !rc && k < sc->gpus[g].engines; k++) {
			struct sim_engine se = {
				.t = list, .nwin = run->nwindows,
				.duration = sc->duration_ns,
				.switch_ns = sc->gpus[g].switch_ns,
			};

			for (unsigned int i = 0; i < sc->ntenants; i++)
				if (st[i].spec->gpu == g && st[i].spec->engine == k)
					list[se.n++] = &st[i];
			if (!se.n)
				continue;
			run->engines[run->nengines].gpu = g;
			run->engines[run->nengines].engine = k;
			rc = run_engine(sc, p, &se, st, run, jsum);
		}
	}
	free(list);
	return rc;
}

void bench_run_summary(const struct bench_scenario *sc, struct bench_run *run)
{
	run->group_spread_max = -1;
	run->wait_p99_max_us = -1;
	run->group_wait_p99_max_us = -1;
	run->budget_wait_p99_ratio_max = run->budget_wait_max_ratio_max = -1;
	for (unsigned int i = 0; i < sc->ntenants; i++) {
		const struct bench_tenant_result *r = &run->tenants[i];
		double lo = r->share, hi = r->share, sum = 0;
		unsigned int n = 0;

		if (r->wait_bound_us > 0) {
			run->budget_wait_p99_ratio_max = fmax(run->budget_wait_p99_ratio_max,
				r->budget_wait_p99_us / r->wait_p99_bound_us);
			run->budget_wait_max_ratio_max = fmax(run->budget_wait_max_ratio_max,
				r->budget_wait_max_us / r->wait_bound_us);
		}
		run->share_error_max = fmax(run->share_error_max, r->share_error);
		run->window_share_error_max =
			fmax(run->window_share_error_max, r->window_share_error_max);
		run->lag_max_ms = fmax(run->lag_max_ms, r->max_lag_ms);
		run->frames_missed += r->frames_missed;
		if (sc->tenants[i].klass == SCHED_CLASS_INTERACTIVE)
			run->wait_p99_max_us = fmax(run->wait_p99_max_us, r->wait_p99_us);
		if (!sc->tenants[i].group[0])
			continue;
		run->group_wait_p99_max_us = fmax(run->group_wait_p99_max_us,
						  r->wait_p99_us);
		for (unsigned int j = 0; j < sc->ntenants; j++) {
			if (strcmp(sc->tenants[j].group, sc->tenants[i].group))
				continue;
			lo = fmin(lo, run->tenants[j].share);
			hi = fmax(hi, run->tenants[j].share);
			sum += run->tenants[j].share;
			n++;
		}
		if (sum > 0)
			run->group_spread_max = fmax(run->group_spread_max,
						     (hi - lo) / (sum / n));
	}
}

int bench_model_run(const struct bench_scenario *sc, enum sched_policy p,
		    uint64_t seed, struct bench_run *run)
{
	struct sim_tenant *st = calloc(sc->ntenants, sizeof(*st));
	unsigned int nwin = (unsigned int)((sc->duration_ns + BENCH_WINDOW_NS - 1) /
					   BENCH_WINDOW_NS);
	unsigned int neng = 0;
	double jsum = 0;
	int rc;

	memset(run, 0, sizeof(*run));
	for (unsigned int g = 0; g < sc->ngpus; g++)
		neng += sc->gpus[g].engines;
	run->policy = p;
	run->nwindows = nwin;
	run->jain_min = run->jain_mean = -1;
	run->tenants = calloc(sc->ntenants, sizeof(*run->tenants));
	run->ntenants = run->tenants ? sc->ntenants : 0;
	run->engines = calloc(neng, sizeof(*run->engines));
	rc = st && run->tenants && run->engines ? sim_alloc(sc, seed, st, nwin) : -ENOMEM;
	for (unsigned int i = 0; !rc && i < sc->ntenants; i++) {
		run->tenants[i].window_share = calloc(nwin, sizeof(double));
		rc = run->tenants[i].window_share ? 0 : -ENOMEM;
	}
	if (!rc)
		rc = run_engines(sc, p, st, run, &jsum);
	sim_free(sc, st);
	if (rc) {
		bench_run_free(run);
		return rc;
	}
	if (run->jain_windows)
		run->jain_mean = jsum / run->jain_windows;
	bench_run_summary(sc, run);
	return 0;
}

void bench_run_free(struct bench_run *run)
{
	for (unsigned int i = 0; run->tenants && i < run->ntenants; i++)
		free(run->tenants[i].window_share);
	free(run->tenants);
	free(run->engines);
	run->tenants = NULL;
	run->engines = NULL;
}
