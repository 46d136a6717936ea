// SPDX-License-Identifier: MIT
/*
 * The pool of GPUs, their partition types and the partitions cut from
 * them (see pool.h for the model).  Persistence lives in pool_state.c.
 */
#include <ctype.h>
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

#include "gpup/base/base.h"
#include "gpup/gpu/gpu.h"
#include "gpup/pool/pool.h"


void gpup_pool_init(struct gpup_pool *p, const char *state_dir)
{
	memset(p, 0, sizeof(*p));
	p->state_dir = state_dir ? strdup(state_dir) : NULL;
	p->lock_fd = -1;
}

void gpup_pool_fini(struct gpup_pool *p)
{
	while (p->parts) {
		struct gpup_partition *n = p->parts->next;

		free(p->parts);
		p->parts = n;
	}
	while (p->unavail) {
		struct gpup_unavail *n = p->unavail->next;

		free(p->unavail);
		p->unavail = n;
	}
	p->nunavail = 0;
	if (p->lock_fd >= 0)
		close(p->lock_fd); /* releases the flock */
	p->lock_fd = -1;
	free(p->state_dir);
	p->state_dir = NULL;
	p->ngpus = 0;
}

int gpup_pool_add_gpu(struct gpup_pool *p, const char *name, const char *model,
		      const char *backend, uint64_t vram_size, unsigned int ncompute,
		      unsigned int ncopy, void *priv)
{
	struct gpup_pool_gpu *g;

	if (p->ngpus >= GPUP_POOL_MAX_GPUS)
		return -ENOSPC;
	if (vram_size == 0 || vram_size % (GPUP_POOL_MAX_DENOM * 4096ull))
		return -EINVAL;
	g = &p->gpus[p->ngpus];
	memset(g, 0, sizeof(*g));
	snprintf(g->name, sizeof(g->name), "%s", name);
	snprintf(g->model, sizeof(g->model), "%s", model);
	snprintf(g->backend, sizeof(g->backend), "%s", backend);
	g->vram_size = vram_size;
	g->ncompute = ncompute;
	g->ncopy = ncopy;
	g->priv = priv;
	snprintf(g->gen, sizeof(g->gen), "%s", GPUP_GPU_GEN_DEFAULT);
	g->kernels = gpup_gpu_gen_find(GPUP_GPU_GEN_DEFAULT)->kernels;
	gpup_buddy_init(&g->buddy, vram_size, GPUP_POOL_MAX_DENOM);
	return (int)p->ngpus++;
}

int gpup_pool_find_gpu(const struct gpup_pool *p, const char *id)
{
	char *end;
	unsigned long n;

	for (unsigned int i = 0; i < p->ngpus; i++)
		if (strcmp(p->gpus[i].name, id) == 0)
			return (int)i;
	if (!isdigit((unsigned char)id[0]))
		return -ENODEV;
	n = strtoul(id, &end, 10);
	if (*end || n >= p->ngpus)
		return -ENODEV;
	return (int)n;
}

/* "8g", "512m", "64k": the largest unit that divides the size. */
static void size_tag(uint64_t bytes, char *buf, size_t len)
{
	static const char units[] = "kmgt";
	int i = -1;

	while (i < 3 && bytes >= 1024 && bytes % 1024 == 0) {
		bytes /= 1024;
		i++;
	}
	if (i < 0)
		snprintf(buf, len, "%llub", (unsigned long long)bytes);
	else
		snprintf(buf, len, "%llu%c", (unsigned long long)bytes, units[i]);
}

static void fill_type(const struct gpup_pool *p, unsigned int gpu, unsigned int denom,
		      struct gpup_type *t)
{
	const struct gpup_pool_gpu *g = &p->gpus[gpu];
	char tag[24];

	t->gpu = gpu;
	t->fraction = denom;
	t->vram_size = g->vram_size / denom;
	t->max_instances = denom;
	t->available = gpup_buddy_available(&g->buddy, GPUP_POOL_MAX_DENOM / denom);
	size_tag(t->vram_size, tag, sizeof(tag));
	snprintf(t->name, sizeof(t->name), "%s-%s-%u", g->backend, tag, denom);
}

unsigned int gpup_pool_types(const struct gpup_pool *p, unsigned int gpu,
			     struct gpup_type *out)
{
	unsigned int n = 0;

	if (gpu >= p->ngpus)
		return 0;
	for (unsigned int denom = 1; denom <= GPUP_POOL_MAX_DENOM; denom *= 2)
		fill_type(p, gpu, denom, &out[n++]);
	return n;
}

