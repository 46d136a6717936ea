/* SPDX-License-Identifier: MIT */
/*
 * The vfio-user wire format (QEMU docs/interop/vfio-user.rst, protocol
 * 0.1): the message header, command numbers and the payloads that are not
 * already <linux/vfio.h> structs.  Where the spec reuses a VFIO ioctl
 * struct (device info, region info, irq info, irq set) we send that struct
 * as is.  Host endianness throughout, as the spec says for AF_UNIX.
 *
 * The one implementation of the protocol is vfu/ (client and server).
 */
#ifndef GPUP_UAPI_VFIO_USER_H
#define GPUP_UAPI_VFIO_USER_H

#include <stdint.h>
#include <linux/vfio.h>

#define VFIO_USER_MAJOR 0
#define VFIO_USER_MINOR 1

enum vfio_user_command {
	VFIO_USER_VERSION = 1,
	VFIO_USER_DMA_MAP = 2,
	VFIO_USER_DMA_UNMAP = 3,
	VFIO_USER_DEVICE_GET_INFO = 4,
	VFIO_USER_DEVICE_GET_REGION_INFO = 5,
	VFIO_USER_DEVICE_GET_REGION_IO_FDS = 6,
	VFIO_USER_DEVICE_GET_IRQ_INFO = 7,
	VFIO_USER_DEVICE_SET_IRQS = 8,
	VFIO_USER_REGION_READ = 9,
	VFIO_USER_REGION_WRITE = 10,
	VFIO_USER_DMA_READ = 11,
	VFIO_USER_DMA_WRITE = 12,
	VFIO_USER_DEVICE_RESET = 13,
	VFIO_USER_REGION_WRITE_MULTI = 15,
	VFIO_USER_DEVICE_FEATURE = 16,
	VFIO_USER_MIG_DATA_READ = 17,
	VFIO_USER_MIG_DATA_WRITE = 18,
	VFIO_USER_MAX
};

/* Header flags: bits 0-3 the type, then no_reply and error. */
#define VFIO_USER_F_TYPE_MASK 0xfu
#define VFIO_USER_F_TYPE_COMMAND 0x0u
#define VFIO_USER_F_TYPE_REPLY 0x1u
#define VFIO_USER_F_NO_REPLY (1u << 4)
#define VFIO_USER_F_ERROR (1u << 5)

struct vfio_user_header {
	uint16_t msg_id;
	uint16_t command;
	uint32_t msg_size;	/* header included */
	uint32_t flags;
	uint32_t error_no;	/* errno in an error reply, else 0 */
};

/* VERSION: followed by NUL-terminated JSON {"capabilities":{...}}. */
struct vfio_user_version {
	uint16_t major;
	uint16_t minor;
	char data[];
};

/* Capability names inside the VERSION JSON. */
#define VFIO_USER_CAP_OBJECT "capabilities"
#define VFIO_USER_CAP_MAX_FDS "max_msg_fds"
#define VFIO_USER_CAP_MAX_XFER "max_data_xfer_size"
#define VFIO_USER_CAP_MAX_DMA_MAPS "max_dma_maps"
#define VFIO_USER_CAP_PGSIZES "pgsizes"
#define VFIO_USER_CAP_MIGRATION "migration"

/* Defaults the spec gives when a peer leaves a capability out. */
#define VFIO_USER_DEFAULT_MAX_FDS 1u
#define VFIO_USER_DEFAULT_MAX_XFER (1u << 20)

#define VFIO_USER_DMA_F_READ (1u << 0)
#define VFIO_USER_DMA_F_WRITE (1u << 1)

struct vfio_user_dma_map {
	uint32_t argsz;
	uint32_t flags;		/* VFIO_USER_DMA_F_* */
	uint64_t offset;	/* into the fd sent with the message */
	uint64_t addr;		/* IOVA */
	uint64_t size;
};

/* flags: VFIO_DMA_UNMAP_FLAG_ALL (addr = size = 0) is accepted. */
struct vfio_user_dma_unmap {
	uint32_t argsz;
	uint32_t flags;
	uint64_t addr;
	uint64_t size;
};

/* DMA_READ / DMA_WRITE (server -> client) and their replies: the server
 * reads or writes client memory it was given without an fd.  DMA_READ's
 * reply and DMA_WRITE's request carry count bytes of data after this. */
struct vfio_user_dma_rw {
	uint64_t addr;
	uint64_t count;
	uint8_t data[];
};

/* DEVICE_GET_INFO: the spec's 16 bytes (newer kernels' struct
 * vfio_device_info grew a cap_offset the protocol does not carry). */
struct vfio_user_device_info {
	uint32_t argsz;
	uint32_t flags;		/* VFIO_DEVICE_FLAGS_RESET | _PCI */
	uint32_t num_regions;
	uint32_t num_irqs;
};

/* DEVICE_GET_REGION_IO_FDS request and reply head; the reply carries
 * `count` sub-regions and their fds in SCM_RIGHTS. */
struct vfio_user_region_io_fds {
	uint32_t argsz;
	uint32_t flags;
	uint32_t index;
	uint32_t count;
};

#define VFIO_USER_IO_FD_TYPE_IOEVENTFD 0u
#define VFIO_USER_IO_FD_TYPE_IOREGIONFD 1u

struct vfio_user_sub_region_ioeventfd {
	uint64_t offset;
	uint64_t size;
	uint32_t fd_index;
	uint32_t type;
	uint32_t flags;		/* KVM_IOEVENTFD_FLAG_* */
	uint32_t padding;
	uint64_t datamatch;
};

/* REGION_READ / REGION_WRITE head; data follows. */
struct vfio_user_region_access {
	uint64_t offset;
	uint32_t region;
	uint32_t count;
	uint8_t data[];
};

/* DEVICE_FEATURE request and reply: VFIO's struct vfio_device_feature;
 * a GET's reply adds the feature's data and counts it in argsz. */
struct vfio_user_device_feature {
	uint32_t argsz;
	uint32_t flags;		/* VFIO_DEVICE_FEATURE_* and the feature index */
	uint8_t data[];
};

/* MIG_DATA_READ request (argsz = the largest reply, size = bytes wanted)
 * and reply (size = bytes sent; fewer than asked means the end);
 * MIG_DATA_WRITE request (data follows), whose reply has no payload. */
struct vfio_user_mig_data {
	uint32_t argsz;
	uint32_t size;
	uint8_t data[];
};

_Static_assert(sizeof(struct vfio_user_header) == 16, "header");
_Static_assert(sizeof(struct vfio_user_device_feature) == 8, "device_feature");
_Static_assert(sizeof(struct vfio_user_mig_data) == 8, "mig_data");
_Static_assert(sizeof(struct vfio_user_version) == 4, "version");
_Static_assert(sizeof(struct vfio_user_dma_map) == 32, "dma_map");
_Static_assert(sizeof(struct vfio_user_dma_unmap) == 24, "dma_unmap");
_Static_assert(sizeof(struct vfio_user_dma_rw) == 16, "dma_rw");
_Static_assert(sizeof(struct vfio_user_region_io_fds) == 16, "io_fds");
_Static_assert(sizeof(struct vfio_user_sub_region_ioeventfd) == 40, "ioeventfd");
_Static_assert(sizeof(struct vfio_user_region_access) == 16, "access");
_Static_assert(sizeof(struct vfio_user_device_info) == 16, "device_info");
_Static_assert(sizeof(struct vfio_region_info) == 32, "region_info");
_Static_assert(sizeof(struct vfio_irq_info) == 16, "irq_info");
_Static_assert(sizeof(struct vfio_irq_set) == 20, "irq_set");

#endif
