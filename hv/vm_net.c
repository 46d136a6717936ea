// SPDX-License-Identifier: MIT
/*
 * TCP for migration: "tcp:HOST:PORT" parsed, connected (bounded in time)
 * or listened on, and whole buffers sent or received with a deadline, so
 * that a peer that goes silent ends a migration instead of hanging it.
 */
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "hv/hv_int.h"

/* "tcp:HOST:PORT" (HOST may be [v6]): 0, or -EINVAL. */
static int hv_tcp_split(const char *addr, char *host, size_t hlen, char *port, size_t plen)
{
	const char *h, *colon;
	size_t n;

	if (strncmp(addr, "tcp:", 4))
		return -EINVAL;
	h = addr + 4;
	colon = strrchr(h, ':');
	if (!colon || colon == h || !colon[1] || strlen(colon + 1) >= plen)
		return -EINVAL;
	n = (size_t)(colon - h);
	if (h[0] == '[' && n >= 2 && h[n - 1] == ']') {
		h++;
		n -= 2;
	}
	if (n >= hlen)
		return -EINVAL;
	memcpy(host, h, n);
	host[n] = 0;
	strcpy(port, colon + 1);
	return 0;
}

static int hv_tcp_resolve(const char *addr, bool passive, struct addrinfo **ai)
{
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM,
				  .ai_flags = passive ? AI_PASSIVE : 0 };
	char host[256], port[16];

	if (hv_tcp_split(addr, host, sizeof(host), port, sizeof(port)) < 0)
		return -EINVAL;
	return getaddrinfo(host, port, &hints, ai) ? -EHOSTUNREACH : 0;
}

int hv_tcp_check(const char *addr)
{
	char host[256], port[16];

	return hv_tcp_split(addr, host, sizeof(host), port, sizeof(port));
}

static void hv_tcp_tune(int fd)
{
	int one = 1, buf = 4 << 20;

	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &buf, sizeof(buf));
	setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &buf, sizeof(buf));
}

int hv_tcp_connect(const char *addr, unsigned int ms)
{
	struct addrinfo *ai;
	struct pollfd p;
	int fd, rc = hv_tcp_resolve(addr, false, &ai), err = 0;
	socklen_t len = sizeof(err);

	if (rc < 0)
		return rc;
	fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0) {
		freeaddrinfo(ai);
		return -errno;
	}
	hv_tcp_tune(fd);
	rc = connect(fd, ai->ai_addr, ai->ai_addrlen);
	freeaddrinfo(ai);
	if (rc < 0 && errno != EINPROGRESS) {
		rc = -errno;
		close(fd);
		return rc;
	}
	p = (struct pollfd){ .fd = fd, .events = POLLOUT };
	if (poll(&p, 1, (int)ms) != 1 || getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0 ||
	    err) {
		close(fd);
		return err ? -err : -ETIMEDOUT;
	}
	return fd;
}

int hv_tcp_listen(const char *addr)
{
	struct addrinfo *ai;
	int fd, one = 1, rc = hv_tcp_resolve(addr, true, &ai);

	if (rc < 0)
		return rc;
	fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		freeaddrinfo(ai);
		return -errno;
	}
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	rc = bind(fd, ai->ai_addr, ai->ai_addrlen) < 0 || listen(fd, 1) < 0 ? -errno : 0;
	freeaddrinfo(ai);
	if (rc < 0) {
		close(fd);
		return rc;
	}
	return fd;
}

void hv_tcp_accepted(int fd)
{
	hv_tcp_tune(fd);
	fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
}

/* The socket is non-blocking: wait for it at most ms each time. */
int hv_tcp_send(int fd, const void *buf, size_t len, unsigned int ms)
{
	const uint8_t *p = buf;

	while (len) {
		struct pollfd pf = { .fd = fd, .events = POLLOUT };
		ssize_t n = send(fd, p, len, MSG_NOSIGNAL);

		if (n > 0) {
			p += n;
			len -= (size_t)n;
			continue;
		}
		if (n < 0 && errno != EAGAIN && errno != EINTR)
			return -errno;
		if (poll(&pf, 1, (int)ms) == 0)
			return -ETIMEDOUT;
	}
	return 0;
}

/* Up to len bytes, at least one: how many, 0 at the end, or -errno. */
ssize_t hv_tcp_recv_some(int fd, void *buf, size_t len, unsigned int ms)
{
	for (;;) {
		struct pollfd pf = { .fd = fd, .events = POLLIN };
		ssize_t n = recv(fd, buf, len, 0);

		if (n >= 0)
			return n;
		if (errno != EAGAIN && errno != EINTR)
			return -errno;
		if (poll(&pf, 1, (int)ms) == 0)
			return -ETIMEDOUT;
	}
}

int hv_tcp_recv(int fd, void *buf, size_t len, unsigned int ms)
{
	uint8_t *p = buf;

	while (len) {
		ssize_t n = hv_tcp_recv_some(fd, p, len, ms);

		if (n <= 0)
			return n ? (int)n : -ECONNRESET;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}
