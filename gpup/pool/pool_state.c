// SPDX-License-Identifier: MIT
/*
 * Partition definitions on disk: one JSON file per partition under
 * STATE/partitions/, with its scheduler settings as attrs, and each GPU's
 * scheduler settings under STATE/gpus/; all written atomically so that a
 * crash leaves either the old file or the new one, never half of one (see
 * pool.h).  What is found there was not necessarily written by us, so it
 * is read with care.  The directory's lock and the cleaning of its
 * leftovers are state_dir.c's.
 */
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <json-c/json.h>
#include <limits.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "gpup/base/base.h"
#include "gpup/gpu/gpu.h"
#include "gpup/pool/pool.h"

#define STATE_SUBDIR "partitions"
#define GPU_SUBDIR "gpus"
#define STATE_VERSION 1
#define ATTR_CLASS "sched_class"
#define WATCHDOG_MAX_NS (3600ull * 1000000000ull)

/* The numeric scheduler attrs: name, field of sched_ctx_cfg, largest value. */
static const struct {
	const char *name;
	size_t off;
	uint32_t max;
} num_attrs[] = {
	{ "sched_weight", offsetof(struct sched_ctx_cfg, weight), SCHED_WEIGHT_MAX },
	{ "sched_reserve_ppm", offsetof(struct sched_ctx_cfg, reserve_ppm), SCHED_PPM },
	{ "sched_cap_ppm", offsetof(struct sched_ctx_cfg, cap_ppm), SCHED_PPM },
	{ "sched_fps_limit", offsetof(struct sched_ctx_cfg, fps_limit), 1000 },
	{ "sched_budget_us", offsetof(struct sched_ctx_cfg, budget_us), SCHED_BUDGET_MAX_US },
};

#define NUM_ATTRS (sizeof(num_attrs) / sizeof(num_attrs[0]))

static uint32_t *attr_field(struct sched_ctx_cfg *cfg, size_t i)
{
	return (uint32_t *)((char *)cfg + num_attrs[i].off);
}

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

static void add_attr(json_object *a, const char *name, const char *val)
{
	json_object *o = json_object_new_object();

	json_object_object_add(o, name, json_object_new_string(val));
	json_object_array_add(a, o);
}

/* Nothing for a partition never given settings, so its file stays as an
 * older daemon wrote it. */
static json_object *attrs_json(const struct gpup_partition *part)
{
	json_object *a = json_object_new_array();
	struct sched_ctx_cfg cfg = part->sched;
	char v[16];

	if (!part->sched_set)
		return a;
	for (size_t i = 0; i < NUM_ATTRS; i++) {
		snprintf(v, sizeof(v), "%u", *attr_field(&cfg, i));
		add_attr(a, num_attrs[i].name, v);
	}
	add_attr(a, ATTR_CLASS, sched_class_name(cfg.klass));
	return a;
}

static char *part_json(const struct gpup_pool *p, const struct gpup_partition *part,
		       unsigned int gpu, uint64_t vram_offset)
{
	json_object *o = json_object_new_object();
	char *s;

	json_object_object_add(o, "version", json_object_new_int(STATE_VERSION));
	json_object_object_add(o, "uuid", json_object_new_string(part->uuid));
	json_object_object_add(o, "parent", json_object_new_string(p->gpus[gpu].name));
	json_object_object_add(o, "type", json_object_new_string(part->type));
	/* Absent without one, so the file stays as older daemons wrote it. */
	if (part->compat[0])
		json_object_object_add(o, "compat", json_object_new_string(part->compat));
	json_object_object_add(o, "vram_offset", json_object_new_int64((int64_t)vram_offset));
	json_object_object_add(o, "vram_size", json_object_new_int64((int64_t)part->vram_size));
	json_object_object_add(o, "attrs", attrs_json(part));
	if (part->protect_ms) {
		json_object *pr = json_object_new_object();

		json_object_object_add(pr, "every_ms", json_object_new_int64(part->protect_ms));
		json_object_object_add(pr, "store", json_object_new_string(part->protect_store));
		json_object_object_add(o, "protect", pr);
	}
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
	return fsync_path(dir);
}

int gpup_pool_state_write(const struct gpup_pool *p, const struct gpup_partition *part)
{
	return gpup_pool_state_write_at(p, part, part->gpu, part->vram_offset);
}

int gpup_pool_state_write_at(const struct gpup_pool *p, const struct gpup_partition *part,
			     unsigned int gpu, uint64_t vram_offset)
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
	text = part_json(p, part, gpu, vram_offset);
	if (!text)
		return -ENOMEM;
	snprintf(name, sizeof(name), "%s.json", part->uuid);
	rc = write_file_atomic(dir, name, text);
	free(text);
	return rc;
}

