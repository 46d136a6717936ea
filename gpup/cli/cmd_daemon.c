// SPDX-License-Identifier: MIT
/*
 * `gpup daemon`: start the daemon, in the foreground by default (logs on
 * stderr, or the journal under systemd; what the vfio-user spec's backend
 * conventions and service managers expect) or with --detach (logs in
 * RUN_DIR/daemon.log; the command returns once the daemon answers on its
 * control socket, or prints why it could not start).  Its settings come
 * from the config file (/etc/gpup/gpup.conf: the long flags' names as
 * keys), then from the command line, which wins.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "gpup/cli/cli.h"
#include "gpup/daemon/daemon.h"
#include "gpup/gpu/gpu.h"
#include "gpup/jail/jail.h"
#include "gpup/pool/pool.h"

static const char *const cmd = "daemon";

#define DAEMON_CONFIG "/etc/gpup/gpup.conf"

static void usage(FILE *f)
{
	fprintf(f,
		"usage: gpup daemon [--run-dir DIR] [--state-dir DIR] [--sim-gpus SPEC]\n"
		"                   [--vram SIZE] [--policy POLICY] [--slice MS]\n"
		"                   [--user USER] [--no-seccomp | --seccomp-log]\n"
		"                   [--detach] [--log-file FILE] [--config FILE]\n"
		"                   [--metrics [ADDR:]PORT]\n"
		"\n"
		"Own a pool of GPUs and serve their partitions as vfio-user devices.\n"
		"Runs in the foreground; logs on stderr with the time, or into the\n"
		"journal with each line's priority when systemd started it, and tells\n"
		"systemd when it is ready (Type=notify).  A start that fails prints\n"
		"its reason in one line and exits 1.\n"
		"\n"
		"  --run-dir DIR    sockets: DIR/gpup.sock (control), DIR/UUID.sock\n"
		"                   (partitions); default %s\n"
		"  --state-dir DIR  partition definitions and scheduler settings;\n"
		"                   default %s.  One daemon per state directory:\n"
		"                   it holds DIR/gpup.lock while it runs, and a second\n"
		"                   daemon exits with status 1, naming the holder's pid\n"
		"  --sim-gpus SPEC  simulated GPUs, 0-%u in all (default %u): N of the\n"
		"                   default generation (gen2), or N:GEN,N:GEN... such as\n"
		"                   2:gen1,2:gen2 (gen1 lacks the RENDER kernel)\n"
		"  --vram SIZE      VRAM per sim GPU, a power of two >= 16M (default 8G)\n"
		"  --policy POLICY  how engines are shared at start: fifo, best-effort,\n"
		"                   equal-share, fixed-share, weighted (default %s);\n"
		"                   change it later with 'gpup sched'\n"
		"  --slice MS       time slice, 0.1 to 30 ms (default: 2 ms up to 8\n"
		"                   contexts on an engine, 1 ms above)\n"
		"                   A GPU given settings with 'gpup sched --gpu' starts\n"
		"                   with those (kept in the state directory); --policy\n"
		"                   and --slice, when given, win for this start only\n"
		"  --detach         return once the daemon is ready, leaving it running\n"
		"                   in the background, logging to --log-file or\n"
		"                   RUN_DIR/daemon.log (--foreground: the default)\n"
		"  --log-file FILE  append log lines to FILE; SIGHUP opens it again\n"
		"                   (after logrotate has moved it)\n"
		"  --metrics [ADDR:]PORT  serve Prometheus metrics at\n"
		"                   http://ADDR:PORT/metrics (ADDR 127.0.0.1 unless\n"
		"                   given; [::1]:PORT for IPv6): per GPU, engine and\n"
		"                   partition; see docs/SERVICE.md\n"
		"  --config FILE    read settings from FILE (default %s, if\n"
		"                   present; '' for none): one 'key = value' a line,\n"
		"                   keys the long flags above (run-dir, state-dir,\n"
		"                   sim-gpus, vram, policy, slice, user, log-file,\n"
		"                   metrics,\n"
		"                   seccomp = kill|log|off, detach = yes|no), '#'\n"
		"                   comments.  Flags win over the file; the file's\n"
		"                   policy and slice are defaults, as the built-in ones:\n"
		"                   a GPU's saved 'gpup sched' settings win over them\n"
		"  --user USER      (as root) once the directories, sockets and GPUs are\n"
		"                   set up, hand the run and state directories to USER\n"
		"                   (each must be mode 0700, its parents passable by USER)\n"
		"                   and drop root for good: no groups, USER's uid and gid\n"
		"  --no-seccomp     do not confine client and engine threads (debugging).\n"
		"                   By default each runs under a seccomp filter allowing\n"
		"                   only the system calls it needs; any other call kills\n"
		"                   the daemon with SIGSYS, named in the kernel's audit log\n"
		"  --seccomp-log    the filters let forbidden calls through and the kernel\n"
		"                   logs them instead (finding what a change needs).\n"
		"                   Without either flag, GPUP_SECCOMP=kill|log|off decides\n"
		"See docs/SECURITY.md for the threat model and what each filter allows.\n"
		"Stops cleanly on SIGTERM or SIGINT: sockets and pid file removed,\n"
		"definitions kept.  SIGHUP opens the log file again; a daemon logging\n"
		"to a terminal has none, and takes SIGHUP as the terminal going away:\n"
		"it stops cleanly too.  Exit status 1 when it cannot start (another\n"
		"daemon holds the run or state directory, a directory cannot be made),\n"
		"2 for a bad flag or config file.\n",
		gpup_default_run_dir(), gpup_default_state_dir(), GPUP_POOL_MAX_GPUS,
		GPUP_DAEMON_DEFAULT_GPUS, sched_policy_name(GPUP_DAEMON_DEFAULT_POLICY),
		DAEMON_CONFIG);
}

/* One N or N:GEN of --sim-gpus at s, for the next N GPUs; the rest of
 * the spec in *next.  0 or -1. */
