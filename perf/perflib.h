/* SPDX-License-Identifier: MIT */
/*
 * Statistics the make bench programs share: samples sorted in place, and
 * their median (reports give the median and the range, not the best).
 */
#ifndef GPUP_PERFLIB_H
#define GPUP_PERFLIB_H

#include <stddef.h>

/* Sort n samples in ascending order. */
void perf_sort(double *v, size_t n);
/* Sort v, then its median (the mean of the middle two for even n). */
double perf_median(double *v, size_t n);

#endif
