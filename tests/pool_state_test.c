// SPDX-License-Identifier: MIT
/* Partition definitions on disk: written, removed, restored, and bad
 * files skipped (their UUIDs kept); partitions' and GPUs' scheduler
 * settings likewise; the state directory's lock and leftovers. */
#include <criterion/criterion.h>
#include <errno.h>
#include <json-c/json.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "gpup/pool/pool.h"
#include "tests/testlib.h"

#define GIB (1ull << 30)
#define U1 "11111111-2222-4333-8444-555555555555"
#define U2 "11111111-2222-4333-8444-666666666666"
#define U3 "11111111-2222-4333-8444-777777777777"

static char dir[64];
static int nlogs;
static char lastlog[1024];

static void count_log(const char *fmt, ...)
{
	va_list ap;

	nlogs++;
	va_start(ap, fmt);
	vsnprintf(lastlog, sizeof(lastlog), fmt, ap);
	va_end(ap);
}

static void mkpool(struct gpup_pool *p)
{
	gpup_pool_init(p, dir);
	p->log = count_log;
	gpup_pool_add_gpu(p, "gpu0", "sim", "sim", 8 * GIB, 1, 1, NULL);
	gpup_pool_add_gpu(p, "gpu1", "sim", "sim", 8 * GIB, 1, 1, NULL);
}

static void setup(void)
{
	snprintf(dir, sizeof(dir), "/tmp/gpup-pool-XXXXXX");
	cr_assert_not_null(mkdtemp(dir));
	nlogs = 0;
}

static void teardown(void)
{
	char cmd[128];

	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	cr_assert_eq(system(cmd), 0);
}

TestSuite(pool_state, .init = setup, .fini = teardown);

static void mkdirs(const char *sub)
{
	char cmd[PATH_MAX];

	snprintf(cmd, sizeof(cmd), "mkdir -p %s/%s", dir, sub);
	cr_assert_eq(system(cmd), 0);
}

/* STATE/definitions/gpu/uuid holding text. */
static void write_def(const char *gpu, const char *uuid, const char *text)
{
	char path[PATH_MAX];
	FILE *f;

	snprintf(path, sizeof(path), "definitions/%s", gpu);
	mkdirs(path);
	snprintf(path, sizeof(path), "%s/definitions/%s/%s", dir, gpu, uuid);
	f = fopen(path, "w");
	cr_assert_not_null(f);
	fputs(text, f);
	fclose(f);
}

static void assert_why(const struct gpup_pool *p, const char *uuid, const char *why)
{
	const struct gpup_unavail *u = gpup_pool_find_unavail(p, uuid);

	cr_assert_not_null(u, "%s is not listed as unavailable", uuid);
	cr_assert_str_eq(u->why, why, "%s", uuid);
}

Test(pool_state, file_layout)
{
	struct gpup_pool p;
	struct gpup_partition *a;
	char path[PATH_MAX], err[GPUP_POOL_ERR_MAX];
	json_object *o, *v;
	struct stat st;

	mkpool(&p);
	cr_assert_eq(gpup_pool_create(&p, "gpu1", "sim-2g-4", U1, &a, err, sizeof(err)), 0);
	snprintf(path, sizeof(path), "%s/definitions/gpu1/" U1, dir);
	o = json_object_from_file(path);
	cr_assert_not_null(o);
	cr_assert_eq(json_object_object_length(o), 3, "mdevctl's three keys, no more");
	cr_assert(json_object_object_get_ex(o, "mdev_type", &v));
	cr_assert_str_eq(json_object_get_string(v), "sim-2g-4");
	cr_assert(json_object_object_get_ex(o, "start", &v));
	cr_assert_str_eq(json_object_get_string(v), "auto");
	cr_assert(json_object_object_get_ex(o, "attrs", &v));
	cr_assert_str_eq(json_object_to_json_string_ext(v, JSON_C_TO_STRING_PLAIN),
			 "[{\"vram_offset\":\"0\"},{\"vram_size\":\"2147483648\"},"
			 "{\"revision\":\"1\"}]");
	json_object_put(o);
	cr_assert_eq(stat(path, &st), 0);
	cr_assert_eq(st.st_mode & 0777, 0600);
	cr_assert_eq(gpup_pool_destroy(&p, U1, err, sizeof(err)), 0);
	cr_assert_eq(stat(path, &st), -1, "destroy removes the file");
	cr_assert_eq(errno, ENOENT);
	gpup_pool_fini(&p);
}

