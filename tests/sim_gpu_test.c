// SPDX-License-Identifier: MIT
/*
 * The sim GPU backend: VRAM that costs nothing until touched; partition
 * windows whose sealed file is the same memory as the daemon's mapping,
 * holds exactly the window, is released at detach and takes huge pages
 * where the host allows; the describe and engine lookups, reset, and
 * refusal of bad shapes.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "gpup/gpu/gpu.h"
#include "tests/testlib.h"

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

	cr_assert_not_null(g);
	cr_assert_eq(gpup_gpu_vram_attach(g, 4ull << 30, 4ull << 30), 0);
	cr_assert_lt(rss_kib() - before, 64 * 1024, "RSS grew by %ld KiB", rss_kib() - before);
	int fd = gpup_gpu_vram_fd(g, 4ull << 30);

	cr_assert_geq(fd, 0);
	cr_assert_eq(fstat(fd, &st), 0);
	cr_assert_eq((uint64_t)st.st_size, 4ull << 30, "the file holds exactly the window");
	cr_assert_eq(st.st_blocks, 0);
	gpup_gpu_destroy(g);
}

Test(sim_gpu, fd_and_mapping_are_the_same_memory)
{
	struct gpup_gpu_cfg cfg = { .vram_size = 4ull << 20, .ncompute = 1, .ncopy = 1 };
	struct gpup_gpu *g = gpup_sim_gpu_create(&cfg);
	const uint64_t off = 1ull << 20;
	uint64_t x = 0x0123456789abcdefull, y = 0;
	uint8_t *map = gpup_gpu_vram_map(g);

	cr_assert_eq(gpup_gpu_vram_attach(g, off, 2ull << 20), 0);
	int fd = gpup_gpu_vram_fd(g, off);

	memcpy(map + off + 3 * 4096 + 8, &x, 8);
	cr_assert_eq(pread(fd, &y, 8, 3 * 4096 + 8), 8);
	cr_assert_eq(y, x);
	x = 42;
	cr_assert_eq(pwrite(fd, &x, 8, 4096), 8);
	cr_assert_eq(memcmp(map + off + 4096, &x, 8), 0);
	memset(map, 0x11, 4096); /* outside the window */
	gpup_gpu_inject_fault(g, GPUP_GPU_OP_RESET | GPUP_GPU_OP_VRAM_FD, EIO);
	cr_assert_eq(gpup_gpu_reset(g), -EIO);
	cr_assert_eq(gpup_gpu_vram_fd(g, off), -EIO);
	cr_assert_eq(memcmp(map + off + 4096, &x, 8), 0, "a failed reset changed nothing");
	gpup_gpu_inject_fault(g, 0, 0);
	cr_assert_eq(gpup_gpu_vram_fd(g, off), fd);
	cr_assert_eq(gpup_gpu_reset(g), 0);
	for (size_t i = 0; i < 4ull << 20; i++)
		cr_assert_eq(map[i], 0, "reset zeroes VRAM (byte %zu)", i);
	cr_assert_eq(pread(fd, &y, 8, 4096), 8);
	cr_assert_eq(y, 0, "and the window's file");
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

