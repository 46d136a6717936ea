// SPDX-License-Identifier: MIT
/*
 * gpup: one binary, git-style subcommands.  Global options come before the
 * command; everything after it belongs to the command.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gpup/cli/cli.h"
#include "uapi/gpup_vgpu.h"

#define GPUP_VERSION "0.1.0"

static void usage(FILE *f)
{
	fprintf(f,
		"usage: gpup [--run-dir DIR] COMMAND [ARGS...]\n"
		"\n"
		"GPU partitioning for KVM: a daemon serves partitions of GPUs as\n"
		"vfio-user devices; `gpup run` boots VMs that use them.\n"
		"\n"
		"global options:\n"
		"  --run-dir DIR  the daemon's run directory (sockets); also from\n"
		"                 GPUP_RUN_DIR; default %s\n"
		"  -h, --help     this help; `gpup COMMAND --help` for a command\n"
		"  --version      print the version\n"
		"\ncommands:\n",
		gpup_default_run_dir());
	for (const struct gpup_command *c = gpup_command_first(); c; c = c->next)
		fprintf(f, "  %-12s %s\n", c->name, c->summary);
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "run-dir", required_argument, NULL, 'r' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ 0 },
	};
	struct gpup_global g = { .argv0 = argv[0] };
	const struct gpup_command *cmd;
	int c;

	g.run_dir = getenv("GPUP_RUN_DIR");
	/* '+': stop at the first non-option, the command name. */
	while ((c = getopt_long(argc, argv, "+h", opts, NULL)) != -1) {
		switch (c) {
		case 'r':
			g.run_dir = optarg;
			break;
		case 'h':
			usage(stdout);
			return GPUP_EXIT_OK;
		case 'V':
			printf("gpup %s (vGPU ABI %d.%d)\n", GPUP_VERSION,
			       GPUP_ABI_VERSION_MAJOR, GPUP_ABI_VERSION_MINOR);
			return GPUP_EXIT_OK;
		default:
			usage(stderr);
			return GPUP_EXIT_USAGE;
		}
	}
	if (!g.run_dir || !g.run_dir[0])
		g.run_dir = gpup_default_run_dir();
	if (optind >= argc) {
		usage(stderr);
		return GPUP_EXIT_USAGE;
	}
	cmd = gpup_command_find(argv[optind]);
	if (!cmd) {
		fprintf(stderr, "gpup: unknown command '%s'; see 'gpup --help'\n",
			argv[optind]);
		return GPUP_EXIT_USAGE;
	}
	argc -= optind;
	argv += optind;
	optind = 0; /* full getopt reset for the command's own parsing */
	return cmd->main(&g, argc, argv);
}
