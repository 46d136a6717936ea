// SPDX-License-Identifier: MIT
/* iommu: the DMA API: copies across page and block boundaries,
 * scatter/gather, all-or-nothing faults with exact fault records, the fault
 * queue, atomic words, and unmap racing DMA in another thread. */
#include <criterion/criterion.h>
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "iommu/iommu.h"

#define K4 (4ull << 10)
#define M2 (2ull << 20)
#define RW (IOMMU_READ | IOMMU_WRITE)
#define HOST_SIZE (8 * M2)

static struct iommu_domain *d;
static uint8_t *host; /* 2 MiB aligned, HOST_SIZE bytes */
static void *res;

static void setup(void)
{
	d = iommu_domain_create(NULL);
	cr_assert_not_null(d);
	res = mmap(NULL, HOST_SIZE + M2, PROT_READ | PROT_WRITE,
		   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	cr_assert_neq(res, MAP_FAILED);
	host = (uint8_t *)(((uintptr_t)res + M2 - 1) & ~(uintptr_t)(M2 - 1));
	for (size_t i = 0; i < HOST_SIZE; i++)
		host[i] = (uint8_t)(i * 7 + i / 4096);
}

static void teardown(void)
{
	iommu_domain_destroy(d);
	munmap(res, HOST_SIZE + M2);
}

TestSuite(iommu_dma, .init = setup, .fini = teardown);

static void expect_fault(uint64_t iova, unsigned int access, unsigned int reason, uint64_t seq)
{
	struct iommu_fault f;

	cr_assert_eq(iommu_fault_pop(d, &f), 0, "a fault is queued");
	cr_assert_eq(f.iova, iova, "fault iova %#llx, want %#llx", (unsigned long long)f.iova,
		     (unsigned long long)iova);
	cr_assert_eq(f.access, access);
	cr_assert_eq(f.reason, reason);
	cr_assert_eq(f.seq, seq);
}

static void expect_no_fault(void)
{
	struct iommu_fault f;

	cr_assert_eq(iommu_fault_pop(d, &f), -EAGAIN);
}

Test(iommu_dma, read_write_across_scattered_pages)
{
	/* Three IOVA-contiguous pages backed by host pages in the order
	 * 5, 2, 9: a DMA spanning them must gather/scatter. */
	uint8_t out[3 * K4 - 200], in[3 * K4 - 200];
	const unsigned int order[3] = { 5, 2, 9 };

	for (int i = 0; i < 3; i++)
		cr_assert_eq(iommu_map(d, 0x10000 + i * K4, host + order[i] * K4, K4, RW), 0);
	cr_assert_eq(iommu_dma_read(d, 0x10000 + 100, out, sizeof(out)), 0);
	cr_assert_eq(memcmp(out, host + 5 * K4 + 100, K4 - 100), 0);
	cr_assert_eq(memcmp(out + K4 - 100, host + 2 * K4, K4), 0);
	cr_assert_eq(memcmp(out + 2 * K4 - 100, host + 9 * K4, K4 - 100), 0);
	for (size_t i = 0; i < sizeof(in); i++)
		in[i] = (uint8_t)(0xa5 ^ i);
	cr_assert_eq(iommu_dma_write(d, 0x10000 + 100, in, sizeof(in)), 0);
	cr_assert_eq(memcmp(host + 5 * K4 + 100, in, K4 - 100), 0);
	cr_assert_eq(memcmp(host + 2 * K4, in + K4 - 100, K4), 0);
	cr_assert_eq(memcmp(host + 9 * K4, in + 2 * K4 - 100, K4 - 100), 0);
	/* Bytes just outside the DMA are untouched. */
	cr_assert_eq(host[5 * K4 + 99], (uint8_t)((5 * K4 + 99) * 7 + 5));
	cr_assert_eq(host[9 * K4 + K4 - 100], (uint8_t)((9 * K4 + K4 - 100) * 7 + 9));
	expect_no_fault();
}

Test(iommu_dma, across_block_into_page)
{
	/* A 2 MiB block followed by a 4 KiB page elsewhere in host memory. */
	uint8_t out[8192];

	cr_assert_eq(iommu_map(d, M2, host, M2, RW), 0);
	cr_assert_eq(iommu_map(d, 2 * M2, host + 4 * M2, K4, RW), 0);
	cr_assert_eq(iommu_dma_read(d, 2 * M2 - 4096, out, sizeof(out)), 0);
	cr_assert_eq(memcmp(out, host + M2 - 4096, 4096), 0);
	cr_assert_eq(memcmp(out + 4096, host + 4 * M2, 4096), 0);
}

Test(iommu_dma, all_or_nothing_when_second_page_unmapped)
{
	uint8_t buf[2 * K4], before[2 * K4];

	cr_assert_eq(iommu_map(d, 0x20000, host, K4, RW), 0);
	memset(buf, 0xee, sizeof(buf));
	cr_assert_eq(iommu_dma_read(d, 0x20800, buf, sizeof(buf)), -EFAULT);
	for (size_t i = 0; i < sizeof(buf); i++)
		cr_assert_eq(buf[i], 0xee, "byte %zu copied", i);
	expect_fault(0x21000, IOMMU_READ, IOMMU_FAULT_UNMAPPED, 1);

	memcpy(before, host, K4);
	cr_assert_eq(iommu_dma_write(d, 0x20800, buf, sizeof(buf)), -EFAULT);
	cr_assert_eq(memcmp(host, before, K4), 0, "first page unchanged");
	expect_fault(0x21000, IOMMU_WRITE, IOMMU_FAULT_UNMAPPED, 2);
	/* Entirely unmapped: the first byte is the fault. */
	cr_assert_eq(iommu_dma_read(d, 0x30123, buf, 10), -EFAULT);
	expect_fault(0x30123, IOMMU_READ, IOMMU_FAULT_UNMAPPED, 3);
	expect_no_fault();
	struct iommu_stats st;
	iommu_get_stats(d, &st);
	cr_assert_eq(st.faults, 3);
	cr_assert_eq(st.faults_dropped, 0);
}

Test(iommu_dma, permission_faults)
{
	uint8_t buf[2 * K4], before[2 * K4];

	cr_assert_eq(iommu_map(d, 0x40000, host, K4, RW), 0);
	cr_assert_eq(iommu_map(d, 0x41000, host + K4, K4, IOMMU_READ), 0);
	cr_assert_eq(iommu_map(d, 0x42000, host + 2 * K4, K4, IOMMU_WRITE), 0);
	memcpy(before, host, sizeof(before));
	memset(buf, 0x11, sizeof(buf));
	/* Write through RW into read-only: nothing written, fault at the
	 * first read-only byte. */
	cr_assert_eq(iommu_dma_write(d, 0x40f00, buf, 0x200), -EACCES);
	cr_assert_eq(memcmp(host, before, sizeof(before)), 0);
	expect_fault(0x41000, IOMMU_WRITE, IOMMU_FAULT_PERM, 1);
	/* Reading the write-only page. */
	cr_assert_eq(iommu_dma_read(d, 0x41ffc, buf, 8), -EACCES);
	cr_assert_eq(buf[0], 0x11);
	expect_fault(0x42000, IOMMU_READ, IOMMU_FAULT_PERM, 2);
	/* What is allowed still works. */
	cr_assert_eq(iommu_dma_read(d, 0x40f00, buf, 0x200), 0);
	cr_assert_eq(memcmp(buf, host + 0xf00, 0x200), 0);
	cr_assert_eq(iommu_dma_write(d, 0x42010, "xyz", 3), 0);
	cr_assert_eq(memcmp(host + 2 * K4 + 0x10, "xyz", 3), 0);
	expect_no_fault();
}

Test(iommu_dma, sg_in_order_and_all_or_nothing)
{
	uint8_t a[100], b[K4 + 50], c[10];
	struct iommu_sg sg[3] = {
		{ 0x50000 + 4000, a, sizeof(a) },  /* crosses into page 2 */
		{ 0x52000 - 25, b, sizeof(b) },    /* page 2 end .. page 4 */
		{ 0x50000, c, 0 },                 /* empty segment */
	};

	for (int i = 0; i < 4; i++)
		cr_assert_eq(iommu_map(d, 0x50000 + i * K4, host + (7 - i) * K4, K4, RW), 0);
	cr_assert_eq(iommu_dma_readv(d, sg, 3), 0);
	cr_assert_eq(memcmp(a, host + 7 * K4 + 4000, 96), 0);
	cr_assert_eq(memcmp(a + 96, host + 6 * K4, 4), 0);
	cr_assert_eq(memcmp(b, host + 6 * K4 + K4 - 25, 25), 0);
	cr_assert_eq(memcmp(b + 25, host + 5 * K4, K4), 0);
	cr_assert_eq(memcmp(b + 25 + K4, host + 4 * K4, 25), 0);

	/* The third segment is unmapped: the first two are not written. */
	uint8_t before[8 * K4];
	struct iommu_sg w[3] = {
		{ 0x50010, a, sizeof(a) },
		{ 0x53000, b, 16 },
		{ 0x54003, c, sizeof(c) },
	};
	memcpy(before, host, sizeof(before));
	cr_assert_eq(iommu_dma_writev(d, w, 3), -EFAULT);
	cr_assert_eq(memcmp(host, before, sizeof(before)), 0);
	expect_fault(0x54003, IOMMU_WRITE, IOMMU_FAULT_UNMAPPED, 1);
	cr_assert_eq(iommu_dma_writev(d, w, 2), 0);
	cr_assert_eq(memcmp(host + 7 * K4 + 0x10, a, sizeof(a)), 0);
	cr_assert_eq(memcmp(host + 4 * K4, b, 16), 0);
	cr_assert_eq(iommu_dma_readv(d, w, 0), 0);
}

Test(iommu_dma, bad_ranges_are_einval_without_fault)
{
	uint8_t buf[16];
	struct iommu_sg sg = { 0x1000, NULL, 4 };

	cr_assert_eq(iommu_dma_read(d, (1ull << 48) - 8, buf, 16), -EINVAL);
	cr_assert_eq(iommu_dma_write(d, UINT64_MAX - 3, buf, 16), -EINVAL);
	cr_assert_eq(iommu_dma_readv(d, &sg, 1), -EINVAL);
	cr_assert_eq(iommu_dma_readv(d, NULL, 1), -EINVAL);
	cr_assert_eq(iommu_dma_read(d, 0x1000, buf, 0), 0);
	expect_no_fault();
}

Test(iommu_dma, atomic_words)
{
	uint64_t v = 0;
	uint32_t w = 0;

	cr_assert_eq(iommu_map(d, 0x60000, host, 2 * K4, RW), 0);
	cr_assert_eq(iommu_map(d, 0x62000, host + 2 * K4, K4, IOMMU_READ), 0);
	cr_assert_eq(iommu_dma_store64(d, 0x60008, 0x1122334455667788ull), 0);
	cr_assert_eq(*(uint64_t *)(host + 8), 0x1122334455667788ull);
	cr_assert_eq(iommu_dma_load64(d, 0x60008, &v), 0);
	cr_assert_eq(v, 0x1122334455667788ull);
	cr_assert_eq(iommu_dma_load32(d, 0x6000c, &w), 0);
	cr_assert_eq(w, 0x11223344u);
	/* Unaligned, across the page boundary: a plain 8-byte DMA. */
	cr_assert_eq(iommu_dma_store64(d, 0x60ffc, 0xa1a2a3a4b1b2b3b4ull), 0);
	cr_assert_eq(iommu_dma_load64(d, 0x60ffc, &v), 0);
	cr_assert_eq(v, 0xa1a2a3a4b1b2b3b4ull);
	cr_assert_eq(*(uint32_t *)(host + K4), 0xa1a2a3a4u);
	/* Faults, with the value left alone. */
	v = 42;
	cr_assert_eq(iommu_dma_load64(d, 0x70000, &v), -EFAULT);
	cr_assert_eq(v, 42);
	expect_fault(0x70000, IOMMU_READ, IOMMU_FAULT_UNMAPPED, 1);
	v = *(uint64_t *)(host + 2 * K4 + 0x10);
	cr_assert_eq(iommu_dma_store64(d, 0x62010, ~v), -EACCES);
	cr_assert_eq(*(uint64_t *)(host + 2 * K4 + 0x10), v);
	expect_fault(0x62010, IOMMU_WRITE, IOMMU_FAULT_PERM, 2);
	cr_assert_eq(iommu_dma_load32(d, 0x63000, &w), -EFAULT);
	expect_fault(0x63000, IOMMU_READ, IOMMU_FAULT_UNMAPPED, 3);
	cr_assert_eq(iommu_dma_store64(d, 0x61ffc, 1), -EACCES);
	expect_fault(0x62000, IOMMU_WRITE, IOMMU_FAULT_PERM, 4);
}

static _Atomic unsigned int handler_calls;
static struct iommu_fault handler_last;
static pthread_t handler_thread;

static void on_fault(void *opaque, const struct iommu_fault *f)
{
	cr_assert_eq(opaque, &handler_calls);
	handler_last = *f;
	handler_thread = pthread_self();
	handler_calls++;
}

Test(iommu_dma, fault_queue_overflow_and_handler)
{
	struct iommu_domain_cfg cfg = { .name = "small", .fault_depth = 4 };
	struct iommu_domain *q = iommu_domain_create(&cfg);
	struct iommu_stats st;
	struct iommu_fault f;
	uint8_t b;

	cr_assert_not_null(q);
	iommu_set_fault_handler(q, on_fault, &handler_calls);
	for (uint64_t i = 0; i < 6; i++)
		cr_assert_eq(iommu_dma_read(q, 0x1000 * (i + 1), &b, 1), -EFAULT);
	cr_assert_eq(handler_calls, 6);
	cr_assert_eq(handler_last.iova, 0x6000);
	cr_assert_eq(handler_last.seq, 6);
	cr_assert(pthread_equal(handler_thread, pthread_self()));
	iommu_get_stats(q, &st);
	cr_assert_eq(st.faults, 6);
	cr_assert_eq(st.faults_dropped, 2);
	/* The oldest two were dropped; the newest four remain in order. */
	for (uint64_t seq = 3; seq <= 6; seq++) {
		cr_assert_eq(iommu_fault_pop(q, &f), 0);
		cr_assert_eq(f.seq, seq);
		cr_assert_eq(f.iova, 0x1000 * seq);
		cr_assert_eq(f.access, IOMMU_READ);
		cr_assert_eq(f.reason, IOMMU_FAULT_UNMAPPED);
	}
	cr_assert_eq(iommu_fault_pop(q, &f), -EAGAIN);
	/* Without a handler faults are still queued. */
	iommu_set_fault_handler(q, NULL, NULL);
	cr_assert_eq(iommu_dma_write(q, 0x9000, &b, 1), -EFAULT);
	cr_assert_eq(handler_calls, 6);
	cr_assert_eq(iommu_fault_pop(q, &f), 0);
	cr_assert_eq(f.seq, 7);
	iommu_domain_destroy(q);
}

/* The handler runs with no domain lock held: it may use the domain. */
static void on_fault_remap(void *opaque, const struct iommu_fault *f)
{
	struct iommu_domain *q = opaque;
	struct iommu_stats st;

	iommu_get_stats(q, &st);
	cr_assert_eq(st.faults, f->seq);
	cr_assert_eq(iommu_map(q, f->iova & ~(K4 - 1), host, K4, RW), 0);
}

Test(iommu_dma, handler_may_call_back_into_the_domain)
{
	uint8_t b[4];

	iommu_set_fault_handler(d, on_fault_remap, d);
	cr_assert_eq(iommu_dma_read(d, 0x8004, b, 4), -EFAULT);
	/* The handler mapped the page: the retry goes through. */
	cr_assert_eq(iommu_dma_read(d, 0x8004, b, 4), 0);
	cr_assert_eq(memcmp(b, host + 4, 4), 0);
	expect_fault(0x8004, IOMMU_READ, IOMMU_FAULT_UNMAPPED, 1);
}

/*
 * Unmap racing DMA.  A thread copies a large buffer into a mapping while
 * the main thread unmaps it.  The design says: the unmap waits for a DMA
 * that began before it, and a DMA that begins after it faults.  Right
 * after iommu_unmap returns the memory is snapshotted and then made
 * inaccessible: the snapshot must hold all of the DMA's data (it finished
 * first) or none (it faulted), never a part, and no write may land later.
 */
#define BIG (8ull << 20)

struct big_dma {
	uint8_t *src;
	_Atomic int started;
	int rc;
};

static void *big_writer(void *p)
{
	struct big_dma *b = p;

	b->started = 1;
	b->rc = iommu_dma_write(d, 0x100000000ull, b->src, BIG);
	return NULL;
}

static size_t count_byte(const uint8_t *m, size_t n, uint8_t v)
{
	size_t c = 0;

	for (size_t i = 0; i < n; i++)
		c += m[i] == v;
	return c;
}

Test(iommu_dma, unmap_waits_for_dma_in_flight, .timeout = 60)
{
	struct big_dma b = { .src = malloc(BIG) };
	unsigned int waited = 0, faulted = 0;

	cr_assert_not_null(b.src);
	memset(b.src, 0x5c, BIG);
	for (int round = 0; round < 12; round++) {
		uint8_t *m = mmap(NULL, BIG, PROT_READ | PROT_WRITE,
				  MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		pthread_t t;
		size_t n;

		cr_assert_neq(m, MAP_FAILED);
		cr_assert_eq(iommu_map(d, 0x100000000ull, m, BIG, RW), 0);
		b.started = 0;
		cr_assert_eq(pthread_create(&t, NULL, big_writer, &b), 0);
		while (!b.started)
			sched_yield();
		/* Alternate: unmap at once, or after the copy had a start. */
		for (int i = 0; i < (round % 3) * 2000; i++)
			sched_yield();
		cr_assert_eq(iommu_unmap(d, 0x100000000ull, BIG), 0);
		n = count_byte(m, BIG, 0x5c);
		cr_assert_eq(mprotect(m, BIG, PROT_NONE), 0);
		pthread_join(t, NULL);
		if (b.rc == 0) {
			cr_assert_eq(n, BIG, "round %d: unmap returned mid-DMA (%zu bytes)", round, n);
			waited++;
		} else {
			cr_assert_eq(b.rc, -EFAULT);
			cr_assert_eq(n, 0, "round %d: faulted DMA wrote %zu bytes", round, n);
			faulted++;
		}
		munmap(m, BIG);
	}
	cr_log_info("unmap vs 8 MiB DMA: %u rounds the unmap waited, %u the DMA faulted",
		    waited, faulted);
	free(b.src);
}

/* Many small DMAs hammering one page while it is mapped, unmapped and
 * its host memory made inaccessible, round after round. */
struct hammer {
	_Atomic uint64_t state; /* 2r: mapped in round r, 2r+1: unmapped */
	_Atomic int stop;
	_Atomic uint64_t ok, faults, late;
};

static void *hammer_thread(void *p)
{
	struct hammer *h = p;
	uint8_t buf[2 * 4096];

	memset(buf, 0x77, sizeof(buf));
	while (!h->stop) {
		uint64_t s = h->state;
		int rc = (h->ok & 1) ? iommu_dma_write(d, 0x7000, buf, sizeof(buf))
				     : iommu_dma_read(d, 0x7800, buf, 4096);

		if (rc == 0) {
			h->ok++;
			/* Unmapped before we began and still so: a
			 * successful DMA here would be use after unmap. */
			if ((s & 1) && h->state == s)
				h->late++;
		} else if (rc == -EFAULT) {
			h->faults++;
		} else {
			h->late += 1000000;
		}
	}
	return NULL;
}

Test(iommu_dma, unmap_racing_small_dmas, .timeout = 60)
{
	enum { ROUNDS = 300 };
	struct hammer h = { 0 };
	uint8_t *pages[ROUNDS];
	struct iommu_fault f;
	pthread_t t;

	cr_assert_eq(pthread_create(&t, NULL, hammer_thread, &h), 0);
	for (uint64_t r = 0; r < ROUNDS; r++) {
		uint64_t ok0;

		pages[r] = mmap(NULL, 2 * K4, PROT_READ | PROT_WRITE,
				MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		cr_assert_neq(pages[r], MAP_FAILED);
		/* Mapped from before the map: a DMA that read the previous
		 * round's odd state and then found this mapping is not late
		 * (set after it, this thread preempted in between made it
		 * look so now and then on a loaded host). */
		h.state = 2 * r;
		cr_assert_eq(iommu_map(d, 0x7000, pages[r], 2 * K4, RW), 0);
		ok0 = h.ok;
		while (h.ok < ok0 + 3)
			sched_yield();
		cr_assert_eq(iommu_unmap(d, 0x7000, 2 * K4), 0);
		h.state = 2 * r + 1;
		/* Kept reserved (not munmapped) so that a late write cannot
		 * land in a new mapping at the same address unnoticed. */
		cr_assert_eq(mprotect(pages[r], 2 * K4, PROT_NONE), 0);
		/* A DMA that translated its first page before the unmap
		 * cleared it and its second after faults at the second. */
		while (iommu_fault_pop(d, &f) == 0)
			cr_assert(f.iova == 0x8000 ||
				  f.iova == (f.access == IOMMU_WRITE ? 0x7000u : 0x7800u),
				  "fault at %#llx", (unsigned long long)f.iova);
	}
	h.stop = 1;
	pthread_join(t, NULL);
	cr_assert_eq(h.late, 0);
	cr_assert_geq(h.ok, 3 * ROUNDS);
	cr_log_info("%llu DMAs completed, %llu faulted after an unmap",
		    (unsigned long long)h.ok, (unsigned long long)h.faults);
	for (int r = 0; r < ROUNDS; r++)
		munmap(pages[r], 2 * K4);
}

/* Waiting is per domain: while a long DMA runs in one domain, an unmap in
 * another returns at once.  The DMA is three segments copied in order (a
 * page, 64 MiB, a page); a round counts when the first page has landed and
 * the last has not, both before the other domain's unmap starts and after
 * it returns. */
#define LONG_DMA (64ull << 20)

struct long_dma {
	struct iommu_domain *dom;
	uint8_t *src;
	int rc;
};

static void *long_writer(void *p)
{
	struct long_dma *l = p;
	struct iommu_sg sg[3] = {
		{ 0, l->src, K4 },
		{ K4, l->src, LONG_DMA },
		{ K4 + LONG_DMA, l->src, K4 },
	};

	l->rc = iommu_dma_writev(l->dom, sg, 3);
	return NULL;
}

Test(iommu_dma, unmap_in_other_domain_does_not_wait, .timeout = 60)
{
	struct long_dma l = { iommu_domain_create(NULL), malloc(LONG_DMA), -1 };
	const size_t len = LONG_DMA + 2 * K4;
	unsigned int proven = 0;

	cr_assert_not_null(l.dom);
	cr_assert_not_null(l.src);
	memset(l.src, 0xab, LONG_DMA);
	for (int round = 0; round < 10 && !proven; round++) {
		volatile uint8_t *dst = mmap(NULL, len, PROT_READ | PROT_WRITE,
					     MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		pthread_t t;
		int mid;

		cr_assert_neq((void *)dst, MAP_FAILED);
		cr_assert_eq(iommu_map(l.dom, 0, (void *)dst, len, RW), 0);
		cr_assert_eq(iommu_map(d, 0x1000, host, K4, RW), 0);
		cr_assert_eq(pthread_create(&t, NULL, long_writer, &l), 0);
		while (dst[K4 - 1] != 0xab)
			sched_yield();
		mid = dst[len - K4] != 0xab;
		cr_assert_eq(iommu_unmap(d, 0x1000, K4), 0);
		if (mid && dst[len - K4] != 0xab)
			proven++;
		pthread_join(t, NULL);
		cr_assert_eq(l.rc, 0);
		cr_assert_eq(dst[len - 1], 0xab);
		cr_assert_eq(iommu_unmap(l.dom, 0, len), 0);
		munmap((void *)dst, len);
	}
	cr_assert_gt(proven, 0, "no round showed the unmap running beside the DMA");
	iommu_domain_destroy(l.dom);
	free(l.src);
}

Test(iommu_dma, overlapping_source_and_destination)
{
	/* IOVA 0x9000 maps host page 0; a DMA between it and a buffer that
	 * overlaps that page behaves as memmove. */
	uint8_t want[K4];

	cr_assert_eq(iommu_map(d, 0x9000, host, K4, RW), 0);
	memcpy(want, host, K4 - 16);
	cr_assert_eq(iommu_dma_read(d, 0x9000, host + 16, K4 - 16), 0);
	cr_assert_eq(memcmp(host + 16, want, K4 - 16), 0);
}

Test(iommu_dma, injected_fault_hits_the_nth_dma)
{
	uint8_t b[8] = { 0 };
	uint64_t v;
	struct iommu_sg sg[2] = { { 0xa000, b, 0 }, { 0xa010, b, 4 } };

	cr_assert_eq(iommu_map(d, 0xa000, host, K4, RW), 0);
	iommu_inject_dma_fault(d, 3);
	cr_assert_eq(iommu_dma_read(d, 0xa000, b, 8), 0);
	cr_assert_eq(iommu_dma_read(d, 0xa000, b, 0), 0, "empty: not counted");
	cr_assert_eq(iommu_dma_read(d, UINT64_MAX, b, 8), -EINVAL, "bad: not counted");
	cr_assert_eq(iommu_dma_load64(d, 0xa008, &v), 0);
	memset(b, 0x99, sizeof(b));
	cr_assert_eq(iommu_dma_readv(d, sg, 2), -EFAULT);
	cr_assert_eq(b[0], 0x99, "nothing copied");
	expect_fault(0xa010, IOMMU_READ, IOMMU_FAULT_UNMAPPED, 1);
	cr_assert_eq(iommu_dma_readv(d, sg, 2), 0, "only once");
	iommu_inject_dma_fault(d, 1);
	cr_assert_eq(iommu_dma_store64(d, 0xa008, 5), -EFAULT);
	expect_fault(0xa008, IOMMU_WRITE, IOMMU_FAULT_UNMAPPED, 2);
	iommu_inject_dma_fault(d, 2);
	iommu_inject_dma_fault(d, 0);
	cr_assert_eq(iommu_dma_write(d, 0xa000, b, 8), 0);
	cr_assert_eq(iommu_dma_write(d, 0xa000, b, 8), 0);
	expect_no_fault();
}

/* fork() while another thread is mid-DMA: in the child that thread does
 * not exist, and an unmap there must not wait for it. */
Test(iommu_dma, unmap_in_forked_child_does_not_hang, .timeout = 60)
{
	struct long_dma l = { d, malloc(LONG_DMA), -1 };
	const size_t len = LONG_DMA + 2 * K4;
	volatile uint8_t *dst = mmap(NULL, len, PROT_READ | PROT_WRITE,
				     MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	unsigned int forked_mid = 0;

	cr_assert_not_null(l.src);
	cr_assert_neq((void *)dst, MAP_FAILED);
	memset(l.src, 0xab, LONG_DMA);
	cr_assert_eq(iommu_map(d, 0, (void *)dst, len, RW), 0);
	for (int round = 0; round < 10 && !forked_mid; round++) {
		pthread_t t;
		pid_t pid;
		int status;

		memset((void *)dst, 0, len);
		cr_assert_eq(pthread_create(&t, NULL, long_writer, &l), 0);
		while (dst[K4 - 1] != 0xab)
			sched_yield();
		pid = fork();
		cr_assert_geq(pid, 0);
		if (pid == 0) {
			alarm(10);
			_exit(iommu_unmap(d, 0, len) == 0 ? 0 : 1);
		}
		forked_mid += dst[len - K4] != 0xab;
		cr_assert_eq(waitpid(pid, &status, 0), pid);
		cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0,
			  "child unmap hung or failed (status %#x)", status);
		pthread_join(t, NULL);
		cr_assert_eq(l.rc, 0);
	}
	cr_assert_gt(forked_mid, 0, "never forked while the DMA was in flight");
	cr_assert_eq(iommu_unmap(d, 0, len), 0);
	munmap((void *)dst, len);
	free(l.src);
}

/* A client that truncates the file behind its guest memory: the next DMA
 * to it meets SIGBUS, which fails that DMA like an unmapped IOVA instead
 * of killing the process; memory still backed keeps working, and a SIGBUS
 * outside a DMA is not swallowed. */
Test(iommu_dma, memory_truncated_under_a_mapping_faults)
{
	const uint64_t iova = 0x40000000;
	uint8_t buf[64] = { 0 };
	uint64_t v = 0;
	uint32_t w = 0;
	int fd = memfd_create("gpup-test-shrink", MFD_CLOEXEC);
	uint8_t *mem;
	pid_t pid;
	int st;

	cr_assert_geq(fd, 0);
	cr_assert_eq(ftruncate(fd, 2 * 4096), 0);
	mem = mmap(NULL, 2 * 4096, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	cr_assert_neq(mem, MAP_FAILED);
	memset(mem, 0x5a, 2 * 4096);
	cr_assert_eq(iommu_map(d, iova, mem, 2 * 4096, IOMMU_READ | IOMMU_WRITE), 0);
	cr_assert_eq(ftruncate(fd, 4096), 0, "the second page's backing is gone");

	cr_assert_eq(iommu_dma_read(d, iova, buf, sizeof(buf)), 0, "first page still backed");
	cr_assert_eq(buf[0], 0x5a);
	expect_no_fault();
	cr_assert_eq(iommu_dma_read(d, iova + 4096, buf, sizeof(buf)), -EFAULT);
	expect_fault(iova + 4096, IOMMU_READ, IOMMU_FAULT_UNMAPPED, 1);
	cr_assert_eq(iommu_dma_write(d, iova + 4096, buf, sizeof(buf)), -EFAULT);
	expect_fault(iova + 4096, IOMMU_WRITE, IOMMU_FAULT_UNMAPPED, 2);
	cr_assert_eq(iommu_dma_load64(d, iova + 4096, &v), -EFAULT);
	expect_fault(iova + 4096, IOMMU_READ, IOMMU_FAULT_UNMAPPED, 3);
	cr_assert_eq(iommu_dma_load32(d, iova + 4096 + 8, &w), -EFAULT);
	expect_fault(iova + 4096 + 8, IOMMU_READ, IOMMU_FAULT_UNMAPPED, 4);
	cr_assert_eq(iommu_dma_store64(d, iova + 4096, 7), -EFAULT);
	expect_fault(iova + 4096, IOMMU_WRITE, IOMMU_FAULT_UNMAPPED, 5);
	cr_assert_eq(iommu_dma_store64(d, iova, 7), 0, "a word in the backed page");
	cr_assert_eq(*(uint64_t *)mem, 7);

	/* Outside a DMA the signal still goes where it went before: the
	 * default action kills the process; under a sanitizer its handler
	 * reports the access and exits non-zero. */
	pid = fork();
	cr_assert_geq(pid, 0);
	if (pid == 0) {
		volatile uint8_t x = mem[4096];

		(void)x;
		_exit(0);
	}
	cr_assert_eq(waitpid(pid, &st, 0), pid);
	cr_assert((WIFSIGNALED(st) && WTERMSIG(st) == SIGBUS) ||
		  (WIFEXITED(st) && WEXITSTATUS(st) != 0), "status %#x", st);

	cr_assert_eq(iommu_unmap(d, iova, 2 * 4096), 0);
	munmap(mem, 2 * 4096);
	close(fd);
}
