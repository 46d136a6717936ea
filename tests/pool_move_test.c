// SPDX-License-Identifier: MIT
/* The pool's side of moving a partition and of GPU generations: a move's
 * destination checked and its slot reserved before anything stops, then
 * committed or given back; compat masks on create, on disk, and on
 * restore. */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "gpup/gpu/gpu.h"
#include "gpup/pool/pool.h"
#include "tests/testlib.h"

#define GIB (1ull << 30)

static char dir[64];
static struct gpup_pool pool;
static char err[GPUP_POOL_ERR_MAX];

static void quiet(const char *fmt, ...)
{
	(void)fmt;
}

/* gpu0 gen1, gpu1 and gpu2 gen2 of 8 GiB, gpu3 gen2 of 4 GiB. */
static void mkpool(void)
{
	const struct gpup_gpu_gen *g1 = gpup_gpu_gen_find("gen1");

	gpup_pool_init(&pool, dir);
	pool.log = quiet;
	for (unsigned int i = 0; i < 4; i++) {
		char name[8];

		snprintf(name, sizeof(name), "gpu%u", i);
		cr_assert_eq(gpup_pool_add_gpu(&pool, name, "sim", "sim", i == 3 ? 4 * GIB : 8 * GIB,
					       1, 1, NULL), (int)i);
	}
	snprintf(pool.gpus[0].gen, sizeof(pool.gpus[0].gen), "gen1");
	pool.gpus[0].kernels = g1->kernels;
}

static void setup(void)
{
	snprintf(dir, sizeof(dir), "/tmp/gpup-move-XXXXXX");
	cr_assert_not_null(mkdtemp(dir));
	mkpool();
}

static void teardown(void)
{
	char cmd[128];

	gpup_pool_fini(&pool);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	cr_assert_eq(system(cmd), 0);
}

TestSuite(pool_move, .init = setup, .fini = teardown);

static struct gpup_partition *create(const char *gpu, const char *compat)
{
	struct gpup_partition *p;

	cr_assert_eq(gpup_pool_create_compat(&pool, gpu, "sim-2g-4", NULL, compat, &p, err,
					     sizeof(err)), 0, "%s", err);
	return p;
}

Test(pool_move, refusals_reserve_nothing)
{
	struct gpup_partition *p = create("gpu1", NULL);
	uint64_t used[4];
	unsigned int to;
	uint64_t off;

	for (unsigned int i = 0; i < 4; i++)
		used[i] = pool.gpus[i].buddy.used;
	cr_assert_eq(gpup_pool_move_begin(&pool, p, "gpu9", &to, &off, err, sizeof(err)), -ENODEV);
	cr_assert_eq(gpup_pool_move_begin(&pool, p, "gpu1", &to, &off, err, sizeof(err)), -EINVAL);
	cr_assert(strstr(err, "already"), "%s", err);
	cr_assert_eq(gpup_pool_move_begin(&pool, p, "gpu3", &to, &off, err, sizeof(err)), -ENOENT);
	cr_assert(strstr(err, "another size"), "%s", err);
	cr_assert_eq(gpup_pool_move_begin(&pool, p, "gpu0", &to, &off, err, sizeof(err)),
		     -EOPNOTSUPP);
	cr_assert(strstr(err, "RENDER"), "%s", err);
	for (unsigned int i = 0; i < 4; i++)
		create("gpu2", NULL);
	cr_assert_eq(gpup_pool_move_begin(&pool, p, "gpu2", &to, &off, err, sizeof(err)), -ENOSPC);
	cr_assert(strstr(err, "room"), "%s", err);
	for (unsigned int i = 0; i < 2; i++)
		cr_assert_eq(pool.gpus[i].buddy.used, used[i]);
	cr_assert_eq(p->gpu, 1u);
}

Test(pool_move, commit_moves_the_slot_abort_gives_it_back)
{
	struct gpup_partition *p = create("gpu1", "gen1");
	unsigned int to;
	uint64_t off, src_used = pool.gpus[1].buddy.used;

	cr_assert_eq(gpup_pool_move_begin(&pool, p, "gpu0", &to, &off, err, sizeof(err)), 0,
		     "%s", err);
	cr_assert_eq(to, 0u);
	cr_assert_neq(pool.gpus[0].buddy.used, 0, "reserved before anything stops");
	gpup_pool_move_abort(&pool, p, to, off);
	cr_assert_eq(pool.gpus[0].buddy.used, 0);
	cr_assert_eq(pool.gpus[1].buddy.used, src_used);
	cr_assert_eq(gpup_pool_move_begin(&pool, p, "gpu0", &to, &off, err, sizeof(err)), 0);
	gpup_pool_move_commit(&pool, p, to, off);
	cr_assert_eq(pool.gpus[1].buddy.used, 0);
	cr_assert_eq(p->gpu, 0u);
	cr_assert_eq(p->vram_offset, off);
	cr_assert_eq(gpup_pool_part_kernels(&pool, p), gpup_gpu_gen_find("gen1")->kernels);
}

