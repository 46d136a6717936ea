// SPDX-License-Identifier: MIT
/* A daemon for the benchmarks that drive partitions (benchlib.h). */
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bench/benchlib.h"

int bl_daemon_start(struct bl_daemon *d, const char *bin, const char *name)
{
	const char *tmp = getenv("TMPDIR");
	char sock[PATH_MAX], state[PATH_MAX];
	struct stat st;

	d->pid = -1;
	if ((size_t)snprintf(d->base, sizeof(d->base), "%s/%s-XXXXXX", tmp && *tmp ? tmp : "/tmp",
			     name) >= sizeof(d->base) || !mkdtemp(d->base)) {
		d->base[0] = '\0';
		return -1;
	}
	snprintf(d->run_dir, sizeof(d->run_dir), "%s/run", d->base);
	snprintf(state, sizeof(state), "%s/state", d->base);
	snprintf(sock, sizeof(sock), "%s/gpup.sock", d->run_dir);
	fflush(stdout); /* or the child's freopen writes our buffer twice */
	d->pid = fork();
	if (d->pid == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL); /* never outlive the benchmark */
		if (!freopen("/dev/null", "w", stdout) || !freopen("/dev/null", "w", stderr))
			_exit(127);
		execl(bin, "gpup", "daemon", "--foreground", "--run-dir", d->run_dir,
		      "--state-dir", state, "--sim-gpus", "1", "--vram", "256M", NULL);
		_exit(127);
	}
	for (int i = 0; i < 500 && stat(sock, &st) != 0; i++)
		usleep(10000);
	return stat(sock, &st) ? -1 : 0;
}

void bl_daemon_stop(struct bl_daemon *d, const char *name)
{
	char cmd[PATH_MAX];

	if (d->pid > 0) {
		kill(d->pid, SIGTERM);
		waitpid(d->pid, NULL, 0);
		d->pid = -1;
	}
	if (!d->base[0])
		return;
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", d->base);
	if (system(cmd) != 0)
		fprintf(stderr, "%s: could not remove %s\n", name, d->base);
	d->base[0] = '\0';
}
