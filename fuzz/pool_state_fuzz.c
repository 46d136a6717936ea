// SPDX-License-Identifier: MIT
/*
 * libFuzzer harness for restoring partition definitions: the bytes of a
 * STATE/definitions/GPU/UUID file that a crash, a disk error or a careless
 * human may have left behind.  The first input byte picks the file's name
 * (canonical, upper-case, or a name of the right shape that is no UUID),
 * whether a partition already holds the first half of gpu0, and the GPU
 * directory (gpu0, gpu1, or gpu9 that no GPU of the pool is); the rest is
 * the file.  The pool has two GPUs of different sizes (so different type
 * names) and gpup_pool_restore reads the directory.  With bit 3 set the
 * bytes are a GPU's saved scheduler settings (STATE/gpus/NAME.json)
 * instead, read by gpup_pool_gpu_sched_load.  With bit 5 set the file is a
 * symbolic link to a file holding the bytes, which is never followed.
 * With bit 7 set the bytes are a definition of the previous layout
 * (STATE/partitions/NAME.json), which gpup_pool_state_upgrade converts
 * before the restore.
 *
 * The harness decides on its own whether the file is a valid definition
 * (see valid_def and valid_old below) and checks that restore agrees: a
 * valid file comes back as exactly that partition, in exactly its slot,
 * with the scheduler settings its attrs give (or defaults and one log
 * line when they are malformed); anything else is skipped with one log
 * line and changes nothing but this: when the file's name is a canonical
 * UUID (what create would write), that UUID is listed as unavailable and
 * create refuses it.  Destroying what came back must give the pool
 * exactly its slots back, and leave no definition file.
 */
#include <ctype.h>
#include <errno.h>
#include <json-c/json.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fuzz/fuzz_util.h"
#include "gpup/pool/pool.h"

#define GIB (1ull << 30)
#define UUID_LOWER "0badcafe-1234-4abc-8def-0123456789ab"
#define UUID_UPPER "0BADCAFE-1234-4ABC-8DEF-0123456789AB"
#define UUID_JUNK "zzzzzzzz-zzzz-zzzz-zzzz-zzzzzzzzzzzz"
#define UUID_HELD "11111111-2222-4333-8444-555555555555"

static const uint64_t gpu_vram[] = { 8 * GIB, 1 * GIB };

static char state_dir[300];
static unsigned int nlogs;

