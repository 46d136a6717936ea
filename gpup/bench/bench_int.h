/* SPDX-License-Identifier: MIT */
/*
 * Private to the bench room (gpup/bench/): the simulated engine and tenant
 * state shared by the model (bench_model.c) and the metrics computed from
 * it (bench_metrics.c); the daemon calls of live and vm mode (bench_ctl.c);
 * live mode (bench_live.c, bench_live_report.c); and vm mode (bench_vm.c,
 * bench_vm_stats.c, bench_vm_report.c).
 */
#ifndef GPUP_BENCH_INT_H
#define GPUP_BENCH_INT_H

#include <json-c/json.h>
#include <limits.h>
#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>

#include "gpup/bench/bench.h"
#include "gpup/drv/drv.h"

#define SIM_QLEN 64   /* jobs a tenant may have queued; frames beyond drop */

struct sim_job {
	uint64_t len, done, submit, deadline;   /* deadline 0: none */
};

struct sim_tenant {
	const struct bench_tenant_spec *spec;
	struct sched_ctx *ctx;
	uint64_t rng;
	struct sim_job q[SIM_QLEN];
	unsigned int qhead, nq;
	uint64_t next_ev, period;
	bool on, active;              /* bursty phase; has work */
	double w, cap;                /* fairness reference (scenario policy) */
	uint64_t recv, submitted, jobs, frames, frames_missed;
	double fair, max_lag;         /* fluid (GPS) service; worst lag */
	double gps_backlog;           /* work queued in the fluid reference */
	double rate;                  /* its fluid rate right now */
	uint64_t *win_recv, *win_idle;
	double *win_fair;             /* fluid service per window */
};

struct sim_engine {
	struct sched_engine *e;
	struct sim_tenant **t;
	unsigned int n, nwin;
	uint64_t now, duration, switch_ns;
	struct sim_tenant *last;
	uint64_t sched_ns, sched_calls;
	uint64_t switch_total;        /* engine time spent switching contexts */
	uint64_t *win_switch;         /* the same, per window */
};

/* Runs one engine's tenants (already set up, w and cap filled) to the end
 * of the scenario under policy p.  0 or -errno. */
int bench_sim_engine(const struct bench_scenario *sc, enum sched_policy p,
		     struct sim_engine *se);

/*
 * bench_term.c: a stop signal ends live and vm runs early (each run's
 * waits poll bench_stop_signal(), public in bench.h); a progress line on
 * a terminal, nothing elsewhere.
 */
void bench_signals_catch(void);
bool bench_progress_on(void);
/* "LABEL 1.5/5.0 s | a 12.5%, b 12.5%, ...": work[i] is what tenant i has
 * had so far, in any unit. */
void bench_progress(const struct bench_scenario *sc, const char *label, double elapsed,
		    double total, const double *work);
/* "LABEL: WHAT" on the line, for the steps before the measuring. */
void bench_progress_note(const char *label, const char *what);
/* Clear the line before the reports or an error are printed. */
void bench_progress_end(void);

/*
 * What `gpup bench` asks of a running daemon over its control API
 * (bench_ctl.c), shared by live mode (bench_live.c) and vm mode
 * (bench_vm.c): partitions made and destroyed, the GPU's policy and each
 * tenant's settings.  Each call is 0 or -errno with a one-line reason in
 * err.
 */

/* One call; req is consumed; *reply (if wanted) is the daemon's answer. */
int bench_ctl(const char *run_dir, json_object *req, json_object **reply, char *err,
	      size_t errlen);
/* The smallest partition type of gpu with room for n of them. */
int bench_ctl_pick_type(const char *run_dir, const char *gpu, unsigned int n, char *type,
			size_t len, char *err, size_t errlen);
/* Create a partition; its UUID and socket path come back. */
int bench_ctl_create(const char *run_dir, const char *gpu, const char *type, char uuid[40],
		     char sock[108], char *err, size_t errlen);
void bench_ctl_destroy(const char *run_dir, const char *uuid);
/* Every engine of gpu under policy p with slice_ns (0: the default),
 * transient: applied, not saved in the daemon's state directory. */
int bench_ctl_policy(const char *run_dir, const char *gpu, enum sched_policy p,
		     uint64_t slice_ns, char *err, size_t errlen);
/* A GPU's scheduler settings as set (slice 0: the default that follows
 * the number of contexts), read before a run and put back after it. */
