// SPDX-License-Identifier: MIT
/*
 * The vfu/ library on its own: its client against its server serving a
 * small device written here (RAM regions, a mappable memfd region,
 * doorbell eventfds, interrupt vectors, DMA into client memory, a
 * migration stream), so that every device op is seen to be called with
 * what the protocol carried, and every refusal the server makes before an
 * op runs has its exact error.  Also the VERSION capability codec.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/magic.h>
#include <stdio.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/vfs.h>
#include <unistd.h>

#include "vfu/vfu.h"

#define RAM_SIZE 4096u
#define MAP_SIZE 8192u
#define NVEC 4u
#define STREAM_LEN 10000u

/* ---- the device ---- */

struct ramdev {
	uint8_t ram[RAM_SIZE];        /* region 0 */
	int map_fd;                   /* region 2, mmapable */
	int db_fd[2];                 /* ioeventfds of region 0 */
	int irq_fd[NVEC];             /* the device's dups */
	unsigned int resets, maps, unmaps;
	struct vfu_dma_region last_map;
	uint8_t first_byte;           /* of the last window mapped */
	uint8_t stream[STREAM_LEN];   /* what MIG_DATA_READ sends */
	uint32_t stream_at;
	uint8_t written[STREAM_LEN];  /* what MIG_DATA_WRITE brought */
	uint32_t written_len;
};

static void rd_device_info(void *dev, struct vfio_user_device_info *info)
{
	(void)dev;
	info->flags = VFIO_DEVICE_FLAGS_RESET;
	info->num_regions = 3;
	info->num_irqs = 2;
}

static int rd_region_info(void *dev, uint32_t index, struct vfio_region_info *info, int *fd)
{
	struct ramdev *d = dev;

	info->flags = VFIO_REGION_INFO_FLAG_READ | VFIO_REGION_INFO_FLAG_WRITE;
	if (index == 0)
		info->size = RAM_SIZE;
	if (index == 2) {
		info->size = MAP_SIZE;
		info->flags |= VFIO_REGION_INFO_FLAG_MMAP;
		info->offset = 0;
		*fd = d->map_fd;
	}
	return 0;
}

static int rd_region_read(void *dev, uint32_t index, uint64_t off, void *buf, uint32_t len)
{
	struct ramdev *d = dev;

	if (index == 2)
		return pread(d->map_fd, buf, len, (off_t)off) == (ssize_t)len ? 0 : -EIO;
	memcpy(buf, d->ram + off, len);
	return 0;
}

static int rd_region_write(void *dev, uint32_t index, uint64_t off, const void *buf,
			   uint32_t len)
{
	struct ramdev *d = dev;

	if (index == 2)
		return pwrite(d->map_fd, buf, len, (off_t)off) == (ssize_t)len ? 0 : -EIO;
	memcpy(d->ram + off, buf, len);
	return 0;
}

static int rd_io_fds(void *dev, uint32_t index, struct vfu_iofd *out, unsigned int max)
{
	struct ramdev *d = dev;

	if (index != 0)
		return 0;
	for (unsigned int i = 0; i < 2 && i < max; i++)
		out[i] = (struct vfu_iofd){ .offset = 8 * i, .size = 4, .fd = d->db_fd[i] };
	return 2;
}

static void rd_irq_info(void *dev, uint32_t index, struct vfio_irq_info *info)
{
	(void)dev;
	if (index == 0) {
		info->flags = VFIO_IRQ_INFO_EVENTFD;
		info->count = NVEC;
	}
}

static int rd_irq_set_fd(void *dev, uint32_t index, uint32_t vec, int fd)
{
	struct ramdev *d = dev;

	cr_assert_eq(index, 0u);
	cr_assert_lt(vec, NVEC);
	if (d->irq_fd[vec] >= 0)
		close(d->irq_fd[vec]);
	d->irq_fd[vec] = fd >= 0 ? dup(fd) : -1;
	return 0;
}

static void rd_reset(void *dev)
{
	((struct ramdev *)dev)->resets++;
}

static int rd_dma_map(void *dev, const struct vfu_dma_region *r)
{
	struct ramdev *d = dev;

	d->maps++;
	d->last_map = *r;
	d->first_byte = *(const uint8_t *)r->host;
	return 0;
}

