// SPDX-License-Identifier: MIT
/*
 * Live migration of a VM over loopback TCP: `gpup migrate` of the dirty
 * guest (256 MiB of RAM, a partition of 1 GiB of VRAM, 100 MiB/s dirtied
 * across both) between two `gpup run` on two daemons; the same guest
 * without a device (RAM only); and QEMU 7.2 microvm migrating the same
 * image, RAM only, with the same RAM, dirty rate and downtime limit
 * (QMP migrate, its downtime from query-migrate).  Reported: downtime
 * median and worst (the p99 of so few runs), total time against the bytes
 * moved at the loopback bandwidth measured in the same run, pre-copy
 * rounds; each destination must finish the guest with every byte
 * verified.  Runs alternate between the three so that host noise hits
 * all alike.  Prints one Markdown section for docs/BENCHMARKS.md.
 */
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <json-c/json.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <linux/kvm.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "perf/perflib.h"
#include "tests/daemonlib.h"

#define RUNS 5
#define WARM_MS 6000          /* the guest dirties this long before the move */
#define AFTER_MS 4000         /* and runs on this long at the destination */
#define DOWNTIME_TARGET_MS 30.0
#define TOTAL_TARGET 1.3
#define LOOP_BYTES (512ull << 20)

static const char *bin, *guests;
static char tmp[64];

/* The parts of gpup's downtime (gpup migrate --json): parking the vCPUs,
 * the partitions' STOP_COPY with the rest of their streams, the last
 * dirty pages, the vCPUs' and devices' state with END, and the wait for
 * the destination's READY until GO is sent. */
enum part { P_PAUSE, P_DEV, P_DIRTY, P_STATE, P_READY, NPARTS };

/* Where the host's CPU went while a migration ran: the guest's vCPUs at
 * the source, the source VMM's migration (QEMU: the whole process but its
 * vCPUs), each daemon, the destination VMM but its vCPUs. */
enum cpu { C_GUEST, C_SRC, C_SRCD, C_DST, C_DSTD, NCPU };

struct series {
	const char *name;
	double down[RUNS], total[RUNS], ratio[RUNS], rounds[RUNS], mib[RUNS];
	double part[NPARTS][RUNS], worst[NPARTS], worst_down;
	double cpu[NCPU][RUNS], floor[RUNS];
	int n, bad;
};

/* The loopback stream's CPU (sender and receiver) per MiB, by run. */
static double loop_cpu_mib[RUNS];
static int cur_run;
static pid_t daemon_pid[2];

static double now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec * 1e-6;
}

/* ---- loopback bandwidth ---- */

static void *loop_sink(void *arg)
{
	static char buf[1 << 20];
	int fd = accept(*(int *)arg, NULL, NULL);

	while (fd >= 0 && read(fd, buf, sizeof(buf)) > 0)
		;
	if (fd >= 0)
		close(fd);
	return NULL;
}

