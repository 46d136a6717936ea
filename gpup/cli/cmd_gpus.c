// SPDX-License-Identifier: MIT
/*
 * `gpup gpus` and `gpup types`: what the daemon's pool holds and which
 * partition types each GPU offers right now.  Tables for people, --json
 * for programs.
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "gpup/cli/cli.h"
#include "gpup/ctl/ctl.h"
#include "gpup/pool/pool.h"
#include "uapi/gpup_ctl.h"

/* --json and --help, plus one optional --gpu ID: 0, 1 = help shown, or
 * an exit code + 2. */
static int parse_common(const char *cmd, int argc, char **argv, int *json, const char **gpu,
			void (*usage)(FILE *))
{
	static const struct option opts[] = {
		{ "json", no_argument, NULL, 'j' },
		{ "gpu", required_argument, NULL, 'g' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	int o;

	while ((o = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		if (o == 'j')
			*json = 1;
		else if (o == 'g' && gpu)
			*gpu = optarg;
		else if (o == 'h')
			return usage(stdout), 1;
		else
			return usage(stderr), 2 + GPUP_EXIT_USAGE;
	}
	if (optind < argc) {
		gpup_err(cmd, "unexpected argument '%s'", argv[optind]);
		return 2 + GPUP_EXIT_USAGE;
	}
	return 0;
}

static void gpus_usage(FILE *f)
{
	fprintf(f, "usage: gpup gpus [--json]\n\n"
		   "The daemon's GPUs (VRAM, what is free, engines, partitions) and any\n"
		   "real GPUs found on this host.  VRAM PAGES is what holds a new\n"
		   "partition's VRAM: thp-2m (2 MiB transparent huge pages, where the\n"
		   "host gives them to shared memory) or 4k (4 KiB pages).  GEN is the\n"
		   "GPU's generation: gen1 runs every built-in kernel but RENDER, gen2 all\n"
		   "of them (--json: \"features\").\n");
}

static void print_host(json_object *host)
{
	size_t n = host ? json_object_array_length(host) : 0;

	if (!n) {
		printf("\nhost GPUs: none found (no display-class PCI devices)\n");
		return;
	}
	printf("\nhost GPUs (found, not served yet):\n%-14s %-10s %-10s %-8s %s\n", "PCI", "ID",
	       "DRIVER", "SR-IOV", "MODEL");
	for (size_t i = 0; i < n; i++) {
		json_object *h = json_object_array_get_idx(host, i);
		int64_t vfs = gpup_ctl_int(h, GPUP_CTL_F_SRIOV_TOTALVFS, -1);
		char sriov[16];

		snprintf(sriov, sizeof(sriov), vfs < 0 ? "-" : "%lld VFs", (long long)vfs);
		printf("%-14s %-10s %-10s %-8s %s\n", gpup_ctl_str(h, GPUP_CTL_F_PCI, "?"),
		       gpup_ctl_str(h, "id", "?"), gpup_ctl_str(h, GPUP_CTL_F_DRIVER, "?"), sriov,
		       gpup_ctl_str(h, GPUP_CTL_F_MODEL, "?"));
	}
}

static void print_gpus(json_object *r)
{
	json_object *a = NULL, *host = NULL;
	char v[32], f[32], l[32];

	json_object_object_get_ex(r, GPUP_CTL_F_GPUS, &a);
	json_object_object_get_ex(r, GPUP_CTL_F_HOST, &host);
	printf("%-6s %-8s %-16s %-5s %-9s %-9s %-13s %-8s %-11s %s\n", "GPU", "BACKEND", "MODEL",
	       "GEN", "VRAM", "FREE", "LARGEST FREE", "ENGINES", "VRAM PAGES", "PARTITIONS");
	for (size_t i = 0; a && i < json_object_array_length(a); i++) {
		json_object *g = json_object_array_get_idx(a, i);
		char eng[16];

		snprintf(eng, sizeof(eng), "%lld+%lld",
			 (long long)gpup_ctl_int(g, GPUP_CTL_F_NCOMPUTE, 0),
			 (long long)gpup_ctl_int(g, GPUP_CTL_F_NCOPY, 0));
		printf("%-6s %-8s %-16s %-5s %-9s %-9s %-13s %-8s %-11s %lld\n",
		       gpup_ctl_str(g, GPUP_CTL_F_NAME, "?"), gpup_ctl_str(g, GPUP_CTL_F_BACKEND, "?"),
		       gpup_ctl_str(g, GPUP_CTL_F_MODEL, "?"),
		       gpup_ctl_str(g, GPUP_CTL_F_GENERATION, "?"),
		       gpup_format_size((uint64_t)gpup_ctl_int(g, GPUP_CTL_F_VRAM, 0), v, sizeof(v)),
		       gpup_format_size((uint64_t)gpup_ctl_int(g, GPUP_CTL_F_VRAM_FREE, 0), f,
					sizeof(f)),
		       gpup_format_size((uint64_t)gpup_ctl_int(g, GPUP_CTL_F_LARGEST_FREE, 0), l,
					sizeof(l)),
		       eng, gpup_ctl_str(g, GPUP_CTL_F_VRAM_BACKING, "?"),
		       (long long)gpup_ctl_int(g, GPUP_CTL_F_PARTITIONS, 0));
	}
	if (!a || !json_object_array_length(a))
		printf("(the daemon has no GPUs)\n");
	print_host(host);
}

/* With no daemon there are no sim GPUs, but the host's own GPUs can still
 * be listed: the inventory needs nothing from the daemon. */
static int host_only(const struct gpup_global *g, int json)
{
	json_object *r = json_object_new_object();

	json_object_object_add(r, GPUP_CTL_F_GPUS, json_object_new_array());
	json_object_object_add(r, GPUP_CTL_F_HOST, gpup_inventory_json());
	if (json) {
		gpup_ctl_print_json(r);
	} else {
		printf("no daemon is running in %s: no sim GPUs (start one with "
		       "'gpup daemon')\n", g->run_dir);
		print_host(json_object_object_get(r, GPUP_CTL_F_HOST));
	}
	json_object_put(r);
	return GPUP_EXIT_OK;
}

static int cmd_gpus(const struct gpup_global *g, int argc, char **argv)
{
	json_object *r = NULL, *req;
	int json = 0, rc = parse_common("gpus", argc, argv, &json, NULL, gpus_usage);

	if (rc)
		return rc == 1 ? GPUP_EXIT_OK : rc - 2;
	/* "No daemon" is not an error for this command. */
	req = gpup_ctl_request(GPUP_CTL_M_GPUS);
	rc = gpup_ctl_call(g->run_dir, req, &r);
	json_object_put(req);
	if (rc == -ENOENT || rc == -ECONNREFUSED) {
		json_object_put(r);
		return host_only(g, json);
	}
	rc = gpup_ctl_cli_result(g->run_dir, "gpus", rc, r, &r);
	if (rc)
		return rc;
	if (json)
		gpup_ctl_print_json(r);
	else
		print_gpus(r);
	json_object_put(r);
	return GPUP_EXIT_OK;
}

GPUP_COMMAND("gpus", "list the daemon's GPUs and real GPUs on this host", cmd_gpus)

static void types_usage(FILE *f)
{
	fprintf(f, "usage: gpup types [--gpu ID] [--json]\n\n"
		   "Partition types per GPU: BACKEND-SIZE-N is 1/N of a GPU's VRAM.\n"
		   "AVAILABLE is how many more fit now, given where existing ones sit.\n"
		   "FEATURES is the generation whose features a partition of the type\n"
		   "exposes unless created with --compat (see 'gpup create --help').\n");
}

static void print_types(json_object *r)
{
	json_object *a = NULL;
	char v[32];

	json_object_object_get_ex(r, GPUP_CTL_F_TYPES, &a);
	printf("%-6s %-14s %-9s %-9s %-10s %-4s %s\n", "GPU", "TYPE", "VRAM", "FRACTION",
	       "AVAILABLE", "MAX", "FEATURES");
	for (size_t i = 0; a && i < json_object_array_length(a); i++) {
		json_object *t = json_object_array_get_idx(a, i);
		char frac[16];

		snprintf(frac, sizeof(frac), "1/%lld",
			 (long long)gpup_ctl_int(t, GPUP_CTL_F_FRACTION, 0));
		printf("%-6s %-14s %-9s %-9s %-10lld %-4lld %s\n", gpup_ctl_str(t, GPUP_CTL_F_GPU, "?"),
		       gpup_ctl_str(t, GPUP_CTL_F_TYPE, "?"),
		       gpup_format_size((uint64_t)gpup_ctl_int(t, GPUP_CTL_F_VRAM, 0), v, sizeof(v)),
		       frac, (long long)gpup_ctl_int(t, GPUP_CTL_F_AVAILABLE, 0),
		       (long long)gpup_ctl_int(t, GPUP_CTL_F_MAX_INSTANCES, 0),
		       gpup_ctl_str(t, GPUP_CTL_F_GENERATION, "?"));
	}
}

static int cmd_types(const struct gpup_global *g, int argc, char **argv)
{
	const char *gpu = NULL;
	json_object *r, *req;
	int json = 0, rc = parse_common("types", argc, argv, &json, &gpu, types_usage);

	if (rc)
		return rc == 1 ? GPUP_EXIT_OK : rc - 2;
	req = gpup_ctl_request(GPUP_CTL_M_TYPES);
	if (gpu)
		json_object_object_add(req, GPUP_CTL_F_GPU, json_object_new_string(gpu));
	rc = gpup_ctl_cli_call(g->run_dir, "types", req, &r);
	if (rc)
		return rc;
	if (json)
		gpup_ctl_print_json(r);
	else
		print_types(r);
	json_object_put(r);
	return GPUP_EXIT_OK;
}

GPUP_COMMAND("types", "list partition types and how many are available", cmd_types)
