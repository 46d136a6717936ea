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
 */
#include <stdlib.h>
#include <string.h>

#include "iommu/iommu_int.h"

#define PLAN_LOCAL 8u

struct dma_chunk {
	uint8_t *host;
	uint8_t *buf;
	uint64_t iova;
	size_t len;
};

struct dma_plan {
	struct dma_chunk *c;
	unsigned int n, cap;
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
static int plan_add(struct dma_plan *p, uint8_t *host, uint8_t *buf, uint64_t iova, size_t len)
{
	if (p->n) {
		struct dma_chunk *l = &p->c[p->n - 1];

		if (l->host + l->len == host && l->buf + l->len == buf && l->iova + l->len == iova) {
			l->len += len;
			return 0;
		}
	}
	if (p->n == p->cap && plan_grow(p) < 0)
		return -ENOMEM;
	p->c[p->n++] = (struct dma_chunk){ host, buf, iova, len };
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
		rc = plan_add(p, xl.host, buf, iova, n);
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

		if (access == IOMMU_WRITE)
			memmove(c->host, c->buf, c->len);
		else
			memmove(c->buf, c->host, c->len);
	}
}

static void plan_mark_dirty(struct iommu_domain *d, struct dma_plan *p)
{
	struct iommu_dirty *dl = atomic_load_explicit(&d->dirty, memory_order_acquire);

	if (!dl)
		return;
	for (unsigned int i = 0; i < p->n; i++)
		iommu_dirty_mark(dl, p->c[i].iova, p->c[i].len);
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

static int dma_xfer(struct iommu_domain *d, const struct iommu_sg *sg, unsigned int n,
		    unsigned int access)
{
	struct dma_plan p;
	struct dma_err err = { 0, 0 };
	unsigned int first;
	int rc = sg_check(sg, n, &first);

	if (rc || first == n)
		return rc;
	if (dma_injected(d)) {
		iommu_fault_report(d, sg[first].iova, access, IOMMU_FAULT_UNMAPPED);
		return -EFAULT;
	}
	plan_init(&p);
	rc = iommu_epoch_enter(d);
	if (rc)
		return rc;
	for (unsigned int i = 0; i < n && !rc; i++)
		rc = plan_segment(d, &p, &sg[i], access, &err);
	if (!rc) {
		plan_copy(&p, access);
		/* After the copy: a report that clears the bit before the
		 * data lands would lose the write. */
		if (access == IOMMU_WRITE)
			plan_mark_dirty(d, &p);
	}
	iommu_epoch_exit();
	plan_fini(&p);
	if (rc == -EFAULT || rc == -EACCES)
		iommu_fault_report(d, err.iova, access, err.reason);
	return rc;
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
 * left and the fault reported. */
static int dma_pin(struct iommu_domain *d, uint64_t iova, unsigned int access,
		   struct iommu_xl *xl)
{
	unsigned int reason = IOMMU_FAULT_UNMAPPED;
	int rc;

	if (dma_injected(d)) {
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
	iommu_fault_report(d, iova, access, reason);
	return rc;
}

int iommu_dma_load64(struct iommu_domain *d, uint64_t iova, uint64_t *val)
{
	struct iommu_xl xl;
	int rc;

	if ((iova & 7) || iova >= IOMMU_IOVA_END)
		return iommu_dma_read(d, iova, val, sizeof(*val));
	rc = dma_pin(d, iova, IOMMU_READ, &xl);
	if (rc)
		return rc;
	*val = __atomic_load_n((uint64_t *)xl.host, __ATOMIC_ACQUIRE);
	iommu_epoch_exit();
	return 0;
}

int iommu_dma_load32(struct iommu_domain *d, uint64_t iova, uint32_t *val)
{
	struct iommu_xl xl;
	int rc;

	if ((iova & 3) || iova >= IOMMU_IOVA_END)
		return iommu_dma_read(d, iova, val, sizeof(*val));
	rc = dma_pin(d, iova, IOMMU_READ, &xl);
	if (rc)
		return rc;
	*val = __atomic_load_n((uint32_t *)xl.host, __ATOMIC_ACQUIRE);
	iommu_epoch_exit();
	return 0;
}

int iommu_dma_store64(struct iommu_domain *d, uint64_t iova, uint64_t val)
{
	struct iommu_dirty *dl;
	struct iommu_xl xl;
	int rc;

	if ((iova & 7) || iova >= IOMMU_IOVA_END)
		return iommu_dma_write(d, iova, &val, sizeof(val));
	rc = dma_pin(d, iova, IOMMU_WRITE, &xl);
	if (rc)
		return rc;
	__atomic_store_n((uint64_t *)xl.host, val, __ATOMIC_RELEASE);
	dl = atomic_load_explicit(&d->dirty, memory_order_acquire);
	if (dl)
		iommu_dirty_mark(dl, iova, sizeof(val));
	iommu_epoch_exit();
	return 0;
}
