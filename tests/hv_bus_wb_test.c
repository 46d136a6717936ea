// SPDX-License-Identifier: MIT
/*
 * The VMM's port bus, 16550 console and exit port without KVM: accesses
 * go through the real dispatch; the console's output lands in a file;
 * the exit port stops the VM with the guest's status once, and maps a
 * status above the guest range to HV_EXIT_BIG_STATUS.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "hv/hv_int.h"

static struct hv_vm vm;
static char path[64];

static void setup(void)
{
	int fd;

	memset(&vm, 0, sizeof(vm));
	pthread_mutex_init(&vm.io_lock, NULL);
	vm.exit_code = -1;
	vm.stop_fd = eventfd(0, EFD_NONBLOCK);
	strcpy(path, "/tmp/hv-bus-XXXXXX");
	fd = mkstemp(path);
	cr_assert_geq(fd, 0);
	close(fd);
	cr_assert_eq(hv_serial_init(&vm, path), 0);
}

static void teardown(void)
{
	hv_serial_close(&vm);
	close(vm.stop_fd);
	unlink(path);
	pthread_mutex_destroy(&vm.io_lock);
}

TestSuite(hv_bus, .init = setup, .fini = teardown);

static void out8(uint16_t port, uint8_t v)
{
	hv_pio_dispatch(&vm, port, true, &v, 1);
}

static uint8_t in8(uint16_t port)
{
	uint8_t v = 0x5a;

	hv_pio_dispatch(&vm, port, false, &v, 1);
	return v;
}

static void console(char *buf, size_t len)
{
	int fd = open(path, O_RDONLY);
	ssize_t n;

	cr_assert_geq(fd, 0);
	n = read(fd, buf, len - 1);
	close(fd);
	buf[n > 0 ? n : 0] = 0;
}

Test(hv_bus, uart_lines_reach_the_file)
{
	const char *msg = "hi\nthere";
	char buf[64];

	cr_assert_eq(in8(0x3fd) & 0x60, 0x60, "transmitter empty");
	for (const char *p = msg; *p; p++)
		out8(0x3f8, (uint8_t)*p);
	console(buf, sizeof(buf));
	cr_assert_str_eq(buf, "hi\n", "written per line");
	hv_serial_flush(&vm);
	console(buf, sizeof(buf));
	cr_assert_str_eq(buf, "hi\nthere");
}

Test(hv_bus, uart_string_io_and_registers)
{
	char buf[64];
	uint8_t s[4] = { 'a', 'b', 'c', '\n' };

	for (int i = 0; i < 4; i++)
		hv_pio_dispatch(&vm, 0x3f8, true, &s[i], 1);
	console(buf, sizeof(buf));
	cr_assert_str_eq(buf, "abc\n");
	out8(0x3ff, 0x42);
	cr_assert_eq(in8(0x3ff), 0x42, "scratch register");
	out8(0x3fb, 0x80); /* DLAB: data port is the divisor now */
	out8(0x3f8, 0x01);
	cr_assert_eq(in8(0x3f8), 0x01);
	out8(0x3fb, 0x03);
	out8(0x3f8, 'z');
	hv_serial_flush(&vm);
	console(buf, sizeof(buf));
	cr_assert_str_eq(buf, "abc\nz", "the divisor byte was not printed");
	cr_assert_eq(in8(0x3fa), 0x01, "no interrupt pending");
}

Test(hv_bus, unclaimed_ports_float_high)
{
	uint32_t v = 0;

	cr_assert_eq(in8(0x60), 0xff);
	hv_pio_dispatch(&vm, 0x1234, false, (uint8_t *)&v, 4);
	cr_assert_eq(v, 0xffffffffu);
	out8(0x80, 1); /* dropped, no crash */
}

Test(hv_bus, exit_port_stops_once)
{
	uint32_t st = 7;
	uint64_t n = 0;

	hv_pio_dispatch(&vm, 0xf4, true, (uint8_t *)&st, 4);
	cr_assert(atomic_load(&vm.stopping));
	cr_assert_eq(atomic_load(&vm.exit_code), 7);
	cr_assert_eq(read(vm.stop_fd, &n, 8), 8, "the main loop is woken");
	st = 9;
	hv_pio_dispatch(&vm, 0xf4, true, (uint8_t *)&st, 1);
	cr_assert_eq(atomic_load(&vm.exit_code), 7, "the first status wins");
}

Test(hv_bus, big_status_is_mapped)
{
	uint8_t st = 200;

	hv_pio_dispatch(&vm, 0xf4, true, &st, 1);
	cr_assert_eq(atomic_load(&vm.exit_code), HV_EXIT_BIG_STATUS);
}

Test(hv_bus, overlapping_ranges_refused)
{
	cr_assert_eq(hv_register_pio(&vm, 0x3fc, 2, NULL, NULL), -EEXIST);
	cr_assert_eq(hv_register_pio(&vm, 0x500, 0, NULL, NULL), -ENOSPC);
}

/* What a hostile guest does with ports: wide accesses running off the
 * UART's end, every width at every port of it and around it, the exit
 * port at an odd offset and width, and a flood of unclaimed accesses.
 * Nothing reads stale bytes, nothing is printed that was not written to
 * THR, the VM stops only through port 0xf4. */
Test(hv_bus, hostile_port_accesses)
{
	char buf[64];
	uint32_t v = 0x5a5a5a5a;
	uint16_t w = 0x0a21; /* "!\n" */

	out8(0x3ff, 0x42);
	hv_pio_dispatch(&vm, 0x3fe, false, (uint8_t *)&v, 4);
	cr_assert_eq(v, 0xffff42b0u, "MSR, scratch, then nothing");
	for (uint16_t port = 0x3f0; port < 0x408; port++)
		for (unsigned int len = 1; len <= 4; len *= 2) {
			v = 0;
			hv_pio_dispatch(&vm, port, false, (uint8_t *)&v, len);
		}
	hv_pio_dispatch(&vm, 0x3f8, true, (uint8_t *)&w, 2); /* '!', then IER */
	out8(0x3f8, '\n');
	console(buf, sizeof(buf));
	cr_assert_str_eq(buf, "!\n");
	for (unsigned int i = 0; i < 100000; i++) {
		v = 0;
		hv_pio_dispatch(&vm, (uint16_t)(0x400 + i % 0xb000), i & 1, (uint8_t *)&v, 4);
	}
	cr_assert_not(atomic_load(&vm.stopping), "only port 0xf4 stops the VM");
	v = 0;
	hv_pio_dispatch(&vm, 0xf6, false, (uint8_t *)&v, 2);
	cr_assert_eq(v, 0xffff, "the exit port reads as nothing");
	w = 3;
	hv_pio_dispatch(&vm, 0xf7, true, (uint8_t *)&w, 1);
	cr_assert_eq(atomic_load(&vm.exit_code), 3, "any offset and width of it");
}
