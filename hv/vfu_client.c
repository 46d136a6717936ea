// SPDX-License-Identifier: MIT
/*
 * The vfio-user client (see vfu_client.h): message framing with SCM_RIGHTS
 * on a UNIX stream socket, version negotiation, and one function per
 * command, each checking that the reply has the size the protocol gives it
 * before trusting a field.  Replies are matched by msg_id; anything else on
 * the socket is a protocol error, since our servers never send commands of
 * their own.
 */
#include <errno.h>
#include <json-c/json.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

#include "hv/vfu_client.h"

#define CLIENT_MAX_XFER (1u << 20)
#define REPLY_SLACK 256u

struct hv_vfu {
	int sock;
	bool broken;         /* a send or receive failed: out of step for good */
	uint16_t next_id;
	uint32_t max_xfer;   /* the server's */
	uint32_t max_fds;
	uint8_t *buf;        /* reply scratch, CLIENT_MAX_XFER + slack */
	uint8_t *wbuf;       /* REGION_WRITE messages, as large */
};

int hv_vfu_socket(const struct hv_vfu *c)
{
	return c->sock;
}

uint32_t hv_vfu_max_xfer(const struct hv_vfu *c)
{
	return c->max_xfer;
}

uint32_t hv_vfu_max_fds(const struct hv_vfu *c)
{
	return c->max_fds;
}

static int send_all(int sock, struct msghdr *mh)
{
	size_t total = 0, sent = 0;

	for (size_t i = 0; i < mh->msg_iovlen; i++)
		total += mh->msg_iov[i].iov_len;
	while (sent < total) {
		ssize_t n = sendmsg(sock, mh, MSG_NOSIGNAL);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return errno == EAGAIN ? -ETIMEDOUT : -errno;
		sent += (size_t)n;
		mh->msg_control = NULL;
		mh->msg_controllen = 0;
		while (n > 0) {
			size_t k = (size_t)n < mh->msg_iov->iov_len ? (size_t)n
								    : mh->msg_iov->iov_len;

			mh->msg_iov->iov_base = (char *)mh->msg_iov->iov_base + k;
			mh->msg_iov->iov_len -= k;
			n -= (ssize_t)k;
			if (!mh->msg_iov->iov_len) {
				mh->msg_iov++;
				mh->msg_iovlen--;
			}
		}
	}
	return 0;
}

static int send_cmd(struct hv_vfu *c, const struct vfio_user_header *h, const void *req,
		    uint32_t len, const int *fds, unsigned int nfds)
{
	union {
		char buf[CMSG_SPACE(HV_VFU_MAX_FDS * sizeof(int))];
		struct cmsghdr align;
	} ctl;
	struct iovec iov[2] = { { (void *)h, sizeof(*h) }, { (void *)req, len } };
	struct msghdr mh = { .msg_iov = iov, .msg_iovlen = len ? 2 : 1 };

	if (nfds > HV_VFU_MAX_FDS)
		return -EINVAL;
	if (nfds) {
		struct cmsghdr *cm;

		memset(ctl.buf, 0, sizeof(ctl.buf));
		mh.msg_control = ctl.buf;
		mh.msg_controllen = CMSG_SPACE(nfds * sizeof(int));
		cm = CMSG_FIRSTHDR(&mh);
		cm->cmsg_level = SOL_SOCKET;
		cm->cmsg_type = SCM_RIGHTS;
		cm->cmsg_len = CMSG_LEN(nfds * sizeof(int));
		memcpy(CMSG_DATA(cm), fds, nfds * sizeof(int));
	}
	return send_all(c->sock, &mh);
}

static void keep_fds(struct msghdr *mh, int *fds, unsigned int *n, unsigned int max)
{
	for (struct cmsghdr *cm = CMSG_FIRSTHDR(mh); cm; cm = CMSG_NXTHDR(mh, cm)) {
		unsigned int k;

		if (cm->cmsg_level != SOL_SOCKET || cm->cmsg_type != SCM_RIGHTS)
			continue;
		k = (unsigned int)((cm->cmsg_len - CMSG_LEN(0)) / sizeof(int));
		for (unsigned int i = 0; i < k; i++) {
			int fd;

			memcpy(&fd, CMSG_DATA(cm) + i * sizeof(int), sizeof(int));
			if (*n < max)
				fds[(*n)++] = fd;
			else
				close(fd);
		}
	}
}

