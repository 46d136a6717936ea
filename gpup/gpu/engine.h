/* SPDX-License-Identifier: MIT */
/*
 * Engine executors: one thread per engine runs the contexts bound to it
 * (a context is one vGPU queue on this engine) in slices of engine time.
 *
 * DOC: the executor loop
 *
 * The executor sleeps in epoll on the doorbell eventfds of its contexts and
 * a wake eventfd.  A doorbell makes its context runnable; the executor then
 * asks the scheduler for a context and a slice, calls the context's run op
 * with a deadline in engine time (this thread's CPU time, so host noise does
 * not count against a tenant), and reports the CPU time it took back to the
 * scheduler.  The run op stops at the first command or work-group boundary
 * past the deadline and says whether work is left (MORE), none is
 * (IDLE: the context blocks until its next doorbell), or a WAIT command is
 * unsatisfied (WAIT: the context blocks and is re-polled, never spinning
 * the engine: after GPUP_ENGINE_WAIT_POLL_NS, backing off to
 * GPUP_ENGINE_WAIT_POLL_MAX_NS while the wait lasts, and at once when
 * gpup_engine_recheck says something it may wait for was written).
 *
 * DOC: preemption by wake
 *
 * While a context runs, the run op asks gpup_slice_over at every
 * preemption point.  At most every GPUP_ENGINE_PREEMPT_POLL_NS of engine
 * time, that looks for doorbells without sleeping (epoll_wait with no
 * timeout), wakes their contexts in the scheduler and asks its preempt op
 * whether the running context should yield; if so the slice ends at that
 * point with its progress saved, as at its deadline, and counts as a
 * preemption (and a yield).  A doorbell of the running context itself,
 * seen then, keeps it runnable after its run, as a kick does.
 *
 * DOC: the scheduler plug-in
 *
 * Whom to run and for how long is the business of struct gpup_sched_ops,
 * nothing else: the default is round robin with a fixed slice
 * (gpup_sched_rr).  The time-slice scheduler replaces it per engine with
 * gpup_engine_set_sched().  Every op is called with the engine lock held and
 * must not sleep; `now` is CLOCK_MONOTONIC ns.
 */
#ifndef GPUP_ENGINE_H
#define GPUP_ENGINE_H

#include <stdbool.h>
#include <stdint.h>

#include "gpup/gpu/gpu.h"

struct gpup_engine;
struct gpup_ectx;

enum gpup_run_result {
	GPUP_RUN_IDLE = 0, /* nothing left to do: block until a doorbell */
	GPUP_RUN_MORE = 1, /* preempted at the deadline with work left */
	GPUP_RUN_WAIT = 2, /* stalled on a WAIT condition: re-poll later */
};

struct gpup_ectx_ops {
	/* Run until done or until gpup_slice_over(deadline_ns) says the
	 * slice is over (this thread's CPU time passed deadline_ns, or the
	 * scheduler wants the engine now).  Called on the executor thread
	 * only, never twice at once for one context. */
	enum gpup_run_result (*run)(struct gpup_ectx *c, uint64_t deadline_ns);
	/* The scheduler's watchdog found c with work and no progress for its
	 * timeout.  Called on the executor thread, never while c runs; must
	 * not detach c.  Can be NULL. */
	void (*stuck)(struct gpup_ectx *c);
};

/* A context: embedded in its owner (a vgpu queue).  The owner sets the
 * public fields before gpup_engine_attach and keeps the memory until
 * gpup_engine_detach returns. */
struct gpup_ectx {
	const struct gpup_ectx_ops *ops;
	void *opaque;            /* the owner's */
	int doorbell_fd;         /* eventfd; -1 for none (kick only) */
	uint32_t weight;         /* for the scheduler, 0 = default */
	void *sched_priv;        /* the scheduler's per-context data */
	/* Bumped by the run op for every command it completes, so the
	 * scheduler's watchdog can tell a stuck context from a busy one. */
	uint64_t progress;
	/* Counters, updated by the executor; read with gpup_ectx_stats. */
	uint64_t engine_ns, slices, doorbells, preemptions;
	uint64_t yields;         /* preemptions before the deadline, for a wake */
	/* Executor private. */
	struct gpup_engine *engine;
	uint32_t slot, state;
	bool running, kicked, detaching;
	uint64_t retry_at, retry_ns;
};

