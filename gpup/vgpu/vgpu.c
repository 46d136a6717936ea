// SPDX-License-Identifier: MIT
/*
 * The vGPU device model's control plane: creation, the BAR0 register file
 * (uapi/gpup_vgpu.h), queue enable/disable (attaching the queue's context
 * to an engine), doorbell and interrupt eventfds, faults, reset, loss and
 * statistics.  The command processor that engines run is in vgpu_cmd.c.
 *
 * STATUS.FAULT mirrors INTR_STATUS bit 31: a guest acknowledges a fault by
 * writing 1 there.  A queue that faults stays FAULTED until the guest
 * clears Q_CONTROL.ENABLE and sets it again; enabling re-reads the setup
 * and starts with CI at the producer index found in guest memory.  A
 * WATCHDOG fault also resets the whole function, keeping the fault log
 * (vgpu_wd.c).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "gpup/vgpu/vgpu_int.h"
#include "iommu/iommu.h"
#include "migrate/mig.h"
#include "vfu/vfu.h"

static unsigned int vgpu_next_id;

/* The eventfd is the client's: it is signalled without blocking (an
 * engine thread of the whole GPU runs this), and one found full is left
 * alone for VGPU_IRQ_FULL_BACKOFF_NS, so a tenant cannot make every
 * interrupt cost the engine a guarded write. */
void vgpu_irq_locked(struct vgpu *v, uint32_t bit, uint32_t vector)
{
	int rc;

	v->intr_status |= bit;
	if ((v->intr_mask & bit) || vector >= GPUP_MSIX_VECTORS || v->irq_fd[vector] < 0)
		return;
	if (v->irq_full_until[vector] && gpup_mono_ns() < v->irq_full_until[vector])
		return;
	rc = vfu_eventfd_signal(v->irq_fd[vector]);
	v->irq_full_until[vector] = rc == -EAGAIN ? gpup_mono_ns() + VGPU_IRQ_FULL_BACKOFF_NS : 0;
	if (rc == 0)
		v->interrupts++;
}

void vgpu_fault_locked(struct vgpu_queue *q, uint32_t code, uint64_t addr, uint64_t detail)
{
	struct vgpu *v = q->v;
	struct vgpu_fault_rec *rec = &v->log[v->fault_count % GPUP_FAULT_LOG_ENTRIES];

	v->fault_count++;
	*rec = (struct vgpu_fault_rec){
		.code = code, .queue = q->idx, .addr = addr, .detail = detail,
		.seq = v->fault_count,
	};
	q->fault = code;
	q->status = (q->status | GPUP_QSTS_FAULTED) & ~(GPUP_QSTS_BUSY | GPUP_QSTS_STARTING);
	v->faults++;
	vgpu_irq_locked(v, GPUP_INTR_FAULT, v->fault_vector);
}

/* Registers to reset values (lock held); queues are already detached. */
static void regs_reset_locked(struct vgpu *v)
{
	v->control = v->intr_status = v->intr_mask = v->scratch = 0;
	v->fault_vector = GPUP_MAX_QUEUES;
	v->time_hi_latch = 0;
	v->lost = false;
	v->fault_count = 0;
	memset(v->log, 0, sizeof(v->log));
	for (unsigned int i = 0; i < GPUP_MAX_QUEUES; i++) {
		struct vgpu_queue *q = &v->q[i];

		q->ring = q->pi_addr = q->watch = 0;
		q->entries = q->engine = q->control = q->priority = 0;
		q->vector = i;
		q->ci = q->status = q->fault = 0;
		q->fence = 0;
	}
}

static void drain_doorbell(struct vgpu_queue *q)
{
	uint64_t n;

	if (read(q->doorbell_fd, &n, sizeof(n)) == (ssize_t)sizeof(n)) {
		pthread_mutex_lock(&q->v->lock);
		q->v->doorbells_done += n;
		pthread_mutex_unlock(&q->v->lock);
	}
}

