/* SPDX-License-Identifier: MIT */
/*
 * pgtable.c: the four-level IO page table of a domain.
 *
 * Tables are 512 entries of 64 bits.  An entry is either empty, a pointer
 * to the next level's table, or a leaf (IOMMU_PTE_LEAF) holding the host
 * address of a 4 KiB page (level 3), a 2 MiB block (level 2) or a 1 GiB
 * block (level 1).  Writers hold d->lock; walkers (iommu_pt_lookup) are
 * lockless and run inside an epoch section, so a table that becomes empty
 * is detached at once but reused or freed only after an epoch wait.
 * A new table is filled before it is published with a release store.
 */
#include <stdlib.h>
#include <string.h>

#include "iommu/iommu_int.h"

#define PT_CACHE_MAX 64u

static inline struct iommu_pt *pte_table(uint64_t pte)
{
	return (struct iommu_pt *)(uintptr_t)IOMMU_PTE_ADDR(pte);
}

static inline uint64_t pt_load(struct iommu_pt *t, unsigned int i)
{
	return atomic_load_explicit(&t->e[i], memory_order_relaxed);
}

static inline void pt_store(struct iommu_pt *t, unsigned int i, uint64_t pte)
{
	atomic_store_explicit(&t->e[i], pte, memory_order_release);
}

struct iommu_pt *iommu_pt_alloc(struct iommu_domain *d)
{
	struct iommu_pt *t = d->pt_cache;

	if (d->fail_alloc && --d->fail_alloc == 0)
		return NULL;
	if (t) {
		/* Only empty tables are detached, so a cached one is clean. */
		d->pt_cache = t->next;
		d->pt_cached--;
		t->next = NULL;
	} else {
		t = aligned_alloc(64, (sizeof(*t) + 63) & ~(size_t)63);
		if (!t)
			return NULL;
		memset(t, 0, sizeof(*t));
	}
	d->tables++;
	return t;
}

/* Take back tables detached by iommu_pt_clear, after an epoch wait. */
void iommu_pt_recycle(struct iommu_domain *d, struct iommu_pt *list)
{
	while (list) {
		struct iommu_pt *t = list;

		list = t->next;
		if (d->pt_cached < PT_CACHE_MAX) {
			t->next = d->pt_cache;
			d->pt_cache = t;
			d->pt_cached++;
		} else {
			free(t);
		}
	}
}

void iommu_pt_free_all(struct iommu_domain *d)
{
	while (d->pt_cache) {
		struct iommu_pt *t = d->pt_cache;

		d->pt_cache = t->next;
		free(t);
	}
	d->pt_cached = 0;
}

uint64_t iommu_pt_lookup(struct iommu_domain *d, uint64_t iova, int *level)
{
	struct iommu_pt *t = d->root;

	for (int l = 0; l < IOMMU_LEVELS; l++) {
		uint64_t pte = atomic_load_explicit(&t->e[iommu_pt_index(iova, l)],
						    memory_order_acquire);

		if (!(pte & IOMMU_PTE_VALID))
			return 0;
		if (pte & IOMMU_PTE_LEAF) {
			*level = l;
			return pte;
		}
		t = pte_table(pte);
	}
	return 0;
}

/*
 * Visit the leaves under t (level l, first entry at IOVA base) that meet
 * [s, e).  strict: every leaf must lie inside [s, e) (-EINVAL otherwise)
 * and the walk goes on; otherwise it stops at the first leaf.  *found
 * tells whether any leaf was seen.
 */
