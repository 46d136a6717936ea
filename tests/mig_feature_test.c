// SPDX-License-Identifier: MIT
/* migrate: DEVICE_FEATURE as the vfio-user spec and <linux/vfio.h> give
 * it (flag rules, PROBE, sizes, the features offered), DMA logging over a
 * real IOMMU domain, and checkpoint files (mig_file.c). */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <signal.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "iommu/iommu.h"
#include "migrate/mig.h"

#define PG MIG_PAGE_SIZE
#define SIZE (64 * (int)PG)
#define GET VFIO_DEVICE_FEATURE_GET
#define SET VFIO_DEVICE_FEATURE_SET
#define PROBE VFIO_DEVICE_FEATURE_PROBE
#define FEAT_ALL (VFIO_MIGRATION_STOP_COPY | VFIO_MIGRATION_P2P | VFIO_MIGRATION_PRE_COPY)

/* A minimal device: VRAM, a blob, an IOMMU domain, no-op tracking. */
struct dev {
	uint8_t vram[SIZE];
	uint8_t blob[8];
	bool quiesced, fail_save;
	struct iommu_domain *dom;
	uint8_t *host;
};

static void d_ident(void *d, struct mig_ident *id)
{
	(void)d;
	memset(id, 0, sizeof(*id));
	strcpy(id->model, "sim-gen1");
	strcpy(id->type, "t");
	id->vram_size = SIZE;
}
static int d_quiesce(void *d) { ((struct dev *)d)->quiesced = true; return 0; }
static void d_resume(void *d) { ((struct dev *)d)->quiesced = false; }
static uint8_t *d_vram(void *d, uint64_t *size) { *size = SIZE; return ((struct dev *)d)->vram; }
static int d_track(void *d, bool on) { (void)d; (void)on; return 0; }
static void d_harvest(void *d, uint64_t *bm) { (void)d; (void)bm; }
static int d_save(void *d, void *buf, size_t max)
{
	(void)max;
	if (((struct dev *)d)->fail_save)
		return -EIO;
	memcpy(buf, ((struct dev *)d)->blob, 8);
	return 8;
}
static int d_load(void *d, const void *buf, size_t len)
{
	if (len != 8)
		return -EINVAL;
	memcpy(((struct dev *)d)->blob, buf, 8);
	return 0;
}
static void d_reset(void *d)
{
	memset(((struct dev *)d)->vram, 0, SIZE);
	memset(((struct dev *)d)->blob, 0, 8);
}
static struct iommu_domain *d_iommu(void *d) { return ((struct dev *)d)->dom; }

static const struct mig_dev_ops ops = {
	.version = MIG_DEV_OPS_VERSION, .ident = d_ident, .quiesce = d_quiesce,
	.resume = d_resume, .vram = d_vram, .vram_track = d_track, .vram_harvest = d_harvest,
	.state_save = d_save, .state_load = d_load, .reset = d_reset, .iommu = d_iommu,
};

static char logline[512];
static void capture(void *o, const char *line) { (void)o; snprintf(logline, sizeof(logline), "%s", line); }

static struct dev *dev;
static struct mig_dev *md;
static uint8_t out[1 << 16];

static void setup(void)
{
	dev = calloc(1, sizeof(*dev));
	dev->dom = iommu_domain_create(NULL);
	dev->host = aligned_alloc(PG, 64 * PG);
	cr_assert_eq(iommu_map(dev->dom, 0x100000, dev->host, 64 * PG, IOMMU_READ | IOMMU_WRITE), 0);
	md = mig_dev_create(&ops, dev, FEAT_ALL);
	cr_assert_not_null(md);
	mig_dev_set_log(md, capture, NULL);
}

static void teardown(void)
{
	mig_dev_destroy(md);
	iommu_domain_destroy(dev->dom);
	free(dev->host);
	free(dev);
}

TestSuite(mig_feature, .init = setup, .fini = teardown);

static int feat(uint32_t flags, const void *in, uint32_t in_len, uint32_t out_max)
{
	return mig_dev_feature(md, flags, in, in_len, out, out_max);
}