Test(pool_move, compat_on_create)
{
	struct gpup_partition *p;

	cr_assert_eq(gpup_pool_create_compat(&pool, "gpu1", "sim-2g-4", NULL, "gen9", &p, err,
					     sizeof(err)), -EINVAL);
	cr_assert(strstr(err, "gen9"), "%s", err);
	cr_assert_eq(gpup_pool_create_compat(&pool, "gpu0", "sim-2g-4", NULL, "gen2", &p, err,
					     sizeof(err)), -EOPNOTSUPP);
	cr_assert(strstr(err, "RENDER"), "%s", err);
	cr_assert_eq(pool.gpus[0].buddy.used, 0);
	/* Without --gpu only GPUs with the features are candidates, however
	 * full: gpu0 is fuller, and lacks RENDER. */
	create("gpu0", NULL);
	p = create(NULL, "gen2");
	cr_assert_neq(p->gpu, 0u);
	p = create(NULL, "gen1");
	cr_assert_eq(p->gpu, 0u);
	cr_assert_eq(gpup_pool_part_kernels(&pool, create("gpu1", NULL)), GPUP_KERNELS_BUILTIN);
}

Test(pool_move, compat_and_new_place_on_disk)
{
	struct gpup_partition *p = create("gpu1", "gen1");
	char uuid[GPUP_UUID_STRLEN + 1], path[160], text[1024];
	unsigned int to;
	uint64_t off;

	memcpy(uuid, p->uuid, sizeof(uuid));
	cr_assert_eq(gpup_pool_move_begin(&pool, p, "gpu2", &to, &off, err, sizeof(err)), 0);
	cr_assert_eq(gpup_pool_state_write_at(&pool, p, to, off), 0);
	snprintf(path, sizeof(path), "%s/definitions/gpu2/%s", dir, uuid);
	tl_slurp(path, text, sizeof(text));
	cr_assert(strstr(text, "\"compat\":\"gen1\""), "%s", text);
	cr_assert(strstr(text, "\"revision\":\"2\""), "%s", text);
	/* A crash now, before commit removes the old place: the newer wins. */
	snprintf(path, sizeof(path), "%s/definitions/gpu1/%s", dir, uuid);
	cr_assert_eq(access(path, F_OK), 0);
	gpup_pool_fini(&pool);
	mkpool();
	cr_assert_eq(gpup_pool_restore(&pool), 1);
	p = gpup_pool_find(&pool, uuid);
	cr_assert_not_null(p);
	cr_assert_eq(p->gpu, 2u);
	cr_assert_eq(p->vram_offset, off);
	cr_assert_eq(p->revision, 2u);
	cr_assert_str_eq(p->compat, "gen1");
	cr_assert_neq(access(path, F_OK), 0, "the older definition is removed");
}

static bool def_at(const char *gpu, const char *uuid)
{
	char path[160];

	snprintf(path, sizeof(path), "%s/definitions/%s/%s", dir, gpu, uuid);
	return access(path, F_OK) == 0;
}

/* The definition follows a move: commit drops the old place's file,
 * abort the new one's; either way one file is left, and a restart finds
 * the partition where the pool has it. */
Test(pool_move, definition_follows_commit_and_abort)
{
	struct gpup_partition *p = create("gpu1", "gen1"), *q;
	char uuid[GPUP_UUID_STRLEN + 1];
	unsigned int to;
	uint64_t off;

	memcpy(uuid, p->uuid, sizeof(uuid));
	cr_assert_eq(gpup_pool_move_begin(&pool, p, "gpu2", &to, &off, err, sizeof(err)), 0);
	cr_assert_eq(gpup_pool_state_write_at(&pool, p, to, off), 0);
	gpup_pool_move_abort(&pool, p, to, off);
	cr_assert(def_at("gpu1", uuid) && !def_at("gpu2", uuid));
	cr_assert_eq(p->revision, 1u);
	cr_assert_eq(gpup_pool_move_begin(&pool, p, "gpu2", &to, &off, err, sizeof(err)), 0);
	cr_assert_eq(gpup_pool_state_write_at(&pool, p, to, off), 0);
	gpup_pool_move_commit(&pool, p, to, off);
	cr_assert(!def_at("gpu1", uuid) && def_at("gpu2", uuid));
	cr_assert_eq(p->revision, 2u);
	gpup_pool_fini(&pool);
	mkpool();
	cr_assert_eq(gpup_pool_restore(&pool), 1);
	q = gpup_pool_find(&pool, uuid);
	cr_assert(q && q->gpu == 2u && q->vram_offset == off && q->revision == 2u);
}

Test(pool_move, compat_that_cannot_come_back_is_unavailable)
{
	struct gpup_partition *p = create("gpu1", "gen2");
	char uuid[GPUP_UUID_STRLEN + 1], path[160], cmd[400];
	const struct gpup_unavail *u;

	memcpy(uuid, p->uuid, sizeof(uuid));
	gpup_pool_fini(&pool);
	mkpool();
	/* gpu1 is a gen1 now: it cannot honour gen2. */
	snprintf(pool.gpus[1].gen, sizeof(pool.gpus[1].gen), "gen1");
	pool.gpus[1].kernels = gpup_gpu_gen_find("gen1")->kernels;
	cr_assert_eq(gpup_pool_restore(&pool), 0);
	u = gpup_pool_find_unavail(&pool, uuid);
	cr_assert_not_null(u);
	cr_assert(strstr(u->why, "RENDER"), "%s", u->why);
	gpup_pool_fini(&pool);
	mkpool();
	snprintf(path, sizeof(path), "%s/definitions/gpu1/%s", dir, uuid);
	snprintf(cmd, sizeof(cmd), "sed -i 's/\"gen2\"/\"gen7\"/' %s", path);
	cr_assert_eq(system(cmd), 0);
	cr_assert_eq(gpup_pool_restore(&pool), 0);
	u = gpup_pool_find_unavail(&pool, uuid);
	cr_assert_not_null(u);
	cr_assert(strstr(u->why, "gen7"), "%s", u->why);
}
