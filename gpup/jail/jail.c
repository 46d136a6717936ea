// SPDX-License-Identifier: MIT
/*
 * The daemon's seccomp filters and its privilege drop (see jail.h).
 *
 * Each filter is an allow list: the table below names every system call a
 * confined thread makes, found by tracing the daemon through the test
 * suites (strace -f, filters in GPUP_JAIL_LOG mode), plain and under
 * AddressSanitizer, whose runtime adds a few.  Arguments are checked
 * where that is cheap and says something: no executable memory, no file
 * mapped by an engine, no socket option but the two timeouts, fcntl and
 * madvise only for what is used, new threads but never new processes.
 * Neither kind may open a file, create a socket, call ioctl, execve,
 * ptrace or fork.
 */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <malloc.h>
#include <pwd.h>
#include <sched.h>
#include <seccomp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/sysinfo.h>
#include <time.h>
#include <unistd.h>

#include "gpup/jail/jail.h"

#define SERVING (1u << GPUP_JAIL_SERVING)
#define ENGINE (1u << GPUP_JAIL_ENGINE)
#define BOTH (SERVING | ENGINE)

struct jail_rule {
	int nr;
	unsigned int kinds;           /* which filters allow it */
	unsigned int narg;            /* conditions, all of which must hold */
	struct scmp_arg_cmp arg[2];
};

#define ARG(n, cmp, a, b) { .arg = (n), .op = (cmp), .datum_a = (a), .datum_b = (b) }
/* Argument n, with mask bits clear. */
#define CLEAR(n, mask) ARG(n, SCMP_CMP_MASKED_EQ, mask, 0)
#define IS(n, v) ARG(n, SCMP_CMP_EQ, v, 0)