Test(sim_gpu, attach_zeroes_exactly_the_window)
{
	struct gpup_gpu_cfg cfg = { .vram_size = 2ull << 20, .ncompute = 1, .ncopy = 1 };
	struct gpup_gpu *g = gpup_sim_gpu_create(&cfg);
	uint8_t *map = gpup_gpu_vram_map(g);
	struct { uint64_t off, len; } r[] = { { 4096, 8192 }, { 0, 4096 }, { 1ull << 20, 1ull << 20 },
					      { 0, 2ull << 20 } };

	for (size_t k = 0; k < sizeof(r) / sizeof(r[0]); k++) {
		memset(map, 0xcd, 2ull << 20);
		cr_assert_eq(gpup_gpu_vram_attach(g, r[k].off, r[k].len), 0);
		for (uint64_t i = 0; i < (2ull << 20); i++)
			cr_assert_eq(map[i], i >= r[k].off && i < r[k].off + r[k].len ? 0 : 0xcd,
				     "range %zu byte %lu", k, (unsigned long)i);
		memset(map + r[k].off, 0xee, r[k].len);
		gpup_gpu_vram_detach(g, r[k].off);
		for (uint64_t i = 0; i < (2ull << 20); i++)
			cr_assert_eq(map[i], i >= r[k].off && i < r[k].off + r[k].len ? 0 : 0xcd,
				     "detached: range %zu byte %lu", k, (unsigned long)i);
	}
	cr_assert_eq(gpup_gpu_vram_attach(g, 100, 4096), -EINVAL);
	cr_assert_eq(gpup_gpu_vram_attach(g, 0, 4097), -EINVAL);
	cr_assert_eq(gpup_gpu_vram_attach(g, 0, 0), -EINVAL);
	cr_assert_eq(gpup_gpu_vram_attach(g, 4096, 2ull << 20), -EINVAL);
	cr_assert_eq(gpup_gpu_vram_attach(g, UINT64_MAX - 4095, 4096), -EINVAL);
	cr_assert_eq(gpup_gpu_vram_attach(g, 8192, 8192), 0);
	cr_assert_eq(gpup_gpu_vram_attach(g, 4096, 8192), -EBUSY, "overlaps a window");
	cr_assert_eq(gpup_gpu_vram_attach(g, 12288, 4096), -EBUSY, "inside a window");
	cr_assert_eq(gpup_gpu_vram_attach(g, 16384, 4096), 0, "beside one");
	cr_assert_eq(gpup_gpu_vram_fd(g, 4096), -ENOENT, "no window starts there");
	gpup_gpu_inject_fault(g, GPUP_GPU_OP_VRAM_ATTACH, EIO);
	cr_assert_eq(gpup_gpu_vram_attach(g, 1ull << 20, 4096), -EIO);
	gpup_gpu_inject_fault(g, 0, 0);
	cr_assert_eq(gpup_gpu_vram_fd(g, 1ull << 20), -ENOENT, "a failed attach left nothing");
	gpup_gpu_vram_detach(g, 4096); /* nothing there: ignored */
	gpup_gpu_destroy(g); /* with two windows attached */
}

/* The window's file cannot change size, from the daemon or anyone it is
 * given to, and nothing can loosen that. */
Test(sim_gpu, a_window_file_is_sealed_to_its_size)
{
	struct gpup_gpu_cfg cfg = { .vram_size = 4ull << 20, .ncompute = 1, .ncopy = 1 };
	struct gpup_gpu *g = gpup_sim_gpu_create(&cfg);
	const int want = F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL;

	cr_assert_eq(gpup_gpu_vram_attach(g, 2ull << 20, 2ull << 20), 0);
	int fd = gpup_gpu_vram_fd(g, 2ull << 20);

	cr_assert_eq(fcntl(fd, F_GET_SEALS) & want, want);
	errno = 0;
	cr_assert_eq(ftruncate(fd, 4096), -1);
	cr_assert_eq(errno, EPERM);
	cr_assert_eq(ftruncate(fd, 4ull << 20), -1);
	cr_assert_eq(errno, EPERM);
	cr_assert_eq(fallocate(fd, 0, 2ull << 20, 4096), -1, "growing by fallocate");
	cr_assert_eq(errno, EPERM);
	cr_assert_eq(fcntl(fd, F_ADD_SEALS, F_SEAL_WRITE), -1);
	cr_assert_eq(errno, EPERM);
	gpup_gpu_destroy(g);
}

static bool resident(const uint8_t *p, size_t len)
{
	unsigned char vec[512];
	size_t pages = len / 4096;

	cr_assert_leq(pages, sizeof(vec));
	cr_assert_eq(mincore((void *)p, len, vec), 0);
	for (size_t i = 0; i < pages; i++)
		if (vec[i] & 1)
			return true;
	return false;
}

/* Detaching gives the pages back to the host at once, even while a
 * client still holds the file, and the file reaches nothing of the GPU
 * afterwards: not the range, and not the window attached there next. */
