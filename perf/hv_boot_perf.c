// SPDX-License-Identifier: MIT
/*
 * VM start-up: the wall time from fork to the exit of a VM booting the
 * hello guest, and the VMM's peak resident memory (wait4's ru_maxrss: the
 * VMM is one process with threads), for `gpup run` and for QEMU's microvm
 * machine booting the same image.  Runs alternate between the two so that
 * host noise hits both alike; medians are reported, with the ratios the
 * issue targets (gpup >= 4x faster, <= 1/3 of QEMU's memory).  Prints one
 * Markdown section for docs/BENCHMARKS.md.
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define RUNS 15

struct sample {
	double ms[RUNS];
	double rss_mib[RUNS];
	int ok;
};

static double now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec * 1e-6;
}

/* Returns the exit status, or -1 if it could not run. */
static int run_once(char *const argv[], double *ms, double *rss_mib)
{
	struct rusage ru;
	double t0;
	int st;
	pid_t pid;

	fflush(stdout);
	t0 = now_ms();
	pid = fork();

	if (pid < 0)
		return -1;
	if (pid == 0) {
		int null = open("/dev/null", O_WRONLY);

		dup2(null, 1);
		dup2(null, 2);
		execvp(argv[0], argv);
		_exit(127);
	}
	if (wait4(pid, &st, 0, &ru) != pid || !WIFEXITED(st))
		return -1;
	*ms = now_ms() - t0;
	*rss_mib = (double)ru.ru_maxrss / 1024.0;
	return WEXITSTATUS(st);
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

static double median(double *v, int n)
{
	qsort(v, (size_t)n, sizeof(v[0]), cmp_double);
	return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

int main(void)
{
	const char *bin = getenv("GPUP_BIN"), *guests = getenv("GPUP_GUESTS");
	char image[512];
	char *gpup[] = { (char *)bin, "run", "--kernel", image, NULL };
	char *qemu[] = { "qemu-system-x86_64", "-M", "microvm", "-accel", "kvm",
			 "-kernel", image, "-nodefaults", "-no-user-config",
			 "-nographic", "-serial", "stdio", "-device",
			 "isa-debug-exit,iobase=0xf4,iosize=4", NULL };
	struct sample g = { .ok = 1 }, q = { .ok = 1 };
	double d;

	printf("## VM start-up: `gpup run` vs QEMU microvm\n\n");
	if (!bin || !guests || access("/dev/kvm", R_OK | W_OK)) {
		printf("Not measured: needs /dev/kvm and `make bench` (GPUP_BIN, "
		       "GPUP_GUESTS).\n");
		return 0;
	}
	snprintf(image, sizeof(image), "%s/hello.elf", guests);
	printf("Wall time from fork to exit of a VM that boots `hello.elf` (PVH "
	       "entry, long mode, one console line, exit through port 0xf4), and the "
	       "VMM's peak RSS (`ru_maxrss`), median of %d alternating runs each. "
	       "Both VMMs boot the same image with 128 MiB of RAM.\n\n", RUNS);
	run_once(gpup, &d, &d); /* warm the page cache for both */
	run_once(qemu, &d, &d);
	for (int i = 0; i < RUNS; i++) {
		if (run_once(gpup, &g.ms[i], &g.rss_mib[i]) != 0)
			g.ok = 0;
		/* QEMU's isa-debug-exit returns (0 << 1) | 1. */
		if (run_once(qemu, &q.ms[i], &q.rss_mib[i]) != 1)
			q.ok = 0;
	}
	printf("| VMM | start to exit (ms) | peak RSS (MiB) |\n|---|---:|---:|\n");
	printf("| gpup run | %.1f | %.1f |\n", median(g.ms, RUNS), median(g.rss_mib, RUNS));
	if (!q.ok) {
		printf("| QEMU microvm | did not run | |\n\nQEMU was not usable here, "
		       "so there is no ratio.\n");
		return g.ok ? 0 : 1;
	}
	printf("| QEMU microvm | %.1f | %.1f |\n\n", median(q.ms, RUNS),
	       median(q.rss_mib, RUNS));
	printf("gpup starts and exits **%.1fx** faster than QEMU (target >= 4x) and "
	       "peaks at **%.2f** of QEMU's memory (target <= 0.33).\n",
	       median(q.ms, RUNS) / median(g.ms, RUNS),
	       median(g.rss_mib, RUNS) / median(q.rss_mib, RUNS));
	return g.ok ? 0 : 1;
}
