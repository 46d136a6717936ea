// SPDX-License-Identifier: MIT
/* migrate: saving and loading a device through the vfio-user entry points
 * (DEVICE_FEATURE, MIG_DATA_READ/WRITE, DEVICE_RESET), against a fake
 * device kept here: a byte-array VRAM whose "engine" writes mark a
 * hand-kept dirty bitmap, and a small state blob.  Round trips must be
 * bit-exact; every corruption must be refused with its error and a line
 * naming it; commands in the wrong state must fail cleanly. */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include <xxhash.h>

#include "migrate/mig.h"

#define PG MIG_PAGE_SIZE
#define FEAT_ALL (VFIO_MIGRATION_STOP_COPY | VFIO_MIGRATION_P2P | VFIO_MIGRATION_PRE_COPY)
#define BLOB_MAGIC 0x424c4f42u

/* ---- the fake device ---- */

struct fake {
	struct mig_ident id;
	uint8_t *vram;
	uint64_t size;
	uint64_t *dirty;
	bool tracking, quiesced;
	uint32_t blob[16];          /* [0] BLOB_MAGIC, the rest "registers" */
	int quiesce_rc, load_rc, track_rc;
	int resets;
	int fd;                     /* VRAM as a memfd (sparse tests), or -1 */
	unsigned int writes;        /* vram_write calls */
	int write_rc;               /* what vram_write returns (0: it writes) */
};

static void f_ident(void *d, struct mig_ident *id) { *id = ((struct fake *)d)->id; }

static int f_quiesce(void *d)
{
	struct fake *f = d;

	if (f->quiesce_rc)
		return f->quiesce_rc;
	cr_assert(!f->quiesced, "quiesced twice");
	f->quiesced = true;
	return 0;
}

static void f_resume(void *d)
{
	cr_assert(((struct fake *)d)->quiesced, "resumed without a quiesce");
	((struct fake *)d)->quiesced = false;
}

static uint8_t *f_vram(void *d, uint64_t *size)
{
	*size = ((struct fake *)d)->size;
	return ((struct fake *)d)->vram;
}

static int f_track(void *d, bool on)
{
	struct fake *f = d;

	if (on && f->track_rc)
		return f->track_rc;
	if (on)
		memset(f->dirty, 0, (f->size / PG + 63) / 64 * 8);
	f->tracking = on;
	return 0;
}

static void f_harvest(void *d, uint64_t *bm)
{
	struct fake *f = d;

	for (uint64_t w = 0; w < (f->size / PG + 63) / 64; w++) {
		bm[w] |= f->dirty[w];
		f->dirty[w] = 0;
	}
}

static int f_save(void *d, void *buf, size_t max)
{
	struct fake *f = d;

	cr_assert(f->quiesced, "state saved from a running device");
	if (max < sizeof(f->blob))
		return -ENOSPC;
	memcpy(buf, f->blob, sizeof(f->blob));
	return sizeof(f->blob);
}

static int f_load(void *d, const void *buf, size_t len)
{
	struct fake *f = d;
	uint32_t magic;

	if (f->load_rc)
		return f->load_rc;
	if (len != sizeof(f->blob))
		return -EINVAL;
	memcpy(&magic, buf, 4);
	if (magic != BLOB_MAGIC)
		return -EINVAL;
	memcpy(f->blob, buf, len);
	return 0;
}

static void f_reset(void *d)
{
	struct fake *f = d;

	if (f->fd >= 0)
		cr_assert_eq(fallocate(f->fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 0,
				       (off_t)f->size), 0);
	else
		memset(f->vram, 0, f->size);
	memset(f->blob, 0, sizeof(f->blob));
	f->blob[0] = BLOB_MAGIC;
	f->resets++;
}

static const struct mig_dev_ops fake_ops = {
	.version = MIG_DEV_OPS_VERSION,
	.ident = f_ident, .quiesce = f_quiesce, .resume = f_resume, .vram = f_vram,
	.vram_track = f_track, .vram_harvest = f_harvest, .state_save = f_save,
	.state_load = f_load, .reset = f_reset,
};

/* SEEK_DATA / SEEK_HOLE on the memfd. */
static uint64_t f_data(void *d, uint64_t off, uint64_t *end)
{
	struct fake *f = d;
	off_t data = lseek(f->fd, (off_t)off, SEEK_DATA);

	if (data < 0) {
		*end = f->size;
		return f->size;
	}
	*end = (uint64_t)lseek(f->fd, data, SEEK_HOLE);
	return (uint64_t)data;
}

static struct mig_dev_ops sparse_ops;

static char logbuf[4096];

static void capture(void *opaque, const char *line)
{
	(void)opaque;
	snprintf(logbuf, sizeof(logbuf), "%s", line);
}

static struct fake *fake_new(const char *type, uint64_t size, uint64_t features)
{
	struct fake *f = calloc(1, sizeof(*f));

	f->size = size;
	f->vram = calloc(1, size);
	f->dirty = calloc((size / PG + 63) / 64, 8);
	snprintf(f->id.model, sizeof(f->id.model), "sim-gen1");
	snprintf(f->id.type, sizeof(f->id.type), "%s", type);
	f->id.vram_size = size;
	f->id.features = features;
	f->blob[0] = BLOB_MAGIC;
	f->fd = -1;
	return f;
}

/* A fake whose VRAM is a memfd, sparse until written. */
static struct fake *fake_new_sparse(uint64_t size)
{
	struct fake *f = fake_new("t1", PG, 1);

	free(f->vram);
	free(f->dirty);
	f->size = size;
	f->id.vram_size = size;
	f->dirty = calloc((size / PG + 63) / 64, 8);
	f->fd = memfd_create("vram", 0);
	cr_assert_geq(f->fd, 0);
	cr_assert_eq(ftruncate(f->fd, (off_t)size), 0);
	f->vram = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, f->fd, 0);
	cr_assert_neq(f->vram, MAP_FAILED);
	return f;
}

static uint64_t allocated(const struct fake *f)
{
	struct stat st;

	cr_assert_eq(fstat(f->fd, &st), 0);
	return (uint64_t)st.st_blocks * 512;
}

static void fake_free(struct fake *f)
{
	if (f->fd >= 0) {
		munmap(f->vram, f->size);
		close(f->fd);
		f->vram = NULL;
	}
	free(f->vram);
	free(f->dirty);
	free(f);
}

/* An engine write: the data lands, then the page is marked. */
static void engine_write(struct fake *f, uint64_t off, const void *p, size_t len)
{
	cr_assert(!f->quiesced, "an engine wrote while quiesced");
	memcpy(f->vram + off, p, len);
	if (f->tracking)
		for (uint64_t pg = off / PG; pg <= (off + len - 1) / PG; pg++)
			f->dirty[pg / 64] |= 1ull << (pg % 64);
}

static void engine_fill(struct fake *f, uint64_t page, uint8_t v)
{
	uint8_t b[PG];

	memset(b, v, sizeof(b));
	engine_write(f, page * PG, b, sizeof(b));
}

static struct mig_dev *md_new(struct fake *f, uint32_t features)
{
	struct mig_dev *md = mig_dev_create(&fake_ops, f, features);

	cr_assert_not_null(md);
	mig_dev_set_log(md, capture, NULL);
	return md;
}

/* ---- client side helpers ---- */

static int set_state(struct mig_dev *md, enum mig_state s)
{
	struct vfio_device_feature_mig_state m = { .device_state = s }, out;
	int rc = mig_dev_feature(md, VFIO_DEVICE_FEATURE_SET | VFIO_DEVICE_FEATURE_MIG_DEVICE_STATE,
				 &m, sizeof(m), &out, sizeof(out));

	if (rc >= 0) {
		cr_assert_eq(rc, (int)sizeof(out));
		cr_assert_eq(out.device_state, (uint32_t)s);
		cr_assert_eq(out.data_fd, -1);
	}
	return rc < 0 ? rc : 0;
}

static enum mig_state get_state(struct mig_dev *md)
{
	struct vfio_device_feature_mig_state out;
	int rc = mig_dev_feature(md, VFIO_DEVICE_FEATURE_GET | VFIO_DEVICE_FEATURE_MIG_DEVICE_STATE,
				 NULL, 0, &out, sizeof(out));

	cr_assert_eq(rc, (int)sizeof(out));
	cr_assert_eq(out.data_fd, -1);
	cr_assert_eq(out.device_state, (uint32_t)mig_dev_state(md));
	return (enum mig_state)out.device_state;
}

struct buf {
	uint8_t *p;
	size_t len, cap;
};

