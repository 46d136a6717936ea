/* SPDX-License-Identifier: MIT */
/*
 * domain.c: IO address space lifecycle, map/unmap, translate, the fault
 * queue and statistics.  See iommu.h for the model and iommu_int.h for the
 * locking; the page table itself is in pgtable.c, the IOTLB in iotlb.c.
 */
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "iommu/iommu_int.h"

#define FAULT_DEPTH_DEFAULT 64u
#define FAULT_DEPTH_MAX 65536u

static int domain_init_locks(struct iommu_domain *d)
{
	if (pthread_mutex_init(&d->lock, NULL) != 0)
		return -ENOMEM;
	if (pthread_mutex_init(&d->fault_lock, NULL) != 0) {
		pthread_mutex_destroy(&d->lock);
		return -ENOMEM;
	}
	return 0;
}

struct iommu_domain *iommu_domain_create(const struct iommu_domain_cfg *cfg)
{
	uint32_t depth = cfg && cfg->fault_depth ? cfg->fault_depth : FAULT_DEPTH_DEFAULT;
	struct iommu_domain *d;

	if (depth > FAULT_DEPTH_MAX) {
		errno = EINVAL;
		return NULL;
	}
	iommu_dma_guard_init();
	d = aligned_alloc(64, (sizeof(*d) + 63) & ~(size_t)63);
	if (!d)
		goto err;
	memset(d, 0, sizeof(*d));
	d->tlb = aligned_alloc(64, IOMMU_TLB_SLOTS * sizeof(*d->tlb));
	d->fq = calloc(depth, sizeof(*d->fq));
	if (!d->tlb || !d->fq || domain_init_locks(d) < 0)
		goto err_free;
	memset(d->tlb, 0, IOMMU_TLB_SLOTS * sizeof(*d->tlb));
	d->root = iommu_pt_alloc(d);
	if (!d->root) {
		pthread_mutex_destroy(&d->lock);
		pthread_mutex_destroy(&d->fault_lock);
		goto err_free;
	}
	d->fq_depth = depth;
	if (cfg && cfg->max_table_bytes) /* the root is always there */
		d->max_tables = cfg->max_table_bytes / IOMMU_TABLE_BYTES ?: 1;
	snprintf(d->name, sizeof(d->name), "%s", cfg && cfg->name ? cfg->name : "iommu");
	return d;
err_free:
	free(d->tlb);
	free(d->fq);
	free(d);
err:
	errno = ENOMEM;
	return NULL;
}

void iommu_domain_destroy(struct iommu_domain *d)
{
	if (!d)
		return;
	iommu_unmap_all(d);
	iommu_dirty_stop(d);
	free(d->root);
	iommu_pt_free_all(d);
	pthread_mutex_destroy(&d->lock);
	pthread_mutex_destroy(&d->fault_lock);
	free(d->tlb);
	free(d->fq);
	free(d);
}

/* A range [iova, iova + size) of whole pages inside the IOVA space. */
static bool range_ok(uint64_t iova, uint64_t size)
{
	return size && !((iova | size) & (IOMMU_PAGE_SIZE - 1)) && iova < IOMMU_IOVA_END &&
	       size <= IOMMU_IOVA_END - iova;
}

/* The largest leaf level whose size fits the alignment of both addresses
 * and the length left. */
static int pick_level(uint64_t iova, uint64_t host, uint64_t left)
{
	for (int l = 1; l < IOMMU_LEVELS; l++) {
		uint64_t span = 1ull << iommu_level_shift(l);

		if (!((iova | host) & (span - 1)) && left >= span)
			return l;
	}
	return IOMMU_LEVELS - 1;
}

