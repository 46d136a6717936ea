// SPDX-License-Identifier: MIT
/*
 * Migration's costs, each against a floor of this host measured in the
 * same run: MIG_DATA_READ over a partition's vfio-user socket against a
 * plain UNIX-socket copy of the same bytes with the same read size (and
 * the saver in process against memcpy and XXH3 of the same VRAM, to show
 * where the time goes); a checkpoint file of a 1 GiB partition against an
 * O_DIRECT write of as many bytes into the same directory, and its
 * restore; and the pause a device migration costs a guest whose workload
 * dirties VRAM through an engine during the pre-copy rounds.  Medians and
 * ranges over repetitions.  Prints one Markdown section for
 * docs/BENCHMARKS.md; exits non-zero only when something could not run.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <xxhash.h>

#include "gpup/ctl/ctl.h"
#include "gpup/drv/drv.h"
#include "gpup/gpu/gpu.h"
#include "gpup/vgpu/vgpu.h"
#include "iommu/iommu.h"
#include "migrate/mig.h"
#include "perf/perflib.h"
#include "tests/daemonlib.h"
#include "uapi/gpup_ctl.h"

#define MIB (1ull << 20)
#define GIB (1ull << 30)
#define XFER (1u << 20)           /* every read and write: the server's max */
#define REPS 5
#define CK_REPS 5               /* checkpoints: 1 GiB each way */
#define MAX_MOVES 15
#define GPU_VRAM (4 * GIB)        /* each of the daemon's two sim GPUs */
#define DIRTY_BLOCK (256 * 1024ull)
#define DIRTY_PERIOD 0.0025       /* a DIRTY_BLOCK FILL every 2.5 ms: 100 MiB/s */
#define ROUND_DONE (2 * MIB)      /* pre-copy stops after a round this small */
#define MAX_ROUNDS 10
#define RAM_SIZE (4 * MIB)        /* the guest RAM both partitions map */
#define SNDBUF (4 << 20)          /* vfu's server asks this of each client socket */

struct dist {
	double med, lo, hi;
};

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static struct dist dist_of(const double *v, int n)
{
	double s[MAX_MOVES];

	memcpy(s, v, (size_t)n * sizeof(*s));
	perf_sort(s, (size_t)n);
	return (struct dist){ n % 2 ? s[n / 2] : (s[n / 2 - 1] + s[n / 2]) / 2, s[0], s[n - 1] };
}

/* GB/s of bytes moved in each of n times: median and range. */
static struct dist rate_of(const double *t, int n, uint64_t bytes)
{
	struct dist d = dist_of(t, n);

	return (struct dist){ (double)bytes / d.med / 1e9, (double)bytes / d.hi / 1e9,
			      (double)bytes / d.lo / 1e9 };
}

static const char *verdict(bool ok)
{
	return ok ? "PASS" : "FAIL";
}

/* VRAM's contents from offset at on: non-zero and different in every 8
 * bytes; with half, every other MiB is written as zeros instead
 * (allocated pages the saver must scan). */
static void pattern(uint8_t *p, uint64_t len, uint64_t at, bool half)
{
	uint64_t *w = (uint64_t *)p;

	for (uint64_t i = 0; i < len / 8; i++) {
		uint64_t o = at + i * 8;

		w[i] = half && (o / MIB) % 2 ? 0 : (o + 8) * 0x9e3779b97f4a7c15ull | 1;
	}
}

static uint64_t mem_available(void)
{
	char line[128];
	unsigned long long kb = 0;
	FILE *f = fopen("/proc/meminfo", "re");

	while (f && fgets(line, sizeof(line), f))
		if (sscanf(line, "MemAvailable: %llu kB", &kb) == 1)
			break;
	if (f)
		fclose(f);
	return kb * 1024;
}

/* ---- the host's floors ---- */

/* A child process that writes N bytes (N sent as 8 bytes) in XFER writes
 * from a buffer it keeps: the far end of the UNIX-socket baseline. */
static pid_t peer_start(int *fd)
{
	int sv[2];
	pid_t pid;

	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv))
		return -1;
	pid = fork();
	if (pid == 0) {
		static uint8_t buf[XFER];
		uint64_t n;

		prctl(PR_SET_PDEATHSIG, SIGKILL);
		close(sv[0]);
		/* The send buffer a partition's socket asks for. */
		setsockopt(sv[1], SOL_SOCKET, SO_SNDBUF, &(int){ SNDBUF }, sizeof(int));
		pattern(buf, XFER, 0, false);
		while (read(sv[1], &n, 8) == 8)
			for (ssize_t w; n; n -= (uint64_t)w)
				if ((w = write(sv[1], buf, n < XFER ? n : XFER)) <= 0)
					_exit(1);
		_exit(0);
	}
	close(sv[1]);
	*fd = sv[0];
	return pid;
}

/* Seconds to receive bytes from the peer with XFER reads, or -1. */
static double sock_copy(int fd, uint8_t *buf, uint64_t bytes)
{
	double t0 = now_s();

	if (write(fd, &bytes, 8) != 8)
		return -1;
	for (uint64_t left = bytes; left;) {
		ssize_t r = recv(fd, buf, left < XFER ? left : XFER, MSG_WAITALL);

		if (r <= 0)
			return -1;
		left -= (uint64_t)r;
	}
	return now_s() - t0;
}

/* The send buffer this host grants a socket that asks for SNDBUF (the
 * kernel caps it at net.core.wmem_max): KiB. */
static int granted_sndbuf_kib(void)
{
	int sv[2], v = 0;
	socklen_t l = sizeof(v);

	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv))
		return -1;
	setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &(int){ SNDBUF }, sizeof(int));
	getsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &v, &l);
	close(sv[0]);
	close(sv[1]);
	return v / 2 / 1024;      /* the kernel doubles what it grants */
}

static double timed_memcpy(uint8_t *dst, const uint8_t *src, uint64_t len)
{
	double t0 = now_s();

	memcpy(dst, src, len);
	__asm__ volatile("" : : "r"(dst) : "memory");
	return now_s() - t0;
}

/* memcpy between two touched 256 MiB buffers: seconds per repetition. */
static int memcpy_floor(double *t)
{
	uint8_t *a = malloc(256 * MIB), *b = malloc(256 * MIB);

	if (!a || !b) {
		free(a);
		free(b);
		return -1;
	}
	pattern(a, 256 * MIB, 0, false);
	memset(b, 1, 256 * MIB);
	for (int i = 0; i < REPS; i++)
		t[i] = timed_memcpy(b, a, 256 * MIB);
	free(a);
	free(b);
	return 0;
}

/* The equivalent of dd if=/dev/zero of=DIR/x bs=1M count=SIZE oflag=direct
 * (data: each MiB the VRAM pattern at its offset instead of zeros, as a
 * disk that spots zero writes cannot skip): seconds, or -errno (-EINVAL
 * where the filesystem has no O_DIRECT). */
