// SPDX-License-Identifier: MIT
/*
 * Live migration of the VM, the source's side: one thread, started by the
 * control socket's "migrate", sends the stream of uapi/gpup_vmmig.h to a
 * `gpup run --incoming` over TCP (or, for "checkpoint", into a file).
 * The partitions' side of it is vm_mig_dev.c; their shared state is
 * struct hv_mig in hv_int.h.
 *
 * DOC: the rounds
 *
 * KVM logs the RAM and BAR2 slots and each partition logs its DMA into
 * guest RAM (DMA_LOGGING) before anything is read, so no write is missed
 * between the first read and the last.  Round 1 sends the RAM that holds
 * data (SEEK_DATA: a fresh destination reads zero elsewhere) and starts
 * each partition's PRE_COPY; every later round sends what the logs say
 * was written meanwhile and the partitions' next PRE_COPY round.  A round
 * ends when the destination has ACKed all of it, so its rate is the whole
 * pipeline's and nothing of it is left for the stop.  When what is left
 * (the pages dirty now, and what the partitions sent last round) fits the
 * downtime budget at that rate and has stopped shrinking (vm_converge.c),
 * the vCPUs park, the partitions go to STOP_COPY, the last pages, the
 * vCPUs and the VMM's devices follow, and END.  The destination answers
 * READY once it has checked and loaded all of it; we send GO and stop for
 * good.
 *
 * Anything else (a peer that refuses, goes silent or goes away, a
 * partition that fails, no convergence in max_rounds) aborts: the
 * partitions go back to RUNNING, the vCPUs run on, logging stops, and the
 * guest never knows.
 *
 * DOC: checkpoints
 *
 * A checkpoint (`gpup checkpoint VM --to FILE`) is the same migration
 * whose peer is a file (vm_ckpt.c has its head and tail): the rounds go
 * to migrate's file writer instead of a socket, and after max_rounds the
 * VM stops anyway, since a file never refuses.  Once the last chunk and
 * the tail are in the writer's ring, the VM runs again; only then is the
 * file fsynced and renamed.  Each RAM page's XXH3-64 is kept as it goes
 * into the file, so that the next checkpoint may be incremental: its
 * round 1 sends only the pages whose hash changed.
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

#include <xxhash.h>

#include "hv/hv_int.h"
#include "migrate/mig.h"
#include "uapi/vfio_mig.h"

#define PG GPUP_VMMIG_PAGE_SIZE
#define HV_MIG_OUT (4u << 20)        /* staging buffer */
#define HV_MIG_CPU_MAX (64u << 10)
#define HV_MIG_IO_MS 5000u           /* a peer silent this long is gone */
#define HV_MIG_READY_MS 30000u       /* the destination's final checks */
/* A round that found almost nothing to send waits a little before the
 * next, rather than spin on the dirty logs. */
#define HV_MIG_QUIET_BYTES (64u << 10)
#define HV_MIG_QUIET_NS 5000000L
/* The part of a stop that does not depend on the bytes: parking the
 * vCPUs, the partitions' STOP_COPY, the destination's READY. */
#define HV_MIG_STOP_FIXED_NS 2000000ull
/* Rounds after the rest first fits the budget, while it shrinks
 * (vm_converge.c). */
#define HV_MIG_MORE_ROUNDS 8u

int hv_mig_fail(struct hv_mig *m, int rc, const char *fmt, ...)
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

/* The destination's next answer, within ms: 0 for an ACK (m->acked moves
 * on), 1 for READY; anything else fails. */
static int hv_mig_reply(struct hv_mig *m, unsigned int ms)
{
	struct gpup_vmmig_reply r;
	int rc = hv_tcp_recv(m->sock, &r, sizeof(r), ms);

	if (rc < 0 || r.magic != GPUP_VMMIG_REPLY_MAGIC)
		return hv_mig_fail(m, rc < 0 ? rc : -EPROTO, "the destination went away: %s",
				   rc < 0 ? strerror(-rc) : "not a reply");
	r.msg[sizeof(r.msg) - 1] = 0;     /* the peer's text, printed below */
	if (r.code == GPUP_VMMIG_ACK && m->acks && r.bytes >= m->acked &&
	    r.bytes <= m->end.bytes) {
		m->acked = r.bytes;
		return 0;
	}
	if (r.code == GPUP_VMMIG_READY)
		return 1;
	r.msg[sizeof(r.msg) - 1] = 0;
	if (r.code == GPUP_VMMIG_REFUSED)
		return hv_mig_fail(m, -ECONNREFUSED, "the destination refused the stream: %s",
				   r.msg);
	return hv_mig_fail(m, -EPROTO, "the destination answered out of turn (code %u)", r.code);
}

