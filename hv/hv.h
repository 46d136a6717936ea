/* SPDX-License-Identifier: MIT */
/*
 * hv: gpup's KVM virtual machine monitor (`gpup run`).  It boots a PVH ELF
 * guest with its RAM in a memfd, gives it a 16550 console, a PCI host with
 * the vGPU partitions it attaches over vfio-user, and a JSON control
 * socket, and returns the status the guest writes to port 0xf4.
 *
 * This is the module's one public header: the rest of gpup only needs to
 * describe a VM and run it.
 */
#ifndef HV_HV_H
#define HV_HV_H

#include <stdint.h>

struct hv_ram;

/*
 * Exit codes of `gpup run`.  A guest's own status (0..HV_GUEST_STATUS_MAX)
 * is returned as it is, so the codes from 120 up are the VMM's alone.
 */
#define HV_GUEST_STATUS_MAX 119
#define HV_EXIT_USAGE 120     /* bad command line */
#define HV_EXIT_IMAGE 121     /* kernel image unreadable, not PVH, too big */
#define HV_EXIT_HOST 122      /* KVM or host resources unavailable */
#define HV_EXIT_GPU 123       /* a --gpu partition could not be attached */
#define HV_EXIT_CRASH 124     /* guest crashed: triple fault, bad state */
#define HV_EXIT_BIG_STATUS 125 /* the guest wrote a status above 119 */
#define HV_EXIT_STOPPED 126   /* stopped from outside: signal, control socket,
			       * or migrated away */
#define HV_EXIT_MIGRATION 127 /* --incoming, --restore: no VM came (refused,
			       * cut, lost, a bad checkpoint) */

#define HV_MAX_GPUS 8
#define HV_MAX_CPUS 8
#define HV_DEFAULT_MEM (128ull << 20)
/* Guest RAM lives below the 32-bit PCI hole. */
#define HV_MAX_MEM (3ull << 30)
#define HV_MIN_MEM (2ull << 20)

struct hv_config {
	const char *kernel;          /* PVH ELF image */
	const char *cmdline;         /* passed in hvm_start_info, or NULL */
	uint64_t mem_size;           /* bytes, multiple of 4 KiB */
	unsigned int ncpus;
	const char *gpus[HV_MAX_GPUS]; /* vfio-user sockets */
	unsigned int ngpus;
	const char *serial;          /* NULL or "stdio": stdout; else a file */
	const char *ctl_path;        /* control socket, or NULL for none */
	int irqchip;                 /* force an interrupt controller (see vm.c) */
	int stats;                   /* print exit counts on stderr at the end */
	const char *incoming;        /* tcp:HOST:PORT: wait for a migration
				      * instead of booting kernel */
	const char *restore;         /* a VM checkpoint file: restore it
				      * instead of booting kernel */
	const char *ckpt_fault;      /* tests: "kill@BYTES", "enospc@BYTES" or
				      * "kill@rename", what a checkpoint's
				      * writer does to itself (NULL: none) */
	uint64_t incoming_mem;       /* --incoming: the RAM to expect (--mem
				      * given), faulted in while waiting; 0:
				      * none */
	struct hv_ram *ram;          /* hv's own: RAM made ready ahead, NULL */
};

/* Build the VM, run it to the end and tear it down.  Returns an exit code
 * as above; every VMM-side failure has printed one line on stderr. */
int hv_run(const struct hv_config *cfg);

#endif
