// SPDX-License-Identifier: MIT
/*
 * The sim GPU backend: VRAM in host memory, engines as executor threads
 * from engine.c.
 *
 * DOC: sim VRAM
 *
 * VRAM is one range of the daemon's address space, aligned to 2 MiB,
 * that engines index by offset.  Outside partitions it is private
 * anonymous memory mapped MAP_NORESERVE: an 8 GiB GPU costs nothing until
 * its pages are touched, and no client can reach it.  Each partition's
 * window is a memfd of exactly the window's size, sealed with
 * F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL before its fd is handed to
 * anyone, and mapped MAP_FIXED over the window's place in the range; the
 * client maps that same file as BAR2.  Nothing a client does to the file
 * can make the daemon's access to it fault: its size cannot change, and
 * punching a hole in it only zeroes the tenant's own pages (shmem refills
 * them on the next touch).
 *
 * Where the host gives shmem transparent huge pages (shmem_enabled, or
 * its 2 MiB per-size control, set to always, within_size, force, or
 * advise with madvise(MADV_HUGEPAGE) on the mapping), a 2 MiB-aligned
 * window takes 2 MiB pages; otherwise 4 KiB ones.  hugetlbfs (MFD_HUGETLB)
 * is not used: a client can punch a hole in the file it was given, which
 * drops the hole's huge-page reservation, and the daemon's next touch
 * there then raises SIGBUS whenever the host's pool is used up.
 *
 * Detaching a window punches the whole file (its pages go back to the
 * host at once, even if a client still holds the fd) and maps fresh
 * anonymous memory back over it.  Reset punches every window and drops
 * every other page.
 *
 * A window moves to another sim GPU with its file: the destination maps
 * the same file (a dup of its fd) over its own window's place, so for a
 * moment both GPUs show the same pages; then the source maps anonymous
 * memory back over its place without punching anything.  The client's
 * mapping of the file never notices.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "gpup/gpu/gpu.h"

#define SIM_HUGE (2ull << 20)
#define SIM_PROT (PROT_READ | PROT_WRITE)
#define SIM_ANON (MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE)
#define SIM_SEALS (F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL)

/* How the host gives shmem files 2 MiB pages. */
enum sim_thp {
	SIM_THP_NEVER,
	SIM_THP_ADVISE,   /* to mappings madvised MADV_HUGEPAGE */
	SIM_THP_ALWAYS,
};

struct sim_window {
	uint64_t off, size;
	int fd;
	enum gpup_vram_backing backing;
};

struct sim_gpu {
	uint8_t *vram;
	uint64_t size;
	unsigned int index;
	enum sim_thp thp;
	pthread_mutex_t lock;     /* the windows */
	struct sim_window *win;
	unsigned int nwin, capwin;
	unsigned int ncompute, ncopy;
	struct gpup_engine *engines[2][GPUP_GPU_MAX_ENGINES];
};

/* The bracketed word of a sysfs choice file ("always [advise] never"),
 * or "" if it cannot be read. */
static void sysfs_choice(const char *path, char *out, size_t n)
{
	char buf[256], *a, *b;
	FILE *f = fopen(path, "re");

	out[0] = '\0';
	if (!f)
		return;
	if (fgets(buf, sizeof(buf), f) && (a = strchr(buf, '[')) && (b = strchr(a, ']'))) {
		*b = '\0';
		snprintf(out, n, "%s", a + 1);
	}
	fclose(f);
}

static enum sim_thp host_shmem_thp(void)
{
	char mode[32];

	sysfs_choice("/sys/kernel/mm/transparent_hugepage/hugepages-2048kB/shmem_enabled",
		     mode, sizeof(mode));
	if (!mode[0] || !strcmp(mode, "inherit"))
		sysfs_choice("/sys/kernel/mm/transparent_hugepage/shmem_enabled", mode,
			     sizeof(mode));
	if (!strcmp(mode, "always") || !strcmp(mode, "within_size") || !strcmp(mode, "force"))
		return SIM_THP_ALWAYS;
	return strcmp(mode, "advise") ? SIM_THP_NEVER : SIM_THP_ADVISE;
}

