// SPDX-License-Identifier: MIT
/*
 * chain_load.c: reading a checkpoint chain back (docs/MIGRATION.md,
 * "Failover").  Link files are untrusted input: each is checked whole,
 * head before length, hash before payload, order and totals, before any
 * of it is used; the chain is checked whole (newest base, increments
 * numbered after it without a gap, each naming that base and its
 * predecessor by identity) before a byte of VRAM is written.  Every
 * refusal is one line naming the file, and the chunk and byte where the
 * file is bad.
 *
 * A recovery restores into the very file a running guest has mapped as
 * BAR2, so the chain is not applied link after link: a page would show
 * a guest an older link's bytes (or zero) on its way to the newest.  The
 * newest copy of each page is found first, a window of pages at a time,
 * and each page is written once, from what it held straight to what the
 * chain holds: a page the guest's device had finished before the last
 * link reads the same all along.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "migrate/mig_int.h"

#define PG MIG_PAGE_SIZE
#define HEAD sizeof(struct gpup_mig_chunk)
#define MAX_LINKS 4096u
/* Pages whose newest copy is looked up at a time: 512 KiB of pointers,
 * whatever the VRAM size. */
#define WINDOW 65536u

/* A walk over one link's chunks. */
struct walk {
	const uint8_t *buf;
	size_t len, pos;
	uint32_t seq;
	struct gpup_mig_chunk hd;    /* the current chunk's head */
	const struct gpup_mig_chunk *h;  /* &hd once its head is checked */
	const uint8_t *p;            /* the payload */
	bool trusted;                /* checked before: bounds only, no hashes */
	char *err;
	size_t errlen;
};

static int bad(struct walk *w, int rc, const char *what)
{
	return mig_say(w->err, w->errlen, rc, "chunk %u (%s) at byte %zu: %s", w->seq,
		   w->h ? mig_kind_name(w->h->kind) : "?", w->pos, what);
}

/* The next chunk, head and payload checked: 0, or -errno. */
static int next(struct walk *w)
{
	struct gpup_mig_chunk *hd = &w->hd;

	w->h = NULL;
	if (w->len - w->pos < HEAD)
		return mig_say(w->err, w->errlen, -ENODATA, "truncated at byte %zu: no END chunk",
			   w->len);
	memcpy(hd, w->buf + w->pos, HEAD);
	if (!w->trusted && !mig_chunk_head_ok(hd))
		return mig_say(w->err, w->errlen, -EBADMSG,
			   "chunk %u at byte %zu: chunk head checksum mismatch", w->seq, w->pos);
	w->h = hd;
	if (hd->seq != w->seq)
		return bad(w, -EBADMSG, "chunk out of sequence");
	if (hd->kind < GPUP_MIG_HEADER || hd->kind > GPUP_MIG_LINK || hd->flags)
		return bad(w, -EBADMSG, "unknown chunk kind or flags (chain links carry no zstd)");
	if (hd->len > GPUP_MIG_MAX_PAYLOAD)
		return bad(w, -EBADMSG, "payload longer than any chunk's");
	if (w->len - w->pos - HEAD < hd->len)
		return mig_say(w->err, w->errlen, -ENODATA,
			   "truncated at byte %zu inside chunk %u's payload", w->len, w->seq);
	w->p = w->buf + w->pos + HEAD;
	if (!w->trusted && mig_hash(w->p, hd->len) != hd->data_hash)
		return bad(w, -EBADMSG, "payload checksum mismatch");
	return 0;
}

static void step(struct walk *w)
{
	w->pos += HEAD + w->h->len;
	w->seq++;
}

static int check_header(struct walk *w, const struct mig_ident *want)
{
	struct gpup_mig_header h;

	if (w->h->kind != GPUP_MIG_HEADER || w->h->len != sizeof(h))
		return bad(w, -EBADMSG, "not a gpup migration stream (no HEADER first)");
	memcpy(&h, w->p, sizeof(h));
	if (h.magic != GPUP_MIG_MAGIC)
		return bad(w, -EBADMSG, "not a gpup migration stream (bad magic)");
	if (h.version != GPUP_MIG_VERSION || h.page_size != PG)
		return bad(w, -EPROTONOSUPPORT, "wrong version or page size (this build reads 1)");
	if (!h.vram_size || h.vram_size % PG)
		return bad(w, -EBADMSG, "VRAM size not a page multiple");
	if (want && (strncmp(h.type, want->type, sizeof(h.type)) || h.vram_size != want->vram_size))
		return bad(w, -EINVAL, "another partition type or VRAM size than this partition's");
	if (want && (h.features & ~want->features))
		return bad(w, -EINVAL, "features the partition here does not offer");
	return 0;
}

