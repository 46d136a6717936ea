// SPDX-License-Identifier: MIT
/*
 * Signalling an eventfd that a client handed over (SET_IRQS), without
 * ever blocking on it.
 *
 * An eventfd write blocks while it would take the counter past its
 * maximum, and the client controls both the counter and the file's
 * O_NONBLOCK flag (the fd we hold shares its file description), so
 * neither a poll() first nor a flag of ours can be trusted.  The write is
 * instead guarded by a one-shot timer aimed at the writing thread: if it
 * has not returned within VFU_SIGNAL_GUARD_NS, the timer's signal (whose
 * handler does nothing and does not restart) makes it fail with EINTR.
 * A write that does not block completes before the signal can matter, so
 * the guard costs two timer calls and never a false alarm.  A counter at
 * its maximum already reads as signalled to its consumer, so what is
 * dropped is only the increment.
 */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <time.h>
#include <unistd.h>

#include "vfu/vfu_int.h"

#define VFU_SIGNAL_GUARD_NS 100000L

static pthread_once_t guard_once = PTHREAD_ONCE_INIT;
static pthread_key_t guard_key;
static int guard_sig;
static __thread timer_t guard_timer;
static __thread bool guard_ready;

static void guard_fired(int sig)
{
	(void)sig; /* its only job is to interrupt the write */
}

static void guard_free(void *timer)
{
	timer_delete((timer_t)timer);
}

static void guard_install(void)
{
	struct sigaction sa = { .sa_handler = guard_fired }; /* no SA_RESTART */

	guard_sig = SIGRTMIN + 5;
	sigemptyset(&sa.sa_mask);
	sigaction(guard_sig, &sa, NULL);
	pthread_key_create(&guard_key, guard_free);
}

void vfu_eventfd_prepare(void)
{
	pthread_once(&guard_once, guard_install);
}

/* This thread's guard timer, made on first use. */
static int guard_init(void)
{
	struct sigevent ev = { .sigev_notify = SIGEV_THREAD_ID };
	sigset_t set;

	vfu_eventfd_prepare();
	if (guard_ready)
		return 0;
	ev.sigev_signo = guard_sig;
	ev._sigev_un._tid = gettid(); /* glibc 2.36 names it only so */
	if (timer_create(CLOCK_MONOTONIC, &ev, &guard_timer))
		return -errno;
	sigemptyset(&set);
	sigaddset(&set, guard_sig);
	pthread_sigmask(SIG_UNBLOCK, &set, NULL);
	pthread_setspecific(guard_key, guard_timer);
	guard_ready = true;
	return 0;
}

static void guard_set(long ns)
{
	struct itimerspec its = { .it_value = { .tv_sec = 0, .tv_nsec = ns } };

	timer_settime(guard_timer, 0, &its, NULL);
}

int vfu_eventfd_signal(int fd)
{
	struct pollfd p = { .fd = fd, .events = POLLOUT };
	uint64_t one = 1;
	ssize_t n;
	int rc;

	/* Full already: no need to arm anything. */
	if (poll(&p, 1, 0) != 1 || !(p.revents & POLLOUT))
		return p.revents & POLLNVAL ? -EBADF : -EAGAIN;
	rc = guard_init();
	if (rc)
		return rc;
	guard_set(VFU_SIGNAL_GUARD_NS);
	n = write(fd, &one, sizeof(one));
	rc = n == (ssize_t)sizeof(one) ? 0 : n >= 0 ? -EIO : errno == EINTR ? -EAGAIN : -errno;
	guard_set(0);
	return rc;
}
