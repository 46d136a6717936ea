// SPDX-License-Identifier: MIT
/*
 * Sim GPU copy throughput: COPY of 64 MiB from guest IOVA to VRAM and back
 * through a real vgpu queue (packets in guest memory, doorbell eventfd,
 * FENCE interrupt eventfd), against memcpy of the same bytes between the
 * same buffers in the same run.  Also the doorbell-to-interrupt latency of
 * a lone FENCE, the path a guest waits on for every small submission.
 * Prints one Markdown section for docs/BENCHMARKS.md.
 */
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "gpup/gpu/gpu.h"
#include "gpup/vgpu/vgpu.h"
#include "iommu/iommu.h"
#include "perf/perflib.h"
#include "uapi/gpup_vgpu.h"

#define COPY_SIZE (64ull << 20)
#define RAM_SIZE (COPY_SIZE + (2ull << 20))
#define RAM_IOVA 0x100000000ull
#define DATA_IOVA (RAM_IOVA + (2ull << 20))
/* The same RAM again at an IOVA 4 KiB off 2 MiB alignment: 4 KiB pages. */
#define RAM4K_IOVA 0x300001000ull
#define DATA4K_IOVA (RAM4K_IOVA + (2ull << 20))
#define RING_OFF(q) ((q) * 0x4000u)
#define PI_OFF 0x10000u
#define DONE_OFF 0x10010u
#define SYNC_OFF 0x10018u
#define ENTRIES 256u
#define REPS 7
#define LAT_REPS 2000
#define XQ_REPS 300

struct bench {
	struct gpup_gpu *gpu;
	struct iommu_domain *dom;
	struct vgpu *v;
	uint8_t *ram, *vram;
	int irq, irq1;
	uint32_t pi, pi1;
};

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static int wr(struct bench *b, uint32_t off, uint32_t val)
{
	return vgpu_bar0_write(b->v, off, &val, 4);
}

/* Queue q: its ring at RING_OFF(q), its PI at PI_OFF + 4q. */
static int queue_up(struct bench *b, unsigned int q, uint32_t engine)
{
	uint32_t reg = GPUP_REG_QUEUE(q);
	int r = 0;

	r |= wr(b, reg + GPUP_Q_RING_LO, (uint32_t)(RAM_IOVA + RING_OFF(q)));
	r |= wr(b, reg + GPUP_Q_RING_HI, (uint32_t)(RAM_IOVA >> 32));
	r |= wr(b, reg + GPUP_Q_RING_ENTRIES, ENTRIES);
	r |= wr(b, reg + GPUP_Q_ENGINE, engine);
	r |= wr(b, reg + GPUP_Q_PI_ADDR_LO, (uint32_t)(RAM_IOVA + PI_OFF + 4 * q));
	r |= wr(b, reg + GPUP_Q_PI_ADDR_HI, (uint32_t)(RAM_IOVA >> 32));
	r |= wr(b, reg + GPUP_Q_CONTROL, GPUP_QCTL_ENABLE);
	return r;
}

static int setup(struct bench *b)
{
	struct gpup_gpu_cfg gc = { .vram_size = 128ull << 20, .ncompute = 1, .ncopy = 1 };
	struct iommu_domain_cfg dc = { .name = "bench" };
	int fd = memfd_create("bench-ram", MFD_CLOEXEC), r = 0;

	b->gpu = gpup_sim_gpu_create(&gc);
	b->dom = iommu_domain_create(&dc);
	if (fd < 0 || !b->gpu || !b->dom || ftruncate(fd, RAM_SIZE) < 0)
		return -1;
	/* Guest RAM at a 2 MiB aligned host address, as a VMM maps it, so
	 * the IOMMU can use 2 MiB blocks. */
	uint8_t *area = mmap(NULL, RAM_SIZE + (2ull << 20), PROT_NONE,
			     MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);

	if (area == MAP_FAILED)
		return -1;
	b->ram = (uint8_t *)(((uintptr_t)area + (2ull << 20) - 1) & ~((2ull << 20) - 1));
	b->ram = mmap(b->ram, RAM_SIZE, PROT_READ | PROT_WRITE,
		      MAP_SHARED | MAP_POPULATE | MAP_FIXED, fd, 0);
	close(fd);
	if (b->ram == MAP_FAILED ||
	    iommu_map(b->dom, RAM_IOVA, b->ram, RAM_SIZE, IOMMU_READ | IOMMU_WRITE) ||
	    iommu_map(b->dom, RAM4K_IOVA, b->ram, RAM_SIZE, IOMMU_READ | IOMMU_WRITE))
		return -1;
	struct vgpu_cfg vc = { .gpu = b->gpu, .vram_size = 64ull << 20, .iommu = b->dom,
			       .name = "bench" };

	b->v = vgpu_create(&vc);
	b->irq = eventfd(0, EFD_CLOEXEC);
	b->irq1 = eventfd(0, EFD_CLOEXEC);
	if (!b->v || b->irq < 0 || b->irq1 < 0 || vgpu_set_irq_fd(b->v, 0, b->irq) ||
	    vgpu_set_irq_fd(b->v, 1, b->irq1))
		return -1;
	b->vram = gpup_gpu_vram_map(b->gpu);
	r |= wr(b, GPUP_REG_CONTROL, GPUP_CTRL_ENABLE);
	r |= queue_up(b, 0, GPUP_ENGINE_COPY);
	r |= queue_up(b, 1, GPUP_ENGINE_COMPUTE);
	return r;
}

