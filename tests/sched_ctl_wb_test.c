// SPDX-License-Identifier: MIT
/*
 * The scheduler's control-API methods, called directly (white box: they
 * are the daemon room's, declared in gpup/daemon/daemon_int.h): "sched"
 * puts a sim GPU's engines under a policy while a context burns engine
 * time on them, "stats" reports it, bad requests get their errno code and
 * change nothing; and `gpup sched` / `gpup stats` against a running
 * daemon.
 */
#include <criterion/criterion.h>
#include <math.h>
#include <json-c/json.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "tests/daemonlib.h"
#include "tests/testlib.h"

#include "gpup/ctl/ctl.h"
#include "gpup/daemon/daemon_int.h"
#include "gpup/gpu/gpu.h"
#include "uapi/gpup_ctl.h"

#define MS 1000000ull

static struct gpup_pool pool;
static struct gpup_gpu *gpu;

static void setup(void)
{
	struct gpup_gpu_cfg cfg = { .vram_size = 64ull << 20, .ncompute = 1, .ncopy = 1 };

	gpu = gpup_sim_gpu_create(&cfg);
	cr_assert_not_null(gpu);
	gpup_pool_init(&pool, NULL);
	cr_assert_eq(gpup_pool_add_gpu(&pool, "gpu0", "sim", "sim", 64ull << 20, 1, 1, gpu), 0);
}

static void teardown(void)
{
	gpup_pool_fini(&pool);
	gpup_gpu_destroy(gpu);
}

TestSuite(sched_ctl, .init = setup, .fini = teardown, .timeout = 30);

static json_object *call(json_object *(*fn)(struct gpup_pool *, json_object *),
			 const char *method, const char *gpu_name, const char *policy,
			 int64_t slice)
{
	json_object *req = gpup_ctl_request(method), *r;

	if (gpu_name)
		json_object_object_add(req, GPUP_CTL_F_GPU, json_object_new_string(gpu_name));
	if (policy)
		json_object_object_add(req, GPUP_CTL_F_POLICY, json_object_new_string(policy));
	json_object_object_add(req, GPUP_CTL_F_SLICE_NS, json_object_new_int64(slice));
	r = fn(&pool, req);
	json_object_put(req);
	cr_assert_not_null(r);
	return r;
}

static json_object *path(json_object *o, const char *key, int idx)
{
	json_object *v = NULL;

	cr_assert(json_object_object_get_ex(o, key, &v), "no %s", key);
	return idx < 0 ? v : json_object_array_get_idx(v, (size_t)idx);
}

static enum gpup_run_result burn(struct gpup_ectx *c, uint64_t deadline)
{
	(void)c;
	while (gpup_thread_cpu_ns() < deadline)
		;
	return GPUP_RUN_MORE;
}

static const struct gpup_ectx_ops burn_ops = { .run = burn };

Test(sched_ctl, sched_switches_a_busy_gpu_and_stats_shows_it)
{
	struct gpup_ectx c = { .ops = &burn_ops, .doorbell_fd = -1, .weight = 2 };
	struct gpup_engine *e = gpup_gpu_engine(gpu, GPUP_ENGINE_KIND_COMPUTE, 0);
	json_object *r, *eng, *ctx;

	cr_assert_eq(gpup_engine_attach(e, &c), 0);
	gpup_ectx_kick(&c);
	usleep(20000);
	r = call(gpup_tsched_ctl_sched, GPUP_CTL_M_SCHED, "gpu0", "equal-share", 500000);
	cr_assert(json_object_get_boolean(path(r, GPUP_CTL_F_OK, -1)),
		  "%s", json_object_to_json_string(r));
	cr_assert_eq(gpup_ctl_int(r, GPUP_CTL_F_ENGINES, 0), 2);
	json_object_put(r);
	usleep(50000);
	r = call(gpup_tsched_ctl_stats, GPUP_CTL_M_STATS, NULL, NULL, 0);
	eng = path(path(r, GPUP_CTL_F_GPUS, 0), GPUP_CTL_F_ENGINES, 0);
	cr_assert_str_eq(gpup_ctl_str(eng, GPUP_CTL_F_SCHEDULER, ""), "tslice");
	cr_assert_str_eq(gpup_ctl_str(eng, GPUP_CTL_F_POLICY, ""), "equal-share");
	cr_assert_eq(gpup_ctl_int(eng, GPUP_CTL_F_SLICE_NS, 0), 500000);
	ctx = path(eng, GPUP_CTL_F_CONTEXTS, 0);
	cr_assert_not_null(ctx, "the running context moved to the new scheduler");
	cr_assert_gt(gpup_ctl_int(ctx, "slices", 0), 5);
	cr_assert_gt(gpup_ctl_int(ctx, "engine_ns", 0), 2 * MS);
	cr_assert_str_eq(gpup_ctl_str(path(path(r, GPUP_CTL_F_GPUS, 0), GPUP_CTL_F_ENGINES, 1),
				      GPUP_CTL_F_KIND, ""), "copy");
	json_object_put(r);
	gpup_engine_detach(&c);
}