Test(pool_state, restore_brings_back_slots)
{
	struct gpup_pool p, q;
	struct gpup_partition *a, *b, *r;
	char err[GPUP_POOL_ERR_MAX];

	mkpool(&p);
	cr_assert_eq(gpup_pool_create(&p, "gpu0", "sim-4g-2", U1, &a, err, sizeof(err)), 0);
	cr_assert_eq(gpup_pool_create(&p, "gpu0", "sim-1g-8", U2, &b, err, sizeof(err)), 0);
	cr_assert_eq(b->vram_offset, 4 * GIB);
	gpup_pool_fini(&p);

	mkpool(&q);
	cr_assert_eq(gpup_pool_restore(&q), 2);
	cr_assert_eq(nlogs, 0);
	r = gpup_pool_find(&q, U2);
	cr_assert_not_null(r);
	cr_assert_eq(r->gpu, 0);
	cr_assert_eq(r->vram_offset, 4 * GIB);
	cr_assert_eq(r->fraction, 8);
	cr_assert_str_eq(r->type, "sim-1g-8");
	cr_assert_eq(gpup_buddy_free_units(&q.gpus[0].buddy), 16 - 8 - 2);
	cr_assert_eq(gpup_pool_create(&q, "gpu0", "sim-8g-1", U3, &r, err, sizeof(err)), -ENOSPC);
	gpup_pool_fini(&q);
}

Test(pool_state, bad_files_are_skipped)
{
	struct gpup_pool p, q;
	struct gpup_partition *a;
	char err[GPUP_POOL_ERR_MAX];

	mkpool(&p);
	cr_assert_eq(gpup_pool_create(&p, "gpu0", "sim-4g-2", U1, &a, err, sizeof(err)), 0);
	gpup_pool_fini(&p);
	write_def("gpu0", U2, "{ \"mdev_type\": \"sim-1g-8\", \"start\": ");
	/* Overlaps U1's slot. */
	write_def("gpu0", U3, "{\"mdev_type\":\"sim-8g-1\",\"start\":\"auto\",\"attrs\":["
		  "{\"vram_offset\":\"0\"},{\"vram_size\":\"8589934592\"}]}");
	write_def("gpu0", "11111111-2222-4333-8444-888888888888",
		  "{\"start\":\"auto\",\"attrs\":[{\"vram_offset\":\"4294967296\"},"
		  "{\"vram_size\":\"4294967296\"}]}");
	mkpool(&q);
	cr_assert_eq(gpup_pool_restore(&q), 1);
	cr_assert_eq(nlogs, 3);
	cr_assert_not_null(gpup_pool_find(&q, U1));
	cr_assert_null(gpup_pool_find(&q, U3));
	cr_assert_null(q.parts->next);
	gpup_pool_fini(&q);
}

Test(pool_state, unwritable_state_dir_fails_create)
{
	struct gpup_pool p;
	struct gpup_partition *a;
	char err[GPUP_POOL_ERR_MAX], sub[PATH_MAX];

	if (geteuid() == 0) {
		teardown(); /* a skipped test does not get its fini */
		cr_skip("root ignores directory permissions");
	}
	snprintf(sub, sizeof(sub), "%s/definitions", dir);
	cr_assert_eq(mkdir(sub, 0500), 0);
	mkpool(&p);
	cr_assert_eq(gpup_pool_create(&p, "gpu0", "sim-4g-2", U1, &a, err, sizeof(err)), -EACCES);
	cr_assert_null(p.parts);
	cr_assert_eq(gpup_buddy_free_units(&p.gpus[0].buddy), 16);
	gpup_pool_fini(&p);
	chmod(sub, 0700);
}

/* The daemon came back with fewer or smaller GPUs: what no longer fits is
 * skipped (and its file kept), the rest restored. */
Test(pool_state, restore_into_a_smaller_pool)
{
	struct gpup_pool p, q;
	struct gpup_partition *a;
	char err[GPUP_POOL_ERR_MAX], path[PATH_MAX];
	struct stat st;

	mkpool(&p);
	cr_assert_eq(gpup_pool_create(&p, "gpu0", "sim-4g-2", U1, &a, err, sizeof(err)), 0);
	cr_assert_eq(gpup_pool_create(&p, "gpu1", "sim-4g-2", U2, &a, err, sizeof(err)), 0);
	gpup_pool_fini(&p);
	gpup_pool_init(&q, dir);
	q.log = count_log;
	gpup_pool_add_gpu(&q, "gpu0", "sim", "sim", 4 * GIB, 1, 1, NULL);
	cr_assert_eq(gpup_pool_restore(&q), 0, "gpu1 is gone, gpu0 has no 4g-2 type now");
	cr_assert_eq(nlogs, 2);
	cr_assert_null(q.parts);
	snprintf(path, sizeof(path), "%s/definitions/gpu1/" U2, dir);
	cr_assert_eq(stat(path, &st), 0, "the definition stays on disk");
	gpup_pool_fini(&q);
}

