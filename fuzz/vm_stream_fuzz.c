// SPDX-License-Identifier: MIT
/*
 * libFuzzer harness for the VM migration stream parser (hv/vm_stream.c):
 * the bytes a `gpup run --incoming` takes from the network.  The first
 * input byte picks a mode:
 *
 *   bit 0 clear (raw): byte 1 seeds how the rest is split into feeds;
 *     the rest is the stream.
 *   bit 0 set (made): a valid stream is built from the input (a VM of
 *     2 MiB and one partition of 64 KiB: pages, zero runs and device
 *     bytes the input gives, two vCPU records, the VMM's records), then
 *     up to three bytes are XORed at offsets the input gives, the stream
 *     is optionally cut short, and (bit 1) the touched chunks resealed
 *     with valid hashes, so that the checks behind the hashes are reached.
 *
 * Checks after every input: every consumer call lies inside what the
 * HEADER declared (pages inside their space, a partition that exists,
 * vCPUs in order, one VMSTATE, records of known tags and exact sizes);
 * nothing is handed on after an error; a stream accepted whole ends in
 * END; an unmutated stream is accepted and yields exactly what was put in
 * (RAM, VRAM, device bytes); a stream with a byte changed and not
 * resealed, or cut short, is refused.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

#include "fuzz/fuzz_util.h"
#include "hv/hv_int.h"

#define PG 4096u
#define RAM (2u << 20)
#define VRAM (64u << 10)
#define MAX_STREAM (1u << 20)

struct sink {
	struct gpup_vmmig_header hdr;
	bool have_hdr, failed, vmstate;
	uint32_t cpus;
	uint8_t *ram, *vram, dev[8192];
	uint32_t devlen;
};

static struct sink S;

static uint64_t space_size(uint32_t space)
{
	fz_check(S.have_hdr, "a chunk before HEADER was handed on");
	if (space == 0)
		return S.hdr.mem_size;
	fz_check(space - 1 < S.hdr.ngpus, "space %u handed on", space);
	return S.hdr.vram_size[space - 1];
}

static int s_header(void *o, const struct gpup_vmmig_header *h)
{
	(void)o;
	fz_check(!S.have_hdr, "two HEADERs");
	S.hdr = *h;
	S.have_hdr = true;
	return 0;
}

static int s_pages(void *o, uint32_t space, uint64_t off, const uint8_t *data, uint32_t n)
{
	uint64_t size = space_size(space);

	(void)o;
	fz_check(off % PG == 0 && n && off + (uint64_t)n * PG <= size, "pages outside");
	if (space == 0 && size == RAM && data != S.ram + off)
		memcpy(S.ram + off, data, (size_t)n * PG);
	if (space == 1 && size == VRAM && data != S.vram + off)
		memcpy(S.vram + off, data, (size_t)n * PG);
	return 0;
}

/* Pages placed straight into RAM or VRAM as they come, before their
 * hash is checked: only ever inside the space. */
static uint8_t *s_place(void *o, uint32_t space, uint64_t off, uint32_t n)
{
	uint64_t size = space_size(space);

	(void)o;
	fz_check(off % PG == 0 && n && off + (uint64_t)n * PG <= size, "placed outside");
	if (space == 0 && size == RAM)
		return S.ram + off;
	if (space == 1 && size == VRAM)
		return S.vram + off;
	return NULL;
}

static int s_zero(void *o, uint32_t space, uint64_t off, uint64_t n)
{
	uint64_t size = space_size(space);

	(void)o;
	fz_check(off % PG == 0 && n && off <= size && n <= (size - off) / PG, "zero outside");
	if (space == 0 && size == RAM)
		memset(S.ram + off, 0, n * PG);
	if (space == 1 && size == VRAM)
		memset(S.vram + off, 0, n * PG);
	return 0;
}

static int s_dev(void *o, uint32_t gpu, const uint8_t *d, uint32_t len)
{
	(void)o;
	fz_check(S.have_hdr && gpu < S.hdr.ngpus && len && len <= GPUP_VMMIG_MAX_DEV, "dev");
	if (S.devlen + len <= sizeof(S.dev)) {
		memcpy(S.dev + S.devlen, d, len);
		S.devlen += len;
	}
	return 0;
}

static void check_recs(const uint8_t *recs, uint32_t len, bool cpu)
{
	struct hv_vms_rec r;
	uint32_t off = 0;
	int rc;

	while ((rc = hv_vms_rec_next(recs, len, &off, &r)) > 0)
		fz_check(cpu ? r.tag >= 1 && r.tag <= 10 : r.tag >= 32 && r.tag <= 36,
			 "record tag %u handed on", r.tag);
	fz_check(rc == 0, "records handed on that overrun");
}

