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
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "migrate/mig.h"

#define IO_CHUNK (1u << 20)

static int say(char *err, size_t errlen, int rc, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
static int say(char *err, size_t errlen, int rc, const char *fmt, ...)
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

static int write_all(int fd, const uint8_t *p, size_t n)
{
	while (n) {
		ssize_t w = write(fd, p, n);

		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0)
			return -errno;
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

/* The file being written: whole IO_CHUNKs go out with O_DIRECT where the
 * file system takes it (the stream is written once and read back rarely,
 * so the page cache only costs a copy and the fsync's flush); the tail,
 * not a block multiple, without. */
struct out {
	int fd;
	uint8_t *buf;             /* IO_CHUNK, block aligned */
	size_t fill;
};

static int out_flush(struct out *o)
{
	int rc = write_all(o->fd, o->buf, o->fill);

	o->fill = 0;
	return rc;
}

static int out_tail(struct out *o)
{
	int fl = fcntl(o->fd, F_GETFL);

	if (fl >= 0 && (fl & O_DIRECT) && fcntl(o->fd, F_SETFL, fl & ~O_DIRECT))
		return -errno;
	return out_flush(o);
}

/* Read the stream until a short read, into the file; *bytes gets the
 * count.  Reads fill the buffer up, so writes stay whole chunks. */
static int drain(struct mig_dev *md, struct out *o, uint64_t *bytes)
{
	int n, rc = 0;

	*bytes = 0;
	do {
		uint32_t want = (uint32_t)(IO_CHUNK - o->fill);

		n = mig_dev_data_read(md, o->buf + o->fill, want);
		if (n < 0)
			return n;
		o->fill += (size_t)n;
		*bytes += (uint64_t)n;
		if (o->fill == IO_CHUNK)
			rc = out_flush(o);
		if ((uint32_t)n < want)
			break;
	} while (!rc);
	return rc;
}

/* Pre-copy rounds while the device runs, until they stop shrinking
 * below the bound or there were enough of them. */
static int precopy(struct mig_dev *md, struct out *out, const struct mig_file_opts *o)
{
	unsigned int rounds = o && o->max_rounds ? o->max_rounds : 8;
	uint64_t min = o && o->min_pages ? o->min_pages : 64, bytes;
	struct mig_stats a, b;
	int rc = set_state(md, MIG_PRE_COPY);

	for (unsigned int i = 0; !rc && i < rounds; i++) {
		mig_dev_stats(md, &a);
		rc = drain(md, out, &bytes);
		mig_dev_stats(md, &b);
		if (b.pages_sent + b.zero_pages - a.pages_sent - a.zero_pages < min)
			break;
	}
	return rc;
}

static int save_stream(struct mig_dev *md, int fd, const struct mig_file_opts *o)
{
	enum mig_state was = mig_dev_state(md);
	struct out out = { .fd = fd };
	uint64_t bytes;
	uint32_t feats = 0;
	int rc = -posix_memalign((void **)&out.buf, 4096, IO_CHUNK);

	if (!rc && was == MIG_RUNNING) {
		struct vfio_device_feature_migration m;

		if (mig_dev_feature(md, VFIO_DEVICE_FEATURE_GET | VFIO_DEVICE_FEATURE_MIGRATION,
				    NULL, 0, &m, sizeof(m)) == sizeof(m))
			feats = (uint32_t)m.flags;
		if (feats & VFIO_MIGRATION_PRE_COPY)
			rc = precopy(md, &out, o);
	}
	if (!rc)
		rc = set_state(md, MIG_STOP_COPY);
	if (!rc)
		rc = drain(md, &out, &bytes);
	if (!rc)
		rc = out_tail(&out);
	/* Back to where it was, whatever happened. */
	if (set_state(md, was))
		mig_dev_device_reset(md);
	free(out.buf);
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

int mig_file_save(struct mig_dev *md, const char *dir, const char *name,
		  const struct mig_file_opts *opts, char *err, size_t errlen)
{
	enum mig_state was = mig_dev_state(md);
	char tmp[512];
	int dfd, fd, rc;

	if (was != MIG_RUNNING && was != MIG_STOP)
		return say(err, errlen, -EBUSY, "partition is in migration state %s, not "
			   "RUNNING or STOP", mig_state_name(was));
	if (!name[0] || strchr(name, '/') ||
	    snprintf(tmp, sizeof(tmp), ".%s.tmp.%d", name, (int)getpid()) >= (int)sizeof(tmp))
		return say(err, errlen, -EINVAL, "bad checkpoint name '%s'", name);
	dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0)
		return say(err, errlen, -errno, "cannot open directory %s: %s", dir,
			   strerror(errno));
	drop_stale(dfd, name);
	fd = openat(dfd, tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_DIRECT, 0600);
	if (fd < 0 && errno == EINVAL)    /* a file system without O_DIRECT: tmpfs */
		fd = openat(dfd, tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0) {
		rc = say(err, errlen, -errno, "cannot create %s/%s: %s", dir, tmp, strerror(errno));
		goto out_dir;
	}
	rc = save_stream(md, fd, opts);
	if (rc)
		say(err, errlen, rc, "saving the partition failed: %s", strerror(-rc));
	else if (fsync(fd))
		rc = say(err, errlen, -errno, "cannot fsync %s/%s: %s", dir, tmp, strerror(errno));
	if (close(fd) && !rc)
		rc = say(err, errlen, -errno, "cannot write %s/%s: %s", dir, tmp, strerror(errno));
	if (!rc && renameat(dfd, tmp, dfd, name))
		rc = say(err, errlen, -errno, "cannot rename %s/%s to %s: %s", dir, tmp, name,
			 strerror(errno));
	if (rc)
		unlinkat(dfd, tmp, 0);
	else if (fsync(dfd))      /* renamed, but maybe not durably */
		rc = say(err, errlen, -errno, "cannot fsync directory %s: %s", dir,
			 strerror(errno));
out_dir:
	close(dfd);
	return rc;
}

static int load_stream(struct mig_dev *md, int fd)
{
	uint8_t *buf = malloc(IO_CHUNK);
	ssize_t n = 1;
	int rc = buf ? set_state(md, MIG_RESUMING) : -ENOMEM;

	while (!rc && n > 0) {
		n = read(fd, buf, IO_CHUNK);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			rc = -errno;
		else if (n > 0)
			rc = mig_dev_data_write(md, buf, (uint32_t)n);
	}
	free(buf);
	return rc ? rc : set_state(md, MIG_STOP);
}

int mig_file_restore(struct mig_dev *md, const char *dir, const char *name, char *err,
		     size_t errlen)
{
	enum mig_state was = mig_dev_state(md);
	char path[1024];
	int fd, rc;

	if (was != MIG_RUNNING && was != MIG_STOP)
		return say(err, errlen, -EBUSY, "partition is in migration state %s, not "
			   "RUNNING or STOP", mig_state_name(was));
	if (snprintf(path, sizeof(path), "%s/%s", dir, name) >= (int)sizeof(path))
		return say(err, errlen, -ENAMETOOLONG, "checkpoint path too long");
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return say(err, errlen, -errno, "cannot open %s: %s", path, strerror(errno));
	rc = load_stream(md, fd);
	close(fd);
	if (!rc && was == MIG_RUNNING)
		rc = set_state(md, MIG_RUNNING);
	if (rc) {
		say(err, errlen, rc, "%s: %s", path,
		    mig_dev_last_error(md)[0] ? mig_dev_last_error(md) : strerror(-rc));
		mig_dev_device_reset(md);
	}
	return rc;
}
