// SPDX-License-Identifier: MIT
/*
 * Moving a running partition to another GPU (vgpu.h, docs/MIGRATION.md
 * "Moving a partition").  On the sim backend a partition's VRAM is a
 * file that the client maps as BAR2, so the partition moves with its
 * file instead of a copy of it, and the vgpu moves as itself: the
 * vfio-user server, the client's doorbell and interrupt eventfds and the
 * IOMMU domain never learn that anything happened.
 *
 * The steps, and what undoes each when a later one fails:
 *   1. adopt   the destination GPU shows the VRAM file at the new window
 *              (undone by releasing it there); the partition still runs
 *   2. stop    vgpu_quiesce: every queue leaves its engine at a command,
 *              chunk or work-group boundary (undone by resuming)
 *   3. save    the state blob of uapi/gpup_vgpu_state.h
 *   4. map     the destination's VRAM mapping
 *   5. re-home gpu, vram, vram_offset, kernels and the clock swapped, and
 *              the blob checked against the new home as a load checks
 *              it: every command in flight must be resumable there
 *              (undone by swapping back)
 *   6. attach  every parked queue onto the destination's engines, all or
 *              none (undone by swapping back)
 *   7. run     queues kicked; the source forgets the file's old window
 * The pause a guest can see is steps 2 to 7; none depends on VRAM size.
 * cfg_lock is held through them, so a BAR0 write made meanwhile waits for
 * the move and lands on the device where it runs next.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gpup/base/base.h"
#include "gpup/vgpu/vgpu_int.h"
#include "migrate/mig.h"
#include "uapi/gpup_vgpu_state.h"


/* The lowest feature of want that have lacks, by name. */
static const char *missing(uint32_t want, uint32_t have)
{
	return gpup_kernel_name((uint32_t)__builtin_ctz(want & ~have));
}

static int check(struct vgpu *v, struct gpup_gpu *gpu, uint64_t off, uint32_t kernels,
		 char *err, size_t errlen)
{
	struct gpup_gpu_desc d;
	uint32_t now = vgpu_kernels(v);

	gpup_gpu_describe(gpu, &d);
	if (gpu == v->gpu) {
		gpup_say(err, errlen, "it already runs on %s", d.name);
		return -EINVAL;
	}
	if (kernels & ~d.kernels) {
		gpup_say(err, errlen, "%s (%s) lacks the %s kernel", d.name, d.gen,
		    missing(kernels, d.kernels));
		return -EOPNOTSUPP;
	}
	if (now & ~kernels) {
		gpup_say(err, errlen, "its guest may use the %s kernel, which it would lose there",
		    missing(now, kernels));
		return -EOPNOTSUPP;
	}
	if (v->vram_size > d.vram_size || off > d.vram_size - v->vram_size) {
		gpup_say(err, errlen, "its window does not fit in %s's VRAM", d.name);
		return -EINVAL;
	}
	return 0;
}

/* See vgpu_int.h. */
void vgpu_swap_home(struct vgpu *v, struct vgpu_home *h)
{
	struct vgpu_home old = { v->gpu, v->vram, v->vram_offset, v->kernels };

	pthread_rwlock_wrlock(&v->home_lock);
	pthread_mutex_lock(&v->lock);
	v->clock_bias += (int64_t)(gpup_gpu_clock_ns(v->gpu) - gpup_gpu_clock_ns(h->gpu));
	v->gpu = h->gpu;
	v->vram = h->vram;
	v->vram_offset = h->off;
	v->kernels = h->kernels;
	pthread_mutex_unlock(&v->lock);
	pthread_rwlock_unlock(&v->home_lock);
	*h = old;
}

/* Put every parked queue on its engine, all or none (cfg_lock held):
 * unlike vgpu_resume, a queue that finds no engine is not faulted, so a
 * move can go back instead. */
static int attach_parked(struct vgpu *v)
{
	int r = 0;

	for (unsigned int i = 0; i < GPUP_MAX_QUEUES && !r; i++) {
		struct vgpu_queue *q = &v->q[i];
		struct gpup_engine *e;

		if (!q->parked)
			continue;
		e = vgpu_queue_engine(q);
		r = e ? gpup_engine_attach(e, &q->ectx) : -ENODEV;
		q->attached = !r;
		if (!r)
			vgpu_sched_apply_queue(v, e, q);
	}
	if (!r)
		return 0;
	for (unsigned int i = 0; i < GPUP_MAX_QUEUES; i++)
		if (v->q[i].parked)
			vgpu_queue_detach(&v->q[i]);
	return r;
}

