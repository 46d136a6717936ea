// SPDX-License-Identifier: MIT
/*
 * Confining the daemon (docs/SECURITY.md, gpup/jail/jail.h): the seccomp
 * filters of the threads that handle guest-controlled input, installed by
 * the hooks the daemon gives its engines and its vfio-user servers, and
 * `--user`: once the run and state directories, the sockets and the GPUs
 * are set up, what the daemon made is handed to the user and root is
 * dropped for good.
 *
 * Only directories of the daemon's own are handed over: a directory that
 * others may write to (mode other than 0700) or that belongs to another
 * user refuses the start, so that `--run-dir /tmp` never gives /tmp away.
 * Files in the state directory stay as they are: the daemon replaces a
 * definition by renaming a new file over it and removes one by unlinking
 * it, which the directory's owner may do whoever owns the file.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <syslog.h>
#include <unistd.h>

#include "gpup/daemon/daemon_int.h"
#include "gpup/jail/jail.h"

static int engine_init(void)
{
	return gpup_jail_thread(GPUP_JAIL_ENGINE);
}

static int serving_init(void)
{
	return gpup_jail_thread(GPUP_JAIL_SERVING);
}

int dmn_jail_prepare(struct gpup_daemon *d)
{
	struct gpup_jail_cfg jc = { .mode = d->cfg.seccomp, .drop = d->cfg.user != NULL,
				    .uid = d->cfg.uid, .gid = d->cfg.gid };
	int rc = gpup_jail_prepare(&jc);

	if (rc)
		gpup_daemon_logl(LOG_ERR, "cannot build the seccomp filters: %s", strerror(-rc));
	else if (d->cfg.seccomp == GPUP_JAIL_OFF)
		gpup_daemon_log("seccomp filters off: client and engine threads are not confined");
	else
		gpup_daemon_log("seccomp filters on for client and engine threads (%s)",
				d->cfg.seccomp == GPUP_JAIL_LOG ? "log only: nothing is killed"
								: "a forbidden call kills the daemon");
	return rc;
}

dmn_thread_init_fn dmn_jail_hook(const struct gpup_daemon *d, enum gpup_jail_kind kind)
{
	if (d->cfg.seccomp == GPUP_JAIL_OFF)
		return NULL;
	return kind == GPUP_JAIL_ENGINE ? engine_init : serving_init;
}

/* Give the directory open at fd to the user, if it is the daemon's own. */
static int give_dir(struct gpup_daemon *d, int fd, const char *path)
{
	struct stat st;

	if (fstat(fd, &st) == 0 && ((st.st_mode & 07777) != 0700 ||
				    (st.st_uid != 0 && st.st_uid != d->cfg.uid))) {
		gpup_daemon_logl(LOG_ERR, "--user %s: %s is not a directory of the daemon's own (mode %04o, "
				"owner %u; it wants 0700 and root or %s); give another one",
				d->cfg.user, path, (unsigned int)(st.st_mode & 07777),
				(unsigned int)st.st_uid, d->cfg.user);
		return -EPERM;
	}
	if (fchown(fd, d->cfg.uid, d->cfg.gid)) {
		gpup_daemon_logl(LOG_ERR, "--user %s: cannot hand %s over: %s", d->cfg.user, path,
				strerror(errno));
		return -errno;
	}
	return 0;
}

/* path and the directories under it, `depth` levels down (the state's
 * definitions/GPU/ and gpus/), never following a link. */
static int give_tree(struct gpup_daemon *d, const char *path, int depth)
{
	int fd = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	struct dirent *e;
	DIR *dir;
	int rc;

	if (fd < 0) {
		rc = -errno;
		gpup_daemon_logl(LOG_ERR, "--user %s: cannot open %s: %s", d->cfg.user, path, strerror(-rc));
		return rc;
	}
	rc = give_dir(d, fd, path);
	if (rc || depth <= 0 || !(dir = fdopendir(fd))) {
		close(fd);
		return rc;
	}
	while (!rc && (e = readdir(dir))) {
		char name[PATH_MAX];

		if (e->d_type != DT_DIR || !strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
			continue;
		snprintf(name, sizeof(name), "%s/%s", path, e->d_name);
		rc = give_tree(d, name, depth - 1);
	}
	closedir(dir);
	return rc;
}

/* The sockets and the pid file the daemon made as root: its user's too,
 * so that clients running as that user may connect. */
static int give_file(struct gpup_daemon *d, const char *path)
{
	int rc;

	if (!path[0] || !fchownat(AT_FDCWD, path, d->cfg.uid, d->cfg.gid, AT_SYMLINK_NOFOLLOW))
		return 0;
	rc = -errno;
	gpup_daemon_logl(LOG_ERR, "--user %s: cannot hand %s over: %s", d->cfg.user, path, strerror(-rc));
	return rc;
}

static int give_files(struct gpup_daemon *d)
{
	int rc = give_file(d, d->ctl_path);

	if (!rc)
		rc = give_file(d, d->pid_path);
	for (struct gpup_partition *p = d->pool.parts; p && !rc; p = p->next) {
		struct dmn_part *dp = p->priv;

		if (dp)
			rc = give_file(d, dp->path);
	}
	return rc;
}

/* As the user now: can it reach both directories?  Their parents must let
 * it through, or every later create would fail. */
static int check_reach(struct gpup_daemon *d)
{
	const char *dirs[] = { d->cfg.run_dir, d->cfg.state_dir };

	for (unsigned int i = 0; i < 2; i++) {
		if (access(dirs[i], R_OK | W_OK | X_OK)) {
			int rc = -errno;

			gpup_daemon_logl(LOG_ERR, "--user %s: cannot reach %s as that user: %s; its parent "
					"directories must let it through", d->cfg.user, dirs[i],
					strerror(-rc));
			return rc;
		}
	}
	return 0;
}

int dmn_jail_drop(struct gpup_daemon *d)
{
	int rc;

	if (!d->cfg.user)
		return 0;
	rc = give_tree(d, d->cfg.run_dir, 0);
	if (!rc)
		rc = give_tree(d, d->cfg.state_dir, 2);
	if (!rc)
		rc = give_files(d);
	if (rc)
		return rc;
	rc = gpup_jail_drop(d->cfg.uid, d->cfg.gid);
	if (rc) {
		gpup_daemon_logl(LOG_ERR, "--user %s: cannot drop root: %s", d->cfg.user, strerror(-rc));
		return rc;
	}
	rc = check_reach(d);
	if (!rc)
		gpup_daemon_log("running as %s (uid %u, gid %u)", d->cfg.user,
				(unsigned int)d->cfg.uid, (unsigned int)d->cfg.gid);
	return rc;
}
