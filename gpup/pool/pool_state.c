// SPDX-License-Identifier: MIT
/*
 * Partition definitions on disk, in mdevctl's layout (see pool.h, DOC:
 * persistence): STATE/definitions/GPU/UUID with the partition's slot,
 * compat and scheduler settings as attrs (a GPU's settings are
 * gpu_state.c's).  All written atomically (state_file.c), so
 * that a crash leaves either the old file or the new one, never half of
 * one.  What is found there was not necessarily written by us, so it is
 * read with care.  Older layouts are converted by state_upgrade.c; the
 * directory's lock and leftovers are state_dir.c's.
 */
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <json-c/json.h>
#include <limits.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "gpup/base/base.h"
#include "gpup/gpu/gpu.h"
#include "gpup/pool/pool_int.h"

#define ATTR_CLASS "sched_class"

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

/* The attrs that place a partition; each at most once. */
enum { A_OFFSET, A_SIZE, A_REVISION, A_COMPAT, A_NPLACE };
static const char *const place_attrs[A_NPLACE] = { "vram_offset", "vram_size", "revision",
						   "compat" };

static uint32_t *attr_field(struct sched_ctx_cfg *cfg, size_t i)
{
	return (uint32_t *)((char *)cfg + num_attrs[i].off);
}

static void add_attr(json_object *a, const char *name, const char *val)
{
	json_object *o = json_object_new_object();

	json_object_object_add(o, name, json_object_new_string(val));
	json_object_array_add(a, o);
}

static void add_attr_u64(json_object *a, const char *name, uint64_t v)
{
	char buf[24];

	snprintf(buf, sizeof(buf), "%llu", (unsigned long long)v);
	add_attr(a, name, buf);
}

/* Its slot, revision, compat and scheduler settings (none when it was
 * never given any), in that order. */
static json_object *attrs_json(const struct gpup_partition *part, uint64_t vram_offset,
			       uint64_t revision)
{
	json_object *a = json_object_new_array();
	struct sched_ctx_cfg cfg = part->sched;

	add_attr_u64(a, place_attrs[A_OFFSET], vram_offset);
	add_attr_u64(a, place_attrs[A_SIZE], part->vram_size);
	add_attr_u64(a, place_attrs[A_REVISION], revision);
	if (part->compat[0])
		add_attr(a, place_attrs[A_COMPAT], part->compat);
	if (!part->sched_set)
		return a;
	for (size_t i = 0; i < NUM_ATTRS; i++)
		add_attr_u64(a, num_attrs[i].name, *attr_field(&cfg, i));
	add_attr(a, ATTR_CLASS, sched_class_name(cfg.klass));
	return a;
}

