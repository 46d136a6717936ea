/* SPDX-License-Identifier: MIT */
/*
 * The vgpu room (gpup/vgpu/): the vGPU device model, what a guest sees of
 * one partition (see uapi/gpup_vgpu.h) independent of how it is transported
 * (vgpu.c, vgpu_cmd.c, vgpu_sched.c, vgpu_wd.c), and its side of vfio-user:
 * the device ops that vfu/'s server calls (vgpu_vfu.c) and its PCI
 * configuration space (pci_cfg.c).  Tests call the vgpu_* functions
 * directly.
 *
 * A vgpu owns its register file, its queues (contexts on the GPU's
 * engines), its doorbell eventfds and the interrupt eventfds it is given.
 * All DMA to guest memory goes through the iommu domain it is created with;
 * all VRAM access is bounded by its window [vram_offset, +vram_size) of the
 * GPU's VRAM.  Errors are negative errno values.  Thread safe: the server
 * thread and the engine threads may call in concurrently.
 */
#ifndef GPUP_VGPU_H
#define GPUP_VGPU_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#include "uapi/gpup_vgpu.h"

struct gpup_gpu;
struct iommu_domain;
struct vgpu;

struct vgpu_cfg {
	struct gpup_gpu *gpu;
	uint64_t vram_offset;        /* the partition's slice of GPU VRAM */
	uint64_t vram_size;
	struct iommu_domain *iommu;  /* the partition's IO address space */
	const char *name;            /* for logs: the partition UUID */
	const char *type;            /* its partition type, named in migration
				      * streams (NULL: "") */
	/* The built-in kernels it exposes (GPUP_REG_KERNELS; a KERNEL of
	 * another id faults BAD_KERNEL as an unknown one does), a subset of
	 * the GPU's (gpup_gpu_kernels).  0: the GPU's whole set. */
	uint32_t kernels;
};

struct vgpu_stats {
	uint64_t commands, faults, interrupts, doorbells;
	uint64_t engine_ns[2];       /* compute, copy */
};

/* NULL and errno on failure (EINVAL for a window that is not
 * page-aligned inside the GPU's VRAM or kernels the GPU lacks, EBUSY for
 * one over another partition's).  The window gets VRAM of its own (gpup_gpu_vram_attach),
 * zeroed: a partition never sees what an earlier one left there, and the
 * fd BAR2 hands out reaches nothing of another partition's. */
struct vgpu *vgpu_create(const struct vgpu_cfg *cfg);
/* Stops its queues (waiting for the engines to drop them) and any
 * watchdog reset under way, closes its doorbell fds, releases irq fds,
 * and gives its VRAM back to the host (gpup_gpu_vram_detach).  Stop the
 * vfio-user server first: it reads BAR2 through the vgpu. */
void vgpu_destroy(struct vgpu *v);

/* BAR0 access, as a PCI device takes a CPU's: 1 to 8 bytes at any offset
 * with off + len inside GPUP_BAR0_SIZE (anything else is -EINVAL and
 * changes nothing).  Registers are 32 bits: an access reaches each one it
 * covers once, in address order (an 8-byte access is two).  A read returns
 * the bytes it covers; a write of part of a register keeps the register's
 * other bytes (read-modify-write), except where a write acts on the bits
 * it sets (INTR_STATUS, RW1C; the doorbells): there the other bytes are 0.
 * Reads of reserved offsets return 0, writes to read-only registers are
 * ignored. */
int vgpu_bar0_read(struct vgpu *v, uint64_t off, void *buf, size_t len);
int vgpu_bar0_write(struct vgpu *v, uint64_t off, const void *buf, size_t len);

/* The eventfd that rings queue q's doorbell (an ioeventfd for the VMM):
 * owned by the vgpu, valid until vgpu_destroy. */
int vgpu_doorbell_fd(struct vgpu *v, unsigned int q);
/* Whether the client rings doorbells through their ioeventfds (cheap):
 * then the device offers no watch word (GPUP_CAP_WATCH), and queues
 * enabled meanwhile are not watched. */