int gpup_pool_find_type(const struct gpup_pool *p, unsigned int gpu, const char *name,
			struct gpup_type *out)
{
	struct gpup_type t[GPUP_POOL_NFRACTIONS];
	unsigned int n = gpup_pool_types(p, gpu, t);

	for (unsigned int i = 0; i < n; i++) {
		if (strcmp(t[i].name, name) == 0) {
			*out = t[i];
			return 0;
		}
	}
	return -ENOENT;
}

struct gpup_partition *gpup_pool_find(const struct gpup_pool *p, const char *uuid)
{
	for (struct gpup_partition *q = p->parts; q; q = q->next)
		if (strcmp(q->uuid, uuid) == 0)
			return q;
	return NULL;
}

const struct gpup_unavail *gpup_pool_find_unavail(const struct gpup_pool *p,
						  const char *uuid)
{
	for (const struct gpup_unavail *u = p->unavail; u; u = u->next)
		if (strcmp(u->uuid, uuid) == 0)
			return u;
	return NULL;
}

int gpup_uuid_parse(const char *in, char *out)
{
	if (strlen(in) != GPUP_UUID_STRLEN)
		return -EINVAL;
	for (unsigned int i = 0; i < GPUP_UUID_STRLEN; i++) {
		bool dash = i == 8 || i == 13 || i == 18 || i == 23;

		if (dash ? in[i] != '-' : !isxdigit((unsigned char)in[i]))
			return -EINVAL;
		out[i] = (char)tolower((unsigned char)in[i]);
	}
	out[GPUP_UUID_STRLEN] = '\0';
	return 0;
}

int gpup_uuid_generate(char *out)
{
	uint8_t b[16];

	if (getrandom(b, sizeof(b), 0) != (ssize_t)sizeof(b))
		return -EIO;
	b[6] = (uint8_t)((b[6] & 0x0f) | 0x40);  /* version 4 */
	b[8] = (uint8_t)((b[8] & 0x3f) | 0x80);  /* RFC 4122 variant */
	snprintf(out, GPUP_UUID_STRLEN + 1,
		 "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x",
		 b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10],
		 b[11], b[12], b[13], b[14], b[15]);
	return 0;
}

/* Among GPUs offering the type with room and the features `need`, the
 * one with the fewest free units: filling busy GPUs first keeps whole GPUs
 * free for large types. */
static int pick_gpu(const struct gpup_pool *p, const char *type, uint32_t need,
		    struct gpup_type *t)
{
	int best = -1;
	unsigned int best_free = 0;
	bool known = false;

	for (unsigned int i = 0; i < p->ngpus; i++) {
		struct gpup_type ti;
		unsigned int fu;

		if (gpup_pool_find_type(p, i, type, &ti) || (need & ~p->gpus[i].kernels))
			continue;
		known = true;
		fu = gpup_buddy_free_units(&p->gpus[i].buddy);
		if (ti.available && (best < 0 || fu < best_free)) {
			best = (int)i;
			best_free = fu;
			*t = ti;
		}
	}
	if (best < 0)
		return known ? -ENOSPC : -ENOENT;
	return best;
}

/* The lowest feature of want that GPU g lacks, by name. */
static const char *lacks(const struct gpup_pool_gpu *g, uint32_t want)
{
	return gpup_kernel_name((uint32_t)__builtin_ctz(want & ~g->kernels));
}

/* who: what needs the features `need`, for the error line. */
static int resolve_target(struct gpup_pool *p, const char *gpu_id, const char *type,
			  uint32_t need, const char *who, struct gpup_type *t, char *err,
			  size_t errlen)
{
	int gpu;

	if (!gpu_id) {
		gpu = pick_gpu(p, type, need, t);
		if (gpu == -ENOENT)
			gpup_say(err, errlen, "no GPU offers type '%s'%s; see 'gpup types'", type,
				need ? " with those features" : "");
		else if (gpu == -ENOSPC)
			gpup_say(err, errlen, "no GPU has room for a '%s' partition", type);
		return gpu;
	}
	gpu = gpup_pool_find_gpu(p, gpu_id);
	if (gpu < 0) {
		gpup_say(err, errlen, "no GPU '%s'; see 'gpup gpus'", gpu_id);
		return gpu;
	}
	if (gpup_pool_find_type(p, (unsigned int)gpu, type, t)) {
		gpup_say(err, errlen, "%s has no type '%s'; see 'gpup types'",
			p->gpus[gpu].name, type);
		return -ENOENT;
	}
	if (need & ~p->gpus[gpu].kernels) {
		gpup_say(err, errlen, "%s (%s) lacks the %s kernel that %s exposes",
			p->gpus[gpu].name, p->gpus[gpu].gen, lacks(&p->gpus[gpu], need), who);
		return -EOPNOTSUPP;
	}
	if (!t->available) {
		const struct gpup_buddy *b = &p->gpus[gpu].buddy;
		char sz[32];

		gpup_format_size(gpup_buddy_largest_free(b) * b->unit, sz, sizeof(sz));
		gpup_say(err, errlen, "%s has no room for a '%s' partition (largest free slot: %s)",
			p->gpus[gpu].name, type, sz);
		return -ENOSPC;
	}
	return gpu;
}