static char *def_json(const struct gpup_partition *part, uint64_t vram_offset, uint64_t revision)
{
	json_object *o = json_object_new_object();
	char *s;

	json_object_object_add(o, "mdev_type", json_object_new_string(part->type));
	json_object_object_add(o, "start",
			       json_object_new_string(part->start_auto ? "auto" : "manual"));
	json_object_object_add(o, "attrs", attrs_json(part, vram_offset, revision));
	/* gpup's own, beside mdevctl's keys: absent when not protected. */
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

/* STATE/definitions/GPU, made (and its making fsynced) when absent. */
static int gpu_dir(const struct gpup_pool *p, const char *gpu, char *buf, size_t len)
{
	int rc;

	if (!st_gpu_name_ok(gpu))
		return -EINVAL;
	rc = st_path(buf, len, "%s/%s", p->state_dir, STATE_DEF_DIR);
	if (!rc)
		rc = st_mkdir(buf);
	if (!rc)
		rc = st_path(buf, len, "%s/%s/%s", p->state_dir, STATE_DEF_DIR, gpu);
	return rc ? rc : st_mkdir(buf);
}

int gpup_pool_state_write(const struct gpup_pool *p, struct gpup_partition *part)
{
	int rc = gpup_pool_state_write_at(p, part, part->gpu, part->vram_offset);

	if (!rc && p->state_dir && part->defined)
		part->revision++;
	return rc;
}

int gpup_pool_state_write_at(const struct gpup_pool *p, const struct gpup_partition *part,
			     unsigned int gpu, uint64_t vram_offset)
{
	char dir[PATH_MAX];
	char *text;
	int rc;

	if (!p->state_dir || !part->defined)
		return 0;
	rc = gpu_dir(p, p->gpus[gpu].name, dir, sizeof(dir));
	if (rc)
		return rc;
	text = def_json(part, vram_offset, part->revision + 1);
	if (!text)
		return -ENOMEM;
	rc = st_write_atomic(dir, part->uuid, text);
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

/* Unlink dir/name if there: 1 removed (dir fsynced), 0 absent, -errno. */
static int unlink_synced(const char *dir, const char *name)
{
	char path[PATH_MAX];
	int rc;

	if (st_path(path, sizeof(path), "%s/%s", dir, name))
		return -ENAMETOOLONG;
	if (unlink(path))
		return errno == ENOENT ? 0 : -errno;
	rc = st_fsync_dir(dir);
	return rc ? rc : 1;
}

int gpup_pool_state_remove_at(const struct gpup_pool *p, unsigned int gpu, const char *uuid)
{
	char dir[PATH_MAX];
	int rc;

	if (!p->state_dir)
		return 0;
	if (st_path(dir, sizeof(dir), "%s/%s/%s", p->state_dir, STATE_DEF_DIR, p->gpus[gpu].name))
		return -ENAMETOOLONG;
	rc = unlink_synced(dir, uuid);
	return rc < 0 ? rc : 0;
}

/* fn on STATE/definitions/G/uuid for every directory G, and on the old
 * layout's STATE/partitions/uuid.json: the first error, or how many
 * fn found. */
static int each_def(const struct gpup_pool *p, const char *uuid,
		    int (*fn)(const char *dir, const char *name))
{
	char dir[PATH_MAX], name[GPUP_UUID_STRLEN + 8];
	struct dirent *e;
	int rc, found = 0;
	DIR *d;

	if (st_path(dir, sizeof(dir), "%s/%s", p->state_dir, STATE_DEF_DIR))
		return -ENAMETOOLONG;
	d = opendir(dir);
	while (d && (e = readdir(d))) {
		if (!st_gpu_name_ok(e->d_name) ||
		    st_path(dir, sizeof(dir), "%s/%s/%s", p->state_dir, STATE_DEF_DIR, e->d_name))
			continue;
		rc = fn(dir, uuid);
		if (rc < 0 && rc != -ENOTDIR) {
			closedir(d);
			return rc;
		}
		found += rc > 0;
	}
	if (d)
		closedir(d);
	snprintf(name, sizeof(name), "%s.json", uuid);
	if (st_path(dir, sizeof(dir), "%s/%s", p->state_dir, STATE_OLD_DIR))
		return -ENAMETOOLONG;
	rc = fn(dir, name);
	return rc < 0 && rc != -ENOTDIR ? rc : found + (rc > 0);
}

int gpup_pool_state_remove(const struct gpup_pool *p, const char *uuid)
{
	int rc = p->state_dir ? each_def(p, uuid, unlink_synced) : 0;

	return rc < 0 ? rc : 0;
}

static int lexists(const char *dir, const char *name)
{
	char path[PATH_MAX];
	struct stat st;

	return !st_path(path, sizeof(path), "%s/%s", dir, name) && lstat(path, &st) == 0;
}

bool gpup_pool_state_exists(const struct gpup_pool *p, const char *uuid)
{
	return p->state_dir && each_def(p, uuid, lexists) > 0;
}

/* ---- reading a definition ---- */

static const char *jstr(json_object *o, const char *key)
{
	json_object *v;

	if (!json_object_object_get_ex(o, key, &v) || !json_object_is_type(v, json_type_string))
		return NULL;
	return json_object_get_string(v);
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

/* A decimal string that fits 64 bits, digits only. */
static int attr_u64(const char *s, uint64_t *out)
{
	unsigned long long n;
	char *end;

	if (!isdigit((unsigned char)*s))
		return -EINVAL;
	errno = 0;
	n = strtoull(s, &end, 10);
	if (*end || errno || n > INT64_MAX)
		return -EINVAL;
	*out = n;
	return 0;
}

/* One attr of those that place the partition, by index k. */
static int place_value(unsigned int k, const char *val, struct gpup_partition *part, char *err,
		       size_t errlen)
{
	uint64_t *field[] = { &part->vram_offset, &part->vram_size, &part->revision };
	const struct gpup_gpu_gen *g;

	if (k != A_COMPAT) {
		if (attr_u64(val, field[k]) == 0)
			return 0;
		snprintf(err, errlen, "attr %s '%s' is not a number", place_attrs[k], val);
		return -EINVAL;
	}
	if (!(g = gpup_gpu_gen_find(val))) {
		snprintf(err, errlen, "compat '%s' is not a GPU generation this daemon knows", val);
		return -EINVAL;
	}
	snprintf(part->compat, sizeof(part->compat), "%s", g->name);
	part->compat_kernels = g->kernels;
	return 0;
}

/* One {"name": "value"} entry: a placing attr into part (each at most
 * once, *seen remembering), any other name left for parse_sched_attrs
 * or for whoever wrote it. */
static int place_attr(json_object *e, struct gpup_partition *part, unsigned int *seen,
		      char *err, size_t errlen)
{
	struct json_object_iterator it;
	const char *name;
	json_object *v;

	if (!json_object_is_type(e, json_type_object) || json_object_object_length(e) != 1)
		goto shape;
	it = json_object_iter_begin(e);
	name = json_object_iter_peek_name(&it);
	v = json_object_iter_peek_value(&it);
	if (!json_object_is_type(v, json_type_string))
		goto shape;
	for (unsigned int k = 0; k < A_NPLACE; k++) {
		if (strcmp(name, place_attrs[k]))
			continue;
		if (*seen & (1u << k)) {
			snprintf(err, errlen, "attr %s is given twice", name);
			return -EINVAL;
		}
		*seen |= 1u << k;
		return place_value(k, json_object_get_string(v), part, err, errlen);
	}
	return 0;
shape:
	snprintf(err, errlen, "attrs entries must be {\"name\": \"value\"}");
	return -EINVAL;
}

static int parse_place(json_object *o, struct gpup_partition *part, char *err, size_t errlen)
{
	unsigned int seen = 0;
	json_object *a;

	if (!json_object_object_get_ex(o, "attrs", &a) || !json_object_is_type(a, json_type_array)) {
		snprintf(err, errlen, "attrs missing or not an array");
		return -EINVAL;
	}
	for (size_t i = 0; i < json_object_array_length(a); i++)
		if (place_attr(json_object_array_get_idx(a, i), part, &seen, err, errlen))
			return -EINVAL;
	if (!(seen & (1u << A_OFFSET)) || !(seen & (1u << A_SIZE))) {
		snprintf(err, errlen, "attrs lack vram_offset or vram_size");
		return -EINVAL;
	}
	return 0;
}

/* A definition file into *part (its GPU being the directory it is in):
 * 0, or -EINVAL / -ENODEV with a reason; part holds what could be read. */
/* "protect", if there: {"every_ms": 1..3600000, "store": an absolute
 * path} (docs/MIGRATION.md, "Failover"). */
static int parse_protect(json_object *o, struct gpup_partition *part, char *err,
			 size_t errlen)
{
	json_object *pr, *ms = NULL;
	const char *store;
	int64_t n = 0;

	if (!json_object_object_get_ex(o, "protect", &pr))
		return 0;
	store = json_object_is_type(pr, json_type_object) ? jstr(pr, "store") : NULL;
	if (store && json_object_object_get_ex(pr, "every_ms", &ms) &&
	    json_object_is_type(ms, json_type_int))
		n = json_object_get_int64(ms);
	if (n < 1 || n > 3600000 || !store || store[0] != '/' ||
	    strlen(store) >= sizeof(part->protect_store)) {
		snprintf(err, errlen, "protect needs every_ms 1..3600000 and an absolute store");
		return -EINVAL;
	}
	part->protect_ms = (uint32_t)n;
	snprintf(part->protect_store, sizeof(part->protect_store), "%s", store);
	return 0;
}

static int parse_def(const struct gpup_pool *p, json_object *o, const char *gpu,
		     struct gpup_partition *part, char *err, size_t errlen)
{
	const char *type = jstr(o, "mdev_type"), *start = jstr(o, "start");
	int rc;

	if (!type || strlen(type) >= sizeof(part->type)) {
		snprintf(err, errlen, "mdev_type missing, not a string or too long");
		return -EINVAL;
	}
	snprintf(part->type, sizeof(part->type), "%s", type);
	if (!start || (strcmp(start, "auto") && strcmp(start, "manual"))) {
		snprintf(err, errlen, "start is not \"auto\" or \"manual\"");
		return -EINVAL;
	}
	part->start_auto = !strcmp(start, "auto");
	part->defined = true;
	rc = parse_place(o, part, err, errlen);
	if (!rc)
		rc = parse_protect(o, part, err, errlen);
	if (rc)
		return rc;
	for (unsigned int i = 0; i < p->ngpus; i++) {
		if (!strcmp(p->gpus[i].name, gpu)) {
			part->gpu = i;
			return 0;
		}
	}
	snprintf(err, errlen, "its GPU '%s' is not present", gpu);
	return -ENODEV;
}

/* Keep the UUID of a definition that was skipped (if named by one,
 * canonically: the name create would write) with what could be read of
 * it and why, so it is listed and its file never overwritten. */
static void remember_unavail(struct gpup_pool *p, const char *uuid, const char *gpu,
			     const struct gpup_partition *part, const char *why)
{
	char canon[GPUP_UUID_STRLEN + 1];
	struct gpup_unavail *u, **pp = &p->unavail;

	if (gpup_uuid_parse(uuid, canon) || strcmp(canon, uuid) || gpup_pool_find(p, canon) ||
	    gpup_pool_find_unavail(p, canon) || p->nunavail >= GPUP_POOL_MAX_UNAVAIL)
		return;
	u = calloc(1, sizeof(*u));
	if (!u)
		return;
	memcpy(u->uuid, canon, sizeof(u->uuid));
	snprintf(u->gpu, sizeof(u->gpu), "%s", gpu);
	if (part) {
		snprintf(u->type, sizeof(u->type), "%s", part->type);
		u->vram_offset = part->vram_offset;
		u->vram_size = part->vram_size;
	}
	snprintf(u->why, sizeof(u->why), "%s", why);
	while (*pp)
		pp = &(*pp)->next;
	*pp = u;
	p->nunavail++;
}

/* ---- restoring: every file, then one definition per UUID ---- */

struct cand {
	char uuid[GPUP_UUID_STRLEN + 1];  /* the file's name */
	char gpu[32];
	char *path;
	json_object *o;
	struct gpup_partition *part;
	int rc;                           /* of reading and parsing */
	uint64_t rev;                     /* its revision, when rc is 0 */
	char why[GPUP_POOL_ERR_MAX];
};

struct cands {
	struct cand *v;
	size_t n, cap;
};

static void cand_read(const struct gpup_pool *p, struct cand *c)
{
	char canon[GPUP_UUID_STRLEN + 1];

	c->part = calloc(1, sizeof(*c->part));
	if (!c->part) {
		c->rc = -ENOMEM;
		snprintf(c->why, sizeof(c->why), "out of memory");
		return;
	}
	if (gpup_uuid_parse(c->uuid, canon) || strcmp(canon, c->uuid)) {
		c->rc = -EINVAL;
		snprintf(c->why, sizeof(c->why), "its name is not a lower-case UUID");
		return;
	}
	memcpy(c->part->uuid, canon, sizeof(canon));
	c->rc = st_load_json(c->path, &c->o, c->why, sizeof(c->why));
	if (!c->rc)
		c->rc = parse_def(p, c->o, c->gpu, c->part, c->why, sizeof(c->why));
	c->rev = c->part->revision;
}

static int cand_add(const struct gpup_pool *p, struct cands *cs, const char *dir,
		    const char *gpu, const char *name)
{
	struct cand *c;

	if (cs->n == cs->cap) {
		size_t cap = cs->cap ? cs->cap * 2 : 16;
		struct cand *v = realloc(cs->v, cap * sizeof(*v));

		if (!v)
			return -ENOMEM;
		cs->v = v;
		cs->cap = cap;
	}
	c = &cs->v[cs->n];
	memset(c, 0, sizeof(*c));
	snprintf(c->uuid, sizeof(c->uuid), "%.36s", name);
	snprintf(c->gpu, sizeof(c->gpu), "%.31s", gpu);
	if (asprintf(&c->path, "%s/%s", dir, name) < 0)
		return -ENOMEM;
	cs->n++;
	cand_read(p, c);
	return 0;
}

static int is_uuid_name(const struct dirent *e)
{
	return strlen(e->d_name) == GPUP_UUID_STRLEN;
}

/* The files of STATE/definitions/gpu, which must be a directory. */
static int scan_gpu(struct gpup_pool *p, struct cands *cs, const char *gpu)
{
	char dir[PATH_MAX];
	struct dirent **ents;
	struct stat st;
	int n, rc = 0;

	if (st_path(dir, sizeof(dir), "%s/%s/%s", p->state_dir, STATE_DEF_DIR, gpu))
		return 0;
	if (lstat(dir, &st) || !S_ISDIR(st.st_mode)) {
		if (p->log)
			p->log("skipping %s: not a directory", dir);
		return 0;
	}
	n = scandir(dir, &ents, is_uuid_name, alphasort);
	if (n < 0)
		return 0;
	for (int i = 0; i < n; i++) {
		if (!rc)
			rc = cand_add(p, cs, dir, gpu, ents[i]->d_name);
		free(ents[i]);
	}
	free(ents);
	return rc;
}

static int is_gpu_name(const struct dirent *e)
{
	return st_gpu_name_ok(e->d_name);
}

static int scan_defs(struct gpup_pool *p, struct cands *cs)
{
	char dir[PATH_MAX];
	struct dirent **ents;
	int n, rc = 0;

	if (st_path(dir, sizeof(dir), "%s/%s", p->state_dir, STATE_DEF_DIR))
		return -ENAMETOOLONG;
	n = scandir(dir, &ents, is_gpu_name, alphasort);
	if (n < 0)
		return errno == ENOENT ? 0 : -errno;
	for (int i = 0; i < n; i++) {
		if (!rc)
			rc = scan_gpu(p, cs, ents[i]->d_name);
		free(ents[i]);
	}
	free(ents);
	return rc;
}

/* By UUID; of one UUID, the readable ones first, the highest revision
 * first, then by GPU: the first of each UUID is the one used. */
static int cand_cmp(const void *a, const void *b)
{
	const struct cand *x = a, *y = b;
	int c = strcmp(x->uuid, y->uuid);

	if (c)
		return c;
	if (!x->rc != !y->rc)
		return x->rc ? 1 : -1;
	if (!x->rc && x->rev != y->rev)
		return x->rev > y->rev ? -1 : 1;
	return strcmp(x->gpu, y->gpu);
}

/* The one used for its UUID: adopted, or remembered as unavailable. */
static int cand_use(struct gpup_pool *p, struct cand *c)
{
	char err[GPUP_POOL_ERR_MAX] = "";

	if (!c->rc)
		c->rc = gpup_pool_adopt(p, c->part, c->why, sizeof(c->why));
	if (c->rc) {
		if (p->log)
			p->log("skipping partition file %s: %s", c->path, c->why);
		remember_unavail(p, c->uuid, c->gpu, c->part, c->why);
		return 0;
	}
	/* Adopted: a bad attr costs the partition its settings, not its VRAM. */
	if (parse_sched_attrs(c->o, c->part, err, sizeof(err)) && p->log)
		p->log("partition file %s: scheduler defaults used: %s", c->path, err);
	c->part = NULL;
	return 1;
}

/* Another file of a UUID already used: an older revision (what a move
 * interrupted between writing the new place and removing the old leaves)
 * is removed; anything else is left for a human. */
static void cand_drop(struct gpup_pool *p, const struct cand *used, const struct cand *c)
{
	bool older = !c->rc && !used->rc && c->rev < used->rev;

	if (older && unlink(c->path) == 0) {
		if (p->log)
			p->log("removed %s: revision %llu of a definition whose revision %llu is in "
			       "%s", c->path, (unsigned long long)c->rev,
			       (unsigned long long)used->rev, used->path);
		return;
	}
	if (p->log)
		p->log("skipping partition file %s: %s defines the same UUID", c->path, used->path);
}

/* Files of the old layout that state_upgrade.c could not convert: kept,
 * and their UUIDs reserved. */
static void old_leftovers(struct gpup_pool *p)
{
	char dir[PATH_MAX], uuid[GPUP_UUID_STRLEN + 1];
	struct dirent *e;
	DIR *d;

	if (st_path(dir, sizeof(dir), "%s/%s", p->state_dir, STATE_OLD_DIR) || !(d = opendir(dir)))
		return;
	while ((e = readdir(d))) {
		if (strlen(e->d_name) != GPUP_UUID_STRLEN + 5 ||
		    strcmp(e->d_name + GPUP_UUID_STRLEN, ".json"))
			continue;
		snprintf(uuid, sizeof(uuid), "%.36s", e->d_name);
		if (p->log)
			p->log("skipping partition file %s/%s: not converted to this layout",
			       dir, e->d_name);
		remember_unavail(p, uuid, "", NULL, "a file of the old layout that could not be "
				 "converted; see the log");
	}
	closedir(d);
}

int gpup_pool_restore(struct gpup_pool *p)
{
	struct cands cs = { 0 };
	int rc, restored = 0;

	if (!p->state_dir)
		return 0;
	rc = scan_defs(p, &cs);
	if (cs.n)
		qsort(cs.v, cs.n, sizeof(*cs.v), cand_cmp);
	for (size_t i = 0, first = 0; !rc && i < cs.n; i++) {
		if (i && strcmp(cs.v[i].uuid, cs.v[first].uuid))
			first = i;
		if (i == first)
			restored += cand_use(p, &cs.v[i]);
		else
			cand_drop(p, &cs.v[first], &cs.v[i]);
	}
	for (size_t i = 0; i < cs.n; i++) {
		json_object_put(cs.v[i].o);
		free(cs.v[i].part);
		free(cs.v[i].path);
	}
	free(cs.v);
	if (!rc)
		old_leftovers(p);
	return rc ? rc : restored;
}
