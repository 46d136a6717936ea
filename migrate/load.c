/* SPDX-License-Identifier: MIT */
/*
 * load.c: the incremental parser a destination feeds MIG_DATA_WRITE
 * bytes into, split at any point.
 *
 * DOC: checks
 *
 * A chunk's head is checked (sync word, head hash, sequence number, a
 * known kind, a payload within bounds, the order of uapi/gpup_mig.h)
 * before its length is trusted, and its payload against the head's hash
 * before it is used.  HEADER must name this partition's type and VRAM
 * size and a feature mask within its own; VRAM and ZERO chunks land in
 * VRAM at once, inside its size; STATE is kept until RESUMING -> STOP;
 * END's totals must equal what was counted.  The first failure is latched
 * with a line saying where and what, and every later write and the
 * RESUMING -> STOP get its error: -EBADMSG for a corrupt or malformed
 * stream, -EPROTONOSUPPORT for another version, -EINVAL for a stream of
 * an incompatible partition, -ENODATA for one that ended early.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zstd.h>

#include "migrate/mig_int.h"

#define HEAD sizeof(struct gpup_mig_chunk)

int mig_load_init(struct mig_dev *md)
{
	md->load.payload = malloc(GPUP_MIG_MAX_PAYLOAD);
	md->load.state = malloc(GPUP_MIG_MAX_STATE);
	md->load.touched = calloc((md->npages + 63) / 64, sizeof(uint64_t));
	return md->load.payload && md->load.state && md->load.touched ? 0 : -ENOMEM;
}

void mig_load_free(struct mig_dev *md)
{
	free(md->load.payload);
	free(md->load.state);
	free(md->load.touched);
}

void mig_load_begin(struct mig_dev *md)
{
	struct mig_load *l = &md->load;

	l->phase = LOAD_HEAD;
	l->have = 0;
	l->offset = l->chunk_start = 0;
	l->seq = 0;
	l->header_seen = l->state_seen = l->end_seen = false;
	memset(&l->totals, 0, sizeof(l->totals));
	l->state_len = 0;
	l->err = 0;
	memset(l->touched, 0, (md->npages + 63) / 64 * sizeof(uint64_t));
	MIG_STATS(md, md->st.load_bytes = 0);
}

/* Latch err with a line about the current chunk. */
static int bad(struct mig_dev *md, int err, const char *what)
{
	struct mig_load *l = &md->load;

	/* The kind is known only once the head has been checked. */
	if (l->phase == LOAD_PAYLOAD)
		mig_fail(md, "stream refused: chunk %" PRIu32 " (%s) at byte %" PRIu64 ": %s",
			 l->seq, mig_kind_name(l->head.kind), l->chunk_start, what);
	else
		mig_fail(md, "stream refused: chunk %" PRIu32 " at byte %" PRIu64 ": %s", l->seq,
			 l->chunk_start, what);
	l->err = err;
	return err;
}

static bool name_eq(const char *a, const char *b)
{
	return strncmp(a, b, GPUP_MIG_NAME_LEN) == 0;
}

static int take_header(struct mig_dev *md, const struct gpup_mig_header *h)
{
	const struct mig_ident *me = &md->ident;
	char a[GPUP_MIG_NAME_LEN + 1] = { 0 }, line[160];

	if (h->magic != GPUP_MIG_MAGIC)
		return bad(md, -EBADMSG, "not a gpup migration stream (bad magic)");
	if (h->version != GPUP_MIG_VERSION) {
		snprintf(line, sizeof(line), "wrong version %" PRIu32 " (this build reads %u)",
			 h->version, GPUP_MIG_VERSION);
		return bad(md, -EPROTONOSUPPORT, line);
	}
	if (h->page_size != MIG_PAGE_SIZE)
		return bad(md, -EBADMSG, "page size is not 4096");
	memcpy(a, h->type, GPUP_MIG_NAME_LEN);
	if (!name_eq(h->type, me->type)) {
		snprintf(line, sizeof(line), "wrong type: the stream is of type '%s', this "
			 "partition '%.32s'", a, me->type);
		return bad(md, -EINVAL, line);
	}
	if (h->vram_size != md->vram_size) {
		snprintf(line, sizeof(line), "wrong size: the stream has %" PRIu64
			 " bytes of VRAM, this partition %" PRIu64, h->vram_size, md->vram_size);
		return bad(md, -EINVAL, line);
	}
	if (h->features & ~me->features) {
		snprintf(line, sizeof(line), "features 0x%" PRIx64 " of the stream are not "
			 "offered here (mask 0x%" PRIx64 ")", h->features & ~me->features,
			 me->features);
		return bad(md, -EINVAL, line);
	}
	md->load.header_seen = true;
	return 0;
}

/* Whether [offset, offset + pages pages) is page aligned and in VRAM. */
static bool in_vram(const struct mig_dev *md, uint64_t offset, uint64_t pages)
{
	return !(offset % MIG_PAGE_SIZE) && offset < md->vram_size && pages &&
	       pages <= (md->vram_size - offset) / MIG_PAGE_SIZE;
}