/* Drop q from its engine, folding its counters into the vgpu's (cfg_lock). */
void vgpu_queue_detach(struct vgpu_queue *q)
{
	struct gpup_ectx_stats st;
	struct vgpu *v = q->v;

	if (!q->attached)
		return;
	gpup_engine_detach(&q->ectx);
	q->attached = false;
	/* Off its engine, nobody looks at its ring: the guest must ring. */
	if (q->watching) {
		iommu_dma_store32(v->iommu, q->run.watch, 0);
		q->watching = false;
	}
	gpup_ectx_stats(&q->ectx, &st);
	pthread_mutex_lock(&v->lock);
	v->engine_ns_done[q->kind] += st.engine_ns;
	v->doorbells_done += st.doorbells;
	pthread_mutex_unlock(&v->lock);
	q->ectx.engine_ns = q->ectx.slices = q->ectx.doorbells = q->ectx.preemptions = 0;
}

static bool pow2_in(uint32_t n, uint32_t lo, uint32_t hi)
{
	return n >= lo && n <= hi && !(n & (n - 1));
}

/* Check the setup registers (lock held): 0 or a RING fault's address. */
static int setup_check(const struct vgpu_queue *q, uint64_t *bad)
{
	if (!pow2_in(q->entries, 2, 65536)) {
		*bad = q->entries;
		return -EINVAL;
	}
	if (q->engine > GPUP_ENGINE_COPY) {
		*bad = q->engine;
		return -EINVAL;
	}
	if (q->ring % GPUP_CMD_SIZE) {
		*bad = q->ring;
		return -EINVAL;
	}
	if (q->pi_addr % 4) {
		*bad = q->pi_addr;
		return -EINVAL;
	}
	if (q->watch % 4) {
		*bad = q->watch;
		return -EINVAL;
	}
	return 0;
}

/* Capture the setup registers for the engine and check them (lock held). */
static int queue_capture(struct vgpu_queue *q, uint64_t *bad)
{
	q->status = GPUP_QSTS_ENABLED;
	q->fault = 0;
	q->run.ring = q->ring;
	q->run.pi_addr = q->pi_addr;
	q->run.watch = q->v->doorbell_fds_out ? 0 : q->watch;
	q->watching = false;
	q->run.entries = q->entries;
	q->run.vector = q->vector;
	q->kind = q->engine == GPUP_ENGINE_COPY ? GPUP_ENGINE_KIND_COPY : GPUP_ENGINE_KIND_COMPUTE;
	q->remote_since = 0;
	q->ectx.weight = q->v->sched_set && q->v->sched.weight ? q->v->sched.weight : q->priority;
	return setup_check(q, bad);
}

/* The engine a queue runs on: queues of different vgpus spread over a
 * GPU's engines of the kind they ask for. */
struct gpup_engine *vgpu_queue_engine(struct vgpu_queue *q)
{
	struct gpup_gpu_desc d;

	gpup_gpu_describe(q->v->gpu, &d);
	unsigned int n = q->kind == GPUP_ENGINE_KIND_COPY ? d.ncopy : d.ncompute;

	return gpup_gpu_engine(q->v->gpu, q->kind, (q->v->id + q->idx) % n);
}

int vgpu_queue_attach(struct vgpu_queue *q)
{
	struct gpup_engine *e = vgpu_queue_engine(q);
	struct vgpu *v = q->v;
	int r = e ? gpup_engine_attach(e, &q->ectx) : -ENODEV;

	q->attached = !r;
	if (!r) {
		vgpu_sched_apply_queue(v, e, q);
		return 0;
	}
	pthread_mutex_lock(&v->lock);
	vgpu_fault_locked(q, GPUP_FAULT_DEVICE_LOST, 0, (uint64_t)-r);
	pthread_mutex_unlock(&v->lock);
	return r;
}

static uint32_t enable_fault_code(int r)
{
	if (r == -EINVAL)
		return GPUP_FAULT_RING;
	return r == -EACCES ? GPUP_FAULT_IOMMU_PERM : GPUP_FAULT_IOMMU_UNMAPPED;
}

/* Whether the word at iova lies in a remote mapping: memory the device
 * reaches only by asking the client (DMA_READ), who may be waiting for
 * the register write being served to be answered first. */
static bool pi_remote(struct vgpu *v, uint64_t iova)
{
	void *host = NULL;

	return !iommu_translate(v->iommu, iova, IOMMU_READ, &host, NULL) && !host;
}

