// SPDX-License-Identifier: MIT
/*
 * Continuous protection of a partition (vgpu.h, docs/MIGRATION.md
 * "Failover"): one checkpoint link at a time, into migrate/'s chain.
 *
 * A link is taken in two parts.  The walk runs with the guest running:
 * the device's record of the pages it wrote is harvested, and every page
 * whose XXH3 differs from what the chain holds for it (a hole counts as
 * zero) is written out, so pages a guest CPU changed through BAR2 are
 * found too, as of the moment the walk passes them.  Then the device is
 * stopped for the final copy only: the pages its engines wrote since the
 * walk's harvest are copied into a buffer with the state blob, and the
 * device runs again before any of it reaches the file.  The link is then
 * finished, synced and renamed.  A base (the first link, and one after
 * every max_links increments) writes every page with data, and once it
 * is durable the links before it are removed.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "gpup/base/base.h"
#include "gpup/vgpu/vgpu_int.h"
#include "migrate/mig.h"
#include "uapi/gpup_vgpu_state.h"

#define PG 4096u
#define WALK_RUN 256u                 /* pages written per call */
/* Pages an increment's walk hashes for CPU stores: 256 MiB of VRAM,
 * about 50 ms at the 5 GB/s XXH3 reaches here.  A bigger partition is
 * hashed a window at a time, the next link going on where the last
 * stopped: a CPU store is in a link at most ceil(VRAM / 256 MiB) links
 * after it was made.  Pages the device wrote are in the next link, always. */
#define SCAN_PAGES 65536u

struct vgpu_protect {
	struct vgpu *v;
	char dir[4096], prefix[64];
	unsigned int max_links;
	uint64_t npages;
	uint64_t *hash;               /* XXH3 of each page as the chain holds it */
	uint64_t zero_hash;
	uint64_t *bits;               /* harvested device writes */
	uint8_t *run;                 /* WALK_RUN pages being written */
	bool have_base;
	uint32_t next, since_base;
	uint64_t base_bytes, incr_bytes;  /* the chain's, since its base */
	uint64_t scan;                /* where the next increment's hashing starts */
	bool cancel;                  /* atomic: vgpu_protect_cancel */
	uint64_t base_id, prev_id;
};

static uint64_t realtime_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* The record exists and is clear before anyone sees it switched on. */
static int tracker_on(struct vgpu *v)
{
	size_t words = (v->vram_size / PG) / 64 + 1;
	uint64_t *d;
	int r = 0;

	pthread_mutex_lock(&v->cfg_lock);
	d = v->pdirty;
	if (__atomic_load_n(&v->ptracking, __ATOMIC_ACQUIRE))
		r = -EBUSY;
	else if (!d && (d = calloc(words, sizeof(*d))))
		__atomic_store_n(&v->pdirty, d, __ATOMIC_RELEASE);
	else if (!d)
		r = -ENOMEM;
	for (size_t i = 0; !r && i < words; i++)
		__atomic_store_n(&d[i], 0, __ATOMIC_RELAXED);
	if (!r)
		__atomic_store_n(&v->ptracking, true, __ATOMIC_RELEASE);
	pthread_mutex_unlock(&v->cfg_lock);
	return r;
}

struct vgpu_protect *vgpu_protect_create(struct vgpu *v, const char *dir, const char *prefix,
					 unsigned int max_links)
{
	struct vgpu_protect *p = calloc(1, sizeof(*p));
	static const uint8_t zero[PG];
	int r;

	if (!p)
		return NULL;
	p->v = v;
	snprintf(p->dir, sizeof(p->dir), "%s", dir);
	snprintf(p->prefix, sizeof(p->prefix), "%s", prefix);
	p->max_links = max_links ? max_links : 64;
	p->npages = v->vram_size / PG;
	p->hash = malloc(p->npages * sizeof(*p->hash));
	p->bits = calloc(p->npages / 64 + 1, sizeof(*p->bits));
	p->run = malloc((size_t)WALK_RUN * PG);
	r = p->hash && p->bits && p->run ? mig_chain_scan(dir, prefix, &p->next) : -ENOMEM;
	if (!r)
		r = tracker_on(v);
	if (r) {
		free(p->hash);
		free(p->bits);
		free(p->run);
		free(p);
		errno = -r;
		return NULL;
	}
	/* The chain holds nothing yet: every page zero. */
	p->zero_hash = mig_hash(zero, PG);
	for (uint64_t i = 0; i < p->npages; i++)
		p->hash[i] = p->zero_hash;
	return p;
}

