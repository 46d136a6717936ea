// SPDX-License-Identifier: MIT
/*
 * The vfio-user client (see vfu.h): version negotiation and one function
 * per command, each checking that the reply has the size the protocol
 * gives it before trusting a field.  Replies are matched by msg_id.  The
 * server's own commands (DMA_READ / DMA_WRITE into windows mapped without
 * an fd) may come between a request and its reply, as the spec allows:
 * they are answered from the window's memory on the spot, then the wait
 * goes on; vfu_client_serve answers them between calls.  A reply nobody
 * waits for is a protocol error.  Framing is msg.c's, the capability JSON
 * caps.c's.
 */
#include <errno.h>
#include <poll.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "vfu/vfu.h"

#define CLIENT_MAX_XFER (1u << 20)
#define REPLY_SLACK 256u

/* Client memory the server reaches with DMA_READ / DMA_WRITE. */
struct client_mem {
	uint64_t iova, size;
	uint8_t *host;
	uint32_t prot;       /* VFIO_USER_DMA_F_* */
};

struct vfu_client {
	int sock;
	bool broken;         /* a send or receive failed: out of step for good */
	uint16_t next_id;
	struct vfu_caps server;
	uint8_t *buf;        /* reply scratch, CLIENT_MAX_XFER + slack */
	uint8_t *wbuf;       /* REGION_WRITE messages and DMA replies, as large */
	struct client_mem mem[VFU_CLIENT_MAX_MEM];
	unsigned int nmem;
};

int vfu_client_socket(const struct vfu_client *c)
{
	return c->sock;
}

uint32_t vfu_client_max_xfer(const struct vfu_client *c)
{
	return c->server.max_xfer;
}

uint32_t vfu_client_max_fds(const struct vfu_client *c)
{
	return c->server.max_fds;
}

/* The window holding all of [addr, addr + count) with prot, or NULL. */
static const struct client_mem *mem_find(const struct vfu_client *c, uint64_t addr,
					 uint64_t count, uint32_t prot)
{
	for (unsigned int i = 0; i < c->nmem; i++) {
		const struct client_mem *w = &c->mem[i];

		if (addr >= w->iova && addr - w->iova < w->size &&
		    count <= w->size - (addr - w->iova) && (w->prot & prot) == prot)
			return w;
	}
	return NULL;
}

/* Answer one command of the server's (m, in c->buf): DMA_READ and
 * DMA_WRITE inside a window, anything else refused.  The reply is built
 * in c->wbuf, which no request needs once it is sent.  0 or -errno of
 * the send. */
static int serve_cmd(struct vfu_client *c, const struct vfu_msg *m)
{
	const struct vfio_user_dma_rw *in = (const void *)m->data;
	struct vfio_user_dma_rw *out = (void *)c->wbuf;
	struct vfio_user_header h = { .msg_id = m->hdr.msg_id, .command = m->hdr.command,
				      .flags = VFIO_USER_F_TYPE_REPLY };
	bool rd = m->hdr.command == VFIO_USER_DMA_READ;
	const struct client_mem *w = NULL;
	uint32_t len = 0;
	uint32_t err = 0;

	if (!rd && m->hdr.command != VFIO_USER_DMA_WRITE)
		err = ENOSYS;
	else if (m->nfds || m->len < sizeof(*in) || in->count == 0 ||
		 in->count > CLIENT_MAX_XFER || m->len != sizeof(*in) + (rd ? 0 : in->count))
		err = EINVAL;
	else if (!(w = mem_find(c, in->addr, in->count,
				rd ? VFIO_USER_DMA_F_READ : VFIO_USER_DMA_F_WRITE)))
		err = EFAULT;
	if (!err) {
		uint8_t *p = w->host + (in->addr - w->iova);

		out->addr = in->addr;
		out->count = in->count;
		if (rd)
			memcpy(out->data, p, in->count);
		else
			memcpy(p, in->data, in->count);
		len = (uint32_t)sizeof(*out) + (rd ? (uint32_t)in->count : 0);
	}
	if (m->hdr.flags & VFIO_USER_F_NO_REPLY)
		return 0;
	h.msg_size = (uint32_t)sizeof(h) + len;
	if (err) {
		h.flags |= VFIO_USER_F_ERROR;
		h.error_no = err;
	}
	return vfu_msg_send(c->sock, &h, out, len, NULL, 0);
}