/* Read until a short read, `step` bytes a read: bytes this round. */
static size_t read_round(struct mig_dev *md, struct buf *b, uint32_t step)
{
	size_t start = b->len;
	int n;

	do {
		if (b->cap < b->len + step) {
			b->cap = (b->len + step) * 2;
			b->p = realloc(b->p, b->cap);
		}
		n = mig_dev_data_read(md, b->p + b->len, step);
		cr_assert_geq(n, 0, "read: %d", n);
		cr_assert_leq((uint32_t)n, step);
		b->len += (size_t)n;
	} while ((uint32_t)n == step);
	return b->len - start;
}

/* Feed a stream to md in pieces of pseudo-random sizes. */
static int feed(struct mig_dev *md, const uint8_t *p, size_t len, unsigned int seed)
{
	size_t off = 0;

	while (off < len) {
		size_t n = 1 + (size_t)(rand_r(&seed) % 70000);
		int rc;

		if (n > len - off)
			n = len - off;
		rc = mig_dev_data_write(md, p + off, (uint32_t)n);
		if (rc)
			return rc;
		off += n;
	}
	return 0;
}

/* Load stream into a fresh md over f: the error of the write or of
 * RESUMING -> STOP, 0 when it went through. */
static int load(struct mig_dev *md, const struct buf *s)
{
	int rc;

	cr_assert_eq(set_state(md, MIG_RESUMING), 0);
	rc = feed(md, s->p, s->len, 7);
	if (!rc)
		rc = set_state(md, MIG_STOP);
	return rc;
}

static void fill_random(struct fake *f, unsigned int seed)
{
	for (uint64_t i = 0; i < f->size; i += 8) {
		uint64_t v = (uint64_t)rand_r(&seed) << 32 | (uint64_t)rand_r(&seed);

		memcpy(f->vram + i, &v, 8);
	}
	/* Every third page zero, and a long zero run. */
	for (uint64_t pg = 0; pg < f->size / PG; pg += 3)
		memset(f->vram + pg * PG, 0, PG);
	memset(f->vram + 40 * PG, 0, 20 * PG);
	for (int i = 1; i < 16; i++)
		f->blob[i] = (uint32_t)rand_r(&seed);
}

static void expect_same(const struct fake *a, const struct fake *b)
{
	cr_assert_eq(a->size, b->size);
	cr_assert(!memcmp(a->vram, b->vram, a->size), "VRAM differs");
	cr_assert(!memcmp(a->blob, b->blob, sizeof(a->blob)), "state differs");
}

#define SIZE (256 * PG)

/* A stopped device's full save: STOP -> STOP_COPY, one walk. */
static void save_stopped(struct mig_dev *md, struct buf *s, uint32_t step)
{
	cr_assert_eq(set_state(md, MIG_STOP_COPY), 0);
	read_round(md, s, step);
	/* The end stays the end. */
	cr_assert_eq(mig_dev_data_read(md, s->p, 16), 0);
	cr_assert_eq(set_state(md, MIG_RUNNING), 0);
}

/* ---- round trips ---- */

Test(mig_stream, stop_copy_round_trip)
{
	struct fake *a = fake_new("t1", SIZE, 1), *b = fake_new("t1", SIZE, 1);
	struct mig_dev *ma = md_new(a, VFIO_MIGRATION_STOP_COPY), *mb = md_new(b, FEAT_ALL);
	struct buf s = { 0 };
	struct mig_stats st;

	fill_random(a, 1);
	save_stopped(ma, &s, 1000);
	cr_assert(!a->quiesced);
	mig_dev_stats(ma, &st);
	cr_expect_eq(st.save_rounds, 1);
	cr_expect_eq(st.pages_sent + st.zero_pages, SIZE / PG);
	cr_expect_gt(st.zero_pages, SIZE / PG / 3);
	cr_expect_eq(st.save_bytes, s.len);
	cr_expect_eq(st.saves, 1);
	/* Zero pages cost a head and 16 bytes per run, not a page each. */
	cr_expect_lt(s.len, (st.pages_sent + 1) * PG + 200 * 48);

	cr_assert_eq(load(mb, &s), 0, "%s", logbuf);
	cr_assert_eq(get_state(mb), MIG_STOP);
	cr_assert_eq(set_state(mb, MIG_RUNNING), 0);
	expect_same(a, b);
	cr_expect(!b->quiesced);
	mig_dev_stats(mb, &st);
	cr_expect_eq(st.load_bytes, s.len);
	cr_expect_eq(st.loads, 1);
	mig_dev_destroy(ma);
	mig_dev_destroy(mb);
	fake_free(a);
	fake_free(b);
	free(s.p);
}

/* PRE_COPY: round 1 sends everything, later rounds only what engines
 * dirtied; a read with nothing to give returns 0; STOP_COPY sends the
 * rest.  The destination is fed as the source produces. */
Test(mig_stream, precopy_rounds)
{
	struct fake *a = fake_new("t1", SIZE, 1), *b = fake_new("t1", SIZE, 1);
	struct mig_dev *ma = md_new(a, FEAT_ALL), *mb = md_new(b, FEAT_ALL);
	struct buf s = { 0 };
	struct mig_stats st;
	size_t r1, r2, fed = 0;
	uint8_t junk[100];

	fill_random(a, 2);
	cr_assert_eq(set_state(ma, MIG_PRE_COPY), 0);
	cr_assert(a->tracking && !a->quiesced);
	cr_assert_eq(set_state(mb, MIG_RESUMING), 0);

	r1 = read_round(ma, &s, 65536);
	cr_assert_gt(r1, SIZE / 2);
	cr_assert_eq(mig_dev_data_read(ma, junk, sizeof(junk)), 0, "nothing dirtied yet");
	cr_assert_eq(mig_dev_data_write(mb, s.p + fed, (uint32_t)(s.len - fed)), 0, "%s", logbuf);
	fed = s.len;

	/* Dirty three pages (one to zero, one across a zero run) and read. */
	engine_fill(a, 1, 0xaa);
	engine_fill(a, 5, 0);
	engine_fill(a, 45, 0x55);
	r2 = read_round(ma, &s, 4096);
	cr_assert_lt(r2, 3 * PG + 4 * 48, "round 2 sent %zu bytes", r2);
	cr_assert_eq(mig_dev_data_write(mb, s.p + fed, (uint32_t)(s.len - fed)), 0, "%s", logbuf);
	fed = s.len;

	/* More writes, then the stop: they must come in the final walk. */
	engine_fill(a, 200, 0x11);
	engine_write(a, 3 * PG + 100, "late", 4);
	a->blob[3] = 0xdeadbeef;
	cr_assert_eq(set_state(ma, MIG_STOP_COPY), 0);
	cr_assert(a->quiesced);
	read_round(ma, &s, 777);
	cr_assert_eq(feed(mb, s.p + fed, s.len - fed, 3), 0, "%s", logbuf);
	cr_assert_eq(set_state(mb, MIG_RUNNING), 0, "%s", logbuf);
	expect_same(a, b);

	mig_dev_stats(ma, &st);
	cr_expect_eq(st.save_rounds, 3);
	cr_expect_eq(st.dirty_pages, 5);
	cr_expect_lt(st.stop_copy_bytes, 2 * PG + 1000);
	cr_assert_eq(set_state(ma, MIG_RUNNING), 0);
	cr_assert(!a->quiesced && !a->tracking);
	mig_dev_destroy(ma);
	mig_dev_destroy(mb);
	fake_free(a);
	fake_free(b);
	free(s.p);
}

/* zstd chunks: compressible VRAM shrinks, and loads the same. */
Test(mig_stream, zstd_round_trip)
{
	struct fake *a = fake_new("t1", SIZE, 1), *b = fake_new("t1", SIZE, 1);
	struct mig_dev *ma = md_new(a, FEAT_ALL), *mb = md_new(b, FEAT_ALL);
	struct buf s = { 0 };

	for (uint64_t i = 0; i < SIZE; i++)
		a->vram[i] = (uint8_t)(i / 64 % 7 + 1);
	mig_dev_set_compress(ma, 3);
	save_stopped(ma, &s, 1 << 20);
	cr_assert_lt(s.len, SIZE / 10, "compressed to %zu", s.len);
	cr_assert_eq(load(mb, &s), 0, "%s", logbuf);
	cr_assert_eq(set_state(mb, MIG_RUNNING), 0);
	expect_same(a, b);
	mig_dev_destroy(ma);
	mig_dev_destroy(mb);
	fake_free(a);
	fake_free(b);
	free(s.p);
}

/* ---- corruption ---- */

