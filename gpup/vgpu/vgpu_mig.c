// SPDX-License-Identifier: MIT
/*
 * What the vGPU gives migration: stopping its engines' work at a
 * boundary and starting it again (quiesce, resume), tracking which VRAM
 * pages the device wrote, and its state other than VRAM as the blob of
 * uapi/gpup_vgpu_state.h (save, and load with every field checked: a blob
 * is input from another host).
 *
 * Quiesce takes every enabled queue off its engine (gpup_engine_detach
 * returns once the executor has let go of it, which it does at the end of
 * a slice: between commands, at a COPY/FILL chunk or a kernel's
 * work-group) and parks it; a queue the guest enables meanwhile is parked
 * too.  Resume puts the parked queues back and kicks them.
 *
 * Dirty tracking covers what the device itself writes: engine COPY, FILL,
 * FENCE, TIMESTAMP and KERNEL outputs, and vfio-user REGION_WRITEs to
 * BAR2.  Writes a guest CPU makes through a mapping of BAR2 never pass
 * through the daemon; they are the VMM's to track (docs/MIGRATION.md).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "gpup/vgpu/vgpu_int.h"
#include "migrate/mig.h"
#include "uapi/gpup_vgpu_state.h"

#define VGPU_PAGE_SHIFT 12

void vgpu_quiesce_locked(struct vgpu *v)
{
	/* A watchdog reset owed now is paid before the state is taken. */
	vgpu_wd_flush(v);
	v->quiesced = true;
	for (unsigned int i = 0; i < GPUP_MAX_QUEUES; i++) {
		struct vgpu_queue *q = &v->q[i];

		if (!q->attached)
			continue;
		vgpu_queue_detach(q);
		q->parked = true;
	}
}

int vgpu_quiesce(struct vgpu *v)
{
	pthread_mutex_lock(&v->cfg_lock);
	vgpu_quiesce_locked(v);
	pthread_mutex_unlock(&v->cfg_lock);
	return 0;
}

void vgpu_resume_locked(struct vgpu *v)
{
	v->quiesced = false;
	for (unsigned int i = 0; i < GPUP_MAX_QUEUES; i++) {
		struct vgpu_queue *q = &v->q[i];

		if (!q->parked)
			continue;
		q->parked = false;
		if (!vgpu_queue_attach(q))
			gpup_ectx_kick(&q->ectx);
	}
}

void vgpu_resume(struct vgpu *v)
{
	pthread_mutex_lock(&v->cfg_lock);
	vgpu_resume_locked(v);
	pthread_mutex_unlock(&v->cfg_lock);
}

static void mark(uint64_t *d, uint64_t off, uint64_t len)
{
	uint64_t first = off >> VGPU_PAGE_SHIFT, last = (off + len - 1) >> VGPU_PAGE_SHIFT;

	for (uint64_t w = first / 64; w <= last / 64; w++) {
		uint64_t lo = w == first / 64 ? first % 64 : 0;
		uint64_t hi = w == last / 64 ? last % 64 : 63;
		uint64_t mask = (~0ull >> (63 - hi)) & (~0ull << lo);

		/* Release: whoever harvests the bit sees the bytes written. */
		__atomic_fetch_or(&d[w], mask, __ATOMIC_RELEASE);
	}
}

/* A migration's record and protection's (vgpu_protect.c), each if on. */
void vgpu_vram_written(struct vgpu *v, uint64_t off, uint64_t len)
{
	if (!len)
		return;
	if (__atomic_load_n(&v->tracking, __ATOMIC_ACQUIRE))
		mark(__atomic_load_n(&v->dirty, __ATOMIC_ACQUIRE), off, len);
	if (__atomic_load_n(&v->ptracking, __ATOMIC_ACQUIRE))
		mark(__atomic_load_n(&v->pdirty, __ATOMIC_ACQUIRE), off, len);
}

/* The bitmap is made once and kept until vgpu_free, so an engine that
 * read the pointer never sees it freed. */
