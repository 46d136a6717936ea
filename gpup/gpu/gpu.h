/* SPDX-License-Identifier: MIT */
/*
 * The gpu room (gpup/gpu/): physical GPUs and the backend ops table that
 * real and simulated GPUs implement (gpu.c, sim.c); the engine executors
 * that run vGPU queues on a GPU's engines (engine.c); the sim GPU's
 * built-in kernels (kernels.c); and the time-slice scheduler as the
 * executors' scheduler plug-in (engine_sched.c).
 *
 * DOC: backends
 *
 * The core (pool, placement, vGPU device model, vfio-user server) only
 * talks to a GPU through struct gpup_backend_ops.  The sim backend is the
 * default: VRAM is memory of the daemon's, each engine is an executor
 * thread.  Real backends (CUDA driver API, SR-IOV VFs through VFIO) plug in
 * with the same table.  Calls go through the gpup_gpu_*() wrappers below,
 * which are also where tests inject faults.
 *
 * DOC: VRAM windows
 *
 * The daemon sees a GPU's VRAM as one contiguous mapping (vram_map), which
 * engines index by VRAM offset.  A partition's window of it is attached
 * (vram_attach) before the partition exists and detached when it goes.
 * Attaching gives the window memory of its own, zeroed, behind a file
 * that holds exactly the window: that file is what a client maps as BAR2,
 * at offset 0, so a tenant reaches its own VRAM and nothing else.  The
 * file is sealed against shrinking and growing before any fd leaves the
 * daemon, so no client can make the daemon's next access to it fault.
 * Detaching gives the window's memory back to the host: the tenant's data
 * is gone from the daemon, and a client that kept the file sees zeros and
 * reaches nothing of the GPU.  VRAM outside every window belongs to no
 * client.
 *
 * A window's file can also move between GPUs (vram_adopt, vram_release):
 * the destination shows the same file at a window of its own, the source
 * forgets it without touching its pages.  A client's mapping of the file
 * stays valid throughout and no byte is copied: this is how a running
 * partition moves to another GPU of the sim backend (docs/MIGRATION.md,
 * "Moving a partition").  A backend whose VRAM is device memory leaves
 * both NULL; such a move would copy VRAM instead (not built).
 *
 * DOC: generations
 *
 * GPUs of one backend differ by generation, as real boards do: each has
 * a name ("gen1", "gen2") and a feature set, the built-in kernels it runs
 * (a GPUP_REG_KERNELS bitmask).  gen1 lacks RENDER; gen2 has every
 * kernel and is the default.  A partition exposes a subset (its
 * compatibility mask) and can move to any GPU whose set covers it.
 */
#ifndef GPUP_GPU_H
#define GPUP_GPU_H

#include <stdbool.h>
#include <stdint.h>

#include "scheduler/sched.h"
#include "uapi/gpup_vgpu.h"

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
	/* Run first on each engine thread (gpup_engine_create); can be NULL. */
	int (*thread_init)(void);
	/* Its generation (gpup_gpu_gen_find); NULL: GPUP_GPU_GEN_DEFAULT. */
	const char *gen;
};

struct gpup_gpu_desc {
	char name[32];             /* "gpu0" */
	char model[64];            /* "gpup sim GPU", or the real device's name */
	const char *backend;       /* "sim", ... */
	uint64_t vram_size;
	unsigned int ncompute, ncopy;
	char gen[16];              /* "gen2" */
	uint32_t kernels;          /* its feature set: bit n = GPUP_KERNEL n */
};

/* What holds a VRAM window's memory (gpup_gpu_vram_backing). */
enum gpup_vram_backing {
	GPUP_VRAM_BACKING_NONE = 0, /* no window is attached there */
	GPUP_VRAM_BACKING_4K,       /* a memfd in 4 KiB pages */
	GPUP_VRAM_BACKING_THP,      /* a memfd that takes 2 MiB pages where the kernel
				     * has them (shmem transparent huge pages) */
};

/* An attached window, as its backend reports it. */
struct gpup_vram_window {
	int fd;                          /* lent: open until the window is detached */
	enum gpup_vram_backing backing;
};

