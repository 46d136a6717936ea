/* SPDX-License-Identifier: MIT */
/*
 * vfu: the vfio-user protocol (QEMU docs/interop/vfio-user.rst), written
 * once for both ends.  The VMM (`gpup run`), the host-side driver and the
 * tests speak it through the client; the daemon serves every partition
 * through the server, whose device is reached only through struct
 * vfu_dev_ops; the fuzzers use the framing directly.  Wire structs are in
 * uapi/vfio_user.h.
 *
 * DOC: layers
 *
 * - framing (msg.c): one message = header, payload, fds in SCM_RIGHTS.
 *   EINTR and short sends are retried, fds beyond VFU_MAX_FDS and fds the
 *   kernel truncated (MSG_CTRUNC) are closed and reported, a socket
 *   timeout is -ETIMEDOUT.  Every other file sends and receives through it.
 * - the VERSION capability codec (caps.c): the JSON both ends exchange.
 * - the client (client.c): synchronous, one call = one command and its
 *   reply.
 * - the server (server*.c): a thread per connected client, a dispatch
 *   table checking sizes and fds, and the device ops below; its own
 *   DMA_READ / DMA_WRITE requests into the client's fd-less windows
 *   (server_dma_rw.c), which any thread may ask for.
 *
 * Errors are negative errno values throughout.
 */
#ifndef VFU_VFU_H
#define VFU_VFU_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#include "uapi/vfio_user.h"

/* The most fds either end sends or accepts with one message. */
#define VFU_MAX_FDS 16u

/* ---- framing ---- */

/* A received message: header, payload (in a buffer the caller owns) and
 * the fds that came with it, which the receiver must close or take. */
struct vfu_msg {
	struct vfio_user_header hdr;
	uint8_t *data;
	uint32_t len;             /* payload bytes: hdr.msg_size - 16 */
	int fds[VFU_MAX_FDS];
	unsigned int nfds;
	bool fds_dropped;         /* more fds came than we take, or the
				   * kernel truncated them: refuse it */
};

/* Send header + len bytes of data + nfds fds (at most VFU_MAX_FDS) as one
 * message, retrying EINTR and short sends: 0 or -errno (-ETIMEDOUT when a
 * send timeout set by vfu_sock_set_timeout ran out). */
int vfu_msg_send(int sock, const struct vfio_user_header *h, const void *data,
		 uint32_t len, const int *fds, unsigned int nfds);

/* The same with the payload in pieces (at most VFU_MAX_IOV), sent with
 * one sendmsg where the socket takes them: a reply whose data lies in
 * several places goes out without being gathered first. */
#define VFU_MAX_IOV 64u
int vfu_msg_sendv(int sock, const struct vfio_user_header *h, const struct iovec *body,
		  unsigned int nbody, const int *fds, unsigned int nfds);

/* The same without fds, each piece of at least VFU_SPLICE_MIN bytes
 * going to the socket by reference: its pages enter pipefd (vmsplice) and
 * leave it for the socket (splice), so the reader's copy out of the
 * socket is the only one.  Such a piece must stay as it is until the
 * reader has read it, which a client does before its next request; what
 * it reads of a piece changed sooner is whatever the memory then held.
 * Smaller pieces are copied as sendmsg would.  pipefd: from
 * vfu_splice_pipe, empty; empty again after a 0, to be closed after an
 * error (it may hold bytes).  0 or -errno as vfu_msg_sendv; the socket
 * may raise SIGPIPE (splice has no MSG_NOSIGNAL): vfu_server_create
 * ignores it for the process. */
#define VFU_SPLICE_MIN 4096u
int vfu_splice_pipe(int pipefd[2]);
/* left NULL: the whole reply is in the socket on return.  Otherwise the
 * call returns once the whole reply is in the pipe or the socket, the
 * pipe's share, *left bytes, still to be moved into the socket (by
 * vfu_splice_push, vfu_splice_flush) before anything else is sent on
 * sock: the caller may work meanwhile instead of waiting for the reader
 * to make room for the end of the reply. */
int vfu_msg_splicev(int sock, const int pipefd[2], const struct vfio_user_header *h,
		    const struct iovec *body, unsigned int nbody, size_t *left);