/* A budget on a real executor: the holder is served within its budget
 * every period and queues by weight past it, the other context keeps
 * running, and stats shows the holder's budget and its waits. */
Test(sched_ctl, a_budget_holder_on_a_running_engine)
{
	struct gpup_ectx bulk = { .ops = &burn_ops, .doorbell_fd = -1, .weight = 1 };
	struct gpup_ectx desk = { .ops = &burn_ops, .doorbell_fd = -1, .weight = 1 };
	struct sched_ctx_cfg cfg = { .weight = 1, .klass = SCHED_CLASS_INTERACTIVE,
				     .fps_limit = 100, .budget_us = 2000 };
	struct gpup_engine *e = gpup_gpu_engine(gpu, GPUP_ENGINE_KIND_COMPUTE, 0);
	json_object *r, *eng, *c0, *c1, *h;

	json_object_put(call(gpup_tsched_ctl_sched, GPUP_CTL_M_SCHED, "gpu0", "weighted",
			     1000000));
	cr_assert_eq(gpup_engine_attach(e, &bulk), 0);
	cr_assert_eq(gpup_engine_attach(e, &desk), 0);
	cr_assert_eq(gpup_tsched_set_ctx(e, &desk, &cfg), 0);
	gpup_ectx_kick(&bulk);
	gpup_ectx_kick(&desk);
	usleep(200000);
	r = call(gpup_tsched_ctl_stats, GPUP_CTL_M_STATS, NULL, NULL, 0);
	eng = path(path(r, GPUP_CTL_F_GPUS, 0), GPUP_CTL_F_ENGINES, 0);
	cr_assert_eq(gpup_ctl_int(eng, "budgets", 0), 1);
	cr_assert_eq(gpup_ctl_int(eng, "budget_quantum_ns", 0), 1000000);
	c0 = path(eng, GPUP_CTL_F_CONTEXTS, 0);
	c1 = path(eng, GPUP_CTL_F_CONTEXTS, 1);
	h = gpup_ctl_int(c0, GPUP_CTL_F_BUDGET_US, 0) ? c0 : c1;
	cr_assert_eq(gpup_ctl_int(h, GPUP_CTL_F_BUDGET_US, 0), 2000);
	cr_assert_eq(gpup_ctl_int(h, GPUP_CTL_F_FPS_LIMIT, 0), 100);
	cr_assert_gt(gpup_ctl_int(h, "budget_waits", 0), 0, "%s",
		     json_object_to_json_string(h));
	cr_assert_gt(gpup_ctl_int(h, "budget_exhausted", 0), 0, "busy past its budget");
	cr_assert_gt(gpup_ctl_int(h == c0 ? c1 : c0, "engine_ns", 0), 10 * MS, "nobody starves");
	json_object_put(r);
	gpup_engine_detach(&desk);
	gpup_engine_detach(&bulk);
}

static void expect_fail(json_object *r, const char *code, const char *words)
{
	cr_assert(!json_object_get_boolean(path(r, GPUP_CTL_F_OK, -1)));
	cr_assert_str_eq(gpup_ctl_str(r, GPUP_CTL_F_CODE, ""), code);
	cr_assert_not_null(strstr(gpup_ctl_str(r, GPUP_CTL_F_ERROR, ""), words), "%s",
			   gpup_ctl_str(r, GPUP_CTL_F_ERROR, ""));
	json_object_put(r);
}

