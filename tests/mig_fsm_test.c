// SPDX-License-Identifier: MIT
/* migrate: the migration state machine.  For each feature set a device may
 * offer, every (from, to) pair is walked with mig_fsm_next to its end and
 * the path compared with a table written by hand from the arcs listed in
 * <linux/vfio.h> and the vfio-user spec (shortest path, no saving state
 * inside a path unless both ends are saving states, STOP_COPY -> PRE_COPY
 * refused, optional states only when offered). */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "migrate/mig.h"

#define SC VFIO_MIGRATION_STOP_COPY
#define P2P VFIO_MIGRATION_P2P
#define PRE VFIO_MIGRATION_PRE_COPY

/* Short names used in the tables. */
static const char *const abbr[MIG_NSTATES] = { "ERR", "S", "R", "SC", "RS", "RP", "PC", "PP" };

/* "from to: path", path "-" for -EINVAL.  Pairs of a state with itself
 * are checked apart (a walk of no steps). */
static const char *const t_sc[] = {
	"R S: R S", "R SC: R S SC", "R RS: R S RS",
	"S R: S R", "S SC: S SC", "S RS: S RS",
	"SC S: SC S", "SC R: SC S R", "SC RS: SC S RS",
	"RS S: RS S", "RS R: RS S R", "RS SC: RS S SC",
	NULL,
};

static const char *const t_p2p[] = {
	"R RP: R RP", "R S: R RP S", "R SC: R RP S SC", "R RS: R RP S RS",
	"RP R: RP R", "RP S: RP S", "RP SC: RP S SC", "RP RS: RP S RS",
	"S R: S RP R", "S RP: S RP", "S SC: S SC", "S RS: S RS",
	"SC S: SC S", "SC RP: SC S RP", "SC R: SC S RP R", "SC RS: SC S RS",
	"RS S: RS S", "RS RP: RS S RP", "RS R: RS S RP R", "RS SC: RS S SC",
	NULL,
};

static const char *const t_pre[] = {
	"R S: R S", "R SC: R S SC", "R RS: R S RS", "R PC: R PC",
	"S R: S R", "S SC: S SC", "S RS: S RS", "S PC: S R PC",
	"SC S: SC S", "SC R: SC S R", "SC RS: SC S RS", "SC PC: -",
	"RS S: RS S", "RS R: RS S R", "RS SC: RS S SC", "RS PC: RS S R PC",
	"PC R: PC R", "PC S: PC R S", "PC SC: PC SC", "PC RS: PC R S RS",
	NULL,
};

static const char *const t_all[] = {
	"R RP: R RP", "R S: R RP S", "R SC: R RP S SC", "R RS: R RP S RS", "R PC: R PC",
	"R PP: R RP PP",
	"RP R: RP R", "RP S: RP S", "RP SC: RP S SC", "RP RS: RP S RS", "RP PC: RP R PC",
	"RP PP: RP PP",
	"S R: S RP R", "S RP: S RP", "S SC: S SC", "S RS: S RS", "S PC: S RP R PC",
	"S PP: S RP PP",
	"SC S: SC S", "SC RP: SC S RP", "SC R: SC S RP R", "SC RS: SC S RS", "SC PC: -",
	"SC PP: -",
	"RS S: RS S", "RS RP: RS S RP", "RS R: RS S RP R", "RS SC: RS S SC",
	"RS PC: RS S RP R PC", "RS PP: RS S RP PP",
	"PC R: PC R", "PC RP: PC R RP", "PC S: PC R RP S", "PC SC: PC PP SC",
	"PC RS: PC R RP S RS", "PC PP: PC PP",
	"PP RP: PP RP", "PP R: PP RP R", "PP S: PP RP S", "PP SC: PP SC",
	"PP RS: PP RP S RS", "PP PC: PP PC",
	NULL,
};

/* Which states each feature set offers (ERROR is never a target). */
static bool offers(uint32_t f, int s)
{
	switch (s) {
	case MIG_STOP: case MIG_RUNNING: case MIG_STOP_COPY: case MIG_RESUMING:
		return true;
	case MIG_RUNNING_P2P:
		return f & P2P;
	case MIG_PRE_COPY:
		return f & PRE;
	case MIG_PRE_COPY_P2P:
		return (f & P2P) && (f & PRE);
	default:
		return false;
	}
}