/* Move into the socket what of the *left bytes it takes without waiting
 * (sock must be O_NONBLOCK for the splice not to wait): 0, *left lowered,
 * or -errno. */
int vfu_splice_push(int sock, const int pipefd[2], size_t *left);
/* Move all *left bytes, waiting as a send does: 0 (then *left is 0) or
 * -errno, the pipe then to be closed. */
int vfu_splice_flush(int sock, const int pipefd[2], size_t *left);

/* Receive one whole message into m, its payload into buf (max bytes).
 * 0: a message.  1: EOF before its first byte.  -ECONNRESET: EOF inside
 * it.  -EMSGSIZE: hdr.msg_size is below the header or the payload above
 * max; m->hdr is valid, the payload unread, and the stream out of step.
 * -ETIMEDOUT, or another -errno.  fds received are in m->fds even on
 * failure; vfu_msg_close_fds releases them. */
int vfu_msg_recv(int sock, struct vfu_msg *m, void *buf, uint32_t max);
/* The same in steps, for a payload that goes to more than one place:
 * the header (m->len set, m->data NULL; the same errors), then the
 * payload's bytes in order, len at a time (0, -ECONNRESET, -errno). */
int vfu_msg_recv_head(int sock, struct vfu_msg *m, uint32_t max);
int vfu_msg_recv_body(int sock, struct vfu_msg *m, void *buf, uint32_t len);
void vfu_msg_close_fds(struct vfu_msg *m);

/* Bound every send and receive on sock to ms (0: no bound). */
int vfu_sock_set_timeout(int sock, unsigned int ms);

/* Signal (add 1 to) an eventfd a peer handed over, never blocking on it:
 * 0; -EAGAIN if its counter is at its maximum (the consumer sees it
 * signalled already; the increment is dropped), whatever the peer does to
 * the fd meanwhile; -EBADF or another -errno.  Uses a realtime signal
 * (SIGRTMIN + 5) and a timer per calling thread to bound the write. */
int vfu_eventfd_signal(int fd);

/* ---- the VERSION capabilities ---- */

struct vfu_caps {
	uint32_t max_fds;         /* max_msg_fds */
	uint32_t max_xfer;        /* max_data_xfer_size */
	uint32_t max_dma_maps;    /* 0: not stated */
	uint64_t pgsizes;         /* 0: not stated */
};

/* The values the spec gives a peer that leaves a capability out. */
void vfu_caps_default(struct vfu_caps *c);

/* A VERSION payload: major, minor, the capabilities as NUL-terminated
 * JSON (members that are 0 are left out).  Its length, or -ENOSPC. */
int vfu_version_encode(void *buf, size_t size, uint16_t major, uint16_t minor,
		       const struct vfu_caps *caps);
/* Parse a VERSION payload of len bytes; the capabilities it states
 * replace those in *caps, the others stay.  -EINVAL when it is shorter
 * than the version, its JSON is not NUL-terminated, not an object, or a
 * capability is not a positive number in range. */
int vfu_version_decode(const void *payload, uint32_t len, uint16_t *major,
		       uint16_t *minor, struct vfu_caps *caps);

/* ---- the client ---- */

struct vfu_client;

/* Connect to the socket at path and negotiate VERSION: the client, or
 * NULL and *err = -errno.  With ms > 0 every exchange, VERSION included,
 * is bounded (see vfu_client_set_timeout). */
struct vfu_client *vfu_client_connect(const char *path, int *err);
struct vfu_client *vfu_client_connect_timeout(const char *path, unsigned int ms, int *err);
/* The same over an already connected socket (taken either way). */
struct vfu_client *vfu_client_open_fd(int sock, int *err);
void vfu_client_close(struct vfu_client *c);

/* Bound every send and every wait for a reply to ms milliseconds (0: wait
 * for ever, the default).  A call that runs out returns -ETIMEDOUT. */
int vfu_client_set_timeout(struct vfu_client *c, unsigned int ms);
/* True once a send or receive has failed (timeout, hang-up, a reply out of
 * step): every later call returns -ENOTCONN without touching the socket. */
bool vfu_client_broken(const struct vfu_client *c);

