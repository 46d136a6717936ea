// SPDX-License-Identifier: MIT
/*
 * A GPU failing, and failover inside the pool (docs/MIGRATION.md,
 * "Failover").  `fault_inject` fails a GPU (gpup_gpu_fail: lost, or hung)
 * as a board failing would, then deals with each partition on it, on the
 * daemon's loop: a protected one is recovered on a healthy GPU that takes
 * its type and features (the checks of `gpup move`) from its last
 * checkpoint link (vgpu_recover), its client keeping its connection; an
 * unprotected one is lost (vgpu_set_lost: its guest sees STATUS.LOST).
 * For each, the reply and the log give RTO (from the failure to the
 * partition running again) and RPO (the age of the link it came back
 * from, and the commands completed after it that were lost), and `gpup
 * stats` keeps the last of these.
 *
 * Also `storage`: the places a checkpoint store can go (daemon_storage.c).
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "gpup/ctl/ctl.h"
#include "gpup/daemon/daemon_int.h"
#include "gpup/gpu/gpu.h"
#include "gpup/vgpu/vgpu.h"
#include "uapi/gpup_ctl.h"

static void add_u64(json_object *o, const char *k, uint64_t v)
{
	json_object_object_add(o, k, json_object_new_int64((int64_t)v));
}

static void add_str(json_object *o, const char *k, const char *v)
{
	json_object_object_add(o, k, v ? json_object_new_string(v) : NULL);
}

void dmn_failover_fields(const struct dmn_part *dp, json_object *o)
{
	const struct dmn_failover *f = &dp->failover;
	json_object *x;

	if (!f->seen) {
		json_object_object_add(o, GPUP_CTL_F_FAILOVER, NULL);
		return;
	}
	x = json_object_new_object();
	add_str(x, GPUP_CTL_F_RESULT, f->recovered ? "recovered" : "lost");
	add_str(x, GPUP_CTL_F_FROM, f->from);
	add_str(x, GPUP_CTL_F_GPU, f->recovered ? f->to : NULL);
	add_u64(x, GPUP_CTL_F_RTO_US, f->rto_us);
	add_u64(x, GPUP_CTL_F_RPO_US, f->rpo_us);
	add_u64(x, GPUP_CTL_F_RPO_COMMANDS, f->rpo_commands);
	add_str(x, GPUP_CTL_F_ERROR, f->why[0] ? f->why : NULL);
	json_object_object_add(o, GPUP_CTL_F_FAILOVER, x);
}

static bool healthy(struct gpup_daemon *d, unsigned int i)
{
	return d->pool.gpus[i].priv && gpup_gpu_failure(d->pool.gpus[i].priv) == GPUP_GPU_HEALTHY;
}

/* The first healthy GPU that takes p as `gpup move` would: its slot is
 * reserved and the definition names it.  0, or -errno with why. */
static int pick_home(struct gpup_daemon *d, struct gpup_partition *p, unsigned int *to,
		     uint64_t *off, char *why, size_t len)
{
	char err[GPUP_POOL_ERR_MAX] = "";
	int r = -ENOSPC;

	for (unsigned int i = 0; i < d->pool.ngpus && r; i++) {
		if (i == p->gpu || !healthy(d, i))
			continue;
		r = gpup_pool_move_begin(&d->pool, p, d->pool.gpus[i].name, to, off, err,
					 sizeof(err));
		if (!r && (r = gpup_pool_state_write_at(&d->pool, p, *to, *off)))
			gpup_pool_move_abort(&d->pool, p, *to, *off);
	}
	if (r && err[0])
		snprintf(why, len, "no healthy GPU takes it (the last said: %s)", err);
	else if (r)
		snprintf(why, len, "no healthy GPU takes it");
	return r;
}

