/* SPDX-License-Identifier: MIT */
/*
 * dma.c: the DMA API engines use to reach guest memory.
 *
 * A transfer runs in two steps inside one epoch section (epoch.c): first
 * every byte of every segment is translated and permission-checked into a
 * plan of host chunks; only if all of it is good is anything copied.  A
 * failure copies nothing, queues one fault for the first bad byte (in
 * transfer order) and returns -EFAULT or -EACCES.  Because an unmap waits
 * for open sections, the host memory behind the plan stays mapped until
 * the copy is done even if an unmap clears the PTEs meanwhile.
 *
 * One hazard is outside the IOMMU's reach: the file behind a mapping can
 * shrink under it (a client that truncates its guest-memory fd), and the
 * next access to the vanished pages raises SIGBUS.  Every access to mapped
 * memory therefore runs under a per-thread recovery point: the SIGBUS
 * handler jumps back to it and the access fails with -EFAULT and a fault
 * record, like an unmapped IOVA, so one hostile client cannot take the
 * daemon down.  Bytes copied before the fault stay copied: "all or
 * nothing" holds for everything the IOMMU can check, not for memory that
 * disappears in the middle of a copy.  A SIGBUS anywhere else goes to the
 * handler that was installed before ours.
 *
 * Chunks of a remote mapping are planned and checked with the rest, but
 * moved by the domain's remote ops after the epoch section is left (a
 * peer may take long to answer, and an unmap must not wait for it), in
 * transfer order, once the host chunks are copied.  The ops are counted
 * as in use before the section ends, so iommu_set_remote(NULL) can wait
 * for the transfers still using them.
 */
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include "iommu/iommu_int.h"

#define PLAN_LOCAL 8u

struct dma_chunk {
	uint8_t *host;            /* for a remote chunk, its IOVA */
	uint8_t *buf;
	uint64_t iova;
	size_t len;
	bool remote;
};

struct dma_plan {
	struct dma_chunk *c;
	unsigned int n, cap;
	unsigned int nremote;
	struct dma_chunk local[PLAN_LOCAL];
};

struct dma_err {
	uint64_t iova;
	unsigned int reason;
};

static void plan_init(struct dma_plan *p)
{
	p->c = p->local;
	p->n = 0;
	p->nremote = 0;
	p->cap = PLAN_LOCAL;
}

static void plan_fini(struct dma_plan *p)
{
	if (p->c != p->local)
		free(p->c);
}

static int plan_grow(struct dma_plan *p)
{
	unsigned int cap = p->cap * 2;
	struct dma_chunk *c;

	if (p->c == p->local) {
		c = malloc(cap * sizeof(*c));
		if (c)
			memcpy(c, p->local, sizeof(p->local));
	} else {
		c = realloc(p->c, cap * sizeof(*c));
	}
	if (!c)
		return -ENOMEM;
	p->c = c;
	p->cap = cap;
	return 0;
}

/* Chunks contiguous in IOVA, host and buffer merge, so a large transfer
 * over one host mapping stays one memcpy. */
static int plan_add(struct dma_plan *p, uint8_t *host, uint8_t *buf, uint64_t iova, size_t len,
		    bool remote)
{
	if (p->n) {
		struct dma_chunk *l = &p->c[p->n - 1];

		if (l->host + l->len == host && l->buf + l->len == buf &&
		    l->iova + l->len == iova && l->remote == remote) {
			l->len += len;
			return 0;
		}
	}
	if (p->n == p->cap && plan_grow(p) < 0)
		return -ENOMEM;
	p->c[p->n++] = (struct dma_chunk){ host, buf, iova, len, remote };
	p->nremote += remote;
	return 0;
}

static int plan_segment(struct iommu_domain *d, struct dma_plan *p, const struct iommu_sg *sg,
			unsigned int access, struct dma_err *err)
{
	uint64_t iova = sg->iova;
	uint8_t *buf = sg->buf;
	size_t left = sg->len;

	while (left) {
		struct iommu_xl xl;
		size_t n;
		int rc;

		err->iova = iova;
		if (iommu_xlate(d, iova, &xl) < 0) {
			err->reason = IOMMU_FAULT_UNMAPPED;
			return -EFAULT;
		}
		if (!(xl.prot & access)) {
			err->reason = IOMMU_FAULT_PERM;
			return -EACCES;
		}
		n = xl.end - iova < left ? (size_t)(xl.end - iova) : left;
		rc = plan_add(p, xl.host, buf, iova, n, xl.prot & IOMMU_XL_REMOTE);
		if (rc)
			return rc;
		iova += n;
		buf += n;
		left -= n;
	}
	return 0;
}