static int check_link(struct walk *w, struct mig_link_info *info)
{
	struct gpup_mig_link lk;

	if (w->h->kind != GPUP_MIG_LINK || w->h->len != sizeof(lk))
		return bad(w, -EBADMSG, "not a chain link (no LINK after HEADER)");
	memcpy(&lk, w->p, sizeof(lk));
	if ((lk.flags & ~GPUP_MIG_LINK_BASE) || lk.reserved)
		return bad(w, -EBADMSG, "unknown link flags");
	info->base = lk.flags & GPUP_MIG_LINK_BASE;
	if (info->base != (!lk.base_id && !lk.prev_id) || (!info->base && (!lk.base_id || !lk.prev_id)))
		return bad(w, -EBADMSG, "a base names a predecessor, or an increment none");
	info->index = lk.index;
	info->id = w->h->data_hash;
	info->base_id = lk.base_id;
	info->prev_id = lk.prev_id;
	info->taken_ns = lk.taken_ns;
	return 0;
}

/* A VRAM or ZERO chunk inside VRAM of vram_size: its page count. */
static int check_pages(struct walk *w, uint64_t vram_size, uint64_t *pages)
{
	struct gpup_mig_vram v;
	struct gpup_mig_zero z;
	uint64_t off, n;

	if (w->h->len < sizeof(v))
		return bad(w, -EBADMSG, "payload too short");
	if (w->h->kind == GPUP_MIG_VRAM) {
		memcpy(&v, w->p, sizeof(v));
		if (v.reserved || !v.pages || v.pages > GPUP_MIG_MAX_VRAM_PAGES ||
		    w->h->len != sizeof(v) + (uint64_t)v.pages * PG)
			return bad(w, -EBADMSG, "bad page count or length");
		off = v.offset, n = v.pages;
	} else {
		memcpy(&z, w->p, sizeof(z));
		if (w->h->len != sizeof(z) || !z.pages)
			return bad(w, -EBADMSG, "bad page count or length");
		off = z.offset, n = z.pages;
	}
	if (off % PG || off / PG > vram_size / PG || n > vram_size / PG - off / PG)
		return bad(w, -EBADMSG, "pages outside VRAM or not page aligned");
	*pages = n;
	return 0;
}

static int check_end(struct walk *w, const struct mig_link_info *info, uint64_t bytes)
{
	struct gpup_mig_end e;

	if (w->h->len != sizeof(e))
		return bad(w, -EBADMSG, "END of the wrong length");
	memcpy(&e, w->p, sizeof(e));
	if (e.chunks != w->seq || e.bytes != bytes || e.vram_pages != info->vram_pages ||
	    e.zero_pages != info->zero_pages)
		return bad(w, -EBADMSG, "END totals disagree with the link");
	if (w->pos + HEAD + w->h->len != w->len)
		return mig_say(w->err, w->errlen, -EBADMSG, "data after END at byte %zu",
			   w->pos + HEAD + (size_t)w->h->len);
	return 0;
}

/* The chunks between LINK and END, END included. */
static int check_body(struct walk *w, uint64_t vram_size, struct mig_link_info *info)
{
	bool state = false;
	uint64_t n;
	int rc;

	for (;;) {
		if ((rc = next(w)))
			return rc;
		switch (w->h->kind) {
		case GPUP_MIG_VRAM:
		case GPUP_MIG_ZERO:
			if (state)
				return bad(w, -EBADMSG, "VRAM after STATE");
			if ((rc = check_pages(w, vram_size, &n)))
				return rc;
			*(w->h->kind == GPUP_MIG_VRAM ? &info->vram_pages : &info->zero_pages) += n;
			break;
		case GPUP_MIG_STATE:
			if (state || w->h->len > GPUP_MIG_MAX_STATE)
				return bad(w, -EBADMSG, "a second STATE, or one too long");
			state = true;
			break;
		case GPUP_MIG_END:
			if (!state)
				return bad(w, -EBADMSG, "END before STATE");
			return check_end(w, info, w->pos);
		default:
			return bad(w, -EBADMSG, "chunk out of order");
		}
		step(w);
	}
}

