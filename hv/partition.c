// SPDX-License-Identifier: MIT
/*
 * A GPU partition in the VM: a PCI function whose device lives in the
 * daemon, reached over vfio-user (vfu/vfu.h).
 *
 * DOC: what goes where
 *
 * - Guest RAM is DMA_MAPped to the daemon once (IOVA = guest physical
 *   address), by passing the memfd: the device reads queues and data in
 *   place.  The first MiB is mapped read-only.
 * - BAR2 (VRAM) is the region's fd mmapped here and installed as a KVM
 *   memory slot: guest loads and stores to VRAM never exit.
 * - BAR0 doorbells are KVM ioeventfds on the device's eventfds, and every
 *   MSI-X vector is a KVM irqfd on an eventfd the device signals: a
 *   doorbell and a completion interrupt never wake this process.
 * - The rest of BAR0 traps and becomes REGION_READ/REGION_WRITE, except
 *   the MSI-X table and PBA pages, which the VMM owns (as QEMU does for
 *   VFIO devices): a table write reprograms the vector's KVM MSI route.
 * - If the daemon goes away (or destroys the partition) the device is
 *   "lost": register reads return all-ones, writes are dropped, one line
 *   is logged, and the guest carries on to notice it.
 */
#include <errno.h>
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <unistd.h>

#include "hv/hv_int.h"
#include "vfu/vfu.h"
#include "uapi/gpup_vgpu.h"

#define PCI_CAP_ID_MSIX 0x11
#define MSIX_CTRL_ENABLE 0x8000u
#define MSIX_CTRL_MASKALL 0x4000u
#define MSIX_ENTRY_SIZE 16u
#define MSIX_VEC_MASKED 1u
#define HV_MSI_WINDOW 0xfee00000ull
/* How long a register access may wait for the daemon.  It answers within
 * microseconds (at worst an engine's slice, a few ms); a daemon that is
 * stopped or wedged must not hold a vCPU, and the VM's I/O lock, for ever. */
#define HV_VGPU_TIMEOUT_MS 3000u
#define HV_VGPU_TIMEOUT_TEXT "3 s"

struct hv_vgpu_vec {
	int efd;                 /* the device signals it; KVM injects */
	int gsi;
	bool wired;              /* irqfd assigned */
	uint32_t entry[4];       /* addr lo, addr hi, data, vector control */
};

struct hv_vgpu {
	struct hv_vm *vm;
	struct vfu_client *c;
	char sock[256];
	struct hv_pci_dev *pci;
	unsigned int msix_cap;
	bool lost;

	void *vram;              /* our mapping of the region fd */
	uint64_t vram_size;
	unsigned int vram_slot;

	struct vfu_iofd db[GPUP_MAX_QUEUES];
	unsigned int ndb;

	struct hv_vgpu_vec vec[GPUP_MSIX_VECTORS];
	unsigned int nvec;
};

/* Caller holds io_lock. */
static void hv_vgpu_mark_lost(struct hv_vgpu *g, const char *why)
{
	if (g->lost)
		return;
	g->lost = true;
	hv_log("GPU partition %s: %s; its registers now read as all-ones",
	       g->sock, why);
}

void hv_vgpu_lost(struct hv_vm *vm, struct hv_vgpu *g, const char *why)
{
	pthread_mutex_lock(&vm->io_lock);
	hv_vgpu_mark_lost(g, why);
	pthread_mutex_unlock(&vm->io_lock);
}

int hv_vgpu_poll_fd(struct hv_vgpu *g)
{
	return g->lost ? -1 : vfu_client_socket(g->c);
}

static uint16_t hv_vgpu_msix_ctrl(struct hv_vgpu *g)
{
	uint16_t v;

	memcpy(&v, g->pci->cfg + g->msix_cap + 2, 2);
	return v;
}

/* Wire or unwire one vector in KVM after its entry or the capability's
 * enable/mask bits changed.  A masked vector's eventfd keeps counting;
 * KVM delivers what is pending when the irqfd is assigned again. */