static int rd_dma_unmap(void *dev, const struct vfu_dma_region *r)
{
	(void)r;
	((struct ramdev *)dev)->unmaps++;
	return 0;
}

/* Feature 1 (MIGRATION): GET gives 8 bytes of flags; others refused. */
static int rd_feature(void *dev, uint32_t flags, const void *in, uint32_t in_len, void *out,
		      uint32_t out_max)
{
	uint64_t mig = VFIO_MIGRATION_STOP_COPY;

	(void)dev;
	(void)in;
	(void)in_len;
	if ((flags & VFIO_DEVICE_FEATURE_MASK) != 1 || !(flags & VFIO_DEVICE_FEATURE_GET))
		return -ENOTTY;
	cr_assert_geq(out_max, sizeof(mig));
	memcpy(out, &mig, sizeof(mig));
	return sizeof(mig);
}

static int rd_mig_read(void *dev, void *buf, uint32_t len)
{
	struct ramdev *d = dev;
	uint32_t n = STREAM_LEN - d->stream_at < len ? STREAM_LEN - d->stream_at : len;

	memcpy(buf, d->stream + d->stream_at, n);
	d->stream_at += n;
	return (int)n;
}

static int rd_mig_write(void *dev, const void *buf, uint32_t len)
{
	struct ramdev *d = dev;

	if (len > STREAM_LEN - d->written_len)
		return -ENOSPC;
	memcpy(d->written + d->written_len, buf, len);
	d->written_len += len;
	return 0;
}

static const struct vfu_dev_ops full_ops = {
	.version = VFU_DEV_OPS_VERSION,
	.device_info = rd_device_info,
	.region_info = rd_region_info,
	.region_read = rd_region_read,
	.region_write = rd_region_write,
	.region_io_fds = rd_io_fds,
	.irq_info = rd_irq_info,
	.irq_set_fd = rd_irq_set_fd,
	.reset = rd_reset,
	.dma_map = rd_dma_map,
	.dma_unmap = rd_dma_unmap,
	.feature = rd_feature,
	.mig_data_read = rd_mig_read,
	.mig_data_write = rd_mig_write,
};

/* Only the required members. */
static const struct vfu_dev_ops bare_ops = {
	.version = VFU_DEV_OPS_VERSION,
	.device_info = rd_device_info,
	.region_info = rd_region_info,
	.region_read = rd_region_read,
	.region_write = rd_region_write,
	.irq_info = rd_irq_info,
	.irq_set_fd = rd_irq_set_fd,
};

static struct ramdev dev;
static struct vfu_server *srv;

static void serve(const struct vfu_dev_ops *ops)
{
	struct vfu_server_cfg cfg = { .name = "test", .ops = ops, .dev = &dev, .iova_bits = 32,
				      .max_dma_bytes = 16 << 20 };

	memset(&dev, 0, sizeof(dev));
	dev.map_fd = memfd_create("map", MFD_CLOEXEC);
	cr_assert_geq(dev.map_fd, 0);
	cr_assert_eq(ftruncate(dev.map_fd, MAP_SIZE), 0);
	for (unsigned int i = 0; i < 2; i++)
		dev.db_fd[i] = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	for (unsigned int i = 0; i < NVEC; i++)
		dev.irq_fd[i] = -1;
	for (unsigned int i = 0; i < STREAM_LEN; i++)
		dev.stream[i] = (uint8_t)(i * 7 + 3);
	srv = vfu_server_create(&cfg);
	cr_assert_not_null(srv, "%s", strerror(errno));
}

static void setup_full(void)
{
	serve(&full_ops);
}

static void setup_bare(void)
{
	serve(&bare_ops);
}

static void teardown(void)
{
	vfu_server_destroy(srv);
	close(dev.map_fd);
	for (unsigned int i = 0; i < 2; i++)
		close(dev.db_fd[i]);
	for (unsigned int i = 0; i < NVEC; i++)
		if (dev.irq_fd[i] >= 0)
			close(dev.irq_fd[i]);
}

static int raw_conn(void)
{
	int sv[2];

	cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	cr_assert_eq(vfu_server_attach(srv, sv[0]), 0);
	return sv[1];
}

static struct vfu_client *client(void)
{
	int err = 0;
	struct vfu_client *c = vfu_client_open_fd(raw_conn(), &err);

