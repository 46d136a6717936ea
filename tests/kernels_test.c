// SPDX-License-Identifier: MIT
/*
 * The built-in kernels against plain C references written from the ABI's
 * definitions, bit for bit: random inputs, odd sizes that leave partial
 * work-groups, launches preempted after every work-group and resumed, and
 * argument checking (alignment, windows, overflow).
 */
#pragma GCC optimize("fp-contract=off")

#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "gpup/gpu/gpu.h"

#define VRAM_SIZE (8u << 20)

static uint8_t *vram;
static uint64_t rng = 0x9e3779b97f4a7c15ull;

static uint64_t rnd(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return rng;
}

/* Floats of mixed sign and magnitude, so rounding order matters. */
static float rndf(void)
{
	return ((float)(rnd() % 2000001) - 1000000.0f) / (float)(1 + rnd() % 1000);
}

static void fill_f32(uint64_t off, uint64_t n)
{
	float *p = (float *)(vram + off);

	for (uint64_t i = 0; i < n; i++)
		p[i] = rndf();
}

static void setup(void)
{
	vram = aligned_alloc(4096, VRAM_SIZE);
	cr_assert_not_null(vram);
	for (size_t i = 0; i < VRAM_SIZE; i++)
		vram[i] = (uint8_t)rnd();
}

static void teardown(void)
{
	free(vram);
}

TestSuite(kernels, .init = setup, .fini = teardown);

static uint64_t f32bits(float f)
{
	uint32_t u;

	memcpy(&u, &f, 4);
	return u;
}

/* Run a launch either whole or one work-group per step (a deadline already
 * past), counting the steps. */
static uint64_t run(uint32_t id, const uint64_t args[6], bool preempt)
{
	struct gpup_kernel_run k;
	uint64_t fa, steps = 0;

	cr_assert_eq(gpup_kernel_prepare(&k, id, args, VRAM_SIZE, &fa), 0);
	while (!gpup_kernel_step(&k, vram, preempt ? 0 : GPUP_KERNEL_NO_DEADLINE))
		steps++;
	cr_assert(gpup_kernel_done(&k));
	return steps + 1;
}

static void ref_saxpy(uint64_t n, float a, const float *x, float *y)
{
	for (uint64_t i = 0; i < n; i++) {
		float p = a * x[i];

		y[i] = p + y[i];
	}
}

Test(kernels, saxpy_matches_reference)
{
	uint64_t sizes[] = { 0, 1, 7, 16383, 16384, 40001 };

	for (int pre = 0; pre < 2; pre++) {
		for (size_t s = 0; s < sizeof(sizes) / sizeof(sizes[0]); s++) {
			uint64_t n = sizes[s], x = 4, y = 4 + 4 * n + 12;
			float a = rndf();
			uint64_t args[6] = { n, f32bits(a), x, y };

			fill_f32(x, n);
			fill_f32(y, n);
			float *ref = malloc(4 * n + 4);

			memcpy(ref, vram + y, 4 * n);
			ref_saxpy(n, a, (float *)(vram + x), ref);
			run(GPUP_KERNEL_SAXPY, args, pre);
			cr_assert_eq(memcmp(ref, vram + y, 4 * n), 0, "n=%lu", (unsigned long)n);
			free(ref);
		}
	}
}

static void ref_gemm(uint64_t m, uint64_t n, uint64_t k, const float *A, const float *B,
		     float *C)
{
	for (uint64_t i = 0; i < m; i++) {
		for (uint64_t j = 0; j < n; j++) {
			float s = 0.0f;

			for (uint64_t p = 0; p < k; p++) {
				float prod = A[i * k + p] * B[p * n + j];

				s = s + prod;
			}
			C[i * n + j] = s;
		}
	}
}

Test(kernels, gemm_matches_reference)
{
	uint64_t shapes[][3] = { { 1, 1, 1 }, { 3, 5, 7 }, { 17, 65, 33 }, { 9, 130, 1 },
				 { 4, 3, 0 } };

	for (int pre = 0; pre < 2; pre++) {
		for (size_t s = 0; s < sizeof(shapes) / sizeof(shapes[0]); s++) {
			uint64_t m = shapes[s][0], n = shapes[s][1], k = shapes[s][2];
			uint64_t A = 0, B = 4 * m * k + 64, C = B + 4 * k * n + 64;
			uint64_t args[6] = { m, n, k, A, B, C };

			fill_f32(A, m * k);
			fill_f32(B, k * n);
			float *ref = malloc(4 * m * n);

			ref_gemm(m, n, k, (float *)(vram + A), (float *)(vram + B), ref);
			uint64_t steps = run(GPUP_KERNEL_GEMM, args, pre);

			cr_assert_eq(memcmp(ref, vram + C, 4 * m * n), 0);
			if (pre && m * n != 0)
				cr_assert_eq(steps, m * ((n + 63) / 64), "one step per group");
			free(ref);
		}
	}
}

