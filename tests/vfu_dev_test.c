// SPDX-License-Identifier: MIT
/*
 * The vfio-user server's device commands against a real sim GPU, IOMMU
 * domain and vGPU, through the client library over a socketpair: device,
 * region and irq info, config space, BAR access, DMA map/unmap feeding the
 * IOMMU, eventfds, reset, and a queue driven end to end in-process.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <poll.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include "gpup/drv/drv.h"
#include "gpup/gpu/gpu.h"
#include "gpup/vgpu/vgpu.h"
#include "vfu/vfu.h"
#include "iommu/iommu.h"

#define MIB (1ull << 20)
#define VRAM_OFF (16 * MIB)
#define VRAM_SIZE (16 * MIB)

static struct gpup_gpu *gpu;
static struct iommu_domain *dom;
static struct vgpu *vg;
static struct vfu_server *srv;
static struct vfu_client *cl;

static void setup(void)
{
	struct gpup_gpu_cfg gc = { .index = 0, .vram_size = 64 * MIB, .ncompute = 1, .ncopy = 1 };
	struct iommu_domain_cfg dc = { .name = "t" };
	int sv[2], err = 0;

	gpu = gpup_sim_gpu_create(&gc);
	cr_assert_not_null(gpu);
	dom = iommu_domain_create(&dc);
	cr_assert_not_null(dom);
	struct vgpu_cfg vc = { .gpu = gpu, .vram_offset = VRAM_OFF, .vram_size = VRAM_SIZE,
			       .iommu = dom, .name = "t" };
	vg = vgpu_create(&vc);
	cr_assert_not_null(vg);
	srv = vgpu_serve(vg, NULL, NULL);
	cr_assert_not_null(srv);
	cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	cr_assert_eq(vfu_server_attach(srv, sv[0]), 0);
	cl = vfu_client_open_fd(sv[1], &err);
	cr_assert_not_null(cl, "negotiation: %s", strerror(-err));
}

static void teardown(void)
{
	vfu_client_close(cl);
	vfu_server_destroy(srv);
	vgpu_destroy(vg);
	iommu_domain_destroy(dom);
	gpup_gpu_destroy(gpu);
}

TestSuite(vfu_dev, .init = setup, .fini = teardown, .timeout = 30);

Test(vfu_dev, version_caps)
{
	cr_assert_eq(vfu_client_max_xfer(cl), VFU_SERVER_MAX_XFER);
	cr_assert_eq(vfu_client_max_fds(cl), VFU_MAX_FDS);
	cr_assert(vfu_server_connected(srv));
}

Test(vfu_dev, device_and_irq_info)
{
	struct vfio_user_device_info di;
	struct vfio_irq_info ii;

	cr_assert_eq(vfu_client_device_info(cl, &di), 0);
	cr_assert_eq(di.argsz, 16);
	cr_assert_eq(di.flags, VFIO_DEVICE_FLAGS_RESET | VFIO_DEVICE_FLAGS_PCI);
	cr_assert_eq(di.num_regions, VFIO_PCI_NUM_REGIONS);
	cr_assert_eq(di.num_irqs, VFIO_PCI_NUM_IRQS);
	cr_assert_eq(vfu_client_irq_info(cl, VFIO_PCI_MSIX_IRQ_INDEX, &ii), 0);
	cr_assert_eq(ii.count, GPUP_MSIX_VECTORS);
	cr_assert_eq(ii.flags, VFIO_IRQ_INFO_EVENTFD | VFIO_IRQ_INFO_NORESIZE);
	cr_assert_eq(vfu_client_irq_info(cl, VFIO_PCI_INTX_IRQ_INDEX, &ii), 0);
	cr_assert_eq(ii.count, 0);
	cr_assert_eq(vfu_client_irq_info(cl, VFIO_PCI_NUM_IRQS, &ii), -EINVAL);
}

/* The error index has one vector, as vfio-pci's for a PCIe function: an
 * eventfd connects to it, a trigger signals it, count 0 disconnects it. */
