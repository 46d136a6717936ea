// SPDX-License-Identifier: MIT
/*
 * The sim GPU's built-in kernels, bit-exact to the definitions in
 * uapi/gpup_vgpu.h.  Each kernel is split into work-groups sized to take
 * tens of microseconds, so that an engine can preempt a launch at a group
 * boundary without paying for a clock read per element; whatever a later
 * group needs (a running hash, a partial sum) is carried in the run state.
 *
 * f32 arithmetic must round after every multiply and every add, as the ABI
 * promises guests: contraction into fused multiply-adds is switched off
 * for this file whatever -march the build uses.
 */
#pragma GCC optimize("fp-contract=off")

#include <errno.h>
#include <string.h>
#include <time.h>

#include "gpup/gpu/gpu.h"

#define SAXPY_GROUP 16384u       /* elements */
#define GEMM_COLS 64u            /* output columns of one row per group */
#define REDUCE_GROUP_BLOCKS 16u  /* GPUP_REDUCE_BLOCK blocks per group */
#define CHECKSUM_GROUP 65536u    /* bytes */
#define RENDER_ROWS 8u
#define SPIN_GROUP_NS 50000u

uint64_t gpup_thread_cpu_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* Per thread: only an engine executor's own thread may cut its slice. */
static __thread bool (*slice_hook_fn)(void *arg, uint64_t cpu_ns);
static __thread void *slice_hook_arg;

void gpup_slice_hook(bool (*fn)(void *arg, uint64_t cpu_ns), void *arg)
{
	slice_hook_fn = fn;
	slice_hook_arg = arg;
}

bool gpup_slice_over(uint64_t deadline_ns)
{
	uint64_t t = gpup_thread_cpu_ns();

	return t >= deadline_ns || (slice_hook_fn && slice_hook_fn(slice_hook_arg, t));
}

const char *gpup_kernel_name(uint32_t id)
{
	static const char *const names[GPUP_KERNEL_MAX] = {
		[GPUP_KERNEL_SAXPY] = "SAXPY",   [GPUP_KERNEL_GEMM] = "GEMM",
		[GPUP_KERNEL_REDUCE] = "REDUCE", [GPUP_KERNEL_CHECKSUM] = "CHECKSUM",
		[GPUP_KERNEL_RENDER] = "RENDER", [GPUP_KERNEL_SPIN] = "SPIN",
	};

	return id < GPUP_KERNEL_MAX ? names[id] : "?";
}

static uint64_t div_up(uint64_t a, uint64_t b)
{
	return a / b + (a % b != 0);
}

/* Outcome of checking one buffer; fault_addr names the culprit. */
struct kcheck {
	uint64_t vram_size;
	uint64_t *fault_addr;
};

/* A buffer of count elements of esize bytes at off: aligned to align,
 * inside the window, with no arithmetic overflow.  0 or GPUP_FAULT_*. */
static int check_buf(const struct kcheck *c, uint64_t off, uint64_t count,
		     uint64_t esize, uint64_t align)
{
	uint64_t len;

	if (off % align) {
		*c->fault_addr = off;
		return GPUP_FAULT_BAD_ARGS;
	}
	if (__builtin_mul_overflow(count, esize, &len) || len > c->vram_size ||
	    off > c->vram_size - len) {
		*c->fault_addr = off;
		return GPUP_FAULT_VRAM_RANGE;
	}
	return 0;
}

static int prep_saxpy(struct gpup_kernel_run *k, const struct kcheck *c)
{
	uint64_t n = k->args[0];
	int r = check_buf(c, k->args[2], n, 4, 4);

	if (!r)
		r = check_buf(c, k->args[3], n, 4, 4);
	k->ngroups = div_up(n, SAXPY_GROUP);
	k->out_off = k->args[3];
	k->out_len = n * 4;
	return r;
}

static int prep_gemm(struct gpup_kernel_run *k, const struct kcheck *c)
{
	uint64_t m = k->args[0], n = k->args[1], kk = k->args[2], mk, kn, mn;

	if (__builtin_mul_overflow(m, kk, &mk) || __builtin_mul_overflow(kk, n, &kn) ||
	    __builtin_mul_overflow(m, n, &mn)) {
		*c->fault_addr = m;
		return GPUP_FAULT_BAD_ARGS;
	}
	int r = check_buf(c, k->args[3], mk, 4, 4);

	if (!r)
		r = check_buf(c, k->args[4], kn, 4, 4);
	if (!r)
		r = check_buf(c, k->args[5], mn, 4, 4);
	k->ngroups = m * div_up(n, GEMM_COLS);
	k->out_off = k->args[5];
	k->out_len = mn * 4;
	return r;
}

