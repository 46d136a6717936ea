// SPDX-License-Identifier: MIT
/*
 * The daemon confined (docs/SECURITY.md): `gpup daemon` with its seccomp
 * filters on, as by default, serves a whole client session (DMA, queues
 * on both engines, kernels, interrupts, a second client refused, the
 * watchdog's reset of a hung queue) and stops cleanly, its engine and
 * client threads under a filter and its main thread not; --no-seccomp
 * leaves them all free; and `--user nobody` (as root) drops root once
 * set up, with create, a client session and destroy still working, and
 * refuses an unknown user, and a directory that is not the daemon's own.
 */
#include <criterion/criterion.h>
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "gpup/base/base.h"
#include "gpup/ctl/ctl.h"
#include "gpup/drv/drv.h"
#include "gpup/jail/jail.h"
#include "gpup/pool/pool.h"
#include "tests/daemonlib.h"
#include "tests/testlib.h"
#include "uapi/gpup_ctl.h"
#include "vfu/vfu.h"

static struct dl_daemon dmn;

static void teardown(void)
{
	cr_assert_eq(dl_teardown(&dmn), 0);
}

TestSuite(daemon_jail, .fini = teardown, .timeout = 60);

/* One sim GPU (compute + copy engine); more arguments after these. */
static void start(const char *dir, const char *a0, const char *a1)
{
	const char *args[] = { "--sim-gpus", "1", "--vram", "256M", a0, a1, NULL };
	struct dl_opts o = { .dir = dir, .name = "gpup-jail", .args = args, .log = true };

	cr_assert_not_null(getenv("GPUP_BIN"), "GPUP_BIN must name the gpup binary");
	cr_assert_eq(dl_start(&dmn, &o), 0, "the daemon did not come up; see %s", dmn.log);
}

/* Threads of the daemon whose Seccomp mode is 2 (filtered), and whether
 * the main thread (its pid) is free of any. */
static unsigned int confined_threads(bool *main_free)
{
	char path[PATH_MAX], line[256];
	unsigned int n = 0;
	struct dirent *e;
	DIR *d;

	snprintf(path, sizeof(path), "/proc/%d/task", (int)dmn.pid);
	d = opendir(path);
	cr_assert_not_null(d);
	while ((e = readdir(d))) {
		FILE *f;

		if (e->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "/proc/%d/task/%s/status", (int)dmn.pid, e->d_name);
		if (!(f = fopen(path, "r")))
			continue; /* gone meanwhile */
		while (fgets(line, sizeof(line), f)) {
			if (strncmp(line, "Seccomp:", 8))
				continue;
			if (atoi(line + 8) == 2)
				n++;
			else if (atoi(e->d_name) == dmn.pid)
				*main_free = true;
		}
		fclose(f);
	}
	closedir(d);
	return n;
}

/* Wait (up to 2 s) for exactly want confined threads. */
static void expect_confined(unsigned int want)
{
	bool main_free = false;
	unsigned int n = 0;

	for (int i = 0; i < 200 && (n = confined_threads(&main_free)) != want; i++)
		usleep(10000);
	cr_assert_eq(n, want, "%u threads under a filter, wanted %u", n, want);
	cr_assert(main_free, "the main thread has no filter");
}

static bool log_says(const char *what)
{
	char buf[16384];
	FILE *f = fopen(dmn.log, "r");
	size_t n = f ? fread(buf, 1, sizeof(buf) - 1, f) : 0;

	if (f)
		fclose(f);
	buf[n] = '\0';
	return strstr(buf, what) != NULL;
}

static void create(char *uuid)
{
	json_object *req = gpup_ctl_request(GPUP_CTL_M_CREATE), *rep = NULL;

	json_object_object_add(req, GPUP_CTL_F_GPU, json_object_new_string("gpu0"));
	json_object_object_add(req, GPUP_CTL_F_TYPE, json_object_new_string("sim-64m-4"));
	cr_assert_eq(gpup_ctl_call(dmn.run_dir, req, &rep), 0);
	json_object_put(req);
	cr_assert_str_eq(gpup_ctl_str(rep, GPUP_CTL_F_ERROR, "none"), "none");
	snprintf(uuid, GPUP_UUID_STRLEN + 1, "%s", gpup_ctl_str(rep, GPUP_CTL_F_UUID, ""));
	json_object_put(rep);
}

