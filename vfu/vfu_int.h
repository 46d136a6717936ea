/* SPDX-License-Identifier: MIT */
/*
 * Private to the vfio-user server (server*.c): the connection state, the
 * reply being built, and the command handlers the dispatch table names.
 */
#ifndef VFU_VFU_INT_H
#define VFU_VFU_INT_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "vfu/vfu.h"

/* The irq indexes the server keeps eventfds for (VFIO PCI has 5). */
#define VFU_IRQ_INDEXES 8u

struct vfu_dma {
	struct vfu_dma_region r;  /* r.host NULL: a window sent without an fd */
};

struct vfu_reply {
	uint8_t *data;            /* payload buffer, VFU_SERVER_MAX_MSG bytes */
	uint32_t len;
	/* More payload after data's len bytes, where the device keeps it
	 * (MIG_DATA_READ from mig_data_readv): piece[0] is data itself. */
	struct iovec piece[VFU_MAX_IOV];
	unsigned int npieces;     /* 0: data alone */
	uint32_t ahead;           /* once sent: mig_data_ahead(len), 0: none */
	int fds[VFU_MAX_FDS];     /* lent by the device: sent, never closed here */
	unsigned int nfds;
};

struct vfu_server {
	struct vfu_server_cfg cfg;
	const struct vfu_dev_ops *ops;
	void *dev;
	pthread_mutex_t lock;     /* conn_fd, thread state */
	int conn_fd;              /* -1 when no client */
	int pending_fd;           /* connected while the last client was closing */
	bool closing;             /* conn_fd's client is gone, cleanup running */
	bool stopping;            /* vfu_server_destroy: the thread ends */
	pthread_cond_t wake;      /* a client came, or stopping */
	pthread_t thread;         /* serves the clients, from create to destroy */
	/* Per connection, touched by the connection thread only. */
	bool negotiated;
	unsigned int nerrors;     /* failed commands, for the log's rate limit */
	struct vfu_caps peer;
	struct vfu_dma *dma;
	unsigned int ndma;
	_Atomic uint64_t dma_bytes;  /* of the windows with host memory */
	/* Our copies of the client's irq eventfds, to trigger from SET_IRQS:
	 * VFU_SERVER_MAX_IRQS per index once one is set, else NULL. */
	int *irq_fds[VFU_IRQ_INDEXES];
	uint8_t *inbuf, *outbuf;
};

/* server.c, run by a connection's thread (and, with no thread, by the
 * fuzz harness that keeps one server across inputs).  serve_one reads one
 * message from sock, runs it and replies: 0, 1 at the client's end of
 * stream, or -errno, after which the connection is over.  conn_reset
 * drops what a connection left: its DMA windows, irq eventfds and
 * negotiated limits. */
int vfu_server_serve_one(struct vfu_server *s, int sock);
void vfu_server_conn_reset(struct vfu_server *s);

/* A handler returns 0 (reply with r) or -errno (error reply). */
typedef int (*vfu_handler_fn)(struct vfu_server *s, struct vfu_msg *m, struct vfu_reply *r);

/* server_dev.c: version, device, region, irq, reset and migration. */
int vfu_h_version(struct vfu_server *s, struct vfu_msg *m, struct vfu_reply *r);
int vfu_h_device_info(struct vfu_server *s, struct vfu_msg *m, struct vfu_reply *r);
int vfu_h_region_info(struct vfu_server *s, struct vfu_msg *m, struct vfu_reply *r);
int vfu_h_region_io_fds(struct vfu_server *s, struct vfu_msg *m, struct vfu_reply *r);
int vfu_h_region_read(struct vfu_server *s, struct vfu_msg *m, struct vfu_reply *r);
int vfu_h_region_write(struct vfu_server *s, struct vfu_msg *m, struct vfu_reply *r);
int vfu_h_reset(struct vfu_server *s, struct vfu_msg *m, struct vfu_reply *r);
int vfu_h_feature(struct vfu_server *s, struct vfu_msg *m, struct vfu_reply *r);
int vfu_h_mig_read(struct vfu_server *s, struct vfu_msg *m, struct vfu_reply *r);
int vfu_h_mig_write(struct vfu_server *s, struct vfu_msg *m, struct vfu_reply *r);

/* server_irq.c: irq info and SET_IRQS. */
int vfu_h_irq_info(struct vfu_server *s, struct vfu_msg *m, struct vfu_reply *r);
int vfu_h_set_irqs(struct vfu_server *s, struct vfu_msg *m, struct vfu_reply *r);
void vfu_irqs_release(struct vfu_server *s);

/* server_dma.c: DMA_MAP / DMA_UNMAP and the client's windows. */
int vfu_h_dma_map(struct vfu_server *s, struct vfu_msg *m, struct vfu_reply *r);
int vfu_h_dma_unmap(struct vfu_server *s, struct vfu_msg *m, struct vfu_reply *r);
void vfu_dma_unmap_all(struct vfu_server *s);

/* eventfd.c: install vfu_eventfd_signal's handler now (once a process). */
void vfu_eventfd_prepare(void);

#define vfu_log(s, fmt, ...)                                                   \
	do {                                                                   \
		if ((s)->cfg.log)                                              \
			(s)->cfg.log("%s: " fmt, (s)->cfg.name,      \
				     ##__VA_ARGS__);                           \
	} while (0)

#endif
