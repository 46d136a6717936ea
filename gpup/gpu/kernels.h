/* SPDX-License-Identifier: MIT */
/*
 * The sim GPU's built-in kernels (GPUP_KERNEL_* in uapi/gpup_vgpu.h), cut
 * into work-groups so that an engine can preempt a long launch at a group
 * boundary and resume it later with identical results.
 *
 * A launch is checked once (gpup_kernel_prepare), then stepped: every call
 * to gpup_kernel_step runs at least one work-group and stops at the first
 * boundary past the engine-time deadline.  Everything a resumed launch needs
 * lives in struct gpup_kernel_run, so the engine saves it in the queue's
 * context between slices.  All buffers are offsets into one VRAM window.
 */
#ifndef GPUP_KERNELS_H
#define GPUP_KERNELS_H

#include <stdbool.h>
#include <stdint.h>

#include "uapi/gpup_vgpu.h"

struct gpup_kernel_run {
	uint32_t id;          /* GPUP_KERNEL_* */
	uint64_t args[6];
	uint64_t next;        /* next work-group */
	uint64_t ngroups;
	uint64_t acc;         /* carried state: FNV-1a hash, spun engine ns */
	float acc_f;          /* carried state: REDUCE sum of finished blocks */
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

#endif