/* Once the daemon has seen the last client go (EBUSY until then). */
static void destroy(const char *uuid)
{
	json_object *req = gpup_ctl_request(GPUP_CTL_M_DESTROY), *rep = NULL;

	json_object_object_add(req, GPUP_CTL_F_UUID, json_object_new_string(uuid));
	for (int i = 0; i < 200; i++) {
		json_object_put(rep);
		rep = NULL;
		cr_assert_eq(gpup_ctl_call(dmn.run_dir, req, &rep), 0);
		if (strcmp(gpup_ctl_str(rep, GPUP_CTL_F_CODE, ""), "EBUSY"))
			break;
		usleep(10000);
	}
	json_object_put(req);
	cr_assert_str_eq(gpup_ctl_str(rep, GPUP_CTL_F_ERROR, "none"), "none");
	json_object_put(rep);
}

static struct vfu_client *attach(const char *uuid, int *err)
{
	char path[PATH_MAX];

	snprintf(path, sizeof(path), "%s/%s.sock", dmn.run_dir, uuid);
	*err = 0;
	return vfu_client_connect(path, err);
}

/* A client's work on both engines: data in by COPY, SAXPY, a FILL, data
 * out, every fence's interrupt; checked bit for bit. */
static void session(struct gpup_vg *g)
{
	const uint64_t n = 4096, bytes = n * 4;
	float a = 2.5f, *x = (float *)(g->ram + GPUP_VG_DATA_OFF), *y = x + n, *out = y + n;
	uint32_t abits;
	union gpup_cmd c[2];

	memcpy(&abits, &a, 4);
	cr_assert_eq(gpup_vg_queue_setup(g, 0, GPUP_ENGINE_COMPUTE), 0);
	cr_assert_eq(gpup_vg_queue_setup(g, 1, GPUP_ENGINE_COPY), 0);
	for (uint64_t i = 0; i < n; i++) {
		x[i] = (float)i * 0.5f;
		y[i] = 1.0f;
	}
	c[0] = gpup_cmd_copy(GPUP_SPACE_IOVA, gpup_vg_iova(GPUP_VG_DATA_OFF), GPUP_SPACE_VRAM, 0,
			    2 * bytes);
	cr_assert_eq(gpup_vg_submit(g, 1, c, 1), 0);
	cr_assert_eq(gpup_vg_fence_wait(g, 1, 10000, NULL), 0);
	c[0] = gpup_cmd_kernel(GPUP_KERNEL_SAXPY, (uint64_t[6]){ n, abits, 0, bytes }, 6);
	c[1] = gpup_cmd_fill(GPUP_SPACE_VRAM, 2 * bytes, 64, 0x5a5a5a5a);
	cr_assert_eq(gpup_vg_submit(g, 0, c, 2), 0);
	cr_assert_eq(gpup_vg_fence_wait(g, 0, 10000, NULL), 0);
	c[0] = gpup_cmd_copy(GPUP_SPACE_VRAM, bytes, GPUP_SPACE_IOVA,
			    gpup_vg_iova(GPUP_VG_DATA_OFF + 2 * bytes), bytes + 64);
	cr_assert_eq(gpup_vg_submit(g, 1, c, 1), 0);
	cr_assert_eq(gpup_vg_fence_wait(g, 1, 10000, NULL), 0);
	for (uint64_t i = 0; i < n; i++) {
		volatile float p = a * x[i];
		float r = p + 1.0f;

		cr_assert_eq(memcmp(&r, &out[i], 4), 0, "element %llu", (unsigned long long)i);
	}
	cr_assert_eq(((uint32_t *)(out + n))[15], 0x5a5a5a5a);
}

/* Spin the compute queue for ever: the watchdog (50 ms) faults it and its
 * reset thread, started by the engine thread under its filter, resets the
 * partition; then it computes again. */
