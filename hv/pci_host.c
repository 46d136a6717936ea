// SPDX-License-Identifier: MIT
/*
 * The PCI host: configuration mechanism #1 (0xcf8 address, 0xcfc data) on
 * bus 0, a host bridge at 00:00.0, and functions that devices add with
 * their BARs and capabilities.  The VMM assigns BAR addresses itself, as
 * firmware would (32-bit BARs below 4 GiB, 64-bit BARs from 64 GiB), and
 * leaves memory decoding on; a guest that moves a BAR or turns decoding
 * off is followed through the device's bar_map hook.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "hv/hv_int.h"
#include "uapi/gpup_vgpu.h"

#define HV_PCI_CONF_ADDR 0xcf8
#define HV_PCI_CONF_DATA 0xcfc
#define PCI_VENDOR 0x00
#define PCI_COMMAND 0x04
#define PCI_STATUS 0x06
#define PCI_CLASS_REV 0x08
#define PCI_HEADER_TYPE 0x0e
#define PCI_BAR0 0x10
#define PCI_BAR_PREFETCH 0x8u
#define PCI_CAP_PTR 0x34
#define PCI_CMD_MEM 0x0002
#define PCI_STATUS_CAPS 0x0010
#define PCI_CAP_FIRST 0x40

struct hv_pci {
	struct hv_vm *vm;
	uint32_t addr;               /* last value written to 0xcf8 */
	struct hv_pci_dev *devs[HV_PCI_MAX_DEVS]; /* slot n is device n */
	unsigned int ndevs;
	uint64_t next32, next64;
};

static uint32_t hv_cfg_get(const struct hv_pci_dev *d, unsigned int off,
			   unsigned int len)
{
	uint32_t v = 0;

	memcpy(&v, d->cfg + off, len);
	return v;
}

static void hv_cfg_put(struct hv_pci_dev *d, unsigned int off, uint32_t v,
		       unsigned int len)
{
	memcpy(d->cfg + off, &v, len);
}

static uint64_t hv_bar_addr(const struct hv_pci_dev *d, unsigned int bar)
{
	uint64_t a = hv_cfg_get(d, PCI_BAR0 + 4 * bar, 4) & ~0xfull;

	if (d->bar_64[bar])
		a |= (uint64_t)hv_cfg_get(d, PCI_BAR0 + 4 * bar + 4, 4) << 32;
	return a;
}

static bool hv_ranges_meet(uint64_t a, uint64_t alen, uint64_t b, uint64_t blen)
{
	return a < b + blen && b < a + alen;
}

/* Why a BAR may not decode at [gpa, gpa + size), or NULL if it may. */
static const char *hv_bar_clash(const struct hv_pci *p, const struct hv_pci_dev *d,
				unsigned int bar, uint64_t gpa, uint64_t size)
{
	if (gpa + size < gpa)
		return "wraps around the address space";
	if (hv_ranges_meet(gpa, size, 0, p->vm->mem_size))
		return "overlaps guest RAM";
	if (hv_ranges_meet(gpa, size, HV_PCI_MMIO32_END, (4ull << 30) - HV_PCI_MMIO32_END))
		return "overlaps the interrupt controllers";
	for (unsigned int i = 0; i < p->ndevs; i++)
		for (unsigned int b = 0; b < HV_PCI_MAX_BARS; b++) {
			const struct hv_pci_dev *o = p->devs[i];

			if ((o != d || b != bar) && o->bar_mapped[b] &&
			    hv_ranges_meet(gpa, size, o->bar_mapped[b], o->bar_size[b]))
				return "overlaps another BAR";
		}
	return NULL;
}

/* Where BAR b should decode now: 0 for nowhere.  A BAR being sized (all
 * address bits set) does not decode, nor does one placed over something
 * else (said once per place). */
static uint64_t hv_bar_want(struct hv_pci *p, struct hv_pci_dev *d, unsigned int b)
{
	uint64_t want = hv_bar_addr(d, b), mask;
	const char *why;

	mask = d->bar_64[b] ? ~(d->bar_size[b] - 1) : (uint32_t)~(d->bar_size[b] - 1);
	if (!(hv_cfg_get(d, PCI_COMMAND, 2) & PCI_CMD_MEM) || want == 0 || want == mask)
		return 0;
	why = hv_bar_clash(p, d, b, want, d->bar_size[b]);
	if (!why) {
		d->bar_refused[b] = 0;
		return want;
	}
	if (d->bar_refused[b] != want)
		hv_log_guest("PCI 00:%02x.0 BAR%u at 0x%llx %s; not decoded until moved",
			     d->devfn >> 3, b, (unsigned long long)want, why);
	d->bar_refused[b] = want;
	return 0;
}

