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
#include <sys/types.h>
#include <linux/kvm.h>

#include "hv/hv.h"
#include "migrate/mig.h"
#include "uapi/gpup_vmmig.h"

/* Guest physical layout. */
#define HV_START_INFO_GPA 0x6000ull  /* hvm_start_info, memory map, cmdline */
#define HV_START_INFO_SIZE 0x2000ull
#define HV_LOW_RAM_END 0xa0000ull    /* legacy VGA hole above */
#define HV_DMA_RO_END 0x100000ull    /* devices may only read below */
#define HV_PCI_MMIO32_BASE 0xc0000000ull
#define HV_PCI_MMIO32_END 0xfec00000ull
#define HV_PCI_MMIO64_BASE (64ull << 30)
#define HV_TSS_ADDR 0xfffbd000ull

#define HV_RAM_SLOT 0u                /* guest RAM's memory slot */

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
	bool parked;                 /* out of KVM_RUN for a pause */
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

/* Guest RAM made before the VM (vm.c): a sealed memfd, mapped, that a
 * thread faults in while the destination waits for its source. */
#define HV_RAM_FILL_STEP (2ull << 20)
struct hv_ram {
	int fd;
	uint8_t *mem;
	uint64_t size;
	pthread_t filler;
	bool filling;
	atomic_bool stop;
};

/* Make size bytes of RAM and start faulting them in: 0 or -errno (the
 * line logged); hv_ram_free in any case. */
int hv_ram_prepare(struct hv_ram *r, uint64_t size);
/* Stop faulting in (what is in stays in). */
void hv_ram_ready(struct hv_ram *r);
/* Unmap and close what no VM took. */
void hv_ram_free(struct hv_ram *r);

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

	/* Pausing the vCPUs for migration (vcpu.c): pause is asked, each
	 * vCPU thread parks out of KVM_RUN until it is cleared. */
	pthread_mutex_t pause_lock;
	pthread_cond_t pause_cond;
	bool pause;
	/* KVM dirty logging on the RAM and BAR2 slots (vm_dirty.c): every
	 * slot set while it is on gets KVM_MEM_LOG_DIRTY_PAGES. */
	bool dirty_log, manual_protect;
	struct hv_mig *mig;          /* an outgoing migration, or NULL */
	const char *incoming;        /* --incoming: the address (--restore: the file) */
	/* The last checkpoint written or restored (vm_ckpt.c): its identity
	 * and each RAM page's XXH3-64 in it, what an incremental one is
	 * taken against.  Only the migration thread touches them once the
	 * VM runs. */
	uint64_t ckpt_ident;
	uint64_t *ckpt_hash;

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
/* Take every vCPU out of KVM_RUN (pending I/O completed, so that its
 * state is whole) and keep it out until hv_vcpus_resume.  0, or -EINTR
 * when the VM stops meanwhile. */
int hv_vcpus_pause(struct hv_vm *vm);
void hv_vcpus_resume(struct hv_vm *vm);

/* vcpu_state.c: a vCPU's whole state as CPU-chunk records, and back. */
int hv_vcpu_save(struct hv_vcpu *cpu, uint8_t *buf, uint32_t max);
int hv_vcpu_load(struct hv_vcpu *cpu, const uint8_t *recs, uint32_t len, char *err,
		 size_t errlen);
/* Append a record to buf (at *off, max bytes): 0 or -ENOSPC. */
int hv_rec_put(uint8_t *buf, uint32_t max, uint32_t *off, uint32_t tag, const void *data,
	       uint32_t len);

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
/* Migration: the functions in order, and a function's config space put
 * back as the guest left it (its writable bits, BARs remapped).  The
 * caller holds io_lock for hv_pci_restore. */
unsigned int hv_pci_count(struct hv_vm *vm);
struct hv_pci_dev *hv_pci_dev_at(struct hv_vm *vm, unsigned int i);
void hv_pci_restore(struct hv_vm *vm, struct hv_pci_dev *d, const uint8_t cfg[256]);