static const struct jail_rule rules[] = {
	/* Threads, locks, signals: glibc, the eventfd guard (vfu/eventfd.c:
	 * a per-thread timer whose signal interrupts a write), the DMA
	 * guard's SIGBUS recovery (iommu/dma.c). */
	{ SCMP_SYS(futex), BOTH, 0, { { 0 } } },
	/* The kernel's way back into a poll or a timed futex wait that a
	 * stop and continue of the process interrupted (the serving thread
	 * polls its socket and the DMA channel's eventfd; an engine waits
	 * for a client's DMA_READ reply with a deadline). */
	{ SCMP_SYS(restart_syscall), BOTH, 0, { { 0 } } },
	{ SCMP_SYS(sched_yield), BOTH, 0, { { 0 } } },
	{ SCMP_SYS(rt_sigprocmask), BOTH, 0, { { 0 } } },
	{ SCMP_SYS(rt_sigreturn), BOTH, 0, { { 0 } } },
	{ SCMP_SYS(getpid), BOTH, 0, { { 0 } } },
	{ SCMP_SYS(gettid), BOTH, 0, { { 0 } } },
	{ SCMP_SYS(exit), BOTH, 0, { { 0 } } },
	{ SCMP_SYS(exit_group), BOTH, 0, { { 0 } } },
	/* AddressSanitizer's runtime: a thread's signal stack goes with it. */
	{ SCMP_SYS(sigaltstack), BOTH, 0, { { 0 } } },
	{ SCMP_SYS(timer_create), BOTH, 1, { IS(0, CLOCK_MONOTONIC) } },
	{ SCMP_SYS(timer_settime), BOTH, 0, { { 0 } } },
	{ SCMP_SYS(timer_delete), BOTH, 0, { { 0 } } },
	{ SCMP_SYS(clock_gettime), BOTH, 0, { { 0 } } },
	/* Memory: malloc, thread stacks, AddressSanitizer's shadow and, on a
	 * client's thread, DMA windows (MAP_SHARED of the client's fd); an
	 * engine maps no file.  Never executable. */
	{ SCMP_SYS(mmap), SERVING, 1, { CLEAR(2, PROT_EXEC) } },
	{ SCMP_SYS(mmap), ENGINE, 2,
	  { CLEAR(2, PROT_EXEC), ARG(3, SCMP_CMP_MASKED_EQ, MAP_ANONYMOUS, MAP_ANONYMOUS) } },
	{ SCMP_SYS(mprotect), BOTH, 1, { CLEAR(2, PROT_EXEC) } },
	{ SCMP_SYS(munmap), BOTH, 0, { { 0 } } },
	{ SCMP_SYS(mremap), BOTH, 0, { { 0 } } },
	{ SCMP_SYS(brk), BOTH, 0, { { 0 } } },
	{ SCMP_SYS(madvise), BOTH, 1, { IS(2, MADV_DONTNEED) } },
	{ SCMP_SYS(madvise), BOTH, 1, { IS(2, MADV_FREE) } },
	{ SCMP_SYS(madvise), BOTH, 1, { IS(2, MADV_HUGEPAGE) } },
	{ SCMP_SYS(madvise), BOTH, 1, { IS(2, MADV_NOHUGEPAGE) } },
	{ SCMP_SYS(madvise), BOTH, 1, { IS(2, MADV_DONTDUMP) } },
	/* fds already open: eventfds, the client's socket, log lines. */
	{ SCMP_SYS(read), BOTH, 0, { { 0 } } },
	{ SCMP_SYS(write), BOTH, 0, { { 0 } } },
	{ SCMP_SYS(poll), BOTH, 0, { { 0 } } },
	{ SCMP_SYS(epoll_ctl), BOTH, 0, { { 0 } } },
	/* A client's thread: its socket, the fds it sends. */
	{ SCMP_SYS(recvmsg), SERVING, 0, { { 0 } } },
	{ SCMP_SYS(sendmsg), SERVING, 0, { { 0 } } },
	{ SCMP_SYS(setsockopt), SERVING, 2, { IS(1, SOL_SOCKET), IS(2, SO_RCVTIMEO) } },
	{ SCMP_SYS(setsockopt), SERVING, 2, { IS(1, SOL_SOCKET), IS(2, SO_SNDTIMEO) } },
	{ SCMP_SYS(setsockopt), SERVING, 2, { IS(1, SOL_SOCKET), IS(2, SO_SNDBUF) } },
	{ SCMP_SYS(close), SERVING, 0, { { 0 } } },
	{ SCMP_SYS(fstat), SERVING, 0, { { 0 } } },
	{ SCMP_SYS(newfstatat), SERVING, 0, { { 0 } } },
	{ SCMP_SYS(fstatfs), SERVING, 0, { { 0 } } },
	/* SET_IRQS checks that an fd is an eventfd by its /proc/self/fd link:
	 * a name, never an open file. */
	{ SCMP_SYS(readlink), SERVING, 0, { { 0 } } },
	{ SCMP_SYS(fcntl), SERVING, 1, { IS(1, F_DUPFD_CLOEXEC) } },
	{ SCMP_SYS(fcntl), SERVING, 1, { IS(1, F_ADD_SEALS) } },
	{ SCMP_SYS(fcntl), SERVING, 1, { IS(1, F_GET_SEALS) } },
	/* MIG_DATA_READ replies leave by reference: VRAM pages through a
	 * pipe into the client's socket (vfu_msg_splicev). */
	{ SCMP_SYS(pipe2), SERVING, 0, { { 0 } } },
	{ SCMP_SYS(fcntl), SERVING, 1, { IS(1, F_SETPIPE_SZ) } },
	{ SCMP_SYS(vmsplice), SERVING, 0, { { 0 } } },
	{ SCMP_SYS(splice), SERVING, 0, { { 0 } } },
	/* ... the socket non-blocking while the next reply is prepared and
	 * the last one's end fed to it: no status flag but O_NONBLOCK. */
	{ SCMP_SYS(fcntl), SERVING, 1, { IS(1, F_GETFL) } },
	{ SCMP_SYS(fcntl), SERVING, 2,
	  { IS(1, F_SETFL), CLEAR(2, (uint32_t)~(O_NONBLOCK | O_ACCMODE)) } },
	/* Migration: a save skips the VRAM file's holes, a reset punches it. */
	{ SCMP_SYS(lseek), SERVING, 1, { IS(2, SEEK_DATA) } },
	{ SCMP_SYS(lseek), SERVING, 1, { IS(2, SEEK_HOLE) } },
	{ SCMP_SYS(fallocate), SERVING, 1,
	  { IS(1, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE) } },
	/* A load (MIG_DATA_WRITE) fills the VRAM file with pwrite. */
	{ SCMP_SYS(pwrite64), SERVING, 0, { { 0 } } },
	/* An engine: its epoll set, and the watchdog's reset thread. */
	{ SCMP_SYS(epoll_wait), ENGINE, 0, { { 0 } } },
	{ SCMP_SYS(epoll_pwait), ENGINE, 0, { { 0 } } },
	{ SCMP_SYS(epoll_pwait2), ENGINE, 0, { { 0 } } },
	{ SCMP_SYS(clone), ENGINE, 1, { ARG(0, SCMP_CMP_MASKED_EQ, CLONE_THREAD, CLONE_THREAD) } },
	{ SCMP_SYS(set_robust_list), ENGINE, 0, { { 0 } } },
	{ SCMP_SYS(rseq), ENGINE, 0, { { 0 } } },
	/* AddressSanitizer, as such a thread starts: its stack's bounds. */
	{ SCMP_SYS(sched_getaffinity), ENGINE, 0, { { 0 } } },
};

