/* SPDX-License-Identifier: MIT */
/*
 * Guest entry.  The PVH ABI starts us in 32-bit protected mode with paging
 * off and ebx pointing at hvm_start_info.  We load page tables that
 * identity-map the first 4 GiB (built at assembly time, below), enable SSE
 * for code that wants it, enter long mode, let rt_start() set up the IDT,
 * and run the guest's main() in ring 3.
 *
 * Why ring 3: some hosts' KVM (PVM, a paging-based KVM that works without
 * hardware virtualization) runs guest user mode natively but emulates
 * every ring-0 instruction, a thousand times slower.  Ring 3 costs nothing
 * elsewhere.  Privileged work goes through kernel calls (rt.c).  Also
 * here: the 256 interrupt stubs.
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
/* Present, writable, user: ring 3 runs everything. */
#define PTE_P_RW 0x7
#define PDE_2M 0x87
#define PTE_UC 0x18
#define RT_KC_COUNT 11
#define SEL_KCODE 0x08
#define SEL_KDATA 0x10
#define SEL_UDATA (0x18 | 3)
#define SEL_UCODE (0x20 | 3)
#define SEL_TSS 0x28
#define RFLAGS_IF 0x200

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
	ljmp $SEL_KCODE, $long_mode

	.code64
long_mode:
	movw $SEL_KDATA, %ax
	movw %ax, %ds
	movw %ax, %es
	movw %ax, %ss
	movw %ax, %fs
	movw %ax, %gs
	leaq rt_kstack_top(%rip), %rsp
	xorl %ebp, %ebp
	call rt_tss_setup
	call pic_quiet
	call rt_start
	/* Drop to ring 3 with interrupts still off: iretq to rt_user_start.
	 * rt_main_user turns them on (RT_KC_IRQ_ON) once every IDT entry is
	 * in place; an interrupt before that would find no gate. */
	pushq $SEL_UDATA
	leaq rt_stack_top(%rip), %rax
	pushq %rax
	pushq $0x2
	pushq $SEL_UCODE
	leaq rt_user_start(%rip), %rax
	pushq %rax
	iretq

/*
 * The legacy 8259 pair, which PC firmware leaves unmasked with the PIT
 * ticking on IRQ 0 at the vector it chose (0x08 under SeaBIOS: #DF's).
 * Re-initialise both to vectors 0xf0-0xff, clear of the exceptions, and
 * mask every line.  The remap matters even masked: a line that was raised
 * before the mask can still reach the CPU as the spurious IRQ 7 (or 15),
 * which now lands on a device vector instead of an exception.  Under
 * `gpup run` there is no PIT and the writes reach KVM's in-kernel PIC, or
 * nothing; the sequence is the same on every PC platform.
 */
#define PIC1 0x20
#define PIC2 0xa0
#define PIC_VECTOR_BASE 0xf0
pic_quiet:
	movb $0x11, %al			/* ICW1: edge, cascade, ICW4 follows */
	outb %al, $PIC1
	outb %al, $PIC2
	movb $PIC_VECTOR_BASE, %al	/* ICW2: vector base */
	outb %al, $(PIC1 + 1)
	movb $(PIC_VECTOR_BASE + 8), %al
	outb %al, $(PIC2 + 1)
	movb $0x04, %al			/* ICW3: the slave on IRQ 2 */
	outb %al, $(PIC1 + 1)
	movb $0x02, %al			/* ICW3: the slave's cascade id */
	outb %al, $(PIC2 + 1)
	movb $0x01, %al			/* ICW4: 8086 mode */
	outb %al, $(PIC1 + 1)
	outb %al, $(PIC2 + 1)
	movb $0xff, %al			/* OCW1: every line masked */
	outb %al, $(PIC1 + 1)
	outb %al, $(PIC2 + 1)
	ret

/* The TSS descriptor's base is split across its bytes; fill it, point
 * RSP0 (the stack for interrupts from ring 3) at the kernel stack, load TR. */
rt_tss_setup:
	leaq rt_tss(%rip), %rax
	movw %ax, gdt_tss + 2(%rip)
	shrq $16, %rax
	movb %al, gdt_tss + 4(%rip)
	movb %ah, gdt_tss + 7(%rip)
	shrq $16, %rax
	movl %eax, gdt_tss + 8(%rip)
	leaq rt_kstack_top(%rip), %rax
	movq %rax, rt_tss + 4(%rip)
	movw $SEL_TSS, %ax
	ltr %ax
	ret

rt_user_start:
	xorl %ebp, %ebp
	call rt_main_user
4:	pause
	jmp 4b

	/* Writable: the CPU marks the TSS descriptor busy, and its base is
	 * filled at run time. */
	.section .data
	.p2align 3
gdt:
	.quad 0
	.quad 0x00af9a000000ffff	/* 0x08: kernel code, 64-bit */
	.quad 0x00cf92000000ffff	/* 0x10: kernel data */
	.quad 0x00cff2000000ffff	/* 0x18: user data */
	.quad 0x00affa000000ffff	/* 0x20: user code, 64-bit */
gdt_tss:
	.quad 0x0000890000000067	/* 0x28: 64-bit TSS, limit 0x67 */
	.quad 0
gdt_end:
gdt_desc:
	.word gdt_end - gdt - 1
	.long gdt
	.p2align 4
	.globl rt_tss
rt_tss:
	.fill 102, 1, 0
	.word 104			/* no I/O bitmap */

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
rt_kstack:
	.skip 16384
rt_kstack_top:
rt_stack:
	.skip 65536
rt_stack_top:
	.globl rt_start_info
	.p2align 2