Test(sched_ctl, bad_requests_change_nothing)
{
	json_object *r, *eng;

	expect_fail(call(gpup_tsched_ctl_sched, GPUP_CTL_M_SCHED, NULL, "weighted", 0),
		    "EINVAL", "needs a \"gpu\"");
	expect_fail(call(gpup_tsched_ctl_sched, GPUP_CTL_M_SCHED, "gpu3", "weighted", 0),
		    "ENODEV", "no GPU 'gpu3'");
	expect_fail(call(gpup_tsched_ctl_sched, GPUP_CTL_M_SCHED, "gpu0", "lottery", 0),
		    "EINVAL", "unknown policy 'lottery'");
	expect_fail(call(gpup_tsched_ctl_sched, GPUP_CTL_M_SCHED, "gpu0", "fifo", 99 * MS),
		    "EINVAL", "0.1 to 30 ms");
	r = gpup_ctl_request(GPUP_CTL_M_SCHED);
	json_object_object_add(r, GPUP_CTL_F_GPU, json_object_new_string("gpu0"));
	json_object_object_add(r, GPUP_CTL_F_POLICY, json_object_new_string("fifo"));
	json_object_object_add(r, GPUP_CTL_F_WATCHDOG_NS, json_object_new_int64(4e12));
	{
		json_object *reply = gpup_tsched_ctl_sched(&pool, r);

		json_object_put(r);
		expect_fail(reply, "EINVAL", "watchdog must be at most an hour");
	}
	/* NaN and infinities are no fractions (NaN used to pass as 0). */
	for (int i = 0; i < 3; i++) {
		json_object *reply;

		r = gpup_ctl_request(GPUP_CTL_M_SCHED);
		json_object_object_add(r, i == 2 ? GPUP_CTL_F_CAP : GPUP_CTL_F_RESERVE,
				       json_object_new_double(i == 0 ? NAN : i == 1 ? INFINITY
										   : -INFINITY));
		/* Refused before the partition is looked at. */
		reply = gpup_tsched_ctl_part(&pool, NULL, NULL, r);
		json_object_put(r);
		expect_fail(reply, "EINVAL", "fractions of the engine");
	}
	expect_fail(call(gpup_tsched_ctl_stats, GPUP_CTL_M_STATS, "gpu3", NULL, 0),
		    "ENODEV", "no GPU");
	r = call(gpup_tsched_ctl_stats, GPUP_CTL_M_STATS, "gpu0", NULL, 0);
	eng = path(path(r, GPUP_CTL_F_GPUS, 0), GPUP_CTL_F_ENGINES, 0);
	cr_assert_str_eq(gpup_ctl_str(eng, GPUP_CTL_F_SCHEDULER, ""), "tslice");
	cr_assert_str_eq(gpup_ctl_str(eng, GPUP_CTL_F_POLICY, ""), "best-effort",
			 "still a new engine's default");
	json_object_put(r);
}

/* With a state directory, the settings are saved before they are applied;
 * when they cannot be saved, the reply says so and nothing changes. */
