// SPDX-License-Identifier: MIT
/*
 * Client memory mapped without an fd, reached with DMA_READ / DMA_WRITE
 * over the vfio-user socket, against memory mapped from an fd, in the same
 * run: COPY throughput from each into VRAM through a real vgpu queue and
 * server (ring and fences in fd memory either way), and the round trip of
 * one 8-byte DMA_READ asked by a device thread against a plain socket
 * round trip between two threads.  Prints one Markdown section for
 * docs/BENCHMARKS.md.
 */
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "gpup/gpu/gpu.h"
#include "gpup/vgpu/vgpu.h"
#include "iommu/iommu.h"
#include "perf/perflib.h"
#include "uapi/gpup_vgpu.h"
#include "vfu/vfu.h"

#define MIB (1ull << 20)
#define COPY_SIZE (32 * MIB)
#define FD_IOVA 0x100000000ull    /* ring, PI, fences, then data */
#define FDLESS_IOVA 0x200000000ull
#define FD_SIZE (COPY_SIZE + 2 * MIB)
#define DATA_OFF (2 * MIB)
#define PI_OFF 0x10000u
#define FENCE_OFF 0x10010u
#define ENTRIES 256u
#define REPS 7
#define LAT_BATCHES 7
#define LAT_OPS 1000

struct bench {
	struct gpup_gpu *gpu;
	struct iommu_domain *dom;
	struct vgpu *v;
	struct vfu_server *srv;
	struct vfu_client *cl;
	uint8_t *ram, *fdless;
	int irq;                  /* the fence's interrupt eventfd */
	uint32_t pi;
	uint64_t seq;
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

static int setup_queue(struct bench *b)
{
	uint32_t q = GPUP_REG_QUEUE(0);

	return wr(b, GPUP_REG_CONTROL, GPUP_CTRL_ENABLE) || wr(b, q + GPUP_Q_RING_LO, 0) ||
	       wr(b, q + GPUP_Q_RING_HI, (uint32_t)(FD_IOVA >> 32)) ||
	       wr(b, q + GPUP_Q_RING_ENTRIES, ENTRIES) ||
	       wr(b, q + GPUP_Q_ENGINE, GPUP_ENGINE_COPY) ||
	       wr(b, q + GPUP_Q_PI_ADDR_LO, PI_OFF) ||
	       wr(b, q + GPUP_Q_PI_ADDR_HI, (uint32_t)(FD_IOVA >> 32)) ||
	       wr(b, q + GPUP_Q_CONTROL, GPUP_QCTL_ENABLE);
}

static int bench_open(struct bench *b)
{
	struct gpup_gpu_cfg gc = { .index = 0, .vram_size = 64 * MIB, .ncompute = 1, .ncopy = 1 };
	struct iommu_domain_cfg dc = { .name = "perf" };
	int sv[2], err = 0, fd = memfd_create("perf-ram", MFD_CLOEXEC);

	b->gpu = gpup_sim_gpu_create(&gc);
	b->dom = b->gpu ? iommu_domain_create(&dc) : NULL;
	struct vgpu_cfg vc = { .gpu = b->gpu, .vram_size = 64 * MIB, .iommu = b->dom };

	b->v = b->dom ? vgpu_create(&vc) : NULL;
	b->srv = b->v ? vgpu_serve(b->v, NULL, NULL) : NULL;
	if (!b->srv || fd < 0 || ftruncate(fd, FD_SIZE) ||
	    socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) ||
	    vfu_server_attach(b->srv, sv[0]))
		return -1;
	b->cl = vfu_client_open_fd(sv[1], &err);
	b->ram = mmap(NULL, FD_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	b->fdless = aligned_alloc(2 * MIB, COPY_SIZE);
	if (!b->cl || b->ram == MAP_FAILED || !b->fdless)
		return -1;
	memset(b->fdless, 0x3c, COPY_SIZE);
	memset(b->ram + DATA_OFF, 0x3c, COPY_SIZE);
	if (vfu_client_dma_map(b->cl, fd, 0, FD_IOVA, FD_SIZE,
			       VFIO_USER_DMA_F_READ | VFIO_USER_DMA_F_WRITE) ||
	    vfu_client_dma_map_mem(b->cl, b->fdless, FDLESS_IOVA, COPY_SIZE,
				   VFIO_USER_DMA_F_READ | VFIO_USER_DMA_F_WRITE))
		return -1;
	close(fd);
	b->irq = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (b->irq < 0 || vgpu_set_irq_fd(b->v, 0, b->irq))
		return -1;
	return setup_queue(b);
}

/* COPY len bytes at src to VRAM and a fence with interrupt; serve the
 * client's end until the fence lands.  Seconds, or a negative value. */
static double copy_once(struct bench *b, uint64_t src)
{
	union gpup_cmd c[2] = {
		gpup_cmd_copy(GPUP_SPACE_IOVA, src, GPUP_SPACE_VRAM, 0, COPY_SIZE),
		gpup_cmd_fence(GPUP_SPACE_IOVA, FD_IOVA + FENCE_OFF, ++b->seq, GPUP_FENCE_IRQ),
	};
	struct pollfd p[2] = { { .fd = vfu_client_socket(b->cl), .events = POLLIN },
			       { .fd = b->irq, .events = POLLIN } };
	uint64_t n;
	double t0;

	for (unsigned int i = 0; i < 2; i++, b->pi++)
		memcpy(b->ram + (b->pi % ENTRIES) * GPUP_CMD_SIZE, &c[i], GPUP_CMD_SIZE);
	__atomic_store_n((uint32_t *)(b->ram + PI_OFF), b->pi, __ATOMIC_RELEASE);
	t0 = now_s();
	vgpu_doorbell(b->v, 0);
	while (__atomic_load_n((uint64_t *)(b->ram + FENCE_OFF), __ATOMIC_ACQUIRE) != b->seq) {
		if (poll(p, 2, 1000) > 0 && p[0].revents && vfu_client_serve(b->cl) < 0)
			return -1;
		if (p[1].revents && read(b->irq, &n, sizeof(n)) < 0)
			return -1;
		if (now_s() - t0 > 30)
			return -1;
	}
	return now_s() - t0;
}

/* The client's end served on a thread of its own, for the latency runs. */
struct server_side {
	struct vfu_client *cl;
	int stop[2];
};

static void *client_thread(void *arg)
{
	struct server_side *ss = arg;
	struct pollfd p[2] = { { .fd = vfu_client_socket(ss->cl), .events = POLLIN },
			       { .fd = ss->stop[0], .events = POLLIN } };

	while (poll(p, 2, -1) > 0 && !p[1].revents)
		if (p[0].revents && vfu_client_serve(ss->cl) < 0)
			break;
	return NULL;
}

static void *echo_thread(void *arg)
{
	int s = *(int *)arg;
	char buf[32];

	while (read(s, buf, sizeof(buf)) == (ssize_t)sizeof(buf))
		if (write(s, buf, sizeof(buf)) != (ssize_t)sizeof(buf))
			break;
	return NULL;
}

/* Median and range of LAT_BATCHES batches of LAT_OPS round trips, in us
 * per trip: DMA_READ of 8 bytes by this thread (a device thread), and a
 * 32-byte write and read back over a socketpair to an echo thread. */
static int latency(struct bench *b, double *dma, double *sock)
{
	struct vfu_dma_chan *ch = vfu_server_dma_chan(b->srv);
	struct server_side ss = { .cl = b->cl };
	pthread_t ct, et;
	int sv[2], rc = 0;
	char buf[32] = { 0 };
	uint64_t v;

	if (pipe(ss.stop) || socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) ||
	    pthread_create(&ct, NULL, client_thread, &ss) ||
	    pthread_create(&et, NULL, echo_thread, &sv[1]))
		return -1;
	for (int k = 0; k < LAT_BATCHES && !rc; k++) {
		double t0 = now_s();

		for (int i = 0; i < LAT_OPS && !rc; i++)
			rc = vfu_dma_chan_rw(ch, FDLESS_IOVA + (uint64_t)i * 8, &v, 8, false,
					     UINT64_MAX, NULL, NULL);
		dma[k] = (now_s() - t0) * 1e6 / LAT_OPS;
		t0 = now_s();
		for (int i = 0; i < LAT_OPS && !rc; i++)
			rc = write(sv[0], buf, 32) != 32 || read(sv[0], buf, 32) != 32;
		sock[k] = (now_s() - t0) * 1e6 / LAT_OPS;
	}
	if (write(ss.stop[1], "x", 1) != 1)
		rc = -1;
	pthread_join(ct, NULL);
	shutdown(sv[0], SHUT_RDWR);
	pthread_join(et, NULL);
	close(sv[0]);
	close(sv[1]);
	close(ss.stop[0]);
	close(ss.stop[1]);
	vfu_dma_chan_put(ch);
	return rc;
}

