// SPDX-License-Identifier: MIT
/*
 * The daemon's life: take the state directory, bring up the sim GPUs and
 * the pool, restore saved partitions, open the control socket, run the
 * epoll loop (see daemon.h), and on SIGTERM or SIGINT take everything
 * down again, sockets and pid file removed and partition definitions
 * kept.  SIGHUP reopens the log file; a daemon logging to a terminal has
 * no file, and its SIGHUP means the terminal went away: it stops too.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <syslog.h>
#include <unistd.h>

#include "gpup/base/base.h"
#include "gpup/ctl/ctl.h"
#include "gpup/daemon/daemon_int.h"
#include "gpup/gpu/gpu.h"
#include "uapi/gpup_ctl.h"

int dmn_listen(const char *path, int *fd)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int s, rc;

	if (strlen(path) >= sizeof(sa.sun_path))
		return -ENAMETOOLONG;
	strcpy(sa.sun_path, path);
	s = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (s < 0)
		return -errno;
	unlink(path);
	/* fchmod on a socket does not reach the path: set the mode at bind. */
	mode_t old = umask(0177);

	rc = bind(s, (struct sockaddr *)&sa, sizeof(sa)) ? -errno : 0;
	umask(old);
	if (!rc && listen(s, 16))
		rc = -errno;
	if (rc) {
		close(s);
		return rc;
	}
	*fd = s;
	return 0;
}

bool dmn_peer_allowed(int fd)
{
	struct ucred cr;
	socklen_t len = sizeof(cr);

	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cr, &len))
		return false;
	return cr.uid == 0 || cr.uid == geteuid();
}

/* Is a daemon already answering on this run directory? */
static bool ctl_alive(const char *run_dir)
{
	json_object *req = gpup_ctl_request(GPUP_CTL_M_GPUS), *rep = NULL;
	int rc = gpup_ctl_call(run_dir, req, &rep);

	json_object_put(req);
	json_object_put(rep);
	return rc == 0;
}

static int epoll_add(struct gpup_daemon *d, int fd, struct dmn_src *src)
{
	struct epoll_event ev = { .events = EPOLLIN, .data.ptr = src };

	return epoll_ctl(d->epfd, EPOLL_CTL_ADD, fd, &ev) ? -errno : 0;
}

/* What a GPU starts with: its saved settings (`gpup sched --gpu` in an
 * earlier run), except a --policy or --slice given for this start, which
 * wins for this start only (the saved file is left as it is). */
static void start_settings(struct gpup_daemon *d, const char *name, struct gpup_gpu_sched *s)
{
	struct gpup_gpu_sched saved;
	char slice[32] = "default";

	*s = (struct gpup_gpu_sched){ d->cfg.policy, d->cfg.slice_ns, 0 };
	if (gpup_pool_gpu_sched_load(&d->pool, name, &saved))
		return;
	if (!d->cfg.policy_given)
		s->policy = saved.policy;
	if (!d->cfg.slice_given)
		s->slice_ns = saved.slice_ns;
	s->watchdog_ns = saved.watchdog_ns;
	if (saved.slice_ns)
		snprintf(slice, sizeof(slice), "%.2f ms", saved.slice_ns / 1e6);
	gpup_daemon_log("%s: saved scheduler settings: %s, slice %s, watchdog %.0f ms%s%s%s",
			name, sched_policy_name(saved.policy), slice, saved.watchdog_ns / 1e6,
			d->cfg.policy_given ? "; --policy wins" : "",
			d->cfg.slice_given ? "; --slice wins" : "",
			d->cfg.policy_given || d->cfg.slice_given ? " for this start" : "");
}

/* Every engine runs under the time-slice scheduler from the start, so the
 * policy `gpup sched` shows is the one in force, never an implicit one. */
