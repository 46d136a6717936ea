/* SPDX-License-Identifier: MIT */
/*
 * Private to the benchmark: the simulated engine and tenant state shared by
 * the model (bench_model.c) and the metrics that are computed from it
 * (bench_metrics.c).
 */
#ifndef GPUP_BENCH_INT_H
#define GPUP_BENCH_INT_H

#include "gpup/bench/bench.h"

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

#endif
