// SPDX-License-Identifier: MIT
/*
 * `gpup sched` and `gpup stats`: change a running GPU's scheduling policy
 * and slice, or a partition's weight, reserve, cap and class, through the
 * daemon, and show each engine's scheduler with its contexts' accounting
 * (a table for people, --json for programs).
 */
#include <getopt.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gpup/cli/cli.h"
#include "gpup/ctl/ctl.h"
#include "scheduler/sched.h"
#include "uapi/gpup_ctl.h"

static void sched_usage(FILE *f)
{
	fprintf(f,
		"usage: gpup sched --gpu ID --policy POLICY [--slice MS] [--watchdog MS]\n"
		"                  [--json]\n"
		"       gpup sched --partition UUID [--weight W] [--reserve F] [--cap F]\n"
		"                  [--class normal|interactive] [--fps N] [--budget T]\n"
		"                  [--json]\n"
		"\n"
		"Set how a GPU's engines are shared, at run time, with partitions\n"
		"running.  POLICY: fifo, best-effort, equal-share, fixed-share,\n"
		"weighted.  --slice: 0.1 to 30 ms; default 2 ms up to 8 contexts on\n"
		"an engine, 1 ms above.  --watchdog: reset a partition whose queue\n"
		"has work but completes nothing for that long (0: off).\n"
		"Per partition: its weight (weighted), the fraction of an engine it\n"
		"reserves (fixed-share) and its cap, its class, and a frame-rate\n"
		"limit for the interactive class.  --budget (e.g. 2ms, 500us; a bare\n"
		"number is ms; 0 removes it) gives an interactive partition with an\n"
		"fps limit a latency guarantee: that much engine time per frame\n"
		"period, served within about a slice of being asked for; the daemon\n"
		"refuses budgets an engine cannot honour together.  Both forms may\n"
		"be combined.  See docs/SCHEDULER.md.\n");
}

struct sched_args {
	const char *gpu, *policy, *part, *klass;
	double slice_ms, reserve, cap, watchdog_ms, budget_us;
	long weight, fps;
	bool ctx, wd;
	int json;
};

static int bad_number(const char *arg)
{
	gpup_err("sched", "'%s' is not a number", arg);
	return 2 + GPUP_EXIT_USAGE;
}

/* strtod that takes no NaN or infinity: *end is left on the first
 * character for those, so they read as "not a number". */
static double real(const char *arg, char **end)
{
	double d = strtod(arg, end);

	if (!isfinite(d)) {
		*end = (char *)arg;
		return 0;
	}
	return d;
}

/* A duration with an optional unit (ms, the default, or us) in us. */
static double budget(const char *arg, char **end)
{
	double d = real(arg, end);

	if (*end != arg && strcmp(*end, "us") == 0)
		*end += 2;
	else if (*end != arg && strcmp(*end, "ms") == 0)
		*end += 2, d *= 1e3;
	else
		d *= 1e3;
	return d;
}

/* One option; 0, 1 = help shown, or an exit code + 2. */
static int sched_opt(int o, const char *arg, struct sched_args *a)
{
	char *end = NULL;

	switch (o) {
	case 'g': a->gpu = arg; return 0;
	case 'p': a->policy = arg; return 0;
	case 'P': a->part = arg; return 0;
	case 'c': a->klass = arg; a->ctx = true; return 0;
	case 'j': a->json = 1; return 0;
	case 'h': sched_usage(stdout); return 1;
	case 's': a->slice_ms = real(arg, &end); break;
	case 'W': a->watchdog_ms = real(arg, &end); a->wd = true; break;
	case 'r': a->reserve = real(arg, &end); a->ctx = true; break;
	case 'C': a->cap = real(arg, &end); a->ctx = true; break;
	case 'w': a->weight = strtol(arg, &end, 10); a->ctx = true; break;
	case 'f': a->fps = strtol(arg, &end, 10); a->ctx = true; break;
	case 'b': a->budget_us = budget(arg, &end); a->ctx = true; break;
	default: sched_usage(stderr); return 2 + GPUP_EXIT_USAGE;
	}
	return *end || end == arg ? bad_number(arg) : 0;
}

