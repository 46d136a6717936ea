// SPDX-License-Identifier: MIT
/*
 * The VMM's PCI host without KVM: configuration mechanism #1 through the
 * real port dispatch, the host bridge, BAR assignment and sizing, write
 * masks, the capability list, and the bar_map hook a device relies on to
 * follow its BARs (decoding on/off, a BAR moved, a BAR being sized); and
 * what a hostile guest tries: BARs moved over RAM, over each other and
 * over the interrupt controllers, accesses of every width at every offset
 * of 0xcf8-0xcff, functions and slots with nothing there, and enough
 * refused moves to flood the log.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "hv/hv_int.h"

#define RAM (256u << 20)

static struct hv_vm vm;

struct map_event {
	unsigned int bar;
	uint64_t old_gpa, new_gpa;
};

static struct map_event events[16];
static unsigned int nevents;
static int map_result;          /* what the hook answers */

static int on_bar_map(struct hv_pci_dev *d, unsigned int bar, uint64_t old_gpa,
		      uint64_t new_gpa)
{
	(void)d;
	cr_assert_lt(nevents, 16);
	events[nevents++] = (struct map_event){ bar, old_gpa, new_gpa };
	return new_gpa ? map_result : 0;
}

static void setup(void)
{
	memset(&vm, 0, sizeof(vm));
	vm.mem_size = RAM;
	pthread_mutex_init(&vm.io_lock, NULL);
	nevents = 0;
	map_result = 0;
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
	/* The prefetchable BAR (memory, a KVM slot) before the register BAR. */
	cr_assert_eq(events[0].bar, 2);
	cr_assert_eq(events[0].new_gpa, 1ull << 36);
	cr_assert_eq(events[1].bar, 0);
	cr_assert_eq(events[1].new_gpa, 0xc0000000u);
	/* Decoding off: both stop. */
	cfg_write(1, 0x04, 0x0004, 2);
	cr_assert_eq(nevents, 4);
	cr_assert_eq(events[3].bar, 0);
	cr_assert_eq(events[3].old_gpa, 0xc0000000u);
	cr_assert_eq(events[3].new_gpa, 0);
	/* Sized while off: nothing; moved, then on: the new place. */
	cfg_write(1, 0x10, 0xffffffffu, 4);
	cfg_write(1, 0x10, 0xd0000000u, 4);
	cr_assert_eq(nevents, 4);
	cfg_write(1, 0x04, 0x0006, 2);
	cr_assert_eq(nevents, 6);
	cr_assert_eq(events[5].bar, 0);
	cr_assert_eq(events[5].old_gpa, 0);
	cr_assert_eq(events[5].new_gpa, 0xd0000000u);
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

/* Moves that would put a BAR over something else leave it undecoded,
 * with one line per place; moving it somewhere free maps it again. */
Test(hv_pci, bars_never_decode_over_ram_bars_or_the_apics)
{
	struct hv_pci_dev *d = add_device(), *e = hv_pci_add(&vm, 0x1234, 0x6770, 0);

	cr_assert_eq(hv_pci_add_bar(&vm, e, 2, 1u << 20, true, false), 0);
	e->bar_map = on_bar_map;
	hv_pci_enable(&vm, d);
	hv_pci_enable(&vm, e);
	cr_assert_eq(nevents, 3);
	cr_assert_eq(e->bar_mapped[2], (1ull << 36) + (1ull << 32), "after d's 4 GiB");

	cfg_write(1, 0x10, 0x00100000u, 4);           /* into guest RAM */
	cr_assert_eq(nevents, 4);
	cr_assert_eq(events[3].old_gpa, 0xc0000000u);
	cr_assert_eq(events[3].new_gpa, 0, "unmapped, not moved onto RAM");
	cr_assert_eq(d->bar_mapped[0], 0);
	cfg_write(1, 0x10, RAM - 0x4000, 4);           /* RAM's last 16 KiB */
	cfg_write(1, 0x10, 0xfee00000u, 4);           /* the local APIC */
	cfg_write(1, 0x10, 0xfec00000u, 4);           /* the IOAPIC */
	cfg_write(1, 0x04, 0x0006, 2);                /* decoding on again */
	cr_assert_eq(nevents, 4, "nothing mapped anywhere");
	cr_assert_eq(d->bar_mapped[0], 0);

	/* e's BAR2 onto d's BAR2, then onto d's BAR0 once that is back. */
	cfg_write(2, 0x18, 0, 4);
	cfg_write(2, 0x1c, 0x10, 4);
	cr_assert_eq(e->bar_mapped[2], 0, "over another function's BAR");
	cfg_write(1, 0x10, 0xc0000000u, 4);
	cr_assert_eq(d->bar_mapped[0], 0xc0000000u, "free again: mapped");
	cfg_write(2, 0x1c, 0, 4);
	cfg_write(2, 0x18, 0xc0000000u, 4);
	cr_assert_eq(e->bar_mapped[2], 0, "over BAR0");
	cfg_write(2, 0x18, 0xc0100000u, 4);
	cr_assert_eq(e->bar_mapped[2], 0xc0100000u, "beside it: fine");
	cr_assert_eq(d->bar_mapped[0], 0xc0000000u, "BAR0 untouched throughout");
	cr_assert_eq(d->bar_mapped[2], 1ull << 36);
}

Test(hv_pci, a_bar_the_device_cannot_map_stays_undecoded)
{
	struct hv_pci_dev *d = add_device();

	map_result = -EIO;
	hv_pci_enable(&vm, d);
	cr_assert_eq(nevents, 2, "both tried");
	cr_assert_eq(d->bar_mapped[0], 0);
	cr_assert_eq(d->bar_mapped[2], 0);
	cfg_write(1, 0x04, 0x0000, 2);
	cr_assert_eq(nevents, 2, "nothing to unmap");
	map_result = 0;
	cfg_write(1, 0x04, 0x0002, 2);
	cr_assert_eq(nevents, 4);
	cr_assert_eq(d->bar_mapped[0], 0xc0000000u);
}

/* Every width at every data port offset, on a device, on an empty slot,
 * on a function other than 0, past config space: nothing but the
 * writable bits change, reads that reach no register are all-ones. */
Test(hv_pci, config_accesses_of_every_width_and_offset)
{
	struct hv_pci_dev *d = add_device();
	uint8_t before[256];

	hv_pci_enable(&vm, d);
	memcpy(before, d->cfg, 256);
	for (unsigned int reg = 0; reg < 256; reg += 4)
		for (unsigned int port = 0; port < 4; port++)
			for (unsigned int len = 1; len <= 4; len *= 2) {
				uint32_t v = 0x5a5a5a5a;
				uint32_t a = 0x80000000u | (1u << 11) | reg;

				hv_pio_dispatch(&vm, 0xcf8, true, (uint8_t *)&a, 4);
				hv_pio_dispatch(&vm, (uint16_t)(0xcfc + port), false,
						(uint8_t *)&v, len);
				if (reg + port + len > 256)
					cr_assert_eq(v & (0xffffffffu >> (32 - 8 * len)),
						     0xffffffffu >> (32 - 8 * len));
				else
					cr_assert_eq(memcmp(&v, d->cfg + reg + port, len), 0);
			}
	/* Writes of zero everywhere but the command register: only BAR
	 * address bits may change, and a BAR at 0 stops decoding. */
	for (unsigned int reg = 0; reg < 256; reg += 4)
		if (reg != 0x04)
			cfg_write(1, reg, 0, 4);
	for (unsigned int i = 0; i < 256; i++)
		if (i < 0x10 || i >= 0x28)
			cr_assert_eq(d->cfg[i], before[i], "byte 0x%x changed", i);
	cr_assert_eq(d->bar_mapped[0], 0);
	cr_assert_eq(d->bar_mapped[2], 0);
	/* Function 1, slot 7, and a bad 0xcf8 width: all-ones, no effect. */
	cr_assert_eq(cfg_read(1, 0, 4), 0x67701234u);
	{
		uint32_t a = 0x80000000u | (1u << 11) | (1u << 8), v = 0;

		hv_pio_dispatch(&vm, 0xcf8, true, (uint8_t *)&a, 4);
		hv_pio_dispatch(&vm, 0xcfc, true, (uint8_t *)&v, 4);
		hv_pio_dispatch(&vm, 0xcfc, false, (uint8_t *)&v, 4);
		cr_assert_eq(v, 0xffffffffu, "function 1");
		a = 0;
		hv_pio_dispatch(&vm, 0xcf9, true, (uint8_t *)&a, 1);
		hv_pio_dispatch(&vm, 0xcf8, false, (uint8_t *)&v, 2);
		cr_assert_eq(v & 0xffff, 0xffff, "0xcf8 takes dwords only");
	}
	cfg_write(7, 0x04, 0xffff, 2);
	cr_assert_eq(cfg_read(7, 0, 4), 0xffffffffu);
	cr_assert_eq(cfg_read(1, 0x04, 2), 0x0002, "still decoding");
}

/* A guest moving a BAR onto RAM in a loop: the log stays short. */
Test(hv_pci, refused_moves_do_not_flood_the_log)
{
	char path[] = "/tmp/hv-pci-log-XXXXXX", buf[8192];
	int fd = mkstemp(path), saved = dup(2), lines = 0;
	ssize_t n;

	cr_assert_geq(fd, 0);
	hv_pci_enable(&vm, add_device());
	dup2(fd, 2);
	for (unsigned int i = 0; i < 1000; i++)
		cfg_write(1, 0x10, 0x00100000u + (i % 2) * 0x4000, 4);
	usleep(1100000);
	cfg_write(1, 0x10, 0x00200000u, 4);
	dup2(saved, 2);
	close(saved);
	n = pread(fd, buf, sizeof(buf) - 1, 0);
	close(fd);
	unlink(path);
	cr_assert_gt(n, 0);
	buf[n] = 0;
	for (char *p = buf; (p = strchr(p, '\n')); p++)
		lines++;
	cr_assert_eq(lines, HV_LOG_GUEST_BURST + 2, "%s", buf);
	cr_assert(strstr(buf, "gpup run: PCI 00:01.0 BAR0 at 0x100000 overlaps guest RAM; "
			      "not decoded until moved\n"), "%s", buf);
	cr_assert(strstr(buf, "gpup run: 990 more lines about the guest's accesses were "
			      "dropped\n"), "%s", buf);
}