	cr_assert_not_null(c, "%s", strerror(-err));
	return c;
}

/* The server's thread finishes a disconnect before the next attach. */
static void wait_disconnected(void)
{
	for (int i = 0; i < 2000 && !vfu_server_idle(srv); i++)
		usleep(1000);
	cr_assert(vfu_server_idle(srv), "the last client's teardown never ended");
}

static void make_memfd(int *fd, uint64_t size, uint8_t fill)
{
	uint8_t page[4096];

	*fd = memfd_create("dma", MFD_CLOEXEC | MFD_ALLOW_SEALING);
	cr_assert_geq(*fd, 0);
	cr_assert_eq(ftruncate(*fd, (off_t)size), 0);
	memset(page, fill, sizeof(page));
	cr_assert_eq(pwrite(*fd, page, sizeof(page), 0), (ssize_t)sizeof(page));
}

TestSuite(vfu_server, .init = setup_full, .fini = teardown);

Test(vfu_server, negotiates_the_servers_limits)
{
	struct vfu_client *c = client();
	struct vfio_user_device_info info;

	cr_assert_eq(vfu_client_max_xfer(c), VFU_SERVER_MAX_XFER);
	cr_assert_eq(vfu_client_max_fds(c), VFU_MAX_FDS);
	cr_assert_eq(vfu_client_device_info(c, &info), 0);
	cr_assert_eq(info.argsz, sizeof(info));
	cr_assert_eq(info.num_regions, 3u);
	cr_assert_eq(info.num_irqs, 2u);
	vfu_client_close(c);
}

Test(vfu_server, region_access_is_bit_exact_and_bounded)
{
	struct vfu_client *c = client();
	uint8_t in[RAM_SIZE], out[RAM_SIZE];

	for (unsigned int i = 0; i < RAM_SIZE; i++)
		in[i] = (uint8_t)(i * 13 + 1);
	cr_assert_eq(vfu_client_region_write(c, 0, 0, in, RAM_SIZE), 0);
	cr_assert_eq(memcmp(dev.ram, in, RAM_SIZE), 0);
	cr_assert_eq(vfu_client_region_read(c, 0, 100, out, 300), 0);
	cr_assert_eq(memcmp(out, in + 100, 300), 0);
	cr_assert_eq(vfu_client_region_read(c, 0, RAM_SIZE - 4, out, 8), -EINVAL);
	cr_assert_eq(vfu_client_region_read(c, 1, 0, out, 4), -EINVAL);  /* size 0 */
	cr_assert_eq(vfu_client_region_read(c, 3, 0, out, 4), -EINVAL);  /* no such */
	cr_assert_eq(memcmp(dev.ram, in, RAM_SIZE), 0);
	vfu_client_close(c);
}

Test(vfu_server, a_mappable_region_lends_its_fd)
{
	struct vfu_client *c = client();
	struct vfio_region_info info;
	const char msg[] = "through the socket";
	uint8_t *p;
	int fd;

	cr_assert_eq(vfu_client_region_info(c, 2, &info, &fd), 0);
	cr_assert(info.flags & VFIO_REGION_INFO_FLAG_MMAP);
	cr_assert_eq(info.size, MAP_SIZE);
	cr_assert_geq(fd, 0);
	cr_assert_eq(vfu_client_region_write(c, 2, 4096, msg, sizeof(msg)), 0);
	p = mmap(NULL, MAP_SIZE, PROT_READ, MAP_SHARED, fd, 0);
	cr_assert_neq(p, MAP_FAILED);
	cr_assert_eq(memcmp(p + 4096, msg, sizeof(msg)), 0);
	munmap(p, MAP_SIZE);
	close(fd);
	cr_assert_eq(vfu_client_region_info(c, 0, &info, &fd), 0);
	cr_assert_eq(fd, -1);
	vfu_client_close(c);
}

Test(vfu_server, io_fds_reach_the_devices_eventfds)
{
	struct vfu_client *c = client();
	struct vfu_iofd io[4];
	uint64_t one = 1, v = 0;

	cr_assert_eq(vfu_client_region_io_fds(c, 0, io, 4), 2);
	cr_assert_eq(io[1].offset, 8u);
	cr_assert_eq(io[1].size, 4u);
	cr_assert_eq(write(io[1].fd, &one, sizeof(one)), (ssize_t)sizeof(one));
	cr_assert_eq(read(dev.db_fd[1], &v, sizeof(v)), (ssize_t)sizeof(v));
	cr_assert_eq(v, 1u);
	cr_assert_eq(read(dev.db_fd[0], &v, sizeof(v)), -1);
	close(io[0].fd);
	close(io[1].fd);
	cr_assert_eq(vfu_client_region_io_fds(c, 2, io, 4), -ENOENT, "no fds: an error reply");
	vfu_client_close(c);
}

