/* SPDX-License-Identifier: MIT */
/*
 * epoch.c: the guarantee behind iommu_unmap that no DMA still touches an
 * unmapped range when it returns.
 *
 * DOC: in-flight DMA sections
 *
 * Every thread that performs a DMA (or walks a page table) owns a record
 * whose counter is odd while it is inside such a section.  Entering costs a
 * store and a full fence on a cache line no other thread writes, so engines
 * on different CPUs never contend.  A writer (unmap, dirty stop) first
 * makes its change visible (PTEs cleared, IOTLB entries invalidated), then
 * issues a full fence and waits for every record that is odd to move on.
 * The two fences pair up: either the writer sees the DMA's record odd and
 * waits for it to finish, or the DMA sees the cleared translation and
 * faults.  It is a small userspace RCU whose readers never block; page
 * tables and dirty bitmaps are freed only after such a wait, so lockless
 * walks never read freed memory.
 *
 * Records live on a process-wide list (a thread may DMA into any domain);
 * a thread's record is removed and freed when the thread exits.
 */
#include <sched.h>
#include <stdlib.h>

#include "iommu/iommu_int.h"

_Thread_local struct iommu_epoch_rec *iommu_epoch_self;
_Thread_local unsigned int iommu_shard_id;

static pthread_mutex_t epoch_lock = PTHREAD_MUTEX_INITIALIZER;
static struct iommu_epoch_rec *epoch_head;
static pthread_key_t epoch_key;
static pthread_once_t epoch_once = PTHREAD_ONCE_INIT;
static int epoch_key_ok;
static atomic_uint shard_next;

static void epoch_thread_exit(void *p)
{
	struct iommu_epoch_rec *r = p;

	pthread_mutex_lock(&epoch_lock);
	if (r->prev)
		r->prev->next = r->next;
	else
		epoch_head = r->next;
	if (r->next)
		r->next->prev = r->prev;
	pthread_mutex_unlock(&epoch_lock);
	iommu_epoch_self = NULL;
	free(r);
}

static void epoch_init(void)
{
	epoch_key_ok = pthread_key_create(&epoch_key, epoch_thread_exit) == 0;
}

struct iommu_epoch_rec *iommu_epoch_register(void)
{
	struct iommu_epoch_rec *r;

	pthread_once(&epoch_once, epoch_init);
	if (!epoch_key_ok)
		return NULL;
	r = aligned_alloc(64, sizeof(*r));
	if (!r)
		return NULL;
	atomic_init(&r->seq, 0);
	r->prev = NULL;
	pthread_mutex_lock(&epoch_lock);
	r->next = epoch_head;
	if (epoch_head)
		epoch_head->prev = r;
	epoch_head = r;
	pthread_mutex_unlock(&epoch_lock);
	/* The key only triggers the destructor at thread exit. */
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

static void epoch_wait_one(struct iommu_epoch_rec *r)
{
	uint64_t s = atomic_load_explicit(&r->seq, memory_order_acquire);
	unsigned int spins = 0;

	if (!(s & 1))
		return;
	while (atomic_load_explicit(&r->seq, memory_order_acquire) == s) {
		/* DMA sections are short copies; yield soon, cores are few. */
		if (++spins > 64)
			sched_yield();
		else
			epoch_relax();
	}
}

void iommu_epoch_wait(void)
{
	atomic_thread_fence(memory_order_seq_cst);
	pthread_mutex_lock(&epoch_lock);
	for (struct iommu_epoch_rec *r = epoch_head; r; r = r->next)
		if (r != iommu_epoch_self)
			epoch_wait_one(r);
	pthread_mutex_unlock(&epoch_lock);
}

unsigned int iommu_shard_assign(void)
{
	unsigned int n = atomic_fetch_add_explicit(&shard_next, 1, memory_order_relaxed);

	iommu_shard_id = n % IOMMU_STAT_SHARDS + 1;
	return iommu_shard_id;
}
