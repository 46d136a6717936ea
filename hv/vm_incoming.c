// SPDX-License-Identifier: MIT
/*
 * `gpup run --incoming tcp:HOST:PORT`: the destination of a live
 * migration.  It listens, takes one connection, and feeds what comes to
 * the stream parser (vm_stream.c); the HEADER tells the VM's shape, so
 * the VM is built only then, with this command line's --gpu list (each
 * partition on this host's daemon, of the source's type) taken to
 * RESUMING.  Pages land in guest RAM and in the partitions' VRAM as they
 * come, each partition's stream goes to it with MIG_DATA_WRITE, the vCPUs
 * and the VMM's devices are loaded; nothing runs.  Only when END checked
 * out and every partition took its stream (RESUMING -> STOP) do we say
 * READY; the VM runs after the source's GO.  Any refusal is one line
 * here, sent back to the source too, and `gpup run` exits with
 * HV_EXIT_MIGRATION, leaving nothing behind (the partitions' daemon
 * resets one left in RESUMING when its client goes).
 *
 * `gpup run --restore FILE` is the same consumer fed from a chain of
 * checkpoint files (vm_ckpt.c) instead of a socket: the oldest builds the
 * VM and gives its guest RAM, each later one the RAM pages that changed,
 * and the newest everything else; the VM runs once the last partition
 * took its stream, with no one to wait for.
 */
#include <errno.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include "hv/hv_int.h"
#include "uapi/gpup_mig.h"
#include "uapi/vfio_mig.h"
#include "vfu/vfu.h"

#define PG GPUP_VMMIG_PAGE_SIZE
#define HV_IN_IO_MS 10000u          /* a source silent this long is gone */
/* An ACK goes out at a lull of 1 ms (one at every short pause would cost
 * the source more wake-ups than the stream itself), and every so many
 * bytes in any case, so that a source waiting for us to work off a
 * backlog sees that we are not silent. */
#define HV_IN_ACK_BYTES (4u << 20)
#define HV_IN_ACK_LULL_MS 1
#define HV_IN_BUF (128u << 10)

/* Watches a partition's stream for its ZERO chunks: the device zeroes
 * only pages its own stream wrote, so a page we wrote through BAR2 is
 * ours to zero when its stream says so. */
struct hv_devpeek {
	struct gpup_mig_chunk head;
	uint32_t hhave, zhave;
	uint64_t skip;
	bool zero;
	struct gpup_mig_zero z;
};

struct hv_in {
	struct hv_vm *vm;
	const struct hv_config *cfg;
	struct hv_config *built;
	struct hv_vms_reader rd;
	int sock;
	uint64_t *ours[HV_MAX_GPUS];   /* BAR2 pages we wrote */
	struct hv_devpeek peek[HV_MAX_GPUS];
	uint64_t bytes, t0;
	bool acks;                     /* the source wants ACKs */
	uint64_t acked;                /* the stream bytes the last ACK gave */
	/* The stop as seen here: the first vCPU chunk, END, READY, GO, and
	 * the partitions running. */
	uint64_t t_cpu, t_end, t_ready, t_go, t_run;
	/* A restore: the shape of the first file, which the others must
	 * have; while base_only, only guest RAM is taken from a file. */
	struct gpup_vmmig_header shape;
	bool base_only;
	struct hv_ram ram;             /* made ready while we waited */
};

