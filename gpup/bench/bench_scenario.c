// SPDX-License-Identifier: MIT
/*
 * Benchmark scenarios: JSON (docs/bench-scenario.schema.json, described in
 * docs/SCHEDULER.md) to struct bench_scenario.  Every mistake is reported
 * as one line naming the field, since people write these by hand; a key
 * this parser does not know is a mistake too (a misspelt target would
 * otherwise pass as "not set"), named with the nearest known key.
 */
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <json-c/json.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gpup/bench/bench.h"

struct perr {
	char *buf;
	size_t len;
};

static int fail(struct perr *pe, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static int fail(struct perr *pe, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(pe->buf, pe->len, fmt, ap);
	va_end(ap);
	return -EINVAL;
}

static json_object *get(json_object *o, const char *key)
{
	json_object *v;

	return json_object_object_get_ex(o, key, &v) ? v : NULL;
}

/* Levenshtein distance between a and b (keys are short: longer ones are
 * cut at 63 characters, which only affects the suggestion). */
static unsigned int edits(const char *a, const char *b)
{
	unsigned int row[64], la = (unsigned int)strnlen(a, 63), lb = (unsigned int)strnlen(b, 63);

	for (unsigned int j = 0; j <= lb; j++)
		row[j] = j;
	for (unsigned int i = 1; i <= la; i++) {
		unsigned int diag = row[0];

		row[0] = i;
		for (unsigned int j = 1; j <= lb; j++) {
			unsigned int up = row[j], best = diag + (a[i - 1] != b[j - 1]);

			best = up + 1 < best ? up + 1 : best;
			best = row[j - 1] + 1 < best ? row[j - 1] + 1 : best;
			diag = up;
			row[j] = best;
		}
	}
	return row[lb];
}

/* Every key of object o is one of keys (NULL-terminated). */
static int known_keys(json_object *o, const char *const *keys, struct perr *pe,
		      const char *where)
{
	json_object_object_foreach(o, k, v) {
		unsigned int best = UINT_MAX, d;
		size_t i, near = 0;

		(void)v;
		for (i = 0; keys[i] && strcmp(k, keys[i]); i++) {
			d = edits(k, keys[i]);
			if (d < best) {
				best = d;
				near = i;
			}
		}
		if (!keys[i])
			return fail(pe, "%s: unknown key \"%s\" (did you mean \"%s\"?)", where, k,
				    keys[near]);
	}
	return 0;
}

static const char *const root_keys[] = {
	"$schema", "name", "description", "duration_s", "seed", "policy", "slice_ms",
	"baselines", "gpus", "tenants", "targets", NULL,
};
static const char *const gpu_keys[] = {
	"name", "engines", "switch_us", "flops_per_s", "copy_bytes_per_s", NULL,
};
static const char *const tenant_keys[] = {
	"name", "count", "type", "group", "gpu", "engine", "weight", "reserve", "cap",
	"class", "fps_limit", "budget_us", "workload", NULL,
};
static const char *const workload_keys[] = {
	"kind", "kernel_us", "frame_us", "kernel_gflop", "copy_mib", "preempt_us",
	"preemptible", "on_ms", "off_ms", "think_us", "fps", NULL,
};
static const char *const dist_keys[] = { "dist", "value", "min", "max", "mean", NULL };

/* A JSON number, NaN and infinities (which json-c reads) excluded. */
static bool is_num(json_object *v)
{
	return v && (json_object_is_type(v, json_type_int) ||
		     (json_object_is_type(v, json_type_double) &&
		      isfinite(json_object_get_double(v))));
}

/* An optional non-negative number; def when absent. */
static int num(json_object *o, const char *key, double def, double *out,
	       struct perr *pe, const char *where)
{
	json_object *v = get(o, key);

	if (!v) {
		*out = def;
		return 0;
	}
	if (!is_num(v) || json_object_get_double(v) < 0)
		return fail(pe, "%s: \"%s\" must be a non-negative number", where, key);
	*out = json_object_get_double(v);
	return 0;
}

static int str(json_object *o, const char *key, const char *def, char *out,
	       size_t len, struct perr *pe, const char *where)
{
	json_object *v = get(o, key);
	const char *s = def;

	if (v) {
		if (!json_object_is_type(v, json_type_string))
			return fail(pe, "%s: \"%s\" must be a string", where, key);
		s = json_object_get_string(v);
	}
	if (strlen(s) >= len)
		return fail(pe, "%s: \"%s\" is longer than %zu characters", where,
			    key, len - 1);
	snprintf(out, len, "%s", s);
	return 0;
}

#define BENCH_JOB_MAX_NS 1e13   /* about 3 hours: longer is a typo */

static int dist_kind(json_object *v, double scale, struct bench_dist *d,
		     struct perr *pe, const char *where);

/* A number (fixed) or {"dist": "fixed|uniform|exp", ...}, times scale. */
static int dist(json_object *v, double scale, struct bench_dist *d,
		struct perr *pe, const char *where)
{
	if (dist_kind(v, scale, d, pe, where))
		return -EINVAL;
	if (d->a > BENCH_JOB_MAX_NS || d->b > BENCH_JOB_MAX_NS)
		return fail(pe, "%s: a duration above 3 hours", where);
	return 0;
}

static int dist_kind(json_object *v, double scale, struct bench_dist *d,
		     struct perr *pe, const char *where)
{
	char kind[16];
	double a, b;

	if (is_num(v)) {
		*d = (struct bench_dist){ BENCH_DIST_FIXED,
					  json_object_get_double(v) * scale, 0 };
		return d->a >= 0 ? 0 : fail(pe, "%s: negative duration", where);
	}
	if (!v || !json_object_is_type(v, json_type_object))
		return fail(pe, "%s: expected a number or a {\"dist\": ...} object", where);
	if (known_keys(v, dist_keys, pe, where) ||
	    str(v, "dist", "fixed", kind, sizeof(kind), pe, where))
		return -EINVAL;
	if (strcmp(kind, "fixed") == 0) {
		if (num(v, "value", 0, &a, pe, where))
			return -EINVAL;
		*d = (struct bench_dist){ BENCH_DIST_FIXED, a * scale, 0 };
	} else if (strcmp(kind, "uniform") == 0) {
		if (num(v, "min", 0, &a, pe, where) || num(v, "max", 0, &b, pe, where))
			return -EINVAL;
		if (b < a)
			return fail(pe, "%s: uniform max is below min", where);
		*d = (struct bench_dist){ BENCH_DIST_UNIFORM, a * scale, b * scale };
	} else if (strcmp(kind, "exp") == 0) {
		if (num(v, "mean", 0, &a, pe, where))
			return -EINVAL;
		*d = (struct bench_dist){ BENCH_DIST_EXP, a * scale, 0 };
	} else {
		return fail(pe, "%s: unknown dist \"%s\" (fixed, uniform, exp)", where, kind);
	}
	return 0;
}

static const char *const wl_names[] = {
	[BENCH_WL_SATURATING] = "saturating", [BENCH_WL_BURSTY] = "bursty",
	[BENCH_WL_CLOSED_LOOP] = "closed-loop", [BENCH_WL_FRAMES] = "frames",
};

/* The job length: in time, or in work through the GPU's cost model. */
static int job_len(json_object *w, const struct bench_gpu_spec *g,
		   struct bench_workload *wl, struct perr *pe, const char *where)
{
	static const char *const keys[] = { "kernel_us", "frame_us",
					    "kernel_gflop", "copy_mib" };
	double scale[4] = { 1e3, 1e3, 1e18 / (double)g->flops_per_s,
			    1048576.0 * 1e9 / (double)g->copy_bytes_per_s };

	for (unsigned int i = 0; i < 4; i++) {
		json_object *v = get(w, keys[i]);

		if (v)
			return dist(v, scale[i], &wl->job, pe, where);
	}
	return fail(pe, "%s: needs one of kernel_us, frame_us, kernel_gflop, copy_mib",
		    where);
}

static int workload(json_object *w, const struct bench_gpu_spec *g,
		    struct bench_workload *wl, struct perr *pe, const char *where)
{
	char kind[16];
	double p;
	unsigned int k;

	if (!w || !json_object_is_type(w, json_type_object))
		return fail(pe, "%s: \"workload\" object missing", where);
	if (known_keys(w, workload_keys, pe, where) ||
	    str(w, "kind", "saturating", kind, sizeof(kind), pe, where))
		return -EINVAL;
	for (k = 0; k < 4 && strcmp(kind, wl_names[k]); k++)
		;
	if (k == 4)
		return fail(pe, "%s: unknown workload kind \"%s\" (saturating, bursty, "
			    "closed-loop, frames)", where, kind);
	wl->kind = (enum bench_workload_kind)k;
	if (job_len(w, g, wl, pe, where) || num(w, "preempt_us", 100, &p, pe, where))
		return -EINVAL;
	if (p > 1e9)
		return fail(pe, "%s: \"preempt_us\" above 1000 s", where);
	wl->preempt_ns = (uint64_t)(p * 1e3);
	if (get(w, "preemptible") && !json_object_get_boolean(get(w, "preemptible")))
		wl->preempt_ns = 0;
	if (k == BENCH_WL_BURSTY &&
	    (dist(get(w, "on_ms"), 1e6, &wl->on, pe, where) ||
	     dist(get(w, "off_ms"), 1e6, &wl->off, pe, where)))
		return -EINVAL;
	if (k == BENCH_WL_CLOSED_LOOP && dist(get(w, "think_us"), 1e3, &wl->think, pe, where))
		return -EINVAL;
	if (k == BENCH_WL_FRAMES) {
		if (num(w, "fps", 0, &wl->fps, pe, where))
			return -EINVAL;
		if (wl->fps <= 0 || wl->fps > 1000)
			return fail(pe, "%s: frames need \"fps\" in (0, 1000]", where);
	}
	return 0;
}

static int parse_gpu(json_object *o, struct bench_gpu_spec *g, unsigned int i,
		     struct perr *pe)
{
	char where[32], def[16];
	double engines, sw, flops, bw;

	snprintf(where, sizeof(where), "gpus[%u]", i);
	snprintf(def, sizeof(def), "gpu%u", i);
	if (!json_object_is_type(o, json_type_object))
		return fail(pe, "%s: expected an object", where);
	if (known_keys(o, gpu_keys, pe, where) ||
	    str(o, "name", def, g->name, sizeof(g->name), pe, where) ||
	    num(o, "engines", 1, &engines, pe, where) ||
	    num(o, "switch_us", 0, &sw, pe, where) ||
	    num(o, "flops_per_s", (double)BENCH_DEFAULT_FLOPS_PER_S, &flops, pe, where) ||
	    num(o, "copy_bytes_per_s", (double)BENCH_DEFAULT_COPY_BYTES_PER_S, &bw, pe,
		where))
		return -EINVAL;
	if (engines < 1 || engines > 64 || flops < 1 || bw < 1 || flops > 1e18 || bw > 1e16 ||
	    sw > 1e6)
		return fail(pe, "%s: engines must be 1..64, rates positive (up to 1e18 flop/s "
			    "and 1e16 B/s), switch_us at most 1 s", where);
	g->engines = (unsigned int)engines;
	g->switch_ns = (uint64_t)(sw * 1e3);
	g->flops_per_s = (uint64_t)flops;
	g->copy_bytes_per_s = (uint64_t)bw;
	return 0;
}

static int find_gpu(const struct bench_scenario *sc, const char *name)
{
	for (unsigned int i = 0; i < sc->ngpus; i++)
		if (strcmp(sc->gpus[i].name, name) == 0)
			return (int)i;
	return -1;
}

static int ppm(json_object *o, const char *key, uint32_t *out, struct perr *pe,
	       const char *where)
{
	double f;

	if (num(o, key, 0, &f, pe, where))
		return -EINVAL;
	if (f > 1)
		return fail(pe, "%s: \"%s\" is a fraction of the engine, 0..1", where, key);
	*out = (uint32_t)(f * SCHED_PPM + 0.5);
	return 0;
}

/* The scheduler-facing fields of a tenant. */
static int tenant_sched(json_object *o, struct bench_tenant_spec *t,
			struct perr *pe, const char *where)
{
	char klass[16];
	double w, fps, budget;
	struct sched_ctx_cfg cfg;

	if (num(o, "weight", 1, &w, pe, where) || num(o, "fps_limit", 0, &fps, pe, where) ||
	    num(o, "budget_us", 0, &budget, pe, where) ||
	    ppm(o, "reserve", &t->reserve_ppm, pe, where) ||
	    ppm(o, "cap", &t->cap_ppm, pe, where) ||
	    str(o, "class", "normal", klass, sizeof(klass), pe, where))
		return -EINVAL;
	if (w < 1 || w > SCHED_WEIGHT_MAX || fps > 1000)
		return fail(pe, "%s: weight must be 1..%u, fps_limit 0..1000", where,
			    SCHED_WEIGHT_MAX);
	if (sched_class_parse(klass, &t->klass))
		return fail(pe, "%s: class \"%s\" is not normal or interactive", where, klass);
	t->weight = (uint32_t)w;
	t->fps_limit = (uint32_t)fps;
	cfg = (struct sched_ctx_cfg){ .klass = t->klass, .fps_limit = t->fps_limit,
				      .budget_us = budget <= SCHED_BUDGET_MAX_US ?
						   (uint32_t)budget : UINT32_MAX };
	if (sched_ctx_cfg_check(&cfg))
		return fail(pe, "%s: budget_us needs class \"interactive\" and fps_limit, "
			    "and is at most the frame period (1e6 / fps_limit)", where);
	t->budget_us = cfg.budget_us;
	return 0;
}

static int parse_tenant(json_object *o, struct bench_scenario *sc,
			struct bench_tenant_spec *t, unsigned int i, struct perr *pe)
{
	char where[64], gpu[32];
	double engine;
	int gi;

	snprintf(where, sizeof(where), "tenants[%u]", i);
	if (!json_object_is_type(o, json_type_object))
		return fail(pe, "%s: expected an object", where);
	if (known_keys(o, tenant_keys, pe, where) ||
	    str(o, "name", "tenant", t->name, sizeof(t->name) - 8, pe, where) ||
	    str(o, "type", "", t->type, sizeof(t->type), pe, where) ||
	    str(o, "group", "", t->group, sizeof(t->group), pe, where) ||
	    str(o, "gpu", sc->gpus[0].name, gpu, sizeof(gpu), pe, where) ||
	    num(o, "engine", 0, &engine, pe, where))
		return -EINVAL;
	gi = find_gpu(sc, gpu);
	if (gi < 0)
		return fail(pe, "%s: no GPU named \"%s\" in \"gpus\"", where, gpu);
	t->gpu = (unsigned int)gi;
	t->engine = (unsigned int)engine;
	if (t->engine >= sc->gpus[gi].engines)
		return fail(pe, "%s: %s has %u engine(s)", where, gpu, sc->gpus[gi].engines);
	if (tenant_sched(o, t, pe, where))
		return -EINVAL;
	return workload(get(o, "workload"), &sc->gpus[gi], &t->wl, pe, where);
}

/* Tenants with "count": N become N tenants named NAME-0 .. NAME-(N-1). */
static int parse_tenants(json_object *arr, struct bench_scenario *sc, struct perr *pe)
{
	size_t n = json_object_array_length(arr), total = 0;
	double cnt;

	for (size_t i = 0; i < n; i++) {
		if (num(json_object_array_get_idx(arr, i), "count", 1, &cnt, pe, "tenants"))
			return -EINVAL;
		if (cnt < 1 || cnt > BENCH_MAX_TENANTS)
			return fail(pe, "tenants[%zu]: count must be 1..%u", i,
				    BENCH_MAX_TENANTS);
		total += (size_t)cnt;
	}
	if (total == 0 || total > BENCH_MAX_TENANTS)
		return fail(pe, "tenants: need 1..%u tenants in all", BENCH_MAX_TENANTS);
	sc->tenants = calloc(total, sizeof(*sc->tenants));
	if (!sc->tenants)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++) {
		json_object *o = json_object_array_get_idx(arr, i);
		struct bench_tenant_spec t = { 0 };

		if (parse_tenant(o, sc, &t, (unsigned int)i, pe))
			return -EINVAL;
		num(o, "count", 1, &cnt, pe, "tenants");
		for (unsigned int k = 0; k < (unsigned int)cnt; k++) {
			struct bench_tenant_spec *d = &sc->tenants[sc->ntenants++];

			*d = t;
			if (cnt > 1)
				snprintf(d->name, sizeof(d->name), "%.39s-%u", t.name,
					 k % 10000);
		}
	}
	return 0;
}