struct gpup_backend_ops {
	unsigned int version;      /* GPUP_BACKEND_OPS_VERSION */
	const char *name;
	/* Bring up a GPU: VRAM and engines.  Returns 0 or -errno. */
	int (*open)(struct gpup_gpu *gpu, const struct gpup_gpu_cfg *cfg);
	/* Windows still attached are detached with the GPU. */
	void (*close)(struct gpup_gpu *gpu);
	/* The daemon's own mapping of all of VRAM, one range that engines
	 * index by VRAM offset; windows show their own memory in it. */
	void *(*vram_map)(struct gpup_gpu *gpu);
	/* Give [off, off + size) memory of its own, shown at off in vram_map:
	 * zeroed, behind a file that holds exactly the window and is sealed
	 * against shrinking and growing before anyone sees it.  The wrapper
	 * has checked that the window is page-aligned and inside VRAM; one
	 * that overlaps an attached window is -EBUSY.  0 or -errno; on
	 * failure nothing changed. */
	int (*vram_attach)(struct gpup_gpu *gpu, uint64_t off, uint64_t size);
	/* Take back the window attached at off (nothing if none is): its
	 * memory goes back to the host even while a client still holds its
	 * file (the client then sees zeros), the file is closed, and
	 * vram_map shows zeros there, memory of no client's. */
	void (*vram_detach)(struct gpup_gpu *gpu, uint64_t off);
	/* The window attached at off: 0, or -ENOENT if none is. */
	int (*vram_window)(struct gpup_gpu *gpu, uint64_t off, struct gpup_vram_window *w);
	/* What a window attached now would be backed by if it is made of
	 * whole 2 MiB pages (a smaller one may get less): what the GPU's next
	 * partitions get.  Can be NULL: NONE, nothing is known. */
	enum gpup_vram_backing (*vram_backing)(struct gpup_gpu *gpu);
	/* Reset the whole GPU: all of VRAM reads as zeros.  Can be NULL. */
	int (*reset)(struct gpup_gpu *gpu);
	/* Engine idx of a kind (idx < ncompute or ncopy), run by the
	 * executor below.  Can be NULL: no engines. */
	struct gpup_engine *(*engine)(struct gpup_gpu *gpu, enum gpup_engine_kind kind,
				      unsigned int idx);
	/* The device's model name for gpup_gpu_describe.  Can be NULL. */
	const char *model;
	/* Show the window file fd (one another GPU's window had, of exactly
	 * size bytes and sealed as vram_attach seals) at [off, off + size)
	 * of this GPU, keeping a reference of its own: its pages are not
	 * touched, a client's mapping of it stays valid.  The wrapper checked
	 * alignment and range; an overlap is -EBUSY, a file of another size
	 * or without the seals -EINVAL.  0 or -errno, nothing changed on
	 * failure.  Can be NULL: windows cannot move here (-EOPNOTSUPP). */
	int (*vram_adopt)(struct gpup_gpu *gpu, uint64_t off, uint64_t size, int fd);
	/* Forget the window at off without punching it (whoever adopted its
	 * file keeps the data): vram_map shows zeros there again.  Nothing if
	 * no window is attached at off.  Can be NULL with vram_adopt. */
	void (*vram_release)(struct gpup_gpu *gpu, uint64_t off);
};

#define GPUP_BACKEND_OPS_VERSION 4

/* Create the sim GPU described by cfg; NULL and errno on failure. */
struct gpup_gpu *gpup_sim_gpu_create(const struct gpup_gpu_cfg *cfg);
/* Destroy the vgpus on a GPU first: their VRAM windows die with it. */
void gpup_gpu_destroy(struct gpup_gpu *gpu);

void gpup_gpu_describe(const struct gpup_gpu *gpu, struct gpup_gpu_desc *desc);
void *gpup_gpu_vram_map(struct gpup_gpu *gpu);
/* Attach a partition's window (see DOC: VRAM windows): 0, -EINVAL if it
 * is empty, not aligned to GPUP_GPU_WINDOW_ALIGN or not inside VRAM,
 * -EBUSY if it overlaps an attached one, or the backend's error. */
int gpup_gpu_vram_attach(struct gpup_gpu *gpu, uint64_t off, uint64_t size);
void gpup_gpu_vram_detach(struct gpup_gpu *gpu, uint64_t off);
/* The file of the window attached at off, for clients to mmap at offset
 * 0 (BAR2): lent, open until the window is detached; -ENOENT if no
 * window is attached at off. */
