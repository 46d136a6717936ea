// SPDX-License-Identifier: MIT
/*
 * The sim GPU backend: VRAM is a memfd mapped MAP_SHARED|MAP_NORESERVE (an
 * 8 GiB GPU costs nothing until its pages are touched, and the same fd is
 * what a VMM maps as BAR2), and every engine is an executor thread from
 * engine.c.  Reset punches the whole memfd, returning VRAM to zero pages
 * and the memory to the host.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "gpup/gpu/gpu.h"

struct sim_gpu {
	int memfd;
	void *vram;
	uint64_t size;
	unsigned int ncompute, ncopy;
	struct gpup_engine *engines[2][GPUP_GPU_MAX_ENGINES];
};

static void sim_free(struct sim_gpu *s)
{
	for (unsigned int k = 0; k < 2; k++)
		for (unsigned int i = 0; i < GPUP_GPU_MAX_ENGINES; i++)
			gpup_engine_destroy(s->engines[k][i]);
	if (s->vram && s->vram != MAP_FAILED)
		munmap(s->vram, s->size);
	if (s->memfd >= 0)
		close(s->memfd);
	free(s);
}

static int sim_engines(struct sim_gpu *s, const char *name)
{
	for (unsigned int i = 0; i < s->ncompute; i++) {
		s->engines[0][i] = gpup_engine_create(GPUP_ENGINE_KIND_COMPUTE, i, name);
		if (!s->engines[0][i])
			return -errno;
	}
	for (unsigned int i = 0; i < s->ncopy; i++) {
		s->engines[1][i] = gpup_engine_create(GPUP_ENGINE_KIND_COPY, i, name);
		if (!s->engines[1][i])
			return -errno;
	}
	return 0;
}

static int sim_open(struct gpup_gpu *gpu, const struct gpup_gpu_cfg *cfg)
{
	struct sim_gpu *s = calloc(1, sizeof(*s));
	char name[32];
	int r;

	if (!s)
		return -ENOMEM;
	snprintf(name, sizeof(name), "gpup-vram-gpu%u", cfg->index);
	s->size = cfg->vram_size;
	s->ncompute = cfg->ncompute;
	s->ncopy = cfg->ncopy;
	s->memfd = memfd_create(name, MFD_CLOEXEC);
	if (s->memfd < 0 || ftruncate(s->memfd, (off_t)s->size) < 0) {
		r = -errno;
		goto err;
	}
	s->vram = mmap(NULL, s->size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_NORESERVE,
		       s->memfd, 0);
	if (s->vram == MAP_FAILED) {
		r = -errno;
		goto err;
	}
	snprintf(name, sizeof(name), "gpu%u", cfg->index);
	r = sim_engines(s, name);
	if (r)
		goto err;
	gpup_gpu_set_priv(gpu, s);
	return 0;
err:
	sim_free(s);
	return r;
}

static void sim_close(struct gpup_gpu *gpu)
{
	sim_free(gpup_gpu_priv(gpu));
	gpup_gpu_set_priv(gpu, NULL);
}

static int sim_vram_fd(struct gpup_gpu *gpu, uint64_t *fd_offset)
{
	struct sim_gpu *s = gpup_gpu_priv(gpu);

	*fd_offset = 0;
	return s->memfd;
}

static void *sim_vram_map(struct gpup_gpu *gpu)
{
	struct sim_gpu *s = gpup_gpu_priv(gpu);

	return s->vram;
}

static int sim_reset(struct gpup_gpu *gpu)
{
	struct sim_gpu *s = gpup_gpu_priv(gpu);

	if (fallocate(s->memfd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 0,
		      (off_t)s->size) < 0)
		return -errno;
	return 0;
}

/* Whole pages go back to the host as holes (they read as zeros and cost
 * nothing); the ragged ends, if any, are cleared by hand. */
static int sim_vram_scrub(struct gpup_gpu *gpu, uint64_t off, uint64_t len)
{
	struct sim_gpu *s = gpup_gpu_priv(gpu);
	uint64_t pg = (uint64_t)sysconf(_SC_PAGESIZE);
	uint64_t a = (off + pg - 1) / pg * pg, b = (off + len) / pg * pg;

	if (a >= b) {
		memset((uint8_t *)s->vram + off, 0, len);
		return 0;
	}
	memset((uint8_t *)s->vram + off, 0, a - off);
	memset((uint8_t *)s->vram + b, 0, off + len - b);
	if (fallocate(s->memfd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, (off_t)a,
		      (off_t)(b - a)) < 0)
		return -errno;
	return 0;
}

static struct gpup_engine *sim_engine(struct gpup_gpu *gpu, enum gpup_engine_kind kind,
				      unsigned int idx)
{
	struct sim_gpu *s = gpup_gpu_priv(gpu);

	return s->engines[kind == GPUP_ENGINE_KIND_COPY][idx];
}

static const struct gpup_backend_ops sim_ops = {
	.version = GPUP_BACKEND_OPS_VERSION,
	.name = "sim",
	.open = sim_open,
	.close = sim_close,
	.vram_fd = sim_vram_fd,
	.vram_map = sim_vram_map,
	.reset = sim_reset,
	.engine = sim_engine,
	.model = "gpup sim GPU",
	.vram_scrub = sim_vram_scrub,
};

struct gpup_gpu *gpup_sim_gpu_create(const struct gpup_gpu_cfg *cfg)
{
	return gpup_gpu_create(&sim_ops, cfg);
}
