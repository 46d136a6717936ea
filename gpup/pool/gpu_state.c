// SPDX-License-Identifier: MIT
/*
 * A GPU's scheduler settings on disk (`gpup sched --gpu`):
 * STATE/gpus/NAME.json, written atomically like the definitions
 * (state_file.c) and read as carefully, each field checked as the control
 * API checks it.
 */
#include <errno.h>
#include <json-c/json.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gpup/base/base.h"
#include "gpup/pool/pool_int.h"

#define STATE_VERSION 1
#define WATCHDOG_MAX_NS (3600ull * 1000000000ull)

static const char *jstr(json_object *o, const char *key)
{
	json_object *v;

	if (!json_object_object_get_ex(o, key, &v) || !json_object_is_type(v, json_type_string))
		return NULL;
	return json_object_get_string(v);
}

static int ju64(json_object *o, const char *key, uint64_t *out)
{
	json_object *v;
	int64_t n;

	if (!json_object_object_get_ex(o, key, &v) || !json_object_is_type(v, json_type_int))
		return -EINVAL;
	n = json_object_get_int64(v);
	if (n < 0)
		return -EINVAL;
	*out = (uint64_t)n;
	return 0;
}

static char *gpu_json(const char *name, const struct gpup_gpu_sched *s)
{
	json_object *o = json_object_new_object();
	char *text;

	json_object_object_add(o, "version", json_object_new_int(STATE_VERSION));
	json_object_object_add(o, "gpu", json_object_new_string(name));
	json_object_object_add(o, "policy", json_object_new_string(sched_policy_name(s->policy)));
	json_object_object_add(o, "slice_ns", json_object_new_int64((int64_t)s->slice_ns));
	json_object_object_add(o, "watchdog_ns", json_object_new_int64((int64_t)s->watchdog_ns));
	text = strdup(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PRETTY));
	json_object_put(o);
	return text;
}

int gpup_pool_gpu_sched_save(struct gpup_pool *p, unsigned int gpu,
			     const struct gpup_gpu_sched *s)
{
	char dir[PATH_MAX], name[64];
	char *text;
	int rc = 0;

	if (p->state_dir) {
		if (st_path(dir, sizeof(dir), "%s/%s", p->state_dir, STATE_GPU_DIR))
			return -ENAMETOOLONG;
		rc = gpup_mkdir_p(dir, 0700);
		text = rc ? NULL : gpu_json(p->gpus[gpu].name, s);
		if (!rc && !text)
			rc = -ENOMEM;
		snprintf(name, sizeof(name), "%s.json", p->gpus[gpu].name);
		if (!rc)
			rc = st_write_atomic(dir, name, text);
		free(text);
	}
	if (!rc)
		p->gpus[gpu].sched = *s;
	return rc;
}

/* Every field is checked as `gpup sched --gpu` checks it: a file edited by
 * hand gets no more than the control API would allow. */
static int parse_gpu(json_object *o, const char *name, struct gpup_gpu_sched *s, char *err,
		     size_t errlen)
{
	const char *gpu = jstr(o, "gpu"), *policy = jstr(o, "policy");
	json_object *v = NULL;

	if (!json_object_object_get_ex(o, "version", &v) ||
	    !json_object_is_type(v, json_type_int) || json_object_get_int64(v) != STATE_VERSION) {
		snprintf(err, errlen, "format version %s is not %d",
			 v ? json_object_to_json_string(v) : "(none)", STATE_VERSION);
		return -EINVAL;
	}
	if (!gpu || strcmp(gpu, name)) {
		snprintf(err, errlen, "\"gpu\" is not %s", name);
		return -EINVAL;
	}
	if (!policy || sched_policy_parse(policy, &s->policy)) {
		snprintf(err, errlen, "unknown policy");
		return -EINVAL;
	}
	if (ju64(o, "slice_ns", &s->slice_ns) || ju64(o, "watchdog_ns", &s->watchdog_ns) ||
	    (s->slice_ns && (s->slice_ns < SCHED_SLICE_MIN_NS || s->slice_ns > SCHED_SLICE_MAX_NS)) ||
	    s->watchdog_ns > WATCHDOG_MAX_NS) {
		snprintf(err, errlen, "slice_ns or watchdog_ns missing or out of range");
		return -EINVAL;
	}
	return 0;
}

int gpup_pool_gpu_sched_load(const struct gpup_pool *p, const char *name,
			     struct gpup_gpu_sched *out)
{
	char path[PATH_MAX], err[GPUP_POOL_ERR_MAX] = "";
	struct gpup_gpu_sched s = { 0 };
	json_object *o;
	int rc;

	if (!p->state_dir ||
	    st_path(path, sizeof(path), "%s/%s/%s.json", p->state_dir, STATE_GPU_DIR, name))
		return -ENOENT;
	rc = st_load_json(path, &o, err, sizeof(err));
	if (rc == -ENOENT)
		return rc;
	if (!rc)
		rc = parse_gpu(o, name, &s, err, sizeof(err));
	json_object_put(o);
	if (rc) {
		rc = -EINVAL;
		if (p->log)
			p->log("ignoring GPU settings file %s: %s", path, err);
		return rc;
	}
	*out = s;
	return 0;
}
