// SPDX-License-Identifier: MIT
/*
 * Failover through the daemon (docs/MIGRATION.md, "Failover"), with real
 * clients on the partitions.  A protected partition whose GPU fails comes
 * back on a healthy GPU from its last checkpoint link, its client still
 * connected: its BAR2 mapping shows the VRAM the link held (device
 * writes and CPU writes alike, nothing of what came after), Q_FENCE
 * names the last fence the link had, every queue is stopped with
 * DEVICE_LOST, STATUS.RECOVERED and the fault vector's interrupt say so,
 * and after the client restarts its queue and resubmits, its work
 * completes there.  An unprotected partition on the same GPU is lost; a
 * partition on a healthy GPU is untouched.  RPO and RTO are in the reply
 * and in `gpup stats`.  A damaged chain (a changed byte, a missing base)
 * is refused naming the file, and the partition is lost.  Protection is
 * kept in the definition and resumes after a restart; a daemon killed at
 * any point of its links leaves a chain that restores; destroy removes
 * the chain.  `gpup storage` says where a store can go.
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
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "gpup/ctl/ctl.h"
#include "gpup/drv/drv.h"
#include "gpup/pool/pool.h"
#include "migrate/mig.h"
#include "tests/daemonlib.h"
#include "tests/testlib.h"
#include "uapi/gpup_ctl.h"
#include "uapi/gpup_vgpu.h"
#include "vfu/vfu.h"

#define TYPE "sim-64m-4"
#define MIB (1ull << 20)
#define FOREVER "3600000"    /* one link at start, the next an hour later */

static const char *const daemon_args[] = { "--sim-gpus", "3", "--vram", "256M", NULL };
static struct dl_daemon dmn;

static void start_daemon(void)
{
	struct dl_opts o = { .dir = dmn.dir[0] ? dmn.dir : NULL, .name = "gpup-failover",
			     .args = daemon_args, .log = true };

	cr_assert_not_null(getenv("GPUP_BIN"), "GPUP_BIN must name the gpup binary");
	cr_assert_eq(dl_start(&dmn, &o), 0, "the daemon did not come up; see %s", dmn.log);
}

static void setup(void)
{
	memset(&dmn, 0, sizeof(dmn));
	start_daemon();
}

static void teardown(void)
{
	cr_assert_eq(dl_teardown(&dmn), 0);
}

TestSuite(daemon_failover, .init = setup, .fini = teardown, .timeout = 120);

static json_object *call(json_object *req)
{
	json_object *r = NULL;

	cr_assert_eq(gpup_ctl_call(dmn.run_dir, req, &r), 0);
	json_object_put(req);
	cr_assert(json_object_get_boolean(json_object_object_get(r, GPUP_CTL_F_OK)), "%s",
		  gpup_ctl_str(r, GPUP_CTL_F_ERROR, "?"));
	return r;
}

static void gpup(char *out, size_t len, const char *fmt, const char *a, const char *b)
{
	char args[512];

	snprintf(args, sizeof(args), fmt, a, b);
	cr_assert_eq(tl_gpup(dmn.dir, out, len, args), 0, "gpup %s: %s", args, out);
}

static void create(const char *gpu, char *uuid)
{
	gpup(uuid, GPUP_UUID_STRLEN + 2, "create --gpu %s --type " TYPE "%s", gpu, "");
	uuid[GPUP_UUID_STRLEN] = '\0';
}

/* The partition's entry of `stats --json`: the caller puts it. */
static json_object *stats_of(const char *uuid, json_object **all)
{
	json_object *a = NULL;

	*all = call(gpup_ctl_request(GPUP_CTL_M_STATS));
	json_object_object_get_ex(*all, GPUP_CTL_F_PARTITIONS, &a);
	for (size_t i = 0; a && i < json_object_array_length(a); i++)
		if (!strcmp(gpup_ctl_str(json_object_array_get_idx(a, i), GPUP_CTL_F_UUID, ""), uuid))
			return json_object_array_get_idx(a, i);
	cr_assert_fail("%s is not in stats", uuid);
	return NULL;
}

