// SPDX-License-Identifier: MIT
/*
 * The daemon end to end: `$GPUP_BIN daemon --foreground` with its own run
 * and state directories, partitions created over the control API and
 * driven over their vfio-user sockets by the client library, as a VMM
 * would: guest RAM in a memfd (DMA_MAP), queues set up with BAR0
 * REGION_WRITEs, packets and producer index written into the memfd, the
 * doorbell eventfd from GET_REGION_IO_FDS, the MSI-X eventfd from SET_IRQS
 * firing on the FENCE, results checked bit for bit.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "gpup/ctl/ctl.h"
#include "gpup/drv/drv.h"
#include "gpup/pool/pool.h"
#include "tests/daemonlib.h"
#include "tests/testlib.h"
#include "vfu/vfu.h"
#include "uapi/gpup_ctl.h"

/* Two sim GPUs; its log is DIR/daemon.log, which some tests read. */
static const char *const daemon_args[] = { "--sim-gpus", "2", "--vram", "256M", NULL };
static struct dl_daemon dmn;

/* The first start makes the directory, a restart reuses it and its state. */
static void start_daemon(void)
{
	struct dl_opts o = { .dir = dmn.dir[0] ? dmn.dir : NULL, .name = "gpup-e2e",
			     .args = daemon_args, .log = true };

	cr_assert_not_null(getenv("GPUP_BIN"),
			   "GPUP_BIN must name the gpup binary (make test sets it)");
	cr_assert_eq(dl_start(&dmn, &o), 0, "the daemon did not come up; see %s", dmn.log);
}

static int stop_daemon(void)
{
	return dl_stop(&dmn);
}

static void setup(void)
{
	start_daemon();
}

static void teardown(void)
{
	cr_assert_eq(dl_teardown(&dmn), 0);
}

TestSuite(daemon_e2e, .init = setup, .fini = teardown, .timeout = 60);

/* Create a partition over the control API; returns its UUID in uuid. */
static void create(const char *gpu, const char *type, char *uuid)
{
	json_object *req = gpup_ctl_request(GPUP_CTL_M_CREATE), *rep = NULL;

	json_object_object_add(req, GPUP_CTL_F_GPU, json_object_new_string(gpu));
	json_object_object_add(req, GPUP_CTL_F_TYPE, json_object_new_string(type));
	cr_assert_eq(gpup_ctl_call(dmn.run_dir, req, &rep), 0);
	json_object_put(req);
	cr_assert_str_eq(gpup_ctl_str(rep, GPUP_CTL_F_ERROR, "none"), "none");
	snprintf(uuid, GPUP_UUID_STRLEN + 1, "%s", gpup_ctl_str(rep, GPUP_CTL_F_UUID, ""));
	json_object_put(rep);
}

Test(daemon_e2e, fill_copy_fence_over_vfio_user)
{
	char uuid[GPUP_UUID_STRLEN + 1];
	struct gpup_vg g;
	union gpup_cmd c[3];
	uint32_t *w, ci = 0;

	create("gpu1", "sim-64m-4", uuid);
	struct vfu_client *cl = tl_attach(dmn.run_dir, uuid);

	cr_assert_eq(gpup_vg_open(&g, cl, 4 << 20), 0);
	cr_assert_eq(g.vram_size, 64 << 20);
	cr_assert_eq(gpup_vg_queue_setup(&g, 2, GPUP_ENGINE_COPY), 0);
	w = (uint32_t *)(g.ram + GPUP_VG_DATA_OFF);
	for (uint32_t i = 0; i < 8192; i++)
		w[i] = i * 2654435761u;
	c[0] = gpup_cmd_copy(GPUP_SPACE_IOVA, gpup_vg_iova(GPUP_VG_DATA_OFF), GPUP_SPACE_VRAM,
			    1 << 20, 32768);
	c[1] = gpup_cmd_fill(GPUP_SPACE_VRAM, (1 << 20) + 4096, 64, 0xabcd0123);
	c[2] = gpup_cmd_copy(GPUP_SPACE_VRAM, 1 << 20, GPUP_SPACE_IOVA,
			    gpup_vg_iova(GPUP_VG_DATA_OFF + 65536), 32768);
	cr_assert_eq(gpup_vg_submit(&g, 2, c, 3), 0);
	cr_assert_eq(gpup_vg_fence_wait(&g, 2, 10000, NULL), 0, "the MSI-X eventfd fired");
	w = (uint32_t *)(g.ram + GPUP_VG_DATA_OFF + 65536);
	for (uint32_t i = 0; i < 8192; i++) {
		uint32_t want = i >= 1024 && i < 1040 ? 0xabcd0123 : i * 2654435761u;

		cr_assert_eq(w[i], want, "word %u", i);
	}
	cr_assert_eq(gpup_vg_reg_read(&g, GPUP_REG_QUEUE(2) + GPUP_Q_CI, &ci), 0);
	cr_assert_eq(ci, 4, "three packets and the fence consumed");
	gpup_vg_close(&g);
	vfu_client_close(cl);
}

