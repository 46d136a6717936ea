// SPDX-License-Identifier: MIT
/*
 * A new partition's first COPY: 64 MiB from guest RAM into the VRAM of a
 * partition created just before, through the real device path (a vgpu
 * queue on the sim GPU's copy engine, doorbell eventfd to FENCE interrupt
 * eventfd), against memcpy of the same bytes into memory already touched
 * and against the host's own first-touch floor (memcpy into a memfd that
 * was just made, as the sim GPU makes each partition's VRAM).  Also what
 * making VRAM resident ahead of the first COPY would change: fallocate of
 * the window's file, or MADV_POPULATE_WRITE of its mapping, at attach.
 * Every repetition uses a new partition; the variants alternate so that
 * host noise hits them alike; medians and ranges are reported.  Prints one
 * Markdown section for docs/BENCHMARKS.md.
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "gpup/gpu/gpu.h"
#include "gpup/vgpu/vgpu.h"
#include "iommu/iommu.h"
#include "perf/perflib.h"
#include "uapi/gpup_vgpu.h"

#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23
#endif

#define MIB (1ull << 20)
#define SIZE (64 * MIB)
#define GPU_VRAM (8192 * MIB)
#define RAM_SIZE (SIZE + 2 * MIB)
#define RAM_IOVA 0x100000000ull
#define DATA_OFF (2 * MIB)
#define PI_OFF 0x10000u
#define DONE_OFF 0x10010u
#define ENTRIES 256u
#define REPS 7
#define TARGET 0.5

/* What the first COPY finds in a new partition's VRAM. */
enum prep { PREP_NONE, PREP_FALLOCATE, PREP_POPULATE, NPREP };

struct bench {
	struct gpup_gpu *gpu;
	struct iommu_domain *dom;
	uint8_t *ram;             /* guest RAM, mapped at RAM_IOVA */
	struct vgpu *v;
	int irq;
	uint32_t pi;
	double rss_gpu;           /* MiB resident that creating the GPU added */
};

/* Seconds per repetition of each measure. */
struct samples {
	double touched[REPS];       /* (a) memcpy into touched memory */
	double fresh4k[REPS];       /* (b) memcpy into a new memfd */
	double fresh_thp[REPS];     /* (b) the same, madvised MADV_HUGEPAGE */
	double anon_thp[REPS];      /* anonymous THP, for reference */
	double first[NPREP][REPS];  /* (c) the first COPY, after each prep */
	double prep[NPREP][REPS];   /* what the prep itself took */
	double second[REPS];        /* (d) a second COPY, same VRAM */
	double attach[REPS];        /* vgpu_create, window attach included */
	double prep_first[NPREP][REPS]; /* prep and first COPY together */
	long huge_vram, huge_thp, huge_anon; /* KiB mapped huge, last round */
	double rss_part;            /* MiB resident a new partition added */
};

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* Median, fastest and slowest of REPS times, as GB/s of SIZE bytes. */
static void rates(const double *t, double *med, double *lo, double *hi)
{
	double s[REPS];

	memcpy(s, t, sizeof(s));
	perf_sort(s, REPS);
	*med = (double)SIZE / s[REPS / 2] / 1e9;
	*lo = (double)SIZE / s[REPS - 1] / 1e9;
	*hi = (double)SIZE / s[0] / 1e9;
}

static double median_ms(const double *t)
{
	double s[REPS];

	memcpy(s, t, sizeof(s));
	perf_sort(s, REPS);
	return s[REPS / 2] * 1e3;
}

/* Resident memory of this process in MiB (shared memory included). */
static double rss_mib(void)
{
	long pages = 0, rss = 0;
	FILE *f = fopen("/proc/self/statm", "re");

	if (f && fscanf(f, "%ld %ld", &pages, &rss) != 2)
		rss = 0;
	if (f)
		fclose(f);
	return (double)rss * (double)sysconf(_SC_PAGESIZE) / (double)MIB;
}