struct chunk_at {
	size_t off;
	uint16_t kind;
	uint32_t len;
};

/* Walk a valid stream's chunks. */
static int chunks(const struct buf *s, struct chunk_at *out, int max)
{
	size_t off = 0;
	int n = 0;

	while (off < s->len && n < max) {
		struct gpup_mig_chunk h;

		memcpy(&h, s->p + off, sizeof(h));
		out[n++] = (struct chunk_at){ off, h.kind, h.len };
		off += sizeof(h) + h.len;
	}
	cr_assert_eq(off, s->len);
	return n;
}

/* Recompute a chunk's hashes after the test edited it (what a writer of
 * the format outside this module would do). */
static void reseal(uint8_t *chunk)
{
	struct gpup_mig_chunk h;

	memcpy(&h, chunk, sizeof(h));
	h.data_hash = XXH3_64bits(chunk + sizeof(h), h.len);
	h.head_hash = XXH3_64bits(&h, offsetof(struct gpup_mig_chunk, head_hash));
	memcpy(chunk, &h, sizeof(h));
}

struct pair {
	struct fake *a, *b;
	struct mig_dev *ma, *mb;
	struct buf s;
};

static void pair_new(struct pair *p, const char *btype, uint64_t bsize, uint64_t bfeat)
{
	p->a = fake_new("t1", SIZE, 0x3);
	p->b = fake_new(btype, bsize, bfeat);
	p->ma = md_new(p->a, FEAT_ALL);
	p->mb = md_new(p->b, FEAT_ALL);
	memset(&p->s, 0, sizeof(p->s));
	fill_random(p->a, 3);
	save_stopped(p->ma, &p->s, 1 << 20);
	logbuf[0] = 0;
}

static void pair_free(struct pair *p)
{
	mig_dev_destroy(p->ma);
	mig_dev_destroy(p->mb);
	fake_free(p->a);
	fake_free(p->b);
	free(p->s.p);
}

/* After a refusal the destination sits in RESUMING; a reset leaves it
 * clean, and the real stream then loads. */
static void expect_refused(struct pair *p, const struct buf *bad, int err, const char *what)
{
	int rc = load(p->mb, bad);

	cr_assert_eq(rc, err, "want %d got %d (%s)", err, rc, logbuf);
	cr_assert(strstr(logbuf, what), "log '%s' lacks '%s'", logbuf, what);
	cr_assert_str_eq(mig_dev_last_error(p->mb), logbuf);
	cr_assert_eq(get_state(p->mb), MIG_RESUMING);
	/* Still refused on a second try, and more data changes nothing. */
	cr_assert_eq(set_state(p->mb, MIG_STOP), err);
	cr_assert_eq(set_state(p->mb, MIG_RUNNING), err);
	mig_dev_device_reset(p->mb);
	cr_assert_eq(get_state(p->mb), MIG_RUNNING);
	cr_assert(!p->b->quiesced);
	cr_assert_eq(load(p->mb, &p->s), 0, "%s", logbuf);
	cr_assert_eq(set_state(p->mb, MIG_RUNNING), 0);
	expect_same(p->a, p->b);
	mig_dev_device_reset(p->mb);
}

static void flip_test(bool in_head)
{
	struct pair p;
	struct chunk_at c[512];
	bool seen[8] = { false };
	struct buf bad;
	int n;

	pair_new(&p, "t1", SIZE, 0x3);
	n = chunks(&p.s, c, 512);
	bad.p = malloc(p.s.len);
	bad.len = p.s.len;
	for (int i = 0; i < n; i++) {
		size_t at;

		if (seen[c[i].kind] && i != n - 1)
			continue;     /* one of each kind (and the last) is enough */
		seen[c[i].kind] = true;
		memcpy(bad.p, p.s.p, p.s.len);
		at = c[i].off + (in_head ? (size_t)(i * 5) % 32 : 32 + c[i].len / 2);
		bad.p[at] ^= 0x10;
		/* The first chunk's sync word is what says "a stream" at all. */
		if (in_head && i == 0 && at - c[i].off < 4)
			expect_refused(&p, &bad, -EBADMSG, "not a gpup migration stream");
		else if (in_head)
			expect_refused(&p, &bad, -EBADMSG, "chunk head checksum mismatch");
		else
			expect_refused(&p, &bad, -EBADMSG, "payload checksum mismatch");
	}
	for (int k = GPUP_MIG_HEADER; k <= GPUP_MIG_END; k++)
		cr_assert(seen[k], "the stream has no chunk of kind %d", k);
	free(bad.p);
	pair_free(&p);
}

Test(mig_stream, byte_flipped_in_each_chunk_payload) { flip_test(false); }
Test(mig_stream, byte_flipped_in_each_chunk_head) { flip_test(true); }

Test(mig_stream, payload_flip_names_the_chunk)
{
	struct pair p;
	struct chunk_at c[512];
	struct buf bad;
	int n;

	pair_new(&p, "t1", SIZE, 0x3);
	n = chunks(&p.s, c, 512);
	bad.p = malloc(p.s.len);
	bad.len = p.s.len;
	for (int i = 0; i < n; i++) {
		char want[64];

		if (c[i].kind != GPUP_MIG_STATE)
			continue;
		memcpy(bad.p, p.s.p, p.s.len);
		bad.p[c[i].off + 40] ^= 1;
		snprintf(want, sizeof(want), "chunk %d (STATE) at byte %zu", i, c[i].off);
		expect_refused(&p, &bad, -EBADMSG, want);
	}
	free(bad.p);
	pair_free(&p);
}

Test(mig_stream, truncated_at_many_points)
{
	struct pair p;
	struct chunk_at c[512];
	struct buf cut;
	int n;

	pair_new(&p, "t1", SIZE, 0x3);
	n = chunks(&p.s, c, 512);
	cut.p = p.s.p;
	for (int i = 0; i < n; i++) {
		size_t points[] = { c[i].off, c[i].off + 1, c[i].off + 31, c[i].off + 32,
				    c[i].off + 32 + c[i].len / 2, c[i].off + 32 + c[i].len - 1 };

		for (unsigned int j = 0; j < sizeof(points) / sizeof(points[0]); j++) {
			char want[64];

			if (points[j] >= p.s.len || (i % 7 && i != n - 1 && j > 1))
				continue;
			cut.len = points[j];
			snprintf(want, sizeof(want), "truncated at byte %zu", cut.len);
			expect_refused(&p, &cut, -ENODATA, want);
		}
	}
	pair_free(&p);
}

/* Rewrite the HEADER's payload through fn and reseal it. */
static void with_header(struct pair *p, struct buf *out, void (*fn)(struct gpup_mig_header *))
{
	struct gpup_mig_header h;

	out->len = p->s.len;
	out->p = malloc(out->len);
	memcpy(out->p, p->s.p, out->len);
	memcpy(&h, out->p + 32, sizeof(h));
	fn(&h);
	memcpy(out->p + 32, &h, sizeof(h));
	reseal(out->p);
}

static void h_version(struct gpup_mig_header *h) { h->version = 2; }
static void h_magic(struct gpup_mig_header *h) { h->magic ^= 1; }

Test(mig_stream, wrong_version)
{
	struct pair p;
	struct buf bad;

	pair_new(&p, "t1", SIZE, 0x3);
	with_header(&p, &bad, h_version);
	expect_refused(&p, &bad, -EPROTONOSUPPORT, "wrong version 2");
	free(bad.p);
	with_header(&p, &bad, h_magic);
	expect_refused(&p, &bad, -EBADMSG, "bad magic");
	free(bad.p);
	pair_free(&p);
}

/* A destination of another type, size or narrower feature mask. */
static void incompatible(const char *type, uint64_t size, uint64_t feat, const char *what)
{
	struct pair p;
	int rc;

	pair_new(&p, type, size, feat);
	rc = load(p.mb, &p.s);
	cr_assert_eq(rc, -EINVAL, "got %d (%s)", rc, logbuf);
	cr_assert(strstr(logbuf, what), "log '%s' lacks '%s'", logbuf, what);
	cr_assert_eq(get_state(p.mb), MIG_RESUMING);
	mig_dev_device_reset(p.mb);
	cr_assert_eq(get_state(p.mb), MIG_RUNNING);
	pair_free(&p);
}

Test(mig_stream, wrong_type) { incompatible("t2", SIZE, 0x3, "wrong type: the stream is of type 't1', this partition 't2'"); }
Test(mig_stream, wrong_size) { incompatible("t1", 2 * SIZE, 0x3, "wrong size"); }
Test(mig_stream, features_not_a_subset) { incompatible("t1", SIZE, 0x1, "features 0x2 of the stream"); }

