// SPDX-License-Identifier: MIT
/*
 * What the scheduler reports: the names of its policies and classes, and
 * the accounting of an engine and its contexts (sched_ctx_stats,
 * sched_engine_stats).
 */
#include <errno.h>
#include <string.h>

#include "scheduler/sched_int.h"

static const char *const policy_names[SCHED_POLICY_COUNT] = {
	[SCHED_POLICY_FIFO] = "fifo",
	[SCHED_POLICY_BEST_EFFORT] = "best-effort",
	[SCHED_POLICY_EQUAL_SHARE] = "equal-share",
	[SCHED_POLICY_FIXED_SHARE] = "fixed-share",
	[SCHED_POLICY_WEIGHTED] = "weighted",
};

const char *sched_policy_name(enum sched_policy p)
{
	return (unsigned int)p < SCHED_POLICY_COUNT ? policy_names[p] : "?";
}

int sched_policy_parse(const char *name, enum sched_policy *out)
{
	for (unsigned int i = 0; name && i < SCHED_POLICY_COUNT; i++) {
		if (strcmp(name, policy_names[i]) == 0) {
			*out = (enum sched_policy)i;
			return 0;
		}
	}
	return -EINVAL;
}

const char *sched_class_name(enum sched_class k)
{
	return k == SCHED_CLASS_INTERACTIVE ? "interactive" : "normal";
}

int sched_class_parse(const char *name, enum sched_class *out)
{
	if (name && strcmp(name, "normal") == 0)
		*out = SCHED_CLASS_NORMAL;
	else if (name && strcmp(name, "interactive") == 0)
		*out = SCHED_CLASS_INTERACTIVE;
	else
		return -EINVAL;
	return 0;
}

static int64_t ctx_debt(const struct sched_ctx *c)
{
	int64_t dv = (int64_t)(c->vt - c->e->vclock);

	if (!sched_policy_fair(c->e->cfg.policy))
		return 0;
	return (int64_t)((__int128)dv * c->w_eff / SCHED_VT_SCALE);
}

void sched_ctx_stats(const struct sched_ctx *c, struct sched_ctx_stats *st)
{
	*st = c->st;
	st->waits = c->wait->count;
	st->wait_p50_ns = sched_hist_quantile(c->wait, 0.50);
	st->wait_p99_ns = sched_hist_quantile(c->wait, 0.99);
	st->wait_max_ns = c->wait->max;
	st->wait_sum_ns = c->wait->sum;
	if (c->wait_rsv) {
		st->budget_waits = c->wait_rsv->count;
		st->budget_wait_p50_ns = sched_hist_quantile(c->wait_rsv, 0.50);
		st->budget_wait_p99_ns = sched_hist_quantile(c->wait_rsv, 0.99);
		st->budget_wait_max_ns = c->wait_rsv->max;
	}
	st->debt_ns = ctx_debt(c);
	st->runnable = c->runnable;
	st->running = c->e->running == c;
	st->throttled = c->q == SCHED_Q_THROTTLED;
	st->stalled = c->stalled;
	st->cfg = c->cfg;
}

void sched_engine_stats(const struct sched_engine *e,
			struct sched_engine_stats *st)
{
	*st = e->st;
	st->policy = e->cfg.policy;
	st->slice_ns = e->slice;
	st->watchdog_ns = e->cfg.watchdog_ns;
	st->nctx = e->nctx;
	st->budgets = e->nrsv;
	st->budget_quantum_ns = e->nrsv ? e->rsv_quantum : 0;
	st->nonpreempt_max_ns = e->nonpreempt_max;
}