/* Wait until the partition's protection has written n links. */
static void await_links(const char *uuid, int64_t n)
{
	int64_t have = 0;

	for (int i = 0; i < 1000 && have < n; i++) {
		json_object *all, *p = stats_of(uuid, &all);

		have = gpup_ctl_int(p, GPUP_CTL_F_LINKS, 0);
		json_object_put(all);
		if (have < n)
			usleep(10000);
	}
	cr_assert_geq(have, n, "%s: %lld links, want %lld", uuid, (long long)have, (long long)n);
}

static void protect(const char *uuid, const char *every)
{
	char out[512];

	gpup(out, sizeof(out), "protect %s --every %s", uuid, every);
}

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

static uint32_t reg(struct client *c, uint32_t off)
{
	uint32_t v = 0;

	cr_assert_eq(gpup_vg_reg_read(&c->g, off, &v), 0);
	return v;
}

/* FILL [off, +len) of VRAM with pat on queue 0, and wait for it. */
static void fill(struct client *c, uint64_t off, uint64_t len, uint32_t pat)
{
	union gpup_cmd f = gpup_cmd_fill(GPUP_SPACE_VRAM, off, len, pat);
	uint32_t code = 0;

	cr_assert_eq(gpup_vg_submit(&c->g, 0, &f, 1), 0);
	cr_assert_eq(gpup_vg_fence_wait(&c->g, 0, 10000, &code), 0, "fault %u", code);
}

/* Every 32-bit word of [off, +len) as the client's mapping shows it. */
static void expect(struct client *c, uint64_t off, uint64_t len, uint32_t pat, const char *what)
{
	for (uint64_t i = 0; i < len; i += 4) {
		uint32_t w;

		memcpy(&w, c->bar2 + off + i, 4);
		cr_assert_eq(w, pat, "%s: VRAM 0x%llx holds 0x%08x, want 0x%08x", what,
			     (unsigned long long)(off + i), w, pat);
	}
}

static json_object *inject(const char *gpu, const char *kind)
{
	json_object *req = gpup_ctl_request(GPUP_CTL_M_FAULT_INJECT);

	json_object_object_add(req, GPUP_CTL_F_GPU, json_object_new_string(gpu));
	json_object_object_add(req, GPUP_CTL_F_KIND, json_object_new_string(kind));
	return call(req);
}

/* The failover entry of uuid in a fault_inject reply. */
static json_object *result_of(json_object *r, const char *uuid)
{
	json_object *a = NULL, *f = NULL;

	json_object_object_get_ex(r, GPUP_CTL_F_PARTITIONS, &a);
	for (size_t i = 0; a && i < json_object_array_length(a); i++) {
		json_object *p = json_object_array_get_idx(a, i);

		if (!strcmp(gpup_ctl_str(p, GPUP_CTL_F_UUID, ""), uuid)) {
			json_object_object_get_ex(p, GPUP_CTL_F_FAILOVER, &f);
			return f;
		}
	}
	cr_assert_fail("%s is not in the reply", uuid);
	return NULL;
}

static bool fired(int fd)
{
	struct pollfd p = { .fd = fd, .events = POLLIN };

	return poll(&p, 1, 1000) == 1;
}