Test(mig_stream, feature_subset_and_other_model_accepted)
{
	struct pair p;

	pair_new(&p, "t1", SIZE, 0xff);
	snprintf(p.b->id.model, sizeof(p.b->id.model), "sim-gen2");
	cr_assert_eq(load(p.mb, &p.s), 0, "%s", logbuf);
	cr_assert_eq(set_state(p.mb, MIG_RUNNING), 0);
	expect_same(p.a, p.b);
	pair_free(&p);
}

/* Chunks dropped, repeated or after END; END totals edited. */
Test(mig_stream, structure_errors)
{
	struct pair p;
	struct chunk_at c[512];
	struct buf bad;
	int n;

	pair_new(&p, "t1", SIZE, 0x3);
	n = chunks(&p.s, c, 512);
	bad.p = malloc(2 * p.s.len);

	/* chunk 1 dropped: out of sequence */
	bad.len = p.s.len - (c[2].off - c[1].off);
	memcpy(bad.p, p.s.p, c[1].off);
	memcpy(bad.p + c[1].off, p.s.p + c[2].off, p.s.len - c[2].off);
	expect_refused(&p, &bad, -EBADMSG, "chunk 1 at byte 128: chunk out of sequence");

	/* the stream twice: data after END */
	memcpy(bad.p, p.s.p, p.s.len);
	memcpy(bad.p + p.s.len, p.s.p, p.s.len);
	bad.len = 2 * p.s.len;
	expect_refused(&p, &bad, -EBADMSG, "data after END");

	/* END's totals edited and resealed */
	memcpy(bad.p, p.s.p, p.s.len);
	bad.len = p.s.len;
	bad.p[c[n - 1].off + 32 + 16] ^= 1;
	reseal(bad.p + c[n - 1].off);
	expect_refused(&p, &bad, -EBADMSG, "END totals disagree");

	/* a VRAM chunk pointing past the end of VRAM, resealed */
	for (int i = 0; i < n; i++) {
		if (c[i].kind != GPUP_MIG_VRAM)
			continue;
		memcpy(bad.p, p.s.p, p.s.len);
		uint64_t off = SIZE;

		memcpy(bad.p + c[i].off + 32, &off, 8);
		reseal(bad.p + c[i].off);
		expect_refused(&p, &bad, -EBADMSG, "VRAM chunk out of bounds");
		break;
	}
	free(bad.p);
	pair_free(&p);
}

/* A whole stream whose state blob the device refuses: ERROR, left only
 * by DEVICE_RESET. */
Test(mig_stream, refused_blob_is_error)
{
	struct pair p;
	enum mig_state n;

	pair_new(&p, "t1", SIZE, 0x3);
	p.b->load_rc = -EINVAL;
	cr_assert_eq(load(p.mb, &p.s), -EINVAL);
	cr_assert(strstr(logbuf, "refused its state blob"), "%s", logbuf);
	cr_assert_eq(get_state(p.mb), MIG_ERROR);
	for (n = MIG_ERROR; n <= MIG_PRE_COPY_P2P; n++)
		cr_assert_eq(set_state(p.mb, n), -EINVAL, "ERROR -> %s", mig_state_name(n));
	cr_assert_eq(mig_dev_data_read(p.mb, logbuf, 16), -EINVAL);
	mig_dev_device_reset(p.mb);
	cr_assert_eq(get_state(p.mb), MIG_RUNNING);
	cr_assert(!p.b->quiesced);
	p.b->load_rc = 0;
	cr_assert_eq(load(p.mb, &p.s), 0);
	cr_assert_eq(set_state(p.mb, MIG_RUNNING), 0);
	expect_same(p.a, p.b);
	pair_free(&p);
}

/* ---- commands in the wrong state ---- */

Test(mig_stream, wrong_state_commands)
{
	struct fake *f = fake_new("t1", SIZE, 1);
	struct mig_dev *md = md_new(f, FEAT_ALL);
	uint8_t b[64] = { 0 };

	cr_assert_eq(mig_dev_data_read(md, b, sizeof(b)), -EINVAL);
	cr_assert_eq(mig_dev_data_write(md, b, sizeof(b)), -EINVAL);
	cr_assert_eq(set_state(md, MIG_STOP), 0);
	cr_assert(f->quiesced);
	cr_assert_eq(mig_dev_data_read(md, b, sizeof(b)), -EINVAL);
	cr_assert_eq(mig_dev_data_write(md, b, sizeof(b)), -EINVAL);
	cr_assert_eq(set_state(md, MIG_STOP_COPY), 0);
	cr_assert_eq(mig_dev_data_write(md, b, sizeof(b)), -EINVAL);
	cr_assert_eq(set_state(md, MIG_PRE_COPY), -EINVAL);
	cr_assert_eq(set_state(md, MIG_PRE_COPY_P2P), -EINVAL);
	cr_assert_eq(get_state(md), MIG_STOP_COPY);
	cr_assert_eq(set_state(md, MIG_ERROR), -EINVAL);
	cr_assert_eq(set_state(md, (enum mig_state)8), -EINVAL);
	cr_assert_eq(set_state(md, (enum mig_state)0x10002), -EINVAL);
	cr_assert_eq(set_state(md, MIG_RESUMING), 0);
	cr_assert_eq(mig_dev_data_read(md, b, sizeof(b)), -EINVAL);
	cr_assert_eq(set_state(md, MIG_RUNNING_P2P), -ENODATA);  /* empty stream */
	cr_assert_eq(get_state(md), MIG_RESUMING);
	mig_dev_device_reset(md);
	cr_assert_eq(set_state(md, MIG_PRE_COPY), 0);
	cr_assert_eq(mig_dev_data_write(md, b, sizeof(b)), -EINVAL);
	/* A reset in the middle of a save stops the tracking. */
	cr_assert_gt(mig_dev_data_read(md, b, sizeof(b)), 0);
	mig_dev_device_reset(md);
	cr_assert(!f->tracking && !f->quiesced);
	cr_assert_eq(mig_dev_data_read(md, b, sizeof(b)), -EINVAL);
	mig_dev_destroy(md);
	fake_free(f);
}

/* A device that cannot stop in time keeps running; nothing is lost. */
Test(mig_stream, quiesce_failure)
{
	struct fake *f = fake_new("t1", SIZE, 1);
	struct mig_dev *md = md_new(f, FEAT_ALL);

	f->quiesce_rc = -ETIMEDOUT;
	cr_assert_eq(set_state(md, MIG_STOP), -ETIMEDOUT);
	cr_assert_eq(get_state(md), MIG_RUNNING_P2P);  /* where the walk got to */
	cr_assert(strstr(logbuf, "could not be stopped"));
	cr_assert_eq(set_state(md, MIG_PRE_COPY), 0);
	cr_assert_eq(set_state(md, MIG_STOP_COPY), -ETIMEDOUT);
	cr_assert_eq(get_state(md), MIG_PRE_COPY_P2P);
	f->quiesce_rc = 0;
	cr_assert_eq(set_state(md, MIG_STOP_COPY), 0);
	/* Tracking that cannot start: PRE_COPY is refused, nothing started. */
	cr_assert_eq(set_state(md, MIG_RUNNING), 0);
	f->track_rc = -ENOMEM;
	cr_assert_eq(set_state(md, MIG_PRE_COPY), -ENOMEM);
	cr_assert_eq(get_state(md), MIG_RUNNING);
	cr_assert(strstr(logbuf, "VRAM tracking could not start"), "%s", logbuf);
	f->track_rc = 0;
	cr_assert_eq(set_state(md, MIG_PRE_COPY), 0);
	cr_assert_eq(set_state(md, MIG_STOP_COPY), 0);
	cr_assert_eq(set_state(md, MIG_RUNNING), 0);
	cr_assert(!f->quiesced && !f->tracking);
	mig_dev_destroy(md);
	fake_free(f);
}

