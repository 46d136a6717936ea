// SPDX-License-Identifier: MIT
/*
 * gpup-hostile: a Linux process that attacks the gpup driver and checks
 * that each attempt is refused the documented way: bad ioctls and
 * arguments, mmap of offsets it does not own and past its buffers,
 * malformed and garbage packets, buffer addresses past its buffers or in
 * no buffer, GPUP_IOC_EXEC's batch tables (a refused one queues nothing),
 * a stream that waits forever, an unprivileged reset; then
 * that a second process sees none of its VRAM (neither by mmap, nor by
 * naming it in packets, nor in scrubbed VRAM handed out again), and that
 * the device still computes after all of it and after a reset.
 * Prints one line per check; exits with the number of failed checks.
 *
 * Arguments: watchdog=1 when the daemon's watchdog is on for this GPU
 * (gpup sched --watchdog): then the stalled stream must come back as a
 * WATCHDOG fault record and -EIO, and the device must recover.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "gpup.h"

#define TIMEOUT_NS 5000000000ull

static struct gpup_dev dev;
static struct gpup_buf vram, sys;
static int q;
static unsigned int failures;

static void report(const char *what, bool ok, long got)
{
	printf("hostile: %-44s %s (%ld)\n", what, ok ? "ok" : "FAILED", got);
	if (!ok)
		failures++;
}

static int raw_ioctl(int fd, unsigned long cmd, void *arg)
{
	return ioctl(fd, cmd, arg) < 0 ? -errno : 0;
}

static void ioctl_attacks(void)
{
	struct gpup_ioc_alloc a = { .size = 4096, .domain = GPUP_DOMAIN_VRAM };
	struct gpup_ioc_free f = { .handle = 12345 };
	struct gpup_ioc_queue qa = { .engine = 99 };
	int rc;

	rc = raw_ioctl(dev.fd, _IO('G', 0x7f), NULL);
	report("unknown ioctl", rc == -ENOTTY, rc);
	rc = raw_ioctl(dev.fd, GPUP_IOC_INFO, (void *)16);
	report("INFO into a bad pointer", rc == -EFAULT, rc);
	a.flags = 1;
	rc = raw_ioctl(dev.fd, GPUP_IOC_ALLOC, &a);
	report("ALLOC with unknown flags", rc == -EINVAL, rc);
	a = (struct gpup_ioc_alloc){ .size = 4096, .domain = 7 };
	rc = raw_ioctl(dev.fd, GPUP_IOC_ALLOC, &a);
	report("ALLOC in no known domain", rc == -EINVAL, rc);
	a = (struct gpup_ioc_alloc){ .size = 0 };
	rc = raw_ioctl(dev.fd, GPUP_IOC_ALLOC, &a);
	report("ALLOC of 0 bytes", rc == -EINVAL, rc);
	a = (struct gpup_ioc_alloc){ .size = dev.info.vram_size + 4096 };
	rc = raw_ioctl(dev.fd, GPUP_IOC_ALLOC, &a);
	report("ALLOC past the partition", rc == -EINVAL, rc);
	rc = raw_ioctl(dev.fd, GPUP_IOC_FREE, &f);
	report("FREE of a handle it never had", rc == -ENOENT, rc);
	rc = raw_ioctl(dev.fd, GPUP_IOC_QUEUE, &qa);
	report("QUEUE on no such engine", rc == -EINVAL, rc);
}

static void mmap_attacks(void)
{
	struct gpup_ioc_alloc a = { .size = 4096, .domain = GPUP_DOMAIN_VRAM };
	void *p;
	int rc = raw_ioctl(dev.fd, GPUP_IOC_ALLOC, &a);

	report("ALLOC of one page", rc == 0, rc);
	p = mmap(NULL, 8192, PROT_READ | PROT_WRITE, MAP_SHARED, dev.fd, (off_t)a.mmap_offset);
	report("mmap past its allocation", p == MAP_FAILED && errno == EINVAL, errno);
	p = mmap(NULL, 4096, PROT_READ, MAP_SHARED, dev.fd, (off_t)a.mmap_offset + 4096);
	report("mmap of the page after it", p == MAP_FAILED && errno == EINVAL, errno);
	p = mmap(NULL, 4096, PROT_READ, MAP_SHARED, dev.fd, 0x7fff0000000ll);
	report("mmap of an offset nobody has", p == MAP_FAILED && errno == EINVAL, errno);
	p = mmap(NULL, 4096, PROT_READ, MAP_SHARED, dev.fd, (off_t)a.mmap_offset);
	struct gpup_ioc_free f = { .handle = a.handle };

	rc = raw_ioctl(dev.fd, GPUP_IOC_FREE, &f);
	/* Freed while mapped: the mapping keeps the page; nobody else gets it. */
	report("FREE while mapped, page still readable", rc == 0 && p != MAP_FAILED &&
	       ((volatile uint32_t *)p)[0] == 0, rc);
	if (p != MAP_FAILED)
		munmap(p, 4096);
}

