// SPDX-License-Identifier: MIT
/* A state directory of the previous layout (tests/fixtures/state-v1, as
 * the release before definitions wrote it: partitions/UUID.json) upgraded
 * in place, also with the process killed before each step of the upgrade;
 * the format marker; files that cannot be converted; two definitions of
 * one UUID; define, persist and undefine in the pool. */
#include <criterion/criterion.h>
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "gpup/pool/pool.h"
#include "tests/testlib.h"

#define MIB (1ull << 20)
#define GIB (1ull << 30)
#define U1 "11111111-2222-4333-8444-000000000001"
#define U2 "11111111-2222-4333-8444-000000000002"
#define U3 "11111111-2222-4333-8444-000000000003"
#define FIXTURE "tests/fixtures/state-v1"

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

static void sh(const char *fmt, ...)
{
	char cmd[PATH_MAX * 2];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(cmd, sizeof(cmd), fmt, ap);
	va_end(ap);
	cr_assert_eq(system(cmd), 0, "%s", cmd);
}

static bool present(const char *rel)
{
	char path[PATH_MAX];

	snprintf(path, sizeof(path), "%s/%s", dir, rel);
	return access(path, F_OK) == 0;
}

static void setup(void)
{
	snprintf(dir, sizeof(dir), "/tmp/gpup-upgrade-XXXXXX");
	cr_assert_not_null(mkdtemp(dir));
	nlogs = 0;
}

static void teardown(void)
{
	sh("rm -rf %s", dir);
}

TestSuite(state_upgrade, .init = setup, .fini = teardown);

/* The pool the fixture was written by: three 1 GiB sim GPUs. */
static void mkpool(struct gpup_pool *p)
{
	gpup_pool_init(p, dir);
	p->log = count_log;
	for (unsigned int i = 0; i < 3; i++) {
		char name[8];

		snprintf(name, sizeof(name), "gpu%u", i);
		cr_assert_eq(gpup_pool_add_gpu(p, name, "sim", "sim", GIB, 1, 1, NULL), (int)i);
	}
}

static void copy_fixture(void)
{
	sh("cp -r " FIXTURE "/partitions " FIXTURE "/gpus %s/", dir);
}

/* What the fixture defines, as a restore must bring it back. */
static void assert_fixture_restored(struct gpup_pool *p)
{
	struct gpup_partition *a = gpup_pool_find(p, U1), *b = gpup_pool_find(p, U2),
			      *c = gpup_pool_find(p, U3);

	cr_assert(a && b && c);
	cr_assert(a->gpu == 0 && a->vram_offset == 0 && a->vram_size == 512 * MIB);
	cr_assert_str_eq(a->type, "sim-512m-2");
	cr_assert(b->gpu == 1 && b->vram_size == 256 * MIB && !strcmp(b->compat, "gen1"));
	cr_assert(b->sched_set && b->sched.weight == 4 && b->sched.cap_ppm == 500000 &&
		  b->sched.klass == SCHED_CLASS_INTERACTIVE && b->sched.fps_limit == 60 &&
		  b->sched.budget_us == 2000);
	cr_assert(c->gpu == 2 && c->vram_size == 64 * MIB && !c->sched_set && !c->compat[0]);
	for (struct gpup_partition *q = p->parts; q; q = q->next)
		cr_assert(q->defined && q->start_auto && q->revision == 1, "%s", q->uuid);
}

