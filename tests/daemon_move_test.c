// SPDX-License-Identifier: MIT
/*
 * `gpup move` through the daemon, as an operator runs it, with the
 * partition's client working: a long queue of SAXPY launches moved
 * between two GPUs and back finishes with every y exact; the client's
 * doorbell and interrupt eventfds, its BAR2 mapping (written before and
 * after the moves, read by the new GPU's engines) and its connection keep
 * working.  GPU generations: a partition masked to gen1 moves between
 * gen1 and gen2 and faults RENDER everywhere; one exposing gen2's set is
 * refused by a gen1 GPU before anything stops, and checkpoints follow the
 * same rule.  A refused move and a destination failing at each step
 * (backend faults injected through the daemon's test-only fault method,
 * a definition that cannot be saved) leave the partition running where
 * it was, its definition and the pool as they were.  A restart serves a
 * moved partition on its new GPU.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "gpup/ctl/ctl.h"
#include "gpup/drv/drv.h"
#include "gpup/gpu/gpu.h"
#include "gpup/pool/pool.h"
#include "tests/daemonlib.h"
#include "tests/testlib.h"
#include "uapi/gpup_ctl.h"
#include "uapi/gpup_vgpu.h"
#include "vfu/vfu.h"

/* gpu0 is a gen1, gpu1 and gpu2 are gen2. */
static const char *const daemon_args[] = { "--sim-gpus", "1:gen1,2:gen2", "--vram", "256M",
					   NULL };
static struct dl_daemon dmn;

static void start_daemon(void)
{
	struct dl_opts o = { .dir = dmn.dir[0] ? dmn.dir : NULL, .name = "gpup-move",
			     .args = daemon_args, .log = true };

	cr_assert_not_null(getenv("GPUP_BIN"), "GPUP_BIN must name the gpup binary");
	setenv("GPUP_TEST_FAULTS", "1", 1);
	cr_assert_eq(dl_start(&dmn, &o), 0, "the daemon did not come up; see %s", dmn.log);
}

static void setup(void)
{
	start_daemon();
}

static void teardown(void)
{
	cr_assert_eq(dl_teardown(&dmn), 0);
}

TestSuite(daemon_move, .init = setup, .fini = teardown, .timeout = 180);

static void create(const char *gpu, const char *compat, char *uuid)
{
	char args[256];

	snprintf(args, sizeof(args), "create --gpu %s --type sim-64m-4%s%s", gpu,
		 compat ? " --compat " : "", compat ? compat : "");
	cr_assert_eq(tl_gpup(dmn.dir, uuid, GPUP_UUID_STRLEN + 2, args), 0, "%s", uuid);
	uuid[GPUP_UUID_STRLEN] = '\0';
}

/* `gpup move UUID --to-gpu GPU`: its status, what it printed in out. */
static int move(const char *uuid, const char *gpu, char *out, size_t len)
{
	char args[256];

	snprintf(args, sizeof(args), "move %s --to-gpu %s", uuid, gpu);
	return tl_gpup(dmn.dir, out, len, args);
}

static json_object *call(json_object *req)
{
	json_object *r = NULL;

	cr_assert_eq(gpup_ctl_call(dmn.run_dir, req, &r), 0);
	json_object_put(req);
	cr_assert(json_object_get_boolean(json_object_object_get(r, GPUP_CTL_F_OK)), "%s",
		  gpup_ctl_str(r, GPUP_CTL_F_ERROR, "?"));
	return r;
}

/* The daemon's gpu fails op with err from now on ("none" clears). */
static void fault(const char *gpu, const char *op, int err)
{
	json_object *req = gpup_ctl_request(GPUP_CTL_M_FAULT);

	json_object_object_add(req, GPUP_CTL_F_GPU, json_object_new_string(gpu));
	json_object_object_add(req, GPUP_CTL_F_OP, json_object_new_string(op));
	json_object_object_add(req, GPUP_CTL_F_ERRNO, json_object_new_int(err));
	json_object_put(call(req));
}