static void hv_vgpu_vec_update(struct hv_vgpu *g, unsigned int v)
{
	struct hv_vgpu_vec *x = &g->vec[v];
	uint16_t ctrl = hv_vgpu_msix_ctrl(g);
	bool want = (ctrl & MSIX_CTRL_ENABLE) && !(ctrl & MSIX_CTRL_MASKALL) &&
		    !(x->entry[3] & MSIX_VEC_MASKED);
	uint64_t addr = ((uint64_t)x->entry[1] << 32) | x->entry[0];

	/* An MSI is a write to the local APICs' window; aimed anywhere else
	 * it would be a DMA write on real hardware, and is not delivered
	 * (the vector keeps counting until the entry is fixed). */
	if ((addr & ~0xfffffull) != HV_MSI_WINDOW)
		want = false;
	if (want && hv_msi_route_set(g->vm, x->gsi, addr, x->entry[2]) < 0)
		want = false;
	if (want == x->wired)
		return;
	if (hv_irqfd(g->vm, x->efd, x->gsi, want) < 0) {
		hv_log_guest("GPU partition %s: cannot %s vector %u: %s", g->sock,
			     want ? "connect" : "disconnect", v, strerror(errno));
		return;
	}
	x->wired = want;
}

static void hv_vgpu_msix_table(struct hv_vgpu *g, uint64_t off, bool is_write,
			       uint8_t *data, unsigned int len)
{
	unsigned int v = (unsigned int)(off / MSIX_ENTRY_SIZE);
	unsigned int w = (unsigned int)(off % MSIX_ENTRY_SIZE) / 4;

	/* The spec allows dword and qword accesses, naturally aligned. */
	if (v >= g->nvec || off % 4 || (len != 4 && len != 8) || (len == 8 && w % 2)) {
		if (!is_write)
			memset(data, 0xff, len);
		return;
	}
	if (!is_write) {
		memcpy(data, &g->vec[v].entry[w], len);
		return;
	}
	memcpy(&g->vec[v].entry[w], data, len);
	g->vec[v].entry[3] &= MSIX_VEC_MASKED; /* other control bits reserved */
	hv_vgpu_vec_update(g, v);
}

static void hv_vgpu_forward(struct hv_vgpu *g, uint64_t off, bool is_write,
			    uint8_t *data, unsigned int len)
{
	int rc;

	if (g->lost) {
		if (!is_write)
			memset(data, 0xff, len);
		return;
	}
	if (is_write)
		rc = vfu_client_region_write(g->c, VFIO_PCI_BAR0_REGION_INDEX, off, data, len);
	else
		rc = vfu_client_region_read(g->c, VFIO_PCI_BAR0_REGION_INDEX, off, data, len);
	if (rc >= 0)
		return;
	/* A refused access (bad size, offset) reads as all-ones, as on a
	 * real bus; a dead or stalled connection makes the device lost. */
	if (!is_write)
		memset(data, 0xff, len);
	if (rc == -ETIMEDOUT)
		hv_vgpu_mark_lost(g, "the daemon did not answer a register access "
				  "within " HV_VGPU_TIMEOUT_TEXT);
	else if (vfu_client_broken(g->c))
		hv_vgpu_mark_lost(g, rc == -EPROTO ? "the daemon broke the vfio-user protocol"
					: "the daemon closed the connection");
}

static void hv_vgpu_bar0(struct hv_vm *vm, void *opaque, uint64_t off,
			 bool is_write, uint8_t *data, unsigned int len)
{
	struct hv_vgpu *g = opaque;

	(void)vm;
	if (off >= GPUP_PAGE_MSIX_TABLE && off < GPUP_PAGE_MSIX_PBA) {
		hv_vgpu_msix_table(g, off - GPUP_PAGE_MSIX_TABLE, is_write, data, len);
	} else if (off >= GPUP_PAGE_MSIX_PBA) {
		/* Pending bits stay in the eventfds; none are reported. */
		if (!is_write)
			memset(data, 0, len);
	} else {
		hv_vgpu_forward(g, off, is_write, data, len);
	}
}

