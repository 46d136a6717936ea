// SPDX-License-Identifier: MIT
/*
 * VM checkpoint files (uapi/gpup_vmmig.h, "VM checkpoint files"): the
 * migration stream between a head and a tail.  vm_mig.c produces the
 * stream into a file through migrate's atomic file writer (a temporary
 * name, fsync, rename, fsync of the directory) with the helpers here;
 * vm_incoming.c loads a chain of files with the others.  A file is hostile
 * input: its head and tail are checked, then every file of the chain
 * (each base found by name and its identity checked), all before one
 * byte of a stream is taken; the stream gets the parser's checks, and
 * its identity chain must match the tail's.  Every refusal is one line
 * that starts with the file's path.
 *
 * Guest RAM of an incremental file: each page's XXH3-64 as the last
 * checkpoint left it (vm->ckpt_hash) against its contents now.
 */
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <xxhash.h>

#include "hv/hv_int.h"
#include "migrate/mig.h"

#define PG GPUP_VMMIG_PAGE_SIZE

static int hv_ckpt_say(char *err, size_t errlen, int rc, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

static int hv_ckpt_say(char *err, size_t errlen, int rc, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
	return rc;
}

uint64_t hv_ckpt_page_hash(const uint8_t *page)
{
	return mig_hash(page, PG);
}

uint64_t hv_ckpt_zero_hash(void)
{
	static const uint8_t zero[PG];

	return mig_hash(zero, PG);
}

/* Holes hash as zero pages without being read (reading would allocate). */
void hv_ckpt_hash_ram(struct hv_vm *vm, uint64_t *hash)
{
	uint64_t z = hv_ckpt_zero_hash(), npages = vm->mem_size / PG;
	off_t at = 0, end;

	for (uint64_t p = 0; p < npages; p++)
		hash[p] = z;
	while ((at = lseek(vm->mem_fd, at, SEEK_DATA)) >= 0 && (uint64_t)at < vm->mem_size) {
		end = lseek(vm->mem_fd, at, SEEK_HOLE);
		if (end < 0 || (uint64_t)end > vm->mem_size)
			end = (off_t)vm->mem_size;
		for (uint64_t p = (uint64_t)at / PG; p < ((uint64_t)end + PG - 1) / PG; p++)
			hash[p] = hv_ckpt_page_hash(vm->mem + p * PG);
		at = end;
	}
}

/* ---- the head and the tail ---- */

static void hv_ckpt_seal_head(struct gpup_vmckpt_head *h)
{
	h->head_hash = XXH3_64bits(h, offsetof(struct gpup_vmckpt_head, head_hash));
}

static void hv_ckpt_seal_tail(struct gpup_vmckpt_tail *t)
{
	t->tail_hash = XXH3_64bits(t, offsetof(struct gpup_vmckpt_tail, tail_hash));
}

static int hv_ckpt_check_head(const char *path, const struct gpup_vmckpt_head *h, char *err,
			      size_t errlen)
{
	bool inc = h->flags & GPUP_VMCKPT_F_INCREMENTAL;
	size_t blen = strnlen(h->base, sizeof(h->base));

	if (h->magic != GPUP_VMCKPT_MAGIC)
		return hv_ckpt_say(err, errlen, -EBADMSG, "%s: not a gpup VM checkpoint "
				   "(bad magic)", path);
	if (h->head_hash != XXH3_64bits(h, offsetof(struct gpup_vmckpt_head, head_hash)))
		return hv_ckpt_say(err, errlen, -EBADMSG, "%s: file head checksum mismatch",
				   path);
	if (h->version != GPUP_VMCKPT_VERSION)
		return hv_ckpt_say(err, errlen, -EPROTONOSUPPORT, "%s: version %u (this build "
				   "reads %u)", path, h->version, GPUP_VMCKPT_VERSION);
	if ((h->flags & ~GPUP_VMCKPT_F_INCREMENTAL) || h->reserved ||
	    blen == sizeof(h->base) || inc != (blen != 0) || inc != (h->base_ident != 0) ||
	    memchr(h->base, '/', blen) || (blen && h->base[0] == '.' &&
					    (blen == 1 || (blen == 2 && h->base[1] == '.'))))
		return hv_ckpt_say(err, errlen, -EBADMSG, "%s: bad flags, base name or reserved "
				   "field in the file head", path);
	for (size_t i = blen; i < sizeof(h->base); i++)
		if (h->base[i])
			return hv_ckpt_say(err, errlen, -EBADMSG, "%s: bad flags, base name or "
					   "reserved field in the file head", path);
	return 0;
}

/* The tail at the end of f, whole and agreeing with the file's size. */
static bool hv_ckpt_tail_ok(struct hv_ckpt_file *f)
{
	struct gpup_vmckpt_tail *t = &f->tail;

	return f->size >= sizeof(f->head) + sizeof(*t) &&
	       pread(f->fd, t, sizeof(*t), (off_t)(f->size - sizeof(*t))) == sizeof(*t) &&
	       t->magic == GPUP_VMCKPT_TAIL_MAGIC &&
	       t->tail_hash == XXH3_64bits(t, offsetof(struct gpup_vmckpt_tail, tail_hash)) &&
	       t->stream_bytes == f->size - sizeof(f->head) - sizeof(*t);
}

/* f->fd open: its size, head and tail read and checked. */
static int hv_ckpt_check_ends(struct hv_ckpt_file *f, char *err, size_t errlen)
{
	struct stat st;
	int rc;

	if (fstat(f->fd, &st))
		return hv_ckpt_say(err, errlen, -errno, "%s: %s", f->path, strerror(errno));
	f->size = (uint64_t)st.st_size;
	if (f->size < sizeof(f->head) ||
	    pread(f->fd, &f->head, sizeof(f->head), 0) != sizeof(f->head))
		return hv_ckpt_say(err, errlen, -EBADMSG, "%s: not a gpup VM checkpoint (%llu "
				   "bytes, shorter than a file head)", f->path,
				   (unsigned long long)f->size);
	rc = hv_ckpt_check_head(f->path, &f->head, err, errlen);
	if (!rc && !hv_ckpt_tail_ok(f))
		rc = hv_ckpt_say(err, errlen, -ENODATA, "%s: truncated: no valid tail at byte "
				 "%llu (the write did not finish)", f->path,
				 (unsigned long long)(f->size - sizeof(f->tail)));
	return rc;
}

int hv_ckpt_open(const char *path, struct hv_ckpt_file *f, char *err, size_t errlen)
{
	int rc;

	memset(f, 0, sizeof(*f));
	f->fd = -1;
	if (snprintf(f->path, sizeof(f->path), "%s", path) >= (int)sizeof(f->path))
		return hv_ckpt_say(err, errlen, -ENAMETOOLONG, "%s: path too long", path);
	f->fd = open(path, O_RDONLY | O_CLOEXEC);
	if (f->fd < 0)
		return hv_ckpt_say(err, errlen, -errno, "%s: cannot open it: %s", path,
				   strerror(errno));
	rc = hv_ckpt_check_ends(f, err, errlen);
	if (rc) {
		close(f->fd);
		f->fd = -1;
	}
	return rc;
}

void hv_ckpt_close(struct hv_ckpt_file *f, unsigned int n)
{
	for (unsigned int i = 0; i < n; i++)
		if (f[i].fd >= 0)
			close(f[i].fd);
}

/* The base that child names, in child's own directory, opened into b
 * and checked to be the file child was taken on; on failure b is closed. */
static int hv_ckpt_open_base(const struct hv_ckpt_file *child, struct hv_ckpt_file *b,
			     char *err, size_t errlen)
{
	char d[PATH_MAX], base[PATH_MAX];
	int rc;

	snprintf(d, sizeof(d), "%s", child->path);
	if (snprintf(base, sizeof(base), "%s/%s", dirname(d), child->head.base) >=
	    (int)sizeof(base))
		return hv_ckpt_say(err, errlen, -ENAMETOOLONG, "%s: its base's path is too long",
				   child->path);
	if (access(base, F_OK))
		return hv_ckpt_say(err, errlen, -ENOENT, "%s: its base %s is missing", child->path,
				   base);
	rc = hv_ckpt_open(base, b, err, errlen);
	if (rc || b->tail.ident == child->head.base_ident)
		return rc;
	hv_ckpt_close(b, 1);
	return hv_ckpt_say(err, errlen, -ESTALE, "%s: its base %s is not the checkpoint it was "
			   "taken on (identity %016llx, it names %016llx)", child->path, base,
			   (unsigned long long)b->tail.ident,
			   (unsigned long long)child->head.base_ident);
}

/* top, then its bases until a full file; checked and opened, oldest
 * first in files[0..*n). */
int hv_ckpt_chain(const char *top, struct hv_ckpt_file *files, unsigned int *n, char *err,
		  size_t errlen)
{
	int rc = hv_ckpt_open(top, &files[0], err, errlen);
	unsigned int k = 1;

	while (!rc && (files[k - 1].head.flags & GPUP_VMCKPT_F_INCREMENTAL)) {
		if (k == GPUP_VMCKPT_MAX_CHAIN)
			rc = hv_ckpt_say(err, errlen, -ELOOP, "%s: a chain of more than %u files",
					 top, GPUP_VMCKPT_MAX_CHAIN);
		else if ((rc = hv_ckpt_open_base(&files[k - 1], &files[k], err, errlen)) == 0)
			k++;
	}
	if (rc) {
		hv_ckpt_close(files, k);
		return rc;
	}
	for (unsigned int i = 0; i < k / 2; i++) {
		struct hv_ckpt_file t = files[i];

		files[i] = files[k - 1 - i];
		files[k - 1 - i] = t;
	}
	*n = k;
	return 0;
}

/* The stream of f through rd, then its identity against the tail.  A
 * reader thread (migrate's) reads ahead while the stream is checked and
 * loaded here. */
int hv_ckpt_feed(struct hv_ckpt_file *f, struct hv_vms_reader *rd, char *err, size_t errlen)
{
	uint64_t at = sizeof(f->head), end = f->size - sizeof(f->tail);
	struct mig_rfile *rf = NULL;
	const void *buf;
	ssize_t n = 0;
	int rc;

	rd->origin = sizeof(f->head);
	rd->ident = XXH3_64bits(&f->head, sizeof(f->head));
	posix_fadvise(f->fd, 0, 0, POSIX_FADV_SEQUENTIAL);
	rc = lseek(f->fd, (off_t)at, SEEK_SET) < 0 ? -errno : mig_rfile_open(f->fd, &rf);
	while (!rc && at < end && (n = mig_rfile_next(rf, &buf)) > 0) {
		size_t k = (uint64_t)n < end - at ? (size_t)n : (size_t)(end - at);

		at += k;
		rc = hv_vms_feed(rd, buf, k);
	}
	if (rf)
		mig_rfile_close(rf);
	if (!rc && at < end)
		return hv_ckpt_say(err, errlen, n < 0 ? (int)n : -ENODATA, "%s: cannot read it at "
				   "byte %llu: %s", f->path, (unsigned long long)at,
				   n < 0 ? strerror((int)-n) : "it shrank");
	if (!rc)
		rc = hv_vms_finish(rd);
	if (rc && rd->err[0])
		return hv_ckpt_say(err, errlen, rc, "%s: %s", f->path, rd->err);
	if (rc)
		return hv_ckpt_say(err, errlen, rc, "%s: %s", f->path, strerror(-rc));
	if (rd->ident != f->tail.ident)
		return hv_ckpt_say(err, errlen, -EBADMSG, "%s: its chunks do not make the identity "
				   "its tail names", f->path);
	return 0;
}

/* ---- writing ---- */

/* dir and name of path, in buffers of the caller. */
static int hv_ckpt_split(const char *path, char *dir, char *name)
{
	char a[PATH_MAX], b[PATH_MAX];

	if (snprintf(a, sizeof(a), "%s", path) >= (int)sizeof(a))
		return -ENAMETOOLONG;
	strcpy(b, a);
	snprintf(dir, PATH_MAX, "%s", dirname(a));
	snprintf(name, NAME_MAX + 1, "%s", basename(b));
	return 0;
}

/* An incremental file's base: this VM's last checkpoint, in the same
 * directory as the new one. */
static int hv_ckpt_check_base(struct hv_vm *vm, const char *path, const char *base,
			      struct gpup_vmckpt_head *h, char *err, size_t errlen)
{
	char bdir[PATH_MAX], bname[NAME_MAX + 1], dir[PATH_MAX], name[NAME_MAX + 1];
	struct hv_ckpt_file f;
	struct stat a, b;
	int rc = hv_ckpt_open(base, &f, err, errlen);

	if (rc)
		return rc;
	close(f.fd);
	if (hv_ckpt_split(base, bdir, bname) || hv_ckpt_split(path, dir, name) ||
	    stat(bdir, &a) || stat(dir, &b) || a.st_dev != b.st_dev || a.st_ino != b.st_ino)
		return hv_ckpt_say(err, errlen, -EXDEV, "the base %s must be in the directory of "
				   "%s", base, path);
	if (!vm->ckpt_hash || f.tail.ident != vm->ckpt_ident)
		return hv_ckpt_say(err, errlen, -ESTALE, "%s is not this VM's last checkpoint "
				   "(written or restored): take a full one", base);
	if (strlen(bname) >= sizeof(h->base) || !strcmp(bname, name))
		return hv_ckpt_say(err, errlen, -EINVAL, "the base's name %s is too long or the "
				   "new file's own", bname);
	h->flags = GPUP_VMCKPT_F_INCREMENTAL;
	h->base_ident = f.tail.ident;
	strcpy(h->base, bname);
	return 0;
}

/* The test hook of hv_config's ckpt_fault. */
static void hv_ckpt_fault(struct hv_vm *vm, struct mig_wfile *f)
{
	const char *s = vm->cfg->ckpt_fault;

	if (!s)
		return;
	if (!strcmp(s, "kill@rename"))
		mig_wfile_fault(f, MIG_WFILE_KILL_RENAME, 0);
	else if (!strncmp(s, "kill@", 5))
		mig_wfile_fault(f, MIG_WFILE_KILL, strtoull(s + 5, NULL, 0));
	else if (!strncmp(s, "enospc@", 7))
		mig_wfile_fault(f, MIG_WFILE_ENOSPC, strtoull(s + 7, NULL, 0));
}

int hv_ckpt_begin(struct hv_vm *vm, const char *path, const char *base,
		  struct mig_wfile **out, uint64_t *ident, char *err, size_t errlen)
{
	struct gpup_vmckpt_head h = { .magic = GPUP_VMCKPT_MAGIC, .version = GPUP_VMCKPT_VERSION };
	char dir[PATH_MAX], name[NAME_MAX + 1];
	struct timespec ts;
	int rc;

	if (hv_ckpt_split(path, dir, name))
		return hv_ckpt_say(err, errlen, -ENAMETOOLONG, "%s: path too long", path);
	if (base && base[0] && (rc = hv_ckpt_check_base(vm, path, base, &h, err, errlen)) < 0)
		return rc;
	clock_gettime(CLOCK_REALTIME, &ts);
	h.created_ns = (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
	hv_ckpt_seal_head(&h);
	rc = mig_wfile_open(dir, name, out, err, errlen);
	if (rc)
		return rc;
	hv_ckpt_fault(vm, *out);
	rc = mig_wfile_write(*out, &h, sizeof(h), err, errlen);
	if (rc) {
		mig_wfile_abort(*out);
		return rc;
	}
	*ident = XXH3_64bits(&h, sizeof(h));
	return 0;
}

int hv_ckpt_tail(struct mig_wfile *f, uint64_t stream_bytes, uint64_t ident, char *err,
		 size_t errlen)
{
	struct gpup_vmckpt_tail t = { .magic = GPUP_VMCKPT_TAIL_MAGIC,
				      .stream_bytes = stream_bytes, .ident = ident };

	hv_ckpt_seal_tail(&t);
	return mig_wfile_write(f, &t, sizeof(t), err, errlen);
}
