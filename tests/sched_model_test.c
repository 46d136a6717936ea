// SPDX-License-Identifier: MIT
/*
 * `gpup bench --model`: the shipped scenarios meet their targets (run
 * shortened here so the suite stays fast), the baselines visibly do not,
 * a run is deterministic for a scenario and seed, and bad scenarios or
 * command lines get a clear error instead of a crash.
 */
#include <criterion/criterion.h>
#include <criterion/parameterized.h>
#include <errno.h>
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "gpup/bench/bench.h"
#include "gpup/cli/cli.h"

/* The scenarios ship beside the tests: tests/../samples/scenarios. */
static void load(const char *name, struct bench_scenario *sc, double seconds)
{
	char path[512], err[256];
	const char *dir = getenv("GPUP_SCENARIOS");

	if (dir)
		snprintf(path, sizeof(path), "%s/%s.json", dir, name);
	else
		snprintf(path, sizeof(path), "samples/scenarios/%s.json", name);
	cr_assert_eq(bench_scenario_load(path, sc, err, sizeof(err)), 0, "%s: %s",
		     path, err);
	sc->duration_ns = (uint64_t)(seconds * 1e9);
}

static void run(const struct bench_scenario *sc, enum sched_policy p,
		struct bench_run *r)
{
	cr_assert_eq(bench_model_run(sc, p, sc->seed, r), 0);
	bench_check_targets(sc, r);
}

static void expect_pass(const struct bench_run *r)
{
	for (unsigned int i = 0; i < r->nchecks; i++)
		cr_expect(r->checks[i].pass, "%s under %s: %g, limit %g",
			  r->checks[i].name, sched_policy_name(r->policy),
			  r->checks[i].value, r->checks[i].limit);
	cr_assert(r->pass && r->host_pass);
}

static double check_value(const struct bench_run *r, const char *name)
{
	for (unsigned int i = 0; i < r->nchecks; i++)
		if (strcmp(r->checks[i].name, name) == 0)
			return r->checks[i].value;
	cr_assert_fail("no check %s", name);
	return -1;
}

Test(sched_model, equal8_targets_hold_and_fifo_misses_them)
{
	struct bench_scenario sc;
	struct bench_run r, f;

	load("equal-8", &sc, 2);
	run(&sc, sc.policy, &r);
	expect_pass(&r);
	cr_assert_eq(r.jain_windows, 20);
	cr_assert_geq(r.engines[0].utilisation, 0.97);
	run(&sc, SCHED_POLICY_FIFO, &f);
	cr_assert(!f.pass);
	cr_assert_gt(check_value(&f, "share_error_max"), 0.005);
	bench_run_free(&r);
	bench_run_free(&f);
	bench_scenario_free(&sc);
}

Test(sched_model, weighted_targets_hold_with_nonpreemptible_jobs)
{
	struct bench_scenario sc;
	struct bench_run r, b;

	load("weighted", &sc, 3);
	run(&sc, sc.policy, &r);
	expect_pass(&r);
	/* weights 2:4:8:16 */
	cr_assert_float_eq(r.tenants[3].target_share, 16.0 / 30, 1e-9);
	cr_assert_gt(r.tenants[3].overrun_ms, 0, "the 10 ms jobs overran");
	run(&sc, SCHED_POLICY_BEST_EFFORT, &b);
	cr_assert_gt(check_value(&b, "lag_max_ms"), 11);
	bench_run_free(&r);
	bench_run_free(&b);
	bench_scenario_free(&sc);
}

Test(sched_model, interactive_latency_bound_and_no_missed_frames)
{
	struct bench_scenario sc;
	struct bench_run r, b;

	load("interactive", &sc, 2);
	run(&sc, sc.policy, &r);
	expect_pass(&r);
	cr_assert_eq(r.tenants[0].frames, 120);
	cr_assert_eq(r.frames_missed, 0);
	run(&sc, SCHED_POLICY_BEST_EFFORT, &b);
	cr_assert_gt(b.wait_p99_max_us, 1100, "round robin makes frames wait");
	bench_run_free(&r);
	bench_run_free(&b);
	bench_scenario_free(&sc);
}

