// SPDX-License-Identifier: MIT
/*
 * The `gpup run` subcommand: parse the command line into a struct
 * hv_config and hand it to hv_run().  Registered with GPUP_COMMAND, so the
 * CLI core never learns about the VMM.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gpup/cli/cli.h"
#include "hv/hv.h"

static void run_usage(FILE *f)
{
	fprintf(f,
		"usage: gpup run --kernel IMAGE [--mem SIZE] [--cpus N]\n"
		"                [--gpu UUID|SOCKET]... [--serial stdio|FILE]\n"
		"                [--append CMDLINE] [--ctl SOCKET | --name NAME] [--irqchip]\n"
		"                [--stats] [--incoming tcp:HOST:PORT | --restore FILE]\n"
		"\n"
		"Boot a PVH ELF image in a KVM virtual machine, attach GPU partitions\n"
		"served by `gpup daemon` (vfio-user sockets), and exit with the status\n"
		"the guest writes to I/O port 0xf4.\n"
		"\n"
		"  --kernel IMAGE   ELF image with a XEN_ELFNOTE_PHYS32_ENTRY note\n"
		"  --mem SIZE       guest RAM, e.g. 256M (default 128M, 2M..3G)\n"
		"  --cpus N         vCPUs (default 1, at most %d); the guest starts\n"
		"                   the others itself (INIT/SIPI)\n"
		"  --gpu UUID       a partition: its UUID (the socket in the daemon's\n"
		"                   run directory, see `gpup --run-dir`) or its\n"
		"                   vfio-user socket path; repeatable, %d max\n"
		"  --serial WHERE   console output: stdio (default) or a file\n"
		"  --append STR     command line for the guest (hvm_start_info)\n"
		"  --ctl SOCKET     serve a JSON control socket (status, stop, migrate)\n"
		"  --name NAME      name the VM: its control socket is RUN_DIR/vms/NAME.sock,\n"
		"                   for `gpup migrate NAME` and `gpup vms`\n"
		"  --incoming tcp:HOST:PORT\n"
		"                   wait there for a VM that `gpup migrate` sends, then\n"
		"                   run it; RAM, vCPUs and the guest come from the stream\n"
		"                   (--kernel, --mem, --cpus, --append are not needed;\n"
		"                   --mem, if given, is faulted in while it waits, so\n"
		"                   that the stream is not slowed by first touches),\n"
		"                   the --gpu list must match the source's: partitions\n"
		"                   of the same types, on this host's daemon\n"
		"  --restore FILE   run the VM of a checkpoint that `gpup checkpoint VM\n"
		"                   --to FILE` wrote (an incremental one with its bases,\n"
		"                   found in its directory), where it stopped; like\n"
		"                   --incoming it needs no --kernel, --mem or --cpus, and\n"
		"                   the --gpu list must give partitions of the same types.\n"
		"                   A cut or corrupt file, or a missing base, is refused\n"
		"                   with one line naming the file (and the chunk)\n"
		"  --irqchip        give the guest a local APIC even when it has one\n"
		"                   vCPU and no device (otherwise it has none)\n"
		"  --stats          at the end, print how many exits reached the VMM\n"
		"\n"
		"exit status:\n"
		"  0..%d   the status the guest wrote to port 0xf4 (0 = success)\n"
		"  %d      bad command line\n"
		"  %d      kernel image unreadable, not a PVH ELF, or too big for RAM\n"
		"  %d      KVM or a host resource is unavailable\n"
		"  %d      a --gpu partition could not be attached\n"
		"  %d      the guest crashed (triple fault, invalid state)\n"
		"  %d      the guest wrote a status above %d\n"
		"  %d      stopped from outside (signal or control socket), or migrated\n"
		"          away to another `gpup run`\n"
		"  %d      --incoming: no VM came (the stream was refused, cut or lost);\n"
		"          --restore: the checkpoint was refused; nothing is left behind\n",
		HV_MAX_CPUS, HV_MAX_GPUS, HV_GUEST_STATUS_MAX, HV_EXIT_USAGE,
		HV_EXIT_IMAGE, HV_EXIT_HOST, HV_EXIT_GPU, HV_EXIT_CRASH,
		HV_EXIT_BIG_STATUS, HV_GUEST_STATUS_MAX, HV_EXIT_STOPPED, HV_EXIT_MIGRATION);
}

static int run_parse_mem(const char *arg, struct hv_config *cfg)
{
	uint64_t v;

	if (gpup_parse_size(arg, &v) < 0 || v < HV_MIN_MEM || v > HV_MAX_MEM ||
	    v % 4096) {
		gpup_err("run", "--mem %s: want a multiple of 4K between 2M and 3G",
			 arg);
		return -1;
	}
	cfg->mem_size = cfg->incoming_mem = v;
	return 0;
}

static int run_parse_cpus(const char *arg, struct hv_config *cfg)
{
	char *end;
	long v = strtol(arg, &end, 10);

	if (*arg == 0 || *end || v < 1 || v > HV_MAX_CPUS) {
		gpup_err("run", "--cpus %s: want a number from 1 to %d", arg,
			 HV_MAX_CPUS);
		return -1;
	}
	cfg->ncpus = (unsigned int)v;
	return 0;
}

/* --gpu takes a socket path, or a partition UUID (no '/') that names
 * RUN_DIR/UUID.sock in the daemon's run directory. */
