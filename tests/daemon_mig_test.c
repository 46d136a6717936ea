// SPDX-License-Identifier: MIT
/*
 * Partition checkpoints through the daemon, as an operator runs them
 * (`gpup checkpoint --partition`, `gpup restore --partition`), with the
 * partition's client working: a checkpoint taken while an engine runs a
 * long queue of SAXPY launches, restored into a partition on the other
 * GPU that shares the client's guest RAM, finishes the queue there, and
 * every y comes out exactly as if no launch had been cut or run twice;
 * files for another size, cut or corrupt are refused with one line; a
 * daemon killed while it writes a checkpoint leaves the previous file
 * whole and restorable, and its temporary file is gone after the next.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "gpup/ctl/ctl.h"
#include "gpup/drv/drv.h"
#include "gpup/pool/pool.h"
#include "tests/daemonlib.h"
#include "tests/testlib.h"
#include "uapi/gpup_ctl.h"
#include "uapi/gpup_vgpu.h"
#include "uapi/vfio_mig.h"
#include "vfu/vfu.h"

static const char *const daemon_args[] = { "--sim-gpus", "2", "--vram", "256M", NULL };
static struct dl_daemon dmn;

static void start_daemon(void)
{
	struct dl_opts o = { .dir = dmn.dir[0] ? dmn.dir : NULL, .name = "gpup-mig",
			     .args = daemon_args, .log = true };

	cr_assert_not_null(getenv("GPUP_BIN"), "GPUP_BIN must name the gpup binary");
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

TestSuite(daemon_mig, .init = setup, .fini = teardown, .timeout = 120);

static void create(const char *gpu, const char *type, char *uuid)
{
	char args[256];

	snprintf(args, sizeof(args), "create --gpu %s --type %s", gpu, type);
	cr_assert_eq(tl_gpup(dmn.dir, uuid, GPUP_UUID_STRLEN + 2, args), 0);
	uuid[GPUP_UUID_STRLEN] = '\0';
}

/* `gpup checkpoint` or `gpup restore` for uuid and path: its status, the
 * line it printed in out. */
