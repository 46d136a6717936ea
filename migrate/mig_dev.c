/* SPDX-License-Identifier: MIT */
/*
 * mig_dev.c: a migratable device: its state, the actions on each arc of
 * the state machine, and the entry points a device model forwards
 * vfio-user's DEVICE_FEATURE, MIG_DATA_READ/WRITE and DEVICE_RESET to.
 *
 * DOC: arcs and what they do
 *
 * RUNNING(_P2P) -> STOP and PRE_COPY(_P2P) -> STOP_COPY quiesce the
 * device; STOP -> RUNNING(_P2P) resumes it.  RUNNING(_P2P) ->
 * PRE_COPY(_P2P) starts VRAM tracking and a live save session; STOP ->
 * STOP_COPY starts a session on the stopped device; PRE_COPY(_P2P) ->
 * STOP_COPY finishes the session's walk with the device quiesced.  Leaving
 * the saving group drops the session.  STOP -> RESUMING resets the device
 * and the parser; RESUMING -> STOP needs a whole, valid stream and the
 * device's acceptance of its state blob: a bad stream keeps the device in
 * RESUMING, a blob the device refuses (after VRAM was loaded) puts it in
 * ERROR.  A failed arc leaves the state where the walk had got to.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zstd.h>

#include "iommu/iommu.h"
#include "migrate/mig_int.h"

#define FEATURES (VFIO_MIGRATION_STOP_COPY | VFIO_MIGRATION_P2P | VFIO_MIGRATION_PRE_COPY)

void mig_fail(struct mig_dev *md, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(md->last_error, sizeof(md->last_error), fmt, ap);
	va_end(ap);
	if (md->log)
		md->log(md->log_opaque, md->last_error);
	else
		fprintf(stderr, "mig: %s\n", md->last_error);
}

static bool ops_ok(const struct mig_dev_ops *o)
{
	return o && o->version == MIG_DEV_OPS_VERSION && o->ident && o->quiesce &&
	       o->resume && o->vram && o->state_save && o->state_load && o->reset &&
	       !o->vram_track == !o->vram_harvest;
}

static struct mig_dev *dev_new(const struct mig_dev_ops *ops, void *dev, uint32_t features)
{
	struct mig_dev *md = calloc(1, sizeof(*md));

	if (!md)
		return NULL;
	md->ops = ops;
	md->dev = dev;
	md->features = features;
	if (!ops->vram_track)
		md->features &= ~(uint32_t)VFIO_MIGRATION_PRE_COPY;
	ops->ident(dev, &md->ident);
	md->vram = ops->vram(dev, &md->vram_size);
	md->npages = md->vram_size / MIG_PAGE_SIZE;
	md->state = MIG_RUNNING;
	md->st.state = MIG_RUNNING;
	pthread_mutex_init(&md->lock, NULL);
	return md;
}

struct mig_dev *mig_dev_create(const struct mig_dev_ops *ops, void *dev, uint32_t features)
{
	struct mig_dev *md;

	if (!ops_ok(ops) || !(features & VFIO_MIGRATION_STOP_COPY) || (features & ~FEATURES)) {
		errno = EINVAL;
		return NULL;
	}
	md = dev_new(ops, dev, features);
	if (!md) {
		errno = ENOMEM;
		return NULL;
	}
	if (!md->vram || !md->vram_size || md->vram_size % MIG_PAGE_SIZE) {
		free(md);
		errno = EINVAL;
		return NULL;
	}
	md->dctx = ZSTD_createDCtx();
	if (!md->dctx || mig_save_init(md) || mig_load_init(md)) {
		mig_dev_destroy(md);
		errno = ENOMEM;
		return NULL;
	}
	return md;
}

/* Stop everything this module started on the device. */
static void let_go(struct mig_dev *md)
{
	if (md->tracking)
		md->ops->vram_track(md->dev, false);
	md->tracking = false;
	if (md->logging && md->ops->iommu)
		iommu_dirty_stop(md->ops->iommu(md->dev));
	md->logging = false;
	if (md->quiesced)
		md->ops->resume(md->dev);
	md->quiesced = false;
}

void mig_dev_destroy(struct mig_dev *md)
{
	if (!md)
		return;
	let_go(md);
	mig_save_free(md);
	mig_load_free(md);
	ZSTD_freeCCtx(md->zctx);
	ZSTD_freeDCtx(md->dctx);
	pthread_mutex_destroy(&md->lock);
	free(md);
}

