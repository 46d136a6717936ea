// SPDX-License-Identifier: MIT
/*
 * gpup: one binary, git-style subcommands.  The global options
 * (--run-dir, --state-dir) may come before the command or among its
 * arguments; everything else after the command belongs to it.
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
		"usage: gpup [--run-dir DIR] [--state-dir DIR] COMMAND [ARGS...]\n"
		"\n"
		"GPU partitioning for KVM: a daemon serves partitions of GPUs as\n"
		"vfio-user devices; `gpup run` boots VMs that use them.\n"
		"\n"
		"global options (before or after the command):\n"
		"  --run-dir DIR    the daemon's run directory (sockets); also from\n"
		"                   GPUP_RUN_DIR; default %s\n"
		"  --state-dir DIR  the daemon's state directory; default %s\n"
		"  -h, --help       this help; `gpup COMMAND --help` for a command\n"
		"  --version        print the version\n"
		"Under --json a command's errors are JSON objects on stderr, e.g.\n"
		"{\"command\": \"create\", \"error\": \"no GPU 'gpu5'; see 'gpup gpus'\",\n"
		" \"code\": \"ENODEV\"}; code is null where no errno name applies.\n"
		"Exit status: 0 success, 1 failed at run time, 2 a wrong request\n"
		"(nothing changed); `gpup bench` adds its own (see its --help).\n"
		"\ncommands:\n",
		gpup_default_run_dir(), gpup_default_state_dir());
	for (const struct gpup_command *c = gpup_command_first(); c; c = c->next)
		fprintf(f, "  %-12s %s\n", c->name, c->summary);
}

/* --run-dir and --state-dir (as "--opt DIR" or "--opt=DIR") anywhere
 * among the command's arguments up to a "--": taken out, so that each
 * command's own parser never sees them.  --json anywhere turns errors
 * into JSON.  0, or -1 when one lacks its value. */
static int take_globals(int *argc, char **argv, struct gpup_global *g)
{
	static const char *const names[] = { "--run-dir", "--state-dir" };
	int out = 1;

	for (int i = 1; i < *argc; i++) {
		const char *val = NULL;
		int k, which = -1;

		if (!strcmp(argv[i], "--")) {
			while (i < *argc)
				argv[out++] = argv[i++];
			break;
		}
		if (!strcmp(argv[i], "--json"))
			gpup_err_json(true);
		for (k = 0; k < 2 && !val; k++) {
			size_t n = strlen(names[k]);

			if (!strcmp(argv[i], names[k])) {
				if (i + 1 >= *argc)
					return -1;
				val = argv[++i];
			} else if (!strncmp(argv[i], names[k], n) && argv[i][n] == '=') {
				val = argv[i] + n + 1;
			}
			which = val ? k : -1;
		}
		if (!val) {
			argv[out++] = argv[i];
			continue;
		}
		if (which == 0) {
			g->run_dir = val;
			g->run_dir_given = true;
		} else {
			g->state_dir = val;
		}
	}
	argv[out] = NULL;
	*argc = out;
	return 0;
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "run-dir", required_argument, NULL, 'r' },
		{ "state-dir", required_argument, NULL, 's' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ 0 },
	};
	struct gpup_global g = { .argv0 = argv[0] };
	const struct gpup_command *cmd;
	int c;

	g.run_dir = getenv("GPUP_RUN_DIR");
	g.run_dir_given = g.run_dir && g.run_dir[0];
	/* '+': stop at the first non-option, the command name. */
	while ((c = getopt_long(argc, argv, "+h", opts, NULL)) != -1) {
		switch (c) {
		case 'r':
			g.run_dir = optarg;
			g.run_dir_given = true;
			break;
		case 's':
			g.state_dir = optarg;
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
	if (take_globals(&argc, argv, &g)) {
		gpup_err(cmd->name, "--run-dir and --state-dir need a directory");
		return GPUP_EXIT_USAGE;
	}
	if (!g.run_dir || !g.run_dir[0])
		g.run_dir = gpup_default_run_dir();
	optind = 0; /* full getopt reset for the command's own parsing */
	return cmd->main(&g, argc, argv);
}
