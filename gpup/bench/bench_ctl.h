/* SPDX-License-Identifier: MIT */
/*
 * What `gpup bench` asks of a running daemon over its control API, shared
 * by live mode (bench_live.c) and vm mode (bench_vm.c): partitions made and
 * destroyed, the GPU's policy and each tenant's settings.  Each call is 0
 * or -errno with a one-line reason in err.
 */
#ifndef GPUP_BENCH_CTL_H
#define GPUP_BENCH_CTL_H

#include <json-c/json.h>
#include <stddef.h>
#include <stdint.h>

#include "gpup/bench/bench.h"

/* One call; req is consumed; *reply (if wanted) is the daemon's answer. */
int bench_ctl(const char *run_dir, json_object *req, json_object **reply, char *err,
	      size_t errlen);
/* The smallest partition type of gpu with room for n of them. */
int bench_ctl_pick_type(const char *run_dir, const char *gpu, unsigned int n, char *type,
			size_t len, char *err, size_t errlen);
/* Create a partition; its UUID and socket path come back. */
int bench_ctl_create(const char *run_dir, const char *gpu, const char *type, char uuid[40],
		     char sock[108], char *err, size_t errlen);
void bench_ctl_destroy(const char *run_dir, const char *uuid);
/* Every engine of gpu under policy p with slice_ns (0: the default). */
int bench_ctl_policy(const char *run_dir, const char *gpu, enum sched_policy p,
		     uint64_t slice_ns, char *err, size_t errlen);
/* A partition's weight, reserve, cap, class and fps limit from its tenant. */
int bench_ctl_tenant(const char *run_dir, const char *uuid, const struct bench_tenant_spec *s,
		     char *err, size_t errlen);
/* The weight a tenant is owed under the scenario's own policy (caps are not
 * modelled): what live and vm mode judge saturating tenants' shares by. */
double bench_policy_weight(const struct bench_scenario *sc, unsigned int i);

#endif
