// SPDX-License-Identifier: MIT
/*
 * Port and MMIO dispatch: devices register ranges (kvmtool style) and the
 * vCPU loop hands each trapped access to the owner.  Accesses nobody owns
 * behave like an empty bus: reads return all-ones, writes are dropped.
 * Dispatch runs under the VM's io_lock, so devices need no locks of their
 * own against each other.
 */
#include <errno.h>
#include <string.h>

#include "hv/hv_int.h"

static int hv_register(struct hv_io_range *tab, unsigned int *n, uint64_t base,
		       uint64_t len, hv_io_fn fn, void *opaque)
{
	if (*n >= HV_MAX_IO || len == 0 || base + len < base)
		return -ENOSPC;
	for (unsigned int i = 0; i < *n; i++)
		if (base < tab[i].base + tab[i].len && tab[i].base < base + len)
			return -EEXIST;
	tab[*n] = (struct hv_io_range){ base, len, fn, opaque };
	(*n)++;
	return 0;
}

int hv_register_pio(struct hv_vm *vm, uint64_t base, uint64_t len,
		    hv_io_fn fn, void *opaque)
{
	int rc;

	pthread_mutex_lock(&vm->io_lock);
	rc = hv_register(vm->pio, &vm->npio, base, len, fn, opaque);
	pthread_mutex_unlock(&vm->io_lock);
	return rc;
}

/* Caller holds io_lock (BARs move from inside config-space writes). */
int hv_register_mmio(struct hv_vm *vm, uint64_t base, uint64_t len,
		     hv_io_fn fn, void *opaque)
{
	return hv_register(vm->mmio, &vm->nmmio, base, len, fn, opaque);
}

void hv_unregister_mmio(struct hv_vm *vm, uint64_t base, void *opaque)
{
	for (unsigned int i = 0; i < vm->nmmio; i++) {
		if (vm->mmio[i].base != base || vm->mmio[i].opaque != opaque)
			continue;
		vm->mmio[i] = vm->mmio[--vm->nmmio];
		return;
	}
}

static void hv_dispatch(struct hv_vm *vm, struct hv_io_range *tab,
			const unsigned int *n, uint64_t addr, bool is_write,
			uint8_t *data, unsigned int len)
{
	pthread_mutex_lock(&vm->io_lock);
	for (unsigned int i = 0; i < *n; i++) {
		struct hv_io_range *r = &tab[i];

		if (addr >= r->base && addr - r->base < r->len) {
			r->fn(vm, r->opaque, addr - r->base, is_write, data, len);
			pthread_mutex_unlock(&vm->io_lock);
			return;
		}
	}
	pthread_mutex_unlock(&vm->io_lock);
	if (!is_write)
		memset(data, 0xff, len);
}

void hv_pio_dispatch(struct hv_vm *vm, uint16_t port, bool is_write,
		     uint8_t *data, unsigned int len)
{
	hv_dispatch(vm, vm->pio, &vm->npio, port, is_write, data, len);
}

void hv_mmio_dispatch(struct hv_vm *vm, uint64_t gpa, bool is_write,
		      uint8_t *data, unsigned int len)
{
	hv_dispatch(vm, vm->mmio, &vm->nmmio, gpa, is_write, data, len);
}
