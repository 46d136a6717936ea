// SPDX-License-Identifier: MIT
/*
 * The VM's control socket: JSON over a UNIX stream socket (mode 0600, peer
 * credentials checked), one request object per line, one reply per line,
 * like the daemon's control API.  Requests:
 *   {"cmd":"status"}  state, uptime, RAM, vCPUs, userspace exits (all, port
 *                     I/O, MMIO), and each
 *                     attached partition (socket, attached/lost, BARs)
 *   {"cmd":"stop"}    stop the VM; `gpup run` exits with HV_EXIT_STOPPED
 *   {"cmd":"migrate", "to":"tcp:HOST:PORT", ...}  live migration (vm_mig.c):
 *                     progress lines, then the result, on the connection
 *   {"cmd":"checkpoint", "to":"/FILE"[, "base":"/BASE"]}  the same into a
 *                     file (a VM checkpoint); the VM runs on
 * The main thread serves it between vCPU events, one short request at a
 * time.
 */
#include <errno.h>
#include <json-c/json.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "hv/hv_int.h"

#define HV_CTL_MAX_REQ 4096
#define HV_CTL_TIMEOUT_MS 1000

struct hv_ctl {
	int fd;
	char path[sizeof(((struct sockaddr_un *)0)->sun_path)];
};

/* Bind and listen under a temporary name, then rename into place: the
 * socket appears at path only once it accepts connections, so a client
 * that waits for the file never meets ECONNREFUSED. */
static int hv_ctl_listen(int fd, const char *path)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	bool tmp = strlen(path) + 4 < sizeof(sa.sun_path);
	mode_t old;
	int rc;

	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s%s", path, tmp ? ".new" : "");
	unlink(sa.sun_path);
	unlink(path); /* a stale socket from a VM that died */
	old = umask(0177);
	rc = bind(fd, (struct sockaddr *)&sa, sizeof(sa));
	umask(old);
	if (rc == 0)
		rc = listen(fd, 8);
	if (rc == 0 && tmp)
		rc = rename(sa.sun_path, path);
	if (rc < 0 && tmp) {
		rc = -errno;
		unlink(sa.sun_path);
		errno = -rc;
		rc = -1;
	}
	return rc;
}

int hv_ctl_open(struct hv_vm *vm, const char *path, struct hv_ctl **out)
{
	struct hv_ctl *c;
	int rc;

	(void)vm;
	if (strlen(path) >= sizeof(c->path)) {
		hv_log("control socket path too long: %s", path);
		return -ENAMETOOLONG;
	}
	c = calloc(1, sizeof(*c));
	if (!c)
		return -ENOMEM;
	strcpy(c->path, path);
	c->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (c->fd < 0 || hv_ctl_listen(c->fd, path) < 0) {
		rc = -errno;
		hv_log("cannot serve the control socket %s: %s", path, strerror(-rc));
		if (c->fd >= 0)
			close(c->fd);
		free(c);
		return rc;
	}
	*out = c;
	return 0;
}

int hv_ctl_fd(struct hv_ctl *c)
{
	return c->fd;
}

static bool hv_ctl_peer_ok(int fd)
{
	struct ucred cr;
	socklen_t len = sizeof(cr);

	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cr, &len) < 0)
		return false;
	return cr.uid == 0 || cr.uid == geteuid();
}

/* Read one line, waiting at most HV_CTL_TIMEOUT_MS in all. */
static int hv_ctl_read_line(int fd, char *buf, size_t max)
{
	size_t len = 0;
	struct pollfd p = { .fd = fd, .events = POLLIN };

	while (len < max - 1) {
		ssize_t n;

		if (poll(&p, 1, HV_CTL_TIMEOUT_MS) <= 0)
			return -ETIMEDOUT;
		n = read(fd, buf + len, max - 1 - len);
		if (n <= 0)
			break;
		len += (size_t)n;
		if (memchr(buf, '\n', len))
			break;
	}
	buf[len] = 0;
	return len ? 0 : -EIO;
}

static struct json_object *hv_ctl_status(struct hv_vm *vm)
{
	struct json_object *o = json_object_new_object(), *gpus;