static int s_cpu(void *o, uint32_t index, const uint8_t *recs, uint32_t len)
{
	(void)o;
	fz_check(S.have_hdr && index == S.cpus && index < S.hdr.ncpus && !S.vmstate, "cpu order");
	S.cpus++;
	check_recs(recs, len, true);
	return 0;
}

static int s_vmstate(void *o, const uint8_t *recs, uint32_t len)
{
	(void)o;
	fz_check(S.cpus == S.hdr.ncpus && !S.vmstate, "vmstate order");
	S.vmstate = true;
	check_recs(recs, len, false);
	return 0;
}

static const struct hv_vms_ops ops = {
	s_header, s_pages, s_zero, s_dev, s_cpu, s_vmstate, s_place,
};

/* ---- building a stream ---- */

struct out {
	uint8_t *p;
	size_t len;
	uint32_t seq;
	struct gpup_vmmig_end end;
	size_t at[64];             /* where each chunk starts */
};

static void put(struct out *o, unsigned int kind, const void *h, uint32_t hl, const void *d,
		uint32_t dl)
{
	struct gpup_vmmig_chunk c;
	uint8_t *pl = o->p + o->len + sizeof(c);

	if (o->len + sizeof(c) + hl + dl > MAX_STREAM || o->seq >= 64)
		return;
	memcpy(pl, h, hl);
	if (dl)
		memcpy(pl + hl, d, dl);
	hv_vms_seal(&c, kind, o->seq, pl, hl + dl);
	memcpy(o->p + o->len, &c, sizeof(c));
	o->at[o->seq++] = o->len;
	o->len += sizeof(c) + hl + dl;
	o->end.chunks = o->seq;
	o->end.bytes = o->len;
}

static void rec(uint8_t *buf, uint32_t *off, uint32_t tag, uint32_t len, uint8_t fill)
{
	uint8_t data[4096];

	memset(data, fill, len);
	hv_rec_put(buf, 16384, off, tag, data, len);
}

/* A whole, valid stream from the input; want_* what loading it yields. */
static void make(struct fz_in *in, struct out *o, uint8_t *want_ram, uint8_t *want_vram,
		 uint8_t *want_dev, uint32_t *want_devlen)
{
	struct gpup_vmmig_header h = { GPUP_VMMIG_MAGIC, GPUP_VMMIG_VERSION, PG, RAM, 2, 1,
				       GPUP_VMMIG_HF_IRQCHIP, 0, { VRAM } };
	static uint8_t recs[16384];
	unsigned int n = fz_u8(in) % 12;

	put(o, GPUP_VMMIG_HEADER, &h, sizeof(h), NULL, 0);
	for (unsigned int i = 0; i < n; i++) {
		uint8_t op = fz_u8(in), pages = (uint8_t)(fz_u8(in) % 4 + 1);
		uint32_t space = op & 1, npg = space ? VRAM / PG : RAM / PG;
		uint64_t first = fz_u16(in) % (npg - pages + 1);
		uint8_t *base = space ? want_vram : want_ram;
		static uint8_t data[4 * PG];

		if ((op & 6) == 0) {
			struct gpup_vmmig_zero z = { space, 0, first * PG, pages };

			memset(base + first * PG, 0, (size_t)pages * PG);
			o->end.zero_pages += pages;
			put(o, GPUP_VMMIG_ZERO, &z, sizeof(z), NULL, 0);
		} else if ((op & 6) == 2 && *want_devlen + 64 <= 8192) {
			struct gpup_vmmig_dev d = { 0, 0 };
			uint32_t len = op % 64 + 1;

			memset(want_dev + *want_devlen, op, len);
			memcpy(data, want_dev + *want_devlen, len);
			*want_devlen += len;
			o->end.dev_bytes += len;
			put(o, GPUP_VMMIG_DEV, &d, sizeof(d), data, len);
		} else {
			struct gpup_vmmig_pages pg = { space, pages, first * PG };

			for (size_t k = 0; k < (size_t)pages * PG; k++)
				data[k] = (uint8_t)(op + k * 7 + i);
			memcpy(base + first * PG, data, (size_t)pages * PG);
			o->end.pages += pages;
			put(o, GPUP_VMMIG_PAGES, &pg, sizeof(pg), data, pages * PG);
		}
	}
	for (uint32_t c = 0; c < 2; c++) {
		struct gpup_vmmig_cpu ch = { c, 0 };
		uint32_t off = 0;

		rec(recs, &off, GPUP_VMMIG_T_REGS, sizeof(struct kvm_regs), 1);
		rec(recs, &off, GPUP_VMMIG_T_SREGS, sizeof(struct kvm_sregs), 2);
		rec(recs, &off, GPUP_VMMIG_T_MSRS, 3 * sizeof(struct kvm_msr_entry), 3);
		put(o, GPUP_VMMIG_CPU, &ch, sizeof(ch), recs, off);
	}
	uint32_t off = 0;

	rec(recs, &off, GPUP_VMMIG_T_SERIAL, sizeof(struct gpup_vmmig_serial), 4);
	rec(recs, &off, GPUP_VMMIG_T_UPTIME, 8, 5);
	put(o, GPUP_VMMIG_VMSTATE, "", 0, recs, off);
	struct gpup_vmmig_end e = o->end;

	put(o, GPUP_VMMIG_END, &e, sizeof(e), NULL, 0);
}

