/* SPDX-License-Identifier: MIT */
/*
 * The gpup VM migration stream: what `gpup migrate` sends from a running
 * `gpup run` to a `gpup run --incoming` over TCP.  hv/vm_stream.c writes
 * and parses it; docs/MIGRATION.md ("Migrating a VM") has the prose.
 *
 * DOC: the format
 *
 * The chunk head is that of the partition stream (struct gpup_mig_chunk
 * in uapi/gpup_mig.h: sync, kind, flags, len, seq, XXH3-64 of the payload
 * and of the head's first 24 bytes) with its own sync word, so that one
 * stream is never taken for the other.  A reader checks the head before
 * it trusts `len`, and the payload's hash before it uses the payload.
 *
 * The order is fixed:
 *
 *   HEADER;
 *   PAGES, ZERO and DEV chunks in any number and order (pre-copy rounds:
 *   a later chunk overwrites an earlier one);
 *   exactly one CPU chunk per vCPU, in index order;
 *   exactly one VMSTATE;
 *   END.
 *
 * PAGES and ZERO name a space: 0 is guest RAM (offset = guest physical
 * address), 1 + i is the VRAM of partition i as the guest's CPU wrote it
 * through BAR2 (offset in VRAM).  A DEV chunk carries the next bytes of
 * partition i's own migration stream (uapi/gpup_mig.h), opaque here and
 * checked by the destination's device.  The destination writes the
 * partition streams and the BAR2 pages in the order they came, so that
 * what was read last at the source lands last.
 *
 * CPU and VMSTATE payloads are records: a u32 tag, a u32 length, the
 * bytes, padded to 8.  A record's length must be the size of the KVM
 * structure its tag names (MSRS: a whole number of entries).
 *
 * After END the destination answers on the same connection with one
 * struct gpup_vmmig_reply: READY once everything was checked and loaded,
 * or REFUSED with a line saying why (it may refuse early, as soon as it
 * knows).  The source then sends GO (one reply of that code), after which
 * it never runs the VM again; the destination runs it only after GO.
 *
 * A source that sets GPUP_VMMIG_HF_ACKS in the HEADER also gets ACKs
 * before that: when the destination has taken all that came so far and
 * waits for more, it may say how many stream bytes that was (every whole
 * chunk of them checked and loaded).  The source knows from them how far
 * behind the destination is, which a socket's own buffers hide, and a
 * stop never waits for the destination to work off earlier rounds.
 * Little-endian, fixed-width fields, reserved fields zero.
 */
#ifndef GPUP_UAPI_GPUP_VMMIG_H
#define GPUP_UAPI_GPUP_VMMIG_H

#include <stdint.h>

#define GPUP_VMMIG_SYNC 0x47494d56u             /* "VMIG" as little-endian bytes */
#define GPUP_VMMIG_MAGIC 0x314d564d50555047ull /* "GPUPMVM1" */
#define GPUP_VMMIG_VERSION 1u
#define GPUP_VMMIG_PAGE_SIZE 4096u

#define GPUP_VMMIG_MAX_PAYLOAD ((1u << 20) + 64u)
#define GPUP_VMMIG_MAX_PAGES 256u           /* pages in one PAGES chunk */
#define GPUP_VMMIG_MAX_DEV (1u << 20)       /* bytes in one DEV chunk */
#define GPUP_VMMIG_MAX_CPUS 8u
#define GPUP_VMMIG_MAX_GPUS 8u

enum gpup_vmmig_kind {
	GPUP_VMMIG_HEADER = 1,
	GPUP_VMMIG_PAGES = 2,
	GPUP_VMMIG_ZERO = 3,
	GPUP_VMMIG_DEV = 4,
	GPUP_VMMIG_CPU = 5,
	GPUP_VMMIG_VMSTATE = 6,
	GPUP_VMMIG_END = 7,
};

/* The head: the same 32 bytes as struct gpup_mig_chunk. */
struct gpup_vmmig_chunk {
	uint32_t sync;		/* GPUP_VMMIG_SYNC */
	uint16_t kind;		/* enum gpup_vmmig_kind */
	uint16_t flags;		/* none defined: 0 */
	uint32_t len;		/* payload bytes that follow */
	uint32_t seq;		/* 0 for HEADER, then one more per chunk */
	uint64_t data_hash;	/* XXH3-64 of the payload */
	uint64_t head_hash;	/* XXH3-64 of the 24 bytes above */
};