int vgpu_vram_track(struct vgpu *v, bool on)
{
	size_t words = (v->vram_size >> VGPU_PAGE_SHIFT) / 64 + 1;

	if (!on) {
		__atomic_store_n(&v->tracking, false, __ATOMIC_RELEASE);
		return 0;
	}
	pthread_mutex_lock(&v->cfg_lock);
	if (!v->dirty) {
		uint64_t *d = calloc(words, sizeof(*d));

		if (!d) {
			pthread_mutex_unlock(&v->cfg_lock);
			return -ENOMEM;
		}
		v->dirty_words = words;
		__atomic_store_n(&v->dirty, d, __ATOMIC_RELEASE);
	}
	for (size_t i = 0; i < v->dirty_words; i++)
		__atomic_store_n(&v->dirty[i], 0, __ATOMIC_RELAXED);
	__atomic_store_n(&v->tracking, true, __ATOMIC_RELEASE);
	pthread_mutex_unlock(&v->cfg_lock);
	return 0;
}

void vgpu_vram_harvest(struct vgpu *v, uint64_t *bitmap)
{
	uint64_t *d = __atomic_load_n(&v->dirty, __ATOMIC_ACQUIRE);
	size_t pages = v->vram_size >> VGPU_PAGE_SHIFT;

	if (!d)
		return;
	for (size_t w = 0; w < (pages + 63) / 64; w++)
		bitmap[w] |= __atomic_exchange_n(&d[w], 0, __ATOMIC_ACQUIRE);
}

static void save_progress(const struct vgpu_queue *q, struct gpup_vgpu_state_queue *s)
{
	const struct gpup_kernel_run *k = &q->prog.kernel;

	s->flags |= GPUP_VST_Q_HAVE_CMD | (q->prog.started ? GPUP_VST_Q_STARTED : 0);
	s->done = q->prog.done;
	s->kernel_id = k->id;
	s->kernel_next = k->next;
	s->kernel_acc = k->acc;
	memcpy(s->kernel_args, k->args, sizeof(s->kernel_args));
	memcpy(&s->kernel_acc_f, &k->acc_f, sizeof(s->kernel_acc_f));
	memcpy(s->cmd, q->cmd.raw, sizeof(s->cmd));
}

static void save_queue(const struct vgpu_queue *q, struct gpup_vgpu_state_queue *s)
{
	*s = (struct gpup_vgpu_state_queue){
		.ring = q->ring, .pi_addr = q->pi_addr, .entries = q->entries,
		.engine = q->engine, .control = q->control, .vector = q->vector,
		.priority = q->priority, .ci = q->ci, .status = q->status, .fault = q->fault,
		.commands = q->commands, .run_ring = q->run.ring, .run_pi_addr = q->run.pi_addr,
		.run_entries = q->run.entries, .run_vector = q->run.vector,
		.run_engine = q->kind == GPUP_ENGINE_KIND_COPY ? GPUP_ENGINE_COPY
							      : GPUP_ENGINE_COMPUTE,
		.pi_seen = q->pi_seen,
		.fence_lo = (uint32_t)q->fence, .fence_hi = (uint32_t)(q->fence >> 32),
		.watch_lo = (uint32_t)q->watch, .watch_hi = (uint32_t)(q->watch >> 32),
	};
	s->flags = (q->parked ? GPUP_VST_Q_RUNNING : 0) |
		   (q->irq_pending ? GPUP_VST_Q_IRQ_PENDING : 0);
	/* A finished command's progress is stale, not state. */
	if (q->parked && q->have_cmd)
		save_progress(q, s);
}

static void save_regs(const struct vgpu *v, struct gpup_vgpu_state *s)
{
	s->control = v->control;
	s->intr_status = v->intr_status;
	s->intr_mask = v->intr_mask;
	s->fault_vector = v->fault_vector;
	s->scratch = v->scratch;
	s->lost = v->lost;
	s->fault_count = v->fault_count;
	for (unsigned int i = 0; i < GPUP_FAULT_LOG_ENTRIES; i++) {
		const struct vgpu_fault_rec *r = &v->log[i];

		s->log[i] = (struct gpup_vgpu_state_fault){
			.code = r->code, .queue = r->queue, .addr = r->addr,
			.detail = r->detail, .seq = r->seq,
		};
	}
	if (v->sched_set) {
		s->sched_set = 1;
		s->sched_weight = v->sched.weight;
		s->sched_reserve_ppm = v->sched.reserve_ppm;
		s->sched_cap_ppm = v->sched.cap_ppm;
		s->sched_class = v->sched.klass;
		s->sched_fps_limit = v->sched.fps_limit;
		s->sched_budget_us = v->sched.budget_us;
	}
	memcpy(s->pci_cfg, v->pci.space, sizeof(s->pci_cfg));
}