/* KiB of the mapping holding p that are mapped as huge pages. */
static long huge_kib(const void *p)
{
	FILE *f = fopen("/proc/self/smaps", "re");
	char line[256];
	unsigned long lo, hi;
	long kib = 0, v;
	int in = 0;

	while (f && fgets(line, sizeof(line), f)) {
		if (sscanf(line, "%lx-%lx ", &lo, &hi) == 2)
			in = (uintptr_t)p >= lo && (uintptr_t)p < hi;
		else if (in && (sscanf(line, "ShmemPmdMapped: %ld", &v) == 1 ||
				sscanf(line, "FilePmdMapped: %ld", &v) == 1 ||
				sscanf(line, "AnonHugePages: %ld", &v) == 1))
			kib += v;
	}
	if (f)
		fclose(f);
	return kib;
}

/* The bracketed word of a sysfs choice file, or "unknown". */
static void sysfs_word(const char *path, char *out, size_t n)
{
	char buf[256] = "", *a, *b;
	FILE *f = fopen(path, "re");

	snprintf(out, n, "unknown");
	if (f && fgets(buf, sizeof(buf), f) && (a = strchr(buf, '[')) && (b = strchr(a, ']'))) {
		*b = '\0';
		snprintf(out, n, "%s", a + 1);
	}
	if (f)
		fclose(f);
}

/* size bytes of address space (PROT_NONE) at a 2 MiB boundary, where a
 * mapping can take huge pages, or NULL. */
static uint8_t *aligned_area(uint64_t size)
{
	uint8_t *p = mmap(NULL, size + 2 * MIB, PROT_NONE,
			  MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0), *base;

	if (p == MAP_FAILED)
		return NULL;
	base = (uint8_t *)(((uintptr_t)p + 2 * MIB - 1) & ~(uintptr_t)(2 * MIB - 1));
	if (base > p)
		munmap(p, (size_t)(base - p));
	munmap(base + size, (size_t)(p + 2 * MIB - base));
	return base;
}

static int wr(struct bench *b, uint32_t off, uint32_t val)
{
	return vgpu_bar0_write(b->v, off, &val, 4);
}

/* Guest RAM in a memfd at a 2 MiB aligned address, as a VMM maps it, all
 * touched: the COPY's source is never what is measured. */
static int setup(struct bench *b)
{
	struct gpup_gpu_cfg gc = { .vram_size = GPU_VRAM, .ncompute = 1, .ncopy = 1 };
	struct iommu_domain_cfg dc = { .name = "vram-perf" };
	int fd = memfd_create("vram-perf-ram", MFD_CLOEXEC);
	uint8_t *at = aligned_area(RAM_SIZE);
	double rss = rss_mib();

	b->gpu = gpup_sim_gpu_create(&gc);
	b->rss_gpu = rss_mib() - rss;
	b->dom = iommu_domain_create(&dc);
	b->irq = eventfd(0, EFD_CLOEXEC);
	if (fd < 0 || !at || !b->gpu || !b->dom || b->irq < 0 || ftruncate(fd, RAM_SIZE) < 0)
		return -1;
	b->ram = mmap(at, RAM_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_FIXED, fd, 0);
	close(fd);
	if (b->ram == MAP_FAILED)
		return -1;
	memset(b->ram, 0x5a, RAM_SIZE);
	return iommu_map(b->dom, RAM_IOVA, b->ram, RAM_SIZE, IOMMU_READ | IOMMU_WRITE);
}

/* A new partition: SIZE bytes of VRAM at offset 0, queue 0 on the copy
 * engine.  Returns the seconds vgpu_create took, or -1. */
static double partition_up(struct bench *b)
{
	struct vgpu_cfg vc = { .gpu = b->gpu, .vram_size = SIZE, .iommu = b->dom,
			       .name = "vram-perf" };
	uint32_t q = GPUP_REG_QUEUE(0);
	double t0 = now_s(), t;
	int r = 0;

	b->v = vgpu_create(&vc);
	t = now_s() - t0;
	if (!b->v || vgpu_set_irq_fd(b->v, 0, b->irq))
		return -1;
	b->pi = 0;
	__atomic_store_n((uint32_t *)(b->ram + PI_OFF), 0, __ATOMIC_RELEASE);
	r |= wr(b, GPUP_REG_CONTROL, GPUP_CTRL_ENABLE);
	r |= wr(b, q + GPUP_Q_RING_LO, (uint32_t)RAM_IOVA);
	r |= wr(b, q + GPUP_Q_RING_HI, (uint32_t)(RAM_IOVA >> 32));
	r |= wr(b, q + GPUP_Q_RING_ENTRIES, ENTRIES);
	r |= wr(b, q + GPUP_Q_ENGINE, GPUP_ENGINE_COPY);
	r |= wr(b, q + GPUP_Q_PI_ADDR_LO, (uint32_t)(RAM_IOVA + PI_OFF));
	r |= wr(b, q + GPUP_Q_PI_ADDR_HI, (uint32_t)(RAM_IOVA >> 32));
	r |= wr(b, q + GPUP_Q_CONTROL, GPUP_QCTL_ENABLE);
	return r ? -1 : t;
}

