/* SPDX-License-Identifier: MIT */
/*
 * A physical GPU as the partitioning core sees it, and the backend ops
 * table that real and simulated GPUs implement.
 *
 * DOC: backends
 *
 * The core (pool, placement, vGPU device model, vfio-user server) only
 * talks to a GPU through struct gpup_backend_ops.  The sim backend is the
 * default: VRAM is a memfd mapped MAP_NORESERVE, each engine is an executor
 * thread.  Real backends (CUDA driver API, SR-IOV VFs through VFIO) plug in
 * with the same table.  Calls go through the gpup_gpu_*() wrappers below,
 * which are also where tests inject faults.
 */
#ifndef GPUP_GPU_H
#define GPUP_GPU_H

#include <stdbool.h>
#include <stdint.h>

struct gpup_gpu;
struct gpup_engine;

enum gpup_engine_kind {
	GPUP_ENGINE_KIND_COMPUTE = 0,
	GPUP_ENGINE_KIND_COPY = 1,
};

struct gpup_gpu_cfg {
	unsigned int index;        /* pool index: "gpu0", "gpu1"... */
	uint64_t vram_size;        /* bytes, multiple of 2 MiB */
	unsigned int ncompute;     /* compute engines, >= 1 */
	unsigned int ncopy;        /* copy engines, >= 1 */
	/* Cost model used by the benchmark's simulated time: bytes per
	 * second for copies and flops per second for kernels. 0 = default. */
	uint64_t copy_bytes_per_s;
	uint64_t flops_per_s;
};

struct gpup_gpu_desc {
	char name[32];             /* "gpu0" */
	char model[64];            /* "gpup sim GPU", or the real device's name */
	const char *backend;       /* "sim", ... */
	uint64_t vram_size;
	unsigned int ncompute, ncopy;
};

struct gpup_backend_ops {
	unsigned int version;      /* GPUP_BACKEND_OPS_VERSION */
	const char *name;
	/* Bring up a GPU: VRAM and engines.  Returns 0 or -errno. */
	int (*open)(struct gpup_gpu *gpu, const struct gpup_gpu_cfg *cfg);
	void (*close)(struct gpup_gpu *gpu);
	/* The fd backing VRAM and the fd offset of VRAM byte 0, for clients
	 * that mmap a partition's slice (BAR2). */
	int (*vram_fd)(struct gpup_gpu *gpu, uint64_t *fd_offset);
	/* The daemon's own mapping of VRAM, used by engines. */
	void *(*vram_map)(struct gpup_gpu *gpu);
	/* Reset the whole GPU.  Can be NULL. */
	int (*reset)(struct gpup_gpu *gpu);
	/* Engine idx of a kind (idx < ncompute or ncopy), run by the
	 * executor of gpup/engine.h.  Can be NULL: no engines. */
	struct gpup_engine *(*engine)(struct gpup_gpu *gpu, enum gpup_engine_kind kind,
				      unsigned int idx);
	/* The device's model name for gpup_gpu_describe.  Can be NULL. */
	const char *model;
	/* Zero [off, off + len) of VRAM (a new tenant must not see the last
	 * one's data).  Can be NULL: the core writes zeros itself. */
	int (*vram_scrub)(struct gpup_gpu *gpu, uint64_t off, uint64_t len);
};

#define GPUP_BACKEND_OPS_VERSION 1

/* Create the sim GPU described by cfg; NULL and errno on failure. */
struct gpup_gpu *gpup_sim_gpu_create(const struct gpup_gpu_cfg *cfg);
/* Destroy the vgpus on a GPU first: their VRAM windows die with it. */
void gpup_gpu_destroy(struct gpup_gpu *gpu);

void gpup_gpu_describe(const struct gpup_gpu *gpu, struct gpup_gpu_desc *desc);
int gpup_gpu_vram_fd(struct gpup_gpu *gpu, uint64_t *fd_offset);
void *gpup_gpu_vram_map(struct gpup_gpu *gpu);
int gpup_gpu_reset(struct gpup_gpu *gpu);
/* Zero a VRAM range; 0, -EINVAL outside VRAM, or the backend's error. */
int gpup_gpu_vram_scrub(struct gpup_gpu *gpu, uint64_t off, uint64_t len);
/* NULL if the backend has no such engine. */
struct gpup_engine *gpup_gpu_engine(struct gpup_gpu *gpu, enum gpup_engine_kind kind,
				    unsigned int idx);
/* The device clock (TIMESTAMP, GPUP_REG_TIME): ns since the GPU came up. */
uint64_t gpup_gpu_clock_ns(const struct gpup_gpu *gpu);

/* For backends: a GPU driven by ops (ops->open brings it up), and the
 * backend's private data.  gpup_gpu_create: NULL and errno on failure
 * (EINVAL for a bad cfg). */
struct gpup_gpu *gpup_gpu_create(const struct gpup_backend_ops *ops,
				 const struct gpup_gpu_cfg *cfg);
void *gpup_gpu_priv(const struct gpup_gpu *gpu);
void gpup_gpu_set_priv(struct gpup_gpu *gpu, void *priv);

/* Fault injection for tests, at the wrappers: while set, the wrappers of
 * the ops in `ops` (GPUP_GPU_OP_*) fail with -err (NULL for pointers).
 * ops 0 clears. */
#define GPUP_GPU_OP_VRAM_FD (1u << 0)
#define GPUP_GPU_OP_VRAM_MAP (1u << 1)
#define GPUP_GPU_OP_RESET (1u << 2)
#define GPUP_GPU_OP_ENGINE (1u << 3)
#define GPUP_GPU_OP_VRAM_SCRUB (1u << 4)
void gpup_gpu_inject_fault(struct gpup_gpu *gpu, unsigned int ops, int err);

/* Limits on a GPU's shape. */
#define GPUP_GPU_MAX_ENGINES 16u
#define GPUP_GPU_VRAM_ALIGN (2ull << 20)

#endif