/* The longest stretch a workload's jobs cannot be cut: a work-group, or a
 * whole non-preemptible job (an exponential one counted at ten times its
 * mean, which one job in 22000 exceeds). */
static uint64_t nonpreempt_ns(const struct bench_workload *wl)
{
	if (wl->preempt_ns)
		return wl->preempt_ns;
	if (wl->job.kind == BENCH_DIST_UNIFORM)
		return (uint64_t)wl->job.b;
	return (uint64_t)(wl->job.kind == BENCH_DIST_EXP ? 10 * wl->job.a : wl->job.a);
}

/* The budgets on engine k of GPU g must pass the daemon's admission, with
 * the engine's slice and its tenants' longest non-preemptible stretch. */
static int admit_engine(const struct bench_scenario *sc, unsigned int g, unsigned int k,
			struct sched_budget *b, struct perr *pe)
{
	unsigned int n = 0, ntenants = 0;
	uint64_t np = 0;
	struct sched_admit a;
	char why[256];

	for (unsigned int i = 0; i < sc->ntenants; i++) {
		const struct bench_tenant_spec *t = &sc->tenants[i];

		if (t->gpu != g || t->engine != k)
			continue;
		ntenants++;
		if (nonpreempt_ns(&t->wl) > np)
			np = nonpreempt_ns(&t->wl);
		if (t->budget_us)
			b[n++] = (struct sched_budget){ (uint64_t)t->budget_us * 1000,
							1000000000ull / t->fps_limit };
	}
	if (!n || sched_admit(b, n, sc->slice_ns ? sc->slice_ns :
				    sched_default_slice(ntenants), np, &a) == 0)
		return 0;
	sched_admit_explain(&a, why, sizeof(why));
	return fail(pe, "%s engine %u cannot honour its budgets: %s", sc->gpus[g].name, k,
		    why);
}

