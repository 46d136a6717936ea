// SPDX-License-Identifier: MIT
/*
 * Continuous protection of partitions (docs/MIGRATION.md, "Failover"):
 * the `protect` control method, and one thread per protected partition
 * that writes a checkpoint link of it every interval (vgpu_protect_take)
 * into its store.  A thread of its own, not the control loop, so that a
 * slow store stalls neither control clients nor other partitions; the
 * guest is stopped only for each link's final copy.
 *
 * A protection is kept in the partition's definition, so it starts again
 * with the daemon; it stops with the partition (destroy, shutdown) and
 * pauses for a move (dmn_protect_hold), after which it goes on where the
 * partition now runs.  After a recovery it starts over with a new base.
 * Its thread runs no guest-controlled parser: it copies VRAM bytes and
 * writes files, and is confined as the control loop is.
 */
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "gpup/base/base.h"
#include "gpup/ctl/ctl.h"
#include "gpup/daemon/daemon_int.h"
#include "gpup/gpu/gpu.h"
#include "gpup/vgpu/vgpu.h"
#include "uapi/gpup_ctl.h"

/* Increments between two bases: the chain's bound. */
#define PROTECT_MAX_LINKS 64u
#define PROTECT_MAX_MS 3600000u

struct dmn_protect {
	struct dmn_part *dp;
	struct vgpu_protect *vp;
	uint32_t every_ms;
	char store[256];
	pthread_t thread;
	pthread_mutex_t lock;         /* what follows, and stop */
	pthread_cond_t wake;
	bool stop;
	/* Held while a link is taken; a move or a recovery takes it too. */
	pthread_mutex_t take_lock;
	uint64_t links, bases, busy, failures;
	struct vgpu_protect_link last;
	char error[256];              /* the last failure, "" once a link works */
};

static void add_u64(json_object *o, const char *k, uint64_t v)
{
	json_object_object_add(o, k, json_object_new_int64((int64_t)v));
}

static void took(struct dmn_protect *pr, int r, const struct vgpu_protect_link *l,
		 const char *err)
{
	bool was_failing;

	pthread_mutex_lock(&pr->lock);
	was_failing = pr->error[0];
	if (!r) {
		pr->last = *l;
		pr->links++;
		pr->bases += l->base;
		pr->error[0] = 0;
	} else if (r == -EBUSY || r == -ECANCELED) {
		pr->busy++;
	} else {
		pr->failures++;
		snprintf(pr->error, sizeof(pr->error), "%s", err);
	}
	pthread_mutex_unlock(&pr->lock);
	/* One line when it starts failing and one when it works again. */
	if (r && r != -EBUSY && r != -ECANCELED && !was_failing)
		gpup_daemon_log("partition %s: protection link failed: %s", pr->dp->part->uuid, err);
	else if (!r && was_failing)
		gpup_daemon_log("partition %s: protection works again (link %u)", pr->dp->part->uuid,
				l->index);
}

static struct timespec mono_after(uint64_t ns)
{
	uint64_t t = gpup_mono_ns() + ns;

	return (struct timespec){ .tv_sec = (time_t)(t / 1000000000ull),
				  .tv_nsec = (long)(t % 1000000000ull) };
}

/* A link every interval, counted from each link's start: one that took
 * longer than the interval is followed by the next at once. */
static void *protect_main(void *arg)
{
	struct dmn_protect *pr = arg;
	struct vgpu_protect_link l;
	struct timespec next;
	char err[256];
	int r;

	pthread_setname_np(pthread_self(), "gpup-protect");
	pthread_mutex_lock(&pr->lock);
	while (!pr->stop) {
		next = mono_after((uint64_t)pr->every_ms * 1000000ull);
		pthread_mutex_unlock(&pr->lock);
		pthread_mutex_lock(&pr->take_lock);
		err[0] = 0;
		r = vgpu_protect_take(pr->vp, &l, err, sizeof(err));
		pthread_mutex_unlock(&pr->take_lock);
		took(pr, r, &l, err);
		pthread_mutex_lock(&pr->lock);
		while (!pr->stop && pthread_cond_timedwait(&pr->wake, &pr->lock, &next) != ETIMEDOUT)
			;
	}
	pthread_mutex_unlock(&pr->lock);
	return NULL;
}