static int parse_group(const char *s, struct gpup_daemon_cfg *c, const char **next)
{
	char *end, gen[16];
	unsigned long n = strtoul(s, &end, 10);
	const struct gpup_gpu_gen *g = NULL;
	size_t len;

	if (end == s || n > GPUP_POOL_MAX_GPUS - c->sim_gpus)
		return -1;
	if (*end == ':') {
		len = strcspn(end + 1, ",");
		if (len >= sizeof(gen))
			return -1;
		memcpy(gen, end + 1, len);
		gen[len] = '\0';
		g = gpup_gpu_gen_find(gen);
		if (!g)
			return -1;
		end += 1 + len;
	}
	if ((*end && *end != ',') || (*end == ',' && !end[1]))
		return -1;
	for (unsigned long i = 0; i < n; i++)
		c->sim_gen[c->sim_gpus++] = g ? g->name : NULL;
	*next = *end == ',' ? end + 1 : end;
	return 0;
}

static int parse_gpus(const char *s, struct gpup_daemon_cfg *c)
{
	const char *at = s;
	int bad = !*s;

	c->sim_gpus = 0;
	while (*at && !bad)
		bad = parse_group(at, c, &at);
	if (bad) {
		gpup_err(cmd, "--sim-gpus wants a number from 0 to %u, or N:GEN,N:GEN... with GEN "
			 "gen1 or gen2, not '%s'", GPUP_POOL_MAX_GPUS, s);
		return -1;
	}
	return 0;
}

static int parse_vram(const char *s, uint64_t *out)
{
	uint64_t v;

	if (gpup_parse_size(s, &v) || v < GPUP_DAEMON_MIN_VRAM || (v & (v - 1))) {
		gpup_err(cmd, "--vram wants a power of two of at least 16M (like 8G), not '%s'", s);
		return -1;
	}
	*out = v;
	return 0;
}

static int parse_policy(const char *s, enum sched_policy *out)
{
	if (sched_policy_parse(s, out) == 0)
		return 0;
	gpup_err(cmd, "--policy wants fifo, best-effort, equal-share, fixed-share or "
		 "weighted, not '%s'", s);
	return -1;
}

