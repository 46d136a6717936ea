// SPDX-License-Identifier: MIT
/* Shared helpers for the suites that drive the gpup binary (testlib.h). */
#include <criterion/criterion.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "tests/testlib.h"
#include "vfu/vfu.h"

int tl_gpup(const char *dir, char *out, size_t len, const char *args)
{
	const char *bin = getenv("GPUP_BIN");
	char cmd[1536], path[256];
	int st;

	cr_assert_not_null(bin, "GPUP_BIN must name the gpup binary");
	snprintf(path, sizeof(path), "%s/out", dir);
	snprintf(cmd, sizeof(cmd), "TMPDIR=%s %s --run-dir %s/run %s >%s 2>&1", dir, bin, dir,
		 args, path);
	st = system(cmd);
	tl_slurp(path, out, len);
	return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

void tl_slurp(const char *path, char *buf, size_t len)
{
	FILE *f = fopen(path, "r");
	size_t n = f ? fread(buf, 1, len - 1, f) : 0;

	buf[n] = '\0';
	if (f)
		fclose(f);
}

bool tl_host_shmem_thp(void)
{
	static const char *const files[] = {
		"/sys/kernel/mm/transparent_hugepage/hugepages-2048kB/shmem_enabled",
		"/sys/kernel/mm/transparent_hugepage/shmem_enabled",
	};
	char line[256] = "", *a = NULL;

	for (size_t i = 0; i < 2; i++) {
		FILE *f = fopen(files[i], "r");

		line[0] = '\0';
		if (f) {
			if (!fgets(line, sizeof(line), f))
				line[0] = '\0';
			fclose(f);
		}
		a = strchr(line, '[');
		if (a && strncmp(a, "[inherit]", 9))
			break;
	}
	return a && (!strncmp(a, "[always]", 8) || !strncmp(a, "[within_size]", 13) ||
		     !strncmp(a, "[force]", 7) || !strncmp(a, "[advise]", 8));
}

struct vfu_client *tl_attach(const char *run_dir, const char *uuid)
{
	char path[PATH_MAX];
	int err = 0;
	struct vfu_client *c;

	snprintf(path, sizeof(path), "%s/%s.sock", run_dir, uuid);
	c = vfu_client_connect(path, &err);
	cr_assert_not_null(c, "connect %s: %s", path, strerror(-err));
	return c;
}

void tl_proc_start(struct tl_proc *p, char *const argv[])
{
	int o[2], e[2];

	cr_assert_eq(pipe(o), 0);
	cr_assert_eq(pipe(e), 0);
	p->pid = fork();
	cr_assert_neq(p->pid, -1);
	if (p->pid == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		dup2(o[1], 1);
		dup2(e[1], 2);
		close(o[0]);
		close(e[0]);
		execv(getenv("GPUP_BIN"), argv);
		_exit(127);
	}
	close(o[1]);
	close(e[1]);
	p->out = o[0];
	p->err = e[0];
}

static void tl_proc_slurp(int fd, char *buf)
{
	size_t len = 0;
	ssize_t n;

	while (len < TL_OUT_MAX - 1 && (n = read(fd, buf + len, TL_OUT_MAX - 1 - len)) > 0)
		len += (size_t)n;
	buf[len] = 0;
	close(fd);
}

void tl_proc_finish(struct tl_proc *p)
{
	int st;

	tl_proc_slurp(p->out, p->out_buf);
	tl_proc_slurp(p->err, p->err_buf);
	cr_assert_eq(waitpid(p->pid, &st, 0), p->pid);
	cr_assert(WIFEXITED(st), "died of signal %d", WTERMSIG(st));
	p->code = WEXITSTATUS(st);
}
