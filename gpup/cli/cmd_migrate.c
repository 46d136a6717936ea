// SPDX-License-Identifier: MIT
/*
 * `gpup migrate VM --to tcp:HOST:PORT`: live migration of a running
 * `gpup run` to a `gpup run --incoming` (docs/MIGRATION.md, "Migrating a
 * VM").  The VM's control socket does the work; its migration thread
 * answers on our connection with one JSON line per pre-copy round and
 * one at the end, which this turns into progress on a terminal and the
 * final figures.
 */
#include <errno.h>
#include <getopt.h>
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "gpup/cli/cli.h"

static void migrate_usage(FILE *f)
{
	fprintf(f,
		"usage: gpup migrate VM --to tcp:HOST:PORT [--downtime-ms N]\n"
		"                    [--bandwidth RATE] [--max-rounds N] [--json]\n"
		"\n"
		"Move a running VM to a 'gpup run --incoming tcp:HOST:PORT' (on another\n"
		"host, or on this one with another daemon), while it runs.  VM is the\n"
		"path of its control socket (gpup run --ctl) or its name (gpup run\n"
		"--name; see 'gpup vms').  Guest RAM, the pages the guest wrote through\n"
		"its partitions' VRAM apertures and each partition's own state are sent\n"
		"in rounds while the VM runs, until the rest fits the downtime budget at\n"
		"the rate measured and stops shrinking; then the VM stops here, the rest\n"
		"follows, and it runs there.  If anything fails (the destination refuses the stream or\n"
		"goes away, no convergence within the rounds allowed) the VM runs on\n"
		"here as before.\n"
		"\n"
		"  --to tcp:HOST:PORT  where the destination listens\n"
		"  --downtime-ms N     the longest the VM may stop (default 30)\n"
		"  --bandwidth RATE    cap on the stream in bytes/s, e.g. 100M (MiB/s);\n"
		"                      default: as fast as the link goes\n"
		"  --max-rounds N      pre-copy rounds before giving up (default 30)\n"
		"  --json              the final figures as JSON (no progress)\n"
		"\n"
		"On a terminal it shows each round: bytes sent, rate, what is left and\n"
		"the downtime that would cost.  Exit status: 0 the VM runs at the\n"
		"destination, 1 the migration failed (the VM runs here), 2 bad usage.\n");
}

struct mig_opts {
	const char *to;
	long downtime_ms, max_rounds;
	uint64_t bandwidth;
	bool json;
};

