// SPDX-License-Identifier: MIT
/*
 * Control-API plumbing shared by the daemon and the CLI: framing, the
 * reply envelope, errno names, and the client side of a call.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "gpup/base/base.h"
#include "gpup/ctl/ctl.h"
#include "uapi/gpup_ctl.h"

static const struct {
	int err;
	const char *name;
} errno_names[] = {
	{ EPERM, "EPERM" },   { ENOENT, "ENOENT" },   { EIO, "EIO" },
	{ ENOMEM, "ENOMEM" }, { EACCES, "EACCES" },   { EBUSY, "EBUSY" },
	{ EEXIST, "EEXIST" }, { ENODEV, "ENODEV" },   { EINVAL, "EINVAL" },
	{ ENOSPC, "ENOSPC" }, { ENOSYS, "ENOSYS" },   { EPROTO, "EPROTO" },
	{ ENAMETOOLONG, "ENAMETOOLONG" }, { ENOTSUP, "ENOTSUP" },
};

const char *gpup_ctl_errno_name(int err)
{
	for (size_t i = 0; i < sizeof(errno_names) / sizeof(errno_names[0]); i++)
		if (errno_names[i].err == err)
			return errno_names[i].name;
	return "EIO";
}

int gpup_ctl_sock_path(const char *run_dir, char *buf, size_t len)
{
	struct sockaddr_un sa;
	int n = snprintf(buf, len, "%s/%s", run_dir, GPUP_CTL_SOCKET);

	if (n < 0 || (size_t)n >= len || (size_t)n >= sizeof(sa.sun_path))
		return -ENAMETOOLONG;
	return 0;
}

int gpup_ctl_send(int fd, json_object *o)
{
	const char *s = json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN |
							    JSON_C_TO_STRING_NOSLASHESCAPE);
	size_t len = strlen(s), off = 0;

	while (off <= len) {
		/* The newline goes out with the last chunk. */
		const char *p = off < len ? s + off : "\n";
		size_t n = off < len ? len - off : 1;
		ssize_t w = send(fd, p, n, MSG_NOSIGNAL);

		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0)
			return -errno;
		off += (size_t)w;
	}
	return 0;
}

/* Length of the UTF-8 character at s (1..4), or 0 if the bytes there are
 * not one in its shortest form (no surrogates, nothing past U+10FFFF):
 * JSON between systems is UTF-8 (RFC 8259), and json-c's own check lets
 * all of those through. */
static size_t utf8_char(const unsigned char *s, size_t len)
{
	unsigned char c = s[0];
	size_t n = c < 0x80 ? 1 : c < 0xc2 ? 0 : c < 0xe0 ? 2 : c < 0xf0 ? 3 : c < 0xf5 ? 4 : 0;
	uint32_t cp;

	if (n <= 1 || n > len)
		return n > len ? 0 : n;
	cp = c & (0x7fu >> n);
	for (size_t i = 1; i < n; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		cp = cp << 6 | (s[i] & 0x3fu);
	}
	if ((n == 3 && (cp < 0x800 || (cp >= 0xd800 && cp < 0xe000))) ||
	    (n == 4 && (cp < 0x10000 || cp > 0x10ffff)))
		return 0;
	return n;
}

static bool utf8_valid(const char *s, size_t len)
{
	for (size_t i = 0, n; i < len; i += n)
		if (!(n = utf8_char((const unsigned char *)s + i, len - i)))
			return false;
	return true;
}

/* Replace what is not UTF-8 (bytes echoed from elsewhere, a character cut
 * by truncation) with '?', so that a reply is always valid JSON. */
static void utf8_sanitize(char *s)
{
	size_t len = strlen(s);

	for (size_t i = 0, n; i < len; i += n) {
		n = utf8_char((const unsigned char *)s + i, len - i);
		if (!n) {
			s[i] = '?';
			n = 1;
		}
	}
}

static int parse_request(const char *buf, size_t len, json_object **o)
{
	json_tokener *tok;

	*o = NULL;
	if (!utf8_valid(buf, len))
		return -EPROTO;
	tok = json_tokener_new();
	*o = tok ? json_tokener_parse_ex(tok, buf, (int)len) : NULL;
	json_tokener_free(tok);
	if (*o && json_object_is_type(*o, json_type_object))
		return 1;
	json_object_put(*o);
	*o = NULL;
	return -EPROTO;
}

static int rd_grow(struct gpup_ctl_rd *r)
{
	size_t cap = r->cap ? r->cap * 2 : 4096;
	char *nb;

	if (r->cap >= GPUP_CTL_MAX_MSG)
		return -EPROTO;
	nb = realloc(r->buf, cap);
	if (!nb)
		return -ENOMEM;
	r->buf = nb;
	r->cap = cap;
	return 0;
}

int gpup_ctl_rd_feed(struct gpup_ctl_rd *r, int fd, json_object **o)
{
	for (;;) {
		ssize_t n;
		int rc;

		if (r->len == r->cap && (rc = rd_grow(r)))
			return rc;
		n = recv(fd, r->buf + r->len, r->cap - r->len, 0);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return errno == EAGAIN || errno == EWOULDBLOCK ? 0 : -errno;
		if (n == 0)
			return -ECONNRESET;
		r->len += (size_t)n;
		if (memchr(r->buf + r->len - (size_t)n, '\n', (size_t)n))
			return parse_request(r->buf, r->len, o);
	}
}

