/* SPDX-License-Identifier: MIT */
/*
 * hash_avx2.c: XXH3-64 built for AVX2 (migrate/module.mk gives this file
 * alone -mavx2); hash.c calls it only where the CPU has AVX2.
 */
#include <immintrin.h>

#define XXH_INLINE_ALL
#include <xxhash.h>

#include "migrate/mig_int.h"

uint64_t mig_hash_avx2(const void *p, size_t len)
{
	return XXH3_64bits(p, len);
}

uint64_t mig_hash2_avx2(const void *a, size_t alen, const void *b, size_t blen)
{
	XXH3_state_t st;

	XXH3_64bits_reset(&st);
	XXH3_64bits_update(&st, a, alen);
	XXH3_64bits_update(&st, b, blen);
	return XXH3_64bits_digest(&st);
}

void mig_hasher_reset_avx2(void *st)
{
	XXH3_64bits_reset(st);
}

void mig_hasher_update_avx2(void *st, const void *p, size_t len)
{
	XXH3_64bits_update(st, p, len);
}

uint64_t mig_hasher_digest_avx2(const void *st)
{
	return XXH3_64bits_digest(st);
}

/*
 * mig_hash_copy's loop: XXH3-64's long-input hash (xxHash's spec, "XXH3
 * algorithm, inputs longer than 240 bytes") with the default secret,
 * taking each 64-byte stripe from the source into two registers that are
 * both stored and accumulated, so the bytes are read once.  The eight
 * 64-bit accumulators are two vectors.
 */
#define STRIPE 64
#define SECRET_LEN sizeof(XXH3_kSecret)
#define BLOCK_STRIPES ((SECRET_LEN - STRIPE) / 8)
#define LAST_KEY (SECRET_LEN - STRIPE - 7)      /* the last stripe's key */
#define MERGE_KEY 11                            /* the accumulators' merge key */

static inline void accumulate(__m256i acc[2], __m256i d0, __m256i d1, const uint8_t *key)
{
	const __m256i d[2] = { d0, d1 };

	for (int i = 0; i < 2; i++) {
		__m256i k = _mm256_xor_si256(d[i], _mm256_loadu_si256((const void *)(key + 32 * i)));

		/* Each lane gains its neighbour's data and the product of
		 * its keyed halves. */
		acc[i] = _mm256_add_epi64(acc[i], _mm256_shuffle_epi32(d[i], _MM_SHUFFLE(1, 0, 3, 2)));
		acc[i] = _mm256_add_epi64(acc[i], _mm256_mul_epu32(k, _mm256_srli_epi64(k, 32)));
	}
}

static inline void scramble(__m256i acc[2], const uint8_t *key)
{
	const __m256i prime = _mm256_set1_epi64x(XXH_PRIME32_1);

	for (int i = 0; i < 2; i++) {
		__m256i a = _mm256_xor_si256(acc[i], _mm256_srli_epi64(acc[i], 47));

		a = _mm256_xor_si256(a, _mm256_loadu_si256((const void *)(key + 32 * i)));
		/* a * prime, 64 bits by 32, as two 32x32 products. */
		acc[i] = _mm256_add_epi64(_mm256_mul_epu32(a, prime),
					  _mm256_slli_epi64(_mm256_mul_epu32(_mm256_srli_epi64(a, 32),
									     prime), 32));
	}
}

static inline uint64_t key64(const uint8_t *p)
{
	uint64_t v;

	memcpy(&v, p, sizeof(v));
	return v;
}

static uint64_t merge(const __m256i acc[2], const uint8_t *key, uint64_t h)
{
	uint64_t a[8];

	memcpy(a, acc, sizeof(a));
	for (int i = 0; i < 4; i++) {
		unsigned __int128 m = (unsigned __int128)(a[2 * i] ^ key64(key + 16 * i)) *
				      (a[2 * i + 1] ^ key64(key + 16 * i + 8));

		h += (uint64_t)m ^ (uint64_t)(m >> 64);
	}
	h ^= h >> 37;
	h *= 0x165667919E3779F9ull;
	return h ^ (h >> 32);
}

uint64_t mig_hash_copy_avx2(void *buf, size_t pre, const void *from, size_t len)
{
	static const uint64_t init[8] = { XXH_PRIME32_3, XXH_PRIME64_1, XXH_PRIME64_2,
					  XXH_PRIME64_3, XXH_PRIME64_4, XXH_PRIME32_2,
					  XXH_PRIME64_5, XXH_PRIME32_1 };
	const uint8_t *secret = XXH3_kSecret, *src = from;
	uint8_t *in = buf;
	size_t total = pre + len, block = STRIPE * BLOCK_STRIPES, nblocks = (total - 1) / block;
	size_t tail = ((total - 1) - nblocks * block) / STRIPE;
	size_t have = (pre + STRIPE - 1) / STRIPE * STRIPE;       /* bytes in buf */
	__m256i acc[2];

	memcpy(acc, init, sizeof(acc));
	/* Stripes that hold some of the bytes already there are made whole
	 * first; every later one comes from src. */
	if (have > total)
		have = total;
	memcpy(in + pre, src, have - pre);
	for (size_t b = 0; b <= nblocks; b++) {
		size_t n = b < nblocks ? BLOCK_STRIPES : tail;

		for (size_t s = 0; s < n; s++) {
			size_t o = b * block + s * STRIPE;
			const uint8_t *p = o + STRIPE <= have ? in + o : src + (o - pre);
			__m256i d0 = _mm256_loadu_si256((const void *)p);
			__m256i d1 = _mm256_loadu_si256((const void *)(p + 32));

			if (p != in + o) {
				_mm256_storeu_si256((void *)(in + o), d0);
				_mm256_storeu_si256((void *)(in + o + 32), d1);
				have = o + STRIPE;
			}
			accumulate(acc, d0, d1, secret + s * 8);
		}
		if (b < nblocks)
			scramble(acc, secret + SECRET_LEN - STRIPE);
	}
	memcpy(in + have, src + (have - pre), total - have);
	accumulate(acc, _mm256_loadu_si256((const void *)(in + total - STRIPE)),
		   _mm256_loadu_si256((const void *)(in + total - 32)), secret + LAST_KEY);
	return merge(acc, secret + MERGE_KEY, (uint64_t)total * XXH_PRIME64_1);
}