static int ckpt(const char *cmd, const char *uuid, const char *path, char *out, size_t len)
{
	char args[PATH_MAX + 128];

	snprintf(args, sizeof(args), "%s --partition %s --%s %s", cmd, uuid,
		 strcmp(cmd, "checkpoint") ? "from" : "to", path);
	return tl_gpup(dmn.dir, out, len, args);
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

/* Every y in the partition's VRAM (read over BAR2) equals want. */
static void check_y(struct vfu_client *c, float want, const char *who)
{
	size_t len = 4ull * N;
	float *y = malloc(len);

	cr_assert_not_null(y);
	cr_assert_eq(vfu_client_region_read(c, VFIO_PCI_BAR2_REGION_INDEX, Y, y, len), 0);
	for (size_t i = 0; i < N; i++)
		cr_assert_eq(y[i], want, "%s: y[%zu] = %f, want %f", who, i, (double)y[i],
			     (double)want);
	free(y);
}

/* The file's bytes, hashed, to tell one checkpoint from another. */
static uint64_t file_hash(const char *path)
{
	uint64_t h = 1469598103934665603ull;
	uint8_t buf[65536];
	int fd = open(path, O_RDONLY);
	ssize_t n;

	cr_assert_geq(fd, 0, "%s: %s", path, strerror(errno));
	while ((n = read(fd, buf, sizeof(buf))) > 0)
		for (ssize_t i = 0; i < n; i++)
			h = (h ^ buf[i]) * 1099511628211ull;
	close(fd);
	return h;
}

Test(daemon_mig, checkpoint_of_busy_partition_finishes_on_another_gpu)
{
	char a[64], b[64], out[512], path[PATH_MAX];
	struct vfu_client *ca, *cb;
	struct gpup_vg g;
	union gpup_cmd cmds[LAUNCHES];
	uint32_t fault = 0;
	int irq = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);

	create("gpu0", "sim-64m-4", a);
	create("gpu1", "sim-64m-4", b);
	ca = tl_attach(dmn.run_dir, a);
	cr_assert_eq(gpup_vg_open(&g, ca, 8 << 20), 0);
	cr_assert_eq(gpup_vg_queue_setup(&g, 0, GPUP_ENGINE_COMPUTE), 0);
	union gpup_cmd init[2] = {
		gpup_cmd_fill(GPUP_SPACE_VRAM, X, 4ull * N, 0x3f800000),  /* 1.0f */
		gpup_cmd_fill(GPUP_SPACE_VRAM, Y, 4ull * N, 0),
	};
	cr_assert_eq(gpup_vg_submit(&g, 0, init, 2), 0);
	cr_assert_eq(gpup_vg_fence_wait(&g, 0, 10000, &fault), 0);
	for (unsigned int i = 0; i < LAUNCHES; i++)
		cmds[i] = saxpy(2.0f);
	cr_assert_eq(gpup_vg_submit(&g, 0, cmds, LAUNCHES), 0);

	/* Taken while the engine works through the launches. */
	snprintf(path, sizeof(path), "%s/busy.gpup", dmn.dir);
	cr_assert_eq(ckpt("checkpoint", a, path, out, sizeof(out)), 0, "%s", out);
	cr_log_info("%s", out);
	cr_assert_eq(gpup_vg_fence_wait(&g, 0, 60000, &fault), 0, "fault %u", fault);
	check_y(ca, 2.0f * LAUNCHES, "the source");

	/* The destination serves the same guest: its RAM, its interrupt. */
	cb = tl_attach(dmn.run_dir, b);
	cr_assert_eq(vfu_client_dma_map(cb, g.ram_fd, 0, GPUP_VG_IOVA_BASE, g.ram_size,
					VFIO_USER_DMA_F_READ | VFIO_USER_DMA_F_WRITE), 0);
	cr_assert_eq(vfu_client_set_irqs(cb, VFIO_PCI_MSIX_IRQ_INDEX, 0, 1, &irq), 0);
	cr_assert_eq(ckpt("restore", b, path, out, sizeof(out)), 0, "%s", out);
	/* It finishes what the checkpoint had left: the launches after it
	 * and the fence, whose interrupt comes on the destination's vector. */
	struct pollfd p = { .fd = irq, .events = POLLIN };

	cr_assert_eq(poll(&p, 1, 60000), 1, "the destination never finished the queue");
	check_y(cb, 2.0f * LAUNCHES, "the destination");
	vfu_client_close(cb);
	gpup_vg_close(&g);
	vfu_client_close(ca);
	close(irq);
}

static void copy_file(const char *from, const char *to, size_t len, long flip_at)
{
	uint8_t *buf = malloc(len);
	int in = open(from, O_RDONLY), fd = open(to, O_WRONLY | O_CREAT | O_TRUNC, 0600);

	cr_assert(buf && in >= 0 && fd >= 0);
	cr_assert_eq(read(in, buf, len), (ssize_t)len);
	if (flip_at >= 0)
		buf[flip_at] ^= 0x40;
	cr_assert_eq(write(fd, buf, len), (ssize_t)len);
	close(in);
	close(fd);
	free(buf);
}

