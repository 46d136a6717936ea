// SPDX-License-Identifier: MIT
/*
 * libFuzzer harness for vfu/'s VERSION codec (vfu/caps.c), the first thing
 * either end parses of the other: the input is a VERSION payload as a
 * peer would send it (major, minor, then anything at all).  No sockets,
 * no threads, so it runs tens of thousands of inputs a second; the
 * vfu_msg harness covers the same codec inside whole sessions.
 *
 * Checked after each input:
 * - the result is 0 or -EINVAL, nothing else;
 * - a refusal leaves the capabilities exactly as they were;
 * - an accepted payload gives capabilities within their fields' ranges
 *   (a stated one is at least 1), and encoding them and decoding that
 *   again gives the same values: what we accept we can also say.
 */
#include <errno.h>
#include <string.h>

#include "fuzz/fuzz_util.h"
#include "vfu/vfu.h"

static bool same(const struct vfu_caps *a, const struct vfu_caps *b)
{
	return a->max_fds == b->max_fds && a->max_xfer == b->max_xfer &&
	       a->max_dma_maps == b->max_dma_maps && a->pgsizes == b->pgsizes;
}

static void check_round_trip(const struct vfu_caps *c, uint16_t major, uint16_t minor)
{
	uint8_t buf[512];
	struct vfu_caps back;
	uint16_t ma, mi;
	int n = vfu_version_encode(buf, sizeof(buf), major, minor, c);

	fz_check(n > 0, "cannot encode what was decoded: %d", n);
	vfu_caps_default(&back);
	back.max_dma_maps = 0;
	back.pgsizes = 0;
	fz_check(vfu_version_decode(buf, (uint32_t)n, &ma, &mi, &back) == 0,
		 "our own encoding is refused: %.*s", n - 4, (const char *)buf + 4);
	fz_check(ma == major && mi == minor, "version %u.%u came back %u.%u", major, minor, ma,
		 mi);
	fz_check(same(c, &back), "capabilities changed on the way: %.*s", n - 4,
		 (const char *)buf + 4);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct vfu_caps c, before;
	uint16_t major = 0, minor = 0;
	int rc;

	if (size > 65536)
		return 0;
	vfu_caps_default(&c);
	before = c;
	rc = vfu_version_decode(data, (uint32_t)size, &major, &minor, &c);
	fz_check(rc == 0 || rc == -EINVAL, "result %d", rc);
	if (rc) {
		fz_check(same(&c, &before), "a refused payload changed the capabilities");
		return 0;
	}
	fz_check(c.max_fds >= 1 && c.max_xfer >= 1, "a stated capability of 0");
	fz_check(c.pgsizes <= INT64_MAX, "pgsizes %llu", (unsigned long long)c.pgsizes);
	check_round_trip(&c, major, minor);
	return 0;
}
