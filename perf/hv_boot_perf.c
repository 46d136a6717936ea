// SPDX-License-Identifier: MIT
/*
 * VM start-up: the wall time from fork to the exit of a VM booting the
 * hello guest, and the VMM's peak resident memory (wait4's ru_maxrss: the
 * VMM is one process with threads), for `gpup run` and for QEMU's microvm
 * machine booting the same image, and for `gpup run` with one partition of
 * a sim GPU attached (a daemon started for the run, tests/daemonlib.h).
 * Runs alternate between the three so that host noise hits all alike;
 * medians are reported, with the targets (gpup >= 4x faster, <= 1/3 of
 * QEMU's memory; a partition adds <= 5 ms).  Prints one Markdown section
 * for docs/BENCHMARKS.md.
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "perf/perflib.h"
#include "tests/daemonlib.h"

#define RUNS 15
#define PART_TARGET_MS 5.0

/* One sim GPU; the partition's size does not matter to start-up (its
 * VRAM is mapped, not touched, and costs a KVM memory slot). */
static const char *const daemon_args[] = { "--sim-gpus", "1", "--vram", "1G", NULL };
static const struct dl_opts daemon_opts = { .name = "hv-boot-perf", .args = daemon_args };
static struct dl_daemon dmn;

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

/* A daemon with one sim GPU and a partition on it: the partition's socket
 * into sock, or -1.  dl_teardown takes down whatever was started. */
static int partition(const char *bin, char *sock, size_t len)
{
	char cmd[512], uuid[64] = "";
	FILE *p;
	int st;

	if (dl_start(&dmn, &daemon_opts))
		return -1;
	snprintf(cmd, sizeof(cmd), "%s --run-dir %s create --type sim-256m-4", bin, dmn.run_dir);
	p = popen(cmd, "r");
	if (p && !fgets(uuid, sizeof(uuid), p))
		uuid[0] = '\0';
	st = p ? pclose(p) : -1;
	uuid[strcspn(uuid, "\n")] = '\0';
	if (st != 0 || !uuid[0])
		return -1;
	snprintf(sock, len, "%s/%s.sock", dmn.run_dir, uuid);
	return 0;
}

/* The runs, alternating: bare gpup, gpup with the partition (when there
 * is one: p->ok), QEMU. */
static void measure(char *const gpup[], char *const part[], char *const qemu[],
		    struct sample *g, struct sample *p, struct sample *q)
{
	double d;

	run_once(gpup, &d, &d); /* warm the page cache for all */
	run_once(qemu, &d, &d);
	if (p->ok)
		run_once(part, &d, &d);
	for (int i = 0; i < RUNS; i++) {
		if (run_once(gpup, &g->ms[i], &g->rss_mib[i]) != 0)
			g->ok = 0;
		if (p->ok && run_once(part, &p->ms[i], &p->rss_mib[i]) != 0)
			p->ok = 0;
		/* QEMU's isa-debug-exit returns (0 << 1) | 1. */
		if (run_once(qemu, &q->ms[i], &q->rss_mib[i]) != 1)
			q->ok = 0;
	}
}

static void print_row(const char *what, struct sample *s)
{
	if (s->ok)
		printf("| %s | %.1f | %.1f |\n", what, perf_median(s->ms, RUNS),
		       perf_median(s->rss_mib, RUNS));
	else
		printf("| %s | did not run | |\n", what);
}

/* What one partition adds to the bare VM's start to exit, and the target. */
static void print_partition(struct sample *g, struct sample *p)
{
	double delta;

	if (!p->ok) {
		printf("\nWith one partition attached: not measured (the daemon, the partition "
		       "or a VM with it did not run).\n");
		return;
	}
	delta = perf_median(p->ms, RUNS) - perf_median(g->ms, RUNS);
	printf("\nAttaching one partition of a sim GPU (vfio-user set-up, its VRAM a KVM "
	       "memory slot, doorbells as ioeventfds, an in-kernel irqchip for its MSI-X) "
	       "adds **%+.1f ms** to start to exit (target <= +%.0f ms): **%s**, on a host "
	       "whose VM alone took %.1f ms in this run.  The partition's serving thread is "
	       "started and confined when the partition is made, not when the VMM connects "
	       "(installing its seccomp filter costs the kernel about 1.5 ms here), and the "
	       "VM sets every memory slot before it creates the irqchip and the "
	       "ioeventfds; what is left is the vfio-user set-up and an SRCU grace period, "
	       "met again at teardown.\n",
	       delta, PART_TARGET_MS, delta <= PART_TARGET_MS ? "PASS" : "FAIL",
	       perf_median(g->ms, RUNS));
}

int main(void)
{
	const char *bin = getenv("GPUP_BIN"), *guests = getenv("GPUP_GUESTS");
	char image[512], sock[256];
	char *gpup[] = { (char *)bin, "run", "--kernel", image, NULL };
	char *part[] = { (char *)bin, "run", "--kernel", image, "--gpu", sock, NULL };
	char *qemu[] = { "qemu-system-x86_64", "-M", "microvm", "-accel", "kvm",
			 "-kernel", image, "-nodefaults", "-no-user-config",
			 "-nographic", "-serial", "stdio", "-device",
			 "isa-debug-exit,iobase=0xf4,iosize=4", NULL };
	struct sample g = { .ok = 1 }, q = { .ok = 1 }, p = { .ok = 1 };

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
	       "Both VMMs boot the same image with 128 MiB of RAM; the third row is "
	       "`gpup run` with a partition of a sim GPU attached (`--gpu`, a 256 MiB "
	       "partition of a daemon started for the run).\n\n", RUNS);
	p.ok = partition(bin, sock, sizeof(sock)) == 0;
	measure(gpup, part, qemu, &g, &p, &q);
	dl_teardown(&dmn);
	printf("| VMM | start to exit (ms) | peak RSS (MiB) |\n|---|---:|---:|\n");
	print_row("gpup run", &g);
	print_row("QEMU microvm", &q);
	print_row("gpup run, one partition attached", &p);
	if (q.ok)
		printf("\ngpup starts and exits **%.1fx** faster than QEMU (target >= 4x) and "
		       "peaks at **%.2f** of QEMU's memory (target <= 0.33).\n",
		       perf_median(q.ms, RUNS) / perf_median(g.ms, RUNS),
		       perf_median(g.rss_mib, RUNS) / perf_median(q.rss_mib, RUNS));
	else
		printf("\nQEMU was not usable here, so there is no ratio.\n");
	print_partition(&g, &p);
	return g.ok ? 0 : 1;
}
