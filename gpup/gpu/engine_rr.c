// SPDX-License-Identifier: MIT
/*
 * The default engine scheduler: round robin over runnable contexts with a
 * fixed slice, in the shape of struct gpup_sched_ops so that the
 * time-slice scheduler replaces it without touching the executor.  A
 * picked context goes to the tail of the run list at once, so a context
 * that keeps its work gets its next slice only after every other runnable
 * one has had a turn.
 *
 * The optional watchdog reports a context that has had work (runnable or
 * stalled on a WAIT) without completing a command for watchdog_ns: a
 * kernel that spins forever or a WAIT nobody satisfies.
 */
#include <errno.h>
#include <stdlib.h>

#include "gpup/gpu/gpu.h"

struct rr_node {
	struct gpup_ectx *ctx;
	struct rr_node *prev, *next;   /* run list */
	struct rr_node *all_next;      /* every context */
	bool queued, has_work, reported;
	uint64_t last_progress;
};

struct rr_sched {
	struct rr_node head; /* circular list of runnable contexts */
	struct rr_node *all;
	struct gpup_rr_cfg cfg;
};

static void *rr_create(struct gpup_engine *e, const void *arg)
{
	struct rr_sched *s = calloc(1, sizeof(*s));

	(void)e;
	if (!s)
		return NULL;
	s->head.prev = s->head.next = &s->head;
	if (arg)
		s->cfg = *(const struct gpup_rr_cfg *)arg;
	if (!s->cfg.slice_ns)
		s->cfg.slice_ns = GPUP_RR_SLICE_NS;
	return s;
}

static void rr_destroy(void *s)
{
	free(s);
}

static int rr_add(void *sp, struct gpup_ectx *c)
{
	struct rr_sched *s = sp;
	struct rr_node *n = calloc(1, sizeof(*n));

	if (!n)
		return -ENOMEM;
	n->ctx = c;
	n->all_next = s->all;
	s->all = n;
	c->sched_priv = n;
	return 0;
}

static void rr_unlink(struct rr_node *n)
{
	if (!n->queued)
		return;
	n->prev->next = n->next;
	n->next->prev = n->prev;
	n->queued = false;
}

static void rr_push_tail(struct rr_sched *s, struct rr_node *n)
{
	n->prev = s->head.prev;
	n->next = &s->head;
	s->head.prev->next = n;
	s->head.prev = n;
	n->queued = true;
}

static void rr_remove(void *sp, struct gpup_ectx *c)
{
	struct rr_sched *s = sp;
	struct rr_node *n = c->sched_priv, **pp = &s->all;

	while (*pp != n)
		pp = &(*pp)->all_next;
	*pp = n->all_next;
	rr_unlink(n);
	free(n);
	c->sched_priv = NULL;
}

static void rr_wake(void *s, struct gpup_ectx *c, uint64_t now)
{
	struct rr_node *n = c->sched_priv;

	if (!n->has_work) {
		n->has_work = true;
		n->last_progress = now;
	}
	if (!n->queued)
		rr_push_tail(s, n);
}

static void rr_block(void *s, struct gpup_ectx *c, uint64_t now)
{
	struct rr_node *n = c->sched_priv;

	(void)s;
	(void)now;
	rr_unlink(n);
	n->has_work = false;
	n->reported = false;
}

static void rr_stall(void *s, struct gpup_ectx *c, uint64_t now)
{
	(void)s;
	(void)now;
	rr_unlink(c->sched_priv);
}

static struct gpup_ectx *rr_pick(void *sp, uint64_t now, uint64_t *slice_ns)
{
	struct rr_sched *s = sp;
	struct rr_node *n = s->head.next;

	(void)now;
	if (n == &s->head) {
		*slice_ns = UINT64_MAX;
		return NULL;
	}
	rr_unlink(n);
	rr_push_tail(s, n);
	*slice_ns = s->cfg.slice_ns;
	return n->ctx;
}

static void rr_account(void *s, struct gpup_ectx *c, uint64_t ran_ns, uint64_t now,
		       enum gpup_run_result res)
{
	(void)s;
	(void)c;
	(void)ran_ns;
	(void)now;
	(void)res;
}

static void rr_progress(void *s, struct gpup_ectx *c, uint64_t now)
{
	struct rr_node *n = c->sched_priv;

	(void)s;
	n->last_progress = now;
	n->reported = false;
}

static unsigned int rr_watchdog(void *sp, uint64_t now, struct gpup_ectx **out,
				unsigned int max)
{
	struct rr_sched *s = sp;
	unsigned int k = 0;

	if (!s->cfg.watchdog_ns)
		return 0;
	for (struct rr_node *n = s->all; n && k < max; n = n->all_next) {
		/* Not now - last: wakes may be stamped after the caller's now. */
		if (n->has_work && !n->reported &&
		    now >= n->last_progress + s->cfg.watchdog_ns) {
			n->reported = true;
			out[k++] = n->ctx;
		}
	}
	return k;
}

const struct gpup_sched_ops gpup_sched_rr = {
	.name = "round-robin",
	.create = rr_create,
	.destroy = rr_destroy,
	.add = rr_add,
	.remove = rr_remove,
	.wake = rr_wake,
	.block = rr_block,
	.stall = rr_stall,
	.pick = rr_pick,
	.account = rr_account,
	.progress = rr_progress,
	.watchdog = rr_watchdog,
};