/* CPU ms this process has used, all its threads. */
static double self_cpu_ms(void)
{
	struct rusage ru;

	getrusage(RUSAGE_SELF, &ru);
	return (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1e3 +
	       (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e3;
}

/* Bytes/s of one TCP stream over loopback, 1 MiB writes; its CPU per MiB
 * into loop_cpu_mib[cur_run]. */
static double loopback_bps(void)
{
	static char buf[1 << 20];
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t len = sizeof(a);
	int l = socket(AF_INET, SOCK_STREAM, 0), fd = socket(AF_INET, SOCK_STREAM, 0);
	pthread_t t;
	double t0, c0;

	memset(buf, 0x5a, sizeof(buf));
	if (bind(l, (struct sockaddr *)&a, sizeof(a)) || listen(l, 1) ||
	    getsockname(l, (struct sockaddr *)&a, &len) || pthread_create(&t, NULL, loop_sink, &l))
		return 0;
	if (connect(fd, (struct sockaddr *)&a, sizeof(a)))
		return 0;
	c0 = self_cpu_ms();
	t0 = now_ms();
	for (uint64_t sent = 0; sent < LOOP_BYTES;) {
		ssize_t n = write(fd, buf, sizeof(buf));

		if (n <= 0)
			break;
		sent += (uint64_t)n;
	}
	close(fd);
	pthread_join(t, NULL);
	t0 = now_ms() - t0;
	loop_cpu_mib[cur_run] = (self_cpu_ms() - c0) / (double)(LOOP_BYTES >> 20);
	close(l);
	return (double)LOOP_BYTES / (t0 / 1e3);
}

/* ---- processes ---- */

/* CPU ms of process pid: in *all its threads, the ended ones too (clock
 * ticks, /proc/PID/stat), in *live those running now, and in *named those
 * of them whose name starts with prefix (ns, schedstat). */
static void proc_cpu(pid_t pid, const char *prefix, double *all, double *live, double *named)
{
	char path[320], buf[512], *p;
	unsigned long long ut = 0, st = 0;
	struct dirent *e;
	FILE *f;
	DIR *d;

	*all = *live = *named = 0;
	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	if ((f = fopen(path, "r"))) {
		if (fgets(buf, sizeof(buf), f) && (p = strrchr(buf, ')')) &&
		    sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &ut,
			   &st) == 2)
			*all = (double)(ut + st) * 1e3 / (double)sysconf(_SC_CLK_TCK);
		fclose(f);
	}
	snprintf(path, sizeof(path), "/proc/%d/task", (int)pid);
	if (!(d = opendir(path)))
		return;
	while ((e = readdir(d))) {
		char comm[32] = "";
		unsigned long long ns = 0;

		if (e->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "/proc/%d/task/%s/comm", (int)pid, e->d_name);
		if ((f = fopen(path, "r"))) {
			if (!fgets(comm, sizeof(comm), f))
				comm[0] = 0;
			fclose(f);
		}
		snprintf(path, sizeof(path), "/proc/%d/task/%s/schedstat", (int)pid, e->d_name);
		if ((f = fopen(path, "r"))) {
			if (fscanf(f, "%llu", &ns) != 1)
				ns = 0;
			fclose(f);
		}
		*live += (double)ns / 1e6;
		if (prefix && !strncmp(comm, prefix, strlen(prefix)))
			*named += (double)ns / 1e6;
	}
	closedir(d);
}

/* Live CPU ms of pid but its threads named prefix. */
static double live_cpu(pid_t pid, const char *prefix)
{
	double all, live, named;

	if (pid <= 0)
		return 0;
	proc_cpu(pid, prefix, &all, &live, &named);
	return live - named;
}

/* The host's cores. */
static double cores(void)
{
	long n = sysconf(_SC_NPROCESSORS_ONLN);

	return n > 0 ? (double)n : 1;
}

/* The least total a migration could take here beside its guest: the
 * guest's CPU during it plus the bare stream's CPU for the bytes, spread
 * over every core; as a multiple of the bytes at loopback rate. */
static void floor_of(struct series *s, double bps)
{
	double mib = s->mib[s->n - 1];
	double ms = (s->cpu[C_GUEST][s->n - 1] + loop_cpu_mib[cur_run] * mib) / cores();

	s->floor[s->n - 1] = ms / (mib * 1048576.0 / bps * 1e3);
}

static int free_port(void)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t len = sizeof(a);
	int fd = socket(AF_INET, SOCK_STREAM, 0), port = 0;

	if (!bind(fd, (struct sockaddr *)&a, sizeof(a)) &&
	    !getsockname(fd, (struct sockaddr *)&a, &len))
		port = ntohs(a.sin_port);
	close(fd);
	return port;
}

static pid_t spawn(char *const argv[])
{
	pid_t pid = fork();

	if (pid == 0) {
		int null = open("/dev/null", O_WRONLY);

		prctl(PR_SET_PDEATHSIG, SIGKILL);
		dup2(null, 1);
		dup2(null, 2);
		execvp(argv[0], argv);
		_exit(127);
	}
	return pid;
}

