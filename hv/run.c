// SPDX-License-Identifier: MIT
/*
 * hv_run(), the VMM behind `gpup run` (whose command line is parsed in
 * gpup/cli/cmd_run.c): it builds a VM from a struct hv_config, runs it,
 * and maps every way it can end to one exit code (see hv/hv.h).  The main
 * thread owns the event loop: the VM's stop eventfd, SIGINT/SIGTERM
 * through a signalfd, the control socket and the attached partitions'
 * sockets.  vCPUs run in their own threads.
 */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include "hv/hv_int.h"

struct hv_instance {
	struct hv_vm vm;
	struct hv_config built;      /* an incoming VM's shape */
	struct hv_ctl *ctl;
	int sig_fd;
};

int hv_build_vm(struct hv_vm *vm, const struct hv_config *cfg)
{
	uint64_t entry = 0;
	int rc;

	if (hv_vm_create(vm, cfg) < 0 || hv_serial_init(vm, cfg->serial) < 0)
		return HV_EXIT_HOST;
	rc = cfg->incoming || cfg->restore ? 0
					   : hv_pvh_load(vm, cfg->kernel, cfg->cmdline, &entry);
	if (rc == -ENOMEM)
		return HV_EXIT_HOST;
	if (rc < 0)
		return HV_EXIT_IMAGE;
	if (hv_pci_init(vm) < 0)
		return HV_EXIT_HOST;
	for (unsigned int i = 0; i < cfg->ngpus; i++) {
		if (hv_vgpu_attach(vm, cfg->gpus[i], &vm->gpus[i]) < 0)
			return HV_EXIT_GPU;
		vm->ngpus++;
	}
	if (hv_vm_irqchip(vm) < 0)
		return HV_EXIT_HOST;
	for (unsigned int i = 0; i < cfg->ncpus; i++)
		if (hv_vcpu_create(vm, i) < 0)
			return HV_EXIT_HOST;
	if (!cfg->incoming && !cfg->restore &&
	    hv_vcpu_set_boot_state(&vm->vcpus[0], entry, HV_START_INFO_GPA) < 0) {
		hv_log("cannot set the boot CPU state: %s", strerror(errno));
		return HV_EXIT_HOST;
	}
	return 0;
}

static int hv_build(struct hv_instance *s, const struct hv_config *cfg)
{
	int rc = cfg->incoming ? hv_incoming(&s->vm, cfg, &s->built, s->sig_fd)
		 : cfg->restore ? hv_restore(&s->vm, cfg, &s->built)
				: hv_build_vm(&s->vm, cfg);

	if (rc == 0 && cfg->ctl_path && hv_ctl_open(&s->vm, cfg->ctl_path, &s->ctl) < 0)
		return HV_EXIT_HOST;
	return rc;
}

/* SIGINT and SIGTERM go to the event loop, in every thread's mask. */
static int hv_signals(struct hv_instance *s)
{
	sigset_t set;

	sigemptyset(&set);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGHUP);
	if (pthread_sigmask(SIG_BLOCK, &set, NULL))
		return -1;
	/* A console or daemon that went away is an error to handle, not a
	 * reason to die. */
	signal(SIGPIPE, SIG_IGN);
	s->sig_fd = signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK);
	return s->sig_fd < 0 ? -1 : 0;
}

static void hv_loop_signal(struct hv_instance *s)
{
	struct signalfd_siginfo si;

	if (read(s->sig_fd, &si, sizeof(si)) != sizeof(si))
		return;
	hv_log("stopping the VM on signal %u", si.ssi_signo);
	hv_vm_stop(&s->vm, HV_EXIT_STOPPED);
}

static void hv_loop(struct hv_instance *s)
{
	struct hv_vm *vm = &s->vm;
	struct pollfd pfd[3 + HV_MAX_GPUS];
	unsigned int n;

	while (!atomic_load(&vm->stopping)) {
		pfd[0] = (struct pollfd){ .fd = vm->stop_fd, .events = POLLIN };
		pfd[1] = (struct pollfd){ .fd = s->sig_fd, .events = POLLIN };
		pfd[2] = (struct pollfd){ .fd = s->ctl ? hv_ctl_fd(s->ctl) : -1,
					  .events = POLLIN };
		n = 3;
		/* No events asked: poll reports only a hang-up or an error, so
		 * replies the vCPU threads wait for are never taken here. */
		for (unsigned int i = 0; i < vm->ngpus; i++)
			pfd[n++] = (struct pollfd){ .fd = hv_vgpu_poll_fd(vm->gpus[i]) };
		if (poll(pfd, n, -1) < 0) {
			if (errno == EINTR)
				continue;
			hv_log("poll: %s", strerror(errno));
			hv_vm_stop(vm, HV_EXIT_HOST);
			break;
		}
		if (pfd[1].revents)
			hv_loop_signal(s);
		if (pfd[2].revents)
			hv_ctl_handle(vm, s->ctl);
		for (unsigned int i = 0; i < vm->ngpus; i++)
			if (pfd[3 + i].revents)
				hv_vgpu_lost(vm, vm->gpus[i],
					     "the daemon closed the connection");
	}
}

static void hv_teardown(struct hv_instance *s)
{
	if (!s->vm.cfg) {
		/* --incoming or --restore that never got as far as a VM */
		if (s->sig_fd >= 0)
			close(s->sig_fd);
		return;
	}
	hv_mig_join(&s->vm);
	hv_vcpus_join(&s->vm);
	if (s->ctl)
		hv_ctl_close(s->ctl);
	for (unsigned int i = 0; i < s->vm.ngpus; i++)
		hv_vgpu_detach(&s->vm, s->vm.gpus[i]);
	hv_pci_destroy(&s->vm);
	hv_serial_close(&s->vm);
	if (s->sig_fd >= 0)
		close(s->sig_fd);
	hv_vm_destroy(&s->vm);
}

int hv_run(const struct hv_config *cfg)
{
	struct hv_instance *s = calloc(1, sizeof(*s));
	int code;

	if (!s) {
		hv_log("out of memory");
		return HV_EXIT_HOST;
	}
	s->sig_fd = -1;
	/* Signals first: a SIGTERM that comes while the VM is being built
	 * (its control socket may already be there) waits for the loop. */
	if (hv_signals(s) < 0) {
		hv_log("cannot set up signal handling: %s", strerror(errno));
		code = HV_EXIT_HOST;
	} else {
		code = hv_build(s, cfg);
	}
	if (code == 0 && hv_vcpus_start(&s->vm) < 0)
		code = HV_EXIT_HOST;
	if (code == 0) {
		hv_loop(s);
		code = atomic_load(&s->vm.exit_code);
		if (cfg->stats)
			hv_log("stats: %llu userspace exits (%llu port I/O, %llu MMIO) in "
			       "%llu us", (unsigned long long)atomic_load(&s->vm.exits),
			       (unsigned long long)atomic_load(&s->vm.io_exits),
			       (unsigned long long)atomic_load(&s->vm.mmio_exits),
			       (unsigned long long)((hv_now_ns() - s->vm.start_ns) / 1000));
	} else {
		if (s->vm.cfg)
			hv_vm_stop(&s->vm, code);
	}
	hv_teardown(s);
	free(s);
	return code;
}
