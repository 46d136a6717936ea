// SPDX-License-Identifier: MIT
/*
 * The VM migration stream of uapi/gpup_vmmig.h: sealing chunks at the
 * source, and at the destination a push parser that takes the bytes in
 * any split, as they come off the network, and hands each checked chunk
 * to its consumer.  The stream is hostile input: the parser checks the
 * head (sync, head hash, sequence, kind, flags, a bounded length, the
 * order) before it trusts the length, the payload hash before it looks at
 * the payload, then every field against the HEADER's shape, and END's
 * totals against what came.  The first error is kept, with a line.  One
 * exception, for speed: a consumer may take a PAGES chunk's pages at
 * their place as they come (ops->place), once the chunk's own head is
 * checked against the shape; the hash is then checked when the last page
 * is in, before pages() hears of it, and such a consumer uses nothing of
 * a stream that was refused.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

#include "hv/hv_int.h"

void hv_vms_seal(struct gpup_vmmig_chunk *h, unsigned int kind, uint32_t seq,
		 const void *payload, uint32_t len)
{
	h->sync = GPUP_VMMIG_SYNC;
	h->kind = (uint16_t)kind;
	h->flags = 0;
	h->len = len;
	h->seq = seq;
	h->data_hash = mig_hash(payload, len);
	h->head_hash = XXH3_64bits(h, 24);
}

static const char *const kind_name[] = {
	"?", "HEADER", "PAGES", "ZERO", "DEV", "CPU", "VMSTATE", "END",
};

static int hv_vms_fail(struct hv_vms_reader *r, int err, const char *fmt, ...)
{
	char what[200];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(what, sizeof(what), fmt, ap);
	va_end(ap);
	snprintf(r->err, sizeof(r->err), "stream refused: chunk %u (%s) at byte %llu: %s",
		 r->seq, r->kind < 8 ? kind_name[r->kind] : "?",
		 (unsigned long long)(r->origin + r->chunk_at), what);
	r->error = err;
	return err;
}

void hv_vms_reader_init(struct hv_vms_reader *r, const struct hv_vms_ops *ops, void *opaque)
{
	memset(r, 0, sizeof(*r));
	r->ops = ops;
	r->opaque = opaque;
}

void hv_vms_reader_free(struct hv_vms_reader *r)
{
	free(r->payload);
	r->payload = NULL;
	mig_hasher_free(r->hash);
	r->hash = NULL;
}

/* Where a chunk of this kind may come, given what came before. */
static int hv_vms_check_order(struct hv_vms_reader *r, unsigned int kind)
{
	bool ok;

	switch (kind) {
	case GPUP_VMMIG_HEADER:
		ok = r->phase == HV_VMS_WANT_HEADER;
		break;
	case GPUP_VMMIG_PAGES:
	case GPUP_VMMIG_ZERO:
	case GPUP_VMMIG_DEV:
		ok = r->phase == HV_VMS_BODY;
		break;
	case GPUP_VMMIG_CPU:
		ok = r->phase == HV_VMS_BODY || r->phase == HV_VMS_CPUS;
		break;
	case GPUP_VMMIG_VMSTATE:
		ok = r->phase == HV_VMS_CPUS && r->cpus_seen == r->hdr.ncpus;
		break;
	case GPUP_VMMIG_END:
		ok = r->phase == HV_VMS_VMSTATE;
		break;
	default:
		return hv_vms_fail(r, -EBADMSG, "unknown chunk kind %u", kind);
	}
	if (!ok)
		return hv_vms_fail(r, -EBADMSG, "out of order");
	return 0;
}

static int hv_vms_head(struct hv_vms_reader *r)
{
	struct gpup_vmmig_chunk *h = &r->head;

	r->kind = h->kind < 8 ? h->kind : 0;
	if (h->sync != GPUP_VMMIG_SYNC)
		return hv_vms_fail(r, -EBADMSG, r->pos == 0 ?
				   "not a gpup VM migration stream (bad sync word)" :
				   "bad sync word");
	if (h->head_hash != XXH3_64bits(h, 24))
		return hv_vms_fail(r, -EBADMSG, "chunk head checksum mismatch");
	if (h->seq != r->seq)
		return hv_vms_fail(r, -EBADMSG, "chunk out of sequence (seq %u)", h->seq);
	if (h->flags)
		return hv_vms_fail(r, -EBADMSG, "unknown flags 0x%x", h->flags);
	if (h->len > GPUP_VMMIG_MAX_PAYLOAD)
		return hv_vms_fail(r, -EBADMSG, "length %u over the limit", h->len);
	return hv_vms_check_order(r, h->kind);
}

