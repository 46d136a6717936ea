// SPDX-License-Identifier: MIT
/*
 * `gpup checkpoint VM --to FILE [--incremental BASE]`: a running VM into
 * a checkpoint file (docs/MIGRATION.md, "Checkpointing a VM").  The VM's
 * control socket does the work, as for `gpup migrate`: it answers on our
 * connection with a JSON line per pre-copy round and one at the end,
 * which this turns into one line of figures (or the error).
 */
#include <errno.h>
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "gpup/cli/cli.h"

static double ck_num(json_object *o, const char *key)
{
	json_object *v;

	return json_object_object_get_ex(o, key, &v) ? json_object_get_double(v) : 0;
}

static int ck_result(json_object *o, const char *file, int json)
{
	json_object *v;
	bool ok = json_object_object_get_ex(o, "ok", &v) && json_object_get_boolean(v);

	if (!ok) {
		json_object_object_get_ex(o, "error", &v);
		gpup_err("checkpoint", "%s", v ? json_object_get_string(v) : "failed");
		return GPUP_EXIT_FAIL;
	}
	if (json) {
		json_object_object_del(o, "ok");
		json_object_object_del(o, "event");
		puts(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PRETTY |
						    JSON_C_TO_STRING_SPACED |
						    JSON_C_TO_STRING_NOSLASHESCAPE));
	} else {
		json_object_object_get_ex(o, "ident", &v);
		printf("%s: %.1f MiB in %.1f ms, %.0f rounds, paused %.1f ms, identity %s\n",
		       file, ck_num(o, "bytes") / 1048576.0, ck_num(o, "total_ms"),
		       ck_num(o, "rounds"), ck_num(o, "downtime_ms"),
		       v ? json_object_get_string(v) : "?");
	}
	return GPUP_EXIT_OK;
}

struct ck_follow {
	const char *file;
	int json;
};

static int ck_done(json_object *o, void *arg)
{
	const struct ck_follow *c = arg;

	return ck_result(o, c->file, c->json);
}

int gpup_vm_checkpoint(const struct gpup_global *g, const char *vm, const char *file,
		       const char *base, long max_rounds, int json)
{
	char path[256];
	json_object *req;
	int rc, fd = gpup_vm_connect(g, vm, path, sizeof(path));
	FILE *f;

	if (fd < 0) {
		gpup_err("checkpoint", "cannot reach the VM's control socket %s: %s", path,
			 strerror(-fd));
		return GPUP_EXIT_FAIL;
	}
	req = json_object_new_object();
	json_object_object_add(req, "cmd", json_object_new_string("checkpoint"));
	json_object_object_add(req, "to", json_object_new_string(file));
	if (base)
		json_object_object_add(req, "base", json_object_new_string(base));
	if (max_rounds)
		json_object_object_add(req, "max_rounds", json_object_new_int64(max_rounds));
	f = fdopen(fd, "r+");
	if (!f || fprintf(f, "%s\n", json_object_to_json_string_ext(req, JSON_C_TO_STRING_PLAIN |
							 JSON_C_TO_STRING_NOSLASHESCAPE)) < 0 ||
	    fflush(f)) {
		gpup_err("checkpoint", "cannot talk to %s: %s", path, strerror(errno));
		rc = GPUP_EXIT_FAIL;
	} else {
		rc = gpup_vm_follow(f, "checkpoint", "checkpoint", NULL, ck_done,
				    &(struct ck_follow){ file, json });
	}
	json_object_put(req);
	if (f)
		fclose(f);
	else
		close(fd);
	return rc;
}