static float ref_reduce(uint64_t n, const float *x)
{
	float total = 0.0f;

	for (uint64_t b = 0; b < n; b += GPUP_REDUCE_BLOCK) {
		float s = 0.0f;

		for (uint64_t i = b; i < n && i < b + GPUP_REDUCE_BLOCK; i++)
			s = s + x[i];
		total = total + s;
	}
	return total;
}

Test(kernels, reduce_matches_reference)
{
	uint64_t sizes[] = { 0, 1, 255, 256, 257, 4096, 4097, 100003 };

	for (int pre = 0; pre < 2; pre++) {
		for (size_t s = 0; s < sizeof(sizes) / sizeof(sizes[0]); s++) {
			uint64_t n = sizes[s], x = 256, out = 0;
			uint64_t args[6] = { n, x, out };

			fill_f32(x, n);
			float want = ref_reduce(n, (float *)(vram + x)), got;

			run(GPUP_KERNEL_REDUCE, args, pre);
			memcpy(&got, vram + out, 4);
			cr_assert_eq(f32bits(got), f32bits(want), "n=%lu", (unsigned long)n);
		}
	}
}

static uint64_t ref_fnv(const uint8_t *p, uint64_t len)
{
	uint64_t h = 0xcbf29ce484222325ull;

	for (uint64_t i = 0; i < len; i++)
		h = (h ^ p[i]) * 0x100000001b3ull;
	return h;
}

Test(kernels, checksum_matches_reference)
{
	uint64_t sizes[] = { 0, 1, 3, 65535, 65536, 65537, 300001 };
	uint64_t got;

	/* The published FNV-1a 64 vector for "a". */
	vram[4096] = 'a';
	uint64_t one[6] = { 1, 4096, 0 };

	run(GPUP_KERNEL_CHECKSUM, one, false);
	memcpy(&got, vram, 8);
	cr_assert_eq(got, 0xaf63dc4c8601ec8cull);
	for (int pre = 0; pre < 2; pre++) {
		for (size_t s = 0; s < sizeof(sizes) / sizeof(sizes[0]); s++) {
			uint64_t args[6] = { sizes[s], 4097, 8 };

			run(GPUP_KERNEL_CHECKSUM, args, pre);
			memcpy(&got, vram + 8, 8);
			cr_assert_eq(got, ref_fnv(vram + 4097, sizes[s]));
		}
	}
}

Test(kernels, render_matches_reference_and_keeps_stride_padding)
{
	uint32_t w = 37, h = 19, frame = 1234567;
	uint64_t stride = w * 4 + 12, fb = 8192;

	for (int pre = 0; pre < 2; pre++) {
		uint64_t args[6] = { w, h, stride, fb, frame + pre };
		uint8_t *before = malloc(stride * h);

		memcpy(before, vram + fb, stride * h);
		run(GPUP_KERNEL_RENDER, args, pre);
		for (uint32_t y = 0; y < h; y++) {
			const uint32_t *row = (const uint32_t *)(vram + fb + y * stride);

			for (uint32_t x = 0; x < w; x++)
				cr_assert_eq(row[x], gpup_render_pixel(x, y, frame + pre));
			cr_assert_eq(memcmp(vram + fb + y * stride + w * 4,
					    before + y * stride + w * 4, 12), 0, "padding kept");
		}
		free(before);
	}
}

Test(kernels, spin_uses_engine_time_and_resumes)
{
	uint64_t args[6] = { 2000000 };
	struct gpup_kernel_run k;
	uint64_t fa, t0 = gpup_thread_cpu_ns();

	cr_assert_eq(gpup_kernel_prepare(&k, GPUP_KERNEL_SPIN, args, VRAM_SIZE, &fa), 0);
	cr_assert_not(gpup_kernel_step(&k, vram, 0), "preempted after one group");
	cr_assert_eq(k.acc, 50000);
	while (!gpup_kernel_step(&k, vram, 0))
		;
	cr_assert_eq(k.acc, 2000000);
	cr_assert_geq(gpup_thread_cpu_ns() - t0, 2000000);
}

