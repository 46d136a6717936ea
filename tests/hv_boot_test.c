// SPDX-License-Identifier: MIT
/*
 * `gpup run` boots real guests under KVM: the hello sample's output and
 * exit status, every VMM-side failure's exit code and message (bad images,
 * bad flags, a crashing guest), the serial file, and stopping a running
 * VM through its control socket and by signal.  Skips with one line where
 * /dev/kvm is absent.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "hv/hv.h"

#define OUT_MAX 8192

struct run_result {
	int code;
	char out[OUT_MAX], err[OUT_MAX];
};

static char tmpdir[64];

static bool kvm_usable(void)
{
	return access("/dev/kvm", R_OK | W_OK) == 0;
}

static void need_kvm(void)
{
	if (!kvm_usable())
		cr_skip_test("no usable /dev/kvm here: the VMM tests need KVM");
	cr_assert(getenv("GPUP_BIN") && getenv("GPUP_GUESTS"),
		  "run through make test: GPUP_BIN and GPUP_GUESTS unset");
}

/* No directory where the tests will skip: Criterion runs no teardown
 * for a test that skips, and each would leave one behind. */
static void setup(void)
{
	tmpdir[0] = 0;
	if (!kvm_usable())
		return;
	strcpy(tmpdir, "/tmp/hv-boot-XXXXXX");
	cr_assert_not_null(mkdtemp(tmpdir));
}

static void teardown(void)
{
	char cmd[128];

	if (!tmpdir[0])
		return;
	snprintf(cmd, sizeof(cmd), "rm -rf %s", tmpdir);
	cr_assert_eq(system(cmd), 0);
}

static const char *guest(const char *name)
{
	static char path[512];

	snprintf(path, sizeof(path), "%s/%s.elf", getenv("GPUP_GUESTS"), name);
	return path;
}

static void slurp(int fd, char *buf)
{
	size_t len = 0;
	ssize_t n;

	while (len < OUT_MAX - 1 && (n = read(fd, buf + len, OUT_MAX - 1 - len)) > 0)
		len += (size_t)n;
	buf[len] = 0;
}

