/* SPDX-License-Identifier: MIT */
/*
 * The jail room (gpup/jail/): confining the daemon, after Firecracker's
 * jailer and its per-thread seccomp filters.  A seccomp filter for each
 * kind of thread that handles guest-controlled input, and the drop from
 * root to an unprivileged user once the daemon's devices are open.  See
 * docs/SECURITY.md for the threat model and what each filter allows.
 *
 * DOC: filters
 *
 * gpup_jail_prepare builds one BPF program per kind (libseccomp), once,
 * on the thread that sets the daemon up; gpup_jail_thread then installs
 * the prepared program on the calling thread only, with two system calls
 * and no allocation, so it suits a hook run first thing on a new thread
 * (vfu_server_cfg.thread_init, gpup_gpu_cfg.thread_init).  Threads a
 * confined thread creates inherit its filter; filters are never removed.
 * A thread without a filter (the daemon's main loop) is not restricted.
 *
 * In GPUP_JAIL_KILL mode a system call outside the list kills the whole
 * process with SIGSYS (SECCOMP_RET_KILL_PROCESS), and the kernel's audit
 * log names the call.  Killing only the thread would leave whatever it
 * held (a partition's lock, an engine's lock, a client's half-served
 * request) held for ever: every partition on that GPU would wedge with
 * nothing to say why.  A thread that makes a forbidden call is
 * compromised or broken, and a restart restores every partition from the
 * state directory.  GPUP_JAIL_LOG lets the call through and has the
 * kernel log it, for finding what a change needs.
 */
#ifndef GPUP_JAIL_H
#define GPUP_JAIL_H

#include <stdbool.h>
#include <sys/types.h>

enum gpup_jail_kind {
	/* A vfio-user client's thread (vfu/server.c): messages, DMA_MAP's
	 * mmap, region access, eventfd signals. */
	GPUP_JAIL_SERVING,
	/* An engine executor (gpup/gpu/engine.c): epoll, the command
	 * processor, DMA, interrupts; and the vGPU watchdog's reset thread,
	 * which an engine thread starts and which inherits its filter. */
	GPUP_JAIL_ENGINE,
	GPUP_JAIL_NKINDS
};

enum gpup_jail_mode {
	GPUP_JAIL_KILL = 0,   /* a forbidden call kills the process (SIGSYS) */
	GPUP_JAIL_LOG,        /* it is allowed and logged by the kernel */
	GPUP_JAIL_OFF,        /* no filter */
};

struct gpup_jail_cfg {
	enum gpup_jail_mode mode;
	/* The process drops to uid/gid (gpup_jail_drop) after confined
	 * threads started: glibc makes every thread switch its ids too, so
	 * their filters allow exactly that switch (and no other). */
	bool drop;
	uid_t uid;
	gid_t gid;
};

/* Build the filters of every kind for cfg (nothing for GPUP_JAIL_OFF),
 * replacing earlier ones.  Call it before starting the threads it is
 * for.  0, or -errno (-EINVAL: libseccomp refused a rule). */
int gpup_jail_prepare(const struct gpup_jail_cfg *cfg);

/* Install kind's prepared filter on the calling thread: 0, -EINVAL when
 * none is prepared, or -errno from the kernel. */
int gpup_jail_thread(enum gpup_jail_kind kind);

/* "kill", "log", "off". */
const char *gpup_jail_mode_name(enum gpup_jail_mode mode);

/* USER's uid and primary gid: 0, or -ENOENT if there is no such user. */
int gpup_jail_user(const char *name, uid_t *uid, gid_t *gid);

/* Become uid/gid for good: no supplementary groups, real, effective and
 * saved ids all switched (every thread's), then checked.  Needs root.
 * 0 or -errno. */
int gpup_jail_drop(uid_t uid, gid_t gid);

#endif