Test(daemon_mig, wrong_cut_and_corrupt_files_are_refused)
{
	char a[64], small[64], out[512], good[PATH_MAX], bad[PATH_MAX];
	struct stat st;

	create("gpu0", "sim-64m-4", a);
	create("gpu1", "sim-32m-8", small);
	snprintf(good, sizeof(good), "%s/a.gpup", dmn.dir);
	snprintf(bad, sizeof(bad), "%s/bad.gpup", dmn.dir);
	cr_assert_eq(ckpt("checkpoint", a, good, out, sizeof(out)), 0, "%s", out);
	cr_assert_eq(stat(good, &st), 0);
	cr_assert_lt(st.st_size, 1 << 20, "64 MiB of zeros take %ld bytes", (long)st.st_size);

	cr_assert_neq(ckpt("restore", small, good, out, sizeof(out)), 0);
	cr_assert(strstr(out, "VRAM") || strstr(out, "type"), "%s", out);
	copy_file(good, bad, (size_t)st.st_size / 2, -1);
	cr_assert_neq(ckpt("restore", a, bad, out, sizeof(out)), 0);
	cr_assert(strstr(out, "truncated") || strstr(out, "ended"), "%s", out);
	copy_file(good, bad, (size_t)st.st_size, st.st_size - 20);
	cr_assert_neq(ckpt("restore", a, bad, out, sizeof(out)), 0);
	cr_assert(strstr(out, "chunk"), "%s", out);
	cr_assert_eq(ckpt("restore", a, "/nonexistent/x.gpup", out, sizeof(out)), 2, "%s", out);
	/* Refusals leave the partition usable: the good file loads. */
	cr_assert_eq(ckpt("restore", a, good, out, sizeof(out)), 0, "%s", out);
}

static unsigned int stale_tmp_files(const char *dir)
{
	char cmd[PATH_MAX + 64], out[64];
	FILE *f;
	unsigned int n = 0;

	snprintf(cmd, sizeof(cmd), "ls -A %s | grep -c '^\\.ck\\.gpup\\.tmp\\.'", dir);
	f = popen(cmd, "r");
	cr_assert_not_null(f);
	if (fgets(out, sizeof(out), f))
		n = (unsigned int)atoi(out);
	pclose(f);
	return n;
}

/* kill -9 at points through a checkpoint's write: the previous file
 * stays whole (or the new one is, if the rename was reached), and loads. */
Test(daemon_mig, daemon_killed_while_writing_keeps_previous_checkpoint)
{
	static const unsigned int delay_us[] = { 0, 20000, 60000, 100000, 140000, 180000,
						 250000, 400000 };
	char a[64], out[512], path[PATH_MAX], args[PATH_MAX + 128];
	struct gpup_vg g;
	struct vfu_client *c;
	uint64_t prev;
	unsigned int mid_write = 0;

	create("gpu0", "sim-64m-4", a);
	c = tl_attach(dmn.run_dir, a);
	cr_assert_eq(gpup_vg_open(&g, c, 2 << 20), 0);
	cr_assert_eq(gpup_vg_queue_setup(&g, 1, GPUP_ENGINE_COPY), 0);
	union gpup_cmd fill = gpup_cmd_fill(GPUP_SPACE_VRAM, 0, 48ull << 20, 0x5a5aa5a5);

	cr_assert_eq(gpup_vg_submit(&g, 1, &fill, 1), 0);
	cr_assert_eq(gpup_vg_fence_wait(&g, 1, 10000, NULL), 0);
	gpup_vg_close(&g);
	vfu_client_close(c);
	snprintf(path, sizeof(path), "%s/ck.gpup", dmn.dir);
	cr_assert_eq(ckpt("checkpoint", a, path, out, sizeof(out)), 0, "%s", out);
	for (size_t i = 0; i < sizeof(delay_us) / sizeof(delay_us[0]); i++) {
		pid_t pid;

		prev = file_hash(path);
		snprintf(args, sizeof(args), "checkpoint --partition %s --to %s", a, path);
		pid = fork();
		if (pid == 0) {
			char o[256];

			_exit(tl_gpup(dmn.dir, o, sizeof(o), args) ? 1 : 0);
		}
		usleep(delay_us[i]);
		kill(dmn.pid, SIGKILL);
		waitpid(pid, NULL, 0);
		cr_assert_eq(dl_stop(&dmn), 128 + SIGKILL);
		start_daemon();
		uint64_t now = file_hash(path);

		cr_log_info("killed after %u us: the file is %s, %u temporary file(s)", delay_us[i],
			    now == prev ? "the previous one" : "a new one", stale_tmp_files(dmn.dir));
		mid_write += stale_tmp_files(dmn.dir) > 0;
		cr_assert_eq(ckpt("restore", a, path, out, sizeof(out)), 0,
			     "after a kill at %u us: %s", delay_us[i], out);
	}
	cr_assert_gt(mid_write, 0, "no kill landed while the file was being written");
	cr_assert_eq(ckpt("checkpoint", a, path, out, sizeof(out)), 0, "%s", out);
	cr_assert_eq(stale_tmp_files(dmn.dir), 0, "a dead writer's temporary file is left");
}

