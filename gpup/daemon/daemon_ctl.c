// SPDX-License-Identifier: MIT
/*
 * The control API's methods (names in uapi/gpup_ctl.h): a table from
 * method name to handler, each turning a request into a reply object.
 * New methods (sched, stats, migrate) are new rows.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "gpup/ctl/ctl.h"
#include "gpup/daemon/daemon_int.h"
#include "gpup/gpu/gpu.h"
#include "gpup/vgpu/vgpu.h"
#include "iommu/iommu.h"
#include "migrate/mig.h"
#include "uapi/gpup_ctl.h"
#include "uapi/gpup_vgpu.h"
#include "vfu/vfu.h"

static void add_str(json_object *o, const char *k, const char *v)
{
	json_object_object_add(o, k, json_object_new_string(v));
}

static void add_u64(json_object *o, const char *k, uint64_t v)
{
	json_object_object_add(o, k, json_object_new_int64((int64_t)v));
}

/* Whether GPU i (-1: none) failed (docs/MIGRATION.md, "Failover"). */
static bool gpu_failed(const struct gpup_pool *p, int i)
{
	return i >= 0 && p->gpus[i].priv && gpup_gpu_failure(p->gpus[i].priv);
}

static json_object *gpu_json(const struct gpup_pool *p, unsigned int i)
{
	const struct gpup_pool_gpu *g = &p->gpus[i];
	json_object *o = json_object_new_object();
	unsigned int nparts = 0;

	for (struct gpup_partition *q = p->parts; q; q = q->next)
		nparts += q->gpu == i;
	add_str(o, GPUP_CTL_F_NAME, g->name);
	add_str(o, GPUP_CTL_F_MODEL, g->model);
	add_str(o, GPUP_CTL_F_BACKEND, g->backend);
	add_u64(o, GPUP_CTL_F_VRAM, g->vram_size);
	add_u64(o, GPUP_CTL_F_VRAM_FREE, gpup_buddy_free_units(&g->buddy) * g->buddy.unit);
	add_u64(o, GPUP_CTL_F_LARGEST_FREE, gpup_buddy_largest_free(&g->buddy) * g->buddy.unit);
	add_u64(o, GPUP_CTL_F_NCOMPUTE, g->ncompute);
	add_u64(o, GPUP_CTL_F_NCOPY, g->ncopy);
	add_str(o, GPUP_CTL_F_GENERATION, g->gen);
	json_object_object_add(o, GPUP_CTL_F_FEATURES, dmn_features_json(g->kernels));
	add_str(o, GPUP_CTL_F_VRAM_BACKING, gpup_vram_backing_name(
			g->priv ? gpup_gpu_vram_backing_new(g->priv) : GPUP_VRAM_BACKING_NONE));
	add_u64(o, GPUP_CTL_F_PARTITIONS, nparts);
	add_str(o, GPUP_CTL_F_HEALTH, gpup_gpu_failure_name(
			g->priv ? gpup_gpu_failure(g->priv) : GPUP_GPU_HEALTHY));
	/* as set (slice 0: the scheduler's default, which follows the number
	 * of contexts), not the slice in force now that `stats` reports */
	add_str(o, GPUP_CTL_F_POLICY, sched_policy_name(g->sched.policy));
	add_u64(o, GPUP_CTL_F_SLICE_NS, g->sched.slice_ns);
	add_u64(o, GPUP_CTL_F_WATCHDOG_NS, g->sched.watchdog_ns);
	return o;
}

static json_object *m_gpus(struct gpup_daemon *d, json_object *req)
{
	json_object *r = gpup_ctl_ok(), *a = json_object_new_array();

	(void)req;
	for (unsigned int i = 0; i < d->pool.ngpus; i++)
		json_object_array_add(a, gpu_json(&d->pool, i));
	json_object_object_add(r, GPUP_CTL_F_GPUS, a);
	json_object_object_add(r, GPUP_CTL_F_HOST, gpup_inventory_json());
	return r;
}

/* What an mdev type says of itself in sysfs (name, description,
 * device_api), so that a tool written for mdev types finds it here. */
