// SPDX-License-Identifier: MIT
/*
 * `gpup bench SCENARIO.json` without --model: the scenario on real VMs.
 * A daemon with one sim GPU is started for the run (unless one already
 * answers at --run-dir), each tenant gets a partition and, for every policy
 * measured, a fresh VM (`gpup run`) booting the tenant guest with its
 * workload on the command line.  Once every guest has said "tenant: start",
 * the daemon's accounting (`stats`) is sampled every 100 ms for the
 * scenario's duration; the guests run on a little longer, so that none
 * stops inside the window, and print their own counts and latencies.
 * Every child dies with bench (PR_SET_PDEATHSIG), and the partitions, the
 * daemon and the working directory go at the end.  A daemon that was
 * already running gets its GPU's scheduler settings back as they were
 * (bench_ctl.c), also when a stop signal ended the run early.
 */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "gpup/base/base.h"
#include "gpup/bench/bench_int.h"
#include "gpup/ctl/ctl.h"
#include "uapi/gpup_ctl.h"

#define VM_START_TIMEOUT_NS (20 * 1000000000ull)
#define VM_LEAD_NS(n) ((500 + 100ull * (n)) * 1000000ull)  /* boot spread allowance */
#define VM_EXIT_GRACE_NS (15 * 1000000000ull)
#define MS 1000000ull
/* Jobs a saturating or bursty tenant keeps queued: several ms of work, so
 * that its context stays runnable while its vCPU waits for a host CPU. */
#define VM_DEPTH 8

