// SPDX-License-Identifier: MIT
/*
 * The engine scheduler: run queues, the policies and their accounting.
 * The model is described in scheduler/sched.h (DOC: model); this file keeps
 * to the mechanics.  Contexts live in four heaps per engine: runq_rsv
 * (budget holders within their budget, in arrival order), runq (normal
 * class, ordered by virtual time, or by arrival for fifo and best-effort),
 * runq_ia (interactive class) and throttled (ordered by the time they may
 * run again); a holder queued past its budget is also in renew, by the end
 * of its period.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "scheduler/sched_int.h"

uint64_t sched_default_slice(unsigned int n)
{
	return n <= 8 ? 2 * SCHED_NS_PER_MS : SCHED_NS_PER_MS;
}

uint64_t sched_slice(const struct sched_engine *e)
{
	return e->slice;
}

void sched_set_watchdog(struct sched_engine *e, uint64_t timeout_ns)
{
	e->cfg.watchdog_ns = timeout_ns;
}

static bool slice_ok(uint64_t s)
{
	return s == 0 || (s >= SCHED_SLICE_MIN_NS && s <= SCHED_SLICE_MAX_NS);
}

static uint64_t ns_to_vt(uint64_t ns, uint32_t w)
{
	unsigned __int128 v = (unsigned __int128)ns * SCHED_VT_SCALE / w;

	return v > UINT64_MAX / 4 ? UINT64_MAX / 4 : (uint64_t)v;
}

static uint64_t slice_vt(const struct sched_ctx *c)
{
	return ns_to_vt(c->e->slice, c->w_eff);
}

static bool capped(const struct sched_ctx *c)
{
	return sched_policy_fair(c->e->cfg.policy) && c->cap_eff < SCHED_PPM;
}

static int64_t budget_depth(const struct sched_engine *e)
{
	return (int64_t)(2 * e->slice);
}

/* ---- the policies' view of a context ---- */

static uint32_t ctx_reserve(const struct sched_ctx *c)
{
	const struct sched_engine *e = c->e;
	uint64_t r = c->cfg.reserve_ppm ? c->cfg.reserve_ppm : SCHED_PPM / e->nctx;

	if (e->reserve_sum > SCHED_PPM)
		r = r * SCHED_PPM / e->reserve_sum;
	return r ? (uint32_t)r : 1;
}

static void ctx_refresh(struct sched_ctx *c)
{
	const struct sched_engine *e = c->e;
	uint32_t cap = c->cfg.cap_ppm ? c->cfg.cap_ppm : SCHED_PPM;

	c->w_eff = 1;
	c->cap_eff = SCHED_PPM;
	switch (e->cfg.policy) {
	case SCHED_POLICY_WEIGHTED:
		c->w_eff = c->cfg.weight ? c->cfg.weight : 1;
		c->cap_eff = cap;
		break;
	case SCHED_POLICY_EQUAL_SHARE:
		c->cap_eff = SCHED_PPM / e->nctx;
		if (cap < c->cap_eff)
			c->cap_eff = cap;
		break;
	case SCHED_POLICY_FIXED_SHARE:
		c->w_eff = ctx_reserve(c);
		c->cap_eff = c->cfg.cap_ppm > c->w_eff ? c->cfg.cap_ppm : c->w_eff;
		break;
	default:
		break;
	}
	if (c->cap_eff == 0)
		c->cap_eff = 1;
	if (c->budget > budget_depth(e))
		c->budget = budget_depth(e);
	sched_rsv_refresh(c);
}

static void engine_refresh(struct sched_engine *e)
{
	uint64_t sum = 0;

	e->slice = e->cfg.slice_ns ? e->cfg.slice_ns : sched_default_slice(e->nctx);
	for (unsigned int i = 0; i < e->nctx; i++) {
		uint32_t r = e->ctxs[i]->cfg.reserve_ppm;

		sum += r ? r : SCHED_PPM / e->nctx;
	}
	e->reserve_sum = sum > UINT32_MAX ? UINT32_MAX : (uint32_t)sum;
	e->nrsv = 0;
	for (unsigned int i = 0; i < e->nctx; i++) {
		ctx_refresh(e->ctxs[i]);
		e->nrsv += e->ctxs[i]->rsv_period != 0;
	}
	e->rsv_quantum = sched_rsv_quantum(e->slice, e->nrsv);
}