/* What places a partition must be there, once, and well formed; start is
 * auto or manual: otherwise the definition is skipped, with the reason. */
static const char *def(char *buf, size_t len, const char *type, const char *start,
		       const char *attrs)
{
	snprintf(buf, len, "{\"mdev_type\":\"%s\",\"start\":\"%s\",\"attrs\":[%s]}", type,
		 start, attrs);
	return buf;
}

#define SLOT0_4G "{\"vram_offset\":\"0\"},{\"vram_size\":\"4294967296\"}"

Test(pool_state, malformed_definitions_are_skipped)
{
	static const char *const bad[][3] = {
		{ "sim-4g-2", "sometimes", SLOT0_4G },
		{ "sim-4g-2", "auto", "{\"vram_offset\":\"0\"}" },
		{ "sim-4g-2", "auto", SLOT0_4G ",{\"vram_offset\":\"0\"}" },
		{ "sim-4g-2", "auto", SLOT0_4G ",{\"revision\":\"-1\"}" },
		{ "sim-4g-2", "auto", SLOT0_4G ",{\"compat\":\"gen9\"}" },
		{ "sim-4g-2", "auto", SLOT0_4G ",{\"a\":\"1\",\"b\":\"2\"}" },
		{ "sim-4g-2", "auto", "{\"vram_offset\":0},{\"vram_size\":\"4294967296\"}" },
	};
	static const char *const why[] = {
		"start is not \"auto\" or \"manual\"", "attrs lack vram_offset or vram_size",
		"attr vram_offset is given twice", "attr revision '-1' is not a number",
		"compat 'gen9' is not a GPU generation this daemon knows",
		"attrs entries must be {\"name\": \"value\"}",
		"attrs entries must be {\"name\": \"value\"}",
	};
	char uuid[GPUP_UUID_STRLEN + 1], text[512];
	struct gpup_pool p;

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		snprintf(uuid, sizeof(uuid), "11111111-2222-4333-8444-%012zu", i);
		write_def("gpu0", uuid, def(text, sizeof(text), bad[i][0], bad[i][1], bad[i][2]));
	}
	write_def("gpu1", U3, def(text, sizeof(text), "sim-4g-2", "manual", SLOT0_4G));
	mkpool(&p);
	cr_assert_eq(gpup_pool_restore(&p), 1);
	cr_assert_eq(nlogs, 7);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		snprintf(uuid, sizeof(uuid), "11111111-2222-4333-8444-%012zu", i);
		assert_why(&p, uuid, why[i]);
	}
	cr_assert_not(gpup_pool_find(&p, U3)->start_auto);
	cr_assert_eq(gpup_buddy_free_units(&p.gpus[0].buddy), 16);
	gpup_pool_fini(&p);
}

/* Offsets far past the GPU whose slot index, cut to 32 bits, would land
 * on slot 0 (2^61 on an 8 GiB GPU of 512 MiB units is unit 2^32) or wrap
 * the slot's end past 2^32: skipped, no slot taken.  Found by
 * fuzz/pool_state_fuzz.c. */
Test(pool_state, offset_past_the_gpu_is_skipped)
{
	struct gpup_pool p;

	write_def("gpu0", U1, "{\"mdev_type\":\"sim-4g-2\",\"start\":\"auto\",\"attrs\":["
		  "{\"vram_offset\":\"2305843009213693952\"},{\"vram_size\":\"4294967296\"}]}");
	write_def("gpu1", U2, "{\"mdev_type\":\"sim-8g-1\",\"start\":\"auto\",\"attrs\":["
		  "{\"vram_offset\":\"2305843000623759360\"},{\"vram_size\":\"8589934592\"}]}");
	mkpool(&p);
	cr_assert_eq(gpup_pool_restore(&p), 0);
	cr_assert_eq(nlogs, 2);
	cr_assert_null(p.parts);
	cr_assert_eq(gpup_buddy_free_units(&p.gpus[0].buddy), 16);
	cr_assert_eq(gpup_buddy_free_units(&p.gpus[1].buddy), 16);
	gpup_pool_fini(&p);
}

/* ---- scheduler settings ---- */

