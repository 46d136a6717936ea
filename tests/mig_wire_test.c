// SPDX-License-Identifier: MIT
/* migrate over the wire: two devices served by vfu/'s server, whose
 * feature, mig_data_read/write and reset hooks are migrate/'s entry
 * points, driven by a client that builds the vfio-user payloads from the
 * spec (raw vfu_client_call): PRE_COPY rounds and STOP_COPY out of one,
 * RESUMING into the other, errors carried back as error replies. */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "migrate/mig.h"
#include "vfu/vfu.h"

#define PG MIG_PAGE_SIZE
#define NPAGES 1024
#define SIZE (NPAGES * PG)
#define XFER (1u << 20)

struct wdev {
	struct mig_dev *md;
	struct vfu_server *srv;
	struct vfu_client *cl;
	uint8_t *vram;
	uint64_t dirty[NPAGES / 64];
	bool tracking, quiesced;
	uint32_t regs[8];
};

/* ---- the device's migration ops ---- */

static void m_ident(void *d, struct mig_ident *id)
{
	(void)d;
	memset(id, 0, sizeof(*id));
	strcpy(id->model, "sim-gen1");
	strcpy(id->type, "wire");
	id->vram_size = SIZE;
}
static int m_quiesce(void *d) { ((struct wdev *)d)->quiesced = true; return 0; }
static void m_resume(void *d) { ((struct wdev *)d)->quiesced = false; }
static uint8_t *m_vram(void *d, uint64_t *size) { *size = SIZE; return ((struct wdev *)d)->vram; }
static int m_track(void *d, bool on)
{
	struct wdev *w = d;

	w->tracking = on;
	memset(w->dirty, 0, sizeof(w->dirty));
	return 0;
}
static void m_harvest(void *d, uint64_t *bm)
{
	struct wdev *w = d;

	for (int i = 0; i < NPAGES / 64; i++) {
		bm[i] |= w->dirty[i];
		w->dirty[i] = 0;
	}
}
static int m_save(void *d, void *buf, size_t max)
{
	(void)max;
	memcpy(buf, ((struct wdev *)d)->regs, sizeof(((struct wdev *)d)->regs));
	return sizeof(((struct wdev *)d)->regs);
}
static int m_load(void *d, const void *buf, size_t len)
{
	if (len != sizeof(((struct wdev *)d)->regs))
		return -EINVAL;
	memcpy(((struct wdev *)d)->regs, buf, len);
	return 0;
}
static void m_reset(void *d)
{
	memset(((struct wdev *)d)->vram, 0, SIZE);
	memset(((struct wdev *)d)->regs, 0, sizeof(((struct wdev *)d)->regs));
}

static const struct mig_dev_ops mops = {
	.version = MIG_DEV_OPS_VERSION, .ident = m_ident, .quiesce = m_quiesce,
	.resume = m_resume, .vram = m_vram, .vram_track = m_track, .vram_harvest = m_harvest,
	.state_save = m_save, .state_load = m_load, .reset = m_reset,
};

/* ---- the device's vfio-user ops: no regions, migration forwarded ---- */

static void v_info(void *d, struct vfio_user_device_info *i)
{
	(void)d;
	i->flags = VFIO_DEVICE_FLAGS_RESET | VFIO_DEVICE_FLAGS_PCI;
	i->num_regions = VFIO_PCI_NUM_REGIONS;
	i->num_irqs = VFIO_PCI_NUM_IRQS;
}
static int v_region_info(void *d, uint32_t index, struct vfio_region_info *info, int *fd)
{
	(void)d;
	(void)index;
	info->size = 0;
	info->flags = 0;
	*fd = -1;
	return 0;
}
static int v_read(void *d, uint32_t i, uint64_t off, void *buf, uint32_t len)
{
	(void)d, (void)i, (void)off, (void)buf, (void)len;
	return -EINVAL;
}
static int v_write(void *d, uint32_t i, uint64_t off, const void *buf, uint32_t len)
{
	(void)d, (void)i, (void)off, (void)buf, (void)len;
	return -EINVAL;
}
static void v_irq_info(void *d, uint32_t index, struct vfio_irq_info *info)
{
	(void)d;
	(void)index;
	info->count = 0;
}
static int v_irq_set(void *d, uint32_t index, uint32_t vec, int fd)
{
	(void)d, (void)index, (void)vec, (void)fd;
	return -EINVAL;
}
static void v_reset(void *d) { mig_dev_device_reset(((struct wdev *)d)->md); }
static int v_feature(void *d, uint32_t flags, const void *in, uint32_t in_len, void *out,
		     uint32_t out_max)
{
	return mig_dev_feature(((struct wdev *)d)->md, flags, in, in_len, out, out_max);
}
static int v_mig_read(void *d, void *buf, uint32_t len)
{
	return mig_dev_data_read(((struct wdev *)d)->md, buf, len);
}
static int v_mig_write(void *d, const void *buf, uint32_t len)
{
	return mig_dev_data_write(((struct wdev *)d)->md, buf, len);
}