int gpup_pool_set_sched(const struct gpup_pool *p, struct gpup_partition *part,
			const struct sched_ctx_cfg *cfg)
{
	struct sched_ctx_cfg old = part->sched;
	bool old_set = part->sched_set;
	int rc;

	if (sched_ctx_cfg_check(cfg))
		return -EINVAL;
	part->sched = *cfg;
	part->sched.priv = NULL;
	part->sched_set = true;
	rc = gpup_pool_state_write(p, part);
	if (rc) {
		part->sched = old;
		part->sched_set = old_set;
	}
	return rc;
}

int gpup_pool_set_protect(const struct gpup_pool *p, struct gpup_partition *part, uint32_t ms,
			  const char *store)
{
	uint32_t old_ms = part->protect_ms;
	char old[sizeof(part->protect_store)];
	int rc;

	if (ms && (!store || store[0] != '/' || strlen(store) >= sizeof(part->protect_store)))
		return -EINVAL;
	memcpy(old, part->protect_store, sizeof(old));
	part->protect_ms = ms;
	snprintf(part->protect_store, sizeof(part->protect_store), "%s", ms ? store : "");
	rc = gpup_pool_state_write(p, part);
	if (rc) {
		part->protect_ms = old_ms;
		memcpy(part->protect_store, old, sizeof(old));
	}
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

bool gpup_pool_state_exists(const struct gpup_pool *p, const char *uuid)
{
	char path[PATH_MAX];
	struct stat st;

	if (!p->state_dir ||
	    path_fmt(path, sizeof(path), "%s/%s/%s.json", p->state_dir, STATE_SUBDIR, uuid))
		return false;
	return lstat(path, &st) == 0;
}

/* ---- reading: regular files of bounded size only ---- */

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

/* A state file as a JSON object (parsed as json_object_from_file would):
 * 0 and *out to put, or -errno with the reason in err. */
static int load_json(const char *path, json_object **out, char *err, size_t errlen)
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

/* "compat", if there: a generation this daemon knows. */
static int parse_compat(json_object *o, struct gpup_partition *part, char *err, size_t errlen)
{
	const struct gpup_gpu_gen *g;
	json_object *v;

	if (!json_object_object_get_ex(o, "compat", &v))
		return 0;
	if (!json_object_is_type(v, json_type_string) ||
	    !(g = gpup_gpu_gen_find(json_object_get_string(v)))) {
		snprintf(err, errlen, "compat %s is not a GPU generation this daemon knows",
			 json_object_to_json_string(v));
		return -EINVAL;
	}
	snprintf(part->compat, sizeof(part->compat), "%s", g->name);
	part->compat_kernels = g->kernels;
	return 0;
}

/* "protect", if there: {"every_ms": 1..3600000, "store": an absolute
 * path}. */
static int parse_protect(json_object *o, struct gpup_partition *part, char *err,
			 size_t errlen)
{
	json_object *pr;
	const char *store;
	uint64_t ms;

	if (!json_object_object_get_ex(o, "protect", &pr))
		return 0;
	store = jstr(pr, "store");
	if (!json_object_is_type(pr, json_type_object) || ju64(pr, "every_ms", &ms) || !ms ||
	    ms > 3600000 || !store || store[0] != '/' || strlen(store) >= sizeof(part->protect_store)) {
		snprintf(err, errlen, "protect needs every_ms 1..3600000 and an absolute store");
		return -EINVAL;
	}
	part->protect_ms = (uint32_t)ms;
	snprintf(part->protect_store, sizeof(part->protect_store), "%s", store);
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
		snprintf(err, errlen, "its GPU '%s' is not present", parent);
		return -ENODEV;
	}
	part->gpu = (unsigned int)gpu;
	snprintf(part->type, sizeof(part->type), "%s", type);
	return parse_compat(o, part, err, errlen) ? -EINVAL : parse_protect(o, part, err, errlen);
}

/* A decimal string of at most `max`, digits only. */
static int attr_u32(const char *s, uint32_t max, uint32_t *out)
{
	unsigned long long n;
	char *end;

	if (!isdigit((unsigned char)*s))
		return -EINVAL;
	errno = 0;
	n = strtoull(s, &end, 10);
	if (*end || errno || n > max)
		return -EINVAL;
	*out = (uint32_t)n;
	return 0;
}

/* One {"name": "value"} entry into cfg; names that are not the
 * scheduler's are someone else's business and left alone. */
