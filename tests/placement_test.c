// SPDX-License-Identifier: MIT
/* The buddy allocator that places partitions in VRAM. */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdlib.h>

#include "gpup/pool/pool.h"

#define GIB (1ull << 30)

Test(placement, init_rejects_bad_geometry)
{
	struct gpup_buddy b;

	cr_assert_eq(gpup_buddy_init(&b, 8 * GIB, 3), -EINVAL);
	cr_assert_eq(gpup_buddy_init(&b, 8 * GIB, 128), -EINVAL);
	cr_assert_eq(gpup_buddy_init(&b, 0, 16), -EINVAL);
	cr_assert_eq(gpup_buddy_init(&b, 17, 16), -EINVAL);
	cr_assert_eq(gpup_buddy_init(&b, 8 * GIB, 16), 0);
	cr_assert_eq(b.unit, GIB / 2);
	cr_assert_eq(gpup_buddy_largest_free(&b), 16);
}

Test(placement, half_quarter_destroy_keeps_largest_slot_right)
{
	struct gpup_buddy b;
	unsigned int half, quarter, eighth;

	gpup_buddy_init(&b, 8 * GIB, 16);
	cr_assert_eq(gpup_buddy_alloc(&b, 8, &half), 0);
	cr_assert_eq(half, 0);
	cr_assert_eq(gpup_buddy_alloc(&b, 4, &quarter), 0);
	cr_assert_eq(quarter, 8);
	cr_assert_eq(gpup_buddy_largest_free(&b), 4);
	cr_assert_eq(gpup_buddy_available(&b, 4), 1);
	cr_assert_eq(gpup_buddy_available(&b, 8), 0);
	cr_assert_eq(gpup_buddy_free(&b, half, 8), 0);
	cr_assert_eq(gpup_buddy_largest_free(&b), 8);
	cr_assert_eq(gpup_buddy_available(&b, 8), 1);
	cr_assert_eq(gpup_buddy_available(&b, 4), 3);
	/* An eighth goes next to the quarter, not into the free half. */
	cr_assert_eq(gpup_buddy_alloc(&b, 2, &eighth), 0);
	cr_assert_eq(eighth, 12);
	cr_assert_eq(gpup_buddy_available(&b, 8), 1);
	cr_assert_eq(gpup_buddy_free_units(&b), 16 - 4 - 2);
}

Test(placement, small_slots_fill_split_blocks_first)
{
	struct gpup_buddy b;
	unsigned int off[4];

	gpup_buddy_init(&b, 16 * GIB, 16);
	cr_assert_eq(gpup_buddy_alloc(&b, 1, &off[0]), 0);
	cr_assert_eq(gpup_buddy_alloc(&b, 4, &off[1]), 0);
	cr_assert_eq(gpup_buddy_alloc(&b, 1, &off[2]), 0);
	cr_assert_eq(gpup_buddy_alloc(&b, 2, &off[3]), 0);
	cr_assert_eq(off[0], 0);
	cr_assert_eq(off[1], 4);
	cr_assert_eq(off[2], 1);
	cr_assert_eq(off[3], 2);
	cr_assert_eq(gpup_buddy_available(&b, 8), 1, "upper half untouched");
}

Test(placement, full_gpu_and_no_space)
{
	struct gpup_buddy b;
	unsigned int off;

	gpup_buddy_init(&b, 8 * GIB, 16);
	cr_assert_eq(gpup_buddy_alloc(&b, 16, &off), 0);
	cr_assert_eq(off, 0);
	cr_assert_eq(gpup_buddy_alloc(&b, 1, &off), -ENOSPC);
	cr_assert_eq(gpup_buddy_largest_free(&b), 0);
	cr_assert_eq(gpup_buddy_alloc(&b, 3, &off), -EINVAL);
	cr_assert_eq(gpup_buddy_alloc(&b, 32, &off), -EINVAL);
}

Test(placement, reserve_and_free_check_their_slot)
{
	struct gpup_buddy b;

	gpup_buddy_init(&b, 8 * GIB, 16);
	cr_assert_eq(gpup_buddy_reserve(&b, 4, 4), 0);
	cr_assert_eq(gpup_buddy_reserve(&b, 6, 2), -EBUSY);
	cr_assert_eq(gpup_buddy_reserve(&b, 2, 4), -EINVAL, "misaligned");
	cr_assert_eq(gpup_buddy_reserve(&b, 16, 1), -EINVAL, "out of range");
	cr_assert_eq(gpup_buddy_free(&b, 0, 4), -EINVAL, "never allocated");
	cr_assert_eq(gpup_buddy_free(&b, 4, 2), 0, "freeing a part is allowed");
	cr_assert_eq(gpup_buddy_free(&b, 4, 4), -EINVAL, "half already free");
	cr_assert_eq(b.used, 0xc0ull, "a failed free changes nothing");
}

/* Random create/destroy: slots never overlap, every slot is naturally
 * aligned, and the counters agree with a brute-force recount. */
Test(placement, random_never_overlaps)
{
	struct gpup_buddy b;
	unsigned int live_off[64], live_units[64], nlive = 0;

	srand(42);
	gpup_buddy_init(&b, 8 * GIB, 16);
	for (int step = 0; step < 5000; step++) {
		if (nlive && (rand() % 3 == 0 || nlive == 64)) {
			unsigned int i = (unsigned int)rand() % nlive;

			cr_assert_eq(gpup_buddy_free(&b, live_off[i], live_units[i]), 0);
			live_off[i] = live_off[--nlive];
			live_units[i] = live_units[nlive];
			continue;
		}
		unsigned int units = 1u << (rand() % 5), off;
		unsigned int avail = gpup_buddy_available(&b, units);
		int rc = gpup_buddy_alloc(&b, units, &off);

		cr_assert_eq(rc == 0, avail > 0, "alloc agrees with available");
		if (rc)
			continue;
		cr_assert_eq(off % units, 0);
		for (unsigned int i = 0; i < nlive; i++)
			cr_assert(off + units <= live_off[i] ||
				  live_off[i] + live_units[i] <= off, "overlap");
		live_off[nlive] = off;
		live_units[nlive++] = units;
	}
}

/* A slot whose end wraps past 2^32 is out of range, not slot 0's
 * neighbour (reached from restored partition files; found by
 * fuzz/pool_state_fuzz.c). */
Test(placement, reserve_rejects_a_wrapping_slot)
{
	struct gpup_buddy b;

	gpup_buddy_init(&b, 8 * GIB, 16);
	cr_assert_eq(gpup_buddy_reserve(&b, 0xfffffff0u, 16), -EINVAL);
	cr_assert_eq(gpup_buddy_reserve(&b, 0xfffffff8u, 8), -EINVAL);
	cr_assert_eq(gpup_buddy_free(&b, 0xfffffff0u, 16), -EINVAL);
	cr_assert_eq(gpup_buddy_free_units(&b), 16);
	cr_assert_eq(gpup_buddy_reserve(&b, 8, 8), 0);
	cr_assert_eq(gpup_buddy_free_units(&b), 8);
}
