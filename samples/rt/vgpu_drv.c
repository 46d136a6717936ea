// SPDX-License-Identifier: MIT
/*
 * The guest's vGPU driver.  Registers are 32-bit MMIO in BAR0 (each access
 * traps to the VMM and the daemon); doorbells are BAR0 writes that KVM
 * turns into eventfd signals; completions arrive as MSI-X interrupts.  A
 * fence wait halts the CPU between interrupts instead of polling a
 * register, so a waiting guest costs neither host CPU nor VM exits.  A
 * LAPIC one-shot timer bounds each halt so a lost device cannot hang us.
 */
#include "vgpu_drv.h"

#define PCI_CAP_ID_MSIX 0x11
#define MSIX_ENABLE 0x8000u
#define MSIX_MASKALL 0x4000u
/* Re-check the device at least this often: a lost one sends no interrupt. */
#define WAIT_TICK_NS 50000000ull

static int vg_timer_vector = -1;

uint32_t vg_read(struct vg_dev *d, uint32_t off)
{
	return rt_mmio_read32(d->bar0 + off);
}

void vg_write(struct vg_dev *d, uint32_t off, uint32_t v)
{
	rt_mmio_write32(d->bar0 + off, v);
}

static void vg_msix_entry(struct vg_dev *d, uint64_t table, unsigned int v,
			  int cpu_vector)
{
	uint64_t e = table + 16ull * v;

	(void)d;
	rt_mmio_write32(e + 0, 0xfee00000u | (rt_apic_id() << 12));
	rt_mmio_write32(e + 4, 0);
	rt_mmio_write32(e + 8, (uint32_t)cpu_vector);
	rt_mmio_write32(e + 12, 0); /* unmasked */
}

static int vg_setup_msix(struct vg_dev *d)
{
	unsigned int cap = rt_pci_find_cap(d->pci.devfn, PCI_CAP_ID_MSIX);
	uint32_t tbl;
	uint64_t table;
	uint16_t ctrl;

	if (!cap)
		return VG_ERR_NODEV;
	tbl = rt_pci_read32(d->pci.devfn, cap + 4);
	if (tbl & 7)
		return VG_ERR_NODEV; /* the table must be in BAR0 */
	table = d->bar0 + (tbl & ~7u);
	for (unsigned int q = 0; q < GPUP_MAX_QUEUES; q++) {
		d->q[q].vector = rt_irq_alloc();
		if (d->q[q].vector < 0)
			return VG_ERR_NODEV;
		vg_msix_entry(d, table, q, d->q[q].vector);
	}
	d->fault_vector = rt_irq_alloc();
	if (d->fault_vector < 0)
		return VG_ERR_NODEV;
	vg_msix_entry(d, table, GPUP_MAX_QUEUES, d->fault_vector);
	ctrl = rt_pci_read16(d->pci.devfn, cap + 2);
	rt_pci_write16(d->pci.devfn, cap + 2, (uint16_t)((ctrl & ~MSIX_MASKALL) | MSIX_ENABLE));
	return 0;
}

static int vg_setup_timer(void)
{
	if (vg_timer_vector >= 0)
		return 0;
	vg_timer_vector = rt_irq_alloc();
	if (vg_timer_vector < 0)
		return VG_ERR_NODEV;
	rt_apic_timer_setup((unsigned int)vg_timer_vector);
	return 0;
}

static int vg_enable(struct vg_dev *d)
{
	if (vg_read(d, GPUP_REG_ID) != GPUP_ID_MAGIC)
		return VG_ERR_LOST;
	vg_write(d, GPUP_REG_INTR_MASK, 0);
	vg_write(d, GPUP_REG_FAULT_VECTOR, GPUP_MAX_QUEUES);
	vg_write(d, GPUP_REG_CONTROL, GPUP_CTRL_ENABLE);
	return (vg_read(d, GPUP_REG_STATUS) & GPUP_STS_READY) ? 0 : VG_ERR_LOST;
}

int vg_open(struct vg_dev *d, unsigned int index)
{
	int rc;

	memset(d, 0, sizeof(*d));
	d->poll_ns = VG_POLL_NS;
	if (rt_pci_find(GPUP_PCI_VENDOR_ID, GPUP_PCI_DEVICE_ID, index, &d->pci) < 0)
		return VG_ERR_NODEV;
	d->bar0 = d->pci.bar[0];
	d->vram = (uint8_t *)(uintptr_t)d->pci.bar[2];
	if (!d->bar0 || !d->vram ||
	    rt_map_mmio(d->pci.bar[2], d->pci.bar_size[2]) < 0)
		return VG_ERR_NODEV;
	rt_pci_enable(&d->pci);
	rc = vg_setup_msix(d);
	if (rc == 0)
		rc = vg_setup_timer();
	if (rc)
		return rc;
	d->vram_size = vg_read(d, GPUP_REG_VRAM_SIZE_LO) |
		       ((uint64_t)vg_read(d, GPUP_REG_VRAM_SIZE_HI) << 32);
	return vg_enable(d);
}

