// SPDX-License-Identifier: MIT
/*
 * The CLI against a running daemon: create/list/destroy, tables and
 * --json, exit codes and the exact one-line errors, nothing changed by a
 * failed command, persistence across a restart (partitions and scheduler
 * settings), one daemon per state directory, what the daemon finds there
 * and will not read, and what happens with no daemon at all.
 */
#include <criterion/criterion.h>
#include <json-c/json.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "tests/testlib.h"

static char dir[64], run_dir[96], state_dir[96];
static char out[16384], err[4096];

/* Run `gpup --run-dir RUN ARGS`; stdout and stderr land in out and err. */
static int gpup(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static int gpup(const char *fmt, ...)
{
	char args[512], cmd[1024], o[128], e[128];
	const char *bin = getenv("GPUP_BIN");
	va_list ap;
	int st;

	cr_assert_not_null(bin, "GPUP_BIN must name the gpup binary");
	va_start(ap, fmt);
	vsnprintf(args, sizeof(args), fmt, ap);
	va_end(ap);
	snprintf(o, sizeof(o), "%s/out", dir);
	snprintf(e, sizeof(e), "%s/err", dir);
	/* A command that hangs fails (124) instead of stalling the suite. */
	snprintf(cmd, sizeof(cmd), "timeout 30 %s --run-dir %s %s >%s 2>%s", bin, run_dir, args,
		 o, e);
	st = system(cmd);
	tl_slurp(o, out, sizeof(out));
	tl_slurp(e, err, sizeof(err));
	return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static void start(void)
{
	cr_assert_eq(gpup("daemon --detach --state-dir %s --sim-gpus 2 --vram 64M", state_dir), 0, "%s",
		     err);
	cr_assert(strstr(out, "gpup daemon: running (pid "), "%s", out);
}

static void stop(void)
{
	char path[128], pid[32] = "";
	int n = 0;

	snprintf(path, sizeof(path), "%s/gpup.pid", run_dir);
	tl_slurp(path, pid, sizeof(pid));
	if (!pid[0])
		return;
	cr_assert_eq(kill(atoi(pid), SIGTERM), 0);
	/* The pid file goes last, after the sockets. */
	while (access(path, F_OK) == 0 && n++ < 500)
		usleep(10000);
	cr_assert_neq(access(path, F_OK), 0, "daemon did not stop");
}

static void setup(void)
{
	snprintf(dir, sizeof(dir), "/tmp/gpup-cli-XXXXXX");
	cr_assert_not_null(mkdtemp(dir));
	snprintf(run_dir, sizeof(run_dir), "%s/run", dir);
	snprintf(state_dir, sizeof(state_dir), "%s/state", dir);
}

static void teardown(void)
{
	char cmd[128];

	stop();
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	cr_assert_eq(system(cmd), 0);
}

TestSuite(daemon_cli, .init = setup, .fini = teardown, .timeout = 60);

static size_t lines(const char *s)
{
	size_t n = 0;

	for (; *s; s++)
		n += *s == '\n';
	return n;
}

Test(daemon_cli, no_daemon_is_a_runtime_failure)
{
	char want[256];

	cr_assert_eq(gpup("list"), 1);
	snprintf(want, sizeof(want),
		 "gpup list: no daemon is running in %s (start one with 'gpup daemon')\n", run_dir);
	cr_assert_str_eq(err, want);
	cr_assert_str_eq(out, "");
}

/* The host's own GPUs can be listed without a daemon; it says there is none. */
Test(daemon_cli, gpus_without_a_daemon_lists_the_host)
{
	char want[256];
	json_object *o, *a;

	cr_assert_eq(gpup("gpus"), 0, "%s", err);
	snprintf(want, sizeof(want), "no daemon is running in %s: no sim GPUs (start one with "
		 "'gpup daemon')\n", run_dir);
	cr_assert_eq(strncmp(out, want, strlen(want)), 0, "%s", out);
	cr_assert(strstr(out, "host GPUs"), "%s", out);
	cr_assert_eq(gpup("gpus --json"), 0);
	o = json_tokener_parse(out);
	cr_assert(o && json_object_object_get_ex(o, "gpus", &a), "%s", out);
	cr_assert_eq(json_object_array_length(a), 0);
	cr_assert(json_object_object_get_ex(o, "host", &a) && json_object_is_type(a, json_type_array));
	json_object_put(o);
}

Test(daemon_cli, create_list_destroy)
{
	char uuid[64], want[256];
	json_object *o, *a;

	start();
	cr_assert_eq(gpup("create --gpu gpu1 --type sim-16m-4"), 0, "%s", err);
	cr_assert_eq(strlen(out), 37, "one UUID and a newline: %s", out);
	snprintf(uuid, sizeof(uuid), "%.36s", out);
	cr_assert_eq(gpup("list"), 0);
	cr_assert_eq(lines(out), 2, "header and one partition:\n%s", out);
	cr_assert(strstr(out, uuid) && strstr(out, "gpu1") && strstr(out, "sim-16m-4"), "%s", out);
	cr_assert_eq(gpup("list --json"), 0);
	o = json_tokener_parse(out);
	cr_assert_not_null(o, "%s", out);
	cr_assert(json_object_object_get_ex(o, "partitions", &a));
	cr_assert_eq(json_object_array_length(a), 1);
	json_object_put(o);
	cr_assert_eq(gpup("types --gpu gpu1 --json"), 0);
	cr_assert(strstr(out, "\"available_instances\": 3"), "%s", out);
	/* What an mdev type shows in sysfs, for tools written for those. */
	cr_assert(strstr(out, "\"device_api\": \"vfio-pci\"") &&
			  strstr(out, "\"name\": \"gpup sim GPU 1/4 (16 MiB)\"") &&
			  strstr(out, "\"description\": \"1/4 of gpu1 gpup sim GPU: 16 MiB"),
		  "%s", out);
	cr_assert_eq(gpup("destroy %s", uuid), 0, "%s", err);
	cr_assert_str_eq(out, "");
	cr_assert_eq(gpup("list"), 0);
	cr_assert_str_eq(out, "no partitions; create one with 'gpup create --type NAME'\n");
	cr_assert_eq(gpup("destroy %s", uuid), 2);
	snprintf(want, sizeof(want), "gpup destroy: no partition %s; see 'gpup list'\n", uuid);
	cr_assert_str_eq(err, want);
}

Test(daemon_cli, bad_requests_exit_2_and_change_nothing)
{
	start();
	cr_assert_eq(gpup("create --gpu gpu1 --type sim-32m-2 --uuid "
			  "aaaaaaaa-bbbb-4ccc-8ddd-eeeeeeeeeeee"), 0);
	cr_assert_eq(gpup("create --gpu gpu5 --type sim-32m-2"), 2);
	cr_assert_str_eq(err, "gpup create: no GPU 'gpu5'; see 'gpup gpus'\n");
	cr_assert_eq(gpup("create --gpu gpu0 --type sim-99m-1"), 2);
	cr_assert_str_eq(err, "gpup create: gpu0 has no type 'sim-99m-1'; see 'gpup types'\n");
	cr_assert_eq(gpup("create --gpu gpu1 --type sim-64m-1"), 2);
	cr_assert_str_eq(err, "gpup create: gpu1 has no room for a 'sim-64m-1' partition "
			      "(largest free slot: 32 MiB)\n");
	cr_assert_eq(gpup("create --gpu gpu0 --type sim-32m-2 --uuid "
			  "AAAAAAAA-bbbb-4ccc-8ddd-eeeeeeeeeeee"), 2);
	cr_assert_str_eq(err, "gpup create: UUID aaaaaaaa-bbbb-4ccc-8ddd-eeeeeeeeeeee is "
			      "already in use\n");
	cr_assert_eq(gpup("create --gpu gpu0 --type sim-32m-2 --uuid nope"), 2);
	cr_assert_str_eq(err, "gpup create: 'nope' is not a UUID (want 8-4-4-4-12 hex digits)\n");
	cr_assert_eq(gpup("create --gpu gpu0"), 2);
	cr_assert_str_eq(err, "gpup create: --type NAME is required; see 'gpup types'\n");
	cr_assert_eq(gpup("create --bogus"), 2);
	cr_assert_eq(gpup("list"), 0);
	cr_assert_eq(lines(out), 2, "still exactly one partition:\n%s", out);
	cr_assert_eq(gpup("gpus --json"), 0);
	cr_assert(strstr(out, "\"vram_free\": 67108864"), "gpu0 untouched:\n%s", out);
}

Test(daemon_cli, help_for_every_command)
{
	static const char *const cmds[] = { "daemon", "gpus", "types", "create", "destroy",
					    "list", "exercise" };

	for (size_t i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++) {
		cr_assert_eq(gpup("%s --help", cmds[i]), 0, "%s", cmds[i]);
		cr_assert(strncmp(out, "usage: gpup ", 12) == 0, "%s: %s", cmds[i], out);
	}
}

Test(daemon_cli, gpus_table_and_persistence)
{
	char uuid[64];

	start();
	cr_assert_eq(gpup("gpus"), 0);
	cr_assert(strstr(out, "gpu0   sim      gpup sim GPU     gen2  64 MiB    64 MiB    64 MiB"),
		  "%s", out);
	cr_assert(strstr(out, "\nhost GPUs: ") != NULL, "%s", out);
	cr_assert_eq(gpup("create --type sim-4m-16"), 0);
	snprintf(uuid, sizeof(uuid), "%.36s", out);
	cr_assert_eq(gpup("daemon --detach --state-dir %s --vram 64M", state_dir), 1,
		     "a second daemon on the same run dir");
	stop();
	cr_assert_eq(gpup("list"), 1);
	start();
	cr_assert_eq(gpup("list"), 0);
	cr_assert(strstr(out, uuid), "%s", out);
	cr_assert_eq(gpup("exercise %s --size 1M", uuid), 0, "%s%s", out, err);
	cr_assert(strstr(out, "result: bit-exact"), "%s", out);
}

/* What the host lets a new partition's VRAM have: "thp-2m" or "4k". */
static const char *host_vram_pages(void)
{
	return tl_host_shmem_thp() ? "thp-2m" : "4k";
}

/* Every GPU says what backs a new partition's VRAM, and it is what the
 * host allows; a partition of whole 2 MiB pages gets exactly that. */
Test(daemon_cli, gpus_and_list_show_vram_pages)
{
	const char *want = host_vram_pages();
	json_object *o, *a;
	char row[128];

	start();
	cr_assert_eq(gpup("gpus --json"), 0, "%s", err);
	o = json_tokener_parse(out);
	cr_assert(o && json_object_object_get_ex(o, "gpus", &a), "%s", out);
	cr_assert_eq(json_object_array_length(a), 2);
	for (size_t i = 0; i < 2; i++) {
		json_object *v;
		const char *b;

		cr_assert(json_object_object_get_ex(json_object_array_get_idx(a, i),
						    "vram_backing", &v), "%s", out);
		b = json_object_get_string(v);
		cr_assert(!strcmp(b, "4k") || !strcmp(b, "thp-2m"), "unknown backing '%s'", b);
		cr_assert_str_eq(b, want, "gpu%zu, with the host's shmem_enabled", i);
	}
	json_object_put(o);
	cr_assert_eq(gpup("gpus"), 0, "%s", err);
	cr_assert(strstr(out, " VRAM PAGES  PARTITIONS\n"), "%s", out);
	snprintf(row, sizeof(row), "1+1      %-11s 0\n", want);
	cr_assert(strstr(out, row), "want '%s' in:\n%s", row, out);
	cr_assert_eq(gpup("create --gpu gpu0 --type sim-16m-4"), 0, "%s", err);
	cr_assert_eq(gpup("list --json"), 0, "%s", err);
	o = json_tokener_parse(out);
	cr_assert(o && json_object_object_get_ex(o, "partitions", &a), "%s", out);
	cr_assert(json_object_object_get_ex(json_object_array_get_idx(a, 0), "vram_backing", &a),
		  "%s", out);
	cr_assert_str_eq(json_object_get_string(a), want);
	json_object_put(o);
	cr_assert_eq(gpup("list"), 0, "%s", err);
	snprintf(row, sizeof(row), "16 MiB   %-6s 0 B ", want);
	cr_assert(strstr(out, row), "want '%s' in:\n%s", row, out);
}

Test(daemon_cli, daemon_flag_errors)
{
	cr_assert_eq(gpup("daemon --vram 100M --foreground"), 2);
	cr_assert_str_eq(err, "gpup daemon: --vram wants a power of two of at least 16M "
			      "(like 8G), not '100M'\n");
	cr_assert_eq(gpup("daemon --sim-gpus 99 --foreground"), 2);
	cr_assert_str_eq(err, "gpup daemon: --sim-gpus wants a number from 0 to 16, or "
			      "N:GEN,N:GEN... with GEN gen1 or gen2, not '99'\n");
	cr_assert_eq(gpup("daemon --sim-gpus 2:gen3 --foreground"), 2);
	cr_assert_eq(gpup("daemon --sim-gpus 9:gen1,8:gen2 --foreground"), 2, "17 GPUs");
	cr_assert_eq(gpup("daemon --sim-gpus 2:gen1, --foreground"), 2);
	cr_assert_eq(gpup("exercise not-a-uuid"), 2);
	cr_assert_eq(gpup("daemon --policy lottery --foreground"), 2);
	cr_assert_str_eq(err, "gpup daemon: --policy wants fifo, best-effort, equal-share, "
			      "fixed-share or weighted, not 'lottery'\n");
	cr_assert_eq(gpup("daemon --slice 31 --foreground"), 2);
	cr_assert_str_eq(err, "gpup daemon: --slice wants 0.1 to 30 (milliseconds), not '31'\n");
}

/* Every engine is under the time-slice scheduler from the start: weighted
 * with the default slice, or what --policy and --slice say. */
static void assert_engines(const char *policy, int64_t slice_ns)
{
	json_object *o, *gpus;
	unsigned int n = 0;

	cr_assert_eq(gpup("stats --json"), 0, "%s", err);
	o = json_tokener_parse(out);
	cr_assert(o && json_object_object_get_ex(o, "gpus", &gpus), "%s", out);
	for (size_t g = 0; g < json_object_array_length(gpus); g++) {
		json_object *engines, *gpu = json_object_array_get_idx(gpus, g);

		cr_assert(json_object_object_get_ex(gpu, "engines", &engines));
		for (size_t i = 0; i < json_object_array_length(engines); i++, n++) {
			json_object *e = json_object_array_get_idx(engines, i), *v;

			cr_assert(json_object_object_get_ex(e, "policy", &v));
			cr_assert_str_eq(json_object_get_string(v), policy);
			cr_assert(json_object_object_get_ex(e, "slice_ns", &v));
			cr_assert_eq(json_object_get_int64(v), slice_ns);
		}
	}
	cr_assert_eq(n, 4, "2 GPUs x (compute + copy)");
	json_object_put(o);
}

Test(daemon_cli, engines_start_under_the_scheduler)
{
	start();
	assert_engines("weighted", 2000000);
	stop();
	cr_assert_eq(gpup("daemon --detach --state-dir %s --sim-gpus 2 --vram 64M --policy equal-share "
			  "--slice 0.5", state_dir), 0, "%s", err);
	assert_engines("equal-share", 500000);
}

/* ---- scheduler settings across a restart ---- */

static json_object *parse_out(void)
{
	json_object *o = json_tokener_parse(out);

	cr_assert_not_null(o, "%s", out);
	return o;
}

static json_object *field(json_object *o, const char *key)
{
	json_object *v = NULL;

	cr_assert(json_object_object_get_ex(o, key, &v), "no %s in %s", key,
		  json_object_to_json_string(o));
	return v;
}

/* The settings `gpup list --json` shows for partition 0. */
static void assert_part_sched(int64_t weight, double cap, const char *klass, int64_t fps)
{
	json_object *o, *p;

	cr_assert_eq(gpup("list --json"), 0, "%s", err);
	o = parse_out();
	p = json_object_array_get_idx(field(o, "partitions"), 0);
	cr_assert_not_null(p, "%s", out);
	cr_assert_eq(json_object_get_int64(field(p, "weight")), weight, "%s", out);
	cr_assert_float_eq(json_object_get_double(field(p, "reserve")), 0, 1e-9);
	cr_assert_float_eq(json_object_get_double(field(p, "cap")), cap, 1e-9, "%s", out);
	cr_assert_str_eq(json_object_get_string(field(p, "class")), klass);
	cr_assert_eq(json_object_get_int64(field(p, "fps_limit")), fps);
	cr_assert_eq(json_object_get_int64(field(p, "budget_us")), fps ? 2000 : 0, "%s", out);
	json_object_put(o);
}

/* Policy, slice and watchdog of both engines of GPU g in `gpup stats --json`. */
static void assert_gpu_sched(int g, const char *policy, int64_t slice_ns, int64_t wd_ns)
{
	json_object *o, *engines;

	cr_assert_eq(gpup("stats --json"), 0, "%s", err);
	o = parse_out();
	engines = field(json_object_array_get_idx(field(o, "gpus"), (size_t)g), "engines");
	cr_assert_eq(json_object_array_length(engines), 2);
	for (size_t i = 0; i < 2; i++) {
		json_object *e = json_object_array_get_idx(engines, i);

		cr_assert_str_eq(json_object_get_string(field(e, "policy")), policy, "gpu%d", g);
		cr_assert_eq(json_object_get_int64(field(e, "slice_ns")), slice_ns, "gpu%d", g);
		cr_assert_eq(json_object_get_int64(field(e, "watchdog_ns")), wd_ns, "gpu%d", g);
	}
	json_object_put(o);
}

Test(daemon_cli, scheduler_settings_survive_a_restart)
{
	char uuid[64];

	start();
	cr_assert_eq(gpup("create --gpu gpu0 --type sim-16m-4"), 0, "%s", err);
	snprintf(uuid, sizeof(uuid), "%.36s", out);
	assert_part_sched(0, 0, "normal", 0);
	cr_assert_eq(gpup("sched --partition %s --weight 4 --cap 0.5 --class interactive "
			  "--fps 60 --budget 2ms", uuid), 0, "%s", err);
	cr_assert_eq(gpup("sched --gpu gpu1 --policy fixed-share --slice 0.5 --watchdog 250"), 0,
		     "%s", err);
	assert_part_sched(4, 0.5, "interactive", 60);
	stop();
	start();
	assert_part_sched(4, 0.5, "interactive", 60);
	cr_assert_eq(gpup("list"), 0, "%s", err);
	cr_assert(strstr(out, "w=4 cap=0.5 interactive 60fps budget=2ms"), "%s", out);
	assert_gpu_sched(0, "weighted", 2000000, 0);
	assert_gpu_sched(1, "fixed-share", 500000, 250000000);
	/* A watchdog left out of a later change keeps the saved one. */
	cr_assert_eq(gpup("sched --gpu gpu1 --policy equal-share --slice 0.5"), 0, "%s", err);
	stop();
	start();
	assert_gpu_sched(1, "equal-share", 500000, 250000000);
}

/* Budgets an engine cannot honour together are refused in one line that
 * names the numbers, and change nothing; so is a slice too short for the
 * budgets in force. */
Test(daemon_cli, budgets_an_engine_cannot_honour_are_refused)
{
	char uuid[3][64];

	start();
	for (int i = 0; i < 3; i++) {
		cr_assert_eq(gpup("create --gpu gpu0 --type sim-16m-4"), 0, "%s", err);
		snprintf(uuid[i], sizeof(uuid[i]), "%.36s", out);
	}
	cr_assert_eq(gpup("sched --partition %s --class interactive --fps 60 --budget 6ms",
			  uuid[0]), 0, "%s", err);
	cr_assert_eq(gpup("sched --partition %s --class interactive --fps 30 --budget 9ms",
			  uuid[1]), 0, "%s", err);
	cr_assert_eq(gpup("sched --partition %s --class interactive --fps 60 --budget 5ms",
			  uuid[2]), 2);
	cr_assert_str_eq(err, "gpup sched: gpu0 compute engine 0 cannot honour these budgets "
			      "together: 3 budget(s) take 93.0% of the engine and the longest "
			      "non-preemptible stretch seen (0.00 ms) 0.0% of the shortest period "
			      "(16.67 ms): 93.0%, above 90%\n");
	cr_assert_eq(gpup("sched --partition %s --class normal --budget 1ms", uuid[2]), 2);
	cr_assert_str_eq(err, "gpup sched: a budget needs class interactive and an fps limit, "
			      "and is at most one frame period (1/fps)\n");
	cr_assert_eq(gpup("sched --partition %s --class interactive --fps 60 --budget 3500us",
			  uuid[2]), 0, "%s", err);
	cr_assert_eq(gpup("sched --gpu gpu0 --policy weighted --slice 0.25"), 2);
	cr_assert_str_eq(err, "gpup sched: gpu0 compute engine 0 cannot honour these budgets "
			      "together: 3 budgets need turns of at least 0.10 ms each (0.30 ms), "
			      "more than the 0.25 ms slice\n");
	cr_assert_eq(gpup("sched --gpu gpu0 --policy best-effort --slice 0.25"), 0, "%s", err);
	cr_assert_eq(gpup("sched --gpu gpu0 --policy weighted --slice 0.3"), 0, "%s", err);
}

/* --policy and --slice on the command line win for that start only; what
 * `gpup sched` saved is back on the next plain start. */
Test(daemon_cli, command_line_wins_over_saved_settings_for_one_start)
{
	start();
	cr_assert_eq(gpup("sched --gpu gpu1 --policy fixed-share --slice 0.5"), 0, "%s", err);
	stop();
	cr_assert_eq(gpup("daemon --detach --state-dir %s --sim-gpus 2 --vram 64M --policy best-effort",
			  state_dir), 0, "%s", err);
	assert_gpu_sched(0, "best-effort", 2000000, 0);
	assert_gpu_sched(1, "best-effort", 500000, 0);
	stop();
	cr_assert_eq(gpup("daemon --detach --state-dir %s --sim-gpus 2 --vram 64M --slice 3", state_dir),
		     0, "%s", err);
	assert_gpu_sched(1, "fixed-share", 3000000, 0);
	stop();
	start();
	assert_gpu_sched(0, "weighted", 2000000, 0);
	assert_gpu_sched(1, "fixed-share", 500000, 0);
}

static void write_state(const char *sub, const char *name, const char *text)
{
	char path[256];
	FILE *f;

	mkdir(state_dir, 0700);
	snprintf(path, sizeof(path), "%s/%s", state_dir, sub);
	mkdir(path, 0700);
	snprintf(path, sizeof(path), "%s/%s/%s", state_dir, sub, name);
	f = fopen(path, "w");
	cr_assert_not_null(f, "%s", path);
	fputs(text, f);
	fclose(f);
}

static size_t count(const char *s, const char *word)
{
	size_t n = 0;

	for (; (s = strstr(s, word)); s++)
		n++;
	return n;
}

/* Corrupt or foreign settings files: the daemon starts with defaults, one
 * log line each, and the partition whose attrs are bad is still served. */
Test(daemon_cli, bad_settings_files_are_skipped_with_a_log_line)
{
	char log[16384], path[128];

	write_state("gpus", "gpu0.json", "{ \"version\": 1, \"policy\": ");
	write_state("gpus", "gpu1.json", "{\"version\":9,\"gpu\":\"gpu1\",\"policy\":\"fifo\","
		    "\"slice_ns\":0,\"watchdog_ns\":0}");
	write_state("definitions", ".keep", "");
	write_state("definitions/gpu0", "aaaaaaaa-bbbb-4ccc-8ddd-eeeeeeeeeeee",
		    "{\"mdev_type\":\"sim-16m-4\",\"start\":\"auto\",\"attrs\":["
		    "{\"vram_offset\":\"0\"},{\"vram_size\":\"16777216\"},"
		    "{\"sched_weight\":\"heavy\"}]}");
	start();
	assert_gpu_sched(0, "weighted", 2000000, 0);
	assert_gpu_sched(1, "weighted", 2000000, 0);
	assert_part_sched(0, 0, "normal", 0);
	snprintf(path, sizeof(path), "%s/daemon.log", run_dir);
	tl_slurp(path, log, sizeof(log));
	cr_assert_eq(count(log, "ignoring GPU settings file"), 2, "%s", log);
	cr_assert(strstr(log, "gpu1.json: format version 9 is not 1\n"), "%s", log);
	cr_assert(strstr(log, "aaaaaaaa-bbbb-4ccc-8ddd-eeeeeeeeeeee: scheduler defaults "
			      "used: sched_weight 'heavy' is not a number from 0 to 1000000\n"),
		  "%s", log);
	cr_assert_eq(gpup("exercise aaaaaaaa-bbbb-4ccc-8ddd-eeeeeeeeeeee --size 1M"), 0, "%s%s",
		     out, err);
}

/* ---- the state directory: one owner, what is found there ---- */

#define UU "aaaaaaaa-bbbb-4ccc-8ddd-eeeeeeeeeeee"

static bool ends_with(const char *s, const char *tail)
{
	size_t n = strlen(s), m = strlen(tail);

	return n >= m && strcmp(s + n - m, tail) == 0;
}

/* Two daemons on one state directory would hand out the same VRAM slot
 * and lose a definition at the next restart: the second one refuses, in
 * one line naming the directory and the first one's pid, exit status 1. */
Test(daemon_cli, second_daemon_on_the_state_dir_is_refused)
{
	char path[128], pid[32] = "", want[512], log[4096];

	start();
	snprintf(path, sizeof(path), "%s/gpup.pid", run_dir);
	tl_slurp(path, pid, sizeof(pid));
	cr_assert_gt(atoi(pid), 0);
	snprintf(want, sizeof(want), "gpup daemon: state directory %s is in use by another gpup "
		 "daemon (pid %d); stop it or give another --state-dir\n", state_dir, atoi(pid));
	cr_assert_eq(gpup("daemon --foreground --run-dir %s/run2 --state-dir %s --sim-gpus 2 "
			  "--vram 64M", dir, state_dir), 1, "%s", err);
	cr_assert_eq(lines(err), 1, "%s", err);
	cr_assert(ends_with(err, want), "%s", err);
	snprintf(path, sizeof(path), "%s/run2/gpup.sock", dir);
	cr_assert_neq(access(path, F_OK), 0, "no control socket left behind");

	cr_assert_eq(gpup("daemon --detach --run-dir %s/run2 --state-dir %s --sim-gpus 2 "
			  "--vram 64M", dir, state_dir), 1, "detached, likewise");
	cr_assert_not_null(strstr(err, "gpup daemon: cannot start: state directory"),
			   "the reason, not only where the log is: %s", err);
	snprintf(path, sizeof(path), "%s/run2/daemon.log", dir);
	tl_slurp(path, log, sizeof(log));
	cr_assert(ends_with(log, want), "%s", log);
	cr_assert_eq(gpup("create --type sim-16m-4"), 0, "the first daemon serves on: %s", err);
}

static void start_gpus(int n)
{
	cr_assert_eq(gpup("daemon --detach --state-dir %s --sim-gpus %d --vram 64M", state_dir, n), 0,
		     "%s", err);
}

static const char *part0(json_object *o, const char *key)
{
	json_object *p = json_object_array_get_idx(field(o, "partitions"), 0), *v = NULL;

	cr_assert(json_object_object_get_ex(p, key, &v), "no %s in %s", key, out);
	return json_object_get_string(v);
}

/* A definition whose GPU is gone stays listed, with why, and its UUID
 * reserved: create --uuid cannot overwrite it, a restart with the GPU back
 * serves it again, destroy removes it. */
Test(daemon_cli, unavailable_definition_keeps_its_uuid)
{
	char row[512], path[256];
	json_object *o;

	start();
	cr_assert_eq(gpup("create --gpu gpu1 --type sim-16m-4 --uuid " UU), 0, "%s", err);
	stop();
	start_gpus(1);
	cr_assert_eq(gpup("list"), 0, "%s", err);
	snprintf(row, sizeof(row), "%-36s  %-5s %-13s %-8s %-6s %-9s %-7s %-6s %-9s %-22s %s\n", UU,
		 "gpu1", "sim-16m-4", "16 MiB", "-", "0 B", "-", "-", "-", "-",
		 "(unavailable: its GPU 'gpu1' is not present)");
	cr_assert(ends_with(out, row), "%s", out);
	cr_assert_eq(gpup("list --json"), 0, "%s", err);
	o = parse_out();
	cr_assert_str_eq(part0(o, "unavailable"), "its GPU 'gpu1' is not present");
	cr_assert_null(part0(o, "socket"));
	json_object_put(o);
	cr_assert_eq(gpup("create --gpu gpu0 --type sim-16m-4 --uuid " UU), 2);
	cr_assert_str_eq(err, "gpup create: UUID " UU " is reserved by an unavailable saved "
			      "partition (its GPU 'gpu1' is not present); 'gpup destroy' it to "
			      "reuse the UUID\n");
	cr_assert_eq(gpup("gpus --json"), 0);
	cr_assert(strstr(out, "\"vram_free\": 67108864"), "nothing taken:\n%s", out);
	stop();

	start();
	cr_assert_eq(gpup("list --json"), 0, "%s", err);
	o = parse_out();
	cr_assert_null(part0(o, "unavailable"), "%s", out);
	cr_assert_str_eq(part0(o, "gpu"), "gpu1");
	json_object_put(o);
	cr_assert_eq(gpup("exercise " UU " --size 1M"), 0, "%s%s", out, err);
	stop();

	start_gpus(1);
	cr_assert_eq(gpup("destroy " UU), 0, "%s", err);
	cr_assert_eq(gpup("list"), 0);
	cr_assert_str_eq(out, "no partitions; create one with 'gpup create --type NAME'\n");
	snprintf(path, sizeof(path), "%s/definitions/gpu1/" UU, state_dir);
	cr_assert_neq(access(path, F_OK), 0, "destroy removed the definition");
	cr_assert_eq(gpup("create --gpu gpu0 --type sim-16m-4 --uuid " UU), 0, "%s", err);
}

/* A FIFO as a definition and /dev/zero behind a GPU's settings: before,
 * the first hung the start and the second ate memory. */
Test(daemon_cli, state_files_that_are_not_regular_files_are_skipped)
{
	char path[256], log[16384], want[320];

	write_state("definitions", ".keep", "");
	write_state("definitions/gpu0", "keep", "");
	snprintf(path, sizeof(path), "%s/definitions/gpu0/" UU, state_dir);
	cr_assert_eq(mkfifo(path, 0600), 0);
	snprintf(path, sizeof(path), "%s/gpus", state_dir);
	mkdir(path, 0700);
	snprintf(path, sizeof(path), "%s/gpus/gpu0.json", state_dir);
	cr_assert_eq(symlink("/dev/zero", path), 0);
	start();
	snprintf(path, sizeof(path), "%s/daemon.log", run_dir);
	tl_slurp(path, log, sizeof(log));
	snprintf(want, sizeof(want), "gpup daemon: skipping partition file %s/definitions/gpu0/"
		 UU ": not a regular file\n", state_dir);
	cr_assert(strstr(log, want), "%s", log);
	snprintf(want, sizeof(want), "gpup daemon: ignoring GPU settings file %s/gpus/gpu0.json: "
		 "a symbolic link, not a regular file\n", state_dir);
	cr_assert(strstr(log, want), "%s", log);
	assert_gpu_sched(0, "weighted", 2000000, 0);
	cr_assert_eq(gpup("list"), 0, "%s", err);
	cr_assert(strstr(out, "(unavailable: not a regular file)"), "%s", out);
}

/* What a crash between write and rename leaves is removed at the next
 * start; nothing else is. */
Test(daemon_cli, stale_temporaries_are_removed_at_start)
{
	char path[256], log[16384], want[320];

	write_state("partitions", "." UU ".json.tmp", "{\"uuid\":");
	write_state("gpus", ".gpu1.json.tmp", "");
	write_state("partitions", ".notes.tmp", "mine");
	start();
	snprintf(path, sizeof(path), "%s/partitions/." UU ".json.tmp", state_dir);
	cr_assert_neq(access(path, F_OK), 0);
	snprintf(path, sizeof(path), "%s/gpus/.gpu1.json.tmp", state_dir);
	cr_assert_neq(access(path, F_OK), 0);
	snprintf(path, sizeof(path), "%s/partitions/.notes.tmp", state_dir);
	cr_assert_eq(access(path, F_OK), 0, "not a name the daemon writes");
	snprintf(path, sizeof(path), "%s/daemon.log", run_dir);
	tl_slurp(path, log, sizeof(log));
	snprintf(want, sizeof(want), "gpup daemon: removed %s/partitions/." UU ".json.tmp, left "
		 "by an interrupted write\n", state_dir);
	cr_assert(strstr(log, want), "%s", log);
	cr_assert_eq(count(log, ", left by an interrupted write"), 2, "%s", log);
}
