// SPDX-License-Identifier: GPL-2.0 OR MIT
/*
 * /dev/gpupN: per-open-file buffers (VRAM from the partition, system memory
 * the device reaches by DMA), mmap of the caller's own buffers only, the
 * fault records of the caller's own queues, and the ioctl dispatch.
 * Buffers are reference counted: a mapping or an unfinished submission
 * keeps one alive after GPUP_IOC_FREE, so VRAM is handed out again only
 * when nothing can reach it, and it is scrubbed before it is.
 */
#include <linux/capability.h>
#include <linux/dma-mapping.h>
#include <linux/fs.h>
#include <linux/io.h>
#include <linux/mm.h>
#include <linux/slab.h>
#include <linux/uaccess.h>

#include "vgpu.h"

static void gvg_bo_release(struct kref *ref)
{
	struct gvg_bo *bo = container_of(ref, struct gvg_bo, ref);
	struct gvg_dev *d = bo->dev;

	if (bo->domain == GPUP_DOMAIN_VRAM)
		gen_pool_free(d->vram, d->vram_phys + bo->vram_off, bo->size);
	else
		dma_free_coherent(&d->pdev->dev, bo->size, bo->cpu, bo->dma);
	kfree(bo);
	gvg_dev_put(d);
}

void gvg_bo_put(struct gvg_bo *bo)
{
	kref_put(&bo->ref, gvg_bo_release);
}

/* Called with f->lock held. */
struct gvg_bo *gvg_bo_lookup(struct gvg_file *f, u32 handle)
{
	return idr_find(&f->bos, handle);
}

/* Zeros through a write-combining mapping of just this range: whatever
 * the previous owner left there is gone before the new one can look. */
static int gvg_vram_scrub(struct gvg_dev *d, u64 off, u64 size)
{
	void __iomem *p = ioremap_wc(d->vram_phys + off, size);

	if (!p)
		return -ENOMEM;
	memset_io(p, 0, size);
	wmb();
	iounmap(p);
	return 0;
}

static int gvg_bo_backing(struct gvg_dev *d, struct gvg_bo *bo)
{
	unsigned long addr;

	if (bo->domain == GPUP_DOMAIN_SYSTEM) {
		bo->cpu = dma_alloc_coherent(&d->pdev->dev, bo->size, &bo->dma, GFP_KERNEL);
		bo->pgoff = atomic64_fetch_add(bo->size >> PAGE_SHIFT, &d->next_sys_pgoff);
		return bo->cpu ? 0 : -ENOMEM;
	}
	addr = gen_pool_alloc(d->vram, bo->size);
	if (!addr)
		return -ENOSPC;
	bo->vram_off = addr - d->vram_phys;
	bo->pgoff = bo->vram_off >> PAGE_SHIFT;
	if (!gvg_vram_scrub(d, bo->vram_off, bo->size))
		return 0;
	gen_pool_free(d->vram, addr, bo->size);
	return -ENOMEM;
}

static long gvg_ioc_alloc(struct gvg_file *f, void __user *arg)
{
	struct gvg_dev *d = f->dev;
	struct gpup_ioc_alloc a;
	struct gvg_bo *bo;
	int rc;

	if (copy_from_user(&a, arg, sizeof(a)))
		return -EFAULT;
	if (a.flags || a.pad || a.handle || a.mmap_offset || !a.size ||
	    a.size > d->vram_size || a.domain > GPUP_DOMAIN_SYSTEM)
		return -EINVAL;
	bo = kzalloc(sizeof(*bo), GFP_KERNEL);
	if (!bo)
		return -ENOMEM;
	kref_init(&bo->ref);
	bo->domain = a.domain;
	bo->size = PAGE_ALIGN(a.size);
	rc = gvg_bo_backing(d, bo);
	if (rc) {
		kfree(bo);
		return rc;
	}
	bo->dev = d;
	kref_get(&d->ref);
	mutex_lock(&f->lock);
	rc = idr_alloc(&f->bos, bo, 1, 1 << 24, GFP_KERNEL);
	mutex_unlock(&f->lock);
	if (rc < 0) {
		gvg_bo_put(bo);
		return rc;
	}
	a.handle = rc;
	a.mmap_offset = bo->pgoff << PAGE_SHIFT;
	return copy_to_user(arg, &a, sizeof(a)) ? -EFAULT : 0;
}