static int hv_vms_header(struct hv_vms_reader *r, const uint8_t *p, uint32_t len)
{
	struct gpup_vmmig_header *h = &r->hdr;

	if (len != sizeof(*h))
		return hv_vms_fail(r, -EBADMSG, "HEADER of %u bytes", len);
	memcpy(h, p, sizeof(*h));
	if (h->magic != GPUP_VMMIG_MAGIC)
		return hv_vms_fail(r, -EBADMSG, "not a gpup VM migration stream (bad magic)");
	if (h->version != GPUP_VMMIG_VERSION)
		return hv_vms_fail(r, -EPROTONOSUPPORT, "wrong version %u (this build reads %u)",
				   h->version, GPUP_VMMIG_VERSION);
	if (h->page_size != GPUP_VMMIG_PAGE_SIZE || h->reserved ||
	    (h->flags & ~(GPUP_VMMIG_HF_IRQCHIP | GPUP_VMMIG_HF_ACKS)))
		return hv_vms_fail(r, -EBADMSG, "bad page size, flags or reserved field");
	if (h->mem_size < HV_MIN_MEM || h->mem_size > HV_MAX_MEM || h->mem_size % 4096 ||
	    !h->ncpus || h->ncpus > GPUP_VMMIG_MAX_CPUS || h->ngpus > GPUP_VMMIG_MAX_GPUS)
		return hv_vms_fail(r, -EBADMSG, "a VM of %llu bytes, %u vCPUs, %u GPUs is "
				   "out of bounds", (unsigned long long)h->mem_size, h->ncpus,
				   h->ngpus);
	for (unsigned int i = 0; i < GPUP_VMMIG_MAX_GPUS; i++)
		if ((i < h->ngpus) != (h->vram_size[i] != 0) || h->vram_size[i] % 4096 ||
		    h->vram_size[i] > (1ull << 40))
			return hv_vms_fail(r, -EBADMSG, "bad VRAM size for partition %u", i);
	r->phase = HV_VMS_BODY;
	return r->ops->header ? r->ops->header(r->opaque, h) : 0;
}

/* The bytes [off, off + pages pages) of space: inside it? */
static int hv_vms_range(struct hv_vms_reader *r, uint32_t space, uint64_t off,
			uint64_t pages)
{
	uint64_t size;

	if (space == GPUP_VMMIG_SPACE_RAM)
		size = r->hdr.mem_size;
	else if (space - GPUP_VMMIG_SPACE_VRAM0 < r->hdr.ngpus)
		size = r->hdr.vram_size[space - GPUP_VMMIG_SPACE_VRAM0];
	else
		return hv_vms_fail(r, -EBADMSG, "no space %u", space);
	if (off % GPUP_VMMIG_PAGE_SIZE || !pages || off > size ||
	    pages > (size - off) / GPUP_VMMIG_PAGE_SIZE)
		return hv_vms_fail(r, -EBADMSG, "pages 0x%llx+%llu outside space %u",
				   (unsigned long long)off, (unsigned long long)pages, space);
	return 0;
}

/* A PAGES payload of len bytes starts with p: its head, checked. */
static int hv_vms_pages_head(struct hv_vms_reader *r, const uint8_t *p, uint32_t len,
			     struct gpup_vmmig_pages *h)
{
	if (len < sizeof(*h))
		return hv_vms_fail(r, -EBADMSG, "PAGES of %u bytes", len);
	memcpy(h, p, sizeof(*h));
	if (!h->pages || h->pages > GPUP_VMMIG_MAX_PAGES ||
	    len != sizeof(*h) + (uint64_t)h->pages * GPUP_VMMIG_PAGE_SIZE)
		return hv_vms_fail(r, -EBADMSG, "PAGES of %u pages in %u bytes", h->pages, len);
	return hv_vms_range(r, h->space, h->offset, h->pages);
}

/* data: the pages, in the reader's buffer or at their place. */
static int hv_vms_pages(struct hv_vms_reader *r, const uint8_t *p, uint32_t len,
			const uint8_t *data)
{
	struct gpup_vmmig_pages h;
	int rc = hv_vms_pages_head(r, p, len, &h);

	if (rc < 0)
		return rc;
	r->end.pages += h.pages;
	return r->ops->pages ? r->ops->pages(r->opaque, h.space, h.offset, data, h.pages) : 0;
}

