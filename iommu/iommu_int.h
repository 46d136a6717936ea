/* SPDX-License-Identifier: MIT */
/*
 * iommu_int.h: the iommu module's private structures and the inline fast
 * path (IOTLB lookup, DMA epoch enter/exit) shared by its files.  Nothing
 * outside iommu/ includes this.
 *
 * Locking, in one place:
 *  - d->lock (a mutex) serialises everything that changes the page table
 *    or the dirty log: map, unmap, dirty start/report/stop, stats.
 *  - Readers (translate, DMA) take no lock.  IOTLB entries are read under
 *    a per-entry sequence count; page-table walks and DMA copies run inside
 *    an epoch section (epoch.c), and every writer that removes memory from
 *    readers waits for the sections that could still see it.
 *  - d->fault_lock guards the fault queue only.
 */
#ifndef GPUP_IOMMU_INT_H
#define GPUP_IOMMU_INT_H

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "iommu/iommu.h"

#define IOMMU_LEVELS 4
#define IOMMU_PT_ENTRIES 512
#define IOMMU_IOVA_END (1ull << IOMMU_IOVA_BITS)

/* Page-table entry: a host address (4 KiB aligned for leaves, 64-byte
 * aligned for tables) with flags in the low bits. */
#define IOMMU_PTE_VALID (1ull << 0)
#define IOMMU_PTE_PROT_SHIFT 1 /* IOMMU_READ/IOMMU_WRITE in bits 1-2 */
#define IOMMU_PTE_LEAF (1ull << 3)
/* A remote leaf: its address field holds the leaf's own IOVA, so that
 * translations come out as IOVAs and blocks line up as for host memory. */
#define IOMMU_PTE_REMOTE (1ull << 4)
#define IOMMU_PTE_ADDR(pte) ((pte) & ~0x3full)
#define IOMMU_PTE_PROT(pte) ((unsigned int)((pte) >> IOMMU_PTE_PROT_SHIFT) & 3u)
/* In a translation's prot (and the IOTLB's): the leaf is remote. */
#define IOMMU_XL_REMOTE (1u << 2)

/* Level 0 is the root (512 GiB per entry), level 3 holds 4 KiB pages. */
static inline unsigned int iommu_level_shift(int level)
{
	return 39u - 9u * (unsigned int)level;
}

static inline unsigned int iommu_pt_index(uint64_t iova, int level)
{
	return (unsigned int)(iova >> iommu_level_shift(level)) & (IOMMU_PT_ENTRIES - 1);
}

struct iommu_pt {
	_Atomic uint64_t e[IOMMU_PT_ENTRIES];
	unsigned int used;         /* valid entries; guarded by d->lock */
	struct iommu_pt *next;     /* detached list / recycle cache */
};
/* What a table costs as allocated (64-byte aligned), as iommu.h says. */
_Static_assert(((sizeof(struct iommu_pt) + 63) & ~(size_t)63) == IOMMU_TABLE_BYTES,
	       "IOMMU_TABLE_BYTES");

/* IOTLB: direct mapped on the 4 KiB page number.  A block fills one entry
 * per page touched, so invalidation can match on page numbers alone. */
#define IOMMU_TLB_SLOTS 1024u

struct iommu_tlbe {
	_Atomic uint32_t seq;   /* odd while an entry is being rewritten */
	_Atomic uint32_t prot;
	_Atomic uint64_t tag;   /* page number + 1; 0 = empty */
	_Atomic uint64_t host;  /* host address of that page */
	_Atomic uint64_t end;   /* IOVA just past the leaf that holds it */
};

/* Hit/miss counters are sharded per thread so the translate fast path
 * never writes a cache line another thread writes.  Increments are a
 * relaxed load and store: two threads sharing a shard may lose a count,
 * which the stats tolerate; a lock-prefixed add would double the cost
 * of a hit. */
#define IOMMU_STAT_SHARDS 16u