/* Where BAR b should decode now; tell the device if that changed. */
static void hv_pci_update_bar(struct hv_pci *p, struct hv_pci_dev *d, unsigned int b)
{
	uint64_t want = hv_bar_want(p, d, b);

	if (want == d->bar_mapped[b])
		return;
	if (d->bar_map && d->bar_map(d, b, d->bar_mapped[b], want) < 0) {
		hv_log_guest("PCI 00:%02x.0 BAR%u cannot be mapped at 0x%llx; "
			     "not decoded", d->devfn >> 3, b, (unsigned long long)want);
		want = 0;
	}
	d->bar_mapped[b] = want;
}

/* Every BAR, prefetchable ones first: those are plain memory, which a
 * device maps as a KVM memory slot, and on some hosts a slot set after
 * the device's register BAR got its ioeventfds waits for the SRCU grace
 * period they began (milliseconds, in a VM's start-up). */
static void hv_pci_update_bars(struct hv_pci *p, struct hv_pci_dev *d)
{
	for (unsigned int pass = 0; pass < 2; pass++)
		for (unsigned int b = 0; b < HV_PCI_MAX_BARS; b++) {
			bool prefetch = hv_cfg_get(d, PCI_BAR0 + 4 * b, 4) & PCI_BAR_PREFETCH;

			if (d->bar_size[b] && prefetch == (pass == 0))
				hv_pci_update_bar(p, d, b);
		}
}

static void hv_pci_cfg_write(struct hv_pci *p, struct hv_pci_dev *d, unsigned int off,
			     uint32_t v, unsigned int len)
{
	for (unsigned int i = 0; i < len; i++) {
		uint8_t m = d->wmask[off + i], b = (uint8_t)(v >> (8 * i));

		d->cfg[off + i] = (uint8_t)((d->cfg[off + i] & ~m) | (b & m));
	}
	if (off < PCI_BAR0 + 4 * HV_PCI_MAX_BARS && off + len > PCI_COMMAND)
		hv_pci_update_bars(p, d);
	if (d->cfg_written)
		d->cfg_written(d, off, len);
}

static struct hv_pci_dev *hv_pci_target(struct hv_pci *p, unsigned int *reg)
{
	uint32_t a = p->addr;
	unsigned int bus = (a >> 16) & 0xff, dev = (a >> 11) & 0x1f;

	if (!(a & 0x80000000u) || bus != 0 || ((a >> 8) & 7) != 0 ||
	    dev >= HV_PCI_MAX_DEVS)
		return NULL;
	*reg = a & 0xfc;
	return p->devs[dev];
}

static void hv_pci_io(struct hv_vm *vm, void *opaque, uint64_t off,
		      bool is_write, uint8_t *data, unsigned int len)
{
	struct hv_pci *p = opaque;
	struct hv_pci_dev *d;
	unsigned int reg = 0;
	uint32_t v = 0;

	(void)vm;
	if (off < 4) {
		/* Only whole-dword accesses select a config address. */
		if (off == 0 && len == 4 && is_write)
			memcpy(&p->addr, data, 4);
		else if (off == 0 && len == 4)
			memcpy(data, &p->addr, 4);
		else if (!is_write)
			memset(data, 0xff, len);
		return;
	}
	d = hv_pci_target(p, &reg);
	reg += (unsigned int)(off - 4);
	if (!d || reg + len > 256) {
		if (!is_write)
			memset(data, 0xff, len);
		return;
	}
	if (is_write) {
		memcpy(&v, data, len);
		hv_pci_cfg_write(p, d, reg, v, len);
	} else {
		memcpy(data, d->cfg + reg, len);
	}
}

static struct hv_pci_dev *hv_pci_new(struct hv_pci *p, uint16_t vendor,
				     uint16_t device, uint32_t class_rev)
{
	struct hv_pci_dev *d;

	if (p->ndevs >= HV_PCI_MAX_DEVS)
		return NULL;
	d = calloc(1, sizeof(*d));
	if (!d)
		return NULL;
	d->devfn = p->ndevs << 3;
	hv_cfg_put(d, PCI_VENDOR, vendor, 2);
	hv_cfg_put(d, PCI_VENDOR + 2, device, 2);
	hv_cfg_put(d, PCI_CLASS_REV, class_rev, 4);
	hv_cfg_put(d, PCI_COMMAND, 0, 2);
	d->wmask[PCI_COMMAND] = 0x07;     /* I/O, memory, bus master */
	d->wmask[PCI_COMMAND + 1] = 0x04; /* INTx disable */
	d->cap_next = PCI_CAP_FIRST;
	p->devs[p->ndevs++] = d;
	return d;
}

