// SPDX-License-Identifier: MIT
/*
 * libFuzzer harness for the migration stream parser (migrate/load.c): the
 * bytes a VMM sends with MIG_DATA_WRITE to a partition in RESUMING, or a
 * checkpoint file holds.  The first input byte picks a mode:
 *
 *   bit 0 clear (raw): byte 1 seeds how the rest is split into writes;
 *     the rest is the stream, fed to the destination, then RESUMING ->
 *     STOP.
 *   bit 0 set (made): a real source device is filled from the input (one
 *     byte per VRAM page: 0 a zero page, else a pattern; 16 bytes of
 *     state), saved (bit 1: zstd; bit 3: through PRE_COPY with pages the
 *     input names dirtied between rounds), and the stream is mutated: up
 *     to three bytes XORed at offsets the input gives, optionally cut
 *     short, and (bit 2) the touched chunks resealed with valid hashes, so
 *     that the checks behind the hashes are reached too.
 *
 * Checks after every input: an unmutated stream loads and the destination
 * equals the source bit for bit; a stream with a byte changed and not
 * resealed, or cut short, is refused; a refused stream leaves the
 * destination in RESUMING (or ERROR when only the state blob was bad);
 * DEVICE_RESET always brings it back to RUNNING, running.  The two
 * devices are made once and reset between inputs.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

#include "fuzz/fuzz_util.h"
#include "migrate/mig.h"

#define PG MIG_PAGE_SIZE
#define NPAGES 16
#define SIZE (NPAGES * PG)
#define BLOB 16
#define MAGIC 0x42u

struct fdev {
	uint8_t vram[SIZE];
	uint8_t blob[BLOB];
	uint64_t dirty;
	bool tracking, quiesced;
};

static void d_ident(void *d, struct mig_ident *id)
{
	(void)d;
	memset(id, 0, sizeof(*id));
	strcpy(id->model, "sim-gen1");
	strcpy(id->type, "fuzz");
	id->vram_size = SIZE;
	id->features = 1;
}
static int d_quiesce(void *d) { ((struct fdev *)d)->quiesced = true; return 0; }
static void d_resume(void *d) { ((struct fdev *)d)->quiesced = false; }
static uint8_t *d_vram(void *d, uint64_t *size) { *size = SIZE; return ((struct fdev *)d)->vram; }
static int d_track(void *d, bool on)
{
	((struct fdev *)d)->tracking = on;
	((struct fdev *)d)->dirty = 0;
	return 0;
}
static void d_harvest(void *d, uint64_t *bm)
{
	bm[0] |= ((struct fdev *)d)->dirty;
	((struct fdev *)d)->dirty = 0;
}
static int d_save(void *d, void *buf, size_t max)
{
	fz_check(((struct fdev *)d)->quiesced, "state saved while running");
	fz_check(max >= BLOB, "no room for the blob");
	memcpy(buf, ((struct fdev *)d)->blob, BLOB);
	return BLOB;
}
static int d_load(void *d, const void *buf, size_t len)
{
	if (len != BLOB || ((const uint8_t *)buf)[0] != MAGIC)
		return -EINVAL;
	memcpy(((struct fdev *)d)->blob, buf, BLOB);
	return 0;
}
static void d_reset(void *d)
{
	memset(((struct fdev *)d)->vram, 0, SIZE);
	memset(((struct fdev *)d)->blob, 0, BLOB);
}

static const struct mig_dev_ops ops = {
	.version = MIG_DEV_OPS_VERSION, .ident = d_ident, .quiesce = d_quiesce,
	.resume = d_resume, .vram = d_vram, .vram_track = d_track, .vram_harvest = d_harvest,
	.state_save = d_save, .state_load = d_load, .reset = d_reset,
};

static struct fdev src, dst;
static struct mig_dev *msrc, *mdst;
static uint8_t *stream, *orig, *rbuf;
static size_t slen;
#define STREAM_MAX (4u << 20)

static void quiet(void *o, const char *line)
{
	(void)o;
	if (fz_verbose())
		fprintf(stderr, "mig: %s\n", line);
}

static void init(void)
{
	if (msrc)
		return;
	msrc = mig_dev_create(&ops, &src, VFIO_MIGRATION_STOP_COPY | VFIO_MIGRATION_PRE_COPY);
	mdst = mig_dev_create(&ops, &dst, VFIO_MIGRATION_STOP_COPY | VFIO_MIGRATION_PRE_COPY);
	fz_check(msrc && mdst, "create");
	mig_dev_set_log(msrc, quiet, NULL);
	mig_dev_set_log(mdst, quiet, NULL);
	stream = malloc(STREAM_MAX);
	orig = malloc(STREAM_MAX);
	rbuf = malloc(1 << 16);
}

static int set(struct mig_dev *md, enum mig_state s)
{
	struct vfio_device_feature_mig_state m = { .device_state = s, .data_fd = -1 }, o;
	int rc = mig_dev_feature(md, VFIO_DEVICE_FEATURE_SET | VFIO_DEVICE_FEATURE_MIG_DEVICE_STATE,
				 &m, sizeof(m), &o, sizeof(o));

	return rc < 0 ? rc : 0;
}

static void read_round(void)
{
	int n;

	do {
		n = mig_dev_data_read(msrc, rbuf, 1 << 16);
		fz_check(n >= 0 && slen + (size_t)n <= STREAM_MAX, "read %d", n);
		memcpy(stream + slen, rbuf, (size_t)n);
		slen += (size_t)n;
	} while (n == 1 << 16);
}

/* Page p of the source from value v: zero, or a pattern of period 13
 * (odd v) or 256 (even v), written a period at a time and then doubled:
 * a byte loop over every page would be most of the harness's time. */
