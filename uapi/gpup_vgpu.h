/* SPDX-License-Identifier: MIT */
/*
 * The guest-visible ABI of a gpup vGPU function: PCI identity, the BAR0
 * register map, the command packets a guest puts on its queues, fault codes
 * and built-in kernel ids.  Everything here crosses the guest/host boundary,
 * so it uses fixed-width types, explicit padding and little-endian layout,
 * and is checked by _Static_assert.  The same header is included by the
 * daemon, the VMM and the freestanding guest runtime, so it needs nothing
 * but <stdint.h>.
 *
 * DOC: the model
 *
 * BAR0 (GPUP_BAR0_SIZE bytes, 32-bit non-prefetchable memory):
 *   page 0  registers (device, interrupt, fault log, per-queue blocks)
 *   page 1  doorbells, one 32-bit word per queue; the value is ignored
 *   page 2  MSI-X table (emulated by the VMM, as with any VFIO device)
 *   page 3  MSI-X pending-bit array
 * BAR2: the partition's VRAM, 64-bit prefetchable, mapped into the guest.
 *
 * A queue is a ring of GPUP_CMD_SIZE-byte packets in guest memory, read by
 * the device through the partition's IOMMU domain.  The producer index is a
 * 32-bit word in guest memory at Q_PI_ADDR (a "shadow doorbell"): the guest
 * writes packets, then the index, then any value to the queue's doorbell.
 * Indices are free-running 32-bit counters; slot = index % ring entries.
 * The device publishes its consumer index in Q_CI.  A new partition's VRAM
 * reads as zeros: it is scrubbed when the partition is created, so no
 * tenant sees an earlier one's data.  Every address in a
 * packet names its space (VRAM offset or guest IOVA) and is checked; a bad
 * one faults only that queue, which stops until it is re-enabled.
 */
#ifndef GPUP_UAPI_VGPU_H
#define GPUP_UAPI_VGPU_H

#include <stdint.h>

#define GPUP_ABI_VERSION_MAJOR 1
#define GPUP_ABI_VERSION_MINOR 0
#define GPUP_ABI_VERSION ((GPUP_ABI_VERSION_MAJOR << 16) | GPUP_ABI_VERSION_MINOR)

/* PCI identity.  0x1234 is the experimental vendor id QEMU's own emulated
 * devices use; the device id spells "gp". */
#define GPUP_PCI_VENDOR_ID 0x1234u
#define GPUP_PCI_DEVICE_ID 0x6770u
/* `gpup run`'s host bridge at 00:00.0: how a guest can tell which VMM's
 * PCI platform it is on. */
#define GPUP_PCI_HOST_DEVICE_ID 0x6771u
#define GPUP_PCI_CLASS 0x030200u /* display controller, 3D */
#define GPUP_PCI_REVISION 0x01u

#define GPUP_BAR0_SIZE 0x4000u
#define GPUP_PAGE_REGS 0x0000u
#define GPUP_PAGE_DOORBELL 0x1000u
#define GPUP_PAGE_MSIX_TABLE 0x2000u
#define GPUP_PAGE_MSIX_PBA 0x3000u

#define GPUP_MAX_QUEUES 8u
#define GPUP_MSIX_VECTORS 9u /* one per queue, then one for faults */
#define GPUP_FAULT_LOG_ENTRIES 16u