static long gvg_ioc_free(struct gvg_file *f, void __user *arg)
{
	struct gpup_ioc_free a;
	struct gvg_bo *bo;

	if (copy_from_user(&a, arg, sizeof(a)))
		return -EFAULT;
	if (a.pad)
		return -EINVAL;
	mutex_lock(&f->lock);
	bo = idr_remove(&f->bos, a.handle);
	mutex_unlock(&f->lock);
	if (!bo)
		return -ENOENT;
	gvg_bo_put(bo);
	return 0;
}

static long gvg_ioc_info(struct gvg_file *f, void __user *arg)
{
	struct gvg_dev *d = f->dev;
	struct gpup_ioc_info a = { .version = GPUP_IOCTL_VERSION };
	u32 lo, hi;

	a.abi = gvg_rd(d, GPUP_REG_VERSION);
	if (a.abi == ~0u) {
		gvg_mark_lost(d);
		return -ENODEV;
	}
	a.vram_size = d->vram_size;
	a.vram_free = gen_pool_avail(d->vram);
	a.caps = gvg_rd(d, GPUP_REG_CAPS);
	a.num_queues = d->num_queues;
	a.num_engines = d->num_engines;
	a.kernels = d->kernels;
	a.fault_count = gvg_rd(d, GPUP_REG_FAULT_COUNT);
	lo = gvg_rd(d, GPUP_REG_TIME_LO);
	hi = gvg_rd(d, GPUP_REG_TIME_HI);
	a.time_ns = (u64)hi << 32 | lo;
	mutex_lock(&d->qlock);
	for (unsigned int i = 0; i < d->num_queues; i++)
		a.free_queues += !d->hwq[i].owner;
	mutex_unlock(&d->qlock);
	strscpy(a.pci_name, pci_name(d->pdev), sizeof(a.pci_name));
	return copy_to_user(arg, &a, sizeof(a)) ? -EFAULT : 0;
}

static long gvg_ioc_faults(struct gvg_file *f, void __user *arg)
{
	struct gpup_fault_record r[GVG_FILE_FAULTS];
	struct gpup_ioc_faults a;
	unsigned int n = 0;

	if (copy_from_user(&a, arg, sizeof(a)))
		return -EFAULT;
	if (a.count || a.lost || a.pad)
		return -EINVAL;
	spin_lock(&f->flock);
	while (n < a.max && n < GVG_FILE_FAULTS && f->fcount) {
		r[n++] = f->faults[f->fhead];
		f->fhead = (f->fhead + 1) % GVG_FILE_FAULTS;
		f->fcount--;
	}
	a.lost = f->flost;
	f->flost = 0;
	spin_unlock(&f->flock);
	a.count = n;
	if (copy_to_user(u64_to_user_ptr(a.records), r, n * sizeof(r[0])) ||
	    copy_to_user(arg, &a, sizeof(a)))
		return -EFAULT;
	return 0;
}

static long gvg_ioc_reset(struct gvg_file *f)
{
	struct gvg_dev *d = f->dev;
	int rc;

	if (!capable(CAP_SYS_ADMIN))
		return -EPERM;
	down_write(&d->lock);
	rc = gvg_reset(d);
	up_write(&d->lock);
	return rc;
}

static long gvg_ioctl(struct file *filp, unsigned int cmd, unsigned long arg)
{
	struct gvg_file *f = filp->private_data;
	void __user *p = (void __user *)arg;
	long rc;

	if (cmd == GPUP_IOC_RESET)
		return gvg_ioc_reset(f);
	down_read(&f->dev->lock);
	if (f->dev->gone || f->dev->lost) {
		up_read(&f->dev->lock);
		return -ENODEV;
	}
	switch (cmd) {
	case GPUP_IOC_INFO: rc = gvg_ioc_info(f, p); break;
	case GPUP_IOC_ALLOC: rc = gvg_ioc_alloc(f, p); break;
	case GPUP_IOC_FREE: rc = gvg_ioc_free(f, p); break;
	case GPUP_IOC_QUEUE: rc = gvg_ioc_queue(f, p); break;
	case GPUP_IOC_SUBMIT: rc = gvg_ioc_submit(f, p); break;
	case GPUP_IOC_FAULTS: rc = gvg_ioc_faults(f, p); break;
	/* Waits sleep without the lock: a reset must not wait for them. */
	case GPUP_IOC_WAIT:
		up_read(&f->dev->lock);
		return gvg_ioc_wait(f, p);
	case GPUP_IOC_EXEC:
		up_read(&f->dev->lock);
		return gvg_ioc_exec(f, p);
	default: rc = -ENOTTY; break;
	}
	up_read(&f->dev->lock);
	return rc;
}

