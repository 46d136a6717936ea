// SPDX-License-Identifier: MIT
/*
 * iommu_perf: the IOMMU's hot paths, printed as the "## IOMMU" section of
 * docs/BENCHMARKS.md.  Each figure is the best of several runs of many
 * iterations timed with CLOCK_MONOTONIC; the DMA copy is compared with a
 * plain memcpy of the same buffers measured in the same run.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

#include "iommu/iommu.h"

#define K4 4096ull
#define RUNS 5
#define RW (IOMMU_READ | IOMMU_WRITE)

static double now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e9 + ts.tv_nsec;
}

/* Keep the compiler from dropping work whose result is unused. */
static void sink(const void *p)
{
	__asm__ volatile("" : : "r"(p) : "memory");
}

static void die(const char *what, int rc)
{
	fprintf(stderr, "iommu_perf: %s failed: %s\n", what, strerror(-rc));
	exit(1);
}

typedef void (*bench_fn)(struct iommu_domain *d, unsigned long n, void *arg);

/* Best time per unit of work over RUNS runs of n iterations. */
static double best_ns(bench_fn fn, struct iommu_domain *d, unsigned long n, void *arg)
{
	double best = 1e300;

	for (int r = 0; r < RUNS; r++) {
		double t0 = now_ns(), t;

		fn(d, n, arg);
		t = (now_ns() - t0) / n;
		if (t < best)
			best = t;
	}
	return best;
}

/* Four pages looked up in turn: always IOTLB hits after the first. */
static void run_hit(struct iommu_domain *d, unsigned long n, void *arg)
{
	uint64_t base = *(uint64_t *)arg;

	for (unsigned long i = 0; i < n; i++) {
		void *h;

		if (iommu_translate(d, base + (i & 3) * K4 + 8, IOMMU_READ, &h, NULL))
			die("translate", -EFAULT);
		sink(h);
	}
}

/* Two pages 1024 pages apart share an IOTLB slot: alternating between
 * them misses every time and walks all four levels. */
static void run_miss(struct iommu_domain *d, unsigned long n, void *arg)
{
	uint64_t base = *(uint64_t *)arg;

	for (unsigned long i = 0; i < n; i++) {
		void *h;

		if (iommu_translate(d, base + (i & 1) * 1024 * K4, IOMMU_READ, &h, NULL))
			die("translate", -EFAULT);
		sink(h);
	}
}

struct churn {
	uint8_t *host;
	unsigned long pages;
};

/* Map `pages` single 4 KiB pages, then unmap them one by one; n counts
 * map+unmap pairs. */
static void run_map_unmap(struct iommu_domain *d, unsigned long n, void *arg)
{
	struct churn *c = arg;
	int rc;

	for (unsigned long done = 0; done < n; done += c->pages) {
		for (unsigned long i = 0; i < c->pages; i++)
			if ((rc = iommu_map(d, 0x40000000 + i * K4, c->host + i * K4, K4, RW)))
				die("map", rc);
		for (unsigned long i = 0; i < c->pages; i++)
			if ((rc = iommu_unmap(d, 0x40000000 + i * K4, K4)))
				die("unmap", rc);
	}
}

/* One page mapped and unmapped again and again: its tables are emptied
 * and rebuilt every time. */
static void run_map_unmap_one(struct iommu_domain *d, unsigned long n, void *arg)
{
	struct churn *c = arg;
	int rc;

	for (unsigned long i = 0; i < n; i++) {
		if ((rc = iommu_map(d, 0x7000000000ull, c->host, K4, RW)))
			die("map", rc);
		if ((rc = iommu_unmap(d, 0x7000000000ull, K4)))
			die("unmap", rc);
	}
}

struct copy {
	uint8_t *src, *dst;
	size_t len;
	uint64_t iova;
};

static void run_dma_read(struct iommu_domain *d, unsigned long n, void *arg)
{
	struct copy *c = arg;
	int rc;

	for (unsigned long i = 0; i < n; i++) {
		if ((rc = iommu_dma_read(d, c->iova, c->dst, c->len)))
			die("dma_read", rc);
		sink(c->dst);
	}
}

static void run_memcpy(struct iommu_domain *d, unsigned long n, void *arg)
{
	struct copy *c = arg;

	(void)d;
	for (unsigned long i = 0; i < n; i++) {
		memcpy(c->dst, c->src, c->len);
		sink(c->dst);
	}
}

/* The DMA and its memcpy baseline alternate run by run, so that noise
 * from other work on the machine hits both alike. */
