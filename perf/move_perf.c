// SPDX-License-Identifier: MIT
/*
 * Moving a running partition to another GPU (vgpu_move, what `gpup move`
 * does in the daemon): the pause its guest sees and the time the whole
 * move takes, at 256 MiB, 1 GiB and 4 GiB partitions with up to 1 GiB of
 * VRAM in use, while a client keeps its engine busy and a guest thread
 * dirties 100 MiB/s of VRAM through its BAR2 mapping.  Two measures of
 * the pause: the device's own (queues off their engines, quiesce to
 * resume) and the client's (the longest wait for a fence of a stream of
 * short launches, over the same move, less the median wait when nothing
 * moves).  Beside them, a memcpy of the VRAM in use in the same run: what
 * a move that copies VRAM would have to do at the least, with the guest
 * stopped for its final round.  Then the same through a daemon, as an
 * operator moves a partition (`gpup move`: the control call, the
 * definition written and fsynced before the stop), with a client over
 * vfio-user ($GPUP_BIN names the gpup binary; without it that table is
 * left out).  Prints one Markdown section for docs/BENCHMARKS.md.
 */
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "gpup/ctl/ctl.h"
#include "gpup/drv/drv.h"
#include "gpup/gpu/gpu.h"
#include "gpup/vgpu/vgpu.h"
#include "iommu/iommu.h"
#include "perf/perflib.h"
#include "tests/daemonlib.h"
#include "uapi/gpup_ctl.h"
#include "uapi/gpup_vgpu.h"

#define GPU_VRAM (8ull << 30)
#define IN_USE_MAX (1ull << 30)
#define RAM_SIZE (2ull << 20)
#define RAM_IOVA 0x100000000ull
#define RING RAM_IOVA
#define PI (RAM_IOVA + 0x80000ull)
#define DONE (RAM_IOVA + 0x90000ull)
#define ENTRIES 256u
#define MOVES 40
#define GAP_MS 15
#define SAXPY_N (64u << 10)       /* floats: a launch of tens of µs */
#define DIRTY_CHUNK (1ull << 20)  /* 1 MiB every 10 ms: 100 MiB/s */

struct bench {
	struct gpup_gpu *gpu[2];
	struct iommu_domain *dom;
	struct vgpu *v;
	uint8_t *ram, *bar2;
	uint64_t size, in_use;
	int irq;
	uint32_t pi;
	volatile int stop;
	/* The client's fence waits, ns, with when each ended. */
	double *wait, *end;
	size_t nwait, capwait;
	pthread_mutex_t lock;
};

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static int wr(struct bench *b, uint32_t off, uint32_t val)
{
	return vgpu_bar0_write(b->v, off, &val, 4);
}

static int queue_up(struct bench *b)
{
	uint32_t q = GPUP_REG_QUEUE(0);
	int r = wr(b, GPUP_REG_CONTROL, GPUP_CTRL_ENABLE);

	r |= wr(b, q + GPUP_Q_RING_LO, (uint32_t)RING);
	r |= wr(b, q + GPUP_Q_RING_HI, (uint32_t)(RING >> 32));
	r |= wr(b, q + GPUP_Q_RING_ENTRIES, ENTRIES);
	r |= wr(b, q + GPUP_Q_ENGINE, GPUP_ENGINE_COMPUTE);
	r |= wr(b, q + GPUP_Q_PI_ADDR_LO, (uint32_t)PI);
	r |= wr(b, q + GPUP_Q_PI_ADDR_HI, (uint32_t)(PI >> 32));
	r |= wr(b, q + GPUP_Q_CONTROL, GPUP_QCTL_ENABLE);
	return r;
}

/* One SAXPY and a fence with interrupt, rung through the doorbell eventfd. */
static void submit(struct bench *b, uint64_t seq)
{
	uint32_t abits = 0x3f800000u;
	union gpup_cmd c[2] = {
		gpup_cmd_kernel(GPUP_KERNEL_SAXPY, (uint64_t[4]){ SAXPY_N, abits, 0, 1 << 20 }, 4),
		gpup_cmd_fence(GPUP_SPACE_IOVA, DONE, seq, GPUP_FENCE_IRQ),
	};
	uint64_t one = 1;

	for (unsigned int i = 0; i < 2; i++)
		memcpy(b->ram + (RING - RAM_IOVA) + (b->pi + i) % ENTRIES * GPUP_CMD_SIZE, &c[i],
		       GPUP_CMD_SIZE);
	b->pi += 2;
	__atomic_store_n((uint32_t *)(b->ram + (PI - RAM_IOVA)), b->pi, __ATOMIC_RELEASE);
	if (write(vgpu_doorbell_fd(b->v, 0), &one, 8) != 8)
		perror("doorbell");
}