/* Parked queues attached: let them run (cfg_lock held). */
static void run_parked(struct vgpu *v)
{
	v->quiesced = false;
	for (unsigned int i = 0; i < GPUP_MAX_QUEUES; i++) {
		struct vgpu_queue *q = &v->q[i];

		if (q->parked) {
			q->parked = false;
			gpup_ectx_kick(&q->ectx);
		}
	}
}

/* Steps 5 and 6 (cfg_lock held): 0, or -errno with v back on its source,
 * quiesced as it was.  The blob is checked against the new home as a
 * load would check it, not applied: the vgpu it would be applied to is
 * the one it came from, and a load resets registers first, which a guest
 * still running could read meanwhile. */
static int rehome(struct vgpu *v, struct vgpu_home *h, const void *blob, size_t len, char *err,
		  size_t errlen)
{
	int r;

	vgpu_swap_home(v, h);
	r = vgpu_state_check_locked(v, blob, len);
	if (r)
		gpup_say(err, errlen, "its state does not load there: %s", strerror(-r));
	else if ((r = attach_parked(v)))
		gpup_say(err, errlen, "no engine takes its queues there: %s", strerror(-r));
	if (r)
		vgpu_swap_home(v, h);
	return r;
}

/* Steps 2 to 7 with the new window adopted, under cfg_lock so that a BAR0
 * write waits for the move instead of falling between save and start: 0
 * or -errno, v running on its source again on failure. */
static int stop_and_go(struct vgpu *v, struct vgpu_home *h, struct vgpu_move_stats *st, char *err,
		       size_t errlen)
{
	struct gpup_vgpu_state *blob = malloc(sizeof(*blob));
	uint64_t t0, t1, t2;
	uint8_t *map;
	int r;

	if (!blob)
		return -ENOMEM;
	pthread_mutex_lock(&v->cfg_lock);
	t0 = gpup_mono_ns();
	vgpu_quiesce_locked(v);
	t1 = gpup_mono_ns();
	r = vgpu_state_save_locked(v, blob, sizeof(*blob));
	map = r < 0 ? NULL : gpup_gpu_vram_map(h->gpu);
	if (r < 0) {
		gpup_say(err, errlen, "its state cannot be saved: %s", strerror(-r));
	} else if (!map) {
		r = -ENODEV;
		gpup_say(err, errlen, "the destination's VRAM cannot be mapped");
	} else {
		h->vram = map + h->off;
		r = rehome(v, h, blob, (size_t)r, err, errlen);
	}
	t2 = gpup_mono_ns();
	if (r < 0)
		vgpu_resume_locked(v);
	else
		run_parked(v);
	pthread_mutex_unlock(&v->cfg_lock);
	st->pause_ns = gpup_mono_ns() - t0;
	st->quiesce_ns = t1 - t0;
	st->state_ns = t2 - t1;
	st->attach_ns = st->pause_ns - st->quiesce_ns - st->state_ns;
	free(blob);
	return r < 0 ? r : 0;
}

int vgpu_move(struct vgpu *v, struct gpup_gpu *gpu, uint64_t off, uint32_t kernels,
	      struct vgpu_move_stats *st, char *err, size_t errlen)
{
	struct vgpu_home h = { .gpu = gpu, .off = off };
	uint64_t t0 = gpup_mono_ns();
	struct vgpu_move_stats dummy;
	enum mig_state ms;
	int r;

	st = st ? st : &dummy;
	memset(st, 0, sizeof(*st));
	h.kernels = kernels ? kernels : gpup_gpu_kernels(gpu);
	r = check(v, gpu, off, h.kernels, err, errlen);
	if (r)
		return r;
	/* One driver of the device's state at a time: not while the client
	 * (or a checkpoint) migrates it. */
	pthread_mutex_lock(&v->mig_lock);
	ms = mig_dev_state(v->mig);
	if (ms != MIG_RUNNING) {
		gpup_say(err, errlen, "its client is migrating it (state %s)", mig_state_name(ms));
		r = -EBUSY;
	}
	if (!r) {
		r = gpup_gpu_vram_adopt(gpu, off, v->vram_size,
					gpup_gpu_vram_fd(v->gpu, v->vram_offset));
		if (r)
			gpup_say(err, errlen, "the destination cannot take its VRAM: %s", strerror(-r));
	}
	if (!r) {
		struct gpup_gpu *src = v->gpu;
		uint64_t src_off = v->vram_offset;

		r = stop_and_go(v, &h, st, err, errlen);
		/* h is now the home it left, or (failed) the one it did not take. */
		gpup_gpu_vram_release(r ? gpu : src, r ? off : src_off);
	}
	pthread_mutex_unlock(&v->mig_lock);
	st->total_ns = gpup_mono_ns() - t0;
	return r;
}
