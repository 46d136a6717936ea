// SPDX-License-Identifier: MIT
/*
 * The vfio-user server's transport and dispatch: one thread per connected
 * client reads a message (header, payload, SCM_RIGHTS fds), checks it
 * against the command's entry in the dispatch table, runs the handler and
 * sends the reply.  Migration commands (DEVICE_FEATURE, MIG_DATA_*) get
 * their own entries in the table when they are implemented; until then
 * they, like unknown commands, are answered with ENOSYS.
 *
 * Framing errors the stream cannot recover from (a size below the header
 * or above GPUP_VFU_MAX_MSG, EOF inside a message) get an error reply
 * where one can still be sent, then the connection is closed.  Everything
 * else gets the protocol's error reply and the connection goes on.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "gpup/vgpu/vgpu_int.h"

/* A client sending garbage in a loop must not flood the daemon's log. */
#define VFU_LOGGED_ERRORS 10u

static const struct vfu_handler handlers[VFIO_USER_MAX] = {
	[VFIO_USER_VERSION] = { vfu_h_version, sizeof(struct vfio_user_version), false },
	[VFIO_USER_DMA_MAP] = { vfu_h_dma_map, sizeof(struct vfio_user_dma_map), true },
	[VFIO_USER_DMA_UNMAP] = { vfu_h_dma_unmap, sizeof(struct vfio_user_dma_unmap), false },
	[VFIO_USER_DEVICE_GET_INFO] = { vfu_h_device_info,
					sizeof(struct vfio_user_device_info), false },
	[VFIO_USER_DEVICE_GET_REGION_INFO] = { vfu_h_region_info,
					       sizeof(struct vfio_region_info), false },
	[VFIO_USER_DEVICE_GET_REGION_IO_FDS] = { vfu_h_region_io_fds,
						 sizeof(struct vfio_user_region_io_fds), false },
	[VFIO_USER_DEVICE_GET_IRQ_INFO] = { vfu_h_irq_info, sizeof(struct vfio_irq_info), false },
	[VFIO_USER_DEVICE_SET_IRQS] = { vfu_h_set_irqs, sizeof(struct vfio_irq_set), true },
	[VFIO_USER_REGION_READ] = { vfu_h_region_read,
				    sizeof(struct vfio_user_region_access), false },
	[VFIO_USER_REGION_WRITE] = { vfu_h_region_write,
				     sizeof(struct vfio_user_region_access), false },
	[VFIO_USER_DEVICE_RESET] = { vfu_h_reset, 0, false },
};

static void close_fds(int *fds, unsigned int n)
{
	for (unsigned int i = 0; i < n; i++)
		if (fds[i] >= 0)
			close(fds[i]);
}

static void take_cmsg_fds(struct msghdr *mh, struct vfu_msg *m)
{
	for (struct cmsghdr *c = CMSG_FIRSTHDR(mh); c; c = CMSG_NXTHDR(mh, c)) {
		unsigned int n;

		if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
			continue;
		n = (unsigned int)((c->cmsg_len - CMSG_LEN(0)) / sizeof(int));
		for (unsigned int i = 0; i < n; i++) {
			int fd;

			memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof(int));
			if (m->nfds < GPUP_VFU_MAX_FDS)
				m->fds[m->nfds++] = fd;
			else
				close(fd);
		}
	}
}

/* Read exactly len bytes, collecting fds.  1: EOF before any byte,
 * 0: done, -ECONNRESET: EOF inside, -E2BIG: fds were truncated. */
static int read_full(int sock, void *buf, size_t len, struct vfu_msg *m, bool *ctrunc)
{
	union {
		char buf[CMSG_SPACE(GPUP_VFU_MAX_FDS * sizeof(int))];
		struct cmsghdr align;
	} ctl;
	size_t got = 0;

	while (got < len) {
		struct iovec iov = { (char *)buf + got, len - got };
		struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1,
				     .msg_control = ctl.buf, .msg_controllen = sizeof(ctl.buf) };
		ssize_t n = recvmsg(sock, &mh, MSG_CMSG_CLOEXEC);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		take_cmsg_fds(&mh, m);
		if (mh.msg_flags & MSG_CTRUNC)
			*ctrunc = true;
		if (n == 0)
			return got ? -ECONNRESET : 1;
		got += (size_t)n;
	}
	return 0;
}

