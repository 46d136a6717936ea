// SPDX-License-Identifier: MIT
/*
 * The runtime core: start-of-day (hvm_start_info: command line, RAM size),
 * the serial console and a small printf, exit through port 0xf4, the TSC
 * clock, a page allocator, and the few libc functions gcc may emit calls to
 * even in freestanding code.
 */
#include "rt.h"

#define COM1 0x3f8
#define EXIT_PORT 0xf4
/* QEMU's isa-debug-exit sits at 0x501 unless told iobase=0xf4; writing
 * both lets the same image end cleanly under either configuration. */
#define EXIT_PORT_QEMU_DEFAULT 0x501
#define PVH_MAGIC 0x336ec578u
#define PVH_MEMMAP_RAM 1u

struct pvh_start_info {
	uint32_t magic, version, flags, nr_modules;
	uint64_t modlist_paddr, cmdline_paddr, rsdp_paddr, memmap_paddr;
	uint32_t memmap_entries, reserved;
};

struct pvh_memmap_entry {
	uint64_t addr, size;
	uint32_t type, reserved;
};

extern uint32_t rt_start_info;
extern char rt_image_end[];
extern uint64_t rt_pml4[];

static uint64_t rt_ram_top = 32ull << 20; /* if the loader gave no map */
static uint64_t rt_next_free;
static uint64_t rt_khz;
static uint64_t rt_tsc0;
static const char *rt_cmdline;

/* String instructions: short, fast under KVM, and immune to gcc turning
 * a byte loop back into a call to the very function being defined. */
void *memcpy(void *d, const void *s, size_t n)
{
	void *ret = d;

	__asm__ volatile("rep movsb" : "+D"(d), "+S"(s), "+c"(n) : : "memory");
	return ret;
}

void *memset(void *d, int c, size_t n)
{
	void *ret = d;

	__asm__ volatile("rep stosb" : "+D"(d), "+c"(n) : "a"(c) : "memory");
	return ret;
}

void *memmove(void *d, const void *s, size_t n)
{
	unsigned char *dp = d;
	const unsigned char *sp = s;

	if (dp < sp) {
		while (n--)
			*dp++ = *sp++;
	} else {
		while (n--)
			dp[n] = sp[n];
	}
	return d;
}

int memcmp(const void *a, const void *b, size_t n)
{
	const unsigned char *x = a, *y = b;

	for (size_t i = 0; i < n; i++)
		if (x[i] != y[i])
			return x[i] < y[i] ? -1 : 1;
	return 0;
}

size_t strlen(const char *s)
{
	size_t n = 0;

	while (s[n])
		n++;
	return n;
}

int strncmp(const char *a, const char *b, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		if (a[i] != b[i])
			return (unsigned char)a[i] < (unsigned char)b[i] ? -1 : 1;
		if (!a[i])
			return 0;
	}
	return 0;
}

/*
 * Kernel calls.  main() runs in ring 3 (boot.S says why) and gets its
 * privileged instructions done by ring 0.  The way in is an exception:
 * ud2 followed by the bytes "gp", which boot.S's #UD entry recognises,
 * handles and steps over.  An exception is the one entry to ring 0 that
 * every host delivers the same way (PVM does not route `int N` or
 * `syscall` from a guest that is not PVM-aware).  It works from ring 0
 * too, so exception paths use the same calls.
 */
/* boot.S's kc_table has RT_KC_COUNT (11) entries in this order. */
_Static_assert(RT_KC_IRQ_ON + 1 == 11, "boot.S kernel-call table");

static uint64_t rt_kcall(uint64_t op, uint64_t a, uint64_t b, uint64_t c)
{
	__asm__ volatile(".byte 0x0f, 0x0b, 0x67, 0x70"
			 : "+a"(op), "+D"(a), "+S"(b), "+d"(c)
			 :
			 : "rcx", "r8", "r9", "memory");
	return op;
}

void rt_outb(uint16_t port, uint8_t v)
{
	rt_kcall(RT_KC_OUT, port, v, 1);
}

void rt_outw(uint16_t port, uint16_t v)
{
	rt_kcall(RT_KC_OUT, port, v, 2);
}

void rt_outl(uint16_t port, uint32_t v)
{
	rt_kcall(RT_KC_OUT, port, v, 4);
}

uint8_t rt_inb(uint16_t port)
{
	return (uint8_t)rt_kcall(RT_KC_IN, port, 0, 1);
}

uint32_t rt_inl(uint16_t port)
{
	return (uint32_t)rt_kcall(RT_KC_IN, port, 0, 4);
}

uint64_t rt_rdmsr(uint32_t msr)
{
	return rt_kcall(RT_KC_RDMSR, msr, 0, 0);
}

void rt_wrmsr(uint32_t msr, uint64_t v)
{
	rt_kcall(RT_KC_WRMSR, msr, v, 0);
}

