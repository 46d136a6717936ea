// SPDX-License-Identifier: MIT
/*
 * KVM dirty logging for migration: KVM_MEM_LOG_DIRTY_PAGES on every
 * memory slot (guest RAM, each partition's BAR2), read with
 * KVM_GET_DIRTY_LOG.  Where KVM has KVM_CAP_MANUAL_DIRTY_LOG_PROTECT2,
 * reading the log no longer write-protects the pages again by itself: we
 * clear (re-protect) exactly the pages we got with KVM_CLEAR_DIRTY_LOG,
 * before the caller reads their contents, so a store that lands after
 * the copy is logged again.  Without it, GET_DIRTY_LOG does both at once.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>

#include "hv/hv_int.h"

/* Every slot again, with the flag as vm->dirty_log says. */
static int hv_dirty_reset_slots(struct hv_vm *vm)
{
	int rc = hv_memslot_set(vm, HV_RAM_SLOT, 0, vm->mem_size, vm->mem);

	for (unsigned int i = 0; rc == 0 && i < vm->ngpus; i++) {
		uint64_t gpa, size;
		uint8_t *vram = hv_vgpu_vram(vm->gpus[i], &size);
		unsigned int slot = hv_vgpu_vram_slot(vm->gpus[i], &gpa);

		if (gpa)
			rc = hv_memslot_set(vm, slot, gpa, size, vram);
	}
	return rc;
}

int hv_dirty_start(struct hv_vm *vm)
{
	struct kvm_enable_cap cap = {
		.cap = KVM_CAP_MANUAL_DIRTY_LOG_PROTECT2,
		.args[0] = KVM_DIRTY_LOG_MANUAL_PROTECT_ENABLE,
	};
	int rc;

	if (!vm->manual_protect &&
	    ioctl(vm->kvm_fd, KVM_CHECK_EXTENSION, KVM_CAP_MANUAL_DIRTY_LOG_PROTECT2) > 0 &&
	    ioctl(vm->vm_fd, KVM_ENABLE_CAP, &cap) == 0)
		vm->manual_protect = true;
	pthread_mutex_lock(&vm->io_lock);
	vm->dirty_log = true;
	rc = hv_dirty_reset_slots(vm);
	if (rc < 0) {
		vm->dirty_log = false;
		hv_dirty_reset_slots(vm);
	}
	pthread_mutex_unlock(&vm->io_lock);
	return rc;
}

void hv_dirty_stop(struct hv_vm *vm)
{
	pthread_mutex_lock(&vm->io_lock);
	if (vm->dirty_log) {
		vm->dirty_log = false;
		hv_dirty_reset_slots(vm);
	}
	pthread_mutex_unlock(&vm->io_lock);
}

int hv_dirty_get(struct hv_vm *vm, unsigned int slot, uint64_t npages, uint64_t *bitmap)
{
	uint64_t words = (npages + 63) / 64;
	uint64_t *got = calloc(words, 8);
	struct kvm_dirty_log log = { .slot = slot, .dirty_bitmap = got };
	int rc = 0;

	if (!got)
		return -ENOMEM;
	if (ioctl(vm->vm_fd, KVM_GET_DIRTY_LOG, &log) < 0) {
		rc = errno == EINVAL ? -ENOENT : -errno;
		goto out;
	}
	if (vm->manual_protect) {
		struct kvm_clear_dirty_log clr = {
			.slot = slot, .first_page = 0, .num_pages = (uint32_t)npages,
			.dirty_bitmap = got,
		};

		if (ioctl(vm->vm_fd, KVM_CLEAR_DIRTY_LOG, &clr) < 0) {
			rc = -errno;
			goto out;
		}
	}
	for (uint64_t i = 0; i < words; i++)
		bitmap[i] |= got[i];
out:
	free(got);
	return rc;
}
