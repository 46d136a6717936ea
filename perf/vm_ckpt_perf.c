// SPDX-License-Identifier: MIT
/*
 * VM checkpoints: `gpup checkpoint VM --to FILE` of the dirty guest (256
 * MiB of RAM, a partition of 1 GiB of VRAM, 100 MiB/s dirtied across
 * both) while it runs, then an incremental one on it, then `gpup run
 * --restore` of the chain into the same partition, where the guest must
 * finish with every byte verified.  Reported: the pause (the final copy,
 * from parking the vCPUs until they run again), the total time against
 * the same number of bytes written with O_DIRECT and fsynced into the
 * same directory in the same run (a dd of the file's size), and the
 * restore's time against reading both files' bytes back with O_DIRECT.  Median and range
 * over RUNS runs.  Prints one Markdown section for docs/BENCHMARKS.md.
 */
#include <fcntl.h>
#include <json-c/json.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "perf/perflib.h"
#include "tests/daemonlib.h"

#define RUNS 5
#define WARM_MS 4000          /* the guest dirties this long before the checkpoint */
#define GAP_MS 1000           /* and this long between the full and the increment */
#define AFTER_MS 3000         /* and runs on this long after the restore */
#define IO_BUF (4u << 20)

static const char *bin, *guests;
static char dir[64];

struct col {
	double v[RUNS];
	int n;
};

static double now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec * 1e-6;
}

static void add(struct col *c, double v)
{
	c->v[c->n++] = v;
}

/* "median (min–max)" */
static void cell(struct col *c, const char *fmt)
{
	char a[32], b[32], m[32];

	if (!c->n) {
		printf(" — |");
		return;
	}
	perf_sort(c->v, (size_t)c->n);
	snprintf(m, sizeof(m), fmt, perf_median(c->v, (size_t)c->n));
	snprintf(a, sizeof(a), fmt, c->v[0]);
	snprintf(b, sizeof(b), fmt, c->v[c->n - 1]);
	printf(" %s (%s–%s) |", m, a, b);
}

/* ---- the baseline: the same bytes through the disk ---- */

/* ms to write bytes with O_DIRECT in IO_BUF pieces and fsync (write), or
 * to read them back with O_DIRECT (read). */
static double disk_ms(uint64_t bytes, bool write_it)
{
	char path[128];
	void *buf;
	double t0, t;
	int fd;

	snprintf(path, sizeof(path), "%s/baseline", dir);
	if (posix_memalign(&buf, 4096, IO_BUF))
		return -1;
	memset(buf, 0x5a, IO_BUF);
	fd = open(path, write_it ? O_WRONLY | O_CREAT | O_TRUNC | O_DIRECT : O_RDONLY | O_DIRECT,
		  0600);
	t0 = now_ms();
	for (uint64_t done = 0; fd >= 0 && done < bytes; done += IO_BUF)
		if ((write_it ? write(fd, buf, IO_BUF) : read(fd, buf, IO_BUF)) != IO_BUF)
			break;
	if (fd >= 0 && write_it)
		fsync(fd);
	t = now_ms() - t0;
	if (fd >= 0)
		close(fd);
	if (!write_it)
		unlink(path);
	free(buf);
	return fd < 0 ? -1 : t;
}

/* ---- gpup ---- */