void vgpu_set_doorbell_fds_out(struct vgpu *v, bool out);
/* Ring a doorbell directly (a trapped doorbell write does this). */
void vgpu_doorbell(struct vgpu *v, unsigned int q);

/* Interrupts: fd is an eventfd for MSI-X vector `vector`, or -1 to
 * disconnect it.  The vgpu dups fd; the caller keeps its own. */
int vgpu_set_irq_fd(struct vgpu *v, unsigned int vector, int fd);

/* Function-level reset: queues stopped and cleared, registers to their
 * reset values, fault log cleared.  IOMMU mappings are not touched.  A
 * queue the engines' watchdog finds hung gets the same reset, from a
 * thread of the vgpu's own, but keeping the fault log (see
 * GPUP_FAULT_WATCHDOG in uapi/gpup_vgpu.h). */
void vgpu_reset(struct vgpu *v);

/* The backing GPU failed: every queue faults with GPUP_FAULT_DEVICE_LOST,
 * STATUS reads GPUP_STS_LOST. */
void vgpu_set_lost(struct vgpu *v);

void vgpu_get_stats(struct vgpu *v, struct vgpu_stats *st);

/* Scheduler settings for all of v's queues (weight, reserve, cap, class,
 * fps limit, budget: struct sched_ctx_cfg in scheduler/sched.h; a weight of 0
 * leaves each queue's priority as its weight).  Applied at once to queues
 * on engines under the time-slice scheduler, and again when a queue is
 * enabled or vgpu_sched_reapply is called after a GPU's scheduler changed.
 * 0 or -EINVAL (nothing changed). */
struct sched_ctx_cfg;
int vgpu_set_sched(struct vgpu *v, const struct sched_ctx_cfg *cfg);
void vgpu_sched_reapply(struct vgpu *v);
/* Whose engine context c is, for listings: the vgpu's name (the partition
 * UUID) and the queue index; -ENOENT if c is not a vgpu queue's. */
struct gpup_ectx;
int vgpu_ectx_owner(const struct gpup_ectx *c, const char **name, unsigned int *queue);

/*
 * Migration (vgpu_mig.c; the migrate/ module drives these through its
 * device ops).  quiesce: every enabled queue leaves its engine at a
 * command, chunk or work-group boundary (within one scheduler slice) and
 * is parked, as is any the guest enables meanwhile; resume puts them back.
 * vram_track(on) clears and starts the record of VRAM pages (4 KiB) the
 * device writes, harvest ORs those written since into bitmap and clears
 * them.  state_save (quiesced: else -EBUSY) writes struct gpup_vgpu_state
 * (uapi/gpup_vgpu_state.h) into buf and returns its size (-ENOSPC if max
 * is short); state_load checks every field (-EPROTO: not such a blob,
 * -ERANGE: another VRAM size, -EINVAL: a value the device could not have
 * had) and applies it, leaving v quiesced with its running queues parked,
 * or leaves v reset.  mig_reset: power-on state, not quiesced.
 */
int vgpu_quiesce(struct vgpu *v);
void vgpu_resume(struct vgpu *v);
int vgpu_vram_track(struct vgpu *v, bool on);
void vgpu_vram_harvest(struct vgpu *v, uint64_t *bitmap);
int vgpu_state_save(struct vgpu *v, void *buf, size_t max);
int vgpu_state_load(struct vgpu *v, const void *buf, size_t len);
void vgpu_mig_reset(struct vgpu *v);

/*
 * The partition's migration (migrate/mig.h's device over the ops above),
 * driven by one party at a time: its vfio-user client (feature, read,
 * write and device_reset, which vgpu_vfu_ops forward) or the daemon.
 * checkpoint writes dir/name with migrate/'s checkpoint file (pre-copied
 * while the partition runs, stopped only for the last copy); restore
 * loads one, leaving the partition as it was (running or stopped) or, on
 * failure, reset, with err naming what was wrong.  0 or -errno.
 */
int vgpu_mig_feature(struct vgpu *v, uint32_t flags, const void *in, uint32_t in_len,
		     void *out, uint32_t out_max);