/* size bytes of anonymous memory at a 2 MiB boundary, or NULL. */
static uint8_t *vram_range(uint64_t size)
{
	uint8_t *p = mmap(NULL, size + SIM_HUGE, SIM_PROT, SIM_ANON, -1, 0), *base;

	if (p == MAP_FAILED)
		return NULL;
	base = (uint8_t *)(((uintptr_t)p + SIM_HUGE - 1) & ~(uintptr_t)(SIM_HUGE - 1));
	if (base > p)
		munmap(p, (size_t)(base - p));
	munmap(base + size, (size_t)(p + SIM_HUGE - base));
	return base;
}

/* Give [off, off + size) back to anonymous memory (zeros, no file).  A
 * failure leaves the file's own mapping there: the caller has punched the
 * file, so it holds no data, and the next attach maps over it. */
static void anon_back(struct sim_gpu *s, uint64_t off, uint64_t size)
{
	if (mmap(s->vram + off, size, SIM_PROT, SIM_ANON | MAP_FIXED, -1, 0) == MAP_FAILED)
		perror("gpup sim GPU: VRAM detach");
}

static int punch(const struct sim_window *w)
{
	if (fallocate(w->fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 0, (off_t)w->size) < 0)
		return -errno;
	return 0;
}

static void sim_free(struct sim_gpu *s)
{
	for (unsigned int k = 0; k < 2; k++)
		for (unsigned int i = 0; i < GPUP_GPU_MAX_ENGINES; i++)
			gpup_engine_destroy(s->engines[k][i]);
	if (s->vram)
		munmap(s->vram, s->size);
	for (unsigned int i = 0; i < s->nwin; i++)
		close(s->win[i].fd);
	free(s->win);
	pthread_mutex_destroy(&s->lock);
	free(s);
}

static int sim_engines(struct sim_gpu *s, const char *name, int (*init)(void))
{
	for (unsigned int i = 0; i < s->ncompute; i++) {
		s->engines[0][i] = gpup_engine_create(GPUP_ENGINE_KIND_COMPUTE, i, name, init);
		if (!s->engines[0][i])
			return -errno;
	}
	for (unsigned int i = 0; i < s->ncopy; i++) {
		s->engines[1][i] = gpup_engine_create(GPUP_ENGINE_KIND_COPY, i, name, init);
		if (!s->engines[1][i])
			return -errno;
	}
	return 0;
}

static int sim_open(struct gpup_gpu *gpu, const struct gpup_gpu_cfg *cfg)
{
	struct sim_gpu *s = calloc(1, sizeof(*s));
	char name[32];
	int r;

	if (!s)
		return -ENOMEM;
	pthread_mutex_init(&s->lock, NULL);
	s->size = cfg->vram_size;
	s->index = cfg->index;
	s->ncompute = cfg->ncompute;
	s->ncopy = cfg->ncopy;
	s->thp = host_shmem_thp();
	s->vram = vram_range(s->size);
	if (!s->vram) {
		r = -errno;
		goto err;
	}
	snprintf(name, sizeof(name), "gpu%u", cfg->index);
	r = sim_engines(s, name, cfg->thread_init);
	if (r)
		goto err;
	gpup_gpu_set_priv(gpu, s);
	return 0;
err:
	sim_free(s);
	return r;
}

static void sim_close(struct gpup_gpu *gpu)
{
	sim_free(gpup_gpu_priv(gpu));
	gpup_gpu_set_priv(gpu, NULL);
}

static void *sim_vram_map(struct gpup_gpu *gpu)
{
	struct sim_gpu *s = gpup_gpu_priv(gpu);

	return s->vram;
}

/* The index of the window at off, or -1 (lock). */
static int window_at(const struct sim_gpu *s, uint64_t off)
{
	for (unsigned int i = 0; i < s->nwin; i++)
		if (s->win[i].off == off)
			return (int)i;
	return -1;
}

