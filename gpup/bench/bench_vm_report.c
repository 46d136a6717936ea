// SPDX-License-Identifier: MIT
/*
 * vm mode's reports: the runs measured on VMs, each in the model report's
 * shape (docs/SCHEDULER.md), beside the model's runs of the same policies
 * for the same time.  JSON ("schema": "gpup-bench-vm-1") and a Markdown
 * section; the plot is bench_write_plot's, of the first vm run.
 */
#include <errno.h>
#include <json-c/json.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "gpup/bench/bench_int.h"

/* A vm run: the model's shape, with what vm mode cannot measure set to
 * null and what the guests measured added. */
static json_object *vm_run_json(const struct bench_vm *v, unsigned int r,
				const struct bench_run *run)
{
	json_object *o = bench_run_json(v->sc, run);
	json_object *ta = json_object_object_get(o, "tenants");

	for (unsigned int i = 0; i < v->n; i++) {
		json_object *t = json_object_array_get_idx(ta, i);
		const struct bench_vm_guest *g = &v->results[r][i];

		json_object_object_add(t, "max_lag_ms", NULL);
		json_object_object_add(t, "uuid", json_object_new_string(v->t[i].uuid));
		json_object_object_add(t, "latency_p50_ms", bench_json_num(g->lat_n ? g->lat_p50_ns / 1e6 : -1));
		json_object_object_add(t, "latency_p99_ms", bench_json_num(g->lat_n ? g->lat_p99_ns / 1e6 : -1));
		json_object_object_add(t, "latency_max_ms", bench_json_num(g->lat_n ? g->lat_max_ns / 1e6 : -1));
		json_object_object_add(t, "guest_run_s", bench_json_num(g->run_ns / 1e9));
	}
	json_object_object_add(o, "measured_s", bench_json_num(v->measured_s[r]));
	return o;
}

int bench_vm_write_json(FILE *f, const struct bench_vm *v, uint64_t seed,
			const struct bench_run *vm, const struct bench_run *model,
			unsigned int nruns, double wall_s)
{
	const struct bench_scenario *sc = v->sc;
	json_object *o = json_object_new_object(), *a = json_object_new_array();
	json_object *m = json_object_new_object(), *ma = json_object_new_array();
	json_object *h = json_object_new_object();
	int rc = 0;

	json_object_object_add(o, "schema", json_object_new_string("gpup-bench-vm-1"));
	json_object_object_add(o, "scenario", json_object_new_string(sc->name));
	json_object_object_add(o, "scenario_file",
			       sc->path ? json_object_new_string(sc->path) : NULL);
	json_object_object_add(o, "command", json_object_new_string(bench_command_line(sc)));
	json_object_object_add(o, "description", json_object_new_string(sc->description));
	json_object_object_add(o, "mode", json_object_new_string("vm"));
	json_object_object_add(o, "seed", json_object_new_int64((int64_t)seed));
	json_object_object_add(o, "duration_s", bench_json_num(v->duration_ns / 1e9));
	json_object_object_add(o, "policy", json_object_new_string(sched_policy_name(sc->policy)));
	json_object_object_add(o, "tenants", json_object_new_int64(sc->ntenants));
	json_object_object_add(o, "partition_type", json_object_new_string(v->type));
	for (unsigned int i = 0; i < nruns; i++) {
		json_object_array_add(a, vm_run_json(v, i, &vm[i]));
		json_object_array_add(ma, bench_run_json(sc, &model[i]));
	}
	json_object_object_add(o, "runs", a);
	json_object_object_add(m, "duration_s", bench_json_num(sc->duration_ns / 1e9));
	json_object_object_add(m, "runs", ma);
	json_object_object_add(o, "model", m);
	json_object_object_add(h, "wall_s", bench_json_num(wall_s));
	json_object_object_add(o, "host", h);
	if (fprintf(f, "%s\n", json_object_to_json_string_ext(o,
			JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_NOSLASHESCAPE)) < 0)
		rc = -EIO;
	json_object_put(o);
	return rc;
}

/* ---- Markdown ---- */

static const char *fmt(char *buf, size_t len, const char *f, double v)
{
	if (v < 0)
		return "n/a";
	snprintf(buf, len, f, v);
	return buf;
}

static void row(FILE *f, const char *mode, const struct bench_run *r)
{
	const struct bench_engine_result *e = &r->engines[0];
	char b[8][32];

	fprintf(f, "| %s%s | %s | %s | %s | %s | %s | %s | %llu | %.1f%% | %.0f | %s |\n",
		sched_policy_name(r->policy), r->baseline ? " (baseline)" : "", mode,
		fmt(b[0], 32, "%.2f%%", r->share_error_max * 100),
		fmt(b[1], 32, "%.5f", r->jain_mean), fmt(b[2], 32, "%.5f", r->jain_min),
		fmt(b[3], 32, "%.2f%%", r->group_spread_max * 100),
		fmt(b[4], 32, "%.0f", r->wait_p99_max_us),
		(unsigned long long)r->frames_missed, e->utilisation * 100, e->switches_per_s,
		fmt(b[5], 32, "%.4f%%", e->overhead * 100));
}

