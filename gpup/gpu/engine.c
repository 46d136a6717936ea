// SPDX-License-Identifier: MIT
/*
 * Engine executors (see gpu.h for the model): the thread, its epoll set
 * of doorbells, context states, and the calls into the scheduler ops.
 *
 * A context is BLOCKED (no work), RUNNABLE (the scheduler may pick it) or
 * WAITING (blocked on a WAIT command, re-polled at retry_at).  The engine
 * lock guards every field below and every context's private fields; the
 * run op is called without it.  Epoll events carry (generation, slot)
 * rather than a pointer, so an event that raced with a detach is recognised
 * as stale instead of touching freed memory.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "gpup/gpu/gpu.h"

enum { CTX_BLOCKED, CTX_RUNNABLE, CTX_WAITING };

#define ENGINE_MAX_EVENTS 32

struct gpup_engine {
	pthread_mutex_t lock;
	pthread_cond_t idle;         /* a context stopped running */
	pthread_t thread;
	int epfd, wakefd;
	bool stop;
	bool halted;                 /* its GPU failed: nothing runs any more */
	enum gpup_engine_kind kind;
	char name[16];
	const struct gpup_sched_ops *sops;
	void *sched;
	struct gpup_ectx **slots;
	uint32_t *gen;
	uint32_t nslots;
	uint64_t busy_ns;
	uint64_t next_watchdog;
	unsigned int nwaiting;       /* contexts in CTX_WAITING; read racily */
	unsigned int nrunnable;      /* contexts in CTX_RUNNABLE */
	unsigned int recheck_gen;    /* bumped by every gpup_engine_recheck */
	unsigned int nwatch;         /* contexts with watch_until set */
	uint64_t watch_next;         /* watch_poll's answer: the next look due */
	/* The thread's start: thread_init's answer, awaited by create. */
	int (*thread_init)(void);
	int init_rc;
	bool init_done;
	/* The running slice's preemption polls: executor thread only. */
	struct gpup_ectx *cur;       /* the context whose run op is running */
	uint64_t next_poll;          /* engine time of the next look */
	bool yield;                  /* the scheduler asked to end it */
};

uint64_t gpup_mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* Move c to state st, telling the scheduler when runnability changes. */
static void ctx_set_state(struct gpup_engine *e, struct gpup_ectx *c, uint32_t st,
			  uint64_t now)
{
	if (c->state == st)
		return;
	e->nrunnable += (st == CTX_RUNNABLE) - (c->state == CTX_RUNNABLE);
	if (st == CTX_WAITING)
		__atomic_add_fetch(&e->nwaiting, 1, __ATOMIC_SEQ_CST);
	else if (c->state == CTX_WAITING)
		__atomic_sub_fetch(&e->nwaiting, 1, __ATOMIC_SEQ_CST);
	if (st == CTX_RUNNABLE)
		e->sops->wake(e->sched, c, now);
	else if (c->state == CTX_RUNNABLE && st == CTX_WAITING && e->sops->stall)
		e->sops->stall(e->sched, c, now);
	else if (c->state == CTX_RUNNABLE)
		e->sops->block(e->sched, c, now);
	c->state = st;
}

static void engine_signal(struct gpup_engine *e)
{
	uint64_t one = 1;

	/* Not perror, which dups stderr: an engine thread may be confined. */
	if (write(e->wakefd, &one, sizeof(one)) < 0 && errno != EAGAIN)
		fprintf(stderr, "gpup engine: wake: %s\n", strerror(errno));
}

static void drain_fd(int fd, uint64_t *count)
{
	uint64_t v;

	if (read(fd, &v, sizeof(v)) == (ssize_t)sizeof(v) && count)
		*count += v;
}

