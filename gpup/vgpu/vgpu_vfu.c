// SPDX-License-Identifier: MIT
/*
 * The vGPU as a vfio-user device: its implementation of vfu/'s device ops.
 * Regions: PCI config space (pci_cfg.c), BAR0 (registers and doorbells,
 * through vgpu_bar0_*), BAR2 (the partition's VRAM, mappable from its own
 * sealed file); every other VFIO PCI region has size 0.
 * BAR0's doorbells have ioeventfds, MSI-X vectors take eventfds, and the
 * client's DMA windows go into the partition's IOMMU domain, the only way
 * engines reach guest memory: a window sent with an fd as host memory, one
 * sent without as a remote mapping, which the IOMMU reaches through the
 * server's DMA_READ / DMA_WRITE channel (vgpu_remote_ops below).
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "gpup/gpu/gpu.h"
#include "gpup/vgpu/vgpu_int.h"
#include "iommu/iommu.h"
#include "vfu/vfu.h"

static void vfu_device_info(void *dev, struct vfio_user_device_info *info)
{
	(void)dev;
	info->flags = VFIO_DEVICE_FLAGS_RESET | VFIO_DEVICE_FLAGS_PCI;
	info->num_regions = VFIO_PCI_NUM_REGIONS;
	info->num_irqs = VFIO_PCI_NUM_IRQS;
}

static uint64_t region_size(const struct vgpu *v, uint32_t index)
{
	switch (index) {
	case VFIO_PCI_CONFIG_REGION_INDEX:
		return GPUP_PCI_CFG_SIZE;
	case VFIO_PCI_BAR0_REGION_INDEX:
		return GPUP_BAR0_SIZE;
	case VFIO_PCI_BAR2_REGION_INDEX:
		return v->vram_size;
	default:
		return 0;
	}
}

/* BAR2's fd is the partition's own VRAM file, exactly its size and
 * sealed against resizing: mapped from offset 0 it reaches the partition's
 * VRAM and nothing else. */
static int vfu_region_info(void *dev, uint32_t index, struct vfio_region_info *info, int *fd)
{
	struct vgpu *v = dev;

	info->size = region_size(v, index);
	if (info->size)
		info->flags = VFIO_REGION_INFO_FLAG_READ | VFIO_REGION_INFO_FLAG_WRITE;
	if (index != VFIO_PCI_BAR2_REGION_INDEX)
		return 0;
	pthread_rwlock_rdlock(&v->home_lock);
	*fd = gpup_gpu_vram_fd(v->gpu, v->vram_offset);
	pthread_rwlock_unlock(&v->home_lock);
	if (*fd < 0)
		return *fd;
	info->flags |= VFIO_REGION_INFO_FLAG_MMAP;
	info->offset = 0;
	return 0;
}

static int vfu_region_read(void *dev, uint32_t index, uint64_t off, void *buf, uint32_t len)
{
	struct vgpu *v = dev;

	switch (index) {
	case VFIO_PCI_CONFIG_REGION_INDEX:
		return gpup_pci_cfg_read(&v->pci, off, buf, len);
	case VFIO_PCI_BAR0_REGION_INDEX:
		return vgpu_bar0_read(v, off, buf, len);
	case VFIO_PCI_BAR2_REGION_INDEX:
		/* The server bounded it by vram_size; the client cannot shrink
		 * the file under it (sealed), so this cannot fault. */
		pthread_rwlock_rdlock(&v->home_lock);
		memcpy(buf, v->vram + off, len);
		pthread_rwlock_unlock(&v->home_lock);
		return 0;
	default:
		return -EINVAL;
	}
}

static int vfu_region_write(void *dev, uint32_t index, uint64_t off, const void *buf,
			    uint32_t len)
{
	struct vgpu *v = dev;

	switch (index) {
	case VFIO_PCI_CONFIG_REGION_INDEX:
		return gpup_pci_cfg_write(&v->pci, off, buf, len);
	case VFIO_PCI_BAR0_REGION_INDEX:
		return vgpu_bar0_write(v, off, buf, len);
	case VFIO_PCI_BAR2_REGION_INDEX:
		pthread_rwlock_rdlock(&v->home_lock);
		memcpy(v->vram + off, buf, len);
		pthread_rwlock_unlock(&v->home_lock);
		vgpu_vram_written(v, off, len);
		return 0;
	default:
		return -EINVAL;
	}
}