int mig_link_check(const uint8_t *buf, size_t len, const struct mig_ident *want,
		   struct mig_link_info *info, char *err, size_t errlen)
{
	struct walk w = { .buf = buf, .len = len, .err = err, .errlen = errlen };
	struct gpup_mig_header h;
	int rc;

	memset(info, 0, sizeof(*info));
	if ((rc = next(&w)) || (rc = check_header(&w, want)))
		return rc;
	memcpy(&h, w.p, sizeof(h));
	step(&w);
	if ((rc = next(&w)) || (rc = check_link(&w, info)))
		return rc;
	step(&w);
	rc = check_body(&w, h.vram_size, info);
	info->bytes = len;
	return rc;
}

static int put_pages(uint8_t *vram, int fd, uint64_t off, const uint8_t *p, uint64_t len)
{
	while (fd >= 0 && len) {
		ssize_t n = pwrite(fd, p, len, (off_t)off);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return n < 0 ? -errno : -EIO;
		p += n, off += (uint64_t)n, len -= (uint64_t)n;
	}
	if (fd < 0)
		memcpy(vram + off, p, len);
	return 0;
}

static int zero_pages(uint8_t *vram, int fd, uint64_t off, uint64_t len)
{
	if (fd >= 0 && !fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, (off_t)off,
				  (off_t)len))
		return 0;
	if (fd >= 0)
		return -errno;
	memset(vram + off, 0, len);
	return 0;
}

int mig_link_apply(const uint8_t *buf, size_t len, uint8_t *vram, int fd, uint64_t vram_size,
		   void *state, size_t state_max)
{
	/* Checked by mig_link_check; the bounds again, without the hashes,
	 * in case the file changed under its mapping since. */
	struct walk w = { .buf = buf, .len = len, .trusted = true };
	uint64_t n;
	int st = 0, rc = 0;

	while (!rc && !next(&w)) {
		struct gpup_mig_vram v;
		struct gpup_mig_zero z;

		if ((w.h->kind == GPUP_MIG_VRAM || w.h->kind == GPUP_MIG_ZERO) &&
		    check_pages(&w, vram_size, &n))
			return -EBADMSG;
		if (w.h->kind == GPUP_MIG_VRAM) {
			memcpy(&v, w.p, sizeof(v));
			rc = put_pages(vram, fd, v.offset, w.p + sizeof(v), (uint64_t)v.pages * PG);
		} else if (w.h->kind == GPUP_MIG_ZERO) {
			memcpy(&z, w.p, sizeof(z));
			rc = zero_pages(vram, fd, z.offset, z.pages * PG);
		} else if (w.h->kind == GPUP_MIG_STATE) {
			if (w.h->len > state_max)
				return -ENOSPC;
			memcpy(state, w.p, w.h->len);
			st = (int)w.h->len;
		} else if (w.h->kind == GPUP_MIG_END) {
			break;
		}
		step(&w);
	}
	return rc ? rc : st;
}

/* ---- the chain ---- */

struct link_file {
	uint32_t index;
	bool base;
	uint8_t *map;
	size_t len;
	struct mig_link_info info;
	char name[NAME_MAX + 1];
};

struct chain {
	struct link_file *f;
	unsigned int n;
};

static int by_index(const void *a, const void *b)
{
	const struct link_file *x = a, *y = b;

	return x->index < y->index ? -1 : x->index > y->index;
}

bool mig_link_name_parse(const char *name, const char *prefix, uint32_t *index, bool *base)
{
	size_t pl = strlen(prefix);
	const char *p = name + pl;

	if (strncmp(name, prefix, pl) || strlen(p) != 14 || p[0] != '.' || p[9] != '.')
		return false;
	for (int i = 1; i <= 8; i++)
		if (p[i] < '0' || p[i] > '9')
			return false;
	if (strcmp(p + 9, ".base") && strcmp(p + 9, ".incr"))
		return false;
	*index = (uint32_t)strtoul(p + 1, NULL, 10);
	*base = !strcmp(p + 9, ".base");
	return true;
}

