/* SPDX-License-Identifier: MIT */
/*
 * Private to the vgpu room.  The device model: the register file and
 * queue state shared by vgpu.c (registers, fds, reset: the control plane)
 * and vgpu_cmd.c (the command processor, run on engine threads).  Below
 * it, the vfio-user server's own state.
 *
 * Locking: cfg_lock serialises control-plane calls (BAR0 writes, reset,
 * destroy); they may wait for an engine to drop a queue, so engines never
 * take it.  lock guards the register file and is held only briefly, by
 * both sides.  home_lock guards where the vgpu lives (gpu, vram,
 * vram_offset): the serving thread holds it shared while it reaches VRAM
 * for a region access, a move holds it exclusively while it swaps them
 * (with every queue off its engine, so engines never need it).  A queue's `run` snapshot and everything below it in struct
 * vgpu_queue belong to the engine while the queue is attached.
 *
 * The watchdog's partition reset (vgpu_wd.c) is owed by an engine thread,
 * which cannot wait for the engines, and paid by a reset thread under
 * cfg_lock, or earlier by the next BAR0 write.
 */
#ifndef GPUP_VGPU_INT_H
#define GPUP_VGPU_INT_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "gpup/gpu/gpu.h"
#include "gpup/vgpu/vgpu.h"
#include "scheduler/sched.h"
#include "uapi/gpup_vgpu.h"

/* PCI configuration space of the vGPU function (pci_cfg.c), kept for
 * vfio-user clients (vgpu_vfu.c); only the serving thread touches it. */
struct gpup_pci_cfg {
	uint8_t space[GPUP_PCI_CFG_SIZE];
	uint8_t wmask[GPUP_PCI_CFG_SIZE];  /* 1 = guest-writable bit */
};

/* Identity from uapi/gpup_vgpu.h, BAR0 (32-bit memory, GPUP_BAR0_SIZE),
 * BAR2 (64-bit prefetchable, vram_size, a power of two), MSI-X. */
void gpup_pci_cfg_init(struct gpup_pci_cfg *c, uint64_t vram_size);
/* Any range inside the space: 0 or -EINVAL.  Writes keep read-only bits. */
int gpup_pci_cfg_read(const struct gpup_pci_cfg *c, uint64_t off, void *buf, size_t len);
int gpup_pci_cfg_write(struct gpup_pci_cfg *c, uint64_t off, const void *buf, size_t len);

struct vgpu_fault_rec {
	uint32_t code, queue;
	uint64_t addr, detail, seq;
};

/* How far a multi-step command got, so a preempted one resumes. */
struct vgpu_progress {
	uint64_t done;                /* COPY/FILL bytes moved */
	bool started;                 /* KERNEL launch prepared */
	struct gpup_kernel_run kernel;
};

struct vgpu_queue {
	struct vgpu *v;
	unsigned int idx;
	int doorbell_fd;
	bool attached;                /* cfg_lock */
	bool parked;                  /* cfg_lock: enabled, off its engine while quiesced */
	/* Guest-programmed registers (lock). */
	uint64_t ring, pi_addr, watch;
	uint32_t entries, engine, control, vector, priority;
	/* Device-published state (lock). */
	uint32_t ci, status, fault;
	uint64_t commands;
	uint64_t fence;               /* the last FENCE's value (Q_FENCE) */
	/* Setup captured at enable: the engine uses this, not the registers
	 * the guest may rewrite meanwhile. */
	struct {
		uint64_t ring, pi_addr, watch;
		uint32_t entries, vector;
	} run;
	/* Engine-owned while attached. */
	uint32_t pi_seen;
	bool pi_pending;              /* CI := PI left to the engine (STARTING) */
	bool watching;                /* the watch word holds 1 (Q_WATCH) */
	bool have_cmd;
	bool irq_pending;             /* FENCE done, interrupt after CI */
	union gpup_cmd cmd;
	struct vgpu_progress prog;
	uint8_t *bounce;              /* IOVA<->IOVA and IOVA fills */
	/* When the first try of the DMA now being retried gave way (a
	 * client's memory, the engine wanted elsewhere): its deadline runs
	 * from there.  0: none. */
	uint64_t remote_since;
	struct gpup_ectx ectx;
	enum gpup_engine_kind kind;
};