rt_start_info:
	.skip 4

/*
 * Interrupt stubs.  Exceptions push a dummy error code where the CPU
 * pushes none, the vector, then the general registers, and call
 * rt_isr(frame) on a 16-byte aligned stack.  No FPU/SSE state is saved:
 * guest C code is built with -mgeneral-regs-only (samples/module.mk).
 *
 * Device interrupts (vectors 32 and up) and kernel calls (#UD at the
 * kernel-call marker) take short paths written here instead: on hosts
 * that emulate ring 0 every instruction counts (a few microseconds each),
 * and an interrupt only needs counting (rt_irq_counts) and an EOI.
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
	.if \num == 6
	jmp ud_entry
	.elseif \num >= 32
	pushq %rax
	movl $\num, %eax
	jmp irq_common
	.else
	.if (\num == 8) || (\num == 10) || (\num == 11) || (\num == 12) || (\num == 13) || (\num == 14) || (\num == 17) || (\num == 21) || (\num == 29) || (\num == 30)
	.else
	pushq $0
	.endif
	pushq $\num
	jmp isr_common
	.endif
	.endm

/* A device interrupt: count it, EOI (x2APIC MSR, or xAPIC MMIO). */
irq_common:
	cmpl $0xff, %eax		/* spurious: no count, no EOI */
	je 2f
	incq rt_irq_count(%rip)
	incq rt_irq_counts(, %rax, 8)
	pushq %rcx
	pushq %rdx
	cmpb $0, rt_apic_x2(%rip)
	je 1f
	movl $0x80b, %ecx
	xorl %eax, %eax
	xorl %edx, %edx
	wrmsr
	jmp 3f
1:	movl $0xfee000b0, %ecx
	movl $0, (%rcx)
3:	popq %rdx
	popq %rcx
2:	popq %rax
	iretq

/*
 * Kernel calls (rt.c): the marker is ud2 followed by "gp".  Op in rax,
 * arguments in rdi, rsi, rdx, result in rax; rcx, rdx, rsi, r8, r9 may
 * be clobbered.  Any other #UD is a real one, for rt_isr.  HALT_UNLESS
 * checks its word with interrupts off (this is an interrupt gate), then
 * `sti; hlt`, so the interrupt it waits for cannot slip in between.
 */
#define KCALL_MARKER 0x70670b0f
ud_entry:
	pushq %rcx
	movq 8(%rsp), %rcx
	cmpl $KCALL_MARKER, (%rcx)
	jne 1f
	popq %rcx
	addq $4, (%rsp)
	cmpq $RT_KC_COUNT, %rax
	jae kc_bad
	jmp *kc_table(, %rax, 8)
1:	popq %rcx
	pushq $0
	pushq $6
	jmp isr_common
kc_bad:
	movq $-1, %rax
	iretq
kc_out:
	movq %rdx, %r8
	movl %edi, %edx
	movl %esi, %eax
	cmpq $1, %r8
	je 1f
	cmpq $2, %r8
	je 2f
	outl %eax, %dx
	iretq
1:	outb %al, %dx
	iretq
2:	outw %ax, %dx
	iretq
kc_in:
	movq %rdx, %r8
	movl %edi, %edx
	xorl %eax, %eax
	cmpq $1, %r8
	je 1f
	inl %dx, %eax
	iretq
1:	inb %dx, %al
	iretq
/* A line to the UART: 16 bytes (its FIFO) per string instruction, each
 * time the transmitter is empty. */
kc_uart_write:
	movq %rdx, %r8
	movl %edi, %r9d
1:	testq %r8, %r8
	jz 3f
	movl $16, %ecx
	cmpq %rcx, %r8
	cmovbq %r8, %rcx
	subq %rcx, %r8
	leal 5(%r9), %edx
2:	inb %dx, %al
	testb $0x20, %al
	jz 2b
	movl %r9d, %edx
	rep outsb
	jmp 1b
3:	iretq
kc_rdmsr:
	movl %edi, %ecx
	rdmsr
	shlq $32, %rdx
	orq %rdx, %rax
	iretq
kc_wrmsr:
	movl %edi, %ecx
	movl %esi, %eax
	movq %rsi, %rdx
	shrq $32, %rdx
	wrmsr
	iretq
kc_halt_unless:
	cmpq %rsi, (%rdi)
	jae 1f
	sti
	hlt
	cli
1:	iretq
kc_flush_tlb:
	movq %cr3, %rax
	movq %rax, %cr3
	iretq
kc_lidt:
	lidt (%rdi)
	iretq
kc_cpuid:
	pushq %rbx
	movq %rdx, %r8
	movl %edi, %eax
	movl %esi, %ecx
	cpuid
	movl %eax, (%r8)
	movl %ebx, 4(%r8)
	movl %ecx, 8(%r8)
	movl %edx, 12(%r8)
	popq %rbx
	iretq
kc_nop:
	xorl %eax, %eax
	iretq
/* Interrupts on for the caller: IF in the RFLAGS that iretq restores. */
kc_irq_on:
	orq $RFLAGS_IF, 16(%rsp)
	xorl %eax, %eax
	iretq

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
/* In the order of enum rt_kcall_op (rt.h). */
kc_table:
	.quad kc_out, kc_in, kc_uart_write, kc_rdmsr, kc_wrmsr, kc_halt_unless
	.quad kc_flush_tlb, kc_lidt, kc_cpuid, kc_nop, kc_irq_on
	.globl rt_isr_table
rt_isr_table:
	.set i, 0
	.rept 256
	ISR_ADDR %i
	.set i, i + 1
	.endr
