// SPDX-License-Identifier: MIT
/* Partition definitions on disk: written, removed, restored, and bad
 * files skipped. */
#include <criterion/criterion.h>
#include <errno.h>
#include <json-c/json.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "gpup/pool.h"

#define GIB (1ull << 30)
#define U1 "11111111-2222-4333-8444-555555555555"
#define U2 "11111111-2222-4333-8444-666666666666"
#define U3 "11111111-2222-4333-8444-777777777777"

static char dir[64];
static int nlogs;

static void count_log(const char *fmt, ...)
{
	(void)fmt;
	nlogs++;
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

static void write_text(const char *uuid, const char *text)
{
	char path[PATH_MAX];
	FILE *f;

	snprintf(path, sizeof(path), "%s/partitions/%s.json", dir, uuid);
	f = fopen(path, "w");
	cr_assert_not_null(f);
	fputs(text, f);
	fclose(f);
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
	snprintf(path, sizeof(path), "%s/partitions/" U1 ".json", dir);
	o = json_object_from_file(path);
	cr_assert_not_null(o);
	cr_assert(json_object_object_get_ex(o, "parent", &v));
	cr_assert_str_eq(json_object_get_string(v), "gpu1");
	cr_assert(json_object_object_get_ex(o, "type", &v));
	cr_assert_str_eq(json_object_get_string(v), "sim-2g-4");
	cr_assert(json_object_object_get_ex(o, "vram_size", &v));
	cr_assert_eq(json_object_get_int64(v), (int64_t)(2 * GIB));
	cr_assert(json_object_object_get_ex(o, "attrs", &v));
	cr_assert(json_object_is_type(v, json_type_array));
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
	write_text(U2, "{ \"uuid\": \"" U2 "\", \"parent\": ");
	/* Overlaps U1's slot. */
	write_text(U3, "{\"uuid\":\"" U3 "\",\"parent\":\"gpu0\",\"type\":\"sim-8g-1\","
		       "\"vram_offset\":0,\"vram_size\":8589934592,\"attrs\":[]}");
	write_text("11111111-2222-4333-8444-888888888888",
		   "{\"uuid\":\"" U1 "\",\"parent\":\"gpu0\",\"type\":\"sim-8g-1\","
		   "\"vram_offset\":0,\"vram_size\":8589934592}");
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
	snprintf(sub, sizeof(sub), "%s/partitions", dir);
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
	snprintf(path, sizeof(path), "%s/partitions/" U2 ".json", dir);
	cr_assert_eq(stat(path, &st), 0, "the definition stays on disk");
	gpup_pool_fini(&q);
}

/* A definition written by a daemon of another format version is skipped:
 * its fields may not mean what this daemon thinks they mean. */
static void mkpartdir(void)
{
	char sub[PATH_MAX];

	snprintf(sub, sizeof(sub), "%s/partitions", dir);
	cr_assert_eq(mkdir(sub, 0700), 0);
}

Test(pool_state, other_format_version_is_skipped)
{
	struct gpup_pool p;

	mkpartdir();
	write_text(U1, "{\"version\":2,\"uuid\":\"" U1 "\",\"parent\":\"gpu0\","
		       "\"type\":\"sim-4g-2\",\"vram_offset\":0,\"vram_size\":4294967296}");
	write_text(U2, "{\"version\":\"1\",\"uuid\":\"" U2 "\",\"parent\":\"gpu1\","
		       "\"type\":\"sim-4g-2\",\"vram_offset\":0,\"vram_size\":4294967296}");
	write_text(U3, "{\"version\":1,\"uuid\":\"" U3 "\",\"parent\":\"gpu1\","
		       "\"type\":\"sim-4g-2\",\"vram_offset\":4294967296,"
		       "\"vram_size\":4294967296}");
	mkpool(&p);
	cr_assert_eq(gpup_pool_restore(&p), 1);
	cr_assert_eq(nlogs, 2);
	cr_assert_null(gpup_pool_find(&p, U1));
	cr_assert_null(gpup_pool_find(&p, U2));
	cr_assert_not_null(gpup_pool_find(&p, U3));
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

	mkpartdir();
	write_text(U1, "{\"version\":1,\"uuid\":\"" U1 "\",\"parent\":\"gpu0\","
		       "\"type\":\"sim-4g-2\",\"vram_offset\":2305843009213693952,"
		       "\"vram_size\":4294967296}");
	write_text(U2, "{\"version\":1,\"uuid\":\"" U2 "\",\"parent\":\"gpu1\","
		       "\"type\":\"sim-8g-1\",\"vram_offset\":2305843000623759360,"
		       "\"vram_size\":8589934592}");
	mkpool(&p);
	cr_assert_eq(gpup_pool_restore(&p), 0);
	cr_assert_eq(nlogs, 2);
	cr_assert_null(p.parts);
	cr_assert_eq(gpup_buddy_free_units(&p.gpus[0].buddy), 16);
	cr_assert_eq(gpup_buddy_free_units(&p.gpus[1].buddy), 16);
	gpup_pool_fini(&p);
}
