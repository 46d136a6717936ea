// SPDX-License-Identifier: MIT
/*
 * The daemon as a service manager runs it, without systemd being PID 1:
 * the sd_notify datagrams (READY=1 with MAINPID, STOPPING=1) on the socket
 * $NOTIFY_SOCKET names, a path or an abstract name; priorities in front of
 * each line when stderr is the journal ($JOURNAL_STREAM); a log file that
 * SIGHUP opens again after it was moved; the config file, which flags
 * override; a failed start's one-line reason; and the command line's
 * global options after any subcommand, and --json errors.
 */
#include <criterion/criterion.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "tests/daemonlib.h"
#include "tests/testlib.h"

static char dir[64];
static pid_t child;

static void cleanup(void)
{
	if (child > 0) {
		kill(child, SIGKILL);
		waitpid(child, NULL, 0);
	}
	dl_teardown_dir(dir);
}

static void setup(void)
{
	snprintf(dir, sizeof(dir), "/tmp/gpup-service-XXXXXX");
	cr_assert_not_null(mkdtemp(dir));
}

TestSuite(daemon_service, .init = setup, .fini = cleanup, .timeout = 60);

static int gpup(char *out, size_t len, const char *args)
{
	return tl_gpup(dir, out, len, args);
}

/* `gpup daemon --foreground ARGS` with stderr into DIR/err and env set;
 * its pid. */
static pid_t start(const char *const *env, const char *extra)
{
	char cmd[1024], err[128];
	pid_t pid;

	snprintf(err, sizeof(err), "%s/err", dir);
	snprintf(cmd, sizeof(cmd), "exec %s daemon --foreground --run-dir %s/run --state-dir "
		 "%s/state --sim-gpus 1 --vram 64M --config '' %s 2>%s", getenv("GPUP_BIN"), dir,
		 dir, extra, err);
	pid = fork();
	cr_assert_geq(pid, 0);
	if (pid == 0) {
		for (; env && *env; env += 2)
			setenv(env[0], env[1], 1);
		execl("/bin/sh", "sh", "-c", cmd, (char *)NULL);
		_exit(127);
	}
	child = pid;
	return pid;
}

static int stop(pid_t pid)
{
	int st;

	kill(pid, SIGTERM);
	cr_assert_eq(waitpid(pid, &st, 0), pid);
	child = 0;
	return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

static void recv_msg(int fd, char *buf, size_t len)
{
	struct pollfd p = { .fd = fd, .events = POLLIN };
	ssize_t n;

	cr_assert_eq(poll(&p, 1, 10000), 1, "no notification within 10 s");
	n = recv(fd, buf, len - 1, 0);
	cr_assert_gt(n, 0);
	buf[n] = '\0';
}

static void notify_on(const char *name, bool abstract)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	const char *env[] = { "NOTIFY_SOCKET", name, NULL };
	char msg[1024], want[64];
	socklen_t len;
	pid_t pid;

	cr_assert_geq(fd, 0);
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", name);
	if (abstract)
		sa.sun_path[0] = '\0';
	len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + strlen(name));
	cr_assert_eq(bind(fd, (struct sockaddr *)&sa, len), 0);
	pid = start(env, "");
	recv_msg(fd, msg, sizeof(msg));
	snprintf(want, sizeof(want), "MAINPID=%d", (int)pid);
	cr_assert_not_null(strstr(msg, "READY=1"), "%s", msg);
	cr_assert_not_null(strstr(msg, want), "%s", msg);
	cr_assert_eq(stop(pid), 0);
	recv_msg(fd, msg, sizeof(msg));
	cr_assert_not_null(strstr(msg, "STOPPING=1"), "%s", msg);
	close(fd);
}

Test(daemon_service, notify_ready_and_stopping)
{
	char path[128], name[64];

	snprintf(path, sizeof(path), "%s/notify", dir);
	notify_on(path, false);
	snprintf(name, sizeof(name), "@gpup-test-%d", (int)getpid());
	notify_on(name, true);
}

/* stderr is the journal: "<N>" priorities, no time of our own. */
Test(daemon_service, journal_lines_carry_priorities)
{
	char path[128], stream[64], out[8192] = "";
	const char *env[] = { "JOURNAL_STREAM", stream, NULL };
	struct stat st;
	pid_t pid;

	snprintf(path, sizeof(path), "%s/err", dir);
	cr_assert_geq(close(open(path, O_WRONLY | O_CREAT, 0600)), 0);
	cr_assert_eq(stat(path, &st), 0);
	snprintf(stream, sizeof(stream), "%llu:%llu", (unsigned long long)st.st_dev,
		 (unsigned long long)st.st_ino);
	/* the shell's 2> truncates the same file: the inode stays */
	pid = start(env, "");
	for (int i = 0; i < 500 && !strstr(out, "ready"); i++) {
		usleep(10000);
		tl_slurp(path, out, sizeof(out));
	}
	cr_assert_not_null(strstr(out, "<6>ready: control socket"), "%s", out);
	cr_assert_null(strstr(out, " gpup daemon: "), "%s", out);
	cr_assert_eq(stop(pid), 0);
}