Test(vfu_dev, error_irq_index_has_one_vector)
{
	struct vfio_irq_set trig = {
		.argsz = sizeof(trig), .flags = VFIO_IRQ_SET_DATA_NONE | VFIO_IRQ_SET_ACTION_TRIGGER,
		.index = VFIO_PCI_ERR_IRQ_INDEX, .start = 0, .count = 1,
	};
	struct vfio_irq_info ii;
	int efd = eventfd(0, EFD_NONBLOCK);
	uint64_t v = 0;

	cr_assert_eq(vfu_client_irq_info(cl, VFIO_PCI_ERR_IRQ_INDEX, &ii), 0);
	cr_assert_eq(ii.count, 1);
	cr_assert_eq(ii.flags, VFIO_IRQ_INFO_EVENTFD);
	cr_assert_eq(vfu_client_set_irqs(cl, VFIO_PCI_ERR_IRQ_INDEX, 0, 1, &efd), 0);
	cr_assert_eq(vfu_client_set_irqs(cl, VFIO_PCI_ERR_IRQ_INDEX, 1, 1, &efd), -EINVAL);
	cr_assert_eq(vfu_client_call(cl, VFIO_USER_DEVICE_SET_IRQS, &trig, sizeof(trig), NULL, 0,
				     NULL, 0, NULL, NULL), 0);
	cr_assert_eq(read(efd, &v, 8), 8, "a trigger signals the error eventfd");
	cr_assert_eq(v, 1);
	cr_assert_eq(vfu_client_set_irqs(cl, VFIO_PCI_ERR_IRQ_INDEX, 0, 1, NULL), 0);
	cr_assert_eq(vfu_client_call(cl, VFIO_USER_DEVICE_SET_IRQS, &trig, sizeof(trig), NULL, 0,
				     NULL, 0, NULL, NULL), 0);
	cr_assert_eq(read(efd, &v, 8), -1, "disconnected");
	/* The MSI-X vectors are untouched by the error index. */
	cr_assert_eq(vfu_client_irq_info(cl, VFIO_PCI_MSIX_IRQ_INDEX, &ii), 0);
	cr_assert_eq(ii.count, GPUP_MSIX_VECTORS);
	close(efd);
}

Test(vfu_dev, region_info_and_bar2_mmap)
{
	struct vfio_region_info ri;
	uint8_t buf[8];
	uint8_t *map;
	int fd;

	cr_assert_eq(vfu_client_region_info(cl, VFIO_PCI_CONFIG_REGION_INDEX, &ri, &fd), 0);
	cr_assert_eq(ri.size, GPUP_PCI_CFG_SIZE);
	cr_assert_eq(fd, -1);
	cr_assert_eq(vfu_client_region_info(cl, VFIO_PCI_BAR0_REGION_INDEX, &ri, &fd), 0);
	cr_assert_eq(ri.size, GPUP_BAR0_SIZE);
	cr_assert_eq(ri.flags, VFIO_REGION_INFO_FLAG_READ | VFIO_REGION_INFO_FLAG_WRITE);
	cr_assert_eq(vfu_client_region_info(cl, VFIO_PCI_BAR4_REGION_INDEX, &ri, &fd), 0);
	cr_assert_eq(ri.size, 0);
	cr_assert_eq(ri.flags, 0);
	cr_assert_eq(vfu_client_region_info(cl, VFIO_PCI_NUM_REGIONS, &ri, &fd), -EINVAL);
	cr_assert_eq(vfu_client_region_info(cl, VFIO_PCI_BAR2_REGION_INDEX, &ri, &fd), 0);
	cr_assert_eq(ri.size, VRAM_SIZE);
	cr_assert(ri.flags & VFIO_REGION_INFO_FLAG_MMAP);
	cr_assert_geq(fd, 0);
	map = mmap(NULL, ri.size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, (off_t)ri.offset);
	cr_assert_neq(map, MAP_FAILED);
	/* The mapping is the partition's slice: what the daemon sees. */
	memcpy(map + 4096, "partslce", 8);
	cr_assert_eq(memcmp((uint8_t *)gpup_gpu_vram_map(gpu) + VRAM_OFF + 4096, "partslce", 8), 0);
	cr_assert_eq(vfu_client_region_read(cl, VFIO_PCI_BAR2_REGION_INDEX, 4096, buf, 8), 0);
	cr_assert_eq(memcmp(buf, "partslce", 8), 0);
	cr_assert_eq(vfu_client_region_write(cl, VFIO_PCI_BAR2_REGION_INDEX, VRAM_SIZE - 8,
					 "lastbyte", 8), 0);
	cr_assert_eq(memcmp(map + VRAM_SIZE - 8, "lastbyte", 8), 0);
	munmap(map, ri.size);
	close(fd);
}