/* ---- queues ---- */

static void refill(struct sched_ctx *c, uint64_t now)
{
	unsigned __int128 earned;

	if (!capped(c) || (int64_t)(now - c->budget_at) <= 0)
		return;
	earned = (unsigned __int128)(now - c->budget_at) * c->cap_eff / SCHED_PPM;
	if (earned > (unsigned __int128)budget_depth(c->e) * 2)
		earned = (unsigned __int128)budget_depth(c->e) * 2;
	c->budget += (int64_t)earned;
	if (c->budget > budget_depth(c->e))
		c->budget = budget_depth(c->e);
	c->budget_at = now;
}

static void push_run(struct sched_ctx *c, uint64_t ready)
{
	struct sched_engine *e = c->e;
	/* past its budget a holder queues as a normal context */
	bool ia = sched_policy_fair(e->cfg.policy) &&
		  c->cfg.klass == SCHED_CLASS_INTERACTIVE && !c->rsv_period;
	uint64_t key = sched_policy_fair(e->cfg.policy) ? c->vt : 0;

	c->ready_at = ready;
	c->q = ia ? SCHED_Q_RUN_IA : SCHED_Q_RUN;
	sched_heap_push(ia ? &e->runq_ia : &e->runq, key, e->seq++, c);
}

static void push_throttled(struct sched_ctx *c, uint64_t until)
{
	struct sched_engine *e = c->e;

	c->eligible_at = until;
	c->q = SCHED_Q_THROTTLED;
	sched_heap_push(&e->throttled, until, e->seq++, c);
}

/* No banked idle time: at most one slice of credit. */
static void clamp_credit(struct sched_ctx *c)
{
	uint64_t lo = c->e->vclock - slice_vt(c);

	if ((int64_t)(c->vt - lo) < 0)
		c->vt = lo;
}

/* A holder with budget left in its period (renewed if it ended by t) goes
 * to the budget tier; false for anyone else. */
static bool push_rsv(struct sched_ctx *c, uint64_t t)
{
	if (!c->rsv_period || !sched_rsv_renew(c, t))
		return false;
	c->ready_at = t;
	c->q = SCHED_Q_RUN_RSV;
	sched_heap_push(&c->e->runq_rsv, 0, c->e->seq++, c);
	return true;
}

/* A holder queued past its budget moves to the tier when its period ends. */
static void watch_renew(struct sched_ctx *c)
{
	if (!c->rsv_period || c->in_renew)
		return;
	c->in_renew = true;
	sched_heap_push(&c->e->renew, c->rsv_end, c->e->seq++, c);
}

/* Queue a runnable context that became ready at t: on the run queue, or
 * throttled until its budget is positive again.  A context with any budget
 * left may start a full slice and overdraw (repaid before it runs again):
 * waiting for a whole slice of budget would throttle and release every
 * context of a busy equal-share engine once per round for nothing. */
static void enqueue(struct sched_ctx *c, uint64_t t)
{
	uint64_t need, wait;

	if (push_rsv(c, t))
		return;
	if (c->rsv_period) {
		/* no credit for the time the budget served it */
		clamp_credit(c);
		watch_renew(c);
	}
	refill(c, t);
	if (!capped(c) || c->budget > 0) {
		push_run(c, t);
		return;
	}
	need = (uint64_t)(1 - c->budget);
	wait = (uint64_t)(((unsigned __int128)need * SCHED_PPM + c->cap_eff - 1) /
			  c->cap_eff);
	push_throttled(c, t + wait);
}

