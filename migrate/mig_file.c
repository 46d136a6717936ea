/* SPDX-License-Identifier: MIT */
/*
 * mig_file.c: checkpoint files.  A checkpoint is the migration stream of
 * uapi/gpup_mig.h as a file, written and read through the same entry
 * points a vfio-user client uses, so it gets the same checks.  It is
 * written to a temporary name in the same directory, fsynced, renamed
 * over the final name and the directory fsynced: a crash at any point
 * leaves the previous checkpoint or the new one, never a mix, and the
 * next save to that name removes the temporary file a dead writer left.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <unistd.h>

#include "migrate/mig.h"
#include "migrate/mig_int.h"

#define IO_CHUNK (1u << 20)

int mig_say(char *err, size_t errlen, int rc, const char *fmt, ...)
{
	va_list ap;

	if (err && errlen) {
		va_start(ap, fmt);
		vsnprintf(err, errlen, fmt, ap);
		va_end(ap);
	}
	return rc;
}

static int set_state(struct mig_dev *md, enum mig_state s)
{
	struct vfio_device_feature_mig_state m = { .device_state = s, .data_fd = -1 }, out;
	int rc = mig_dev_feature(md, VFIO_DEVICE_FEATURE_SET | VFIO_DEVICE_FEATURE_MIG_DEVICE_STATE,
				 &m, sizeof(m), &out, sizeof(out));

	return rc < 0 ? rc : 0;
}

/*
 * DOC: the I/O thread
 *
 * The disk and the saver (or the parser) work at the same time: a ring of
 * RING_BUFS aligned buffers lies between the calling thread and one I/O
 * thread.  Saving, the caller fills buffers from the stream while the
 * thread writes the ones before, up to WRITE_BUFS in one write;
 * restoring, the thread reads ahead while the caller feeds the parser.  The first error of either side is kept in
 * the ring and stops both; the caller returns it.  Nothing else is shared:
 * the device is only ever touched by the calling thread.
 */
#define RING_BUFS 8u
#define WRITE_BUFS 4u             /* buffers one write may take */

struct ring {
	pthread_mutex_t lock;
	pthread_cond_t moved;     /* a buffer was filled or drained, or err/eof */
	uint8_t *buf[RING_BUFS];  /* IO_CHUNK each, block aligned */
	uint32_t len[RING_BUFS];
	uint64_t head, tail;      /* buffers filled; buffers drained */
	bool eof;                 /* the filling side has no more */
	int err;                  /* the first error of either side */
	bool io_err;              /* ... and it was the I/O thread's */
	int fd;
	pthread_t io;
	/* Fault injection (mig_wfile_fault): bytes written so far. */
	enum mig_wfile_fault fault;
	uint64_t written, fault_at;
};

static int ring_init(struct ring *r, int fd)
{
	memset(r, 0, sizeof(*r));
	r->fd = fd;
	pthread_mutex_init(&r->lock, NULL);
	pthread_cond_init(&r->moved, NULL);
	for (unsigned int i = 0; i < RING_BUFS; i++)
		if (posix_memalign((void **)&r->buf[i], 4096, IO_CHUNK))
			return -ENOMEM;
	return 0;
}

static void ring_free(struct ring *r)
{
	for (unsigned int i = 0; i < RING_BUFS; i++)
		free(r->buf[i]);
	pthread_cond_destroy(&r->moved);
	pthread_mutex_destroy(&r->lock);
}

/* Record err (the first one wins; io: the I/O thread's) or the end of the
 * filling side. */
static void ring_stop(struct ring *r, int err, bool io)
{
	pthread_mutex_lock(&r->lock);
	if (err && !r->err) {
		r->err = err;
		r->io_err = io;
	}
	r->eof = true;
	pthread_cond_broadcast(&r->moved);
	pthread_mutex_unlock(&r->lock);
}

/* The filling side: the next empty buffer, or NULL and *err once either
 * side failed. */
