// SPDX-License-Identifier: MIT
/*
 * Failover of a protected 1 GiB partition (docs/MIGRATION.md,
 * "Failover"), through a daemon as an operator runs it: the partition
 * holds 512 MiB of data, its client keeps dirtying VRAM (every 5 ms a
 * device FILL of 256 KiB and 64 KiB of CPU stores through its BAR2
 * mapping, at random places: about 64 MiB/s), `gpup protect` writes a
 * link every 100 ms or
 * every second into the daemon's state directory, and `gpup fault
 * inject` fails its GPU at a random moment between two links.  Reported
 * from the daemon's own figures: RTO (from the failure to the partition
 * running on the other GPU: the chain read, checked and applied, the
 * state loaded), RPO (the age of the link it came back from, against the
 * target of one interval, and the commands completed after it that were
 * lost), and what protection costs while nothing fails (the guest's pause
 * for each link's final copy, a link's whole time, and its size).  Median
 * and range over RUNS failures per interval, a fresh daemon for each.
 * Needs $GPUP_BIN (the gpup binary).  Prints one Markdown section for
 * docs/BENCHMARKS.md.
 */
#include <pthread.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "gpup/ctl/ctl.h"
#include "gpup/drv/drv.h"
#include "perf/perflib.h"
#include "tests/daemonlib.h"
#include "uapi/gpup_ctl.h"
#include "uapi/gpup_vgpu.h"

#define RUNS 5
#define MIB (1ull << 20)
#define SIZE (1ull << 30)
#define DATA (512 * MIB)
/* Every STEP_US, a FILL of FILL_BYTES and CPU stores of CPU_BYTES, at
 * random places in the data: about 64 MiB/s dirtied. */
#define STEP_US 5000
#define FILL_BYTES (256u << 10)
#define CPU_BYTES (64u << 10)

struct run {
	double rto_ms, rpo_ms, lost_cmds, pause_ms, link_ms, link_mib;
};

struct client {
	struct dl_daemon d;
	struct gpup_vg g;
	struct vfu_client *vc;
	uint8_t *bar2;
	char uuid[40];
	pthread_t worker;
	volatile int stop;
};

static json_object *call(struct client *c, json_object *req)
{
	json_object *r = NULL;

	if (gpup_ctl_call(c->d.run_dir, req, &r) ||
	    !json_object_get_boolean(json_object_object_get(r, GPUP_CTL_F_OK))) {
		fprintf(stderr, "failover_perf: %s\n", r ? gpup_ctl_str(r, GPUP_CTL_F_ERROR, "?")
							 : "no reply");
		exit(1);
	}
	json_object_put(req);
	return r;
}

static int wait_fence(struct client *c)
{
	return gpup_vg_fence_wait(&c->g, 0, 20000, NULL);
}

static void fill(struct client *c, uint64_t off, uint64_t len, uint32_t pat)
{
	union gpup_cmd f = gpup_cmd_fill(GPUP_SPACE_VRAM, off, len, pat);

	if (gpup_vg_submit(&c->g, 0, &f, 1) || wait_fence(c)) {
		fprintf(stderr, "failover_perf: a FILL failed before any fault\n");
		exit(1);
	}
}

/* Dirty VRAM until the GPU fails (its fence waits then fail) or stop. */
static void *work(void *arg)
{
	struct client *c = arg;
	unsigned int seed = 7;

	for (unsigned int i = 0; !c->stop; i++) {
		uint64_t off = (uint64_t)(rand_r(&seed) % (DATA / FILL_BYTES)) * FILL_BYTES;
		union gpup_cmd f = gpup_cmd_fill(GPUP_SPACE_VRAM, off, FILL_BYTES, i);

		if (gpup_vg_submit(&c->g, 0, &f, 1) || wait_fence(c))
			break;
		memset(c->bar2 + (uint64_t)(rand_r(&seed) % (DATA / CPU_BYTES)) * CPU_BYTES, (int)i,
		       CPU_BYTES);
		usleep(STEP_US);
	}
	return NULL;
}

