// SPDX-License-Identifier: MIT
/*
 * When an outgoing migration stops pre-copying: the rule alone, pure, with
 * what the rounds measured passed in, so that a table can test it
 * (tests/hv_vmconverge_wb_test.c).
 *
 * DOC: the rule
 *
 * Stopping as soon as the rest fits the downtime budget makes the rest as
 * large as the budget allows: the downtime is then close to the budget,
 * whatever the link could do.  Each further round sends only what the
 * guest wrote during the last one, so while the guest writes slower than
 * the link carries, the rest shrinks round after round, and so does the
 * stop.  So once the rest fits, the rounds go on while it still shrinks
 * (by a quarter at least), and the VM stops when it is small enough not
 * to matter (it would send in HV_CONV_ENOUGH_NS), when it stopped
 * shrinking and is near the smallest seen (a guest that writes in bursts
 * may have caught a round in one: then one more round), or after
 * c->more rounds since it first fit, which bounds what the extra rounds
 * add: each sends less than the budget's worth.  A rest that does not fit
 * goes on to max_rounds, and then gives up.
 */
#include "hv/hv_int.h"

/* A rest that sends this fast costs less than the stop's fixed part. */
#define HV_CONV_ENOUGH_NS 500000ull

static bool hv_conv_settled(const struct hv_conv *c, uint64_t send_ns)
{
	if (send_ns <= HV_CONV_ENOUGH_NS || c->fit > c->more)
		return true;
	/* Still shrinking by a quarter (or the first round): another round
	 * is worth it. */
	if (!c->last_ns || send_ns < c->last_ns - c->last_ns / 4)
		return false;
	return send_ns <= 2 * c->best_ns;
}

enum hv_conv_verdict hv_conv_next(struct hv_conv *c, unsigned int rounds, uint64_t send_ns)
{
	bool fits = send_ns <= c->budget_ns && c->budget_ns - send_ns >= c->fixed_ns;
	enum hv_conv_verdict v;

	if (fits || c->fit)
		c->fit++;
	if (fits && c->fit == 1)
		c->best_ns = send_ns;
	if (!fits)
		v = rounds >= c->max_rounds ? HV_CONV_GIVE_UP : HV_CONV_AGAIN;
	else
		v = rounds >= c->max_rounds || hv_conv_settled(c, send_ns) ? HV_CONV_STOP
									    : HV_CONV_AGAIN;
	if (fits && send_ns < c->best_ns)
		c->best_ns = send_ns;
	c->last_ns = send_ns;
	return v;
}