static void dequeue(struct sched_ctx *c)
{
	struct sched_engine *e = c->e;

	if (c->q == SCHED_Q_RUN)
		sched_heap_remove(&e->runq, c);
	else if (c->q == SCHED_Q_RUN_IA)
		sched_heap_remove(&e->runq_ia, c);
	else if (c->q == SCHED_Q_THROTTLED)
		sched_heap_remove(&e->throttled, c);
	else if (c->q == SCHED_Q_RUN_RSV)
		sched_heap_remove(&e->runq_rsv, c);
	if (c->in_renew)
		sched_heap_remove(&e->renew, c);
	c->in_renew = false;
	c->q = SCHED_Q_NONE;
	c->frame_hold = false;
}

/* V: the smallest virtual time among runnable contexts, never moving back. */
static void vclock_update(struct sched_engine *e)
{
	const struct sched_heap_ent *a = sched_heap_top(&e->runq);
	const struct sched_heap_ent *b = sched_heap_top(&e->runq_ia);
	uint64_t m;

	if (!a && !b)
		return;
	m = a ? a->key : b->key;
	if (a && b && (int64_t)(b->key - a->key) < 0)
		m = b->key;
	if ((int64_t)(m - e->vclock) > 0)
		e->vclock = m;
}

/* Returning from idle: within one slice of V, plus any unrepaid overrun. */
static void place_on_wake(struct sched_ctx *c)
{
	uint64_t s = slice_vt(c);
	uint64_t hi = c->e->vclock + (c->overrun_vt > s ? c->overrun_vt : s);

	clamp_credit(c);
	if ((int64_t)(c->vt - hi) > 0)
		c->vt = hi;
}

static void release_throttled(struct sched_engine *e, uint64_t now)
{
	const struct sched_heap_ent *t;

	while ((t = sched_heap_top(&e->throttled)) &&
	       (int64_t)(t->key - now) <= 0) {
		struct sched_ctx *c = t->c;
		uint64_t at = t->key;

		sched_heap_pop(&e->throttled);
		c->q = SCHED_Q_NONE;
		if (c->frame_hold && c->cfg.fps_limit)
			c->next_frame_at = at + 1000000000ull / c->cfg.fps_limit;
		c->frame_hold = false;
		clamp_credit(c);
		enqueue(c, at);
	}
}

/* Holders queued past their budget whose period has ended move to the
 * tier, ready since the period's end.  An entry whose period was renewed
 * meanwhile is replaced by one for the new end. */
static void release_renew(struct sched_engine *e, uint64_t now)
{
	const struct sched_heap_ent *t;

	while ((t = sched_heap_top(&e->renew)) && (int64_t)(t->key - now) <= 0) {
		struct sched_ctx *c = t->c;
		uint64_t at = t->key;

		sched_heap_pop(&e->renew);
		c->in_renew = false;
		if (c->q != SCHED_Q_RUN)
			continue;          /* running, throttled or idle: renewed later */
		if (at != c->rsv_end) {
			watch_renew(c);
			continue;
		}
		sched_heap_remove(&e->runq, c);
		c->q = SCHED_Q_NONE;
		enqueue(c, at);
	}
}

/* ---- the executor's calls ---- */

/* An interactive context goes first while it is at most SCHED_IA_AHEAD
 * slices ahead of its share: a wake carries up to one slice of credit, and
 * a frame of two slices, plus the sliver of a third its fence or a slightly
 * long kernel needs, must still finish ahead of the bulk. */
static bool ia_priority(const struct sched_ctx *c)
{
	return (int64_t)(c->vt - c->e->vclock) <= (int64_t)(SCHED_IA_AHEAD * slice_vt(c));
}

static struct sched_ctx *pop_top(struct sched_heap *h)
{
	struct sched_ctx *c = h->v[0].c;

	sched_heap_pop(h);
	c->q = SCHED_Q_NONE;
	return c;
}

/* Budget holders within their budget first, in turn; then interactive
 * contexts within their share; otherwise the lowest virtual time (or the
 * oldest arrival, for fifo and best-effort). */
