// SPDX-License-Identifier: MIT
/*
 * Shared command-line plumbing: the command registry filled by
 * GPUP_COMMAND constructors, size parsing and the default directories.
 */
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "gpup/cli/cli.h"

static struct gpup_command *commands;

/* Keep the list sorted so that --help lists commands alphabetically. */
void gpup_command_register(struct gpup_command *cmd)
{
	struct gpup_command **pp = &commands;

	while (*pp && strcmp((*pp)->name, cmd->name) < 0)
		pp = &(*pp)->next;
	cmd->next = *pp;
	*pp = cmd;
}

const struct gpup_command *gpup_command_find(const char *name)
{
	for (const struct gpup_command *c = commands; c; c = c->next)
		if (strcmp(c->name, name) == 0)
			return c;
	return NULL;
}

const struct gpup_command *gpup_command_first(void)
{
	return commands;
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

static const char *user_dir(const char *xdg_var, const char *home_suffix,
			    const char *tmp_fmt, char *buf, size_t len)
{
	const char *x = getenv(xdg_var);
	const char *home = getenv("HOME");

	if (x && x[0] == '/')
		snprintf(buf, len, "%s/gpup", x);
	else if (home_suffix && home && home[0] == '/')
		snprintf(buf, len, "%s/%s", home, home_suffix);
	else
		snprintf(buf, len, tmp_fmt, (unsigned int)getuid());
	return buf;
}

const char *gpup_default_run_dir(void)
{
	static char buf[PATH_MAX];

	if (geteuid() == 0)
		return "/run/gpup";
	return user_dir("XDG_RUNTIME_DIR", NULL, "/tmp/gpup-%u", buf, sizeof(buf));
}

const char *gpup_default_state_dir(void)
{
	static char buf[PATH_MAX];

	if (geteuid() == 0)
		return "/var/lib/gpup";
	return user_dir("XDG_STATE_HOME", ".local/state/gpup", "/tmp/gpup-state-%u",
			buf, sizeof(buf));
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

void gpup_err(const char *cmd, const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "gpup %s: ", cmd);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}