static double odirect_write(const char *dir, uint64_t size, bool data, bool sync)
{
	char path[512];
	void *buf = NULL;
	double t0 = now_s(), t = -1;
	int fd;

	snprintf(path, sizeof(path), "%s/x", dir);
	if (posix_memalign(&buf, 4096, MIB))
		return -ENOMEM;
	memset(buf, 0, MIB);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_DIRECT | O_CLOEXEC, 0600);
	if (fd < 0) {
		free(buf);
		return -errno;
	}
	for (uint64_t off = 0; off < size; off += MIB) {
		if (data)
			pattern(buf, MIB, off, false);
		if (write(fd, buf, MIB) != (ssize_t)MIB)
			goto out;
	}
	if (sync && fsync(fd))
		goto out;
	t = now_s() - t0;
out:
	close(fd);
	unlink(path);
	free(buf);
	return t;
}

/* What the checkpoint's own I/O costs without migration: size bytes
 * written through the page cache in 1 MiB writes, then fsync: seconds. */
static double buffered_write(const char *dir, uint64_t size, const uint8_t *buf)
{
	char path[512];
	double t0 = now_s(), t = -1;
	int fd;

	snprintf(path, sizeof(path), "%s/x", dir);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0)
		return -1;
	for (uint64_t off = 0; off < size; off += MIB)
		if (write(fd, buf, MIB) != (ssize_t)MIB)
			goto out;
	if (!fsync(fd))
		t = now_s() - t0;
out:
	close(fd);
	unlink(path);
	return t;
}

static const char *fs_name(const char *dir)
{
	struct statfs s;

	if (statfs(dir, &s))
		return "unknown";
	switch ((unsigned long)s.f_type) {
	case 0xEF53: return "ext4";
	case 0x01021994: return "tmpfs";
	case 0x58465342: return "xfs";
	case 0x9123683E: return "btrfs";
	case 0x794c7630: return "overlayfs";
	default: return "another filesystem";
	}
}

/* ---- partitions of a daemon, over vfio-user ---- */

static struct dl_daemon dmn;

struct part {
	char uuid[64];
	struct vfu_client *c;
	uint8_t *vram;            /* BAR2, mapped */
	uint64_t size;
	int fd;                   /* BAR2's file: the VRAM file */
	int db;                   /* queue 0's doorbell, or -1 */
};

static int ctl(const char *method, const char *k1, const char *v1, const char *k2,
	       const char *v2, char *uuid, size_t len)
{
	json_object *req = gpup_ctl_request(method), *rep = NULL;
	int rc;

	json_object_object_add(req, k1, json_object_new_string(v1));
	if (k2)
		json_object_object_add(req, k2, json_object_new_string(v2));
	/* Our client has hung up, but the daemon may not have seen it yet. */
	if (!strcmp(method, GPUP_CTL_M_DESTROY))
		json_object_object_add(req, GPUP_CTL_F_FORCE, json_object_new_boolean(1));
	rc = gpup_ctl_call(dmn.run_dir, req, &rep);
	if (!rc && !json_object_get_boolean(json_object_object_get(rep, "ok"))) {
		fprintf(stderr, "mig_perf: %s: %s\n", method, gpup_ctl_str(rep, "error", "?"));
		rc = -EIO;
	}
	if (!rc && uuid)
		snprintf(uuid, len, "%s", gpup_ctl_str(rep, GPUP_CTL_F_UUID, ""));
	json_object_put(req);
	json_object_put(rep);
	return rc;
}

static void part_close(struct part *p)
{
	if (p->vram && p->vram != MAP_FAILED)
		munmap(p->vram, p->size);
	if (p->db >= 0)
		close(p->db);
	if (p->fd >= 0)
		close(p->fd);
	if (p->c)
		vfu_client_close(p->c);
	if (p->uuid[0])
		ctl(GPUP_CTL_M_DESTROY, GPUP_CTL_F_UUID, p->uuid, NULL, NULL, NULL, 0);
	memset(p, 0, sizeof(*p));
	p->db = p->fd = -1;
}

/* A partition of type on gpu, connected, its VRAM mapped through BAR2. */
static int part_open(struct part *p, const char *gpu, const char *type)
{
	struct vfio_region_info ri = { .argsz = sizeof(ri) };
	char sock[256];
	int err = 0;

	memset(p, 0, sizeof(*p));
	p->db = p->fd = -1;
	if (ctl(GPUP_CTL_M_CREATE, GPUP_CTL_F_TYPE, type, GPUP_CTL_F_GPU, gpu, p->uuid,
		sizeof(p->uuid)))
		return -1;
	snprintf(sock, sizeof(sock), "%s/%s.sock", dmn.run_dir, p->uuid);
	p->c = vfu_client_connect(sock, &err);
	if (!p->c || vfu_client_region_info(p->c, VFIO_PCI_BAR2_REGION_INDEX, &ri, &p->fd) ||
	    p->fd < 0)
		goto err;
	p->size = ri.size;
	p->vram = mmap(NULL, p->size, PROT_READ | PROT_WRITE, MAP_SHARED, p->fd,
		       (off_t)ri.offset);
	if (p->vram != MAP_FAILED)
		return 0;
err:
	fprintf(stderr, "mig_perf: partition %s of %s: %s\n", type, gpu, strerror(-err));
	part_close(p);
	return -1;
}

static int mig_set(struct vfu_client *c, uint32_t state)
{
	struct vfio_device_feature_mig_state m = { .device_state = state, .data_fd = -1 }, out;
	int n = vfu_client_feature(c, VFIO_DEVICE_FEATURE_SET | VFIO_DEVICE_FEATURE_MIG_DEVICE_STATE,
				   &m, sizeof(m), &out, sizeof(out));

	return n < 0 ? n : 0;
}

/* Read src with XFER reads until a short one (a round's end, or the
 * stream's), each chunk written on to dst when there is one: bytes, or
 * -errno. */
static int64_t pump(struct vfu_client *src, struct vfu_client *dst, uint8_t *buf)
{
	int64_t total = 0;
	int n, rc;

	do {
		n = vfu_client_mig_read(src, buf, XFER);
		if (n < 0)
			return n;
		if (dst && n && (rc = vfu_client_mig_write(dst, buf, (uint32_t)n)))
			return rc;
		total += n;
	} while (n == (int)XFER);
	return total;
}

/* ---- 1. MIG_DATA_READ over the socket ---- */

/* [STOP_COPY, PRE_COPY + STOP_COPY, STOP_COPY written on into RESUMING] */
struct stream_row {
	uint64_t vram, bytes[3];
	double t[3][REPS], base[2][REPS];
};

