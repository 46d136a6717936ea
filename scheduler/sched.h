/* SPDX-License-Identifier: MIT */
/*
 * The engine time-slice scheduler: which context runs on a GPU engine next,
 * for how long, and what every context received.  Pure logic: the caller
 * passes the time in, nothing here sleeps, locks, or knows what a command
 * is.  The same code drives the sim GPU's engine executors and the
 * discrete-event model behind `gpup bench --model`.
 *
 * DOC: model
 *
 * An engine (struct sched_engine) holds contexts (struct sched_ctx), one
 * per partition that has a queue bound to the engine.  A context is idle
 * (no work), runnable (queued or running), or stalled (it has work that
 * cannot advance, such as a WAIT on a value nobody writes).  The executor
 * drives the engine with four calls:
 *
 *   sched_wake(ctx, now)     work arrived for an idle context
 *   sched_pick(e, now, &s)   whom to run now, and for at most s ns
 *   sched_account(ctx, ran, now, flags)
 *                            what the picked context actually ran; if the
 *                            context still has work it is queued again
 *   sched_block(ctx, now)    the context ran out of work
 *
 * The executor preempts at the end of the slice at the next point it can
 * (a command boundary, a work-group boundary); when it cannot (a
 * non-preemptible copy chunk) the context runs over, and the overrun is
 * charged to it in full so that it is repaid before the context runs again.
 *
 * Policies (per engine, switchable at run time with contexts present):
 *
 *   fifo         baseline: contexts run in the order they became ready,
 *                each runs its current job to completion (slice is
 *                SCHED_SLICE_JOB), like a plain DRM scheduler queue.
 *   best-effort  work-conserving round robin with fixed slices; overruns
 *                are not repaid.
 *   weighted     work-conserving, shares proportional to weights.  Every
 *                context has a virtual time that advances by ran / weight;
 *                the lowest virtual time runs.  A context returning from
 *                idle is placed within one slice of the engine's virtual
 *                time: at most one slice of credit (idle time is not
 *                banked) and at most one slice of debt, unless the debt is
 *                the unrepaid overrun of its own last slice (forgiving that
 *                would let a tenant shed it by blocking briefly).
 *   equal-share  weighted with equal weights and a cap of 1/N of the engine
 *                for each of the N contexts present: time an idle context
 *                leaves is not given away, the engine idles.
 *   fixed-share  weighted by each context's reserved fraction and capped at
 *                it, so a partition gets its profile's fraction whether or
 *                not others are busy; an elastic cap above the reserve lets
 *                it borrow idle time up to the cap.
 *
 * Caps are token buckets: a capped context earns cap x elapsed time of
 * budget, up to two slices, spends what it runs (a slice may overdraw it),
 * and waits (throttled) while its budget is not positive.  When every
 * runnable context is
 * throttled sched_pick returns NULL with the time until the next one may
 * run.
 *
 * The interactive class (weighted, equal-share, fixed-share) is for VDI:
 * an interactive context is picked ahead of normal ones while it has run
 * at most three slices beyond its fair share (a wake may carry one slice
 * of credit, and a two-slice frame plus the sliver of a third its fence
 * needs should still finish first), and sched_wake
 * asks the executor to preempt a running normal context at once, so its
 * dispatch wait is bounded by the executor's preemption granularity.  An
 * executor that learns of wakes only while a context runs asks
 * sched_should_preempt at its boundaries instead (same rule).  It
 * cannot starve others: past its share plus three slices it queues in
 * virtual-time order like anyone else.  An
 * optional frame-rate limit holds a wake from idle (the next frame) until
 * 1/fps after the previous one was released.
 *
 * DOC: budgets (latency guarantees)
 *
 * An interactive context with a frame-rate limit may also hold a budget:
 * engine time per frame period (1/fps), a constant-bandwidth server in the
 * manner of SCHED_DEADLINE.  Under the fair policies, while it has budget
 * left in its period it is served from a tier of its own, ahead of every
 * other context: the holders in that tier take turns in arrival order,
 * each pick granting at most the tier's quantum (the slice divided by the
 * number of holders on the engine, at least SCHED_RSV_QUANTUM_MIN_NS), and
 * a holder that becomes ready preempts any context not picked from the
 * tier at its next boundary.  So a holder within its budget waits at most
 * for the running context to reach a boundary (at most the longest
 * non-preemptible stretch the engine has seen) plus one turn of each other
 * holder: about one slice in all.  The budget is spent by what it runs and
 * renewed when its period ends; once it is spent the holder queues as a
 * normal context by its weight (its virtual time counts everything it
 * ran), so demand above the budget takes nothing from anyone's share.
 * sched_admit says whether a set of budgets fits an engine.  fifo and
 * best-effort ignore budgets.
 *
 * Accounting per context: engine time, slices, preemptions, overrun, a
 * dispatch-wait histogram (from becoming eligible to being picked), and
 * debt (how far ahead of its fair share it ran, in ns of its own time).
 * The watchdog reports contexts that have work but made no progress
 * (sched_progress) for the engine's watchdog timeout, counting the engine
 * time they were given and the time they were stalled, not time spent
 * queued behind others: a context the policy starves is not stuck.
 *
 * Thread safety: none; the executor serialises calls per engine.
 * Errors are negative errno values, or NULL with errno set.
 */
