// SPDX-License-Identifier: MIT
/*
 * The vfio-user server's connections and dispatch: one thread per
 * connected client reads a message (msg.c), checks it against the
 * command's entry in the dispatch table, runs the handler and sends the
 * reply.  Unknown commands, and the migration commands of a device that
 * leaves their ops NULL, are answered with ENOSYS whatever they carry.
 *
 * DOC: threading
 *
 * The owner (the daemon's main loop) accepts and hands each connected
 * socket to vfu_server_attach; the client is then served by its own thread
 * with blocking I/O, one message at a time in order, as the protocol asks.
 * Between messages the thread polls the socket and the DMA channel's
 * eventfd, sending the DMA_READ / DMA_WRITE that device threads queue and
 * routing the client's replies to them (server_dma_rw.c).
 * A client that stalls or sends garbage only ever holds its own thread.  A
 * device takes one client at a time: the spec gives each client its own
 * socket, and two VMMs driving one device could only corrupt each other.
 * On disconnect every DMA window of that client is unmapped and its irq
 * eventfds are released, as the spec says; the device keeps its state for
 * the next client.
 *
 * Framing errors the stream cannot recover from (a size below the header
 * or above VFU_SERVER_MAX_MSG, EOF inside a message) get an error reply
 * where one can still be sent, then the connection is closed.  Everything
 * else gets the protocol's error reply and the connection goes on.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "vfu/vfu_int.h"

/* A client sending garbage in a loop must not flood the owner's log. */
#define VFU_LOGGED_ERRORS 10u

struct vfu_handler {
	vfu_handler_fn fn;
	uint32_t min_len;         /* payload bytes required */
	bool takes_fds;           /* fds are allowed with this command */
	size_t op;                /* offsetof the optional device op it needs */
};

#define NEEDS(member) offsetof(struct vfu_dev_ops, member)

static const struct vfu_handler handlers[VFIO_USER_MAX] = {
	[VFIO_USER_VERSION] = { vfu_h_version, sizeof(struct vfio_user_version), false, 0 },
	[VFIO_USER_DMA_MAP] = { vfu_h_dma_map, sizeof(struct vfio_user_dma_map), true, 0 },
	[VFIO_USER_DMA_UNMAP] = { vfu_h_dma_unmap, sizeof(struct vfio_user_dma_unmap), false, 0 },
	[VFIO_USER_DEVICE_GET_INFO] = { vfu_h_device_info,
					sizeof(struct vfio_user_device_info), false, 0 },
	[VFIO_USER_DEVICE_GET_REGION_INFO] = { vfu_h_region_info,
					       sizeof(struct vfio_region_info), false, 0 },
	[VFIO_USER_DEVICE_GET_REGION_IO_FDS] = { vfu_h_region_io_fds,
						 sizeof(struct vfio_user_region_io_fds), false, 0 },
	[VFIO_USER_DEVICE_GET_IRQ_INFO] = { vfu_h_irq_info, sizeof(struct vfio_irq_info), false, 0 },
	[VFIO_USER_DEVICE_SET_IRQS] = { vfu_h_set_irqs, sizeof(struct vfio_irq_set), true, 0 },
	[VFIO_USER_REGION_READ] = { vfu_h_region_read,
				    sizeof(struct vfio_user_region_access), false, 0 },
	[VFIO_USER_REGION_WRITE] = { vfu_h_region_write,
				     sizeof(struct vfio_user_region_access), false, 0 },
	[VFIO_USER_DEVICE_RESET] = { vfu_h_reset, 0, false, 0 },
	[VFIO_USER_DEVICE_FEATURE] = { vfu_h_feature, sizeof(struct vfio_user_device_feature),
				       false, NEEDS(feature) },
	[VFIO_USER_MIG_DATA_READ] = { vfu_h_mig_read, sizeof(struct vfio_user_mig_data), false,
				      NEEDS(mig_data_read) },
	[VFIO_USER_MIG_DATA_WRITE] = { vfu_h_mig_write, sizeof(struct vfio_user_mig_data), false,
				       NEEDS(mig_data_write) },
};