static uint32_t cfg32(uint32_t off)
{
	uint32_t v = 0;

	cr_assert_eq(vfu_client_region_read(cl, VFIO_PCI_CONFIG_REGION_INDEX, off, &v, 4), 0);
	return v;
}

static void cfg_write32(uint32_t off, uint32_t v)
{
	cr_assert_eq(vfu_client_region_write(cl, VFIO_PCI_CONFIG_REGION_INDEX, off, &v, 4), 0);
}

Test(vfu_dev, config_space)
{
	cr_assert_eq(cfg32(0x00), GPUP_PCI_DEVICE_ID << 16 | GPUP_PCI_VENDOR_ID);
	cr_assert_eq(cfg32(0x08), GPUP_PCI_CLASS << 8 | GPUP_PCI_REVISION);
	cr_assert_eq(cfg32(0x34) & 0xff, 0x40);
	/* MSI-X: id 0x11, N-1 vectors, table and PBA in BAR0. */
	cr_assert_eq(cfg32(0x40), (GPUP_MSIX_VECTORS - 1) << 16 | 0x11);
	cr_assert_eq(cfg32(0x44), GPUP_PAGE_MSIX_TABLE);
	cr_assert_eq(cfg32(0x48), GPUP_PAGE_MSIX_PBA);
	/* BAR sizing. */
	cfg_write32(0x10, 0xffffffff);
	cr_assert_eq(cfg32(0x10), ~(GPUP_BAR0_SIZE - 1));
	cfg_write32(0x18, 0xffffffff);
	cfg_write32(0x1c, 0xffffffff);
	cr_assert_eq(cfg32(0x18), (uint32_t)~(VRAM_SIZE - 1) | 0xc);
	cr_assert_eq(cfg32(0x1c), 0xffffffff);
	cfg_write32(0x18, 0x80000000);
	cr_assert_eq(cfg32(0x18), 0x8000000c);
	/* Read-only identity stays. */
	cfg_write32(0x00, 0);
	cr_assert_eq(cfg32(0x00), GPUP_PCI_DEVICE_ID << 16 | GPUP_PCI_VENDOR_ID);
	/* MSI-X enable is writable, the table size is not. */
	cfg_write32(0x40, 0xffffffff);
	cr_assert_eq(cfg32(0x40), (0xc000u | (GPUP_MSIX_VECTORS - 1)) << 16 | 0x11);
}

