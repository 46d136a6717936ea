// SPDX-License-Identifier: MIT
/*
 * The KVM virtual machine: /dev/kvm, the VM fd, guest RAM and memory slots,
 * the in-kernel interrupt controller, and stopping a running VM.
 *
 * Guest RAM is a memfd mapped shared: the daemon maps the same pages for
 * DMA (vfio-user DMA_MAP passes the fd) and migration can read it later.
 * Nothing is pre-faulted: a guest that touches 1 MiB costs 1 MiB, which is
 * most of why a VM starts in a few milliseconds.  The exception is a
 * destination told the size to expect (`--incoming` with `--mem`): it
 * faults the RAM in while it waits for the source, so that the stream's
 * pages land on pages that are there (hv_ram_prepare).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "hv/hv_int.h"

int hv_log_fd = STDERR_FILENO;

static void hv_vlog(const char *fmt, va_list ap)
{
	char line[512];
	int n;

	n = vsnprintf(line, sizeof(line) - 1, fmt, ap);
	if (n < 0)
		return;
	if ((size_t)n > sizeof(line) - 2)
		n = sizeof(line) - 2;
	line[n++] = '\n';
	/* One write per line so that lines from threads do not interleave. */
	if (write(hv_log_fd, "gpup run: ", 10) < 0 ||
	    write(hv_log_fd, line, (size_t)n) < 0)
		return;
}

void hv_log(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	hv_vlog(fmt, ap);
	va_end(ap);
}

/* One budget for the whole process: a VMM runs one VM. */
static pthread_mutex_t hv_log_lock = PTHREAD_MUTEX_INITIALIZER;
static uint64_t hv_log_window_ns;
static unsigned int hv_log_in_window, hv_log_dropped;

void hv_log_guest(const char *fmt, ...)
{
	uint64_t now = hv_now_ns();
	unsigned int dropped = 0;
	bool print;
	va_list ap;

	pthread_mutex_lock(&hv_log_lock);
	if (now - hv_log_window_ns >= 1000000000ull) {
		hv_log_window_ns = now;
		hv_log_in_window = 0;
		dropped = hv_log_dropped;
		hv_log_dropped = 0;
	}
	print = hv_log_in_window < HV_LOG_GUEST_BURST;
	if (print)
		hv_log_in_window++;
	else
		hv_log_dropped++;
	pthread_mutex_unlock(&hv_log_lock);
	if (dropped)
		hv_log("%u more lines about the guest's accesses were dropped", dropped);
	if (!print)
		return;
	va_start(ap, fmt);
	hv_vlog(fmt, ap);
	va_end(ap);
}

uint64_t hv_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static int hv_open_kvm(struct hv_vm *vm)
{
	int v;

	vm->kvm_fd = open("/dev/kvm", O_RDWR | O_CLOEXEC);
	if (vm->kvm_fd < 0) {
		int err = errno; /* before the log line can change it */

		hv_log("cannot open /dev/kvm: %s (is KVM enabled and are you "
		       "in the kvm group?)", strerror(err));
		return -err;
	}
	v = ioctl(vm->kvm_fd, KVM_GET_API_VERSION, 0);
	if (v != KVM_API_VERSION) {
		hv_log("unsupported KVM API version %d", v);
		return -ENOTSUP;
	}
	if (ioctl(vm->kvm_fd, KVM_CHECK_EXTENSION, KVM_CAP_IRQFD) <= 0 ||
	    ioctl(vm->kvm_fd, KVM_CHECK_EXTENSION, KVM_CAP_IOEVENTFD) <= 0 ||
	    ioctl(vm->kvm_fd, KVM_CHECK_EXTENSION, KVM_CAP_IMMEDIATE_EXIT) <= 0) {
		hv_log("this kernel's KVM lacks irqfd, ioeventfd or immediate_exit");
		return -ENOTSUP;
	}
	v = ioctl(vm->kvm_fd, KVM_GET_VCPU_MMAP_SIZE, 0);
	if (v <= 0) {
		int err = errno; /* before the log line can change it */

		hv_log("KVM_GET_VCPU_MMAP_SIZE: %s", strerror(err));
		return -err;
	}
	vm->run_size = (size_t)v;
	return 0;
}