static json_object *attrs_of(const char *uuid)
{
	char path[PATH_MAX];
	json_object *o, *a;

	snprintf(path, sizeof(path), "%s/definitions/gpu0/%s", dir, uuid);
	o = json_object_from_file(path);
	cr_assert_not_null(o);
	cr_assert(json_object_object_get_ex(o, "attrs", &a));
	cr_assert(json_object_is_type(a, json_type_array));
	json_object_get(a);
	json_object_put(o);
	return a;
}

static const char *attr_at(json_object *a, size_t i, const char *name)
{
	json_object *v;

	cr_assert(json_object_object_get_ex(json_object_array_get_idx(a, i), name, &v),
		  "attrs[%zu] is not %s", i, name);
	return json_object_get_string(v);
}

Test(pool_state, sched_attrs_round_trip)
{
	struct sched_ctx_cfg cfg = { .weight = 4, .reserve_ppm = 250000, .cap_ppm = 500000,
				     .klass = SCHED_CLASS_INTERACTIVE, .fps_limit = 60,
				     .budget_us = 2000 };
	struct sched_ctx_cfg bad = { .weight = SCHED_WEIGHT_MAX + 1 };
	struct gpup_partition *a, *b;
	struct gpup_pool p, q;
	char err[GPUP_POOL_ERR_MAX];
	json_object *attrs;

	mkpool(&p);
	cr_assert_eq(gpup_pool_create(&p, "gpu0", "sim-4g-2", U1, &a, err, sizeof(err)), 0);
	cr_assert_eq(gpup_pool_create(&p, "gpu0", "sim-4g-2", U2, &b, err, sizeof(err)), 0);
	cr_assert_eq(gpup_pool_set_sched(&p, a, &cfg), 0);
	cr_assert_eq(gpup_pool_set_sched(&p, a, &bad), -EINVAL);
	cr_assert_eq(a->sched.weight, 4, "a refused setting keeps the old one");
	attrs = attrs_of(U1);
	cr_assert_eq(json_object_array_length(attrs), 9);
	cr_assert_str_eq(attr_at(attrs, 2, "revision"), "2");
	cr_assert_str_eq(attr_at(attrs, 3, "sched_weight"), "4");
	cr_assert_str_eq(attr_at(attrs, 4, "sched_reserve_ppm"), "250000");
	cr_assert_str_eq(attr_at(attrs, 5, "sched_cap_ppm"), "500000");
	cr_assert_str_eq(attr_at(attrs, 6, "sched_fps_limit"), "60");
	cr_assert_str_eq(attr_at(attrs, 7, "sched_budget_us"), "2000");
	cr_assert_str_eq(attr_at(attrs, 8, "sched_class"), "interactive");
	json_object_put(attrs);
	attrs = attrs_of(U2);
	cr_assert_eq(json_object_array_length(attrs), 3, "no settings: only the slot");
	json_object_put(attrs);
	gpup_pool_fini(&p);

	mkpool(&q);
	cr_assert_eq(gpup_pool_restore(&q), 2);
	cr_assert_eq(nlogs, 0);
	a = gpup_pool_find(&q, U1);
	cr_assert(a->sched_set);
	cr_assert_eq(a->sched.weight, 4);
	cr_assert_eq(a->sched.reserve_ppm, 250000);
	cr_assert_eq(a->sched.cap_ppm, 500000);
	cr_assert_eq(a->sched.klass, SCHED_CLASS_INTERACTIVE);
	cr_assert_eq(a->sched.fps_limit, 60);
	cr_assert_eq(a->sched.budget_us, 2000);
	cr_assert_not(gpup_pool_find(&q, U2)->sched_set);
	gpup_pool_fini(&q);
}

/* Attrs of someone else restore with defaults and no word; scheduler
 * attrs whose values do not parse restore the partition with defaults
 * and one log line each. */
Test(pool_state, bad_sched_attrs_cost_only_the_settings)
{
	static const char *const files[][2] = {
		{ U1, "" },
		{ U2, ",{\"vendor_knob\":\"7\"}" },
		{ U3, ",{\"sched_weight\":\"heavy\"}" },
		{ "11111111-2222-4333-8444-888888888888", ",{\"sched_cap_ppm\":\"2000000\"}" },
		{ "11111111-2222-4333-8444-999999999999", ",{\"sched_class\":\"vip\"}" },
		{ "11111111-2222-4333-8444-cccccccccccc", ",{\"sched_weight\":\"-1\"}" },
	};
	struct gpup_pool p;
	char text[512], attrs[256];

	for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
		snprintf(attrs, sizeof(attrs), "{\"vram_offset\":\"%zu\"},"
			 "{\"vram_size\":\"1073741824\"}%s", i << 30, files[i][1]);
		write_def("gpu1", files[i][0], def(text, sizeof(text), "sim-1g-8", "auto", attrs));
	}
	mkpool(&p);
	cr_assert_eq(gpup_pool_restore(&p), 6, "every definition comes back");
	cr_assert_eq(nlogs, 4, "one line per file whose attrs do not parse");
	for (struct gpup_partition *q = p.parts; q; q = q->next)
		cr_assert_not(q->sched_set, "%s: defaults", q->uuid);
	cr_assert_eq(gpup_buddy_free_units(&p.gpus[1].buddy), 16 - 12);
	gpup_pool_fini(&p);
}

