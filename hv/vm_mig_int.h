/* SPDX-License-Identifier: MIT */
/*
 * The outgoing migration's state (a live migration or a checkpoint),
 * shared by vm_mig.c (the rounds, the stream, the peer) and
 * vm_mig_dev.c (the partitions' side).  Not for other files.
 */
#ifndef HV_VM_MIG_INT_H
#define HV_VM_MIG_INT_H

#include "hv/hv_int.h"

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
	/* Figures. */
	unsigned int rounds;
	uint64_t rate, left, downtime_ns, total_ns, stop_bytes;
	uint64_t pause_ns, stop_copy_ns;   /* parts of the downtime */
	/* A checkpoint: the file, its identity so far, each RAM page's hash
	 * as the file holds it; resumed once the VM runs again. */
	struct mig_wfile *file;
	uint64_t ident, *hash, zero_hash;
	bool resumed;
	char err[320];
};

/* vm_mig.c */
/* Keep the first error's line (printf-style) and return rc. */
int hv_mig_fail(struct hv_mig *m, int rc, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
/* One chunk of kind: hdr (hlen bytes) then data (dlen) as its payload. */
int hv_mig_chunk(struct hv_mig *m, unsigned int kind, const void *hdr, uint32_t hlen,
		 const void *data, uint32_t dlen);

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
/* Back to what it was: partitions RUNNING, vCPUs running, no logging
 * (once: later calls do nothing). */
void hv_mig_abort(struct hv_mig *m);

#endif