/* One whole stream out of p: seconds, its bytes in *bytes, or -1. */
static double stream_once(struct part *p, bool pre, uint8_t *buf, uint64_t *bytes)
{
	double t0 = now_s(), t;
	int64_t a = 0, b = -1;

	if (pre && (mig_set(p->c, MIG_PRE_COPY) || (a = pump(p->c, NULL, buf)) < 0))
		return -1;
	if (!mig_set(p->c, MIG_STOP_COPY))
		b = pump(p->c, NULL, buf);
	t = now_s() - t0;
	if (b < 0 || mig_set(p->c, MIG_RUNNING))
		return -1;
	*bytes = (uint64_t)(a + b);
	return t;
}

/* A stopped partition's stream read from p and written into q, from the
 * SET to STOP_COPY to q in RUNNING: seconds, or -1.  q is reset after. */
static double stream_into(struct part *p, struct part *q, uint8_t *buf, uint64_t *bytes)
{
	double t0, t;
	int64_t n = -1;

	if (mig_set(q->c, MIG_RESUMING))
		return -1;
	t0 = now_s();
	if (!mig_set(p->c, MIG_STOP_COPY))
		n = pump(p->c, q->c, buf);
	if (n < 0 || mig_set(q->c, MIG_RUNNING))
		return -1;
	t = now_s() - t0;
	*bytes = (uint64_t)n;
	return mig_set(p->c, MIG_RUNNING) || vfu_client_reset(q->c) ? -1 : t;
}

/* The stream out of a partition of type, and (into) into another. */
static int stream_size(struct stream_row *r, const char *type, bool into, int peer,
		       uint8_t *buf)
{
	struct part p, q;
	int rc = part_open(&p, "gpu0", type);

	if (rc || (rc = part_open(&q, "gpu1", type))) {
		if (!rc)
			part_close(&p);
		return -1;
	}
	r->vram = p.size;
	pattern(p.vram, p.size, 0, false);
	for (int i = 0; i < REPS && !rc; i++) {
		for (int k = 0; k < 2 && !rc; k++) {
			r->t[k][i] = stream_once(&p, k, buf, &r->bytes[k]);
			r->base[k][i] = r->t[k][i] < 0 ? -1 : sock_copy(peer, buf, r->bytes[k]);
			rc = r->base[k][i] < 0 ? -1 : 0;
		}
		if (!rc && into && (r->t[2][i] = stream_into(&p, &q, buf, &r->bytes[2])) < 0)
			rc = -1;
	}
	part_close(&q);
	part_close(&p);
	return rc;
}

/* The median over repetitions of each one's rate against the baseline
 * timed right after it (t and base are times of the same bytes). */
static double paired(const double *t, const double *base)
{
	double q[REPS];

	for (int i = 0; i < REPS; i++)
		q[i] = base[i] / t[i];
	return dist_of(q, REPS).med;
}

static void stream_print(const struct stream_row *r, int n)
{
	static const char *const how[] = { "STOP_COPY", "PRE_COPY round, then STOP_COPY",
					   "STOP_COPY, each read written on into a partition "
					   "in RESUMING, then RUNNING" };

	printf("| VRAM | stream | bytes | MIG_DATA_READ GB/s (range) | UNIX socket GB/s (range) "
	       "| ratio, paired | target |\n| --- | --- | ---: | ---: | ---: | ---: | --- |\n");
	for (int i = 0; i < n; i++)
		for (int k = 0; k < 3; k++) {
			if (k == 2 && !r[i].bytes[2])
				continue;
			struct dist m = rate_of(r[i].t[k], REPS, r[i].bytes[k]);
			struct dist s = rate_of(r[i].base[k < 2 ? k : 0], REPS, r[i].bytes[k]);

			if (k == 2) {
				printf("| %llu MiB | %s | %llu | %.2f (%.2f - %.2f) | - | - | - |\n",
				       (unsigned long long)(r[i].vram / MIB), how[k],
				       (unsigned long long)r[i].bytes[k], m.med, m.lo, m.hi);
				continue;
			}

			double q = paired(r[i].t[k], r[i].base[k]);

			printf("| %llu MiB | %s | %llu | %.2f (%.2f - %.2f) | %.2f (%.2f - %.2f) "
			       "| %.2f | >= 0.8: %s |\n", (unsigned long long)(r[i].vram / MIB),
			       how[k], (unsigned long long)r[i].bytes[k], m.med, m.lo, m.hi, s.med,
			       s.lo, s.hi, q, verdict(q >= 0.8));
		}
}

/* ---- 1b and 2: a partition in this process ---- */

struct local {
	struct gpup_gpu *gpu;
	struct iommu_domain *dom;
	struct vgpu *v;
	uint8_t *vram;
};

static int local_up(struct local *l, uint64_t size)
{
	struct gpup_gpu_cfg gc = { .vram_size = size, .ncompute = 1, .ncopy = 1 };
	struct iommu_domain_cfg dc = { .name = "mig-perf" };

	l->gpu = gpup_sim_gpu_create(&gc);
	l->dom = iommu_domain_create(&dc);
	if (!l->gpu || !l->dom)
		return -1;
	struct vgpu_cfg vc = { .gpu = l->gpu, .vram_size = size, .iommu = l->dom,
			       .name = "mig-perf", .type = "sim-1g-1" };

	l->v = vgpu_create(&vc);
	l->vram = gpup_gpu_vram_map(l->gpu);
	return l->v && l->vram ? 0 : -1;
}

static void local_down(struct local *l)
{
	if (l->v)
		vgpu_destroy(l->v);
	if (l->dom)
		iommu_domain_destroy(l->dom);
	if (l->gpu)
		gpup_gpu_destroy(l->gpu);
}

static int local_set(struct local *l, uint32_t state)
{
	struct vfio_device_feature_mig_state m = { .device_state = state, .data_fd = -1 }, out;
	int n = vgpu_mig_feature(l->v, VFIO_DEVICE_FEATURE_SET |
				 VFIO_DEVICE_FEATURE_MIG_DEVICE_STATE, &m, sizeof(m), &out,
				 sizeof(out));

	return n < 0 ? n : 0;
}

/* What one pass over VRAM does per MiB: [memcpy, XXH3 of VRAM, XXH3 of
 * the copy (in cache), memcpy then XXH3 of the copy, the two in one pass
 * (mig_hash_copy), the saver]. */
enum { P_MEMCPY, P_HASH_MEM, P_HASH_CACHE, P_COPY_HASH, P_HASH_COPY, P_SAVE, NPASS };

static double pass(struct local *l, uint64_t size, int kind, uint8_t *buf)
{
	volatile uint64_t sink = 0;
	double t0 = now_s();
	int n;

	if (kind == P_SAVE) {
		if (local_set(l, MIG_STOP_COPY))
			return -1;
		while ((n = vgpu_mig_read(l->v, buf, XFER)) == (int)XFER)
			;
		double t = now_s() - t0;

		return n < 0 || local_set(l, MIG_RUNNING) ? -1 : t;
	}
	for (uint64_t off = 0; off < size; off += XFER) {
		if (kind == P_MEMCPY || kind == P_COPY_HASH)
			memcpy(buf, l->vram + off, XFER);
		if (kind == P_HASH_MEM)
			sink += mig_hash(l->vram + off, XFER);
		if (kind == P_HASH_CACHE || kind == P_COPY_HASH)
			sink += mig_hash(buf, XFER);
		if (kind == P_HASH_COPY)
			sink += mig_hash_copy(buf, 0, l->vram + off, XFER);
	}
	__asm__ volatile("" : : "r"(buf) : "memory");
	return now_s() - t0;
}

