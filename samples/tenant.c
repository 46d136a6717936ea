// SPDX-License-Identifier: MIT
/*
 * tenant: one tenant of a `gpup bench` scenario, run inside a VM.  It
 * submits SPIN kernels (engine time the device accounts exactly) with the
 * workload's timing for a while, measures from each job's submission to
 * its completion with its own clock (the TSC, rt_ns), then prints one
 * result line and exits 0:
 *
 *   tenant: start
 *   tenant: result jobs=N frames=F missed=M engine_ns=E lat_n=K
 *           lat_p50_ns=A lat_p99_ns=B lat_max_ns=C run_ns=R   (one line)
 *
 * Command line (times in ns; a distribution is KIND,A,B with KIND 0 fixed
 * A, 1 uniform [A,B], 2 exponential of mean A):
 *   wl=0..3   saturating, bursty, closed-loop, frames
 *   job=D     kernel or frame length;  on=D off=D (bursty);  think=D
 *   fps=N     frames per second;  ms=N  how long to run;  seed=N
 *   depth=N   jobs a saturating tenant keeps queued (default 2; an odd
 *             one above 1 rounds down), submitted half a depth at a time
 *             with one interrupt per batch, so that the vCPU wakes once
 *             per batch (its jobs are timed to the wake-up that sees them)
 * A frame's deadline is the next frame's release; a frame done later is
 * missed.  Exits non-zero on a bad command line or a device error.
 */
#include "vgpu_drv.h"

#define Q 0
#define MAX_LAT 32768
#define MAX_DEPTH 16
#define JOB_TIMEOUT_NS 10000000000ull
#define TICK_NS 50000000ull   /* a look at the queue when no fence came */

enum { WL_SATURATING, WL_BURSTY, WL_CLOSED_LOOP, WL_FRAMES };

struct dist {
	uint64_t kind, a, b;
};

struct tenant {
	uint64_t wl, fps, run_ns, rng, depth;
	struct dist job, on, off, think;
	uint64_t end;
	/* jobs in flight: submission (or release) time, ring by sequence */
	uint64_t t_submit[MAX_DEPTH], deadline[MAX_DEPTH];
	uint64_t submitted, completed;
	uint64_t jobs, frames, missed, engine_ns;
};

static struct vg_dev dev;
static struct tenant T;
static volatile uint64_t done_seq __attribute__((aligned(64)));
static uint64_t lat[MAX_LAT];
static unsigned int nlat;

/* ---- command line and random numbers ---- */

static const char *find_key(const char *s, const char *key)
{
	size_t n = strlen(key);

	for (const char *p = s; *p; p++)
		if ((p == s || p[-1] == ' ') && !strncmp(p, key, n) && p[n] == '=')
			return p + n + 1;
	return NULL;
}

/* Up to max comma-separated numbers after key=; how many were read. */
static unsigned int arg_list(const char *s, const char *key, uint64_t *v, unsigned int max)
{
	const char *p = find_key(s, key);
	unsigned int n = 0;

	while (p && n < max && *p >= '0' && *p <= '9') {
		v[n] = 0;
		for (; *p >= '0' && *p <= '9'; p++)
			v[n] = v[n] * 10 + (uint64_t)(*p - '0');
		n++;
		if (*p++ != ',')
			break;
	}
	return n;
}

static bool arg_dist(const char *s, const char *key, struct dist *d)
{
	uint64_t v[3] = { 0, 0, 0 };
	unsigned int n = arg_list(s, key, v, 3);

	d->kind = v[0];
	d->a = v[1];
	d->b = v[2];
	return n >= 2 && v[0] <= 2 && v[1] > 0 && (v[0] != 1 || (n == 3 && v[2] >= v[1]));
}

