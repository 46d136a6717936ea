// SPDX-License-Identifier: MIT
/*
 * What the rooms of gpup/ share (base.h): the one-line error (or, under
 * --json, one JSON object), sizes with suffixes, mkdir -p.
 */
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include "gpup/base/base.h"

static bool err_json;

void gpup_err_json(bool on)
{
	err_json = on;
}

/* s as a JSON string: quotes, backslashes and control characters escaped
 * (the message is UTF-8 or bytes; bytes pass as they are). */
static void json_str(FILE *f, const char *s)
{
	fputc('"', f);
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;

		if (c == '"' || c == '\\')
			fprintf(f, "\\%c", c);
		else if (c < 0x20)
			fprintf(f, "\\u%04x", c);
		else
			fputc(c, f);
	}
	fputc('"', f);
}

static void verr(const char *cmd, const char *code, const char *fmt, va_list ap)
{
	char msg[2048];

	vsnprintf(msg, sizeof(msg), fmt, ap);
	if (!err_json) {
		fprintf(stderr, "gpup %s: %s\n", cmd, msg);
		return;
	}
	fputs("{\"command\": ", stderr);
	json_str(stderr, cmd);
	fputs(", \"error\": ", stderr);
	json_str(stderr, msg);
	fputs(", \"code\": ", stderr);
	if (code)
		json_str(stderr, code);
	else
		fputs("null", stderr);
	fputs("}\n", stderr);
}

void gpup_err(const char *cmd, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	verr(cmd, NULL, fmt, ap);
	va_end(ap);
}

void gpup_errc(const char *cmd, const char *code, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	verr(cmd, code, fmt, ap);
	va_end(ap);
}

static int size_shift(const char *suf)
{
	static const char units[] = "KMGT";
	const char *u;

	if (*suf == '\0')
		return 0;
	u = strchr(units, suf[0] & ~0x20);
	if (!u || suf[0] == '\0')
		return -1;
	suf++;
	if (strcasecmp(suf, "") && strcasecmp(suf, "b") && strcasecmp(suf, "ib"))
		return -1;
	return 10 * (int)(u - units + 1);
}

int gpup_parse_size(const char *s, uint64_t *out)
{
	unsigned long long v;
	char *end;
	int shift;

	if (!s || *s < '0' || *s > '9') {
		errno = EINVAL;
		return -1;
	}
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno)
		return -1;
	shift = size_shift(end);
	if (shift < 0) {
		errno = EINVAL;
		return -1;
	}
	if (shift && v > (UINT64_MAX >> shift)) {
		errno = ERANGE;
		return -1;
	}
	*out = (uint64_t)v << shift;
	return 0;
}

char *gpup_format_size(uint64_t bytes, char *buf, size_t len)
{
	static const char *const units[] = { "B", "KiB", "MiB", "GiB", "TiB" };
	unsigned int i = 0;

	while (i < 4 && bytes && (bytes & 1023) == 0) {
		bytes >>= 10;
		i++;
	}
	snprintf(buf, len, "%llu %s", (unsigned long long)bytes, units[i]);
	return buf;
}

int gpup_mkdir_p(const char *path, unsigned int mode)
{
	char tmp[PATH_MAX];
	size_t n = strlen(path);

	if (n == 0 || n >= sizeof(tmp))
		return -ENAMETOOLONG;
	memcpy(tmp, path, n + 1);
	for (char *p = tmp + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		if (mkdir(tmp, 0755) && errno != EEXIST)
			return -errno;
		*p = '/';
	}
	if (mkdir(tmp, mode) && errno != EEXIST)
		return -errno;
	return 0;
}

void gpup_say(char *err, size_t len, const char *fmt, ...)
{
	va_list ap;

	if (!err || !len)
		return;
	va_start(ap, fmt);
	vsnprintf(err, len, fmt, ap);
	va_end(ap);
}