Test(daemon_e2e, saxpy_and_checksum_bit_exact)
{
	char uuid[GPUP_UUID_STRLEN + 1];
	struct gpup_vg g;
	union gpup_cmd c[2];
	const uint64_t n = 65536, bytes = n * 4;
	float a = -0.75f, *x, *y, *out;
	uint32_t abits;
	uint64_t sum, h = GPUP_FNV64_BASIS;

	memcpy(&abits, &a, 4);
	create("gpu0", "sim-16m-16", uuid);
	struct vfu_client *cl = tl_attach(dmn.run_dir, uuid);

	cr_assert_eq(gpup_vg_open(&g, cl, 4 << 20), 0);
	cr_assert_eq(gpup_vg_queue_setup(&g, 0, GPUP_ENGINE_COMPUTE), 0);
	cr_assert_eq(gpup_vg_queue_setup(&g, 1, GPUP_ENGINE_COPY), 0);
	x = (float *)(g.ram + GPUP_VG_DATA_OFF);
	y = x + n;
	out = y + n;
	for (uint64_t i = 0; i < n; i++) {
		x[i] = (float)i / 3.0f;
		y[i] = 1.0f / (float)(i + 1);
	}
	c[0] = gpup_cmd_copy(GPUP_SPACE_IOVA, gpup_vg_iova(GPUP_VG_DATA_OFF), GPUP_SPACE_VRAM, 0,
			    2 * bytes);
	cr_assert_eq(gpup_vg_submit(&g, 1, c, 1), 0);
	cr_assert_eq(gpup_vg_fence_wait(&g, 1, 10000, NULL), 0);
	c[0] = gpup_cmd_kernel(GPUP_KERNEL_SAXPY, (uint64_t[6]){ n, abits, 0, bytes }, 6);
	c[1] = gpup_cmd_kernel(GPUP_KERNEL_CHECKSUM, (uint64_t[6]){ bytes, bytes, 2 * bytes }, 6);
	cr_assert_eq(gpup_vg_submit(&g, 0, c, 2), 0);
	cr_assert_eq(gpup_vg_fence_wait(&g, 0, 10000, NULL), 0);
	c[0] = gpup_cmd_copy(GPUP_SPACE_VRAM, bytes, GPUP_SPACE_IOVA,
			    gpup_vg_iova(GPUP_VG_DATA_OFF + 2 * bytes), bytes + 8);
	cr_assert_eq(gpup_vg_submit(&g, 1, c, 1), 0);
	cr_assert_eq(gpup_vg_fence_wait(&g, 1, 10000, NULL), 0);
	for (uint64_t i = 0; i < n; i++) {
		volatile float p = a * x[i];
		float r = p + y[i];
		uint8_t b[4];

		cr_assert_eq(memcmp(&r, &out[i], 4), 0, "element %llu", (unsigned long long)i);
		memcpy(b, &r, 4);
		for (int k = 0; k < 4; k++)
			h = (h ^ b[k]) * GPUP_FNV64_PRIME;
	}
	memcpy(&sum, out + n, 8);
	cr_assert_eq(sum, h, "device FNV-1a %016llx", (unsigned long long)sum);
	gpup_vg_close(&g);
	vfu_client_close(cl);
}

