// SPDX-License-Identifier: MIT
/*
 * The control-API methods of the scheduler, on the daemon's side: "sched"
 * puts every engine of a GPU under a policy and slice (at run time, with
 * partitions running) or sets one partition's weight, reserve, cap, class,
 * frame-rate limit and budget; "stats" reports each engine's scheduler and
 * its contexts' accounting.  Budgets are admitted per engine
 * (sched_admit): a change that would leave an engine with budgets it
 * cannot honour together is refused, with the numbers.  The daemon's
 * method table calls these with its pool or the partition's vgpu; field
 * names are in uapi/gpup_ctl.h.
 * Settings are saved in the state directory before they are applied, so
 * that what a restarted daemon finds is what was last in force, except
 * a GPU's transient ones (`gpup bench`'s runs), which are not saved.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "gpup/ctl/ctl.h"
#include "gpup/daemon/daemon_int.h"
#include "gpup/gpu/gpu.h"
#include "gpup/vgpu/vgpu.h"
#include "uapi/gpup_ctl.h"

static struct gpup_engine *nth_engine(struct gpup_gpu *gpu, const struct gpup_pool_gpu *pg,
				      unsigned int i, enum gpup_engine_kind *kind,
				      unsigned int *idx)
{
	*kind = i < pg->ncompute ? GPUP_ENGINE_KIND_COMPUTE : GPUP_ENGINE_KIND_COPY;
	*idx = i < pg->ncompute ? i : i - pg->ncompute;
	return gpup_gpu_engine(gpu, *kind, *idx);
}

static int find_gpu(struct gpup_pool *pool, json_object *req, const char **name)
{
	int g;

	*name = gpup_ctl_str(req, GPUP_CTL_F_GPU, NULL);
	if (!*name)
		return -EINVAL;
	g = gpup_pool_find_gpu(pool, *name);
	return g < 0 || !pool->gpus[g].priv ? -ENODEV : g;
}

/* Policy, slice and (wd >= 0) watchdog on every engine of GPU g: NULL, or
 * the failure reply. */
static json_object *apply_gpu(struct gpup_pool *pool, int g, enum sched_policy p,
			      uint64_t slice, int64_t wd)
{
	unsigned int n = pool->gpus[g].ncompute + pool->gpus[g].ncopy;

	for (unsigned int i = 0; i < n; i++) {
		enum gpup_engine_kind kind;
		unsigned int idx;
		struct gpup_engine *e = nth_engine(pool->gpus[g].priv, &pool->gpus[g], i,
						   &kind, &idx);
		int rc = e ? gpup_tsched_set_policy(e, p, slice) : -ENODEV;

		if (!rc && wd >= 0)
			rc = gpup_tsched_set_watchdog(e, (uint64_t)wd);
		if (rc)
			return gpup_ctl_fail(-rc, "%s %s engine %u: %s", pool->gpus[g].name,
					     kind == GPUP_ENGINE_KIND_COPY ? "copy" : "compute",
					     idx, strerror(-rc));
	}
	return NULL;
}

/* The budgets of GPU g's partitions, part's replaced by cfg (when part is
 * not NULL); returns how many were stored in b (room for every partition). */
static unsigned int gpu_budgets(const struct gpup_pool *pool, int g,
				const struct gpup_partition *part,
				const struct sched_ctx_cfg *cfg, struct sched_budget *b)
{
	unsigned int n = 0;

	for (const struct gpup_partition *p = pool->parts; p; p = p->next) {
		const struct sched_ctx_cfg *c = p == part ? cfg : p->sched_set ? &p->sched : NULL;

		if (p->gpu != (unsigned int)g || !c || !c->budget_us || !c->fps_limit)
			continue;
		b[n++] = (struct sched_budget){ (uint64_t)c->budget_us * 1000,
						1000000000ull / c->fps_limit };
	}
	return n;
}

/* Whether every engine of GPU g can honour its budgets together, with
 * part's settings replaced by cfg, or (slice >= 0) under that slice (0:
 * the default) instead of the one in force.  A new slice is held to rule
 * (1) alone, the one that depends on it: the budgets were admitted
 * against the engine's blocking when they were set.  NULL, or the
 * refusal. */
