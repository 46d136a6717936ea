// SPDX-License-Identifier: MIT
/*
 * The three modes of `gpup bench` (its command line is
 * gpup/cli/cmd_bench.c's): run a scenario under its policy and its
 * baselines and write the reports.  The model checks the scenario's
 * targets; vm mode runs on VMs (bench_vm.c), with the model's numbers
 * beside; live mode drives a running daemon's partitions from threads
 * (bench_live.c).  Those two only report.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "gpup/base/base.h"
#include "gpup/bench/bench.h"
#include "gpup/bench/bench_int.h"

static double wall_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static int run_all(const struct bench_scenario *sc, uint64_t seed, bool baselines,
		   struct bench_run *runs, unsigned int *nruns)
{
	enum sched_policy pol[1 + BENCH_MAX_BASELINES] = { sc->policy };
	unsigned int n = 1;

	for (unsigned int i = 0; baselines && i < sc->nbaselines; i++)
		if (sc->baselines[i] != sc->policy)
			pol[n++] = sc->baselines[i];
	for (*nruns = 0; *nruns < n; (*nruns)++) {
		struct bench_run *r = &runs[*nruns];
		int rc = bench_model_run(sc, pol[*nruns], seed, r);

		if (rc)
			return rc;
		r->baseline = *nruns > 0;
		bench_check_targets(sc, r);
	}
	return 0;
}

static FILE *open_out(const char *path)
{
	FILE *f = strcmp(path, "-") == 0 ? stdout : fopen(path, "w");

	if (!f)
		gpup_err("bench", "cannot write %s: %s", path, strerror(errno));
	return f;
}

static int close_out(FILE *f, const char *path)
{
	int bad = ferror(f);

	if (f != stdout)
		bad |= fclose(f);
	if (bad)
		gpup_err("bench", "writing %s failed", path);
	return bad ? -EIO : 0;
}

static int write_outputs(const struct bench_opts *o, const struct bench_scenario *sc,
			 uint64_t seed, struct bench_run *runs, unsigned int n,
			 double wall)
{
	char err[256];
	FILE *f;
	int rc = 0;

	if (o->json) {
		f = open_out(o->json);
		if (!f)
			return -EIO;
		bench_write_json(f, sc, seed, runs, n, wall);
		rc |= close_out(f, o->json);
	}
	if (o->report || !o->json || strcmp(o->json, "-")) {
		f = open_out(o->report ? o->report : "-");
		if (!f)
			return -EIO;
		bench_write_markdown(f, sc, seed, runs, n);
		rc |= close_out(f, o->report ? o->report : "-");
	}
	if (o->plot && bench_write_plot(o->plot, sc, runs, n, "the model (simulated time)", err,
					sizeof(err))) {
		gpup_err("bench", "%s", err);
		rc = -EIO;
	}
	return rc;
}

static void report_failures(const struct bench_run *r)
{
	for (unsigned int i = 0; i < r->nchecks; i++)
		if (!r->checks[i].pass)
			gpup_err("bench", "target %s failed under %s: %g (limit %g)",
				 r->checks[i].name, sched_policy_name(r->policy),
				 r->checks[i].value, r->checks[i].limit);
}

static int live_outputs(const struct bench_opts *o, const struct bench_scenario *sc,
			const struct bench_live_result *res, unsigned int n, double secs)
{
	FILE *f;
	int rc = 0;

	if (o->json) {
		f = open_out(o->json);
		if (!f)
			return -EIO;
		bench_live_json(f, sc, res, n, secs);
		rc |= close_out(f, o->json);
	}
	if (o->report || !o->json || strcmp(o->json, "-")) {
		f = open_out(o->report ? o->report : "-");
		if (!f)
			return -EIO;
		bench_live_markdown(f, sc, res, n, secs);
		rc |= close_out(f, o->report ? o->report : "-");
	}
	return rc;
}

/* The scenario's policy, then its baselines, on the same partitions. */
int bench_live_mode(const char *run_dir, const struct bench_opts *o,
		    struct bench_scenario *sc)
{
	double secs = o->duration_s > 0 ? o->duration_s : sc->duration_ns / 1e9;
	struct bench_live_result res[1 + BENCH_MAX_BASELINES];
	enum sched_policy pol[1 + BENCH_MAX_BASELINES] = { sc->policy };
	unsigned int np = 1, n = 0;
	struct bench_live l;
	char err[256];
	int rc;

