// SPDX-License-Identifier: MIT
/*
 * infer: an AI-style loop on a vGPU.  Upload two matrices to VRAM on the
 * copy engine, run gemm then reduce on the compute engine, read the
 * results back, and check them bit for bit against the guest's own
 * reference (same operation order, IEEE binary32 rounding).  The product
 * is also read straight through the BAR2 aperture to check the direct
 * mapping.  Prints what it measured; exits non-zero on any wrong result.
 *
 * Command line: n=SIZE (square matrices, default 16), iters=N (default 4),
 * sample (check SAMPLES entries of C against the reference, and the sum
 * against the first iteration's, instead of everything: for large n,
 * since the reference runs on the guest CPU, which some hosts only
 * emulate; see docs/VMM.md).  The time reported is that of the device
 * work alone (kernels, copies, fences), checks excluded, after a first,
 * untimed step, as gpup-infer on the Linux driver takes one (its first
 * pass through the driver's paths pays one-time costs); that step's time
 * is printed apart.
 */
#include "vgpu_drv.h"

#define EXIT_NODEV 2
#define EXIT_SETUP 3
#define EXIT_WRONG 4
#define EXIT_DEVICE 5
#define TIMEOUT_NS 10000000000ull

#define Q_COMPUTE 0
#define Q_COPY 1
#define SAMPLES 8

struct infer {
	struct vg_dev dev;
	uint32_t n;
	bool sample;
	uint32_t *a, *b, *c, *ref;  /* guest RAM, f32 bits */
	uint32_t sum, ref_sum;
	uint64_t va, vb, vc, vsum;  /* VRAM offsets */
};

static uint32_t f32_entry(uint32_t i, uint32_t j, uint32_t salt)
{
	/* Small multiples of 1/8: products and sums stay well in range. */
	int32_t v = (int32_t)((i * 7 + j * 3 + salt) % 17) - 8;

	return rt_f32_mul(rt_f32_from_i32(v), 0x3e000000u);
}

static uint32_t ref_entry(const struct infer *t, uint32_t i, uint32_t j)
{
	uint32_t acc = 0;

	for (uint32_t p = 0; p < t->n; p++)
		acc = rt_f32_add(acc, rt_f32_mul(t->a[i * t->n + p], t->b[p * t->n + j]));
	return acc;
}

static uint32_t sample_index(const struct infer *t, unsigned int k)
{
	return k == 0 ? 0 : k == 1 ? t->n * t->n - 1 : (k * 2654435761u) % (t->n * t->n);
}

static void reference(struct infer *t)
{
	uint32_t n = t->n, block = 0, total = 0;

	if (t->sample) {
		for (unsigned int k = 0; k < SAMPLES; k++) {
			uint32_t x = sample_index(t, k);

			t->ref[x] = ref_entry(t, x / n, x % n);
		}
		return;
	}
	for (uint32_t i = 0; i < n; i++)
		for (uint32_t j = 0; j < n; j++)
			t->ref[i * n + j] = ref_entry(t, i, j);
	for (uint32_t i = 0; i < n * n; i++) {
		block = rt_f32_add(block, t->ref[i]);
		if ((i + 1) % GPUP_REDUCE_BLOCK == 0 || i + 1 == n * n) {
			total = rt_f32_add(total, block);
			block = 0;
		}
	}
	t->ref_sum = total;
}

static int setup(struct infer *t)
{
	uint64_t bytes = (uint64_t)t->n * t->n * 4;
	size_t pages = (size_t)((bytes + 4095) / 4096);

	t->a = rt_alloc_pages(pages);
	t->b = rt_alloc_pages(pages);
	t->c = rt_alloc_pages(pages);
	t->ref = rt_alloc_pages(pages);
	if (!t->a || !t->b || !t->c || !t->ref)
		return EXIT_SETUP;
	for (uint32_t i = 0; i < t->n; i++)
		for (uint32_t j = 0; j < t->n; j++) {
			t->a[i * t->n + j] = f32_entry(i, j, 1);
			t->b[i * t->n + j] = f32_entry(j, i, 5);
		}
	t->va = vg_vram_alloc(&t->dev, bytes, 4096);
	t->vb = vg_vram_alloc(&t->dev, bytes, 4096);
	t->vc = vg_vram_alloc(&t->dev, bytes, 4096);
	t->vsum = vg_vram_alloc(&t->dev, 64, 64);
	if (t->vsum == ~0ull) {
		rt_printf("infer: %lu bytes of VRAM are not enough for n=%u\n",
			  t->dev.vram_size, t->n);
		return EXIT_SETUP;
	}
	return 0;
}

static int upload(struct infer *t)
{
	uint64_t bytes = (uint64_t)t->n * t->n * 4;
	union gpup_cmd c[2] = {
		gpup_cmd_copy(GPUP_SPACE_IOVA, vg_iova(t->a), GPUP_SPACE_VRAM, t->va, bytes),
		gpup_cmd_copy(GPUP_SPACE_IOVA, vg_iova(t->b), GPUP_SPACE_VRAM, t->vb, bytes),
	};
	int rc = vg_submit(&t->dev, Q_COPY, c, 2);

	return rc ? rc : vg_fence_wait(&t->dev, Q_COPY, TIMEOUT_NS);
}

