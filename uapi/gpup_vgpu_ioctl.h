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
 *
 * GPUP_IOC_EXEC does in one system call what a loop of SUBMIT and WAIT
 * does in many: it takes several batches of packets, each for one of
 * the caller's queues, checks all of them before it queues any, and
 * with GPUP_EXEC_CHAIN queues each batch only once the one before it
 * has completed, returning when the last has.  Where a system call is
 * dear (ring 0 emulated, as under QEMU's TCG, or mitigations that switch
 * page tables) a step of a program is one call instead of four.
 */
#ifndef GPUP_UAPI_VGPU_IOCTL_H
#define GPUP_UAPI_VGPU_IOCTL_H

#include <linux/ioctl.h>
#include <linux/types.h>

#define GPUP_IOCTL_VERSION 2 /* 2: GPUP_IOC_EXEC */

#define GPUP_BO_OFFSET_BITS 40
#define GPUP_BO_ADDR(handle, offset) \
	(((__u64)(handle) << GPUP_BO_OFFSET_BITS) | (__u64)(offset))

#define GPUP_DOMAIN_VRAM 0u
#define GPUP_DOMAIN_SYSTEM 1u

/* Limits the driver enforces. */
#define GPUP_MAX_SUBMIT 256u      /* packets per GPUP_IOC_SUBMIT */
#define GPUP_MAX_FILE_QUEUES 4u   /* queues per open file */
#define GPUP_MAX_SPIN_NS 1000000000ull /* a SPIN kernel's ns */
#define GPUP_MAX_EXEC_BATCHES 8u  /* batches per GPUP_IOC_EXEC */
/* A GPUP_IOC_EXEC's batches together carry at most GPUP_MAX_SUBMIT packets. */

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

/* One batch of a GPUP_IOC_EXEC: what a GPUP_IOC_SUBMIT takes. */
struct gpup_exec_batch {
	__u32 queue;        /* in: this file's queue id */
	__u32 count;        /* in: 1..GPUP_MAX_SUBMIT */
	__u64 packets;      /* in: pointer to count union gpup_cmd */
	__u64 seq;          /* in: 0; out: its sequence number, 0 if not queued */
};

/* Wait for each batch before the next is queued, and for the last. */
#define GPUP_EXEC_CHAIN (1u << 0)
#define GPUP_EXEC_FLAGS GPUP_EXEC_CHAIN

/*
 * All batches are checked (queue ids, counts, every packet) before any is
 * queued: an error from the checks (EINVAL, ENOENT, EFAULT, ENOMEM)
 * leaves nothing queued.  Without GPUP_EXEC_CHAIN the batches are queued
 * in order, as that many SUBMITs would queue them, and timeout_ns must be
 * 0.  With it, each waits for the one before it as WAIT would, all the
 * waits together for at most timeout_ns; the errors of WAIT (EIO, ETIME,
 * EINTR, ENODEV) then end the call with the rest not queued.  On every
 * return, submitted counts the batches queued and each of those has its
 * seq written back, so that a caller interrupted by a signal can wait for
 * the last one queued and submit the rest: the call is not restarted.
 */
struct gpup_ioc_exec {
	__u64 batches;      /* in: pointer to nbatch struct gpup_exec_batch */
	__u32 nbatch;       /* in: 1..GPUP_MAX_EXEC_BATCHES */
	__u32 flags;        /* in: GPUP_EXEC_* */
	__u64 timeout_ns;   /* in: with GPUP_EXEC_CHAIN; else 0 */
	__u32 submitted;    /* in: 0; out: batches queued */
	__u32 pad;
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
#define GPUP_IOC_EXEC _IOWR('G', 0x08, struct gpup_ioc_exec)

#endif
