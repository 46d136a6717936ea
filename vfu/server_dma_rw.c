// SPDX-License-Identifier: MIT
/*
 * The server's own DMA_READ / DMA_WRITE: how a device reaches the
 * client's windows sent without an fd (see vfu.h, vfu_dma_chan_rw).
 *
 * DOC: one reader, many askers
 *
 * The serving thread is the socket's only reader and writer.  A device
 * thread (an engine) that needs client memory takes a slot of the
 * connection's channel, queues its request there, wakes the serving
 * thread through an eventfd and waits on a condition variable with its
 * deadline.  The serving thread, which polls the socket and that eventfd,
 * sends queued requests (message ids of our own, counting up) and, as it
 * reads the client's messages, hands a reply to the slot it answers and
 * serves the client's commands as before: the client may well send a
 * command before it answers ours.  The channel lock is held only to copy
 * into or out of a slot, never across a send or a wait on the client.
 *
 * A waiter that gives up (deadline, give_up) leaves its slot owed: the
 * reply may still come and is then dropped, not taken for a stray one.
 * One that gave way to give_up parks it instead: the same request asked
 * again (an engine retrying its step) waits for the reply already owed
 * rather than sending another, so a retried wait costs one slot.  A
 * client that never answers thus fills VFU_DMA_SLOTS slots at most, and
 * then every new request fails at once.  A reply to no owed request, or
 * one of the wrong size, address or count, is a protocol error and ends
 * the connection.  DMA_UNMAP of a window fails the waiters of requests
 * into it, and a queued request is checked against the client's windows
 * when it is sent, so nothing reaches a window after its unmap; a device
 * reset and the client's departure fail every waiter.
 *
 * When a handler on the serving thread itself needs client memory (a
 * register write that reads a queue's producer index), the exchange runs
 * right there: it sends the request and reads the socket until the reply
 * comes, keeping the client's commands that come first (at most
 * VFU_DMA_DEFER_MAX, a copy each) to run after the handler, in order.
 */
#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "vfu/vfu_int.h"

/* How often a waiter asks give_up. */
#define WAIT_POLL_NS 1000000ull

_Thread_local struct vfu_server *vfu_serving;

static uint64_t mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

struct vfu_dma_chan *vfu_chan_create(struct vfu_server *s)
{
	struct vfu_dma_chan *ch = calloc(1, sizeof(*ch));
	pthread_condattr_t ca;

	if (!ch)
		return NULL;
	ch->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (ch->efd < 0) {
		free(ch);
		return NULL;
	}
	pthread_mutex_init(&ch->lock, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&ch->cond, &ca);
	pthread_condattr_destroy(&ca);
	ch->refs = 1;
	ch->s = s;
	return ch;
}

struct vfu_dma_chan *vfu_server_dma_chan(struct vfu_server *s)
{
	atomic_fetch_add(&s->chan->refs, 1);
	return s->chan;
}

void vfu_dma_chan_put(struct vfu_dma_chan *ch)
{
	if (!ch || atomic_fetch_sub(&ch->refs, 1) != 1)
		return;
	close(ch->efd);
	pthread_cond_destroy(&ch->cond);
	pthread_mutex_destroy(&ch->lock);
	free(ch);
}

/* Fail the waiters meeting [iova, end) (lock held). */
static void fail_waiters(struct vfu_dma_chan *ch, uint64_t iova, uint64_t end)
{
	for (unsigned int i = 0; i < VFU_DMA_SLOTS; i++) {
		struct vfu_dma_req *r = &ch->req[i];

		if (r->iova >= end || r->iova + r->len <= iova)
			continue;
		r->parked = false;
		if (!r->waiter || r->done)
			continue;
		r->done = true;
		r->queued = false;
		r->rc = -EFAULT;
	}
	pthread_cond_broadcast(&ch->cond);
}

void vfu_chan_cancel(struct vfu_dma_chan *ch, uint64_t iova, uint64_t end)
{
	pthread_mutex_lock(&ch->lock);
	fail_waiters(ch, iova, end);
	pthread_mutex_unlock(&ch->lock);
}

void vfu_chan_close(struct vfu_server *s)
{
	struct vfu_dma_chan *ch = s->chan;

	pthread_mutex_lock(&ch->lock);
	ch->open = false;
	fail_waiters(ch, 0, UINT64_MAX);
	for (unsigned int i = 0; i < VFU_DMA_SLOTS; i++)
		ch->req[i].owed = ch->req[i].parked = false;
	pthread_mutex_unlock(&ch->lock);
	vfu_defer_drop(s);
	s->conn_err = 0;
}