/* Q_CONTROL.ENABLE 0 -> 1 (cfg_lock): capture setup, CI := PI, attach.
 * Bad setup or an unreadable PI faults the queue at once.  A PI in a
 * remote mapping is read by the engine instead (STARTING until then):
 * reading it here would wait on a client that waits on us. */
static void queue_enable(struct vgpu_queue *q)
{
	struct vgpu *v = q->v;
	bool defer = false;
	uint64_t bad;
	uint32_t pi = 0;
	int r;

	drain_doorbell(q);
	pthread_mutex_lock(&v->lock);
	r = queue_capture(q, &bad);
	pthread_mutex_unlock(&v->lock);
	if (!r) {
		bad = q->run.pi_addr;
		defer = pi_remote(v, q->run.pi_addr);
		if (!defer)
			r = iommu_dma_load32(v->iommu, q->run.pi_addr, &pi);
	}
	if (!r) {
		pthread_mutex_lock(&v->lock);
		if (defer) {
			q->pi_seen = q->ci;
			q->status |= GPUP_QSTS_STARTING;
		} else {
			q->ci = q->pi_seen = pi;
		}
		q->pi_pending = defer;
		q->have_cmd = false;
		pthread_mutex_unlock(&v->lock);
		/* Stopped for a migration: it joins an engine on resume. */
		if (v->quiesced)
			q->parked = true;
		else if (!vgpu_queue_attach(q) && defer)
			gpup_ectx_kick(&q->ectx);
		return;
	}
	pthread_mutex_lock(&v->lock);
	vgpu_fault_locked(q, enable_fault_code(r), bad, r == -EINVAL ? 0 : GPUP_FAULT_DETAIL_READ);
	pthread_mutex_unlock(&v->lock);
}

static void queue_disable(struct vgpu_queue *q)
{
	vgpu_queue_detach(q);
	q->parked = false;
	pthread_mutex_lock(&q->v->lock);
	q->status = 0;
	pthread_mutex_unlock(&q->v->lock);
}

static void queue_control(struct vgpu_queue *q, uint32_t val)
{
	uint32_t old;

	pthread_mutex_lock(&q->v->lock);
	old = q->control;
	q->control = val & GPUP_QCTL_ENABLE;
	pthread_mutex_unlock(&q->v->lock);
	if ((val & GPUP_QCTL_ENABLE) && !(old & GPUP_QCTL_ENABLE))
		queue_enable(q);
	else if (!(val & GPUP_QCTL_ENABLE) && (old & GPUP_QCTL_ENABLE))
		queue_disable(q);
}

/* The watchdog's reset: what the guest needs to learn why survives, and
 * a lost GPU stays lost (lock held). */
static void regs_reset_keep_faults_locked(struct vgpu *v)
{
	struct vgpu_fault_rec log[GPUP_FAULT_LOG_ENTRIES];
	uint64_t count = v->fault_count;
	uint32_t fault = v->intr_status & GPUP_INTR_FAULT;
	bool lost = v->lost;

	memcpy(log, v->log, sizeof(log));
	regs_reset_locked(v);
	memcpy(v->log, log, sizeof(log));
	v->fault_count = count;
	v->intr_status = fault;
	v->lost = lost;
}

void vgpu_reset_cfg_locked(struct vgpu *v, bool keep_faults)
{
	for (unsigned int i = 0; i < GPUP_MAX_QUEUES; i++) {
		vgpu_queue_detach(&v->q[i]);
		v->q[i].parked = false;
		drain_doorbell(&v->q[i]);
	}
	pthread_mutex_lock(&v->lock);
	if (keep_faults)
		regs_reset_keep_faults_locked(v);
	else
		regs_reset_locked(v);
	/* Any reset pays what the watchdog owed. */
	v->wd_pending = false;
	pthread_mutex_unlock(&v->lock);
}

void vgpu_reset(struct vgpu *v)
{
	pthread_mutex_lock(&v->cfg_lock);
	vgpu_reset_cfg_locked(v, false);
	pthread_mutex_unlock(&v->cfg_lock);
}

static void kick_queues(struct vgpu *v)
{
	for (unsigned int i = 0; i < GPUP_MAX_QUEUES; i++)
		if (v->q[i].attached)
			gpup_ectx_kick(&v->q[i].ectx);
}

