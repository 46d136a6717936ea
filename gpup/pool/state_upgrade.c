// SPDX-License-Identifier: MIT
/*
 * Bringing a state directory written by an older release up to today's
 * layout (pool.h, DOC: upgrading the state directory).  Format 1 kept
 * STATE/partitions/UUID.json; each becomes STATE/definitions/GPU/UUID,
 * written atomically before the old file goes, so that at every instant
 * a partition is defined in one layout or in both (then alike).  The
 * marker STATE/format is written last.  Everything here runs once per
 * start, before restore and before anything is served.
 */
#include <dirent.h>
#include <errno.h>
#include <json-c/json.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "gpup/base/base.h"
#include "gpup/pool/pool_int.h"

static void crash_point(const struct gpup_pool *p, const char *what)
{
	if (p->crash_point)
		p->crash_point(what);
}

/* STATE/format: its number, 0 when absent (format 1 had no marker), or
 * -EINVAL when it holds something else. */
static int read_format(const struct gpup_pool *p)
{
	char path[PATH_MAX], buf[16];
	size_t n;
	FILE *f;
	char *end;
	long v;

	if (st_path(path, sizeof(path), "%s/%s", p->state_dir, STATE_FORMAT_FILE))
		return -ENAMETOOLONG;
	f = fopen(path, "re");
	if (!f)
		return errno == ENOENT ? 0 : -errno;
	n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = '\0';
	v = strtol(buf, &end, 10);
	if (end == buf || (*end && strcmp(end, "\n")) || v < 1 || v > 1000)
		return -EINVAL;
	return (int)v;
}

static void add_attr(json_object *a, const char *name, const char *val)
{
	json_object *o = json_object_new_object();

	json_object_object_add(o, name, json_object_new_string(val));
	json_object_array_add(a, o);
}

static bool old_u64(json_object *o, const char *key, char *buf, size_t len)
{
	json_object *v;

	if (!json_object_object_get_ex(o, key, &v) || !json_object_is_type(v, json_type_int) ||
	    json_object_get_int64(v) < 0)
		return false;
	snprintf(buf, len, "%lld", (long long)json_object_get_int64(v));
	return true;
}

/* The old file's attrs that are well formed {"name": "string"} entries
 * not named like the ones the conversion writes; others are dropped
 * (they cost the partition its scheduler settings in the old layout too). */
static void copy_attrs(json_object *o, json_object *to)
{
	static const char *const ours[] = { "vram_offset", "vram_size", "revision", "compat" };
	json_object *a;

	if (!json_object_object_get_ex(o, "attrs", &a) || !json_object_is_type(a, json_type_array))
		return;
	for (size_t i = 0; i < json_object_array_length(a); i++) {
		json_object *e = json_object_array_get_idx(a, i);
		bool keep;

		/* json-c walks only objects: anything else is no entry. */
		if (!json_object_is_type(e, json_type_object) || json_object_object_length(e) != 1)
			continue;
		keep = true;
		json_object_object_foreach(e, name, v) {
			keep = keep && json_object_is_type(v, json_type_string);
			for (size_t k = 0; k < sizeof(ours) / sizeof(ours[0]); k++)
				keep = keep && strcmp(name, ours[k]);
		}
		if (keep)
			json_object_array_add(to, json_object_get(e));
	}
}

/* A format-1 definition as today's: 0 with *text (to free) and its GPU's
 * name in gpu, or -EINVAL with the reason. */
static int convert(json_object *o, const char *uuid, char **text, char *gpu, size_t gpulen,
		   char *err, size_t errlen)
{
	json_object *v, *n, *a;
	const char *parent = NULL, *type = NULL, *fuuid = NULL, *compat = NULL;
	char off[24], size[24], canon[GPUP_UUID_STRLEN + 1];

	if (json_object_object_get_ex(o, "version", &v) &&
	    (!json_object_is_type(v, json_type_int) || json_object_get_int64(v) != 1))
		return snprintf(err, errlen, "format version is not 1"), -EINVAL;
	if (json_object_object_get_ex(o, "uuid", &v) && json_object_is_type(v, json_type_string))
		fuuid = json_object_get_string(v);
	if (json_object_object_get_ex(o, "parent", &v) && json_object_is_type(v, json_type_string))
		parent = json_object_get_string(v);
	if (json_object_object_get_ex(o, "type", &v) && json_object_is_type(v, json_type_string))
		type = json_object_get_string(v);
	if (json_object_object_get_ex(o, "compat", &v) &&
	    !(compat = json_object_is_type(v, json_type_string) ? json_object_get_string(v) : NULL))
		return snprintf(err, errlen, "compat is not a string"), -EINVAL;
	if (!fuuid || gpup_uuid_parse(fuuid, canon) || strcmp(canon, uuid) || !type || !parent ||
	    !st_gpu_name_ok(parent) ||
	    !old_u64(o, "vram_offset", off, sizeof(off)) || !old_u64(o, "vram_size", size, sizeof(size)))
		return snprintf(err, errlen, "missing or mistyped fields"), -EINVAL;
	n = json_object_new_object();
	a = json_object_new_array();
	json_object_object_add(n, "mdev_type", json_object_new_string(type));
	json_object_object_add(n, "start", json_object_new_string("auto"));
	add_attr(a, "vram_offset", off);
	add_attr(a, "vram_size", size);
	add_attr(a, "revision", "1");
	if (compat)
		add_attr(a, "compat", compat);
	copy_attrs(o, a);
	json_object_object_add(n, "attrs", a);
	*text = strdup(json_object_to_json_string_ext(n, JSON_C_TO_STRING_PRETTY));
	json_object_put(n);
	snprintf(gpu, gpulen, "%s", parent);
	return *text ? 0 : -ENOMEM;
}

