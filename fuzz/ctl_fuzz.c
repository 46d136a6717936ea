// SPDX-License-Identifier: MIT
/*
 * libFuzzer harness for the daemon's control API: the bytes a local client
 * writes to RUN_DIR/gpup.sock.  Each input runs against a fresh daemon
 * state (a run and a state directory, an epoll set, the real method table,
 * and two small sim GPUs that live across inputs, their schedulers reset) and is cut at newlines into requests; each goes
 * through what a control connection does in the daemon's loop
 * (daemon_conn.c): read from a non-blocking socket by gpup_ctl_rd_feed,
 * answered by dmn_ctl_handle or refused as a bad request, the reply sent
 * with gpup_ctl_send.  A piece without a newline is followed by EOF, which
 * gets no reply, as in the daemon.  A piece that starts with '!' is no
 * request but a VMM connecting to the newest partition, so that destroy
 * (with and without "force") meets a partition in use.
 *
 * Every reply must be one line of JSON: an object whose "ok" is a boolean,
 * with a non-empty "error" string and an errno-name "code" when it is
 * false.  Nothing may crash, and tearing the daemon state down (every
 * partition stopped) must leave no fd behind that was not there before.
 */
#include <errno.h>
#include <fcntl.h>
#include <json-c/json.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "fuzz/fuzz_util.h"
#include "gpup/ctl/ctl.h"
#include "gpup/daemon/daemon_int.h"
#include "gpup/gpu/gpu.h"
#include "uapi/gpup_ctl.h"

#define MIB (1ull << 20)
#define NGPUS 2u
#define GPU_VRAM (16 * MIB)
#define MAX_REQUESTS 16

static char run_dir[300], state_dir[300];

static void quiet_log(const char *fmt, ...)
{
	(void)fmt;
}

/* The sim GPUs live across inputs (making them, with their engine
 * threads, was most of an input's time); every input starts them as the
 * daemon does, under the time-slice scheduler, weighted, no watchdog. */
static struct gpup_gpu *gpus[NGPUS];

static void gpus_once(void)
{
	for (unsigned int i = 0; i < NGPUS && !gpus[i]; i++) {
		struct gpup_gpu_cfg gc = { .index = i, .vram_size = GPU_VRAM, .ncompute = 1,
					   .ncopy = 1 };

		gpus[i] = gpup_sim_gpu_create(&gc);
		fz_check(gpus[i], "sim GPU: %s", strerror(errno));
	}
}

static void daemon_up(struct gpup_daemon *d)
{
	memset(d, 0, sizeof(*d));
	d->cfg = (struct gpup_daemon_cfg){ .run_dir = run_dir, .state_dir = state_dir,
					   .sim_gpus = NGPUS, .vram = GPU_VRAM };
	d->ctl_fd = d->sig_fd = -1;
	gpup_pool_init(&d->pool, state_dir);
	d->pool.log = fz_verbose() ? gpup_daemon_log : quiet_log;
	d->epfd = epoll_create1(EPOLL_CLOEXEC);
	fz_check(d->epfd >= 0, "epoll");
	for (unsigned int i = 0; i < NGPUS; i++) {
		struct gpup_gpu_desc desc;

		for (unsigned int k = 0; k < 2; k++) {
			struct gpup_engine *e = gpup_gpu_engine(gpus[i], k, 0);

			fz_check(gpup_tsched_set_policy(e, SCHED_POLICY_WEIGHTED, 0) == 0 &&
				 gpup_tsched_set_watchdog(e, 0) == 0, "scheduler");
		}
		gpup_gpu_describe(gpus[i], &desc);
		fz_check(gpup_pool_add_gpu(&d->pool, desc.name, desc.model, desc.backend,
					   desc.vram_size, desc.ncompute, desc.ncopy, gpus[i]) >= 0,
			 "pool");
	}
}

/* What the daemon's teardown does, less the sockets this harness lacks
 * and the GPUs it keeps. */
