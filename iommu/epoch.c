/* SPDX-License-Identifier: MIT */
/*
 * epoch.c: the guarantee behind iommu_unmap that no DMA still touches an
 * unmapped range when it returns.
 *
 * DOC: in-flight DMA sections
 *
 * Every thread that performs a DMA (or walks a page table) owns a record
 * whose counter is odd while it is inside such a section, and which names
 * the domain the section is in.  Entering costs two stores and a full fence
 * on a cache line no other thread writes, so engines on different CPUs
 * never contend.  A writer (unmap, dirty stop) first makes its change
 * visible (PTEs cleared, IOTLB entries invalidated), then issues a full
 * fence and waits for every record that is odd in its domain to move on.
 * The two fences pair up: either the writer sees the DMA's record odd and
 * waits for it to finish, or the DMA sees the cleared translation and
 * faults.  It is a small userspace RCU whose readers never block; page
 * tables and dirty bitmaps are freed only after such a wait, so lockless
 * walks never read freed memory.
 *
 * Waiting is per domain: a long DMA into one partition never delays an
 * unmap in another.  Records live on a process-wide list that only grows;
 * a thread's record goes back to a free state when the thread exits and
 * the next new thread takes it, so the list is as long as the most threads
 * that ever did DMA at once, and writers walk it without a lock.
 *
 * After fork() only the forking thread exists in the child; the records of
 * the others are released there, so that an unmap in the child never waits
 * for a DMA that was in flight in a thread the child does not have.
 */
#include <sched.h>
#include <stdlib.h>

#include "iommu/iommu_int.h"

_Thread_local struct iommu_epoch_rec *iommu_epoch_self;
_Thread_local unsigned int iommu_shard_id;

static struct iommu_epoch_rec *_Atomic epoch_head;
static pthread_key_t epoch_key;
static pthread_once_t epoch_once = PTHREAD_ONCE_INIT;
static int epoch_key_ok;
static atomic_uint shard_next;

static void epoch_thread_exit(void *p)
{
	struct iommu_epoch_rec *r = p;

	atomic_store_explicit(&r->dom, NULL, memory_order_relaxed);
	atomic_store_explicit(&r->in_use, 0, memory_order_release);
	iommu_epoch_self = NULL;
}

static void epoch_atfork_child(void)
{
	for (struct iommu_epoch_rec *r = atomic_load_explicit(&epoch_head, memory_order_acquire);
	     r; r = r->next) {
		if (r == iommu_epoch_self)
			continue;
		atomic_store_explicit(&r->seq, 0, memory_order_relaxed);
		atomic_store_explicit(&r->dom, NULL, memory_order_relaxed);
		atomic_store_explicit(&r->in_use, 0, memory_order_relaxed);
	}
}

static void epoch_init(void)
{
	epoch_key_ok = pthread_key_create(&epoch_key, epoch_thread_exit) == 0 &&
		       pthread_atfork(NULL, NULL, epoch_atfork_child) == 0;
}

static struct iommu_epoch_rec *epoch_reuse(void)
{
	struct iommu_epoch_rec *r = atomic_load_explicit(&epoch_head, memory_order_acquire);

	for (; r; r = r->next) {
		int free_rec = 0;

		if (atomic_compare_exchange_strong_explicit(&r->in_use, &free_rec, 1,
							    memory_order_acquire,
							    memory_order_relaxed))
			return r;
	}
	return NULL;
}

static struct iommu_epoch_rec *epoch_new(void)
{
	struct iommu_epoch_rec *r = aligned_alloc(64, sizeof(*r));

	if (!r)
		return NULL;
	atomic_init(&r->seq, 0);
	atomic_init(&r->dom, NULL);
	atomic_init(&r->in_use, 1);
	r->next = atomic_load_explicit(&epoch_head, memory_order_relaxed);
	while (!atomic_compare_exchange_weak_explicit(&epoch_head, &r->next, r,
						      memory_order_release,
						      memory_order_relaxed))
		;
	return r;
}

struct iommu_epoch_rec *iommu_epoch_register(void)
{
	struct iommu_epoch_rec *r;

	pthread_once(&epoch_once, epoch_init);
	if (!epoch_key_ok)
		return NULL;
	r = epoch_reuse();
	if (!r)
		r = epoch_new();
	if (!r)
		return NULL;
	/* The key only serves to run epoch_thread_exit at thread exit. */
	if (pthread_setspecific(epoch_key, r) != 0) {
		epoch_thread_exit(r);
		return NULL;
	}
	iommu_epoch_self = r;
	return r;
}

static inline void epoch_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
	__builtin_ia32_pause();
#else
	atomic_signal_fence(memory_order_seq_cst);
#endif
}

static void epoch_wait_one(struct iommu_epoch_rec *r, struct iommu_domain *d)
{
	uint64_t s = atomic_load_explicit(&r->seq, memory_order_acquire);
	unsigned int spins = 0;

	/* A different domain read here is either that section's own (not
	 * ours) or a later one's, in which case ours has ended. */
	if (!(s & 1) || atomic_load_explicit(&r->dom, memory_order_relaxed) != d)
		return;
	while (atomic_load_explicit(&r->seq, memory_order_acquire) == s) {
		/* DMA sections are short copies; yield soon, cores are few. */
		if (++spins > 64)
			sched_yield();
		else
			epoch_relax();
	}
}

void iommu_epoch_wait(struct iommu_domain *d)
{
	atomic_thread_fence(memory_order_seq_cst);
	for (struct iommu_epoch_rec *r = atomic_load_explicit(&epoch_head, memory_order_acquire);
	     r; r = r->next)
		if (r != iommu_epoch_self)
			epoch_wait_one(r, d);
}

unsigned int iommu_shard_assign(void)
{
	unsigned int n = atomic_fetch_add_explicit(&shard_next, 1, memory_order_relaxed);

	iommu_shard_id = n % IOMMU_STAT_SHARDS + 1;
	return iommu_shard_id;
}
