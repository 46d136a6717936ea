// SPDX-License-Identifier: MIT
/*
 * When a VM migration stops pre-copying (hv/vm_converge.c), as a table:
 * each case is the time the rest would take to send after each round,
 * and the verdict each round must get.  The old rule (stop at the first
 * rest that fits the budget) fails the cases that go on while the rest
 * still shrinks.
 */
#include <criterion/criterion.h>
#include <stdint.h>

#include "hv/hv_int.h"

#define MS 1000000ull
#define NONE UINT64_MAX  /* no rate measured yet */
#define A HV_CONV_AGAIN
#define S HV_CONV_STOP
#define G HV_CONV_GIVE_UP

struct conv_case {
	const char *what;
	unsigned int max_rounds, more;
	uint64_t send_ns[12];
	enum hv_conv_verdict want[12];
	unsigned int n;
};

static const struct conv_case cases[] = {
	{ "a rest too small to matter stops at once", 30, 8,
	  { 100 * MS, MS / 2 }, { A, S }, 2 },
	{ "a rest that fits but still shrinks goes on until it stops shrinking", 30, 8,
	  { 100 * MS, 20 * MS, 5 * MS, 1200000, 1100000 }, { A, A, A, A, S }, 5 },
	{ "a checkpoint (no rounds more) stops at the first fit, as before", 30, 0,
	  { 100 * MS, 20 * MS }, { A, S }, 2 },
	{ "a round that caught a burst gets one more, then stops near the best", 30, 8,
	  { 100 * MS, 3 * MS, 8 * MS, 2500000, 2400000 }, { A, A, A, A, S }, 5 },
	{ "a rest that keeps shrinking stops after `more` rounds since it fit", 30, 3,
	  { 100 * MS, 20 * MS, 14 * MS, 10 * MS, 7 * MS }, { A, A, A, A, S }, 5 },
	{ "a rest that never fits gives up at max_rounds", 3, 8,
	  { 100 * MS, 90 * MS, 80 * MS }, { A, A, G }, 3 },
	{ "a rest that fits at max_rounds stops there", 3, 8,
	  { 100 * MS, 50 * MS, 20 * MS }, { A, A, S }, 3 },
	{ "no rate measured never fits", 2, 8, { NONE, NONE }, { A, G }, 2 },
	{ "the fixed part counts against the budget; a rest that does not shrink stops", 30, 8,
	  { 29 * MS, 27 * MS }, { A, S }, 2 },
	{ "a rest that fit, then grew past the budget, goes on", 30, 8,
	  { 100 * MS, 10 * MS, 40 * MS, 9 * MS, 8 * MS }, { A, A, A, A, S }, 5 },
};

Test(hv_vmconverge, each_case_of_the_table)
{
	for (size_t k = 0; k < sizeof(cases) / sizeof(cases[0]); k++) {
		const struct conv_case *t = &cases[k];
		struct hv_conv c = { .budget_ns = 30 * MS, .fixed_ns = 2 * MS,
				     .max_rounds = t->max_rounds, .more = t->more };

		for (unsigned int r = 0; r < t->n; r++) {
			enum hv_conv_verdict v = hv_conv_next(&c, r + 1, t->send_ns[r]);

			cr_expect_eq(v, t->want[r], "%s: round %u: verdict %d, want %d", t->what,
				     r + 1, v, t->want[r]);
		}
	}
}

/* However the rest moves, the extra rounds are bounded. */
Test(hv_vmconverge, the_rounds_after_a_fit_are_bounded)
{
	struct hv_conv c = { .budget_ns = 30 * MS, .fixed_ns = 2 * MS, .max_rounds = 1000,
			     .more = 8 };
	unsigned int r = 1;

	cr_assert_eq(hv_conv_next(&c, r, 100 * MS), A);
	/* Shrinking by a third each time, never small enough to stop. */
	for (uint64_t ns = 27 * MS; hv_conv_next(&c, ++r, ns) == A; ns = ns * 2 / 3)
		cr_assert_lt(r, 12);
	cr_assert_eq(r, 10, "stopped after round %u", r);
}