static void handle_events(struct gpup_engine *e, const struct epoll_event *ev, int n)
{
	uint64_t now = gpup_mono_ns();

	for (int i = 0; i < n; i++) {
		uint64_t d = ev[i].data.u64;
		uint32_t slot = (uint32_t)d, gen = (uint32_t)(d >> 32);

		if (d == 0) {
			drain_fd(e->wakefd, NULL);
			continue;
		}
		slot--;
		if (slot >= e->nslots || !e->slots[slot] || e->gen[slot] != gen)
			continue; /* detached since epoll_wait returned */
		struct gpup_ectx *c = e->slots[slot];

		drain_fd(c->doorbell_fd, &c->doorbells);
		/* Seen mid-run (a preemption poll): its run may have looked
		 * at its ring before this doorbell, so keep it runnable. */
		if (c->running)
			c->kicked = true;
		if (!c->detaching)
			ctx_set_state(e, c, CTX_RUNNABLE, now);
	}
}

/* Wake WAITING contexts that are due; returns the next retry time. */
static uint64_t wake_due(struct gpup_engine *e, uint64_t now)
{
	uint64_t next = UINT64_MAX;

	for (uint32_t i = 0; i < e->nslots; i++) {
		struct gpup_ectx *c = e->slots[i];

		if (!c || c->state != CTX_WAITING)
			continue;
		if (c->retry_at <= now)
			ctx_set_state(e, c, CTX_RUNNABLE, now);
		else if (c->retry_at < next)
			next = c->retry_at;
	}
	return next;
}

static void poll_events(struct gpup_engine *e, uint64_t until)
{
	struct epoll_event ev[ENGINE_MAX_EVENTS];
	struct timespec ts, *tsp = NULL;
	int n;

	if (until != UINT64_MAX) {
		uint64_t now = gpup_mono_ns(), d = until > now ? until - now : 0;

		ts.tv_sec = (time_t)(d / 1000000000ull);
		ts.tv_nsec = (long)(d % 1000000000ull);
		tsp = &ts;
	}
	/* Sleep unlocked only when a sleep is asked for. */
	if (!tsp || ts.tv_sec || ts.tv_nsec) {
		pthread_mutex_unlock(&e->lock);
		n = epoll_pwait2(e->epfd, ev, ENGINE_MAX_EVENTS, tsp, NULL);
		pthread_mutex_lock(&e->lock);
	} else {
		n = epoll_wait(e->epfd, ev, ENGINE_MAX_EVENTS, 0);
	}
	if (n > 0)
		handle_events(e, ev, n);
}

static void watch_end(struct gpup_engine *e, struct gpup_ectx *c)
{
	if (c->watch_until) {
		c->watch_until = 0;
		e->nwatch--;
	}
}

static uint64_t min_ns(uint64_t a, uint64_t b)
{
	return a < b ? a : b;
}

uint64_t gpup_engine_watch_gap(uint64_t watched_ns)
{
	uint64_t gap = watched_ns / GPUP_ENGINE_WATCH_BACKOFF;

	return gap > GPUP_ENGINE_WATCH_POLL_NS ? gap : GPUP_ENGINE_WATCH_POLL_NS;
}

/* Ask each watched context whether work appeared (see DOC: watching a
 * ring); one whose time is up is asked a last time with stop (lock held).
 * Sets when the next look is due: the soonest of the contexts still
 * watched, never past the end of a window. */
static void watch_poll(struct gpup_engine *e, uint64_t now)
{
	e->watch_next = UINT64_MAX;
	for (uint32_t i = 0; i < e->nslots && e->nwatch; i++) {
		struct gpup_ectx *c = e->slots[i];

		if (!c || !c->watch_until)
			continue;
		if (c->running) { /* its owner has it: look again soon */
			e->watch_next = min_ns(e->watch_next, now + GPUP_ENGINE_WATCH_POLL_NS);
			continue;
		}
		/* Woken meanwhile (a doorbell): its run takes over. */
		if (c->state != CTX_BLOCKED || c->detaching) {
			watch_end(e, c);
			continue;
		}
		bool stop = now >= c->watch_until;

		if (c->ops->watch(c, stop)) {
			watch_end(e, c);
			ctx_set_state(e, c, CTX_RUNNABLE, now);
		} else if (stop) {
			watch_end(e, c);
		} else {
			uint64_t at = now + gpup_engine_watch_gap(now - c->watch_from);

			e->watch_next = min_ns(e->watch_next, min_ns(at, c->watch_until));
		}
	}
}