static uint64_t splitmix(uint64_t *s)
{
	uint64_t z = (*s += 0x9e3779b97f4a7c15ull);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

/* -ln(r / 2^64) * mean without floating point: log2 from the leading bit
 * and 16 squarings of the mantissa (Q31), times ln 2 (45426 / 2^16). */
static uint64_t exp_draw(uint64_t r, uint64_t mean)
{
	int msb = 63 - __builtin_clzll(r | 1);
	uint64_t m = (r | 1) << (63 - msb) >> 32, frac = 0, nl2;

	for (int i = 0; i < 16; i++) {
		m = (m * m) >> 31;
		frac <<= 1;
		if (m >= (1ull << 32)) {
			m >>= 1;
			frac |= 1;
		}
	}
	nl2 = ((uint64_t)(64 - msb) << 16) - frac;
	return (uint64_t)((unsigned __int128)mean * nl2 * 45426 >> 32);
}

static uint64_t draw(const struct dist *d)
{
	uint64_t r = splitmix(&T.rng), v = d->a;

	if (d->kind == 1)
		v = d->a + r % (d->b - d->a + 1);
	else if (d->kind == 2)
		v = exp_draw(r, d->a);
	return v ? v : 1;
}

/* ---- time ---- */

/* Halt until deadline (rt_ns) or until the fence passes seq, whichever
 * comes first, with the LAPIC timer as the alarm clock. */
static void sleep_until(uint64_t deadline, uint64_t seq)
{
	for (;;) {
		/* counted before the checks: an interrupt after them ends the halt */
		uint64_t n = rt_irq_count, now = rt_ns();

		if (now >= deadline || done_seq >= seq)
			return;
		rt_apic_timer_arm(deadline - now);
		rt_halt_unless(&rt_irq_count, n + 1);
	}
}

/* ---- jobs ---- */

/* n jobs in one submission, each followed by a fence with its number;
 * only the last fence interrupts (a wake-up per batch, not per job). */
static int submit(unsigned int n, uint64_t release, uint64_t deadline)
{
	union gpup_cmd c[2 * MAX_DEPTH];

	for (unsigned int i = 0; i < n; i++) {
		uint64_t seq = ++T.submitted, ns = draw(&T.job);

		c[2 * i] = gpup_cmd_kernel(GPUP_KERNEL_SPIN, (uint64_t[1]){ ns }, 1);
		c[2 * i + 1] = gpup_cmd_fence(GPUP_SPACE_IOVA, vg_iova(&done_seq), seq, i == n - 1 ? GPUP_FENCE_IRQ : 0);
		T.t_submit[seq % MAX_DEPTH] = release;
		T.deadline[seq % MAX_DEPTH] = deadline;
		T.engine_ns += ns;
	}
	return vg_submit(&dev, Q, c, 2 * n);
}

/* Account every job the fence says is done. */
static void reap(void)
{
	uint64_t now = rt_ns();

	while (T.completed < done_seq) {
		uint64_t seq = ++T.completed, d = T.deadline[seq % MAX_DEPTH];

		if (nlat < MAX_LAT)
			lat[nlat++] = now - T.t_submit[seq % MAX_DEPTH];
		T.jobs++;
		if (d) {
			T.frames++;
			T.missed += now > d;
		}
	}
}

/* Wait until at most `left` jobs are in flight. */
static int drain_to(uint64_t left)
{
	uint64_t t0 = rt_ns();

	while (T.submitted - done_seq > left) {
		uint32_t st;

		sleep_until(rt_ns() + TICK_NS, T.submitted - left);
		if (T.submitted - done_seq <= left)
			break;
		st = vg_read(&dev, GPUP_REG_QUEUE(Q) + GPUP_Q_STATUS);
		if (st == 0xffffffffu || (st & GPUP_QSTS_FAULTED) || rt_ns() - t0 > JOB_TIMEOUT_NS)
			return st == 0xffffffffu ? VG_ERR_LOST : VG_ERR_FAULT;
	}
	reap();
	return 0;
}

/* ---- workloads ---- */

static int run_jobs(void)
{
	bool loop = T.wl == WL_CLOSED_LOOP, on = true;
	unsigned int half = T.depth > 1 ? (unsigned int)T.depth / 2 : 1;
	uint64_t keep = T.depth > 1 ? half : 0;
	uint64_t flip = T.wl == WL_BURSTY ? rt_ns() + draw(&T.on) : ~0ull;
	int rc = 0;

	while (!rc && rt_ns() < T.end) {
		if (rt_ns() >= flip) {
			if (on && (rc = drain_to(0)))
				break;
			on = !on;
			flip = rt_ns() + draw(on ? &T.on : &T.off);
		}
		if (!on) {
			sleep_until(flip < T.end ? flip : T.end, ~0ull);
			continue;
		}
		/* half the depth at a time: the wait below ends at the
		 * previous batch's last fence, the one that interrupts */
		rc = submit(loop ? 1 : half, rt_ns(), 0);
		if (!rc)
			rc = drain_to(loop ? 0 : keep);
		if (!rc && loop)
			sleep_until(rt_ns() + draw(&T.think), ~0ull);
	}
	return rc ? rc : drain_to(0);
}

static int run_frames(void)
{
	uint64_t period = 1000000000ull / T.fps;
	uint64_t next = rt_ns() + splitmix(&T.rng) % period;
	int rc = 0;

	while (!rc && next < T.end) {
		while (rt_ns() < next) {
			/* wake for each completion, so that it is timed when it lands */
			sleep_until(next, T.submitted > T.completed ? T.completed + 1 : ~0ull);
			reap();
		}
		if (T.submitted - T.completed >= MAX_DEPTH - 1)
			rc = drain_to(MAX_DEPTH - 2);
		if (!rc)
			rc = submit(1, next, next + period);
		next += period;
	}
	return rc ? rc : drain_to(0);
}

/* ---- results ---- */

static void sort(uint64_t *v, unsigned int n)
{
	for (unsigned int gap = n / 2; gap > 0; gap /= 2)
		for (unsigned int i = gap; i < n; i++)
			for (unsigned int j = i; j >= gap && v[j - gap] > v[j]; j -= gap) {
				uint64_t t = v[j];

				v[j] = v[j - gap];
				v[j - gap] = t;
			}
}

static void report(uint64_t ran)
{
	uint64_t p50 = 0, p99 = 0, max = 0;

	if (nlat) {
		sort(lat, nlat);
		p50 = lat[(nlat + 1) / 2 - 1];
		p99 = lat[(nlat * 99 + 99) / 100 - 1];
		max = lat[nlat - 1];
	}
	rt_printf("tenant: result jobs=%lu frames=%lu missed=%lu engine_ns=%lu lat_n=%u "
		  "lat_p50_ns=%lu lat_p99_ns=%lu lat_max_ns=%lu run_ns=%lu\n", T.jobs,
		  T.frames, T.missed, T.engine_ns, nlat, p50, p99, max, ran);
}

static bool parse(const char *cmdline)
{
	T.wl = rt_arg_u64(cmdline, "wl", 99);
	T.fps = rt_arg_u64(cmdline, "fps", 60);
	T.run_ns = rt_arg_u64(cmdline, "ms", 1000) * 1000000ull;
	T.rng = rt_arg_u64(cmdline, "seed", 1);
	T.depth = rt_arg_u64(cmdline, "depth", 2);
	if (T.wl > WL_FRAMES || !arg_dist(cmdline, "job", &T.job) || !T.run_ns ||
	    !T.fps || T.fps > 10000 || !T.depth || T.depth >= MAX_DEPTH)
		return false;
	if (T.wl == WL_BURSTY)
		return arg_dist(cmdline, "on", &T.on) && arg_dist(cmdline, "off", &T.off);
	if (T.wl == WL_CLOSED_LOOP)
		return arg_dist(cmdline, "think", &T.think);
	return true;
}

int main(const char *cmdline)
{
	uint64_t t0;
	int rc;

	if (!parse(cmdline)) {
		rt_printf("tenant: want wl=0..3 job=KIND,A[,B] (on=, off= for bursty, think= "
			  "for closed-loop), ms>0, fps in 1..10000, depth in 1..%u\n",
			  MAX_DEPTH - 1);
		return 3;
	}
	if (!rt_tsc_khz()) {
		rt_printf("tenant: the TSC rate is unknown; cannot time\n");
		return 3;
	}
	rt_irq_init();
	if (vg_open(&dev, 0) || vg_queue_init(&dev, Q, GPUP_ENGINE_COMPUTE)) {
		rt_printf("tenant: no usable vGPU\n");
		return 2;
	}
	rt_printf("tenant: start\n");
	t0 = rt_ns();
	T.end = t0 + T.run_ns;
	rc = T.wl == WL_FRAMES ? run_frames() : run_jobs();
	if (rc) {
		rt_printf("tenant: device error %d after %lu jobs\n", rc, T.jobs);
		return 5;
	}
	report(rt_ns() - t0);
	return 0;
}