static int migrate_parse(int argc, char **argv, struct mig_opts *o)
{
	static const struct option opts[] = {
		{ "to", required_argument, NULL, 't' },
		{ "downtime-ms", required_argument, NULL, 'd' },
		{ "bandwidth", required_argument, NULL, 'b' },
		{ "max-rounds", required_argument, NULL, 'r' },
		{ "json", no_argument, NULL, 'j' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	char *end;
	int c;

	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		if (c == 't') {
			o->to = optarg;
		} else if (c == 'd' || c == 'r') {
			long v = strtol(optarg, &end, 10);

			if (!*optarg || *end || v < 1 || v > (c == 'd' ? 60000 : 1000)) {
				gpup_err("migrate", "--%s %s: want a number from 1 to %d",
					 c == 'd' ? "downtime-ms" : "max-rounds", optarg,
					 c == 'd' ? 60000 : 1000);
				return GPUP_EXIT_USAGE;
			}
			*(c == 'd' ? &o->downtime_ms : &o->max_rounds) = v;
		} else if (c == 'b') {
			if (gpup_parse_size(optarg, &o->bandwidth) < 0 || !o->bandwidth) {
				gpup_err("migrate", "--bandwidth %s: want bytes per second, e.g. "
					 "100M", optarg);
				return GPUP_EXIT_USAGE;
			}
		} else if (c == 'j') {
			o->json = true;
		} else {
			migrate_usage(c == 'h' ? stdout : stderr);
			return c == 'h' ? -1 : GPUP_EXIT_USAGE;
		}
	}
	if (optind + 1 != argc || !o->to || strncmp(o->to, "tcp:", 4)) {
		gpup_err("migrate", "%s", optind + 1 != argc ?
			 "give exactly one VM: its control socket or its name (see 'gpup vms')" :
			 "--to tcp:HOST:PORT is required");
		return GPUP_EXIT_USAGE;
	}
	return 0;
}

static double mig_num(json_object *o, const char *key)
{
	json_object *v;

	return json_object_object_get_ex(o, key, &v) ? json_object_get_double(v) : 0;
}

static void mig_progress(json_object *o)
{
	fprintf(stderr, "\rround %.0f: %.1f MiB sent at %.0f MiB/s, %.1f MiB left, "
		"downtime would be %.1f ms   ", mig_num(o, "round"),
		mig_num(o, "bytes") / 1048576.0, mig_num(o, "rate_bps") / 1048576.0,
		mig_num(o, "remaining_bytes") / 1048576.0, mig_num(o, "expected_downtime_ms"));
}

/* The result line: 0 when the VM moved. */
static int mig_result(json_object *o, const struct mig_opts *opt, bool tty)
{
	json_object *v;
	bool ok = json_object_object_get_ex(o, "ok", &v) && json_object_get_boolean(v);

	if (tty)
		fputc('\n', stderr);
	if (!ok) {
		json_object_object_get_ex(o, "error", &v);
		gpup_err("migrate", "%s", v ? json_object_get_string(v) : "failed");
		return GPUP_EXIT_FAIL;
	}
	if (opt->json) {
		json_object_object_del(o, "ok");
		json_object_object_del(o, "event");
		puts(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PRETTY |
						    JSON_C_TO_STRING_SPACED |
						    JSON_C_TO_STRING_NOSLASHESCAPE));
	} else {
		printf("migrated to %s: %.0f rounds, %.1f MiB in %.1f ms (%.0f MiB/s), "
		       "downtime %.1f ms\n", opt->to, mig_num(o, "rounds"),
		       mig_num(o, "bytes") / 1048576.0, mig_num(o, "total_ms"),
		       mig_num(o, "rate_bps") / 1048576.0, mig_num(o, "downtime_ms"));
	}
	return GPUP_EXIT_OK;
}

struct mig_follow {
	const struct mig_opts *opt;
	bool tty;
};

static void mig_round(json_object *o, void *arg)
{
	const struct mig_follow *m = arg;

	if (m->tty)
		mig_progress(o);
}

static int mig_done(json_object *o, void *arg)
{
	const struct mig_follow *m = arg;

	return mig_result(o, m->opt, m->tty);
}

static int cmd_migrate(const struct gpup_global *g, int argc, char **argv)
{
	struct mig_opts o = { .downtime_ms = 30, .max_rounds = 30 };
	json_object *req;
	char path[256];
	const char *txt;
	int rc = migrate_parse(argc, argv, &o), fd;
	FILE *f;

	if (rc)
		return rc < 0 ? GPUP_EXIT_OK : rc;
	fd = gpup_vm_connect(g, argv[optind], path, sizeof(path));
	if (fd < 0) {
		gpup_err("migrate", "cannot reach the VM's control socket %s: %s", path,
			 strerror(-fd));
		return GPUP_EXIT_FAIL;
	}
	req = json_object_new_object();
	json_object_object_add(req, "cmd", json_object_new_string("migrate"));
	json_object_object_add(req, "to", json_object_new_string(o.to));
	json_object_object_add(req, "downtime_ms", json_object_new_int64(o.downtime_ms));
	json_object_object_add(req, "bandwidth", json_object_new_int64((int64_t)o.bandwidth));
	json_object_object_add(req, "max_rounds", json_object_new_int64(o.max_rounds));
	txt = json_object_to_json_string_ext(req, JSON_C_TO_STRING_PLAIN);
	f = fdopen(fd, "r+");
	if (!f || fprintf(f, "%s\n", txt) < 0 || fflush(f)) {
		gpup_err("migrate", "cannot talk to %s: %s", path, strerror(errno));
		rc = GPUP_EXIT_FAIL;
	} else {
		rc = gpup_vm_follow(f, "migrate", "migration", mig_round, mig_done,
				    &(struct mig_follow){ &o, !o.json && isatty(STDERR_FILENO) });
	}
	json_object_put(req);
	if (f)
		fclose(f);
	else
		close(fd);
	return rc;
}

GPUP_COMMAND("migrate", "live-migrate a running VM to a 'gpup run --incoming'", cmd_migrate)