/* Without tracking ops, PRE_COPY is not offered. */
Test(mig_stream, no_tracking_no_precopy)
{
	struct fake *f = fake_new("t1", SIZE, 1);
	struct mig_dev_ops ops = fake_ops;
	struct vfio_device_feature_migration m;
	struct mig_dev *md;

	ops.vram_track = NULL;
	ops.vram_harvest = NULL;
	md = mig_dev_create(&ops, f, FEAT_ALL);
	cr_assert_not_null(md);
	mig_dev_set_log(md, capture, NULL);
	cr_assert_eq(mig_dev_feature(md, VFIO_DEVICE_FEATURE_GET | VFIO_DEVICE_FEATURE_MIGRATION,
				     NULL, 0, &m, sizeof(m)), 8);
	cr_assert_eq(m.flags, VFIO_MIGRATION_STOP_COPY | VFIO_MIGRATION_P2P);
	cr_assert_eq(set_state(md, MIG_PRE_COPY), -EINVAL);
	mig_dev_destroy(md);
	ops.vram_track = f_track;
	errno = 0;
	cr_assert_null(mig_dev_create(&ops, f, FEAT_ALL));
	cr_assert_eq(errno, EINVAL);
	cr_assert_null(mig_dev_create(&fake_ops, f, VFIO_MIGRATION_P2P));
	cr_assert_null(mig_dev_create(&fake_ops, f, VFIO_MIGRATION_STOP_COPY | 8));
	ops = fake_ops;
	ops.version = 2;
	cr_assert_null(mig_dev_create(&ops, f, VFIO_MIGRATION_STOP_COPY));
	fake_free(f);
}

/* Saving a sparse partition reads none of its holes, and loading it
 * writes only the pages that hold data: neither side allocates them. */
Test(mig_stream, sparse_vram_stays_sparse)
{
	const uint64_t size = 64ull << 20;
	struct fake *a = fake_new_sparse(size), *b = fake_new_sparse(size);
	struct mig_dev *ma, *mb;
	struct buf s = { 0 };
	uint64_t before;
	struct mig_stats st;

	sparse_ops = fake_ops;
	sparse_ops.vram_data = f_data;
	ma = mig_dev_create(&sparse_ops, a, FEAT_ALL);
	mb = mig_dev_create(&sparse_ops, b, FEAT_ALL);
	cr_assert(ma && mb);
	mig_dev_set_log(ma, capture, NULL);
	mig_dev_set_log(mb, capture, NULL);
	for (int i = 0; i < 10; i++)
		engine_fill(a, (uint64_t)i * 1531 % (size / PG), (uint8_t)(i + 1));
	memset(a->vram + 300 * PG, 0, PG);     /* written, but zero */
	before = allocated(a);

	cr_assert_eq(set_state(ma, MIG_PRE_COPY), 0);
	read_round(ma, &s, 1 << 20);
	engine_fill(a, 7, 0x77);                /* a hole filled between rounds */
	cr_assert_eq(set_state(ma, MIG_STOP_COPY), 0);
	read_round(ma, &s, 1 << 20);
	cr_assert_leq(allocated(a), before + 2 * (2ull << 20), "the save allocated holes");
	mig_dev_stats(ma, &st);
	cr_assert_eq(st.pages_sent, 11);
	cr_assert_lt(s.len, 12 * PG + 4096);

	cr_assert_eq(load(mb, &s), 0, "%s", logbuf);
	cr_assert_eq(set_state(mb, MIG_RUNNING), 0);
	cr_assert_leq(allocated(b), allocated(a), "the load allocated holes");
	cr_assert(!memcmp(a->vram, b->vram, size));   /* (this allocates both) */
	mig_dev_destroy(ma);
	mig_dev_destroy(mb);
	fake_free(a);
	fake_free(b);
	free(s.p);
}

/* A device with vram_write (a VRAM file) is loaded through it: every VRAM
 * chunk is one write, the pages land bit for bit and the holes stay holes;
 * a write that fails refuses the stream with its error, named. */
static int f_vram_write(void *d, uint64_t off, const void *buf, size_t len)
{
	struct fake *f = d;

	f->writes++;
	if (f->write_rc)
		return f->write_rc;
	cr_assert_leq(off + len, f->size);
	cr_assert_eq(pwrite(f->fd, buf, len, (off_t)off), (ssize_t)len);
	return 0;
}

Test(mig_stream, vram_write_loads_through_the_file)
{
	const uint64_t size = 16ull << 20;
	struct fake *a = fake_new_sparse(size), *b = fake_new_sparse(size);
	struct mig_dev_ops ops = fake_ops;
	struct mig_dev *ma, *mb;
	struct buf s = { 0 };
	struct mig_stats st;

	ops.vram_data = f_data;
	ops.vram_write = f_vram_write;
	ma = mig_dev_create(&ops, a, FEAT_ALL);
	mb = mig_dev_create(&ops, b, FEAT_ALL);
	cr_assert(ma && mb);
	mig_dev_set_log(ma, capture, NULL);
	mig_dev_set_log(mb, capture, NULL);
	for (int i = 0; i < 300; i++)
		engine_fill(a, (uint64_t)i * 7 % (size / PG), (uint8_t)(i | 1));
	cr_assert_eq(set_state(ma, MIG_STOP), 0);
	cr_assert_eq(set_state(ma, MIG_STOP_COPY), 0);
	read_round(ma, &s, 1 << 20);
	mig_dev_stats(ma, &st);
	cr_assert_eq(load(mb, &s), 0, "%s", logbuf);
	cr_assert_eq(set_state(mb, MIG_RUNNING), 0);
	cr_assert_gt(b->writes, 0);
	cr_assert_leq(allocated(b), allocated(a), "the load allocated holes");
	cr_assert(!memcmp(a->vram, b->vram, size));
	mig_dev_destroy(mb);

	/* The same stream into a device whose VRAM cannot be written. */
	b->write_rc = -EIO;
	mb = mig_dev_create(&ops, b, FEAT_ALL);
	cr_assert_not_null(mb);
	mig_dev_set_log(mb, capture, NULL);
	logbuf[0] = 0;
	cr_assert_eq(load(mb, &s), -EIO);
	cr_assert(strstr(logbuf, "could not write VRAM"), "%s", logbuf);
	mig_dev_destroy(ma);
	mig_dev_destroy(mb);
	fake_free(a);
	fake_free(b);
	free(s.p);
}

/* A control-plane thread reading state and stats during a save sees
 * only real states and consistent snapshots. */
static atomic_bool watching;

static void *watch(void *arg)
{
	struct mig_dev *md = arg;
	unsigned long n = 0;

	while (atomic_load(&watching) || n < 1000) {
		struct mig_stats st;
		enum mig_state s = mig_dev_state(md);

		cr_assert(s == MIG_RUNNING || s == MIG_PRE_COPY || s == MIG_STOP_COPY ||
			  s == MIG_STOP || s == MIG_RUNNING_P2P || s == MIG_PRE_COPY_P2P,
			  "state %d", s);
		mig_dev_stats(md, &st);
		cr_assert_leq(st.stop_copy_bytes, st.save_bytes);
		cr_assert_leq(st.pages_sent + st.zero_pages, (uint64_t)st.save_rounds * (SIZE / PG));
		n++;
	}
	return NULL;
}

Test(mig_stream, stats_from_another_thread)
{
	struct fake *a = fake_new("t1", SIZE, 1);
	struct mig_dev *ma = md_new(a, FEAT_ALL);
	struct buf s = { 0 };
	pthread_t t;

	fill_random(a, 5);
	atomic_store(&watching, true);
	cr_assert_eq(pthread_create(&t, NULL, watch, ma), 0);
	for (int i = 0; i < 20; i++) {
		s.len = 0;
		cr_assert_eq(set_state(ma, MIG_PRE_COPY), 0);
		read_round(ma, &s, 3000);
		cr_assert_eq(set_state(ma, MIG_STOP_COPY), 0);
		read_round(ma, &s, 70000);
		cr_assert_eq(set_state(ma, MIG_RUNNING), 0);
	}
	atomic_store(&watching, false);
	pthread_join(t, NULL);
	mig_dev_destroy(ma);
	fake_free(a);
	free(s.p);
}

/* A checkpoint chain link (migrate/chain.c) carries a LINK chunk after
 * HEADER: a plain stream reader refuses it as a chunk it does not know,
 * so a link is never taken for a whole checkpoint. */
