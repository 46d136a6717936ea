// SPDX-License-Identifier: MIT
/*
 * `gpup vms`: the VMs of this run directory, those started with
 * `gpup run --name NAME` (their control sockets are RUN_DIR/vms/NAME.sock),
 * each asked for its status.  Also how `gpup migrate` finds a VM by name.
 */
#include <dirent.h>
#include <errno.h>
#include <getopt.h>
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

#include "gpup/cli/cli.h"

int gpup_vm_connect(const struct gpup_global *g, const char *vm, char *path, size_t len)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd, n;

	n = strchr(vm, '/') ? snprintf(path, len, "%s", vm)
			    : snprintf(path, len, "%s/vms/%s.sock", g->run_dir, vm);
	if (n < 0 || (size_t)n >= len || (size_t)n >= sizeof(sa.sun_path))
		return -ENAMETOOLONG;
	strcpy(sa.sun_path, path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		n = -errno;
		close(fd);
		return n;
	}
	return fd;
}

/* One request, one reply line, within a second. */
static json_object *vms_status(const struct gpup_global *g, const char *name)
{
	static const char req[] = "{\"cmd\":\"status\"}\n";
	struct timeval tv = { 1, 0 };
	char path[256], buf[8192];
	size_t len = 0;
	ssize_t n;
	int fd = gpup_vm_connect(g, name, path, sizeof(path));

	if (fd < 0)
		return NULL;
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	if (write(fd, req, sizeof(req) - 1) == (ssize_t)sizeof(req) - 1)
		while (len < sizeof(buf) - 1 && (n = read(fd, buf + len, sizeof(buf) - 1 - len)) > 0)
			len += (size_t)n;
	close(fd);
	buf[len] = 0;
	return len ? json_tokener_parse(buf) : NULL;
}

static void vms_usage(FILE *f)
{
	fprintf(f, "usage: gpup vms [--json]\n\n"
		   "List the VMs started with 'gpup run --name NAME' under this run\n"
		   "directory (their control sockets are RUN_DIR/vms/NAME.sock): name,\n"
		   "state (running, migrating, stopping), uptime, RAM, vCPUs and GPU\n"
		   "partitions.  A socket whose VM is gone is left out.\n");
}

static const char *vms_str(json_object *o, const char *key)
{
	json_object *v;

	return json_object_object_get_ex(o, key, &v) ? json_object_get_string(v) : "?";
}

static int64_t vms_int(json_object *o, const char *key)
{
	json_object *v;

	return json_object_object_get_ex(o, key, &v) ? json_object_get_int64(v) : 0;
}

static void vms_print(const char *name, json_object *st, json_object *all, bool json)
{
	json_object *gpus;

	if (json) {
		json_object_object_del(st, "ok");
		json_object_object_add(st, "name", json_object_new_string(name));
		json_object_array_add(all, json_object_get(st));
		return;
	}
	json_object_object_get_ex(st, "gpus", &gpus);
	printf("%-20s %-10s %10.1f s %6lld MiB %4lld %4zu\n", name, vms_str(st, "state"),
	       (double)vms_int(st, "uptime_ms") / 1e3, (long long)(vms_int(st, "mem_bytes") >> 20),
	       (long long)vms_int(st, "cpus"), gpus ? json_object_array_length(gpus) : 0);
}

static int cmd_vms(const struct gpup_global *g, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "json", no_argument, NULL, 'j' }, { "help", no_argument, NULL, 'h' }, { 0 },
	};
	json_object *all;
	char dir[256];
	struct dirent *de;
	bool json = false;
	DIR *d;
	int o;

	while ((o = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		if (o == 'j')
			json = true;
		else
			return vms_usage(o == 'h' ? stdout : stderr),
			       o == 'h' ? GPUP_EXIT_OK : GPUP_EXIT_USAGE;
	}
	all = json_object_new_array();
	snprintf(dir, sizeof(dir), "%s/vms", g->run_dir);
	d = opendir(dir);
	if (!json)
		printf("%-20s %-10s %12s %10s %4s %4s\n", "NAME", "STATE", "UPTIME", "RAM",
		       "CPUS", "GPUS");
	while (d && (de = readdir(d)) != NULL) {
		size_t n = strlen(de->d_name);
		char name[64];
		json_object *st;

		if (n < 6 || n - 5 >= sizeof(name) || strcmp(de->d_name + n - 5, ".sock"))
			continue;
		snprintf(name, sizeof(name), "%.*s", (int)(n - 5), de->d_name);
		st = vms_status(g, name);
		if (st && json_object_is_type(st, json_type_object))
			vms_print(name, st, all, json);
		json_object_put(st);
	}
	if (d)
		closedir(d);
	if (json)
		puts(json_object_to_json_string_ext(all, JSON_C_TO_STRING_PRETTY |
						    JSON_C_TO_STRING_SPACED));
	json_object_put(all);
	return GPUP_EXIT_OK;
}

GPUP_COMMAND("vms", "list the VMs started with 'gpup run --name'", cmd_vms)

int gpup_vm_follow(FILE *f, const char *cmd, const char *what,
		   void (*round)(struct json_object *o, void *arg),
		   int (*result)(struct json_object *o, void *arg), void *arg)
{
	char *line = NULL;
	size_t cap = 0;
	int rc = -1;

	while (rc < 0 && getline(&line, &cap, f) > 0) {
		json_object *o = json_tokener_parse(line), *ev;

		if (!o || !json_object_is_type(o, json_type_object)) {
			gpup_err(cmd, "the VM answered something that is not JSON");
			rc = GPUP_EXIT_FAIL;
		} else if (json_object_object_get_ex(o, "event", &ev) &&
			   !strcmp(json_object_get_string(ev), "round")) {
			if (round)
				round(o, arg);
		} else {
			rc = result(o, arg);
		}
		json_object_put(o);
	}
	free(line);
	if (rc < 0) {
		gpup_err(cmd, "the VM went away before the %s ended", what);
		rc = GPUP_EXIT_FAIL;
	}
	return rc;
}