static int reap(pid_t pid)
{
	int st;

	if (waitpid(pid, &st, 0) != pid)
		return -1;
	return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

static void wait_file(const char *path)
{
	for (int i = 0; i < 500 && access(path, F_OK); i++)
		usleep(10000);
}

static double jnum(json_object *o, const char *key)
{
	json_object *v;

	return json_object_object_get_ex(o, key, &v) ? json_object_get_double(v) : -1;
}

static void record(struct series *s, double down, double total, double bytes, double rounds,
		   double bps)
{
	s->down[s->n] = down;
	s->total[s->n] = total;
	s->mib[s->n] = bytes / 1048576.0;
	s->ratio[s->n] = total / (bytes / bps * 1e3);
	s->rounds[s->n] = rounds;
	s->n++;
}

/* ---- gpup ---- */

/* The run's parts, and those of the worst downtime so far. */
static void parts(struct series *s, json_object *o)
{
	double stop = jnum(o, "stop_copy_ms"), down = jnum(o, "downtime_ms"), p[NPARTS];
	bool worst = !s->n || down > s->worst_down;

	p[P_PAUSE] = jnum(o, "pause_ms");
	p[P_DEV] = jnum(o, "dev_stop_ms");
	p[P_DIRTY] = jnum(o, "dirty_ms");
	p[P_STATE] = stop - p[P_DEV] - p[P_DIRTY];
	p[P_READY] = down - p[P_PAUSE] - stop;
	for (int k = 0; k < NPARTS; k++) {
		s->part[k][s->n] = p[k];
		if (worst)
			s->worst[k] = p[k];
	}
	if (worst)
		s->worst_down = down;
}

/* One migration of the dirty guest between two `gpup run`; ua/ub: the
 * partitions' sockets (NULL: RAM only). */
static void gpup_once(struct series *s, const char *ua, const char *ub, const char *append,
		      double bps)
{
	char kernel[512], ctl[256], addr[64], cmd[1024], out[4096];
	char *src[] = { (char *)bin, "run", "--kernel", kernel, "--mem", "256M", "--ctl", ctl,
			"--append", (char *)append, ua ? "--gpu" : NULL, (char *)ua, NULL };
	/* Told the RAM's size, as QEMU's destination is (-m): it faults the
	 * RAM in while it waits. */
	char *dst[] = { (char *)bin, "run", "--incoming", addr, "--mem", "256M",
			ub ? "--gpu" : NULL, (char *)ub, NULL };
	pid_t ps, pd;
	size_t len = 0;
	double c0[3], c1[3];
	json_object *o;
	FILE *f;

	snprintf(kernel, sizeof(kernel), "%s/dirty.elf", guests);
	snprintf(ctl, sizeof(ctl), "%s/src.sock", tmp);
	snprintf(addr, sizeof(addr), "tcp:127.0.0.1:%d", free_port());
	unlink(ctl);
	pd = spawn(dst);
	ps = spawn(src);
	wait_file(ctl);
	usleep(WARM_MS * 1000);
	snprintf(cmd, sizeof(cmd), "%s migrate %s --to %s --json 2>&1", bin, ctl, addr);
	c0[0] = live_cpu(ua ? daemon_pid[0] : 0, NULL);
	c0[1] = live_cpu(pd, "gpup-vcpu");
	c0[2] = live_cpu(ub ? daemon_pid[1] : 0, NULL);
	f = popen(cmd, "r");
	while (f && len < sizeof(out) - 1 && fgets(out + len, (int)(sizeof(out) - len), f))
		len = strlen(out);
	if (f)
		pclose(f);
	c1[0] = live_cpu(ua ? daemon_pid[0] : 0, NULL);
	c1[1] = live_cpu(pd, "gpup-vcpu");
	c1[2] = live_cpu(ub ? daemon_pid[1] : 0, NULL);
	o = json_tokener_parse(out);
	reap(ps);
	if (reap(pd) != 0 || !o || jnum(o, "downtime_ms") < 0) {
		s->bad++;
		fprintf(stderr, "vm_mig_perf: %s: the migration or the guest failed: %s\n",
			s->name, out);
	} else {
		parts(s, o);
		s->cpu[C_GUEST][s->n] = jnum(o, "vcpu_cpu_ms");
		s->cpu[C_SRC][s->n] = jnum(o, "cpu_ms");
		s->cpu[C_SRCD][s->n] = c1[0] - c0[0];
		s->cpu[C_DST][s->n] = c1[1] - c0[1];
		s->cpu[C_DSTD][s->n] = c1[2] - c0[2];
		record(s, jnum(o, "downtime_ms"), jnum(o, "total_ms"), jnum(o, "bytes"),
		       jnum(o, "rounds"), bps);
		floor_of(s, bps);
	}
	json_object_put(o);
}

/* ---- QEMU ---- */

/* The host's TSC rate as KVM gives it to a vCPU: QEMU migrates a guest
 * with invariant TSC only when its frequency is pinned. */
static long tsc_khz(void)
{
	int kvm = open("/dev/kvm", O_RDWR), vm = -1, cpu = -1;
	long khz = -1;

	if (kvm >= 0)
		vm = ioctl(kvm, KVM_CREATE_VM, 0);
	if (vm >= 0)
		cpu = ioctl(vm, KVM_CREATE_VCPU, 0);
	if (cpu >= 0)
		khz = ioctl(cpu, KVM_GET_TSC_KHZ, 0);
	for (int fd = 0; fd < 3; fd++)
		if ((fd ? (fd == 1 ? vm : cpu) : kvm) >= 0)
			close(fd ? (fd == 1 ? vm : cpu) : kvm);
	return khz;
}

/* One QMP command on fd (NULL: only read the greeting): the reply,
 * events skipped. */
static json_object *qmp(FILE *f, const char *cmd)
{
	char line[8192];

	if (cmd && (fprintf(f, "%s\n", cmd) < 0 || fflush(f)))
		return NULL;
	while (fgets(line, sizeof(line), f)) {
		json_object *o = json_tokener_parse(line), *v;

		if (o && (json_object_object_get_ex(o, "return", &v) ||
			  json_object_object_get_ex(o, "error", &v) ||
			  json_object_object_get_ex(o, "QMP", &v)))
			return o;
		json_object_put(o);
	}
	return NULL;
}

static FILE *qmp_open(const char *path)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd = socket(AF_UNIX, SOCK_STREAM, 0);
	FILE *f;

	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
	wait_file(path);
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa))) {
		close(fd);
		return NULL;
	}
	f = fdopen(fd, "r+");
	json_object_put(qmp(f, NULL));
	json_object_put(qmp(f, "{\"execute\":\"qmp_capabilities\"}"));
	return f;
}

