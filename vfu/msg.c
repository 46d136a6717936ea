// SPDX-License-Identifier: MIT
/*
 * vfio-user framing on a UNIX stream socket: a message is a 16-byte
 * header, a payload and any fds in SCM_RIGHTS ancillary data.  The kernel
 * may split a message across reads and writes; fds travel with the first
 * bytes of a send, so a continued send carries none.  Both ends of the
 * protocol and the fuzzers send and receive only through here.
 */
#include <errno.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "vfu/vfu.h"

union vfu_cmsg {
	char buf[CMSG_SPACE(VFU_MAX_FDS * sizeof(int))];
	struct cmsghdr align;
};

/* A blocked call that ran out of its SO_*TIMEO says EAGAIN. */
static int sock_errno(void)
{
	return errno == EAGAIN ? -ETIMEDOUT : -errno;
}

static void advance(struct msghdr *mh, size_t n)
{
	while (n > 0 && mh->msg_iovlen) {
		size_t k = n < mh->msg_iov->iov_len ? n : mh->msg_iov->iov_len;

		mh->msg_iov->iov_base = (char *)mh->msg_iov->iov_base + k;
		mh->msg_iov->iov_len -= k;
		n -= k;
		if (mh->msg_iov->iov_len == 0) {
			mh->msg_iov++;
			mh->msg_iovlen--;
		}
	}
}

int vfu_msg_sendv(int sock, const struct vfio_user_header *h, const struct iovec *body,
		  unsigned int nbody, const int *fds, unsigned int nfds)
{
	union vfu_cmsg ctl;
	struct iovec iov[1 + VFU_MAX_IOV];
	struct msghdr mh = { .msg_iov = iov, .msg_iovlen = 1 };
	size_t total = sizeof(*h), sent = 0;

	if (nfds > VFU_MAX_FDS || nbody > VFU_MAX_IOV)
		return -EINVAL;
	iov[0] = (struct iovec){ (void *)h, sizeof(*h) };
	for (unsigned int i = 0; i < nbody; i++) {
		if (!body[i].iov_len)
			continue;
		iov[mh.msg_iovlen++] = body[i];
		total += body[i].iov_len;
	}
	if (nfds) {
		struct cmsghdr *c;

		memset(ctl.buf, 0, sizeof(ctl.buf));
		mh.msg_control = ctl.buf;
		mh.msg_controllen = CMSG_SPACE(nfds * sizeof(int));
		c = CMSG_FIRSTHDR(&mh);
		c->cmsg_level = SOL_SOCKET;
		c->cmsg_type = SCM_RIGHTS;
		c->cmsg_len = CMSG_LEN(nfds * sizeof(int));
		memcpy(CMSG_DATA(c), fds, nfds * sizeof(int));
	}
	while (sent < total) {
		ssize_t n = sendmsg(sock, &mh, MSG_NOSIGNAL);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return sock_errno();
		sent += (size_t)n;
		mh.msg_control = NULL;
		mh.msg_controllen = 0;
		advance(&mh, (size_t)n);
	}
	return 0;
}

int vfu_msg_send(int sock, const struct vfio_user_header *h, const void *data,
		 uint32_t len, const int *fds, unsigned int nfds)
{
	struct iovec body = { (void *)data, len };

	return vfu_msg_sendv(sock, h, &body, 1, fds, nfds);
}

/* Keep the fds of one recvmsg in m; those beyond VFU_MAX_FDS are closed
 * at once so a client cannot make us hold more. */
static void take_fds(struct msghdr *mh, struct vfu_msg *m)
{
	for (struct cmsghdr *c = CMSG_FIRSTHDR(mh); c; c = CMSG_NXTHDR(mh, c)) {
		unsigned int n;

		if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
			continue;
		n = (unsigned int)((c->cmsg_len - CMSG_LEN(0)) / sizeof(int));
		for (unsigned int i = 0; i < n; i++) {
			int fd;

			memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof(int));
			if (m->nfds < VFU_MAX_FDS) {
				m->fds[m->nfds++] = fd;
			} else {
				close(fd);
				m->fds_dropped = true;
			}
		}
	}
	if (mh->msg_flags & MSG_CTRUNC)
		m->fds_dropped = true;
}

/* Read exactly len bytes: 0, 1 on EOF before any byte, -ECONNRESET on
 * EOF inside, or -errno. */
static int recv_full(int sock, void *buf, size_t len, struct vfu_msg *m)
{
	union vfu_cmsg ctl;
	size_t got = 0;

	while (got < len) {
		struct iovec iov = { (char *)buf + got, len - got };
		struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1,
				     .msg_control = ctl.buf, .msg_controllen = sizeof(ctl.buf) };
		ssize_t n = recvmsg(sock, &mh, MSG_CMSG_CLOEXEC);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return sock_errno();
		take_fds(&mh, m);
		if (n == 0)
			return got ? -ECONNRESET : 1;
		got += (size_t)n;
	}
	return 0;
}

int vfu_msg_recv_head(int sock, struct vfu_msg *m, uint32_t max)
{
	int rc;

	memset(&m->hdr, 0, sizeof(m->hdr));
	m->data = NULL;
	m->len = 0;
	m->nfds = 0;
	m->fds_dropped = false;
	rc = recv_full(sock, &m->hdr, sizeof(m->hdr), m);
	if (rc)
		return rc;
	if (m->hdr.msg_size < sizeof(m->hdr) || m->hdr.msg_size - sizeof(m->hdr) > max)
		return -EMSGSIZE;
	m->len = m->hdr.msg_size - (uint32_t)sizeof(m->hdr);
	return 0;
}

int vfu_msg_recv_body(int sock, struct vfu_msg *m, void *buf, uint32_t len)
{
	int rc = recv_full(sock, buf, len, m);

	return rc > 0 ? -ECONNRESET : rc;
}

int vfu_msg_recv(int sock, struct vfu_msg *m, void *buf, uint32_t max)
{
	int rc = vfu_msg_recv_head(sock, m, max);

	m->data = buf;
	return rc ? rc : vfu_msg_recv_body(sock, m, buf, m->len);
}

void vfu_msg_close_fds(struct vfu_msg *m)
{
	for (unsigned int i = 0; i < m->nfds; i++)
		if (m->fds[i] >= 0)
			close(m->fds[i]);
	m->nfds = 0;
}

int vfu_sock_set_timeout(int sock, unsigned int ms)
{
	struct timeval tv = { .tv_sec = ms / 1000, .tv_usec = (ms % 1000) * 1000 };

	if (setsockopt(sock, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) < 0 ||
	    setsockopt(sock, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv)) < 0)
		return -errno;
	return 0;
}