/* The partition's listing: its GPU into gpu, its offset returned. */
static int64_t where(const char *uuid, char *gpu)
{
	json_object *r = call(gpup_ctl_request(GPUP_CTL_M_LIST)), *a = NULL;
	int64_t off = -1;

	json_object_object_get_ex(r, GPUP_CTL_F_PARTITIONS, &a);
	for (size_t i = 0; a && i < json_object_array_length(a); i++) {
		json_object *p = json_object_array_get_idx(a, i);

		if (strcmp(gpup_ctl_str(p, GPUP_CTL_F_UUID, ""), uuid))
			continue;
		snprintf(gpu, 16, "%s", gpup_ctl_str(p, GPUP_CTL_F_GPU, "?"));
		off = gpup_ctl_int(p, GPUP_CTL_F_VRAM_OFFSET, -1);
	}
	json_object_put(r);
	cr_assert_geq(off, 0, "%s is not listed", uuid);
	return off;
}

static int64_t vram_free(const char *gpu)
{
	json_object *r = call(gpup_ctl_request(GPUP_CTL_M_GPUS)), *a = NULL;
	int64_t v = -1;

	json_object_object_get_ex(r, GPUP_CTL_F_GPUS, &a);
	for (size_t i = 0; a && i < json_object_array_length(a); i++)
		if (!strcmp(gpup_ctl_str(json_object_array_get_idx(a, i), GPUP_CTL_F_NAME, ""), gpu))
			v = gpup_ctl_int(json_object_array_get_idx(a, i), GPUP_CTL_F_VRAM_FREE, -1);
	json_object_put(r);
	return v;
}

/* Its definition file, which must be one, under its GPU: "gpuN: TEXT". */
static void definition(const char *uuid, char *buf, size_t len)
{
	char path[PATH_MAX], text[1024];
	int n = snprintf(buf, len, "%s", "");
	int found = 0;

	for (unsigned int i = 0; i < 4; i++) {
		snprintf(path, sizeof(path), "%s/definitions/gpu%u/%s", dmn.state_dir, i, uuid);
		if (access(path, F_OK))
			continue;
		tl_slurp(path, text, sizeof(text));
		n += snprintf(buf + n, len - (size_t)n, "gpu%u: %s", i, text);
		found++;
	}
	cr_assert_eq(found, 1, "%d definitions of %s", found, uuid);
}

/* A client: the driver over its connection, and BAR2 mapped from the fd
 * REGION_INFO gives, as a VMM maps it for its guest. */
struct client {
	struct gpup_vg g;
	uint8_t *bar2;
};

static void attach(const char *uuid, struct client *c)
{
	struct vfio_region_info ri = { .argsz = sizeof(ri) };
	char path[PATH_MAX];
	int err = 0, fd = -1;
	struct vfu_client *vc;

	snprintf(path, sizeof(path), "%s/%s.sock", dmn.run_dir, uuid);
	vc = vfu_client_connect(path, &err);
	cr_assert_not_null(vc, "connect %s: %s", path, strerror(-err));
	cr_assert_eq(gpup_vg_open(&c->g, vc, 8 << 20), 0);
	cr_assert_eq(vfu_client_region_info(vc, VFIO_PCI_BAR2_REGION_INDEX, &ri, &fd), 0);
	cr_assert_geq(fd, 0);
	c->bar2 = mmap(NULL, ri.size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, (off_t)ri.offset);
	cr_assert_neq(c->bar2, MAP_FAILED);
	close(fd);
}

static void detach(struct client *c)
{
	struct vfu_client *vc = c->g.c;

	munmap(c->bar2, c->g.vram_size);
	gpup_vg_close(&c->g);
	vfu_client_close(vc);
}

#define N (4u << 20)            /* floats per vector: 16 MiB */
#define X 0ull
#define Y (16ull << 20)
#define LAUNCHES 96u

static union gpup_cmd saxpy(float a)
{
	uint32_t abits;

	memcpy(&abits, &a, 4);
	return gpup_cmd_kernel(GPUP_KERNEL_SAXPY, (uint64_t[4]){ N, abits, X, Y }, 4);
}

static void fill_bar2(struct client *c, uint64_t off, float v)
{
	for (size_t i = 0; i < N; i++)
		memcpy(c->bar2 + off + 4 * i, &v, 4);
}

/* Every y, through the client's mapping and through the server's
 * REGION_READ, equals want. */
static void check_y(struct client *c, float want, const char *when)
{
	float *y = malloc(4ull * N);

	cr_assert_not_null(y);
	cr_assert_eq(vfu_client_region_read(c->g.c, VFIO_PCI_BAR2_REGION_INDEX, Y, y, 4ull * N), 0);
	for (size_t i = 0; i < N; i++) {
		float m;

		memcpy(&m, c->bar2 + Y + 4 * i, 4);
		cr_assert(y[i] == want && m == want, "%s: y[%zu] = %f (mapped %f), want %f", when, i,
			  (double)y[i], (double)m, (double)want);
	}
	free(y);
}