static void record(struct bench *b, double wait, double end)
{
	pthread_mutex_lock(&b->lock);
	if (b->nwait == b->capwait) {
		b->capwait = b->capwait * 2 + 1024;
		b->wait = realloc(b->wait, b->capwait * sizeof(double));
		b->end = realloc(b->end, b->capwait * sizeof(double));
	}
	b->wait[b->nwait] = wait;
	b->end[b->nwait++] = end;
	pthread_mutex_unlock(&b->lock);
}

/* The client: launch, wait for the fence's interrupt, again. */
static void *client(void *arg)
{
	struct bench *b = arg;
	struct pollfd p = { .fd = b->irq, .events = POLLIN };
	uint64_t seq = 0, n;

	while (!b->stop) {
		uint64_t t0 = now_ns();

		submit(b, ++seq);
		while (__atomic_load_n((uint64_t *)(b->ram + (DONE - RAM_IOVA)), __ATOMIC_ACQUIRE) !=
		       seq) {
			if (poll(&p, 1, 1000) == 1 && read(b->irq, &n, 8) != 8)
				perror("irq");
		}
		record(b, (double)(now_ns() - t0), (double)now_ns());
	}
	return NULL;
}

/* The guest CPU: 100 MiB/s of stores through BAR2, above the SAXPY data. */
static void *dirtier(void *arg)
{
	struct bench *b = arg;
	uint64_t off = 8ull << 20;
	uint8_t v = 1;

	while (!b->stop) {
		memset(b->bar2 + off, v++, DIRTY_CHUNK);
		off += DIRTY_CHUNK;
		if (off + DIRTY_CHUNK > b->in_use)
			off = 8ull << 20;
		usleep(10000);
	}
	return NULL;
}

static int setup(struct bench *b, uint64_t size)
{
	struct iommu_domain_cfg dc = { .name = "move" };
	int fd = memfd_create("guest-ram", 0);

	memset(b, 0, sizeof(*b));
	pthread_mutex_init(&b->lock, NULL);
	b->size = size;
	b->in_use = size < IN_USE_MAX ? size : IN_USE_MAX;
	for (unsigned int i = 0; i < 2; i++) {
		struct gpup_gpu_cfg gc = { .index = i, .vram_size = GPU_VRAM, .ncompute = 1,
					   .ncopy = 1 };

		b->gpu[i] = gpup_sim_gpu_create(&gc);
		if (!b->gpu[i])
			return -1;
	}
	if (fd < 0 || ftruncate(fd, RAM_SIZE))
		return -1;
	b->ram = mmap(NULL, RAM_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	close(fd);
	b->dom = iommu_domain_create(&dc);
	if (b->ram == MAP_FAILED || !b->dom ||
	    iommu_map(b->dom, RAM_IOVA, b->ram, RAM_SIZE, IOMMU_READ | IOMMU_WRITE))
		return -1;
	struct vgpu_cfg vc = { .gpu = b->gpu[0], .vram_size = size, .iommu = b->dom,
			       .name = "move", .type = "perf" };

	b->v = vgpu_create(&vc);
	b->irq = eventfd(0, EFD_NONBLOCK);
	if (!b->v || b->irq < 0 || vgpu_set_irq_fd(b->v, 0, b->irq) || queue_up(b))
		return -1;
	b->bar2 = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED,
		       gpup_gpu_vram_fd(b->gpu[0], 0), 0);
	if (b->bar2 == MAP_FAILED)
		return -1;
	/* In use: every page of it written by the guest. */
	memset(b->bar2, 0x5a, b->in_use);
	return 0;
}

static void teardown(struct bench *b)
{
	munmap(b->bar2, b->size);
	vgpu_destroy(b->v);
	close(b->irq);
	iommu_domain_destroy(b->dom);
	munmap(b->ram, RAM_SIZE);
	for (unsigned int i = 0; i < 2; i++)
		gpup_gpu_destroy(b->gpu[i]);
	free(b->wait);
	free(b->end);
	pthread_mutex_destroy(&b->lock);
}

/* The longest client wait that ended in [t0, t1 + 50 ms]: the one the move
 * held up. */
static double worst_wait(struct bench *b, double t0, double t1)
{
	double w = 0;

	pthread_mutex_lock(&b->lock);
	for (size_t i = b->nwait; i-- > 0 && b->end[i] >= t0;)
		if (b->end[i] <= t1 + 50e6 && b->wait[i] > w)
			w = b->wait[i];
	pthread_mutex_unlock(&b->lock);
	return w;
}