struct vgpu {
	pthread_mutex_t cfg_lock, lock;
	pthread_rwlock_t home_lock;
	struct gpup_gpu *gpu;         /* home_lock, and lock for readers of the clock */
	struct iommu_domain *iommu;
	/* How the IOMMU reaches the client's fd-less memory (vgpu_serve);
	 * NULL without a server. */
	struct vfu_dma_chan *chan;
	uint8_t *vram;                /* the partition's window (home_lock) */
	uint64_t vram_offset, vram_size;  /* of the window in the GPU's VRAM */
	uint32_t kernels;             /* features exposed (lock to change) */
	/* Added to the GPU's clock, so that a move to a GPU that came up at
	 * another time never sends the device clock back (lock). */
	int64_t clock_bias;
	unsigned int id;
	char name[64];
	char type[64];                /* partition type, for migration streams */
	char label[80];               /* "partition NAME", for the server's log */
	struct gpup_pci_cfg pci;
	/* Device registers (lock). */
	uint32_t control, intr_status, intr_mask, fault_vector, scratch;
	uint32_t time_hi_latch;
	bool lost;
	uint64_t fault_count;
	struct vgpu_fault_rec log[GPUP_FAULT_LOG_ENTRIES];
	int irq_fd[GPUP_MSIX_VECTORS];
	uint64_t irq_full_until[GPUP_MSIX_VECTORS]; /* found full: skip until */
	/* Statistics (lock). */
	uint64_t faults, interrupts, engine_ns_done[2], doorbells_done;
	struct vgpu_queue q[GPUP_MAX_QUEUES];
	/* Scheduler settings for every queue (cfg_lock; vgpu_sched.c). */
	struct sched_ctx_cfg sched;
	bool sched_set;
	/* The watchdog's reset (lock; vgpu_wd.c). */
	bool wd_pending;              /* a queue hung: a reset is owed */
	bool wd_busy;                 /* wd_thread has not given up cfg_lock */
	bool wd_joinable;             /* wd_thread was started, not joined */
	bool dying;                   /* vgpu_destroy began: no new thread */
	pthread_t wd_thread;
	/* Migration (vgpu_mig.c).  quiesced (cfg_lock): stopped, every
	 * enabled queue parked.  dirty: one bit per 4 KiB page of VRAM an
	 * engine or a region write changed while tracking is on; allocated
	 * once, freed with the vgpu, so engines never see it go. */
	bool quiesced;
	/* The client took the doorbells' ioeventfds: a doorbell is cheap
	 * there, so the device offers no watch (GPUP_CAP_WATCH; lock). */
	bool doorbell_fds_out;
	bool tracking;                /* atomic */
	uint64_t *dirty;              /* atomic pointer, then atomic words */
	size_t dirty_words;
	/* Continuous protection's own record of the pages the device
	 * writes (vgpu_protect.c), beside a migration's: made once, freed
	 * with the vgpu, like dirty. */
	bool ptracking;               /* atomic */
	uint64_t *pdirty;             /* atomic pointer, then atomic words */
	/* migrate/'s state machine and stream over this device; mig_lock
	 * lets one driver (the client, or a checkpoint) use it at a time. */
	struct mig_dev *mig;
	pthread_mutex_t mig_lock;
	void (*say)(const char *fmt, ...);  /* the server's log, for migrate/'s lines */
};

#define VGPU_BOUNCE_SIZE (256u << 10)
/* A client eventfd found full is not tried again for this long. */
#define VGPU_IRQ_FULL_BACKOFF_NS 1000000000ull
#define VGPU_COPY_CHUNK (2u << 20)
/* How long a command waits for its client to answer one DMA_READ /
 * DMA_WRITE into memory mapped without an fd before it faults. */
#define VGPU_REMOTE_WAIT_NS 1000000000ull

/* The IOMMU's remote ops for v's domain (vgpu_vfu.c), and their
 * deadline: from the running queue's remote_since on an engine, from now
 * elsewhere (vgpu_cmd.c); done records how a transfer ended. */
extern const struct iommu_remote_ops vgpu_remote_ops;
uint64_t vgpu_remote_deadline(void);
void vgpu_remote_done(int rc);

