// SPDX-License-Identifier: MIT
/*
 * Live mode's numbers and reports.  What the model computes against a
 * fluid reference, live mode can only judge from what the tenants got
 * back: saturating tenants should split their part of the engine by the
 * policy's weights (shares, errors, Jain's index per 100 ms window); frames
 * and closed loops report how long a job took from submission to fence.
 * All of it depends on the host, so none of it is a target.
 */
#include <errno.h>
#include <json-c/json.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "gpup/bench/bench_int.h"

static bool saturating(const struct bench_tenant_spec *t)
{
	return t->wl.kind == BENCH_WL_SATURATING;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

static void latencies(struct bench_live_client *t, struct bench_live_tenant *r)
{
	r->lat_p50_ms = r->lat_p99_ms = r->lat_max_ms = -1;
	if (!t->nlat)
		return;
	qsort(t->lat, t->nlat, sizeof(*t->lat), cmp_u64);
	r->lat_p50_ms = t->lat[(t->nlat + 1) / 2 - 1] / 1e6;
	r->lat_p99_ms = t->lat[(unsigned int)ceil(0.99 * t->nlat) - 1] / 1e6;
	r->lat_max_ms = t->lat[t->nlat - 1] / 1e6;
}

static void live_jain(const struct bench_live *l, struct bench_live_result *res)
{
	double sum = 0, *x = calloc(l->n ? l->n : 1, sizeof(*x));

	for (unsigned int w = 0; x && w < l->nwin; w++) {
		double j;
		unsigned int k = 0;
		bool any = false;

		for (unsigned int i = 0; i < l->n; i++) {
			if (!saturating(l->t[i].spec))
				continue;
			x[k] = l->t[i].win[w] / bench_policy_weight(l->sc, i);
			any |= x[k++] > 0;
		}
		if (k < 2 || !any)
			continue;
		j = bench_jain(x, k);
		res->jain_min = res->jain_windows && res->jain_min < j ? res->jain_min : j;
		sum += j;
		res->jain_windows++;
	}
	free(x);
	if (res->jain_windows)
		res->jain_mean = sum / res->jain_windows;
}

int bench_live_measure(const struct bench_live *l, enum sched_policy p,
		       struct bench_live_result *res)
{
	double secs = l->duration_ns / 1e9, total = 0, sat = 0, wsat = 0;

	memset(res, 0, sizeof(*res));
	res->t = calloc(l->n, sizeof(*res->t));
	if (!res->t)
		return -ENOMEM;
	res->policy = p;
	res->n = l->n;
	res->share_error_max = res->jain_min = res->jain_mean = -1;
	for (unsigned int i = 0; i < l->n; i++) {
		total += l->t[i].work_ns;
		sat += saturating(l->t[i].spec) ? l->t[i].work_ns : 0;
		wsat += saturating(l->t[i].spec) ? bench_policy_weight(l->sc, i) : 0;
	}
	res->delivered = total / (double)l->duration_ns;
	for (unsigned int i = 0; i < l->n; i++) {
		struct bench_live_client *t = &l->t[i];
		struct bench_live_tenant *r = &res->t[i];

		r->work_ns = t->work_ns;
		r->jobs = t->jobs;
		r->frames = t->frames;
		r->frames_missed = t->frames_missed;
		r->jobs_per_s = t->jobs / secs;
		r->share = total > 0 ? t->work_ns / total : 0;
		r->target = r->share_error = -1;
		if (saturating(t->spec) && total > 0 && wsat > 0) {
			double want = bench_policy_weight(l->sc, i) / wsat;

			r->target = want * sat / total;
			r->share_error = fabs(t->work_ns / sat - want) / want;
			res->share_error_max = fmax(res->share_error_max, r->share_error);
		}
		res->frames_missed += t->frames_missed;
		latencies(t, r);
	}
	live_jain(l, res);
	return 0;
}

void bench_live_result_free(struct bench_live_result *res)
{
	free(res->t);
	res->t = NULL;
}

/* ---- reports ---- */

static const char *opt(char *buf, size_t len, const char *f, double v)
{
	if (v < 0)
		return "n/a";
	snprintf(buf, len, f, v);
	return buf;
}

static double worst_latency(const struct bench_live_result *r)
{
	double w = -1;

	for (unsigned int i = 0; i < r->n; i++)
		w = fmax(w, r->t[i].lat_p99_ms);
	return w;
}

static void live_tenants(FILE *f, const struct bench_scenario *sc,
			 const struct bench_live_result *r)
{
	char b[6][32];

	fprintf(f, "\nTenants under %s:\n\n| tenant | class | weight | share | target | error "
		   "| jobs/s | latency p50 ms | p99 ms | max ms | frames missed |\n"
		   "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n",
		sched_policy_name(r->policy));
	for (unsigned int i = 0; i < r->n; i++) {
		const struct bench_live_tenant *t = &r->t[i];

		fprintf(f, "| %s | %s | %u | %.4f | %s | %s | %.1f | %s | %s | %s | %llu/%llu |\n",
			sc->tenants[i].name, sched_class_name(sc->tenants[i].klass),
			sc->tenants[i].weight, t->share, opt(b[0], 32, "%.4f", t->target),
			opt(b[1], 32, "%.2f%%", t->share_error * 100), t->jobs_per_s,
			opt(b[2], 32, "%.2f", t->lat_p50_ms), opt(b[3], 32, "%.2f", t->lat_p99_ms),
			opt(b[4], 32, "%.2f", t->lat_max_ms), (unsigned long long)t->frames_missed,
			(unsigned long long)t->frames);
	}
}

void bench_live_markdown(FILE *f, const struct bench_scenario *sc,
			 const struct bench_live_result *r, unsigned int n, double seconds)
{
	char b[4][32];

	fprintf(f, "### Scenario `%s` (live: a running daemon's sim GPU)\n\n", sc->name);
	fprintf(f, "`%s`: %u partitions "
		   "driven over vfio-user with SPIN kernels of the scenario's lengths, %g s "
		   "per policy. Host-dependent: reported, not checked against targets.\n\n",
		bench_command_line(sc), sc->ntenants, seconds);
	fprintf(f, "| policy | share error max (saturating) | Jain mean | Jain min "
		   "| frames missed | worst p99 latency ms | engine time delivered |\n"
		   "| --- | ---: | ---: | ---: | ---: | ---: | ---: |\n");
	for (unsigned int i = 0; i < n; i++)
		fprintf(f, "| %s | %s | %s | %s | %llu | %s | %.1f%% |\n",
			sched_policy_name(r[i].policy),
			opt(b[0], 32, "%.2f%%", r[i].share_error_max * 100),
			opt(b[1], 32, "%.5f", r[i].jain_mean), opt(b[2], 32, "%.5f", r[i].jain_min),
			(unsigned long long)r[i].frames_missed,
			opt(b[3], 32, "%.2f", worst_latency(&r[i])), r[i].delivered * 100);
	live_tenants(f, sc, &r[0]);
}

static json_object *live_tenant_json(const struct bench_scenario *sc, unsigned int i,
				     const struct bench_live_tenant *t)
{
	json_object *o = json_object_new_object();

	json_object_object_add(o, "name", json_object_new_string(sc->tenants[i].name));
	json_object_object_add(o, "class",
			       json_object_new_string(sched_class_name(sc->tenants[i].klass)));
	json_object_object_add(o, "weight", json_object_new_int64(sc->tenants[i].weight));
	json_object_object_add(o, "share", bench_json_num(t->share));
	json_object_object_add(o, "target_share", bench_json_num(t->target));
	json_object_object_add(o, "share_error", bench_json_num(t->share_error));
	json_object_object_add(o, "engine_ms", bench_json_num(t->work_ns / 1e6));
	json_object_object_add(o, "jobs", json_object_new_int64((int64_t)t->jobs));
	json_object_object_add(o, "jobs_per_s", bench_json_num(t->jobs_per_s));
	json_object_object_add(o, "frames", json_object_new_int64((int64_t)t->frames));
	json_object_object_add(o, "frames_missed",
			       json_object_new_int64((int64_t)t->frames_missed));
	json_object_object_add(o, "latency_p50_ms", bench_json_num(t->lat_p50_ms));
	json_object_object_add(o, "latency_p99_ms", bench_json_num(t->lat_p99_ms));
	json_object_object_add(o, "latency_max_ms", bench_json_num(t->lat_max_ms));
	return o;
}

int bench_live_json(FILE *f, const struct bench_scenario *sc,
		    const struct bench_live_result *r, unsigned int n, double seconds)
{
	json_object *o = json_object_new_object(), *runs = json_object_new_array();
	int rc = 0;

	json_object_object_add(o, "schema", json_object_new_string("gpup-bench-live-1"));
	json_object_object_add(o, "scenario", json_object_new_string(sc->name));
	json_object_object_add(o, "scenario_file",
			       sc->path ? json_object_new_string(sc->path) : NULL);
	json_object_object_add(o, "command", json_object_new_string(bench_command_line(sc)));
	json_object_object_add(o, "mode", json_object_new_string("live"));
	json_object_object_add(o, "duration_s", bench_json_num(seconds));
	for (unsigned int i = 0; i < n; i++) {
		json_object *ru = json_object_new_object(), *ta = json_object_new_array();

		json_object_object_add(ru, "policy",
				       json_object_new_string(sched_policy_name(r[i].policy)));
		json_object_object_add(ru, "delivered", bench_json_num(r[i].delivered));
		json_object_object_add(ru, "share_error_max", bench_json_num(r[i].share_error_max));
		json_object_object_add(ru, "jain_min", bench_json_num(r[i].jain_min));
		json_object_object_add(ru, "jain_mean", bench_json_num(r[i].jain_mean));
		json_object_object_add(ru, "jain_windows", json_object_new_int(r[i].jain_windows));
		json_object_object_add(ru, "frames_missed",
				       json_object_new_int64((int64_t)r[i].frames_missed));
		for (unsigned int k = 0; k < r[i].n; k++)
			json_object_array_add(ta, live_tenant_json(sc, k, &r[i].t[k]));
		json_object_object_add(ru, "tenants", ta);
		json_object_array_add(runs, ru);
	}
	json_object_object_add(o, "runs", runs);
	if (fprintf(f, "%s\n", json_object_to_json_string_ext(o,
			JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_NOSLASHESCAPE)) < 0)
		rc = -EIO;
	json_object_put(o);
	return rc;
}
