// SPDX-License-Identifier: MIT
/*
 * libFuzzer harness for VM checkpoint files (hv/vm_ckpt.c): what `gpup
 * run --restore` reads from disk, the head, the chain of bases, the
 * stream and the tail.  The files go to a private temporary directory and
 * are read through hv_ckpt_chain and hv_ckpt_feed, as a restore reads
 * them.  The first input byte picks a mode:
 *
 *   bit 0 clear (raw): the rest of the input is split at a point the
 *     second byte picks into two files, "top" and "base" (a head naming
 *     "base" makes an increment of it).
 *   bit 0 set (made): a valid chain is built from the input: "base", a
 *     full checkpoint of a 2 MiB VM with one 64 KiB partition, and, with
 *     bit 1, "top", an increment naming it (its RAM pages and zero runs
 *     the input gives).  Up to three bytes of the file bit 2 picks are
 *     XORed at offsets the input gives, and with bit 5 it is cut short.
 *
 * Checks after every input: a refusal is one line naming a file of the
 * chain; an unmutated chain is accepted and loads exactly the RAM, VRAM
 * and device bytes put in (the base's RAM, then the increment's pages);
 * a chain with any byte changed or a file cut is refused; no file
 * descriptor is left open.
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <xxhash.h>

#include "fuzz/fuzz_util.h"
#include "hv/hv_int.h"

#define PG 4096u
#define RAM (2u << 20)
#define VRAM (64u << 10)
#define MAX_FILE (1u << 20)

static struct {
	struct gpup_vmmig_header hdr;
	bool have_hdr, base_only;
	uint8_t *ram, *vram, dev[8192];
	uint32_t devlen;
} S;

static int s_header(void *o, const struct gpup_vmmig_header *h)
{
	(void)o;
	S.hdr = *h;
	S.have_hdr = true;
	return 0;
}

static uint8_t *space(uint32_t sp, uint64_t *size)
{
	fz_check(S.have_hdr && (sp == 0 || sp - 1 < S.hdr.ngpus), "space %u handed on", sp);
	*size = sp ? S.hdr.vram_size[sp - 1] : S.hdr.mem_size;
	if (sp == 0 && *size == RAM)
		return S.ram;
	return sp == 1 && *size == VRAM && !S.base_only ? S.vram : NULL;
}

static int s_pages(void *o, uint32_t sp, uint64_t off, const uint8_t *d, uint32_t n)
{
	uint64_t size;
	uint8_t *b = space(sp, &size);

	(void)o;
	fz_check(off % PG == 0 && n && off + (uint64_t)n * PG <= size, "pages outside");
	if (b)
		memcpy(b + off, d, (size_t)n * PG);
	return 0;
}

static int s_zero(void *o, uint32_t sp, uint64_t off, uint64_t n)
{
	uint64_t size;
	uint8_t *b = space(sp, &size);

	(void)o;
	fz_check(off % PG == 0 && n && off <= size && n <= (size - off) / PG, "zero outside");
	if (b)
		memset(b + off, 0, n * PG);
	return 0;
}

static int s_dev(void *o, uint32_t gpu, const uint8_t *d, uint32_t len)
{
	(void)o;
	fz_check(S.have_hdr && gpu < S.hdr.ngpus && len, "dev");
	if (!S.base_only && S.devlen + len <= sizeof(S.dev)) {
		memcpy(S.dev + S.devlen, d, len);
		S.devlen += len;
	}
	return 0;
}

static const struct hv_vms_ops ops = { s_header, s_pages, s_zero, s_dev, NULL, NULL };

/* ---- building files ---- */

struct file {
	size_t len;
	uint32_t seq;
	uint64_t ident;
	struct gpup_vmmig_end end;
	uint8_t *p;                /* MAX_FILE */
};

static struct file fb, ft;     /* the base (or the only file), the increment */

static void put(struct file *f, unsigned int kind, const void *h, uint32_t hl, const void *d,
		uint32_t dl)
{
	struct gpup_vmmig_chunk c;
	uint8_t *pl = f->p + f->len + sizeof(c);

	memcpy(pl, h, hl);
	if (dl)
		memcpy(pl + hl, d, dl);
	hv_vms_seal(&c, kind, f->seq++, pl, hl + dl);
	memcpy(f->p + f->len, &c, sizeof(c));
	f->ident = XXH3_64bits_withSeed(&c, sizeof(c), f->ident);
	f->len += sizeof(c) + hl + dl;
	f->end.chunks = f->seq;
	f->end.bytes = f->len - sizeof(struct gpup_vmckpt_head);
}

