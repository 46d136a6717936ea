/* SPDX-License-Identifier: MIT */
/*
 * save.c: the stream a source produces, one chunk at a time as the client
 * reads.
 *
 * DOC: rounds
 *
 * A session starts with every page pending.  Reads walk VRAM in page
 * order, sending each pending page once: runs of zero pages as one ZERO
 * chunk, others as VRAM chunks of up to GPUP_MIG_MAX_VRAM_PAGES pages.
 * In PRE_COPY the device runs and tracks what its engines write; when a
 * walk reaches the end the round is over and the read returns short.  The
 * next read harvests the pages written meanwhile and walks them (a new
 * round), or returns 0 if there are none.  Entering STOP_COPY harvests
 * what is left after the quiesce; the final walk sends it, then STATE and
 * END, and the stream ends.  A page read while an engine writes it may be
 * torn; the write marks it, so a later round or the final walk sends it
 * again.
 *
 * DOC: pieces
 *
 * mig_save_read copies every chunk into the reader's buffer.
 * mig_save_readv makes the same chunks for the same reads, but in
 * STOP_COPY (the device quiesced) leaves a VRAM chunk's pages where they
 * are: its head goes to md's area, its hash is taken of VRAM, and the
 * reply is sent from pieces of both.  mig_save_ahead hashes, after a
 * reply went out, the VRAM chunk the next read would start with, and
 * emit_vram_ref takes that hash if the chunk it makes is that one.
 */
#include <assert.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <zstd.h>

#include "migrate/mig_int.h"

#define HEAD sizeof(struct gpup_mig_chunk)
/* A ZERO chunk covers at most this many pages (64 MiB), which bounds the
 * VRAM one chunk scans. */
#define ZERO_RUN_MAX (1u << 14)

int mig_save_init(struct mig_dev *md)
{
	struct mig_save *s = &md->save;
	uint64_t words = (md->npages + 63) / 64;

	s->buf = malloc(HEAD + GPUP_MIG_MAX_PAYLOAD);
	s->pending = calloc(words ? words : 1, sizeof(uint64_t));
	s->written = calloc(words ? words : 1, sizeof(uint64_t));
	s->npages = md->npages;
	return s->buf && s->pending && s->written ? 0 : -ENOMEM;
}

void mig_save_free(struct mig_dev *md)
{
	free(md->save.area);
	free(md->save.spare);
	free(md->save.buf);
	free(md->save.pending);
	free(md->save.written);
}

static void pending_all(struct mig_save *s)
{
	uint64_t words = (s->npages + 63) / 64;

	memset(s->pending, 0xff, words * sizeof(uint64_t));
	if (s->npages % 64)
		s->pending[words - 1] = (1ull << (s->npages % 64)) - 1;
}

void mig_save_begin(struct mig_dev *md, bool live)
{
	struct mig_save *s = &md->save;

	s->len = s->pos = 0;
	s->cursor = 0;
	s->ext_from = s->ext_data = s->ext_end = 0;
	s->seq = 0;
	s->header_sent = s->state_sent = s->end_sent = s->counted = false;
	s->round_open = true;
	s->final = !live;    /* STOP -> STOP_COPY: one walk */
	s->ahead_pages = 0;
	s->prep_len = s->prep_pos = 0;
	s->prep_short = false;
	memset(&s->totals, 0, sizeof(s->totals));
	memset(s->written, 0, (s->npages + 63) / 64 * sizeof(uint64_t));
	pending_all(s);
	MIG_STATS(md, {
		md->st.save_bytes = md->st.pages_sent = md->st.zero_pages = 0;
		md->st.dirty_pages = md->st.stop_copy_bytes = 0;
		md->st.save_rounds = 1;
	});
}

/* Harvest into pending; how many pages were newly dirtied. */
static uint64_t harvest(struct mig_dev *md)
{
	struct mig_save *s = &md->save;
	uint64_t words = (s->npages + 63) / 64, n = 0;
	uint64_t *bm;

	if (!md->tracking)
		return 0;
	bm = calloc(words ? words : 1, sizeof(uint64_t));
	if (!bm) {
		/* No room to harvest into: send everything again. */
		pending_all(s);
		return s->npages;
	}
	md->ops->vram_harvest(md->dev, bm);
	for (uint64_t w = 0; w < words; w++) {
		n += (uint64_t)__builtin_popcountll(bm[w] & ~s->pending[w]);
		s->pending[w] |= bm[w];
		s->written[w] |= bm[w];
	}
	free(bm);
	return n;
}