static void protect_free(struct dmn_protect *pr)
{
	vgpu_protect_destroy(pr->vp);
	pthread_mutex_destroy(&pr->lock);
	pthread_mutex_destroy(&pr->take_lock);
	pthread_cond_destroy(&pr->wake);
	free(pr);
}

/* Start protecting dp every every_ms into store: 0 or -errno. */
static int protect_start(struct dmn_part *dp, uint32_t every_ms, const char *store)
{
	struct dmn_protect *pr = calloc(1, sizeof(*pr));
	pthread_condattr_t ca;
	int r;

	if (!pr)
		return -ENOMEM;
	pr->dp = dp;
	pr->every_ms = every_ms;
	snprintf(pr->store, sizeof(pr->store), "%s", store);
	pthread_mutex_init(&pr->lock, NULL);
	pthread_mutex_init(&pr->take_lock, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&pr->wake, &ca);
	pthread_condattr_destroy(&ca);
	r = gpup_mkdir_p(store, 0700);
	pr->vp = r ? NULL : vgpu_protect_create(dp->vgpu, store, dp->part->uuid, PROTECT_MAX_LINKS);
	if (!r && !pr->vp)
		r = -errno;
	if (!r && (r = -pthread_create(&pr->thread, NULL, protect_main, pr)) == 0) {
		dp->prot = pr;
		return 0;
	}
	protect_free(pr);
	return r;
}

void dmn_protect_stop(struct dmn_part *dp)
{
	struct dmn_protect *pr = dp ? dp->prot : NULL;

	if (!pr)
		return;
	pthread_mutex_lock(&pr->lock);
	pr->stop = true;
	pthread_cond_signal(&pr->wake);
	pthread_mutex_unlock(&pr->lock);
	/* A link under way is dropped, not finished: a recovery waits. */
	vgpu_protect_cancel(pr->vp);
	pthread_join(pr->thread, NULL);
	protect_free(pr);
	dp->prot = NULL;
}

int dmn_protect_resume_saved(struct gpup_daemon *d, struct dmn_part *dp)
{
	struct gpup_partition *p = dp->part;
	int r;

	(void)d;
	if (!p->protect_ms || dp->prot)
		return 0;
	r = protect_start(dp, p->protect_ms, p->protect_store);
	if (r)
		gpup_daemon_log("partition %s: cannot protect it into %s: %s", p->uuid,
				p->protect_store, strerror(-r));
	return r;
}

void dmn_protect_hold(struct dmn_part *dp, bool on)
{
	if (!dp->prot)
		return;
	if (on)
		pthread_mutex_lock(&dp->prot->take_lock);
	else
		pthread_mutex_unlock(&dp->prot->take_lock);
}

bool dmn_protect_last(struct dmn_part *dp, struct vgpu_protect_link *l, char *store,
		      size_t len)
{
	struct dmn_protect *pr = dp->prot;
	bool have;

	if (!pr)
		return false;
	pthread_mutex_lock(&pr->lock);
	have = pr->links > 0;
	*l = pr->last;
	pthread_mutex_unlock(&pr->lock);
	snprintf(store, len, "%s", pr->store);
	return have;
}