static void gvg_vma_open(struct vm_area_struct *vma)
{
	struct gvg_bo *bo = vma->vm_private_data;

	kref_get(&bo->ref);
}

static void gvg_vma_close(struct vm_area_struct *vma)
{
	gvg_bo_put(vma->vm_private_data);
}

/* A zapped VRAM mapping (the device is lost or gone) faults here. */
static vm_fault_t gvg_vma_fault(struct vm_fault *vmf)
{
	return VM_FAULT_SIGBUS;
}

static const struct vm_operations_struct gvg_vm_ops = {
	.open = gvg_vma_open,
	.close = gvg_vma_close,
	.fault = gvg_vma_fault,
};

static struct gvg_bo *gvg_bo_by_pgoff(struct gvg_file *f, unsigned long pgoff)
{
	struct gvg_bo *bo;
	int id;

	idr_for_each_entry(&f->bos, bo, id)
		if (bo->pgoff == pgoff)
			return bo;
	return NULL;
}

/* Only a whole-or-leading part of one of this file's own buffers. */
static int gvg_mmap(struct file *filp, struct vm_area_struct *vma)
{
	struct gvg_file *f = filp->private_data;
	unsigned long len = vma->vm_end - vma->vm_start;
	struct gvg_dev *d = f->dev;
	struct gvg_bo *bo;
	int rc = -EINVAL;

	down_read(&d->lock);
	mutex_lock(&f->lock);
	bo = gvg_bo_by_pgoff(f, vma->vm_pgoff);
	if (d->gone || d->lost)
		rc = -ENODEV;
	else if (bo && len <= bo->size && bo->domain == GPUP_DOMAIN_VRAM) {
		vma->vm_flags |= VM_IO | VM_PFNMAP | VM_DONTEXPAND | VM_DONTDUMP;
		vma->vm_page_prot = pgprot_writecombine(vma->vm_page_prot);
		rc = io_remap_pfn_range(vma, vma->vm_start,
					(d->vram_phys + bo->vram_off) >> PAGE_SHIFT, len,
					vma->vm_page_prot);
	} else if (bo && len <= bo->size) {
		vma->vm_pgoff = 0;
		rc = dma_mmap_coherent(&d->pdev->dev, vma, bo->cpu, bo->dma, len);
		vma->vm_flags |= VM_DONTEXPAND | VM_DONTDUMP;
	}
	if (!rc) {
		vma->vm_private_data = bo;
		vma->vm_ops = &gvg_vm_ops;
		kref_get(&bo->ref);
	}
	mutex_unlock(&f->lock);
	up_read(&d->lock);
	return rc;
}

static int gvg_open(struct inode *inode, struct file *filp)
{
	struct miscdevice *misc = filp->private_data;
	struct gvg_dev *d = container_of(misc, struct gvg_dev, misc);
	struct gvg_file *f = kzalloc(sizeof(*f), GFP_KERNEL);

	if (!f)
		return -ENOMEM;
	f->dev = d;
	f->mapping = filp->f_mapping;
	mutex_init(&f->lock);
	idr_init(&f->bos);
	spin_lock_init(&f->flock);
	kref_get(&d->ref);
	mutex_lock(&d->qlock);
	list_add(&f->node, &d->files);
	mutex_unlock(&d->qlock);
	filp->private_data = f;
	return nonseekable_open(inode, filp);
}

static int gvg_release(struct inode *inode, struct file *filp)
{
	struct gvg_file *f = filp->private_data;
	struct gvg_dev *d = f->dev;
	struct gvg_bo *bo;
	int id;

	for (unsigned int i = 0; i < GPUP_MAX_FILE_QUEUES; i++)
		if (f->q[i])
			gvg_queue_release(f->q[i]);
	mutex_lock(&d->qlock);
	list_del(&f->node);
	mutex_unlock(&d->qlock);
	idr_for_each_entry(&f->bos, bo, id)
		gvg_bo_put(bo);
	idr_destroy(&f->bos);
	kfree(f);
	gvg_dev_put(d);
	return 0;
}

const struct file_operations gvg_fops = {
	.owner = THIS_MODULE,
	.open = gvg_open,
	.release = gvg_release,
	.unlocked_ioctl = gvg_ioctl,
	.compat_ioctl = compat_ptr_ioctl,
	.mmap = gvg_mmap,
	.llseek = no_llseek,
};
