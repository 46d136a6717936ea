// SPDX-License-Identifier: MIT
/*
 * chain.c: checkpoint chains, the files of continuous protection
 * (docs/MIGRATION.md, "Failover").  A link is a stream of
 * uapi/gpup_mig.h with a LINK chunk after HEADER, written to a temporary
 * name, fsynced, renamed and the directory fsynced.  The reader maps each
 * file, checks every chunk of every link of the chain before it writes a
 * byte of VRAM, then applies the base and the increments in order.
 *
 * A link is built as it is written: the pages a caller hands over go out
 * as chunks at once, so a 1 GiB base needs no 1 GiB buffer.  The LINK
 * chunk has its place reserved after HEADER and is written last, with the
 * time of the final copy, because that is known only then.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include "migrate/mig_int.h"

#define PG MIG_PAGE_SIZE
#define BUF_SIZE (GPUP_MIG_MAX_PAYLOAD + sizeof(struct gpup_mig_chunk))
#define LINK_AT (sizeof(struct gpup_mig_chunk) + sizeof(struct gpup_mig_header))
#define LINK_BYTES (sizeof(struct gpup_mig_chunk) + sizeof(struct gpup_mig_link))
#define MAX_LINKS 100000u

struct mig_link_writer {
	struct mig_link_cfg cfg;
	int fd;
	char tmp[PATH_MAX], name[PATH_MAX];
	uint8_t *buf;             /* one chunk being built */
	uint32_t seq;
	uint64_t off;             /* bytes written */
	struct gpup_mig_end totals;
	bool state_sent;
};

static void link_name(char *out, size_t n, const char *prefix, uint32_t index, bool base)
{
	snprintf(out, n, "%s.%08u.%s", prefix, index, base ? "base" : "incr");
}

static int put(struct mig_link_writer *w, const void *p, size_t n)
{
	const uint8_t *b = p;

	while (n) {
		ssize_t r = pwrite(w->fd, b, n, (off_t)w->off);

		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return -errno;
		b += r;
		n -= (size_t)r;
		w->off += (uint64_t)r;
	}
	return 0;
}

/* Seal and write the chunk whose payload is in w->buf after the head. */
static int emit(struct mig_link_writer *w, unsigned int kind, uint32_t len)
{
	struct gpup_mig_chunk *h = (struct gpup_mig_chunk *)w->buf;

	mig_chunk_seal(h, kind, 0, len, w->seq++, mig_hash(h + 1, len));
	w->totals.chunks++;
	w->totals.bytes += sizeof(*h) + len;
	return put(w, w->buf, sizeof(*h) + len);
}

static int emit_header(struct mig_link_writer *w)
{
	struct gpup_mig_header *hd = (void *)(w->buf + sizeof(struct gpup_mig_chunk));

	memset(hd, 0, sizeof(*hd));
	hd->magic = GPUP_MIG_MAGIC;
	hd->version = GPUP_MIG_VERSION;
	hd->page_size = PG;
	hd->vram_size = w->cfg.ident.vram_size;
	hd->features = w->cfg.ident.features;
	memcpy(hd->model, w->cfg.ident.model, sizeof(hd->model));
	memcpy(hd->type, w->cfg.ident.type, sizeof(hd->type));
	return emit(w, GPUP_MIG_HEADER, sizeof(*hd));
}