/* query-migrate until it is over: the reply's "return", or NULL. */
static json_object *qmp_wait(FILE *f)
{
	for (int i = 0; i < 1200; i++) {
		json_object *o = qmp(f, "{\"execute\":\"query-migrate\"}"), *r, *st;
		const char *s;

		if (!o || !json_object_object_get_ex(o, "return", &r) ||
		    !json_object_object_get_ex(r, "status", &st)) {
			json_object_put(o);
			return NULL;
		}
		s = json_object_get_string(st);
		if (!strcmp(s, "completed"))
			return o;
		if (!strcmp(s, "failed") || !strcmp(s, "cancelled")) {
			json_object_put(o);
			return NULL;
		}
		json_object_put(o);
		usleep(50000);
	}
	return NULL;
}

static void qemu_once(struct series *s, const char *append, double bps)
{
	char kernel[512], qs[100], qd[100], qsarg[140], qdarg[140], inc[64], cmd[256];
	char cpu[96];
	char *common[] = { "qemu-system-x86_64", "-M", "microvm", "-accel", "kvm", "-m", "256M",
			   "-cpu", cpu, "-kernel", kernel,
			   "-append", (char *)append, "-nodefaults", "-no-user-config",
			   "-display", "none", "-serial", "null", "-device",
			   "isa-debug-exit,iobase=0xf4,iosize=4",
			   /* vCPU threads named "CPU 0/KVM", for the CPU table */
			   "-name", "dirty,debug-threads=on", "-qmp", NULL, NULL, NULL, NULL };
	char *src[32], *dst[32];
	int n = 0, port = free_port();
	json_object *r, *ret, *ram;
	pid_t ps, pd;
	double q0[4], q1[4];
	FILE *f;

	snprintf(kernel, sizeof(kernel), "%s/dirty.elf", guests);
	snprintf(cpu, sizeof(cpu), "qemu64,+invtsc,tsc-frequency=%ld,vmware-cpuid-freq=on",
		 tsc_khz() * 1000);
	snprintf(qs, sizeof(qs), "%s/qs.qmp", tmp);
	snprintf(qd, sizeof(qd), "%s/qd.qmp", tmp);
	snprintf(qsarg, sizeof(qsarg), "unix:%s,server=on,wait=off", qs);
	snprintf(qdarg, sizeof(qdarg), "unix:%s,server=on,wait=off", qd);
	snprintf(inc, sizeof(inc), "tcp:127.0.0.1:%d", port);
	unlink(qs);
	unlink(qd);
	while (common[n]) {
		src[n] = dst[n] = common[n];
		n++;
	}
	src[n] = qsarg;
	dst[n] = qdarg;
	src[n + 1] = NULL;
	dst[n + 1] = "-incoming";
	dst[n + 2] = inc;
	dst[n + 3] = NULL;
	pd = spawn(dst);
	ps = spawn(src);
	f = qmp_open(qs);
	usleep(WARM_MS * 1000);
	/* The same budget as ours, and no bandwidth cap (QEMU's default is
	 * 32 MiB/s). */
	json_object_put(qmp(f, "{\"execute\":\"migrate-set-parameters\",\"arguments\":"
			       "{\"downtime-limit\":30,\"max-bandwidth\":100000000000}}"));
	snprintf(cmd, sizeof(cmd), "{\"execute\":\"migrate\",\"arguments\":{\"uri\":\"%s\"}}", inc);
	/* QEMU's migration thread ends with it: the source's whole CPU
	 * counts, in clock ticks, less its vCPU threads ("CPU 0/KVM"). */
	proc_cpu(ps, "CPU ", &q0[0], &q0[1], &q0[2]);
	q0[3] = live_cpu(pd, "CPU ");
	json_object_put(f ? qmp(f, cmd) : NULL);
	r = f ? qmp_wait(f) : NULL;
	proc_cpu(ps, "CPU ", &q1[0], &q1[1], &q1[2]);
	q1[3] = live_cpu(pd, "CPU ");
	if (f) {
		json_object_put(qmp(f, "{\"execute\":\"quit\"}"));
		fclose(f);
	}
	reap(ps);
	/* The guest exits 0 through isa-debug-exit: QEMU's status 1. */
	if (reap(pd) != 1 || !r || !json_object_object_get_ex(r, "return", &ret) ||
	    !json_object_object_get_ex(ret, "ram", &ram)) {
		s->bad++;
		fprintf(stderr, "vm_mig_perf: QEMU: the migration or the guest failed\n");
	} else {
		s->cpu[C_GUEST][s->n] = q1[2] - q0[2];
		s->cpu[C_SRC][s->n] = (q1[0] - q0[0]) - (q1[2] - q0[2]);
		s->cpu[C_SRCD][s->n] = s->cpu[C_DSTD][s->n] = 0;
		s->cpu[C_DST][s->n] = q1[3] - q0[3];
		record(s, jnum(ret, "downtime"), jnum(ret, "total-time"), jnum(ram, "transferred"),
		       jnum(ram, "dirty-sync-count"), bps);
		floor_of(s, bps);
	}
	json_object_put(r);
}