/* A wait that lasts is polled less often: most are short, and a long one
 * satisfied by a fence is re-polled at once through gpup_engine_recheck. */
static void wait_backoff(struct gpup_ectx *c, enum gpup_run_result res, uint64_t now)
{
	if (res != GPUP_RUN_WAIT) {
		c->retry_ns = 0;
		return;
	}
	c->retry_ns = c->retry_ns ? c->retry_ns * 2 : GPUP_ENGINE_WAIT_POLL_NS;
	if (c->retry_ns > GPUP_ENGINE_WAIT_POLL_MAX_NS)
		c->retry_ns = GPUP_ENGINE_WAIT_POLL_MAX_NS;
	c->retry_at = now + c->retry_ns;
}

/* gpup_slice_over's hook while a context runs (see DOC: preemption by
 * wake).  Polls are spaced in engine time so that their cost stays a fixed
 * small fraction of it; once the scheduler said yield, the answer stands
 * until the run op returns. */
static bool preempt_poll(void *arg, uint64_t cpu_ns)
{
	struct gpup_engine *e = arg;
	struct epoll_event ev[ENGINE_MAX_EVENTS];

	if (e->yield || cpu_ns < e->next_poll)
		return e->yield;
	e->next_poll = cpu_ns + GPUP_ENGINE_PREEMPT_POLL_NS;
	int n = epoll_wait(e->epfd, ev, ENGINE_MAX_EVENTS, 0);

	pthread_mutex_lock(&e->lock);
	if (n > 0)
		handle_events(e, ev, n);
	if (e->nwatch)
		watch_poll(e, gpup_mono_ns());
	/* A context being detached (its owner stops it for a migration or a
	 * move) stops here, not at the end of a slice that fifo makes an
	 * hour long.  The scheduler may have been swapped for one that never
	 * preempts. */
	if (e->cur->detaching || e->halted)
		e->yield = true;
	else if (e->sops->preempt)
		e->yield = e->sops->preempt(e->sched, e->cur, gpup_mono_ns());
	pthread_mutex_unlock(&e->lock);
	return e->yield;
}

/* The engine whose run op this thread is in. */
static _Thread_local struct gpup_engine *running_engine;

bool gpup_engine_contended(void)
{
	struct gpup_engine *e = running_engine;
	struct epoll_event ev[ENGINE_MAX_EVENTS];
	bool busy;
	int n;

	if (!e || !e->cur)
		return false;
	n = epoll_wait(e->epfd, ev, ENGINE_MAX_EVENTS, 0);
	pthread_mutex_lock(&e->lock);
	if (n > 0)
		handle_events(e, ev, n);
	wake_due(e, gpup_mono_ns());
	busy = e->stop || e->cur->detaching ||
	       e->nrunnable > (e->cur->state == CTX_RUNNABLE ? 1u : 0u);
	pthread_mutex_unlock(&e->lock);
	return busy;
}

/* Run c's op for at most slice ns of engine time, with preemption polls
 * when the scheduler can ask for them; returns the engine time used. */
static uint64_t run_op(struct gpup_engine *e, struct gpup_ectx *c, uint64_t slice,
		       enum gpup_run_result *res)
{
	bool poll = e->sops->preempt != NULL;

	c->running = true;
	c->kicked = false;
	e->cur = c;
	e->yield = false;
	pthread_mutex_unlock(&e->lock);
	uint64_t t0 = gpup_thread_cpu_ns();