static void write_gpu_file(const char *name, const char *text)
{
	char path[PATH_MAX];
	FILE *f;

	snprintf(path, sizeof(path), "%s/gpus", dir);
	mkdir(path, 0700);
	snprintf(path, sizeof(path), "%s/gpus/%s.json", dir, name);
	f = fopen(path, "w");
	cr_assert_not_null(f);
	fputs(text, f);
	fclose(f);
}

Test(pool_state, gpu_settings_round_trip)
{
	struct gpup_gpu_sched s = { SCHED_POLICY_FIXED_SHARE, 1000000, 500000000 }, got;
	char path[PATH_MAX];
	struct gpup_pool p;
	struct stat st;

	mkpool(&p);
	cr_assert_eq(gpup_pool_gpu_sched_load(&p, "gpu0", &got), -ENOENT);
	cr_assert_eq(gpup_pool_gpu_sched_save(&p, 0, &s), 0);
	cr_assert_eq(p.gpus[0].sched.policy, SCHED_POLICY_FIXED_SHARE);
	snprintf(path, sizeof(path), "%s/gpus/gpu0.json", dir);
	cr_assert_eq(stat(path, &st), 0);
	cr_assert_eq(st.st_mode & 0777, 0600);
	snprintf(path, sizeof(path), "%s/gpus/.gpu0.json.tmp", dir);
	cr_assert_neq(stat(path, &st), 0, "no temporary file left");
	memset(&got, 0xff, sizeof(got));
	cr_assert_eq(gpup_pool_gpu_sched_load(&p, "gpu0", &got), 0);
	cr_assert_eq(got.policy, SCHED_POLICY_FIXED_SHARE);
	cr_assert_eq(got.slice_ns, 1000000);
	cr_assert_eq(got.watchdog_ns, 500000000);
	cr_assert_eq(gpup_pool_gpu_sched_load(&p, "gpu1", &got), -ENOENT);
	cr_assert_eq(nlogs, 0);
	gpup_pool_fini(&p);
}

/* Corrupt, of another version, for another GPU, or out of range: -EINVAL
 * and one log line each, never the settings. */
Test(pool_state, bad_gpu_settings_files_are_skipped)
{
	static const char *const bad[] = {
		"{ \"version\": 1, \"gpu\": ",
		"[1, 2]",
		"{\"version\":2,\"gpu\":\"gpu0\",\"policy\":\"weighted\",\"slice_ns\":0,"
		"\"watchdog_ns\":0}",
		"{\"gpu\":\"gpu0\",\"policy\":\"weighted\",\"slice_ns\":0,\"watchdog_ns\":0}",
		"{\"version\":1,\"gpu\":\"gpu1\",\"policy\":\"weighted\",\"slice_ns\":0,"
		"\"watchdog_ns\":0}",
		"{\"version\":1,\"gpu\":\"gpu0\",\"policy\":\"lottery\",\"slice_ns\":0,"
		"\"watchdog_ns\":0}",
		"{\"version\":1,\"gpu\":\"gpu0\",\"policy\":\"fifo\",\"slice_ns\":99000000,"
		"\"watchdog_ns\":0}",
		"{\"version\":1,\"gpu\":\"gpu0\",\"policy\":\"fifo\",\"slice_ns\":0,"
		"\"watchdog_ns\":-5}",
		"{\"version\":1,\"gpu\":\"gpu0\",\"policy\":\"fifo\",\"slice_ns\":0}",
	};
	struct gpup_gpu_sched got = { SCHED_POLICY_WEIGHTED, 7, 7 };
	struct gpup_pool p;

	mkpool(&p);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		write_gpu_file("gpu0", bad[i]);
		nlogs = 0;
		cr_assert_eq(gpup_pool_gpu_sched_load(&p, "gpu0", &got), -EINVAL, "%s", bad[i]);
		cr_assert_eq(nlogs, 1, "%s", bad[i]);
		cr_assert_eq(got.slice_ns, 7, "untouched");
	}
	gpup_pool_fini(&p);
}