Test(mig_feature, migration_get_and_probe)
{
	uint64_t f;

	cr_assert_eq(feat(GET | VFIO_DEVICE_FEATURE_MIGRATION, NULL, 0, sizeof(out)), 8);
	memcpy(&f, out, 8);
	cr_assert_eq(f, FEAT_ALL);
	cr_assert_eq(feat(PROBE | VFIO_DEVICE_FEATURE_MIGRATION, NULL, 0, 0), 0);
	cr_assert_eq(feat(PROBE | GET | VFIO_DEVICE_FEATURE_MIGRATION, NULL, 0, 0), 0);
	cr_assert_eq(feat(PROBE | SET | VFIO_DEVICE_FEATURE_MIGRATION, NULL, 0, 0), -EINVAL);
	cr_assert_eq(feat(SET | VFIO_DEVICE_FEATURE_MIGRATION, NULL, 0, 0), -EINVAL);
	cr_assert_eq(feat(GET | VFIO_DEVICE_FEATURE_MIGRATION, NULL, 0, 7), -EINVAL);
	/* MIG_DEVICE_STATE: GET and SET, both probed at once. */
	cr_assert_eq(feat(PROBE | GET | SET | VFIO_DEVICE_FEATURE_MIG_DEVICE_STATE, NULL, 0, 0), 0);
	cr_assert_eq(feat(GET | SET | VFIO_DEVICE_FEATURE_MIG_DEVICE_STATE, NULL, 0, 64), -EINVAL);
	cr_assert_eq(feat(VFIO_DEVICE_FEATURE_MIG_DEVICE_STATE, NULL, 0, 64), -EINVAL);
	/* SET data shorter than the struct. */
	cr_assert_eq(feat(SET | VFIO_DEVICE_FEATURE_MIG_DEVICE_STATE, "\1\0\0", 3, 64), -EINVAL);
	/* Unknown features and flag bits. */
	cr_assert_eq(feat(PROBE | 3, NULL, 0, 0), -ENOTTY);
	cr_assert_eq(feat(GET | 9, NULL, 0, 64), -ENOTTY);
	cr_assert_eq(feat(GET | (1u << 19) | VFIO_DEVICE_FEATURE_MIGRATION, NULL, 0, 64), -EINVAL);
	/* DMA logging: SET only for start/stop, GET only for report. */
	cr_assert_eq(feat(PROBE | SET | VFIO_DEVICE_FEATURE_DMA_LOGGING_START, NULL, 0, 0), 0);
	cr_assert_eq(feat(PROBE | GET | VFIO_DEVICE_FEATURE_DMA_LOGGING_START, NULL, 0, 0), -EINVAL);
	cr_assert_eq(feat(PROBE | SET | VFIO_DEVICE_FEATURE_DMA_LOGGING_STOP, NULL, 0, 0), 0);
	cr_assert_eq(feat(PROBE | GET | VFIO_DEVICE_FEATURE_DMA_LOGGING_REPORT, NULL, 0, 0), 0);
	cr_assert_eq(feat(PROBE | SET | VFIO_DEVICE_FEATURE_DMA_LOGGING_REPORT, NULL, 0, 0), -EINVAL);
}

Test(mig_feature, no_iommu_no_logging)
{
	struct mig_dev_ops o = ops;
	struct mig_dev *m2;

	o.iommu = NULL;
	m2 = mig_dev_create(&o, dev, VFIO_MIGRATION_STOP_COPY);
	cr_assert_not_null(m2);
	cr_assert_eq(mig_dev_feature(m2, PROBE | VFIO_DEVICE_FEATURE_DMA_LOGGING_START, NULL, 0,
				     out, 0), -ENOTTY);
	cr_assert_eq(mig_dev_feature(m2, GET | VFIO_DEVICE_FEATURE_DMA_LOGGING_REPORT, NULL, 0,
				     out, 64), -ENOTTY);
	mig_dev_destroy(m2);
}

struct start_req {
	struct vfio_user_dma_logging_control c;
	struct vfio_user_dma_logging_range r[2];
};

static int report(uint64_t iova, uint64_t len, uint64_t page, uint64_t *bits)
{
	struct vfio_user_dma_logging_report r = { iova, len, page };
	int n = feat(GET | VFIO_DEVICE_FEATURE_DMA_LOGGING_REPORT, &r, sizeof(r), sizeof(out));

	if (n >= 0) {
		cr_assert(!memcmp(out, &r, sizeof(r)));
		cr_assert_eq(n, (int)(sizeof(r) + (len / page + 63) / 64 * 8));
		memcpy(bits, out + sizeof(r), (size_t)n - sizeof(r));
	}
	return n;
}