Test(sched_ctl, settings_are_saved_before_they_apply)
{
	char sd[64], buf[128];
	struct gpup_gpu_sched got;
	json_object *r, *eng;
	FILE *f;

	snprintf(sd, sizeof(sd), "/tmp/gpup-schedsave-XXXXXX");
	cr_assert_not_null(mkdtemp(sd));
	gpup_pool_fini(&pool);
	gpup_pool_init(&pool, sd);
	cr_assert_eq(gpup_pool_add_gpu(&pool, "gpu0", "sim", "sim", 64ull << 20, 1, 1, gpu), 0);
	r = gpup_ctl_request(GPUP_CTL_M_SCHED);
	json_object_object_add(r, GPUP_CTL_F_GPU, json_object_new_string("gpu0"));
	json_object_object_add(r, GPUP_CTL_F_POLICY, json_object_new_string("fixed-share"));
	json_object_object_add(r, GPUP_CTL_F_WATCHDOG_NS, json_object_new_int64(300 * MS));
	json_object_put(gpup_tsched_ctl_sched(&pool, r));
	json_object_put(r);
	cr_assert_eq(gpup_pool_gpu_sched_load(&pool, "gpu0", &got), 0);
	cr_assert_eq(got.policy, SCHED_POLICY_FIXED_SHARE);
	cr_assert_eq(got.slice_ns, 0);
	cr_assert_eq(got.watchdog_ns, 300 * MS);
	/* a file where the directory should be: the save fails (ENOTDIR) */
	snprintf(buf, sizeof(buf), "rm -r %s/gpus", sd);
	cr_assert_eq(system(buf), 0);
	snprintf(buf, sizeof(buf), "%s/gpus", sd);
	cr_assert_not_null(f = fopen(buf, "w"));
	fclose(f);
	expect_fail(call(gpup_tsched_ctl_sched, GPUP_CTL_M_SCHED, "gpu0", "fifo", 0), "EIO",
		    "cannot save gpu0's scheduler settings in");
	r = call(gpup_tsched_ctl_stats, GPUP_CTL_M_STATS, NULL, NULL, 0);
	eng = path(path(r, GPUP_CTL_F_GPUS, 0), GPUP_CTL_F_ENGINES, 0);
	cr_assert_str_eq(gpup_ctl_str(eng, GPUP_CTL_F_POLICY, ""), "fixed-share", "unchanged");
	cr_assert_eq(gpup_ctl_int(eng, GPUP_CTL_F_WATCHDOG_NS, 0), 300 * MS);
	cr_assert_eq(pool.gpus[0].sched.policy, SCHED_POLICY_FIXED_SHARE);
	json_object_put(r);
	snprintf(buf, sizeof(buf), "rm -r %s", sd);
	cr_assert_eq(system(buf), 0);
}

/* ---- the commands against a daemon ---- */

static char dir[64];

static int gpup(char *out, size_t len, const char *args)
{
	return tl_gpup(dir, out, len, args);
}

static FILE *exercise(const char *uuid)
{
	char cmd[512];

	snprintf(cmd, sizeof(cmd), "%s --run-dir %s/run exercise %s --size 8M 2>&1",
		 getenv("GPUP_BIN"), dir, uuid);
	return popen(cmd, "r");
}

/* Two partitions busy (as a guest driver would make them), the policy
 * changed three times under them: both finish bit-exact, and the last
 * scheduler of both engines did the picking. */
static void switch_under_load(char *out, size_t len)
{
	static const char *const pol[] = { "sched --gpu gpu0 --policy equal-share --slice 0.5 "
					   "--watchdog 0",
					   "sched --gpu gpu0 --policy fifo",
					   "sched --gpu gpu0 --policy best-effort --slice 2" };
	char uuid[2][64], buf[4096];
	FILE *ex[2];
	json_object *j, *eng;

	for (int i = 0; i < 2; i++) {
		cr_assert_eq(gpup(out, len, "create --type sim-32m-4"), 0, "%s", out);
		cr_assert_eq(sscanf(out, "%63s", uuid[i]), 1);
	}
	for (int i = 0; i < 2; i++)
		cr_assert_not_null(ex[i] = exercise(uuid[i]));
	for (int i = 0; i < 3; i++) {
		usleep(20000);
		cr_assert_eq(gpup(out, len, pol[i]), 0, "%s", out);
	}
	for (int i = 0; i < 2; i++) {
		size_t n = fread(buf, 1, sizeof(buf) - 1, ex[i]);

		buf[n] = '\0';
		cr_assert_eq(pclose(ex[i]), 0, "%s", buf);
		cr_assert_not_null(strstr(buf, "bit-exact"), "%s", buf);
	}
	cr_assert_eq(gpup(out, len, "stats --gpu gpu0 --json"), 0, "%s", out);
	j = json_tokener_parse(out);
	for (int e = 0; e < 2; e++) {
		eng = path(path(j, GPUP_CTL_F_GPUS, 0), GPUP_CTL_F_ENGINES, e);
		cr_assert_str_eq(gpup_ctl_str(eng, GPUP_CTL_F_POLICY, ""), "best-effort");
		cr_assert_gt(gpup_ctl_int(eng, "picks", 0), 0, "the scheduler picked");
		cr_assert_gt(gpup_ctl_int(eng, GPUP_CTL_F_BUSY_NS, 0), 0);
	}
	json_object_put(j);
}

