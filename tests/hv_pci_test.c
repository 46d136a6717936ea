// SPDX-License-Identifier: MIT
/*
 * The VMM's PCI host without KVM: configuration mechanism #1 through the
 * real port dispatch, the host bridge, BAR assignment and sizing, write
 * masks, the capability list, and the bar_map hook a device relies on to
 * follow its BARs (decoding on/off, a BAR moved, a BAR being sized).
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <string.h>

#include "hv/hv_int.h"

static struct hv_vm vm;

struct map_event {
	unsigned int bar;
	uint64_t old_gpa, new_gpa;
};

static struct map_event events[16];
static unsigned int nevents;

static void on_bar_map(struct hv_pci_dev *d, unsigned int bar, uint64_t old_gpa,
		       uint64_t new_gpa)
{
	(void)d;
	cr_assert_lt(nevents, 16);
	events[nevents++] = (struct map_event){ bar, old_gpa, new_gpa };
}

static void setup(void)
{
	memset(&vm, 0, sizeof(vm));
	pthread_mutex_init(&vm.io_lock, NULL);
	nevents = 0;
	cr_assert_eq(hv_pci_init(&vm), 0);
}

static void teardown(void)
{
	hv_pci_destroy(&vm);
	pthread_mutex_destroy(&vm.io_lock);
}

TestSuite(hv_pci, .init = setup, .fini = teardown);

static uint32_t cfg_read(unsigned int dev, unsigned int off, unsigned int len)
{
	uint32_t a = 0x80000000u | (dev << 11) | (off & 0xfc), v = 0;

	hv_pio_dispatch(&vm, 0xcf8, true, (uint8_t *)&a, 4);
	hv_pio_dispatch(&vm, (uint16_t)(0xcfc + (off & 3)), false, (uint8_t *)&v, len);
	return v;
}

static void cfg_write(unsigned int dev, unsigned int off, uint32_t v, unsigned int len)
{
	uint32_t a = 0x80000000u | (dev << 11) | (off & 0xfc);

	hv_pio_dispatch(&vm, 0xcf8, true, (uint8_t *)&a, 4);
	hv_pio_dispatch(&vm, (uint16_t)(0xcfc + (off & 3)), true, (uint8_t *)&v, len);
}

static struct hv_pci_dev *add_device(void)
{
	struct hv_pci_dev *d = hv_pci_add(&vm, 0x1234, 0x6770, 0x03020001);

	cr_assert_not_null(d);
	cr_assert_eq(hv_pci_add_bar(&vm, d, 0, 0x4000, false, false), 0);
	cr_assert_eq(hv_pci_add_bar(&vm, d, 2, 1ull << 32, true, true), 0);
	d->bar_map = on_bar_map;
	return d;
}

Test(hv_pci, host_bridge_and_empty_slots)
{
	cr_assert_eq(cfg_read(0, 0, 4), 0x67711234u);
	cr_assert_eq(cfg_read(0, 0x08, 4) >> 8, 0x060000u, "a host bridge");
	cr_assert_eq(cfg_read(5, 0, 4), 0xffffffffu, "nothing in slot 5");
	cr_assert_eq(cfg_read(31, 0, 2), 0xffffu);
}

Test(hv_pci, disabled_address_reads_all_ones)
{
	uint32_t a = 0x00000000u, v = 0;

	hv_pio_dispatch(&vm, 0xcf8, true, (uint8_t *)&a, 4);
	hv_pio_dispatch(&vm, 0xcfc, false, (uint8_t *)&v, 4);
	cr_assert_eq(v, 0xffffffffu, "enable bit clear");
	a = 0x80010000u; /* bus 1 */
	hv_pio_dispatch(&vm, 0xcf8, true, (uint8_t *)&a, 4);
	hv_pio_dispatch(&vm, 0xcfc, false, (uint8_t *)&v, 4);
	cr_assert_eq(v, 0xffffffffu, "only bus 0 exists");
	hv_pio_dispatch(&vm, 0xcf8, false, (uint8_t *)&v, 4);
	cr_assert_eq(v, a, "the address register reads back");
}

