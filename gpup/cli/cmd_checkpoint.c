// SPDX-License-Identifier: MIT
/*
 * `gpup checkpoint --partition` and `gpup restore --partition`: a
 * partition's device state and VRAM into a file and back, through the
 * daemon (docs/MIGRATION.md has the file format).  The file's path is
 * resolved here, against the caller's working directory, because the
 * daemon has its own.
 */
#include <errno.h>
#include <getopt.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gpup/cli/cli.h"
#include "gpup/ctl/ctl.h"
#include "uapi/gpup_ctl.h"

struct ckpt_args {
	const char *part, *file;
	int json;
};

static int parse(const char *cmd, const char *file_flag, void (*usage)(FILE *), int argc,
		 char **argv, struct ckpt_args *a)
{
	const struct option opts[] = {
		{ "partition", required_argument, NULL, 'p' }, { file_flag, required_argument, NULL, 'f' },
		{ "json", no_argument, NULL, 'j' },           { "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	int o;

	while ((o = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		if (o == 'p')
			a->part = optarg;
		else if (o == 'f')
			a->file = optarg;
		else if (o == 'j')
			a->json = 1;
		else if (o == 'h')
			return usage(stdout), -1;
		else
			return usage(stderr), GPUP_EXIT_USAGE;
	}
	if (!a->part || !a->file || optind < argc) {
		gpup_err(cmd, "%s", optind < argc ? "unexpected argument"
			 : !a->part ? "--partition UUID is required (VM checkpoints are not built yet)"
				    : "the file is required");
		return GPUP_EXIT_USAGE;
	}
	return 0;
}

/* FILE as an absolute path; its directory must exist. */
static int absolute(const char *cmd, const char *file, char *out)
{
	char a[PATH_MAX], b[PATH_MAX], dir[PATH_MAX];

	snprintf(a, sizeof(a), "%s", file);
	snprintf(b, sizeof(b), "%s", file);
	if (!realpath(dirname(a), dir)) {
		gpup_err(cmd, "%s: %s", file, strerror(errno));
		return GPUP_EXIT_USAGE;
	}
	if (snprintf(out, PATH_MAX, "%s/%s", strcmp(dir, "/") ? dir : "", basename(b)) >= PATH_MAX) {
		gpup_err(cmd, "%s: path too long", file);
		return GPUP_EXIT_USAGE;
	}
	return 0;
}

static int call(const struct gpup_global *g, const char *cmd, const char *method,
		const struct ckpt_args *a, json_object **r)
{
	char path[PATH_MAX];
	json_object *req;
	int rc = absolute(cmd, a->file, path);

	if (rc)
		return rc;
	req = gpup_ctl_request(method);
	json_object_object_add(req, GPUP_CTL_F_UUID, json_object_new_string(a->part));
	json_object_object_add(req, GPUP_CTL_F_PATH, json_object_new_string(path));
	return gpup_ctl_cli_call(g->run_dir, cmd, req, r);
}

static double mib(json_object *r, const char *k)
{
	return (double)gpup_ctl_int(r, k, 0) / (1 << 20);
}

static void checkpoint_usage(FILE *f)
{
	fprintf(f, "usage: gpup checkpoint --partition UUID --to FILE [--json]\n\n"
		   "Write a partition's device state and VRAM into FILE.  A running\n"
		   "partition keeps running: its VRAM is copied while its guest works,\n"
		   "and it stops only for the last copy.  FILE is written whole or not at\n"
		   "all (a temporary name, fsync, rename).  See 'gpup restore'.\n");
}

static int cmd_checkpoint(const struct gpup_global *g, int argc, char **argv)
{
	struct ckpt_args a = { 0 };
	json_object *r;
	int rc = parse("checkpoint", "to", checkpoint_usage, argc, argv, &a);

	if (rc)
		return rc < 0 ? GPUP_EXIT_OK : rc;
	rc = call(g, "checkpoint", GPUP_CTL_M_CHECKPOINT, &a, &r);
	if (rc)
		return rc;
	if (a.json)
		gpup_ctl_print_json(r);
	else
		printf("%s: %.1f MiB written in %lld ms, %lld rounds, %lld pages sent, "
		       "%lld zero pages skipped, %.1f MiB while stopped\n",
		       a.file, mib(r, GPUP_CTL_F_MIG_BYTES), (long long)gpup_ctl_int(r, GPUP_CTL_F_MS, 0),
		       (long long)gpup_ctl_int(r, GPUP_CTL_F_MIG_ROUNDS, 0),
		       (long long)gpup_ctl_int(r, GPUP_CTL_F_MIG_PAGES, 0),
		       (long long)gpup_ctl_int(r, GPUP_CTL_F_MIG_ZERO_PAGES, 0),
		       mib(r, GPUP_CTL_F_MIG_STOP_BYTES));
	json_object_put(r);
	return GPUP_EXIT_OK;
}

GPUP_COMMAND("checkpoint", "write a partition's state and VRAM into a file", cmd_checkpoint)

static void restore_usage(FILE *f)
{
	fprintf(f, "usage: gpup restore --partition UUID --from FILE [--json]\n\n"
		   "Load a checkpoint into a partition of the same type and VRAM size\n"
		   "(on any GPU whose built-in kernels include the checkpoint's).  Every\n"
		   "chunk is checked before the partition runs again; a file that is cut,\n"
		   "corrupt or for another type is refused with one line naming what is\n"
		   "wrong, and the partition is then left reset.\n");
}

static int cmd_restore(const struct gpup_global *g, int argc, char **argv)
{
	struct ckpt_args a = { 0 };
	json_object *r;
	int rc = parse("restore", "from", restore_usage, argc, argv, &a);

	if (rc)
		return rc < 0 ? GPUP_EXIT_OK : rc;
	rc = call(g, "restore", GPUP_CTL_M_RESTORE, &a, &r);
	if (rc)
		return rc;
	if (a.json)
		gpup_ctl_print_json(r);
	else
		printf("%s: %.1f MiB loaded into %s in %lld ms\n", a.file,
		       mib(r, GPUP_CTL_F_MIG_BYTES), a.part,
		       (long long)gpup_ctl_int(r, GPUP_CTL_F_MS, 0));
	json_object_put(r);
	return GPUP_EXIT_OK;
}

GPUP_COMMAND("restore", "load a checkpoint file into a partition", cmd_restore)
