// SPDX-License-Identifier: GPL-2.0 OR MIT
/*
 * Queues and submission.  Every packet a process submits is checked
 * field by field and its buffer addresses (GPUP_BO_ADDR) are rewritten to
 * device addresses of the caller's own buffers before it reaches the
 * ring: a process can name only what it allocated, the device never sees
 * a packet it would fault on for a reason the driver can know, and
 * reserved bytes are zero as the ABI requires.  The buffers a submission
 * names stay allocated until its fence lands.  Each submission ends with a
 * FENCE of the driver's own (value = its sequence number) into memory no
 * process can map; it interrupts only when a waiter is about to sleep and
 * asks for it.  GPUP_IOC_EXEC queues several checked batches in one call,
 * each after the one before it has landed if the caller asks.
 */
#include <linux/delay.h>
#include <linux/dma-mapping.h>
#include <linux/module.h>
#include <linux/overflow.h>
#include <linux/sched/signal.h>
#include <linux/slab.h>
#include <linux/uaccess.h>

#include "vgpu.h"

#define GVG_ROOM_TIMEOUT_MS 10000

/* Spin on a fence before sleeping for its interrupt, as cpuidle-haltpoll
 * does (and the freestanding guests' driver): a completion that soon
 * costs less to spin for than an interrupt, a wake-up and a context
 * switch, above all where ring 0 is emulated (under QEMU's TCG those cost
 * 200 us or more; perf/linux_guest.md).  Each queue starts at poll_us and
 * adapts, as haltpoll does: a wait that ended soon after the sleep began
 * is spun through next time, up to poll_max_us; a longer one, where
 * spinning would have bought nothing, sends it back to poll_us. */
static unsigned int poll_us = 20;
module_param(poll_us, uint, 0644);
MODULE_PARM_DESC(poll_us, "microseconds to poll a fence before sleeping (0: never)");
static unsigned int poll_max_us = 2000;
module_param(poll_max_us, uint, 0644);
MODULE_PARM_DESC(poll_max_us, "the most a queue's poll grows to (0: poll_us, fixed)");

struct gvg_xlate {
	struct gvg_file *f;
	struct gvg_sub *sub;
	unsigned int max_bo;
};

static bool gvg_zero(const void *p, size_t len)
{
	return !memchr_inv(p, 0, len);
}

/* A buffer address of len bytes in space, aligned to align, inside one
 * of the caller's buffers of the matching kind: rewritten in place. */
static int gvg_xlate(struct gvg_xlate *x, u8 space, u64 *addr, u64 len, u64 align)
{
	u64 off = *addr & ((1ull << GPUP_BO_OFFSET_BITS) - 1);
	u32 handle = *addr >> GPUP_BO_OFFSET_BITS;
	struct gvg_bo *bo = handle ? gvg_bo_lookup(x->f, handle) : NULL;
	unsigned int i;

	if (!bo)
		return -ENOENT;
	if (space != (bo->domain == GPUP_DOMAIN_VRAM ? GPUP_SPACE_VRAM : GPUP_SPACE_IOVA))
		return -EINVAL;
	if (off % align || len > bo->size || off > bo->size - len)
		return -EINVAL;
	*addr = off + (bo->domain == GPUP_DOMAIN_VRAM ? bo->vram_off : bo->dma);
	for (i = 0; i < x->sub->nbo; i++)
		if (x->sub->bo[i] == bo)
			return 0;
	if (x->sub->nbo == x->max_bo)
		return -E2BIG;
	kref_get(&bo->ref);
	x->sub->bo[x->sub->nbo++] = bo;
	return 0;
}

static int gvg_vram(struct gvg_xlate *x, u64 *addr, u64 count, u64 esize, u64 align)
{
	u64 len;

	if (check_mul_overflow(count, esize, &len))
		return -EINVAL;
	return gvg_xlate(x, GPUP_SPACE_VRAM, addr, len, align);
}

static int gvg_args_zero(const u64 *a, unsigned int from)
{
	for (; from < 6; from++)
		if (a[from])
			return -EINVAL;
	return 0;
}