	json_object_object_add(o, "ok", json_object_new_boolean(1));
	json_object_object_add(o, "state", json_object_new_string(
		atomic_load(&vm->stopping) ? "stopping" :
		hv_mig_running(vm) ? "migrating" : "running"));
	json_object_object_add(o, "kernel", json_object_new_string(vm->cfg->kernel));
	json_object_object_add(o, "uptime_ms", json_object_new_int64(
		(int64_t)((hv_now_ns() - vm->start_ns) / 1000000)));
	json_object_object_add(o, "mem_bytes", json_object_new_int64((int64_t)vm->mem_size));
	json_object_object_add(o, "cpus", json_object_new_int((int)vm->ncpus));
	json_object_object_add(o, "exits", json_object_new_int64(
		(int64_t)atomic_load(&vm->exits)));
	json_object_object_add(o, "io_exits", json_object_new_int64(
		(int64_t)atomic_load(&vm->io_exits)));
	json_object_object_add(o, "mmio_exits", json_object_new_int64(
		(int64_t)atomic_load(&vm->mmio_exits)));
	gpus = json_object_new_array();
	for (unsigned int i = 0; i < vm->ngpus; i++)
		json_object_array_add(gpus, hv_vgpu_describe(vm->gpus[i]));
	json_object_object_add(o, "gpus", gpus);
	return o;
}

static struct json_object *hv_ctl_error(const char *msg)
{
	struct json_object *o = json_object_new_object();

	json_object_object_add(o, "ok", json_object_new_boolean(0));
	json_object_object_add(o, "error", json_object_new_string(msg));
	return o;
}

static int64_t hv_ctl_int(struct json_object *in, const char *key, int64_t dflt)
{
	struct json_object *v;

	if (!json_object_object_get_ex(in, key, &v))
		return dflt;
	return json_object_is_type(v, json_type_int) ? json_object_get_int64(v) : -1;
}

/* {"cmd":"migrate","to":"tcp:HOST:PORT"[,"downtime_ms":N][,"bandwidth":B/s]
 * [,"max_rounds":N]}: the migration thread takes fd and answers on it,
 * one JSON line per round and one at the end.  NULL when it took fd. */
static struct json_object *hv_ctl_migrate(struct hv_vm *vm, struct json_object *in, int fd)
{
	struct hv_mig_params p = { .max_rounds = 30 };
	struct json_object *to;
	int64_t dt = hv_ctl_int(in, "downtime_ms", 30), bw = hv_ctl_int(in, "bandwidth", 0),
		rounds = hv_ctl_int(in, "max_rounds", 30);
	int rc;

	if (!json_object_object_get_ex(in, "to", &to) || !json_object_is_type(to, json_type_string) ||
	    hv_tcp_check(json_object_get_string(to)) < 0 ||
	    strlen(json_object_get_string(to)) >= sizeof(p.to))
		return hv_ctl_error("migrate wants \"to\": \"tcp:HOST:PORT\"");
	if (dt < 1 || dt > 60000 || bw < 0 || rounds < 1 || rounds > 1000)
		return hv_ctl_error("migrate wants downtime_ms 1..60000, bandwidth >= 0 bytes/s, "
				    "max_rounds 1..1000");
	if (vm->ncpus == 0 || vm->incoming)
		return hv_ctl_error("the VM is not running yet");
	strcpy(p.to, json_object_get_string(to));
	p.downtime_ns = (uint64_t)dt * 1000000ull;
	p.bandwidth = (uint64_t)bw;
	p.max_rounds = (unsigned int)rounds;
	rc = hv_mig_start(vm, &p, fd);
	if (rc == -EBUSY)
		return hv_ctl_error("a migration is already running");
	if (rc < 0)
		return hv_ctl_error(strerror(-rc));
	return NULL;
}

/* {"cmd":"checkpoint","to":"/ABS/FILE"[,"base":"/ABS/BASE"][,"downtime_ms":N]
 * [,"max_rounds":N]}: a checkpoint, which answers on fd as a migration
 * does.  NULL when it took fd. */
