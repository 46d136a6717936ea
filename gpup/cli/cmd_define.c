// SPDX-License-Identifier: MIT
/*
 * `gpup define`, `gpup undefine` and `gpup start`: persistent partition
 * definitions, the way mdevctl's define, undefine and start treat mdev
 * devices (docs/SERVICE.md, "Partition definitions").  `gpup create`
 * stays what it always was: define with start auto, and start, at once.
 */
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "gpup/cli/cli.h"
#include "gpup/ctl/ctl.h"
#include "uapi/gpup_ctl.h"

static void define_usage(FILE *f)
{
	fprintf(f, "usage: gpup define --type NAME [--gpu ID] [--uuid UUID] [--compat GEN]\n"
		   "                   [--start auto|manual] [--json]\n"
		   "       gpup define --uuid UUID [--start auto|manual] [--json]\n\n"
		   "Define a partition, as 'mdevctl define' does: its definition is saved\n"
		   "in the state directory (STATE/definitions/GPU/UUID, mdevctl's layout)\n"
		   "and its VRAM slot reserved, but it is not served until 'gpup start\n"
		   "UUID'.  --start auto: served whenever the daemon starts; manual (the\n"
		   "default): only on 'gpup start'.  --gpu, --uuid and --compat are as\n"
		   "for 'gpup create'.  Prints the UUID.\n"
		   "With --uuid alone, give a running partition that has no definition\n"
		   "(see 'gpup undefine') one again, or change a defined one's --start.\n");
}

struct define_args {
	const char *gpu, *type, *uuid, *compat, *start;
	int json;
};

/* What is wrong with the flags, in one line, or NULL. */
static const char *define_check(const struct define_args *a)
{
	if (a->start && strcmp(a->start, "auto") && strcmp(a->start, "manual"))
		return "--start is auto or manual";
	if (!a->type && (!a->uuid || a->gpu || a->compat))
		return "give --type NAME (a new definition) or --uuid UUID alone (a running "
		       "partition); see 'gpup types'";
	return NULL;
}

static json_object *define_request(const struct define_args *a)
{
	json_object *req = gpup_ctl_request(GPUP_CTL_M_DEFINE);
	const struct {
		const char *key, *val;
	} f[] = {
		{ GPUP_CTL_F_GPU, a->gpu }, { GPUP_CTL_F_TYPE, a->type }, { GPUP_CTL_F_UUID, a->uuid },
		{ GPUP_CTL_F_COMPAT, a->compat }, { GPUP_CTL_F_START, a->start },
	};

	for (size_t i = 0; i < sizeof(f) / sizeof(f[0]); i++)
		if (f[i].val)
			json_object_object_add(req, f[i].key, json_object_new_string(f[i].val));
	return req;
}

static int cmd_define(const struct gpup_global *g, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "gpu", required_argument, NULL, 'g' }, { "type", required_argument, NULL, 't' },
		{ "uuid", required_argument, NULL, 'u' }, { "compat", required_argument, NULL, 'c' },
		{ "start", required_argument, NULL, 's' }, { "json", no_argument, NULL, 'j' },
		{ "help", no_argument, NULL, 'h' }, { 0 },
	};
	struct define_args a = { 0 };
	const char *bad;
	json_object *r;
	int o, rc;

	while ((o = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (o) {
		case 'g': a.gpu = optarg; break;
		case 't': a.type = optarg; break;
		case 'u': a.uuid = optarg; break;
		case 'c': a.compat = optarg; break;
		case 's': a.start = optarg; break;
		case 'j': a.json = 1; break;
		case 'h': return define_usage(stdout), GPUP_EXIT_OK;
		default: return define_usage(stderr), GPUP_EXIT_USAGE;
		}
	}
	bad = optind < argc ? "unexpected argument" : define_check(&a);
	if (bad) {
		gpup_err("define", "%s", bad);
		return GPUP_EXIT_USAGE;
	}
	rc = gpup_ctl_cli_call(g->run_dir, "define", define_request(&a), &r);
	if (rc)
		return rc;
	if (a.json)
		gpup_ctl_print_json(r);
	else
		printf("%s\n", gpup_ctl_str(r, GPUP_CTL_F_UUID, "?"));
	json_object_put(r);
	return GPUP_EXIT_OK;
}

GPUP_COMMAND("define", "define a partition persistently (as mdevctl define)", cmd_define)

/* undefine and start: one UUID, --json. */
static int uuid_cmd(const struct gpup_global *g, int argc, char **argv, const char *method,
		    void (*usage)(FILE *f))
{
	static const struct option opts[] = {
		{ "json", no_argument, NULL, 'j' }, { "help", no_argument, NULL, 'h' }, { 0 },
	};
	json_object *req, *r;
	int o, json = 0, rc;

	while ((o = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		if (o == 'j')
			json = 1;
		else if (o == 'h')
			return usage(stdout), GPUP_EXIT_OK;
		else
			return usage(stderr), GPUP_EXIT_USAGE;
	}
	if (optind + 1 != argc) {
		gpup_err(method, "give exactly one partition UUID; see 'gpup list'");
		return GPUP_EXIT_USAGE;
	}
	req = gpup_ctl_request(method);
	json_object_object_add(req, GPUP_CTL_F_UUID, json_object_new_string(argv[optind]));
	rc = gpup_ctl_cli_call(g->run_dir, method, req, &r);
	if (rc)
		return rc;
	if (json)
		gpup_ctl_print_json(r);
	json_object_put(r);
	return GPUP_EXIT_OK;
}

static void undefine_usage(FILE *f)
{
	fprintf(f, "usage: gpup undefine UUID [--json]\n\n"
		   "Remove a partition's definition from the state directory, as\n"
		   "'mdevctl undefine' does.  A running partition keeps running, with\n"
		   "its client, until 'gpup destroy' or the daemon stops (it is then\n"
		   "transient: 'gpup define --uuid UUID' saves it again); one that is not\n"
		   "running is gone, its VRAM slot free.  An unavailable definition\n"
		   "(see 'gpup list') is removed.\n");
}

static int cmd_undefine(const struct gpup_global *g, int argc, char **argv)
{
	return uuid_cmd(g, argc, argv, GPUP_CTL_M_UNDEFINE, undefine_usage);
}

GPUP_COMMAND("undefine", "remove a partition's definition, leaving it running", cmd_undefine)

static void start_usage(FILE *f)
{
	fprintf(f, "usage: gpup start UUID [--json]\n\n"
		   "Serve a defined partition that is not running (one defined with\n"
		   "--start manual, see 'gpup define'), as 'mdevctl start -u UUID'\n"
		   "does: its vfio-user socket appears (see 'gpup list').\n");
}

static int cmd_start(const struct gpup_global *g, int argc, char **argv)
{
	return uuid_cmd(g, argc, argv, GPUP_CTL_M_START, start_usage);
}

GPUP_COMMAND("start", "serve a defined partition", cmd_start)
