/* SPDX-License-Identifier: MIT */
/*
 * iommu: IO address spaces for partitions.
 *
 * DOC: the model
 *
 * A domain is one IO address space (one per partition).  It translates a
 * 48-bit IOVA to a host virtual address through a four-level page table of
 * 512-entry tables: 4 KiB pages at the last level, 2 MiB and 1 GiB blocks
 * one and two levels up, used whenever the IOVA, the host address and the
 * length allow.  In the sim backend the "physical" side of the table is the
 * daemon's mapping of the guest memory fd; a VFIO type1 backend will program
 * the real IOMMU with the same calls.
 *
 * Engines never touch guest memory except through iommu_dma_read/write.
 * Those check every byte against the mapping and its permissions; on a
 * violation they copy nothing at all, queue an iommu_fault and return
 * -EFAULT (unmapped) or -EACCES (permission), so the engine aborts only the
 * queue it was running.  A DMA and an unmap of the same range never overlap:
 * iommu_unmap waits until DMAs that began before it have finished, and a DMA
 * that begins after it faults (one that overlaps it may fault at any page
 * the unmap removed, still copying nothing).  An unmap waits only for DMAs
 * into its own domain, and lookups take no lock: see iommu/epoch.c and
 * iommu/iotlb.c for how.
 *
 * A remote mapping (iommu_map_remote) is IOVA space whose bytes live in
 * another process and are reached by message, not by pointer: a vfio-user
 * client's memory sent without an fd.  The DMA calls check it like any
 * other mapping, then hand its part of a transfer to the domain's remote
 * ops (iommu_set_remote) outside any epoch section, so an unmap never
 * waits for a client; whoever implements the ops cancels the transfers
 * into a range it unmaps.  A refused or unanswered remote transfer faults
 * as an unmapped byte does (IOMMU_FAULT_REMOTE); one that gave way
 * (-EAGAIN: the engine is wanted elsewhere) reports nothing and is tried
 * again later.  Bytes of host mappings in the same transfer may have been
 * copied by then: "all or nothing" covers the checks, not a remote peer.
 *
 * Dirty logging follows VFIO DMA_LOGGING: start with a set of IOVA ranges
 * and a page size, report (and clear) a bitmap per range, stop.  Only DMA
 * writes through this API mark pages dirty.
 *
 * Errors are negative errno values.  All calls are thread safe.
 */
#ifndef GPUP_IOMMU_H
#define GPUP_IOMMU_H

#include <stddef.h>
#include <stdint.h>

#define IOMMU_IOVA_BITS 48
#define IOMMU_PAGE_SHIFT 12
#define IOMMU_PAGE_SIZE (1ull << IOMMU_PAGE_SHIFT)

/* Permissions on a mapping, and the access a DMA asks for. */
#define IOMMU_READ (1u << 0)  /* the device may read (guest -> device) */
#define IOMMU_WRITE (1u << 1) /* the device may write (device -> guest) */

enum iommu_fault_reason {
	IOMMU_FAULT_UNMAPPED = 1,
	IOMMU_FAULT_PERM = 2,
	IOMMU_FAULT_REMOTE = 3,   /* a remote mapping's owner refused or did not answer */
};

struct iommu_fault {
	uint64_t iova;      /* the first faulting byte */
	uint32_t access;    /* IOMMU_READ or IOMMU_WRITE */
	uint32_t reason;    /* enum iommu_fault_reason */
	uint64_t seq;       /* domain-wide fault sequence number, from 1 */
};

struct iommu_domain;

struct iommu_domain_cfg {
	const char *name;       /* for logs, may be NULL */
	uint32_t fault_depth;   /* fault queue entries kept, 0 = 64; older dropped */
	/* Page-table memory the domain may hold, root included (0: no limit).
	 * A map that would need more is refused with -ENOSPC and changes
	 * nothing: a client mapping sparse memory must not grow the daemon
	 * without bound.  IOMMU_TABLE_BYTES is what one table costs. */
	uint64_t max_table_bytes;
};

