// SPDX-License-Identifier: MIT
/*
 * vfio-user command handlers for the device itself: version negotiation,
 * device/region/irq info, doorbell ioeventfds, interrupts, region access
 * and reset.  Each handler gets a message whose size and fds the dispatch
 * table already checked, validates the rest, and either fills the reply or
 * returns -errno.  Region layout: config space, BAR0 (registers through
 * the vgpu), BAR2 (the partition's slice of VRAM, mmapable); every other
 * VFIO PCI region has size 0.
 */
#include <errno.h>
#include <json-c/json.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "gpup/gpu/gpu.h"
#include "gpup/vgpu/vgpu.h"
#include "gpup/vgpu/vgpu_int.h"

static int json_cap_u32(json_object *caps, const char *key, uint32_t *out)
{
	json_object *v;
	int64_t n;

	if (!json_object_object_get_ex(caps, key, &v))
		return 0;
	if (!json_object_is_type(v, json_type_int))
		return -EINVAL;
	n = json_object_get_int64(v);
	if (n < 1 || n > UINT32_MAX)
		return -EINVAL;
	*out = (uint32_t)n;
	return 0;
}

/* The client's capabilities: absent is fine, malformed is -EINVAL. */
static int parse_peer_caps(struct gpup_vfu *s, const char *text, size_t len)
{
	json_tokener *tok = json_tokener_new();
	json_object *o, *caps;
	int rc = 0;

	if (!tok)
		return -ENOMEM;
	o = json_tokener_parse_ex(tok, text, (int)len);
	json_tokener_free(tok);
	if (!o || !json_object_is_type(o, json_type_object)) {
		json_object_put(o);
		return -EINVAL;
	}
	if (json_object_object_get_ex(o, VFIO_USER_CAP_OBJECT, &caps)) {
		if (!json_object_is_type(caps, json_type_object))
			rc = -EINVAL;
		if (!rc)
			rc = json_cap_u32(caps, VFIO_USER_CAP_MAX_FDS, &s->peer_max_fds);
		if (!rc)
			rc = json_cap_u32(caps, VFIO_USER_CAP_MAX_XFER, &s->peer_max_xfer);
	}
	json_object_put(o);
	return rc;
}

static uint32_t our_caps_json(char *buf, size_t len)
{
	int n = snprintf(buf, len,
			 "{\"%s\":{\"%s\":%u,\"%s\":%u,\"%s\":%u,\"%s\":%u}}",
			 VFIO_USER_CAP_OBJECT, VFIO_USER_CAP_MAX_FDS, GPUP_VFU_MAX_FDS,
			 VFIO_USER_CAP_MAX_XFER, GPUP_VFU_MAX_XFER,
			 VFIO_USER_CAP_MAX_DMA_MAPS, GPUP_VFU_MAX_DMA_MAPS,
			 VFIO_USER_CAP_PGSIZES, 4096u);

	return (uint32_t)n + 1; /* the NUL is part of the data */
}

int vfu_h_version(struct gpup_vfu *s, struct vfu_msg *m, struct vfu_reply *r)
{
	struct vfio_user_version *in = (void *)m->data, *out = (void *)r->data;
	uint32_t jlen = m->len - (uint32_t)sizeof(*in);
	int rc;

	if (in->major != VFIO_USER_MAJOR)
		return -ENOTSUP;
	if (jlen) {
		if (in->data[jlen - 1] != '\0')
			return -EINVAL;
		rc = parse_peer_caps(s, in->data, jlen - 1);
		if (rc)
			return rc;
	}
	out->major = VFIO_USER_MAJOR;
	out->minor = in->minor < VFIO_USER_MINOR ? in->minor : VFIO_USER_MINOR;
	r->len = (uint32_t)sizeof(*out) + our_caps_json(out->data, 512);
	s->negotiated = true;
	return 0;
}