static int submit1(union gpup_cmd c)
{
	return gpup_submit(&dev, (uint32_t)q, &c, 1, NULL);
}

static void submit_attacks(void)
{
	struct gpup_ioc_submit s = { .queue = (uint32_t)q, .count = 0 };
	union gpup_cmd many[GPUP_MAX_SUBMIT + 1];
	int rc;

	rc = raw_ioctl(dev.fd, GPUP_IOC_SUBMIT, &s);
	report("SUBMIT of 0 packets", rc == -EINVAL, rc);
	memset(many, 0, sizeof(many));
	rc = gpup_submit(&dev, (uint32_t)q, many, GPUP_MAX_SUBMIT + 1, NULL);
	report("SUBMIT of too many packets", rc == -EINVAL, rc);
	s = (struct gpup_ioc_submit){ .queue = (uint32_t)q, .count = 4, .packets = 8 };
	rc = raw_ioctl(dev.fd, GPUP_IOC_SUBMIT, &s);
	report("SUBMIT from a bad pointer", rc == -EFAULT, rc);
	rc = gpup_submit(&dev, 3, many, 1, NULL);
	report("SUBMIT to a queue it did not create", rc == -EINVAL, rc);
	rc = gpup_wait(&dev, (uint32_t)q, 1ull << 40, 1000);
	report("WAIT for a fence never submitted", rc == -EINVAL, rc);
}

