/* SPDX-License-Identifier: MIT */
/*
 * The cli room (gpup/cli/): the gpup command line.  Subcommands register
 * themselves with GPUP_COMMAND() from the file that implements them
 * (kvmtool style: cmd_*.c), so main() never learns their names.  Also the
 * default directories, which only the command line resolves; the exit
 * statuses and the helpers the lower rooms share too (sizes, errors,
 * mkdir -p) are gpup/base/base.h's.  cmd_run.c (`gpup run`) is the one
 * file of gpup/ that includes hv/.
 */
#ifndef GPUP_CLI_H
#define GPUP_CLI_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include "gpup/base/base.h"

struct gpup_global {
	const char *run_dir;   /* resolved: --run-dir, GPUP_RUN_DIR, default */
	bool run_dir_given;    /* by --run-dir or GPUP_RUN_DIR */
	const char *state_dir; /* --state-dir, or NULL: the command's default */
	const char *argv0;
};

struct gpup_command {
	const char *name;
	const char *summary;   /* one line for `gpup --help` */
	/* argv[0] is the command name; getopt state is reset before the call */
	int (*main)(const struct gpup_global *g, int argc, char **argv);
	struct gpup_command *next;
};

void gpup_command_register(struct gpup_command *cmd);
const struct gpup_command *gpup_command_find(const char *name);
const struct gpup_command *gpup_command_first(void);

#define GPUP_COMMAND(cname, csummary, cmain)                                   \
	static struct gpup_command gpup_cmd_##cmain = {                        \
		.name = cname, .summary = csummary, .main = cmain,             \
	};                                                                     \
	__attribute__((constructor)) static void gpup_cmd_reg_##cmain(void)  \
	{                                                                      \
		gpup_command_register(&gpup_cmd_##cmain);                      \
	}

/* Default directories: root uses /run/gpup and /var/lib/gpup; others use
 * $XDG_RUNTIME_DIR/gpup (or /tmp/gpup-UID) and $XDG_STATE_HOME/gpup (or
 * ~/.local/state/gpup).  Returned strings are static. */
const char *gpup_default_run_dir(void);
const char *gpup_default_state_dir(void);

/* cmd_vms.c: connect to a VM's control socket: vm is its path (with a
 * '/') or a `gpup run --name` (RUN_DIR/vms/NAME.sock); the path into
 * path.  The socket, or -errno. */
int gpup_vm_connect(const struct gpup_global *g, const char *vm, char *path, size_t len);

/* cmd_vms.c: read a VM's answer to a migration or checkpoint, one JSON
 * object a line: each {"event":"round"} goes to round (may be NULL), the
 * first other object to result, whose exit status is returned.  A line
 * that is not JSON, or the end before a result, is an error of cmd's
 * ("the VM went away before the <what> ended"). */
struct json_object;
int gpup_vm_follow(FILE *f, const char *cmd, const char *what,
		   void (*round)(struct json_object *o, void *arg),
		   int (*result)(struct json_object *o, void *arg), void *arg);

/* cmd_vmckpt.c: `gpup checkpoint VM --to FILE [--incremental BASE]`, the
 * paths absolute, max_rounds 0 for the VMM's default; an exit status. */
int gpup_vm_checkpoint(const struct gpup_global *g, const char *vm, const char *file,
		       const char *base, long max_rounds, int json);

#endif