static void partition_down(struct bench *b)
{
	vgpu_destroy(b->v);
	b->v = NULL;
}

/* COPY guest RAM -> VRAM 0 and an interrupting FENCE: seconds from the
 * doorbell to the interrupt, or -1. */
static double copy_in(struct bench *b)
{
	union gpup_cmd c[2] = {
		{ .copy = { .hdr = { .opcode = GPUP_OP_COPY }, .src_space = GPUP_SPACE_IOVA,
			    .dst_space = GPUP_SPACE_VRAM, .src = RAM_IOVA + DATA_OFF,
			    .dst = 0, .len = SIZE } },
		{ .fence = { .hdr = { .opcode = GPUP_OP_FENCE, .flags = GPUP_FENCE_IRQ },
			     .space = GPUP_SPACE_IOVA, .addr = RAM_IOVA + DONE_OFF,
			     .value = b->pi } },
	};
	uint64_t one = 1, n;
	double t0;

	for (unsigned int i = 0; i < 2; i++)
		memcpy(b->ram + (b->pi + i) % ENTRIES * GPUP_CMD_SIZE, &c[i], GPUP_CMD_SIZE);
	b->pi += 2;
	__atomic_store_n((uint32_t *)(b->ram + PI_OFF), b->pi, __ATOMIC_RELEASE);
	t0 = now_s();
	if (write(vgpu_doorbell_fd(b->v, 0), &one, 8) != 8 || read(b->irq, &n, 8) != 8)
		return -1;
	return now_s() - t0;
}

/* Make the new window resident the way prep says; the seconds it took,
 * or -1. */
static double prepare(struct bench *b, enum prep p)
{
	uint8_t *vram = gpup_gpu_vram_map(b->gpu);
	int fd = gpup_gpu_vram_fd(b->gpu, 0), r = 0;
	double t0 = now_s();

	if (p == PREP_FALLOCATE)
		r = fallocate(fd, 0, 0, (off_t)SIZE);
	else if (p == PREP_POPULATE)
		r = madvise(vram, SIZE, MADV_POPULATE_WRITE);
	return r ? -1 : now_s() - t0;
}

static double timed_memcpy(uint8_t *dst, const uint8_t *src)
{
	double t0 = now_s();

	memcpy(dst, src, SIZE);
	__asm__ volatile("" : : "r"(dst) : "memory");
	return now_s() - t0;
}

/* memcpy into SIZE bytes of memory nobody has touched: a new memfd
 * (shared memory, as VRAM is) or private anonymous memory, madvised
 * MADV_HUGEPAGE if thp.  Seconds, or -1; *huge: KiB mapped huge. */
static double fresh_copy(const uint8_t *src, bool shared, bool thp, long *huge)
{
	uint8_t *at = aligned_area(SIZE), *p;
	int fd = shared ? memfd_create("vram-perf-fresh", MFD_CLOEXEC) : -1;
	double t = -1;

	if (!at || (shared && (fd < 0 || ftruncate(fd, SIZE) < 0)))
		goto out;
	p = mmap(at, SIZE, PROT_READ | PROT_WRITE, MAP_FIXED |
		 (shared ? MAP_SHARED : MAP_PRIVATE | MAP_ANONYMOUS), fd, 0);
	if (p == MAP_FAILED || madvise(p, SIZE, thp ? MADV_HUGEPAGE : MADV_NOHUGEPAGE))
		goto out;
	t = timed_memcpy(p, src);
	*huge = huge_kib(p);
out:
	if (at)
		munmap(at, SIZE);
	if (fd >= 0)
		close(fd);
	return t;
}

