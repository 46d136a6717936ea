// SPDX-License-Identifier: MIT
/*
 * `gpup daemon`: start the daemon, in the foreground (logs on stderr; what
 * tests and service managers want) or detached (logs in RUN_DIR/daemon.log;
 * the command returns once the daemon answers on its control socket).
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

static void usage(FILE *f)
{
	fprintf(f,
		"usage: gpup daemon [--run-dir DIR] [--state-dir DIR] [--sim-gpus SPEC]\n"
		"                   [--vram SIZE] [--policy POLICY] [--slice MS]\n"
		"                   [--user USER] [--no-seccomp | --seccomp-log]\n"
		"                   [--foreground]\n"
		"\n"
		"Own a pool of GPUs and serve their partitions as vfio-user devices.\n"
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
		"  --foreground     stay attached, log to stderr; otherwise detach once\n"
		"                   ready and log to RUN_DIR/daemon.log\n"
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
		"Stops cleanly on SIGTERM, SIGINT or SIGHUP: sockets and pid file removed,\n"
		"definitions kept.  Exit status 1 when it cannot start (another daemon\n"
		"holds the run or state directory, a directory cannot be made).\n",
		gpup_default_run_dir(), gpup_default_state_dir(), GPUP_POOL_MAX_GPUS,
		GPUP_DAEMON_DEFAULT_GPUS, sched_policy_name(GPUP_DAEMON_DEFAULT_POLICY));
}

/* One N or N:GEN of --sim-gpus at s: the generation of GPUs *total on,
 * the rest of the spec in *next.  0 or -1. */
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

static int parse(int argc, char **argv, struct gpup_daemon_cfg *c, int *fg)
{
	static const struct option opts[] = {
		{ "run-dir", required_argument, NULL, 'r' },
		{ "state-dir", required_argument, NULL, 's' },
		{ "sim-gpus", required_argument, NULL, 'n' },
		{ "vram", required_argument, NULL, 'v' },
		{ "policy", required_argument, NULL, 'p' },
		{ "slice", required_argument, NULL, 'l' },
		{ "foreground", no_argument, NULL, 'f' },
		{ "user", required_argument, NULL, 'u' },
		{ "no-seccomp", no_argument, NULL, 'S' },
		{ "seccomp-log", no_argument, NULL, 'L' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	int o;

	if (parse_seccomp_env(c))
		return GPUP_EXIT_USAGE;
	c->test_faults = getenv("GPUP_TEST_FAULTS") && !strcmp(getenv("GPUP_TEST_FAULTS"), "1");
	while ((o = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		if (o == 'r')
			c->run_dir = optarg;
		else if (o == 's')
			c->state_dir = optarg;
		else if (o == 'n' && parse_gpus(optarg, c))
			return GPUP_EXIT_USAGE;
		else if (o == 'v' && parse_vram(optarg, &c->vram))
			return GPUP_EXIT_USAGE;
		else if (o == 'p' && parse_policy(optarg, &c->policy))
			return GPUP_EXIT_USAGE;
		else if (o == 'l' && parse_slice(optarg, &c->slice_ns))
			return GPUP_EXIT_USAGE;
		else if (o == 'p' || o == 'l')
			*(o == 'p' ? &c->policy_given : &c->slice_given) = true;
		else if (o == 'u' && parse_user(optarg, c))
			return GPUP_EXIT_USAGE;
		else if (o == 'S' || o == 'L')
			c->seccomp = o == 'S' ? GPUP_JAIL_OFF : GPUP_JAIL_LOG;
		else if (o == 'f')
			*fg = 1;
		else if (o == 'h')
			return usage(stdout), -1;
		else if (o == '?')
			return usage(stderr), GPUP_EXIT_USAGE;
	}
	if (optind < argc) {
		gpup_err(cmd, "unexpected argument '%s'", argv[optind]);
		return GPUP_EXIT_USAGE;
	}
	return 0;
}

/* Detach: the child runs the daemon, the parent waits for its readiness. */
static int detach(const struct gpup_daemon_cfg *c)
{
	char log[PATH_MAX], b;
	int p[2], fd, rc;
	pid_t pid;

	snprintf(log, sizeof(log), "%s/daemon.log", c->run_dir);
	rc = gpup_mkdir_p(c->run_dir, 0700);
	fd = rc ? -1 : open(log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
	if (fd < 0 || pipe2(p, O_CLOEXEC)) {
		gpup_err(cmd, "cannot open %s: %s", log, strerror(rc ? -rc : errno));
		return GPUP_EXIT_FAIL;
	}
	pid = fork();
	if (pid == 0) {
		close(p[0]);
		setsid();
		dup2(fd, STDOUT_FILENO);
		dup2(fd, STDERR_FILENO);
		close(fd);
		fd = open("/dev/null", O_RDONLY);
		if (fd >= 0)
			dup2(fd, STDIN_FILENO);
		_exit(gpup_daemon_run(c, p[1]) ? GPUP_EXIT_FAIL : GPUP_EXIT_OK);
	}
	close(p[1]);
	close(fd);
	if (pid < 0 || read(p[0], &b, 1) != 1) {
		gpup_err(cmd, "the daemon did not start; see %s", log);
		return GPUP_EXIT_FAIL;
	}
	printf("gpup daemon: running (pid %d); control socket %s/gpup.sock, log %s\n", (int)pid,
	       c->run_dir, log);
	return GPUP_EXIT_OK;
}

static int cmd_daemon(const struct gpup_global *g, int argc, char **argv)
{
	struct gpup_daemon_cfg c = {
		.run_dir = g->run_dir, .state_dir = gpup_default_state_dir(),
		.sim_gpus = GPUP_DAEMON_DEFAULT_GPUS, .vram = GPUP_DAEMON_DEFAULT_VRAM,
		.policy = GPUP_DAEMON_DEFAULT_POLICY,
	};
	int fg = 0, rc = parse(argc, argv, &c, &fg);

	if (rc)
		return rc < 0 ? GPUP_EXIT_OK : rc;
	if (fg)
		return gpup_daemon_run(&c, -1) ? GPUP_EXIT_FAIL : GPUP_EXIT_OK;
	fflush(stdout);
	return detach(&c);
}

GPUP_COMMAND("daemon", "run the daemon that serves GPU partitions", cmd_daemon)