static json_object *admit_gpu(struct gpup_pool *pool, int g, const struct gpup_partition *part,
			      const struct sched_ctx_cfg *cfg, int64_t slice)
{
	unsigned int nparts = 0, n, ne = pool->gpus[g].ncompute + pool->gpus[g].ncopy;
	struct sched_budget *b;
	json_object *r = NULL;

	for (const struct gpup_partition *p = pool->parts; p; p = p->next)
		nparts++;
	b = calloc(nparts + 1, sizeof(*b));
	if (!b)
		return gpup_ctl_fail(ENOMEM, "out of memory");
	n = gpu_budgets(pool, g, part, cfg, b);
	for (unsigned int i = 0; n && !r && i < ne; i++) {
		enum gpup_engine_kind kind;
		unsigned int idx;
		struct gpup_engine *e = nth_engine(pool->gpus[g].priv, &pool->gpus[g], i,
						   &kind, &idx);
		struct sched_engine_stats st;
		struct sched_admit a;
		char why[256];
		uint64_t s;

		if (!e || gpup_tsched_engine_stats(e, &st))
			continue;
		s = slice < 0 ? st.slice_ns : slice ? (uint64_t)slice : sched_default_slice(st.nctx);
		if (sched_admit(b, n, s, st.nonpreempt_max_ns, &a) == 0 ||
		    (slice >= 0 && a.verdict != SCHED_ADMIT_TOO_MANY))
			continue;
		sched_admit_explain(&a, why, sizeof(why));
		r = gpup_ctl_fail(ENOSPC, "%s %s engine %u cannot honour these budgets together: "
				  "%s", pool->gpus[g].name,
				  kind == GPUP_ENGINE_KIND_COPY ? "copy" : "compute", idx, why);
	}
	free(b);
	return r;
}

/* Save, then apply; a failed apply puts the old file back.  wd < 0 keeps
 * the watchdog.  Transient settings are only recorded in the pool (what
 * `gpus` reports as in force), the file is left alone.  NULL, or the
 * failure reply. */
static json_object *save_apply_gpu(struct gpup_pool *pool, int g, enum sched_policy p,
				   uint64_t slice, int64_t wd, bool transient)
{
	struct gpup_gpu_sched old = pool->gpus[g].sched;
	struct gpup_gpu_sched s = { p, slice, wd >= 0 ? (uint64_t)wd : old.watchdog_ns };
	int rc = 0;
	json_object *r;

	if (transient)
		pool->gpus[g].sched = s;
	else
		rc = gpup_pool_gpu_sched_save(pool, (unsigned int)g, &s);
	if (rc)
		return gpup_ctl_fail(-rc, "cannot save %s's scheduler settings in %s: %s",
				     pool->gpus[g].name, pool->state_dir, strerror(-rc));
	r = apply_gpu(pool, g, p, slice, wd);
	if (r && transient)
		pool->gpus[g].sched = old;
	else if (r)
		(void)gpup_pool_gpu_sched_save(pool, (unsigned int)g, &old);
	return r;
}

