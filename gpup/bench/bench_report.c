// SPDX-License-Identifier: MIT
/*
 * The benchmark's outputs: target checks, the JSON report (schema in
 * docs/SCHEDULER.md; everything that depends on the host sits under "host"
 * keys so that two runs compare equal without them), the Markdown report
 * and a gnuplot chart of each tenant's share over time.
 */
#include <errno.h>
#include <json-c/json.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gpup/bench/bench.h"

static void add_check(struct bench_run *run, const char *name, double limit,
		      double value, bool at_most, bool host)
{
	struct bench_check *c;

	if (limit < 0 || run->nchecks == BENCH_MAX_CHECKS)
		return;
	c = &run->checks[run->nchecks++];
	c->name = name;
	c->limit = limit;
	c->value = value;
	c->host = host;
	/* a metric that could not be measured (< 0) fails the check */
	c->pass = value >= 0 && (at_most ? value <= limit : value >= limit);
}

void bench_check_targets(const struct bench_scenario *sc, struct bench_run *run)
{
	const struct bench_targets *t = &sc->targets;
	double ovh = 0;

	for (unsigned int i = 0; i < run->nengines; i++)
		ovh = fmax(ovh, run->engines[i].overhead);
	run->nchecks = 0;
	add_check(run, "share_error_max", t->share_error_max, run->share_error_max,
		  true, false);
	add_check(run, "window_share_error_max", t->window_share_error_max,
		  run->window_share_error_max, true, false);
	add_check(run, "jain_mean_min", t->jain_mean_min, run->jain_mean, false, false);
	add_check(run, "jain_min_min", t->jain_min_min, run->jain_min, false, false);
	add_check(run, "lag_max_ms", t->lag_max_ms, run->lag_max_ms, true, false);
	add_check(run, "group_spread_max", t->group_spread_max, run->group_spread_max,
		  true, false);
	add_check(run, "wait_p99_max_us", t->wait_p99_max_us, run->wait_p99_max_us,
		  true, false);
	add_check(run, "group_wait_p99_max_us", t->group_wait_p99_max_us,
		  run->group_wait_p99_max_us, true, false);
	add_check(run, "frames_missed_max", t->frames_missed_max,
		  (double)run->frames_missed, true, false);
	add_check(run, "budget_wait_p99_ratio_max", t->budget_wait_p99_ratio_max,
		  run->budget_wait_p99_ratio_max, true, false);
	add_check(run, "budget_wait_max_ratio_max", t->budget_wait_max_ratio_max,
		  run->budget_wait_max_ratio_max, true, false);
	add_check(run, "overhead_max", t->overhead_max, ovh, true, true);
	run->pass = run->host_pass = true;
	for (unsigned int i = 0; i < run->nchecks; i++) {
		if (run->checks[i].host)
			run->host_pass &= run->checks[i].pass;
		else
			run->pass &= run->checks[i].pass;
	}
}

/* ---- the reproduce line ---- */

/* s as one shell word: as it is when it holds nothing a shell reads,
 * otherwise in single quotes (a quote inside as '\''). */
static void shell_word(char *buf, size_t len, const char *s)
{
	size_t n = 0;

	if (*s && strspn(s, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
			    "0123456789_./+-=:,@%") == strlen(s)) {
		snprintf(buf, len, "%s", s);
		return;
	}
	n += (size_t)snprintf(buf, len, "'");
	for (; *s && n + 5 < len; s++)
		n += (size_t)snprintf(buf + n, len - n, *s == '\'' ? "'\\''" : "%c", *s);
	snprintf(buf + n, len - n, "'");
}

int bench_command(struct bench_scenario *sc, const struct bench_opts *o, uint64_t seed,
		  double secs)
{
	char word[4200], cmd[4400];
	size_t n;

	shell_word(word, sizeof(word), sc->path ? sc->path : "SCENARIO.json");
	n = (size_t)snprintf(cmd, sizeof(cmd), "gpup bench %s%s --seed %llu", word,
			     o->model ? " --model" : o->live ? " --live" : "",
			     (unsigned long long)seed);
	if (o->duration_s > 0 || secs > 0)
		n += (size_t)snprintf(cmd + n, sizeof(cmd) - n, " --duration %g",
				      o->duration_s > 0 ? o->duration_s : secs);
	if (o->no_baselines && n < sizeof(cmd))
		snprintf(cmd + n, sizeof(cmd) - n, " --no-baselines");
	free(sc->command);
	sc->command = strdup(cmd);
	return sc->command ? 0 : -ENOMEM;
}