Test(daemon_e2e, fault_and_garbage_stay_in_their_partition)
{
	char ua[GPUP_UUID_STRLEN + 1], ub[GPUP_UUID_STRLEN + 1];
	struct gpup_vg ga, gb;
	union gpup_cmd c;
	uint32_t fault = 0;

	create("gpu0", "sim-64m-4", ua);
	create("gpu0", "sim-64m-4", ub);
	struct vfu_client *ca = tl_attach(dmn.run_dir, ua), *cb = tl_attach(dmn.run_dir, ub);

	cr_assert_eq(gpup_vg_open(&ga, ca, 2 << 20), 0);
	cr_assert_eq(gpup_vg_open(&gb, cb, 2 << 20), 0);
	cr_assert_eq(gpup_vg_queue_setup(&ga, 0, GPUP_ENGINE_COPY), 0);
	cr_assert_eq(gpup_vg_queue_setup(&gb, 0, GPUP_ENGINE_COPY), 0);
	/* a: a COPY from an IOVA nobody mapped faults a's queue. */
	c = gpup_cmd_copy(GPUP_SPACE_IOVA, 0x10000, GPUP_SPACE_VRAM, 0, 4096);
	cr_assert_eq(gpup_vg_submit(&ga, 0, &c, 1), 0);
	cr_assert_eq(gpup_vg_fence_wait(&ga, 0, 500, &fault), -EIO);
	cr_assert_eq(fault, GPUP_FAULT_IOMMU_UNMAPPED);
	/* and a's socket gets garbage: an absurd message size. */
	struct vfio_user_header h = { .command = 3, .msg_size = 0x7fffffff };

	cr_assert_eq(write(vfu_client_socket(ca), &h, sizeof(h)), (ssize_t)sizeof(h));
	/* b never notices. */
	c = gpup_cmd_fill(GPUP_SPACE_IOVA, gpup_vg_iova(GPUP_VG_DATA_OFF), 4096, 0x600dcafe);
	cr_assert_eq(gpup_vg_submit(&gb, 0, &c, 1), 0);
	cr_assert_eq(gpup_vg_fence_wait(&gb, 0, 10000, NULL), 0);
	cr_assert_eq(((uint32_t *)(gb.ram + GPUP_VG_DATA_OFF))[1023], 0x600dcafe);
	gpup_vg_close(&ga);
	gpup_vg_close(&gb);
	vfu_client_close(ca);
	vfu_client_close(cb);
}

static bool exists(const char *path)
{
	struct stat st;

	return stat(path, &st) == 0;
}

Test(daemon_e2e, partitions_survive_restart_and_sockets_go)
{
	char uuid[GPUP_UUID_STRLEN + 1], sock[PATH_MAX], ctl[PATH_MAX];
	json_object *req, *rep = NULL, *a;
	uint32_t v = 0;

	create("gpu1", "sim-128m-2", uuid);
	snprintf(sock, sizeof(sock), "%s/%s.sock", dmn.run_dir, uuid);
	snprintf(ctl, sizeof(ctl), "%s/gpup.sock", dmn.run_dir);
	cr_assert(exists(sock));
	cr_assert_eq(stop_daemon(), 0, "clean exit on SIGTERM (see %s)", dmn.log);
	cr_assert_not(exists(sock), "partition socket removed");
	cr_assert_not(exists(ctl), "control socket removed");
	start_daemon();
	req = gpup_ctl_request(GPUP_CTL_M_LIST);
	cr_assert_eq(gpup_ctl_call(dmn.run_dir, req, &rep), 0);
	json_object_put(req);
	cr_assert(json_object_object_get_ex(rep, GPUP_CTL_F_PARTITIONS, &a));
	cr_assert_eq(json_object_array_length(a), 1);
	json_object *p = json_object_array_get_idx(a, 0);

	cr_assert_str_eq(gpup_ctl_str(p, GPUP_CTL_F_UUID, ""), uuid);
	cr_assert_str_eq(gpup_ctl_str(p, GPUP_CTL_F_GPU, ""), "gpu1");
	cr_assert_str_eq(gpup_ctl_str(p, GPUP_CTL_F_TYPE, ""), "sim-128m-2");
	json_object_put(rep);
	struct vfu_client *cl = tl_attach(dmn.run_dir, uuid);

	cr_assert_eq(vfu_client_region_read(cl, VFIO_PCI_BAR0_REGION_INDEX, GPUP_REG_VRAM_SIZE_LO, &v,
					4), 0);
	cr_assert_eq(v, 128u << 20);
	vfu_client_close(cl);
}

