// SPDX-License-Identifier: MIT
/*
 * Where the daemon's lines go, and what it tells a service manager.
 *
 * Logging: one write() per line on stderr (threads under seccomp may make
 * no other call), which is one of three things.  A terminal or a pipe in
 * the foreground: lines with a UTC time.  The journal, when systemd
 * started us (JOURNAL_STREAM names our stderr): each line opens with its
 * syslog priority as "<N>", which journald reads as the line's priority
 * (sd-daemon(3)), and no time, the journal has it.  A log file (--log-file,
 * or RUN_DIR/daemon.log when detached): opened over stderr, and opened
 * again by name on SIGHUP, so that logrotate can move it away; dup2 swaps
 * the file under every thread at once.
 *
 * Notification: the sd_notify protocol, written out because it is one
 * datagram: "READY=1" and the rest as newline-separated assignments, sent
 * to the AF_UNIX datagram socket named by $NOTIFY_SOCKET (a path, or an
 * abstract name when it starts with '@').  No socket, no notification.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#include "gpup/daemon/daemon_int.h"

static bool journal;                 /* stderr is the journal */
static char log_path[PATH_MAX];      /* "" when not logging to a file */
static char last_err[512];           /* the last LOG_ERR line, for a failed start */

/* Is stderr the stream systemd gave us ($JOURNAL_STREAM is "DEV:INODE")? */
static bool stderr_is_journal(void)
{
	const char *s = getenv("JOURNAL_STREAM");
	unsigned long long dev, ino;
	struct stat st;

	if (!s || sscanf(s, "%llu:%llu", &dev, &ino) != 2 || fstat(STDERR_FILENO, &st))
		return false;
	return (unsigned long long)st.st_dev == dev && (unsigned long long)st.st_ino == ino;
}

static int open_over_stderr(const char *path)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC | O_NOCTTY, 0600);
	int rc = 0;

	if (fd < 0)
		return -errno;
	if (fd != STDERR_FILENO && dup2(fd, STDERR_FILENO) < 0)
		rc = -errno;
	if (fd != STDERR_FILENO)
		close(fd);
	return rc;
}

int dmn_log_open(const char *path)
{
	int rc;

	if (!path || !path[0]) {
		journal = stderr_is_journal();
		return 0;
	}
	if (strlen(path) >= sizeof(log_path))
		return -ENAMETOOLONG;
	rc = open_over_stderr(path);
	if (!rc)
		snprintf(log_path, sizeof(log_path), "%s", path);
	journal = false;
	return rc;
}

int dmn_log_reopen(void)
{
	return log_path[0] ? open_over_stderr(log_path) : -ENOENT;
}

const char *dmn_log_path(void)
{
	return log_path;
}

bool dmn_log_err_seen(void)
{
	return last_err[0] != '\0';
}

const char *gpup_daemon_last_error(void)
{
	return last_err[0] ? last_err : "no reason was logged";
}

static void vlog(int prio, const char *fmt, va_list ap)
{
	struct timespec ts;
	struct tm tm;
	char line[1100];
	size_t n, start;

	if (journal) {
		n = (size_t)snprintf(line, sizeof(line), "<%d>", prio);
	} else {
		clock_gettime(CLOCK_REALTIME, &ts);
		gmtime_r(&ts.tv_sec, &tm);
		n = (size_t)snprintf(line, sizeof(line), "%02d:%02d:%02d.%03ld gpup daemon: ",
				     tm.tm_hour, tm.tm_min, tm.tm_sec, ts.tv_nsec / 1000000);
	}
	start = n;
	vsnprintf(line + n, sizeof(line) - n - 1, fmt, ap);
	n += strlen(line + n);
	if (prio <= LOG_ERR)
		snprintf(last_err, sizeof(last_err), "%.*s", (int)sizeof(last_err) - 1,
			 line + start);
	line[n++] = '\n';
	/* One write per line, so lines from threads never interleave; and no
	 * stdio stream (dprintf's probes the fd with fstat, lseek and ioctl),
	 * which the seccomp filters of client and engine threads refuse. */
	if (write(STDERR_FILENO, line, n) < 0)
		return; /* nowhere left to say so */
}

void gpup_daemon_log(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vlog(LOG_INFO, fmt, ap);
	va_end(ap);
}

void gpup_daemon_logl(int prio, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vlog(prio, fmt, ap);
	va_end(ap);
}

int dmn_notify(const char *fmt, ...)
{
	const char *name = getenv("NOTIFY_SOCKET");
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	socklen_t len;
	char msg[1024];
	va_list ap;
	int fd, rc = 0;

	if (!name || (name[0] != '/' && name[0] != '@') || strlen(name) >= sizeof(sa.sun_path))
		return 0;
	memcpy(sa.sun_path, name, strlen(name));
	if (name[0] == '@')
		sa.sun_path[0] = '\0';
	len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + strlen(name));
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	if (sendto(fd, msg, strlen(msg), MSG_NOSIGNAL, (struct sockaddr *)&sa, len) < 0)
		rc = -errno;
	close(fd);
	return rc;
}
