// SPDX-License-Identifier: MIT
/*
 * hostile: a guest that tries to break out of its partition and checks
 * that every attempt is refused the right way: DMA to unmapped and to
 * read-only IOVAs, VRAM offsets past its partition, malformed packets
 * (bad opcode, kernel, arguments), a stream that waits forever, producer
 * indices out of range, a doorbell storm, writes to read-only registers
 * and to the MSI-X table past its end.  Each fault must be reported with
 * the expected code (queue register and fault log), and the device must
 * still compute correctly afterwards and after a function-level reset.
 *
 * Then the VMM's side: memory decoding turned off and on, BAR0 sized and
 * moved over its own RAM, BAR2 moved over BAR0, read-only and absent
 * config registers at odd widths, MSI-X entries aimed outside the APICs,
 * masked one by one and all together (the interrupt must wait, not be
 * lost), 1-, 2- and 8-byte table accesses, the PBA, and ports and MMIO
 * nobody owns.  After each the device must answer as before.
 * Prints one line per check; exits with the number of failed checks.
 *
 * Two kinds of check: the device's (what the daemon enforces, whatever
 * VMM the guest runs under) and `gpup run`'s (the read-only first MiB of
 * DMA, and the VMM's PCI platform: decoding, BAR moves, config-space
 * widths, the MSI-X table it owns, unclaimed ports and MMIO).  The second
 * kind runs only where the host bridge at 00:00.0 is gpup run's; on any
 * other platform (QEMU's pc or q35, say) each group prints one line
 * saying it was skipped and why.
 */
#include "vgpu_drv.h"

#define Q 0
#define TIMEOUT_NS 5000000000ull
#define SHORT_NS 50000000ull
/* The VMM maps the first MiB of guest RAM read-only to devices. */
#define RO_IOVA 0x6000ull

static struct vg_dev dev;
static uint8_t scratch[4096] __attribute__((aligned(4096)));
/* Where BAR0 (16 KiB) is moved to: guest RAM, which must stay RAM. */
static volatile uint32_t ram_page[4096] __attribute__((aligned(16384)));
static unsigned int failures;
static bool on_gpup_run;

/* Whether a group of `gpup run` checks applies here; if not, say so. */
static bool gpup_run_scope(const char *group)
{
	if (!on_gpup_run)
		rt_printf("hostile: %-34s skipped (gpup run's platform; host bridge %08x)\n",
			  group, rt_pci_read32(0, 0));
	return on_gpup_run;
}

static void report(const char *what, bool ok, uint32_t got)
{
	rt_printf("hostile: %-34s %s (0x%x)\n", what, ok ? "ok" : "FAILED", got);
	if (!ok)
		failures++;
}

/* Submit one bad packet; the fence after it must not land, the queue must
 * fault with `code`, and the fault log's newest record must agree. */
static void expect_fault(const char *what, union gpup_cmd bad, uint32_t code)
{
	uint32_t count, rec, qf;
	int rc;

	vg_write(&dev, GPUP_REG_INTR_STATUS, GPUP_INTR_FAULT);
	rc = vg_submit(&dev, Q, &bad, 1);
	if (!rc)
		rc = vg_fence_wait(&dev, Q, TIMEOUT_NS);
	qf = vg_queue_fault(&dev, Q);
	count = vg_read(&dev, GPUP_REG_FAULT_COUNT);
	rec = GPUP_REG_FAULT_LOG + ((count - 1) % GPUP_FAULT_LOG_ENTRIES) * GPUP_FAULT_REC_SIZE;
	report(what, rc == VG_ERR_FAULT && qf == code && count &&
		     vg_read(&dev, rec + GPUP_FAULT_REC_CODE) == code &&
		     vg_read(&dev, rec + GPUP_FAULT_REC_QUEUE) == Q, qf);
	vg_queue_restart(&dev, Q);
}

