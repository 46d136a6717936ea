/* SPDX-License-Identifier: MIT */
/*
 * The vfio-user server of one partition: what the daemon sees of it.
 *
 * DOC: threading
 *
 * The daemon's main loop owns the listening sockets and accepts; each
 * accepted client is served by its own thread with blocking I/O, one
 * message at a time in order, as the protocol asks.  A client that stalls
 * or sends garbage only ever holds its own thread; the device model
 * (struct vgpu) is thread safe, so nothing else needs a lock.  A partition
 * takes one client at a time: the spec gives each client its own socket,
 * and two VMMs driving one device could only corrupt each other.
 *
 * On disconnect every DMA mapping of that client is unmapped from the
 * partition's IOMMU domain and its irq eventfds are released, as the spec
 * says; the device state stays for the next client.
 */
#ifndef GPUP_VFU_SERVER_H
#define GPUP_VFU_SERVER_H

#include <stdbool.h>
#include <stdint.h>

struct gpup_gpu;
struct iommu_domain;
struct vgpu;
struct gpup_vfu;

/* Limits this server advertises in VERSION. */
#define GPUP_VFU_MAX_FDS 16u
#define GPUP_VFU_MAX_XFER (1u << 20)
#define GPUP_VFU_MAX_DMA_MAPS 1024u
/* The largest message accepted: a REGION_WRITE of GPUP_VFU_MAX_XFER bytes. */
#define GPUP_VFU_MAX_MSG (GPUP_VFU_MAX_XFER + 64u)
/* PCI configuration space of the function (conventional PCI). */
#define GPUP_PCI_CFG_SIZE 256u

struct gpup_vfu_cfg {
	const char *name;             /* for logs: the partition UUID */
	struct vgpu *vgpu;
	struct iommu_domain *iommu;
	struct gpup_gpu *gpu;         /* for BAR2: VRAM fd and mapping */
	uint64_t vram_offset, vram_size;
	/* One line per event; can be NULL. */
	void (*log)(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
};

/* NULL and errno on failure. */
struct gpup_vfu *gpup_vfu_create(const struct gpup_vfu_cfg *cfg);

/* Serve the connected socket `fd` on a new thread; takes fd either way.
 * -EBUSY if a client is already being served. */
int gpup_vfu_attach(struct gpup_vfu *s, int fd);

bool gpup_vfu_connected(struct gpup_vfu *s);

/* Disconnects the client (its thread unmaps its DMA), then frees. */
void gpup_vfu_destroy(struct gpup_vfu *s);

#endif