/* Give every chunk valid hashes again (heads are walked as they stand). */
static void reseal(struct out *o)
{
	for (uint32_t i = 0; i < o->seq; i++) {
		struct gpup_vmmig_chunk c;

		memcpy(&c, o->p + o->at[i], sizeof(c));
		if (o->at[i] + sizeof(c) + (uint64_t)c.len > o->len)
			continue;
		c.data_hash = XXH3_64bits(o->p + o->at[i] + sizeof(c), c.len);
		c.head_hash = XXH3_64bits(&c, 24);
		memcpy(o->p + o->at[i], &c, sizeof(c));
	}
}

static int feed(const uint8_t *p, size_t n, uint8_t seed, struct hv_vms_reader *r)
{
	uint32_t s = seed * 2654435761u + 1;
	int rc = 0;

	hv_vms_reader_init(r, &ops, NULL);
	while (n && rc == 0) {
		size_t k = (s = s * 1103515245u + 12345u) >> 16;

		k = seed ? k % 9000 + 1 : n;
		k = k < n ? k : n;
		rc = hv_vms_feed(r, p, k);
		p += k;
		n -= k;
	}
	if (rc == 0)
		rc = hv_vms_finish(r);
	fz_check(rc <= 0, "positive result");
	fz_check(rc == 0 || r->err[0], "refused without a line");
	fz_check(rc != 0 || r->phase == HV_VMS_DONE, "accepted without END");
	return rc;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static uint8_t *buf, *orig, want_ram[RAM], want_vram[VRAM], want_dev[8192];
	struct fz_in in = { data, size };
	struct hv_vms_reader r;
	uint8_t mode = fz_u8(&in), seed = fz_u8(&in);
	uint32_t devlen = 0;
	int rc;

	if (!buf) {
		buf = malloc(MAX_STREAM);
		orig = malloc(MAX_STREAM);
		S.ram = malloc(RAM);
		S.vram = malloc(VRAM);
	}
	memset(&S, 0, offsetof(struct sink, ram));
	S.devlen = 0;
	memset(S.ram, 0, RAM);
	memset(S.vram, 0, VRAM);
	if (!(mode & 1)) {
		feed(in.p, in.n, seed, &r);
		hv_vms_reader_free(&r);
		return 0;
	}
	struct out o = { .p = buf };
	size_t cut;
	bool flipped = false;

	memset(want_ram, 0, RAM);
	memset(want_vram, 0, VRAM);
	make(&in, &o, want_ram, want_vram, want_dev, &devlen);
	memcpy(orig, o.p, o.len);
	for (int i = 0; i < 3 && (mode & (4 << i)); i++) {
		size_t at = fz_u32(&in) % o.len;

		o.p[at] ^= fz_u8(&in) | 1;
	}
	flipped = memcmp(orig, o.p, o.len) != 0;
	if (flipped && (mode & 2))
		reseal(&o);
	cut = (mode & 0x20) ? fz_u32(&in) % o.len : o.len;
	rc = feed(o.p, cut, seed, &r);
	if (!flipped && cut == o.len) {
		fz_check(rc == 0, "a valid stream refused: %s", r.err);
		fz_check(!memcmp(S.ram, want_ram, RAM) && !memcmp(S.vram, want_vram, VRAM),
			 "loaded memory differs");
		fz_check(S.devlen == devlen && !memcmp(S.dev, want_dev, devlen), "device bytes");
	} else if (!(flipped && (mode & 2))) {
		fz_check(rc < 0, "a changed or cut stream accepted");
	}
	hv_vms_reader_free(&r);
	return 0;
}
