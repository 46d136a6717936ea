// SPDX-License-Identifier: MIT
/*
 * vfio-user command handlers that reach the device: version negotiation,
 * device and region info, region I/O fds, region access, reset and the
 * migration commands.  Each handler gets a message whose size and fds the
 * dispatch table already checked, checks the rest against the protocol
 * and what the device reported (indexes, region sizes), and only then
 * calls the device op.
 */
#include <errno.h>
#include <string.h>

#include "vfu/vfu_int.h"

int vfu_h_version(struct vfu_server *s, struct vfu_msg *m, struct vfu_reply *r)
{
	const struct vfio_user_version *in = (const void *)m->data;
	struct vfu_caps ours = {
		.max_fds = VFU_MAX_FDS, .max_xfer = VFU_SERVER_MAX_XFER,
		.max_dma_maps = VFU_SERVER_MAX_DMA_MAPS, .pgsizes = 4096,
	};
	struct vfu_caps proposed = { 0 };  /* what the client left out stays 0 */
	uint16_t major, minor;
	int n, rc;

	if (in->major != VFIO_USER_MAJOR)
		return -ENOTSUP;
	rc = vfu_version_decode(m->data, m->len, &major, &minor, &proposed);
	if (rc)
		return rc;
	/* The client's limits: what it stated, the spec's default for the rest. */
	vfu_caps_default(&s->peer);
	if (proposed.max_fds)
		s->peer.max_fds = proposed.max_fds;
	if (proposed.max_xfer)
		s->peer.max_xfer = proposed.max_xfer;
	s->peer.max_dma_maps = proposed.max_dma_maps;
	s->peer.pgsizes = proposed.pgsizes;
	/* The reply's capabilities are a subset of those proposed (the spec's
	 * rule); the encoder leaves out the ones zeroed here.  None of ours is
	 * required: a client that assumes the spec's defaults for the rest is
	 * served (1 fd and 1 MiB a message, 4 KiB pages are within ours; a
	 * map beyond our VFU_SERVER_MAX_DMA_MAPS gets its own error reply). */
	if (!proposed.max_fds)
		ours.max_fds = 0;
	if (!proposed.max_xfer)
		ours.max_xfer = 0;
	if (!proposed.max_dma_maps)
		ours.max_dma_maps = 0;
	if (!proposed.pgsizes)
		ours.pgsizes = 0;
	n = vfu_version_encode(r->data, VFU_SERVER_MAX_MSG, VFIO_USER_MAJOR,
			       minor < VFIO_USER_MINOR ? minor : VFIO_USER_MINOR, &ours);
	if (n < 0)
		return n;
	r->len = (uint32_t)n;
	s->negotiated = true;
	return 0;
}

static void device_info(struct vfu_server *s, struct vfio_user_device_info *info)
{
	memset(info, 0, sizeof(*info));
	s->ops->device_info(s->dev, info);
	info->argsz = sizeof(*info);
}

int vfu_h_device_info(struct vfu_server *s, struct vfu_msg *m, struct vfu_reply *r)
{
	struct vfio_user_device_info *in = (void *)m->data, *out = (void *)r->data;

	if (in->argsz < sizeof(*out))
		return -EINVAL;
	device_info(s, out);
	r->len = sizeof(*out);
	return 0;
}

/* The device's answer for region `index`; *fd (may be NULL) its mmap fd. */
static int region_info(struct vfu_server *s, uint32_t index, struct vfio_region_info *info,
		       int *fd)
{
	struct vfio_user_device_info dev;
	int ignored, rc;

	device_info(s, &dev);
	if (index >= dev.num_regions)
		return -EINVAL;
	memset(info, 0, sizeof(*info));
	if (!fd)
		fd = &ignored;
	*fd = -1;
	rc = s->ops->region_info(s->dev, index, info, fd);
	info->argsz = sizeof(*info);
	info->index = index;
	return rc;
}