static int gvg_render_args(struct gvg_xlate *x, u64 *a)
{
	u64 w = a[0], h = a[1], stride = a[2], span;

	if (w > U32_MAX || h > U32_MAX || a[4] > U32_MAX || stride % 4 ||
	    (h > 1 && stride < w * 4))
		return -EINVAL;
	if (!w || !h)
		return gvg_vram(x, &a[3], 0, 1, 4);
	if (check_mul_overflow(h - 1, stride, &span) ||
	    check_add_overflow(span, w * 4, &span))
		return -EINVAL;
	return gvg_vram(x, &a[3], span, 1, 4);
}

static int gvg_kernel(struct gvg_xlate *x, struct gpup_cmd_kernel *k)
{
	u64 *a = k->args, mk, kn, mn;
	int rc;

	if (k->pad || k->kernel >= GPUP_KERNEL_MAX || !(x->f->dev->kernels & (1u << k->kernel)))
		return -EINVAL;
	switch (k->kernel) {
	case GPUP_KERNEL_SAXPY:
		rc = a[1] > U32_MAX ? -EINVAL : gvg_args_zero(a, 4);
		rc = rc ?: gvg_vram(x, &a[2], a[0], 4, 4);
		return rc ?: gvg_vram(x, &a[3], a[0], 4, 4);
	case GPUP_KERNEL_GEMM:
		if (check_mul_overflow(a[0], a[2], &mk) || check_mul_overflow(a[2], a[1], &kn) ||
		    check_mul_overflow(a[0], a[1], &mn))
			return -EINVAL;
		rc = gvg_vram(x, &a[3], mk, 4, 4);
		rc = rc ?: gvg_vram(x, &a[4], kn, 4, 4);
		return rc ?: gvg_vram(x, &a[5], mn, 4, 4);
	case GPUP_KERNEL_REDUCE:
		rc = gvg_args_zero(a, 3);
		rc = rc ?: gvg_vram(x, &a[1], a[0], 4, 4);
		return rc ?: gvg_vram(x, &a[2], 1, 4, 4);
	case GPUP_KERNEL_CHECKSUM:
		rc = gvg_args_zero(a, 3);
		rc = rc ?: gvg_vram(x, &a[1], a[0], 1, 1);
		return rc ?: gvg_vram(x, &a[2], 1, 8, 8);
	case GPUP_KERNEL_RENDER:
		rc = gvg_args_zero(a, 5);
		return rc ?: gvg_render_args(x, a);
	case GPUP_KERNEL_SPIN:
		rc = gvg_args_zero(a, 1);
		return rc ?: (a[0] > GPUP_MAX_SPIN_NS ? -EINVAL : 0);
	}
	return -EINVAL;
}

static bool gvg_overlap(u64 a, u64 b, u64 len)
{
	return a < b ? b - a < len : a - b < len;
}

static int gvg_copy(struct gvg_xlate *x, struct gpup_cmd_copy *c)
{
	int rc;

	if (!gvg_zero(c->pad, sizeof(c->pad)) || !gvg_zero(c->rsvd, sizeof(c->rsvd)))
		return -EINVAL;
	rc = gvg_xlate(x, c->src_space, &c->src, c->len, 1);
	rc = rc ?: gvg_xlate(x, c->dst_space, &c->dst, c->len, 1);
	if (!rc && c->src_space == c->dst_space && gvg_overlap(c->src, c->dst, c->len))
		rc = -EINVAL;
	return rc;
}

/* One packet: every field checked, addresses rewritten.  The tag is the
 * caller's, echoed in fault records. */
