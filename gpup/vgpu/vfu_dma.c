// SPDX-License-Identifier: MIT
/*
 * DMA_MAP / DMA_UNMAP: the client's memory, passed as an fd, mapped into
 * the daemon and entered into the partition's IOMMU domain, which is the
 * only way engines reach it (a window sent without an fd is recorded but
 * never mapped, so the device faults on it).  Order matters on the way out: the IOMMU
 * entry goes first (iommu_unmap waits for DMAs in flight), and only then
 * the daemon's mapping, so an engine can never touch unmapped memory.
 *
 * Only regular files (memfd, tmpfs, hugetlbfs) are accepted, and the
 * mapped range must lie inside the file: a mapping past EOF would turn a
 * device access into SIGBUS for the whole daemon.  For the same reason the
 * server seals a memfd against shrinking (F_SEAL_SHRINK) when the client
 * created it with MFD_ALLOW_SEALING.  A client that hands over an
 * unsealable file and then truncates it only hurts its own partition: the
 * DMA API turns the SIGBUS into a DMA fault (iommu/dma.c).
 */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "gpup/vgpu/vgpu_int.h"
#include "iommu/iommu.h"

#define DMA_ALIGN 4096ull

static bool overlaps(const struct vfu_dma *d, uint64_t iova, uint64_t size)
{
	return iova < d->iova + d->size && d->iova < iova + size;
}

static int check_map(struct gpup_vfu *s, const struct vfio_user_dma_map *in, int fd)
{
	struct stat st;

	if (in->flags & ~(VFIO_USER_DMA_F_READ | VFIO_USER_DMA_F_WRITE) || !in->flags)
		return -EINVAL;
	if (!in->size || (in->addr | in->size | in->offset) % DMA_ALIGN)
		return -EINVAL;
	if (in->addr + in->size < in->addr || in->addr + in->size > (1ull << IOMMU_IOVA_BITS))
		return -EINVAL;
	for (unsigned int i = 0; i < s->ndma; i++)
		if (overlaps(&s->dma[i], in->addr, in->size))
			return -EEXIST;
	if (s->ndma >= GPUP_VFU_MAX_DMA_MAPS)
		return -ENOSPC;
	if (fd < 0)
		return 0;
	if (fstat(fd, &st))
		return -EBADF;
	if (!S_ISREG(st.st_mode))
		return -EBADF;
	if (in->offset + in->size < in->offset ||
	    in->offset + in->size > (uint64_t)st.st_size)
		return -EINVAL;
	return 0;
}

static bool seal_shrink(int fd)
{
	int seals;

	if (fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK) == 0)
		return true;
	seals = fcntl(fd, F_GET_SEALS);
	return seals > 0 && (seals & F_SEAL_SHRINK);
}

/* mmap the client's memory and enter it into the IOMMU: 0 or -errno. */
static int map_fd(struct gpup_vfu *s, const struct vfio_user_dma_map *in, int fd, void **host)
{
	unsigned int prot = 0;
	int rc;

	if (in->flags & VFIO_USER_DMA_F_READ)
		prot |= IOMMU_READ;
	if (in->flags & VFIO_USER_DMA_F_WRITE)
		prot |= IOMMU_WRITE;
	if (!seal_shrink(fd))
		vfu_log(s, "DMA fd for %#llx cannot be sealed against shrinking: if the "
			"client truncates it, device access to it faults",
			(unsigned long long)in->addr);
	*host = mmap(NULL, in->size, PROT_READ | (prot & IOMMU_WRITE ? PROT_WRITE : 0),
		     MAP_SHARED, fd, (off_t)in->offset);
	if (*host == MAP_FAILED)
		return -errno;
	rc = iommu_map(s->cfg.iommu, in->addr, *host, in->size, prot);
	if (rc)
		munmap(*host, in->size);
	return rc;
}

int vfu_h_dma_map(struct gpup_vfu *s, struct vfu_msg *m, struct vfu_reply *r)
{
	struct vfio_user_dma_map *in = (void *)m->data;
	int fd = m->nfds ? m->fds[0] : -1;
	void *host = NULL;
	int rc;

	(void)r;
	if (m->nfds > 1 || m->len != sizeof(*in))
		return -EINVAL;
	rc = check_map(s, in, fd);
	if (rc)
		return rc;
	/* Without an fd the spec means "reach it with DMA_READ/WRITE
	 * messages", which engines cannot: the window is recorded (clients
	 * such as QEMU map every RAM region and expect success) but stays out
	 * of the IOMMU, so device access to it faults. */
	if (fd < 0)
		vfu_log(s, "DMA window %#llx+%#llx has no fd: device access to it will fault",
			(unsigned long long)in->addr, (unsigned long long)in->size);
	else if ((rc = map_fd(s, in, fd, &host)))
		return rc;
	s->dma[s->ndma++] = (struct vfu_dma){ in->addr, in->size, host };
	return 0;
}

static void drop(struct gpup_vfu *s, unsigned int i)
{
	if (s->dma[i].host)
		munmap(s->dma[i].host, s->dma[i].size);
	s->dma[i] = s->dma[--s->ndma];
}

int vfu_h_dma_unmap(struct gpup_vfu *s, struct vfu_msg *m, struct vfu_reply *r)
{
	struct vfio_user_dma_unmap *in = (void *)m->data;
	int rc;

	if (m->len != sizeof(*in) || (in->flags & ~VFIO_DMA_UNMAP_FLAG_ALL))
		return -EINVAL;
	if (in->flags & VFIO_DMA_UNMAP_FLAG_ALL) {
		if (in->addr || in->size)
			return -EINVAL;
		vfu_dma_unmap_all(s);
	} else {
		unsigned int i = 0;

		while (i < s->ndma && (s->dma[i].iova != in->addr || s->dma[i].size != in->size))
			i++;
		if (i == s->ndma)
			return -ENOENT;
		rc = s->dma[i].host ? iommu_unmap(s->cfg.iommu, in->addr, in->size) : 0;
		if (rc)
			return rc;
		drop(s, i);
	}
	memcpy(r->data, in, sizeof(*in));
	r->len = sizeof(*in);
	return 0;
}

void vfu_dma_unmap_all(struct gpup_vfu *s)
{
	while (s->ndma) {
		struct vfu_dma *d = &s->dma[s->ndma - 1];

		/* If the IOMMU still holds it, leaking our mapping is the safe
		 * choice: unmapping the memory would hand engines a dangling
		 * pointer. */
		if (d->host && iommu_unmap(s->cfg.iommu, d->iova, d->size)) {
			vfu_log(s, "iommu_unmap of %#llx failed; mapping kept",
				(unsigned long long)d->iova);
			s->ndma--;
			continue;
		}
		drop(s, s->ndma - 1);
	}
}