void rt_halt_unless(const volatile uint64_t *word, uint64_t value)
{
	rt_kcall(RT_KC_HALT_UNLESS, (uint64_t)(uintptr_t)word, value, 0);
}

void rt_kcall_nop(void)
{
	rt_kcall(RT_KC_NOP, 0, 0, 0);
}

void rt_lidt(uint64_t base, uint16_t limit)
{
	struct {
		uint16_t limit;
		uint64_t base;
	} __attribute__((packed)) d = { limit, base };

	rt_kcall(RT_KC_LIDT, (uint64_t)(uintptr_t)&d, 0, 0);
}

void rt_puts(const char *s)
{
	char line[256];
	size_t n = 0;

	for (; *s; s++) {
		if (*s == '\n')
			line[n++] = '\r';
		line[n++] = *s;
		if (n >= sizeof(line) - 2) {
			rt_kcall(RT_KC_UART_WRITE, COM1, (uint64_t)(uintptr_t)line, n);
			n = 0;
		}
	}
	rt_kcall(RT_KC_UART_WRITE, COM1, (uint64_t)(uintptr_t)line, n);
}

int rt_printf(const char *fmt, ...)
{
	char buf[512];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = rt_vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	rt_puts(buf);
	return n;
}

void rt_exit(int status)
{
	rt_outl(EXIT_PORT, (uint32_t)status);
	rt_outw(EXIT_PORT_QEMU_DEFAULT, (uint16_t)status);
	for (;;)
		rt_halt_unless(&rt_irq_count, ~0ull);
}

/* Through ring 0: in ring 3 some hosts (PVM) answer CPUID from the real
 * CPU instead of the VM's configuration. */
void rt_cpuid(uint32_t leaf, uint32_t sub, uint32_t r[4])
{
	rt_kcall(RT_KC_CPUID, leaf, sub, (uint64_t)(uintptr_t)r);
}

/*
 * The TSC against the PIT's channel 2, which every PC platform with a PIT
 * has and nothing else uses: count 10 ms (11932 ticks of 1.193182 MHz) in
 * mode 0 with the gate (port 0x61 bit 0) on and the speaker off, and read
 * the TSC when OUT2 (port 0x61 bit 5) rises.  0 where there is no PIT: the
 * port reads all-ones or OUT2 never rises within a bounded number of
 * polls.
 */
#define PIT_HZ 1193182u
#define PIT_CAL_TICKS 11932u
#define PIT_CAL_MAX_POLLS 2000000u
static uint64_t rt_pit_tsc_khz(void)
{
	uint8_t ctl = rt_inb(0x61);
	uint64_t t0, t1;
	unsigned int polls = 0;

	if (ctl == 0xff)
		return 0;
	rt_outb(0x61, (uint8_t)((ctl & ~0x02) | 0x01));
	rt_outb(0x43, 0xb0); /* channel 2, lobyte/hibyte, mode 0, binary */
	rt_outb(0x42, PIT_CAL_TICKS & 0xff);
	rt_outb(0x42, PIT_CAL_TICKS >> 8);
	t0 = rt_rdtsc();
	while (!(rt_inb(0x61) & 0x20))
		if (++polls == PIT_CAL_MAX_POLLS)
			break;
	t1 = rt_rdtsc();
	rt_outb(0x61, ctl);
	if (polls == PIT_CAL_MAX_POLLS || t1 <= t0)
		return 0;
	return (t1 - t0) * PIT_HZ / PIT_CAL_TICKS / 1000;
}

/* TSC rate: the hypervisor timing leaf (KVM under gpup, QEMU with
 * invtsc), else the CPU's own leaf 0x15 or 0x16, else measured against
 * the PIT. */
static uint64_t rt_find_tsc_khz(void)
{
	uint32_t r[4];

	rt_cpuid(1, 0, r);
	if (r[2] & (1u << 31)) {
		rt_cpuid(0x40000000, 0, r);
		if (r[0] >= 0x40000010) {
			rt_cpuid(0x40000010, 0, r);
			if (r[0])
				return r[0];
		}
	}
	rt_cpuid(0, 0, r);
	if (r[0] >= 0x15) {
		rt_cpuid(0x15, 0, r);
		if (r[0] && r[1] && r[2])
			return (uint64_t)r[2] * r[1] / r[0] / 1000;
	}
	if (r[0] >= 0x16) {
		rt_cpuid(0x16, 0, r);
		if (r[0])
			return (uint64_t)r[0] * 1000;
	}
	return rt_pit_tsc_khz();
}

uint64_t rt_tsc_khz(void)
{
	return rt_khz;
}

