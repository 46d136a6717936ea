/* SPDX-License-Identifier: MIT */
/*
 * hash.c: XXH3-64 of the stream's bytes (chunk payloads, VRAM pages), on
 * the widest vector unit this CPU has.
 *
 * Every byte a migration or a checkpoint moves is hashed once on each side,
 * so the hash runs at the speed of a copy or not at all.  libxxhash as
 * Debian builds it runs XXH3's SSE2 loop: on the development host that is
 * 6.6 GB/s over a MiB in cache and 5.3 GB/s from memory, where the AVX2
 * loop does 14.4 and 8.6.  XXH3 gives the same value whatever loop
 * computes it (tests/mig_hash_test.c holds us to libxxhash's), so a stream
 * written on one host is read on another that picked the other loop.
 */
#include <stdlib.h>
#include <string.h>

#define XXH_INLINE_ALL
#include <xxhash.h>

#include "migrate/mig_int.h"

static uint64_t hash_sse2(const void *p, size_t len)
{
	return XXH3_64bits(p, len);
}

static uint64_t hash2_sse2(const void *a, size_t alen, const void *b, size_t blen)
{
	XXH3_state_t st;

	XXH3_64bits_reset(&st);
	XXH3_64bits_update(&st, a, alen);
	XXH3_64bits_update(&st, b, blen);
	return XXH3_64bits_digest(&st);
}

static void reset_sse2(void *st)
{
	XXH3_64bits_reset(st);
}

static void update_sse2(void *st, const void *p, size_t len)
{
	XXH3_64bits_update(st, p, len);
}

static uint64_t digest_sse2(const void *st)
{
	return XXH3_64bits_digest(st);
}

/* The bytes are read twice: once by the copy, once (in cache) by the hash. */
static uint64_t hash_copy_sse2(void *buf, size_t pre, const void *from, size_t len)
{
	memcpy((uint8_t *)buf + pre, from, len);
	return XXH3_64bits(buf, pre + len);
}

static uint64_t (*hash_fn)(const void *, size_t) = hash_sse2;
static uint64_t (*hash_copy_fn)(void *, size_t, const void *, size_t) = hash_copy_sse2;
static void (*reset_fn)(void *) = reset_sse2;
static void (*update_fn)(void *, const void *, size_t) = update_sse2;
static uint64_t (*digest_fn)(const void *) = digest_sse2;
static uint64_t (*hash2_fn)(const void *, size_t, const void *, size_t) = hash2_sse2;

/* Chosen once, before main, so the pointers are never written while
 * another thread reads them.  GPUP_HASH=sse2 keeps the baseline loop (for
 * measuring one against the other). */
__attribute__((constructor)) static void pick_loop(void)
{
	const char *want = getenv("GPUP_HASH");

	__builtin_cpu_init();
	if (__builtin_cpu_supports("avx2") && !(want && !strcmp(want, "sse2"))) {
		hash_fn = mig_hash_avx2;
		hash2_fn = mig_hash2_avx2;
		hash_copy_fn = mig_hash_copy_avx2;
		reset_fn = mig_hasher_reset_avx2;
		update_fn = mig_hasher_update_avx2;
		digest_fn = mig_hasher_digest_avx2;
	}
}

uint64_t mig_hash(const void *p, size_t len)
{
	return hash_fn(p, len);
}

uint64_t mig_hash2(const void *a, size_t alen, const void *b, size_t blen)
{
	return hash2_fn(a, alen, b, blen);
}

/* XXH3 takes another path up to 240 bytes; the fused loop is the long one. */
#define HASH_COPY_MIN 241

uint64_t mig_hash_copy(void *buf, size_t pre, const void *from, size_t len)
{
	if (pre + len < HASH_COPY_MIN)
		return hash_copy_sse2(buf, pre, from, len);
	return hash_copy_fn(buf, pre, from, len);
}

const char *mig_hash_loop(void)
{
	return hash_fn == hash_sse2 ? "sse2" : "avx2";
}

/* The state is XXH3's own, the same whichever loop fills it. */
struct mig_hasher *mig_hasher_new(void)
{
	struct mig_hasher *h = (struct mig_hasher *)XXH3_createState();

	if (h)
		reset_fn(h);
	return h;
}

void mig_hasher_free(struct mig_hasher *h)
{
	XXH3_freeState((XXH3_state_t *)h);
}

void mig_hasher_reset(struct mig_hasher *h)
{
	reset_fn(h);
}

void mig_hasher_update(struct mig_hasher *h, const void *p, size_t len)
{
	update_fn(h, p, len);
}

uint64_t mig_hasher_digest(const struct mig_hasher *h)
{
	return digest_fn(h);
}