static struct sched_ctx *choose(struct sched_engine *e)
{
	const struct sched_heap_ent *n = sched_heap_top(&e->runq);
	const struct sched_heap_ent *i = sched_heap_top(&e->runq_ia);

	e->running_rsv = sched_heap_top(&e->runq_rsv) != NULL;
	if (e->running_rsv)
		return pop_top(&e->runq_rsv);
	if (i && (!n || ia_priority(i->c) ||
		  sched_key_before(i->key, i->seq, n->key, n->seq)))
		return pop_top(&e->runq_ia);
	return n ? pop_top(&e->runq) : NULL;
}

static uint64_t idle_hint(const struct sched_engine *e, uint64_t now)
{
	const struct sched_heap_ent *t = sched_heap_top(&e->throttled);

	return t ? t->key - now : SCHED_NEVER;
}

struct sched_ctx *sched_pick(struct sched_engine *e, uint64_t now,
			     uint64_t *slice_ns)
{
	struct sched_ctx *c;

	if (e->running) {
		*slice_ns = 0;
		return NULL;
	}
	release_throttled(e, now);
	release_renew(e, now);
	c = choose(e);
	if (!c) {
		e->st.idle_picks++;
		*slice_ns = idle_hint(e, now);
		return NULL;
	}
	refill(c, now);
	e->running = c;
	e->st.picks++;
	if (c != e->last)
		e->st.switches++;
	e->last = c;
	c->st.slices++;
	sched_hist_add(c->wait, now > c->ready_at ? now - c->ready_at : 0);
	c->overrun_vt = 0;
	c->granted = e->cfg.policy == SCHED_POLICY_FIFO ? SCHED_SLICE_JOB : e->slice;
	if (e->running_rsv) {
		sched_hist_add(c->wait_rsv, now > c->ready_at ? now - c->ready_at : 0);
		if ((uint64_t)c->rsv_left < e->rsv_quantum)
			c->granted = (uint64_t)c->rsv_left;
		else
			c->granted = e->rsv_quantum;
	}
	e->run_start = now;
	*slice_ns = c->granted;
	return c;
}

/* The longest stretch the engine could not be cut: a run past its granted
 * slice, or, while a holder waited in the tier, the time the running
 * context (not picked from the tier) went on; at most what it ran, so that
 * time the executor's thread spent waiting for a host CPU is not counted. */
static void note_nonpreempt(struct sched_engine *e, const struct sched_ctx *c,
			    uint64_t ran, uint64_t now)
{
	const struct sched_heap_ent *h = sched_heap_top(&e->runq_rsv);
	uint64_t np = 0;

	if (c->granted != SCHED_SLICE_JOB && ran > c->granted)
		np = ran - c->granted;
	if (h && !e->running_rsv) {
		uint64_t from = h->c->ready_at > e->run_start ? h->c->ready_at : e->run_start;
		uint64_t held = now > from ? now - from : 0;

		if (held > ran)
			held = ran;
		if (held > np)
			np = held;
	}
	if (np > e->nonpreempt_max)
		e->nonpreempt_max = np;
}

static void spend_budget(struct sched_ctx *c, uint64_t ran, uint64_t now)
{
	c->rsv_left -= ran > (uint64_t)INT64_MAX ? INT64_MAX : (int64_t)ran;
	if (c->rsv_left <= 0 && c->runnable && (int64_t)(now - c->rsv_end) < 0)
		c->st.budget_exhausted++;
}

