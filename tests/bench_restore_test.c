// SPDX-License-Identifier: MIT
/*
 * A benchmark leaves a running daemon as it found it: after `gpup bench
 * --live` (and vm mode on a daemon it did not start), ended normally or
 * by SIGINT, the GPU's policy, slice (the adaptive default included) and
 * watchdog are what they were, another partition keeps its settings, the
 * state directory holds the same bytes, and no partition of the run is
 * left.  Also: the exit statuses of a run, a misspelt scenario key, and a
 * --plot name refused before anything runs.
 */
#include <criterion/criterion.h>
#include <json-c/json.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "tests/daemonlib.h"
#include "tests/testlib.h"

static char dir[64];

static int gpup(char *out, size_t len, const char *args)
{
	return tl_gpup(dir, out, len, args);
}

static void stop_daemon(void)
{
	dl_teardown_dir(dir);
}

TestSuite(bench_restore, .fini = stop_daemon, .timeout = 180);

/* Every file of the state directory, names and contents, in one string. */
static void state_bytes(char *buf, size_t len)
{
	char cmd[256];

	snprintf(cmd, sizeof(cmd), "cd %s/state && for f in $(find gpus partitions -type f | "
		 "sort); do echo \"== $f\"; cat \"$f\"; done > %s/state.txt", dir, dir);
	cr_assert_eq(system(cmd), 0);
	snprintf(cmd, sizeof(cmd), "%s/state.txt", dir);
	tl_slurp(cmd, buf, len);
}

/* What the daemon says is set and in force: policy, slice and watchdog
 * as set (gpus), the policy in force (stats), the other partition. */
static void settings(char *buf, size_t len)
{
	char out[65536];
	json_object *j, *g, *e, *p;
	int n;

	cr_assert_eq(gpup(out, sizeof(out), "gpus --json"), 0, "%s", out);
	j = json_tokener_parse(out);
	cr_assert_not_null(j, "%s", out);
	g = json_object_array_get_idx(json_object_object_get(j, "gpus"), 0);
	n = snprintf(buf, len, "set %s %s %s;",
		     json_object_to_json_string(json_object_object_get(g, "policy")),
		     json_object_to_json_string(json_object_object_get(g, "slice_ns")),
		     json_object_to_json_string(json_object_object_get(g, "watchdog_ns")));
	json_object_put(j);
	cr_assert_eq(gpup(out, sizeof(out), "stats --json"), 0, "%s", out);
	j = json_tokener_parse(out);
	g = json_object_array_get_idx(json_object_object_get(j, "gpus"), 0);
	e = json_object_array_get_idx(json_object_object_get(g, "engines"), 0);
	n += snprintf(buf + n, len - (size_t)n, " in force %s;",
		      json_object_to_json_string(json_object_object_get(e, "policy")));
	json_object_put(j);
	cr_assert_eq(gpup(out, sizeof(out), "list --json"), 0, "%s", out);
	j = json_tokener_parse(out);
	p = json_object_object_get(j, "partitions");
	cr_assert_eq(json_object_array_length(p), 1, "one partition, not the run's: %s", out);
	p = json_object_array_get_idx(p, 0);
	snprintf(buf + n, len - (size_t)n, " part %s %s %s",
		 json_object_to_json_string(json_object_object_get(p, "weight")),
		 json_object_to_json_string(json_object_object_get(p, "class")),
		 json_object_to_json_string(json_object_object_get(p, "fps_limit")));
	json_object_put(j);
}

/* A daemon whose GPU runs equal-share with the default (adaptive) slice
 * and a 500 ms watchdog, and one partition with settings of its own. */
