// SPDX-License-Identifier: MIT
/*
 * dirty: a guest that keeps changing its memory and proves, after every
 * epoch, that not one byte was lost.  It is the witness for moves of a
 * running VM or partition (checkpoints, migration): whatever the host
 * does, every byte of the guest RAM and VRAM working sets must read back
 * as what the guest last wrote there, and every fence as the value it was
 * given.
 *
 * The working sets are cut into 4 KiB blocks.  Each epoch rewrites a
 * window of blocks at the configured rate, in runs of up to 64 KiB, each
 * run one of: CPU stores (to RAM, or to VRAM through the BAR2 mapping),
 * FILL, COPY (RAM or VRAM to RAM or VRAM, from a block the epoch does not
 * touch) or a RENDER kernel launch (a FILL where the partition does not
 * offer RENDER), spread over a compute and a copy queue.  No shadow copy is kept: a block's contents are a function of
 * one 64-bit key (what wrote it, a stamp from the seed and a counter),
 * and a copy hands its source's keys to its destination.  At the end of
 * an epoch the guest waits for its fences, checks every fence word
 * holds exactly its value, then reads back every byte of both working
 * sets (VRAM through BAR2).  A host that pauses the VM or stops the
 * device only makes fences late: the waits are bounded by timeout=.
 *
 * A GPU failure the host recovered the partition from (STATUS.RECOVERED,
 * docs/MIGRATION.md "Failover") rolls VRAM back to the last protection
 * checkpoint and stops the queues.  Each queue's Q_FENCE says which of
 * its fences the checkpoint had completed; every block whose last write
 * was a device command that completed by then must hold exactly what the
 * guest wrote, and is checked at once.  Every other block (written by
 * the CPU, whose stores the checkpoint may or may not have caught, or by
 * a command after the fence) is written again: FILLs are resubmitted to
 * the device, the rest stored by the CPU from the block's key.  The
 * epoch's fences so far are resubmitted, and the epoch goes on.  The GPU
 * may also fail while the guest reads its blocks back at the end of an
 * epoch: the recovery then rolls back VRAM the guest's fences had
 * already vouched for.  So a VRAM block that reads wrong is only wrong
 * once a round trip through each queue shows no recovery came (a failed
 * device completes nothing until it has been recovered, and then says
 * so); if one came, it is handled and the epoch verified again.
 *
 * Command line (all optional):
 *   rate=MIB     MiB/s dirtied over RAM and VRAM together, spread in
 *                proportion to their sizes (default 16)
 *   ram=MIB      guest RAM working set (default 8)
 *   vram=MIB     VRAM working set (default 8; 0: RAM only, CPU stores
 *                only, no device needed, e.g. under QEMU)
 *   epoch=MS     epoch length (default 200)
 *   ms=MS        run for this long (default 3000), or epochs=N
 *   seed=N       pattern seed (default 1)
 *   timeout=S    longest a fence may take before the device counts as
 *                stuck (default 30)
 * Exit: 0 every byte and fence verified, 2 no vGPU, 3 bad command line or
 * setup, 4 a wrong byte or fence (the first one is printed: where,
 * expected, found, and who wrote the block in which epoch), 5 device error
 * (a GPU lost and not recovered included).
 */
#include "vgpu_drv.h"

#define EXIT_NODEV 2
#define EXIT_SETUP 3
#define EXIT_WRONG 4
#define EXIT_DEVICE 5

#define BLOCK 4096u
#define WORDS (BLOCK / 8)
#define RUN 16u              /* blocks per operation: 64 KiB */
#define SLICES 10u           /* pacing steps per epoch */
#define BATCH 64u            /* packets per queue per submission */
#define Q_COMPUTE 0u
#define Q_COPY 1u
#define NQ 2u
#define EPOCH_RING 1024u     /* epochs whose end fences are remembered */
#define WQ_CPU 0xffu         /* last written by the CPU, not a queue */
#define VERIFY_AGAIN (-1)    /* a recovery came meanwhile: verify again */