static int hv_vms_zero(struct hv_vms_reader *r, const uint8_t *p, uint32_t len)
{
	struct gpup_vmmig_zero h;
	int rc;

	if (len != sizeof(h))
		return hv_vms_fail(r, -EBADMSG, "ZERO of %u bytes", len);
	memcpy(&h, p, sizeof(h));
	if (h.reserved)
		return hv_vms_fail(r, -EBADMSG, "reserved field set");
	rc = hv_vms_range(r, h.space, h.offset, h.pages);
	if (rc < 0)
		return rc;
	r->end.zero_pages += h.pages;
	return r->ops->zero ? r->ops->zero(r->opaque, h.space, h.offset, h.pages) : 0;
}

static int hv_vms_dev(struct hv_vms_reader *r, const uint8_t *p, uint32_t len)
{
	struct gpup_vmmig_dev h;

	if (len <= sizeof(h) || len - sizeof(h) > GPUP_VMMIG_MAX_DEV)
		return hv_vms_fail(r, -EBADMSG, "DEV of %u bytes", len);
	memcpy(&h, p, sizeof(h));
	if (h.gpu >= r->hdr.ngpus || h.reserved)
		return hv_vms_fail(r, -EBADMSG, "no partition %u", h.gpu);
	r->end.dev_bytes += len - sizeof(h);
	return r->ops->dev ? r->ops->dev(r->opaque, h.gpu, p + sizeof(h),
					 len - (uint32_t)sizeof(h)) : 0;
}

/* The size a record of this tag must have (MSRS: a multiple), 0 if the
 * tag is not one of this chunk's kind. */
static uint32_t hv_vms_rec_size(unsigned int kind, uint32_t tag)
{
	static const uint32_t cpu[] = {
		[GPUP_VMMIG_T_REGS] = sizeof(struct kvm_regs),
		[GPUP_VMMIG_T_SREGS] = sizeof(struct kvm_sregs),
		[GPUP_VMMIG_T_FPU] = sizeof(struct kvm_fpu),
		[GPUP_VMMIG_T_XSAVE] = sizeof(struct kvm_xsave),
		[GPUP_VMMIG_T_XCRS] = sizeof(struct kvm_xcrs),
		[GPUP_VMMIG_T_MSRS] = sizeof(struct kvm_msr_entry),
		[GPUP_VMMIG_T_LAPIC] = sizeof(struct kvm_lapic_state),
		[GPUP_VMMIG_T_EVENTS] = sizeof(struct kvm_vcpu_events),
		[GPUP_VMMIG_T_MPSTATE] = sizeof(struct kvm_mp_state),
		[GPUP_VMMIG_T_DEBUGREGS] = sizeof(struct kvm_debugregs),
	};
	static const uint32_t vmm[] = {
		[GPUP_VMMIG_T_PCI - 32] = sizeof(struct gpup_vmmig_pci),
		[GPUP_VMMIG_T_MSIX - 32] = sizeof(struct gpup_vmmig_msix),
		[GPUP_VMMIG_T_SERIAL - 32] = sizeof(struct gpup_vmmig_serial),
		[GPUP_VMMIG_T_IRQCHIP - 32] = sizeof(struct kvm_irqchip),
		[GPUP_VMMIG_T_UPTIME - 32] = sizeof(uint64_t),
	};

	if (kind == GPUP_VMMIG_CPU)
		return tag < sizeof(cpu) / sizeof(cpu[0]) ? cpu[tag] : 0;
	return tag >= 32 && tag - 32 < sizeof(vmm) / sizeof(vmm[0]) ? vmm[tag - 32] : 0;
}

int hv_vms_rec_next(const uint8_t *buf, uint32_t len, uint32_t *off, struct hv_vms_rec *rec)
{
	struct gpup_vmmig_rec h;
	uint64_t next;

	if (*off == len)
		return 0;
	if (len - *off < sizeof(h))
		return -EBADMSG;
	memcpy(&h, buf + *off, sizeof(h));
	next = (uint64_t)*off + sizeof(h) + ((h.len + 7ull) & ~7ull);
	if (next > len)
		return -EBADMSG;
	rec->tag = h.tag;
	rec->len = h.len;
	rec->data = buf + *off + sizeof(h);
	for (uint64_t i = *off + sizeof(h) + h.len; i < next; i++)
		if (buf[i])
			return -EBADMSG;
	*off = (uint32_t)next;
	return 1;
}

/* Every record well formed, of a known tag and its size; REGS and SREGS
 * in a CPU chunk. */