Test(sim_gpu, detach_releases_the_window)
{
	struct gpup_gpu_cfg cfg = { .vram_size = 4ull << 20, .ncompute = 1, .ncopy = 1 };
	struct gpup_gpu *g = gpup_sim_gpu_create(&cfg);
	const uint64_t off = 2ull << 20, len = 1ull << 20;
	uint8_t *map = gpup_gpu_vram_map(g), buf[4096];
	struct stat st, st2;

	cr_assert_eq(gpup_gpu_vram_attach(g, off, len), 0);
	int client = dup(gpup_gpu_vram_fd(g, off));

	memset(map + off, 0x5a, len);
	cr_assert(resident(map + off, len));
	cr_assert_eq(fstat(client, &st), 0);
	cr_assert_geq((uint64_t)st.st_blocks * 512, len);
	gpup_gpu_vram_detach(g, off);
	cr_assert_eq(gpup_gpu_vram_fd(g, off), -ENOENT);
	cr_assert_not(resident(map + off, len), "the daemon holds none of its pages");
	cr_assert_eq(fstat(client, &st), 0);
	cr_assert_eq(st.st_blocks, 0, "the kept file holds none either");
	cr_assert_eq(pread(client, buf, sizeof(buf), 0), (ssize_t)sizeof(buf));
	for (size_t i = 0; i < sizeof(buf); i++)
		cr_assert_eq(buf[i], 0);
	cr_assert_eq(gpup_gpu_vram_attach(g, off, len), 0);
	cr_assert_eq(fstat(gpup_gpu_vram_fd(g, off), &st2), 0);
	cr_assert_neq(st2.st_ino, st.st_ino, "the next window is another file");
	memset(buf, 0x77, sizeof(buf));
	cr_assert_eq(pwrite(client, buf, sizeof(buf), 0), (ssize_t)sizeof(buf));
	for (uint64_t i = 0; i < len; i++)
		cr_assert_eq(map[off + i], 0, "the old file reached the new window at %lu",
			     (unsigned long)i);
	close(client);
	gpup_gpu_destroy(g);
}

/* Kilobytes of a mapping's pages mapped as huge ones (smaps). */
static long pmd_mapped_kib(const uint8_t *p)
{
	FILE *f = fopen("/proc/self/smaps", "r");
	char line[256];
	bool in = false;
	long kib = 0, v;
	unsigned long lo, hi;

	cr_assert_not_null(f);
	while (fgets(line, sizeof(line), f)) {
		if (sscanf(line, "%lx-%lx ", &lo, &hi) == 2)
			in = (uintptr_t)p >= lo && (uintptr_t)p < hi;
		else if (in && (sscanf(line, "ShmemPmdMapped: %ld", &v) == 1 ||
				sscanf(line, "FilePmdMapped: %ld", &v) == 1))
			kib += v;
	}
	fclose(f);
	return kib;
}

/* A window of whole 2 MiB pages takes 2 MiB pages where the host gives
 * them to shmem, and says which it got; others take 4 KiB pages. */
Test(sim_gpu, backing_follows_the_host)
{
	struct gpup_gpu_cfg cfg = { .vram_size = 8ull << 20, .ncompute = 1, .ncopy = 1 };
	struct gpup_gpu *g = gpup_sim_gpu_create(&cfg);
	uint8_t *map = gpup_gpu_vram_map(g);
	bool thp = tl_host_shmem_thp();

	cr_assert_eq(gpup_gpu_vram_backing(g, 0), GPUP_VRAM_BACKING_NONE);
	cr_assert_eq(gpup_gpu_vram_backing_new(g),
		     thp ? GPUP_VRAM_BACKING_THP : GPUP_VRAM_BACKING_4K,
		     "what the next window of whole 2 MiB pages gets");
	cr_assert_eq(gpup_gpu_vram_attach(g, 2ull << 20, 4ull << 20), 0);
	cr_assert_eq(gpup_gpu_vram_attach(g, 4096, 8192), 0);
	cr_assert_eq(gpup_gpu_vram_backing(g, 4096), GPUP_VRAM_BACKING_4K, "not whole 2 MiB pages");
	cr_assert_eq(gpup_gpu_vram_backing(g, 2ull << 20),
		     thp ? GPUP_VRAM_BACKING_THP : GPUP_VRAM_BACKING_4K);
	cr_assert_str_eq(gpup_vram_backing_name(gpup_gpu_vram_backing(g, 2ull << 20)),
			 thp ? "thp-2m" : "4k");
	cr_assert_str_eq(gpup_vram_backing_name(GPUP_VRAM_BACKING_NONE), "none");
	if (thp) {
		memset(map + (2ull << 20), 1, 4ull << 20);
		cr_assert_gt(pmd_mapped_kib(map + (2ull << 20)), 0, "no page mapped huge");
	}
	gpup_gpu_destroy(g);
}
