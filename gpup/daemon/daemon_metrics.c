// SPDX-License-Identifier: MIT
/*
 * `gpup daemon --metrics [ADDR:]PORT`: the daemon's numbers for Prometheus
 * (text exposition format 0.0.4) at http://ADDR:PORT/metrics, ADDR
 * 127.0.0.1 unless given.  Per GPU: VRAM, partitions, each engine's busy
 * time, picks and switches; per partition and queue: engine time, slices,
 * preemptions, overruns, dispatch waits (a summary: the scheduler keeps
 * p50, p99, max, sum and count, not buckets), watchdog resets; per
 * partition: its VRAM, DMA mapped, IO page tables, commands, faults,
 * interrupts, doorbells, whether a client is attached.  Utilisation is
 * rate(gpup_engine_busy_seconds_total).
 *
 * The server is the daemon loop's own, like the control socket: a scrape
 * is one GET, so a few dozen lines do, where a library would bring threads
 * (each needing a seccomp filter) for nothing.  Connections are read and
 * written without blocking, capped, and closed at a deadline, so a slow or
 * silent scraper costs a slot, never the loop's time.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#include "gpup/ctl/ctl.h"
#include "gpup/daemon/daemon_int.h"
#include "gpup/vgpu/vgpu.h"
#include "iommu/iommu.h"
#include "uapi/gpup_ctl.h"
#include "vfu/vfu.h"

#define MCONN_MAX 8
#define MCONN_DEADLINE_MS 5000
#define MREQ_MAX 4096             /* a GET with its headers fits */

struct dmn_mconn {
	struct dmn_src src;
	int fd;
	char req[MREQ_MAX];
	size_t req_len;
	char *out;                /* the response, sent from out_off */
	size_t out_len, out_off;
	uint64_t deadline_ms;
	struct dmn_mconn *next;
};

static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* ---- the exposition ---- */

