// SPDX-License-Identifier: MIT
/*
 * Live migration of the VM, the source's side: one thread, started by the
 * control socket's "migrate", sends the stream of uapi/gpup_vmmig.h to a
 * `gpup run --incoming` over TCP.
 *
 * DOC: the rounds
 *
 * KVM logs the RAM and BAR2 slots and each partition logs its DMA into
 * guest RAM (DMA_LOGGING) before anything is read, so no write is missed
 * between the first read and the last.  Round 1 sends the RAM that holds
 * data (SEEK_DATA: a fresh destination reads zero elsewhere) and starts
 * each partition's PRE_COPY; every later round sends what the logs say
 * was written meanwhile and the partitions' next PRE_COPY round.  When
 * what is left (the pages dirty now, and what the partitions sent last
 * round) fits the downtime budget at the rate the rounds measured, the
 * vCPUs park, the partitions go to STOP_COPY, the last pages, the vCPUs
 * and the VMM's devices follow, and END.  The destination answers READY
 * once it has checked and loaded all of it; we send GO and stop for good.
 *
 * Anything else (a peer that refuses, goes silent or goes away, a
 * partition that fails, no convergence in max_rounds) aborts: the
 * partitions go back to RUNNING, the vCPUs run on, logging stops, and the
 * guest never knows.
 */
#include <errno.h>
#include <json-c/json.h>
#include <stdarg.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "hv/hv_int.h"
#include "uapi/vfio_mig.h"
#include "vfu/vfu.h"

#define PG GPUP_VMMIG_PAGE_SIZE
#define HV_MIG_OUT (4u << 20)        /* staging buffer */
#define HV_MIG_DEV_READ (1u << 20)
#define HV_MIG_CPU_MAX (64u << 10)
#define HV_MIG_IO_MS 5000u           /* a peer silent this long is gone */
#define HV_MIG_READY_MS 30000u       /* the destination's final checks */
#define HV_MIG_LOG_SPAN (256ull << 20) /* RAM per DMA_LOGGING_REPORT */
/* A round that found almost nothing to send waits a little before the
 * next, rather than spin on the dirty logs. */
#define HV_MIG_QUIET_BYTES (64u << 10)
#define HV_MIG_QUIET_NS 5000000L
/* The part of a stop that does not depend on the bytes: parking the
 * vCPUs, the partitions' STOP_COPY, the destination's READY. */
#define HV_MIG_STOP_FIXED_NS 2000000ull

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
	char err[320];
};