static uint8_t *ring_slot(struct ring *r, int *err)
{
	uint8_t *b = NULL;

	pthread_mutex_lock(&r->lock);
	while (!r->err && r->head - r->tail == RING_BUFS)
		pthread_cond_wait(&r->moved, &r->lock);
	*err = r->err;
	if (!r->err)
		b = r->buf[r->head % RING_BUFS];
	pthread_mutex_unlock(&r->lock);
	return b;
}

static void ring_put(struct ring *r, uint32_t len)
{
	pthread_mutex_lock(&r->lock);
	r->len[r->head % RING_BUFS] = len;
	r->head++;
	pthread_cond_broadcast(&r->moved);
	pthread_mutex_unlock(&r->lock);
}

/* The draining side: up to max full buffers in order, as iov (a buffer
 * that is not a block multiple, the last, only ever alone): how many, or
 * 0 at the end (*err 0) or after an error (*err). */
static unsigned int ring_next(struct ring *r, struct iovec *iov, unsigned int max, int *err)
{
	unsigned int n = 0;

	pthread_mutex_lock(&r->lock);
	while (!r->err && !r->eof && r->head == r->tail)
		pthread_cond_wait(&r->moved, &r->lock);
	*err = r->err;
	while (!r->err && n < max && r->tail + n != r->head) {
		unsigned int i = (unsigned int)((r->tail + n) % RING_BUFS);

		if (n && r->len[i] % 4096)
			break;
		iov[n++] = (struct iovec){ r->buf[i], r->len[i] };
		if (r->len[i] % 4096)
			break;
	}
	pthread_mutex_unlock(&r->lock);
	return n;
}

static void ring_done(struct ring *r, unsigned int n)
{
	pthread_mutex_lock(&r->lock);
	r->tail += n;
	pthread_cond_broadcast(&r->moved);
	pthread_mutex_unlock(&r->lock);
}

/* Stop the ring with the calling thread's err (0: its side is done) and
 * wait for the I/O thread: the first error of either side. */
static int ring_join(struct ring *r, int err)
{
	ring_stop(r, err, false);
	pthread_join(r->io, NULL);
	return r->err;
}

static int write_all(int fd, struct iovec *iov, unsigned int n)
{
	while (n) {
		ssize_t w = writev(fd, iov, (int)n);

		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0)
			return -errno;
		for (; n && (size_t)w >= iov->iov_len; iov++, n--)
			w -= (ssize_t)iov->iov_len;
		if (n) {
			iov->iov_base = (uint8_t *)iov->iov_base + w;
			iov->iov_len -= (size_t)w;
		}
	}
	return 0;
}

/* Whole IO_CHUNKs go out with O_DIRECT where the file system takes it
 * (the stream is written once and read back rarely, so the page cache
 * would only cost a copy and the fsync's flush), several at once when the
 * saver is ahead: a disk takes larger writes faster.  The last buffer,
 * not a block multiple, goes without. */
static int write_bufs(int fd, struct iovec *iov, unsigned int n)
{
	int fl;

	if (iov[n - 1].iov_len % 4096 && (fl = fcntl(fd, F_GETFL)) >= 0 && (fl & O_DIRECT) &&
	    fcntl(fd, F_SETFL, fl & ~O_DIRECT))
		return -errno;
	return write_all(fd, iov, n);
}

/* The writer dies, or the disk fills, at fault_at bytes: what was before
 * is written, through the page cache, and nothing after. */
static int write_fault(struct ring *r, struct iovec *iov, unsigned int n)
{
	uint64_t total = 0;
	int fl;

	for (unsigned int i = 0; i < n; i++)
		total += iov[i].iov_len;
	if (r->fault == MIG_WFILE_KILL_RENAME || r->written + total < r->fault_at) {
		r->written += total;
		return write_bufs(r->fd, iov, n);
	}
	if ((fl = fcntl(r->fd, F_GETFL)) >= 0)
		fcntl(r->fd, F_SETFL, fl & ~O_DIRECT);
	for (unsigned int i = 0; i < n && r->written < r->fault_at; i++) {
		uint64_t k = r->fault_at - r->written;
		struct iovec part = { iov[i].iov_base, k < iov[i].iov_len ? k : iov[i].iov_len };

		if (write_all(r->fd, &part, 1))
			break;
		r->written += part.iov_len;
	}
	if (r->fault == MIG_WFILE_KILL)
		raise(SIGKILL);
	return -ENOSPC;
}