static int pt_scan(struct iommu_pt *t, int l, uint64_t base, uint64_t s, uint64_t e,
		   bool strict, bool *found)
{
	unsigned int sh = iommu_level_shift(l);
	unsigned int i = (unsigned int)((s - base) >> sh);
	unsigned int last = (unsigned int)((e - 1 - base) >> sh);

	for (; i <= last; i++) {
		uint64_t pte = pt_load(t, i);
		uint64_t eb = base + ((uint64_t)i << sh), ee = eb + (1ull << sh);
		int rc;

		if (!(pte & IOMMU_PTE_VALID))
			continue;
		if (pte & IOMMU_PTE_LEAF) {
			if (strict && (eb < s || ee > e))
				return -EINVAL;
			*found = true;
		} else {
			rc = pt_scan(pte_table(pte), l + 1, eb, s > eb ? s : eb, e < ee ? e : ee,
				     strict, found);
			if (rc)
				return rc;
		}
		if (!strict && *found)
			return 0;
	}
	return 0;
}

bool iommu_pt_any(struct iommu_domain *d, uint64_t iova, uint64_t end)
{
	bool found = false;

	pt_scan(d->root, 0, 0, iova, end, false, &found);
	return found;
}

/* 0 if [iova, end) holds leaves and cuts none, -EINVAL if it would split
 * one, -ENOENT if it holds none. */
int iommu_pt_check_unmap(struct iommu_domain *d, uint64_t iova, uint64_t end)
{
	bool found = false;
	int rc = pt_scan(d->root, 0, 0, iova, end, true, &found);

	if (rc)
		return rc;
	return found ? 0 : -ENOENT;
}

/* Install leaf pte at level for iova, creating tables on the way; the
 * slot must be empty (the caller checked for overlaps). */
int iommu_pt_insert(struct iommu_domain *d, uint64_t iova, uint64_t pte, int level)
{
	struct iommu_pt *t = d->root;

	for (int l = 0; l < level; l++) {
		unsigned int i = iommu_pt_index(iova, l);
		uint64_t cur = pt_load(t, i);

		if (!(cur & IOMMU_PTE_VALID)) {
			struct iommu_pt *n;

			if (d->max_tables && d->tables >= d->max_tables)
				return -ENOSPC;
			n = iommu_pt_alloc(d);
			if (!n)
				return -ENOMEM;
			pt_store(t, i, (uint64_t)(uintptr_t)n | IOMMU_PTE_VALID);
			t->used++;
			cur = pt_load(t, i);
		}
		t = pte_table(cur);
	}
	pt_store(t, iommu_pt_index(iova, level), pte);
	t->used++;
	d->leaves[level]++;
	d->mapped_bytes += 1ull << iommu_level_shift(level);
	return 0;
}

static void pt_clear(struct iommu_domain *d, struct iommu_pt *t, int l, uint64_t base,
		     uint64_t s, uint64_t e, struct iommu_pt **detached)
{
	unsigned int sh = iommu_level_shift(l);
	unsigned int i = (unsigned int)((s - base) >> sh);
	unsigned int last = (unsigned int)((e - 1 - base) >> sh);

	for (; i <= last; i++) {
		uint64_t pte = pt_load(t, i);
		uint64_t eb = base + ((uint64_t)i << sh), ee = eb + (1ull << sh);
		struct iommu_pt *child;

		if (!(pte & IOMMU_PTE_VALID))
			continue;
		if (pte & IOMMU_PTE_LEAF) {
			pt_store(t, i, 0);
			t->used--;
			d->leaves[l]--;
			d->mapped_bytes -= 1ull << sh;
			continue;
		}
		child = pte_table(pte);
		pt_clear(d, child, l + 1, eb, s > eb ? s : eb, e < ee ? e : ee, detached);
		if (child->used == 0) {
			pt_store(t, i, 0);
			t->used--;
			d->tables--;
			child->next = *detached;
			*detached = child;
		}
	}
}

/* Clear every leaf in [iova, end) (checked by iommu_pt_check_unmap) and
 * detach tables left empty; returns them for iommu_pt_recycle. */
struct iommu_pt *iommu_pt_clear(struct iommu_domain *d, uint64_t iova, uint64_t end)
{
	struct iommu_pt *detached = NULL;

	pt_clear(d, d->root, 0, 0, iova, end, &detached);
	return detached;
}
