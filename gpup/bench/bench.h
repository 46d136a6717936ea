/* SPDX-License-Identifier: MIT */
/*
 * The bench room (gpup/bench/): what `gpup bench`, the fairness benchmark,
 * runs (its command line is gpup/cli/cmd_bench.c).  A scenario (JSON, see
 * docs/SCHEDULER.md) names GPUs, a policy, a slice and tenants with
 * workloads; the model runs the real scheduler in simulated time with the
 * sim GPU's cost model and measures what every tenant received.  Shared
 * by the scenario parser (bench_scenario.c), the discrete-event model
 * (bench_model.c), the report writers (bench_report.c, bench_markdown.c)
 * and the three modes (bench.c).
 */
#ifndef GPUP_BENCH_H
#define GPUP_BENCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "scheduler/sched.h"

/* The sim GPU cost model's defaults, used when a scenario's GPU leaves
 * them out: work given in flops or bytes becomes engine time with these. */
#define BENCH_DEFAULT_FLOPS_PER_S 10000000000000ull   /* 10 TFLOP/s */
#define BENCH_DEFAULT_COPY_BYTES_PER_S 100000000000ull /* 100 GB/s */

#define BENCH_WINDOW_NS (100 * SCHED_NS_PER_MS)  /* Jain and plot windows */
#define BENCH_LONG_WINDOW 10                     /* 1 s = 10 windows */
#define BENCH_MAX_TENANTS 4096
#define BENCH_MAX_BASELINES 4

enum bench_dist_kind { BENCH_DIST_FIXED, BENCH_DIST_UNIFORM, BENCH_DIST_EXP };

/* A distribution of durations in ns (after the cost model's scaling). */
struct bench_dist {
	enum bench_dist_kind kind;
	double a, b;           /* fixed: a; uniform: [a, b]; exp: mean a */
};

enum bench_workload_kind {
	BENCH_WL_SATURATING,   /* always has a kernel queued */
	BENCH_WL_BURSTY,       /* saturating while on, nothing while off */
	BENCH_WL_CLOSED_LOOP,  /* one kernel, think, the next */
	BENCH_WL_FRAMES,       /* a frame every 1/fps; deadline the next one */
};

struct bench_workload {
	enum bench_workload_kind kind;
	struct bench_dist job;       /* kernel or frame length */
	uint64_t preempt_ns;         /* work-group granularity; 0: non-preemptible */
	struct bench_dist on, off;   /* bursty */
	struct bench_dist think;     /* closed-loop */
	double fps;                  /* frames */
};

struct bench_tenant_spec {
	char name[48];
	char type[32];               /* partition type, informational */
	unsigned int gpu, engine;    /* scenario GPU index, engine index */
	uint32_t weight, reserve_ppm, cap_ppm, fps_limit;
	uint32_t budget_us;          /* per frame period (1/fps_limit); 0: none */
	enum sched_class klass;
	char group[32];              /* peers whose shares should match */
	struct bench_workload wl;
};

struct bench_gpu_spec {
	char name[32];
	unsigned int engines;
	uint64_t switch_ns;          /* context switch cost on the engine */
	uint64_t flops_per_s, copy_bytes_per_s;
};

/* A limit < 0 means "not set". */
struct bench_targets {
	double share_error_max, window_share_error_max;
	double jain_mean_min, jain_min_min;
	double lag_max_ms, group_spread_max, overhead_max;
	double wait_p99_max_us;      /* for interactive tenants */
	double group_wait_p99_max_us; /* for tenants in a group */
	double frames_missed_max;
	/* budget holders: in-budget p99 wait over S + 0.1 ms, and longest
	 * in-budget wait over 2 S + L (sched_budget_wait_*); 1 = at the bound */
	double budget_wait_p99_ratio_max, budget_wait_max_ratio_max;
};