/* ---- definitions restore skipped ---- */

/* Its GPU gone, a definition is kept: listed as unavailable with why, its
 * UUID refused to create (the file untouched) until destroy removes it. */
Test(pool_state, skipped_definition_keeps_its_uuid)
{
	struct gpup_pool p, q;
	struct gpup_partition *a;
	const struct gpup_unavail *u;
	char err[GPUP_POOL_ERR_MAX], path[PATH_MAX], before[512], after[512];

	mkpool(&p);
	cr_assert_eq(gpup_pool_create(&p, "gpu1", "sim-2g-4", U1, &a, err, sizeof(err)), 0);
	gpup_pool_fini(&p);
	write_def("gpu0", U2, "{\"mdev_type\": ");
	write_def("gpu0", "11111111-2222-4333-8444-AAAAAAAAAAAA", "{}");
	snprintf(path, sizeof(path), "%s/definitions/gpu1/" U1, dir);
	tl_slurp(path, before, sizeof(before));

	gpup_pool_init(&q, dir);
	q.log = count_log;
	gpup_pool_add_gpu(&q, "gpu0", "sim", "sim", 8 * GIB, 1, 1, NULL);
	cr_assert_eq(gpup_pool_restore(&q), 0);
	cr_assert_eq(nlogs, 3);
	cr_assert_eq(q.nunavail, 2, "the upper-case name is no UUID create would write");
	u = gpup_pool_find_unavail(&q, U1);
	cr_assert_not_null(u);
	cr_assert_str_eq(u->why, "its GPU 'gpu1' is not present");
	cr_assert_str_eq(u->gpu, "gpu1");
	cr_assert_str_eq(u->type, "sim-2g-4");
	cr_assert_eq(u->vram_size, 2 * GIB);
	u = gpup_pool_find_unavail(&q, U2);
	cr_assert_not_null(u);
	cr_assert_str_eq(u->why, "not a JSON object");
	cr_assert_str_eq(u->gpu, "gpu0");

	cr_assert_eq(gpup_pool_create(&q, "gpu0", "sim-2g-4", U1, &a, err, sizeof(err)), -EEXIST);
	cr_assert_str_eq(err, "UUID " U1 " is reserved by an unavailable saved partition (its GPU "
			      "'gpu1' is not present); 'gpup destroy' it to reuse the UUID");
	cr_assert_eq(gpup_pool_create(&q, "gpu0", "sim-2g-4", U2, &a, err, sizeof(err)), -EEXIST);
	cr_assert_null(q.parts);
	cr_assert_eq(gpup_buddy_free_units(&q.gpus[0].buddy), 16);
	tl_slurp(path, after, sizeof(after));
	cr_assert_str_eq(after, before, "the definition is not overwritten");

	cr_assert_eq(gpup_pool_destroy(&q, U1, err, sizeof(err)), 0);
	cr_assert_null(gpup_pool_find_unavail(&q, U1));
	cr_assert_neq(access(path, F_OK), 0, "destroy removes the file");
	cr_assert_eq(gpup_pool_destroy(&q, U1, err, sizeof(err)), -ENOENT);
	cr_assert_eq(gpup_pool_create(&q, "gpu0", "sim-2g-4", U1, &a, err, sizeof(err)), 0);
	gpup_pool_fini(&q);
}

/* A definition dropped into the directory after restore is not ours to
 * overwrite either. */
Test(pool_state, create_never_overwrites_a_file_it_did_not_restore)
{
	struct gpup_pool p;
	struct gpup_partition *a;
	char err[GPUP_POOL_ERR_MAX], want[GPUP_POOL_ERR_MAX];

	mkpool(&p);
	write_def("gpu7", U1, "hand-written");
	cr_assert_eq(gpup_pool_create(&p, "gpu0", "sim-2g-4", U1, &a, err, sizeof(err)), -EEXIST);
	snprintf(want, sizeof(want), "UUID " U1 " is reserved by a definition file in "
		 "%s that this daemon did not restore", dir);
	cr_assert_str_eq(err, want);
	gpup_pool_fini(&p);
}

/* ---- only regular files of bounded size are read ---- */

static void state_link(const char *sub, const char *name, const char *target)
{
	char path[PATH_MAX];

	mkdirs(sub);
	snprintf(path, sizeof(path), "%s/%s/%s", dir, sub, name);
	cr_assert_eq(symlink(target, path), 0, "%s", path);
}