int gpup_gpu_vram_fd(struct gpup_gpu *gpu, uint64_t off);
/* What holds the memory of the window attached at off (NONE if none is),
 * and its name for listings: "none", "4k", "thp-2m". */
enum gpup_vram_backing gpup_gpu_vram_backing(struct gpup_gpu *gpu, uint64_t off);
/* What the GPU's next partition of whole 2 MiB pages would get (the
 * backend's vram_backing), for `gpup gpus`. */
enum gpup_vram_backing gpup_gpu_vram_backing_new(struct gpup_gpu *gpu);
const char *gpup_vram_backing_name(enum gpup_vram_backing b);
int gpup_gpu_reset(struct gpup_gpu *gpu);
/* Move a window's file here (see DOC: VRAM windows): 0, -EINVAL as for
 * attach, -EOPNOTSUPP where the backend cannot, or the backend's error. */
int gpup_gpu_vram_adopt(struct gpup_gpu *gpu, uint64_t off, uint64_t size, int fd);
/* The source's half of a move: forget the window at off, data kept. */
void gpup_gpu_vram_release(struct gpup_gpu *gpu, uint64_t off);
/* The GPU's feature set: bit n = built-in kernel n. */
uint32_t gpup_gpu_kernels(const struct gpup_gpu *gpu);
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
#define GPUP_GPU_OP_VRAM_ATTACH (1u << 4)
#define GPUP_GPU_OP_VRAM_ADOPT (1u << 5)
void gpup_gpu_inject_fault(struct gpup_gpu *gpu, unsigned int ops, int err);

/* A whole GPU failing, as boards do (docs/MIGRATION.md, "Failover"):
 * LOST, it fell off the bus: every wrapped op fails with -ENODEV and its
 * engines stop; HANG, its engines stop making progress while its ops
 * still answer.  Either is for good (until the GPU is destroyed); what a
 * partition on it held in VRAM must be taken as gone.  Tests and `gpup
 * fault inject` bring it about; a real backend would report it. */
enum gpup_gpu_failure {
	GPUP_GPU_HEALTHY = 0,
	GPUP_GPU_LOST,
	GPUP_GPU_HANG,
};
void gpup_gpu_fail(struct gpup_gpu *gpu, enum gpup_gpu_failure f);
enum gpup_gpu_failure gpup_gpu_failure(const struct gpup_gpu *gpu);
/* "healthy", "lost", "hang"; and back (-1: no such kind). */
const char *gpup_gpu_failure_name(enum gpup_gpu_failure f);
int gpup_gpu_failure_parse(const char *name);

/* GPU generations (see DOC: generations). */
struct gpup_gpu_gen {
	const char *name;          /* "gen1" */
	uint32_t kernels;          /* bit n = GPUP_KERNEL n runs there */
};
#define GPUP_GPU_GEN_DEFAULT "gen2"
/* The generation called name, or NULL. */
const struct gpup_gpu_gen *gpup_gpu_gen_find(const char *name);
/* The i-th generation, oldest first; NULL past the last. */
const struct gpup_gpu_gen *gpup_gpu_gen_at(unsigned int i);
/* "SAXPY", "RENDER", ...: the name of built-in kernel id, "?" if none. */
const char *gpup_kernel_name(uint32_t id);

/* Limits on a GPU's shape. */
#define GPUP_GPU_MAX_ENGINES 16u
#define GPUP_GPU_VRAM_ALIGN (2ull << 20)
#define GPUP_GPU_WINDOW_ALIGN 4096ull