void mig_dev_set_log(struct mig_dev *md, void (*log)(void *opaque, const char *line),
		     void *opaque)
{
	md->log = log;
	md->log_opaque = opaque;
}

void mig_dev_set_compress(struct mig_dev *md, int level)
{
	if (level > 0 && !md->zctx)
		md->zctx = ZSTD_createCCtx();
	md->zlevel = md->zctx && level > 0 ? level : 0;
}

static void set_state(struct mig_dev *md, enum mig_state s)
{
	MIG_STATS(md, {
		md->state = s;
		md->st.state = s;
	});
}

enum mig_state mig_dev_state(struct mig_dev *md)
{
	enum mig_state s;

	pthread_mutex_lock(&md->lock);
	s = md->state;
	pthread_mutex_unlock(&md->lock);
	return s;
}

void mig_dev_stats(struct mig_dev *md, struct mig_stats *st)
{
	MIG_STATS(md, *st = md->st);
}

const char *mig_dev_last_error(struct mig_dev *md)
{
	return md->last_error;
}

static bool running(enum mig_state s)
{
	return s == MIG_RUNNING || s == MIG_RUNNING_P2P;
}

static bool precopy(enum mig_state s)
{
	return s == MIG_PRE_COPY || s == MIG_PRE_COPY_P2P;
}

static int quiesce(struct mig_dev *md, enum mig_state to)
{
	int rc = md->ops->quiesce(md->dev);

	if (rc) {
		mig_fail(md, "the device could not be stopped on the way to %s (%d)",
			 mig_state_name(to), rc);
		return rc;
	}
	md->quiesced = true;
	return 0;
}

static void refresh_vram(struct mig_dev *md)
{
	uint64_t size;

	md->vram = md->ops->vram(md->dev, &size);
}

static int leave_resuming(struct mig_dev *md)
{
	int rc = mig_load_finish(md);

	if (!rc) {
		MIG_STATS(md, md->st.loads++);
		return 0;
	}
	MIG_STATS(md, md->st.loads_refused++);
	/* A whole stream whose state the device refused: it is half loaded. */
	if (md->load.end_seen && !md->load.err)
		set_state(md, MIG_ERROR);
	return rc;
}

/* The work of one arc of the graph (fsm.c). */
static int arc(struct mig_dev *md, enum mig_state from, enum mig_state to)
{
	if (running(from) && to == MIG_STOP)
		return quiesce(md, to);
	if (from == MIG_STOP && running(to)) {
		md->ops->resume(md->dev);
		md->quiesced = false;
	} else if (running(from) && precopy(to)) {
		int rc = md->ops->vram_track(md->dev, true);

		if (rc) {
			mig_fail(md, "VRAM tracking could not start (%d)", rc);
			return rc;
		}
		refresh_vram(md);
		md->tracking = true;
		mig_save_begin(md, true);
	} else if (precopy(from) && running(to)) {
		md->ops->vram_track(md->dev, false);
		md->tracking = false;
	} else if (precopy(from) && to == MIG_STOP_COPY) {
		int rc = quiesce(md, to);

		if (rc)
			return rc;
		mig_save_finalize(md);
	} else if (from == MIG_STOP && to == MIG_STOP_COPY) {
		refresh_vram(md);
		mig_save_begin(md, false);
	} else if (from == MIG_STOP && to == MIG_RESUMING) {
		md->ops->reset(md->dev);
		refresh_vram(md);
		md->ops->ident(md->dev, &md->ident);
		mig_load_begin(md);
	} else if (from == MIG_RESUMING && to == MIG_STOP) {
		return leave_resuming(md);
	}
	return 0;
}

static int change_state(struct mig_dev *md, enum mig_state target)
{
	enum mig_state cur = md->state, next;
	int rc;

	do {
		rc = mig_fsm_next(md->features, cur, target, &next);
		if (rc) {
			mig_fail(md, "no transition from %s to %s", mig_state_name(cur),
				 mig_state_name(target));
			return rc;
		}
		if (next == cur)
			return 0;
		rc = arc(md, cur, next);
		if (rc)
			return rc;
		set_state(md, next);
		cur = next;
	} while (cur != target);
	return 0;
}

int mig_dev_data_read(struct mig_dev *md, void *buf, uint32_t len)
{
	if (!precopy(md->state) && md->state != MIG_STOP_COPY)
		return -EINVAL;
	return mig_save_read(md, buf, len);
}