int vgpu_state_save_locked(struct vgpu *v, void *buf, size_t max)
{
	struct gpup_vgpu_state *s = buf;

	if (max < sizeof(*s))
		return -ENOSPC;
	if (!v->quiesced)
		return -EBUSY;
	memset(s, 0, sizeof(*s));
	s->magic = GPUP_VGPU_STATE_MAGIC;
	s->version = GPUP_VGPU_STATE_VERSION;
	s->size = sizeof(*s);
	s->num_queues = GPUP_MAX_QUEUES;
	s->vram_size = v->vram_size;
	pthread_mutex_lock(&v->lock);
	save_regs(v, s);
	for (unsigned int i = 0; i < GPUP_MAX_QUEUES; i++)
		save_queue(&v->q[i], &s->q[i]);
	pthread_mutex_unlock(&v->lock);
	return (int)sizeof(*s);
}

int vgpu_state_save(struct vgpu *v, void *buf, size_t max)
{
	pthread_mutex_lock(&v->cfg_lock);
	int r = vgpu_state_save_locked(v, buf, max);

	pthread_mutex_unlock(&v->cfg_lock);
	return r;
}

static bool zero(const void *p, size_t n)
{
	const uint8_t *b = p;

	for (size_t i = 0; i < n; i++)
		if (b[i])
			return false;
	return true;
}

static bool pow2_in(uint32_t n, uint32_t lo, uint32_t hi)
{
	return n >= lo && n <= hi && !(n & (n - 1));
}

/* What an engine needs to run the queue: the setup enable would have
 * accepted. */
static bool run_setup_ok(const struct gpup_vgpu_state_queue *s)
{
	return pow2_in(s->run_entries, 2, 65536) && s->run_engine <= GPUP_ENGINE_COPY &&
	       s->run_ring % GPUP_CMD_SIZE == 0 && s->run_pi_addr % 4 == 0 &&
	       s->watch_lo % 4 == 0 && (s->control & GPUP_QCTL_ENABLE);
}

static int check_queue(const struct gpup_vgpu_state_queue *s)
{
	const uint32_t sts = GPUP_QSTS_ENABLED | GPUP_QSTS_BUSY | GPUP_QSTS_FAULTED |
			     GPUP_QSTS_STARTING;
	bool live = (s->status & GPUP_QSTS_ENABLED) && !(s->status & GPUP_QSTS_FAULTED);
	bool running = s->flags & GPUP_VST_Q_RUNNING;

	if ((s->flags & ~GPUP_VST_Q_FLAGS) || (s->control & ~GPUP_QCTL_ENABLE) ||
	    (s->status & ~sts) || s->fault >= GPUP_FAULT_MAX ||
	    !zero(s->reserved, sizeof(s->reserved)))
		return -EINVAL;
	/* A stopped device parks every queue it had on an engine: each live
	 * one, and a faulted one until the guest disables it. */
	if ((live && !running) || (running && !(s->status & GPUP_QSTS_ENABLED)) ||
	    (running && !run_setup_ok(s)))
		return -EINVAL;
	/* STARTING: live, and nothing fetched before CI := PI. */
	if ((s->status & GPUP_QSTS_STARTING) &&
	    (!live || (s->status & GPUP_QSTS_BUSY) || (s->flags & GPUP_VST_Q_HAVE_CMD)))
		return -EINVAL;
	if (!(s->flags & GPUP_VST_Q_HAVE_CMD) && (s->done || (s->flags & GPUP_VST_Q_STARTED)))
		return -EINVAL;
	return 0;
}

