// SPDX-License-Identifier: MIT
/*
 * A vCPU's state for migration: registers, segment and control registers,
 * FPU/SSE (XSAVE where KVM has it), XCR0, the MSRs a guest of ours can
 * change, the local APIC, pending events, the MP state and the debug
 * registers, as the records of a CPU chunk (uapi/gpup_vmmig.h), and back
 * in the order KVM needs them (SREGS before the LAPIC: it carries
 * APIC_BASE, which says whether the LAPIC is in x2APIC mode).
 *
 * What a host's KVM does not offer is left out at the source and, when
 * it comes in a stream, refused at the destination with its name: PVM,
 * for one, has no debug registers to give.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>

#include "hv/hv_int.h"

/* MSRs a guest can set and the VMM does not set itself. */
static const uint32_t hv_msr_list[] = {
	0x10,        /* TSC */
	0x174, 0x175, 0x176, /* SYSENTER_CS/ESP/EIP */
	0x1a0,       /* MISC_ENABLE */
	0x277,       /* PAT */
	0x2ff,       /* MTRR default type */
	0x6e0,       /* TSC_DEADLINE */
	0xc0000081, 0xc0000082, 0xc0000083, 0xc0000084, /* STAR, LSTAR, CSTAR, SFMASK */
	0xc0000102,  /* KERNEL_GS_BASE */
	0xc0000103,  /* TSC_AUX */
};
#define HV_NMSRS (sizeof(hv_msr_list) / sizeof(hv_msr_list[0]))

int hv_rec_put(uint8_t *buf, uint32_t max, uint32_t *off, uint32_t tag, const void *data,
	       uint32_t len)
{
	struct gpup_vmmig_rec h = { tag, len };
	uint32_t pad = (8 - len % 8) % 8;

	if ((uint64_t)*off + sizeof(h) + len + pad > max)
		return -ENOSPC;
	memcpy(buf + *off, &h, sizeof(h));
	memcpy(buf + *off + sizeof(h), data, len);
	memset(buf + *off + sizeof(h) + len, 0, pad);
	*off += (uint32_t)sizeof(h) + len + pad;
	return 0;
}

/* Each MSR alone: one a host's KVM does not know is skipped. */
static uint32_t hv_vcpu_get_msrs(struct hv_vcpu *cpu, struct kvm_msr_entry *out)
{
	struct {
		struct kvm_msrs hdr;
		struct kvm_msr_entry e[1];
	} m;
	uint32_t n = 0;

	for (unsigned int i = 0; i < HV_NMSRS; i++) {
		memset(&m, 0, sizeof(m));
		m.hdr.nmsrs = 1;
		m.e[0].index = hv_msr_list[i];
		if (ioctl(cpu->fd, KVM_GET_MSRS, &m) == 1)
			out[n++] = m.e[0];
	}
	return n;
}

static bool hv_kvm_has(struct hv_vcpu *cpu, long cap)
{
	return ioctl(cpu->vm->kvm_fd, KVM_CHECK_EXTENSION, cap) > 0;
}

/* Records whose ioctl is optional: taken when it works. */
static int hv_vcpu_save_opt(struct hv_vcpu *cpu, uint8_t *buf, uint32_t max, uint32_t *off)
{
	union {
		struct kvm_xsave xsave;
		struct kvm_fpu fpu;
		struct kvm_xcrs xcrs;
		struct kvm_vcpu_events ev;
		struct kvm_mp_state mp;
		struct kvm_debugregs dr;
		struct kvm_lapic_state lapic;
	} u;
	int rc = 0;

	memset(&u, 0, sizeof(u));
	if (hv_kvm_has(cpu, KVM_CAP_XSAVE) && ioctl(cpu->fd, KVM_GET_XSAVE, &u.xsave) == 0)
		rc = hv_rec_put(buf, max, off, GPUP_VMMIG_T_XSAVE, &u.xsave, sizeof(u.xsave));
	else if (ioctl(cpu->fd, KVM_GET_FPU, &u.fpu) == 0)
		rc = hv_rec_put(buf, max, off, GPUP_VMMIG_T_FPU, &u.fpu, sizeof(u.fpu));
	if (rc == 0 && hv_kvm_has(cpu, KVM_CAP_XCRS) && ioctl(cpu->fd, KVM_GET_XCRS, &u.xcrs) == 0)
		rc = hv_rec_put(buf, max, off, GPUP_VMMIG_T_XCRS, &u.xcrs, sizeof(u.xcrs));
	if (rc == 0 && cpu->vm->irqchip && ioctl(cpu->fd, KVM_GET_LAPIC, &u.lapic) == 0)
		rc = hv_rec_put(buf, max, off, GPUP_VMMIG_T_LAPIC, &u.lapic, sizeof(u.lapic));
	if (rc == 0 && ioctl(cpu->fd, KVM_GET_VCPU_EVENTS, &u.ev) == 0)
		rc = hv_rec_put(buf, max, off, GPUP_VMMIG_T_EVENTS, &u.ev, sizeof(u.ev));
	if (rc == 0 && cpu->vm->irqchip && ioctl(cpu->fd, KVM_GET_MP_STATE, &u.mp) == 0)
		rc = hv_rec_put(buf, max, off, GPUP_VMMIG_T_MPSTATE, &u.mp, sizeof(u.mp));
	if (rc == 0 && ioctl(cpu->fd, KVM_GET_DEBUGREGS, &u.dr) == 0)
		rc = hv_rec_put(buf, max, off, GPUP_VMMIG_T_DEBUGREGS, &u.dr, sizeof(u.dr));
	return rc;
}

