// SPDX-License-Identifier: MIT
/*
 * `gpup exercise UUID`: use a partition the way a guest driver would, over
 * its vfio-user socket, without a VM: guest RAM in a memfd (DMA_MAP), a
 * copy queue and a compute queue set up through BAR0, data uploaded with
 * COPY, SAXPY and CHECKSUM run on VRAM, results copied back, and every
 * byte checked against a plain C reference.  Prints what it did and how
 * fast; exits 1 if anything differs.
 */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "gpup/cli/cli.h"
#include "gpup/drv/drv.h"
#include "gpup/pool/pool.h"

#define EX_Q_COMPUTE 0u
#define EX_Q_COPY 1u
#define EX_TIMEOUT_MS 60000
#define EX_A 1.5f

static const char *const cmd = "exercise";

struct ex {
	struct gpup_vg g;
	uint64_t size;      /* bytes per f32 buffer */
	uint64_t n;         /* elements */
	double t_up, t_saxpy, t_sum, t_down;
	uint64_t dev_sum;
};

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Guest RAM: x, y, the result, the checksum, one buffer after another. */
static uint64_t ram_buf(const struct ex *e, unsigned int i)
{
	return GPUP_VG_DATA_OFF + i * e->size;
}

#define ram_x(e) ram_buf(e, 0)
#define ram_y(e) ram_buf(e, 1)
#define ram_out(e) ram_buf(e, 2)
#define ram_sum(e) ram_buf(e, 3)

/* Submit cmds on q, fence, and return the seconds it took (or -errno). */
static int run(struct ex *e, unsigned int q, const union gpup_cmd *c, unsigned int n,
	       double *secs)
{
	double t0 = now_s();
	uint32_t fault = 0;
	int rc = gpup_vg_submit(&e->g, q, c, n);

	if (!rc)
		rc = gpup_vg_fence_wait(&e->g, q, EX_TIMEOUT_MS, &fault);
	if (rc == -EIO)
		gpup_err(cmd, "queue %u faulted (code %u)", q, fault);
	else if (rc)
		gpup_err(cmd, "queue %u: %s", q, strerror(-rc));
	*secs = now_s() - t0;
	return rc;
}

static void fill_inputs(struct ex *e)
{
	float *x = (float *)(e->g.ram + ram_x(e)), *y = (float *)(e->g.ram + ram_y(e));
	uint32_t s = 12345;

	for (uint64_t i = 0; i < e->n; i++) {
		s = s * 1664525u + 1013904223u;
		x[i] = (float)(s >> 8) / 16777216.0f;
		y[i] = (float)i * 0.25f;
	}
}

static int device_work(struct ex *e)
{
	uint64_t vx = 0, vy = e->size, vsum = 2 * e->size;
	uint32_t abits;
	float a = EX_A;
	union gpup_cmd c[2];

	memcpy(&abits, &a, 4);
	c[0] = gpup_cmd_copy(GPUP_SPACE_IOVA, gpup_vg_iova(ram_x(e)), GPUP_SPACE_VRAM, vx, e->size);
	c[1] = gpup_cmd_copy(GPUP_SPACE_IOVA, gpup_vg_iova(ram_y(e)), GPUP_SPACE_VRAM, vy, e->size);
	if (run(e, EX_Q_COPY, c, 2, &e->t_up))
		return -1;
	c[0] = gpup_cmd_kernel(GPUP_KERNEL_SAXPY, (uint64_t[6]){ e->n, abits, vx, vy }, 6);
	if (run(e, EX_Q_COMPUTE, c, 1, &e->t_saxpy))
		return -1;
	c[0] = gpup_cmd_kernel(GPUP_KERNEL_CHECKSUM, (uint64_t[6]){ e->size, vy, vsum }, 6);
	if (run(e, EX_Q_COMPUTE, c, 1, &e->t_sum))
		return -1;
	c[0] = gpup_cmd_copy(GPUP_SPACE_VRAM, vy, GPUP_SPACE_IOVA, gpup_vg_iova(ram_out(e)), e->size);
	c[1] = gpup_cmd_copy(GPUP_SPACE_VRAM, vsum, GPUP_SPACE_IOVA, gpup_vg_iova(ram_sum(e)), 8);
	if (run(e, EX_Q_COPY, c, 2, &e->t_down))
		return -1;
	memcpy(&e->dev_sum, e->g.ram + ram_sum(e), 8);
	return 0;
}

/* The reference: one rounded multiply, one rounded add (no FMA), then
 * FNV-1a over the result bytes.  Returns the first differing element or
 * n when all match. */
static uint64_t verify(const struct ex *e, uint64_t *ref_sum)
{
	const float *x = (const float *)(e->g.ram + ram_x(e));
	const float *y = (const float *)(e->g.ram + ram_y(e));
	const uint8_t *out = e->g.ram + ram_out(e);
	uint64_t h = GPUP_FNV64_BASIS, bad = e->n;

	for (uint64_t i = 0; i < e->n; i++) {
		volatile float p = EX_A * x[i];
		float r = p + y[i];
		uint8_t b[4];

		memcpy(b, &r, 4);
		if (bad == e->n && memcmp(b, out + i * 4, 4))
			bad = i;
		for (int k = 0; k < 4; k++)
			h = (h ^ b[k]) * GPUP_FNV64_PRIME;
	}
	*ref_sum = h;
	return bad;
}

