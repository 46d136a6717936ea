/* SPDX-License-Identifier: MIT */
/*
 * The ctl room (gpup/ctl/): the control API's plumbing (protocol in
 * uapi/gpup_ctl.h): newline-framed JSON on a UNIX socket, the reply
 * envelope, errno names, and the client call every CLI command makes.
 */
#ifndef GPUP_CTL_H
#define GPUP_CTL_H

#include <json-c/json.h>
#include <stddef.h>

/* RUN_DIR/gpup.sock: 0 or -ENAMETOOLONG. */
int gpup_ctl_sock_path(const char *run_dir, char *buf, size_t len);

/* One JSON object and a newline; 0 or -errno. */
int gpup_ctl_send(int fd, json_object *o);
/* Read up to a newline (at most GPUP_CTL_MAX_MSG bytes) and parse: 0 and
 * a new object, -EPROTO (not JSON in UTF-8, too long), -ECONNRESET, or
 * -errno. */
int gpup_ctl_recv(int fd, json_object **o);

/* An incremental reader of one request, for non-blocking sockets. */
struct gpup_ctl_rd {
	char *buf;
	size_t len, cap;
};
/* Read what fd has: 1 and *o once the newline came, 0 when it would block,
 * -EPROTO (not a JSON object in UTF-8, or over GPUP_CTL_MAX_MSG),
 * -ECONNRESET on EOF before the newline, or -errno. */
int gpup_ctl_rd_feed(struct gpup_ctl_rd *r, int fd, json_object **o);
void gpup_ctl_rd_free(struct gpup_ctl_rd *r);

/* {"ok":true} to add fields to. */
json_object *gpup_ctl_ok(void);
/* {"ok":false,"error":msg,"code":"EXXX"} for err (a positive errno); what
 * in msg is not UTF-8 becomes '?'. */
json_object *gpup_ctl_fail(int err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
const char *gpup_ctl_errno_name(int err);

/* Send req to the daemon of run_dir and wait for the reply: 0, or -errno
 * (-ENOENT / -ECONNREFUSED: no daemon there). */
int gpup_ctl_call(const char *run_dir, json_object *req, json_object **reply);

/* What CLI commands do: call the daemon of run_dir, and on failure print
 * one line to stderr ("gpup CMD: ...") and return the exit status
 * (gpup/base/base.h); GPUP_EXIT_OK with *reply on success.  Takes req. */
int gpup_ctl_cli_call(const char *run_dir, const char *cmd, json_object *req,
		      json_object **reply);
/* The same for a call already made: rc and r as gpup_ctl_call gave them
 * (r is taken). */
int gpup_ctl_cli_result(const char *run_dir, const char *cmd, int rc, json_object *r,
			json_object **reply);

/* A request object {"method":m,"version":GPUP_CTL_VERSION}. */
json_object *gpup_ctl_request(const char *method);

/* Print a reply for machines: pretty JSON without the "ok" envelope. */
void gpup_ctl_print_json(json_object *reply);

/* Field getters that tolerate absent or mistyped fields. */
const char *gpup_ctl_str(json_object *o, const char *key, const char *dflt);
int64_t gpup_ctl_int(json_object *o, const char *key, int64_t dflt);

#endif