void vgpu_protect_cancel(struct vgpu_protect *p)
{
	__atomic_store_n(&p->cancel, true, __ATOMIC_RELEASE);
}

void vgpu_protect_destroy(struct vgpu_protect *p)
{
	if (!p)
		return;
	__atomic_store_n(&p->v->ptracking, false, __ATOMIC_RELEASE);
	free(p->hash);
	free(p->bits);
	free(p->run);
	free(p);
}

static void harvest(struct vgpu_protect *p)
{
	uint64_t *d = __atomic_load_n(&p->v->pdirty, __ATOMIC_ACQUIRE);

	for (uint64_t w = 0; w < (p->npages + 63) / 64; w++)
		p->bits[w] |= __atomic_exchange_n(&d[w], 0, __ATOMIC_ACQUIRE);
}

static bool bit(const uint64_t *b, uint64_t i)
{
	return b[i / 64] >> (i % 64) & 1;
}

/* Whether page i goes into the link (changed since the chain's copy, or
 * written by the device, or everything for a base): then its bytes are
 * copied into dst and what the chain now holds is noted.  The page is
 * hashed where it lies first, so an unchanged one is only read. */
static bool take_page(struct vgpu_protect *p, const uint8_t *vram, uint64_t i, uint8_t *dst,
		      bool base)
{
	if (!base && !bit(p->bits, i) && mig_hash(vram + i * PG, PG) == p->hash[i])
		return false;
	memcpy(dst, vram + i * PG, PG);
	p->hash[i] = mig_hash(dst, PG);
	return true;
}

/* A run of pages being gathered for the link. */
struct run {
	struct vgpu_protect *p;
	struct mig_link_writer *w;
	bool base;
	uint64_t first, n, pages;
	int r;
};

static void flush(struct run *u)
{
	if (u->n && !u->r)
		u->r = mig_link_pages(u->w, u->first, u->p->run, u->n, u->base);
	u->pages += u->n;
	u->n = 0;
}

/* Page i goes in (its bytes already at slot n of the run).  A page that
 * does not continue the run ends it: the run is written, and the page's
 * bytes move to slot 0, where the new run starts. */
static void add(struct run *u, uint64_t i)
{
	if (u->n && u->first + u->n != i) {
		uint8_t *page = u->p->run + u->n * PG;

		flush(u);
		memcpy(u->p->run, page, PG);
	}
	if (!u->n)
		u->first = i;
	if (++u->n == WALK_RUN)
		flush(u);
}

/* A hole reads as zero without being read (reading would allocate it). */
static void hole(struct run *u, uint64_t i)
{
	struct vgpu_protect *p = u->p;

	if (p->hash[i] == p->zero_hash && !bit(p->bits, i))
		return;
	p->hash[i] = p->zero_hash;
	if (u->base)
		return;
	memset(p->run + u->n * PG, 0, PG);
	add(u, i);
}

/* The first page at or after i that may hold data, and in *end where
 * that data ends (SEEK_DATA, SEEK_HOLE on the VRAM file). */
static uint64_t data_at(struct vgpu_protect *p, int fd, uint64_t i, uint64_t *end)
{
	off_t d, h;

	*end = p->npages;
	if (fd < 0)
		return i;
	d = lseek(fd, (off_t)(i * PG), SEEK_DATA);
	if (d < 0)
		return errno == ENXIO ? p->npages : i;
	h = lseek(fd, d, SEEK_HOLE);
	if (h > d)
		*end = ((uint64_t)h + PG - 1) / PG < p->npages ? ((uint64_t)h + PG - 1) / PG
							      : p->npages;
	return (uint64_t)d / PG;
}

/* Whether an increment's walk hashes page i for CPU stores. */
static bool scanned(const struct vgpu_protect *p, uint64_t i)
{
	return (i + p->npages - p->scan) % p->npages < SCAN_PAGES;
}