static void count_log(const char *fmt, ...)
{
	va_list ap;

	nlogs++;
	if (!fz_verbose())
		return;
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

struct def {
	char uuid[GPUP_UUID_STRLEN + 1];
	char type[GPUP_TYPE_NAME_MAX];
	unsigned int gpu;
	uint64_t offset, size;
};

static const char *str_field(json_object *o, const char *k)
{
	json_object *v;

	if (!json_object_object_get_ex(o, k, &v) || !json_object_is_type(v, json_type_string))
		return NULL;
	return json_object_get_string(v);
}

static bool u64_field(json_object *o, const char *k, uint64_t *out)
{
	json_object *v;

	if (!json_object_object_get_ex(o, k, &v) || !json_object_is_type(v, json_type_int) ||
	    json_object_get_int64(v) < 0)
		return false;
	*out = (uint64_t)json_object_get_int64(v);
	return true;
}

static bool canonical_uuid(const char *in, char *out)
{
	if (strlen(in) != GPUP_UUID_STRLEN)
		return false;
	for (unsigned int i = 0; i < GPUP_UUID_STRLEN; i++) {
		bool dash = i == 8 || i == 13 || i == 18 || i == 23;

		if (dash ? in[i] != '-' : !isxdigit((unsigned char)in[i]))
			return false;
		out[i] = (char)tolower((unsigned char)in[i]);
	}
	out[GPUP_UUID_STRLEN] = '\0';
	return true;
}

static bool known_gen(const char *s)
{
	return !strcmp(s, "gen1") || !strcmp(s, "gen2");
}

/* The slot and type against the pool: one of its GPU's types, that
 * type's size, a naturally aligned offset inside the GPU, in a slot no
 * other partition holds (the held one is the first half of gpu0). */
static bool fits(const struct gpup_pool *p, const char *type, bool held, struct def *d)
{
	struct gpup_type t[GPUP_POOL_NFRACTIONS];
	unsigned int n = gpup_pool_types(p, d->gpu, t);
	bool found = false;

	for (unsigned int i = 0; i < n; i++)
		found |= !strcmp(t[i].name, type) && t[i].vram_size == d->size;
	if (!found)
		return false;
	snprintf(d->type, sizeof(d->type), "%s", type);
	if (d->offset % d->size || d->offset >= gpu_vram[d->gpu] ||
	    d->size > gpu_vram[d->gpu] - d->offset)
		return false;
	return !(held && d->gpu == 0 && d->offset < gpu_vram[0] / 2);
}

/* A decimal string of digits only, at most INT64_MAX. */
static bool dec64(const char *s, uint64_t *out)
{
	uint64_t n = 0;

	if (!*s)
		return false;
	for (; *s; s++) {
		if (*s < '0' || *s > '9' || n > (INT64_MAX - (uint64_t)(*s - '0')) / 10)
			return false;
		n = n * 10 + (uint64_t)(*s - '0');
	}
	*out = n;
	return true;
}

/* The contract of today's layout, written independently of
 * pool_state.c: a JSON object with a string mdev_type, start "auto" or
 * "manual", attrs a list of one-member {"name": "string"} objects among
 * which vram_offset and vram_size (decimal) appear once, revision
 * (decimal) and compat (a generation) at most once; the file named by a
 * lower-case UUID in the directory of a GPU of the pool, and fitting it. */
static bool valid_def(const struct gpup_pool *p, json_object *o, const char *name, int gpu,
		      bool held, struct def *d)
{
	static const char *const place[] = { "vram_offset", "vram_size", "revision", "compat" };
	const char *type = str_field(o, "mdev_type"), *start = str_field(o, "start");
	unsigned int seen = 0;
	uint64_t rev;
	json_object *a;

	if (!o || !json_object_is_type(o, json_type_object) || !type || !start ||
	    (strcmp(start, "auto") && strcmp(start, "manual")) || gpu < 0 ||
	    !json_object_object_get_ex(o, "attrs", &a) || !json_object_is_type(a, json_type_array))
		return false;
	if (!canonical_uuid(name, d->uuid) || strcmp(d->uuid, name))
		return false;
	for (size_t i = 0; i < json_object_array_length(a); i++) {
		json_object *e = json_object_array_get_idx(a, i);

		if (!json_object_is_type(e, json_type_object) || json_object_object_length(e) != 1)
			return false;
		json_object_object_foreach(e, k, v) {
			const char *val = json_object_get_string(v);

			if (!json_object_is_type(v, json_type_string))
				return false;
			for (unsigned int j = 0; j < 4; j++) {
				if (strcmp(k, place[j]))
					continue;
				if (seen & (1u << j))
					return false;
				seen |= 1u << j;
				if (j == 3 ? !known_gen(val)
					   : !dec64(val, j == 0 ? &d->offset : j == 1 ? &d->size : &rev))
					return false;
			}
		}
	}
	d->gpu = (unsigned int)gpu;
	return (seen & 3) == 3 && fits(p, type, held, d);
}

/* The contract of the previous layout, which the upgrade must carry
 * over: a JSON object naming the file's own UUID (in any case), a GPU of
 * the pool by its name, one of its types, that type's size and slot;
 * "version", when present, 1; "compat", when present, a generation. */
static bool valid_old(const struct gpup_pool *p, json_object *o, const char *file_uuid,
		      bool held, struct def *d)
{
	const char *uuid = str_field(o, "uuid"), *parent = str_field(o, "parent");
	const char *type = str_field(o, "type");
	json_object *v;
	int gpu = -1;

	if (!o || !json_object_is_type(o, json_type_object) || !uuid || !parent || !type)
		return false;
	if (json_object_object_get_ex(o, "version", &v) &&
	    (!json_object_is_type(v, json_type_int) || json_object_get_int64(v) != 1))
		return false;
	if (json_object_object_get_ex(o, "compat", &v) &&
	    (!json_object_is_type(v, json_type_string) || !known_gen(json_object_get_string(v))))
		return false;
	if (!u64_field(o, "vram_offset", &d->offset) || !u64_field(o, "vram_size", &d->size))
		return false;
	if (!canonical_uuid(uuid, d->uuid) || strcmp(d->uuid, file_uuid))
		return false;
	for (unsigned int i = 0; i < p->ngpus; i++)
		if (!strcmp(p->gpus[i].name, parent))
			gpu = (int)i;
	if (gpu < 0)
		return false;
	d->gpu = (unsigned int)gpu;
	return fits(p, type, held, d);
}

/* What the file's attrs say about the partition's scheduler settings
 * (pool.h): a list of {"name": "value"} strings; the scheduler's names
 * take a decimal number up to a bound, or normal/interactive for the
 * class; other names are someone else's.  Anything malformed costs the
 * partition its settings (and one log line), not its definition. */
struct want_attrs {
	bool bad, set;
	struct sched_ctx_cfg cfg;
};

static bool decimal(const char *s, uint32_t max, uint32_t *out)
{
	uint64_t n = 0;

	if (!*s)
		return false;
	for (; *s; s++) {
		if (*s < '0' || *s > '9')
			return false;
		n = n * 10 + (uint64_t)(*s - '0');
		if (n > max)
			return false;
	}
	*out = (uint32_t)n;
	return true;
}

static bool one_attr(json_object *e, struct want_attrs *w)
{
	struct {
		const char *name;
		uint32_t *field, max;
	} nums[] = {
		{ "sched_weight", &w->cfg.weight, SCHED_WEIGHT_MAX },
		{ "sched_reserve_ppm", &w->cfg.reserve_ppm, SCHED_PPM },
		{ "sched_cap_ppm", &w->cfg.cap_ppm, SCHED_PPM },
		{ "sched_fps_limit", &w->cfg.fps_limit, 1000 },
		{ "sched_budget_us", &w->cfg.budget_us, SCHED_BUDGET_MAX_US },
	};
	const char *val;
	bool ok = true;

	if (!json_object_is_type(e, json_type_object) || json_object_object_length(e) != 1)
		return false;
	json_object_object_foreach(e, name, v) {
		if (!json_object_is_type(v, json_type_string))
			return false;
		val = json_object_get_string(v);
		if (!strcmp(name, "sched_class")) {
			w->set = true;
			ok = !strcmp(val, "normal") || !strcmp(val, "interactive");
			w->cfg.klass = strcmp(val, "interactive") ? SCHED_CLASS_NORMAL
								  : SCHED_CLASS_INTERACTIVE;
		}
		for (size_t i = 0; i < sizeof(nums) / sizeof(nums[0]); i++) {
			if (!strcmp(name, nums[i].name)) {
				w->set = true;
				ok = decimal(val, nums[i].max, nums[i].field);
			}
		}
	}
	return ok;
}

/* A one-member {"name": "string"} object not named as a placing attr:
 * what the upgrade carries over from an old file's attrs. */
static bool carried(json_object *e)
{
	bool keep = true;

	if (!json_object_is_type(e, json_type_object) || json_object_object_length(e) != 1)
		return false;
	json_object_object_foreach(e, k, v) {
		keep = keep && json_object_is_type(v, json_type_string) &&
		       strcmp(k, "vram_offset") && strcmp(k, "vram_size") && strcmp(k, "revision") &&
		       strcmp(k, "compat");
	}
	return keep;
}

/* old: only what the upgrade carries over counts. */
static void attrs_of(json_object *o, bool old, struct want_attrs *w)
{
	json_object *a;

	memset(w, 0, sizeof(*w));
	if (!json_object_object_get_ex(o, "attrs", &a) || !json_object_is_type(a, json_type_array))
		return;
	for (size_t i = 0; i < json_object_array_length(a) && !w->bad; i++) {
		json_object *e = json_object_array_get_idx(a, i);

		if (!old || carried(e))
			w->bad = !one_attr(e, w);
	}
	/* Values in range one by one may still not go together. */
	w->bad = w->bad || (w->set && sched_ctx_cfg_check(&w->cfg));
}

static void check_sched(const struct gpup_partition *r, const struct want_attrs *w)
{
	bool set = w->set && !w->bad;

	fz_check(r->sched_set == set, "scheduler settings %s, want %s",
		 r->sched_set ? "set" : "default", set ? "set" : "default");
	if (set)
		fz_check(r->sched.weight == w->cfg.weight &&
			 r->sched.reserve_ppm == w->cfg.reserve_ppm &&
			 r->sched.cap_ppm == w->cfg.cap_ppm && r->sched.klass == w->cfg.klass &&
			 r->sched.fps_limit == w->cfg.fps_limit && r->sched.budget_us == w->cfg.budget_us,
			 "scheduler settings: weight %u reserve %u cap %u class %d fps %u",
			 r->sched.weight, r->sched.reserve_ppm, r->sched.cap_ppm, (int)r->sched.klass,
			 r->sched.fps_limit);
}

/* The bytes at path, or (link) elsewhere with path a symbolic link to them. */
static void write_file(const char *path, const uint8_t *data, size_t len, bool link)
{
	char target[400];
	FILE *f;

	snprintf(target, sizeof(target), "%s/linked", state_dir);
	f = fopen(link ? target : path, "w");
	fz_check(f, "cannot write %s", link ? target : path);
	fz_check(fwrite(data, 1, len, f) == len && fclose(f) == 0, "write %s", path);
	if (link) {
		unlink(path);
		fz_check(symlink(target, path) == 0, "symlink %s", path);
	}
}

static void pool_up(struct gpup_pool *p, bool held)
{
	gpup_pool_init(p, state_dir);
	p->log = count_log;
	fz_check(gpup_pool_add_gpu(p, "gpu0", "sim", "sim", gpu_vram[0], 1, 1, NULL) == 0, "gpu0");
	fz_check(gpup_pool_add_gpu(p, "gpu1", "sim", "sim", gpu_vram[1], 1, 1, NULL) == 1, "gpu1");
	if (held) {
		struct gpup_partition *h = calloc(1, sizeof(*h));
		char err[GPUP_POOL_ERR_MAX];

		fz_check(h, "calloc");
		memcpy(h->uuid, UUID_HELD, sizeof(UUID_HELD));
		snprintf(h->type, sizeof(h->type), "sim-4g-2");
		h->vram_size = gpu_vram[0] / 2;
		fz_check(gpup_pool_adopt(p, h, err, sizeof(err)) == 0, "held: %s", err);
	}
}

static void check_restored(struct gpup_pool *p, const struct def *d, unsigned int used0,
			   const struct want_attrs *w)
{
	struct gpup_partition *r = gpup_pool_find(p, d->uuid);
	struct gpup_buddy *b = &p->gpus[d->gpu].buddy;
	unsigned int units = GPUP_POOL_MAX_DENOM / (unsigned int)(gpu_vram[d->gpu] / d->size);
	char err[GPUP_POOL_ERR_MAX];

	fz_check(r && r->gpu == d->gpu && r->vram_offset == d->offset &&
		 r->vram_size == d->size && !strcmp(r->type, d->type) &&
		 r->fraction == gpu_vram[d->gpu] / d->size,
		 "restored as something else: gpu %u offset %llu size %llu type %s", r ? r->gpu : 0,
		 r ? (unsigned long long)r->vram_offset : 0ull,
		 r ? (unsigned long long)r->vram_size : 0ull, r ? r->type : "-");
	fz_check(gpup_buddy_free_units(b) == used0 - units, "slot accounting: %u free, want %u",
		 gpup_buddy_free_units(b), used0 - units);
	check_sched(r, w);
	fz_check(gpup_pool_destroy(p, d->uuid, err, sizeof(err)) == 0, "destroy: %s", err);
	fz_check(gpup_buddy_free_units(b) == used0, "destroy gave back %u units, want %u",
		 gpup_buddy_free_units(b), used0);
	fz_check(!gpup_pool_state_exists(p, d->uuid), "destroy left a definition file");
}

/* The contract of STATE/gpus/NAME.json (pool.h): version 1, the GPU's own
 * name, a policy the scheduler knows, slice_ns 0 or within the scheduler's
 * bounds, watchdog_ns up to an hour. */
static bool valid_gpu_file(json_object *o, const char *name, struct gpup_gpu_sched *s)
{
	static const char *const policies[] = { "fifo", "best-effort", "equal-share",
						"fixed-share", "weighted" };
	const char *gpu = str_field(o, "gpu"), *policy = str_field(o, "policy");
	json_object *v;
	bool known = false;

	if (!o || !json_object_is_type(o, json_type_object) ||
	    !json_object_object_get_ex(o, "version", &v) ||
	    !json_object_is_type(v, json_type_int) || json_object_get_int64(v) != 1)
		return false;
	if (!gpu || strcmp(gpu, name) || !policy)
		return false;
	for (unsigned int i = 0; i < sizeof(policies) / sizeof(policies[0]); i++) {
		if (!strcmp(policy, policies[i])) {
			s->policy = (enum sched_policy)i;
			known = true;
		}
	}
	return known && u64_field(o, "slice_ns", &s->slice_ns) &&
	       u64_field(o, "watchdog_ns", &s->watchdog_ns) &&
	       (!s->slice_ns || (s->slice_ns >= 100000 && s->slice_ns <= 30000000)) &&
	       s->watchdog_ns <= 3600ull * 1000000000ull;
}

/* Mode 8: the bytes are a GPU's saved scheduler settings instead. */
static void gpu_file(const char *gpu, const uint8_t *data, size_t len, bool link)
{
	char dir[350], path[400];
	struct gpup_gpu_sched want = { 0 }, got = { 0 };
	struct gpup_pool p;

	snprintf(dir, sizeof(dir), "%s/gpus", state_dir);
	snprintf(path, sizeof(path), "%s/%s.json", dir, gpu);
	mkdir(dir, 0700);
	write_file(path, data, len, link);
	pool_up(&p, false);
	json_object *o = json_object_from_file(path);
	bool valid = !link && valid_gpu_file(o, gpu, &want);

	json_object_put(o);
	nlogs = 0;
	int rc = gpup_pool_gpu_sched_load(&p, gpu, &got);

	fz_check(rc == (valid ? 0 : -EINVAL) && nlogs == !valid,
		 "GPU settings: %d with %u log lines for a%s file", rc, nlogs,
		 valid ? " valid" : "n invalid");
	if (valid)
		fz_check(got.policy == want.policy && got.slice_ns == want.slice_ns &&
			 got.watchdog_ns == want.watchdog_ns, "GPU settings read as %d %llu %llu",
			 (int)got.policy, (unsigned long long)got.slice_ns,
			 (unsigned long long)got.watchdog_ns);
	gpup_pool_fini(&p);
	unlink(path);
}

/* A skipped file named by a canonical UUID keeps it: listed as
 * unavailable, refused by create.  No other name is listed. */
static void check_skipped(struct gpup_pool *p, const char *name, bool held)
{
	struct gpup_partition *part = NULL;
	char err[GPUP_POOL_ERR_MAX];
	bool canonical = !strcmp(name, UUID_LOWER);

	fz_check(p->nunavail == canonical && (!canonical || gpup_pool_find_unavail(p, name)),
		 "%u definitions listed as unavailable for a skipped %s", p->nunavail, name);
	fz_check(!p->parts || (held && !p->parts->next), "a skipped file was linked");
	if (canonical)
		fz_check(gpup_pool_create(p, NULL, "sim-64m-16", name, &part, err, sizeof(err)) ==
			 -EEXIST, "create took the UUID of an unavailable definition");
}

/* Nothing of the last input left (an old file converts into a directory
 * named by its parent, whatever that was), then the directories the
 * files go in. */
static void empty_state(void)
{
	static const char *const subs[] = { "definitions", "definitions/gpu0", "definitions/gpu1",
					    "definitions/gpu9", "partitions" };
	char path[400];

	fz_empty_dir(state_dir);
	for (size_t i = 0; i < sizeof(subs) / sizeof(subs[0]); i++) {
		snprintf(path, sizeof(path), "%s/%s", state_dir, subs[i]);
		fz_check(mkdir(path, 0700) == 0, "mkdir %s", path);
	}
}

/* Where the file goes (mode bit 7: the previous layout) and the index of
 * its GPU directory's GPU (-1 for gpu9). */
static int file_path(uint8_t mode, const char *name, char *path, size_t len)
{
	const char *gpu = mode & 64 ? "gpu9" : mode & 16 ? "gpu1" : "gpu0";

	if (mode & 128)
		snprintf(path, len, "%s/partitions/%s.json", state_dir, name);
	else
		snprintf(path, len, "%s/definitions/%s/%s", state_dir, gpu, name);
	return mode & 64 ? -1 : mode & 16 ? 1 : 0;
}

/* First byte: bits 0-1 the file's name, bit 2 a partition holds half of
 * gpu0, bit 3 the file is a GPU's settings instead, bit 4 gpu1's (its
 * settings, or its directory), bit 5 the file is a symbolic link to the
 * bytes, bit 6 the directory is gpu9's, bit 7 the previous layout. */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char *const names[] = { UUID_LOWER, UUID_UPPER, UUID_JUNK, UUID_LOWER };
	char path[400], err[GPUP_POOL_ERR_MAX];
	struct gpup_pool p;
	struct want_attrs w;
	struct def d;

	if (!size)
		return 0;
	if (!state_dir[0]) {
		snprintf(state_dir, sizeof(state_dir), "%s/state", fz_tmpdir());
		fz_check(mkdir(state_dir, 0700) == 0, "%s", state_dir);
	}
	empty_state();
	bool link = data[0] & 32, old = data[0] & 128;

	if (data[0] & 8) {
		gpu_file(data[0] & 16 ? "gpu1" : "gpu0", data + 1, size - 1, link);
		return 0;
	}
	const char *name = names[data[0] & 3];
	bool held = data[0] & 4;
	int gpu = file_path(data[0], name, path, sizeof(path));

	write_file(path, data + 1, size - 1, link);
	pool_up(&p, held);
	unsigned int free0[2] = { gpup_buddy_free_units(&p.gpus[0].buddy),
				  gpup_buddy_free_units(&p.gpus[1].buddy) };
	json_object *o = json_object_from_file(path);
	bool valid = !link && (old ? valid_old(&p, o, name, held, &d)
				   : valid_def(&p, o, name, gpu, held, &d));

	attrs_of(o, old, &w);
	json_object_put(o);
	if (old)
		fz_check(gpup_pool_state_upgrade(&p, err, sizeof(err)) == 0, "upgrade: %s", err);
	nlogs = 0;
	int n = gpup_pool_restore(&p);

	fz_check(n == valid, "restore brought back %d partitions, the file is %s", n,
		 valid ? "valid" : "invalid");
	/* One line for a skipped file, or for a kept one whose attrs are bad. */
	fz_check(nlogs == (valid ? w.bad : 1), "%u log lines for a%s file%s", nlogs,
		 valid ? " valid" : "n invalid", w.bad ? " with bad attrs" : "");
	if (valid) {
		fz_check(!p.unavail, "a restored definition is listed as unavailable");
		check_restored(&p, &d, free0[d.gpu], &w);
	} else {
		fz_check(gpup_buddy_free_units(&p.gpus[0].buddy) == free0[0] &&
			 gpup_buddy_free_units(&p.gpus[1].buddy) == free0[1],
			 "a skipped file took VRAM slots");
		check_skipped(&p, name, held);
	}
	gpup_pool_fini(&p);
	return 0;
}