/* partition.c: attach a partition over vfio-user. */
int hv_vgpu_attach(struct hv_vm *vm, const char *sock, struct hv_vgpu **out);
void hv_vgpu_detach(struct hv_vm *vm, struct hv_vgpu *g);
/* Poll fd for the event loop: readable/hangup when the daemon goes. */
int hv_vgpu_poll_fd(struct hv_vgpu *g);
void hv_vgpu_lost(struct hv_vm *vm, struct hv_vgpu *g, const char *why);
/* A JSON object describing the attached partition, for the control socket. */
struct json_object *hv_vgpu_describe(struct hv_vgpu *g);
/* For migration: the connection (use it under io_lock: vCPUs forward
 * register accesses through it), whether it is lost, the VRAM mapping,
 * BAR2's memory slot and where it decodes (0: nowhere), and the MSI-X
 * table as the guest programmed it. */
struct vfu_client *hv_vgpu_client(struct hv_vgpu *g);
bool hv_vgpu_is_lost(struct hv_vgpu *g);
uint8_t *hv_vgpu_vram(struct hv_vgpu *g, uint64_t *size);
unsigned int hv_vgpu_vram_slot(struct hv_vgpu *g, uint64_t *gpa);
void hv_vgpu_msix_save(struct hv_vgpu *g, struct gpup_vmmig_msix *m);
/* Caller holds io_lock; after the function's config space is back. */
int hv_vgpu_msix_load(struct hv_vgpu *g, const struct gpup_vmmig_msix *m);

/* vm_ctl.c: the per-VM control socket. */
struct hv_ctl;
int hv_ctl_open(struct hv_vm *vm, const char *path, struct hv_ctl **out);
int hv_ctl_fd(struct hv_ctl *c);
void hv_ctl_handle(struct hv_vm *vm, struct hv_ctl *c);
void hv_ctl_close(struct hv_ctl *c);

/* vm_dirty.c: KVM dirty logging on every memory slot, for migration. */
int hv_dirty_start(struct hv_vm *vm);
void hv_dirty_stop(struct hv_vm *vm);
/* The pages of slot (npages of them) written since logging began or the
 * last call, ORed into bitmap and forgotten: 0, or -errno (a slot that is
 * not there: -ENOENT). */
int hv_dirty_get(struct hv_vm *vm, unsigned int slot, uint64_t npages, uint64_t *bitmap);

/* vm_devstate.c: the VMM's own device state as VMSTATE records. */
int hv_vmstate_save(struct hv_vm *vm, uint8_t *buf, uint32_t max);
int hv_vmstate_load(struct hv_vm *vm, const uint8_t *recs, uint32_t len, char *err,
		    size_t errlen);

/* vm_net.c: TCP for migration, addresses "tcp:HOST:PORT".  Sockets that
 * hv_tcp_connect makes or hv_tcp_accepted tunes are non-blocking; each
 * wait is bounded by ms (-ETIMEDOUT). */
int hv_tcp_check(const char *addr);
int hv_tcp_connect(const char *addr, unsigned int ms);
int hv_tcp_listen(const char *addr);
void hv_tcp_accepted(int fd);
int hv_tcp_send(int fd, const void *buf, size_t len, unsigned int ms);
ssize_t hv_tcp_recv_some(int fd, void *buf, size_t len, unsigned int ms);
int hv_tcp_recv(int fd, void *buf, size_t len, unsigned int ms);

/* vm_mig.c: an outgoing migration, started from the control socket. */
struct hv_mig_params {
	char to[128];                /* tcp:HOST:PORT */
	/* A checkpoint instead: the file (to is then empty), and the base of
	 * an incremental one or "". */
	char path[1024], base[1024];
	uint64_t downtime_ns;        /* the budget for the stop */
	uint64_t bandwidth;          /* bytes/s, 0: as fast as it goes */
	unsigned int max_rounds;     /* pre-copy rounds before giving up */
};
/* Start it in its own thread; progress and the result go to out_fd as
 * JSON lines (the thread owns and closes it).  0, or -EBUSY (one runs)
 * or -errno. */