/* The walk, guest running: every changed page out, in runs. */
static int walk(struct vgpu_protect *p, struct mig_link_writer *w, bool base, uint64_t *pages)
{
	struct run u = { .p = p, .w = w, .base = base };
	const uint8_t *vram;
	uint64_t i = 0, d, e;
	int fd;

	harvest(p);
	pthread_rwlock_rdlock(&p->v->home_lock);
	vram = p->v->vram;
	fd = gpup_gpu_vram_fd(p->v->gpu, p->v->vram_offset);
	while (i < p->npages && !u.r) {
		d = data_at(p, fd, i, &e);
		for (; i < d && i < p->npages; i++)
			hole(&u, i);
		for (; i < e && !u.r; i++) {
			if ((base || bit(p->bits, i) || scanned(p, i)) &&
			    take_page(p, vram, i, p->run + u.n * PG, base))
				add(&u, i);
			if (i % WALK_RUN == 0 && __atomic_load_n(&p->cancel, __ATOMIC_ACQUIRE))
				u.r = -ECANCELED;
		}
	}
	pthread_rwlock_unlock(&p->v->home_lock);
	flush(&u);
	memset(p->bits, 0, (p->npages / 64 + 1) * sizeof(*p->bits));
	*pages += u.pages;
	if (!base)
		p->scan = (p->scan + SCAN_PAGES) % p->npages;
	return u.r;
}

static uint64_t count_bits(const uint64_t *b, uint64_t npages)
{
	uint64_t n = 0;

	for (uint64_t w = 0; w < (npages + 63) / 64; w++)
		n += (uint64_t)__builtin_popcountll(b[w]);
	return n;
}

/* Rounds while the guest runs over the pages the device wrote since the
 * walk, until few are left (or MAX_ROUNDS): the final copy, with the
 * device stopped, then has only those few to copy. */
#define MAX_ROUNDS 4
#define FEW_PAGES 256

static int rounds(struct vgpu_protect *p, struct mig_link_writer *w, uint64_t *pages)
{
	struct run u = { .p = p, .w = w };
	int r = 0;

	for (int k = 0; k < MAX_ROUNDS && !r; k++) {
		harvest(p);
		if (count_bits(p->bits, p->npages) <= FEW_PAGES)
			return 0;
		pthread_rwlock_rdlock(&p->v->home_lock);
		for (uint64_t i = 0; i < p->npages && !u.r; i++)
			if (bit(p->bits, i)) {
				take_page(p, p->v->vram, i, p->run + u.n * PG, true);
				add(&u, i);
			}
		pthread_rwlock_unlock(&p->v->home_lock);
		flush(&u);
		r = u.r;
		memset(p->bits, 0, (p->npages / 64 + 1) * sizeof(*p->bits));
	}
	*pages += u.pages;
	return r;
}

/* What the final copy took, the device stopped. */
struct final {
	uint8_t *pages;               /* the dirty pages, in page order */
	uint64_t n;
	struct gpup_vgpu_state blob;
	uint64_t mono_ns, real_ns, pause_ns;
};


/* Stopped for this only: the pages engines wrote since the walk's
 * harvest, and the state (cfg_lock and mig_lock held). */
static int stop_copy(struct vgpu_protect *p, struct final *f)
{
	struct vgpu *v = p->v;
	uint64_t k = 0, t0 = gpup_mono_ns();
	int r;

	vgpu_quiesce_locked(v);
	harvest(p);
	f->n = count_bits(p->bits, p->npages);
	f->pages = malloc(f->n ? f->n * PG : 1);
	r = f->pages ? vgpu_state_save_locked(v, &f->blob, sizeof(f->blob)) : -ENOMEM;
	for (uint64_t i = 0; r >= 0 && i < p->npages; i++)
		if (bit(p->bits, i))
			take_page(p, v->vram, i, f->pages + k++ * PG, true);
	f->mono_ns = gpup_mono_ns();
	f->real_ns = realtime_ns();
	vgpu_resume_locked(v);
	f->pause_ns = gpup_mono_ns() - t0;
	return r < 0 ? r : 0;
}

static int final_copy(struct vgpu_protect *p, struct final *f)
{
	struct vgpu *v = p->v;
	int r = -EBUSY;

	pthread_mutex_lock(&v->mig_lock);
	if (mig_dev_state(v->mig) == MIG_RUNNING) {
		pthread_mutex_lock(&v->cfg_lock);
		/* Nothing of a GPU that failed goes into a link: its VRAM and
		 * state are taken as lost from the moment it failed. */
		r = gpup_gpu_failure(v->gpu) ? -ENODEV : stop_copy(p, f);
		pthread_mutex_unlock(&v->cfg_lock);
	}
	pthread_mutex_unlock(&v->mig_lock);
	return r;
}

