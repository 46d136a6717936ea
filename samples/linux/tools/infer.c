// SPDX-License-Identifier: MIT
/*
 * gpup-infer: samples/infer.c as an ordinary Linux program on the gpup
 * driver.  Upload two matrices to VRAM on the copy engine, run gemm then
 * reduce on the compute engine, read the results back, and check them bit
 * for bit against a reference computed here in the same order (binary32,
 * no fused multiply-add: built with -ffp-contract=off), also through the
 * VRAM mapping.  The time reported is the device work alone (submits and
 * fence waits), as the freestanding guest reports it, after a first,
 * untimed step as the freestanding guest takes one: the first pass
 * through the driver's submit, wait and interrupt paths pays one-time
 * costs (under QEMU's TCG, translating them: milliseconds), printed
 * apart.  A step is one GPUP_IOC_EXEC that chains the two submissions
 * (the copies queued once gemm and reduce have completed, as the
 * freestanding guest queues them after its fence wait): one system call
 * where SUBMIT and WAIT take four, the same device work.
 *
 * Arguments: n=SIZE (default 16), iters=N (default 4), exec=0 (SUBMIT
 * and WAIT for each submission instead, as before GPUP_IOC_EXEC).
 */
#include <errno.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "gpup.h"

#define TIMEOUT_NS 10000000000ull
#define EXIT_NODEV 2
#define EXIT_SETUP 3
#define EXIT_WRONG 4
#define EXIT_DEVICE 5

struct infer {
	struct gpup_dev d;
	uint32_t n;
	int qc, qx;                          /* compute, copy */
	bool exec;                           /* steps with GPUP_IOC_EXEC */
	struct gpup_buf a, b, c, sum;        /* system memory */
	struct gpup_buf va, vb, vc, vsum;    /* VRAM */
	float *ref;
	float ref_sum;
};

static float entry(uint32_t i, uint32_t j, uint32_t salt)
{
	return (float)((int32_t)((i * 7 + j * 3 + salt) % 17) - 8) * 0.125f;
}

static void reference(struct infer *t)
{
	uint32_t n = t->n;
	const float *a = t->a.map, *b = t->b.map;
	float block = 0, total = 0;

	for (uint32_t i = 0; i < n; i++)
		for (uint32_t j = 0; j < n; j++) {
			float acc = 0;

			for (uint32_t p = 0; p < n; p++)
				acc = acc + a[i * n + p] * b[p * n + j];
			t->ref[i * n + j] = acc;
		}
	for (uint32_t i = 0; i < n * n; i++) {
		block = block + t->ref[i];
		if ((i + 1) % GPUP_REDUCE_BLOCK == 0 || i + 1 == n * n) {
			total = total + block;
			block = 0;
		}
	}
	t->ref_sum = total;
}

static int setup(struct infer *t)
{
	uint64_t bytes = (uint64_t)t->n * t->n * 4;
	struct gpup_buf *sys[] = { &t->a, &t->b, &t->c }, *vram[] = { &t->va, &t->vb, &t->vc };
	int rc = 0;

	for (int i = 0; i < 3 && !rc; i++) {
		rc = gpup_buf_alloc(&t->d, sys[i], bytes, GPUP_DOMAIN_SYSTEM);
		if (!rc)
			rc = gpup_buf_alloc(&t->d, vram[i], bytes, GPUP_DOMAIN_VRAM);
	}
	if (!rc)
		rc = gpup_buf_alloc(&t->d, &t->sum, 64, GPUP_DOMAIN_SYSTEM);
	if (!rc)
		rc = gpup_buf_alloc(&t->d, &t->vsum, 64, GPUP_DOMAIN_VRAM);
	return rc;
}

static int upload(struct infer *t)
{
	uint64_t bytes = (uint64_t)t->n * t->n * 4;
	union gpup_cmd c[2] = {
		gpup_cmd_copy(GPUP_SPACE_IOVA, gpup_addr(&t->a, 0), GPUP_SPACE_VRAM,
			      gpup_addr(&t->va, 0), bytes),
		gpup_cmd_copy(GPUP_SPACE_IOVA, gpup_addr(&t->b, 0), GPUP_SPACE_VRAM,
			      gpup_addr(&t->vb, 0), bytes),
	};

	return gpup_run(&t->d, (uint32_t)t->qx, c, 2, TIMEOUT_NS);
}

static int step(struct infer *t)
{
	uint64_t n = t->n, bytes = n * n * 4;
	uint64_t gemm[6] = { n, n, n, gpup_addr(&t->va, 0), gpup_addr(&t->vb, 0),
			     gpup_addr(&t->vc, 0) };
	uint64_t red[3] = { n * n, gpup_addr(&t->vc, 0), gpup_addr(&t->vsum, 0) };
	union gpup_cmd k[2] = {
		gpup_cmd_kernel(GPUP_KERNEL_GEMM, gemm, 6),
		gpup_cmd_kernel(GPUP_KERNEL_REDUCE, red, 3),
	};
	union gpup_cmd back[2] = {
		gpup_cmd_copy(GPUP_SPACE_VRAM, gpup_addr(&t->vc, 0), GPUP_SPACE_IOVA,
			      gpup_addr(&t->c, 0), bytes),
		gpup_cmd_copy(GPUP_SPACE_VRAM, gpup_addr(&t->vsum, 0), GPUP_SPACE_IOVA,
			      gpup_addr(&t->sum, 0), 4),
	};
	struct gpup_exec_batch b[2] = {
		{ .queue = (uint32_t)t->qc, .count = 2, .packets = (uintptr_t)k },
		{ .queue = (uint32_t)t->qx, .count = 2, .packets = (uintptr_t)back },
	};
	int rc;

	if (t->exec)
		return gpup_exec(&t->d, b, 2, GPUP_EXEC_CHAIN, TIMEOUT_NS);
	rc = gpup_run(&t->d, (uint32_t)t->qc, k, 2, TIMEOUT_NS);
	return rc ? rc : gpup_run(&t->d, (uint32_t)t->qx, back, 2, TIMEOUT_NS);
}