/* Record a fault on q (lock held): log, Q_FAULT, FAULTED, interrupt. */
void vgpu_fault_locked(struct vgpu_queue *q, uint32_t code, uint64_t addr,
		       uint64_t detail);
/* Set INTR_STATUS bit and send vector unless masked (lock held). */
void vgpu_irq_locked(struct vgpu *v, uint32_t bit, uint32_t vector);

/* Detach every queue, registers to reset values (cfg_lock held).  With
 * keep_faults (the watchdog's reset) the fault log, FAULT_COUNT, INTR_STATUS
 * bit 31 and a lost GPU survive, so the guest can read why. */
void vgpu_reset_cfg_locked(struct vgpu *v, bool keep_faults);

/* A queue of v hung, its WATCHDOG fault is recorded and wd_pending set:
 * have v reset by a thread that may wait for the engines (engine thread,
 * no lock held). */
void vgpu_wd_request(struct vgpu *v);
/* Pay an owed watchdog reset now (cfg_lock held): a BAR0 write the guest
 * makes after the fault must not be undone by the reset coming later. */
void vgpu_wd_flush(struct vgpu *v);
/* vgpu_destroy, once no queue is attached and cfg_lock is released: wait
 * for the reset thread. */
void vgpu_wd_join(struct vgpu *v);

/* Put q on its engine (cfg_lock; q's setup captured); a failure faults
 * the queue DEVICE_LOST and is returned. */
int vgpu_queue_attach(struct vgpu_queue *q);
/* Drop q from its engine, folding its counters into the vgpu's (cfg_lock). */
void vgpu_queue_detach(struct vgpu_queue *q);
/* The engine of v's GPU that q runs on (cfg_lock), or NULL. */
struct gpup_engine *vgpu_queue_engine(struct vgpu_queue *q);
/* The device clock (TIMESTAMP, GPUP_REG_TIME; lock held). */
uint64_t vgpu_clock_ns(const struct vgpu *v);

/* VRAM [off, off + len) of v was written by the device: mark it for a
 * migration's next round if one is tracking.  Call after the write. */
void vgpu_vram_written(struct vgpu *v, uint64_t off, uint64_t len);

/* Apply v's scheduler settings to q on engine e (cfg_lock; vgpu_sched.c). */
void vgpu_sched_apply_queue(struct vgpu *v, struct gpup_engine *e, struct vgpu_queue *q);

/* q's command and progress came from a migration stream: whether an
 * engine could have left them so, with every operand inside this
 * partition; a KERNEL launch is prepared again for this window
 * (vgpu_cmd.c). */
bool vgpu_cmd_resumable(struct vgpu_queue *q);

/* vgpu_quiesce, vgpu_resume and vgpu_state_save with cfg_lock held;
 * check: every check vgpu_state_load makes of a blob (a command in flight
 * must be resumable here), nothing applied.  For a move, which holds
 * cfg_lock from stop to start so that no BAR0 write falls between. */
void vgpu_quiesce_locked(struct vgpu *v);
void vgpu_resume_locked(struct vgpu *v);
int vgpu_state_save_locked(struct vgpu *v, void *buf, size_t max);
int vgpu_state_check_locked(struct vgpu *v, const void *buf, size_t len);

/* Where a vgpu lives; vgpu_swap_home exchanges v's with *h (cfg_lock
 * held, every queue off its engine), the device clock carrying on
 * (vgpu_move.c, also for vgpu_recover.c). */
struct vgpu_home {
	struct gpup_gpu *gpu;
	uint8_t *vram;
	uint64_t off;
	uint32_t kernels;
};
void vgpu_swap_home(struct vgpu *v, struct vgpu_home *h);
/* What v's migration streams say of it (the HEADER's ident). */
struct mig_ident;
void vgpu_mig_ident(struct vgpu *v, struct mig_ident *id);
/* vgpu_state_load with cfg_lock held. */
int vgpu_state_load_locked(struct vgpu *v, const void *buf, size_t len);

/* Make v's migration device (vgpu_create), and route its log lines
 * (vgpu_serve). */
int vgpu_mig_init(struct vgpu *v);
void vgpu_mig_set_log(struct vgpu *v, void (*log)(const char *fmt, ...));

/* The engine's run op for a queue context (vgpu_cmd.c). */
extern const struct gpup_ectx_ops vgpu_queue_ops;

#endif