static int gvg_check(struct gvg_xlate *x, union gpup_cmd *c)
{
	if (c->hdr.flags && !(c->hdr.opcode == GPUP_OP_FENCE && c->hdr.flags == GPUP_FENCE_IRQ))
		return -EINVAL;
	switch (c->hdr.opcode) {
	case GPUP_OP_NOP:
		return gvg_zero(c->raw + sizeof(c->hdr), GPUP_CMD_SIZE - sizeof(c->hdr)) ? 0 : -EINVAL;
	case GPUP_OP_FENCE:
		if (!gvg_zero(c->fence.pad, sizeof(c->fence.pad)) ||
		    !gvg_zero(c->fence.rsvd, sizeof(c->fence.rsvd)))
			return -EINVAL;
		return gvg_xlate(x, c->fence.space, &c->fence.addr, 8, 8);
	case GPUP_OP_COPY:
		return gvg_copy(x, &c->copy);
	case GPUP_OP_FILL:
		if (!gvg_zero(c->fill.pad, sizeof(c->fill.pad)) ||
		    !gvg_zero(c->fill.rsvd, sizeof(c->fill.rsvd)) || c->fill.len % 4)
			return -EINVAL;
		return gvg_xlate(x, c->fill.dst_space, &c->fill.dst, c->fill.len, 4);
	case GPUP_OP_KERNEL:
		return gvg_kernel(x, &c->kernel);
	case GPUP_OP_WAIT:
		if (!gvg_zero(c->wait.pad, sizeof(c->wait.pad)) ||
		    !gvg_zero(c->wait.rsvd, sizeof(c->wait.rsvd)) ||
		    (c->wait.op != GPUP_WAIT_GE && c->wait.op != GPUP_WAIT_EQ))
			return -EINVAL;
		return gvg_xlate(x, c->wait.space, &c->wait.addr, 8, 8);
	case GPUP_OP_TIMESTAMP:
		if (!gvg_zero(c->timestamp.pad, sizeof(c->timestamp.pad)) ||
		    !gvg_zero(c->timestamp.rsvd, sizeof(c->timestamp.rsvd)))
			return -EINVAL;
		return gvg_xlate(x, c->timestamp.space, &c->timestamp.addr, 8, 8);
	}
	return -EINVAL;
}

/* The queue is gone, stopped or lost: what its caller should hear. */
static int gvg_q_health(struct gvg_hwq *q)
{
	u32 st;

	if (q->dev->gone || q->dev->lost)
		return -ENODEV;
	st = gvg_rd(q->dev, GPUP_REG_QUEUE(q->index) + GPUP_Q_STATUS);
	if (st == ~0u) {
		gvg_mark_lost(q->dev);
		return -ENODEV;
	}
	return (st & GPUP_QSTS_ENABLED) && !(st & GPUP_QSTS_FAULTED) ? 0 : -EIO;
}

/* Room for n packets.  Q_CI is a trapped register read: only when the
 * cached index says the ring is full. */
static int gvg_room(struct gvg_hwq *q, unsigned int n)
{
	unsigned long until = jiffies + msecs_to_jiffies(GVG_ROOM_TIMEOUT_MS);
	int rc;

	while (q->pi - q->ci + n > GVG_RING_ENTRIES) {
		q->ci = gvg_rd(q->dev, GPUP_REG_QUEUE(q->index) + GPUP_Q_CI);
		if (q->pi - q->ci + n <= GVG_RING_ENTRIES)
			break;
		rc = gvg_q_health(q);
		if (rc)
			return rc;
		if (time_after(jiffies, until))
			return -EBUSY;
		if (wait_event_interruptible_timeout(q->wq, false,
						     msecs_to_jiffies(GVG_TICK_MS)) < 0)
			return -EINTR;
	}
	return 0;
}

/* The new producer index to the device: it sees it while it watches the
 * queue, else the doorbell tells it. */
static void gvg_ring_publish(struct gvg_hwq *q)
{
	dma_wmb();
	WRITE_ONCE(*q->pi_word, q->pi);
	if (q->watch) {
		/* Publish, then look (GPUP_Q_WATCH_LO): either the device sees
		 * the new index, or we see 0 and ring. */
		mb();
		if (READ_ONCE(*q->watch)) {
			q->skipped++;
			return;
		}
	}
	wmb();
	gvg_wr(q->dev, GPUP_DOORBELL(q->index), 1);
	q->doorbells++;
}

/* The packets, then the driver's fence.  It raises no interrupt: a
 * waiter that spins through the wait, as most do once the poll has
 * adapted, would only pay for one (emulated, under TCG: an interrupt
 * entry and exit, and QEMU's thread woken to inject it).  One about to
 * sleep asks for it (gvg_arm_irq), as the freestanding guests' driver
 * does. */
