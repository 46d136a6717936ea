// SPDX-License-Identifier: MIT
/*
 * The partitions' side of an outgoing migration or checkpoint: what each
 * offers (STOP_COPY, PRE_COPY), their migration states, the DMA log of
 * what their engines wrote into guest RAM, and their own streams read
 * with MIG_DATA_READ and carried as DEV chunks.  Every request goes over
 * the partition's vfio-user connection under io_lock, which the vCPUs
 * use too; a lost partition answers -ENOTCONN.
 */
#include <errno.h>
#include <string.h>

#include "hv/hv_int.h"
#include "uapi/vfio_mig.h"
#include "vfu/vfu.h"

#define PG GPUP_VMMIG_PAGE_SIZE
#define HV_MIG_LOG_SPAN (256ull << 20) /* RAM per DMA_LOGGING_REPORT */

int hv_mig_feature(struct hv_mig *m, unsigned int i, uint32_t flags, const void *in,
		   uint32_t in_len, void *out, uint32_t out_max)
{
	struct hv_vm *vm = m->vm;
	int rc;

	pthread_mutex_lock(&vm->io_lock);
	rc = hv_vgpu_is_lost(vm->gpus[i]) ? -ENOTCONN :
	     vfu_client_feature(hv_vgpu_client(vm->gpus[i]), flags, in, in_len, out, out_max);
	pthread_mutex_unlock(&vm->io_lock);
	return rc;
}

int hv_mig_set_state(struct hv_mig *m, unsigned int i, uint32_t state)
{
	struct vfio_device_feature_mig_state s = { .device_state = state, .data_fd = -1 };
	int rc = hv_mig_feature(m, i, VFIO_DEVICE_FEATURE_SET | VFIO_DEVICE_FEATURE_MIG_DEVICE_STATE,
				&s, sizeof(s), &s, sizeof(s));

	if (rc < 0)
		return hv_mig_fail(m, rc, "partition %u: cannot enter state %u: %s", i, state,
				   strerror(-rc));
	m->state[i] = state;
	return 0;
}

/* What each partition offers; DMA logging of guest RAM started. */
int hv_mig_gpus_setup(struct hv_mig *m)
{
	struct {
		struct vfio_user_dma_logging_control c;
		struct vfio_user_dma_logging_range r;
	} log = { { PG, 1, 0 }, { HV_DMA_RO_END, m->vm->mem_size - HV_DMA_RO_END } }, back;
	struct vfio_device_feature_migration mf;
	int rc;

	for (unsigned int i = 0; i < m->vm->ngpus; i++) {
		m->state[i] = VFIO_DEVICE_STATE_RUNNING;
		rc = hv_mig_feature(m, i, VFIO_DEVICE_FEATURE_GET | VFIO_DEVICE_FEATURE_MIGRATION,
				    NULL, 0, &mf, sizeof(mf));
		if (rc < 0 || !(mf.flags & VFIO_MIGRATION_STOP_COPY))
			return hv_mig_fail(m, rc < 0 ? rc : -ENOTSUP,
					   "partition %u cannot be migrated", i);
		m->precopy[i] = mf.flags & VFIO_MIGRATION_PRE_COPY;
		rc = hv_mig_feature(m, i, VFIO_DEVICE_FEATURE_SET |
				    VFIO_DEVICE_FEATURE_DMA_LOGGING_START, &log, sizeof(log),
				    &back, sizeof(back));
		if (rc < 0)
			return hv_mig_fail(m, rc, "partition %u: cannot log its DMA: %s", i,
					   strerror(-rc));
		m->logging[i] = true;
	}
	return 0;
}

