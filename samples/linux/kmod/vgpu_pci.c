// SPDX-License-Identifier: GPL-2.0 OR MIT
/*
 * The gpup vGPU PCI driver: probe (BARs, MSI-X, VRAM allocator, the
 * character device), queue and fault interrupts, the fault log, function
 * reset (ioctl or the device's watchdog), device loss and removal.
 *
 * DOC: faults, reset and loss
 *
 * A queue interrupt only wakes the queue's waiters: fences live in coherent
 * memory.  The fault vector runs in a thread: it reads the new fault log
 * records, gives each to the file that owns the queue, and restarts that
 * queue (disable, enable: the device starts at the published index), so
 * the owner's pending submissions fail with -EIO and the queue is usable
 * again.  A WATCHDOG fault means the device reset itself: every queue is
 * set up again and all pending work fails.  A device that reads all-ones
 * is lost: waits and ioctls return -ENODEV and VRAM mappings are zapped,
 * so a process touching one gets SIGBUS, not another tenant's memory.
 */
#include <linux/delay.h>
#include <linux/interrupt.h>
#include <linux/io.h>
#include <linux/mm.h>
#include <linux/module.h>
#include <linux/slab.h>

#include "vgpu.h"

static DEFINE_IDA(gvg_ida);

static void gvg_dev_release(struct kref *ref)
{
	struct gvg_dev *d = container_of(ref, struct gvg_dev, ref);

	if (d->vram)
		gen_pool_destroy(d->vram);
	ida_free(&gvg_ida, d->id);
	pci_dev_put(d->pdev);
	kfree(d);
}

void gvg_dev_put(struct gvg_dev *d)
{
	kref_put(&d->ref, gvg_dev_release);
}

/* Zap every VRAM mapping: later accesses fault and get SIGBUS. */
static void gvg_zap_vram(struct gvg_dev *d)
{
	struct gvg_file *f;

	mutex_lock(&d->qlock);
	list_for_each_entry(f, &d->files, node)
		unmap_mapping_range(f->mapping, 0, d->vram_size, 1);
	mutex_unlock(&d->qlock);
}

static void gvg_wake_all(struct gvg_dev *d)
{
	for (unsigned int i = 0; i < GPUP_MAX_QUEUES; i++)
		wake_up_all(&d->hwq[i].wq);
}

static void gvg_lost_work(struct work_struct *w)
{
	gvg_zap_vram(container_of(w, struct gvg_dev, lost_work));
}

/* Callers may hold a queue's lock, which nests inside d->qlock: the
 * mappings are zapped from a work item. */
void gvg_mark_lost(struct gvg_dev *d)
{
	if (xchg(&d->lost, true))
		return;
	dev_err(&d->pdev->dev, "device lost (registers read all-ones)\n");
	schedule_work(&d->lost_work);
	gvg_wake_all(d);
}

static int gvg_enable(struct gvg_dev *d)
{
	gvg_wr(d, GPUP_REG_INTR_MASK, 0);
	gvg_wr(d, GPUP_REG_FAULT_VECTOR, GPUP_MAX_QUEUES);
	gvg_wr(d, GPUP_REG_CONTROL, GPUP_CTRL_ENABLE);
	if (gvg_rd(d, GPUP_REG_STATUS) & GPUP_STS_READY)
		return 0;
	if (gvg_rd(d, GPUP_REG_ID) != GPUP_ID_MAGIC)
		gvg_mark_lost(d);
	return -EIO;
}

static bool nowatch;
module_param(nowatch, bool, 0444);
MODULE_PARM_DESC(nowatch, "ring every doorbell, even while the device watches the queue");

/* Enable, then wait until the queue has taken its start index: where the
 * device reads guest memory through the VMM (QEMU's private RAM) that
 * comes after the write, and the producer index must not move before. */