/* One protected partition of the failed GPU, back on a healthy one. */
static int recover_one(struct gpup_daemon *d, struct dmn_part *dp, uint64_t t_fail)
{
	struct gpup_partition *p = dp->part;
	struct dmn_failover *f = &dp->failover;
	struct vgpu_protect_link last;
	struct vgpu_recover_stats st;
	char store[256];
	unsigned int to;
	uint64_t off;
	bool have = dmn_protect_last(dp, &last, store, sizeof(store));
	int r;

	dmn_protect_stop(dp);
	if (!have) {
		snprintf(f->why, sizeof(f->why), "no checkpoint link was taken yet");
		return -ENODATA;
	}
	r = pick_home(d, p, &to, &off, f->why, sizeof(f->why));
	if (r)
		return r;
	r = vgpu_recover(dp->vgpu, d->pool.gpus[to].priv, off,
			 p->compat[0] ? p->compat_kernels : 0, store, p->uuid, &st, f->why,
			 sizeof(f->why));
	if (r) {
		/* Drops the definition written under the destination, too. */
		gpup_pool_move_abort(&d->pool, p, to, off);
		return r;
	}
	gpup_pool_move_commit(&d->pool, p, to, off);
	f->recovered = true;
	f->rto_us = (gpup_mono_ns() - t_fail) / 1000;
	f->rpo_us = t_fail > last.taken_ns ? (t_fail - last.taken_ns) / 1000 : 0;
	f->rpo_commands = st.commands_lost;
	snprintf(f->to, sizeof(f->to), "%s", d->pool.gpus[to].name);
	gpup_daemon_log("partition %s recovered from %s on %s from %u links (read and applied in "
			"%.1f ms): RTO %.1f ms, RPO %.1f ms (%llu commands lost)", p->uuid, f->from,
			f->to, st.links, st.restore_ns / 1e6, f->rto_us / 1e3, f->rpo_us / 1e3,
			(unsigned long long)f->rpo_commands);
	dmn_protect_resume_saved(d, dp);
	return 0;
}

static json_object *part_result(struct dmn_part *dp)
{
	json_object *o = json_object_new_object();

	add_str(o, GPUP_CTL_F_UUID, dp->part->uuid);
	dmn_failover_fields(dp, o);
	return o;
}

/* Every partition on GPU g, after it failed at t_fail. */
static json_object *fail_over(struct gpup_daemon *d, unsigned int g, uint64_t t_fail)
{
	json_object *a = json_object_new_array();

	for (struct gpup_partition *p = d->pool.parts; p; p = p->next) {
		struct dmn_part *dp = p->priv;

		if (p->gpu != g || !dp || !dp->vgpu)
			continue;
		memset(&dp->failover, 0, sizeof(dp->failover));
		dp->failover.seen = true;
		snprintf(dp->failover.from, sizeof(dp->failover.from), "%s", d->pool.gpus[g].name);
		if (!dp->prot) {
			snprintf(dp->failover.why, sizeof(dp->failover.why), "it is not protected");
			vgpu_set_lost(dp->vgpu);
		} else if (recover_one(d, dp, t_fail)) {
			vgpu_set_lost(dp->vgpu);
		}
		if (!dp->failover.recovered)
			gpup_daemon_log("partition %s lost with %s: %s", p->uuid,
					d->pool.gpus[g].name, dp->failover.why);
		json_object_array_add(a, part_result(dp));
	}
	return a;
}

json_object *dmn_ctl_fault_inject(struct gpup_daemon *d, json_object *req)
{
	const char *gpu = gpup_ctl_str(req, GPUP_CTL_F_GPU, "");
	const char *kind = gpup_ctl_str(req, GPUP_CTL_F_KIND, "lost");
	int g = gpup_pool_find_gpu(&d->pool, gpu), k = gpup_gpu_failure_parse(kind);
	uint64_t t_fail;
	json_object *r, *a;

	if (g < 0 || !d->pool.gpus[g].priv)
		return gpup_ctl_fail(ENODEV, "no GPU '%s'; see 'gpup gpus'", gpu);
	if (k != GPUP_GPU_LOST && k != GPUP_GPU_HANG)
		return gpup_ctl_fail(EINVAL, "no fault kind '%s' (lost, hang)", kind);
	if (!healthy(d, (unsigned int)g))
		return gpup_ctl_fail(EALREADY, "%s has failed already", gpu);
	t_fail = gpup_mono_ns();
	gpup_gpu_fail(d->pool.gpus[g].priv, (enum gpup_gpu_failure)k);
	gpup_daemon_log("%s failed (%s, injected)", d->pool.gpus[g].name, kind);
	a = fail_over(d, (unsigned int)g, t_fail);
	r = gpup_ctl_ok();
	add_str(r, GPUP_CTL_F_GPU, d->pool.gpus[g].name);
	add_str(r, GPUP_CTL_F_KIND, kind);
	json_object_object_add(r, GPUP_CTL_F_PARTITIONS, a);
	return r;
}