static int passes(struct local *l, uint64_t size, uint8_t *buf, double t[NPASS][REPS])
{
	for (int i = 0; i < REPS; i++)
		for (int k = 0; k < NPASS; k++)
			if ((t[k][i] = pass(l, size, k, buf)) < 0)
				return -1;
	return 0;
}

static void passes_print(double t[NPASS][REPS], uint64_t size, const struct stream_row *r,
			 double sock_gbs)
{
	static const char *const what[] = {
		"memcpy VRAM -> 1 MiB buffer", "XXH3-64 (mig_hash) of VRAM, from memory",
		"XXH3-64 (mig_hash) of the 1 MiB buffer, in cache",
		"memcpy, then mig_hash of the copy",
		"mig_hash_copy: copied and hashed in one pass (the saver's inner loop)",
		"the saver: STOP_COPY stream read in process (vgpu_mig_read)",
	};
	struct dist m = rate_of(t[P_MEMCPY], REPS, size);
	struct dist s = rate_of(t[P_SAVE], REPS, size);
	double wire = rate_of(r->t[0], REPS, r->bytes[0]).med;

	printf("\n| pass over %llu MiB of VRAM, 1 MiB at a time | GB/s | range | vs memcpy |\n"
	       "| --- | ---: | ---: | ---: |\n", (unsigned long long)(size / MIB));
	for (int k = 0; k < NPASS; k++) {
		struct dist d = rate_of(t[k], REPS, size);

		printf("| %s | %.2f | %.2f - %.2f | %.2f |\n", what[k], d.med, d.lo, d.hi,
		       d.med / m.med);
	}
	struct dist hm = rate_of(t[P_HASH_MEM], REPS, size);

	printf("\nIn process the copying saver (what a checkpoint uses) runs at %.2f GB/s, "
	       "%.2f of memcpy: each chunk is copied into the reader's buffer by a loop that "
	       "hashes what it stores (mig_hash_copy, XXH3-64 on the %s loop), so VRAM is read "
	       "once, where a memcpy and then a hash of the copy read it twice.  Over the "
	       "socket no reply is "
	       "copied by the server: STOP_COPY replies are VRAM in place (the server hashes "
	       "each VRAM chunk where it lies), PRE_COPY replies are copied once into a buffer "
	       "of the device with the same loop (engines may write a page between its hash and "
	       "its send), and "
	       "both reach the socket by reference (vmsplice into a pipe, splice into the "
	       "socket), so the client's copy out of the socket is the only one.  Each MiB is "
	       "a request and a reply, but the device prepares the next reply while the client "
	       "takes the last: in STOP_COPY it hashes the next VRAM chunk, in PRE_COPY it "
	       "builds the whole next reply in a second buffer, in chunks of at most 64 pages.  "
	       "What of the last reply the socket has no room for waits in the pipe and is fed "
	       "to the socket between those chunks (the socket non-blocking meanwhile), so the "
	       "overlap does not need a socket that holds a whole reply.  The server asks %d KiB "
	       "of send buffer for each client socket (the baseline's writer asks the same); this "
	       "host grants %d KiB (net.core.wmem_max).  Hashing and the socket one after the "
	       "other would "
	       "give 1 / (1/%.2f + 1/%.2f) = %.2f GB/s for STOP_COPY from this run's floors; "
	       "measured: %.2f GB/s.\n",
	       s.med, s.med / m.med, mig_hash_loop(), SNDBUF >> 10, granted_sndbuf_kib(),
	       hm.med, sock_gbs, 1 / (1 / hm.med + 1 / sock_gbs), wire);
}

/* ---- 2. checkpoint files ---- */

enum { C_DIRECT, C_DIRECT_SYNC, C_DIRECT_DATA, C_BUFFERED, C_FULL, C_RESTORE, C_HALF,
	C_HALF_RESTORE, NCK };

/* Drop the file's pages from the page cache: the restore reads the disk. */
static void evict(const char *dir, const char *name)
{
	char path[512];
	int fd;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd >= 0) {
		posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
		close(fd);
	}
}

static double ckpt_once(struct local *l, const char *dir, bool restore, uint64_t *fsize)
{
	char err[256] = "", path[512];
	struct stat st;
	double t0 = now_s();
	int rc;

	if (restore) {
		evict(dir, "ckpt");
		t0 = now_s();
		rc = vgpu_restore(l->v, dir, "ckpt", err, sizeof(err));
	} else {
		/* Written anew, as the baselines are: replacing the last
		 * file would also pay for freeing its blocks. */
		snprintf(path, sizeof(path), "%s/ckpt", dir);
		unlink(path);
		t0 = now_s();
		rc = vgpu_checkpoint(l->v, dir, "ckpt", err, sizeof(err));
	}
	double t = now_s() - t0;

	snprintf(path, sizeof(path), "%s/ckpt", dir);
	if (rc || stat(path, &st)) {
		fprintf(stderr, "mig_perf: %s: %s\n", restore ? "restore" : "checkpoint", err);
		return -1;
	}
	*fsize = (uint64_t)st.st_size;
	return t;
}

/* Full partition, then half zero; the restore checked against the hash
 * of what was saved. */
static int ckpt_all(struct local *l, uint64_t size, const char *dir, double t[NCK][REPS],
		    uint64_t fsize[NCK], const uint8_t *buf)
{
	for (int half = 0; half < 2; half++) {
		pattern(l->vram, size, 0, half);
		uint64_t want = XXH3_64bits(l->vram, size);

		for (int i = 0; i < CK_REPS; i++) {
			int w = half ? C_HALF : C_FULL;

			if (!half && (t[C_DIRECT][i] = odirect_write(dir, size, false, false)) < 0 &&
			    t[C_DIRECT][i] != -EINVAL)
				return -1;
			if (!half &&
			    (t[C_DIRECT_SYNC][i] = odirect_write(dir, size, false, true)) < 0 &&
			    t[C_DIRECT_SYNC][i] != -EINVAL)
				return -1;
			if (!half &&
			    (t[C_DIRECT_DATA][i] = odirect_write(dir, size, true, true)) < 0 &&
			    t[C_DIRECT_DATA][i] != -EINVAL)
				return -1;
			if (!half && (t[C_BUFFERED][i] = buffered_write(dir, size, buf)) < 0)
				return -1;
			if ((t[w][i] = ckpt_once(l, dir, false, &fsize[w])) < 0 ||
			    (t[w + 1][i] = ckpt_once(l, dir, true, &fsize[w + 1])) < 0)
				return -1;
			if (XXH3_64bits(l->vram, size) != want) {
				fprintf(stderr, "mig_perf: a restored partition differs from "
						"the one checkpointed\n");
				return -1;
			}
		}
	}
	return 0;
}