/* ---- page 0: device registers (all 32-bit, naturally aligned) ---- */
#define GPUP_REG_ID 0x000            /* RO: GPUP_ID_MAGIC */
#define GPUP_REG_VERSION 0x004       /* RO: GPUP_ABI_VERSION */
#define GPUP_REG_CAPS 0x008          /* RO: GPUP_CAP_* */
#define GPUP_REG_NUM_QUEUES 0x00c    /* RO */
#define GPUP_REG_VRAM_SIZE_LO 0x010  /* RO: partition VRAM bytes */
#define GPUP_REG_VRAM_SIZE_HI 0x014
#define GPUP_REG_NUM_ENGINES 0x018   /* RO */
#define GPUP_REG_KERNELS 0x01c       /* RO: bit n set = kernel id n built in */
#define GPUP_REG_CONTROL 0x020       /* RW: GPUP_CTRL_* */
#define GPUP_REG_STATUS 0x024        /* RO: GPUP_STS_* */
#define GPUP_REG_INTR_STATUS 0x030   /* RW1C: bit q = queue q, bit 31 = fault */
#define GPUP_REG_INTR_MASK 0x034     /* RW: set bit = that source sends no MSI */
#define GPUP_REG_FAULT_VECTOR 0x038  /* RW: MSI-X vector for faults */
#define GPUP_REG_FAULT_COUNT 0x040   /* RO: faults recorded since reset */
#define GPUP_REG_TIME_LO 0x048       /* RO: device clock, ns; read LO first */
#define GPUP_REG_TIME_HI 0x04c
#define GPUP_REG_SCRATCH 0x050       /* RW: no side effect (for tests) */

#define GPUP_ID_MAGIC 0x50555047u /* "GPUP" read as little-endian bytes */

#define GPUP_CAP_MSIX (1u << 0)
#define GPUP_CAP_SHADOW_PI (1u << 1)
#define GPUP_CAP_FAULT_LOG (1u << 2)
#define GPUP_CAP_TIMESTAMP (1u << 3)
#define GPUP_CAP_RECOVERY (1u << 4)  /* STATUS.RECOVERED, Q_FENCE (see below) */
#define GPUP_CAP_WATCH (1u << 5)     /* Q_WATCH (see below) */

#define GPUP_CTRL_ENABLE (1u << 0)
#define GPUP_CTRL_RESET (1u << 1) /* write 1: function-level reset, self-clearing */

#define GPUP_STS_READY (1u << 0)
#define GPUP_STS_FAULT (1u << 1)  /* a fault is logged and not yet cleared */
#define GPUP_STS_LOST (1u << 2)   /* the backing GPU failed; reset or give up */
/* The backing GPU failed and the partition was recovered on another one
 * from its last protection checkpoint: VRAM and every register are as
 * they were then, Q_FENCE of each queue says which of its FENCEs had
 * completed by then, and every queue that was enabled is stopped with
 * GPUP_FAULT_DEVICE_LOST (restart it: disable, enable) so that nothing
 * submitted after the checkpoint runs twice.  The guest resubmits what
 * came after each queue's Q_FENCE.  Raised with INTR_STATUS bit
 * GPUP_INTR_RECOVERED on the fault vector; writing 1 to that bit clears
 * both. */
#define GPUP_STS_RECOVERED (1u << 3)

#define GPUP_INTR_FAULT (1u << 31)
#define GPUP_INTR_RECOVERED (1u << 30) /* see GPUP_STS_RECOVERED */

/* Fault log: GPUP_FAULT_LOG_ENTRIES records, the newest at
 * (FAULT_COUNT - 1) % GPUP_FAULT_LOG_ENTRIES.  Each record is 32 bytes:
 *   +0x00 code (GPUP_FAULT_*)  +0x04 queue  +0x08 address lo/hi
 *   +0x10 detail lo: GPUP_FAULT_DETAIL_* for IOMMU faults, otherwise the
 *         offending value (opcode, kernel id, length, ring entries...)
 *   +0x14 detail hi: the faulting packet's tag (its header's cookie)
 *   +0x18 seq lo/hi: the fault's number since reset, from 1
 * The faulting packet is the one at the queue's Q_CI when it stopped.  A
 * bad queue setup faults with GPUP_FAULT_RING when the queue is enabled,
 * with the bad value as the address.  STATUS.FAULT mirrors INTR_STATUS
 * bit 31: writing 1 to that bit clears both. */
