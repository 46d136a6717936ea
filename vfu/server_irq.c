// SPDX-License-Identifier: MIT
/*
 * Interrupts over vfio-user: DEVICE_GET_IRQ_INFO and DEVICE_SET_IRQS.
 * The client connects eventfds to vectors (the device signals them, and a
 * VMM turns them into KVM irqfds) or triggers vectors with a message.  The
 * server keeps its own copy of every eventfd it hands the device, both to
 * trigger from a message and to disconnect them all when the client goes.
 * Only ACTION_TRIGGER is served: like the kernel's vfio-pci for MSI-X, a
 * device here cannot be masked through VFIO.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "vfu/vfu_int.h"

/* num_irqs as the device gives it, bounded by what we keep fds for. */
static uint32_t num_irqs(struct vfu_server *s)
{
	struct vfio_user_device_info info = { 0 };

	s->ops->device_info(s->dev, &info);
	return info.num_irqs < VFU_IRQ_INDEXES ? info.num_irqs : VFU_IRQ_INDEXES;
}

static void irq_info(struct vfu_server *s, uint32_t index, struct vfio_irq_info *info)
{
	memset(info, 0, sizeof(*info));
	s->ops->irq_info(s->dev, index, info);
	info->argsz = sizeof(*info);
	info->index = index;
	if (info->count > VFU_SERVER_MAX_IRQS)
		info->count = VFU_SERVER_MAX_IRQS;
}

int vfu_h_irq_info(struct vfu_server *s, struct vfu_msg *m, struct vfu_reply *r)
{
	struct vfio_irq_info *in = (void *)m->data, *out = (void *)r->data;

	if (in->argsz < sizeof(*out) || in->index >= num_irqs(s))
		return -EINVAL;
	irq_info(s, in->index, out);
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

/* The fd table of irq index, made on first use with room for any count
 * the device may report later. */
static int *irq_table(struct vfu_server *s, uint32_t index)
{
	if (!s->irq_fds[index]) {
		s->irq_fds[index] = malloc(VFU_SERVER_MAX_IRQS * sizeof(int));
		if (!s->irq_fds[index])
			return NULL;
		for (uint32_t i = 0; i < VFU_SERVER_MAX_IRQS; i++)
			s->irq_fds[index][i] = -1;
	}
	return s->irq_fds[index];
}

/* Give vector vec the eventfd fd (taken) or disconnect it (-1). */
static int irq_assign(struct vfu_server *s, uint32_t index, uint32_t vec, int fd)
{
	int rc = s->ops->irq_set_fd(s->dev, index, vec, fd);

	if (rc)
		return rc;
	if (s->irq_fds[index][vec] >= 0)
		close(s->irq_fds[index][vec]);
	s->irq_fds[index][vec] = fd;
	return 0;
}

static int irq_set_eventfds(struct vfu_server *s, struct vfu_msg *m, uint32_t index,
			    uint32_t start, uint32_t count)
{
	int rc;

	if (m->nfds && m->nfds != count)
		return -EINVAL;
	for (unsigned int i = 0; i < m->nfds; i++)
		if (!is_eventfd(m->fds[i]))
			return -EBADF;
	for (uint32_t i = 0; i < count; i++) {
		rc = irq_assign(s, index, start + i, m->nfds ? m->fds[i] : -1);
		if (rc)
			return rc;
		if (m->nfds)
			m->fds[i] = -1;
	}
	return 0;
}

/* The connection's thread must not block on the client's eventfd either:
 * destroying the device joins it. */
static void irq_trigger(struct vfu_server *s, uint32_t index, uint32_t vec)
{
	int fd = s->irq_fds[index][vec], rc;

	rc = fd >= 0 ? vfu_eventfd_signal(fd) : 0;
	if (rc && rc != -EAGAIN)
		vfu_log(s, "cannot signal vector %u: %s", vec, strerror(-rc));
}

static void irq_release_index(struct vfu_server *s, uint32_t index)
{
	if (!s->irq_fds[index])
		return;
	for (uint32_t v = 0; v < VFU_SERVER_MAX_IRQS; v++)
		if (s->irq_fds[index][v] >= 0)
			irq_assign(s, index, v, -1);
}

void vfu_irqs_release(struct vfu_server *s)
{
	for (uint32_t i = 0; i < VFU_IRQ_INDEXES; i++) {
		irq_release_index(s, i);
		free(s->irq_fds[i]);
		s->irq_fds[i] = NULL;
	}
}

static int irq_trigger_set(struct vfu_server *s, struct vfu_msg *m, uint32_t data,
			   const struct vfio_irq_set *in)
{
	const uint8_t *bools = m->data + sizeof(*in);

	if (data == VFIO_IRQ_SET_DATA_NONE && in->count == 0 && in->start == 0) {
		irq_release_index(s, in->index);  /* the spec's "disable all" */
		return 0;
	}
	if (data == VFIO_IRQ_SET_DATA_BOOL && m->len < sizeof(*in) + (uint64_t)in->count)
		return -EINVAL;
	for (uint32_t i = 0; i < in->count; i++)
		if (data == VFIO_IRQ_SET_DATA_NONE || bools[i])
			irq_trigger(s, in->index, in->start + i);
	return 0;
}

int vfu_h_set_irqs(struct vfu_server *s, struct vfu_msg *m, struct vfu_reply *r)
{
	struct vfio_irq_set *in = (void *)m->data;
	uint32_t data = in->flags & VFIO_IRQ_SET_DATA_TYPE_MASK;
	uint32_t action = in->flags & VFIO_IRQ_SET_ACTION_TYPE_MASK;
	struct vfio_irq_info info;

	(void)r;
	if (in->flags & ~(VFIO_IRQ_SET_DATA_TYPE_MASK | VFIO_IRQ_SET_ACTION_TYPE_MASK) ||
	    __builtin_popcount(data) != 1 || __builtin_popcount(action) != 1 ||
	    in->index >= num_irqs(s))
		return -EINVAL;
	irq_info(s, in->index, &info);
	if (in->start > info.count || in->count > info.count - in->start)
		return -EINVAL;
	if (m->nfds && data != VFIO_IRQ_SET_DATA_EVENTFD)
		return -EINVAL;
	if (action != VFIO_IRQ_SET_ACTION_TRIGGER)
		return -EINVAL;
	/* An index without vectors (INTx, MSI, ...) has nothing to set, and
	 * its "disable all" (count 0) must leave the others alone. */
	if (!info.count)
		return m->nfds ? -EINVAL : 0;
	if (!irq_table(s, in->index))
		return -ENOMEM;
	if (data == VFIO_IRQ_SET_DATA_EVENTFD)
		return irq_set_eventfds(s, m, in->index, in->start, in->count);
	return irq_trigger_set(s, m, data, in);
}