void vfu_chan_detach(struct vfu_dma_chan *ch)
{
	pthread_mutex_lock(&ch->lock);
	ch->s = NULL;
	pthread_mutex_unlock(&ch->lock);
	vfu_dma_chan_put(ch);
}

int vfu_chan_open(struct vfu_server *s)
{
	struct vfu_dma_chan *ch = s->chan;

	if (!s->rqbuf)
		s->rqbuf = malloc(VFU_SERVER_MAX_MSG);
	if (!s->rpbuf)
		s->rpbuf = malloc(VFU_SERVER_MAX_MSG);
	if (!s->rqbuf || !s->rpbuf)
		return -ENOMEM;
	pthread_mutex_lock(&ch->lock);
	ch->max_xfer = s->peer.max_xfer < VFU_DMA_RW_MAX ? s->peer.max_xfer : VFU_DMA_RW_MAX;
	ch->open = true;
	pthread_mutex_unlock(&ch->lock);
	return 0;
}

static bool id_in_use(const struct vfu_dma_chan *ch, uint16_t id)
{
	for (unsigned int i = 0; i < VFU_DMA_SLOTS; i++)
		if ((ch->req[i].waiter || ch->req[i].owed) && ch->req[i].id == id)
			return true;
	return false;
}

/* Take a free slot for one request (lock held): the slot, or NULL with
 * *rc set. */
static struct vfu_dma_req *req_take(struct vfu_dma_chan *ch, uint64_t iova, void *buf,
				    uint32_t len, bool write, int *rc)
{
	struct vfu_dma_req *r = NULL;

	uint16_t cmd = write ? VFIO_USER_DMA_WRITE : VFIO_USER_DMA_READ;

	*rc = -EFAULT;
	if (!ch->open)
		return NULL;
	for (unsigned int i = 0; i < VFU_DMA_SLOTS; i++) {
		r = &ch->req[i];
		if (r->parked && r->cmd == cmd && r->iova == iova && r->len == len) {
			r->parked = false;
			r->waiter = true;
			r->done = false;
			r->buf = buf;
			return r;
		}
	}
	r = NULL;
	for (unsigned int i = 0; i < VFU_DMA_SLOTS && !r; i++)
		if (!ch->req[i].waiter && !ch->req[i].owed)
			r = &ch->req[i];
	if (!r) {
		*rc = -ETIMEDOUT;
		return NULL;
	}
	while (id_in_use(ch, ch->next_id))
		ch->next_id++;
	*r = (struct vfu_dma_req){ .id = ch->next_id++, .waiter = true, .queued = true,
				   .cmd = cmd, .iova = iova, .len = len, .buf = buf };
	return r;
}

/* The waiter lets its slot go (lock held): its result, or rc if none. */
static int req_release(struct vfu_dma_req *r, int rc)
{
	if (r->done)
		rc = r->rc;
	else if (rc == -EAGAIN && r->owed)
		r->parked = true;
	r->waiter = false;
	r->queued = false;
	r->buf = NULL;
	return rc;
}

static void cond_wait_until(struct vfu_dma_chan *ch, uint64_t ns)
{
	struct timespec ts = { .tv_sec = (time_t)(ns / 1000000000ull),
			       .tv_nsec = (long)(ns % 1000000000ull) };

	pthread_cond_timedwait(&ch->cond, &ch->lock, &ts);
}

/* A thread other than the serving one: queue, wake it, wait. */
static int rw_async(struct vfu_dma_chan *ch, uint64_t iova, void *buf, uint32_t len,
		    bool to_client, uint64_t deadline, bool (*give_up)(void *), void *arg)
{
	uint64_t one = 1;
	int rc;

	pthread_mutex_lock(&ch->lock);
	struct vfu_dma_req *r = req_take(ch, iova, buf, len, to_client, &rc);

	pthread_mutex_unlock(&ch->lock);
	if (!r)
		return rc;
	rc = write(ch->efd, &one, sizeof(one)) < 0 && errno != EAGAIN ? -errno : 0;
	pthread_mutex_lock(&ch->lock);
	while (!r->done && !rc) {
		uint64_t now = mono_ns();

		if (now >= deadline) {
			rc = -ETIMEDOUT;
			break;
		}
		cond_wait_until(ch, deadline - now < WAIT_POLL_NS ? deadline : now + WAIT_POLL_NS);
		if (r->done || !give_up)
			continue;
		pthread_mutex_unlock(&ch->lock);
		bool stop = give_up(arg);

		pthread_mutex_lock(&ch->lock);
		if (stop)
			rc = -EAGAIN;
	}
	rc = req_release(r, rc);
	pthread_mutex_unlock(&ch->lock);
	return rc;
}

