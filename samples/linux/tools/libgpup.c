// SPDX-License-Identifier: MIT
/*
 * libgpup: open the device, allocate and map buffers, create queues,
 * submit packets and wait for them, read fault records.  Thin wrappers
 * over the ioctls of uapi/gpup_vgpu_ioctl.h.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "gpup.h"

static int xioctl(int fd, unsigned long cmd, void *arg)
{
	int rc;

	do
		rc = ioctl(fd, cmd, arg);
	while (rc < 0 && errno == EINTR);
	return rc < 0 ? -errno : rc;
}

int gpup_open(struct gpup_dev *d, const char *path)
{
	if (!path)
		path = getenv("GPUP_DEV");
	d->fd = open(path ? path : "/dev/gpup0", O_RDWR | O_CLOEXEC);
	if (d->fd < 0)
		return -errno;
	return gpup_info(d);
}

void gpup_close(struct gpup_dev *d)
{
	close(d->fd);
	d->fd = -1;
}

int gpup_info(struct gpup_dev *d)
{
	memset(&d->info, 0, sizeof(d->info));
	return xioctl(d->fd, GPUP_IOC_INFO, &d->info);
}

int gpup_buf_alloc(struct gpup_dev *d, struct gpup_buf *b, uint64_t size, uint32_t domain)
{
	struct gpup_ioc_alloc a = { .size = size, .domain = domain };
	struct gpup_ioc_free f;
	int rc = xioctl(d->fd, GPUP_IOC_ALLOC, &a);

	if (rc)
		return rc;
	b->handle = a.handle;
	b->domain = domain;
	b->size = (size + 4095) & ~4095ull;
	b->map = mmap(NULL, b->size, PROT_READ | PROT_WRITE, MAP_SHARED, d->fd,
		      (off_t)a.mmap_offset);
	if (b->map != MAP_FAILED)
		return 0;
	rc = -errno;
	f = (struct gpup_ioc_free){ .handle = a.handle };
	xioctl(d->fd, GPUP_IOC_FREE, &f);
	return rc;
}

void gpup_buf_free(struct gpup_dev *d, struct gpup_buf *b)
{
	struct gpup_ioc_free f = { .handle = b->handle };

	munmap(b->map, b->size);
	xioctl(d->fd, GPUP_IOC_FREE, &f);
}

int gpup_queue(struct gpup_dev *d, uint32_t engine)
{
	struct gpup_ioc_queue a = { .engine = engine };
	int rc = xioctl(d->fd, GPUP_IOC_QUEUE, &a);

	return rc ? rc : (int)a.queue;
}

int gpup_submit(struct gpup_dev *d, uint32_t q, const union gpup_cmd *c, uint32_t n,
		uint64_t *seq)
{
	struct gpup_ioc_submit a = { .queue = q, .count = n, .packets = (uintptr_t)c };
	int rc = xioctl(d->fd, GPUP_IOC_SUBMIT, &a);

	if (!rc && seq)
		*seq = a.seq;
	return rc;
}

int gpup_wait(struct gpup_dev *d, uint32_t q, uint64_t seq, uint64_t timeout_ns)
{
	struct gpup_ioc_wait a = { .queue = q, .seq = seq, .timeout_ns = timeout_ns };

	return xioctl(d->fd, GPUP_IOC_WAIT, &a);
}

int gpup_run(struct gpup_dev *d, uint32_t q, const union gpup_cmd *c, uint32_t n,
	     uint64_t timeout_ns)
{
	uint64_t seq;
	int rc = gpup_submit(d, q, c, n, &seq);

	return rc ? rc : gpup_wait(d, q, seq, timeout_ns);
}

static int exec_once(struct gpup_dev *d, struct gpup_exec_batch *b, uint32_t n, uint32_t flags,
		     uint64_t timeout_ns, uint32_t *submitted)
{
	struct gpup_ioc_exec a = {
		.batches = (uintptr_t)b, .nbatch = n, .flags = flags,
		.timeout_ns = (flags & GPUP_EXEC_CHAIN) ? timeout_ns : 0,
	};
	int rc = ioctl(d->fd, GPUP_IOC_EXEC, &a) < 0 ? -errno : 0;

	*submitted = a.submitted;
	return rc;
}

int gpup_exec(struct gpup_dev *d, struct gpup_exec_batch *b, uint32_t n, uint32_t flags,
	      uint64_t timeout_ns)
{
	uint32_t done = 0, sub;
	int rc;

	for (uint32_t i = 0; i < n; i++)
		b[i].seq = 0;
	for (;;) {
		rc = exec_once(d, b + done, n - done, flags, timeout_ns, &sub);
		done += sub;
		if (rc != -EINTR)
			return rc;
		/* The kernel does not restart an EXEC: wait for what it queued
		 * (a chain's next batch must follow it), then queue the rest. */
		if ((flags & GPUP_EXEC_CHAIN) && sub) {
			rc = gpup_wait(d, b[done - 1].queue, b[done - 1].seq, timeout_ns);
			if (rc)
				return rc;
		}
		if (done == n)
			return 0;
	}
}

int gpup_faults(struct gpup_dev *d, struct gpup_fault_record *r, uint32_t max,
		uint32_t *lost)
{
	struct gpup_ioc_faults a = { .records = (uintptr_t)r, .max = max };
	int rc = xioctl(d->fd, GPUP_IOC_FAULTS, &a);

	if (lost)
		*lost = a.lost;
	return rc ? rc : (int)a.count;
}

const char *gpup_fault_name(uint32_t code)
{
	static const char *const names[] = {
		"none", "iommu-unmapped", "iommu-perm", "vram-range", "bad-opcode",
		"bad-kernel", "bad-args", "ring", "watchdog", "device-lost",
	};

	return code < sizeof(names) / sizeof(names[0]) ? names[code] : "unknown";
}

uint64_t gpup_arg_u64(int argc, char **argv, const char *key, uint64_t def)
{
	size_t n = strlen(key);

	for (int i = 1; i < argc; i++)
		if (!strncmp(argv[i], key, n) && argv[i][n] == '=')
			return strtoull(argv[i] + n + 1, NULL, 0);
	return def;
}

uint64_t gpup_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}
