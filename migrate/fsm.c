/* SPDX-License-Identifier: MIT */
/*
 * fsm.c: the VFIO migration state machine as a graph, and the one step
 * of a combined transition.
 *
 * DOC: arcs
 *
 * The arcs are <linux/vfio.h>'s, each with the features it needs.  When
 * P2P is not offered the RUNNING_P2P and PRE_COPY_P2P states vanish and
 * the arcs that went through them join their ends (RUNNING -> STOP,
 * STOP -> RUNNING, PRE_COPY -> STOP_COPY), which is the vfio-user spec's
 * list.  A step is the first arc of a shortest path found breadth-first;
 * a saving state may sit inside the path only when both ends are saving
 * states too (the session goes on), never otherwise (passing through one
 * would open a data session and drop it).
 */
#include <errno.h>
#include <stdbool.h>

#include "migrate/mig.h"

#define SC VFIO_MIGRATION_STOP_COPY
#define P2P VFIO_MIGRATION_P2P
#define PRE VFIO_MIGRATION_PRE_COPY

struct arc {
	enum mig_state from, to;
	uint32_t need;      /* features it needs */
	uint32_t absent;    /* features whose presence removes it */
};

static const struct arc arcs[] = {
	{ MIG_RUNNING, MIG_STOP, SC, P2P },
	{ MIG_STOP, MIG_RUNNING, SC, P2P },
	{ MIG_STOP, MIG_STOP_COPY, SC, 0 },
	{ MIG_STOP_COPY, MIG_STOP, SC, 0 },
	{ MIG_STOP, MIG_RESUMING, SC, 0 },
	{ MIG_RESUMING, MIG_STOP, SC, 0 },
	{ MIG_RUNNING, MIG_RUNNING_P2P, SC | P2P, 0 },
	{ MIG_RUNNING_P2P, MIG_RUNNING, SC | P2P, 0 },
	{ MIG_RUNNING_P2P, MIG_STOP, SC | P2P, 0 },
	{ MIG_STOP, MIG_RUNNING_P2P, SC | P2P, 0 },
	{ MIG_RUNNING, MIG_PRE_COPY, SC | PRE, 0 },
	{ MIG_PRE_COPY, MIG_RUNNING, SC | PRE, 0 },
	{ MIG_PRE_COPY, MIG_STOP_COPY, SC | PRE, P2P },
	{ MIG_RUNNING_P2P, MIG_PRE_COPY_P2P, SC | P2P | PRE, 0 },
	{ MIG_PRE_COPY_P2P, MIG_RUNNING_P2P, SC | P2P | PRE, 0 },
	{ MIG_PRE_COPY, MIG_PRE_COPY_P2P, SC | P2P | PRE, 0 },
	{ MIG_PRE_COPY_P2P, MIG_PRE_COPY, SC | P2P | PRE, 0 },
	{ MIG_PRE_COPY_P2P, MIG_STOP_COPY, SC | P2P | PRE, 0 },
};

/* What offering each state takes (ERROR is never a step's end). */
static const uint32_t state_needs[MIG_NSTATES] = {
	[MIG_STOP] = SC, [MIG_RUNNING] = SC, [MIG_STOP_COPY] = SC, [MIG_RESUMING] = SC,
	[MIG_RUNNING_P2P] = SC | P2P, [MIG_PRE_COPY] = SC | PRE,
	[MIG_PRE_COPY_P2P] = SC | P2P | PRE,
};

static const char *const names[MIG_NSTATES] = {
	"ERROR", "STOP", "RUNNING", "STOP_COPY", "RESUMING", "RUNNING_P2P", "PRE_COPY",
	"PRE_COPY_P2P",
};

const char *mig_state_name(enum mig_state s)
{
	return (unsigned int)s < MIG_NSTATES ? names[s] : "?";
}

static bool offered(uint32_t features, enum mig_state s)
{
	return (unsigned int)s < MIG_NSTATES && s != MIG_ERROR &&
	       (features & state_needs[s]) == state_needs[s];
}

static bool saving(enum mig_state s)
{
	return s == MIG_STOP_COPY || s == MIG_PRE_COPY || s == MIG_PRE_COPY_P2P;
}

static bool arc_on(uint32_t features, const struct arc *a)
{
	return (features & a->need) == a->need && !(features & a->absent);
}

int mig_fsm_next(uint32_t features, enum mig_state cur, enum mig_state target,
		 enum mig_state *next)
{
	enum mig_state queue[MIG_NSTATES], first[MIG_NSTATES];
	bool seen[MIG_NSTATES] = { false };
	bool in_session = saving(cur) && saving(target);
	unsigned int head = 0, tail = 0;

	if (!offered(features, cur) || !offered(features, target))
		return -EINVAL;
	if (cur == target) {
		*next = cur;
		return 0;
	}
	seen[cur] = true;
	queue[tail++] = cur;
	while (head < tail) {
		enum mig_state s = queue[head++];

		if (s != cur && saving(s) != in_session)
			continue;     /* may end a path, not lie inside one */
		for (unsigned int i = 0; i < sizeof(arcs) / sizeof(arcs[0]); i++) {
			enum mig_state t = arcs[i].to;

			if (arcs[i].from != s || !arc_on(features, &arcs[i]) || seen[t])
				continue;
			seen[t] = true;
			first[t] = s == cur ? t : first[s];
			if (t == target) {
				*next = first[t];
				return 0;
			}
			queue[tail++] = t;
		}
	}
	return -EINVAL;
}