static int start_scheduler(struct gpup_gpu *gpu, const char *name,
			   const struct gpup_gpu_sched *s)
{
	static const enum gpup_engine_kind kinds[] = { GPUP_ENGINE_KIND_COMPUTE,
						       GPUP_ENGINE_KIND_COPY };
	struct gpup_engine *e;

	for (unsigned int k = 0; k < 2; k++) {
		for (unsigned int i = 0; (e = gpup_gpu_engine(gpu, kinds[k], i)); i++) {
			int rc = gpup_tsched_set_policy(e, s->policy, s->slice_ns);

			if (!rc)
				rc = gpup_tsched_set_watchdog(e, s->watchdog_ns);
			if (rc) {
				gpup_daemon_logl(LOG_ERR, "%s: cannot start the %s scheduler: %s", name,
						sched_policy_name(s->policy), strerror(-rc));
				return rc;
			}
		}
	}
	return 0;
}

static int add_gpus(struct gpup_daemon *d)
{
	for (unsigned int i = 0; i < d->cfg.sim_gpus; i++) {
		struct gpup_gpu_cfg gc = { .index = i, .vram_size = d->cfg.vram,
					   .ncompute = 1, .ncopy = 1,
					   .thread_init = dmn_jail_hook(d, GPUP_JAIL_ENGINE),
					   .gen = i < GPUP_DAEMON_MAX_GPUS ? d->cfg.sim_gen[i] : NULL };
		struct gpup_gpu_desc desc;
		struct gpup_gpu_sched sched;
		struct gpup_gpu *gpu = gpup_sim_gpu_create(&gc);
		int rc;

		if (!gpu) {
			rc = -errno; /* before the log line's stdio can change it */
			gpup_daemon_logl(LOG_ERR, "cannot create sim GPU %u: %s", i, strerror(-rc));
			return rc;
		}
		gpup_gpu_describe(gpu, &desc);
		start_settings(d, desc.name, &sched);
		rc = start_scheduler(gpu, desc.name, &sched);
		if (!rc)
			rc = gpup_pool_add_gpu(&d->pool, desc.name, desc.model, desc.backend,
				       desc.vram_size, desc.ncompute, desc.ncopy, gpu);
		if (rc < 0) {
			gpup_gpu_destroy(gpu);
			return rc;
		}
		d->pool.gpus[rc].sched = sched;
		snprintf(d->pool.gpus[rc].gen, sizeof(d->pool.gpus[rc].gen), "%s", desc.gen);
		d->pool.gpus[rc].kernels = desc.kernels;
		gpup_daemon_log("%s: %s (%s), %llu MiB VRAM, %u compute + %u copy engines",
				desc.name, desc.model, desc.gen,
				(unsigned long long)(desc.vram_size >> 20), desc.ncompute,
				desc.ncopy);
	}
	return 0;
}

static void restore_parts(struct gpup_daemon *d)
{
	int n = gpup_pool_restore(&d->pool);

	if (n < 0)
		gpup_daemon_logl(LOG_WARNING, "cannot read %s: %s", d->cfg.state_dir, strerror(-n));
	for (struct gpup_partition *p = d->pool.parts; p; p = p->next) {
		int rc;

		if (!p->start_auto) {
			gpup_daemon_log("partition %s defined (%s on %s), start manual: not started",
					p->uuid, p->type, d->pool.gpus[p->gpu].name);
			continue;
		}
		rc = dmn_part_start(d, p);

		if (rc)
			gpup_daemon_log("partition %s restored but not served: %s", p->uuid,
					strerror(-rc));
		else
			gpup_daemon_log("partition %s restored (%s on %s)", p->uuid, p->type,
					d->pool.gpus[p->gpu].name);
	}
}

static int open_signals(struct gpup_daemon *d)
{
	sigset_t set;

	signal(SIGPIPE, SIG_IGN);
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	/* logrotate's "reopen your log"; for a daemon on a terminal, the
	 * terminal going away (handle_signal) */
	sigaddset(&set, SIGHUP);
	if (pthread_sigmask(SIG_BLOCK, &set, NULL))
		return -EINVAL;
	d->sig_fd = signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK);
	if (d->sig_fd < 0)
		return -errno;
	d->sig_src = (struct dmn_src){ DMN_SRC_SIGNAL, d };
	return epoll_add(d, d->sig_fd, &d->sig_src);
}

/* Ours alone from here on, before anything in it is read; then the
 * temporaries of writes a crash interrupted go, and an older release's
 * layout is upgraded. */