static void packet_attacks(void)
{
	uint64_t v = gpup_addr(&vram, 0), s = gpup_addr(&sys, 0), big = 1ull << 40;
	uint64_t gemm[6] = { big, big, 4, v, v, v }, rend[5] = { 64, 64, 16, v, 0 };
	uint64_t bad[3] = { 0, 0, 0 };
	union gpup_cmd c;
	int rc;

	memset(&c, 0, sizeof(c));
	c.hdr.opcode = 0x77;
	report("unknown opcode", submit1(c) == -EINVAL, 0);
	c = gpup_cmd_fill(GPUP_SPACE_VRAM, v, 64, 0);
	c.fill.rsvd[5] = 1;
	report("reserved bytes not zero", submit1(c) == -EINVAL, 0);
	c = gpup_cmd_fill(GPUP_SPACE_VRAM, v, 64, 0);
	c.hdr.flags = 1;
	report("flags on a FILL", submit1(c) == -EINVAL, 0);
	rc = submit1(gpup_cmd_fill(GPUP_SPACE_VRAM, v + vram.size, 64, 0));
	report("FILL past its VRAM buffer", rc == -EINVAL, rc);
	rc = submit1(gpup_cmd_copy(GPUP_SPACE_VRAM, v + vram.size - 32, GPUP_SPACE_IOVA, s, 64));
	report("COPY straddling its buffer's end", rc == -EINVAL, rc);
	rc = submit1(gpup_cmd_fill(GPUP_SPACE_VRAM, GPUP_BO_ADDR(999, 0), 64, 0));
	report("a handle it does not have", rc == -ENOENT, rc);
	rc = submit1(gpup_cmd_fill(GPUP_SPACE_VRAM, 4096, 64, 0));
	report("a raw VRAM offset (handle 0)", rc == -ENOENT, rc);
	rc = submit1(gpup_cmd_fill(GPUP_SPACE_IOVA, v, 64, 0));
	report("VRAM buffer named as system memory", rc == -EINVAL, rc);
	rc = submit1(gpup_cmd_fence(GPUP_SPACE_IOVA, s + 4, 1, 0));
	report("FENCE not 8-byte aligned", rc == -EINVAL, rc);
	rc = submit1(gpup_cmd_copy(GPUP_SPACE_VRAM, v, GPUP_SPACE_VRAM, v + 64, 128));
	report("COPY onto itself", rc == -EINVAL, rc);
	rc = submit1(gpup_cmd_fill(GPUP_SPACE_VRAM, v, 6, 0));
	report("FILL length not a multiple of 4", rc == -EINVAL, rc);
	rc = submit1(gpup_cmd_kernel(99, bad, 3));
	report("unknown kernel", rc == -EINVAL, rc);
	rc = submit1(gpup_cmd_kernel(GPUP_KERNEL_GEMM, gemm, 6));
	report("GEMM sizes that overflow", rc == -EINVAL, rc);
	rc = submit1(gpup_cmd_kernel(GPUP_KERNEL_RENDER, rend, 5));
	report("RENDER stride under its width", rc == -EINVAL, rc);
	bad[0] = GPUP_MAX_SPIN_NS + 1;
	rc = submit1(gpup_cmd_kernel(GPUP_KERNEL_SPIN, bad, 1));
	report("SPIN past the driver's bound", rc == -EINVAL, rc);
}

static int exec_raw(struct gpup_exec_batch *b, uint32_t n, uint32_t flags, uint64_t timeout_ns,
		    uint32_t *submitted)
{
	struct gpup_ioc_exec a = {
		.batches = (uintptr_t)b, .nbatch = n, .flags = flags, .timeout_ns = timeout_ns,
	};
	int rc = raw_ioctl(dev.fd, GPUP_IOC_EXEC, &a);

	if (submitted)
		*submitted = a.submitted;
	return rc;
}

/* The queue's next sequence number, taken by a NOP: what a failed call
 * must not have moved. */
static uint64_t next_seq(void)
{
	union gpup_cmd nop;
	uint64_t seq = 0;

	memset(&nop, 0, sizeof(nop));
	return gpup_submit(&dev, (uint32_t)q, &nop, 1, &seq) ? 0 : seq + 1;
}