	e->next_poll = t0 + GPUP_ENGINE_PREEMPT_POLL_NS;
	gpup_slice_hook(poll ? preempt_poll : NULL, e);
	running_engine = e;
	*res = c->ops->run(c, t0 + slice);
	running_engine = NULL;
	gpup_slice_hook(NULL, NULL);
	uint64_t ran = gpup_thread_cpu_ns() - t0;

	pthread_mutex_lock(&e->lock);
	c->running = false;
	e->cur = NULL;
	return ran;
}

static void run_one(struct gpup_engine *e, struct gpup_ectx *c, uint64_t slice)
{
	uint64_t progress = c->progress;
	unsigned int gen = __atomic_load_n(&e->recheck_gen, __ATOMIC_SEQ_CST);
	enum gpup_run_result res;
	uint64_t ran, now;

	watch_end(e, c);
	ran = run_op(e, c, slice, &res);
	now = gpup_mono_ns();
	c->engine_ns += ran;
	c->slices++;
	e->busy_ns += ran;
	/* To the scheduler a watched context is an idle one. */
	e->sops->account(e->sched, c, ran, now, res == GPUP_RUN_WATCH ? GPUP_RUN_IDLE : res);
	if (c->progress != progress && e->sops->progress)
		e->sops->progress(e->sched, c, now);
	if (c->detaching) {
		ctx_set_state(e, c, CTX_BLOCKED, now);
		pthread_cond_broadcast(&e->idle);
	} else if (res == GPUP_RUN_MORE) {
		c->preemptions++;
		c->yields += e->yield;
	} else if (!c->kicked) {
		ctx_set_state(e, c, res == GPUP_RUN_WAIT ? CTX_WAITING : CTX_BLOCKED, now);
		if (res == GPUP_RUN_WATCH && c->ops->watch) {
			c->watch_from = now;
			c->watch_until = now + GPUP_ENGINE_WATCH_NS;
			e->nwatch++;
		}
		/* Counted as waiting before the check, so that a recheck
		 * racing with this either sees the count or is seen here. */
		if (res == GPUP_RUN_WAIT &&
		    __atomic_load_n(&e->recheck_gen, __ATOMIC_SEQ_CST) != gen)
			ctx_set_state(e, c, CTX_RUNNABLE, now);
	}
	wait_backoff(c, res, now);
}

/* Hand contexts the scheduler finds stuck to their owners.  Marked
 * running meanwhile, so that a detach waits for the owner to finish.  The
 * lock is dropped for each owner, so the others are found again by slot
 * and generation: one may have been detached (and freed) meanwhile. */
static void watchdog_poll(struct gpup_engine *e, uint64_t now)
{
	struct gpup_ectx *stuck[8];
	uint32_t slot[8], gen[8];

	if (!e->sops->watchdog || now < e->next_watchdog)
		return;
	e->next_watchdog = now + GPUP_ENGINE_WATCHDOG_PERIOD_NS;
	unsigned int n = e->sops->watchdog(e->sched, now, stuck, 8);

	for (unsigned int i = 0; i < n; i++) {
		slot[i] = stuck[i]->slot;
		gen[i] = e->gen[slot[i]];
	}
	for (unsigned int i = 0; i < n; i++) {
		struct gpup_ectx *c = e->slots[slot[i]];

		if (c != stuck[i] || e->gen[slot[i]] != gen[i] || c->detaching || !c->ops->stuck)
			continue;
		c->running = true;
		pthread_mutex_unlock(&e->lock);
		c->ops->stuck(c);
		pthread_mutex_lock(&e->lock);
		c->running = false;
		if (c->detaching)
			pthread_cond_broadcast(&e->idle);
	}
}

/* Name the thread, run the owner's thread_init and tell create how it
 * went (under the lock, which the loop then keeps). */
