// SPDX-License-Identifier: MIT
/*
 * `gpup bench SCENARIO.json --model`: run a scenario under its policy and
 * its baselines, check its targets, and write the reports.  Exit status 0
 * when every target holds, 1 when one fails or the run failed, 2 on a bad
 * command line or scenario.  Without a mode it runs on VMs (bench_vm.c),
 * with the model's numbers beside; `--live` drives a running daemon's
 * partitions from threads (bench_live.c).  Both only report.
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "gpup/bench/bench.h"
#include "gpup/bench/bench_int.h"
#include "gpup/cli/cli.h"

struct bench_opts {
	const char *scenario, *json, *report, *plot, *guest;
	bool model, live, have_seed, no_baselines;
	uint64_t seed;
	double duration_s;
};

static void usage(FILE *f)
{
	fprintf(f,
		"usage: gpup bench SCENARIO.json [--model|--live] [--seed N] [--json OUT]\n"
		"                  [--report OUT.md] [--plot OUT.svg|OUT.png]\n"
		"                  [--duration S] [--no-baselines] [--guest TENANT.elf]\n"
		"\n"
		"Measure how fairly the scheduler shares GPU engines between the\n"
		"scenario's tenants, beside the best-effort and fifo baselines.\n"
		"Without a mode: one VM per tenant running the tenant guest on a\n"
		"partition of its own, on a daemon started for the run (or the one\n"
		"at --run-dir), the model's numbers beside (default 5 s per policy;\n"
		"host-dependent, no targets enforced; needs /dev/kvm).\n"
		"  --model         simulate the engines with the sim GPU's cost model\n"
		"                  (deterministic: same scenario and seed, same numbers)\n"
		"  --live          run it on the running daemon's first sim GPU: one\n"
		"                  partition per tenant, driven over vfio-user (default\n"
		"                  5 s per policy; host-dependent, no targets checked)\n"
		"  --seed N        workload seed (default: the scenario's)\n"
		"  --json OUT      the JSON report ('-' for stdout)\n"
		"  --report OUT.md the Markdown report (default: stdout)\n"
		"  --plot OUT      share over time, drawn by gnuplot (.svg or .png; not live)\n"
		"  --guest FILE    the tenant guest (default: guests/tenant.elf by gpup)\n"
		"  --duration S    run S seconds (per policy) instead of the scenario's\n"
		"  --no-baselines  only the scenario's own policy\n"
		"Exit status: 0 targets hold, 1 a target failed, 2 bad usage.\n");
}

static int parse_opts(int argc, char **argv, struct bench_opts *o)
{
	static const struct option opts[] = {
		{ "model", no_argument, NULL, 'm' },
		{ "live", no_argument, NULL, 'l' },
		{ "seed", required_argument, NULL, 's' },
		{ "json", required_argument, NULL, 'j' },
		{ "report", required_argument, NULL, 'r' },
		{ "plot", required_argument, NULL, 'p' },
		{ "duration", required_argument, NULL, 'd' },
		{ "no-baselines", no_argument, NULL, 'n' },
		{ "guest", required_argument, NULL, 'g' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	char *end;
	int c;

	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case 'm': o->model = true; break;
		case 'l': o->live = true; break;
		case 'j': o->json = optarg; break;
		case 'r': o->report = optarg; break;
		case 'p': o->plot = optarg; break;
		case 'n': o->no_baselines = true; break;
		case 'g': o->guest = optarg; break;
		case 's':
			errno = 0;
			o->seed = strtoull(optarg, &end, 0);
			if (errno || *end || !*optarg) {
				gpup_err("bench", "--seed %s: not a number", optarg);
				return -EINVAL;
			}
			o->have_seed = true;
			break;
		case 'd':
			o->duration_s = strtod(optarg, &end);
			if (*end || o->duration_s <= 0 || o->duration_s > 86400) {
				gpup_err("bench", "--duration %s: seconds in (0, 86400]", optarg);
				return -EINVAL;
			}
			break;
		case 'h': usage(stdout); return 1;
		default: usage(stderr); return -EINVAL;
		}
	}
	if (optind != argc - 1) {
		usage(stderr);
		return -EINVAL;
	}
	o->scenario = argv[optind];
	return 0;
}

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
	if (o->plot && bench_write_plot(o->plot, sc, &runs[0], err, sizeof(err))) {
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
static int live_main(const struct gpup_global *g, const struct bench_opts *o,
		     const struct bench_scenario *sc)
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
	rc = bench_live_open(&l, g->run_dir, sc, (uint64_t)(secs * 1e9), err, sizeof(err));
	for (unsigned int i = 0; !rc && i < np; i++) {
		rc = bench_live_run(&l, pol[i], o->have_seed ? o->seed : sc->seed, &res[n],
				    err, sizeof(err));
		n += !rc;
	}
	if (l.t)
		bench_live_close(&l);
	if (rc)
		gpup_err("bench", "live: %s", err);
	else
		rc = live_outputs(o, sc, res, n, secs);
	for (unsigned int i = 0; i < n; i++)
		bench_live_result_free(&res[i]);
	return rc ? GPUP_EXIT_FAIL : GPUP_EXIT_OK;
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
	if (o->plot && bench_write_plot(o->plot, v->sc, &vm[0], err, sizeof(err))) {
		gpup_err("bench", "%s", err);
		rc = -EIO;
	}
	return rc;
}

static int vm_main(const struct gpup_global *g, const struct bench_opts *o,
		   struct bench_scenario *sc)
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
	rc = bench_vm_open(&v, g->run_dir, o->guest, sc, sc->duration_ns, err, sizeof(err));
	if (rc == -ENODEV || rc == -ENOTSUP) {
		gpup_err("bench", "%s", err);
		return GPUP_EXIT_USAGE;
	}
	if (!rc) {
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
	return rc ? GPUP_EXIT_FAIL : GPUP_EXIT_OK;
}

static int bench_main(const struct gpup_global *g, int argc, char **argv)
{
	struct bench_opts o = { 0 };
	struct bench_scenario sc;
	struct bench_run runs[1 + BENCH_MAX_BASELINES] = { 0 };
	unsigned int n = 0;
	char err[256];
	double t0;
	int rc;

	rc = parse_opts(argc, argv, &o);
	if (rc)
		return rc > 0 ? GPUP_EXIT_OK : GPUP_EXIT_USAGE;
	if ((o.model && o.live) || (o.live && o.plot)) {
		gpup_err("bench", "choose one of --model (simulated engines), --live (threads "
			 "on a running daemon; no --plot) or neither (VMs)");
		return GPUP_EXIT_USAGE;
	}
	if (bench_scenario_load(o.scenario, &sc, err, sizeof(err))) {
		gpup_err("bench", "%s: %s", o.scenario, err);
		return GPUP_EXIT_USAGE;
	}
	if (o.live || !o.model) {
		rc = o.live ? live_main(g, &o, &sc) : vm_main(g, &o, &sc);
		bench_scenario_free(&sc);
		return rc;
	}
	if (o.duration_s > 0)
		sc.duration_ns = (uint64_t)(o.duration_s * 1e9);
	t0 = wall_now();
	rc = run_all(&sc, o.have_seed ? o.seed : sc.seed, !o.no_baselines, runs, &n);
	if (rc)
		gpup_err("bench", "model run failed: %s", strerror(-rc));
	else
		rc = write_outputs(&o, &sc, o.have_seed ? o.seed : sc.seed, runs, n,
				   wall_now() - t0);
	if (!rc)
		report_failures(&runs[0]);
	if (!rc && !(runs[0].pass && runs[0].host_pass))
		rc = -EDOM;
	for (unsigned int i = 0; i < n; i++)
		bench_run_free(&runs[i]);
	bench_scenario_free(&sc);
	return rc ? GPUP_EXIT_FAIL : GPUP_EXIT_OK;
}

GPUP_COMMAND("bench", "measure scheduling fairness (VMs, --model or --live)", bench_main)