/* GPUP_IOC_EXEC's arguments; a refused call must queue nothing. */
static void exec_attacks(void)
{
	static union gpup_cmd many[GPUP_MAX_SUBMIT];
	union gpup_cmd fill = gpup_cmd_fill(GPUP_SPACE_VRAM, gpup_addr(&vram, 0), 64, 1);
	union gpup_cmd bad = gpup_cmd_fill(GPUP_SPACE_VRAM, gpup_addr(&vram, vram.size), 64, 1);
	struct gpup_exec_batch b[GPUP_MAX_EXEC_BATCHES + 1];
	struct gpup_ioc_exec a;
	uint64_t before;
	uint32_t sub = 7;
	int rc;

	for (unsigned int i = 0; i < GPUP_MAX_EXEC_BATCHES + 1; i++)
		b[i] = (struct gpup_exec_batch){ .queue = (uint32_t)q, .count = 1,
						 .packets = (uintptr_t)&fill };
	rc = exec_raw(b, 0, 0, 0, NULL);
	report("EXEC of 0 batches", rc == -EINVAL, rc);
	rc = exec_raw(b, GPUP_MAX_EXEC_BATCHES + 1, 0, 0, NULL);
	report("EXEC of too many batches", rc == -EINVAL, rc);
	rc = exec_raw(b, 1, 0x80, 0, NULL);
	report("EXEC with unknown flags", rc == -EINVAL, rc);
	rc = exec_raw(b, 1, 0, 1000, NULL);
	report("EXEC with a timeout but no chain", rc == -EINVAL, rc);
	a = (struct gpup_ioc_exec){ .batches = (uintptr_t)b, .nbatch = 1, .pad = 1 };
	rc = raw_ioctl(dev.fd, GPUP_IOC_EXEC, &a);
	report("EXEC with padding not zero", rc == -EINVAL, rc);
	a = (struct gpup_ioc_exec){ .batches = (uintptr_t)b, .nbatch = 1, .submitted = 1 };
	rc = raw_ioctl(dev.fd, GPUP_IOC_EXEC, &a);
	report("EXEC with an output not zero", rc == -EINVAL, rc);
	rc = exec_raw((struct gpup_exec_batch *)16, 1, 0, 0, NULL);
	report("EXEC from a bad batch table", rc == -EFAULT, rc);
	b[1].queue = 3;
	rc = exec_raw(b, 2, 0, 0, NULL);
	report("EXEC to a queue it did not create", rc == -EINVAL, rc);
	b[1] = b[0];
	b[1].count = 0;
	rc = exec_raw(b, 2, 0, 0, NULL);
	report("EXEC of a batch of 0 packets", rc == -EINVAL, rc);
	b[1].count = GPUP_MAX_SUBMIT + 1;
	rc = exec_raw(b, 2, 0, 0, NULL);
	report("EXEC of a batch of too many packets", rc == -EINVAL, rc);
	memset(many, 0, sizeof(many));
	b[0] = (struct gpup_exec_batch){ .queue = (uint32_t)q, .count = GPUP_MAX_SUBMIT / 2 + 1,
					 .packets = (uintptr_t)many };
	b[1] = b[0];
	rc = exec_raw(b, 2, 0, 0, NULL);
	report("EXEC of too many packets together", rc == -EINVAL, rc);
	b[0] = (struct gpup_exec_batch){ .queue = (uint32_t)q, .count = 1, .packets = (uintptr_t)&fill };
	b[1] = b[0];
	b[1].seq = 5;
	rc = exec_raw(b, 2, 0, 0, NULL);
	report("EXEC of a batch with seq not zero", rc == -EINVAL, rc);
	before = next_seq();
	b[1] = (struct gpup_exec_batch){ .queue = (uint32_t)q, .count = 4, .packets = 8 };
	rc = exec_raw(b, 2, GPUP_EXEC_CHAIN, TIMEOUT_NS, &sub);
	report("EXEC with a bad packet pointer: none queued",
	       rc == -EFAULT && sub == 0 && next_seq() == before + 1, rc);
	before = next_seq();
	b[1] = (struct gpup_exec_batch){ .queue = (uint32_t)q, .count = 1, .packets = (uintptr_t)&bad };
	rc = exec_raw(b, 2, GPUP_EXEC_CHAIN, TIMEOUT_NS, &sub);
	report("EXEC with a bad packet last: none queued",
	       rc == -EINVAL && sub == 0 && next_seq() == before + 1, rc);
	bad = gpup_cmd_fill(GPUP_SPACE_VRAM, GPUP_BO_ADDR(999, 0), 64, 1);
	rc = exec_raw(b, 2, 0, 0, NULL);
	report("EXEC naming a handle it does not have", rc == -ENOENT, rc);
}

