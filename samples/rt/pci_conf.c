// SPDX-License-Identifier: MIT
/*
 * PCI for the guests: configuration mechanism #1 on bus 0, finding a
 * function by vendor and device id, reading its BARs (sized the standard
 * way, with decoding off while the BAR reads back its mask) and walking
 * its capability list.
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

static void rt_pci_read_bars(struct rt_pci_dev *d)
{
	uint16_t cmd = rt_pci_read16(d->devfn, 0x04);

	rt_pci_write16(d->devfn, 0x04, cmd & ~0x3);
	for (unsigned int b = 0; b < 6; b++) {
		unsigned int off = 0x10 + 4 * b;
		uint32_t lo = rt_pci_read32(d->devfn, off), hi = 0, mlo, mhi = 0xffffffffu;
		uint64_t mask;
		bool is64 = (lo & 0x7) == 0x4;

		if (lo & 1)
			continue; /* I/O BARs: none of ours */
		rt_pci_write32(d->devfn, off, 0xffffffffu);
		mlo = rt_pci_read32(d->devfn, off);
		rt_pci_write32(d->devfn, off, lo);
		if (is64) {
			hi = rt_pci_read32(d->devfn, off + 4);
			rt_pci_write32(d->devfn, off + 4, 0xffffffffu);
			mhi = rt_pci_read32(d->devfn, off + 4);
			rt_pci_write32(d->devfn, off + 4, hi);
		}
		d->bar[b] = ((uint64_t)hi << 32) | (lo & ~0xfu);
		mask = ((uint64_t)mhi << 32) | (mlo & ~0xfu);
		/* A 32-bit BAR's mask has all upper bits set (mhi): same formula. */
		if (mlo & ~0xfu || (is64 && mhi))
			d->bar_size[b] = ~mask + 1;
		if (is64)
			b++;
	}
	rt_pci_write16(d->devfn, 0x04, cmd);
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
		return 0;
	}
	return -1;
}

void rt_pci_enable(const struct rt_pci_dev *d)
{
	/* Memory decoding and bus mastering (the device DMAs our queues). */
	rt_pci_write16(d->devfn, 0x04, rt_pci_read16(d->devfn, 0x04) | 0x6);
}