int hv_pci_init(struct hv_vm *vm)
{
	struct hv_pci *p = calloc(1, sizeof(*p));

	if (!p)
		return -ENOMEM;
	p->vm = vm;
	p->next32 = HV_PCI_MMIO32_BASE;
	p->next64 = HV_PCI_MMIO64_BASE;
	vm->pci = p;
	/* 00:00.0, a host bridge, so that a scan finds a normal bus. */
	if (!hv_pci_new(p, GPUP_PCI_VENDOR_ID, GPUP_PCI_HOST_DEVICE_ID, 0x06000000))
		return -ENOMEM;
	return hv_register_pio(vm, HV_PCI_CONF_ADDR, 8, hv_pci_io, p);
}

void hv_pci_destroy(struct hv_vm *vm)
{
	struct hv_pci *p = vm->pci;

	if (!p)
		return;
	for (unsigned int i = 0; i < p->ndevs; i++)
		free(p->devs[i]);
	free(p);
	vm->pci = NULL;
}

struct hv_pci_dev *hv_pci_add(struct hv_vm *vm, uint16_t vendor, uint16_t device,
			      uint32_t class_rev)
{
	return vm->pci ? hv_pci_new(vm->pci, vendor, device, class_rev) : NULL;
}

static uint64_t hv_align_up(uint64_t v, uint64_t a)
{
	return (v + a - 1) & ~(a - 1);
}

int hv_pci_add_bar(struct hv_vm *vm, struct hv_pci_dev *d, unsigned int bar,
		   uint64_t size, bool is_64, bool prefetch)
{
	struct hv_pci *p = vm->pci;
	unsigned int off = PCI_BAR0 + 4 * bar;
	uint64_t addr, mask;

	if (bar + (is_64 ? 1 : 0) >= HV_PCI_MAX_BARS || size < 4096 ||
	    (size & (size - 1)) || (!is_64 && size > (1ull << 30)))
		return -EINVAL;
	if (is_64) {
		addr = hv_align_up(p->next64, size);
		p->next64 = addr + size;
	} else {
		addr = hv_align_up(p->next32, size);
		if (addr + size > HV_PCI_MMIO32_END)
			return -ENOSPC;
		p->next32 = addr + size;
	}
	d->bar_size[bar] = size;
	d->bar_64[bar] = is_64;
	mask = ~(size - 1);
	hv_cfg_put(d, off, (uint32_t)addr | (is_64 ? 0x4 : 0) | (prefetch ? PCI_BAR_PREFETCH : 0),
		   4);
	for (unsigned int i = 0; i < 4; i++)
		d->wmask[off + i] = (uint8_t)((mask & ~0xfull) >> (8 * i));
	if (is_64) {
		hv_cfg_put(d, off + 4, (uint32_t)(addr >> 32), 4);
		for (unsigned int i = 0; i < 4; i++)
			d->wmask[off + 4 + i] = (uint8_t)(mask >> (32 + 8 * i));
	}
	return 0;
}

unsigned int hv_pci_add_cap(struct hv_pci_dev *d, uint8_t id, unsigned int len)
{
	unsigned int off = d->cap_next, prev;

	if (off + len > 256)
		return 0;
	d->cfg[off] = id;
	d->cfg[off + 1] = 0;
	if (off == PCI_CAP_FIRST) {
		d->cfg[PCI_CAP_PTR] = (uint8_t)off;
		hv_cfg_put(d, PCI_STATUS, PCI_STATUS_CAPS, 2);
	} else {
		/* Link from the last capability in the chain. */
		for (prev = d->cfg[PCI_CAP_PTR]; d->cfg[prev + 1]; prev = d->cfg[prev + 1])
			;
		d->cfg[prev + 1] = (uint8_t)off;
	}
	d->cap_next = (unsigned int)hv_align_up(off + len, 4);
	return off;
}

void hv_pci_enable(struct hv_vm *vm, struct hv_pci_dev *d)
{
	pthread_mutex_lock(&vm->io_lock);
	hv_cfg_put(d, PCI_COMMAND, hv_cfg_get(d, PCI_COMMAND, 2) | PCI_CMD_MEM, 2);
	hv_pci_update_bars(vm->pci, d);
	pthread_mutex_unlock(&vm->io_lock);
}

unsigned int hv_pci_count(struct hv_vm *vm)
{
	return vm->pci ? vm->pci->ndevs : 0;
}

struct hv_pci_dev *hv_pci_dev_at(struct hv_vm *vm, unsigned int i)
{
	return vm->pci && i < vm->pci->ndevs ? vm->pci->devs[i] : NULL;
}

/* Through the write mask, as the guest's own writes went: what a stream
 * says of read-only bits is ignored (this function was built the same
 * way, from the device, and must stay what it is). */
void hv_pci_restore(struct hv_vm *vm, struct hv_pci_dev *d, const uint8_t cfg[256])
{
	for (unsigned int i = 0; i < 256; i++)
		d->cfg[i] = (uint8_t)((d->cfg[i] & ~d->wmask[i]) | (cfg[i] & d->wmask[i]));
	hv_pci_update_bars(vm->pci, d);
	if (d->cfg_written)
		d->cfg_written(d, 0, 256);
}