static void start_work(struct client *c, unsigned int launches)
{
	union gpup_cmd cmds[LAUNCHES];

	fill_bar2(c, X, 1.0f);
	fill_bar2(c, Y, 0.0f);
	cr_assert_eq(gpup_vg_queue_setup(&c->g, 0, GPUP_ENGINE_COMPUTE), 0);
	for (unsigned int i = 0; i < launches; i++)
		cmds[i] = saxpy(2.0f);
	cr_assert_eq(gpup_vg_submit(&c->g, 0, cmds, launches), 0);
}

static uint32_t ci(struct client *c)
{
	uint32_t v = 0;

	cr_assert_eq(gpup_vg_reg_read(&c->g, GPUP_REG_QUEUE(0) + GPUP_Q_CI, &v), 0);
	return v;
}

Test(daemon_move, busy_partition_moves_between_gpus_and_back)
{
	static const char *const hops[] = { "gpu2", "gpu1", "gpu2", "gpu1", "gpu2" };
	char a[64], out[512], gpu[16];
	struct client c;
	unsigned int busy = 0;
	uint32_t fault_code = 0;

	create("gpu1", NULL, a);
	attach(a, &c);
	start_work(&c, LAUNCHES);
	for (size_t i = 0; i < sizeof(hops) / sizeof(hops[0]); i++) {
		busy += ci(&c) != c.g.pi[0];
		cr_assert_eq(move(a, hops[i], out, sizeof(out)), 0, "%s", out);
		cr_log_info("%s", out);
		where(a, gpu);
		cr_assert_str_eq(gpu, hops[i]);
	}
	cr_assert_gt(busy, 0, "no move caught the queue at work");
	/* The fence's interrupt comes on the client's own eventfd, from gpu2. */
	cr_assert_eq(gpup_vg_fence_wait(&c.g, 0, 60000, &fault_code), 0, "fault %u", fault_code);
	check_y(&c, 2.0f * LAUNCHES, "after the moves");

	/* Written through the mapping after the moves, read by gpu2's engine
	 * on a doorbell rung through the same eventfd. */
	fill_bar2(&c, X, 3.0f);
	union gpup_cmd one = saxpy(1.0f);

	cr_assert_eq(gpup_vg_submit(&c.g, 0, &one, 1), 0);
	cr_assert_eq(gpup_vg_fence_wait(&c.g, 0, 10000, &fault_code), 0, "fault %u", fault_code);
	check_y(&c, 2.0f * LAUNCHES + 3.0f, "after a launch on the new GPU");
	char *st = malloc(65536);

	cr_assert_not_null(st);
	cr_assert_eq(tl_gpup(dmn.dir, st, 65536, "stats"), 0);
	cr_assert(strstr(st, "moves: 5"), "%s", st);
	free(st);
	detach(&c);
}

static uint32_t kernels_reg(struct client *c)
{
	uint32_t v = 0;

	cr_assert_eq(gpup_vg_reg_read(&c->g, GPUP_REG_KERNELS, &v), 0);
	return v;
}

/* A RENDER launch: the queue must fault BAD_KERNEL, as for an id that is
 * no kernel at all. */
static void render_faults(struct client *c, unsigned int q)
{
	union gpup_cmd r = gpup_cmd_kernel(GPUP_KERNEL_RENDER, (uint64_t[5]){ 8, 8, 32, 0, 0 }, 5);
	uint32_t code = 0;

	cr_assert_eq(gpup_vg_queue_setup(&c->g, q, GPUP_ENGINE_COMPUTE), 0);
	cr_assert_eq(gpup_vg_submit(&c->g, q, &r, 1), 0);
	/* A fault raises no fence: the wait times out and finds it. */
	cr_assert_eq(gpup_vg_fence_wait(&c->g, q, 300, &code), -EIO);
	cr_assert_eq(code, GPUP_FAULT_BAD_KERNEL);
}

