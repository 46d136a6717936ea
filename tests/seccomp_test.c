// SPDX-License-Identifier: MIT
/*
 * The daemon's seccomp filters (gpup/jail) on their own: each case runs
 * in a forked child, where a thread installs a filter and makes a call.
 * What a thread of each kind needs works; a forbidden call kills the
 * whole process with SIGSYS (the filters' default action), and nothing
 * else: a thread without a filter beside it is not restricted, and log
 * mode lets the call through.  The privilege drop switches confined
 * threads too, as the daemon's --user needs.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/ptrace.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include "gpup/jail/jail.h"
#include "vfu/vfu.h"

TestSuite(seccomp, .timeout = 30);

/* Child exit statuses besides 0. */
enum { EXIT_INSTALL = 90, EXIT_CALL_FAILED, EXIT_SURVIVED, EXIT_PREPARE };

/* What the daemon opens before its threads are confined: an eventfd (a
 * client's irq), an epoll set (an engine's), a memfd (guest RAM a client
 * hands over for DMA). */
static int evfd = -1, epfd = -1, memfd = -1;

static void open_fds(void)
{
	uint64_t v;

	evfd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	epfd = epoll_create1(EPOLL_CLOEXEC);
	memfd = memfd_create("guest-ram", MFD_CLOEXEC);
	/* As vfu_server_create does: the signal's handler installed first. */
	if (evfd < 0 || epfd < 0 || memfd < 0 || ftruncate(memfd, 1 << 20) ||
	    vfu_eventfd_signal(evfd) || read(evfd, &v, sizeof(v)) != sizeof(v))
		_exit(EXIT_PREPARE);
}

struct probe {
	enum gpup_jail_kind kind;
	int (*call)(void);        /* 0 when what it tried worked */
};

static void *probe_thread(void *arg)
{
	const struct probe *p = arg;

	if (gpup_jail_thread(p->kind))
		_exit(EXIT_INSTALL);
	return (void *)(intptr_t)p->call();
}

/* In a child: prepare mode's filters, run call on a thread confined as
 * kind, exit 0 if it worked.  The parent gets the wait status. */
static int run_probe(enum gpup_jail_mode mode, enum gpup_jail_kind kind, int (*call)(void))
{
	struct gpup_jail_cfg cfg = { .mode = mode };
	struct probe p = { kind, call };
	int st = -1;
	pid_t pid = fork();

	if (pid == 0) {
		pthread_t t;
		void *rc;

		if (gpup_jail_prepare(&cfg))
			_exit(EXIT_PREPARE);
		open_fds();
		if (pthread_create(&t, NULL, probe_thread, &p) || pthread_join(t, &rc))
			_exit(EXIT_CALL_FAILED);
		_exit(rc ? EXIT_CALL_FAILED : 0);
	}
	cr_assert_gt(pid, 0);
	cr_assert_eq(waitpid(pid, &st, 0), pid);
	return st;
}

static void expect_works(enum gpup_jail_kind kind, int (*call)(void), const char *what)
{
	int st = run_probe(GPUP_JAIL_KILL, kind, call);

	cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "%s on a %s thread: status %#x", what,
		  kind == GPUP_JAIL_ENGINE ? "engine" : "client", st);
}

static void expect_killed(enum gpup_jail_kind kind, int (*call)(void), const char *what)
{
	int st = run_probe(GPUP_JAIL_KILL, kind, call);

	cr_assert(WIFSIGNALED(st) && WTERMSIG(st) == SIGSYS,
		  "%s on a %s thread should kill the process with SIGSYS: status %#x", what,
		  kind == GPUP_JAIL_ENGINE ? "engine" : "client", st);
}

/* ---- what the threads do ---- */

static int memory(void)
{
	void *big = malloc(8 << 20), *p = mmap(NULL, 1 << 20, PROT_READ | PROT_WRITE,
						 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	int rc = !big || p == MAP_FAILED;

	if (!rc) {
		memset(big, 1, 8 << 20);
		rc = mprotect(p, 4096, PROT_READ) || munmap(p, 1 << 20);
	}
	free(big);
	return rc;
}

static int eventfds(void)
{
	uint64_t v;

	/* The guarded signal: a per-thread timer, a poll, a write. */
	if (vfu_eventfd_signal(evfd))
		return 1;
	return read(evfd, &v, sizeof(v)) != sizeof(v) || v != 1;
}

static int engine_work(void)
{
	struct epoll_event ev;
	struct timespec ts;

	return clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts) != 0 || eventfds() ||
	       memory() || epoll_wait(epfd, &ev, 1, 0) != 0;
}

static void *nothing(void *arg)
{
	return arg;
}

/* The watchdog's reset thread: started by an engine thread, inheriting
 * its filter (clone3 answers ENOSYS, glibc falls back to clone). */
static int start_thread(void)
{
	pthread_t t;

	return pthread_create(&t, NULL, nothing, NULL) || pthread_join(t, NULL);
}

