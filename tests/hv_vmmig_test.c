// SPDX-License-Identifier: MIT
/*
 * Live migration of a VM between two `gpup run` processes over loopback
 * TCP, each VM on a partition of its own daemon (two daemons with their
 * own run and state directories and sim GPUs: "another host" on one
 * machine).  The dirty guest is the witness: it rewrites RAM and VRAM
 * (CPU stores, through BAR2, FILL, COPY, RENDER) and checks every byte
 * and fence after each epoch.  Here it finishes on the destination with
 * every check passed, and on the source whenever a migration aborts: the
 * destination refuses (another partition type), is killed mid-stream,
 * the stream is cut by a proxy at several points, or the migration
 * cannot converge.  Skips with one line where /dev/kvm is absent.
 */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <json-c/json.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "tests/daemonlib.h"
#include "tests/testlib.h"

#define OUT_MAX 16384

static struct dl_daemon src, dst;

struct vm {
	pid_t pid;
	char out[256], err[256];
	int code;
	char out_buf[OUT_MAX], err_buf[OUT_MAX];
};

static void need_kvm(void)
{
	if (access("/dev/kvm", R_OK | W_OK) != 0)
		cr_skip_test("no usable /dev/kvm here: the VMM tests need KVM");
}

static void setup(void)
{
	static const char *const args[] = { "--sim-gpus", "1", "--vram", "1G", NULL };

	if (access("/dev/kvm", R_OK | W_OK) != 0)
		return;
	cr_assert(getenv("GPUP_BIN") && getenv("GPUP_GUESTS"),
		  "run through make test: GPUP_BIN and GPUP_GUESTS unset");
	cr_assert_eq(dl_start(&src, &(struct dl_opts){ .name = "vmmig-src", .args = args }), 0);
	cr_assert_eq(dl_start(&dst, &(struct dl_opts){ .name = "vmmig-dst", .args = args }), 0);
}

static void teardown(void)
{
	dl_teardown(&src);
	dl_teardown(&dst);
}

TestSuite(hv_vmmig, .init = setup, .fini = teardown, .timeout = 90);

/* A partition of type on d's gpu0: its UUID. */
static void create(struct dl_daemon *d, const char *type, char *uuid)
{
	char args[128], out[256];

	snprintf(args, sizeof(args), "create --gpu gpu0 --type %s", type);
	cr_assert_eq(tl_gpup(d->dir, out, sizeof(out), args), 0, "create: %s", out);
	memcpy(uuid, out, 36);
	uuid[36] = 0;
}

/* `gpup --run-dir D/run run ARGS...` with stdout and stderr in files. */
static void spawn(struct vm *p, struct dl_daemon *d, const char *tag, char *const *args)
{
	char *argv[24], rd[128];
	int n = 0;

	snprintf(p->out, sizeof(p->out), "%s/%s.out", d->dir, tag);
	snprintf(p->err, sizeof(p->err), "%s/%s.err", d->dir, tag);
	snprintf(rd, sizeof(rd), "%s/run", d->dir);
	argv[n++] = "gpup";
	argv[n++] = "--run-dir";
	argv[n++] = rd;
	argv[n++] = "run";
	while (*args && n < 23)
		argv[n++] = *args++;
	argv[n] = NULL;
	p->pid = fork();
	cr_assert_neq(p->pid, -1);
	if (p->pid == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		int o = open(p->out, O_WRONLY | O_CREAT | O_TRUNC, 0600);
		int e = open(p->err, O_WRONLY | O_CREAT | O_TRUNC, 0600);

		dup2(o, 1);
		dup2(e, 2);
		execv(getenv("GPUP_BIN"), argv);
		_exit(127);
	}
}

static void finish(struct vm *p)
{
	int st;

	cr_assert_eq(waitpid(p->pid, &st, 0), p->pid);
	p->code = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
	tl_slurp(p->out, p->out_buf, OUT_MAX);
	tl_slurp(p->err, p->err_buf, OUT_MAX);
}

/* migrate --json's CPU figures: the migration thread used some, and the
 * guest's one vCPU no more than the wall time it ran in (1 ms for the
 * clocks' reads). */
