/* SPDX-License-Identifier: MIT */
/*
 * The guest's vGPU driver (uapi/gpup_vgpu.h): find the PCI function, map
 * its BARs, route its MSI-X vectors to this CPU, set up queues in guest
 * RAM, submit packets, wait for fences by halting until the interrupt, and
 * hand out VRAM from BAR2.  IOVA = guest physical address: the VMM maps
 * all of guest RAM into the partition's IO address space at 0.
 */
#ifndef RT_VGPU_DRV_H
#define RT_VGPU_DRV_H

#include "rt.h"
#include "uapi/gpup_vgpu.h"

#define VG_RING_ENTRIES 256u
#define VG_POLL_NS 20000u   /* default spin before a fence wait halts */

/* Result of a wait, beside 0. */
#define VG_ERR_TIMEOUT (-1)
#define VG_ERR_FAULT (-2)   /* the queue faulted: see vg_queue_fault() */
#define VG_ERR_LOST (-3)    /* the device reads all-ones: it is gone */
#define VG_ERR_NOMEM (-4)
#define VG_ERR_NODEV (-5)

struct vg_queue {
	bool ready;                  /* set up since the last reset */
	uint32_t engine;
	union gpup_cmd *ring;
	volatile uint32_t *pi_word;  /* shadow producer index, read by the device */
	volatile uint64_t *fence;    /* FENCE target */
	/* 1 while the device watches pi_word (GPUP_Q_WATCH_LO); NULL when
	 * the device cannot or the guest said nowatch. */
	volatile uint32_t *watch_word;
	uint64_t doorbells, doorbells_skipped;
	uint32_t pi;
	uint32_t ci;                 /* consumer index last read from the device */
	uint64_t seq;                /* last fence value submitted */
	int vector;                  /* CPU vector its MSI-X entry targets */
};

struct vg_dev {
	struct rt_pci_dev pci;
	uint64_t bar0;
	uint8_t *vram;               /* BAR2 as the CPU sees it */
	uint64_t vram_size;          /* partition VRAM (REG_VRAM_SIZE) */
	uint64_t vram_next;          /* bump allocator offset */
	struct vg_queue q[GPUP_MAX_QUEUES];
	int fault_vector;
	uint64_t poll_ns;            /* spin this long before halting */
	bool no_watch;               /* ring every doorbell (set before vg_queue_init) */
};

/* Find the index-th vGPU, set up MSI-X and enable it.  0 or VG_ERR_*. */
int vg_open(struct vg_dev *d, unsigned int index);
uint32_t vg_read(struct vg_dev *d, uint32_t off);
void vg_write(struct vg_dev *d, uint32_t off, uint32_t v);
/* Function-level reset; queues must be set up again.  0 or VG_ERR_LOST. */
int vg_reset(struct vg_dev *d);

/* Queue q on engine (GPUP_ENGINE_*), with VG_RING_ENTRIES packets. */
int vg_queue_init(struct vg_dev *d, unsigned int q, uint32_t engine);
/* Re-enable a faulted queue (disable, enable: CI restarts at the PI). */
void vg_queue_restart(struct vg_dev *d, unsigned int q);
/* Copy n packets into the ring, publish the index, ring the doorbell. */
int vg_submit(struct vg_dev *d, unsigned int q, const union gpup_cmd *c,
	      unsigned int n);
/* Wait for everything queued so far (or timeout_ns): a FENCE polled for
 * up to d->poll_ns, then a FENCE with an interrupt, halting until it. */
int vg_fence_wait(struct vg_dev *d, unsigned int q, uint64_t timeout_ns);
/* The same fence without an interrupt, spinning on its value. */
int vg_fence_poll(struct vg_dev *d, unsigned int q, uint64_t timeout_ns);
uint32_t vg_queue_fault(struct vg_dev *d, unsigned int q);

/* VRAM: an offset inside the partition, aligned; ~0 when full. */
uint64_t vg_vram_alloc(struct vg_dev *d, uint64_t size, uint64_t align);

/* Packets: gpup_cmd_copy() and friends in uapi/gpup_vgpu.h. */

static inline uint64_t vg_iova(const volatile void *p)
{
	return (uint64_t)(uintptr_t)p; /* identity: IOVA = GPA = VA */
}

#endif
