/* SPDX-License-Identifier: MIT */
/*
 * dirty.c: DMA dirty logging with VFIO DMA_LOGGING semantics.
 *
 * DOC: the log
 *
 * start() takes a set of disjoint IOVA ranges and a tracking page size and
 * gives each range a bitmap, one bit per tracking page.  DMA writes set
 * bits after their data has landed (dma.c), with no lock: a load first,
 * and an atomic OR only for bits not yet set, so rewriting a dirty page
 * costs no locked instruction.  report() may ask for any power-of-two page
 * size, as VFIO allows: each dirty tracking page sets every report bit it
 * overlaps (bits are replicated when the report page is smaller, merged
 * when it is larger).  Bits of the caller's bitmap are only ever set, as
 * in VFIO.  The log is cleared for tracking pages that lie wholly inside
 * the reported range; a tracking page only partly covered is reported but
 * kept, since losing a dirty page would be worse than sending it twice.
 * stop() unpublishes the log and frees it after an epoch wait, so a DMA
 * still marking it never touches freed memory.
 */
#include <stdlib.h>
#include <string.h>

#include "iommu/iommu_int.h"

/* Bitmaps are calloc'd up front; refuse logs that would need more. */
#define DIRTY_MAX_BITMAP_BYTES (256ull << 20)

static bool is_pow2(uint64_t v)
{
	return v && !(v & (v - 1));
}

/* The bits of [first, last] that fall in 64-bit word w (0 if none). */
static uint64_t word_mask(uint64_t first, uint64_t last, uint64_t w)
{
	unsigned int lo, hi;

	if (last < w * 64 || first > w * 64 + 63)
		return 0;
	lo = first > w * 64 ? (unsigned int)(first - w * 64) : 0;
	hi = last < w * 64 + 63 ? (unsigned int)(last - w * 64) : 63;
	return (~0ull >> (63 - hi)) & (~0ull << lo);
}

/* Set bits [first, last] of an atomic bitmap. */
static void bits_set_atomic(_Atomic uint64_t *bm, uint64_t first, uint64_t last)
{
	for (uint64_t w = first / 64; w <= last / 64; w++) {
		uint64_t m = word_mask(first, last, w);

		if ((atomic_load_explicit(&bm[w], memory_order_relaxed) & m) != m)
			atomic_fetch_or_explicit(&bm[w], m, memory_order_relaxed);
	}
}

static void bits_set(uint64_t *bm, uint64_t first, uint64_t last)
{
	for (uint64_t w = first / 64; w <= last / 64; w++)
		bm[w] |= word_mask(first, last, w);
}