static int choose_uuid(const struct gpup_pool *p, const char *uuid, char *out,
		       char *err, size_t errlen)
{
	const struct gpup_unavail *u;

	if (!uuid)
		return gpup_uuid_generate(out);
	if (gpup_uuid_parse(uuid, out)) {
		gpup_say(err, errlen, "'%s' is not a UUID (want 8-4-4-4-12 hex digits)", uuid);
		return -EINVAL;
	}
	if (gpup_pool_find(p, out)) {
		gpup_say(err, errlen, "UUID %s is already in use", out);
		return -EEXIST;
	}
	/* A definition restore skipped is still someone's: never overwrite
	 * its file. */
	u = gpup_pool_find_unavail(p, out);
	if (u) {
		gpup_say(err, errlen, "UUID %s is reserved by an unavailable saved partition (%s); "
			"'gpup destroy' it to reuse the UUID", out, u->why);
		return -EEXIST;
	}
	if (gpup_pool_state_exists(p, out)) {
		gpup_say(err, errlen, "UUID %s is reserved by a definition file in %s "
			"that this daemon did not restore", out, p->state_dir);
		return -EEXIST;
	}
	return 0;
}

static void link_part(struct gpup_pool *p, struct gpup_partition *part)
{
	struct gpup_partition **pp = &p->parts;

	while (*pp)
		pp = &(*pp)->next;
	part->next = NULL;
	*pp = part;
}

/* compat's name and features into part: 0, or -EINVAL naming the known
 * generations. */
static int set_compat(struct gpup_partition *part, const char *compat, char *err,
		      size_t errlen)
{
	const struct gpup_gpu_gen *g = compat ? gpup_gpu_gen_find(compat) : NULL;

	if (!compat)
		return 0;
	if (!g) {
		gpup_say(err, errlen, "--compat '%s' is not a GPU generation (gen1, gen2)", compat);
		return -EINVAL;
	}
	snprintf(part->compat, sizeof(part->compat), "%s", g->name);
	part->compat_kernels = g->kernels;
	return 0;
}

int gpup_pool_create(struct gpup_pool *p, const char *gpu_id, const char *type,
		     const char *uuid, struct gpup_partition **out, char *err, size_t errlen)
{
	return gpup_pool_create_compat(p, gpu_id, type, uuid, NULL, out, err, errlen);
}

int gpup_pool_create_compat(struct gpup_pool *p, const char *gpu_id, const char *type,
			    const char *uuid, const char *compat, struct gpup_partition **out,
			    char *err, size_t errlen)
{
	struct gpup_define def = { .gpu = gpu_id, .type = type, .uuid = uuid, .compat = compat,
				   .persist = true, .start_auto = true };

	return gpup_pool_define(p, &def, out, err, errlen);
}

int gpup_pool_define(struct gpup_pool *p, const struct gpup_define *def,
		     struct gpup_partition **out, char *err, size_t errlen)
{
	struct gpup_partition *part;
	struct gpup_pool_gpu *g;
	struct gpup_type t;
	unsigned int units, off;
	char who[32];
	int gpu, rc;

	part = calloc(1, sizeof(*part));
	if (!part)
		return -ENOMEM;
	rc = choose_uuid(p, def->uuid, part->uuid, err, errlen);
	if (!rc)
		rc = set_compat(part, def->compat, err, errlen);
	if (rc)
		goto err;
	snprintf(who, sizeof(who), "compat %s", part->compat);
	gpu = rc = resolve_target(p, def->gpu, def->type, part->compat_kernels, who, &t, err,
				  errlen);
	if (rc < 0)
		goto err;
	g = &p->gpus[gpu];
	units = GPUP_POOL_MAX_DENOM / t.fraction;
	rc = gpup_buddy_alloc(&g->buddy, units, &off);
	if (rc)
		goto err;
	snprintf(part->type, sizeof(part->type), "%s", t.name);
	part->gpu = (unsigned int)gpu;
	part->fraction = t.fraction;
	part->vram_offset = (uint64_t)off * g->buddy.unit;
	part->vram_size = t.vram_size;
	part->defined = def->persist;
	part->start_auto = def->start_auto;
	rc = gpup_pool_state_write(p, part);
	if (rc) {
		gpup_say(err, errlen, "cannot save partition in %s: %s", p->state_dir,
			strerror(-rc));
		gpup_buddy_free(&g->buddy, off, units);
		goto err;
	}
	link_part(p, part);
	*out = part;
	return 0;
err:
	free(part);
	return rc;
}