	if (!o->duration_s && secs > 5)
		secs = 5;
	for (unsigned int i = 0; !o->no_baselines && i < sc->nbaselines; i++)
		if (sc->baselines[i] != sc->policy)
			pol[np++] = sc->baselines[i];
	if (bench_command(sc, o, o->have_seed ? o->seed : sc->seed, secs))
		return -ENOMEM;
	bench_signals_catch();
	rc = bench_live_open(&l, run_dir, sc, (uint64_t)(secs * 1e9), err, sizeof(err));
	for (unsigned int i = 0; !rc && i < np; i++) {
		snprintf(l.label, sizeof(l.label), "live %s (%u/%u)", sched_policy_name(pol[i]),
			 i + 1, np);
		rc = bench_live_run(&l, pol[i], o->have_seed ? o->seed : sc->seed, &res[n],
				    err, sizeof(err));
		n += !rc;
	}
	if (!rc && bench_stop_signal()) {
		snprintf(err, sizeof(err), "stopped by signal %d", bench_stop_signal());
		rc = -EINTR;
	}
	if (l.t)
		bench_live_close(&l);
	if (rc)
		gpup_err("bench", "live: %s", err);
	else
		rc = live_outputs(o, sc, res, n, secs);
	for (unsigned int i = 0; i < n; i++)
		bench_live_result_free(&res[i]);
	return rc;
}

/* vm mode checks what it can measure; the rest (lag, 1 s windows) is the
 * model's alone and left out rather than failed. */
static void vm_checks(const struct bench_scenario *sc, struct bench_run *r)
{
	unsigned int k = 0;

	bench_check_targets(sc, r);
	r->pass = r->host_pass = true;
	for (unsigned int i = 0; i < r->nchecks; i++) {
		if (r->checks[i].value < 0)
			continue;
		r->checks[k] = r->checks[i];
		if (r->checks[k].host)
			r->host_pass &= r->checks[k].pass;
		else
			r->pass &= r->checks[k].pass;
		k++;
	}
	r->nchecks = k;
}

/* Each policy on VMs, then in the model for the same time. */
static int vm_runs(struct bench_vm *v, struct bench_scenario *sc, uint64_t seed,
		   const enum sched_policy *pol, unsigned int np, struct bench_run *vm,
		   struct bench_run *model, unsigned int *n, char *err, size_t errlen)
{
	int rc = 0;

	for (*n = 0; !rc && *n < np; (*n)++) {
		snprintf(v->label, sizeof(v->label), "vm %s (%u/%u)", sched_policy_name(pol[*n]),
			 *n + 1, np);
		rc = bench_vm_run(v, pol[*n], seed, &vm[*n], err, errlen);
		if (rc)
			break;
		rc = bench_model_run(sc, pol[*n], seed, &model[*n]);
		if (rc) {
			snprintf(err, errlen, "model run failed: %s", strerror(-rc));
			bench_run_free(&vm[*n]);
			break;
		}
		vm[*n].baseline = model[*n].baseline = *n > 0;
		vm_checks(sc, &vm[*n]);
		bench_check_targets(sc, &model[*n]);
	}
	return rc;
}