static int hv_vms_check_recs(struct hv_vms_reader *r, unsigned int kind, const uint8_t *p,
			     uint32_t len)
{
	struct hv_vms_rec rec;
	uint32_t off = 0, want, seen = 0;
	int rc;

	while ((rc = hv_vms_rec_next(p, len, &off, &rec)) > 0) {
		want = hv_vms_rec_size(kind, rec.tag);
		if (!want)
			return hv_vms_fail(r, -EBADMSG, "unknown record tag %u", rec.tag);
		if (rec.tag == GPUP_VMMIG_T_MSRS ? rec.len % want ||
		    rec.len / want > GPUP_VMMIG_MAX_MSRS : rec.len != want)
			return hv_vms_fail(r, -EBADMSG, "record %u of %u bytes", rec.tag, rec.len);
		if (rec.tag < 32)
			seen |= 1u << rec.tag;
	}
	if (rc < 0)
		return hv_vms_fail(r, -EBADMSG, "records overrun the chunk");
	if (kind == GPUP_VMMIG_CPU &&
	    (seen & (1u << GPUP_VMMIG_T_REGS | 1u << GPUP_VMMIG_T_SREGS)) !=
	    (1u << GPUP_VMMIG_T_REGS | 1u << GPUP_VMMIG_T_SREGS))
		return hv_vms_fail(r, -EBADMSG, "vCPU state without registers");
	return 0;
}

static int hv_vms_cpu(struct hv_vms_reader *r, const uint8_t *p, uint32_t len)
{
	struct gpup_vmmig_cpu h;
	int rc;

	if (len < sizeof(h))
		return hv_vms_fail(r, -EBADMSG, "CPU of %u bytes", len);
	memcpy(&h, p, sizeof(h));
	if (h.index != r->cpus_seen || h.index >= r->hdr.ncpus || h.reserved)
		return hv_vms_fail(r, -EBADMSG, "vCPU %u where %u was due", h.index,
				   r->cpus_seen);
	rc = hv_vms_check_recs(r, GPUP_VMMIG_CPU, p + sizeof(h), len - (uint32_t)sizeof(h));
	if (rc < 0)
		return rc;
	r->cpus_seen++;
	r->phase = HV_VMS_CPUS;
	return r->ops->cpu ? r->ops->cpu(r->opaque, h.index, p + sizeof(h),
					 len - (uint32_t)sizeof(h)) : 0;
}

static int hv_vms_vmstate(struct hv_vms_reader *r, const uint8_t *p, uint32_t len)
{
	int rc = hv_vms_check_recs(r, GPUP_VMMIG_VMSTATE, p, len);

	if (rc < 0)
		return rc;
	r->phase = HV_VMS_VMSTATE;
	r->vmstate = true;
	return r->ops->vmstate ? r->ops->vmstate(r->opaque, p, len) : 0;
}

static int hv_vms_end(struct hv_vms_reader *r, const uint8_t *p, uint32_t len)
{
	struct gpup_vmmig_end e;

	if (len != sizeof(e))
		return hv_vms_fail(r, -EBADMSG, "END of %u bytes", len);
	memcpy(&e, p, sizeof(e));
	r->end.chunks = r->seq;
	r->end.bytes = r->chunk_at;
	if (memcmp(&e, &r->end, sizeof(e)))
		return hv_vms_fail(r, -EBADMSG, "END totals disagree: %llu chunks, %llu bytes "
				   "said, %llu and %llu came", (unsigned long long)e.chunks,
				   (unsigned long long)e.bytes, (unsigned long long)r->end.chunks,
				   (unsigned long long)r->end.bytes);
	r->phase = HV_VMS_DONE;
	return 0;
}

static int hv_vms_chunk(struct hv_vms_reader *r)
{
	const uint8_t *p = r->payload, *place = r->place;
	uint32_t len = r->head.len;

	r->place = NULL;
	if ((place ? mig_hasher_digest(r->hash) : mig_hash(p, len)) != r->head.data_hash)
		return hv_vms_fail(r, -EBADMSG, "payload checksum mismatch");
	switch (r->head.kind) {
	case GPUP_VMMIG_HEADER:
		return hv_vms_header(r, p, len);
	case GPUP_VMMIG_PAGES:
		return hv_vms_pages(r, p, len, place ? place : p + sizeof(struct gpup_vmmig_pages));
	case GPUP_VMMIG_ZERO:
		return hv_vms_zero(r, p, len);
	case GPUP_VMMIG_DEV:
		return hv_vms_dev(r, p, len);
	case GPUP_VMMIG_CPU:
		return hv_vms_cpu(r, p, len);
	case GPUP_VMMIG_VMSTATE:
		return hv_vms_vmstate(r, p, len);
	default:
		return hv_vms_end(r, p, len);
	}
}

/* A PAGES chunk's head is in: where its pages go, if the consumer places
 * them, with the hash of its payload begun. */