static void daemon_down(struct gpup_daemon *d)
{
	for (struct gpup_partition *p = d->pool.parts; p; p = p->next)
		dmn_part_stop(d, p);
	gpup_pool_fini(&d->pool);
	close(d->epfd);
	fz_empty_dir(run_dir);
	fz_empty_dir(state_dir);
}

static const char *const codes[] = { "EPERM",  "ENOENT", "EIO",    "ENOMEM", "EACCES",
				     "EBUSY",  "EEXIST", "ENODEV", "EINVAL", "ENOSPC",
				     "ENOSYS", "EPROTO", "ENAMETOOLONG", "ENOTSUP" };

static void check_fail_fields(json_object *o, const char *text)
{
	json_object *v;
	bool known = false;

	fz_check(json_object_object_get_ex(o, GPUP_CTL_F_ERROR, &v) &&
		 json_object_is_type(v, json_type_string) && json_object_get_string_len(v) > 0,
		 "failure without an error message: %s", text);
	fz_check(json_object_object_get_ex(o, GPUP_CTL_F_CODE, &v) &&
		 json_object_is_type(v, json_type_string), "failure without a code: %s", text);
	for (size_t i = 0; i < sizeof(codes) / sizeof(codes[0]); i++)
		known |= strcmp(json_object_get_string(v), codes[i]) == 0;
	fz_check(known, "unknown code: %s", text);
}

/* RFC 8259: JSON between systems is UTF-8.  Shortest forms only, no
 * surrogates, nothing past U+10FFFF. */
static bool valid_utf8(const uint8_t *s, size_t len)
{
	for (size_t i = 0; i < len;) {
		uint8_t c = s[i];
		size_t n = c < 0x80 ? 0 : c >= 0xc2 && c < 0xe0 ? 1 : c >= 0xe0 && c < 0xf0 ? 2 :
			   c >= 0xf0 && c < 0xf5 ? 3 : 4;
		uint32_t cp = n == 0 ? c : n == 1 ? c & 0x1f : n == 2 ? c & 0x0f : c & 0x07;

		if (n == 4 || len - i <= n)
			return false;
		for (size_t k = 1; k <= n; k++) {
			if ((s[i + k] & 0xc0) != 0x80)
				return false;
			cp = cp << 6 | (s[i + k] & 0x3f);
		}
		if ((n == 2 && (cp < 0x800 || (cp >= 0xd800 && cp < 0xe000))) ||
		    (n == 3 && (cp < 0x10000 || cp > 0x10ffff)))
			return false;
		i += n + 1;
	}
	return true;
}

/* The whole reply, up to EOF: exactly one line holding one JSON object. */
static void check_reply(int s)
{
	static char buf[GPUP_CTL_MAX_MSG + 1];
	size_t len = 0;
	ssize_t n;
	json_object *o, *ok;

	while ((n = read(s, buf + len, sizeof(buf) - 1 - len)) > 0)
		len += (size_t)n;
	buf[len] = '\0';
	fz_check(len > 1 && buf[len - 1] == '\n' && memchr(buf, '\n', len) == buf + len - 1,
		 "reply is not one line: %zu bytes", len);
	fz_check(valid_utf8((const uint8_t *)buf, len), "reply is not UTF-8: %s", buf);

	json_tokener *tok = json_tokener_new();

	o = json_tokener_parse_ex(tok, buf, (int)len - 1);
	fz_check(o && json_tokener_get_error(tok) == json_tokener_success &&
		 json_tokener_get_parse_end(tok) == len - 1, "reply is not JSON: %s", buf);
	json_tokener_free(tok);
	fz_check(json_object_is_type(o, json_type_object), "reply is not an object: %s", buf);
	if (fz_verbose())
		fprintf(stderr, "reply: %s", buf);
	fz_check(json_object_object_get_ex(o, GPUP_CTL_F_OK, &ok) &&
		 json_object_is_type(ok, json_type_boolean), "reply without ok: %s", buf);
	if (!json_object_get_boolean(ok))
		check_fail_fields(o, buf);
	json_object_put(o);
}