static void dma_attacks(void)
{
	uint64_t beyond = rt_ram_size() + (64ull << 20);

	expect_fault("DMA to an unmapped IOVA", gpup_cmd_copy(GPUP_SPACE_VRAM, 0,
		     GPUP_SPACE_IOVA, beyond, 64), GPUP_FAULT_IOMMU_UNMAPPED);
	if (gpup_run_scope("read-only DMA window (first MiB)")) {
		expect_fault("DMA write to a read-only IOVA", gpup_cmd_fill(GPUP_SPACE_IOVA,
			     RO_IOVA, 64, 0xdeadbeef), GPUP_FAULT_IOMMU_PERM);
		expect_fault("fence into a read-only IOVA", gpup_cmd_fence(GPUP_SPACE_IOVA,
			     RO_IOVA, 1, 0), GPUP_FAULT_IOMMU_PERM);
	}
	expect_fault("VRAM offset past the partition", gpup_cmd_fill(GPUP_SPACE_VRAM,
		     dev.vram_size, 64, 0), GPUP_FAULT_VRAM_RANGE);
	expect_fault("VRAM copy straddling its end", gpup_cmd_copy(GPUP_SPACE_VRAM,
		     dev.vram_size - 32, GPUP_SPACE_IOVA, vg_iova(scratch), 64),
		     GPUP_FAULT_VRAM_RANGE);
}

static void malformed(void)
{
	union gpup_cmd c;
	uint64_t args[3] = { 0, 0, 0 };

	memset(&c, 0, sizeof(c));
	c.hdr.opcode = 0x77;
	expect_fault("unknown opcode", c, GPUP_FAULT_BAD_OPCODE);
	expect_fault("unknown kernel", gpup_cmd_kernel(99, args, 3), GPUP_FAULT_BAD_KERNEL);
	expect_fault("fill length not a multiple of 4",
		     gpup_cmd_fill(GPUP_SPACE_VRAM, 0, 6, 0), GPUP_FAULT_BAD_ARGS);
	expect_fault("address in no known space",
		     gpup_cmd_fill(7, 0, 64, 0), GPUP_FAULT_BAD_ARGS);
}

/* A producer index far past the ring: the device must refuse it. */
static void ring_attack(void)
{
	struct vg_queue *x = &dev.q[Q];
	uint32_t qf;

	*x->pi_word = x->pi + VG_RING_ENTRIES * 4;
	rt_wmb();
	vg_write(&dev, GPUP_DOORBELL(Q), 1);
	for (int i = 0; i < 100000; i++)
		if (vg_read(&dev, GPUP_REG_QUEUE(Q) + GPUP_Q_STATUS) & GPUP_QSTS_FAULTED)
			break;
	qf = vg_queue_fault(&dev, Q);
	report("producer index out of range", qf == GPUP_FAULT_RING, qf);
	*x->pi_word = x->pi;
	vg_queue_restart(&dev, Q);
}

/* WAIT on a word that never changes: the queue stalls (nothing else is
 * touched); disabling it must clear the stall. */
static void stall_attack(void)
{
	union gpup_cmd w;
	int rc;

	memset(&w, 0, sizeof(w));
	w.wait.hdr.opcode = GPUP_OP_WAIT;
	w.wait.space = GPUP_SPACE_IOVA;
	w.wait.op = GPUP_WAIT_EQ;
	w.wait.addr = vg_iova(scratch);
	w.wait.value = 0x1234567887654321ull;
	w.wait.mask = ~0ull;
	rc = vg_submit(&dev, Q, &w, 1);
	if (!rc)
		rc = vg_fence_wait(&dev, Q, SHORT_NS);
	report("a stream that waits forever", rc == VG_ERR_TIMEOUT, (uint32_t)rc);
	vg_queue_restart(&dev, Q);
}

static void register_attacks(void)
{
	uint32_t id, lo;

	vg_write(&dev, GPUP_REG_ID, 0);
	id = vg_read(&dev, GPUP_REG_ID);
	report("write to the ID register", id == GPUP_ID_MAGIC, id);
	lo = vg_read(&dev, GPUP_REG_VRAM_SIZE_LO);
	vg_write(&dev, GPUP_REG_VRAM_SIZE_LO, 0xffffffffu);
	report("write to VRAM_SIZE", vg_read(&dev, GPUP_REG_VRAM_SIZE_LO) == lo, lo);
	rt_pci_write32(dev.pci.devfn, 0, 0);
	id = rt_pci_read32(dev.pci.devfn, 0);
	report("write to the PCI vendor id", (id & 0xffff) == GPUP_PCI_VENDOR_ID, id);
}

#define PCI_COMMAND 0x04
#define PCI_CMD_MEM 0x0002
#define PCI_BAR0 0x10
#define PCI_BAR2 0x18
#define MSIX_MASKALL 0x4000u
#define VRAM_PROBE (64u << 10)   /* a VRAM word the device never touches */

static bool device_answers(void)
{
	return vg_read(&dev, GPUP_REG_ID) == GPUP_ID_MAGIC;
}

