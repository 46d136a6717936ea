// SPDX-License-Identifier: MIT
/*
 * The control-API calls `gpup bench` makes in live and vm mode (see
 * bench_int.h): every failure becomes one line saying what went wrong.
 * Policies are set "transient", so the daemon saves none of them, and
 * what was set before the run is read first and put back after it.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "gpup/bench/bench_int.h"
#include "gpup/ctl/ctl.h"
#include "uapi/gpup_ctl.h"

int bench_ctl(const char *run_dir, json_object *req, json_object **reply, char *err,
	      size_t errlen)
{
	json_object *r = NULL;
	int rc = gpup_ctl_call(run_dir, req, &r);

	json_object_put(req);
	if (rc) {
		snprintf(err, errlen, "no daemon at %s (%s); start one with 'gpup daemon' or "
			 "use --model", run_dir, strerror(-rc));
		return rc;
	}
	if (!json_object_get_boolean(json_object_object_get(r, GPUP_CTL_F_OK))) {
		snprintf(err, errlen, "%s", gpup_ctl_str(r, GPUP_CTL_F_ERROR, "daemon error"));
		json_object_put(r);
		return -EINVAL;
	}
	if (reply)
		*reply = r;
	else
		json_object_put(r);
	return 0;
}

int bench_ctl_pick_type(const char *run_dir, const char *gpu, unsigned int n, char *type,
			size_t len, char *err, size_t errlen)
{
	json_object *req = gpup_ctl_request(GPUP_CTL_M_TYPES), *r, *a;
	int64_t best = 0;
	int rc;

	json_object_object_add(req, GPUP_CTL_F_GPU, json_object_new_string(gpu));
	if ((rc = bench_ctl(run_dir, req, &r, err, errlen)))
		return rc;
	a = json_object_object_get(r, GPUP_CTL_F_TYPES);
	for (size_t i = 0; a && i < json_object_array_length(a); i++) {
		json_object *t = json_object_array_get_idx(a, i);
		int64_t frac = gpup_ctl_int(t, GPUP_CTL_F_FRACTION, 0);

		if (gpup_ctl_int(t, GPUP_CTL_F_AVAILABLE, 0) >= n && frac > best) {
			best = frac;
			snprintf(type, len, "%s", gpup_ctl_str(t, GPUP_CTL_F_TYPE, ""));
		}
	}
	json_object_put(r);
	if (!best)
		snprintf(err, errlen, "%s has no room for %u partitions (one per tenant)", gpu, n);
	return best ? 0 : -ENOSPC;
}

int bench_ctl_create(const char *run_dir, const char *gpu, const char *type, char uuid[40],
		     char sock[108], char *err, size_t errlen)
{
	json_object *req = gpup_ctl_request(GPUP_CTL_M_CREATE), *r;
	int rc;

	json_object_object_add(req, GPUP_CTL_F_GPU, json_object_new_string(gpu));
	json_object_object_add(req, GPUP_CTL_F_TYPE, json_object_new_string(type));
	if ((rc = bench_ctl(run_dir, req, &r, err, errlen)))
		return rc;
	snprintf(uuid, 40, "%s", gpup_ctl_str(r, GPUP_CTL_F_UUID, ""));
	snprintf(sock, 108, "%s", gpup_ctl_str(r, GPUP_CTL_F_SOCKET, ""));
	json_object_put(r);
	return 0;
}

void bench_ctl_destroy(const char *run_dir, const char *uuid)
{
	json_object *req = gpup_ctl_request(GPUP_CTL_M_DESTROY);
	char err[256];

	json_object_object_add(req, GPUP_CTL_F_UUID, json_object_new_string(uuid));
	json_object_object_add(req, GPUP_CTL_F_FORCE, json_object_new_boolean(1));
	bench_ctl(run_dir, req, NULL, err, sizeof(err));
}

int bench_ctl_policy(const char *run_dir, const char *gpu, enum sched_policy p,
		     uint64_t slice_ns, char *err, size_t errlen)
{
	json_object *req = gpup_ctl_request(GPUP_CTL_M_SCHED);

	json_object_object_add(req, GPUP_CTL_F_GPU, json_object_new_string(gpu));
	json_object_object_add(req, GPUP_CTL_F_POLICY,
			       json_object_new_string(sched_policy_name(p)));
	json_object_object_add(req, GPUP_CTL_F_SLICE_NS, json_object_new_int64((int64_t)slice_ns));
	json_object_object_add(req, GPUP_CTL_F_TRANSIENT, json_object_new_boolean(1));
	return bench_ctl(run_dir, req, NULL, err, errlen);
}

int bench_ctl_gpu_get(const char *run_dir, const char *gpu, struct bench_gpu_sched *s,
		      char *err, size_t errlen)
{
	json_object *r, *a, *g = NULL;
	int rc = bench_ctl(run_dir, gpup_ctl_request(GPUP_CTL_M_GPUS), &r, err, errlen);

	memset(s, 0, sizeof(*s));
	if (rc)
		return rc;
	a = json_object_object_get(r, GPUP_CTL_F_GPUS);
	for (size_t i = 0; a && !g && i < json_object_array_length(a); i++)
		if (!strcmp(gpup_ctl_str(json_object_array_get_idx(a, i), GPUP_CTL_F_NAME, ""),
			    gpu))
			g = json_object_array_get_idx(a, i);
	if (!g || sched_policy_parse(gpup_ctl_str(g, GPUP_CTL_F_POLICY, NULL), &s->policy) ||
	    gpup_ctl_int(g, GPUP_CTL_F_SLICE_NS, -1) < 0 ||
	    gpup_ctl_int(g, GPUP_CTL_F_WATCHDOG_NS, -1) < 0) {
		snprintf(err, errlen, g ? "the daemon does not say how %s is scheduled, so "
			 "its settings could not be put back after the run" :
			 "the daemon has no GPU %s (the scenario's first GPU)", gpu);
		rc = g ? -EPROTO : -ENODEV;
	} else {
		snprintf(s->gpu, sizeof(s->gpu), "%s", gpu);
		s->slice_ns = (uint64_t)gpup_ctl_int(g, GPUP_CTL_F_SLICE_NS, 0);
		s->watchdog_ns = (uint64_t)gpup_ctl_int(g, GPUP_CTL_F_WATCHDOG_NS, 0);
		s->have = true;
	}
	json_object_put(r);
	return rc;
}

int bench_ctl_gpu_put(const char *run_dir, const struct bench_gpu_sched *s, char *err,
		      size_t errlen)
{
	json_object *req = gpup_ctl_request(GPUP_CTL_M_SCHED);

	if (!s->have)
		return 0;
	json_object_object_add(req, GPUP_CTL_F_GPU, json_object_new_string(s->gpu));
	json_object_object_add(req, GPUP_CTL_F_POLICY,
			       json_object_new_string(sched_policy_name(s->policy)));
	json_object_object_add(req, GPUP_CTL_F_SLICE_NS, json_object_new_int64((int64_t)s->slice_ns));
	json_object_object_add(req, GPUP_CTL_F_WATCHDOG_NS,
			       json_object_new_int64((int64_t)s->watchdog_ns));
	json_object_object_add(req, GPUP_CTL_F_TRANSIENT, json_object_new_boolean(1));
	return bench_ctl(run_dir, req, NULL, err, errlen);
}

int bench_ctl_tenant(const char *run_dir, const char *uuid, const struct bench_tenant_spec *s,
		     char *err, size_t errlen)
{
	json_object *req = gpup_ctl_request(GPUP_CTL_M_SCHED);

	json_object_object_add(req, GPUP_CTL_F_UUID, json_object_new_string(uuid));
	json_object_object_add(req, GPUP_CTL_F_WEIGHT, json_object_new_int64(s->weight));
	json_object_object_add(req, GPUP_CTL_F_RESERVE,
			       json_object_new_double(s->reserve_ppm / 1e6));
	json_object_object_add(req, GPUP_CTL_F_CAP, json_object_new_double(s->cap_ppm / 1e6));
	json_object_object_add(req, GPUP_CTL_F_CLASS,
			       json_object_new_string(sched_class_name(s->klass)));
	json_object_object_add(req, GPUP_CTL_F_FPS_LIMIT, json_object_new_int64(s->fps_limit));
	json_object_object_add(req, GPUP_CTL_F_BUDGET_US, json_object_new_int64(s->budget_us));
	return bench_ctl(run_dir, req, NULL, err, errlen);
}

double bench_policy_weight(const struct bench_scenario *sc, unsigned int i)
{
	const struct bench_tenant_spec *t = &sc->tenants[i];
	enum sched_policy p = sc->policy;

	if (p == SCHED_POLICY_WEIGHTED)
		return t->weight;
	if (p == SCHED_POLICY_FIXED_SHARE)
		return t->reserve_ppm ? t->reserve_ppm / 1e6 : 1.0 / sc->ntenants;
	return 1;
}
