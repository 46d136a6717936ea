/* SPDX-License-Identifier: MIT */
/*
 * Placement of partitions in one GPU's VRAM: a buddy allocator over
 * naturally aligned slots.
 *
 * DOC: why a buddy
 *
 * Partition sizes are the GPU's VRAM divided by a power of two, so every
 * slot can be naturally aligned: a 1/4 partition starts at a multiple of
 * 1/4 of VRAM.  Aligned slots of one size never straddle a larger slot, so
 * a free 1/2 can only be lost by putting small partitions into it.  The
 * allocator therefore takes the free slot that lies in the smallest fully
 * free aligned block (the classic buddy rule: split the smallest block
 * that fits), lowest offset on ties.  Small partitions gather in blocks
 * that are already split and large free blocks stay whole.
 *
 * VRAM is tracked in units (VRAM / nunits, nunits a power of two up to
 * 64), one bit each.  Pure data: no locking, no I/O.
 */
#ifndef GPUP_PLACEMENT_H
#define GPUP_PLACEMENT_H

#include <stdint.h>

#define GPUP_BUDDY_MAX_UNITS 64u

struct gpup_buddy {
	uint64_t size;      /* bytes managed */
	uint64_t unit;      /* bytes per unit */
	unsigned int nunits;
	uint64_t used;      /* bit i = unit i allocated */
};

/* size must be a multiple of nunits units; nunits a power of two in
 * [1, 64].  0 or -EINVAL. */
int gpup_buddy_init(struct gpup_buddy *b, uint64_t size, unsigned int nunits);

/* Allocate a slot of `units` units (a power of two): 0 and *unit_off, or
 * -EINVAL (bad size), -ENOSPC (no aligned free slot). */
int gpup_buddy_alloc(struct gpup_buddy *b, unsigned int units, unsigned int *unit_off);

/* Take the exact slot [unit_off, +units) (restoring saved partitions):
 * -EINVAL if misaligned or out of range, -EBUSY if any unit is taken. */
int gpup_buddy_reserve(struct gpup_buddy *b, unsigned int unit_off, unsigned int units);

/* Free a slot given by alloc/reserve: -EINVAL if it was not fully used. */
int gpup_buddy_free(struct gpup_buddy *b, unsigned int unit_off, unsigned int units);

/* How many slots of `units` could be allocated right now (aligned slots of
 * one size are disjoint, so this is exact). */
unsigned int gpup_buddy_available(const struct gpup_buddy *b, unsigned int units);

/* The largest allocatable slot, in units (0 when full). */
unsigned int gpup_buddy_largest_free(const struct gpup_buddy *b);

unsigned int gpup_buddy_free_units(const struct gpup_buddy *b);

#endif