/* A definition padded with spaces to `size` bytes. */
static void write_padded(const char *uuid, const char *gpu, uint64_t offset, size_t size)
{
	char path[PATH_MAX];
	FILE *f;
	int n;

	snprintf(path, sizeof(path), "%s/definitions/%s/%s", dir, gpu, uuid);
	f = fopen(path, "w");
	cr_assert_not_null(f);
	n = fprintf(f, "{\"mdev_type\":\"sim-1g-8\",\"start\":\"auto\",\"attrs\":["
		    "{\"vram_offset\":\"%llu\"},{\"vram_size\":\"1073741824\"}]}",
		    (unsigned long long)offset);
	for (size_t i = (size_t)n; i < size; i++)
		fputc(' ', f);
	fclose(f);
}

/* A FIFO, a link to one, a link to /dev/zero, a link to a good file
 * elsewhere, a file past the cap: each skipped with one line, quickly; a
 * file of exactly the cap is read.  Before, the FIFO hung the start and
 * /dev/zero ate memory. */
Test(pool_state, only_regular_files_are_read, .timeout = 20)
{
	static const char *const u[] = {
		"22222222-2222-4333-8444-000000000001", "22222222-2222-4333-8444-000000000002",
		"22222222-2222-4333-8444-000000000003", "22222222-2222-4333-8444-000000000004",
		"22222222-2222-4333-8444-000000000005", "22222222-2222-4333-8444-000000000006",
	};
	char fifo[PATH_MAX], elsewhere[PATH_MAX], path[PATH_MAX];
	struct gpup_gpu_sched got;
	struct gpup_pool p;

	mkdirs("definitions/gpu0");
	snprintf(fifo, sizeof(fifo), "%s/fifo", dir);
	cr_assert_eq(mkfifo(fifo, 0600), 0);
	snprintf(path, sizeof(path), "%s/definitions/gpu0/%s", dir, u[0]);
	cr_assert_eq(mkfifo(path, 0600), 0);
	state_link("definitions/gpu0", u[1], fifo);
	state_link("definitions/gpu0", u[2], "/dev/zero");
	write_padded(u[3], "gpu0", 0, GPUP_STATE_FILE_MAX + 1);
	write_padded(u[4], "gpu0", 1 * GIB, GPUP_STATE_FILE_MAX);
	snprintf(elsewhere, sizeof(elsewhere), "%s/definitions/gpu0/%s", dir, u[4]);
	snprintf(path, sizeof(path), "%s/good.json", dir);
	cr_assert_eq(rename(elsewhere, path), 0);
	state_link("definitions/gpu0", u[4], path);
	write_padded(u[5], "gpu0", 2 * GIB, GPUP_STATE_FILE_MAX);
	state_link("gpus", "gpu0.json", fifo);
	state_link("gpus", "gpu1.json", "/dev/zero");

	mkpool(&p);
	cr_assert_eq(gpup_pool_restore(&p), 1, "only the regular file at the cap");
	cr_assert_eq(nlogs, 5);
	cr_assert_not_null(gpup_pool_find(&p, u[5]));
	assert_why(&p, u[0], "not a regular file");
	assert_why(&p, u[1], "a symbolic link, not a regular file");
	assert_why(&p, u[2], "a symbolic link, not a regular file");
	assert_why(&p, u[3], "larger than 256 KiB");
	assert_why(&p, u[4], "a symbolic link, not a regular file");
	nlogs = 0;
	cr_assert_eq(gpup_pool_gpu_sched_load(&p, "gpu0", &got), -EINVAL);
	cr_assert_eq(gpup_pool_gpu_sched_load(&p, "gpu1", &got), -EINVAL);
	cr_assert_eq(nlogs, 2);
	snprintf(path, sizeof(path), "ignoring GPU settings file %s/gpus/gpu1.json: a symbolic "
		 "link, not a regular file", dir);
	cr_assert_str_eq(lastlog, path);
	gpup_pool_fini(&p);
}

/* A link planted at the temporary name is replaced, never written through. */
Test(pool_state, write_does_not_follow_a_planted_temporary)
{
	struct gpup_pool p;
	struct gpup_partition *a;
	char err[GPUP_POOL_ERR_MAX], victim[PATH_MAX], path[PATH_MAX], text[64];
	struct stat st;
	FILE *f;

	snprintf(victim, sizeof(victim), "%s/victim", dir);
	f = fopen(victim, "w");
	cr_assert_not_null(f);
	fputs("keep me", f);
	fclose(f);
	state_link("definitions/gpu0", "." U1 ".tmp", victim);
	mkpool(&p);
	cr_assert_eq(gpup_pool_create(&p, "gpu0", "sim-2g-4", U1, &a, err, sizeof(err)), 0, "%s",
		     err);
	tl_slurp(victim, text, sizeof(text));
	cr_assert_str_eq(text, "keep me");
	snprintf(path, sizeof(path), "%s/definitions/gpu0/" U1, dir);
	cr_assert_eq(lstat(path, &st), 0);
	cr_assert(S_ISREG(st.st_mode), "the definition is a file of its own");
	gpup_pool_fini(&p);
}

