// SPDX-License-Identifier: MIT
/*
 * The state directory as a whole (see pool.h): one daemon at a time owns
 * it, by an flock on STATE/gpup.lock that names the owner's pid, and the
 * temporaries of writes a crash interrupted are removed when it starts.
 */
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>

#include "gpup/pool/pool_int.h"

#define LOCK_FILE "gpup.lock"

/* STATE/name: 0, or -ENAMETOOLONG. */
static int state_path(const struct gpup_pool *p, const char *name, char *buf, size_t len)
{
	int n = snprintf(buf, len, "%s/%s", p->state_dir, name);

	return n < 0 || (size_t)n >= len ? -ENAMETOOLONG : 0;
}

/* Who holds the lock, as the pid it wrote there (0 when none is written). */
static int lock_holder(int fd)
{
	char buf[24];
	ssize_t n = pread(fd, buf, sizeof(buf) - 1, 0);
	char *end;
	long pid;

	if (n <= 0)
		return 0;
	buf[n] = '\0';
	pid = strtol(buf, &end, 10);
	return pid > 0 && pid <= INT_MAX && (*end == '\n' || !*end) ? (int)pid : 0;
}

/* Why the lock could not be had, in one line. */
static void lock_err(const struct gpup_pool *p, int fd, int rc, const char *path, char *err,
		     size_t errlen)
{
	int holder = rc == -EBUSY ? lock_holder(fd) : 0;

	if (holder)
		snprintf(err, errlen, "state directory %s is in use by another gpup daemon "
			 "(pid %d); stop it or give another --state-dir", p->state_dir, holder);
	else if (rc == -EBUSY)
		snprintf(err, errlen, "state directory %s is in use by another gpup daemon; "
			 "stop it or give another --state-dir", p->state_dir);
	else
		snprintf(err, errlen, "cannot lock %s: %s", path, strerror(-rc));
}

int gpup_pool_state_lock(struct gpup_pool *p, char *err, size_t errlen)
{
	char path[PATH_MAX], pid[24];
	int fd, rc;

	if (!p->state_dir)
		return 0;
	if (state_path(p, LOCK_FILE, path, sizeof(path)))
		return -ENAMETOOLONG;
	fd = open(path, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd < 0) {
		rc = -errno;
		snprintf(err, errlen, "cannot open %s: %s", path, strerror(-rc));
		return rc;
	}
	if (flock(fd, LOCK_EX | LOCK_NB)) {
		rc = errno == EWOULDBLOCK ? -EBUSY : -errno;
		lock_err(p, fd, rc, path, err, errlen);
		close(fd);
		return rc;
	}
	/* The pid only helps whoever is refused next: not worth failing for. */
	snprintf(pid, sizeof(pid), "%d\n", (int)getpid());
	errno = EIO; /* what a short write means */
	if ((ftruncate(fd, 0) || pwrite(fd, pid, strlen(pid), 0) != (ssize_t)strlen(pid)) &&
	    p->log)
		p->log("cannot write our pid into %s: %s", path, strerror(errno));
	p->lock_fd = fd;
	return 0;
}

/* Exactly the names st_write_atomic gives its temporaries: "." + a
 * canonical UUID + tail (definitions/GPU/: "", partitions/: ".json") or
 * a GPU name + ".json" (gpus/), then ".tmp". */
static bool is_temp_name(const char *name, const char *tail, bool uuid)
{
	size_t n = strlen(name), t = strlen(tail) + strlen(".tmp"), stem;
	char buf[GPUP_UUID_STRLEN + 1], canon[GPUP_UUID_STRLEN + 1];

	if (n < t + 2 || name[0] != '.' || strcmp(name + n - 4, ".tmp") ||
	    strncmp(name + n - t, tail, strlen(tail)))
		return false;
	stem = n - t - 1;
	if (uuid) {
		if (stem != GPUP_UUID_STRLEN)
			return false;
		memcpy(buf, name + 1, stem);
		buf[stem] = '\0';
		return !gpup_uuid_parse(buf, canon) && !strcmp(buf, canon);
	}
	if (stem >= sizeof(((struct gpup_pool_gpu *)0)->name)) /* longer than any GPU's */
		return false;
	for (size_t i = 1; i <= stem; i++)
		if (!isalnum((unsigned char)name[i]) && name[i] != '-' && name[i] != '_')
			return false;
	return true;
}

static int clean_dir(struct gpup_pool *p, const char *dir, const char *tail, bool uuid)
{
	struct dirent *e;
	int removed = 0;
	DIR *d;

	if (!(d = opendir(dir)))
		return 0;
	while ((e = readdir(d))) {
		if (!is_temp_name(e->d_name, tail, uuid))
			continue;
		if (unlinkat(dirfd(d), e->d_name, 0) == 0) {
			removed++;
			if (p->log)
				p->log("removed %s/%s, left by an interrupted write", dir, e->d_name);
		} else if (p->log) {
			p->log("cannot remove %s/%s: %s", dir, e->d_name, strerror(errno));
		}
	}
	closedir(d);
	return removed;
}

static int clean_sub(struct gpup_pool *p, const char *sub, const char *tail, bool uuid)
{
	char dir[PATH_MAX];

	return state_path(p, sub, dir, sizeof(dir)) ? 0 : clean_dir(p, dir, tail, uuid);
}

/* definitions/GPU/ for every GPU directory there. */
static int clean_defs(struct gpup_pool *p)
{
	char dir[PATH_MAX], sub[PATH_MAX];
	struct dirent *e;
	int removed = 0;
	DIR *d;

	if (state_path(p, STATE_DEF_DIR, dir, sizeof(dir)) || !(d = opendir(dir)))
		return 0;
	while ((e = readdir(d)))
		if (st_gpu_name_ok(e->d_name) &&
		    !st_path(sub, sizeof(sub), "%s/%s", dir, e->d_name))
			removed += clean_dir(p, sub, "", true);
	closedir(d);
	return removed;
}

int gpup_pool_state_clean(struct gpup_pool *p)
{
	char tmp[PATH_MAX];
	int removed;

	if (!p->state_dir)
		return 0;
	removed = clean_defs(p) + clean_sub(p, STATE_OLD_DIR, ".json", true) +
		  clean_sub(p, STATE_GPU_DIR, ".json", false);
	if (!state_path(p, "." STATE_FORMAT_FILE ".tmp", tmp, sizeof(tmp)) && unlink(tmp) == 0) {
		removed++;
		if (p->log)
			p->log("removed %s, left by an interrupted write", tmp);
	}
	return removed;
}