/*
 * Engine executors (engine.c): one thread per engine runs the contexts
 * bound to it (a context is one vGPU queue on this engine) in slices of
 * engine time.
 *
 * DOC: the executor loop
 *
 * The executor sleeps in epoll on the doorbell eventfds of its contexts and
 * a wake eventfd.  A doorbell makes its context runnable; the executor then
 * asks the scheduler for a context and a slice, calls the context's run op
 * with a deadline in engine time (this thread's CPU time, so host noise does
 * not count against a tenant), and reports the CPU time it took back to the
 * scheduler.  The run op stops at the first command or work-group boundary
 * past the deadline and says whether work is left (MORE), none is
 * (IDLE: the context blocks until its next doorbell), or a WAIT command is
 * unsatisfied (WAIT: the context blocks and is re-polled, never spinning
 * the engine: after GPUP_ENGINE_WAIT_POLL_NS, backing off to
 * GPUP_ENGINE_WAIT_POLL_MAX_NS while the wait lasts, and at once when
 * gpup_engine_recheck says something it may wait for was written).
 *
 * DOC: watching a ring instead of a doorbell
 *
 * A doorbell can cost a guest far more than the work it announces (under
 * a VMM that forwards each one as a synchronous message).  A run op that
 * found no work may return WATCH instead of IDLE: the context blocks as
 * for IDLE, and for GPUP_ENGINE_WATCH_NS the executor asks its watch op
 * whether work appeared, between slices, at preemption polls and, with
 * nothing else to run, after gpup_engine_watch_gap, sleeping between
 * looks; once more with stop set when the time is up.  A true answer
 * makes the context runnable as a doorbell would.  The owner tells its
 * guest that it is watched (so it may skip the doorbell) and, when told
 * to stop, withdraws that before its last look, so that a guest either
 * sees the withdrawal and rings, or is seen.  The cost of an idle context
 * is bounded: one window per time it runs dry.
 *
 * DOC: preemption by wake
 *
 * While a context runs, the run op asks gpup_slice_over at every
 * preemption point.  At most every GPUP_ENGINE_PREEMPT_POLL_NS of engine
 * time, that looks for doorbells without sleeping (epoll_wait with no
 * timeout), wakes their contexts in the scheduler and asks its preempt op
 * whether the running context should yield; if so the slice ends at that
 * point with its progress saved, as at its deadline, and counts as a
 * preemption (and a yield).  A doorbell of the running context itself,
 * seen then, keeps it runnable after its run, as a kick does.  A context
 * being detached (gpup_engine_detach) ends its slice at the next look, so
 * a detach waits for at most one such interval and a work-group, whatever
 * the slice.
 *
 * DOC: the scheduler plug-in
 *
 * Whom to run and for how long is the business of struct gpup_sched_ops,
 * nothing else.  Every engine starts under the time-slice scheduler
 * (gpup_sched_tslice below) with its best-effort policy: round robin with
 * a fixed slice and no watchdog, until gpup_tsched_set_policy and
 * gpup_tsched_set_watchdog say otherwise (the daemon does as a GPU comes
 * up), so an engine used without a daemon runs under the same code.
 * gpup_engine_set_sched() swaps in another scheduler.  Every op is called
 * with the engine lock held and must not sleep; `now` is CLOCK_MONOTONIC
 * ns.
 */

struct gpup_ectx;

enum gpup_run_result {
	GPUP_RUN_IDLE = 0, /* nothing left to do: block until a doorbell */
	GPUP_RUN_MORE = 1, /* preempted at the deadline with work left */
	GPUP_RUN_WAIT = 2, /* stalled on a WAIT condition: re-poll later */
	GPUP_RUN_WATCH = 3, /* nothing left to do: block, but watch (see DOC) */
};

struct gpup_ectx_ops {
	/* Run until done or until gpup_slice_over(deadline_ns) says the
	 * slice is over (this thread's CPU time passed deadline_ns, or the
	 * scheduler wants the engine now).  Called on the executor thread
	 * only, never twice at once for one context. */
	enum gpup_run_result (*run)(struct gpup_ectx *c, uint64_t deadline_ns);
	/* The scheduler's watchdog found c with work and no progress for its
	 * timeout.  Called on the executor thread, never while c runs; must
	 * not detach c.  Can be NULL. */
	void (*stuck)(struct gpup_ectx *c);
	/* After a WATCH: whether work appeared (see DOC: watching a ring).
	 * stop: the watch ends with this call, whatever it answers.  Called
	 * on the executor thread with the engine lock held, never while c
	 * runs: must not sleep or wait on anyone.  Can be NULL when the run
	 * op never returns WATCH. */
	bool (*watch)(struct gpup_ectx *c, bool stop);
};

/* A context: embedded in its owner (a vgpu queue).  The owner sets the
 * public fields before gpup_engine_attach and keeps the memory until
 * gpup_engine_detach returns. */