static void family(FILE *f, const char *name, const char *type, const char *help)
{
	fprintf(f, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static int64_t num(json_object *o, const char *k)
{
	return gpup_ctl_int(o, k, 0);
}

/* One family over every engine of every GPU in the stats reply. */
static void engine_family(FILE *f, json_object *gpus, const char *name, const char *type,
			  const char *help, const char *key, double scale)
{
	family(f, name, type, help);
	for (size_t g = 0; g < json_object_array_length(gpus); g++) {
		json_object *gj = json_object_array_get_idx(gpus, g);
		json_object *es = json_object_object_get(gj, GPUP_CTL_F_ENGINES);

		for (size_t e = 0; e < json_object_array_length(es); e++) {
			json_object *ej = json_object_array_get_idx(es, e);

			fprintf(f, "%s{gpu=\"%s\",engine=\"%s%lld\"} %.9g\n", name,
				gpup_ctl_str(gj, GPUP_CTL_F_NAME, "?"),
				gpup_ctl_str(ej, GPUP_CTL_F_KIND, "?"),
				(long long)num(ej, GPUP_CTL_F_INDEX), (double)num(ej, key) * scale);
		}
	}
}

/* Calls fn for every context (partition queue) on every engine. */
static void each_ctx(json_object *gpus, FILE *f, const char *name,
		     void (*fn)(FILE *f, const char *name, const char *labels, json_object *c))
{
	char labels[256];

	for (size_t g = 0; g < json_object_array_length(gpus); g++) {
		json_object *gj = json_object_array_get_idx(gpus, g);
		json_object *es = json_object_object_get(gj, GPUP_CTL_F_ENGINES);

		for (size_t e = 0; e < json_object_array_length(es); e++) {
			json_object *ej = json_object_array_get_idx(es, e);
			json_object *cs = json_object_object_get(ej, GPUP_CTL_F_CONTEXTS);

			for (size_t i = 0; i < json_object_array_length(cs); i++) {
				json_object *c = json_object_array_get_idx(cs, i);

				if (!gpup_ctl_str(c, GPUP_CTL_F_UUID, NULL))
					continue;
				snprintf(labels, sizeof(labels),
					 "partition=\"%s\",queue=\"%lld\",gpu=\"%s\",engine=\"%s%lld\"",
					 gpup_ctl_str(c, GPUP_CTL_F_UUID, "?"),
					 (long long)num(c, GPUP_CTL_F_QUEUE),
					 gpup_ctl_str(gj, GPUP_CTL_F_NAME, "?"),
					 gpup_ctl_str(ej, GPUP_CTL_F_KIND, "?"),
					 (long long)num(ej, GPUP_CTL_F_INDEX));
				fn(f, name, labels, c);
			}
		}
	}
}

static const char *ctx_key;       /* the field ctx_counter prints */

static void ctx_counter(FILE *f, const char *name, const char *labels, json_object *c)
{
	double v = (double)num(c, ctx_key);

	if (strstr(ctx_key, "_ns"))
		v /= 1e9;
	fprintf(f, "%s{%s} %.9g\n", name, labels, v);
}

static void ctx_wait(FILE *f, const char *name, const char *labels, json_object *c)
{
	fprintf(f, "%s{%s,quantile=\"0.5\"} %.9g\n", name, labels, num(c, "wait_p50_ns") / 1e9);
	fprintf(f, "%s{%s,quantile=\"0.99\"} %.9g\n", name, labels, num(c, "wait_p99_ns") / 1e9);
	fprintf(f, "%s{%s,quantile=\"1\"} %.9g\n", name, labels, num(c, "wait_max_ns") / 1e9);
	fprintf(f, "%s_sum{%s} %.9g\n", name, labels, num(c, "wait_sum_ns") / 1e9);
	fprintf(f, "%s_count{%s} %lld\n", name, labels, (long long)num(c, "waits"));
}

static void ctx_families(FILE *f, json_object *gpus)
{
	static const struct { const char *name, *key, *help; } counters[] = {
		{ "gpup_partition_engine_seconds_total", "engine_ns",
		  "Engine time charged to a partition's queue." },
		{ "gpup_partition_slices_total", "slices", "Times the scheduler picked the queue." },
		{ "gpup_partition_preemptions_total", "preemptions",
		  "Slices that ended with work left." },
		{ "gpup_partition_overrun_seconds_total", "overrun_ns",
		  "Time run past the granted slices." },
		{ "gpup_partition_watchdog_resets_total", "watchdog_fired",
		  "Times the watchdog found the queue without progress and reset it." },
	};

	for (size_t i = 0; i < sizeof(counters) / sizeof(counters[0]); i++) {
		family(f, counters[i].name, "counter", counters[i].help);
		ctx_key = counters[i].key;
		each_ctx(gpus, f, counters[i].name, ctx_counter);
	}
	family(f, "gpup_partition_dispatch_wait_seconds", "summary",
	       "Time from runnable to running (quantile 1: the longest).");
	each_ctx(gpus, f, "gpup_partition_dispatch_wait_seconds", ctx_wait);
}

static void gpu_families(FILE *f, const struct gpup_pool *p)
{
	static const char *const names[] = { "gpup_gpu_vram_bytes", "gpup_gpu_vram_free_bytes",
					     "gpup_gpu_partitions" };
	static const char *const helps[] = { "VRAM of the GPU.", "VRAM not given to partitions.",
					     "Partitions on the GPU." };

	for (size_t k = 0; k < 3; k++) {
		family(f, names[k], "gauge", helps[k]);
		for (unsigned int i = 0; i < p->ngpus; i++) {
			const struct gpup_pool_gpu *g = &p->gpus[i];
			uint64_t v = g->vram_size;
			unsigned int n = 0;

			for (struct gpup_partition *q = p->parts; q; q = q->next)
				n += q->gpu == i;
			if (k == 1)
				v = gpup_buddy_free_units(&g->buddy) * g->buddy.unit;
			fprintf(f, "%s{gpu=\"%s\"} %llu\n", names[k], g->name,
				(unsigned long long)(k == 2 ? n : v));
		}
	}
}

static uint64_t part_value(struct gpup_partition *p, size_t k)
{
	struct dmn_part *dp = p->priv;
	struct vgpu_stats vs = { 0 };
	struct iommu_stats is = { 0 };

	if (dp && dp->vgpu)
		vgpu_get_stats(dp->vgpu, &vs);
	if (dp && dp->dom)
		iommu_get_stats(dp->dom, &is);
	switch (k) {
	case 0: return p->vram_size;
	case 1: return dp && dp->vfu ? vfu_server_dma_bytes(dp->vfu) : 0;
	case 2: return is.table_bytes;
	case 3: return dp && dp->vfu && vfu_server_connected(dp->vfu);
	case 4: return vs.commands;
	case 5: return vs.faults;
	case 6: return vs.interrupts;
	case 7: return vs.doorbells;
	case 8: return dp ? dp->moves : 0;
	default: return dp ? dp->last_move.pause_ns / 1000 : 0;
	}
}

static void part_families(FILE *f, struct gpup_daemon *d)
{
	static const struct { const char *name, *type, *help; } fam[] = {
		{ "gpup_partition_vram_bytes", "gauge", "VRAM of the partition." },
		{ "gpup_partition_dma_mapped_bytes", "gauge", "Guest memory its client mapped for DMA." },
		{ "gpup_partition_iommu_table_bytes", "gauge", "Its IO page tables." },
		{ "gpup_partition_client_connected", "gauge", "1 while a vfio-user client is attached." },
		{ "gpup_partition_commands_total", "counter", "Commands run." },
		{ "gpup_partition_faults_total", "counter", "Faults its queues raised." },
		{ "gpup_partition_interrupts_total", "counter", "Interrupts sent to its client." },
		{ "gpup_partition_doorbells_total", "counter", "Doorbells rung." },
		{ "gpup_partition_moves_total", "counter", "Moves to another GPU (gpup move)." },
		{ "gpup_partition_move_pause_microseconds", "gauge",
		  "How long its last move paused it." },
	};

	for (size_t k = 0; k < sizeof(fam) / sizeof(fam[0]); k++) {
		family(f, fam[k].name, fam[k].type, fam[k].help);
		for (struct gpup_partition *p = d->pool.parts; p; p = p->next)
			fprintf(f, "%s{partition=\"%s\",gpu=\"%s\"} %llu\n", fam[k].name, p->uuid,
				d->pool.gpus[p->gpu].name, (unsigned long long)part_value(p, k));
	}
}

/* The whole exposition, malloc'd; NULL when out of memory. */
static char *render(struct gpup_daemon *d, size_t *len)
{
	json_object *req = gpup_ctl_request(GPUP_CTL_M_STATS);
	json_object *st = gpup_tsched_ctl_stats(&d->pool, req);
	json_object *gpus = json_object_object_get(st, GPUP_CTL_F_GPUS);
	char *buf = NULL;
	FILE *f = open_memstream(&buf, len);

	if (f) {
		gpu_families(f, &d->pool);
		engine_family(f, gpus, "gpup_engine_busy_seconds_total", "counter",
			      "Time the engine ran contexts.", GPUP_CTL_F_BUSY_NS, 1e-9);
		engine_family(f, gpus, "gpup_engine_picks_total", "counter",
			      "Scheduler picks that returned a context.", "picks", 1);
		engine_family(f, gpus, "gpup_engine_switches_total", "counter",
			      "Picks of another context than the last.", "switches", 1);
		engine_family(f, gpus, "gpup_engine_slice_seconds", "gauge",
			      "The time slice in force.", GPUP_CTL_F_SLICE_NS, 1e-9);
		ctx_families(f, gpus);
		part_families(f, d);
		if (fclose(f)) {
			free(buf);
			buf = NULL;
		}
	}
	json_object_put(req);
	json_object_put(st);
	return buf;
}

/* ---- the server ---- */

static void mconn_close(struct gpup_daemon *d, struct dmn_mconn *c)
{
	for (struct dmn_mconn **pp = &d->mconns; *pp; pp = &(*pp)->next) {
		if (*pp == c) {
			*pp = c->next;
			break;
		}
	}
	epoll_ctl(d->epfd, EPOLL_CTL_DEL, c->fd, NULL);
	close(c->fd);
	free(c->out);
	free(c);
	d->nmconns--;
}

/* "[ADDR:]PORT", ADDR an IPv4 address or [IPv6]; 127.0.0.1 by default;
 * PORT 0: one the kernel picks (the log line says which). */
static int parse_addr(const char *s, struct sockaddr_storage *ss, socklen_t *len)
{
	struct sockaddr_in *in = (struct sockaddr_in *)ss;
	struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)ss;
	const char *colon = strrchr(s, ':');
	char host[64] = "127.0.0.1", *end;
	unsigned long port = strtoul(colon ? colon + 1 : s, &end, 10);

	if (*end || end == s || port > 65535 || (colon && (size_t)(colon - s) >= sizeof(host)))
		return -EINVAL;
	if (colon)
		snprintf(host, sizeof(host), "%.*s", (int)(colon - s), s);
	memset(ss, 0, sizeof(*ss));
	if (host[0] == '[' && host[strlen(host) - 1] == ']') {
		host[strlen(host) - 1] = '\0';
		in6->sin6_family = AF_INET6;
		in6->sin6_port = htons((uint16_t)port);
		*len = sizeof(*in6);
		return inet_pton(AF_INET6, host + 1, &in6->sin6_addr) == 1 ? 0 : -EINVAL;
	}
	in->sin_family = AF_INET;
	in->sin_port = htons((uint16_t)port);
	*len = sizeof(*in);
	return inet_pton(AF_INET, host, &in->sin_addr) == 1 ? 0 : -EINVAL;
}

static void log_address(int fd)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);
	char host[INET6_ADDRSTRLEN] = "?";
	unsigned int port = 0;

	if (!getsockname(fd, (struct sockaddr *)&ss, &len) && ss.ss_family == AF_INET6) {
		inet_ntop(AF_INET6, &((struct sockaddr_in6 *)&ss)->sin6_addr, host, sizeof(host));
		port = ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
		gpup_daemon_log("metrics: http://[%s]:%u/metrics", host, port);
		return;
	}
	inet_ntop(AF_INET, &((struct sockaddr_in *)&ss)->sin_addr, host, sizeof(host));
	port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
	gpup_daemon_log("metrics: http://%s:%u/metrics", host, port);
}