static int v_mig_readv(void *d, uint32_t len, struct iovec *iov, unsigned int max,
		       unsigned int *niov)
{
	return mig_dev_data_readv(((struct wdev *)d)->md, len, iov, max, niov);
}

static void v_mig_ahead(void *d, uint32_t len, void (*pump)(void *), void *pump_arg)
{
	mig_dev_data_ahead(((struct wdev *)d)->md, len, pump, pump_arg);
}

static const struct vfu_dev_ops vops = {
	.version = VFU_DEV_OPS_VERSION, .device_info = v_info, .region_info = v_region_info,
	.region_read = v_read, .region_write = v_write, .irq_info = v_irq_info,
	.irq_set_fd = v_irq_set, .reset = v_reset, .feature = v_feature,
	.mig_data_read = v_mig_read, .mig_data_write = v_mig_write,
};

/* The same device replying to MIG_DATA_READ from pieces, hashing the next
 * read's chunk ahead. */
static const struct vfu_dev_ops vops_pieces = {
	.version = VFU_DEV_OPS_VERSION, .device_info = v_info, .region_info = v_region_info,
	.region_read = v_read, .region_write = v_write, .irq_info = v_irq_info,
	.irq_set_fd = v_irq_set, .reset = v_reset, .feature = v_feature,
	.mig_data_read = v_mig_read, .mig_data_write = v_mig_write,
	.mig_data_readv = v_mig_readv, .mig_data_ahead = v_mig_ahead,
};

static void quiet(void *o, const char *line) { (void)o; (void)line; }

static struct wdev *wdev_new_ops(const struct vfu_dev_ops *ops)
{
	struct wdev *w = calloc(1, sizeof(*w));
	struct vfu_server_cfg cfg = { .name = "mig", .ops = ops, .dev = w };
	int sv[2], err = 0;

	w->vram = calloc(1, SIZE);
	w->md = mig_dev_create(&mops, w, VFIO_MIGRATION_STOP_COPY | VFIO_MIGRATION_PRE_COPY);
	cr_assert_not_null(w->md);
	mig_dev_set_log(w->md, quiet, NULL);
	w->srv = vfu_server_create(&cfg);
	cr_assert_not_null(w->srv);
	cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	cr_assert_eq(vfu_server_attach(w->srv, sv[0]), 0);
	w->cl = vfu_client_open_fd(sv[1], &err);
	cr_assert_not_null(w->cl, "%s", strerror(-err));
	return w;
}

static struct wdev *wdev_new(void)
{
	return wdev_new_ops(&vops);
}

static void wdev_free(struct wdev *w)
{
	vfu_client_close(w->cl);
	vfu_server_destroy(w->srv);
	mig_dev_destroy(w->md);
	free(w->vram);
	free(w);
}

/* ---- the client, from the spec ---- */

static int set_state(struct wdev *w, uint32_t state)
{
	struct { uint32_t argsz, flags, state; int32_t fd; } q = {
		16, VFIO_DEVICE_FEATURE_SET | VFIO_DEVICE_FEATURE_MIG_DEVICE_STATE, state, -1 }, r;
	int n = vfu_client_call(w->cl, VFIO_USER_DEVICE_FEATURE, &q, sizeof(q), NULL, 0, &r,
				sizeof(r), NULL, NULL);

	return n < 0 ? n : 0;
}

static uint32_t get_state(struct wdev *w)
{
	struct { uint32_t argsz, flags; } q = {
		16, VFIO_DEVICE_FEATURE_GET | VFIO_DEVICE_FEATURE_MIG_DEVICE_STATE };
	struct { uint32_t argsz, flags, state; int32_t fd; } r;

	cr_assert_eq(vfu_client_call(w->cl, VFIO_USER_DEVICE_FEATURE, &q, sizeof(q), NULL, 0, &r,
				     sizeof(r), NULL, NULL), 16);
	cr_assert_eq(r.argsz, 16);
	cr_assert_eq(r.fd, -1);
	return r.state;
}

