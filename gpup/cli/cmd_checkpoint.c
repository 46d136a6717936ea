// SPDX-License-Identifier: MIT
/*
 * `gpup checkpoint --partition` and `gpup restore --partition`: a
 * partition's device state and VRAM into a file and back, through the
 * daemon (docs/MIGRATION.md has the file format).  `gpup checkpoint VM`
 * (a whole VM, through its control socket) is in cmd_vmckpt.c.  The file's path is
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
	const char *part, *file, *vm, *base;
	int json;
	long max_rounds;
};

static int parse(const char *cmd, const char *file_flag, void (*usage)(FILE *), int argc,
		 char **argv, struct ckpt_args *a)
{
	const struct option opts[] = {
		{ "partition", required_argument, NULL, 'p' }, { file_flag, required_argument, NULL, 'f' },
		{ "json", no_argument, NULL, 'j' },           { "help", no_argument, NULL, 'h' },
		{ "incremental", required_argument, NULL, 'i' },
		{ "max-rounds", required_argument, NULL, 'r' },
		{ 0 },
	};
	char *end;
	int o;

	while ((o = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		if (o == 'p')
			a->part = optarg;
		else if (o == 'f')
			a->file = optarg;
		else if (o == 'j')
			a->json = 1;
		else if (o == 'i' && !strcmp(cmd, "checkpoint"))
			a->base = optarg;
		else if (o == 'r' && !strcmp(cmd, "checkpoint") &&
			 (a->max_rounds = strtol(optarg, &end, 10)) >= 1 && a->max_rounds <= 1000 &&
			 !*end)
			continue;
		else if (o == 'r' && !strcmp(cmd, "checkpoint"))
			return gpup_err(cmd, "--max-rounds %s: want a number from 1 to 1000", optarg),
			       GPUP_EXIT_USAGE;
		else if (o == 'h')
			return usage(stdout), -1;
		else
			return usage(stderr), GPUP_EXIT_USAGE;
	}
	if (!a->part && optind + 1 == argc && !strcmp(cmd, "checkpoint"))
		a->vm = argv[optind++];
	if ((!a->part && !a->vm) || !a->file || optind < argc ||
	    ((a->base || a->max_rounds) && !a->vm)) {
		gpup_err(cmd, "%s", optind < argc ? "unexpected argument"
			 : !a->part && !a->vm ? (strcmp(cmd, "checkpoint") ?
				"--partition UUID is required (a VM restores with 'gpup run --restore')" :
				"give a VM (its control socket or name) or --partition UUID")
			 : !a->file ? "the file is required"
				    : "--incremental and --max-rounds are for a VM's checkpoint");
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
	fprintf(f, "usage: gpup checkpoint VM --to FILE [--incremental BASE] [--max-rounds N]\n"
		   "                       [--json]\n"
		   "       gpup checkpoint --partition UUID --to FILE [--json]\n\n"
		   "Write a running VM (VM: its control socket, gpup run --ctl, or its name,\n"
		   "gpup run --name) into FILE: guest RAM, the pages its CPUs wrote through\n"
		   "its partitions' VRAM apertures, each partition's device state and VRAM,\n"
		   "the vCPUs and the VMM's devices.  The VM keeps running: everything is\n"
		   "copied while it works, and it pauses only for the final copy.  With\n"
		   "--incremental BASE (this VM's last checkpoint, written or restored, in\n"
		   "the same directory) FILE holds only the RAM pages that changed since\n"
		   "BASE, and names BASE by its identity.  'gpup run --restore FILE' runs\n"
		   "the VM again, where it was.\n\n"
		   "With --partition, write one partition's device state and VRAM, through\n"
		   "the daemon; a running partition stops only for the last copy; see\n"
		   "'gpup restore'.\n\n"
		   "FILE is written whole or not at all (a temporary name, fsync, rename,\n"
		   "fsync of the directory): a crash leaves the previous file as it was.\n\n"
		   "  VM                  the VM's control socket path or its name\n"
		   "  --to FILE           the file to write (its directory must exist)\n"
		   "  --incremental BASE  only what changed since BASE (VM checkpoints)\n"
		   "  --max-rounds N      copy rounds while the VM runs, at most (default 8):\n"
		   "                      fewer make a VM that writes faster than the disk\n"
		   "                      takes a smaller file, and pause it longer\n"
		   "  --partition UUID    a partition instead of a VM\n"
		   "  --json              the figures as JSON\n\n"
		   "Exit status: 0 written, 1 failed (the VM runs on), 2 bad usage.\n");
}

static int cmd_checkpoint(const struct gpup_global *g, int argc, char **argv)
{
	struct ckpt_args a = { 0 };
	json_object *r;
	int rc = parse("checkpoint", "to", checkpoint_usage, argc, argv, &a);

	if (rc)
		return rc < 0 ? GPUP_EXIT_OK : rc;
	if (a.vm) {
		char file[PATH_MAX], base[PATH_MAX];

		if ((rc = absolute("checkpoint", a.file, file)) ||
		    (a.base && (rc = absolute("checkpoint", a.base, base))))
			return rc;
		return gpup_vm_checkpoint(g, a.vm, file, a.base ? base : NULL, a.max_rounds,
					  a.json);
	}
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

GPUP_COMMAND("checkpoint", "write a running VM, or a partition, into a checkpoint file",
	     cmd_checkpoint)

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