/* The prepared programs, by kind. */
static struct sock_fprog progs[GPUP_JAIL_NKINDS];

static int add_rules(scmp_filter_ctx ctx, unsigned int kind)
{
	for (size_t i = 0; i < sizeof(rules) / sizeof(rules[0]); i++) {
		const struct jail_rule *r = &rules[i];
		int rc;

		if (!(r->kinds & (1u << kind)))
			continue;
		rc = seccomp_rule_add_array(ctx, SCMP_ACT_ALLOW, r->nr, r->narg, r->arg);
		if (rc)
			return rc;
	}
	return 0;
}

/* Allow nr when each of its first narg arguments is v. */
static int allow_if(scmp_filter_ctx ctx, int nr, unsigned int narg, scmp_datum_t v)
{
	const struct scmp_arg_cmp arg[3] = { IS(0, v), IS(1, v), IS(2, v) };

	return seccomp_rule_add_array(ctx, SCMP_ACT_ALLOW, nr, narg, arg);
}

/* What depends on the process: the id switch of a drop to come, the
 * pid that abort() signals, and clone3, whose flags a filter cannot
 * read: it fails with ENOSYS, so glibc falls back to clone. */
static int add_process_rules(scmp_filter_ctx ctx, const struct gpup_jail_cfg *cfg)
{
	int rc = allow_if(ctx, SCMP_SYS(tgkill), 1, (scmp_datum_t)getpid());

	if (!rc)
		rc = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(ENOSYS), SCMP_SYS(clone3), 0);
	if (rc || !cfg->drop)
		return rc;
	rc = allow_if(ctx, SCMP_SYS(setgroups), 1, 0);
	if (!rc)
		rc = allow_if(ctx, SCMP_SYS(setresgid), 3, cfg->gid);
	if (!rc)
		rc = allow_if(ctx, SCMP_SYS(setresuid), 3, cfg->uid);
	return rc;
}

/* The program libseccomp generated, copied out through a memfd (its
 * only export before 2.6). */
static int export_bpf(scmp_filter_ctx ctx, struct sock_fprog *out)
{
	int fd = memfd_create("gpup-jail", MFD_CLOEXEC);
	struct sock_filter *f = NULL;
	off_t len;
	int rc;

	if (fd < 0)
		return -errno;
	rc = seccomp_export_bpf(ctx, fd);
	len = rc ? 0 : lseek(fd, 0, SEEK_END);
	if (!rc && (len <= 0 || len % sizeof(*f) || len / sizeof(*f) > BPF_MAXINSNS))
		rc = -EINVAL;
	if (!rc && !(f = malloc((size_t)len)))
		rc = -ENOMEM;
	if (!rc && pread(fd, f, (size_t)len, 0) != len)
		rc = -EIO;
	close(fd);
	if (rc) {
		free(f);
		return rc;
	}
	out->filter = f;
	out->len = (unsigned short)(len / sizeof(*f));
	return 0;
}

