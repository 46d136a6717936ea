/* SPDX-License-Identifier: MIT */
/*
 * The gpup guest runtime: everything a freestanding sample guest needs and
 * nothing more.  boot.S enters from the PVH ABI, switches to long mode with
 * the first 4 GiB identity-mapped and calls main() in ring 3; this header
 * offers the console, exit, timing, a page allocator, PCI, interrupts and
 * (vgpu_drv.h) the vGPU driver.  Built with the host gcc, no libc, and with no
 * floating-point registers (-mgeneral-regs-only): f32 math is softfloat.c.
 */
#ifndef RT_RT_H
#define RT_RT_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Exit statuses the runtime itself uses; guests use 0 and small codes. */
#define RT_EXIT_EXCEPTION 100  /* an unexpected CPU exception */

/* The guest's entry point, called with the command line ("" if none). */
int main(const char *cmdline);

/* Console (16550 at 0x3f8) and exit (port 0xf4, QEMU's isa-debug-exit). */
void rt_puts(const char *s);
int rt_printf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
int rt_vsnprintf(char *buf, size_t len, const char *fmt, va_list ap);
int rt_snprintf(char *buf, size_t len, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
__attribute__((noreturn)) void rt_exit(int status);

/* Kernel calls (rt.c, handled in boot.S): what ring 3 asks of ring 0.
 * boot.S's table follows this order and RT_KC_COUNT there its length. */
enum rt_kcall_op {
	RT_KC_OUT,          /* port, value, width */
	RT_KC_IN,           /* port, -, width: the value */
	RT_KC_UART_WRITE,   /* port, buffer, length */
	RT_KC_RDMSR,        /* msr: the value */
	RT_KC_WRMSR,        /* msr, value */
	RT_KC_HALT_UNLESS,  /* word, value */
	RT_KC_FLUSH_TLB,
	RT_KC_LIDT,         /* pointer to a 10-byte descriptor */
	RT_KC_CPUID,        /* leaf, subleaf, pointer to 4 words */
	RT_KC_NOP,          /* nothing: what a ring-0 round trip costs */
	RT_KC_IRQ_ON,       /* interrupts on (they are off until the IDT is whole) */
};

/* Port I/O and MSRs: kernel calls, since main() runs in ring 3. */
void rt_outb(uint16_t port, uint8_t v);
void rt_outw(uint16_t port, uint16_t v);
void rt_outl(uint16_t port, uint32_t v);
uint8_t rt_inb(uint16_t port);
uint32_t rt_inl(uint16_t port);
uint64_t rt_rdmsr(uint32_t msr);
void rt_wrmsr(uint32_t msr, uint64_t v);
/* Halt until an interrupt, unless *word >= value already.  The check and
 * the halt are one step in ring 0, so an interrupt that sets the word
 * just before cannot be missed.  Interrupts are otherwise always on. */
void rt_halt_unless(const volatile uint64_t *word, uint64_t value);
/* A kernel call that does nothing, to measure the way in and out. */
void rt_kcall_nop(void);
/* Load an IDT (limit 0: none, for tests that want a triple fault). */
void rt_lidt(uint64_t base, uint16_t limit);

/* MMIO. */
static inline uint32_t rt_mmio_read32(uint64_t addr)
{
	return *(volatile uint32_t *)(uintptr_t)addr;
}
static inline void rt_mmio_write32(uint64_t addr, uint32_t v)
{
	*(volatile uint32_t *)(uintptr_t)addr = v;
}
static inline void rt_wmb(void)
{
	__asm__ volatile("sfence" ::: "memory");
}
/* A full barrier: earlier stores are visible before later loads. */
static inline void rt_mb(void)
{
	__asm__ volatile("mfence" ::: "memory");
}
static inline uint64_t rt_rdtsc(void)
{
	uint32_t lo, hi;

	__asm__ volatile("lfence; rdtsc" : "=a"(lo), "=d"(hi));
	return ((uint64_t)hi << 32) | lo;
}
void rt_cpuid(uint32_t leaf, uint32_t sub, uint32_t r[4]);

/* Time: ns since boot from the TSC (0 if its rate is unknown). */
uint64_t rt_tsc_khz(void);
uint64_t rt_ns(void);
uint64_t rt_cycles_to_ns(uint64_t cycles);

/* Memory: RAM above the image, in pages, never freed.  NULL when out. */
void *rt_alloc_pages(size_t npages);
uint64_t rt_ram_size(void);
/* Map [addr, addr + len) uncached above 4 GiB (64-bit BARs); 0 or -1. */
int rt_map_mmio(uint64_t addr, uint64_t len);

/* Command line: "key=value" words. */
uint64_t rt_arg_u64(const char *cmdline, const char *key, uint64_t dflt);
bool rt_arg_flag(const char *cmdline, const char *word);

/* libc pieces gcc may call on its own. */
void *memcpy(void *d, const void *s, size_t n);
void *memset(void *d, int c, size_t n);
void *memmove(void *d, const void *s, size_t n);
int memcmp(const void *a, const void *b, size_t n);
size_t strlen(const char *s);
int strncmp(const char *a, const char *b, size_t n);

/* IEEE binary32 on bit patterns, round to nearest-even (softfloat.c). */
uint32_t rt_f32_add(uint32_t a, uint32_t b);
uint32_t rt_f32_mul(uint32_t a, uint32_t b);
uint32_t rt_f32_from_i32(int32_t v);
char *rt_f32_str(char *buf, size_t len, uint32_t x, int decimals);

/* Interrupts (intr.c): IDT (loaded at boot), x2APIC, vectors.  A device
 * interrupt is counted in rt_irq_counts[vector] and acknowledged; the
 * code that waits for it looks at the count. */
void rt_idt_boot(void);   /* ring 0: the #UD entry (kernel calls), lidt */
void rt_idt_fill(void);   /* ring 3: every other entry */
int rt_irq_init(void);
/* The local APIC's timer: one-shot at `vector`, then armed with a count
 * of bus clocks (1 GHz under KVM and QEMU: nanoseconds; counts past 32
 * bits are cut to 32, and the caller re-arms when it wakes early). */
void rt_apic_timer_setup(unsigned int vector);
void rt_apic_timer_arm(uint64_t count);
int rt_irq_alloc(void);   /* a free vector, or -1 */
uint32_t rt_apic_id(void);
/* Device interrupts taken since boot, in all and per vector: words to
 * wait on with rt_halt_unless. */
extern volatile uint64_t rt_irq_count;
extern volatile uint64_t rt_irq_counts[256];

/* PCI (pci_conf.c): configuration mechanism #1 on bus 0. */
struct rt_pci_dev {
	unsigned int devfn;
	uint16_t vendor, device;
	uint64_t bar[6];
	uint64_t bar_size[6];
	bool is64[6];
};
/* The index-th function with these ids, its BARs read, and placed where
 * firmware left them unassigned.  0, or -1: not found, or no room. */
int rt_pci_find(uint16_t vendor, uint16_t device, unsigned int index,
		struct rt_pci_dev *out);
uint32_t rt_pci_read32(unsigned int devfn, unsigned int off);
void rt_pci_write32(unsigned int devfn, unsigned int off, uint32_t v);
uint16_t rt_pci_read16(unsigned int devfn, unsigned int off);
void rt_pci_write16(unsigned int devfn, unsigned int off, uint16_t v);
unsigned int rt_pci_find_cap(unsigned int devfn, uint8_t id);
void rt_pci_enable(const struct rt_pci_dev *d);

#endif