static int admit_budgets(const struct bench_scenario *sc, struct perr *pe)
{
	struct sched_budget *b = calloc(sc->ntenants, sizeof(*b));
	int rc = b ? 0 : -ENOMEM;

	for (unsigned int g = 0; !rc && g < sc->ngpus; g++)
		for (unsigned int k = 0; !rc && k < sc->gpus[g].engines; k++)
			rc = admit_engine(sc, g, k, b, pe);
	free(b);
	return rc;
}

static int parse_gpus(json_object *arr, struct bench_scenario *sc, struct perr *pe)
{
	size_t n = arr ? json_object_array_length(arr) : 0;

	if (arr && !json_object_is_type(arr, json_type_array))
		return fail(pe, "\"gpus\" must be an array");
	sc->gpus = calloc(n ? n : 1, sizeof(*sc->gpus));
	if (!sc->gpus)
		return -ENOMEM;
	if (n == 0) {
		json_object *empty = json_object_new_object();
		int rc = parse_gpu(empty, &sc->gpus[0], 0, pe);

		json_object_put(empty);
		sc->ngpus = 1;
		return rc;
	}
	for (size_t i = 0; i < n; i++) {
		if (parse_gpu(json_object_array_get_idx(arr, i), &sc->gpus[i],
			      (unsigned int)i, pe))
			return -EINVAL;
		sc->ngpus++;
	}
	return 0;
}