static int hv_mig_fail(struct hv_mig *m, int rc, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static int hv_mig_fail(struct hv_mig *m, int rc, const char *fmt, ...)
{
	va_list ap;

	if (m->err[0])
		return rc;
	va_start(ap, fmt);
	vsnprintf(m->err, sizeof(m->err), fmt, ap);
	va_end(ap);
	return rc;
}

static uint64_t hv_mig_bytes(struct hv_mig *m)
{
	return m->end.bytes + m->olen;
}

/* ---- sending ---- */

/* A REFUSED from the destination may come at any time. */
static int hv_mig_check_peer(struct hv_mig *m)
{
	struct pollfd p = { .fd = m->sock, .events = POLLIN };
	struct gpup_vmmig_reply r;

	if (poll(&p, 1, 0) != 1)
		return 0;
	if (hv_tcp_recv(m->sock, &r, sizeof(r), HV_MIG_IO_MS) < 0 ||
	    r.magic != GPUP_VMMIG_REPLY_MAGIC)
		return hv_mig_fail(m, -ECONNRESET, "the destination went away");
	r.msg[sizeof(r.msg) - 1] = 0;
	return hv_mig_fail(m, -ECONNREFUSED, "the destination refused the stream: %s", r.msg);
}

/* Send what is staged, then wait as long as the bandwidth cap asks. */
static int hv_mig_flush(struct hv_mig *m)
{
	int rc = hv_mig_check_peer(m);

	if (rc == 0 && m->olen)
		rc = hv_tcp_send(m->sock, m->out, m->olen, HV_MIG_IO_MS);
	if (rc < 0)
		return hv_mig_fail(m, rc, "lost the destination: %s", strerror(-rc));
	m->end.bytes += m->olen;
	if (m->p.bandwidth) {
		/* The next send waits until this one would have taken at the
		 * cap: no credit builds up while the rounds do other work. */
		uint64_t now = hv_now_ns();

		if (m->bw_next < now)
			m->bw_next = now;
		m->bw_next += m->olen * 1000000000ull / m->p.bandwidth;
		if (m->bw_next > now) {
			struct timespec ts = { (time_t)((m->bw_next - now) / 1000000000ull),
					       (long)((m->bw_next - now) % 1000000000ull) };

			nanosleep(&ts, NULL);
		}
	}
	m->olen = 0;
	return atomic_load(&m->vm->stopping) ? hv_mig_fail(m, -EINTR, "the VM is stopping") : 0;
}

/* One chunk: head, then hdr (hlen bytes) and data (dlen) as its payload. */
static int hv_mig_chunk(struct hv_mig *m, unsigned int kind, const void *hdr, uint32_t hlen,
			const void *data, uint32_t dlen)
{
	struct gpup_vmmig_chunk h;
	uint8_t *p;
	int rc;

	if (m->olen + sizeof(h) + hlen + dlen > HV_MIG_OUT && (rc = hv_mig_flush(m)) < 0)
		return rc;
	p = m->out + m->olen + sizeof(h);
	memcpy(p, hdr, hlen);
	if (dlen)
		memcpy(p + hlen, data, dlen);
	hv_vms_seal(&h, kind, m->seq++, p, hlen + dlen);
	memcpy(m->out + m->olen, &h, sizeof(h));
	m->olen += sizeof(h) + hlen + dlen;
	return m->olen >= m->flush_at ? hv_mig_flush(m) : 0;
}

static bool hv_page_zero(const uint8_t *p)
{
	const uint64_t *w = (const uint64_t *)p;

	for (unsigned int i = 0; i < PG / 8; i++)
		if (w[i])
			return false;
	return true;
}

static int hv_mig_zero_run(struct hv_mig *m, uint32_t space, uint64_t first, uint64_t n)
{
	struct gpup_vmmig_zero z = { .space = space, .offset = first * PG, .pages = n };

	m->end.zero_pages += n;
	return hv_mig_chunk(m, GPUP_VMMIG_ZERO, &z, sizeof(z), NULL, 0);
}

/* Pages [first, first + n) of space, at most GPUP_VMMIG_MAX_PAGES. */
static int hv_mig_data_run(struct hv_mig *m, uint32_t space, const uint8_t *base,
			   uint64_t first, uint32_t n)
{
	struct gpup_vmmig_pages h = { .space = space, .pages = n, .offset = first * PG };

	m->end.pages += n;
	return hv_mig_chunk(m, GPUP_VMMIG_PAGES, &h, sizeof(h), base + first * PG, n * PG);
}

/* Every page whose bit is set, cleared as it goes: zero pages as ZERO
 * runs, the others as PAGES runs. */
static int hv_mig_send_bitmap(struct hv_mig *m, uint32_t space, const uint8_t *base,
			      uint64_t *bm, uint64_t npages)
{
	uint64_t run = 0, len = 0;
	bool zrun = false;
	int rc = 0;

	for (uint64_t i = 0; i < npages && rc == 0; i++) {
		bool dirty = bm[i / 64] & (1ull << (i % 64)), z;

		if (!dirty && !(i % 64) && !bm[i / 64]) {
			i += 63;
			dirty = false;
		}
		z = dirty && hv_page_zero(base + i * PG);
		if (len && (!dirty || z != zrun || (!z && len == GPUP_VMMIG_MAX_PAGES))) {
			rc = zrun ? hv_mig_zero_run(m, space, run, len)
				  : hv_mig_data_run(m, space, base, run, (uint32_t)len);
			len = 0;
		}
		if (!dirty)
			continue;
		bm[i / 64] &= ~(1ull << (i % 64));
		if (!len) {
			run = i;
			zrun = z;
		}
		len++;
	}
	if (rc == 0 && len)
		rc = zrun ? hv_mig_zero_run(m, space, run, len)
			  : hv_mig_data_run(m, space, base, run, (uint32_t)len);
	return rc;
}

static uint64_t hv_bm_count(const uint64_t *bm, uint64_t npages)
{
	uint64_t n = 0;

	for (uint64_t i = 0; i < (npages + 63) / 64; i++)
		n += (uint64_t)__builtin_popcountll(bm[i]);
	return n;
}

/* ---- partitions ---- */

static int hv_mig_feature(struct hv_mig *m, unsigned int i, uint32_t flags, const void *in,
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

static int hv_mig_set_state(struct hv_mig *m, unsigned int i, uint32_t state)
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
static int hv_mig_gpus_setup(struct hv_mig *m)
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
static int hv_mig_dma_report(struct hv_mig *m, unsigned int i)
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
static int hv_mig_dev_drain(struct hv_mig *m, unsigned int i)
{
	struct gpup_vmmig_dev h = { .gpu = i };
	struct hv_vm *vm = m->vm;
	uint32_t want = vfu_client_max_xfer(hv_vgpu_client(vm->gpus[i]));
	int n;

	want = want < HV_MIG_DEV_READ ? want : HV_MIG_DEV_READ;
	m->dev_round[i] = 0;
	do {
		pthread_mutex_lock(&vm->io_lock);
		n = hv_vgpu_is_lost(vm->gpus[i]) ? -ENOTCONN :
		    vfu_client_mig_read(hv_vgpu_client(vm->gpus[i]), m->dev, want);
		pthread_mutex_unlock(&vm->io_lock);
		if (n < 0)
			return hv_mig_fail(m, n, "partition %u: reading its state: %s", i,
					   strerror(-n));
		if (n && hv_mig_chunk(m, GPUP_VMMIG_DEV, &h, sizeof(h), m->dev, (uint32_t)n) < 0)
			return -EIO;
		m->end.dev_bytes += (uint64_t)n;
		m->dev_round[i] += (uint64_t)n;
	} while ((uint32_t)n == want);
	return 0;
}

/* ---- the rounds ---- */

static int hv_mig_harvest(struct hv_mig *m)
{
	struct hv_vm *vm = m->vm;
	int rc = hv_dirty_get(vm, HV_RAM_SLOT, vm->mem_size / PG, m->ram_bm);

	if (rc < 0)
		return hv_mig_fail(m, rc, "KVM_GET_DIRTY_LOG on guest RAM: %s", strerror(-rc));
	for (unsigned int i = 0; i < vm->ngpus; i++) {
		uint64_t gpa, size;
		unsigned int slot = hv_vgpu_vram_slot(vm->gpus[i], &gpa);

		hv_vgpu_vram(vm->gpus[i], &size);
		if (gpa && (rc = hv_dirty_get(vm, slot, size / PG, m->vram_bm[i])) < 0 &&
		    rc != -ENOENT)
			return hv_mig_fail(m, rc, "KVM_GET_DIRTY_LOG on BAR2: %s", strerror(-rc));
		if (m->logging[i] && hv_mig_dma_report(m, i) < 0)
			return -EIO;
	}
	return 0;
}

static int hv_mig_send_dirty(struct hv_mig *m)
{
	struct hv_vm *vm = m->vm;
	int rc = hv_mig_send_bitmap(m, GPUP_VMMIG_SPACE_RAM, vm->mem, m->ram_bm,
				    vm->mem_size / PG);

	for (unsigned int i = 0; rc == 0 && i < vm->ngpus; i++) {
		uint64_t size;
		uint8_t *vram = hv_vgpu_vram(vm->gpus[i], &size);

		rc = hv_mig_send_bitmap(m, GPUP_VMMIG_SPACE_VRAM0 + i, vram, m->vram_bm[i],
					size / PG);
	}
	return rc;
}

/* Round 1's RAM: every page that holds data. */
static void hv_mig_mark_data(struct hv_mig *m)
{
	struct hv_vm *vm = m->vm;
	off_t at = 0, end;

	while ((at = lseek(vm->mem_fd, at, SEEK_DATA)) >= 0 && (uint64_t)at < vm->mem_size) {
		end = lseek(vm->mem_fd, at, SEEK_HOLE);
		if (end < 0 || (uint64_t)end > vm->mem_size)
			end = (off_t)vm->mem_size;
		for (uint64_t pg = (uint64_t)at / PG; pg < ((uint64_t)end + PG - 1) / PG; pg++)
			m->ram_bm[pg / 64] |= 1ull << (pg % 64);
		at = end;
	}
}

/* What the stop would cost: what is left at the rate measured, and the
 * fixed part, parking the vCPUs and the destination's answer. */
static uint64_t hv_mig_expect_ns(struct hv_mig *m)
{
	return m->rate ? m->left * 1000000000ull / m->rate + HV_MIG_STOP_FIXED_NS : UINT64_MAX;
}

static void hv_mig_progress(struct hv_mig *m, const char *phase)
{
	struct json_object *o = json_object_new_object();
	const char *txt;

	json_object_object_add(o, "event", json_object_new_string(phase));
	json_object_object_add(o, "round", json_object_new_int((int)m->rounds));
	json_object_object_add(o, "bytes", json_object_new_int64((int64_t)hv_mig_bytes(m)));
	json_object_object_add(o, "rate_bps", json_object_new_int64((int64_t)m->rate));
	json_object_object_add(o, "remaining_bytes", json_object_new_int64((int64_t)m->left));
	json_object_object_add(o, "expected_downtime_ms", json_object_new_double(
		m->rate ? (double)hv_mig_expect_ns(m) / 1e6 : 0.0));
	txt = json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN);
	if (m->out_fd >= 0 && (send(m->out_fd, txt, strlen(txt), MSG_NOSIGNAL) < 0 ||
			       send(m->out_fd, "\n", 1, MSG_NOSIGNAL) < 0)) {
		close(m->out_fd); /* nobody listens: the migration goes on */
		m->out_fd = -1;
	}
	json_object_put(o);
}

/* One pre-copy round: the dirty pages, then each partition's round. */
static int hv_mig_round(struct hv_mig *m)
{
	uint64_t t = hv_now_ns(), b = hv_mig_bytes(m), dt;
	int rc = hv_mig_harvest(m);

	if (rc == 0)
		rc = hv_mig_send_dirty(m);
	for (unsigned int i = 0; rc == 0 && i < m->vm->ngpus; i++)
		if (m->precopy[i])
			rc = hv_mig_dev_drain(m, i);
	if (rc == 0)
		rc = hv_mig_flush(m);
	dt = hv_now_ns() - t;
	m->rounds++;
	/* A round too short to time says little about the link: then the
	 * rate over the whole migration so far. */
	if (rc == 0 && hv_mig_bytes(m) - b > (1u << 20) && dt)
		m->rate = (hv_mig_bytes(m) - b) * 1000000000ull / dt;
	else if (rc == 0 && hv_now_ns() > m->bw_t0)
		m->rate = hv_mig_bytes(m) * 1000000000ull / (hv_now_ns() - m->bw_t0);
	return rc;
}

/* What the stop would have to send now: the pages dirty, and what the
 * partitions sent in their last round. */
static int hv_mig_estimate(struct hv_mig *m)
{
	struct hv_vm *vm = m->vm;
	uint64_t pages;
	int rc = hv_mig_harvest(m);

	if (rc < 0)
		return rc;
	pages = hv_bm_count(m->ram_bm, vm->mem_size / PG);
	for (unsigned int i = 0; i < vm->ngpus; i++) {
		uint64_t size;

		hv_vgpu_vram(vm->gpus[i], &size);
		pages += hv_bm_count(m->vram_bm[i], size / PG);
	}
	/* Pages with their share of a chunk head, what the partitions sent
	 * last round, and what the stop sends in any case (vCPUs with their
	 * XSAVE area, the VMM's devices, END). */
	m->left = pages * (PG + 16) + vm->ncpus * 6144ull + 4096;
	for (unsigned int i = 0; i < vm->ngpus; i++)
		m->left += m->dev_round[i];
	return 0;
}

static bool hv_mig_converged(struct hv_mig *m)
{
	return hv_mig_expect_ns(m) <= m->p.downtime_ns;
}

static int hv_mig_header(struct hv_mig *m)
{
	struct hv_vm *vm = m->vm;
	struct gpup_vmmig_header h = {
		.magic = GPUP_VMMIG_MAGIC, .version = GPUP_VMMIG_VERSION, .page_size = PG,
		.mem_size = vm->mem_size, .ncpus = vm->ncpus, .ngpus = vm->ngpus,
		.flags = vm->irqchip ? GPUP_VMMIG_HF_IRQCHIP : 0,
	};

	for (unsigned int i = 0; i < vm->ngpus; i++)
		hv_vgpu_vram(vm->gpus[i], &h.vram_size[i]);
	return hv_mig_chunk(m, GPUP_VMMIG_HEADER, &h, sizeof(h), NULL, 0);
}

static int hv_mig_precopy(struct hv_mig *m)
{
	int rc = hv_mig_header(m);

	for (unsigned int i = 0; rc == 0 && i < m->vm->ngpus; i++)
		if (m->precopy[i])
			rc = hv_mig_set_state(m, i, VFIO_DEVICE_STATE_PRE_COPY);
	if (rc < 0)
		return rc;
	hv_mig_mark_data(m);
	m->bw_t0 = hv_now_ns();
	for (;;) {
		uint64_t before = hv_mig_bytes(m);

		if ((rc = hv_mig_round(m)) < 0 || (rc = hv_mig_estimate(m)) < 0)
			return rc;
		hv_mig_progress(m, "round");
		if (hv_mig_converged(m))
			return 0;
		if (hv_mig_bytes(m) - before < HV_MIG_QUIET_BYTES)
			nanosleep(&(struct timespec){ 0, HV_MIG_QUIET_NS }, NULL);
		if (m->rounds >= m->p.max_rounds)
			return hv_mig_fail(m, -ETIME, "no convergence in %u rounds: %llu bytes "
					   "left at %llu bytes/s would stop the VM %.1f ms, over "
					   "the %llu ms budget", m->rounds,
					   (unsigned long long)m->left,
					   (unsigned long long)m->rate,
					   (double)hv_mig_expect_ns(m) / 1e6,
					   (unsigned long long)(m->p.downtime_ns / 1000000));
	}
}

/* The vCPUs parked: the rest, the vCPUs, the devices, END. */
static int hv_mig_stop_copy(struct hv_mig *m)
{
	struct hv_vm *vm = m->vm;
	uint64_t b = hv_mig_bytes(m);
	int rc = 0;

	for (unsigned int i = 0; rc == 0 && i < vm->ngpus; i++)
		rc = hv_mig_set_state(m, i, VFIO_DEVICE_STATE_STOP_COPY);
	for (unsigned int i = 0; rc == 0 && i < vm->ngpus; i++)
		rc = hv_mig_dev_drain(m, i);
	if (rc == 0)
		rc = hv_mig_harvest(m);
	if (rc == 0)
		rc = hv_mig_send_dirty(m);
	for (unsigned int i = 0; rc == 0 && i < vm->ncpus; i++) {
		struct gpup_vmmig_cpu h = { .index = i };
		int n = hv_vcpu_save(&vm->vcpus[i], m->cpu, HV_MIG_CPU_MAX);

		rc = n < 0 ? hv_mig_fail(m, n, "vCPU %u: cannot read its state: %s", i,
					 strerror(-n))
			   : hv_mig_chunk(m, GPUP_VMMIG_CPU, &h, sizeof(h), m->cpu, (uint32_t)n);
	}
	if (rc == 0) {
		int n = hv_vmstate_save(vm, m->cpu, HV_MIG_CPU_MAX);

		rc = n < 0 ? hv_mig_fail(m, n, "cannot read the VM's devices: %s", strerror(-n))
			   : hv_mig_chunk(m, GPUP_VMMIG_VMSTATE, "", 0, m->cpu, (uint32_t)n);
	}
	if (rc == 0) {
		m->end.chunks = m->seq;
		m->end.bytes += m->olen;
		struct gpup_vmmig_end e = m->end;

		m->end.bytes -= m->olen;
		rc = hv_mig_chunk(m, GPUP_VMMIG_END, &e, sizeof(e), NULL, 0);
	}
	if (rc == 0)
		rc = hv_mig_flush(m);
	m->stop_bytes = hv_mig_bytes(m) - b;
	return rc;
}

/* READY, then GO: from here on the VM is the destination's. */
static int hv_mig_commit(struct hv_mig *m)
{
	struct gpup_vmmig_reply r;
	int rc = hv_tcp_recv(m->sock, &r, sizeof(r), HV_MIG_READY_MS);

	if (rc < 0 || r.magic != GPUP_VMMIG_REPLY_MAGIC)
		return hv_mig_fail(m, rc < 0 ? rc : -EPROTO, "the destination did not answer: %s",
				   rc < 0 ? strerror(-rc) : "not a reply");
	r.msg[sizeof(r.msg) - 1] = 0;
	if (r.code != GPUP_VMMIG_READY)
		return hv_mig_fail(m, -ECONNREFUSED, "the destination refused the stream: %s",
				   r.msg);
	memset(&r, 0, sizeof(r));
	r.magic = GPUP_VMMIG_REPLY_MAGIC;
	r.code = GPUP_VMMIG_GO;
	rc = hv_tcp_send(m->sock, &r, sizeof(r), HV_MIG_IO_MS);
	return rc < 0 ? hv_mig_fail(m, rc, "lost the destination before GO: %s",
				    strerror(-rc)) : 0;
}

/* Back to what it was: partitions RUNNING, vCPUs running, no logging. */
static void hv_mig_abort(struct hv_mig *m)
{
	struct hv_vm *vm = m->vm;
	struct vfio_device_feature_mig_state s = { .device_state = VFIO_DEVICE_STATE_RUNNING,
						   .data_fd = -1 };

	for (unsigned int i = 0; i < vm->ngpus; i++) {
		if (m->state[i] != VFIO_DEVICE_STATE_RUNNING &&
		    hv_mig_feature(m, i, VFIO_DEVICE_FEATURE_SET |
				   VFIO_DEVICE_FEATURE_MIG_DEVICE_STATE, &s, sizeof(s), &s,
				   sizeof(s)) < 0)
			hv_log("migration: partition %u did not go back to RUNNING", i);
		if (m->logging[i])
			hv_mig_feature(m, i, VFIO_DEVICE_FEATURE_SET |
				       VFIO_DEVICE_FEATURE_DMA_LOGGING_STOP, NULL, 0, NULL, 0);
	}
	if (m->paused)
		hv_vcpus_resume(vm);
	hv_dirty_stop(vm);
}

static void hv_mig_report(struct hv_mig *m, int rc)
{
	struct json_object *o = json_object_new_object();
	const char *txt;

	json_object_object_add(o, "ok", json_object_new_boolean(rc == 0));
	if (rc < 0)
		json_object_object_add(o, "error", json_object_new_string(m->err));
	json_object_object_add(o, "event", json_object_new_string(rc ? "failed" : "done"));
	json_object_object_add(o, "to", json_object_new_string(m->p.to));
	json_object_object_add(o, "rounds", json_object_new_int((int)m->rounds));
	json_object_object_add(o, "bytes", json_object_new_int64((int64_t)hv_mig_bytes(m)));
	json_object_object_add(o, "ram_pages", json_object_new_int64((int64_t)m->end.pages));
	json_object_object_add(o, "zero_pages", json_object_new_int64((int64_t)m->end.zero_pages));
	json_object_object_add(o, "device_bytes", json_object_new_int64((int64_t)m->end.dev_bytes));
	json_object_object_add(o, "rate_bps", json_object_new_int64((int64_t)m->rate));
	json_object_object_add(o, "stop_bytes", json_object_new_int64((int64_t)m->stop_bytes));
	json_object_object_add(o, "downtime_ms", json_object_new_double(
		(double)m->downtime_ns / 1e6));
	json_object_object_add(o, "total_ms", json_object_new_double((double)m->total_ns / 1e6));
	/* The downtime's parts: parking the vCPUs, sending the rest, and the
	 * destination's checks until READY. */
	json_object_object_add(o, "pause_ms", json_object_new_double((double)m->pause_ns / 1e6));
	json_object_object_add(o, "stop_copy_ms", json_object_new_double(
		(double)m->stop_copy_ns / 1e6));
	txt = json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN);
	if (m->out_fd >= 0 && send(m->out_fd, txt, strlen(txt), MSG_NOSIGNAL) >= 0)
		send(m->out_fd, "\n", 1, MSG_NOSIGNAL);
	json_object_put(o);
}