/* The writer: every buffer filled, in order, until the end or an error. */
static void *writer(void *arg)
{
	struct ring *r = arg;
	struct iovec iov[WRITE_BUFS];
	unsigned int n;
	int rc = 0;

	while (!rc && (n = ring_next(r, iov, WRITE_BUFS, &rc))) {
		rc = r->fault ? write_fault(r, iov, n) : write_bufs(r->fd, iov, n);
		ring_done(r, n);
	}
	if (rc)
		ring_stop(r, rc, true);
	return NULL;
}

/* The file being written: the buffer being filled from the stream. */
struct out {
	struct ring ring;
	uint8_t *cur;
	uint32_t fill;
};

/* Read the stream until a short read, into the file.  Reads fill the
 * buffer up, so that every buffer but the last is a whole IO_CHUNK. */
static int drain(struct mig_dev *md, struct out *o)
{
	int n;

	for (;;) {
		uint32_t want;

		if (!o->cur && !(o->cur = ring_slot(&o->ring, &n)))
			return n;
		want = IO_CHUNK - o->fill;
		n = mig_dev_data_read(md, o->cur + o->fill, want);
		if (n < 0)
			return n;
		o->fill += (uint32_t)n;
		if (o->fill == IO_CHUNK) {
			ring_put(&o->ring, o->fill);
			o->cur = NULL;
			o->fill = 0;
		}
		if ((uint32_t)n < want)
			return 0;
	}
}

/* Pre-copy rounds while the device runs, until they stop shrinking
 * below the bound or there were enough of them. */
static int precopy(struct mig_dev *md, struct out *out, const struct mig_file_opts *o)
{
	unsigned int rounds = o && o->max_rounds ? o->max_rounds : 8;
	uint64_t min = o && o->min_pages ? o->min_pages : 64;
	struct mig_stats a, b;
	int rc = set_state(md, MIG_PRE_COPY);

	for (unsigned int i = 0; !rc && i < rounds; i++) {
		mig_dev_stats(md, &a);
		rc = drain(md, out);
		mig_dev_stats(md, &b);
		if (b.pages_sent + b.zero_pages - a.pages_sent - a.zero_pages < min)
			break;
	}
	return rc;
}

/* The stream, produced on this thread while the ring's thread writes it. */
static int produce(struct mig_dev *md, struct out *out, const struct mig_file_opts *o)
{
	enum mig_state was = mig_dev_state(md);
	uint32_t feats = 0;
	int rc = 0;

	if (was == MIG_RUNNING) {
		struct vfio_device_feature_migration m;

		if (mig_dev_feature(md, VFIO_DEVICE_FEATURE_GET | VFIO_DEVICE_FEATURE_MIGRATION,
				    NULL, 0, &m, sizeof(m)) == sizeof(m))
			feats = (uint32_t)m.flags;
		if (feats & VFIO_MIGRATION_PRE_COPY)
			rc = precopy(md, out, o);
	}
	if (!rc)
		rc = set_state(md, MIG_STOP_COPY);
	if (!rc)
		rc = drain(md, out);
	if (!rc && out->fill)
		ring_put(&out->ring, out->fill);
	/* Back to where it was, whatever happened. */
	if (set_state(md, was))
		mig_dev_device_reset(md);
	return rc;
}

/* 0, or the first error of the saver or the writer (the file is then
 * incomplete and the caller removes it). */
static int save_stream(struct mig_dev *md, int fd, const struct mig_file_opts *o,
		       bool *io_err)
{
	struct out out = { .cur = NULL };
	int rc = ring_init(&out.ring, fd);

	if (!rc)
		rc = -pthread_create(&out.ring.io, NULL, writer, &out.ring);
	if (!rc) {
		rc = produce(md, &out, o);
		rc = ring_join(&out.ring, rc);
		*io_err = out.ring.io_err;
	}
	ring_free(&out.ring);
	return rc;
}

