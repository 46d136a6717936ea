// SPDX-License-Identifier: MIT
/*
 * Recovering a protected partition whose GPU failed (vgpu.h,
 * docs/MIGRATION.md "Failover").  The vgpu moves as itself, as in
 * vgpu_move, so the vfio-user server, the client's doorbell and
 * interrupt eventfds and the IOMMU domain stay; what differs is where
 * VRAM comes from.  The failed GPU's VRAM is taken as lost and never
 * read: the partition's VRAM file (host memory on the sim backend, and
 * the very file the client mapped as BAR2) is adopted by the healthy GPU
 * and rewritten from the protection chain, so the client's mapping shows
 * the restored VRAM without being made again.  The guest keeps running
 * meanwhile and may read it: each page goes straight from what it held
 * to what the chain holds (mig_chain_load), never through zero or an
 * older link, so a page whose last write the checkpoint has reads the
 * same all along.  The last link's
 * state is loaded; every queue that ran is stopped with DEVICE_LOST, so
 * that nothing the guest submitted after the checkpoint runs twice from
 * a ring it may have rewritten since, and the guest is told with
 * STATUS.RECOVERED and an interrupt on its fault vector.
 *
 * The steps, and what undoes each:
 *   1. stop     every queue off the failed GPU's (halted) engines
 *   2. adopt    the healthy GPU shows the VRAM file at the new window
 *               (undone by releasing it there)
 *   3. restore  the chain checked whole, then every page of the file
 *               written from it once; what the chain does not hold is
 *               punched, so nothing of the failed GPU's VRAM stays
 *   4. re-home  gpu, vram, window and features swapped (vgpu_swap_home)
 *   5. load     the last link's state (a refused one: undo 4 and 2)
 *   6. run      queues stopped with DEVICE_LOST, RECOVERED raised; the
 *               failed GPU forgets the file's old window
 * A failure leaves the partition on its failed GPU, lost, and its VRAM
 * file empty.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gpup/base/base.h"
#include "gpup/vgpu/vgpu_int.h"
#include "migrate/mig.h"
#include "uapi/gpup_vgpu_state.h"

/* Steps 2 and 3: the file at h's window holds the chain's VRAM, and the
 * last state is in blob.  0 or -errno, nothing adopted and the file
 * emptied on failure. */
static int rebuild(struct vgpu *v, struct vgpu_home *h, const char *dir, const char *prefix,
		   struct gpup_vgpu_state *blob, struct vgpu_recover_stats *st, char *err,
		   size_t errlen)
{
	int fd = gpup_gpu_vram_fd(v->gpu, v->vram_offset);
	struct mig_ident id;
	struct mig_chain_load l = { .ident = &id, .state = blob, .state_max = sizeof(*blob),
				    .to_fd = true, .vram_fd = fd };
	uint64_t t0;
	uint8_t *map;
	int r = fd < 0 ? fd : gpup_gpu_vram_adopt(h->gpu, h->off, v->vram_size, fd);

	if (r)
		return gpup_say(err, errlen, "the destination cannot take its VRAM: %s",
				strerror(-r)), r;
	map = gpup_gpu_vram_map(h->gpu);
	if (!map) {
		gpup_gpu_vram_release(h->gpu, h->off);
		return gpup_say(err, errlen, "the destination's VRAM cannot be mapped"), -ENODEV;
	}
	h->vram = map + h->off;
	t0 = gpup_mono_ns();
	vgpu_mig_ident(v, &id);
	id.features = h->kernels;
	r = mig_chain_load(dir, prefix, &l, err, errlen);
	if (!r && l.state_len != sizeof(*blob))
		r = -EPROTO;
	st->restore_ns = gpup_mono_ns() - t0;
	st->links = l.links;
	if (r) {
		if (fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 0,
			      (off_t)v->vram_size))
			memset(h->vram, 0, v->vram_size);
		gpup_gpu_vram_release(h->gpu, h->off);
	}
	return r;
}