static void check_cpu(const char *out)
{
	json_object *o = json_tokener_parse(out), *v;
	double total, cpu, vcpu;

	cr_assert_not_null(o, "not JSON: %s", out);
	cr_assert(json_object_object_get_ex(o, "total_ms", &v), "%s", out);
	total = json_object_get_double(v);
	cr_assert(json_object_object_get_ex(o, "cpu_ms", &v), "%s", out);
	cpu = json_object_get_double(v);
	cr_assert(json_object_object_get_ex(o, "vcpu_cpu_ms", &v), "%s", out);
	vcpu = json_object_get_double(v);
	cr_assert(cpu > 0 && cpu <= total + 1, "cpu_ms %f of total_ms %f", cpu, total);
	cr_assert(vcpu >= 0 && vcpu <= total + 1, "vcpu_cpu_ms %f of total_ms %f", vcpu, total);
	json_object_put(o);
}

/* The source: dirty on a partition of d, named "vm". */
static void boot_source(struct vm *p, const char *uuid, const char *append)
{
	char kernel[512];
	char *args[] = { "--kernel", kernel, "--gpu", (char *)uuid, "--name", "vm",
			 "--append", (char *)append, NULL };
	char sock[256];

	snprintf(kernel, sizeof(kernel), "%s/dirty.elf", getenv("GPUP_GUESTS"));
	spawn(p, &src, "src", args);
	snprintf(sock, sizeof(sock), "%s/run/vms/vm.sock", src.dir);
	for (int i = 0; i < 200 && access(sock, F_OK); i++)
		usleep(10000);
	cr_assert_eq(access(sock, F_OK), 0, "the source VM's control socket never came");
}

/* A free loopback port (bound and let go: nobody else asks for it here). */
static int free_port(void)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t len = sizeof(a);
	int fd = socket(AF_INET, SOCK_STREAM, 0), port;

	cr_assert_eq(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
	cr_assert_eq(getsockname(fd, (struct sockaddr *)&a, &len), 0);
	port = ntohs(a.sin_port);
	close(fd);
	return port;
}

/* `gpup run --incoming` on dst with uuid (and --mem mem), listening once
 * it returns. */
static void boot_dest_mem(struct vm *p, const char *uuid, int port, const char *tag,
			  const char *mem)
{
	char addr[64], line[128];
	char *args[] = { "--incoming", addr, "--mem", (char *)mem, uuid ? "--gpu" : NULL,
			 (char *)uuid, NULL };

	snprintf(addr, sizeof(addr), "tcp:127.0.0.1:%d", port);
	snprintf(line, sizeof(line), "waiting for a migration on %s", addr);
	if (!mem)
		memmove(args + 2, args + 4, 3 * sizeof(*args));
	spawn(p, &dst, tag, args);
	for (int i = 0; i < 300; i++) {
		tl_slurp(p->err, p->err_buf, OUT_MAX);
		if (strstr(p->err_buf, line))
			return;
		usleep(10000);
	}
	cr_assert_fail("the destination never listened: %s", p->err_buf);
}

static void boot_dest(struct vm *p, const char *uuid, int port, const char *tag)
{
	boot_dest_mem(p, uuid, port, tag, NULL);
}

static int migrate(int port, const char *more, char *out, size_t len)
{
	char args[256];

	snprintf(args, sizeof(args), "migrate vm --to tcp:127.0.0.1:%d --json %s", port, more);
	return tl_gpup(src.dir, out, len, args);
}

static void check_ok(const struct vm *p, const char *who)
{
	cr_assert_eq(p->code, 0, "%s: out: %s err: %s", who, p->out_buf, p->err_buf);
	cr_assert(strstr(p->out_buf, "dirty: ok: "), "%s: %s", who, p->out_buf);
}

Test(hv_vmmig, the_dirty_guest_moves_and_checks_out_on_the_destination)
{
	char a[40], b[40], out[4096];
	struct vm s, d;
	int port = free_port();

	need_kvm();
	create(&src, "sim-64m-16", a);
	create(&dst, "sim-64m-16", b);
	boot_source(&s, a, "ram=8 vram=8 rate=32 ms=3000 epoch=100 timeout=10");
	boot_dest(&d, b, port, "dst");
	usleep(700000);
	cr_assert_eq(migrate(port, "", out, sizeof(out)), 0, "%s", out);
	cr_assert(strstr(out, "\"rounds\"") && strstr(out, "\"downtime_ms\""), "%s", out);
	check_cpu(out);
	finish(&s);
	finish(&d);
	cr_assert_eq(s.code, 126, "the source: %s", s.err_buf);
	cr_assert(strstr(s.err_buf, "the VM moved to tcp:127.0.0.1:"), "%s", s.err_buf);
	cr_assert_null(strstr(s.out_buf, "dirty: ok"), "the source must not run on: %s",
		       s.out_buf);
	check_ok(&d, "the destination");
	cr_assert(strstr(d.out_buf, " fences, longest"), "%s", d.out_buf);
	cr_assert(strstr(d.err_buf, "the VM runs here"), "%s", d.err_buf);
}