static void gvg_ring_push(struct gvg_hwq *q, const union gpup_cmd *c, unsigned int n)
{
	union gpup_cmd fence = gpup_cmd_fence(GPUP_SPACE_IOVA, q->fence_dma, q->seq + 1, 0);

	for (unsigned int i = 0; i < n; i++)
		q->ring[q->pi++ % GVG_RING_ENTRIES] = c[i];
	q->ring[q->pi++ % GVG_RING_ENTRIES] = fence;
	q->seq++;
	gvg_ring_publish(q);
}

/* A waiter for seq is about to sleep: a FENCE with an interrupt goes
 * behind everything queued (its value the latest sequence number, so
 * the fence word never goes backwards), unless one already covers seq.
 * Without room, or on a device gone, none: the wait's tick still looks. */
static void gvg_arm_irq(struct gvg_hwq *q, u64 seq)
{
	struct gvg_dev *d = q->dev;
	union gpup_cmd fence;

	down_read(&d->lock);
	mutex_lock(&q->lock);
	if (!d->gone && !d->lost && q->ring && q->irq_seq < seq && READ_ONCE(*q->fence) < seq &&
	    q->pi - q->ci < GVG_RING_ENTRIES) {
		fence = gpup_cmd_fence(GPUP_SPACE_IOVA, q->fence_dma, q->seq, GPUP_FENCE_IRQ);
		q->ring[q->pi++ % GVG_RING_ENTRIES] = fence;
		q->irq_seq = q->seq;
		gvg_ring_publish(q);
	}
	mutex_unlock(&q->lock);
	up_read(&d->lock);
}

static struct gvg_hwq *gvg_file_queue(struct gvg_file *f, u32 id)
{
	return id < GPUP_MAX_FILE_QUEUES ? f->q[id] : NULL;
}

/* One batch on its way to a ring: its packets checked and rewritten, the
 * buffers they name held by sub until its fence lands. */
struct gvg_batch {
	struct gvg_hwq *q;
	union gpup_cmd *c;
	u32 count;
	struct gvg_sub *sub;
};

/* Check and rewrite the batch's packets; called with f->lock held. */
static int gvg_batch_check(struct gvg_file *f, struct gvg_batch *b)
{
	struct gvg_xlate x = { .f = f, .max_bo = b->count * 3 };
	int rc = 0;

	x.sub = kzalloc(struct_size(x.sub, bo, x.max_bo), GFP_KERNEL);
	if (!x.sub)
		return -ENOMEM;
	b->sub = x.sub;
	for (u32 i = 0; i < b->count && !rc; i++)
		rc = gvg_check(&x, &b->c[i]);
	return rc;
}

/* What a batch that was not queued held. */
static void gvg_batch_drop(struct gvg_batch *b)
{
	if (!b->sub)
		return;
	while (b->sub->nbo)
		gvg_bo_put(b->sub->bo[--b->sub->nbo]);
	kfree(b->sub);
	b->sub = NULL;
}

/* Onto the ring with the driver's fence; *seq: its sequence number. */
static int gvg_batch_queue(struct gvg_batch *b, u64 *seq)
{
	struct gvg_hwq *q = b->q;
	int rc;

	mutex_lock(&q->lock);
	rc = gvg_room(q, b->count + 1);
	if (!rc) {
		gvg_hwq_retire(q, false);
		gvg_ring_push(q, b->c, b->count);
		b->sub->seq = *seq = q->seq;
		list_add_tail(&b->sub->node, &q->subs);
		b->sub = NULL;
	}
	mutex_unlock(&q->lock);
	return rc;
}

long gvg_ioc_submit(struct gvg_file *f, void __user *arg)
{
	struct gpup_ioc_submit a;
	struct gvg_batch b = { 0 };
	int rc;

	if (copy_from_user(&a, arg, sizeof(a)))
		return -EFAULT;
	b.q = gvg_file_queue(f, a.queue);
	if (!b.q || !a.count || a.count > GPUP_MAX_SUBMIT || a.seq)
		return -EINVAL;
	b.count = a.count;
	b.c = memdup_user(u64_to_user_ptr(a.packets), (size_t)a.count * GPUP_CMD_SIZE);
	if (IS_ERR(b.c))
		return PTR_ERR(b.c);
	mutex_lock(&f->lock);
	rc = gvg_batch_check(f, &b);
	mutex_unlock(&f->lock);
	rc = rc ?: gvg_batch_queue(&b, &a.seq);
	gvg_batch_drop(&b);
	kfree(b.c);
	if (rc)
		return rc;
	return copy_to_user(arg, &a, sizeof(a)) ? -EFAULT : 0;
}

