// SPDX-License-Identifier: MIT
/*
 * libFuzzer harness for the vGPU device model as a guest drives it: BAR0
 * register reads and writes, doorbells, and the contents of guest memory
 * (rings, producer indices, command packets) that the command processor
 * reads by DMA.  Each input runs on a fresh vgpu over a 1 MiB window of a
 * 4 MiB sim GPU, beside a canary vgpu on the next window, with guest
 * memory laid out as
 *
 *   host:  | guard 16K | RW 64K (IOVA 0x100000) | RO 16K (IOVA 0x110000) | guard 16K |
 *
 * The input is a list of operations: raw BAR0 accesses (any offset and
 * length, whose return code must be exactly what the ABI promises), guest
 * stores into the RW window, queue setup and packet submission shortcuts
 * (so that the fuzzer reaches the command processor quickly; the packets
 * themselves are fuzzed bytes), waits for the engines, resets,
 * unmapping/remapping the RW window while queues may be running, and
 * switching the engines' scheduler (policy, slice, watchdog) under them.
 *
 * After the input the vgpu is destroyed (its queues detached, so no engine
 * touches anything any more) and the harness checks that nothing was
 * written outside what the partition may write: the guard pages and the
 * read-only window are unchanged, the RW window did not change while it
 * was unmapped, every byte of VRAM outside the partition's window (the
 * canary partition's included) is what it was, and the window itself
 * reads as zeros: its VRAM went back to the host with the partition.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "fuzz/fuzz_util.h"
#include "gpup/gpu/gpu.h"
#include "gpup/vgpu/vgpu.h"
#include "iommu/iommu.h"
#include "uapi/gpup_vgpu.h"

#define KIB (1ull << 10)
#define MIB (1ull << 20)
#define GPU_VRAM (4 * MIB)
#define PART_OFF (1 * MIB)
#define PART_SIZE (1 * MIB)
#define CANARY_OFF (2 * MIB)

#define GUARD (16 * KIB)
#define RW_SIZE (64 * KIB)
#define RO_SIZE (16 * KIB)
#define HOST_SIZE (GUARD + RW_SIZE + RO_SIZE + GUARD)
#define RW_IOVA 0x100000ull
#define RO_IOVA (RW_IOVA + RW_SIZE)
#define MAX_OPS 96
#define IDLE_WAIT_NS 20000000ull

static struct gpup_gpu *gpu;
static uint8_t *vram, *vram_ref;
static struct vgpu *canary;
static uint8_t *host, *host_ref;

struct run {
	struct iommu_domain *dom;
	struct vgpu *v;
	bool rw_mapped;
	uint32_t pi[GPUP_MAX_QUEUES];   /* what the harness last published */
};

