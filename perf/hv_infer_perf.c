// SPDX-License-Identifier: MIT
/*
 * The virtualization tax on inference: the infer guest's loop (gemm and
 * reduce on the compute engine, results copied back on the copy engine,
 * a fence after each) timed inside a VM under `gpup run`, against the very
 * same packets submitted to the same kind of partition by a host process
 * through vfio-user with no VM (gpup/drv/drv.h).  Both report the mean
 * device time per iteration after a first, untimed step; the sums must
 * agree.  Prints one Markdown
 * section for docs/BENCHMARKS.md.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "gpup/drv/drv.h"
#include "perf/perflib.h"
#include "tests/daemonlib.h"

#define N 256u
#define ITERS 10u
#define ROUNDS 5
#define TYPE "sim-128m-2"

/* One sim GPU of 256 MiB is plenty for one small partition. */
static const char *const daemon_args[] = { "--sim-gpus", "1", "--vram", "256M", NULL };
static const struct dl_opts daemon_opts = { .name = "hv-infer-perf", .args = daemon_args };
static struct dl_daemon dmn;

/* Run a command line, capture its first output line. */
static int capture(const char *cmd, char *out, size_t len)
{
	FILE *p = popen(cmd, "r");
	int st;

	if (!p)
		return -1;
	out[0] = 0;
	if (!fgets(out, (int)len, p))
		out[0] = 0;
	while (fgetc(p) != EOF)
		;
	st = pclose(p);
	out[strcspn(out, "\n")] = 0;
	return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static float entry(uint32_t i, uint32_t j, uint32_t salt)
{
	return (float)((int32_t)((i * 7 + j * 3 + salt) % 17) - 8) * 0.125f;
}

static double now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e6 + (double)ts.tv_nsec * 1e-3;
}

static int host_step(struct gpup_vg *g, uint64_t bytes, uint64_t vc, uint64_t vsum,
		     uint64_t va, uint64_t vb)
{
	uint64_t gemm[6] = { N, N, N, va, vb, vc }, red[6] = { (uint64_t)N * N, vc, vsum };
	union gpup_cmd k[2] = { gpup_cmd_kernel(GPUP_KERNEL_GEMM, gemm, 6),
				gpup_cmd_kernel(GPUP_KERNEL_REDUCE, red, 6) };
	union gpup_cmd back[2] = {
		gpup_cmd_copy(GPUP_SPACE_VRAM, vc, GPUP_SPACE_IOVA,
			     gpup_vg_iova(GPUP_VG_DATA_OFF + 2 * bytes), bytes),
		gpup_cmd_copy(GPUP_SPACE_VRAM, vsum, GPUP_SPACE_IOVA,
			     gpup_vg_iova(GPUP_VG_DATA_OFF + 3 * bytes), 4),
	};

	if (gpup_vg_submit(g, 0, k, 2) || gpup_vg_fence_wait(g, 0, 60000, NULL) ||
	    gpup_vg_submit(g, 1, back, 2) || gpup_vg_fence_wait(g, 1, 60000, NULL))
		return -1;
	return 0;
}

/* The infer loop with no VM: mean us per iteration, and the sum. */
static double host_run(const char *sock, float *sum)
{
	uint64_t bytes = (uint64_t)N * N * 4, va = 0, vb = bytes, vc = 2 * bytes,
		 vsum = 3 * bytes;
	struct gpup_vg g;
	struct vfu_client *c;
	int err;
	double t = 0, t0;
	union gpup_cmd up[2] = {
		gpup_cmd_copy(GPUP_SPACE_IOVA, gpup_vg_iova(GPUP_VG_DATA_OFF), GPUP_SPACE_VRAM,
			     va, bytes),
		gpup_cmd_copy(GPUP_SPACE_IOVA, gpup_vg_iova(GPUP_VG_DATA_OFF + bytes),
			     GPUP_SPACE_VRAM, vb, bytes),
	};

	c = vfu_client_connect(sock, &err);
	if (!c || gpup_vg_open(&g, c, 8ull << 20) || gpup_vg_queue_setup(&g, 0, GPUP_ENGINE_COMPUTE) ||
	    gpup_vg_queue_setup(&g, 1, GPUP_ENGINE_COPY))
		return -1;
	for (uint32_t i = 0; i < N; i++)
		for (uint32_t j = 0; j < N; j++) {
			((float *)(g.ram + GPUP_VG_DATA_OFF))[i * N + j] = entry(i, j, 1);
			((float *)(g.ram + GPUP_VG_DATA_OFF + bytes))[i * N + j] = entry(j, i, 5);
		}
	/* A first step untimed, as the guest takes one. */
	if (gpup_vg_submit(&g, 1, up, 2) || gpup_vg_fence_wait(&g, 1, 60000, NULL) ||
	    host_step(&g, bytes, vc, vsum, va, vb))
		return -1;
	for (unsigned int i = 0; i < ITERS; i++) {
		t0 = now_us();
		if (host_step(&g, bytes, vc, vsum, va, vb))
			return -1;
		t += now_us() - t0;
	}
	memcpy(sum, g.ram + GPUP_VG_DATA_OFF + 3 * bytes, 4);
	gpup_vg_close(&g);
	vfu_client_close(c);
	return t / ITERS;
}

