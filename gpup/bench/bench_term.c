// SPDX-License-Identifier: MIT
/*
 * What live and vm mode of `gpup bench` do about the person at the
 * terminal: a signal that would end the process (SIGINT, SIGTERM, SIGHUP)
 * ends the run early instead, so that the partitions go and the daemon's
 * settings are put back before bench exits; and, on a terminal only, one
 * line of progress rewritten in place (the run, its elapsed and total
 * time, each tenant's share so far).
 */
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "gpup/bench/bench_int.h"

#define PROGRESS_TENANTS 6   /* shares shown; the rest are counted */

static volatile sig_atomic_t stop_sig;

static void on_stop(int sig)
{
	stop_sig = sig;
}

/* SA_RESTART: the control calls that clean up must not fail with EINTR
 * when a second ^C comes; the run's own waits poll bench_stop_signal. */
void bench_signals_catch(void)
{
	struct sigaction sa;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_stop;
	sa.sa_flags = SA_RESTART;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGHUP, &sa, NULL);
}

int bench_stop_signal(void)
{
	return stop_sig;
}

bool bench_progress_on(void)
{
	return isatty(STDERR_FILENO) == 1;
}

void bench_progress(const struct bench_scenario *sc, const char *label, double elapsed,
		    double total, const double *work)
{
	char line[512];
	double sum = 0;
	size_t n;

	if (!bench_progress_on())
		return;
	for (unsigned int i = 0; i < sc->ntenants; i++)
		sum += work[i];
	n = (size_t)snprintf(line, sizeof(line), "\r\033[K%s %.1f/%.1f s", label,
			     elapsed < total ? elapsed : total, total);
	for (unsigned int i = 0; sum > 0 && i < sc->ntenants && i < PROGRESS_TENANTS &&
	     n < sizeof(line); i++)
		n += (size_t)snprintf(line + n, sizeof(line) - n, "%s %.15s %.1f%%",
				      i ? "," : " |", sc->tenants[i].name,
				      100 * work[i] / sum);
	if (sum > 0 && sc->ntenants > PROGRESS_TENANTS && n < sizeof(line))
		snprintf(line + n, sizeof(line) - n, ", +%u more",
			 sc->ntenants - PROGRESS_TENANTS);
	fputs(line, stderr);
	fflush(stderr);
}

void bench_progress_note(const char *label, const char *what)
{
	if (!bench_progress_on())
		return;
	fprintf(stderr, "\r\033[K%s: %s", label, what);
	fflush(stderr);
}

void bench_progress_end(void)
{
	if (!bench_progress_on())
		return;
	fputs("\r\033[K", stderr);
	fflush(stderr);
}