/* memmove: a client may map memory the device also copies from (its own
 * VRAM window, say) into IOVA space, and overlap must not be undefined. */
static void plan_copy(struct dma_plan *p, unsigned int access)
{
	for (unsigned int i = 0; i < p->n; i++) {
		struct dma_chunk *c = &p->c[i];

		if (c->remote)
			continue;
		if (access == IOMMU_WRITE)
			memmove(c->host, c->buf, c->len);
		else
			memmove(c->buf, c->host, c->len);
	}
}

/* volatile: the compiler knows memmove reads no global, and would
 * otherwise drop the store before the copy as dead (NULL follows it). */
static __thread sigjmp_buf *volatile dma_guard;
static struct sigaction prev_sigbus;
static pthread_once_t sigbus_once = PTHREAD_ONCE_INIT;

static void on_sigbus(int sig, siginfo_t *si, void *uc)
{
	if (dma_guard)
		siglongjmp(*dma_guard, 1);
	if (prev_sigbus.sa_flags & SA_SIGINFO) {
		prev_sigbus.sa_sigaction(sig, si, uc);
		return;
	}
	if (prev_sigbus.sa_handler != SIG_DFL && prev_sigbus.sa_handler != SIG_IGN) {
		prev_sigbus.sa_handler(sig);
		return;
	}
	signal(SIGBUS, SIG_DFL);
	raise(SIGBUS);
}

static void install_sigbus(void)
{
	struct sigaction sa = { .sa_sigaction = on_sigbus, .sa_flags = SA_SIGINFO | SA_NODEFER };

	sigemptyset(&sa.sa_mask);
	sigaction(SIGBUS, &sa, &prev_sigbus);
}

void iommu_dma_guard_init(void)
{
	pthread_once(&sigbus_once, install_sigbus);
}

/* Run the copy under the thread's recovery point: 0, or -EFAULT if the
 * memory behind it vanished.  Kept apart so that nothing the copy changes
 * needs to survive the jump. */
static int guarded_copy(struct dma_plan *p, unsigned int access)
{
	sigjmp_buf jb;

	if (sigsetjmp(jb, 0)) {
		dma_guard = NULL;
		return -EFAULT;
	}
	dma_guard = &jb;
	plan_copy(p, access);
	dma_guard = NULL;
	return 0;
}

static void plan_mark_dirty(struct iommu_domain *d, struct dma_plan *p, bool remote)
{
	struct iommu_dirty *dl = atomic_load_explicit(&d->dirty, memory_order_acquire);

	if (!dl)
		return;
	for (unsigned int i = 0; i < p->n; i++)
		if (p->c[i].remote == remote)
			iommu_dirty_mark(dl, p->c[i].iova, p->c[i].len);
}

/* The remote ops, counted as in use; inside an epoch section. */
static const struct iommu_remote_ops *remote_get(struct iommu_domain *d, void **opaque)
{
	const struct iommu_remote_ops *ops = atomic_load(&d->remote);

	if (ops) {
		atomic_fetch_add(&d->remote_users, 1);
		*opaque = atomic_load(&d->remote_opaque);
	}
	return ops;
}

/* Move the plan's remote chunks in order, outside any epoch section:
 * 0, -EAGAIN, or -EFAULT with the chunk to blame in *err. */
static int remote_copy(struct iommu_domain *d, struct dma_plan *p, unsigned int access,
		       struct dma_err *err)
{
	const struct iommu_remote_ops *ops;
	void *opaque = NULL;
	int rc = iommu_epoch_enter(d);

	if (rc)
		return rc;
	ops = remote_get(d, &opaque);
	iommu_epoch_exit();
	for (unsigned int i = 0; i < p->n && !rc; i++) {
		struct dma_chunk *c = &p->c[i];

		if (!c->remote)
			continue;
		rc = ops ? ops->xfer(opaque, c->iova, c->buf, c->len, access) : -EFAULT;
		if (rc && rc != -EAGAIN) {
			*err = (struct dma_err){ c->iova, IOMMU_FAULT_REMOTE };
			rc = -EFAULT;
		}
	}
	if (ops)
		atomic_fetch_sub(&d->remote_users, 1);
	if (!rc && access == IOMMU_WRITE && !iommu_epoch_enter(d)) {
		plan_mark_dirty(d, p, true);
		iommu_epoch_exit();
	}
	return rc;
}

/* Counts down an injected fault; true for the DMA that must fail. */
static bool dma_injected(struct iommu_domain *d)
{
	unsigned int v = atomic_load_explicit(&d->fail_dma, memory_order_relaxed);

	while (v && !atomic_compare_exchange_weak_explicit(&d->fail_dma, &v, v - 1,
							   memory_order_relaxed,
							   memory_order_relaxed))
		;
	return v == 1;
}