static int parse_policy(json_object *o, const char *key, enum sched_policy *p,
			struct perr *pe)
{
	char name[32];

	if (str(o, key, "weighted", name, sizeof(name), pe, "scenario"))
		return -EINVAL;
	if (sched_policy_parse(name, p))
		return fail(pe, "unknown policy \"%s\" (fifo, best-effort, equal-share, "
			    "fixed-share, weighted)", name);
	return 0;
}

static int parse_baselines(json_object *root, struct bench_scenario *sc,
			   struct perr *pe)
{
	json_object *arr = get(root, "baselines");
	size_t n;

	if (!arr) {
		sc->baselines[0] = SCHED_POLICY_BEST_EFFORT;
		sc->baselines[1] = SCHED_POLICY_FIFO;
		sc->nbaselines = 2;
		return 0;
	}
	n = json_object_is_type(arr, json_type_array) ? json_object_array_length(arr) : 99;
	if (n > BENCH_MAX_BASELINES)
		return fail(pe, "\"baselines\" must be an array of at most %d policies",
			    BENCH_MAX_BASELINES);
	for (size_t i = 0; i < n; i++) {
		const char *s = json_object_get_string(json_object_array_get_idx(arr, i));

		if (sched_policy_parse(s, &sc->baselines[i]))
			return fail(pe, "baselines[%zu]: unknown policy \"%s\"", i,
				    s ? s : "");
	}
	sc->nbaselines = (unsigned int)n;
	return 0;
}

