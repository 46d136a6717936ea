// SPDX-License-Identifier: MIT
/*
 * DMA_MAP / DMA_UNMAP: the client's memory, passed as an fd, is mapped
 * into this process and handed to the device (dma_map op), which makes it
 * reachable for its DMA (the vGPU enters it into its IOMMU domain).  Order
 * matters on the way out: the device lets go first (its dma_unmap waits
 * for DMAs in flight), and only then is our mapping dropped, so a device
 * can never touch unmapped memory.
 *
 * Only regular files of memory filesystems (memfd, tmpfs, hugetlbfs) are
 * accepted, and the mapped range must lie inside the file: a mapping past
 * EOF would turn a device access into SIGBUS for the whole process.  For the same reason a
 * memfd is sealed against shrinking (F_SEAL_SHRINK) when the client
 * created it with MFD_ALLOW_SEALING.  A window sent without an fd (what
 * QEMU does for guest RAM it does not share) goes to the device's
 * dma_map_remote, which the device reaches only with DMA_READ / DMA_WRITE
 * (server_dma_rw.c); with no such op it is recorded only (clients map
 * every RAM region and expect success) and never reaches the device.
 *
 * What a client can make us hold is bounded: VFU_SERVER_MAX_DMA_MAPS
 * windows, max_dma_bytes of mapped memory (ENOSPC past it), and the
 * device's own limits (the vGPU's IOMMU domain has a page-table budget).
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/magic.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <unistd.h>

#include "vfu/vfu_int.h"

#define DMA_ALIGN 4096ull
/* Host mappings share the IOVA's offset in a 2 MiB block, so an IOMMU can
 * use blocks: 512 times fewer page tables for a large window. */
#define HOST_ALIGN (2ull << 20)

static bool overlaps(const struct vfu_dma *d, uint64_t iova, uint64_t size)
{
	return iova < d->r.iova + d->r.size && d->r.iova < iova + size;
}

static bool iova_fits(const struct vfu_server *s, uint64_t iova, uint64_t size)
{
	unsigned int bits = s->cfg.iova_bits;

	if (iova + size < iova)
		return false;
	return bits == 0 || bits >= 64 || iova + size <= (1ull << bits);
}

/* Guest memory lives in memory: tmpfs (memfd, /dev/shm) or hugetlbfs.  A
 * file of another filesystem could stall the device's DMA on I/O (a FUSE
 * server that never answers holds an engine thread of the whole GPU). */
static bool memory_file(int fd)
{
	struct statfs fs;

	return fstatfs(fd, &fs) == 0 &&
	       (fs.f_type == TMPFS_MAGIC || fs.f_type == HUGETLBFS_MAGIC);
}