/* One ioeventfd per queue's doorbell, so a VMM's KVM signals the engine
 * without a trip through the VMM or this socket. */
static int vfu_region_io_fds(void *dev, uint32_t index, struct vfu_iofd *out,
			     unsigned int max)
{
	struct vgpu *v = dev;

	if (index != VFIO_PCI_BAR0_REGION_INDEX)
		return 0;
	vgpu_set_doorbell_fds_out(v, true);
	for (unsigned int q = 0; q < GPUP_MAX_QUEUES && q < max; q++) {
		int fd = vgpu_doorbell_fd(v, q);

		if (fd < 0)
			return fd;
		out[q] = (struct vfu_iofd){ .offset = GPUP_DOORBELL(q), .size = 4,
					    .type = VFIO_USER_IO_FD_TYPE_IOEVENTFD, .fd = fd };
	}
	return GPUP_MAX_QUEUES;
}

/* The error index has one vector, as vfio-pci gives a PCIe function: a
 * VMM connects an eventfd to it (QEMU warns it cannot enable error
 * recovery otherwise) and the server keeps that eventfd, which a
 * SET_IRQS trigger signals.  The vGPU itself never signals it: its errors
 * reach the guest in band (the fault log, STATUS.LOST), which a guest
 * driver recovers from, where QEMU answers an error event by stopping the
 * whole VM. */
static void vfu_irq_info(void *dev, uint32_t index, struct vfio_irq_info *info)
{
	(void)dev;
	if (index == VFIO_PCI_MSIX_IRQ_INDEX) {
		info->flags = VFIO_IRQ_INFO_EVENTFD | VFIO_IRQ_INFO_NORESIZE;
		info->count = GPUP_MSIX_VECTORS;
	} else if (index == VFIO_PCI_ERR_IRQ_INDEX) {
		info->flags = VFIO_IRQ_INFO_EVENTFD;
		info->count = 1;
	}
}

static int vfu_irq_set_fd(void *dev, uint32_t index, uint32_t vec, int fd)
{
	if (index == VFIO_PCI_ERR_IRQ_INDEX && vec == 0)
		return 0;  /* the server's copy is all it needs */
	if (index != VFIO_PCI_MSIX_IRQ_INDEX)
		return -EINVAL;
	return vgpu_set_irq_fd(dev, vec, fd);
}

/* A vfio-user DEVICE_RESET is the migration state machine's way out of
 * ERROR too, so it goes through it: registers, queues and VRAM back to
 * power-on, any stream dropped (a guest's own CONTROL.RESET keeps VRAM). */
static void vfu_reset(void *dev)
{
	vgpu_device_reset(dev);
}

static int vfu_feature(void *dev, uint32_t flags, const void *in, uint32_t in_len, void *out,
		       uint32_t out_max)
{
	return vgpu_mig_feature(dev, flags, in, in_len, out, out_max);
}

static int vfu_mig_read(void *dev, void *buf, uint32_t len)
{
	return vgpu_mig_read(dev, buf, len);
}

static int vfu_mig_readv(void *dev, uint32_t len, struct iovec *iov, unsigned int max,
			 unsigned int *niov)
{
	return vgpu_mig_readv(dev, len, iov, max, niov);
}

static void vfu_mig_ahead(void *dev, uint32_t len, void (*pump)(void *), void *pump_arg)
{
	vgpu_mig_ahead(dev, len, pump, pump_arg);
}

static int vfu_mig_write(void *dev, const void *buf, uint32_t len)
{
	return vgpu_mig_write(dev, buf, len);
}

static void vfu_client_gone(void *dev)
{
	vgpu_set_doorbell_fds_out(dev, false);
	vgpu_mig_client_gone(dev);
}