static int take_state_dir(struct gpup_daemon *d)
{
	char err[GPUP_POOL_ERR_MAX];
	int rc = gpup_pool_state_lock(&d->pool, err, sizeof(err));

	if (rc) {
		gpup_daemon_logl(LOG_ERR, "%s", err);
		return rc == -EBUSY ? -EEXIST : rc;
	}
	gpup_pool_state_clean(&d->pool);
	rc = gpup_pool_state_upgrade(&d->pool, err, sizeof(err));
	if (rc)
		gpup_daemon_logl(LOG_ERR, "%s", err);
	return rc;
}

static int open_ctl(struct gpup_daemon *d)
{
	int rc = gpup_ctl_sock_path(d->cfg.run_dir, d->ctl_path, sizeof(d->ctl_path));

	if (rc)
		return rc;
	if (ctl_alive(d->cfg.run_dir)) {
		gpup_daemon_logl(LOG_ERR, "another daemon is already serving %s", d->cfg.run_dir);
		return -EEXIST;
	}
	rc = dmn_listen(d->ctl_path, &d->ctl_fd);
	if (rc)
		return rc;
	d->ctl_src = (struct dmn_src){ DMN_SRC_CTL, d };
	return epoll_add(d, d->ctl_fd, &d->ctl_src);
}

static void write_pid(struct gpup_daemon *d)
{
	FILE *f;

	snprintf(d->pid_path, sizeof(d->pid_path), "%s/gpup.pid", d->cfg.run_dir);
	f = fopen(d->pid_path, "w");
	if (f) {
		fprintf(f, "%d\n", (int)getpid());
		fclose(f);
	}
}

/* SIGHUP: the log file opened again (after logrotate moved it); with no
 * file, a terminal that went away (stop, as before there were files), or
 * nothing to do. */
static void hangup(struct gpup_daemon *d)
{
	int rc = dmn_log_reopen();

	if (!rc) {
		gpup_daemon_log("SIGHUP: log file %s reopened", dmn_log_path());
	} else if (rc != -ENOENT) {
		gpup_daemon_logl(LOG_ERR, "SIGHUP: cannot reopen %s: %s; still writing to the "
				 "old file", dmn_log_path(), strerror(-rc));
	} else if (d->tty) {
		gpup_daemon_log("SIGHUP: the terminal went away: shutting down");
		d->stop = true;
	} else {
		gpup_daemon_log("SIGHUP: no log file to reopen (SIGTERM stops the daemon)");
	}
}

static void handle_signal(struct gpup_daemon *d)
{
	struct signalfd_siginfo si;

	if (read(d->sig_fd, &si, sizeof(si)) != (ssize_t)sizeof(si))
		return;
	if (si.ssi_signo == SIGHUP) {
		hangup(d);
		return;
	}
	gpup_daemon_log("signal %u: shutting down", si.ssi_signo);
	d->stop = true;
}

static void loop(struct gpup_daemon *d)
{
	struct epoll_event ev[16];

	while (!d->stop) {
		int t = dmn_conn_expire(d), m = dmn_metrics_expire(d);
		int n = epoll_wait(d->epfd, ev, 16, t < 0 || (m >= 0 && m < t) ? m : t);

		for (int i = 0; i < n; i++) {
			struct dmn_src *s = ev[i].data.ptr;

			if (s->kind == DMN_SRC_CONN) {
				dmn_conn_ready(d, s->ptr);
				/* A request may have freed sources later in this
				 * batch (destroy, the connection itself);
				 * level-triggered epoll reports survivors again. */
				break;
			}
			if (s->kind == DMN_SRC_CTL) {
				/* May evict a connection later in this batch. */
				dmn_conn_accept(d);
				break;
			}
			if (s->kind == DMN_SRC_METRICS || s->kind == DMN_SRC_MCONN) {
				/* a scrape closed may be later in this batch */
				if (s->kind == DMN_SRC_METRICS)
					dmn_metrics_accept(d);
				else
					dmn_metrics_ready(d, s->ptr);
				break;
			}
			if (s->kind == DMN_SRC_SIGNAL)
				handle_signal(d);
			else
				dmn_part_accept(d, s->ptr);
		}
		if (n < 0 && errno != EINTR)
			break;
	}
}