static void splice_close(struct vfu_server *s)
{
	for (int i = 0; i < 2; i++)
		if (s->splice[i] >= 0)
			close(s->splice[i]);
	s->splice[0] = s->splice[1] = -1;
}

/* A reply whose pieces the device keeps for the client (MIG_DATA_READ)
 * goes out by reference where a pipe can be had, else copied.  What of
 * it the socket has no room for yet stays in the pipe (splice_left):
 * the device prepares the next reply while the client reads, and
 * settle_reply moves the rest before the server reads or sends again. */
static int send_pieces(struct vfu_server *s, int sock, const struct vfio_user_header *h,
		       const struct vfu_reply *r)
{
	int rc;

	if (!r->by_ref || (s->splice[0] < 0 && vfu_splice_pipe(s->splice)))
		return vfu_msg_sendv(sock, h, r->piece, r->npieces, r->fds, r->nfds);
	rc = vfu_msg_splicev(sock, s->splice, h, r->piece, r->npieces, &s->splice_left);
	if (rc) {
		splice_close(s);        /* it may hold a part of this reply */
		s->splice_left = 0;
	}
	return rc;
}

/* mig_data_ahead's pump: what the socket takes now of the reply's end.
 * The socket is O_NONBLOCK meanwhile, so this never waits for the client
 * (the device may hold its own lock around it). */
static void splice_pump(void *arg)
{
	struct vfu_server *s = arg;
	int rc;

	if (!s->splice_left || s->conn_err)
		return;
	rc = vfu_splice_push(s->sock, s->splice, &s->splice_left);
	if (rc)
		s->conn_err = rc;
}

/* The last reply wholly in the socket, waiting for room as a send does:
 * 0, or -errno and the pipe (which may hold some of it) closed. */
static int settle_reply(struct vfu_server *s, int sock)
{
	int rc = s->conn_err;

	if (!s->splice_left)
		return rc;
	if (!rc)
		rc = vfu_splice_flush(sock, s->splice, &s->splice_left);
	if (rc) {
		splice_close(s);
		s->splice_left = 0;
	}
	return rc;
}

/* Let the device prepare the next MIG_DATA_READ, feeding the socket the
 * last reply's end as it goes where the socket can be made non-blocking
 * for that while (only this thread uses it; one with any other status
 * flag is left alone, and the jail lets only O_NONBLOCK be set). */
static void prepare_ahead(struct vfu_server *s, int sock, uint32_t len)
{
	int fl = s->splice_left ? fcntl(sock, F_GETFL) : -1;
	bool pump = fl >= 0 && !(fl & ~O_ACCMODE) && !fcntl(sock, F_SETFL, fl | O_NONBLOCK);

	/* Without a pump the reply goes whole first, or the client would
	 * wait for its end until the device is done. */
	if (!pump && settle_reply(s, sock)) {
		s->conn_err = s->conn_err ? s->conn_err : -EPIPE;
		return;
	}
	s->ops->mig_data_ahead(s->dev, len, pump ? splice_pump : NULL, s);
	if (pump && fcntl(sock, F_SETFL, fl) && !s->conn_err)
		s->conn_err = -errno;
}

static int send_reply(struct vfu_server *s, int sock, const struct vfio_user_header *req, int err,
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
		return vfu_msg_send(sock, &h, NULL, 0, NULL, 0);
	if (r->npieces)
		return send_pieces(s, sock, &h, r);
	return vfu_msg_send(sock, &h, r->data, r->len, r->fds, r->nfds);
}

/* Does the device implement what handler h needs? */
static bool served(const struct vfu_server *s, const struct vfu_handler *h)
{
	void (*const *op)(void);

	if (!h->fn)
		return false;
	if (!h->op)
		return true;
	op = (void (*const *)(void))((const char *)s->ops + h->op);
	return *op != NULL;
}