static void device_control(struct vgpu *v, uint32_t val)
{
	uint32_t old;

	if (val & GPUP_CTRL_RESET) {
		vgpu_reset_cfg_locked(v, false);
		return;
	}
	pthread_mutex_lock(&v->lock);
	old = v->control;
	v->control = val & GPUP_CTRL_ENABLE;
	pthread_mutex_unlock(&v->lock);
	if ((val & GPUP_CTRL_ENABLE) && !(old & GPUP_CTRL_ENABLE))
		kick_queues(v);
}

/* Plain RW register of a queue block, or NULL. */
static uint32_t *queue_reg(struct vgpu_queue *q, uint32_t r)
{
	switch (r) {
	case GPUP_Q_ENGINE:
		return &q->engine;
	case GPUP_Q_RING_ENTRIES:
		return &q->entries;
	case GPUP_Q_VECTOR:
		return &q->vector;
	case GPUP_Q_PRIORITY:
		return &q->priority;
	default:
		return NULL;
	}
}

static void set_half(uint64_t *reg, bool hi, uint32_t val)
{
	unsigned int sh = hi ? 32 : 0;

	*reg = (*reg & ~(0xffffffffull << sh)) | ((uint64_t)val << sh);
}

static void queue_write(struct vgpu *v, unsigned int qi, uint32_t r, uint32_t val)
{
	struct vgpu_queue *q = &v->q[qi];
	uint32_t *p;

	if (r == GPUP_Q_CONTROL) {
		queue_control(q, val);
		return;
	}
	pthread_mutex_lock(&v->lock);
	if (r == GPUP_Q_RING_LO || r == GPUP_Q_RING_HI)
		set_half(&q->ring, r == GPUP_Q_RING_HI, val);
	else if (r == GPUP_Q_PI_ADDR_LO || r == GPUP_Q_PI_ADDR_HI)
		set_half(&q->pi_addr, r == GPUP_Q_PI_ADDR_HI, val);
	else if ((r == GPUP_Q_WATCH_LO || r == GPUP_Q_WATCH_HI) && !(q->control & GPUP_QCTL_ENABLE))
		set_half(&q->watch, r == GPUP_Q_WATCH_HI, val);
	else if ((p = queue_reg(q, r)))
		*p = val;
	pthread_mutex_unlock(&v->lock);
}

static void reg_write(struct vgpu *v, uint32_t off, uint32_t val)
{
	if (off >= GPUP_PAGE_DOORBELL) {
		if (off < GPUP_DOORBELL(GPUP_MAX_QUEUES))
			vgpu_doorbell(v, (off - GPUP_PAGE_DOORBELL) / 4);
		return; /* MSI-X pages belong to the VMM */
	}
	if (off >= GPUP_REG_QUEUE_BASE && off < GPUP_REG_QUEUE(GPUP_MAX_QUEUES)) {
		queue_write(v, (off - GPUP_REG_QUEUE_BASE) / GPUP_REG_QUEUE_STRIDE,
			    (off - GPUP_REG_QUEUE_BASE) % GPUP_REG_QUEUE_STRIDE, val);
		return;
	}
	if (off == GPUP_REG_CONTROL) {
		device_control(v, val);
		return;
	}
	pthread_mutex_lock(&v->lock);
	if (off == GPUP_REG_INTR_STATUS)
		v->intr_status &= ~val;
	else if (off == GPUP_REG_INTR_MASK)
		v->intr_mask = val;
	else if (off == GPUP_REG_FAULT_VECTOR)
		v->fault_vector = val;
	else if (off == GPUP_REG_SCRATCH)
		v->scratch = val;
	pthread_mutex_unlock(&v->lock);
}