Test(vfu_server, irqs_are_connected_triggered_and_released)
{
	struct vfu_client *c = client();
	int efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK), pipefd[2];
	struct {
		struct vfio_irq_set s;
		uint8_t bools[2];
	} trig = { { sizeof(trig), VFIO_IRQ_SET_DATA_BOOL | VFIO_IRQ_SET_ACTION_TRIGGER, 0, 1, 2 },
		   { 0, 1 } };
	uint64_t v = 0;

	cr_assert_eq(vfu_client_set_irqs(c, 0, 2, 1, &efd), 0);
	cr_assert_geq(dev.irq_fd[2], 0);
	/* BOOL: vector 1 stays quiet, vector 2 fires through our copy. */
	cr_assert_eq(vfu_client_call(c, VFIO_USER_DEVICE_SET_IRQS, &trig, sizeof(trig), NULL, 0,
				     NULL, 0, NULL, NULL), 0);
	cr_assert_eq(read(efd, &v, sizeof(v)), (ssize_t)sizeof(v));
	cr_assert_eq(v, 1u);
	cr_assert_eq(vfu_client_set_irqs(c, 0, 3, 2, NULL), -EINVAL);  /* past NVEC */
	cr_assert_eq(vfu_client_set_irqs(c, 1, 0, 1, &efd), -EINVAL);  /* no vectors */
	cr_assert_eq(pipe(pipefd), 0);
	cr_assert_eq(vfu_client_set_irqs(c, 0, 0, 1, &pipefd[0]), -EBADF);
	vfu_client_close(c);
	wait_disconnected();
	cr_assert_eq(dev.irq_fd[2], -1, "the client's eventfd outlived it");
	close(efd);
	close(pipefd[0]);
	close(pipefd[1]);
}

/* Triggering a vector whose eventfd the client filled to its maximum
 * (a blocking one) is answered at once, and the connection goes on. */
Test(vfu_server, a_full_eventfd_never_blocks_a_trigger)
{
	struct vfu_client *c = client();
	int full = eventfd(0, EFD_CLOEXEC);
	uint64_t max = 0xfffffffffffffffeull, v = 0;
	struct vfio_irq_set trig = { sizeof(trig),
				     VFIO_IRQ_SET_DATA_NONE | VFIO_IRQ_SET_ACTION_TRIGGER, 0, 1, 1 };

	cr_assert_eq(write(full, &max, sizeof(max)), (ssize_t)sizeof(max));
	cr_assert_eq(vfu_client_set_irqs(c, 0, 1, 1, &full), 0);
	cr_assert_eq(vfu_client_set_timeout(c, 2000), 0);
	cr_assert_eq(vfu_client_call(c, VFIO_USER_DEVICE_SET_IRQS, &trig, sizeof(trig), NULL, 0,
				     NULL, 0, NULL, NULL), 0);
	cr_assert_eq(vfu_client_reset(c), 0, "the connection goes on");
	cr_assert_eq(read(full, &v, sizeof(v)), (ssize_t)sizeof(v));
	cr_assert_eq(v, max, "the increment was dropped, the count kept");
	cr_assert_eq(vfu_eventfd_signal(full), 0, "drained, it takes signals again");
	vfu_client_close(c);
	close(full);
}