static int parse_targets(json_object *o, struct bench_targets *t, struct perr *pe)
{
	static const struct { const char *key; size_t off; } keys[] = {
		{ "share_error_max", offsetof(struct bench_targets, share_error_max) },
		{ "window_share_error_max",
		  offsetof(struct bench_targets, window_share_error_max) },
		{ "jain_mean_min", offsetof(struct bench_targets, jain_mean_min) },
		{ "jain_min_min", offsetof(struct bench_targets, jain_min_min) },
		{ "lag_max_ms", offsetof(struct bench_targets, lag_max_ms) },
		{ "group_spread_max", offsetof(struct bench_targets, group_spread_max) },
		{ "overhead_max", offsetof(struct bench_targets, overhead_max) },
		{ "wait_p99_max_us", offsetof(struct bench_targets, wait_p99_max_us) },
		{ "group_wait_p99_max_us",
		  offsetof(struct bench_targets, group_wait_p99_max_us) },
		{ "frames_missed_max", offsetof(struct bench_targets, frames_missed_max) },
		{ "budget_wait_p99_ratio_max",
		  offsetof(struct bench_targets, budget_wait_p99_ratio_max) },
		{ "budget_wait_max_ratio_max",
		  offsetof(struct bench_targets, budget_wait_max_ratio_max) },
	};
	const char *names[sizeof(keys) / sizeof(keys[0]) + 1] = { NULL };

	if (!json_object_is_type(o, json_type_object))
		return fail(pe, "\"targets\" must be an object");
	for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++)
		names[i] = keys[i].key;
	if (known_keys(o, names, pe, "targets"))
		return -EINVAL;

	for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
		double *d = (double *)((char *)t + keys[i].off);

		if (num(o, keys[i].key, -1, d, pe, "targets"))
			return -EINVAL;
	}
	return 0;
}