static bool gvg_done(struct gvg_hwq *q, u64 seq)
{
	return READ_ONCE(*q->fence) >= seq || READ_ONCE(q->failed_upto) >= seq ||
	       q->dev->lost || q->dev->gone;
}

/* Spin until the fence, the queue's poll time or end; whether it landed. */
static bool gvg_poll(struct gvg_hwq *q, u64 seq, u64 t0, u64 end)
{
	u64 until = min(t0 + READ_ONCE(q->poll_ns), end);

	while (READ_ONCE(*q->fence) < seq && ktime_get_ns() < until && !need_resched())
		cpu_relax();
	return READ_ONCE(*q->fence) >= seq;
}

/* A wait that slept for a fence is over after waited_ns: spin that long
 * (and half as long again) next time if that is within poll_max_us, else
 * start again from poll_us.  Racing waiters on one queue only disagree
 * about a hint. */
static void gvg_poll_adapt(struct gvg_hwq *q, u64 waited_ns)
{
	u64 max = max_t(u64, READ_ONCE(poll_max_us), READ_ONCE(poll_us)) * NSEC_PER_USEC;
	u64 next = waited_ns + waited_ns / 2;

	WRITE_ONCE(q->poll_ns, waited_ns <= max ? min(next, max) : READ_ONCE(poll_us) * NSEC_PER_USEC);
}

static u64 gvg_deadline(u64 t0, u64 timeout_ns)
{
	return t0 + min_t(u64, timeout_ns, 3600ull * NSEC_PER_SEC);
}

/* The fence reaching seq, a reset that dropped it, or loss, until end
 * (ktime ns); re-checks the device every tick, since a lost one sends no
 * interrupt.  Called without the device lock: a reset must not wait for
 * a waiter. */
static int gvg_wait_seq(struct gvg_hwq *q, u64 seq, u64 end)
{
	u64 t0 = ktime_get_ns();
	bool armed = false;
	s64 t;
	int rc;

	if (gvg_poll(q, seq, t0, end))
		return 0;
	for (;;) {
		if (READ_ONCE(*q->fence) >= seq) {
			gvg_poll_adapt(q, ktime_get_ns() - t0);
			return 0;
		}
		if (q->dev->lost || q->dev->gone)
			return -ENODEV;
		if (READ_ONCE(q->failed_upto) >= seq)
			return -EIO;
		if (ktime_get_ns() >= end)
			return -ETIME;
		if (!armed)
			gvg_arm_irq(q, seq);
		armed = true;
		t = min_t(u64, end - ktime_get_ns(), GVG_TICK_MS * NSEC_PER_MSEC);
		t = wait_event_interruptible_timeout(q->wq, gvg_done(q, seq),
						     nsecs_to_jiffies(t) + 1);
		if (t < 0)
			return -EINTR;
		if (t)
			continue;
		down_read(&q->dev->lock);
		rc = q->dev->gone ? -ENODEV : gvg_q_health(q);
		up_read(&q->dev->lock);
		if (rc == -ENODEV)
			return rc;
	}
}

long gvg_ioc_wait(struct gvg_file *f, void __user *arg)
{
	struct gpup_ioc_wait a;
	struct gvg_hwq *q;

	if (copy_from_user(&a, arg, sizeof(a)))
		return -EFAULT;
	q = gvg_file_queue(f, a.queue);
	if (!q || a.pad || !a.seq || a.seq > READ_ONCE(q->seq))
		return -EINVAL;
	return gvg_wait_seq(q, a.seq, gvg_deadline(ktime_get_ns(), a.timeout_ns));
}

/* GPUP_IOC_EXEC's batch table and packets, read and checked, nothing
 * queued; *pkts holds every batch's packets. */