static uint32_t queue_read(const struct vgpu_queue *q, uint32_t r)
{
	switch (r) {
	case GPUP_Q_RING_LO:
		return (uint32_t)q->ring;
	case GPUP_Q_RING_HI:
		return (uint32_t)(q->ring >> 32);
	case GPUP_Q_PI_ADDR_LO:
		return (uint32_t)q->pi_addr;
	case GPUP_Q_PI_ADDR_HI:
		return (uint32_t)(q->pi_addr >> 32);
	case GPUP_Q_WATCH_LO:
		return (uint32_t)q->watch;
	case GPUP_Q_WATCH_HI:
		return (uint32_t)(q->watch >> 32);
	case GPUP_Q_CI:
		return q->ci;
	case GPUP_Q_CONTROL:
		return q->control;
	case GPUP_Q_STATUS:
		return q->status;
	case GPUP_Q_FAULT:
		return q->fault;
	case GPUP_Q_FENCE_LO:
		return (uint32_t)q->fence;
	case GPUP_Q_FENCE_HI:
		return (uint32_t)(q->fence >> 32);
	default: {
		uint32_t *p = queue_reg((struct vgpu_queue *)q, r);

		return p ? *p : 0;
	}
	}
}

static uint32_t fault_log_read(const struct vgpu *v, uint32_t off)
{
	const struct vgpu_fault_rec *rec = &v->log[off / GPUP_FAULT_REC_SIZE];

	switch (off % GPUP_FAULT_REC_SIZE) {
	case GPUP_FAULT_REC_CODE:
		return rec->code;
	case GPUP_FAULT_REC_QUEUE:
		return rec->queue;
	case GPUP_FAULT_REC_ADDR_LO:
		return (uint32_t)rec->addr;
	case GPUP_FAULT_REC_ADDR_HI:
		return (uint32_t)(rec->addr >> 32);
	case GPUP_FAULT_REC_DETAIL_LO:
		return (uint32_t)rec->detail;
	case GPUP_FAULT_REC_DETAIL_HI:
		return (uint32_t)(rec->detail >> 32);
	case GPUP_FAULT_REC_SEQ_LO:
		return (uint32_t)rec->seq;
	default:
		return (uint32_t)(rec->seq >> 32);
	}
}

static uint32_t status_read(const struct vgpu *v)
{
	uint32_t s = 0;

	if ((v->control & GPUP_CTRL_ENABLE) && !v->lost)
		s |= GPUP_STS_READY;
	if (v->intr_status & GPUP_INTR_FAULT)
		s |= GPUP_STS_FAULT;
	if (v->lost)
		s |= GPUP_STS_LOST;
	if (v->intr_status & GPUP_INTR_RECOVERED)
		s |= GPUP_STS_RECOVERED;
	return s;
}

static uint32_t dev_read(struct vgpu *v, uint32_t off)
{
	uint64_t t;

	switch (off) {
	case GPUP_REG_ID:
		return GPUP_ID_MAGIC;
	case GPUP_REG_VERSION:
		return GPUP_ABI_VERSION;
	case GPUP_REG_CAPS:
		return GPUP_CAP_MSIX | GPUP_CAP_SHADOW_PI | GPUP_CAP_FAULT_LOG | GPUP_CAP_TIMESTAMP |
		       GPUP_CAP_RECOVERY | (v->doorbell_fds_out ? 0 : GPUP_CAP_WATCH);
	case GPUP_REG_NUM_QUEUES:
		return GPUP_MAX_QUEUES;
	case GPUP_REG_VRAM_SIZE_LO:
		return (uint32_t)v->vram_size;
	case GPUP_REG_VRAM_SIZE_HI:
		return (uint32_t)(v->vram_size >> 32);
	case GPUP_REG_NUM_ENGINES:
		return 2;
	case GPUP_REG_KERNELS:
		return v->kernels;
	case GPUP_REG_CONTROL:
		return v->control;
	case GPUP_REG_STATUS:
		return status_read(v);
	case GPUP_REG_INTR_STATUS:
		return v->intr_status;
	case GPUP_REG_INTR_MASK:
		return v->intr_mask;
	case GPUP_REG_FAULT_VECTOR:
		return v->fault_vector;
	case GPUP_REG_FAULT_COUNT:
		return (uint32_t)v->fault_count;
	case GPUP_REG_TIME_LO:
		t = vgpu_clock_ns(v);
		v->time_hi_latch = (uint32_t)(t >> 32);
		return (uint32_t)t;
	case GPUP_REG_TIME_HI:
		return v->time_hi_latch;
	case GPUP_REG_SCRATCH:
		return v->scratch;
	default:
		return 0;
	}
}