static bool is_command(const struct vfu_msg *m)
{
	return (m->hdr.flags & VFIO_USER_F_TYPE_MASK) == VFIO_USER_F_TYPE_COMMAND;
}

/* Receive the reply to `id` into c->buf: its payload length or -errno.
 * At most max fds are kept in rfds (*nrfds counts them), the rest closed.
 * The server's commands that come first are answered on the way. */
static int recv_reply(struct vfu_client *c, uint16_t id, uint16_t cmd, int *rfds,
		      unsigned int *nrfds, unsigned int max)
{
	struct vfu_msg m;
	int rc;

	c->broken = true; /* until a whole reply has arrived */
	for (;;) {
		rc = vfu_msg_recv(c->sock, &m, c->buf, CLIENT_MAX_XFER + REPLY_SLACK);
		if (rc || !is_command(&m))
			break;
		rc = serve_cmd(c, &m);
		vfu_msg_close_fds(&m);
		if (rc)
			return rc;
	}
	for (unsigned int i = 0; i < m.nfds; i++) {
		if (rc == 0 && *nrfds < max)
			rfds[(*nrfds)++] = m.fds[i];
		else
			close(m.fds[i]);
	}
	if (rc)
		return rc == 1 ? -ECONNRESET : rc == -EMSGSIZE ? -EPROTO : rc;
	if ((m.hdr.flags & VFIO_USER_F_TYPE_MASK) != VFIO_USER_F_TYPE_REPLY ||
	    m.hdr.msg_id != id || m.hdr.command != cmd)
		return -EPROTO;
	c->broken = false;
	if (m.hdr.flags & VFIO_USER_F_ERROR)
		return m.hdr.error_no ? -(int)m.hdr.error_no : -EIO;
	return (int)m.len;
}

static void close_all(int *fds, unsigned int n)
{
	for (unsigned int i = 0; i < n; i++)
		close(fds[i]);
}

/* A command whose payload is the pieces of req (nreq of them, req_len
 * bytes in all), sent without gathering them first. */
static int call_v(struct vfu_client *c, uint16_t cmd, const struct iovec *req, unsigned int nreq,
		  uint32_t req_len, const int *fds, unsigned int nfds, void *reply,
		  uint32_t reply_max, int *rfds, unsigned int *nrfds)
{
	struct vfio_user_header h = {
		.msg_id = c->next_id++,
		.command = cmd,
		.msg_size = (uint32_t)sizeof(h) + req_len,
		.flags = VFIO_USER_F_TYPE_COMMAND,
	};
	unsigned int max = nrfds ? *nrfds : 0, got = 0;
	int rc;

	if (nrfds)
		*nrfds = 0;
	/* After a timeout a late reply may still come: nothing that follows
	 * could be matched to its request, so the connection is done. */
	if (c->broken)
		return -ENOTCONN;
	if (nfds > VFU_MAX_FDS)
		return -EINVAL;
	rc = vfu_msg_sendv(c->sock, &h, req, nreq, fds, nfds);
	if (rc) {
		c->broken = true;
		return rc;
	}
	rc = recv_reply(c, h.msg_id, cmd, rfds, &got, max);
	if (rc < 0) {
		close_all(rfds, got);
		got = 0;
	} else if (reply) {
		memcpy(reply, c->buf, (uint32_t)rc < reply_max ? (uint32_t)rc : reply_max);
	}
	if (nrfds)
		*nrfds = got;
	return rc;
}

int vfu_client_call(struct vfu_client *c, uint16_t cmd, const void *req, uint32_t req_len,
		    const int *fds, unsigned int nfds, void *reply, uint32_t reply_max,
		    int *rfds, unsigned int *nrfds)
{
	struct iovec v = { (void *)req, req_len };

	return call_v(c, cmd, &v, 1, req_len, fds, nfds, reply, reply_max, rfds, nrfds);
}

static int negotiate(struct vfu_client *c)
{
	struct vfu_caps ours = { .max_fds = VFU_MAX_FDS, .max_xfer = CLIENT_MAX_XFER };
	uint16_t major, minor;
	char req[256];
	int n, rc;

	n = vfu_version_encode(req, sizeof(req), VFIO_USER_MAJOR, VFIO_USER_MINOR, &ours);
	if (n < 0)
		return n;
	rc = vfu_client_call(c, VFIO_USER_VERSION, req, (uint32_t)n, NULL, 0, NULL, 0, NULL,
			     NULL);
	if (rc < 0)
		return rc;
	if (vfu_version_decode(c->buf, (uint32_t)rc, &major, &minor, &c->server) ||
	    major != VFIO_USER_MAJOR || minor > VFIO_USER_MINOR)
		return -EPROTO;
	if (c->server.max_xfer > CLIENT_MAX_XFER)
		c->server.max_xfer = CLIENT_MAX_XFER;
	return 0;
}

