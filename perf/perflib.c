// SPDX-License-Identifier: MIT
/* Sorting and medians for the make bench programs (perflib.h). */
#include <stdlib.h>

#include "perf/perflib.h"

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

void perf_sort(double *v, size_t n)
{
	qsort(v, n, sizeof(v[0]), cmp_double);
}

double perf_median(double *v, size_t n)
{
	perf_sort(v, n);
	return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}
