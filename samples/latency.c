// SPDX-License-Identifier: MIT
/*
 * latency: what a guest waits for, sample by sample, for the VMM
 * benchmark (perf/hv_latency_perf.c computes the percentiles):
 *   fence  doorbell write -> FENCE packet run by the device -> MSI-X,
 *          with the vCPU halted until the interrupt (ioeventfd + irqfd:
 *          the VMM's userspace is not on the path)
 *   wait   the driver's default wait: spin VG_POLL_NS, then halt
 *   poll   the same without the interrupt: the vCPU spins on the fence
 *   vmm    one trapped MMIO write the VMM handles itself (MSI-X PBA page)
 *   reg    one trapped register write the VMM forwards to the daemon
 *          (REGION_WRITE of the SCRATCH register)
 *   ring0  a kernel call that does nothing: the cost of entering ring 0
 *          (the halt and the interrupt handler of the fence path run there)
 * Output: "latency: loop N ps per iteration" (how fast plain guest code
 * runs), "lat NAME ns ns ns ..." lines, then "latency: done".
 * Command line: n=SAMPLES (default 200).
 */
#include "vgpu_drv.h"

#define Q 0
#define MAX_SAMPLES 2000
#define PER_LINE 16

static struct vg_dev dev;
static uint64_t samples[MAX_SAMPLES];

static void print_samples(const char *name, unsigned int n)
{
	for (unsigned int i = 0; i < n; i += PER_LINE) {
		char line[PER_LINE * 12 + 16];
		int len = rt_snprintf(line, sizeof(line), "lat %s", name);

		for (unsigned int j = i; j < n && j < i + PER_LINE; j++)
			len += rt_snprintf(line + len, sizeof(line) - (size_t)len, " %lu",
					   rt_cycles_to_ns(samples[j]));
		rt_printf("%s\n", line);
	}
}

static int measure_fence(const char *name, unsigned int n, bool irq,
			 uint64_t poll_ns)
{
	dev.poll_ns = poll_ns;
	for (unsigned int i = 0; i < n; i++) {
		uint64_t t0 = rt_rdtsc();
		int rc = irq ? vg_fence_wait(&dev, Q, 1000000000ull) :
			       vg_fence_poll(&dev, Q, 1000000000ull);

		samples[i] = rt_rdtsc() - t0;
		if (rc) {
			rt_printf("latency: %s %u failed (%d)\n", name, i, rc);
			return 1;
		}
	}
	print_samples(name, n);
	return 0;
}

static void measure_ring0(unsigned int n)
{
	for (unsigned int i = 0; i < n; i++) {
		uint64_t t0 = rt_rdtsc();

		rt_kcall_nop();
		samples[i] = rt_rdtsc() - t0;
	}
	print_samples("ring0", n);
}

static void measure_write(const char *name, uint64_t addr, unsigned int n)
{
	for (unsigned int i = 0; i < n; i++) {
		uint64_t t0 = rt_rdtsc();

		rt_mmio_write32(addr, i);
		samples[i] = rt_rdtsc() - t0;
	}
	print_samples(name, n);
}

/* How fast this vCPU runs plain code: the scale for everything above,
 * since every sample includes some guest instructions. */
static void measure_loop(void)
{
	volatile uint64_t x = 0;
	uint64_t t0 = rt_rdtsc();

	for (unsigned int i = 0; i < 1000; i++)
		x += i;
	rt_printf("latency: loop %lu ps per iteration\n",
		  rt_cycles_to_ns((rt_rdtsc() - t0) * 1000) / 1000);
}

int main(const char *cmdline)
{
	unsigned int n = (unsigned int)rt_arg_u64(cmdline, "n", 200);

	if (n < 1 || n > MAX_SAMPLES) {
		rt_printf("latency: want n=1..%u\n", MAX_SAMPLES);
		return 3;
	}
	if (!rt_tsc_khz()) {
		rt_printf("latency: the TSC rate is unknown; cannot time\n");
		return 3;
	}
	rt_irq_init();
	if (vg_open(&dev, 0)) {
		rt_printf("latency: no usable vGPU\n");
		return 2;
	}
	dev.no_watch = rt_arg_flag(cmdline, "nowatch");
	if (vg_queue_init(&dev, Q, GPUP_ENGINE_COPY)) {
		rt_printf("latency: no usable vGPU\n");
		return 2;
	}
	measure_loop();
	if (measure_fence("fence", n, true, 0) ||
	    measure_fence("wait", n, true, VG_POLL_NS) ||
	    measure_fence("poll", n, false, 0))
		return 5;
	measure_write("vmm", dev.bar0 + GPUP_PAGE_MSIX_PBA, n);
	measure_write("reg", dev.bar0 + GPUP_REG_SCRATCH, n);
	measure_ring0(n);
	if (vg_read(&dev, GPUP_REG_SCRATCH) != n - 1) {
		rt_printf("latency: SCRATCH lost a write\n");
		return 4;
	}
	rt_printf("latency: doorbells rung %lu, skipped while watched %lu\n",
		  dev.q[Q].doorbells, dev.q[Q].doorbells_skipped);
	rt_printf("latency: done\n");
	return 0;
}
