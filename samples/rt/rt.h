/* SPDX-License-Identifier: MIT */
/*
 * The gpup guest runtime: everything a freestanding sample guest needs and
 * nothing more.  boot.S enters from the PVH ABI, switches to long mode with
 * the first 4 GiB identity-mapped and calls main(); this header offers the
 * console, exit, timing, a page allocator, PCI, interrupts and (vgpu.h)
 * the vGPU driver.  Built with the host gcc, no libc, and with no
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
void rt_putc(char c);
void rt_puts(const char *s);
int rt_printf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
int rt_vsnprintf(char *buf, size_t len, const char *fmt, va_list ap);
int rt_snprintf(char *buf, size_t len, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
__attribute__((noreturn)) void rt_exit(int status);

/* Port and MMIO access. */
static inline void rt_outb(uint16_t port, uint8_t v)
{
	__asm__ volatile("outb %0, %1" : : "a"(v), "Nd"(port));
}
static inline void rt_outw(uint16_t port, uint16_t v)
{
	__asm__ volatile("outw %0, %1" : : "a"(v), "Nd"(port));
}
static inline void rt_outl(uint16_t port, uint32_t v)
{
	__asm__ volatile("outl %0, %1" : : "a"(v), "Nd"(port));
}
static inline uint8_t rt_inb(uint16_t port)
{
	uint8_t v;

	__asm__ volatile("inb %1, %0" : "=a"(v) : "Nd"(port));
	return v;
}
static inline uint32_t rt_inl(uint16_t port)
{
	uint32_t v;

	__asm__ volatile("inl %1, %0" : "=a"(v) : "Nd"(port));
	return v;
}
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
uint64_t rt_rdmsr(uint32_t msr);
void rt_wrmsr(uint32_t msr, uint64_t v);

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
uint32_t rt_f32_from_u32(uint32_t v);
uint32_t rt_f32_from_i32(int32_t v);
char *rt_f32_str(char *buf, size_t len, uint32_t x, int decimals);

/* Interrupts (irq.c): IDT, x2APIC, handlers per vector. */
typedef void (*rt_irq_fn)(unsigned int vector, void *arg);
int rt_irq_init(void);
int rt_irq_alloc(rt_irq_fn fn, void *arg);   /* a free vector, or -1 */
uint32_t rt_apic_id(void);
static inline void rt_irq_enable(void)
{
	__asm__ volatile("sti" ::: "memory");
}
static inline void rt_irq_disable(void)
{
	__asm__ volatile("cli" ::: "memory");
}
/* Wait for an interrupt: enable them and halt in one step, so an
 * interrupt arriving between the check and the halt is not lost. */
static inline void rt_wait_irq(void)
{
	__asm__ volatile("sti; hlt; cli" ::: "memory");
}

/* PCI (pci.c): configuration mechanism #1 on bus 0. */
struct rt_pci_dev {
	unsigned int devfn;
	uint16_t vendor, device;
	uint64_t bar[6];
	uint64_t bar_size[6];
};
int rt_pci_find(uint16_t vendor, uint16_t device, unsigned int index,
		struct rt_pci_dev *out);
uint32_t rt_pci_read32(unsigned int devfn, unsigned int off);
void rt_pci_write32(unsigned int devfn, unsigned int off, uint32_t v);
uint16_t rt_pci_read16(unsigned int devfn, unsigned int off);
void rt_pci_write16(unsigned int devfn, unsigned int off, uint16_t v);
unsigned int rt_pci_find_cap(unsigned int devfn, uint8_t id);
void rt_pci_enable(const struct rt_pci_dev *d);

#endif