static void hang_and_recover(struct gpup_vg *g)
{
	union gpup_cmd spin = gpup_cmd_kernel(GPUP_KERNEL_SPIN, (uint64_t[6]){ UINT64_MAX }, 1);
	uint32_t ctl = 1;

	cr_assert_eq(gpup_vg_submit(g, 0, &spin, 1), 0);
	for (int i = 0; i < 500 && ctl; i++) {
		usleep(10000);
		cr_assert_eq(gpup_vg_reg_read(g, GPUP_REG_CONTROL, &ctl), 0);
	}
	cr_assert_eq(ctl, 0, "the watchdog reset the partition");
	cr_assert_eq(gpup_vg_reg_write(g, GPUP_REG_INTR_STATUS, GPUP_INTR_FAULT), 0);
	cr_assert_eq(gpup_vg_reg_write(g, GPUP_REG_CONTROL, GPUP_CTRL_ENABLE), 0);
	session(g);
}

Test(daemon_jail, filters_on_by_default_and_a_whole_session_works)
{
	char uuid[GPUP_UUID_STRLEN + 1], out[4096];
	struct vfu_client *cl, *second;
	struct gpup_vg g;
	int err;

	start(NULL, NULL, NULL);
	cr_assert(log_says("seccomp filters on"), "see %s", dmn.log);
	expect_confined(2); /* the compute and the copy engine */
	cr_assert_eq(tl_gpup(dmn.dir, out, sizeof(out),
			     "sched --gpu gpu0 --policy weighted --watchdog 50"), 0, "%s", out);
	create(uuid);
	cl = attach(uuid, &err);
	cr_assert_not_null(cl, "connect: %s", strerror(-err));
	cr_assert_eq(gpup_vg_open(&g, cl, 4 << 20), 0);
	expect_confined(3); /* and the client's */
	session(&g);
	second = attach(uuid, &err);
	cr_assert_null(second, "a second client is refused, by a confined thread too");
	cr_assert_eq(err, -EBUSY);
	hang_and_recover(&g);
	gpup_vg_close(&g);
	vfu_client_close(cl);
	destroy(uuid);
	cr_assert_eq(dl_stop(&dmn), 0, "a clean stop, no SIGSYS; see %s", dmn.log);
}

Test(daemon_jail, no_seccomp_confines_nothing)
{
	char uuid[GPUP_UUID_STRLEN + 1];
	struct vfu_client *cl;
	struct gpup_vg g;
	int err;

	start(NULL, "--no-seccomp", NULL);
	cr_assert(log_says("seccomp filters off"), "see %s", dmn.log);
	create(uuid);
	cl = attach(uuid, &err);
	cr_assert_not_null(cl, "connect: %s", strerror(-err));
	cr_assert_eq(gpup_vg_open(&g, cl, 4 << 20), 0);
	session(&g);
	expect_confined(0);
	gpup_vg_close(&g);
	vfu_client_close(cl);
	cr_assert_eq(dl_stop(&dmn), 0);
}

/* ---- --user ---- */

static void status_ids(const char *key, unsigned int *ids)
{
	char path[64], line[256];
	bool seen = false;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/status", (int)dmn.pid);
	f = fopen(path, "r");
	cr_assert_not_null(f);
	while (fgets(line, sizeof(line), f))
		if (!strncmp(line, key, strlen(key)))
			seen = sscanf(line + strlen(key), "%u %u %u %u", &ids[0], &ids[1], &ids[2],
				      &ids[3]) == 4;
	fclose(f);
	cr_assert(seen, "%s in %s", key, path);
}

static void expect_owner(const char *path, uid_t uid)
{
	struct stat st;

	cr_assert_eq(lstat(path, &st), 0, "%s: %s", path, strerror(errno));
	cr_assert_eq(st.st_uid, uid, "%s belongs to uid %u", path, (unsigned int)st.st_uid);
}