static uint32_t reg_read(struct vgpu *v, uint32_t off)
{
	if (off >= GPUP_PAGE_DOORBELL)
		return 0;
	if (off >= GPUP_REG_QUEUE_BASE && off < GPUP_REG_QUEUE(GPUP_MAX_QUEUES))
		return queue_read(&v->q[(off - GPUP_REG_QUEUE_BASE) / GPUP_REG_QUEUE_STRIDE],
				  (off - GPUP_REG_QUEUE_BASE) % GPUP_REG_QUEUE_STRIDE);
	if (off >= GPUP_REG_FAULT_LOG &&
	    off < GPUP_REG_FAULT_LOG + GPUP_FAULT_LOG_ENTRIES * GPUP_FAULT_REC_SIZE)
		return fault_log_read(v, off - GPUP_REG_FAULT_LOG);
	return dev_read(v, off);
}

/* Any access of 1 to 8 bytes inside BAR0, at any offset, as a CPU can
 * make: it covers the 32-bit registers [first, first + 4 * n). */
static bool access_ok(uint64_t off, size_t len)
{
	return len >= 1 && len <= 8 && off < GPUP_BAR0_SIZE && len <= GPUP_BAR0_SIZE - off;
}

static unsigned int regs_covered(uint64_t off, size_t len)
{
	return (unsigned int)(((off + len - 1) / 4) - off / 4 + 1);
}

/* A read returns the bytes of the registers it covers, each register read
 * once (so a byte of TIME_LO latches TIME_HI as the whole register does). */
int vgpu_bar0_read(struct vgpu *v, uint64_t off, void *buf, size_t len)
{
	uint32_t val[3];
	uint32_t first = (uint32_t)(off & ~3ull);
	unsigned int n;

	if (!v || !buf || !access_ok(off, len))
		return -EINVAL;
	n = regs_covered(off, len);
	pthread_mutex_lock(&v->lock);
	for (unsigned int i = 0; i < n; i++)
		val[i] = reg_read(v, first + 4 * i);
	pthread_mutex_unlock(&v->lock);
	memcpy(buf, (uint8_t *)val + (off - first), len);
	return 0;
}

/* What a write of part of register off leaves in the bytes it does not
 * write: 0 where a write acts on the bits set (INTR_STATUS is RW1C, a
 * doorbell rings whatever is written), the register's value elsewhere, so
 * a partial write of a plain register is a read-modify-write and one of a
 * control register leaves its other bits as they were. */
static uint32_t partial_base(struct vgpu *v, uint32_t off)
{
	uint32_t val;

	if (off >= GPUP_PAGE_DOORBELL || off == GPUP_REG_INTR_STATUS)
		return 0;
	pthread_mutex_lock(&v->lock);
	val = reg_read(v, off);
	pthread_mutex_unlock(&v->lock);
	return val;
}

/* A write reaches each register it covers once, in address order; the
 * bytes of a register it does not cover are partial_base's. */
int vgpu_bar0_write(struct vgpu *v, uint64_t off, const void *buf, size_t len)
{
	uint32_t first = (uint32_t)(off & ~3ull);
	uint8_t bytes[12];
	unsigned int n;

	if (!v || !buf || !access_ok(off, len))
		return -EINVAL;
	n = regs_covered(off, len);
	pthread_mutex_lock(&v->cfg_lock);
	vgpu_wd_flush(v);
	for (unsigned int i = 0; i < n; i++) {
		uint32_t reg = first + 4 * i, val;
		uint64_t lo = reg > off ? reg : off;
		uint64_t hi = reg + 4 < off + len ? reg + 4 : off + len;

		if (lo != reg || hi != reg + 4u) {
			val = partial_base(v, reg);
			memcpy(bytes, &val, 4);
		}
		memcpy(bytes + (lo - reg), (const uint8_t *)buf + (lo - off), hi - lo);
		memcpy(&val, bytes, 4);
		reg_write(v, reg, val);
	}
	pthread_mutex_unlock(&v->cfg_lock);
	return 0;
}

void vgpu_set_doorbell_fds_out(struct vgpu *v, bool out)
{
	pthread_mutex_lock(&v->lock);
	v->doorbell_fds_out = out;
	pthread_mutex_unlock(&v->lock);
}

int vgpu_doorbell_fd(struct vgpu *v, unsigned int q)
{
	if (!v || q >= GPUP_MAX_QUEUES)
		return -EINVAL;
	return v->q[q].doorbell_fd;
}