Test(vfu_dev, bar0_registers_and_reset)
{
	uint32_t v = 0;

	cr_assert_eq(gpup_vg_reg_write(&(struct gpup_vg){ .c = cl }, GPUP_REG_SCRATCH,
				       0x5a5a1234), 0);
	cr_assert_eq(vfu_client_region_read(cl, VFIO_PCI_BAR0_REGION_INDEX, GPUP_REG_ID, &v, 4), 0);
	cr_assert_eq(v, GPUP_ID_MAGIC);
	cr_assert_eq(vfu_client_region_read(cl, VFIO_PCI_BAR0_REGION_INDEX, GPUP_REG_VRAM_SIZE_LO,
					&v, 4), 0);
	cr_assert_eq(v, (uint32_t)VRAM_SIZE);
	cr_assert_eq(vfu_client_region_read(cl, VFIO_PCI_BAR0_REGION_INDEX, GPUP_REG_SCRATCH, &v, 4),
		     0);
	cr_assert_eq(v, 0x5a5a1234);
	cr_assert_eq(vfu_client_reset(cl), 0);
	cr_assert_eq(vfu_client_region_read(cl, VFIO_PCI_BAR0_REGION_INDEX, GPUP_REG_SCRATCH, &v, 4),
		     0);
	cr_assert_eq(v, 0);
	/* Sub-register and unaligned accesses, as a VMM forwards a guest's
	 * byte and word loads and stores (QEMU's vfio-user client does). */
	uint16_t w = 0;
	uint8_t b = 0x77;

	cr_assert_eq(vfu_client_region_read(cl, VFIO_PCI_BAR0_REGION_INDEX, 2, &v, 4), 0);
	cr_assert_eq(v, (GPUP_ID_MAGIC >> 16) | ((GPUP_ABI_VERSION & 0xffffu) << 16));
	cr_assert_eq(vfu_client_region_read(cl, VFIO_PCI_BAR0_REGION_INDEX, GPUP_REG_ID + 2, &w, 2),
		     0);
	cr_assert_eq(w, GPUP_ID_MAGIC >> 16);
	cr_assert_eq(vfu_client_region_write(cl, VFIO_PCI_BAR0_REGION_INDEX, GPUP_REG_SCRATCH + 1,
					     &b, 1), 0);
	cr_assert_eq(vfu_client_region_read(cl, VFIO_PCI_BAR0_REGION_INDEX, GPUP_REG_SCRATCH, &v, 4),
		     0);
	cr_assert_eq(v, 0x7700);
	cr_assert_eq(vfu_client_region_read(cl, VFIO_PCI_BAR0_REGION_INDEX, GPUP_BAR0_SIZE - 2, &v,
					    4), -EINVAL, "past the BAR");
}

static int ram_fd(uint64_t size, uint8_t **map)
{
	int fd = memfd_create("t", MFD_CLOEXEC);

	cr_assert_geq(fd, 0);
	cr_assert_eq(ftruncate(fd, (off_t)size), 0);
	*map = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	cr_assert_neq(*map, MAP_FAILED);
	return fd;
}

Test(vfu_dev, dma_map_feeds_iommu)
{
	uint8_t *ram, got[4];
	int fd = ram_fd(8 * 4096, &ram);

	memcpy(ram + 4096 + 12, "dma!", 4);
	cr_assert_eq(vfu_client_dma_map(cl, fd, 4096, 0x10000, 4 * 4096, VFIO_USER_DMA_F_READ), 0);
	cr_assert_eq(iommu_dma_read(dom, 0x10000 + 12, got, 4), 0);
	cr_assert_eq(memcmp(got, "dma!", 4), 0);
	cr_assert_eq(iommu_dma_write(dom, 0x10000, "x", 1), -EACCES, "read-only mapping");
	cr_assert_eq(vfu_client_dma_unmap(cl, 0x10000, 4096), -ENOENT, "must match a whole map");
	cr_assert_eq(vfu_client_dma_unmap(cl, 0x10000, 4 * 4096), 0);
	cr_assert_eq(iommu_dma_read(dom, 0x10000 + 12, got, 4), -EFAULT);
	cr_assert_eq(vfu_client_dma_unmap(cl, 0x10000, 4 * 4096), -ENOENT);
	munmap(ram, 8 * 4096);
	close(fd);
}