static int parse_root(json_object *root, struct bench_scenario *sc, struct perr *pe)
{
	double dur, seed, slice;
	json_object *ten = get(root, "tenants");
	json_object *tg = get(root, "targets");
	json_object *empty = NULL;
	int rc;

	if (!json_object_is_type(root, json_type_object))
		return fail(pe, "a scenario is a JSON object");
	if (known_keys(root, root_keys, pe, "scenario"))
		return -EINVAL;
	if (str(root, "name", "scenario", sc->name, sizeof(sc->name), pe, "scenario") ||
	    str(root, "description", "", sc->description, sizeof(sc->description), pe,
		"scenario") ||
	    num(root, "duration_s", 10, &dur, pe, "scenario") ||
	    num(root, "seed", 1, &seed, pe, "scenario") ||
	    num(root, "slice_ms", 0, &slice, pe, "scenario") ||
	    parse_policy(root, "policy", &sc->policy, pe) ||
	    parse_baselines(root, sc, pe))
		return -EINVAL;
	if (dur <= 0 || dur > 86400)
		return fail(pe, "\"duration_s\" must be in (0, 86400]");
	if (seed > 9007199254740992.0)
		return fail(pe, "\"seed\" must be an integer below 2^53");
	sc->duration_ns = (uint64_t)(dur * 1e9);
	sc->seed = (uint64_t)seed;
	sc->slice_ns = (uint64_t)(slice * 1e6 + 0.5);
	if (sc->slice_ns && (sc->slice_ns < SCHED_SLICE_MIN_NS ||
			     sc->slice_ns > SCHED_SLICE_MAX_NS))
		return fail(pe, "\"slice_ms\" must be 0.1..30 (or 0 for the default)");
	if (parse_gpus(get(root, "gpus"), sc, pe))
		return -EINVAL;
	if (!ten || !json_object_is_type(ten, json_type_array))
		return fail(pe, "\"tenants\" array missing");
	if (parse_tenants(ten, sc, pe) || admit_budgets(sc, pe))
		return -EINVAL;
	if (!tg)
		tg = empty = json_object_new_object();
	rc = parse_targets(tg, &sc->targets, pe);
	json_object_put(empty);
	return rc;
}