static int send_msg(int sock, const struct vfio_user_header *h, const void *data,
		    uint32_t len, const int *fds, unsigned int nfds)
{
	union {
		char buf[CMSG_SPACE(GPUP_VFU_MAX_FDS * sizeof(int))];
		struct cmsghdr align;
	} ctl;
	struct iovec iov[2] = { { (void *)h, sizeof(*h) }, { (void *)data, len } };
	struct msghdr mh = { .msg_iov = iov, .msg_iovlen = len ? 2 : 1 };
	size_t total = sizeof(*h) + len, sent = 0;

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
			return -errno;
		sent += (size_t)n;
		/* The rest (rare: a full socket buffer) goes without fds. */
		mh.msg_control = NULL;
		mh.msg_controllen = 0;
		while (n > 0 && mh.msg_iovlen) {
			size_t k = (size_t)n < mh.msg_iov->iov_len ? (size_t)n : mh.msg_iov->iov_len;

			mh.msg_iov->iov_base = (char *)mh.msg_iov->iov_base + k;
			mh.msg_iov->iov_len -= k;
			n -= (ssize_t)k;
			if (mh.msg_iov->iov_len == 0) {
				mh.msg_iov++;
				mh.msg_iovlen--;
			}
		}
	}
	return 0;
}

static int send_reply(int sock, const struct vfio_user_header *req, int err,
		      const struct vfu_reply *r)
{
	struct vfio_user_header h = {
		.msg_id = req->msg_id,
		.command = req->command,
		.msg_size = (uint32_t)sizeof(h) + (err ? 0 : r->len),
		.flags = VFIO_USER_F_TYPE_REPLY | (err ? VFIO_USER_F_ERROR : 0),
		.error_no = (uint32_t)err,
	};

	if (err)
		return send_msg(sock, &h, NULL, 0, NULL, 0);
	return send_msg(sock, &h, r->data, r->len, r->fds, r->nfds);
}

/* Check a message against its table entry and run it: 0 or -errno. */
static int dispatch(struct gpup_vfu *s, struct vfu_msg *m, struct vfu_reply *r)
{
	uint16_t cmd = m->hdr.command;
	const struct vfu_handler *h = cmd < VFIO_USER_MAX ? &handlers[cmd] : NULL;

	if ((m->hdr.flags & VFIO_USER_F_TYPE_MASK) != VFIO_USER_F_TYPE_COMMAND)
		return -EINVAL;
	if (!h || !h->fn)
		return -ENOSYS;
	if (!s->negotiated && cmd != VFIO_USER_VERSION)
		return -EINVAL;
	if (s->negotiated && cmd == VFIO_USER_VERSION)
		return -EINVAL;
	if (m->len < h->min_len)
		return -EINVAL;
	if (m->nfds && !h->takes_fds)
		return -EINVAL;
	return h->fn(s, m, r);
}

/* Receive one message into m: 0, 1 on a clean EOF, or -errno when the
 * connection must be closed (after an error reply if *reply_err is set). */
static int recv_one(struct gpup_vfu *s, int sock, struct vfu_msg *m, int *reply_err)
{
	bool ctrunc = false;
	int rc;

	memset(&m->hdr, 0, sizeof(m->hdr));
	m->nfds = 0;
	rc = read_full(sock, &m->hdr, sizeof(m->hdr), m, &ctrunc);
	if (rc)
		return rc;
	if (m->hdr.msg_size < sizeof(m->hdr) || m->hdr.msg_size > GPUP_VFU_MAX_MSG) {
		vfu_log(s, "message size %u out of range, closing", m->hdr.msg_size);
		*reply_err = m->hdr.msg_size < sizeof(m->hdr) ? EINVAL : E2BIG;
		return -EPROTO;
	}
	m->len = m->hdr.msg_size - (uint32_t)sizeof(m->hdr);
	m->data = s->inbuf;
	rc = read_full(sock, m->data, m->len, m, &ctrunc);
	if (rc)
		return rc > 0 ? -ECONNRESET : rc;
	if (ctrunc)
		*reply_err = EINVAL; /* more fds than we take: refuse the command */
	return 0;
}

static int serve_one(struct gpup_vfu *s, int sock)
{
	struct vfu_msg m;
	struct vfu_reply r = { .data = s->outbuf };
	int reply_err = 0, rc;

	rc = recv_one(s, sock, &m, &reply_err);
	if (rc) {
		close_fds(m.fds, m.nfds);
		if (rc < 0 && reply_err)
			send_reply(sock, &m.hdr, reply_err, &r);
		return rc;
	}
	rc = reply_err ? -reply_err : dispatch(s, &m, &r);
	close_fds(m.fds, m.nfds);
	if (rc && s->nerrors++ < VFU_LOGGED_ERRORS)
		vfu_log(s, "command %u failed: %s%s", m.hdr.command, strerror(-rc),
			s->nerrors == VFU_LOGGED_ERRORS ? " (further failures not logged)" : "");
	if (!(m.hdr.flags & VFIO_USER_F_NO_REPLY) && send_reply(sock, &m.hdr, -rc, &r))
		return -EPIPE;
	/* Until a VERSION succeeds there is nothing else to talk about. */
	return s->negotiated ? 0 : -EPROTO;
}