static int check_state(const struct vgpu *v, const struct gpup_vgpu_state *s, size_t len)
{
	if (len != sizeof(*s) || s->magic != GPUP_VGPU_STATE_MAGIC ||
	    (s->version != 1 && s->version != GPUP_VGPU_STATE_VERSION) || s->size != sizeof(*s) ||
	    s->num_queues != GPUP_MAX_QUEUES)
		return -EPROTO;
	if (s->vram_size != v->vram_size)
		return -ERANGE;
	if ((s->control & ~GPUP_CTRL_ENABLE) || s->lost > 1 || s->sched_set > 1 || s->reserved0)
		return -EINVAL;
	for (unsigned int i = 0; i < GPUP_FAULT_LOG_ENTRIES; i++)
		if (s->log[i].code >= GPUP_FAULT_MAX)
			return -EINVAL;
	for (unsigned int i = 0; i < GPUP_MAX_QUEUES; i++)
		if (check_queue(&s->q[i]) ||
		    (s->version == 1 && (s->q[i].fence_lo || s->q[i].fence_hi)))
			return -EINVAL;
	return 0;
}

static int sched_from(const struct gpup_vgpu_state *s, struct sched_ctx_cfg *cfg)
{
	*cfg = (struct sched_ctx_cfg){
		.weight = s->sched_weight, .reserve_ppm = s->sched_reserve_ppm,
		.cap_ppm = s->sched_cap_ppm, .klass = (enum sched_class)s->sched_class,
		.fps_limit = s->sched_fps_limit, .budget_us = s->sched_budget_us,
	};
	return s->sched_set && sched_ctx_cfg_check(cfg) ? -EINVAL : 0;
}

static void load_regs(struct vgpu *v, const struct gpup_vgpu_state *s)
{
	v->control = s->control;
	v->intr_status = s->intr_status;
	v->intr_mask = s->intr_mask;
	v->fault_vector = s->fault_vector;
	v->scratch = s->scratch;
	v->lost = s->lost;
	v->fault_count = s->fault_count;
	for (unsigned int i = 0; i < GPUP_FAULT_LOG_ENTRIES; i++) {
		const struct gpup_vgpu_state_fault *f = &s->log[i];

		v->log[i] = (struct vgpu_fault_rec){
			.code = f->code, .queue = f->queue, .addr = f->addr,
			.detail = f->detail, .seq = f->seq,
		};
	}
	/* Only what the guest could write: the identity stays ours. */
	for (unsigned int i = 0; i < GPUP_PCI_CFG_SIZE; i++)
		v->pci.space[i] = (uint8_t)((v->pci.space[i] & ~v->pci.wmask[i]) |
					    (s->pci_cfg[i] & v->pci.wmask[i]));
}

/* The command under way, if the queue will run again (lock held). */
static bool load_progress(struct vgpu_queue *q, const struct gpup_vgpu_state_queue *s)
{
	q->have_cmd = s->flags & GPUP_VST_Q_HAVE_CMD;
	q->irq_pending = s->flags & GPUP_VST_Q_IRQ_PENDING;
	memcpy(q->cmd.raw, s->cmd, sizeof(q->cmd.raw));
	q->prog = (struct vgpu_progress){
		.done = s->done, .started = s->flags & GPUP_VST_Q_STARTED,
		.kernel = { .id = s->kernel_id, .next = s->kernel_next, .acc = s->kernel_acc },
	};
	memcpy(q->prog.kernel.args, s->kernel_args, sizeof(q->prog.kernel.args));
	memcpy(&q->prog.kernel.acc_f, &s->kernel_acc_f, sizeof(q->prog.kernel.acc_f));
	return !q->have_cmd || vgpu_cmd_resumable(q);
}

static bool load_queue(struct vgpu_queue *q, const struct gpup_vgpu_state_queue *s)
{
	struct vgpu *v = q->v;

	q->ring = s->ring;
	q->pi_addr = s->pi_addr;
	q->watch = (uint64_t)s->watch_hi << 32 | s->watch_lo;
	q->watching = false;
	q->entries = s->entries;
	q->engine = s->engine;
	q->control = s->control;
	q->vector = s->vector;
	q->priority = s->priority;
	q->ci = s->ci;
	q->status = s->status;
	q->fault = s->fault;
	q->commands = s->commands;
	q->fence = (uint64_t)s->fence_hi << 32 | s->fence_lo;
	memset(&q->prog, 0, sizeof(q->prog));
	q->have_cmd = q->irq_pending = false;
	if (!(s->flags & GPUP_VST_Q_RUNNING))
		return true;
	q->run.ring = s->run_ring;
	q->run.pi_addr = s->run_pi_addr;
	q->run.watch = q->watch;
	q->run.entries = s->run_entries;
	q->run.vector = s->run_vector;
	q->kind = s->run_engine == GPUP_ENGINE_COPY ? GPUP_ENGINE_KIND_COPY
						    : GPUP_ENGINE_KIND_COMPUTE;
	q->pi_seen = s->pi_seen;
	q->pi_pending = s->status & GPUP_QSTS_STARTING;
	q->ectx.weight = v->sched_set && v->sched.weight ? v->sched.weight : q->priority;
	q->parked = true;
	return load_progress(q, s);
}