/* A chain of two on one queue: both queued and done, in order. */
static void exec_works(void)
{
	union gpup_cmd f = gpup_cmd_fill(GPUP_SPACE_VRAM, gpup_addr(&vram, 0), 4096, 0x6e6e6e6eu);
	union gpup_cmd c = gpup_cmd_copy(GPUP_SPACE_VRAM, gpup_addr(&vram, 0), GPUP_SPACE_IOVA,
					 gpup_addr(&sys, 0), 4096);
	struct gpup_exec_batch b[2] = {
		{ .queue = (uint32_t)q, .count = 1, .packets = (uintptr_t)&f },
		{ .queue = (uint32_t)q, .count = 1, .packets = (uintptr_t)&c },
	};
	const uint32_t *w = sys.map;
	uint32_t sub = 0;
	int rc, wrong = 0;

	memset(sys.map, 0, 4096);
	rc = exec_raw(b, 2, GPUP_EXEC_CHAIN, TIMEOUT_NS, &sub);
	for (unsigned int i = 0; !rc && i < 1024; i++)
		wrong += w[i] != 0x6e6e6e6eu;
	report("EXEC chain of two: done, in order", rc == 0 && sub == 2 && !wrong &&
	       b[0].seq && b[1].seq == b[0].seq + 1, rc);
}

/* A chain whose first batch never completes: the call times out with
 * only that one queued.  A file of its own: closing it ends the stall. */
static void exec_stall(void)
{
	struct gpup_dev d2;
	struct gpup_buf word;
	union gpup_cmd w, nop;
	struct gpup_exec_batch b[2];
	struct gpup_ioc_exec a;
	int q2, rc;

	if (gpup_open(&d2, NULL) || (q2 = gpup_queue(&d2, GPUP_ENGINE_COMPUTE)) < 0 ||
	    gpup_buf_alloc(&d2, &word, 4096, GPUP_DOMAIN_SYSTEM)) {
		report("a second file for the EXEC stall", false, 0);
		return;
	}
	memset(&w, 0, sizeof(w));
	memset(&nop, 0, sizeof(nop));
	w.wait.hdr.opcode = GPUP_OP_WAIT;
	w.wait.space = GPUP_SPACE_IOVA;
	w.wait.op = GPUP_WAIT_EQ;
	w.wait.addr = gpup_addr(&word, 0);
	w.wait.value = 0x1234567887654321ull;
	w.wait.mask = ~0ull;
	b[0] = (struct gpup_exec_batch){ .queue = (uint32_t)q2, .count = 1, .packets = (uintptr_t)&w };
	b[1] = (struct gpup_exec_batch){ .queue = (uint32_t)q2, .count = 1, .packets = (uintptr_t)&nop };
	a = (struct gpup_ioc_exec){ .batches = (uintptr_t)b, .nbatch = 2, .flags = GPUP_EXEC_CHAIN,
				    .timeout_ns = 200000000ull };
	rc = ioctl(d2.fd, GPUP_IOC_EXEC, &a) < 0 ? -errno : 0;
	report("EXEC chain behind a stall: ETIME, 1 queued",
	       rc == -ETIME && a.submitted == 1 && b[0].seq && !b[1].seq, rc);
	gpup_close(&d2);
}

/* Random bytes as packets: none may be taken, nothing may fault. */
static void garbage(unsigned int n)
{
	uint64_t x = 0x9e3779b97f4a7c15ull;
	unsigned int taken = 0;
	union gpup_cmd c;
	int rc = 0;

	for (unsigned int i = 0; i < n; i++) {
		for (unsigned int w = 0; w < GPUP_CMD_SIZE / 8; w++) {
			x ^= x << 13, x ^= x >> 7, x ^= x << 17;
			memcpy(c.raw + w * 8, &x, 8);
		}
		if (i % 2)
			c.hdr.opcode %= GPUP_OP_MAX; /* real opcodes, garbage fields */
		rc = submit1(c);
		taken += rc == 0;
	}
	report("garbage packets all refused", taken == 0, taken);
}