static int gvg_hwq_start(struct gvg_hwq *q, u32 base)
{
	struct gvg_dev *d = q->dev;
	u32 st;

	gvg_wr(d, base + GPUP_Q_CONTROL, GPUP_QCTL_ENABLE);
	for (unsigned int i = 0; i < 2000; i++) {
		st = gvg_rd(d, base + GPUP_Q_STATUS);
		if (st == ~0u || !(st & GPUP_QSTS_STARTING))
			break;
		usleep_range(500, 1000);
	}
	return st != ~0u && (st & GPUP_QSTS_ENABLED) && !(st & GPUP_QSTS_STARTING) ? 0 : -EIO;
}

int gvg_hwq_program(struct gvg_hwq *q)
{
	struct gvg_dev *d = q->dev;
	u32 base = GPUP_REG_QUEUE(q->index);
	dma_addr_t watch = 0;

	gvg_wr(d, base + GPUP_Q_CONTROL, 0);
	gvg_wr(d, base + GPUP_Q_RING_LO, lower_32_bits(q->ring_dma));
	gvg_wr(d, base + GPUP_Q_RING_HI, upper_32_bits(q->ring_dma));
	gvg_wr(d, base + GPUP_Q_RING_ENTRIES, GVG_RING_ENTRIES);
	gvg_wr(d, base + GPUP_Q_ENGINE, q->engine);
	gvg_wr(d, base + GPUP_Q_PI_ADDR_LO, lower_32_bits(q->ring_dma + GVG_RING_BYTES));
	gvg_wr(d, base + GPUP_Q_PI_ADDR_HI, upper_32_bits(q->ring_dma + GVG_RING_BYTES));
	gvg_wr(d, base + GPUP_Q_VECTOR, q->index);
	q->watch = NULL;
	if (!nowatch && (d->caps & GPUP_CAP_WATCH)) {
		q->watch = (u32 *)((u8 *)q->pi_word + 128);
		WRITE_ONCE(*q->watch, 0);
		watch = q->ring_dma + GVG_RING_BYTES + 128;
	}
	gvg_wr(d, base + GPUP_Q_WATCH_LO, lower_32_bits(watch));
	gvg_wr(d, base + GPUP_Q_WATCH_HI, upper_32_bits(watch));
	q->ci = q->pi;
	return gvg_hwq_start(q, base);
}

/* Drop the buffers of finished (or, with all, every) submissions. */
void gvg_hwq_retire(struct gvg_hwq *q, bool all)
{
	u64 done = max(READ_ONCE(*q->fence), q->failed_upto);
	struct gvg_sub *s, *n;

	list_for_each_entry_safe(s, n, &q->subs, node) {
		if (!all && s->seq > done)
			break;
		list_del(&s->node);
		while (s->nbo)
			gvg_bo_put(s->bo[--s->nbo]);
		kfree(s);
	}
}

/* After the device dropped its queues' work: set every owned queue up
 * again; what was pending fails. */
static void gvg_reprogram_all(struct gvg_dev *d)
{
	for (unsigned int i = 0; i < d->num_queues; i++) {
		struct gvg_hwq *q = &d->hwq[i];

		mutex_lock(&q->lock);
		if (q->ring) {
			q->failed_upto = q->seq;
			if (gvg_hwq_program(q))
				dev_warn(&d->pdev->dev, "queue %u: not enabled after reset\n", i);
			gvg_hwq_retire(q, false);
		}
		mutex_unlock(&q->lock);
		wake_up_all(&q->wq);
	}
}

/* Function-level reset; called with d->lock held for writing. */
int gvg_reset(struct gvg_dev *d)
{
	unsigned int i;

	if (d->gone || d->lost)
		return -ENODEV;
	gvg_wr(d, GPUP_REG_CONTROL, GPUP_CTRL_RESET);
	for (i = 0; i < 1000; i++) {
		u32 c = gvg_rd(d, GPUP_REG_CONTROL);

		if (c == ~0u) {
			gvg_mark_lost(d);
			return -ENODEV;
		}
		if (!(c & GPUP_CTRL_RESET))
			break;
		usleep_range(100, 200);
	}
	d->fault_seen = 0;
	if (gvg_enable(d))
		return -EIO;
	gvg_reprogram_all(d);
	return 0;
}

