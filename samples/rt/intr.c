// SPDX-License-Identifier: MIT
/*
 * Interrupts: the IDT (its stubs are in boot.S), the local APIC in x2APIC
 * mode (xAPIC MMIO where x2APIC is missing), and vector allocation for
 * MSI-X messages.  Device interrupts are counted per vector by boot.S's
 * short path; the code waiting for one looks at the count.  A CPU
 * exception is always a guest bug here, so it is reported with its state
 * and ends the guest.
 */
#include "rt.h"

#define MSR_APIC_BASE 0x1b
#define APIC_BASE_EN (1u << 11)
#define APIC_BASE_EXTD (1u << 10)
#define X2APIC_ID 0x802
#define X2APIC_TPR 0x808
#define X2APIC_SVR 0x80f
#define XAPIC_MMIO 0xfee00000ull
#define X2APIC_LVT_TIMER 0x832
#define X2APIC_TIMER_INIT 0x838
#define X2APIC_TIMER_DIV 0x83e
#define XAPIC_LVT_TIMER 0x320
#define XAPIC_TIMER_INIT 0x380
#define XAPIC_TIMER_DIV 0x3e0
#define SPURIOUS_VECTOR 0xff
#define FIRST_DYN_VECTOR 0x30
/* boot.S parks the 8259s' vectors at 0xf0-0xff. */
#define LAST_DYN_VECTOR 0xef

struct rt_frame {
	uint64_t r15, r14, r13, r12, r11, r10, r9, r8, rbp, rdi, rsi, rdx, rcx,
		rbx, rax;
	uint64_t vector, error, rip, cs, rflags, rsp, ss;
};

struct rt_idt_entry {
	uint16_t off_lo, sel;
	uint8_t ist, type;
	uint16_t off_mid;
	uint32_t off_hi, zero;
};

extern const uint64_t rt_isr_table[256];
static struct rt_idt_entry rt_idt[256] __attribute__((aligned(16)));
static unsigned int rt_next_vector = FIRST_DYN_VECTOR;

/* Read by boot.S's interrupt path. */
volatile uint64_t rt_irq_count;
volatile uint64_t rt_irq_counts[256];
bool rt_apic_x2;

void rt_isr(struct rt_frame *f);

/* Exceptions only: device interrupts never get here (boot.S). */
void rt_isr(struct rt_frame *f)
{
	uint64_t cr2;

	__asm__ volatile("mov %%cr2, %0" : "=r"(cr2));
	rt_printf("\nguest exception %lu (error 0x%lx) at rip 0x%lx, cr2 0x%lx, "
		  "rsp 0x%lx, ring %lu\n", f->vector, f->error, f->rip, cr2, f->rsp,
		  f->cs & 3);
	rt_exit(RT_EXIT_EXCEPTION);
}

static void rt_apic_init(void)
{
	uint32_t r[4];
	uint64_t base = rt_rdmsr(MSR_APIC_BASE);

	rt_cpuid(1, 0, r);
	rt_apic_x2 = r[2] & (1u << 21);
	if (rt_apic_x2) {
		rt_wrmsr(MSR_APIC_BASE, base | APIC_BASE_EN | APIC_BASE_EXTD);
		rt_wrmsr(X2APIC_TPR, 0);
		rt_wrmsr(X2APIC_SVR, 0x100 | SPURIOUS_VECTOR);
	} else {
		rt_wrmsr(MSR_APIC_BASE, base | APIC_BASE_EN);
		rt_mmio_write32(XAPIC_MMIO + 0x80, 0);
		rt_mmio_write32(XAPIC_MMIO + 0xf0, 0x100 | SPURIOUS_VECTOR);
	}
}

static void rt_idt_set(unsigned int i)
{
	uint64_t a = rt_isr_table[i];

	rt_idt[i] = (struct rt_idt_entry){
		.off_lo = (uint16_t)a, .sel = 0x08, .type = 0x8e,
		.off_mid = (uint16_t)(a >> 16), .off_hi = (uint32_t)(a >> 32),
	};
}

/* Ring 0, at boot: just the #UD entry that kernel calls need, and the
 * IDT register.  The rest is filled from ring 3 (rt_idt_fill), where it
 * costs nothing even on hosts that emulate ring 0. */
void rt_idt_boot(void)
{
	struct {
		uint16_t limit;
		uint64_t base;
	} __attribute__((packed)) idtr = { sizeof(rt_idt) - 1,
					   (uint64_t)(uintptr_t)rt_idt };

	rt_idt_set(6);
	__asm__ volatile("lidt %0" : : "m"(idtr));
}

void rt_idt_fill(void)
{
	for (unsigned int i = 0; i < 256; i++)
		rt_idt_set(i);
}

int rt_irq_init(void)
{
	rt_apic_init();
	return 0;
}

uint32_t rt_apic_id(void)
{
	if (rt_apic_x2)
		return (uint32_t)rt_rdmsr(X2APIC_ID);
	return rt_mmio_read32(XAPIC_MMIO + 0x20) >> 24;
}

int rt_irq_alloc(void)
{
	if (rt_next_vector > LAST_DYN_VECTOR)
		return -1;
	return (int)rt_next_vector++;
}

/* The LAPIC timer, one-shot, divided by 1, in whichever mode the APIC is
 * in: x2APIC MSRs, else the xAPIC page. */
void rt_apic_timer_setup(unsigned int vector)
{
	if (rt_apic_x2) {
		rt_wrmsr(X2APIC_TIMER_DIV, 0xb);
		rt_wrmsr(X2APIC_LVT_TIMER, vector);
	} else {
		rt_mmio_write32(XAPIC_MMIO + XAPIC_TIMER_DIV, 0xb);
		rt_mmio_write32(XAPIC_MMIO + XAPIC_LVT_TIMER, vector);
	}
}

void rt_apic_timer_arm(uint64_t count)
{
	if (count > 0xffffffffu)
		count = 0xffffffffu; /* the register's width: the caller re-arms */
	if (rt_apic_x2)
		rt_wrmsr(X2APIC_TIMER_INIT, count);
	else
		rt_mmio_write32(XAPIC_MMIO + XAPIC_TIMER_INIT, (uint32_t)count);
}
