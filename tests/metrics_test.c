// SPDX-License-Identifier: MIT
/*
 * `gpup daemon --metrics`: a scrape while a client drives a partition
 * passes the format check (scripts/check-metrics.py: prometheus_client's
 * parser and the naming rules) and carries that partition's engine time,
 * dispatch waits and attachment; other paths get 404, other methods 405;
 * a scraper that says nothing does not hold up the next one; a bad
 * address is a one-line start failure.
 */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "gpup/drv/drv.h"
#include "tests/daemonlib.h"
#include "tests/testlib.h"
#include "vfu/vfu.h"

static struct dl_daemon dmn;

static void cleanup(void)
{
	dl_teardown(&dmn);
}

TestSuite(metrics, .fini = cleanup, .timeout = 60);

/* The port the daemon logged ("metrics: http://127.0.0.1:PORT/metrics"). */
static int port_of(void)
{
	char log[16384], *p = NULL;

	for (int i = 0; i < 200 && !p; i++) {
		tl_slurp(dmn.log, log, sizeof(log));
		p = strstr(log, "metrics: http://127.0.0.1:");
		if (!p)
			usleep(10000);
	}
	cr_assert_not_null(p, "no metrics line in %s", log);
	return atoi(p + strlen("metrics: http://127.0.0.1:"));
}

static int dial(int port)
{
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	cr_assert_geq(fd, 0);
	cr_assert_eq(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	return fd;
}

/* One request; the whole response (headers and body) into buf. */
static void http(int port, const char *request, char *buf, size_t len)
{
	int fd = dial(port);
	size_t n = 0;
	ssize_t r;

	cr_assert_eq(send(fd, request, strlen(request), 0), (ssize_t)strlen(request));
	while (n < len - 1 && (r = recv(fd, buf + n, len - 1 - n, 0)) > 0)
		n += (size_t)r;
	buf[n] = '\0';
	close(fd);
}

/* The body through scripts/check-metrics.py. */
static void check_format(const char *body)
{
	char path[160], cmd[320];
	FILE *f;

	snprintf(path, sizeof(path), "%s/scrape.txt", dmn.dir);
	f = fopen(path, "w");
	cr_assert_not_null(f);
	fputs(body, f);
	fclose(f);
	snprintf(cmd, sizeof(cmd), "/usr/bin/python3 scripts/check-metrics.py < %s", path);
	cr_assert_eq(system(cmd), 0, "the scrape fails the format check: %s", path);
}

Test(metrics, scrape_while_a_partition_runs)
{
	static const char *const args[] = { "--sim-gpus", "1", "--vram", "256M", "--metrics",
					    "127.0.0.1:0", "--config", "", NULL };
	struct dl_opts o = { .name = "gpup-metrics", .args = args, .log = true };
	char out[4096], uuid[40], sock[160], want[256];
	static char buf[1 << 20];
	union gpup_cmd cmd;
	struct vfu_client *c;
	struct gpup_vg g;
	int rc = 0, port, idle;

	cr_assert_eq(dl_start(&dmn, &o), 0, "the daemon did not start; see %s", dmn.log);
	port = port_of();
	cr_assert_eq(tl_gpup(dmn.dir, out, sizeof(out), "create --type sim-64m-4"), 0, "%s", out);
	cr_assert_eq(sscanf(out, "%39s", uuid), 1);
	snprintf(sock, sizeof(sock), "%.96s/%.39s.sock", dmn.run_dir, uuid);
	c = vfu_client_connect(sock, &rc);
	cr_assert_not_null(c, "connect: %d", rc);
	cr_assert_eq(gpup_vg_open(&g, c, GPUP_VG_DATA_OFF + 4096), 0);
	cr_assert_eq(gpup_vg_queue_setup(&g, 0, GPUP_ENGINE_COMPUTE), 0);
	cmd = gpup_cmd_kernel(GPUP_KERNEL_SPIN, (uint64_t[6]){ 2000000 }, 6);
	cr_assert_eq(gpup_vg_submit(&g, 0, &cmd, 1), 0);
	cr_assert_eq(gpup_vg_fence_wait(&g, 0, 10000, NULL), 0);

	idle = dial(port);   /* says nothing: must not hold up the scrape */
	http(port, "GET /metrics HTTP/1.1\r\nHost: localhost\r\n\r\n", buf, sizeof(buf));
	cr_assert_eq(strncmp(buf, "HTTP/1.1 200 OK\r\n", 17), 0, "%s", buf);
	cr_assert_not_null(strstr(buf, "Content-Type: text/plain; version=0.0.4"), "%s", buf);
	check_format(strstr(buf, "\r\n\r\n") + 4);
	snprintf(want, sizeof(want), "gpup_partition_client_connected{partition=\"%s\",gpu=\"gpu0\"} "
		 "1\n", uuid);
	cr_assert_not_null(strstr(buf, want), "%s", buf);
	snprintf(want, sizeof(want), "gpup_partition_engine_seconds_total{partition=\"%s\",queue=\"0\","
		 "gpu=\"gpu0\",engine=\"compute0\"} 0.00", uuid);
	cr_assert_not_null(strstr(buf, want), "about 2 ms of engine time: %s", buf);
	snprintf(want, sizeof(want), "gpup_partition_dispatch_wait_seconds_count{partition=\"%s\"",
		 uuid);
	cr_assert_not_null(strstr(buf, want), "%s", buf);
	cr_assert_not_null(strstr(buf, "gpup_engine_busy_seconds_total{gpu=\"gpu0\",engine="
				  "\"compute0\"} 0.00"), "%s", buf);
	cr_assert_not_null(strstr(buf, "gpup_partition_commands_total{partition="), "%s", buf);

	http(port, "GET / HTTP/1.0\r\n\r\n", buf, sizeof(buf));
	cr_assert_eq(strncmp(buf, "HTTP/1.1 404 ", 13), 0, "%s", buf);
	http(port, "POST /metrics HTTP/1.0\r\n\r\n", buf, sizeof(buf));
	cr_assert_eq(strncmp(buf, "HTTP/1.1 405 ", 13), 0, "%s", buf);
	http(port, "HEAD /metrics HTTP/1.0\r\n\r\n", buf, sizeof(buf));
	cr_assert_eq(strncmp(buf, "HTTP/1.1 200 OK\r\n", 17), 0, "%s", buf);
	cr_assert_str_eq(strstr(buf, "\r\n\r\n"), "\r\n\r\n", "HEAD: no body");
	close(idle);
	gpup_vg_close(&g);
	vfu_client_close(c);
}

Test(metrics, a_bad_address_fails_the_start)
{
	char out[4096], args[256];

	snprintf(dmn.dir, sizeof(dmn.dir), "/tmp/gpup-metrics-XXXXXX");
	cr_assert_not_null(mkdtemp(dmn.dir));
	snprintf(args, sizeof(args), "daemon --state-dir %s/state --config '' --metrics "
		 "localhost:http", dmn.dir);
	cr_assert_eq(tl_gpup(dmn.dir, out, sizeof(out), args), 1, "%s", out);
	cr_assert_not_null(strstr(out, "--metrics localhost:http: not [ADDR:]PORT"), "%s", out);
}
