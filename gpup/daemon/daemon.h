/* SPDX-License-Identifier: MIT */
/*
 * The daemon room (gpup/daemon/): the gpup daemon.  It owns the pool of
 * GPUs, serves every partition on its vfio-user socket (daemon_part.c)
 * and answers the control API on RUN_DIR/gpup.sock (daemon_conn.c,
 * daemon_ctl.c, daemon_sched.c).
 *
 * DOC: the loop
 *
 * One thread runs an epoll loop over the control socket, its connections,
 * every partition's listening socket and a signalfd (SIGTERM and SIGINT
 * stop it cleanly; SIGHUP reopens the log file, or stops it as the others
 * when its stderr was a terminal, which has gone away).
 * Control connections are read without blocking and answered once a whole
 * request is in, so a silent client only holds a slot until its deadline
 * (see daemon_conn.c); requests are short and run inline.  Each accepted
 * vfio-user client gets its own thread (see gpup/vgpu/vgpu.h), so a slow
 * or hostile VMM never stalls the loop or another partition.  Only the loop thread
 * touches the pool, so the pool needs no lock.
 */
#ifndef GPUP_DAEMON_H
#define GPUP_DAEMON_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "gpup/jail/jail.h"
#include "scheduler/sched.h"

#define GPUP_DAEMON_MAX_GPUS 16u   /* the pool's GPUP_POOL_MAX_GPUS */

struct gpup_daemon_cfg {
	const char *run_dir;
	const char *state_dir;
	unsigned int sim_gpus;
	/* The generation of sim GPU i (gpup_gpu_gen_find); NULL: the
	 * default.  Only the first sim_gpus entries are read. */
	const char *sim_gen[GPUP_DAEMON_MAX_GPUS];
	uint64_t vram;            /* per sim GPU, a power of two */
	enum sched_policy policy; /* every engine starts under it ... */
	uint64_t slice_ns;        /* 0: the scheduler's default */
	/* ... unless the GPU has saved settings (gpup sched --gpu), which win
	 * over policy and slice except where these say they were given. */
	bool policy_given, slice_given;
	/* Confinement (docs/SECURITY.md).  The seccomp filters of the
	 * client-serving and engine threads: on (GPUP_JAIL_KILL) unless set
	 * otherwise.  user: once the directories, sockets and GPUs are set
	 * up, drop root for good and run as this user (uid, gid; the caller
	 * looked it up, gpup_jail_user); NULL: keep the ids it started with. */
	enum gpup_jail_mode seccomp;
	const char *user;
	uid_t uid;
	gid_t gid;
	/* Log lines appended to this file (opened over stderr, opened again
	 * on SIGHUP); NULL: stderr as it is. */
	const char *log_path;
	/* "[ADDR:]PORT": serve Prometheus metrics at http://ADDR:PORT/metrics
	 * (ADDR 127.0.0.1 unless given); NULL: none. */
	const char *metrics;
	/* Tests only: answer the "fault" control method (GPUP_TEST_FAULTS=1). */
	bool test_faults;
};

#define GPUP_DAEMON_DEFAULT_GPUS 2u
#define GPUP_DAEMON_DEFAULT_POLICY SCHED_POLICY_WEIGHTED
#define GPUP_DAEMON_DEFAULT_VRAM (8ull << 30)
#define GPUP_DAEMON_MIN_VRAM (16ull << 20)

/* Run until SIGTERM or SIGINT (or SIGHUP when stderr was a terminal: it
 * went away; otherwise SIGHUP reopens the log file).  ready_fd (or -1)
 * gets "1" once the control socket accepts requests, or "0" and the
 * reason when the start failed, then is closed.  $NOTIFY_SOCKET, when
 * set, gets READY=1 then, STOPPING=1 at the end.  0 after a clean stop,
 * or -errno when it could not start, the reason logged (-EEXIST: another
 * daemon already serves the run directory or holds the state directory's
 * lock). */
int gpup_daemon_run(const struct gpup_daemon_cfg *cfg, int ready_fd);

/* "gpup daemon: " + message + newline on stderr, with a timestamp; in the
 * journal with its priority instead (see daemon_log.c).  gpup_daemon_log
 * is LOG_INFO; gpup_daemon_logl takes a <syslog.h> priority. */
void gpup_daemon_log(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void gpup_daemon_logl(int prio, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* The last line logged at LOG_ERR or worse (why a start failed). */
const char *gpup_daemon_last_error(void);

#endif