void mig_save_finalize(struct mig_dev *md)
{
	struct mig_save *s = &md->save;
	uint64_t n = harvest(md);

	md->ops->vram_track(md->dev, false);
	md->tracking = false;
	s->final = true;
	s->ahead_pages = 0;
	s->prep_short = false;      /* a round's end is no longer the stream's */
	s->cursor = 0;
	s->ext_from = s->ext_data = s->ext_end = 0;
	s->round_open = true;
	MIG_STATS(md, {
		md->st.dirty_pages += n;
		md->st.save_rounds++;
	});
}

/* The next pending page at or after from, or npages. */
static uint64_t next_pending(const struct mig_save *s, uint64_t from)
{
	uint64_t words = (s->npages + 63) / 64;

	for (uint64_t w = from / 64; w < words; w++) {
		uint64_t bits = s->pending[w];

		if (w == from / 64)
			bits &= ~0ull << (from % 64);
		if (bits)
			return w * 64 + (uint64_t)__builtin_ctzll(bits);
	}
	return s->npages;
}

static bool is_pending(const struct mig_save *s, uint64_t p)
{
	return p < s->npages && (s->pending[p / 64] >> (p % 64) & 1);
}

/* Whether page p lies in a hole of VRAM: zero, and never to be read. */
static bool in_hole(struct mig_dev *md, uint64_t p)
{
	struct mig_save *s = &md->save;
	uint64_t off = p * MIG_PAGE_SIZE;

	/* A page the device wrote holds data: asking the file where its
	 * holes are would walk all the data after it (27 ms for a full
	 * 4 GiB file here), inside the pause when the device is stopped. */
	if (!md->ops->vram_data || (s->written[p / 64] >> (p % 64) & 1))
		return false;
	if (off < s->ext_from || off >= s->ext_end) {
		s->ext_from = off;
		s->ext_data = md->ops->vram_data(md->dev, off, &s->ext_end);
		if (s->ext_data >= md->vram_size || s->ext_end > md->vram_size ||
		    s->ext_end <= s->ext_data)
			s->ext_end = md->vram_size;
	}
	return off + MIG_PAGE_SIZE <= s->ext_data;
}

static bool page_zero(struct mig_dev *md, uint64_t p)
{
	return in_hole(md, p) || mig_all_zero(md->vram + p * MIG_PAGE_SIZE, MIG_PAGE_SIZE);
}

/* Pages from p on that are pending and zero (or not), up to max. */
static uint64_t run_len(struct mig_dev *md, uint64_t p, bool zero, uint64_t max)
{
	uint64_t n = 1;

	while (n < max && is_pending(&md->save, p + n) && page_zero(md, p + n) == zero)
		n++;
	return n;
}

static void clear_pending(struct mig_save *s, uint64_t p, uint64_t n)
{
	for (uint64_t i = p; i < p + n; i++)
		s->pending[i / 64] &= ~(1ull << (i % 64));
}

/* Seal the chunk at base whose payload (plen bytes) is already written
 * after its head; its length.  base may be unaligned (a reply buffer). */
static size_t emit_hashed(struct mig_dev *md, uint8_t *base, unsigned int kind,
			  unsigned int flags, uint32_t plen, uint64_t hash)
{
	struct mig_save *s = &md->save;
	struct gpup_mig_chunk h;

	mig_chunk_seal(&h, kind, flags, plen, s->seq++, hash);
	memcpy(base, &h, HEAD);
	s->totals.chunks++;
	s->totals.bytes += HEAD + plen;
	return HEAD + plen;
}

static size_t emit(struct mig_dev *md, uint8_t *base, unsigned int kind, unsigned int flags,
		   uint32_t plen)
{
	return emit_hashed(md, base, kind, flags, plen, mig_hash(base + HEAD, plen));
}

