/* SPDX-License-Identifier: MIT */
/*
 * libgpup: a small userspace library over /dev/gpupN for the Linux guest's
 * programs (uapi/gpup_vgpu_ioctl.h).  Functions return 0 (or a value) on
 * success and a negative errno on failure.
 */
#ifndef GPUP_LINUX_LIB_H
#define GPUP_LINUX_LIB_H

#include <stddef.h>
#include <stdint.h>

#include "uapi/gpup_vgpu.h"
#include "uapi/gpup_vgpu_ioctl.h"

struct gpup_dev {
	int fd;
	struct gpup_ioc_info info;
};

struct gpup_buf {
	uint32_t handle;
	uint32_t domain;
	uint64_t size;
	void *map;          /* the whole buffer, mapped */
};

/* path NULL: $GPUP_DEV, else /dev/gpup0. */
int gpup_open(struct gpup_dev *d, const char *path);
void gpup_close(struct gpup_dev *d);
int gpup_info(struct gpup_dev *d);
/* Allocate and map; domain GPUP_DOMAIN_VRAM or GPUP_DOMAIN_SYSTEM. */
int gpup_buf_alloc(struct gpup_dev *d, struct gpup_buf *b, uint64_t size, uint32_t domain);
void gpup_buf_free(struct gpup_dev *d, struct gpup_buf *b);
/* A queue on engine (GPUP_ENGINE_*): its id. */
int gpup_queue(struct gpup_dev *d, uint32_t engine);
int gpup_submit(struct gpup_dev *d, uint32_t q, const union gpup_cmd *c, uint32_t n,
		uint64_t *seq);
int gpup_wait(struct gpup_dev *d, uint32_t q, uint64_t seq, uint64_t timeout_ns);
/* Submit and wait. */
int gpup_run(struct gpup_dev *d, uint32_t q, const union gpup_cmd *c, uint32_t n,
	     uint64_t timeout_ns);
/* n batches in one GPUP_IOC_EXEC (flags GPUP_EXEC_*; timeout_ns only with
 * GPUP_EXEC_CHAIN); each b[i].seq comes back set.  A signal does not
 * queue anything twice: what was queued is waited for, the rest queued. */
int gpup_exec(struct gpup_dev *d, struct gpup_exec_batch *b, uint32_t n, uint32_t flags,
	      uint64_t timeout_ns);
/* This file's fault records, at most max; *lost: records dropped. */
int gpup_faults(struct gpup_dev *d, struct gpup_fault_record *r, uint32_t max,
		uint32_t *lost);
const char *gpup_fault_name(uint32_t code);

/* A buffer address for packets. */
static inline uint64_t gpup_addr(const struct gpup_buf *b, uint64_t off)
{
	return GPUP_BO_ADDR(b->handle, off);
}

static inline uint8_t gpup_space(const struct gpup_buf *b)
{
	return b->domain == GPUP_DOMAIN_VRAM ? GPUP_SPACE_VRAM : GPUP_SPACE_IOVA;
}

/* key=value arguments, as the freestanding guests take them. */
uint64_t gpup_arg_u64(int argc, char **argv, const char *key, uint64_t def);
uint64_t gpup_now_ns(void);

#endif