static uint64_t mono(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void nap_ms(unsigned int ms)
{
	struct timespec ts = { .tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000 };

	nanosleep(&ts, NULL);
}

/* Run `gpup ARGS` (this very binary) with its output in out; it dies with
 * us, so a killed or crashed bench leaves no VM or daemon behind. */
static pid_t spawn(const struct bench_vm *v, char *const argv[], const char *out)
{
	pid_t parent = getpid(), pid = fork();

	if (pid)
		return pid;
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	if (getppid() != parent)
		_exit(127);
	int in = open("/dev/null", O_RDONLY), o = open(out, O_WRONLY | O_CREAT | O_TRUNC, 0600);

	if (in < 0 || o < 0 || dup2(in, 0) < 0 || dup2(o, 1) < 0 || dup2(o, 2) < 0)
		_exit(127);
	execv(v->exe, argv);
	_exit(127);
}

/* The first line of a file, for an error message. */
static void first_line(const char *path, char *buf, size_t len)
{
	FILE *f = fopen(path, "r");

	buf[0] = '\0';
	if (f && fgets(buf, (int)len, f))
		buf[strcspn(buf, "\n")] = '\0';
	if (f)
		fclose(f);
}

static bool daemon_answers(const char *run_dir)
{
	char err[256];

	return bench_ctl(run_dir, gpup_ctl_request(GPUP_CTL_M_GPUS), NULL, err,
			 sizeof(err)) == 0;
}

static int start_daemon(struct bench_vm *v, char *err, size_t errlen)
{
	char state[PATH_MAX + 8], log[PATH_MAX + 16];
	char *argv[] = { "gpup", "--run-dir", v->run_dir, "daemon", "--foreground",
			 "--state-dir", state, "--sim-gpus", "1", "--vram", "1G", NULL };

	snprintf(v->run_dir, sizeof(v->run_dir), "%.4000s/run", v->dir);
	snprintf(state, sizeof(state), "%.4000s/state", v->dir);
	snprintf(log, sizeof(log), "%.4000s/daemon.log", v->dir);
	v->daemon = v->daemon_pid = spawn(v, argv, log);
	if (v->daemon < 0) {
		int e = errno;

		snprintf(err, errlen, "cannot start the daemon: %s", strerror(e));
		v->daemon = v->daemon_pid = 0;
		return -e;
	}
	for (int i = 0; i < 500; i++) {
		if (daemon_answers(v->run_dir))
			return 0;
		if (waitpid(v->daemon, NULL, WNOHANG) == v->daemon)
			break;
		nap_ms(10);
	}
	first_line(log, state, sizeof(state));
	snprintf(err, errlen, "the daemon did not come up: %s", state[0] ? state : "no message");
	return -EIO;
}

/* A daemon already serving run_dir is used as it is (its first GPU must
 * be the scenario's); otherwise we start one of our own. */
static int find_daemon(struct bench_vm *v, const char *run_dir, char *err, size_t errlen)
{
	char path[PATH_MAX + 16];
	FILE *f;
	int pid = 0;

	if (!daemon_answers(run_dir))
		return start_daemon(v, err, errlen);
	snprintf(v->run_dir, sizeof(v->run_dir), "%s", run_dir);
	snprintf(path, sizeof(path), "%s/gpup.pid", run_dir);
	if ((f = fopen(path, "r"))) {
		if (fscanf(f, "%d", &pid) != 1)
			pid = 0;
		fclose(f);
	}
	v->daemon_pid = pid;
	return bench_ctl_gpu_get(v->run_dir, v->sc->gpus[0].name, &v->orig, err, errlen);
}

/* The tenant guest: --guest, else $GPUP_GUESTS, else beside this binary
 * (build/guests next to build/gpup, or next to build/asan/gpup; installed,
 * PREFIX/lib/gpup/guests for PREFIX/bin/gpup). */
static int find_guest(struct bench_vm *v, const char *guest, char *err, size_t errlen)
{
	const char *env = getenv("GPUP_GUESTS");
	char dir[PATH_MAX];
	char *slash;

	if (guest || env) {
		snprintf(v->guest, sizeof(v->guest), guest ? "%s" : "%s/tenant.elf",
			 guest ? guest : env);
		if (access(v->guest, R_OK) == 0)
			return 0;
	} else {
		snprintf(dir, sizeof(dir), "%s", v->exe);
		slash = strrchr(dir, '/');
		*(slash ? slash : dir) = '\0';
		snprintf(v->guest, sizeof(v->guest), "%.4000s/guests/tenant.elf", dir);
		if (access(v->guest, R_OK) == 0)
			return 0;
		snprintf(v->guest, sizeof(v->guest), "%.4000s/../guests/tenant.elf", dir);
		if (access(v->guest, R_OK) == 0)
			return 0;
		snprintf(v->guest, sizeof(v->guest), "%.4000s/../lib/gpup/guests/tenant.elf", dir);
		if (access(v->guest, R_OK) == 0)
			return 0;
	}
	snprintf(err, errlen, "cannot find the tenant guest %s; build it with 'make guests' or "
		 "name it with --guest", guest ? guest : "tenant.elf");
	return -ENOENT;
}

int bench_vm_usable(const struct bench_scenario *sc, char *err, size_t errlen)
{
	if (access("/dev/kvm", R_OK | W_OK) != 0) {
		snprintf(err, errlen, "vm mode needs /dev/kvm (%s); use --model to simulate "
			 "the engines instead", strerror(errno));
		return -ENODEV;
	}
	if (sc->ntenants > BENCH_VM_MAX_TENANTS) {
		snprintf(err, errlen, "vm mode runs at most %u tenants (one VM each); this "
			 "scenario has %u: use --model", BENCH_VM_MAX_TENANTS, sc->ntenants);
		return -ENOTSUP;
	}
	for (unsigned int i = 0; i < sc->ntenants; i++) {
		if (sc->tenants[i].gpu || sc->tenants[i].engine) {
			snprintf(err, errlen, "tenant %s: vm mode runs every tenant on the compute "
				 "engine of the scenario's first GPU", sc->tenants[i].name);
			return -ENOTSUP;
		}
	}
	return 0;
}

static int setup(struct bench_vm *v, const char *run_dir, const char *guest, char *err,
		 size_t errlen)
{
	const char *tmp = getenv("TMPDIR");
	ssize_t n = readlink("/proc/self/exe", v->exe, sizeof(v->exe) - 1);
	int rc;

	if (n <= 0) {
		snprintf(err, errlen, "cannot find the gpup binary: %s", strerror(errno));
		return -errno;
	}
	v->exe[n] = '\0';
	if ((rc = find_guest(v, guest, err, errlen)))
		return rc;
	snprintf(v->dir, sizeof(v->dir), "%s/gpup-bench-XXXXXX", tmp && *tmp ? tmp : "/tmp");
	if (!mkdtemp(v->dir)) {
		snprintf(err, errlen, "cannot make a working directory in %s: %s",
			 tmp && *tmp ? tmp : "/tmp", strerror(errno));
		v->dir[0] = '\0';
		return -errno;
	}
	return find_daemon(v, run_dir, err, errlen);
}

int bench_vm_open(struct bench_vm *v, const char *run_dir, const char *guest,
		  const struct bench_scenario *sc, uint64_t duration_ns, char *err,
		  size_t errlen)
{
	int rc;

	memset(v, 0, sizeof(*v));
	if ((rc = bench_vm_usable(sc, err, errlen)))
		return rc;
	v->sc = sc;
	v->n = sc->ntenants;
	v->duration_ns = duration_ns;
	v->max_win = (unsigned int)(duration_ns / BENCH_WINDOW_NS) + 2;
	v->t = calloc(v->n, sizeof(*v->t));
	v->win = calloc(v->max_win, sizeof(*v->win));
	rc = v->t && v->win ? setup(v, run_dir, guest, err, errlen) : -ENOMEM;
	if (!rc)
		rc = bench_ctl_pick_type(v->run_dir, sc->gpus[0].name, v->n, v->type,
					 sizeof(v->type), err, errlen);
	for (unsigned int i = 0; !rc && i < v->n; i++) {
		v->t[i].spec = &sc->tenants[i];
		snprintf(v->t[i].serial, sizeof(v->t[i].serial), "%.4000s/tenant-%u.txt", v->dir, i);
		rc = bench_ctl_create(v->run_dir, sc->gpus[0].name, v->type, v->t[i].uuid,
				      v->t[i].sock, err, errlen);
	}
	if (rc == -ENOMEM)
		snprintf(err, errlen, "out of memory");
	if (rc)
		bench_vm_close(v);
	return rc;
}

/* ---- one run ---- */

static int dist_arg(char *buf, size_t len, const struct bench_dist *d)
{
	unsigned long long a = d->a >= 1 ? (unsigned long long)d->a : 1;
	unsigned long long b = d->b >= a ? (unsigned long long)d->b : a;

	if (d->kind == BENCH_DIST_UNIFORM)
		return snprintf(buf, len, "1,%llu,%llu", a, b);
	return snprintf(buf, len, "%d,%llu", d->kind == BENCH_DIST_EXP ? 2 : 0, a);
}

/* The tenant guest's command line (samples/tenant.c). */
static void guest_args(const struct bench_tenant_spec *s, uint64_t seed, uint64_t run_ns,
		       char *buf, size_t len)
{
	const struct bench_workload *wl = &s->wl;
	char d[4][64];

	dist_arg(d[0], 64, &wl->job);
	dist_arg(d[1], 64, &wl->on);
	dist_arg(d[2], 64, &wl->off);
	dist_arg(d[3], 64, &wl->think);
	snprintf(buf, len, "wl=%d job=%s ms=%llu seed=%llu depth=%d", (int)wl->kind, d[0],
		 (unsigned long long)(run_ns / MS), (unsigned long long)seed, VM_DEPTH);
	if (wl->kind == BENCH_WL_BURSTY)
		snprintf(buf + strlen(buf), len - strlen(buf), " on=%s off=%s", d[1], d[2]);
	if (wl->kind == BENCH_WL_CLOSED_LOOP)
		snprintf(buf + strlen(buf), len - strlen(buf), " think=%s", d[3]);
	if (wl->kind == BENCH_WL_FRAMES)
		snprintf(buf + strlen(buf), len - strlen(buf), " fps=%llu",
			 (unsigned long long)(wl->fps + 0.5));
}

static int boot(struct bench_vm *v, unsigned int i, uint64_t seed, uint64_t run_ns,
		char *err, size_t errlen)
{
	struct bench_vm_tenant *t = &v->t[i];
	char args[512], out[PATH_MAX + 8];
	char *argv[] = { "gpup", "--run-dir", v->run_dir, "run", "--kernel", v->guest,
			 "--gpu", t->uuid, "--serial", t->serial, "--append", args, NULL };

	guest_args(t->spec, seed * 0x9e3779b97f4a7c15ull + i + 1, run_ns, args, sizeof(args));
	snprintf(out, sizeof(out), "%s.err", t->serial);
	unlink(t->serial);
	t->started = 0;
	t->pid = spawn(v, argv, out);
	if (t->pid < 0) {
		snprintf(err, errlen, "cannot start a VM: %s", strerror(errno));
		t->pid = 0;
		return -errno;
	}
	return 0;
}

static bool said_start(const char *serial)
{
	char buf[4096];
	FILE *f = fopen(serial, "r");
	size_t n = f ? fread(buf, 1, sizeof(buf) - 1, f) : 0;

	if (f)
		fclose(f);
	buf[n] = '\0';
	return strstr(buf, "tenant: start") != NULL;
}

/* A VM that ended early: why, from its VMM's or its guest's output. */
static int vm_failed(struct bench_vm_tenant *t, int st, char *err, size_t errlen)
{
	char line[256], path[PATH_MAX + 8];

	snprintf(path, sizeof(path), "%s.err", t->serial);
	first_line(path, line, sizeof(line));
	if (!line[0])
		first_line(t->serial, line, sizeof(line));
	snprintf(err, errlen, "tenant %s's VM exited with status %d: %s", t->spec->name,
		 WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st), line[0] ? line : "no output");
	t->pid = 0;
	return -EIO;
}