static void rate(const char *what, uint64_t bytes, double s)
{
	char sz[32];

	printf("  %-34s %10s in %8.3f ms  %8.2f GiB/s\n", what,
	       gpup_format_size(bytes, sz, sizeof(sz)), s * 1e3,
	       s > 0 ? (double)bytes / s / (1 << 30) : 0.0);
}

static int report(struct ex *e, const char *uuid)
{
	uint64_t ref, bad = verify(e, &ref);
	char sz[32];

	printf("exercise %s: %llu f32 elements (%s per buffer)\n", uuid, (unsigned long long)e->n,
	       gpup_format_size(e->size, sz, sizeof(sz)));
	rate("upload x, y (COPY guest -> VRAM)", 2 * e->size, e->t_up);
	rate("saxpy y = 1.5 x + y (KERNEL)", 3 * e->size, e->t_saxpy);
	rate("checksum of y (KERNEL, FNV-1a)", e->size, e->t_sum);
	rate("download y (COPY VRAM -> guest)", e->size + 8, e->t_down);
	if (bad != e->n || ref != e->dev_sum) {
		printf("  MISMATCH: element %llu, device checksum %016llx, reference %016llx\n",
		       (unsigned long long)bad, (unsigned long long)e->dev_sum,
		       (unsigned long long)ref);
		return GPUP_EXIT_FAIL;
	}
	printf("  result: bit-exact against the C reference (checksum %016llx)\n",
	       (unsigned long long)ref);
	return GPUP_EXIT_OK;
}

static int exercise(const char *path, const char *uuid, uint64_t size)
{
	struct ex e = { .size = size, .n = size / 4 };
	int err = 0, rc;
	struct vfu_client *c = vfu_client_connect(path, &err);

	if (!c && (err == -ECONNRESET || err == -EPIPE)) {
		gpup_err(cmd, "partition %s refused the connection: another client (a VM?) "
			 "is using it", uuid);
		return GPUP_EXIT_FAIL;
	}
	if (!c) {
		gpup_err(cmd, "cannot connect to %s: %s (is the partition served? see 'gpup list')",
			 path, strerror(-err));
		return GPUP_EXIT_FAIL;
	}
	rc = gpup_vg_open(&e.g, c, GPUP_VG_DATA_OFF + 3 * size + 4096);
	if (rc) {
		gpup_err(cmd, "cannot set the device up: %s", strerror(-rc));
		vfu_client_close(c);
		return GPUP_EXIT_FAIL;
	}
	if (2 * size + 8 > e.g.vram_size) {
		gpup_err(cmd, "--size %llu needs %llu bytes of VRAM; the partition has %llu",
			 (unsigned long long)size, (unsigned long long)(2 * size + 8),
			 (unsigned long long)e.g.vram_size);
		rc = GPUP_EXIT_USAGE;
	} else {
		rc = gpup_vg_queue_setup(&e.g, EX_Q_COMPUTE, GPUP_ENGINE_COMPUTE) ||
		     gpup_vg_queue_setup(&e.g, EX_Q_COPY, GPUP_ENGINE_COPY);
		if (rc)
			gpup_err(cmd, "cannot set queues up");
		if (!rc)
			fill_inputs(&e);
		rc = rc || device_work(&e) ? GPUP_EXIT_FAIL : report(&e, uuid);
	}
	gpup_vg_close(&e.g);
	vfu_client_close(c);
	return rc;
}

static void usage(FILE *f)
{
	fprintf(f, "usage: gpup exercise UUID [--size SIZE]\n\n"
		   "Drive a partition over its vfio-user socket as a guest would: upload two\n"
		   "f32 buffers of SIZE (default 16M), run saxpy and a checksum, copy back,\n"
		   "check bit for bit and print throughput.  Needs 2 x SIZE of VRAM.\n");
}

static int cmd_exercise(const struct gpup_global *g, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "size", required_argument, NULL, 's' }, { "help", no_argument, NULL, 'h' }, { 0 },
	};
	char uuid[GPUP_UUID_STRLEN + 1], path[PATH_MAX];
	uint64_t size = 16ull << 20;
	int o;

	while ((o = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		if (o == 's' && (gpup_parse_size(optarg, &size) || !size || size % 4096)) {
			gpup_err(cmd, "--size wants a multiple of 4K (like 16M), not '%s'", optarg);
			return GPUP_EXIT_USAGE;
		}
		if (o == 'h')
			return usage(stdout), GPUP_EXIT_OK;
		if (o == '?')
			return usage(stderr), GPUP_EXIT_USAGE;
	}
	if (optind + 1 != argc || gpup_uuid_parse(argv[optind], uuid)) {
		gpup_err(cmd, "give one partition UUID; see 'gpup list'");
		return GPUP_EXIT_USAGE;
	}
	if (snprintf(path, sizeof(path), "%s/%s.sock", g->run_dir, uuid) >= (int)sizeof(path))
		return GPUP_EXIT_USAGE;
	return exercise(path, uuid, size);
}

GPUP_COMMAND("exercise", "drive a partition as a guest would and check the results",
	     cmd_exercise)