static void gvg_recover_work(struct work_struct *w)
{
	struct gvg_dev *d = container_of(w, struct gvg_dev, recover);

	down_write(&d->lock);
	if (!d->gone && !d->lost) {
		dev_warn(&d->pdev->dev, "watchdog reset: setting the queues up again\n");
		if (!gvg_enable(d))
			gvg_reprogram_all(d);
	}
	up_write(&d->lock);
}

static irqreturn_t gvg_queue_irq(int irq, void *data)
{
	struct gvg_hwq *q = data;

	wake_up_all(&q->wq);
	return IRQ_HANDLED;
}

static void gvg_file_fault(struct gvg_file *f, const struct gpup_fault_record *r)
{
	spin_lock(&f->flock);
	if (f->fcount == GVG_FILE_FAULTS) {
		f->fhead = (f->fhead + 1) % GVG_FILE_FAULTS;
		f->fcount--;
		f->flost++;
	}
	f->faults[(f->fhead + f->fcount) % GVG_FILE_FAULTS] = *r;
	f->fcount++;
	spin_unlock(&f->flock);
}

/* One fault record: to the queue's owner, with its own queue id; the
 * queue restarts unless the device is about to be set up again. */
static void gvg_deliver(struct gvg_dev *d, struct gpup_fault_record *r)
{
	struct gvg_hwq *q;
	struct gvg_file *f;
	unsigned int i;

	if (r->queue >= d->num_queues)
		return;
	q = &d->hwq[r->queue];
	mutex_lock(&d->qlock);
	f = q->owner;
	for (i = 0; f && i < GPUP_MAX_FILE_QUEUES; i++)
		if (f->q[i] == q) {
			r->queue = i;
			gvg_file_fault(f, r);
		}
	mutex_unlock(&d->qlock);
	if (r->code == GPUP_FAULT_WATCHDOG)
		return;
	mutex_lock(&q->lock);
	if (q->ring) {
		q->failed_upto = q->seq;
		gvg_hwq_program(q);
		gvg_hwq_retire(q, false);
	}
	mutex_unlock(&q->lock);
	wake_up_all(&q->wq);
}

static void gvg_read_record(struct gvg_dev *d, u32 seq, struct gpup_fault_record *r)
{
	u32 rec = GPUP_REG_FAULT_LOG + ((seq - 1) % GPUP_FAULT_LOG_ENTRIES) * GPUP_FAULT_REC_SIZE;

	r->code = gvg_rd(d, rec + GPUP_FAULT_REC_CODE);
	r->queue = gvg_rd(d, rec + GPUP_FAULT_REC_QUEUE);
	r->addr = gvg_rd(d, rec + GPUP_FAULT_REC_ADDR_LO) |
		  (u64)gvg_rd(d, rec + GPUP_FAULT_REC_ADDR_HI) << 32;
	r->detail = gvg_rd(d, rec + GPUP_FAULT_REC_DETAIL_LO);
	r->tag = gvg_rd(d, rec + GPUP_FAULT_REC_DETAIL_HI);
	r->seq = gvg_rd(d, rec + GPUP_FAULT_REC_SEQ_LO) |
		 (u64)gvg_rd(d, rec + GPUP_FAULT_REC_SEQ_HI) << 32;
}

static irqreturn_t gvg_fault_thread(int irq, void *data)
{
	struct gvg_dev *d = data;
	struct gpup_fault_record r;
	bool watchdog = false;
	u32 count, s;

	down_read(&d->lock);
	while (!d->gone && !d->lost) {
		count = gvg_rd(d, GPUP_REG_FAULT_COUNT);
		if (count == ~0u) {
			gvg_mark_lost(d);
			break;
		}
		if (count == d->fault_seen)
			break;
		s = count - d->fault_seen > GPUP_FAULT_LOG_ENTRIES ?
			    count - GPUP_FAULT_LOG_ENTRIES : d->fault_seen;
		for (s++; s <= count; s++) {
			gvg_read_record(d, s, &r);
			dev_info(&d->pdev->dev, "fault %u on queue %u: addr 0x%llx detail 0x%x\n",
				 r.code, r.queue, r.addr, r.detail);
			watchdog |= r.code == GPUP_FAULT_WATCHDOG;
			gvg_deliver(d, &r);
		}
		d->fault_seen = count;
		gvg_wr(d, GPUP_REG_INTR_STATUS, GPUP_INTR_FAULT);
	}
	up_read(&d->lock);
	if (watchdog)
		schedule_work(&d->recover);
	return IRQ_HANDLED;
}