/* 0, -EBUSY if [off, off + size) overlaps a window, or -ENOMEM (lock). */
static int window_room(struct sim_gpu *s, uint64_t off, uint64_t size)
{
	struct sim_window *w;

	for (unsigned int i = 0; i < s->nwin; i++)
		if (s->win[i].off < off + size && off < s->win[i].off + s->win[i].size)
			return -EBUSY;
	if (s->nwin < s->capwin)
		return 0;
	w = realloc(s->win, (s->capwin * 2 + 4) * sizeof(*w));
	if (!w)
		return -ENOMEM;
	s->win = w;
	s->capwin = s->capwin * 2 + 4;
	return 0;
}

/* A new file of size bytes, all zero, that can never change size: its
 * fd or -errno. */
static int window_file(const struct sim_gpu *s, uint64_t off, uint64_t size)
{
	char name[64];
	int fd, r;

	snprintf(name, sizeof(name), "gpup-vram-gpu%u@%#llx", s->index, (unsigned long long)off);
	fd = memfd_create(name, MFD_CLOEXEC | MFD_ALLOW_SEALING);
	if (fd < 0)
		return -errno;
	if (ftruncate(fd, (off_t)size) == 0 && fcntl(fd, F_ADD_SEALS, SIM_SEALS) == 0)
		return fd;
	r = -errno;
	close(fd);
	return r;
}

/* Huge pages for a window's mapping where the host gives them to shmem
 * and the window is made of whole 2 MiB pages. */
static enum gpup_vram_backing window_pages(struct sim_gpu *s, const struct sim_window *w)
{
	if (s->thp == SIM_THP_NEVER || w->off % SIM_HUGE || w->size % SIM_HUGE)
		return GPUP_VRAM_BACKING_4K;
	if (s->thp == SIM_THP_ADVISE && madvise(s->vram + w->off, w->size, MADV_HUGEPAGE) < 0)
		return GPUP_VRAM_BACKING_4K;
	return GPUP_VRAM_BACKING_THP;
}

static int sim_vram_attach(struct gpup_gpu *gpu, uint64_t off, uint64_t size)
{
	struct sim_gpu *s = gpup_gpu_priv(gpu);
	struct sim_window w = { .off = off, .size = size, .fd = -1 };
	int r;

	pthread_mutex_lock(&s->lock);
	r = window_room(s, off, size);
	if (!r)
		r = w.fd = window_file(s, off, size);
	if (r >= 0 && mmap(s->vram + off, size, SIM_PROT, MAP_SHARED | MAP_FIXED, w.fd, 0) ==
		      MAP_FAILED) {
		r = -errno;
		anon_back(s, off, size);
		close(w.fd);
	}
	if (r >= 0) {
		w.backing = window_pages(s, &w);
		s->win[s->nwin++] = w;
		r = 0;
	}
	pthread_mutex_unlock(&s->lock);
	return r;
}

/* 0 if fd is a window file of exactly size bytes that cannot change
 * size, else -EINVAL (or fstat's error). */
static int window_file_ok(int fd, uint64_t size)
{
	struct stat st;
	int seals = fcntl(fd, F_GET_SEALS);

	if (fstat(fd, &st))
		return -errno;
	if (seals < 0 || (seals & (F_SEAL_SHRINK | F_SEAL_GROW)) != (F_SEAL_SHRINK | F_SEAL_GROW) ||
	    (uint64_t)st.st_size != size)
		return -EINVAL;
	return 0;
}

static int sim_vram_adopt(struct gpup_gpu *gpu, uint64_t off, uint64_t size, int fd)
{
	struct sim_gpu *s = gpup_gpu_priv(gpu);
	struct sim_window w = { .off = off, .size = size, .fd = -1 };
	int r = window_file_ok(fd, size);

	pthread_mutex_lock(&s->lock);
	if (!r)
		r = window_room(s, off, size);
	if (!r && (w.fd = fcntl(fd, F_DUPFD_CLOEXEC, 0)) < 0)
		r = -errno;
	if (!r && mmap(s->vram + off, size, SIM_PROT, MAP_SHARED | MAP_FIXED, w.fd, 0) ==
		      MAP_FAILED) {
		r = -errno;
		anon_back(s, off, size);
		close(w.fd);
	}
	if (!r) {
		w.backing = window_pages(s, &w);
		s->win[s->nwin++] = w;
	}
	pthread_mutex_unlock(&s->lock);
	return r;
}