static int wait_started(struct bench_vm *v, char *err, size_t errlen)
{
	uint64_t t0 = mono();
	unsigned int left = v->n;
	int st;

	while (left && !bench_stop_signal()) {
		for (unsigned int i = 0; i < v->n; i++) {
			struct bench_vm_tenant *t = &v->t[i];

			if (t->started)
				continue;
			if (said_start(t->serial)) {
				t->started = mono();
				left--;
			} else if (waitpid(t->pid, &st, WNOHANG) == t->pid) {
				return vm_failed(t, st, err, errlen);
			}
		}
		if (left && mono() - t0 > VM_START_TIMEOUT_NS) {
			snprintf(err, errlen, "%u VM(s) did not start their workload within %llu s",
				 left, VM_START_TIMEOUT_NS / 1000000000ull);
			return -ETIMEDOUT;
		}
		nap_ms(2);
	}
	return 0;
}

/* On a terminal: the engine time each tenant has had since sampling began. */
static void progress(const struct bench_vm *v, const struct bench_vm_snap *cur)
{
	double work[BENCH_VM_MAX_TENANTS];

	for (unsigned int i = 0; i < v->n; i++)
		work[i] = (double)(cur->ctx[i].engine_ns - v->first.ctx[i].engine_ns);
	bench_progress(v->sc, v->label, (cur->at - v->first.at) / 1e9, v->duration_ns / 1e9,
		       work);
}