int vfu_h_device_info(struct gpup_vfu *s, struct vfu_msg *m, struct vfu_reply *r)
{
	struct vfio_user_device_info *in = (void *)m->data, *out = (void *)r->data;

	(void)s;
	if (in->argsz < sizeof(*out))
		return -EINVAL;
	out->argsz = sizeof(*out);
	out->flags = VFIO_DEVICE_FLAGS_RESET | VFIO_DEVICE_FLAGS_PCI;
	out->num_regions = VFIO_PCI_NUM_REGIONS;
	out->num_irqs = VFIO_PCI_NUM_IRQS;
	r->len = sizeof(*out);
	return 0;
}

static uint64_t region_size(const struct gpup_vfu *s, uint32_t index)
{
	switch (index) {
	case VFIO_PCI_CONFIG_REGION_INDEX:
		return GPUP_PCI_CFG_SIZE;
	case VFIO_PCI_BAR0_REGION_INDEX:
		return GPUP_BAR0_SIZE;
	case VFIO_PCI_BAR2_REGION_INDEX:
		return s->cfg.vram_size;
	default:
		return 0;
	}
}

int vfu_h_region_info(struct gpup_vfu *s, struct vfu_msg *m, struct vfu_reply *r)
{
	struct vfio_region_info *in = (void *)m->data, *out = (void *)r->data;
	uint64_t fd_off;
	int fd;

	if (in->argsz < sizeof(*out) || in->index >= VFIO_PCI_NUM_REGIONS)
		return -EINVAL;
	memset(out, 0, sizeof(*out));
	out->argsz = sizeof(*out);
	out->index = in->index;
	out->size = region_size(s, in->index);
	if (out->size)
		out->flags = VFIO_REGION_INFO_FLAG_READ | VFIO_REGION_INFO_FLAG_WRITE;
	if (in->index == VFIO_PCI_BAR2_REGION_INDEX) {
		fd = gpup_gpu_vram_fd(s->cfg.gpu, &fd_off);
		if (fd < 0)
			return fd;
		out->flags |= VFIO_REGION_INFO_FLAG_MMAP;
		out->offset = fd_off + s->cfg.vram_offset;
		r->fds[r->nfds++] = fd;
	}
	r->len = sizeof(*out);
	return 0;
}

int vfu_h_region_io_fds(struct gpup_vfu *s, struct vfu_msg *m, struct vfu_reply *r)
{
	struct vfio_user_region_io_fds *in = (void *)m->data, *out = (void *)r->data;
	struct vfio_user_sub_region_ioeventfd *sub = (void *)(out + 1);
	uint32_t count = in->index == VFIO_PCI_BAR0_REGION_INDEX ? GPUP_MAX_QUEUES : 0;

	if (in->flags || in->index >= VFIO_PCI_NUM_REGIONS)
		return -EINVAL;
	memset(out, 0, sizeof(*out));
	out->index = in->index;
	out->count = count;
	out->argsz = (uint32_t)(sizeof(*out) + count * sizeof(*sub));
	r->len = sizeof(*out);
	/* Too small a buffer: the head alone tells the client what to ask. */
	if (in->argsz < out->argsz)
		return 0;
	if (count > s->peer_max_fds)
		return -E2BIG;
	for (uint32_t q = 0; q < count; q++) {
		int fd = vgpu_doorbell_fd(s->cfg.vgpu, q);

		if (fd < 0)
			return fd;
		memset(&sub[q], 0, sizeof(sub[q]));
		sub[q].offset = GPUP_DOORBELL(q);
		sub[q].size = 4;
		sub[q].fd_index = q;
		sub[q].type = VFIO_USER_IO_FD_TYPE_IOEVENTFD;
		r->fds[r->nfds++] = fd;
	}
	r->len = out->argsz;
	return 0;
}