static void setup(struct client *c)
{
	static const char *const args[] = { "--sim-gpus", "2", "--vram", "2G", NULL };
	struct vfio_region_info ri = { .argsz = sizeof(ri) };
	char path[256];
	int err = 0, fd = -1;
	json_object *req, *r;

	memset(c, 0, sizeof(*c));
	if (dl_start(&c->d, &(struct dl_opts){ .name = "failover-perf", .args = args })) {
		fprintf(stderr, "failover_perf: the daemon did not start\n");
		exit(1);
	}
	req = gpup_ctl_request(GPUP_CTL_M_CREATE);
	json_object_object_add(req, GPUP_CTL_F_GPU, json_object_new_string("gpu0"));
	json_object_object_add(req, GPUP_CTL_F_TYPE, json_object_new_string("sim-1g-2"));
	r = call(c, req);
	snprintf(c->uuid, sizeof(c->uuid), "%s", gpup_ctl_str(r, GPUP_CTL_F_UUID, "?"));
	json_object_put(r);
	snprintf(path, sizeof(path), "%s/%s.sock", c->d.run_dir, c->uuid);
	c->vc = vfu_client_connect(path, &err);
	if (!c->vc || gpup_vg_open(&c->g, c->vc, 8 << 20) ||
	    vfu_client_region_info(c->vc, VFIO_PCI_BAR2_REGION_INDEX, &ri, &fd) ||
	    (c->bar2 = mmap(NULL, SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, (off_t)ri.offset)) ==
		    MAP_FAILED ||
	    gpup_vg_queue_setup(&c->g, 0, GPUP_ENGINE_COMPUTE)) {
		fprintf(stderr, "failover_perf: cannot drive the partition\n");
		exit(1);
	}
	close(fd);
	fill(c, 0, DATA, 0x5a5a5a5a);
}

static void teardown(struct client *c)
{
	munmap(c->bar2, SIZE);
	gpup_vg_close(&c->g);
	vfu_client_close(c->vc);
	dl_teardown(&c->d);
}

static json_object *part_stats(struct client *c, json_object **all)
{
	json_object *a = NULL;

	*all = call(c, gpup_ctl_request(GPUP_CTL_M_STATS));
	json_object_object_get_ex(*all, GPUP_CTL_F_PARTITIONS, &a);
	return a && json_object_array_length(a) ? json_object_array_get_idx(a, 0) : NULL;
}

static void protect(struct client *c, unsigned int ms)
{
	json_object *req = gpup_ctl_request(GPUP_CTL_M_PROTECT);

	json_object_object_add(req, GPUP_CTL_F_UUID, json_object_new_string(c->uuid));
	json_object_object_add(req, GPUP_CTL_F_EVERY_MS, json_object_new_int(ms));
	json_object_put(call(c, req));
}

/* Protection's cost while nothing fails: the last link's figures, after
 * the base and a few increments. */
static void link_figures(struct client *c, unsigned int ms, struct run *out)
{
	int64_t links = 0;
	json_object *all, *p;

	while (links < 4) {
		usleep(ms * 1000);
		p = part_stats(c, &all);
		links = gpup_ctl_int(p, GPUP_CTL_F_LINKS, 0);
		out->pause_ms = gpup_ctl_int(p, GPUP_CTL_F_LINK_PAUSE_US, 0) / 1e3;
		out->link_ms = gpup_ctl_int(p, GPUP_CTL_F_LINK_US, 0) / 1e3;
		out->link_mib = gpup_ctl_int(p, GPUP_CTL_F_LINK_BYTES, 0) / (double)MIB;
		json_object_put(all);
	}
}

static void one_failure(unsigned int ms, unsigned int k, struct run *out)
{
	struct client c;
	json_object *req, *r, *a = NULL, *f = NULL;

	setup(&c);
	protect(&c, ms);
	pthread_create(&c.worker, NULL, work, &c);
	link_figures(&c, ms, out);
	/* a moment between two links that differs from run to run */
	usleep((useconds_t)(ms * 1000 * (k + 1) / (RUNS + 1)));
	req = gpup_ctl_request(GPUP_CTL_M_FAULT_INJECT);
	json_object_object_add(req, GPUP_CTL_F_GPU, json_object_new_string("gpu0"));
	json_object_object_add(req, GPUP_CTL_F_KIND, json_object_new_string("lost"));
	r = call(&c, req);
	json_object_object_get_ex(r, GPUP_CTL_F_PARTITIONS, &a);
	if (a && json_object_array_length(a))
		json_object_object_get_ex(json_object_array_get_idx(a, 0), GPUP_CTL_F_FAILOVER, &f);
	if (strcmp(gpup_ctl_str(f, GPUP_CTL_F_RESULT, "?"), "recovered")) {
		fprintf(stderr, "failover_perf: not recovered: %s\n",
			gpup_ctl_str(f, GPUP_CTL_F_ERROR, "?"));
		exit(1);
	}
	out->rto_ms = gpup_ctl_int(f, GPUP_CTL_F_RTO_US, 0) / 1e3;
	out->rpo_ms = gpup_ctl_int(f, GPUP_CTL_F_RPO_US, 0) / 1e3;
	out->lost_cmds = (double)gpup_ctl_int(f, GPUP_CTL_F_RPO_COMMANDS, 0);
	json_object_put(r);
	c.stop = 1;
	pthread_join(c.worker, NULL);
	teardown(&c);
}