json_object *gpup_tsched_ctl_sched(struct gpup_pool *pool, json_object *req)
{
	const char *pname = gpup_ctl_str(req, GPUP_CTL_F_POLICY, NULL), *gname;
	int64_t slice = gpup_ctl_int(req, GPUP_CTL_F_SLICE_NS, 0);
	int64_t wd = gpup_ctl_int(req, GPUP_CTL_F_WATCHDOG_NS, -1);
	bool transient = json_object_get_boolean(json_object_object_get(req,
							GPUP_CTL_F_TRANSIENT));
	enum sched_policy p;
	json_object *r;
	int g = find_gpu(pool, req, &gname);

	if (g == -EINVAL)
		return gpup_ctl_fail(EINVAL, "sched needs a \"gpu\"");
	if (g < 0)
		return gpup_ctl_fail(ENODEV, "no GPU '%s'; see 'gpup gpus'", gname);
	if (sched_policy_parse(pname, &p))
		return gpup_ctl_fail(EINVAL, "unknown policy '%s' (fifo, best-effort, "
				     "equal-share, fixed-share, weighted)", pname ? pname : "");
	if (slice < 0 || (slice && ((uint64_t)slice < SCHED_SLICE_MIN_NS ||
				    (uint64_t)slice > SCHED_SLICE_MAX_NS)))
		return gpup_ctl_fail(EINVAL, "slice must be 0.1 to 30 ms (or 0 for the default)");
	if (wd > 3600ll * 1000000000ll)
		return gpup_ctl_fail(EINVAL, "watchdog must be at most an hour (0: off)");
	/* fifo and best-effort ignore budgets: nothing to honour there */
	if (p != SCHED_POLICY_FIFO && p != SCHED_POLICY_BEST_EFFORT &&
	    (r = admit_gpu(pool, g, NULL, NULL, slice)))
		return r;
	if ((r = save_apply_gpu(pool, g, p, (uint64_t)slice, wd, transient)))
		return r;
	r = gpup_ctl_ok();
	json_object_object_add(r, GPUP_CTL_F_GPU, json_object_new_string(gname));
	json_object_object_add(r, GPUP_CTL_F_POLICY,
			       json_object_new_string(sched_policy_name(p)));
	json_object_object_add(r, GPUP_CTL_F_SLICE_NS, json_object_new_int64(slice));
	json_object_object_add(r, GPUP_CTL_F_ENGINES, json_object_new_int(
		(int)(pool->gpus[g].ncompute + pool->gpus[g].ncopy)));
	return r;
}

static json_object *ctx_json(struct sched_ctx *c, unsigned int i)
{
	json_object *o = json_object_new_object();
	struct sched_ctx_stats st;
	const char *owner;
	unsigned int queue;

	sched_ctx_stats(c, &st);
	json_object_object_add(o, GPUP_CTL_F_INDEX, json_object_new_int((int)i));
	if (vgpu_ectx_owner(sched_ctx_priv(c), &owner, &queue) == 0) {
		json_object_object_add(o, GPUP_CTL_F_UUID, json_object_new_string(owner));
		json_object_object_add(o, GPUP_CTL_F_QUEUE, json_object_new_int((int)queue));
	}
	json_object_object_add(o, GPUP_CTL_F_WEIGHT, json_object_new_int64(st.cfg.weight));
	json_object_object_add(o, GPUP_CTL_F_CLASS,
			       json_object_new_string(sched_class_name(st.cfg.klass)));
	json_object_object_add(o, GPUP_CTL_F_FPS_LIMIT, json_object_new_int64(st.cfg.fps_limit));
	json_object_object_add(o, GPUP_CTL_F_BUDGET_US, json_object_new_int64(st.cfg.budget_us));
	json_object_object_add(o, "engine_ns", json_object_new_int64((int64_t)st.engine_ns));
	json_object_object_add(o, "slices", json_object_new_int64((int64_t)st.slices));
	json_object_object_add(o, "preemptions",
			       json_object_new_int64((int64_t)st.preemptions));
	json_object_object_add(o, "overrun_ns", json_object_new_int64((int64_t)st.overrun_ns));
	json_object_object_add(o, "wait_p50_ns", json_object_new_int64((int64_t)st.wait_p50_ns));
	json_object_object_add(o, "wait_p99_ns", json_object_new_int64((int64_t)st.wait_p99_ns));
	json_object_object_add(o, "wait_max_ns", json_object_new_int64((int64_t)st.wait_max_ns));
	json_object_object_add(o, "wait_sum_ns", json_object_new_int64((int64_t)st.wait_sum_ns));
	json_object_object_add(o, "waits", json_object_new_int64((int64_t)st.waits));
	json_object_object_add(o, "debt_ns", json_object_new_int64(st.debt_ns));
	json_object_object_add(o, "budget_waits", json_object_new_int64((int64_t)st.budget_waits));
	json_object_object_add(o, "budget_wait_p99_ns",
			       json_object_new_int64((int64_t)st.budget_wait_p99_ns));
	json_object_object_add(o, "budget_wait_max_ns",
			       json_object_new_int64((int64_t)st.budget_wait_max_ns));
	json_object_object_add(o, "budget_exhausted",
			       json_object_new_int64((int64_t)st.budget_exhausted));
	json_object_object_add(o, "watchdog_fired",
			       json_object_new_int64((int64_t)st.watchdog_fired));
	return o;
}

