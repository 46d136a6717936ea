// SPDX-License-Identifier: MIT
/*
 * Partition definitions on disk: one JSON file per partition under
 * STATE/partitions/, written atomically so that a crash leaves either the
 * old file or the new one, never half of one (see pool.h).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <json-c/json.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "gpup/cli.h"
#include "gpup/pool.h"

#define STATE_SUBDIR "partitions"
#define STATE_VERSION 1

/* snprintf that reports truncation as -ENAMETOOLONG. */
static int path_fmt(char *buf, size_t len, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static int path_fmt(char *buf, size_t len, const char *fmt, ...)
{
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(buf, len, fmt, ap);
	va_end(ap);
	return n < 0 || (size_t)n >= len ? -ENAMETOOLONG : 0;
}

static int part_dir(const struct gpup_pool *p, char *buf, size_t len)
{
	return path_fmt(buf, len, "%s/%s", p->state_dir, STATE_SUBDIR);
}

static int fsync_path(const char *path)
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

static char *part_json(const struct gpup_pool *p, const struct gpup_partition *part)
{
	json_object *o = json_object_new_object();
	char *s;

	json_object_object_add(o, "version", json_object_new_int(STATE_VERSION));
	json_object_object_add(o, "uuid", json_object_new_string(part->uuid));
	json_object_object_add(o, "parent", json_object_new_string(p->gpus[part->gpu].name));
	json_object_object_add(o, "type", json_object_new_string(part->type));
	json_object_object_add(o, "vram_offset", json_object_new_int64((int64_t)part->vram_offset));
	json_object_object_add(o, "vram_size", json_object_new_int64((int64_t)part->vram_size));
	json_object_object_add(o, "attrs", json_object_new_array());
	s = strdup(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PRETTY));
	json_object_put(o);
	return s;
}

static int write_file_atomic(const char *dir, const char *name, const char *text)
{
	char tmp[PATH_MAX], dst[PATH_MAX];
	int fd, rc;

	if (path_fmt(tmp, sizeof(tmp), "%s/.%s.tmp", dir, name) ||
	    path_fmt(dst, sizeof(dst), "%s/%s", dir, name))
		return -ENAMETOOLONG;
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
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
	return fsync_path(dir);
}

int gpup_pool_state_write(const struct gpup_pool *p, const struct gpup_partition *part)
{
	char dir[PATH_MAX], name[64];
	char *text;
	int rc;

	if (!p->state_dir)
		return 0;
	rc = part_dir(p, dir, sizeof(dir));
	if (!rc)
		rc = gpup_mkdir_p(dir, 0700);
	if (rc)
		return rc;
	text = part_json(p, part);
	if (!text)
		return -ENOMEM;
	snprintf(name, sizeof(name), "%s.json", part->uuid);
	rc = write_file_atomic(dir, name, text);
	free(text);
	return rc;
}

int gpup_pool_state_remove(const struct gpup_pool *p, const char *uuid)
{
	char dir[PATH_MAX], path[PATH_MAX];
	int rc;

	if (!p->state_dir)
		return 0;
	rc = part_dir(p, dir, sizeof(dir));
	if (rc)
		return rc;
	if (path_fmt(path, sizeof(path), "%s/%s.json", dir, uuid))
		return -ENAMETOOLONG;
	if (unlink(path) && errno != ENOENT)
		return -errno;
	return fsync_path(dir);
}

static const char *jstr(json_object *o, const char *key)
{
	json_object *v;

	if (!json_object_object_get_ex(o, key, &v) || !json_object_is_type(v, json_type_string))
		return NULL;
	return json_object_get_string(v);
}

static int ju64(json_object *o, const char *key, uint64_t *out)
{
	json_object *v;
	int64_t n;

	if (!json_object_object_get_ex(o, key, &v) || !json_object_is_type(v, json_type_int))
		return -EINVAL;
	n = json_object_get_int64(v);
	if (n < 0)
		return -EINVAL;
	*out = (uint64_t)n;
	return 0;
}

/* Parse one state file into *part: 0, or -EINVAL with a reason. */
static int parse_part(const struct gpup_pool *p, json_object *o, const char *file_uuid,
		      struct gpup_partition *part, char *err, size_t errlen)
{
	const char *uuid = jstr(o, "uuid"), *parent = jstr(o, "parent");
	const char *type = jstr(o, "type");
	json_object *v;
	int gpu;

	/* Absent in hand-written definitions; any other version is a format
	 * this daemon does not know, whose fields may mean something else. */
	if (json_object_object_get_ex(o, "version", &v) &&
	    (!json_object_is_type(v, json_type_int) || json_object_get_int64(v) != STATE_VERSION)) {
		snprintf(err, errlen, "format version %s is not %d",
			 json_object_to_json_string(v), STATE_VERSION);
		return -EINVAL;
	}
	if (!uuid || !parent || !type || ju64(o, "vram_offset", &part->vram_offset) ||
	    ju64(o, "vram_size", &part->vram_size)) {
		snprintf(err, errlen, "missing or mistyped fields");
		return -EINVAL;
	}
	if (gpup_uuid_parse(uuid, part->uuid) || strcmp(part->uuid, file_uuid)) {
		snprintf(err, errlen, "uuid does not match the file name");
		return -EINVAL;
	}
	gpu = gpup_pool_find_gpu(p, parent);
	if (gpu < 0) {
		snprintf(err, errlen, "parent GPU '%s' is not in the pool", parent);
		return -ENODEV;
	}
	part->gpu = (unsigned int)gpu;
	snprintf(part->type, sizeof(part->type), "%s", type);
	return 0;
}

static int restore_one(struct gpup_pool *p, const char *dir, const char *fname)
{
	char path[PATH_MAX], uuid[GPUP_UUID_STRLEN + 1], err[GPUP_POOL_ERR_MAX] = "";
	struct gpup_partition *part;
	json_object *o;
	int rc = -EINVAL;

	if (path_fmt(path, sizeof(path), "%s/%s", dir, fname))
		return -ENAMETOOLONG;
	memcpy(uuid, fname, GPUP_UUID_STRLEN);
	uuid[GPUP_UUID_STRLEN] = '\0';
	part = calloc(1, sizeof(*part));
	o = json_object_from_file(path);
	if (!part)
		rc = -ENOMEM;
	else if (!o || !json_object_is_type(o, json_type_object))
		snprintf(err, sizeof(err), "not a JSON object");
	else if (!(rc = parse_part(p, o, uuid, part, err, sizeof(err))))
		rc = gpup_pool_adopt(p, part, err, sizeof(err));
	json_object_put(o);
	if (rc) {
		if (p->log)
			p->log("skipping partition file %s: %s", path, err);
		free(part);
	}
	return rc;
}

static int is_state_file(const char *name)
{
	size_t n = strlen(name);

	return n == GPUP_UUID_STRLEN + 5 && strcmp(name + GPUP_UUID_STRLEN, ".json") == 0;
}

int gpup_pool_restore(struct gpup_pool *p)
{
	char dir[PATH_MAX];
	struct dirent **ents;
	int n, restored = 0;

	if (!p->state_dir || part_dir(p, dir, sizeof(dir)))
		return 0;
	/* Sorted, so restores (and the buddy slots they take) are repeatable. */
	n = scandir(dir, &ents, NULL, alphasort);
	if (n < 0)
		return errno == ENOENT ? 0 : -errno;
	for (int i = 0; i < n; i++) {
		if (is_state_file(ents[i]->d_name) && !restore_one(p, dir, ents[i]->d_name))
			restored++;
		free(ents[i]);
	}
	free(ents);
	return restored;
}