static int gvg_setup_irqs(struct gvg_dev *d)
{
	struct pci_dev *pdev = d->pdev;
	unsigned int i;
	int rc;

	rc = pci_alloc_irq_vectors(pdev, GPUP_MSIX_VECTORS, GPUP_MSIX_VECTORS, PCI_IRQ_MSIX);
	if (rc < 0)
		return rc;
	for (i = 0; i < GPUP_MAX_QUEUES; i++) {
		rc = devm_request_irq(&pdev->dev, pci_irq_vector(pdev, i), gvg_queue_irq, 0,
				      d->name, &d->hwq[i]);
		if (rc)
			return rc;
	}
	return devm_request_threaded_irq(&pdev->dev, pci_irq_vector(pdev, GPUP_MAX_QUEUES),
					 NULL, gvg_fault_thread, IRQF_ONESHOT, d->name, d);
}

static void gvg_init_queues(struct gvg_dev *d)
{
	for (unsigned int i = 0; i < GPUP_MAX_QUEUES; i++) {
		struct gvg_hwq *q = &d->hwq[i];

		q->dev = d;
		q->index = i;
		mutex_init(&q->lock);
		INIT_LIST_HEAD(&q->subs);
		init_waitqueue_head(&q->wq);
	}
}

static struct gvg_dev *gvg_dev_alloc(struct pci_dev *pdev)
{
	struct gvg_dev *d = kzalloc(sizeof(*d), GFP_KERNEL);

	if (!d)
		return NULL;
	d->id = ida_alloc(&gvg_ida, GFP_KERNEL);
	if (d->id < 0) {
		kfree(d);
		return NULL;
	}
	kref_init(&d->ref);
	d->pdev = pci_dev_get(pdev);
	snprintf(d->name, sizeof(d->name), "gpup%d", d->id);
	init_rwsem(&d->lock);
	mutex_init(&d->qlock);
	INIT_LIST_HEAD(&d->files);
	INIT_WORK(&d->recover, gvg_recover_work);
	INIT_WORK(&d->lost_work, gvg_lost_work);
	atomic64_set(&d->next_sys_pgoff, GVG_SYS_PGOFF);
	gvg_init_queues(d);
	return d;
}

/* Registers, identity, VRAM: what the device says it is. */
static int gvg_identify(struct gvg_dev *d)
{
	struct pci_dev *pdev = d->pdev;
	u32 ver;

	if (gvg_rd(d, GPUP_REG_ID) != GPUP_ID_MAGIC)
		return -ENODEV;
	ver = gvg_rd(d, GPUP_REG_VERSION);
	if (ver >> 16 != GPUP_ABI_VERSION_MAJOR) {
		dev_err(&pdev->dev, "ABI %u.%u, this driver speaks %u.x\n", ver >> 16,
			ver & 0xffff, GPUP_ABI_VERSION_MAJOR);
		return -ENODEV;
	}
	d->num_queues = min_t(u32, gvg_rd(d, GPUP_REG_NUM_QUEUES), GPUP_MAX_QUEUES);
	d->num_engines = gvg_rd(d, GPUP_REG_NUM_ENGINES);
	d->kernels = gvg_rd(d, GPUP_REG_KERNELS);
	d->caps = gvg_rd(d, GPUP_REG_CAPS);
	d->vram_size = gvg_rd(d, GPUP_REG_VRAM_SIZE_LO) |
		       (u64)gvg_rd(d, GPUP_REG_VRAM_SIZE_HI) << 32;
	d->vram_phys = pci_resource_start(pdev, 2);
	d->vram_size = min_t(u64, d->vram_size, pci_resource_len(pdev, 2));
	d->vram_size &= PAGE_MASK;
	if (!d->vram_phys || !d->vram_size)
		return -ENODEV;
	d->vram = gen_pool_create(PAGE_SHIFT, -1);
	if (!d->vram)
		return -ENOMEM;
	return gen_pool_add(d->vram, d->vram_phys, d->vram_size, -1);
}