/* What a block holds: the kind in the top 4 bits of its key. */
#define KIND_SHIFT 60
enum kind { K_ZERO, K_WORDS, K_FILL, K_RENDER };
#define GOLDEN 0x9e3779b97f4a7c15ull

/* Who wrote a block last (for the report): meta = writer | epoch << 3. */
enum writer { W_NONE, W_CPU, W_FILL, W_COPY_RAM, W_COPY_VRAM, W_RENDER };
static const char *const writer_name[] = {
	"nobody (zero since start)", "CPU stores", "FILL", "COPY from RAM",
	"COPY from VRAM", "RENDER",
};

struct region {
	const char *name;
	bool vram;
	volatile uint8_t *cpu;   /* as the CPU addresses it */
	uint64_t base;           /* IOVA, or VRAM offset */
	uint64_t first, n;       /* blocks in the combined numbering */
};

struct dirty {
	struct vg_dev dev;
	bool gpu, render;        /* a device; one that offers RENDER */
	uint64_t rate, epoch_ms, run_ns, epochs, timeout_ns, seed, rng, stamp;
	struct region r[2];      /* RAM, then VRAM */
	uint64_t total;          /* blocks in both */
	uint64_t *key;
	uint32_t *meta;
	uint64_t cursor, win, win_len;   /* this epoch's window */
	uint32_t epoch;
	union gpup_cmd batch[NQ][BATCH];
	unsigned int nbatch[NQ];
	volatile uint64_t *fences;       /* [NQ][SLICES]: one word per slice fence */
	uint64_t dirtied[2], verified, nfences, worst_ns;
	/* For recovery: each block's last write, as an ordinal (1 + epoch *
	 * (SLICES + 1) + slice; 0 before epoch 0) and its queue (WQ_CPU:
	 * the CPU); the slice running; each queue's slice fences queued this
	 * epoch and the driver fence that ended each recent epoch. */
	uint32_t *word;
	uint8_t *wq;
	unsigned int k;
	unsigned int fences_queued[NQ];
	uint64_t setup_seq[NQ], end_seq[NQ][EPOCH_RING];
	uint64_t recoveries, rechecked, redone;
};

static struct dirty D;