static int map_range(struct iommu_domain *d, uint64_t iova, uint64_t host, uint64_t size,
		     unsigned int prot, uint64_t flags)
{
	uint64_t done = 0;

	while (done < size) {
		int l = pick_level(iova + done, host + done, size - done);
		uint64_t pte = (host + done) | ((uint64_t)prot << IOMMU_PTE_PROT_SHIFT) |
			       IOMMU_PTE_VALID | IOMMU_PTE_LEAF | flags;
		int rc = iommu_pt_insert(d, iova + done, pte, l);

		if (rc) {
			/* Nothing else lives in the range (checked), so clearing
			 * all of it drops our leaves and any table left empty. */
			iommu_unmap_locked(d, iova, iova + size);
			return rc;
		}
		done += 1ull << iommu_level_shift(l);
	}
	return 0;
}

static int map_leaves(struct iommu_domain *d, uint64_t iova, uint64_t h, uint64_t size,
		      unsigned int prot, uint64_t flags)
{
	int rc;

	pthread_mutex_lock(&d->lock);
	if (iommu_pt_any(d, iova, iova + size))
		rc = -EEXIST;
	else
		rc = map_range(d, iova, h, size, prot, flags);
	if (!rc)
		d->maps++;
	pthread_mutex_unlock(&d->lock);
	return rc;
}

int iommu_map(struct iommu_domain *d, uint64_t iova, void *host, uint64_t size,
	      unsigned int prot)
{
	uint64_t h = (uint64_t)(uintptr_t)host;

	if (!range_ok(iova, size) || !host || (h & (IOMMU_PAGE_SIZE - 1)) ||
	    size > UINT64_MAX - h || !prot || (prot & ~(IOMMU_READ | IOMMU_WRITE)))
		return -EINVAL;
	return map_leaves(d, iova, h, size, prot, 0);
}

int iommu_map_remote(struct iommu_domain *d, uint64_t iova, uint64_t size, unsigned int prot)
{
	if (!range_ok(iova, size) || !prot || (prot & ~(IOMMU_READ | IOMMU_WRITE)))
		return -EINVAL;
	return map_leaves(d, iova, iova, size, prot, IOMMU_PTE_REMOTE);
}

/* Readers load the ops inside an epoch section and count themselves
 * before leaving it, so after the wait every user of the old ops is
 * counted; then the count drains. */
void iommu_set_remote(struct iommu_domain *d, const struct iommu_remote_ops *ops,
		      void *opaque)
{
	atomic_store(&d->remote_opaque, opaque);
	atomic_store(&d->remote, ops);
	if (ops)
		return;
	iommu_epoch_wait(d);
	while (atomic_load(&d->remote_users))
		sched_yield();
}

/*
 * Remove [iova, end) with d->lock held: clear the PTEs, invalidate the
 * IOTLB (generation first, see iotlb.c), wait out every DMA that may have
 * seen the old translations, then reuse the emptied tables.
 */
void iommu_unmap_locked(struct iommu_domain *d, uint64_t iova, uint64_t end)
{
	struct iommu_pt *detached = iommu_pt_clear(d, iova, end);

	atomic_fetch_add_explicit(&d->tlb_gen, 1, memory_order_seq_cst);
	iommu_tlb_invalidate(d, iova, end);
	iommu_epoch_wait(d);
	iommu_pt_recycle(d, detached);
}

int iommu_unmap(struct iommu_domain *d, uint64_t iova, uint64_t size)
{
	int rc;

	if (!range_ok(iova, size))
		return -EINVAL;
	pthread_mutex_lock(&d->lock);
	rc = iommu_pt_check_unmap(d, iova, iova + size);
	if (!rc) {
		iommu_unmap_locked(d, iova, iova + size);
		d->unmaps++;
	}
	pthread_mutex_unlock(&d->lock);
	return rc;
}

void iommu_unmap_all(struct iommu_domain *d)
{
	pthread_mutex_lock(&d->lock);
	if (d->mapped_bytes) {
		iommu_unmap_locked(d, 0, IOMMU_IOVA_END);
		d->unmaps++;
	}
	pthread_mutex_unlock(&d->lock);
}

static int xlate_slow(struct iommu_domain *d, uint64_t iova, struct iommu_xl *xl)
{
	int rc = iommu_epoch_enter(d);

	if (rc)
		return rc;
	rc = iommu_xlate_walk(d, iova, xl);
	iommu_epoch_exit();
	return rc;
}