/* The VDI farms: every budget holder within its bounds, no frame missed,
 * the batch tenants level; under best-effort the holders wait rounds. */
struct vdi_param {
	char name[16];
};

ParameterizedTestParameters(sched_model, vdi_farms_meet_their_bounds)
{
	static struct vdi_param names[] = { { "vdi-farm" }, { "vdi-mixed" }, { "vdi-noisy" } };

	return cr_make_param_array(struct vdi_param, names, 3);
}

ParameterizedTest(struct vdi_param *p, sched_model, vdi_farms_meet_their_bounds)
{
	struct bench_scenario sc;
	struct bench_run r, b;

	load(p->name, &sc, 3);
	run(&sc, sc.policy, &r);
	expect_pass(&r);
	cr_assert_eq(r.frames_missed, 0);
	cr_assert_leq(check_value(&r, "budget_wait_max_ratio_max"), 1);
	run(&sc, SCHED_POLICY_BEST_EFFORT, &b);
	cr_assert_gt(check_value(&b, "budget_wait_p99_ratio_max"), 2, "rounds of others");
	bench_run_free(&r);
	bench_run_free(&b);
	bench_scenario_free(&sc);
}

/* A scenario whose budgets its engine cannot honour does not load. */
Test(sched_model, inadmissible_budgets_are_refused_at_load)
{
	static const char *const json =
		"{\"slice_ms\": 1, \"tenants\": ["
		"{\"name\": \"d\", \"count\": 4, \"class\": \"interactive\", "
		"\"fps_limit\": 60, \"budget_us\": 3500, \"workload\": {\"kind\": "
		"\"frames\", \"fps\": 60, \"frame_us\": 3000}},"
		"{\"name\": \"n\", \"workload\": {\"kind\": \"saturating\", "
		"\"kernel_us\": 2000, \"preemptible\": false}}]}";
	struct bench_scenario sc = { 0 };
	char err[256];

	cr_assert_eq(bench_scenario_parse(json, &sc, err, sizeof(err)), -EINVAL);
	cr_assert_str_eq(err, "gpu0 engine 0 cannot honour its budgets: 4 budget(s) "
			      "take 84.0% of the engine and the longest non-preemptible "
			      "stretch seen (2.00 ms) 12.0% of the shortest period (16.67 ms): "
			      "96.0%, above 90%");
	bench_scenario_free(&sc);
}

Test(sched_model, noisy_neighbour_keeps_light_tenants_responsive)
{
	struct bench_scenario sc;
	struct bench_run r, f;

	load("noisy-neighbour", &sc, 2);
	run(&sc, sc.policy, &r);
	expect_pass(&r);
	run(&sc, SCHED_POLICY_FIFO, &f);
	cr_assert_gt(f.group_wait_p99_max_us, 40000, "fifo: behind 50 ms kernels");
	bench_run_free(&r);
	bench_run_free(&f);
	bench_scenario_free(&sc);
}

Test(sched_model, fixed_share_reserves_hold_while_a_tenant_comes_and_goes)
{
	struct bench_scenario sc;
	struct bench_run r, b;

	load("fixed-share", &sc, 3);
	run(&sc, sc.policy, &r);
	expect_pass(&r);
	/* the quarter without an elastic cap never gets more, even alone */
	cr_assert_float_eq(r.tenants[2].share, 0.25, 0.005);
	cr_assert_lt(r.engines[0].utilisation, 0.97, "idle time is not given away");
	run(&sc, SCHED_POLICY_BEST_EFFORT, &b);
	cr_assert_gt(b.share_error_max, 0.3);
	bench_run_free(&r);
	bench_run_free(&b);
	bench_scenario_free(&sc);
}

