// SPDX-License-Identifier: MIT
/*
 * Definitions through the CLI against a running daemon, as mdevctl's
 * define/undefine/start: a defined partition is not served until `gpup
 * start`; --start auto ones come back at a restart, manual ones stay
 * defined and idle; undefine leaves a running partition running,
 * transient, gone at the next restart.  And a daemon started on a state
 * directory of the previous layout upgrades it and serves what it held.
 */
#include <criterion/criterion.h>
#include <json-c/json.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tests/daemonlib.h"
#include "tests/testlib.h"

#define UA "aaaaaaaa-0000-4000-8000-000000000001"
#define UB "aaaaaaaa-0000-4000-8000-000000000002"
#define UF "11111111-2222-4333-8444-000000000002"  /* in the fixture */

static struct dl_daemon dmn;
static char out[16384];

static void start(const char *gpus, const char *vram)
{
	const char *args[] = { "--sim-gpus", gpus, "--vram", vram, NULL };
	struct dl_opts o = { .dir = dmn.dir[0] ? dmn.dir : NULL, .name = "gpup-define",
			     .args = args, .log = true };

	cr_assert_eq(dl_start(&dmn, &o), 0, "the daemon did not start; see %s", dmn.log);
}

static void teardown(void)
{
	dl_teardown(&dmn);
	memset(&dmn, 0, sizeof(dmn));
}

TestSuite(daemon_define, .fini = teardown, .timeout = 60);

static int gpup(const char *args)
{
	return tl_gpup(dmn.dir, out, sizeof(out), args);
}

/* Partition uuid of `gpup list --json`, or NULL. */
static json_object *listed(const char *uuid)
{
	static json_object *last;
	json_object *a, *v;

	json_object_put(last);
	cr_assert_eq(gpup("list --json"), 0, "%s", out);
	last = json_tokener_parse(out);
	cr_assert(last && json_object_object_get_ex(last, "partitions", &a), "%s", out);
	for (size_t i = 0; i < json_object_array_length(a); i++) {
		json_object *p = json_object_array_get_idx(a, i);

		if (json_object_object_get_ex(p, "uuid", &v) &&
		    !strcmp(json_object_get_string(v), uuid))
			return p;
	}
	return NULL;
}

static void assert_state(const char *uuid, bool defined, const char *start, bool running)
{
	json_object *p = listed(uuid), *v;

	cr_assert_not_null(p, "%s is not listed: %s", uuid, out);
	cr_assert(json_object_object_get_ex(p, "defined", &v));
	cr_assert_eq(json_object_get_boolean(v), defined, "%s defined", uuid);
	cr_assert(json_object_object_get_ex(p, "start", &v));
	if (start)
		cr_assert_str_eq(json_object_get_string(v), start);
	else
		cr_assert_null(v, "a transient partition has no start");
	cr_assert(json_object_object_get_ex(p, "running", &v));
	cr_assert_eq(json_object_get_boolean(v), running, "%s running", uuid);
	cr_assert(json_object_object_get_ex(p, "socket", &v));
	cr_assert_eq(v != NULL, running, "a socket exactly while running");
}

static bool def_file(const char *gpu, const char *uuid, const char *needle)
{
	char path[PATH_MAX], text[2048];

	snprintf(path, sizeof(path), "%s/definitions/%s/%s", dmn.state_dir, gpu, uuid);
	if (access(path, F_OK))
		return false;
	tl_slurp(path, text, sizeof(text));
	cr_assert(strstr(text, needle), "%s: %s", path, text);
	return true;
}

Test(daemon_define, define_start_undefine)
{
	char want[256];

	start("2", "64M");
	cr_assert_eq(gpup("define --type sim-16m-4 --gpu gpu0 --uuid " UA), 0, "%s", out);
	cr_assert_str_eq(out, UA "\n");
	cr_assert(def_file("gpu0", UA, "\"start\":\"manual\""));
	assert_state(UA, true, "manual", false);
	cr_assert_eq(gpup("list"), 0, "%s", out);
	cr_assert(strstr(out, "(defined, start manual: not running)\n"), "%s", out);
	cr_assert_eq(gpup("start " UA), 0, "%s", out);
	cr_assert_str_eq(out, "");
	assert_state(UA, true, "manual", true);
	cr_assert_eq(gpup("start " UA), 2);
	cr_assert_str_eq(out, "gpup start: partition " UA " is already running\n");
	cr_assert_eq(gpup("define --uuid " UA " --start auto"), 0, "%s", out);
	cr_assert(def_file("gpu0", UA, "\"start\":\"auto\""));
	cr_assert_eq(gpup("undefine " UA " --json"), 0, "%s", out);
	snprintf(want, sizeof(want), "{\n  \"uuid\": \"%s\",\n  \"running\": true\n}\n",
		 UA);
	cr_assert_str_eq(out, want);
	cr_assert_not(def_file("gpu0", UA, ""), "the definition is gone");
	assert_state(UA, false, NULL, true);
	cr_assert_eq(gpup("undefine " UA), 2);
	cr_assert_str_eq(out, "gpup undefine: partition " UA " has no definition (it is "
			      "transient)\n");

	/* A restart: the transient one is gone, the manual one is back, idle. */
	cr_assert_eq(gpup("define --type sim-16m-4 --gpu gpu1 --uuid " UB), 0, "%s", out);
	cr_assert_eq(dl_stop(&dmn), 0);
	start("2", "64M");
	cr_assert_null(listed(UA), "%s", out);
	assert_state(UB, true, "manual", false);
	cr_assert_eq(gpup("undefine " UB), 0, "%s", out);
	cr_assert_null(listed(UB), "not running and undefined: nothing is left");
	cr_assert_not(def_file("gpu1", UB, ""));
	cr_assert_eq(gpup("types --gpu gpu1 --json"), 0, "%s", out);
	cr_assert(strstr(out, "\"available_instances\": 4"), "its slot is free: %s", out);
}

