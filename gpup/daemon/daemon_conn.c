// SPDX-License-Identifier: MIT
/*
 * Control connections in the daemon's loop: accepted non-blocking, read as
 * bytes arrive, answered without blocking and closed once the reply is
 * out.  A client that connects and says nothing, or does not read its
 * reply, costs one slot until its deadline, never the loop's time, so
 * partitions keep being served meanwhile.  The number of open connections
 * is capped; a new one past the cap evicts the oldest (the one nearest its
 * deadline), so a client holding many half-requests cannot lock honest
 * ones out: an honest request completes long before it becomes the oldest.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "gpup/ctl/ctl.h"
#include "gpup/daemon/daemon_int.h"

#define CONN_DEADLINE_MS 2000
#define CONN_MAX 32

struct dmn_conn {
	struct dmn_src src;
	int fd;
	struct gpup_ctl_rd rd;
	uint64_t deadline_ms;
	bool denied;              /* another user: answered EPERM */
	char *out;                /* the reply not yet sent, from out_off */
	size_t out_len, out_off;
	struct dmn_conn *next;
};

static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void conn_close(struct gpup_daemon *d, struct dmn_conn *c)
{
	for (struct dmn_conn **pp = &d->conns; *pp; pp = &(*pp)->next) {
		if (*pp == c) {
			*pp = c->next;
			break;
		}
	}
	epoll_ctl(d->epfd, EPOLL_CTL_DEL, c->fd, NULL);
	close(c->fd);
	gpup_ctl_rd_free(&c->rd);
	free(c->out);
	free(c);
	d->nconns--;
}

/* Send what the socket takes now: true once the whole reply is out (or
 * the client is gone: nothing more to do either way). */
static bool flush(struct dmn_conn *c)
{
	while (c->out_off < c->out_len) {
		ssize_t w = send(c->fd, c->out + c->out_off, c->out_len - c->out_off,
				 MSG_NOSIGNAL | MSG_DONTWAIT);

		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0)
			return errno != EAGAIN;
		c->out_off += (size_t)w;
	}
	return true;
}

/* Queue the reply, one JSON line, and send what fits: true when done.
 * Otherwise the loop waits for the socket to drain, within the
 * connection's deadline. */
static bool reply(struct gpup_daemon *d, struct dmn_conn *c, json_object *rep)
{
	const char *s = json_object_to_json_string_ext(rep, JSON_C_TO_STRING_PLAIN |
							      JSON_C_TO_STRING_NOSLASHESCAPE);
	struct epoll_event ev = { .events = EPOLLOUT, .data.ptr = &c->src };
	size_t len = strlen(s);
	bool done;

	c->out = malloc(len + 1);
	if (c->out) {
		memcpy(c->out, s, len);
		c->out[len] = '\n';
		c->out_len = len + 1;
	}
	json_object_put(rep);
	done = !c->out || flush(c);
	if (!done && epoll_ctl(d->epfd, EPOLL_CTL_MOD, c->fd, &ev))
		done = true;
	return done;
}

/* Make room for one more: the oldest connection goes. */
static void evict_oldest(struct gpup_daemon *d)
{
	struct dmn_conn *old = d->conns;

	for (struct dmn_conn *c = d->conns; c; c = c->next)
		if (c->deadline_ms < old->deadline_ms)
			old = c;
	if (old)
		conn_close(d, old);
}

void dmn_conn_accept(struct gpup_daemon *d)
{
	int fd = accept4(d->ctl_fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
	struct epoll_event ev = { .events = EPOLLIN };
	struct dmn_conn *c;

	if (fd < 0)
		return;
	if (d->nconns >= CONN_MAX)
		evict_oldest(d);
	c = calloc(1, sizeof(*c));
	if (!c) {
		close(fd);
		return;
	}
	c->src = (struct dmn_src){ DMN_SRC_CONN, c };
	c->fd = fd;
	/* Refused only after reading the request: closing a socket with
	 * unread data would reset it and lose the reply. */
	c->denied = !dmn_peer_allowed(fd);
	c->deadline_ms = now_ms() + CONN_DEADLINE_MS;
	ev.data.ptr = &c->src;
	if (epoll_ctl(d->epfd, EPOLL_CTL_ADD, fd, &ev)) {
		close(fd);
		free(c);
		return;
	}
	c->next = d->conns;
	d->conns = c;
	d->nconns++;
}

void dmn_conn_ready(struct gpup_daemon *d, struct dmn_conn *c)
{
	json_object *req = NULL, *rep;
	int rc;

	if (c->out) {
		if (flush(c))
			conn_close(d, c);
		return;
	}
	rc = gpup_ctl_rd_feed(&c->rd, c->fd, &req);
	if (rc == 0)
		return;
	if (rc == 1 && c->denied)
		rep = gpup_ctl_fail(EPERM, "only the daemon's user or root may use it");
	else if (rc == 1)
		rep = dmn_ctl_handle(d, req);
	else if (rc != -ECONNRESET)
		rep = gpup_ctl_fail(EPROTO, "bad request: %s", strerror(-rc));
	else
		rep = NULL;
	json_object_put(req);
	if (!rep || reply(d, c, rep))
		conn_close(d, c);
}

int dmn_conn_expire(struct gpup_daemon *d)
{
	uint64_t now = now_ms(), next = UINT64_MAX;
	struct dmn_conn *c = d->conns;

	while (c) {
		struct dmn_conn *n = c->next;

		if (c->deadline_ms <= now)
			conn_close(d, c);
		else if (c->deadline_ms < next)
			next = c->deadline_ms;
		c = n;
	}
	return next == UINT64_MAX ? -1 : (int)(next - now);
}

void dmn_conn_close_all(struct gpup_daemon *d)
{
	while (d->conns)
		conn_close(d, d->conns);
}