static size_t emit_header(struct mig_dev *md, uint8_t *base)
{
	struct gpup_mig_header h = { 0 };
	struct mig_ident id = { 0 };

	md->ops->ident(md->dev, &id);
	h.magic = GPUP_MIG_MAGIC;
	h.version = GPUP_MIG_VERSION;
	h.page_size = MIG_PAGE_SIZE;
	h.vram_size = md->vram_size;
	h.features = id.features;
	memcpy(h.model, id.model, sizeof(h.model));
	memcpy(h.type, id.type, sizeof(h.type));
	memcpy(base + HEAD, &h, sizeof(h));
	md->save.header_sent = true;
	return emit(md, base, GPUP_MIG_HEADER, 0, sizeof(h));
}

static size_t emit_zero(struct mig_dev *md, uint8_t *base, uint64_t p, uint64_t n)
{
	struct gpup_mig_zero z = { p * MIG_PAGE_SIZE, n };

	memcpy(base + HEAD, &z, sizeof(z));
	md->save.totals.zero_pages += n;
	MIG_STATS(md, md->st.zero_pages += n);
	return emit(md, base, GPUP_MIG_ZERO, 0, sizeof(z));
}

/* A VRAM chunk left in place (mig_save_readv, the device quiesced): its
 * head and the 16 bytes after it at base, the pages hashed where they
 * lie and handed out as s->ref. */
static uint64_t vram_hash(struct mig_dev *md, const struct gpup_mig_vram *v)
{
	return mig_hash2(v, sizeof(*v), md->vram + v->offset, (size_t)v->pages * MIG_PAGE_SIZE);
}

static size_t emit_vram_ref(struct mig_dev *md, uint8_t *base, const struct gpup_mig_vram *v)
{
	struct mig_save *s = &md->save;
	struct gpup_mig_chunk h;
	size_t bytes = (size_t)v->pages * MIG_PAGE_SIZE;
	bool ahead = s->ahead_pages == v->pages && s->ahead_off == v->offset;

	memcpy(base + HEAD, v, sizeof(*v));
	mig_chunk_seal(&h, GPUP_MIG_VRAM, 0, (uint32_t)(sizeof(*v) + bytes), s->seq++,
		       ahead ? s->ahead_hash : vram_hash(md, v));
	s->ahead_pages = 0;
	memcpy(base, &h, HEAD);
	s->ref = md->vram + v->offset;
	s->ref_len = bytes;
	s->totals.vram_pages += v->pages;
	s->totals.chunks++;
	s->totals.bytes += HEAD + sizeof(*v) + bytes;
	MIG_STATS(md, md->st.pages_sent += v->pages);
	return HEAD + sizeof(*v) + bytes;
}

/* The pages are copied (or compressed) once, straight to base, and the
 * hash is taken of what was written there: a page an engine changes
 * meanwhile (PRE_COPY) is sent as read, consistently, and again later.
 * A raw copy is hashed as it is made (mig_hash_copy), one read of VRAM. */
static size_t emit_vram(struct mig_dev *md, uint8_t *base, uint64_t p, uint64_t n)
{
	struct gpup_mig_vram v = { p * MIG_PAGE_SIZE, (uint32_t)n, 0 };
	uint8_t *data = base + HEAD + sizeof(v);
	size_t bytes = n * MIG_PAGE_SIZE, zlen = 0;

	if (md->save.by_ref && !md->zlevel)
		return emit_vram_ref(md, base, &v);
	md->save.ahead_pages = 0;
	memcpy(base + HEAD, &v, sizeof(v));
	if (md->zlevel > 0) {
		/* Room for less than the raw pages: only a frame that shrinks. */
		zlen = ZSTD_compressCCtx(md->zctx, data, bytes - 1, md->vram + v.offset, bytes,
					 md->zlevel);
		if (ZSTD_isError(zlen))
			zlen = 0;
	}
	md->save.totals.vram_pages += n;
	MIG_STATS(md, md->st.pages_sent += n);
	if (zlen)
		return emit(md, base, GPUP_MIG_VRAM, GPUP_MIG_CF_ZSTD, (uint32_t)(sizeof(v) + zlen));
	return emit_hashed(md, base, GPUP_MIG_VRAM, 0, (uint32_t)(sizeof(v) + bytes),
			   mig_hash_copy(base + HEAD, sizeof(v), md->vram + v.offset, bytes));
}

#define ZERO_CHUNK (HEAD + sizeof(struct gpup_mig_zero))
#define VRAM_CHUNK(n) (HEAD + sizeof(struct gpup_mig_vram) + (n) * MIG_PAGE_SIZE)