const struct vfu_dma *vfu_dma_find_remote(const struct vfu_server *s, uint64_t iova,
					  uint64_t len, uint32_t prot)
{
	for (unsigned int i = 0; i < s->ndma; i++) {
		const struct vfu_dma *d = &s->dma[i];

		if (!d->r.host && iova >= d->r.iova && iova - d->r.iova < d->r.size &&
		    len <= d->r.size - (iova - d->r.iova) && (d->r.prot & prot) == prot)
			return d;
	}
	return NULL;
}

/* Build r's message in s->rqbuf (lock held): its payload length. */
static uint32_t req_build(struct vfu_server *s, struct vfu_dma_req *r)
{
	struct vfio_user_dma_rw *rw = (void *)s->rqbuf;

	rw->addr = r->iova;
	rw->count = r->len;
	if (r->cmd == VFIO_USER_DMA_WRITE) {
		memcpy(rw->data, r->buf, r->len);
		return (uint32_t)sizeof(*rw) + r->len;
	}
	return sizeof(*rw);
}

/* The next queued request, checked against the client's windows now: a
 * window unmapped since it was asked for fails it (lock held). */
static struct vfu_dma_req *next_queued(struct vfu_server *s)
{
	struct vfu_dma_chan *ch = s->chan;

	for (unsigned int i = 0; i < VFU_DMA_SLOTS; i++) {
		struct vfu_dma_req *r = &ch->req[i];
		uint32_t prot = r->cmd == VFIO_USER_DMA_WRITE ? VFIO_USER_DMA_F_WRITE
							     : VFIO_USER_DMA_F_READ;

		if (!r->queued)
			continue;
		r->queued = false;
		if (vfu_dma_find_remote(s, r->iova, r->len, prot))
			return r;
		r->done = true;
		r->rc = -EFAULT;
		pthread_cond_broadcast(&ch->cond);
	}
	return NULL;
}

int vfu_chan_send(struct vfu_server *s, int sock)
{
	struct vfu_dma_chan *ch = s->chan;
	struct vfu_dma_req *r;
	int rc = 0;

	pthread_mutex_lock(&ch->lock);
	while (!rc && (r = next_queued(s))) {
		struct vfio_user_header h = { .msg_id = r->id, .command = r->cmd,
					      .flags = VFIO_USER_F_TYPE_COMMAND };
		uint32_t len = req_build(s, r);

		h.msg_size = (uint32_t)sizeof(h) + len;
		r->owed = true;
		pthread_mutex_unlock(&ch->lock);
		rc = vfu_msg_send(sock, &h, s->rqbuf, len, NULL, 0);
		pthread_mutex_lock(&ch->lock);
	}
	pthread_mutex_unlock(&ch->lock);
	return rc;
}

/* Whether m is a whole, well-formed answer to r. */
static bool reply_fits(const struct vfu_dma_req *r, const struct vfu_msg *m)
{
	const struct vfio_user_dma_rw *rw = (const void *)m->data;
	uint32_t want = (uint32_t)sizeof(*rw) + (r->cmd == VFIO_USER_DMA_READ ? r->len : 0);

	if (m->hdr.flags & VFIO_USER_F_ERROR)
		return m->len == 0 || m->len == want;
	return m->len == want && rw->addr == r->iova && rw->count == r->len;
}

bool vfu_is_dma_reply(const struct vfu_msg *m)
{
	return (m->hdr.flags & VFIO_USER_F_TYPE_MASK) == VFIO_USER_F_TYPE_REPLY &&
	       (m->hdr.command == VFIO_USER_DMA_READ || m->hdr.command == VFIO_USER_DMA_WRITE);
}

int vfu_chan_reply(struct vfu_server *s, struct vfu_msg *m)
{
	struct vfu_dma_chan *ch = s->chan;
	struct vfu_dma_req *r = NULL;
	bool ok;

	pthread_mutex_lock(&ch->lock);
	for (unsigned int i = 0; i < VFU_DMA_SLOTS && !r; i++)
		if (ch->req[i].owed && ch->req[i].id == m->hdr.msg_id)
			r = &ch->req[i];
	if (!r || r->cmd != m->hdr.command) {
		pthread_mutex_unlock(&ch->lock);
		return -EPROTO;
	}
	ok = !m->nfds && !m->fds_dropped && reply_fits(r, m);
	r->owed = false;
	r->parked = false;
	if (r->waiter && !r->done) {
		r->done = true;
		r->rc = ok && !(m->hdr.flags & VFIO_USER_F_ERROR) ? 0 : -EFAULT;
		if (!r->rc && r->cmd == VFIO_USER_DMA_READ)
			memcpy(r->buf, m->data + sizeof(struct vfio_user_dma_rw), r->len);
		pthread_cond_broadcast(&ch->cond);
	}
	pthread_mutex_unlock(&ch->lock);
	return ok ? 0 : -EPROTO;
}

