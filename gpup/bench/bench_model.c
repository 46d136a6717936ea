// SPDX-License-Identifier: MIT
/*
 * The benchmark's model mode: a discrete-event simulation of GPU engines
 * that drives the real scheduler (scheduler/sched.h) in simulated time.
 * Tenants submit jobs (kernels, frames) whose engine time comes from the
 * scenario and the sim GPU's cost model; an engine runs the picked
 * context's jobs, stops at the first work-group boundary past the slice
 * (or at the end of a non-preemptible job), and reports back.  Everything
 * that decides what happens is simulated and seeded, so a scenario and a
 * seed give the same numbers on any machine; only the CPU time spent in
 * the scheduler (the overhead) is measured on the host.
 *
 * Alongside runs the fluid reference (generalised processor sharing): the
 * same jobs, arriving at the same times, served continuously and at once
 * to every tenant backlogged in the fluid, by weight, none above its cap,
 * with the weights and caps of the scenario's own policy.  A tenant's
 * target is its fluid service, its lag the fluid service minus what it
 * received (bench_metrics.c turns both into shares and errors).
 */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "gpup/bench/bench.h"
#include "gpup/bench/bench_int.h"

static uint64_t rng_next(uint64_t *s)
{
	uint64_t z = (*s += 0x9e3779b97f4a7c15ull);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

double bench_rng_unit(uint64_t *s)
{
	return (double)(rng_next(s) >> 11) * (1.0 / 9007199254740992.0);
}

uint64_t bench_draw(const struct bench_dist *d, uint64_t *s)
{
	double v = d->a;

	if (d->kind == BENCH_DIST_UNIFORM)
		v = d->a + (d->b - d->a) * bench_rng_unit(s);
	else if (d->kind == BENCH_DIST_EXP)
		v = -d->a * log(1.0 - bench_rng_unit(s));
	if (v > 1e15)           /* an exponential tail: keep it a number */
		v = 1e15;
	return v < 1 ? 1 : (uint64_t)v;
}

static uint64_t mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* Scheduler calls are timed on the host to measure the overhead. */
#define TIMED(se, expr)                                                        \
	do {                                                                   \
		uint64_t t0_ = mono_ns();                                      \
		expr;                                                          \
		(se)->sched_ns += mono_ns() - t0_;                             \
		(se)->sched_calls++;                                           \
	} while (0)

/* ---- jobs and workloads ---- */

static struct sim_job *head(struct sim_tenant *t)
{
	return t->nq ? &t->q[t->qhead] : NULL;
}

/* Queue a job at time at; wakes the context if it was idle.  Returns the
 * scheduler's preempt hint. */
static int submit(struct sim_engine *se, struct sim_tenant *t, uint64_t at,
		  uint64_t deadline)
{
	struct sim_job *j;
	int hint = 0;

	if (t->nq == SIM_QLEN) {
		t->frames_missed += deadline != 0;  /* dropped */
		t->frames += deadline != 0;
		return 0;
	}
	j = &t->q[(t->qhead + t->nq++) % SIM_QLEN];
	*j = (struct sim_job){ .len = bench_draw(&t->spec->wl.job, &t->rng), .submit = at,
			       .deadline = deadline };
	t->submitted += j->len;
	t->gps_backlog += (double)j->len;
	if (t->nq == 1 && !t->active) {
		t->active = true;
		TIMED(se, hint = sched_wake(t->ctx, at));
	}
	return hint;
}

static void go_idle(struct sim_engine *se, struct sim_tenant *t, uint64_t now)
{
	t->active = false;
	TIMED(se, sched_block(t->ctx, now));
}

/* A tenant's timed event (a frame tick, the end of a think time, a burst
 * switching on or off).  Returns the preempt hint. */
static int tenant_event(struct sim_engine *se, struct sim_tenant *t)
{
	const struct bench_workload *wl = &t->spec->wl;
	uint64_t now = t->next_ev;

	switch (wl->kind) {
	case BENCH_WL_FRAMES:
		t->next_ev = now + t->period;
		return submit(se, t, now, now + t->period);
	case BENCH_WL_CLOSED_LOOP:
		t->next_ev = SCHED_NEVER;
		return submit(se, t, now, 0);
	case BENCH_WL_BURSTY:
		t->on = !t->on;
		t->next_ev = now + bench_draw(t->on ? &wl->on : &wl->off, &t->rng);
		return t->on && t->nq == 0 ? submit(se, t, now, 0) : 0;
	default:
		t->next_ev = SCHED_NEVER;
		return 0;
	}
}

static void job_done(struct sim_engine *se, struct sim_tenant *t, uint64_t now)
{
	const struct bench_workload *wl = &t->spec->wl;
	struct sim_job *j = head(t);

	t->jobs++;
	if (j->deadline) {
		t->frames++;
		t->frames_missed += now > j->deadline;
	}
	t->qhead = (t->qhead + 1) % SIM_QLEN;
	t->nq--;
	TIMED(se, sched_progress(t->ctx, now));
	if (wl->kind == BENCH_WL_SATURATING || (wl->kind == BENCH_WL_BURSTY && t->on)) {
		if (t->nq == 0)
			submit(se, t, now, 0);
	} else if (wl->kind == BENCH_WL_CLOSED_LOOP) {
		t->next_ev = now + bench_draw(&wl->think, &t->rng);
	}
	if (t->nq == 0)
		go_idle(se, t, now);
}

static void tenant_start(struct sim_engine *se, struct sim_tenant *t)
{
	const struct bench_workload *wl = &t->spec->wl;

	t->next_ev = SCHED_NEVER;
	switch (wl->kind) {
	case BENCH_WL_FRAMES:
		t->period = (uint64_t)(1e9 / wl->fps);
		t->next_ev = (uint64_t)(bench_rng_unit(&t->rng) * (double)t->period);
		break;
	case BENCH_WL_BURSTY:
		t->on = bench_rng_unit(&t->rng) < 0.5;
		t->next_ev = bench_draw(t->on ? &wl->on : &wl->off, &t->rng);
		if (t->on)
			submit(se, t, 0, 0);
		break;
	default:
		submit(se, t, 0, 0);
		break;
	}
}

/* ---- fair-service integration ---- */

static bool gps_busy(const struct sim_tenant *t)
{
	return t->spec->wl.kind == BENCH_WL_SATURATING || t->gps_backlog > 0;
}

/* The fluid reference's rates: the engine shared by weight among busy
 * tenants, none above its cap, what a capped one cannot use going to the
 * others.  Capping one raises the others' level, so passes repeat until
 * none is capped.  False when nobody is busy. */
static bool gps_rates(struct sim_engine *se)
{
	double left = 1, wsum = 0;
	bool any = false, capped = true;

	for (unsigned int i = 0; i < se->n; i++) {
		struct sim_tenant *t = se->t[i];

		t->rate = gps_busy(t) ? -1 : 0;
		wsum += gps_busy(t) ? t->w : 0;
		any |= gps_busy(t);
	}
	while (capped && wsum > 0) {
		capped = false;
		for (unsigned int i = 0; i < se->n; i++) {
			struct sim_tenant *t = se->t[i];

			if (t->rate >= 0 || t->w * left / wsum < t->cap)
				continue;
			t->rate = t->cap;
			left = left > t->cap ? left - t->cap : 0;
			wsum -= t->w;
			capped = true;
		}
	}
	for (unsigned int i = 0; i < se->n; i++)
		if (se->t[i]->rate < 0)
			se->t[i]->rate = wsum > 0 ? se->t[i]->w * left / wsum : 0;
	return any;
}

/* dt ns of the fluid reference in window w, in steps that end when a
 * backlog drains. */
static void gps_advance(struct sim_engine *se, double dt, unsigned int w)
{
	while (dt > 0 && gps_rates(se)) {
		double step = dt;
		struct sim_tenant *drained = NULL;

		for (unsigned int i = 0; i < se->n; i++) {
			struct sim_tenant *t = se->t[i];

			if (t->spec->wl.kind != BENCH_WL_SATURATING && t->rate > 0 &&
			    t->gps_backlog / t->rate < step) {
				step = t->gps_backlog / t->rate;
				drained = t;
			}
		}
		for (unsigned int i = 0; i < se->n; i++) {
			struct sim_tenant *t = se->t[i];
			double got = t->rate * step;

			t->fair += got;
			t->win_fair[w] += got;
			t->gps_backlog = t->gps_backlog > got ? t->gps_backlog - got : 0;
		}
		if (drained)
			drained->gps_backlog = 0;
		dt -= step;
	}
}

static void accrue_window(struct sim_engine *se, uint64_t t0, uint64_t t1,
			  struct sim_tenant *run, bool fair)
{
	uint64_t dt = t1 - t0;
	unsigned int w = (unsigned int)(t0 / BENCH_WINDOW_NS);

	if (w >= se->nwin)
		w = se->nwin - 1;
	if (run) {
		run->recv += dt;
		run->win_recv[w] += dt;
	}
	if (!run && !fair) {
		se->switch_total += dt;
		se->win_switch[w] += dt;
	}
	for (unsigned int i = 0; i < se->n; i++)
		if (!se->t[i]->active)
			se->t[i]->win_idle[w] += dt;
	if (fair)
		gps_advance(se, (double)dt, w);
}

/* Time passes from t0 to t1 with run (or nobody) on the engine; fair is
 * false while the engine switches contexts, which nobody is owed. */
static void accrue(struct sim_engine *se, uint64_t t0, uint64_t t1,
		   struct sim_tenant *run, bool fair)
{
	while (t0 < t1) {
		uint64_t wend = (t0 / BENCH_WINDOW_NS + 1) * BENCH_WINDOW_NS;
		uint64_t e = t1 < wend ? t1 : wend;

		accrue_window(se, t0, e, run, fair);
		t0 = e;
	}
	for (unsigned int i = 0; i < se->n; i++) {
		struct sim_tenant *t = se->t[i];
		double lag = t->fair - (double)t->recv;

		if (lag > t->max_lag)
			t->max_lag = lag;
	}
}

/* ---- the engine ---- */

static uint64_t next_event(const struct sim_engine *se)
{
	uint64_t m = SCHED_NEVER;

	for (unsigned int i = 0; i < se->n; i++)
		if (se->t[i]->next_ev < m)
			m = se->t[i]->next_ev;
	return m;
}

/* Every event due at or before now; returns whether one asked to preempt.
 * After events the running context is asked, as the executor asks at its
 * boundaries: a frame tick of a holder that is still busy renews its
 * budget without a wake. */
static bool events_until(struct sim_engine *se, uint64_t now)
{
	bool preempt = false, any = false;

	for (unsigned int i = 0; i < se->n; i++) {
		struct sim_tenant *t = se->t[i];

		while (t->next_ev <= now) {
			preempt |= tenant_event(se, t) > 0;
			any = true;
		}
	}
	if (any && !preempt)
		TIMED(se, preempt = sched_should_preempt(se->e, now));
	return preempt;
}

/* Advance to t1 with nobody running, handling events on the way; returns
 * whether one of them asked to preempt. */
static bool idle_until(struct sim_engine *se, uint64_t t1, bool fair)
{
	bool preempt = false;

	while (se->now < t1) {
		uint64_t e = next_event(se);
		uint64_t to = e < t1 ? e : t1;

		accrue(se, se->now, to, NULL, fair);
		se->now = to;
		preempt |= events_until(se, to);
	}
	return preempt;
}

/* Where the running job may stop next: its end, or once the slice is over
 * (limit), its next work-group boundary.  0 means "stop now". */
static uint64_t run_span(const struct sim_job *j, uint64_t gran, uint64_t now,
			 uint64_t limit)
{
	uint64_t rem = j->len - j->done, b;

	if (gran == 0 || now < limit) {
		b = gran == 0 ? rem : limit - now;
		return b < rem ? b : rem;
	}
	b = (gran - j->done % gran) % gran;
	return b < rem ? b : rem;
}

struct slice_state {
	uint64_t limit, ran;
	bool preempted, done;
};

/* One step of a slice: run to the next stop point or event. */
static void slice_step(struct sim_engine *se, struct sim_tenant *t,
		       struct slice_state *s)
{
	struct sim_job *j = head(t);
	uint64_t gran = t->spec->wl.preempt_ns;
	uint64_t span = run_span(j, gran, se->now, s->limit);
	uint64_t ev = next_event(se), end = se->now + span;

	if (se->now >= se->duration) {       /* a switch ran past the end */
		s->done = true;
		return;
	}
	if (span == 0) {                     /* at a boundary past the slice */
		s->preempted = s->done = true;
		return;
	}
	if (ev < end)
		end = ev;
	if (end > se->duration)
		end = se->duration;
	accrue(se, se->now, end, t, true);
	j->done += end - se->now;
	s->ran += end - se->now;
	se->now = end;
	if (j->done == j->len) {
		job_done(se, t, se->now);
		if (!t->active || s->limit == SCHED_NEVER)
			s->done = true;      /* out of work, or fifo's job ended */
		else if (se->now >= s->limit)
			s->preempted = s->done = true;
	}
	if (events_until(se, se->now) && se->now < s->limit)
		s->limit = se->now;          /* an interactive wake: stop soon */
	if (se->now >= se->duration)
		s->done = true;
}

static void run_slice(struct sim_engine *se, struct sched_ctx *c, uint64_t slice)
{
	struct sim_tenant *t = sched_ctx_priv(c);
	struct slice_state s = { .limit = slice == SCHED_SLICE_JOB ? SCHED_NEVER
								 : se->now + slice };

	if (se->last != t && se->switch_ns) {
		bool preempt = idle_until(se, se->now + se->switch_ns, false);

		if (s.limit != SCHED_NEVER)
			s.limit = preempt ? se->now : s.limit + se->switch_ns;
	}
	se->last = t;
	while (!s.done && t->active)
		slice_step(se, t, &s);
	s.preempted &= t->active;
	TIMED(se, sched_account(c, s.ran, se->now,
				s.preempted ? SCHED_ACCT_PREEMPTED : 0));
}

static void engine_loop(struct sim_engine *se)
{
	while (se->now < se->duration) {
		uint64_t slice, until;
		struct sched_ctx *c;

		events_until(se, se->now);
		TIMED(se, c = sched_pick(se->e, se->now, &slice));
		if (c) {
			run_slice(se, c, slice);
			continue;
		}
		until = slice == SCHED_NEVER ? se->duration : se->now + slice;
		if (next_event(se) < until)
			until = next_event(se);
		idle_until(se, until < se->duration ? until : se->duration, true);
	}
}

/* The host cost of one timestamp pair, subtracted from the measured time. */
static uint64_t timer_cost(void)
{
	uint64_t t0 = mono_ns(), n = 2000;

	for (uint64_t i = 0; i < n; i++)
		(void)mono_ns();
	return (mono_ns() - t0) / n;
}

static int engine_setup(struct sim_engine *se, const struct bench_scenario *sc,
			enum sched_policy p)
{
	struct sched_engine_cfg cfg = { .policy = p, .slice_ns = sc->slice_ns };

	se->e = sched_engine_create(&cfg);
	if (!se->e)
		return -errno;
	for (unsigned int i = 0; i < se->n; i++) {
		struct sim_tenant *t = se->t[i];
		const struct bench_tenant_spec *ts = t->spec;
		struct sched_ctx_cfg cc = {
			.weight = ts->weight, .reserve_ppm = ts->reserve_ppm,
			.cap_ppm = ts->cap_ppm, .klass = ts->klass,
			.fps_limit = ts->fps_limit, .budget_us = ts->budget_us, .priv = t,
		};
		int rc = sched_ctx_add(se->e, &cc, 0, &t->ctx);

		if (rc)
			return rc;
	}
	return 0;
}

int bench_sim_engine(const struct bench_scenario *sc, enum sched_policy p,
		     struct sim_engine *se)
{
	uint64_t calib = timer_cost();
	int rc = engine_setup(se, sc, p);

	if (rc)
		return rc;
	for (unsigned int i = 0; i < se->n; i++)
		tenant_start(se, se->t[i]);
	engine_loop(se);
	se->sched_ns = se->sched_ns > se->sched_calls * calib
			       ? se->sched_ns - se->sched_calls * calib : 0;
	return 0;
}