/* A VMM that dies with its partition stopped for a migration leaves the
 * next client a running device, its work intact: VFIO's rule for a
 * closed device fd. */
Test(daemon_mig, a_client_gone_mid_migration_leaves_the_device_running)
{
	struct vfio_device_feature_mig_state st = { .device_state = 1 /* STOP */, .data_fd = -1 };
	const uint32_t set = VFIO_DEVICE_FEATURE_SET | VFIO_DEVICE_FEATURE_MIG_DEVICE_STATE;
	const uint32_t get = VFIO_DEVICE_FEATURE_GET | VFIO_DEVICE_FEATURE_MIG_DEVICE_STATE;
	char a[64];
	struct vfu_client *c;
	struct gpup_vg g;
	uint32_t scratch = 0;

	create("gpu0", "sim-64m-4", a);
	c = tl_attach(dmn.run_dir, a);
	cr_assert_eq(vfu_client_region_write(c, VFIO_PCI_BAR0_REGION_INDEX, GPUP_REG_SCRATCH,
					     &(uint32_t){ 0x5eed }, 4), 0);
	cr_assert_geq(vfu_client_feature(c, set, &st, sizeof(st), &st, sizeof(st)), 0);
	cr_assert_geq(vfu_client_feature(c, get, NULL, 0, &st, sizeof(st)), 0);
	cr_assert_eq(st.device_state, 1, "stopped");
	vfu_client_close(c);

	c = tl_attach(dmn.run_dir, a);
	cr_assert_geq(vfu_client_feature(c, get, NULL, 0, &st, sizeof(st)), 0);
	cr_assert_eq(st.device_state, 2, "RUNNING again for the next client");
	cr_assert_eq(vfu_client_region_read(c, VFIO_PCI_BAR0_REGION_INDEX, GPUP_REG_SCRATCH,
					    &scratch, 4), 0);
	cr_assert_eq(scratch, 0x5eed, "and its state kept");
	cr_assert_eq(gpup_vg_open(&g, c, 2 << 20), 0);
	cr_assert_eq(gpup_vg_queue_setup(&g, 0, GPUP_ENGINE_COMPUTE), 0);
	cr_assert_eq(gpup_vg_fence_wait(&g, 0, 10000, NULL), 0, "its engines run");
	gpup_vg_close(&g);
	vfu_client_close(c);
}

/* The device state as a client sets and reads it (kernel values). */
enum { ST_STOP = 1, ST_RUNNING = 2, ST_STOP_COPY = 3, ST_RESUMING = 4, ST_PRE_COPY = 6 };

static void set_state(struct vfu_client *c, uint32_t state)
{
	struct vfio_device_feature_mig_state st = { .device_state = state, .data_fd = -1 };

	cr_assert_geq(vfu_client_feature(c, VFIO_DEVICE_FEATURE_SET |
					 VFIO_DEVICE_FEATURE_MIG_DEVICE_STATE,
					 &st, sizeof(st), &st, sizeof(st)), 0, "SET %u", state);
}