/* Submit one command plus an interrupting fence; wait for the interrupt.
 * Returns the seconds from doorbell to interrupt, or -1. */
static double submit_wait(struct bench *b, const union gpup_cmd *cmd)
{
	union gpup_cmd f = { .fence = { .hdr = { .opcode = GPUP_OP_FENCE, .flags = GPUP_FENCE_IRQ },
			     .space = GPUP_SPACE_IOVA, .addr = RAM_IOVA + DONE_OFF,
			     .value = b->pi } };
	uint64_t one = 1, n;
	unsigned int k = 0;

	if (cmd)
		memcpy(b->ram + (b->pi + k++) % ENTRIES * GPUP_CMD_SIZE, cmd, GPUP_CMD_SIZE);
	memcpy(b->ram + (b->pi + k++) % ENTRIES * GPUP_CMD_SIZE, &f, GPUP_CMD_SIZE);
	b->pi += k;
	__atomic_store_n((uint32_t *)(b->ram + PI_OFF), b->pi, __ATOMIC_RELEASE);
	double t0 = now_s();

	if (write(vgpu_doorbell_fd(b->v, 0), &one, 8) != 8 || read(b->irq, &n, 8) != 8)
		return -1;
	return now_s() - t0;
}

/* Queue 1 (compute) waits for a value that queue 0 (copy) then fences:
 * seconds from queue 0's doorbell to queue 1's interrupt, or -1. */
static double cross_queue(struct bench *b, uint64_t value)
{
	union gpup_cmd c[2] = {
		{ .wait = { .hdr = { .opcode = GPUP_OP_WAIT }, .space = GPUP_SPACE_IOVA,
			    .op = GPUP_WAIT_GE, .addr = RAM_IOVA + SYNC_OFF, .value = value,
			    .mask = ~0ull } },
		{ .fence = { .hdr = { .opcode = GPUP_OP_FENCE, .flags = GPUP_FENCE_IRQ },
			     .space = GPUP_SPACE_IOVA, .addr = RAM_IOVA + DONE_OFF + 8,
			     .value = value } },
	};
	union gpup_cmd sig = { .fence = { .hdr = { .opcode = GPUP_OP_FENCE },
				.space = GPUP_SPACE_IOVA, .addr = RAM_IOVA + SYNC_OFF,
				.value = value } };
	uint64_t one = 1, n;

	for (unsigned int i = 0; i < 2; i++)
		memcpy(b->ram + RING_OFF(1) + (b->pi1 + i) % ENTRIES * GPUP_CMD_SIZE, &c[i],
		       GPUP_CMD_SIZE);
	b->pi1 += 2;
	__atomic_store_n((uint32_t *)(b->ram + PI_OFF + 4), b->pi1, __ATOMIC_RELEASE);
	if (write(vgpu_doorbell_fd(b->v, 1), &one, 8) != 8)
		return -1;
	usleep(200); /* let the WAIT stall first */
	memcpy(b->ram + (b->pi % ENTRIES) * GPUP_CMD_SIZE, &sig, GPUP_CMD_SIZE);
	b->pi++;
	__atomic_store_n((uint32_t *)(b->ram + PI_OFF), b->pi, __ATOMIC_RELEASE);
	double t0 = now_s();

	if (write(vgpu_doorbell_fd(b->v, 0), &one, 8) != 8 || read(b->irq1, &n, 8) != 8)
		return -1;
	return now_s() - t0;
}

static double best_copy(struct bench *b, uint8_t ss, uint64_t src, uint8_t ds, uint64_t dst)
{
	union gpup_cmd c = { .copy = { .hdr = { .opcode = GPUP_OP_COPY }, .src_space = ss,
			    .dst_space = ds, .src = src, .dst = dst, .len = COPY_SIZE } };
	double best = 1e9;

	for (int i = 0; i < REPS; i++) {
		double t = submit_wait(b, &c);

		if (t < 0)
			return -1;
		if (t < best)
			best = t;
	}
	return best;
}

static double best_memcpy(uint8_t *dst, const uint8_t *src)
{
	double best = 1e9;

	for (int i = 0; i < REPS; i++) {
		double t0 = now_s();

		memcpy(dst, src, COPY_SIZE);
		__asm__ volatile("" : : "r"(dst) : "memory");
		double t = now_s() - t0;

		if (t < best)
			best = t;
	}
	return best;
}