/* Assign or deassign every doorbell's ioeventfd at BAR0 = base.  An
 * assignment that fails takes back the ones before it. */
static int hv_vgpu_doorbells(struct hv_vgpu *g, uint64_t base, bool assign)
{
	for (unsigned int i = 0; i < g->ndb; i++) {
		int rc = hv_ioeventfd(g->vm, g->db[i].fd, base + g->db[i].offset,
				      (unsigned int)g->db[i].size, assign);

		if (rc == 0 || !assign)
			continue;
		hv_log_guest("GPU partition %s: doorbell %u ioeventfd: %s", g->sock, i,
			     strerror(-rc));
		while (i--)
			hv_ioeventfd(g->vm, g->db[i].fd, base + g->db[i].offset,
				     (unsigned int)g->db[i].size, false);
		return rc;
	}
	return 0;
}

static int hv_vgpu_map_bar0(struct hv_vgpu *g, uint64_t gpa)
{
	int rc = hv_register_mmio(g->vm, gpa, GPUP_BAR0_SIZE, hv_vgpu_bar0, g);

	if (rc == 0)
		rc = hv_vgpu_doorbells(g, gpa, true);
	if (rc < 0)
		hv_unregister_mmio(g->vm, gpa, g);
	return rc;
}

/* BARs start decoding, stop, or move (io_lock held).  The PCI host has
 * checked that the new place overlaps nothing else. */
static int hv_vgpu_bar_map(struct hv_pci_dev *d, unsigned int bar,
			   uint64_t old_gpa, uint64_t new_gpa)
{
	struct hv_vgpu *g = d->opaque;

	if (bar == 0) {
		if (old_gpa) {
			hv_unregister_mmio(g->vm, old_gpa, g);
			hv_vgpu_doorbells(g, old_gpa, false);
		}
		return new_gpa ? hv_vgpu_map_bar0(g, new_gpa) : 0;
	}
	if (bar != 2)
		return 0;
	if (old_gpa)
		hv_memslot_set(g->vm, g->vram_slot, old_gpa, 0, NULL);
	return new_gpa ? hv_memslot_set(g->vm, g->vram_slot, new_gpa, g->vram_size,
					g->vram) : 0;
}

static void hv_vgpu_cfg_written(struct hv_pci_dev *d, unsigned int off,
				unsigned int len)
{
	struct hv_vgpu *g = d->opaque;

	if (off + len <= g->msix_cap + 2 || off >= g->msix_cap + 4)
		return;
	for (unsigned int v = 0; v < g->nvec; v++)
		hv_vgpu_vec_update(g, v);
}

static int hv_vgpu_fail(struct hv_vgpu *g, const char *what, int rc)
{
	hv_log("GPU partition %s: %s: %s", g->sock, what, strerror(-rc));
	return rc;
}

/* Identity from the device's own config space; we present it in ours. */
static int hv_vgpu_identity(struct hv_vgpu *g, uint32_t *id, uint32_t *class_rev)
{
	struct vfio_user_device_info info = { .argsz = sizeof(info) };
	int rc = vfu_client_device_info(g->c, &info);

	if (rc < 0)
		return hv_vgpu_fail(g, "DEVICE_GET_INFO", rc);
	if (!(info.flags & VFIO_DEVICE_FLAGS_PCI) ||
	    info.num_regions <= VFIO_PCI_BAR2_REGION_INDEX ||
	    info.num_irqs <= VFIO_PCI_MSIX_IRQ_INDEX)
		return hv_vgpu_fail(g, "not a PCI device with BAR0, BAR2 and MSI-X",
				    -ENODEV);
	rc = vfu_client_region_read(g->c, VFIO_PCI_CONFIG_REGION_INDEX, 0, id, 4);
	if (rc >= 0)
		rc = vfu_client_region_read(g->c, VFIO_PCI_CONFIG_REGION_INDEX, 8,
					class_rev, 4);
	if (rc < 0)
		return hv_vgpu_fail(g, "reading config space", rc);
	if (*id != (GPUP_PCI_VENDOR_ID | (GPUP_PCI_DEVICE_ID << 16)))
		return hv_vgpu_fail(g, "not a gpup vGPU", -ENODEV);
	return 0;
}

