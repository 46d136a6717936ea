/* SPDX-License-Identifier: MIT */
/*
 * The one way the test suites and the perf programs run a gpup daemon:
 * `gpup daemon --foreground` forked from the caller, in a directory of its
 * own (DIR/run for its sockets, DIR/state, DIR/daemon.log), dying with the
 * caller; and the one way to take a daemon and its directory down again,
 * whoever started it.  No Criterion here, so perf/ links it too.
 */
#ifndef GPUP_DAEMONLIB_H
#define GPUP_DAEMONLIB_H

#include <stdbool.h>
#include <sys/types.h>

struct dl_daemon {
	/* Socket paths are short (108 bytes with RUN/UUID.sock): so are these. */
	char dir[80];         /* the daemon's directory */
	char run_dir[96];     /* DIR/run: gpup.sock, UUID.sock, gpup.pid */
	char state_dir[96];   /* DIR/state */
	char log[96];         /* DIR/daemon.log */
	pid_t pid;            /* the daemon dl_start forked; 0 when none runs */
};

struct dl_opts {
	const char *bin;          /* the gpup binary; NULL: $GPUP_BIN */
	const char *dir;          /* an existing directory to run in (d->dir
				   * itself for a restart); NULL: a new one,
				   * ${TMPDIR:-/tmp}/NAME-XXXXXX */
	const char *name;         /* NAME of a new directory */
	const char *const *args;  /* more daemon arguments, NULL-terminated,
				   * e.g. --sim-gpus 1 --vram 256M; may be NULL */
	bool log;                 /* the daemon's stdout and stderr appended
				   * to DIR/daemon.log; otherwise /dev/null */
};

/* Start the daemon and wait up to 10 s for it to answer a control
 * request.  0, or -1 with errno set; a daemon that did start is stopped
 * again, and a directory made here is left for dl_teardown.  After
 * dl_stop, the same directory (o->dir = d->dir) restarts it on its state. */
int dl_start(struct dl_daemon *d, const struct dl_opts *o);

/* SIGTERM the daemon dl_start forked and reap it: its exit status, 128 +
 * the signal that ended it, or -1 when none was running. */
int dl_stop(struct dl_daemon *d);

/* dl_stop, then remove d->dir.  0, or -1 (with a line on stderr) when the
 * directory could not be removed.  Nothing to do on a zeroed d. */
int dl_teardown(struct dl_daemon *d);

/* The same for a daemon that `gpup daemon` detached, known only by its
 * directory: SIGTERM the pid in DIR/run/gpup.pid, wait up to 3 s for it to
 * go, then remove DIR.  Nothing to do on an empty name: made for a suite's
 * .fini, which runs even after a failed assertion. */
int dl_teardown_dir(const char *dir);

#endif