int mig_dev_data_readv(struct mig_dev *md, uint32_t len, struct iovec *iov, unsigned int max,
		       unsigned int *niov)
{
	*niov = 0;
	if (!max || (!precopy(md->state) && md->state != MIG_STOP_COPY))
		return -EINVAL;
	/* Quiesced: nothing the device runs changes a page between its hash
	 * and its send. */
	md->save.by_ref = md->state == MIG_STOP_COPY && md->quiesced;
	return mig_save_readv(md, len, iov, max, niov);
}

void mig_dev_data_ahead(struct mig_dev *md, uint32_t len, void (*pump)(void *), void *pump_arg)
{
	if (md->state == MIG_STOP_COPY && md->quiesced && !md->zlevel) {
		if (pump)
			pump(pump_arg);
		mig_save_ahead(md, len);
	} else if (precopy(md->state)) {
		mig_save_prepare(md, len, pump, pump_arg);
	}
}

int mig_dev_data_write(struct mig_dev *md, const void *buf, uint32_t len)
{
	if (md->state != MIG_RESUMING)
		return -EINVAL;
	return mig_load_feed(md, buf, len);
}

void mig_dev_device_reset(struct mig_dev *md)
{
	md->ops->reset(md->dev);
	let_go(md);
	md->load.err = 0;
	md->last_error[0] = '\0';
	set_state(md, MIG_RUNNING);
}

/* ---- DEVICE_FEATURE ---- */

static int feat_migration(struct mig_dev *md, void *out, uint32_t out_max)
{
	struct vfio_device_feature_migration m = { .flags = md->features };

	if (out_max < sizeof(m))
		return -EINVAL;
	memcpy(out, &m, sizeof(m));
	return sizeof(m);
}

static int feat_state(struct mig_dev *md, uint32_t flags, const void *in, uint32_t in_len,
		      void *out, uint32_t out_max)
{
	struct vfio_device_feature_mig_state m = { .data_fd = -1 };
	int rc;

	if (out_max < sizeof(m) || (!(flags & VFIO_DEVICE_FEATURE_GET) && in_len < sizeof(m)))
		return -EINVAL;
	if (flags & VFIO_DEVICE_FEATURE_GET) {
		m.device_state = md->state;
	} else {
		memcpy(&m, in, sizeof(m));
		m.data_fd = -1;
		rc = change_state(md, (enum mig_state)m.device_state);
		if (rc)
			return rc;
	}
	memcpy(out, &m, sizeof(m));
	return sizeof(m);
}

/* Logging with no ranges covers every IOVA: at a page this coarse the
 * whole 48-bit space needs a 1 MiB bitmap. */
#define LOG_ALL_PAGE (1ull << (IOMMU_IOVA_BITS - 23))

static int feat_log_start(struct mig_dev *md, struct iommu_domain *d, const void *in,
			  uint32_t in_len, void *out, uint32_t out_max)
{
	struct vfio_user_dma_logging_control c;
	struct iommu_range all = { 0, 1ull << IOMMU_IOVA_BITS };
	const uint8_t *r = (const uint8_t *)in + sizeof(c);
	uint32_t n;
	int rc;

	if (in_len < sizeof(c))
		return -EINVAL;
	memcpy(&c, in, sizeof(c));
	if (c.num_ranges > IOMMU_DIRTY_MAX_RANGES)
		return -E2BIG;
	if (in_len < sizeof(c) + (uint64_t)c.num_ranges * sizeof(all))
		return -EINVAL;
	if (c.page_size < IOMMU_PAGE_SIZE || (c.page_size & (c.page_size - 1)))
		c.page_size = IOMMU_PAGE_SIZE;       /* a hint we cannot take */
	if (!c.num_ranges && c.page_size < LOG_ALL_PAGE)
		c.page_size = LOG_ALL_PAGE;
	if (c.num_ranges) {
		/* The request's ranges may sit unaligned in the message. */
		struct iommu_range *copy = malloc(c.num_ranges * sizeof(*copy));

		if (!copy)
			return -ENOMEM;
		memcpy(copy, r, c.num_ranges * sizeof(*copy));
		rc = iommu_dirty_start(d, copy, c.num_ranges, c.page_size);
		free(copy);
	} else {
		rc = iommu_dirty_start(d, &all, 1, c.page_size);
	}
	if (rc)
		return rc;
	md->logging = true;
	/* The reply repeats the request, with the page size chosen. */
	n = sizeof(c) + c.num_ranges * (uint32_t)sizeof(all);
	if (out_max < n)
		n = out_max < sizeof(c) ? 0 : sizeof(c);
	memcpy(out, in, n);
	if (n)
		memcpy(out, &c, sizeof(c));
	return (int)n;
}