Test(mig_feature, dma_logging_through_the_iommu)
{
	struct start_req q = { { 4096, 2, 0 },
			       { { 0x100000, 16 * PG }, { 0x100000 + 32 * PG, 32 * PG } } };
	uint64_t bits[4] = { 0 };
	uint8_t junk[PG] = { 1 };

	cr_assert_eq(feat(SET | VFIO_DEVICE_FEATURE_DMA_LOGGING_START, &q, sizeof(q), sizeof(out)),
		     (int)sizeof(q));
	cr_assert(!memcmp(out, &q, sizeof(q)));
	cr_assert_eq(feat(SET | VFIO_DEVICE_FEATURE_DMA_LOGGING_START, &q, sizeof(q), sizeof(out)),
		     -EBUSY);
	/* DMA writes land in pages 3, 4 (one write across both), and 40. */
	cr_assert_eq(iommu_dma_write(dev->dom, 0x100000 + 3 * PG + 100, junk, PG), 0);
	cr_assert_eq(iommu_dma_write(dev->dom, 0x100000 + 40 * PG, junk, 8), 0);
	cr_assert_eq(iommu_dma_read(dev->dom, 0x100000 + 8 * PG, junk, 8), 0);
	cr_assert_eq(report(0x100000, 16 * PG, PG, bits), 24 + 8);
	cr_assert_eq(bits[0], (1ull << 3) | (1ull << 4));
	bits[0] = 0;
	cr_assert_eq(report(0x100000 + 32 * PG, 32 * PG, PG, bits), 24 + 8);
	cr_assert_eq(bits[0], 1ull << 8);
	/* Reported pages are cleared. */
	bits[0] = 0;
	cr_assert_eq(report(0x100000, 16 * PG, PG, bits), 24 + 8);
	cr_assert_eq(bits[0], 0);
	/* A larger report page merges. */
	cr_assert_eq(iommu_dma_write(dev->dom, 0x100000 + 5 * PG, junk, 8), 0);
	cr_assert_eq(report(0x100000, 16 * PG, 4 * PG, bits), 24 + 8);
	cr_assert_eq(bits[0], 1ull << 1);
	/* Bad requests. */
	cr_assert_eq(report(0x100000, 16 * PG, 3000, bits), -EINVAL);
	cr_assert_eq(report(0x100000 + 16 * PG, 8 * PG, PG, bits), -EINVAL);  /* not logged */
	cr_assert_eq(report(~0ull - PG + 1, 2 * PG, PG, bits), -EOVERFLOW);
	cr_assert_eq(feat(GET | VFIO_DEVICE_FEATURE_DMA_LOGGING_REPORT, &q, 23, sizeof(out)),
		     -EINVAL);
	cr_assert_eq(feat(SET | VFIO_DEVICE_FEATURE_DMA_LOGGING_STOP, NULL, 0, 0), 0);
	cr_assert_eq(report(0x100000, 16 * PG, PG, bits), -EINVAL);
}

Test(mig_feature, dma_logging_ranges_checked)
{
	struct start_req q = { { 4096, 2, 0 },
			       { { 0x100000, 16 * PG }, { 0x100000 + 8 * PG, 32 * PG } } };

	/* Overlapping, unaligned, more ranges than sent, too many. */
	cr_assert_eq(feat(SET | VFIO_DEVICE_FEATURE_DMA_LOGGING_START, &q, sizeof(q), 64), -EINVAL);
	q.r[1].iova = 0x100000 + 32 * PG + 1;
	cr_assert_eq(feat(SET | VFIO_DEVICE_FEATURE_DMA_LOGGING_START, &q, sizeof(q), 64), -EINVAL);
	q.r[1].iova = 0x100000 + 32 * PG;
	cr_assert_eq(feat(SET | VFIO_DEVICE_FEATURE_DMA_LOGGING_START, &q, sizeof(q) - 1, 64),
		     -EINVAL);
	q.c.num_ranges = 100000;
	cr_assert_eq(feat(SET | VFIO_DEVICE_FEATURE_DMA_LOGGING_START, &q, sizeof(q), 64), -E2BIG);
	cr_assert_eq(feat(SET | VFIO_DEVICE_FEATURE_DMA_LOGGING_START, &q, 15, 64), -EINVAL);
	/* A page-size hint it cannot take: it picks 4 KiB and says so. */
	q.c.num_ranges = 2;
	q.c.page_size = 1000;
	cr_assert_eq(feat(SET | VFIO_DEVICE_FEATURE_DMA_LOGGING_START, &q, sizeof(q), sizeof(out)),
		     (int)sizeof(q));
	cr_assert_eq(((struct vfio_user_dma_logging_control *)out)->page_size, 4096);
}