static int vfu_dma_map(void *dev, const struct vfu_dma_region *r)
{
	struct vgpu *v = dev;
	unsigned int prot = 0;

	if (r->prot & VFIO_USER_DMA_F_READ)
		prot |= IOMMU_READ;
	if (r->prot & VFIO_USER_DMA_F_WRITE)
		prot |= IOMMU_WRITE;
	return iommu_map(v->iommu, r->iova, r->host, r->size, prot);
}

/* iommu_unmap waits for the engines' DMAs in flight to the window. */
static int vfu_dma_unmap(void *dev, const struct vfu_dma_region *r)
{
	struct vgpu *v = dev;

	return iommu_unmap(v->iommu, r->iova, r->size);
}

static unsigned int iommu_prot(uint32_t prot)
{
	return (prot & VFIO_USER_DMA_F_READ ? IOMMU_READ : 0) |
	       (prot & VFIO_USER_DMA_F_WRITE ? IOMMU_WRITE : 0);
}

static int vfu_dma_map_remote(void *dev, const struct vfu_dma_region *r)
{
	struct vgpu *v = dev;

	return iommu_map_remote(v->iommu, r->iova, r->size, iommu_prot(r->prot));
}

static int vfu_dma_unmap_remote(void *dev, const struct vfu_dma_region *r)
{
	struct vgpu *v = dev;

	return iommu_unmap(v->iommu, r->iova, r->size);
}

/* The IOMMU's way to the client's fd-less memory.  On an engine the wait
 * gives way to the engine's other contexts (gpup_engine_contended). */
static bool engine_wanted(void *arg)
{
	(void)arg;
	return gpup_engine_contended();
}

static int remote_xfer(void *opaque, uint64_t iova, void *buf, size_t len, unsigned int access)
{
	struct vgpu *v = opaque;
	int rc = vfu_dma_chan_rw(v->chan, iova, buf, len, access == IOMMU_WRITE,
				 vgpu_remote_deadline(), engine_wanted, NULL);

	vgpu_remote_done(rc);
	return rc;
}

const struct iommu_remote_ops vgpu_remote_ops = {
	.xfer = remote_xfer,
};

const struct vfu_dev_ops vgpu_vfu_ops = {
	.version = VFU_DEV_OPS_VERSION,
	.device_info = vfu_device_info,
	.region_info = vfu_region_info,
	.region_read = vfu_region_read,
	.region_write = vfu_region_write,
	.region_io_fds = vfu_region_io_fds,
	.irq_info = vfu_irq_info,
	.irq_set_fd = vfu_irq_set_fd,
	.reset = vfu_reset,
	.dma_map = vfu_dma_map,
	.dma_unmap = vfu_dma_unmap,
	.feature = vfu_feature,
	.mig_data_read = vfu_mig_read,
	.mig_data_write = vfu_mig_write,
	.client_gone = vfu_client_gone,
	.mig_data_readv = vfu_mig_readv,
	.mig_data_ahead = vfu_mig_ahead,
	.dma_map_remote = vfu_dma_map_remote,
	.dma_unmap_remote = vfu_dma_unmap_remote,
};

struct vfu_server *vgpu_serve(struct vgpu *v, void (*log)(const char *fmt, ...),
			      int (*thread_init)(void))
{
	const struct vfu_server_cfg cfg = {
		.name = v->label, .ops = &vgpu_vfu_ops, .dev = v,
		.iova_bits = IOMMU_IOVA_BITS, .max_dma_bytes = VGPU_MAX_DMA_BYTES, .log = log,
		.thread_init = thread_init,
	};

	struct vfu_server *s;

	vgpu_mig_set_log(v, log);
	s = vfu_server_create(&cfg);
	if (!s)
		return NULL;
	/* A server made before (and destroyed since) gives its channel
	 * back: the domain then uses the new one. */
	if (v->chan) {
		iommu_set_remote(v->iommu, NULL, NULL);
		vfu_dma_chan_put(v->chan);
	}
	v->chan = vfu_server_dma_chan(s);
	iommu_set_remote(v->iommu, &vgpu_remote_ops, v);
	return s;
}
