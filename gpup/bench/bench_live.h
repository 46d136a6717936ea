/* SPDX-License-Identifier: MIT */
/*
 * Live mode of `gpup bench` (bench_live.c runs it, bench_live_report.c
 * measures and reports): a scenario's tenants as partitions of a running
 * daemon's sim GPU, each driven over vfio-user by a thread of its own.
 */
#ifndef GPUP_BENCH_LIVE_H
#define GPUP_BENCH_LIVE_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "gpup/bench/bench.h"
#include "gpup/drv/drv.h"

struct bench_live;

struct bench_live_client {
	struct bench_live *l;
	const struct bench_tenant_spec *spec;
	char uuid[40], sock[108];
	struct hv_vfu *c;
	struct gpup_vfu_guest g;
	bool open, on;
	pthread_t th;
	uint64_t rng;
	int rc;
	/* what it got back in the last run */
	uint64_t work_ns, jobs, frames, frames_missed, last_done;
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
/* Disconnect and destroy the partitions. */
void bench_live_close(struct bench_live *l);

int bench_live_measure(const struct bench_live *l, enum sched_policy p,
		       struct bench_live_result *res);
void bench_live_result_free(struct bench_live_result *res);
void bench_live_markdown(FILE *f, const struct bench_scenario *sc,
			 const struct bench_live_result *r, unsigned int n, double seconds);
int bench_live_json(FILE *f, const struct bench_scenario *sc,
		    const struct bench_live_result *r, unsigned int n, double seconds);

#endif