int mig_link_begin(struct mig_link_writer **wp, const struct mig_link_cfg *cfg, char *err,
		   size_t errlen)
{
	struct mig_link_writer *w = calloc(1, sizeof(*w));
	char base[NAME_MAX + 1];
	int rc;

	if (!w || !(w->buf = malloc(BUF_SIZE))) {
		free(w);
		return mig_say(err, errlen, -ENOMEM, "out of memory");
	}
	w->cfg = *cfg;
	link_name(base, sizeof(base), cfg->prefix, cfg->index, cfg->base);
	snprintf(w->name, sizeof(w->name), "%s/%s", cfg->dir, base);
	snprintf(w->tmp, sizeof(w->tmp), "%s/.%s.tmp.%d", cfg->dir, base, (int)getpid());
	w->fd = open(w->tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (w->fd < 0) {
		rc = -errno;
		free(w->buf);
		free(w);
		return mig_say(err, errlen, rc, "cannot create %s: %s", w->tmp, strerror(-rc));
	}
	rc = emit_header(w);
	/* LINK's place, written at commit; its seq is taken now. */
	w->seq++;
	w->totals.chunks++;
	w->totals.bytes += LINK_BYTES;
	w->off += LINK_BYTES;
	if (rc) {
		mig_link_abort(w);
		return mig_say(err, errlen, rc, "cannot write %s: %s", w->tmp, strerror(-rc));
	}
	*wp = w;
	return 0;
}

static int emit_zero(struct mig_link_writer *w, uint64_t page, uint64_t n)
{
	struct gpup_mig_zero z = { .offset = page * PG, .pages = n };

	memcpy(w->buf + sizeof(struct gpup_mig_chunk), &z, sizeof(z));
	w->totals.zero_pages += n;
	return emit(w, GPUP_MIG_ZERO, sizeof(z));
}

static int emit_vram(struct mig_link_writer *w, uint64_t page, const uint8_t *data, uint32_t n)
{
	struct gpup_mig_vram v = { .offset = page * PG, .pages = n };
	uint8_t *p = w->buf + sizeof(struct gpup_mig_chunk);

	memcpy(p, &v, sizeof(v));
	memcpy(p + sizeof(v), data, (size_t)n * PG);
	w->totals.vram_pages += n;
	return emit(w, GPUP_MIG_VRAM, (uint32_t)(sizeof(v) + (size_t)n * PG));
}

int mig_link_pages(struct mig_link_writer *w, uint64_t page, const uint8_t *data,
		   uint64_t npages, bool skip_zero)
{
	uint64_t i = 0;
	int rc = 0;

	if (w->state_sent || page > w->cfg.ident.vram_size / PG ||
	    npages > w->cfg.ident.vram_size / PG - page)
		return -EINVAL;
	while (!rc && i < npages) {
		bool zero = mig_all_zero(data + i * PG, PG);
		uint64_t j = i + 1;

		while (j < npages && (zero || j - i < GPUP_MIG_MAX_VRAM_PAGES) &&
		       mig_all_zero(data + j * PG, PG) == zero)
			j++;
		if (!zero)
			rc = emit_vram(w, page + i, data + i * PG, (uint32_t)(j - i));
		else if (!skip_zero)
			rc = emit_zero(w, page + i, j - i);
		i = j;
	}
	return rc;
}

int mig_link_state(struct mig_link_writer *w, const void *blob, uint32_t len)
{
	if (w->state_sent || len > GPUP_MIG_MAX_STATE)
		return -EINVAL;
	w->state_sent = true;
	memcpy(w->buf + sizeof(struct gpup_mig_chunk), blob, len);
	return emit(w, GPUP_MIG_STATE, len);
}

/* END at the tail, then LINK in its place. */
static int finish(struct mig_link_writer *w, uint64_t taken_ns, uint64_t *id)
{
	struct gpup_mig_link lk = { .index = w->cfg.index,
				    .flags = w->cfg.base ? GPUP_MIG_LINK_BASE : 0,
				    .base_id = w->cfg.base ? 0 : w->cfg.base_id,
				    .prev_id = w->cfg.base ? 0 : w->cfg.prev_id,
				    .taken_ns = taken_ns };
	struct gpup_mig_chunk *h = (struct gpup_mig_chunk *)w->buf;
	int rc;

	if (getrandom(&lk.nonce, sizeof(lk.nonce), 0) != sizeof(lk.nonce))
		return -EIO;
	memcpy(w->buf + sizeof(*h), &w->totals, sizeof(w->totals));
	rc = emit(w, GPUP_MIG_END, sizeof(w->totals));
	if (rc)
		return rc;
	memcpy(w->buf + sizeof(*h), &lk, sizeof(lk));
	*id = mig_hash(&lk, sizeof(lk));
	mig_chunk_seal(h, GPUP_MIG_LINK, 0, sizeof(lk), 1, *id);
	w->off = LINK_AT;
	return put(w, w->buf, LINK_BYTES);
}

static int fsync_dir(const char *dir)
{
	int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC), rc = 0;

	if (fd < 0)
		return -errno;
	if (fsync(fd))
		rc = -errno;
	close(fd);
	return rc;
}

int mig_link_commit(struct mig_link_writer *w, uint64_t taken_ns, uint64_t *id, char *err,
		    size_t errlen)
{
	int rc = w->state_sent ? finish(w, taken_ns, id) : -EINVAL;

	if (!rc && fsync(w->fd))
		rc = -errno;
	if (!rc && rename(w->tmp, w->name))
		rc = -errno;
	if (rc) {
		mig_say(err, errlen, rc, "cannot write %s: %s", w->name, strerror(-rc));
		mig_link_abort(w);
		return rc;
	}
	close(w->fd);
	rc = fsync_dir(w->cfg.dir);
	if (rc)
		mig_say(err, errlen, rc, "cannot sync %s: %s", w->cfg.dir, strerror(-rc));
	free(w->buf);
	free(w);
	return rc;
}

void mig_link_abort(struct mig_link_writer *w)
{
	if (!w)
		return;
	close(w->fd);
	unlink(w->tmp);
	free(w->buf);
	free(w);
}

/* ---- the chain's files ---- */

/* .PREFIX.N.KIND.tmp.PID whose writer is gone. */
static bool stale_tmp(const char *name, const char *prefix)
{
	const char *t = strstr(name, ".tmp.");
	uint32_t idx;
	bool base;
	char body[NAME_MAX + 1];
	long pid;

	if (name[0] != '.' || !t || (size_t)(t - name - 1) >= sizeof(body))
		return false;
	snprintf(body, sizeof(body), "%.*s", (int)(t - name - 1), name + 1);
	if (!mig_link_name_parse(body, prefix, &idx, &base))
		return false;
	pid = strtol(t + 5, NULL, 10);
	return pid > 0 && kill((pid_t)pid, 0) && errno == ESRCH;
}

int mig_chain_scan(const char *dir, const char *prefix, uint32_t *next)
{
	DIR *d = opendir(dir);
	struct dirent *de;
	uint32_t idx;
	bool base;

	if (!d)
		return -errno;
	*next = 0;
	while ((de = readdir(d))) {
		if (mig_link_name_parse(de->d_name, prefix, &idx, &base) && idx + 1 > *next)
			*next = idx + 1;
		else if (stale_tmp(de->d_name, prefix))
			unlinkat(dirfd(d), de->d_name, 0);
	}
	closedir(d);
	return 0;
}

int mig_chain_compact(const char *dir, const char *prefix, uint32_t keep)
{
	DIR *d = opendir(dir);
	struct dirent *de;
	uint32_t idx;
	bool base;
	int rc = 0;

	if (!d)
		return -errno;
	while ((de = readdir(d)))
		if (mig_link_name_parse(de->d_name, prefix, &idx, &base) && idx < keep &&
		    unlinkat(dirfd(d), de->d_name, 0) && !rc)
			rc = -errno;
	closedir(d);
	return rc ? rc : fsync_dir(dir);
}
