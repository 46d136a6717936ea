// SPDX-License-Identifier: MIT
/*
 * The glue between an engine executor and the time-slice scheduler: each
 * gpup_sched_ops call becomes the matching sched_* call, each gpup_ectx
 * gets a sched_ctx (kept in its sched_priv).  The executor holds its
 * engine lock around every op, which is all the locking the scheduler
 * needs.
 */
#include <errno.h>
#include <stdlib.h>

#include "gpup/gpu/gpu.h"

static void *ts_create(struct gpup_engine *e, const void *arg)
{
	static const struct sched_engine_cfg dflt = {
		.policy = SCHED_POLICY_BEST_EFFORT,
	};

	(void)e;
	return sched_engine_create(arg ? arg : &dflt);
}

static void ts_destroy(void *s)
{
	sched_engine_destroy(s);
}

static int ts_add(void *s, struct gpup_ectx *c)
{
	struct sched_ctx_cfg cfg = { .weight = c->weight ? c->weight : 1, .priv = c };
	struct sched_ctx *sc;
	int r;

	if (cfg.weight > SCHED_WEIGHT_MAX)
		cfg.weight = SCHED_WEIGHT_MAX;
	r = sched_ctx_add(s, &cfg, gpup_mono_ns(), &sc);
	if (!r)
		c->sched_priv = sc;
	return r;
}

static void ts_remove(void *s, struct gpup_ectx *c)
{
	(void)s;
	/* the executor never removes the context it is running */
	if (c->sched_priv && sched_ctx_remove(c->sched_priv) == 0)
		c->sched_priv = NULL;
}

/* sched_wake's preempt request is not needed here: the executor asks
 * ts_preempt at the running context's next preemption point anyway. */
static void ts_wake(void *s, struct gpup_ectx *c, uint64_t now)
{
	(void)s;
	sched_wake(c->sched_priv, now);
}

static void ts_block(void *s, struct gpup_ectx *c, uint64_t now)
{
	(void)s;
	sched_block(c->sched_priv, now);
}

static void ts_stall(void *s, struct gpup_ectx *c, uint64_t now)
{
	(void)s;
	sched_stall(c->sched_priv, now);
}

static struct gpup_ectx *ts_pick(void *s, uint64_t now, uint64_t *slice_ns)
{
	struct sched_ctx *c = sched_pick(s, now, slice_ns);

	if (c && *slice_ns == SCHED_SLICE_JOB)
		*slice_ns = GPUP_TSCHED_JOB_NS;
	return c ? sched_ctx_priv(c) : NULL;
}

static bool ts_preempt(void *s, struct gpup_ectx *c, uint64_t now)
{
	(void)c;
	return sched_should_preempt(s, now);
}

static void ts_account(void *s, struct gpup_ectx *c, uint64_t ran_ns, uint64_t now,
		       enum gpup_run_result res)
{
	(void)s;
	sched_account(c->sched_priv, ran_ns, now,
		      res == GPUP_RUN_MORE ? SCHED_ACCT_PREEMPTED : 0);
}

static void ts_progress(void *s, struct gpup_ectx *c, uint64_t now)
{
	(void)s;
	sched_progress(c->sched_priv, now);
}

static unsigned int ts_watchdog(void *s, uint64_t now, struct gpup_ectx **out,
				unsigned int max)
{
	struct sched_ctx *stuck[16];
	unsigned int n = sched_watchdog_check(s, now, stuck, max < 16 ? max : 16);

	for (unsigned int i = 0; i < n; i++)
		out[i] = sched_ctx_priv(stuck[i]);
	return n;
}

const struct gpup_sched_ops gpup_sched_tslice = {
	.name = "tslice",
	.create = ts_create,
	.destroy = ts_destroy,
	.add = ts_add,
	.remove = ts_remove,
	.wake = ts_wake,
	.block = ts_block,
	.stall = ts_stall,
	.pick = ts_pick,
	.account = ts_account,
	.preempt = ts_preempt,
	.progress = ts_progress,
	.watchdog = ts_watchdog,
};

/* ---- run-time controls ---- */

struct ts_policy {
	enum sched_policy p;
	uint64_t slice;
};

static int call_policy(void *s, void *arg)
{
	const struct ts_policy *a = arg;

	return sched_set_policy(s, a->p, a->slice, gpup_mono_ns());
}

int gpup_tsched_set_policy(struct gpup_engine *e, enum sched_policy p,
			   uint64_t slice_ns)
{
	struct ts_policy a = { p, slice_ns };
	struct sched_engine_cfg cfg = { .policy = p, .slice_ns = slice_ns };
	int r;

	if ((unsigned int)p >= SCHED_POLICY_COUNT ||
	    (slice_ns && (slice_ns < SCHED_SLICE_MIN_NS || slice_ns > SCHED_SLICE_MAX_NS)))
		return -EINVAL;
	r = gpup_engine_sched_call(e, &gpup_sched_tslice, call_policy, &a);
	if (r != -EINVAL)
		return r;
	/* the engine runs another scheduler: replace it, contexts and all */
	return gpup_engine_set_sched(e, &gpup_sched_tslice, &cfg);
}

static int call_watchdog(void *s, void *arg)
{
	sched_set_watchdog(s, *(const uint64_t *)arg);
	return 0;
}

int gpup_tsched_set_watchdog(struct gpup_engine *e, uint64_t timeout_ns)
{
	return gpup_engine_sched_call(e, &gpup_sched_tslice, call_watchdog, &timeout_ns);
}

struct ts_ctx {
	struct gpup_ectx *c;
	const struct sched_ctx_cfg *cfg;
	struct sched_ctx_stats *st;
};

static int call_ctx(void *s, void *arg)
{
	struct ts_ctx *a = arg;
	struct sched_ctx_cfg cfg;

	(void)s;
	if (!a->c->sched_priv)
		return -ENOENT;
	if (a->st) {
		sched_ctx_stats(a->c->sched_priv, a->st);
		return 0;
	}
	cfg = *a->cfg;
	cfg.priv = a->c;
	return sched_ctx_update(a->c->sched_priv, &cfg, gpup_mono_ns());
}

int gpup_tsched_set_ctx(struct gpup_engine *e, struct gpup_ectx *c,
			const struct sched_ctx_cfg *cfg)
{
	struct ts_ctx a = { .c = c, .cfg = cfg };

	return gpup_engine_sched_call(e, &gpup_sched_tslice, call_ctx, &a);
}

int gpup_tsched_ctx_stats(struct gpup_engine *e, struct gpup_ectx *c,
			  struct sched_ctx_stats *st)
{
	struct ts_ctx a = { .c = c, .st = st };

	return gpup_engine_sched_call(e, &gpup_sched_tslice, call_ctx, &a);
}

static int call_engine_stats(void *s, void *arg)
{
	sched_engine_stats(s, arg);
	return 0;
}

int gpup_tsched_engine_stats(struct gpup_engine *e, struct sched_engine_stats *st)
{
	return gpup_engine_sched_call(e, &gpup_sched_tslice, call_engine_stats, st);
}