static int prep_reduce(struct gpup_kernel_run *k, const struct kcheck *c)
{
	uint64_t nblocks = div_up(k->args[0], GPUP_REDUCE_BLOCK);
	int r = check_buf(c, k->args[1], k->args[0], 4, 4);

	if (!r)
		r = check_buf(c, k->args[2], 1, 4, 4);
	k->out_off = k->args[2];
	k->out_len = 4;
	/* At least one group, so that an empty reduction still writes 0. */
	k->ngroups = nblocks ? div_up(nblocks, REDUCE_GROUP_BLOCKS) : 1;
	k->acc_f = 0.0f;
	return r;
}

static int prep_checksum(struct gpup_kernel_run *k, const struct kcheck *c)
{
	uint64_t len = k->args[0];
	int r = check_buf(c, k->args[1], len, 1, 1);

	if (!r)
		r = check_buf(c, k->args[2], 1, 8, 8);
	k->out_off = k->args[2];
	k->out_len = 8;
	k->ngroups = len ? div_up(len, CHECKSUM_GROUP) : 1;
	k->acc = GPUP_FNV64_BASIS;
	return r;
}

static int prep_render(struct gpup_kernel_run *k, const struct kcheck *c)
{
	uint64_t w = k->args[0], h = k->args[1], stride = k->args[2], fb = k->args[3];

	if (w > UINT32_MAX || h > UINT32_MAX || stride % 4 || (h > 1 && stride < w * 4)) {
		*c->fault_addr = w > UINT32_MAX ? w : h > UINT32_MAX ? h : stride;
		return GPUP_FAULT_BAD_ARGS;
	}
	k->ngroups = div_up(h, RENDER_ROWS);
	if (!w || !h)
		return check_buf(c, fb, 0, 4, 4);
	/* The last pixel ends at fb + (h - 1) * stride + w * 4. */
	uint64_t span;

	if (__builtin_mul_overflow(h - 1, stride, &span) ||
	    __builtin_add_overflow(span, w * 4, &span)) {
		*c->fault_addr = fb;
		return GPUP_FAULT_VRAM_RANGE;
	}
	k->out_off = fb;
	k->out_len = span;
	return check_buf(c, fb, span, 1, 4);
}

static int prep_spin(struct gpup_kernel_run *k, const struct kcheck *c)
{
	(void)c;
	k->ngroups = div_up(k->args[0], SPIN_GROUP_NS);
	k->acc = 0;
	return 0;
}

int gpup_kernel_prepare(struct gpup_kernel_run *k, uint32_t id, const uint64_t args[6],
			uint64_t vram_size, uint64_t *fault_addr)
{
	static int (*const prep[GPUP_KERNEL_MAX])(struct gpup_kernel_run *,
						   const struct kcheck *) = {
		[GPUP_KERNEL_SAXPY] = prep_saxpy,   [GPUP_KERNEL_GEMM] = prep_gemm,
		[GPUP_KERNEL_REDUCE] = prep_reduce, [GPUP_KERNEL_CHECKSUM] = prep_checksum,
		[GPUP_KERNEL_RENDER] = prep_render, [GPUP_KERNEL_SPIN] = prep_spin,
	};
	struct kcheck c = { .vram_size = vram_size, .fault_addr = fault_addr };

	memset(k, 0, sizeof(*k));
	k->id = id;
	memcpy(k->args, args, sizeof(k->args));
	*fault_addr = 0;
	if (id >= GPUP_KERNEL_MAX) {
		*fault_addr = id;
		return GPUP_FAULT_BAD_KERNEL;
	}
	int r = prep[id](k, &c);

	if (r)
		k->ngroups = k->out_len = 0;
	return r;
}

static void group_saxpy(struct gpup_kernel_run *k, uint8_t *vram, uint64_t g)
{
	uint64_t n = k->args[0], i0 = g * SAXPY_GROUP;
	uint64_t end = n - i0 < SAXPY_GROUP ? n : i0 + SAXPY_GROUP;
	uint32_t abits = (uint32_t)k->args[1];
	const float *x = (const float *)(vram + k->args[2]);
	float *y = (float *)(vram + k->args[3]);
	float a;

	memcpy(&a, &abits, sizeof(a));
	for (uint64_t i = i0; i < end; i++) {
		float p = a * x[i];

		y[i] = p + y[i];
	}
}

