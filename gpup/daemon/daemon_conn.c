// SPDX-License-Identifier: MIT
/*
 * Control connections in the daemon's loop: accepted non-blocking, read as
 * bytes arrive, answered and closed once a whole request is in.  A client
 * that connects and says nothing costs one slot until its deadline, never
 * the loop's time, so partitions keep being served meanwhile.  The number
 * of open connections is capped; past it, new ones are closed at once.
 */
#include <errno.h>
#include <fcntl.h>
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
#define REPLY_SEND_TIMEOUT_S 2

struct dmn_conn {
	struct dmn_src src;
	int fd;
	struct gpup_ctl_rd rd;
	uint64_t deadline_ms;
	bool denied;              /* another user: answered EPERM */
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
	free(c);
	d->nconns--;
}

/* Replies are small; send them blocking, with a timeout for a client
 * that does not read. */
static void reply(int fd, json_object *rep)
{
	struct timeval tv = { REPLY_SEND_TIMEOUT_S, 0 };

	fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK);
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	gpup_ctl_send(fd, rep);
	json_object_put(rep);
}

void dmn_conn_accept(struct gpup_daemon *d)
{
	int fd = accept4(d->ctl_fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
	struct epoll_event ev = { .events = EPOLLIN };
	struct dmn_conn *c;

	if (fd < 0)
		return;
	c = d->nconns < CONN_MAX ? calloc(1, sizeof(*c)) : NULL;
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
	json_object *req = NULL;
	int rc = gpup_ctl_rd_feed(&c->rd, c->fd, &req);

	if (rc == 0)
		return;
	if (rc == 1 && c->denied)
		reply(c->fd, gpup_ctl_fail(EPERM, "only the daemon's user or root may use it"));
	else if (rc == 1)
		reply(c->fd, dmn_ctl_handle(d, req));
	else if (rc != -ECONNRESET)
		reply(c->fd, gpup_ctl_fail(EPROTO, "bad request: %s", strerror(-rc)));
	json_object_put(req);
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