/* The next run of pending pages into base (cap bytes): its length, 0 if
 * it does not fit (nothing is taken), *done when the walk is over. */
static size_t emit_pages(struct mig_dev *md, uint8_t *base, size_t cap, bool *done)
{
	struct mig_save *s = &md->save;
	uint64_t p = next_pending(s, s->cursor), n, max;
	bool zero;

	*done = p >= s->npages;
	if (*done) {
		s->cursor = s->npages;
		return 0;
	}
	zero = page_zero(md, p);
	max = cap < VRAM_CHUNK(1) ? 0 : (cap - VRAM_CHUNK(0)) / MIG_PAGE_SIZE;
	if (zero ? cap < ZERO_CHUNK : !max)
		return 0;
	if (!zero && max > (s->pump ? MIG_PUMP_PAGES : GPUP_MIG_MAX_VRAM_PAGES))
		max = s->pump ? MIG_PUMP_PAGES : GPUP_MIG_MAX_VRAM_PAGES;
	n = run_len(md, p, zero, zero ? ZERO_RUN_MAX : max);
	clear_pending(s, p, n);
	s->cursor = p + n;
	return zero ? emit_zero(md, base, p, n) : emit_vram(md, base, p, n);
}

/* STATE always goes through the staging buffer: its size is the device's. */
static int emit_state(struct mig_dev *md)
{
	int n = md->ops->state_save(md->dev, md->save.buf + HEAD, GPUP_MIG_MAX_STATE);

	if (n < 0 || n > (int)GPUP_MIG_MAX_STATE) {
		mig_fail(md, "saving: the device could not save its state (%d)", n);
		return n < 0 ? n : -EIO;
	}
	md->save.state_sent = true;
	return (int)emit(md, md->save.buf, GPUP_MIG_STATE, 0, (uint32_t)n);
}

static size_t emit_end(struct mig_dev *md, uint8_t *base)
{
	memcpy(base + HEAD, &md->save.totals, sizeof(md->save.totals));
	md->save.end_sent = true;
	return emit(md, base, GPUP_MIG_END, 0, sizeof(md->save.totals));
}

/*
 * Write the next chunk at base (cap bytes; base is the staging buffer
 * when staged): its length, 0 if it does not fit in cap, or -errno.
 * *none: nothing is left to send now.
 */
static int next_chunk(struct mig_dev *md, uint8_t *base, size_t cap, bool staged, bool *none)
{
	struct mig_save *s = &md->save;
	bool walked;
	size_t n;

	*none = false;
	if (!s->header_sent)
		return cap < HEAD + sizeof(struct gpup_mig_header) ? 0 : (int)emit_header(md, base);
	if (s->round_open) {
		n = emit_pages(md, base, cap, &walked);
		if (!walked)
			return (int)n;
		s->round_open = false;
	}
	if (s->final && !s->state_sent)
		return staged ? emit_state(md) : 0;
	if (s->final && !s->end_sent)
		return cap < HEAD + sizeof(s->totals) ? 0 : (int)emit_end(md, base);
	*none = true;
	return 0;
}

/* Between pre-copy rounds: open the next one if anything was dirtied. */
static void next_round(struct mig_dev *md)
{
	struct mig_save *s = &md->save;
	uint64_t n;

	if (s->round_open || s->final || s->pos < s->len)
		return;
	n = harvest(md);
	if (!n && next_pending(s, 0) >= s->npages)
		return;
	s->round_open = true;
	s->cursor = 0;
	s->ext_from = s->ext_data = s->ext_end = 0;   /* holes may have filled */
	MIG_STATS(md, {
		md->st.dirty_pages += n;
		md->st.save_rounds++;
	});
}

/* Stage a chunk that did not fit where the read had got to; VRAM runs
 * staged are one page, so little is copied twice. */
static int stage(struct mig_dev *md, bool *none)
{
	struct mig_save *s = &md->save;
	int n = next_chunk(md, s->buf, VRAM_CHUNK(1), true, none);

	s->len = n > 0 ? (size_t)n : 0;
	s->pos = 0;
	return n;
}