#ifndef SCHED_SCHED_H
#define SCHED_SCHED_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct sched_engine;
struct sched_ctx;

enum sched_policy {
	SCHED_POLICY_FIFO = 0,
	SCHED_POLICY_BEST_EFFORT,
	SCHED_POLICY_EQUAL_SHARE,
	SCHED_POLICY_FIXED_SHARE,
	SCHED_POLICY_WEIGHTED,
	SCHED_POLICY_COUNT,
};

enum sched_class {
	SCHED_CLASS_NORMAL = 0,
	SCHED_CLASS_INTERACTIVE,
};

#define SCHED_NS_PER_MS 1000000ull
#define SCHED_SLICE_MIN_NS 100000ull          /* 0.1 ms */
#define SCHED_SLICE_MAX_NS 30000000ull        /* 30 ms */
/* Slice returned by sched_pick under fifo: run the current job to its end. */
#define SCHED_SLICE_JOB UINT64_MAX
/* "Never" for wait hints. */
#define SCHED_NEVER UINT64_MAX
#define SCHED_WEIGHT_MAX 1000000u
#define SCHED_PPM 1000000u
/* Budgets: the smallest turn a holder gets, the most a budget may be, and
 * the part of an engine a set of budgets may take (with its blocking). */
#define SCHED_RSV_QUANTUM_MIN_NS 100000ull    /* 0.1 ms */
#define SCHED_BUDGET_MAX_US 1000000u
#define SCHED_RSV_UTIL_MAX_PPM 900000u        /* 90% */

struct sched_engine_cfg {
	enum sched_policy policy;
	uint64_t slice_ns;       /* 0: 2 ms up to 8 contexts, 1 ms above */
	uint64_t watchdog_ns;    /* no progress for this long is reported; 0 = off */
};

struct sched_ctx_cfg {
	uint32_t weight;         /* weighted: 1..SCHED_WEIGHT_MAX; 0 means 1 */
	uint32_t reserve_ppm;    /* fixed-share: reserved fraction, ppm; 0 = 1/N */
	uint32_t cap_ppm;        /* fixed-share: elastic cap (>= reserve);
				  * others: hard cap; 0 = none */
	enum sched_class klass;
	uint32_t fps_limit;      /* interactive: frames (wakes) per second; 0 = none */
	uint32_t budget_us;      /* interactive with fps_limit: engine time
				  * reserved per frame period, us (at most the
				  * period); 0 = no budget */
	void *priv;              /* the executor's own pointer, returned by sched_ctx_priv */
};