const char *bench_command_line(const struct bench_scenario *sc)
{
	return sc->command ? sc->command : "gpup bench SCENARIO.json";
}

/* ---- JSON ---- */

json_object *bench_json_num(double v)
{
	char buf[32];

	if (v < 0 || !isfinite(v))
		return NULL;
	snprintf(buf, sizeof(buf), "%.6g", v);
	return json_object_new_double_s(v, buf);
}

static void put(json_object *o, const char *k, json_object *v)
{
	json_object_object_add(o, k, v);
}

static json_object *ju(uint64_t v)
{
	return json_object_new_int64((int64_t)v);
}

static json_object *jstr(const char *s)
{
	return json_object_new_string(s);
}

static const char *wl_name(enum bench_workload_kind k)
{
	static const char *const n[] = { "saturating", "bursty", "closed-loop", "frames" };

	return n[k];
}

static json_object *tenant_json(const struct bench_scenario *sc, unsigned int i,
				const struct bench_tenant_result *r)
{
	const struct bench_tenant_spec *t = &sc->tenants[i];
	json_object *o = json_object_new_object();

	put(o, "name", jstr(t->name));
	put(o, "gpu", jstr(sc->gpus[t->gpu].name));
	put(o, "engine", ju(t->engine));
	put(o, "type", jstr(t->type));
	put(o, "class", jstr(sched_class_name(t->klass)));
	put(o, "weight", ju(t->weight));
	put(o, "reserve", bench_json_num(t->reserve_ppm / 1e6));
	put(o, "cap", bench_json_num(t->cap_ppm / 1e6));
	put(o, "workload", jstr(wl_name(t->wl.kind)));
	if (t->group[0])
		put(o, "group", jstr(t->group));
	put(o, "target_share", bench_json_num(r->target_share));
	put(o, "share", bench_json_num(r->share));
	put(o, "share_error", bench_json_num(r->share_error));
	put(o, "window_share_error_max", bench_json_num(r->window_share_error_max));
	put(o, "engine_ms", bench_json_num(r->engine_ms));
	put(o, "jobs", ju(r->jobs));
	put(o, "jobs_per_s", bench_json_num(r->jobs_per_s));
	put(o, "slices", ju(r->slices));
	put(o, "preemptions", ju(r->preemptions));
	put(o, "overrun_ms", bench_json_num(r->overrun_ms));
	put(o, "wait_p50_us", bench_json_num(r->wait_p50_us));
	put(o, "wait_p99_us", bench_json_num(r->wait_p99_us));
	put(o, "wait_max_us", bench_json_num(r->wait_max_us));
	put(o, "max_lag_ms", bench_json_num(fmax(r->max_lag_ms, 0)));
	put(o, "debt_us", json_object_new_double(round(r->debt_us)));
	put(o, "frames", ju(r->frames));
	put(o, "frames_missed", ju(r->frames_missed));
	if (!t->budget_us)
		return o;
	put(o, "budget_us", ju(t->budget_us));
	put(o, "fps_limit", ju(t->fps_limit));
	put(o, "budget_wait_p99_us", bench_json_num(r->budget_wait_p99_us));
	put(o, "budget_wait_max_us", bench_json_num(r->budget_wait_max_us));
	put(o, "wait_p99_bound_us", bench_json_num(r->wait_p99_bound_us));
	put(o, "wait_bound_us", bench_json_num(r->wait_bound_us));
	put(o, "budget_exhausted", ju(r->budget_exhausted));
	return o;
}

static json_object *engine_json(const struct bench_scenario *sc,
				const struct bench_engine_result *r)
{
	json_object *o = json_object_new_object(), *h = json_object_new_object();

	put(o, "gpu", jstr(sc->gpus[r->gpu].name));
	put(o, "engine", ju(r->engine));
	put(o, "tenants", ju(r->ntenants));
	put(o, "utilisation", bench_json_num(r->utilisation));
	put(o, "switches_per_s", bench_json_num(r->switches_per_s));
	put(o, "picks", ju(r->picks));
	put(o, "idle_picks", ju(r->idle_picks));
	put(o, "nonpreempt_max_us", bench_json_num(r->nonpreempt_max_us));
	put(h, "sched_cpu_ns", ju(r->sched_cpu_ns));
	put(h, "overhead", bench_json_num(r->overhead));
	put(o, "host", h);
	return o;
}