/* The server's capabilities from VERSION. */
uint32_t vfu_client_max_xfer(const struct vfu_client *c);
uint32_t vfu_client_max_fds(const struct vfu_client *c);

/* DMA_MAP `size` bytes of fd at fd_offset to IOVA `iova`; prot is
 * VFIO_USER_DMA_F_READ | VFIO_USER_DMA_F_WRITE. */
int vfu_client_dma_map(struct vfu_client *c, int fd, uint64_t fd_offset, uint64_t iova,
		       uint64_t size, uint32_t prot);
int vfu_client_dma_unmap(struct vfu_client *c, uint64_t iova, uint64_t size);
/* DMA_MAP without an fd (what a VMM does for guest RAM it does not share):
 * [iova, iova + size) is host memory of this process, at host, which the
 * server reaches only with DMA_READ / DMA_WRITE.  The client answers
 * those from host, within the window and its prot, whenever it reads the
 * socket: while waiting for any reply, and in vfu_client_serve.  A request
 * outside every window, or against its prot, gets EFAULT.  dma_unmap of
 * the same range ends it.  At most VFU_CLIENT_MAX_MEM such windows. */
#define VFU_CLIENT_MAX_MEM 64u
int vfu_client_dma_map_mem(struct vfu_client *c, void *host, uint64_t iova, uint64_t size,
			   uint32_t prot);
/* Serve the server's commands already waiting on the socket (poll it for
 * POLLIN first; the client does nothing between calls): how many were
 * served, 0 if none was waiting, or -errno (a reply with no call waiting
 * for it is -EPROTO and breaks the client). */
int vfu_client_serve(struct vfu_client *c);

int vfu_client_device_info(struct vfu_client *c, struct vfio_user_device_info *info);
/* *fd gets the region's mmap fd (the caller closes it) or -1. */
int vfu_client_region_info(struct vfu_client *c, uint32_t index,
			   struct vfio_region_info *info, int *fd);
int vfu_client_irq_info(struct vfu_client *c, uint32_t index, struct vfio_irq_info *info);

/* Connect eventfds to vectors start..start+count-1 (fds NULL: disconnect). */
int vfu_client_set_irqs(struct vfu_client *c, uint32_t index, uint32_t start,
			uint32_t count, const int *fds);

/* Access a region; len up to vfu_client_max_xfer (larger ones are split). */
int vfu_client_region_read(struct vfu_client *c, uint32_t index, uint64_t off, void *buf,
			   size_t len);
int vfu_client_region_write(struct vfu_client *c, uint32_t index, uint64_t off,
			    const void *buf, size_t len);

/* One sub-region of DEVICE_GET_REGION_IO_FDS with its fd; both ends use
 * it.  The client's caller closes fd; the server's device lends it. */
struct vfu_iofd {
	uint64_t offset, size;
	uint32_t type, flags;     /* VFIO_USER_IO_FD_TYPE_*, KVM_IOEVENTFD_FLAG_* */
	uint64_t datamatch;
	int fd;
};
/* Fills up to max entries; returns how many, or -errno. */
int vfu_client_region_io_fds(struct vfu_client *c, uint32_t index, struct vfu_iofd *out,
			     unsigned int max);

int vfu_client_reset(struct vfu_client *c);

/* Migration.  DEVICE_FEATURE with flags (VFIO_DEVICE_FEATURE_GET/SET/
 * PROBE | the feature), in_len bytes of request data, and room for
 * out_max bytes of reply data (argsz covers the larger): the reply data's
 * length, copied to out, or -errno.  MIG_DATA_READ of up to len bytes
 * (at most vfu_client_max_xfer): how many came, fewer meaning the end of
 * the data for now.  MIG_DATA_WRITE of len bytes: 0 or -errno. */
int vfu_client_feature(struct vfu_client *c, uint32_t flags, const void *in, uint32_t in_len,
		       void *out, uint32_t out_max);
int vfu_client_mig_read(struct vfu_client *c, void *buf, uint32_t len);
int vfu_client_mig_write(struct vfu_client *c, const void *buf, uint32_t len);

