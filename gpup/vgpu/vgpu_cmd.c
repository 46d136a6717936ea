// SPDX-License-Identifier: MIT
/*
 * The vGPU command processor: the run op an engine calls for a queue.  It
 * reads the producer index and packets by DMA through the partition's
 * IOMMU domain, executes them, and publishes the consumer index.
 *
 * Every address is checked before anything moves (VRAM against the
 * partition window with overflow-safe arithmetic, IOVA ranges by walking
 * the IOMMU translation), so a faulting command writes nothing.  A fault
 * stops only this queue, but for the watchdog's, which resets the
 * partition.  Fault records carry: addr = the offending address
 * (or the packet's IOVA when no address is to blame), detail bits 0..31 =
 * IOMMU access bits for IOMMU faults, else the offending value (opcode,
 * kernel id, space, length...), detail bits 32..63 = the packet's tag.
 *
 * COPY and FILL move at most VGPU_COPY_CHUNK bytes between deadline checks
 * and KERNEL launches stop at work-group boundaries, saving progress in the
 * queue, so a long command is preempted and resumed like the scheduler
 * expects.
 *
 * DOC: client memory without an fd
 *
 * A DMA into memory the client mapped without an fd waits for the client
 * to answer a DMA_READ / DMA_WRITE.  The engine does not sit on that wait
 * while another context of it has work: the transfer gives way (-EAGAIN),
 * the step ends as if preempted with nothing of it recorded, and it runs
 * again from its last chunk when the queue is next picked.  Every step
 * here is safe to repeat from there (reads, and writes of the same
 * bytes).  The wait's deadline, VGPU_REMOTE_WAIT_NS, runs from the first
 * try, so a client that never answers costs its own queue a fault
 * (IOMMU_UNMAPPED, as the IOMMU records it) and other partitions nothing
 * but the requests it leaves unanswered.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "gpup/vgpu/vgpu_int.h"
#include "iommu/iommu.h"

enum step { STEP_DONE, STEP_MORE, STEP_WAIT, STEP_FAULT };

/* The queue this thread's run op is running, for the remote deadline. */
static _Thread_local struct vgpu_queue *running_queue;

uint64_t vgpu_remote_deadline(void)
{
	struct vgpu_queue *q = running_queue;
	uint64_t now = gpup_mono_ns();

	if (!q)
		return now + VGPU_REMOTE_WAIT_NS;
	if (!q->remote_since)
		q->remote_since = now;
	return q->remote_since + VGPU_REMOTE_WAIT_NS;
}

void vgpu_remote_done(int rc)
{
	if (running_queue && rc != -EAGAIN)
		running_queue->remote_since = 0;
}

/* A fault raised while running a packet: the tag goes into the detail. */
static enum step cmd_fault(struct vgpu_queue *q, uint32_t code, uint64_t addr,
			   uint64_t detail)
{
	struct vgpu *v = q->v;

	pthread_mutex_lock(&v->lock);
	if (!(q->status & GPUP_QSTS_FAULTED))
		vgpu_fault_locked(q, code, addr,
				  ((uint64_t)q->cmd.hdr.tag << 32) | (uint32_t)detail);
	pthread_mutex_unlock(&v->lock);
	return STEP_FAULT;
}

static uint64_t packet_iova(const struct vgpu_queue *q)
{
	return q->run.ring + (uint64_t)(q->ci & (q->run.entries - 1)) * GPUP_CMD_SIZE;
}

static bool vram_ok(const struct vgpu *v, uint64_t off, uint64_t len)
{
	return len <= v->vram_size && off <= v->vram_size - len;
}

static uint32_t iommu_code(int r)
{
	return r == -EACCES ? GPUP_FAULT_IOMMU_PERM : GPUP_FAULT_IOMMU_UNMAPPED;
}

static uint32_t access_detail(unsigned int access)
{
	return access == IOMMU_WRITE ? GPUP_FAULT_DETAIL_WRITE : GPUP_FAULT_DETAIL_READ;
}

/* Every byte of [iova, +len) translatable for access; else the first bad
 * byte in *bad and the IOMMU's error. */