static int gvg_probe(struct pci_dev *pdev, const struct pci_device_id *id)
{
	struct gvg_dev *d;
	int rc;

	d = gvg_dev_alloc(pdev);
	if (!d)
		return -ENOMEM;
	rc = pci_enable_device_mem(pdev);
	if (rc)
		goto err_put;
	rc = pci_request_regions(pdev, "gpup_vgpu");
	if (rc)
		goto err_disable;
	pci_set_master(pdev);
	rc = dma_set_mask_and_coherent(&pdev->dev, DMA_BIT_MASK(64));
	if (rc)
		goto err_regions;
	d->bar0 = pci_iomap(pdev, 0, GPUP_BAR0_SIZE);
	rc = d->bar0 ? gvg_identify(d) : -ENOMEM;
	if (rc)
		goto err_unmap;
	pci_set_drvdata(pdev, d);
	rc = gvg_setup_irqs(d);
	if (!rc)
		rc = gvg_enable(d);
	if (rc)
		goto err_irqs;
	d->misc.minor = MISC_DYNAMIC_MINOR;
	d->misc.name = d->name;
	d->misc.fops = &gvg_fops;
	d->misc.mode = 0666;
	d->misc.parent = &pdev->dev;
	rc = misc_register(&d->misc);
	if (rc)
		goto err_irqs;
	dev_info(&pdev->dev, "%s: %llu MiB VRAM, %u queues, %u engines, ABI 0x%x\n", d->name,
		 d->vram_size >> 20, d->num_queues, d->num_engines, gvg_rd(d, GPUP_REG_VERSION));
	return 0;

err_irqs:
	gvg_wr(d, GPUP_REG_CONTROL, 0);
	devm_free_irq(&pdev->dev, pci_irq_vector(pdev, GPUP_MAX_QUEUES), d);
	for (unsigned int i = 0; i < GPUP_MAX_QUEUES; i++)
		devm_free_irq(&pdev->dev, pci_irq_vector(pdev, i), &d->hwq[i]);
	pci_free_irq_vectors(pdev);
err_unmap:
	if (d->bar0)
		pci_iounmap(pdev, d->bar0);
err_regions:
	pci_release_regions(pdev);
err_disable:
	pci_disable_device(pdev);
err_put:
	gvg_dev_put(d);
	return rc;
}

/* Open files keep d; from here on they get -ENODEV. */
static void gvg_remove(struct pci_dev *pdev)
{
	struct gvg_dev *d = pci_get_drvdata(pdev);
	unsigned int i;

	misc_deregister(&d->misc);
	down_write(&d->lock);
	d->gone = true;
	if (!d->lost)
		gvg_wr(d, GPUP_REG_CONTROL, 0);
	up_write(&d->lock);
	gvg_zap_vram(d);
	gvg_wake_all(d);
	devm_free_irq(&pdev->dev, pci_irq_vector(pdev, GPUP_MAX_QUEUES), d);
	for (i = 0; i < GPUP_MAX_QUEUES; i++)
		devm_free_irq(&pdev->dev, pci_irq_vector(pdev, i), &d->hwq[i]);
	cancel_work_sync(&d->recover);
	flush_work(&d->lost_work);
	pci_free_irq_vectors(pdev);
	pci_iounmap(pdev, d->bar0);
	pci_release_regions(pdev);
	pci_disable_device(pdev);
	gvg_dev_put(d);
}

static const struct pci_device_id gvg_ids[] = {
	{ PCI_DEVICE(GPUP_PCI_VENDOR_ID, GPUP_PCI_DEVICE_ID) },
	{ }
};
MODULE_DEVICE_TABLE(pci, gvg_ids);

static struct pci_driver gvg_driver = {
	.name = "gpup_vgpu",
	.id_table = gvg_ids,
	.probe = gvg_probe,
	.remove = gvg_remove,
};
module_pci_driver(gvg_driver);

MODULE_DESCRIPTION("gpup vGPU partition guest driver");
MODULE_LICENSE("Dual MIT/GPL");
