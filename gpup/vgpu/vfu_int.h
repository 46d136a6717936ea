/* SPDX-License-Identifier: MIT */
/*
 * Private to the vfio-user server (vfu_*.c, pci_cfg.c): the connection, a
 * received message, the reply being built, and the command handlers.
 */
#ifndef GPUP_VFU_INT_H
#define GPUP_VFU_INT_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "gpup/vgpu/vfu_server.h"
#include "uapi/gpup_vgpu.h"
#include "uapi/vfio_user.h"

/* ---- PCI configuration space of the vGPU function (pci_cfg.c) ---- */
struct gpup_pci_cfg {
	uint8_t space[GPUP_PCI_CFG_SIZE];
	uint8_t wmask[GPUP_PCI_CFG_SIZE];  /* 1 = guest-writable bit */
};

/* Identity from uapi/gpup_vgpu.h, BAR0 (32-bit memory, GPUP_BAR0_SIZE),
 * BAR2 (64-bit prefetchable, vram_size, a power of two), MSI-X. */
void gpup_pci_cfg_init(struct gpup_pci_cfg *c, uint64_t vram_size);
/* Any range inside the space: 0 or -EINVAL.  Writes keep read-only bits. */
int gpup_pci_cfg_read(const struct gpup_pci_cfg *c, uint64_t off, void *buf, size_t len);
int gpup_pci_cfg_write(struct gpup_pci_cfg *c, uint64_t off, const void *buf, size_t len);

/* ---- the server ---- */
struct vfu_dma {
	uint64_t iova, size;
	void *host;               /* NULL: a window sent without an fd */
};

struct vfu_msg {
	struct vfio_user_header hdr;
	uint8_t *data;            /* payload, hdr.msg_size - 16 bytes */
	uint32_t len;
	int fds[GPUP_VFU_MAX_FDS];
	unsigned int nfds;        /* handlers set taken fds to -1 */
};

struct vfu_reply {
	uint8_t *data;            /* payload buffer, GPUP_VFU_MAX_MSG bytes */
	uint32_t len;
	int fds[GPUP_VFU_MAX_FDS]; /* borrowed: sent, never closed here */
	unsigned int nfds;
};

struct gpup_vfu {
	struct gpup_vfu_cfg cfg;
	struct gpup_pci_cfg pci;
	pthread_mutex_t lock;     /* conn_fd, thread state */
	int conn_fd;              /* -1 when no client */
	int pending_fd;           /* connected while the last client was closing */
	bool closing;             /* conn_fd's client is gone, cleanup running */
	bool thread_live;         /* a thread exists and must be joined */
	pthread_t thread;
	/* Per connection, touched by the connection thread only. */
	bool negotiated;
	unsigned int nerrors;     /* failed commands, for the log's rate limit */
	uint32_t peer_max_fds;
	uint32_t peer_max_xfer;
	struct vfu_dma *dma;
	unsigned int ndma;
	int irq_fds[GPUP_MSIX_VECTORS];  /* our dups, to trigger from SET_IRQS */
	uint8_t *inbuf, *outbuf;
};

/* A handler returns 0 (reply with r) or -errno (error reply). */
typedef int (*vfu_handler_fn)(struct gpup_vfu *s, struct vfu_msg *m, struct vfu_reply *r);

struct vfu_handler {
	vfu_handler_fn fn;
	uint32_t min_len;         /* payload bytes required */
	bool takes_fds;           /* fds are allowed with this command */
};

/* vfu_dev.c: device, region, irq and reset commands. */
int vfu_h_version(struct gpup_vfu *s, struct vfu_msg *m, struct vfu_reply *r);
int vfu_h_device_info(struct gpup_vfu *s, struct vfu_msg *m, struct vfu_reply *r);
int vfu_h_region_info(struct gpup_vfu *s, struct vfu_msg *m, struct vfu_reply *r);
int vfu_h_region_io_fds(struct gpup_vfu *s, struct vfu_msg *m, struct vfu_reply *r);
int vfu_h_irq_info(struct gpup_vfu *s, struct vfu_msg *m, struct vfu_reply *r);
int vfu_h_set_irqs(struct gpup_vfu *s, struct vfu_msg *m, struct vfu_reply *r);
int vfu_h_region_read(struct gpup_vfu *s, struct vfu_msg *m, struct vfu_reply *r);
int vfu_h_region_write(struct gpup_vfu *s, struct vfu_msg *m, struct vfu_reply *r);
int vfu_h_reset(struct gpup_vfu *s, struct vfu_msg *m, struct vfu_reply *r);
void vfu_irqs_release(struct gpup_vfu *s);

/* vfu_dma.c: DMA_MAP / DMA_UNMAP over the partition's IOMMU domain. */
int vfu_h_dma_map(struct gpup_vfu *s, struct vfu_msg *m, struct vfu_reply *r);
int vfu_h_dma_unmap(struct gpup_vfu *s, struct vfu_msg *m, struct vfu_reply *r);
void vfu_dma_unmap_all(struct gpup_vfu *s);

#define vfu_log(s, fmt, ...)                                                   \
	do {                                                                   \
		if ((s)->cfg.log)                                              \
			(s)->cfg.log("partition %s: " fmt, (s)->cfg.name,      \
				     ##__VA_ARGS__);                           \
	} while (0)

#endif