static void recovers(const char *kind)
{
	char a[64], b[64], c3[64], out[8192];
	struct client ca, cb, cc;
	uint64_t fence_then;
	json_object *r, *f;

	create("gpu0", a);
	create("gpu0", b);
	create("gpu1", c3);
	attach(a, &ca);
	attach(b, &cb);
	attach(c3, &cc);
	cr_assert_eq(gpup_vg_queue_setup(&ca.g, 0, GPUP_ENGINE_COMPUTE), 0);
	cr_assert_eq(gpup_vg_queue_setup(&cb.g, 0, GPUP_ENGINE_COMPUTE), 0);
	cr_assert_eq(gpup_vg_queue_setup(&cc.g, 0, GPUP_ENGINE_COMPUTE), 0);
	/* What the link will hold: a device write and a CPU write. */
	fill(&ca, 0, 4 * MIB, 0x11111111);
	memset(ca.bar2 + 8 * MIB, 0x5a, MIB);
	fence_then = ca.g.fence_seq[0];
	fill(&cc, 0, MIB, 0x33333333);
	protect(a, FOREVER);
	await_links(a, 1);
	/* What comes after it, lost with the GPU. */
	fill(&ca, 4 * MIB, 4 * MIB, 0x22222222);
	memset(ca.bar2 + 8 * MIB, 0x77, MIB);

	r = inject("gpu0", kind);
	f = result_of(r, a);
	cr_assert_str_eq(gpup_ctl_str(f, GPUP_CTL_F_RESULT, "?"), "recovered");
	cr_assert_str_eq(gpup_ctl_str(f, GPUP_CTL_F_GPU, "?"), "gpu1");
	cr_assert_gt(gpup_ctl_int(f, GPUP_CTL_F_RTO_US, 0), 0);
	cr_assert_gt(gpup_ctl_int(f, GPUP_CTL_F_RPO_US, 0), 0);
	/* the FILL and the driver's fence after the link */
	cr_assert_eq(gpup_ctl_int(f, GPUP_CTL_F_RPO_COMMANDS, -1), 2, "%lld",
		     (long long)gpup_ctl_int(f, GPUP_CTL_F_RPO_COMMANDS, -1));
	f = result_of(r, b);
	cr_assert_str_eq(gpup_ctl_str(f, GPUP_CTL_F_RESULT, "?"), "lost");
	cr_assert_str_eq(gpup_ctl_str(f, GPUP_CTL_F_ERROR, "?"), "it is not protected");
	json_object_put(r);

	/* The client was told, and sees the link's VRAM and fence. */
	cr_assert(fired(ca.g.irq_fd[GPUP_MAX_QUEUES]), "no interrupt on the fault vector");
	cr_assert_eq(reg(&ca, GPUP_REG_STATUS) & (GPUP_STS_RECOVERED | GPUP_STS_LOST),
		     GPUP_STS_RECOVERED);
	cr_assert(reg(&ca, GPUP_REG_INTR_STATUS) & GPUP_INTR_RECOVERED);
	cr_assert_eq(reg(&ca, GPUP_REG_QUEUE(0) + GPUP_Q_FENCE_LO), (uint32_t)fence_then);
	cr_assert_eq(reg(&ca, GPUP_REG_QUEUE(0) + GPUP_Q_FENCE_HI), 0);
	cr_assert(reg(&ca, GPUP_REG_QUEUE(0) + GPUP_Q_STATUS) & GPUP_QSTS_FAULTED);
	cr_assert_eq(reg(&ca, GPUP_REG_QUEUE(0) + GPUP_Q_FAULT), GPUP_FAULT_DEVICE_LOST);
	expect(&ca, 0, 4 * MIB, 0x11111111, "the link's FILL");
	expect(&ca, 4 * MIB, 4 * MIB, 0, "a FILL after the link");
	expect(&ca, 8 * MIB, MIB, 0x5a5a5a5a, "the link's CPU stores");
	/* Acknowledged, restarted, resubmitted: it runs on gpu1. */
	cr_assert_eq(gpup_vg_reg_write(&ca.g, GPUP_REG_INTR_STATUS, GPUP_INTR_RECOVERED), 0);
	cr_assert_eq(reg(&ca, GPUP_REG_STATUS) & GPUP_STS_RECOVERED, 0);
	cr_assert_eq(gpup_vg_queue_setup(&ca.g, 0, GPUP_ENGINE_COMPUTE), 0);
	fill(&ca, 4 * MIB, 4 * MIB, 0x22222222);
	expect(&ca, 4 * MIB, 4 * MIB, 0x22222222, "resubmitted");

	/* The unprotected one is lost; the one on gpu1 is untouched. */
	cr_assert(reg(&cb, GPUP_REG_STATUS) & GPUP_STS_LOST);
	cr_assert_eq(reg(&cb, GPUP_REG_QUEUE(0) + GPUP_Q_FAULT), GPUP_FAULT_DEVICE_LOST);
	expect(&cc, 0, MIB, 0x33333333, "the healthy GPU's partition");
	fill(&cc, MIB, MIB, 0x44444444);
	expect(&cc, MIB, MIB, 0x44444444, "the healthy GPU's partition after");

	cr_assert_eq(tl_gpup(dmn.dir, out, sizeof(out), "stats"), 0, "%s", out);
	cr_assert(strstr(out, "recovered from gpu0: RTO "), "%s", out);
	cr_assert(strstr(out, "lost with gpu0: it is not protected"), "%s", out);
	detach(&ca);
	detach(&cb);
	detach(&cc);
}