void iommu_inject_dma_fault(struct iommu_domain *d, unsigned int nth)
{
	atomic_store_explicit(&d->fail_dma, nth, memory_order_relaxed);
}

/* Check the segments; 0 with *first the first non-empty one (n if none). */
static int sg_check(const struct iommu_sg *sg, unsigned int n, unsigned int *first)
{
	*first = n;
	if (n && !sg)
		return -EINVAL;
	for (unsigned int i = 0; i < n; i++) {
		if (!sg[i].len)
			continue;
		if (!sg[i].buf || sg[i].iova >= IOMMU_IOVA_END ||
		    sg[i].len > IOMMU_IOVA_END - sg[i].iova)
			return -EINVAL;
		if (*first == n)
			*first = i;
	}
	return 0;
}

/* Plan, check and move a checked transfer whose first non-empty segment
 * is sg[first]. */
static int dma_run(struct iommu_domain *d, const struct iommu_sg *sg, unsigned int n,
		   unsigned int access, unsigned int first)
{
	struct dma_plan p;
	struct dma_err err = { 0, 0 };
	int rc;

	plan_init(&p);
	rc = iommu_epoch_enter(d);
	if (rc)
		return rc;
	for (unsigned int i = 0; i < n && !rc; i++)
		rc = plan_segment(d, &p, &sg[i], access, &err);
	if (!rc && (rc = guarded_copy(&p, access)))
		err = (struct dma_err){ sg[first].iova, IOMMU_FAULT_UNMAPPED };
	/* After the copy: a report that clears the bit before the data lands
	 * would lose the write. */
	if (!rc && access == IOMMU_WRITE)
		plan_mark_dirty(d, &p, false);
	iommu_epoch_exit();
	if (!rc && p.nremote)
		rc = remote_copy(d, &p, access, &err);
	plan_fini(&p);
	if (rc == -EFAULT || rc == -EACCES)
		iommu_fault_report(d, err.iova, access, err.reason);
	return rc;
}

static int dma_xfer(struct iommu_domain *d, const struct iommu_sg *sg, unsigned int n,
		    unsigned int access)
{
	unsigned int first;
	int rc = sg_check(sg, n, &first);

	if (rc || first == n)
		return rc;
	if (dma_injected(d)) {
		iommu_fault_report(d, sg[first].iova, access, IOMMU_FAULT_UNMAPPED);
		return -EFAULT;
	}
	return dma_run(d, sg, n, access, first);
}

int iommu_dma_read(struct iommu_domain *d, uint64_t iova, void *dst, size_t len)
{
	struct iommu_sg sg = { iova, dst, len };

	return dma_xfer(d, &sg, 1, IOMMU_READ);
}

int iommu_dma_write(struct iommu_domain *d, uint64_t iova, const void *src, size_t len)
{
	struct iommu_sg sg = { iova, (void *)src, len };

	return dma_xfer(d, &sg, 1, IOMMU_WRITE);
}

int iommu_dma_readv(struct iommu_domain *d, const struct iommu_sg *sg, unsigned int n)
{
	return dma_xfer(d, sg, n, IOMMU_READ);
}

int iommu_dma_writev(struct iommu_domain *d, const struct iommu_sg *sg, unsigned int n)
{
	return dma_xfer(d, sg, n, IOMMU_WRITE);
}

/* Translate one naturally aligned word and stay in the epoch section on
 * success (the caller accesses it, then exits); on failure the section is
 * left and the fault reported, unless quiet. */
static int dma_pin(struct iommu_domain *d, uint64_t iova, unsigned int access,
		   struct iommu_xl *xl, bool quiet)
{
	unsigned int reason = IOMMU_FAULT_UNMAPPED;
	int rc;

	if (dma_injected(d)) {
		if (!quiet)
			iommu_fault_report(d, iova, access, reason);
		return -EFAULT;
	}
	rc = iommu_epoch_enter(d);
	if (rc)
		return rc;
	rc = iommu_xlate(d, iova, xl);
	if (!rc && !(xl->prot & access)) {
		rc = -EACCES;
		reason = IOMMU_FAULT_PERM;
	}
	if (!rc)
		return 0;
	iommu_epoch_exit();
	if (!quiet)
		iommu_fault_report(d, iova, access, reason);
	return rc;
}

enum word_op { WORD_LOAD32, WORD_LOAD64, WORD_STORE64, WORD_STORE32 };

static bool word_store(enum word_op op)
{
	return op == WORD_STORE64 || op == WORD_STORE32;
}

