// SPDX-License-Identifier: MIT
/*
 * `gpup fault inject --gpu ID [--kind lost|hang]`: fail a GPU of the
 * daemon's pool as a board failing would, to try failover
 * (docs/MIGRATION.md, "Failover"): each protected partition on it is
 * recovered on a healthy GPU from its last checkpoint link, each other
 * one is lost.  Prints what became of each, with RTO and RPO.
 */
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "gpup/cli/cli.h"
#include "gpup/ctl/ctl.h"
#include "uapi/gpup_ctl.h"

static void fault_usage(FILE *f)
{
	fprintf(f, "usage: gpup fault inject --gpu GPU [--kind lost|hang] [--json]\n\n"
		   "Fail GPU for good, as a board that fell off the bus (lost: every\n"
		   "operation fails) or whose engines stopped (hang).  Its VRAM counts as\n"
		   "gone.  Each partition on it that 'gpup protect' protects is recovered\n"
		   "on a healthy GPU from its last checkpoint, its VM keeping its\n"
		   "connection (the guest is told, and resubmits what came after); the\n"
		   "others are lost.  Prints, for each, where it runs now, RTO (time\n"
		   "without service) and RPO (work lost: the checkpoint's age and the\n"
		   "commands completed after it).\n");
}

static void print_result(json_object *p)
{
	json_object *f = NULL;

	json_object_object_get_ex(p, GPUP_CTL_F_FAILOVER, &f);
	if (!strcmp(gpup_ctl_str(f, GPUP_CTL_F_RESULT, "?"), "recovered"))
		printf("%s: recovered on %s: RTO %.1f ms, RPO %.1f ms (%lld commands lost)\n",
		       gpup_ctl_str(p, GPUP_CTL_F_UUID, "?"), gpup_ctl_str(f, GPUP_CTL_F_GPU, "?"),
		       gpup_ctl_int(f, GPUP_CTL_F_RTO_US, 0) / 1e3,
		       gpup_ctl_int(f, GPUP_CTL_F_RPO_US, 0) / 1e3,
		       (long long)gpup_ctl_int(f, GPUP_CTL_F_RPO_COMMANDS, 0));
	else
		printf("%s: lost: %s\n", gpup_ctl_str(p, GPUP_CTL_F_UUID, "?"),
		       gpup_ctl_str(f, GPUP_CTL_F_ERROR, "?"));
}

static int cmd_fault(const struct gpup_global *g, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "gpu", required_argument, NULL, 'g' }, { "kind", required_argument, NULL, 'k' },
		{ "json", no_argument, NULL, 'j' },      { "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	const char *gpu = NULL, *kind = "lost";
	json_object *req, *r, *parts = NULL;
	int o, json = 0, rc;

	while ((o = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		if (o == 'g')
			gpu = optarg;
		else if (o == 'k')
			kind = optarg;
		else if (o == 'j')
			json = 1;
		else if (o == 'h')
			return fault_usage(stdout), GPUP_EXIT_OK;
		else
			return fault_usage(stderr), GPUP_EXIT_USAGE;
	}
	if (optind + 1 != argc || strcmp(argv[optind], "inject") || !gpu) {
		gpup_err("fault", "%s", !gpu ? "--gpu GPU is required; see 'gpup gpus'"
					     : "the only action is 'inject'");
		return GPUP_EXIT_USAGE;
	}
	req = gpup_ctl_request(GPUP_CTL_M_FAULT_INJECT);
	json_object_object_add(req, GPUP_CTL_F_GPU, json_object_new_string(gpu));
	json_object_object_add(req, GPUP_CTL_F_KIND, json_object_new_string(kind));
	rc = gpup_ctl_cli_call(g->run_dir, "fault", req, &r);
	if (rc)
		return rc;
	json_object_object_get_ex(r, GPUP_CTL_F_PARTITIONS, &parts);
	if (json) {
		gpup_ctl_print_json(r);
	} else {
		printf("%s failed (%s)\n", gpup_ctl_str(r, GPUP_CTL_F_GPU, "?"), kind);
		for (size_t i = 0; parts && i < json_object_array_length(parts); i++)
			print_result(json_object_array_get_idx(parts, i));
	}
	json_object_put(r);
	return GPUP_EXIT_OK;
}

GPUP_COMMAND("fault", "fail a GPU to try failover (fault inject)", cmd_fault)