static int vm_outputs(const struct bench_opts *o, const struct bench_vm *v, uint64_t seed,
		      const struct bench_run *vm, const struct bench_run *model,
		      unsigned int n, double wall)
{
	char err[256];
	FILE *f;
	int rc = 0;

	if (o->json) {
		if (!(f = open_out(o->json)))
			return -EIO;
		bench_vm_write_json(f, v, seed, vm, model, n, wall);
		rc |= close_out(f, o->json);
	}
	if (o->report || !o->json || strcmp(o->json, "-")) {
		if (!(f = open_out(o->report ? o->report : "-")))
			return -EIO;
		bench_vm_write_markdown(f, v, seed, vm, model, n);
		rc |= close_out(f, o->report ? o->report : "-");
	}
	if (o->plot && bench_write_plot(o->plot, v->sc, vm, n, "VMs (one per tenant)", err, sizeof(err))) {
		gpup_err("bench", "%s", err);
		rc = -EIO;
	}
	return rc;
}

/* Each policy on VMs and in the model for the same time. */
int bench_vm_mode(const char *run_dir, const struct bench_opts *o, struct bench_scenario *sc)
{
	double secs = o->duration_s > 0 ? o->duration_s : sc->duration_ns / 1e9;
	struct bench_run vm[1 + BENCH_MAX_BASELINES], model[1 + BENCH_MAX_BASELINES];
	enum sched_policy pol[1 + BENCH_MAX_BASELINES] = { sc->policy };
	uint64_t seed = o->have_seed ? o->seed : sc->seed;
	unsigned int np = 1, n = 0;
	struct bench_vm v;
	double t0 = wall_now();
	char err[256];
	int rc;

	if (!o->duration_s && secs > 5)
		secs = 5;
	sc->duration_ns = (uint64_t)(secs * 1e9);
	for (unsigned int i = 0; !o->no_baselines && i < sc->nbaselines; i++)
		if (sc->baselines[i] != sc->policy)
			pol[np++] = sc->baselines[i];
	if (bench_command(sc, o, seed, secs))
		return -ENOMEM;
	bench_signals_catch();
	rc = bench_vm_open(&v, run_dir, o->guest, sc, sc->duration_ns, err, sizeof(err));
	if (!rc && bench_stop_signal()) {
		snprintf(err, sizeof(err), "stopped by signal %d", bench_stop_signal());
		rc = -EINTR;
		gpup_err("bench", "vm: %s", err);
		bench_vm_close(&v);
	} else if (!rc) {
		rc = vm_runs(&v, sc, seed, pol, np, vm, model, &n, err, sizeof(err));
		if (!rc)
			rc = vm_outputs(o, &v, seed, vm, model, n, wall_now() - t0);
		else
			gpup_err("bench", "vm: %s", err);
		bench_vm_close(&v);
	} else {
		gpup_err("bench", "vm: %s", err);
	}
	for (unsigned int i = 0; i < n; i++) {
		bench_run_free(&vm[i]);
		bench_run_free(&model[i]);
	}
	return rc;
}

/* The policy and its baselines in simulated time, each against the
 * targets; only the scenario's own policy must meet them. */
int bench_model_mode(const struct bench_opts *o, struct bench_scenario *sc)
{
	struct bench_run runs[1 + BENCH_MAX_BASELINES] = { 0 };
	uint64_t seed = o->have_seed ? o->seed : sc->seed;
	unsigned int n = 0;
	double t0;
	int rc;

	if (o->duration_s > 0)
		sc->duration_ns = (uint64_t)(o->duration_s * 1e9);
	if (bench_command(sc, o, seed, 0))
		return -ENOMEM;
	t0 = wall_now();
	rc = run_all(sc, seed, !o->no_baselines, runs, &n);
	if (rc)
		gpup_err("bench", "model run failed: %s", strerror(-rc));
	else
		rc = write_outputs(o, sc, seed, runs, n, wall_now() - t0);
	if (!rc)
		report_failures(&runs[0]);
	if (!rc && !(runs[0].pass && runs[0].host_pass))
		rc = -EDOM;
	for (unsigned int i = 0; i < n; i++)
		bench_run_free(&runs[i]);
	return rc;
}