/* The stats of a read of done bytes. */
static void account(struct mig_dev *md, uint32_t done)
{
	struct mig_save *s = &md->save;

	MIG_STATS(md, {
		md->st.save_bytes += done;
		if (s->final)
			md->st.stop_copy_bytes += done;
		if (s->end_sent && s->pos == s->len && !s->counted) {
			s->counted = true;
			md->st.saves++;
		}
	});
}

/* Chunks are written straight into buf while whole ones fit; the rest of
 * the read is filled from a staged chunk, so every read is full until
 * there is nothing more to send now. */
int mig_save_read(struct mig_dev *md, uint8_t *buf, uint32_t len)
{
	struct mig_save *s = &md->save;
	uint32_t done = 0;
	bool none = false;
	int n;

	s->by_ref = false;
	if (s->prep_pos < s->prep_len) {
		size_t k = s->prep_len - s->prep_pos < len ? s->prep_len - s->prep_pos : len;

		memcpy(buf, s->area + s->prep_pos, k);
		s->prep_pos += k;
		done = (uint32_t)k;
		none = s->prep_short && s->prep_pos == s->prep_len;
	}
	if (!none)
		next_round(md);
	while (done < len && !none) {
		if (s->pos < s->len) {
			size_t k = s->len - s->pos < len - done ? s->len - s->pos : len - done;

			memcpy(buf + done, s->buf + s->pos, k);
			s->pos += k;
			done += (uint32_t)k;
			continue;
		}
		n = next_chunk(md, buf + done, len - done, false, &none);
		if (n > 0) {
			done += (uint32_t)n;
			continue;
		}
		if (!n && !none)
			n = stage(md, &none);
		if (n < 0)
			return n;
		assert(n > 0 || none);  /* a staged chunk always fits */
	}
	account(md, done);
	return (int)done;
}

/* The device is quiesced (STOP_COPY): the pages cannot change before the
 * next read sends them.  Only its first chunk is guessed, as emit_pages
 * would make it with what is left of len after the staged bytes. */
void mig_save_ahead(struct mig_dev *md, uint32_t len)
{
	struct mig_save *s = &md->save;
	size_t left = s->len - s->pos, cap = len > left ? len - left : 0;
	uint64_t p = next_pending(s, s->cursor), max;
	struct gpup_mig_vram v;

	s->ahead_pages = 0;
	if (!s->header_sent || !s->round_open || p >= s->npages || page_zero(md, p))
		return;
	max = cap < VRAM_CHUNK(1) ? 0 : (cap - VRAM_CHUNK(0)) / MIG_PAGE_SIZE;
	if (!max)
		return;
	v = (struct gpup_mig_vram){ p * MIG_PAGE_SIZE, (uint32_t)run_len(md, p, false,
			max < GPUP_MIG_MAX_VRAM_PAGES ? max : GPUP_MIG_MAX_VRAM_PAGES), 0 };
	s->ahead_hash = vram_hash(md, &v);
	s->ahead_off = v.offset;
	s->ahead_pages = v.pages;
}

/* The pieces of a readv reply: md's area, with VRAM chunks sent in place
 * between its runs. */
struct pieces {
	struct iovec *iov;
	unsigned int n, max;
	size_t used, from;        /* area bytes written; where the open run began */
};

static void piece(struct pieces *p, const void *base, size_t len)
{
	if (len)
		p->iov[p->n++] = (struct iovec){ (void *)base, len };
}

/* The chunk of n bytes just written at the area's end: in the area, or
 * (s->ref) its head there and its pages in place. */
static void took(struct mig_save *s, struct pieces *p, size_t n)
{
	if (!s->ref) {
		p->used += n;
		return;
	}
	p->used += n - s->ref_len;
	piece(p, s->area + p->from, p->used - p->from);
	piece(p, s->ref, s->ref_len);
	p->from = p->used;
}

static int area_reserve(uint8_t **area, size_t *cap, size_t len)
{
	uint8_t *a;

	if (*cap >= len)
		return 0;
	a = realloc(*area, len);
	if (!a)
		return -ENOMEM;
	*area = a;
	*cap = len;
	return 0;
}

static void swap_areas(struct mig_save *s)
{
	uint8_t *a = s->area;
	size_t c = s->area_cap;

	s->area = s->spare;
	s->area_cap = s->spare_cap;
	s->spare = a;
	s->spare_cap = c;
}