static int prep(uint32_t id, uint64_t a0, uint64_t a1, uint64_t a2, uint64_t a3,
		uint64_t a4, uint64_t a5, uint64_t *fa)
{
	uint64_t args[6] = { a0, a1, a2, a3, a4, a5 };
	struct gpup_kernel_run k;

	return gpup_kernel_prepare(&k, id, args, VRAM_SIZE, fa);
}

Test(kernels, bad_arguments_fault_with_culprit)
{
	uint64_t fa;

	cr_assert_eq(prep(GPUP_KERNEL_MAX, 0, 0, 0, 0, 0, 0, &fa), GPUP_FAULT_BAD_KERNEL);
	cr_assert_eq(fa, GPUP_KERNEL_MAX);
	cr_assert_eq(prep(GPUP_KERNEL_SAXPY, 4, 0, 2, 64, 0, 0, &fa), GPUP_FAULT_BAD_ARGS);
	cr_assert_eq(fa, 2);
	cr_assert_eq(prep(GPUP_KERNEL_SAXPY, 4, 0, 0, VRAM_SIZE - 12, 0, 0, &fa),
		     GPUP_FAULT_VRAM_RANGE);
	cr_assert_eq(fa, VRAM_SIZE - 12);
	cr_assert_eq(prep(GPUP_KERNEL_SAXPY, 4, 0, 0, VRAM_SIZE - 16, 0, 0, &fa), 0);
	/* n * 4 wraps: must not pass as a small range. */
	cr_assert_eq(prep(GPUP_KERNEL_SAXPY, 1ull << 62, 0, 0, 0, 0, 0, &fa),
		     GPUP_FAULT_VRAM_RANGE);
	cr_assert_eq(prep(GPUP_KERNEL_GEMM, 1ull << 40, 1ull << 40, 1, 0, 0, 0, &fa),
		     GPUP_FAULT_BAD_ARGS);
	cr_assert_eq(prep(GPUP_KERNEL_GEMM, 2, 2, 2, 0, 16, UINT64_MAX - 3, &fa),
		     GPUP_FAULT_VRAM_RANGE);
	cr_assert_eq(fa, UINT64_MAX - 3);
	cr_assert_eq(prep(GPUP_KERNEL_REDUCE, 8, 0, 2, 0, 0, 0, &fa), GPUP_FAULT_BAD_ARGS);
	cr_assert_eq(prep(GPUP_KERNEL_CHECKSUM, 16, VRAM_SIZE - 15, 0, 0, 0, 0, &fa),
		     GPUP_FAULT_VRAM_RANGE);
	cr_assert_eq(prep(GPUP_KERNEL_CHECKSUM, 16, 0, 4, 0, 0, 0, &fa), GPUP_FAULT_BAD_ARGS);
	cr_assert_eq(prep(GPUP_KERNEL_RENDER, 16, 16, 60, 0, 0, 0, &fa), GPUP_FAULT_BAD_ARGS);
	cr_assert_eq(prep(GPUP_KERNEL_RENDER, 1ull << 32, 1, 0, 0, 0, 0, &fa),
		     GPUP_FAULT_BAD_ARGS);
	cr_assert_eq(prep(GPUP_KERNEL_RENDER, 16, 2, 64, VRAM_SIZE - 64, 0, 0, &fa),
		     GPUP_FAULT_VRAM_RANGE);
	cr_assert_eq(prep(GPUP_KERNEL_RENDER, 16, 1ull << 31, 1ull << 40, 0, 0, 0, &fa),
		     GPUP_FAULT_VRAM_RANGE);
	cr_assert_eq(prep(GPUP_KERNEL_RENDER, 16, 2, 64, VRAM_SIZE - 128, 0, 0, &fa), 0);
}

Test(kernels, faulted_launch_writes_nothing)
{
	struct gpup_kernel_run k;
	uint64_t fa, args[6] = { 8, 0, 0, VRAM_SIZE - 4 };
	uint8_t *copy = malloc(VRAM_SIZE);

	memcpy(copy, vram, VRAM_SIZE);
	cr_assert_eq(gpup_kernel_prepare(&k, GPUP_KERNEL_SAXPY, args, VRAM_SIZE, &fa),
		     GPUP_FAULT_VRAM_RANGE);
	cr_assert(gpup_kernel_done(&k), "a rejected launch has no work left");
	cr_assert(gpup_kernel_step(&k, vram, 0));
	cr_assert_eq(memcmp(copy, vram, VRAM_SIZE), 0);
	free(copy);
}