Test(daemon_failover, lost_gpu_protected_partition_recovers_others_lost_or_untouched)
{
	recovers("lost");
}

Test(daemon_failover, hung_gpu_protected_partition_recovers)
{
	recovers("hang");
}

/* One protected partition on gpu0, with data, its first link taken. */
static void protected_one(char *uuid, struct client *c)
{
	create("gpu0", uuid);
	attach(uuid, c);
	cr_assert_eq(gpup_vg_queue_setup(&c->g, 0, GPUP_ENGINE_COMPUTE), 0);
	fill(c, 0, 2 * MIB, 0x12345678);
	protect(uuid, FOREVER);
	await_links(uuid, 1);
}

static void expect_lost_with(const char *uuid, const char *why)
{
	json_object *r = inject("gpu0", "lost"), *f = result_of(r, uuid);

	cr_assert_str_eq(gpup_ctl_str(f, GPUP_CTL_F_RESULT, "?"), "lost");
	cr_assert_str_eq(gpup_ctl_str(f, GPUP_CTL_F_ERROR, "?"), why);
	json_object_put(r);
}

Test(daemon_failover, a_changed_byte_in_the_base_is_named_and_the_partition_lost)
{
	char u[64], path[PATH_MAX], want[PATH_MAX + 128];
	struct client c;
	uint8_t b;
	int fd;

	protected_one(u, &c);
	snprintf(path, sizeof(path), "%s/protect/%s.00000000.base", dmn.state_dir, u);
	fd = open(path, O_RDWR);
	cr_assert_geq(fd, 0, "%s", path);
	cr_assert_eq(pread(fd, &b, 1, 300), 1);
	b ^= 1;
	cr_assert_eq(pwrite(fd, &b, 1, 300), 1);
	close(fd);
	snprintf(want, sizeof(want), "chain refused: %s: chunk 2 (VRAM) at byte 208: payload "
		 "checksum mismatch", path);
	expect_lost_with(u, want);
	cr_assert(reg(&c, GPUP_REG_STATUS) & GPUP_STS_LOST);
	detach(&c);
}

Test(daemon_failover, a_missing_base_is_named_and_the_partition_lost)
{
	char u[64], path[PATH_MAX], want[PATH_MAX + 128];
	struct client c;

	protected_one(u, &c);
	snprintf(path, sizeof(path), "%s/protect/%s.00000000.base", dmn.state_dir, u);
	cr_assert_eq(unlink(path), 0);
	snprintf(want, sizeof(want), "chain refused: no base of %s in %s/protect", u, dmn.state_dir);
	expect_lost_with(u, want);
	detach(&c);
}

/* Restore what the store holds, as a recovery would, in this process;
 * with `filled`, the first 2 MiB must hold protected_one's FILL. */
static int chain_restores(const char *uuid, bool filled, char *err, size_t len)
{
	struct mig_ident id = { .type = TYPE, .vram_size = 64 * MIB, .features = ~0ull };
	uint8_t *vram = calloc(1, 64 * MIB);
	char dir[PATH_MAX];
	uint8_t blob[8192];
	struct mig_chain_load l = { .ident = &id, .vram = vram, .state = blob,
				    .state_max = sizeof(blob) };
	int rc;

	snprintf(dir, sizeof(dir), "%s/protect", dmn.state_dir);
	rc = mig_chain_load(dir, uuid, &l, err, len);
	for (uint64_t i = 0; !rc && filled && i < 2 * MIB; i += 4)
		if (*(uint32_t *)(vram + i) != 0x12345678)
			rc = -EBADMSG, snprintf(err, len, "byte %llu wrong", (unsigned long long)i);
	free(vram);
	return rc;
}

/* CPU stores through BAR2 for about ms: every link has pages to write. */
static void scribble(struct client *c, int ms)
{
	for (int t = 0; t < ms; t++) {
		memset(c->bar2 + 4 * MIB + (uint64_t)(t % 8) * MIB / 2, t, MIB / 2);
		usleep(1000);
	}
}