static int iova_check(struct vgpu *v, uint64_t iova, uint64_t len, unsigned int access,
		      uint64_t *bad)
{
	uint64_t end, contig;
	void *host;

	if (__builtin_add_overflow(iova, len, &end) || end > (1ull << IOMMU_IOVA_BITS)) {
		*bad = iova;
		return -EFAULT;
	}
	for (uint64_t at = iova; at < end; at += contig) {
		int r = iommu_translate(v->iommu, at, access, &host, &contig);

		if (r) {
			*bad = at;
			return r;
		}
		if (!contig)
			contig = 1;
	}
	return 0;
}

/* One operand range of a COPY/FILL: checked in its space. */
static enum step range_check(struct vgpu_queue *q, uint8_t space, uint64_t addr,
			     uint64_t len, unsigned int access)
{
	uint64_t bad;
	int r;

	if (space == GPUP_SPACE_VRAM) {
		if (!vram_ok(q->v, addr, len))
			return cmd_fault(q, GPUP_FAULT_VRAM_RANGE, addr, len);
		return STEP_DONE;
	}
	if (space != GPUP_SPACE_IOVA)
		return cmd_fault(q, GPUP_FAULT_BAD_ARGS, packet_iova(q), space);
	r = iova_check(q->v, addr, len, access, &bad);
	if (r)
		return cmd_fault(q, iommu_code(r), bad, access_detail(access));
	return STEP_DONE;
}

static bool overlaps(uint64_t a, uint64_t b, uint64_t len)
{
	return a < b ? b - a < len : a - b < len;
}

static int bounce_get(struct vgpu_queue *q)
{
	if (!q->bounce)
		q->bounce = malloc(VGPU_BOUNCE_SIZE);
	return q->bounce ? 0 : -ENOMEM;
}

/* Move one chunk of a checked COPY.  0, or the IOMMU's error with the
 * chunk's address on the failing side in *at. */
static int copy_chunk(struct vgpu_queue *q, uint64_t src, uint64_t dst, uint64_t n,
		      uint64_t *at)
{
	const struct gpup_cmd_copy *c = &q->cmd.copy;
	struct vgpu *v = q->v;
	int r;

	if (c->src_space == GPUP_SPACE_VRAM && c->dst_space == GPUP_SPACE_VRAM) {
		memmove(v->vram + dst, v->vram + src, n);
		vgpu_vram_written(v, dst, n);
		return 0;
	}
	*at = c->src_space == GPUP_SPACE_IOVA ? src : dst;
	if (c->src_space == GPUP_SPACE_IOVA && c->dst_space == GPUP_SPACE_VRAM) {
		/* Marked even when it fails: part of the chunk may have landed. */
		r = iommu_dma_read(v->iommu, src, v->vram + dst, n);
		vgpu_vram_written(v, dst, n);
		return r;
	}
	if (c->src_space == GPUP_SPACE_VRAM)
		return iommu_dma_write(v->iommu, dst, v->vram + src, n);
	r = bounce_get(q);
	for (uint64_t off = 0; !r && off < n; off += VGPU_BOUNCE_SIZE) {
		size_t m = n - off < VGPU_BOUNCE_SIZE ? n - off : VGPU_BOUNCE_SIZE;

		*at = src + off;
		r = iommu_dma_read(v->iommu, src + off, q->bounce, m);
		if (!r) {
			*at = dst + off;
			r = iommu_dma_write(v->iommu, dst + off, q->bounce, m);
		}
	}
	return r;
}

static enum step exec_copy(struct vgpu_queue *q, uint64_t deadline)
{
	const struct gpup_cmd_copy *c = &q->cmd.copy;
	enum step s;

