// SPDX-License-Identifier: MIT
/*
 * PCI for the guests: configuration mechanism #1 on bus 0, finding a
 * function by vendor and device id, reading its BARs (sized the standard
 * way, with decoding off while the BAR reads back its mask), placing any
 * that firmware left unassigned, and walking its capability list.
 */
#include "rt.h"

#define CONF_ADDR 0xcf8
#define CONF_DATA 0xcfc

static uint32_t rt_pci_addr(unsigned int devfn, unsigned int off)
{
	return 0x80000000u | (devfn << 8) | (off & 0xfc);
}

uint32_t rt_pci_read32(unsigned int devfn, unsigned int off)
{
	rt_outl(CONF_ADDR, rt_pci_addr(devfn, off));
	return rt_inl(CONF_DATA);
}

void rt_pci_write32(unsigned int devfn, unsigned int off, uint32_t v)
{
	rt_outl(CONF_ADDR, rt_pci_addr(devfn, off));
	rt_outl(CONF_DATA, v);
}

uint16_t rt_pci_read16(unsigned int devfn, unsigned int off)
{
	return (uint16_t)(rt_pci_read32(devfn, off) >> (8 * (off & 2)));
}

void rt_pci_write16(unsigned int devfn, unsigned int off, uint16_t v)
{
	uint32_t old = rt_pci_read32(devfn, off);
	unsigned int sh = 8 * (off & 2);

	old = (old & ~(0xffffu << sh)) | ((uint32_t)v << sh);
	rt_pci_write32(devfn, off, old);
}

unsigned int rt_pci_find_cap(unsigned int devfn, uint8_t id)
{
	unsigned int p;
	int guard = 48;

	if (!(rt_pci_read16(devfn, 0x06) & 0x10))
		return 0;
	for (p = rt_pci_read32(devfn, 0x34) & 0xfc; p && guard--;
	     p = (rt_pci_read32(devfn, p) >> 8) & 0xfc)
		if ((rt_pci_read32(devfn, p) & 0xff) == id)
			return p;
	return 0;
}

/* One memory BAR at config offset off: its address and size (0 for an
 * unimplemented BAR), sized the standard way with decoding off (the
 * caller's job) while it reads back its mask.  Returns how many BAR slots
 * it takes (2 for a 64-bit one). */
static unsigned int rt_pci_bar_probe(unsigned int devfn, unsigned int off, uint64_t *addr,
				     uint64_t *size)
{
	uint32_t lo = rt_pci_read32(devfn, off), hi = 0, mlo, mhi = 0xffffffffu;
	bool is64 = (lo & 0x7) == 0x4;
	uint64_t mask;

	*addr = 0;
	*size = 0;
	if (lo & 1)
		return 1; /* I/O BARs: none of ours */
	rt_pci_write32(devfn, off, 0xffffffffu);
	mlo = rt_pci_read32(devfn, off);
	rt_pci_write32(devfn, off, lo);
	if (is64) {
		hi = rt_pci_read32(devfn, off + 4);
		rt_pci_write32(devfn, off + 4, 0xffffffffu);
		mhi = rt_pci_read32(devfn, off + 4);
		rt_pci_write32(devfn, off + 4, hi);
	}
	*addr = ((uint64_t)hi << 32) | (lo & ~0xfu);
	mask = ((uint64_t)mhi << 32) | (mlo & ~0xfu);
	/* A 32-bit BAR's mask has all upper bits set (mhi): same formula. */
	if (mlo & ~0xfu || (is64 && mhi))
		*size = ~mask + 1;
	return is64 ? 2 : 1;
}

static void rt_pci_read_bars(struct rt_pci_dev *d)
{
	uint16_t cmd = rt_pci_read16(d->devfn, 0x04);

	rt_pci_write16(d->devfn, 0x04, cmd & ~0x3);
	for (unsigned int b = 0; b < 6;) {
		unsigned int n = rt_pci_bar_probe(d->devfn, 0x10 + 4 * b, &d->bar[b],
						  &d->bar_size[b]);

		d->is64[b] = n == 2;
		b += n;
	}
	rt_pci_write16(d->devfn, 0x04, cmd);
}

