// SPDX-License-Identifier: MIT
/*
 * vCPUs: creation, CPUID, the PVH entry state, and the run loop that turns
 * KVM exits into device calls.  One thread per vCPU; the main thread stops
 * them by setting immediate_exit and sending SIGUSR1, which breaks KVM_RUN
 * with EINTR.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "hv/hv_int.h"

#define HV_CPUID_MAX_ENTRIES 256
/* Hypervisor timing leaf (the VMware/KVM convention): eax = TSC kHz,
 * ebx = LAPIC timer kHz.  The guest runtime uses it to turn rdtsc into ns. */
#define HV_CPUID_TIMING 0x40000010u

static void hv_fix_cpuid_entry(struct kvm_cpuid_entry2 *e, unsigned int index,
			       bool apic)
{
	switch (e->function) {
	case 1:
		e->ebx = (e->ebx & 0x00ffffffu) | (index << 24);
		e->ecx |= 1u << 31; /* running under a hypervisor */
		if (!apic) {
			/* No in-kernel irqchip: no local APIC to offer. */
			e->edx &= ~(1u << 9);
			e->ecx &= ~((1u << 21) | (1u << 24));
		}
		break;
	case 0xb:
	case 0x1f:
		e->edx = index;
		break;
	case 0x40000000:
		if (e->eax < HV_CPUID_TIMING)
			e->eax = HV_CPUID_TIMING;
		break;
	default:
		break;
	}
}

static int hv_vcpu_set_cpuid(struct hv_vcpu *cpu)
{
	struct hv_vm *vm = cpu->vm;
	struct kvm_cpuid2 *c;
	struct kvm_cpuid_entry2 *t;
	int khz, rc = 0;

	c = calloc(1, sizeof(*c) + (HV_CPUID_MAX_ENTRIES + 1) * sizeof(c->entries[0]));
	if (!c)
		return -ENOMEM;
	c->nent = HV_CPUID_MAX_ENTRIES;
	if (ioctl(vm->kvm_fd, KVM_GET_SUPPORTED_CPUID, c) < 0) {
		rc = -errno;
		hv_log("KVM_GET_SUPPORTED_CPUID: %s", strerror(errno));
		goto out;
	}
	for (unsigned int i = 0; i < c->nent; i++)
		hv_fix_cpuid_entry(&c->entries[i], cpu->index, vm->irqchip);
	khz = ioctl(cpu->fd, KVM_GET_TSC_KHZ, 0);
	t = &c->entries[c->nent++];
	memset(t, 0, sizeof(*t));
	t->function = HV_CPUID_TIMING;
	t->eax = khz > 0 ? (uint32_t)khz : 0;
	t->ebx = 1000000; /* KVM's LAPIC timer runs at 1 GHz */
	if (ioctl(cpu->fd, KVM_SET_CPUID2, c) < 0) {
		rc = -errno;
		hv_log("KVM_SET_CPUID2: %s", strerror(errno));
	}
out:
	free(c);
	return rc;
}

/* Memory types: with no firmware to program the MTRRs, their reset value
 * (disabled, default uncached) makes every guest access uncached on hosts
 * that honour guest MTRRs, a thousandfold slowdown.  Enable them with
 * write-back as the default, as firmware (or Firecracker) would. */
static int hv_vcpu_set_msrs(struct hv_vcpu *cpu)
{
	struct {
		struct kvm_msrs hdr;
		struct kvm_msr_entry e[1];
	} m = { .hdr.nmsrs = 1, .e[0] = { .index = 0x2ff, .data = 0x806 } };

	if (ioctl(cpu->fd, KVM_SET_MSRS, &m) != 1) {
		hv_log("cannot set the vCPU's MTRRs: %s", strerror(errno));
		return -EIO;
	}
	return 0;
}

int hv_vcpu_create(struct hv_vm *vm, unsigned int index)
{
	struct hv_vcpu *cpu = &vm->vcpus[index];

	cpu->vm = vm;
	cpu->index = index;
	cpu->fd = ioctl(vm->vm_fd, KVM_CREATE_VCPU, (unsigned long)index);
	if (cpu->fd < 0) {
		int err = errno; /* before the log line can change it */

		hv_log("KVM_CREATE_VCPU %u: %s", index, strerror(err));
		return -err;
	}
	vm->ncpus = index + 1;
	cpu->run = mmap(NULL, vm->run_size, PROT_READ | PROT_WRITE, MAP_SHARED,
			cpu->fd, 0);
	if (cpu->run == MAP_FAILED) {
		cpu->run = NULL;
		int err = errno; /* before the log line can change it */

		hv_log("cannot map vCPU %u state: %s", index, strerror(err));
		return -err;
	}
	if (hv_vcpu_set_cpuid(cpu) < 0)
		return -EIO;
	return hv_vcpu_set_msrs(cpu);
}