int vfu_h_region_info(struct vfu_server *s, struct vfu_msg *m, struct vfu_reply *r)
{
	struct vfio_region_info *in = (void *)m->data, *out = (void *)r->data;
	int fd, rc;

	if (in->argsz < sizeof(*out))
		return -EINVAL;
	rc = region_info(s, in->index, out, &fd);
	if (rc)
		return rc;
	if (fd >= 0)
		r->fds[r->nfds++] = fd;
	r->len = sizeof(*out);
	return 0;
}

int vfu_h_region_io_fds(struct vfu_server *s, struct vfu_msg *m, struct vfu_reply *r)
{
	struct vfio_user_region_io_fds *in = (void *)m->data, *out = (void *)r->data;
	struct vfio_user_sub_region_ioeventfd *sub = (void *)(out + 1);
	struct vfu_iofd fds[VFU_MAX_FDS];
	struct vfio_user_device_info dev;
	int count = 0;

	device_info(s, &dev);
	if (in->flags || in->index >= dev.num_regions)
		return -EINVAL;
	if (s->ops->region_io_fds)
		count = s->ops->region_io_fds(s->dev, in->index, fds, VFU_MAX_FDS);
	if (count < 0)
		return count;
	/* The spec's reply carries at least one fd: a region without any
	 * gets an error reply, never an empty list. */
	if (count == 0)
		return -ENOENT;
	memset(out, 0, sizeof(*out));
	out->index = in->index;
	out->count = (uint32_t)count;
	out->argsz = (uint32_t)(sizeof(*out) + (size_t)count * sizeof(*sub));
	r->len = sizeof(*out);
	/* Too small a buffer: the head alone tells the client what to ask. */
	if (in->argsz < out->argsz)
		return 0;
	if ((uint32_t)count > s->peer.max_fds || (uint32_t)count > VFU_MAX_FDS)
		return -E2BIG;
	for (int i = 0; i < count; i++) {
		sub[i] = (struct vfio_user_sub_region_ioeventfd){
			.offset = fds[i].offset, .size = fds[i].size, .fd_index = (uint32_t)i,
			.type = fds[i].type, .flags = fds[i].flags, .datamatch = fds[i].datamatch,
		};
		r->fds[r->nfds++] = fds[i].fd;
	}
	r->len = out->argsz;
	return 0;
}

/* [off, off + count) inside region `index`, which must exist. */
static int check_access(struct vfu_server *s, const struct vfio_user_region_access *a)
{
	struct vfio_region_info info;

	if (region_info(s, a->region, &info, NULL) || !info.size)
		return -EINVAL;
	if (a->count == 0 || a->count > VFU_SERVER_MAX_XFER)
		return -EINVAL;
	if (a->offset >= info.size || a->count > info.size - a->offset)
		return -EINVAL;
	return 0;
}

int vfu_h_region_read(struct vfu_server *s, struct vfu_msg *m, struct vfu_reply *r)
{
	struct vfio_user_region_access *in = (void *)m->data, *out = (void *)r->data;
	int rc;

	if (m->len != sizeof(*in))
		return -EINVAL;
	rc = check_access(s, in);
	if (!rc && in->count > s->peer.max_xfer)
		rc = -EINVAL;
	if (rc)
		return rc;
	*out = *in;
	rc = s->ops->region_read(s->dev, in->region, in->offset, out->data, in->count);
	if (rc)
		return rc;
	r->len = (uint32_t)sizeof(*out) + in->count;
	return 0;
}

int vfu_h_region_write(struct vfu_server *s, struct vfu_msg *m, struct vfu_reply *r)
{
	struct vfio_user_region_access *in = (void *)m->data, *out = (void *)r->data;
	int rc;

	if (m->len != sizeof(*in) + (uint64_t)in->count)
		return -EINVAL;
	rc = check_access(s, in);
	if (!rc)
		rc = s->ops->region_write(s->dev, in->region, in->offset, in->data, in->count);
	if (rc)
		return rc;
	*out = *in;
	r->len = sizeof(*out);
	return 0;
}