/* A sealed memfd of size bytes, mapped shared.  Sealed to its size: a
 * device that maps it can trust it never shrinks under its DMA. */
static int hv_ram_map(struct hv_ram *r, uint64_t size)
{
	r->size = size;
	r->fd = memfd_create("gpup-guest-ram", MFD_CLOEXEC | MFD_ALLOW_SEALING);
	if (r->fd < 0 || ftruncate(r->fd, (off_t)size) < 0 ||
	    fcntl(r->fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL) < 0) {
		int err = errno; /* before the log line can change it */

		hv_log("cannot create %llu bytes of guest RAM: %s", (unsigned long long)size,
		       strerror(err));
		return -err;
	}
	r->mem = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_NORESERVE, r->fd, 0);
	if (r->mem == MAP_FAILED) {
		int err = errno; /* before the log line can change it */

		r->mem = NULL;
		hv_log("cannot map guest RAM: %s", strerror(err));
		return -err;
	}
	return 0;
}

static void *hv_ram_fill(void *arg)
{
	struct hv_ram *r = arg;

	pthread_setname_np(pthread_self(), "gpup-ramfill");
	for (uint64_t at = 0; at < r->size && !atomic_load(&r->stop); at += HV_RAM_FILL_STEP) {
		uint64_t n = r->size - at < HV_RAM_FILL_STEP ? r->size - at : HV_RAM_FILL_STEP;

		if (madvise(r->mem + at, n, MADV_POPULATE_WRITE) < 0)
			break; /* an older kernel: first touch it is */
	}
	return NULL;
}

int hv_ram_prepare(struct hv_ram *r, uint64_t size)
{
	int rc;

	memset(r, 0, sizeof(*r));
	r->fd = -1;
	rc = hv_ram_map(r, size);
	if (rc == 0 && (rc = -pthread_create(&r->filler, NULL, hv_ram_fill, r)) == 0)
		r->filling = true;
	return rc;
}

void hv_ram_ready(struct hv_ram *r)
{
	atomic_store(&r->stop, true);
	if (r->filling)
		pthread_join(r->filler, NULL);
	r->filling = false;
}

void hv_ram_free(struct hv_ram *r)
{
	hv_ram_ready(r);
	if (r->mem)
		munmap(r->mem, r->size);
	if (r->fd >= 0)
		close(r->fd);
	r->mem = NULL;
	r->fd = -1;
}

/* Guest RAM: what cfg->ram made ready if it is of the size, else new. */
static int hv_create_ram(struct hv_vm *vm)
{
	struct hv_ram *ready = vm->cfg->ram, r = { .fd = -1 };
	int rc = 0;

	if (ready && ready->mem && ready->size == vm->mem_size) {
		hv_ram_ready(ready);
		r = *ready;
		ready->mem = NULL;
		ready->fd = -1;
	} else {
		rc = hv_ram_map(&r, vm->mem_size);
	}
	vm->mem_fd = r.fd;
	vm->mem = r.mem;
	if (rc < 0)
		return rc;
	/* The first slot: HV_RAM_SLOT. */
	return hv_memslot_set(vm, hv_memslot_alloc(vm), 0, vm->mem_size, vm->mem);
}

unsigned int hv_memslot_alloc(struct hv_vm *vm)
{
	return vm->next_slot++;
}

int hv_memslot_set(struct hv_vm *vm, unsigned int slot, uint64_t gpa,
		   uint64_t size, void *hva)
{
	struct kvm_userspace_memory_region r = {
		.slot = slot,
		.guest_phys_addr = gpa,
		.memory_size = size,
		.userspace_addr = (uintptr_t)hva,
		.flags = size && vm->dirty_log ? KVM_MEM_LOG_DIRTY_PAGES : 0,
	};

	if (ioctl(vm->vm_fd, KVM_SET_USER_MEMORY_REGION, &r) < 0) {
		int rc = -errno;

		hv_log_guest("KVM_SET_USER_MEMORY_REGION at 0x%llx: %s",
			     (unsigned long long)gpa, strerror(-rc));
		return rc;
	}
	return 0;
}

