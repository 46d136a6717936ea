// SPDX-License-Identifier: MIT
/*
 * The console: a 16550 UART at 0x3f8, enough of it for a guest that only
 * writes (the transmitter is always empty, nothing is ever received), and
 * the exit port 0xf4 whose value becomes `gpup run`'s exit status, as
 * QEMU's isa-debug-exit turns it into (value << 1) | 1.
 *
 * Output is buffered per line: one write(2) per character would make a
 * chatty guest pay a syscall for every byte.
 */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

#include "hv/hv_int.h"

#define HV_COM1 0x3f8
#define HV_EXIT_PORT 0xf4

#define UART_RBR_THR 0
#define UART_IER 1
#define UART_IIR 2
#define UART_LCR 3
#define UART_MCR 4
#define UART_LSR 5
#define UART_MSR 6
#define UART_SCR 7
#define UART_LCR_DLAB 0x80
#define UART_LSR_THRE 0x20
#define UART_LSR_TEMT 0x40
#define UART_IIR_NONE 0x01

void hv_serial_flush(struct hv_vm *vm)
{
	struct hv_serial *s = &vm->serial;
	size_t done = 0;

	while (done < s->len) {
		ssize_t n = write(s->fd, s->buf + done, s->len - done);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break; /* a closed console must not stop the guest */
		done += (size_t)n;
	}
	s->len = 0;
}

static void hv_serial_putc(struct hv_vm *vm, uint8_t c)
{
	struct hv_serial *s = &vm->serial;

	s->buf[s->len++] = (char)c;
	if (c == '\n' || s->len == sizeof(s->buf))
		hv_serial_flush(vm);
}

static uint8_t hv_serial_read(struct hv_serial *s, uint64_t reg)
{
	bool dlab = s->lcr & UART_LCR_DLAB;

	switch (reg) {
	case UART_RBR_THR:
		return dlab ? s->dll : 0;
	case UART_IER:
		return dlab ? s->dlm : s->ier;
	case UART_IIR:
		return UART_IIR_NONE;
	case UART_LCR:
		return s->lcr;
	case UART_MCR:
		return s->mcr;
	case UART_LSR:
		return UART_LSR_THRE | UART_LSR_TEMT;
	case UART_MSR:
		return 0xb0; /* CTS, DSR, DCD: a cable is plugged in */
	default:
		return s->scr;
	}
}

static void hv_serial_write(struct hv_vm *vm, uint64_t reg, uint8_t v)
{
	struct hv_serial *s = &vm->serial;
	bool dlab = s->lcr & UART_LCR_DLAB;

	switch (reg) {
	case UART_RBR_THR:
		if (dlab)
			s->dll = v;
		else
			hv_serial_putc(vm, v);
		break;
	case UART_IER:
		if (dlab)
			s->dlm = v;
		else
			s->ier = v & 0x0f;
		break;
	case UART_LCR:
		s->lcr = v;
		break;
	case UART_MCR:
		s->mcr = v & 0x1f;
		break;
	case UART_SCR:
		s->scr = v;
		break;
	default:
		break; /* FCR, LSR, MSR: nothing to emulate */
	}
}

static void hv_serial_io(struct hv_vm *vm, void *opaque, uint64_t off,
			 bool is_write, uint8_t *data, unsigned int len)
{
	(void)opaque;
	for (unsigned int i = 0; i < len; i++) {
		if (off + i >= 8) {
			/* A wide access running past the UART: nothing there. */
			if (!is_write)
				data[i] = 0xff;
		} else if (is_write) {
			hv_serial_write(vm, off + i, data[i]);
		} else {
			data[i] = hv_serial_read(&vm->serial, off + i);
		}
	}
}

static void hv_exit_io(struct hv_vm *vm, void *opaque, uint64_t off,
		       bool is_write, uint8_t *data, unsigned int len)
{
	uint32_t v = 0;

	(void)opaque;
	if (!is_write) {
		memset(data, 0xff, len);
		return;
	}
	memcpy(&v, data, len < 4 ? len : 4);
	(void)off;
	hv_serial_flush(vm);
	if (v > HV_GUEST_STATUS_MAX) {
		hv_log("the guest wrote exit status %u, above %d; exiting with %d",
		       v, HV_GUEST_STATUS_MAX, HV_EXIT_BIG_STATUS);
		v = HV_EXIT_BIG_STATUS;
	}
	hv_vm_stop(vm, (int)v);
}

int hv_serial_init(struct hv_vm *vm, const char *where)
{
	struct hv_serial *s = &vm->serial;
	int rc;

	if (!where || !strcmp(where, "stdio")) {
		s->fd = STDOUT_FILENO;
	} else {
		s->fd = open(where, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
		if (s->fd < 0) {
			int err = errno; /* before the log line can change it */

			hv_log("cannot open serial output %s: %s", where,
			       strerror(err));
			return -err;
		}
		s->own_fd = true;
	}
	rc = hv_register_pio(vm, HV_COM1, 8, hv_serial_io, NULL);
	if (rc == 0)
		rc = hv_register_pio(vm, HV_EXIT_PORT, 4, hv_exit_io, NULL);
	return rc;
}

void hv_serial_close(struct hv_vm *vm)
{
	if (vm->serial.fd < 0)
		return;
	hv_serial_flush(vm);
	if (vm->serial.own_fd)
		close(vm->serial.fd);
	vm->serial.fd = -1;
}