static int feat_log_report(struct iommu_domain *d, const void *in, uint32_t in_len, void *out,
			   uint32_t out_max)
{
	struct vfio_user_dma_logging_report r;
	uint64_t bytes;
	int rc;

	if (in_len < sizeof(r))
		return -EINVAL;
	memcpy(&r, in, sizeof(r));
	if (r.page_size < IOMMU_PAGE_SIZE || (r.page_size & (r.page_size - 1)) || !r.length)
		return -EINVAL;
	if (r.iova + r.length < r.iova)
		return -EOVERFLOW;
	bytes = (r.length / r.page_size + 63) / 64 * 8;
	if (out_max < sizeof(r) || bytes > out_max - sizeof(r))
		return -EINVAL;
	memset((uint8_t *)out + sizeof(r), 0, bytes);
	rc = iommu_dirty_report(d, r.iova, r.length, r.page_size,
				(uint64_t *)((uint8_t *)out + sizeof(r)));
	if (rc)
		return rc;
	memcpy(out, &r, sizeof(r));
	return (int)(sizeof(r) + bytes);
}

/* The GET/SET a feature supports, or 0 when it is not offered. */
static uint32_t feature_ops(struct mig_dev *md, uint32_t feature)
{
	const uint32_t get = VFIO_DEVICE_FEATURE_GET, set = VFIO_DEVICE_FEATURE_SET;
	bool log = md->ops->iommu && md->ops->iommu(md->dev);

	switch (feature) {
	case VFIO_DEVICE_FEATURE_MIGRATION:
		return get;
	case VFIO_DEVICE_FEATURE_MIG_DEVICE_STATE:
		return get | set;
	case VFIO_DEVICE_FEATURE_DMA_LOGGING_START:
	case VFIO_DEVICE_FEATURE_DMA_LOGGING_STOP:
		return log ? set : 0;
	case VFIO_DEVICE_FEATURE_DMA_LOGGING_REPORT:
		return log ? get : 0;
	default:
		return 0;
	}
}

static int check_flags(struct mig_dev *md, uint32_t flags)
{
	const uint32_t gs = VFIO_DEVICE_FEATURE_GET | VFIO_DEVICE_FEATURE_SET;
	uint32_t ops;

	if (flags & ~(VFIO_DEVICE_FEATURE_MASK | gs | VFIO_DEVICE_FEATURE_PROBE))
		return -EINVAL;
	if (!(flags & VFIO_DEVICE_FEATURE_PROBE) && (flags & gs) == gs)
		return -EINVAL;
	ops = feature_ops(md, flags & VFIO_DEVICE_FEATURE_MASK);
	if (!ops)
		return -ENOTTY;
	if ((flags & gs) & ~ops)
		return -EINVAL;
	if (flags & VFIO_DEVICE_FEATURE_PROBE)
		return 0;
	return flags & gs ? 1 : -EINVAL;
}

int mig_dev_feature(struct mig_dev *md, uint32_t flags, const void *in, uint32_t in_len,
		    void *out, uint32_t out_max)
{
	int rc = check_flags(md, flags);

	if (rc <= 0)
		return rc;
	switch (flags & VFIO_DEVICE_FEATURE_MASK) {
	case VFIO_DEVICE_FEATURE_MIGRATION:
		return feat_migration(md, out, out_max);
	case VFIO_DEVICE_FEATURE_MIG_DEVICE_STATE:
		return feat_state(md, flags, in, in_len, out, out_max);
	case VFIO_DEVICE_FEATURE_DMA_LOGGING_START:
		return feat_log_start(md, md->ops->iommu(md->dev), in, in_len, out, out_max);
	case VFIO_DEVICE_FEATURE_DMA_LOGGING_STOP:
		md->logging = false;
		return iommu_dirty_stop(md->ops->iommu(md->dev));
	default:
		return feat_log_report(md->ops->iommu(md->dev), in, in_len, out, out_max);
	}
}