int hv_mig_start(struct hv_vm *vm, const struct hv_mig_params *p, int out_fd);
/* Cancel a running one (the VM is stopping) and wait for its thread. */
void hv_mig_join(struct hv_vm *vm);
bool hv_mig_running(struct hv_vm *vm);

/* vm_converge.c: when pre-copy stops (its DOC says why so). */
enum hv_conv_verdict { HV_CONV_AGAIN, HV_CONV_STOP, HV_CONV_GIVE_UP };
struct hv_conv {
	uint64_t budget_ns;          /* the downtime allowed */
	uint64_t fixed_ns;           /* the stop's part that no rest changes */
	unsigned int max_rounds;
	unsigned int more;           /* rounds after the rest first fit, at most */
	/* Kept from round to round; zero at the start. */
	uint64_t last_ns, best_ns;
	unsigned int fit;            /* rounds since the rest first fit */
};
/* After round `rounds`, whose rest would send in send_ns: another round,
 * the stop, or no convergence. */
enum hv_conv_verdict hv_conv_next(struct hv_conv *c, unsigned int rounds, uint64_t send_ns);

/* The outgoing migration's state (a live migration or a checkpoint),
 * shared by vm_mig.c (the rounds, the stream, the peer) and vm_mig_dev.c
 * (the partitions' side). */
#define HV_MIG_DEV_READ (1u << 20)

struct hv_mig {
	struct hv_vm *vm;
	struct hv_mig_params p;
	pthread_t thread;
	atomic_bool done;
	int sock, out_fd;
	uint32_t seq;
	struct gpup_vmmig_end end;
	uint8_t *out, *dev, *cpu;
	size_t olen, flush_at;       /* staged bytes; send from this many on */
	uint64_t *ram_bm, *vram_bm[HV_MAX_GPUS];
	uint64_t t0, bw_t0, bw_next;
	/* Partitions: what they offer and where they are. */
	bool precopy[HV_MAX_GPUS], logging[HV_MAX_GPUS];
	uint32_t state[HV_MAX_GPUS];
	uint64_t dev_round[HV_MAX_GPUS];
	bool paused;
	struct hv_conv conv;
	/* A peer that acknowledges (not a file): what it has loaded. */
	bool acks;
	uint64_t acked;
	/* Figures. */
	unsigned int rounds;
	uint64_t rate, left, downtime_ns, total_ns, stop_bytes;
	uint64_t pause_ns, stop_copy_ns;   /* parts of the downtime */
	uint64_t dev_stop_ns, dirty_ns;    /* parts of stop_copy_ns */
	/* CPU time while it ran: this thread's, and the vCPUs' (the guest,
	 * whose stores the dirty logs now trap). */
	uint64_t cpu_ns, vcpu_cpu_ns;
	/* A checkpoint: the file, its identity so far, each RAM page's hash
	 * as the file holds it; resumed once the VM runs again. */
	struct mig_wfile *file;
	uint64_t ident, *hash, zero_hash;
	bool resumed;
	uint64_t resumed_ns;         /* when the vCPUs ran again */
	char err[320];
};