static void vm_tenants(FILE *f, const struct bench_vm *v, const struct bench_run *vm,
		       const struct bench_run *model)
{
	char b[5][32];

	fprintf(f, "\nTenants under %s (vm; the model's share beside):\n\n"
		   "| tenant | class | weight | share | target | error | model share | engine ms "
		   "| jobs/s | wait p50 µs | p99 µs | max µs | latency p50 ms | p99 ms "
		   "| frames missed |\n| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: "
		   "| ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n",
		sched_policy_name(vm->policy));
	for (unsigned int i = 0; i < v->n; i++) {
		const struct bench_tenant_result *t = &vm->tenants[i];
		const struct bench_vm_guest *g = &v->results[0][i];

		fprintf(f, "| %s | %s | %u | %s | %s | %s | %.4f | %.1f | %.1f | %.0f | %.0f "
			   "| %.0f | %s | %s | %llu/%llu |\n", v->sc->tenants[i].name,
			sched_class_name(v->sc->tenants[i].klass), v->sc->tenants[i].weight,
			fmt(b[4], 32, "%.4f", t->share), fmt(b[0], 32, "%.4f", t->target_share),
			fmt(b[1], 32, "%.2f%%", t->share_error * 100), model->tenants[i].share,
			t->engine_ms, t->jobs_per_s, t->wait_p50_us, t->wait_p99_us, t->wait_max_us,
			fmt(b[2], 32, "%.2f", g->lat_n ? g->lat_p50_ns / 1e6 : -1),
			fmt(b[3], 32, "%.2f", g->lat_n ? g->lat_p99_ns / 1e6 : -1),
			(unsigned long long)t->frames_missed, (unsigned long long)t->frames);
	}
}

/* Budget holders under every run, vm beside the model: the waits the
 * guarantee covers (every wait under baselines) against its bounds. */
static void vm_budgets(FILE *f, const struct bench_vm *v, const struct bench_run *vm,
		       const struct bench_run *model, unsigned int nruns)
{
	bool any = false;

	for (unsigned int i = 0; i < v->n; i++)
		any |= v->sc->tenants[i].budget_us != 0;
	if (!any)
		return;
	fprintf(f, "\nBudget holders (waits within the budget; under baselines every wait; "
		   "vm: the daemon's histogram over the VM's life), against p99 <= slice + "
		   "0.1 ms and max <= 2 slices + the longest non-preemptible stretch the "
		   "engine saw:\n\n| tenant | policy | vm p99 µs | model p99 µs | p99 bound "
		   "| vm max µs | model max µs | vm max bound | frames missed vm | model |\n"
		   "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n");
	for (unsigned int i = 0; i < v->n; i++) {
		for (unsigned int k = 0; v->sc->tenants[i].budget_us && k < nruns; k++) {
			const struct bench_tenant_result *a = &vm[k].tenants[i];
			const struct bench_tenant_result *m = &model[k].tenants[i];

			fprintf(f, "| %s | %s | %.0f | %.0f | %.0f | %.0f | %.0f | %.0f "
				   "| %llu/%llu | %llu/%llu |\n", v->sc->tenants[i].name,
				sched_policy_name(vm[k].policy), a->budget_wait_p99_us,
				m->budget_wait_p99_us, a->wait_p99_bound_us, a->budget_wait_max_us,
				m->budget_wait_max_us, a->wait_bound_us,
				(unsigned long long)a->frames_missed, (unsigned long long)a->frames,
				(unsigned long long)m->frames_missed, (unsigned long long)m->frames);
		}
	}
}

void bench_vm_write_markdown(FILE *f, const struct bench_vm *v, uint64_t seed,
			     const struct bench_run *vm, const struct bench_run *model,
			     unsigned int nruns)
{
	const struct bench_scenario *sc = v->sc;

	fprintf(f, "### Scenario `%s` (vm mode, the model beside)\n\n", sc->name);
	if (sc->description[0])
		fprintf(f, "%s\n\n", sc->description);
	(void)seed;
	fprintf(f, "`%s`: %u VMs "
		   "running the tenant guest on partitions of type %s of one sim GPU, %.1f s "
		   "measured per policy in windows of about 100 ms (the model: the same "
		   "policies, the same time). Shares are of the engine time delivered; share "
		   "error and Jain's index are over the saturating tenants, by the scenario "
		   "policy's weights.\n\n",
		bench_command_line(sc), v->n, v->type, v->measured_s[0]);
	fprintf(f, "| policy | mode | share error max | Jain mean | Jain min | group spread "
		   "| interactive p99 wait µs | frames missed | utilisation | switches/s "
		   "| sched overhead |\n| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: "
		   "| ---: | ---: | ---: |\n");
	for (unsigned int i = 0; i < nruns; i++) {
		row(f, "model", &model[i]);
		row(f, "vm", &vm[i]);
	}
	vm_budgets(f, v, vm, model, nruns);
	vm_tenants(f, v, &vm[0], &model[0]);
}