/* Keep a command read during an inline wait (its payload copied, its
 * fds taken): 0 or -ENOMEM. */
static int defer_push(struct vfu_server *s, struct vfu_msg *m)
{
	struct vfu_deferred *d = &s->defer[(s->defer_head + s->ndefer) % VFU_DMA_DEFER_MAX];

	d->data = malloc(m->len ? m->len : 1);
	if (!d->data)
		return -ENOMEM;
	memcpy(d->data, m->data, m->len);
	d->m = *m;
	d->m.data = d->data;
	m->nfds = 0;
	s->ndefer++;
	return 0;
}

/* m's payload is copied into s->inbuf, which the deferred message may
 * use again: its handler runs before the next read. */
int vfu_defer_pop(struct vfu_server *s, struct vfu_msg *m)
{
	struct vfu_deferred *d = &s->defer[s->defer_head];

	if (!s->ndefer)
		return -ENOENT;
	*m = d->m;
	memcpy(s->inbuf, d->data, d->m.len);
	m->data = s->inbuf;
	free(d->data);
	d->data = NULL;
	s->defer_head = (s->defer_head + 1) % VFU_DMA_DEFER_MAX;
	s->ndefer--;
	return 0;
}

void vfu_defer_drop(struct vfu_server *s)
{
	struct vfu_msg m;

	while (vfu_defer_pop(s, &m) == 0)
		vfu_msg_close_fds(&m);
	s->defer_head = 0;
}

/* Read one message during an inline wait and route it: 0, or -errno
 * with the connection broken (s->conn_err says how). */
static int inline_read(struct vfu_server *s, int sock, uint64_t deadline)
{
	struct pollfd p = { .fd = sock, .events = POLLIN };
	uint64_t now = mono_ns();
	struct vfu_msg m;
	int rc;

	if (now >= deadline)
		return -ETIMEDOUT;
	rc = poll(&p, 1, (int)((deadline - now + 999999) / 1000000));
	if (rc <= 0)
		return rc == 0 || errno == EINTR ? 0 : -errno;
	rc = vfu_msg_recv(sock, &m, s->rpbuf, VFU_SERVER_MAX_MSG - sizeof(m.hdr));
	if (!rc && vfu_is_dma_reply(&m))
		rc = vfu_chan_reply(s, &m);
	else if (!rc)
		rc = defer_push(s, &m);
	vfu_msg_close_fds(&m);
	if (rc)
		s->conn_err = rc == 1 ? -ECONNRESET : rc == -EMSGSIZE ? -EPROTO : rc;
	return s->conn_err;
}

/* On the serving thread: send, then read until the reply comes. */
static int rw_inline(struct vfu_server *s, uint64_t iova, void *buf, uint32_t len, bool write,
		     uint64_t deadline)
{
	struct vfu_dma_chan *ch = s->chan;
	int rc;

	pthread_mutex_lock(&ch->lock);
	struct vfu_dma_req *r = req_take(ch, iova, buf, len, write, &rc);

	pthread_mutex_unlock(&ch->lock);
	if (!r)
		return rc;
	rc = s->conn_err ? s->conn_err : vfu_chan_send(s, s->sock);
	if (rc && !s->conn_err)
		s->conn_err = rc;
	while (!rc && !r->done && mono_ns() < deadline && s->ndefer < VFU_DMA_DEFER_MAX)
		rc = inline_read(s, s->sock, deadline);
	pthread_mutex_lock(&ch->lock);
	rc = req_release(r, rc && rc != -ETIMEDOUT ? -EFAULT : -ETIMEDOUT);
	pthread_mutex_unlock(&ch->lock);
	return rc;
}

int vfu_dma_chan_rw(struct vfu_dma_chan *ch, uint64_t iova, void *buf, size_t len, bool write,
		    uint64_t deadline_ns, bool (*give_up)(void *arg), void *arg)
{
	struct vfu_server *s = vfu_serving;
	bool here = s && s->chan == ch;
	uint32_t max;
	int rc = 0;

	pthread_mutex_lock(&ch->lock);
	max = ch->max_xfer;
	pthread_mutex_unlock(&ch->lock);
	if (!max)
		return -EFAULT;
	while (!rc && len) {
		uint32_t n = len < max ? (uint32_t)len : max;

		rc = here ? rw_inline(s, iova, buf, n, write, deadline_ns)
			  : rw_async(ch, iova, buf, n, write, deadline_ns, give_up, arg);
		iova += n;
		buf = (uint8_t *)buf + n;
		len -= n;
	}
	return rc;
}
