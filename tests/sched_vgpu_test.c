// SPDX-License-Identifier: MIT
/*
 * A partition's scheduler settings (vgpu_set_sched): they reach the
 * contexts of its enabled queues, queues enabled later get them too, they
 * survive a fresh scheduler being swapped in (vgpu_sched_reapply), bad
 * settings change nothing, and a listing can tell whose queue a context
 * is.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <sys/mman.h>

#include "gpup/gpu/gpu.h"
#include "gpup/vgpu/vgpu.h"
#include "iommu/iommu.h"
#include "uapi/gpup_vgpu.h"

#define VRAM (32ull << 20)
#define PART (8ull << 20)
#define RAM_IOVA 0x40000000ull
#define RAM_SIZE (1ull << 20)
#define QR(q, r) (GPUP_REG_QUEUE(q) + (r))

static struct gpup_gpu *gpu;
static struct iommu_domain *dom;
static uint8_t *ram;
static struct vgpu *v;

static void wr(uint32_t off, uint32_t val)
{
	cr_assert_eq(vgpu_bar0_write(v, off, &val, 4), 0);
}

static void setup(void)
{
	struct gpup_gpu_cfg gc = { .vram_size = VRAM, .ncompute = 1, .ncopy = 1 };
	struct iommu_domain_cfg dc = { .name = "sched" };
	struct vgpu_cfg vc = { .vram_offset = 0, .vram_size = PART, .name = "sched" };

	gpu = gpup_sim_gpu_create(&gc);
	cr_assert_not_null(gpu);
	dom = iommu_domain_create(&dc);
	cr_assert_not_null(dom);
	ram = mmap(NULL, RAM_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	cr_assert_neq(ram, MAP_FAILED);
	cr_assert_eq(iommu_map(dom, RAM_IOVA, ram, RAM_SIZE, IOMMU_READ | IOMMU_WRITE), 0);
	vc.gpu = gpu;
	vc.iommu = dom;
	v = vgpu_create(&vc);
	cr_assert_not_null(v);
	wr(GPUP_REG_CONTROL, GPUP_CTRL_ENABLE);
}

static void teardown(void)
{
	vgpu_destroy(v);
	iommu_domain_destroy(dom);
	munmap(ram, RAM_SIZE);
	gpup_gpu_destroy(gpu);
}

TestSuite(sched_vgpu, .init = setup, .fini = teardown, .timeout = 30);

static void queue_up(unsigned int q, uint32_t priority)
{
	wr(QR(q, GPUP_Q_RING_LO), (uint32_t)(RAM_IOVA + q * 0x1000));
	wr(QR(q, GPUP_Q_RING_HI), 0);
	wr(QR(q, GPUP_Q_RING_ENTRIES), 16);
	wr(QR(q, GPUP_Q_ENGINE), GPUP_ENGINE_COMPUTE);
	wr(QR(q, GPUP_Q_PRIORITY), priority);
	wr(QR(q, GPUP_Q_PI_ADDR_LO), (uint32_t)(RAM_IOVA + 0x8000 + q * 8));
	wr(QR(q, GPUP_Q_CONTROL), GPUP_QCTL_ENABLE);
}

struct seen {
	unsigned int n;
	unsigned int queue[8];
	const char *owner[8];
	uint32_t weight[8];
	enum sched_class klass[8];
	uint32_t cap_ppm[8];
};

static int collect(void *s, void *arg)
{
	struct seen *out = arg;
	struct sched_ctx *c;

	out->n = 0;
	for (unsigned int i = 0; (c = sched_ctx_at(s, i)) && i < 8; i++) {
		struct sched_ctx_stats st;

		sched_ctx_stats(c, &st);
		cr_assert_eq(vgpu_ectx_owner(sched_ctx_priv(c), &out->owner[i], &out->queue[i]), 0);
		out->weight[i] = st.cfg.weight;
		out->klass[i] = st.cfg.klass;
		out->cap_ppm[i] = st.cfg.cap_ppm;
		out->n++;
	}
	return 0;
}

static struct seen contexts(void)
{
	struct seen s = { 0 };
	struct gpup_engine *e = gpup_gpu_engine(gpu, GPUP_ENGINE_KIND_COMPUTE, 0);

	cr_assert_eq(gpup_engine_sched_call(e, &gpup_sched_tslice, collect, &s), 0);
	return s;
}

Test(sched_vgpu, settings_reach_current_and_later_queues)
{
	struct gpup_engine *e = gpup_gpu_engine(gpu, GPUP_ENGINE_KIND_COMPUTE, 0);
	struct sched_ctx_cfg cfg = { .weight = 7, .cap_ppm = 300000,
				     .klass = SCHED_CLASS_INTERACTIVE };
	struct seen s;

	cr_assert_eq(gpup_tsched_set_policy(e, SCHED_POLICY_WEIGHTED, 1000000), 0);
	queue_up(0, 3);
	s = contexts();
	cr_assert_eq(s.n, 1);
	cr_assert_eq(s.weight[0], 3, "the queue priority, before any setting");
	cr_assert_eq(vgpu_set_sched(v, &cfg), 0);
	queue_up(1, 2);
	s = contexts();
	cr_assert_eq(s.n, 2);
	for (unsigned int i = 0; i < 2; i++) {
		cr_assert_str_eq(s.owner[i], "sched", "the partition's name");
		cr_assert_eq(s.queue[i], i);
		cr_assert_eq(s.weight[i], 7);
		cr_assert_eq(s.klass[i], SCHED_CLASS_INTERACTIVE);
		cr_assert_eq(s.cap_ppm[i], 300000);
	}
	cfg.weight = SCHED_WEIGHT_MAX + 1;
	cr_assert_eq(vgpu_set_sched(v, &cfg), -EINVAL);
	s = contexts();
	cr_assert_eq(s.weight[0], 7, "a refused setting changes nothing");
}

Test(sched_vgpu, settings_survive_a_fresh_scheduler)
{
	struct gpup_engine *e = gpup_gpu_engine(gpu, GPUP_ENGINE_KIND_COMPUTE, 0);
	struct sched_ctx_cfg cfg = { .weight = 0, .klass = SCHED_CLASS_INTERACTIVE,
				     .fps_limit = 60 };
	struct sched_engine_cfg ec = { .policy = SCHED_POLICY_EQUAL_SHARE };
	struct seen s;

	queue_up(0, 5);
	cr_assert_eq(vgpu_set_sched(v, &cfg), 0);
	s = contexts();
	cr_assert_eq(s.klass[0], SCHED_CLASS_INTERACTIVE,
		     "a new engine's scheduler takes them");
	cr_assert_eq(gpup_engine_set_sched(e, &gpup_sched_tslice, &ec), 0);
	s = contexts();
	cr_assert_eq(s.klass[0], SCHED_CLASS_NORMAL, "a new scheduler starts from weights");
	vgpu_sched_reapply(v);
	s = contexts();
	cr_assert_eq(s.n, 1);
	cr_assert_eq(s.klass[0], SCHED_CLASS_INTERACTIVE);
	cr_assert_eq(s.weight[0], 5, "weight 0 keeps the queue priority");
}

Test(sched_vgpu, only_vgpu_queues_have_an_owner)
{
	struct gpup_ectx other = { 0 };
	const char *name = "unchanged";
	unsigned int q = 99;

	cr_assert_eq(vgpu_ectx_owner(&other, &name, &q), -ENOENT);
	cr_assert_eq(vgpu_ectx_owner(NULL, &name, &q), -ENOENT);
	cr_assert_str_eq(name, "unchanged");
	cr_assert_eq(q, 99);
}
