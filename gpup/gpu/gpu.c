// SPDX-License-Identifier: MIT
/*
 * The GPU object and the gpup_gpu_*() wrappers around a backend's ops.
 * The core holds a struct gpup_gpu and never a backend's own type; the
 * wrappers are the single place where calls cross into a backend, which
 * is where fault injection belongs when tests need to fail a GPU.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gpup/gpu/gpu.h"

struct gpup_gpu {
	const struct gpup_backend_ops *ops;
	struct gpup_gpu_cfg cfg;
	char name[32];
	void *priv;
	uint64_t born_ns;
	unsigned int fail_ops;     /* injected faults: GPUP_GPU_OP_* */
	int fail_err;
	int failure;               /* enum gpup_gpu_failure, atomic */
	const struct gpup_gpu_gen *gen;
};

/* gen1 predates RENDER; gen2 runs every built-in kernel. */
static const struct gpup_gpu_gen gens[] = {
	{ "gen1", GPUP_KERNELS_BUILTIN & ~(1u << GPUP_KERNEL_RENDER) },
	{ "gen2", GPUP_KERNELS_BUILTIN },
};

const struct gpup_gpu_gen *gpup_gpu_gen_at(unsigned int i)
{
	return i < sizeof(gens) / sizeof(gens[0]) ? &gens[i] : NULL;
}

const struct gpup_gpu_gen *gpup_gpu_gen_find(const char *name)
{
	const struct gpup_gpu_gen *g;

	for (unsigned int i = 0; (g = gpup_gpu_gen_at(i)); i++)
		if (!strcmp(g->name, name))
			return g;
	return NULL;
}

/* 0, or the injected error for op. */
static int injected(const struct gpup_gpu *gpu, unsigned int op)
{
	if (!(__atomic_load_n(&gpu->fail_ops, __ATOMIC_ACQUIRE) & op))
		return 0;
	return -__atomic_load_n(&gpu->fail_err, __ATOMIC_RELAXED);
}

void gpup_gpu_inject_fault(struct gpup_gpu *gpu, unsigned int ops, int err)
{
	__atomic_store_n(&gpu->fail_err, err, __ATOMIC_RELAXED);
	__atomic_store_n(&gpu->fail_ops, ops, __ATOMIC_RELEASE);
}

static const char *const failure_names[] = { "healthy", "lost", "hang" };

const char *gpup_gpu_failure_name(enum gpup_gpu_failure f)
{
	return (unsigned int)f < 3 ? failure_names[f] : "?";
}

int gpup_gpu_failure_parse(const char *name)
{
	for (int i = 0; i < 3; i++)
		if (!strcmp(failure_names[i], name))
			return i;
	return -1;
}

/* Every engine stops; a lost GPU's ops fail too. */
void gpup_gpu_fail(struct gpup_gpu *gpu, enum gpup_gpu_failure f)
{
	if (f == GPUP_GPU_HEALTHY)
		return;
	__atomic_store_n(&gpu->failure, (int)f, __ATOMIC_RELEASE);
	/* The windows' files are host memory the daemon holds, not the
	 * board's: they stay reachable, so that a recovery can rebuild a
	 * partition's VRAM in the file its client mapped. */
	if (f == GPUP_GPU_LOST)
		gpup_gpu_inject_fault(gpu, ~GPUP_GPU_OP_VRAM_FD, ENODEV);
	for (unsigned int k = 0; gpu->ops->engine && k < 2; k++) {
		unsigned int n = k ? gpu->cfg.ncopy : gpu->cfg.ncompute;

		for (unsigned int i = 0; i < n; i++) {
			struct gpup_engine *e = gpu->ops->engine(gpu, (enum gpup_engine_kind)k, i);

			if (e)
				gpup_engine_halt(e);
		}
	}
}

enum gpup_gpu_failure gpup_gpu_failure(const struct gpup_gpu *gpu)
{
	return (enum gpup_gpu_failure)__atomic_load_n(&gpu->failure, __ATOMIC_ACQUIRE);
}

static bool cfg_valid(const struct gpup_gpu_cfg *cfg)
{
	return (!cfg->gen || gpup_gpu_gen_find(cfg->gen)) &&
	       cfg->vram_size && cfg->vram_size % GPUP_GPU_VRAM_ALIGN == 0 &&
	       cfg->ncompute >= 1 && cfg->ncompute <= GPUP_GPU_MAX_ENGINES &&
	       cfg->ncopy >= 1 && cfg->ncopy <= GPUP_GPU_MAX_ENGINES;
}

struct gpup_gpu *gpup_gpu_create(const struct gpup_backend_ops *ops,
				 const struct gpup_gpu_cfg *cfg)
{
	struct gpup_gpu *gpu;
	int r;

	if (!ops || ops->version != GPUP_BACKEND_OPS_VERSION || !cfg || !cfg_valid(cfg)) {
		errno = EINVAL;
		return NULL;
	}
	gpu = calloc(1, sizeof(*gpu));
	if (!gpu)
		return NULL;
	gpu->ops = ops;
	gpu->cfg = *cfg;
	gpu->born_ns = gpup_mono_ns();
	gpu->gen = gpup_gpu_gen_find(cfg->gen ? cfg->gen : GPUP_GPU_GEN_DEFAULT);
	snprintf(gpu->name, sizeof(gpu->name), "gpu%u", cfg->index);
	r = ops->open(gpu, cfg);
	if (r) {
		free(gpu);
		errno = -r;
		return NULL;
	}
	return gpu;
}