/* Per-partition settings: exact replies, and the daemon's refusals. */
static void partition_settings(char *out, size_t len)
{
	char uuid[64], args[256];

	cr_assert_eq(gpup(out, len, "create --type sim-32m-4"), 0, "%s", out);
	cr_assert_eq(sscanf(out, "%63s", uuid), 1);
	snprintf(args, sizeof(args), "sched --partition %s --weight 4 --cap 0.5 "
		 "--class interactive --fps 60", uuid);
	cr_assert_eq(gpup(out, len, args), 0, "%s", out);
	snprintf(args, sizeof(args), "%s: weight 4, reserve 0, cap 0.5, class interactive, "
		 "fps limit 60, budget 0 ms\n", uuid);
	cr_assert_str_eq(out, args);
	snprintf(args, sizeof(args), "sched --partition %s --cap 2", uuid);
	cr_assert_eq(gpup(out, len, args), 2);
	cr_assert_str_eq(out, "gpup sched: reserve and cap are fractions of the engine, "
			      "0 to 1\n");
	snprintf(args, sizeof(args), "sched --partition %s --class vip", uuid);
	cr_assert_eq(gpup(out, len, args), 2);
	cr_assert_str_eq(out, "gpup sched: class is normal or interactive\n");
	snprintf(args, sizeof(args), "sched --partition %s", uuid);
	cr_assert_eq(gpup(out, len, args), 2, "settings needed");
	cr_assert_eq(gpup(out, len, "sched --partition 00000000-0000-0000-0000-000000000000 "
			  "--weight 2"), 2);
	cr_assert_not_null(strstr(out, "no partition"), "%s", out);
	cr_assert_eq(gpup(out, len, "sched --partition x --weight two"), 2);
	cr_assert_str_eq(out, "gpup sched: 'two' is not a number\n");
	snprintf(args, sizeof(args), "sched --partition %s --reserve nan", uuid);
	cr_assert_eq(gpup(out, len, args), 2);
	cr_assert_str_eq(out, "gpup sched: 'nan' is not a number\n");
	cr_assert_eq(gpup(out, len, "sched --gpu gpu0 --policy fifo --slice inf"), 2);
	cr_assert_str_eq(out, "gpup sched: 'inf' is not a number\n");
}

/* Runs even when an assertion ended the test: no daemon is left behind. */
static void cli_teardown(void)
{
	dl_teardown_dir(dir);
}

TestSuite(sched_cli, .fini = cli_teardown);

Test(sched_cli, commands_against_a_daemon)
{
	char out[16384], args[256];
	json_object *j;

	snprintf(dir, sizeof(dir), "/tmp/gpup-schedctl-XXXXXX");
	cr_assert_not_null(mkdtemp(dir));
	snprintf(args, sizeof(args), "daemon --detach --state-dir %s/state --sim-gpus 1 --vram 128M", dir);
	cr_assert_lt(strlen(dir) + 32, sizeof(args));
	cr_assert_eq(gpup(out, sizeof(out), args), 0, "%s", out);
	cr_assert_eq(gpup(out, sizeof(out), "sched --gpu gpu0 --policy weighted --slice 1 "
			  "--watchdog 500"), 0, "%s", out);
	cr_assert_str_eq(out, "gpu0: weighted on 2 engine(s), slice 1.00 ms\n");
	cr_assert_eq(gpup(out, sizeof(out), "stats --json"), 0, "%s", out);
	j = json_tokener_parse(out);
	cr_assert_not_null(j, "%s", out);
	cr_assert_str_eq(gpup_ctl_str(path(path(j, GPUP_CTL_F_GPUS, 0), GPUP_CTL_F_ENGINES, 0),
				      GPUP_CTL_F_POLICY, ""), "weighted");
	cr_assert_eq(gpup_ctl_int(path(path(j, GPUP_CTL_F_GPUS, 0), GPUP_CTL_F_ENGINES, 1),
				  GPUP_CTL_F_WATCHDOG_NS, 0), 500 * MS);
	cr_assert_eq(gpup(out, sizeof(out), "sched --gpu gpu0 --policy fifo --watchdog -3"), 2);
	json_object_put(j);
	cr_assert_eq(gpup(out, sizeof(out), "sched --gpu gpu0 --policy nope"), 2);
	cr_assert_str_eq(out, "gpup sched: unknown policy 'nope' (fifo, best-effort, "
			      "equal-share, fixed-share, weighted)\n");
	cr_assert_eq(gpup(out, sizeof(out), "sched --gpu gpu9 --policy fifo"), 2);
	cr_assert_str_eq(out, "gpup sched: no GPU 'gpu9'; see 'gpup gpus'\n");
	cr_assert_eq(gpup(out, sizeof(out), "sched --policy fifo"), 2);
	switch_under_load(out, sizeof(out));
	partition_settings(out, sizeof(out));
}