/* The JSON report with every "host" member removed. */
static char *json_without_host(const struct bench_scenario *sc, uint64_t seed)
{
	struct bench_run r;
	char *buf = NULL, *out;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);
	json_object *root, *runs;

	cr_assert_eq(bench_model_run(sc, sc->policy, seed, &r), 0);
	bench_check_targets(sc, &r);
	bench_write_json(f, sc, seed, &r, 1, 0.5);
	fclose(f);
	bench_run_free(&r);
	root = json_tokener_parse(buf);
	cr_assert_not_null(root);
	json_object_object_del(root, "host");
	runs = json_object_object_get(root, "runs");
	for (size_t i = 0; i < json_object_array_length(runs); i++) {
		json_object *ru = json_object_array_get_idx(runs, i);
		json_object *en = json_object_object_get(ru, "engines");

		json_object_object_del(ru, "host");
		for (size_t k = 0; k < json_object_array_length(en); k++)
			json_object_object_del(json_object_array_get_idx(en, k), "host");
	}
	out = strdup(json_object_to_json_string(root));
	json_object_put(root);
	free(buf);
	return out;
}

Test(sched_model, same_seed_same_report)
{
	struct bench_scenario sc;
	char *a, *b, *c;

	load("interactive", &sc, 1);
	a = json_without_host(&sc, 7);
	b = json_without_host(&sc, 7);
	c = json_without_host(&sc, 8);
	cr_assert_str_eq(a, b);
	cr_assert_str_neq(a, c, "the seed changes the workload");
	cr_assert_not_null(strstr(a, "\"share\""));
	free(a);
	free(b);
	free(c);
	bench_scenario_free(&sc);
}

static void expect_error(const char *json, const char *needle)
{
	struct bench_scenario sc;
	char err[256] = "";

	cr_assert_eq(bench_scenario_parse(json, &sc, err, sizeof(err)), -EINVAL, "%s", json);
	cr_assert_not_null(strstr(err, needle), "'%s' lacks '%s'", err, needle);
	cr_assert_null(sc.tenants);
}

Test(sched_model, bad_scenarios_name_the_problem)
{
	expect_error("{", "not valid JSON");
	expect_error("[]", "JSON object");
	expect_error("{\"policy\": \"fast\", \"tenants\": []}", "unknown policy");
	expect_error("{\"slice_ms\": 50, \"tenants\": []}", "slice_ms");
	expect_error("{\"duration_s\": -1, \"tenants\": []}", "duration_s");
	expect_error("{}", "tenants");
	expect_error("{\"tenants\": []}", "1..4096 tenants");
	expect_error("{\"tenants\": [{\"gpu\": \"gpu9\", \"workload\": "
		     "{\"kernel_us\": 5}}]}", "no GPU named \"gpu9\"");
	expect_error("{\"tenants\": [{\"workload\": {\"kind\": \"spin\", "
		     "\"kernel_us\": 5}}]}", "unknown workload kind");
	expect_error("{\"tenants\": [{\"workload\": {}}]}", "kernel_us");
	expect_error("{\"tenants\": [{\"weight\": 0, \"workload\": "
		     "{\"kernel_us\": 5}}]}", "weight");
	expect_error("{\"tenants\": [{\"class\": \"vip\", \"workload\": "
		     "{\"kernel_us\": 5}}]}", "class \"vip\"");
	expect_error("{\"tenants\": [{\"reserve\": 2, \"workload\": "
		     "{\"kernel_us\": 5}}]}", "fraction");
	expect_error("{\"tenants\": [{\"workload\": {\"kind\": \"frames\", "
		     "\"frame_us\": 5}}]}", "fps");
	expect_error("{\"tenants\": [{\"workload\": {\"kernel_us\": "
		     "{\"dist\": \"uniform\", \"min\": 5, \"max\": 1}}}]}", "below min");
	expect_error("{\"tenants\": [{\"workload\": {\"kernel_us\": 1e30}}]}",
		     "above 3 hours");
	expect_error("{\"tenants\": [{\"workload\": {\"kernel_us\": 5, "
		     "\"preempt_us\": \"x\"}}]}", "preempt_us");
	expect_error("{\"tenants\": [{\"count\": 5000, \"workload\": "
		     "{\"kernel_us\": 5}}]}", "count");
	/* json-c reads NaN and Infinity; neither is a number here. */
	expect_error("{\"tenants\": [{\"reserve\": NaN, \"workload\": "
		     "{\"kernel_us\": 5}}]}", "reserve");
	expect_error("{\"duration_s\": Infinity, \"tenants\": []}", "duration_s");
	expect_error("{\"tenants\": [{\"workload\": {\"kernel_us\": NaN}}]}", "expected a number");
}

