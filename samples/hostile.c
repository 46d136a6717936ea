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
 * Prints one line per check; exits with the number of failed checks.
 */
#include "vgpu.h"

#define Q 0
#define TIMEOUT_NS 5000000000ull
#define SHORT_NS 50000000ull
/* The VMM maps the first MiB of guest RAM read-only to devices. */
#define RO_IOVA 0x6000ull

static struct vg_dev dev;
static uint8_t scratch[4096] __attribute__((aligned(4096)));
static unsigned int failures;

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
	expect_fault("DMA write to a read-only IOVA", gpup_cmd_fill(GPUP_SPACE_IOVA,
		     RO_IOVA, 64, 0xdeadbeef), GPUP_FAULT_IOMMU_PERM);
	expect_fault("fence into a read-only IOVA", gpup_cmd_fence(GPUP_SPACE_IOVA,
		     RO_IOVA, 1, 0), GPUP_FAULT_IOMMU_PERM);
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
	/* Past the MSI-X table's last entry: nothing there. */
	rt_mmio_write32(dev.bar0 + GPUP_PAGE_MSIX_TABLE + 16 * 64, 0x1234);
	id = rt_mmio_read32(dev.bar0 + GPUP_PAGE_MSIX_TABLE + 16 * 64);
	report("MSI-X table past its end", id == 0xffffffffu, id);
	rt_pci_write32(dev.pci.devfn, 0, 0);
	id = rt_pci_read32(dev.pci.devfn, 0);
	report("write to the PCI vendor id", (id & 0xffff) == GPUP_PCI_VENDOR_ID, id);
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
	doorbell_storm((unsigned int)rt_arg_u64(cmdline, "storm", 2000));
	ok = still_works(0xa5a5a5a5u);
	report("device works after the attacks", ok, 0);
	ok = vg_reset(&dev) == 0 && vg_queue_init(&dev, Q, GPUP_ENGINE_COPY) == 0 &&
	     still_works(0x5a5a5a5au);
	report("device works after a reset", ok, vg_read(&dev, GPUP_REG_FAULT_COUNT));
	rt_printf("hostile: %u check(s) failed\n", failures);
	return (int)failures;
}
