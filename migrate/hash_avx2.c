/* SPDX-License-Identifier: MIT */
/*
 * hash_avx2.c: XXH3-64 built for AVX2 (migrate/module.mk gives this file
 * alone -mavx2); hash.c calls it only where the CPU has AVX2.
 */
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