static void type_mdev_fields(const struct gpup_pool_gpu *g, const struct gpup_type *t,
			     json_object *o)
{
	char buf[256];

	snprintf(buf, sizeof(buf), "%s 1/%u (%llu MiB)", g->model, t->fraction,
		 (unsigned long long)(t->vram_size >> 20));
	add_str(o, GPUP_CTL_F_NAME, buf);
	snprintf(buf, sizeof(buf),
		 "1/%u of %s %s: %llu MiB of VRAM of its own; %u compute and %u copy "
		 "engine(s) shared in time slices; %u queues, MSI-X",
		 t->fraction, g->name, g->model, (unsigned long long)(t->vram_size >> 20),
		 g->ncompute, g->ncopy, GPUP_MAX_QUEUES);
	add_str(o, GPUP_CTL_F_DESCRIPTION, buf);
	add_str(o, GPUP_CTL_F_DEVICE_API, "vfio-pci");
}

static json_object *type_json(const struct gpup_pool *p, const struct gpup_type *t)
{
	json_object *o = json_object_new_object();

	add_str(o, GPUP_CTL_F_GPU, p->gpus[t->gpu].name);
	add_str(o, GPUP_CTL_F_TYPE, t->name);
	type_mdev_fields(&p->gpus[t->gpu], t, o);
	add_u64(o, GPUP_CTL_F_FRACTION, t->fraction);
	add_u64(o, GPUP_CTL_F_VRAM, t->vram_size);
	add_u64(o, GPUP_CTL_F_MAX_INSTANCES, t->max_instances);
	add_u64(o, GPUP_CTL_F_AVAILABLE, t->available);
	add_str(o, GPUP_CTL_F_GENERATION, p->gpus[t->gpu].gen);
	json_object_object_add(o, GPUP_CTL_F_FEATURES, dmn_features_json(p->gpus[t->gpu].kernels));
	return o;
}

static json_object *m_types(struct gpup_daemon *d, json_object *req)
{
	const char *gpu = gpup_ctl_str(req, GPUP_CTL_F_GPU, NULL);
	json_object *r, *a;
	int only = -1;

	if (gpu) {
		only = gpup_pool_find_gpu(&d->pool, gpu);
		if (only < 0)
			return gpup_ctl_fail(ENODEV, "no GPU '%s'; see 'gpup gpus'", gpu);
	}
	r = gpup_ctl_ok();
	a = json_object_new_array();
	for (unsigned int i = 0; i < d->pool.ngpus; i++) {
		struct gpup_type t[GPUP_POOL_NFRACTIONS];
		unsigned int n;

		if (only >= 0 && (unsigned int)only != i)
			continue;
		n = gpup_pool_types(&d->pool, i, t);
		for (unsigned int k = 0; k < n; k++)
			json_object_array_add(a, type_json(&d->pool, &t[k]));
	}
	json_object_object_add(r, GPUP_CTL_F_TYPES, a);
	return r;
}

/* A partition's scheduler settings as saved (all zero and "normal" until
 * `gpup sched --partition` gives it some). */
static void sched_fields(const struct gpup_partition *p, json_object *o)
{
	add_u64(o, GPUP_CTL_F_WEIGHT, p->sched.weight);
	json_object_object_add(o, GPUP_CTL_F_RESERVE,
			       json_object_new_double(p->sched.reserve_ppm / 1e6));
	json_object_object_add(o, GPUP_CTL_F_CAP, json_object_new_double(p->sched.cap_ppm / 1e6));
	add_str(o, GPUP_CTL_F_CLASS, sched_class_name(p->sched.klass));
	add_u64(o, GPUP_CTL_F_FPS_LIMIT, p->sched.fps_limit);
	add_u64(o, GPUP_CTL_F_BUDGET_US, p->sched.budget_us);
}

static void part_fields(struct gpup_daemon *d, const struct gpup_partition *p, json_object *o)
{
	struct dmn_part *dp = p->priv;
	struct gpup_gpu *g = d->pool.gpus[p->gpu].priv;

	add_str(o, GPUP_CTL_F_UUID, p->uuid);
	add_str(o, GPUP_CTL_F_GPU, d->pool.gpus[p->gpu].name);
	add_str(o, GPUP_CTL_F_TYPE, p->type);
	add_u64(o, GPUP_CTL_F_VRAM, p->vram_size);
	add_u64(o, GPUP_CTL_F_VRAM_OFFSET, p->vram_offset);
	add_str(o, GPUP_CTL_F_VRAM_BACKING, gpup_vram_backing_name(
			g ? gpup_gpu_vram_backing(g, p->vram_offset) : GPUP_VRAM_BACKING_NONE));
	json_object_object_add(o, GPUP_CTL_F_SOCKET,
			       dp ? json_object_new_string(dp->path) : NULL);
	json_object_object_add(o, GPUP_CTL_F_CONNECTED,
			       json_object_new_boolean(dp && vfu_server_connected(dp->vfu)));
	json_object_object_add(o, GPUP_CTL_F_UNAVAILABLE, NULL);
	json_object_object_add(o, GPUP_CTL_F_DEFINED, json_object_new_boolean(p->defined));
	json_object_object_add(o, GPUP_CTL_F_START, p->defined ? json_object_new_string(
					p->start_auto ? "auto" : "manual") : NULL);
	json_object_object_add(o, GPUP_CTL_F_RUNNING, json_object_new_boolean(dp != NULL));
	json_object_object_add(o, GPUP_CTL_F_COMPAT,
			       p->compat[0] ? json_object_new_string(p->compat) : NULL);
	json_object_object_add(o, GPUP_CTL_F_FEATURES,
			       dmn_features_json(gpup_pool_part_kernels(&d->pool, p)));
	sched_fields(p, o);
	dmn_mig_fields(dp, o);
	dmn_protect_fields(dp, o);
}

