// SPDX-License-Identifier: MIT
/*
 * `gpup storage`: where a protection store can go (docs/MIGRATION.md,
 * "Failover"): the daemon's state directory with its file system and
 * free space, and the host's NVMe namespaces (libnvme), or a line saying
 * there are none.
 */
#include <getopt.h>
#include <stdio.h>

#include "gpup/base/base.h"
#include "gpup/cli/cli.h"
#include "gpup/ctl/ctl.h"
#include "uapi/gpup_ctl.h"

static void storage_usage(FILE *f)
{
	fprintf(f, "usage: gpup storage [--json]\n\n"
		   "List the places a protection store ('gpup protect --store') can go:\n"
		   "the daemon's state directory and default store, each with its file\n"
		   "system and free space, and the host's NVMe namespaces.\n");
}

static void print_places(json_object *r)
{
	json_object *a = NULL;
	char sz[16], fr[16];

	json_object_object_get_ex(r, GPUP_CTL_F_PLACES, &a);
	printf("%-26s %-32s %-8s %10s %10s\n", "PLACE", "PATH", "FS", "SIZE", "FREE");
	for (size_t i = 0; a && i < json_object_array_length(a); i++) {
		json_object *p = json_object_array_get_idx(a, i);

		printf("%-26s %-32s %-8s %10s %10s%s%s\n", gpup_ctl_str(p, GPUP_CTL_F_NAME, "?"),
		       gpup_ctl_str(p, GPUP_CTL_F_PATH, "?"), gpup_ctl_str(p, GPUP_CTL_F_FSTYPE, "-"),
		       gpup_format_size((uint64_t)gpup_ctl_int(p, GPUP_CTL_F_SIZE, 0), sz, sizeof(sz)),
		       gpup_format_size((uint64_t)gpup_ctl_int(p, GPUP_CTL_F_FREE, 0), fr, sizeof(fr)),
		       gpup_ctl_str(p, GPUP_CTL_F_ERROR, NULL) ? "  " : "",
		       gpup_ctl_str(p, GPUP_CTL_F_ERROR, ""));
	}
}

static void print_nvme(json_object *r)
{
	json_object *a = NULL;
	char sz[16];

	json_object_object_get_ex(r, GPUP_CTL_F_NVME, &a);
	if (!a || !json_object_array_length(a)) {
		printf("NVMe: %s\n", gpup_ctl_str(r, GPUP_CTL_F_NVME_NOTE, "none"));
		return;
	}
	printf("%-26s %-32s %10s\n", "NVME NAMESPACE", "MODEL", "SIZE");
	for (size_t i = 0; i < json_object_array_length(a); i++) {
		json_object *n = json_object_array_get_idx(a, i);

		printf("%-26s %-32s %10s\n", gpup_ctl_str(n, GPUP_CTL_F_NAME, "?"),
		       gpup_ctl_str(n, GPUP_CTL_F_MODEL, "?"),
		       gpup_format_size((uint64_t)gpup_ctl_int(n, GPUP_CTL_F_SIZE, 0), sz, sizeof(sz)));
	}
}

static int cmd_storage(const struct gpup_global *g, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "json", no_argument, NULL, 'j' }, { "help", no_argument, NULL, 'h' }, { 0 },
	};
	json_object *r;
	int o, json = 0, rc;

	while ((o = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		if (o == 'j')
			json = 1;
		else if (o == 'h')
			return storage_usage(stdout), GPUP_EXIT_OK;
		else
			return storage_usage(stderr), GPUP_EXIT_USAGE;
	}
	if (optind != argc)
		return storage_usage(stderr), GPUP_EXIT_USAGE;
	rc = gpup_ctl_cli_call(g->run_dir, "storage", gpup_ctl_request(GPUP_CTL_M_STORAGE), &r);
	if (rc)
		return rc;
	if (json) {
		gpup_ctl_print_json(r);
	} else {
		print_places(r);
		print_nvme(r);
	}
	json_object_put(r);
	return GPUP_EXIT_OK;
}

GPUP_COMMAND("storage", "where a protection store can go", cmd_storage)