/* ---- the directory's lock and leftovers ---- */

Test(pool_state, one_owner_at_a_time)
{
	struct gpup_pool p, q;
	char err[GPUP_POOL_ERR_MAX], want[GPUP_POOL_ERR_MAX], path[PATH_MAX], text[32];

	gpup_pool_init(&p, dir);
	gpup_pool_init(&q, dir);
	cr_assert_eq(gpup_pool_state_lock(&p, err, sizeof(err)), 0, "%s", err);
	snprintf(path, sizeof(path), "%s/gpup.lock", dir);
	tl_slurp(path, text, sizeof(text));
	snprintf(want, sizeof(want), "%d\n", (int)getpid());
	cr_assert_str_eq(text, want, "the lock names its holder");
	cr_assert_eq(gpup_pool_state_lock(&q, err, sizeof(err)), -EBUSY);
	snprintf(want, sizeof(want), "state directory %s is in use by another gpup daemon (pid %d); "
		 "stop it or give another --state-dir", dir, (int)getpid());
	cr_assert_str_eq(err, want);
	gpup_pool_fini(&p);
	cr_assert_eq(gpup_pool_state_lock(&q, err, sizeof(err)), 0, "released at fini: %s", err);
	gpup_pool_fini(&q);
}

static void touch(const char *sub, const char *name)
{
	char path[PATH_MAX];
	FILE *f;

	mkdirs(sub);
	snprintf(path, sizeof(path), "%s/%s/%s", dir, sub, name);
	f = fopen(path, "w");
	cr_assert_not_null(f, "%s", path);
	fclose(f);
}

static bool present(const char *sub, const char *name)
{
	char path[PATH_MAX];

	snprintf(path, sizeof(path), "%s/%s/%s", dir, sub, name);
	return access(path, F_OK) == 0;
}

/* Exactly the daemon's own temporary names go, one log line each. */
Test(pool_state, stale_temporaries_are_removed)
{
	static const char *const keep[][2] = {
		{ "definitions/gpu0", ".11111111-2222-4333-8444-AAAAAAAAAAAA.tmp" },
		{ "definitions/gpu0", ".notes.tmp" },
		{ "definitions/gpu0", U2 ".tmp" },
		{ "definitions/gpu0", "." U2 ".tmp.bak" },
		{ "definitions/gpu0", "." U2 ".json.tmp" },
		{ "definitions", "." U2 ".tmp" },
		{ "partitions", ".11111111-2222-4333-8444-AAAAAAAAAAAA.json.tmp" },
		{ "partitions", ".notes.json.tmp" },
		{ "partitions", U2 ".json.tmp" },
		{ "partitions", "." U2 ".json.tmp.bak" },
		{ "gpus", ".gpu0.json" },
		{ "gpus", ".json.tmp" },
		{ "gpus", ".my gpu.json.tmp" },
	};
	struct gpup_pool p;
	char want[PATH_MAX];

	touch("definitions/gpu1", "." U1 ".tmp");
	touch("partitions", "." U1 ".json.tmp");
	touch("gpus", ".gpu0.json.tmp");
	touch(".", ".format.tmp");
	for (size_t i = 0; i < sizeof(keep) / sizeof(keep[0]); i++)
		touch(keep[i][0], keep[i][1]);
	mkpool(&p);
	cr_assert_eq(gpup_pool_state_clean(&p), 4);
	cr_assert_eq(nlogs, 4);
	snprintf(want, sizeof(want), "removed %s/.format.tmp, left by an interrupted write", dir);
	cr_assert_str_eq(lastlog, want);
	cr_assert_not(present("definitions/gpu1", "." U1 ".tmp"));
	cr_assert_not(present("partitions", "." U1 ".json.tmp"));
	cr_assert_not(present("gpus", ".gpu0.json.tmp"));
	cr_assert_not(present(".", ".format.tmp"));
	for (size_t i = 0; i < sizeof(keep) / sizeof(keep[0]); i++)
		cr_assert(present(keep[i][0], keep[i][1]), "%s kept", keep[i][1]);
	gpup_pool_fini(&p);
}
