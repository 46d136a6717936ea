// SPDX-License-Identifier: MIT
/*
 * The VMM's own device state for migration, as the records of a VMSTATE
 * chunk: each PCI function's config space (BAR addresses, command bits,
 * the MSI-X enable and mask bits), each partition's MSI-X table, the
 * 16550's registers, the in-kernel PIC and IOAPIC, and how long the VM
 * has run.  Saved with the vCPUs parked; loaded on a VM built the same
 * way from the same --gpu list, before its vCPUs first run.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>

#include "hv/hv_int.h"

static int hv_vmstate_save_pci(struct hv_vm *vm, uint8_t *buf, uint32_t max, uint32_t *off)
{
	struct gpup_vmmig_pci p;
	struct gpup_vmmig_msix m;
	int rc = 0;

	for (unsigned int i = 0; rc == 0 && i < hv_pci_count(vm); i++) {
		struct hv_pci_dev *d = hv_pci_dev_at(vm, i);

		memset(&p, 0, sizeof(p));
		p.devfn = d->devfn;
		memcpy(p.cfg, d->cfg, sizeof(p.cfg));
		rc = hv_rec_put(buf, max, off, GPUP_VMMIG_T_PCI, &p, sizeof(p));
	}
	for (unsigned int i = 0; rc == 0 && i < vm->ngpus; i++) {
		hv_vgpu_msix_save(vm->gpus[i], &m);
		m.gpu = i;
		rc = hv_rec_put(buf, max, off, GPUP_VMMIG_T_MSIX, &m, sizeof(m));
	}
	return rc;
}

int hv_vmstate_save(struct hv_vm *vm, uint8_t *buf, uint32_t max)
{
	struct gpup_vmmig_serial s = {
		vm->serial.ier, vm->serial.lcr, vm->serial.mcr, vm->serial.scr,
		vm->serial.dll, vm->serial.dlm, { 0, 0 },
	};
	uint64_t up = hv_now_ns() - vm->start_ns;
	uint32_t off = 0;
	int rc;

	pthread_mutex_lock(&vm->io_lock);
	rc = hv_vmstate_save_pci(vm, buf, max, &off);
	pthread_mutex_unlock(&vm->io_lock);
	if (rc == 0)
		rc = hv_rec_put(buf, max, &off, GPUP_VMMIG_T_SERIAL, &s, sizeof(s));
	for (unsigned int chip = 0; rc == 0 && vm->irqchip && chip < 3; chip++) {
		struct kvm_irqchip ic = { .chip_id = chip };

		if (ioctl(vm->vm_fd, KVM_GET_IRQCHIP, &ic) < 0)
			return -errno;
		rc = hv_rec_put(buf, max, &off, GPUP_VMMIG_T_IRQCHIP, &ic, sizeof(ic));
	}
	if (rc == 0)
		rc = hv_rec_put(buf, max, &off, GPUP_VMMIG_T_UPTIME, &up, sizeof(up));
	return rc < 0 ? rc : (int)off;
}

static int hv_vmstate_pci(struct hv_vm *vm, const struct gpup_vmmig_pci *p, char *err,
			  size_t errlen)
{
	for (unsigned int i = 0; i < hv_pci_count(vm); i++) {
		struct hv_pci_dev *d = hv_pci_dev_at(vm, i);

		if (d->devfn != p->devfn)
			continue;
		/* The same function, or the --gpu lists differ. */
		if (memcmp(d->cfg, p->cfg, 4)) {
			snprintf(err, errlen, "PCI 00:%02x.0 is another device here",
				 p->devfn >> 3);
			return -EINVAL;
		}
		hv_pci_restore(vm, d, p->cfg);
		return 0;
	}
	snprintf(err, errlen, "no PCI function 00:%02x.0 here", p->devfn >> 3);
	return -EINVAL;
}

static int hv_vmstate_rec(struct hv_vm *vm, const struct hv_vms_rec *r, char *err,
			  size_t errlen)
{
	union {
		struct gpup_vmmig_pci pci;
		struct gpup_vmmig_msix msix;
		struct gpup_vmmig_serial serial;
		struct kvm_irqchip ic;
		uint64_t up;
	} u;

	memcpy(&u, r->data, r->len);
	switch (r->tag) {
	case GPUP_VMMIG_T_PCI:
		return hv_vmstate_pci(vm, &u.pci, err, errlen);
	case GPUP_VMMIG_T_MSIX:
		if (u.msix.gpu < vm->ngpus && hv_vgpu_msix_load(vm->gpus[u.msix.gpu], &u.msix) == 0)
			return 0;
		snprintf(err, errlen, "an MSI-X table for partition %u that does not fit it",
			 u.msix.gpu);
		return -EINVAL;
	case GPUP_VMMIG_T_SERIAL:
		vm->serial.ier = u.serial.ier & 0x0f;
		vm->serial.lcr = u.serial.lcr;
		vm->serial.mcr = u.serial.mcr & 0x1f;
		vm->serial.scr = u.serial.scr;
		vm->serial.dll = u.serial.dll;
		vm->serial.dlm = u.serial.dlm;
		return 0;
	case GPUP_VMMIG_T_IRQCHIP:
		if (vm->irqchip && u.ic.chip_id < 3 && ioctl(vm->vm_fd, KVM_SET_IRQCHIP, &u.ic) == 0)
			return 0;
		snprintf(err, errlen, "interrupt controller %u refused", u.ic.chip_id);
		return -EINVAL;
	default:
		/* The VM keeps its age: uptime_ms goes on from the source's. */
		vm->start_ns = hv_now_ns() - (u.up < (1ull << 62) ? u.up : 0);
		return 0;
	}
}

/* PCI functions first: an MSI-X table is routed by their enable bits. */
int hv_vmstate_load(struct hv_vm *vm, const uint8_t *recs, uint32_t len, char *err,
		    size_t errlen)
{
	struct hv_vms_rec r;
	int rc = 0;

	pthread_mutex_lock(&vm->io_lock);
	for (int pass = 0; pass < 2 && rc == 0; pass++) {
		uint32_t off = 0;

		while (rc == 0 && hv_vms_rec_next(recs, len, &off, &r) > 0)
			if ((r.tag == GPUP_VMMIG_T_PCI) == (pass == 0))
				rc = hv_vmstate_rec(vm, &r, err, errlen);
	}
	pthread_mutex_unlock(&vm->io_lock);
	return rc;
}