static pid_t spawn(char *const argv[], const char *err)
{
	pid_t pid = fork();

	if (pid == 0) {
		int null = open("/dev/null", O_WRONLY), e = open(err, O_WRONLY | O_CREAT | O_TRUNC,
								   0600);

		prctl(PR_SET_PDEATHSIG, SIGKILL);
		dup2(null, 1);
		dup2(e, 2);
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

static double jnum(json_object *o, const char *key)
{
	json_object *v;

	return o && json_object_object_get_ex(o, key, &v) ? json_object_get_double(v) : -1;
}

/* `gpup checkpoint CTL --to DIR/name [--incremental DIR/base] --json`. */
static json_object *checkpoint(const char *ctl, const char *name, const char *base)
{
	char cmd[1024], out[4096];
	size_t len = 0;
	FILE *f;

	snprintf(cmd, sizeof(cmd), "%s checkpoint %s --to %s/%s%s%s%s%s --json 2>&1", bin, ctl,
		 dir, name, base ? " --incremental " : "", base ? dir : "", base ? "/" : "",
		 base ? base : "");
	f = popen(cmd, "r");
	while (f && len < sizeof(out) - 1 && fgets(out + len, (int)(sizeof(out) - len), f))
		len = strlen(out);
	if (f && pclose(f) != 0)
		fprintf(stderr, "vm_ckpt_perf: %s", out);
	return json_tokener_parse(out);
}

/* The restore's own time, from its log line "... bytes in T ms)". */
static double restore_ms(const char *err)
{
	char text[8192];
	const char *p;
	FILE *f = fopen(err, "r");
	size_t n = f ? fread(text, 1, sizeof(text) - 1, f) : 0;

	if (f)
		fclose(f);
	text[n] = 0;
	p = strstr(text, "restored from ");
	p = p ? strstr(p, " bytes in ") : NULL;
	return p ? atof(p + 10) : -1;
}

struct figures {
	struct col pause, park, total, mib, base_ms, ratio, ipause, ipark, itotal, imib, rest,
		rest_base;
	int bad;
};

static void once(struct figures *fg, const char *part, const char *append)
{
	char kernel[512], ctl[128], file[128], err[128], err2[128];
	char *boot[] = { (char *)bin, "run", "--kernel", kernel, "--mem", "256M", "--ctl", ctl,
			 "--append", (char *)append, "--gpu", (char *)part, NULL };
	char *rest[] = { (char *)bin, "run", "--restore", file, "--gpu", (char *)part, NULL };
	json_object *full, *inc;
	pid_t pid;
	double b;

	snprintf(kernel, sizeof(kernel), "%s/dirty.elf", guests);
	snprintf(ctl, sizeof(ctl), "%s/vm.sock", dir);
	snprintf(file, sizeof(file), "%s/inc.ckpt", dir);
	snprintf(err, sizeof(err), "%s/boot.err", dir);
	snprintf(err2, sizeof(err2), "%s/restore.err", dir);
	unlink(ctl);
	pid = spawn(boot, err);
	usleep(WARM_MS * 1000);
	full = checkpoint(ctl, "full.ckpt", NULL);
	usleep(GAP_MS * 1000);
	inc = checkpoint(ctl, "inc.ckpt", "full.ckpt");
	kill(pid, SIGKILL);
	reap(pid);
	if (jnum(full, "bytes") < 0 || jnum(inc, "bytes") < 0) {
		fg->bad++;
		goto out;
	}
	add(&fg->pause, jnum(full, "downtime_ms"));
	add(&fg->park, jnum(full, "pause_ms"));
	add(&fg->total, jnum(full, "total_ms"));
	add(&fg->mib, jnum(full, "bytes") / 1048576.0);
	b = disk_ms((uint64_t)jnum(full, "bytes"), true);
	add(&fg->base_ms, b);
	add(&fg->ratio, jnum(full, "total_ms") / b);
	add(&fg->ipause, jnum(inc, "downtime_ms"));
	add(&fg->ipark, jnum(inc, "pause_ms"));
	add(&fg->itotal, jnum(inc, "total_ms"));
	add(&fg->imib, jnum(inc, "bytes") / 1048576.0);
	/* The restore reads both files. */
	disk_ms((uint64_t)(jnum(full, "bytes") + jnum(inc, "bytes")), true);
	add(&fg->rest_base, disk_ms((uint64_t)(jnum(full, "bytes") + jnum(inc, "bytes")), false));
	pid = spawn(rest, err2);
	if (reap(pid) != 0) {
		fg->bad++;
		fprintf(stderr, "vm_ckpt_perf: the restored guest failed (see %s)\n", err2);
	} else {
		add(&fg->rest, restore_ms(err2));
	}
out:
	json_object_put(full);
	json_object_put(inc);
	unlink(file);
	snprintf(file, sizeof(file), "%s/full.ckpt", dir);
	unlink(file);
	unlink(err);
	unlink(err2);
}

static int partition(struct dl_daemon *d, char *sock)
{
	static const char *const args[] = { "--sim-gpus", "1", "--vram", "1G", NULL };
	char cmd[512], u[64];
	FILE *f;

	if (dl_start(d, &(struct dl_opts){ .name = "vm-ckpt-perf", .args = args }))
		return -1;
	snprintf(cmd, sizeof(cmd), "%s --run-dir %s create --gpu gpu0 --type sim-1g-1", bin,
		 d->run_dir);
	f = popen(cmd, "r");
	if (!f || !fgets(u, sizeof(u), f))
		return -1;
	pclose(f);
	u[strcspn(u, "\n")] = 0;
	snprintf(sock, 160, "%.96s/%.40s.sock", d->run_dir, u);
	return 0;
}

int main(void)
{
	struct figures fg = { .bad = 0 };
	struct dl_daemon d = { 0 };
	char sock[160], app[160];

	bin = getenv("GPUP_BIN");
	guests = getenv("GPUP_GUESTS");
	printf("## VM checkpoints: the pause, the file, the restore\n\n");
	if (!bin || !guests || access("/dev/kvm", R_OK | W_OK)) {
		printf("Not measured: needs /dev/kvm and `make bench` (GPUP_BIN, GPUP_GUESTS).\n");
		return 0;
	}
	snprintf(dir, sizeof(dir), "/var/tmp/vm-ckpt-perf-XXXXXX");
	if (!mkdtemp(dir) || partition(&d, sock) < 0) {
		printf("Not measured: no daemon with a 1 GiB partition here.\n");
		dl_teardown(&d);
		return 1;
	}
	snprintf(app, sizeof(app), "ram=192 vram=1024 rate=100 epoch=2000 ms=%d timeout=30",
		 WARM_MS + GAP_MS + AFTER_MS);
	for (int i = 0; i < RUNS; i++)
		once(&fg, sock, app);
	dl_teardown(&d);
	rmdir(dir);
	printf("The dirty guest (`%s`, 256 MiB of RAM, a 1 GiB sim partition) runs %d s, "
	       "`gpup checkpoint --json` writes it into a file on this host's disk while it "
	       "runs, %d s later an incremental checkpoint follows, the VM is killed and `gpup "
	       "run --restore` loads the chain into the same partition, where the guest must "
	       "finish with every byte and fence verified. The baseline is the full file's "
	       "size written with O_DIRECT in 4 MiB pieces and fsynced into the same directory "
	       "(for the restore: both files' bytes read back with O_DIRECT), in the same run. "
	       "The files hold what the guest had written (holes and zero pages are skipped). "
	       "Median (range) of %d runs; "
	       "%d failed.\n\n", app, WARM_MS / 1000, GAP_MS / 1000, RUNS, fg.bad);
	printf("| | pause ms | of which parking the vCPU | total ms | MiB | baseline write ms | "
	       "total / baseline |\n");
	printf("| --- | --- | --- | --- | --- | --- | --- |\n");
	printf("| full checkpoint |");
	cell(&fg.pause, "%.1f");
	cell(&fg.park, "%.1f");
	cell(&fg.total, "%.0f");
	cell(&fg.mib, "%.0f");
	cell(&fg.base_ms, "%.0f");
	cell(&fg.ratio, "%.2f");
	printf("\n| incremental on it |");
	cell(&fg.ipause, "%.1f");
	cell(&fg.ipark, "%.1f");
	cell(&fg.itotal, "%.0f");
	cell(&fg.imib, "%.0f");
	printf(" | |\n\n");
	printf("| restore of the chain | ms | baseline read ms |\n| --- | --- | --- |\n|  |");
	cell(&fg.rest, "%.0f");
	cell(&fg.rest_base, "%.0f");
	printf("\n");
	return 0;
}