static void begin(struct file *f, uint64_t base_ident)
{
	struct gpup_vmckpt_head h = { .magic = GPUP_VMCKPT_MAGIC, .version = GPUP_VMCKPT_VERSION };
	struct gpup_vmmig_header vh = { GPUP_VMMIG_MAGIC, GPUP_VMMIG_VERSION, PG, RAM, 1, 1, 0,
					0, { VRAM } };

	if (base_ident) {
		h.flags = GPUP_VMCKPT_F_INCREMENTAL;
		h.base_ident = base_ident;
		strcpy(h.base, "base");
	}
	h.head_hash = XXH3_64bits(&h, offsetof(struct gpup_vmckpt_head, head_hash));
	memset(f, 0, offsetof(struct file, p));
	memcpy(f->p, &h, sizeof(h));
	f->len = sizeof(h);
	f->ident = XXH3_64bits(&h, sizeof(h));
	put(f, GPUP_VMMIG_HEADER, &vh, sizeof(vh), NULL, 0);
}

/* n chunks of RAM (zero runs or pages) the input gives, into want. */
static void ram_chunks(struct fz_in *in, struct file *f, uint8_t *want, unsigned int n)
{
	static uint8_t data[4 * PG];

	for (unsigned int i = 0; i < n; i++) {
		uint8_t op = fz_u8(in), pages = (uint8_t)(fz_u8(in) % 4 + 1);
		uint64_t first = fz_u16(in) % (RAM / PG - pages + 1);

		if (op & 1) {
			struct gpup_vmmig_zero z = { 0, 0, first * PG, pages };

			memset(want + first * PG, 0, (size_t)pages * PG);
			f->end.zero_pages += pages;
			put(f, GPUP_VMMIG_ZERO, &z, sizeof(z), NULL, 0);
		} else {
			struct gpup_vmmig_pages pg = { 0, pages, first * PG };

			for (size_t k = 0; k < (size_t)pages * PG; k++)
				data[k] = (uint8_t)(op + k * 13 + i);
			memcpy(want + first * PG, data, (size_t)pages * PG);
			f->end.pages += pages;
			put(f, GPUP_VMMIG_PAGES, &pg, sizeof(pg), data, pages * PG);
		}
	}
}

/* The partition's VRAM page and device bytes, vCPU, VMSTATE, END, tail. */
static void end(struct fz_in *in, struct file *f, uint8_t *want_vram, uint8_t *want_dev,
		uint32_t *devlen)
{
	static uint8_t recs[4096], page[PG];
	struct gpup_vmmig_pages pg = { 1, 1, (fz_u8(in) % (VRAM / PG)) * PG };
	struct gpup_vmmig_dev d = { 0, 0 };
	struct gpup_vmmig_cpu c = { 0, 0 };
	struct kvm_regs regs = { .rip = 0x1000 };
	struct kvm_sregs sregs = { .cr0 = 1 };
	uint32_t off = 0, dl = fz_u8(in) % 64 + 1;

	memset(page, fz_u8(in) | 1, PG);
	memcpy(want_vram + pg.offset, page, PG);
	f->end.pages++;
	put(f, GPUP_VMMIG_PAGES, &pg, sizeof(pg), page, PG);
	memset(want_dev, (int)dl, dl);
	*devlen = dl;
	f->end.dev_bytes += dl;
	put(f, GPUP_VMMIG_DEV, &d, sizeof(d), want_dev, dl);
	hv_rec_put(recs, sizeof(recs), &off, GPUP_VMMIG_T_REGS, &regs, sizeof(regs));
	hv_rec_put(recs, sizeof(recs), &off, GPUP_VMMIG_T_SREGS, &sregs, sizeof(sregs));
	put(f, GPUP_VMMIG_CPU, &c, sizeof(c), recs, off);
	off = 0;
	hv_rec_put(recs, sizeof(recs), &off, GPUP_VMMIG_T_UPTIME, &(uint64_t){ 5 }, 8);
	put(f, GPUP_VMMIG_VMSTATE, "", 0, recs, off);
	struct gpup_vmmig_end e = f->end;

	put(f, GPUP_VMMIG_END, &e, sizeof(e), NULL, 0);
	struct gpup_vmckpt_tail t = { GPUP_VMCKPT_TAIL_MAGIC,
				      f->len - sizeof(struct gpup_vmckpt_head), f->ident, 0 };

	t.tail_hash = XXH3_64bits(&t, offsetof(struct gpup_vmckpt_tail, tail_hash));
	memcpy(f->p + f->len, &t, sizeof(t));
	f->len += sizeof(t);
}