/* The source after an aborted migration: it finishes, every check passed. */
static void source_survives(struct vm *s)
{
	finish(s);
	check_ok(s, "the source");
	cr_assert(strstr(s->err_buf, "failed, the VM runs on here"), "%s", s->err_buf);
}

/* A partition of another size is refused by the destination VMM, one of
 * the same size but another type by the partition itself. */
Test(hv_vmmig, a_destination_of_another_type_refuses_and_the_source_runs_on)
{
	static const char *const args[] = { "--sim-gpus", "1", "--vram", "256M", NULL };
	char a[40], b[40], c[40], out[4096];
	struct dl_daemon third = { 0 };
	struct vm s, d;
	int port = free_port();

	need_kvm();
	create(&src, "sim-64m-16", a);
	create(&dst, "sim-128m-8", b);
	boot_source(&s, a, "ram=4 vram=4 rate=16 ms=3000 epoch=100 timeout=10");
	boot_dest(&d, b, port, "dst");
	usleep(300000);
	cr_assert_eq(migrate(port, "", out, sizeof(out)), 1, "%s", out);
	cr_assert(strstr(out, "the destination refused the stream: partition 0 has 134217728 "
			 "bytes of VRAM here, the source's 67108864"), "%s", out);
	finish(&d);
	cr_assert_eq(d.code, 127, "%s", d.err_buf);

	cr_assert_eq(dl_start(&third, &(struct dl_opts){ .name = "vmmig-3", .args = args }), 0);
	create(&third, "sim-64m-4", c); /* 64 MiB too, of a type of its own */
	port = free_port();
	{
		struct dl_daemon keep = dst;

		dst = third;
		boot_dest(&d, c, port, "dst2");
		dst = keep;
	}
	cr_assert_eq(migrate(port, "", out, sizeof(out)), 1, "%s", out);
	cr_assert(strstr(out, "the destination refused the stream: partition 0 refused its "
			 "stream: Invalid argument"), "%s", out);
	finish(&d);
	cr_assert_eq(d.code, 127, "%s", d.err_buf);
	cr_assert(strstr(d.err_buf, "incoming migration refused: partition 0 refused"), "%s",
		  d.err_buf);
	dl_teardown(&third);
	source_survives(&s);
}

Test(hv_vmmig, a_destination_killed_mid_stream_leaves_the_source_running)
{
	char a[40], b[40], out[4096];
	struct vm s, d;
	int port = free_port();

	need_kvm();
	create(&src, "sim-64m-16", a);
	create(&dst, "sim-64m-16", b);
	boot_source(&s, a, "ram=32 vram=16 rate=16 ms=3500 epoch=150 timeout=10");
	boot_dest(&d, b, port, "dst");
	usleep(500000);
	pid_t killer = fork();

	if (killer == 0) {
		usleep(400000);
		kill(d.pid, SIGKILL);
		_exit(0);
	}
	/* At 1 MiB/s and a budget of 1 ms it goes on until the kill. */
	cr_assert_eq(migrate(port, "--bandwidth 1M --downtime-ms 1 --max-rounds 1000", out,
			     sizeof(out)), 1, "%s", out);
	cr_assert(strstr(out, "lost the destination") || strstr(out, "went away"), "%s", out);
	waitpid(killer, NULL, 0);
	finish(&d);
	cr_assert_eq(d.code, 128 + SIGKILL);
	source_survives(&s);
}

/* The destination's daemon killed while the stream comes in: its
 * partition is lost to the destination VMM, which refuses the stream; the
 * source runs on. */