void gpup_ctl_rd_free(struct gpup_ctl_rd *r)
{
	free(r->buf);
	memset(r, 0, sizeof(*r));
}

int gpup_ctl_recv(int fd, json_object **o)
{
	struct gpup_ctl_rd r = { 0 };
	int rc = gpup_ctl_rd_feed(&r, fd, o);

	gpup_ctl_rd_free(&r);
	/* On a blocking socket "no data yet" means its receive timeout hit. */
	return rc == 1 ? 0 : rc == 0 ? -ETIMEDOUT : rc;
}

json_object *gpup_ctl_ok(void)
{
	json_object *o = json_object_new_object();

	json_object_object_add(o, GPUP_CTL_F_OK, json_object_new_boolean(1));
	return o;
}

json_object *gpup_ctl_fail(int err, const char *fmt, ...)
{
	json_object *o = json_object_new_object();
	char msg[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	utf8_sanitize(msg);
	json_object_object_add(o, GPUP_CTL_F_OK, json_object_new_boolean(0));
	json_object_object_add(o, GPUP_CTL_F_ERROR, json_object_new_string(msg));
	json_object_object_add(o, GPUP_CTL_F_CODE,
			       json_object_new_string(gpup_ctl_errno_name(err)));
	return o;
}

json_object *gpup_ctl_request(const char *method)
{
	json_object *o = json_object_new_object();

	json_object_object_add(o, GPUP_CTL_F_METHOD, json_object_new_string(method));
	json_object_object_add(o, GPUP_CTL_F_VERSION, json_object_new_int(GPUP_CTL_VERSION));
	return o;
}

const char *gpup_ctl_str(json_object *o, const char *key, const char *dflt)
{
	json_object *v;

	if (!o || !json_object_object_get_ex(o, key, &v) || !json_object_is_type(v, json_type_string))
		return dflt;
	return json_object_get_string(v);
}

int64_t gpup_ctl_int(json_object *o, const char *key, int64_t dflt)
{
	json_object *v;

	if (!o || !json_object_object_get_ex(o, key, &v) || !json_object_is_type(v, json_type_int))
		return dflt;
	return json_object_get_int64(v);
}

static int ctl_connect(const char *run_dir)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd, rc;

	rc = gpup_ctl_sock_path(run_dir, sa.sun_path, sizeof(sa.sun_path));
	if (rc)
		return rc;
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa))) {
		rc = -errno;
		close(fd);
		return rc;
	}
	return fd;
}

int gpup_ctl_call(const char *run_dir, json_object *req, json_object **reply)
{
	int fd = ctl_connect(run_dir), rc;

	if (fd < 0)
		return fd;
	rc = gpup_ctl_send(fd, req);
	if (!rc)
		rc = gpup_ctl_recv(fd, reply);
	close(fd);
	return rc;
}

/* Errors in the request itself, as opposed to failures at run time. */
static bool usage_code(const char *code)
{
	static const char *const codes[] = { "EINVAL", "ENOENT", "ENODEV", "EEXIST",
					     "ENOSPC", "EBUSY" };

	for (size_t i = 0; i < sizeof(codes) / sizeof(codes[0]); i++)
		if (strcmp(code, codes[i]) == 0)
			return true;
	return false;
}

int gpup_ctl_cli_call(const char *run_dir, const char *cmd, json_object *req,
		      json_object **reply)
{
	json_object *r = NULL;
	int rc = gpup_ctl_call(run_dir, req, &r);

	json_object_put(req);
	return gpup_ctl_cli_result(run_dir, cmd, rc, r, reply);
}

int gpup_ctl_cli_result(const char *run_dir, const char *cmd, int rc, json_object *r,
			json_object **reply)
{
	json_object *ok;

	if (rc)
		json_object_put(r);
	if (rc == -ENOENT || rc == -ECONNREFUSED) {
		gpup_errc(cmd, gpup_ctl_errno_name(-rc), "no daemon is running in %s (start one "
			  "with 'gpup daemon')", run_dir);
		return GPUP_EXIT_FAIL;
	}
	if (rc) {
		gpup_errc(cmd, gpup_ctl_errno_name(-rc), "talking to the daemon in %s: %s", run_dir,
			  strerror(-rc));
		return GPUP_EXIT_FAIL;
	}
	if (!json_object_object_get_ex(r, GPUP_CTL_F_OK, &ok) || !json_object_get_boolean(ok)) {
		bool usage = usage_code(gpup_ctl_str(r, GPUP_CTL_F_CODE, "EIO"));

		gpup_errc(cmd, gpup_ctl_str(r, GPUP_CTL_F_CODE, "EIO"), "%s",
			  gpup_ctl_str(r, GPUP_CTL_F_ERROR, "the daemon failed"));
		json_object_put(r);
		return usage ? GPUP_EXIT_USAGE : GPUP_EXIT_FAIL;
	}
	*reply = r;
	return GPUP_EXIT_OK;
}

void gpup_ctl_print_json(json_object *reply)
{
	json_object_object_del(reply, GPUP_CTL_F_OK);
	puts(json_object_to_json_string_ext(reply, JSON_C_TO_STRING_PRETTY |
						   JSON_C_TO_STRING_SPACED |
						   JSON_C_TO_STRING_NOSLASHESCAPE));
}