static int engine_start(struct gpup_engine *e)
{
	int rc;

	pthread_setname_np(pthread_self(), e->name);
	rc = e->thread_init ? e->thread_init() : 0;
	pthread_mutex_lock(&e->lock);
	e->init_rc = rc;
	e->init_done = true;
	pthread_cond_broadcast(&e->idle);
	return rc;
}

static void *engine_main(void *arg)
{
	struct gpup_engine *e = arg;

	if (engine_start(e)) {
		pthread_mutex_unlock(&e->lock);
		return NULL;
	}
	while (!e->stop) {
		uint64_t now = gpup_mono_ns(), slice = UINT64_MAX;
		uint64_t next = wake_due(e, now);

		poll_events(e, now); /* doorbells rung while others ran */
		if (e->halted) {
			/* A failed GPU: doorbells are taken and nothing runs,
			 * but attach and detach still work, so that the
			 * partitions on it can be recovered or torn down. */
			poll_events(e, now + GPUP_ENGINE_HALT_POLL_NS);
			continue;
		}
		watchdog_poll(e, now);
		if (e->nwatch)
			watch_poll(e, now);
		struct gpup_ectx *c = e->sops->pick(e->sched, now, &slice);

		if (c) {
			run_one(e, c, slice);
			continue;
		}
		/* Sleep until a doorbell, a WAIT re-poll, the next look at a
		 * watched ring, or the moment the scheduler says a throttled
		 * context may run. */
		if (slice != UINT64_MAX && (next == UINT64_MAX || slice < next - now))
			next = now + slice;
		if (e->nwatch && next > e->watch_next)
			next = e->watch_next;
		poll_events(e, next);
	}
	pthread_mutex_unlock(&e->lock);
	return NULL;
}

/* Wait for the new thread's thread_init: 0 or its -errno (the thread
 * has then ended and is joined). */
static int await_start(struct gpup_engine *e)
{
	int rc;

	pthread_mutex_lock(&e->lock);
	while (!e->init_done)
		pthread_cond_wait(&e->idle, &e->lock);
	rc = e->init_rc;
	pthread_mutex_unlock(&e->lock);
	if (rc)
		pthread_join(e->thread, NULL);
	return rc;
}

struct gpup_engine *gpup_engine_create(enum gpup_engine_kind kind, unsigned int index,
				       const char *gpu_name, int (*thread_init)(void))
{
	struct gpup_engine *e = calloc(1, sizeof(*e));
	struct epoll_event ev = { .events = EPOLLIN, .data.u64 = 0 };

	if (!e)
		return NULL;
	e->kind = kind;
	e->thread_init = thread_init;
	e->epfd = epoll_create1(EPOLL_CLOEXEC);
	e->wakefd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	snprintf(e->name, sizeof(e->name), "%.6s-%s%u", gpu_name,
		 kind == GPUP_ENGINE_KIND_COPY ? "copy" : "comp", index);
	pthread_mutex_init(&e->lock, NULL);
	pthread_cond_init(&e->idle, NULL);
	e->sops = &gpup_sched_tslice;
	e->sched = e->sops->create(e, NULL);
	if (e->epfd < 0 || e->wakefd < 0 || !e->sched ||
	    epoll_ctl(e->epfd, EPOLL_CTL_ADD, e->wakefd, &ev) < 0)
		goto err;
	errno = pthread_create(&e->thread, NULL, engine_main, e);
	if (!errno)
		errno = -await_start(e);
	if (errno)
		goto err;
	return e;
err:;
	int saved = errno ? errno : ENOMEM;

	if (e->sched)
		e->sops->destroy(e->sched);
	if (e->epfd >= 0)
		close(e->epfd);
	if (e->wakefd >= 0)
		close(e->wakefd);
	pthread_cond_destroy(&e->idle);
	pthread_mutex_destroy(&e->lock);
	free(e);
	errno = saved;
	return NULL;
}