static int hv_mig_run(struct hv_mig *m)
{
	struct hv_vm *vm = m->vm;
	uint64_t stop_t;
	int rc;

	m->sock = hv_tcp_connect(m->p.to, HV_MIG_IO_MS);
	if (m->sock < 0)
		return hv_mig_fail(m, m->sock, "cannot reach %s: %s", m->p.to, strerror(-m->sock));
	rc = hv_mig_gpus_setup(m);
	if (rc == 0 && (rc = hv_dirty_start(vm)) < 0)
		hv_mig_fail(m, rc, "KVM cannot log dirty pages here: %s", strerror(-rc));
	if (rc == 0)
		rc = hv_mig_precopy(m);
	if (rc < 0)
		return rc;
	stop_t = hv_now_ns();
	if (hv_vcpus_pause(vm) < 0)
		return hv_mig_fail(m, -EINTR, "the VM is stopping");
	m->paused = true;
	m->pause_ns = hv_now_ns() - stop_t;
	rc = hv_mig_stop_copy(m);
	m->stop_copy_ns = hv_now_ns() - stop_t - m->pause_ns;
	if (rc == 0)
		rc = hv_mig_commit(m);
	m->downtime_ns = hv_now_ns() - stop_t;
	return rc;
}

static void *hv_mig_thread(void *arg)
{
	struct hv_mig *m = arg;
	int rc;

	m->t0 = hv_now_ns();
	rc = hv_mig_run(m);
	m->total_ns = hv_now_ns() - m->t0;
	if (m->sock >= 0) {
		close(m->sock); /* the destination learns at once */
		m->sock = -1;
	}
	if (rc < 0) {
		hv_mig_abort(m);
		hv_log("migration to %s failed, the VM runs on here: %s", m->p.to, m->err);
	}
	hv_mig_report(m, rc);
	if (m->out_fd >= 0) {
		close(m->out_fd);
		m->out_fd = -1;
	}
	if (rc == 0) {
		hv_log("the VM moved to %s (%u rounds, %llu bytes, down %.1f ms); this copy stops",
		       m->p.to, m->rounds, (unsigned long long)hv_mig_bytes(m),
		       (double)m->downtime_ns / 1e6);
		hv_vm_stop(m->vm, HV_EXIT_STOPPED);
	}
	atomic_store(&m->done, true);
	return NULL;
}