/* Whatever the destination said meanwhile: ACKs, or a REFUSED, which may
 * come at any time. */
static int hv_mig_check_peer(struct hv_mig *m)
{
	struct pollfd p = { .fd = m->sock, .events = POLLIN };
	int rc = 0;

	while (rc == 0 && poll(&p, 1, 0) == 1)
		rc = hv_mig_reply(m, HV_MIG_IO_MS);
	return rc == 1 ? hv_mig_fail(m, -EPROTO, "the destination was READY before END") : rc;
}

/* Until the destination has loaded all that was sent: a round's time then
 * counts the destination's work too, and the stop never waits for it to
 * work off earlier rounds, which the sockets' buffers hide from us. */
static int hv_mig_catch_up(struct hv_mig *m)
{
	struct pollfd p = { .fd = m->sock, .events = POLLIN };
	int rc = 0;

	while (rc == 0 && m->acks && m->acked < m->end.bytes) {
		if (poll(&p, 1, HV_MIG_IO_MS) == 0)
			return hv_mig_fail(m, -ETIMEDOUT, "the destination went silent");
		rc = hv_mig_reply(m, HV_MIG_IO_MS);
	}
	return rc == 1 ? hv_mig_fail(m, -EPROTO, "the destination was READY before END") : rc;
}

