/* SPDX-License-Identifier: MIT */
/*
 * vm mode of `gpup bench` (the default without --model): the scenario's
 * tenants as VMs booted with `gpup run`, each running the tenant guest
 * (samples/tenant.c) on a partition of its own, on a daemon that bench
 * starts (or one already answering at --run-dir).  bench_vm.c runs it,
 * bench_vm_stats.c turns the daemon's accounting and the guests' result
 * lines into a struct bench_run, bench_vm_report.c writes the reports with
 * the model's numbers beside.
 */
#ifndef GPUP_BENCH_VM_H
#define GPUP_BENCH_VM_H

#include <limits.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>

#include "gpup/bench/bench.h"

#define BENCH_VM_MAX_TENANTS 16

/* What the daemon's `stats` said about one context or its engine. */
struct bench_vm_ctx_stats {
	bool found;
	uint64_t engine_ns, slices, preemptions, overrun_ns;
	uint64_t wait_p50_ns, wait_p99_ns, wait_max_ns;
	int64_t debt_ns;
};

struct bench_vm_snap {
	uint64_t at;                   /* CLOCK_MONOTONIC ns */
	bool tslice;                   /* the time-slice scheduler runs the engine */
	enum sched_policy policy;
	uint64_t slice_ns, busy_ns, picks, idle_picks, switches;
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
	bool restore;                  /* a daemon's own: put its policy back at the end */
	enum sched_policy orig_policy;
	uint64_t orig_slice_ns;
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
 * directory, one partition per tenant.  0 or -errno with a reason in err;
 * -ENODEV when /dev/kvm cannot be used, -ENOTSUP for a scenario vm mode
 * cannot run. */
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