static struct json_object *hv_ctl_checkpoint(struct hv_vm *vm, struct json_object *in, int fd)
{
	struct hv_mig_params p = { .to = "" };
	struct json_object *to, *base = NULL;
	int64_t dt = hv_ctl_int(in, "downtime_ms", 30), rounds = hv_ctl_int(in, "max_rounds", 8);
	int rc;

	if (!json_object_object_get_ex(in, "to", &to) || !json_object_is_type(to, json_type_string) ||
	    json_object_get_string(to)[0] != '/' ||
	    strlen(json_object_get_string(to)) >= sizeof(p.path) ||
	    (json_object_object_get_ex(in, "base", &base) &&
	     (!json_object_is_type(base, json_type_string) ||
	      json_object_get_string(base)[0] != '/' ||
	      strlen(json_object_get_string(base)) >= sizeof(p.base))))
		return hv_ctl_error("checkpoint wants \"to\": an absolute path (and \"base\": "
				    "one too, for an incremental checkpoint)");
	if (dt < 1 || dt > 60000 || rounds < 1 || rounds > 1000)
		return hv_ctl_error("checkpoint wants downtime_ms 1..60000, max_rounds 1..1000");
	if (vm->ncpus == 0 || vm->incoming)
		return hv_ctl_error("the VM is not running yet");
	strcpy(p.path, json_object_get_string(to));
	if (base)
		strcpy(p.base, json_object_get_string(base));
	p.downtime_ns = (uint64_t)dt * 1000000ull;
	p.max_rounds = (unsigned int)rounds;
	rc = hv_mig_start(vm, &p, fd);
	if (rc == -EBUSY)
		return hv_ctl_error("a migration or checkpoint is already running");
	if (rc < 0)
		return hv_ctl_error(strerror(-rc));
	return NULL;
}

static struct json_object *hv_ctl_dispatch(struct hv_vm *vm, const char *req, int fd)
{
	struct json_object *in = json_tokener_parse(req), *cmd, *out;
	const char *name;

	if (!in || !json_object_is_type(in, json_type_object) ||
	    !json_object_object_get_ex(in, "cmd", &cmd) ||
	    !json_object_is_type(cmd, json_type_string)) {
		json_object_put(in);
		return hv_ctl_error("want a JSON object with a \"cmd\" string");
	}
	name = json_object_get_string(cmd);
	if (!strcmp(name, "status")) {
		out = hv_ctl_status(vm);
	} else if (!strcmp(name, "stop")) {
		out = hv_ctl_status(vm);
		hv_log("stopping the VM on request from the control socket");
		hv_vm_stop(vm, HV_EXIT_STOPPED);
	} else if (!strcmp(name, "migrate")) {
		out = hv_ctl_migrate(vm, in, fd);
	} else if (!strcmp(name, "checkpoint")) {
		out = hv_ctl_checkpoint(vm, in, fd);
	} else {
		out = hv_ctl_error("unknown cmd; known: status, stop, migrate, checkpoint");
	}
	json_object_put(in);
	return out;
}

void hv_ctl_handle(struct hv_vm *vm, struct hv_ctl *c)
{
	char req[HV_CTL_MAX_REQ];
	struct json_object *out;
	const char *txt;
	int fd = accept4(c->fd, NULL, NULL, SOCK_CLOEXEC);

	if (fd < 0)
		return;
	if (!hv_ctl_peer_ok(fd) || hv_ctl_read_line(fd, req, sizeof(req)) < 0) {
		close(fd);
		return;
	}
	out = hv_ctl_dispatch(vm, req, fd);
	if (!out)
		return; /* a migration answers on fd */
	txt = json_object_to_json_string_ext(out, JSON_C_TO_STRING_PLAIN);
	if (send(fd, txt, strlen(txt), MSG_NOSIGNAL) >= 0)
		send(fd, "\n", 1, MSG_NOSIGNAL);
	json_object_put(out);
	close(fd);
}

void hv_ctl_close(struct hv_ctl *c)
{
	close(c->fd);
	unlink(c->path);
	free(c);
}
