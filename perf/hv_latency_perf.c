// SPDX-License-Identifier: MIT
/*
 * Doorbell-to-completion latency as a guest sees it: the latency guest
 * rings a doorbell (a KVM ioeventfd) for a FENCE packet and halts until
 * the MSI-X interrupt (a KVM irqfd), sample by sample; the same fence
 * polled without the interrupt; and, in the same run, single trapped MMIO
 * writes (one the VMM handles itself, one it forwards to the daemon) and
 * a null guest kernel call, which shows what ring 0 costs on this host.
 * p50 and p99 of each, and the ratios against the trapped write.  Prints
 * one Markdown section for docs/BENCHMARKS.md.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "perf/perflib.h"
#include "tests/daemonlib.h"

#define SAMPLES 300
#define MAX_KINDS 6

struct kind {
	const char *name, *what;
	double v[SAMPLES * 2];
	int n;
};

static struct kind kinds[MAX_KINDS] = {
	{ .name = "fence", .what = "doorbell -> FENCE -> MSI-X, vCPU halted until the interrupt" },
	{ .name = "wait", .what = "the driver's default: FENCE polled 20 us, else FENCE + MSI-X, halted" },
	{ .name = "poll", .what = "doorbell -> FENCE, vCPU polling the fence word" },
	{ .name = "vmm", .what = "one trapped MMIO write handled by the VMM" },
	{ .name = "reg", .what = "one trapped register write forwarded to the daemon" },
	{ .name = "ring0", .what = "a guest kernel call that does nothing (ring 3 to 0 and back)" },
};

/* One sim GPU of 256 MiB is plenty for one small partition. */
static const char *const daemon_args[] = { "--sim-gpus", "1", "--vram", "256M", NULL };
static const struct dl_opts daemon_opts = { .name = "hv-lat-perf", .args = daemon_args };
static struct dl_daemon dmn;
static double loop_ns = -1;

static void parse_line(char *line)
{
	char *tok = strtok(line, " \n");

	if (!tok || strcmp(tok, "lat") || !(tok = strtok(NULL, " \n")))
		return;
	for (int k = 0; k < MAX_KINDS; k++) {
		if (strcmp(tok, kinds[k].name))
			continue;
		while ((tok = strtok(NULL, " \n")) && kinds[k].n < SAMPLES * 2)
			kinds[k].v[kinds[k].n++] = strtod(tok, NULL) / 1000.0;
		return;
	}
}

/* Boot the latency guest; collect its samples.  0 when it said done. */
static int run_guest(const char *bin, const char *guests, const char *sock)
{
	char cmd[1024], line[512];
	int done = 0;
	FILE *p;

	snprintf(cmd, sizeof(cmd), "%s run --kernel %s/latency.elf --gpu %s --append n=%d",
		 bin, guests, sock, SAMPLES);
	p = popen(cmd, "r");
	if (!p)
		return -1;
	while (fgets(line, sizeof(line), p)) {
		if (!strncmp(line, "latency: done", 13))
			done = 1;
		if (!strncmp(line, "latency: loop ", 14))
			loop_ns = strtod(line + 14, NULL) / 1000.0;
		parse_line(line);
	}
	return pclose(p) == 0 && done ? 0 : -1;
}

static double pct(struct kind *k, double p)
{
	perf_sort(k->v, (size_t)k->n);
	return k->v[(int)(p * (k->n - 1) + 0.5)];
}

static int create(const char *bin, char *uuid, size_t len)
{
	char cmd[512];
	FILE *p;

	snprintf(cmd, sizeof(cmd), "%s --run-dir %s create --gpu gpu0 --type sim-64m-4",
		 bin, dmn.run_dir);
	p = popen(cmd, "r");
	if (!p || !fgets(uuid, (int)len, p)) {
		if (p)
			pclose(p);
		return -1;
	}
	uuid[strcspn(uuid, "\n")] = 0;
	return pclose(p) == 0 ? 0 : -1;
}

static void report(void)
{
	double trap = pct(&kinds[3], 0.5);

	printf("| path | p50 (us) | p99 (us) | p50 / trapped write |\n|---|---:|---:|---:|\n");
	for (int k = 0; k < MAX_KINDS; k++)
		printf("| %s | %.1f | %.1f | %.2f |\n", kinds[k].what, pct(&kinds[k], 0.5),
		       pct(&kinds[k], 0.99), pct(&kinds[k], 0.5) / trap);
	printf("\nThe fence round trip with the vCPU halted until the interrupt is "
	       "%.2fx a trapped write handled by the VMM (target: below 1x); the "
	       "driver's default wait, which spins briefly first as Linux's "
	       "cpuidle-haltpoll does, is %.2fx.\n\n", pct(&kinds[0], 0.5) / trap,
	       pct(&kinds[1], 0.5) / trap);
	printf("Context from the same run: plain guest code runs at %.2f ns per "
	       "loop iteration (0.3 to 1 ns means native speed), and entering the "
	       "guest's own ring 0 costs %.1f us at p50.  Sample guests run in ring "
	       "3; the halt and the interrupt handler that the halted fence path "
	       "needs run in ring 0, which some hosts (KVM as PVM, without "
	       "hardware virtualization) emulate instruction by instruction: "
	       "there that path costs several ring-0 round trips, while hardware "
	       "virtualization makes them nearly free.\n", loop_ns, pct(&kinds[5], 0.5));
}

int main(void)
{
	const char *bin = getenv("GPUP_BIN"), *guests = getenv("GPUP_GUESTS");
	char uuid[64], sock[200];
	int rc;

	printf("## Doorbell to fence interrupt, seen by the guest\n\n");
	if (!bin || !guests || access("/dev/kvm", R_OK | W_OK)) {
		printf("Not measured: needs /dev/kvm and `make bench` (GPUP_BIN, "
		       "GPUP_GUESTS).\n");
		return 0;
	}
	printf("The `latency` guest times %d of each with the TSC, on a sim-64m-4 "
	       "partition: the doorbell is a KVM ioeventfd and the interrupt a KVM "
	       "irqfd, so neither passes through the VMM's userspace; each sample "
	       "includes the guest's own submit and wait code.\n\n", SAMPLES);
	rc = dl_start(&dmn, &daemon_opts) || create(bin, uuid, sizeof(uuid));
	if (!rc) {
		snprintf(sock, sizeof(sock), "%s/%s.sock", dmn.run_dir, uuid);
		rc = run_guest(bin, guests, sock);
	}
	dl_teardown(&dmn);
	for (int k = 0; !rc && k < MAX_KINDS; k++)
		if (kinds[k].n != SAMPLES)
			rc = -1;
	if (rc) {
		printf("Not measured: the daemon, the partition or the guest failed.\n");
		return 1;
	}
	report();
	return 0;
}