/* Send what is staged, then wait as long as the bandwidth cap asks. */
static int hv_mig_flush(struct hv_mig *m)
{
	int rc = m->file ? 0 : hv_mig_check_peer(m);

	if (rc == 0 && m->olen && m->file)
		rc = mig_wfile_write(m->file, m->out, m->olen, m->err, sizeof(m->err));
	else if (rc == 0 && m->olen)
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

/* Where the data of the next chunk (hlen + dlen bytes of payload) goes in
 * the staging buffer, sent first if it has no room: a producer that reads
 * into it (a partition's stream) saves hv_mig_chunk the copy.  NULL when
 * the flush failed. */
uint8_t *hv_mig_chunk_room(struct hv_mig *m, uint32_t hlen, uint32_t dlen)
{
	if (m->olen + sizeof(struct gpup_vmmig_chunk) + hlen + dlen > HV_MIG_OUT &&
	    hv_mig_flush(m) < 0)
		return NULL;
	return m->out + m->olen + sizeof(struct gpup_vmmig_chunk) + hlen;
}

/* One chunk: head, then hdr (hlen bytes) and data (dlen) as its payload;
 * data may already lie where hv_mig_chunk_room said. */
int hv_mig_chunk(struct hv_mig *m, unsigned int kind, const void *hdr, uint32_t hlen,
		 const void *data, uint32_t dlen)
{
	struct gpup_vmmig_chunk h;
	uint8_t *p;
	int rc;

	if (m->olen + sizeof(h) + hlen + dlen > HV_MIG_OUT && (rc = hv_mig_flush(m)) < 0)
		return rc;
	p = m->out + m->olen + sizeof(h);
	memcpy(p, hdr, hlen);
	if (dlen && data != p + hlen)
		memcpy(p + hlen, data, dlen);
	hv_vms_seal(&h, kind, m->seq++, p, hlen + dlen);
	if (m->file)
		m->ident = XXH3_64bits_withSeed(&h, sizeof(h), m->ident);
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

	for (uint64_t p = first; m->hash && space == GPUP_VMMIG_SPACE_RAM && p < first + n; p++)
		m->hash[p] = m->zero_hash;
	m->end.zero_pages += n;
	return hv_mig_chunk(m, GPUP_VMMIG_ZERO, &z, sizeof(z), NULL, 0);
}

/* Pages [first, first + n) of space, at most GPUP_VMMIG_MAX_PAGES. */
static int hv_mig_data_run(struct hv_mig *m, uint32_t space, const uint8_t *base,
			   uint64_t first, uint32_t n)
{
	struct gpup_vmmig_pages h = { .space = space, .pages = n, .offset = first * PG };

	/* Hashed before the copy: a page the guest changes in between is
	 * dirty again and goes again, hashed again, by the stop at the latest. */
	for (uint64_t p = first; m->hash && space == GPUP_VMMIG_SPACE_RAM && p < first + n; p++)
		m->hash[p] = hv_ckpt_page_hash(base + p * PG);
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

/* Round 1's RAM of an incremental checkpoint: the pages whose contents
 * are not what the base holds. */
static int hv_mig_mark_changed(struct hv_mig *m)
{
	struct hv_vm *vm = m->vm;
	uint64_t npages = vm->mem_size / PG, *now = malloc(npages * 8);

	if (!now)
		return hv_mig_fail(m, -ENOMEM, "out of memory");
	hv_ckpt_hash_ram(vm, now);
	for (uint64_t p = 0; p < npages; p++)
		if (now[p] != m->hash[p])
			m->ram_bm[p / 64] |= 1ull << (p % 64);
	free(now);
	return 0;
}

/* What the rest would take to send at the rate measured. */
static uint64_t hv_mig_send_ns(struct hv_mig *m)
{
	return m->rate ? m->left * 1000000000ull / m->rate : UINT64_MAX;
}

/* What the stop would cost: the rest, and the fixed part, parking the
 * vCPUs and the destination's answer. */
static uint64_t hv_mig_expect_ns(struct hv_mig *m)
{
	return m->rate ? hv_mig_send_ns(m) + HV_MIG_STOP_FIXED_NS : UINT64_MAX;
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
	if (rc == 0)
		rc = hv_mig_catch_up(m);
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

static int hv_mig_header(struct hv_mig *m)
{
	struct hv_vm *vm = m->vm;
	struct gpup_vmmig_header h = {
		.magic = GPUP_VMMIG_MAGIC, .version = GPUP_VMMIG_VERSION, .page_size = PG,
		.mem_size = vm->mem_size, .ncpus = vm->ncpus, .ngpus = vm->ngpus,
		.flags = (vm->irqchip ? GPUP_VMMIG_HF_IRQCHIP : 0) |
			 (m->acks ? GPUP_VMMIG_HF_ACKS : 0),
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
	if (m->p.base[0])
		rc = hv_mig_mark_changed(m);
	else
		hv_mig_mark_data(m);
	if (rc < 0)
		return rc;
	m->bw_t0 = hv_now_ns();
	for (;;) {
		uint64_t before = hv_mig_bytes(m);
		enum hv_conv_verdict v;

		if ((rc = hv_mig_round(m)) < 0 || (rc = hv_mig_estimate(m)) < 0)
			return rc;
		hv_mig_progress(m, "round");
		v = hv_conv_next(&m->conv, m->rounds, hv_mig_send_ns(m));
		/* A file never refuses: after max_rounds the VM stops anyway. */
		if (v == HV_CONV_STOP || (m->file && v == HV_CONV_GIVE_UP))
			return 0;
		if (v == HV_CONV_GIVE_UP)
			return hv_mig_fail(m, -ETIME, "no convergence in %u rounds: %llu bytes "
					   "left at %llu bytes/s would stop the VM %.1f ms, over "
					   "the %llu ms budget", m->rounds,
					   (unsigned long long)m->left,
					   (unsigned long long)m->rate,
					   (double)hv_mig_expect_ns(m) / 1e6,
					   (unsigned long long)(m->p.downtime_ns / 1000000));
		if (hv_mig_bytes(m) - before < HV_MIG_QUIET_BYTES)
			nanosleep(&(struct timespec){ 0, HV_MIG_QUIET_NS }, NULL);
	}
}

/* The vCPUs parked: the rest, the vCPUs, the devices, END. */
static int hv_mig_stop_copy(struct hv_mig *m)
{
	struct hv_vm *vm = m->vm;
	uint64_t b = hv_mig_bytes(m), t = hv_now_ns();
	int rc = 0;

	for (unsigned int i = 0; rc == 0 && i < vm->ngpus; i++)
		rc = hv_mig_set_state(m, i, VFIO_DEVICE_STATE_STOP_COPY);
	for (unsigned int i = 0; rc == 0 && i < vm->ngpus; i++)
		rc = hv_mig_dev_drain(m, i);
	m->dev_stop_ns = hv_now_ns() - t;
	if (rc == 0)
		rc = hv_mig_harvest(m);
	if (rc == 0)
		rc = hv_mig_send_dirty(m);
	m->dirty_ns = hv_now_ns() - t - m->dev_stop_ns;
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
	struct gpup_vmmig_reply r = { .magic = GPUP_VMMIG_REPLY_MAGIC, .code = GPUP_VMMIG_GO };
	int rc;

	while ((rc = hv_mig_reply(m, HV_MIG_READY_MS)) == 0)
		;
	if (rc < 0)
		return rc;
	rc = hv_tcp_send(m->sock, &r, sizeof(r), HV_MIG_IO_MS);
	return rc < 0 ? hv_mig_fail(m, rc, "lost the destination before GO: %s",
				    strerror(-rc)) : 0;
}

static void hv_mig_report(struct hv_mig *m, int rc)
{
	struct json_object *o = json_object_new_object();
	const char *txt;

	json_object_object_add(o, "ok", json_object_new_boolean(rc == 0));
	if (rc < 0)
		json_object_object_add(o, "error", json_object_new_string(m->err));
	json_object_object_add(o, "event", json_object_new_string(rc ? "failed" : "done"));
	json_object_object_add(o, "to", json_object_new_string(m->p.path[0] ? m->p.path :
								  m->p.to));
	if (m->p.path[0] && rc == 0) {
		char id[17];

		snprintf(id, sizeof(id), "%016llx", (unsigned long long)m->vm->ckpt_ident);
		json_object_object_add(o, "ident", json_object_new_string(id));
		json_object_object_add(o, "incremental", json_object_new_boolean(
			m->p.base[0] != 0));
	}
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
	json_object_object_add(o, "dev_stop_ms", json_object_new_double(
		(double)m->dev_stop_ns / 1e6));
	json_object_object_add(o, "dirty_ms", json_object_new_double((double)m->dirty_ns / 1e6));
	/* What it cost here in CPU: the migration's thread, the guest's vCPUs. */
	json_object_object_add(o, "cpu_ms", json_object_new_double((double)m->cpu_ns / 1e6));
	json_object_object_add(o, "vcpu_cpu_ms", json_object_new_double(
		(double)m->vcpu_cpu_ns / 1e6));
	txt = json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN);
	if (m->out_fd >= 0 && send(m->out_fd, txt, strlen(txt), MSG_NOSIGNAL) >= 0)
		send(m->out_fd, "\n", 1, MSG_NOSIGNAL);
	json_object_put(o);
}

/* The checkpoint's file, and the RAM hashes it starts from: the base's
 * for an incremental one, all zero pages (a fresh VM's holes) otherwise. */
static int hv_mig_ckpt_open(struct hv_mig *m)
{
	struct hv_vm *vm = m->vm;
	uint64_t npages = vm->mem_size / PG;
	int rc = hv_ckpt_begin(vm, m->p.path, m->p.base, &m->file, &m->ident, m->err,
			       sizeof(m->err));

	if (rc < 0)
		return rc;
	m->zero_hash = hv_ckpt_zero_hash();
	m->hash = malloc(npages * 8);
	if (!m->hash)
		return hv_mig_fail(m, -ENOMEM, "out of memory");
	for (uint64_t p = 0; p < npages; p++)
		m->hash[p] = m->p.base[0] ? vm->ckpt_hash[p] : m->zero_hash;
	return 0;
}

/* Everything is in the writer's ring: the VM runs again, then the file is
 * made durable; only a whole file becomes the VM's last checkpoint. */
static int hv_mig_ckpt_commit(struct hv_mig *m, uint64_t stop_t)
{
	struct hv_vm *vm = m->vm;
	int rc = hv_ckpt_tail(m->file, hv_mig_bytes(m), m->ident, m->err, sizeof(m->err));

	hv_mig_abort(m);
	m->downtime_ns = m->resumed_ns - stop_t;
	if (rc < 0)
		return rc;
	rc = mig_wfile_commit(m->file, m->err, sizeof(m->err));
	m->file = NULL;
	if (rc < 0)
		return rc;
	free(vm->ckpt_hash);
	vm->ckpt_hash = m->hash;
	vm->ckpt_ident = m->ident;
	m->hash = NULL;
	return 0;
}

static int hv_mig_run(struct hv_mig *m)
{
	struct hv_vm *vm = m->vm;
	uint64_t stop_t;
	int rc;

	if (m->p.path[0]) {
		rc = hv_mig_ckpt_open(m);
	} else {
		m->sock = hv_tcp_connect(m->p.to, HV_MIG_IO_MS);
		rc = m->sock < 0 ? hv_mig_fail(m, m->sock, "cannot reach %s: %s", m->p.to,
					       strerror(-m->sock)) : 0;
	}
	if (rc == 0)
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
	if (rc == 0 && m->file)
		return hv_mig_ckpt_commit(m, stop_t);
	if (rc == 0)
		rc = hv_mig_commit(m);
	m->downtime_ns = hv_now_ns() - stop_t;
	return rc;
}

/* The CPU time of one thread of this process, or 0 where it has none
 * (one that has ended and not been joined has no clock any more). */
static uint64_t hv_thread_cpu_ns(pthread_t t)
{
	struct timespec ts;
	clockid_t c;

	if (pthread_getcpuclockid(t, &c) || clock_gettime(c, &ts))
		return 0;
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static uint64_t hv_vcpus_cpu_ns(struct hv_vm *vm)
{
	uint64_t ns = 0;

	for (unsigned int i = 0; i < vm->ncpus; i++)
		if (vm->vcpus[i].started)
			ns += hv_thread_cpu_ns(vm->vcpus[i].thread);
	return ns;
}

static void *hv_mig_thread(void *arg)
{
	struct hv_mig *m = arg;
	uint64_t vcpu0, vcpu1;
	int rc;

	pthread_setname_np(pthread_self(), "gpup-migrate");
	m->t0 = hv_now_ns();
	vcpu0 = hv_vcpus_cpu_ns(m->vm);
	rc = hv_mig_run(m);
	m->total_ns = hv_now_ns() - m->t0;
	m->cpu_ns = hv_thread_cpu_ns(pthread_self());
	/* Less than at the start where a vCPU ended meanwhile (the guest
	 * shut down): then what is known is none of it. */
	vcpu1 = hv_vcpus_cpu_ns(m->vm);
	m->vcpu_cpu_ns = vcpu1 > vcpu0 ? vcpu1 - vcpu0 : 0;
	if (m->sock >= 0) {
		close(m->sock); /* the destination learns at once */
		m->sock = -1;
	}
	if (rc < 0 && m->file) {
		mig_wfile_abort(m->file);
		m->file = NULL;
	}
	if (rc < 0) {
		hv_mig_abort(m);
		hv_log("%s %s failed, the VM runs on here: %s", m->p.path[0] ? "checkpoint to" :
		       "migration to", m->p.path[0] ? m->p.path : m->p.to, m->err);
	} else if (m->p.path[0]) {
		/* Before the answer: whoever asked may stop the VM at once. */
		hv_log("checkpoint written to %s (%u rounds, %llu bytes, paused %.1f ms)",
		       m->p.path, m->rounds, (unsigned long long)hv_mig_bytes(m),
		       (double)m->downtime_ns / 1e6);
	}
	hv_mig_report(m, rc);
	if (m->out_fd >= 0) {
		close(m->out_fd);
		m->out_fd = -1;
	}
	if (rc == 0 && !m->p.path[0]) {
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
	if (m->file)
		mig_wfile_abort(m->file);
	free(m->hash);
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
	m->acks = !p->path[0];
	/* A checkpoint stops as soon as the rest fits: more rounds would
	 * make its file larger, for a pause that is short anyway. */
	m->conv = (struct hv_conv){ .budget_ns = p->downtime_ns, .fixed_ns = HV_MIG_STOP_FIXED_NS,
				    .max_rounds = p->max_rounds,
				    .more = p->path[0] ? 0 : HV_MIG_MORE_ROUNDS };
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
