// SPDX-License-Identifier: MIT
/*
 * libFuzzer harness for the checkpoint chain link parser
 * (migrate/chain_load.c): the bytes of a link file, which the daemon
 * reads back from its store when it recovers a partition.  The input is
 * the file, after one mode byte: with its bit 0 set, every chunk's two
 * hashes are first made right again (walking the heads by their
 * lengths), so that the checks behind the hashes (order, bounds, LINK
 * fields, END totals) see hostile data too.  A link that mig_link_check
 * accepts is applied to a VRAM
 * buffer of the size its HEADER names (when that is small enough to
 * allocate here), which must stay inside it and give back its STATE.
 * A link accepted once is accepted again with the same identity.
 */
#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <xxhash.h>

#include "migrate/mig.h"

#define MAX_VRAM (4u << 20)

/* Make every chunk's hashes right, as far as the heads' lengths go. */
static void reseal(uint8_t *p, size_t size)
{
	struct gpup_mig_chunk h;

	for (size_t at = 0; size - at >= sizeof(h);) {
		memcpy(&h, p + at, sizeof(h));
		if (h.len > size - at - sizeof(h))
			return;
		h.sync = GPUP_MIG_SYNC;
		h.data_hash = XXH3_64bits(p + at + sizeof(h), h.len);
		h.head_hash = XXH3_64bits(&h, offsetof(struct gpup_mig_chunk, head_hash));
		memcpy(p + at, &h, sizeof(h));
		at += sizeof(h) + h.len;
	}
}

static int one(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *in, size_t n)
{
	uint8_t *copy;
	int r;

	if (!n)
		return 0;
	copy = malloc(n - 1 ? n - 1 : 1);
	if (!copy)
		return 0;
	memcpy(copy, in + 1, n - 1);
	if (in[0] & 1)
		reseal(copy, n - 1);
	r = one(copy, n - 1);
	free(copy);
	return r;
}

static int one(const uint8_t *data, size_t size)
{
	struct mig_link_info a, b;
	struct gpup_mig_header h;
	char err[256];
	uint8_t state[64];
	uint8_t *vram;

	if (mig_link_check(data, size, NULL, &a, err, sizeof(err)))
		return 0;
	if (mig_link_check(data, size, NULL, &b, err, sizeof(err)) || a.id != b.id ||
	    a.index != b.index)
		abort();
	memcpy(&h, data + sizeof(struct gpup_mig_chunk), sizeof(h));
	if (h.vram_size > MAX_VRAM)
		return 0;
	vram = calloc(1, h.vram_size);
	int rc = vram ? mig_link_apply(data, size, vram, -1, h.vram_size, state, sizeof(state)) : 0;

	if (rc < 0 && rc != -ENOSPC)
		abort();
	free(vram);
	return 0;
}