/* HEADER: the VM's shape, which the destination builds before it loads. */
struct gpup_vmmig_header {
	uint64_t magic;		/* GPUP_VMMIG_MAGIC */
	uint32_t version;	/* GPUP_VMMIG_VERSION */
	uint32_t page_size;	/* GPUP_VMMIG_PAGE_SIZE */
	uint64_t mem_size;	/* guest RAM bytes, a page multiple */
	uint32_t ncpus;		/* 1..GPUP_VMMIG_MAX_CPUS */
	uint32_t ngpus;		/* 0..GPUP_VMMIG_MAX_GPUS */
	uint32_t flags;		/* GPUP_VMMIG_HF_* */
	uint32_t reserved;
	uint64_t vram_size[GPUP_VMMIG_MAX_GPUS]; /* each partition's BAR2 bytes */
};
#define GPUP_VMMIG_HF_IRQCHIP (1u << 0)	/* the VM has an in-kernel irqchip */
#define GPUP_VMMIG_HF_ACKS (1u << 1)	/* the source wants ACKs */

/* Spaces of PAGES and ZERO. */
#define GPUP_VMMIG_SPACE_RAM 0u
#define GPUP_VMMIG_SPACE_VRAM0 1u	/* + partition index */

/* PAGES: this head, then `pages` pages from `offset` in `space`. */
struct gpup_vmmig_pages {
	uint32_t space;
	uint32_t pages;		/* 1..GPUP_VMMIG_MAX_PAGES */
	uint64_t offset;	/* page aligned */
};

/* ZERO: `pages` pages from `offset` in `space` are zero. */
struct gpup_vmmig_zero {
	uint32_t space;
	uint32_t reserved;
	uint64_t offset;
	uint64_t pages;		/* >= 1 */
};

/* DEV: this head, then the next bytes of partition `gpu`'s stream. */
struct gpup_vmmig_dev {
	uint32_t gpu;
	uint32_t reserved;
};

/* CPU: this head, then records.  VMSTATE: records only. */
struct gpup_vmmig_cpu {
	uint32_t index;
	uint32_t reserved;
};

struct gpup_vmmig_rec {
	uint32_t tag;		/* enum gpup_vmmig_tag */
	uint32_t len;		/* bytes that follow, then zero padding to 8 */
};

enum gpup_vmmig_tag {
	/* vCPU records (struct kvm_* of <linux/kvm.h>) */
	GPUP_VMMIG_T_REGS = 1,		/* kvm_regs, required */
	GPUP_VMMIG_T_SREGS = 2,		/* kvm_sregs, required */
	GPUP_VMMIG_T_FPU = 3,		/* kvm_fpu (without XSAVE) */
	GPUP_VMMIG_T_XSAVE = 4,		/* kvm_xsave */
	GPUP_VMMIG_T_XCRS = 5,		/* kvm_xcrs */
	GPUP_VMMIG_T_MSRS = 6,		/* kvm_msr_entry[n] */
	GPUP_VMMIG_T_LAPIC = 7,		/* kvm_lapic_state (with an irqchip) */
	GPUP_VMMIG_T_EVENTS = 8,	/* kvm_vcpu_events */
	GPUP_VMMIG_T_MPSTATE = 9,	/* kvm_mp_state */
	GPUP_VMMIG_T_DEBUGREGS = 10,	/* kvm_debugregs */
	/* VMM records */
	GPUP_VMMIG_T_PCI = 32,		/* struct gpup_vmmig_pci, one per function */
	GPUP_VMMIG_T_MSIX = 33,		/* struct gpup_vmmig_msix, one per partition */
	GPUP_VMMIG_T_SERIAL = 34,	/* struct gpup_vmmig_serial */
	GPUP_VMMIG_T_IRQCHIP = 35,	/* kvm_irqchip, one per chip (PIC0, PIC1, IOAPIC) */
	GPUP_VMMIG_T_UPTIME = 36,	/* u64 ns the VM had run at the source */
};

#define GPUP_VMMIG_MAX_MSRS 64u

/* A PCI function's config space, as the guest left it. */
struct gpup_vmmig_pci {
	uint32_t devfn;
	uint32_t reserved;
	uint8_t cfg[256];
};

/* A partition's MSI-X table: addr lo, addr hi, data, vector control. */
struct gpup_vmmig_msix {
	uint32_t gpu;
	uint32_t nvec;
	uint32_t entry[32][4];
};

