// SPDX-License-Identifier: MIT
/*
 * The VM migration stream parser (hv/vm_stream.c) without KVM: a stream
 * built here chunk by chunk loads into plain buffers exactly, split into
 * feeds of any size; and each way a stream from the network can be wrong
 * is refused with its errno and its line: a changed head or payload, a
 * chunk missing, out of order or out of bounds, another version, a
 * record of a wrong size, END's totals, data after END, a stream cut at
 * every chunk boundary and inside chunks.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "hv/hv_int.h"

#define PG 4096u
#define RAM (2u << 20)
#define VRAM (64u << 10)

struct sink {
	uint8_t ram[RAM], vram[VRAM], dev[256];
	uint32_t devlen, cpus, vmstate, placed;
};
static struct sink *S;

static int s_pages(void *o, uint32_t space, uint64_t off, const uint8_t *d, uint32_t n)
{
	uint8_t *to = (space ? S->vram : S->ram) + off;

	(void)o;
	if (d != to)
		memcpy(to, d, (size_t)n * PG);
	else
		S->placed += n;
	return 0;
}

static uint8_t *s_place(void *o, uint32_t space, uint64_t off, uint32_t n)
{
	(void)o, (void)n;
	return (space ? S->vram : S->ram) + off;
}

static int s_zero(void *o, uint32_t space, uint64_t off, uint64_t n)
{
	(void)o;
	memset((space ? S->vram : S->ram) + off, 0, n * PG);
	return 0;
}

static int s_dev(void *o, uint32_t gpu, const uint8_t *d, uint32_t len)
{
	(void)o;
	cr_assert_eq(gpu, 0);
	memcpy(S->dev + S->devlen, d, len);
	S->devlen += len;
	return 0;
}

static int s_cpu(void *o, uint32_t i, const uint8_t *r, uint32_t len)
{
	(void)o, (void)r, (void)len;
	cr_assert_eq(i, S->cpus);
	S->cpus++;
	return 0;
}

static int s_vmstate(void *o, const uint8_t *r, uint32_t len)
{
	(void)o, (void)r, (void)len;
	S->vmstate++;
	return 0;
}

static const struct hv_vms_ops ops = { NULL, s_pages, s_zero, s_dev, s_cpu, s_vmstate, NULL };
static const struct hv_vms_ops placing = { NULL, s_pages, s_zero, s_dev, s_cpu, s_vmstate,
					   s_place };

/* How the bytes reach the reader: fed from the stream, fed to a consumer
 * that places pages, or (as `gpup run --incoming` receives them) written
 * straight to where hv_vms_direct says and fed from there. */
enum how { FED, PLACED, DIRECT };

struct out {
	uint8_t buf[1 << 20];
	size_t len, at[32];
	uint32_t seq;
	struct gpup_vmmig_end end;
};

static void put(struct out *o, unsigned int kind, const void *h, uint32_t hl, const void *d,
		uint32_t dl)
{
	struct gpup_vmmig_chunk c;
	uint8_t *pl = o->buf + o->len + sizeof(c);

	memcpy(pl, h, hl);
	if (dl)
		memcpy(pl + hl, d, dl);
	hv_vms_seal(&c, kind, o->seq, pl, hl + dl);
	memcpy(o->buf + o->len, &c, sizeof(c));
	o->at[o->seq++] = o->len;
	o->len += sizeof(c) + hl + dl;
	o->end.chunks = o->seq;
	o->end.bytes = o->len;
}

static void cpu_chunk(struct out *o, uint32_t index, uint32_t sregs_len)
{
	static uint8_t recs[8192], zero[4096];
	struct gpup_vmmig_cpu h = { index, 0 };
	uint32_t off = 0;

	cr_assert_eq(hv_rec_put(recs, sizeof(recs), &off, GPUP_VMMIG_T_REGS, zero,
				sizeof(struct kvm_regs)), 0);
	cr_assert_eq(hv_rec_put(recs, sizeof(recs), &off, GPUP_VMMIG_T_SREGS, zero, sregs_len), 0);
	put(o, GPUP_VMMIG_CPU, &h, sizeof(h), recs, off);
}