Test(vfu_dev, dma_unmap_all_and_disconnect_cleanup)
{
	struct vfio_user_dma_unmap all = { .argsz = sizeof(all), .flags = VFIO_DMA_UNMAP_FLAG_ALL };
	uint8_t *ram, b;
	int fd = ram_fd(4 * 4096, &ram);

	cr_assert_eq(vfu_client_dma_map(cl, fd, 0, 0x0, 4096, VFIO_USER_DMA_F_READ), 0);
	cr_assert_eq(vfu_client_dma_map(cl, fd, 4096, 0x8000, 4096, VFIO_USER_DMA_F_READ), 0);
	cr_assert_eq(vfu_client_call(cl, VFIO_USER_DMA_UNMAP, &all, sizeof(all), NULL, 0, NULL, 0,
				 NULL, NULL), (int)sizeof(all));
	cr_assert_eq(iommu_dma_read(dom, 0x8000, &b, 1), -EFAULT);
	cr_assert_eq(vfu_client_dma_map(cl, fd, 0, 0x0, 4096, VFIO_USER_DMA_F_READ), 0);
	vfu_client_close(cl);
	cl = NULL;
	for (int i = 0; i < 200 && !vfu_server_idle(srv); i++)
		usleep(10000);
	cr_assert(vfu_server_idle(srv), "the last client's teardown never ended");
	cr_assert_eq(iommu_dma_read(dom, 0x0, &b, 1), -EFAULT, "client gone, mapping gone");
	munmap(ram, 4 * 4096);
	close(fd);
}

Test(vfu_dev, irqs_eventfds_and_trigger)
{
	struct vfio_irq_set trig = {
		.argsz = sizeof(trig), .flags = VFIO_IRQ_SET_DATA_NONE | VFIO_IRQ_SET_ACTION_TRIGGER,
		.index = VFIO_PCI_MSIX_IRQ_INDEX, .start = 3, .count = 1,
	};
	int efd[2] = { eventfd(0, EFD_NONBLOCK), eventfd(0, EFD_NONBLOCK) }, p[2];
	uint64_t v = 0;

	cr_assert_eq(pipe(p), 0);
	cr_assert_eq(vfu_client_set_irqs(cl, VFIO_PCI_MSIX_IRQ_INDEX, 2, 2, efd), 0);
	cr_assert_eq(vfu_client_call(cl, VFIO_USER_DEVICE_SET_IRQS, &trig, sizeof(trig), NULL, 0,
				 NULL, 0, NULL, NULL), 0);
	cr_assert_eq(read(efd[1], &v, 8), 8, "vector 3 fired");
	cr_assert_eq(v, 1);
	cr_assert_eq(read(efd[0], &v, 8), -1, "vector 2 did not");
	cr_assert_eq(vfu_client_set_irqs(cl, VFIO_PCI_MSIX_IRQ_INDEX, 0, 1, &p[1]), -EBADF);
	cr_assert_eq(vfu_client_set_irqs(cl, VFIO_PCI_MSIX_IRQ_INDEX, 8, 2, efd), -EINVAL);
	cr_assert_eq(vfu_client_set_irqs(cl, VFIO_PCI_MSI_IRQ_INDEX, 0, 1, efd), -EINVAL);
	/* Disconnect vector 3: a trigger then signals nothing. */
	cr_assert_eq(vfu_client_set_irqs(cl, VFIO_PCI_MSIX_IRQ_INDEX, 3, 1, NULL), 0);
	cr_assert_eq(vfu_client_call(cl, VFIO_USER_DEVICE_SET_IRQS, &trig, sizeof(trig), NULL, 0,
				 NULL, 0, NULL, NULL), 0);
	cr_assert_eq(read(efd[1], &v, 8), -1);
	close(efd[0]);
	close(efd[1]);
	close(p[0]);
	close(p[1]);
}

Test(vfu_dev, region_io_fds_are_doorbells)
{
	struct vfu_iofd io[GPUP_MAX_QUEUES + 1];
	int n = vfu_client_region_io_fds(cl, VFIO_PCI_BAR0_REGION_INDEX, io, GPUP_MAX_QUEUES + 1);

	cr_assert_eq(n, GPUP_MAX_QUEUES);
	for (int q = 0; q < n; q++) {
		cr_assert_eq(io[q].offset, GPUP_DOORBELL(q));
		cr_assert_eq(io[q].size, 4);
		cr_assert_eq(io[q].type, VFIO_USER_IO_FD_TYPE_IOEVENTFD);
		close(io[q].fd);
	}
	cr_assert_eq(vfu_client_region_io_fds(cl, VFIO_PCI_BAR2_REGION_INDEX, io, 1), -ENOENT,
		     "the spec: a reply has at least one fd, so none is an error");
}