int bench_scenario_parse(const char *json, struct bench_scenario *sc,
			 char *err, size_t errlen)
{
	struct perr pe = { err, errlen };
	enum json_tokener_error jerr;
	json_object *root = json_tokener_parse_verbose(json, &jerr);
	int rc;

	memset(sc, 0, sizeof(*sc));
	if (!root)
		return fail(&pe, "not valid JSON: %s", json_tokener_error_desc(jerr));
	rc = parse_root(root, sc, &pe);
	json_object_put(root);
	if (rc)
		bench_scenario_free(sc);
	return rc;
}

int bench_scenario_load(const char *path, struct bench_scenario *sc,
			char *err, size_t errlen)
{
	FILE *f = fopen(path, "r");
	char *buf;
	long n;
	int rc;

	if (!f) {
		rc = -errno;
		snprintf(err, errlen, "cannot open %s: %s", path, strerror(errno));
		return rc;
	}
	fseek(f, 0, SEEK_END);
	n = ftell(f);
	rewind(f);
	buf = n >= 0 && n < (64 << 20) ? malloc((size_t)n + 1) : NULL;
	if (!buf || fread(buf, 1, (size_t)n, f) != (size_t)n) {
		fclose(f);
		free(buf);
		snprintf(err, errlen, "cannot read %s (is it a file under 64 MiB?)", path);
		return -EIO;
	}
	fclose(f);
	buf[n] = '\0';
	rc = bench_scenario_parse(buf, sc, err, errlen);
	free(buf);
	if (!rc && !(sc->path = strdup(path))) {
		bench_scenario_free(sc);
		snprintf(err, errlen, "out of memory");
		rc = -ENOMEM;
	}
	return rc;
}

void bench_scenario_free(struct bench_scenario *sc)
{
	free(sc->gpus);
	free(sc->tenants);
	free(sc->path);
	free(sc->command);
	sc->gpus = NULL;
	sc->tenants = NULL;
	sc->path = sc->command = NULL;
	sc->ngpus = sc->ntenants = 0;
}