/* A writer that died left .NAME.tmp.PID behind: remove those whose
 * process is gone (a live one may be another daemon's write in progress). */
static void drop_stale(int dfd, const char *name)
{
	int fd = dup(dfd);
	DIR *d = fd < 0 ? NULL : fdopendir(fd);
	size_t n = strlen(name);
	struct dirent *e;

	if (!d) {
		if (fd >= 0)
			close(fd);
		return;
	}
	while ((e = readdir(d))) {
		const char *p = e->d_name;
		char *end;
		long pid;

		if (p[0] != '.' || strncmp(p + 1, name, n) || strncmp(p + 1 + n, ".tmp.", 5))
			continue;
		pid = strtol(p + n + 6, &end, 10);
		if (*end || pid <= 0 || pid == getpid() || !(kill((pid_t)pid, 0) && errno == ESRCH))
			continue;
		unlinkat(dfd, p, 0);
	}
	closedir(d);
}

/* dir/.NAME.tmp.PID created (O_DIRECT where the file system takes it),
 * after removing what dead writers left: 0 with *dfd and *fd, or -errno. */
static int open_tmp(const char *dir, const char *name, char *tmp, size_t tmplen, int *dfd,
		    int *fd, char *err, size_t errlen)
{
	if (!name[0] || strchr(name, '/') ||
	    snprintf(tmp, tmplen, ".%s.tmp.%d", name, (int)getpid()) >= (int)tmplen)
		return mig_say(err, errlen, -EINVAL, "bad checkpoint name '%s'", name);
	*dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (*dfd < 0)
		return mig_say(err, errlen, -errno, "cannot open directory %s: %s", dir,
			   strerror(errno));
	drop_stale(*dfd, name);
	*fd = openat(*dfd, tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_DIRECT, 0600);
	if (*fd < 0 && errno == EINVAL)    /* a file system without O_DIRECT: tmpfs */
		*fd = openat(*dfd, tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (*fd < 0) {
		int rc = mig_say(err, errlen, -errno, "cannot create %s/%s: %s", dir, tmp,
			     strerror(errno));

		close(*dfd);
		return rc;
	}
	return 0;
}

/* The temporary file written whole (rc 0): fsync, rename over name, fsync
 * the directory.  Otherwise, or if any of that fails, it is removed.
 * Closes both descriptors. */
static int finish_tmp(const char *dir, const char *name, const char *tmp, int dfd, int fd,
		      int rc, bool kill_before_rename, char *err, size_t errlen)
{
	if (!rc && fsync(fd))
		rc = mig_say(err, errlen, -errno, "cannot fsync %s/%s: %s", dir, tmp, strerror(errno));
	if (!rc && kill_before_rename)
		raise(SIGKILL);
	if (close(fd) && !rc)
		rc = mig_say(err, errlen, -errno, "cannot write %s/%s: %s", dir, tmp, strerror(errno));
	if (!rc && renameat(dfd, tmp, dfd, name))
		rc = mig_say(err, errlen, -errno, "cannot rename %s/%s to %s: %s", dir, tmp, name,
			 strerror(errno));
	if (rc)
		unlinkat(dfd, tmp, 0);
	else if (fsync(dfd))      /* renamed, but maybe not durably */
		rc = mig_say(err, errlen, -errno, "cannot fsync directory %s: %s", dir,
			 strerror(errno));
	close(dfd);
	return rc;
}

int mig_file_save(struct mig_dev *md, const char *dir, const char *name,
		  const struct mig_file_opts *opts, char *err, size_t errlen)
{
	enum mig_state was = mig_dev_state(md);
	bool io_err = false;
	char tmp[512];
	int dfd, fd, rc;

	if (was != MIG_RUNNING && was != MIG_STOP)
		return mig_say(err, errlen, -EBUSY, "partition is in migration state %s, not "
			   "RUNNING or STOP", mig_state_name(was));
	rc = open_tmp(dir, name, tmp, sizeof(tmp), &dfd, &fd, err, errlen);
	if (rc)
		return rc;
	rc = save_stream(md, fd, opts, &io_err);
	if (rc && io_err)
		mig_say(err, errlen, rc, "cannot write %s/%s: %s", dir, tmp, strerror(-rc));
	else if (rc)
		mig_say(err, errlen, rc, "saving the partition failed: %s", strerror(-rc));
	return finish_tmp(dir, name, tmp, dfd, fd, rc, false, err, errlen);
}

struct mig_wfile {
	struct out out;
	char dir[512], name[256], tmp[512];
	int dfd, fd;
};

int mig_wfile_open(const char *dir, const char *name, struct mig_wfile **out, char *err,
		   size_t errlen)
{
	struct mig_wfile *f = calloc(1, sizeof(*f));
	int rc;

	if (!f)
		return mig_say(err, errlen, -ENOMEM, "out of memory");
	if (snprintf(f->dir, sizeof(f->dir), "%s", dir) >= (int)sizeof(f->dir) ||
	    snprintf(f->name, sizeof(f->name), "%s", name) >= (int)sizeof(f->name)) {
		free(f);
		return mig_say(err, errlen, -ENAMETOOLONG, "checkpoint path too long");
	}
	rc = open_tmp(dir, name, f->tmp, sizeof(f->tmp), &f->dfd, &f->fd, err, errlen);
	if (rc) {
		free(f);
		return rc;
	}
	rc = ring_init(&f->out.ring, f->fd);
	if (!rc)
		rc = -pthread_create(&f->out.ring.io, NULL, writer, &f->out.ring);
	if (rc) {
		mig_say(err, errlen, rc, "cannot start writing %s/%s: %s", dir, f->tmp, strerror(-rc));
		ring_free(&f->out.ring);
		finish_tmp(dir, name, f->tmp, f->dfd, f->fd, rc, false, NULL, 0);
		free(f);
		return rc;
	}
	*out = f;
	return 0;
}

int mig_wfile_write(struct mig_wfile *f, const void *buf, size_t len, char *err,
		    size_t errlen)
{
	const uint8_t *p = buf;
	int rc;

	while (len) {
		uint32_t n;

		if (!f->out.cur && !(f->out.cur = ring_slot(&f->out.ring, &rc)))
			return mig_say(err, errlen, rc, "cannot write %s/%s: %s", f->dir, f->tmp,
				   strerror(-rc));
		n = IO_CHUNK - f->out.fill;
		n = len < n ? (uint32_t)len : n;
		memcpy(f->out.cur + f->out.fill, p, n);
		f->out.fill += n;
		p += n;
		len -= n;
		if (f->out.fill == IO_CHUNK) {
			ring_put(&f->out.ring, f->out.fill);
			f->out.cur = NULL;
			f->out.fill = 0;
		}
	}
	return 0;
}

/* Stop the writer (after the rest with err 0) and free the ring: the
 * first error of the writer, if any. */
static int wfile_stop(struct mig_wfile *f, int err)
{
	if (!err && f->out.fill)
		ring_put(&f->out.ring, f->out.fill);
	err = ring_join(&f->out.ring, err);
	ring_free(&f->out.ring);
	return err;
}

int mig_wfile_commit(struct mig_wfile *f, char *err, size_t errlen)
{
	int rc = wfile_stop(f, 0);

	if (rc)
		mig_say(err, errlen, rc, "cannot write %s/%s: %s", f->dir, f->tmp, strerror(-rc));
	rc = finish_tmp(f->dir, f->name, f->tmp, f->dfd, f->fd, rc,
			f->out.ring.fault == MIG_WFILE_KILL_RENAME, err, errlen);
	free(f);
	return rc;
}

void mig_wfile_fault(struct mig_wfile *f, enum mig_wfile_fault kind, uint64_t at)
{
	pthread_mutex_lock(&f->out.ring.lock);
	f->out.ring.fault = kind;
	f->out.ring.fault_at = at;
	pthread_mutex_unlock(&f->out.ring.lock);
}

void mig_wfile_abort(struct mig_wfile *f)
{
	finish_tmp(f->dir, f->name, f->tmp, f->dfd, f->fd, wfile_stop(f, -ECANCELED), false,
		   NULL, 0);
	free(f);
}

/* The reader: the file into the ring, a buffer at a time, until EOF. */
static void *reader(void *arg)
{
	struct ring *r = arg;
	uint8_t *b;
	int rc = 0;

	while (!rc && (b = ring_slot(r, &rc))) {
		uint32_t got = 0;
		ssize_t n = 1;

		while (got < IO_CHUNK && n > 0) {
			n = read(r->fd, b + got, IO_CHUNK - got);
			if (n < 0 && errno == EINTR)
				n = 1;
			else if (n < 0)
				rc = -errno;
			else
				got += (uint32_t)n;
		}
		if (got)
			ring_put(r, got);
		if (n <= 0)
			break;
	}
	ring_stop(r, rc, true);
	return NULL;
}

struct mig_rfile {
	struct ring ring;
	bool held;                /* the caller has the tail buffer */
};

int mig_rfile_open(int fd, struct mig_rfile **out)
{
	struct mig_rfile *f = calloc(1, sizeof(*f));
	int rc = f ? ring_init(&f->ring, fd) : -ENOMEM;

	if (!rc)
		rc = -pthread_create(&f->ring.io, NULL, reader, &f->ring);
	if (rc) {
		if (f)
			ring_free(&f->ring);
		free(f);
		return rc;
	}
	*out = f;
	return 0;
}

ssize_t mig_rfile_next(struct mig_rfile *f, const void **buf)
{
	struct iovec b;
	int err = 0;

	if (f->held)
		ring_done(&f->ring, 1);
	f->held = ring_next(&f->ring, &b, 1, &err) == 1;
	if (!f->held)
		return err;
	*buf = b.iov_base;
	return (ssize_t)b.iov_len;
}

void mig_rfile_close(struct mig_rfile *f)
{
	ring_join(&f->ring, -ECANCELED);
	ring_free(&f->ring);
	free(f);
}

/* Feed the file through RESUMING while the ring's thread reads ahead. */
static int load_stream(struct mig_dev *md, int fd)
{
	struct ring r;
	struct iovec b;
	int rc = ring_init(&r, fd), err = 0;

	if (!rc)
		rc = set_state(md, MIG_RESUMING);
	if (!rc)
		rc = -pthread_create(&r.io, NULL, reader, &r);
	if (!rc) {
		while (!rc && ring_next(&r, &b, 1, &err)) {
			rc = mig_dev_data_write(md, b.iov_base, (uint32_t)b.iov_len);
			ring_done(&r, 1);
		}
		rc = ring_join(&r, rc ? rc : err);
	}
	ring_free(&r);
	return rc ? rc : set_state(md, MIG_STOP);
}

int mig_file_restore(struct mig_dev *md, const char *dir, const char *name, char *err,
		     size_t errlen)
{
	enum mig_state was = mig_dev_state(md);
	char path[1024];
	int fd, rc;

	if (was != MIG_RUNNING && was != MIG_STOP)
		return mig_say(err, errlen, -EBUSY, "partition is in migration state %s, not "
			   "RUNNING or STOP", mig_state_name(was));
	if (snprintf(path, sizeof(path), "%s/%s", dir, name) >= (int)sizeof(path))
		return mig_say(err, errlen, -ENAMETOOLONG, "checkpoint path too long");
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return mig_say(err, errlen, -errno, "cannot open %s: %s", path, strerror(errno));
	rc = load_stream(md, fd);
	close(fd);
	if (!rc && was == MIG_RUNNING)
		rc = set_state(md, MIG_RUNNING);
	if (rc) {
		mig_say(err, errlen, rc, "%s: %s", path,
		    mig_dev_last_error(md)[0] ? mig_dev_last_error(md) : strerror(-rc));
		mig_dev_device_reset(md);
	}
	return rc;
}