struct bench_gpu_sched {
	char gpu[32];
	bool have;                     /* false: nothing to put back */
	enum sched_policy policy;
	uint64_t slice_ns, watchdog_ns;
};
int bench_ctl_gpu_get(const char *run_dir, const char *gpu, struct bench_gpu_sched *s,
		      char *err, size_t errlen);
/* Put s back (transient, as bench set it); 0 when s->have is false. */
int bench_ctl_gpu_put(const char *run_dir, const struct bench_gpu_sched *s, char *err,
		      size_t errlen);
/* A partition's weight, reserve, cap, class, fps limit and budget from its
 * tenant. */
int bench_ctl_tenant(const char *run_dir, const char *uuid, const struct bench_tenant_spec *s,
		     char *err, size_t errlen);
/* The weight a tenant is owed under the scenario's own policy (caps are not
 * modelled): what live and vm mode judge saturating tenants' shares by. */
double bench_policy_weight(const struct bench_scenario *sc, unsigned int i);

/*
 * Live mode of `gpup bench` (bench_live.c runs it, bench_live_report.c
 * measures and reports): a scenario's tenants as partitions of a running
 * daemon's sim GPU, each driven over vfio-user by a thread of its own.
 */

struct bench_live;

struct bench_live_client {
	struct bench_live *l;
	const struct bench_tenant_spec *spec;
	char uuid[40], sock[108];
	struct vfu_client *c;
	struct gpup_vg g;
	bool open, on;
	pthread_t th;
	uint64_t rng;
	int rc;
	/* what it got back in the last run */
	uint64_t work_ns, jobs, frames, frames_missed, last_done;
	uint64_t seen_ns;              /* work_ns for the progress line (atomic) */
	uint64_t *win;                 /* engine ns completed per window */
	uint64_t *lat;                 /* submission to fence, ns */
	unsigned int nlat, lat_cap;
};

struct bench_live {
	const char *run_dir;
	const struct bench_scenario *sc;
	struct bench_live_client *t;
	unsigned int n, nwin;
	uint64_t duration_ns, start, end;
	struct bench_gpu_sched orig;   /* put back by bench_live_close */
	char label[64];                /* of the run, for the progress line */
};

struct bench_live_tenant {
	double share;                  /* of the engine time delivered */
	double target, share_error;    /* saturating tenants; else < 0 */
	double jobs_per_s, lat_p50_ms, lat_p99_ms, lat_max_ms;  /* < 0: none */
	uint64_t work_ns, jobs, frames, frames_missed;
};

struct bench_live_result {
	enum sched_policy policy;
	struct bench_live_tenant *t;
	unsigned int n;
	double delivered;              /* engine time delivered / wall time */
	double share_error_max, jain_min, jain_mean;   /* < 0: not measured */
	unsigned int jain_windows;
	uint64_t frames_missed;
};

/* Create and connect one partition per tenant on the scenario's first GPU.
 * 0 or -errno with a one-line reason in err (nothing left behind). */
int bench_live_open(struct bench_live *l, const char *run_dir,
		    const struct bench_scenario *sc, uint64_t duration_ns, char *err,
		    size_t errlen);
/* Run once under policy p (and each tenant's own settings) and measure. */
int bench_live_run(struct bench_live *l, enum sched_policy p, uint64_t seed,
		   struct bench_live_result *res, char *err, size_t errlen);
/* Disconnect and destroy the partitions; put the GPU's scheduler
 * settings back as they were before bench_live_open (a line on stderr
 * when that fails). */
void bench_live_close(struct bench_live *l);

int bench_live_measure(const struct bench_live *l, enum sched_policy p,
		       struct bench_live_result *res);
void bench_live_result_free(struct bench_live_result *res);
void bench_live_markdown(FILE *f, const struct bench_scenario *sc,
			 const struct bench_live_result *r, unsigned int n, double seconds);
int bench_live_json(FILE *f, const struct bench_scenario *sc,
		    const struct bench_live_result *r, unsigned int n, double seconds);

/*
 * vm mode of `gpup bench` (the default without --model): the scenario's
 * tenants as VMs booted with `gpup run`, each running the tenant guest
 * (samples/tenant.c) on a partition of its own, on a daemon that bench
 * starts (or one already answering at --run-dir).  bench_vm.c runs it,
 * bench_vm_stats.c turns the daemon's accounting and the guests' result
 * lines into a struct bench_run, bench_vm_report.c writes the reports with
 * the model's numbers beside.
 */

