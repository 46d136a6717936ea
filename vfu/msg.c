// SPDX-License-Identifier: MIT
/*
 * vfio-user framing on a UNIX stream socket: a message is a 16-byte
 * header, a payload and any fds in SCM_RIGHTS ancillary data.  The kernel
 * may split a message across reads and writes; fds travel with the first
 * bytes of a send, so a continued send carries none.  Both ends of the
 * protocol and the fuzzers send and receive only through here.
 */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
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

/* Room for a whole MiB reply in flight: a pipe holds a page per slot
 * whatever is in it, so the default 16 slots would split each reply into
 * sixteen trips.  More than pipe-max-size is refused to an unprivileged
 * process; the default size still works, in more trips. */
#define SPLICE_PIPE_BYTES (1 << 20)

int vfu_splice_pipe(int pipefd[2])
{
	if (pipe2(pipefd, O_CLOEXEC | O_NONBLOCK))
		return -errno;
	(void)fcntl(pipefd[0], F_SETPIPE_SZ, SPLICE_PIPE_BYTES);
	return 0;
}

/* Put what the pipe takes of p (len bytes) into it without blocking: a
 * big piece by reference, a small one copied.  Bytes taken, 0 when the
 * pipe is full, or -errno. */
static ssize_t pipe_fill(int pw, const void *p, size_t len, bool by_ref)
{
	struct iovec v = { (void *)p, len };
	ssize_t n;

	do
		n = by_ref ? vmsplice(pw, &v, 1, SPLICE_F_NONBLOCK) : write(pw, p, len);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return errno == EAGAIN ? 0 : -errno;
	return n;
}

/* Move all n bytes in the pipe to the socket, blocking on the socket as
 * sendmsg does (its SO_SNDTIMEO applies). */
static int pipe_drain(int pr, int sock, size_t n)
{
	while (n) {
		ssize_t k = splice(pr, NULL, sock, NULL, n, SPLICE_F_MOVE);

		if (k < 0 && errno == EINTR)
			continue;
		if (k < 0)
			return sock_errno();
		if (k == 0)
			return -EPIPE;
		n -= (size_t)k;
	}
	return 0;
}

/* What a full pipe gives the socket before it is filled again when the
 * reply may end in the pipe: room for the rest of the reply, not all of
 * the pipe's bytes, so the wait ends as soon as the reader takes that. */
#define SPLICE_STEP (64u << 10)

int vfu_msg_splicev(int sock, const int pipefd[2], const struct vfio_user_header *h,
		    const struct iovec *body, unsigned int nbody, size_t *left)
{
	struct iovec seg[1 + VFU_MAX_IOV];
	unsigned int nseg = 1, i = 0;
	size_t off = 0, held = 0;
	int rc;

	if (nbody > VFU_MAX_IOV)
		return -EINVAL;
	seg[0] = (struct iovec){ (void *)h, sizeof(*h) };
	for (unsigned int k = 0; k < nbody; k++)
		if (body[k].iov_len)
			seg[nseg++] = body[k];
	for (;;) {
		/* Fill the pipe as far as it goes, then empty it into the
		 * socket: the socket's own buffer keeps the reader busy while
		 * the pipe fills again. */
		while (i < nseg) {
			ssize_t n = pipe_fill(pipefd[1], (char *)seg[i].iov_base + off,
					      seg[i].iov_len - off, seg[i].iov_len >= VFU_SPLICE_MIN);

			if (n < 0)
				return (int)n;
			if (n == 0)
				break;
			held += (size_t)n;
			off += (size_t)n;
			if (off == seg[i].iov_len) {
				i++;
				off = 0;
			}
		}
		if (i == nseg && left) {
			*left = held;
			return 0;
		}
		if (!held)
			return -EIO;    /* an empty pipe that takes nothing */
		if (i == nseg || !left) {
			rc = pipe_drain(pipefd[0], sock, held);
			if (rc || i == nseg)
				return rc;
			held = 0;
			continue;
		}
		rc = pipe_drain(pipefd[0], sock, held < SPLICE_STEP ? held : SPLICE_STEP);
		if (rc)
			return rc;
		held -= held < SPLICE_STEP ? held : SPLICE_STEP;
	}
}

int vfu_splice_push(int sock, const int pipefd[2], size_t *left)
{
	while (*left) {
		ssize_t k = splice(pipefd[0], NULL, sock, NULL, *left,
				   SPLICE_F_MOVE | SPLICE_F_NONBLOCK);

		if (k < 0 && errno == EINTR)
			continue;
		if (k < 0)
			return errno == EAGAIN ? 0 : -errno;
		if (k == 0)
			return -EPIPE;
		*left -= (size_t)k;
	}
	return 0;
}

int vfu_splice_flush(int sock, const int pipefd[2], size_t *left)
{
	int rc = pipe_drain(pipefd[0], sock, *left);

	if (!rc)
		*left = 0;
	return rc;
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