struct iommu_stats {
	uint64_t mapped_bytes;
	uint64_t maps, unmaps;
	uint64_t iotlb_hits, iotlb_misses;
	uint64_t faults, faults_dropped;
	uint64_t pages_4k, blocks_2m, blocks_1g; /* live leaf entries */
	uint64_t tables;    /* live page tables, the root included */
	uint64_t table_bytes; /* their memory: tables * IOMMU_TABLE_BYTES */
};

/* The memory one page table costs (512 entries and bookkeeping). */
#define IOMMU_TABLE_BYTES 4160ull

struct iommu_domain *iommu_domain_create(const struct iommu_domain_cfg *cfg);
void iommu_domain_destroy(struct iommu_domain *d);

/*
 * Map [iova, iova + size) to host memory at host with prot.  iova, host and
 * size must be 4 KiB aligned and size > 0.  -EEXIST if any page of the range
 * is already mapped (nothing is changed), -EINVAL on bad alignment or range,
 * -ENOSPC past the domain's max_table_bytes, -ENOMEM.  Where iova and host
 * agree modulo 2 MiB (or 1 GiB), blocks are used and cost far fewer
 * tables.
 */
int iommu_map(struct iommu_domain *d, uint64_t iova, void *host, uint64_t size,
	      unsigned int prot);

/*
 * Map [iova, iova + size) as remote memory with prot (see DOC: the model):
 * transfers there go through the domain's remote ops.  The same rules and
 * errors as iommu_map; iommu_unmap removes it as any other.
 */
int iommu_map_remote(struct iommu_domain *d, uint64_t iova, uint64_t size, unsigned int prot);

/* How a domain reaches its remote mappings. */
struct iommu_remote_ops {
	/* Copy len bytes between buf and the remote memory at iova: from
	 * it for access IOMMU_READ, to it for IOMMU_WRITE.  The range is
	 * one remote mapping's, checked.  0; -EAGAIN: not now, nothing is
	 * reported and the DMA call returns -EAGAIN; any other -errno: the
	 * transfer is refused and faults (IOMMU_FAULT_REMOTE).  Called on
	 * the DMA's thread with no domain lock held, possibly for long. */
	int (*xfer)(void *opaque, uint64_t iova, void *buf, size_t len, unsigned int access);
};

/* Set the remote ops (NULL: none; a remote mapping then faults).
 * Clearing them returns once no transfer still uses the old ones. */
void iommu_set_remote(struct iommu_domain *d, const struct iommu_remote_ops *ops,
		      void *opaque);

/*
 * Unmap [iova, iova + size), which must cover whole earlier mappings (a
 * block is never split): -EINVAL otherwise, -ENOENT if nothing is mapped
 * there.  The check is per leaf: 4 KiB pages of a mapping may be unmapped
 * one by one, a 2 MiB or 1 GiB block only whole; holes are skipped.
 * Invalidates the IOTLB and returns only once no DMA can still be using
 * the range.
 */
int iommu_unmap(struct iommu_domain *d, uint64_t iova, uint64_t size);

/* Unmap everything (device reset, DMA_UNMAP with the ALL flag). */
void iommu_unmap_all(struct iommu_domain *d);

/*
 * Translate one IOVA for access.  On success *host points at the byte and
 * *contig (if not NULL) is how many bytes from there stay contiguous in the
 * same leaf.  Does not queue a fault: this is the lookup, not a DMA.
 * A remote mapping has no host address: *host is NULL there.
 * -EFAULT unmapped, -EACCES permission, -EINVAL for an access that is not
 * IOMMU_READ and/or IOMMU_WRITE.  Nothing keeps *host mapped after the
 * call returns: to touch guest memory use the DMA calls below, which an
 * unmap waits for.
 */
int iommu_translate(struct iommu_domain *d, uint64_t iova, unsigned int access,
		    void **host, uint64_t *contig);

/* Device DMA: copy between IOVA space and a buffer; all or nothing.
 * 0, -EFAULT (unmapped, or a remote transfer refused: fault queued),
 * -EACCES (permission, fault queued), -EINVAL (range wraps past
 * IOMMU_IOVA_BITS), -EAGAIN (a remote transfer gave way: try again). */
int iommu_dma_read(struct iommu_domain *d, uint64_t iova, void *dst, size_t len);
int iommu_dma_write(struct iommu_domain *d, uint64_t iova, const void *src, size_t len);