int vgpu_state_load(struct vgpu *v, const void *buf, size_t len)
{
	pthread_mutex_lock(&v->cfg_lock);
	int r = vgpu_state_load_locked(v, buf, len);

	pthread_mutex_unlock(&v->cfg_lock);
	return r;
}

int vgpu_state_load_locked(struct vgpu *v, const void *buf, size_t len)
{
	const struct gpup_vgpu_state *s = buf;
	struct sched_ctx_cfg sched;
	bool ok = true;
	int r = len == sizeof(*s) ? check_state(v, s, len) : -EPROTO;

	if (!r)
		r = sched_from(s, &sched);
	if (r)
		return r;
	vgpu_reset_cfg_locked(v, false);
	v->quiesced = true;
	if (s->sched_set) {
		v->sched = sched;
		v->sched_set = true;
	}
	pthread_mutex_lock(&v->lock);
	load_regs(v, s);
	for (unsigned int i = 0; i < GPUP_MAX_QUEUES && ok; i++)
		ok = load_queue(&v->q[i], &s->q[i]);
	pthread_mutex_unlock(&v->lock);
	/* A command no engine could have left so: nothing of the blob stays. */
	if (!ok)
		vgpu_reset_cfg_locked(v, false);
	return ok ? 0 : -EINVAL;
}

/* Every check of vgpu_state_load, the commands in flight prepared again
 * on copies of their queues: nothing of v changes. */
int vgpu_state_check_locked(struct vgpu *v, const void *buf, size_t len)
{
	const struct gpup_vgpu_state *s = buf;
	struct sched_ctx_cfg sched;
	struct vgpu_queue *tmp;
	int r = len == sizeof(*s) ? check_state(v, s, len) : -EPROTO;

	if (!r)
		r = sched_from(s, &sched);
	tmp = r ? NULL : malloc(sizeof(*tmp));
	if (!r && !tmp)
		r = -ENOMEM;
	for (unsigned int i = 0; i < GPUP_MAX_QUEUES && !r; i++) {
		if (!(s->q[i].flags & GPUP_VST_Q_RUNNING))
			continue;
		*tmp = v->q[i];
		if (!load_progress(tmp, &s->q[i]))
			r = -EINVAL;
	}
	free(tmp);
	return r;
}

/* Power-on state for a migration's RESUMING or DEVICE_RESET: not stopped,
 * nothing tracked, VRAM zero.  VRAM is punched, not written: its pages go
 * back to the host and a load then allocates only those with data. */
void vgpu_mig_reset(struct vgpu *v)
{
	int fd = gpup_gpu_vram_fd(v->gpu, v->vram_offset);

	vgpu_vram_track(v, false);
	pthread_mutex_lock(&v->cfg_lock);
	vgpu_reset_cfg_locked(v, false);
	v->quiesced = false;
	if (fd < 0 || fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 0,
				(off_t)v->vram_size))
		memset(v->vram, 0, v->vram_size);
	pthread_mutex_unlock(&v->cfg_lock);
}

/* ---- migrate/'s device ops over the vgpu ---- */

static void mig_ident(void *dev, struct mig_ident *id)
{
	struct vgpu *v = dev;
	struct gpup_gpu_desc d;

	gpup_gpu_describe(v->gpu, &d);
	memset(id, 0, sizeof(*id));
	snprintf(id->model, sizeof(id->model), "%.15s-%.15s", d.backend ? d.backend : "?",
		 d.gen);
	snprintf(id->type, sizeof(id->type), "%.31s", v->type);
	id->vram_size = v->vram_size;
	/* What a guest can see differ between GPUs: the built-in kernels,
	 * as many as this partition exposes (its compatibility mask). */
	id->features = vgpu_kernels(v);
}