static int take_vram(struct mig_dev *md, const uint8_t *p, uint32_t len, unsigned int flags)
{
	const struct gpup_mig_vram *v = (const void *)p;
	uint64_t bytes;
	int rc;

	if (len < sizeof(*v) || !v->pages || v->pages > GPUP_MIG_MAX_VRAM_PAGES ||
	    v->reserved || !in_vram(md, v->offset, v->pages))
		return bad(md, -EBADMSG, "VRAM chunk out of bounds");
	bytes = (uint64_t)v->pages * MIG_PAGE_SIZE;
	if (flags & GPUP_MIG_CF_ZSTD) {
		size_t n = ZSTD_decompressDCtx(md->dctx, md->vram + v->offset, bytes,
					       v + 1, len - sizeof(*v));

		if (ZSTD_isError(n) || n != bytes)
			return bad(md, -EBADMSG, "VRAM chunk does not decompress to its pages");
	} else {
		if (len - sizeof(*v) != bytes)
			return bad(md, -EBADMSG, "VRAM chunk length does not match its pages");
		if (!md->ops->vram_write)
			memcpy(md->vram + v->offset, v + 1, bytes);
		else if ((rc = md->ops->vram_write(md->dev, v->offset, v + 1, bytes)))
			return bad(md, rc, "the device could not write VRAM");
	}
	for (uint64_t p = v->offset / MIG_PAGE_SIZE; p < v->offset / MIG_PAGE_SIZE + v->pages; p++)
		md->load.touched[p / 64] |= 1ull << (p % 64);
	md->load.totals.vram_pages += v->pages;
	return 0;
}

static int take_zero(struct mig_dev *md, const uint8_t *p, uint32_t len)
{
	const struct gpup_mig_zero *z = (const void *)p;

	if (len != sizeof(*z) || !in_vram(md, z->offset, z->pages))
		return bad(md, -EBADMSG, "ZERO chunk out of bounds");
	/* Reset zeroed VRAM: only pages a VRAM chunk wrote since need it
	 * (touching the others would allocate them). */
	for (uint64_t p = z->offset / MIG_PAGE_SIZE; p < z->offset / MIG_PAGE_SIZE + z->pages; p++)
		if (md->load.touched[p / 64] >> (p % 64) & 1)
			memset(md->vram + p * MIG_PAGE_SIZE, 0, MIG_PAGE_SIZE);
	md->load.totals.zero_pages += z->pages;
	return 0;
}

static int take_end(struct mig_dev *md, const uint8_t *p, uint32_t len)
{
	struct gpup_mig_end e;
	char line[200];

	if (len != sizeof(e))
		return bad(md, -EBADMSG, "END chunk of the wrong length");
	memcpy(&e, p, sizeof(e));
	if (memcmp(&e, &md->load.totals, sizeof(e))) {
		snprintf(line, sizeof(line), "END totals disagree: %" PRIu64 " chunks, %" PRIu64
			 " bytes, %" PRIu64 "+%" PRIu64 " pages stated, %" PRIu64 ", %" PRIu64
			 ", %" PRIu64 "+%" PRIu64 " received", e.chunks, e.bytes, e.vram_pages,
			 e.zero_pages, md->load.totals.chunks, md->load.totals.bytes,
			 md->load.totals.vram_pages, md->load.totals.zero_pages);
		return bad(md, -EBADMSG, line);
	}
	md->load.end_seen = true;
	return 0;
}

/* A whole chunk whose hashes matched. */
static int take_chunk(struct mig_dev *md, const uint8_t *p)
{
	struct mig_load *l = &md->load;

	switch (l->head.kind) {
	case GPUP_MIG_HEADER:
		if (l->head.len != sizeof(struct gpup_mig_header))
			return bad(md, -EBADMSG, "HEADER chunk of the wrong length");
		return take_header(md, (const void *)p);
	case GPUP_MIG_VRAM:
		return take_vram(md, p, l->head.len, l->head.flags);
	case GPUP_MIG_ZERO:
		return take_zero(md, p, l->head.len);
	case GPUP_MIG_STATE:
		memcpy(l->state, p, l->head.len);
		l->state_len = l->head.len;
		l->state_seen = true;
		return 0;
	default:
		return take_end(md, p, l->head.len);
	}
}