/* No ranges: every IOVA is logged, at a coarse page the reply names. */
Test(mig_feature, dma_logging_everything)
{
	struct vfio_user_dma_logging_control c = { 4096, 0, 0 };
	uint64_t bits[8] = { 0 }, page;
	uint8_t junk[8] = { 0 };

	cr_assert_eq(feat(SET | VFIO_DEVICE_FEATURE_DMA_LOGGING_START, &c, sizeof(c), sizeof(out)),
		     (int)sizeof(c));
	page = ((struct vfio_user_dma_logging_control *)out)->page_size;
	cr_assert_eq(page, 32ull << 20);
	cr_assert_eq(iommu_dma_write(dev->dom, 0x100000 + 7 * PG, junk, 8), 0);
	/* Reported at 4 KiB: the whole coarse page reads dirty. */
	cr_assert_eq(report(0x100000, 64 * PG, PG, bits), 24 + 8);
	cr_assert_eq(bits[0], ~0ull);
}

/* ---- checkpoint files ---- */

static int set_state_stop(void)
{
	struct vfio_device_feature_mig_state m = { MIG_STOP, -1 };
	int rc = feat(SET | VFIO_DEVICE_FEATURE_MIG_DEVICE_STATE, &m, sizeof(m), sizeof(out));

	return rc < 0 ? rc : 0;
}

static char dir[256];