int iommu_translate(struct iommu_domain *d, uint64_t iova, unsigned int access,
		    void **host, uint64_t *contig)
{
	struct iommu_stat_shard *sh = iommu_shard(d);
	struct iommu_xl xl;

	if (!access || (access & ~(IOMMU_READ | IOMMU_WRITE)))
		return -EINVAL;
	if (iova >= IOMMU_IOVA_END)
		return -EFAULT;
	if (iommu_tlb_lookup(d, iova, &xl)) {
		iommu_count(&sh->hits);
	} else {
		int rc;

		iommu_count(&sh->misses);
		rc = xlate_slow(d, iova, &xl);
		if (rc)
			return rc;
	}
	if ((xl.prot & access) != access)
		return -EACCES;
	*host = xl.prot & IOMMU_XL_REMOTE ? NULL : xl.host;
	if (contig)
		*contig = xl.end - iova;
	return 0;
}

void iommu_fault_report(struct iommu_domain *d, uint64_t iova, unsigned int access,
			unsigned int reason)
{
	struct iommu_fault f = { .iova = iova, .access = access, .reason = reason };
	void (*fn)(void *, const struct iommu_fault *);
	void *opaque;

	pthread_mutex_lock(&d->fault_lock);
	f.seq = ++d->fault_seq;
	d->faults++;
	if (d->fq_count == d->fq_depth) {
		/* Keep the newest: drop the oldest and count it. */
		d->fq_head = (d->fq_head + 1) % d->fq_depth;
		d->fq_count--;
		d->faults_dropped++;
	}
	d->fq[(d->fq_head + d->fq_count) % d->fq_depth] = f;
	d->fq_count++;
	fn = d->fault_fn;
	opaque = d->fault_opaque;
	pthread_mutex_unlock(&d->fault_lock);
	if (fn)
		fn(opaque, &f);
}

int iommu_fault_pop(struct iommu_domain *d, struct iommu_fault *f)
{
	int rc = -EAGAIN;

	pthread_mutex_lock(&d->fault_lock);
	if (d->fq_count) {
		*f = d->fq[d->fq_head];
		d->fq_head = (d->fq_head + 1) % d->fq_depth;
		d->fq_count--;
		rc = 0;
	}
	pthread_mutex_unlock(&d->fault_lock);
	return rc;
}

void iommu_set_fault_handler(struct iommu_domain *d,
			     void (*fn)(void *opaque, const struct iommu_fault *f),
			     void *opaque)
{
	pthread_mutex_lock(&d->fault_lock);
	d->fault_fn = fn;
	d->fault_opaque = fn ? opaque : NULL;
	pthread_mutex_unlock(&d->fault_lock);
}

void iommu_inject_alloc_failure(struct iommu_domain *d, unsigned int nth)
{
	pthread_mutex_lock(&d->lock);
	d->fail_alloc = nth;
	pthread_mutex_unlock(&d->lock);
}

void iommu_get_stats(struct iommu_domain *d, struct iommu_stats *st)
{
	memset(st, 0, sizeof(*st));
	for (unsigned int i = 0; i < IOMMU_STAT_SHARDS; i++) {
		st->iotlb_hits += atomic_load_explicit(&d->shard[i].hits, memory_order_relaxed);
		st->iotlb_misses += atomic_load_explicit(&d->shard[i].misses, memory_order_relaxed);
	}
	pthread_mutex_lock(&d->lock);
	st->mapped_bytes = d->mapped_bytes;
	st->maps = d->maps;
	st->unmaps = d->unmaps;
	st->pages_4k = d->leaves[3];
	st->blocks_2m = d->leaves[2];
	st->blocks_1g = d->leaves[1];
	st->tables = d->tables;
	st->table_bytes = d->tables * IOMMU_TABLE_BYTES;
	pthread_mutex_unlock(&d->lock);
	pthread_mutex_lock(&d->fault_lock);
	st->faults = d->faults;
	st->faults_dropped = d->faults_dropped;
	pthread_mutex_unlock(&d->fault_lock);
}