/* ---- report ---- */

static void row(struct series *s)
{
	if (!s->n) {
		printf("| %s | — | — | — | — | — | — |\n", s->name);
		return;
	}
	perf_sort(s->down, (size_t)s->n);
	printf("| %s | %.1f | %.1f | %.0f | %.0f | %.2f | %.0f |\n", s->name,
	       perf_median(s->down, (size_t)s->n), s->down[s->n - 1],
	       perf_median(s->total, (size_t)s->n), perf_median(s->mib, (size_t)s->n),
	       perf_median(s->ratio, (size_t)s->n), perf_median(s->rounds, (size_t)s->n));
}

/* CPU per MiB moved, medians: each place, all of it, and the least
 * total the guest's CPU leaves room for (floor_of). */
static void cpu_row(struct series *s)
{
	double per[NCPU][RUNS], all[RUNS], med[NCPU];

	if (!s->n)
		return;
	for (int i = 0; i < s->n; i++) {
		all[i] = 0;
		for (int k = 0; k < NCPU; k++) {
			per[k][i] = s->cpu[k][i] / s->mib[i];
			all[i] += per[k][i];
		}
	}
	for (int k = 0; k < NCPU; k++) {
		perf_sort(per[k], (size_t)s->n);
		med[k] = perf_median(per[k], (size_t)s->n);
	}
	perf_sort(all, (size_t)s->n);
	perf_sort(s->floor, (size_t)s->n);
	printf("| %s | %.2f | %.2f | %.2f | %.2f | %.2f | %.2f | %.2f (%.2f–%.2f) |\n", s->name,
	       med[C_GUEST], med[C_SRC], med[C_SRCD], med[C_DST], med[C_DSTD],
	       perf_median(all, (size_t)s->n), perf_median(s->floor, (size_t)s->n), s->floor[0],
	       s->floor[s->n - 1]);
}

/* Median of each part (not summing to the median downtime), and the
 * parts of the worst run. */