struct iommu_stat_shard {
	_Atomic uint64_t hits;
	_Atomic uint64_t misses;
} __attribute__((aligned(64)));

struct iommu_dirty_range {
	uint64_t iova, end;
	_Atomic uint64_t *bits;
};

struct iommu_dirty {
	unsigned int shift;        /* log2 of the tracking page size */
	unsigned int n;
	struct iommu_dirty_range r[]; /* sorted by iova, disjoint */
};

struct iommu_domain {
	struct iommu_stat_shard shard[IOMMU_STAT_SHARDS];
	struct iommu_tlbe *tlb;
	_Atomic unsigned int fail_dma; /* fault injection countdown, 0 = off */
	struct iommu_pt *root;
	_Atomic uint64_t tlb_gen;  /* bumped by every unmap, see iotlb.c */
	struct iommu_dirty *_Atomic dirty;

	pthread_mutex_t lock;
	struct iommu_pt *pt_cache; /* empty tables kept for reuse */
	unsigned int pt_cached;
	uint64_t mapped_bytes, maps, unmaps;
	uint64_t leaves[IOMMU_LEVELS]; /* live leaves per level */
	uint64_t tables;           /* live tables, the root included */
	uint64_t max_tables;       /* from max_table_bytes; 0 = no limit */
	unsigned int fail_alloc;   /* fault injection countdown, 0 = off */

	pthread_mutex_t fault_lock;
	struct iommu_fault *fq;
	uint32_t fq_depth, fq_head, fq_count;
	uint64_t fault_seq, faults, faults_dropped;
	void (*fault_fn)(void *opaque, const struct iommu_fault *f);
	void *fault_opaque;

	/* Remote mappings' ops (iommu_set_remote), read by DMA inside an
	 * epoch section; users counts the transfers using them. */
	const struct iommu_remote_ops *_Atomic remote;
	void *_Atomic remote_opaque;
	_Atomic unsigned int remote_users;

	char name[32];
};

/* ---- epoch.c: in-flight DMA sections ---- */
struct iommu_epoch_rec {
	_Atomic uint64_t seq;      /* odd while its thread is inside a section */
	struct iommu_domain *_Atomic dom; /* the domain of that section */
	_Atomic int in_use;        /* owned by a live thread */
	struct iommu_epoch_rec *next; /* set once, before publication */
} __attribute__((aligned(64)));

extern _Thread_local struct iommu_epoch_rec *iommu_epoch_self;
struct iommu_epoch_rec *iommu_epoch_register(void);
void iommu_epoch_wait(struct iommu_domain *d);

/* Enter a section in which d's page tables may be walked and host memory
 * reached through its translations: two stores and a full fence on this
 * thread's own cache line.  -ENOMEM only on a thread's first call. */
static inline int iommu_epoch_enter(struct iommu_domain *d)
{
	struct iommu_epoch_rec *r = iommu_epoch_self;

	if (!r && !(r = iommu_epoch_register()))
		return -ENOMEM;
	atomic_store_explicit(&r->dom, d, memory_order_relaxed);
	/* Release: a waiter that sees the odd count sees dom too. */
	atomic_store_explicit(&r->seq, atomic_load_explicit(&r->seq, memory_order_relaxed) + 1,
			      memory_order_release);
	atomic_thread_fence(memory_order_seq_cst);
	return 0;
}

static inline void iommu_epoch_exit(void)
{
	struct iommu_epoch_rec *r = iommu_epoch_self;

	atomic_store_explicit(&r->seq, atomic_load_explicit(&r->seq, memory_order_relaxed) + 1,
			      memory_order_release);
}

/* ---- stats shards ---- */
extern _Thread_local unsigned int iommu_shard_id; /* 1-based, 0 = unset */
unsigned int iommu_shard_assign(void);

static inline struct iommu_stat_shard *iommu_shard(struct iommu_domain *d)
{
	unsigned int i = iommu_shard_id;

	if (!i)
		i = iommu_shard_assign();
	return &d->shard[i - 1];
}