/* Header, 3 pages of RAM at 0x10000, a zero run over the middle one,
 * 2 VRAM pages at 0x4000, 100 device bytes, two vCPUs, VMSTATE, END. */
static struct out *build(uint32_t version, bool end)
{
	struct out *o = calloc(1, sizeof(*o));
	struct gpup_vmmig_header h = { GPUP_VMMIG_MAGIC, version, PG, RAM, 2, 1,
				       GPUP_VMMIG_HF_IRQCHIP, 0, { VRAM } };
	struct gpup_vmmig_pages ram = { 0, 3, 0x10000 }, vram = { 1, 2, 0x4000 };
	struct gpup_vmmig_zero z = { 0, 0, 0x11000, 1 };
	struct gpup_vmmig_dev d = { 0, 0 };
	static uint8_t data[3 * PG], dev[100];
	struct gpup_vmmig_serial ser = { 1, 2, 3, 4, 5, 6, { 0, 0 } };
	uint8_t recs[64];
	uint32_t off = 0;

	for (unsigned int i = 0; i < sizeof(data); i++)
		data[i] = (uint8_t)(i * 13 + 1);
	memset(dev, 0x77, sizeof(dev));
	put(o, GPUP_VMMIG_HEADER, &h, sizeof(h), NULL, 0);
	put(o, GPUP_VMMIG_PAGES, &ram, sizeof(ram), data, 3 * PG);
	put(o, GPUP_VMMIG_ZERO, &z, sizeof(z), NULL, 0);
	put(o, GPUP_VMMIG_PAGES, &vram, sizeof(vram), data, 2 * PG);
	put(o, GPUP_VMMIG_DEV, &d, sizeof(d), dev, sizeof(dev));
	o->end.pages = 5;
	o->end.zero_pages = 1;
	o->end.dev_bytes = sizeof(dev);
	cpu_chunk(o, 0, sizeof(struct kvm_sregs));
	cpu_chunk(o, 1, sizeof(struct kvm_sregs));
	cr_assert_eq(hv_rec_put(recs, sizeof(recs), &off, GPUP_VMMIG_T_SERIAL, &ser, sizeof(ser)), 0);
	put(o, GPUP_VMMIG_VMSTATE, "", 0, recs, off);
	if (end) {
		struct gpup_vmmig_end e = o->end;

		put(o, GPUP_VMMIG_END, &e, sizeof(e), NULL, 0);
	}
	return o;
}

/* Up to step bytes from p (0: all) into the reader as `how` says: how
 * many were taken, or -errno. */
static int64_t feed_some(struct hv_vms_reader *r, const uint8_t *p, size_t left, size_t step,
			 enum how how)
{
	size_t n = step && left > step ? step : left, room;
	uint8_t *to = how == DIRECT ? hv_vms_direct(r, &room) : NULL;
	int rc;

	if (to) {
		n = n < room ? n : room;
		memcpy(to, p, n);
	}
	rc = hv_vms_feed(r, to ? to : p, n);
	return rc < 0 ? rc : (int64_t)n;
}

/* Feed len bytes in pieces of step (0: all at once); the result. */
static int load_how(const uint8_t *p, size_t len, size_t step, char *err, enum how how)
{
	struct hv_vms_reader r;
	int rc = 0;

	memset(S, 0, sizeof(*S));
	hv_vms_reader_init(&r, how == FED ? &ops : &placing, NULL);
	for (size_t at = 0; at < len && rc == 0;) {
		int64_t k = feed_some(&r, p + at, len - at, step, how);

		rc = k < 0 ? (int)k : 0;
		at += k < 0 ? 0 : (size_t)k;
	}
	if (rc == 0)
		rc = hv_vms_finish(&r);
	strcpy(err, r.err);
	hv_vms_reader_free(&r);
	return rc;
}

static int load(const uint8_t *p, size_t len, size_t step, char *err)
{
	return load_how(p, len, step, err, FED);
}

static void setup(void)
{
	S = calloc(1, sizeof(*S));
}

static void teardown(void)
{
	free(S);
}

TestSuite(hv_vmstream, .init = setup, .fini = teardown);