static int build(unsigned int kind, const struct gpup_jail_cfg *cfg, struct sock_fprog *out)
{
	uint32_t dflt = cfg->mode == GPUP_JAIL_LOG ? SCMP_ACT_LOG : SCMP_ACT_KILL_PROCESS;
	scmp_filter_ctx ctx = seccomp_init(dflt);
	int rc;

	if (!ctx)
		return -ENOMEM;
	rc = seccomp_attr_set(ctx, SCMP_FLTATR_ACT_BADARCH, SCMP_ACT_KILL_PROCESS);
	if (!rc)
		rc = add_rules(ctx, kind);
	if (!rc)
		rc = add_process_rules(ctx, cfg);
	if (!rc)
		rc = export_bpf(ctx, out);
	seccomp_release(ctx);
	return rc;
}

int gpup_jail_prepare(const struct gpup_jail_cfg *cfg)
{
	struct sock_fprog fresh[GPUP_JAIL_NKINDS] = { { 0 } };
	int rc = 0;

	/* malloc sizes its arena limit the first time a thread needs a new
	 * arena, by reading /sys/devices/system/cpu/online: a confined
	 * thread may not open it.  Set the same limit (8 per CPU) now. */
	if (cfg->mode != GPUP_JAIL_OFF)
		mallopt(M_ARENA_MAX, 8 * get_nprocs());

	for (unsigned int k = 0; cfg->mode != GPUP_JAIL_OFF && k < GPUP_JAIL_NKINDS && !rc; k++)
		rc = build(k, cfg, &fresh[k]);
	for (unsigned int k = 0; k < GPUP_JAIL_NKINDS; k++) {
		if (rc) {
			free(fresh[k].filter);
			continue;
		}
		free(progs[k].filter);
		progs[k] = fresh[k];
	}
	return rc;
}

int gpup_jail_thread(enum gpup_jail_kind kind)
{
	if ((unsigned int)kind >= GPUP_JAIL_NKINDS || !progs[kind].filter)
		return -EINVAL;
	/* Needed without CAP_SYS_ADMIN; harmless with it: this thread never
	 * execs, let alone a set-user-ID program. */
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0))
		return -errno;
	if (syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &progs[kind]))
		return -errno;
	return 0;
}

const char *gpup_jail_mode_name(enum gpup_jail_mode mode)
{
	switch (mode) {
	case GPUP_JAIL_KILL:
		return "kill";
	case GPUP_JAIL_LOG:
		return "log";
	default:
		return "off";
	}
}

int gpup_jail_user(const char *name, uid_t *uid, gid_t *gid)
{
	struct passwd pw, *res = NULL;
	char buf[4096];

	if (getpwnam_r(name, &pw, buf, sizeof(buf), &res) || !res)
		return -ENOENT;
	*uid = res->pw_uid;
	*gid = res->pw_gid;
	return 0;
}

int gpup_jail_drop(uid_t uid, gid_t gid)
{
	uid_t ru, eu, su;
	gid_t rg, eg, sg;

	/* Groups and gid first: once uid is not 0 they cannot change. */
	if (setgroups(0, NULL) || setresgid(gid, gid, gid) || setresuid(uid, uid, uid))
		return -errno;
	if (getresgid(&rg, &eg, &sg) || getresuid(&ru, &eu, &su))
		return -errno;
	if (rg != gid || eg != gid || sg != gid || ru != uid || eu != uid || su != uid ||
	    getgroups(0, NULL) != 0)
		return -EPERM;
	return 0;
}