static volatile uint32_t *vram_word(void)
{
	return (volatile uint32_t *)(dev.vram + VRAM_PROBE);
}

/* Memory decoding off: BAR0 and BAR2 read all-ones and take no writes;
 * back on, registers and VRAM are as they were. */
static void decode_attacks(void)
{
	unsigned int fn = dev.pci.devfn;
	uint16_t cmd = rt_pci_read16(fn, PCI_COMMAND);
	uint32_t id, v;

	*vram_word() = 0xc0ffee01u;
	rt_pci_write16(fn, PCI_COMMAND, (uint16_t)(cmd & ~PCI_CMD_MEM));
	id = vg_read(&dev, GPUP_REG_ID);
	v = *vram_word();
	*vram_word() = 0;
	report("decoding off: BAR0 and BAR2 all-ones", id == 0xffffffffu && v == 0xffffffffu, v);
	rt_pci_write16(fn, PCI_COMMAND, cmd);
	v = *vram_word();
	report("decoding on: registers and VRAM back", device_answers() && v == 0xc0ffee01u, v);
}

/* BAR0 sized while decoding, then moved onto guest RAM: the VMM leaves
 * it undecoded and the RAM stays RAM.  Moved back, it works again. */
static void bar0_attacks(void)
{
	unsigned int fn = dev.pci.devfn;
	uint32_t bar = rt_pci_read32(fn, PCI_BAR0), size, v;

	rt_pci_write32(fn, PCI_BAR0, 0xffffffffu);
	size = rt_pci_read32(fn, PCI_BAR0);
	v = vg_read(&dev, GPUP_REG_ID);
	report("BAR0 sized while decoding", size == (uint32_t)~(GPUP_BAR0_SIZE - 1) &&
	       v == 0xffffffffu, size);
	for (unsigned int i = 0; i < 4096; i++)
		ram_page[i] = 0x5eed0000u + i;
	rt_pci_write32(fn, PCI_BAR0, (uint32_t)vg_iova(ram_page));
	ram_page[1] = 0x600df00du;
	v = ram_page[0] ^ 0x5eed0000u;
	report("BAR0 moved onto guest RAM", ram_page[1] == 0x600df00du && v == 0 &&
	       ram_page[4095] == 0x5eed0000u + 4095 &&
	       vg_read(&dev, GPUP_REG_ID) == 0xffffffffu, v);
	rt_pci_write32(fn, PCI_BAR0, bar);
	report("BAR0 moved back", device_answers(), rt_pci_read32(fn, PCI_BAR0));
}

/* BAR2 (VRAM) moved over BAR0: BAR0 must keep answering. */
static void bar2_attacks(void)
{
	unsigned int fn = dev.pci.devfn;
	uint32_t lo = rt_pci_read32(fn, PCI_BAR2), hi = rt_pci_read32(fn, PCI_BAR2 + 4);
	uint64_t size = dev.pci.bar_size[2], target = dev.bar0 & ~(size - 1);
	uint32_t v;

	if (size > (1ull << 31)) {
		report("BAR2 over BAR0 (BAR2 too big to try)", true, 0);
		return;
	}
	rt_pci_write32(fn, PCI_BAR2, (uint32_t)target);
	rt_pci_write32(fn, PCI_BAR2 + 4, 0);
	v = vg_read(&dev, GPUP_REG_ID);
	report("BAR2 moved over BAR0", v == GPUP_ID_MAGIC, v);
	rt_pci_write32(fn, PCI_BAR2 + 4, hi);
	rt_pci_write32(fn, PCI_BAR2, lo);
	v = *vram_word();
	report("BAR2 moved back, VRAM intact", v == 0xc0ffee01u, v);
}

/* Config space: absent functions and slots, read-only fields, odd widths
 * through 0xcfc-0xcff, and a capability walk that ends. */
