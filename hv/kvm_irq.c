// SPDX-License-Identifier: MIT
/*
 * Interrupt and doorbell wiring in KVM: the VM's MSI routing table (one
 * GSI per device vector), irqfds that turn a device's eventfd into an MSI
 * without waking the VMM, and ioeventfds that turn a guest's doorbell
 * write into an eventfd signal without an exit to userspace.
 *
 * KVM takes the routing table whole, so the VMM keeps the table and
 * pushes it after every change; changes happen only when the guest
 * programs an MSI-X entry, never per interrupt.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>

#include "hv/hv_int.h"

/* GSIs 0-23 stay the in-kernel PIC/IOAPIC's numbers. */
#define HV_FIRST_MSI_GSI 24

static int hv_routes_push(struct hv_vm *vm)
{
	struct kvm_irq_routing *r;
	unsigned int n = 0;
	int rc = 0;

	r = calloc(1, sizeof(*r) + HV_MAX_ROUTES * sizeof(r->entries[0]));
	if (!r)
		return -ENOMEM;
	for (unsigned int i = 0; i < HV_MAX_ROUTES; i++)
		if (vm->route_used[i])
			r->entries[n++] = vm->routes[i];
	r->nr = n;
	if (ioctl(vm->vm_fd, KVM_SET_GSI_ROUTING, r) < 0) {
		rc = -errno;
		hv_log_guest("KVM_SET_GSI_ROUTING: %s", strerror(errno));
	}
	free(r);
	return rc;
}

int hv_msi_route_alloc(struct hv_vm *vm)
{
	for (unsigned int i = 0; i < HV_MAX_ROUTES; i++) {
		if (vm->route_used[i])
			continue;
		memset(&vm->routes[i], 0, sizeof(vm->routes[i]));
		vm->routes[i].gsi = HV_FIRST_MSI_GSI + i;
		vm->routes[i].type = KVM_IRQ_ROUTING_MSI;
		vm->route_used[i] = true;
		return (int)(HV_FIRST_MSI_GSI + i);
	}
	return -ENOSPC;
}

int hv_msi_route_set(struct hv_vm *vm, int gsi, uint64_t addr, uint32_t data)
{
	unsigned int i = (unsigned int)(gsi - HV_FIRST_MSI_GSI);

	struct kvm_irq_routing_entry old;
	int rc;

	if (gsi < HV_FIRST_MSI_GSI || i >= HV_MAX_ROUTES || !vm->route_used[i])
		return -EINVAL;
	old = vm->routes[i];
	vm->routes[i].u.msi.address_lo = (uint32_t)addr;
	vm->routes[i].u.msi.address_hi = (uint32_t)(addr >> 32);
	vm->routes[i].u.msi.data = data;
	rc = hv_routes_push(vm);
	/* A route KVM refuses must not stay in the table: every later push,
	 * for any device, would fail with it. */
	if (rc < 0)
		vm->routes[i] = old;
	return rc;
}

void hv_msi_route_free(struct hv_vm *vm, int gsi)
{
	unsigned int i = (unsigned int)(gsi - HV_FIRST_MSI_GSI);

	if (gsi < HV_FIRST_MSI_GSI || i >= HV_MAX_ROUTES)
		return;
	vm->route_used[i] = false;
	hv_routes_push(vm);
}

int hv_irqfd(struct hv_vm *vm, int fd, int gsi, bool assign)
{
	struct kvm_irqfd req = {
		.fd = (uint32_t)fd,
		.gsi = (uint32_t)gsi,
		.flags = assign ? 0 : KVM_IRQFD_FLAG_DEASSIGN,
	};

	return ioctl(vm->vm_fd, KVM_IRQFD, &req) < 0 ? -errno : 0;
}

int hv_ioeventfd(struct hv_vm *vm, int fd, uint64_t gpa, unsigned int len,
		 bool assign)
{
	struct kvm_ioeventfd req = {
		.addr = gpa,
		.len = len,
		.fd = fd,
		.flags = assign ? 0 : KVM_IOEVENTFD_FLAG_DEASSIGN,
	};

	return ioctl(vm->vm_fd, KVM_IOEVENTFD, &req) < 0 ? -errno : 0;
}