struct vfu_client *vfu_client_open_fd(int sock, int *err)
{
	struct vfu_client *c = calloc(1, sizeof(*c));
	int rc;

	if (c) {
		c->buf = malloc(CLIENT_MAX_XFER + REPLY_SLACK);
		c->wbuf = malloc(CLIENT_MAX_XFER + REPLY_SLACK);
	}
	if (!c || !c->buf || !c->wbuf) {
		if (c) {
			free(c->buf);
			free(c->wbuf);
		}
		free(c);
		close(sock);
		*err = -ENOMEM;
		return NULL;
	}
	c->sock = sock;
	vfu_caps_default(&c->server);
	rc = negotiate(c);
	if (rc) {
		vfu_client_close(c);
		*err = rc;
		return NULL;
	}
	return c;
}

struct vfu_client *vfu_client_connect(const char *path, int *err)
{
	return vfu_client_connect_timeout(path, 0, err);
}

struct vfu_client *vfu_client_connect_timeout(const char *path, unsigned int ms, int *err)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int sock;

	if (strlen(path) >= sizeof(sa.sun_path)) {
		*err = -ENAMETOOLONG;
		return NULL;
	}
	strcpy(sa.sun_path, path);
	sock = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (sock < 0) {
		*err = -errno;
		return NULL;
	}
	*err = connect(sock, (struct sockaddr *)&sa, sizeof(sa)) < 0
		       ? -errno
		       : vfu_sock_set_timeout(sock, ms);
	if (*err < 0) {
		close(sock);
		return NULL;
	}
	return vfu_client_open_fd(sock, err);
}

int vfu_client_set_timeout(struct vfu_client *c, unsigned int ms)
{
	return vfu_sock_set_timeout(c->sock, ms);
}

bool vfu_client_broken(const struct vfu_client *c)
{
	return c->broken;
}

void vfu_client_close(struct vfu_client *c)
{
	if (!c)
		return;
	close(c->sock);
	free(c->buf);
	free(c->wbuf);
	free(c);
}

int vfu_client_dma_map(struct vfu_client *c, int fd, uint64_t fd_offset, uint64_t iova,
		   uint64_t size, uint32_t prot)
{
	struct vfio_user_dma_map m = {
		.argsz = sizeof(m), .flags = prot, .offset = fd_offset,
		.addr = iova, .size = size,
	};
	int rc = vfu_client_call(c, VFIO_USER_DMA_MAP, &m, sizeof(m), &fd, 1, NULL, 0, NULL, NULL);

	return rc < 0 ? rc : 0;
}

/* Forget the window [iova, iova + size) if it is one of ours. */
static void mem_forget(struct vfu_client *c, uint64_t iova, uint64_t size)
{
	for (unsigned int i = 0; i < c->nmem; i++)
		if (c->mem[i].iova == iova && c->mem[i].size == size) {
			c->mem[i] = c->mem[--c->nmem];
			return;
		}
}

/* Known before DMA_MAP is sent: the server may read the window before its
 * reply comes; forgotten only after DMA_UNMAP's reply, which comes once
 * the server no longer uses it. */
int vfu_client_dma_map_mem(struct vfu_client *c, void *host, uint64_t iova, uint64_t size,
			   uint32_t prot)
{
	struct vfio_user_dma_map m = {
		.argsz = sizeof(m), .flags = prot, .addr = iova, .size = size,
	};
	int rc;

	if (!host || !size || iova + size < iova ||
	    (prot & ~(uint32_t)(VFIO_USER_DMA_F_READ | VFIO_USER_DMA_F_WRITE)))
		return -EINVAL;
	if (c->nmem >= VFU_CLIENT_MAX_MEM)
		return -ENOSPC;
	c->mem[c->nmem++] = (struct client_mem){ iova, size, host, prot };
	rc = vfu_client_call(c, VFIO_USER_DMA_MAP, &m, sizeof(m), NULL, 0, NULL, 0, NULL, NULL);
	if (rc < 0)
		mem_forget(c, iova, size);
	return rc < 0 ? rc : 0;
}