/* Step 6 (cfg_lock held, state loaded, queues parked): nothing resumes
 * by itself; the guest restarts each queue and resubmits. */
static void stop_queues(struct vgpu *v, struct vgpu_recover_stats *st)
{
	pthread_mutex_lock(&v->lock);
	v->lost = false;
	for (unsigned int i = 0; i < GPUP_MAX_QUEUES; i++) {
		struct vgpu_queue *q = &v->q[i];

		q->parked = false;
		q->have_cmd = q->irq_pending = false;
		if ((q->status & GPUP_QSTS_ENABLED) && !(q->status & GPUP_QSTS_FAULTED))
			vgpu_fault_locked(q, GPUP_FAULT_DEVICE_LOST, 0, 0);
		st->fence[i] = q->fence;
	}
	vgpu_irq_locked(v, GPUP_INTR_RECOVERED, v->fault_vector);
	pthread_mutex_unlock(&v->lock);
	v->quiesced = false;
}

static uint64_t commands_now(struct vgpu *v)
{
	uint64_t n = 0;

	pthread_mutex_lock(&v->lock);
	for (unsigned int i = 0; i < GPUP_MAX_QUEUES; i++)
		n += v->q[i].commands;
	pthread_mutex_unlock(&v->lock);
	return n;
}

/* Steps 4 to 6 (cfg_lock held, v stopped). */
static int rehome_and_load(struct vgpu *v, struct vgpu_home *h,
			   const struct gpup_vgpu_state *blob, struct vgpu_recover_stats *st,
			   char *err, size_t errlen)
{
	struct gpup_gpu *failed = v->gpu;
	uint64_t failed_off = v->vram_offset, was = commands_now(v), then = 0;
	int r;

	vgpu_swap_home(v, h);
	r = vgpu_state_load_locked(v, blob, sizeof(*blob));
	if (r) {
		gpup_say(err, errlen, "its last checkpoint's state does not load there: %s",
			 strerror(-r));
		vgpu_swap_home(v, h);
		gpup_gpu_vram_release(h->gpu, h->off);
		return r;
	}
	for (unsigned int i = 0; i < GPUP_MAX_QUEUES; i++)
		then += blob->q[i].commands;
	st->commands_lost = was > then ? was - then : 0;
	stop_queues(v, st);
	gpup_gpu_vram_release(failed, failed_off);
	return 0;
}

int vgpu_recover(struct vgpu *v, struct gpup_gpu *gpu, uint64_t off, uint32_t kernels,
		 const char *dir, const char *prefix, struct vgpu_recover_stats *st, char *err,
		 size_t errlen)
{
	struct vgpu_home h = { .gpu = gpu, .off = off };
	struct gpup_vgpu_state *blob = malloc(sizeof(*blob));
	uint64_t t0 = gpup_mono_ns();
	int r = blob ? 0 : -ENOMEM;

	memset(st, 0, sizeof(*st));
	h.kernels = kernels ? kernels : gpup_gpu_kernels(gpu);
	if (gpu == v->gpu || (vgpu_kernels(v) & ~h.kernels))
		r = -EINVAL;
	pthread_mutex_lock(&v->mig_lock);
	/* A migration its client had under way is moot: its device is gone. */
	if (!r && mig_dev_state(v->mig) != MIG_RUNNING)
		mig_dev_device_reset(v->mig);
	pthread_mutex_lock(&v->cfg_lock);
	if (!r) {
		vgpu_quiesce_locked(v);
		r = rebuild(v, &h, dir, prefix, blob, st, err, errlen);
	}
	if (!r)
		r = rehome_and_load(v, &h, blob, st, err, errlen);
	else if (v->quiesced)
		vgpu_resume_locked(v);
	pthread_mutex_unlock(&v->cfg_lock);
	pthread_mutex_unlock(&v->mig_lock);
	if (r == -EINVAL && err && !err[0])
		gpup_say(err, errlen, "it cannot run on that GPU");
	if (r)
		vgpu_set_lost(v);
	free(blob);
	st->total_ns = gpup_mono_ns() - t0;
	return r;
}