void vgpu_doorbell(struct vgpu *v, unsigned int q)
{
	uint64_t one = 1;

	if (!v || q >= GPUP_MAX_QUEUES)
		return;
	/* Not perror, which dups stderr: a client's thread may be confined. */
	if (write(v->q[q].doorbell_fd, &one, sizeof(one)) < 0)
		fprintf(stderr, "gpup vgpu: doorbell: %s\n", strerror(errno));
}

int vgpu_set_irq_fd(struct vgpu *v, unsigned int vector, int fd)
{
	int nfd = -1;

	if (!v || vector >= GPUP_MSIX_VECTORS || fd < -1)
		return -EINVAL;
	if (fd >= 0) {
		nfd = fcntl(fd, F_DUPFD_CLOEXEC, 0);
		if (nfd < 0)
			return -errno;
	}
	pthread_mutex_lock(&v->lock);
	int old = v->irq_fd[vector];

	v->irq_fd[vector] = nfd;
	v->irq_full_until[vector] = 0;
	pthread_mutex_unlock(&v->lock);
	if (old >= 0)
		close(old);
	return 0;
}

uint64_t vgpu_clock_ns(const struct vgpu *v)
{
	return gpup_gpu_clock_ns(v->gpu) + (uint64_t)v->clock_bias;
}

uint32_t vgpu_kernels(struct vgpu *v)
{
	pthread_mutex_lock(&v->lock);
	uint32_t k = v->kernels;

	pthread_mutex_unlock(&v->lock);
	return k;
}

void vgpu_set_lost(struct vgpu *v)
{
	pthread_mutex_lock(&v->lock);
	v->lost = true;
	for (unsigned int i = 0; i < GPUP_MAX_QUEUES; i++) {
		struct vgpu_queue *q = &v->q[i];

		if ((q->status & GPUP_QSTS_ENABLED) && !(q->status & GPUP_QSTS_FAULTED))
			vgpu_fault_locked(q, GPUP_FAULT_DEVICE_LOST, 0, 0);
	}
	pthread_mutex_unlock(&v->lock);
}

void vgpu_get_stats(struct vgpu *v, struct vgpu_stats *st)
{
	struct gpup_ectx_stats es[GPUP_MAX_QUEUES];

	memset(st, 0, sizeof(*st));
	pthread_mutex_lock(&v->cfg_lock);
	for (unsigned int i = 0; i < GPUP_MAX_QUEUES; i++)
		gpup_ectx_stats(&v->q[i].ectx, &es[i]);
	pthread_mutex_lock(&v->lock);
	st->faults = v->faults;
	st->interrupts = v->interrupts;
	st->doorbells = v->doorbells_done;
	st->engine_ns[0] = v->engine_ns_done[0];
	st->engine_ns[1] = v->engine_ns_done[1];
	for (unsigned int i = 0; i < GPUP_MAX_QUEUES; i++) {
		st->commands += v->q[i].commands;
		st->doorbells += es[i].doorbells;
		st->engine_ns[v->q[i].kind] += es[i].engine_ns;
	}
	pthread_mutex_unlock(&v->lock);
	pthread_mutex_unlock(&v->cfg_lock);
}

static void vgpu_free(struct vgpu *v)
{
	for (unsigned int i = 0; i < GPUP_MAX_QUEUES; i++) {
		if (v->q[i].doorbell_fd >= 0)
			close(v->q[i].doorbell_fd);
		free(v->q[i].bounce);
	}
	for (unsigned int i = 0; i < GPUP_MSIX_VECTORS; i++)
		if (v->irq_fd[i] >= 0)
			close(v->irq_fd[i]);
	mig_dev_destroy(v->mig);
	free(v->dirty);
	free(v->pdirty);
	/* The tenant's data leaves the daemon with it. */
	gpup_gpu_vram_detach(v->gpu, v->vram_offset);
	pthread_mutex_destroy(&v->lock);
	pthread_mutex_destroy(&v->cfg_lock);
	pthread_mutex_destroy(&v->mig_lock);
	pthread_rwlock_destroy(&v->home_lock);
	free(v);
}

