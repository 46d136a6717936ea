// SPDX-License-Identifier: MIT
/* iommu: DMA dirty logging with VFIO DMA_LOGGING semantics: start with
 * ranges and a page size, report (and clear) bitmaps at any page size,
 * stop; only DMA writes that land mark pages. */
#include <criterion/criterion.h>
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "iommu/iommu.h"

#define K4 (4ull << 10)
#define M2 (2ull << 20)
#define RW (IOMMU_READ | IOMMU_WRITE)
#define HOST_SIZE (16 * M2)

static struct iommu_domain *d;
static uint8_t *host;

static void setup(void)
{
	d = iommu_domain_create(NULL);
	cr_assert_not_null(d);
	host = mmap(NULL, HOST_SIZE, PROT_READ | PROT_WRITE,
		    MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	cr_assert_neq(host, MAP_FAILED);
	/* IOVA [0, 32 MiB) maps the host area page by page. */
	cr_assert_eq(iommu_map(d, 0, host, HOST_SIZE, RW), 0);
}

static void teardown(void)
{
	iommu_domain_destroy(d);
	munmap(host, HOST_SIZE);
}

TestSuite(iommu_dirty, .init = setup, .fini = teardown);

static void wr(uint64_t iova, size_t len)
{
	static uint8_t junk[3 * M2];

	cr_assert_leq(len, sizeof(junk));
	cr_assert_eq(iommu_dma_write(d, iova, junk, len), 0);
}

/* Expect exactly the listed bits (terminated by -1) in nbits bits. */
static void expect_bits(const uint64_t *bm, uint64_t nbits, const int64_t *set)
{
	uint64_t want[64] = { 0 };

	cr_assert_leq(nbits, 64 * 64);
	for (; *set >= 0; set++)
		want[*set / 64] |= 1ull << (*set % 64);
	for (uint64_t w = 0; w < (nbits + 63) / 64; w++)
		cr_assert_eq(bm[w], want[w], "word %llu: %#llx, want %#llx",
			     (unsigned long long)w, (unsigned long long)bm[w],
			     (unsigned long long)want[w]);
}

Test(iommu_dirty, bitmap_at_4k_exact_and_cleared)
{
	struct iommu_range r = { 0x100000, 64 * K4 };
	uint64_t bm[1] = { 0 };
	uint8_t tmp[64];

	cr_assert_eq(iommu_dirty_start(d, &r, 1, K4), 0);
	wr(0x100000, 1);                       /* page 0 */
	wr(0x105ffc, 8);                       /* pages 5 and 6 */
	cr_assert_eq(iommu_dma_store64(d, 0x13fff8, 1), 0); /* page 63 */
	cr_assert_eq(iommu_dma_read(d, 0x10a000, tmp, sizeof(tmp)), 0); /* a read: no */
	wr(0x140000, K4);                      /* outside the range */
	wr(0xff000, K4 + 1);                   /* straddles into page 0 again */
	cr_assert_eq(iommu_dirty_report(d, 0x100000, 64 * K4, K4, bm), 0);
	expect_bits(bm, 64, (const int64_t[]){ 0, 5, 6, 63, -1 });
	/* Reported pages are cleared. */
	bm[0] = 0;
	cr_assert_eq(iommu_dirty_report(d, 0x100000, 64 * K4, K4, bm), 0);
	cr_assert_eq(bm[0], 0);
	/* Bits already in the caller's bitmap are never cleared. */
	wr(0x102000, 2 * K4);
	bm[0] = 1ull << 40;
	cr_assert_eq(iommu_dirty_report(d, 0x100000, 64 * K4, K4, bm), 0);
	expect_bits(bm, 64, (const int64_t[]){ 2, 3, 40, -1 });
	cr_assert_eq(iommu_dirty_stop(d), 0);
}

Test(iommu_dirty, sub_range_report_clears_only_what_it_reports)
{
	struct iommu_range r = { 0, 128 * K4 };
	uint64_t bm[2] = { 0 };

	cr_assert_eq(iommu_dirty_start(d, &r, 1, K4), 0);
	wr(3 * K4, 10);
	wr(70 * K4, 10);
	wr(127 * K4 + 100, 10);
	/* Pages 64..127 only: bit 0 is page 64. */
	cr_assert_eq(iommu_dirty_report(d, 64 * K4, 64 * K4, K4, bm), 0);
	expect_bits(bm, 64, (const int64_t[]){ 6, 63, -1 });
	memset(bm, 0, sizeof(bm));
	cr_assert_eq(iommu_dirty_report(d, 0, 128 * K4, K4, bm), 0);
	expect_bits(bm, 128, (const int64_t[]){ 3, -1 });
}

Test(iommu_dirty, bitmap_at_2m)
{
	struct iommu_range r = { 0, 16 * M2 };
	uint64_t bm[1] = { 0 };

	cr_assert_eq(iommu_dirty_start(d, &r, 1, M2), 0);
	wr(0x1000, 1);
	wr(2 * M2 - 4, 8);     /* tracking pages 1 and 2 */
	wr(5 * M2 + 12345, 1);
	wr(15 * M2, M2);       /* exactly page 15 */
	cr_assert_eq(iommu_dirty_report(d, 0, 16 * M2, M2, bm), 0);
	expect_bits(bm, 16, (const int64_t[]){ 0, 1, 2, 5, 15, -1 });
	bm[0] = 0;
	cr_assert_eq(iommu_dirty_report(d, 0, 16 * M2, M2, bm), 0);
	cr_assert_eq(bm[0], 0);
	/* A 2 MiB report window inside the range. */
	wr(9 * M2 + 5, 1);
	cr_assert_eq(iommu_dirty_report(d, 8 * M2, 4 * M2, M2, bm), 0);
	expect_bits(bm, 4, (const int64_t[]){ 1, -1 });
}

Test(iommu_dirty, report_page_size_differs_from_tracking)
{
	struct iommu_range r = { 0, 8 * M2 };
	uint64_t bm[64] = { 0 };

	/* 2 MiB tracking reported at 4 KiB: each dirty 2 MiB page sets
	 * its 512 bits. */
	cr_assert_eq(iommu_dirty_start(d, &r, 1, M2), 0);
	wr(M2 + 7, 1);
	cr_assert_eq(iommu_dirty_report(d, 0, 4 * M2, K4, bm), 0);
	for (unsigned int w = 0; w < 32; w++)
		cr_assert_eq(bm[w], w >= 8 && w < 16 ? ~0ull : 0, "word %u", w);
	/* Reported at 4 KiB over half a tracking page: shown, not cleared. */
	wr(4 * M2, 1);
	memset(bm, 0, sizeof(bm));
	cr_assert_eq(iommu_dirty_report(d, 4 * M2, M2 / 2, K4, bm), 0);
	for (unsigned int w = 0; w < 4; w++)
		cr_assert_eq(bm[w], ~0ull);
	cr_assert_eq(bm[4], 0);
	memset(bm, 0, sizeof(bm));
	cr_assert_eq(iommu_dirty_report(d, 0, 8 * M2, M2, bm), 0);
	expect_bits(bm, 8, (const int64_t[]){ 4, -1 });
	cr_assert_eq(iommu_dirty_stop(d), 0);

	/* 4 KiB tracking reported at 2 MiB: dirty pages merge. */
	cr_assert_eq(iommu_dirty_start(d, &r, 1, K4), 0);
	wr(3 * M2 + 5 * K4, 1);
	wr(3 * M2 + 9 * K4, 1);
	wr(6 * M2 - 1, 1);
	memset(bm, 0, sizeof(bm));
	cr_assert_eq(iommu_dirty_report(d, 0, 8 * M2, M2, bm), 0);
	expect_bits(bm, 8, (const int64_t[]){ 3, 5, -1 });
	memset(bm, 0, sizeof(bm));
	cr_assert_eq(iommu_dirty_report(d, 0, 8 * M2, K4, bm), 0);
	cr_assert_eq(bm[0] | bm[7], 0, "all cleared by the 2 MiB report");
}

Test(iommu_dirty, several_ranges)
{
	/* Given out of order: [16 MiB, 20 MiB) and 16 pages at 64 KiB. */
	struct iommu_range r[2] = { { 8 * M2, 2 * M2 }, { 0x10000, 16 * K4 } };
	uint64_t bm[16] = { 0 };

	cr_assert_eq(iommu_dirty_start(d, r, 2, K4), 0);
	/* One DMA crossing the end of the low range and the gap. */
	wr(0x10000 + 15 * K4, 2 * K4);
	wr(8 * M2 - K4, 2 * K4); /* gap page, then page 0 of range 1 */
	wr(10 * M2 - 1, 1);      /* last page of range 1 (page 1023) */
	cr_assert_eq(iommu_dirty_report(d, 0x10000, 16 * K4, K4, bm), 0);
	expect_bits(bm, 16, (const int64_t[]){ 15, -1 });
	memset(bm, 0, sizeof(bm));
	cr_assert_eq(iommu_dirty_report(d, 8 * M2, 2 * M2, K4, bm), 0);
	expect_bits(bm, 1024, (const int64_t[]){ 0, 1023, -1 });
	/* Straddling both, or the gap: not inside one range. */
	cr_assert_eq(iommu_dirty_report(d, 0x10000, 10 * M2, K4, bm), -EINVAL);
	cr_assert_eq(iommu_dirty_report(d, 0x30000, K4, K4, bm), -EINVAL);
}

Test(iommu_dirty, only_landed_writes_mark)
{
	struct iommu_range r = { 0, HOST_SIZE + 4 * K4 };
	struct iommu_sg sg[2] = { { 2 * K4, host + M2, 10 }, { 9 * K4, host + M2, 10 } };
	uint8_t b[16] = { 0 };
	uint64_t bm[1] = { 0 };

	cr_assert_eq(iommu_map(d, HOST_SIZE + K4, host, K4, IOMMU_READ), 0);
	cr_assert_eq(iommu_dirty_start(d, &r, 1, K4), 0);
	/* Faulted writes (unmapped tail, read-only page) mark nothing. */
	cr_assert_eq(iommu_dma_write(d, HOST_SIZE - K4, b, 2 * K4), -EFAULT);
	cr_assert_eq(iommu_dma_write(d, HOST_SIZE + K4, b, 8), -EACCES);
	cr_assert_eq(iommu_dma_store64(d, HOST_SIZE + K4, 1), -EACCES);
	cr_assert_eq(iommu_dma_writev(d, sg, 2), 0);
	cr_assert_eq(iommu_dirty_report(d, 0, 64 * K4, K4, bm), 0);
	expect_bits(bm, 64, (const int64_t[]){ 2, 9, -1 });
	bm[0] = 0;
	cr_assert_eq(iommu_dirty_report(d, HOST_SIZE - 32 * K4, 36 * K4, K4, bm), 0);
	cr_assert_eq(bm[0], 0);
}

Test(iommu_dirty, start_twice_and_bad_ranges)
{
	struct iommu_range ok = { 0, M2 };
	struct iommu_range over[2] = { { 0, 2 * K4 }, { K4, K4 } };
	struct iommu_range zero = { 0, 0 };
	struct iommu_range unal = { K4, M2 };
	struct iommu_range wrap = { (1ull << 48) - K4, 2 * K4 };
	struct iommu_range huge = { 0, 1ull << 47 };

	cr_assert_eq(iommu_dirty_start(d, over, 2, K4), -EINVAL);
	cr_assert_eq(iommu_dirty_start(d, &zero, 1, K4), -EINVAL);
	cr_assert_eq(iommu_dirty_start(d, &unal, 1, M2), -EINVAL);
	cr_assert_eq(iommu_dirty_start(d, &wrap, 1, K4), -EINVAL);
	cr_assert_eq(iommu_dirty_start(d, &ok, 1, 3 * K4), -EINVAL);
	cr_assert_eq(iommu_dirty_start(d, &ok, 1, 2048), -EINVAL);
	cr_assert_eq(iommu_dirty_start(d, &ok, 0, K4), -EINVAL);
	cr_assert_eq(iommu_dirty_start(d, NULL, 1, K4), -EINVAL);
	cr_assert_eq(iommu_dirty_start(d, &ok, IOMMU_DIRTY_MAX_RANGES + 1, K4), -E2BIG);
	cr_assert_eq(iommu_dirty_start(d, &huge, 1, K4), -ENOMEM);
	/* None of that started anything. */
	uint64_t bm[8] = { 0 };
	cr_assert_eq(iommu_dirty_report(d, 0, M2, K4, bm), -EINVAL);
	cr_assert_eq(iommu_dirty_start(d, &ok, 1, K4), 0);
	cr_assert_eq(iommu_dirty_start(d, &ok, 1, K4), -EBUSY);
	cr_assert_eq(iommu_dirty_start(d, over, 2, K4), -EBUSY);
	/* Report arguments. */
	cr_assert_eq(iommu_dirty_report(d, 0, 0, K4, bm), -EINVAL);
	cr_assert_eq(iommu_dirty_report(d, 100, K4, K4, bm), -EINVAL);
	cr_assert_eq(iommu_dirty_report(d, 0, K4, 3000, bm), -EINVAL);
	cr_assert_eq(iommu_dirty_report(d, 0, K4, K4, NULL), -EINVAL);
	cr_assert_eq(iommu_dirty_report(d, M2 - K4, 2 * K4, K4, bm), -EINVAL);
	cr_assert_eq(iommu_dirty_report(d, 0, M2, K4, bm), 0);
}

Test(iommu_dirty, stop_ends_logging_and_restart_is_fresh)
{
	struct iommu_range r = { 0, 64 * K4 };
	uint64_t bm[1] = { 0 };

	cr_assert_eq(iommu_dirty_stop(d), 0, "stop without start is harmless");
	cr_assert_eq(iommu_dirty_start(d, &r, 1, K4), 0);
	wr(K4, 1);
	cr_assert_eq(iommu_dirty_stop(d), 0);
	cr_assert_eq(iommu_dirty_report(d, 0, 64 * K4, K4, bm), -EINVAL);
	wr(2 * K4, 1); /* not logging: no trace */
	cr_assert_eq(iommu_dirty_start(d, &r, 1, K4), 0);
	wr(3 * K4, 1);
	cr_assert_eq(iommu_dirty_report(d, 0, 64 * K4, K4, bm), 0);
	expect_bits(bm, 64, (const int64_t[]){ 3, -1 });
}

/* Start/report/stop cycling while another thread writes: every write that
 * completed inside a logging window is reported by that window's reports,
 * and nothing touches a freed log (ASan). */
struct writer {
	_Atomic int stop;
	_Atomic uint64_t n;
};

static void *writer_thread(void *p)
{
	struct writer *w = p;
	uint8_t b[64] = { 1 };

	while (!w->stop) {
		uint64_t page = w->n % 64;

		cr_assert_eq(iommu_dma_write(d, page * K4 + 100, b, sizeof(b)), 0);
		w->n++;
	}
	return NULL;
}

Test(iommu_dirty, stop_while_writing, .timeout = 60)
{
	struct iommu_range r = { 0, 64 * K4 };
	struct writer w = { 0 };
	pthread_t t;

	cr_assert_eq(pthread_create(&t, NULL, writer_thread, &w), 0);
	for (int i = 0; i < 200; i++) {
		uint64_t bm[1] = { 0 }, n0;

		cr_assert_eq(iommu_dirty_start(d, &r, 1, K4), 0);
		n0 = w.n;
		while (w.n < n0 + 130)
			sched_yield();
		cr_assert_eq(iommu_dirty_report(d, 0, 64 * K4, K4, bm), 0);
		/* 130 writes in a row cover all 64 pages. */
		cr_assert_eq(bm[0], ~0ull);
		cr_assert_eq(iommu_dirty_stop(d), 0);
	}
	w.stop = 1;
	pthread_join(t, NULL);
}