/* Under the engine lock: the scheduler's view of the engine. */
static int engine_fill(void *s, void *arg)
{
	json_object *o = arg, *a = json_object_new_array();
	struct sched_engine_stats st;
	struct sched_ctx *c;

	sched_engine_stats(s, &st);
	json_object_object_add(o, GPUP_CTL_F_POLICY,
			       json_object_new_string(sched_policy_name(st.policy)));
	json_object_object_add(o, GPUP_CTL_F_SLICE_NS, json_object_new_int64((int64_t)st.slice_ns));
	json_object_object_add(o, GPUP_CTL_F_WATCHDOG_NS,
			       json_object_new_int64((int64_t)st.watchdog_ns));
	json_object_object_add(o, "picks", json_object_new_int64((int64_t)st.picks));
	json_object_object_add(o, "idle_picks", json_object_new_int64((int64_t)st.idle_picks));
	json_object_object_add(o, "switches", json_object_new_int64((int64_t)st.switches));
	json_object_object_add(o, "budgets", json_object_new_int((int)st.budgets));
	json_object_object_add(o, "budget_quantum_ns",
			       json_object_new_int64((int64_t)st.budget_quantum_ns));
	json_object_object_add(o, "nonpreempt_max_ns",
			       json_object_new_int64((int64_t)st.nonpreempt_max_ns));
	for (unsigned int i = 0; (c = sched_ctx_at(s, i)); i++)
		json_object_array_add(a, ctx_json(c, i));
	json_object_object_add(o, GPUP_CTL_F_CONTEXTS, a);
	return 0;
}

static json_object *engine_json(struct gpup_engine *e, enum gpup_engine_kind kind,
				unsigned int idx)
{
	json_object *o = json_object_new_object();
	bool ours;

	json_object_object_add(o, GPUP_CTL_F_KIND, json_object_new_string(
		kind == GPUP_ENGINE_KIND_COPY ? "copy" : "compute"));
	json_object_object_add(o, GPUP_CTL_F_INDEX, json_object_new_int((int)idx));
	json_object_object_add(o, GPUP_CTL_F_BUSY_NS,
			       json_object_new_int64((int64_t)gpup_engine_busy_ns(e)));
	ours = gpup_engine_sched_call(e, &gpup_sched_tslice, engine_fill, o) == 0;
	json_object_object_add(o, GPUP_CTL_F_SCHEDULER,
			       json_object_new_string(ours ? "tslice" : "other"));
	return o;
}

static json_object *gpu_json(struct gpup_pool *pool, unsigned int g)
{
	const struct gpup_pool_gpu *pg = &pool->gpus[g];
	json_object *o = json_object_new_object(), *a = json_object_new_array();

	json_object_object_add(o, GPUP_CTL_F_NAME, json_object_new_string(pg->name));
	for (unsigned int i = 0; pg->priv && i < pg->ncompute + pg->ncopy; i++) {
		enum gpup_engine_kind kind;
		unsigned int idx;
		struct gpup_engine *e = nth_engine(pg->priv, pg, i, &kind, &idx);

		if (e)
			json_object_array_add(a, engine_json(e, kind, idx));
	}
	json_object_object_add(o, GPUP_CTL_F_ENGINES, a);
	return o;
}

json_object *gpup_tsched_ctl_stats(struct gpup_pool *pool, json_object *req)
{
	const char *gname;
	int g = find_gpu(pool, req, &gname);
	json_object *r, *a;

	if (g == -ENODEV)
		return gpup_ctl_fail(ENODEV, "no GPU '%s'; see 'gpup gpus'", gname);
	r = gpup_ctl_ok();
	a = json_object_new_array();
	for (unsigned int i = 0; i < pool->ngpus; i++)
		if (g < 0 || (unsigned int)g == i)
			json_object_array_add(a, gpu_json(pool, i));
	json_object_object_add(r, GPUP_CTL_F_GPUS, a);
	return r;
}

/* An optional fraction of the engine (0..1) as ppm. */
static int frac(json_object *req, const char *key, uint32_t *out)
{
	json_object *v;
	double f;

	if (!json_object_object_get_ex(req, key, &v))
		return 0;
	f = json_object_get_double(v);
	if (!json_object_is_type(v, json_type_double) && !json_object_is_type(v, json_type_int))
		return -EINVAL;
	if (!(f >= 0 && f <= 1)) /* NaN fails both */
		return -EINVAL;
	*out = (uint32_t)(f * SCHED_PPM + 0.5);
	return 0;
}