Test(daemon_move, masked_partition_moves_across_generations)
{
	const struct gpup_gpu_gen *g1 = gpup_gpu_gen_find("gen1");
	char a[64], b[64], out[512], gpu[16], before[1024], after[1024], path[PATH_MAX];
	struct client c;

	create("gpu1", "gen1", a);
	attach(a, &c);
	cr_assert_eq(kernels_reg(&c), g1->kernels);
	render_faults(&c, 1);
	start_work(&c, 32);
	cr_assert_eq(move(a, "gpu0", out, sizeof(out)), 0, "%s", out);
	where(a, gpu);
	cr_assert_str_eq(gpu, "gpu0");
	cr_assert_eq(kernels_reg(&c), g1->kernels);
	render_faults(&c, 2);
	cr_assert_eq(move(a, "gpu2", out, sizeof(out)), 0, "%s", out);
	cr_assert_eq(kernels_reg(&c), g1->kernels, "gen2 does not widen a gen1 mask");
	cr_assert_eq(gpup_vg_fence_wait(&c.g, 0, 60000, NULL), 0);
	check_y(&c, 64.0f, "after moves across generations");

	/* Without a mask it exposes gen2's set: gen1 refuses it up front. */
	create("gpu1", NULL, b);
	definition(b, before, sizeof(before));
	cr_assert_neq(move(b, "gpu0", out, sizeof(out)), 0);
	cr_assert(strstr(out, "RENDER"), "the refusal names the missing feature: %s", out);
	cr_assert_eq(strchr(out, '\n'), strrchr(out, '\n'), "one line: %s", out);
	definition(b, after, sizeof(after));
	cr_assert_str_eq(before, after);

	/* Checkpoints follow the same rule: gen2's set does not load into a
	 * gen1 partition, gen1's does. */
	snprintf(path, sizeof(path), "checkpoint --partition %s --to %s/b.gpup", b, dmn.dir);
	cr_assert_eq(tl_gpup(dmn.dir, out, sizeof(out), path), 0, "%s", out);
	detach(&c);
	snprintf(path, sizeof(path), "restore --partition %s --from %s/b.gpup", a, dmn.dir);
	cr_assert_neq(tl_gpup(dmn.dir, out, sizeof(out), path), 0);
	cr_assert(strstr(out, "features"), "%s", out);
	snprintf(path, sizeof(path), "checkpoint --partition %s --to %s/a.gpup", a, dmn.dir);
	cr_assert_eq(tl_gpup(dmn.dir, out, sizeof(out), path), 0, "%s", out);
	snprintf(path, sizeof(path), "restore --partition %s --from %s/a.gpup", b, dmn.dir);
	cr_assert_eq(tl_gpup(dmn.dir, out, sizeof(out), path), 0, "%s", out);
}

/* Refusals before anything stops: no such GPU, the GPU it is on, no room.
 * The definition, the pool and the client's work are untouched. */
Test(daemon_move, refused_moves_leave_everything_untouched)
{
	char a[64], fill[4][64], out[512], gpu[16], before[1024], after[1024];
	int64_t free2, off;
	struct client c;

	create("gpu1", NULL, a);
	for (unsigned int i = 0; i < 4; i++)
		create("gpu2", NULL, fill[i]);
	attach(a, &c);
	start_work(&c, 32);
	definition(a, before, sizeof(before));
	off = where(a, gpu);
	free2 = vram_free("gpu2");
	cr_assert_neq(move(a, "gpu9", out, sizeof(out)), 0);
	cr_assert(strstr(out, "gpu9"), "%s", out);
	cr_assert_neq(move(a, "gpu1", out, sizeof(out)), 0);
	cr_assert(strstr(out, "already"), "%s", out);
	cr_assert_neq(move(a, "gpu2", out, sizeof(out)), 0);
	cr_assert(strstr(out, "room"), "%s", out);
	definition(a, after, sizeof(after));
	cr_assert_str_eq(before, after);
	cr_assert_eq(where(a, gpu), off);
	cr_assert_str_eq(gpu, "gpu1");
	cr_assert_eq(vram_free("gpu2"), free2);
	cr_assert_eq(gpup_vg_fence_wait(&c.g, 0, 60000, NULL), 0);
	check_y(&c, 64.0f, "after refused moves");
	detach(&c);
}

/* A destination that fails at one step: refused, and the partition runs
 * on where it was with its definition, the destination's slot given
 * back; then a move succeeds. */
