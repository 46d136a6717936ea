// SPDX-License-Identifier: MIT
/*
 * `gpup protect UUID --every MS [--store DIR]`: keep a chain of
 * checkpoint links of a partition, one every MS, so that it can be
 * recovered on another GPU if its own fails (docs/MIGRATION.md,
 * "Failover").  `--every 0` stops protecting it.  The daemon does the
 * work, on a thread of its own; this prints what it says.
 */
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>

#include "gpup/cli/cli.h"
#include "gpup/ctl/ctl.h"
#include "uapi/gpup_ctl.h"

static void protect_usage(FILE *f)
{
	fprintf(f, "usage: gpup protect UUID --every MS [--store DIR] [--json]\n\n"
		   "Protect a partition: every MS milliseconds the daemon writes a\n"
		   "checkpoint link of it into DIR (default: STATE_DIR/protect), a full\n"
		   "base now and then and otherwise only what changed, stopping its\n"
		   "work only for the final copy of each.  If its GPU fails, the\n"
		   "partition is recovered on a healthy GPU from the last link while\n"
		   "its VM keeps running ('gpup fault inject' tries it).  The protection\n"
		   "is saved with the partition and survives a daemon restart.\n"
		   "--every 0 stops it.  See 'gpup storage' for where DIR can go.\n");
}

static int parse_ms(const char *s, long long *ms)
{
	char *end;

	*ms = strtoll(s, &end, 10);
	return *s && !*end && *ms >= 0 ? 0 : -1;
}

static int cmd_protect(const struct gpup_global *g, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "every", required_argument, NULL, 'e' }, { "store", required_argument, NULL, 's' },
		{ "json", no_argument, NULL, 'j' },        { "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	const char *every = NULL, *store = NULL;
	char abs[PATH_MAX];
	long long ms = 0;
	json_object *req, *r;
	int o, json = 0, rc;

	while ((o = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		if (o == 'e')
			every = optarg;
		else if (o == 's')
			store = optarg;
		else if (o == 'j')
			json = 1;
		else if (o == 'h')
			return protect_usage(stdout), GPUP_EXIT_OK;
		else
			return protect_usage(stderr), GPUP_EXIT_USAGE;
	}
	if (optind + 1 != argc || !every || parse_ms(every, &ms)) {
		gpup_err("protect", "%s", optind + 1 != argc ? "give exactly one partition UUID; "
							       "see 'gpup list'"
				       : "--every MS is required (milliseconds, 0 to stop)");
		return GPUP_EXIT_USAGE;
	}
	if (store && !realpath(store, abs)) {
		gpup_err("protect", "the store %s is not a directory here", store);
		return GPUP_EXIT_USAGE;
	}
	req = gpup_ctl_request(GPUP_CTL_M_PROTECT);
	json_object_object_add(req, GPUP_CTL_F_UUID, json_object_new_string(argv[optind]));
	json_object_object_add(req, GPUP_CTL_F_EVERY_MS, json_object_new_int64(ms));
	if (store)
		json_object_object_add(req, GPUP_CTL_F_STORE, json_object_new_string(abs));
	rc = gpup_ctl_cli_call(g->run_dir, "protect", req, &r);
	if (rc)
		return rc;
	if (json)
		gpup_ctl_print_json(r);
	else if (ms)
		printf("%s: protected every %lld ms into %s\n", gpup_ctl_str(r, GPUP_CTL_F_UUID, "?"),
		       ms, gpup_ctl_str(r, GPUP_CTL_F_STORE, "?"));
	else
		printf("%s: not protected\n", gpup_ctl_str(r, GPUP_CTL_F_UUID, "?"));
	json_object_put(r);
	return GPUP_EXIT_OK;
}

GPUP_COMMAND("protect", "keep checkpoints of a partition for failover", cmd_protect)