/* Sample the daemon's accounting every window from the moment all have
 * started until the end of the run, or until the first guest's own
 * duration is nearly over, whichever is first. */
static int sample(struct bench_vm *v, uint64_t run_ns, char *err, size_t errlen)
{
	uint64_t first = UINT64_MAX, end;
	struct bench_vm_snap prev, cur;
	int rc;

	for (unsigned int i = 0; i < v->n; i++)
		first = v->t[i].started < first ? v->t[i].started : first;
	if ((rc = bench_vm_snapshot(v, &v->first, err, errlen)))
		return rc;
	end = v->first.at + v->duration_ns;
	if (end > first + run_ns - 50 * MS)
		end = first + run_ns - 50 * MS;
	prev = v->first;
	for (v->nwin = 0; v->nwin < v->max_win && prev.at < end && !bench_stop_signal();
	     v->nwin++) {
		uint64_t next = prev.at + BENCH_WINDOW_NS < end ? prev.at + BENCH_WINDOW_NS : end;
		uint64_t now = mono();

		if (next > now)
			nap_ms((unsigned int)((next - now + MS - 1) / MS));
		if ((rc = bench_vm_snapshot(v, &cur, err, errlen)))
			return rc;
		for (unsigned int i = 0; i < v->n; i++)
			v->win[v->nwin][i] = cur.ctx[i].engine_ns - prev.ctx[i].engine_ns;
		progress(v, &cur);
		prev = cur;
	}
	bench_progress_end();
	v->last = prev;
	return 0;
}