/* SIGHUP reopens the log file; this daemon has none (its stderr is a file
 * it was handed, not a terminal), so it says so and serves on.  Its clean
 * stop is SIGTERM's: exit status 0, sockets and pid file gone,
 * definitions kept.  (Before there were log files SIGHUP stopped it; a
 * daemon logging to a terminal still takes SIGHUP as the terminal going
 * away.) */
Test(daemon_e2e, sighup_without_a_log_file_serves_on)
{
	char uuid[GPUP_UUID_STRLEN + 1], sock[PATH_MAX], ctl[PATH_MAX], pid[PATH_MAX];
	char log[16384];
	int st = 0;

	create("gpu0", "sim-64m-4", uuid);
	snprintf(sock, sizeof(sock), "%s/%s.sock", dmn.run_dir, uuid);
	snprintf(ctl, sizeof(ctl), "%s/gpup.sock", dmn.run_dir);
	snprintf(pid, sizeof(pid), "%s/gpup.pid", dmn.run_dir);
	cr_assert(exists(sock) && exists(ctl) && exists(pid));
	cr_assert_eq(kill(dmn.pid, SIGHUP), 0);
	vfu_client_close(tl_attach(dmn.run_dir, uuid)); /* still served */
	for (int i = 0; i < 200; i++) {
		tl_slurp(dmn.log, log, sizeof(log));
		if (strstr(log, "SIGHUP"))
			break;
		usleep(10000);
	}
	cr_assert_not_null(strstr(log, "SIGHUP: no log file to reopen"), "%s", log);
	cr_assert_eq(kill(dmn.pid, SIGTERM), 0);
	cr_assert_eq(waitpid(dmn.pid, &st, 0), dmn.pid);
	dmn.pid = 0;
	cr_assert(WIFEXITED(st), "killed by signal %d (see %s)", WTERMSIG(st), dmn.log);
	cr_assert_eq(WEXITSTATUS(st), 0);
	cr_assert_not(exists(sock), "partition socket left behind");
	cr_assert_not(exists(ctl), "control socket left behind");
	cr_assert_not(exists(pid), "pid file left behind");
	start_daemon();
	vfu_client_close(tl_attach(dmn.run_dir, uuid)); /* served again after the restart */
}

Test(daemon_e2e, corrupt_state_file_is_skipped)
{
	char path[PATH_MAX], line[512];
	json_object *req, *rep = NULL, *a;
	bool logged = false;
	FILE *f;

	cr_assert_eq(stop_daemon(), 0);
	snprintf(path, sizeof(path), "%s/definitions", dmn.state_dir);
	mkdir(path, 0700);
	snprintf(path, sizeof(path), "%s/definitions/gpu0", dmn.state_dir);
	mkdir(path, 0700);
	snprintf(path, sizeof(path), "%s/definitions/gpu0/01234567-89ab-4cde-8f01-23456789abcd",
		 dmn.state_dir);
	f = fopen(path, "w");
	cr_assert_not_null(f);
	fputs("{\"mdev_type\": \"sim-", f);
	fclose(f);
	start_daemon();
	req = gpup_ctl_request(GPUP_CTL_M_LIST);
	cr_assert_eq(gpup_ctl_call(dmn.run_dir, req, &rep), 0);
	json_object_put(req);
	cr_assert(json_object_object_get_ex(rep, GPUP_CTL_F_PARTITIONS, &a));
	cr_assert_eq(json_object_array_length(a), 1, "listed, as unavailable");
	cr_assert_str_eq(gpup_ctl_str(json_object_array_get_idx(a, 0), GPUP_CTL_F_UNAVAILABLE, ""),
			 "not a JSON object");
	json_object_put(rep);
	f = fopen(dmn.log, "r");
	while (f && fgets(line, sizeof(line), f))
		logged |= strstr(line, "skipping partition file") && strstr(line, "01234567");
	if (f)
		fclose(f);
	cr_assert(logged, "one log line names the skipped file");
}

