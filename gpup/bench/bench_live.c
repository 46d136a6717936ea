// SPDX-License-Identifier: MIT
/*
 * `gpup bench --live`: the scenario on a running daemon's sim GPU.  Each
 * tenant gets a partition of its own, driven over vfio-user the way a guest
 * driver drives it (gpup/drv/drv.h), from a thread that submits SPIN
 * kernels of the scenario's lengths with its workload's timing; the real
 * engine executor and the real scheduler share the engine.  Every tenant
 * records the engine time it got back per 100 ms window and, for frames
 * and closed loops, how long each job took from submission to its fence.
 * The partitions are destroyed at the end and the GPU's scheduler
 * settings, read before the first run, are put back; a stop signal ends
 * the run early and does the same (bench_term.c).
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "gpup/base/base.h"
#include "gpup/bench/bench_int.h"
#include "gpup/drv/drv.h"

#define LIVE_BATCH 4              /* kernels a saturating tenant keeps queued */
#define LIVE_FENCE_MS 10000

static uint64_t mono(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void sleep_until(uint64_t t)
{
	struct timespec ts = { .tv_sec = (time_t)(t / 1000000000ull),
			       .tv_nsec = (long)(t % 1000000000ull) };

	while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR &&
	       !bench_stop_signal())
		;
}

/* The run goes on until its end or a stop signal. */
static bool running(const struct bench_live *l)
{
	return mono() < l->end && !bench_stop_signal();
}

static int connect_one(struct bench_live_client *t, char *err, size_t errlen)
{
	int rc = 0;

	t->c = vfu_client_connect(t->sock, &rc);
	if (!t->c) {
		snprintf(err, errlen, "cannot connect to %s: %s", t->sock, strerror(-rc));
		return rc ? rc : -EIO;
	}
	rc = gpup_vg_open(&t->g, t->c, GPUP_VG_DATA_OFF + 4096);
	if (!rc) {
		t->open = true;
		rc = gpup_vg_queue_setup(&t->g, 0, GPUP_ENGINE_COMPUTE);
	}
	if (rc)
		snprintf(err, errlen, "cannot set partition %s up: %s", t->uuid, strerror(-rc));
	return rc;
}

/* ---- what each tenant does ---- */

static int spin(struct bench_live_client *t, const uint64_t *ns, unsigned int k)
{
	union gpup_cmd cmds[LIVE_BATCH];
	int rc;

	for (unsigned int i = 0; i < k; i++)
		cmds[i] = gpup_cmd_kernel(GPUP_KERNEL_SPIN, (uint64_t[6]){ ns[i] }, 6);
	rc = gpup_vg_submit(&t->g, 0, cmds, k);
	return rc ? rc : gpup_vg_fence_wait(&t->g, 0, LIVE_FENCE_MS, NULL);
}

/* Work completed at done, counted while the run lasts.  Only the fence at
 * its end is seen, so the work is spread evenly over the time since it was
 * submitted (from) or since the previous completion, whichever is later. */
static void record(struct bench_live_client *t, uint64_t ns, unsigned int jobs, uint64_t from,
		   uint64_t done)
{
	const struct bench_live *l = t->l;
	uint64_t a = from > t->last_done ? from : t->last_done, span;

	t->last_done = done;
	if (done >= l->end)
		return;
	t->work_ns += ns;
	__atomic_store_n(&t->seen_ns, t->work_ns, __ATOMIC_RELAXED);
	t->jobs += jobs;
	a = a < l->start ? l->start : a;
	if (a >= done) {
		t->win[(done - l->start) / BENCH_WINDOW_NS] += ns;
		return;
	}
	span = done - a;
	while (a < done) {
		uint64_t w = (a - l->start) / BENCH_WINDOW_NS;
		uint64_t wend = l->start + (w + 1) * BENCH_WINDOW_NS;
		uint64_t e = done < wend ? done : wend;

		t->win[w] += (uint64_t)((unsigned __int128)ns * (e - a) / span);
		a = e;
	}
}

static void latency(struct bench_live_client *t, uint64_t ns)
{
	if (t->nlat < t->lat_cap)
		t->lat[t->nlat++] = ns;
}

