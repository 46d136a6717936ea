// SPDX-License-Identifier: MIT
/* iommu: map, translate, unmap, block selection, overlaps, IOTLB
 * invalidation and the statistics that describe the page table. */
#include <criterion/criterion.h>
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "iommu/iommu.h"

#define K4 (4ull << 10)
#define M2 (2ull << 20)
#define G1 (1ull << 30)
#define RW (IOMMU_READ | IOMMU_WRITE)

static struct iommu_domain *d;
static void *res;     /* reserved host area, not backed until touched */
static uint8_t *host; /* 1 GiB aligned inside res, 3 GiB usable */

static void setup(void)
{
	struct iommu_domain_cfg cfg = { .name = "test", .fault_depth = 0 };

	d = iommu_domain_create(&cfg);
	cr_assert_not_null(d);
	res = mmap(NULL, 4 * G1, PROT_READ | PROT_WRITE,
		   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	cr_assert_neq(res, MAP_FAILED);
	host = (uint8_t *)(((uintptr_t)res + G1 - 1) & ~(uintptr_t)(G1 - 1));
}

static void teardown(void)
{
	iommu_domain_destroy(d);
	munmap(res, 4 * G1);
}

TestSuite(iommu_map, .init = setup, .fini = teardown);

static struct iommu_stats stats(void)
{
	struct iommu_stats st;

	iommu_get_stats(d, &st);
	return st;
}

static void *xlate(uint64_t iova, unsigned int access, int want, uint64_t *contig)
{
	void *h = NULL;

	cr_assert_eq(iommu_translate(d, iova, access, &h, contig), want, "iova %#llx",
		     (unsigned long long)iova);
	return h;
}

Test(iommu_map, page_translate_and_unmap)
{
	uint64_t c;

	cr_assert_eq(iommu_map(d, 0x10000, host, 2 * K4, RW), 0);
	cr_assert_eq(xlate(0x10123, IOMMU_READ, 0, &c), host + 0x123);
	cr_assert_eq(c, K4 - 0x123);
	cr_assert_eq(xlate(0x11fff, IOMMU_WRITE, 0, &c), host + K4 + 0xfff);
	cr_assert_eq(c, 1);
	xlate(0x12000, IOMMU_READ, -EFAULT, NULL);
	xlate(0xf000, IOMMU_READ, -EFAULT, NULL);
	cr_assert_eq(stats().pages_4k, 2);
	cr_assert_eq(stats().mapped_bytes, 2 * K4);
	cr_assert_eq(iommu_unmap(d, 0x10000, 2 * K4), 0);
	xlate(0x10123, IOMMU_READ, -EFAULT, NULL);
	cr_assert_eq(stats().pages_4k, 0);
	cr_assert_eq(stats().mapped_bytes, 0);
	cr_assert_eq(stats().maps, 1);
	cr_assert_eq(stats().unmaps, 1);
}

Test(iommu_map, one_gib_block)
{
	uint64_t c;

	cr_assert_eq(iommu_map(d, 4 * G1, host, G1, RW), 0);
	cr_assert_eq(stats().blocks_1g, 1);
	cr_assert_eq(stats().blocks_2m, 0);
	cr_assert_eq(stats().pages_4k, 0);
	cr_assert_eq(xlate(4 * G1 + 0x12345678, IOMMU_READ, 0, &c), host + 0x12345678);
	cr_assert_eq(c, G1 - 0x12345678);
	/* Splitting a block is refused and leaves it whole. */
	cr_assert_eq(iommu_unmap(d, 4 * G1, M2), -EINVAL);
	cr_assert_eq(iommu_unmap(d, 4 * G1 + K4, G1 - K4), -EINVAL);
	cr_assert_eq(xlate(4 * G1, IOMMU_READ, 0, NULL), host);
	cr_assert_eq(stats().blocks_1g, 1);
	cr_assert_eq(iommu_unmap(d, 4 * G1, G1), 0);
	cr_assert_eq(stats().blocks_1g, 0);
	xlate(4 * G1 + 0x12345678, IOMMU_READ, -EFAULT, NULL);
}

Test(iommu_map, mixed_leaves_by_alignment)
{
	/* One page up to a 2 MiB boundary, one 2 MiB block up to a 1 GiB
	 * boundary, one 1 GiB block, one page: IOVA and host agree modulo
	 * 1 GiB, so every leaf is as large as alignment allows. */
	uint64_t iova = 4 * G1 + G1 - M2 - K4;
	uint8_t *h = host + G1 - M2 - K4;
	uint64_t c;

	cr_assert_eq(iommu_map(d, iova, h, K4 + M2 + G1 + K4, IOMMU_READ), 0);
	cr_assert_eq(stats().pages_4k, 2);
	cr_assert_eq(stats().blocks_2m, 1);
	cr_assert_eq(stats().blocks_1g, 1);
	cr_assert_eq(stats().mapped_bytes, K4 + M2 + G1 + K4);
	cr_assert_eq(xlate(iova + 8, IOMMU_READ, 0, &c), h + 8);
	cr_assert_eq(c, K4 - 8);
	cr_assert_eq(xlate(iova + K4 + 100, IOMMU_READ, 0, &c), h + K4 + 100);
	cr_assert_eq(c, M2 - 100);
	cr_assert_eq(xlate(5 * G1, IOMMU_READ, 0, &c), h + K4 + M2);
	cr_assert_eq(c, G1);
	cr_assert_eq(xlate(6 * G1 + 5, IOMMU_READ, 0, &c), h + K4 + M2 + G1 + 5);
	cr_assert_eq(c, K4 - 5);
	xlate(6 * G1 + K4, IOMMU_READ, -EFAULT, NULL);
	xlate(iova, IOMMU_WRITE, -EACCES, NULL);
}

Test(iommu_map, misaligned_host_gives_pages)
{
	/* 2 MiB aligned IOVA but a host address only 4 KiB aligned. */
	cr_assert_eq(iommu_map(d, M2, host + K4, M2, RW), 0);
	cr_assert_eq(stats().pages_4k, 512);
	cr_assert_eq(stats().blocks_2m, 0);
	cr_assert_eq(xlate(M2 + M2 - 1, IOMMU_READ, 0, NULL), host + K4 + M2 - 1);
	/* Pages may go one by one. */
	cr_assert_eq(iommu_unmap(d, M2 + K4, K4), 0);
	cr_assert_eq(stats().pages_4k, 511);
	xlate(M2 + K4, IOMMU_READ, -EFAULT, NULL);
	cr_assert_eq(xlate(M2, IOMMU_READ, 0, NULL), host + K4);
	cr_assert_eq(xlate(M2 + 2 * K4, IOMMU_READ, 0, NULL), host + 3 * K4);
	/* A range with a hole unmaps what is there. */
	cr_assert_eq(iommu_unmap(d, M2, M2), 0);
	cr_assert_eq(stats().pages_4k, 0);
	cr_assert_eq(stats().mapped_bytes, 0);
}

Test(iommu_map, overlap_is_eexist_and_changes_nothing)
{
	struct iommu_stats before;
	uint64_t c;

	cr_assert_eq(iommu_map(d, 0x100000, host, 4 * K4, IOMMU_READ), 0);
	before = stats();
	/* Starts before, ends inside; starts inside; covers it; same. */
	cr_assert_eq(iommu_map(d, 0xfe000, host + G1, 3 * K4, RW), -EEXIST);
	cr_assert_eq(iommu_map(d, 0x103000, host + G1, 2 * K4, RW), -EEXIST);
	cr_assert_eq(iommu_map(d, 0, host + G1, M2, RW), -EEXIST);
	cr_assert_eq(iommu_map(d, 0x100000, host, 4 * K4, IOMMU_READ), -EEXIST);
	/* Nothing changed: no new pages, the neighbours stay unmapped,
	 * the old mapping still read-only at the old host pages. */
	cr_assert_eq(stats().pages_4k, before.pages_4k);
	cr_assert_eq(stats().mapped_bytes, before.mapped_bytes);
	cr_assert_eq(stats().maps, before.maps);
	xlate(0xfe000, IOMMU_READ, -EFAULT, NULL);
	xlate(0xff000, IOMMU_READ, -EFAULT, NULL);
	xlate(0x104000, IOMMU_READ, -EFAULT, NULL);
	cr_assert_eq(xlate(0x103000, IOMMU_READ, 0, &c), host + 3 * K4);
	cr_assert_eq(c, K4);
	xlate(0x103000, IOMMU_WRITE, -EACCES, NULL);
	/* Adjacent ranges are not overlaps. */
	cr_assert_eq(iommu_map(d, 0xff000, host + G1, K4, RW), 0);
	cr_assert_eq(iommu_map(d, 0x104000, host + G1, K4, RW), 0);
}

Test(iommu_map, overlap_with_block)
{
	cr_assert_eq(iommu_map(d, 2 * M2, host, M2, RW), 0);
	cr_assert_eq(stats().blocks_2m, 1);
	cr_assert_eq(iommu_map(d, 2 * M2 + 0x5000, host + G1, K4, RW), -EEXIST);
	cr_assert_eq(iommu_map(d, 3 * M2 - K4, host + G1, 2 * K4, RW), -EEXIST);
	cr_assert_eq(stats().pages_4k, 0);
	cr_assert_eq(iommu_map(d, 3 * M2, host + G1, K4, RW), 0);
}

Test(iommu_map, bad_arguments)
{
	cr_assert_eq(iommu_map(d, 0x1000, host, 0, RW), -EINVAL);
	cr_assert_eq(iommu_map(d, 0x1001, host, K4, RW), -EINVAL);
	cr_assert_eq(iommu_map(d, 0x1000, host + 1, K4, RW), -EINVAL);
	cr_assert_eq(iommu_map(d, 0x1000, host, K4 + 1, RW), -EINVAL);
	cr_assert_eq(iommu_map(d, 0x1000, NULL, K4, RW), -EINVAL);
	cr_assert_eq(iommu_map(d, 0x1000, host, K4, 0), -EINVAL);
	cr_assert_eq(iommu_map(d, 0x1000, host, K4, 4), -EINVAL);
	cr_assert_eq(iommu_map(d, 1ull << 48, host, K4, RW), -EINVAL);
	cr_assert_eq(iommu_map(d, (1ull << 48) - K4, host, 2 * K4, RW), -EINVAL);
	cr_assert_eq(iommu_map(d, 0x1000, host, UINT64_MAX & ~0xfffull, RW), -EINVAL);
	cr_assert_eq(iommu_unmap(d, 0x1000, 0), -EINVAL);
	cr_assert_eq(iommu_unmap(d, 0x1800, K4), -EINVAL);
	cr_assert_eq(iommu_unmap(d, (1ull << 48) - K4, 2 * K4), -EINVAL);
	cr_assert_eq(stats().maps, 0);
	/* The top page of the IOVA space is usable. */
	cr_assert_eq(iommu_map(d, (1ull << 48) - K4, host, K4, RW), 0);
	cr_assert_eq(xlate((1ull << 48) - 1, IOMMU_READ, 0, NULL), host + K4 - 1);
	xlate(1ull << 48, IOMMU_READ, -EFAULT, NULL);
	xlate(0, 0, -EINVAL, NULL);
	xlate(0, 8, -EINVAL, NULL);
}

Test(iommu_map, unmap_nothing_is_enoent)
{
	cr_assert_eq(iommu_unmap(d, 0x10000, K4), -ENOENT);
	cr_assert_eq(iommu_map(d, 0x10000, host, K4, RW), 0);
	cr_assert_eq(iommu_unmap(d, 0x11000, K4), -ENOENT);
	cr_assert_eq(iommu_unmap(d, 0x10000, K4), 0);
	cr_assert_eq(iommu_unmap(d, 0x10000, K4), -ENOENT);
	cr_assert_eq(stats().unmaps, 1);
}

Test(iommu_map, partial_block_unmap_changes_nothing)
{
	/* A range covering one page mapping whole but cutting a block
	 * fails as a whole: the page stays too. */
	cr_assert_eq(iommu_map(d, M2 - K4, host + M2 - K4, K4 + M2, RW), 0);
	cr_assert_eq(stats().pages_4k, 1);
	cr_assert_eq(stats().blocks_2m, 1);
	cr_assert_eq(iommu_unmap(d, M2 - K4, 2 * K4), -EINVAL);
	cr_assert_eq(stats().pages_4k, 1);
	cr_assert_eq(xlate(M2 - K4, IOMMU_READ, 0, NULL), host + M2 - K4);
	cr_assert_eq(iommu_unmap(d, M2 - K4, K4 + M2), 0);
	cr_assert_eq(stats().mapped_bytes, 0);
}

Test(iommu_map, iotlb_invalidated_on_unmap_and_remap)
{
	struct iommu_stats st;

	cr_assert_eq(iommu_map(d, 0x40000, host, K4, RW), 0);
	cr_assert_eq(xlate(0x40010, IOMMU_READ, 0, NULL), host + 0x10);
	st = stats();
	cr_assert_eq(xlate(0x40020, IOMMU_READ, 0, NULL), host + 0x20);
	cr_assert_eq(stats().iotlb_hits, st.iotlb_hits + 1, "second lookup hits");
	cr_assert_eq(iommu_unmap(d, 0x40000, K4), 0);
	xlate(0x40010, IOMMU_READ, -EFAULT, NULL);
	cr_assert_eq(iommu_map(d, 0x40000, host + 7 * K4, K4, IOMMU_READ), 0);
	cr_assert_eq(xlate(0x40010, IOMMU_READ, 0, NULL), host + 7 * K4 + 0x10);
	xlate(0x40010, IOMMU_WRITE, -EACCES, NULL);
	/* A block's entries too: cached through one page, gone after. */
	cr_assert_eq(iommu_map(d, 8 * M2, host + M2, M2, RW), 0);
	cr_assert_eq(xlate(8 * M2 + 0x3000, IOMMU_READ, 0, NULL), host + M2 + 0x3000);
	cr_assert_eq(xlate(8 * M2 + 0x3000, IOMMU_READ, 0, NULL), host + M2 + 0x3000);
	cr_assert_eq(iommu_unmap(d, 8 * M2, M2), 0);
	xlate(8 * M2 + 0x3000, IOMMU_READ, -EFAULT, NULL);
	cr_assert_eq(iommu_map(d, 8 * M2, host + 2 * M2, M2, RW), 0);
	cr_assert_eq(xlate(8 * M2 + 0x3000, IOMMU_READ, 0, NULL), host + 2 * M2 + 0x3000);
}

Test(iommu_map, iotlb_aliases_do_not_confuse)
{
	/* Pages that share an IOTLB slot (1024 slots) translate apart. */
	uint64_t a = 0x1000000, b = a + 1024 * K4;

	cr_assert_eq(iommu_map(d, a, host, K4, RW), 0);
	cr_assert_eq(iommu_map(d, b, host + K4, K4, RW), 0);
	for (int i = 0; i < 3; i++) {
		cr_assert_eq(xlate(a + 1, IOMMU_READ, 0, NULL), host + 1);
		cr_assert_eq(xlate(b + 1, IOMMU_READ, 0, NULL), host + K4 + 1);
	}
	cr_assert_eq(iommu_unmap(d, b, K4), 0);
	cr_assert_eq(xlate(a + 1, IOMMU_READ, 0, NULL), host + 1);
	xlate(b + 1, IOMMU_READ, -EFAULT, NULL);
}

Test(iommu_map, unmap_all_and_reuse)
{
	cr_assert_eq(iommu_map(d, 0, host, G1, RW), 0);
	cr_assert_eq(iommu_map(d, 5 * G1 + K4, host + G1, 3 * K4, RW), 0);
	cr_assert_eq(iommu_map(d, 100 * G1, host + 2 * G1, M2, RW), 0);
	cr_assert_eq(xlate(5, IOMMU_READ, 0, NULL), host + 5);
	iommu_unmap_all(d);
	cr_assert_eq(stats().mapped_bytes, 0);
	cr_assert_eq(stats().pages_4k + stats().blocks_2m + stats().blocks_1g, 0);
	xlate(5, IOMMU_READ, -EFAULT, NULL);
	xlate(5 * G1 + K4, IOMMU_READ, -EFAULT, NULL);
	xlate(100 * G1, IOMMU_READ, -EFAULT, NULL);
	iommu_unmap_all(d);
	cr_assert_eq(iommu_map(d, 5 * G1 + K4, host, 3 * K4, RW), 0);
	cr_assert_eq(xlate(5 * G1 + K4, IOMMU_READ, 0, NULL), host);
}

Test(iommu_map, many_pages_tables_come_and_go)
{
	/* Pages spread over many tables, unmapped in another order; the
	 * domain stays consistent and ASan sees no leak at destroy. */
	for (uint64_t i = 0; i < 300; i++)
		cr_assert_eq(iommu_map(d, i * 3 * M2 + (i % 7) * K4, host + i * K4, K4, RW), 0);
	cr_assert_eq(stats().pages_4k, 300);
	for (uint64_t i = 0; i < 300; i += 2)
		cr_assert_eq(iommu_unmap(d, i * 3 * M2 + (i % 7) * K4, K4), 0);
	for (uint64_t i = 0; i < 300; i++) {
		uint64_t iova = i * 3 * M2 + (i % 7) * K4;

		if (i % 2)
			cr_assert_eq(xlate(iova, IOMMU_READ, 0, NULL), host + i * K4);
		else
			xlate(iova, IOMMU_READ, -EFAULT, NULL);
	}
	cr_assert_eq(stats().pages_4k, 150);
}

Test(iommu_map, create_rejects_huge_fault_queue)
{
	struct iommu_domain_cfg cfg = { .name = NULL, .fault_depth = 1u << 30 };

	errno = 0;
	cr_assert_null(iommu_domain_create(&cfg));
	cr_assert_eq(errno, EINVAL);
	iommu_domain_destroy(NULL);
}

/* Two pages that share an IOTLB slot: one stays mapped and is translated
 * in a loop by one thread while another thread maps, translates and
 * unmaps the other.  The entry is rewritten constantly, yet a lookup never
 * returns the other page's host address or a stale one. */
struct contend {
	_Atomic int stop;
	_Atomic unsigned long bad, lookups;
};

#define SLOT_A 0x3000000ull
#define SLOT_B (SLOT_A + 1024 * K4)

static void *contend_reader(void *p)
{
	struct contend *c = p;

	while (!c->stop) {
		void *h = NULL;

		if (iommu_translate(d, SLOT_A + 64, IOMMU_READ, &h, NULL) || h != host + 64)
			c->bad++;
		c->lookups++;
	}
	return NULL;
}

Test(iommu_map, iotlb_slot_contention, .timeout = 60)
{
	struct contend c = { 0 };
	pthread_t t;

	cr_assert_eq(iommu_map(d, SLOT_A, host, K4, IOMMU_READ), 0);
	cr_assert_eq(pthread_create(&t, NULL, contend_reader, &c), 0);
	while (!c.lookups)
		sched_yield();
	/* Run until both sides have had plenty of turns. */
	for (int i = 0; i < 20000 || c.lookups < 200000; i++) {
		uint8_t *hb = host + (2 + i % 5) * K4;
		void *h;

		cr_assert_eq(iommu_map(d, SLOT_B, hb, K4, RW), 0);
		cr_assert_eq(iommu_translate(d, SLOT_B + 8, IOMMU_WRITE, &h, NULL), 0);
		cr_assert_eq(h, hb + 8);
		cr_assert_eq(iommu_unmap(d, SLOT_B, K4), 0);
		cr_assert_eq(iommu_translate(d, SLOT_B + 8, IOMMU_WRITE, &h, NULL), -EFAULT);
	}
	c.stop = 1;
	pthread_join(t, NULL);
	cr_assert_eq(c.bad, 0, "%lu of %lu lookups wrong", (unsigned long)c.bad,
		     (unsigned long)c.lookups);
	cr_assert_gt(c.lookups, 0);
}

Test(iommu_map, empty_tables_are_freed)
{
	cr_assert_eq(stats().tables, 1, "the root");
	cr_assert_eq(iommu_map(d, 0x1000, host, K4, RW), 0);
	cr_assert_eq(stats().tables, 4);
	cr_assert_eq(iommu_map(d, 0x2000, host, K4, RW), 0);
	cr_assert_eq(stats().tables, 4, "same last-level table");
	/* Past 512 GiB: a new level-1 and level-2 table, no level 3. */
	cr_assert_eq(iommu_map(d, 600 * G1 + M2, host, M2, RW), 0);
	cr_assert_eq(stats().tables, 6);
	cr_assert_eq(iommu_unmap(d, 0x1000, K4), 0);
	cr_assert_eq(stats().tables, 6, "0x2000 still uses them");
	cr_assert_eq(iommu_unmap(d, 0x2000, K4), 0);
	cr_assert_eq(stats().tables, 3);
	cr_assert_eq(iommu_unmap(d, 600 * G1 + M2, M2), 0);
	cr_assert_eq(stats().tables, 1);
	cr_assert_eq(iommu_map(d, 2 * G1, host, G1, RW), 0);
	cr_assert_eq(stats().tables, 2);
	iommu_unmap_all(d);
	cr_assert_eq(stats().tables, 1);
}

Test(iommu_map, allocation_failure_changes_nothing)
{
	/* Four pages straddling a 2 MiB boundary past 512 GiB, at a
	 * misaligned host address, need four new tables (levels 1, 2, and
	 * two at level 3); the second pair only after two pages are in. */
	uint64_t iova = 600 * G1 + M2 - 2 * K4;
	struct iommu_stats before;

	cr_assert_eq(iommu_map(d, 0x1000, host, K4, RW), 0);
	before = stats();
	for (unsigned int nth = 1; nth <= 4; nth++) {
		iommu_inject_alloc_failure(d, nth);
		cr_assert_eq(iommu_map(d, iova, host + K4, 4 * K4, RW), -ENOMEM, "nth %u", nth);
		cr_assert_eq(stats().tables, before.tables, "nth %u", nth);
		cr_assert_eq(stats().pages_4k, before.pages_4k);
		cr_assert_eq(stats().mapped_bytes, before.mapped_bytes);
		cr_assert_eq(stats().maps, before.maps);
		for (int i = 0; i < 4; i++)
			xlate(iova + i * K4, IOMMU_READ, -EFAULT, NULL);
	}
	iommu_inject_alloc_failure(d, 5);
	cr_assert_eq(iommu_map(d, iova, host + K4, 4 * K4, RW), 0);
	cr_assert_eq(stats().tables, before.tables + 4);
	cr_assert_eq(xlate(iova + 3 * K4, IOMMU_READ, 0, NULL), host + 4 * K4);
	cr_assert_eq(xlate(0x1000, IOMMU_READ, 0, NULL), host);
}

/* A domain with a page-table budget: a sparse map that would need more
 * tables than it allows is refused whole with ENOSPC, what fits goes in,
 * and the memory the tables cost is what the statistics say. */
Test(iommu_map, table_budget_refuses_and_changes_nothing)
{
	struct iommu_domain_cfg cfg = { .name = "budget", .max_table_bytes = 8 * IOMMU_TABLE_BYTES };
	struct iommu_domain *b = iommu_domain_create(&cfg);
	struct iommu_stats st;
	void *h;

	cr_assert_not_null(b);
	/* Root + one table per level below it: 4 tables for a page. */
	cr_assert_eq(iommu_map(b, 0x1000, host, K4, RW), 0);
	iommu_get_stats(b, &st);
	cr_assert_eq(st.tables, 4u);
	cr_assert_eq(st.table_bytes, 4 * IOMMU_TABLE_BYTES);
	/* Pages 512 GiB apart need three new tables each: one more fits
	 * (7 of 8), the next would need 10 and is refused, changing nothing. */
	cr_assert_eq(iommu_map(b, 512 * G1, host, K4, RW), 0);
	cr_assert_eq(iommu_map(b, 1024 * G1, host, K4, RW), -ENOSPC);
	iommu_get_stats(b, &st);
	cr_assert_eq(st.tables, 7u);
	cr_assert_eq(st.mapped_bytes, 2 * K4);
	cr_assert_eq(iommu_translate(b, 1024 * G1, IOMMU_READ, &h, NULL), -EFAULT);
	/* A 2 MiB-aligned host address takes a block: no leaf table. */
	cr_assert_eq(iommu_map(b, 0x200000, host + M2, M2, RW), 0);
	iommu_get_stats(b, &st);
	cr_assert_eq(st.blocks_2m, 1u);
	cr_assert_eq(st.tables, 7u);
	iommu_domain_destroy(b);
}

/* Threads mapping and unmapping interleaved pages that share tables: the
 * shared tables' use counts stay right (none freed under a neighbour,
 * all freed at the end). */
struct churner {
	unsigned int id;
	unsigned long bad;
};

static void *churn_thread(void *p)
{
	struct churner *c = p;

	for (unsigned int round = 0; round < 300; round++) {
		for (uint64_t i = c->id; i < 64; i += 4) {
			void *h;

			if (iommu_map(d, 0x200000 + i * K4, host + i * K4, K4, RW) ||
			    iommu_translate(d, 0x200000 + i * K4 + 1, IOMMU_READ, &h, NULL) ||
			    h != host + i * K4 + 1)
				c->bad++;
		}
		for (uint64_t i = c->id; i < 64; i += 4)
			if (iommu_unmap(d, 0x200000 + i * K4, K4))
				c->bad++;
	}
	return NULL;
}

Test(iommu_map, concurrent_map_unmap_share_tables, .timeout = 60)
{
	struct churner c[4];
	pthread_t t[4];

	for (unsigned int i = 0; i < 4; i++) {
		c[i] = (struct churner){ i, 0 };
		cr_assert_eq(pthread_create(&t[i], NULL, churn_thread, &c[i]), 0);
	}
	for (unsigned int i = 0; i < 4; i++) {
		pthread_join(t[i], NULL);
		cr_assert_eq(c[i].bad, 0, "thread %u", i);
	}
	cr_assert_eq(stats().mapped_bytes, 0);
	cr_assert_eq(stats().tables, 1);
	cr_assert_eq(stats().maps, 4 * 300 * 16);
	cr_assert_eq(stats().unmaps, 4 * 300 * 16);
}