static int recv_full(int sock, void *buf, size_t len, int *fds, unsigned int *nfds,
		     unsigned int max)
{
	union {
		char buf[CMSG_SPACE(HV_VFU_MAX_FDS * sizeof(int))];
		struct cmsghdr align;
	} ctl;
	size_t got = 0;

	while (got < len) {
		struct iovec iov = { (char *)buf + got, len - got };
		struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctl.buf,
				     .msg_controllen = sizeof(ctl.buf) };
		ssize_t n = recvmsg(sock, &mh, MSG_CMSG_CLOEXEC);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return errno == EAGAIN ? -ETIMEDOUT : -errno;
		keep_fds(&mh, fds, nfds, max);
		if (n == 0)
			return -ECONNRESET;
		got += (size_t)n;
	}
	return 0;
}

static void close_all(int *fds, unsigned int n)
{
	for (unsigned int i = 0; i < n; i++)
		close(fds[i]);
}

/* Receive the reply to `id` into c->buf: its payload length or -errno. */
static int recv_reply(struct hv_vfu *c, uint16_t id, uint16_t cmd, int *rfds,
		      unsigned int *nrfds, unsigned int max)
{
	struct vfio_user_header h;
	uint32_t len;
	int rc;

	c->broken = true; /* until a whole reply has arrived */
	rc = recv_full(c->sock, &h, sizeof(h), rfds, nrfds, max);
	if (rc)
		return rc;
	if (h.msg_size < sizeof(h) || h.msg_size - sizeof(h) > CLIENT_MAX_XFER + REPLY_SLACK)
		return -EPROTO;
	len = h.msg_size - (uint32_t)sizeof(h);
	rc = recv_full(c->sock, c->buf, len, rfds, nrfds, max);
	if (rc)
		return rc;
	if ((h.flags & VFIO_USER_F_TYPE_MASK) != VFIO_USER_F_TYPE_REPLY || h.msg_id != id ||
	    h.command != cmd)
		return -EPROTO;
	c->broken = false;
	if (h.flags & VFIO_USER_F_ERROR)
		return h.error_no ? -(int)h.error_no : -EIO;
	return (int)len;
}

int hv_vfu_call(struct hv_vfu *c, uint16_t cmd, const void *req, uint32_t req_len,
		const int *fds, unsigned int nfds, void *reply, uint32_t reply_max,
		int *rfds, unsigned int *nrfds)
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
	rc = send_cmd(c, &h, req, req_len, fds, nfds);
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

static int json_u32(json_object *caps, const char *key, uint32_t *out)
{
	json_object *v;
	int64_t n;

	if (!json_object_object_get_ex(caps, key, &v))
		return 0;
	n = json_object_get_int64(v);
	if (!json_object_is_type(v, json_type_int) || n < 1 || n > UINT32_MAX)
		return -EPROTO;
	*out = (uint32_t)n;
	return 0;
}

static int parse_server_caps(struct hv_vfu *c, const char *json, size_t len)
{
	json_tokener *tok = json_tokener_new();
	json_object *o, *caps;
	int rc = 0;

	o = tok ? json_tokener_parse_ex(tok, json, (int)len) : NULL;
	json_tokener_free(tok);
	if (!o)
		return -EPROTO;
	if (json_object_object_get_ex(o, VFIO_USER_CAP_OBJECT, &caps)) {
		rc = json_u32(caps, VFIO_USER_CAP_MAX_XFER, &c->max_xfer);
		if (!rc)
			rc = json_u32(caps, VFIO_USER_CAP_MAX_FDS, &c->max_fds);
	}
	json_object_put(o);
	if (c->max_xfer > CLIENT_MAX_XFER)
		c->max_xfer = CLIENT_MAX_XFER;
	return rc;
}