static void bench_copy(struct iommu_domain *d, uint8_t *src, size_t len, unsigned long n,
		       double *dma, double *cpy)
{
	struct copy c = { src, aligned_alloc(64, len), len, 0x10000000 };

	if (!c.dst)
		die("alloc", -ENOMEM);
	memset(c.dst, 1, len);
	*cpy = *dma = 1e300;
	for (int r = 0; r < 2 * RUNS; r++) {
		double t0 = now_ns(), t;

		(r & 1 ? run_dma_read : run_memcpy)(d, n, &c);
		t = (now_ns() - t0) / n;
		if (r & 1)
			*dma = t < *dma ? t : *dma;
		else
			*cpy = t < *cpy ? t : *cpy;
	}
	free(c.dst);
}

static const char *verdict(int met)
{
	return met ? "met" : "missed";
}

int main(void)
{
	struct iommu_domain *d = iommu_domain_create(NULL);
	size_t host_len = 8ull << 20;
	uint8_t *host = mmap(NULL, host_len, PROT_READ | PROT_WRITE,
			     MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	uint64_t base = 0x10000000;
	struct churn ch = { host, 1024 };
	double hit, miss, mu, mu1, dma4, cpy4, dma64, cpy64, dma1m, cpy1m;
	int rc;

	if (!d || host == MAP_FAILED)
		die("setup", -ENOMEM);
	memset(host, 0x3c, host_len);
	/* 4 KiB pages over the first 8 MiB of IOVA at base (no blocks:
	 * the host offset breaks 2 MiB alignment). */
	if ((rc = iommu_map(d, base, host + K4, host_len - 2 * 1024 * 1024, IOMMU_READ)))
		die("map", rc);
	hit = best_ns(run_hit, d, 20000000, &base);
	miss = best_ns(run_miss, d, 2000000, &base);
	mu = best_ns(run_map_unmap, d, 1024 * 256, &ch);
	mu1 = best_ns(run_map_unmap_one, d, 200000, &ch);
	bench_copy(d, host + K4, 4096, 500000, &dma4, &cpy4);
	bench_copy(d, host + K4, 65536, 30000, &dma64, &cpy64);
	bench_copy(d, host + K4, 1 << 20, 2000, &dma1m, &cpy1m);

	printf("## IOMMU\n\n");
	printf("One domain, one thread.  `iommu_translate` of four pages in turn "
	       "(IOTLB hits), of two pages that share an IOTLB slot (every lookup "
	       "misses and walks the four-level table), `iommu_map` + `iommu_unmap` "
	       "of single 4 KiB pages (1024 mapped, then unmapped one by one; and one "
	       "page whose tables are emptied and rebuilt each time), and "
	       "`iommu_dma_read` against a plain `memcpy` of the same buffers in the "
	       "same run, runs alternating.  The pages behind the DMA are host-contiguous, "
	       "so it is one copy after translation; its extra cost is one IOTLB "
	       "lookup per page and, mostly, the full fence that opens the in-flight "
	       "section an unmap waits for (it lets the previous copy's stores drain), "
	       "which small copies feel and large ones do not.  Best of %d runs each, "
	       "CLOCK_MONOTONIC.\n\n", RUNS);
	printf("| measure | result | target | verdict |\n");
	printf("| --- | ---: | ---: | --- |\n");
	printf("| translate, IOTLB hit | %.1f ns/op | <= 10 ns | %s |\n", hit, verdict(hit <= 10));
	printf("| translate, IOTLB miss (table walk) | %.1f ns/op | - | - |\n", miss);
	printf("| map + unmap of 4 KiB pages, 1024 at a time | %.2f M/s | >= 2 M/s | %s |\n",
	       1e3 / mu, verdict(1e3 / mu >= 2));
	printf("| map + unmap of one 4 KiB page, tables rebuilt | %.2f M/s | - | - |\n", 1e3 / mu1);
	printf("| dma_read 4 KiB vs memcpy (%.0f vs %.0f ns) | %.2f of memcpy | - | - |\n",
	       dma4, cpy4, cpy4 / dma4);
	printf("| dma_read 64 KiB vs memcpy (%.0f vs %.0f ns) | %.2f of memcpy | - | - |\n",
	       dma64, cpy64, cpy64 / dma64);
	printf("| dma_read 1 MiB vs memcpy (%.0f vs %.0f ns) | %.2f of memcpy | - | - |\n",
	       dma1m, cpy1m, cpy1m / dma1m);
	iommu_domain_destroy(d);
	munmap(host, host_len);
	return 0;
}