static int hv_in_refuse(struct hv_in *in, int rc, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static int hv_in_refuse(struct hv_in *in, int rc, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(in->rd.err, sizeof(in->rd.err), fmt, ap);
	va_end(ap);
	return rc;
}

static int hv_in_feature(struct hv_in *in, unsigned int i, uint32_t state)
{
	struct vfio_device_feature_mig_state s = { .device_state = state, .data_fd = -1 };
	int rc = vfu_client_feature(hv_vgpu_client(in->vm->gpus[i]), VFIO_DEVICE_FEATURE_SET |
				    VFIO_DEVICE_FEATURE_MIG_DEVICE_STATE, &s, sizeof(s), &s,
				    sizeof(s));

	if (rc >= 0)
		return 0;
	if (state == VFIO_DEVICE_STATE_STOP)
		return hv_in_refuse(in, rc, "partition %u refused its stream: %s (the daemon's "
				    "log says why)", i, strerror(-rc));
	return hv_in_refuse(in, rc, "partition %u cannot enter migration state %u: %s", i,
			    state, strerror(-rc));
}

/* Every partition into RESUMING: reset, ready for its stream. */
static int hv_in_resuming(struct hv_in *in)
{
	int rc = 0;

	for (unsigned int i = 0; rc == 0 && i < in->vm->ngpus; i++)
		rc = hv_in_feature(in, i, VFIO_DEVICE_STATE_RESUMING);
	return rc;
}

/* A later file of a chain: the VM is built, and must be this one. */
static int hv_in_same_shape(struct hv_in *in, const struct gpup_vmmig_header *h)
{
	if (memcmp(h, &in->shape, sizeof(*h)))
		return hv_in_refuse(in, -EINVAL, "another VM than its base's (RAM, vCPUs or "
				    "partitions differ)");
	return in->base_only ? 0 : hv_in_resuming(in);
}

/* The VM as the HEADER says, with our --gpu list, partitions RESUMING
 * (not yet while the older files of a chain give their RAM). */
static int hv_in_header(void *opaque, const struct gpup_vmmig_header *h)
{
	struct hv_in *in = opaque;
	struct hv_vm *vm = in->vm;
	int rc;

	if (vm->cfg)
		return hv_in_same_shape(in, h);
	in->shape = *h;
	in->acks = h->flags & GPUP_VMMIG_HF_ACKS;
	if (h->ngpus != in->cfg->ngpus)
		return hv_in_refuse(in, -EINVAL, "the VM has %u GPU partitions, this command "
				    "line gives %u (--gpu)", h->ngpus, in->cfg->ngpus);
	*in->built = *in->cfg;
	in->built->mem_size = h->mem_size;
	in->built->ncpus = h->ncpus;
	in->built->irqchip = !!(h->flags & GPUP_VMMIG_HF_IRQCHIP);
	if (!in->built->kernel)
		in->built->kernel = in->cfg->restore ? "(restored)" : "(migrated in)";
	if (in->ram.mem && in->ram.size != h->mem_size) {
		hv_log("the VM has %llu bytes of RAM, not the %llu of --mem: its RAM is made "
		       "anew", (unsigned long long)h->mem_size, (unsigned long long)in->ram.size);
		hv_ram_free(&in->ram);
	}
	in->built->ram = in->ram.mem ? &in->ram : NULL;
	rc = hv_build_vm(vm, in->built);
	if (rc)
		return hv_in_refuse(in, -EIO, "cannot build the VM here (see above)");
	vm->incoming = in->cfg->incoming ? in->cfg->incoming : in->cfg->restore;
	for (unsigned int i = 0; i < vm->ngpus; i++) {
		uint64_t size;

		hv_vgpu_vram(vm->gpus[i], &size);
		if (size != h->vram_size[i])
			return hv_in_refuse(in, -EINVAL, "partition %u has %llu bytes of VRAM here, "
					    "the source's %llu", i, (unsigned long long)size,
					    (unsigned long long)h->vram_size[i]);
		in->ours[i] = calloc((size / PG + 63) / 64, 8);
		if (!in->ours[i])
			return -ENOMEM;
	}
	return in->base_only ? 0 : hv_in_resuming(in);
}

static uint8_t *hv_in_space(struct hv_in *in, uint32_t space, uint64_t *size)
{
	if (space == GPUP_VMMIG_SPACE_RAM) {
		*size = in->vm->mem_size;
		return in->vm->mem;
	}
	return hv_vgpu_vram(in->vm->gpus[space - GPUP_VMMIG_SPACE_VRAM0], size);
}

/* The parser checked the range against the HEADER, which the VM follows. */
static int hv_in_pages(void *opaque, uint32_t space, uint64_t off, const uint8_t *data,
		       uint32_t pages)
{
	struct hv_in *in = opaque;
	uint64_t size;
	uint8_t *base;

	if (in->base_only && space != GPUP_VMMIG_SPACE_RAM)
		return 0;
	base = hv_in_space(in, space, &size);
	if (data != base + off)
		memcpy(base + off, data, (size_t)pages * PG);
	if (space != GPUP_VMMIG_SPACE_RAM)
		for (uint64_t p = off / PG; p < off / PG + pages; p++)
			in->ours[space - 1][p / 64] |= 1ull << (p % 64);
	return 0;
}

/* The pages go straight to their place: nothing runs here before the
 * whole stream checked out, and nothing at all of a refused one. */
static uint8_t *hv_in_place(void *opaque, uint32_t space, uint64_t off, uint32_t pages)
{
	struct hv_in *in = opaque;
	uint64_t size;

	(void)pages;
	if (in->base_only && space != GPUP_VMMIG_SPACE_RAM)
		return NULL;
	return hv_in_space(in, space, &size) + off;
}

/* Zero pages become holes again: nothing is allocated for them. */
static int hv_in_zero(void *opaque, uint32_t space, uint64_t off, uint64_t pages)
{
	struct hv_in *in = opaque;
	uint64_t size;
	uint8_t *base;

	if (in->base_only && space != GPUP_VMMIG_SPACE_RAM)
		return 0;
	base = hv_in_space(in, space, &size);
	if (madvise(base + off, pages * PG, MADV_REMOVE) < 0)
		memset(base + off, 0, pages * PG);
	if (space != GPUP_VMMIG_SPACE_RAM)
		for (uint64_t p = off / PG; p < off / PG + pages; p++)
			in->ours[space - 1][p / 64] &= ~(1ull << (p % 64));
	return 0;
}

static void hv_in_peek_zero(struct hv_in *in, unsigned int gpu)
{
	struct hv_devpeek *k = &in->peek[gpu];
	uint64_t size, first = k->z.offset / PG, n = k->z.pages;
	uint8_t *vram = hv_vgpu_vram(in->vm->gpus[gpu], &size);

	if (k->z.offset % PG || first >= size / PG)
		return; /* the device refuses it */
	if (n > size / PG - first)
		n = size / PG - first;
	for (uint64_t p = first; p < first + n; p++)
		if (in->ours[gpu][p / 64] & (1ull << (p % 64))) {
			memset(vram + p * PG, 0, PG);
			in->ours[gpu][p / 64] &= ~(1ull << (p % 64));
		}
}

static void hv_in_peek(struct hv_in *in, unsigned int gpu, const uint8_t *p, uint32_t n)
{
	struct hv_devpeek *k = &in->peek[gpu];

	while (n) {
		uint32_t t;

		if (!k->skip) {
			t = (uint32_t)sizeof(k->head) - k->hhave;
			t = t < n ? t : n;
			memcpy((uint8_t *)&k->head + k->hhave, p, t);
			k->hhave += t;
			if (k->hhave == sizeof(k->head)) {
				k->hhave = 0;
				k->skip = k->head.len;
				k->zero = k->head.kind == GPUP_MIG_ZERO && k->head.len == sizeof(k->z);
				k->zhave = 0;
			}
		} else {
			t = k->skip < n ? (uint32_t)k->skip : n;
			if (k->zero) {
				memcpy((uint8_t *)&k->z + k->zhave, p, t);
				k->zhave += t;
				if (k->zhave == sizeof(k->z))
					hv_in_peek_zero(in, gpu);
			}
			k->skip -= t;
		}
		p += t;
		n -= t;
	}
}

static int hv_in_dev(void *opaque, uint32_t gpu, const uint8_t *data, uint32_t len)
{
	struct hv_in *in = opaque;
	struct vfu_client *c = hv_vgpu_client(in->vm->gpus[gpu]);
	uint32_t max = vfu_client_max_xfer(c);

	if (in->base_only)
		return 0;
	for (uint32_t off = 0; off < len;) {
		uint32_t n = len - off < max ? len - off : max;
		int rc = vfu_client_mig_write(c, data + off, n);

		if (rc < 0)
			return hv_in_refuse(in, rc, "partition %u refused its stream: %s (wrong "
					    "type, size or features?  the daemon's log says)",
					    gpu, strerror(-rc));
		hv_in_peek(in, gpu, data + off, n);
		off += n;
	}
	return 0;
}

static int hv_in_cpu(void *opaque, uint32_t index, const uint8_t *recs, uint32_t len)
{
	struct hv_in *in = opaque;

	if (in->base_only)
		return 0;
	if (!in->t_cpu)
		in->t_cpu = hv_now_ns();
	return hv_vcpu_load(&in->vm->vcpus[index], recs, len, in->rd.err, sizeof(in->rd.err));
}

static int hv_in_vmstate(void *opaque, const uint8_t *recs, uint32_t len)
{
	struct hv_in *in = opaque;

	if (in->base_only)
		return 0;
	return hv_vmstate_load(in->vm, recs, len, in->rd.err, sizeof(in->rd.err));
}

static const struct hv_vms_ops hv_in_ops = {
	.header = hv_in_header,
	.pages = hv_in_pages,
	.zero = hv_in_zero,
	.dev = hv_in_dev,
	.cpu = hv_in_cpu,
	.vmstate = hv_in_vmstate,
	.place = hv_in_place,
};

static int hv_in_reply(struct hv_in *in, uint32_t code, const char *msg)
{
	struct gpup_vmmig_reply r = { .magic = GPUP_VMMIG_REPLY_MAGIC, .code = code };

	snprintf(r.msg, sizeof(r.msg), "%.247s", msg);
	return hv_tcp_send(in->sock, &r, sizeof(r), HV_IN_IO_MS);
}

/* One connection, waiting for a signal too: the socket, or -EINTR. */
static int hv_in_accept(const char *addr, int sig_fd)
{
	struct pollfd p[2];
	int lfd = hv_tcp_listen(addr), fd;

	if (lfd < 0) {
		hv_log("--incoming %s: cannot listen there: %s", addr, strerror(-lfd));
		return lfd;
	}
	hv_log("waiting for a migration on %s", addr);
	p[0] = (struct pollfd){ .fd = lfd, .events = POLLIN };
	p[1] = (struct pollfd){ .fd = sig_fd, .events = POLLIN };
	while (poll(p, 2, -1) < 0 && errno == EINTR)
		;
	if (p[1].revents) {
		close(lfd);
		return -EINTR;
	}
	fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
	close(lfd); /* one migration per VM */
	if (fd < 0)
		return -errno;
	hv_tcp_accepted(fd);
	return fd;
}

/* All that came is loaded and nothing more is here: the source may be
 * waiting to hear so before it goes on (GPUP_VMMIG_HF_ACKS). */
static int hv_in_ack(struct hv_in *in)
{
	struct gpup_vmmig_reply r = { .magic = GPUP_VMMIG_REPLY_MAGIC, .code = GPUP_VMMIG_ACK,
				      .bytes = in->rd.pos };

	if (!in->acks || in->acked == in->rd.pos)
		return 0;
	in->acked = in->rd.pos;
	return hv_tcp_send(in->sock, &r, sizeof(r), HV_IN_IO_MS);
}

static int hv_in_poll(struct pollfd *p, unsigned int n, int ms)
{
	int rc;

	do
		rc = poll(p, n, ms);
	while (rc < 0 && errno == EINTR);
	return rc;
}

/* Wait for the stream, watching the partitions' connections too: a
 * daemon that goes away mid-stream ends the migration at once. */
static int hv_in_wait(struct hv_in *in)
{
	struct pollfd p[1 + HV_MAX_GPUS] = { { .fd = in->sock, .events = POLLIN } };
	unsigned int n = 1;
	int rc;

	for (unsigned int i = 0; in->vm->cfg && i < in->vm->ngpus; i++)
		p[n++] = (struct pollfd){ .fd = vfu_client_socket(hv_vgpu_client(in->vm->gpus[i])) };
	if (in->rd.pos - in->acked >= HV_IN_ACK_BYTES && hv_in_ack(in) < 0)
		return hv_in_refuse(in, -ECONNRESET, "the source went away");
	rc = hv_in_poll(p, n, HV_IN_ACK_LULL_MS);
	if (rc == 0) {
		if (hv_in_ack(in) < 0)
			return hv_in_refuse(in, -ECONNRESET, "the source went away");
		rc = hv_in_poll(p, n, HV_IN_IO_MS);
	}
	for (unsigned int i = 1; i < n; i++)
		if (p[i].revents)
			return hv_in_refuse(in, -ENOTCONN, "partition %u: its daemon closed the "
					    "connection", i - 1);
	if (rc == 0)
		return hv_in_refuse(in, -ETIMEDOUT, "the source went silent");
	return 0;
}

/* Everything until END, checked and loaded.  The pages of a PAGES chunk
 * are received straight into their place; the rest goes through buf,
 * which is small enough that most pages are. */
static int hv_in_receive(struct hv_in *in)
{
	static uint8_t buf[HV_IN_BUF];

	for (;;) {
		size_t room = sizeof(buf);
		uint8_t *to = hv_vms_direct(&in->rd, &room);
		ssize_t n;
		int rc = hv_in_wait(in);

		if (rc < 0)
			return rc;
		n = hv_tcp_recv_some(in->sock, to ? to : buf, to ? room : sizeof(buf),
				     HV_IN_IO_MS);
		if (n < 0)
			return hv_in_refuse(in, (int)n, "the source went away: %s",
					    strerror((int)-n));
		if (n == 0)
			return hv_vms_finish(&in->rd);
		in->bytes += (uint64_t)n;
		rc = hv_vms_feed(&in->rd, to ? to : buf, (size_t)n);
		if (rc < 0)
			return rc;
		if (in->rd.phase == HV_VMS_DONE) {
			in->t_end = hv_now_ns();
			return 0;
		}
	}
}

/* Partitions STOP (each checks its stream), READY, GO, partitions RUNNING. */
static int hv_in_commit(struct hv_in *in)
{
	struct gpup_vmmig_reply go;
	int rc = 0;

	for (unsigned int i = 0; rc == 0 && i < in->vm->ngpus; i++)
		rc = hv_in_feature(in, i, VFIO_DEVICE_STATE_STOP);
	if (rc < 0)
		return rc;
	in->t_ready = hv_now_ns();
	if (hv_in_reply(in, GPUP_VMMIG_READY, "") < 0 ||
	    hv_tcp_recv(in->sock, &go, sizeof(go), HV_IN_IO_MS) < 0 ||
	    go.magic != GPUP_VMMIG_REPLY_MAGIC || go.code != GPUP_VMMIG_GO) {
		/* Without GO the source may still run the VM: we must not. */
		return hv_in_refuse(in, -ECONNRESET, "the source did not confirm (no GO); "
				    "the VM stays where it was");
	}
	in->t_go = hv_now_ns();
	for (unsigned int i = 0; rc == 0 && i < in->vm->ngpus; i++)
		rc = hv_in_feature(in, i, VFIO_DEVICE_STATE_RUNNING);
	in->t_run = hv_now_ns();
	return rc;
}

/* Let the source read our refusal before the connection goes. */
static void hv_in_linger(struct hv_in *in)
{
	uint8_t buf[65536];
	uint64_t until = hv_now_ns() + 3000000000ull;

	shutdown(in->sock, SHUT_WR);
	while (hv_now_ns() < until && hv_tcp_recv_some(in->sock, buf, sizeof(buf), 500) > 0)
		;
}

int hv_incoming(struct hv_vm *vm, const struct hv_config *cfg, struct hv_config *built,
		int sig_fd)
{
	struct hv_in in = { .vm = vm, .cfg = cfg, .built = built, .sock = -1, .ram.fd = -1 };
	int rc;

	hv_vms_reader_init(&in.rd, &hv_in_ops, &in);
	/* The RAM --mem announced is faulted in while we wait, rather than
	 * page by page as the stream's pages land in it. */
	if (cfg->incoming_mem && hv_ram_prepare(&in.ram, cfg->incoming_mem) < 0)
		hv_ram_free(&in.ram);
	in.sock = hv_in_accept(cfg->incoming, sig_fd);
	if (in.sock < 0)
		hv_ram_free(&in.ram);
	if (in.sock == -EINTR)
		return HV_EXIT_STOPPED;
	if (in.sock < 0)
		return HV_EXIT_MIGRATION;
	in.t0 = hv_now_ns();
	rc = hv_in_receive(&in);
	if (rc == 0)
		rc = hv_in_commit(&in);
	if (rc < 0) {
		if (!in.rd.err[0])
			snprintf(in.rd.err, sizeof(in.rd.err), "%s", strerror(-rc));
		hv_log("incoming migration refused: %s", in.rd.err);
		hv_in_reply(&in, GPUP_VMMIG_REFUSED, in.rd.err);
		hv_in_linger(&in);
	} else {
		hv_log("migrated in: %llu bytes in %.1f ms; the VM runs here (from the first "
		       "vCPU's state: END %.2f ms, READY %.2f ms, GO %.2f ms, partitions "
		       "running %.2f ms)", (unsigned long long)in.bytes,
		       (double)(hv_now_ns() - in.t0) / 1e6, (double)(in.t_end - in.t_cpu) / 1e6,
		       (double)(in.t_ready - in.t_cpu) / 1e6, (double)(in.t_go - in.t_cpu) / 1e6,
		       (double)(in.t_run - in.t_cpu) / 1e6);
		vm->incoming = NULL;
	}
	close(in.sock);
	hv_ram_free(&in.ram);
	hv_vms_reader_free(&in.rd);
	for (unsigned int i = 0; i < HV_MAX_GPUS; i++)
		free(in.ours[i]);
	return rc < 0 ? HV_EXIT_MIGRATION : 0;
}

/* Each file of the chain through the consumer, oldest first. */
static int hv_restore_chain(struct hv_in *in, struct hv_ckpt_file *files, unsigned int n,
			    char *err, size_t errlen)
{
	int rc = 0;

	for (unsigned int i = 0; rc == 0 && i < n; i++) {
		hv_vms_reader_init(&in->rd, &hv_in_ops, in);
		in->base_only = i + 1 < n;
		rc = hv_ckpt_feed(&files[i], &in->rd, err, errlen);
		in->bytes += files[i].size;
		hv_vms_reader_free(&in->rd);
	}
	return rc;
}

/* Partitions STOP (each checks its stream), then RUNNING; the RAM hashes
 * of this checkpoint, for the next incremental one. */
static int hv_restore_commit(struct hv_in *in, const struct hv_ckpt_file *top)
{
	struct hv_vm *vm = in->vm;
	int rc = 0;

	for (unsigned int i = 0; rc == 0 && i < vm->ngpus; i++)
		rc = hv_in_feature(in, i, VFIO_DEVICE_STATE_STOP);
	for (unsigned int i = 0; rc == 0 && i < vm->ngpus; i++)
		rc = hv_in_feature(in, i, VFIO_DEVICE_STATE_RUNNING);
	if (rc < 0)
		return rc;
	vm->ckpt_hash = malloc(vm->mem_size / PG * 8);
	if (vm->ckpt_hash) {
		hv_ckpt_hash_ram(vm, vm->ckpt_hash);
		vm->ckpt_ident = top->tail.ident;
	}
	return 0;
}

int hv_restore(struct hv_vm *vm, const struct hv_config *cfg, struct hv_config *built)
{
	struct hv_in in = { .vm = vm, .cfg = cfg, .built = built, .sock = -1 };
	struct hv_ckpt_file *files = calloc(GPUP_VMCKPT_MAX_CHAIN, sizeof(*files));
	char err[sizeof(in.rd.err) + 4200] = "";
	unsigned int n = 0;
	int rc = files ? 0 : -ENOMEM;

	in.t0 = hv_now_ns();
	if (rc == 0)
		rc = hv_ckpt_chain(cfg->restore, files, &n, err, sizeof(err));
	if (rc == 0)
		rc = hv_restore_chain(&in, files, n, err, sizeof(err));
	if (rc == 0 && (rc = hv_restore_commit(&in, &files[n - 1])) < 0)
		snprintf(err, sizeof(err), "%s: %s", cfg->restore, in.rd.err);
	if (rc < 0) {
		hv_log("restore refused: %s", err[0] ? err : strerror(-rc));
	} else {
		hv_log("restored from %s (%u file%s, %llu bytes in %.1f ms); the VM runs here",
		       cfg->restore, n, n == 1 ? "" : "s", (unsigned long long)in.bytes,
		       (double)(hv_now_ns() - in.t0) / 1e6);
		vm->incoming = NULL;
	}
	hv_ckpt_close(files, n);
	free(files);
	for (unsigned int i = 0; i < HV_MAX_GPUS; i++)
		free(in.ours[i]);
	return rc < 0 ? HV_EXIT_MIGRATION : 0;
}