/* MIG_DATA_READ until a short read: the bytes appended to buf. */
static size_t read_round(struct vfu_client *c, uint8_t *buf, size_t have, size_t max)
{
	uint32_t chunk = vfu_client_max_xfer(c);
	int n;

	do {
		cr_assert_leq(have + chunk, max, "the stream outgrew its buffer");
		n = vfu_client_mig_read(c, buf + have, chunk);
		cr_assert_geq(n, 0, "MIG_DATA_READ: %s", strerror(-n));
		have += (size_t)n;
	} while ((uint32_t)n == chunk);
	return have;
}

/* What the issue asks of an outside client: a partition on gpu0 taken
 * through PRE_COPY rounds (its engine writing VRAM meanwhile) and
 * STOP_COPY, the stream fed to a partition on gpu1 through RESUMING ->
 * STOP -> RUNNING, and its VRAM found bit for bit. */
Test(daemon_mig, client_moves_a_busy_partition_to_another_gpu_bit_for_bit)
{
	const size_t max = 200ull << 20, vram = 64ull << 20;
	uint8_t *stream = malloc(max), *va = malloc(vram), *vb = malloc(vram);
	char a[64], b[64];
	struct vfu_client *ca, *cb;
	struct gpup_vg g;
	union gpup_cmd cmds[LAUNCHES];
	size_t len = 0;
	uint32_t fault = 0;

	cr_assert(stream && va && vb);
	create("gpu0", "sim-64m-4", a);
	create("gpu1", "sim-64m-4", b);
	ca = tl_attach(dmn.run_dir, a);
	cr_assert_eq(gpup_vg_open(&g, ca, 8 << 20), 0);
	cr_assert_eq(gpup_vg_queue_setup(&g, 0, GPUP_ENGINE_COMPUTE), 0);
	union gpup_cmd init[2] = {
		gpup_cmd_fill(GPUP_SPACE_VRAM, X, 4ull * N, 0x3f800000),
		gpup_cmd_fill(GPUP_SPACE_VRAM, Y, 4ull * N, 0),
	};
	cr_assert_eq(gpup_vg_submit(&g, 0, init, 2), 0);
	cr_assert_eq(gpup_vg_fence_wait(&g, 0, 10000, &fault), 0);
	for (unsigned int i = 0; i < LAUNCHES / 4; i++)
		cmds[i] = saxpy(2.0f);
	cr_assert_eq(gpup_vg_submit(&g, 0, cmds, LAUNCHES / 4), 0);

	set_state(ca, ST_PRE_COPY);
	for (int round = 0; round < 3; round++)
		len = read_round(ca, stream, len, max);
	set_state(ca, ST_STOP_COPY);
	len = read_round(ca, stream, len, max);
	cr_assert_eq(vfu_client_region_read(ca, VFIO_PCI_BAR2_REGION_INDEX, 0, va, vram), 0);

	cb = tl_attach(dmn.run_dir, b);
	set_state(cb, ST_RESUMING);
	for (size_t off = 0; off < len;) {
		uint32_t n = len - off < vfu_client_max_xfer(cb) ? (uint32_t)(len - off)
								  : vfu_client_max_xfer(cb);

		cr_assert_eq(vfu_client_mig_write(cb, stream + off, n), 0);
		off += n;
	}
	set_state(cb, ST_STOP);
	cr_assert_eq(vfu_client_region_read(cb, VFIO_PCI_BAR2_REGION_INDEX, 0, vb, vram), 0);
	cr_assert(memcmp(va, vb, vram) == 0, "the destination's VRAM differs from the source's");
	set_state(cb, ST_RUNNING);
	cr_log_info("%zu bytes moved for 64 MiB of VRAM", len);

	/* The source, given back its engines, finishes as it would have. */
	set_state(ca, ST_RUNNING);
	cr_assert_eq(gpup_vg_fence_wait(&g, 0, 60000, &fault), 0, "fault %u", fault);
	check_y(ca, 2.0f * (LAUNCHES / 4), "the source");
	vfu_client_close(cb);
	gpup_vg_close(&g);
	vfu_client_close(ca);
	free(stream);
	free(va);
	free(vb);
}