Test(hv_vmmig, the_destination_daemon_killed_mid_stream_leaves_the_source_running)
{
	char a[40], b[40], out[4096];
	struct vm s, d;
	int port = free_port();

	need_kvm();
	create(&src, "sim-64m-16", a);
	create(&dst, "sim-64m-16", b);
	boot_source(&s, a, "ram=16 vram=16 rate=16 ms=3000 epoch=150 timeout=10");
	boot_dest(&d, b, port, "dst");
	usleep(500000);
	pid_t killer = fork();

	if (killer == 0) {
		usleep(400000);
		kill(dst.pid, SIGKILL);
		_exit(0);
	}
	cr_assert_eq(migrate(port, "--bandwidth 1M --downtime-ms 1 --max-rounds 1000", out,
			     sizeof(out)), 1, "%s", out);
	cr_assert(strstr(out, "the destination refused the stream: partition 0: its daemon "
			 "closed the connection") ||
		  strstr(out, "the destination refused the stream: partition 0 refused its "
			 "stream"), "%s", out);
	waitpid(killer, NULL, 0);
	waitpid(dst.pid, NULL, 0);
	dst.pid = 0; /* reaped: teardown only removes its directory */
	finish(&d);
	cr_assert_eq(d.code, 127, "%s", d.err_buf);
	source_survives(&s);
}

/* A proxy that forwards the source's first `cut` bytes, then closes. */
struct proxy {
	int lfd, to_port;
	uint64_t cut;
	pthread_t t;
};

static void *proxy_run(void *arg)
{
	struct proxy *p = arg;
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)p->to_port),
				 .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	static char buf[65536];
	uint64_t fwd = 0;
	int in = accept(p->lfd, NULL, NULL), out = socket(AF_INET, SOCK_STREAM, 0);

	if (in < 0 || connect(out, (struct sockaddr *)&a, sizeof(a)) < 0)
		goto done;
	for (;;) {
		struct pollfd pf[2] = { { in, POLLIN, 0 }, { out, POLLIN, 0 } };
		ssize_t n;

		if (poll(pf, 2, 20000) <= 0)
			break;
		if (pf[0].revents) {
			uint64_t room = p->cut - fwd;

			n = read(in, buf, room < sizeof(buf) ? room : sizeof(buf));
			if (n <= 0 || write(out, buf, (size_t)n) != n)
				break;
			fwd += (uint64_t)n;
			if (fwd >= p->cut)
				break;
		}
		if (pf[1].revents && ((n = read(out, buf, sizeof(buf))) <= 0 ||
				      write(in, buf, (size_t)n) != n))
			break;
	}
done:
	close(in);
	close(out);
	return NULL;
}

static int proxy_start(struct proxy *p, int to_port, uint64_t cut)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t len = sizeof(a);

	p->lfd = socket(AF_INET, SOCK_STREAM, 0);
	cr_assert_eq(bind(p->lfd, (struct sockaddr *)&a, sizeof(a)), 0);
	cr_assert_eq(listen(p->lfd, 1), 0);
	cr_assert_eq(getsockname(p->lfd, (struct sockaddr *)&a, &len), 0);
	p->to_port = to_port;
	p->cut = cut;
	cr_assert_eq(pthread_create(&p->t, NULL, proxy_run, p), 0);
	return ntohs(a.sin_port);
}

/* Cuts at the head, inside HEADER, in the first round, later: each
 * aborts, each destination exits clean, the source runs on; then a
 * migration that cannot converge in two rounds gives up; and after all
 * that the same VM still migrates. */