static int hv_vgpu_map_vram(struct hv_vgpu *g)
{
	struct vfio_region_info ri = { .argsz = sizeof(ri),
				       .index = VFIO_PCI_BAR2_REGION_INDEX };
	int fd = -1, rc = vfu_client_region_info(g->c, ri.index, &ri, &fd);

	if (rc < 0)
		return hv_vgpu_fail(g, "BAR2 region info", rc);
	if (fd < 0 || !(ri.flags & VFIO_REGION_INFO_FLAG_MMAP) || !ri.size ||
	    ri.size % 4096) {
		if (fd >= 0)
			close(fd);
		return hv_vgpu_fail(g, "BAR2 (VRAM) cannot be mapped", -ENODEV);
	}
	g->vram = mmap(NULL, ri.size, PROT_READ | PROT_WRITE, MAP_SHARED, fd,
		       (off_t)ri.offset);
	close(fd);
	if (g->vram == MAP_FAILED) {
		g->vram = NULL;
		return hv_vgpu_fail(g, "mapping VRAM", -errno);
	}
	g->vram_size = ri.size;
	g->vram_slot = hv_memslot_alloc(g->vm);
	return 0;
}

static int hv_vgpu_wire_irqs(struct hv_vgpu *g)
{
	struct vfio_irq_info ii = { .argsz = sizeof(ii) };
	int fds[GPUP_MSIX_VECTORS], rc;

	rc = vfu_client_irq_info(g->c, VFIO_PCI_MSIX_IRQ_INDEX, &ii);
	if (rc < 0)
		return hv_vgpu_fail(g, "MSI-X irq info", rc);
	if (!(ii.flags & VFIO_IRQ_INFO_EVENTFD) || !ii.count || ii.count > GPUP_MSIX_VECTORS)
		return hv_vgpu_fail(g, "unexpected MSI-X vector count", -ENODEV);
	g->nvec = ii.count;
	for (unsigned int v = 0; v < g->nvec; v++) {
		g->vec[v].entry[3] = MSIX_VEC_MASKED;
		g->vec[v].efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
		g->vec[v].gsi = hv_msi_route_alloc(g->vm);
		if (g->vec[v].efd < 0 || g->vec[v].gsi < 0)
			return hv_vgpu_fail(g, "eventfd or MSI route",
					    g->vec[v].efd < 0 ? -errno : -ENOSPC);
		fds[v] = g->vec[v].efd;
	}
	rc = vfu_client_set_irqs(g->c, VFIO_PCI_MSIX_IRQ_INDEX, 0, g->nvec, fds);
	return rc < 0 ? hv_vgpu_fail(g, "SET_IRQS", rc) : 0;
}

static int hv_vgpu_get_doorbells(struct hv_vgpu *g)
{
	int n = vfu_client_region_io_fds(g->c, VFIO_PCI_BAR0_REGION_INDEX, g->db,
				     GPUP_MAX_QUEUES);

	if (n < 0)
		return hv_vgpu_fail(g, "doorbell io fds", n);
	g->ndb = (unsigned int)n;
	for (unsigned int i = 0; i < g->ndb; i++)
		if (g->db[i].type != VFIO_USER_IO_FD_TYPE_IOEVENTFD || g->db[i].flags ||
		    g->db[i].offset + g->db[i].size > GPUP_BAR0_SIZE ||
		    (g->db[i].size != 4 && g->db[i].size != 8))
			return hv_vgpu_fail(g, "unusable doorbell description", -EPROTO);
	return 0;
}

