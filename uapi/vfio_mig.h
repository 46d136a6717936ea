/* SPDX-License-Identifier: MIT */
/*
 * The migration part of VFIO that the protocols need and older
 * <linux/vfio.h> headers lack, with the kernel's values: the PRE_COPY
 * states and flag (Linux 6.2; Debian 12 ships 6.1 headers), and the
 * vfio-user forms of the DMA logging payloads, which carry their ranges
 * and bitmap inline where the ioctl passes pointers (QEMU
 * docs/interop/vfio-user.rst, VFIO_USER_DEVICE_FEATURE).
 */
#ifndef GPUP_UAPI_VFIO_MIG_H
#define GPUP_UAPI_VFIO_MIG_H

#include <stdint.h>
#include <linux/vfio.h>

/* A header new enough to know PRE_COPY has the flag and the enumerators
 * already; only an older one gets these. */
#ifndef VFIO_MIGRATION_PRE_COPY
#define VFIO_MIGRATION_PRE_COPY (1 << 2)
#define VFIO_DEVICE_STATE_PRE_COPY 6
#define VFIO_DEVICE_STATE_PRE_COPY_P2P 7
#endif

/* DMA_LOGGING_START request data (and its reply, with the page size the
 * device chose): `num_ranges` ranges follow; none means every IOVA. */
struct vfio_user_dma_logging_control {
	uint64_t page_size;
	uint32_t num_ranges;
	uint32_t reserved;
};

struct vfio_user_dma_logging_range {
	uint64_t iova;
	uint64_t length;
};

/* DMA_LOGGING_REPORT request data; the reply repeats it and appends the
 * bitmap, one bit per page_size of [iova, iova + length), in u64 words. */
struct vfio_user_dma_logging_report {
	uint64_t iova;
	uint64_t length;
	uint64_t page_size;
};

_Static_assert(sizeof(struct vfio_user_dma_logging_control) == 16, "logging_control");
_Static_assert(sizeof(struct vfio_user_dma_logging_range) == 16, "logging_range");
_Static_assert(sizeof(struct vfio_user_dma_logging_report) == 24, "logging_report");
_Static_assert(sizeof(struct vfio_device_feature_mig_state) == 8, "mig_state");
_Static_assert(sizeof(struct vfio_device_feature_migration) == 8, "migration");

#endif
