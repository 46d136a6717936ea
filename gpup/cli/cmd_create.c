// SPDX-License-Identifier: MIT
/*
 * `gpup create`, `gpup destroy` and `gpup list`: partitions, through the
 * daemon's control API.  Validation that needs the pool (names, room, UUID
 * clashes) happens in the daemon, so the CLI and the API can never
 * disagree; the CLI only checks its own flags.
 */
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "gpup/cli/cli.h"
#include "gpup/ctl/ctl.h"
#include "gpup/pool/pool.h"
#include "uapi/gpup_ctl.h"

static void create_usage(FILE *f)
{
	fprintf(f, "usage: gpup create --type NAME [--gpu ID] [--uuid UUID] [--compat GEN]\n"
		   "                   [--json]\n\n"
		   "Create a partition, serve it and print its UUID.  Without --gpu, the\n"
		   "fullest GPU with room is used (keeping whole GPUs free).  See 'gpup\n"
		   "types'.  Its definition is saved with start auto, so the daemon serves\n"
		   "it again when it restarts ('gpup define --start auto' and 'gpup start'\n"
		   "in one); 'gpup undefine' makes it transient.\n"
		   "--compat GEN limits what its guest sees to what GPU generation GEN\n"
		   "offers (gen1: no RENDER kernel), so that it can move to GPUs of that\n"
		   "generation and later ones (gpup move).  Without it, a partition\n"
		   "exposes its GPU's whole set and moves only to GPUs with as much.\n");
}

static int cmd_create(const struct gpup_global *g, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "gpu", required_argument, NULL, 'g' }, { "type", required_argument, NULL, 't' },
		{ "uuid", required_argument, NULL, 'u' }, { "json", no_argument, NULL, 'j' },
		{ "compat", required_argument, NULL, 'c' }, { "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	const char *gpu = NULL, *type = NULL, *uuid = NULL, *compat = NULL;
	json_object *req, *r;
	int o, json = 0, rc;

	while ((o = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		if (o == 'g')
			gpu = optarg;
		else if (o == 't')
			type = optarg;
		else if (o == 'u')
			uuid = optarg;
		else if (o == 'c')
			compat = optarg;
		else if (o == 'j')
			json = 1;
		else if (o == 'h')
			return create_usage(stdout), GPUP_EXIT_OK;
		else
			return create_usage(stderr), GPUP_EXIT_USAGE;
	}
	if (!type || optind < argc) {
		gpup_err("create", "%s", !type ? "--type NAME is required; see 'gpup types'"
					       : "unexpected argument");
		return GPUP_EXIT_USAGE;
	}
	req = gpup_ctl_request(GPUP_CTL_M_CREATE);
	json_object_object_add(req, GPUP_CTL_F_TYPE, json_object_new_string(type));
	if (gpu)
		json_object_object_add(req, GPUP_CTL_F_GPU, json_object_new_string(gpu));
	if (uuid)
		json_object_object_add(req, GPUP_CTL_F_UUID, json_object_new_string(uuid));
	if (compat)
		json_object_object_add(req, GPUP_CTL_F_COMPAT, json_object_new_string(compat));
	rc = gpup_ctl_cli_call(g->run_dir, "create", req, &r);
	if (rc)
		return rc;
	if (json)
		gpup_ctl_print_json(r);
	else
		printf("%s\n", gpup_ctl_str(r, GPUP_CTL_F_UUID, "?"));
	json_object_put(r);
	return GPUP_EXIT_OK;
}

GPUP_COMMAND("create", "create a partition of a GPU", cmd_create)

static void destroy_usage(FILE *f)
{
	fprintf(f, "usage: gpup destroy UUID [--force] [--json]\n\n"
		   "Remove a partition and its definition.  A partition with a client\n"
		   "(a VM) attached is refused unless --force, which disconnects it.\n");
}

static int cmd_destroy(const struct gpup_global *g, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "force", no_argument, NULL, 'f' }, { "json", no_argument, NULL, 'j' },
		{ "help", no_argument, NULL, 'h' },  { 0 },
	};
	json_object *req, *r;
	int o, json = 0, force = 0, rc;

	while ((o = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		if (o == 'f')
			force = 1;
		else if (o == 'j')
			json = 1;
		else if (o == 'h')
			return destroy_usage(stdout), GPUP_EXIT_OK;
		else
			return destroy_usage(stderr), GPUP_EXIT_USAGE;
	}
	if (optind + 1 != argc) {
		gpup_err("destroy", "give exactly one partition UUID; see 'gpup list'");
		return GPUP_EXIT_USAGE;
	}
	req = gpup_ctl_request(GPUP_CTL_M_DESTROY);
	json_object_object_add(req, GPUP_CTL_F_UUID, json_object_new_string(argv[optind]));
	json_object_object_add(req, GPUP_CTL_F_FORCE, json_object_new_boolean(force));
	rc = gpup_ctl_cli_call(g->run_dir, "destroy", req, &r);
	if (rc)
		return rc;
	if (json)
		gpup_ctl_print_json(r);
	json_object_put(r);
	return GPUP_EXIT_OK;
}