	if (q->prog.done == 0) {
		s = range_check(q, c->src_space, c->src, c->len, IOMMU_READ);
		if (s == STEP_DONE)
			s = range_check(q, c->dst_space, c->dst, c->len, IOMMU_WRITE);
		if (s != STEP_DONE)
			return s;
		if (c->src_space == c->dst_space && overlaps(c->src, c->dst, c->len))
			return cmd_fault(q, GPUP_FAULT_BAD_ARGS, c->dst, c->len);
	}
	while (q->prog.done < c->len) {
		uint64_t left = c->len - q->prog.done;
		uint64_t n = left < VGPU_COPY_CHUNK ? left : VGPU_COPY_CHUNK;
		uint64_t at = 0;
		int r = copy_chunk(q, c->src + q->prog.done, c->dst + q->prog.done, n, &at);

		if (r == -EAGAIN)
			return STEP_MORE;
		/* Unmapped since the check: the guest raced its own DMA, and
		 * the chunks before this one have landed. */
		if (r)
			return cmd_fault(q, iommu_code(r), at, 0);
		q->prog.done += n;
		if (q->prog.done < c->len && gpup_slice_over(deadline))
			return STEP_MORE;
	}
	return STEP_DONE;
}

/* Repeat pattern over len bytes starting phase bytes into it: a short
 * prefix by hand, then doubling copies of the prefix (its length stays a
 * multiple of 4, so the phase carries over) at memcpy speed. */
static void pattern_fill(uint8_t *dst, uint64_t len, uint32_t pattern, uint64_t phase)
{
	uint64_t head = len < 256 ? len : 256;
	uint8_t p[4];

	memcpy(p, &pattern, 4);
	for (uint64_t i = 0; i < head; i++)
		dst[i] = p[(phase + i) & 3];
	for (uint64_t off = head; off < len; off *= 2)
		memcpy(dst + off, dst, len - off < off ? len - off : off);
}

static int fill_chunk(struct vgpu_queue *q, uint64_t at, uint64_t n)
{
	const struct gpup_cmd_fill *f = &q->cmd.fill;
	struct vgpu *v = q->v;
	int r;

	if (f->dst_space == GPUP_SPACE_VRAM) {
		pattern_fill(v->vram + f->dst + at, n, f->pattern, at);
		vgpu_vram_written(v, f->dst + at, n);
		return 0;
	}
	r = bounce_get(q);
	if (r)
		return r;
	/* The bounce holds a whole number of patterns, so every piece of a
	 * fill starts in phase. */
	pattern_fill(q->bounce, VGPU_BOUNCE_SIZE, f->pattern, 0);
	for (uint64_t off = 0; !r && off < n; off += VGPU_BOUNCE_SIZE) {
		size_t m = n - off < VGPU_BOUNCE_SIZE ? n - off : VGPU_BOUNCE_SIZE;

		r = iommu_dma_write(v->iommu, f->dst + at + off, q->bounce, m);
	}
	return r;
}

static enum step exec_fill(struct vgpu_queue *q, uint64_t deadline)
{
	const struct gpup_cmd_fill *f = &q->cmd.fill;

	if (q->prog.done == 0) {
		if (f->len % 4)
			return cmd_fault(q, GPUP_FAULT_BAD_ARGS, f->dst, f->len);
		enum step s = range_check(q, f->dst_space, f->dst, f->len, IOMMU_WRITE);

		if (s != STEP_DONE)
			return s;
	}
	while (q->prog.done < f->len) {
		uint64_t left = f->len - q->prog.done;
		uint64_t n = left < VGPU_COPY_CHUNK ? left : VGPU_COPY_CHUNK;
		int r = fill_chunk(q, q->prog.done, n);

		if (r == -EAGAIN)
			return STEP_MORE;
		if (r)
			return cmd_fault(q, iommu_code(r), f->dst + q->prog.done, 0);
		q->prog.done += n;
		if (q->prog.done < f->len && gpup_slice_over(deadline))
			return STEP_MORE;
	}
	return STEP_DONE;
}

/* 64-bit store or load at a tagged, 8-byte aligned address. */
static enum step access64(struct vgpu_queue *q, uint8_t space, uint64_t addr,
			  uint64_t *val, bool store)
{
	struct vgpu *v = q->v;
	int r;

	if (space != GPUP_SPACE_VRAM && space != GPUP_SPACE_IOVA)
		return cmd_fault(q, GPUP_FAULT_BAD_ARGS, packet_iova(q), space);
	if (addr % 8)
		return cmd_fault(q, GPUP_FAULT_BAD_ARGS, addr, addr % 8);
	if (space == GPUP_SPACE_VRAM) {
		if (!vram_ok(v, addr, 8))
			return cmd_fault(q, GPUP_FAULT_VRAM_RANGE, addr, 8);
		uint64_t *p = (uint64_t *)(v->vram + addr);

		if (store) {
			__atomic_store_n(p, *val, __ATOMIC_RELEASE);
			vgpu_vram_written(v, addr, 8);
		} else
			*val = __atomic_load_n(p, __ATOMIC_ACQUIRE);
		return STEP_DONE;
	}
	r = store ? iommu_dma_store64(v->iommu, addr, *val)
		  : iommu_dma_load64(v->iommu, addr, val);
	if (r == -EAGAIN)
		return STEP_MORE;
	if (r)
		return cmd_fault(q, iommu_code(r), addr,
				 access_detail(store ? IOMMU_WRITE : IOMMU_READ));
	return STEP_DONE;
}