int vfu_h_irq_info(struct gpup_vfu *s, struct vfu_msg *m, struct vfu_reply *r)
{
	struct vfio_irq_info *in = (void *)m->data, *out = (void *)r->data;

	(void)s;
	if (in->argsz < sizeof(*out) || in->index >= VFIO_PCI_NUM_IRQS)
		return -EINVAL;
	memset(out, 0, sizeof(*out));
	out->argsz = sizeof(*out);
	out->index = in->index;
	if (in->index == VFIO_PCI_MSIX_IRQ_INDEX) {
		out->flags = VFIO_IRQ_INFO_EVENTFD | VFIO_IRQ_INFO_NORESIZE;
		out->count = GPUP_MSIX_VECTORS;
	}
	r->len = sizeof(*out);
	return 0;
}

/* Is fd an eventfd?  Anything else could block or fail when signalled. */
static bool is_eventfd(int fd)
{
	char link[64], target[64];
	ssize_t n;

	snprintf(link, sizeof(link), "/proc/self/fd/%d", fd);
	n = readlink(link, target, sizeof(target) - 1);
	if (n < 0)
		return false;
	target[n] = '\0';
	return strcmp(target, "anon_inode:[eventfd]") == 0;
}

static int irq_assign(struct gpup_vfu *s, uint32_t vec, int fd)
{
	int rc = vgpu_set_irq_fd(s->cfg.vgpu, vec, fd);

	if (rc)
		return rc;
	if (s->irq_fds[vec] >= 0)
		close(s->irq_fds[vec]);
	s->irq_fds[vec] = fd;  /* fd is ours now: kept to trigger from here */
	return 0;
}

static int irq_set_eventfds(struct gpup_vfu *s, struct vfu_msg *m, uint32_t start,
			    uint32_t count)
{
	int rc;

	if (m->nfds && m->nfds != count)
		return -EINVAL;
	for (unsigned int i = 0; i < m->nfds; i++)
		if (!is_eventfd(m->fds[i]))
			return -EBADF;
	for (uint32_t i = 0; i < count; i++) {
		rc = irq_assign(s, start + i, m->nfds ? m->fds[i] : -1);
		if (rc)
			return rc;
		if (m->nfds)
			m->fds[i] = -1;
	}
	return 0;
}

static void irq_trigger(struct gpup_vfu *s, uint32_t vec)
{
	uint64_t one = 1;

	if (s->irq_fds[vec] >= 0 && write(s->irq_fds[vec], &one, sizeof(one)) < 0)
		vfu_log(s, "cannot signal vector %u: %s", vec, strerror(errno));
}

void vfu_irqs_release(struct gpup_vfu *s)
{
	for (uint32_t v = 0; v < GPUP_MSIX_VECTORS; v++)
		if (s->irq_fds[v] >= 0)
			irq_assign(s, v, -1);
}

static int irq_trigger_set(struct gpup_vfu *s, struct vfu_msg *m, uint32_t data,
			   uint32_t start, uint32_t count)
{
	const uint8_t *bools = m->data + sizeof(struct vfio_irq_set);

	if (data == VFIO_IRQ_SET_DATA_NONE && count == 0 && start == 0) {
		vfu_irqs_release(s);  /* the spec's "disable all" */
		return 0;
	}
	if (data == VFIO_IRQ_SET_DATA_BOOL && m->len < sizeof(struct vfio_irq_set) + count)
		return -EINVAL;
	for (uint32_t i = 0; i < count; i++)
		if (data == VFIO_IRQ_SET_DATA_NONE || bools[i])
			irq_trigger(s, start + i);
	return 0;
}

