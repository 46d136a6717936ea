/* SPDX-License-Identifier: MIT */
/*
 * The time-slice scheduler (scheduler/sched.h) as an engine executor's
 * scheduler plug-in (struct gpup_sched_ops in gpup/engine.h), and the
 * run-time controls the daemon uses on a running engine: change the policy
 * and slice, set a partition's weight, cap and class, read its accounting.
 * All calls take the engine lock through gpup_engine_sched_call.
 */
#ifndef GPUP_TSCHED_H
#define GPUP_TSCHED_H

#include <json-c/json.h>

#include "gpup/gpu/engine.h"
#include "gpup/pool/pool.h"
#include "scheduler/sched.h"

/* create's arg is a struct sched_engine_cfg (NULL: weighted, default
 * slice, no watchdog).  A new context's weight is its gpup_ectx weight. */
extern const struct gpup_sched_ops gpup_sched_tslice;

/* Longest slice handed to the executor under fifo, whose jobs run to
 * their end: the executor's deadline is this far in engine time. */
#define GPUP_TSCHED_JOB_NS (3600ull * 1000000000ull)

/* Put e under the time-slice scheduler with policy p and slice (0:
 * default), or change both if it already is.  0 or -errno. */
int gpup_tsched_set_policy(struct gpup_engine *e, enum sched_policy p,
			   uint64_t slice_ns);
/* The watchdog timeout of e's time-slice scheduler (0: off).  -EINVAL if
 * e is not under it. */
int gpup_tsched_set_watchdog(struct gpup_engine *e, uint64_t timeout_ns);
/* Weight, reserve, cap, class and fps limit of one attached context.
 * -EINVAL if e is not under the time-slice scheduler or cfg is bad. */
int gpup_tsched_set_ctx(struct gpup_engine *e, struct gpup_ectx *c,
			const struct sched_ctx_cfg *cfg);
int gpup_tsched_ctx_stats(struct gpup_engine *e, struct gpup_ectx *c,
			  struct sched_ctx_stats *st);
int gpup_tsched_engine_stats(struct gpup_engine *e, struct sched_engine_stats *st);

/* The control-API methods "sched" and "stats" (gpup/tsched_ctl.c), for
 * the daemon's method table: one reply object, never NULL. */
json_object *gpup_tsched_ctl_sched(struct gpup_pool *pool, json_object *req);
json_object *gpup_tsched_ctl_stats(struct gpup_pool *pool, json_object *req);
/* "sched" for one partition (request has "uuid"): its settings, saved in
 * its state file, then handed to its vgpu. */
struct vgpu;
json_object *gpup_tsched_ctl_part(struct gpup_pool *pool, struct gpup_partition *part,
				  struct vgpu *v, json_object *req);

#endif