/* A saved definition restore skipped: what its file says, and why. */
static json_object *unavail_json(const struct gpup_unavail *u)
{
	json_object *o = json_object_new_object();

	add_str(o, GPUP_CTL_F_UUID, u->uuid);
	json_object_object_add(o, GPUP_CTL_F_GPU, u->gpu[0] ? json_object_new_string(u->gpu) : NULL);
	json_object_object_add(o, GPUP_CTL_F_TYPE,
			       u->type[0] ? json_object_new_string(u->type) : NULL);
	add_u64(o, GPUP_CTL_F_VRAM, u->vram_size);
	add_u64(o, GPUP_CTL_F_VRAM_OFFSET, u->vram_offset);
	add_str(o, GPUP_CTL_F_VRAM_BACKING, gpup_vram_backing_name(GPUP_VRAM_BACKING_NONE));
	json_object_object_add(o, GPUP_CTL_F_SOCKET, NULL);
	json_object_object_add(o, GPUP_CTL_F_CONNECTED, json_object_new_boolean(0));
	add_str(o, GPUP_CTL_F_UNAVAILABLE, u->why);
	return o;
}

static json_object *m_create(struct gpup_daemon *d, json_object *req)
{
	const char *type = gpup_ctl_str(req, GPUP_CTL_F_TYPE, NULL);
	const char *gpu = gpup_ctl_str(req, GPUP_CTL_F_GPU, NULL);
	const char *uuid = gpup_ctl_str(req, GPUP_CTL_F_UUID, NULL);
	const char *compat = gpup_ctl_str(req, GPUP_CTL_F_COMPAT, NULL);
	char err[GPUP_POOL_ERR_MAX];
	struct gpup_partition *p;
	json_object *r;
	int rc;

	if (!type)
		return gpup_ctl_fail(EINVAL, "create needs a partition type");
	if (gpu && gpu_failed(&d->pool, gpup_pool_find_gpu(&d->pool, gpu)))
		return gpup_ctl_fail(ENODEV, "%s has failed; see 'gpup gpus'", gpu);
	rc = gpup_pool_create_compat(&d->pool, gpu, type, uuid, compat, &p, err, sizeof(err));
	if (rc)
		return gpup_ctl_fail(-rc, "%s", err);
	rc = dmn_part_start(d, p);
	if (rc) {
		char uu[GPUP_UUID_STRLEN + 1];

		memcpy(uu, p->uuid, sizeof(uu));
		gpup_pool_destroy(&d->pool, uu, err, sizeof(err));
		return gpup_ctl_fail(-rc, "cannot serve the new partition: %s", strerror(-rc));
	}
	gpup_daemon_log("partition %s created: %s on %s at VRAM offset %llu MiB%s%s", p->uuid,
			p->type, d->pool.gpus[p->gpu].name,
			(unsigned long long)(p->vram_offset >> 20),
			p->compat[0] ? ", compat " : "", p->compat);
	r = gpup_ctl_ok();
	part_fields(d, p, r);
	return r;
}

/* Nothing is served for a definition restore skipped: only its file
 * goes, and its UUID is free again.  Anything else is no partition. */
static json_object *destroy_unavail(struct gpup_daemon *d, const char *uuid)
{
	char err[GPUP_POOL_ERR_MAX];
	json_object *r;
	int rc = gpup_pool_destroy(&d->pool, uuid, err, sizeof(err));

	if (rc)
		return gpup_ctl_fail(-rc, "%s", err);
	gpup_daemon_log("unavailable partition %s destroyed: its definition is removed", uuid);
	r = gpup_ctl_ok();
	add_str(r, GPUP_CTL_F_UUID, uuid);
	return r;
}

