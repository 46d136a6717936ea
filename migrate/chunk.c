/* SPDX-License-Identifier: MIT */
/*
 * chunk.c: the chunk head of uapi/gpup_mig.h, sealed by the saver and
 * checked by the parser, and the helpers both sides share.
 */
#include <string.h>

#include "migrate/mig_int.h"

/* The head hash covers every field before it. */
#define HEAD_HASHED offsetof(struct gpup_mig_chunk, head_hash)

void mig_chunk_seal(struct gpup_mig_chunk *h, unsigned int kind, unsigned int flags,
		    uint32_t len, uint32_t seq, uint64_t data_hash)
{
	h->sync = GPUP_MIG_SYNC;
	h->kind = (uint16_t)kind;
	h->flags = (uint16_t)flags;
	h->len = len;
	h->seq = seq;
	h->data_hash = data_hash;
	h->head_hash = mig_hash(h, HEAD_HASHED);
}

bool mig_chunk_head_ok(const struct gpup_mig_chunk *h)
{
	return h->sync == GPUP_MIG_SYNC && h->head_hash == mig_hash(h, HEAD_HASHED);
}

const char *mig_kind_name(unsigned int kind)
{
	static const char *const n[] = { "?", "HEADER", "VRAM", "ZERO", "STATE", "END",
					 "LINK" };

	return kind < sizeof(n) / sizeof(n[0]) ? n[kind] : "?";
}

bool mig_all_zero(const void *p, size_t len)
{
	const uint64_t *w = p;
	size_t i;

	/* Pages are 8-byte aligned multiples; OR a cache line at a time. */
	for (i = 0; i + 8 <= len / 8; i += 8)
		if (w[i] | w[i + 1] | w[i + 2] | w[i + 3] | w[i + 4] | w[i + 5] | w[i + 6] |
		    w[i + 7])
			return false;
	for (; i < len / 8; i++)
		if (w[i])
			return false;
	for (i = len / 8 * 8; i < len; i++)
		if (((const uint8_t *)p)[i])
			return false;
	return true;
}