Test(hv_vmstream, a_whole_stream_loads_exactly_in_any_split)
{
	static const size_t steps[] = { 0, 1, 7, 32, 33, 4096, 65536 };
	struct out *o = build(GPUP_VMMIG_VERSION, true);
	char err[400];

	for (unsigned int i = 0; i < 3 * sizeof(steps) / sizeof(steps[0]); i++) {
		enum how how = (enum how)(i % 3);
		size_t step = steps[i / 3];

		cr_assert_eq(load_how(o->buf, o->len, step, err, how), 0, "step %zu: %s", step,
			     err);
		cr_assert_eq(S->placed, how == FED ? 0 : 5, "step %zu, how %d: %u pages placed",
			     step, how, S->placed);
		for (unsigned int k = 0; k < PG; k++) {
			cr_assert_eq(S->ram[0x10000 + k], (uint8_t)(k * 13 + 1));
			cr_assert_eq(S->ram[0x11000 + k], 0, "the zero run came after the page");
			cr_assert_eq(S->ram[0x12000 + k], (uint8_t)((2 * PG + k) * 13 + 1));
			cr_assert_eq(S->vram[0x4000 + k], (uint8_t)(k * 13 + 1));
			cr_assert_eq(S->vram[0x5000 + k], (uint8_t)((PG + k) * 13 + 1));
		}
		cr_assert_eq(S->devlen, 100);
		cr_assert_eq(S->dev[99], 0x77);
		cr_assert_eq(S->cpus, 2);
		cr_assert_eq(S->vmstate, 1);
	}
	free(o);
}

Test(hv_vmstream, a_stream_cut_anywhere_is_refused)
{
	struct out *o = build(GPUP_VMMIG_VERSION, true);
	char err[400];

	for (size_t cut = 0; cut < o->len; cut += cut < 200 ? 1 : 509) {
		for (int how = FED; how <= DIRECT; how++) {
			cr_assert_eq(load_how(o->buf, cut, 100, err, (enum how)how), -ENODATA,
				     "cut at %zu", cut);
			cr_assert(strstr(err, "truncated inside the chunk") ||
				  strstr(err, "the stream ended before END"), "%s", err);
		}
	}
	for (uint32_t i = 1; i < o->seq; i++) {
		cr_assert_eq(load(o->buf, o->at[i], 0, err), -ENODATA);
		cr_assert(strstr(err, "the stream ended before END"), "%s", err);
	}
	free(o);
}

Test(hv_vmstream, changed_bytes_are_refused_with_their_chunk)
{
	struct out *o = build(GPUP_VMMIG_VERSION, true);
	char err[400];

	o->buf[o->at[1] + 9] ^= 1; /* PAGES's len */
	cr_assert_eq(load(o->buf, o->len, 0, err), -EBADMSG);
	cr_assert_str_eq(err, "stream refused: chunk 1 (PAGES) at byte 136: chunk head "
			 "checksum mismatch");
	o->buf[o->at[1] + 9] ^= 1;
	o->buf[o->at[1] + 32 + 16 + 100] ^= 0x40; /* a byte of RAM */
	for (int how = FED; how <= DIRECT; how++) {
		cr_assert_eq(load_how(o->buf, o->len, 3, err, (enum how)how), -EBADMSG);
		cr_assert_str_eq(err, "stream refused: chunk 1 (PAGES) at byte 136: payload "
				 "checksum mismatch");
		cr_assert_eq(load_how(o->buf, o->len, 0, err, (enum how)how), -EBADMSG);
		cr_assert_eq(S->placed, 0, "a page of a refused chunk was taken");
	}
	o->buf[o->at[1] + 32 + 16 + 100] ^= 0x40;
	o->buf[0] ^= 0xff;
	cr_assert_eq(load(o->buf, o->len, 0, err), -EBADMSG);
	cr_assert(strstr(err, "not a gpup VM migration stream"), "%s", err);
	free(o);
}

Test(hv_vmstream, another_version_is_refused_by_number)
{
	struct out *o = build(2, true);
	char err[400];

	cr_assert_eq(load(o->buf, o->len, 0, err), -EPROTONOSUPPORT);
	cr_assert(strstr(err, "wrong version 2 (this build reads 1)"), "%s", err);
	free(o);
}