static inline void iommu_count(_Atomic uint64_t *c)
{
	atomic_store_explicit(c, atomic_load_explicit(c, memory_order_relaxed) + 1,
			      memory_order_relaxed);
}

/* ---- translation ---- */
struct iommu_xl {
	uint8_t *host;      /* host address of the IOVA asked for */
	uint64_t end;       /* IOVA just past the leaf */
	unsigned int prot;
};

static inline bool iommu_tlb_lookup(struct iommu_domain *d, uint64_t iova, struct iommu_xl *xl)
{
	uint64_t pfn = iova >> IOMMU_PAGE_SHIFT;
	struct iommu_tlbe *e = &d->tlb[pfn & (IOMMU_TLB_SLOTS - 1)];
	uint32_t s = atomic_load_explicit(&e->seq, memory_order_acquire);
	uint64_t tag = atomic_load_explicit(&e->tag, memory_order_relaxed);
	uint64_t host = atomic_load_explicit(&e->host, memory_order_relaxed);
	uint64_t end = atomic_load_explicit(&e->end, memory_order_relaxed);
	uint32_t prot = atomic_load_explicit(&e->prot, memory_order_relaxed);

	atomic_thread_fence(memory_order_acquire);
	if ((s & 1) || tag != pfn + 1 || atomic_load_explicit(&e->seq, memory_order_relaxed) != s)
		return false;
	xl->host = (uint8_t *)(uintptr_t)(host + (iova & (IOMMU_PAGE_SIZE - 1)));
	xl->end = end;
	xl->prot = prot;
	return true;
}

/* Walk the table for iova (< IOMMU_IOVA_END) and fill the IOTLB.  Caller
 * is inside an epoch section.  0 or -EFAULT when nothing is mapped. */
int iommu_xlate_walk(struct iommu_domain *d, uint64_t iova, struct iommu_xl *xl);

/* IOTLB first, then the walk; counts the hit or miss.  Inside a section. */
static inline int iommu_xlate(struct iommu_domain *d, uint64_t iova, struct iommu_xl *xl)
{
	struct iommu_stat_shard *sh = iommu_shard(d);

	if (iommu_tlb_lookup(d, iova, xl)) {
		iommu_count(&sh->hits);
		return 0;
	}
	iommu_count(&sh->misses);
	return iommu_xlate_walk(d, iova, xl);
}

/* ---- iotlb.c ---- */
void iommu_tlb_invalidate(struct iommu_domain *d, uint64_t iova, uint64_t end);

/* ---- pgtable.c (callers hold d->lock unless said otherwise) ---- */
struct iommu_pt *iommu_pt_alloc(struct iommu_domain *d);
void iommu_pt_recycle(struct iommu_domain *d, struct iommu_pt *list);
void iommu_pt_free_all(struct iommu_domain *d);
uint64_t iommu_pt_lookup(struct iommu_domain *d, uint64_t iova, int *level); /* lockless */
bool iommu_pt_any(struct iommu_domain *d, uint64_t iova, uint64_t end);
int iommu_pt_check_unmap(struct iommu_domain *d, uint64_t iova, uint64_t end);
int iommu_pt_insert(struct iommu_domain *d, uint64_t iova, uint64_t pte, int level);
struct iommu_pt *iommu_pt_clear(struct iommu_domain *d, uint64_t iova, uint64_t end);

/* ---- domain.c ---- */
void iommu_unmap_locked(struct iommu_domain *d, uint64_t iova, uint64_t end);
/* Install, once per process, the SIGBUS handler that turns an access to
 * memory whose file shrank under its mapping into a DMA fault (dma.c). */
void iommu_dma_guard_init(void);

void iommu_fault_report(struct iommu_domain *d, uint64_t iova, unsigned int access,
			unsigned int reason);

/* ---- dirty.c ---- */
/* Mark [iova, iova + len) written; inside an epoch section. */
void iommu_dirty_mark(struct iommu_dirty *dl, uint64_t iova, uint64_t len);

#endif