static enum step exec_fence(struct vgpu_queue *q)
{
	struct gpup_cmd_fence *f = &q->cmd.fence;
	uint64_t val = f->value;
	enum step s = access64(q, f->space, f->addr, &val, true);

	/* Raised by complete(), so that CI already counts the fence when
	 * the guest takes the interrupt. */
	q->irq_pending = s == STEP_DONE && (f->hdr.flags & GPUP_FENCE_IRQ);
	if (s == STEP_DONE) {
		pthread_mutex_lock(&q->v->lock);
		q->fence = val;
		pthread_mutex_unlock(&q->v->lock);
	}
	return s;
}

static enum step exec_wait(struct vgpu_queue *q)
{
	struct gpup_cmd_wait *w = &q->cmd.wait;
	uint64_t val;

	if (w->op != GPUP_WAIT_GE && w->op != GPUP_WAIT_EQ)
		return cmd_fault(q, GPUP_FAULT_BAD_ARGS, packet_iova(q), w->op);
	enum step s = access64(q, w->space, w->addr, &val, false);

	if (s != STEP_DONE)
		return s;
	val &= w->mask;
	if (w->op == GPUP_WAIT_GE ? val >= w->value : val == w->value)
		return STEP_DONE;
	return STEP_WAIT;
}

static enum step exec_timestamp(struct vgpu_queue *q)
{
	uint64_t now;

	pthread_mutex_lock(&q->v->lock);
	now = vgpu_clock_ns(q->v);
	pthread_mutex_unlock(&q->v->lock);

	return access64(q, q->cmd.timestamp.space, q->cmd.timestamp.addr, &now, true);
}

/* Whether the partition exposes kernel id (GPUP_REG_KERNELS); the mask
 * changes only while no queue runs (a move), so no lock is needed. */
static bool kernel_exposed(const struct vgpu *v, uint32_t id)
{
	return id < 32 && (v->kernels & (1u << id));
}

static enum step exec_kernel(struct vgpu_queue *q, uint64_t deadline)
{
	struct gpup_cmd_kernel *k = &q->cmd.kernel;
	uint64_t bad;

	if (!q->prog.started) {
		/* A kernel the partition does not expose is no kernel at all. */
		int code = kernel_exposed(q->v, k->kernel)
				   ? gpup_kernel_prepare(&q->prog.kernel, k->kernel, k->args,
							 q->v->vram_size, &bad)
				   : GPUP_FAULT_BAD_KERNEL;

		if (code)
			return cmd_fault(q, (uint32_t)code,
					 code == GPUP_FAULT_BAD_KERNEL ? packet_iova(q) : bad,
					 code == GPUP_FAULT_BAD_KERNEL ? k->kernel : 0);
		q->prog.started = true;
	}
	bool done = gpup_kernel_step(&q->prog.kernel, q->v->vram, deadline);

	/* The whole output, not the groups that ran: cheap and never short. */
	vgpu_vram_written(q->v, q->prog.kernel.out_off, q->prog.kernel.out_len);
	return done ? STEP_DONE : STEP_MORE;
}