/* A partition destroyed under us takes its VRAM along (the mapping then
 * reads zeros until the driver notices and zaps it): a wrong value from a
 * device that is gone is its loss, not a wrong result. */
static bool device_gone(struct infer *t)
{
	int rc = gpup_info(&t->d);

	if (rc != -ENODEV)
		return false;
	printf("infer: device error %d (the device is gone, its VRAM with it)\n", rc);
	return true;
}

/* The driver zaps VRAM mappings when it finds the device lost, from
 * whichever path finds it first (the fault interrupt's, as often as our
 * own ioctl's): a check reading C through the mapping then takes SIGBUS
 * (gpup-vgpu(4)).  That is the device's loss too. */
static void vram_gone(int sig)
{
	static const char msg[] = "infer: device error (SIGBUS: the VRAM mapping is gone, "
				  "the device was lost)\n";

	ssize_t n = write(STDOUT_FILENO, msg, sizeof(msg) - 1);

	(void)sig;
	(void)n;
	_exit(EXIT_DEVICE);
}

static int check(struct infer *t, unsigned int iter)
{
	const uint32_t *c = t->c.map, *ref = (const uint32_t *)t->ref;
	const volatile uint32_t *ap = t->vc.map;
	uint32_t sum, rs;

	for (uint32_t i = 0; i < t->n * t->n; i++)
		if (c[i] != ref[i] || ap[i] != ref[i]) {
			if (device_gone(t))
				return EXIT_DEVICE;
			printf("infer: iteration %u: C[%u] = 0x%08x (aperture 0x%08x), "
			       "expected 0x%08x\n", iter, i, c[i], ap[i], ref[i]);
			return EXIT_WRONG;
		}
	memcpy(&sum, t->sum.map, 4);
	memcpy(&rs, &t->ref_sum, 4);
	if (sum != rs) {
		if (device_gone(t))
			return EXIT_DEVICE;
		printf("infer: iteration %u: sum 0x%08x, expected 0x%08x\n", iter, sum, rs);
		return EXIT_WRONG;
	}
	return 0;
}

/* The first step, checked but not counted: how long it took, in ns. */
static int warm_up(struct infer *t, uint64_t *ns)
{
	uint64_t t0 = gpup_now_ns();
	int rc = step(t);

	*ns = gpup_now_ns() - t0;
	return rc;
}

static int run(struct infer *t, unsigned int iters)
{
	uint64_t ns = 0, t0, flops, first = 0;
	float sum;
	int rc;

	rc = upload(t);
	if (!rc)
		rc = warm_up(t, &first);
	if (!rc && (rc = check(t, 0)) > 0)
		return rc;
	for (unsigned int i = 0; !rc && i < iters; i++) {
		memset(t->sum.map, 0, 4);
		memset(t->c.map, 0, (size_t)t->n * t->n * 4);
		t0 = gpup_now_ns();
		rc = step(t);
		ns += gpup_now_ns() - t0;
		if (rc)
			break;
		if ((rc = check(t, i)) != 0)
			return rc;
	}
	if (rc) {
		printf("infer: device error %d (%s)\n", rc, strerror(-rc));
		return EXIT_DEVICE;
	}
	flops = 2ull * t->n * t->n * t->n * iters;
	memcpy(&sum, t->sum.map, 4);
	printf("infer: n=%u iters=%u ok, sum %.3f, %llu us per iteration, %llu MFLOP/s "
	       "(first step %llu us, untimed)\n", t->n, iters, sum,
	       (unsigned long long)(ns / iters / 1000),
	       (unsigned long long)(ns ? flops * 1000 / ns : 0),
	       (unsigned long long)(first / 1000));
	printf("infer: steps by %s\n", t->exec ? "GPUP_IOC_EXEC" : "SUBMIT + WAIT");
	return 0;
}

int main(int argc, char **argv)
{
	static struct infer t;
	unsigned int iters = (unsigned int)gpup_arg_u64(argc, argv, "iters", 4);
	int rc;

	t.n = (uint32_t)gpup_arg_u64(argc, argv, "n", 16);
	if (t.n < 1 || t.n > 1024 || iters < 1) {
		printf("infer: want n=1..1024 and iters>=1\n");
		return EXIT_SETUP;
	}
	signal(SIGBUS, vram_gone);
	rc = gpup_open(&t.d, NULL);
	if (rc) {
		printf("infer: no usable vGPU (%s)\n", strerror(-rc));
		return EXIT_NODEV;
	}
	t.exec = gpup_arg_u64(argc, argv, "exec", 1) && t.d.info.version >= 2;
	t.qc = gpup_queue(&t.d, GPUP_ENGINE_COMPUTE);
	t.qx = gpup_queue(&t.d, GPUP_ENGINE_COPY);
	if (t.qc < 0 || t.qx < 0 || setup(&t)) {
		printf("infer: setup failed (queues %d %d)\n", t.qc, t.qx);
		return EXIT_SETUP;
	}
	t.ref = calloc((size_t)t.n * t.n, sizeof(float));
	if (!t.ref)
		return EXIT_SETUP;
	for (uint32_t i = 0; i < t.n; i++)
		for (uint32_t j = 0; j < t.n; j++) {
			((float *)t.a.map)[i * t.n + j] = entry(i, j, 1);
			((float *)t.b.map)[i * t.n + j] = entry(j, i, 5);
		}
	reference(&t);
	return run(&t, iters);
}
