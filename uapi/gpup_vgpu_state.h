/* SPDX-License-Identifier: MIT */
/*
 * The vGPU's device state as it travels in a migration stream or a
 * checkpoint (the STATE chunk of uapi/gpup_mig.h): everything a guest can
 * observe of a partition but its VRAM, which travels in chunks of its own.
 *
 * Taken with the device stopped (migration STOP), so every queue rests at
 * a command boundary or, inside a COPY, FILL or KERNEL, at a chunk or
 * work-group boundary whose progress is recorded here; a destination
 * resumes such a command where the source left it, so nothing is lost or
 * done twice.  Little-endian, fixed-width, explicitly padded; a reader
 * checks magic, version and size before anything else, and every field
 * against what the guest could have programmed (a blob is input from
 * another host).
 */
#ifndef GPUP_UAPI_VGPU_STATE_H
#define GPUP_UAPI_VGPU_STATE_H

#include <stdint.h>

#include "uapi/gpup_vgpu.h"

#define GPUP_VGPU_STATE_MAGIC 0x54535647u   /* "GVST" */
/* Version 2 added the queues' fence_lo/hi (Q_FENCE) in what version 1
 * kept reserved: a reader of 2 takes 1 with those 0. */
#define GPUP_VGPU_STATE_VERSION 2u

/* gpup_vgpu_state_queue.flags */
#define GPUP_VST_Q_RUNNING (1u << 0)   /* on an engine when stopped (enabled; maybe faulted) */
#define GPUP_VST_Q_HAVE_CMD (1u << 1)  /* cmd was fetched and is not done */
#define GPUP_VST_Q_IRQ_PENDING (1u << 2)  /* a FENCE's interrupt is owed */
#define GPUP_VST_Q_STARTED (1u << 3)   /* cmd's KERNEL launch was prepared */
#define GPUP_VST_Q_FLAGS 0xfu

struct gpup_vgpu_state_queue {
	/* Registers, as the guest programmed them. */
	uint64_t ring, pi_addr;
	uint32_t entries, engine, control, vector, priority;
	/* Published by the device. */
	uint32_t ci, status, fault;
	uint64_t commands;
	/* Setup captured when the queue was enabled. */
	uint64_t run_ring, run_pi_addr;
	uint32_t run_entries, run_vector;
	/* Progress of the command under way. */
	uint32_t pi_seen, flags;
	uint64_t done;                /* COPY/FILL bytes moved */
	uint32_t kernel_id, kernel_acc_f;  /* acc_f: the float's bits */
	uint64_t kernel_args[6];
	uint64_t kernel_next, kernel_acc;
	uint8_t cmd[GPUP_CMD_SIZE];
	uint32_t run_engine;          /* GPUP_ENGINE_*: the kind it runs on */
	uint32_t fence_lo, fence_hi;  /* Q_FENCE (version 2) */
	uint32_t reserved[1];         /* 0 */
	/* Q_WATCH (0 in a blob from before it existed); the register, and
	 * the setup while enabled, since it cannot change then. */
	uint32_t watch_lo, watch_hi;
};

struct gpup_vgpu_state_fault {
	uint32_t code, queue;
	uint64_t addr, detail, seq;
};

struct gpup_vgpu_state {
	uint32_t magic, version;
	uint32_t size;                /* sizeof(struct gpup_vgpu_state) */
	uint32_t num_queues;          /* GPUP_MAX_QUEUES */
	uint64_t vram_size;
	/* Device registers. */
	uint32_t control, intr_status, intr_mask, fault_vector, scratch;
	uint32_t lost;                /* 0 or 1 */
	uint64_t fault_count;
	struct gpup_vgpu_state_fault log[GPUP_FAULT_LOG_ENTRIES];
	/* Scheduler settings given to the partition (scheduler/sched.h's
	 * struct sched_ctx_cfg); set 0: none were. */
	uint32_t sched_set, sched_weight, sched_reserve_ppm, sched_cap_ppm;
	uint32_t sched_class, sched_fps_limit, sched_budget_us;
	uint32_t reserved0;           /* 0 */
	/* PCI configuration space as the VMM left it. */
	uint8_t pci_cfg[256];
	struct gpup_vgpu_state_queue q[GPUP_MAX_QUEUES];
};

_Static_assert(sizeof(struct gpup_vgpu_state_queue) == 256, "queue state");
_Static_assert(sizeof(struct gpup_vgpu_state) ==
		       56 + 32 * GPUP_FAULT_LOG_ENTRIES + 32 + 256 + 256 * GPUP_MAX_QUEUES,
	       "state");

#endif