/*
 * Where firmware assigned no address (qboot, or none at all): place the
 * BAR ourselves, as an OS does.  32-bit BARs go in the PCI hole from
 * 3.5 GiB up to the IOAPIC at 0xfec00000: above the RAM the runtime uses
 * (below 3 GiB) and q35's ECAM window (2.75 to 3 GiB).  64-bit ones go
 * above 64 GiB, inside the CPU's physical address width.  Both start
 * past every BAR that another function on bus 0 already decodes.
 */
#define HOLE32_BASE 0xe0000000ull
#define HOLE32_END 0xfec00000ull
#define HOLE64_BASE (1ull << 36)

static uint64_t rt_align_up(uint64_t v, uint64_t a)
{
	return (v + a - 1) & ~(a - 1);
}

static void rt_pci_taken(uint64_t *next32, uint64_t *next64)
{
	for (unsigned int devfn = 0; devfn < 256; devfn++) {
		uint16_t cmd;

		if ((devfn & 7) && !(rt_pci_read32(devfn & ~7u, 0x0c) & 0x00800000u))
			continue; /* function 0 is not multi-function */
		if (rt_pci_read32(devfn, 0) == 0xffffffffu ||
		    ((rt_pci_read32(devfn, 0x0c) >> 16) & 0x7f) != 0)
			continue; /* nothing there, or not a type 0 header */
		cmd = rt_pci_read16(devfn, 0x04);
		rt_pci_write16(devfn, 0x04, cmd & ~0x3);
		for (unsigned int b = 0; b < 6;) {
			uint64_t a, sz;

			b += rt_pci_bar_probe(devfn, 0x10 + 4 * b, &a, &sz);
			if (!a || !sz)
				continue;
			if (a >= HOLE32_BASE && a < HOLE32_END && a + sz > *next32)
				*next32 = a + sz;
			else if (a >= HOLE64_BASE && a + sz > *next64)
				*next64 = a + sz;
		}
		rt_pci_write16(devfn, 0x04, cmd);
	}
}

static int rt_pci_assign_bars(struct rt_pci_dev *d)
{
	uint64_t next32 = HOLE32_BASE, next64 = HOLE64_BASE, limit64;
	uint16_t cmd = rt_pci_read16(d->devfn, 0x04);
	uint32_t r[4];
	bool need = false;

	for (unsigned int b = 0; b < 6; b++)
		need |= d->bar_size[b] && !d->bar[b];
	if (!need)
		return 0;
	rt_cpuid(0x80000000u, 0, r);
	limit64 = 1ull << 36;
	if (r[0] >= 0x80000008u) {
		rt_cpuid(0x80000008u, 0, r);
		limit64 = 1ull << (r[0] & 0xff);
	}
	rt_pci_taken(&next32, &next64);
	rt_pci_write16(d->devfn, 0x04, cmd & ~0x3);
	for (unsigned int b = 0; b < 6; b++) {
		uint64_t sz = d->bar_size[b], a;
		unsigned int off = 0x10 + 4 * b;

		if (!sz || d->bar[b])
			continue;
		if (d->is64[b]) {
			a = rt_align_up(next64, sz);
			if (a + sz > limit64)
				return -1;
			next64 = a + sz;
			rt_pci_write32(d->devfn, off + 4, (uint32_t)(a >> 32));
		} else {
			a = rt_align_up(next32, sz);
			if (a + sz > HOLE32_END)
				return -1;
			next32 = a + sz;
		}
		rt_pci_write32(d->devfn, off, (uint32_t)a);
		d->bar[b] = a;
	}
	rt_pci_write16(d->devfn, 0x04, cmd);
	return 0;
}

int rt_pci_find(uint16_t vendor, uint16_t device, unsigned int index,
		struct rt_pci_dev *out)
{
	for (unsigned int dev = 0; dev < 32; dev++) {
		uint32_t id = rt_pci_read32(dev << 3, 0);

		if (id == 0xffffffffu || (id & 0xffff) != vendor || (id >> 16) != device)
			continue;
		if (index--)
			continue;
		*out = (struct rt_pci_dev){ .devfn = dev << 3, .vendor = vendor,
					    .device = device };
		rt_pci_read_bars(out);
		return rt_pci_assign_bars(out);
	}
	return -1;
}

void rt_pci_enable(const struct rt_pci_dev *d)
{
	/* Memory decoding and bus mastering (the device DMAs our queues). */
	rt_pci_write16(d->devfn, 0x04, rt_pci_read16(d->devfn, 0x04) | 0x6);
}