/* A queue driven end to end in-process: FILL VRAM, COPY to guest RAM,
 * FENCE with interrupt. */
Test(vfu_dev, queue_fill_copy_fence)
{
	struct gpup_vg g;
	union gpup_cmd c[2];
	uint32_t *out;

	cr_assert_eq(gpup_vg_open(&g, cl, 4 * MIB), 0);
	cr_assert_eq(g.vram_size, VRAM_SIZE);
	cr_assert_eq(gpup_vg_queue_setup(&g, 1, GPUP_ENGINE_COPY), 0);
	c[0] = gpup_cmd_fill(GPUP_SPACE_VRAM, 8192, 4096, 0xdeadbeef);
	c[1] = gpup_cmd_copy(GPUP_SPACE_VRAM, 8192, GPUP_SPACE_IOVA,
			    gpup_vg_iova(GPUP_VG_DATA_OFF), 4096);
	cr_assert_eq(gpup_vg_submit(&g, 1, c, 2), 0);
	cr_assert_eq(gpup_vg_fence_wait(&g, 1, 5000, NULL), 0);
	out = (uint32_t *)(g.ram + GPUP_VG_DATA_OFF);
	for (int i = 0; i < 1024; i++)
		cr_assert_eq(out[i], 0xdeadbeef, "word %d", i);
	cr_assert_eq(out[1024], 0, "nothing past the copy");
	gpup_vg_close(&g);
}

Test(vfu_dev, dma_memfd_sealed_against_shrinking)
{
	int fd = memfd_create("t", MFD_CLOEXEC | MFD_ALLOW_SEALING);

	cr_assert_eq(ftruncate(fd, 8192), 0);
	cr_assert_eq(vfu_client_dma_map(cl, fd, 0, 0x20000, 8192, VFIO_USER_DMA_F_READ), 0);
	cr_assert_eq(ftruncate(fd, 4096), -1, "the device still maps it");
	cr_assert_eq(errno, EPERM);
	cr_assert_eq(ftruncate(fd, 16384), 0, "growing is fine");
	close(fd);
}

/* A trapped doorbell (REGION_WRITE to the doorbell page, what a VMM does
 * without ioeventfds) works as well as the eventfd. */
Test(vfu_dev, doorbell_by_region_write)
{
	struct gpup_vg g;
	union gpup_cmd c;
	uint32_t one = 1, ci = 0;
	uint64_t v = 0;

	cr_assert_eq(gpup_vg_open(&g, cl, 2 * MIB), 0);
	cr_assert_eq(gpup_vg_queue_setup(&g, 3, GPUP_ENGINE_COPY), 0);
	c = gpup_cmd_fill(GPUP_SPACE_IOVA, gpup_vg_iova(GPUP_VG_DATA_OFF), 64, 0x11223344);
	memcpy(g.ram + 3 * (uint64_t)GPUP_VG_RING_BYTES, &c, sizeof(c));
	*(volatile uint32_t *)(g.ram + GPUP_VG_PI_OFF + 3 * 8) = 1;
	cr_assert_eq(vfu_client_region_write(cl, VFIO_PCI_BAR0_REGION_INDEX, GPUP_DOORBELL(3), &one,
					 4), 0);
	for (int i = 0; i < 500 && ci != 1; i++) {
		usleep(2000);
		cr_assert_eq(gpup_vg_reg_read(&g, GPUP_REG_QUEUE(3) + GPUP_Q_CI, &ci), 0);
	}
	cr_assert_eq(ci, 1);
	memcpy(&v, g.ram + GPUP_VG_DATA_OFF + 56, 8);
	cr_assert_eq(v, 0x1122334411223344ull);
	gpup_vg_close(&g);
}