static int ctx_cfg(json_object *req, struct sched_ctx_cfg *cfg, const char **what)
{
	const char *klass = gpup_ctl_str(req, GPUP_CTL_F_CLASS, "normal");
	int64_t w = gpup_ctl_int(req, GPUP_CTL_F_WEIGHT, 0);
	int64_t fps = gpup_ctl_int(req, GPUP_CTL_F_FPS_LIMIT, 0);
	int64_t budget = gpup_ctl_int(req, GPUP_CTL_F_BUDGET_US, 0);

	*what = "weight must be 1..1000000";
	if (w < 0 || w > SCHED_WEIGHT_MAX)
		return -EINVAL;
	cfg->weight = (uint32_t)w;
	*what = "reserve and cap are fractions of the engine, 0 to 1";
	if (frac(req, GPUP_CTL_F_RESERVE, &cfg->reserve_ppm) ||
	    frac(req, GPUP_CTL_F_CAP, &cfg->cap_ppm))
		return -EINVAL;
	*what = "class is normal or interactive";
	if (sched_class_parse(klass, &cfg->klass))
		return -EINVAL;
	*what = "fps_limit must be 0..1000";
	if (fps < 0 || fps > 1000)
		return -EINVAL;
	cfg->fps_limit = (uint32_t)fps;
	*what = "a budget needs class interactive and an fps limit, and is at most one "
		"frame period (1/fps)";
	if (budget < 0 || budget > SCHED_BUDGET_MAX_US)
		return -EINVAL;
	cfg->budget_us = (uint32_t)budget;
	return sched_ctx_cfg_check(cfg) ? -EINVAL : 0;
}

/* Only a budget given, grown or moved to a shorter period needs admission;
 * one kept as it was (settings sent again) or taken away does not. */
static bool new_budget(const struct gpup_partition *part, const struct sched_ctx_cfg *cfg)
{
	const struct sched_ctx_cfg *o = &part->sched;

	if (!cfg->budget_us)
		return false;
	return !part->sched_set || !o->budget_us || cfg->budget_us > o->budget_us ||
	       cfg->fps_limit > o->fps_limit;
}

json_object *gpup_tsched_ctl_part(struct gpup_pool *pool, struct gpup_partition *part,
				  struct vgpu *v, json_object *req)
{
	struct sched_ctx_cfg cfg = { 0 };
	const char *what;
	json_object *r;
	int rc;

	if (ctx_cfg(req, &cfg, &what))
		return gpup_ctl_fail(EINVAL, "%s", what);
	if (sched_ctx_cfg_check(&cfg))
		return gpup_ctl_fail(EINVAL, "scheduler settings refused");
	if (new_budget(part, &cfg) && (r = admit_gpu(pool, (int)part->gpu, part, &cfg, -1)))
		return r;
	rc = gpup_pool_set_sched(pool, part, &cfg);
	if (rc)
		return gpup_ctl_fail(-rc, "cannot save the settings of %s in %s: %s", part->uuid,
				     pool->state_dir, strerror(-rc));
	/* checked above, so this cannot refuse what was just saved */
	(void)vgpu_set_sched(v, &cfg);
	r = gpup_ctl_ok();
	json_object_object_add(r, GPUP_CTL_F_UUID, json_object_new_string(part->uuid));
	json_object_object_add(r, GPUP_CTL_F_WEIGHT, json_object_new_int64(cfg.weight));
	json_object_object_add(r, GPUP_CTL_F_RESERVE,
			       json_object_new_double(cfg.reserve_ppm / 1e6));
	json_object_object_add(r, GPUP_CTL_F_CAP, json_object_new_double(cfg.cap_ppm / 1e6));
	json_object_object_add(r, GPUP_CTL_F_CLASS,
			       json_object_new_string(sched_class_name(cfg.klass)));
	json_object_object_add(r, GPUP_CTL_F_FPS_LIMIT, json_object_new_int64(cfg.fps_limit));
	json_object_object_add(r, GPUP_CTL_F_BUDGET_US, json_object_new_int64(cfg.budget_us));
	return r;
}