static void write_file(const char *name, const uint8_t *p, size_t n)
{
	char path[512];
	int fd;

	snprintf(path, sizeof(path), "%s/%s", fz_tmpdir(), name);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	fz_check(fd >= 0 && write(fd, p, n) == (ssize_t)n, "cannot write %s", path);
	close(fd);
}

/* A restore's reading of "top": 0 or -errno, with the checks on err. */
static int restore(const char *top_name)
{
	static struct hv_ckpt_file files[GPUP_VMCKPT_MAX_CHAIN];
	struct hv_vms_reader r;
	char top[512], err[4600] = "";
	unsigned int n = 0, fds = fz_count_fds();
	int rc;

	snprintf(top, sizeof(top), "%s/%s", fz_tmpdir(), top_name);
	rc = hv_ckpt_chain(top, files, &n, err, sizeof(err));
	for (unsigned int i = 0; rc == 0 && i < n; i++) {
		hv_vms_reader_init(&r, &ops, NULL);
		S.base_only = i + 1 < n;
		rc = hv_ckpt_feed(&files[i], &r, err, sizeof(err));
		hv_vms_reader_free(&r);
	}
	hv_ckpt_close(files, n);
	fz_check(fz_count_fds() == fds, "a file descriptor left open");
	fz_check(rc <= 0, "positive result");
	fz_check(rc == 0 || (!strncmp(err, fz_tmpdir(), strlen(fz_tmpdir())) &&
			     !strchr(err, '\n') && err[strlen(fz_tmpdir())] == '/'),
		 "a refusal that does not name its file in one line: %s", err);
	return rc;
}

static void reset_sink(void)
{
	memset(&S.hdr, 0, sizeof(S.hdr));
	S.have_hdr = false;
	S.devlen = 0;
	memset(S.ram, 0, RAM);
	memset(S.vram, 0, VRAM);
}

static void made(struct fz_in *in, uint8_t mode)
{
	static uint8_t want_ram[RAM], want_vram[VRAM], want_dev[64], orig[MAX_FILE];
	uint32_t devlen = 0;
	bool inc = mode & 2, changed;
	struct file *victim;
	size_t len;
	int rc;

	memset(want_ram, 0, RAM);
	memset(want_vram, 0, VRAM);
	begin(&fb, 0);
	ram_chunks(in, &fb, want_ram, fz_u8(in) % 8);
	end(in, &fb, want_vram, want_dev, &devlen);
	if (inc) {
		/* The increment's partition and device state replace the base's. */
		memset(want_vram, 0, VRAM);
		begin(&ft, fb.ident);
		ram_chunks(in, &ft, want_ram, fz_u8(in) % 8);
		end(in, &ft, want_vram, want_dev, &devlen);
	}
	victim = inc && (mode & 4) ? &ft : &fb;
	memcpy(orig, victim->p, victim->len);
	for (int i = 0; i < 3 && (mode & (8 << i)); i++)
		victim->p[fz_u32(in) % victim->len] ^= fz_u8(in) | 1;
	changed = memcmp(orig, victim->p, victim->len) != 0;
	len = mode & 0x40 ? fz_u32(in) % victim->len : victim->len;
	write_file("base", fb.p, victim == &fb ? len : fb.len);
	if (inc)
		write_file("top", ft.p, victim == &ft ? len : ft.len);
	rc = restore(inc ? "top" : "base");
	if (!changed && len == victim->len) {
		fz_check(rc == 0, "a valid chain refused");
		fz_check(!memcmp(S.ram, want_ram, RAM) && !memcmp(S.vram, want_vram, VRAM),
			 "loaded memory differs");
		fz_check(S.devlen == devlen && !memcmp(S.dev, want_dev, devlen), "device bytes");
	} else {
		fz_check(rc < 0, "a changed or cut chain accepted");
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fz_in in = { data, size };
	uint8_t mode = fz_u8(&in), split = fz_u8(&in);

	if (!S.ram) {
		S.ram = malloc(RAM);
		S.vram = malloc(VRAM);
		fb.p = malloc(MAX_FILE);
		ft.p = malloc(MAX_FILE);
	}
	reset_sink();
	fz_empty_dir(fz_tmpdir());
	if (!(mode & 1)) {
		size_t at = in.n ? (size_t)split * in.n / 256 : 0;

		write_file("top", in.p, at);
		write_file("base", in.p + at, in.n - at);
		restore("top");
		return 0;
	}
	made(&in, mode);
	return 0;
}
