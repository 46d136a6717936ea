// SPDX-License-Identifier: MIT
/*
 * `gpup move`: a running partition to another GPU of the pool, its client
 * connected throughout (docs/MIGRATION.md, "Moving a partition").  The
 * pool reserves the destination slot and the definition is written under
 * the new GPU before anything stops; then the vgpu moves as itself with
 * its VRAM file (vgpu_move); then the source slot and the old definition
 * go.  A failure at any step gives the slot back, removes the new
 * definition, and leaves the partition running where it was.  A
 * destination that cannot honour a feature the partition exposes is
 * refused before any of it, in one line naming the feature.
 *
 * Also the "fault" method, with which tests fail a GPU's backend ops
 * (gpup_gpu_inject_fault) in a running daemon: only a daemon started with
 * GPUP_TEST_FAULTS=1 answers it.
 */
#include <errno.h>
#include <string.h>

#include "gpup/ctl/ctl.h"
#include "gpup/daemon/daemon_int.h"
#include "gpup/gpu/gpu.h"
#include "gpup/vgpu/vgpu.h"
#include "uapi/gpup_ctl.h"

json_object *dmn_features_json(uint32_t mask)
{
	json_object *a = json_object_new_array();

	for (uint32_t id = 0; id < GPUP_KERNEL_MAX; id++)
		if (mask & (1u << id))
			json_object_array_add(a, json_object_new_string(gpup_kernel_name(id)));
	return a;
}

static void add_u64(json_object *o, const char *k, uint64_t v)
{
	json_object_object_add(o, k, json_object_new_int64((int64_t)v));
}

void dmn_move_fields(const struct dmn_part *dp, json_object *o)
{
	add_u64(o, GPUP_CTL_F_MOVES, dp->moves);
	add_u64(o, GPUP_CTL_F_MOVE_PAUSE_US, dp->last_move.pause_ns / 1000);
	add_u64(o, GPUP_CTL_F_MOVE_US, dp->last_move.total_ns / 1000);
}

/* The device's half, with the destination slot reserved and the new place
 * saved: 0, or the failure as a reply with everything given back. */
static json_object *move_device(struct gpup_daemon *d, struct dmn_part *dp, unsigned int to,
				uint64_t off)
{
	struct gpup_partition *p = dp->part;
	struct vgpu_move_stats st;
	char err[GPUP_POOL_ERR_MAX] = "";
	int rc = vgpu_move(dp->vgpu, d->pool.gpus[to].priv, off,
			   p->compat[0] ? p->compat_kernels : 0, &st, err, sizeof(err));

	if (!rc) {
		dp->last_move = st;
		dp->moves++;
		return NULL;
	}
	/* Drops the definition written under the destination, too. */
	gpup_pool_move_abort(&d->pool, p, to, off);
	return gpup_ctl_fail(-rc, "cannot move %s to %s: %s", p->uuid, d->pool.gpus[to].name,
			     err[0] ? err : strerror(-rc));
}

static json_object *move_reply(struct gpup_daemon *d, struct dmn_part *dp, unsigned int from)
{
	json_object *r = gpup_ctl_ok();

	json_object_object_add(r, GPUP_CTL_F_UUID, json_object_new_string(dp->part->uuid));
	json_object_object_add(r, GPUP_CTL_F_FROM, json_object_new_string(d->pool.gpus[from].name));
	json_object_object_add(r, GPUP_CTL_F_GPU,
			       json_object_new_string(d->pool.gpus[dp->part->gpu].name));
	add_u64(r, GPUP_CTL_F_VRAM_OFFSET, dp->part->vram_offset);
	dmn_move_fields(dp, r);
	return r;
}

json_object *dmn_ctl_move(struct gpup_daemon *d, json_object *req)
{
	const char *gpu = gpup_ctl_str(req, GPUP_CTL_F_GPU, NULL);
	char err[GPUP_POOL_ERR_MAX] = "";
	json_object *fail = NULL;
	struct dmn_part *dp = dmn_req_part(d, req, &fail);
	unsigned int to, from;
	uint64_t off;
	int rc;

	if (!dp)
		return fail;
	if (!gpu)
		return gpup_ctl_fail(EINVAL, "move needs a destination GPU; see 'gpup gpus'");
	from = dp->part->gpu;
	rc = gpup_pool_move_begin(&d->pool, dp->part, gpu, &to, &off, err, sizeof(err));
	if (rc)
		return gpup_ctl_fail(-rc, "cannot move %s: %s", dp->part->uuid, err);
	rc = gpup_pool_state_write_at(&d->pool, dp->part, to, off);
	if (rc) {
		gpup_pool_move_abort(&d->pool, dp->part, to, off);
		return gpup_ctl_fail(-rc, "cannot move %s: its definition cannot be saved in %s: %s",
				     dp->part->uuid, d->pool.state_dir, strerror(-rc));
	}
	dmn_protect_hold(dp, true);
	fail = move_device(d, dp, to, off);
	dmn_protect_hold(dp, false);
	if (fail)
		return fail;
	gpup_pool_move_commit(&d->pool, dp->part, to, off);
	gpup_daemon_log("partition %s moved from %s to %s (VRAM offset %llu MiB): paused %.3f ms, "
			"%.3f ms in all", dp->part->uuid, d->pool.gpus[from].name,
			d->pool.gpus[to].name, (unsigned long long)(off >> 20),
			dp->last_move.pause_ns / 1e6, dp->last_move.total_ns / 1e6);
	return move_reply(d, dp, from);
}

static const struct {
	const char *name;
	unsigned int ops;
} fault_ops[] = {
	{ "none", 0 },
	{ "vram_adopt", GPUP_GPU_OP_VRAM_ADOPT },
	{ "vram_map", GPUP_GPU_OP_VRAM_MAP },
	{ "engine", GPUP_GPU_OP_ENGINE },
};

json_object *dmn_ctl_fault(struct gpup_daemon *d, json_object *req)
{
	const char *gpu = gpup_ctl_str(req, GPUP_CTL_F_GPU, "");
	const char *op = gpup_ctl_str(req, GPUP_CTL_F_OP, "");
	int64_t err = gpup_ctl_int(req, GPUP_CTL_F_ERRNO, EIO);
	int g = gpup_pool_find_gpu(&d->pool, gpu);

	if (!d->cfg.test_faults)
		return gpup_ctl_fail(EPERM, "fault injection is for tests: start the daemon with "
					    "GPUP_TEST_FAULTS=1");
	if (g < 0)
		return gpup_ctl_fail(ENODEV, "no GPU '%s'", gpu);
	if (strcmp(op, "none") && (err <= 0 || err > 4095))
		return gpup_ctl_fail(EINVAL, "errno %lld is not an error number", (long long)err);
	for (size_t i = 0; i < sizeof(fault_ops) / sizeof(fault_ops[0]); i++) {
		if (strcmp(fault_ops[i].name, op))
			continue;
		gpup_gpu_inject_fault(d->pool.gpus[g].priv, fault_ops[i].ops, (int)err);
		gpup_daemon_log("%s: injected fault: %s fails with %s", d->pool.gpus[g].name, op,
				strerror((int)err));
		return gpup_ctl_ok();
	}
	return gpup_ctl_fail(EINVAL, "no op '%s' (none, vram_adopt, vram_map, engine)", op);
}