/* The file lives on where it was adopted: not punched, only unmapped. */
static void sim_vram_release(struct gpup_gpu *gpu, uint64_t off)
{
	struct sim_gpu *s = gpup_gpu_priv(gpu);
	int i;

	pthread_mutex_lock(&s->lock);
	i = window_at(s, off);
	if (i >= 0) {
		anon_back(s, s->win[i].off, s->win[i].size);
		close(s->win[i].fd);
		s->win[i] = s->win[--s->nwin];
	}
	pthread_mutex_unlock(&s->lock);
}

static void sim_vram_detach(struct gpup_gpu *gpu, uint64_t off)
{
	struct sim_gpu *s = gpup_gpu_priv(gpu);
	int i;

	pthread_mutex_lock(&s->lock);
	i = window_at(s, off);
	if (i >= 0) {
		struct sim_window w = s->win[i];

		if (punch(&w))
			perror("gpup sim GPU: VRAM release");
		anon_back(s, w.off, w.size);
		close(w.fd);
		s->win[i] = s->win[--s->nwin];
	}
	pthread_mutex_unlock(&s->lock);
}

static int sim_vram_window(struct gpup_gpu *gpu, uint64_t off, struct gpup_vram_window *out)
{
	struct sim_gpu *s = gpup_gpu_priv(gpu);
	int i;

	pthread_mutex_lock(&s->lock);
	i = window_at(s, off);
	if (i >= 0)
		*out = (struct gpup_vram_window){ .fd = s->win[i].fd, .backing = s->win[i].backing };
	pthread_mutex_unlock(&s->lock);
	return i >= 0 ? 0 : -ENOENT;
}

/* What window_pages gives a window of whole 2 MiB pages. */
static enum gpup_vram_backing sim_vram_backing(struct gpup_gpu *gpu)
{
	const struct sim_gpu *s = gpup_gpu_priv(gpu);

	return s->thp == SIM_THP_NEVER ? GPUP_VRAM_BACKING_4K : GPUP_VRAM_BACKING_THP;
}

/* Windows punched (zero, their pages back to the host), every other page
 * dropped: private anonymous memory reads as zeros again. */
static int sim_reset(struct gpup_gpu *gpu)
{
	struct sim_gpu *s = gpup_gpu_priv(gpu);
	int r = 0;

	pthread_mutex_lock(&s->lock);
	for (unsigned int i = 0; i < s->nwin && !r; i++)
		r = punch(&s->win[i]);
	if (!r && madvise(s->vram, s->size, MADV_DONTNEED) < 0)
		r = -errno;
	pthread_mutex_unlock(&s->lock);
	return r;
}

static struct gpup_engine *sim_engine(struct gpup_gpu *gpu, enum gpup_engine_kind kind,
				      unsigned int idx)
{
	struct sim_gpu *s = gpup_gpu_priv(gpu);

	return s->engines[kind == GPUP_ENGINE_KIND_COPY][idx];
}

static const struct gpup_backend_ops sim_ops = {
	.version = GPUP_BACKEND_OPS_VERSION,
	.name = "sim",
	.open = sim_open,
	.close = sim_close,
	.vram_map = sim_vram_map,
	.vram_attach = sim_vram_attach,
	.vram_detach = sim_vram_detach,
	.vram_window = sim_vram_window,
	.vram_backing = sim_vram_backing,
	.reset = sim_reset,
	.engine = sim_engine,
	.model = "gpup sim GPU",
	.vram_adopt = sim_vram_adopt,
	.vram_release = sim_vram_release,
};

struct gpup_gpu *gpup_sim_gpu_create(const struct gpup_gpu_cfg *cfg)
{
	return gpup_gpu_create(&sim_ops, cfg);
}