#define GPUP_REG_FAULT_LOG 0x400
#define GPUP_FAULT_REC_SIZE 0x20
#define GPUP_FAULT_REC_CODE 0x00
#define GPUP_FAULT_REC_QUEUE 0x04
#define GPUP_FAULT_REC_ADDR_LO 0x08
#define GPUP_FAULT_REC_ADDR_HI 0x0c
#define GPUP_FAULT_REC_DETAIL_LO 0x10
#define GPUP_FAULT_REC_DETAIL_HI 0x14
#define GPUP_FAULT_REC_SEQ_LO 0x18
#define GPUP_FAULT_REC_SEQ_HI 0x1c

/* Per-queue register blocks at GPUP_REG_QUEUE(q). */
#define GPUP_REG_QUEUE_BASE 0x800
#define GPUP_REG_QUEUE_STRIDE 0x40
#define GPUP_REG_QUEUE(q) (GPUP_REG_QUEUE_BASE + (q) * GPUP_REG_QUEUE_STRIDE)
#define GPUP_Q_RING_LO 0x00   /* RW: ring IOVA, GPUP_CMD_SIZE aligned */
#define GPUP_Q_RING_HI 0x04
#define GPUP_Q_RING_ENTRIES 0x08 /* RW: power of two, 2..65536 */
#define GPUP_Q_ENGINE 0x0c    /* RW: GPUP_ENGINE_* */
#define GPUP_Q_PI_ADDR_LO 0x10 /* RW: IOVA of the 32-bit producer index */
#define GPUP_Q_PI_ADDR_HI 0x14
#define GPUP_Q_CI 0x18        /* RO: packets consumed (free-running) */
#define GPUP_Q_CONTROL 0x1c   /* RW: GPUP_QCTL_* */
#define GPUP_Q_STATUS 0x20    /* RO: GPUP_QSTS_* */
#define GPUP_Q_VECTOR 0x24    /* RW: MSI-X vector for FENCE interrupts */
#define GPUP_Q_FAULT 0x28     /* RO: last fault code on this queue */
#define GPUP_Q_PRIORITY 0x2c  /* RW: reserved for the scheduler, 0 */
#define GPUP_Q_FENCE_LO 0x30  /* RO: value of the last FENCE completed (0: none) */
#define GPUP_Q_FENCE_HI 0x34
#define GPUP_Q_WATCH_LO 0x38  /* RW: IOVA of the queue's watch word; 0: none */
#define GPUP_Q_WATCH_HI 0x3c

/* The watch word (GPUP_CAP_WATCH).  A doorbell can cost a guest more than
 * the work it announces (a VMM may forward each one as a synchronous
 * message).  While the device looks at a queue's producer index by
 * itself (a while after the queue runs dry, and while it runs), it keeps
 * the 32-bit word at Q_WATCH, in guest memory, at 1; before it stops
 * looking it writes 0 there, then looks at the producer index once more.
 * So a guest that publishes its producer index, then (after a full
 * barrier: x86 MFENCE or a locked instruction) reads 1 in the watch word
 * need not ring the doorbell: either the device sees the new index, or
 * the guest sees 0 and rings.  Q_WATCH must be 4-byte aligned (else the
 * enable faults with GPUP_FAULT_RING) and is read at enable: writes while
 * the queue is enabled are ignored.  The device writes the word only
 * while the queue is enabled, and leaves 0 there when it is disabled or
 * reset.  A word the device cannot write faults the queue.  Where the
 * device reaches the producer index only through the VMM, it does not
 * watch, and the word stays 0. */

/* Setting ENABLE re-reads the queue's setup and starts at the producer
 * index found in guest memory then (CI := PI): packets written before the
 * queue was enabled are not run.  Where the device reaches guest memory
 * only through the VMM (a vfio-user client's memory without an fd), that
 * read cannot finish within the register write: the queue then shows
 * STARTING until it has, and a guest must not move its producer index
 * before STARTING clears (packets published meanwhile may be skipped). */
#define GPUP_QCTL_ENABLE (1u << 0)