/* The partition's DMA into guest RAM since the last report. */
int hv_mig_dma_report(struct hv_mig *m, unsigned int i)
{
	size_t words = HV_MIG_LOG_SPAN / PG / 64;
	uint8_t *buf = m->dev;
	int rc;

	for (uint64_t iova = HV_DMA_RO_END; iova < m->vm->mem_size; iova += HV_MIG_LOG_SPAN) {
		struct vfio_user_dma_logging_report r = { iova, m->vm->mem_size - iova, PG };
		uint64_t w[1];

		if (r.length > HV_MIG_LOG_SPAN)
			r.length = HV_MIG_LOG_SPAN;
		rc = hv_mig_feature(m, i, VFIO_DEVICE_FEATURE_GET |
				    VFIO_DEVICE_FEATURE_DMA_LOGGING_REPORT, &r, sizeof(r), buf,
				    (uint32_t)(sizeof(r) + words * 8));
		if (rc < (int)(sizeof(r) + (r.length / PG + 63) / 64 * 8))
			return hv_mig_fail(m, rc < 0 ? rc : -EPROTO,
					   "partition %u: DMA log report failed", i);
		for (size_t k = 0; k < (r.length / PG + 63) / 64; k++) {
			memcpy(w, buf + sizeof(r) + k * 8, 8);
			m->ram_bm[iova / PG / 64 + k] |= w[0];
		}
	}
	return 0;
}

/* Read partition i's stream until a short read (the round's end, or in
 * STOP_COPY the stream's): DEV chunks. */
int hv_mig_dev_drain(struct hv_mig *m, unsigned int i)
{
	struct gpup_vmmig_dev h = { .gpu = i };
	struct hv_vm *vm = m->vm;
	uint32_t want = vfu_client_max_xfer(hv_vgpu_client(vm->gpus[i]));
	int n;

	want = want < HV_MIG_DEV_READ ? want : HV_MIG_DEV_READ;
	m->dev_round[i] = 0;
	do {
		/* Read where the chunk's data goes: the stream is copied once. */
		uint8_t *to = hv_mig_chunk_room(m, sizeof(h), want);

		if (!to)
			return -EIO;
		pthread_mutex_lock(&vm->io_lock);
		n = hv_vgpu_is_lost(vm->gpus[i]) ? -ENOTCONN :
		    vfu_client_mig_read(hv_vgpu_client(vm->gpus[i]), to, want);
		pthread_mutex_unlock(&vm->io_lock);
		if (n < 0)
			return hv_mig_fail(m, n, "partition %u: reading its state: %s", i,
					   strerror(-n));
		if (n && hv_mig_chunk(m, GPUP_VMMIG_DEV, &h, sizeof(h), to, (uint32_t)n) < 0)
			return -EIO;
		m->end.dev_bytes += (uint64_t)n;
		m->dev_round[i] += (uint64_t)n;
	} while ((uint32_t)n == want);
	return 0;
}

/* Back to what it was: partitions RUNNING, vCPUs running (from
 * m->resumed_ns), then no logging: the logs are only bookkeeping, so the
 * vCPUs do not wait for them to stop. */
void hv_mig_abort(struct hv_mig *m)
{
	struct hv_vm *vm = m->vm;
	struct vfio_device_feature_mig_state s = { .device_state = VFIO_DEVICE_STATE_RUNNING,
						   .data_fd = -1 };

	if (m->resumed)
		return;
	m->resumed = true;
	for (unsigned int i = 0; i < vm->ngpus; i++)
		if (m->state[i] != VFIO_DEVICE_STATE_RUNNING &&
		    hv_mig_feature(m, i, VFIO_DEVICE_FEATURE_SET |
				   VFIO_DEVICE_FEATURE_MIG_DEVICE_STATE, &s, sizeof(s), &s,
				   sizeof(s)) < 0)
			hv_log("migration: partition %u did not go back to RUNNING", i);
	if (m->paused)
		hv_vcpus_resume(vm);
	m->resumed_ns = hv_now_ns();
	for (unsigned int i = 0; i < vm->ngpus; i++)
		if (m->logging[i])
			hv_mig_feature(m, i, VFIO_DEVICE_FEATURE_SET |
				       VFIO_DEVICE_FEATURE_DMA_LOGGING_STOP, NULL, 0, NULL, 0);
	hv_dirty_stop(vm);
}