/* Median and range over the repetitions of base[i] / t[i]. */
static struct dist paired_ck(const double *base, const double *t)
{
	double q[CK_REPS];

	for (int i = 0; i < CK_REPS; i++)
		q[i] = base[i] / t[i];
	return dist_of(q, CK_REPS);
}

static void ckpt_print(double t[NCK][REPS], const uint64_t fsize[NCK], uint64_t size,
		       const char *fs)
{
	static const char *const what[] = {
		"O_DIRECT write of zeros, 1 MiB writes (dd oflag=direct)",
		"the same, then fsync (dd oflag=direct conv=fsync)",
		"O_DIRECT write of the VRAM pattern (non-zero), 1 MiB writes, then fsync",
		"write() through the page cache, 1 MiB writes, then fsync",
		"checkpoint, every page data", "restore of it (file evicted from the page cache)",
		"checkpoint, every other MiB zero", "restore of it (file evicted)",
	};
	bool direct = t[C_DIRECT][0] >= 0;
	struct dist base = { 0 }, bsync = { 0 }, bdata = { 0 }, ps = { 0 };
	struct dist full = rate_of(t[C_FULL], CK_REPS, size);

	if (direct) {
		base = rate_of(t[C_DIRECT], CK_REPS, size);
		bsync = rate_of(t[C_DIRECT_SYNC], CK_REPS, size);
		bdata = rate_of(t[C_DIRECT_DATA], CK_REPS, size);
		ps = paired_ck(t[C_DIRECT_SYNC], t[C_FULL]);
	}
	printf("| %llu MiB partition | ms | range | GB/s of VRAM | vs dd oflag=direct "
	       "| vs dd oflag=direct conv=fsync | vs O_DIRECT of data, fsync | file bytes |\n"
	       "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n",
	       (unsigned long long)(size / MIB));
	for (int k = 0; k < NCK; k++) {
		struct dist d, r;

		if (k <= C_DIRECT_DATA && !direct) {
			printf("| %s | not supported on %s | | | | | | |\n", what[k], fs);
			continue;
		}
		d = dist_of(t[k], CK_REPS);
		r = rate_of(t[k], CK_REPS, size);
		printf("| %s | %.0f | %.0f - %.0f | %.2f | ", what[k], d.med * 1e3, d.lo * 1e3,
		       d.hi * 1e3, r.med);
		if (direct && k != C_RESTORE && k != C_HALF_RESTORE)
			printf("%.2f | %.2f | %.2f |", r.med / base.med, r.med / bsync.med,
			       r.med / bdata.med);
		else
			printf("- | - | - |");
		printf(" %llu |\n", (unsigned long long)(k <= C_BUFFERED ? size : fsize[k]));
	}
	if (!direct) {
		printf("\nCheckpoint write throughput: no O_DIRECT baseline on %s.\n", fs);
		return;
	}
	printf("\nCheckpoint write throughput against the same bytes' durability: **%.2f** "
	       "of `dd oflag=direct conv=fsync` of zeros (medians; target >= 0.8): **%s**; "
	       "each checkpoint against the write just before it, median %.2f (range %.2f - "
	       "%.2f).  Against `dd oflag=direct` with no fsync: %.2f.  A checkpoint is "
	       "durable when it returns (fsync of the file, rename, fsync of the directory); "
	       "dd without conv=fsync is not: on this host its O_DIRECT writes land in the "
	       "virtual disk's write-back cache and the fsync after them, which flushes it, "
	       "takes %.0f ms of the %.0f.  Each checkpoint is written into a directory "
	       "without the last one (removed before the clock starts), as dd's file is new: "
	       "replacing a file also frees the old one's blocks, which on this host's "
	       "ext4 (mounted with discard) costs about a second per GiB.  The saver fills "
	       "a ring of eight 1 MiB aligned buffers while a writer thread writes the "
	       "ones before, up to four in one write, with O_DIRECT (ext4; through the "
	       "page cache where a file system has no O_DIRECT), so saving and writing "
	       "overlap and the checkpoint waits on the disk; the restore's reader "
	       "thread reads ahead the same way while the parser loads.\n",
	       full.med / bsync.med, verdict(full.med / bsync.med >= 0.8), ps.med, ps.lo,
	       ps.hi, full.med / base.med,
	       (dist_of(t[C_DIRECT_SYNC], CK_REPS).med - dist_of(t[C_DIRECT], CK_REPS).med) * 1e3,
	       dist_of(t[C_DIRECT_SYNC], CK_REPS).med * 1e3);
}

/* ---- 3. the pause of a device migration under a dirtying workload ---- */

/* A guest workload: a DIRTY_BLOCK FILL of VRAM and a FENCE every DIRTY_PERIOD on
 * queue 0 of whichever partition holds it (its doorbell in db), waiting
 * for the fence by polling guest RAM (so it needs no vfio-user call), and
 * remembering what each MiB should hold. */
struct load {
	pthread_t th;
	uint8_t *ram;
	atomic_int db;
	atomic_bool stop;
	uint64_t blocks, bytes, seq;
	uint32_t pi, *expect;     /* per block: its FILL pattern, 0 untouched */
	double t0, t1;
	int err;
};

static void load_put(struct load *w, const union gpup_cmd *c)
{
	memcpy(w->ram + (w->pi++ % GPUP_VG_RING_ENTRIES) * GPUP_CMD_SIZE, c, GPUP_CMD_SIZE);
}

/* One FILL and its fence: 0, or -ETIMEDOUT after 10 s or more without it. */
static int load_step(struct load *w, uint64_t block, uint32_t pat)
{
	volatile uint64_t *fence = (volatile uint64_t *)(w->ram + GPUP_VG_FENCE_OFF);
	union gpup_cmd f = gpup_cmd_fill(GPUP_SPACE_VRAM, block * DIRTY_BLOCK, DIRTY_BLOCK,
					   pat);
	union gpup_cmd d = gpup_cmd_fence(GPUP_SPACE_IOVA, gpup_vg_iova(GPUP_VG_FENCE_OFF),
					  ++w->seq, 0);
	uint64_t one = 1;

	load_put(w, &f);
	load_put(w, &d);
	atomic_store_explicit((_Atomic uint32_t *)(w->ram + GPUP_VG_PI_OFF), w->pi,
			      memory_order_release);
	/* A doorbell rung on a partition that just stopped is rung again, on
	 * the one holding the queue by then, every 2 ms of waiting. */
	for (int i = 0; i < 100000 && __atomic_load_n(fence, __ATOMIC_ACQUIRE) != w->seq; i++) {
		if (i % 20 == 0 && write(atomic_load(&w->db), &one, 8) != 8)
			return -errno;
		usleep(100);
	}
	return __atomic_load_n(fence, __ATOMIC_ACQUIRE) == w->seq ? 0 : -ETIMEDOUT;
}

