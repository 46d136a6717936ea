// SPDX-License-Identifier: MIT
/*
 * The watchdog's partition reset.  The scheduler's watchdog reports a hung
 * queue on its engine thread (vgpu_cmd.c records the WATCHDOG fault there),
 * but a reset waits for every engine to drop the partition's queues, so
 * that thread cannot do it: it only marks the reset owed and starts a
 * short-lived reset thread, which takes cfg_lock like any control-plane
 * call and pays it.  A BAR0 write that comes first pays it itself, so
 * whatever the guest writes after the fault is never undone by a reset
 * arriving late.
 *
 * Lifetime: vgpu_destroy marks the vgpu dying, then detaches its queues;
 * a detach waits for a watchdog report on that queue to end, so once all
 * are detached no new thread can start, and the last one is joined
 * before the vgpu is freed.  A thread that starts after destroy took
 * cfg_lock finds the vgpu dying and leaves it alone.
 *
 * Confinement: the reset thread is started by an engine thread and
 * inherits its seccomp filter, if the engine's owner installed one
 * (gpup_gpu_cfg.thread_init); it needs no hook of its own.
 */
#include <stdio.h>
#include <string.h>

#include "gpup/vgpu/vgpu_int.h"

static void *wd_main(void *arg)
{
	struct vgpu *v = arg;

	pthread_mutex_lock(&v->cfg_lock);
	pthread_mutex_lock(&v->lock);
	while (v->wd_pending && !v->dying) {
		pthread_mutex_unlock(&v->lock);
		vgpu_reset_cfg_locked(v, true);
		pthread_mutex_lock(&v->lock);
	}
	/* From here on this thread blocks on nothing, so a new request may
	 * join it from an engine thread. */
	v->wd_busy = false;
	pthread_mutex_unlock(&v->lock);
	pthread_mutex_unlock(&v->cfg_lock);
	return NULL;
}

void vgpu_wd_request(struct vgpu *v)
{
	pthread_t old = 0;
	bool join = false;
	int r = 0;

	pthread_mutex_lock(&v->lock);
	if (v->wd_pending && !v->wd_busy && !v->dying) {
		join = v->wd_joinable;
		old = v->wd_thread;
		/* Created under lock, so the thread cannot clear wd_busy before
		 * wd_thread and wd_joinable say who it is. */
		r = pthread_create(&v->wd_thread, NULL, wd_main, v);
		v->wd_busy = v->wd_joinable = !r;
	}
	pthread_mutex_unlock(&v->lock);
	if (join)
		pthread_join(old, NULL);
	if (r)
		fprintf(stderr, "gpup vgpu %s: watchdog reset thread: %s; the partition resets "
			"at its guest's next register write\n", v->name, strerror(r));
}

void vgpu_wd_flush(struct vgpu *v)
{
	pthread_mutex_lock(&v->lock);
	bool owed = v->wd_pending;

	pthread_mutex_unlock(&v->lock);
	if (owed)
		vgpu_reset_cfg_locked(v, true);
}

void vgpu_wd_join(struct vgpu *v)
{
	pthread_mutex_lock(&v->lock);
	bool join = v->wd_joinable;

	v->wd_joinable = false;
	pthread_mutex_unlock(&v->lock);
	if (join)
		pthread_join(v->wd_thread, NULL);
}
