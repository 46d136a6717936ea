/* SPDX-License-Identifier: MIT */
/*
 * A small vfio-user client: what a VMM (gpup run), `gpup exercise` and the
 * tests use to drive a device served over vfio-user.  Synchronous: each
 * call sends one command and waits for its reply, so a client is used by
 * one thread at a time (the caller serialises).
 *
 * Every call returns 0 (or a count) on success and -errno on failure:
 * the server's errno for an error reply, -EPROTO for a reply that does not
 * match the protocol, -ECONNRESET when the server went away, -ETIMEDOUT
 * when it did not answer in time (hv_vfu_set_timeout).  Structs are
 * the <linux/vfio.h> ones the protocol reuses.
 */
#ifndef GPUP_HV_VFU_CLIENT_H
#define GPUP_HV_VFU_CLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "uapi/vfio_user.h"

#define HV_VFU_MAX_FDS 16u

struct hv_vfu;

/* Connect to the socket at path and negotiate the version: the client, or
 * NULL and *err = -errno. */
struct hv_vfu *hv_vfu_connect(const char *path, int *err);
/* The same with every exchange, VERSION included, bounded by ms (see
 * hv_vfu_set_timeout): a server that accepts and never answers fails the
 * connect with -ETIMEDOUT. */
struct hv_vfu *hv_vfu_connect_timeout(const char *path, unsigned int ms, int *err);
/* The same over an already connected socket (taken either way). */
struct hv_vfu *hv_vfu_open_fd(int sock, int *err);
void hv_vfu_close(struct hv_vfu *c);

/* Bound every send and every wait for a reply to ms milliseconds (0: wait
 * for ever, the default).  A call that runs out returns -ETIMEDOUT. */
int hv_vfu_set_timeout(struct hv_vfu *c, unsigned int ms);
/* True once a send or receive has failed (timeout, hang-up, a reply out of
 * step): every later call returns -ENOTCONN without touching the socket. */
bool hv_vfu_broken(const struct hv_vfu *c);

/* The server's capabilities from VERSION. */
uint32_t hv_vfu_max_xfer(const struct hv_vfu *c);
uint32_t hv_vfu_max_fds(const struct hv_vfu *c);

/* DMA_MAP `size` bytes of fd at fd_offset to IOVA `iova`; prot is
 * VFIO_USER_DMA_F_READ | VFIO_USER_DMA_F_WRITE. */
int hv_vfu_dma_map(struct hv_vfu *c, int fd, uint64_t fd_offset, uint64_t iova,
		   uint64_t size, uint32_t prot);
int hv_vfu_dma_unmap(struct hv_vfu *c, uint64_t iova, uint64_t size);

int hv_vfu_device_info(struct hv_vfu *c, struct vfio_user_device_info *info);
/* *fd gets the region's mmap fd (the caller closes it) or -1. */
int hv_vfu_region_info(struct hv_vfu *c, uint32_t index, struct vfio_region_info *info,
		       int *fd);
int hv_vfu_irq_info(struct hv_vfu *c, uint32_t index, struct vfio_irq_info *info);

/* Connect eventfds to vectors start..start+count-1 (fds NULL: disconnect). */
int hv_vfu_set_irqs(struct hv_vfu *c, uint32_t index, uint32_t start, uint32_t count,
		    const int *fds);

/* Access a region; len up to hv_vfu_max_xfer (larger ones are split). */
int hv_vfu_region_read(struct hv_vfu *c, uint32_t index, uint64_t off, void *buf,
		       size_t len);
int hv_vfu_region_write(struct hv_vfu *c, uint32_t index, uint64_t off, const void *buf,
			size_t len);

/* One sub-region of DEVICE_GET_REGION_IO_FDS, with its fd resolved. */
struct hv_vfu_iofd {
	uint64_t offset, size;
	uint32_t type, flags;
	uint64_t datamatch;
	int fd;                 /* the caller closes it */
};
/* Fills up to max entries; returns how many, or -errno. */
int hv_vfu_region_io_fds(struct hv_vfu *c, uint32_t index, struct hv_vfu_iofd *out,
			 unsigned int max);

int hv_vfu_reset(struct hv_vfu *c);

/*
 * The raw exchange every call above is built on, also used by tests to
 * send malformed messages.  Sends header + req (+ fds), waits for the reply
 * with the same msg_id, copies at most reply_max payload bytes and receives
 * at most *nrfds fds (then set to the count).  Returns the reply payload
 * length, or -errno (the server's for an error reply).
 */
int hv_vfu_call(struct hv_vfu *c, uint16_t cmd, const void *req, uint32_t req_len,
		const int *fds, unsigned int nfds, void *reply, uint32_t reply_max,
		int *rfds, unsigned int *nrfds);

/* The connected socket, for tests that write raw bytes. */
int hv_vfu_socket(const struct hv_vfu *c);

#endif