#define GPUP_QSTS_ENABLED (1u << 0)
#define GPUP_QSTS_BUSY (1u << 1)
#define GPUP_QSTS_FAULTED (1u << 2) /* stopped; clear by disabling/enabling */
#define GPUP_QSTS_STARTING (1u << 3) /* enabled, CI := PI not taken yet */

#define GPUP_ENGINE_COMPUTE 0u
#define GPUP_ENGINE_COPY 1u

/* ---- page 1: doorbells ---- */
#define GPUP_DOORBELL(q) (GPUP_PAGE_DOORBELL + (q) * 4u)

/* ---- command packets ---- */
#define GPUP_CMD_SIZE 64u

enum gpup_opcode {
	GPUP_OP_NOP = 0,
	GPUP_OP_FENCE = 1,
	GPUP_OP_COPY = 2,
	GPUP_OP_FILL = 3,
	GPUP_OP_KERNEL = 4,
	GPUP_OP_WAIT = 5,
	GPUP_OP_TIMESTAMP = 6,
	GPUP_OP_MAX
};

/* Address spaces named by every address field. */
enum gpup_space {
	GPUP_SPACE_VRAM = 0, /* byte offset into the partition's VRAM */
	GPUP_SPACE_IOVA = 1, /* guest IOVA, translated by the partition's IOMMU */
};

#define GPUP_FENCE_IRQ (1u << 0) /* FENCE: raise the queue's vector after the write */

enum gpup_wait_op {
	GPUP_WAIT_GE = 0, /* (mem & mask) >= value, unsigned 64-bit */
	GPUP_WAIT_EQ = 1, /* (mem & mask) == value */
};

struct gpup_cmd_hdr {
	uint16_t opcode;
	uint16_t flags;
	uint32_t tag; /* the guest's cookie; echoed in fault records */
};

struct gpup_cmd_fence {	/* write a 64-bit value, optionally interrupt */
	struct gpup_cmd_hdr hdr;
	uint8_t space;
	uint8_t pad[7];
	uint64_t addr; /* 8-byte aligned */
	uint64_t value;
	uint8_t rsvd[32];
};

struct gpup_cmd_copy {
	struct gpup_cmd_hdr hdr;
	uint8_t src_space;
	uint8_t dst_space;
	uint8_t pad[6];
	uint64_t src;
	uint64_t dst;
	uint64_t len; /* bytes; ranges must not overlap within one space */
	uint8_t rsvd[24];
};

struct gpup_cmd_fill {	/* repeat a 32-bit pattern; len multiple of 4 */
	struct gpup_cmd_hdr hdr;
	uint8_t dst_space;
	uint8_t pad[3];
	uint32_t pattern;
	uint64_t dst;
	uint64_t len;
	uint8_t rsvd[32];
};

struct gpup_cmd_kernel {
	struct gpup_cmd_hdr hdr;
	uint32_t kernel; /* GPUP_KERNEL_* */
	uint32_t pad;
	uint64_t args[6]; /* per kernel, below */
};

struct gpup_cmd_wait {	/* stall this queue until the condition holds */
	struct gpup_cmd_hdr hdr;
	uint8_t space;
	uint8_t op;	/* GPUP_WAIT_* */
	uint8_t pad[6];
	uint64_t addr;	/* 8-byte aligned */
	uint64_t value;
	uint64_t mask;
	uint8_t rsvd[24];
};

struct gpup_cmd_timestamp {	/* write the device clock (ns, 64-bit) */
	struct gpup_cmd_hdr hdr;
	uint8_t space;
	uint8_t pad[7];
	uint64_t addr;	/* 8-byte aligned */
	uint8_t rsvd[40];
};

union gpup_cmd {
	struct gpup_cmd_hdr hdr;
	struct gpup_cmd_fence fence;
	struct gpup_cmd_copy copy;
	struct gpup_cmd_fill fill;
	struct gpup_cmd_kernel kernel;
	struct gpup_cmd_wait wait;
	struct gpup_cmd_timestamp timestamp;
	uint8_t raw[GPUP_CMD_SIZE];
};

