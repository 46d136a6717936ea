/* SPDX-License-Identifier: MIT */
/*
 * Helpers shared by the suites that drive the real gpup binary: run a CLI
 * command against a daemon whose run directory is DIR/run, and take a
 * daemon and its directory down again whatever state a test left them in.
 */
#ifndef GPUP_TESTLIB_H
#define GPUP_TESTLIB_H

#include <stddef.h>

/* Run `$GPUP_BIN --run-dir DIR/run ARGS` with TMPDIR=DIR, stdout and
 * stderr together into out (NUL-terminated, truncated to len).  Returns
 * the exit status, or -1 if it did not exit normally. */
int tl_gpup(const char *dir, char *out, size_t len, const char *args);

/* SIGTERM the daemon named by DIR/run/gpup.pid, wait up to 3 s for it to
 * go, then remove DIR.  Safe on an empty dir name or a missing daemon:
 * made for a suite's .fini, which runs even after a failed assertion. */
void tl_stop_daemon(const char *dir);

#endif