static int cfg_check(const struct vgpu_cfg *cfg)
{
	struct gpup_gpu_desc d;

	if (!cfg || !cfg->gpu || !cfg->iommu || !cfg->vram_size)
		return -EINVAL;
	gpup_gpu_describe(cfg->gpu, &d);
	if (cfg->vram_size > d.vram_size || cfg->vram_offset > d.vram_size - cfg->vram_size ||
	    cfg->vram_offset % 8 || (cfg->kernels & ~d.kernels))
		return -EINVAL;
	return 0;
}

static void queue_init(struct vgpu *v, unsigned int i)
{
	struct vgpu_queue *q = &v->q[i];

	q->v = v;
	q->idx = i;
	q->doorbell_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	q->ectx.ops = &vgpu_queue_ops;
	q->ectx.opaque = q;
	q->ectx.doorbell_fd = q->doorbell_fd;
}

struct vgpu *vgpu_create(const struct vgpu_cfg *cfg)
{
	int r = cfg_check(cfg);
	struct vgpu *v;

	if (r) {
		errno = -r;
		return NULL;
	}
	uint8_t *vram = gpup_gpu_vram_map(cfg->gpu);

	if (!vram) {
		errno = ENODEV;
		return NULL;
	}
	/* VRAM of the window's own, zeroed: nothing of an earlier tenant's,
	 * and BAR2's fd reaches nothing of another's. */
	r = gpup_gpu_vram_attach(cfg->gpu, cfg->vram_offset, cfg->vram_size);
	if (r) {
		errno = -r;
		return NULL;
	}
	v = calloc(1, sizeof(*v));
	if (!v) {
		gpup_gpu_vram_detach(cfg->gpu, cfg->vram_offset);
		errno = ENOMEM;
		return NULL;
	}
	pthread_mutex_init(&v->cfg_lock, NULL);
	pthread_mutex_init(&v->lock, NULL);
	pthread_mutex_init(&v->mig_lock, NULL);
	pthread_rwlock_init(&v->home_lock, NULL);
	v->gpu = cfg->gpu;
	v->kernels = cfg->kernels ? cfg->kernels : gpup_gpu_kernels(cfg->gpu);
	v->iommu = cfg->iommu;
	v->vram = vram + cfg->vram_offset;
	v->vram_offset = cfg->vram_offset;
	v->vram_size = cfg->vram_size;
	v->id = __atomic_fetch_add(&vgpu_next_id, 1, __ATOMIC_RELAXED);
	snprintf(v->name, sizeof(v->name), "%s", cfg->name ? cfg->name : "vgpu");
	snprintf(v->type, sizeof(v->type), "%s", cfg->type ? cfg->type : "");
	snprintf(v->label, sizeof(v->label), "partition %s", v->name);
	gpup_pci_cfg_init(&v->pci, v->vram_size);
	for (unsigned int i = 0; i < GPUP_MSIX_VECTORS; i++)
		v->irq_fd[i] = -1;
	for (unsigned int i = 0; i < GPUP_MAX_QUEUES; i++)
		v->q[i].doorbell_fd = -1;
	for (unsigned int i = 0; i < GPUP_MAX_QUEUES; i++) {
		queue_init(v, i);
		if (v->q[i].doorbell_fd < 0) {
			r = errno;
			vgpu_free(v);
			errno = r;
			return NULL;
		}
	}
	regs_reset_locked(v);
	r = vgpu_mig_init(v);
	if (r) {
		vgpu_free(v);
		errno = -r;
		return NULL;
	}
	return v;
}

void vgpu_destroy(struct vgpu *v)
{
	if (!v)
		return;
	pthread_mutex_lock(&v->cfg_lock);
	pthread_mutex_lock(&v->lock);
	v->dying = true;
	pthread_mutex_unlock(&v->lock);
	/* With every queue detached no watchdog report for v is under way,
	 * so no reset thread can start after this. */
	for (unsigned int i = 0; i < GPUP_MAX_QUEUES; i++)
		vgpu_queue_detach(&v->q[i]);
	pthread_mutex_unlock(&v->cfg_lock);
	vgpu_wd_join(v);
	if (v->chan) {
		iommu_set_remote(v->iommu, NULL, NULL);
		vfu_dma_chan_put(v->chan);
	}
	vgpu_free(v);
}