void gpup_engine_destroy(struct gpup_engine *e)
{
	if (!e)
		return;
	pthread_mutex_lock(&e->lock);
	e->stop = true;
	engine_signal(e);
	pthread_mutex_unlock(&e->lock);
	pthread_join(e->thread, NULL);
	/* Contexts left attached (their owner outlived the GPU) are cut
	 * loose, so a later detach is a no-op rather than a use after free. */
	for (uint32_t i = 0; i < e->nslots; i++) {
		if (e->slots[i]) {
			e->sops->remove(e->sched, e->slots[i]);
			e->slots[i]->engine = NULL;
		}
	}
	e->sops->destroy(e->sched);
	close(e->epfd);
	close(e->wakefd);
	free(e->slots);
	free(e->gen);
	pthread_cond_destroy(&e->idle);
	pthread_mutex_destroy(&e->lock);
	free(e);
}

static int slot_alloc(struct gpup_engine *e, uint32_t *slot)
{
	for (uint32_t i = 0; i < e->nslots; i++) {
		if (!e->slots[i]) {
			*slot = i;
			return 0;
		}
	}
	uint32_t n = e->nslots ? e->nslots * 2 : 8;
	struct gpup_ectx **s = realloc(e->slots, n * sizeof(*s));

	if (!s)
		return -ENOMEM;
	e->slots = s;
	uint32_t *g = realloc(e->gen, n * sizeof(*g));

	if (!g)
		return -ENOMEM;
	e->gen = g;
	memset(s + e->nslots, 0, (n - e->nslots) * sizeof(*s));
	memset(g + e->nslots, 0, (n - e->nslots) * sizeof(*g));
	*slot = e->nslots;
	e->nslots = n;
	return 0;
}

int gpup_engine_attach(struct gpup_engine *e, struct gpup_ectx *c)
{
	uint32_t slot;
	int r;

	pthread_mutex_lock(&e->lock);
	r = slot_alloc(e, &slot);
	if (r)
		goto out;
	c->engine = e;
	c->slot = slot;
	c->state = CTX_BLOCKED;
	c->running = c->kicked = c->detaching = false;
	c->watch_until = 0;
	r = e->sops->add(e->sched, c);
	if (r)
		goto out;
	e->gen[slot]++;
	struct epoll_event ev = {
		.events = EPOLLIN,
		.data.u64 = ((uint64_t)e->gen[slot] << 32) | (slot + 1),
	};

	if (c->doorbell_fd >= 0 && epoll_ctl(e->epfd, EPOLL_CTL_ADD, c->doorbell_fd, &ev) < 0) {
		r = -errno;
		e->sops->remove(e->sched, c);
		goto out;
	}
	e->slots[slot] = c;
out:
	if (r)
		c->engine = NULL;
	pthread_mutex_unlock(&e->lock);
	return r;
}

void gpup_engine_detach(struct gpup_ectx *c)
{
	struct gpup_engine *e = c->engine;

	if (!e)
		return;
	pthread_mutex_lock(&e->lock);
	c->detaching = true;
	if (c->doorbell_fd >= 0)
		epoll_ctl(e->epfd, EPOLL_CTL_DEL, c->doorbell_fd, NULL);
	while (c->running)
		pthread_cond_wait(&e->idle, &e->lock);
	ctx_set_state(e, c, CTX_BLOCKED, gpup_mono_ns());
	watch_end(e, c);
	e->sops->remove(e->sched, c);
	e->slots[c->slot] = NULL;
	e->gen[c->slot]++;
	c->engine = NULL;
	c->detaching = false;
	pthread_mutex_unlock(&e->lock);
}

void gpup_engine_halt(struct gpup_engine *e)
{
	pthread_mutex_lock(&e->lock);
	e->halted = true;
	engine_signal(e);
	pthread_mutex_unlock(&e->lock);
}

