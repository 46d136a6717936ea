// SPDX-License-Identifier: MIT
/*
 * The host's floor for touching shared memory through a mapping entry
 * that does not exist yet, the cost behind one design rule of the device
 * side (docs/MIGRATION.md, "The device's side": only a reset punches
 * VRAM).  A memfd stands for a partition's VRAM file, with two shared
 * mappings of it: the daemon's and the VMM's (BAR2).  Timed, each run:
 *
 *   - the saver's zero check over every page through the daemon's
 *     mapping, its entries present;
 *   - the same pages punched out of the file, then read back through the
 *     VMM's mapping (what a guest's read-back through BAR2 does: each
 *     page allocated again, zeroed, and mapped there);
 *   - the zero check through the daemon's mapping again: its entries
 *     were zapped by the punch and are made anew, one page at a time;
 *   - the same bytes read with pread (the kernel's copy, no mapping)
 *     and checked in a small buffer;
 *   - memcpy of the same bytes between two buffers already mapped.
 *
 * Prints one Markdown section for docs/BENCHMARKS.md.
 */
#include <fcntl.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "perf/perflib.h"

#define SIZE (256ull << 20)
#define PAGE 4096u
#define RUNS 5
#define CHUNK (256u << 10)

enum step { S_WARM, S_READBACK, S_COLD, S_PREAD, S_MEMCPY, NSTEPS };

static const char *const step_name[NSTEPS] = {
	"zero check, the daemon's mapping with its entries",
	"punch, then read back through the VMM's mapping",
	"zero check, the daemon's mapping after that",
	"pread of the same bytes, then the zero check",
	"memcpy between two mapped buffers (baseline)",
};

static double now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

/* The saver's zero check of one page: eight words ORed at a time. */
static bool page_zero(const uint8_t *p)
{
	const uint64_t *w = (const uint64_t *)p;

	for (unsigned int i = 0; i < PAGE / 8; i += 8)
		if (w[i] | w[i + 1] | w[i + 2] | w[i + 3] | w[i + 4] | w[i + 5] | w[i + 6] |
		    w[i + 7])
			return false;
	return true;
}

/* Zero pages among n bytes at p; kept so that no check is left out. */
static volatile uint64_t sink;

static void check_all(const uint8_t *p, uint64_t n)
{
	uint64_t z = 0;

	for (uint64_t o = 0; o < n; o += PAGE)
		z += page_zero(p + o);
	sink += z;
}

/* One run of every step, in ms; 0 on success. */
static int one_run(int fd, uint8_t *daemon, uint8_t *vmm, uint8_t *a, uint8_t *b, double *ms)
{
	static uint8_t buf[CHUNK];
	volatile uint8_t s = 0;
	double t;

	memset(daemon, 0, SIZE); /* every page present in both mappings' file */
	check_all(daemon, SIZE);
	t = now_ms();
	check_all(daemon, SIZE);
	ms[S_WARM] = now_ms() - t;

	t = now_ms();
	if (fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 0, (off_t)SIZE) < 0)
		return -1;
	for (uint64_t o = 0; o < SIZE; o += PAGE)
		s += vmm[o];
	ms[S_READBACK] = now_ms() - t;

	t = now_ms();
	check_all(daemon, SIZE);
	ms[S_COLD] = now_ms() - t;

	t = now_ms();
	for (uint64_t o = 0; o < SIZE; o += CHUNK) {
		if (pread(fd, buf, CHUNK, (off_t)o) != (ssize_t)CHUNK)
			return -1;
		check_all(buf, CHUNK);
	}
	ms[S_PREAD] = now_ms() - t;

	t = now_ms();
	memcpy(b, a, SIZE);
	ms[S_MEMCPY] = now_ms() - t;
	sink += s + b[SIZE - 1];
	return 0;
}

int main(void)
{
	int fd = memfd_create("touch-perf", MFD_CLOEXEC);
	uint8_t *daemon, *vmm, *a, *b;
	double ms[NSTEPS][RUNS], row[NSTEPS];

	printf("## A page's first touch through a new mapping entry (the host's floor)\n\n");
	if (fd < 0 || ftruncate(fd, (off_t)SIZE) < 0) {
		printf("Not measured: no memfd of %llu MiB.\n", SIZE >> 20);
		return 1;
	}
	daemon = mmap(NULL, SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	vmm = mmap(NULL, SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	a = mmap(NULL, SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	b = mmap(NULL, SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (daemon == MAP_FAILED || vmm == MAP_FAILED || a == MAP_FAILED || b == MAP_FAILED) {
		printf("Not measured: cannot map %llu MiB.\n", SIZE >> 20);
		return 1;
	}
	memset(a, 0x5a, SIZE);
	memset(b, 0, SIZE);
	for (int r = 0; r < RUNS; r++) {
		double one[NSTEPS];

		if (one_run(fd, daemon, vmm, a, b, one)) {
			printf("Not measured: run %d failed (fallocate or pread).\n", r + 1);
			return 1;
		}
		for (int k = 0; k < NSTEPS; k++)
			ms[k][r] = one[k];
	}
	printf("A %llu MiB memfd stands for a partition's VRAM file, mapped shared twice: "
	       "the daemon's mapping and the VMM's (BAR2).  The zero check is the saver's "
	       "(eight words ORed at a time, per 4 KiB page).  %d runs; median and range, and "
	       "the median per page.\n\n"
	       "| step | ms (median) | range | µs per page |\n|---|---:|---:|---:|\n",
	       SIZE >> 20, RUNS);
	for (int k = 0; k < NSTEPS; k++) {
		row[k] = perf_median(ms[k], RUNS);
		printf("| %s | %.1f | %.1f–%.1f | %.2f |\n", step_name[k], row[k], ms[k][0],
		       ms[k][RUNS - 1], row[k] * 1e3 / (double)(SIZE / PAGE));
	}
	printf("\nThe zero check through entries made anew costs %.1fx the check through "
	       "entries present, and the read-back that made the pages again %.1fx; pread "
	       "copies through the kernel's own mapping and needs none (%.1fx).  Were every "
	       "FILL of zeros to punch, a guest that reads its VRAM back would pay the "
	       "read-back and the next save the check through new entries, so only a reset "
	       "punches (docs/MIGRATION.md, \"The device's side\").\n\nReproduce: `make build/perf/touch_perf && build/perf/touch_perf` "
	       "(also part of `make bench`).\n",
	       row[S_COLD] / row[S_WARM], row[S_READBACK] / row[S_WARM],
	       row[S_PREAD] / row[S_WARM]);
	return 0;
}