static int hv_vms_place(struct hv_vms_reader *r)
{
	struct gpup_vmmig_pages h;
	int rc = hv_vms_pages_head(r, r->payload, r->head.len, &h);

	if (rc < 0)
		return rc;
	if (!r->hash && !(r->hash = mig_hasher_new()))
		return hv_vms_fail(r, -ENOMEM, "out of memory");
	r->place = r->ops->place(r->opaque, h.space, h.offset, h.pages);
	if (r->place) {
		mig_hasher_reset(r->hash);
		mig_hasher_update(r->hash, &h, sizeof(h));
	}
	return 0;
}

/* Payload bytes: into the reader's buffer, or a placed chunk's pages to
 * their place (from there already, when buf is that place), hashed. */
static int hv_vms_body(struct hv_vms_reader *r, const uint8_t *buf, size_t n)
{
	size_t at = r->have - sizeof(r->head);

	if (r->place) {
		uint8_t *to = r->place + (at - sizeof(struct gpup_vmmig_pages));

		if (to != buf)
			memcpy(to, buf, n);
		r->have += n;
		mig_hasher_update(r->hash, to, n);
		return 0;
	}
	memcpy(r->payload + at, buf, n);
	r->have += n;
	if (r->head.kind == GPUP_VMMIG_PAGES && r->ops->place &&
	    at + n == sizeof(struct gpup_vmmig_pages))
		return hv_vms_place(r);
	return 0;
}

uint8_t *hv_vms_direct(struct hv_vms_reader *r, size_t *n)
{
	if (r->error || !r->place)
		return NULL;
	*n = sizeof(r->head) + r->head.len - r->have;
	return r->place + (r->have - sizeof(r->head) - sizeof(struct gpup_vmmig_pages));
}

/* Take up to n bytes into the head or the payload; a chunk complete is
 * checked and consumed.  Returns bytes taken or -errno. */
static int64_t hv_vms_step(struct hv_vms_reader *r, const uint8_t *buf, size_t n)
{
	size_t take;
	int rc;

	if (r->have < sizeof(r->head)) {
		take = sizeof(r->head) - r->have;
		take = take < n ? take : n;
		memcpy((uint8_t *)&r->head + r->have, buf, take);
		r->have += take;
		if (r->have < sizeof(r->head))
			return (int64_t)take;
		rc = hv_vms_head(r);
		if (rc < 0)
			return rc;
		r->ident = XXH3_64bits_withSeed(&r->head, sizeof(r->head), r->ident);
		if (!r->payload && !(r->payload = malloc(GPUP_VMMIG_MAX_PAYLOAD)))
			return hv_vms_fail(r, -ENOMEM, "out of memory");
	} else {
		take = sizeof(r->head) + r->head.len - r->have;
		/* A PAGES chunk's own head is taken alone: its pages may then
		 * go straight to their place. */
		if (r->head.kind == GPUP_VMMIG_PAGES && r->ops->place && !r->place &&
		    r->have < sizeof(r->head) + sizeof(struct gpup_vmmig_pages) &&
		    r->head.len > sizeof(struct gpup_vmmig_pages))
			take = sizeof(r->head) + sizeof(struct gpup_vmmig_pages) - r->have;
		take = take < n ? take : n;
		rc = hv_vms_body(r, buf, take);
		if (rc < 0)
			return rc;
	}
	if (r->have < sizeof(r->head) + r->head.len)
		return (int64_t)take;
	rc = hv_vms_chunk(r);
	if (rc < 0 && !r->err[0])
		hv_vms_fail(r, rc, "not taken here: %s", strerror(-rc));
	if (rc < 0)
		return rc;
	r->chunk_at += r->have;
	r->have = 0;
	r->seq++;
	return (int64_t)take;
}

int hv_vms_feed(struct hv_vms_reader *r, const void *buf, size_t n)
{
	const uint8_t *p = buf;

	if (r->error)
		return r->error;
	while (n) {
		int64_t k;

		if (r->phase == HV_VMS_DONE)
			return hv_vms_fail(r, -EBADMSG, "data after END");
		k = hv_vms_step(r, p, n);
		if (k < 0) {
			r->error = (int)k;
			return (int)k;
		}
		p += k;
		n -= (size_t)k;
		r->pos += (uint64_t)k;
	}
	return 0;
}

int hv_vms_finish(struct hv_vms_reader *r)
{
	if (r->error)
		return r->error;
	if (r->phase == HV_VMS_DONE)
		return 0;
	if (r->have)
		hv_vms_fail(r, -ENODATA, "truncated inside the chunk");
	else
		hv_vms_fail(r, -ENODATA, "the stream ended before END");
	return r->error;
}