static void parts_row(struct series *s)
{
	double med[NPARTS];

	if (!s->n)
		return;
	for (int k = 0; k < NPARTS; k++) {
		perf_sort(s->part[k], (size_t)s->n);
		med[k] = perf_median(s->part[k], (size_t)s->n);
	}
	printf("| %s | %.2f / %.2f | %.2f / %.2f | %.2f / %.2f | %.2f / %.2f | %.2f / %.2f | "
	       "%.1f |\n", s->name, med[P_PAUSE], s->worst[P_PAUSE], med[P_DEV], s->worst[P_DEV],
	       med[P_DIRTY], s->worst[P_DIRTY], med[P_STATE], s->worst[P_STATE], med[P_READY],
	       s->worst[P_READY], s->worst_down);
}

static int partitions(struct dl_daemon *a, struct dl_daemon *b, char *ua, char *ub)
{
	static const char *const args[] = { "--sim-gpus", "1", "--vram", "1G", NULL };
	char cmd[512];
	FILE *f;

	if (dl_start(a, &(struct dl_opts){ .name = "vm-mig-perf-a", .args = args }) ||
	    dl_start(b, &(struct dl_opts){ .name = "vm-mig-perf-b", .args = args }))
		return -1;
	for (int i = 0; i < 2; i++) {
		struct dl_daemon *d = i ? b : a;
		char *u = i ? ub : ua;

		snprintf(cmd, sizeof(cmd), "%s --run-dir %s create --gpu gpu0 --type sim-1g-1",
			 bin, d->run_dir);
		f = popen(cmd, "r");
		if (!f || !fgets(u, 64, f))
			return -1;
		pclose(f);
		u[strcspn(u, "\n")] = 0;
		memmove(u + strlen(d->run_dir) + 1, u, strlen(u) + 1);
		memcpy(u, d->run_dir, strlen(d->run_dir));
		u[strlen(d->run_dir)] = '/';
		strcat(u, ".sock");
	}
	return 0;
}