static void hv_flat_seg(struct kvm_segment *s, uint16_t sel, uint8_t type)
{
	memset(s, 0, sizeof(*s));
	s->base = 0;
	s->limit = 0xffffffff;
	s->selector = sel;
	s->type = type;
	s->present = 1;
	s->db = 1;
	s->s = 1;
	s->g = 1;
}

/* The PVH ABI's entry state: 32-bit protected mode, paging off, flat
 * 4 GiB code and data segments, a 32-bit TSS, ebx = hvm_start_info. */
int hv_vcpu_set_boot_state(struct hv_vcpu *cpu, uint64_t entry, uint64_t rbx)
{
	struct kvm_sregs sregs;
	struct kvm_regs regs;

	if (ioctl(cpu->fd, KVM_GET_SREGS, &sregs) < 0)
		return -errno;
	hv_flat_seg(&sregs.cs, 0x10, 0xb);
	hv_flat_seg(&sregs.ds, 0x18, 0x3);
	sregs.es = sregs.fs = sregs.gs = sregs.ss = sregs.ds;
	memset(&sregs.tr, 0, sizeof(sregs.tr));
	sregs.tr.selector = 0x20;
	sregs.tr.limit = 0x67;
	sregs.tr.type = 0xb;
	sregs.tr.present = 1;
	sregs.cr0 = 0x11; /* PE, ET */
	sregs.cr4 = 0;
	sregs.efer = 0;
	if (ioctl(cpu->fd, KVM_SET_SREGS, &sregs) < 0)
		return -errno;
	memset(&regs, 0, sizeof(regs));
	regs.rip = entry;
	regs.rbx = rbx;
	regs.rflags = 0x2;
	return ioctl(cpu->fd, KVM_SET_REGS, &regs) < 0 ? -errno : 0;
}

static void hv_vcpu_crash(struct hv_vcpu *cpu, const char *what)
{
	struct kvm_regs regs;
	unsigned long long rip = 0;

	if (ioctl(cpu->fd, KVM_GET_REGS, &regs) == 0)
		rip = regs.rip;
	hv_log("guest crashed: %s (vCPU %u, rip 0x%llx)", what, cpu->index, rip);
	hv_vm_stop(cpu->vm, HV_EXIT_CRASH);
}

static void hv_vcpu_io(struct hv_vcpu *cpu)
{
	struct kvm_run *run = cpu->run;
	uint8_t *p = (uint8_t *)run + run->io.data_offset;

	for (uint32_t i = 0; i < run->io.count; i++) {
		hv_pio_dispatch(cpu->vm, run->io.port,
				run->io.direction == KVM_EXIT_IO_OUT, p,
				run->io.size);
		p += run->io.size;
	}
}

/* Returns false when the vCPU must stop. */
static bool hv_vcpu_exit(struct hv_vcpu *cpu)
{
	struct kvm_run *run = cpu->run;
	char what[96];

	atomic_fetch_add(&cpu->vm->exits, 1);
	switch (run->exit_reason) {
	case KVM_EXIT_IO:
		atomic_fetch_add(&cpu->vm->io_exits, 1);
		hv_vcpu_io(cpu);
		return true;
	case KVM_EXIT_MMIO:
		atomic_fetch_add(&cpu->vm->mmio_exits, 1);
		hv_mmio_dispatch(cpu->vm, run->mmio.phys_addr, run->mmio.is_write,
				 run->mmio.data, run->mmio.len);
		return true;
	case KVM_EXIT_SHUTDOWN:
		hv_vcpu_crash(cpu, "triple fault");
		return false;
	case KVM_EXIT_HLT:
		/* Only without an in-kernel irqchip: nothing could wake it. */
		hv_vcpu_crash(cpu, "halted with no interrupt controller to wake it "
			      "(see --irqchip)");
		return false;
	case KVM_EXIT_FAIL_ENTRY:
		snprintf(what, sizeof(what), "invalid CPU state (entry failure 0x%llx)",
			 (unsigned long long)run->fail_entry.hardware_entry_failure_reason);
		hv_vcpu_crash(cpu, what);
		return false;
	case KVM_EXIT_INTERNAL_ERROR:
		snprintf(what, sizeof(what), "KVM internal error %u",
			 run->internal.suberror);
		hv_vcpu_crash(cpu, what);
		return false;
	case KVM_EXIT_SYSTEM_EVENT:
		hv_vcpu_crash(cpu, "reset or power-off without an exit status");
		return false;
	default:
		snprintf(what, sizeof(what), "unhandled KVM exit %u", run->exit_reason);
		hv_vcpu_crash(cpu, what);
		return false;
	}
}

