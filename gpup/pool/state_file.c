// SPDX-License-Identifier: MIT
/*
 * The file primitives of the state directory (pool_int.h): atomic
 * writes (temporary, fsync, rename, fsync of the directory) and careful
 * reads of files that were not necessarily written by us.
 */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <json-c/json.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "gpup/pool/pool_int.h"

int st_path(char *buf, size_t len, const char *fmt, ...)
{
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(buf, len, fmt, ap);
	va_end(ap);
	return n < 0 || (size_t)n >= len ? -ENAMETOOLONG : 0;
}

int st_fsync_dir(const char *path)
{
	int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	int rc = 0;

	if (fd < 0)
		return -errno;
	if (fsync(fd))
		rc = -errno;
	close(fd);
	return rc;
}

int st_mkdir(const char *path)
{
	char parent[PATH_MAX];
	char *slash;

	if (mkdir(path, 0700) == 0) {
		snprintf(parent, sizeof(parent), "%s", path);
		slash = strrchr(parent, '/');
		if (slash && slash != parent)
			*slash = '\0';
		return st_fsync_dir(slash ? parent : ".");
	}
	return errno == EEXIST ? 0 : -errno;
}

static int write_all(int fd, const char *s, size_t len)
{
	while (len) {
		ssize_t n = write(fd, s, len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		s += n;
		len -= (size_t)n;
	}
	return 0;
}

int st_write_atomic(const char *dir, const char *name, const char *text)
{
	char tmp[PATH_MAX], dst[PATH_MAX];
	int fd, rc;

	if (st_path(tmp, sizeof(tmp), "%s/.%s.tmp", dir, name) ||
	    st_path(dst, sizeof(dst), "%s/%s", dir, name))
		return -ENAMETOOLONG;
	/* Whatever is in the way (a leftover, a link planted there) goes:
	 * the file we write is always a new one.  state_dir.c knows this
	 * name too, to clean up after a crash. */
	unlink(tmp);
	fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd < 0)
		return -errno;
	rc = write_all(fd, text, strlen(text));
	if (!rc)
		rc = write_all(fd, "\n", 1);
	if (!rc && fsync(fd))
		rc = -errno;
	close(fd);
	if (!rc && rename(tmp, dst))
		rc = -errno;
	if (rc) {
		unlink(tmp);
		return rc;
	}
	return st_fsync_dir(dir);
}

static int read_fd(int fd, char *buf, size_t cap, size_t *len)
{
	size_t n = 0;

	while (n < cap) {
		ssize_t r = read(fd, buf + n, cap - n);

		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return -errno;
		if (r == 0)
			break;
		n += (size_t)r;
	}
	*len = n;
	return 0;
}

/*
 * The text of a state file, NUL-terminated, in *text (to free), its size
 * in *len.  Opened without following a symlink and without blocking (a
 * FIFO would wait for a writer forever), then refused unless a regular
 * file of at most GPUP_STATE_FILE_MAX bytes, so /dev/zero behind a link
 * cannot eat memory.  0, or -errno with the reason in err (-ENOENT: there
 * is no such file).
 */
static int read_state_file(const char *path, char **text, size_t *len, char *err,
			   size_t errlen)
{
	int fd = open(path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
	struct stat st;
	int rc = 0;

	*text = NULL;
	*len = 0;
	if (fd < 0) {
		rc = -errno;
		if (rc == -ELOOP)
			snprintf(err, errlen, "a symbolic link, not a regular file");
		else
			snprintf(err, errlen, "cannot open it: %s", strerror(-rc));
		return rc;
	}
	if (fstat(fd, &st) || !S_ISREG(st.st_mode)) {
		snprintf(err, errlen, "not a regular file");
		rc = -EINVAL;
	} else if (st.st_size > GPUP_STATE_FILE_MAX) {
		snprintf(err, errlen, "larger than %u KiB", GPUP_STATE_FILE_MAX / 1024);
		rc = -EFBIG;
	} else if (!(*text = malloc(GPUP_STATE_FILE_MAX + 2))) {
		snprintf(err, errlen, "out of memory");
		rc = -ENOMEM;
	} else if ((rc = read_fd(fd, *text, GPUP_STATE_FILE_MAX + 1, len))) {
		snprintf(err, errlen, "cannot read it: %s", strerror(-rc));
	} else if (*len > GPUP_STATE_FILE_MAX) { /* it grew since fstat */
		snprintf(err, errlen, "larger than %u KiB", GPUP_STATE_FILE_MAX / 1024);
		rc = -EFBIG;
	}
	close(fd);
	if (rc) {
		free(*text);
		*text = NULL;
		return rc;
	}
	(*text)[*len] = '\0';
	return 0;
}

int st_load_json(const char *path, json_object **out, char *err, size_t errlen)
{
	json_tokener *tok;
	char *text;
	size_t len;
	int rc = read_state_file(path, &text, &len, err, errlen);

	*out = NULL;
	if (rc)
		return rc;
	tok = json_tokener_new();
	if (tok)
		*out = json_tokener_parse_ex(tok, text, (int)len);
	json_tokener_free(tok);
	free(text);
	if (!*out || !json_object_is_type(*out, json_type_object)) {
		json_object_put(*out);
		*out = NULL;
		snprintf(err, errlen, "not a JSON object");
		return -EINVAL;
	}
	return 0;
}

bool st_gpu_name_ok(const char *name)
{
	size_t n = strlen(name);

	if (!n || n >= sizeof(((struct gpup_pool_gpu *)0)->name) || name[0] == '.')
		return false;
	for (size_t i = 0; i < n; i++)
		if (!isalnum((unsigned char)name[i]) && !strchr("_.-", name[i]))
			return false;
	return true;
}