static void report(double *fd, double *fdless, double *dma, double *sock)
{
	double gb = (double)COPY_SIZE / 1e9, r[REPS];

	for (int i = 0; i < REPS; i++)
		r[i] = fd[i] / fdless[i];
	printf("## Client memory without an fd (DMA_READ / DMA_WRITE)\n\n");
	printf("One sim GPU copy engine, one partition served over a socketpair in process "
	       "(the client's end served by the timing thread); COPY of %llu MiB into VRAM, "
	       "from memory the client mapped from an fd and from memory it mapped without "
	       "one (which the engine reads with DMA_READ, 1 MiB a request, the client's "
	       "max_data_xfer_size), %d runs alternating, median (range).  Command: "
	       "`make bench` (perf/dmarw_perf.c).\n\n",
	       (unsigned long long)(COPY_SIZE / MIB), REPS);
	printf("| source | GB/s |\n|---|---|\n");
	/* Sorted first: the arguments below are evaluated in any order. */
	perf_median(fd, REPS);
	perf_median(fdless, REPS);
	perf_median(r, REPS);
	perf_median(dma, LAT_BATCHES);
	perf_median(sock, LAT_BATCHES);
	printf("| memory mapped from an fd | %.2f (%.2f-%.2f) |\n", gb / perf_median(fd, REPS),
	       gb / fd[REPS - 1], gb / fd[0]);
	printf("| memory without an fd | %.2f (%.2f-%.2f) |\n\n",
	       gb / perf_median(fdless, REPS), gb / fdless[REPS - 1], gb / fdless[0]);
	printf("fd-less throughput / fd throughput, per pair of runs: %.3f (%.3f-%.3f).\n\n",
	       perf_median(r, REPS), r[0], r[REPS - 1]);
	printf("| round trip | us |\n|---|---|\n");
	printf("| DMA_READ of 8 bytes from a device thread | %.1f (%.1f-%.1f) |\n",
	       perf_median(dma, LAT_BATCHES), dma[0], dma[LAT_BATCHES - 1]);
	printf("| plain socketpair write + read, 32 bytes | %.1f (%.1f-%.1f) |\n\n",
	       perf_median(sock, LAT_BATCHES), sock[0], sock[LAT_BATCHES - 1]);
	printf("Per-trip means of %d batches of %d: a device thread asks the channel, the "
	       "serving thread sends the request, the client's thread answers, the serving "
	       "thread routes the reply: four wake-ups where the plain round trip has two.  "
	       "Without an fd each MiB is copied into the client's reply, through the socket "
	       "and out of the server's buffer, one request at a time.\n",
	       LAT_BATCHES, LAT_OPS);
}

int main(void)
{
	struct bench b = { 0 };
	double fd[REPS], fdless[REPS], dma[LAT_BATCHES], sock[LAT_BATCHES];

	if (bench_open(&b)) {
		fprintf(stderr, "dmarw_perf: setup failed\n");
		return 1;
	}
	copy_once(&b, FD_IOVA + DATA_OFF);
	for (int i = 0; i < REPS; i++) {
		fd[i] = copy_once(&b, FD_IOVA + DATA_OFF);
		fdless[i] = copy_once(&b, FDLESS_IOVA);
		if (fd[i] < 0 || fdless[i] < 0) {
			fprintf(stderr, "dmarw_perf: a copy failed\n");
			return 1;
		}
	}
	if (latency(&b, dma, sock)) {
		fprintf(stderr, "dmarw_perf: a round trip failed\n");
		return 1;
	}
	report(fd, fdless, dma, sock);
	vfu_client_close(b.cl);
	vfu_server_destroy(b.srv);
	vgpu_destroy(b.v);
	iommu_domain_destroy(b.dom);
	gpup_gpu_destroy(b.gpu);
	free(b.fdless);
	munmap(b.ram, FD_SIZE);
	close(b.irq);
	return 0;
}