static void config_attacks(void)
{
	unsigned int fn = dev.pci.devfn, cap = 0, steps = 0;
	uint32_t class = rt_pci_read32(fn, 0x08), tbl, v;
	uint8_t b;

	report("function 1 of the vGPU is absent", rt_pci_read32(fn | 1, 0) == 0xffffffffu,
	       rt_pci_read32(fn | 1, 0));
	report("slot 31 is empty", rt_pci_read32(31 << 3, 0) == 0xffffffffu, 0);
	for (unsigned int p = rt_pci_read32(fn, 0x34) & 0xff; p && steps < 64;
	     p = (rt_pci_read32(fn, p) >> 8) & 0xff, steps++)
		if ((rt_pci_read32(fn, p) & 0xff) == 0x11)
			cap = p;
	report("capability list ends, has MSI-X", cap && steps < 64, steps);
	tbl = rt_pci_read32(fn, cap + 4);
	rt_pci_write32(fn, 0x08, 0);
	rt_pci_write32(fn, 0x34, 0x80);
	rt_pci_write32(fn, cap, (rt_pci_read32(fn, cap) & 0xffff0000u) | 0xff05u);
	rt_pci_write32(fn, cap + 4, 0x1234u);
	v = rt_pci_read32(fn, cap + 4);
	report("read-only config fields", rt_pci_read32(fn, 0x08) == class && v == tbl &&
	       (rt_pci_read32(fn, 0x34) & 0xff) == 0x40 &&
	       (rt_pci_read32(fn, cap) & 0xffff) != 0xff05, v);
	rt_outl(0xcf8, 0x80000000u | (fn << 8));
	b = rt_inb(0xcfd);
	v = rt_inb(0xcf9);
	report("config byte at 0xcfd, 0xcf9 all-ones", b == (GPUP_PCI_VENDOR_ID >> 8) && v == 0xff, b);
	rt_outl(0xcf8, 0);
}

static uint64_t msix_entry(unsigned int v)
{
	return dev.bar0 + GPUP_PAGE_MSIX_TABLE + 16ull * v;
}

/* A FENCE with an interrupt on queue Q: whether its MSI-X arrives. */
static bool irq_arrives(void)
{
	struct vg_queue *x = &dev.q[Q];
	uint64_t seen = rt_irq_counts[x->vector], seq = ++x->seq, t0;
	union gpup_cmd c = gpup_cmd_fence(GPUP_SPACE_IOVA, vg_iova(x->fence), seq,
					  GPUP_FENCE_IRQ);

	if (vg_submit(&dev, Q, &c, 1))
		return false;
	for (t0 = rt_ns(); *x->fence < seq && rt_ns() - t0 < TIMEOUT_NS;)
		__asm__ volatile("pause");
	for (t0 = rt_ns(); rt_irq_counts[x->vector] == seen && rt_ns() - t0 < SHORT_NS;)
		__asm__ volatile("pause");
	return rt_irq_counts[x->vector] != seen;
}

/* Wait for a held interrupt to come after all. */
static bool irq_comes(uint64_t seen)
{
	for (uint64_t t0 = rt_ns(); rt_ns() - t0 < TIMEOUT_NS;)
		if (rt_irq_counts[dev.q[Q].vector] != seen)
			return true;
	return false;
}

static void msix_attacks(void)
{
	unsigned int fn = dev.pci.devfn, cap = rt_pci_find_cap(fn, 0x11);
	uint64_t e = msix_entry(Q), seen;
	uint32_t addr = rt_mmio_read32(e), v;
	uint16_t ctrl = rt_pci_read16(fn, cap + 2);
	bool held;

	/* Past the MSI-X table's last entry: nothing there. */
	rt_mmio_write32(dev.bar0 + GPUP_PAGE_MSIX_TABLE + 16 * 64, 0x1234);
	v = rt_mmio_read32(dev.bar0 + GPUP_PAGE_MSIX_TABLE + 16 * 64);
	report("MSI-X table past its end", v == 0xffffffffu, v);
	rt_mmio_write32(e, 0x12345000u);             /* not the APICs' window */
	held = !irq_arrives();
	seen = rt_irq_counts[dev.q[Q].vector];
	rt_mmio_write32(e, addr);
	report("MSI-X aimed off the APICs: held", held && irq_comes(seen), addr);
	rt_mmio_write32(e + 12, 1);                  /* vector mask */
	held = !irq_arrives();
	seen = rt_irq_counts[dev.q[Q].vector];
	rt_mmio_write32(e + 12, 0);
	report("MSI-X vector masked: held", held && irq_comes(seen), 0);
	rt_pci_write16(fn, cap + 2, (uint16_t)(ctrl | MSIX_MASKALL));
	held = !irq_arrives();
	seen = rt_irq_counts[dev.q[Q].vector];
	rt_pci_write16(fn, cap + 2, ctrl);
	report("MSI-X function masked: held", held && irq_comes(seen), ctrl);

	e = msix_entry(GPUP_MAX_QUEUES - 1);         /* a queue hostile never uses */
	v = rt_mmio_read32(e + 8);
	*(volatile uint16_t *)(uintptr_t)(e + 8) = 0x1234;
	*(volatile uint8_t *)(uintptr_t)(e + 9) = 0x56;
	report("MSI-X 1- and 2-byte writes ignored", rt_mmio_read32(e + 8) == v &&
	       *(volatile uint16_t *)(uintptr_t)(e + 8) == 0xffff, v);
	*(volatile uint64_t *)(uintptr_t)e = 0xfee0f000ull;
	v = rt_mmio_read32(e);
	report("MSI-X 8-byte address write", v == 0xfee0f000u &&
	       *(volatile uint64_t *)(uintptr_t)e == 0xfee0f000ull, v);
	*(volatile uint64_t *)(uintptr_t)e = addr;
	rt_mmio_write32(dev.bar0 + GPUP_PAGE_MSIX_PBA, 0xffffffffu);
	v = rt_mmio_read32(dev.bar0 + GPUP_PAGE_MSIX_PBA);
	report("PBA write ignored", v == 0, v);
	report("device interrupts after the MSI-X attacks", irq_arrives(), 0);
}