int vg_reset(struct vg_dev *d)
{
	vg_write(d, GPUP_REG_CONTROL, GPUP_CTRL_RESET);
	for (unsigned int i = 0; i < 1000000; i++) {
		uint32_t c = vg_read(d, GPUP_REG_CONTROL);

		if (c == 0xffffffffu)
			return VG_ERR_LOST;
		if (!(c & GPUP_CTRL_RESET))
			break;
	}
	for (unsigned int q = 0; q < GPUP_MAX_QUEUES; q++)
		d->q[q].ready = false;
	return vg_enable(d);
}

/* Enable a queue and wait until it has taken its start index: under a
 * VMM whose memory the device reads through the VMM itself, that happens
 * after the write (GPUP_QSTS_STARTING), and the producer index must not
 * move before.  It ends either way: taken, or the queue faults. */
static void vg_queue_start(struct vg_dev *d, uint32_t base)
{
	vg_write(d, base + GPUP_Q_CONTROL, GPUP_QCTL_ENABLE);
	while (vg_read(d, base + GPUP_Q_STATUS) & GPUP_QSTS_STARTING)
		__builtin_ia32_pause();
}

static void vg_queue_program(struct vg_dev *d, unsigned int q)
{
	struct vg_queue *x = &d->q[q];
	uint32_t base = GPUP_REG_QUEUE(q);

	vg_write(d, base + GPUP_Q_CONTROL, 0);
	vg_write(d, base + GPUP_Q_RING_LO, (uint32_t)vg_iova(x->ring));
	vg_write(d, base + GPUP_Q_RING_HI, (uint32_t)(vg_iova(x->ring) >> 32));
	vg_write(d, base + GPUP_Q_RING_ENTRIES, VG_RING_ENTRIES);
	vg_write(d, base + GPUP_Q_ENGINE, x->engine);
	vg_write(d, base + GPUP_Q_PI_ADDR_LO, (uint32_t)vg_iova(x->pi_word));
	vg_write(d, base + GPUP_Q_PI_ADDR_HI, (uint32_t)(vg_iova(x->pi_word) >> 32));
	vg_write(d, base + GPUP_Q_VECTOR, q);
	x->watch_word = NULL;
	if (!d->no_watch && (vg_read(d, GPUP_REG_CAPS) & GPUP_CAP_WATCH))
		x->watch_word = (volatile uint32_t *)((uint8_t *)x->pi_word + 128);
	if (x->watch_word)
		*x->watch_word = 0;
	vg_write(d, base + GPUP_Q_WATCH_LO, (uint32_t)(x->watch_word ? vg_iova(x->watch_word) : 0));
	vg_write(d, base + GPUP_Q_WATCH_HI,
		 (uint32_t)(x->watch_word ? vg_iova(x->watch_word) >> 32 : 0));
	vg_queue_start(d, base);
}

int vg_queue_init(struct vg_dev *d, unsigned int q, uint32_t engine)
{
	struct vg_queue *x = &d->q[q];
	uint8_t *words;

	if (q >= GPUP_MAX_QUEUES)
		return VG_ERR_NODEV;
	if (!x->ring) {
		x->ring = rt_alloc_pages(VG_RING_ENTRIES * GPUP_CMD_SIZE / 4096);
		words = rt_alloc_pages(1);
		if (!x->ring || !words)
			return VG_ERR_NOMEM;
		x->pi_word = (volatile uint32_t *)words;
		x->fence = (volatile uint64_t *)(words + 64);
	}
	x->engine = engine;
	vg_queue_program(d, q);
	x->ci = x->pi;
	x->ready = true;
	return (vg_read(d, GPUP_REG_QUEUE(q) + GPUP_Q_STATUS) & GPUP_QSTS_ENABLED) ?
		       0 : VG_ERR_LOST;
}

void vg_queue_restart(struct vg_dev *d, unsigned int q)
{
	uint32_t base = GPUP_REG_QUEUE(q);

	vg_write(d, base + GPUP_Q_CONTROL, 0);
	vg_queue_start(d, base);
	d->q[q].ci = d->q[q].pi; /* enabling starts at the published index */
}

uint32_t vg_queue_fault(struct vg_dev *d, unsigned int q)
{
	return vg_read(d, GPUP_REG_QUEUE(q) + GPUP_Q_FAULT);
}

/* Wait for ring room.  CI is a trapped register read, so it is read only
 * when the cached value says the ring is full. */
static int vg_wait_room(struct vg_dev *d, unsigned int q)
{
	struct vg_queue *x = &d->q[q];

	while (x->pi - x->ci >= VG_RING_ENTRIES) {
		uint32_t st = vg_read(d, GPUP_REG_QUEUE(q) + GPUP_Q_STATUS);

		if (st == 0xffffffffu)
			return VG_ERR_LOST;
		if (st & GPUP_QSTS_FAULTED)
			return VG_ERR_FAULT;
		x->ci = vg_read(d, GPUP_REG_QUEUE(q) + GPUP_Q_CI);
	}
	return 0;
}