/* Wait for every VM to finish its run; each must exit 0 with a result. */
static int reap(struct bench_vm *v, uint64_t deadline, char *err, size_t errlen)
{
	int rc = 0, st;

	for (unsigned int i = 0; i < v->n; i++) {
		struct bench_vm_tenant *t = &v->t[i];

		st = 0;
		while (t->pid && waitpid(t->pid, &st, WNOHANG) == 0) {
			if (mono() > deadline || bench_stop_signal()) {
				kill(t->pid, SIGKILL);
				waitpid(t->pid, &st, 0);
				break;
			}
			nap_ms(5);
		}
		if (t->pid && !rc && !(WIFEXITED(st) && WEXITSTATUS(st) == 0))
			rc = vm_failed(t, st, err, errlen);
		t->pid = 0;
		if (!rc)
			rc = bench_vm_guest_result(t->serial, &t->res, err, errlen);
	}
	return rc;
}

static void kill_vms(struct bench_vm *v)
{
	for (unsigned int i = 0; i < v->n; i++) {
		if (v->t[i].pid) {
			kill(v->t[i].pid, SIGKILL);
			waitpid(v->t[i].pid, NULL, 0);
			v->t[i].pid = 0;
		}
	}
}

int bench_vm_run(struct bench_vm *v, enum sched_policy p, uint64_t seed,
		 struct bench_run *run, char *err, size_t errlen)
{
	uint64_t run_ns = v->duration_ns + VM_LEAD_NS(v->n);
	int rc = bench_ctl_policy(v->run_dir, v->sc->gpus[0].name, p, v->sc->slice_ns, err,
				  errlen);

	for (unsigned int i = 0; !rc && i < v->n; i++)
		rc = bench_ctl_tenant(v->run_dir, v->t[i].uuid, v->t[i].spec, err, errlen);
	bench_progress_note(v->label, "booting the VMs");
	for (unsigned int i = 0; !rc && i < v->n; i++)
		rc = boot(v, i, seed, run_ns, err, errlen);
	if (!rc)
		rc = wait_started(v, err, errlen);
	if (rc)
		bench_progress_end();
	if (!rc)
		rc = sample(v, run_ns, err, errlen);
	if (!rc)
		rc = reap(v, mono() + run_ns + VM_EXIT_GRACE_NS, err, errlen);
	kill_vms(v);
	if (bench_stop_signal()) {
		snprintf(err, errlen, "stopped by signal %d", bench_stop_signal());
		return -EINTR;
	}
	if (!rc)
		rc = bench_vm_measure(v, p, run);
	if (rc || v->runs > BENCH_MAX_BASELINES)
		return rc;
	for (unsigned int i = 0; i < v->n; i++)
		v->results[v->runs][i] = v->t[i].res;
	v->measured_s[v->runs++] = (v->last.at - v->first.at) / 1e9;
	return rc;
}

/* ---- the end ---- */

static int remove_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	remove(path);
	return 0;
}

static void stop_daemon(struct bench_vm *v)
{
	kill(v->daemon, SIGTERM);
	for (int i = 0; i < 500 && waitpid(v->daemon, NULL, WNOHANG) == 0; i++)
		nap_ms(10);
	if (kill(v->daemon, 0) == 0) {
		kill(v->daemon, SIGKILL);
		waitpid(v->daemon, NULL, 0);
	}
	v->daemon = 0;
}

void bench_vm_close(struct bench_vm *v)
{
	char err[256];

	if (v->t)
		kill_vms(v);
	for (unsigned int i = 0; v->t && !v->daemon && i < v->n; i++)
		if (v->t[i].uuid[0])
			bench_ctl_destroy(v->run_dir, v->t[i].uuid);
	if (!v->daemon && bench_ctl_gpu_put(v->run_dir, &v->orig, err, sizeof(err)))
		gpup_err("bench", "could not put %s's scheduler settings back (%s, slice %.2f ms): "
			 "%s", v->orig.gpu, sched_policy_name(v->orig.policy),
			 v->orig.slice_ns / 1e6, err);
	v->orig.have = false;
	if (v->daemon)
		stop_daemon(v);
	if (v->dir[0])
		nftw(v->dir, remove_one, 16, FTW_DEPTH | FTW_PHYS);
	free(v->t);
	free(v->win);
	v->t = NULL;
	v->win = NULL;
}