static int parse_slice(const char *s, uint64_t *out)
{
	char *end;
	double ms = strtod(s, &end);

	if (!*s || *end || !(ms >= 0.1 && ms <= 30)) {
		gpup_err(cmd, "--slice wants 0.1 to 30 (milliseconds), not '%s'", s);
		return -1;
	}
	*out = (uint64_t)(ms * 1e6 + 0.5);
	return 0;
}

/* --user: root only, and a user that exists. */
static int parse_user(const char *s, struct gpup_daemon_cfg *c)
{
	if (geteuid() != 0) {
		gpup_err(cmd, "--user %s needs root: the daemon starts as root and drops to "
			 "USER; without root, run it as that user instead", s);
		return -1;
	}
	if (gpup_jail_user(s, &c->uid, &c->gid)) {
		gpup_err(cmd, "--user: no user named '%s' (see getent passwd)", s);
		return -1;
	}
	c->user = s;
	return 0;
}

/* GPUP_SECCOMP=kill|log|off: the filters' mode unless a flag says. */
static int parse_seccomp_env(struct gpup_daemon_cfg *c)
{
	const char *s = getenv("GPUP_SECCOMP");

	if (!s || !*s || !strcmp(s, "kill"))
		c->seccomp = GPUP_JAIL_KILL;
	else if (!strcmp(s, "log"))
		c->seccomp = GPUP_JAIL_LOG;
	else if (!strcmp(s, "off"))
		c->seccomp = GPUP_JAIL_OFF;
	else {
		gpup_err(cmd, "GPUP_SECCOMP wants kill, log or off, not '%s'", s);
		return -1;
	}
	return 0;
}

/* What the command line and config file set beside the daemon's cfg. */
struct daemon_args {
	bool detach;
	const char *config;       /* NULL: the default file, if present */
	bool in_config;           /* parsing the file: its errors name it */
};

static const struct option daemon_opts[] = {
	{ "run-dir", required_argument, NULL, 'r' },
	{ "state-dir", required_argument, NULL, 's' },
	{ "sim-gpus", required_argument, NULL, 'n' },
	{ "vram", required_argument, NULL, 'v' },
	{ "policy", required_argument, NULL, 'p' },
	{ "slice", required_argument, NULL, 'l' },
	{ "foreground", no_argument, NULL, 'f' },
	{ "detach", no_argument, NULL, 'd' },
	{ "log-file", required_argument, NULL, 'o' },
	{ "config", required_argument, NULL, 'c' },
	{ "metrics", required_argument, NULL, 'm' },
	{ "user", required_argument, NULL, 'u' },
	{ "no-seccomp", no_argument, NULL, 'S' },
	{ "seccomp-log", no_argument, NULL, 'L' },
	{ "help", no_argument, NULL, 'h' },
	{ 0 },
};

/* One option; 0, or an exit status (-1: help shown). */
static int option(int o, struct gpup_daemon_cfg *c, struct daemon_args *a)
{
	switch (o) {
	case 'r': c->run_dir = optarg; return 0;
	case 's': c->state_dir = optarg; return 0;
	case 'n': return parse_gpus(optarg, c) ? GPUP_EXIT_USAGE : 0;
	case 'v': return parse_vram(optarg, &c->vram) ? GPUP_EXIT_USAGE : 0;
	case 'p':
		c->policy_given = !a->in_config;
		return parse_policy(optarg, &c->policy) ? GPUP_EXIT_USAGE : 0;
	case 'l':
		c->slice_given = !a->in_config;
		return parse_slice(optarg, &c->slice_ns) ? GPUP_EXIT_USAGE : 0;
	case 'f': a->detach = false; return 0;
	case 'd': a->detach = true; return 0;
	case 'o': c->log_path = optarg; return 0;
	case 'c': a->config = optarg; return 0;
	case 'm': c->metrics = optarg; return 0;
	case 'u': return parse_user(optarg, c) ? GPUP_EXIT_USAGE : 0;
	case 'S': c->seccomp = GPUP_JAIL_OFF; return 0;
	case 'L': c->seccomp = GPUP_JAIL_LOG; return 0;
	case 'h': usage(stdout); return -1;
	default: usage(stderr); return GPUP_EXIT_USAGE;
	}
}

