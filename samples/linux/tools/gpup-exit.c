// SPDX-License-Identifier: MIT
/*
 * gpup-exit STATUS: the initramfs's last step.  Writes STATUS to I/O port
 * 0xf4, where QEMU's isa-debug-exit and `gpup run` end the VM with it,
 * then powers off (a VM with no exit port ends with status 0).
 */
#include <stdlib.h>
#include <sys/io.h>
#include <sys/reboot.h>
#include <unistd.h>

int main(int argc, char **argv)
{
	unsigned int status = argc > 1 ? (unsigned int)strtoul(argv[1], NULL, 0) : 0;

	sync();
	if (ioperm(0xf4, 4, 1) == 0)
		outl(status, 0xf4);
	reboot(RB_POWER_OFF);
	return 1;
}