/* Guest RAM at IOVA = GPA.  The first MiB (boot information, the legacy
 * hole) is read-only to the device: nothing a GPU should write lives
 * there, and it gives guests a read-only window to test the IOMMU with. */
static int hv_vgpu_map_ram(struct hv_vgpu *g)
{
	int rc = vfu_client_dma_map(g->c, g->vm->mem_fd, 0, 0, HV_DMA_RO_END,
				VFIO_USER_DMA_F_READ);

	if (rc >= 0)
		rc = vfu_client_dma_map(g->c, g->vm->mem_fd, HV_DMA_RO_END, HV_DMA_RO_END,
				    g->vm->mem_size - HV_DMA_RO_END,
				    VFIO_USER_DMA_F_READ | VFIO_USER_DMA_F_WRITE);
	return rc < 0 ? hv_vgpu_fail(g, "mapping guest RAM for DMA", rc) : 0;
}

static uint64_t hv_pow2_at_least(uint64_t v)
{
	uint64_t p = 4096;

	while (p < v)
		p <<= 1;
	return p;
}

static int hv_vgpu_add_function(struct hv_vgpu *g, uint32_t id, uint32_t class_rev)
{
	struct hv_pci_dev *d = hv_pci_add(g->vm, (uint16_t)id, (uint16_t)(id >> 16),
					  class_rev);
	uint8_t *cap;
	uint32_t v;

	if (!d || hv_pci_add_bar(g->vm, d, 0, GPUP_BAR0_SIZE, false, false) < 0 ||
	    hv_pci_add_bar(g->vm, d, 2, hv_pow2_at_least(g->vram_size), true, true) < 0)
		return hv_vgpu_fail(g, "no room on the PCI bus", -ENOSPC);
	g->msix_cap = hv_pci_add_cap(d, PCI_CAP_ID_MSIX, 12);
	cap = d->cfg + g->msix_cap;
	v = g->nvec - 1;
	memcpy(cap + 2, &v, 2);
	d->wmask[g->msix_cap + 3] = (MSIX_CTRL_ENABLE | MSIX_CTRL_MASKALL) >> 8;
	v = GPUP_PAGE_MSIX_TABLE; /* BIR 0 */
	memcpy(cap + 4, &v, 4);
	v = GPUP_PAGE_MSIX_PBA;
	memcpy(cap + 8, &v, 4);
	d->opaque = g;
	d->bar_map = hv_vgpu_bar_map;
	d->cfg_written = hv_vgpu_cfg_written;
	g->pci = d;
	hv_pci_enable(g->vm, d);
	return 0;
}

static int hv_vgpu_setup(struct hv_vgpu *g)
{
	uint32_t id = 0, class_rev = 0;
	int rc = hv_vgpu_identity(g, &id, &class_rev);

	if (rc == 0)
		rc = hv_vgpu_map_vram(g);
	if (rc == 0)
		rc = hv_vgpu_get_doorbells(g);
	if (rc == 0)
		rc = hv_vgpu_wire_irqs(g);
	if (rc == 0)
		rc = hv_vgpu_map_ram(g);
	if (rc == 0)
		rc = hv_vgpu_add_function(g, id, class_rev);
	return rc;
}

int hv_vgpu_attach(struct hv_vm *vm, const char *sock, struct hv_vgpu **out)
{
	struct hv_vgpu *g = calloc(1, sizeof(*g));
	int rc;

	if (!g)
		return -ENOMEM;
	g->vm = vm;
	snprintf(g->sock, sizeof(g->sock), "%s", sock);
	for (unsigned int v = 0; v < GPUP_MSIX_VECTORS; v++)
		g->vec[v].efd = g->vec[v].gsi = -1;
	for (unsigned int i = 0; i < GPUP_MAX_QUEUES; i++)
		g->db[i].fd = -1;
	g->c = vfu_client_connect_timeout(sock, HV_VGPU_TIMEOUT_MS, &rc);
	if (!g->c) {
		if (rc == -EBUSY)
			hv_log("cannot attach GPU partition %s: it is in use by another VM "
			       "or client", sock);
		else if (rc == -ETIMEDOUT)
			hv_log("cannot attach GPU partition %s: %s (no answer in %u ms: is "
			       "the daemon wedged?)", sock, strerror(-rc), HV_VGPU_TIMEOUT_MS);
		else
			hv_log("cannot attach GPU partition %s: %s (is the daemon running "
			       "and the partition created?)", sock, strerror(-rc));
		free(g);
		return rc;
	}
	rc = hv_vgpu_setup(g);
	if (rc < 0) {
		hv_vgpu_detach(vm, g);
		return rc;
	}
	*out = g;
	return 0;
}