static void fails_at(const char *op, int err, const char *want)
{
	char a[64], out[512], gpu[16], before[1024], after[1024], tmp[PATH_MAX];
	int64_t free2, off;
	struct client c;

	create("gpu1", NULL, a);
	attach(a, &c);
	start_work(&c, 48);
	definition(a, before, sizeof(before));
	off = where(a, gpu);
	free2 = vram_free("gpu2");
	snprintf(tmp, sizeof(tmp), "%s/definitions/gpu2", dmn.state_dir);
	mkdir(tmp, 0700);
	snprintf(tmp, sizeof(tmp), "%s/definitions/gpu2/.%s.tmp", dmn.state_dir, a);
	if (op)
		fault("gpu2", op, err);
	else
		cr_assert_eq(mkdir(tmp, 0700), 0, "a directory where the new definition goes");
	cr_assert_neq(move(a, "gpu2", out, sizeof(out)), 0);
	cr_log_info("%s", out);
	cr_assert(strstr(out, want), "%s", out);
	if (op)
		fault("gpu2", "none", 0);
	else
		rmdir(tmp);
	definition(a, after, sizeof(after));
	cr_assert_str_eq(before, after);
	cr_assert_eq(where(a, gpu), off);
	cr_assert_str_eq(gpu, "gpu1");
	cr_assert_eq(vram_free("gpu2"), free2);
	cr_assert_eq(gpup_vg_fence_wait(&c.g, 0, 60000, NULL), 0, "the work stopped");
	check_y(&c, 96.0f, "on the source, after a failed move");
	cr_assert_eq(move(a, "gpu2", out, sizeof(out)), 0, "%s", out);
	cr_assert_eq(gpup_vg_fence_wait(&c.g, 0, 10000, NULL), 0);
	detach(&c);
}

Test(daemon_move, definition_cannot_be_saved)
{
	fails_at(NULL, 0, "definition");
}

Test(daemon_move, destination_cannot_adopt_the_vram)
{
	fails_at("vram_adopt", EIO, "VRAM");
}

Test(daemon_move, destination_vram_cannot_be_mapped)
{
	fails_at("vram_map", ENOMEM, "mapped");
}

Test(daemon_move, destination_engines_fail)
{
	fails_at("engine", ENODEV, "engine");
}

Test(daemon_move, restart_serves_it_on_the_new_gpu)
{
	char a[64], b[64], out[512], gpu[16];
	struct client c;
	int64_t off;

	create("gpu1", NULL, a);
	create("gpu1", "gen1", b);
	cr_assert_eq(move(a, "gpu2", out, sizeof(out)), 0, "%s", out);
	cr_assert_eq(move(b, "gpu0", out, sizeof(out)), 0, "%s", out);
	off = where(a, gpu);
	cr_assert_eq(dl_stop(&dmn), 0);
	start_daemon();
	cr_assert_eq(where(a, gpu), off);
	cr_assert_str_eq(gpu, "gpu2");
	where(b, gpu);
	cr_assert_str_eq(gpu, "gpu0");
	cr_assert_eq(tl_gpup(dmn.dir, out, sizeof(out), "list"), 0);
	cr_assert(strstr(out, "gen1"), "list shows the compat: %s", out);
	attach(a, &c);
	start_work(&c, 1);
	cr_assert_eq(gpup_vg_fence_wait(&c.g, 0, 10000, NULL), 0);
	check_y(&c, 2.0f, "served on gpu2 after a restart");
	detach(&c);
	attach(b, &c);
	cr_assert_eq(kernels_reg(&c), gpup_gpu_gen_find("gen1")->kernels);
	detach(&c);
}

Test(daemon_move, fault_method_is_refused_outside_tests)
{
	json_object *req = gpup_ctl_request(GPUP_CTL_M_FAULT), *r = NULL;

	cr_assert_eq(dl_stop(&dmn), 0);
	unsetenv("GPUP_TEST_FAULTS");
	struct dl_opts o = { .dir = dmn.dir, .args = daemon_args, .log = true };

	cr_assert_eq(dl_start(&dmn, &o), 0);
	json_object_object_add(req, GPUP_CTL_F_GPU, json_object_new_string("gpu0"));
	json_object_object_add(req, GPUP_CTL_F_OP, json_object_new_string("engine"));
	cr_assert_eq(gpup_ctl_call(dmn.run_dir, req, &r), 0);
	cr_assert_str_eq(gpup_ctl_str(r, GPUP_CTL_F_CODE, ""), "EPERM");
	json_object_put(req);
	json_object_put(r);
}