int sched_account(struct sched_ctx *c, uint64_t ran_ns, uint64_t now,
		  unsigned int flags)
{
	struct sched_engine *e = c->e;

	if (e->running != c)
		return -EINVAL;
	if (ran_ns > SCHED_RAN_MAX_NS)
		ran_ns = SCHED_RAN_MAX_NS;   /* a bogus clock, not a real slice */
	bool rsv = e->running_rsv;

	note_nonpreempt(e, c, ran_ns, now);
	if (rsv)
		spend_budget(c, ran_ns, now);
	e->running = NULL;
	e->running_rsv = false;
	c->st.engine_ns += ran_ns;
	c->noprog_ns += ran_ns;
	if (flags & SCHED_ACCT_PREEMPTED)
		c->st.preemptions++;
	if (c->granted != SCHED_SLICE_JOB && ran_ns > c->granted)
		c->st.overrun_ns += ran_ns - c->granted;
	/* time run within a budget is the reservation's, not the share's */
	if (sched_policy_fair(e->cfg.policy) && !rsv) {
		c->vt += ns_to_vt(ran_ns, c->w_eff);
		if (ran_ns > c->granted)
			c->overrun_vt = ns_to_vt(ran_ns - c->granted, c->w_eff);
		/* spend before refilling: the budget earned while running
		 * never sat above the depth */
		if (capped(c))
			c->budget -= (int64_t)ran_ns;
		refill(c, now);
	}
	if (c->runnable)
		enqueue(c, now);
	if (sched_policy_fair(e->cfg.policy))
		vclock_update(e);
	return 0;
}

static bool preempt_hint(const struct sched_ctx *c)
{
	const struct sched_ctx *r = c->e->running;

	if (c->q == SCHED_Q_RUN_RSV)
		return r && !c->e->running_rsv;
	return c->q == SCHED_Q_RUN_IA && r && r->cfg.klass == SCHED_CLASS_NORMAL &&
	       ia_priority(c);
}

/* Throttled contexts whose time has come are released first: a frame held
 * by its fps limit becomes due without any doorbell. */
bool sched_should_preempt(struct sched_engine *e, uint64_t now)
{
	const struct sched_heap_ent *i;

	if (!e->running || !sched_policy_fair(e->cfg.policy))
		return false;
	release_throttled(e, now);
	release_renew(e, now);
	if (!e->running_rsv && sched_heap_top(&e->runq_rsv))
		return true;
	if (e->running->cfg.klass != SCHED_CLASS_NORMAL)
		return false;
	i = sched_heap_top(&e->runq_ia);
	return i && ia_priority(i->c);
}

static void fps_hold(struct sched_ctx *c, uint64_t now)
{
	if ((int64_t)(now - c->next_frame_at) < 0) {
		c->frame_hold = true;
		push_throttled(c, c->next_frame_at);
		return;
	}
	c->next_frame_at = now + 1000000000ull / c->cfg.fps_limit;
	enqueue(c, now);
}

int sched_wake(struct sched_ctx *c, uint64_t now)
{
	struct sched_engine *e = c->e;

	if (c->runnable)
		return 0;
	if (c->stalled && now > c->stall_at) {
		c->noprog_ns += now - c->stall_at;
	} else if (!c->stalled) {
		c->noprog_ns = 0;
		c->wd_reported = false;
	}
	c->runnable = true;
	c->stalled = false;
	if (e->running == c)
		return 0;
	if (!sched_policy_fair(e->cfg.policy)) {
		push_run(c, now);
		return 0;
	}
	refill(c, now);
	place_on_wake(c);
	if (c->cfg.klass == SCHED_CLASS_INTERACTIVE && c->cfg.fps_limit)
		fps_hold(c, now);
	else
		enqueue(c, now);
	return preempt_hint(c) ? 1 : 0;
}

void sched_block(struct sched_ctx *c, uint64_t now)
{
	(void)now;
	dequeue(c);
	c->runnable = false;
	c->stalled = false;
	c->wd_reported = false;
	c->noprog_ns = 0;
}

void sched_stall(struct sched_ctx *c, uint64_t now)
{
	dequeue(c);
	if (!c->stalled)
		c->stall_at = now;
	c->runnable = false;
	c->stalled = true;
}

void sched_progress(struct sched_ctx *c, uint64_t now)
{
	c->noprog_ns = 0;
	c->stall_at = now;
	c->wd_reported = false;
}