static int sched_attr(json_object *e, struct sched_ctx_cfg *cfg, bool *seen, char *err,
		      size_t errlen)
{
	struct json_object_iterator it;
	const char *name, *val;
	json_object *v;

	if (!json_object_is_type(e, json_type_object) || json_object_object_length(e) != 1)
		goto shape;
	it = json_object_iter_begin(e);
	name = json_object_iter_peek_name(&it);
	v = json_object_iter_peek_value(&it);
	if (!json_object_is_type(v, json_type_string))
		goto shape;
	val = json_object_get_string(v);
	if (strcmp(name, ATTR_CLASS) == 0) {
		*seen = true;
		if (sched_class_parse(val, &cfg->klass) == 0)
			return 0;
		snprintf(err, errlen, "%s '%s' is not normal or interactive", name, val);
		return -EINVAL;
	}
	for (size_t i = 0; i < NUM_ATTRS; i++) {
		if (strcmp(name, num_attrs[i].name))
			continue;
		*seen = true;
		if (attr_u32(val, num_attrs[i].max, attr_field(cfg, i)) == 0)
			return 0;
		snprintf(err, errlen, "%s '%s' is not a number from 0 to %u", name, val,
			 num_attrs[i].max);
		return -EINVAL;
	}
	return 0;
shape:
	snprintf(err, errlen, "attrs entries must be {\"name\": \"value\"}");
	return -EINVAL;
}

/* The scheduler settings among a file's attrs: 0 (none is fine: files of
 * older daemons have none), or -EINVAL with a reason and part untouched. */
static int parse_sched_attrs(json_object *o, struct gpup_partition *part, char *err,
			     size_t errlen)
{
	struct sched_ctx_cfg cfg = { 0 };
	bool seen = false;
	json_object *a;

	if (!json_object_object_get_ex(o, "attrs", &a))
		return 0;
	if (!json_object_is_type(a, json_type_array)) {
		snprintf(err, errlen, "attrs is not an array");
		return -EINVAL;
	}
	for (size_t i = 0; i < json_object_array_length(a); i++)
		if (sched_attr(json_object_array_get_idx(a, i), &cfg, &seen, err, errlen))
			return -EINVAL;
	if (seen && sched_ctx_cfg_check(&cfg)) {
		snprintf(err, errlen, "scheduler attrs out of range");
		return -EINVAL;
	}
	part->sched = cfg;
	part->sched_set = seen;
	return 0;
}

/* Keep the UUID of a definition that was skipped (if its file is named by
 * one, canonically: the name create would write) with what can be read of
 * it and why, so it is listed and its file never overwritten. */
static void remember_unavail(struct gpup_pool *p, const char *uuid, json_object *o,
			     const char *why)
{
	char canon[GPUP_UUID_STRLEN + 1];
	struct gpup_unavail *u, **pp = &p->unavail;
	const char *gpu = o ? jstr(o, "parent") : NULL, *type = o ? jstr(o, "type") : NULL;

	if (gpup_uuid_parse(uuid, canon) || strcmp(canon, uuid) ||
	    gpup_pool_find_unavail(p, canon) || p->nunavail >= GPUP_POOL_MAX_UNAVAIL)
		return;
	u = calloc(1, sizeof(*u));
	if (!u)
		return;
	memcpy(u->uuid, canon, sizeof(u->uuid));
	snprintf(u->gpu, sizeof(u->gpu), "%s", gpu ? gpu : "");
	snprintf(u->type, sizeof(u->type), "%s", type ? type : "");
	if (o && (ju64(o, "vram_offset", &u->vram_offset) || ju64(o, "vram_size", &u->vram_size)))
		u->vram_offset = u->vram_size = 0;
	snprintf(u->why, sizeof(u->why), "%s", why);
	while (*pp)
		pp = &(*pp)->next;
	*pp = u;
	p->nunavail++;
}

