// SPDX-License-Identifier: MIT
/*
 * A partition's migration seen from the control API: `checkpoint` writes
 * the partition into a file (migrate/'s checkpoint format, pre-copied
 * while its guest runs, stopped only for the last copy), `restore` loads
 * one into a partition of the same type and VRAM size, and listings show
 * each partition's migration state and what its last save moved.
 *
 * Both methods run on the daemon's loop, like every control method: other
 * control clients wait for them (a 1 GiB checkpoint takes about a second
 * here), partitions and their clients do not.  The path is the caller's,
 * absolute (the CLI resolves it); the daemon writes it with its own
 * rights, which is why the control socket is root's.
 */
#include <errno.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "gpup/ctl/ctl.h"
#include "gpup/daemon/daemon_int.h"
#include "gpup/vgpu/vgpu.h"
#include "migrate/mig.h"
#include "uapi/gpup_ctl.h"

static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* See daemon_int.h. */
struct dmn_part *dmn_req_part(struct gpup_daemon *d, json_object *req, json_object **fail)
{
	const char *uuid = gpup_ctl_str(req, GPUP_CTL_F_UUID, NULL);
	char norm[GPUP_UUID_STRLEN + 1];
	struct gpup_partition *p;
	struct dmn_part *dp;

	if (!uuid) {
		*fail = gpup_ctl_fail(EINVAL, "no partition given (uuid)");
		return NULL;
	}
	if (gpup_uuid_parse(uuid, norm) || !(p = gpup_pool_find(&d->pool, norm)) ||
	    !(dp = p->priv) || !dp->vgpu) {
		*fail = gpup_ctl_fail(ENOENT, "no partition %s; see 'gpup list'", uuid);
		return NULL;
	}
	return dp;
}

/* An absolute path split into its directory and file name. */
static int req_path(json_object *req, char *dir, char *name, json_object **fail)
{
	const char *path = gpup_ctl_str(req, GPUP_CTL_F_PATH, NULL);
	char a[PATH_MAX], b[PATH_MAX];

	if (!path || path[0] != '/' || strlen(path) >= PATH_MAX) {
		*fail = gpup_ctl_fail(EINVAL, "the file must be given as an absolute path");
		return -EINVAL;
	}
	snprintf(a, sizeof(a), "%s", path);
	snprintf(b, sizeof(b), "%s", path);
	snprintf(dir, PATH_MAX, "%s", dirname(a));
	snprintf(name, NAME_MAX + 1, "%s", basename(b));
	if (!strcmp(name, "/") || !strcmp(name, ".") || !strcmp(name, "..")) {
		*fail = gpup_ctl_fail(EINVAL, "'%s' names no file", path);
		return -EINVAL;
	}
	return 0;
}

static void add_u64(json_object *o, const char *k, uint64_t v)
{
	json_object_object_add(o, k, json_object_new_int64((int64_t)v));
}

/* What the last save of a partition moved, for listings and replies. */
static void save_fields(struct vgpu *v, json_object *o)
{
	struct mig_stats st;

	vgpu_mig_stats(v, &st);
	json_object_object_add(o, GPUP_CTL_F_MIGRATION,
			       json_object_new_string(mig_state_name(st.state)));
	add_u64(o, GPUP_CTL_F_MIG_BYTES, st.save_bytes);
	add_u64(o, GPUP_CTL_F_MIG_ROUNDS, st.save_rounds);
	add_u64(o, GPUP_CTL_F_MIG_PAGES, st.pages_sent);
	add_u64(o, GPUP_CTL_F_MIG_ZERO_PAGES, st.zero_pages);
	add_u64(o, GPUP_CTL_F_MIG_STOP_BYTES, st.stop_copy_bytes);
}

void dmn_mig_fields(struct dmn_part *dp, json_object *o)
{
	if (dp && dp->vgpu)
		save_fields(dp->vgpu, o);
	else
		json_object_object_add(o, GPUP_CTL_F_MIGRATION, NULL);
}

json_object *dmn_ctl_checkpoint(struct gpup_daemon *d, json_object *req)
{
	char dir[PATH_MAX], name[NAME_MAX + 1], err[256] = "";
	json_object *fail = NULL, *r;
	struct dmn_part *dp = dmn_req_part(d, req, &fail);
	uint64_t t0 = now_ms();
	int rc;

	if (!dp || req_path(req, dir, name, &fail))
		return fail;
	rc = vgpu_checkpoint(dp->vgpu, dir, name, err, sizeof(err));
	if (rc)
		return gpup_ctl_fail(-rc, "checkpoint of %s: %s", dp->part->uuid,
				     err[0] ? err : strerror(-rc));
	gpup_daemon_log("partition %s: checkpoint written to %s/%s", dp->part->uuid, dir, name);
	r = gpup_ctl_ok();
	json_object_object_add(r, GPUP_CTL_F_UUID, json_object_new_string(dp->part->uuid));
	save_fields(dp->vgpu, r);
	add_u64(r, GPUP_CTL_F_MS, now_ms() - t0);
	return r;
}

json_object *dmn_ctl_restore(struct gpup_daemon *d, json_object *req)
{
	char dir[PATH_MAX], name[NAME_MAX + 1], err[256] = "";
	json_object *fail = NULL, *r;
	struct dmn_part *dp = dmn_req_part(d, req, &fail);
	struct mig_stats st;
	uint64_t t0 = now_ms();
	int rc;

	if (!dp || req_path(req, dir, name, &fail))
		return fail;
	rc = vgpu_restore(dp->vgpu, dir, name, err, sizeof(err));
	if (rc)
		return gpup_ctl_fail(-rc, "restore of %s: %s", dp->part->uuid,
				     err[0] ? err : strerror(-rc));
	gpup_daemon_log("partition %s: restored from %s/%s", dp->part->uuid, dir, name);
	vgpu_mig_stats(dp->vgpu, &st);
	r = gpup_ctl_ok();
	json_object_object_add(r, GPUP_CTL_F_UUID, json_object_new_string(dp->part->uuid));
	add_u64(r, GPUP_CTL_F_MIG_BYTES, st.load_bytes);
	add_u64(r, GPUP_CTL_F_MS, now_ms() - t0);
	return r;
}