static void *load_run(void *arg)
{
	struct load *w = arg;
	uint64_t x = 0x2545f4914f6cdd1dull;
	double next = now_s();

	w->t0 = next;
	while (!atomic_load(&w->stop) && !w->err) {
		double now = now_s();

		if (now < next)
			usleep((useconds_t)((next - now) * 1e6));
		next = (now > next ? now : next) + DIRTY_PERIOD;
		x ^= x << 13, x ^= x >> 7, x ^= x << 17;
		uint64_t block = x % w->blocks;
		uint32_t pat = (uint32_t)w->seq * 2654435761u | 0x80000001u;

		w->err = load_step(w, block, pat);
		if (!w->err) {
			w->expect[block] = pat;
			w->bytes += DIRTY_BLOCK;
		}
	}
	w->t1 = now_s();
	return NULL;
}

/* Whether VRAM holds the pattern and every FILL the workload saw land. */
static bool load_check(const struct load *w, const uint8_t *vram)
{
	static uint8_t ref[DIRTY_BLOCK];

	for (uint64_t b = 0; b < w->blocks; b++) {
		const uint32_t *p = (const uint32_t *)(vram + b * DIRTY_BLOCK);

		if (!w->expect[b]) {
			pattern(ref, DIRTY_BLOCK, b * DIRTY_BLOCK, false);
			if (memcmp(ref, p, DIRTY_BLOCK))
				return false;
			continue;
		}
		for (uint64_t i = 0; i < DIRTY_BLOCK / 4; i++)
			if (p[i] != w->expect[b])
				return false;
	}
	return true;
}

struct move_row {
	uint64_t vram;
	int n;
	double pause[MAX_MOVES], total[MAX_MOVES], bytes[MAX_MOVES], stop_bytes[MAX_MOVES];
	double rounds[MAX_MOVES];
	double dirty_rate;
	double seek_hole;         /* s: lseek SEEK_HOLE over the VRAM file, full */
	bool exact;
};

/* One move from s to d, the workload running: fills r's sample i. */
static int move_once(struct part *s, struct part *d, struct load *w, uint8_t *buf,
		     struct move_row *r, int i)
{
	int64_t n = 0, moved = 0;
	int rounds = 0;
	double t0, tp;

	if (mig_set(d->c, MIG_RESUMING))
		return -1;
	t0 = now_s();
	if (mig_set(s->c, MIG_PRE_COPY))
		return -1;
	do {
		n = pump(s->c, d->c, buf);
		moved += n;
		rounds++;
	} while (n >= (int64_t)ROUND_DONE && rounds < MAX_ROUNDS);
	tp = now_s();
	if (n < 0 || mig_set(s->c, MIG_STOP_COPY) || (n = pump(s->c, d->c, buf)) < 0 ||
	    mig_set(d->c, MIG_RUNNING))
		return -1;
	r->pause[i] = now_s() - tp;
	r->total[i] = now_s() - t0;
	atomic_store(&w->db, d->db);
	r->bytes[i] = (double)(moved + n);
	r->stop_bytes[i] = (double)n;
	r->rounds[i] = rounds;
	return vfu_client_reset(s->c);
}

/* Guest RAM shared by both partitions, queue 0 on a, a's VRAM filled. */
static int move_setup(struct part p[2], struct gpup_vg *g, struct load *w)
{
	struct vfu_iofd io[GPUP_MAX_QUEUES];
	int n;

	if (gpup_vg_open(g, p[0].c, RAM_SIZE) || gpup_vg_queue_setup(g, 0, GPUP_ENGINE_COPY) ||
	    vfu_client_dma_map(p[1].c, g->ram_fd, 0, GPUP_VG_IOVA_BASE, RAM_SIZE,
			       VFIO_USER_DMA_F_READ | VFIO_USER_DMA_F_WRITE))
		return -1;
	p[0].db = dup(g->db_fd[0]);
	n = vfu_client_region_io_fds(p[1].c, VFIO_PCI_BAR0_REGION_INDEX, io, GPUP_MAX_QUEUES);
	for (int i = 0; i < n && i < (int)GPUP_MAX_QUEUES; i++) {
		if (io[i].offset == GPUP_DOORBELL(0) && p[1].db < 0)
			p[1].db = io[i].fd;
		else
			close(io[i].fd);
	}
	pattern(p[0].vram, p[0].size, 0, false);
	*w = (struct load){ .ram = g->ram, .db = p[0].db, .blocks = p[0].size / DIRTY_BLOCK };
	w->expect = calloc(w->blocks, sizeof(*w->expect));
	return p[0].db < 0 || p[1].db < 0 || !w->expect ? -1 : 0;
}

/* What the device's vram_data op pays on a full VRAM file: the first hole
 * is its end, and lseek walks every page to find it.  Median of three. */
static double seek_hole(int fd)
{
	double t[3];

	for (int i = 0; i < 3; i++) {
		double t0 = now_s();

		if (lseek(fd, 0, SEEK_HOLE) < 0)
			return -1;
		t[i] = now_s() - t0;
	}
	return dist_of(t, 3).med;
}

static int move_size(struct move_row *r, const char *type, int moves, uint8_t *buf)
{
	struct part p[2] = { { .db = -1, .fd = -1 }, { .db = -1, .fd = -1 } };
	struct gpup_vg g = { .ram_fd = -1, .ram = MAP_FAILED };
	struct load w = { 0 };
	int rc = -1, i = 0;

	if (part_open(&p[0], "gpu0", type) || part_open(&p[1], "gpu1", type) ||
	    move_setup(p, &g, &w) || pthread_create(&w.th, NULL, load_run, &w))
		goto out;
	r->vram = p[0].size;
	usleep(100000);                   /* the workload under way */
	for (i = 0; i < moves && !w.err; i++)
		if (move_once(&p[i % 2], &p[(i + 1) % 2], &w, buf, r, i))
			break;
	atomic_store(&w.stop, true);
	pthread_join(w.th, NULL);
	r->n = i;
	r->dirty_rate = (double)w.bytes / (w.t1 - w.t0) / 1e6;
	r->exact = load_check(&w, p[i % 2].vram);
	r->seek_hole = seek_hole(p[i % 2].fd);
	rc = i == moves && !w.err && r->exact ? 0 : -1;
	if (w.err)
		fprintf(stderr, "mig_perf: the workload stalled: %s\n", strerror(-w.err));
	if (i == moves && !r->exact)
		fprintf(stderr, "mig_perf: VRAM after %d %s moves is not what the workload "
			"wrote\n", moves, type);
out:
	if (rc && i < moves)
		fprintf(stderr, "mig_perf: a %s move failed\n", type);
	free(w.expect);
	if (g.c)
		gpup_vg_close(&g);
	part_close(&p[0]);
	part_close(&p[1]);
	return rc;
}