static enum step exec_cmd(struct vgpu_queue *q, uint64_t deadline)
{
	switch (q->cmd.hdr.opcode) {
	case GPUP_OP_NOP:
		return STEP_DONE;
	case GPUP_OP_FENCE:
		return exec_fence(q);
	case GPUP_OP_COPY:
		return exec_copy(q, deadline);
	case GPUP_OP_FILL:
		return exec_fill(q, deadline);
	case GPUP_OP_KERNEL:
		return exec_kernel(q, deadline);
	case GPUP_OP_WAIT:
		return exec_wait(q);
	case GPUP_OP_TIMESTAMP:
		return exec_timestamp(q);
	default:
		return cmd_fault(q, GPUP_FAULT_BAD_OPCODE, packet_iova(q), q->cmd.hdr.opcode);
	}
}

/* An operand of a COPY/FILL resumed mid-way: the checks made at its start
 * are not made again, so VRAM ranges are checked here (IOVA ones are
 * translated chunk by chunk anyway). */
static bool resumed_range_ok(const struct vgpu *v, uint8_t space, uint64_t addr, uint64_t len)
{
	if (space == GPUP_SPACE_VRAM)
		return vram_ok(v, addr, len);
	return space == GPUP_SPACE_IOVA;
}

static bool resumable_move(const struct vgpu_queue *q)
{
	const struct vgpu *v = q->v;
	uint64_t done = q->prog.done;

	if (q->cmd.hdr.opcode == GPUP_OP_FILL) {
		const struct gpup_cmd_fill *f = &q->cmd.fill;

		return done < f->len && f->len % 4 == 0 &&
		       resumed_range_ok(v, f->dst_space, f->dst, f->len);
	}
	const struct gpup_cmd_copy *c = &q->cmd.copy;

	return done < c->len && resumed_range_ok(v, c->src_space, c->src, c->len) &&
	       resumed_range_ok(v, c->dst_space, c->dst, c->len) &&
	       !(c->src_space == c->dst_space && overlaps(c->src, c->dst, c->len));
}

/* A launch resumed at work-group next: prepared again against this
 * window, then given back the state it carried. */
static bool resumable_kernel(struct vgpu_queue *q)
{
	struct gpup_kernel_run saved = q->prog.kernel, *k = &q->prog.kernel;
	const struct gpup_cmd_kernel *c = &q->cmd.kernel;
	uint64_t bad;

	if (saved.id != c->kernel || !kernel_exposed(q->v, c->kernel) ||
	    memcmp(saved.args, c->args, sizeof(saved.args)) ||
	    gpup_kernel_prepare(k, c->kernel, c->args, q->v->vram_size, &bad) ||
	    saved.next > k->ngroups)
		return false;
	k->next = saved.next;
	k->acc = saved.acc;
	k->acc_f = saved.acc_f;
	return true;
}

bool vgpu_cmd_resumable(struct vgpu_queue *q)
{
	const struct vgpu_progress *p = &q->prog;

	switch (q->cmd.hdr.opcode) {
	case GPUP_OP_COPY:
	case GPUP_OP_FILL:
		if (p->started)
			return false;
		return !p->done || (p->done % VGPU_COPY_CHUNK == 0 && resumable_move(q));
	case GPUP_OP_KERNEL:
		if (p->done)
			return false;
		return !p->started || resumable_kernel(q);
	default:
		return !p->done && !p->started;
	}
}

/* Fault outside a packet (PI, ring): no tag to report. */
static int ring_fault(struct vgpu_queue *q, uint32_t code, uint64_t addr, uint64_t detail)
{
	memset(&q->cmd, 0, sizeof(q->cmd));
	cmd_fault(q, code, addr, detail);
	return -1;
}

/* Whether the queue may run (lock held). */
static bool queue_live(const struct vgpu_queue *q)
{
	return (q->v->control & GPUP_CTRL_ENABLE) && !q->v->lost &&
	       (q->status & GPUP_QSTS_ENABLED) && !(q->status & GPUP_QSTS_FAULTED);
}

/* CI := PI for a queue enabled with its PI in a remote mapping (see
 * queue_enable): 1 once taken (nothing to run yet), -1 on a fault, 2 if
 * the transfer gave way. */
static int take_start_pi(struct vgpu_queue *q)
{
	struct vgpu *v = q->v;
	uint32_t pi;
	int r = iommu_dma_load32(v->iommu, q->run.pi_addr, &pi);

	if (r == -EAGAIN)
		return 2;
	pthread_mutex_lock(&v->lock);
	q->status &= ~GPUP_QSTS_STARTING;
	if (!r && queue_live(q))
		q->ci = q->pi_seen = pi;
	pthread_mutex_unlock(&v->lock);
	q->pi_pending = false;
	if (r)
		return ring_fault(q, iommu_code(r), q->run.pi_addr, GPUP_FAULT_DETAIL_READ);
	return 1;
}