struct sched_ctx_stats {
	uint64_t engine_ns;      /* time charged to the context */
	uint64_t slices;         /* times it was picked */
	uint64_t preemptions;    /* slices that ended with work left */
	uint64_t overrun_ns;     /* time run past the granted slice */
	uint64_t waits;          /* dispatch waits recorded */
	uint64_t wait_p50_ns, wait_p99_ns, wait_max_ns, wait_sum_ns;
	int64_t debt_ns;         /* > 0: ahead of its fair share; < 0: behind */
	uint64_t watchdog_fired; /* times the watchdog reported it */
	/* budget holders: dispatch waits of the picks made within the budget
	 * (the guaranteed ones), and periods whose budget ran out with work
	 * left */
	uint64_t budget_waits, budget_wait_p50_ns, budget_wait_p99_ns;
	uint64_t budget_wait_max_ns, budget_exhausted;
	bool runnable, running, throttled, stalled;
	struct sched_ctx_cfg cfg; /* its settings, as last added or updated */
};

struct sched_engine_stats {
	enum sched_policy policy;
	uint64_t slice_ns;       /* the slice in force now */
	uint64_t watchdog_ns;    /* 0: off */
	unsigned int nctx;
	uint64_t picks;          /* picks that returned a context */
	uint64_t idle_picks;     /* picks that found nothing eligible */
	uint64_t switches;       /* picks of a different context than the last */
	unsigned int budgets;    /* contexts holding a budget (fair policies) */
	uint64_t budget_quantum_ns; /* the most a budget pick is granted */
	uint64_t nonpreempt_max_ns; /* the longest stretch the engine could not
				     * be preempted: past a granted slice, or
				     * while a budget holder waited */
};

/* Engine lifetime.  NULL and errno EINVAL on a bad policy or slice. */
struct sched_engine *sched_engine_create(const struct sched_engine_cfg *cfg);
/* Frees the engine and every context still on it. */
void sched_engine_destroy(struct sched_engine *e);

/* Change policy and slice (0: default) with contexts present; virtual
 * times and budgets start afresh, the running context finishes its slice
 * and is requeued under the new policy.  0 or -EINVAL. */
int sched_set_policy(struct sched_engine *e, enum sched_policy p,
		     uint64_t slice_ns, uint64_t now);
uint64_t sched_slice(const struct sched_engine *e);
/* The watchdog timeout in force from now on; 0 turns it off. */
void sched_set_watchdog(struct sched_engine *e, uint64_t timeout_ns);
/* The default slice for n contexts (2 ms up to 8, 1 ms above). */
uint64_t sched_default_slice(unsigned int n);

/* 0 if cfg is acceptable to sched_ctx_add/update, else -EINVAL. */
int sched_ctx_cfg_check(const struct sched_ctx_cfg *cfg);

/* Contexts.  A new context is idle.  -EINVAL on a bad cfg, -ENOMEM. */
int sched_ctx_add(struct sched_engine *e, const struct sched_ctx_cfg *cfg,
		  uint64_t now, struct sched_ctx **out);
/* Change weight, reserve, cap, class or fps at run time.  0 or -EINVAL. */
int sched_ctx_update(struct sched_ctx *c, const struct sched_ctx_cfg *cfg,
		     uint64_t now);
/* -EBUSY while the context is running (account it first). */
int sched_ctx_remove(struct sched_ctx *c);
void *sched_ctx_priv(const struct sched_ctx *c);

/* Work arrived.  Returns 1 when the running context should be preempted
 * as soon as possible (an interactive context became eligible), else 0. */
int sched_wake(struct sched_ctx *c, uint64_t now);
/* Asked by the executor at its preemption points while a context runs:
 * true when the running context should yield now, which is, under
 * weighted, equal-share or fixed-share, when a budget holder within its
 * budget is queued and the running context was not picked within its own
 * budget, or when the running context is of the normal class and an
 * interactive context is queued and within its priority (at most three
 * slices ahead of its fair share; a frame whose fps hold ended by now
 * counts).  The executor then ends the slice at that boundary and
 * accounts it as preempted.  Never true under fifo or best-effort, or with
 * nothing running. */
bool sched_should_preempt(struct sched_engine *e, uint64_t now);
/* No more work: leaves the run queue (or is not requeued at account). */
void sched_block(struct sched_ctx *c, uint64_t now);
/* Has work but cannot advance: off the run queue, still watched. */
void sched_stall(struct sched_ctx *c, uint64_t now);
/* A command completed: resets the context's watchdog timer. */
void sched_progress(struct sched_ctx *c, uint64_t now);