static uint8_t reply[8 + XFER];

/* One MIG_DATA_READ of up to size bytes: how many came. */
static int data_read(struct wdev *w, uint32_t size)
{
	struct vfio_user_mig_data q = { (uint32_t)sizeof(q) + size, size };
	int n = vfu_client_call(w->cl, VFIO_USER_MIG_DATA_READ, &q, sizeof(q), NULL, 0, reply,
				sizeof(reply), NULL, NULL);
	struct vfio_user_mig_data r;

	if (n < 0)
		return n;
	memcpy(&r, reply, sizeof(r));
	cr_assert_eq((uint32_t)n, r.argsz);
	cr_assert_eq(r.argsz, sizeof(r) + r.size);
	return (int)r.size;
}

static uint8_t wbuf[8 + XFER];

static int data_write(struct wdev *w, const void *p, uint32_t size)
{
	struct vfio_user_mig_data q = { sizeof(q), size };

	memcpy(wbuf, &q, sizeof(q));
	memcpy(wbuf + sizeof(q), p, size);
	return vfu_client_call(w->cl, VFIO_USER_MIG_DATA_WRITE, wbuf, sizeof(q) + size, NULL, 0,
			       NULL, 0, NULL, NULL);
}

/* Move what the source gives until a short read into the destination;
 * bytes moved. */
static uint64_t pump(struct wdev *src, struct wdev *dst)
{
	uint64_t total = 0;
	int n;

	do {
		n = data_read(src, XFER);
		cr_assert_geq(n, 0, "read: %s", strerror(-n));
		cr_assert_eq(data_write(dst, reply + 8, (uint32_t)n), 0);
		total += (uint64_t)n;
	} while (n == (int)XFER);
	return total;
}

static void engine_write(struct wdev *w, uint32_t page, uint8_t v)
{
	memset(w->vram + (uint64_t)page * PG, v, PG);
	if (w->tracking)
		w->dirty[page / 64] |= 1ull << (page % 64);
}

Test(mig_wire, migration_feature_over_the_wire)
{
	struct wdev *w = wdev_new();
	struct { uint32_t argsz, flags; } q = { 16, VFIO_DEVICE_FEATURE_GET | VFIO_DEVICE_FEATURE_MIGRATION };
	struct { uint32_t argsz, flags; uint64_t mflags; } r;

	cr_assert_eq(vfu_client_call(w->cl, VFIO_USER_DEVICE_FEATURE, &q, sizeof(q), NULL, 0, &r,
				     sizeof(r), NULL, NULL), 16);
	cr_assert_eq(r.argsz, 16);
	cr_assert_eq(r.flags, q.flags);
	cr_assert_eq(r.mflags, VFIO_MIGRATION_STOP_COPY | VFIO_MIGRATION_PRE_COPY);
	q.flags = VFIO_DEVICE_FEATURE_PROBE | VFIO_DEVICE_FEATURE_DMA_LOGGING_START;
	cr_assert_eq(vfu_client_call(w->cl, VFIO_USER_DEVICE_FEATURE, &q, sizeof(q), NULL, 0, &r,
				     sizeof(r), NULL, NULL), -ENOTTY);
	cr_assert_eq(data_read(w, 64), -EINVAL);
	cr_assert_eq(data_write(w, "x", 1), -EINVAL);
	wdev_free(w);
}

