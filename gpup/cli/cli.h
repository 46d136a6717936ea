/* SPDX-License-Identifier: MIT */
/*
 * The cli room (gpup/cli/): the gpup command line.  Subcommands register
 * themselves with GPUP_COMMAND() from the file that implements them
 * (kvmtool style: cmd_*.c here, bench.c in the bench room), so main()
 * never learns their names.  Also the small helpers every command shares
 * (cli.c): size parsing, directory defaults, errors.  cmd_run.c (`gpup
 * run`) is the one file of gpup/ that includes hv/.
 *
 * Exit codes, for every subcommand:
 *   0  success
 *   1  the operation failed at run time (I/O, the daemon went away...)
 *   2  the request was wrong: bad flag, unknown name, no capacity, in use
 */
#ifndef GPUP_CLI_H
#define GPUP_CLI_H

#include <stdint.h>
#include <stdio.h>

#define GPUP_EXIT_OK 0
#define GPUP_EXIT_FAIL 1
#define GPUP_EXIT_USAGE 2

struct gpup_global {
	const char *run_dir;   /* resolved: --run-dir, GPUP_RUN_DIR, default */
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

/* "8G", "512M", "4096", "64k": bytes.  -1 and errno = EINVAL on junk,
 * ERANGE on overflow.  Suffixes K, M, G, T (powers of 1024), any case,
 * optional trailing "iB" or "B". */
int gpup_parse_size(const char *s, uint64_t *out);

/* Format bytes as "8 GiB", "512 MiB", "4 KiB" or "123 B" when not a whole
 * multiple.  Returns buf. */
char *gpup_format_size(uint64_t bytes, char *buf, size_t len);

/* Default directories: root uses /run/gpup and /var/lib/gpup; others use
 * $XDG_RUNTIME_DIR/gpup (or /tmp/gpup-UID) and $XDG_STATE_HOME/gpup (or
 * ~/.local/state/gpup).  Returned strings are static. */
const char *gpup_default_run_dir(void);
const char *gpup_default_state_dir(void);

/* mkdir -p with mode for the last component; 0 or -errno. */
int gpup_mkdir_p(const char *path, unsigned int mode);

/* Print "gpup CMD: message" to stderr, printf style, with a newline. */
void gpup_err(const char *cmd, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

#endif