/* The median client wait so far, nothing moving, and in *floor how much
 * longer its p99 is: the host's own noise in the same measure. */
static double median_wait(struct bench *b, double *floor)
{
	double *c, m;

	pthread_mutex_lock(&b->lock);
	c = malloc(b->nwait * sizeof(double));
	memcpy(c, b->wait, b->nwait * sizeof(double));
	m = perf_median(c, b->nwait);
	*floor = c[(size_t)(0.99 * (double)(b->nwait - 1))] - m;
	pthread_mutex_unlock(&b->lock);
	free(c);
	return m;
}

/* What copying the VRAM in use costs here: a memcpy of it, median of 3. */
static double memcpy_ms(uint64_t bytes)
{
	uint8_t *src = malloc(bytes), *dst = malloc(bytes);
	double t[3];

	memset(src, 1, bytes);
	memset(dst, 2, bytes);
	for (int i = 0; i < 3; i++) {
		uint64_t t0 = now_ns();

		memcpy(dst, src, bytes);
		t[i] = (double)(now_ns() - t0) / 1e6;
	}
	free(src);
	free(dst);
	return perf_median(t, 3);
}

struct result {
	double pause[MOVES], stall[MOVES], total[MOVES];
	double idle[MOVES];   /* the stall measure over windows with no move */
	double base_us, floor_us, copy_ms;
	int failed;
};

/* The longest round of a window like a move's, less the median: *over
 * the move when move, else over nothing. */
static double stall_ms(struct bench *b, struct result *res, double t0)
{
	double s = worst_wait(b, t0 + GAP_MS * 1e6, (double)now_ns()) / 1e6 - res->base_us / 1e3;

	return s < 0 ? 0 : s;
}

static void run_moves(struct bench *b, struct result *res)
{
	char err[256];

	for (int i = 0; i < MOVES; i++) {
		double t0 = (double)now_ns();

		usleep(2 * GAP_MS * 1000);
		res->idle[i] = stall_ms(b, res, t0);
	}
	for (int i = 0; i < MOVES; i++) {
		struct vgpu_move_stats st;
		double t0 = (double)now_ns();

		usleep(GAP_MS * 1000);
		if (vgpu_move(b->v, b->gpu[(i + 1) % 2], 0, 0, &st, err, sizeof(err))) {
			fprintf(stderr, "move_perf: move %d: %s\n", i, err);
			res->failed++;
		}
		usleep(GAP_MS * 1000);
		res->pause[i] = st.pause_ns / 1e6;
		res->total[i] = st.total_ns / 1e6;
		res->stall[i] = stall_ms(b, res, t0);
	}
}

static int measure(uint64_t size, struct result *res)
{
	struct bench b;
	pthread_t tc, td;

	memset(res, 0, sizeof(*res));
	if (setup(&b, size)) {
		perror("move_perf: setup");
		return -1;
	}
	pthread_create(&tc, NULL, client, &b);
	pthread_create(&td, NULL, dirtier, &b);
	usleep(300000);
	res->base_us = median_wait(&b, &res->floor_us) / 1e3;
	res->floor_us /= 1e3;
	run_moves(&b, res);
	b.stop = 1;
	pthread_join(tc, NULL);
	pthread_join(td, NULL);
	res->copy_ms = memcpy_ms(b.in_use);
	teardown(&b);
	return 0;
}

static double pct(double *v, double p)
{
	perf_sort(v, MOVES);
	return v[(size_t)(p * (MOVES - 1) + 0.5)];
}

static void row(uint64_t size, struct result *r)
{
	char sz[16];
	double tot50 = pct(r->total, 0.5);

	snprintf(sz, sizeof(sz), size >= (1ull << 30) ? "%llu GiB" : "%llu MiB",
		 (unsigned long long)(size >= (1ull << 30) ? size >> 30 : size >> 20));
	printf("| %s | %llu MiB | %.2f / %.2f | %.2f / %.2f | %.2f / %.2f | %.2f / %.2f | %.1f | "
	       "%.3f |%s\n", sz, (unsigned long long)((size < IN_USE_MAX ? size : IN_USE_MAX) >> 20),
	       pct(r->pause, 0.5), pct(r->pause, 0.99), pct(r->stall, 0.5), pct(r->stall, 0.99),
	       pct(r->idle, 0.5), pct(r->idle, 0.99), tot50, pct(r->total, 0.99), r->copy_ms,
	       tot50 / r->copy_ms,
	       r->failed ? " (moves failed)" : "");
}

/* ---- the same through a daemon: `gpup move` ---- */

#define DMN_MOVES 20