static void conn_reset(struct gpup_vfu *s)
{
	vfu_dma_unmap_all(s);
	vfu_irqs_release(s);
	s->negotiated = false;
	s->nerrors = 0;
	s->peer_max_fds = VFIO_USER_DEFAULT_MAX_FDS;
	s->peer_max_xfer = VFIO_USER_DEFAULT_MAX_XFER;
}

/* The connection is over: clean up, then serve a client that connected
 * meanwhile (returns true) or mark the partition free. */
static bool conn_finish(struct gpup_vfu *s, int rc)
{
	bool more;

	pthread_mutex_lock(&s->lock);
	s->closing = true;
	pthread_mutex_unlock(&s->lock);
	vfu_log(s, "client disconnected%s", rc == 1 ? "" : " (protocol error)");
	conn_reset(s);
	pthread_mutex_lock(&s->lock);
	close(s->conn_fd);
	s->conn_fd = s->pending_fd;
	s->pending_fd = -1;
	s->closing = false;
	more = s->conn_fd >= 0;
	pthread_mutex_unlock(&s->lock);
	return more;
}

static void *conn_thread(void *arg)
{
	struct gpup_vfu *s = arg;
	int sock, rc;

	do {
		pthread_mutex_lock(&s->lock);
		sock = s->conn_fd;
		pthread_mutex_unlock(&s->lock);
		vfu_log(s, "client connected");
		do
			rc = serve_one(s, sock);
		while (rc == 0);
	} while (conn_finish(s, rc));
	return NULL;
}

struct gpup_vfu *gpup_vfu_create(const struct gpup_vfu_cfg *cfg)
{
	struct gpup_vfu *s = calloc(1, sizeof(*s));

	if (!s)
		return NULL;
	s->cfg = *cfg;
	s->inbuf = malloc(GPUP_VFU_MAX_MSG);
	s->outbuf = malloc(GPUP_VFU_MAX_MSG);
	s->dma = calloc(GPUP_VFU_MAX_DMA_MAPS, sizeof(*s->dma));
	if (!s->inbuf || !s->outbuf || !s->dma) {
		free(s->inbuf);
		free(s->outbuf);
		free(s->dma);
		free(s);
		errno = ENOMEM;
		return NULL;
	}
	pthread_mutex_init(&s->lock, NULL);
	s->conn_fd = -1;
	s->pending_fd = -1;
	for (unsigned int i = 0; i < GPUP_MSIX_VECTORS; i++)
		s->irq_fds[i] = -1;
	gpup_pci_cfg_init(&s->pci, cfg->vram_size);
	conn_reset(s);
	return s;
}

/* Join a thread whose client has gone; the lock is held. */
static void reap_locked(struct gpup_vfu *s)
{
	if (s->thread_live && s->conn_fd < 0) {
		pthread_join(s->thread, NULL);
		s->thread_live = false;
	}
}

int gpup_vfu_attach(struct gpup_vfu *s, int fd)
{
	int rc = 0;

	pthread_mutex_lock(&s->lock);
	reap_locked(s);
	if (s->thread_live && s->closing && s->pending_fd < 0) {
		/* The last client just left: this one is served as soon as
		 * its DMA is unmapped, by the same thread. */
		s->pending_fd = fd;
		fd = -1;
	} else if (s->thread_live) {
		rc = -EBUSY;
	} else {
		s->conn_fd = fd;
		rc = -pthread_create(&s->thread, NULL, conn_thread, s);
		s->thread_live = rc == 0;
		if (rc)
			s->conn_fd = -1;
	}
	pthread_mutex_unlock(&s->lock);
	if (rc && fd >= 0)
		close(fd);
	return rc;
}

bool gpup_vfu_connected(struct gpup_vfu *s)
{
	bool c;

	pthread_mutex_lock(&s->lock);
	c = s->conn_fd >= 0 && !s->closing;
	pthread_mutex_unlock(&s->lock);
	return c;
}

void gpup_vfu_destroy(struct gpup_vfu *s)
{
	bool live;

	if (!s)
		return;
	pthread_mutex_lock(&s->lock);
	/* Wakes the thread's recvmsg; it cleans up and closes the fd. */
	if (s->conn_fd >= 0)
		shutdown(s->conn_fd, SHUT_RDWR);
	if (s->pending_fd >= 0) {
		close(s->pending_fd);
		s->pending_fd = -1;
	}
	live = s->thread_live;
	pthread_mutex_unlock(&s->lock);
	if (live)
		pthread_join(s->thread, NULL);
	conn_reset(s);
	pthread_mutex_destroy(&s->lock);
	free(s->inbuf);
	free(s->outbuf);
	free(s->dma);
	free(s);
}