/*
 * The raw exchange every call above is built on, also used by tests to
 * send malformed messages.  Sends header + req (+ fds), waits for the reply
 * with the same msg_id, copies at most reply_max payload bytes and receives
 * at most *nrfds fds (then set to the count).  Returns the reply payload
 * length, or -errno (the server's for an error reply).
 */
int vfu_client_call(struct vfu_client *c, uint16_t cmd, const void *req, uint32_t req_len,
		    const int *fds, unsigned int nfds, void *reply, uint32_t reply_max,
		    int *rfds, unsigned int *nrfds);

/* The connected socket, for tests that write raw bytes. */
int vfu_client_socket(const struct vfu_client *c);

/* ---- the server ---- */

/* Limits the server advertises in VERSION. */
#define VFU_SERVER_MAX_XFER (1u << 20)
/* The most a server's own DMA_READ or DMA_WRITE moves at once.  Each
 * reply or request is one message, which should fit a socket's buffer
 * whole: QEMU 11 sends a DMA_READ reply from its main loop, and one it
 * cannot write at once stalls until its vCPU thread lets go of the main
 * lock, while that thread may wait on us for a register, and we on the
 * rest of the reply (seen with 256 KiB).  Smaller than any default
 * AF_UNIX buffer. */
#define VFU_DMA_RW_MAX (64u << 10)
#define VFU_SERVER_MAX_DMA_MAPS 1024u
/* The largest message accepted: a REGION_WRITE of VFU_SERVER_MAX_XFER. */
#define VFU_SERVER_MAX_MSG (VFU_SERVER_MAX_XFER + 64u)
/* Vectors the server keeps eventfds for, per irq index. */
#define VFU_SERVER_MAX_IRQS 2048u

/* A DMA window of the client, as the device sees it.  host is congruent
 * to iova modulo 2 MiB, so an IOMMU can map it with 2 MiB blocks. */
struct vfu_dma_region {
	uint64_t iova, size;
	void *host;               /* the client's memory mapped here */
	uint32_t prot;            /* VFIO_USER_DMA_F_READ | _WRITE */
};

/*
 * What a device served over vfio-user implements.  The server has checked
 * every message against the protocol before an op runs: indexes below
 * device_info's counts, accesses inside the region's size and the
 * negotiated transfer size, fds present only where the command takes
 * them.  Ops return 0 (or a count) or -errno, which becomes the error
 * reply.  They run on the connection's thread, one at a time per device.
 * Members marked "can be NULL" are optional; a command whose op is NULL
 * is answered as documented there.
 */
struct vfu_dev_ops {
	/* VFU_DEV_OPS_VERSION: the table may grow at its end. */
	unsigned int version;

	/* DEVICE_GET_INFO: flags (VFIO_DEVICE_FLAGS_*), num_regions and
	 * num_irqs; argsz is the server's. */
	void (*device_info)(void *dev, struct vfio_user_device_info *info);

	/* DEVICE_GET_REGION_INFO for index < num_regions: size (0: the
	 * region does not exist) and flags; a mappable region also sets
	 * VFIO_REGION_INFO_FLAG_MMAP, info->offset and *fd (lent: the server
	 * sends it and never closes it).  argsz and index are the server's. */
	int (*region_info)(void *dev, uint32_t index, struct vfio_region_info *info, int *fd);

	/* REGION_READ / REGION_WRITE of len bytes at off, inside the
	 * region's size. */
	int (*region_read)(void *dev, uint32_t index, uint64_t off, void *buf, uint32_t len);
	int (*region_write)(void *dev, uint32_t index, uint64_t off, const void *buf,
			    uint32_t len);

	/* DEVICE_GET_REGION_IO_FDS: fills up to max sub-regions of region
	 * index (fds lent, as region_info's) and returns how many the region
	 * has, which may be more than max.  Can be NULL: no region has any.
	 * A region with none is answered ENOENT (a reply must carry an fd). */
	int (*region_io_fds)(void *dev, uint32_t index, struct vfu_iofd *out, unsigned int max);

	/* DEVICE_GET_IRQ_INFO for index < num_irqs: flags and count (at most
	 * VFU_SERVER_MAX_IRQS). */
	void (*irq_info)(void *dev, uint32_t index, struct vfio_irq_info *info);