struct gpup_ectx {
	const struct gpup_ectx_ops *ops;
	void *opaque;            /* the owner's */
	int doorbell_fd;         /* eventfd; -1 for none (kick only) */
	uint32_t weight;         /* for the scheduler, 0 = default */
	void *sched_priv;        /* the scheduler's per-context data */
	/* Bumped by the run op for every command it completes, so the
	 * scheduler's watchdog can tell a stuck context from a busy one. */
	uint64_t progress;
	/* Counters, updated by the executor; read with gpup_ectx_stats. */
	uint64_t engine_ns, slices, doorbells, preemptions;
	uint64_t yields;         /* preemptions before the deadline, for a wake */
	/* Executor private. */
	struct gpup_engine *engine;
	uint32_t slot, state;
	bool running, kicked, detaching;
	uint64_t retry_at, retry_ns;
	uint64_t watch_until;    /* 0: not watched */
	uint64_t watch_from;     /* when the watch began */
};

struct gpup_sched_ops {
	const char *name;
	/* Per-engine scheduler state, configured by arg (the scheduler's
	 * own config type; NULL = defaults).  NULL on failure. */
	void *(*create)(struct gpup_engine *e, const void *arg);
	void (*destroy)(void *s);
	/* A new context, not runnable yet.  0 or -errno. */
	int (*add)(void *s, struct gpup_ectx *c);
	void (*remove)(void *s, struct gpup_ectx *c);
	/* The context has work (a doorbell, a WAIT to re-check). */
	void (*wake)(void *s, struct gpup_ectx *c, uint64_t now);
	/* The context has no work: do not pick it. */
	void (*block)(void *s, struct gpup_ectx *c, uint64_t now);
	/* The context has work that cannot advance (a WAIT): do not pick it,
	 * but it is not idle either.  Can be NULL: block is called. */
	void (*stall)(void *s, struct gpup_ectx *c, uint64_t now);
	/* A runnable context and its slice in ns.  NULL if none may run now;
	 * then *slice_ns is how long until one may (UINT64_MAX: not before
	 * a wake), and the executor sleeps at most that long. */
	struct gpup_ectx *(*pick)(void *s, uint64_t now, uint64_t *slice_ns);
	/* What the picked context used (engine CPU ns) and how its slice
	 * ended (GPUP_RUN_MORE: preempted with work left).  Called before
	 * block or stall for the same slice. */
	void (*account)(void *s, struct gpup_ectx *c, uint64_t ran_ns, uint64_t now,
			enum gpup_run_result res);
	/* Asked at the running context c's preemption points, after the
	 * doorbells rung meanwhile were woken: true ends its slice there.
	 * Can be NULL: slices end at their deadline only. */
	bool (*preempt)(void *s, struct gpup_ectx *c, uint64_t now);
	/* The context completed commands in its last slice.  Can be NULL. */
	void (*progress)(void *s, struct gpup_ectx *c, uint64_t now);
	/* Contexts with work and no progress for the watchdog timeout, each
	 * reported once until it progresses or blocks: up to max into out,
	 * returns how many.  Polled every GPUP_ENGINE_WATCHDOG_PERIOD_NS
	 * while the engine has work.  Can be NULL: no watchdog. */
	unsigned int (*watchdog)(void *s, uint64_t now, struct gpup_ectx **out,
				 unsigned int max);
};

#define GPUP_ENGINE_WATCHDOG_PERIOD_NS 10000000ull
/* Engine time between two looks for doorbells while a context runs: a
 * woken interactive context waits about this long (plus a work-group),
 * and each look costs a system call or two. */
#define GPUP_ENGINE_PREEMPT_POLL_NS 100000ull

#define GPUP_ENGINE_WAIT_POLL_NS 100000ull
/* How often a halted engine looks at its doorbells (to drain them). */
#define GPUP_ENGINE_HALT_POLL_NS 10000000ull
/* How long a context that ran dry is watched (GPUP_RUN_WATCH), and how
 * often an otherwise idle engine looks meanwhile: every
 * GPUP_ENGINE_WATCH_POLL_NS at first, then every 1/GPUP_ENGINE_WATCH_BACKOFF
 * of the time watched so far.  A guest whose driver takes a millisecond or
 * more between submissions (a Linux guest under an emulating VMM: an
 * interrupt, a wake-up and two system calls in between) still finds its
 * queue watched, and work that comes late waits at most that fraction of
 * its lateness for a look, still far less than the doorbell it saved.  The
 * engine sleeps between looks (with the kernel's timer slack, 50 us by
 * default), so a window costs a few dozen wake-ups, not a spinning CPU. */