int vg_submit(struct vg_dev *d, unsigned int q, const union gpup_cmd *c,
	      unsigned int n)
{
	struct vg_queue *x = &d->q[q];
	int rc;

	if (q >= GPUP_MAX_QUEUES || !x->ready)
		return VG_ERR_NODEV; /* never set up, or reset since */
	for (unsigned int i = 0; i < n; i++) {
		rc = vg_wait_room(d, q);
		if (rc)
			return rc;
		x->ring[x->pi % VG_RING_ENTRIES] = c[i];
		x->pi++;
	}
	rt_wmb();
	*x->pi_word = x->pi;
	if (x->watch_word) {
		/* Publish, then look (see GPUP_Q_WATCH_LO): either the device
		 * sees the index, or we see 0 and ring. */
		rt_mb();
		if (*x->watch_word) {
			x->doorbells_skipped++;
			return 0;
		}
	}
	rt_wmb();
	vg_write(d, GPUP_DOORBELL(q), 1);
	x->doorbells++;
	return 0;
}

static void vg_arm_timer(void)
{
	/* The LAPIC timer counts at 1 GHz under KVM and QEMU: ns. */
	rt_apic_timer_arm(WAIT_TICK_NS);
}

/* Halt until the fence reaches seq: rt_halt_unless checks it with
 * interrupts off, so the completion cannot slip in before the halt.  A
 * wake-up that brought no queue interrupt was the timer: then look at the
 * device, which may have faulted the queue or gone away. */
static int vg_wait_seq(struct vg_dev *d, unsigned int q, uint64_t seq,
		       uint64_t timeout_ns)
{
	struct vg_queue *x = &d->q[q];
	uint64_t t0 = rt_ns(), seen;
	uint32_t st;
	int rc = 0;

	if (*x->fence < seq)
		vg_arm_timer();
	while (*x->fence < seq) {
		if (rt_ns() - t0 > timeout_ns) {
			rc = VG_ERR_TIMEOUT;
			break;
		}
		seen = rt_irq_counts[x->vector];
		rt_halt_unless(x->fence, seq);
		if (*x->fence >= seq || rt_irq_counts[x->vector] != seen)
			continue;
		st = vg_read(d, GPUP_REG_QUEUE(q) + GPUP_Q_STATUS);
		if (st == 0xffffffffu || (st & GPUP_QSTS_FAULTED)) {
			rc = st == 0xffffffffu ? VG_ERR_LOST : VG_ERR_FAULT;
			break;
		}
		vg_arm_timer();
	}
	return rc;
}

/* Spin up to d->poll_ns on a fence submitted without an interrupt, as
 * Linux guests poll before halting (cpuidle-haltpoll): a completion that
 * soon is cheaper to spin for than to halt and take an interrupt for,
 * above all where ring 0 is slow.  Only if it does not land is a second
 * FENCE, with the same value and an interrupt, queued behind it. */
static bool vg_spin_first(struct vg_dev *d, unsigned int q, uint64_t seq)
{
	struct vg_queue *x = &d->q[q];
	union gpup_cmd c = gpup_cmd_fence(GPUP_SPACE_IOVA, vg_iova(x->fence), seq, 0);
	uint64_t t0 = rt_ns();

	if (vg_submit(d, q, &c, 1))
		return false;
	while (*x->fence < seq && rt_ns() - t0 < d->poll_ns)
		__asm__ volatile("pause");
	return *x->fence >= seq;
}

int vg_fence_wait(struct vg_dev *d, unsigned int q, uint64_t timeout_ns)
{
	struct vg_queue *x = &d->q[q];
	uint64_t seq = ++x->seq;
	union gpup_cmd c = gpup_cmd_fence(GPUP_SPACE_IOVA, vg_iova(x->fence), seq, GPUP_FENCE_IRQ);
	int rc;

	if (d->poll_ns && vg_spin_first(d, q, seq))
		return 0;
	rc = vg_submit(d, q, &c, 1);
	return rc ? rc : vg_wait_seq(d, q, seq, timeout_ns);
}

int vg_fence_poll(struct vg_dev *d, unsigned int q, uint64_t timeout_ns)
{
	struct vg_queue *x = &d->q[q];
	union gpup_cmd c = gpup_cmd_fence(GPUP_SPACE_IOVA, vg_iova(x->fence), ++x->seq, 0);
	uint64_t t0 = rt_ns();
	int rc = vg_submit(d, q, &c, 1);

	while (!rc && *x->fence < x->seq) {
		if (rt_ns() - t0 > timeout_ns)
			return VG_ERR_TIMEOUT;
		__asm__ volatile("pause");
	}
	return rc;
}

uint64_t vg_vram_alloc(struct vg_dev *d, uint64_t size, uint64_t align)
{
	uint64_t off = (d->vram_next + align - 1) & ~(align - 1);

	if (off > d->vram_size || size > d->vram_size - off)
		return ~0ull;
	d->vram_next = off + size;
	return off;
}