static json_object *m_destroy(struct gpup_daemon *d, json_object *req)
{
	const char *uuid = gpup_ctl_str(req, GPUP_CTL_F_UUID, NULL);
	char norm[GPUP_UUID_STRLEN + 1], err[GPUP_POOL_ERR_MAX], store[256];
	struct gpup_partition *p;
	struct dmn_part *dp;
	json_object *r, *force;
	bool running;
	int rc;

	if (!uuid || gpup_uuid_parse(uuid, norm))
		return gpup_ctl_fail(EINVAL, "destroy needs a partition UUID");
	p = gpup_pool_find(&d->pool, norm);
	if (!p)
		return destroy_unavail(d, norm);
	dp = p->priv;
	if (dp && vfu_server_connected(dp->vfu) &&
	    !(json_object_object_get_ex(req, GPUP_CTL_F_FORCE, &force) &&
	      json_object_get_boolean(force)))
		return gpup_ctl_fail(EBUSY, "partition %s is in use by a client; stop it first "
					    "or use --force", norm);
	snprintf(store, sizeof(store), "%s", p->protect_store);
	running = dp != NULL;
	dmn_part_stop(d, p);
	rc = gpup_pool_destroy(&d->pool, norm, err, sizeof(err));
	if (rc) {
		/* Its definition is still on disk: keep serving it. */
		if (running)
			dmn_part_start(d, p);
		return gpup_ctl_fail(-rc, "%s", err);
	}
	/* Its protection chain is tenant data too: it goes with it. */
	if (store[0] && mig_chain_compact(store, norm, UINT32_MAX))
		gpup_daemon_log("partition %s: its checkpoint links in %s could not all be removed",
				norm, store);
	gpup_daemon_log("partition %s destroyed", norm);
	r = gpup_ctl_ok();
	add_str(r, GPUP_CTL_F_UUID, norm);
	return r;
}

/* "start": absent is mdevctl's default, manual. */
static int start_arg(json_object *req, bool *start_auto)
{
	const char *s = gpup_ctl_str(req, GPUP_CTL_F_START, "manual");

	*start_auto = !strcmp(s, "auto");
	return *start_auto || !strcmp(s, "manual") ? 0 : -EINVAL;
}

static json_object *part_reply(struct gpup_daemon *d, const struct gpup_partition *p)
{
	json_object *r = gpup_ctl_ok();

	part_fields(d, p, r);
	return r;
}

/* A running partition without a definition gets one ("uuid" alone). */
static json_object *define_existing(struct gpup_daemon *d, const char *uuid, bool start_auto)
{
	char norm[GPUP_UUID_STRLEN + 1], err[GPUP_POOL_ERR_MAX];
	struct gpup_partition *p = NULL;
	int rc;

	if (gpup_uuid_parse(uuid, norm) || !(p = gpup_pool_find(&d->pool, norm)))
		return gpup_ctl_fail(ENOENT, "no partition %s; give a type to define a new one",
				     uuid);
	rc = gpup_pool_persist(&d->pool, p, start_auto, err, sizeof(err));
	if (rc)
		return gpup_ctl_fail(-rc, "%s", err);
	gpup_daemon_log("partition %s defined, start %s", p->uuid, start_auto ? "auto" : "manual");
	return part_reply(d, p);
}

static json_object *m_define(struct gpup_daemon *d, json_object *req)
{
	struct gpup_define def = { .gpu = gpup_ctl_str(req, GPUP_CTL_F_GPU, NULL),
				   .type = gpup_ctl_str(req, GPUP_CTL_F_TYPE, NULL),
				   .uuid = gpup_ctl_str(req, GPUP_CTL_F_UUID, NULL),
				   .compat = gpup_ctl_str(req, GPUP_CTL_F_COMPAT, NULL),
				   .persist = true };
	char err[GPUP_POOL_ERR_MAX];
	struct gpup_partition *p;
	int rc;

	if (start_arg(req, &def.start_auto))
		return gpup_ctl_fail(EINVAL, "start must be auto or manual");
	if (!def.type && !def.uuid)
		return gpup_ctl_fail(EINVAL, "define needs a partition type, or the UUID of a "
					     "running partition");
	if (!def.type)
		return define_existing(d, def.uuid, def.start_auto);
	rc = gpup_pool_define(&d->pool, &def, &p, err, sizeof(err));
	if (rc)
		return gpup_ctl_fail(-rc, "%s", err);
	gpup_daemon_log("partition %s defined: %s on %s at VRAM offset %llu MiB, start %s",
			p->uuid, p->type, d->pool.gpus[p->gpu].name,
			(unsigned long long)(p->vram_offset >> 20), def.start_auto ? "auto" : "manual");
	return part_reply(d, p);
}

