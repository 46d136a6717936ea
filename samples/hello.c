// SPDX-License-Identifier: MIT
/*
 * hello: the smallest sample guest.  It proves the boot path (PVH entry,
 * long mode, console, exit status) under `gpup run` and QEMU alike, and is
 * what the start-up benchmark times.  Command-line words for the VMM's
 * tests: "status=N" exits with N, "crash" triple-faults, "halt" waits for
 * an interrupt that never comes, "spin" never exits (the VM is then
 * stopped from outside).
 */
#include "rt.h"

int main(const char *cmdline)
{
	uint64_t status = rt_arg_u64(cmdline, "status", 0);
	char buf[32];
	/* 1.5 * 2.25 + 0.125 = 3.5, computed the way the other guests check
	 * device results. */
	uint32_t r = rt_f32_add(rt_f32_mul(0x3fc00000u, 0x40100000u), 0x3e000000u);

	if (rt_arg_flag(cmdline, "crash")) {
		/* An empty IDT turns the #UD into a triple fault. */
		rt_lidt(0, 0);
		__asm__ volatile("ud2");
	}
	if (rt_arg_flag(cmdline, "halt"))
		rt_halt_unless(&rt_irq_count, ~0ull);
	rt_printf("hello from a gpup guest: %lu MiB RAM, 1.5*2.25+0.125 = %s\n",
		  rt_ram_size() >> 20, rt_f32_str(buf, sizeof(buf), r, 3));
	while (rt_arg_flag(cmdline, "spin"))
		__asm__ volatile("pause");
	return r == 0x40600000u ? (int)status : 1;
}