static bool still_works(uint32_t pattern)
{
	union gpup_cmd c[2] = {
		gpup_cmd_fill(GPUP_SPACE_VRAM, gpup_addr(&vram, 0), 4096, pattern),
		gpup_cmd_copy(GPUP_SPACE_VRAM, gpup_addr(&vram, 0), GPUP_SPACE_IOVA,
			      gpup_addr(&sys, 0), 4096),
	};
	const uint32_t *w = sys.map;

	memset(sys.map, 0, 4096);
	if (gpup_run(&dev, (uint32_t)q, c, 2, TIMEOUT_NS))
		return false;
	for (unsigned int i = 0; i < 1024; i++)
		if (w[i] != pattern)
			return false;
	return true;
}

/* WAIT on a word that never matches.  With the daemon's watchdog on, the
 * device resets itself; the driver must hand back a WATCHDOG record and
 * -EIO and set the queues up again.  Without it, the wait times out and
 * closing the file ends the stall. */
static void stall_attack(bool watchdog)
{
	struct gpup_dev d2;
	struct gpup_fault_record r[8];
	union gpup_cmd w;
	uint64_t seq;
	int q2, rc, n = 0;
	bool wd = false;

	if (gpup_open(&d2, NULL) || (q2 = gpup_queue(&d2, GPUP_ENGINE_COMPUTE)) < 0) {
		report("a second file for the stall", false, 0);
		return;
	}
	struct gpup_buf word;

	rc = gpup_buf_alloc(&d2, &word, 4096, GPUP_DOMAIN_SYSTEM);
	memset(&w, 0, sizeof(w));
	w.wait.hdr.opcode = GPUP_OP_WAIT;
	w.wait.hdr.tag = 0x57a11;
	w.wait.space = GPUP_SPACE_IOVA;
	w.wait.op = GPUP_WAIT_EQ;
	w.wait.addr = gpup_addr(&word, 0);
	w.wait.value = 0x1234567887654321ull;
	w.wait.mask = ~0ull;
	rc = rc ? rc : gpup_submit(&d2, (uint32_t)q2, &w, 1, &seq);
	rc = rc ? rc : gpup_wait(&d2, (uint32_t)q2, seq, watchdog ? 20000000000ull : 200000000ull);
	if (watchdog) {
		n = gpup_faults(&d2, r, 8, NULL);
		for (int i = 0; i < n; i++)
			wd |= r[i].code == GPUP_FAULT_WATCHDOG && r[i].tag == 0x57a11 &&
			      r[i].queue == (uint32_t)q2;
		report("stalled stream: WATCHDOG record, -EIO", rc == -EIO && wd, rc);
	} else {
		report("a stream that waits forever times out", rc == -ETIME, rc);
	}
	gpup_close(&d2);
	report("device works after the stall", still_works(0x0badf00du), n);
}