/* Load the next packet: 0 with q->cmd set, 1 if the ring is empty, -1 on
 * a fault, 2 if a transfer gave way (try again later). */
static int fetch(struct vgpu_queue *q)
{
	struct vgpu *v = q->v;
	int r;

	if (q->pi_pending)
		return take_start_pi(q);
	if (q->ci == q->pi_seen) {
		uint32_t pi;

		r = iommu_dma_load32(v->iommu, q->run.pi_addr, &pi);
		if (r == -EAGAIN)
			return 2;
		if (r)
			return ring_fault(q, iommu_code(r), q->run.pi_addr,
					  GPUP_FAULT_DETAIL_READ);
		if (pi - q->ci > q->run.entries)
			return ring_fault(q, GPUP_FAULT_RING, q->run.pi_addr, pi);
		q->pi_seen = pi;
		if (pi == q->ci)
			return 1;
	}
	r = iommu_dma_read(v->iommu, packet_iova(q), &q->cmd, sizeof(q->cmd));
	if (r == -EAGAIN)
		return 2;
	if (r)
		return ring_fault(q, iommu_code(r), packet_iova(q), GPUP_FAULT_DETAIL_READ);
	memset(&q->prog, 0, sizeof(q->prog));
	q->have_cmd = true;
	return 0;
}

/* A fence landed: WAITs on any engine of this GPU may hold now. */
static void recheck_waiters(struct vgpu *v)
{
	struct gpup_engine *e;

	for (unsigned int k = 0; k < 2; k++)
		for (unsigned int i = 0; (e = gpup_gpu_engine(v->gpu, k, i)); i++)
			gpup_engine_recheck(e);
}

/* Publish CI after a finished packet; false if the queue was stopped
 * from outside meanwhile. */
static bool complete(struct vgpu_queue *q)
{
	struct vgpu *v = q->v;
	bool live;

	pthread_mutex_lock(&v->lock);
	live = queue_live(q);
	if (live) {
		q->have_cmd = false;
		q->ci++;
		q->commands++;
		q->ectx.progress++;
		if (q->irq_pending)
			vgpu_irq_locked(v, 1u << q->idx, q->run.vector);
	}
	q->irq_pending = false;
	pthread_mutex_unlock(&v->lock);
	return live;
}

static void set_busy(struct vgpu_queue *q, bool busy)
{
	pthread_mutex_lock(&q->v->lock);
	if (busy && queue_live(q))
		q->status |= GPUP_QSTS_BUSY;
	else
		q->status &= ~GPUP_QSTS_BUSY;
	pthread_mutex_unlock(&q->v->lock);
}

/* Withdraw the watch (see GPUP_Q_WATCH_LO): 0 to the word, a full
 * barrier, a last look at the producer index.  True if work may have come
 * meanwhile (or the index cannot be read here: the run decides). */
static bool watch_stop(struct vgpu_queue *q)
{
	uint32_t pi;

	if (!q->watching)
		return false;
	q->watching = false;
	/* A word the guest unmapped since: it loses only its own hint. */
	iommu_dma_store32(q->v->iommu, q->run.watch, 0);
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
	return iommu_dma_load32_local(q->v->iommu, q->run.pi_addr, &pi) || pi != q->ci;
}

/* The ring ran dry: watch it if the guest gave a watch word and the
 * producer index is in memory the device reads by itself; else stop
 * watching.  -1: look at the ring again. */
