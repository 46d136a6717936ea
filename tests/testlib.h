/* SPDX-License-Identifier: MIT */
/*
 * Helpers shared by the suites that drive the real gpup binary: run a CLI
 * command against a daemon whose run directory is DIR/run.  Starting and
 * stopping daemons is daemonlib.h's.
 */
#ifndef GPUP_TESTLIB_H
#define GPUP_TESTLIB_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

/* Run `$GPUP_BIN --run-dir DIR/run ARGS` with TMPDIR=DIR, stdout and
 * stderr together into out (NUL-terminated, truncated to len).  Returns
 * the exit status, or -1 if it did not exit normally. */
int tl_gpup(const char *dir, char *out, size_t len, const char *args);

/* A vfio-user client of partition uuid of the daemon whose run directory
 * is run_dir (its RUN_DIR/UUID.sock); the test fails if it cannot connect. */
struct vfu_client;
struct vfu_client *tl_attach(const char *run_dir, const char *uuid);

/* A `gpup` process (a VM, say) started from argv with $GPUP_BIN, its
 * stdout and stderr kept for when it ends.  It is killed if the test
 * process dies first, so a test that times out leaves no VM behind. */
#define TL_OUT_MAX 16384
struct tl_proc {
	pid_t pid;
	int out, err;                /* its stdout and stderr, read ends */
	int code;                    /* its exit status, after tl_proc_finish */
	char out_buf[TL_OUT_MAX], err_buf[TL_OUT_MAX];
};
void tl_proc_start(struct tl_proc *p, char *const argv[]);
/* Read all it writes, reap it; the test fails if a signal ended it. */
void tl_proc_finish(struct tl_proc *p);

/* Read the file at path into buf, NUL-terminated, truncated to len - 1
 * bytes; an unreadable file reads as "". */
void tl_slurp(const char *path, char *buf, size_t len);

/* Whether the host gives shmem files 2 MiB pages: its 2 MiB per-size
 * shmem_enabled control, or the global one where that says inherit, is
 * always, within_size, force or advise. */
bool tl_host_shmem_thp(void);

#endif
