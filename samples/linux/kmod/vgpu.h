/* SPDX-License-Identifier: GPL-2.0 OR MIT */
/*
 * The gpup vGPU guest driver's private header: the device, its hardware
 * queues, buffers and open files.  vgpu_pci.c probes the PCI function,
 * handles interrupts, faults, reset and loss; vgpu_file.c is the character
 * device; vgpu_submit.c checks and queues packets.
 */
#ifndef GPUP_KMOD_VGPU_H
#define GPUP_KMOD_VGPU_H

#include <linux/genalloc.h>
#include <linux/idr.h>
#include <linux/kref.h>
#include <linux/miscdevice.h>
#include <linux/mutex.h>
#include <linux/pci.h>
#include <linux/rwsem.h>
#include <linux/wait.h>
#include <linux/workqueue.h>

#include "uapi/gpup_vgpu.h"
#include "uapi/gpup_vgpu_ioctl.h"

#define GVG_RING_ENTRIES 1024u
#define GVG_RING_BYTES (GVG_RING_ENTRIES * GPUP_CMD_SIZE)
#define GVG_FILE_FAULTS 32u
/* A lost device sends no interrupt: waits look at it this often. */
#define GVG_TICK_MS 50
/* The mmap offsets (pages) of system buffers start here, past any VRAM. */
#define GVG_SYS_PGOFF (1ull << 36)

struct gvg_file;

/* A submission's buffers, held until its fence lands. */
struct gvg_sub {
	struct list_head node;
	u64 seq;
	unsigned int nbo;
	struct gvg_bo *bo[];
};

struct gvg_hwq {
	struct gvg_dev *dev;
	unsigned int index;
	struct mutex lock;          /* ring, pi, subs */
	struct gvg_file *owner;     /* NULL when free; under dev->qlock */
	u32 engine;
	union gpup_cmd *ring;       /* coherent: ring, then the words page */
	dma_addr_t ring_dma;
	u32 *pi_word;
	u32 *watch;                 /* the watch word, or NULL */
	u64 *fence;
	dma_addr_t fence_dma;
	u32 pi, ci;
	u64 seq;                    /* last submitted */
	u64 irq_seq;                /* an interrupting FENCE is queued up to this */
	u64 doorbells, skipped;     /* rung, and not needed (watched) */
	u64 poll_ns;                /* spin this long on a fence: adapts */
	u64 failed_upto;            /* submissions up to this one were dropped */
	struct list_head subs;
	wait_queue_head_t wq;
};

struct gvg_dev {
	struct kref ref;
	struct pci_dev *pdev;
	void __iomem *bar0;
	resource_size_t vram_phys;
	u64 vram_size;
	struct gen_pool *vram;
	struct miscdevice misc;
	char name[16];
	int id;
	struct rw_semaphore lock;   /* write: reset, removal */
	bool gone;                  /* removed: no MMIO any more */
	bool lost;                  /* reads all-ones */
	u32 num_queues, num_engines, kernels, caps;
	struct mutex qlock;         /* hwq owners, files list */
	struct gvg_hwq hwq[GPUP_MAX_QUEUES];
	struct list_head files;
	u32 fault_seen;
	struct work_struct recover;
	struct work_struct lost_work; /* zaps VRAM mappings, outside any lock */
	atomic64_t next_sys_pgoff;
};

struct gvg_bo {
	struct kref ref;
	struct gvg_dev *dev;
	u32 domain;
	u64 size;
	u64 pgoff;                  /* mmap offset, pages */
	u64 vram_off;               /* VRAM */
	void *cpu;                  /* system */
	dma_addr_t dma;
};

struct gvg_file {
	struct gvg_dev *dev;
	struct list_head node;      /* dev->files */
	struct address_space *mapping;
	struct mutex lock;          /* bos */
	struct idr bos;
	struct gvg_hwq *q[GPUP_MAX_FILE_QUEUES];
	spinlock_t flock;           /* faults */
	struct gpup_fault_record faults[GVG_FILE_FAULTS];
	unsigned int fhead, fcount, flost;
};

static inline u32 gvg_rd(struct gvg_dev *d, u32 off)
{
	return readl(d->bar0 + off);
}

static inline void gvg_wr(struct gvg_dev *d, u32 off, u32 v)
{
	writel(v, d->bar0 + off);
}

/* vgpu_pci.c */
void gvg_dev_put(struct gvg_dev *d);
void gvg_mark_lost(struct gvg_dev *d);
int gvg_reset(struct gvg_dev *d);
int gvg_hwq_program(struct gvg_hwq *q);
void gvg_hwq_retire(struct gvg_hwq *q, bool all);

/* vgpu_file.c */
extern const struct file_operations gvg_fops;
void gvg_bo_put(struct gvg_bo *bo);
struct gvg_bo *gvg_bo_lookup(struct gvg_file *f, u32 handle);

/* vgpu_submit.c */
long gvg_ioc_queue(struct gvg_file *f, void __user *arg);
long gvg_ioc_submit(struct gvg_file *f, void __user *arg);
long gvg_ioc_wait(struct gvg_file *f, void __user *arg);
long gvg_ioc_exec(struct gvg_file *f, void __user *arg);
void gvg_queue_release(struct gvg_hwq *q);

#endif
