// SPDX-License-Identifier: MIT
/*
 * `gpup bench SCENARIO.json [--model|--live]`: the command line of the
 * fairness benchmark; the runs are the bench room's (gpup/bench/bench.h).
 * Exit statuses: see usage() and gpup/bench/bench.h.
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>

#include "gpup/bench/bench.h"
#include "gpup/cli/cli.h"

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
		"  --report OUT.md  the Markdown report (default: stdout)\n"
		"  --plot OUT      share over time, drawn by gnuplot (.svg or .png; not live)\n"
		"  --guest FILE    the tenant guest (default: guests/tenant.elf by gpup)\n"
		"  --duration S    run S seconds (per policy) instead of the scenario's\n"
		"  --no-baselines  only the scenario's own policy\n"
		"Live and vm runs leave the daemon's scheduler settings as they found\n"
		"them, also when stopped by SIGINT, SIGTERM or SIGHUP.  A progress line\n"
		"is shown on a terminal.  Scenario and report formats:\n"
		"docs/bench-scenario.schema.json, docs/bench-report.schema.json.\n"
		"Exit status: 0 the run completed (and, with --model, every target\n"
		"holds); 1 the run failed (no daemon, a VM or partition failed, a\n"
		"report could not be written); 2 bad usage or scenario, or a mode this\n"
		"host or scenario cannot run; 3 a target failed; 128+N stopped by\n"
		"signal N, the daemon's settings put back.\n");
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
			if (*end || !(o->duration_s > 0 && o->duration_s <= 86400)) {
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

static int exit_status(int rc)
{
	if (bench_stop_signal())
		return 128 + bench_stop_signal();
	if (rc == -EDOM)
		return BENCH_EXIT_TARGET;
	return rc ? GPUP_EXIT_FAIL : GPUP_EXIT_OK;
}

static int run(const struct gpup_global *g, const struct bench_opts *o,
	       struct bench_scenario *sc)
{
	char err[256];

	if (o->model)
		return exit_status(bench_model_mode(o, sc));
	if (o->live)
		return exit_status(bench_live_mode(g->run_dir, o, sc));
	if (bench_vm_usable(sc, err, sizeof(err))) {
		gpup_err("bench", "%s", err);
		return GPUP_EXIT_USAGE;
	}
	return exit_status(bench_vm_mode(g->run_dir, o, sc));
}

static int cmd_bench(const struct gpup_global *g, int argc, char **argv)
{
	struct bench_opts o = { 0 };
	struct bench_scenario sc;
	char err[256];
	int rc = parse_opts(argc, argv, &o);

	if (rc)
		return rc > 0 ? GPUP_EXIT_OK : GPUP_EXIT_USAGE;
	if ((o.model && o.live) || (o.live && o.plot)) {
		gpup_err("bench", "choose one of --model (simulated engines), --live (threads "
			 "on a running daemon; no --plot) or neither (VMs)");
		return GPUP_EXIT_USAGE;
	}
	if (o.plot && bench_plot_check(o.plot, err, sizeof(err))) {
		gpup_err("bench", "%s", err);
		return GPUP_EXIT_USAGE;
	}
	if (bench_scenario_load(o.scenario, &sc, err, sizeof(err))) {
		gpup_err("bench", "%s: %s", o.scenario, err);
		return GPUP_EXIT_USAGE;
	}
	rc = run(g, &o, &sc);
	bench_scenario_free(&sc);
	return rc;
}

GPUP_COMMAND("bench", "measure scheduling fairness (VMs, --model or --live)", cmd_bench)
