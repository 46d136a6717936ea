/* SPDX-License-Identifier: MIT */
/*
 * hv internals shared by the VMM's files: the VM, its vCPUs, the I/O
 * dispatch tables devices register on, and the KVM wiring helpers
 * (memory slots, MSI routes, irqfds, ioeventfds).  Not for other modules.
 */
#ifndef HV_HV_INT_H
#define HV_HV_INT_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <linux/kvm.h>

#include "hv/hv.h"

/* Guest physical layout. */
#define HV_START_INFO_GPA 0x6000ull  /* hvm_start_info, memory map, cmdline */
#define HV_START_INFO_SIZE 0x2000ull
#define HV_LOW_RAM_END 0xa0000ull    /* legacy VGA hole above */
#define HV_DMA_RO_END 0x100000ull    /* devices may only read below */
#define HV_PCI_MMIO32_BASE 0xc0000000ull
#define HV_PCI_MMIO32_END 0xfec00000ull
#define HV_PCI_MMIO64_BASE (64ull << 30)
#define HV_TSS_ADDR 0xfffbd000ull

#define HV_MAX_IO 32
#define HV_MAX_ROUTES 64

struct hv_vm;

/* A device's handler for a port or MMIO range: off is relative to the
 * range base, data holds len bytes (little-endian).  Reads fill data. */
typedef void (*hv_io_fn)(struct hv_vm *vm, void *opaque, uint64_t off,
			 bool is_write, uint8_t *data, unsigned int len);

struct hv_io_range {
	uint64_t base, len;
	hv_io_fn fn;
	void *opaque;
};

struct hv_vcpu {
	struct hv_vm *vm;
	unsigned int index;
	int fd;
	struct kvm_run *run;
	pthread_t thread;
	bool started;
};

struct hv_serial {
	int fd;                      /* where output goes */
	bool own_fd;
	uint8_t ier, lcr, mcr, scr, dll, dlm;
	char buf[512];
	size_t len;
};

struct hv_pci;
struct hv_vgpu;
struct json_object;

struct hv_vm {
	const struct hv_config *cfg;
	int kvm_fd, vm_fd;
	int mem_fd;
	uint8_t *mem;
	uint64_t mem_size;
	size_t run_size;
	struct hv_vcpu vcpus[HV_MAX_CPUS];
	unsigned int ncpus;
	unsigned int next_slot;
	bool irqchip;                /* in-kernel LAPIC/IOAPIC: see vm.c */

	/* Device emulation runs under one lock: exits are rare by design
	 * (doorbells and interrupts bypass userspace). */
	pthread_mutex_t io_lock;
	struct hv_io_range pio[HV_MAX_IO], mmio[HV_MAX_IO];
	unsigned int npio, nmmio;
	struct hv_serial serial;
	struct hv_pci *pci;
	struct hv_vgpu *gpus[HV_MAX_GPUS];
	unsigned int ngpus;

	/* GSI routing table, owned here and pushed whole to KVM. */
	struct kvm_irq_routing_entry routes[HV_MAX_ROUTES];
	bool route_used[HV_MAX_ROUTES];

	atomic_bool stopping;
	atomic_int exit_code;        /* set once, by the first hv_vm_stop */
	int stop_fd;                 /* eventfd: the VM has stopped */
	uint64_t start_ns;           /* CLOCK_MONOTONIC at creation */
	atomic_uint_fast64_t exits;  /* userspace exits, for status */
	atomic_uint_fast64_t io_exits, mmio_exits;
};

/* vm.c */
/* The VM and its RAM.  vm->irqchip says whether it needs an irqchip, which
 * hv_vm_irqchip creates later: after the memory slots of the start-up
 * (see vm.c), before the first vCPU. */