Test(state_upgrade, the_previous_layout_is_converted)
{
	char text[1024], want[1024];
	struct gpup_pool p;
	char err[GPUP_POOL_ERR_MAX] = "";

	copy_fixture();
	mkpool(&p);
	cr_assert_eq(gpup_pool_state_upgrade(&p, err, sizeof(err)), 0, "%s", err);
	snprintf(want, sizeof(want), "state directory %s upgraded to format 2", dir);
	cr_assert_str_eq(lastlog, want);
	cr_assert_eq(nlogs, 1);
	cr_assert_not(present("partitions"), "the old directory is gone");
	snprintf(want, sizeof(want), "%s/format", dir);
	tl_slurp(want, text, sizeof(text));
	cr_assert_str_eq(text, "2\n");
	snprintf(want, sizeof(want), "%s/definitions/gpu2/" U3, dir);
	tl_slurp(want, text, sizeof(text));
	cr_assert_str_eq(text, "{\n  \"mdev_type\":\"sim-64m-16\",\n  \"start\":\"auto\",\n"
			       "  \"attrs\":[\n    {\n      \"vram_offset\":\"0\"\n    },\n"
			       "    {\n      \"vram_size\":\"67108864\"\n    },\n    {\n"
			       "      \"revision\":\"1\"\n    }\n  ]\n}\n");
	cr_assert(present("gpus/gpu1.json"), "GPU settings stay as they were");
	cr_assert_eq(gpup_pool_restore(&p), 3);
	cr_assert_eq(nlogs, 1);
	assert_fixture_restored(&p);
	cr_assert_eq(gpup_pool_state_upgrade(&p, err, sizeof(err)), 0, "a second start: nothing");
	cr_assert_eq(nlogs, 1);
	gpup_pool_fini(&p);
}

static int crash_at, crash_seen;

static void crash_here(const char *what)
{
	(void)what;
	if (++crash_seen == crash_at)
		_exit(42);
}

/* Run the upgrade in a child killed before its n-th step: whether it
 * got there (42) or finished first (0). */
static int upgrade_until(int n)
{
	pid_t pid = fork();
	int st;

	cr_assert_geq(pid, 0);
	if (pid == 0) {
		struct gpup_pool p;
		char err[GPUP_POOL_ERR_MAX];

		mkpool(&p);
		crash_at = n;
		p.crash_point = crash_here;
		_exit(gpup_pool_state_upgrade(&p, err, sizeof(err)) ? 1 : 0);
	}
	cr_assert_eq(waitpid(pid, &st, 0), pid);
	cr_assert(WIFEXITED(st));
	return WEXITSTATUS(st);
}

/* Every partition is defined somewhere: in the old layout, the new, or
 * both. */
static void assert_each_defined_somewhere(int step)
{
	static const char *const gpu[] = { "gpu0", "gpu1", "gpu2" };
	static const char *const uuid[] = { U1, U2, U3 };
	char old[128], def[128];

	for (int i = 0; i < 3; i++) {
		snprintf(old, sizeof(old), "partitions/%s.json", uuid[i]);
		snprintf(def, sizeof(def), "definitions/%s/%s", gpu[i], uuid[i]);
		cr_assert(present(old) || present(def), "step %d: %s is defined nowhere", step,
			  uuid[i]);
	}
}

/* Killed before each step in turn (each file's write and removal, the
 * old directory's removal, the marker), a start after the crash finishes
 * the upgrade and restores exactly what the fixture defines. */
Test(state_upgrade, a_crash_at_any_step_is_finished_by_the_next_start)
{
	int steps = 0;

	for (int n = 1;; n++) {
		struct gpup_pool p;
		char err[GPUP_POOL_ERR_MAX] = "";
		int rc;

		sh("rm -rf %s/partitions %s/gpus %s/definitions %s/format", dir, dir, dir, dir);
		copy_fixture();
		rc = upgrade_until(n);
		cr_assert(rc == 42 || rc == 0, "step %d: exit %d", n, rc);
		if (rc == 0)
			break;
		steps++;
		assert_each_defined_somewhere(n);
		cr_assert_eq(present("format"), n > 8, "step %d: the marker comes last", n);
		mkpool(&p);
		cr_assert_eq(gpup_pool_state_clean(&p), 0, "step %d: no temporaries", n);
		cr_assert_eq(gpup_pool_state_upgrade(&p, err, sizeof(err)), 0, "%s", err);
		cr_assert_eq(gpup_pool_restore(&p), 3, "step %d", n);
		assert_fixture_restored(&p);
		cr_assert_not(present("partitions"), "step %d", n);
		cr_assert(present("format"), "step %d", n);
		gpup_pool_fini(&p);
	}
	cr_assert_eq(steps, 8, "write and remove for each of 3 files, rmdir, marker");
}