void vgpu_mig_ident(struct vgpu *v, struct mig_ident *id)
{
	mig_ident(v, id);
}

static int mig_quiesce(void *dev)
{
	return vgpu_quiesce(dev);
}

static void mig_resume(void *dev)
{
	vgpu_resume(dev);
}

static uint8_t *mig_vram(void *dev, uint64_t *size)
{
	struct vgpu *v = dev;

	*size = v->vram_size;
	return v->vram;
}

static int mig_track(void *dev, bool on)
{
	return vgpu_vram_track(dev, on);
}

static void mig_harvest(void *dev, uint64_t *bitmap)
{
	vgpu_vram_harvest(dev, bitmap);
}

/* The VRAM file's holes are pages never written (or punched): zero. */
static uint64_t mig_vram_data(void *dev, uint64_t off, uint64_t *end)
{
	struct vgpu *v = dev;
	int fd = gpup_gpu_vram_fd(v->gpu, v->vram_offset);
	off_t data, hole;

	*end = v->vram_size;
	if (fd < 0)
		return off;
	data = lseek(fd, (off_t)off, SEEK_DATA);
	if (data < 0)
		return errno == ENXIO ? v->vram_size : off;
	hole = lseek(fd, data, SEEK_HOLE);
	if (hole > data)
		*end = (uint64_t)hole < v->vram_size ? (uint64_t)hole : v->vram_size;
	return (uint64_t)data;
}

/* A load fills the VRAM file with pwrite: on a window punched to holes
 * (RESUMING) each page is allocated and filled in the kernel, where a
 * store through the mapping would fault it in zeroed first. */
static int mig_vram_write(void *dev, uint64_t off, const void *buf, size_t len)
{
	struct vgpu *v = dev;
	int fd = gpup_gpu_vram_fd(v->gpu, v->vram_offset);

	if (fd < 0 || off > v->vram_size || len > v->vram_size - off)
		return fd < 0 ? fd : -EINVAL;
	while (len) {
		ssize_t n = pwrite(fd, buf, len, (off_t)off);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return n < 0 ? -errno : -EIO;
		buf = (const uint8_t *)buf + n;
		off += (uint64_t)n;
		len -= (size_t)n;
	}
	return 0;
}

static int mig_state_save(void *dev, void *buf, size_t max)
{
	return vgpu_state_save(dev, buf, max);
}

static int mig_state_load(void *dev, const void *buf, size_t len)
{
	return vgpu_state_load(dev, buf, len);
}

static void mig_reset(void *dev)
{
	vgpu_mig_reset(dev);
}

static struct iommu_domain *mig_iommu(void *dev)
{
	return ((struct vgpu *)dev)->iommu;
}

static const struct mig_dev_ops vgpu_mig_ops = {
	.version = MIG_DEV_OPS_VERSION,
	.ident = mig_ident,
	.quiesce = mig_quiesce,
	.resume = mig_resume,
	.vram = mig_vram,
	.vram_track = mig_track,
	.vram_harvest = mig_harvest,
	.vram_data = mig_vram_data,
	.state_save = mig_state_save,
	.state_load = mig_state_load,
	.reset = mig_reset,
	.iommu = mig_iommu,
	.vram_write = mig_vram_write,
};

int vgpu_mig_init(struct vgpu *v)
{
	v->mig = mig_dev_create(&vgpu_mig_ops, v,
				VFIO_MIGRATION_STOP_COPY | VFIO_MIGRATION_P2P |
					VFIO_MIGRATION_PRE_COPY);
	return v->mig ? 0 : -errno;
}

/* migrate/'s log lines, as the vgpu's client server logs them. */
static void mig_log(void *opaque, const char *line)
{
	struct vgpu *v = opaque;

	if (v->say)
		v->say("%s: migration: %s", v->label, line);
}

void vgpu_mig_set_log(struct vgpu *v, void (*log)(const char *fmt, ...))
{
	v->say = log;
	mig_dev_set_log(v->mig, mig_log, v);
}