int vfu_h_reset(struct vfu_server *s, struct vfu_msg *m, struct vfu_reply *r)
{
	(void)m;
	(void)r;
	if (!s->ops->reset)
		return -ENOTTY;
	/* The device's DMAs waiting for the client end now, as a reset's
	 * would: the reset then waits for no client. */
	vfu_chan_cancel(s->chan, 0, UINT64_MAX);
	s->ops->reset(s->dev);
	return 0;
}

/* DEVICE_FEATURE: the request's head comes back, a GET's data after it. */
int vfu_h_feature(struct vfu_server *s, struct vfu_msg *m, struct vfu_reply *r)
{
	struct vfio_user_device_feature *in = (void *)m->data, *out = (void *)r->data;
	uint32_t room;
	int n;

	if (in->argsz < sizeof(*in))
		return -EINVAL;
	/* argsz is the client's room for the whole reply, head included. */
	room = in->argsz - (uint32_t)sizeof(*in);
	n = s->ops->feature(s->dev, in->flags, in->data, m->len - (uint32_t)sizeof(*in),
			    out->data, room < VFU_SERVER_MAX_XFER ? room : VFU_SERVER_MAX_XFER);
	if (n < 0)
		return n;
	out->flags = in->flags;
	out->argsz = (uint32_t)sizeof(*out) + (uint32_t)n;
	r->len = out->argsz;
	return 0;
}

/* The stream's bytes where the device keeps them, after the reply's head
 * in r->data: nothing is copied here. */
static int mig_readv(struct vfu_server *s, uint32_t size, struct vfu_reply *r)
{
	unsigned int n = 0;
	int len = s->ops->mig_data_readv(s->dev, size, r->piece + 1, VFU_MAX_IOV - 1, &n);
	uint64_t sum = 0;

	if (len < 0)
		return len;
	if (n > VFU_MAX_IOV - 1)
		return -EIO;
	for (unsigned int i = 1; i <= n; i++)
		sum += r->piece[i].iov_len;
	if (sum != (uint64_t)len)
		return -EIO;
	r->piece[0] = (struct iovec){ r->data, sizeof(struct vfio_user_mig_data) };
	r->npieces = n + 1;
	r->by_ref = true;
	return len;
}

int vfu_h_mig_read(struct vfu_server *s, struct vfu_msg *m, struct vfu_reply *r)
{
	struct vfio_user_mig_data *in = (void *)m->data, *out = (void *)r->data;
	int n;

	if (m->len != sizeof(*in) || in->size > s->peer.max_xfer ||
	    in->size > VFU_SERVER_MAX_XFER || in->argsz < sizeof(*in) + (uint64_t)in->size)
		return -EINVAL;
	if (s->ops->mig_data_readv)
		n = mig_readv(s, in->size, r);
	else
		n = s->ops->mig_data_read(s->dev, out->data, in->size);
	if (n < 0)
		return n;
	if ((uint32_t)n > in->size)
		return -EIO;
	out->size = (uint32_t)n;
	out->argsz = (uint32_t)sizeof(*out) + (uint32_t)n;
	r->len = out->argsz;
	/* A full reply: more is coming, and the client will ask for it. */
	if (s->ops->mig_data_ahead && n && (uint32_t)n == in->size)
		r->ahead = in->size;
	return 0;
}

int vfu_h_mig_write(struct vfu_server *s, struct vfu_msg *m, struct vfu_reply *r)
{
	struct vfio_user_mig_data *in = (void *)m->data;
	int n;

	(void)r;
	if (m->len != sizeof(*in) + (uint64_t)in->size)
		return -EINVAL;
	n = s->ops->mig_data_write(s->dev, in->data, in->size);
	return n < 0 ? n : 0;
}