static int check_map(struct vfu_server *s, const struct vfio_user_dma_map *in, int fd)
{
	struct stat st;

	if (in->flags & ~(VFIO_USER_DMA_F_READ | VFIO_USER_DMA_F_WRITE) || !in->flags)
		return -EINVAL;
	if (!in->size || (in->addr | in->size | in->offset) % DMA_ALIGN)
		return -EINVAL;
	if (!iova_fits(s, in->addr, in->size))
		return -EINVAL;
	for (unsigned int i = 0; i < s->ndma; i++)
		if (overlaps(&s->dma[i], in->addr, in->size))
			return -EEXIST;
	if (s->ndma >= VFU_SERVER_MAX_DMA_MAPS)
		return -ENOSPC;
	if (fd < 0)
		return 0;
	if (s->cfg.max_dma_bytes && in->size > s->cfg.max_dma_bytes - s->dma_bytes)
		return -ENOSPC;
	if (!s->ops->dma_map)
		return -ENOTSUP;
	if (fstat(fd, &st) || !S_ISREG(st.st_mode) || !memory_file(fd))
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

/* Map size bytes of fd at off, at an address congruent to iova modulo
 * HOST_ALIGN: reserve room to slide, map over the reservation, trim. */
static void *map_aligned(int fd, uint64_t off, uint64_t size, uint64_t iova, int prot)
{
	uint64_t span = size + HOST_ALIGN;
	uint8_t *res, *at;
	uintptr_t base;

	if (size < HOST_ALIGN)
		return mmap(NULL, size, prot, MAP_SHARED, fd, (off_t)off);
	res = mmap(NULL, span, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (res == MAP_FAILED)
		return MAP_FAILED;
	base = ((uintptr_t)res + HOST_ALIGN - 1) & ~(uintptr_t)(HOST_ALIGN - 1);
	at = (uint8_t *)(base + (iova & (HOST_ALIGN - 1)));
	if (at + size > res + span)
		at -= HOST_ALIGN;
	if (mmap(at, size, prot, MAP_SHARED | MAP_FIXED, fd, (off_t)off) == MAP_FAILED) {
		int err = errno;

		munmap(res, span);
		errno = err;
		return MAP_FAILED;
	}
	if (at > res)
		munmap(res, (size_t)(at - res));
	if (at + size < res + span)
		munmap(at + size, (size_t)(res + span - (at + size)));
	return at;
}

/* mmap the client's memory and give it to the device: 0 or -errno. */
static int map_fd(struct vfu_server *s, const struct vfio_user_dma_map *in, int fd,
		  struct vfu_dma_region *r)
{
	int prot = PROT_READ | (in->flags & VFIO_USER_DMA_F_WRITE ? PROT_WRITE : 0);
	int rc;

	if (!seal_shrink(fd))
		vfu_log(s, "DMA fd for %#llx cannot be sealed against shrinking: if the "
			"client truncates it, device access to it faults",
			(unsigned long long)in->addr);
	r->host = map_aligned(fd, in->offset, in->size, in->addr, prot);
	if (r->host == MAP_FAILED) {
		r->host = NULL;
		return -errno;
	}
	rc = s->ops->dma_map(s->dev, r);
	if (rc) {
		munmap(r->host, in->size);
		r->host = NULL;
	}
	return rc;
}

/* A window without an fd: reached by message, if the device can. */
static int map_remote(struct vfu_server *s, const struct vfu_dma_region *r)
{
	int rc;

	if (!s->ops->dma_map_remote) {
		vfu_log(s, "DMA window %#llx+%#llx has no fd: device access to it will fault",
			(unsigned long long)r->iova, (unsigned long long)r->size);
		return 0;
	}
	rc = vfu_chan_open(s);
	return rc ? rc : s->ops->dma_map_remote(s->dev, r);
}

int vfu_h_dma_map(struct vfu_server *s, struct vfu_msg *m, struct vfu_reply *r)
{
	struct vfio_user_dma_map *in = (void *)m->data;
	int fd = m->nfds ? m->fds[0] : -1;
	struct vfu_dma_region dr = { in->addr, in->size, NULL, in->flags };
	int rc;

	(void)r;
	if (m->nfds > 1 || m->len != sizeof(*in))
		return -EINVAL;
	rc = check_map(s, in, fd);
	if (rc)
		return rc;
	if (fd < 0 && (rc = map_remote(s, &dr)))
		return rc;
	if (fd >= 0 && (rc = map_fd(s, in, fd, &dr)))
		return rc;
	if (dr.host)
		s->dma_bytes += dr.size;
	s->dma[s->ndma++] = (struct vfu_dma){ dr };
	return 0;
}

static void drop(struct vfu_server *s, unsigned int i)
{
	if (s->dma[i].r.host) {
		munmap(s->dma[i].r.host, s->dma[i].r.size);
		s->dma_bytes -= s->dma[i].r.size;
	}
	s->dma[i] = s->dma[--s->ndma];
}

/* The device lets go; transfers into an fd-less window that still wait
 * for the client fail (and one asked for meanwhile fails as it is sent:
 * the window is gone from s->dma by then). */
static int device_unmap(struct vfu_server *s, const struct vfu_dma *d)
{
	int rc;

	if (d->r.host)
		return s->ops->dma_unmap(s->dev, &d->r);
	if (!s->ops->dma_unmap_remote)
		return 0;
	rc = s->ops->dma_unmap_remote(s->dev, &d->r);
	if (!rc)
		vfu_chan_cancel(s->chan, d->r.iova, d->r.iova + d->r.size);
	return rc;
}

int vfu_h_dma_unmap(struct vfu_server *s, struct vfu_msg *m, struct vfu_reply *r)
{
	struct vfio_user_dma_unmap *in = (void *)m->data;
	unsigned int i = 0;
	int rc;

	if (m->len != sizeof(*in) || (in->flags & ~VFIO_DMA_UNMAP_FLAG_ALL))
		return -EINVAL;
	if (in->flags & VFIO_DMA_UNMAP_FLAG_ALL) {
		if (in->addr || in->size)
			return -EINVAL;
		vfu_dma_unmap_all(s);
	} else {
		while (i < s->ndma &&
		       (s->dma[i].r.iova != in->addr || s->dma[i].r.size != in->size))
			i++;
		if (i == s->ndma)
			return -ENOENT;
		rc = device_unmap(s, &s->dma[i]);
		if (rc)
			return rc;
		drop(s, i);
	}
	memcpy(r->data, in, sizeof(*in));
	r->len = sizeof(*in);
	return 0;
}

void vfu_dma_unmap_all(struct vfu_server *s)
{
	while (s->ndma) {
		struct vfu_dma *d = &s->dma[s->ndma - 1];

		/* If the device still holds it, leaking our mapping is the
		 * safe choice: unmapping the memory would hand the device a
		 * dangling pointer. */
		if (device_unmap(s, d)) {
			vfu_log(s, "device unmap of %#llx failed; mapping kept",
				(unsigned long long)d->r.iova);
			if (d->r.host)
				s->dma_bytes -= d->r.size; /* no longer the client's */
			s->ndma--;
			continue;
		}
		drop(s, s->ndma - 1);
	}
}
