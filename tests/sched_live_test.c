// SPDX-License-Identifier: MIT
/*
 * `gpup bench --live` against a running daemon: one partition per tenant
 * driven over vfio-user, the scenario's policy and its baselines in turn,
 * a JSON report with every tenant's engine time and frames, and nothing
 * left behind; and the clear errors without a daemon or with two modes.
 */
#include <criterion/criterion.h>
#include <json-c/json.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "tests/daemonlib.h"
#include "tests/testlib.h"

static char dir[64];

static int gpup(char *out, size_t len, const char *args)
{
	return tl_gpup(dir, out, len, args);
}

/* Runs even when an assertion ended the test: no daemon is left behind. */
static void stop_daemon(void)
{
	dl_teardown_dir(dir);
}

TestSuite(sched_live, .fini = stop_daemon);

static json_object *get(json_object *o, const char *k)
{
	json_object *v = NULL;

	cr_assert(json_object_object_get_ex(o, k, &v), "no %s", k);
	return v;
}

Test(sched_live, a_scenario_on_a_running_daemon)
{
	char out[8192], args[512];
	json_object *j, *runs, *tenants;

	snprintf(dir, sizeof(dir), "/tmp/gpup-live-XXXXXX");
	cr_assert_not_null(mkdtemp(dir));
	cr_assert_eq(gpup(out, sizeof(out), "bench samples/scenarios/interactive.json --live"), 1);
	cr_assert_not_null(strstr(out, "gpup bench: live: no daemon at"), "%s", out);
	cr_assert_eq(gpup(out, sizeof(out), "bench samples/scenarios/interactive.json --live "
			  "--model"), 2);
	snprintf(args, sizeof(args), "daemon --detach --state-dir %s/state --sim-gpus 1 --vram 1G", dir);
	cr_assert_eq(gpup(out, sizeof(out), args), 0, "%s", out);
	snprintf(args, sizeof(args), "bench samples/scenarios/interactive.json --live "
		 "--duration 0.5 --json %s/live.json --report %s/live.md", dir, dir);
	cr_assert_eq(gpup(out, sizeof(out), args), 0, "%s", out);
	snprintf(args, sizeof(args), "%s/live.json", dir);
	j = json_object_from_file(args);
	cr_assert_not_null(j);
	cr_assert_str_eq(json_object_get_string(get(j, "mode")), "live");
	runs = get(j, "runs");
	cr_assert_eq(json_object_array_length(runs), 3, "weighted, best-effort, fifo");
	cr_assert_str_eq(json_object_get_string(get(json_object_array_get_idx(runs, 0),
						    "policy")), "weighted");
	tenants = get(json_object_array_get_idx(runs, 0), "tenants");
	cr_assert_eq(json_object_array_length(tenants), 8);
	cr_assert_geq(json_object_get_int(get(json_object_array_get_idx(tenants, 0), "frames")),
		      5, "the VDI tenant rendered");
	for (int i = 1; i < 8; i++)
		cr_assert_gt(json_object_get_double(get(json_object_array_get_idx(tenants, i),
							"engine_ms")), 0, "bulk-%d ran", i - 1);
	json_object_put(j);
	cr_assert_eq(gpup(out, sizeof(out), "list"), 0, "%s", out);
	cr_assert_not_null(strstr(out, "no partitions"), "left behind: %s", out);
}