static int parse(int argc, char **argv, struct gpup_daemon_cfg *c, struct daemon_args *a)
{
	int o, rc;

	optind = 0;
	while ((o = getopt_long(argc, argv, "h", daemon_opts, NULL)) != -1)
		if ((rc = option(o, c, a)))
			return rc;
	if (optind < argc) {
		gpup_err(cmd, "unexpected argument '%s'", argv[optind]);
		return GPUP_EXIT_USAGE;
	}
	return 0;
}

/* ---- the config file ---- */

/* A config line's key: one of the flags that take a value, or seccomp and
 * detach, which stand for flags without one. */
static int conf_option(const char *key, const char *val, struct gpup_daemon_cfg *c,
		       struct daemon_args *a)
{
	static const char *const keys = "run-dir state-dir sim-gpus vram policy slice user "
					"log-file metrics seccomp detach";
	int rc;

	if (!strcmp(key, "seccomp")) {
		const char *env = getenv("GPUP_SECCOMP");

		if (env && *env)
			return 0;   /* the environment wins, as a flag would */
		if (setenv("GPUP_SECCOMP", val, 1))
			return GPUP_EXIT_FAIL;
		rc = parse_seccomp_env(c);
		unsetenv("GPUP_SECCOMP");
		return rc ? GPUP_EXIT_USAGE : 0;
	}
	if (!strcmp(key, "detach")) {
		if (strcmp(val, "yes") && strcmp(val, "no"))
			return GPUP_EXIT_USAGE;
		a->detach = !strcmp(val, "yes");
		return 0;
	}
	for (const struct option *o = daemon_opts; o->name; o++) {
		if (o->has_arg != required_argument || strcmp(o->name, key) ||
		    !strcmp(key, "config") || !strstr(keys, key))
			continue;
		optarg = (char *)val;
		return option(o->val, c, a);
	}
	gpup_err(cmd, "unknown key '%s' (keys: %s)", key, keys);
	return GPUP_EXIT_USAGE;
}

/* "key = value", "key value", blank or "# comment". */
static int conf_line(char *line, struct gpup_daemon_cfg *c, struct daemon_args *a)
{
	char *key, *val, *end;

	line[strcspn(line, "#\n")] = '\0';
	key = line + strspn(line, " \t");
	if (!*key)
		return 0;
	val = key + strcspn(key, " \t=");
	end = val + strspn(val, " \t");
	if (*end == '=')
		end++;
	*val = '\0';
	val = end + strspn(end, " \t");
	for (end = val + strlen(val); end > val && (end[-1] == ' ' || end[-1] == '\t'); end--)
		;
	*end = '\0';
	if (!*val) {
		gpup_err(cmd, "'%s' needs a value", key);
		return GPUP_EXIT_USAGE;
	}
	return conf_option(key, val, c, a);
}

#define CONF_MAX_LINES 256

/* The file's lines, kept until exit: the cfg points into them. */
static char *conf_kept[CONF_MAX_LINES];

static int read_config(const char *path, bool must, struct gpup_daemon_cfg *c,
		       struct daemon_args *a)
{
	FILE *f = fopen(path, "r");
	char *line = NULL;
	size_t cap = 0;
	unsigned int n = 0;
	int rc = 0;

	if (!f && (errno == ENOENT && !must))
		return 0;
	if (!f) {
		gpup_err(cmd, "cannot read the config file %s: %s", path, strerror(errno));
		return GPUP_EXIT_USAGE;
	}
	a->in_config = true;
	while (!rc && getline(&line, &cap, f) > 0) {
		if (n == CONF_MAX_LINES) {
			gpup_err(cmd, "%s: more than %u lines", path, CONF_MAX_LINES);
			rc = GPUP_EXIT_USAGE;
			break;
		}
		conf_kept[n++] = line;
		rc = conf_line(line, c, a);
		if (rc)
			gpup_err(cmd, "in %s, line %u", path, n);
		line = NULL;
		cap = 0;
	}
	free(line);
	fclose(f);
	a->in_config = false;
	return rc;
}

/* --config (and --help) first, then the file, then every flag again: the
 * command line wins. */
