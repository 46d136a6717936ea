// SPDX-License-Identifier: MIT
/*
 * The default engine scheduler: round robin over runnable contexts with a
 * fixed slice, in the shape of struct gpup_sched_ops so that the
 * time-slice scheduler replaces it without touching the executor.  A
 * picked context goes to the tail of the run list at once, so a context
 * that keeps its work gets its next slice only after every other runnable
 * one has had a turn.
 */
#include <errno.h>
#include <stdlib.h>

#include "gpup/engine.h"

struct rr_node {
	struct gpup_ectx *ctx;
	struct rr_node *prev, *next;
	bool queued;
};

struct rr_sched {
	struct rr_node head; /* circular list of runnable contexts */
};

static void *rr_create(struct gpup_engine *e)
{
	struct rr_sched *s = calloc(1, sizeof(*s));

	(void)e;
	if (s)
		s->head.prev = s->head.next = &s->head;
	return s;
}

static void rr_destroy(void *s)
{
	free(s);
}

static int rr_add(void *s, struct gpup_ectx *c)
{
	struct rr_node *n = calloc(1, sizeof(*n));

	(void)s;
	if (!n)
		return -ENOMEM;
	n->ctx = c;
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

static void rr_remove(void *s, struct gpup_ectx *c)
{
	struct rr_node *n = c->sched_priv;

	(void)s;
	rr_unlink(n);
	free(n);
	c->sched_priv = NULL;
}

static void rr_wake(void *s, struct gpup_ectx *c, uint64_t now)
{
	struct rr_node *n = c->sched_priv;

	(void)now;
	if (!n->queued)
		rr_push_tail(s, n);
}

static void rr_block(void *s, struct gpup_ectx *c, uint64_t now)
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
	*slice_ns = GPUP_RR_SLICE_NS;
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

const struct gpup_sched_ops gpup_sched_rr = {
	.name = "round-robin",
	.create = rr_create,
	.destroy = rr_destroy,
	.add = rr_add,
	.remove = rr_remove,
	.wake = rr_wake,
	.block = rr_block,
	.pick = rr_pick,
	.account = rr_account,
};
