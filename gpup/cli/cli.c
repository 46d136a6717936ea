// SPDX-License-Identifier: MIT
/*
 * Shared command-line plumbing: the command registry filled by
 * GPUP_COMMAND constructors, and the default directories.
 */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
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