/* The final copy's pages into the link, contiguous ones together. */
static int put_final(struct vgpu_protect *p, struct mig_link_writer *w, const struct final *f)
{
	uint64_t k = 0, first = 0, n = 0;
	int r = 0;

	for (uint64_t i = 0; i < p->npages && !r; i++) {
		if (!bit(p->bits, i))
			continue;
		if (n && (first + n != i || n == WALK_RUN)) {
			r = mig_link_pages(w, first, f->pages + (k - n) * PG, n, false);
			n = 0;
		}
		if (!n)
			first = i;
		n++, k++;
	}
	if (n && !r)
		r = mig_link_pages(w, first, f->pages + (k - n) * PG, n, false);
	memset(p->bits, 0, (p->npages / 64 + 1) * sizeof(*p->bits));
	return r;
}

static void fill_out(const struct final *f, struct vgpu_protect_link *out)
{
	out->taken_ns = f->mono_ns;
	out->pause_ns = f->pause_ns;
	out->pages += f->n;
	for (unsigned int i = 0; i < GPUP_MAX_QUEUES; i++) {
		out->fence[i] = (uint64_t)f->blob.q[i].fence_hi << 32 | f->blob.q[i].fence_lo;
		out->commands += f->blob.q[i].commands;
	}
}

static int begin(struct vgpu_protect *p, bool base, struct mig_link_writer **w, char *err,
		 size_t errlen)
{
	struct mig_link_cfg cfg = { .dir = p->dir, .prefix = p->prefix, .base = base,
				    .index = p->next, .base_id = p->base_id,
				    .prev_id = p->prev_id };

	vgpu_mig_ident(p->v, &cfg.ident);
	return mig_link_begin(w, &cfg, err, errlen);
}

/* The link is durable: the chain goes on from it. */
static void advance(struct vgpu_protect *p, bool base, uint64_t id,
		    struct vgpu_protect_link *out)
{
	char path[4200];
	struct stat st;

	snprintf(path, sizeof(path), "%s/%s.%08u.%s", p->dir, p->prefix, p->next,
		 base ? "base" : "incr");
	out->bytes = stat(path, &st) ? 0 : (uint64_t)st.st_size;
	if (base) {
		p->base_bytes = out->bytes;
		p->incr_bytes = 0;
	} else {
		p->incr_bytes += out->bytes;
	}
	if (base) {
		p->have_base = true;
		p->base_id = id;
		p->since_base = 0;
		/* what is older than a durable base is no longer needed */
		mig_chain_compact(p->dir, p->prefix, p->next);
	} else {
		p->since_base++;
	}
	p->prev_id = id;
	p->next++;
}

int vgpu_protect_take(struct vgpu_protect *p, struct vgpu_protect_link *out, char *err,
		      size_t errlen)
{
	/* A new base after max_links increments, or once the increments
	 * hold half as much as the base: a restore reads at most about one
	 * and a half bases. */
	bool base = !p->have_base || p->since_base >= p->max_links ||
		    p->incr_bytes > p->base_bytes / 2;
	struct mig_link_writer *w = NULL;
	struct final f = { 0 };
	uint64_t t0 = gpup_mono_ns(), id;
	int r = begin(p, base, &w, err, errlen);

	memset(out, 0, sizeof(*out));
	if (!r && (r = walk(p, w, base, &out->pages)) == 0)
		r = rounds(p, w, &out->pages);
	if (r && r != -ECANCELED)
		gpup_say(err, errlen, "cannot write the link: %s", strerror(-r));
	if (!r && __atomic_load_n(&p->cancel, __ATOMIC_ACQUIRE))
		r = -ECANCELED;
	if (!r && (r = final_copy(p, &f)) && r != -EBUSY)
		gpup_say(err, errlen, "the final copy failed: %s", strerror(-r));
	if (!r && (r = put_final(p, w, &f)) == 0 &&
	    (r = mig_link_state(w, &f.blob, sizeof(f.blob))))
		gpup_say(err, errlen, "cannot write the link: %s", strerror(-r));
	if (!r) {
		r = mig_link_commit(w, f.real_ns, &id, err, errlen);
		w = NULL;
	}
	if (w)
		mig_link_abort(w);
	if (r) {
		/* what the chain holds is unknown now: the next link is a base */
		p->have_base = false;
		free(f.pages);
		return r;
	}
	fill_out(&f, out);
	out->index = p->next;
	out->base = base;
	out->total_ns = gpup_mono_ns() - t0;
	advance(p, base, id, out);
	free(f.pages);
	return 0;
}
