// SPDX-License-Identifier: MIT
/*
 * The guest-side vGPU driver over a vfio-user client (see drv.h):
 * everything a guest driver does, done from a host process, so partitions
 * can be exercised and tested end to end before a VM exists.
 */
#include <errno.h>
#include <poll.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "gpup/drv/drv.h"

int gpup_vg_reg_write(struct gpup_vg *g, uint32_t off, uint32_t val)
{
	return vfu_client_region_write(g->c, VFIO_PCI_BAR0_REGION_INDEX, off, &val, sizeof(val));
}

int gpup_vg_reg_read(struct gpup_vg *g, uint32_t off, uint32_t *val)
{
	return vfu_client_region_read(g->c, VFIO_PCI_BAR0_REGION_INDEX, off, val, sizeof(*val));
}

static void init_fds(struct gpup_vg *g)
{
	g->ram_fd = -1;
	g->ram = MAP_FAILED;
	for (unsigned int i = 0; i < GPUP_MAX_QUEUES; i++)
		g->db_fd[i] = -1;
	for (unsigned int i = 0; i < GPUP_MSIX_VECTORS; i++)
		g->irq_fd[i] = -1;
}

static int map_ram(struct gpup_vg *g, uint64_t size)
{
	g->ram_size = size;
	g->ram_fd = memfd_create("gpup-guest-ram", MFD_CLOEXEC | MFD_ALLOW_SEALING);
	if (g->ram_fd < 0 || ftruncate(g->ram_fd, (off_t)size))
		return -errno;
	g->ram = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, g->ram_fd, 0);
	if (g->ram == MAP_FAILED)
		return -errno;
	return vfu_client_dma_map(g->c, g->ram_fd, 0, GPUP_VG_IOVA_BASE, size,
			      VFIO_USER_DMA_F_READ | VFIO_USER_DMA_F_WRITE);
}

static int get_doorbells(struct gpup_vg *g)
{
	struct vfu_iofd io[GPUP_MAX_QUEUES];
	int n = vfu_client_region_io_fds(g->c, VFIO_PCI_BAR0_REGION_INDEX, io, GPUP_MAX_QUEUES);

	if (n < 0)
		return n;
	for (int i = 0; i < n; i++) {
		uint64_t q = (io[i].offset - GPUP_PAGE_DOORBELL) / 4;

		if (io[i].offset < GPUP_PAGE_DOORBELL || q >= GPUP_MAX_QUEUES || g->db_fd[q] >= 0) {
			close(io[i].fd);
			continue;
		}
		g->db_fd[q] = io[i].fd;
	}
	return 0;
}

static int connect_irqs(struct gpup_vg *g)
{
	for (unsigned int i = 0; i < GPUP_MSIX_VECTORS; i++) {
		g->irq_fd[i] = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
		if (g->irq_fd[i] < 0)
			return -errno;
	}
	return vfu_client_set_irqs(g->c, VFIO_PCI_MSIX_IRQ_INDEX, 0, GPUP_MSIX_VECTORS, g->irq_fd);
}

static int read_vram_size(struct gpup_vg *g)
{
	uint32_t lo, hi, id;
	int rc = gpup_vg_reg_read(g, GPUP_REG_ID, &id);

	if (!rc && id != GPUP_ID_MAGIC)
		rc = -ENODEV;
	if (!rc)
		rc = gpup_vg_reg_read(g, GPUP_REG_VRAM_SIZE_LO, &lo);
	if (!rc)
		rc = gpup_vg_reg_read(g, GPUP_REG_VRAM_SIZE_HI, &hi);
	if (!rc)
		g->vram_size = (uint64_t)hi << 32 | lo;
	return rc;
}

int gpup_vg_open(struct gpup_vg *g, struct vfu_client *c, uint64_t ram_size)
{
	int rc;

	memset(g, 0, sizeof(*g));
	g->c = c;
	init_fds(g);
	if (ram_size < GPUP_VG_DATA_OFF + 4096 || ram_size % 4096)
		rc = -EINVAL;
	else
		rc = map_ram(g, ram_size);
	if (!rc)
		rc = read_vram_size(g);
	if (!rc)
		rc = get_doorbells(g);
	if (!rc)
		rc = connect_irqs(g);
	if (!rc)
		rc = gpup_vg_reg_write(g, GPUP_REG_CONTROL, GPUP_CTRL_ENABLE);
	if (rc)
		gpup_vg_close(g);
	return rc;
}

void gpup_vg_close(struct gpup_vg *g)
{
	if (g->ram != MAP_FAILED)
		munmap(g->ram, g->ram_size);
	if (g->ram_fd >= 0)
		close(g->ram_fd);
	for (unsigned int i = 0; i < GPUP_MAX_QUEUES; i++)
		if (g->db_fd[i] >= 0)
			close(g->db_fd[i]);
	for (unsigned int i = 0; i < GPUP_MSIX_VECTORS; i++)
		if (g->irq_fd[i] >= 0)
			close(g->irq_fd[i]);
	init_fds(g);
}