struct gpup_sched_ops {
	const char *name;
	/* Per-engine scheduler state, configured by arg (the scheduler's
	 * own config type; NULL = defaults).  NULL on failure. */
	void *(*create)(struct gpup_engine *e, const void *arg);
	void (*destroy)(void *s);
	/* A new context, not runnable yet.  0 or -errno. */
	int (*add)(void *s, struct gpup_ectx *c);
	void (*remove)(void *s, struct gpup_ectx *c);
	/* The context has work (a doorbell, a WAIT to re-check). */
	void (*wake)(void *s, struct gpup_ectx *c, uint64_t now);
	/* The context has no work: do not pick it. */
	void (*block)(void *s, struct gpup_ectx *c, uint64_t now);
	/* The context has work that cannot advance (a WAIT): do not pick it,
	 * but it is not idle either.  Can be NULL: block is called. */
	void (*stall)(void *s, struct gpup_ectx *c, uint64_t now);
	/* A runnable context and its slice in ns.  NULL if none may run now;
	 * then *slice_ns is how long until one may (UINT64_MAX: not before
	 * a wake), and the executor sleeps at most that long. */
	struct gpup_ectx *(*pick)(void *s, uint64_t now, uint64_t *slice_ns);
	/* What the picked context used (engine CPU ns) and how its slice
	 * ended (GPUP_RUN_MORE: preempted with work left).  Called before
	 * block or stall for the same slice. */
	void (*account)(void *s, struct gpup_ectx *c, uint64_t ran_ns, uint64_t now,
			enum gpup_run_result res);
	/* Asked at the running context c's preemption points, after the
	 * doorbells rung meanwhile were woken: true ends its slice there.
	 * Can be NULL: slices end at their deadline only. */
	bool (*preempt)(void *s, struct gpup_ectx *c, uint64_t now);
	/* The context completed commands in its last slice.  Can be NULL. */
	void (*progress)(void *s, struct gpup_ectx *c, uint64_t now);
	/* Contexts with work and no progress for the watchdog timeout, each
	 * reported once until it progresses or blocks: up to max into out,
	 * returns how many.  Polled every GPUP_ENGINE_WATCHDOG_PERIOD_NS
	 * while the engine has work.  Can be NULL: no watchdog. */
	unsigned int (*watchdog)(void *s, uint64_t now, struct gpup_ectx **out,
				 unsigned int max);
};

/* Round robin over runnable contexts with a fixed slice, and an optional
 * watchdog.  Its create arg is a struct gpup_rr_cfg (NULL: defaults). */
extern const struct gpup_sched_ops gpup_sched_rr;
#define GPUP_RR_SLICE_NS 2000000ull
struct gpup_rr_cfg {
	uint64_t slice_ns;       /* 0: GPUP_RR_SLICE_NS */
	uint64_t watchdog_ns;    /* 0: no watchdog */
};

#define GPUP_ENGINE_WATCHDOG_PERIOD_NS 10000000ull
/* Engine time between two looks for doorbells while a context runs: a
 * woken interactive context waits about this long (plus a work-group),
 * and each look costs a system call or two. */
#define GPUP_ENGINE_PREEMPT_POLL_NS 100000ull

#define GPUP_ENGINE_WAIT_POLL_NS 100000ull
#define GPUP_ENGINE_WAIT_POLL_MAX_NS 1000000ull

struct gpup_engine *gpup_engine_create(enum gpup_engine_kind kind, unsigned int index,
				       const char *gpu_name);
/* Stops the thread.  Contexts still attached are dropped without being
 * run again; their owners' detach then does nothing. */
void gpup_engine_destroy(struct gpup_engine *e);

/* Swap the scheduler (ops->create(e, arg)); attached contexts are
 * re-added, runnable ones woken.  0 or -errno (the old scheduler stays). */
int gpup_engine_set_sched(struct gpup_engine *e, const struct gpup_sched_ops *ops,
			  const void *arg);
/* Run fn on the engine's scheduler state under the engine lock (policy
 * changes, per-context settings, statistics).  Returns fn's result, or
 * -EINVAL if the engine's scheduler is not ops. */
int gpup_engine_sched_call(struct gpup_engine *e, const struct gpup_sched_ops *ops,
			   int (*fn)(void *sched, void *arg), void *arg);

int gpup_engine_attach(struct gpup_engine *e, struct gpup_ectx *c);
/* Waits until the executor is not running c, then drops it. */
void gpup_engine_detach(struct gpup_ectx *c);
/* Make c runnable without a doorbell (its owner found work for it). */
void gpup_ectx_kick(struct gpup_ectx *c);
/* Re-poll every waiting context of e now: a fence they may wait on was
 * written.  Cheap when none waits. */
void gpup_engine_recheck(struct gpup_engine *e);

struct gpup_ectx_stats {
	uint64_t engine_ns, slices, doorbells, preemptions, yields;
};
void gpup_ectx_stats(struct gpup_ectx *c, struct gpup_ectx_stats *st);

enum gpup_engine_kind gpup_engine_kind(const struct gpup_engine *e);
uint64_t gpup_engine_busy_ns(struct gpup_engine *e);

/* CLOCK_MONOTONIC in ns. */
uint64_t gpup_mono_ns(void);

#endif