int vfu_client_dma_unmap(struct vfu_client *c, uint64_t iova, uint64_t size)
{
	struct vfio_user_dma_unmap u = { .argsz = sizeof(u), .addr = iova, .size = size };
	int rc = vfu_client_call(c, VFIO_USER_DMA_UNMAP, &u, sizeof(u), NULL, 0, NULL, 0, NULL, NULL);

	if (rc >= 0)
		mem_forget(c, iova, size);
	return rc < 0 ? rc : 0;
}

int vfu_client_serve(struct vfu_client *c)
{
	struct pollfd p = { .fd = c->sock, .events = POLLIN };
	struct vfu_msg m;
	int n = 0, rc;

	if (c->broken)
		return -ENOTCONN;
	while (poll(&p, 1, 0) == 1) {
		c->broken = true;
		rc = vfu_msg_recv(c->sock, &m, c->buf, CLIENT_MAX_XFER + REPLY_SLACK);
		if (rc) {
			vfu_msg_close_fds(&m);
			return rc == 1 ? -ECONNRESET : rc == -EMSGSIZE ? -EPROTO : rc;
		}
		rc = is_command(&m) ? serve_cmd(c, &m) : -EPROTO;
		vfu_msg_close_fds(&m);
		if (rc)
			return rc;
		c->broken = false;
		n++;
	}
	return n;
}

int vfu_client_device_info(struct vfu_client *c, struct vfio_user_device_info *info)
{
	struct vfio_user_device_info req = { .argsz = sizeof(req) };
	int rc = vfu_client_call(c, VFIO_USER_DEVICE_GET_INFO, &req, sizeof(req), NULL, 0, info,
			     sizeof(*info), NULL, NULL);

	if (rc >= 0 && (size_t)rc < sizeof(*info))
		return -EPROTO;
	return rc < 0 ? rc : 0;
}

int vfu_client_region_info(struct vfu_client *c, uint32_t index, struct vfio_region_info *info,
		       int *fd)
{
	struct vfio_region_info req = { .argsz = sizeof(req), .index = index };
	int fds[VFU_MAX_FDS];
	unsigned int nfds = VFU_MAX_FDS;
	int rc = vfu_client_call(c, VFIO_USER_DEVICE_GET_REGION_INFO, &req, sizeof(req), NULL, 0,
			     info, sizeof(*info), fds, &nfds);

	*fd = -1;
	if (rc < 0)
		return rc;
	if ((size_t)rc < sizeof(*info) || nfds > 1 ||
	    !!(info->flags & VFIO_REGION_INFO_FLAG_MMAP) != (nfds == 1)) {
		for (unsigned int i = 0; i < nfds; i++)
			close(fds[i]);
		return -EPROTO;
	}
	if (nfds)
		*fd = fds[0];
	return 0;
}

int vfu_client_irq_info(struct vfu_client *c, uint32_t index, struct vfio_irq_info *info)
{
	struct vfio_irq_info req = { .argsz = sizeof(req), .index = index };
	int rc = vfu_client_call(c, VFIO_USER_DEVICE_GET_IRQ_INFO, &req, sizeof(req), NULL, 0, info,
			     sizeof(*info), NULL, NULL);

	if (rc >= 0 && (size_t)rc < sizeof(*info))
		return -EPROTO;
	return rc < 0 ? rc : 0;
}

int vfu_client_set_irqs(struct vfu_client *c, uint32_t index, uint32_t start, uint32_t count,
		    const int *fds)
{
	struct vfio_irq_set s = {
		.argsz = sizeof(s),
		.flags = VFIO_IRQ_SET_DATA_EVENTFD | VFIO_IRQ_SET_ACTION_TRIGGER,
		.index = index, .start = start, .count = count,
	};
	int rc = vfu_client_call(c, VFIO_USER_DEVICE_SET_IRQS, &s, sizeof(s), fds, fds ? count : 0,
			     NULL, 0, NULL, NULL);

	return rc < 0 ? rc : 0;
}

static int read_chunk(struct vfu_client *c, uint32_t index, uint64_t off, void *buf,
		      uint32_t len)
{
	struct vfio_user_region_access req = { .offset = off, .region = index, .count = len };
	/* The payload stays in c->buf: no second copy of up to 1 MiB. */
	struct vfio_user_region_access *r = (void *)c->buf;
	int rc = vfu_client_call(c, VFIO_USER_REGION_READ, &req, sizeof(req), NULL, 0, NULL, 0,
			     NULL, NULL);

	if (rc < 0)
		return rc;
	if ((size_t)rc != sizeof(req) + len || r->count != len || r->offset != off)
		return -EPROTO;
	memcpy(buf, r->data, len);
	return 0;
}