static int run_parse_gpu(const struct gpup_global *g, const char *arg,
			struct hv_config *cfg)
{
	static char paths[HV_MAX_GPUS][256];
	char *p = paths[cfg->ngpus];

	if (cfg->ngpus == HV_MAX_GPUS) {
		gpup_err("run", "at most %d --gpu options", HV_MAX_GPUS);
		return -1;
	}
	if (strchr(arg, '/') || !*arg) {
		cfg->gpus[cfg->ngpus++] = arg;
		return 0;
	}
	if ((size_t)snprintf(p, sizeof(paths[0]), "%s/%s.sock", g->run_dir, arg) >=
	    sizeof(paths[0])) {
		gpup_err("run", "--gpu %s: the socket path is too long", arg);
		return -1;
	}
	cfg->gpus[cfg->ngpus++] = p;
	return 0;
}

/* --name: the control socket in RUN_DIR/vms, where `gpup vms` looks. */
static int run_parse_name(const struct gpup_global *g, const char *arg,
			  struct hv_config *cfg)
{
	static char path[256];
	char dir[200];
	size_t n = strspn(arg, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
			  "0123456789._-");

	if (!*arg || arg[n] || n > 32 || arg[0] == '.') {
		gpup_err("run", "--name %s: want up to 32 letters, digits, '.', '_' or '-'",
			 arg);
		return -1;
	}
	if ((size_t)snprintf(dir, sizeof(dir), "%s/vms", g->run_dir) >= sizeof(dir) ||
	    (size_t)snprintf(path, sizeof(path), "%s/%s.sock", dir, arg) >= 100) {
		gpup_err("run", "--name %s: the socket path under %s is too long", arg,
			 g->run_dir);
		return -1;
	}
	if (gpup_mkdir_p(dir, 0700) < 0) {
		gpup_err("run", "cannot make %s", dir);
		return -1;
	}
	cfg->ctl_path = path;
	return 0;
}

static int run_parse_opt(const struct gpup_global *g, int c, const char *arg,
			struct hv_config *cfg)
{
	switch (c) {
	case 'k':
		cfg->kernel = arg;
		return 0;
	case 'm':
		return run_parse_mem(arg, cfg);
	case 'c':
		return run_parse_cpus(arg, cfg);
	case 'g':
		return run_parse_gpu(g, arg, cfg);
	case 's':
		cfg->serial = arg;
		return 0;
	case 'a':
		cfg->cmdline = arg;
		return 0;
	case 'C':
		cfg->ctl_path = arg;
		return 0;
	case 'n':
		return run_parse_name(g, arg, cfg);
	case 'i':
		cfg->incoming = arg;
		return 0;
	case 'R':
		cfg->restore = arg;
		return 0;
	case 'I':
		cfg->irqchip = 1;
		return 0;
	case 'S':
		cfg->stats = 1;
		return 0;
	default:
		run_usage(stderr);
		return -1;
	}
}

static int cmd_run(const struct gpup_global *g, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "kernel", required_argument, NULL, 'k' },
		{ "mem", required_argument, NULL, 'm' },
		{ "cpus", required_argument, NULL, 'c' },
		{ "gpu", required_argument, NULL, 'g' },
		{ "serial", required_argument, NULL, 's' },
		{ "append", required_argument, NULL, 'a' },
		{ "ctl", required_argument, NULL, 'C' },
		{ "name", required_argument, NULL, 'n' },
		{ "incoming", required_argument, NULL, 'i' },
		{ "restore", required_argument, NULL, 'R' },
		{ "irqchip", no_argument, NULL, 'I' },
		{ "stats", no_argument, NULL, 'S' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	struct hv_config cfg = { .mem_size = HV_DEFAULT_MEM, .ncpus = 1,
				 .ckpt_fault = getenv("GPUP_TEST_CKPT_FAULT") };
	int c;

	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		if (c == 'h') {
			run_usage(stdout);
			return GPUP_EXIT_OK;
		}
		if (run_parse_opt(g, c, optarg, &cfg) < 0)
			return HV_EXIT_USAGE;
	}
	if (optind < argc) {
		gpup_err("run", "unexpected argument '%s'", argv[optind]);
		return HV_EXIT_USAGE;
	}
	if (cfg.incoming && strncmp(cfg.incoming, "tcp:", 4)) {
		gpup_err("run", "--incoming %s: want tcp:HOST:PORT", cfg.incoming);
		return HV_EXIT_USAGE;
	}
	if (cfg.incoming && cfg.restore) {
		gpup_err("run", "--incoming and --restore exclude each other");
		return HV_EXIT_USAGE;
	}
	if (!cfg.kernel && !cfg.incoming && !cfg.restore) {
		gpup_err("run", "--kernel IMAGE is required; see 'gpup run --help'");
		return HV_EXIT_USAGE;
	}
	return hv_run(&cfg);
}

GPUP_COMMAND("run", "boot a VM (KVM) and attach GPU partitions to it", cmd_run)