static void restart_daemon(char *out, size_t len, const char *args)
{
	char path[128];
	FILE *f;
	int pid = 0;

	snprintf(path, sizeof(path), "%s/run/gpup.pid", dir);
	cr_assert_not_null(f = fopen(path, "r"));
	cr_assert_eq(fscanf(f, "%d", &pid), 1);
	fclose(f);
	cr_assert_eq(kill(pid, SIGTERM), 0);
	for (int i = 0; i < 300 && kill(pid, 0) == 0; i++)
		usleep(10000);
	cr_assert_neq(kill(pid, 0), 0, "the daemon did not stop");
	cr_assert_eq(gpup(out, len, args), 0, "%s", out);
}

/* A partition's settings, saved before a restart, are what the engines'
 * schedulers give its queues after it: the guest need not set them again. */
Test(sched_cli, restored_settings_reach_the_engines)
{
	char out[16384], args[256], cmd[256], uuid[64];
	unsigned int seen = 0;
	json_object *j;

	snprintf(dir, sizeof(dir), "/tmp/gpup-schedctl-XXXXXX");
	cr_assert_not_null(mkdtemp(dir));
	snprintf(args, sizeof(args), "daemon --detach --state-dir %s/state --sim-gpus 1 --vram 128M", dir);
	cr_assert_eq(gpup(out, sizeof(out), args), 0, "%s", out);
	cr_assert_eq(gpup(out, sizeof(out), "create --type sim-32m-4"), 0, "%s", out);
	cr_assert_eq(sscanf(out, "%63s", uuid), 1);
	snprintf(cmd, sizeof(cmd), "sched --partition %s --weight 5 --class interactive", uuid);
	cr_assert_eq(gpup(out, sizeof(out), cmd), 0, "%s", out);
	restart_daemon(out, sizeof(out), args);
	snprintf(cmd, sizeof(cmd), "exercise %s --size 1M", uuid);
	cr_assert_eq(gpup(out, sizeof(out), cmd), 0, "%s", out);
	cr_assert_eq(gpup(out, sizeof(out), "stats --json"), 0, "%s", out);
	j = json_tokener_parse(out);
	cr_assert_not_null(j, "%s", out);
	for (int e = 0; e < 2; e++) {
		json_object *ctx, *eng = path(path(j, GPUP_CTL_F_GPUS, 0), GPUP_CTL_F_ENGINES, e);

		for (int i = 0; (ctx = path(eng, GPUP_CTL_F_CONTEXTS, i)); i++, seen++) {
			cr_assert_str_eq(gpup_ctl_str(ctx, GPUP_CTL_F_UUID, ""), uuid);
			cr_assert_eq(gpup_ctl_int(ctx, GPUP_CTL_F_WEIGHT, 0), 5);
			cr_assert_str_eq(gpup_ctl_str(ctx, GPUP_CTL_F_CLASS, ""), "interactive");
		}
	}
	cr_assert_gt(seen, 0, "the exercise's queues are on the engines: %s", out);
	json_object_put(j);
}