static int configure(int argc, char **argv, struct gpup_daemon_cfg *c, struct daemon_args *a)
{
	struct gpup_daemon_cfg scratch = *c;
	struct daemon_args first = { 0 };
	int rc = parse(argc, argv, &scratch, &first);

	if (rc)
		return rc;
	if (!first.config || first.config[0])
		rc = read_config(first.config ? first.config : DAEMON_CONFIG, first.config != NULL,
				 c, a);
	return rc ? rc : parse(argc, argv, c, a);
}

/* Detach: the child runs the daemon, the parent waits for its word:
 * "1" ready, or "0" and why it could not start. */
static int detach(struct gpup_daemon_cfg *c)
{
	static char log[PATH_MAX];
	char msg[600];
	int p[2], rc;
	ssize_t n;
	pid_t pid;

	if (!c->log_path) {
		snprintf(log, sizeof(log), "%s/daemon.log", c->run_dir);
		c->log_path = log;
	}
	rc = gpup_mkdir_p(c->run_dir, 0700);
	if (rc || pipe2(p, O_CLOEXEC)) {
		gpup_err(cmd, "cannot start: %s: %s", c->run_dir, strerror(rc ? -rc : errno));
		return GPUP_EXIT_FAIL;
	}
	pid = fork();
	if (pid == 0) {
		int fd = open("/dev/null", O_RDWR);

		close(p[0]);
		setsid();
		if (fd >= 0) {
			dup2(fd, STDIN_FILENO);
			dup2(fd, STDOUT_FILENO);
		}
		_exit(gpup_daemon_run(c, p[1]) ? GPUP_EXIT_FAIL : GPUP_EXIT_OK);
	}
	close(p[1]);
	n = pid < 0 ? -1 : read(p[0], msg, sizeof(msg) - 1);
	close(p[0]);
	if (n <= 0 || msg[0] != '1') {
		msg[n > 0 ? n : 0] = '\0';
		gpup_err(cmd, "cannot start: %s (log: %s)",
			 n > 1 ? msg + 1 : "it exited without a word", c->log_path);
		return GPUP_EXIT_FAIL;
	}
	printf("gpup daemon: running (pid %d); control socket %s/gpup.sock, log %s\n", (int)pid,
	       c->run_dir, c->log_path);
	return GPUP_EXIT_OK;
}

/* In the foreground: a start that fails says why on the terminal even
 * when the log goes to a file. */
static int foreground(const struct gpup_daemon_cfg *c)
{
	int tty = c->log_path ? dup(STDERR_FILENO) : -1;
	int rc = gpup_daemon_run(c, -1);

	if (rc && tty >= 0)
		dprintf(tty, "gpup daemon: cannot start: %s (log: %s)\n", gpup_daemon_last_error(),
			c->log_path);
	if (tty >= 0)
		close(tty);
	return rc ? GPUP_EXIT_FAIL : GPUP_EXIT_OK;
}

static int cmd_daemon(const struct gpup_global *g, int argc, char **argv)
{
	struct gpup_daemon_cfg c = {
		.run_dir = g->run_dir, .state_dir = gpup_default_state_dir(),
		.sim_gpus = GPUP_DAEMON_DEFAULT_GPUS, .vram = GPUP_DAEMON_DEFAULT_VRAM,
		.policy = GPUP_DAEMON_DEFAULT_POLICY,
	};
	struct daemon_args a = { 0 };
	int rc;

	if (parse_seccomp_env(&c))
		return GPUP_EXIT_USAGE;
	c.test_faults = getenv("GPUP_TEST_FAULTS") && !strcmp(getenv("GPUP_TEST_FAULTS"), "1");
	rc = configure(argc, argv, &c, &a);
	if (rc)
		return rc < 0 ? GPUP_EXIT_OK : rc;
	/* --run-dir and --state-dir given anywhere on the command line (main
	 * took them out) win over the file too */
	if (g->run_dir_given)
		c.run_dir = g->run_dir;
	if (g->state_dir)
		c.state_dir = g->state_dir;
	if (!a.detach)
		return foreground(&c);
	fflush(stdout);
	return detach(&c);
}

GPUP_COMMAND("daemon", "run the daemon that serves GPU partitions", cmd_daemon)