/* A second process, with its own file: none of our VRAM reachable. */
static int isolation_child(const struct gpup_ioc_alloc *secret)
{
	struct gpup_dev d2;
	struct gpup_buf mine, out;
	void *p;
	int rc, bad = 0, q2;

	if (gpup_open(&d2, NULL))
		return 100;
	p = mmap(NULL, 4096, PROT_READ, MAP_SHARED, d2.fd, (off_t)secret->mmap_offset);
	if (p != MAP_FAILED) {
		printf("hostile: child mapped the parent's buffer\n");
		bad++;
	}
	q2 = gpup_queue(&d2, GPUP_ENGINE_COPY);
	rc = q2 < 0 ? q2 : gpup_buf_alloc(&d2, &mine, 65536, GPUP_DOMAIN_VRAM);
	rc = rc ? rc : gpup_buf_alloc(&d2, &out, 65536, GPUP_DOMAIN_SYSTEM);
	if (rc)
		return 101;
	/* The parent freed a 64 KiB buffer full of its secret: whatever VRAM
	 * we got reads zeros, through the mapping and through the device. */
	for (unsigned int i = 0; i < 65536 / 4; i++)
		bad += ((volatile uint32_t *)mine.map)[i] != 0;
	union gpup_cmd c = gpup_cmd_copy(GPUP_SPACE_VRAM, gpup_addr(&mine, 0), GPUP_SPACE_IOVA,
					 gpup_addr(&out, 0), 65536);
	rc = gpup_run(&d2, (uint32_t)q2, &c, 1, TIMEOUT_NS);
	for (unsigned int i = 0; !rc && i < 65536 / 4; i++)
		bad += ((uint32_t *)out.map)[i] != 0;
	/* The parent's live handle names nothing here (or our own buffer). */
	c = gpup_cmd_copy(GPUP_SPACE_VRAM, GPUP_BO_ADDR(secret->handle + 1000, 0),
			  GPUP_SPACE_IOVA, gpup_addr(&out, 0), 64);
	bad += gpup_submit(&d2, (uint32_t)q2, &c, 1, NULL) != -ENOENT;
	return rc ? 102 : bad;
}

static void isolation(void)
{
	struct gpup_ioc_alloc live = { .size = 65536, .domain = GPUP_DOMAIN_VRAM };
	struct gpup_buf gone;
	pid_t pid;
	int st = -1;

	if (raw_ioctl(dev.fd, GPUP_IOC_ALLOC, &live) ||
	    gpup_buf_alloc(&dev, &gone, 65536, GPUP_DOMAIN_VRAM)) {
		report("isolation: buffers", false, 0);
		return;
	}
	memset(gone.map, 0x5e, 65536);
	gpup_buf_free(&dev, &gone);
	fflush(stdout);
	pid = fork();
	if (pid == 0)
		_exit(isolation_child(&live));
	waitpid(pid, &st, 0);
	report("another process sees none of our VRAM", WIFEXITED(st) && WEXITSTATUS(st) == 0,
	       WIFEXITED(st) ? WEXITSTATUS(st) : -1);
}

static void reset_attacks(void)
{
	pid_t pid = fork();
	int st = -1, rc;

	if (pid == 0) {
		if (setuid(65534))
			_exit(2);
		_exit(raw_ioctl(dev.fd, GPUP_IOC_RESET, NULL) == -EPERM ? 0 : 1);
	}
	waitpid(pid, &st, 0);
	report("RESET without CAP_SYS_ADMIN refused", WIFEXITED(st) && WEXITSTATUS(st) == 0, st);
	rc = raw_ioctl(dev.fd, GPUP_IOC_RESET, NULL);
	report("device works after a reset", rc == 0 && still_works(0x5a5a5a5au), rc);
}

int main(int argc, char **argv)
{
	bool watchdog = gpup_arg_u64(argc, argv, "watchdog", 0) != 0;
	int rc = gpup_open(&dev, NULL);

	q = rc ? rc : gpup_queue(&dev, GPUP_ENGINE_COPY);
	rc = q < 0 ? q : gpup_buf_alloc(&dev, &vram, 65536, GPUP_DOMAIN_VRAM);
	rc = rc ? rc : gpup_buf_alloc(&dev, &sys, 65536, GPUP_DOMAIN_SYSTEM);
	if (rc) {
		printf("hostile: no usable vGPU (%s)\n", strerror(-rc));
		return 100;
	}
	ioctl_attacks();
	mmap_attacks();
	submit_attacks();
	packet_attacks();
	exec_attacks();
	exec_works();
	garbage((unsigned int)gpup_arg_u64(argc, argv, "garbage", 2000));
	report("device works after the attacks", still_works(0xa5a5a5a5u), 0);
	stall_attack(watchdog);
	exec_stall();
	isolation();
	reset_attacks();
	printf("hostile: %u check(s) failed\n", failures);
	return (int)failures;
}