struct dclient {
	struct gpup_vg g;
	uint8_t *bar2;
	uint64_t in_use;
	volatile int stop;
};

static void *dclient_run(void *arg)
{
	struct dclient *c = arg;
	uint32_t abits = 0x3f800000u;
	union gpup_cmd k = gpup_cmd_kernel(GPUP_KERNEL_SAXPY,
					   (uint64_t[4]){ SAXPY_N, abits, 0, 1 << 20 }, 4);

	while (!c->stop)
		if (gpup_vg_submit(&c->g, 0, &k, 1) || gpup_vg_fence_wait(&c->g, 0, 5000, NULL))
			fprintf(stderr, "move_perf: the client's work failed\n");
	return NULL;
}

static void *ddirtier(void *arg)
{
	struct dclient *c = arg;
	uint64_t off = 8ull << 20;

	while (!c->stop) {
		memset(c->bar2 + off, (int)off, DIRTY_CHUNK);
		off = off + 2 * DIRTY_CHUNK > c->in_use ? 8ull << 20 : off + DIRTY_CHUNK;
		usleep(10000);
	}
	return NULL;
}

static int dattach(struct dl_daemon *d, const char *uuid, struct dclient *c, uint64_t size)
{
	struct vfio_region_info ri = { .argsz = sizeof(ri) };
	char path[160];
	int err = 0, fd = -1;
	struct vfu_client *vc;

	snprintf(path, sizeof(path), "%s/%s.sock", d->run_dir, uuid);
	vc = vfu_client_connect(path, &err);
	if (!vc || gpup_vg_open(&c->g, vc, 4 << 20) ||
	    vfu_client_region_info(vc, VFIO_PCI_BAR2_REGION_INDEX, &ri, &fd) || fd < 0)
		return -1;
	c->bar2 = mmap(NULL, ri.size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	close(fd);
	c->in_use = size < IN_USE_MAX ? size : IN_USE_MAX;
	if (c->bar2 == MAP_FAILED)
		return -1;
	memset(c->bar2, 0x5a, c->in_use);
	return gpup_vg_queue_setup(&c->g, 0, GPUP_ENGINE_COMPUTE);
}

static json_object *dcall(struct dl_daemon *d, json_object *req)
{
	json_object *r = NULL;

	if (gpup_ctl_call(d->run_dir, req, &r) ||
	    !json_object_get_boolean(json_object_object_get(r, GPUP_CTL_F_OK))) {
		fprintf(stderr, "move_perf: %s\n", gpup_ctl_str(r, GPUP_CTL_F_ERROR, "no daemon"));
		json_object_put(r);
		r = NULL;
	}
	json_object_put(req);
	return r;
}

/* DMN_MOVES moves of a busy partition of type through the daemon. */
static int dmeasure(struct dl_daemon *d, const char *type, uint64_t size, struct result *res)
{
	json_object *req = gpup_ctl_request(GPUP_CTL_M_CREATE), *r;
	struct dclient c = { 0 };
	struct vfu_client *vc;
	char uuid[40];
	pthread_t tc, td;

	memset(res, 0, sizeof(*res));
	json_object_object_add(req, GPUP_CTL_F_TYPE, json_object_new_string(type));
	json_object_object_add(req, GPUP_CTL_F_GPU, json_object_new_string("gpu0"));
	if (!(r = dcall(d, req)))
		return -1;
	snprintf(uuid, sizeof(uuid), "%s", gpup_ctl_str(r, GPUP_CTL_F_UUID, ""));
	json_object_put(r);
	if (dattach(d, uuid, &c, size))
		return -1;
	pthread_create(&tc, NULL, dclient_run, &c);
	pthread_create(&td, NULL, ddirtier, &c);
	for (int i = 0; i < DMN_MOVES; i++) {
		uint64_t t0;

		usleep(GAP_MS * 1000);
		req = gpup_ctl_request(GPUP_CTL_M_MOVE);
		json_object_object_add(req, GPUP_CTL_F_UUID, json_object_new_string(uuid));
		json_object_object_add(req, GPUP_CTL_F_GPU, json_object_new_string(i % 2 ? "gpu0" : "gpu1"));
		t0 = now_ns();
		r = dcall(d, req);
		res->stall[i] = (double)(now_ns() - t0) / 1e6;
		res->failed += !r;
		res->pause[i] = (double)gpup_ctl_int(r, GPUP_CTL_F_MOVE_PAUSE_US, 0) / 1e3;
		res->total[i] = (double)gpup_ctl_int(r, GPUP_CTL_F_MOVE_US, 0) / 1e3;
		json_object_put(r);
	}
	c.stop = 1;
	pthread_join(tc, NULL);
	pthread_join(td, NULL);
	munmap(c.bar2, size);
	vc = c.g.c;
	gpup_vg_close(&c.g);
	vfu_client_close(vc);
	req = gpup_ctl_request(GPUP_CTL_M_DESTROY);
	json_object_object_add(req, GPUP_CTL_F_UUID, json_object_new_string(uuid));
	/* Its client may not be gone from the daemon's side yet. */
	json_object_object_add(req, GPUP_CTL_F_FORCE, json_object_new_boolean(1));
	json_object_put(dcall(d, req));
	return 0;
}

static double dpct(double *v, double p)
{
	perf_sort(v, DMN_MOVES);
	return v[(size_t)(p * (DMN_MOVES - 1) + 0.5)];
}

static void daemon_table(const char *const *types, const uint64_t *sizes)
{
	static const char *const args[] = { "--sim-gpus", "2", "--vram", "4G", NULL };
	struct dl_opts o = { .name = "gpup-move-perf", .args = args };
	struct dl_daemon d = { 0 };
	struct result res[3];

	if (!getenv("GPUP_BIN") || dl_start(&d, &o)) {
		printf("\n(No daemon: set GPUP_BIN to the gpup binary for `gpup move` through a "
		       "daemon.)\n");
		dl_teardown(&d);
		return;
	}
	for (int i = 0; i < 3; i++)
		if (dmeasure(&d, types[i], sizes[i], &res[i]))
			res[i].failed = DMN_MOVES;
	dl_teardown(&d);
	printf("\nThrough a daemon (`gpup move`, %d moves per size between two 4 GiB sim GPUs,\n"
	       "a client over vfio-user as busy as above, 100 MiB/s through BAR2).  *Call*:\n"
	       "the control call as a client sees it, which also writes and fsyncs the\n"
	       "definition before the stop.  ms, p50 / p99.\n\n", DMN_MOVES);
	printf("| type | pause | total (device) | call |\n| --- | --- | --- | --- |\n");
	for (int i = 0; i < 3; i++)
		printf("| %s | %.2f / %.2f | %.2f / %.2f | %.2f / %.2f |%s\n", types[i],
		       dpct(res[i].pause, 0.5), dpct(res[i].pause, 0.99), dpct(res[i].total, 0.5),
		       dpct(res[i].total, 0.99), dpct(res[i].stall, 0.5), dpct(res[i].stall, 0.99),
		       res[i].failed ? " (moves failed)" : "");
}

int main(void)
{
	static const uint64_t sizes[] = { 256ull << 20, 1ull << 30, 4ull << 30 };
	static const char *const types[] = { "sim-256m-16", "sim-1g-4", "sim-4g-1" };
	struct result res[3];
	double base = 0, floor = 0;

	for (int i = 0; i < 3; i++) {
		if (measure(sizes[i], &res[i]))
			return 1;
		base += res[i].base_us / 3;
		floor += res[i].floor_us / 3;
	}
	printf("## Moving a partition to another GPU (`gpup move`)\n\n");
	printf("%d moves back and forth between two sim GPUs per size, %d ms apart, with the\n"
	       "client's engine busy (a SAXPY of %u floats and a fence with interrupt, again\n"
	       "and again: %.0f µs a round when nothing moves) and a guest thread writing\n"
	       "100 MiB/s through its BAR2 mapping.  *Pause*: the device's, queues off\n"
	       "their engines from quiesce to resume.  *Client stall*: the longest fence\n"
	       "round over a move less the median round, what the guest sees; *no move*:\n"
	       "the same measure over as many windows as long with nothing moving, the\n"
	       "host's own noise on shared cores (the p99 round is %.2f ms over the\n"
	       "median).  *Total*:\n"
	       "the whole vgpu_move call.  *memcpy*: copying the VRAM in use once, in the\n"
	       "same run, the least a move that copies VRAM would cost.  ms, p50 / p99.\n\n",
	       MOVES, GAP_MS, SAXPY_N, base, floor / 1e3);
	printf("| VRAM | in use | pause | client stall | no move | total | memcpy of in use | "
	       "total / memcpy |\n");
	printf("| --- | --- | --- | --- | --- | --- | --- | --- |\n");
	for (int i = 0; i < 3; i++)
		row(sizes[i], &res[i]);
	daemon_table(types, sizes);
	printf("\nNothing of VRAM is copied: the partition's VRAM file moves to the other\n"
	       "GPU, so neither the pause nor the total grows with VRAM size or with what\n"
	       "the guest dirties (docs/MIGRATION.md, \"Moving a partition\").\n");
	return 0;
}