Test(vfu_server, dma_windows_reach_the_device_and_leave_with_the_client)
{
	struct vfu_client *c = client();
	int fd, pipefd[2];

	make_memfd(&fd, 2 * 4096, 0xa5);
	cr_assert_eq(vfu_client_dma_map(c, fd, 0, 0x10000, 8192, VFIO_USER_DMA_F_READ), 0);
	cr_assert_eq(dev.maps, 1u);
	cr_assert_eq(dev.last_map.iova, 0x10000u);
	cr_assert_eq(dev.last_map.size, 8192u);
	cr_assert_eq(dev.last_map.prot, VFIO_USER_DMA_F_READ);
	cr_assert_eq(dev.first_byte, 0xa5);
	cr_assert(fcntl(fd, F_GET_SEALS) & F_SEAL_SHRINK);
	cr_assert_eq(vfu_client_dma_map(c, fd, 0, 0x11000, 4096, VFIO_USER_DMA_F_READ), -EEXIST);
	cr_assert_eq(vfu_client_dma_map(c, fd, 4096, 0x20000, 8192, VFIO_USER_DMA_F_READ),
		     -EINVAL);  /* past the end of the file */
	cr_assert_eq(vfu_client_dma_map(c, fd, 0, 1ull << 32, 4096, VFIO_USER_DMA_F_READ),
		     -EINVAL);  /* past the device's 32 address bits */
	cr_assert_eq(pipe(pipefd), 0);
	cr_assert_eq(vfu_client_dma_map(c, pipefd[0], 0, 0x30000, 4096, VFIO_USER_DMA_F_READ),
		     -EBADF);
	/* A regular file, but not of a memory filesystem: its I/O could
	 * stall the device. */
	int disk = open("/proc/self/exe", O_RDONLY | O_CLOEXEC);
	struct statfs fs;

	cr_assert_geq(disk, 0);
	cr_assert_eq(fstatfs(disk, &fs), 0);
	if (fs.f_type != TMPFS_MAGIC) /* a tree on tmpfs proves nothing here */
		cr_assert_eq(vfu_client_dma_map(c, disk, 0, 0x30000, 4096, VFIO_USER_DMA_F_READ),
			     -EBADF);
	close(disk);
	cr_assert_eq(dev.maps, 1u);
	cr_assert_eq(vfu_client_dma_map(c, fd, 4096, 0x40000, 4096, VFIO_USER_DMA_F_WRITE), 0);
	cr_assert_eq(vfu_client_dma_unmap(c, 0x10000, 8192), 0);
	cr_assert_eq(dev.unmaps, 1u);
	cr_assert_eq(vfu_client_dma_unmap(c, 0x10000, 8192), -ENOENT);
	vfu_client_close(c);
	wait_disconnected();
	cr_assert_eq(dev.unmaps, 2u, "the window left mapped was not unmapped at disconnect");
	close(fd);
	close(pipefd[0]);
	close(pipefd[1]);
}

/* The connection's budget of mapped client memory: a window past it is
 * refused whole with ENOSPC, fd-less windows cost nothing, and unmapping
 * gives the budget back.  Large windows land 2 MiB-congruent to their
 * IOVA so an IOMMU can use blocks. */
Test(vfu_server, mapped_memory_is_bounded_per_client)
{
	struct vfu_client *c = client();
	uint64_t mib = 1 << 20;
	int fd;

	make_memfd(&fd, 16 * mib, 0x3c);
	cr_assert_eq(vfu_client_dma_map(c, fd, 0, 0x1000000 + 0x5000, 12 * mib,
					VFIO_USER_DMA_F_READ), 0);
	cr_assert_eq((uintptr_t)dev.last_map.host % (2 * mib), 0x5000u);
	cr_assert_eq(dev.first_byte, 0x3c);
	cr_assert_eq(vfu_server_dma_bytes(srv), 12 * mib);
	cr_assert_eq(vfu_client_dma_map(c, fd, 0, 0x4000000, 8 * mib, VFIO_USER_DMA_F_READ),
		     -ENOSPC);
	cr_assert_eq(dev.maps, 1u);
	cr_assert_eq(vfu_client_call(c, VFIO_USER_DMA_MAP,
				     &(struct vfio_user_dma_map){ 32, VFIO_USER_DMA_F_READ, 0,
								  0x8000000, 64 * mib },
				     32, NULL, 0, NULL, 0, NULL, NULL), 0, "no fd: not counted");
	cr_assert_eq(vfu_client_dma_map(c, fd, 0, 0x4000000, 4 * mib, VFIO_USER_DMA_F_READ), 0);
	cr_assert_eq(vfu_server_dma_bytes(srv), 16 * mib);
	cr_assert_eq(vfu_client_dma_unmap(c, 0x1000000 + 0x5000, 12 * mib), 0);
	cr_assert_eq(vfu_server_dma_bytes(srv), 4 * mib);
	cr_assert_eq(vfu_client_dma_map(c, fd, 0, 0x6000000, 8 * mib, VFIO_USER_DMA_F_READ), 0);
	vfu_client_close(c);
	wait_disconnected();
	cr_assert_eq(vfu_server_dma_bytes(srv), 0u);
	close(fd);
}