static void mkdir_tmp(void)
{
	snprintf(dir, sizeof(dir), "%s/migfile.XXXXXX", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
	cr_assert_not_null(mkdtemp(dir));
}

static void rm_tmp(void)
{
	char cmd[300];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	cr_assert_eq(system(cmd), 0);
}

static int count_files(void)
{
	char cmd[300];
	FILE *p;
	int n = -1;

	snprintf(cmd, sizeof(cmd), "ls -A '%s' | wc -l", dir);
	p = popen(cmd, "r");
	cr_assert_eq(fscanf(p, "%d", &n), 1);
	pclose(p);
	return n;
}

Test(mig_feature, checkpoint_file_round_trip)
{
	struct dev *d2 = calloc(1, sizeof(*d2));
	struct mig_dev *m2 = mig_dev_create(&ops, d2, FEAT_ALL);
	char err[256] = "";

	mkdir_tmp();
	for (int i = 0; i < SIZE; i += 3)
		dev->vram[i] = (uint8_t)(i * 7 + 1);
	memcpy(dev->blob, "REGS1234", 8);
	cr_assert_eq(mig_file_save(md, dir, "ck", NULL, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(mig_dev_state(md), MIG_RUNNING);
	cr_assert(!dev->quiesced);
	cr_assert_eq(count_files(), 1, "only the checkpoint is left");
	mig_dev_device_reset(md);   /* zeroes the source */

	cr_assert_eq(mig_file_restore(m2, dir, "ck", err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(mig_dev_state(m2), MIG_RUNNING);
	for (int i = 0; i < SIZE; i++)
		cr_assert_eq(d2->vram[i], i % 3 ? 0 : (uint8_t)(i * 7 + 1));
	cr_assert(!memcmp(d2->blob, "REGS1234", 8));

	/* A save that fails leaves the previous checkpoint as it was. */
	dev->fail_save = true;
	cr_assert_lt(mig_file_save(md, dir, "ck", NULL, err, sizeof(err)), 0);
	cr_assert(strstr(err, "saving the partition failed"), "%s", err);
	cr_assert_eq(mig_dev_state(md), MIG_RUNNING);
	cr_assert_eq(count_files(), 1);
	memset(d2->vram, 0xee, SIZE);
	cr_assert_eq(mig_file_restore(m2, dir, "ck", err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(d2->vram[3], (uint8_t)(3 * 7 + 1));
	mig_dev_destroy(m2);
	free(d2);
	rm_tmp();
}

static void read_file(const char *name, uint8_t *p, size_t max, size_t *len)
{
	char path[300];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	f = fopen(path, "rb");
	cr_assert_not_null(f, "%s", path);
	*len = fread(p, 1, max, f);
	fclose(f);
}

/* The writer thread's error is the checkpoint's: named as a write of the
 * temporary file, which is removed; the previous checkpoint stays byte
 * for byte, and loads. */
Test(mig_feature, checkpoint_write_error_keeps_previous)
{
	static uint8_t before[2 * SIZE], after[2 * SIZE];
	struct rlimit lim = { 64 * 1024, RLIM_INFINITY };
	size_t n1, n2;
	char err[256] = "";

	mkdir_tmp();
	for (int i = 0; i < SIZE; i++)
		dev->vram[i] = (uint8_t)(i * 13 + 5);
	memcpy(dev->blob, "FIRST..1", 8);
	cr_assert_eq(mig_file_save(md, dir, "ck", NULL, err, sizeof(err)), 0, "%s", err);
	read_file("ck", before, sizeof(before), &n1);
	cr_assert_gt(n1, (size_t)SIZE, "the file holds all of VRAM");

	/* Writes past 64 KiB fail with EFBIG (the signal ignored). */
	memcpy(dev->blob, "SECOND.2", 8);
	memset(dev->vram, 0x3c, SIZE);
	signal(SIGXFSZ, SIG_IGN);
	cr_assert_eq(setrlimit(RLIMIT_FSIZE, &lim), 0);
	cr_assert_eq(mig_file_save(md, dir, "ck", NULL, err, sizeof(err)), -EFBIG);
	cr_assert(strstr(err, "cannot write ") && strstr(err, "/.ck.tmp.") &&
		  strstr(err, strerror(EFBIG)), "%s", err);
	cr_assert_eq(mig_dev_state(md), MIG_RUNNING);
	cr_assert(!dev->quiesced);
	cr_assert_eq(count_files(), 1, "the temporary file is gone");
	read_file("ck", after, sizeof(after), &n2);
	cr_assert_eq(n2, n1);
	cr_assert(!memcmp(before, after, n1), "the previous checkpoint changed");

	cr_assert_eq(mig_file_restore(md, dir, "ck", err, sizeof(err)), 0, "%s", err);
	for (int i = 0; i < SIZE; i++)
		cr_assert_eq(dev->vram[i], (uint8_t)(i * 13 + 5));
	cr_assert(!memcmp(dev->blob, "FIRST..1", 8));
	rm_tmp();
}

Test(mig_feature, checkpoint_file_corrupt)
{
	char err[256] = "", path[300];
	struct stat sb;
	uint8_t b;
	int fd;

	mkdir_tmp();
	cr_assert_eq(set_state_stop(), 0);
	cr_assert_eq(mig_file_save(md, dir, "ck", NULL, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(mig_dev_state(md), MIG_STOP, "a stopped device stays stopped");
	snprintf(path, sizeof(path), "%s/ck", dir);
	cr_assert_eq(stat(path, &sb), 0);
	fd = open(path, O_RDWR);
	cr_assert_eq(pread(fd, &b, 1, sb.st_size / 2), 1);
	b ^= 0x40;
	cr_assert_eq(pwrite(fd, &b, 1, sb.st_size / 2), 1);
	close(fd);
	cr_assert_eq(mig_file_restore(md, dir, "ck", err, sizeof(err)), -EBADMSG);
	cr_assert(strstr(err, "checksum mismatch"), "%s", err);
	cr_assert_eq(mig_dev_state(md), MIG_RUNNING, "reset after a failed restore");
	/* The byte back, and the END chunk cut short. */
	b ^= 0x40;
	fd = open(path, O_RDWR);
	cr_assert_eq(pwrite(fd, &b, 1, sb.st_size / 2), 1);
	close(fd);
	cr_assert_eq(truncate(path, sb.st_size - 5), 0);
	cr_assert_eq(mig_file_restore(md, dir, "ck", err, sizeof(err)), -ENODATA);
	cr_assert(strstr(err, "truncated at byte"), "%s", err);
	cr_assert_lt(mig_file_restore(md, dir, "none", err, sizeof(err)), 0);
	cr_assert(strstr(err, "cannot open"), "%s", err);
	cr_assert_eq(mig_file_save(md, dir, "a/b", NULL, err, sizeof(err)), -EINVAL);
	rm_tmp();
}