/* The order and bounds a head must keep before its payload is read. */
static int check_head(struct mig_dev *md)
{
	struct mig_load *l = &md->load;
	const struct gpup_mig_chunk *h = &l->head;
	bool data = h->kind == GPUP_MIG_VRAM || h->kind == GPUP_MIG_ZERO;

	/* The first bytes of anything but a stream say so, not "checksum". */
	if (h->sync != GPUP_MIG_SYNC && !l->header_seen && l->seq == 0)
		return bad(md, -EBADMSG, "not a gpup migration stream");
	if (!mig_chunk_head_ok(h))
		return bad(md, -EBADMSG, "chunk head checksum mismatch");
	if (l->end_seen)
		return bad(md, -EBADMSG, "data after END");
	if (h->seq != l->seq)
		return bad(md, -EBADMSG, "chunk out of sequence");
	if (h->kind < GPUP_MIG_HEADER || h->kind > GPUP_MIG_END)
		return bad(md, -EBADMSG, "unknown chunk kind");
	if (h->flags & ~(h->kind == GPUP_MIG_VRAM ? GPUP_MIG_CF_ZSTD : 0))
		return bad(md, -EBADMSG, "unknown chunk flags");
	if (h->len > GPUP_MIG_MAX_PAYLOAD ||
	    (h->kind == GPUP_MIG_STATE && h->len > GPUP_MIG_MAX_STATE))
		return bad(md, -EBADMSG, "chunk payload too long");
	if ((h->kind == GPUP_MIG_HEADER) == l->header_seen)
		return bad(md, -EBADMSG, l->header_seen ? "a second HEADER" :
					 "the stream does not start with HEADER");
	if ((data || h->kind == GPUP_MIG_STATE) && l->state_seen)
		return bad(md, -EBADMSG, "chunk after STATE");
	if (h->kind == GPUP_MIG_END && !l->state_seen)
		return bad(md, -EBADMSG, "END without STATE");
	return 0;
}

/* Payload complete (at p): check it, use it, count it. */
static int end_chunk(struct mig_dev *md, const uint8_t *p)
{
	struct mig_load *l = &md->load;
	int rc;

	if (mig_hash(p, l->head.len) != l->head.data_hash)
		return bad(md, -EBADMSG, "payload checksum mismatch");
	rc = take_chunk(md, p);
	if (rc)
		return rc;
	if (l->head.kind != GPUP_MIG_END) {
		l->totals.chunks++;
		l->totals.bytes += HEAD + l->head.len;
	}
	l->seq++;
	l->phase = LOAD_HEAD;
	l->have = 0;
	l->chunk_start = l->offset;
	return 0;
}

/* Take up to len bytes into the head or payload: how many were taken. */
static uint32_t fill(struct mig_load *l, const uint8_t *buf, uint32_t len)
{
	uint32_t want = l->phase == LOAD_HEAD ? HEAD : l->head.len;
	uint8_t *dst = l->phase == LOAD_HEAD ? (uint8_t *)&l->head : l->payload;
	uint32_t n = want - l->have < len ? want - l->have : len;

	memcpy(dst + l->have, buf, n);
	l->have += n;
	l->offset += n;
	return n;
}

int mig_load_feed(struct mig_dev *md, const uint8_t *buf, uint32_t len)
{
	struct mig_load *l = &md->load;
	int rc = 0;

	while (!l->err && (len || (l->phase == LOAD_PAYLOAD && l->have == l->head.len))) {
		uint32_t n;

		/* A whole payload in what was written (a writer whose writes
		 * end on chunk bounds, as a source's reads do): checked and
		 * used where it lies, not gathered first.  Its structs are
		 * read in place, so only where they are aligned. */
		if (l->phase == LOAD_PAYLOAD && !l->have && len >= l->head.len &&
		    !((uintptr_t)buf % _Alignof(uint64_t))) {
			uint32_t plen = l->head.len;

			l->offset += plen;
			l->have = plen;
			rc = end_chunk(md, buf);
			buf += plen;
			len -= plen;
			if (rc)
				break;
			continue;
		}
		n = fill(l, buf, len);

		buf += n;
		len -= n;
		if (l->phase == LOAD_HEAD && l->have == HEAD) {
			rc = check_head(md);
			l->phase = LOAD_PAYLOAD;
			l->have = 0;
		} else if (l->phase == LOAD_PAYLOAD && l->have == l->head.len) {
			rc = end_chunk(md, l->payload);
		}
		if (rc)
			break;
	}
	MIG_STATS(md, md->st.load_bytes = l->offset);
	return l->err;
}

int mig_load_finish(struct mig_dev *md)
{
	struct mig_load *l = &md->load;
	char line[160];
	int rc;

	if (l->err)
		return l->err;
	if (!l->end_seen) {
		if (l->offset == l->chunk_start && !l->have)
			snprintf(line, sizeof(line), "truncated at byte %" PRIu64 ": no END chunk",
				 l->offset);
		else
			snprintf(line, sizeof(line), "truncated at byte %" PRIu64 " inside chunk %"
				 PRIu32 "'s %s", l->offset, l->seq,
				 l->phase == LOAD_HEAD ? "head" : "payload");
		mig_fail(md, "stream refused: %s", line);
		return l->err = -ENODATA;
	}
	rc = md->ops->state_load(md->dev, l->state, l->state_len);
	if (rc) {
		mig_fail(md, "stream refused: the device refused its state blob (%d)", rc);
		return rc;
	}
	return 0;
}