struct gpup_vmmig_serial {
	uint8_t ier, lcr, mcr, scr, dll, dlm;
	uint8_t reserved[2];
};

/* END: totals of everything before END. */
struct gpup_vmmig_end {
	uint64_t chunks;	/* chunks before END, HEADER included */
	uint64_t bytes;		/* stream bytes before END's head */
	uint64_t pages;		/* pages sent in PAGES chunks */
	uint64_t zero_pages;	/* pages sent in ZERO chunks */
	uint64_t dev_bytes;	/* partition stream bytes in DEV chunks */
};

/* The destination's answers, and the source's GO. */
#define GPUP_VMMIG_REPLY_MAGIC 0x59504552u	/* "REPY" */
enum gpup_vmmig_code {
	GPUP_VMMIG_READY = 1,
	GPUP_VMMIG_REFUSED = 2,
	GPUP_VMMIG_GO = 3,
	GPUP_VMMIG_ACK = 4,
};
struct gpup_vmmig_reply {
	uint32_t magic;
	uint32_t code;
	union {
		char msg[248];	/* NUL-terminated, REFUSED: what was wrong */
		uint64_t bytes;	/* ACK: stream bytes taken */
	};
};

_Static_assert(sizeof(struct gpup_vmmig_chunk) == 32, "chunk");
_Static_assert(sizeof(struct gpup_vmmig_header) == 104, "header");
_Static_assert(sizeof(struct gpup_vmmig_pages) == 16, "pages");
_Static_assert(sizeof(struct gpup_vmmig_zero) == 24, "zero");
_Static_assert(sizeof(struct gpup_vmmig_end) == 40, "end");
_Static_assert(sizeof(struct gpup_vmmig_pci) == 264, "pci");
_Static_assert(sizeof(struct gpup_vmmig_reply) == 256, "reply");

/*
 * DOC: VM checkpoint files (`gpup checkpoint VM --to FILE`)
 *
 * A file is one struct gpup_vmckpt_head, the stream above from HEADER to
 * END (the same chunks, hashes and checks; no replies), and one struct
 * gpup_vmckpt_tail.  A writer that dies leaves no tail, so a cut file is
 * known as such before any of it is loaded.
 *
 * The file's identity is a chain of XXH3-64 hashes: XXH3-64 of the head,
 * then for each chunk XXH3-64 of its 32-byte head (which holds its
 * payload's hash) seeded with the value so far.  The tail carries it; an
 * incremental file names its base by file name (in the same directory)
 * and by that identity, which a restore checks before it loads anything.
 *
 * An incremental file is a whole stream except for guest RAM: its PAGES
 * and ZERO chunks of space 0 hold only the pages whose contents differ
 * from the base's (the base's own base, and so on, applied first).  The
 * partitions' streams, the BAR2 pages, the vCPUs and VMSTATE are whole in
 * every file, and a restore takes them from the newest one only.
 */
#define GPUP_VMCKPT_MAGIC 0x314b435650555047ull  /* "GPUPVCK1" */
#define GPUP_VMCKPT_TAIL_MAGIC 0x454b435650555047ull /* "GPUPVCKE" */
#define GPUP_VMCKPT_VERSION 1u
#define GPUP_VMCKPT_F_INCREMENTAL (1u << 0)
#define GPUP_VMCKPT_MAX_CHAIN 64u          /* files in a chain, the full one included */

struct gpup_vmckpt_head {
	uint64_t magic;		/* GPUP_VMCKPT_MAGIC */
	uint32_t version;	/* GPUP_VMCKPT_VERSION */
	uint32_t flags;		/* GPUP_VMCKPT_F_* */
	uint64_t base_ident;	/* incremental: the base's identity, else 0 */
	uint64_t created_ns;	/* CLOCK_REALTIME when the checkpoint began */
	char base[208];		/* incremental: the base's file name, NUL-padded */
	uint64_t reserved;
	uint64_t head_hash;	/* XXH3-64 of the 248 bytes above */
};

struct gpup_vmckpt_tail {
	uint64_t magic;		/* GPUP_VMCKPT_TAIL_MAGIC */
	uint64_t stream_bytes;	/* bytes between the head and the tail */
	uint64_t ident;		/* the file's identity */
	uint64_t tail_hash;	/* XXH3-64 of the 24 bytes above */
};

_Static_assert(sizeof(struct gpup_vmckpt_head) == 256, "ckpt head");
_Static_assert(sizeof(struct gpup_vmckpt_tail) == 32, "ckpt tail");

#endif