Test(hv_pci, bars_assigned_and_sized)
{
	add_device();
	cr_assert_eq(cfg_read(1, 0, 4), 0x67701234u);
	cr_assert_eq(cfg_read(1, 0x10, 4), 0xc0000000u, "BAR0 in the 32-bit window");
	cr_assert_eq(cfg_read(1, 0x18, 4), 0x0000000cu, "BAR2: 64-bit, prefetchable");
	cr_assert_eq(cfg_read(1, 0x1c, 4), 0x10u, "BAR2 at 64 GiB");
	/* Sizing: all ones in, the size mask (and type bits) out. */
	cfg_write(1, 0x10, 0xffffffffu, 4);
	cr_assert_eq(cfg_read(1, 0x10, 4), 0xffffc000u);
	cfg_write(1, 0x18, 0xffffffffu, 4);
	cfg_write(1, 0x1c, 0xffffffffu, 4);
	cr_assert_eq(cfg_read(1, 0x18, 4), 0x0000000cu, "4 GiB: no low address bits");
	cr_assert_eq(cfg_read(1, 0x1c, 4), 0xffffffffu);
	cr_assert_eq(cfg_read(1, 0x14, 4), 0, "BAR1 does not exist");
}

Test(hv_pci, read_only_fields_stay)
{
	add_device();
	cfg_write(1, 0x00, 0, 4);
	cfg_write(1, 0x08, 0, 4);
	cr_assert_eq(cfg_read(1, 0, 4), 0x67701234u);
	cr_assert_eq(cfg_read(1, 0x08, 4), 0x03020001u);
	cfg_write(1, 0x04, 0xffff, 2);
	cr_assert_eq(cfg_read(1, 0x04, 2), 0x0407u, "I/O, memory, master, INTx off");
}

Test(hv_pci, decoding_follows_command_and_moves)
{
	struct hv_pci_dev *d = add_device();

	hv_pci_enable(&vm, d);
	cr_assert_eq(nevents, 2);
	cr_assert_eq(events[0].bar, 0);
	cr_assert_eq(events[0].new_gpa, 0xc0000000u);
	cr_assert_eq(events[1].bar, 2);
	cr_assert_eq(events[1].new_gpa, 1ull << 36);
	/* Decoding off: both stop. */
	cfg_write(1, 0x04, 0x0004, 2);
	cr_assert_eq(nevents, 4);
	cr_assert_eq(events[2].old_gpa, 0xc0000000u);
	cr_assert_eq(events[2].new_gpa, 0);
	/* Sized while off: nothing; moved, then on: the new place. */
	cfg_write(1, 0x10, 0xffffffffu, 4);
	cfg_write(1, 0x10, 0xd0000000u, 4);
	cr_assert_eq(nevents, 4);
	cfg_write(1, 0x04, 0x0006, 2);
	cr_assert_eq(nevents, 6);
	cr_assert_eq(events[4].bar, 0);
	cr_assert_eq(events[4].old_gpa, 0);
	cr_assert_eq(events[4].new_gpa, 0xd0000000u);
	cr_assert_eq(d->bar_mapped[0], 0xd0000000u);
}

Test(hv_pci, capability_list)
{
	struct hv_pci_dev *d = add_device();
	unsigned int a = hv_pci_add_cap(d, 0x11, 12), b = hv_pci_add_cap(d, 0x05, 14);

	cr_assert_eq(a, 0x40);
	cr_assert_eq(b, 0x4c);
	cr_assert(cfg_read(1, 0x06, 2) & 0x10, "status: capability list");
	cr_assert_eq(cfg_read(1, 0x34, 1), 0x40);
	cr_assert_eq(cfg_read(1, 0x40, 1), 0x11);
	cr_assert_eq(cfg_read(1, 0x41, 1), 0x4c, "chained");
	cr_assert_eq(cfg_read(1, 0x4c, 1), 0x05);
	cr_assert_eq(cfg_read(1, 0x4d, 1), 0, "last");
	for (int i = 0; i < 64; i++)
		if (!hv_pci_add_cap(d, 0x09, 64))
			return; /* config space ran out: refused, not overrun */
	cr_assert_fail("capabilities never ran out of space");
}

Test(hv_pci, bad_bars_refused)
{
	struct hv_pci_dev *d = hv_pci_add(&vm, 0x1234, 0x1, 0);

	cr_assert_eq(hv_pci_add_bar(&vm, d, 0, 0x3000, false, false), -EINVAL, "not a power of 2");
	cr_assert_eq(hv_pci_add_bar(&vm, d, 0, 0x800, false, false), -EINVAL, "under a page");
	cr_assert_eq(hv_pci_add_bar(&vm, d, 5, 0x1000, true, false), -EINVAL, "64-bit BAR5");
	cr_assert_eq(hv_pci_add_bar(&vm, d, 0, 2ull << 30, false, false), -EINVAL, "2 GiB in 32 bits");
}

Test(hv_pci, bus_fills_up)
{
	unsigned int n = 0;

	while (hv_pci_add(&vm, 0x1234, 0x1, 0))
		n++;
	cr_assert_eq(n, HV_PCI_MAX_DEVS - 1, "slot 0 is the host bridge");
}