static void hv_mig_free(struct hv_mig *m)
{
	if (m->sock >= 0)
		close(m->sock);
	if (m->out_fd >= 0)
		close(m->out_fd);
	free(m->out);
	free(m->dev);
	free(m->cpu);
	free(m->ram_bm);
	for (unsigned int i = 0; i < HV_MAX_GPUS; i++)
		free(m->vram_bm[i]);
	free(m);
}

static int hv_mig_alloc(struct hv_vm *vm, struct hv_mig *m)
{
	m->out = malloc(HV_MIG_OUT);
	m->dev = malloc(HV_MIG_DEV_READ + 4096);
	m->cpu = malloc(HV_MIG_CPU_MAX);
	m->ram_bm = calloc((vm->mem_size / PG + 63) / 64, 8);
	if (!m->out || !m->dev || !m->cpu || !m->ram_bm)
		return -ENOMEM;
	for (unsigned int i = 0; i < vm->ngpus; i++) {
		uint64_t size;

		hv_vgpu_vram(vm->gpus[i], &size);
		m->vram_bm[i] = calloc((size / PG + 63) / 64, 8);
		if (!m->vram_bm[i])
			return -ENOMEM;
	}
	return 0;
}

bool hv_mig_running(struct hv_vm *vm)
{
	return vm->mig && !atomic_load(&vm->mig->done);
}