/* STATE/definitions/gpu, made if need be. */
static int def_dir(const struct gpup_pool *p, const char *gpu, char *dir, size_t len)
{
	int rc = st_path(dir, len, "%s/%s", p->state_dir, STATE_DEF_DIR);

	if (!rc)
		rc = st_mkdir(dir);
	if (!rc)
		rc = st_path(dir, len, "%s/%s/%s", p->state_dir, STATE_DEF_DIR, gpu);
	return rc ? rc : st_mkdir(dir);
}

/* One old file: written anew, then removed.  0 (converted, or left with
 * a log line when it cannot be), or an I/O error that stops the upgrade. */
static int upgrade_one(struct gpup_pool *p, const char *olddir, const char *fname)
{
	char path[PATH_MAX], dir[PATH_MAX], uuid[GPUP_UUID_STRLEN + 1], gpu[32];
	char err[GPUP_POOL_ERR_MAX] = "", what[PATH_MAX + 16];
	json_object *o = NULL;
	char *text = NULL;
	int rc;

	if (st_path(path, sizeof(path), "%s/%s", olddir, fname))
		return 0;
	snprintf(uuid, sizeof(uuid), "%.36s", fname);
	rc = st_load_json(path, &o, err, sizeof(err));
	if (!rc)
		rc = convert(o, uuid, &text, gpu, sizeof(gpu), err, sizeof(err));
	json_object_put(o);
	if (rc) {
		if (p->log)
			p->log("cannot convert %s to this release's layout, left as it is: %s", path,
			       err);
		return rc == -ENOMEM ? rc : 0;
	}
	snprintf(what, sizeof(what), "write %s/%s", gpu, uuid);
	crash_point(p, what);
	rc = def_dir(p, gpu, dir, sizeof(dir));
	if (!rc)
		rc = st_write_atomic(dir, uuid, text);
	free(text);
	if (rc)
		return rc;
	snprintf(what, sizeof(what), "remove %s", fname);
	crash_point(p, what);
	if (unlink(path))
		return -errno;
	return st_fsync_dir(olddir);
}

static int is_old_name(const struct dirent *e)
{
	size_t n = strlen(e->d_name);

	return n == GPUP_UUID_STRLEN + 5 && !strcmp(e->d_name + GPUP_UUID_STRLEN, ".json");
}

/* Every old file: how many there were, or an I/O error. */
static int upgrade_files(struct gpup_pool *p)
{
	char dir[PATH_MAX];
	struct dirent **ents;
	int n, rc = 0;

	if (st_path(dir, sizeof(dir), "%s/%s", p->state_dir, STATE_OLD_DIR))
		return -ENAMETOOLONG;
	n = scandir(dir, &ents, is_old_name, alphasort);
	if (n < 0)
		return errno == ENOENT ? 0 : -errno;
	for (int i = 0; i < n; i++) {
		if (!rc)
			rc = upgrade_one(p, dir, ents[i]->d_name);
		free(ents[i]);
	}
	free(ents);
	if (rc)
		return rc;
	/* Empty now unless something could not be converted: then kept. */
	crash_point(p, "rmdir partitions");
	if (rmdir(dir) == 0)
		rc = st_fsync_dir(p->state_dir);
	return rc ? rc : n;
}

int gpup_pool_state_upgrade(struct gpup_pool *p, char *err, size_t errlen)
{
	char text[16];
	int fmt, rc, n;

	if (!p->state_dir)
		return 0;
	fmt = read_format(p);
	if (fmt < 0 || fmt > GPUP_STATE_FORMAT) {
		gpup_say(err, errlen, fmt < 0 ? "%s/%s is not a format number; fix or remove it"
					      : "%s/%s: the state directory is of a newer release's "
						"format; run that release", p->state_dir,
			 STATE_FORMAT_FILE);
		return fmt < 0 ? -EINVAL : -EPROTONOSUPPORT;
	}
	n = upgrade_files(p);
	rc = n < 0 ? n : 0;
	if (!rc && fmt != GPUP_STATE_FORMAT) {
		crash_point(p, "write format");
		snprintf(text, sizeof(text), "%d", GPUP_STATE_FORMAT);
		rc = st_write_atomic(p->state_dir, STATE_FORMAT_FILE, text);
		if (!rc && n && p->log)
			p->log("state directory %s upgraded to format %d", p->state_dir,
			       GPUP_STATE_FORMAT);
	}
	if (rc)
		gpup_say(err, errlen, "cannot upgrade the state directory %s: %s", p->state_dir,
			 strerror(-rc));
	return rc;
}