/* One repetition of everything, on a new partition per COPY measured. */
static int one_round(struct bench *b, struct samples *s, int i, bool thp)
{
	const uint8_t *src = b->ram + DATA_OFF;
	uint8_t *vram = gpup_gpu_vram_map(b->gpu);
	long huge;

	for (int p = 0; p < NPREP; p++) {
		double rss = rss_mib();

		s->attach[i] = partition_up(b);
		s->rss_part = rss_mib() - rss;
		s->prep[p][i] = s->attach[i] < 0 ? -1 : prepare(b, p);
		s->first[p][i] = s->prep[p][i] < 0 ? -1 : copy_in(b);
		if (s->first[p][i] < 0)
			return -1;
		s->prep_first[p][i] = s->prep[p][i] + s->first[p][i];
		if (p == PREP_NONE) {
			s->huge_vram = huge_kib(vram);
			s->second[i] = copy_in(b);
			s->touched[i] = timed_memcpy(vram, src);
		}
		partition_down(b);
	}
	s->fresh4k[i] = fresh_copy(src, true, false, &huge);
	s->fresh_thp[i] = thp ? fresh_copy(src, true, true, &s->huge_thp) : 1;
	s->anon_thp[i] = fresh_copy(src, false, true, &s->huge_anon);
	return s->second[i] < 0 || s->fresh4k[i] < 0 || s->fresh_thp[i] < 0 ||
	       s->anon_thp[i] < 0 ? -1 : 0;
}

/* One table row: median GB/s, range, and the median against (a). */
static void row(const char *what, const double *t, double base, const char *target)
{
	double med, lo, hi;

	rates(t, &med, &lo, &hi);
	printf("| %s | %.2f | %.2f - %.2f | %.2f | %s |\n", what, med, lo, hi, med / base, target);
}

static double median_rate(const double *t)
{
	double med, lo, hi;

	rates(t, &med, &lo, &hi);
	return med;
}

static void print_intro(const char *backing, const char *shmem, const char *anon)
{
	printf("## VRAM first touch: a new partition's first COPY\n\n");
	printf("COPY of 64 MiB from guest RAM into the VRAM of a partition attached just\n"
	       "before, through a vgpu queue on the sim GPU's copy engine (doorbell eventfd\n"
	       "to FENCE interrupt eventfd, as in the copy benchmark), against memcpy of the\n"
	       "same bytes into memory already touched (a) and into a memfd made just then\n"
	       "(b), which is what a new partition's VRAM is: (b) is the host's first-touch\n"
	       "floor, the kernel allocating and zeroing every page on its first write.\n"
	       "Each of the %d repetitions attaches a new partition for every COPY measured,\n"
	       "all measures alternating; medians, with the range.  New partitions here are\n"
	       "backed by **%s** pages (shmem_enabled: %s; anonymous THP: %s).\n"
	       "Command: `make bench` (perf/vram_perf.c).\n\n", REPS, backing, shmem, anon);
	printf("| measure, 64 MiB | GB/s, median | range | vs (a) | target |\n"
	       "| --- | ---: | ---: | ---: | --- |\n");
}

static void print_rows(const struct samples *s, double base, const char *backing, bool thp)
{
	char what[160];

	row("(a) memcpy into touched memory (the partition's VRAM after (d))", s->touched,
	    base, "-");
	row("(b) memcpy into a new memfd, 4 KiB pages", s->fresh4k, base, "-");
	if (thp) {
		snprintf(what, sizeof(what), "(b) memcpy into a new memfd, THP (%ld of %llu MiB "
			 "mapped huge)", s->huge_thp >> 10, SIZE / MIB);
		row(what, s->fresh_thp, base, "-");
	} else {
		printf("| (b) memcpy into a new memfd, THP | not offered by this host's "
		       "shmem_enabled | | | - |\n");
	}
	snprintf(what, sizeof(what), "anonymous memory, THP, for reference (%ld of %llu MiB "
		 "mapped huge)", s->huge_anon >> 10, SIZE / MIB);
	row(what, s->anon_thp, base, "-");
	snprintf(what, sizeof(what), "(c) first COPY into a new partition's VRAM (%s, %ld MiB "
		 "mapped huge)", backing, s->huge_vram >> 10);
	row(what, s->first[PREP_NONE], base, ">= 0.5");
	row("(d) second COPY into the same VRAM", s->second, base, "-");
	row("first COPY after fallocate() of the window's file at attach",
	    s->first[PREP_FALLOCATE], base, "-");
	row("fallocate() and that first COPY, timed together", s->prep_first[PREP_FALLOCATE],
	    base, "-");
	row("first COPY after MADV_POPULATE_WRITE of the window at attach",
	    s->first[PREP_POPULATE], base, "-");
	row("MADV_POPULATE_WRITE and that first COPY, timed together",
	    s->prep_first[PREP_POPULATE], base, "-");
}

