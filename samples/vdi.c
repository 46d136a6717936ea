// SPDX-License-Identifier: MIT
/*
 * vdi: a virtual desktop's display loop.  Renders frames into a
 * framebuffer in VRAM with the RENDER kernel at a target rate, halting
 * between frames until the next deadline, and checks every pixel of every
 * frame through the BAR2 aperture (as a scan-out would read them).  Reports
 * frame times and missed deadlines; exits non-zero on a wrong pixel or a
 * device error.  Missed deadlines are reported, not failed: they measure
 * the host, not correctness.
 *
 * Command line: w=, h= (default 320x200), fps= (default 60), frames=
 * (default 30).
 */
#include "vgpu_drv.h"

#define Q 0
#define TIMEOUT_NS 5000000000ull

static struct vg_dev dev;

struct vdi {
	uint32_t w, h, stride;
	uint64_t fb;
	uint64_t period_ns;
};

/* Every pixel, through the BAR2 aperture, as a scan-out would read it. */
static bool check_frame(const struct vdi *v, uint32_t frame)
{
	const volatile uint8_t *fb = dev.vram + v->fb;

	for (uint32_t y = 0; y < v->h; y++) {
		const volatile uint32_t *row = (const volatile uint32_t *)(fb + (uint64_t)y * v->stride);

		for (uint32_t x = 0; x < v->w; x++) {
			if (row[x] == gpup_render_pixel(x, y, frame))
				continue;
			rt_printf("vdi: frame %u pixel (%u,%u) = 0x%08x, expected 0x%08x\n",
				  frame, x, y, row[x], gpup_render_pixel(x, y, frame));
			return false;
		}
	}
	return true;
}

/* Sleep until deadline (rt_ns time) with the LAPIC timer: halt unless an
 * interrupt (the timer's, say) came since the timer was armed. */
static void sleep_until(uint64_t deadline)
{
	uint64_t now, n;

	while ((now = rt_ns()) < deadline) {
		n = rt_irq_count;
		rt_apic_timer_arm(deadline - now);
		rt_halt_unless(&rt_irq_count, n + 1);
	}
}

static int render(const struct vdi *v, uint32_t frame)
{
	uint64_t args[5] = { v->w, v->h, v->stride, v->fb, frame };
	union gpup_cmd k = gpup_cmd_kernel(GPUP_KERNEL_RENDER, args, 5);
	int rc = vg_submit(&dev, Q, &k, 1);

	return rc ? rc : vg_fence_wait(&dev, Q, TIMEOUT_NS);
}

static int loop(const struct vdi *v, uint32_t frames)
{
	uint64_t start = rt_ns(), worst = 0, total = 0;
	uint32_t missed = 0;

	for (uint32_t f = 0; f < frames; f++) {
		uint64_t deadline = start + (f + 1) * v->period_ns, t0 = rt_ns(), dt;
		int rc = render(v, f);

		if (rc) {
			rt_printf("vdi: frame %u: device error %d\n", f, rc);
			return 5;
		}
		if (!check_frame(v, f))
			return 4;
		dt = rt_ns() - t0;
		total += dt;
		worst = dt > worst ? dt : worst;
		if (rt_ns() > deadline)
			missed++;
		sleep_until(deadline);
	}
	rt_printf("vdi: %ux%u, %u frames at %lu fps: frame time avg %lu us, "
		  "max %lu us, %u deadline(s) missed\n", v->w, v->h, frames,
		  (uint64_t)1000000000 / v->period_ns, total / frames / 1000, worst / 1000,
		  missed);
	return 0;
}

int main(const char *cmdline)
{
	struct vdi v;
	uint32_t frames = (uint32_t)rt_arg_u64(cmdline, "frames", 30);
	uint64_t fps = rt_arg_u64(cmdline, "fps", 60);

	v.w = (uint32_t)rt_arg_u64(cmdline, "w", 320);
	v.h = (uint32_t)rt_arg_u64(cmdline, "h", 200);
	if (!v.w || !v.h || v.w > 8192 || v.h > 8192 || !fps || fps > 1000 || !frames) {
		rt_printf("vdi: want w,h in 1..8192, fps in 1..1000, frames >= 1\n");
		return 3;
	}
	v.stride = v.w * 4;
	v.period_ns = 1000000000ull / fps;
	rt_irq_init();
	if (vg_open(&dev, 0) || vg_queue_init(&dev, Q, GPUP_ENGINE_COMPUTE)) {
		rt_printf("vdi: no usable vGPU\n");
		return 2;
	}
	v.fb = vg_vram_alloc(&dev, (uint64_t)v.stride * v.h, 4096);
	if (v.fb == ~0ull) {
		rt_printf("vdi: the framebuffer does not fit in %lu bytes of VRAM\n",
			  dev.vram_size);
		return 3;
	}
	return loop(&v, frames);
}