#define GPUP_ENGINE_WATCH_NS 4000000ull
#define GPUP_ENGINE_WATCH_POLL_NS 20000ull
#define GPUP_ENGINE_WATCH_BACKOFF 16u
#define GPUP_ENGINE_WAIT_POLL_MAX_NS 1000000ull

/* An engine of gpu_name and its thread, which runs thread_init first (can
 * be NULL: where the owner confines its threads; the gpup daemon installs
 * a seccomp filter) and waits for its answer.  NULL and errno on failure,
 * thread_init's -errno included. */
struct gpup_engine *gpup_engine_create(enum gpup_engine_kind kind, unsigned int index,
				       const char *gpu_name, int (*thread_init)(void));
/* Stops the thread.  Contexts still attached are dropped without being
 * run again; their owners' detach then does nothing. */
void gpup_engine_destroy(struct gpup_engine *e);

/* Swap the scheduler (ops->create(e, arg)); attached contexts are
 * re-added, runnable ones woken.  0 or -errno (the old scheduler stays). */
int gpup_engine_set_sched(struct gpup_engine *e, const struct gpup_sched_ops *ops,
			  const void *arg);
/* Run fn on the engine's scheduler state under the engine lock (policy
 * changes, per-context settings, statistics).  Returns fn's result, or
 * -EINVAL if the engine's scheduler is not ops. */
int gpup_engine_sched_call(struct gpup_engine *e, const struct gpup_sched_ops *ops,
			   int (*fn)(void *sched, void *arg), void *arg);

int gpup_engine_attach(struct gpup_engine *e, struct gpup_ectx *c);
/* Waits until the executor is not running c, then drops it. */
void gpup_engine_detach(struct gpup_ectx *c);
/* Called from a run op that waits on something outside the engine (a
 * client's DMA_READ reply): whether it should let the wait go and return,
 * because another context of this engine has work, the running one is
 * being detached, or the engine stops.  Looks for doorbells on the way.
 * False on any other thread. */
bool gpup_engine_contended(void);
/* Its GPU failed (gpup_gpu_fail): the running context's slice ends at
 * its next preemption look and nothing runs again; attach, detach and
 * doorbells still work.  For good: a halted engine stays halted. */
void gpup_engine_halt(struct gpup_engine *e);
/* Make c runnable without a doorbell (its owner found work for it). */
void gpup_ectx_kick(struct gpup_ectx *c);
/* Re-poll every waiting context of e now: a fence they may wait on was
 * written.  Cheap when none waits. */
void gpup_engine_recheck(struct gpup_engine *e);

struct gpup_ectx_stats {
	uint64_t engine_ns, slices, doorbells, preemptions, yields;
};
void gpup_ectx_stats(struct gpup_ectx *c, struct gpup_ectx_stats *st);

enum gpup_engine_kind gpup_engine_kind(const struct gpup_engine *e);
uint64_t gpup_engine_busy_ns(struct gpup_engine *e);

/* CLOCK_MONOTONIC in ns. */
uint64_t gpup_mono_ns(void);
/* How long an idle engine sleeps before it looks again at a context that
 * has been watched for watched_ns (see GPUP_ENGINE_WATCH_NS). */
uint64_t gpup_engine_watch_gap(uint64_t watched_ns);

/*
 * The sim GPU's built-in kernels (kernels.c: GPUP_KERNEL_* in
 * uapi/gpup_vgpu.h), cut into work-groups so that an engine can preempt a
 * long launch at a group boundary and resume it later with identical
 * results.
 *
 * A launch is checked once (gpup_kernel_prepare), then stepped: every call
 * to gpup_kernel_step runs at least one work-group and stops at the first
 * boundary past the engine-time deadline.  Everything a resumed launch needs
 * lives in struct gpup_kernel_run, so the engine saves it in the queue's
 * context between slices.  All buffers are offsets into one VRAM window.
 */