Test(vfu_server, reset_and_features_reach_the_device)
{
	struct vfu_client *c = client();
	struct vfio_user_device_feature get = { sizeof(get) + 8,
						VFIO_DEVICE_FEATURE_GET | 1 };
	struct {
		struct vfio_user_device_feature h;
		uint64_t flags;
	} reply;

	cr_assert_eq(vfu_client_reset(c), 0);
	cr_assert_eq(dev.resets, 1u);
	cr_assert_eq(vfu_client_call(c, VFIO_USER_DEVICE_FEATURE, &get, sizeof(get), NULL, 0,
				     &reply, sizeof(reply), NULL, NULL), (int)sizeof(reply));
	cr_assert_eq(reply.h.argsz, sizeof(reply));
	cr_assert_eq(reply.h.flags, get.flags);
	cr_assert_eq(reply.flags, (uint64_t)VFIO_MIGRATION_STOP_COPY);
	get.flags = VFIO_DEVICE_FEATURE_GET | 2;
	cr_assert_eq(vfu_client_call(c, VFIO_USER_DEVICE_FEATURE, &get, sizeof(get), NULL, 0,
				     NULL, 0, NULL, NULL), -ENOTTY);
	vfu_client_close(c);
}

/* Read the device's stream in 4 KiB asks: a short reply is its end. */
Test(vfu_server, migration_data_streams_both_ways)
{
	struct vfu_client *c = client();
	static uint8_t got[STREAM_LEN], reply[8 + 4096];
	struct vfio_user_mig_data rd = { sizeof(reply), 4096 }, *rep = (void *)reply;
	uint32_t total = 0;
	int n;

	do {
		n = vfu_client_call(c, VFIO_USER_MIG_DATA_READ, &rd, sizeof(rd), NULL, 0, reply,
				    sizeof(reply), NULL, NULL);
		cr_assert_geq(n, 8);
		cr_assert_eq(rep->argsz, (uint32_t)n);
		cr_assert_eq(rep->size, (uint32_t)n - 8);
		memcpy(got + total, rep->data, rep->size);
		total += rep->size;
	} while (rep->size == rd.size);
	cr_assert_eq(total, STREAM_LEN);
	cr_assert_eq(memcmp(got, dev.stream, STREAM_LEN), 0);

	struct {
		struct vfio_user_mig_data h;
		uint8_t data[3000];
	} wr = { { sizeof(wr), 3000 }, { 0 } };
	memcpy(wr.data, dev.stream + 5, 3000);
	cr_assert_eq(vfu_client_call(c, VFIO_USER_MIG_DATA_WRITE, &wr, sizeof(wr), NULL, 0, NULL,
				     0, NULL, NULL), 0);
	cr_assert_eq(dev.written_len, 3000u);
	cr_assert_eq(memcmp(dev.written, dev.stream + 5, 3000), 0);
	wr.h.size = 3001;  /* says more than it carries */
	cr_assert_eq(vfu_client_call(c, VFIO_USER_MIG_DATA_WRITE, &wr, sizeof(wr), NULL, 0, NULL,
				     0, NULL, NULL), -EINVAL);
	rd.size = VFU_SERVER_MAX_XFER + 1;
	cr_assert_eq(vfu_client_call(c, VFIO_USER_MIG_DATA_READ, &rd, sizeof(rd), NULL, 0, NULL,
				     0, NULL, NULL), -EINVAL);
	vfu_client_close(c);
}

/* More fds than the server takes: the command is refused, not run with
 * some of them, and the connection goes on. */
