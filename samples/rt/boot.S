/* SPDX-License-Identifier: MIT */
/*
 * Guest entry.  The PVH ABI starts us in 32-bit protected mode with paging
 * off and ebx pointing at hvm_start_info.  We load page tables that
 * identity-map the first 4 GiB (built at assembly time, below), enable SSE
 * for code that wants it, enter long mode and call rt_start().
 * Also here: the 256 interrupt stubs.
 */
#define CR0_PE 0x1
#define CR0_MP 0x2
#define CR0_EM 0x4
#define CR0_NE 0x20
#define CR0_PG 0x80000000
#define CR4_PAE 0x20
#define CR4_OSFXSR 0x200
#define CR4_OSXMMEXCPT 0x400
#define MSR_EFER 0xc0000080
#define EFER_LME 0x100
#define PTE_P_RW 0x3
#define PDE_2M 0x83
#define PTE_UC 0x18

	/* XEN_ELFNOTE_PHYS32_ENTRY: how PVH loaders find pvh_start. */
	.section .note.pvh, "a"
	.p2align 2
	.long 4
	.long 8
	.long 18
	.asciz "Xen"
	.p2align 2
	.quad pvh_start
	.p2align 2

	.section .text.boot, "ax"
	.code32
	.globl pvh_start
pvh_start:
	cli
	cld
	movl %ebx, rt_start_info
	lgdt gdt_desc

	movl $(CR4_PAE | CR4_OSFXSR | CR4_OSXMMEXCPT), %eax
	movl %eax, %cr4
	movl $rt_pml4, %eax
	movl %eax, %cr3
	movl $MSR_EFER, %ecx
	rdmsr
	orl $EFER_LME, %eax
	wrmsr
	movl %cr0, %eax
	andl $~CR0_EM, %eax
	orl $(CR0_PG | CR0_NE | CR0_MP | CR0_PE), %eax
	movl %eax, %cr0
	ljmp $0x08, $long_mode

	.code64
long_mode:
	movw $0x10, %ax
	movw %ax, %ds
	movw %ax, %es
	movw %ax, %ss
	movw %ax, %fs
	movw %ax, %gs
	leaq rt_stack_top(%rip), %rsp
	xorl %ebp, %ebp
	call rt_start
4:	cli
	hlt
	jmp 4b

	.section .rodata
	.p2align 3
gdt:
	.quad 0
	.quad 0x00af9a000000ffff	/* 0x08: 64-bit code */
	.quad 0x00cf92000000ffff	/* 0x10: data */
gdt_end:
gdt_desc:
	.word gdt_end - gdt - 1
	.long gdt

	/*
	 * The page tables are data, not code: filling 2048 entries at boot
	 * costs milliseconds where the guest's first instructions are
	 * emulated, and nothing when they are simply loaded with the image.
	 * 2 MiB pages identity-map 4 GiB; from 3 GiB up (the PCI hole) they
	 * are uncached.
	 */
	.section .data
	.p2align 12
	.globl rt_pml4, rt_pdpt, rt_pd
rt_pml4:
	.quad rt_pdpt + PTE_P_RW
	.fill 511, 8, 0
rt_pdpt:
	.quad rt_pd + PTE_P_RW
	.quad rt_pd + 0x1000 + PTE_P_RW
	.quad rt_pd + 0x2000 + PTE_P_RW
	.quad rt_pd + 0x3000 + PTE_P_RW
	.fill 508, 8, 0
rt_pd:
	.set addr, 0
	.rept 2048
	.if addr >= 0xc0000000
	.quad addr + PDE_2M + PTE_UC
	.else
	.quad addr + PDE_2M
	.endif
	.set addr, addr + 0x200000
	.endr

	.section .bss
	.p2align 4
rt_stack:
	.skip 65536
rt_stack_top:
	.globl rt_start_info
	.p2align 2
rt_start_info:
	.skip 4

/*
 * Interrupt stubs: push a dummy error code where the CPU pushes none, the
 * vector, then the general registers; call rt_isr(frame) on a 16-byte
 * aligned stack and undo it all.  No FPU/SSE state is saved: guest C code
 * is built with -mgeneral-regs-only (see samples/module.mk).
 */
	.text
	.code64
isr_common:
	pushq %rax
	pushq %rbx
	pushq %rcx
	pushq %rdx
	pushq %rsi
	pushq %rdi
	pushq %rbp
	pushq %r8
	pushq %r9
	pushq %r10
	pushq %r11
	pushq %r12
	pushq %r13
	pushq %r14
	pushq %r15
	movq %rsp, %rbx
	andq $-16, %rsp
	movq %rbx, %rdi
	call rt_isr
	movq %rbx, %rsp
	popq %r15
	popq %r14
	popq %r13
	popq %r12
	popq %r11
	popq %r10
	popq %r9
	popq %r8
	popq %rbp
	popq %rdi
	popq %rsi
	popq %rdx
	popq %rcx
	popq %rbx
	popq %rax
	addq $16, %rsp
	iretq

	.macro ISR num
isr_\num:
	.if (\num == 8) || (\num == 10) || (\num == 11) || (\num == 12) || (\num == 13) || (\num == 14) || (\num == 17) || (\num == 21) || (\num == 29) || (\num == 30)
	.else
	pushq $0
	.endif
	pushq $\num
	jmp isr_common
	.endm

	.macro ISR_ADDR num
	.quad isr_\num
	.endm

	.altmacro
	.set i, 0
	.rept 256
	ISR %i
	.set i, i + 1
	.endr

	.section .rodata
	.p2align 3
	.globl rt_isr_table
rt_isr_table:
	.set i, 0
	.rept 256
	ISR_ADDR %i
	.set i, i + 1
	.endr