Test(state_upgrade, a_newer_or_unreadable_format_is_refused)
{
	char err[GPUP_POOL_ERR_MAX], want[GPUP_POOL_ERR_MAX];
	struct gpup_pool p;

	copy_fixture();
	sh("echo 3 > %s/format", dir);
	mkpool(&p);
	cr_assert_eq(gpup_pool_state_upgrade(&p, err, sizeof(err)), -EPROTONOSUPPORT);
	snprintf(want, sizeof(want), "%s/format: the state directory is of a newer release's "
		 "format; run that release", dir);
	cr_assert_str_eq(err, want);
	cr_assert(present("partitions/" U1 ".json"), "nothing touched");
	sh("echo two > %s/format", dir);
	cr_assert_eq(gpup_pool_state_upgrade(&p, err, sizeof(err)), -EINVAL);
	snprintf(want, sizeof(want), "%s/format is not a format number; fix or remove it", dir);
	cr_assert_str_eq(err, want);
	gpup_pool_fini(&p);
}

/* An old file that cannot be converted stays where it is, logged, its
 * UUID reserved (listed unavailable) until destroy removes it. */
Test(state_upgrade, what_cannot_be_converted_is_kept)
{
	char err[GPUP_POOL_ERR_MAX], want[GPUP_POOL_ERR_MAX];
	struct gpup_partition *part;
	struct gpup_pool p;

	copy_fixture();
	sh("echo '{\"version\":1,\"uuid\":' > %s/partitions/" U2 ".json", dir);
	mkpool(&p);
	cr_assert_eq(gpup_pool_state_upgrade(&p, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(nlogs, 2);
	cr_assert(present("partitions/" U2 ".json") && !present("partitions/" U1 ".json"));
	cr_assert_eq(gpup_pool_restore(&p), 2);
	cr_assert_eq(nlogs, 3);
	snprintf(want, sizeof(want), "skipping partition file %s/partitions/" U2 ".json: not "
		 "converted to this layout", dir);
	cr_assert_str_eq(lastlog, want);
	cr_assert_not_null(gpup_pool_find_unavail(&p, U2));
	cr_assert_eq(gpup_pool_create(&p, "gpu1", "sim-256m-4", U2, &part, err, sizeof(err)),
		     -EEXIST);
	cr_assert_eq(gpup_pool_destroy(&p, U2, err, sizeof(err)), 0, "%s", err);
	cr_assert_not(present("partitions/" U2 ".json"));
	cr_assert_eq(gpup_pool_create(&p, "gpu1", "sim-256m-4", U2, &part, err, sizeof(err)), 0);
	gpup_pool_fini(&p);
}

static void write_def(const char *gpu, const char *uuid, const char *offset,
		      const char *revision)
{
	sh("mkdir -p %s/definitions/%s && printf '%%s' '{\"mdev_type\":\"sim-256m-4\","
	   "\"start\":\"auto\",\"attrs\":[{\"vram_offset\":\"%s\"},"
	   "{\"vram_size\":\"268435456\"},{\"revision\":\"%s\"}]}' > %s/definitions/%s/%s",
	   dir, gpu, offset, revision, dir, gpu, uuid);
}

/* Two files of one UUID: the higher revision is used and the older
 * removed; of equal revisions the first GPU's is used and the other
 * left, logged. */
Test(state_upgrade, two_definitions_of_one_uuid)
{
	struct gpup_pool p;

	write_def("gpu0", U1, "0", "3");
	write_def("gpu1", U1, "0", "4");
	write_def("gpu1", U2, "268435456", "2");
	write_def("gpu2", U2, "0", "2");
	mkpool(&p);
	cr_assert_eq(gpup_pool_restore(&p), 2);
	cr_assert_eq(nlogs, 2);
	cr_assert_eq(gpup_pool_find(&p, U1)->gpu, 1u);
	cr_assert_eq(gpup_pool_find(&p, U1)->revision, 4u);
	cr_assert_not(present("definitions/gpu0/" U1));
	cr_assert_eq(gpup_pool_find(&p, U2)->gpu, 1u);
	cr_assert(present("definitions/gpu2/" U2));
	gpup_pool_fini(&p);
}

/* define: saved (start manual here), slot reserved; persist changes its
 * start; undefine removes the file and leaves the record transient, which
 * writes nothing after. */
Test(state_upgrade, define_persist_undefine)
{
	struct gpup_define def = { .gpu = "gpu1", .type = "sim-256m-4", .uuid = U3,
				   .persist = true, .start_auto = false };
	struct sched_ctx_cfg cfg = { .weight = 2 };
	char err[GPUP_POOL_ERR_MAX], path[PATH_MAX], text[512];
	struct gpup_partition *part;
	struct gpup_pool p, q;

	mkpool(&p);
	cr_assert_eq(gpup_pool_define(&p, &def, &part, err, sizeof(err)), 0, "%s", err);
	snprintf(path, sizeof(path), "%s/definitions/gpu1/" U3, dir);
	tl_slurp(path, text, sizeof(text));
	cr_assert(strstr(text, "\"start\":\"manual\""), "%s", text);
	cr_assert_eq(gpup_pool_persist(&p, part, true, err, sizeof(err)), 0);
	tl_slurp(path, text, sizeof(text));
	cr_assert(strstr(text, "\"start\":\"auto\"") && strstr(text, "\"revision\":\"2\""), "%s",
		  text);
	cr_assert_eq(gpup_pool_undefine(&p, U3, err, sizeof(err)), 0);
	cr_assert_not(present("definitions/gpu1/" U3));
	cr_assert_not(part->defined);
	cr_assert_eq(gpup_pool_undefine(&p, U3, err, sizeof(err)), -ENOENT);
	cr_assert_str_eq(err, "partition " U3 " has no definition (it is transient)");
	cr_assert_eq(gpup_pool_set_sched(&p, part, &cfg), 0);
	cr_assert_not(present("definitions/gpu1/" U3), "a transient partition writes nothing");
	cr_assert_eq(gpup_buddy_free_units(&p.gpus[1].buddy), 12, "its slot is still held");
	def.uuid = U2;
	def.persist = false;
	cr_assert_eq(gpup_pool_define(&p, &def, &part, err, sizeof(err)), 0, "%s", err);
	cr_assert_not(present("definitions/gpu1/" U2));
	gpup_pool_fini(&p);
	mkpool(&q);
	cr_assert_eq(gpup_pool_restore(&q), 0, "transient partitions are gone on restart");
	gpup_pool_fini(&q);
}

/* Malformed entries of an old file's attrs are dropped, the rest carried
 * over; before, an entry that was no object crashed the conversion.
 * Found by fuzz/pool_state_fuzz.c. */
Test(state_upgrade, malformed_old_attrs_are_dropped)
{
	char err[GPUP_POOL_ERR_MAX];
	struct gpup_partition *part;
	struct gpup_pool p;

	sh("mkdir -p %s/partitions && echo '{\"version\":1,\"uuid\":\"" U2 "\",\"parent\":\"gpu1\","
	   "\"type\":\"sim-256m-4\",\"vram_offset\":0,\"vram_size\":268435456,\"compat\":\"gen1\","
	   "\"attrs\":[{\"sched_weight\":\"4\"},7,{\"sched_class\":1},{\"vram_offset\":\"9\"}]}' "
	   "> %s/partitions/" U2 ".json", dir, dir);
	mkpool(&p);
	cr_assert_eq(gpup_pool_state_upgrade(&p, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(gpup_pool_restore(&p), 1);
	part = gpup_pool_find(&p, U2);
	cr_assert(part && part->vram_offset == 0 && part->sched_set && part->sched.weight == 4);
	cr_assert_str_eq(part->compat, "gen1");
	gpup_pool_fini(&p);
}