Test(daemon_service, sighup_reopens_the_log_file)
{
	char log[128], old[160], out[8192] = "", args[256];
	pid_t pid;

	snprintf(log, sizeof(log), "%s/gpup.log", dir);
	snprintf(old, sizeof(old), "%s.1", log);
	snprintf(args, sizeof(args), "--log-file %s", log);
	pid = start(NULL, args);
	for (int i = 0; i < 500 && !strstr(out, "ready"); i++) {
		usleep(10000);
		tl_slurp(log, out, sizeof(out));
	}
	cr_assert_not_null(strstr(out, "ready"), "%s", out);
	cr_assert_eq(rename(log, old), 0);
	kill(pid, SIGHUP);
	for (int i = 0; i < 500 && access(log, F_OK); i++)
		usleep(10000);
	cr_assert_eq(gpup(out, sizeof(out), "list"), 0, "it serves on: %s", out);
	tl_slurp(log, out, sizeof(out));
	cr_assert_not_null(strstr(out, "SIGHUP: log file"), "%s", out);
	cr_assert_eq(stop(pid), 0);
	tl_slurp(log, out, sizeof(out));
	cr_assert_not_null(strstr(out, "stopped"), "the new file gets the rest: %s", out);
	tl_slurp(old, out, sizeof(out));
	cr_assert_null(strstr(out, "stopped"), "%s", out);
}

static void write_conf(const char *text)
{
	char path[128];
	FILE *f;

	snprintf(path, sizeof(path), "%s/gpup.conf", dir);
	f = fopen(path, "w");
	cr_assert_not_null(f);
	fputs(text, f);
	fclose(f);
}

Test(daemon_service, config_file_and_flags_win)
{
	char out[8192], args[512];

	write_conf("# gpup daemon settings\n"
		   "sim-gpus = 2\n"
		   "vram 256M\n"
		   "policy = best-effort   # the default policy\n"
		   "detach = yes\n");
	snprintf(args, sizeof(args), "daemon --config %s/gpup.conf --state-dir %s/state "
		 "--vram 128M", dir, dir);
	cr_assert_eq(gpup(out, sizeof(out), args), 0, "%s", out);
	cr_assert_eq(gpup(out, sizeof(out), "gpus --json"), 0, "%s", out);
	cr_assert_not_null(strstr(out, "\"vram\": 134217728"), "the flag wins: %s", out);
	cr_assert_not_null(strstr(out, "\"name\": \"gpu1\""), "two GPUs from the file: %s", out);
	cr_assert_not_null(strstr(out, "\"policy\": \"best-effort\""), "%s", out);
	write_conf("sim-gpus = 1\npolcy = fifo\n");
	snprintf(args, sizeof(args), "daemon --config %s/gpup.conf", dir);
	cr_assert_eq(gpup(out, sizeof(out), args), 2, "%s", out);
	cr_assert_not_null(strstr(out, "unknown key 'polcy'"), "%s", out);
	cr_assert_not_null(strstr(out, "line 2"), "%s", out);
	snprintf(args, sizeof(args), "daemon --config %s/none.conf", dir);
	cr_assert_eq(gpup(out, sizeof(out), args), 2, "%s", out);
	cr_assert_not_null(strstr(out, "cannot read the config file"), "%s", out);
}

/* In the foreground with a log file, the terminal still gets the reason. */
Test(daemon_service, failed_start_says_why_in_one_line)
{
	char out[8192], args[512];

	snprintf(args, sizeof(args), "daemon --detach --state-dir %s/state --sim-gpus 1 "
		 "--vram 64M --config ''", dir);
	cr_assert_eq(gpup(out, sizeof(out), args), 0, "%s", out);
	snprintf(args, sizeof(args), "daemon --state-dir %s/state2 --log-file %s/second.log "
		 "--config ''", dir, dir);
	cr_assert_eq(gpup(out, sizeof(out), args), 1, "%s", out);
	cr_assert_not_null(strstr(out, "gpup daemon: cannot start: another daemon is already "
				  "serving"), "%s", out);
	cr_assert_null(strchr(strchr(out, '\n') + 1, '\n'), "one line: %s", out);
}

Test(daemon_service, global_options_after_the_command_and_json_errors)
{
	char out[8192], args[512];

	snprintf(args, sizeof(args), "daemon --detach --state-dir %s/state --sim-gpus 1 "
		 "--vram 64M --config ''", dir);
	cr_assert_eq(gpup(out, sizeof(out), args), 0, "%s", out);
	/* tl_gpup puts its own --run-dir first; a later one wins */
	snprintf(args, sizeof(args), "list --run-dir %s/nowhere", dir);
	cr_assert_eq(gpup(out, sizeof(out), args), 1, "%s", out);
	cr_assert_not_null(strstr(out, "no daemon is running in"), "%s", out);
	snprintf(args, sizeof(args), "list --json --run-dir=%s/nowhere", dir);
	cr_assert_eq(gpup(out, sizeof(out), args), 1, "%s", out);
	cr_assert_not_null(strstr(out, "{\"command\": \"list\", \"error\": \"no daemon is running"),
			   "%s", out);
	cr_assert_not_null(strstr(out, "\"code\": \"ENOENT\"}"), "%s", out);
	snprintf(args, sizeof(args), "types --run-dir %s/run --json", dir);
	cr_assert_eq(gpup(out, sizeof(out), args), 0, "%s", out);
	cr_assert_eq(gpup(out, sizeof(out), "create --type no-such-type --json"), 2, "%s", out);
	cr_assert_eq(out[0], '{', "%s", out);
	cr_assert_not_null(strstr(out, "\"command\": \"create\""), "%s", out);
	cr_assert_null(strstr(out, "\"code\": null"), "the daemon's errno name: %s", out);
}
