// SPDX-License-Identifier: MIT
/*
 * The scheduler's two small data structures: the run-queue min-heap that
 * keeps a pick among a thousand contexts to a few cache lines, and the
 * log-linear dispatch-wait histogram.
 */
#include <errno.h>
#include <math.h>
#include <stdlib.h>

#include "scheduler/sched_int.h"

int sched_heap_reserve(struct sched_heap *h, unsigned int cap)
{
	struct sched_heap_ent *v;

	if (cap <= h->cap)
		return 0;
	v = realloc(h->v, (size_t)cap * sizeof(*v));
	if (!v)
		return -ENOMEM;
	h->v = v;
	h->cap = cap;
	return 0;
}

void sched_heap_free(struct sched_heap *h)
{
	free(h->v);
	h->v = NULL;
	h->n = h->cap = 0;
}

static bool ent_before(const struct sched_heap_ent *a,
		       const struct sched_heap_ent *b)
{
	return sched_key_before(a->key, a->seq, b->key, b->seq);
}

static void sift_up(struct sched_heap *h, unsigned int i)
{
	struct sched_heap_ent x = h->v[i];

	while (i > 0) {
		unsigned int p = (i - 1) / 2;

		if (!ent_before(&x, &h->v[p]))
			break;
		h->v[i] = h->v[p];
		i = p;
	}
	h->v[i] = x;
}

static void sift_down(struct sched_heap *h, unsigned int i)
{
	struct sched_heap_ent x = h->v[i];

	for (;;) {
		unsigned int l = 2 * i + 1, m;

		if (l >= h->n)
			break;
		m = l;
		if (l + 1 < h->n && ent_before(&h->v[l + 1], &h->v[l]))
			m = l + 1;
		if (!ent_before(&h->v[m], &x))
			break;
		h->v[i] = h->v[m];
		i = m;
	}
	h->v[i] = x;
}

/* Capacity is reserved when a context is added, so a push never fails. */
void sched_heap_push(struct sched_heap *h, uint64_t key, uint64_t seq,
		     struct sched_ctx *c)
{
	h->v[h->n] = (struct sched_heap_ent){ .key = key, .seq = seq, .c = c };
	sift_up(h, h->n++);
}

static void remove_at(struct sched_heap *h, unsigned int i)
{
	h->n--;
	if (i == h->n)
		return;
	h->v[i] = h->v[h->n];
	if (i > 0 && ent_before(&h->v[i], &h->v[(i - 1) / 2]))
		sift_up(h, i);
	else
		sift_down(h, i);
}

void sched_heap_pop(struct sched_heap *h)
{
	if (h->n)
		remove_at(h, 0);
}

/* Linear, from the end: the usual caller is an executor blocking the
 * context it has just accounted, which was pushed last with a late key and
 * so sits near the bottom.  Anything else (removing a context, blocking a
 * long-queued one) is rare. */
bool sched_heap_remove(struct sched_heap *h, const struct sched_ctx *c)
{
	for (unsigned int i = h->n; i-- > 0;) {
		if (h->v[i].c == c) {
			remove_at(h, i);
			return true;
		}
	}
	return false;
}

static unsigned int hist_index(uint64_t v)
{
	unsigned int msb, shift;

	if (v < 64)
		return (unsigned int)v;
	msb = 63u - (unsigned int)__builtin_clzll(v);
	if (msb >= 40)
		return SCHED_HIST_BUCKETS - 1;
	shift = msb - SCHED_HIST_SUB_BITS;
	return 64 + (msb - 6) * SCHED_HIST_SUB +
	       (unsigned int)((v >> shift) & (SCHED_HIST_SUB - 1));
}

/* The smallest value that does not fit bucket i (its exclusive upper edge). */
static uint64_t hist_upper(unsigned int i)
{
	unsigned int g, s, msb;

	if (i < 64)
		return i + 1;
	g = (i - 64) / SCHED_HIST_SUB;
	s = (i - 64) % SCHED_HIST_SUB;
	msb = g + 6;
	return (1ull << msb) + ((uint64_t)(s + 1) << (msb - SCHED_HIST_SUB_BITS));
}

void sched_hist_add(struct sched_hist *h, uint64_t v)
{
	h->b[hist_index(v)]++;
	h->count++;
	h->sum += v;
	if (v > h->max)
		h->max = v;
}

uint64_t sched_hist_quantile(const struct sched_hist *h, double q)
{
	uint64_t rank, seen = 0;

	if (!h->count)
		return 0;
	if (q <= 0)
		q = 0;
	/* nearest rank: the ceil(q * count)-th smallest value */
	rank = (uint64_t)ceil(q * (double)h->count);
	rank = rank ? rank - 1 : 0;
	if (rank >= h->count)
		rank = h->count - 1;
	for (unsigned int i = 0; i < SCHED_HIST_BUCKETS; i++) {
		seen += h->b[i];
		if (seen > rank) {
			uint64_t up = hist_upper(i) - 1;

			return up < h->max ? up : h->max;
		}
	}
	return h->max;
}