#define BENCH_VM_MAX_TENANTS 16

/* What the daemon's `stats` said about one context or its engine. */
struct bench_vm_ctx_stats {
	bool found;
	uint64_t engine_ns, slices, preemptions, overrun_ns;
	uint64_t wait_p50_ns, wait_p99_ns, wait_max_ns;
	int64_t debt_ns;
	uint64_t budget_waits, budget_wait_p99_ns, budget_wait_max_ns, budget_exhausted;
};

struct bench_vm_snap {
	uint64_t at;                   /* CLOCK_MONOTONIC ns */
	bool tslice;                   /* the time-slice scheduler runs the engine */
	enum sched_policy policy;
	uint64_t slice_ns, busy_ns, picks, idle_picks, switches, nonpreempt_max_ns;
	uint64_t thread_ns;            /* the executor thread's CPU time; 0: unknown */
	struct bench_vm_ctx_stats ctx[BENCH_VM_MAX_TENANTS];
};

/* The tenant guest's result line. */
struct bench_vm_guest {
	uint64_t jobs, frames, missed, engine_ns, lat_n;
	uint64_t lat_p50_ns, lat_p99_ns, lat_max_ns, run_ns;
};

struct bench_vm_tenant {
	const struct bench_tenant_spec *spec;
	char uuid[40], sock[108], serial[PATH_MAX];
	pid_t pid;
	uint64_t started;              /* when its "tenant: start" line was seen */
	struct bench_vm_guest res;
};

struct bench_vm {
	const struct bench_scenario *sc;
	char run_dir[PATH_MAX], dir[PATH_MAX], guest[PATH_MAX], exe[PATH_MAX];
	char type[64];
	pid_t daemon;                  /* ours; 0 when it was already running */
	pid_t daemon_pid;              /* whichever serves us, for its threads */
	pid_t engine_tid;              /* its compute engine's executor; 0: not found */
	struct bench_gpu_sched orig;   /* a running daemon's, put back at the end */
	char label[64];                /* of the run, for the progress line */
	struct bench_vm_tenant *t;
	unsigned int n;
	uint64_t duration_ns;
	/* the last run's measurements */
	struct bench_vm_snap first, last;
	uint64_t (*win)[BENCH_VM_MAX_TENANTS];   /* engine ns per window */
	unsigned int nwin, max_win;
	/* every run's guest results, in the order of the runs */
	struct bench_vm_guest results[1 + BENCH_MAX_BASELINES][BENCH_VM_MAX_TENANTS];
	double measured_s[1 + BENCH_MAX_BASELINES];   /* the sampled span */
	unsigned int runs;
};

/* Set up: the daemon (started unless one answers at run_dir), a working
 * directory, one partition per tenant.  0 or -errno with a reason in err,
 * among them bench_vm_usable's. */
int bench_vm_open(struct bench_vm *v, const char *run_dir, const char *guest,
		  const struct bench_scenario *sc, uint64_t duration_ns, char *err,
		  size_t errlen);
/* Boot the tenants' VMs under policy p, measure, and fill run. */
int bench_vm_run(struct bench_vm *v, enum sched_policy p, uint64_t seed,
		 struct bench_run *run, char *err, size_t errlen);
/* Destroy the partitions, stop our daemon, remove the working directory. */
void bench_vm_close(struct bench_vm *v);

/* bench_vm_stats.c */
int bench_vm_snapshot(struct bench_vm *v, struct bench_vm_snap *s, char *err,
		      size_t errlen);
int bench_vm_guest_result(const char *serial, struct bench_vm_guest *g, char *err,
			  size_t errlen);
int bench_vm_measure(const struct bench_vm *v, enum sched_policy p, struct bench_run *run);

/* bench_vm_report.c: vm runs beside the model's runs of the same policies. */
int bench_vm_write_json(FILE *f, const struct bench_vm *v, uint64_t seed,
			const struct bench_run *vm, const struct bench_run *model,
			unsigned int nruns, double wall_s);
void bench_vm_write_markdown(FILE *f, const struct bench_vm *v, uint64_t seed,
			     const struct bench_run *vm, const struct bench_run *model,
			     unsigned int nruns);

#endif