	/* Connect eventfd fd to vector vec of irq index, or disconnect it
	 * (fd -1).  The device dups fd if it keeps it.  SET_IRQS triggers
	 * without eventfds are the server's (it keeps its own copies). */
	int (*irq_set_fd)(void *dev, uint32_t index, uint32_t vec, int fd);

	/* DEVICE_RESET.  Can be NULL: the reset is refused with ENOTTY. */
	void (*reset)(void *dev);

	/* DMA_MAP of a window sent with an fd, mapped into this process at
	 * r->host: make it reachable by the device.  dma_unmap undoes it
	 * and must not return before the device has stopped touching it;
	 * if it fails the server keeps its mapping alive.  Windows sent
	 * without an fd go to dma_map_remote below.  Both can be NULL:
	 * every DMA_MAP with an fd is refused with ENOTSUP. */
	int (*dma_map)(void *dev, const struct vfu_dma_region *r);
	int (*dma_unmap)(void *dev, const struct vfu_dma_region *r);

	/* Migration.  DEVICE_FEATURE with flags and the request's data
	 * (in_len bytes): fills at most out_max bytes of reply data (the
	 * client's argsz less the 8-byte head) and returns how many (a SET
	 * may echo its data; 0 for PROBE).  MIG_DATA_READ: up to len
	 * bytes of the device's stream, a short count meaning its end.
	 * MIG_DATA_WRITE: takes all len bytes (returns 0 or len) or -errno.  Each can be NULL: that
	 * command is answered with ENOSYS. */
	int (*feature)(void *dev, uint32_t flags, const void *in, uint32_t in_len, void *out,
		       uint32_t out_max);
	int (*mig_data_read)(void *dev, void *buf, uint32_t len);
	int (*mig_data_write)(void *dev, const void *buf, uint32_t len);

	/* The client is gone (its DMA already unmapped, its irq eventfds
	 * released): what it left the device in that only it could undo,
	 * such as a migration state, goes back to what the next client
	 * expects, as a VFIO device fd's close does.  Can be NULL. */
	void (*client_gone)(void *dev);

	/* MIG_DATA_READ without a copy into the server's buffer: as
	 * mig_data_read, the bytes given as at most max pieces in iov
	 * (*niov of them), in the device's memory.  The reply is sent from
	 * them, by reference (vfu_msg_splicev): they must stay as they are
	 * until the client's next message, by which time it has read them.
	 * Can be NULL: mig_data_read serves the command. */
	int (*mig_data_readv)(void *dev, uint32_t len, struct iovec *iov, unsigned int max,
			      unsigned int *niov);

	/* A full MIG_DATA_READ reply of len bytes has gone out and the
	 * client is taking it: the device may prepare the next read now,
	 * before the server waits for it.  The end of the reply may still
	 * wait for room in the socket: calling pump(pump_arg) now and then
	 * (between steps of some tens of microseconds) moves what the
	 * socket takes without waiting; the server moves the rest after.
	 * pump never blocks and sends nothing but that reply.  Can be NULL. */
	void (*mig_data_ahead)(void *dev, uint32_t len, void (*pump)(void *), void *pump_arg);

	/* DMA_MAP / DMA_UNMAP of a window sent without an fd (r->host is
	 * NULL): the device reaches it only through vfu_dma_chan_rw.
	 * dma_unmap_remote must make the device's later accesses fault;
	 * transfers still waiting for the client are cancelled by the
	 * server.  Both can be NULL: such windows are recorded only, and
	 * never reach the device. */
	int (*dma_map_remote)(void *dev, const struct vfu_dma_region *r);
	int (*dma_unmap_remote)(void *dev, const struct vfu_dma_region *r);
};
#define VFU_DEV_OPS_VERSION 1u