/* Check a message against its table entry and run it: 0 or -errno. */
static int dispatch(struct vfu_server *s, struct vfu_msg *m, struct vfu_reply *r)
{
	uint16_t cmd = m->hdr.command;
	const struct vfu_handler *h = cmd < VFIO_USER_MAX ? &handlers[cmd] : NULL;

	if ((m->hdr.flags & VFIO_USER_F_TYPE_MASK) != VFIO_USER_F_TYPE_COMMAND)
		return -EINVAL;
	if (!h || !served(s, h))
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

/* The next message: one deferred by an inline wait, else the socket's.
 * 0, or what vfu_msg_recv said (an error reply sent where it can be). */
static int next_msg(struct vfu_server *s, int sock, struct vfu_msg *m, struct vfu_reply *r)
{
	int rc;

	if (vfu_defer_pop(s, m) == 0)
		return 0;
	rc = vfu_msg_recv(sock, m, s->inbuf, VFU_SERVER_MAX_MSG - sizeof(m->hdr));
	if (rc == -EMSGSIZE) {
		vfu_log(s, "message size %u out of range, closing", m->hdr.msg_size);
		send_reply(s, sock, &m->hdr, m->hdr.msg_size < sizeof(m->hdr) ? EINVAL : E2BIG, r);
	}
	return rc;
}

/* A reply to one of our DMA_READ / DMA_WRITE: 0, or -EPROTO. */
static int route_reply(struct vfu_server *s, struct vfu_msg *m)
{
	int rc = vfu_chan_reply(s, m);

	vfu_msg_close_fds(m);
	if (rc)
		vfu_log(s, "reply to no request of ours, or malformed (id %u), closing",
			m->hdr.msg_id);
	return rc;
}

int vfu_server_serve_one(struct vfu_server *s, int sock)
{
	struct vfu_msg m;
	struct vfu_reply r = { .data = s->outbuf };
	int rc;

	vfu_serving = s;
	s->sock = sock;
	/* Requests device threads queued: sent here too, for an owner that
	 * calls this without the server's thread (the fuzzers). */
	rc = s->negotiated ? vfu_chan_send(s, sock) : 0;
	if (rc)
		return rc;
	rc = next_msg(s, sock, &m, &r);
	if (rc) {
		vfu_msg_close_fds(&m);
		return rc == -EMSGSIZE ? -EPROTO : rc;
	}
	if (s->negotiated && vfu_is_dma_reply(&m))
		return route_reply(s, &m);
	/* More fds than we take: refuse the command rather than run it
	 * with some of them. */
	rc = m.fds_dropped ? -EINVAL : dispatch(s, &m, &r);
	vfu_msg_close_fds(&m);
	if (rc && s->nerrors++ < VFU_LOGGED_ERRORS)
		vfu_log(s, "command %u failed: %s%s", m.hdr.command, strerror(-rc),
			s->nerrors == VFU_LOGGED_ERRORS ? " (further failures not logged)" : "");
	if (!(m.hdr.flags & VFIO_USER_F_NO_REPLY) && send_reply(s, sock, &m.hdr, -rc, &r))
		return -EPIPE;
	if (!rc && r.ahead)
		prepare_ahead(s, sock, r.ahead);
	if (settle_reply(s, sock) && !s->conn_err)
		return -EPIPE;
	/* The stream broke under an inline DMA_READ / DMA_WRITE, or under
	 * the end of a reply. */
	if (s->conn_err)
		return s->conn_err;
	/* Until a VERSION succeeds there is nothing else to talk about. */
	return s->negotiated ? 0 : -EPROTO;
}

void vfu_server_conn_reset(struct vfu_server *s)
{
	vfu_chan_close(s);
	vfu_dma_unmap_all(s);
	vfu_irqs_release(s);
	if (s->ops->client_gone)
		s->ops->client_gone(s->dev);
	s->negotiated = false;
	s->nerrors = 0;
	vfu_caps_default(&s->peer);
	splice_close(s);
	s->splice_left = 0;
}

/* The connection is over: clean up, then take a client that connected
 * meanwhile, or mark the device free. */
static void conn_finish(struct vfu_server *s, int rc)
{
	pthread_mutex_lock(&s->lock);
	s->closing = true;
	pthread_mutex_unlock(&s->lock);
	vfu_log(s, "client disconnected%s", rc == 1 ? "" : " (protocol error)");
	vfu_server_conn_reset(s);
	pthread_mutex_lock(&s->lock);
	close(s->conn_fd);
	s->conn_fd = s->pending_fd;
	s->pending_fd = -1;
	s->closing = false;
	pthread_mutex_unlock(&s->lock);
}

/* The owner's thread_init: 0, or -errno and the thread serves no one. */
static int thread_init(struct vfu_server *s)
{
	int rc = s->cfg.thread_init ? s->cfg.thread_init() : 0;

	if (rc)
		vfu_log(s, "cannot prepare a client's thread: %s; its clients are dropped",
			strerror(-rc));
	return rc;
}

/* The next client to serve, or -1 once the server is being destroyed. */
static int next_client(struct vfu_server *s)
{
	int sock;

	pthread_mutex_lock(&s->lock);
	while (s->conn_fd < 0 && !s->stopping)
		pthread_cond_wait(&s->wake, &s->lock);
	sock = s->conn_fd;
	pthread_mutex_unlock(&s->lock);
	return sock;
}

/* Wait for the client's next message, sending the requests device
 * threads queue meanwhile: 0 once there is one to read, or -errno. */
static int await_msg(struct vfu_server *s, int sock)
{
	struct pollfd p[2] = { { .fd = sock, .events = POLLIN }, { .fd = s->chan->efd,
								  .events = POLLIN } };
	uint64_t n;
	int rc;

	while (!s->ndefer) {
		rc = vfu_chan_send(s, sock);
		if (rc)
			return rc;
		if (poll(p, 2, -1) < 0 && errno != EINTR)
			return -errno;
		if (p[1].revents && read(s->chan->efd, &n, sizeof(n)) < 0 && errno != EAGAIN)
			return -errno;
		if (p[0].revents)
			break;
	}
	return 0;
}

static int serve_client(struct vfu_server *s, int sock)
{
	bool timeout_cleared = false;
	int rc;

	vfu_log(s, "client connected");
	/* A client that never negotiates must not hold the device. */
	vfu_sock_set_timeout(sock, VFU_SERVER_NEGOTIATE_MS);
	/* Room for a whole MIG_DATA_READ reply in the socket: the splice
	 * returns while the client still reads, and the device prepares
	 * the next reply meanwhile.  The kernel caps it at net.core.wmem_max
	 * (208 KiB by default, so a default host gains less); the pages
	 * queued are the partition's own VRAM, by reference. */
	(void)setsockopt(sock, SOL_SOCKET, SO_SNDBUF, &(int){ VFU_SERVER_SNDBUF },
			 sizeof(int));
	do {
		rc = s->negotiated ? await_msg(s, sock) : 0;
		if (!rc)
			rc = vfu_server_serve_one(s, sock);
		if (rc == 0 && s->negotiated && !timeout_cleared) {
			vfu_sock_set_timeout(sock, 0);
			timeout_cleared = true;
		}
	} while (rc == 0);
	if (rc == -ETIMEDOUT)
		vfu_log(s, "client sent no VERSION within %u ms", VFU_SERVER_NEGOTIATE_MS);
	return rc;
}

/* One thread per server, for its whole life: prepared (confined by the
 * owner's thread_init) before any client comes, so that a VMM's start
 * does not wait for it, then serving one client after another. */
static void *conn_thread(void *arg)
{
	struct vfu_server *s = arg;
	int init = thread_init(s), sock;

	while ((sock = next_client(s)) >= 0)
		conn_finish(s, init ? init : serve_client(s, sock));
	return NULL;
}

static bool ops_complete(const struct vfu_dev_ops *o)
{
	return o && o->version == VFU_DEV_OPS_VERSION && o->device_info && o->region_info &&
	       o->region_read && o->region_write && o->irq_info && o->irq_set_fd &&
	       !o->dma_map == !o->dma_unmap && !o->dma_map_remote == !o->dma_unmap_remote;
}

static void server_free(struct vfu_server *s)
{
	if (s->chan)
		vfu_chan_detach(s->chan);
	free(s->rqbuf);
	free(s->rpbuf);
	free(s->inbuf);
	free(s->outbuf);
	free(s->dma);
	splice_close(s);
	free(s);
}

/* A reply spliced into a socket whose client has gone raises SIGPIPE
 * (splice has no MSG_NOSIGNAL): a process that serves clients ignores it,
 * unless its owner handles it already. */
static pthread_once_t sigpipe_once = PTHREAD_ONCE_INIT;

static void ignore_sigpipe(void)
{
	struct sigaction old;

	if (!sigaction(SIGPIPE, NULL, &old) && old.sa_handler == SIG_DFL)
		signal(SIGPIPE, SIG_IGN);
}

struct vfu_server *vfu_server_create(const struct vfu_server_cfg *cfg)
{
	struct vfu_server *s;
	int rc;

	if (!ops_complete(cfg->ops)) {
		errno = EINVAL;
		return NULL;
	}
	s = calloc(1, sizeof(*s));
	if (!s)
		return NULL;
	s->splice[0] = s->splice[1] = -1;
	s->cfg = *cfg;
	s->ops = cfg->ops;
	s->dev = cfg->dev;
	s->inbuf = malloc(VFU_SERVER_MAX_MSG);
	s->outbuf = malloc(VFU_SERVER_MAX_MSG);
	s->dma = calloc(VFU_SERVER_MAX_DMA_MAPS, sizeof(*s->dma));
	s->chan = vfu_chan_create(s);
	s->sock = -1;
	if (!s->inbuf || !s->outbuf || !s->dma || !s->chan) {
		server_free(s);
		errno = ENOMEM;
		return NULL;
	}
	vfu_eventfd_prepare();
	pthread_once(&sigpipe_once, ignore_sigpipe);
	pthread_mutex_init(&s->lock, NULL);
	pthread_cond_init(&s->wake, NULL);
	s->conn_fd = -1;
	s->pending_fd = -1;
	vfu_server_conn_reset(s);
	rc = pthread_create(&s->thread, NULL, conn_thread, s);
	if (rc) {
		pthread_cond_destroy(&s->wake);
		pthread_mutex_destroy(&s->lock);
		server_free(s);
		errno = rc;
		return NULL;
	}
	return s;
}

/* Has the client being served hung up (its end not read yet)? */
static bool peer_gone(int sock)
{
	struct pollfd p = { .fd = sock, .events = POLLRDHUP };

	return poll(&p, 1, 0) == 1 && (p.revents & (POLLRDHUP | POLLHUP | POLLERR));
}

/* Refusing threads running, in the whole process: they hold no server, so
 * a device can go while one still waits for its client. */
static _Atomic unsigned int refusals;

/* What a refusing thread is given: it outlives its server. */
struct vfu_refusal {
	int sock;
	int (*thread_init)(void);
};

/* Answer one client's VERSION with EBUSY, then close: the device is in
 * use.  Bounded in time by the socket timeout, in number by refuse(). */
static void *refuse_thread(void *arg)
{
	struct vfu_refusal *rf = arg;
	int sock = rf->sock;
	bool init = !rf->thread_init || rf->thread_init() == 0;
	struct vfio_user_header h;
	struct vfu_msg m = { .nfds = 0 };
	uint8_t buf[512];

	free(rf);
	if (init)
		vfu_sock_set_timeout(sock, VFU_SERVER_NEGOTIATE_MS);
	if (init && vfu_msg_recv(sock, &m, buf, sizeof(buf)) == 0 &&
	    m.hdr.command == VFIO_USER_VERSION) {
		h = (struct vfio_user_header){ .msg_id = m.hdr.msg_id, .command = m.hdr.command,
					       .msg_size = sizeof(h), .error_no = EBUSY,
					       .flags = VFIO_USER_F_TYPE_REPLY | VFIO_USER_F_ERROR };
		vfu_msg_send(sock, &h, NULL, 0, NULL, 0);
	}
	vfu_msg_close_fds(&m);
	close(sock);
	atomic_fetch_sub(&refusals, 1);
	return NULL;
}

/* Refuse fd on a detached thread, or just close it if too many are. */
static void refuse(struct vfu_server *s, int fd)
{
	struct vfu_refusal *rf = NULL;
	pthread_attr_t attr;
	pthread_t t;
	int rc = -1;

	if (atomic_fetch_add(&refusals, 1) < VFU_SERVER_MAX_REFUSALS &&
	    (rf = malloc(sizeof(*rf)))) {
		*rf = (struct vfu_refusal){ fd, s->cfg.thread_init };
		pthread_attr_init(&attr);
		pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
		rc = pthread_create(&t, &attr, refuse_thread, rf);
		pthread_attr_destroy(&attr);
	}
	if (rc) {
		free(rf);
		close(fd);
		atomic_fetch_sub(&refusals, 1);
	}
}

int vfu_server_attach(struct vfu_server *s, int fd)
{
	int rc = 0;

	pthread_mutex_lock(&s->lock);
	if (s->conn_fd >= 0 && !s->closing && s->pending_fd < 0 && peer_gone(s->conn_fd)) {
		/* Hung up, though its thread has not read the end yet: the new
		 * client is served as soon as it has. */
		s->pending_fd = fd;
	} else if (s->conn_fd >= 0 && s->closing && s->pending_fd < 0) {
		/* The last client just left: this one is served as soon as
		 * its DMA is unmapped. */
		s->pending_fd = fd;
	} else if (s->conn_fd >= 0) {
		rc = -EBUSY;
	} else {
		s->conn_fd = fd;
		pthread_cond_signal(&s->wake);
	}
	pthread_mutex_unlock(&s->lock);
	if (rc == -EBUSY)
		refuse(s, fd);
	return rc;
}

bool vfu_server_connected(struct vfu_server *s)
{
	bool c;

	pthread_mutex_lock(&s->lock);
	c = s->conn_fd >= 0 && !s->closing;
	pthread_mutex_unlock(&s->lock);
	return c;
}

bool vfu_server_idle(struct vfu_server *s)
{
	bool idle;

	pthread_mutex_lock(&s->lock);
	idle = s->conn_fd < 0;
	pthread_mutex_unlock(&s->lock);
	return idle;
}

uint64_t vfu_server_dma_bytes(struct vfu_server *s)
{
	return s->dma_bytes;
}

void vfu_server_destroy(struct vfu_server *s)
{
	if (!s)
		return;
	pthread_mutex_lock(&s->lock);
	s->stopping = true;
	/* Wakes the thread's recvmsg; it cleans up and closes the fd. */
	if (s->conn_fd >= 0)
		shutdown(s->conn_fd, SHUT_RDWR);
	if (s->pending_fd >= 0) {
		close(s->pending_fd);
		s->pending_fd = -1;
	}
	pthread_cond_signal(&s->wake);
	pthread_mutex_unlock(&s->lock);
	pthread_join(s->thread, NULL);
	vfu_server_conn_reset(s);
	pthread_cond_destroy(&s->wake);
	pthread_mutex_destroy(&s->lock);
	server_free(s);
}