/* One control connection, as dmn_conn_ready serves it. */
static void one_request(struct gpup_daemon *d, const uint8_t *req, size_t len, bool eof)
{
	struct gpup_ctl_rd rd = { 0 };
	json_object *o = NULL, *rep = NULL;
	size_t off = 0;
	int sv[2], rc = 0;

	fz_check(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == 0, "socketpair");
	fcntl(sv[0], F_SETFL, O_NONBLOCK);
	fcntl(sv[1], F_SETFL, O_NONBLOCK);
	while (rc == 0) {
		ssize_t n = off < len ? write(sv[1], req + off, len - off) : 0;

		if (n > 0)
			off += (size_t)n;
		if (off == len && eof)
			shutdown(sv[1], SHUT_WR);
		rc = gpup_ctl_rd_feed(&rd, sv[0], &o);
		fz_check(rc != 0 || off < len || eof, "request pending with nothing left to send");
	}
	gpup_ctl_rd_free(&rd);
	fz_check(rc == 1 || rc == -EPROTO || rc == -ECONNRESET, "read: %s", strerror(-rc));
	fz_check((rc == 1) == (o != NULL), "object %p with rc %d", (void *)o, rc);
	if (rc == 1)
		rep = dmn_ctl_handle(d, o);
	else if (rc != -ECONNRESET)
		rep = gpup_ctl_fail(EPROTO, "bad request: %s", strerror(-rc));
	json_object_put(o);
	if (rep) {
		fcntl(sv[0], F_SETFL, 0);
		fcntl(sv[1], F_SETFL, 0);
		fz_check(gpup_ctl_send(sv[0], rep) == 0, "send reply");
		json_object_put(rep);
		close(sv[0]);
		check_reply(sv[1]);
	} else {
		close(sv[0]);
	}
	close(sv[1]);
}

/* A piece starting with '!' is no request: a VMM connects to the newest
 * partition's vfio-user socket and the daemon accepts it, so that destroy
 * meets a partition in use.  Returns the client's socket or -1. */
static int connect_client(struct gpup_daemon *d)
{
	struct gpup_partition *last = NULL;
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct dmn_part *dp;
	int s;

	for (struct gpup_partition *p = d->pool.parts; p; p = p->next)
		last = p;
	if (!last || !(dp = last->priv))
		return -1;
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", dp->path);
	s = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	fz_check(s >= 0 && connect(s, (struct sockaddr *)&sa, sizeof(sa)) == 0,
		 "connect to %s: %s", dp->path, strerror(errno));
	dmn_part_accept(d, dp);
	return s;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	int clients[MAX_REQUESTS];
	unsigned int nclients = 0;
	struct gpup_daemon d;
	size_t off = 0;

	if (!run_dir[0]) {
		snprintf(run_dir, sizeof(run_dir), "%s/run", fz_tmpdir());
		snprintf(state_dir, sizeof(state_dir), "%s/state", fz_tmpdir());
		fz_check(mkdir(run_dir, 0700) == 0 && mkdir(state_dir, 0700) == 0, "dirs");
		gpus_once();
	}
	unsigned int fds0 = fz_count_fds();

	daemon_up(&d);
	for (int i = 0; i < MAX_REQUESTS && off < size; i++) {
		const uint8_t *nl = memchr(data + off, '\n', size - off);
		size_t len = nl ? (size_t)(nl - (data + off)) + 1 : size - off;

		if (data[off] == '!') {
			int c = connect_client(&d);

			if (c >= 0)
				clients[nclients++] = c;
		} else {
			one_request(&d, data + off, len, !nl);
		}
		off += len;
	}
	/* Partitions still in use are stopped under their clients. */
	daemon_down(&d);
	while (nclients)
		close(clients[--nclients]);
	/* A second client of a busy partition is refused by a thread of its
	 * own, which closes its socket once it sees ours go. */
	for (int i = 0; i < 2000 && fz_count_fds() != fds0; i++)
		usleep(1000);
	fz_check(fz_count_fds() == fds0, "fds: %u before, %u after", fds0, fz_count_fds());
	return 0;
}