static int gvg_exec_load(struct gvg_file *f, const struct gpup_ioc_exec *a,
			 struct gpup_exec_batch *ub, struct gvg_batch *b, union gpup_cmd **pkts)
{
	u32 total = 0, i;
	union gpup_cmd *c;
	int rc = 0;

	if (copy_from_user(ub, u64_to_user_ptr(a->batches), a->nbatch * sizeof(*ub)))
		return -EFAULT;
	for (i = 0; i < a->nbatch; i++) {
		b[i].q = gvg_file_queue(f, ub[i].queue);
		if (!b[i].q || !ub[i].count || ub[i].count > GPUP_MAX_SUBMIT || ub[i].seq)
			return -EINVAL;
		total += ub[i].count; /* at most 8 * 256 */
	}
	if (total > GPUP_MAX_SUBMIT)
		return -EINVAL;
	*pkts = c = kmalloc_array(total, GPUP_CMD_SIZE, GFP_KERNEL);
	if (!c)
		return -ENOMEM;
	for (i = 0; i < a->nbatch; c += b[i++].count) {
		b[i].c = c;
		b[i].count = ub[i].count;
		if (copy_from_user(c, u64_to_user_ptr(ub[i].packets),
				   (size_t)b[i].count * GPUP_CMD_SIZE))
			return -EFAULT;
	}
	mutex_lock(&f->lock);
	for (i = 0; i < a->nbatch && !rc; i++)
		rc = gvg_batch_check(f, &b[i]);
	mutex_unlock(&f->lock);
	return rc;
}

/* Queue one batch under the device lock, as SUBMIT does. */
static int gvg_exec_queue(struct gvg_dev *d, struct gvg_batch *b, u64 *seq)
{
	int rc = -ENODEV;

	down_read(&d->lock);
	if (!d->gone && !d->lost)
		rc = gvg_batch_queue(b, seq);
	up_read(&d->lock);
	return rc;
}

/* The queued batches' sequence numbers and their count back to the
 * caller, whatever ended the call. */
static long gvg_exec_reply(void __user *arg, const struct gpup_ioc_exec *a,
			   const struct gpup_exec_batch *ub, int rc)
{
	struct gpup_exec_batch __user *u = u64_to_user_ptr(a->batches);

	for (u32 i = 0; i < a->submitted; i++)
		if (put_user(ub[i].seq, &u[i].seq))
			return -EFAULT;
	if (a->submitted && copy_to_user(arg, a, sizeof(*a)))
		return -EFAULT;
	return rc;
}

/* Everything checked before anything is queued; with GPUP_EXEC_CHAIN
 * each batch after the one before it has landed (the CPU waits here,
 * as between a SUBMIT and a WAIT: the device sees the same stream).
 * Called without the device lock, as WAIT is. */
long gvg_ioc_exec(struct gvg_file *f, void __user *arg)
{
	struct gpup_exec_batch ub[GPUP_MAX_EXEC_BATCHES];
	struct gvg_batch b[GPUP_MAX_EXEC_BATCHES] = { 0 };
	union gpup_cmd *pkts = NULL;
	struct gpup_ioc_exec a;
	bool chain;
	u64 end;
	u32 i;
	int rc;

	if (copy_from_user(&a, arg, sizeof(a)))
		return -EFAULT;
	chain = a.flags & GPUP_EXEC_CHAIN;
	if (!a.nbatch || a.nbatch > GPUP_MAX_EXEC_BATCHES || (a.flags & ~GPUP_EXEC_FLAGS) ||
	    a.submitted || a.pad || (!chain && a.timeout_ns))
		return -EINVAL;
	rc = gvg_exec_load(f, &a, ub, b, &pkts);
	end = gvg_deadline(ktime_get_ns(), a.timeout_ns);
	for (i = 0; !rc && i < a.nbatch; i++) {
		if (chain && i)
			rc = gvg_wait_seq(b[i - 1].q, ub[i - 1].seq, end);
		rc = rc ?: gvg_exec_queue(f->dev, &b[i], &ub[i].seq);
		a.submitted += !rc;
	}
	if (!rc && chain)
		rc = gvg_wait_seq(b[a.nbatch - 1].q, ub[a.nbatch - 1].seq, end);
	for (i = 0; i < a.nbatch; i++)
		gvg_batch_drop(&b[i]);
	kfree(pkts);
	return gvg_exec_reply(arg, &a, ub, rc);
}