/* Whom to run now.  On success *slice_ns is the granted slice (or
 * SCHED_SLICE_JOB).  NULL when nothing may run: *slice_ns is then the time
 * until a throttled context becomes eligible, or SCHED_NEVER; also NULL
 * (with *slice_ns 0) while a picked context has not been accounted. */
struct sched_ctx *sched_pick(struct sched_engine *e, uint64_t now,
			     uint64_t *slice_ns);

#define SCHED_ACCT_PREEMPTED 1u  /* the slice ended with work left */
/* The picked context ran ran_ns; it is requeued unless it was blocked.
 * -EINVAL if c is not the running context. */
int sched_account(struct sched_ctx *c, uint64_t ran_ns, uint64_t now,
		  unsigned int flags);

/* Contexts with work that ran or stalled for the watchdog timeout without
 * progress, each reported once until it progresses or blocks.  Up to max
 * are stored in out; returns how many were stored. */
unsigned int sched_watchdog_check(struct sched_engine *e, uint64_t now,
				  struct sched_ctx **out, unsigned int max);

/* The contexts of an engine, for listings: index 0 .. nctx - 1 (the order
 * changes when one is removed); NULL past the end. */
struct sched_ctx *sched_ctx_at(const struct sched_engine *e, unsigned int i);

void sched_ctx_stats(const struct sched_ctx *c, struct sched_ctx_stats *st);
void sched_engine_stats(const struct sched_engine *e,
			struct sched_engine_stats *st);

/*
 * Admission of budgets on one engine.  A set of n budgets (budget_ns per
 * period_ns each) fits an engine with slice S that has seen non-preemptible
 * stretches of up to L when
 *   (1) n x SCHED_RSV_QUANTUM_MIN_NS <= S: every holder gets a turn of at
 *       least 0.1 ms within one slice's round of the tier, and
 *   (2) sum(budget / period) + L / (shortest period) <= 90%: the frames,
 *       and one blocking by a non-preemptible job per shortest period, fit
 *       in nine tenths of the engine, which leaves the rest to switching
 *       and to everyone else.
 * Then each holder's dispatch wait within its budget is at most
 * sched_budget_wait_bound (2 S + L), and p99 is expected within
 * sched_budget_wait_p99 (S + 0.1 ms).
 */
struct sched_budget {
	uint64_t budget_ns, period_ns;
};

enum sched_admit_verdict {
	SCHED_ADMIT_OK = 0,
	SCHED_ADMIT_TOO_MANY,    /* rule (1) */
	SCHED_ADMIT_OVERLOAD,    /* rule (2) */
	SCHED_ADMIT_BAD,         /* a budget of 0, or above its period */
};

struct sched_admit {
	enum sched_admit_verdict verdict;
	unsigned int n;
	uint64_t slice_ns, nonpreempt_ns, quantum_ns, period_min_ns;
	uint32_t budget_ppm;     /* sum(budget / period) */
	uint32_t block_ppm;      /* L / shortest period */
};

/* 0 when the set fits, else -ENOSPC (or -EINVAL for a bad budget); out
 * says why, with the numbers. */
int sched_admit(const struct sched_budget *b, unsigned int n, uint64_t slice_ns,
		uint64_t nonpreempt_ns, struct sched_admit *out);
/* One line (no newline) saying why, with the numbers; snprintf's return. */
int sched_admit_explain(const struct sched_admit *a, char *buf, size_t len);
/* The guarantee: the longest and the p99 dispatch wait of a holder within
 * its budget on an engine with slice S and non-preemptible stretches L. */
uint64_t sched_budget_wait_bound(uint64_t slice_ns, uint64_t nonpreempt_ns);
uint64_t sched_budget_wait_p99(uint64_t slice_ns);

/* "fifo", "best-effort", "equal-share", "fixed-share", "weighted". */
const char *sched_policy_name(enum sched_policy p);
/* 0 or -EINVAL. */
int sched_policy_parse(const char *name, enum sched_policy *out);
const char *sched_class_name(enum sched_class k);
int sched_class_parse(const char *name, enum sched_class *out);

#endif