Test(daemon_define, bad_requests)
{
	start("1", "64M");
	cr_assert_eq(gpup("define"), 2);
	cr_assert_str_eq(out, "gpup define: give --type NAME (a new definition) or --uuid UUID "
			      "alone (a running partition); see 'gpup types'\n");
	cr_assert_eq(gpup("define --type sim-16m-4 --start sometimes"), 2);
	cr_assert_str_eq(out, "gpup define: --start is auto or manual\n");
	cr_assert_eq(gpup("define --type sim-99m-4"), 2);
	cr_assert_str_eq(out, "gpup define: no GPU offers type 'sim-99m-4'; see 'gpup types'\n");
	cr_assert_eq(gpup("define --uuid " UA), 2);
	cr_assert_str_eq(out, "gpup define: no partition " UA "; give a type to define a new "
			      "one\n");
	cr_assert_eq(gpup("start " UA), 2);
	cr_assert_str_eq(out, "gpup start: no partition " UA "; see 'gpup list'\n");
	cr_assert_eq(gpup("start"), 2);
	cr_assert_str_eq(out, "gpup start: give exactly one partition UUID; see 'gpup list'\n");
	cr_assert_eq(gpup("undefine not-a-uuid"), 2);
	cr_assert_str_eq(out, "gpup undefine: undefine needs a partition UUID\n");
	cr_assert_eq(gpup("list"), 0);
	cr_assert_str_eq(out, "no partitions; create one with 'gpup create --type NAME'\n");
}

/* `gpup create` is define --start auto and start in one, as before. */
Test(daemon_define, create_is_defined_with_start_auto)
{
	start("1", "64M");
	cr_assert_eq(gpup("create --type sim-16m-4 --uuid " UA), 0, "%s", out);
	assert_state(UA, true, "auto", true);
	cr_assert(def_file("gpu0", UA, "\"start\":\"auto\""));
	cr_assert_eq(dl_stop(&dmn), 0);
	start("1", "64M");
	assert_state(UA, true, "auto", true);
}

/* The daemon upgrades the previous release's state directory on start
 * and serves what it held; a newer format stops the start. */
Test(daemon_define, start_upgrades_the_previous_layout)
{
	char cmd[PATH_MAX], log[16384];
	json_object *p, *v;

	start("1", "64M");
	cr_assert_eq(dl_stop(&dmn), 0);
	snprintf(cmd, sizeof(cmd), "cp -r tests/fixtures/state-v1/partitions "
		 "tests/fixtures/state-v1/gpus %s/ && rm -f %s/format", dmn.state_dir,
		 dmn.state_dir);
	cr_assert_eq(system(cmd), 0);
	start("2:gen2,1:gen1", "1G");
	p = listed(UF);
	cr_assert_not_null(p, "%s", out);
	cr_assert(json_object_object_get_ex(p, "weight", &v) && json_object_get_int(v) == 4);
	cr_assert(json_object_object_get_ex(p, "compat", &v));
	cr_assert_str_eq(json_object_get_string(v), "gen1");
	assert_state(UF, true, "auto", true);
	cr_assert(def_file("gpu1", UF, "\"sched_class\":\"interactive\""));
	snprintf(cmd, sizeof(cmd), "%s/partitions", dmn.state_dir);
	cr_assert_neq(access(cmd, F_OK), 0);
	tl_slurp(dmn.log, log, sizeof(log));
	cr_assert(strstr(log, " upgraded to format 2\n"), "%s", log);
	cr_assert_eq(dl_stop(&dmn), 0);
	snprintf(cmd, sizeof(cmd), "echo 3 > %s/format", dmn.state_dir);
	cr_assert_eq(system(cmd), 0);
	const char *args[] = { "--sim-gpus", "1", NULL };
	struct dl_opts o = { .dir = dmn.dir, .args = args, .log = true };

	cr_assert_neq(dl_start(&dmn, &o), 0, "a newer format is refused");
	tl_slurp(dmn.log, log, sizeof(log));
	cr_assert(strstr(log, "/format: the state directory is of a newer release's format; run "
			      "that release\n"), "%s", log);
}
