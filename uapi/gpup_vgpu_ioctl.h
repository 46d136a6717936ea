/* SPDX-License-Identifier: MIT */
/*
 * The Linux guest driver's character device, /dev/gpupN (one per vGPU
 * function): the ioctls a process in the guest uses.  Shared by the kernel
 * module (samples/linux/kmod) and userspace (samples/linux/tools);
 * man/gpup-vgpu.4 is the manual.
 *
 * DOC: the model
 *
 * A process never names device addresses.  It allocates buffers (VRAM in
 * the partition, or system memory in guest RAM that the device reaches by
 * DMA), each known by a handle private to its open file, and mmaps them
 * with the offset the allocation returned.  Packets are the device's own
 * (union gpup_cmd in uapi/gpup_vgpu.h) except that every address is a
 * buffer address, GPUP_BO_ADDR(handle, offset), and its space field says
 * which kind of buffer it names (GPUP_SPACE_VRAM or GPUP_SPACE_IOVA for
 * system memory).  The driver checks every packet (opcode, flags, padding,
 * kernel arguments, each range inside one of the caller's buffers) and
 * rewrites the addresses before the packet reaches the ring, so one
 * process cannot reach another's buffers.  Each open file creates its own
 * queues; a submission returns a sequence number to wait for.
 */
#ifndef GPUP_UAPI_VGPU_IOCTL_H
#define GPUP_UAPI_VGPU_IOCTL_H

#include <linux/ioctl.h>
#include <linux/types.h>

#define GPUP_IOCTL_VERSION 1

#define GPUP_BO_OFFSET_BITS 40
#define GPUP_BO_ADDR(handle, offset) \
	(((__u64)(handle) << GPUP_BO_OFFSET_BITS) | (__u64)(offset))

#define GPUP_DOMAIN_VRAM 0u
#define GPUP_DOMAIN_SYSTEM 1u

/* Limits the driver enforces. */
#define GPUP_MAX_SUBMIT 256u      /* packets per GPUP_IOC_SUBMIT */
#define GPUP_MAX_FILE_QUEUES 4u   /* queues per open file */
#define GPUP_MAX_SPIN_NS 1000000000ull /* a SPIN kernel's ns */

struct gpup_ioc_info {
	__u32 version;      /* out: GPUP_IOCTL_VERSION */
	__u32 abi;          /* out: the device's GPUP_REG_VERSION */
	__u64 vram_size;    /* out: partition VRAM, bytes */
	__u64 vram_free;    /* out: VRAM not allocated by anyone */
	__u32 caps;         /* out: GPUP_CAP_* */
	__u32 num_queues;   /* out: hardware queues */
	__u32 num_engines;  /* out */
	__u32 kernels;      /* out: bit n = kernel id n built in */
	__u32 free_queues;  /* out: hardware queues no file holds */
	__u32 fault_count;  /* out: the device's FAULT_COUNT */
	__u64 time_ns;      /* out: the device clock */
	char pci_name[16];  /* out: e.g. 0000:00:04.0 */
};

struct gpup_ioc_alloc {
	__u64 size;         /* in: bytes, rounded up to pages */
	__u32 domain;       /* in: GPUP_DOMAIN_* */
	__u32 flags;        /* in: 0 */
	__u32 handle;       /* out */
	__u32 pad;
	__u64 mmap_offset;  /* out: the offset to give mmap() */
};

struct gpup_ioc_free {
	__u32 handle;       /* in */
	__u32 pad;
};

struct gpup_ioc_queue {
	__u32 engine;       /* in: GPUP_ENGINE_* */
	__u32 flags;        /* in: 0 */
	__u32 queue;        /* out: this file's queue id */
	__u32 pad;
};

struct gpup_ioc_submit {
	__u32 queue;        /* in */
	__u32 count;        /* in: 1..GPUP_MAX_SUBMIT */
	__u64 packets;      /* in: pointer to count union gpup_cmd */
	__u64 seq;          /* out: wait for this to see them done */
};

struct gpup_ioc_wait {
	__u32 queue;        /* in */
	__u32 pad;
	__u64 seq;          /* in: a value SUBMIT returned */
	__u64 timeout_ns;   /* in */
};

/* A fault the device reported on one of this file's queues. */
struct gpup_fault_record {
	__u32 code;         /* GPUP_FAULT_* */
	__u32 queue;        /* this file's queue id */
	__u64 addr;         /* device address (not a buffer address) */
	__u32 detail;
	__u32 tag;          /* the faulting packet's hdr.tag */
	__u64 seq;          /* the fault's number since reset */
};

struct gpup_ioc_faults {
	__u64 records;      /* in: pointer to max struct gpup_fault_record */
	__u32 max;          /* in */
	__u32 count;        /* out: records written (and removed) */
	__u32 lost;         /* out: records dropped since the last call */
	__u32 pad;
};

#define GPUP_IOC_INFO _IOR('G', 0x00, struct gpup_ioc_info)
#define GPUP_IOC_ALLOC _IOWR('G', 0x01, struct gpup_ioc_alloc)
#define GPUP_IOC_FREE _IOW('G', 0x02, struct gpup_ioc_free)
#define GPUP_IOC_QUEUE _IOWR('G', 0x03, struct gpup_ioc_queue)
#define GPUP_IOC_SUBMIT _IOWR('G', 0x04, struct gpup_ioc_submit)
#define GPUP_IOC_WAIT _IOW('G', 0x05, struct gpup_ioc_wait)
#define GPUP_IOC_FAULTS _IOWR('G', 0x06, struct gpup_ioc_faults)
#define GPUP_IOC_RESET _IO('G', 0x07)

#endif