/* The definition goes; a running partition runs on without one, one not
 * running has nothing left and goes with it. */
static json_object *m_undefine(struct gpup_daemon *d, json_object *req)
{
	const char *uuid = gpup_ctl_str(req, GPUP_CTL_F_UUID, NULL);
	char norm[GPUP_UUID_STRLEN + 1], err[GPUP_POOL_ERR_MAX];
	struct gpup_partition *p;
	json_object *r;
	bool running;
	int rc;

	if (!uuid || gpup_uuid_parse(uuid, norm))
		return gpup_ctl_fail(EINVAL, "undefine needs a partition UUID");
	p = gpup_pool_find(&d->pool, norm);
	running = p && p->priv;
	rc = gpup_pool_undefine(&d->pool, norm, err, sizeof(err));
	if (!rc && p && !running)
		rc = gpup_pool_destroy(&d->pool, norm, err, sizeof(err));
	if (rc)
		return gpup_ctl_fail(-rc, "%s", err);
	gpup_daemon_log("partition %s undefined%s", norm, running ? "; it runs on, transient" : "");
	r = gpup_ctl_ok();
	add_str(r, GPUP_CTL_F_UUID, norm);
	json_object_object_add(r, GPUP_CTL_F_RUNNING, json_object_new_boolean(running));
	return r;
}

static json_object *m_start(struct gpup_daemon *d, json_object *req)
{
	const char *uuid = gpup_ctl_str(req, GPUP_CTL_F_UUID, NULL);
	char norm[GPUP_UUID_STRLEN + 1];
	struct gpup_partition *p;
	int rc;

	if (!uuid || gpup_uuid_parse(uuid, norm))
		return gpup_ctl_fail(EINVAL, "start needs a partition UUID");
	p = gpup_pool_find(&d->pool, norm);
	if (!p)
		return gpup_ctl_fail(ENOENT, "no partition %s%s; see 'gpup list'", norm,
				     gpup_pool_find_unavail(&d->pool, norm) ? " that can be started"
									   : "");
	if (p->priv)
		return gpup_ctl_fail(EBUSY, "partition %s is already running", norm);
	rc = dmn_part_start(d, p);
	if (rc)
		return gpup_ctl_fail(-rc, "cannot serve partition %s: %s", norm, strerror(-rc));
	gpup_daemon_log("partition %s started (%s on %s)", norm, p->type,
			d->pool.gpus[p->gpu].name);
	return part_reply(d, p);
}

static json_object *m_list(struct gpup_daemon *d, json_object *req)
{
	json_object *r = gpup_ctl_ok(), *a = json_object_new_array();

	(void)req;
	for (struct gpup_partition *p = d->pool.parts; p; p = p->next) {
		json_object *o = json_object_new_object();

		part_fields(d, p, o);
		json_object_array_add(a, o);
	}
	for (const struct gpup_unavail *u = d->pool.unavail; u; u = u->next)
		json_object_array_add(a, unavail_json(u));
	json_object_object_add(r, GPUP_CTL_F_PARTITIONS, a);
	return r;
}

/* Scheduling lives in daemon_sched.c: a partition's settings go to its
 * vgpu; after a GPU's policy changes every partition's settings are pushed
 * to the new scheduler. */
static json_object *m_sched(struct gpup_daemon *d, json_object *req)
{
	const char *uuid = gpup_ctl_str(req, GPUP_CTL_F_UUID, NULL);
	char norm[GPUP_UUID_STRLEN + 1];
	struct gpup_partition *p = NULL;
	struct dmn_part *dp = NULL;
	json_object *r;

	if (uuid && !gpup_uuid_parse(uuid, norm) && (p = gpup_pool_find(&d->pool, norm)))
		dp = p->priv;
	if (uuid && p && !dp)
		return gpup_ctl_fail(ENOENT, "partition %s is defined but not running; 'gpup "
					     "start %s' first", p->uuid, p->uuid);
	if (uuid && (!dp || !dp->vgpu))
		return gpup_ctl_fail(ENOENT, "no partition %s; see 'gpup list'", uuid);
	if (uuid)
		return gpup_tsched_ctl_part(&d->pool, p, dp->vgpu, req);
	r = gpup_tsched_ctl_sched(&d->pool, req);
	for (p = d->pool.parts; p; p = p->next)
		if ((dp = p->priv) && dp->vgpu)
			vgpu_sched_reapply(dp->vgpu);
	return r;
}