static void precopy_move(struct wdev *a, struct wdev *b)
{
	uint64_t r1, r2;

	for (uint32_t p = 0; p < NPAGES; p++)
		if (p % 5)
			memset(a->vram + (uint64_t)p * PG, (int)(p * 31 + 1), PG);
	for (int i = 0; i < 8; i++)
		a->regs[i] = 0x1000u + (uint32_t)i;

	cr_assert_eq(set_state(a, MIG_PRE_COPY), 0);
	cr_assert_eq(get_state(a), MIG_PRE_COPY);
	cr_assert_eq(set_state(b, MIG_RESUMING), 0);
	r1 = pump(a, b);
	cr_assert_gt(r1, SIZE / 2);
	engine_write(a, 3, 0xee);
	engine_write(a, 500, 0);
	r2 = pump(a, b);
	cr_assert_lt(r2, 3 * PG, "round 2 moved %lu bytes", (unsigned long)r2);
	engine_write(a, 900, 0x42);
	a->regs[2] = 0xabcd;
	cr_assert_eq(set_state(a, MIG_STOP_COPY), 0);
	cr_assert(a->quiesced);
	pump(a, b);
	cr_assert_eq(set_state(b, MIG_RUNNING), 0);
	cr_assert_eq(get_state(b), MIG_RUNNING);
	cr_assert(!memcmp(a->vram, b->vram, SIZE), "VRAM differs");
	cr_assert(!memcmp(a->regs, b->regs, sizeof(a->regs)));
	cr_assert_eq(set_state(a, MIG_RUNNING), 0);
	cr_assert(!a->quiesced && !a->tracking);
	wdev_free(a);
	wdev_free(b);
}

Test(mig_wire, precopy_move_between_two_devices)
{
	precopy_move(wdev_new(), wdev_new());
}

Test(mig_wire, precopy_move_with_replies_from_pieces)
{
	precopy_move(wdev_new_ops(&vops_pieces), wdev_new());
}

/* A stopped device's stream over the wire, replies sent from pieces (VRAM
 * in place) or copied: the same bytes for the same reads. */
Test(mig_wire, replies_from_pieces_carry_the_copied_bytes)
{
	static const uint32_t sizes[] = { XFER, 5000, 100 };
	struct wdev *a = wdev_new_ops(&vops_pieces), *c = wdev_new();
	static uint8_t sa[2 * SIZE], sc[2 * SIZE];

	for (uint32_t p = 0; p < NPAGES; p++)
		if (p % 3) {
			memset(a->vram + (uint64_t)p * PG, (int)(p * 7 + 3), PG);
			memset(c->vram + (uint64_t)p * PG, (int)(p * 7 + 3), PG);
		}
	for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		size_t la = 0, lc = 0;
		int n;

		cr_assert_eq(set_state(a, MIG_STOP_COPY), 0);
		cr_assert_eq(set_state(c, MIG_STOP_COPY), 0);
		do {
			n = data_read(a, sizes[i]);
			cr_assert_geq(n, 0);
			cr_assert_leq(la + (size_t)n, sizeof(sa));
			memcpy(sa + la, reply + 8, (size_t)n);
			la += (size_t)n;
		} while (n == (int)sizes[i]);
		do {
			n = data_read(c, sizes[i]);
			cr_assert_geq(n, 0);
			cr_assert_leq(lc + (size_t)n, sizeof(sc));
			memcpy(sc + lc, reply + 8, (size_t)n);
			lc += (size_t)n;
		} while (n == (int)sizes[i]);
		cr_assert_eq(la, lc, "reads of %u: %zu bytes against %zu", sizes[i], la, lc);
		cr_assert(!memcmp(sa, sc, la), "reads of %u: the bytes differ", sizes[i]);
		cr_assert_eq(set_state(a, MIG_RUNNING), 0);
		cr_assert_eq(set_state(c, MIG_RUNNING), 0);
	}
	wdev_free(a);
	wdev_free(c);
}

/* A corrupt stream: the error reply carries the parser's errno, the
 * destination stays in RESUMING, DEVICE_RESET brings it back. */
Test(mig_wire, refused_stream_and_reset)
{
	struct wdev *a = wdev_new(), *b = wdev_new();
	int n;

	memset(a->vram, 7, SIZE);
	cr_assert_eq(set_state(a, MIG_STOP_COPY), 0);
	cr_assert_eq(set_state(b, MIG_RESUMING), 0);
	n = data_read(a, XFER);
	cr_assert_eq(n, (int)XFER);
	reply[8 + 200] ^= 1;
	cr_assert_eq(data_write(b, reply + 8, (uint32_t)n), -EBADMSG);
	cr_assert_eq(set_state(b, MIG_STOP), -EBADMSG);
	cr_assert_eq(get_state(b), MIG_RESUMING);
	cr_assert_eq(vfu_client_reset(b->cl), 0);
	cr_assert_eq(get_state(b), MIG_RUNNING);
	cr_assert(!b->quiesced);
	/* The source is untouched by the destination's failure. */
	cr_assert_eq(set_state(a, MIG_RUNNING), 0);
	cr_assert_eq(get_state(a), MIG_RUNNING);
	wdev_free(a);
	wdev_free(b);
}