uint64_t rt_cycles_to_ns(uint64_t cycles)
{
	if (!rt_khz)
		return 0;
	/* Split so the product cannot overflow and no libgcc helper for
	 * 128-bit division is needed. */
	return cycles / rt_khz * 1000000u + cycles % rt_khz * 1000000u / rt_khz;
}

uint64_t rt_ns(void)
{
	return rt_cycles_to_ns(rt_rdtsc() - rt_tsc0);
}

uint64_t rt_ram_size(void)
{
	return rt_ram_top;
}

void *rt_alloc_pages(size_t npages)
{
	uint64_t p = rt_next_free;

	if (npages > (rt_ram_top - p) / 4096)
		return (void *)0;
	rt_next_free = p + npages * 4096;
	memset((void *)(uintptr_t)p, 0, npages * 4096);
	return (void *)(uintptr_t)p;
}

/* Above 4 GiB: fill a fresh page directory per GiB with uncached 2 MiB
 * pages, as the boot code did for the PCI hole, and a fresh page-directory
 * pointer table per 512 GiB past the first, up to 4-level paging's 256 TiB. */
int rt_map_mmio(uint64_t addr, uint64_t len)
{
	uint64_t end = (addr + len + (1ull << 30) - 1) & ~((1ull << 30) - 1);

	if (len == 0 || addr + len < addr || end > (1ull << 48))
		return -1;
	for (uint64_t gb = addr & ~((1ull << 30) - 1); gb < end; gb += 1ull << 30) {
		uint64_t *pdpt, *pd, top = gb >> 39;

		if (!(rt_pml4[top] & 1)) {
			pdpt = rt_alloc_pages(1);
			if (!pdpt)
				return -1;
			rt_pml4[top] = (uint64_t)(uintptr_t)pdpt | 0x7;
		}
		pdpt = (uint64_t *)(uintptr_t)(rt_pml4[top] & ~0xfffull);
		if (pdpt[(gb >> 30) & 511] & 1)
			continue;
		pd = rt_alloc_pages(1);
		if (!pd)
			return -1;
		for (int i = 0; i < 512; i++)
			pd[i] = (gb + ((uint64_t)i << 21)) | 0x87 | 0x18;
		pdpt[(gb >> 30) & 511] = (uint64_t)(uintptr_t)pd | 0x7;
	}
	rt_kcall(RT_KC_FLUSH_TLB, 0, 0, 0);
	return 0;
}

static const char *rt_find_word(const char *s, const char *word, size_t n)
{
	while (s && *s) {
		while (*s == ' ')
			s++;
		if (!strncmp(s, word, n) && (s[n] == 0 || s[n] == ' ' || s[n] == '='))
			return s + n;
		while (*s && *s != ' ')
			s++;
	}
	return (const char *)0;
}

uint64_t rt_arg_u64(const char *cmdline, const char *key, uint64_t dflt)
{
	const char *p = rt_find_word(cmdline, key, strlen(key));
	uint64_t v = 0;

	if (!p || *p != '=' || p[1] < '0' || p[1] > '9')
		return dflt;
	for (p++; *p >= '0' && *p <= '9'; p++)
		v = v * 10 + (uint64_t)(*p - '0');
	return v;
}

bool rt_arg_flag(const char *cmdline, const char *word)
{
	const char *p = rt_find_word(cmdline, word, strlen(word));

	return p && *p != '=';
}

static const char *rt_read_start_info(void)
{
	const struct pvh_start_info *si =
		(const void *)(uintptr_t)rt_start_info;
	const struct pvh_memmap_entry *mm;

	if (!si || si->magic != PVH_MAGIC)
		return "";
	if (si->version >= 1 && si->memmap_paddr) {
		mm = (const void *)(uintptr_t)si->memmap_paddr;
		for (uint32_t i = 0; i < si->memmap_entries; i++)
			if (mm[i].type == PVH_MEMMAP_RAM && mm[i].addr == 0x100000 &&
			    mm[i].addr + mm[i].size <= (3ull << 30))
				rt_ram_top = mm[i].addr + mm[i].size;
	}
	return si->cmdline_paddr ? (const char *)(uintptr_t)si->cmdline_paddr : "";
}

/* Ring 0, from boot.S: only what ring 3 cannot do, since on some hosts
 * each ring-0 instruction is emulated (boot.S). */
void rt_start(void);
void rt_start(void)
{
	rt_idt_boot();
}

/* Ring 3, from boot.S. */
void rt_main_user(void);
void rt_main_user(void)
{
	rt_tsc0 = rt_rdtsc();
	rt_next_free = (uint64_t)(uintptr_t)rt_image_end;
	rt_idt_fill();
	rt_kcall(RT_KC_IRQ_ON, 0, 0, 0);
	rt_cmdline = rt_read_start_info();
	rt_khz = rt_find_tsc_khz();
	rt_exit(main(rt_cmdline));
}