static uint64_t splitmix(uint64_t *s)
{
	uint64_t z = (*s += GOLDEN);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

static uint64_t new_key(enum kind k)
{
	uint64_t s = D.stamp++ ^ D.seed << 40;

	return ((uint64_t)k << KIND_SHIFT) | (splitmix(&s) >> 4);
}

static uint32_t fill_pattern(uint64_t key)
{
	uint64_t s = key;

	return (uint32_t)splitmix(&s);
}

/* The 4 KiB a key stands for. */
static void gen_block(uint64_t key, uint64_t *w)
{
	uint64_t s = key, h, p;

	switch (key >> KIND_SHIFT) {
	case K_WORDS:
		h = splitmix(&s);
		for (unsigned int i = 0; i < WORDS; i++)
			w[i] = h + i * GOLDEN;
		break;
	case K_FILL:
		p = fill_pattern(key);
		p |= p << 32;
		for (unsigned int i = 0; i < WORDS; i++)
			w[i] = p;
		break;
	case K_RENDER:
		/* row y (bits 32..47) of a 1024-pixel-wide frame (bits 0..31) */
		for (unsigned int i = 0; i < WORDS; i++)
			w[i] = gpup_render_pixel(2 * i, (uint32_t)(key >> 32) & 0xffff, (uint32_t)key) |
			       (uint64_t)gpup_render_pixel(2 * i + 1, (uint32_t)(key >> 32) & 0xffff,
							   (uint32_t)key) << 32;
		break;
	default:
		memset(w, 0, BLOCK);
	}
}

static struct region *region_of(uint64_t b)
{
	return b < D.r[0].first + D.r[0].n ? &D.r[0] : &D.r[1];
}

static volatile uint64_t *block_cpu(const struct region *r, uint64_t b)
{
	return (volatile uint64_t *)(r->cpu + (b - r->first) * BLOCK);
}

static uint64_t block_addr(const struct region *r, uint64_t b)
{
	return r->base + (b - r->first) * BLOCK;
}

static uint8_t space_of(const struct region *r)
{
	return r->vram ? GPUP_SPACE_VRAM : GPUP_SPACE_IOVA;
}

static uint32_t ordinal(uint32_t epoch, unsigned int k)
{
	return 1 + epoch * (SLICES + 1) + k;
}

/* q: the queue that writes it, or WQ_CPU. */
static void set_block(uint64_t b, uint64_t key, enum writer w, unsigned int q)
{
	D.key[b] = key;
	D.meta[b] = (uint32_t)w | D.epoch << 3;
	D.word[b] = ordinal(D.epoch, D.k);
	D.wq[b] = (uint8_t)q;
}

/* ---- the device ---- */

static bool device_gone(void)
{
	return D.gpu && vg_read(&D.dev, GPUP_REG_ID) != GPUP_ID_MAGIC;
}

static int recover(void);

/* The host recovered the partition on another GPU (see the top). */
static bool recovered(int rc)
{
	return rc == VG_ERR_FAULT && D.gpu &&
	       (vg_read(&D.dev, GPUP_REG_STATUS) & GPUP_STS_RECOVERED);
}

/* Packets found a stopped queue because the device was recovered: what
 * they were to write is written again by recover(). */
static int flush(unsigned int q)
{
	int rc = D.nbatch[q] ? vg_submit(&D.dev, q, D.batch[q], D.nbatch[q]) : 0;

	D.nbatch[q] = 0;
	return recovered(rc) ? recover() : rc;
}

static int fence_wait(unsigned int q)
{
	int rc = vg_fence_wait(&D.dev, q, D.timeout_ns);

	while (recovered(rc) && !(rc = recover()))
		rc = vg_fence_wait(&D.dev, q, D.timeout_ns);
	return rc;
}

static int queue_cmd(unsigned int q, union gpup_cmd c)
{
	if (D.nbatch[q] == BATCH) {
		int rc = flush(q);

		if (rc)
			return rc;
	}
	D.batch[q][D.nbatch[q]++] = c;
	return 0;
}

static int device_error(const char *what, int rc, unsigned int q)
{
	rt_printf("dirty: epoch %u: device error %d %s on queue %u (fault code %u)\n", D.epoch,
		  rc, what, q, device_gone() ? 0 : vg_queue_fault(&D.dev, q));
	return EXIT_DEVICE;
}

/* ---- one run of blocks, written one way ---- */

static void op_cpu(const struct region *r, uint64_t b, unsigned int n)
{
	static uint64_t w[WORDS];

	for (unsigned int i = 0; i < n; i++) {
		volatile uint64_t *dst = block_cpu(r, b + i);
		uint64_t key = new_key(K_WORDS);

		gen_block(key, w);
		for (unsigned int j = 0; j < WORDS; j++)
			dst[j] = w[j];
		set_block(b + i, key, W_CPU, WQ_CPU);
	}
}

static int op_fill(const struct region *r, uint64_t b, unsigned int n)
{
	uint64_t key = new_key(K_FILL);
	unsigned int q = D.stamp & 1 ? Q_COMPUTE : Q_COPY;

	for (unsigned int i = 0; i < n; i++)
		set_block(b + i, key, W_FILL, q);
	return queue_cmd(q, gpup_cmd_fill(space_of(r), block_addr(r, b), (uint64_t)n * BLOCK,
					  fill_pattern(key)));
}

static int op_render(const struct region *r, uint64_t b, unsigned int n)
{
	uint64_t frame = new_key(K_RENDER) & 0xffffffffu;
	uint64_t args[5] = { BLOCK / 4, n, BLOCK, block_addr(r, b), frame };

	for (unsigned int i = 0; i < n; i++)
		set_block(b + i, (uint64_t)K_RENDER << KIND_SHIFT | (uint64_t)i << 32 | frame,
			  W_RENDER, Q_COMPUTE);
	return queue_cmd(Q_COMPUTE, gpup_cmd_kernel(GPUP_KERNEL_RENDER, args, 5));
}

/* A source run outside this epoch's window, inside one region: its
 * blocks stay as they are until the epoch's end, so the copy's result
 * does not depend on when the engine gets to it. */
static bool pick_source(unsigned int n, uint64_t *src)
{
	uint64_t outside = D.total - D.win_len;

	for (int tries = 0; tries < 4 && outside >= n; tries++) {
		uint64_t p = (D.win + D.win_len + splitmix(&D.rng) % (outside - n + 1)) % D.total;
		const struct region *r = region_of(p);

		if (p + n <= r->first + r->n) {
			*src = p;
			return true;
		}
	}
	return false;
}

static int op_copy(const struct region *r, uint64_t b, unsigned int n)
{
	const struct region *s;
	uint64_t src;

	if (!pick_source(n, &src))
		return op_fill(r, b, n);
	s = region_of(src);
	for (unsigned int i = 0; i < n; i++) {
		D.key[b + i] = D.key[src + i];
		D.meta[b + i] = (uint32_t)(s->vram ? W_COPY_VRAM : W_COPY_RAM) | D.epoch << 3;
		D.word[b + i] = ordinal(D.epoch, D.k);
		D.wq[b + i] = Q_COPY;
	}
	return queue_cmd(Q_COPY, gpup_cmd_copy(space_of(s), block_addr(s, src), space_of(r),
					       block_addr(r, b), (uint64_t)n * BLOCK));
}

static int write_run(uint64_t b, unsigned int n)
{
	const struct region *r = region_of(b);
	uint64_t how = D.gpu ? splitmix(&D.rng) % (r->vram ? 4 : 3) : 0;

	D.dirtied[r->vram] += (uint64_t)n * BLOCK;
	if (how == 0) {
		op_cpu(r, b, n);
		return 0;
	}
	if (how == 2)
		return op_copy(r, b, n);
	/* a partition masked to a generation without RENDER gets FILLs */
	return how == 3 && D.render ? op_render(r, b, n) : op_fill(r, b, n);
}

/* ---- pacing ---- */

static void sleep_until(uint64_t deadline)
{
	uint64_t now, n;

	while ((now = rt_ns()) < deadline) {
		if (!D.gpu) {
			/* no device: maybe no interrupt controller either */
			__asm__ volatile("pause");
			continue;
		}
		n = rt_irq_count;
		rt_apic_timer_arm(deadline - now);
		rt_halt_unless(&rt_irq_count, n + 1);
	}
}

/* Slice k's fence on queue q: its value names the epoch (plus one, so
 * that it is never a value the driver's own fences reach) and the slice. */
static union gpup_cmd slice_fence(unsigned int q, unsigned int k)
{
	return gpup_cmd_fence(GPUP_SPACE_IOVA, vg_iova(&D.fences[q * SLICES + k]),
			      (uint64_t)(D.epoch + 1) << 32 | (k + 1), 0);
}

/* Write the window's blocks from *done up to upto, then submit each
 * queue's batch behind a fence for this slice. */
static int slice(unsigned int k, uint64_t *done, uint64_t upto)
{
	int rc = 0;

	D.k = k;
	while (!rc && *done < upto) {
		uint64_t b = (D.win + *done) % D.total;
		const struct region *r = region_of(b);
		uint64_t n = upto - *done, end = r->first + r->n - b;

		n = n < RUN ? n : RUN;
		n = n < end ? n : end;
		rc = write_run(b, (unsigned int)n);
		*done += n;
	}
	for (unsigned int q = 0; D.gpu && !rc && q < NQ; q++) {
		rc = queue_cmd(q, slice_fence(q, k));
		D.fences_queued[q] = k + 1;
		if (!rc)
			rc = flush(q);
		if (rc)
			return device_error("submitting", rc, q);
	}
	return rc;
}

/* ---- checks ---- */

static int report(const struct region *r, uint64_t b, unsigned int word, uint64_t want,
		  uint64_t got)
{
	unsigned int byte = (unsigned int)__builtin_ctzll(want ^ got) / 8;
	uint64_t off = (b - r->first) * BLOCK + word * 8u + byte;
	uint32_t m = D.meta[b];

	if (r->vram && device_gone()) {
		rt_printf("dirty: epoch %u: device error %d (the device is gone, its VRAM with "
			  "it)\n", D.epoch, VG_ERR_LOST);
		return EXIT_DEVICE;
	}
	if (r->vram)
		rt_printf("dirty: epoch %u: VRAM offset 0x%lx (BAR2 address 0x%lx)", D.epoch,
			  r->base + off, (uint64_t)(uintptr_t)r->cpu + off);
	else
		rt_printf("dirty: epoch %u: RAM address 0x%lx", D.epoch, r->base + off);
	rt_printf(": expected 0x%02x, found 0x%02x; block written by %s in epoch %u\n",
		  (unsigned int)(want >> (byte * 8)) & 0xff, (unsigned int)(got >> (byte * 8)) & 0xff,
		  writer_name[m & 7], m >> 3);
	return EXIT_WRONG;
}

/* A VRAM block read wrong after its fences completed: was the device
 * recovered since, VRAM rolled back to its checkpoint?  A round trip
 * through each queue tells (see the top).  VERIFY_AGAIN if it was, else
 * the wrong byte reported. */
static int wrong_vram(const struct region *r, uint64_t b, unsigned int word, uint64_t want,
		      uint64_t got)
{
	uint64_t recoveries = D.recoveries;

	for (unsigned int q = 0; q < NQ; q++) {
		int rc = fence_wait(q);

		if (rc)
			return device_error("waiting for a fence", rc, q);
	}
	return D.recoveries != recoveries ? VERIFY_AGAIN : report(r, b, word, want, got);
}

static int verify_blocks(void)
{
	static uint64_t w[WORDS];

	for (uint64_t b = 0; b < D.total; b++) {
		const struct region *r = region_of(b);
		const volatile uint64_t *p = block_cpu(r, b);

		gen_block(D.key[b], w);
		for (unsigned int i = 0; i < WORDS; i++) {
			uint64_t got = p[i];

			if (got == w[i])
				continue;
			return r->vram ? wrong_vram(r, b, i, w[i], got) : report(r, b, i, w[i], got);
		}
	}
	D.verified += D.total * BLOCK;
	return 0;
}

/* Late is allowed, wrong is not: each slice's fence word must hold
 * exactly the value it was given, and the driver's own fence its count. */
static int verify_fences(void)
{
	for (unsigned int q = 0; q < NQ; q++) {
		int rc;

		D.end_seq[q][D.epoch % EPOCH_RING] = D.dev.q[q].seq + 1;
		rc = fence_wait(q);
		if (rc)
			return device_error(rc == VG_ERR_TIMEOUT ? "(fence late past timeout=)"
								 : "waiting for a fence", rc, q);
		if (*D.dev.q[q].fence != D.dev.q[q].seq) {
			rt_printf("dirty: epoch %u: queue %u's fence holds %lu, expected %lu\n",
				  D.epoch, q, *D.dev.q[q].fence, D.dev.q[q].seq);
			return EXIT_WRONG;
		}
		for (unsigned int k = 0; k < SLICES; k++) {
			uint64_t want = (uint64_t)(D.epoch + 1) << 32 | (k + 1);
			uint64_t got = D.fences[q * SLICES + k];

			if (got != want) {
				rt_printf("dirty: epoch %u: fence %u of queue %u (address 0x%lx) holds "
					  "0x%lx, expected 0x%lx\n", D.epoch, k, q,
					  vg_iova(&D.fences[q * SLICES + k]), got, want);
				return EXIT_WRONG;
			}
			D.nfences++;
		}
	}
	return 0;
}

/* ---- after a GPU failure the host recovered the partition from ---- */

/* The ordinal up to which queue q's commands had completed in the
 * checkpoint, from its Q_FENCE: a slice fence names its epoch and slice;
 * a driver fence is mapped to the last epoch it is known to have ended
 * (never later: a block taken as settled must be).  -1: none. */
static int64_t fence_point(unsigned int q)
{
	uint32_t base = GPUP_REG_QUEUE(q);
	uint64_t v = vg_read(&D.dev, base + GPUP_Q_FENCE_LO) |
		     (uint64_t)vg_read(&D.dev, base + GPUP_Q_FENCE_HI) << 32;

	if (!v)
		return -1;
	if (v >> 32)
		return ordinal((uint32_t)(v >> 32) - 1, (unsigned int)(v & 0xffffffffu) - 1);
	for (uint32_t e = D.epoch + 1; e-- > 0 && D.epoch - e < EPOCH_RING;)
		if (D.end_seq[q][e % EPOCH_RING] && D.end_seq[q][e % EPOCH_RING] <= v)
			return ordinal(e, SLICES);
	return v >= D.setup_seq[q] && D.setup_seq[q] ? 0 : -1;
}

/* Queue a packet for recovery's own resubmission (no nested recovery). */
static int push(unsigned int q, union gpup_cmd c)
{
	int rc = 0;

	if (D.nbatch[q] == BATCH) {
		rc = vg_submit(&D.dev, q, D.batch[q], D.nbatch[q]);
		D.nbatch[q] = 0;
	}
	D.batch[q][D.nbatch[q]++] = c;
	return rc;
}

/* Block b again as its key says: a FILL to the device, else CPU stores. */
static int redo(uint64_t b)
{
	static uint64_t w[WORDS];
	const struct region *r = region_of(b);
	volatile uint64_t *dst = block_cpu(r, b);

	D.redone += BLOCK;
	D.word[b] = ordinal(D.epoch, D.k);
	if (D.key[b] >> KIND_SHIFT == K_FILL) {
		D.wq[b] = Q_COPY;
		return push(Q_COPY, gpup_cmd_fill(space_of(r), block_addr(r, b), BLOCK,
						  fill_pattern(D.key[b])));
	}
	D.wq[b] = WQ_CPU;
	gen_block(D.key[b], w);
	for (unsigned int j = 0; j < WORDS; j++)
		dst[j] = w[j];
	return 0;
}

static int check_block(uint64_t b)
{
	static uint64_t w[WORDS];
	const struct region *r = region_of(b);
	const volatile uint64_t *p = block_cpu(r, b);

	gen_block(D.key[b], w);
	for (unsigned int i = 0; i < WORDS; i++)
		if (p[i] != w[i])
			return report(r, b, i, w[i], p[i]);
	D.rechecked += BLOCK;
	return 0;
}

/* Check what the checkpoint must hold, write the rest again, resubmit
 * the epoch's fences so far, restart the queues. */
static int recover(void)
{
	int64_t p[NQ];
	int rc = 0;

	D.recoveries++;
	vg_write(&D.dev, GPUP_REG_INTR_STATUS, GPUP_INTR_RECOVERED);
	for (unsigned int q = 0; q < NQ; q++) {
		p[q] = fence_point(q);
		vg_queue_restart(&D.dev, q);
		D.nbatch[q] = 0;
	}
	for (uint64_t b = 0; b < D.total && !rc; b++)
		rc = D.wq[b] != WQ_CPU && (int64_t)D.word[b] <= p[D.wq[b]] ? check_block(b) : redo(b);
	for (unsigned int q = 0; q < NQ && !rc; q++)
		for (unsigned int k = 0; k < D.fences_queued[q] && !rc; k++)
			rc = push(q, slice_fence(q, k));
	for (unsigned int q = 0; q < NQ && !rc; q++) {
		rc = D.nbatch[q] ? vg_submit(&D.dev, q, D.batch[q], D.nbatch[q]) : 0;
		D.nbatch[q] = 0;
		if (!rc)
			rc = vg_fence_wait(&D.dev, q, D.timeout_ns);
	}
	if (rc > 0)
		return rc; /* a wrong byte, reported */
	if (rc)
		return device_error("resubmitting after a recovery", rc, Q_COPY);
	rt_printf("dirty: epoch %u: device recovered (checkpoint at fences %ld, %ld): %lu MiB "
		  "checked as it held them, %lu MiB written again\n", D.epoch, p[0], p[1],
		  D.rechecked >> 20, D.redone >> 20);
	return 0;
}

/* ---- the run ---- */

static int epoch(void)
{
	uint64_t t0 = rt_ns(), budget = D.rate * D.epoch_ms / 1000, done = 0, dt;
	int rc = 0;

	D.win = D.cursor;
	D.k = 0;
	for (unsigned int q = 0; q < NQ; q++) {
		D.fences_queued[q] = 0;
		D.end_seq[q][D.epoch % EPOCH_RING] = 0;
	}
	D.win_len = (budget + BLOCK - 1) / BLOCK;
	if (D.win_len > D.total - RUN)
		D.win_len = D.total - RUN; /* copies need a source outside */
	for (unsigned int k = 0; k < SLICES && !rc; k++) {
		rc = slice(k, &done, D.win_len * (k + 1) / SLICES);
		/* after a pause the epoch's remaining steps run back to back;
		 * its budget is fixed, so nothing piles up past the epoch */
		if (!rc)
			sleep_until(t0 + D.epoch_ms * 1000000ull * (k + 1) / SLICES);
	}
	while (!rc && !(rc = D.gpu ? verify_fences() : 0) &&
	       (rc = verify_blocks()) == VERIFY_AGAIN)
		rc = 0;
	D.cursor = (D.cursor + D.win_len) % D.total;
	dt = rt_ns() - t0;
	D.worst_ns = dt > D.worst_ns ? dt : D.worst_ns;
	return rc;
}

static int run(void)
{
	uint64_t t0 = rt_ns(), ms;
	int rc = 0;

	rt_printf("dirty: start: RAM 0x%lx+%lu, VRAM 0x%lx+%lu, %lu MiB/s, epochs of %lu ms%s\n",
		  D.r[0].base, D.r[0].n * BLOCK, D.r[1].base, D.r[1].n * BLOCK, D.rate >> 20,
		  D.epoch_ms, D.gpu && !D.render ? ", no RENDER kernel here: FILL instead" : "");
	while (!rc) {
		if (D.epochs ? D.epoch >= D.epochs : rt_ns() - t0 >= D.run_ns)
			break;
		rc = epoch();
		D.epoch++;
	}
	if (rc)
		return rc;
	ms = (rt_ns() - t0) / 1000000;
	rt_printf("dirty: ok: %u epochs in %lu ms, dirtied %lu MiB of RAM and %lu MiB of VRAM "
		  "(%lu MiB/s), verified %lu MiB and %lu fences, longest epoch %lu ms%s\n", D.epoch,
		  ms, D.dirtied[0] >> 20, D.dirtied[1] >> 20,
		  ms ? ((D.dirtied[0] + D.dirtied[1]) >> 20) * 1000 / ms : 0, D.verified >> 20,
		  D.nfences, D.worst_ns / 1000000, D.recoveries ? ", through a recovery" : "");
	return 0;
}

static int setup_device(uint64_t vram_bytes)
{
	int rc;

	rt_irq_init();
	rc = vg_open(&D.dev, 0);
	if (rc) {
		rt_printf("dirty: no usable vGPU (%d); vram=0 runs without one\n", rc);
		return EXIT_NODEV;
	}
	if (vg_queue_init(&D.dev, Q_COMPUTE, GPUP_ENGINE_COMPUTE) ||
	    vg_queue_init(&D.dev, Q_COPY, GPUP_ENGINE_COPY))
		return EXIT_SETUP;
	D.r[1].base = vg_vram_alloc(&D.dev, vram_bytes, BLOCK);
	if (D.r[1].base == ~0ull) {
		rt_printf("dirty: vram=%lu MiB does not fit in the partition's %lu MiB\n",
			  vram_bytes >> 20, D.dev.vram_size >> 20);
		return EXIT_SETUP;
	}
	D.r[1].cpu = D.dev.vram + D.r[1].base;
	D.gpu = true;
	D.render = vg_read(&D.dev, GPUP_REG_KERNELS) & (1u << GPUP_KERNEL_RENDER);
	/* A partition's VRAM is zero when it is made, not when a VM boots. */
	rc = queue_cmd(Q_COPY, gpup_cmd_fill(GPUP_SPACE_VRAM, D.r[1].base, vram_bytes, 0));
	if (!rc)
		rc = flush(Q_COPY);
	if (!rc)
		rc = vg_fence_wait(&D.dev, Q_COPY, D.timeout_ns);
	D.setup_seq[Q_COPY] = D.dev.q[Q_COPY].seq;
	return rc ? device_error("clearing VRAM", rc, Q_COPY) : 0;
}

static int setup(uint64_t ram_bytes, uint64_t vram_bytes)
{
	uint64_t total = (ram_bytes + vram_bytes) / BLOCK;
	void *ram;
	int rc;

	D.r[0] = (struct region){ .name = "RAM", .n = ram_bytes / BLOCK };
	D.r[1] = (struct region){ .name = "VRAM", .vram = true, .first = D.r[0].n,
				  .n = vram_bytes / BLOCK };
	D.total = total;
	if (vram_bytes && (rc = setup_device(vram_bytes)) != 0)
		return rc;
	ram = rt_alloc_pages(ram_bytes / BLOCK);
	D.key = rt_alloc_pages((total * 8 + BLOCK - 1) / BLOCK);
	D.meta = rt_alloc_pages((total * 4 + BLOCK - 1) / BLOCK);
	D.fences = rt_alloc_pages(1);
	D.word = rt_alloc_pages((total * 4 + BLOCK - 1) / BLOCK);
	D.wq = rt_alloc_pages((total + BLOCK - 1) / BLOCK);
	if (!ram || !D.key || !D.meta || !D.fences || !D.word || !D.wq) {
		rt_printf("dirty: ram=%lu MiB does not fit in the VM's %lu MiB\n", ram_bytes >> 20,
			  rt_ram_size() >> 20);
		return EXIT_SETUP;
	}
	D.r[0].cpu = ram;
	D.r[0].base = vg_iova(ram);
	/* VRAM starts as setup's FILL left it (ordinal 0), RAM as nobody's. */
	for (uint64_t b = 0; b < total; b++) {
		D.word[b] = 0;
		D.wq[b] = b < D.r[0].n ? WQ_CPU : Q_COPY;
	}
	return 0;
}

int main(const char *cmdline)
{
	uint64_t ram = rt_arg_u64(cmdline, "ram", 8), vram = rt_arg_u64(cmdline, "vram", 8);
	uint64_t ms = rt_arg_u64(cmdline, "ms", 3000);
	int rc;

	D.rate = rt_arg_u64(cmdline, "rate", 16) << 20;
	D.epochs = rt_arg_u64(cmdline, "epochs", 0);
	D.epoch_ms = rt_arg_u64(cmdline, "epoch", 200);
	D.seed = D.rng = rt_arg_u64(cmdline, "seed", 1);
	D.timeout_ns = rt_arg_u64(cmdline, "timeout", 30) * 1000000000ull;
	if (ram > 2048 || vram > 65536 || ram + vram < 1 || !D.epoch_ms ||
	    D.epoch_ms > 60000 || !ms || !D.rate || D.rate > (100000ull << 20) || !D.timeout_ns || !rt_tsc_khz()) {
		rt_printf("dirty: want ram=0..2048 and vram=0..65536 MiB (not both 0), "
			  "epoch=1..60000, ms>0, rate>0, timeout>0 (and a known TSC rate)\n");
		return EXIT_SETUP;
	}
	D.run_ns = ms * 1000000ull;
	rc = setup(ram << 20, vram << 20);
	return rc ? rc : run();
}