static int restore_one(struct gpup_pool *p, const char *dir, const char *fname)
{
	char path[PATH_MAX], uuid[GPUP_UUID_STRLEN + 1], err[GPUP_POOL_ERR_MAX] = "";
	struct gpup_partition *part;
	json_object *o = NULL;
	int rc;

	if (path_fmt(path, sizeof(path), "%s/%s", dir, fname))
		return -ENAMETOOLONG;
	memcpy(uuid, fname, GPUP_UUID_STRLEN);
	uuid[GPUP_UUID_STRLEN] = '\0';
	part = calloc(1, sizeof(*part));
	if (!part)
		return -ENOMEM;
	rc = load_json(path, &o, err, sizeof(err));
	if (!rc)
		rc = parse_part(p, o, uuid, part, err, sizeof(err));
	if (!rc)
		rc = gpup_pool_adopt(p, part, err, sizeof(err));
	/* Adopted: a bad attr costs the partition its settings, not its VRAM. */
	if (!rc && parse_sched_attrs(o, part, err, sizeof(err)) && p->log)
		p->log("partition file %s: scheduler defaults used: %s", path, err);
	if (rc) {
		if (p->log)
			p->log("skipping partition file %s: %s", path, err);
		remember_unavail(p, uuid, o, err);
		free(part);
	}
	json_object_put(o);
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

/* ---- a GPU's scheduler settings: STATE/gpus/NAME.json ---- */

static char *gpu_json(const char *name, const struct gpup_gpu_sched *s)
{
	json_object *o = json_object_new_object();
	char *text;

	json_object_object_add(o, "version", json_object_new_int(STATE_VERSION));
	json_object_object_add(o, "gpu", json_object_new_string(name));
	json_object_object_add(o, "policy", json_object_new_string(sched_policy_name(s->policy)));
	json_object_object_add(o, "slice_ns", json_object_new_int64((int64_t)s->slice_ns));
	json_object_object_add(o, "watchdog_ns", json_object_new_int64((int64_t)s->watchdog_ns));
	text = strdup(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PRETTY));
	json_object_put(o);
	return text;
}

int gpup_pool_gpu_sched_save(struct gpup_pool *p, unsigned int gpu,
			     const struct gpup_gpu_sched *s)
{
	char dir[PATH_MAX], name[64];
	char *text;
	int rc = 0;

	if (p->state_dir) {
		if (path_fmt(dir, sizeof(dir), "%s/%s", p->state_dir, GPU_SUBDIR))
			return -ENAMETOOLONG;
		rc = gpup_mkdir_p(dir, 0700);
		text = rc ? NULL : gpu_json(p->gpus[gpu].name, s);
		if (!rc && !text)
			rc = -ENOMEM;
		snprintf(name, sizeof(name), "%s.json", p->gpus[gpu].name);
		if (!rc)
			rc = write_file_atomic(dir, name, text);
		free(text);
	}
	if (!rc)
		p->gpus[gpu].sched = *s;
	return rc;
}

/* Every field is checked as `gpup sched --gpu` checks it: a file edited by
 * hand gets no more than the control API would allow. */
static int parse_gpu(json_object *o, const char *name, struct gpup_gpu_sched *s, char *err,
		     size_t errlen)
{
	const char *gpu = jstr(o, "gpu"), *policy = jstr(o, "policy");
	json_object *v = NULL;

	if (!json_object_object_get_ex(o, "version", &v) ||
	    !json_object_is_type(v, json_type_int) || json_object_get_int64(v) != STATE_VERSION) {
		snprintf(err, errlen, "format version %s is not %d",
			 v ? json_object_to_json_string(v) : "(none)", STATE_VERSION);
		return -EINVAL;
	}
	if (!gpu || strcmp(gpu, name)) {
		snprintf(err, errlen, "\"gpu\" is not %s", name);
		return -EINVAL;
	}
	if (!policy || sched_policy_parse(policy, &s->policy)) {
		snprintf(err, errlen, "unknown policy");
		return -EINVAL;
	}
	if (ju64(o, "slice_ns", &s->slice_ns) || ju64(o, "watchdog_ns", &s->watchdog_ns) ||
	    (s->slice_ns && (s->slice_ns < SCHED_SLICE_MIN_NS || s->slice_ns > SCHED_SLICE_MAX_NS)) ||
	    s->watchdog_ns > WATCHDOG_MAX_NS) {
		snprintf(err, errlen, "slice_ns or watchdog_ns missing or out of range");
		return -EINVAL;
	}
	return 0;
}

int gpup_pool_gpu_sched_load(const struct gpup_pool *p, const char *name,
			     struct gpup_gpu_sched *out)
{
	char path[PATH_MAX], err[GPUP_POOL_ERR_MAX] = "";
	struct gpup_gpu_sched s = { 0 };
	json_object *o;
	int rc;

	if (!p->state_dir ||
	    path_fmt(path, sizeof(path), "%s/%s/%s.json", p->state_dir, GPU_SUBDIR, name))
		return -ENOENT;
	rc = load_json(path, &o, err, sizeof(err));
	if (rc == -ENOENT)
		return rc;
	if (!rc)
		rc = parse_gpu(o, name, &s, err, sizeof(err));
	json_object_put(o);
	if (rc) {
		rc = -EINVAL;
		if (p->log)
			p->log("ignoring GPU settings file %s: %s", path, err);
		return rc;
	}
	*out = s;
	return 0;
}