int vgpu_mig_read(struct vgpu *v, void *buf, uint32_t len);
/* The read as pieces (migrate's mig_dev_data_readv): they stay valid
 * while no one else drives the migration, which the partition's client,
 * whose connection thread sends them, ensures by being the one driving. */
int vgpu_mig_readv(struct vgpu *v, uint32_t len, struct iovec *iov, unsigned int max,
		   unsigned int *niov);
/* After a reply of len went out: prepare the next read (mig_dev_data_ahead). */
void vgpu_mig_ahead(struct vgpu *v, uint32_t len, void (*pump)(void *), void *pump_arg);
int vgpu_mig_write(struct vgpu *v, const void *buf, uint32_t len);
/* DEVICE_RESET: registers, queues and VRAM to power-on, any migration
 * stream dropped, the state machine back in RUNNING. */
void vgpu_device_reset(struct vgpu *v);
/* Its client is gone: a migration it left under way is undone (back to
 * RUNNING, or a device reset where the state machine has no way back). */
void vgpu_mig_client_gone(struct vgpu *v);
int vgpu_checkpoint(struct vgpu *v, const char *dir, const char *name, char *err,
		    size_t errlen);
int vgpu_restore(struct vgpu *v, const char *dir, const char *name, char *err, size_t errlen);
struct mig_stats;
void vgpu_mig_stats(struct vgpu *v, struct mig_stats *st);

/*
 * Moving a running partition to another GPU of the same backend
 * (vgpu_move.c; docs/MIGRATION.md, "Moving a partition").  The vgpu
 * itself moves: the same object the vfio-user server points at, with
 * its doorbell eventfds, the client's irq eventfds and its IOMMU domain,
 * is re-homed on window [vram_offset, +vram_size) of gpu.  Its VRAM file
 * goes with it (gpup_gpu_vram_adopt, then gpup_gpu_vram_release on the
 * source), so nothing of VRAM is copied and a client's BAR2 mapping
 * stays valid.  Between the two it is quiesced, its state saved and
 * loaded again against the new window (every command in flight resumes
 * where it stopped, on the new GPU's engines), and its queues put on
 * those engines.  kernels: the features it exposes there (0: gpu's whole
 * set), which must cover what it exposed so far.  A failure at any step
 * leaves it running on its source as before, with err naming the step.
 * -EBUSY while its client drives a migration; 0 or -errno.
 */
struct vgpu_move_stats {
	uint64_t pause_ns;           /* queues off an engine: quiesce to resume */
	uint64_t total_ns;           /* the whole call */
	uint64_t quiesce_ns, state_ns, attach_ns;  /* parts of the pause */
};
int vgpu_move(struct vgpu *v, struct gpup_gpu *gpu, uint64_t vram_offset, uint32_t kernels,
	      struct vgpu_move_stats *st, char *err, size_t errlen);
/* The features v exposes now (GPUP_REG_KERNELS). */
uint32_t vgpu_kernels(struct vgpu *v);

/*
 * Continuous protection and failover (vgpu_protect.c, vgpu_recover.c;
 * docs/MIGRATION.md, "Failover").  A protection keeps a chain of
 * checkpoint links of v in dir under prefix (migrate/'s chain): take
 * writes one link, a full base now and then (the first, and after
 * max_links increments) and otherwise an increment of the pages changed
 * since the last link: those the device wrote (a record of its own,
 * beside a migration's) and, on a backend whose VRAM the daemon can
 * read (the sim), those a guest CPU wrote through BAR2, found by
 * comparing each page's XXH3 with what the chain holds.  Everything but
 * the final copy runs while the guest does: the device is stopped only
 * to copy the pages its engines wrote since the walk and its state.
 * One protection per vgpu; take is called from one thread at a time,
 * and not at once with vgpu_move or vgpu_recover of the same vgpu.
 */