Test(sched_model, cost_model_turns_work_into_time)
{
	struct bench_scenario sc;
	char err[256];

	cr_assert_eq(bench_scenario_parse(
		"{\"gpus\": [{\"flops_per_s\": 2e12, \"copy_bytes_per_s\": 1048576e3}],"
		" \"tenants\": [{\"workload\": {\"kernel_gflop\": 4}},"
		" {\"workload\": {\"copy_mib\": 2}}]}", &sc, err, sizeof(err)), 0, "%s", err);
	cr_assert_float_eq(sc.tenants[0].wl.job.a, 2e6, 1e-3, "4 GFLOP at 2 TFLOP/s: 2 ms");
	cr_assert_float_eq(sc.tenants[1].wl.job.a, 2e6, 1e-3, "2 MiB at 1000 MiB/s: 2 ms");
	bench_scenario_free(&sc);
}

static int gpup(char *const *argv)
{
	const struct gpup_command *c = gpup_command_find("bench");
	struct gpup_global g = { .run_dir = "/nonexistent", .argv0 = "gpup" };
	int argc = 0;

	while (argv[argc])
		argc++;
	optind = 0;
	return c->main(&g, argc, (char **)argv);
}

Test(sched_model, command_line)
{
	char out[] = "/tmp/gpup-bench-test-XXXXXX";
	char json[600], md[600], svg[600];
	FILE *f;
	char head[8] = "";
	int fd = mkstemp(out);

	cr_assert_geq(fd, 0);
	close(fd);
	unlink(out);
	snprintf(json, sizeof(json), "%s.json", out);
	snprintf(md, sizeof(md), "%s.md", out);
	snprintf(svg, sizeof(svg), "%s.svg", out);
	cr_assert_eq(gpup((char *[]){ "bench", "x.json", NULL }), GPUP_EXIT_USAGE,
		     "vm mode needs the daemon");
	cr_assert_eq(gpup((char *[]){ "bench", "--model", "/nonexistent.json", NULL }),
		     GPUP_EXIT_USAGE);
	cr_assert_eq(gpup((char *[]){ "bench", "--model", "--seed", "x", "a", NULL }),
		     GPUP_EXIT_USAGE);
	cr_assert_eq(gpup((char *[]){ "bench", "--model", "--duration", "2",
				      "--json", json, "--report", md,
				      "samples/scenarios/interactive.json", NULL }),
		     GPUP_EXIT_OK);
	f = fopen(json, "r");
	cr_assert_not_null(f);
	cr_assert_eq(fread(head, 1, 1, f), 1);
	fclose(f);
	cr_assert_eq(head[0], '{');
	cr_assert_eq(access(md, R_OK), 0);
	cr_assert_eq(gpup((char *[]){ "bench", "--model", "--duration", "2",
				      "--plot", "x.pdf", "--report", md,
				      "samples/scenarios/interactive.json", NULL }),
		     GPUP_EXIT_USAGE, "only .svg and .png charts, refused before the run");
	if (system("command -v gnuplot >/dev/null 2>&1") == 0) {
		cr_assert_eq(gpup((char *[]){ "bench", "--model", "--duration", "2",
					      "--no-baselines", "--report", md, "--plot",
					      svg, "samples/scenarios/interactive.json",
					      NULL }), GPUP_EXIT_OK);
		cr_assert_eq(access(svg, R_OK), 0);
		unlink(svg);
	}
	unlink(json);
	unlink(md);
}