int gpup_pool_persist(struct gpup_pool *p, struct gpup_partition *part, bool start_auto,
		      char *err, size_t errlen)
{
	bool was_defined = part->defined, was_auto = part->start_auto;
	int rc;

	part->defined = true;
	part->start_auto = start_auto;
	rc = gpup_pool_state_write(p, part);
	if (rc) {
		part->defined = was_defined;
		part->start_auto = was_auto;
		gpup_say(err, errlen, "cannot save the definition of %s in %s: %s", part->uuid,
			p->state_dir, strerror(-rc));
	}
	return rc;
}

static void unlink_part(struct gpup_pool *p, struct gpup_partition *part)
{
	for (struct gpup_partition **pp = &p->parts; *pp; pp = &(*pp)->next) {
		if (*pp == part) {
			*pp = part->next;
			return;
		}
	}
}

/* The file of a definition restore skipped, and the record that kept its
 * UUID reserved. */
static int destroy_unavail(struct gpup_pool *p, const char *uuid, char *err, size_t errlen)
{
	struct gpup_unavail **pp = &p->unavail, *u;
	int rc;

	while (*pp && strcmp((*pp)->uuid, uuid))
		pp = &(*pp)->next;
	if (!*pp) {
		gpup_say(err, errlen, "no partition %s; see 'gpup list'", uuid);
		return -ENOENT;
	}
	rc = gpup_pool_state_remove(p, uuid);
	if (rc) {
		gpup_say(err, errlen, "cannot remove the state of %s: %s", uuid, strerror(-rc));
		return rc;
	}
	u = *pp;
	*pp = u->next;
	free(u);
	p->nunavail--;
	return 0;
}

int gpup_pool_undefine(struct gpup_pool *p, const char *uuid, char *err, size_t errlen)
{
	struct gpup_partition *part = gpup_pool_find(p, uuid);
	int rc;

	if (!part)
		return destroy_unavail(p, uuid, err, errlen);
	if (!part->defined) {
		gpup_say(err, errlen, "partition %s has no definition (it is transient)", uuid);
		return -ENOENT;
	}
	rc = gpup_pool_state_remove(p, part->uuid);
	if (rc) {
		gpup_say(err, errlen, "cannot remove the definition of %s: %s", uuid, strerror(-rc));
		return rc;
	}
	part->defined = false;
	return 0;
}

int gpup_pool_destroy(struct gpup_pool *p, const char *uuid, char *err, size_t errlen)
{
	struct gpup_partition *part = gpup_pool_find(p, uuid);
	struct gpup_pool_gpu *g;
	int rc;

	if (!part)
		return destroy_unavail(p, uuid, err, errlen);
	rc = gpup_pool_state_remove(p, part->uuid);
	if (rc) {
		gpup_say(err, errlen, "cannot remove the state of %s: %s", uuid, strerror(-rc));
		return rc;
	}
	g = &p->gpus[part->gpu];
	gpup_buddy_free(&g->buddy, (unsigned int)(part->vram_offset / g->buddy.unit),
			GPUP_POOL_MAX_DENOM / part->fraction);
	unlink_part(p, part);
	free(part);
	return 0;
}

uint32_t gpup_pool_part_kernels(const struct gpup_pool *p, const struct gpup_partition *part)
{
	return part->compat[0] ? part->compat_kernels : p->gpus[part->gpu].kernels;
}