struct vfu_server_cfg {
	const char *name;             /* prefixes its log lines */
	const struct vfu_dev_ops *ops;
	void *dev;                    /* passed to every op */
	/* The device's DMA address width: windows reaching 1 << iova_bits
	 * are refused (0: 64 bits). */
	unsigned int iova_bits;
	/* The client memory (windows sent with an fd) one connection may
	 * have mapped at once: a DMA_MAP past it is refused with ENOSPC
	 * (0: no limit).  Windows without an fd cost nothing and are not
	 * counted. */
	uint64_t max_dma_bytes;
	/* One line per event; can be NULL. */
	void (*log)(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
	/* Run first on each thread the server starts, before it reads a
	 * byte from a client: the server's own thread (started by
	 * vfu_server_create, so that a client's arrival does not wait for
	 * this) and each one refusing a client while the device is busy.
	 * Where the owner confines its threads (the gpup daemon installs a
	 * seccomp filter).  0, or -errno: that thread then closes its
	 * clients unserved.  Can be NULL. */
	int (*thread_init)(void);
};

struct vfu_server;

/* NULL and errno on failure (EINVAL: an ops table of another version or
 * missing a required member).  Installs vfu_eventfd_signal's signal
 * handler on the way, so that threads confined later need not. */
struct vfu_server *vfu_server_create(const struct vfu_server_cfg *cfg);

/* Serve the connected socket `fd` on the server's thread; takes fd either
 * way.  A client that connects while the last one is going (its teardown
 * runs, or it hung up and the server has not read the end yet) is served
 * right after it.  -EBUSY if a live client is being served: the new one's
 * VERSION is then answered with EBUSY by a short-lived thread (at most
 * VFU_SERVER_MAX_REFUSALS at once in the process, each waiting
 * VFU_SERVER_NEGOTIATE_MS at most; past that its socket is just closed), so a VMM can say the
 * device is in use.  A client must send VERSION within
 * VFU_SERVER_NEGOTIATE_MS or is disconnected. */
#define VFU_SERVER_NEGOTIATE_MS 5000u
#define VFU_SERVER_MAX_REFUSALS 16u
int vfu_server_attach(struct vfu_server *s, int fd);

/* A client is being served (not counting one whose teardown runs). */
bool vfu_server_connected(struct vfu_server *s);
/* No client is being served nor torn down: the last one's DMA is unmapped
 * and its eventfds released. */
bool vfu_server_idle(struct vfu_server *s);

/* Client memory mapped for DMA now (the windows with an fd), for
 * statistics; 0 with no client. */
uint64_t vfu_server_dma_bytes(struct vfu_server *s);

/* Disconnects the client (its thread unmaps its DMA and releases its irq
 * eventfds through the ops), then frees. */
void vfu_server_destroy(struct vfu_server *s);

/*
 * The server's own DMA_READ / DMA_WRITE (server_dma_rw.c): how a device
 * reaches the client's windows sent without an fd.  A channel is the
 * server's, and outlives it for whoever holds a reference (a device's
 * IOMMU domain), its transfers then failing with -EFAULT.
 *
 * vfu_dma_chan_rw copies len bytes between buf and client memory at iova,
 * from it (write false) or to it, in requests of at most the client's
 * max_data_xfer_size.  Any thread may call it: the serving thread sends
 * the request and routes the reply, which the caller waits for until
 * deadline_ns (CLOCK_MONOTONIC), or until give_up(arg) (asked about once
 * a millisecond while it waits; can be NULL) says to let the wait go.
 * Called on the serving thread itself (a handler that needs client
 * memory), it does the exchange there, keeping up to VFU_DMA_DEFER_MAX
 * of the client's commands that come first for after the handler.
 * 0; -EFAULT: the client refused, the range is in no fd-less window of
 * the client (or was unmapped meanwhile), the device was reset, the
 * client is gone; -ETIMEDOUT: no reply by the deadline, or the client
 * owes replies to VFU_DMA_SLOTS requests already; -EAGAIN: give_up said
 * so.  A reply of the wrong size, address or data length, or to no
 * request, drops the client.
 */
#define VFU_DMA_SLOTS 32u
#define VFU_DMA_DEFER_MAX 4u
struct vfu_dma_chan;
/* A new reference to s's channel. */
struct vfu_dma_chan *vfu_server_dma_chan(struct vfu_server *s);
void vfu_dma_chan_put(struct vfu_dma_chan *ch);
int vfu_dma_chan_rw(struct vfu_dma_chan *ch, uint64_t iova, void *buf, size_t len, bool write,
		    uint64_t deadline_ns, bool (*give_up)(void *arg), void *arg);

#endif