void gpup_ectx_kick(struct gpup_ectx *c)
{
	struct gpup_engine *e = c->engine;

	if (!e)
		return;
	pthread_mutex_lock(&e->lock);
	if (c->running)
		c->kicked = true;
	else if (!c->detaching)
		ctx_set_state(e, c, CTX_RUNNABLE, gpup_mono_ns());
	engine_signal(e);
	pthread_mutex_unlock(&e->lock);
}

void gpup_engine_recheck(struct gpup_engine *e)
{
	/* A context polling right now sees the bump when its run returns. */
	__atomic_add_fetch(&e->recheck_gen, 1, __ATOMIC_SEQ_CST);
	if (!__atomic_load_n(&e->nwaiting, __ATOMIC_SEQ_CST))
		return;
	pthread_mutex_lock(&e->lock);
	for (uint32_t i = 0; i < e->nslots; i++) {
		struct gpup_ectx *c = e->slots[i];

		if (c && c->state == CTX_WAITING) {
			c->retry_at = 0;
			c->retry_ns = 0;
		}
	}
	engine_signal(e);
	pthread_mutex_unlock(&e->lock);
}

void gpup_ectx_stats(struct gpup_ectx *c, struct gpup_ectx_stats *st)
{
	struct gpup_engine *e = c->engine;

	if (e)
		pthread_mutex_lock(&e->lock);
	st->engine_ns = c->engine_ns;
	st->slices = c->slices;
	st->doorbells = c->doorbells;
	st->preemptions = c->preemptions;
	st->yields = c->yields;
	if (e)
		pthread_mutex_unlock(&e->lock);
}

/* Add every attached context to a new scheduler; undo on failure. */
static int sched_adopt(struct gpup_engine *e, const struct gpup_sched_ops *ops, void *s)
{
	uint64_t now = gpup_mono_ns();

	for (uint32_t i = 0; i < e->nslots; i++) {
		struct gpup_ectx *c = e->slots[i];
		int r = c ? ops->add(s, c) : 0;

		if (r) {
			while (i--)
				if (e->slots[i])
					ops->remove(s, e->slots[i]);
			return r;
		}
		if (c && c->state == CTX_RUNNABLE)
			ops->wake(s, c, now);
	}
	return 0;
}

int gpup_engine_set_sched(struct gpup_engine *e, const struct gpup_sched_ops *ops,
			  const void *arg)
{
	int r = 0;

	pthread_mutex_lock(&e->lock);
	void *s = ops->create(e, arg);

	if (!s) {
		r = -ENOMEM;
		goto out;
	}
	/* The old scheduler's per-context data must go before the new one
	 * claims sched_priv. */
	for (uint32_t i = 0; i < e->nslots; i++)
		if (e->slots[i])
			e->sops->remove(e->sched, e->slots[i]);
	r = sched_adopt(e, ops, s);
	if (r) {
		ops->destroy(s);
		sched_adopt(e, e->sops, e->sched);
		goto out;
	}
	e->sops->destroy(e->sched);
	e->sops = ops;
	e->sched = s;
	engine_signal(e);
out:
	pthread_mutex_unlock(&e->lock);
	return r;
}

int gpup_engine_sched_call(struct gpup_engine *e, const struct gpup_sched_ops *ops,
			   int (*fn)(void *sched, void *arg), void *arg)
{
	int r = -EINVAL;

	pthread_mutex_lock(&e->lock);
	if (e->sops == ops) {
		r = fn(e->sched, arg);
		engine_signal(e); /* a new policy may let someone run now */
	}
	pthread_mutex_unlock(&e->lock);
	return r;
}

enum gpup_engine_kind gpup_engine_kind(const struct gpup_engine *e)
{
	return e->kind;
}

uint64_t gpup_engine_busy_ns(struct gpup_engine *e)
{
	pthread_mutex_lock(&e->lock);
	uint64_t v = e->busy_ns;

	pthread_mutex_unlock(&e->lock);
	return v;
}