Test(daemon_jail, user_drops_root_once_set_up)
{
	char dir[sizeof(dmn.dir)], path[PATH_MAX], uuid[GPUP_UUID_STRLEN + 1];
	unsigned int ids[4];
	struct vfu_client *cl;
	struct gpup_vg g;
	uid_t uid;
	gid_t gid;
	int err;

	if (geteuid() != 0)
		cr_skip_test("--user needs root");
	if (gpup_jail_user("nobody", &uid, &gid))
		cr_skip_test("no user named nobody");
	/* The user must get through the directory above run/ and state/. */
	snprintf(dir, sizeof(dir), "%s/gpup-user-XXXXXX", getenv("TMPDIR") ?: "/tmp");
	cr_assert_not_null(mkdtemp(dir));
	cr_assert_eq(chmod(dir, 0711), 0);
	start(dir, "--user", "nobody");
	cr_assert(log_says("running as nobody"), "see %s", dmn.log);
	status_ids("Uid:", ids);
	for (int i = 0; i < 4; i++)
		cr_assert_eq(ids[i], uid, "Uid field %d: %u", i, ids[i]);
	status_ids("Gid:", ids);
	for (int i = 0; i < 4; i++)
		cr_assert_eq(ids[i], gid, "Gid field %d: %u", i, ids[i]);
	expect_owner(dmn.run_dir, uid);
	expect_owner(dmn.state_dir, uid);
	snprintf(path, sizeof(path), "%s/gpup.sock", dmn.run_dir);
	expect_owner(path, uid);
	create(uuid);
	snprintf(path, sizeof(path), "%s/definitions/gpu0/%s", dmn.state_dir, uuid);
	expect_owner(path, uid);
	snprintf(path, sizeof(path), "%s/%s.sock", dmn.run_dir, uuid);
	expect_owner(path, uid);
	cl = attach(uuid, &err);
	cr_assert_not_null(cl, "connect: %s", strerror(-err));
	cr_assert_eq(gpup_vg_open(&g, cl, 4 << 20), 0);
	session(&g);
	gpup_vg_close(&g);
	vfu_client_close(cl);
	destroy(uuid);
	snprintf(path, sizeof(path), "%s/definitions/gpu0/%s", dmn.state_dir, uuid);
	cr_assert_eq(access(path, F_OK), -1, "the definition is gone");
	cr_assert_eq(dl_stop(&dmn), 0, "see %s", dmn.log);
	snprintf(path, sizeof(path), "%s/gpup.sock", dmn.run_dir);
	cr_assert_eq(access(path, F_OK), -1, "the control socket is removed as nobody too");
}

Test(daemon_jail, user_refused_with_one_line)
{
	char *dir = dmn.dir, out[4096]; /* removed by teardown */

	snprintf(dir, sizeof(dmn.dir), "%s/gpup-user-XXXXXX", getenv("TMPDIR") ?: "/tmp");
	cr_assert_not_null(mkdtemp(dir));
	cr_assert_eq(tl_gpup(dir, out, sizeof(out), "daemon --foreground --user no-such-user-gpup"),
		     GPUP_EXIT_USAGE, "%s", out);
	cr_assert(strstr(out, geteuid() ? "needs root" : "no user named 'no-such-user-gpup'"),
		  "%s", out);
	cr_assert_eq(strchr(out, '\n'), out + strlen(out) - 1, "one line: %s", out);
	cr_assert_eq(tl_gpup(dir, out, sizeof(out), "daemon --help"), 0);
	cr_assert(strstr(out, "--user USER") && strstr(out, "--no-seccomp"), "%s", out);
}

Test(daemon_jail, user_refuses_a_directory_not_its_own)
{
	const char *args[] = { "--sim-gpus", "1", "--vram", "256M", "--user", "nobody", NULL };
	char *dir = dmn.dir, path[PATH_MAX]; /* removed by teardown */
	struct dl_opts o = { .dir = dir, .args = args, .log = true };
	struct stat st;
	uid_t uid;
	gid_t gid;

	if (geteuid() != 0)
		cr_skip_test("--user needs root");
	if (gpup_jail_user("nobody", &uid, &gid))
		cr_skip_test("no user named nobody");
	snprintf(dir, sizeof(dmn.dir), "%s/gpup-user-XXXXXX", getenv("TMPDIR") ?: "/tmp");
	cr_assert_not_null(mkdtemp(dir));
	cr_assert_eq(chmod(dir, 0711), 0);
	/* A run directory others may read, as /run or /var/lib are. */
	snprintf(path, sizeof(path), "%s/run", dir);
	cr_assert_eq(mkdir(path, 0755), 0);
	cr_assert_eq(chmod(path, 0755), 0);
	cr_assert_eq(dl_start(&dmn, &o), -1, "the daemon must not start");
	cr_assert(log_says("is not a directory of the daemon's own"), "see %s", dmn.log);
	cr_assert_eq(stat(path, &st), 0);
	cr_assert_eq(st.st_uid, 0, "the directory stays root's");
}