Test(hv_vmstream, chunks_out_of_bounds_order_or_shape_are_refused)
{
	struct gpup_vmmig_pages past = { 0, 1, RAM }, vram2 = { 2, 1, 0 };
	struct gpup_vmmig_zero wrap = { 1, 0, PG, ~0ull };
	struct gpup_vmmig_dev nogpu = { 1, 0 };
	static uint8_t page[PG];
	const struct { const char *what; int kind; const void *h; uint32_t hl, dl; } bad[] = {
		{ "outside space 0", GPUP_VMMIG_PAGES, &past, sizeof(past), PG },
		{ "no space 2", GPUP_VMMIG_PAGES, &vram2, sizeof(vram2), PG },
		{ "outside space 1", GPUP_VMMIG_ZERO, &wrap, sizeof(wrap), 0 },
		{ "no partition 1", GPUP_VMMIG_DEV, &nogpu, sizeof(nogpu), 8 },
		{ "PAGES of 1 pages in 24 bytes", GPUP_VMMIG_PAGES, &past, sizeof(past), 8 },
		{ "out of order", GPUP_VMMIG_HEADER, &past, sizeof(past), 0 },
	};
	char err[400];

	for (unsigned int i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct out *o = build(GPUP_VMMIG_VERSION, false);

		o->len = o->at[1];
		o->seq = 1;
		put(o, (unsigned int)bad[i].kind, bad[i].h, bad[i].hl, page, bad[i].dl);
		for (int how = FED; how <= DIRECT; how++) {
			cr_assert_eq(load_how(o->buf, o->len, 0, err, (enum how)how), -EBADMSG,
				     "%s", bad[i].what);
			cr_assert(strstr(err, bad[i].what), "want '%s': %s", bad[i].what, err);
		}
		free(o);
	}
}

Test(hv_vmstream, a_vcpu_record_of_the_wrong_size_is_refused)
{
	struct out *o = build(GPUP_VMMIG_VERSION, false);
	char err[400];

	o->len = o->at[5];
	o->seq = 5;
	cpu_chunk(o, 0, sizeof(struct kvm_sregs) - 8);
	cr_assert_eq(load(o->buf, o->len, 0, err), -EBADMSG);
	cr_assert(strstr(err, "record 2 of "), "%s", err);
	free(o);
}

Test(hv_vmstream, end_totals_and_data_after_end_are_checked)
{
	struct out *o = build(GPUP_VMMIG_VERSION, false);
	struct gpup_vmmig_end e = o->end;
	char err[400];
	size_t len;

	e.pages++;
	put(o, GPUP_VMMIG_END, &e, sizeof(e), NULL, 0);
	cr_assert_eq(load(o->buf, o->len, 0, err), -EBADMSG);
	cr_assert(strstr(err, "END totals disagree"), "%s", err);
	free(o);
	o = build(GPUP_VMMIG_VERSION, true);
	len = o->len;
	o->buf[len] = 0;
	cr_assert_eq(load(o->buf, len + 1, 0, err), -EBADMSG);
	cr_assert(strstr(err, "data after END"), "%s", err);
	free(o);
}

/* A source that wants ACKs says so in the HEADER; a flag this build does
 * not know is refused, not ignored. */
Test(hv_vmstream, the_acks_flag_loads_and_an_unknown_flag_is_refused)
{
	struct out *o = build(GPUP_VMMIG_VERSION, true);
	struct gpup_vmmig_header *h = (struct gpup_vmmig_header *)(o->buf + 32);
	char err[400];

	h->flags |= GPUP_VMMIG_HF_ACKS;
	hv_vms_seal((struct gpup_vmmig_chunk *)o->buf, GPUP_VMMIG_HEADER, 0, h, sizeof(*h));
	cr_assert_eq(load(o->buf, o->len, 0, err), 0, "%s", err);
	h->flags |= 1u << 2;
	hv_vms_seal((struct gpup_vmmig_chunk *)o->buf, GPUP_VMMIG_HEADER, 0, h, sizeof(*h));
	cr_assert_eq(load(o->buf, o->len, 0, err), -EBADMSG);
	cr_assert(strstr(err, "bad page size, flags or reserved field"), "%s", err);
	free(o);
}