int gpup_pool_move_begin(struct gpup_pool *p, const struct gpup_partition *part,
			 const char *gpu_id, unsigned int *gpu, uint64_t *vram_offset, char *err,
			 size_t errlen)
{
	uint32_t need = gpup_pool_part_kernels(p, part);
	struct gpup_type t;
	unsigned int units, off;
	int g = gpup_pool_find_gpu(p, gpu_id), rc;

	if (g >= 0 && (unsigned int)g == part->gpu) {
		gpup_say(err, errlen, "partition %s already runs on %s", part->uuid, p->gpus[g].name);
		return -EINVAL;
	}
	if (g >= 0 && (gpup_pool_find_type(p, (unsigned int)g, part->type, &t) ||
		       t.vram_size != part->vram_size)) {
		gpup_say(err, errlen, "%s has no type '%s': its VRAM is of another size or backend",
			p->gpus[g].name, part->type);
		return -ENOENT;
	}
	g = resolve_target(p, gpu_id, part->type, need,
			   part->compat[0] ? "its compat" : "its GPU, and so the partition,", &t, err,
			   errlen);
	if (g < 0)
		return g;
	units = GPUP_POOL_MAX_DENOM / t.fraction;
	rc = gpup_buddy_alloc(&p->gpus[g].buddy, units, &off);
	if (rc)
		return rc;
	*gpu = (unsigned int)g;
	*vram_offset = (uint64_t)off * p->gpus[g].buddy.unit;
	return 0;
}

static void free_slot(struct gpup_pool *p, unsigned int gpu, uint64_t off, unsigned int fraction)
{
	struct gpup_pool_gpu *g = &p->gpus[gpu];

	gpup_buddy_free(&g->buddy, (unsigned int)(off / g->buddy.unit),
			GPUP_POOL_MAX_DENOM / fraction);
}

/* The definition file under GPU `gpu`, which is not (or no longer) the
 * one that counts. */
static void drop_def(struct gpup_pool *p, const struct gpup_partition *part, unsigned int gpu)
{
	int rc;

	if (!part->defined)
		return;
	rc = gpup_pool_state_remove_at(p, gpu, part->uuid);
	if (rc && p->log)
		p->log("partition %s: cannot remove its definition under %s: %s; the next start "
		       "uses the newer one", part->uuid, p->gpus[gpu].name, strerror(-rc));
}

void gpup_pool_move_commit(struct gpup_pool *p, struct gpup_partition *part, unsigned int gpu,
			   uint64_t vram_offset)
{
	unsigned int from = part->gpu;

	free_slot(p, part->gpu, part->vram_offset, part->fraction);
	part->gpu = gpu;
	part->vram_offset = vram_offset;
	if (part->defined && p->state_dir)
		part->revision++;  /* what write_at wrote */
	drop_def(p, part, from);
}

void gpup_pool_move_abort(struct gpup_pool *p, const struct gpup_partition *part,
			  unsigned int gpu, uint64_t vram_offset)
{
	free_slot(p, gpu, vram_offset, part->fraction);
	drop_def(p, part, gpu);
}

int gpup_pool_adopt(struct gpup_pool *p, struct gpup_partition *part, char *err,
		    size_t errlen)
{
	struct gpup_pool_gpu *g = &p->gpus[part->gpu];
	struct gpup_type t;
	int rc;

	if (gpup_pool_find(p, part->uuid)) {
		gpup_say(err, errlen, "UUID already in use");
		return -EEXIST;
	}
	if (gpup_pool_find_type(p, part->gpu, part->type, &t) ||
	    t.vram_size != part->vram_size) {
		gpup_say(err, errlen, "%s has no type '%s' of that size", g->name, part->type);
		return -ENOENT;
	}
	if (part->vram_offset % g->buddy.unit) {
		gpup_say(err, errlen, "vram_offset %llu is not slot aligned",
			(unsigned long long)part->vram_offset);
		return -EINVAL;
	}
	/* Checked in bytes: the slot index below is an unsigned int. */
	if (part->vram_offset >= g->vram_size || part->vram_size > g->vram_size - part->vram_offset) {
		gpup_say(err, errlen, "vram_offset %llu is past the end of %s",
			(unsigned long long)part->vram_offset, g->name);
		return -EINVAL;
	}
	if (part->compat_kernels & ~g->kernels) {
		gpup_say(err, errlen, "%s (%s) lacks the %s kernel its compat %s needs", g->name,
			g->gen, lacks(g, part->compat_kernels), part->compat);
		return -EOPNOTSUPP;
	}
	rc = gpup_buddy_reserve(&g->buddy, (unsigned int)(part->vram_offset / g->buddy.unit),
				GPUP_POOL_MAX_DENOM / t.fraction);
	if (rc) {
		gpup_say(err, errlen, "its VRAM slot is %s",
			rc == -EBUSY ? "taken by another partition" : "out of range");
		return rc;
	}
	part->fraction = t.fraction;
	link_part(p, part);
	return 0;
}