/* mig_save_read's walk, with the same chunks for the same reads: what it
 * would copy into the reader's buffer goes to the area (after p->used
 * bytes already there), except VRAM chunks sent in place while s->by_ref
 * (and pieces are left for them).  Bytes, with *none set when nothing is
 * left to send now. */
static int build(struct mig_dev *md, uint32_t len, struct pieces *p, bool *none)
{
	struct mig_save *s = &md->save;
	bool in_place = s->by_ref;
	uint32_t done = 0;
	int n = area_reserve(&s->area, &s->area_cap, p->used + len);

	*none = false;
	next_round(md);
	while (!n && done < len && !*none) {
		if (s->pos < s->len) {
			size_t k = s->len - s->pos < len - done ? s->len - s->pos : len - done;

			memcpy(s->area + p->used, s->buf + s->pos, k);
			s->pos += k;
			p->used += k;
			done += (uint32_t)k;
			continue;
		}
		if (s->pump)
			s->pump(s->pump_arg);
		/* A chunk in place takes two pieces; one is kept for the end. */
		s->by_ref = in_place && p->n + 3 <= p->max;
		s->ref = NULL;
		n = next_chunk(md, s->area + p->used, len - done, false, none);
		s->by_ref = false;
		if (n > 0) {
			took(s, p, (size_t)n);
			done += (uint32_t)n;
			n = 0;
		} else if (!n && !*none && (n = stage(md, none)) > 0) {
			n = 0;
		}
	}
	s->by_ref = false;
	if (n < 0)
		return n;
	piece(p, s->area + p->from, p->used - p->from);
	return (int)done;
}

/* The reply first takes what mig_save_prepare built; if the read wants
 * more than that (a round it did not end), the rest is built right after
 * it in the same buffer, so the reply is pieces as a plain one is. */
int mig_save_readv(struct mig_dev *md, uint32_t len, struct iovec *iov, unsigned int max,
		   unsigned int *niov)
{
	struct mig_save *s = &md->save;
	struct pieces p = { .iov = iov, .max = max };
	uint32_t done = 0;
	bool none = false;
	int n;

	if (s->prep_pos < s->prep_len) {
		size_t k = s->prep_len - s->prep_pos < len ? s->prep_len - s->prep_pos : len;

		done = (uint32_t)k;
		none = s->prep_short && s->prep_pos + k == s->prep_len;
		p.from = s->prep_pos;
		p.used = s->prep_pos + k;
		s->prep_pos += k;
		if (s->prep_pos == s->prep_len)
			s->prep_len = s->prep_pos = 0;
	}
	if (done < len && !none) {
		n = build(md, len - done, &p, &none);
		if (n < 0)
			return n;
		done += (uint32_t)n;
	} else {
		piece(&p, s->area + p.from, p.used - p.from);
	}
	s->by_ref = false;
	*niov = p.n;
	account(md, done);
	return (int)done;
}

/*
 * PRE_COPY: the reply the client will ask for next (len bytes, as the
 * last), built now into the buffer the last reply did not use, while the
 * client reads that one: the copy and the hash of the next MiB overlap
 * its trip through the socket.  The bytes built are the stream's from
 * here on whatever the client does next: a read of another size, or
 * STOP_COPY, takes them first.  A page an engine writes after its copy
 * here is pending again, as after any copy in a round.  With a pump, the
 * reply is built in chunks of at most MIG_PUMP_PAGES pages with the pump
 * called between them: the socket, which may not have held the whole
 * last reply, is fed its end while this one is built.
 */
void mig_save_prepare(struct mig_dev *md, uint32_t len, void (*pump)(void *), void *pump_arg)
{
	struct mig_save *s = &md->save;
	struct iovec iov[1];
	struct pieces p = { .iov = iov, .max = 1 };
	bool none;
	int n;

	if (s->prep_pos < s->prep_len || !s->header_sent || !s->round_open)
		return;
	swap_areas(s);
	s->by_ref = false;
	s->pump = pump;
	s->pump_arg = pump_arg;
	n = build(md, len, &p, &none);
	s->pump = NULL;
	if (n < 0) {
		/* In PRE_COPY only the buffer's allocation fails, before
		 * anything is taken; the read that comes meets it too. */
		s->prep_len = s->prep_pos = 0;
		return;
	}
	s->prep_len = (size_t)n;
	s->prep_pos = 0;
	s->prep_short = (uint32_t)n < len;
}