Test(mig_stream, a_chain_link_is_refused_as_a_plain_stream)
{
	struct mig_link_cfg cfg = { .prefix = "link", .base = true };
	char dir[] = "/tmp/gpup-link-XXXXXX", path[64], err[256];
	struct mig_link_writer *w;
	struct pair p;
	struct buf s = { 0 };
	uint64_t id;
	FILE *fp;

	pair_new(&p, "t1", SIZE, 0x3);
	cr_assert_not_null(mkdtemp(dir));
	cfg.dir = dir;
	cfg.ident = p.a->id;
	cr_assert_eq(mig_link_begin(&w, &cfg, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(mig_link_pages(w, 0, p.a->vram, SIZE / PG, true), 0);
	cr_assert_eq(mig_link_state(w, p.a->blob, sizeof(p.a->blob)), 0);
	cr_assert_eq(mig_link_commit(w, 1, &id, err, sizeof(err)), 0, "%s", err);
	snprintf(path, sizeof(path), "%s/link.00000000.base", dir);
	fp = fopen(path, "rb");
	cr_assert_not_null(fp);
	s.cap = 2 * SIZE;
	s.p = malloc(s.cap);
	s.len = fread(s.p, 1, s.cap, fp);
	fclose(fp);
	expect_refused(&p, &s, -EBADMSG, "stream refused: chunk 1 at byte 128: unknown chunk kind");
	unlink(path);
	rmdir(dir);
	free(s.p);
	pair_free(&p);
}

/* ---- MIG_DATA_READ as pieces (mig_dev_data_readv) ---- */

/* Read until a short read with readv, `step` bytes and at most max pieces
 * a read, gathering the pieces into b: bytes this round.  *in_vram counts
 * pieces that lay inside f's VRAM (sent in place). */
static size_t readv_round(struct mig_dev *md, const struct fake *f, struct buf *b,
			  uint32_t step, unsigned int max, unsigned int *in_vram)
{
	size_t start = b->len;
	struct iovec iov[64];
	unsigned int n;
	int got;

	cr_assert_leq(max, 64);
	do {
		size_t sum = 0;

		if (b->cap < b->len + step) {
			b->cap = (b->len + step) * 2;
			b->p = realloc(b->p, b->cap);
		}
		got = mig_dev_data_readv(md, step, iov, max, &n);
		cr_assert_geq(got, 0, "readv: %d", got);
		cr_assert_leq((uint32_t)got, step);
		cr_assert_leq(n, max);
		for (unsigned int i = 0; i < n; i++) {
			const uint8_t *p = iov[i].iov_base;

			cr_assert_gt(iov[i].iov_len, 0, "an empty piece");
			if (p >= f->vram && p < f->vram + f->size) {
				cr_assert_leq(p + iov[i].iov_len, f->vram + f->size);
				(*in_vram)++;
			}
			memcpy(b->p + b->len + sum, p, iov[i].iov_len);
			sum += iov[i].iov_len;
		}
		cr_assert_eq(sum, (size_t)got, "the pieces hold %zu bytes of %d", sum, got);
		b->len += sum;
	} while ((uint32_t)got == step);
	return b->len - start;
}

#define BIG (1024 * PG)

/* STOP_COPY: the pieces, VRAM chunks in place among them, add up to the
 * very bytes the copying read gives for the same reads; with fewer pieces
 * allowed more is copied, never anything else.  The stream loads. */
Test(mig_stream, readv_stop_copy_same_bytes_as_read)
{
	static const struct { uint32_t step; unsigned int max; bool in_place; } c[] = {
		{ 1u << 20, 64, true }, { 1u << 20, 3, true }, { 65536, 5, true },
		{ 1u << 20, 2, false }, { 1u << 20, 1, false }, { 4103, 64, false },
		{ 777, 64, false },
	};
	struct fake *a = fake_new("t1", BIG, 1), *v = fake_new("t1", BIG, 1);
	struct fake *b = fake_new("t1", BIG, 1);
	struct mig_dev *ma = md_new(a, FEAT_ALL), *mv = md_new(v, FEAT_ALL);
	struct mig_dev *mb = md_new(b, FEAT_ALL);

	fill_random(a, 9);
	fill_random(v, 9);
	for (size_t i = 0; i < sizeof(c) / sizeof(c[0]); i++) {
		struct buf s = { 0 }, t = { 0 };
		unsigned int in_vram = 0;

		save_stopped(ma, &s, c[i].step);
		cr_assert_eq(set_state(mv, MIG_STOP_COPY), 0);
		readv_round(mv, v, &t, c[i].step, c[i].max, &in_vram);
		cr_assert_eq(set_state(mv, MIG_RUNNING), 0);
		cr_assert_eq(t.len, s.len, "step %u max %u: %zu bytes, the read gave %zu",
			     c[i].step, c[i].max, t.len, s.len);
		cr_assert(!memcmp(t.p, s.p, s.len), "step %u max %u: the bytes differ", c[i].step,
			  c[i].max);
		cr_assert_eq(in_vram > 0, c[i].in_place, "step %u max %u: %u pieces in VRAM",
			     c[i].step, c[i].max, in_vram);
		cr_assert_eq(load(mb, &t), 0, "%s", logbuf);
		cr_assert_eq(set_state(mb, MIG_RUNNING), 0);
		expect_same(v, b);
		mig_dev_device_reset(mb);
		free(s.p);
		free(t.p);
	}
	mig_dev_destroy(ma);
	mig_dev_destroy(mv);
	mig_dev_destroy(mb);
	fake_free(a);
	fake_free(v);
	fake_free(b);
}

/* PRE_COPY: engines may write, so no piece is VRAM itself; the final walk
 * in STOP_COPY sends in place.  A chunk left half read is dropped with the
 * session (a reset), and the next session starts from chunk 0. */
Test(mig_stream, readv_precopy_copies_and_reset_drops_half_a_chunk)
{
	struct fake *a = fake_new("t1", BIG, 1), *b = fake_new("t1", BIG, 1);
	struct mig_dev *ma = md_new(a, FEAT_ALL), *mb = md_new(b, FEAT_ALL);
	struct buf s = { 0 };
	struct iovec iov[4];
	unsigned int in_vram = 0, n = 7;

	fill_random(a, 4);
	cr_assert_eq(mig_dev_data_readv(ma, 4096, iov, 4, &n), -EINVAL, "RUNNING");
	cr_assert_eq(n, 0);
	cr_assert_eq(set_state(ma, MIG_PRE_COPY), 0);
	cr_assert_eq(mig_dev_data_readv(ma, 4096, iov, 0, &n), -EINVAL, "no room for a piece");
	readv_round(ma, a, &s, 1u << 20, 64, &in_vram);
	cr_assert_eq(in_vram, 0, "a piece of PRE_COPY pointed into VRAM");
	engine_fill(a, 7, 0x77);
	engine_fill(a, 900, 0x90);
	cr_assert_eq(set_state(ma, MIG_STOP_COPY), 0);
	readv_round(ma, a, &s, 1u << 20, 64, &in_vram);
	cr_assert_eq(in_vram, 2, "the two dirtied pages go in place");
	cr_assert_eq(load(mb, &s), 0, "%s", logbuf);
	cr_assert_eq(set_state(mb, MIG_RUNNING), 0);
	expect_same(a, b);

	/* Half a chunk read, then a reset: the next stream is whole. */
	cr_assert_eq(set_state(ma, MIG_RUNNING), 0);
	cr_assert_eq(set_state(ma, MIG_STOP_COPY), 0);
	cr_assert_eq(mig_dev_data_readv(ma, 200, iov, 4, &n), 200);
	mig_dev_device_reset(ma);
	fill_random(a, 5);
	mig_dev_device_reset(mb);
	s.len = 0;
	save_stopped(ma, &s, 70000);
	cr_assert_eq(load(mb, &s), 0, "%s", logbuf);
	cr_assert_eq(set_state(mb, MIG_RUNNING), 0);
	expect_same(a, b);
	mig_dev_destroy(ma);
	mig_dev_destroy(mb);
	fake_free(a);
	fake_free(b);
	free(s.p);
}

/* Read-ahead: after each full read the next chunk's hash is taken ahead;
 * reads of the size expected, or of another, give the same bytes as the
 * copying read.  A session dropped (a state change, a reset) forgets it. */
static size_t readv_ahead_round(struct mig_dev *md, const struct fake *f, struct buf *b,
				const uint32_t *steps, size_t nsteps, uint32_t ahead)
{
	size_t start = b->len, k = 0;
	unsigned int in_vram = 0, ni;
	struct iovec iov[64];
	uint32_t step;
	int got;

	do {
		step = steps[k++ % nsteps];
		got = mig_dev_data_readv(md, step, iov, 64, &ni);
		cr_assert_geq(got, 0);
		if (b->cap < b->len + (size_t)got) {
			b->cap = (b->len + (size_t)got) * 2 + 1;
			b->p = realloc(b->p, b->cap);
		}
		for (unsigned int i = 0; i < ni; i++) {
			const uint8_t *p = iov[i].iov_base;

			memcpy(b->p + b->len, p, iov[i].iov_len);
			b->len += iov[i].iov_len;
			in_vram += p >= f->vram && p < f->vram + f->size;
		}
		if ((uint32_t)got == step)
			mig_dev_data_ahead(md, ahead, NULL, NULL);
	} while ((uint32_t)got == step);
	cr_assert_gt(in_vram, 0, "nothing was sent in place");
	return b->len - start;
}

/* Every page data, no zero page: reads of 1 MiB carry one long VRAM chunk
 * each. */
static void fill_dense(struct fake *f, unsigned int seed)
{
	for (uint64_t pg = 0; pg < f->size / PG; pg++)
		memset(f->vram + pg * PG, (int)((pg * 7 + seed) | 1), PG);
}

/* The copying read with the same sizes. */
static void read_steps(struct mig_dev *md, struct buf *b, const uint32_t *steps, size_t nsteps)
{
	size_t k = 0;
	int n;

	do {
		uint32_t step = steps[k++ % nsteps];

		if (b->cap < b->len + step) {
			b->cap = (b->len + step) * 2;
			b->p = realloc(b->p, b->cap);
		}
		n = mig_dev_data_read(md, b->p + b->len, step);
		cr_assert_geq(n, 0);
		b->len += (size_t)n;
	} while ((uint32_t)n == steps[(k - 1) % nsteps]);
}

Test(mig_stream, readv_ahead_same_bytes_and_forgotten_with_the_session)
{
	static const uint32_t same[] = { 1u << 20 }, mixed[] = { 1u << 20, 65536, 300000 };
	struct fake *a = fake_new("t1", BIG, 1), *v = fake_new("t1", BIG, 1);
	struct fake *b = fake_new("t1", BIG, 1);
	struct mig_dev *ma = md_new(a, FEAT_ALL), *mv = md_new(v, FEAT_ALL);
	struct mig_dev *mb = md_new(b, FEAT_ALL);
	const struct { const uint32_t *steps; size_t n; } c[] = { { same, 1 }, { mixed, 3 } };

	for (size_t i = 0; i < 2; i++) {
		struct buf s = { 0 }, t = { 0 };

		/* Dense: each read's long chunk is the one hashed ahead. */
		if (i == 0) {
			fill_dense(a, 20);
			fill_dense(v, 20);
		} else {
			fill_random(a, 21);
			fill_random(v, 21);
		}
		cr_assert_eq(set_state(ma, MIG_STOP_COPY), 0);
		read_steps(ma, &s, c[i].steps, c[i].n);
		cr_assert_eq(set_state(ma, MIG_RUNNING), 0);
		cr_assert_eq(set_state(mv, MIG_STOP_COPY), 0);
		readv_ahead_round(mv, v, &t, c[i].steps, c[i].n, 1u << 20);
		cr_assert_eq(set_state(mv, MIG_RUNNING), 0);
		cr_assert_eq(t.len, s.len, "case %zu", i);
		cr_assert(!memcmp(t.p, s.p, s.len), "case %zu: the bytes differ", i);
		cr_assert_eq(load(mb, &t), 0, "%s", logbuf);
		cr_assert_eq(set_state(mb, MIG_RUNNING), 0);
		expect_same(v, b);
		mig_dev_device_reset(mb);
		free(s.p);
		free(t.p);
	}

	/* Hashed ahead, then the session dropped (to RUNNING, or a reset)
	 * and VRAM changed: the next stream hashes what it sends. */
	for (int how = 0; how < 2; how++) {
		struct iovec iov[64];
		unsigned int ni;
		struct buf t = { 0 };

		fill_random(v, 30);
		cr_assert_eq(set_state(mv, MIG_STOP_COPY), 0);
		cr_assert_eq(mig_dev_data_readv(mv, 1u << 20, iov, 64, &ni), 1 << 20);
		mig_dev_data_ahead(mv, 1u << 20, NULL, NULL);
		if (how)
			mig_dev_device_reset(mv);
		else
			cr_assert_eq(set_state(mv, MIG_RUNNING), 0);
		fill_random(v, 31 + (unsigned int)how);
		cr_assert_eq(set_state(mv, MIG_STOP_COPY), 0);
		readv_ahead_round(mv, v, &t, same, 1, 1u << 20);
		cr_assert_eq(set_state(mv, MIG_RUNNING), 0);
		cr_assert_eq(load(mb, &t), 0, "%s: %s", how ? "reset" : "RUNNING", logbuf);
		cr_assert_eq(set_state(mb, MIG_RUNNING), 0);
		expect_same(v, b);
		mig_dev_device_reset(mb);
		free(t.p);
	}

	/* The hash is taken ahead: a page changed behind the quiesced
	 * device's back after it (as a VMM whose vCPUs still store through
	 * BAR2 would) is caught by the destination's checksum. */
	{
		struct iovec iov[64];
		unsigned int ni;
		struct buf t = { 0 };

		fill_dense(v, 40);
		cr_assert_eq(set_state(mv, MIG_STOP_COPY), 0);
		cr_assert_eq(mig_dev_data_readv(mv, 1u << 20, iov, 64, &ni), 1 << 20);
		for (unsigned int i = 0; i < ni; i++) {
			t.p = realloc(t.p, t.len + iov[i].iov_len);
			memcpy(t.p + t.len, iov[i].iov_base, iov[i].iov_len);
			t.len += iov[i].iov_len;
		}
		mig_dev_data_ahead(mv, 1u << 20, NULL, NULL);
		v->vram[300 * PG + 17] ^= 1;
		readv_ahead_round(mv, v, &t, same, 1, 1u << 20);
		cr_assert_eq(set_state(mv, MIG_RUNNING), 0);
		cr_assert_eq(load(mb, &t), -EBADMSG);
		cr_assert(strstr(logbuf, "payload checksum mismatch"), "%s", logbuf);
		mig_dev_device_reset(mb);
		free(t.p);
	}
	mig_dev_destroy(ma);
	mig_dev_destroy(mv);
	mig_dev_destroy(mb);
	fake_free(a);
	fake_free(v);
	fake_free(b);
}

/* PRE_COPY with each next reply built ahead (mig_dev_data_ahead after a
 * full read, as the server does): the pieces of a reply are gathered only
 * after the next one was built, so one buffer overwritten under the last
 * reply shows as a wrong stream.  Reads of the size built ahead give the
 * very bytes of plain reads; reads of other sizes, engine writes between
 * reads and a STOP_COPY in the middle of a round still load bit for bit. */
static size_t readv_prep_round(struct mig_dev *md, struct buf *b, const uint32_t *steps,
			       size_t nsteps, uint32_t ahead, struct fake *f)
{
	size_t start = b->len, k = 0;
	struct iovec iov[64];
	unsigned int ni;
	uint32_t step;
	int got;

	do {
		step = steps[k++ % nsteps];
		got = mig_dev_data_readv(md, step, iov, 64, &ni);
		cr_assert_geq(got, 0);
		if ((uint32_t)got == step)
			mig_dev_data_ahead(md, ahead, NULL, NULL);
		if (f && k % 3 == 0)
			engine_fill(f, k % (f->size / PG), (uint8_t)k);
		if (b->cap < b->len + (size_t)got) {
			b->cap = (b->len + (size_t)got) * 2 + 1;
			b->p = realloc(b->p, b->cap);
		}
		for (unsigned int i = 0; i < ni; i++) {
			memcpy(b->p + b->len, iov[i].iov_base, iov[i].iov_len);
			b->len += iov[i].iov_len;
		}
	} while ((uint32_t)got == step);
	return b->len - start;
}

Test(mig_stream, readv_precopy_built_ahead_same_bytes)
{
	static const uint32_t step[] = { 65536 };
	struct fake *a = fake_new("t1", BIG, 1), *b = fake_new("t1", BIG, 1);
	struct mig_dev *ma = md_new(a, FEAT_ALL), *mb = md_new(b, FEAT_ALL);
	struct buf s = { 0 }, t = { 0 };

	fill_random(a, 4);
	cr_assert_eq(set_state(ma, MIG_PRE_COPY), 0);
	read_round(ma, &t, 65536);
	cr_assert_eq(set_state(ma, MIG_RUNNING), 0);
	cr_assert_eq(set_state(ma, MIG_PRE_COPY), 0);
	readv_prep_round(ma, &s, step, 1, 65536, NULL);
	cr_assert_eq(s.len, t.len);
	cr_assert(!memcmp(s.p, t.p, s.len), "built ahead, the round differs from plain reads");
	cr_assert_eq(set_state(ma, MIG_STOP_COPY), 0);
	readv_round(ma, a, &s, 65536, 64, &(unsigned int){ 0 });
	cr_assert_eq(load(mb, &s), 0, "%s", logbuf);
	cr_assert_eq(set_state(mb, MIG_RUNNING), 0);
	expect_same(a, b);
	mig_dev_destroy(ma);
	mig_dev_destroy(mb);
	fake_free(a);
	fake_free(b);
	free(s.p);
	free(t.p);
}

/* The server's pump (feeding the socket the last reply's end) is called
 * between the chunks of a reply built ahead, VRAM chunks then being at
 * most MIG_PUMP_PAGES pages, and the stream is still whole. */
static unsigned int pumps;

static void count_pump(void *arg)
{
	cr_assert_eq(arg, &pumps);
	pumps++;
}

Test(mig_stream, readv_precopy_built_ahead_with_a_pump)
{
	const uint32_t step = 1u << 20;
	struct fake *a = fake_new("t1", BIG, 1), *b = fake_new("t1", BIG, 1);
	struct mig_dev *ma = md_new(a, FEAT_ALL), *mb = md_new(b, FEAT_ALL);
	struct buf s = { 0 };
	unsigned int full = 0, ni;
	struct iovec iov[64];
	int got;

	fill_dense(a, 5);
	cr_assert_eq(set_state(ma, MIG_PRE_COPY), 0);
	do {
		got = mig_dev_data_readv(ma, step, iov, 64, &ni);
		cr_assert_geq(got, 0);
		if ((uint32_t)got == step) {
			mig_dev_data_ahead(ma, step, count_pump, &pumps);
			full++;
		}
		if (s.cap < s.len + (size_t)got) {
			s.cap = (s.len + (size_t)got) * 2 + 1;
			s.p = realloc(s.p, s.cap);
		}
		for (unsigned int i = 0; i < ni; i++) {
			memcpy(s.p + s.len, iov[i].iov_base, iov[i].iov_len);
			s.len += iov[i].iov_len;
		}
	} while ((uint32_t)got == step);
	/* Pages of data only: each MiB built ahead but the round's last is
	 * chunks of at most MIG_PUMP_PAGES pages, a pump before each. */
	cr_assert_geq(full, BIG / step - 1);
	cr_assert_geq(pumps, (full - 1) * (step / (MIG_PUMP_PAGES * PG)), "%u pumps", pumps);
	cr_assert_eq(set_state(ma, MIG_STOP_COPY), 0);
	readv_round(ma, a, &s, 65536, 64, &(unsigned int){ 0 });
	cr_assert_eq(load(mb, &s), 0, "%s", logbuf);
	cr_assert_eq(set_state(mb, MIG_RUNNING), 0);
	expect_same(a, b);
	mig_dev_destroy(ma);
	mig_dev_destroy(mb);
	fake_free(a);
	fake_free(b);
	free(s.p);
}

Test(mig_stream, readv_precopy_built_ahead_other_sizes_and_a_stop_midway)
{
	static const uint32_t steps[] = { 65536, 4096, 200000, 777, 1u << 20 };
	struct fake *a = fake_new("t1", BIG, 1), *b = fake_new("t1", BIG, 1);
	struct mig_dev *ma = md_new(a, FEAT_ALL), *mb = md_new(b, FEAT_ALL);
	struct buf s = { 0 };
	struct iovec iov[64];
	unsigned int ni;

	fill_random(a, 5);
	cr_assert_eq(set_state(ma, MIG_PRE_COPY), 0);
	/* A round read in sizes other than the one built ahead, with engine
	 * writes between the reads; then a second round. */
	readv_prep_round(ma, &s, steps, 5, 300000, a);
	readv_prep_round(ma, &s, steps + 1, 4, 65536, a);
	/* A third round broken off: two full reads, the next built ahead,
	 * then STOP_COPY, which must send the built bytes first. */
	engine_fill(a, 3, 0x33);
	engine_fill(a, 700, 0x77);
	for (int i = 0; i < 2; i++) {
		int got = mig_dev_data_readv(ma, 4096, iov, 64, &ni);

		cr_assert_eq(got, 4096);
		mig_dev_data_ahead(ma, 8192, NULL, NULL);
		for (unsigned int k = 0; k < ni; k++) {
			if (s.cap < s.len + iov[k].iov_len) {
				s.cap = (s.len + iov[k].iov_len) * 2;
				s.p = realloc(s.p, s.cap);
			}
			memcpy(s.p + s.len, iov[k].iov_base, iov[k].iov_len);
			s.len += iov[k].iov_len;
		}
	}
	a->blob[2] = 0x1234;
	cr_assert_eq(set_state(ma, MIG_STOP_COPY), 0);
	readv_round(ma, a, &s, 100000, 64, &(unsigned int){ 0 });
	cr_assert_eq(load(mb, &s), 0, "%s", logbuf);
	cr_assert_eq(set_state(mb, MIG_RUNNING), 0);
	expect_same(a, b);
	mig_dev_destroy(ma);
	mig_dev_destroy(mb);
	fake_free(a);
	fake_free(b);
	free(s.p);
}

/* A write holding whole payloads has them checked and used where they lie
 * (no gathering copy); at an address their structs cannot be read at, or
 * split, they are gathered.  Either way the same VRAM, and a flipped
 * payload byte is refused. */
Test(mig_stream, whole_payloads_in_place_or_gathered)
{
	struct fake *a = fake_new("t1", BIG, 1), *b = fake_new("t1", BIG, 1);
	struct mig_dev *ma = md_new(a, FEAT_ALL), *mb = md_new(b, FEAT_ALL);
	struct buf s = { 0 };
	uint8_t *mem;

	fill_random(a, 11);
	save_stopped(ma, &s, 1u << 20);
	mem = malloc(s.len + 16);
	for (int off = 0; off <= 1; off++)
		for (int flip = 0; flip <= 1; flip++) {
			int rc;

			memcpy(mem + off, s.p, s.len);
			if (flip)
				mem[off + s.len / 2] ^= 0x40;
			memset(b->vram, 0xee, b->size);
			cr_assert_eq(set_state(mb, MIG_RESUMING), 0);
			rc = mig_dev_data_write(mb, mem + off, (uint32_t)s.len);
			if (!rc)
				rc = set_state(mb, MIG_STOP);
			if (flip) {
				cr_assert_eq(rc, -EBADMSG, "offset %d: a flipped byte loaded (%d)", off,
					     rc);
				cr_assert(strstr(logbuf, "checksum"), "%s", logbuf);
				mig_dev_device_reset(mb);
				continue;
			}
			cr_assert_eq(rc, 0, "offset %d: %s", off, logbuf);
			cr_assert_eq(set_state(mb, MIG_RUNNING), 0);
			expect_same(a, b);
		}
	free(mem);
	mig_dev_destroy(ma);
	mig_dev_destroy(mb);
	fake_free(a);
	fake_free(b);
	free(s.p);
}

/* A read that wants more than the bytes built ahead, with room for one
 * piece only: the rest is built right after them, one piece in all. */
Test(mig_stream, readv_after_built_ahead_fits_one_piece)
{
	struct fake *a = fake_new("t1", BIG, 1), *b = fake_new("t1", BIG, 1);
	struct mig_dev *ma = md_new(a, FEAT_ALL), *mb = md_new(b, FEAT_ALL);
	struct buf s = { 0 };
	struct iovec iov[1];
	unsigned int ni;
	int got;

	fill_random(a, 13);
	cr_assert_eq(set_state(ma, MIG_PRE_COPY), 0);
	s.cap = 4 * BIG;
	s.p = malloc(s.cap);
	got = mig_dev_data_readv(ma, 4096, iov, 1, &ni);
	cr_assert_eq(got, 4096);
	cr_assert_eq(ni, 1);
	memcpy(s.p, iov[0].iov_base, 4096);
	s.len = 4096;
	mig_dev_data_ahead(ma, 4096, NULL, NULL);
	do {
		got = mig_dev_data_readv(ma, 65536, iov, 1, &ni);
		cr_assert_geq(got, 0);
		cr_assert_leq(ni, 1, "%u pieces where there was room for one", ni);
		cr_assert(!got || iov[0].iov_len == (size_t)got);
		if (got) {
			memcpy(s.p + s.len, iov[0].iov_base, (size_t)got);
			s.len += (size_t)got;
		}
	} while (got == 65536);
	cr_assert_eq(set_state(ma, MIG_STOP_COPY), 0);
	readv_round(ma, a, &s, 100000, 64, &(unsigned int){ 0 });
	cr_assert_eq(load(mb, &s), 0, "%s", logbuf);
	cr_assert_eq(set_state(mb, MIG_RUNNING), 0);
	expect_same(a, b);
	mig_dev_destroy(ma);
	mig_dev_destroy(mb);
	fake_free(a);
	fake_free(b);
	free(s.p);
}