/* gemm + reduce on the compute engine, then read both back. */
static int step(struct infer *t)
{
	uint64_t n = t->n, bytes = n * n * 4;
	uint64_t gemm[6] = { n, n, n, t->va, t->vb, t->vc };
	uint64_t red[3] = { n * n, t->vc, t->vsum };
	union gpup_cmd k[2] = {
		gpup_cmd_kernel(GPUP_KERNEL_GEMM, gemm, 6),
		gpup_cmd_kernel(GPUP_KERNEL_REDUCE, red, 3),
	};
	union gpup_cmd back[2] = {
		gpup_cmd_copy(GPUP_SPACE_VRAM, t->vc, GPUP_SPACE_IOVA, vg_iova(t->c), bytes),
		gpup_cmd_copy(GPUP_SPACE_VRAM, t->vsum, GPUP_SPACE_IOVA, vg_iova(&t->sum), 4),
	};
	int rc = vg_submit(&t->dev, Q_COMPUTE, k, 2);

	if (!rc)
		rc = vg_fence_wait(&t->dev, Q_COMPUTE, TIMEOUT_NS);
	if (!rc)
		rc = vg_submit(&t->dev, Q_COPY, back, 2);
	return rc ? rc : vg_fence_wait(&t->dev, Q_COPY, TIMEOUT_NS);
}

/* A partition destroyed under us takes its VRAM along (the aperture then
 * reads zeros): a wrong value from a device that is gone is its loss, not
 * a wrong result. */
static bool device_gone(struct infer *t)
{
	if (vg_read(&t->dev, GPUP_REG_ID) == GPUP_ID_MAGIC)
		return false;
	rt_printf("infer: device error %d (the device is gone, its VRAM with it)\n",
		  VG_ERR_LOST);
	return true;
}

static int check_entry(struct infer *t, unsigned int iter, uint32_t i)
{
	const volatile uint32_t *aperture = (const volatile uint32_t *)(t->dev.vram + t->vc);

	if (t->c[i] == t->ref[i] && aperture[i] == t->ref[i])
		return 0;
	if (device_gone(t))
		return EXIT_DEVICE;
	rt_printf("infer: iteration %u: C[%u] = 0x%08x (aperture 0x%08x), expected "
		  "0x%08x\n", iter, i, t->c[i], aperture[i], t->ref[i]);
	return EXIT_WRONG;
}

static int check(struct infer *t, unsigned int iter)
{
	char x[32], y[32];
	uint32_t count = t->sample ? SAMPLES : t->n * t->n;

	for (uint32_t k = 0; k < count; k++) {
		int rc = check_entry(t, iter, t->sample ? sample_index(t, k) : k);

		if (rc)
			return rc;
	}
	/* Sampled: the sum must at least be the same every time. */
	if (t->sample && iter == 0)
		t->ref_sum = t->sum;
	if (t->sum != t->ref_sum) {
		rt_printf("infer: iteration %u: sum %s, expected %s\n", iter,
			  rt_f32_str(x, sizeof(x), t->sum, 4),
			  rt_f32_str(y, sizeof(y), t->ref_sum, 4));
		return EXIT_WRONG;
	}
	return 0;
}

static int run(struct infer *t, unsigned int iters)
{
	uint64_t ns = 0, t0, flops, first;
	char buf[32];
	int rc;

	if (upload(t))
		return EXIT_DEVICE;
	t0 = rt_ns();
	rc = step(t);
	first = rt_ns() - t0;
	if (rc) {
		rt_printf("infer: device error %d in the first step\n", rc);
		return EXIT_DEVICE;
	}
	if ((rc = check(t, 0)) != 0)
		return rc;
	for (unsigned int i = 0; i < iters; i++) {
		t->sum = 0;
		memset(t->c, 0, (size_t)t->n * t->n * 4);
		t0 = rt_ns();
		rc = step(t);
		ns += rt_ns() - t0;
		if (rc) {
			rt_printf("infer: device error %d (queue fault %u)\n", rc,
				  vg_queue_fault(&t->dev, Q_COMPUTE));
			return EXIT_DEVICE;
		}
		if ((rc = check(t, i)) != 0)
			return rc;
	}
	flops = 2ull * t->n * t->n * t->n * iters;
	rt_printf("infer: n=%u iters=%u ok, sum %s, %lu us per iteration, "
		  "%lu MFLOP/s (first step %lu us, untimed)\n", t->n, iters,
		  rt_f32_str(buf, sizeof(buf), t->sum, 3), ns / iters / 1000,
		  ns ? flops * 1000 / ns : 0, first / 1000);
	rt_printf("infer: doorbells rung %lu, skipped while watched %lu\n",
		  t->dev.q[Q_COMPUTE].doorbells + t->dev.q[Q_COPY].doorbells,
		  t->dev.q[Q_COMPUTE].doorbells_skipped + t->dev.q[Q_COPY].doorbells_skipped);
	return 0;
}

int main(const char *cmdline)
{
	static struct infer t;
	unsigned int iters = (unsigned int)rt_arg_u64(cmdline, "iters", 4);
	int rc;

	t.n = (uint32_t)rt_arg_u64(cmdline, "n", 16);
	t.sample = rt_arg_flag(cmdline, "sample");
	if (t.n < 1 || t.n > 1024 || iters < 1) {
		rt_printf("infer: want n=1..1024 and iters>=1\n");
		return EXIT_SETUP;
	}
	rt_irq_init();
	rc = vg_open(&t.dev, 0);
	if (rc) {
		rt_printf("infer: no usable vGPU (%d)\n", rc);
		return EXIT_NODEV;
	}
	t.dev.no_watch = rt_arg_flag(cmdline, "nowatch");
	if (vg_queue_init(&t.dev, Q_COMPUTE, GPUP_ENGINE_COMPUTE) ||
	    vg_queue_init(&t.dev, Q_COPY, GPUP_ENGINE_COPY))
		return EXIT_SETUP;
	rc = setup(&t);
	if (rc)
		return rc;
	reference(&t);
	return run(&t, iters);
}