struct bench_scenario {
	char name[64];
	char description[256];
	uint64_t duration_ns;
	uint64_t seed;
	enum sched_policy policy;
	uint64_t slice_ns;           /* 0: the scheduler's default */
	enum sched_policy baselines[BENCH_MAX_BASELINES];
	unsigned int nbaselines;
	struct bench_gpu_spec *gpus;
	unsigned int ngpus;
	struct bench_tenant_spec *tenants;
	unsigned int ntenants;
	struct bench_targets targets;
	char *path;                  /* the file it came from; NULL: parsed text */
	char *command;               /* the reports' reproduce line (bench_command) */
};

/* Parse a scenario; on error returns -errno with a one-line reason in err
 * (a key the schema does not know is an error naming the nearest one it
 * does: docs/bench-scenario.schema.json). */
int bench_scenario_load(const char *path, struct bench_scenario *sc,
			char *err, size_t errlen);
int bench_scenario_parse(const char *json, struct bench_scenario *sc,
			 char *err, size_t errlen);
void bench_scenario_free(struct bench_scenario *sc);

/* Results of one run of the scenario under one policy. */
struct bench_tenant_result {
	double target_share, share, share_error, window_share_error_max;
	double jobs_per_s, engine_ms, overrun_ms, max_lag_ms, debt_us;
	double wait_p50_us, wait_p99_us, wait_max_us;
	/* budget holders (< 0 otherwise): the waits the guarantee covers (the
	 * picks within the budget; every pick under a policy that ignores
	 * budgets), and the bounds of its engine */
	double budget_wait_p99_us, budget_wait_max_us;
	double wait_p99_bound_us, wait_bound_us;
	uint64_t budget_exhausted;   /* periods whose budget ran out */
	uint64_t slices, preemptions, jobs, frames, frames_missed;
	double *window_share;        /* per BENCH_WINDOW_NS window */
};

struct bench_engine_result {
	unsigned int gpu, engine, ntenants;
	double utilisation, switches_per_s;
	uint64_t picks, idle_picks;
	double nonpreempt_max_us;    /* the longest stretch it could not cut */
	uint64_t sched_cpu_ns;       /* host: CPU time in scheduler calls */
	double overhead;             /* host: sched_cpu_ns / simulated time */
};

struct bench_check {
	const char *name;
	double limit, value;
	bool pass, host;             /* host: depends on the machine */
};

#define BENCH_MAX_CHECKS 16

struct bench_run {
	enum sched_policy policy;
	uint64_t slice_ns;
	bool baseline;
	struct bench_tenant_result *tenants;
	struct bench_engine_result *engines;
	unsigned int ntenants, nengines, nwindows;
	double jain_min, jain_mean;  /* < 0: no window had two busy tenants */
	unsigned int jain_windows;
	double share_error_max, window_share_error_max, lag_max_ms;
	double group_spread_max;     /* < 0: no groups */
	double wait_p99_max_us;      /* over interactive tenants; < 0: none */
	double group_wait_p99_max_us; /* over tenants in a group; < 0: none */
	/* over budget holders, each wait over its bound; < 0: none */
	double budget_wait_p99_ratio_max, budget_wait_max_ratio_max;
	uint64_t frames_missed;
	struct bench_check checks[BENCH_MAX_CHECKS];
	unsigned int nchecks;
	bool pass, host_pass;
};

/* The workloads' random numbers (splitmix64): a uniform double in [0, 1)
 * and a duration in ns drawn from d, at least 1. */
double bench_rng_unit(uint64_t *s);
uint64_t bench_draw(const struct bench_dist *d, uint64_t *s);

/* Run sc under policy p (its targets computed for sc's own policy). */
int bench_model_run(const struct bench_scenario *sc, enum sched_policy p,
		    uint64_t seed, struct bench_run *run);
void bench_run_free(struct bench_run *run);
/* The run's overall numbers (maxima, group spread, interactive and group
 * waits, frames missed) from its tenants' results. */
void bench_run_summary(const struct bench_scenario *sc, struct bench_run *run);
/* Evaluate sc's targets against run; sets run->checks and pass flags. */
void bench_check_targets(const struct bench_scenario *sc, struct bench_run *run);