/* Packet builders: the fields not named are zero, as the ABI requires of
 * padding and reserved bytes.  Header-only so that guests and host tools
 * encode packets the same way. */
static inline union gpup_cmd gpup_cmd_copy(uint8_t src_space, uint64_t src, uint8_t dst_space,
					   uint64_t dst, uint64_t len)
{
	union gpup_cmd c = { .copy = { .hdr = { .opcode = GPUP_OP_COPY },
				       .src_space = src_space, .dst_space = dst_space,
				       .src = src, .dst = dst, .len = len } };
	return c;
}

static inline union gpup_cmd gpup_cmd_fill(uint8_t space, uint64_t dst, uint64_t len,
					   uint32_t pattern)
{
	union gpup_cmd c = { .fill = { .hdr = { .opcode = GPUP_OP_FILL }, .dst_space = space,
				       .pattern = pattern, .dst = dst, .len = len } };
	return c;
}

/* nargs of args (at most 6) are used; the rest are zero. */
static inline union gpup_cmd gpup_cmd_kernel(uint32_t kernel, const uint64_t *args,
					     unsigned int nargs)
{
	union gpup_cmd c = { .kernel = { .hdr = { .opcode = GPUP_OP_KERNEL }, .kernel = kernel } };

	for (unsigned int i = 0; i < nargs && i < 6; i++)
		c.kernel.args[i] = args[i];
	return c;
}

/* flags: GPUP_FENCE_IRQ or 0. */
static inline union gpup_cmd gpup_cmd_fence(uint8_t space, uint64_t addr, uint64_t value,
					    uint16_t flags)
{
	union gpup_cmd c = { .fence = { .hdr = { .opcode = GPUP_OP_FENCE, .flags = flags },
					.space = space, .addr = addr, .value = value } };
	return c;
}

/*
 * Built-in kernels.  All buffers are VRAM offsets (kernels run on device
 * memory, as on a real GPU; COPY moves data in and out), f32 data is
 * IEEE-754 binary32, little-endian, and every result is defined bit for bit
 * so that a guest can check it with plain C:
 *
 * SAXPY    args: n, a (f32 bits in the low 32), x, y.   y[i] = a * x[i] + y[i]
 *          (one multiply rounded, then one add rounded; no fused multiply-add).
 * GEMM     args: m, n, k, A, B, C.  C[m][n] = sum over p in 0..k-1, in order,
 *          of A[m][p] * B[p][n], accumulated in f32 from 0.0f, row-major,
 *          each product and each sum rounded to f32.
 * REDUCE   args: n, x, out.  Sum of n f32 in blocks of GPUP_REDUCE_BLOCK:
 *          each block summed in order from 0.0f, then the block sums summed
 *          in order from 0.0f; the f32 result is written to out.
 * CHECKSUM args: len, src, out.  64-bit FNV-1a over len bytes (offset basis
 *          0xcbf29ce484222325, prime 0x100000001b3), written to out.
 * RENDER   args: width, height, stride (bytes), fb, frame.  Writes 32-bit
 *          pixels: px(x, y) = gpup_render_pixel(x, y, frame).
 * SPIN     args: ns.  Occupies the engine for ns of engine time.
 */
enum gpup_kernel_id {
	GPUP_KERNEL_SAXPY = 0,
	GPUP_KERNEL_GEMM = 1,
	GPUP_KERNEL_REDUCE = 2,
	GPUP_KERNEL_CHECKSUM = 3,
	GPUP_KERNEL_RENDER = 4,
	GPUP_KERNEL_SPIN = 5,
	GPUP_KERNEL_MAX
};

#define GPUP_REDUCE_BLOCK 256u
#define GPUP_FNV64_BASIS 0xcbf29ce484222325ull
#define GPUP_FNV64_PRIME 0x100000001b3ull