/* What a partition's client makes the daemon hold for DMA, beside the
 * limits (VGPU_MAX_DMA_BYTES, VGPU_IOMMU_TABLE_BYTES). */
static json_object *dma_json(struct gpup_partition *p, struct dmn_part *dp)
{
	json_object *o = json_object_new_object();
	struct iommu_stats st;

	iommu_get_stats(dp->dom, &st);
	json_object_object_add(o, GPUP_CTL_F_UUID, json_object_new_string(p->uuid));
	json_object_object_add(o, GPUP_CTL_F_DMA_BYTES,
			       json_object_new_int64((int64_t)vfu_server_dma_bytes(dp->vfu)));
	json_object_object_add(o, GPUP_CTL_F_DMA_LIMIT,
			       json_object_new_int64((int64_t)VGPU_MAX_DMA_BYTES));
	json_object_object_add(o, GPUP_CTL_F_IOPT_BYTES, json_object_new_int64((int64_t)st.table_bytes));
	json_object_object_add(o, GPUP_CTL_F_IOPT_LIMIT,
			       json_object_new_int64((int64_t)VGPU_IOMMU_TABLE_BYTES));
	dmn_mig_fields(dp, o);
	dmn_move_fields(dp, o);
	dmn_protect_fields(dp, o);
	dmn_failover_fields(dp, o);
	return o;
}

static json_object *m_stats(struct gpup_daemon *d, json_object *req)
{
	json_object *r = gpup_tsched_ctl_stats(&d->pool, req), *a;
	struct dmn_part *dp;

	if (!json_object_get_boolean(json_object_object_get(r, GPUP_CTL_F_OK)))
		return r;
	a = json_object_new_array();
	for (struct gpup_partition *p = d->pool.parts; p; p = p->next)
		if ((dp = p->priv) && dp->dom && dp->vfu)
			json_object_array_add(a, dma_json(p, dp));
	json_object_object_add(r, GPUP_CTL_F_PARTITIONS, a);
	return r;
}

static const struct {
	const char *name;
	json_object *(*fn)(struct gpup_daemon *d, json_object *req);
} methods[] = {
	{ GPUP_CTL_M_GPUS, m_gpus },
	{ GPUP_CTL_M_TYPES, m_types },
	{ GPUP_CTL_M_CREATE, m_create },
	{ GPUP_CTL_M_DESTROY, m_destroy },
	{ GPUP_CTL_M_DEFINE, m_define },
	{ GPUP_CTL_M_UNDEFINE, m_undefine },
	{ GPUP_CTL_M_START, m_start },
	{ GPUP_CTL_M_LIST, m_list },
	{ GPUP_CTL_M_SCHED, m_sched },
	{ GPUP_CTL_M_STATS, m_stats },
	{ GPUP_CTL_M_CHECKPOINT, dmn_ctl_checkpoint },
	{ GPUP_CTL_M_RESTORE, dmn_ctl_restore },
	{ GPUP_CTL_M_MOVE, dmn_ctl_move },
	{ GPUP_CTL_M_FAULT, dmn_ctl_fault },
	{ GPUP_CTL_M_PROTECT, dmn_ctl_protect },
	{ GPUP_CTL_M_FAULT_INJECT, dmn_ctl_fault_inject },
	{ GPUP_CTL_M_STORAGE, dmn_ctl_storage },
};

json_object *dmn_ctl_handle(struct gpup_daemon *d, json_object *req)
{
	const char *m = gpup_ctl_str(req, GPUP_CTL_F_METHOD, NULL);
	int64_t v = gpup_ctl_int(req, GPUP_CTL_F_VERSION, GPUP_CTL_VERSION);

	if (!m)
		return gpup_ctl_fail(EINVAL, "request has no method");
	if (v != GPUP_CTL_VERSION)
		return gpup_ctl_fail(ENOTSUP, "control API version %lld not supported (want %d)",
				     (long long)v, GPUP_CTL_VERSION);
	for (size_t i = 0; i < sizeof(methods) / sizeof(methods[0]); i++)
		if (strcmp(methods[i].name, m) == 0)
			return methods[i].fn(d, req);
	return gpup_ctl_fail(ENOSYS, "unknown method '%s'", m);
}