static void teardown(struct gpup_daemon *d)
{
	dmn_conn_close_all(d);
	dmn_metrics_close(d);
	for (struct gpup_partition *p = d->pool.parts; p; p = p->next)
		dmn_part_stop(d, p);
	if (d->ctl_fd >= 0) {
		close(d->ctl_fd);
		unlink(d->ctl_path);
	}
	if (d->pid_path[0])
		unlink(d->pid_path);
	if (d->sig_fd >= 0)
		close(d->sig_fd);
	for (unsigned int i = 0; i < d->pool.ngpus; i++)
		gpup_gpu_destroy(d->pool.gpus[i].priv);
	gpup_pool_fini(&d->pool);
	if (d->epfd >= 0)
		close(d->epfd);
}

static int setup(struct gpup_daemon *d)
{
	int rc = gpup_mkdir_p(d->cfg.run_dir, 0700);

	if (!rc)
		rc = gpup_mkdir_p(d->cfg.state_dir, 0700);
	if (rc) {
		gpup_daemon_logl(LOG_ERR, "cannot create %s or %s: %s", d->cfg.run_dir, d->cfg.state_dir,
				strerror(-rc));
		return rc;
	}
	rc = take_state_dir(d);
	if (rc)
		return rc;
	d->epfd = epoll_create1(EPOLL_CLOEXEC);
	if (d->epfd < 0)
		return -errno;
	rc = open_signals(d);
	if (!rc)
		rc = open_ctl(d);
	if (!rc)
		rc = dmn_metrics_open(d);
	if (!rc)
		rc = dmn_jail_prepare(d);
	if (!rc)
		rc = add_gpus(d);
	if (rc)
		return rc;
	restore_parts(d);
	write_pid(d);
	return dmn_jail_drop(d);
}

/* Readiness, to whoever started us: the pipe of `gpup daemon --detach`
 * ("1", or "0" and the reason) and systemd. */
static void tell_started(struct gpup_daemon *d, int ready_fd, int rc)
{
	char msg[600];
	int n;

	if (!rc) {
		gpup_daemon_log("ready: control socket %s, state in %s", d->ctl_path,
				d->cfg.state_dir);
		dmn_notify("READY=1\nMAINPID=%d\nSTATUS=serving %s", (int)getpid(), d->ctl_path);
	} else {
		dmn_notify("STATUS=cannot start: %s\nERRNO=%d", gpup_daemon_last_error(), -rc);
	}
	if (ready_fd < 0)
		return;
	n = snprintf(msg, sizeof(msg), "%s", rc ? "0" : "1");
	if (rc)
		n += snprintf(msg + n, sizeof(msg) - (size_t)n, "%s", gpup_daemon_last_error());
	if (write(ready_fd, msg, (size_t)n) < 0)
		gpup_daemon_logl(LOG_WARNING, "cannot signal readiness: %s", strerror(errno));
	close(ready_fd);
}

int gpup_daemon_run(const struct gpup_daemon_cfg *cfg, int ready_fd)
{
	struct gpup_daemon d = { .cfg = *cfg, .epfd = -1, .ctl_fd = -1, .sig_fd = -1,
				 .metrics_fd = -1 };
	int rc;

	d.tty = isatty(STDERR_FILENO) == 1;
	rc = dmn_log_open(cfg->log_path);
	if (rc) {
		gpup_daemon_logl(LOG_ERR, "cannot open the log file %s: %s", cfg->log_path,
				 strerror(-rc));
		tell_started(&d, ready_fd, rc);
		return rc;
	}
	gpup_pool_init(&d.pool, cfg->state_dir);
	d.pool.log = gpup_daemon_log;
	rc = setup(&d);
	/* the specific line (what could not be made, who holds the lock)
	 * is the reason to report, when there is one */
	if (rc && !dmn_log_err_seen())
		gpup_daemon_logl(LOG_ERR, "cannot start: %s", strerror(-rc));
	tell_started(&d, ready_fd, rc);
	if (!rc)
		loop(&d);
	dmn_notify("STOPPING=1");
	teardown(&d);
	if (!rc)
		gpup_daemon_log("stopped");
	return rc;
}