GPUP_COMMAND("destroy", "destroy a partition", cmd_destroy)

static void list_usage(FILE *f)
{
	fprintf(f, "usage: gpup list [--json]\n\n"
		   "Partitions: UUID, GPU, type, VRAM slice and the pages that hold it\n"
		   "(PAGES: thp-2m or 4k, see 'gpup gpus --help'), whether a client is\n"
		   "attached, scheduler settings other than the defaults (gpup sched\n"
		   "--partition), COMPAT: the generation whose features it is limited\n"
		   "to ('-': its GPU's), MIGRATION: its migration state (RUNNING unless\n"
		   "its client or a checkpoint is migrating it), and the vfio-user\n"
		   "socket a VMM connects to, or, for a defined partition that is not\n"
		   "running, its start (see 'gpup define', 'gpup start').  In --json,\n"
		   "\"defined\" (false: transient, see 'gpup undefine'), \"start\" and\n"
		   "\"running\" say the same.  A saved\n"
		   "partition the daemon could not restore (its GPU absent, its file\n"
		   "corrupt) is listed as unavailable, with the reason, in place of the\n"
		   "socket (in --json, \"unavailable\"); its UUID stays reserved until\n"
		   "'gpup destroy UUID'.\n");
}

/* The scheduler settings that differ from the defaults, e.g. "w=4 interactive
 * 60fps budget=2ms", or "-". */
static const char *sched_summary(json_object *p, char *buf, size_t len)
{
	int64_t w = gpup_ctl_int(p, GPUP_CTL_F_WEIGHT, 1);
	int64_t fps = gpup_ctl_int(p, GPUP_CTL_F_FPS_LIMIT, 0);
	int64_t budget = gpup_ctl_int(p, GPUP_CTL_F_BUDGET_US, 0);
	double cap = json_object_get_double(json_object_object_get(p, GPUP_CTL_F_CAP));
	double res = json_object_get_double(json_object_object_get(p, GPUP_CTL_F_RESERVE));
	const char *cls = gpup_ctl_str(p, GPUP_CTL_F_CLASS, "normal");
	size_t n = 0;

	buf[0] = '\0';
	if (w > 1)
		n += snprintf(buf + n, len - n, " w=%lld", (long long)w);
	if (res > 0 && n < len)
		n += snprintf(buf + n, len - n, " reserve=%g", res);
	if (cap > 0 && n < len)
		n += snprintf(buf + n, len - n, " cap=%g", cap);
	if (strcmp(cls, "normal") && n < len)
		n += snprintf(buf + n, len - n, " %s", cls);
	if (fps > 0 && n < len)
		n += snprintf(buf + n, len - n, " %lldfps", (long long)fps);
	if (budget > 0 && n < len)
		snprintf(buf + n, len - n, " budget=%gms", budget / 1e3);
	return buf[0] ? buf + 1 : "-";
}