static pid_t spawn(char *const argv[], int *out_fd, int *err_fd)
{
	int o[2], e[2];
	pid_t pid;

	cr_assert_eq(pipe(o), 0);
	cr_assert_eq(pipe(e), 0);
	pid = fork();
	cr_assert_neq(pid, -1);
	if (pid == 0) {
		/* A test that times out must not leave VMs behind. */
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
	*out_fd = o[0];
	*err_fd = e[0];
	return pid;
}

static void finish(pid_t pid, int out_fd, int err_fd, struct run_result *r)
{
	int st;

	slurp(out_fd, r->out);
	slurp(err_fd, r->err);
	close(out_fd);
	close(err_fd);
	cr_assert_eq(waitpid(pid, &st, 0), pid);
	cr_assert(WIFEXITED(st), "gpup run died of signal %d", WTERMSIG(st));
	r->code = WEXITSTATUS(st);
}

/* Run `gpup run ARGS...` (NULL-terminated) and collect everything. */
static void run(struct run_result *r, ...)
{
	char *argv[24] = { "gpup", "run" };
	int argc = 2, o, e;
	pid_t pid;
	va_list ap;

	va_start(ap, r);
	while ((argv[argc] = va_arg(ap, char *)) != NULL && argc < 22)
		argc++;
	va_end(ap);
	pid = spawn(argv, &o, &e);
	finish(pid, o, e, r);
}

static void copy_patched(const char *src, const char *dst, long off,
			 const void *bytes, size_t len)
{
	FILE *in = fopen(src, "rb"), *out = fopen(dst, "wb");
	char buf[4096];
	size_t n;

	cr_assert(in && out);
	while ((n = fread(buf, 1, sizeof(buf), in)) > 0)
		cr_assert_eq(fwrite(buf, 1, n, out), n);
	if (bytes) {
		cr_assert_eq(fseek(out, off, SEEK_SET), 0);
		cr_assert_eq(fwrite(bytes, 1, len, out), len);
	}
	fclose(in);
	fclose(out);
}

/* Offset of the PVH note's type word in an image. */
static long find_pvh_note(const char *path)
{
	static const unsigned char note[] = { 4, 0, 0, 0, 8, 0, 0, 0, 18, 0, 0, 0,
					      'X', 'e', 'n', 0 };
	unsigned char buf[1 << 17];
	FILE *f = fopen(path, "rb");
	size_t n;

	cr_assert_not_null(f);
	n = fread(buf, 1, sizeof(buf), f);
	fclose(f);
	for (size_t i = 0; i + sizeof(note) <= n; i++)
		if (!memcmp(buf + i, note, sizeof(note)))
			return (long)i + 8;
	cr_assert_fail("no PVH note in %s", path);
	return -1;
}

TestSuite(hv_boot, .init = setup, .fini = teardown, .timeout = 60);

Test(hv_boot, hello_prints_and_exits_0)
{
	struct run_result r;

	need_kvm();
	run(&r, "--kernel", guest("hello"), NULL);
	cr_assert_eq(r.code, 0, "stderr: %s", r.err);
	cr_assert_str_eq(r.out, "hello from a gpup guest: 128 MiB RAM, "
				"1.5*2.25+0.125 = 3.500\r\n");
	cr_assert_str_eq(r.err, "");
}

/* The same image boots under QEMU's microvm (PVH through its -kernel),
 * whose isa-debug-exit returns (status << 1) | 1.  The device is left at
 * its default port, which the runtime writes too. */
Test(hv_boot, hello_boots_under_qemu_too)
{
	char cmd[1024], out[256] = { 0 };
	FILE *p;
	int st;

	need_kvm();
	if (system("command -v qemu-system-x86_64 >/dev/null 2>&1") != 0)
		cr_skip_test("qemu-system-x86_64 is not installed");
	snprintf(cmd, sizeof(cmd), "qemu-system-x86_64 -M microvm -accel kvm -kernel %s "
		 "-nodefaults -no-user-config -nographic -serial stdio -device "
		 "isa-debug-exit -append status=3 2>/dev/null", guest("hello"));
	p = popen(cmd, "r");
	cr_assert_not_null(p);
	cr_assert_not_null(fgets(out, sizeof(out), p));
	while (fgetc(p) != EOF)
		;
	st = pclose(p);
	cr_assert(!strncmp(out, "hello from a gpup guest: 128 MiB RAM", 36), "%s", out);
	cr_assert(WIFEXITED(st));
	cr_assert_eq(WEXITSTATUS(st), (3 << 1) | 1);
}

Test(hv_boot, guest_status_and_memory_size_pass_through)
{
	struct run_result r;

	need_kvm();
	run(&r, "--kernel", guest("hello"), "--mem", "64M", "--append", "status=42",
	    NULL);
	cr_assert_eq(r.code, 42, "stderr: %s", r.err);
	cr_assert(strstr(r.out, " 64 MiB RAM"), "%s", r.out);
}

Test(hv_boot, status_above_range_is_reported)
{
	struct run_result r;

	need_kvm();
	run(&r, "--kernel", guest("hello"), "--append", "status=200", NULL);
	cr_assert_eq(r.code, HV_EXIT_BIG_STATUS);
	cr_assert(strstr(r.err, "exit status 200"), "%s", r.err);
}

Test(hv_boot, serial_to_a_file)
{
	struct run_result r;
	char path[128], buf[256] = { 0 };
	int fd;

	need_kvm();
	snprintf(path, sizeof(path), "%s/console.txt", tmpdir);
	run(&r, "--kernel", guest("hello"), "--serial", path, NULL);
	cr_assert_eq(r.code, 0, "stderr: %s", r.err);
	cr_assert_str_eq(r.out, "");
	fd = open(path, O_RDONLY);
	cr_assert_geq(fd, 0);
	cr_assert_gt(read(fd, buf, sizeof(buf) - 1), 0);
	close(fd);
	cr_assert(!strncmp(buf, "hello from a gpup guest", 23), "%s", buf);
}

Test(hv_boot, not_an_elf_file)
{
	struct run_result r;
	char path[128];
	FILE *f;

	need_kvm();
	snprintf(path, sizeof(path), "%s/junk.bin", tmpdir);
	f = fopen(path, "w");
	fputs("this is not an ELF image at all\n", f);
	fclose(f);
	run(&r, "--kernel", path, NULL);
	cr_assert_eq(r.code, HV_EXIT_IMAGE);
	cr_assert(strstr(r.err, "not an ELF file"), "%s", r.err);
	cr_assert_eq(strchr(r.err, '\n'), r.err + strlen(r.err) - 1, "one line");
}

Test(hv_boot, missing_image)
{
	struct run_result r;

	need_kvm();
	run(&r, "--kernel", "/nonexistent/guest.elf", NULL);
	cr_assert_eq(r.code, HV_EXIT_IMAGE);
	cr_assert(strstr(r.err, "No such file"), "%s", r.err);
}

Test(hv_boot, elf_without_pvh_note)
{
	struct run_result r;
	char path[128];
	uint32_t other = 17;

	need_kvm();
	snprintf(path, sizeof(path), "%s/nonote.elf", tmpdir);
	copy_patched(guest("hello"), path, find_pvh_note(guest("hello")), &other,
		     sizeof(other));
	run(&r, "--kernel", path, NULL);
	cr_assert_eq(r.code, HV_EXIT_IMAGE);
	cr_assert(strstr(r.err, "no PVH entry note"), "%s", r.err);
}

Test(hv_boot, image_too_big_for_ram)
{
	struct run_result r;
	char path[128];
	/* p_memsz of the first program header: e_phoff is 64 in our images,
	 * p_memsz sits 40 bytes into an Elf64_Phdr. */
	uint64_t memsz = 1ull << 30;

	need_kvm();
	snprintf(path, sizeof(path), "%s/big.elf", tmpdir);
	copy_patched(guest("hello"), path, 64 + 40, &memsz, sizeof(memsz));
	run(&r, "--kernel", path, "--mem", "256M", NULL);
	cr_assert_eq(r.code, HV_EXIT_IMAGE);
	cr_assert(strstr(r.err, "does not fit"), "%s", r.err);
}

Test(hv_boot, bad_flags)
{
	struct run_result r;

	need_kvm();
	run(&r, NULL);
	cr_assert_eq(r.code, HV_EXIT_USAGE);
	cr_assert(strstr(r.err, "--kernel IMAGE is required"), "%s", r.err);
	run(&r, "--kernel", guest("hello"), "--mem", "1K", NULL);
	cr_assert_eq(r.code, HV_EXIT_USAGE);
	cr_assert(strstr(r.err, "--mem 1K"), "%s", r.err);
	run(&r, "--kernel", guest("hello"), "--cpus", "0", NULL);
	cr_assert_eq(r.code, HV_EXIT_USAGE);
}

Test(hv_boot, crashing_guest)
{
	struct run_result r;

	need_kvm();
	run(&r, "--kernel", guest("hello"), "--append", "crash", NULL);
	cr_assert_eq(r.code, HV_EXIT_CRASH);
	cr_assert(strstr(r.err, "guest crashed: triple fault"), "%s", r.err);
}

Test(hv_boot, interrupt_controller_on_request)
{
	struct run_result r;

	need_kvm();
	run(&r, "--kernel", guest("hello"), "--irqchip", "--append", "status=4", NULL);
	cr_assert_eq(r.code, 4, "stderr: %s", r.err);
	cr_assert(strstr(r.out, "hello from a gpup guest"), "%s", r.out);
}

Test(hv_boot, halt_without_interrupt_controller)
{
	struct run_result r;

	need_kvm();
	run(&r, "--kernel", guest("hello"), "--append", "halt", NULL);
	cr_assert_eq(r.code, HV_EXIT_CRASH);
	cr_assert(strstr(r.err, "halted with no interrupt controller"), "%s", r.err);
}

Test(hv_boot, two_vcpus_boot)
{
	struct run_result r;

	need_kvm();
	run(&r, "--kernel", guest("hello"), "--cpus", "2", "--append", "status=3",
	    NULL);
	cr_assert_eq(r.code, 3, "stderr: %s", r.err);
}

static int ctl_request(const char *path, const char *req, char *reply, size_t len)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd = socket(AF_UNIX, SOCK_STREAM, 0);
	ssize_t n;

	strcpy(sa.sun_path, path);
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		close(fd);
		return -errno;
	}
	cr_assert_eq(write(fd, req, strlen(req)), (ssize_t)strlen(req));
	n = read(fd, reply, len - 1);
	close(fd);
	reply[n > 0 ? n : 0] = 0;
	return 0;
}