static double pct(const double *v, int n, double q)
{
	double s[MAX_MOVES];
	int k = (int)(q * n + 0.999999) - 1;

	memcpy(s, v, (size_t)n * sizeof(*s));
	perf_sort(s, (size_t)n);
	return s[k < 0 ? 0 : k >= n ? n - 1 : k];
}

static void move_row_print(const struct move_row *r, double memcpy_gbs, bool *pause_ok,
			   bool *total_ok)
{
	struct dist tot = dist_of(r->total, r->n), by = dist_of(r->bytes, r->n);
	double ideal = by.med / (memcpy_gbs * 1e9), p99 = pct(r->pause, r->n, 0.99);

	*pause_ok &= p99 <= 0.020;
	*total_ok &= tot.med / ideal <= 1.5;
	printf("| %llu MiB | %d | %.0f | %.0f | %.0f | %.1f | %.1f | %.1f | %.2f | %.0f | %.3f "
	       "| %.1fx | %s |\n", (unsigned long long)(r->vram / MIB), r->n, r->dirty_rate,
	       dist_of(r->rounds, r->n).med, dist_of(r->stop_bytes, r->n).med / 1024,
	       pct(r->pause, r->n, 0.5) * 1e3, p99 * 1e3, r->seek_hole * 1e3, tot.med,
	       by.med / MIB, ideal, tot.med / ideal, r->exact ? "yes" : "NO");
}

static void move_print(const struct move_row *r, int n, double memcpy_gbs)
{
	bool pause_ok = true, total_ok = true;

	printf("| VRAM | moves | dirtied MB/s | pre-copy rounds | STOP_COPY KiB | pause p50 ms "
	       "| p99 ms | SEEK_HOLE of the full VRAM file ms | total s | moved MiB | that at "
	       "memcpy s | total vs that | VRAM bit-exact |\n| --- | ---: | ---: | ---: | ---: "
	       "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |\n");
	for (int i = 0; i < n; i++)
		move_row_print(&r[i], memcpy_gbs, &pause_ok, &total_ok);
	printf("\nPause p99 <= 20 ms at every size: **%s**; p50 at %llu MiB is %.1fx p50 at "
	       "%llu MiB (target: independent of VRAM size).  Total time of this client-driven "
	       "move vs its bytes at memcpy speed: **%s** against 1.5x, a target the issue "
	       "sets for `gpup move` (its own section), not for a client that reads each MiB "
	       "and writes it on before asking for the next.\n", verdict(pause_ok),
	       (unsigned long long)(r[n - 1].vram / MIB),
	       pct(r[n - 1].pause, r[n - 1].n, 0.5) / pct(r[0].pause, r[0].n, 0.5),
	       (unsigned long long)(r[0].vram / MIB), verdict(total_ok));
	printf("\nThe saver asks the VRAM file where its holes are (lseek SEEK_DATA, then "
	       "SEEK_HOLE) only for pages the device has not written since the save "
	       "began: on a file with no hole SEEK_HOLE walks every page to the end (the "
	       "SEEK_HOLE column), and a page the device wrote is data anyway, so the "
	       "rounds after the first, and the pause, no longer pay that walk.  A move "
	       "is otherwise bound by the stream's two socket crossings, one request and "
	       "reply at a time, and the destination's first touch of its VRAM (the "
	       "written-on row of the first table); `gpup move` of a sim GPU's partition "
	       "(its own section) moves the VRAM file instead and copies nothing.\n");
}

/* ---- the report ---- */

static void intro(void)
{
	printf("## Migration: the stream, checkpoints and the pause\n\n");
	printf("The device side of VFIO v2 migration (docs/MIGRATION.md) on sim GPUs, every "
	       "figure a median over repetitions with its range, every ratio against a "
	       "floor of this host measured in the same run.  VRAM holds non-zero data "
	       "unless said.  Reads and writes of the stream are 1 MiB, the vfio-user "
	       "server's largest.  Command: `make bench` (perf/mig_perf.c); "
	       "one part alone: `build/perf/mig_perf stream`, `ckpt` or `move`, with GPUP_BIN "
	       "and GPUP_GUESTS set as `make bench` sets them.\n\n");
}

static void floors_print(double mem[REPS], double sock[REPS], double hash[REPS],
			 double direct[REPS], const char *fs)
{
	struct dist m = rate_of(mem, REPS, 256 * MIB);
	struct dist s = sock ? rate_of(sock, REPS, GIB) : (struct dist){ 0 };
	struct dist h = rate_of(hash, REPS, GIB);

	printf("Floors of this host (same run):\n\n| floor | GB/s | range |\n| --- | ---: | ---: |\n");
	printf("| memcpy, 256 MiB between touched buffers | %.2f | %.2f - %.2f |\n", m.med, m.lo,
	       m.hi);
	if (sock)
		printf("| UNIX stream socket, another process writing, 1 MiB reads, 1 GiB | %.2f "
		       "| %.2f - %.2f |\n", s.med, s.lo, s.hi);
	printf("| XXH3-64 (mig_hash) over 1 GiB of VRAM, 1 MiB at a time | %.2f | %.2f - %.2f |\n", h.med,
	       h.lo, h.hi);
	if (direct && direct[0] >= 0) {
		struct dist d = rate_of(direct, CK_REPS, GIB);

		printf("| O_DIRECT write of 1 GiB of zeros into the checkpoint directory (%s) | %.2f | "
		       "%.2f - %.2f |\n", fs, d.med, d.lo, d.hi);
	}
}

/* The parts to run: all by default, or those named on the command line. */
enum { W_STREAM = 1, W_CKPT = 2, W_MOVE = 4 };

struct results {
	unsigned int want;
	double mem[REPS], pass_t[NPASS][REPS], ck[NCK][REPS];
	uint64_t fsize[NCK];
	struct stream_row stream[2];
	struct move_row move[3];
	int nmove;
	char dir[256];
	const char *fs, *skipped;
};

static void stream_report(struct results *R, double *sock1g);
static void ckpt_report(struct results *R);
static void move_report(struct results *R, double memcpy_gbs);

static void report(struct results *R)
{
	double sock1g[REPS];
	struct dist mem = rate_of(R->mem, REPS, 256 * MIB);
	struct stream_row *s1 = &R->stream[1];

	for (int i = 0; i < REPS; i++)
		sock1g[i] = s1->base[0][i] * (double)GIB / (double)s1->bytes[0];
	intro();
	floors_print(R->mem, R->want & W_STREAM ? sock1g : NULL, R->pass_t[P_HASH_MEM],
		     R->want & W_CKPT ? R->ck[C_DIRECT] : NULL, R->fs);
	if (R->want & W_STREAM)
		stream_report(R, sock1g);
	if (R->want & W_CKPT)
		ckpt_report(R);
	if (R->want & W_MOVE)
		move_report(R, mem.med);
	if (R->skipped)
		printf("\n%s\n", R->skipped);
}