Test(hv_vmmig, a_stream_cut_at_any_point_leaves_the_source_running)
{
	static const uint64_t cuts[] = { 0, 40, 5000, 300000, 1u << 20 };
	char a[40], b[40], out[4096], tag[16];
	struct vm s, d;

	need_kvm();
	create(&src, "sim-64m-16", a);
	create(&dst, "sim-64m-16", b);
	boot_source(&s, a, "ram=32 vram=8 rate=16 ms=6000 epoch=150 timeout=10");
	usleep(500000);
	for (unsigned int i = 0; i < sizeof(cuts) / sizeof(cuts[0]); i++) {
		struct proxy px;
		int port = free_port(), pport;

		snprintf(tag, sizeof(tag), "dst%u", i);
		boot_dest(&d, b, port, tag);
		pport = proxy_start(&px, port, cuts[i]);
		/* 1 ms at 4 MiB/s is never enough: rounds go on until the cut. */
		cr_assert_eq(migrate(pport, "--bandwidth 4M --downtime-ms 1 --max-rounds 1000", out,
				     sizeof(out)),
			     1, "cut at %llu: %s",
			     (unsigned long long)cuts[i], out);
		pthread_join(px.t, NULL);
		close(px.lfd);
		finish(&d);
		cr_assert_eq(d.code, 127, "cut at %llu: %s", (unsigned long long)cuts[i], d.err_buf);
		cr_assert(strstr(d.err_buf, "incoming migration refused: "), "%s", d.err_buf);
	}
	cr_assert_eq(migrate(free_port(), "", out, sizeof(out)), 1);
	cr_assert(strstr(out, "cannot reach tcp:127.0.0.1:"), "%s", out);
	int port = free_port();

	boot_dest(&d, b, port, "dst-nc");
	cr_assert_eq(migrate(port, "--max-rounds 2 --downtime-ms 1", out,
			     sizeof(out)), 1, "%s", out);
	cr_assert(strstr(out, "no convergence in 2 rounds"), "%s", out);
	finish(&d);
	cr_assert_eq(d.code, 127, "%s", d.err_buf);

	port = free_port();
	boot_dest(&d, b, port, "dst-last");
	if (migrate(port, "", out, sizeof(out))) {
		finish(&s);
		cr_assert_fail("%s\nsource: %d %s %s", out, s.code, s.out_buf, s.err_buf);
	}
	finish(&s);
	finish(&d);
	cr_assert_eq(s.code, 126, "%s", s.err_buf);
	check_ok(&d, "the destination after five aborted tries");
}

Test(hv_vmmig, a_vm_without_devices_moves_by_name_and_is_listed)
{
	char kernel[512], out[4096];
	char *args[] = { "--kernel", kernel, "--name", "vm", "--append",
			 "vram=0 ram=16 rate=32 ms=2000 epoch=100", NULL };
	struct vm s, d;
	int port = free_port();

	need_kvm();
	snprintf(kernel, sizeof(kernel), "%s/dirty.elf", getenv("GPUP_GUESTS"));
	boot_dest(&d, NULL, port, "dst");
	spawn(&s, &src, "src", args);
	usleep(400000);
	cr_assert_eq(tl_gpup(src.dir, out, sizeof(out), "vms"), 0);
	cr_assert(strstr(out, "\nvm ") && strstr(out, "running"), "%s", out);
	cr_assert_eq(migrate(port, "", out, sizeof(out)), 0, "%s", out);
	finish(&s);
	finish(&d);
	cr_assert_eq(s.code, 126);
	check_ok(&d, "the destination");
	cr_assert(strstr(d.out_buf, " 0 fences"), "%s", d.out_buf);
	cr_assert_eq(tl_gpup(src.dir, out, sizeof(out), "vms --json"), 0);
	cr_assert_str_eq(out, "[\n]\n", "the moved VM's socket is gone");
}

/* --mem on the destination: that much RAM is faulted in while it waits and
 * taken by a VM of that size; a VM of another size gets RAM made anew.
 * Either way the guest checks out. */
Test(hv_vmmig, a_destination_told_the_ram_size_takes_a_vm_of_any_size)
{
	static const char *const mems[] = { "128M", "64M" };
	char kernel[512], out[4096];
	char *args[] = { "--kernel", kernel, "--name", "vm", "--append",
			 "vram=0 ram=16 rate=32 ms=2000 epoch=100", NULL };

	need_kvm();
	snprintf(kernel, sizeof(kernel), "%s/dirty.elf", getenv("GPUP_GUESTS"));
	for (int i = 0; i < 2; i++) {
		struct vm s, d;
		int port = free_port();

		boot_dest_mem(&d, NULL, port, i ? "dst-other" : "dst-same", mems[i]);
		spawn(&s, &src, i ? "src-other" : "src-same", args);
		usleep(400000);
		cr_assert_eq(migrate(port, "", out, sizeof(out)), 0, "%s", out);
		finish(&s);
		finish(&d);
		cr_assert_eq(s.code, 126);
		check_ok(&d, mems[i]);
		cr_assert_eq(!!strstr(d.err_buf, "its RAM is made anew"), i == 1, "%s",
			     d.err_buf);
	}
}