static void row(const char *dir, double t_copy, double t_mem)
{
	double g_copy = (double)COPY_SIZE / t_copy / 1e9, g_mem = (double)COPY_SIZE / t_mem / 1e9;

	printf("| %s | 64 MiB | %.2f | %.2f | %.2f | >= 0.8 |\n", dir, g_copy, g_mem,
	       g_copy / g_mem);
}

int main(void)
{
	struct bench b = { 0 };
	static double lat[LAT_REPS], xq[XQ_REPS];

	if (setup(&b)) {
		fprintf(stderr, "copy_perf: could not set up a sim GPU and vgpu\n");
		return 1;
	}
	uint8_t *guest = b.ram + (DATA_IOVA - RAM_IOVA);

	memset(guest, 0x5a, COPY_SIZE);
	memset(b.vram, 0, COPY_SIZE); /* fault VRAM pages in before timing */
	double in = best_copy(&b, GPUP_SPACE_IOVA, DATA_IOVA, GPUP_SPACE_VRAM, 0);
	double out = best_copy(&b, GPUP_SPACE_VRAM, 0, GPUP_SPACE_IOVA, DATA_IOVA);
	double in4k = best_copy(&b, GPUP_SPACE_IOVA, DATA4K_IOVA, GPUP_SPACE_VRAM, 0);
	double out4k = best_copy(&b, GPUP_SPACE_VRAM, 0, GPUP_SPACE_IOVA, DATA4K_IOVA);
	double m_in = best_memcpy(b.vram, guest), m_out = best_memcpy(guest, b.vram);

	for (int i = 0; i < LAT_REPS; i++)
		lat[i] = submit_wait(&b, NULL);
	perf_sort(lat, LAT_REPS);
	for (int i = 0; i < XQ_REPS; i++)
		xq[i] = cross_queue(&b, (uint64_t)i + 1);
	perf_sort(xq, XQ_REPS);
	if (in < 0 || out < 0 || in4k < 0 || out4k < 0 || lat[0] < 0 || xq[0] < 0) {
		fprintf(stderr, "copy_perf: a submission failed\n");
		return 1;
	}
	printf("## Sim GPU copy throughput\n\n");
	printf("COPY of 64 MiB through a vgpu queue on the sim GPU's copy engine, timed\n"
	       "from the doorbell eventfd write to the FENCE interrupt eventfd (best of %d),\n"
	       "against memcpy of the same bytes between the same guest-RAM memfd and VRAM\n"
	       "memfd mappings in the same run.  The IOVA side goes through the IOMMU DMA\n"
	       "API in 2 MiB chunks, after a check of the whole range (one translation\n"
	       "per IOMMU leaf) so that a faulting COPY writes nothing; with 4 KiB pages\n"
	       "that is a translation per page.  Command: `make bench`\n"
	       "(perf/copy_perf.c).\n\n", REPS);
	printf("| direction | size | sim COPY GB/s | memcpy GB/s | ratio | target |\n");
	printf("| --- | --- | --- | --- | --- | --- |\n");
	row("guest IOVA -> VRAM, 2 MiB IOMMU blocks", in, m_in);
	row("VRAM -> guest IOVA, 2 MiB IOMMU blocks", out, m_out);
	row("guest IOVA -> VRAM, 4 KiB IOMMU pages", in4k, m_in);
	row("VRAM -> guest IOVA, 4 KiB IOMMU pages", out4k, m_out);
	printf("\nLatency of a lone FENCE from doorbell to interrupt (the executor sleeps\n"
	       "in epoll on its queues' doorbell eventfds), %d submissions; and of a\n"
	       "WAIT on the compute engine released by a FENCE on the copy engine (a\n"
	       "completed FENCE re-polls the GPU's waiters at once), %d rounds:\n\n",
	       LAT_REPS, XQ_REPS);
	printf("| path | p50 us | p99 us | max us |\n| --- | --- | --- | --- |\n");
	printf("| doorbell eventfd -> FENCE irq eventfd | %.1f | %.1f | %.1f |\n",
	       lat[LAT_REPS / 2] * 1e6, lat[LAT_REPS * 99 / 100] * 1e6, lat[LAT_REPS - 1] * 1e6);
	printf("| copy-queue FENCE -> compute-queue WAIT -> its FENCE irq | %.1f | %.1f | %.1f |\n",
	       xq[XQ_REPS / 2] * 1e6, xq[XQ_REPS * 99 / 100] * 1e6, xq[XQ_REPS - 1] * 1e6);
	vgpu_destroy(b.v);
	close(b.irq);
	close(b.irq1);
	iommu_domain_destroy(b.dom);
	munmap(b.ram, RAM_SIZE);
	gpup_gpu_destroy(b.gpu);
	return 0;
}