static void daemon_with_settings(void)
{
	char out[4096], args[512], uuid[64];

	snprintf(dir, sizeof(dir), "/tmp/gpup-restore-XXXXXX");
	cr_assert_not_null(mkdtemp(dir));
	snprintf(args, sizeof(args), "daemon --detach --state-dir %s/state --sim-gpus 1 --vram 1G", dir);
	cr_assert_eq(gpup(out, sizeof(out), args), 0, "%s", out);
	cr_assert_eq(gpup(out, sizeof(out), "sched --gpu gpu0 --policy equal-share --watchdog 500"),
		     0, "%s", out);
	cr_assert_eq(gpup(out, sizeof(out), "create --type sim-64m-16"), 0, "%s", out);
	cr_assert_eq(sscanf(out, "%63s", uuid), 1);
	snprintf(args, sizeof(args), "sched --partition %s --weight 7 --class interactive "
		 "--fps 30", uuid);
	cr_assert_eq(gpup(out, sizeof(out), args), 0, "%s", out);
}

static void check_unchanged(const char *before, const char *state_before)
{
	char after[1024], state_after[16384];

	settings(after, sizeof(after));
	cr_assert_str_eq(after, before);
	state_bytes(state_after, sizeof(state_after));
	cr_assert_str_eq(state_after, state_before);
}

static void write_file(const char *name, const char *text)
{
	char path[128];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	f = fopen(path, "w");
	cr_assert_not_null(f);
	fputs(text, f);
	fclose(f);
}

Test(bench_restore, live_run_leaves_settings_and_state)
{
	char out[16384], before[1024], state_before[16384];

	daemon_with_settings();
	settings(before, sizeof(before));
	cr_assert_not_null(strstr(before, "set \"equal-share\" 0 500000000;"), "%s", before);
	state_bytes(state_before, sizeof(state_before));
	char cmd[512];

	cr_assert_eq(gpup(out, sizeof(out), "bench samples/scenarios/interactive.json --live "
			  "--duration 0.3 --json -"), 0, "%s", out);
	cr_assert_not_null(strstr(out, "\"gpup bench samples/scenarios/interactive.json --live "
				  "--seed 1 --duration 0.3\""), "%s", out);
	check_unchanged(before, state_before);
	/* the report matches its documented schema */
	cr_assert_not_null(strchr(out, '{'));
	write_file("live.json", strchr(out, '{'));
	snprintf(cmd, sizeof(cmd), "/usr/bin/python3 scripts/check-bench-schema.py report "
		 "%s/live.json", dir);
	cr_assert_eq(system(cmd), 0, "the live report does not match its schema");
}

static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* `gpup bench ARGS...` in the background, SIGINT once it has partitions
 * (or, for vm mode, VMs) running, and its exit status. */
static int interrupted_bench(const char *mode, const char *scenario, unsigned int wait_ms)
{
	char run[128], log[128], out[4096];
	uint64_t t0;
	pid_t pid;
	int st;

	snprintf(run, sizeof(run), "%s/run", dir);
	snprintf(log, sizeof(log), "%s/bench.out", dir);
	pid = fork();
	cr_assert_geq(pid, 0);
	if (pid == 0) {
		if (!freopen(log, "w", stdout) || dup2(fileno(stdout), 2) < 0)
			_exit(127);
		setenv("TMPDIR", dir, 1);
		execl(getenv("GPUP_BIN"), "gpup", "--run-dir", run, "bench", scenario, mode,
		      "--duration", "20", (char *)NULL);
		_exit(127);
	}
	usleep(wait_ms * 1000);
	t0 = now_ms();
	kill(pid, SIGINT);
	cr_assert_eq(waitpid(pid, &st, 0), pid);
	tl_slurp(log, out, sizeof(out));
	cr_assert_lt(now_ms() - t0, 15000, "stopping took too long");
	cr_assert(WIFEXITED(st), "bench died of a signal: %s", out);
	cr_assert_eq(WEXITSTATUS(st), 128 + SIGINT, "%s", out);
	cr_assert_not_null(strstr(out, "stopped by signal 2"), "%s", out);
	return 0;
}