static json_object *checks_json(const struct bench_run *run, bool host)
{
	json_object *a = json_object_new_array();

	for (unsigned int i = 0; i < run->nchecks; i++) {
		const struct bench_check *c = &run->checks[i];
		json_object *o;

		if (c->host != host)
			continue;
		o = json_object_new_object();
		put(o, "name", jstr(c->name));
		put(o, "limit", bench_json_num(c->limit));
		put(o, "value", bench_json_num(c->value));
		put(o, "pass", json_object_new_boolean(c->pass));
		json_object_array_add(a, o);
	}
	return a;
}

static json_object *overall_json(const struct bench_run *run)
{
	json_object *o = json_object_new_object();

	put(o, "jain_min", bench_json_num(run->jain_min));
	put(o, "jain_mean", bench_json_num(run->jain_mean));
	put(o, "jain_windows", ju(run->jain_windows));
	put(o, "share_error_max", bench_json_num(run->share_error_max));
	put(o, "window_share_error_max", bench_json_num(run->window_share_error_max));
	put(o, "lag_max_ms", bench_json_num(run->lag_max_ms));
	put(o, "group_spread_max", bench_json_num(run->group_spread_max));
	put(o, "wait_p99_max_us", bench_json_num(run->wait_p99_max_us));
	put(o, "group_wait_p99_max_us", bench_json_num(run->group_wait_p99_max_us));
	put(o, "budget_wait_p99_ratio_max", bench_json_num(run->budget_wait_p99_ratio_max));
	put(o, "budget_wait_max_ratio_max", bench_json_num(run->budget_wait_max_ratio_max));
	put(o, "frames_missed", ju(run->frames_missed));
	return o;
}

json_object *bench_run_json(const struct bench_scenario *sc, const struct bench_run *run)
{
	json_object *o = json_object_new_object(), *h = json_object_new_object();
	json_object *ta = json_object_new_array(), *ea = json_object_new_array();

	put(o, "policy", jstr(sched_policy_name(run->policy)));
	put(o, "role", jstr(run->baseline ? "baseline" : "scenario"));
	put(o, "slice_ms", bench_json_num(run->slice_ns / 1e6));
	put(o, "overall", overall_json(run));
	for (unsigned int i = 0; i < run->nengines; i++)
		json_object_array_add(ea, engine_json(sc, &run->engines[i]));
	put(o, "engines", ea);
	for (unsigned int i = 0; i < sc->ntenants; i++)
		json_object_array_add(ta, tenant_json(sc, i, &run->tenants[i]));
	put(o, "tenants", ta);
	put(o, "targets", checks_json(run, false));
	put(o, "pass", json_object_new_boolean(run->pass));
	put(h, "targets", checks_json(run, true));
	put(h, "pass", json_object_new_boolean(run->host_pass));
	put(o, "host", h);
	return o;
}

int bench_write_json(FILE *f, const struct bench_scenario *sc, uint64_t seed,
		     const struct bench_run *runs, unsigned int nruns, double wall_s)
{
	json_object *o = json_object_new_object(), *a = json_object_new_array();
	json_object *h = json_object_new_object();
	int rc = 0;

	put(o, "schema", jstr("gpup-bench-1"));
	put(o, "scenario", jstr(sc->name));
	put(o, "scenario_file", sc->path ? jstr(sc->path) : NULL);
	put(o, "command", jstr(bench_command_line(sc)));
	put(o, "description", jstr(sc->description));
	put(o, "mode", jstr("model"));
	put(o, "seed", ju(seed));
	put(o, "duration_s", bench_json_num(sc->duration_ns / 1e9));
	put(o, "policy", jstr(sched_policy_name(sc->policy)));
	put(o, "tenants", ju(sc->ntenants));
	for (unsigned int i = 0; i < nruns; i++)
		json_object_array_add(a, bench_run_json(sc, &runs[i]));
	put(o, "runs", a);
	put(o, "pass", json_object_new_boolean(runs[0].pass));
	put(h, "wall_s", bench_json_num(wall_s));
	put(h, "pass", json_object_new_boolean(runs[0].host_pass));
	put(o, "host", h);
	if (fprintf(f, "%s\n", json_object_to_json_string_ext(o,
			JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_NOSLASHESCAPE)) < 0)
		rc = -EIO;
	json_object_put(o);
	return rc;
}