int gpup_vg_queue_setup(struct gpup_vg *g, unsigned int q, uint32_t engine)
{
	uint32_t base = GPUP_REG_QUEUE(q);
	uint64_t ring = gpup_vg_iova(q * (uint64_t)GPUP_VG_RING_BYTES);
	uint64_t pi = gpup_vg_iova(GPUP_VG_PI_OFF + q * 8ull);
	int rc = 0;

	if (q >= GPUP_MAX_QUEUES)
		return -EINVAL;
	g->pi[q] = 0;
	memset(g->ram + GPUP_VG_PI_OFF + q * 8ull, 0, 8);
	rc |= gpup_vg_reg_write(g, base + GPUP_Q_CONTROL, 0);
	rc |= gpup_vg_reg_write(g, base + GPUP_Q_RING_LO, (uint32_t)ring);
	rc |= gpup_vg_reg_write(g, base + GPUP_Q_RING_HI, (uint32_t)(ring >> 32));
	rc |= gpup_vg_reg_write(g, base + GPUP_Q_RING_ENTRIES, GPUP_VG_RING_ENTRIES);
	rc |= gpup_vg_reg_write(g, base + GPUP_Q_ENGINE, engine);
	rc |= gpup_vg_reg_write(g, base + GPUP_Q_PI_ADDR_LO, (uint32_t)pi);
	rc |= gpup_vg_reg_write(g, base + GPUP_Q_PI_ADDR_HI, (uint32_t)(pi >> 32));
	rc |= gpup_vg_reg_write(g, base + GPUP_Q_VECTOR, q);
	rc |= gpup_vg_reg_write(g, base + GPUP_Q_CONTROL, GPUP_QCTL_ENABLE);
	if (rc)
		return -EIO;
	/* A device that reaches our memory only by asking us takes its start
	 * index after the write (STARTING); each read answers its asks. */
	for (unsigned int i = 0; i < 5000; i++) {
		uint32_t sts = 0;

		if (gpup_vg_reg_read(g, base + GPUP_Q_STATUS, &sts))
			return -EIO;
		if (!(sts & GPUP_QSTS_STARTING))
			return 0;
		usleep(1000);
	}
	return -ETIMEDOUT;
}

static uint32_t queue_ci(struct gpup_vg *g, unsigned int q)
{
	uint32_t ci = 0;

	gpup_vg_reg_read(g, GPUP_REG_QUEUE(q) + GPUP_Q_CI, &ci);
	return ci;
}

int gpup_vg_submit(struct gpup_vg *g, unsigned int q, const union gpup_cmd *cmds,
		   unsigned int n)
{
	uint8_t *ring = g->ram + q * (uint64_t)GPUP_VG_RING_BYTES;
	uint32_t *pi = (uint32_t *)(g->ram + GPUP_VG_PI_OFF + q * 8ull);
	uint64_t one = 1;

	if (q >= GPUP_MAX_QUEUES || g->db_fd[q] < 0)
		return -EINVAL;
	if (g->pi[q] - queue_ci(g, q) + n > GPUP_VG_RING_ENTRIES)
		return -ENOSPC;
	for (unsigned int i = 0; i < n; i++) {
		uint32_t slot = (g->pi[q] + i) % GPUP_VG_RING_ENTRIES;

		memcpy(ring + slot * GPUP_CMD_SIZE, &cmds[i], GPUP_CMD_SIZE);
	}
	g->pi[q] += n;
	/* Packets before the index, the index before the doorbell. */
	atomic_store_explicit((_Atomic uint32_t *)pi, g->pi[q], memory_order_release);
	if (write(g->db_fd[q], &one, sizeof(one)) != (ssize_t)sizeof(one))
		return -errno;
	return 0;
}

static int wait_fd(int fd, int timeout_ms)
{
	struct pollfd p = { .fd = fd, .events = POLLIN };
	uint64_t v;
	int n = poll(&p, 1, timeout_ms);

	if (n < 0)
		return -errno;
	if (n == 0)
		return -ETIMEDOUT;
	if (read(fd, &v, sizeof(v)) != (ssize_t)sizeof(v))
		return -errno;
	return 0;
}

static int check_fault(struct gpup_vg *g, unsigned int q, uint32_t *fault)
{
	uint32_t st = 0, code = 0;

	gpup_vg_reg_read(g, GPUP_REG_QUEUE(q) + GPUP_Q_STATUS, &st);
	if (!(st & GPUP_QSTS_FAULTED))
		return 0;
	gpup_vg_reg_read(g, GPUP_REG_QUEUE(q) + GPUP_Q_FAULT, &code);
	if (fault)
		*fault = code;
	return -EIO;
}

int gpup_vg_fence_wait(struct gpup_vg *g, unsigned int q, int timeout_ms,
		       uint32_t *fault)
{
	uint64_t want = ++g->fence_seq[q];
	uint64_t off = GPUP_VG_FENCE_OFF + q * 8ull;
	union gpup_cmd f = gpup_cmd_fence(GPUP_SPACE_IOVA, gpup_vg_iova(off), want,
					  GPUP_FENCE_IRQ);
	int rc;

	rc = gpup_vg_submit(g, q, &f, 1);
	if (rc)
		return rc;
	/* The device writes the value, then signals: a signal left over from
	 * an earlier fence is consumed and waited past. */
	for (;;) {
		rc = wait_fd(g->irq_fd[q], timeout_ms);
		if (rc == -ETIMEDOUT && check_fault(g, q, fault))
			return -EIO;
		if (rc)
			return rc;
		if (atomic_load_explicit((_Atomic uint64_t *)(g->ram + off),
					 memory_order_acquire) == want)
			return 0;
	}
}

