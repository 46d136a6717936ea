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

#include "gpup/gpu.h"
#include "gpup/vgpu.h"
#include "iommu/iommu.h"
#include "uapi/gpup_vgpu.h"

#define COPY_SIZE (64ull << 20)
#define RAM_SIZE (COPY_SIZE + (2ull << 20))
#define RAM_IOVA 0x100000000ull
#define DATA_IOVA (RAM_IOVA + (2ull << 20))
/* The same RAM again at an IOVA 4 KiB off 2 MiB alignment: 4 KiB pages. */
#define RAM4K_IOVA 0x300001000ull
#define DATA4K_IOVA (RAM4K_IOVA + (2ull << 20))
#define PI_OFF 0x10000u
#define DONE_OFF 0x10008u
#define ENTRIES 256u
#define REPS 7
#define LAT_REPS 2000

struct bench {
	struct gpup_gpu *gpu;
	struct iommu_domain *dom;
	struct vgpu *v;
	uint8_t *ram, *vram;
	int irq;
	uint32_t pi;
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
	if (!b->v || b->irq < 0 || vgpu_set_irq_fd(b->v, 0, b->irq))
		return -1;
	b->vram = gpup_gpu_vram_map(b->gpu);
	r |= wr(b, GPUP_REG_CONTROL, GPUP_CTRL_ENABLE);
	r |= wr(b, GPUP_REG_QUEUE(0) + GPUP_Q_RING_LO, (uint32_t)RAM_IOVA);
	r |= wr(b, GPUP_REG_QUEUE(0) + GPUP_Q_RING_HI, (uint32_t)(RAM_IOVA >> 32));
	r |= wr(b, GPUP_REG_QUEUE(0) + GPUP_Q_RING_ENTRIES, ENTRIES);
	r |= wr(b, GPUP_REG_QUEUE(0) + GPUP_Q_ENGINE, GPUP_ENGINE_COPY);
	r |= wr(b, GPUP_REG_QUEUE(0) + GPUP_Q_PI_ADDR_LO, (uint32_t)(RAM_IOVA + PI_OFF));
	r |= wr(b, GPUP_REG_QUEUE(0) + GPUP_Q_PI_ADDR_HI, (uint32_t)(RAM_IOVA >> 32));
	r |= wr(b, GPUP_REG_QUEUE(0) + GPUP_Q_CONTROL, GPUP_QCTL_ENABLE);
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

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
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
	static double lat[LAT_REPS];

	if (setup(&b)) {
		fprintf(stderr, "copy_bench: could not set up a sim GPU and vgpu\n");
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
	qsort(lat, LAT_REPS, sizeof(lat[0]), cmp_double);
	if (in < 0 || out < 0 || in4k < 0 || out4k < 0 || lat[0] < 0) {
		fprintf(stderr, "copy_bench: a submission failed\n");
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
	       "(bench/copy_bench.c).\n\n", REPS);
	printf("| direction | size | sim COPY GB/s | memcpy GB/s | ratio | target |\n");
	printf("| --- | --- | --- | --- | --- | --- |\n");
	row("guest IOVA -> VRAM, 2 MiB IOMMU blocks", in, m_in);
	row("VRAM -> guest IOVA, 2 MiB IOMMU blocks", out, m_out);
	row("guest IOVA -> VRAM, 4 KiB IOMMU pages", in4k, m_in);
	row("VRAM -> guest IOVA, 4 KiB IOMMU pages", out4k, m_out);
	printf("\nDoorbell-to-interrupt latency of a lone FENCE (the executor sleeps in\n"
	       "epoll on its queues' doorbell eventfds), %d submissions:\n\n", LAT_REPS);
	printf("| path | p50 us | p99 us | max us |\n| --- | --- | --- | --- |\n");
	printf("| doorbell eventfd -> FENCE irq eventfd | %.1f | %.1f | %.1f |\n",
	       lat[LAT_REPS / 2] * 1e6, lat[LAT_REPS * 99 / 100] * 1e6, lat[LAT_REPS - 1] * 1e6);
	vgpu_destroy(b.v);
	close(b.irq);
	iommu_domain_destroy(b.dom);
	munmap(b.ram, RAM_SIZE);
	gpup_gpu_destroy(b.gpu);
	return 0;
}
