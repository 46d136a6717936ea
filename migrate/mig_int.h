/* SPDX-License-Identifier: MIT */
/*
 * migrate's private header: the device, the saver (save.c) and the
 * parser (load.c) that mig_dev.c drives, and the chunk codec (chunk.c)
 * both use.  White-box tests and the stream fuzzer may include it.
 */
#ifndef GPUP_MIGRATE_MIG_INT_H
#define GPUP_MIGRATE_MIG_INT_H

#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <sys/uio.h>

#include "migrate/mig.h"

_Static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "the stream is little-endian");

/* ---- chunk codec (chunk.c) ---- */

/* Fill head h for a payload of len bytes hashing to data_hash. */
void mig_chunk_seal(struct gpup_mig_chunk *h, unsigned int kind, unsigned int flags,
		    uint32_t len, uint32_t seq, uint64_t data_hash);
/* Whether h's head hash and sync word are right. */
bool mig_chunk_head_ok(const struct gpup_mig_chunk *h);
const char *mig_kind_name(unsigned int kind);
/* Whether len bytes at p are all zero. */
bool mig_all_zero(const void *p, size_t len);
/* hash_avx2.c: mig_hash and mig_hash2 built for AVX2 (hash.c picks). */
uint64_t mig_hash_avx2(const void *p, size_t len);
uint64_t mig_hash2_avx2(const void *a, size_t alen, const void *b, size_t blen);
void mig_hasher_reset_avx2(void *st);
void mig_hasher_update_avx2(void *st, const void *p, size_t len);
uint64_t mig_hasher_digest_avx2(const void *st);
uint64_t mig_hash_copy_avx2(void *buf, size_t pre, const void *from, size_t len);

/* A chain link's file name, PREFIX.NNNNNNNN.base or .incr (chain.c
 * writes them): whether name is one of PREFIX's, and its number and kind
 * (chain_load.c). */
bool mig_link_name_parse(const char *name, const char *prefix, uint32_t *index, bool *base);

/* ---- the saver (save.c) ---- */

/* What is being produced: the encoded bytes of one chunk (head and
 * payload) waiting to be read, and where the walk over VRAM is. */
struct mig_save {
	uint8_t *buf;             /* a staged chunk: head + payload */
	size_t len, pos;          /* bytes in buf, bytes of them read */
	uint64_t *pending;        /* pages still to send */
	uint64_t *written;        /* pages the device wrote since the save began */
	uint64_t npages, cursor;  /* pages of VRAM; the walk's next page */
	uint32_t seq;             /* the next chunk's number */
	uint64_t ext_from, ext_data, ext_end; /* last vram_data answer, bytes */
	bool header_sent, round_open, final, state_sent, end_sent, counted;
	struct gpup_mig_end totals;
	/* mig_save_readv: the bytes of a reply that are not VRAM sent in
	 * place (heads, small chunks, pages copied), and the VRAM chunk just
	 * emitted by reference (ref NULL: it was copied). */
	uint8_t *area;
	size_t area_cap;
	/* mig_save_prepare (PRE_COPY): the next reply built ahead, while
	 * the client still reads the last one out of area, into the other
	 * buffer (spare, swapped in): prep_len bytes of the stream, prep_pos
	 * of them sent, prep_short if the round ended inside them.  A read
	 * that wants more has the rest built after them in the same buffer,
	 * which nothing else points into by then. */
	uint8_t *spare;
	size_t spare_cap;
	size_t prep_len, prep_pos;
	bool prep_short;
	void (*pump)(void *);     /* while mig_save_prepare builds: its pump */
	void *pump_arg;
	bool by_ref;              /* VRAM chunks may be sent in place */
	const uint8_t *ref;
	size_t ref_len;
	/* mig_save_ahead: the VRAM chunk the next read is expected to start
	 * with, hashed while the client took the last reply (pages 0: none). */
	uint64_t ahead_off;
	uint32_t ahead_pages;
	uint64_t ahead_hash;
};

/* ---- the parser (load.c) ---- */

enum mig_load_phase { LOAD_HEAD, LOAD_PAYLOAD };

struct mig_load {
	enum mig_load_phase phase;
	struct gpup_mig_chunk head;
	uint32_t have;            /* bytes of head or payload so far */
	uint8_t *payload;         /* GPUP_MIG_MAX_PAYLOAD */
	uint64_t offset;          /* stream bytes taken */
	uint64_t chunk_start;     /* stream offset of the current chunk */
	uint32_t seq;             /* the next chunk's expected number */
	bool header_seen, state_seen, end_seen;
	struct gpup_mig_end totals;
	uint64_t *touched;        /* pages written since the reset */
	uint8_t *state;           /* the STATE blob, kept for RESUMING -> STOP */
	uint32_t state_len;
	int err;                  /* the first error, latched */
};

/* ---- the device ---- */

struct mig_dev {
	const struct mig_dev_ops *ops;
	void *dev;
	uint32_t features;
	struct mig_ident ident;
	uint8_t *vram;
	uint64_t vram_size, npages;
	bool quiesced, tracking, logging;
	int zlevel;
	void *zctx, *dctx;        /* ZSTD_CCtx, ZSTD_DCtx */

	struct mig_save save;
	struct mig_load load;

	void (*log)(void *opaque, const char *line);
	void *log_opaque;
	char last_error[256];

	/* state and stats, read by other threads */
	pthread_mutex_t lock;
	enum mig_state state;
	struct mig_stats st;
};

/* Record a failure: last_error and one log line. */
void mig_fail(struct mig_dev *md, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Apply fn to the stats under the lock. */
#define MIG_STATS(md, stmt)                                                    \
	do {                                                                   \
		pthread_mutex_lock(&(md)->lock);                               \
		stmt;                                                          \
		pthread_mutex_unlock(&(md)->lock);                             \
	} while (0)

int mig_save_init(struct mig_dev *md);
void mig_save_free(struct mig_dev *md);
/* A new session: live (PRE_COPY: the device runs, VRAM tracked) or not
 * (STOP -> STOP_COPY: one walk, then STATE and END). */
void mig_save_begin(struct mig_dev *md, bool live);
/* PRE_COPY -> STOP_COPY: the device is quiesced; the rest must go. */
void mig_save_finalize(struct mig_dev *md);
/* Up to len bytes of the stream, as mig_dev_data_read. */
int mig_save_read(struct mig_dev *md, uint8_t *buf, uint32_t len);
/* Hash ahead the VRAM chunk a next read of len would start with, as
 * mig_dev_data_ahead; the chunk's pieces use it if it comes. */
void mig_save_ahead(struct mig_dev *md, uint32_t len);
void mig_save_prepare(struct mig_dev *md, uint32_t len, void (*pump)(void *), void *pump_arg);
/* The same bytes as pieces, as mig_dev_data_readv. */
int mig_save_readv(struct mig_dev *md, uint32_t len, struct iovec *iov, unsigned int max,
		   unsigned int *niov);

int mig_load_init(struct mig_dev *md);
void mig_load_free(struct mig_dev *md);
void mig_load_begin(struct mig_dev *md);
int mig_load_feed(struct mig_dev *md, const uint8_t *buf, uint32_t len);
/* RESUMING -> STOP: the stream must be whole; then state_load. */
int mig_load_finish(struct mig_dev *md);

/* Write fmt into err (errlen bytes; nothing when err is NULL) and
 * return rc: one line for the caller's error, with its code. */
int mig_say(char *err, size_t errlen, int rc, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

#endif