static pid_t spawn_spinning(const char *ctl, int *o, int *e)
{
	char *argv[] = { "gpup", "run", "--kernel", (char *)guest("hello"),
			 "--append", "spin", "--ctl", (char *)ctl, NULL };
	pid_t pid = spawn(argv, o, e);
	struct stat st;

	for (int i = 0; i < 500 && stat(ctl, &st) != 0; i++)
		usleep(10000);
	cr_assert(S_ISSOCK(st.st_mode), "no control socket at %s", ctl);
	cr_assert_eq(st.st_mode & 0777, 0600);
	return pid;
}

Test(hv_boot, control_socket_status_and_stop)
{
	struct run_result r;
	char ctl[128], reply[1024];
	int o, e;
	pid_t pid;

	need_kvm();
	snprintf(ctl, sizeof(ctl), "%s/vm.sock", tmpdir);
	pid = spawn_spinning(ctl, &o, &e);
	cr_assert_eq(ctl_request(ctl, "{\"cmd\":\"status\"}\n", reply, sizeof(reply)), 0);
	cr_assert(strstr(reply, "\"ok\":true"), "%s", reply);
	cr_assert(strstr(reply, "\"state\":\"running\""), "%s", reply);
	cr_assert(strstr(reply, "\"mem_bytes\":134217728"), "%s", reply);
	cr_assert_eq(ctl_request(ctl, "{\"cmd\":\"fly\"}\n", reply, sizeof(reply)), 0);
	cr_assert(strstr(reply, "\"ok\":false"), "%s", reply);
	cr_assert_eq(ctl_request(ctl, "not json\n", reply, sizeof(reply)), 0);
	cr_assert(strstr(reply, "\"ok\":false"), "%s", reply);
	cr_assert_eq(ctl_request(ctl, "{\"cmd\":\"stop\"}\n", reply, sizeof(reply)), 0);
	finish(pid, o, e, &r);
	cr_assert_eq(r.code, HV_EXIT_STOPPED, "stderr: %s", r.err);
	cr_assert(strstr(r.err, "control socket"), "%s", r.err);
	cr_assert_neq(access(ctl, F_OK), 0, "socket removed at exit");
}

Test(hv_boot, sigterm_stops_the_vm)
{
	struct run_result r;
	char ctl[128];
	int o, e;
	pid_t pid;

	need_kvm();
	snprintf(ctl, sizeof(ctl), "%s/vm.sock", tmpdir);
	pid = spawn_spinning(ctl, &o, &e);
	cr_assert_eq(kill(pid, SIGTERM), 0);
	finish(pid, o, e, &r);
	cr_assert_eq(r.code, HV_EXIT_STOPPED);
	cr_assert(strstr(r.err, "signal 15"), "%s", r.err);
}
