// SPDX-License-Identifier: MIT
/*
 * PCI configuration space of the vGPU function as served over vfio-user:
 * identity from uapi/gpup_vgpu.h, BAR0 (registers, doorbells, MSI-X table
 * and PBA), BAR2 (the partition's VRAM) and an MSI-X capability.
 *
 * Writes go through a per-bit write mask, so BAR sizing works the PCI way
 * (write all ones, read back the size mask with the type bits) and
 * read-only fields can never be changed by a guest.  The VMM may shadow
 * parts of this space (as QEMU does for MSI-X); the server only keeps it
 * consistent.
 */
#include <errno.h>
#include <string.h>

#include "gpup/vgpu/vgpu_int.h"

#define CFG_VENDOR 0x00
#define CFG_DEVICE 0x02
#define CFG_COMMAND 0x04
#define CFG_STATUS 0x06
#define CFG_REVISION 0x08
#define CFG_CLASS 0x09
#define CFG_CACHE_LINE 0x0c
#define CFG_LATENCY 0x0d
#define CFG_HEADER_TYPE 0x0e
#define CFG_BAR0 0x10
#define CFG_BAR2 0x18
#define CFG_BAR3 0x1c
#define CFG_SUBSYS_VENDOR 0x2c
#define CFG_SUBSYS_ID 0x2e
#define CFG_CAP_PTR 0x34
#define CFG_INT_LINE 0x3c

#define CFG_MSIX 0x40 /* the capability's offset */
#define PCI_CAP_ID_MSIX_ 0x11
#define CMD_WRITABLE 0x0406u /* memory space, bus master, INTx disable */
#define STATUS_CAP_LIST 0x0010u
#define BAR_MEM64 0x4u
#define BAR_PREFETCH 0x8u
#define MSIX_CTRL_WRITABLE 0xc000u /* enable, function mask */

static void put16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)v;
	p[1] = (uint8_t)(v >> 8);
}

static void put32(uint8_t *p, uint32_t v)
{
	put16(p, (uint16_t)v);
	put16(p + 2, (uint16_t)(v >> 16));
}

static void init_bars(struct gpup_pci_cfg *c, uint64_t vram_size)
{
	uint64_t vmask = ~(vram_size - 1);

	put32(c->wmask + CFG_BAR0, ~(GPUP_BAR0_SIZE - 1u) & ~0xfu);
	put32(c->space + CFG_BAR2, BAR_MEM64 | BAR_PREFETCH);
	put32(c->wmask + CFG_BAR2, (uint32_t)vmask & ~0xfu);
	put32(c->wmask + CFG_BAR3, (uint32_t)(vmask >> 32));
}

static void init_msix(struct gpup_pci_cfg *c)
{
	uint8_t *cap = c->space + CFG_MSIX;

	cap[0] = PCI_CAP_ID_MSIX_;
	cap[1] = 0; /* last capability */
	put16(cap + 2, GPUP_MSIX_VECTORS - 1);
	put16(c->wmask + CFG_MSIX + 2, MSIX_CTRL_WRITABLE);
	put32(cap + 4, GPUP_PAGE_MSIX_TABLE | 0u); /* BIR 0: BAR0 */
	put32(cap + 8, GPUP_PAGE_MSIX_PBA | 0u);
}

void gpup_pci_cfg_init(struct gpup_pci_cfg *c, uint64_t vram_size)
{
	memset(c, 0, sizeof(*c));
	put16(c->space + CFG_VENDOR, GPUP_PCI_VENDOR_ID);
	put16(c->space + CFG_DEVICE, GPUP_PCI_DEVICE_ID);
	put16(c->space + CFG_STATUS, STATUS_CAP_LIST);
	c->space[CFG_REVISION] = GPUP_PCI_REVISION;
	c->space[CFG_CLASS] = (uint8_t)GPUP_PCI_CLASS;
	c->space[CFG_CLASS + 1] = (uint8_t)(GPUP_PCI_CLASS >> 8);
	c->space[CFG_CLASS + 2] = (uint8_t)(GPUP_PCI_CLASS >> 16);
	c->space[CFG_HEADER_TYPE] = 0;
	put16(c->space + CFG_SUBSYS_VENDOR, GPUP_PCI_VENDOR_ID);
	put16(c->space + CFG_SUBSYS_ID, 0x0001);
	c->space[CFG_CAP_PTR] = CFG_MSIX;
	put16(c->wmask + CFG_COMMAND, CMD_WRITABLE);
	c->wmask[CFG_CACHE_LINE] = 0xff;
	c->wmask[CFG_LATENCY] = 0xff;
	c->wmask[CFG_INT_LINE] = 0xff;
	init_bars(c, vram_size);
	init_msix(c);
}

static bool in_range(uint64_t off, size_t len)
{
	return len > 0 && off < GPUP_PCI_CFG_SIZE && len <= GPUP_PCI_CFG_SIZE - off;
}

int gpup_pci_cfg_read(const struct gpup_pci_cfg *c, uint64_t off, void *buf, size_t len)
{
	if (!in_range(off, len))
		return -EINVAL;
	memcpy(buf, c->space + off, len);
	return 0;
}

int gpup_pci_cfg_write(struct gpup_pci_cfg *c, uint64_t off, const void *buf, size_t len)
{
	const uint8_t *b = buf;

	if (!in_range(off, len))
		return -EINVAL;
	for (size_t i = 0; i < len; i++) {
		uint8_t m = c->wmask[off + i];

		c->space[off + i] = (uint8_t)((c->space[off + i] & ~m) | (b[i] & m));
	}
	return 0;
}