int vfu_h_set_irqs(struct gpup_vfu *s, struct vfu_msg *m, struct vfu_reply *r)
{
	struct vfio_irq_set *in = (void *)m->data;
	uint32_t data = in->flags & VFIO_IRQ_SET_DATA_TYPE_MASK;
	uint32_t action = in->flags & VFIO_IRQ_SET_ACTION_TYPE_MASK;
	uint32_t nvec = in->index == VFIO_PCI_MSIX_IRQ_INDEX ? GPUP_MSIX_VECTORS : 0;

	(void)r;
	if (in->flags & ~(VFIO_IRQ_SET_DATA_TYPE_MASK | VFIO_IRQ_SET_ACTION_TYPE_MASK) ||
	    __builtin_popcount(data) != 1 || __builtin_popcount(action) != 1 ||
	    in->index >= VFIO_PCI_NUM_IRQS)
		return -EINVAL;
	if (in->start > nvec || in->count > nvec - in->start)
		return -EINVAL;
	if (m->nfds && data != VFIO_IRQ_SET_DATA_EVENTFD)
		return -EINVAL;
	/* MSI-X is not maskable through VFIO, as on the kernel's vfio-pci. */
	if (action != VFIO_IRQ_SET_ACTION_TRIGGER)
		return -EINVAL;
	/* An index without vectors (INTx, MSI, ...) has nothing to set, and
	 * its "disable all" (count 0) must leave MSI-X alone. */
	if (!nvec)
		return m->nfds ? -EINVAL : 0;
	if (data == VFIO_IRQ_SET_DATA_EVENTFD)
		return irq_set_eventfds(s, m, in->start, in->count);
	return irq_trigger_set(s, m, data, in->start, in->count);
}

/* [off, off + count) inside region `index`, which must be accessible. */
static int check_access(struct gpup_vfu *s, const struct vfio_user_region_access *a)
{
	uint64_t size = a->region < VFIO_PCI_NUM_REGIONS ? region_size(s, a->region) : 0;

	if (!size || a->count == 0 || a->count > GPUP_VFU_MAX_XFER)
		return -EINVAL;
	if (a->offset >= size || a->count > size - a->offset)
		return -EINVAL;
	return 0;
}

static int region_io(struct gpup_vfu *s, const struct vfio_user_region_access *a,
		     void *buf, bool write)
{
	uint8_t *vram;

	switch (a->region) {
	case VFIO_PCI_CONFIG_REGION_INDEX:
		return write ? gpup_pci_cfg_write(&s->pci, a->offset, buf, a->count)
			     : gpup_pci_cfg_read(&s->pci, a->offset, buf, a->count);
	case VFIO_PCI_BAR0_REGION_INDEX:
		return write ? vgpu_bar0_write(s->cfg.vgpu, a->offset, buf, a->count)
			     : vgpu_bar0_read(s->cfg.vgpu, a->offset, buf, a->count);
	default: /* BAR2: check_access bounded it by the partition's size */
		vram = (uint8_t *)gpup_gpu_vram_map(s->cfg.gpu) + s->cfg.vram_offset;
		if (write)
			memcpy(vram + a->offset, buf, a->count);
		else
			memcpy(buf, vram + a->offset, a->count);
		return 0;
	}
}

int vfu_h_region_read(struct gpup_vfu *s, struct vfu_msg *m, struct vfu_reply *r)
{
	struct vfio_user_region_access *in = (void *)m->data, *out = (void *)r->data;
	int rc;

	if (m->len != sizeof(*in))
		return -EINVAL;
	rc = check_access(s, in);
	if (!rc && in->count > s->peer_max_xfer)
		rc = -EINVAL;
	if (rc)
		return rc;
	*out = *in;
	rc = region_io(s, in, out->data, false);
	if (rc)
		return rc;
	r->len = (uint32_t)sizeof(*out) + in->count;
	return 0;
}

int vfu_h_region_write(struct gpup_vfu *s, struct vfu_msg *m, struct vfu_reply *r)
{
	struct vfio_user_region_access *in = (void *)m->data, *out = (void *)r->data;
	int rc;

	if (m->len != sizeof(*in) + (uint64_t)in->count)
		return -EINVAL;
	rc = check_access(s, in);
	if (!rc)
		rc = region_io(s, in, in->data, true);
	if (rc)
		return rc;
	*out = *in;
	r->len = sizeof(*out);
	return 0;
}

int vfu_h_reset(struct gpup_vfu *s, struct vfu_msg *m, struct vfu_reply *r)
{
	(void)m;
	(void)r;
	vgpu_reset(s->cfg.vgpu);
	return 0;
}