/* vm_mig.c */
/* Keep the first error's line (printf-style) and return rc. */
int hv_mig_fail(struct hv_mig *m, int rc, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
/* One chunk of kind: hdr (hlen bytes) then data (dlen) as its payload. */
int hv_mig_chunk(struct hv_mig *m, unsigned int kind, const void *hdr, uint32_t hlen,
		 const void *data, uint32_t dlen);
/* Where the next chunk's data goes in the staging buffer (sent first if
 * full), for a producer that reads straight into it; NULL on failure. */
uint8_t *hv_mig_chunk_room(struct hv_mig *m, uint32_t hlen, uint32_t dlen);

/* vm_mig_dev.c: the partitions.  Each returns 0 or -errno, the line kept
 * with hv_mig_fail. */
/* A DEVICE_FEATURE on partition i, under io_lock. */
int hv_mig_feature(struct hv_mig *m, unsigned int i, uint32_t flags, const void *in,
		   uint32_t in_len, void *out, uint32_t out_max);
int hv_mig_set_state(struct hv_mig *m, unsigned int i, uint32_t state);
/* What each partition offers; DMA logging of guest RAM started. */
int hv_mig_gpus_setup(struct hv_mig *m);
/* Partition i's DMA into guest RAM since the last report, into ram_bm. */
int hv_mig_dma_report(struct hv_mig *m, unsigned int i);
/* Partition i's stream until a short read, as DEV chunks. */
int hv_mig_dev_drain(struct hv_mig *m, unsigned int i);
/* Back to what it was: partitions RUNNING, vCPUs running (resumed_ns),
 * no logging (once: later calls do nothing). */
void hv_mig_abort(struct hv_mig *m);

/* vm_incoming.c: `gpup run --incoming`: wait for a stream, build the VM
 * from it (with hv_build_vm, from *built: cfg with the stream's shape,
 * which must outlive the VM); 0 and the VM ready to start its vCPUs, or
 * an exit code (vm->cfg is NULL if no VM was built). */
int hv_incoming(struct hv_vm *vm, const struct hv_config *cfg, struct hv_config *built,
		int sig_fd);

/* vm_incoming.c: `gpup run --restore FILE`: the VM built and loaded from
 * the checkpoint chain that ends at FILE; 0 and the VM ready to start its
 * vCPUs, or an exit code with one line logged. */
int hv_restore(struct hv_vm *vm, const struct hv_config *cfg, struct hv_config *built);

/* vm_ckpt.c: VM checkpoint files (uapi/gpup_vmmig.h).  Errors are -errno
 * with one line in err that starts with the file's path. */
struct mig_wfile;
struct hv_vms_reader;
struct hv_ckpt_file {
	char path[4096];
	int fd;
	uint64_t size;
	struct gpup_vmckpt_head head;
	struct gpup_vmckpt_tail tail;
};
uint64_t hv_ckpt_page_hash(const uint8_t *page);
uint64_t hv_ckpt_zero_hash(void);
/* Every RAM page's hash into hash (mem_size / 4096 entries). */
void hv_ckpt_hash_ram(struct hv_vm *vm, uint64_t *hash);
/* Open path, its head and tail checked. */
int hv_ckpt_open(const char *path, struct hv_ckpt_file *f, char *err, size_t errlen);
/* The chain that ends at top, each base found and its identity checked:
 * files[0] the full one, files[*n - 1] top (GPUP_VMCKPT_MAX_CHAIN room). */
int hv_ckpt_chain(const char *top, struct hv_ckpt_file *files, unsigned int *n, char *err,
		  size_t errlen);
void hv_ckpt_close(struct hv_ckpt_file *files, unsigned int n);
/* The file's stream through rd (fresh), whole, and its identity checked. */
int hv_ckpt_feed(struct hv_ckpt_file *f, struct hv_vms_reader *rd, char *err, size_t errlen);
/* Writing: the head (incremental on base, this VM's last checkpoint, when
 * base is not empty) into a new file, *ident seeded; then the stream;
 * then the tail; the caller commits or aborts the file. */
int hv_ckpt_begin(struct hv_vm *vm, const char *path, const char *base,
		  struct mig_wfile **out, uint64_t *ident, char *err, size_t errlen);
int hv_ckpt_tail(struct mig_wfile *f, uint64_t stream_bytes, uint64_t ident, char *err,
		 size_t errlen);

/* run.c: build the VM of cfg up to its vCPUs (no kernel is loaded for
 * an incoming one): 0 or an exit code, with a line logged. */
int hv_build_vm(struct hv_vm *vm, const struct hv_config *cfg);

/* vm_stream.c: the VM migration stream (uapi/gpup_vmmig.h). */

/* Fill h for a chunk of kind with payload [payload, +len). */
void hv_vms_seal(struct gpup_vmmig_chunk *h, unsigned int kind, uint32_t seq,
		 const void *payload, uint32_t len);

/* What a parser hands on, each chunk checked first (hash, order, bounds
 * against the HEADER).  Each returns 0 or -errno, which stops the parse
 * (the consumer sets the reader's err line with hv_vms_refuse).  Every
 * member can be NULL. */
struct hv_vms_ops {
	int (*header)(void *opaque, const struct gpup_vmmig_header *h);
	int (*pages)(void *opaque, uint32_t space, uint64_t off, const uint8_t *data,
		     uint32_t pages);
	int (*zero)(void *opaque, uint32_t space, uint64_t off, uint64_t pages);
	int (*dev)(void *opaque, uint32_t gpu, const uint8_t *data, uint32_t len);
	/* recs: the records, each of a known tag and its exact size. */
	int (*cpu)(void *opaque, uint32_t index, const uint8_t *recs, uint32_t len);
	int (*vmstate)(void *opaque, const uint8_t *recs, uint32_t len);
	/* Optional: where a PAGES chunk's pages belong, asked once its head
	 * checked out (in bounds), so that they land there as they come and
	 * are hashed there, without a copy through the reader's buffer;
	 * pages() then gets data at that place, after the hash checked out.
	 * Bytes of a chunk refused later may have landed there: a consumer
	 * that places must not use anything of a refused stream.  NULL (or
	 * the op returning NULL): the pages go through the buffer. */
	uint8_t *(*place)(void *opaque, uint32_t space, uint64_t off, uint32_t pages);
};

enum hv_vms_phase { HV_VMS_WANT_HEADER, HV_VMS_BODY, HV_VMS_CPUS, HV_VMS_VMSTATE,
		    HV_VMS_DONE };

struct hv_vms_reader {
	const struct hv_vms_ops *ops;
	void *opaque;
	enum hv_vms_phase phase;
	struct gpup_vmmig_header hdr;
	struct gpup_vmmig_chunk head;
	uint8_t *payload;            /* GPUP_VMMIG_MAX_PAYLOAD, on first use */
	/* The current PAGES chunk's pages' place (ops->place), and the hash of
	 * its payload so far. */
	uint8_t *place;
	struct mig_hasher *hash;
	size_t have;                 /* bytes of the current chunk so far */
	uint32_t seq, kind, cpus_seen;
	bool vmstate;
	uint64_t pos, chunk_at;      /* bytes taken; where this chunk began */
	/* A checkpoint file's: where the stream starts in it (for the error
	 * lines), and its identity chain so far (uapi/gpup_vmmig.h): the
	 * caller seeds it with the file head's hash. */
	uint64_t origin, ident;
	struct gpup_vmmig_end end;   /* totals so far */
	int error;                   /* the first, kept */
	char err[320];               /* its line */
};

void hv_vms_reader_init(struct hv_vms_reader *r, const struct hv_vms_ops *ops, void *opaque);
void hv_vms_reader_free(struct hv_vms_reader *r);
/* Take n more bytes, split anywhere: 0, or the first error (kept: every
 * later call returns it). */
int hv_vms_feed(struct hv_vms_reader *r, const void *buf, size_t n);
/* The stream has ended: 0 when it was whole (END checked), else -ENODATA
 * or the error before. */
int hv_vms_finish(struct hv_vms_reader *r);
/* Where the next bytes of the stream may be written straight to (the
 * rest of a PAGES chunk's pages, at their place) and *n how many at most,
 * or NULL: then they go through hv_vms_feed.  Those written there are
 * then taken with hv_vms_feed(r, that place, count), which copies
 * nothing. */
uint8_t *hv_vms_direct(struct hv_vms_reader *r, size_t *n);

/* Records of a CPU or VMSTATE payload: 1 and *rec for the next one at
 * *off, 0 at the end, -EBADMSG for a record that overruns. */
struct hv_vms_rec {
	uint32_t tag, len;
	const uint8_t *data;
};
int hv_vms_rec_next(const uint8_t *buf, uint32_t len, uint32_t *off, struct hv_vms_rec *rec);

#endif
