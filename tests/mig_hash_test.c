// SPDX-License-Identifier: MIT
/*
 * migrate's hash (mig_hash, mig_hash2) must be XXH3_64bits bit for bit,
 * whichever loop this CPU runs: streams and checkpoints written by one
 * host are read by another.  Compared with libxxhash itself over lengths
 * around every block and stripe edge XXH3 has, at every alignment of the
 * first 64 bytes, and split at every point for mig_hash2.
 */
#include <criterion/criterion.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

#include "migrate/mig.h"

#define BUF (3u << 20)

static uint8_t *data(void)
{
	uint8_t *p = malloc(BUF + 64);
	uint64_t x = 0x9e3779b97f4a7c15ull;

	cr_assert_not_null(p);
	for (size_t i = 0; i < BUF + 64; i++) {
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		p[i] = (uint8_t)x;
	}
	return p;
}

Test(mig_hash, same_as_libxxhash)
{
	/* XXH3's paths change at 16, 128, 240 bytes, its stripes are 64
	 * bytes, its blocks 1024; and the sizes the stream uses. */
	static const size_t edges[] = { 0, 1, 3, 4, 8, 9, 16, 17, 128, 129, 240, 241, 1023,
					1024, 1025, 4096, 65536, 1u << 20, (1u << 20) + 32,
					BUF };
	uint8_t *p = data();

	cr_log_info("loop: %s", mig_hash_loop());
	for (size_t e = 0; e < sizeof(edges) / sizeof(edges[0]); e++)
		for (size_t d = 0; d <= 2 && edges[e] + d <= BUF; d++)
			for (size_t a = 0; a < 64; a += edges[e] > 65536 ? 63 : 1) {
				size_t n = edges[e] + d;

				cr_assert_eq(mig_hash(p + a, n), XXH3_64bits(p + a, n),
					     "length %zu at offset %zu", n, a);
			}
	free(p);
}

Test(mig_hash, pair_is_the_concatenation)
{
	uint8_t *p = data();

	for (size_t n = 0; n < 600; n += 7)
		for (size_t cut = 0; cut <= n; cut++)
			cr_assert_eq(mig_hash2(p, cut, p + cut, n - cut), XXH3_64bits(p, n),
				     "%zu split at %zu", n, cut);
	/* A VRAM chunk: a 16-byte head and a MiB of pages. */
	cr_assert_eq(mig_hash2(p, 16, p + 16, 1u << 20), XXH3_64bits(p, 16 + (1u << 20)));
	free(p);
}

Test(mig_hash, a_changed_byte_changes_it)
{
	uint8_t *p = data();
	uint64_t h = mig_hash(p, 1u << 20);

	for (size_t i = 0; i < (1u << 20); i += 4093) {
		p[i] ^= 1;
		cr_assert_neq(mig_hash(p, 1u << 20), h, "byte %zu", i);
		p[i] ^= 1;
	}
	cr_assert_eq(mig_hash(p, 1u << 20), h);
	free(p);
}

Test(mig_hash, in_pieces_the_same)
{
	struct mig_hasher *h = mig_hasher_new();
	uint8_t *p = data();

	cr_assert_not_null(h);
	for (size_t n = 0; n < (1u << 20) + 300; n = n * 3 + 101) {
		mig_hasher_reset(h);
		for (size_t at = 0, k = 1; at < n; k = k * 7 % 5003 + 1) {
			size_t step = k < n - at ? k : n - at;

			mig_hasher_update(h, p + at, step);
			at += step;
		}
		cr_assert_eq(mig_hasher_digest(h), XXH3_64bits(p, n), "%zu bytes in pieces", n);
	}
	mig_hasher_free(h);
	free(p);
}

/* mig_hash_copy: the copy is exact and the hash is of the bytes before it
 * and the copy, for heads of every length a VRAM chunk or a caller may
 * put there, lengths around XXH3's edges, and unaligned ends. */
Test(mig_hash, copy_hashes_what_it_copies)
{
	static const size_t lens[] = { 1, 63, 64, 65, 224, 225, 239, 240, 241, 1000, 1024,
				       1025, 1088, 4096, 4097, 65536, (1u << 20) + 17 };
	uint8_t *p = data(), *out = malloc(BUF + 256);

	cr_assert_not_null(out);
	for (size_t l = 0; l < sizeof(lens) / sizeof(lens[0]); l++)
		for (size_t pre = 0; pre <= 130; pre += pre < 20 ? 1 : 37)
			for (size_t a = 0; a < 3; a++) {
				size_t n = lens[l];
				uint8_t *dst = out + a;

				memset(dst, 0xa5, pre + n + 64);
				for (size_t i = 0; i < pre; i++)
					dst[i] = (uint8_t)(i * 31 + 7);
				cr_assert_eq(mig_hash_copy(dst, pre, p + 5 + a, n),
					     XXH3_64bits(dst, pre + n), "head %zu, length %zu", pre, n);
				cr_assert(!memcmp(dst + pre, p + 5 + a, n), "head %zu, length %zu", pre, n);
				for (size_t i = 0; i < 64; i++)
					cr_assert_eq(dst[pre + n + i], 0xa5, "written past the end");
				for (size_t i = 0; i < pre; i++)
					cr_assert_eq(dst[i], (uint8_t)(i * 31 + 7), "the head changed");
			}
	free(out);
	free(p);
}