/* Out of KVM_RUN with its pending I/O completed (immediate_exit made
 * the last KVM_RUN finish it and return EINTR): wait while a pause is
 * asked.  The pauser kicks again until every vCPU is parked. */
static void hv_vcpu_park(struct hv_vcpu *cpu)
{
	struct hv_vm *vm = cpu->vm;

	pthread_mutex_lock(&vm->pause_lock);
	if (vm->pause) {
		cpu->parked = true;
		pthread_cond_broadcast(&vm->pause_cond);
		while (vm->pause && !atomic_load(&vm->stopping))
			pthread_cond_wait(&vm->pause_cond, &vm->pause_lock);
		cpu->parked = false;
	}
	if (!atomic_load(&vm->stopping))
		cpu->run->immediate_exit = 0;
	pthread_mutex_unlock(&vm->pause_lock);
}

static void *hv_vcpu_thread(void *arg)
{
	struct hv_vcpu *cpu = arg;
	struct hv_vm *vm = cpu->vm;
	char name[16];

	/* Named for top -H and perf, and for the benchmarks that count the
	 * guest's CPU apart from the VMM's (perf/vm_mig_perf.c). */
	snprintf(name, sizeof(name), "gpup-vcpu%u", cpu->index);
	pthread_setname_np(pthread_self(), name);
	while (!atomic_load(&vm->stopping)) {
		if (ioctl(cpu->fd, KVM_RUN, 0) < 0) {
			if (errno == EINTR && cpu->run->immediate_exit)
				hv_vcpu_park(cpu);
			if (errno == EINTR || errno == EAGAIN)
				continue;
			hv_log("KVM_RUN on vCPU %u: %s", cpu->index, strerror(errno));
			hv_vm_stop(vm, HV_EXIT_CRASH);
			break;
		}
		if (!hv_vcpu_exit(cpu))
			break;
	}
	return NULL;
}

static void hv_kick_handler(int sig)
{
	(void)sig;
}

int hv_vcpus_start(struct hv_vm *vm)
{
	struct sigaction sa = { .sa_handler = hv_kick_handler };
	int rc;

	sigemptyset(&sa.sa_mask);
	/* No SA_RESTART: the signal must break KVM_RUN. */
	if (sigaction(SIGUSR1, &sa, NULL) < 0)
		return -errno;
	for (unsigned int i = 0; i < vm->ncpus; i++) {
		rc = pthread_create(&vm->vcpus[i].thread, NULL, hv_vcpu_thread,
				    &vm->vcpus[i]);
		if (rc) {
			hv_log("cannot start vCPU %u: %s", i, strerror(rc));
			return -rc;
		}
		vm->vcpus[i].started = true;
	}
	return 0;
}

int hv_vcpus_pause(struct hv_vm *vm)
{
	struct timespec ts;
	bool all;

	pthread_mutex_lock(&vm->pause_lock);
	vm->pause = true;
	for (;;) {
		all = true;
		for (unsigned int i = 0; i < vm->ncpus; i++) {
			struct hv_vcpu *cpu = &vm->vcpus[i];

			if (!cpu->started || cpu->parked)
				continue;
			all = false;
			cpu->run->immediate_exit = 1;
			pthread_kill(cpu->thread, SIGUSR1);
		}
		if (all || atomic_load(&vm->stopping))
			break;
		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_nsec += 200000;
		if (ts.tv_nsec >= 1000000000) {
			ts.tv_sec++;
			ts.tv_nsec -= 1000000000;
		}
		pthread_cond_timedwait(&vm->pause_cond, &vm->pause_lock, &ts);
	}
	pthread_mutex_unlock(&vm->pause_lock);
	return all ? 0 : -EINTR;
}

void hv_vcpus_resume(struct hv_vm *vm)
{
	pthread_mutex_lock(&vm->pause_lock);
	vm->pause = false;
	pthread_cond_broadcast(&vm->pause_cond);
	pthread_mutex_unlock(&vm->pause_lock);
}

void hv_vcpus_join(struct hv_vm *vm)
{
	for (unsigned int i = 0; i < vm->ncpus; i++) {
		struct hv_vcpu *cpu = &vm->vcpus[i];

		if (!cpu->started)
			continue;
		cpu->run->immediate_exit = 1;
		pthread_mutex_lock(&vm->pause_lock);
		pthread_cond_broadcast(&vm->pause_cond);
		pthread_mutex_unlock(&vm->pause_lock);
		pthread_kill(cpu->thread, SIGUSR1);
		pthread_join(cpu->thread, NULL);
		cpu->started = false;
	}
}