static inline uint32_t gpup_render_pixel(uint32_t x, uint32_t y, uint32_t frame)
{
	uint32_t r = (x + frame) & 0xff;
	uint32_t g = (y + 2 * frame) & 0xff;
	uint32_t b = ((x ^ y) + 3 * frame) & 0xff;

	return 0xff000000u | (r << 16) | (g << 8) | b;
}

/* Fault codes, in fault records and Q_FAULT.
 *
 * GPUP_FAULT_WATCHDOG: a queue had work and completed no packet for the
 * host's watchdog timeout (a WAIT nobody satisfies, a kernel that never
 * ends).  It is recorded like any fault (the record names the queue and
 * the hung packet: addr its IOVA, detail its opcode and tag; Q_FAULT,
 * INTR_STATUS bit 31 and the fault vector's MSI), and then the whole
 * function is reset as by GPUP_CTRL_RESET: every queue stopped and
 * disabled, every register at its reset value (CONTROL 0, so STATUS.READY
 * clear), except that the fault log, FAULT_COUNT and INTR_STATUS bit 31
 * (so STATUS.FAULT) are kept, for the guest to read why, and STATUS.LOST
 * stays as it was.  The reset follows the record shortly: until it is
 * done, registers may still show the faulted queue; a BAR0 write the guest
 * makes once it has seen the fault takes effect after the reset, never
 * before it, so a driver may set the device up again (CONTROL.ENABLE, its
 * queues) straight from its fault handler.  A guest's own reset clears
 * the log as usual.  Other partitions on the GPU are not affected. */
enum gpup_fault_code {
	GPUP_FAULT_NONE = 0,
	GPUP_FAULT_IOMMU_UNMAPPED = 1, /* IOVA not mapped */
	GPUP_FAULT_IOMMU_PERM = 2,     /* mapped, but not for this access */
	GPUP_FAULT_VRAM_RANGE = 3,     /* VRAM offset past the partition */
	GPUP_FAULT_BAD_OPCODE = 4,
	GPUP_FAULT_BAD_KERNEL = 5,
	GPUP_FAULT_BAD_ARGS = 6,       /* bad space, alignment, length, overlap */
	GPUP_FAULT_RING = 7,           /* ring setup or producer index out of range */
	GPUP_FAULT_WATCHDOG = 8,       /* no progress in time; resets the function */
	GPUP_FAULT_DEVICE_LOST = 9,    /* the backing GPU failed */
	GPUP_FAULT_MAX
};

/* Fault detail bits for IOMMU faults. */
#define GPUP_FAULT_DETAIL_READ (1u << 0)
#define GPUP_FAULT_DETAIL_WRITE (1u << 1)

_Static_assert(sizeof(struct gpup_cmd_hdr) == 8, "hdr");
_Static_assert(sizeof(struct gpup_cmd_fence) == GPUP_CMD_SIZE, "fence");
_Static_assert(sizeof(struct gpup_cmd_copy) == GPUP_CMD_SIZE, "copy");
_Static_assert(sizeof(struct gpup_cmd_fill) == GPUP_CMD_SIZE, "fill");
_Static_assert(sizeof(struct gpup_cmd_kernel) == GPUP_CMD_SIZE, "kernel");
_Static_assert(sizeof(struct gpup_cmd_wait) == GPUP_CMD_SIZE, "wait");
_Static_assert(sizeof(struct gpup_cmd_timestamp) == GPUP_CMD_SIZE, "timestamp");
_Static_assert(sizeof(union gpup_cmd) == GPUP_CMD_SIZE, "cmd");
_Static_assert(GPUP_REG_FAULT_LOG + GPUP_FAULT_LOG_ENTRIES * GPUP_FAULT_REC_SIZE <=
		       GPUP_REG_QUEUE_BASE, "fault log overlaps queues");
_Static_assert(GPUP_REG_QUEUE(GPUP_MAX_QUEUES) <= GPUP_PAGE_DOORBELL, "queues");

#endif