struct gpup_kernel_run {
	uint32_t id;          /* GPUP_KERNEL_* */
	uint64_t args[6];
	uint64_t next;        /* next work-group */
	uint64_t ngroups;
	uint64_t acc;         /* carried state: FNV-1a hash, spun engine ns */
	float acc_f;          /* carried state: REDUCE sum of finished blocks */
	/* The VRAM the launch writes (its output buffer), set by prepare:
	 * what a migration must resend once the launch has run. */
	uint64_t out_off, out_len;
};

/* No deadline: run the launch to completion in one step. */
#define GPUP_KERNEL_NO_DEADLINE UINT64_MAX

/*
 * Check a launch against a VRAM window of vram_size bytes and set k up at
 * work-group 0.  Returns 0, or the GPUP_FAULT_* code that the queue takes
 * (BAD_KERNEL, BAD_ARGS for misaligned or inconsistent arguments,
 * VRAM_RANGE for a buffer past the window) with *fault_addr set to the
 * offending offset or argument.
 */
int gpup_kernel_prepare(struct gpup_kernel_run *k, uint32_t id, const uint64_t args[6],
			uint64_t vram_size, uint64_t *fault_addr);

/*
 * Run work-groups of a prepared launch on VRAM window vram until it is done
 * (true) or this thread's CPU time reaches deadline_ns (false: call again to
 * resume).  deadline_ns is in CLOCK_THREAD_CPUTIME_ID nanoseconds.
 */
bool gpup_kernel_step(struct gpup_kernel_run *k, uint8_t *vram, uint64_t deadline_ns);

static inline bool gpup_kernel_done(const struct gpup_kernel_run *k)
{
	return k->next >= k->ngroups;
}

/* This thread's CPU time in ns: the engine-time clock. */
uint64_t gpup_thread_cpu_ns(void);

/*
 * Whether a slice that ends at engine time deadline_ns is over: the
 * deadline has passed, or the hook this thread set says to stop now (an
 * engine executor whose scheduler wants the engine for another context).
 * Every preemption point (a work-group, a copy chunk, a command boundary)
 * asks this.
 */
bool gpup_slice_over(uint64_t deadline_ns);
/* Set this thread's hook, called by gpup_slice_over before the deadline
 * with this thread's CPU time; fn NULL: only the deadline ends a slice. */
void gpup_slice_hook(bool (*fn)(void *arg, uint64_t cpu_ns), void *arg);

/* Bitmask of the kernels built in (GPUP_REG_KERNELS). */
#define GPUP_KERNELS_BUILTIN ((1u << GPUP_KERNEL_MAX) - 1)

/*
 * The time-slice scheduler (scheduler/sched.h) as an engine executor's
 * scheduler plug-in (engine_sched.c: struct gpup_sched_ops above), and the
 * run-time controls the daemon uses on a running engine: change the policy
 * and slice, set a partition's weight, cap and class, read its accounting.
 * All calls take the engine lock through gpup_engine_sched_call.
 */

/* create's arg is a struct sched_engine_cfg (NULL: best-effort, default
 * slice, no watchdog, as a new engine starts).  A new context's weight is
 * its gpup_ectx weight. */
extern const struct gpup_sched_ops gpup_sched_tslice;

/* Longest slice handed to the executor under fifo, whose jobs run to
 * their end: the executor's deadline is this far in engine time. */
#define GPUP_TSCHED_JOB_NS (3600ull * 1000000000ull)

/* Put e under the time-slice scheduler with policy p and slice (0:
 * default), or change both if it already is.  0 or -errno. */
int gpup_tsched_set_policy(struct gpup_engine *e, enum sched_policy p,
			   uint64_t slice_ns);
/* The watchdog timeout of e's time-slice scheduler (0: off).  -EINVAL if
 * e is not under it. */
int gpup_tsched_set_watchdog(struct gpup_engine *e, uint64_t timeout_ns);
/* Weight, reserve, cap, class, fps limit and budget of one attached
 * context.  -EINVAL if e is not under the time-slice scheduler or cfg is
 * bad, -ENOMEM when a budget's wait histogram cannot be allocated. */
int gpup_tsched_set_ctx(struct gpup_engine *e, struct gpup_ectx *c,
			const struct sched_ctx_cfg *cfg);
int gpup_tsched_ctx_stats(struct gpup_engine *e, struct gpup_ectx *c,
			  struct sched_ctx_stats *st);
int gpup_tsched_engine_stats(struct gpup_engine *e, struct sched_engine_stats *st);

#endif
