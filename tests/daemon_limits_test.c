// SPDX-License-Identifier: MIT
/*
 * What one client can make the daemon hold, seen from outside.  The
 * control socket against a local client that hogs it: many connections
 * holding half a request, and requests whose replies are never read;
 * honest `gpup` commands are served all the while.  And a partition's
 * client memory mapped for DMA and IO page tables, shown by `gpup stats`
 * beside their limits.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <json-c/json.h>
#include <unistd.h>

#include "gpup/drv/drv.h"
#include "tests/daemonlib.h"
#include "tests/testlib.h"

#define HOGS 64

static struct dl_daemon dmn;

static void setup(void)
{
	static const char *const args[] = { "--sim-gpus", "1", "--vram", "256M", NULL };
	struct dl_opts o = { .name = "gpup-ctl-dos", .args = args };

	cr_assert_eq(dl_start(&dmn, &o), 0, "daemon did not start");
}

static void teardown(void)
{
	dl_teardown(&dmn);
}

TestSuite(limits, .init = setup, .fini = teardown, .timeout = 60);

/* The backlog may be full for a moment while the daemon accepts (the
 * kernel then refuses): try again. */
static int ctl_connect(void)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };

	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s/gpup.sock", dmn.run_dir);
	for (int i = 0; i < 10000; i++) {
		int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

		cr_assert_geq(fd, 0);
		if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0)
			return fd;
		cr_assert(errno == EAGAIN || errno == ECONNREFUSED, "connect: %s",
			  strerror(errno));
		close(fd);
		usleep(1000);
	}
	cr_assert_fail("the daemon stopped accepting (pid %d)", (int)dmn.pid);
	return -1;
}

/* Twice the connection cap of half-requests, kept open: every honest
 * command still gets its answer (it used to fail with "Broken pipe"). */
Test(limits, half_requests_do_not_lock_out_honest_clients)
{
	int hog[HOGS];
	char out[4096];

	for (int i = 0; i < HOGS; i++) {
		hog[i] = ctl_connect();
		cr_assert_eq(write(hog[i], "{\"method\":", 10), 10);
	}
	for (int i = 0; i < 20; i++) {
		cr_assert_eq(tl_gpup(dmn.dir, out, sizeof(out), "list"), 0, "try %d: %s", i, out);
		/* The hog keeps its slots full between honest calls. */
		close(hog[i]);
		hog[i] = ctl_connect();
		cr_assert_eq(write(hog[i], "{", 1), 1);
	}
	for (int i = 0; i < HOGS; i++)
		close(hog[i]);
}

/* Requests whose replies are never read, on a socket that takes little:
 * the loop goes on serving others. */
Test(limits, unread_replies_do_not_stall_the_loop)
{
	static const char req[] = "{\"method\":\"gpus\"}\n";
	int hog[16], small = 1;
	char out[4096];

	for (int i = 0; i < 16; i++) {
		hog[i] = ctl_connect();
		setsockopt(hog[i], SOL_SOCKET, SO_RCVBUF, &small, sizeof(small));
		cr_assert_eq(write(hog[i], req, sizeof(req) - 1), (ssize_t)(sizeof(req) - 1));
	}
	for (int i = 0; i < 5; i++)
		cr_assert_eq(tl_gpup(dmn.dir, out, sizeof(out), "gpus"), 0, "%s", out);
	for (int i = 0; i < 16; i++)
		close(hog[i]);
}

/* The "partitions" entry of `gpup stats --json` for uuid (a new
 * reference), or NULL. */
static json_object *part_stats(const char *uuid)
{
	char out[16384];
	json_object *st, *parts = NULL, *p = NULL;

	cr_assert_eq(tl_gpup(dmn.dir, out, sizeof(out), "stats --json"), 0, "%s", out);
	st = json_tokener_parse(out);
	cr_assert_not_null(st, "%s", out);
	cr_assert(json_object_object_get_ex(st, "partitions", &parts), "%s", out);
	for (size_t i = 0; i < json_object_array_length(parts); i++)
		if (!strcmp(json_object_get_string(json_object_object_get(
				    json_object_array_get_idx(parts, i), "uuid")), uuid))
			p = json_object_get(json_object_array_get_idx(parts, i));
	json_object_put(st);
	return p;
}

static int64_t field(json_object *p, const char *key)
{
	json_object *v;

	cr_assert(json_object_object_get_ex(p, key, &v), "no %s", key);
	return json_object_get_int64(v);
}

/* A client's DMA shows in `gpup stats` as its partition's mapped memory
 * and page tables, beside the limits, and goes when the client does. */
Test(limits, stats_show_what_a_client_maps)
{
	char out[16384], uuid[64], sock[192];
	struct vfu_client *c;
	struct gpup_vg g;
	json_object *p;
	int err = 0;

	cr_assert_eq(tl_gpup(dmn.dir, out, sizeof(out), "create --type sim-64m-4"), 0, "%s", out);
	cr_assert_eq(sscanf(out, "%63s", uuid), 1);
	snprintf(sock, sizeof(sock), "%s/%s.sock", dmn.run_dir, uuid);
	c = vfu_client_connect(sock, &err);
	cr_assert_not_null(c, "%s", strerror(-err));
	cr_assert_eq(gpup_vg_open(&g, c, 8 << 20), 0);
	p = part_stats(uuid);
	cr_assert_not_null(p);
	cr_assert_eq(field(p, "dma_bytes"), 8 << 20);
	cr_assert_eq(field(p, "dma_limit"), 256ll << 30);
	cr_assert_gt(field(p, "iopt_bytes"), 0);
	cr_assert_eq(field(p, "iopt_limit"), 32ll << 20);
	json_object_put(p);
	cr_assert_eq(tl_gpup(dmn.dir, out, sizeof(out), "stats"), 0, "%s", out);
	cr_assert_not_null(strstr(out, "DMA MAPPED / LIMIT"), "%s", out);
	cr_assert_not_null(strstr(out, "8 MiB / 256 GiB"), "%s", out);
	gpup_vg_close(&g);
	vfu_client_close(c);
	for (int i = 0; i < 200; i++) {
		p = part_stats(uuid);
		err = (int)field(p, "dma_bytes");
		json_object_put(p);
		if (!err)
			break;
		usleep(10000);
	}
	cr_assert_eq(err, 0, "the client's DMA outlived it");
}
