/* SPDX-License-Identifier: MIT */
/*
 * The drv room (gpup/drv/): a userspace driver for a vGPU reached over
 * vfio-user, driving it as a VMM's guest would but without a VM: guest RAM
 * is a memfd handed to the device with DMA_MAP, registers are
 * REGION_WRITEs to BAR0, doorbells are the eventfds from
 * GET_REGION_IO_FDS (what KVM would signal), interrupts arrive on eventfds
 * given with SET_IRQS (what KVM would inject).  `gpup exercise`, `gpup
 * bench --live` and the integration tests use it.
 *
 * Guest RAM layout (IOVA = GPUP_VG_IOVA_BASE + offset):
 *   0x00000  rings, 16 KiB per queue (256 packets)
 *   0x20000  producer indexes, 8 bytes per queue
 *   0x20100  fence words, 8 bytes per queue
 *   0x100000 data (GPUP_VG_DATA_OFF): the rest of RAM
 */
#ifndef GPUP_DRV_H
#define GPUP_DRV_H

#include <stdint.h>

#include "vfu/vfu.h"
#include "uapi/gpup_vgpu.h"

#define GPUP_VG_IOVA_BASE 0x100000000ull
#define GPUP_VG_RING_ENTRIES 256u
#define GPUP_VG_RING_BYTES (GPUP_VG_RING_ENTRIES * GPUP_CMD_SIZE)
#define GPUP_VG_PI_OFF 0x20000ull
#define GPUP_VG_FENCE_OFF 0x20100ull
#define GPUP_VG_DATA_OFF 0x100000ull

struct gpup_vg {
	struct vfu_client *c;
	int ram_fd;
	uint8_t *ram;
	uint64_t ram_size;
	uint64_t vram_size;           /* from GPUP_REG_VRAM_SIZE */
	int db_fd[GPUP_MAX_QUEUES];   /* doorbell ioeventfds */
	int irq_fd[GPUP_MSIX_VECTORS];
	uint32_t pi[GPUP_MAX_QUEUES];
	uint64_t fence_seq[GPUP_MAX_QUEUES];
};

/* Map ram_size bytes of fresh guest RAM, fetch doorbells, connect irqs,
 * enable the device.  0 or -errno; on failure g is cleaned up. */
int gpup_vg_open(struct gpup_vg *g, struct vfu_client *c, uint64_t ram_size);
void gpup_vg_close(struct gpup_vg *g);

int gpup_vg_reg_write(struct gpup_vg *g, uint32_t off, uint32_t val);
int gpup_vg_reg_read(struct gpup_vg *g, uint32_t off, uint32_t *val);

/* Program queue q's ring on engine (GPUP_ENGINE_*) with vector q, enable. */
int gpup_vg_queue_setup(struct gpup_vg *g, unsigned int q, uint32_t engine);

/* Write n packets at the producer index, publish it, ring the doorbell
 * eventfd.  -ENOSPC if the ring lacks room for them. */
int gpup_vg_submit(struct gpup_vg *g, unsigned int q, const union gpup_cmd *cmds,
		   unsigned int n);

/* Submit a FENCE with interrupt and wait (up to timeout_ms) for its
 * eventfd and value: 0, -ETIMEDOUT, or -EIO if the queue faulted (the
 * fault code is then in *fault when not NULL). */
int gpup_vg_fence_wait(struct gpup_vg *g, unsigned int q, int timeout_ms,
		       uint32_t *fault);

/* Packets: gpup_cmd_copy() and friends in uapi/gpup_vgpu.h. */

/* The IOVA of a guest RAM offset. */
static inline uint64_t gpup_vg_iova(uint64_t ram_off)
{
	return GPUP_VG_IOVA_BASE + ram_off;
}

#endif
