// SPDX-License-Identifier: MIT
/*
 * The sim GPU backend: memfd VRAM that costs nothing until touched and is
 * the same memory through the fd and the daemon's mapping, the describe
 * and engine lookups, reset, and refusal of bad shapes.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "gpup/gpu/gpu.h"

static long rss_kib(void)
{
	FILE *f = fopen("/proc/self/statm", "r");
	long pages = 0, res = 0;

	cr_assert_not_null(f);
	cr_assert_eq(fscanf(f, "%ld %ld", &pages, &res), 2);
	fclose(f);
	return res * (sysconf(_SC_PAGESIZE) / 1024);
}

Test(sim_gpu, eight_gib_costs_nothing_until_touched)
{
	struct gpup_gpu_cfg cfg = { .index = 3, .vram_size = 8ull << 30, .ncompute = 1,
				    .ncopy = 1 };
	long before = rss_kib();
	struct gpup_gpu *g = gpup_sim_gpu_create(&cfg);
	struct stat st;
	uint64_t fdoff = 1;

	cr_assert_not_null(g);
	cr_assert_lt(rss_kib() - before, 64 * 1024, "RSS grew by %ld KiB", rss_kib() - before);
	int fd = gpup_gpu_vram_fd(g, &fdoff);

	cr_assert_geq(fd, 0);
	cr_assert_eq(fdoff, 0);
	cr_assert_eq(fstat(fd, &st), 0);
	cr_assert_eq((uint64_t)st.st_size, 8ull << 30);
	gpup_gpu_destroy(g);
}

Test(sim_gpu, fd_and_mapping_are_the_same_memory)
{
	struct gpup_gpu_cfg cfg = { .vram_size = 4ull << 20, .ncompute = 1, .ncopy = 1 };
	struct gpup_gpu *g = gpup_sim_gpu_create(&cfg);
	uint64_t fdoff, x = 0x0123456789abcdefull, y = 0;
	uint8_t *map = gpup_gpu_vram_map(g);
	int fd = gpup_gpu_vram_fd(g, &fdoff);

	memcpy(map + 3 * 4096 + 8, &x, 8);
	cr_assert_eq(pread(fd, &y, 8, (off_t)(fdoff + 3 * 4096 + 8)), 8);
	cr_assert_eq(y, x);
	x = 42;
	cr_assert_eq(pwrite(fd, &x, 8, (off_t)(fdoff + 4096)), 8);
	cr_assert_eq(memcmp(map + 4096, &x, 8), 0);
	gpup_gpu_inject_fault(g, GPUP_GPU_OP_RESET | GPUP_GPU_OP_VRAM_FD, EIO);
	cr_assert_eq(gpup_gpu_reset(g), -EIO);
	cr_assert_eq(gpup_gpu_vram_fd(g, &fdoff), -EIO);
	cr_assert_eq(memcmp(map + 4096, &x, 8), 0, "a failed reset changed nothing");
	gpup_gpu_inject_fault(g, 0, 0);
	cr_assert_eq(gpup_gpu_vram_fd(g, &fdoff), fd);
	cr_assert_eq(gpup_gpu_reset(g), 0);
	for (size_t i = 0; i < 4ull << 20; i++)
		cr_assert_eq(map[i], 0, "reset zeroes VRAM (byte %zu)", i);
	gpup_gpu_destroy(g);
}

Test(sim_gpu, describe_and_engines)
{
	struct gpup_gpu_cfg cfg = { .index = 7, .vram_size = 2ull << 20, .ncompute = 3,
				    .ncopy = 2 };
	struct gpup_gpu *g = gpup_sim_gpu_create(&cfg);
	struct gpup_gpu_desc d;

	cr_assert_not_null(g);
	gpup_gpu_describe(g, &d);
	cr_assert_str_eq(d.name, "gpu7");
	cr_assert_str_eq(d.model, "gpup sim GPU");
	cr_assert_str_eq(d.backend, "sim");
	cr_assert_eq(d.vram_size, 2ull << 20);
	cr_assert_eq(d.ncompute, 3);
	cr_assert_eq(d.ncopy, 2);
	for (unsigned int i = 0; i < 3; i++) {
		struct gpup_engine *e = gpup_gpu_engine(g, GPUP_ENGINE_KIND_COMPUTE, i);

		cr_assert_not_null(e);
		cr_assert_eq(gpup_engine_kind(e), GPUP_ENGINE_KIND_COMPUTE);
	}
	cr_assert_eq(gpup_engine_kind(gpup_gpu_engine(g, GPUP_ENGINE_KIND_COPY, 1)),
		     GPUP_ENGINE_KIND_COPY);
	cr_assert_neq(gpup_gpu_engine(g, GPUP_ENGINE_KIND_COPY, 0),
		      gpup_gpu_engine(g, GPUP_ENGINE_KIND_COPY, 1));
	cr_assert_null(gpup_gpu_engine(g, GPUP_ENGINE_KIND_COMPUTE, 3));
	cr_assert_null(gpup_gpu_engine(g, GPUP_ENGINE_KIND_COPY, 2));
	uint64_t t0 = gpup_gpu_clock_ns(g);

	usleep(1000);
	cr_assert_geq(gpup_gpu_clock_ns(g) - t0, 1000000ull);
	gpup_gpu_destroy(g);
}

Test(sim_gpu, bad_shapes_are_refused)
{
	struct gpup_gpu_cfg bad[] = {
		{ .vram_size = 0, .ncompute = 1, .ncopy = 1 },
		{ .vram_size = (2ull << 20) + 4096, .ncompute = 1, .ncopy = 1 },
		{ .vram_size = 2ull << 20, .ncompute = 0, .ncopy = 1 },
		{ .vram_size = 2ull << 20, .ncompute = 1, .ncopy = 0 },
		{ .vram_size = 2ull << 20, .ncompute = GPUP_GPU_MAX_ENGINES + 1, .ncopy = 1 },
	};

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		errno = 0;
		cr_assert_null(gpup_sim_gpu_create(&bad[i]), "%zu", i);
		cr_assert_eq(errno, EINVAL);
	}
	cr_assert_null(gpup_sim_gpu_create(NULL));
	gpup_gpu_destroy(NULL);
}

Test(sim_gpu, scrub_zeroes_exactly_the_range)
{
	struct gpup_gpu_cfg cfg = { .vram_size = 2ull << 20, .ncompute = 1, .ncopy = 1 };
	struct gpup_gpu *g = gpup_sim_gpu_create(&cfg);
	uint8_t *map = gpup_gpu_vram_map(g);
	struct { uint64_t off, len; } r[] = { { 100, 20000 }, { 4096, 8192 }, { 5, 7 },
					      { 0, 2ull << 20 } };

	for (size_t k = 0; k < sizeof(r) / sizeof(r[0]); k++) {
		memset(map, 0xcd, 2ull << 20);
		cr_assert_eq(gpup_gpu_vram_scrub(g, r[k].off, r[k].len), 0);
		for (uint64_t i = 0; i < (2ull << 20); i++)
			cr_assert_eq(map[i], i >= r[k].off && i < r[k].off + r[k].len ? 0 : 0xcd,
				     "range %zu byte %lu", k, (unsigned long)i);
	}
	cr_assert_eq(gpup_gpu_vram_scrub(g, 1, 2ull << 20), -EINVAL);
	cr_assert_eq(gpup_gpu_vram_scrub(g, UINT64_MAX, 2), -EINVAL);
	gpup_gpu_destroy(g);
}
