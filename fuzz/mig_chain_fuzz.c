// SPDX-License-Identifier: MIT
/*
 * libFuzzer harness for the checkpoint chain link parser
 * (migrate/chain_load.c): the bytes of a link file, which the daemon
 * reads back from its store when it recovers a partition.  The input is
 * the file.  A link that mig_link_check accepts is applied to a VRAM
 * buffer of the size its HEADER names (when that is small enough to
 * allocate here), which must stay inside it and give back its STATE.
 * A link accepted once is accepted again with the same identity.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "migrate/mig.h"

#define MAX_VRAM (4u << 20)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
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