/* DMA_MAP: the client's memory, shared. */
static int map_file(void)
{
	void *p = mmap(NULL, 1 << 20, PROT_READ | PROT_WRITE, MAP_SHARED, memfd, 0);

	return p == MAP_FAILED || munmap(p, 1 << 20);
}

/* A reset gives a partition's VRAM pages back by punching its VRAM file
 * (a serving thread); no other fallocate mode is allowed, and an engine
 * may not punch at all. */
static int punch(void)
{
	return fallocate(memfd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 8192, 4096);
}

static int preallocate(void)
{
	return fallocate(memfd, 0, 0, 1 << 20);
}

static int madvise_other(void)
{
	void *p = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	return p == MAP_FAILED || madvise(p, 4096, MADV_WILLNEED);
}

static int socket_call(void)
{
	return socket(AF_INET, SOCK_STREAM, 0) < 0;
}

static int exec_call(void)
{
	char *const argv[] = { "true", NULL };

	execv("/bin/true", argv);
	return 1;
}

static int ptrace_call(void)
{
	return ptrace(PTRACE_TRACEME, 0, NULL, NULL) != 0;
}

static int ioctl_call(void)
{
	struct termios t;

	return ioctl(STDERR_FILENO, TCGETS, &t) != 0;
}

static int open_call(void)
{
	return open("/etc/hostname", O_RDONLY | O_CLOEXEC) < 0;
}

static int fork_call(void)
{
	pid_t pid = fork();

	if (pid == 0)
		_exit(0);
	return pid < 0;
}

static int exec_memory(void)
{
	return mmap(NULL, 4096, PROT_READ | PROT_EXEC, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0) ==
	       MAP_FAILED;
}

static int exec_protect(void)
{
	void *p = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	return p == MAP_FAILED || mprotect(p, 4096, PROT_READ | PROT_EXEC);
}

static int setuid_root(void)
{
	return setresuid(0, 0, 0) != 0;
}

/* ---- the cases ---- */

Test(seccomp, what_each_kind_of_thread_needs_works)
{
	expect_works(GPUP_JAIL_SERVING, memory, "malloc, mmap, mprotect, munmap");
	expect_works(GPUP_JAIL_SERVING, eventfds, "signalling an eventfd");
	expect_works(GPUP_JAIL_SERVING, map_file, "mapping a client's memfd");
	expect_works(GPUP_JAIL_ENGINE, engine_work, "epoll, thread CPU time, memory, eventfds");
	expect_works(GPUP_JAIL_ENGINE, start_thread, "starting a thread");
	expect_works(GPUP_JAIL_SERVING, punch, "punching VRAM pages (reset)");
}

Test(seccomp, a_forbidden_call_kills_the_process)
{
	static const struct {
		int (*call)(void);
		const char *what;
	} bad[] = {
		{ socket_call, "socket()" },     { exec_call, "execve()" },
		{ ptrace_call, "ptrace()" },     { ioctl_call, "ioctl(TCGETS)" },
		{ open_call, "open()" },         { fork_call, "fork()" },
		{ exec_memory, "mmap(PROT_EXEC)" }, { exec_protect, "mprotect(PROT_EXEC)" },
		{ setuid_root, "setresuid(0)" },  { preallocate, "fallocate(mode 0)" },
	};

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		expect_killed(GPUP_JAIL_SERVING, bad[i].call, bad[i].what);
		expect_killed(GPUP_JAIL_ENGINE, bad[i].call, bad[i].what);
	}
	expect_killed(GPUP_JAIL_SERVING, madvise_other, "madvise(MADV_WILLNEED)");
	/* Only an engine starts threads (the watchdog's reset); only a
	 * client's thread maps a file. */
	expect_killed(GPUP_JAIL_SERVING, start_thread, "starting a thread");
	expect_killed(GPUP_JAIL_ENGINE, map_file, "mapping a memfd");
	expect_killed(GPUP_JAIL_ENGINE, punch, "punching a file");
}

/* A confined thread and an unconfined one in the same process: the
 * filter is the thread's own.  The main thread makes the very call that
 * then kills the process from the confined thread. */
struct pair {
	int ready[2], go[2];
};

static void *confined_socket(void *arg)
{
	struct pair *p = arg;
	char c = 0;

	if (gpup_jail_thread(GPUP_JAIL_SERVING))
		_exit(EXIT_INSTALL);
	if (write(p->ready[1], &c, 1) != 1 || read(p->go[0], &c, 1) != 1)
		_exit(EXIT_CALL_FAILED);
	socket(AF_UNIX, SOCK_STREAM, 0);
	_exit(EXIT_SURVIVED);
}

