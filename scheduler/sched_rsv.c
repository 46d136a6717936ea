// SPDX-License-Identifier: MIT
/*
 * Budgets (DOC: budgets in scheduler/sched.h): the period arithmetic of a
 * budget holder, and the admission rule that says whether a set of budgets
 * fits an engine.  The run-queue side (the tier holders are picked from)
 * lives with the other queues in sched.c.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "scheduler/sched_int.h"

#define NS_PER_S 1000000000ull

void sched_rsv_refresh(struct sched_ctx *c)
{
	const struct sched_ctx_cfg *cfg = &c->cfg;
	bool on = sched_policy_fair(c->e->cfg.policy) && cfg->budget_us &&
		  cfg->fps_limit && cfg->klass == SCHED_CLASS_INTERACTIVE;
	uint64_t period = on ? NS_PER_S / cfg->fps_limit : 0;
	uint64_t budget = on ? (uint64_t)cfg->budget_us * 1000 : 0;

	if (period == c->rsv_period && budget == c->rsv_budget)
		return;
	c->rsv_period = period;
	c->rsv_budget = budget;
	c->rsv_left = 0;
	c->rsv_new = true;
}

/* A period that ended less than a period ago is followed by the next one,
 * so a holder that stays busy keeps periods aligned to its frames; after a
 * longer gap the new period starts now. */
bool sched_rsv_renew(struct sched_ctx *c, uint64_t t)
{
	uint64_t late = t - c->rsv_end;

	if (c->rsv_new || (int64_t)late >= 0) {
		c->rsv_end = !c->rsv_new && late < c->rsv_period ? c->rsv_end + c->rsv_period
								 : t + c->rsv_period;
		c->rsv_left = (int64_t)c->rsv_budget;
		c->rsv_new = false;
	}
	return c->rsv_left > 0;
}

uint64_t sched_rsv_quantum(uint64_t slice, unsigned int nrsv)
{
	uint64_t q = nrsv ? slice / nrsv : slice;

	return q < SCHED_RSV_QUANTUM_MIN_NS ? SCHED_RSV_QUANTUM_MIN_NS : q;
}

uint64_t sched_budget_wait_bound(uint64_t slice_ns, uint64_t nonpreempt_ns)
{
	return 2 * slice_ns + nonpreempt_ns;
}

uint64_t sched_budget_wait_p99(uint64_t slice_ns)
{
	return slice_ns + SCHED_RSV_QUANTUM_MIN_NS;
}

static uint32_t ppm(uint64_t a, uint64_t b)
{
	unsigned __int128 v = (unsigned __int128)a * SCHED_PPM / b;

	return v > UINT32_MAX ? UINT32_MAX : (uint32_t)v;
}

int sched_admit(const struct sched_budget *b, unsigned int n, uint64_t slice_ns,
		uint64_t nonpreempt_ns, struct sched_admit *out)
{
	uint64_t sum = 0;

	memset(out, 0, sizeof(*out));
	out->n = n;
	out->slice_ns = slice_ns;
	out->nonpreempt_ns = nonpreempt_ns;
	out->quantum_ns = n ? slice_ns / n : slice_ns;
	for (unsigned int i = 0; i < n; i++) {
		if (!b[i].budget_ns || !b[i].period_ns || b[i].budget_ns > b[i].period_ns) {
			out->verdict = SCHED_ADMIT_BAD;
			return -EINVAL;
		}
		sum += ppm(b[i].budget_ns, b[i].period_ns);
		if (!out->period_min_ns || b[i].period_ns < out->period_min_ns)
			out->period_min_ns = b[i].period_ns;
	}
	out->budget_ppm = sum > UINT32_MAX ? UINT32_MAX : (uint32_t)sum;
	out->block_ppm = n ? ppm(nonpreempt_ns, out->period_min_ns) : 0;
	if ((uint64_t)n * SCHED_RSV_QUANTUM_MIN_NS > slice_ns)
		out->verdict = SCHED_ADMIT_TOO_MANY;
	else if ((uint64_t)out->budget_ppm + out->block_ppm > SCHED_RSV_UTIL_MAX_PPM)
		out->verdict = SCHED_ADMIT_OVERLOAD;
	return out->verdict == SCHED_ADMIT_OK ? 0 : -ENOSPC;
}

int sched_admit_explain(const struct sched_admit *a, char *buf, size_t len)
{
	switch (a->verdict) {
	case SCHED_ADMIT_OK:
		return snprintf(buf, len, "%u budget(s) take %.1f%% of the engine, "
				"turns of %.2f ms", a->n, a->budget_ppm / 1e4,
				a->quantum_ns / 1e6);
	case SCHED_ADMIT_TOO_MANY:
		return snprintf(buf, len, "%u budgets need turns of at least %.2f ms each "
				"(%.2f ms), more than the %.2f ms slice", a->n,
				SCHED_RSV_QUANTUM_MIN_NS / 1e6,
				a->n * (SCHED_RSV_QUANTUM_MIN_NS / 1e6), a->slice_ns / 1e6);
	case SCHED_ADMIT_OVERLOAD:
		return snprintf(buf, len, "%u budget(s) take %.1f%% of the engine and the "
				"longest non-preemptible stretch seen (%.2f ms) %.1f%% of the "
				"shortest period (%.2f ms): %.1f%%, above %.0f%%", a->n,
				a->budget_ppm / 1e4, a->nonpreempt_ns / 1e6,
				a->block_ppm / 1e4, a->period_min_ns / 1e6,
				((uint64_t)a->budget_ppm + a->block_ppm) / 1e4,
				SCHED_RSV_UTIL_MAX_PPM / 1e4);
	default:
		return snprintf(buf, len, "a budget must be above 0 and at most its frame "
				"period (1/fps)");
	}
}