static void group_gemm(struct gpup_kernel_run *k, uint8_t *vram, uint64_t g)
{
	uint64_t n = k->args[1], kk = k->args[2], ncb = div_up(n, GEMM_COLS);
	uint64_t row = g / ncb, j0 = (g % ncb) * GEMM_COLS;
	uint64_t w = n - j0 < GEMM_COLS ? n - j0 : GEMM_COLS;
	const float *a = (const float *)(vram + k->args[3]) + row * kk;
	const float *b = (const float *)(vram + k->args[4]) + j0;
	float *cr = (float *)(vram + k->args[5]) + row * n + j0;
	float acc[GEMM_COLS] = { 0 };

	/* p outer keeps B's rows streaming; each acc[j] still sums p in order. */
	for (uint64_t p = 0; p < kk; p++) {
		const float *bp = b + p * n;
		float ap = a[p];

		for (uint64_t j = 0; j < w; j++) {
			float prod = ap * bp[j];

			acc[j] = acc[j] + prod;
		}
	}
	memcpy(cr, acc, w * sizeof(float));
}

static void group_reduce(struct gpup_kernel_run *k, uint8_t *vram, uint64_t g)
{
	uint64_t n = k->args[0];
	const float *x = (const float *)(vram + k->args[1]);
	uint64_t i = g * REDUCE_GROUP_BLOCKS * GPUP_REDUCE_BLOCK;

	for (unsigned int b = 0; b < REDUCE_GROUP_BLOCKS && i < n; b++) {
		uint64_t end = n - i < GPUP_REDUCE_BLOCK ? n : i + GPUP_REDUCE_BLOCK;
		float s = 0.0f;

		for (; i < end; i++)
			s = s + x[i];
		k->acc_f = k->acc_f + s;
	}
	if (g + 1 == k->ngroups)
		memcpy(vram + k->args[2], &k->acc_f, sizeof(float));
}

static void group_checksum(struct gpup_kernel_run *k, uint8_t *vram, uint64_t g)
{
	uint64_t len = k->args[0], i0 = g * CHECKSUM_GROUP;
	uint64_t end = len - i0 < CHECKSUM_GROUP ? len : i0 + CHECKSUM_GROUP;
	const uint8_t *src = vram + k->args[1];
	uint64_t h = k->acc;

	for (uint64_t i = i0; i < end; i++) {
		h ^= src[i];
		h *= GPUP_FNV64_PRIME;
	}
	k->acc = h;
	if (g + 1 == k->ngroups)
		memcpy(vram + k->args[2], &h, sizeof(h));
}

static void group_render(struct gpup_kernel_run *k, uint8_t *vram, uint64_t g)
{
	uint32_t w = (uint32_t)k->args[0], h = (uint32_t)k->args[1];
	uint32_t frame = (uint32_t)k->args[4];
	uint64_t y0 = g * RENDER_ROWS;
	uint64_t y1 = h - y0 < RENDER_ROWS ? h : y0 + RENDER_ROWS;

	for (uint64_t y = y0; y < y1; y++) {
		uint32_t *row = (uint32_t *)(vram + k->args[3] + y * k->args[2]);

		for (uint32_t x = 0; x < w; x++)
			row[x] = gpup_render_pixel(x, (uint32_t)y, frame);
	}
}

/* Burn this thread's CPU until one group's share of the spin is spent. */
static void group_spin(struct gpup_kernel_run *k, uint8_t *vram, uint64_t g)
{
	uint64_t left = k->args[0] - k->acc;
	uint64_t want = left < SPIN_GROUP_NS ? left : SPIN_GROUP_NS;
	uint64_t t0 = gpup_thread_cpu_ns(), t = t0;

	(void)vram;
	(void)g;
	while (t - t0 < want)
		t = gpup_thread_cpu_ns();
	k->acc += want;
}

bool gpup_kernel_step(struct gpup_kernel_run *k, uint8_t *vram, uint64_t deadline_ns)
{
	static void (*const group[GPUP_KERNEL_MAX])(struct gpup_kernel_run *, uint8_t *,
						     uint64_t) = {
		[GPUP_KERNEL_SAXPY] = group_saxpy,   [GPUP_KERNEL_GEMM] = group_gemm,
		[GPUP_KERNEL_REDUCE] = group_reduce, [GPUP_KERNEL_CHECKSUM] = group_checksum,
		[GPUP_KERNEL_RENDER] = group_render, [GPUP_KERNEL_SPIN] = group_spin,
	};

	while (!gpup_kernel_done(k)) {
		group[k->id](k, vram, k->next);
		k->next++;
		if (deadline_ns != GPUP_KERNEL_NO_DEADLINE && !gpup_kernel_done(k) &&
		    gpup_slice_over(deadline_ns))
			return false;
	}
	return true;
}