static int sched_parse(int argc, char **argv, struct sched_args *a)
{
	static const struct option opts[] = {
		{ "gpu", required_argument, NULL, 'g' },
		{ "policy", required_argument, NULL, 'p' },
		{ "slice", required_argument, NULL, 's' },
		{ "watchdog", required_argument, NULL, 'W' },
		{ "partition", required_argument, NULL, 'P' },
		{ "weight", required_argument, NULL, 'w' },
		{ "reserve", required_argument, NULL, 'r' },
		{ "cap", required_argument, NULL, 'C' },
		{ "class", required_argument, NULL, 'c' },
		{ "fps", required_argument, NULL, 'f' },
		{ "budget", required_argument, NULL, 'b' },
		{ "json", no_argument, NULL, 'j' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	int o, rc;

	while ((o = getopt_long(argc, argv, "h", opts, NULL)) != -1)
		if ((rc = sched_opt(o, optarg, a)))
			return rc;
	if (optind < argc || (!a->gpu && !a->part) || (!a->gpu != !a->policy) ||
	    (a->part && !a->ctx) || (!a->part && a->ctx) || (a->wd && !a->gpu)) {
		gpup_err("sched", "needs --gpu ID --policy POLICY, or --partition UUID with "
			 "--weight, --reserve, --cap, --class, --fps or --budget; see "
			 "'gpup sched --help'");
		return 2 + GPUP_EXIT_USAGE;
	}
	return 0;
}

static int gpu_sched(const struct gpup_global *g, const struct sched_args *a)
{
	json_object *req, *r;
	char slice[32];
	enum sched_policy p;
	int rc;

	if (sched_policy_parse(a->policy, &p)) {
		gpup_err("sched", "unknown policy '%s' (fifo, best-effort, equal-share, "
			 "fixed-share, weighted)", a->policy);
		return GPUP_EXIT_USAGE;
	}
	if (a->slice_ms < 0 || (a->slice_ms && (a->slice_ms < 0.1 || a->slice_ms > 30))) {
		gpup_err("sched", "--slice %g: must be 0.1 to 30 ms", a->slice_ms);
		return GPUP_EXIT_USAGE;
	}
	req = gpup_ctl_request(GPUP_CTL_M_SCHED);
	json_object_object_add(req, GPUP_CTL_F_GPU, json_object_new_string(a->gpu));
	json_object_object_add(req, GPUP_CTL_F_POLICY, json_object_new_string(a->policy));
	json_object_object_add(req, GPUP_CTL_F_SLICE_NS,
			       json_object_new_int64((int64_t)(a->slice_ms * 1e6 + 0.5)));
	if (a->wd && (a->watchdog_ms < 0 || a->watchdog_ms > 3600e3)) {
		json_object_put(req);
		gpup_err("sched", "--watchdog %g: milliseconds, 0 (off) to an hour",
			 a->watchdog_ms);
		return GPUP_EXIT_USAGE;
	}
	if (a->wd)
		json_object_object_add(req, GPUP_CTL_F_WATCHDOG_NS,
				       json_object_new_int64((int64_t)(a->watchdog_ms * 1e6)));
	rc = gpup_ctl_cli_call(g->run_dir, "sched", req, &r);
	if (rc)
		return rc;
	snprintf(slice, sizeof(slice), a->slice_ms ? "%.2f ms" : "default", a->slice_ms);
	if (a->json)
		gpup_ctl_print_json(r);
	else
		printf("%s: %s on %lld engine(s), slice %s\n", gpup_ctl_str(r, GPUP_CTL_F_GPU, "?"),
		       gpup_ctl_str(r, GPUP_CTL_F_POLICY, "?"),
		       (long long)gpup_ctl_int(r, GPUP_CTL_F_ENGINES, 0), slice);
	json_object_put(r);
	return GPUP_EXIT_OK;
}

static int part_sched(const struct gpup_global *g, const struct sched_args *a)
{
	json_object *req = gpup_ctl_request(GPUP_CTL_M_SCHED), *r, *v;
	int rc;

	json_object_object_add(req, GPUP_CTL_F_UUID, json_object_new_string(a->part));
	json_object_object_add(req, GPUP_CTL_F_WEIGHT, json_object_new_int64(a->weight));
	json_object_object_add(req, GPUP_CTL_F_RESERVE, json_object_new_double(a->reserve));
	json_object_object_add(req, GPUP_CTL_F_CAP, json_object_new_double(a->cap));
	json_object_object_add(req, GPUP_CTL_F_FPS_LIMIT, json_object_new_int64(a->fps));
	if (a->budget_us < 0 || a->budget_us > SCHED_BUDGET_MAX_US) {
		json_object_put(req);
		gpup_err("sched", "--budget %g us: at most one frame period, 0 to 1000 ms",
			 a->budget_us);
		return GPUP_EXIT_USAGE;
	}
	json_object_object_add(req, GPUP_CTL_F_BUDGET_US,
			       json_object_new_int64((int64_t)(a->budget_us + 0.5)));
	if (a->klass)
		json_object_object_add(req, GPUP_CTL_F_CLASS, json_object_new_string(a->klass));
	rc = gpup_ctl_cli_call(g->run_dir, "sched", req, &r);
	if (rc)
		return rc;
	if (a->json) {
		gpup_ctl_print_json(r);
	} else {
		double res = json_object_object_get_ex(r, GPUP_CTL_F_RESERVE, &v) ?
				     json_object_get_double(v) : 0;
		double cap = json_object_object_get_ex(r, GPUP_CTL_F_CAP, &v) ?
				     json_object_get_double(v) : 0;

		printf("%s: weight %lld, reserve %g, cap %g, class %s, fps limit %lld, "
		       "budget %.3g ms\n", gpup_ctl_str(r, GPUP_CTL_F_UUID, "?"),
		       (long long)gpup_ctl_int(r, GPUP_CTL_F_WEIGHT, 0), res, cap,
		       gpup_ctl_str(r, GPUP_CTL_F_CLASS, "?"),
		       (long long)gpup_ctl_int(r, GPUP_CTL_F_FPS_LIMIT, 0),
		       gpup_ctl_int(r, GPUP_CTL_F_BUDGET_US, 0) / 1e3);
	}
	json_object_put(r);
	return GPUP_EXIT_OK;
}

static int cmd_sched(const struct gpup_global *g, int argc, char **argv)
{
	struct sched_args a = { 0 };
	int rc = sched_parse(argc, argv, &a);

	if (rc)
		return rc == 1 ? GPUP_EXIT_OK : rc - 2;
	if (a.gpu && (rc = gpu_sched(g, &a)))
		return rc;
	return a.part ? part_sched(g, &a) : GPUP_EXIT_OK;
}

GPUP_COMMAND("sched", "set a GPU's scheduling policy, or a partition's share", cmd_sched)

static void stats_usage(FILE *f)
{
	fprintf(f, "usage: gpup stats [--gpu ID] [--json]\n\n"
		   "Each engine's scheduler, policy and slice, and per context: engine\n"
		   "time, slices, preemptions, dispatch wait p50/p99/max and debt, and\n"
		   "for a partition with a budget, the budget and the p99 and max wait\n"
		   "of what it asked for within it.  Then\n"
		   "per partition, what its client holds of the daemon for DMA: client\n"
		   "memory mapped and IO page tables, each beside its limit (a DMA_MAP\n"
		   "past either is refused with ENOSPC), and its last move to another\n"
		   "GPU (gpup move): how long its guest was paused and the move took.\n");
}

/* "2.00 ms @ 60 fps (310/950)" or "-". */
static void print_budget(json_object *c)
{
	int64_t b = gpup_ctl_int(c, GPUP_CTL_F_BUDGET_US, 0);

	if (!b) {
		printf("-\n");
		return;
	}
	printf("%.2f ms @ %lld fps (%.0f/%.0f)\n", b / 1e3,
	       (long long)gpup_ctl_int(c, GPUP_CTL_F_FPS_LIMIT, 0),
	       gpup_ctl_int(c, "budget_wait_p99_ns", 0) / 1e3,
	       gpup_ctl_int(c, "budget_wait_max_ns", 0) / 1e3);
}

static void print_engine(const char *gpu, json_object *e)
{
	json_object *ctxs = NULL;

	json_object_object_get_ex(e, GPUP_CTL_F_CONTEXTS, &ctxs);
	printf("%s %s%lld: %s %s, slice %.2f ms, busy %.1f ms, %lld switches", gpu,
	       gpup_ctl_str(e, GPUP_CTL_F_KIND, "?"), (long long)gpup_ctl_int(e, GPUP_CTL_F_INDEX, 0),
	       gpup_ctl_str(e, GPUP_CTL_F_SCHEDULER, "?"), gpup_ctl_str(e, GPUP_CTL_F_POLICY, "-"),
	       gpup_ctl_int(e, GPUP_CTL_F_SLICE_NS, 0) / 1e6,
	       gpup_ctl_int(e, GPUP_CTL_F_BUSY_NS, 0) / 1e6,
	       (long long)gpup_ctl_int(e, "switches", 0));
	if (gpup_ctl_int(e, "budgets", 0))
		printf(", %lld budget(s) in turns of %.2f ms", (long long)gpup_ctl_int(e, "budgets", 0),
		       gpup_ctl_int(e, "budget_quantum_ns", 0) / 1e6);
	printf(", longest non-preemptible %.2f ms\n", gpup_ctl_int(e, "nonpreempt_max_ns", 0) / 1e6);
	for (size_t i = 0; ctxs && i < json_object_array_length(ctxs); i++) {
		json_object *c = json_object_array_get_idx(ctxs, i);

		if (i == 0)
			printf("  %-36s %-2s %6s %12s %8s %8s %10s %10s %10s %10s %s\n", "PARTITION",
			       "Q", "WEIGHT", "ENGINE ms", "SLICES", "PREEMPT", "WAIT p50",
			       "p99 µs", "max µs", "DEBT µs", "BUDGET (p99/max µs within)");
		printf("  %-36s %-2lld %6lld %12.1f %8lld %8lld %10.0f %10.0f %10.0f %10.0f ",
		       gpup_ctl_str(c, GPUP_CTL_F_UUID, "-"),
		       (long long)gpup_ctl_int(c, GPUP_CTL_F_QUEUE, -1),
		       (long long)gpup_ctl_int(c, GPUP_CTL_F_WEIGHT, 0),
		       gpup_ctl_int(c, "engine_ns", 0) / 1e6, (long long)gpup_ctl_int(c, "slices", 0),
		       (long long)gpup_ctl_int(c, "preemptions", 0),
		       gpup_ctl_int(c, "wait_p50_ns", 0) / 1e3, gpup_ctl_int(c, "wait_p99_ns", 0) / 1e3,
		       gpup_ctl_int(c, "wait_max_ns", 0) / 1e3, gpup_ctl_int(c, "debt_ns", 0) / 1e3);
		print_budget(c);
	}
}

static const char *size(json_object *o, const char *key, char *buf)
{
	return gpup_format_size((uint64_t)gpup_ctl_int(o, key, 0), buf, 16);
}

/* What each partition's client holds of the daemon for DMA. */
static void print_dma(json_object *r)
{
	json_object *parts = NULL;
	char a[16], b[16], c[16], d[16];

	json_object_object_get_ex(r, GPUP_CTL_F_PARTITIONS, &parts);
	for (size_t i = 0; parts && i < json_object_array_length(parts); i++) {
		json_object *p = json_object_array_get_idx(parts, i);

		char mv[64] = "-";

		if (i == 0)
			printf("%-36s %22s %22s  %s\n", "PARTITION", "DMA MAPPED / LIMIT",
			       "IO PAGE TABLES / LIMIT", "LAST MOVE (pause / all)");
		if (gpup_ctl_int(p, GPUP_CTL_F_MOVES, 0))
			snprintf(mv, sizeof(mv), "%.2f ms / %.2f ms (moves: %lld)",
				 gpup_ctl_int(p, GPUP_CTL_F_MOVE_PAUSE_US, 0) / 1e3,
				 gpup_ctl_int(p, GPUP_CTL_F_MOVE_US, 0) / 1e3,
				 (long long)gpup_ctl_int(p, GPUP_CTL_F_MOVES, 0));
		printf("%-36s %10s / %-9s %10s / %-9s  %s\n", gpup_ctl_str(p, GPUP_CTL_F_UUID, "-"),
		       size(p, GPUP_CTL_F_DMA_BYTES, a), size(p, GPUP_CTL_F_DMA_LIMIT, b),
		       size(p, GPUP_CTL_F_IOPT_BYTES, c), size(p, GPUP_CTL_F_IOPT_LIMIT, d), mv);
	}
}

/* Protection and the last failover of each partition that has either
 * (docs/MIGRATION.md, "Failover"): RPO is the work lost, RTO the time
 * without service. */
static void print_failover(json_object *r)
{
	json_object *parts = NULL, *f;
	bool head = false;
	char pr[64], fo[128];

	json_object_object_get_ex(r, GPUP_CTL_F_PARTITIONS, &parts);
	for (size_t i = 0; parts && i < json_object_array_length(parts); i++) {
		json_object *p = json_object_array_get_idx(parts, i);

		f = NULL;
		json_object_object_get_ex(p, GPUP_CTL_F_FAILOVER, &f);
		if (!gpup_ctl_int(p, GPUP_CTL_F_PROTECT_MS, 0) && !f)
			continue;
		if (!head)
			printf("%-36s %-30s  %s\n", "PARTITION", "PROTECTED (links, last age)",
			       "LAST FAILOVER");
		head = true;
		snprintf(pr, sizeof(pr), "-");
		if (gpup_ctl_int(p, GPUP_CTL_F_PROTECT_MS, 0))
			snprintf(pr, sizeof(pr), "every %lld ms (%lld, %lld ms)",
				 (long long)gpup_ctl_int(p, GPUP_CTL_F_PROTECT_MS, 0),
				 (long long)gpup_ctl_int(p, GPUP_CTL_F_LINKS, 0),
				 (long long)gpup_ctl_int(p, GPUP_CTL_F_LINK_AGE_MS, 0));
		snprintf(fo, sizeof(fo), "-");
		if (f && strcmp(gpup_ctl_str(f, GPUP_CTL_F_RESULT, "?"), "recovered"))
			snprintf(fo, sizeof(fo), "lost with %s: %s", gpup_ctl_str(f, GPUP_CTL_F_FROM, "?"),
				 gpup_ctl_str(f, GPUP_CTL_F_ERROR, "?"));
		else if (f)
			snprintf(fo, sizeof(fo), "recovered from %s: RTO %.1f ms, RPO %.1f ms (%lld "
				 "commands lost)",
				 gpup_ctl_str(f, GPUP_CTL_F_FROM, "?"),
				 gpup_ctl_int(f, GPUP_CTL_F_RTO_US, 0) / 1e3,
				 gpup_ctl_int(f, GPUP_CTL_F_RPO_US, 0) / 1e3,
				 (long long)gpup_ctl_int(f, GPUP_CTL_F_RPO_COMMANDS, 0));
		printf("%-36s %-30s  %s\n", gpup_ctl_str(p, GPUP_CTL_F_UUID, "-"), pr, fo);
	}
}

static int cmd_stats(const struct gpup_global *g, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "gpu", required_argument, NULL, 'g' },
		{ "json", no_argument, NULL, 'j' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	json_object *req = NULL, *r, *gpus = NULL;
	const char *gpu = NULL;
	int json = 0, o, rc;

	while ((o = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		if (o == 'g')
			gpu = optarg;
		else if (o == 'j')
			json = 1;
		else if (o == 'h')
			return stats_usage(stdout), GPUP_EXIT_OK;
		else
			return stats_usage(stderr), GPUP_EXIT_USAGE;
	}
	if (optind < argc) {
		gpup_err("stats", "unexpected argument '%s'", argv[optind]);
		return GPUP_EXIT_USAGE;
	}
	req = gpup_ctl_request(GPUP_CTL_M_STATS);
	if (gpu)
		json_object_object_add(req, GPUP_CTL_F_GPU, json_object_new_string(gpu));
	rc = gpup_ctl_cli_call(g->run_dir, "stats", req, &r);
	if (rc)
		return rc;
	if (json) {
		gpup_ctl_print_json(r);
	} else {
		json_object_object_get_ex(r, GPUP_CTL_F_GPUS, &gpus);
		for (size_t i = 0; gpus && i < json_object_array_length(gpus); i++) {
			json_object *gj = json_object_array_get_idx(gpus, i), *en = NULL;

			json_object_object_get_ex(gj, GPUP_CTL_F_ENGINES, &en);
			for (size_t k = 0; en && k < json_object_array_length(en); k++)
				print_engine(gpup_ctl_str(gj, GPUP_CTL_F_NAME, "?"),
					     json_object_array_get_idx(en, k));
		}
		print_dma(r);
		print_failover(r);
	}
	json_object_put(r);
	return GPUP_EXIT_OK;
}

GPUP_COMMAND("stats", "scheduler accounting per engine and context", cmd_stats)