static void stream_report(struct results *R, double *sock1g)
{
	printf("\n### MIG_DATA_READ over a partition's vfio-user socket\n\n");
	printf("A daemon with two %llu MiB sim GPUs; a client takes a partition through "
	       "STOP_COPY (RUNNING -> STOP -> STOP_COPY), or through one PRE_COPY round and "
	       "then STOP_COPY, reading the whole stream, timed from the first SET to the "
	       "last read; the baseline is another process writing the same number of "
	       "bytes into a UNIX stream socket that this one reads 1 MiB at a time.\n\n",
	       (unsigned long long)(GPU_VRAM / MIB));
	stream_print(R->stream, 2);
	passes_print(R->pass_t, GIB, &R->stream[1], rate_of(sock1g, REPS, GIB).med);
}

static void ckpt_report(struct results *R)
{
	printf("\n### Checkpoint files\n\n");
	printf("`vgpu_checkpoint` (migrate's `mig_file_save`: pre-copy while running, then "
	       "STOP_COPY; written to a temporary name, fsynced, renamed, directory fsynced) "
	       "of a partition in this process (what `gpup checkpoint --partition` runs in the daemon); "
	       "against the equivalent of `dd if=/dev/zero of=DIR/x bs=1M count=1024 "
	       "oflag=direct` into the same directory (%s), alternating.  The restore "
	       "(`vgpu_restore`) reads the file after its pages were dropped from the page "
	       "cache, and must give back the VRAM that was saved.\n\n", R->fs);
	ckpt_print(R->ck, R->fsize, GIB, R->fs);
}

static void move_report(struct results *R, double memcpy_gbs)
{
	printf("\n### Pause of a device migration under a dirtying workload\n\n");
	printf("A move between two GPUs driven by a vfio-user client, as a VMM would drive "
	       "it (not `gpup move`, which moves a sim GPU's VRAM file without copying).  "
	       "Two partitions of the same type on the daemon's two GPUs share one guest "
		"RAM (DMA_MAP of the same memfd).  A workload thread writes a 256 KiB FILL to "
		"a random 256 KiB of VRAM and a FENCE every 2.5 ms (100 MiB/s) through queue "
		"0 of whichever partition holds it, polling the fence in guest RAM.  A move: "
		"the destination to RESUMING; the source to "
		"PRE_COPY, rounds read and written on until one moves under 2 MiB (at most "
		"%d); then the pause, from the SET to STOP_COPY to the destination back in "
		"RUNNING (the rest read and written, RESUMING -> STOP -> RUNNING); then the "
		"workload rings the destination's doorbell and the source is reset.  Moves "
		"alternate between the two GPUs.  p99 is of the moves made, so the slowest of "
		"them.  Total is from the SET to PRE_COPY to the destination in RUNNING, set "
		"against the bytes moved at the memcpy rate above (%.2f GB/s).  After the "
		"last move every 256 KiB of VRAM must hold the initial data or the last FILL "
		"the workload saw land (bit-exact).\n\n",
		MAX_ROUNDS, memcpy_gbs);
	move_print(R->move, R->nmove, memcpy_gbs);
}

/* ---- main ---- */

static const char *const types[3] = { "sim-256m-16", "sim-1g-4", "sim-4g-1" };
static const int nmoves[3] = { 11, 5, 3 };

static int run_daemon_parts(struct results *R, int peer, uint8_t *buf)
{
	static const char *const args[] = { "--sim-gpus", "2", "--vram", "4G", NULL };
	const struct dl_opts o = { .name = "gpup-mig-perf", .args = args };

	if (dl_start(&dmn, &o)) {
		fprintf(stderr, "mig_perf: could not start a daemon (GPUP_BIN?)\n");
		return -1;
	}
	for (int i = 0; i < 2 && (R->want & W_STREAM); i++)
		if (stream_size(&R->stream[i], types[i], i == 0, peer, buf))
			return -1;
	for (int i = 0; i < 3 && (R->want & W_MOVE); i++) {
		if (i == 2 && mem_available() < 2 * GPU_VRAM + 2 * GIB) {
			R->skipped = "4 GiB partitions not measured: less than 10 GiB of memory "
				     "was available for a source and a destination of 4 GiB.";
			break;
		}
		if (move_size(&R->move[i], types[i], nmoves[i], buf))
			return -1;
		R->nmove = i + 1;
	}
	return 0;
}

static int run_local(struct results *R, uint8_t *buf)
{
	struct local l = { 0 };
	const char *tmp = getenv("TMPDIR");
	int rc = -1;

	snprintf(R->dir, sizeof(R->dir), "%s/gpup-mig-perf-XXXXXX", tmp && *tmp ? tmp : "/tmp");
	if (!mkdtemp(R->dir) || local_up(&l, GIB)) {
		fprintf(stderr, "mig_perf: could not set up a partition in process\n");
		goto out;
	}
	R->fs = fs_name(R->dir);
	pattern(l.vram, GIB, 0, false);
	rc = passes(&l, GIB, buf, R->pass_t);
	if (!rc && (R->want & W_CKPT))
		rc = ckpt_all(&l, GIB, R->dir, R->ck, R->fsize, buf);
out:
	local_down(&l);
	if (R->dir[0]) {
		char path[300];

		snprintf(path, sizeof(path), "%s/ckpt", R->dir);
		unlink(path);
		rmdir(R->dir);
	}
	return rc;
}

/* "stream", "ckpt", "move": only those parts. */
static int parse_args(int argc, char **argv, unsigned int *want)
{
	static const char *const names[] = { "stream", "ckpt", "move" };

	*want = argc > 1 ? 0 : W_STREAM | W_CKPT | W_MOVE;
	for (int i = 1; i < argc; i++) {
		unsigned int k = 0;

		while (k < 3 && strcmp(argv[i], names[k]))
			k++;
		if (k == 3) {
			fprintf(stderr, "usage: mig_perf [stream] [ckpt] [move] (default: all)\n");
			return -1;
		}
		*want |= 1u << k;
	}
	return 0;
}

int main(int argc, char **argv)
{
	static struct results R;
	static uint8_t buf[XFER];
	int peer = -1, st, rc;
	pid_t pid;

	if (parse_args(argc, argv, &R.want))
		return 2;
	pid = peer_start(&peer);

	if (pid < 0 || memcpy_floor(R.mem)) {
		fprintf(stderr, "mig_perf: could not set up the baselines\n");
		return 1;
	}
	rc = run_local(&R, buf);
	if (!rc && (R.want & (W_STREAM | W_MOVE)))
		rc = run_daemon_parts(&R, peer, buf);
	dl_teardown(&dmn);
	close(peer);
	waitpid(pid, &st, 0);
	if (rc)
		return 1;
	report(&R);
	return 0;
}