Test(daemon_e2e, control_api_errors)
{
	json_object *req = gpup_ctl_request("frobnicate"), *rep = NULL;

	cr_assert_eq(gpup_ctl_call(dmn.run_dir, req, &rep), 0);
	cr_assert_str_eq(gpup_ctl_str(rep, GPUP_CTL_F_CODE, ""), "ENOSYS");
	json_object_put(req);
	json_object_put(rep);
	req = gpup_ctl_request(GPUP_CTL_M_CREATE);
	json_object_object_add(req, GPUP_CTL_F_TYPE, json_object_new_string("sim-1g-1"));
	cr_assert_eq(gpup_ctl_call(dmn.run_dir, req, &rep), 0);
	cr_assert_str_eq(gpup_ctl_str(rep, GPUP_CTL_F_CODE, ""), "ENOENT");
	cr_assert_str_eq(gpup_ctl_str(rep, GPUP_CTL_F_ERROR, ""),
			 "no GPU offers type 'sim-1g-1'; see 'gpup types'");
	json_object_put(req);
	json_object_put(rep);
}

static json_object *destroy(const char *uuid, bool force)
{
	json_object *req = gpup_ctl_request(GPUP_CTL_M_DESTROY), *rep = NULL;

	json_object_object_add(req, GPUP_CTL_F_UUID, json_object_new_string(uuid));
	json_object_object_add(req, GPUP_CTL_F_FORCE, json_object_new_boolean(force));
	cr_assert_eq(gpup_ctl_call(dmn.run_dir, req, &rep), 0);
	json_object_put(req);
	return rep;
}

Test(daemon_e2e, destroy_in_use_needs_force)
{
	char uuid[GPUP_UUID_STRLEN + 1], sock[PATH_MAX], ctl[PATH_MAX];
	struct vfio_user_device_info di;
	struct stat st;
	json_object *rep;

	create("gpu0", "sim-32m-8", uuid);
	snprintf(sock, sizeof(sock), "%s/%s.sock", dmn.run_dir, uuid);
	snprintf(ctl, sizeof(ctl), "%s/gpup.sock", dmn.run_dir);
	cr_assert_eq(stat(sock, &st), 0);
	cr_assert_eq(st.st_mode & 0777, 0600, "partition socket mode %o", st.st_mode & 0777);
	cr_assert_eq(stat(ctl, &st), 0);
	cr_assert_eq(st.st_mode & 0777, 0600, "control socket mode %o", st.st_mode & 0777);
	struct vfu_client *cl = tl_attach(dmn.run_dir, uuid);

	rep = destroy(uuid, false);
	cr_assert_str_eq(gpup_ctl_str(rep, GPUP_CTL_F_CODE, ""), "EBUSY");
	json_object_put(rep);
	cr_assert_eq(vfu_client_device_info(cl, &di), 0, "still served");
	rep = destroy(uuid, true);
	cr_assert_str_eq(gpup_ctl_str(rep, GPUP_CTL_F_UUID, ""), uuid);
	json_object_put(rep);
	int rc = vfu_client_device_info(cl, &di);

	cr_assert(rc == -ECONNRESET || rc == -EPIPE, "the client was disconnected: %d", rc);
	cr_assert_neq(stat(sock, &st), 0, "and the socket removed");
	vfu_client_close(cl);
}