int vfu_client_region_read(struct vfu_client *c, uint32_t index, uint64_t off, void *buf,
		       size_t len)
{
	uint32_t max = vfu_client_max_xfer(c);

	while (len) {
		uint32_t n = len < max ? (uint32_t)len : max;
		int rc = read_chunk(c, index, off, buf, n);

		if (rc)
			return rc;
		off += n;
		buf = (uint8_t *)buf + n;
		len -= n;
	}
	return 0;
}

static int write_chunk(struct vfu_client *c, uint32_t index, uint64_t off, const void *buf,
		       uint32_t len, uint8_t *msg)
{
	struct vfio_user_region_access *req = (void *)msg, rep;
	int rc;

	req->offset = off;
	req->region = index;
	req->count = len;
	memcpy(req->data, buf, len);
	rc = vfu_client_call(c, VFIO_USER_REGION_WRITE, req, (uint32_t)sizeof(*req) + len, NULL, 0,
			 &rep, sizeof(rep), NULL, NULL);
	if (rc < 0)
		return rc;
	if ((size_t)rc < sizeof(rep) || rep.count != len)
		return -EPROTO;
	return 0;
}

int vfu_client_region_write(struct vfu_client *c, uint32_t index, uint64_t off, const void *buf,
			size_t len)
{
	uint32_t max = vfu_client_max_xfer(c);

	while (len) {
		uint32_t n = len < max ? (uint32_t)len : max;
		int rc = write_chunk(c, index, off, buf, n, c->wbuf);

		if (rc)
			return rc;
		off += n;
		buf = (const uint8_t *)buf + n;
		len -= n;
	}
	return 0;
}

static int parse_iofds(const uint8_t *reply, int rc, const int *fds, unsigned int nfds,
		       struct vfu_iofd *out, unsigned int max)
{
	const struct vfio_user_region_io_fds *h = (const void *)reply;
	const struct vfio_user_sub_region_ioeventfd *sub = (const void *)(h + 1);
	unsigned int n;

	if ((size_t)rc < sizeof(*h) ||
	    (size_t)rc < sizeof(*h) + (size_t)h->count * sizeof(*sub))
		return -EPROTO;
	n = h->count < max ? h->count : max;
	for (unsigned int i = 0; i < n; i++) {
		if (sub[i].fd_index >= nfds)
			return -EPROTO;
		out[i] = (struct vfu_iofd){ sub[i].offset, sub[i].size, sub[i].type,
					       sub[i].flags, sub[i].datamatch, -1 };
	}
	for (unsigned int i = 0; i < n; i++) {
		out[i].fd = dup(fds[sub[i].fd_index]);
		if (out[i].fd < 0) {
			while (i--)
				close(out[i].fd);
			return -errno;
		}
	}
	return (int)n;
}

int vfu_client_region_io_fds(struct vfu_client *c, uint32_t index, struct vfu_iofd *out,
			 unsigned int max)
{
	struct vfio_user_region_io_fds req = { .argsz = 65536, .index = index };
	uint8_t reply[65536];
	int fds[VFU_MAX_FDS];
	unsigned int nfds = VFU_MAX_FDS;
	int rc = vfu_client_call(c, VFIO_USER_DEVICE_GET_REGION_IO_FDS, &req, sizeof(req), NULL, 0,
			     reply, sizeof(reply), fds, &nfds);

	if (rc < 0)
		return rc;
	rc = parse_iofds(reply, rc, fds, nfds, out, max);
	for (unsigned int i = 0; i < nfds; i++)
		close(fds[i]);
	return rc;
}

int vfu_client_reset(struct vfu_client *c)
{
	int rc = vfu_client_call(c, VFIO_USER_DEVICE_RESET, NULL, 0, NULL, 0, NULL, 0, NULL, NULL);

	return rc < 0 ? rc : 0;
}