/* The vCPU is parked (hv_vcpus_pause).  Returns the records' length. */
int hv_vcpu_save(struct hv_vcpu *cpu, uint8_t *buf, uint32_t max)
{
	struct kvm_msr_entry msrs[HV_NMSRS];
	struct kvm_regs regs;
	struct kvm_sregs sregs;
	uint32_t off = 0, n;
	int rc;

	if (ioctl(cpu->fd, KVM_GET_REGS, &regs) < 0 || ioctl(cpu->fd, KVM_GET_SREGS, &sregs) < 0)
		return -errno;
	rc = hv_rec_put(buf, max, &off, GPUP_VMMIG_T_REGS, &regs, sizeof(regs));
	if (rc == 0)
		rc = hv_rec_put(buf, max, &off, GPUP_VMMIG_T_SREGS, &sregs, sizeof(sregs));
	n = hv_vcpu_get_msrs(cpu, msrs);
	if (rc == 0 && n)
		rc = hv_rec_put(buf, max, &off, GPUP_VMMIG_T_MSRS, msrs,
				n * (uint32_t)sizeof(msrs[0]));
	if (rc == 0)
		rc = hv_vcpu_save_opt(cpu, buf, max, &off);
	return rc < 0 ? rc : (int)off;
}

/* 0, or -EINVAL with the index of the first MSR KVM refused in *bad. */
static int hv_vcpu_set_msrs_rec(struct hv_vcpu *cpu, const struct hv_vms_rec *r,
				uint32_t *bad)
{
	struct {
		struct kvm_msrs hdr;
		struct kvm_msr_entry e[GPUP_VMMIG_MAX_MSRS];
	} m;
	uint32_t n = r->len / (uint32_t)sizeof(m.e[0]);
	int got;

	memset(&m, 0, sizeof(m));
	m.hdr.nmsrs = n;
	memcpy(m.e, r->data, r->len);
	got = ioctl(cpu->fd, KVM_SET_MSRS, &m);
	if (got < 0)
		return -errno;
	if ((uint32_t)got != n) {
		*bad = m.e[got].index;
		return -EINVAL;
	}
	return 0;
}

static int hv_vcpu_set_rec(struct hv_vcpu *cpu, const struct hv_vms_rec *r, uint32_t *bad)
{
	static const unsigned long req[] = {
		[GPUP_VMMIG_T_REGS] = KVM_SET_REGS,
		[GPUP_VMMIG_T_SREGS] = KVM_SET_SREGS,
		[GPUP_VMMIG_T_FPU] = KVM_SET_FPU,
		[GPUP_VMMIG_T_XSAVE] = KVM_SET_XSAVE,
		[GPUP_VMMIG_T_XCRS] = KVM_SET_XCRS,
		[GPUP_VMMIG_T_LAPIC] = KVM_SET_LAPIC,
		[GPUP_VMMIG_T_EVENTS] = KVM_SET_VCPU_EVENTS,
		[GPUP_VMMIG_T_MPSTATE] = KVM_SET_MP_STATE,
		[GPUP_VMMIG_T_DEBUGREGS] = KVM_SET_DEBUGREGS,
	};
	/* The ioctls take their struct by pointer; it must be aligned. */
	union {
		struct kvm_xsave xsave;
		struct kvm_sregs sregs;
		uint64_t align;
	} u;

	if (r->tag == GPUP_VMMIG_T_MSRS)
		return hv_vcpu_set_msrs_rec(cpu, r, bad);
	if ((r->tag == GPUP_VMMIG_T_LAPIC || r->tag == GPUP_VMMIG_T_MPSTATE) && !cpu->vm->irqchip)
		return -ENODEV;
	memcpy(&u, r->data, r->len);
	return ioctl(cpu->fd, req[r->tag], &u) < 0 ? -errno : 0;
}

static const char *const hv_rec_names[] = {
	"?", "registers", "special registers", "FPU", "XSAVE", "XCRs", "MSRs",
	"local APIC", "pending events", "MP state", "debug registers",
};

/* In the order KVM needs: each tag in turn, records as they come. */
int hv_vcpu_load(struct hv_vcpu *cpu, const uint8_t *recs, uint32_t len, char *err,
		 size_t errlen)
{
	static const uint32_t order[] = {
		GPUP_VMMIG_T_SREGS, GPUP_VMMIG_T_REGS, GPUP_VMMIG_T_XCRS, GPUP_VMMIG_T_XSAVE,
		GPUP_VMMIG_T_FPU, GPUP_VMMIG_T_MSRS, GPUP_VMMIG_T_LAPIC, GPUP_VMMIG_T_MPSTATE,
		GPUP_VMMIG_T_EVENTS, GPUP_VMMIG_T_DEBUGREGS,
	};
	struct hv_vms_rec r;
	uint32_t bad = 0;

	for (unsigned int i = 0; i < sizeof(order) / sizeof(order[0]); i++) {
		uint32_t off = 0;

		while (hv_vms_rec_next(recs, len, &off, &r) > 0) {
			int rc;

			if (r.tag != order[i])
				continue;
			rc = hv_vcpu_set_rec(cpu, &r, &bad);
			if (rc >= 0)
				continue;
			if (bad)
				snprintf(err, errlen, "vCPU %u: this host's KVM refuses MSR 0x%x",
					 cpu->index, bad);
			else
				snprintf(err, errlen, "vCPU %u: this host's KVM refuses its %s: %s",
					 cpu->index, hv_rec_names[r.tag], strerror(-rc));
			return -EINVAL;
		}
	}
	return 0;
}