/* Killed at many points of its links (one every 2 ms, a CPU writer
 * keeping each busy): each time the chain restores, and the restarted
 * daemon protects the partition again, as its definition says.  (The
 * sim's VRAM does not outlive the daemon: after the first restart the
 * partition starts empty, so only the first chain holds the FILL.) */
Test(daemon_failover, a_daemon_killed_while_writing_links_leaves_a_chain_that_restores)
{
	char u[64], err[512], out[512];
	struct client c;

	protected_one(u, &c);
	protect(u, "2");
	for (int k = 0; k < 6; k++) {
		if (k)
			attach(u, &c);
		scribble(&c, 15 + 7 * k);
		cr_assert_eq(kill(dmn.pid, SIGKILL), 0);
		dl_stop(&dmn);
		detach(&c);
		cr_assert_eq(chain_restores(u, k == 0, err, sizeof(err)), 0, "kill %d: %s", k, err);
		start_daemon();
		await_links(u, 1);
	}
	gpup(out, sizeof(out), "protect %s --every %s", u, "0");
	cr_assert(strstr(out, "not protected"), "%s", out);
}

Test(daemon_failover, protection_is_kept_in_the_definition_and_destroy_removes_the_chain)
{
	char u[64], def[4096], path[PATH_MAX], out[512];
	struct client c;

	protected_one(u, &c);
	detach(&c);
	snprintf(path, sizeof(path), "%s/definitions/gpu0/%s", dmn.state_dir, u);
	tl_slurp(path, def, sizeof(def));
	cr_assert(strstr(def, "\"every_ms\":3600000") || strstr(def, "\"every_ms\": 3600000"), "%s",
		  def);
	dl_stop(&dmn);
	start_daemon();
	await_links(u, 1);
	snprintf(path, sizeof(path), "%s/protect/%s.00000001.base", dmn.state_dir, u);
	cr_assert_eq(access(path, F_OK), 0, "no new base after the restart");
	gpup(out, sizeof(out), "destroy %s%s", u, "");
	cr_assert_neq(access(path, F_OK), 0, "the chain outlived its partition");
}

Test(daemon_failover, refusals_say_what_was_wrong)
{
	char u[64], out[512], args[128];

	create("gpu0", u);
	cr_assert_neq(tl_gpup(dmn.dir, out, sizeof(out), "fault inject --gpu gpu9"), 0);
	cr_assert(strstr(out, "no GPU 'gpu9'"), "%s", out);
	cr_assert_neq(tl_gpup(dmn.dir, out, sizeof(out), "fault inject --gpu gpu0 --kind melt"), 0);
	cr_assert(strstr(out, "no fault kind 'melt' (lost, hang)"), "%s", out);
	snprintf(args, sizeof(args), "protect %s --every 5000000", u);
	cr_assert_neq(tl_gpup(dmn.dir, out, sizeof(out), args), 0);
	cr_assert(strstr(out, "every_ms must be 1..3600000"), "%s", out);
	gpup(out, sizeof(out), "fault inject --gpu %s%s", "gpu2", "");
	cr_assert(strstr(out, "gpu2 failed (lost)"), "%s", out);
	cr_assert_neq(tl_gpup(dmn.dir, out, sizeof(out), "fault inject --gpu gpu2"), 0);
	cr_assert(strstr(out, "gpu2 has failed already"), "%s", out);
	cr_assert_neq(tl_gpup(dmn.dir, out, sizeof(out), "create --gpu gpu2 --type " TYPE), 0);
	cr_assert(strstr(out, "gpu2 has failed"), "%s", out);
}

Test(daemon_failover, storage_lists_the_state_directory_and_says_there_is_no_nvme)
{
	char out[4096];

	gpup(out, sizeof(out), "storage%s%s", "", "");
	cr_assert(strstr(out, "state directory "), "%s", out);
	cr_assert(strstr(out, dmn.state_dir), "%s", out);
	if (access("/sys/class/nvme", F_OK) != 0)
		cr_assert(strstr(out, "NVMe: no NVMe namespaces on this host"), "%s", out);
	gpup(out, sizeof(out), "storage --json%s%s", "", "");
	cr_assert(strstr(out, "\"places\""), "%s", out);
}