Test(vfu_server, too_many_fds_are_refused_whole)
{
	struct vfu_client *c = client();
	struct vfio_user_dma_map m = { sizeof(m), VFIO_USER_DMA_F_READ, 0, 0x10000, 4096 };
	struct vfio_user_header h = { 1000, VFIO_USER_DMA_MAP, sizeof(h) + sizeof(m), 0, 0 };
	union {
		char buf[CMSG_SPACE((VFU_MAX_FDS + 1) * sizeof(int))];
		struct cmsghdr align;
	} ctl;
	struct iovec iov[2] = { { &h, sizeof(h) }, { &m, sizeof(m) } };
	struct msghdr mh = { .msg_iov = iov, .msg_iovlen = 2, .msg_control = ctl.buf,
			     .msg_controllen = sizeof(ctl.buf) };
	struct cmsghdr *cm = CMSG_FIRSTHDR(&mh);
	int fds[VFU_MAX_FDS + 1], sock = vfu_client_socket(c);
	struct vfu_msg reply;
	uint8_t buf[64];

	make_memfd(&fds[0], 4096, 1);
	for (unsigned int i = 1; i <= VFU_MAX_FDS; i++)
		fds[i] = fds[0];
	cm->cmsg_level = SOL_SOCKET;
	cm->cmsg_type = SCM_RIGHTS;
	cm->cmsg_len = CMSG_LEN(sizeof(fds));
	memcpy(CMSG_DATA(cm), fds, sizeof(fds));
	cr_assert_eq(sendmsg(sock, &mh, 0), (ssize_t)(sizeof(h) + sizeof(m)));
	cr_assert_eq(vfu_msg_recv(sock, &reply, buf, sizeof(buf)), 0);
	cr_assert_eq(reply.hdr.msg_id, 1000);
	cr_assert(reply.hdr.flags & VFIO_USER_F_ERROR);
	cr_assert_eq(reply.hdr.error_no, (uint32_t)EINVAL);
	cr_assert_eq(dev.maps, 0u);
	cr_assert_eq(vfu_client_reset(c), 0);
	close(fds[0]);
	vfu_client_close(c);
}

Test(vfu_server, an_oversized_message_ends_the_connection_with_E2BIG)
{
	struct vfu_client *c = client();
	struct vfio_user_header h = { 7, VFIO_USER_REGION_WRITE, VFU_SERVER_MAX_MSG + 1, 0, 0 };
	int sock = vfu_client_socket(c);
	struct vfu_msg reply;
	uint8_t buf[64];

	cr_assert_eq(vfu_msg_send(sock, &h, NULL, 0, NULL, 0), 0);
	cr_assert_eq(vfu_msg_recv(sock, &reply, buf, sizeof(buf)), 0);
	cr_assert_eq(reply.hdr.error_no, (uint32_t)E2BIG);
	cr_assert_eq(vfu_msg_recv(sock, &reply, buf, sizeof(buf)), 1, "still open");
	vfu_client_close(c);
}

Test(vfu_server, one_client_at_a_time)
{
	struct vfu_client *c = client();
	int sv[2];

	cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	cr_assert_eq(vfu_server_attach(srv, sv[0]), -EBUSY);
	close(sv[1]);
	vfu_client_close(c);
	wait_disconnected();
	c = client();
	vfu_client_close(c);
}

TestSuite(vfu_server_bare, .init = setup_bare, .fini = teardown);

Test(vfu_server_bare, optional_ops_left_out_are_refused_as_documented)
{
	struct vfu_client *c = client();
	struct vfio_user_device_feature f = { sizeof(f), VFIO_DEVICE_FEATURE_PROBE | 1 };
	struct vfio_user_mig_data rd = { 16, 8 };
	struct vfu_iofd io[2];
	int fd;

	make_memfd(&fd, 4096, 0);
	cr_assert_eq(vfu_client_dma_map(c, fd, 0, 0x10000, 4096, VFIO_USER_DMA_F_READ), -ENOTSUP);
	cr_assert_eq(vfu_client_call(c, VFIO_USER_DMA_MAP,
				     &(struct vfio_user_dma_map){ 32, VFIO_USER_DMA_F_READ, 0,
								  0x10000, 4096 },
				     32, NULL, 0, NULL, 0, NULL, NULL), 0, "no fd: recorded");
	cr_assert_eq(vfu_client_reset(c), -ENOTTY);
	cr_assert_eq(vfu_client_region_io_fds(c, 0, io, 2), -ENOENT);
	cr_assert_eq(vfu_client_call(c, VFIO_USER_DEVICE_FEATURE, &f, sizeof(f), NULL, 0, NULL, 0,
				     NULL, NULL), -ENOSYS);
	cr_assert_eq(vfu_client_call(c, VFIO_USER_MIG_DATA_READ, &rd, sizeof(rd), NULL, 0, NULL, 0,
				     NULL, NULL), -ENOSYS);
	cr_assert_eq(vfu_client_call(c, VFIO_USER_MIG_DATA_WRITE, &rd, sizeof(rd), NULL, 0, NULL,
				     0, NULL, NULL), -ENOSYS);
	close(fd);
	vfu_client_close(c);
}

