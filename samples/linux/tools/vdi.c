// SPDX-License-Identifier: MIT
/*
 * gpup-vdi: samples/vdi.c's display loop as a Linux program.  Renders
 * frames into a VRAM framebuffer with the RENDER kernel at a target rate,
 * sleeping until each deadline, and checks every pixel of every frame
 * through the VRAM mapping, as a scan-out would read them.  Missed
 * deadlines are reported, not failed.
 *
 * Arguments: w=, h= (default 320x200), fps= (default 60), frames= (30).
 */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "gpup.h"

#define TIMEOUT_NS 5000000000ull

static int check_frame(const struct gpup_buf *fb, uint32_t w, uint32_t h, uint32_t frame)
{
	for (uint32_t y = 0; y < h; y++) {
		const volatile uint32_t *row = (const volatile uint32_t *)fb->map + (size_t)y * w;

		for (uint32_t x = 0; x < w; x++)
			if (row[x] != gpup_render_pixel(x, y, frame)) {
				printf("vdi: frame %u pixel (%u,%u) = 0x%08x, expected 0x%08x\n",
				       frame, x, y, row[x], gpup_render_pixel(x, y, frame));
				return -1;
			}
	}
	return 0;
}

static void sleep_until(uint64_t deadline)
{
	struct timespec ts = { .tv_sec = (time_t)(deadline / 1000000000ull),
			       .tv_nsec = (long)(deadline % 1000000000ull) };

	while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL))
		;
}

int main(int argc, char **argv)
{
	uint32_t w = (uint32_t)gpup_arg_u64(argc, argv, "w", 320);
	uint32_t h = (uint32_t)gpup_arg_u64(argc, argv, "h", 200);
	uint64_t fps = gpup_arg_u64(argc, argv, "fps", 60), worst = 0, total = 0, start;
	uint32_t frames = (uint32_t)gpup_arg_u64(argc, argv, "frames", 30), missed = 0;
	struct gpup_dev d;
	struct gpup_buf fb;
	int q, rc;

	if (!w || !h || w > 8192 || h > 8192 || !fps || fps > 1000 || !frames) {
		printf("vdi: want w,h in 1..8192, fps in 1..1000, frames >= 1\n");
		return 3;
	}
	rc = gpup_open(&d, NULL);
	q = rc ? rc : gpup_queue(&d, GPUP_ENGINE_COMPUTE);
	rc = q < 0 ? q : gpup_buf_alloc(&d, &fb, (uint64_t)w * h * 4, GPUP_DOMAIN_VRAM);
	if (rc) {
		printf("vdi: no usable vGPU (%s)\n", strerror(-rc));
		return 2;
	}
	start = gpup_now_ns();
	for (uint32_t f = 0; f < frames; f++) {
		uint64_t deadline = start + (f + 1) * (1000000000ull / fps), t0 = gpup_now_ns();
		uint64_t args[5] = { w, h, (uint64_t)w * 4, gpup_addr(&fb, 0), f };
		union gpup_cmd k = gpup_cmd_kernel(GPUP_KERNEL_RENDER, args, 5);

		rc = gpup_run(&d, (uint32_t)q, &k, 1, TIMEOUT_NS);
		if (rc) {
			printf("vdi: frame %u: device error %s\n", f, strerror(-rc));
			return 5;
		}
		if (check_frame(&fb, w, h, f))
			return 4;
		t0 = gpup_now_ns() - t0;
		total += t0;
		worst = t0 > worst ? t0 : worst;
		if (gpup_now_ns() > deadline)
			missed++;
		sleep_until(deadline);
	}
	printf("vdi: %ux%u, %u frames at %llu fps: frame time avg %llu us, max %llu us, "
	       "%u deadline(s) missed\n", w, h, frames, (unsigned long long)fps,
	       (unsigned long long)(total / frames / 1000), (unsigned long long)(worst / 1000),
	       missed);
	return 0;
}