static void print_verdict(const struct bench *b, const struct samples *s, double base,
			  const char *backing, bool thp)
{
	double first = median_rate(s->first[PREP_NONE]) / base;
	double floor4k = median_rate(s->fresh4k) / base;

	printf("\nFirst COPY into a new partition: **%.2f** of memcpy into touched memory "
	       "(target >= %.1f): **%s** with %s pages.  The host's first-touch floor is "
	       "%.2f with 4 KiB pages", first, TARGET, first >= TARGET ? "PASS" : "FAIL",
	       backing, floor4k);
	if (thp)
		printf(" and %.2f with THP", median_rate(s->fresh_thp) / base);
	printf(" (anonymous THP, for reference: %.2f); the COPY cannot beat the floor of the "
	       "pages it lands in.\n\n", median_rate(s->anon_thp) / base);
	printf("Making VRAM resident at attach instead: fallocate() of the 64 MiB window "
	       "takes %.1f ms (median) and the first COPY after it runs at %.2f of (a), %.2f "
	       "with the fallocate() counted; MADV_POPULATE_WRITE takes %.1f ms and the COPY "
	       "after it %.2f (%.2f counted).  Both allocate the whole window when it is "
	       "attached (all of an 8 GiB partition), so the sim GPU does neither: creating "
	       "its 8 GiB GPU added %.1f MiB of resident memory, attaching a 64 MiB partition "
	       "%.1f MiB, and a partition's VRAM costs memory as it is used.  Attach "
	       "(vgpu_create) took %.2f ms.\n",
	       median_ms(s->prep[PREP_FALLOCATE]), median_rate(s->first[PREP_FALLOCATE]) / base,
	       median_rate(s->prep_first[PREP_FALLOCATE]) / base,
	       median_ms(s->prep[PREP_POPULATE]), median_rate(s->first[PREP_POPULATE]) / base,
	       median_rate(s->prep_first[PREP_POPULATE]) / base, b->rss_gpu, s->rss_part,
	       median_ms(s->attach));
}

int main(void)
{
	struct bench b = { 0 };
	static struct samples s;
	char shmem[32], anon[32];
	const char *backing;
	bool thp;
	double base;

	/* The 2 MiB size's own control wins unless it defers (as sim.c reads it). */
	sysfs_word("/sys/kernel/mm/transparent_hugepage/hugepages-2048kB/shmem_enabled", shmem,
		   sizeof(shmem));
	if (!strcmp(shmem, "inherit") || !strcmp(shmem, "unknown"))
		sysfs_word("/sys/kernel/mm/transparent_hugepage/shmem_enabled", shmem,
			   sizeof(shmem));
	sysfs_word("/sys/kernel/mm/transparent_hugepage/enabled", anon, sizeof(anon));
	if (setup(&b) || partition_up(&b) < 0) {
		fprintf(stderr, "vram_perf: could not set up a sim GPU and a partition\n");
		return 1;
	}
	backing = gpup_vram_backing_name(gpup_gpu_vram_backing(b.gpu, 0));
	thp = gpup_gpu_vram_backing(b.gpu, 0) == GPUP_VRAM_BACKING_THP;
	partition_down(&b);
	for (int i = 0; i < REPS; i++)
		if (one_round(&b, &s, i, thp)) {
			fprintf(stderr, "vram_perf: a COPY or a memcpy could not run\n");
			return 1;
		}
	base = median_rate(s.touched);
	print_intro(backing, shmem, anon);
	print_rows(&s, base, backing, thp);
	print_verdict(&b, &s, base, backing, thp);
	iommu_domain_destroy(b.dom);
	gpup_gpu_destroy(b.gpu);
	return 0;
}