static int negotiate(struct hv_vfu *c)
{
	char req[256];
	struct vfio_user_version *v = (void *)req;
	int n, rc;

	v->major = VFIO_USER_MAJOR;
	v->minor = VFIO_USER_MINOR;
	n = snprintf(v->data, sizeof(req) - sizeof(*v), "{\"%s\":{\"%s\":%u,\"%s\":%u}}",
		     VFIO_USER_CAP_OBJECT, VFIO_USER_CAP_MAX_FDS, HV_VFU_MAX_FDS,
		     VFIO_USER_CAP_MAX_XFER, CLIENT_MAX_XFER);
	rc = hv_vfu_call(c, VFIO_USER_VERSION, req, (uint32_t)(sizeof(*v) + (size_t)n + 1),
			 NULL, 0, NULL, 0, NULL, NULL);
	if (rc < 0)
		return rc;
	v = (void *)c->buf;
	if ((size_t)rc < sizeof(*v) || v->major != VFIO_USER_MAJOR || v->minor > VFIO_USER_MINOR)
		return -EPROTO;
	if ((size_t)rc > sizeof(*v)) {
		if (c->buf[rc - 1] != '\0')
			return -EPROTO;
		return parse_server_caps(c, v->data, (size_t)rc - sizeof(*v) - 1);
	}
	return 0;
}

struct hv_vfu *hv_vfu_open_fd(int sock, int *err)
{
	struct hv_vfu *c = calloc(1, sizeof(*c));
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
	c->max_xfer = VFIO_USER_DEFAULT_MAX_XFER;
	c->max_fds = VFIO_USER_DEFAULT_MAX_FDS;
	rc = negotiate(c);
	if (rc) {
		hv_vfu_close(c);
		*err = rc;
		return NULL;
	}
	return c;
}

static int set_timeout(int sock, unsigned int ms)
{
	struct timeval tv = { .tv_sec = ms / 1000, .tv_usec = (ms % 1000) * 1000 };

	if (setsockopt(sock, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) < 0 ||
	    setsockopt(sock, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv)) < 0)
		return -errno;
	return 0;
}

struct hv_vfu *hv_vfu_connect(const char *path, int *err)
{
	return hv_vfu_connect_timeout(path, 0, err);
}

struct hv_vfu *hv_vfu_connect_timeout(const char *path, unsigned int ms, int *err)
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
	*err = connect(sock, (struct sockaddr *)&sa, sizeof(sa)) < 0 ? -errno
								      : set_timeout(sock, ms);
	if (*err < 0) {
		close(sock);
		return NULL;
	}
	return hv_vfu_open_fd(sock, err);
}

int hv_vfu_set_timeout(struct hv_vfu *c, unsigned int ms)
{
	return set_timeout(c->sock, ms);
}

bool hv_vfu_broken(const struct hv_vfu *c)
{
	return c->broken;
}

void hv_vfu_close(struct hv_vfu *c)
{
	if (!c)
		return;
	close(c->sock);
	free(c->buf);
	free(c->wbuf);
	free(c);
}

int hv_vfu_dma_map(struct hv_vfu *c, int fd, uint64_t fd_offset, uint64_t iova,
		   uint64_t size, uint32_t prot)
{
	struct vfio_user_dma_map m = {
		.argsz = sizeof(m), .flags = prot, .offset = fd_offset,
		.addr = iova, .size = size,
	};
	int rc = hv_vfu_call(c, VFIO_USER_DMA_MAP, &m, sizeof(m), &fd, 1, NULL, 0, NULL, NULL);

	return rc < 0 ? rc : 0;
}

int hv_vfu_dma_unmap(struct hv_vfu *c, uint64_t iova, uint64_t size)
{
	struct vfio_user_dma_unmap u = { .argsz = sizeof(u), .addr = iova, .size = size };
	int rc = hv_vfu_call(c, VFIO_USER_DMA_UNMAP, &u, sizeof(u), NULL, 0, NULL, 0, NULL, NULL);

	return rc < 0 ? rc : 0;
}

int hv_vfu_device_info(struct hv_vfu *c, struct vfio_user_device_info *info)
{
	struct vfio_user_device_info req = { .argsz = sizeof(req) };
	int rc = hv_vfu_call(c, VFIO_USER_DEVICE_GET_INFO, &req, sizeof(req), NULL, 0, info,
			     sizeof(*info), NULL, NULL);

	if (rc >= 0 && (size_t)rc < sizeof(*info))
		return -EPROTO;
	return rc < 0 ? rc : 0;
}