/* Ports and MMIO nobody owns read as all-ones. */
static void unclaimed_attacks(void)
{
	uint32_t p = rt_inl(0x510), m;

	rt_map_mmio(0xd0000000ull, 4096);
	m = rt_mmio_read32(0xd0000000ull);
	rt_mmio_write32(0xd0000000ull, 0);
	report("unclaimed port and MMIO all-ones", p == 0xffffffffu && m == 0xffffffffu &&
	       rt_mmio_read32(0xd0000000ull) == 0xffffffffu, m);
}

static void doorbell_storm(unsigned int n)
{
	for (unsigned int i = 0; i < n; i++)
		vg_write(&dev, GPUP_DOORBELL(i % GPUP_MAX_QUEUES), i);
	report("doorbell storm", vg_read(&dev, GPUP_REG_STATUS) & GPUP_STS_READY, n);
}

/* FILL in VRAM, COPY out: the device must still work. */
static bool still_works(uint32_t pattern)
{
	union gpup_cmd c[2] = {
		gpup_cmd_fill(GPUP_SPACE_VRAM, 4096, sizeof(scratch), pattern),
		gpup_cmd_copy(GPUP_SPACE_VRAM, 4096, GPUP_SPACE_IOVA, vg_iova(scratch),
			    sizeof(scratch)),
	};
	const uint32_t *w = (const uint32_t *)scratch;

	memset(scratch, 0, sizeof(scratch));
	if (vg_submit(&dev, Q, c, 2) || vg_fence_wait(&dev, Q, TIMEOUT_NS))
		return false;
	for (unsigned int i = 0; i < sizeof(scratch) / 4; i++)
		if (w[i] != pattern)
			return false;
	return true;
}

int main(const char *cmdline)
{
	bool ok;

	on_gpup_run = rt_pci_read32(0, 0) ==
		      ((GPUP_PCI_HOST_DEVICE_ID << 16) | GPUP_PCI_VENDOR_ID);
	rt_irq_init();
	if (vg_open(&dev, 0) || vg_queue_init(&dev, Q, GPUP_ENGINE_COPY)) {
		rt_printf("hostile: no usable vGPU\n");
		return 100;
	}
	dma_attacks();
	malformed();
	ring_attack();
	stall_attack();
	register_attacks();
	if (gpup_run_scope("PCI platform: decode, BARs, config")) {
		decode_attacks();
		bar0_attacks();
		bar2_attacks();
		config_attacks();
	}
	if (gpup_run_scope("MSI-X table (the VMM's)"))
		msix_attacks();
	if (gpup_run_scope("unclaimed ports and MMIO"))
		unclaimed_attacks();
	/* After BAR0 moved and decoding went off and on: the doorbells must
	 * be ioeventfds again (gpup run --stats shows they do not exit). */
	doorbell_storm((unsigned int)rt_arg_u64(cmdline, "storm", 2000));
	ok = still_works(0xa5a5a5a5u);
	report("device works after the attacks", ok, 0);
	ok = vg_reset(&dev) == 0 && vg_queue_init(&dev, Q, GPUP_ENGINE_COPY) == 0 &&
	     still_works(0x5a5a5a5au);
	report("device works after a reset", ok, vg_read(&dev, GPUP_REG_FAULT_COUNT));
	rt_printf("hostile: %u check(s) failed\n", failures);
	return (int)failures;
}