static int ctl_raw(void)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s/gpup.sock", dmn.run_dir);
	cr_assert_eq(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	return fd;
}

static void list_works(void)
{
	json_object *req = gpup_ctl_request(GPUP_CTL_M_LIST), *rep = NULL;

	cr_assert_eq(gpup_ctl_call(dmn.run_dir, req, &rep), 0, "the daemon still answers");
	cr_assert_str_eq(gpup_ctl_str(rep, GPUP_CTL_F_CODE, "none"), "none");
	json_object_put(req);
	json_object_put(rep);
}

Test(daemon_e2e, malformed_control_requests)
{
	static char big[300 * 1024];
	json_object *rep = NULL;
	int fd;

	fd = ctl_raw();
	cr_assert_eq(write(fd, "{not json\n", 10), 10);
	cr_assert_eq(gpup_ctl_recv(fd, &rep), 0);
	cr_assert_str_eq(gpup_ctl_str(rep, GPUP_CTL_F_CODE, ""), "EPROTO");
	json_object_put(rep);
	close(fd);

	fd = ctl_raw();
	cr_assert_eq(write(fd, "{\"method\":\"list\",\"version\":99}\n", 32), 32);
	cr_assert_eq(gpup_ctl_recv(fd, &rep), 0);
	cr_assert_str_eq(gpup_ctl_str(rep, GPUP_CTL_F_CODE, ""), "ENOTSUP");
	json_object_put(rep);
	close(fd);

	/* Longer than any request may be, with no newline. */
	memset(big, ' ', sizeof(big));
	fd = ctl_raw();
	/* The daemon may stop reading (and close) before all of it is sent. */
	for (size_t off = 0; off < sizeof(big);) {
		ssize_t n = send(fd, big + off, sizeof(big) - off, MSG_NOSIGNAL);

		if (n <= 0)
			break;
		off += (size_t)n;
	}
	cr_assert_eq(gpup_ctl_recv(fd, &rep), 0);
	cr_assert_str_eq(gpup_ctl_str(rep, GPUP_CTL_F_CODE, ""), "EPROTO");
	json_object_put(rep);
	close(fd);

	/* Connect and hang up without a word. */
	close(ctl_raw());
	list_works();
}

/* Even with the socket opened up by a careless chmod, another user's
 * request is refused by the peer-credential check. */
Test(daemon_e2e, other_users_are_refused)
{
	char ctl[PATH_MAX];
	int st = 0;
	pid_t pid;

	if (geteuid() != 0) {
		teardown(); /* a skipped test does not get its fini */
		cr_skip("needs root to act as another user");
	}
	snprintf(ctl, sizeof(ctl), "%s/gpup.sock", dmn.run_dir);
	cr_assert_eq(chmod(ctl, 0666), 0);
	cr_assert_eq(chmod(dmn.run_dir, 0755), 0);
	cr_assert_eq(chmod(dmn.dir, 0755), 0);
	pid = fork();
	if (pid == 0) {
		json_object *req = gpup_ctl_request(GPUP_CTL_M_LIST), *rep = NULL;

		if (setgid(65534) || setuid(65534))
			_exit(10);
		if (gpup_ctl_call(dmn.run_dir, req, &rep))
			_exit(11);
		_exit(strcmp(gpup_ctl_str(rep, GPUP_CTL_F_CODE, ""), "EPERM") ? 12 : 0);
	}
	waitpid(pid, &st, 0);
	cr_assert(WIFEXITED(st));
	cr_assert_eq(WEXITSTATUS(st), 0, "child status %d", WEXITSTATUS(st));
	list_works();
}

/* A client that connects and says nothing holds only its own slot: the
 * daemon answers others meanwhile and leaves it open until its deadline. */
Test(daemon_e2e, silent_control_client_blocks_nobody)
{
	int silent = ctl_raw();
	struct pollfd p = { .fd = silent, .events = POLLIN };

	list_works();
	list_works();
	cr_assert_eq(poll(&p, 1, 0), 0, "the silent connection was neither answered nor closed");
	close(silent);
	list_works();
}