static void init_once(void)
{
	struct gpup_gpu_cfg gc = { .index = 0, .vram_size = GPU_VRAM, .ncompute = 1, .ncopy = 1 };
	struct iommu_domain_cfg dc = { .name = "canary" };

	if (gpu)
		return;
	gpu = gpup_sim_gpu_create(&gc);
	fz_check(gpu, "sim GPU: %s", strerror(errno));
	struct vgpu_cfg cc = { .gpu = gpu, .vram_offset = CANARY_OFF, .vram_size = PART_SIZE,
			       .iommu = iommu_domain_create(&dc), .name = "canary" };

	canary = vgpu_create(&cc);
	fz_check(canary, "canary vgpu");
	vram = gpup_gpu_vram_map(gpu);
	vram_ref = malloc(GPU_VRAM);
	host = mmap(NULL, HOST_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	host_ref = malloc(HOST_SIZE);
	fz_check(vram && vram_ref && host != MAP_FAILED && host_ref, "memory");
	for (uint64_t i = 0; i < GPU_VRAM; i++)
		vram[i] = (uint8_t)(i * 131 + (i >> 12));
	memcpy(vram_ref, vram, GPU_VRAM);
}

static bool vram_outside_intact(void)
{
	return memcmp(vram, vram_ref, PART_OFF) == 0 &&
	       memcmp(vram + PART_OFF + PART_SIZE, vram_ref + PART_OFF + PART_SIZE,
		      GPU_VRAM - PART_OFF - PART_SIZE) == 0;
}

static uint8_t *rw(void)
{
	return host + GUARD;
}

static void map_rw(struct run *r)
{
	fz_check(iommu_map(r->dom, RW_IOVA, rw(), RW_SIZE, IOMMU_READ | IOMMU_WRITE) == 0, "map");
	r->rw_mapped = true;
}

/* ---- operations ---- */

static bool access_ok(uint64_t off, size_t len)
{
	return len >= 1 && len <= 8 && off < GPUP_BAR0_SIZE && len <= GPUP_BAR0_SIZE - off;
}

static void op_bar0(struct run *r, struct fz_in *in, bool write)
{
	static const size_t lens[] = { 4, 4, 4, 8, 8, 1, 2, 3 };
	uint64_t off = fz_u16(in) % (GPUP_BAR0_SIZE + 16);
	uint8_t sel = fz_u8(in);
	size_t len = lens[sel & 7];
	uint64_t val = fz_u64(in);
	int rc;

	if (sel & 0x40) /* a length no CPU access has: 0, 9 to 15 */
		len = (sel >> 3) & 7 ? 8 + ((sel >> 3) & 7) : 0;
	if (sel & 0x80) /* a far offset */
		off |= (uint64_t)fz_u32(in) << 14;
	rc = write ? vgpu_bar0_write(r->v, off, &val, len) : vgpu_bar0_read(r->v, off, &val, len);
	fz_check(rc == (access_ok(off, len) ? 0 : -EINVAL), "BAR0 %s of %zu at %#llx: %d",
		 write ? "write" : "read", len, (unsigned long long)off, rc);
	if (!write && !rc && off == GPUP_REG_ID) {
		uint32_t id = GPUP_ID_MAGIC;

		fz_check(memcmp(&val, &id, len < 4 ? len : 4) == 0, "ID reads %#x", (uint32_t)val);
	}
	if (!write && !rc && off == GPUP_REG_VRAM_SIZE_LO && len == 8)
		fz_check(val == PART_SIZE, "VRAM size reads %#llx", (unsigned long long)val);
}

static void reg(struct run *r, uint32_t off, uint32_t val)
{
	fz_check(vgpu_bar0_write(r->v, off, &val, 4) == 0, "register %#x", off);
}

static uint32_t reg_rd(struct run *r, uint32_t off)
{
	uint32_t val = 0;

	fz_check(vgpu_bar0_read(r->v, off, &val, 4) == 0, "register %#x", off);
	return val;
}

/* The guest CPU stores into its RW window (always allowed: it is the
 * guest's memory whether or not the device may reach it). */
static void op_store(struct fz_in *in)
{
	uint32_t off = fz_u16(in) % RW_SIZE;
	size_t len = fz_u8(in) % 72;

	if (len > RW_SIZE - off)
		len = RW_SIZE - off;
	fz_bytes(in, rw() + off, len);
	memcpy(host_ref + GUARD + off, rw() + off, len);
}

/* A queue's ring at the start of the RW window (entries from the input,
 * 2..64), its PI word at RW + 0xf000 + 4q; enable the device and it. */
static void op_setup(struct run *r, struct fz_in *in)
{
	uint8_t b = fz_u8(in);
	unsigned int q = b % GPUP_MAX_QUEUES, base = GPUP_REG_QUEUE(q);
	uint32_t entries = 2u << (fz_u8(in) % 6);
	uint64_t pi_iova = RW_IOVA + 0xf000 + 4 * q;

	reg(r, base + GPUP_Q_CONTROL, 0);
	reg(r, base + GPUP_Q_RING_LO, (uint32_t)(RW_IOVA + q * 0x1000));
	reg(r, base + GPUP_Q_RING_HI, 0);
	reg(r, base + GPUP_Q_RING_ENTRIES, entries);
	reg(r, base + GPUP_Q_ENGINE, (b >> 3) & 1);
	reg(r, base + GPUP_Q_PI_ADDR_LO, (uint32_t)pi_iova);
	reg(r, base + GPUP_Q_PI_ADDR_HI, 0);
	reg(r, base + GPUP_Q_VECTOR, q);
	reg(r, GPUP_REG_CONTROL, GPUP_CTRL_ENABLE);
	reg(r, base + GPUP_Q_CONTROL, GPUP_QCTL_ENABLE);
	memcpy(&r->pi[q], rw() + 0xf000 + 4 * q, 4);
}

/* One fuzzed packet into queue q's next slot, PI bumped, doorbell rung. */
static void op_submit(struct run *r, struct fz_in *in)
{
	unsigned int q = fz_u8(in) % GPUP_MAX_QUEUES;
	uint32_t entries = reg_rd(r, GPUP_REG_QUEUE(q) + GPUP_Q_RING_ENTRIES);
	uint32_t slot = entries && !(entries & (entries - 1)) ? r->pi[q] % entries : 0;
	uint32_t off = q * 0x1000 + (slot % 64) * GPUP_CMD_SIZE;
	uint8_t *pkt = rw() + off;

	fz_bytes(in, pkt, GPUP_CMD_SIZE);
	/* Keep the opcode in range most of the time. */
	if (!(pkt[1] & 0x80))
		pkt[0] %= GPUP_OP_MAX;
	r->pi[q]++;
	memcpy(rw() + 0xf000 + 4 * q, &r->pi[q], 4);
	memcpy(host_ref + GUARD + off, pkt, GPUP_CMD_SIZE);
	memcpy(host_ref + GUARD + 0xf000 + 4 * q, &r->pi[q], 4);
	reg(r, GPUP_DOORBELL(q), 1);
}

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* Until every running queue has consumed what was published, or a WAIT
 * (or a long kernel) keeps it; bounded.  Polled finely: most waits end
 * well under a millisecond, and the poll is what they cost beyond that. */
static void op_idle(struct run *r)
{
	uint64_t end = now_ns() + IDLE_WAIT_NS;

	for (;;) {
		bool busy = false;

		for (unsigned int q = 0; q < GPUP_MAX_QUEUES; q++) {
			uint32_t st = reg_rd(r, GPUP_REG_QUEUE(q) + GPUP_Q_STATUS);
			uint32_t ci = reg_rd(r, GPUP_REG_QUEUE(q) + GPUP_Q_CI);

			busy |= (st & GPUP_QSTS_ENABLED) && !(st & GPUP_QSTS_FAULTED) &&
				ci != r->pi[q];
		}
		if (!busy || now_ns() > end)
			return;
		usleep(50);
	}
}

/* Unmap the RW window (what the device may still do to it must stop
 * here), or check it was left alone and map it again. */
static void op_toggle_map(struct run *r)
{
	if (r->rw_mapped) {
		fz_check(iommu_unmap(r->dom, RW_IOVA, RW_SIZE) == 0, "unmap");
		r->rw_mapped = false;
		memcpy(host_ref + GUARD, rw(), RW_SIZE);
		return;
	}
	fz_check(memcmp(rw(), host_ref + GUARD, RW_SIZE) == 0,
		 "the device wrote guest memory after it was unmapped");
	map_rw(r);
}

/* The engines' scheduler, as an administrator may set it while guests
 * run: a policy, a slice and a watchdog (which faults queues stuck on a
 * WAIT), all fuzzed; or a fresh scheduler swapped in under the running
 * queues (best-effort, no watchdog, as a new engine starts). */
static void op_policy(struct fz_in *in)
{
	uint8_t b = fz_u8(in);
	unsigned int p = b % (SCHED_POLICY_COUNT + 1);
	uint64_t slice = b & 0x40 ? SCHED_SLICE_MIN_NS + fz_u32(in) % SCHED_SLICE_MAX_NS : 0;
	uint64_t wd = b & 0x80 ? 1000000ull + fz_u16(in) * 1000ull : 0;

	for (unsigned int k = 0; k < 2; k++) {
		struct gpup_engine *e = gpup_gpu_engine(gpu, k, 0);
		int rc;

		if (p == SCHED_POLICY_COUNT) {
			fz_check(gpup_engine_set_sched(e, &gpup_sched_tslice, NULL) == 0,
				 "fresh scheduler");
			continue;
		}
		if (slice > SCHED_SLICE_MAX_NS)
			slice = SCHED_SLICE_MAX_NS;
		rc = gpup_tsched_set_policy(e, (enum sched_policy)p, slice);
		fz_check(rc == 0, "policy %u slice %llu: %d", p, (unsigned long long)slice, rc);
		fz_check(gpup_tsched_set_watchdog(e, wd) == 0, "watchdog");
	}
}

static void run_ops(struct run *r, struct fz_in *in)
{
	for (int i = 0; i < MAX_OPS && in->n; i++) {
		/* Low nibble: the operation; high bits: its variant. */
		uint8_t op = fz_u8(in);

		switch ((op & 15) % 11) {
		case 0:
		case 1:
			op_bar0(r, in, (op & 15) == 0);
			break;
		case 2:
			op_store(in);
			break;
		case 3:
			op_setup(r, in);
			break;
		case 4:
		case 5:
			op_submit(r, in);
			break;
		case 6:
			op_idle(r);
			break;
		case 7:
			vgpu_doorbell(r->v, fz_u8(in) % (GPUP_MAX_QUEUES + 2));
			break;
		case 8:
			if (op & 0x80)
				vgpu_reset(r->v);
			else
				reg(r, GPUP_REG_CONTROL, op & 0x40 ? GPUP_CTRL_RESET : 0);
			break;
		case 9:
			op_toggle_map(r);
			break;
		default:
			op_policy(in);
			break;
		}
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fz_in in = { data, size };
	struct iommu_domain_cfg dc = { .name = "fuzz" };
	struct run r = { 0 };

	init_once();
	/* Each input starts where the daemon starts its engines (the
	 * time-slice scheduler, weighted, no watchdog); op_policy may change
	 * that. */
	for (unsigned int k = 0; k < 2; k++) {
		struct gpup_engine *e = gpup_gpu_engine(gpu, k, 0);

		fz_check(gpup_tsched_set_policy(e, SCHED_POLICY_WEIGHTED, 0) == 0 &&
			 gpup_tsched_set_watchdog(e, 0) == 0, "scheduler");
	}
	/* Guest memory: guards, then what the input says the guest wrote. */
	memset(host, 0xa5, HOST_SIZE);
	fz_bytes(&in, rw(), fz_u16(&in) % 1024);
	fz_bytes(&in, host + GUARD + RW_SIZE, fz_u8(&in));
	memcpy(host_ref, host, HOST_SIZE);

	r.dom = iommu_domain_create(&dc);
	fz_check(r.dom, "domain");
	map_rw(&r);
	fz_check(iommu_map(r.dom, RO_IOVA, host + GUARD + RW_SIZE, RO_SIZE, IOMMU_READ) == 0,
		 "map RO");
	struct vgpu_cfg vc = { .gpu = gpu, .vram_offset = PART_OFF, .vram_size = PART_SIZE,
			       .iommu = r.dom, .name = "fuzz" };

	r.v = vgpu_create(&vc);
	fz_check(r.v, "vgpu: %s", strerror(errno));
	run_ops(&r, &in);
	op_idle(&r);
	if (fz_verbose()) {
		struct vgpu_stats st;

		vgpu_get_stats(r.v, &st);
		fprintf(stderr, "commands %llu faults %llu interrupts %llu doorbells %llu\n",
			(unsigned long long)st.commands, (unsigned long long)st.faults,
			(unsigned long long)st.interrupts, (unsigned long long)st.doorbells);
	}
	vgpu_destroy(r.v);

	fz_check(memcmp(host, host_ref, GUARD) == 0 &&
		 memcmp(host + HOST_SIZE - GUARD, host_ref + HOST_SIZE - GUARD, GUARD) == 0,
		 "the device wrote a guard page of guest memory");
	fz_check(memcmp(host + GUARD + RW_SIZE, host_ref + GUARD + RW_SIZE, RO_SIZE) == 0,
		 "the device wrote read-only guest memory");
	if (!r.rw_mapped)
		fz_check(memcmp(rw(), host_ref + GUARD, RW_SIZE) == 0,
			 "the device wrote guest memory after it was unmapped");
	fz_check(vram_outside_intact(), "VRAM outside the partition's window changed");
	fz_check(fz_all_zero(vram + PART_OFF, PART_SIZE),
		 "the destroyed partition's VRAM was not released");
	iommu_domain_destroy(r.dom);
	return 0;
}