Test(bench_restore, sigint_in_live_mode)
{
	char before[1024], state_before[16384];

	daemon_with_settings();
	settings(before, sizeof(before));
	state_bytes(state_before, sizeof(state_before));
	interrupted_bench("--live", "samples/scenarios/interactive.json", 1500);
	check_unchanged(before, state_before);
}

Test(bench_restore, sigint_in_vm_mode)
{
	char before[1024], state_before[16384];

	if (access("/dev/kvm", R_OK | W_OK)) {
		cr_skip_test("no /dev/kvm: vm mode cannot run here");
		return;
	}
	daemon_with_settings();
	settings(before, sizeof(before));
	state_bytes(state_before, sizeof(state_before));
	interrupted_bench("--no-baselines", "samples/scenarios/vm-small.json", 4000);
	check_unchanged(before, state_before);
}


Test(bench_restore, exit_statuses_and_checks_before_a_run)
{
	char out[16384], args[256];

	snprintf(dir, sizeof(dir), "/tmp/gpup-restore-XXXXXX");
	cr_assert_not_null(mkdtemp(dir));
	write_file("typo.json", "{ \"tenants\": [ { \"wieght\": 2, \"workload\": "
		   "{ \"kernel_us\": 100 } } ] }");
	snprintf(args, sizeof(args), "bench %s/typo.json --model", dir);
	cr_assert_eq(gpup(out, sizeof(out), args), 2, "%s", out);
	cr_assert_not_null(strstr(out, "tenants[0]: unknown key \"wieght\" (did you mean "
				  "\"weight\"?)"), "%s", out);
	write_file("typo2.json", "{ \"tenants\": [ { \"workload\": { \"kernel_us\": 100 } } ], "
		   "\"targets\": { \"share_eror_max\": 0.1 } }");
	snprintf(args, sizeof(args), "bench %s/typo2.json --model", dir);
	cr_assert_eq(gpup(out, sizeof(out), args), 2, "%s", out);
	cr_assert_not_null(strstr(out, "\"share_eror_max\" (did you mean \"share_error_max\"?)"),
			   "%s", out);
	/* refused before the run: nothing is written */
	snprintf(args, sizeof(args), "bench samples/scenarios/interactive.json --model "
		 "--json %s/r.json --plot %s/chart.pdf", dir, dir);
	cr_assert_eq(gpup(out, sizeof(out), args), 2, "%s", out);
	cr_assert_not_null(strstr(out, "must end in .svg or .png"), "%s", out);
	snprintf(args, sizeof(args), "%s/r.json", dir);
	cr_assert_neq(access(args, F_OK), 0, "a report was written before the refusal");
	/* a target that fails: 3; a run that fails (no daemon): 1 */
	write_file("strict.json", "{ \"duration_s\": 0.5, \"tenants\": [ { \"count\": 2, "
		   "\"workload\": { \"kernel_us\": 100 } } ], \"targets\": "
		   "{ \"frames_missed_max\": 0, \"jain_mean_min\": 1.5 } }");
	snprintf(args, sizeof(args), "bench %s/strict.json --model --no-baselines", dir);
	cr_assert_eq(gpup(out, sizeof(out), args), 3, "%s", out);
	cr_assert_not_null(strstr(out, "target jain_mean_min failed"), "%s", out);
	cr_assert_eq(gpup(out, sizeof(out), "bench samples/scenarios/interactive.json --live"), 1,
		     "%s", out);
	snprintf(args, sizeof(args), "bench samples/scenarios/interactive.json --model "
		 "--duration 2 --json %s/model.json --report /dev/null", dir);
	cr_assert_eq(gpup(out, sizeof(out), args), 0, "%s", out);
	snprintf(args, sizeof(args), "/usr/bin/python3 scripts/check-bench-schema.py report "
		 "%s/model.json", dir);
	cr_assert_eq(system(args), 0, "the model report does not match its schema");
	cr_assert_eq(system("/usr/bin/python3 scripts/check-bench-schema.py scenario "
			    "samples/scenarios/*.json"), 0, "a shipped scenario breaks the schema");
}