/* Scatter/gather: the segments are transferred in order as one DMA,
 * all or nothing, under one check. */
struct iommu_sg {
	uint64_t iova;
	void *buf;
	size_t len;
};
int iommu_dma_readv(struct iommu_domain *d, const struct iommu_sg *sg, unsigned int n);
int iommu_dma_writev(struct iommu_domain *d, const struct iommu_sg *sg, unsigned int n);

/* 64-bit atomic access to an 8-byte aligned IOVA (fences, WAIT, PI);
 * load32 is atomic at 4-byte alignment.  Unaligned addresses work too, as
 * a plain (non-atomic) DMA of the same size. */
int iommu_dma_load64(struct iommu_domain *d, uint64_t iova, uint64_t *val);
int iommu_dma_store64(struct iommu_domain *d, uint64_t iova, uint64_t val);
int iommu_dma_load32(struct iommu_domain *d, uint64_t iova, uint32_t *val);
int iommu_dma_store32(struct iommu_domain *d, uint64_t iova, uint32_t val);
/* load32 for a caller that must not wait on anyone (a device polling
 * guest memory): a word of a remote mapping is not fetched (-EREMOTE),
 * and no fault is queued for any error, the poll being no DMA of the
 * device's own; -EINVAL unless 4-byte aligned.  Otherwise as load32. */
int iommu_dma_load32_local(struct iommu_domain *d, uint64_t iova, uint32_t *val);

/* Fault queue: pop the oldest fault (0) or -EAGAIN when empty. */
int iommu_fault_pop(struct iommu_domain *d, struct iommu_fault *f);

/* Optional notification when a fault is queued; called from the faulting
 * thread with no domain lock held.  fn may be NULL to clear. */
void iommu_set_fault_handler(struct iommu_domain *d,
			     void (*fn)(void *opaque, const struct iommu_fault *f),
			     void *opaque);

/* ---- dirty logging (VFIO DMA_LOGGING semantics) ---- */
struct iommu_range {
	uint64_t iova;
	uint64_t length;
};

/* Start tracking DMA writes in the given ranges at page_size granularity
 * (a power of two >= 4 KiB).  -EBUSY if already started, -EINVAL on bad
 * ranges (overlapping, unaligned to page_size, zero length, past the IOVA
 * space, none), -E2BIG for more than IOMMU_DIRTY_MAX_RANGES (as VFIO),
 * -ENOMEM if the bitmaps would not fit. */
#define IOMMU_DIRTY_MAX_RANGES 4096u
int iommu_dirty_start(struct iommu_domain *d, const struct iommu_range *ranges,
		      unsigned int nranges, uint64_t page_size);

/* Report dirty pages in [iova, iova + length) (inside one started range,
 * aligned to page_size) as a bitmap, bit i = page iova + i * page_size,
 * then clear them.  bitmap holds at least length / page_size bits, rounded up
 * to 64-bit words.  -EINVAL if not started or outside the ranges.
 * As in VFIO, page_size may differ from the one given to start (any power
 * of two >= 4 KiB) and bits are only ever set in bitmap, never cleared:
 * zero it first.  A tracking page only partly inside the range is
 * reported but stays dirty in the log. */
int iommu_dirty_report(struct iommu_domain *d, uint64_t iova, uint64_t length,
		       uint64_t page_size, uint64_t *bitmap);

/* Stop and free the log; 0 also when it was not started. */
int iommu_dirty_stop(struct iommu_domain *d);

void iommu_get_stats(struct iommu_domain *d, struct iommu_stats *st);

/* Fault injection for tests: the nth page-table allocation from now on
 * (1 = the next) fails as if memory ran out; 0 turns it off. */
void iommu_inject_alloc_failure(struct iommu_domain *d, unsigned int nth);

/* Fault injection for tests: the nth DMA call from now on (1 = the next;
 * calls with nothing to transfer or bad arguments do not count) faults as
 * if its first byte were unmapped, with its fault queued and reported;
 * 0 turns it off. */
void iommu_inject_dma_fault(struct iommu_domain *d, unsigned int nth);

#endif