/* The newest base and every increment after it, by number. */
static int list_chain(const char *dir, const char *prefix, struct chain *c, char *err,
		      size_t errlen)
{
	DIR *d = opendir(dir);
	struct dirent *de;
	struct link_file lf;
	long newest = -1;
	unsigned int k = 0;

	if (!d)
		return mig_say(err, errlen, -errno, "cannot read %s: %s", dir, strerror(errno));
	c->f = calloc(MAX_LINKS, sizeof(*c->f));
	while (c->f && (de = readdir(d)) && c->n < MAX_LINKS) {
		memset(&lf, 0, sizeof(lf));
		if (!mig_link_name_parse(de->d_name, prefix, &lf.index, &lf.base))
			continue;
		snprintf(lf.name, sizeof(lf.name), "%s", de->d_name);
		c->f[c->n++] = lf;
		if (lf.base && (long)lf.index > newest)
			newest = lf.index;
	}
	closedir(d);
	if (!c->f)
		return mig_say(err, errlen, -ENOMEM, "out of memory");
	if (newest < 0)
		return mig_say(err, errlen, -ENOENT, "chain refused: no base of %s in %s", prefix, dir);
	for (unsigned int i = 0; i < c->n; i++)
		if (c->f[i].index > newest || (c->f[i].index == newest && c->f[i].base))
			c->f[k++] = c->f[i];
	c->n = k;
	qsort(c->f, c->n, sizeof(*c->f), by_index);
	for (unsigned int i = 1; i < c->n; i++)
		if (c->f[i].index != c->f[0].index + i || c->f[i].base)
			return mig_say(err, errlen, -EBADMSG, "chain refused: link %u missing after %s/%s",
				   c->f[0].index + i, dir, c->f[i - 1].name);
	return 0;
}

static int map_file(const char *dir, struct link_file *f, char *err, size_t errlen)
{
	char path[PATH_MAX];
	struct stat st;
	int fd, rc = 0;

	snprintf(path, sizeof(path), "%s/%s", dir, f->name);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0 || fstat(fd, &st))
		rc = -errno;
	else if (st.st_size == 0)
		f->map = NULL;
	else if ((f->map = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE | MAP_POPULATE,
				fd, 0)) ==
		 MAP_FAILED)
		rc = -errno, f->map = NULL;
	if (fd >= 0)
		close(fd);
	f->len = rc ? 0 : (size_t)st.st_size;
	return rc ? mig_say(err, errlen, rc, "chain refused: cannot read %s: %s", path, strerror(-rc))
		  : 0;
}

/* Link i of the chain: whole, and whom it must follow. */
static int check_file(const char *dir, struct chain *c, unsigned int i,
		      const struct mig_ident *want, char *err, size_t errlen)
{
	struct link_file *f = &c->f[i];
	char why[200];
	int rc = map_file(dir, f, err, errlen);

	if (rc)
		return rc;
	rc = mig_link_check(f->map, f->len, want, &f->info, why, sizeof(why));
	if (rc)
		return mig_say(err, errlen, rc, "chain refused: %s/%s: %s", dir, f->name, why);
	if (f->info.index != f->index || f->info.base != f->base)
		return mig_say(err, errlen, -EBADMSG, "chain refused: %s/%s: it says it is link %u (%s)",
			   dir, f->name, f->info.index, f->info.base ? "base" : "increment");
	if (i && (f->info.base_id != c->f[0].info.id || f->info.prev_id != c->f[i - 1].info.id))
		return mig_say(err, errlen, -EBADMSG,
			   "chain refused: %s/%s follows base %016llx after link %016llx, not %s and "
			   "%s of this chain", dir, f->name, (unsigned long long)f->info.base_id,
			   (unsigned long long)f->info.prev_id, c->f[0].name, c->f[i - 1].name);
	return 0;
}

static void chain_free(struct chain *c)
{
	for (unsigned int i = 0; c->f && i < c->n; i++)
		if (c->f[i].map)
			munmap(c->f[i].map, c->f[i].len);
	free(c->f);
}

/* ---- the chain's newest copy of every page, written once ---- */

/* Where link f puts pages [first, first + n): into src, a pointer to
 * each page's bytes in the link, or NULL for a zero page. */
static int index_link(const struct link_file *f, uint64_t vram_size, uint64_t first,
		      uint64_t n, const uint8_t **src)
{
	struct walk w = { .buf = f->map, .len = f->len, .trusted = true };
	uint64_t off, cnt, skip;

	while (!next(&w) && w.h->kind != GPUP_MIG_END) {
		if (w.h->kind == GPUP_MIG_VRAM || w.h->kind == GPUP_MIG_ZERO) {
			if (check_pages(&w, vram_size, &cnt))
				return -EBADMSG;
			/* both payloads start with the byte offset */
			memcpy(&off, w.p, sizeof(off));
			off /= PG;
			skip = off < first ? first - off : 0;
			for (uint64_t k = skip; k < cnt && off + k < first + n; k++)
				src[off + k - first] = w.h->kind == GPUP_MIG_ZERO ? NULL :
					w.p + sizeof(struct gpup_mig_vram) + k * PG;
		}
		step(&w);
	}
	return 0;
}