static int gvg_queue_alloc(struct gvg_dev *d, struct gvg_hwq *q, u32 engine)
{
	q->ring = dma_alloc_coherent(&d->pdev->dev, GVG_RING_BYTES + PAGE_SIZE, &q->ring_dma,
				     GFP_KERNEL);
	if (!q->ring)
		return -ENOMEM;
	q->pi_word = (u32 *)((u8 *)q->ring + GVG_RING_BYTES);
	q->fence = (u64 *)((u8 *)q->pi_word + 64);
	q->fence_dma = q->ring_dma + GVG_RING_BYTES + 64;
	q->engine = engine;
	q->pi = q->ci = 0;
	q->seq = q->failed_upto = q->irq_seq = 0;
	q->poll_ns = READ_ONCE(poll_us) * NSEC_PER_USEC;
	*q->fence = 0;
	return 0;
}

long gvg_ioc_queue(struct gvg_file *f, void __user *arg)
{
	struct gvg_dev *d = f->dev;
	struct gvg_hwq *q = NULL;
	struct gpup_ioc_queue a;
	unsigned int slot, i;
	int rc;

	if (copy_from_user(&a, arg, sizeof(a)))
		return -EFAULT;
	if (a.flags || a.pad || a.queue || a.engine >= d->num_engines)
		return -EINVAL;
	mutex_lock(&d->qlock);
	for (slot = 0; slot < GPUP_MAX_FILE_QUEUES && f->q[slot]; slot++)
		;
	for (i = 0; slot < GPUP_MAX_FILE_QUEUES && i < d->num_queues && !q; i++)
		if (!d->hwq[i].owner)
			q = &d->hwq[i];
	rc = slot == GPUP_MAX_FILE_QUEUES ? -EMFILE : !q ? -EBUSY : 0;
	if (!rc)
		rc = gvg_queue_alloc(d, q, a.engine);
	if (!rc) {
		mutex_lock(&q->lock);
		rc = gvg_hwq_program(q);
		mutex_unlock(&q->lock);
		if (rc) {
			dma_free_coherent(&d->pdev->dev, GVG_RING_BYTES + PAGE_SIZE, q->ring,
					  q->ring_dma);
			q->ring = NULL;
		}
	}
	if (!rc) {
		q->owner = f;
		f->q[slot] = q;
	}
	mutex_unlock(&d->qlock);
	if (rc)
		return rc;
	a.queue = slot;
	return copy_to_user(arg, &a, sizeof(a)) ? -EFAULT : 0;
}

/* Disable the queue (that ends even a WAIT that never holds) and let a
 * packet in progress finish, so nothing writes into buffers freed next. */
static void gvg_queue_stop(struct gvg_hwq *q)
{
	struct gvg_dev *d = q->dev;
	u32 st, base = GPUP_REG_QUEUE(q->index);

	gvg_wr(d, base + GPUP_Q_CONTROL, 0);
	for (unsigned int i = 0; i < 1000; i++) {
		st = gvg_rd(d, base + GPUP_Q_STATUS);
		if (st == ~0u)
			gvg_mark_lost(d);
		if (st == ~0u || !(st & GPUP_QSTS_BUSY))
			return;
		usleep_range(500, 1000);
	}
	dev_warn(&d->pdev->dev, "queue %u still busy after it was disabled\n", q->index);
}

/* The file is closing: stop the queue, drop what its submissions held,
 * free it for others. */
void gvg_queue_release(struct gvg_hwq *q)
{
	struct gvg_dev *d = q->dev;

	down_read(&d->lock);
	mutex_lock(&q->lock);
	if (!d->gone && !d->lost)
		gvg_queue_stop(q);
	gvg_hwq_retire(q, true);
	dma_free_coherent(&d->pdev->dev, GVG_RING_BYTES + PAGE_SIZE, q->ring, q->ring_dma);
	q->ring = NULL;
	mutex_unlock(&q->lock);
	up_read(&d->lock);
	mutex_lock(&d->qlock);
	q->owner = NULL;
	mutex_unlock(&d->qlock);
}
