/* SPDX-License-Identifier: MIT */
/*
 * The gpup partition migration stream: what a vGPU's MIG_DATA_READ
 * produces, MIG_DATA_WRITE consumes, and a checkpoint file holds.
 * docs/MIGRATION.md describes it in prose; migrate/ writes and reads it.
 *
 * DOC: the format
 *
 * A stream is a sequence of chunks, each a 32-byte head followed by `len`
 * payload bytes.  The head carries a sync word, the kind, flags, the
 * chunk's sequence number (from 0) and two XXH3-64 checksums: one of the
 * payload as stored, one of the head's first 24 bytes.  A reader checks
 * the head before trusting `len`, and the payload before using it.
 *
 * The chunk head is fixed for every version: a reader of any version can
 * always read the first chunk, which is HEADER, and refuse a version it
 * does not know.  The order is:
 *
 *   HEADER, then VRAM and ZERO chunks in any number and order (later ones
 *   overwrite earlier ones: pages dirtied between pre-copy rounds come
 *   again), then exactly one STATE, then END.
 *
 * Little-endian, fixed-width fields, explicit padding (reserved fields are
 * written as 0 and refused otherwise).  Pages are GPUP_MIG_PAGE_SIZE.
 *
 * What the stream holds is what the device tracks: VRAM written by its
 * engines and its own state.  Pages a guest CPU writes through the BAR2
 * mapping are the VMM's to track (KVM's dirty log on that memory slot),
 * and reach the destination in the VMM's own stream.
 */
#ifndef GPUP_UAPI_GPUP_MIG_H
#define GPUP_UAPI_GPUP_MIG_H

#include <stdint.h>

#define GPUP_MIG_SYNC 0x4b48434du	/* "MCHK" read as little-endian bytes */
#define GPUP_MIG_MAGIC 0x3147494d50555047ull /* "GPUPMIG1" */
#define GPUP_MIG_VERSION 1u
#define GPUP_MIG_PAGE_SHIFT 12
#define GPUP_MIG_PAGE_SIZE (1u << GPUP_MIG_PAGE_SHIFT)

/* Bounds a reader holds a writer to. */
#define GPUP_MIG_MAX_PAYLOAD ((1u << 20) + 64u)   /* any chunk */
#define GPUP_MIG_MAX_STATE (1u << 20)             /* a STATE blob */
#define GPUP_MIG_MAX_VRAM_PAGES 256u              /* pages in one VRAM chunk */

enum gpup_mig_kind {
	GPUP_MIG_HEADER = 1,
	GPUP_MIG_VRAM = 2,
	GPUP_MIG_ZERO = 3,
	GPUP_MIG_STATE = 4,
	GPUP_MIG_END = 5,
	GPUP_MIG_LINK = 6,	/* chain links only: see struct gpup_mig_link */
};

/* Chunk flags. */
#define GPUP_MIG_CF_ZSTD (1u << 0)	/* VRAM only: the data is one zstd frame */

struct gpup_mig_chunk {
	uint32_t sync;		/* GPUP_MIG_SYNC */
	uint16_t kind;		/* enum gpup_mig_kind */
	uint16_t flags;		/* GPUP_MIG_CF_* */
	uint32_t len;		/* payload bytes that follow */
	uint32_t seq;		/* 0 for HEADER, then one more per chunk */
	uint64_t data_hash;	/* XXH3-64 of the payload as stored */
	uint64_t head_hash;	/* XXH3-64 of the 24 bytes above */
};

/* HEADER payload: who wrote the stream.  A destination takes it when
 * type and vram_size equal its own and features is a subset of its own
 * feature mask; model is informative (a partition may move between GPU
 * generations). */
#define GPUP_MIG_NAME_LEN 32
struct gpup_mig_header {
	uint64_t magic;		/* GPUP_MIG_MAGIC */
	uint32_t version;	/* GPUP_MIG_VERSION */
	uint32_t page_size;	/* GPUP_MIG_PAGE_SIZE */
	uint64_t vram_size;	/* bytes, a multiple of page_size */
	uint64_t features;	/* the partition's compatibility feature mask */
	char model[GPUP_MIG_NAME_LEN];	/* source GPU model, NUL-padded */
	char type[GPUP_MIG_NAME_LEN];	/* partition type, NUL-padded */
};

/* VRAM payload: this head, then `pages` pages from `offset` (or, with
 * GPUP_MIG_CF_ZSTD, one zstd frame that decompresses to exactly that). */
struct gpup_mig_vram {
	uint64_t offset;	/* page aligned */
	uint32_t pages;		/* 1..GPUP_MIG_MAX_VRAM_PAGES */
	uint32_t reserved;
};

/* ZERO payload: `pages` pages from `offset` are zero. */
struct gpup_mig_zero {
	uint64_t offset;	/* page aligned */
	uint64_t pages;		/* >= 1 */
};

/* STATE payload: the device's opaque state blob (registers, queues, an
 * interrupted command's progress, fault log, scheduler settings), at most
 * GPUP_MIG_MAX_STATE bytes; its format is the device model's. */

/* END payload: totals of everything before END, checked by the reader. */
struct gpup_mig_end {
	uint64_t chunks;	/* chunks before END (HEADER included) */
	uint64_t bytes;		/* stream bytes before END's head */
	uint64_t vram_pages;	/* pages sent in VRAM chunks */
	uint64_t zero_pages;	/* pages sent in ZERO chunks */
};

/*
 * Checkpoint chains (continuous protection, docs/MIGRATION.md "Failover"):
 * a partition's chain is a full BASE then INCREMENTS, one file each.  A
 * link is a stream of version 1 with one more chunk, LINK, right after
 * HEADER: HEADER, LINK, VRAM/ZERO..., STATE, END.  In an increment the
 * VRAM and ZERO chunks hold only the pages that changed since the
 * previous link (a ZERO chunk: pages that became zero); in a base, every
 * page with data.  Version rule: LINK is the only addition, so the stream
 * version stays 1; a plain stream reader refuses a link (an unknown chunk
 * kind) and a chain reader refuses a stream without LINK.  Chain links
 * carry no zstd frames (the flag is refused).
 *
 * A link's identity is the data_hash of its LINK chunk: the payload holds
 * a random nonce and the link's index, so no two links share it.  An
 * increment names its base's identity and its predecessor's, so a chain
 * with a link missing, or with a link of another chain, is refused.
 */
#define GPUP_MIG_LINK_BASE (1u << 0)	/* a full base, not an increment */

struct gpup_mig_link {
	uint32_t index;		/* the link's number: its base's, then +1 per link */
	uint32_t flags;		/* GPUP_MIG_LINK_* */
	uint64_t base_id;	/* the base's identity; 0 in a base */
	uint64_t prev_id;	/* the previous link's identity; 0 in a base */
	uint64_t nonce;		/* random */
	uint64_t taken_ns;	/* CLOCK_REALTIME of the final copy */
	uint64_t reserved;	/* 0 */
};

_Static_assert(sizeof(struct gpup_mig_chunk) == 32, "chunk");
_Static_assert(sizeof(struct gpup_mig_link) == 48, "link");
_Static_assert(sizeof(struct gpup_mig_header) == 96, "header");
_Static_assert(sizeof(struct gpup_mig_vram) == 16, "vram");
_Static_assert(sizeof(struct gpup_mig_zero) == 16, "zero");
_Static_assert(sizeof(struct gpup_mig_end) == 32, "end");

#endif