/* Bursty: wait out an off phase; false when the run is over. */
static bool burst_on(struct bench_live_client *t, uint64_t *switch_at)
{
	const struct bench_workload *wl = &t->spec->wl;
	uint64_t now = mono();

	while (now >= *switch_at) {
		t->on = !t->on;
		*switch_at += bench_draw(t->on ? &wl->on : &wl->off, &t->rng);
	}
	if (!t->on) {
		sleep_until(*switch_at < t->l->end ? *switch_at : t->l->end);
		return running(t->l);
	}
	return true;
}

static int run_jobs(struct bench_live_client *t)
{
	const struct bench_workload *wl = &t->spec->wl;
	bool loop = wl->kind == BENCH_WL_CLOSED_LOOP;
	unsigned int k = loop ? 1 : LIVE_BATCH;
	uint64_t switch_at = t->l->start, ns[LIVE_BATCH];

	while (running(t->l)) {
		uint64_t sum = 0, t0;
		int rc;

		if (wl->kind == BENCH_WL_BURSTY && !burst_on(t, &switch_at))
			break;
		if (wl->kind == BENCH_WL_BURSTY && !t->on)
			continue;
		for (unsigned int i = 0; i < k; i++)
			sum += ns[i] = bench_draw(&wl->job, &t->rng);
		t0 = mono();
		if ((rc = spin(t, ns, k)))
			return rc;
		record(t, sum, k, t0, mono());
		if (loop) {
			latency(t, mono() - t0);
			sleep_until(mono() + bench_draw(&wl->think, &t->rng));
		}
	}
	return 0;
}

static int run_frames(struct bench_live_client *t)
{
	const struct bench_workload *wl = &t->spec->wl;
	uint64_t period = (uint64_t)(1e9 / wl->fps);
	uint64_t next = t->l->start + (uint64_t)(bench_rng_unit(&t->rng) * (double)period);

	while (next < t->l->end && !bench_stop_signal()) {
		uint64_t ns = bench_draw(&wl->job, &t->rng), done;
		int rc;

		sleep_until(next);
		if ((rc = spin(t, &ns, 1)))
			return rc;
		done = mono();
		if (done < t->l->end) {
			record(t, ns, 1, next, done);
			latency(t, done - next);
			t->frames++;
			t->frames_missed += done > next + period;
		}
		next += period;
	}
	return 0;
}

static void *tenant_main(void *arg)
{
	struct bench_live_client *t = arg;

	sleep_until(t->l->start);
	t->rc = t->spec->wl.kind == BENCH_WL_FRAMES ? run_frames(t) : run_jobs(t);
	return NULL;
}

/* ---- a session: partitions, clients, runs ---- */

static void tenant_reset(struct bench_live_client *t, uint64_t seed, unsigned int i)
{
	memset(t->win, 0, t->l->nwin * sizeof(*t->win));
	t->rng = seed * 0x9e3779b97f4a7c15ull + i * 0xd1b54a32d192ed03ull + 1;
	t->work_ns = t->jobs = t->frames = t->frames_missed = t->seen_ns = 0;
	t->nlat = 0;
	t->last_done = 0;
	t->on = false;
	t->rc = 0;
}

/* On a terminal, the run's progress until its end (or a stop signal). */
static void watch(struct bench_live *l)
{
	double *work = calloc(l->n, sizeof(*work));

	while (work && bench_progress_on() && running(l)) {
		uint64_t now = mono();

		for (unsigned int i = 0; i < l->n; i++)
			work[i] = (double)__atomic_load_n(&l->t[i].seen_ns, __ATOMIC_RELAXED);
		bench_progress(l->sc, l->label, now > l->start ? (now - l->start) / 1e9 : 0,
			       l->duration_ns / 1e9, work);
		sleep_until(now + 250 * 1000000ull);
	}
	bench_progress_end();
	free(work);
}

int bench_live_run(struct bench_live *l, enum sched_policy p, uint64_t seed,
		   struct bench_live_result *res, char *err, size_t errlen)
{
	int rc = bench_ctl_policy(l->run_dir, l->sc->gpus[0].name, p, l->sc->slice_ns, err,
				  errlen);
	unsigned int started = 0;