/* "median (min–max)" of field `off` over the runs. */
static const char *col(struct run *runs, size_t off, const char *fmt)
{
	static char buf[4][96];
	static int slot;
	double v[RUNS];
	char a[24], b[24], m[24];

	for (int i = 0; i < RUNS; i++)
		v[i] = *(double *)((char *)&runs[i] + off);
	snprintf(m, sizeof(m), fmt, perf_median(v, RUNS));
	snprintf(a, sizeof(a), fmt, v[0]);
	snprintf(b, sizeof(b), fmt, v[RUNS - 1]);
	slot = (slot + 1) % 4;
	snprintf(buf[slot], sizeof(buf[slot]), "%s (%s–%s)", m, a, b);
	return buf[slot];
}

int main(void)
{
	static const unsigned int every[] = { 100, 1000 };
	struct run runs[2][RUNS];
	double load[3] = { 0 };

	if (!getenv("GPUP_BIN")) {
		fprintf(stderr, "failover_perf: GPUP_BIN must name the gpup binary\n");
		return 1;
	}
	for (int i = 0; i < 2; i++)
		for (int k = 0; k < RUNS; k++)
			one_failure(every[i], (unsigned int)k, &runs[i][k]);
	getloadavg(load, 3);
	printf("## Failover of a protected partition (`gpup protect`, `gpup fault inject`)\n\n");
	printf("A 1 GiB partition with 512 MiB of data, its client dirtying VRAM at about\n"
	       "64 MiB/s (device FILLs and CPU stores through BAR2), protected every 100 ms\n"
	       "or every second into the state directory (ext4 here); its GPU fails at a\n"
	       "different moment between two links in each run, and it is recovered on\n"
	       "the other GPU.  RTO: from the failure to the partition running again\n"
	       "(target <= 1 s).  RPO: the age of the link it came back from (target <= the\n"
	       "interval) and the commands completed after it.  Link figures are from\n"
	       "the link before the failure: the guest's pause for its final copy, the\n"
	       "whole link (walk, final copy, write, fsync, rename) and its size.  Median\n"
	       "(range) of %d failures per interval, each on a fresh daemon.  The\n"
	       "restore is memory-bound (the chain hashed, then each page written once\n"
	       "into the partition's VRAM file), so RTO follows what else the host\n"
	       "runs: load average %.1f over the last 5 minutes of these runs, on %ld\n"
	       "cores.  Command: `make bench`, or this section alone:\n"
	       "`GPUP_BIN=build/gpup build/perf/failover_perf` (perf/failover_perf.c).\n\n",
	       RUNS, load[1], sysconf(_SC_NPROCESSORS_ONLN));
	printf("| interval | RTO ms | RPO ms | commands lost | link pause ms | link ms | "
	       "link MiB |\n");
	printf("|---|---|---|---|---|---|---|\n");
	for (int i = 0; i < 2; i++) {
		struct run *r = runs[i];

		printf("| %u ms | %s | %s | %s |", every[i],
		       col(r, offsetof(struct run, rto_ms), "%.0f"),
		       col(r, offsetof(struct run, rpo_ms), "%.0f"),
		       col(r, offsetof(struct run, lost_cmds), "%.0f"));
		printf(" %s | %s | %s |\n", col(r, offsetof(struct run, pause_ms), "%.2f"),
		       col(r, offsetof(struct run, link_ms), "%.0f"),
		       col(r, offsetof(struct run, link_mib), "%.1f"));
	}
	return 0;
}
