// SPDX-License-Identifier: MIT
/* The pool: types, availability, create/destroy and their errors. */
#include <criterion/criterion.h>
#include <errno.h>
#include <string.h>

#include "gpup/pool/pool.h"

#define GIB (1ull << 30)

static struct gpup_pool pool;

static void setup(void)
{
	gpup_pool_init(&pool, NULL);
	cr_assert_eq(gpup_pool_add_gpu(&pool, "gpu0", "sim", "sim", 8 * GIB, 1, 1, NULL), 0);
	cr_assert_eq(gpup_pool_add_gpu(&pool, "gpu1", "sim", "sim", 16 * GIB, 1, 1, NULL), 1);
}

static void teardown(void)
{
	gpup_pool_fini(&pool);
}

TestSuite(pool, .init = setup, .fini = teardown);

Test(pool, type_names_and_counts)
{
	static const char *const names[] = { "sim-8g-1", "sim-4g-2", "sim-2g-4",
					     "sim-1g-8", "sim-512m-16" };
	struct gpup_type t[GPUP_POOL_NFRACTIONS];

	cr_assert_eq(gpup_pool_types(&pool, 0, t), 5);
	for (unsigned int i = 0; i < 5; i++) {
		cr_assert_str_eq(t[i].name, names[i]);
		cr_assert_eq(t[i].fraction, 1u << i);
		cr_assert_eq(t[i].vram_size, (8 * GIB) >> i);
		cr_assert_eq(t[i].max_instances, 1u << i);
		cr_assert_eq(t[i].available, 1u << i);
	}
	cr_assert_eq(gpup_pool_types(&pool, 1, t), 5);
	cr_assert_str_eq(t[0].name, "sim-16g-1");
	cr_assert_str_eq(t[4].name, "sim-1g-16");
	cr_assert_eq(gpup_pool_types(&pool, 2, t), 0);
}

Test(pool, available_follows_placement)
{
	struct gpup_partition *a, *b;
	struct gpup_type t;
	char err[GPUP_POOL_ERR_MAX];

	cr_assert_eq(gpup_pool_create(&pool, "gpu0", "sim-4g-2", NULL, &a, err, sizeof(err)), 0);
	cr_assert_eq(a->vram_offset, 0);
	cr_assert_eq(a->vram_size, 4 * GIB);
	cr_assert_eq(gpup_pool_create(&pool, "0", "sim-2g-4", NULL, &b, err, sizeof(err)), 0);
	cr_assert_eq(b->vram_offset, 4 * GIB);
	cr_assert_eq(gpup_pool_find_type(&pool, 0, "sim-4g-2", &t), 0);
	cr_assert_eq(t.available, 0);
	cr_assert_eq(gpup_pool_find_type(&pool, 0, "sim-2g-4", &t), 0);
	cr_assert_eq(t.available, 1);
	cr_assert_eq(gpup_pool_find_type(&pool, 0, "sim-512m-16", &t), 0);
	cr_assert_eq(t.available, 4);
	cr_assert_eq(gpup_pool_destroy(&pool, a->uuid, err, sizeof(err)), 0);
	cr_assert_eq(gpup_pool_find_type(&pool, 0, "sim-4g-2", &t), 0);
	cr_assert_eq(t.available, 1);
	cr_assert_eq(gpup_pool_find_type(&pool, 0, "sim-8g-1", &t), 0);
	cr_assert_eq(t.available, 0);
}