int main(void)
{
	struct series part = { .name = "gpup, 256 MiB RAM + 1 GiB VRAM partition" },
		      ram = { .name = "gpup, 256 MiB RAM only" },
		      qemu = { .name = "QEMU 7.2 microvm, 256 MiB RAM only" };
	struct dl_daemon a = { 0 }, b = { 0 };
	char ua[128], ub[128], app_part[160], app_ram[160];
	double bps[RUNS], bw;

	/* For profiling one case: GPUP_VMMIG_PERF_RUNS=1..5 runs of each,
	 * GPUP_VMMIG_PERF_ONLY=partition for the migration with the partition
	 * alone.  `make bench` sets neither. */
	const char *e = getenv("GPUP_VMMIG_PERF_RUNS");
	int runs = e && atoi(e) >= 1 && atoi(e) <= RUNS ? atoi(e) : RUNS;
	bool only_part = (e = getenv("GPUP_VMMIG_PERF_ONLY")) && !strcmp(e, "partition");

	bin = getenv("GPUP_BIN");
	guests = getenv("GPUP_GUESTS");
	printf("## VM live migration over loopback TCP: gpup vs QEMU\n\n");
	if (!bin || !guests || access("/dev/kvm", R_OK | W_OK)) {
		printf("Not measured: needs /dev/kvm and `make bench` (GPUP_BIN, GPUP_GUESTS).\n");
		return 0;
	}
	snprintf(tmp, sizeof(tmp), "/tmp/vm-mig-perf-XXXXXX");
	if (!mkdtemp(tmp) || partitions(&a, &b, ua, ub) < 0) {
		printf("Not measured: no daemons with a 1 GiB partition here.\n");
		dl_teardown(&a);
		dl_teardown(&b);
		return 1;
	}
	snprintf(app_part, sizeof(app_part), "ram=192 vram=1024 rate=100 epoch=2000 ms=%d "
		 "timeout=30", WARM_MS + AFTER_MS);
	snprintf(app_ram, sizeof(app_ram), "ram=192 vram=0 rate=100 epoch=500 ms=%d",
		 WARM_MS + AFTER_MS);
	daemon_pid[0] = a.pid;
	daemon_pid[1] = b.pid;
	for (int i = 0; i < runs; i++) {
		cur_run = i;
		bps[i] = loopback_bps();
		gpup_once(&part, ua, ub, app_part, bps[i]);
		if (!only_part) {
			gpup_once(&ram, NULL, NULL, app_ram, bps[i]);
			qemu_once(&qemu, app_ram, bps[i]);
		}
	}
	dl_teardown(&a);
	dl_teardown(&b);
	for (int i = 0; i < 3; i++) {
		char path[96];

		snprintf(path, sizeof(path), "%s/%s", tmp, i == 0 ? "src.sock" : i == 1 ? "qs.qmp"
										: "qd.qmp");
		unlink(path);
	}
	rmdir(tmp);
	bw = perf_median(bps, (size_t)runs);
	printf("The dirty guest (`%s`) runs %d s, is migrated with `gpup migrate --json` "
	       "(downtime budget 30 ms, no bandwidth cap) to a `gpup run --incoming --mem 256M` "
	       "on a second daemon, and must finish there with every byte and fence verified. "
	       "RAM only: `%s`, also under QEMU 7.2 microvm (`migrate` over QMP with "
	       "downtime-limit 30 ms and no bandwidth cap; its figures from `query-migrate`: "
	       "downtime, total-time, ram.transferred, dirty-sync-count as rounds). "
	       "Loopback TCP measured in the same run: %.0f MiB/s (median of %d, one stream, "
	       "1 MiB writes). %d runs each, alternating; median and worst.\n\n",
	       app_part, WARM_MS / 1000, app_ram, bw / 1048576.0, runs, runs);
	printf("| migration | downtime median (ms) | downtime worst (ms) | total (ms) | moved "
	       "(MiB) | total / (moved at loopback rate) | rounds |\n"
	       "|---|---:|---:|---:|---:|---:|---:|\n");
	row(&part);
	row(&ram);
	row(&qemu);
	printf("\nWhere gpup's downtime goes, in ms: the median of each part / that part in "
	       "the run of the worst downtime.  Parking the vCPUs; the partitions' STOP_COPY "
	       "and the rest of their streams; the last dirty pages (the dirty logs read, the "
	       "pages sent); the vCPUs' and devices' state and END; the destination's checks "
	       "until its READY and our GO.\n\n"
	       "| migration | park | partitions | dirty pages | state, END | READY, GO | "
	       "worst downtime |\n|---|---:|---:|---:|---:|---:|---:|\n");
	parts_row(&part);
	parts_row(&ram);
	perf_sort(loop_cpu_mib, (size_t)runs);
	printf("\nWhere the host's CPU went during the migration, in ms of CPU per MiB moved "
	       "(medians): the guest's vCPUs at the source (their stores trapped by dirty "
	       "logging); the source VMM's migration (gpup: its migration thread; QEMU: the "
	       "whole process but its vCPUs); each daemon; the destination VMM but its vCPUs.  "
	       "The bare loopback stream costs %.2f ms of CPU per MiB (sender and receiver; "
	       "%.2f–%.2f).  The floor is the least total this host allows beside that guest: "
	       "(the guest's CPU + the bare stream's CPU for the bytes moved) / %.0f cores, "
	       "as a multiple of the bytes at loopback rate.\n\n"
	       "| migration | guest vCPUs | source VMM | source daemon | destination VMM | "
	       "destination daemon | all | floor of total / (moved at loopback rate) |\n"
	       "|---|---:|---:|---:|---:|---:|---:|---:|\n",
	       perf_median(loop_cpu_mib, (size_t)runs), loop_cpu_mib[0], loop_cpu_mib[runs - 1],
	       cores());
	cpu_row(&part);
	cpu_row(&ram);
	cpu_row(&qemu);
	if (part.bad || ram.bad || qemu.bad)
		printf("\nFailed runs (left out above): %d, %d, %d.\n", part.bad, ram.bad,
		       qemu.bad);
	if (part.n && ram.n && qemu.n)
		printf("\nTargets: downtime <= %.0f ms at the median: %s (worst %.1f ms); total "
		       "within %.1fx of the bytes at loopback speed: %s (%.2f); downtime no "
		       "worse than QEMU's (RAM only, %.1f vs %.1f ms): %s.\n",
		       DOWNTIME_TARGET_MS, part.down[part.n / 2] <= DOWNTIME_TARGET_MS ? "PASS" :
		       "FAIL", part.down[part.n - 1], TOTAL_TARGET,
		       perf_median(part.ratio, (size_t)part.n) <= TOTAL_TARGET ? "PASS" : "FAIL",
		       perf_median(part.ratio, (size_t)part.n),
		       perf_median(ram.down, (size_t)ram.n), perf_median(qemu.down, (size_t)qemu.n),
		       perf_median(ram.down, (size_t)ram.n) <=
		       perf_median(qemu.down, (size_t)qemu.n) ? "PASS" : "FAIL");
	return part.n ? 0 : 1;
}