static int create(const char *bin, char *uuid, size_t len)
{
	char cmd[512];

	snprintf(cmd, sizeof(cmd), "%s --run-dir %s create --gpu gpu0 --type %s", bin,
		 dmn.run_dir, TYPE);
	return capture(cmd, uuid, len);
}

/* One guest run: its mean us per iteration, or -1. */
static double guest_run(const char *bin, const char *guests, const char *sock,
			char *line, size_t len)
{
	char cmd[1024];
	const char *p;
	unsigned long us;

	snprintf(cmd, sizeof(cmd), "%s run --kernel %s/infer.elf --gpu %s --append "
		 "'n=%u iters=%u sample'", bin, guests, sock, N, ITERS);
	if (capture(cmd, line, len) != 0 || !(p = strstr(line, " ok, sum ")) ||
	    sscanf(p + 9, "%*s %lu", &us) != 1)
		return -1;
	return (double)us;
}

/* Rounds alternate VM and host so that load from elsewhere on the machine
 * hits both; the tax is the median of the per-round ratios. */
static int measure(const char *bin, const char *guests)
{
	char uuid[64], sock[200], line[256];
	double g[ROUNDS], h[ROUNDS], ratio[ROUNDS];
	float sum = 0;

	if (dl_start(&dmn, &daemon_opts) || create(bin, uuid, sizeof(uuid)))
		return -1;
	snprintf(sock, sizeof(sock), "%s/%s.sock", dmn.run_dir, uuid);
	for (int r = 0; r < ROUNDS; r++) {
		g[r] = guest_run(bin, guests, sock, line, sizeof(line));
		h[r] = g[r] > 0 ? host_run(sock, &sum) : -1;
		if (g[r] <= 0 || h[r] <= 0) {
			printf("The guest or the host run failed: `%s`\n", line);
			return -1;
		}
		ratio[r] = g[r] / h[r];
	}
	printf("| where | gemm %ux%u + reduce + copies, per iteration (us), median |\n"
	       "|---|---:|\n", N, N);
	printf("| host process, no VM | %.0f |\n| guest under `gpup run` | %.0f |\n\n",
	       perf_median(h, ROUNDS), perf_median(g, ROUNDS));
	printf("Last guest line: `%s`; host sum %.3f.\n\n", line, (double)sum);
	printf("Virtualization tax: **%.1f%%** (median of %d rounds; target <= 5%%).\n",
	       (perf_median(ratio, ROUNDS) - 1.0) * 100.0, ROUNDS);
	return 0;
}

int main(void)
{
	const char *bin = getenv("GPUP_BIN"), *guests = getenv("GPUP_GUESTS");
	int rc;

	printf("## Inference in a VM vs no VM\n\n");
	if (!bin || !guests || access("/dev/kvm", R_OK | W_OK)) {
		printf("Not measured: needs /dev/kvm and `make bench` (GPUP_BIN, "
		       "GPUP_GUESTS).\n");
		return 0;
	}
	printf("%d rounds of %u iterations of the `infer` guest's loop on a %s "
	       "partition of a sim GPU: GEMM (f32, %ux%u), REDUCE of the product, both "
	       "copied back, a fence after each engine's batch.  The guest times only "
	       "the device work (its checks are outside the timing); the host process "
	       "submits the same packets over vfio-user without a VM.\n\n", ROUNDS,
	       ITERS, TYPE, N, N);
	rc = measure(bin, guests);
	dl_teardown(&dmn);
	if (rc)
		printf("Not measured: the daemon, the partition or a run failed.\n");
	return rc ? 1 : 0;
}