static int ran_dry(struct vgpu_queue *q)
{
	uint32_t pi;
	int r;

	if (q->run.watch && !iommu_dma_load32_local(q->v->iommu, q->run.pi_addr, &pi)) {
		if (!q->watching) {
			r = iommu_dma_store32(q->v->iommu, q->run.watch, 1);
			if (r) {
				ring_fault(q, iommu_code(r), q->run.watch, GPUP_FAULT_DETAIL_WRITE);
				return GPUP_RUN_IDLE;
			}
			q->watching = true;
			__atomic_thread_fence(__ATOMIC_SEQ_CST);
			if (iommu_dma_load32_local(q->v->iommu, q->run.pi_addr, &pi))
				return -1;
		}
		return pi != q->ci ? -1 : GPUP_RUN_WATCH;
	}
	return watch_stop(q) ? -1 : GPUP_RUN_IDLE;
}

static enum gpup_run_result queue_step(struct vgpu_queue *q, uint64_t deadline)
{
	for (;;) {
		if (!q->have_cmd) {
			int r = fetch(q);

			if (r == 2)
				return GPUP_RUN_MORE;
			if (r == 1) {
				set_busy(q, false);
				if ((r = ran_dry(q)) < 0)
					continue;
				return (enum gpup_run_result)r;
			}
			if (r) {
				set_busy(q, false);
				watch_stop(q);
				return GPUP_RUN_IDLE;
			}
			set_busy(q, true);
		}
		enum step st = exec_cmd(q, deadline);

		if (st == STEP_DONE && q->cmd.hdr.opcode == GPUP_OP_FENCE)
			recheck_waiters(q->v);
		switch (st) {
		case STEP_MORE:
			return GPUP_RUN_MORE;
		case STEP_WAIT:
			return GPUP_RUN_WAIT;
		case STEP_FAULT:
			return GPUP_RUN_IDLE;
		case STEP_DONE:
			break;
		}
		if (!complete(q))
			return GPUP_RUN_IDLE;
		if (gpup_slice_over(deadline))
			return GPUP_RUN_MORE;
	}
}

static enum gpup_run_result queue_run(struct gpup_ectx *c, uint64_t deadline)
{
	struct vgpu_queue *q = c->opaque;
	enum gpup_run_result res;

	pthread_mutex_lock(&q->v->lock);
	bool live = queue_live(q);

	pthread_mutex_unlock(&q->v->lock);
	if (!live) {
		/* Stopped (disabled device, fault, lost GPU): the guest rings
		 * again, and enabling the device kicks its queues. */
		watch_stop(q);
		return GPUP_RUN_IDLE;
	}
	running_queue = q;
	res = queue_step(q, deadline);
	running_queue = NULL;
	return res;
}

/* The scheduler's watchdog gave up on this queue: a WAIT nobody
 * satisfies or a kernel that never ends.  Fault it like any other error,
 * naming the packet that hung, so the engine is free for others again;
 * then the whole partition is reset, keeping the fault log for its guest
 * (vgpu_wd.c: this thread must not wait for the engines). */
static void queue_stuck(struct gpup_ectx *c)
{
	struct vgpu_queue *q = c->opaque;
	struct vgpu *v = q->v;
	bool hung;

	pthread_mutex_lock(&v->lock);
	hung = queue_live(q);
	if (hung && q->have_cmd)
		vgpu_fault_locked(q, GPUP_FAULT_WATCHDOG, packet_iova(q),
				  ((uint64_t)q->cmd.hdr.tag << 32) | q->cmd.hdr.opcode);
	else if (hung)
		vgpu_fault_locked(q, GPUP_FAULT_WATCHDOG, q->run.pi_addr, 0);
	/* Owed in the same breath as the fault is reported, so that a guest
	 * write prompted by it finds the reset owed and pays it first. */
	v->wd_pending |= hung;
	pthread_mutex_unlock(&v->lock);
	if (hung)
		vgpu_wd_request(v);
}

/* The engine watches the ring for us (see DOC: watching a ring, gpu.h):
 * engine lock held, so only memory the device reads by itself, quietly.
 * An index that cannot be read so wakes the run, which reports it. */
static bool queue_watch(struct gpup_ectx *c, bool stop)
{
	struct vgpu_queue *q = c->opaque;
	uint32_t pi;

	if (stop)
		return watch_stop(q);
	return iommu_dma_load32_local(q->v->iommu, q->run.pi_addr, &pi) || pi != q->ci;
}

const struct gpup_ectx_ops vgpu_queue_ops = {
	.run = queue_run,
	.stuck = queue_stuck,
	.watch = queue_watch,
};
