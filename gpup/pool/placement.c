// SPDX-License-Identifier: MIT
/*
 * The buddy allocator that places partitions in a GPU's VRAM (see
 * pool.h for the model).  With at most 64 units the whole state is
 * one bitmap, so every query is a handful of mask operations.
 */
#include <errno.h>
#include <stdbool.h>

#include "gpup/pool/pool.h"

static bool is_pow2(uint64_t v)
{
	return v && (v & (v - 1)) == 0;
}

static uint64_t slot_mask(unsigned int off, unsigned int units)
{
	uint64_t m = units >= 64 ? ~0ull : ((1ull << units) - 1);

	return m << off;
}

int gpup_buddy_init(struct gpup_buddy *b, uint64_t size, unsigned int nunits)
{
	if (!is_pow2(nunits) || nunits > GPUP_BUDDY_MAX_UNITS || size == 0 ||
	    size % nunits)
		return -EINVAL;
	b->size = size;
	b->nunits = nunits;
	b->unit = size / nunits;
	b->used = 0;
	return 0;
}

static bool slot_valid(const struct gpup_buddy *b, unsigned int off, unsigned int units)
{
	/* off comes from restored files: off + units must not wrap. */
	return is_pow2(units) && units <= b->nunits && off % units == 0 &&
	       off <= b->nunits - units;
}

static bool slot_free(const struct gpup_buddy *b, unsigned int off, unsigned int units)
{
	return (b->used & slot_mask(off, units)) == 0;
}

/* The size of the largest fully free aligned block containing the slot. */
static unsigned int free_block_around(const struct gpup_buddy *b, unsigned int off,
				      unsigned int units)
{
	unsigned int size = units;

	while (size < b->nunits) {
		unsigned int up = size * 2;

		if (!slot_free(b, off - off % up, up))
			break;
		size = up;
	}
	return size;
}

int gpup_buddy_alloc(struct gpup_buddy *b, unsigned int units, unsigned int *unit_off)
{
	unsigned int best = 0, best_block = 0;
	bool found = false;

	if (!is_pow2(units) || units > b->nunits)
		return -EINVAL;
	for (unsigned int off = 0; off < b->nunits; off += units) {
		unsigned int block;

		if (!slot_free(b, off, units))
			continue;
		block = free_block_around(b, off, units);
		if (!found || block < best_block) {
			best = off;
			best_block = block;
			found = true;
		}
	}
	if (!found)
		return -ENOSPC;
	b->used |= slot_mask(best, units);
	*unit_off = best;
	return 0;
}

int gpup_buddy_reserve(struct gpup_buddy *b, unsigned int unit_off, unsigned int units)
{
	if (!slot_valid(b, unit_off, units))
		return -EINVAL;
	if (!slot_free(b, unit_off, units))
		return -EBUSY;
	b->used |= slot_mask(unit_off, units);
	return 0;
}

int gpup_buddy_free(struct gpup_buddy *b, unsigned int unit_off, unsigned int units)
{
	uint64_t m;

	if (!slot_valid(b, unit_off, units))
		return -EINVAL;
	m = slot_mask(unit_off, units);
	if ((b->used & m) != m)
		return -EINVAL;
	b->used &= ~m;
	return 0;
}

unsigned int gpup_buddy_available(const struct gpup_buddy *b, unsigned int units)
{
	unsigned int n = 0;

	if (!is_pow2(units) || units > b->nunits)
		return 0;
	for (unsigned int off = 0; off < b->nunits; off += units)
		n += slot_free(b, off, units);
	return n;
}

unsigned int gpup_buddy_largest_free(const struct gpup_buddy *b)
{
	for (unsigned int units = b->nunits; units; units /= 2)
		if (gpup_buddy_available(b, units))
			return units;
	return 0;
}

unsigned int gpup_buddy_free_units(const struct gpup_buddy *b)
{
	return b->nunits - (unsigned int)__builtin_popcountll(b->used);
}
