// SPDX-License-Identifier: MIT
/*
 * `gpup move UUID --to-gpu GPU`: a running partition to another GPU of
 * the daemon's pool, its client (a VM) connected throughout.  The daemon
 * does the work (docs/MIGRATION.md, "Moving a partition"); this prints
 * what it took.
 */
#include <getopt.h>
#include <stdio.h>

#include "gpup/cli/cli.h"
#include "gpup/ctl/ctl.h"
#include "uapi/gpup_ctl.h"

static void move_usage(FILE *f)
{
	fprintf(f, "usage: gpup move UUID --to-gpu GPU [--json]\n\n"
		   "Move a partition to another GPU while its VM runs.  The VM keeps its\n"
		   "connection, socket and UUID, its mapping of the partition's VRAM and\n"
		   "its doorbells and interrupts; its work pauses for a few milliseconds,\n"
		   "whatever the VRAM size, and resumes on the new GPU where it stopped.\n"
		   "GPU must offer the partition's type and every feature the partition\n"
		   "exposes (see 'gpup create --compat'); otherwise, or when anything\n"
		   "fails on the way, the partition stays where it was.\n");
}

static int cmd_move(const struct gpup_global *g, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "to-gpu", required_argument, NULL, 't' }, { "json", no_argument, NULL, 'j' },
		{ "help", no_argument, NULL, 'h' },         { 0 },
	};
	const char *to = NULL;
	json_object *req, *r;
	int o, json = 0, rc;

	while ((o = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		if (o == 't')
			to = optarg;
		else if (o == 'j')
			json = 1;
		else if (o == 'h')
			return move_usage(stdout), GPUP_EXIT_OK;
		else
			return move_usage(stderr), GPUP_EXIT_USAGE;
	}
	if (optind + 1 != argc || !to) {
		gpup_err("move", "%s", !to ? "--to-gpu GPU is required; see 'gpup gpus'"
					   : "give exactly one partition UUID; see 'gpup list'");
		return GPUP_EXIT_USAGE;
	}
	req = gpup_ctl_request(GPUP_CTL_M_MOVE);
	json_object_object_add(req, GPUP_CTL_F_UUID, json_object_new_string(argv[optind]));
	json_object_object_add(req, GPUP_CTL_F_GPU, json_object_new_string(to));
	rc = gpup_ctl_cli_call(g->run_dir, "move", req, &r);
	if (rc)
		return rc;
	if (json)
		gpup_ctl_print_json(r);
	else
		printf("%s: moved from %s to %s, paused %.2f ms, %.2f ms in all\n",
		       gpup_ctl_str(r, GPUP_CTL_F_UUID, "?"), gpup_ctl_str(r, GPUP_CTL_F_FROM, "?"),
		       gpup_ctl_str(r, GPUP_CTL_F_GPU, "?"),
		       gpup_ctl_int(r, GPUP_CTL_F_MOVE_PAUSE_US, 0) / 1e3,
		       gpup_ctl_int(r, GPUP_CTL_F_MOVE_US, 0) / 1e3);
	json_object_put(r);
	return GPUP_EXIT_OK;
}

GPUP_COMMAND("move", "move a running partition to another GPU", cmd_move)