static int hv_create_machine(struct hv_vm *vm)
{
	vm->vm_fd = ioctl(vm->kvm_fd, KVM_CREATE_VM, 0);
	if (vm->vm_fd < 0) {
		int err = errno; /* before the log line can change it */

		hv_log("KVM_CREATE_VM: %s", strerror(err));
		return -err;
	}
	/* Intel VMX needs three pages for the real-mode TSS; out of RAM. */
	if (ioctl(vm->vm_fd, KVM_SET_TSS_ADDR, (unsigned long)HV_TSS_ADDR) < 0) {
		int err = errno; /* before the log line can change it */

		hv_log("KVM_SET_TSS_ADDR: %s", strerror(err));
		return -err;
	}
	return 0;
}

/* The in-kernel LAPIC, IOAPIC and PIC: needed for MSIs, irqfds and
 * starting other vCPUs.  A one-vCPU VM with no device has nothing that
 * could interrupt it and goes without.  Creating one changes the VM's I/O
 * buses, as an ioeventfd does, and on some hosts the next memory slot set
 * after such a change waits for the SRCU grace period it began: 5 to 10
 * ms, where `hello` lives 3.  So the irqchip comes after every slot of the
 * start-up: guest RAM here, each partition's VRAM at attach. */
int hv_vm_irqchip(struct hv_vm *vm)
{
	if (!vm->irqchip)
		return 0;
	if (ioctl(vm->vm_fd, KVM_CREATE_IRQCHIP, 0) < 0) {
		int err = errno; /* before the log line can change it */

		hv_log("cannot set up the VM's interrupt controller: %s",
		       strerror(err));
		return -err;
	}
	return 0;
}

int hv_vm_create(struct hv_vm *vm, const struct hv_config *cfg)
{
	int rc;

	memset(vm, 0, sizeof(*vm));
	vm->cfg = cfg;
	vm->kvm_fd = vm->vm_fd = vm->mem_fd = vm->stop_fd = -1;
	vm->serial.fd = -1;
	vm->mem_size = cfg->mem_size;
	vm->exit_code = -1;
	vm->start_ns = hv_now_ns();
	pthread_mutex_init(&vm->io_lock, NULL);
	pthread_mutex_init(&vm->pause_lock, NULL);
	pthread_cond_init(&vm->pause_cond, NULL);
	vm->stop_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (vm->stop_fd < 0)
		return -errno;
	rc = hv_open_kvm(vm);
	if (rc == 0)
		rc = hv_create_machine(vm);
	vm->irqchip = cfg->irqchip || cfg->ngpus || cfg->ncpus > 1;
	if (rc == 0)
		rc = hv_create_ram(vm);
	return rc;
}

/* The first caller decides the exit code; every vCPU is kicked out of
 * KVM_RUN and the main loop wakes on stop_fd. */
void hv_vm_stop(struct hv_vm *vm, int code)
{
	uint64_t one = 1;
	bool was = false;
	int unset = -1;

	atomic_compare_exchange_strong(&vm->exit_code, &unset, code);
	if (!atomic_compare_exchange_strong(&vm->stopping, &was, true))
		return;
	if (write(vm->stop_fd, &one, sizeof(one)) < 0)
		hv_log("cannot signal the main loop: %s", strerror(errno));
}

void hv_vm_destroy(struct hv_vm *vm)
{
	for (unsigned int i = 0; i < vm->ncpus; i++) {
		if (vm->vcpus[i].run)
			munmap(vm->vcpus[i].run, vm->run_size);
		if (vm->vcpus[i].fd >= 0)
			close(vm->vcpus[i].fd);
	}
	if (vm->mem)
		munmap(vm->mem, vm->mem_size);
	free(vm->ckpt_hash);
	vm->ckpt_hash = NULL;
	if (vm->mem_fd >= 0)
		close(vm->mem_fd);
	if (vm->vm_fd >= 0)
		close(vm->vm_fd);
	if (vm->kvm_fd >= 0)
		close(vm->kvm_fd);
	if (vm->stop_fd >= 0)
		close(vm->stop_fd);
	pthread_mutex_destroy(&vm->io_lock);
	pthread_mutex_destroy(&vm->pause_lock);
	pthread_cond_destroy(&vm->pause_cond);
}