/* Time without progress that counts: engine time it was given, and time
 * stalled; time queued behind others does not, so a context the policy
 * starves is not taken for a stuck one. */
static uint64_t noprog(const struct sched_ctx *c, uint64_t now)
{
	return c->noprog_ns + (c->stalled && now > c->stall_at ? now - c->stall_at : 0);
}

unsigned int sched_watchdog_check(struct sched_engine *e, uint64_t now,
				  struct sched_ctx **out, unsigned int max)
{
	unsigned int n = 0;

	if (!e->cfg.watchdog_ns)
		return 0;
	for (unsigned int i = 0; i < e->nctx && n < max; i++) {
		struct sched_ctx *c = e->ctxs[i];

		if (!(c->runnable || c->stalled) || c->wd_reported ||
		    noprog(c, now) < e->cfg.watchdog_ns)
			continue;
		c->wd_reported = true;
		c->st.watchdog_fired++;
		out[n++] = c;
	}
	return n;
}

/* ---- engine and context lifetime ---- */

static bool ctx_cfg_ok(const struct sched_ctx_cfg *cfg)
{
	return cfg->weight <= SCHED_WEIGHT_MAX && cfg->reserve_ppm <= SCHED_PPM &&
	       cfg->cap_ppm <= SCHED_PPM &&
	       (cfg->klass == SCHED_CLASS_NORMAL ||
		cfg->klass == SCHED_CLASS_INTERACTIVE) &&
	       cfg->fps_limit <= 1000 && cfg->budget_us <= SCHED_BUDGET_MAX_US &&
	       (!cfg->budget_us ||
		(cfg->klass == SCHED_CLASS_INTERACTIVE && cfg->fps_limit &&
		 (uint64_t)cfg->budget_us * cfg->fps_limit <= 1000000));
}

int sched_ctx_cfg_check(const struct sched_ctx_cfg *cfg)
{
	return cfg && ctx_cfg_ok(cfg) ? 0 : -EINVAL;
}

struct sched_engine *sched_engine_create(const struct sched_engine_cfg *cfg)
{
	struct sched_engine *e;

	if (!cfg || (unsigned int)cfg->policy >= SCHED_POLICY_COUNT ||
	    !slice_ok(cfg->slice_ns)) {
		errno = EINVAL;
		return NULL;
	}
	e = calloc(1, sizeof(*e));
	if (!e)
		return NULL;
	e->cfg = *cfg;
	engine_refresh(e);
	return e;
}

void sched_engine_destroy(struct sched_engine *e)
{
	if (!e)
		return;
	for (unsigned int i = 0; i < e->nctx; i++) {
		free(e->ctxs[i]->wait);
		free(e->ctxs[i]->wait_rsv);
		free(e->ctxs[i]);
	}
	free(e->ctxs);
	sched_heap_free(&e->runq);
	sched_heap_free(&e->runq_ia);
	sched_heap_free(&e->throttled);
	sched_heap_free(&e->runq_rsv);
	sched_heap_free(&e->renew);
	free(e);
}

static int engine_grow(struct sched_engine *e)
{
	unsigned int cap = e->cap_ctx ? 2 * e->cap_ctx : 8;
	struct sched_ctx **v;

	if (e->nctx < e->cap_ctx)
		return 0;
	v = realloc(e->ctxs, cap * sizeof(*v));
	if (!v)
		return -ENOMEM;
	e->ctxs = v;
	e->cap_ctx = cap;
	if (sched_heap_reserve(&e->runq, cap) ||
	    sched_heap_reserve(&e->runq_ia, cap) ||
	    sched_heap_reserve(&e->throttled, cap) ||
	    sched_heap_reserve(&e->runq_rsv, cap) || sched_heap_reserve(&e->renew, cap))
		return -ENOMEM;
	return 0;
}

/* The histogram of waits within a budget, only for contexts given one:
 * the others would carry 4 KiB each that a pick among many never needs. */