Test(vfu_server_bare, an_incomplete_ops_table_is_refused)
{
	struct vfu_dev_ops ops = bare_ops;
	struct vfu_server_cfg cfg = { .name = "bad", .ops = &ops, .dev = &dev };

	ops.region_read = NULL;
	cr_assert_null(vfu_server_create(&cfg));
	cr_assert_eq(errno, EINVAL);
	ops = bare_ops;
	ops.version = VFU_DEV_OPS_VERSION + 1;
	cr_assert_null(vfu_server_create(&cfg));
	ops = bare_ops;
	ops.dma_map = rd_dma_map;  /* map without unmap */
	cr_assert_null(vfu_server_create(&cfg));
}

/* ---- the VERSION codec ---- */

static int decode_json(const char *json, struct vfu_caps *caps)
{
	uint8_t buf[512];
	struct vfio_user_version *v = (void *)buf;
	uint16_t major, minor;
	size_t n = strlen(json) + 1;

	v->major = 0;
	v->minor = 1;
	memcpy(v->data, json, n);
	vfu_caps_default(caps);
	return vfu_version_decode(buf, (uint32_t)(sizeof(*v) + n), &major, &minor, caps);
}

Test(vfu_caps, encode_then_decode_round_trips)
{
	struct vfu_caps in = { 7, 65536, 99, 4096 | (2u << 20) }, out;
	uint8_t buf[256];
	uint16_t major, minor;
	int n = vfu_version_encode(buf, sizeof(buf), 0, 1, &in);

	cr_assert_gt(n, 4);
	cr_assert_eq(buf[n - 1], '\0');
	vfu_caps_default(&out);
	cr_assert_eq(vfu_version_decode(buf, (uint32_t)n, &major, &minor, &out), 0);
	cr_assert_eq(major, 0);
	cr_assert_eq(minor, 1);
	cr_assert_eq(out.max_fds, in.max_fds);
	cr_assert_eq(out.max_xfer, in.max_xfer);
	cr_assert_eq(out.max_dma_maps, in.max_dma_maps);
	cr_assert_eq(out.pgsizes, in.pgsizes);
	cr_assert_eq(vfu_version_encode(buf, 40, 0, 1, &in), -ENOSPC);
}

Test(vfu_caps, absent_capabilities_keep_the_specs_defaults)
{
	struct vfu_caps c;

	cr_assert_eq(decode_json("{\"capabilities\":{\"max_msg_fds\":3,\"migration\":{}}}", &c), 0);
	cr_assert_eq(c.max_fds, 3u);
	cr_assert_eq(c.max_xfer, VFIO_USER_DEFAULT_MAX_XFER);
	cr_assert_eq(decode_json("{}", &c), 0);
	cr_assert_eq(c.max_fds, VFIO_USER_DEFAULT_MAX_FDS);
}

Test(vfu_caps, malformed_capabilities_are_refused)
{
	static const char *const bad[] = {
		"[]", "{\"capabilities\":5}", "{\"capabilities\":{\"max_msg_fds\":0}}",
		"{\"capabilities\":{\"max_msg_fds\":\"16\"}}",
		"{\"capabilities\":{\"max_data_xfer_size\":4294967296}}",
		"{\"capabilities\":{\"pgsizes\":-4096}}", "{\"capabilities\":", "",
	};
	struct vfu_caps c;
	uint8_t unterminated[8] = { 0, 0, 1, 0, '{', '}', ' ', ' ' };
	uint16_t major, minor;

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		cr_assert_eq(decode_json(bad[i], &c), -EINVAL, "%s", bad[i]);
	cr_assert_eq(vfu_version_decode(unterminated, sizeof(unterminated), &major, &minor, &c),
		     -EINVAL);
	cr_assert_eq(vfu_version_decode(unterminated, 3, &major, &minor, &c), -EINVAL);
}
