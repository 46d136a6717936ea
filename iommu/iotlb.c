/* SPDX-License-Identifier: MIT */
/*
 * iotlb.c: filling and invalidating the IOTLB (lookup is inline in
 * iommu_int.h).
 *
 * DOC: IOTLB coherence
 *
 * The IOTLB is direct mapped on the 4 KiB page number; each entry is a
 * small seqlock.  Readers copy an entry and accept it only if its count was
 * even and unchanged.  Writers (a thread filling after a miss, an unmap
 * invalidating) take an entry by moving its count from even to odd with a
 * CAS, so there is one writer per entry at a time.
 *
 * A fill races with an unmap: the filler may have walked the table before
 * the PTE was cleared.  The domain generation closes that window: unmap
 * clears PTEs, bumps the generation, then invalidates the entries in its
 * range, each under the entry's lock.  A filler reads the generation
 * before its walk and checks it again while holding the entry.  If the
 * filler takes the entry first, the unmap's invalidation comes later and
 * removes what it wrote; if the unmap takes it first, the filler sees the
 * new generation and writes nothing.
 */
#include <sched.h>

#include "iommu/iommu_int.h"

static bool tlbe_lock(struct iommu_tlbe *e, uint32_t *s, bool wait)
{
	for (unsigned int spins = 0;; spins++) {
		uint32_t v = atomic_load_explicit(&e->seq, memory_order_relaxed);

		if (!(v & 1) && atomic_compare_exchange_weak_explicit(
					&e->seq, &v, v + 1, memory_order_acquire,
					memory_order_relaxed)) {
			*s = v;
			/* Entry stores must not move above the odd count. */
			atomic_thread_fence(memory_order_release);
			return true;
		}
		if (!wait)
			return false;
		/* The holder is a filler that may have been preempted. */
		if (spins > 64)
			sched_yield();
	}
}

static void tlbe_unlock(struct iommu_tlbe *e, uint32_t s)
{
	atomic_store_explicit(&e->seq, s + 2, memory_order_release);
}

static void tlb_fill(struct iommu_domain *d, uint64_t gen, uint64_t iova,
		     const struct iommu_xl *xl)
{
	uint64_t pfn = iova >> IOMMU_PAGE_SHIFT;
	struct iommu_tlbe *e = &d->tlb[pfn & (IOMMU_TLB_SLOTS - 1)];
	uint32_t s;

	/* A busy entry is simply not filled: the next lookup walks again. */
	if (!tlbe_lock(e, &s, false))
		return;
	if (atomic_load_explicit(&d->tlb_gen, memory_order_acquire) == gen) {
		uintptr_t page = (uintptr_t)xl->host & ~(uintptr_t)(IOMMU_PAGE_SIZE - 1);

		atomic_store_explicit(&e->tag, pfn + 1, memory_order_relaxed);
		atomic_store_explicit(&e->host, page, memory_order_relaxed);
		atomic_store_explicit(&e->end, xl->end, memory_order_relaxed);
		atomic_store_explicit(&e->prot, xl->prot, memory_order_relaxed);
	}
	tlbe_unlock(e, s);
}

static void tlbe_invalidate(struct iommu_tlbe *e, uint64_t p0, uint64_t p1)
{
	uint32_t s;
	uint64_t tag;

	tlbe_lock(e, &s, true);
	tag = atomic_load_explicit(&e->tag, memory_order_relaxed);
	if (tag && tag - 1 >= p0 && tag - 1 < p1)
		atomic_store_explicit(&e->tag, 0, memory_order_relaxed);
	tlbe_unlock(e, s);
}

/* Drop every entry for a page in [iova, end); the caller has cleared the
 * PTEs and bumped d->tlb_gen. */
void iommu_tlb_invalidate(struct iommu_domain *d, uint64_t iova, uint64_t end)
{
	uint64_t p0 = iova >> IOMMU_PAGE_SHIFT, p1 = end >> IOMMU_PAGE_SHIFT;

	if (p1 - p0 >= IOMMU_TLB_SLOTS) {
		for (unsigned int i = 0; i < IOMMU_TLB_SLOTS; i++)
			tlbe_invalidate(&d->tlb[i], p0, p1);
		return;
	}
	for (uint64_t p = p0; p < p1; p++)
		tlbe_invalidate(&d->tlb[p & (IOMMU_TLB_SLOTS - 1)], p0, p1);
}

int iommu_xlate_walk(struct iommu_domain *d, uint64_t iova, struct iommu_xl *xl)
{
	uint64_t gen = atomic_load_explicit(&d->tlb_gen, memory_order_acquire);
	int level;
	uint64_t pte = iommu_pt_lookup(d, iova, &level);
	uint64_t span, base;

	if (!pte)
		return -EFAULT;
	span = 1ull << iommu_level_shift(level);
	base = iova & ~(span - 1);
	xl->host = (uint8_t *)(uintptr_t)(IOMMU_PTE_ADDR(pte) + (iova - base));
	xl->end = base + span;
	xl->prot = IOMMU_PTE_PROT(pte) | (pte & IOMMU_PTE_REMOTE ? IOMMU_XL_REMOTE : 0);
	tlb_fill(d, gen, iova, xl);
	return 0;
}