static int budget_hist(struct sched_ctx *c)
{
	if (!c->wait_rsv)
		c->wait_rsv = calloc(1, sizeof(*c->wait_rsv));
	return c->wait_rsv ? 0 : -ENOMEM;
}

int sched_ctx_add(struct sched_engine *e, const struct sched_ctx_cfg *cfg,
		  uint64_t now, struct sched_ctx **out)
{
	struct sched_ctx *c;

	if (!cfg || !ctx_cfg_ok(cfg))
		return -EINVAL;
	if (engine_grow(e))
		return -ENOMEM;
	c = calloc(1, sizeof(*c));
	if (!c)
		return -ENOMEM;
	c->wait = calloc(1, sizeof(*c->wait));
	if (!c->wait || (cfg->budget_us && budget_hist(c))) {
		free(c->wait);
		free(c);
		return -ENOMEM;
	}
	c->e = e;
	c->cfg = *cfg;
	c->idx = e->nctx;
	c->vt = e->vclock;
	c->budget_at = c->stall_at = c->next_frame_at = now;
	e->ctxs[e->nctx++] = c;
	engine_refresh(e);
	c->budget = budget_depth(e);
	*out = c;
	return 0;
}

int sched_ctx_update(struct sched_ctx *c, const struct sched_ctx_cfg *cfg,
		     uint64_t now)
{
	bool queued = c->q != SCHED_Q_NONE;

	if (!cfg || !ctx_cfg_ok(cfg))
		return -EINVAL;
	if (cfg->budget_us && budget_hist(c))
		return -ENOMEM;
	dequeue(c);
	refill(c, now);
	c->cfg = *cfg;
	engine_refresh(c->e);
	if (queued)
		enqueue(c, now);
	return 0;
}

int sched_ctx_remove(struct sched_ctx *c)
{
	struct sched_engine *e = c->e;

	if (e->running == c)
		return -EBUSY;
	dequeue(c);
	e->ctxs[c->idx] = e->ctxs[--e->nctx];
	e->ctxs[c->idx]->idx = c->idx;
	if (e->last == c)
		e->last = NULL;
	free(c->wait);
	free(c->wait_rsv);
	free(c);
	if (e->nctx)
		engine_refresh(e);
	return 0;
}

struct sched_ctx *sched_ctx_at(const struct sched_engine *e, unsigned int i)
{
	return i < e->nctx ? e->ctxs[i] : NULL;
}

void *sched_ctx_priv(const struct sched_ctx *c)
{
	return c->cfg.priv;
}

/* Virtual times and budgets start afresh under the new policy; contexts
 * keep their place in line by requeueing in their old arrival order. */
int sched_set_policy(struct sched_engine *e, enum sched_policy p,
		     uint64_t slice_ns, uint64_t now)
{
	struct sched_heap old = { 0 };

	if ((unsigned int)p >= SCHED_POLICY_COUNT || !slice_ok(slice_ns))
		return -EINVAL;
	if (sched_heap_reserve(&old, e->cap_ctx ? e->cap_ctx : 1))
		return -ENOMEM;
	for (unsigned int i = 0; i < e->nctx; i++) {
		struct sched_ctx *c = e->ctxs[i];

		if (c->q != SCHED_Q_NONE)
			sched_heap_push(&old, c->ready_at, c->idx, c);
		dequeue(c);
	}
	e->cfg.policy = p;
	e->cfg.slice_ns = slice_ns;
	engine_refresh(e);
	for (unsigned int i = 0; i < e->nctx; i++) {
		struct sched_ctx *c = e->ctxs[i];

		c->vt = e->vclock;
		c->overrun_vt = 0;
		c->budget = budget_depth(e);
		c->budget_at = now;
		c->rsv_left = 0;
		c->rsv_new = true;
	}
	while (old.n) {
		struct sched_ctx *c = pop_top(&old);

		enqueue(c, c->ready_at);
	}
	sched_heap_free(&old);
	return 0;
}
