/* SPDX-License-Identifier: MIT */
/*
 * Private to scheduler/: the engine and context structures, the run-queue
 * heap and the dispatch-wait histogram.
 */
#ifndef SCHED_SCHED_INT_H
#define SCHED_SCHED_INT_H

#include <stdbool.h>
#include <stdint.h>

#include "scheduler/sched.h"

/* Virtual time advances by ran * SCHED_VT_SCALE / weight. */
#define SCHED_VT_SCALE (1u << 20)
/* The most one account may charge (about 13 days): keeps budgets and
 * virtual times far from overflow whatever an executor reports. */
#define SCHED_RAN_MAX_NS (1ull << 50)
/* How far ahead of its share (in slices) an interactive context keeps its
 * priority. */
#define SCHED_IA_AHEAD 3

/*
 * A binary min-heap of (key, seq) with the context alongside, so that
 * ordering never dereferences a context: a pick among 1024 contexts touches
 * one small array.  Keys compare as signed differences, so virtual times
 * may wrap.  seq breaks ties in arrival order, which makes equal keys round
 * robin and keeps every run deterministic.
 */
struct sched_heap_ent {
	uint64_t key;
	uint64_t seq;
	struct sched_ctx *c;
};

struct sched_heap {
	struct sched_heap_ent *v;
	unsigned int n, cap;
};

int sched_heap_reserve(struct sched_heap *h, unsigned int cap);
void sched_heap_free(struct sched_heap *h);
void sched_heap_push(struct sched_heap *h, uint64_t key, uint64_t seq,
		     struct sched_ctx *c);
void sched_heap_pop(struct sched_heap *h);
/* Removes c wherever it is; false when it is not in the heap. */
bool sched_heap_remove(struct sched_heap *h, const struct sched_ctx *c);

static inline const struct sched_heap_ent *sched_heap_top(const struct sched_heap *h)
{
	return h->n ? &h->v[0] : NULL;
}

static inline bool sched_key_before(uint64_t ka, uint64_t sa, uint64_t kb,
				    uint64_t sb)
{
	int64_t d = (int64_t)(ka - kb);

	return d < 0 || (d == 0 && sa < sb);
}

/*
 * Log-linear histogram: values below 64 ns are exact, above that each power
 * of two is split in SCHED_HIST_SUB linear buckets (about 3% resolution),
 * up to 2^40 ns (18 minutes); larger values land in the last bucket.
 */
#define SCHED_HIST_SUB_BITS 5
#define SCHED_HIST_SUB (1u << SCHED_HIST_SUB_BITS)
#define SCHED_HIST_BUCKETS (64 + (40 - 6) * SCHED_HIST_SUB)

struct sched_hist {
	uint32_t b[SCHED_HIST_BUCKETS];
	uint64_t count, sum, max;
};

void sched_hist_add(struct sched_hist *h, uint64_t v);
/* The q-quantile (0..1): the upper edge of its bucket, never above max. */
uint64_t sched_hist_quantile(const struct sched_hist *h, double q);

enum sched_qstate {
	SCHED_Q_NONE = 0,   /* idle, stalled or running */
	SCHED_Q_RUN,        /* in e->runq */
	SCHED_Q_RUN_IA,     /* in e->runq_ia (interactive) */
	SCHED_Q_THROTTLED,  /* in e->throttled, until eligible_at */
	SCHED_Q_RUN_RSV,    /* in e->runq_rsv (within its budget) */
};

struct sched_ctx {
	struct sched_engine *e;
	struct sched_ctx_cfg cfg;
	unsigned int idx;           /* position in e->ctxs */
	enum sched_qstate q;
	bool runnable, stalled, wd_reported;
	bool frame_hold;            /* throttled by the fps limit, not budget */

	/* the policy's view, recomputed by sched_ctx_refresh() */
	uint32_t w_eff;             /* weight used for virtual time */
	uint32_t cap_eff;           /* ppm; SCHED_PPM = uncapped */

	uint64_t vt;                /* virtual time */
	uint64_t overrun_vt;        /* last slice's unrepaid overrun, in vt */
	int64_t budget;             /* ns, capped contexts only */
	uint64_t budget_at;         /* time budget was last refilled */
	uint64_t eligible_at;       /* throttled until */
	uint64_t next_frame_at;     /* fps limit: earliest next release */
	uint64_t ready_at;          /* became eligible (dispatch wait start) */
	uint64_t granted;           /* slice granted at the last pick */
	uint64_t noprog_ns;         /* watchdog: engine time and stalled time
				     * since the last progress */
	uint64_t stall_at;          /* when the current stall began */

	/* budget (sched_rsv.c): rsv_period is 0 when none is in force */
	uint64_t rsv_period, rsv_budget;  /* ns */
	int64_t rsv_left;           /* budget left in the current period */
	uint64_t rsv_end;           /* the current period's end */
	bool rsv_new;               /* no period yet: the next starts at once */
	bool in_renew;              /* in e->renew, keyed by rsv_end */

	struct sched_ctx_stats st;
	struct sched_hist *wait;
	struct sched_hist *wait_rsv;  /* waits of picks within the budget;
				       * allocated once a budget is given */
};

struct sched_engine {
	struct sched_engine_cfg cfg;
	uint64_t slice;             /* in force: cfg.slice_ns or the default */
	struct sched_ctx **ctxs;
	unsigned int nctx, cap_ctx;
	struct sched_heap runq, runq_ia, throttled;
	/* budget holders within their budget, in arrival order; and holders
	 * queued past their budget, by the end of their period */
	struct sched_heap runq_rsv, renew;
	unsigned int nrsv;          /* holders with a budget in force */
	uint64_t rsv_quantum;       /* the most one budget pick is granted */
	uint64_t nonpreempt_max;    /* longest stretch that could not be cut */
	bool running_rsv;           /* running was picked within its budget */
	uint64_t run_start;         /* when running was picked */
	struct sched_ctx *running, *last;
	uint64_t vclock;            /* V: min virtual time of runnable contexts */
	uint64_t seq;
	uint32_t reserve_sum;       /* fixed-share: sum of reserves, ppm */
	struct sched_engine_stats st;
};

static inline bool sched_policy_fair(enum sched_policy p)
{
	return p == SCHED_POLICY_WEIGHTED || p == SCHED_POLICY_EQUAL_SHARE ||
	       p == SCHED_POLICY_FIXED_SHARE;
}

/* sched_rsv.c: the budget arithmetic. */
/* Period and budget from the context's settings and the engine's policy;
 * a change of either starts the budget afresh. */
void sched_rsv_refresh(struct sched_ctx *c);
/* Renews the budget if its period ended by t; true when budget is left. */
bool sched_rsv_renew(struct sched_ctx *c, uint64_t t);
/* The engine's quantum for nrsv holders under slice. */
uint64_t sched_rsv_quantum(uint64_t slice, unsigned int nrsv);

#endif