/* One driver of the migration at a time: the client's connection thread
 * or the daemon (a checkpoint), never both. */
int vgpu_mig_feature(struct vgpu *v, uint32_t flags, const void *in, uint32_t in_len,
		     void *out, uint32_t out_max)
{
	pthread_mutex_lock(&v->mig_lock);
	int r = mig_dev_feature(v->mig, flags, in, in_len, out, out_max);

	pthread_mutex_unlock(&v->mig_lock);
	return r;
}

int vgpu_mig_read(struct vgpu *v, void *buf, uint32_t len)
{
	pthread_mutex_lock(&v->mig_lock);
	int r = mig_dev_data_read(v->mig, buf, len);

	pthread_mutex_unlock(&v->mig_lock);
	return r;
}

int vgpu_mig_readv(struct vgpu *v, uint32_t len, struct iovec *iov, unsigned int max,
		   unsigned int *niov)
{
	pthread_mutex_lock(&v->mig_lock);
	int r = mig_dev_data_readv(v->mig, len, iov, max, niov);

	pthread_mutex_unlock(&v->mig_lock);
	return r;
}

void vgpu_mig_ahead(struct vgpu *v, uint32_t len, void (*pump)(void *), void *pump_arg)
{
	pthread_mutex_lock(&v->mig_lock);
	mig_dev_data_ahead(v->mig, len, pump, pump_arg);
	pthread_mutex_unlock(&v->mig_lock);
}

int vgpu_mig_write(struct vgpu *v, const void *buf, uint32_t len)
{
	pthread_mutex_lock(&v->mig_lock);
	int r = mig_dev_data_write(v->mig, buf, len);

	pthread_mutex_unlock(&v->mig_lock);
	return r;
}

/* A client that left its partition stopped or half-migrated (a VMM that
 * died mid-migration) must not leave it so for the next: back to
 * RUNNING along the state machine, keeping the device's state and VRAM;
 * where no arc leads there (RESUMING without a whole stream, ERROR), by
 * a device reset.  A dirty log it started is stopped. */
void vgpu_mig_client_gone(struct vgpu *v)
{
	struct vfio_device_feature_mig_state m = { .device_state = MIG_RUNNING, .data_fd = -1 };
	const uint32_t set = VFIO_DEVICE_FEATURE_SET | VFIO_DEVICE_FEATURE_MIG_DEVICE_STATE;
	enum mig_state was;

	pthread_mutex_lock(&v->mig_lock);
	was = mig_dev_state(v->mig);
	if (was != MIG_RUNNING && was != MIG_RESUMING &&
	    mig_dev_feature(v->mig, set, &m, sizeof(m), &m, sizeof(m)) >= 0)
		was = MIG_RUNNING;
	if (was != MIG_RUNNING)
		mig_dev_device_reset(v->mig);
	/* Its dirty log too: -ENOENT when none was started. */
	(void)mig_dev_feature(v->mig, VFIO_DEVICE_FEATURE_SET | VFIO_DEVICE_FEATURE_DMA_LOGGING_STOP,
			      NULL, 0, NULL, 0);
	pthread_mutex_unlock(&v->mig_lock);
}

void vgpu_device_reset(struct vgpu *v)
{
	pthread_mutex_lock(&v->mig_lock);
	mig_dev_device_reset(v->mig);
	pthread_mutex_unlock(&v->mig_lock);
}

int vgpu_checkpoint(struct vgpu *v, const char *dir, const char *name, char *err,
		    size_t errlen)
{
	pthread_mutex_lock(&v->mig_lock);
	int r = mig_file_save(v->mig, dir, name, NULL, err, errlen);

	pthread_mutex_unlock(&v->mig_lock);
	return r;
}

int vgpu_restore(struct vgpu *v, const char *dir, const char *name, char *err, size_t errlen)
{
	pthread_mutex_lock(&v->mig_lock);
	int r = mig_file_restore(v->mig, dir, name, err, errlen);

	pthread_mutex_unlock(&v->mig_lock);
	return r;
}

void vgpu_mig_stats(struct vgpu *v, struct mig_stats *st)
{
	mig_dev_stats(v->mig, st);
}