/* First range whose end lies above iova (ranges are sorted, disjoint). */
static unsigned int range_find(const struct iommu_dirty *dl, uint64_t iova)
{
	unsigned int lo = 0, hi = dl->n;

	while (lo < hi) {
		unsigned int mid = lo + (hi - lo) / 2;

		if (dl->r[mid].end <= iova)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

void iommu_dirty_mark(struct iommu_dirty *dl, uint64_t iova, uint64_t len)
{
	uint64_t end = iova + len;

	for (unsigned int i = range_find(dl, iova); i < dl->n && dl->r[i].iova < end; i++) {
		const struct iommu_dirty_range *r = &dl->r[i];
		uint64_t s = iova > r->iova ? iova : r->iova;
		uint64_t e = end < r->end ? end : r->end;

		bits_set_atomic(r->bits, (s - r->iova) >> dl->shift, (e - 1 - r->iova) >> dl->shift);
	}
}

static void dirty_free(struct iommu_dirty *dl)
{
	if (!dl)
		return;
	for (unsigned int i = 0; i < dl->n; i++)
		free(dl->r[i].bits);
	free(dl);
}

static int range_cmp(const void *a, const void *b)
{
	const struct iommu_dirty_range *x = a, *y = b;

	return x->iova < y->iova ? -1 : x->iova > y->iova;
}

/* Copy, sort and check the ranges; total bitmap bytes in *bytes. */
static int dirty_ranges(struct iommu_dirty *dl, const struct iommu_range *ranges,
			uint64_t page_size, uint64_t *bytes)
{
	*bytes = 0;
	for (unsigned int i = 0; i < dl->n; i++) {
		const struct iommu_range *r = &ranges[i];

		if (!r->length || ((r->iova | r->length) & (page_size - 1)) ||
		    r->iova >= IOMMU_IOVA_END || r->length > IOMMU_IOVA_END - r->iova)
			return -EINVAL;
		dl->r[i].iova = r->iova;
		dl->r[i].end = r->iova + r->length;
		*bytes += ((r->length >> dl->shift) + 63) / 64 * 8;
	}
	qsort(dl->r, dl->n, sizeof(dl->r[0]), range_cmp);
	for (unsigned int i = 1; i < dl->n; i++)
		if (dl->r[i].iova < dl->r[i - 1].end)
			return -EINVAL;
	return *bytes > DIRTY_MAX_BITMAP_BYTES ? -ENOMEM : 0;
}

static int dirty_alloc(struct iommu_dirty *dl)
{
	for (unsigned int i = 0; i < dl->n; i++) {
		uint64_t bits = (dl->r[i].end - dl->r[i].iova) >> dl->shift;

		dl->r[i].bits = calloc((bits + 63) / 64, sizeof(uint64_t));
		if (!dl->r[i].bits)
			return -ENOMEM;
	}
	return 0;
}

static struct iommu_dirty *dirty_new(const struct iommu_range *ranges, unsigned int n,
				     uint64_t page_size, int *rc)
{
	struct iommu_dirty *dl = calloc(1, sizeof(*dl) + n * sizeof(dl->r[0]));
	uint64_t bytes;

	if (!dl) {
		*rc = -ENOMEM;
		return NULL;
	}
	dl->n = n;
	dl->shift = (unsigned int)__builtin_ctzll(page_size);
	*rc = dirty_ranges(dl, ranges, page_size, &bytes);
	if (!*rc)
		*rc = dirty_alloc(dl);
	if (*rc) {
		dirty_free(dl);
		return NULL;
	}
	return dl;
}

int iommu_dirty_start(struct iommu_domain *d, const struct iommu_range *ranges,
		      unsigned int nranges, uint64_t page_size)
{
	struct iommu_dirty *dl;
	int rc = 0;

	pthread_mutex_lock(&d->lock);
	if (atomic_load_explicit(&d->dirty, memory_order_relaxed)) {
		rc = -EBUSY;
	} else if (!ranges || !nranges || !is_pow2(page_size) ||
		   page_size < IOMMU_PAGE_SIZE || page_size >= IOMMU_IOVA_END) {
		rc = -EINVAL;
	} else if (nranges > IOMMU_DIRTY_MAX_RANGES) {
		rc = -E2BIG;
	} else {
		dl = dirty_new(ranges, nranges, page_size, &rc);
		if (dl)
			atomic_store_explicit(&d->dirty, dl, memory_order_release);
	}
	pthread_mutex_unlock(&d->lock);
	return rc;
}

/* One report: range r of log dl, window [iova, end), tracking pages
 * [t0, t1] of r meet it and [c0, c1) of those lie wholly inside. */
struct report {
	const struct iommu_dirty *dl;
	const struct iommu_dirty_range *r;
	uint64_t iova, end;
	uint64_t t0, t1, c0, c1;
	unsigned int pshift;
	uint64_t *bitmap;
};

/* Take tracking word w (clearing what may be cleared) and set the report
 * bits each of its dirty pages overlaps. */
static void report_word(const struct report *rp, uint64_t w)
{
	const struct iommu_dirty_range *r = rp->r;
	unsigned int shift = rp->dl->shift;
	uint64_t m = word_mask(rp->t0, rp->t1, w);
	uint64_t c = rp->c0 < rp->c1 ? word_mask(rp->c0, rp->c1 - 1, w) : 0;
	uint64_t v = c ? atomic_fetch_and_explicit(&r->bits[w], ~c, memory_order_relaxed)
		       : atomic_load_explicit(&r->bits[w], memory_order_relaxed);

	for (v &= m; v; v &= v - 1) {
		uint64_t t = w * 64 + (uint64_t)__builtin_ctzll(v);
		uint64_t ps = r->iova + (t << shift), pe = ps + (1ull << shift);

		ps = ps > rp->iova ? ps : rp->iova;
		pe = pe < rp->end ? pe : rp->end;
		bits_set(rp->bitmap, (ps - rp->iova) >> rp->pshift, (pe - 1 - rp->iova) >> rp->pshift);
	}
}

static void report_range(const struct iommu_dirty *dl, const struct iommu_dirty_range *r,
			 uint64_t iova, uint64_t end, unsigned int pshift, uint64_t *bitmap)
{
	struct report rp = { dl, r, iova, end, 0, 0, 0, 0, pshift, bitmap };

	rp.t0 = (iova - r->iova) >> dl->shift;
	rp.t1 = (end - 1 - r->iova) >> dl->shift;
	/* Only tracking pages wholly inside [iova, end) are cleared:
	 * [c0, c1) leaves out partly covered ones at either edge. */
	rp.c0 = rp.t0 + (r->iova + (rp.t0 << dl->shift) < iova);
	rp.c1 = rp.t1 + 1 - (r->iova + ((rp.t1 + 1) << dl->shift) > end);
	for (uint64_t w = rp.t0 / 64; w <= rp.t1 / 64; w++)
		report_word(&rp, w);
}

int iommu_dirty_report(struct iommu_domain *d, uint64_t iova, uint64_t length,
		       uint64_t page_size, uint64_t *bitmap)
{
	struct iommu_dirty *dl;
	unsigned int i;
	int rc = -EINVAL;

	if (!bitmap || !length || !is_pow2(page_size) || page_size < IOMMU_PAGE_SIZE ||
	    ((iova | length) & (page_size - 1)) || iova >= IOMMU_IOVA_END ||
	    length > IOMMU_IOVA_END - iova)
		return -EINVAL;
	pthread_mutex_lock(&d->lock);
	dl = atomic_load_explicit(&d->dirty, memory_order_relaxed);
	if (dl) {
		i = range_find(dl, iova);
		if (i < dl->n && dl->r[i].iova <= iova && iova + length <= dl->r[i].end) {
			report_range(dl, &dl->r[i], iova, iova + length,
				     (unsigned int)__builtin_ctzll(page_size), bitmap);
			rc = 0;
		}
	}
	pthread_mutex_unlock(&d->lock);
	return rc;
}

int iommu_dirty_stop(struct iommu_domain *d)
{
	struct iommu_dirty *dl;

	pthread_mutex_lock(&d->lock);
	dl = atomic_exchange_explicit(&d->dirty, NULL, memory_order_acq_rel);
	pthread_mutex_unlock(&d->lock);
	if (dl) {
		iommu_epoch_wait(d);
		dirty_free(dl);
	}
	return 0;
}