/* Pages [page, page + n), each from its own place in the links; pages
 * that lie one after the other in a chunk go in one write. */
static int put_run(uint8_t *vram, int fd, uint64_t page, const uint8_t **src, uint64_t n)
{
	uint64_t i = 0, j;
	int rc = 0;

	while (!rc && i < n) {
		for (j = i + 1; j < n && src[j] == src[j - 1] + PG; j++)
			;
		rc = put_pages(vram, fd, (page + i) * PG, src[i], (j - i) * PG);
		i = j;
	}
	return rc;
}

static int put_window(uint8_t *vram, int fd, uint64_t first, const uint8_t **src, uint64_t n)
{
	uint64_t i = 0, j;
	int rc = 0;

	while (!rc && i < n) {
		for (j = i + 1; j < n && !src[j] == !src[i]; j++)
			;
		rc = src[i] ? put_run(vram, fd, first + i, src + i, j - i)
			    : zero_pages(vram, fd, (first + i) * PG, (j - i) * PG);
		i = j;
	}
	return rc;
}

/* The last link's STATE into state: its length, or -ENOSPC. */
static int last_state(const struct link_file *f, void *state, size_t state_max)
{
	struct walk w = { .buf = f->map, .len = f->len, .trusted = true };

	while (!next(&w) && w.h->kind != GPUP_MIG_END) {
		if (w.h->kind == GPUP_MIG_STATE) {
			if (w.h->len > state_max)
				return -ENOSPC;
			memcpy(state, w.p, w.h->len);
			return (int)w.h->len;
		}
		step(&w);
	}
	return 0;
}

/* The checked chain c into VRAM (the file fd when fd >= 0): every page
 * as its newest copy in the chain has it, zero where none has one.  On
 * failure *bad is the link found changed since it was checked, or -1
 * when VRAM could not be written. */
static int restore(const struct chain *c, uint8_t *vram, int fd, uint64_t vram_size, int *bad)
{
	uint64_t npages = vram_size / PG;
	const uint8_t **src = malloc(WINDOW * sizeof(*src));
	int rc = src ? 0 : -ENOMEM;

	for (uint64_t first = 0; !rc && first < npages; first += WINDOW) {
		uint64_t n = npages - first < WINDOW ? npages - first : WINDOW;

		memset(src, 0, n * sizeof(*src));
		for (unsigned int i = 0; !rc && i < c->n; i++)
			if ((rc = index_link(&c->f[i], vram_size, first, n, src)))
				*bad = (int)i;
		if (!rc && (rc = put_window(vram, fd, first, src, n)))
			*bad = -1;
	}
	free(src);
	return rc;
}

int mig_chain_load(const char *dir, const char *prefix, struct mig_chain_load *l, char *err,
		   size_t errlen)
{
	struct chain c = { 0 };
	int rc = list_chain(dir, prefix, &c, err, errlen), st, bad = -1;

	for (unsigned int i = 0; !rc && i < c.n; i++)
		rc = check_file(dir, &c, i, l->ident, err, errlen);
	if (!rc && (l->vram || l->to_fd)) {
		st = last_state(&c.f[c.n - 1], l->state, l->state_max);
		if (st < 0)
			rc = mig_say(err, errlen, st, "chain refused: %s/%s: its state blob is too big",
				 dir, c.f[c.n - 1].name);
		else if ((rc = restore(&c, l->vram, l->to_fd ? l->vram_fd : -1,
				       l->ident->vram_size, &bad)) && bad >= 0)
			mig_say(err, errlen, rc, "chain refused: %s/%s changed since it was checked",
			    dir, c.f[bad].name);
		else if (rc)
			mig_say(err, errlen, rc, "cannot write the restored VRAM: %s", strerror(-rc));
		l->state_len = st < 0 ? 0 : (uint32_t)st;
	}
	if (!rc) {
		l->links = c.n;
		l->base_index = c.f[0].index;
		l->last_index = c.f[c.n - 1].index;
		l->last_id = c.f[c.n - 1].info.id;
		l->last_taken_ns = c.f[c.n - 1].info.taken_ns;
		l->bytes = 0;
		for (unsigned int i = 0; i < c.n; i++)
			l->bytes += c.f[i].len;
	}
	chain_free(&c);
	return rc;
}