/* The table's path for (from, to), or NULL if the table lacks it. */
static const char *expected(const char *const *t, int from, int to)
{
	char key[16];

	snprintf(key, sizeof(key), "%s %s: ", abbr[from], abbr[to]);
	for (; *t; t++)
		if (!strncmp(*t, key, strlen(key)))
			return *t + strlen(key);
	return NULL;
}

/* Walk from -> to; the path in out ("-" when a step is refused). */
static void walk(uint32_t f, int from, int to, char *out, size_t len)
{
	enum mig_state cur = (enum mig_state)from, next;
	int steps = 0;

	snprintf(out, len, "%s", abbr[from]);
	while (cur != (enum mig_state)to) {
		int rc = mig_fsm_next(f, cur, (enum mig_state)to, &next);

		if (rc) {
			cr_assert_eq(rc, -EINVAL);
			snprintf(out, len, "-");
			return;
		}
		cr_assert_neq(next, cur, "a step of %s -> %s stays put", abbr[from], abbr[to]);
		cr_assert_lt(++steps, 8, "%s -> %s does not end", abbr[from], abbr[to]);
		snprintf(out + strlen(out), len - strlen(out), " %s", abbr[next]);
		cur = next;
	}
}

static void check_set(uint32_t f, const char *const *t)
{
	char got[128];

	for (int from = 0; from < MIG_NSTATES; from++) {
		for (int to = 0; to < MIG_NSTATES; to++) {
			bool ok = offers(f, from) && offers(f, to);
			const char *want = expected(t, from, to);

			if (!ok) {
				enum mig_state n;

				cr_expect_eq(mig_fsm_next(f, from, to, &n), -EINVAL,
					     "features %#x: %s -> %s should be refused", f,
					     abbr[from], abbr[to]);
				cr_expect_null(want, "table has %s -> %s", abbr[from], abbr[to]);
				continue;
			}
			walk(f, from, to, got, sizeof(got));
			if (from == to) {
				cr_expect_str_eq(got, abbr[from]);
				continue;
			}
			cr_assert_not_null(want, "table lacks %s -> %s", abbr[from], abbr[to]);
			cr_expect_str_eq(got, want, "features %#x: %s -> %s went %s, want %s", f,
					 abbr[from], abbr[to], got, want);
		}
	}
}

Test(mig_fsm, stop_copy_only) { check_set(SC, t_sc); }
Test(mig_fsm, stop_copy_p2p) { check_set(SC | P2P, t_p2p); }
Test(mig_fsm, stop_copy_pre_copy) { check_set(SC | PRE, t_pre); }
Test(mig_fsm, all_three) { check_set(SC | P2P | PRE, t_all); }

/* Without STOP_COPY nothing is offered; out-of-range states are refused. */
Test(mig_fsm, bad_inputs)
{
	enum mig_state n;

	cr_expect_eq(mig_fsm_next(0, MIG_RUNNING, MIG_STOP, &n), -EINVAL);
	cr_expect_eq(mig_fsm_next(PRE, MIG_RUNNING, MIG_PRE_COPY, &n), -EINVAL);
	cr_expect_eq(mig_fsm_next(SC, MIG_RUNNING, (enum mig_state)8, &n), -EINVAL);
	cr_expect_eq(mig_fsm_next(SC, (enum mig_state)-1, MIG_STOP, &n), -EINVAL);
	cr_expect_eq(mig_fsm_next(SC, MIG_ERROR, MIG_ERROR, &n), -EINVAL);
	cr_expect_eq(mig_fsm_next(SC, MIG_ERROR, MIG_RUNNING, &n), -EINVAL);
	cr_expect_eq(mig_fsm_next(SC, MIG_RUNNING, MIG_ERROR, &n), -EINVAL);
	cr_expect_str_eq(mig_state_name(MIG_PRE_COPY_P2P), "PRE_COPY_P2P");
	cr_expect_str_eq(mig_state_name((enum mig_state)9), "?");
}