/* Reports.  runs[0] is the scenario's policy, the rest are baselines. */
int bench_write_json(FILE *f, const struct bench_scenario *sc, uint64_t seed,
		     const struct bench_run *runs, unsigned int nruns,
		     double wall_s);
void bench_write_markdown(FILE *f, const struct bench_scenario *sc, uint64_t seed,
			  const struct bench_run *runs, unsigned int nruns);
/* One run as it appears in the JSON report's "runs". */
struct json_object;
struct json_object *bench_run_json(const struct bench_scenario *sc,
				   const struct bench_run *run);
/* A number for the JSON reports: six significant digits (enough to
 * compare, stable to print); a negative value means "not measured" and
 * becomes null (NULL). */
struct json_object *bench_json_num(double v);
/* Jain's fairness index of x[0..n-1] (1 when all are equal; 1 for all
 * zero, which the callers that care skip). */
double bench_jain(const double *x, unsigned int n);
/* Whether out is a name --plot can write (.svg or .png, no quote): 0, or
 * -EINVAL with the reason in err.  Checked before a run starts. */
int bench_plot_check(const char *out, char *err, size_t errlen);
/* Draws runs[0] (the scenario's policy) and its baselines side by side
 * with gnuplot: each tenant's share per window, the target shares as
 * dashed lines, interactive tenants' missed frames; source says where the
 * numbers come from ("model", "VMs"). */
int bench_write_plot(const char *out, const struct bench_scenario *sc,
		     const struct bench_run *runs, unsigned int nruns, const char *source,
		     char *err, size_t errlen);

/* What `gpup bench` was asked for. */
struct bench_opts {
	const char *scenario, *json, *report, *plot, *guest;
	bool model, live, have_seed, no_baselines;
	uint64_t seed;
	double duration_s;
};

/* The command that repeats a run, for the reports: sc->path (quoted for a
 * shell where needed), the mode, the seed, the duration when given or
 * when the mode caps it (secs > 0), --no-baselines.  Sets sc->command;
 * 0 or -ENOMEM. */
int bench_command(struct bench_scenario *sc, const struct bench_opts *o, uint64_t seed,
		  double secs);
/* sc->command, or a placeholder before bench_command ran. */
const char *bench_command_line(const struct bench_scenario *sc);

/* Exit statuses of `gpup bench` beyond gpup/base/base.h's 0, 1 (the run
 * failed: no daemon, a VM or partition failed, a report could not be
 * written) and 2 (bad command line or scenario, a host or scenario the
 * mode cannot run): */
#define BENCH_EXIT_TARGET 3          /* the run completed; a target failed */
/* and 128 + N when signal N stopped a live or vm run (after cleaning up). */

/* The signal that stopped a live or vm run early, or 0. */
int bench_stop_signal(void);

/* The modes.  Each runs sc under its policy, then its baselines unless
 * o->no_baselines, writes the reports o names, and prints each error as
 * one "gpup bench: ..." line.
 *
 * bench_model_mode: in simulated time, its targets checked.  0, -EDOM
 * when a target of the scenario's own policy failed, or -errno.
 * bench_live_mode: threads driving partitions of the daemon at run_dir.
 * 0 or -errno.
 * bench_vm_mode: one VM per tenant, on the daemon at run_dir or on one it
 * starts; ask bench_vm_usable first.  0 or -errno.
 * Live and vm mode put the daemon's scheduler settings back as they found
 * them and catch SIGINT, SIGTERM and SIGHUP to do so: -EINTR when one
 * stopped the run (bench_stop_signal says which). */
int bench_model_mode(const struct bench_opts *o, struct bench_scenario *sc);
int bench_live_mode(const char *run_dir, const struct bench_opts *o,
		    struct bench_scenario *sc);
int bench_vm_mode(const char *run_dir, const struct bench_opts *o, struct bench_scenario *sc);
/* Can vm mode run sc on this host?  0; -ENODEV when /dev/kvm cannot be
 * used, -ENOTSUP for a scenario vm mode cannot run; the reason in err. */
int bench_vm_usable(const struct bench_scenario *sc, char *err, size_t errlen);

#endif
