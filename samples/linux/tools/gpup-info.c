// SPDX-License-Identifier: MIT
/*
 * gpup-info: what the vGPU says it is, from inside a Linux guest, and a
 * FILL + COPY round trip to show it works.  Exits 0 when it does.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "gpup.h"

static int roundtrip(struct gpup_dev *d)
{
	struct gpup_buf v, s;
	int q = gpup_queue(d, GPUP_ENGINE_COPY), rc;

	if (q < 0)
		return q;
	rc = gpup_buf_alloc(d, &v, 4096, GPUP_DOMAIN_VRAM);
	if (rc)
		return rc;
	rc = gpup_buf_alloc(d, &s, 4096, GPUP_DOMAIN_SYSTEM);
	if (!rc) {
		union gpup_cmd c[2] = {
			gpup_cmd_fill(GPUP_SPACE_VRAM, gpup_addr(&v, 0), 4096, 0x600df00du),
			gpup_cmd_copy(GPUP_SPACE_VRAM, gpup_addr(&v, 0), GPUP_SPACE_IOVA,
				      gpup_addr(&s, 0), 4096),
		};
		rc = gpup_run(d, (uint32_t)q, c, 2, 5000000000ull);
		if (!rc && (((uint32_t *)s.map)[1023] != 0x600df00du ||
			    ((volatile uint32_t *)v.map)[7] != 0x600df00du))
			rc = -EIO;
		gpup_buf_free(d, &s);
	}
	gpup_buf_free(d, &v);
	return rc;
}

int main(int argc, char **argv)
{
	struct gpup_dev d;
	const struct gpup_ioc_info *i = &d.info;
	int rc = gpup_open(&d, argc > 1 ? argv[1] : NULL);

	if (rc) {
		fprintf(stderr, "gpup-info: %s: %s\n", argc > 1 ? argv[1] : "/dev/gpup0",
			strerror(-rc));
		return 2;
	}
	printf("gpup-info: %s ABI %u.%u, %llu MiB VRAM (%llu MiB free), %u queues "
	       "(%u free), %u engines, kernels 0x%x, caps 0x%x, faults %u, clock %llu ns\n",
	       i->pci_name, i->abi >> 16, i->abi & 0xffff,
	       (unsigned long long)(i->vram_size >> 20), (unsigned long long)(i->vram_free >> 20),
	       i->num_queues, i->free_queues, i->num_engines, i->kernels, i->caps,
	       i->fault_count, (unsigned long long)i->time_ns);
	rc = roundtrip(&d);
	printf("gpup-info: fill + copy round trip: %s\n", rc ? strerror(-rc) : "ok");
	gpup_close(&d);
	return rc ? 1 : 0;
}