int dmn_metrics_open(struct gpup_daemon *d)
{
	struct epoll_event ev = { .events = EPOLLIN, .data.ptr = &d->metrics_src };
	struct sockaddr_storage ss;
	socklen_t len;
	int one = 1, rc, fd;

	if (!d->cfg.metrics)
		return 0;
	if (parse_addr(d->cfg.metrics, &ss, &len)) {
		gpup_daemon_logl(LOG_ERR, "--metrics %s: not [ADDR:]PORT", d->cfg.metrics);
		return -EINVAL;
	}
	fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) ||
	    bind(fd, (struct sockaddr *)&ss, len) || listen(fd, 16)) {
		rc = -errno;
		gpup_daemon_logl(LOG_ERR, "cannot serve metrics on %s: %s", d->cfg.metrics,
				 strerror(-rc));
		if (fd >= 0)
			close(fd);
		return rc;
	}
	d->metrics_fd = fd;
	d->metrics_src = (struct dmn_src){ DMN_SRC_METRICS, d };
	if (epoll_ctl(d->epfd, EPOLL_CTL_ADD, fd, &ev))
		return -errno;
	log_address(fd);
	return 0;
}

void dmn_metrics_accept(struct gpup_daemon *d)
{
	int fd = accept4(d->metrics_fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
	struct epoll_event ev = { .events = EPOLLIN };
	struct dmn_mconn *c;

	if (fd < 0)
		return;
	if (d->nmconns >= MCONN_MAX || !(c = calloc(1, sizeof(*c)))) {
		close(fd);
		return;
	}
	c->src = (struct dmn_src){ DMN_SRC_MCONN, c };
	c->fd = fd;
	c->deadline_ms = now_ms() + MCONN_DEADLINE_MS;
	ev.data.ptr = &c->src;
	if (epoll_ctl(d->epfd, EPOLL_CTL_ADD, fd, &ev)) {
		close(fd);
		free(c);
		return;
	}
	c->next = d->mconns;
	d->mconns = c;
	d->nmconns++;
}

/* The response to a whole request: the metrics for GET /metrics (HEAD: the
 * headers alone), 404 or 405 otherwise. */
static int respond(struct gpup_daemon *d, struct dmn_mconn *c)
{
	bool get = !strncmp(c->req, "GET ", 4), head = !strncmp(c->req, "HEAD ", 5);
	const char *path = c->req + (head ? 5 : 4);
	bool ok = (get || head) && !strncmp(path, "/metrics", 8) &&
		  strchr(" ?", path[8]) && path[8];
	const char *status = ok ? "200 OK" : get || head ? "404 Not Found" :
				  "405 Method Not Allowed";
	char *body = NULL;
	size_t blen = 0;
	FILE *f;

	if (ok && !(body = render(d, &blen)))
		return -ENOMEM;
	if (!ok) {
		body = strdup("gpup: the metrics are at /metrics\n");
		blen = body ? strlen(body) : 0;
	}
	f = open_memstream(&c->out, &c->out_len);
	if (!f || !body) {
		if (f)
			fclose(f);
		free(body);
		return -ENOMEM;
	}
	fprintf(f, "HTTP/1.1 %s\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8\r\n"
		   "Content-Length: %zu\r\nConnection: close\r\n\r\n", status, blen);
	if (!head)
		fwrite(body, 1, blen, f);
	free(body);
	return fclose(f) ? -ENOMEM : 0;
}

/* Send what the socket takes: 1 when all is out, 0 to wait, < 0 on error. */
static int flush(struct gpup_daemon *d, struct dmn_mconn *c)
{
	struct epoll_event ev = { .events = EPOLLOUT, .data.ptr = &c->src };

	while (c->out_off < c->out_len) {
		ssize_t n = send(c->fd, c->out + c->out_off, c->out_len - c->out_off, MSG_NOSIGNAL);

		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return epoll_ctl(d->epfd, EPOLL_CTL_MOD, c->fd, &ev) ? -errno : 0;
		if (n <= 0)
			return -EIO;
		c->out_off += (size_t)n;
	}
	return 1;
}

void dmn_metrics_ready(struct gpup_daemon *d, struct dmn_mconn *c)
{
	ssize_t n;

	if (!c->out) {
		n = recv(c->fd, c->req + c->req_len, sizeof(c->req) - 1 - c->req_len, 0);
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return;
		if (n <= 0) {
			mconn_close(d, c);
			return;
		}
		c->req_len += (size_t)n;
		c->req[c->req_len] = '\0';
		if (!strstr(c->req, "\r\n\r\n") && !strstr(c->req, "\n\n")) {
			if (c->req_len == sizeof(c->req) - 1)
				mconn_close(d, c);   /* not a scrape */
			return;
		}
		if (respond(d, c)) {
			mconn_close(d, c);
			return;
		}
	}
	if (flush(d, c))
		mconn_close(d, c);
}

int dmn_metrics_expire(struct gpup_daemon *d)
{
	uint64_t now = now_ms(), next = UINT64_MAX;
	struct dmn_mconn *c = d->mconns;

	while (c) {
		struct dmn_mconn *n = c->next;

		if (c->deadline_ms <= now)
			mconn_close(d, c);
		else if (c->deadline_ms < next)
			next = c->deadline_ms;
		c = n;
	}
	return next == UINT64_MAX ? -1 : (int)(next - now);
}

void dmn_metrics_close(struct gpup_daemon *d)
{
	while (d->mconns)
		mconn_close(d, d->mconns);
	if (d->metrics_fd >= 0)
		close(d->metrics_fd);
	d->metrics_fd = -1;
}