int hv_vfu_region_info(struct hv_vfu *c, uint32_t index, struct vfio_region_info *info,
		       int *fd)
{
	struct vfio_region_info req = { .argsz = sizeof(req), .index = index };
	int fds[HV_VFU_MAX_FDS];
	unsigned int nfds = HV_VFU_MAX_FDS;
	int rc = hv_vfu_call(c, VFIO_USER_DEVICE_GET_REGION_INFO, &req, sizeof(req), NULL, 0,
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

int hv_vfu_irq_info(struct hv_vfu *c, uint32_t index, struct vfio_irq_info *info)
{
	struct vfio_irq_info req = { .argsz = sizeof(req), .index = index };
	int rc = hv_vfu_call(c, VFIO_USER_DEVICE_GET_IRQ_INFO, &req, sizeof(req), NULL, 0, info,
			     sizeof(*info), NULL, NULL);

	if (rc >= 0 && (size_t)rc < sizeof(*info))
		return -EPROTO;
	return rc < 0 ? rc : 0;
}

int hv_vfu_set_irqs(struct hv_vfu *c, uint32_t index, uint32_t start, uint32_t count,
		    const int *fds)
{
	struct vfio_irq_set s = {
		.argsz = sizeof(s),
		.flags = VFIO_IRQ_SET_DATA_EVENTFD | VFIO_IRQ_SET_ACTION_TRIGGER,
		.index = index, .start = start, .count = count,
	};
	int rc = hv_vfu_call(c, VFIO_USER_DEVICE_SET_IRQS, &s, sizeof(s), fds, fds ? count : 0,
			     NULL, 0, NULL, NULL);

	return rc < 0 ? rc : 0;
}

static int read_chunk(struct hv_vfu *c, uint32_t index, uint64_t off, void *buf,
		      uint32_t len)
{
	struct vfio_user_region_access req = { .offset = off, .region = index, .count = len };
	/* The payload stays in c->buf: no second copy of up to 1 MiB. */
	struct vfio_user_region_access *r = (void *)c->buf;
	int rc = hv_vfu_call(c, VFIO_USER_REGION_READ, &req, sizeof(req), NULL, 0, NULL, 0,
			     NULL, NULL);

	if (rc < 0)
		return rc;
	if ((size_t)rc != sizeof(req) + len || r->count != len || r->offset != off)
		return -EPROTO;
	memcpy(buf, r->data, len);
	return 0;
}

int hv_vfu_region_read(struct hv_vfu *c, uint32_t index, uint64_t off, void *buf,
		       size_t len)
{
	uint32_t max = hv_vfu_max_xfer(c);

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

static int write_chunk(struct hv_vfu *c, uint32_t index, uint64_t off, const void *buf,
		       uint32_t len, uint8_t *msg)
{
	struct vfio_user_region_access *req = (void *)msg, rep;
	int rc;

	req->offset = off;
	req->region = index;
	req->count = len;
	memcpy(req->data, buf, len);
	rc = hv_vfu_call(c, VFIO_USER_REGION_WRITE, req, (uint32_t)sizeof(*req) + len, NULL, 0,
			 &rep, sizeof(rep), NULL, NULL);
	if (rc < 0)
		return rc;
	if ((size_t)rc < sizeof(rep) || rep.count != len)
		return -EPROTO;
	return 0;
}

int hv_vfu_region_write(struct hv_vfu *c, uint32_t index, uint64_t off, const void *buf,
			size_t len)
{
	uint32_t max = hv_vfu_max_xfer(c);

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
		       struct hv_vfu_iofd *out, unsigned int max)
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
		out[i] = (struct hv_vfu_iofd){ sub[i].offset, sub[i].size, sub[i].type,
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

int hv_vfu_region_io_fds(struct hv_vfu *c, uint32_t index, struct hv_vfu_iofd *out,
			 unsigned int max)
{
	struct vfio_user_region_io_fds req = { .argsz = 65536, .index = index };
	uint8_t reply[65536];
	int fds[HV_VFU_MAX_FDS];
	unsigned int nfds = HV_VFU_MAX_FDS;
	int rc = hv_vfu_call(c, VFIO_USER_DEVICE_GET_REGION_IO_FDS, &req, sizeof(req), NULL, 0,
			     reply, sizeof(reply), fds, &nfds);

	if (rc < 0)
		return rc;
	rc = parse_iofds(reply, rc, fds, nfds, out, max);
	for (unsigned int i = 0; i < nfds; i++)
		close(fds[i]);
	return rc;
}

int hv_vfu_reset(struct hv_vfu *c)
{
	int rc = hv_vfu_call(c, VFIO_USER_DEVICE_RESET, NULL, 0, NULL, 0, NULL, 0, NULL, NULL);

	return rc < 0 ? rc : 0;
}
