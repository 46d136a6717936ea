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

/* One DMA_READ / DMA_WRITE of ours.  A slot is free when no thread
 * waits on it and no reply to it is owed. */
struct vfu_dma_req {
	uint16_t id, cmd;
	bool waiter;              /* a caller waits for done */
	bool queued;              /* for the serving thread to send */
	bool owed;                /* sent, its reply not yet in */
	bool parked;              /* owed, its waiter gave way: the same
				   * request asked again waits for it */
	bool done;
	int rc;
	uint64_t iova;
	uint32_t len;
	void *buf;                /* the waiter's: touched only while it waits */
};

struct vfu_dma_chan {
	pthread_mutex_t lock;
	pthread_cond_t cond;      /* a request is done (CLOCK_MONOTONIC) */
	_Atomic unsigned int refs;
	int efd;                  /* wakes the serving thread: a request queued */
	bool open;                /* a client with fd-less windows is served */
	uint32_t max_xfer;        /* the client's, capped at VFU_SERVER_MAX_XFER */
	uint16_t next_id;
	struct vfu_dma_req req[VFU_DMA_SLOTS];
	struct vfu_server *s;     /* until the server goes; serving thread only */
};

/* A client command read while the serving thread waited for a reply of
 * its own: run after the handler that waited. */
struct vfu_deferred {
	struct vfu_msg m;
	uint8_t *data;
};

/* The send buffer a client's socket asks for (server.c, serve_client). */
#define VFU_SERVER_SNDBUF (4 << 20)

struct vfu_reply {
	uint8_t *data;            /* payload buffer, VFU_SERVER_MAX_MSG bytes */
	uint32_t len;
	/* More payload after data's len bytes, where the device keeps it
	 * (MIG_DATA_READ from mig_data_readv): piece[0] is data itself. */
	struct iovec piece[VFU_MAX_IOV];
	unsigned int npieces;     /* 0: data alone */
	uint32_t ahead;           /* once sent: mig_data_ahead(len), 0: none */
	bool by_ref;              /* the pieces may go by reference (vfu_msg_splicev) */
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
	/* Our own requests (server_dma_rw.c).  rqbuf and rpbuf (a request
	 * being sent, a message read while waiting inline) are allocated
	 * with the first fd-less window. */
	struct vfu_dma_chan *chan;
	uint8_t *rqbuf, *rpbuf;
	int sock;                 /* the socket serve_one is reading */
	int conn_err;             /* the stream broke under an inline wait */
	int splice[2];            /* by-reference replies' pipe, or -1 */
	size_t splice_left;       /* of the last reply, still in the pipe */
	struct vfu_deferred defer[VFU_DMA_DEFER_MAX];
	unsigned int defer_head, ndefer;
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

/* server_dma_rw.c: the channel's serving-thread side.  vfu_serving: the
 * server whose serve_one this thread is in (a device thread's is NULL). */
extern _Thread_local struct vfu_server *vfu_serving;
struct vfu_dma_chan *vfu_chan_create(struct vfu_server *s);
/* The server goes: the channel closes and forgets it. */
void vfu_chan_detach(struct vfu_dma_chan *ch);
/* An fd-less window is mapped: buffers, and the channel opens. */
int vfu_chan_open(struct vfu_server *s);
/* Fail the waiters of requests meeting [iova, end) with -EFAULT (reset:
 * all of them); close: the connection is over, no reply is owed. */
void vfu_chan_cancel(struct vfu_dma_chan *ch, uint64_t iova, uint64_t end);
void vfu_chan_close(struct vfu_server *s);
/* Send the queued requests: 0 or -errno of the send. */
int vfu_chan_send(struct vfu_server *s, int sock);
/* A reply to a DMA_READ / DMA_WRITE (other replies are refused as
 * commands in the wrong place, EINVAL, as before). */
bool vfu_is_dma_reply(const struct vfu_msg *m);
/* A reply from the client: 0, or -EPROTO (drop the client). */
int vfu_chan_reply(struct vfu_server *s, struct vfu_msg *m);
/* Deferred commands: take the oldest into m (0) or -ENOENT; drop all. */
int vfu_defer_pop(struct vfu_server *s, struct vfu_msg *m);
void vfu_defer_drop(struct vfu_server *s);
/* The fd-less window holding [iova, iova + len) with prot, or NULL. */
const struct vfu_dma *vfu_dma_find_remote(const struct vfu_server *s, uint64_t iova,
					  uint64_t len, uint32_t prot);

/* eventfd.c: install vfu_eventfd_signal's handler now (once a process). */
void vfu_eventfd_prepare(void);

#define vfu_log(s, fmt, ...)                                                   \
	do {                                                                   \
		if ((s)->cfg.log)                                              \
			(s)->cfg.log("%s: " fmt, (s)->cfg.name,      \
				     ##__VA_ARGS__);                           \
	} while (0)

#endif