	for (unsigned int i = 0; !rc && i < l->n; i++)
		rc = bench_ctl_tenant(l->run_dir, l->t[i].uuid, l->t[i].spec, err, errlen);
	if (rc)
		return rc;
	l->start = mono() + 20 * 1000000ull;
	l->end = l->start + l->duration_ns;
	for (unsigned int i = 0; i < l->n; i++) {
		tenant_reset(&l->t[i], seed, i);
		if (pthread_create(&l->t[i].th, NULL, tenant_main, &l->t[i]))
			break;
		started++;
	}
	watch(l);
	for (unsigned int i = 0; i < started; i++)
		pthread_join(l->t[i].th, NULL);
	for (unsigned int i = 0; i < l->n && !rc; i++)
		if (i >= started || l->t[i].rc)
			rc = i >= started ? -EAGAIN : l->t[i].rc;
	if (bench_stop_signal()) {
		snprintf(err, errlen, "stopped by signal %d", bench_stop_signal());
		return -EINTR;
	}
	if (rc) {
		snprintf(err, errlen, "a tenant's partition stopped answering: %s", strerror(-rc));
		return rc;
	}
	return bench_live_measure(l, p, res);
}

int bench_live_open(struct bench_live *l, const char *run_dir,
		    const struct bench_scenario *sc, uint64_t duration_ns, char *err,
		    size_t errlen)
{
	char type[64];
	int rc;

	memset(l, 0, sizeof(*l));
	for (unsigned int i = 0; i < sc->ntenants; i++) {
		if (sc->tenants[i].gpu || sc->tenants[i].engine) {
			snprintf(err, errlen, "tenant %s: live mode runs every tenant on the "
				 "compute engine of the scenario's first GPU", sc->tenants[i].name);
			return -EINVAL;
		}
	}
	l->run_dir = run_dir;
	l->sc = sc;
	l->n = sc->ntenants;
	l->duration_ns = duration_ns;
	l->nwin = (unsigned int)((duration_ns + BENCH_WINDOW_NS - 1) / BENCH_WINDOW_NS);
	l->t = calloc(l->n, sizeof(*l->t));
	if (!l->t) {
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	rc = bench_ctl_gpu_get(run_dir, sc->gpus[0].name, &l->orig, err, errlen);
	if (!rc)
		rc = bench_ctl_pick_type(run_dir, sc->gpus[0].name, l->n, type, sizeof(type),
					 err, errlen);
	for (unsigned int i = 0; !rc && i < l->n; i++) {
		struct bench_live_client *t = &l->t[i];

		t->l = l;
		t->spec = &sc->tenants[i];
		t->lat_cap = 100000;
		t->win = calloc(l->nwin, sizeof(*t->win));
		t->lat = calloc(t->lat_cap, sizeof(*t->lat));
		rc = t->win && t->lat ? bench_ctl_create(run_dir, sc->gpus[0].name, type, t->uuid,
							 t->sock, err, errlen)
				      : -ENOMEM;
		if (!rc)
			rc = connect_one(t, err, errlen);
	}
	if (rc == -ENOMEM)
		snprintf(err, errlen, "out of memory");
	if (rc)
		bench_live_close(l);
	return rc;
}

void bench_live_close(struct bench_live *l)
{
	char err[256];

	for (unsigned int i = 0; l->t && i < l->n; i++) {
		struct bench_live_client *t = &l->t[i];

		if (t->open)
			gpup_vg_close(&t->g);
		if (t->c)
			vfu_client_close(t->c);
		if (t->uuid[0])
			bench_ctl_destroy(l->run_dir, t->uuid);
		free(t->win);
		free(t->lat);
	}
	free(l->t);
	l->t = NULL;
	if (bench_ctl_gpu_put(l->run_dir, &l->orig, err, sizeof(err)))
		gpup_err("bench", "could not put %s's scheduler settings back (%s, slice %.2f ms): "
			 "%s", l->orig.gpu, sched_policy_name(l->orig.policy),
			 l->orig.slice_ns / 1e6, err);
	l->orig.have = false;
}