int hv_vm_create(struct hv_vm *vm, const struct hv_config *cfg);
int hv_vm_irqchip(struct hv_vm *vm);
void hv_vm_destroy(struct hv_vm *vm);
void hv_vm_stop(struct hv_vm *vm, int code);
void hv_log(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Where hv_log writes (stderr; a fuzzing harness points it elsewhere). */
extern int hv_log_fd;
/* For lines a guest can cause again and again (a BAR moved onto RAM, an
 * MSI-X route KVM refuses): at most HV_LOG_GUEST_BURST a second, then one
 * line saying how many were dropped, so a guest cannot flood the log. */
#define HV_LOG_GUEST_BURST 10u
void hv_log_guest(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
uint64_t hv_now_ns(void);
/* Memory slots: a fresh slot number, then set (size 0 deletes). */
unsigned int hv_memslot_alloc(struct hv_vm *vm);
int hv_memslot_set(struct hv_vm *vm, unsigned int slot, uint64_t gpa,
		   uint64_t size, void *hva);

/* kvm_irq.c: MSI routes, irqfds, ioeventfds. */
int hv_msi_route_alloc(struct hv_vm *vm);
int hv_msi_route_set(struct hv_vm *vm, int gsi, uint64_t addr, uint32_t data);
void hv_msi_route_free(struct hv_vm *vm, int gsi);
int hv_irqfd(struct hv_vm *vm, int fd, int gsi, bool assign);
int hv_ioeventfd(struct hv_vm *vm, int fd, uint64_t gpa, unsigned int len,
		 bool assign);

/* bus.c: the dispatch tables. */
int hv_register_pio(struct hv_vm *vm, uint64_t base, uint64_t len,
		    hv_io_fn fn, void *opaque);
/* MMIO ranges come and go with BARs, from config-space writes: the caller
 * holds io_lock. */
int hv_register_mmio(struct hv_vm *vm, uint64_t base, uint64_t len,
		     hv_io_fn fn, void *opaque);
/* Removes the range at base only if it is opaque's. */
void hv_unregister_mmio(struct hv_vm *vm, uint64_t base, void *opaque);
void hv_pio_dispatch(struct hv_vm *vm, uint16_t port, bool is_write,
		     uint8_t *data, unsigned int len);
void hv_mmio_dispatch(struct hv_vm *vm, uint64_t gpa, bool is_write,
		      uint8_t *data, unsigned int len);

/* vcpu.c */
int hv_vcpu_create(struct hv_vm *vm, unsigned int index);
int hv_vcpu_set_boot_state(struct hv_vcpu *cpu, uint64_t entry, uint64_t rbx);
int hv_vcpus_start(struct hv_vm *vm);
void hv_vcpus_join(struct hv_vm *vm);

/* pvh.c: load the ELF image and write hvm_start_info; the entry point.
 * 0, or -ENOEXEC (not a PVH image, or a malformed one: a segment outside
 * the file, over the boot information or another segment, a note past its
 * segment, an entry outside the loaded segments) or -EFBIG (a segment
 * outside guest RAM), with one line logged.  Only vm->mem and mem_size
 * are used, so a plain buffer can stand in for guest RAM. */
int hv_pvh_load(struct hv_vm *vm, const char *path, const char *cmdline,
		uint64_t *entry);
/* The same from an image in memory; name is for the messages. */
int hv_pvh_load_image(struct hv_vm *vm, const char *name, const void *data,
		      size_t size, const char *cmdline, uint64_t *entry);

/* serial.c: the 16550 console and the debug-exit port. */
int hv_serial_init(struct hv_vm *vm, const char *where);
void hv_serial_flush(struct hv_vm *vm);
void hv_serial_close(struct hv_vm *vm);

/* pci_host.c: config mechanism #1 on bus 0, a host bridge, functions with
 * VMM-assigned BARs and a capability list. */
#define HV_PCI_MAX_BARS 6
#define HV_PCI_MAX_DEVS 8
struct hv_pci_dev {
	uint8_t cfg[256];
	uint8_t wmask[256];          /* bits the guest may change */
	uint64_t bar_size[HV_PCI_MAX_BARS];
	uint64_t bar_mapped[HV_PCI_MAX_BARS]; /* live address, 0 = not decoded */
	uint64_t bar_refused[HV_PCI_MAX_BARS]; /* last place refused, said once */
	bool bar_64[HV_PCI_MAX_BARS];
	unsigned int cap_next;       /* where the next capability goes */
	unsigned int devfn;
	void *opaque;
	/* Optional.  A BAR starts or stops decoding or moves: old or new is
	 * 0 when it is not decoded.  Called with io_lock held.  Returns 0, or
	 * -errno when the BAR could not be mapped at new_gpa: it is then
	 * left undecoded (the old mapping is gone either way). */
	int (*bar_map)(struct hv_pci_dev *d, unsigned int bar, uint64_t old_gpa,
		       uint64_t new_gpa);
	/* Optional.  The guest wrote config space [off, off + len). */
	void (*cfg_written)(struct hv_pci_dev *d, unsigned int off, unsigned int len);
};
/* BARs decode only where nothing else is: not over guest RAM, another BAR
 * (of any function) or the interrupt controllers and the TSS from
 * HV_PCI_MMIO32_END to 4 GiB.  Elsewhere a BAR stays undecoded, with one
 * line, until the guest moves it somewhere free. */
int hv_pci_init(struct hv_vm *vm);
void hv_pci_destroy(struct hv_vm *vm);
struct hv_pci_dev *hv_pci_add(struct hv_vm *vm, uint16_t vendor, uint16_t device,
			      uint32_t class_rev);
int hv_pci_add_bar(struct hv_vm *vm, struct hv_pci_dev *d, unsigned int bar,
		   uint64_t size, bool is_64, bool prefetch);
/* Returns the capability's config offset, or 0 when space has run out. */
unsigned int hv_pci_add_cap(struct hv_pci_dev *d, uint8_t id, unsigned int len);
/* Turn on memory decoding, as firmware would, mapping every BAR. */
void hv_pci_enable(struct hv_vm *vm, struct hv_pci_dev *d);

/* partition.c: attach a partition over vfio-user. */
int hv_vgpu_attach(struct hv_vm *vm, const char *sock, struct hv_vgpu **out);
void hv_vgpu_detach(struct hv_vm *vm, struct hv_vgpu *g);
/* Poll fd for the event loop: readable/hangup when the daemon goes. */
int hv_vgpu_poll_fd(struct hv_vgpu *g);
void hv_vgpu_lost(struct hv_vm *vm, struct hv_vgpu *g, const char *why);
/* A JSON object describing the attached partition, for the control socket. */
struct json_object *hv_vgpu_describe(struct hv_vgpu *g);

/* vm_ctl.c: the per-VM control socket. */
struct hv_ctl;
int hv_ctl_open(struct hv_vm *vm, const char *path, struct hv_ctl **out);
int hv_ctl_fd(struct hv_ctl *c);
void hv_ctl_handle(struct hv_vm *vm, struct hv_ctl *c);
void hv_ctl_close(struct hv_ctl *c);

#endif