void hv_vgpu_detach(struct hv_vm *vm, struct hv_vgpu *g)
{
	for (unsigned int v = 0; v < GPUP_MSIX_VECTORS; v++) {
		if (g->vec[v].wired)
			hv_irqfd(vm, g->vec[v].efd, g->vec[v].gsi, false);
		if (g->vec[v].gsi >= 0)
			hv_msi_route_free(vm, g->vec[v].gsi);
		if (g->vec[v].efd >= 0)
			close(g->vec[v].efd);
	}
	if (g->pci && g->pci->bar_mapped[0])
		hv_vgpu_doorbells(g, g->pci->bar_mapped[0], false);
	if (g->pci && g->pci->bar_mapped[2])
		hv_memslot_set(vm, g->vram_slot, g->pci->bar_mapped[2], 0, NULL);
	for (unsigned int i = 0; i < g->ndb; i++)
		if (g->db[i].fd >= 0)
			close(g->db[i].fd);
	if (g->vram)
		munmap(g->vram, g->vram_size);
	vfu_client_close(g->c);
	free(g);
}

struct json_object *hv_vgpu_describe(struct hv_vgpu *g)
{
	struct json_object *o = json_object_new_object();

	json_object_object_add(o, "socket", json_object_new_string(g->sock));
	json_object_object_add(o, "state", json_object_new_string(
		g->lost ? "lost" : "attached"));
	json_object_object_add(o, "vram_bytes", json_object_new_int64((int64_t)g->vram_size));
	json_object_object_add(o, "bar0", json_object_new_int64(
		(int64_t)g->pci->bar_mapped[0]));
	json_object_object_add(o, "bar2", json_object_new_int64(
		(int64_t)g->pci->bar_mapped[2]));
	json_object_object_add(o, "msix_vectors", json_object_new_int((int)g->nvec));
	return o;
}

struct vfu_client *hv_vgpu_client(struct hv_vgpu *g)
{
	return g->c;
}

bool hv_vgpu_is_lost(struct hv_vgpu *g)
{
	return g->lost;
}

uint8_t *hv_vgpu_vram(struct hv_vgpu *g, uint64_t *size)
{
	*size = g->vram_size;
	return g->vram;
}

unsigned int hv_vgpu_vram_slot(struct hv_vgpu *g, uint64_t *gpa)
{
	*gpa = g->pci->bar_mapped[2];
	return g->vram_slot;
}

void hv_vgpu_msix_save(struct hv_vgpu *g, struct gpup_vmmig_msix *m)
{
	memset(m, 0, sizeof(*m));
	m->nvec = g->nvec;
	for (unsigned int v = 0; v < g->nvec; v++)
		memcpy(m->entry[v], g->vec[v].entry, sizeof(m->entry[v]));
}

int hv_vgpu_msix_load(struct hv_vgpu *g, const struct gpup_vmmig_msix *m)
{
	if (m->nvec != g->nvec)
		return -EINVAL;
	for (unsigned int v = 0; v < g->nvec; v++) {
		memcpy(g->vec[v].entry, m->entry[v], sizeof(m->entry[v]));
		g->vec[v].entry[3] &= MSIX_VEC_MASKED;
		hv_vgpu_vec_update(g, v);
	}
	return 0;
}