Test(seccomp, the_filter_is_the_threads_own)
{
	struct gpup_jail_cfg cfg = { .mode = GPUP_JAIL_KILL };
	int out[2], st = -1;
	char seen = 0;
	pid_t pid;

	cr_assert_eq(pipe(out), 0);
	pid = fork();
	if (pid == 0) {
		struct pair p;
		pthread_t t;
		char c = 0;
		int s;

		if (gpup_jail_prepare(&cfg) || pipe(p.ready) || pipe(p.go) ||
		    pthread_create(&t, NULL, confined_socket, &p) || read(p.ready[0], &c, 1) != 1)
			_exit(EXIT_PREPARE);
		s = socket(AF_UNIX, SOCK_STREAM, 0);
		c = s >= 0 ? 'y' : 'n';
		if (write(out[1], &c, 1) != 1 || write(p.go[1], &c, 1) != 1)
			_exit(EXIT_CALL_FAILED);
		pthread_join(t, NULL);
		_exit(EXIT_SURVIVED);
	}
	close(out[1]);
	cr_assert_eq(read(out[0], &seen, 1), 1);
	cr_assert_eq(seen, 'y', "the unconfined main thread may create a socket");
	cr_assert_eq(waitpid(pid, &st, 0), pid);
	cr_assert(WIFSIGNALED(st) && WTERMSIG(st) == SIGSYS,
		  "the confined thread's socket() killed the process: status %#x", st);
	close(out[0]);
}

Test(seccomp, log_mode_lets_a_forbidden_call_through)
{
	int st = run_probe(GPUP_JAIL_LOG, GPUP_JAIL_SERVING, socket_call);

	cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "status %#x", st);
	st = run_probe(GPUP_JAIL_LOG, GPUP_JAIL_ENGINE, open_call);
	cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "status %#x", st);
}

Test(seccomp, off_prepares_nothing_to_install)
{
	struct gpup_jail_cfg cfg = { .mode = GPUP_JAIL_OFF };

	cr_assert_eq(gpup_jail_prepare(&cfg), 0);
	cr_assert_eq(gpup_jail_thread(GPUP_JAIL_SERVING), -EINVAL);
	cr_assert_eq(gpup_jail_thread(GPUP_JAIL_ENGINE), -EINVAL);
	cr_assert_str_eq(gpup_jail_mode_name(GPUP_JAIL_KILL), "kill");
	cr_assert_str_eq(gpup_jail_mode_name(GPUP_JAIL_LOG), "log");
	cr_assert_str_eq(gpup_jail_mode_name(GPUP_JAIL_OFF), "off");
}

/* ---- dropping root with confined threads running ---- */

static int uid_of_task(pid_t tid, uid_t *uids)
{
	char path[64], line[256];
	int n = 0;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/self/task/%d/status", (int)tid);
	f = fopen(path, "r");
	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f))
		if (!strncmp(line, "Uid:", 4))
			n = sscanf(line + 4, "%u %u %u", &uids[0], &uids[1], &uids[2]);
	fclose(f);
	return n == 3 ? 0 : -1;
}

static void *confined_idle(void *arg)
{
	int *fds = arg;
	pid_t tid = gettid();
	char c;

	if (gpup_jail_thread(GPUP_JAIL_ENGINE))
		_exit(EXIT_INSTALL);
	if (write(fds[1], &tid, sizeof(tid)) != sizeof(tid))
		_exit(EXIT_CALL_FAILED);
	/* Woken once the main thread has dropped root. */
	if (read(fds[2], &c, 1) != 1)
		_exit(EXIT_CALL_FAILED);
	return NULL;
}

Test(seccomp, dropping_root_switches_confined_threads_too)
{
	uid_t uid, uids[3];
	gid_t gid;
	int st = -1;
	pid_t pid;

	if (geteuid() != 0)
		cr_skip_test("dropping root needs root");
	if (gpup_jail_user("nobody", &uid, &gid))
		cr_skip_test("no user named nobody");
	cr_assert_eq(gpup_jail_user("no-such-user-gpup", &uid, &gid), -ENOENT);
	cr_assert_eq(gpup_jail_user("nobody", &uid, &gid), 0);
	pid = fork();
	if (pid == 0) {
		struct gpup_jail_cfg cfg = { .mode = GPUP_JAIL_KILL, .drop = true, .uid = uid,
					     .gid = gid };
		int a[2], b[2], fds[3];
		pid_t tid;
		pthread_t t;
		char c = 0;

		if (gpup_jail_prepare(&cfg) || pipe(a) || pipe(b))
			_exit(EXIT_PREPARE);
		fds[0] = a[0], fds[1] = a[1], fds[2] = b[0];
		if (pthread_create(&t, NULL, confined_idle, fds) ||
		    read(a[0], &tid, sizeof(tid)) != sizeof(tid))
			_exit(EXIT_PREPARE);
		if (gpup_jail_drop(uid, gid))
			_exit(EXIT_CALL_FAILED);
		if (uid_of_task(tid, uids) || uids[0] != uid || uids[1] != uid || uids[2] != uid)
			_exit(EXIT_CALL_FAILED);
		if (write(b[1], &c, 1) != 1 || pthread_join(t, NULL))
			_exit(EXIT_CALL_FAILED);
		_exit(0);
	}
	cr_assert_eq(waitpid(pid, &st, 0), pid);
	cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0,
		  "root dropped for every thread, the confined one alive: status %#x", st);
}