int vfu_client_feature(struct vfu_client *c, uint32_t flags, const void *in, uint32_t in_len,
		       void *out, uint32_t out_max)
{
	struct vfio_user_device_feature *req = (void *)c->wbuf;
	const struct vfio_user_device_feature *rep = (const void *)c->buf;
	int rc;

	if (in_len > vfu_client_max_xfer(c) || out_max > vfu_client_max_xfer(c))
		return -EINVAL;
	req->argsz = (uint32_t)sizeof(*req) + (in_len > out_max ? in_len : out_max);
	req->flags = flags;
	if (in_len)
		memcpy(req->data, in, in_len);
	rc = vfu_client_call(c, VFIO_USER_DEVICE_FEATURE, req, (uint32_t)sizeof(*req) + in_len,
			     NULL, 0, NULL, 0, NULL, NULL);
	if (rc < 0)
		return rc;
	if ((size_t)rc < sizeof(*rep) || (uint32_t)rc - sizeof(*rep) > out_max)
		return -EPROTO;
	rc -= (int)sizeof(*rep);
	if (rc && out)
		memcpy(out, rep->data, (size_t)rc);
	return rc;
}

/*
 * MIG_DATA_READ takes the one copy out of the socket: the reply's header
 * and size land in small buffers and its data straight in the caller's,
 * not in c->buf first.  That copy was a third of a stream's cost.  The
 * server's commands that come before the reply are answered as
 * recv_reply answers them.
 */
int vfu_client_mig_read(struct vfu_client *c, void *buf, uint32_t len)
{
	struct vfio_user_mig_data req = { .argsz = (uint32_t)sizeof(req) + len, .size = len };
	struct vfio_user_mig_data rep;
	struct vfio_user_header h = {
		.msg_id = c->next_id++,
		.command = VFIO_USER_MIG_DATA_READ,
		.msg_size = (uint32_t)(sizeof(h) + sizeof(req)),
		.flags = VFIO_USER_F_TYPE_COMMAND,
	};
	struct vfu_msg m;
	int rc;

	if (len > vfu_client_max_xfer(c))
		return -EINVAL;
	if (c->broken)
		return -ENOTCONN;
	rc = vfu_msg_send(c->sock, &h, &req, sizeof(req), NULL, 0);
	c->broken = true; /* until a whole reply has arrived */
	if (rc)
		return rc;
	for (;;) {
		rc = vfu_msg_recv_head(c->sock, &m, CLIENT_MAX_XFER + REPLY_SLACK);
		if (rc || !is_command(&m))
			break;
		m.data = c->buf;
		rc = vfu_msg_recv_body(c->sock, &m, c->buf, m.len);
		if (!rc)
			rc = serve_cmd(c, &m);
		vfu_msg_close_fds(&m);
		if (rc)
			return rc;
	}
	vfu_msg_close_fds(&m); /* a reply to MIG_DATA_READ carries none */
	if (rc)
		return rc == 1 ? -ECONNRESET : rc == -EMSGSIZE ? -EPROTO : rc;
	if ((m.hdr.flags & VFIO_USER_F_TYPE_MASK) != VFIO_USER_F_TYPE_REPLY ||
	    m.hdr.msg_id != h.msg_id || m.hdr.command != h.command)
		return -EPROTO;
	if (m.hdr.flags & VFIO_USER_F_ERROR) {
		rc = vfu_msg_recv_body(c->sock, &m, c->buf, m.len);
		if (rc)
			return rc;
		c->broken = false;
		return m.hdr.error_no ? -(int)m.hdr.error_no : -EIO;
	}
	if (m.len < sizeof(rep))
		return -EPROTO;
	rc = vfu_msg_recv_body(c->sock, &m, &rep, sizeof(rep));
	if (rc)
		return rc;
	if (rep.size > len || m.len != sizeof(rep) + rep.size)
		return -EPROTO; /* the rest unread: the connection stays broken */
	rc = vfu_msg_recv_body(c->sock, &m, buf, rep.size);
	if (rc)
		return rc;
	c->broken = false;
	return (int)rep.size;
}

int vfu_client_mig_write(struct vfu_client *c, const void *buf, uint32_t len)
{
	struct vfio_user_mig_data *req = (void *)c->wbuf;
	/* The data goes out from the caller's buffer, after the head: a
	 * VMM forwarding a stream copies nothing here. */
	struct iovec v[2] = { { req, sizeof(*req) }, { (void *)buf, len } };
	int rc;

	if (len > vfu_client_max_xfer(c))
		return -EINVAL;
	req->argsz = (uint32_t)sizeof(*req) + len;
	req->size = len;
	rc = call_v(c, VFIO_USER_MIG_DATA_WRITE, v, 2, (uint32_t)sizeof(*req) + len, NULL, 0,
		    NULL, 0, NULL, NULL);
	return rc < 0 ? rc : 0;
}