void gpup_gpu_destroy(struct gpup_gpu *gpu)
{
	if (!gpu)
		return;
	gpu->ops->close(gpu);
	free(gpu);
}

void gpup_gpu_describe(const struct gpup_gpu *gpu, struct gpup_gpu_desc *desc)
{
	memset(desc, 0, sizeof(*desc));
	snprintf(desc->name, sizeof(desc->name), "%s", gpu->name);
	snprintf(desc->model, sizeof(desc->model), "%s",
		 gpu->ops->model ? gpu->ops->model : gpu->ops->name);
	desc->backend = gpu->ops->name;
	desc->vram_size = gpu->cfg.vram_size;
	desc->ncompute = gpu->cfg.ncompute;
	desc->ncopy = gpu->cfg.ncopy;
	snprintf(desc->gen, sizeof(desc->gen), "%s", gpu->gen->name);
	desc->kernels = gpu->gen->kernels;
}

uint32_t gpup_gpu_kernels(const struct gpup_gpu *gpu)
{
	return gpu->gen->kernels;
}

void *gpup_gpu_vram_map(struct gpup_gpu *gpu)
{
	return injected(gpu, GPUP_GPU_OP_VRAM_MAP) ? NULL : gpu->ops->vram_map(gpu);
}

int gpup_gpu_vram_attach(struct gpup_gpu *gpu, uint64_t off, uint64_t size)
{
	int r = injected(gpu, GPUP_GPU_OP_VRAM_ATTACH);

	if (r)
		return r;
	if (!size || off % GPUP_GPU_WINDOW_ALIGN || size % GPUP_GPU_WINDOW_ALIGN ||
	    size > gpu->cfg.vram_size || off > gpu->cfg.vram_size - size)
		return -EINVAL;
	return gpu->ops->vram_attach(gpu, off, size);
}

int gpup_gpu_vram_adopt(struct gpup_gpu *gpu, uint64_t off, uint64_t size, int fd)
{
	int r = injected(gpu, GPUP_GPU_OP_VRAM_ADOPT);

	if (r)
		return r;
	if (!gpu->ops->vram_adopt)
		return -EOPNOTSUPP;
	if (!size || off % GPUP_GPU_WINDOW_ALIGN || size % GPUP_GPU_WINDOW_ALIGN ||
	    size > gpu->cfg.vram_size || off > gpu->cfg.vram_size - size || fd < 0)
		return -EINVAL;
	return gpu->ops->vram_adopt(gpu, off, size, fd);
}

void gpup_gpu_vram_release(struct gpup_gpu *gpu, uint64_t off)
{
	if (gpu->ops->vram_release)
		gpu->ops->vram_release(gpu, off);
}

void gpup_gpu_vram_detach(struct gpup_gpu *gpu, uint64_t off)
{
	gpu->ops->vram_detach(gpu, off);
}

int gpup_gpu_vram_fd(struct gpup_gpu *gpu, uint64_t off)
{
	struct gpup_vram_window w;
	int r = injected(gpu, GPUP_GPU_OP_VRAM_FD);

	if (!r)
		r = gpu->ops->vram_window(gpu, off, &w);
	return r ? r : w.fd;
}

enum gpup_vram_backing gpup_gpu_vram_backing(struct gpup_gpu *gpu, uint64_t off)
{
	struct gpup_vram_window w;

	return gpu->ops->vram_window(gpu, off, &w) ? GPUP_VRAM_BACKING_NONE : w.backing;
}

enum gpup_vram_backing gpup_gpu_vram_backing_new(struct gpup_gpu *gpu)
{
	return gpu->ops->vram_backing ? gpu->ops->vram_backing(gpu) : GPUP_VRAM_BACKING_NONE;
}

const char *gpup_vram_backing_name(enum gpup_vram_backing b)
{
	switch (b) {
	case GPUP_VRAM_BACKING_4K:
		return "4k";
	case GPUP_VRAM_BACKING_THP:
		return "thp-2m";
	default:
		return "none";
	}
}

int gpup_gpu_reset(struct gpup_gpu *gpu)
{
	int r = injected(gpu, GPUP_GPU_OP_RESET);

	if (r)
		return r;
	return gpu->ops->reset ? gpu->ops->reset(gpu) : -EOPNOTSUPP;
}

struct gpup_engine *gpup_gpu_engine(struct gpup_gpu *gpu, enum gpup_engine_kind kind,
				    unsigned int idx)
{
	unsigned int n = kind == GPUP_ENGINE_KIND_COPY ? gpu->cfg.ncopy : gpu->cfg.ncompute;

	if (!gpu->ops->engine || idx >= n || injected(gpu, GPUP_GPU_OP_ENGINE))
		return NULL;
	return gpu->ops->engine(gpu, kind, idx);
}

uint64_t gpup_gpu_clock_ns(const struct gpup_gpu *gpu)
{
	return gpup_mono_ns() - gpu->born_ns;
}

void *gpup_gpu_priv(const struct gpup_gpu *gpu)
{
	return gpu->priv;
}

void gpup_gpu_set_priv(struct gpup_gpu *gpu, void *priv)
{
	gpu->priv = priv;
}