/* One naturally aligned word under the thread's recovery point: 0, or
 * -EFAULT if the memory behind it vanished. */
static int guarded_word(void *host, enum word_op op, uint64_t *val)
{
	sigjmp_buf jb;

	if (sigsetjmp(jb, 0)) {
		dma_guard = NULL;
		return -EFAULT;
	}
	dma_guard = &jb;
	if (op == WORD_STORE64)
		__atomic_store_n((uint64_t *)host, *val, __ATOMIC_RELEASE);
	else if (op == WORD_STORE32)
		__atomic_store_n((uint32_t *)host, (uint32_t)*val, __ATOMIC_RELEASE);
	else if (op == WORD_LOAD64)
		*val = __atomic_load_n((uint64_t *)host, __ATOMIC_ACQUIRE);
	else
		*val = __atomic_load_n((uint32_t *)host, __ATOMIC_ACQUIRE);
	dma_guard = NULL;
	return 0;
}

/* A word of a remote mapping: a transfer of its size like any other (the
 * peer decides how atomic it is). */
static int word_remote(struct iommu_domain *d, uint64_t iova, enum word_op op, uint64_t *val)
{
	uint32_t v32 = op == WORD_STORE32 ? (uint32_t)*val : 0;
	struct iommu_sg sg = { iova, val, sizeof(*val) };
	int rc;

	if (op == WORD_LOAD32 || op == WORD_STORE32)
		sg = (struct iommu_sg){ iova, &v32, sizeof(v32) };
	rc = dma_run(d, &sg, 1, word_store(op) ? IOMMU_WRITE : IOMMU_READ, 0);
	if (!rc && op == WORD_LOAD32)
		*val = v32;
	return rc;
}

/* Pin, access, unpin; a word whose memory vanished faults like an
 * unmapped one.  local: a word of a remote mapping is not fetched
 * (-EREMOTE), and no fault is reported. */
static int dma_word(struct iommu_domain *d, uint64_t iova, enum word_op op, uint64_t *val,
		    bool local)
{
	unsigned int access = word_store(op) ? IOMMU_WRITE : IOMMU_READ;
	struct iommu_dirty *dl;
	struct iommu_xl xl;
	int rc = dma_pin(d, iova, access, &xl, local);

	if (rc)
		return rc;
	if (xl.prot & IOMMU_XL_REMOTE) {
		iommu_epoch_exit();
		return local ? -EREMOTE : word_remote(d, iova, op, val);
	}
	rc = guarded_word(xl.host, op, val);
	dl = atomic_load_explicit(&d->dirty, memory_order_acquire);
	if (!rc && word_store(op) && dl)
		iommu_dirty_mark(dl, iova, op == WORD_STORE32 ? 4 : 8);
	iommu_epoch_exit();
	if (rc && !local)
		iommu_fault_report(d, iova, access, IOMMU_FAULT_UNMAPPED);
	return rc;
}

int iommu_dma_load64(struct iommu_domain *d, uint64_t iova, uint64_t *val)
{
	if ((iova & 7) || iova >= IOMMU_IOVA_END)
		return iommu_dma_read(d, iova, val, sizeof(*val));
	return dma_word(d, iova, WORD_LOAD64, val, false);
}

int iommu_dma_load32(struct iommu_domain *d, uint64_t iova, uint32_t *val)
{
	uint64_t v;
	int rc;

	if ((iova & 3) || iova >= IOMMU_IOVA_END)
		return iommu_dma_read(d, iova, val, sizeof(*val));
	rc = dma_word(d, iova, WORD_LOAD32, &v, false);
	if (!rc)
		*val = (uint32_t)v;
	return rc;
}

int iommu_dma_store64(struct iommu_domain *d, uint64_t iova, uint64_t val)
{
	if ((iova & 7) || iova >= IOMMU_IOVA_END)
		return iommu_dma_write(d, iova, &val, sizeof(val));
	return dma_word(d, iova, WORD_STORE64, &val, false);
}

int iommu_dma_store32(struct iommu_domain *d, uint64_t iova, uint32_t val)
{
	uint64_t v = val;

	if ((iova & 3) || iova >= IOMMU_IOVA_END)
		return iommu_dma_write(d, iova, &val, sizeof(val));
	return dma_word(d, iova, WORD_STORE32, &v, false);
}

int iommu_dma_load32_local(struct iommu_domain *d, uint64_t iova, uint32_t *val)
{
	uint64_t v;
	int rc;

	if ((iova & 3) || iova >= IOMMU_IOVA_END)
		return -EINVAL;
	rc = dma_word(d, iova, WORD_LOAD32, &v, true);
	if (!rc)
		*val = (uint32_t)v;
	return rc;
}