void hv_mig_join(struct hv_vm *vm)
{
	if (!vm->mig)
		return;
	pthread_join(vm->mig->thread, NULL);
	hv_mig_free(vm->mig);
	vm->mig = NULL;
}

int hv_mig_start(struct hv_vm *vm, const struct hv_mig_params *p, int out_fd)
{
	struct hv_mig *m;
	int rc;

	if (hv_mig_running(vm))
		return -EBUSY;
	hv_mig_join(vm);
	m = calloc(1, sizeof(*m));
	if (!m)
		return -ENOMEM;
	m->vm = vm;
	m->p = *p;
	m->sock = m->out_fd = -1;
	rc = hv_mig_alloc(vm, m);
	/* Under a cap, sends of 20 ms each keep the pace even. */
	m->flush_at = HV_MIG_OUT / 2;
	if (p->bandwidth && p->bandwidth / 50 < m->flush_at)
		m->flush_at = p->bandwidth / 50 > 65536 ? p->bandwidth / 50 : 65536;
	m->out_fd = out_fd;
	vm->mig = m;
	if (rc == 0)
		rc = -pthread_create(&m->thread, NULL, hv_mig_thread, m);
	if (rc < 0) {
		m->out_fd = -1; /* still the caller's */
		vm->mig = NULL;
		hv_mig_free(m);
		return rc;
	}
	return 0;
}
