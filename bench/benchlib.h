/* SPDX-License-Identifier: MIT */
/*
 * Helpers shared by the benchmark programs that need a running daemon:
 * start `gpup daemon --foreground` with one small sim GPU in a directory of
 * its own, and take it and the directory down again.
 */
#ifndef GPUP_BENCHLIB_H
#define GPUP_BENCHLIB_H

#include <sys/types.h>

struct bl_daemon {
	char base[96];       /* $TMPDIR/NAME-XXXXXX, removed by stop */
	char run_dir[112];   /* base/run: the daemon's sockets */
	pid_t pid;
};

/* Start the daemon of the gpup binary bin (one sim GPU of 256 MiB) in a new
 * directory named after the benchmark; wait up to 5 s for its control
 * socket.  The daemon dies with the benchmark.  0, or -1 on failure. */
int bl_daemon_start(struct bl_daemon *d, const char *bin, const char *name);

/* SIGTERM and reap the daemon, remove its directory. */
void bl_daemon_stop(struct bl_daemon *d, const char *name);

#endif
