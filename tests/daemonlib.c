// SPDX-License-Identifier: MIT
/* A gpup daemon for the suites and the perf programs (daemonlib.h). */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "gpup/ctl/ctl.h"
#include "tests/daemonlib.h"
#include "uapi/gpup_ctl.h"

#define MAX_ARGS 32

/* DIR and the paths under it: o->dir, or a new directory. */
static int set_dir(struct dl_daemon *d, const struct dl_opts *o)
{
	const char *tmp = getenv("TMPDIR");
	int n;

	if (o->dir && o->dir != d->dir)
		n = snprintf(d->dir, sizeof(d->dir), "%s", o->dir);
	else if (!o->dir)
		n = snprintf(d->dir, sizeof(d->dir), "%s/%s-XXXXXX", tmp && *tmp ? tmp : "/tmp",
			     o->name ? o->name : "gpup-daemon");
	else
		n = (int)strlen(d->dir);
	if (n <= 0 || (size_t)n >= sizeof(d->dir)) {
		d->dir[0] = '\0';
		errno = ENAMETOOLONG;
		return -1;
	}
	if (!o->dir && !mkdtemp(d->dir)) {
		d->dir[0] = '\0';
		return -1;
	}
	snprintf(d->run_dir, sizeof(d->run_dir), "%s/run", d->dir);
	snprintf(d->state_dir, sizeof(d->state_dir), "%s/state", d->dir);
	snprintf(d->log, sizeof(d->log), "%s/daemon.log", d->dir);
	return 0;
}

/* The child: output to out, die with the parent, become the daemon. */
static void exec_daemon(const struct dl_daemon *d, const char *bin,
			const char *const *args, int out, pid_t parent)
{
	const char *argv[MAX_ARGS + 8] = { "gpup", "daemon", "--foreground", "--run-dir",
					   d->run_dir, "--state-dir", d->state_dir };
	size_t n = 7;

	prctl(PR_SET_PDEATHSIG, SIGKILL); /* never outlive the suite or program */
	if (getppid() != parent)
		_exit(127);
	for (; args && *args && n < MAX_ARGS + 7; args++)
		argv[n++] = *args;
	argv[n] = NULL;
	if (dup2(out, STDOUT_FILENO) < 0 || dup2(out, STDERR_FILENO) < 0)
		_exit(127);
	execv(bin, (char *const *)argv);
	_exit(127);
}

/* Up: it answers a control request.  Gives up early if it exited. */
static int wait_ready(struct dl_daemon *d)
{
	for (int i = 0; i < 1000; i++) {
		json_object *req = gpup_ctl_request(GPUP_CTL_M_LIST), *rep = NULL;
		int rc = gpup_ctl_call(d->run_dir, req, &rep);

		json_object_put(req);
		json_object_put(rep);
		if (rc == 0)
			return 0;
		if (waitpid(d->pid, NULL, WNOHANG) == d->pid) {
			d->pid = 0;
			errno = ECHILD;
			return -1;
		}
		usleep(10000);
	}
	dl_stop(d);
	errno = ETIMEDOUT;
	return -1;
}

int dl_start(struct dl_daemon *d, const struct dl_opts *o)
{
	const char *bin = o->bin ? o->bin : getenv("GPUP_BIN");
	pid_t parent = getpid();
	int out;

	d->pid = 0;
	if (!bin) {
		errno = EINVAL;
		return -1;
	}
	if (set_dir(d, o))
		return -1;
	out = o->log ? open(d->log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600)
		     : open("/dev/null", O_WRONLY | O_CLOEXEC);
	if (out < 0)
		return -1;
	d->pid = fork();
	if (d->pid == 0)
		exec_daemon(d, bin, o->args, out, parent);
	close(out);
	if (d->pid < 0) {
		d->pid = 0;
		return -1;
	}
	return wait_ready(d);
}

int dl_stop(struct dl_daemon *d)
{
	int st = 0;

	if (d->pid <= 0)
		return -1;
	kill(d->pid, SIGTERM);
	if (waitpid(d->pid, &st, 0) != d->pid)
		st = -1;
	d->pid = 0;
	if (st == -1)
		return -1;
	return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

static int remove_dir(const char *dir)
{
	char cmd[300];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	if (system(cmd) == 0)
		return 0;
	fprintf(stderr, "could not remove %s\n", dir);
	return -1;
}

int dl_teardown(struct dl_daemon *d)
{
	int rc = 0;

	dl_stop(d);
	if (d->dir[0])
		rc = remove_dir(d->dir);
	d->dir[0] = '\0';
	return rc;
}

int dl_teardown_dir(const char *dir)
{
	char path[300];
	FILE *f;
	int pid = 0;

	if (!dir[0])
		return 0;
	snprintf(path, sizeof(path), "%s/run/gpup.pid", dir);
	if ((f = fopen(path, "r"))) {
		if (fscanf(f, "%d", &pid) == 1 && pid > 0)
			kill(pid, SIGTERM);
		fclose(f);
	}
	for (int i = 0; pid > 0 && i < 300 && kill(pid, 0) == 0; i++)
		usleep(10000);
	return remove_dir(dir);
}