static void fill_page(uint8_t *pg, uint8_t v, unsigned int p)
{
	unsigned int period = v & 1 ? 13 : 256;

	if (!v) {
		memset(pg, 0, PG);
		return;
	}
	for (unsigned int i = 0; i < period; i++)
		pg[i] = (uint8_t)(v + (v & 1 ? i % 13 : i * 7 + p));
	for (unsigned int done = period; done < PG; done *= 2)
		memcpy(pg + done, pg, PG - done < done ? PG - done : done);
}

static void fill_source(struct fz_in *in)
{
	for (unsigned int p = 0; p < NPAGES; p++)
		fill_page(src.vram + p * PG, fz_u8(in), p);
	fz_bytes(in, src.blob, BLOB);
	src.blob[0] = MAGIC;
}

static void make_stream(struct fz_in *in, uint8_t mode)
{
	slen = 0;
	mig_dev_set_compress(msrc, mode & 2 ? 1 : 0);
	if (mode & 8) {
		fz_check(!set(msrc, MIG_PRE_COPY), "PRE_COPY");
		read_round();
		for (unsigned int i = fz_u8(in) % 4; i; i--) {
			unsigned int p = fz_u8(in) % NPAGES;

			src.vram[p * PG + fz_u8(in) % PG] ^= fz_u8(in) | 1;
			src.dirty |= 1ull << p;
		}
		read_round();
	}
	fz_check(!set(msrc, MIG_STOP_COPY), "STOP_COPY");
	read_round();
	fz_check(!set(msrc, MIG_RUNNING), "back to RUNNING");
}

/* The chunk of the unmutated stream holding offset off: its start. */
static size_t chunk_of(size_t off)
{
	size_t at = 0;

	for (;;) {
		struct gpup_mig_chunk h;

		memcpy(&h, orig + at, sizeof(h));
		if (off < at + sizeof(h) + h.len)
			return at;
		at += sizeof(h) + h.len;
	}
}

static void reseal(size_t at)
{
	struct gpup_mig_chunk h;
	uint32_t len;

	memcpy(&h, stream + at, sizeof(h));
	len = h.len;
	if (at + sizeof(h) + len > slen)
		return;   /* a length the mutation broke: leave it */
	h.data_hash = XXH3_64bits(stream + at + sizeof(h), len);
	h.head_hash = XXH3_64bits(&h, offsetof(struct gpup_mig_chunk, head_hash));
	memcpy(stream + at, &h, sizeof(h));
}

/* Mutate the stream: whether a byte changed; *cut whether it was cut. */
static bool mutate(struct fz_in *in, uint8_t mode, bool *cut)
{
	size_t starts[3], len = slen;
	unsigned int n = fz_u8(in) % 4;

	memcpy(orig, stream, slen);
	for (unsigned int i = 0; i < n; i++) {
		uint8_t x = fz_u8(in);
		size_t at = fz_u32(in) % slen;

		starts[i] = chunk_of(at);
		stream[at] ^= x;
	}
	if (mode & 4)
		for (unsigned int i = 0; i < n; i++)
			reseal(starts[i]);
	*cut = fz_u8(in) & 1;
	if (*cut)
		slen = fz_u32(in) % slen;
	return memcmp(orig, stream, len) != 0;
}

static int feed(const uint8_t *p, size_t len, unsigned int seed)
{
	size_t off = 0;
	int rc = 0;

	while (!rc && off < len) {
		size_t n = 1 + (size_t)(rand_r(&seed) % 9000);

		if (n > len - off)
			n = len - off;
		rc = mig_dev_data_write(mdst, p + off, (uint32_t)n);
		off += n;
	}
	return rc ? rc : set(mdst, MIG_STOP);
}

static void after(int rc)
{
	enum mig_state s = mig_dev_state(mdst);

	if (rc)
		fz_check(s == MIG_RESUMING || s == MIG_ERROR, "refused into %s",
			 mig_state_name(s));
	else
		fz_check(s == MIG_STOP, "loaded into %s", mig_state_name(s));
	mig_dev_device_reset(mdst);
	fz_check(mig_dev_state(mdst) == MIG_RUNNING && !dst.quiesced, "reset");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fz_in in = { data, size };
	uint8_t mode = fz_u8(&in);
	bool changed, cut;
	int rc;

	init();
	fz_check(!set(mdst, MIG_RESUMING), "RESUMING");
	if (!(mode & 1)) {
		unsigned int seed = fz_u8(&in);

		after(feed(in.p, in.n, seed));
		return 0;
	}
	fill_source(&in);
	make_stream(&in, mode);
	changed = mutate(&in, mode, &cut);
	rc = feed(stream, slen, mode);
	if (!changed && !cut) {
		fz_check(!rc, "a clean stream was refused: %s", mig_dev_last_error(mdst));
		fz_check(!memcmp(src.vram, dst.vram, SIZE) && !memcmp(src.blob, dst.blob, BLOB),
			 "the destination differs");
	} else if (cut || !(mode & 4)) {
		fz_check(rc, "a changed stream was taken");
	}
	after(rc);
	return 0;
}
