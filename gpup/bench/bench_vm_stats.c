// SPDX-License-Identifier: MIT
/*
 * vm mode's numbers.  Engine time, slices, preemptions and dispatch waits
 * are the daemon's own accounting (`stats`), sampled every 100 ms; the
 * scheduling overhead is the CPU time the compute engine's executor thread
 * spent outside the contexts it ran (from /proc: the scheduler, its locks
 * and its doorbell handling, so an upper bound) over the engine time it
 * gave them; jobs, frames and latencies are what the guests measured
 * themselves.  Shares are of the engine time delivered (the executor
 * counts CPU time, so a busy host slows the engine down but does not
 * skew the split); saturating tenants are judged by the scenario policy's
 * weights, as in live mode, since there is no fluid reference here.
 */
#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "gpup/bench/bench_int.h"
#include "gpup/ctl/ctl.h"
#include "uapi/gpup_ctl.h"

static uint64_t mono(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static uint64_t u64(json_object *o, const char *k)
{
	int64_t v = gpup_ctl_int(o, k, 0);

	return v > 0 ? (uint64_t)v : 0;
}

/* The executor thread of the scenario GPU's first compute engine, by the
 * name the daemon gives it (gpup/engine.c: "<gpu>-comp0"). */
static pid_t engine_thread(const struct bench_vm *v)
{
	char path[64], want[16], comm[32];
	struct dirent *de;
	pid_t tid = 0;
	DIR *d;

	snprintf(path, sizeof(path), "/proc/%d/task", (int)v->daemon_pid);
	snprintf(want, sizeof(want), "%.6s-comp0\n", v->sc->gpus[0].name);
	if (!v->daemon_pid || !(d = opendir(path)))
		return 0;
	while (!tid && (de = readdir(d))) {
		FILE *f;

		snprintf(path, sizeof(path), "/proc/%d/task/%.16s/comm", (int)v->daemon_pid,
			 de->d_name);
		if (!(f = fopen(path, "r")))
			continue;
		if (fgets(comm, sizeof(comm), f) && !strcmp(comm, want))
			tid = atoi(de->d_name);
		fclose(f);
	}
	closedir(d);
	return tid;
}

/* A thread's CPU time in ns (schedstat's first field); 0 if unknown. */
static uint64_t thread_ns(pid_t pid, pid_t tid)
{
	char path[64];
	unsigned long long ns = 0;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/task/%d/schedstat", (int)pid, (int)tid);
	if (!tid || !(f = fopen(path, "r")))
		return 0;
	if (fscanf(f, "%llu", &ns) != 1)
		ns = 0;
	fclose(f);
	return ns;
}

static void ctx_fill(const struct bench_vm *v, json_object *c, struct bench_vm_snap *s)
{
	const char *uuid = gpup_ctl_str(c, GPUP_CTL_F_UUID, "");

	for (unsigned int i = 0; i < v->n; i++) {
		struct bench_vm_ctx_stats *x = &s->ctx[i];

		if (strcmp(uuid, v->t[i].uuid))
			continue;
		x->found = true;
		x->engine_ns = u64(c, "engine_ns");
		x->slices = u64(c, "slices");
		x->preemptions = u64(c, "preemptions");
		x->overrun_ns = u64(c, "overrun_ns");
		x->wait_p50_ns = u64(c, "wait_p50_ns");
		x->wait_p99_ns = u64(c, "wait_p99_ns");
		x->wait_max_ns = u64(c, "wait_max_ns");
		x->debt_ns = gpup_ctl_int(c, "debt_ns", 0);
		x->budget_waits = u64(c, "budget_waits");
		x->budget_wait_p99_ns = u64(c, "budget_wait_p99_ns");
		x->budget_wait_max_ns = u64(c, "budget_wait_max_ns");
		x->budget_exhausted = u64(c, "budget_exhausted");
	}
}

static json_object *compute0(json_object *r)
{
	json_object *g = json_object_array_get_idx(json_object_object_get(r, GPUP_CTL_F_GPUS), 0);
	json_object *a = json_object_object_get(g, GPUP_CTL_F_ENGINES);

	for (size_t i = 0; a && i < json_object_array_length(a); i++) {
		json_object *e = json_object_array_get_idx(a, i);

		if (!strcmp(gpup_ctl_str(e, GPUP_CTL_F_KIND, ""), "compute") &&
		    gpup_ctl_int(e, GPUP_CTL_F_INDEX, -1) == 0)
			return e;
	}
	return NULL;
}

int bench_vm_snapshot(struct bench_vm *v, struct bench_vm_snap *s, char *err,
		      size_t errlen)
{
	json_object *req = gpup_ctl_request(GPUP_CTL_M_STATS), *r, *e, *a;
	int rc;

	json_object_object_add(req, GPUP_CTL_F_GPU, json_object_new_string(v->sc->gpus[0].name));
	if ((rc = bench_ctl(v->run_dir, req, &r, err, errlen)))
		return rc;
	memset(s, 0, sizeof(*s));
	s->at = mono();
	if (!v->engine_tid)
		v->engine_tid = engine_thread(v);
	s->thread_ns = thread_ns(v->daemon_pid, v->engine_tid);
	if (!(e = compute0(r))) {
		json_object_put(r);
		snprintf(err, errlen, "the daemon's stats show no compute engine on %s",
			 v->sc->gpus[0].name);
		return -ENODEV;
	}
	s->tslice = sched_policy_parse(gpup_ctl_str(e, GPUP_CTL_F_POLICY, ""), &s->policy) == 0;
	s->slice_ns = u64(e, GPUP_CTL_F_SLICE_NS);
	s->busy_ns = u64(e, GPUP_CTL_F_BUSY_NS);
	s->picks = u64(e, "picks");
	s->idle_picks = u64(e, "idle_picks");
	s->switches = u64(e, "switches");
	s->nonpreempt_max_ns = u64(e, "nonpreempt_max_ns");
	a = json_object_object_get(e, GPUP_CTL_F_CONTEXTS);
	for (size_t i = 0; a && i < json_object_array_length(a); i++)
		ctx_fill(v, json_object_array_get_idx(a, i), s);
	json_object_put(r);
	return 0;
}

int bench_vm_guest_result(const char *serial, struct bench_vm_guest *g, char *err,
			  size_t errlen)
{
	char line[512];
	FILE *f = fopen(serial, "r");
	bool ok = false;

	memset(g, 0, sizeof(*g));
	while (f && !ok && fgets(line, sizeof(line), f))
		ok = sscanf(line, "tenant: result jobs=%lu frames=%lu missed=%lu engine_ns=%lu "
			    "lat_n=%lu lat_p50_ns=%lu lat_p99_ns=%lu lat_max_ns=%lu run_ns=%lu",
			    &g->jobs, &g->frames, &g->missed, &g->engine_ns, &g->lat_n,
			    &g->lat_p50_ns, &g->lat_p99_ns, &g->lat_max_ns, &g->run_ns) == 9;
	if (f)
		fclose(f);
	if (!ok)
		snprintf(err, errlen, "no result line from the guest in %s", serial);
	return ok ? 0 : -EIO;
}

/* ---- into a bench_run ---- */

static bool saturating(const struct bench_vm *v, unsigned int i)
{
	return v->sc->tenants[i].wl.kind == BENCH_WL_SATURATING;
}

static uint64_t got(const struct bench_vm *v, unsigned int i)
{
	return v->last.ctx[i].engine_ns - v->first.ctx[i].engine_ns;
}

/* Jain's index per window of what saturating tenants got over their weights. */
static void vm_jain(const struct bench_vm *v, struct bench_run *run)
{
	double sum = 0;

	run->jain_min = run->jain_mean = -1;
	for (unsigned int w = 0; w < v->nwin; w++) {
		double x[BENCH_VM_MAX_TENANTS], j;
		unsigned int k = 0;
		bool any = false;

		for (unsigned int i = 0; i < v->n; i++) {
			if (!saturating(v, i))
				continue;
			x[k] = v->win[w][i] / bench_policy_weight(v->sc, i);
			any |= x[k++] > 0;
		}
		if (k < 2 || !any)
			continue;
		j = bench_jain(x, k);
		run->jain_min = run->jain_windows && run->jain_min < j ? run->jain_min : j;
		sum += j;
		run->jain_windows++;
	}
	if (run->jain_windows)
		run->jain_mean = sum / run->jain_windows;
}

/* A budget holder's waits (the VM's whole life, as the other waits)
 * against the bounds of the engine at the end of the run; as in the model,
 * every wait under a policy that ignores budgets. */
static void vm_budget(const struct bench_vm *v, const struct bench_vm_ctx_stats *b,
		      bool holder, struct bench_tenant_result *r)
{
	r->budget_wait_p99_us = r->budget_wait_max_us = -1;
	r->wait_p99_bound_us = r->wait_bound_us = -1;
	if (!holder)
		return;
	r->budget_exhausted = b->budget_exhausted;
	r->budget_wait_p99_us = (b->budget_waits ? b->budget_wait_p99_ns : b->wait_p99_ns) / 1e3;
	r->budget_wait_max_us = (b->budget_waits ? b->budget_wait_max_ns : b->wait_max_ns) / 1e3;
	r->wait_p99_bound_us = sched_budget_wait_p99(v->last.slice_ns) / 1e3;
	r->wait_bound_us = sched_budget_wait_bound(v->last.slice_ns,
						   v->last.nonpreempt_max_ns) / 1e3;
}

static void vm_tenant(const struct bench_vm *v, unsigned int i, double total, double sat,
		      double wsat, struct bench_tenant_result *r)
{
	const struct bench_vm_ctx_stats *a = &v->first.ctx[i], *b = &v->last.ctx[i];
	const struct bench_vm_guest *g = &v->t[i].res;

	r->share = total > 0 ? got(v, i) / total : 0;
	r->target_share = r->share_error = r->window_share_error_max = r->max_lag_ms = -1;
	if (saturating(v, i) && sat > 0 && wsat > 0) {
		double want = bench_policy_weight(v->sc, i) / wsat;

		r->target_share = want * sat / total;
		r->share_error = fabs(got(v, i) / sat - want) / want;
	}
	r->engine_ms = got(v, i) / 1e6;
	r->jobs = g->jobs;
	r->jobs_per_s = g->run_ns ? g->jobs / (g->run_ns / 1e9) : 0;
	r->slices = b->slices - a->slices;
	r->preemptions = b->preemptions - a->preemptions;
	r->overrun_ms = (b->overrun_ns - a->overrun_ns) / 1e6;
	r->wait_p50_us = b->wait_p50_ns / 1e3;
	r->wait_p99_us = b->wait_p99_ns / 1e3;
	r->wait_max_us = b->wait_max_ns / 1e3;
	r->debt_us = b->debt_ns / 1e3;
	vm_budget(v, b, v->sc->tenants[i].budget_us != 0, r);
	r->frames = g->frames;
	r->frames_missed = g->missed;
	for (unsigned int w = 0; w < v->nwin; w++) {
		double s = 0;

		for (unsigned int k = 0; k < v->n; k++)
			s += v->win[w][k];
		r->window_share[w] = s > 0 ? v->win[w][i] / s : 0;
	}
}

static void vm_engine(const struct bench_vm *v, struct bench_engine_result *e)
{
	double span = (double)(v->last.at - v->first.at);
	uint64_t busy = v->last.busy_ns - v->first.busy_ns;
	uint64_t cpu = v->last.thread_ns - v->first.thread_ns;

	e->ntenants = v->n;
	e->utilisation = span > 0 ? busy / span : 0;
	e->switches_per_s = span > 0 ? (v->last.switches - v->first.switches) / (span / 1e9) : 0;
	e->picks = v->last.picks - v->first.picks;
	e->idle_picks = v->last.idle_picks - v->first.idle_picks;
	e->nonpreempt_max_us = v->last.nonpreempt_max_ns / 1e3;
	e->overhead = -1;
	if (v->first.thread_ns && v->last.thread_ns && cpu >= busy && busy) {
		e->sched_cpu_ns = cpu - busy;
		e->overhead = (double)e->sched_cpu_ns / busy;
	}
}

/* Under fifo a run lasts until its context's queue is empty, which for a
 * saturating guest is seconds: the daemon accounts engine time when a run
 * ends, so what falls in a window says nothing about the split.  Shares,
 * Jain's index and the overhead are then not measured (the guests' own
 * numbers, frames above all, still are). */
static void unwindowed(struct bench_run *run)
{
	for (unsigned int i = 0; i < run->ntenants; i++) {
		struct bench_tenant_result *t = &run->tenants[i];

		t->share = t->target_share = t->share_error = -1;
		memset(t->window_share, 0, run->nwindows * sizeof(double));
	}
	run->jain_min = run->jain_mean = -1;
	run->jain_windows = 0;
	run->engines[0].overhead = -1;
	run->engines[0].sched_cpu_ns = 0;
}

int bench_vm_measure(const struct bench_vm *v, enum sched_policy p, struct bench_run *run)
{
	double total = 0, sat = 0, wsat = 0;

	memset(run, 0, sizeof(*run));
	run->policy = p;
	run->slice_ns = v->last.slice_ns;
	run->nwindows = v->nwin;
	run->tenants = calloc(v->n, sizeof(*run->tenants));
	run->engines = calloc(1, sizeof(*run->engines));
	run->ntenants = run->tenants ? v->n : 0;
	run->nengines = 1;
	for (unsigned int i = 0; run->tenants && i < v->n; i++)
		if (!(run->tenants[i].window_share = calloc(v->nwin + 1, sizeof(double))))
			break;
	if (!run->engines || !run->tenants || !run->tenants[v->n - 1].window_share) {
		bench_run_free(run);
		return -ENOMEM;
	}
	for (unsigned int i = 0; i < v->n; i++) {
		total += got(v, i);
		sat += saturating(v, i) ? got(v, i) : 0;
		wsat += saturating(v, i) ? bench_policy_weight(v->sc, i) : 0;
	}
	for (unsigned int i = 0; i < v->n; i++)
		vm_tenant(v, i, total, sat, wsat, &run->tenants[i]);
	vm_engine(v, &run->engines[0]);
	vm_jain(v, run);
	if (p == SCHED_POLICY_FIFO)
		unwindowed(run);
	run->share_error_max = -1;     /* stays so when no saturating tenant was served */
	bench_run_summary(v->sc, run);
	run->window_share_error_max = run->lag_max_ms = -1;
	return 0;
}