struct vgpu_protect;
struct vgpu_protect_link {
	uint32_t index;
	bool base;
	uint64_t taken_ns;           /* CLOCK_MONOTONIC of the final copy */
	uint64_t pause_ns;           /* the device stopped for it */
	uint64_t total_ns;           /* the whole link, file synced */
	uint64_t pages, bytes;       /* pages in it, its file's size */
	uint64_t commands;           /* commands completed by then, all queues */
	uint64_t fence[GPUP_MAX_QUEUES];  /* each queue's Q_FENCE then */
};
/* NULL and errno (EBUSY: v is protected already; ENOMEM). */
struct vgpu_protect *vgpu_protect_create(struct vgpu *v, const char *dir, const char *prefix,
					 unsigned int max_links);
/* One link: 0 and *out, -EBUSY when v's client or a checkpoint drives a
 * migration of it (nothing written: try later), or -errno with err. */
int vgpu_protect_take(struct vgpu_protect *p, struct vgpu_protect_link *out, char *err,
		      size_t errlen);
/* Make a take under way (on another thread) give up at its next look:
 * it returns -ECANCELED, nothing written; so do later ones. */
void vgpu_protect_cancel(struct vgpu_protect *p);
void vgpu_protect_destroy(struct vgpu_protect *p);

/* v's GPU failed (gpup_gpu_fail): rebuild it on window [off, +vram_size)
 * of gpu from the chain prefix in dir, without reading a byte of the
 * failed GPU's VRAM.  The vgpu moves as itself (its client keeps its
 * connection); its VRAM file is adopted by gpu and its contents replaced
 * by the chain's, so the client's BAR2 mapping shows them; the last
 * link's state is loaded; every queue that ran is stopped with
 * DEVICE_LOST and the guest gets STATUS.RECOVERED and its interrupt
 * (uapi/gpup_vgpu.h).  kernels as for vgpu_move.  0, or -errno with err
 * naming the step, v then lost (vgpu_set_lost). */
struct vgpu_recover_stats {
	uint64_t restore_ns;         /* the chain read and applied */
	uint64_t total_ns;
	uint64_t commands_lost;      /* completed on the failed GPU after the last link */
	uint64_t fence[GPUP_MAX_QUEUES];  /* each queue's Q_FENCE after recovery */
	uint32_t links;              /* links applied */
};
int vgpu_recover(struct vgpu *v, struct gpup_gpu *gpu, uint64_t off, uint32_t kernels,
		 const char *dir, const char *prefix, struct vgpu_recover_stats *st, char *err,
		 size_t errlen);

/*
 * The vgpu as a vfio-user device: vfu/'s device ops with dev = the vgpu.
 * Regions are the PCI config space, BAR0 (registers; each queue's
 * doorbell has an ioeventfd) and BAR2 (the partition's VRAM, mappable);
 * MSI-X vectors take eventfds; the client's DMA windows go into the
 * vgpu's IOMMU domain.  The server calls them from its connection thread;
 * the vgpu is thread safe, so nothing else needs a lock.
 */
struct vfu_dev_ops;
struct vfu_server;
extern const struct vfu_dev_ops vgpu_vfu_ops;

/* PCI configuration space of the function (conventional PCI). */
#define GPUP_PCI_CFG_SIZE 256u

/* What one client can make the daemon hold for a partition's DMA: client
 * memory mapped at once (DMA_MAP past it: ENOSPC), and the page tables of
 * the partition's IOMMU domain (iommu_domain_cfg.max_table_bytes; a map
 * needing more: ENOSPC).  With 2 MiB blocks, VGPU_MAX_DMA_BYTES costs
 * about 1 MiB of tables (one per GiB); the table budget bounds the sparse worst case
 * of many small windows far apart. */
#define VGPU_MAX_DMA_BYTES (256ull << 30)
#define VGPU_IOMMU_TABLE_BYTES (32ull << 20)

/* A vfio-user server for v (vfu_server_attach, _connected, _destroy in
 * vfu/vfu.h), whose log lines say "partition NAME"; log can be NULL.
 * thread_init (can be NULL) runs first on each thread serving one of its
 * clients (vfu_server_cfg.thread_init).  NULL and errno on failure.
 * Destroy it before v. */
struct vfu_server *vgpu_serve(struct vgpu *v,
			      void (*log)(const char *fmt, ...) __attribute__((format(printf, 1, 2))),
			      int (*thread_init)(void));

#endif