void dmn_protect_fields(struct dmn_part *dp, json_object *o)
{
	struct dmn_protect *pr = dp ? dp->prot : NULL;

	add_u64(o, GPUP_CTL_F_PROTECT_MS, pr ? pr->every_ms : 0);
	json_object_object_add(o, GPUP_CTL_F_STORE, pr ? json_object_new_string(pr->store) : NULL);
	if (!pr)
		return;
	pthread_mutex_lock(&pr->lock);
	add_u64(o, GPUP_CTL_F_LINKS, pr->links);
	add_u64(o, GPUP_CTL_F_BASES, pr->bases);
	add_u64(o, GPUP_CTL_F_LINK_INDEX, pr->last.index);
	add_u64(o, GPUP_CTL_F_LINK_AGE_MS,
		pr->links ? (gpup_mono_ns() - pr->last.taken_ns) / 1000000 : 0);
	add_u64(o, GPUP_CTL_F_LINK_PAUSE_US, pr->last.pause_ns / 1000);
	add_u64(o, GPUP_CTL_F_LINK_US, pr->last.total_ns / 1000);
	add_u64(o, GPUP_CTL_F_LINK_BYTES, pr->last.bytes);
	add_u64(o, GPUP_CTL_F_LINK_PAGES, pr->last.pages);
	json_object_object_add(o, GPUP_CTL_F_PROTECT_ERROR,
			       pr->error[0] ? json_object_new_string(pr->error) : NULL);
	pthread_mutex_unlock(&pr->lock);
}

static json_object *protect_reply(struct dmn_part *dp)
{
	json_object *r = gpup_ctl_ok();

	json_object_object_add(r, GPUP_CTL_F_UUID, json_object_new_string(dp->part->uuid));
	dmn_protect_fields(dp, r);
	return r;
}

/* The store a request names, or STATE_DIR/protect. */
static int req_store(struct gpup_daemon *d, json_object *req, char *store, size_t len,
		     json_object **fail)
{
	const char *s = gpup_ctl_str(req, GPUP_CTL_F_STORE, NULL);

	if (!s && !d->pool.state_dir) {
		*fail = gpup_ctl_fail(EINVAL, "this daemon keeps no state directory: give a store");
		return -EINVAL;
	}
	if (s && (s[0] != '/' || strlen(s) >= len)) {
		*fail = gpup_ctl_fail(EINVAL, "the store must be an absolute directory path "
					      "(at most %zu bytes)", len - 1);
		return -EINVAL;
	}
	if (s)
		snprintf(store, len, "%s", s);
	else if (snprintf(store, len, "%s/protect", d->pool.state_dir) >= (int)len)
		return *fail = gpup_ctl_fail(ENAMETOOLONG, "the state directory's path is too long"),
		       -ENAMETOOLONG;
	return 0;
}

json_object *dmn_ctl_protect(struct gpup_daemon *d, json_object *req)
{
	int64_t ms = gpup_ctl_int(req, GPUP_CTL_F_EVERY_MS, -1);
	json_object *fail = NULL;
	struct dmn_part *dp = dmn_req_part(d, req, &fail);
	char store[256];
	int r;

	if (!dp)
		return fail;
	if (ms < 0 || ms > PROTECT_MAX_MS)
		return gpup_ctl_fail(EINVAL, "every_ms must be 1..%u (0: stop protecting)",
				     PROTECT_MAX_MS);
	if (ms && req_store(d, req, store, sizeof(store), &fail))
		return fail;
	dmn_protect_stop(dp);
	r = gpup_pool_set_protect(&d->pool, dp->part, (uint32_t)ms, ms ? store : NULL);
	if (r)
		return gpup_ctl_fail(-r, "cannot save the protection of %s in its definition: %s",
				     dp->part->uuid, strerror(-r));
	if (!ms) {
		gpup_daemon_log("partition %s: no longer protected", dp->part->uuid);
		return protect_reply(dp);
	}
	r = protect_start(dp, (uint32_t)ms, store);
	if (r) {
		gpup_pool_set_protect(&d->pool, dp->part, 0, NULL);
		return gpup_ctl_fail(-r, "cannot protect %s into %s: %s", dp->part->uuid, store,
				     strerror(-r));
	}
	gpup_daemon_log("partition %s: protected every %lld ms into %s", dp->part->uuid,
			(long long)ms, store);
	return protect_reply(dp);
}