#define LIST_ROW "%-36s  %-5s %-13s %-8s %-6s %-9s %-7s %-6s %-9s %-22s %s\n"

/* A partition, or a saved one the daemon could not restore: then the
 * reason stands where the socket would, and nothing is attached. */
static void print_row(json_object *p)
{
	const char *unavail = gpup_ctl_str(p, GPUP_CTL_F_UNAVAILABLE, NULL);
	uint64_t size = (uint64_t)gpup_ctl_int(p, GPUP_CTL_F_VRAM, 0);
	char v[32] = "-", off[32] = "-", sch[96] = "-", last[320];
	json_object *c = NULL;

	/* An unreadable definition has no size or offset to show. */
	if (size) {
		gpup_format_size(size, v, sizeof(v));
		gpup_format_size((uint64_t)gpup_ctl_int(p, GPUP_CTL_F_VRAM_OFFSET, 0), off,
				 sizeof(off));
	}
	json_object_object_get_ex(p, GPUP_CTL_F_CONNECTED, &c);
	if (unavail)
		snprintf(last, sizeof(last), "(unavailable: %s)", unavail);
	else if (!json_object_get_boolean(json_object_object_get(p, GPUP_CTL_F_RUNNING)))
		snprintf(last, sizeof(last), "(defined, start %s: not running)",
			 gpup_ctl_str(p, GPUP_CTL_F_START, "?"));
	else
		snprintf(last, sizeof(last), "%s", gpup_ctl_str(p, GPUP_CTL_F_SOCKET, "(not served)"));
	printf(LIST_ROW, gpup_ctl_str(p, GPUP_CTL_F_UUID, "?"), gpup_ctl_str(p, GPUP_CTL_F_GPU, "?"),
	       gpup_ctl_str(p, GPUP_CTL_F_TYPE, "?"), v,
	       unavail ? "-" : gpup_ctl_str(p, GPUP_CTL_F_VRAM_BACKING, "?"), off,
	       unavail ? "-" : json_object_get_boolean(c) ? "yes" : "no",
	       gpup_ctl_str(p, GPUP_CTL_F_COMPAT, "-"), gpup_ctl_str(p, GPUP_CTL_F_MIGRATION, "-"),
	       unavail ? sch : sched_summary(p, sch, sizeof(sch)), last);
}

static void print_list(json_object *r)
{
	json_object *a = NULL;

	json_object_object_get_ex(r, GPUP_CTL_F_PARTITIONS, &a);
	if (!a || !json_object_array_length(a)) {
		printf("no partitions; create one with 'gpup create --type NAME'\n");
		return;
	}
	printf(LIST_ROW, "UUID", "GPU", "TYPE", "VRAM", "PAGES", "OFFSET", "CLIENT", "COMPAT",
	       "MIGRATION", "SCHED", "SOCKET");
	for (size_t i = 0; i < json_object_array_length(a); i++)
		print_row(json_object_array_get_idx(a, i));
}

static int cmd_list(const struct gpup_global *g, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "json", no_argument, NULL, 'j' }, { "help", no_argument, NULL, 'h' }, { 0 },
	};
	json_object *r;
	int o, json = 0, rc;

	while ((o = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		if (o == 'j')
			json = 1;
		else if (o == 'h')
			return list_usage(stdout), GPUP_EXIT_OK;
		else
			return list_usage(stderr), GPUP_EXIT_USAGE;
	}
	if (optind < argc) {
		gpup_err("list", "unexpected argument '%s'", argv[optind]);
		return GPUP_EXIT_USAGE;
	}
	rc = gpup_ctl_cli_call(g->run_dir, "list", gpup_ctl_request(GPUP_CTL_M_LIST), &r);
	if (rc)
		return rc;
	if (json)
		gpup_ctl_print_json(r);
	else
		print_list(r);
	json_object_put(r);
	return GPUP_EXIT_OK;
}

GPUP_COMMAND("list", "list partitions", cmd_list)