Test(pool, errors_change_nothing)
{
	struct gpup_partition *a, *b = NULL;
	char err[GPUP_POOL_ERR_MAX];

	cr_assert_eq(gpup_pool_create(&pool, "gpu7", "sim-8g-1", NULL, &b, err, sizeof(err)),
		     -ENODEV);
	cr_assert_str_eq(err, "no GPU 'gpu7'; see 'gpup gpus'");
	cr_assert_eq(gpup_pool_create(&pool, "gpu0", "sim-16g-1", NULL, &b, err, sizeof(err)),
		     -ENOENT);
	cr_assert_str_eq(err, "gpu0 has no type 'sim-16g-1'; see 'gpup types'");
	cr_assert_eq(gpup_pool_create(&pool, "gpu0", "sim-8g-1", "not-a-uuid", &b, err,
				      sizeof(err)), -EINVAL);
	cr_assert_eq(gpup_pool_create(&pool, "gpu0", "sim-8g-1",
				      "0C5E2D5B-5D2A-4C1E-9F00-000000000001", &a, err,
				      sizeof(err)), 0);
	cr_assert_str_eq(a->uuid, "0c5e2d5b-5d2a-4c1e-9f00-000000000001");
	cr_assert_eq(gpup_pool_create(&pool, "gpu1", "sim-1g-16",
				      "0c5e2d5b-5d2a-4c1e-9f00-000000000001", &b, err,
				      sizeof(err)), -EEXIST);
	cr_assert_str_eq(err, "UUID 0c5e2d5b-5d2a-4c1e-9f00-000000000001 is already in use");
	cr_assert_eq(gpup_pool_create(&pool, "gpu0", "sim-512m-16", NULL, &b, err, sizeof(err)),
		     -ENOSPC);
	cr_assert_str_eq(err, "gpu0 has no room for a 'sim-512m-16' partition "
			      "(largest free slot: 0 B)");
	cr_assert_null(b);
	cr_assert_eq(pool.parts, a);
	cr_assert_null(a->next);
	cr_assert_eq(gpup_pool_destroy(&pool, "0c5e2d5b-5d2a-4c1e-9f00-000000000002", err,
				       sizeof(err)), -ENOENT);
	cr_assert_eq(gpup_buddy_free_units(&pool.gpus[0].buddy), 0);
	cr_assert_eq(gpup_buddy_free_units(&pool.gpus[1].buddy), 16);
}

Test(pool, no_gpu_given_fills_the_fuller_gpu)
{
	struct gpup_partition *a, *b, *c;
	char err[GPUP_POOL_ERR_MAX];

	cr_assert_eq(gpup_pool_add_gpu(&pool, "gpu2", "sim", "sim", 8 * GIB, 1, 1, NULL), 2);
	cr_assert_eq(gpup_pool_create(&pool, "gpu2", "sim-2g-4", NULL, &a, err, sizeof(err)), 0);
	cr_assert_eq(gpup_pool_create(&pool, NULL, "sim-512m-16", NULL, &b, err, sizeof(err)), 0);
	cr_assert_eq(b->gpu, 2, "the small one joins the busy GPU");
	cr_assert_eq(gpup_pool_create(&pool, NULL, "sim-8g-1", NULL, &c, err, sizeof(err)), 0);
	cr_assert_eq(c->gpu, 0, "and gpu0 stayed whole for a full-GPU type");
	cr_assert_eq(gpup_pool_create(&pool, NULL, "sim-8g-1", NULL, &c, err, sizeof(err)),
		     -ENOSPC);
	cr_assert_str_eq(err, "no GPU has room for a 'sim-8g-1' partition");
	cr_assert_eq(gpup_pool_create(&pool, NULL, "gpu-x", NULL, &c, err, sizeof(err)), -ENOENT);
	cr_assert_str_eq(err, "no GPU offers type 'gpu-x'; see 'gpup types'");
}

Test(pool, uuids)
{
	char u[GPUP_UUID_STRLEN + 1], v[GPUP_UUID_STRLEN + 1];

	cr_assert_eq(gpup_uuid_generate(u), 0);
	cr_assert_eq(gpup_uuid_parse(u, v), 0);
	cr_assert_str_eq(u, v);
	cr_assert_eq(u[14], '4');
	cr_assert_eq(gpup_uuid_parse("0c5e2d5b-5d2a-4c1e-9f00-00000000000", v), -EINVAL);
	cr_assert_eq(gpup_uuid_parse("0c5e2d5b-5d2a-4c1e-9f00-00000000000g", v), -EINVAL);
	cr_assert_eq(gpup_uuid_parse("0c5e2d5b05d2a-4c1e-9f00-000000000001", v), -EINVAL);
}

Test(pool, add_gpu_checks)
{
	cr_assert_eq(gpup_pool_add_gpu(&pool, "gpu2", "sim", "sim", 1000, 1, 1, NULL), -EINVAL);
	cr_assert_eq(gpup_pool_find_gpu(&pool, "gpu1"), 1);
	cr_assert_eq(gpup_pool_find_gpu(&pool, "1"), 1);
	cr_assert_eq(gpup_pool_find_gpu(&pool, "2"), -ENODEV);
	cr_assert_eq(gpup_pool_find_gpu(&pool, "1x"), -ENODEV);
}
