// SPDX-License-Identifier: MIT
/*
 * A protected partition recovered (vgpu_recover) as its guest sees it:
 * the guest keeps running while its VRAM file, the one it has mapped as
 * BAR2, is rebuilt from the chain.  Whenever it reads during the
 * rebuild, every page must be either what it held before the failure or
 * what the chain holds: a page whose last write the checkpoint has must
 * read the same all along, not pass through zero or through an older
 * link's bytes.  The guest's look is forced at every write the recovery
 * makes to the file: this suite wraps pwrite and fallocate, so it reads
 * all of BAR2 right after each one.
 */
#include <criterion/criterion.h>
#include <dlfcn.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "gpup/gpu/gpu.h"
#include "gpup/vgpu/vgpu.h"
#include "iommu/iommu.h"
#include "uapi/gpup_vgpu.h"

#define PG 4096u
#define VRAM (64ull << 20)
#define PART (16ull << 20)
#define NP (PART / PG)
#define OFF_A (16ull << 20)
#define OFF_B (32ull << 20)
#define PFX "recover"

static struct gpup_gpu *ga, *gb;
static struct iommu_domain *dom;
static struct vgpu *v;
static struct vgpu_protect *prot;
static uint8_t *bar2;             /* the guest's view: the client's mapping */
static uint8_t *was, *want;       /* BAR2 at the failure; the last link's VRAM */
static char dir[64];

/* The guest's looks during a recovery: how many, and the first page
 * that was neither as before nor as the chain has it. */
static bool watching;
static unsigned int looks;
static char first_bad[200];

static void look(const char *after)
{
	looks++;
	for (uint64_t p = 0; p < NP && !first_bad[0]; p++)
		if (memcmp(bar2 + p * PG, was + p * PG, PG) &&
		    memcmp(bar2 + p * PG, want + p * PG, PG))
			snprintf(first_bad, sizeof(first_bad),
				 "after %s (write %u of the recovery), page %llu reads neither as "
				 "before nor as the chain holds it (first byte 0x%02x)", after, looks,
				 (unsigned long long)p, bar2[p * PG]);
}

ssize_t pwrite(int fd, const void *buf, size_t n, off_t off)
{
	ssize_t (*real)(int, const void *, size_t, off_t) = dlsym(RTLD_NEXT, "pwrite");
	ssize_t r = real(fd, buf, n, off);

	if (__atomic_load_n(&watching, __ATOMIC_ACQUIRE))
		look("a pwrite");
	return r;
}

int fallocate(int fd, int mode, off_t off, off_t len)
{
	int (*real)(int, int, off_t, off_t) = dlsym(RTLD_NEXT, "fallocate");
	int r = real(fd, mode, off, len);

	if (__atomic_load_n(&watching, __ATOMIC_ACQUIRE))
		look("a fallocate");
	return r;
}

static struct gpup_gpu *gpu(unsigned int index)
{
	struct gpup_gpu_cfg gc = { .index = index, .vram_size = VRAM, .ncompute = 1, .ncopy = 1 };
	struct gpup_gpu *g = gpup_sim_gpu_create(&gc);

	cr_assert_not_null(g);
	return g;
}

static void setup(void)
{
	struct iommu_domain_cfg dc = { .name = "recover" };

	snprintf(dir, sizeof(dir), "/tmp/gpup-recover-XXXXXX");
	cr_assert_not_null(mkdtemp(dir));
	ga = gpu(0);
	gb = gpu(1);
	dom = iommu_domain_create(&dc);
	cr_assert_not_null(dom);
	struct vgpu_cfg vc = { .gpu = ga, .vram_offset = OFF_A, .vram_size = PART, .iommu = dom,
			       .name = "recover", .type = "sim-16m-4" };

	v = vgpu_create(&vc);
	cr_assert_not_null(v);
	bar2 = mmap(NULL, PART, PROT_READ | PROT_WRITE, MAP_SHARED, gpup_gpu_vram_fd(ga, OFF_A), 0);
	cr_assert_neq(bar2, MAP_FAILED);
	prot = vgpu_protect_create(v, dir, PFX, 64);
	cr_assert_not_null(prot);
	was = malloc(PART);
	want = malloc(PART);
	cr_assert(was && want);
	watching = false;
	looks = 0;
	first_bad[0] = 0;
}

static void teardown(void)
{
	char cmd[128];

	vgpu_protect_destroy(prot);
	munmap(bar2, PART);
	vgpu_destroy(v);
	iommu_domain_destroy(dom);
	gpup_gpu_destroy(gb);
	gpup_gpu_destroy(ga);
	free(was);
	free(want);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	cr_assert_eq(system(cmd), 0);
}

TestSuite(vgpu_recover, .init = setup, .fini = teardown, .timeout = 60);

/* Pages [first, first + n) through BAR2, each unlike any other. */
static void store(uint64_t first, uint64_t n, uint8_t seed)
{
	for (uint64_t i = first * PG; i < (first + n) * PG; i++)
		bar2[i] = (uint8_t)(seed + i * 7 + (i >> 12) * 13);
}

static void take(bool base)
{
	struct vgpu_protect_link l;
	char err[256] = "";

	cr_assert_eq(vgpu_protect_take(prot, &l, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(l.base, base, "link %u: a base where an increment was meant, or back", l.index);
}

static void recover(void)
{
	struct vgpu_recover_stats st;
	char err[256] = "";

	gpup_gpu_fail(ga, GPUP_GPU_LOST);
	memcpy(was, bar2, PART);
	__atomic_store_n(&watching, true, __ATOMIC_RELEASE);
	cr_assert_eq(vgpu_recover(v, gb, OFF_B, 0, dir, PFX, &st, err, sizeof(err)), 0, "%s", err);
	__atomic_store_n(&watching, false, __ATOMIC_RELEASE);
	cr_assert_eq(st.links, 3);
}

/* A base, an increment that changes some of its pages and zeroes others,
 * one more, then stores after the last link, which the recovery rolls
 * back. */
Test(vgpu_recover, a_guest_reading_bar2_meanwhile_sees_each_page_as_it_was_or_as_restored)
{
	uint32_t status;

	store(0, 300, 1);
	take(true);
	store(10, 10, 2);
	memset(bar2 + 20 * PG, 0, 2 * PG);
	take(false);
	store(30, 10, 3);
	take(false);
	memcpy(want, bar2, PART);
	store(40, 10, 4);
	store(500, 2, 5);
	recover();
	cr_assert_gt(looks, 0, "the recovery wrote nothing a guest could see");
	cr_assert_eq(first_bad[0], 0, "%s", first_bad);
	cr_assert_eq(memcmp(bar2, want, PART), 0, "BAR2 does not hold the last link's VRAM");
	cr_assert_eq(vgpu_bar0_read(v, GPUP_REG_STATUS, &status, 4), 0);
	cr_assert(status & GPUP_STS_RECOVERED);
}
