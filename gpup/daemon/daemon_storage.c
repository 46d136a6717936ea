// SPDX-License-Identifier: MIT
/*
 * `storage`: the places a partition's checkpoint store can go
 * (docs/MIGRATION.md, "Failover"): the daemon's state directory and its
 * default store, with the file system each is on and its free space, and
 * the host's NVMe namespaces as libnvme finds them in sysfs (a namespace
 * given its own file system is a store that shares no disk with the
 * rest).  A host without NVMe says so in "nvme_note".
 */
#include <errno.h>
#include <libnvme.h>
#include <stdio.h>
#include <string.h>
#include <sys/statfs.h>
#include <sys/statvfs.h>
#include <syslog.h>
#include <unistd.h>

#include "gpup/ctl/ctl.h"
#include "gpup/daemon/daemon_int.h"
#include "uapi/gpup_ctl.h"

static const struct {
	unsigned long magic;
	const char *name;
} fs_names[] = {
	{ 0xef53, "ext4" }, { 0x58465342, "xfs" }, { 0x9123683e, "btrfs" },
	{ 0x01021994, "tmpfs" }, { 0x794c7630, "overlay" }, { 0x6969, "nfs" },
	{ 0x65735546, "fuse" }, { 0x2fc12fc1, "zfs" }, { 0xf2f52010, "f2fs" },
	{ 0x4244, "hfs" }, { 0x5346544e, "ntfs" }, { 0x4d44, "vfat" },
};

static const char *fs_name(unsigned long magic)
{
	for (size_t i = 0; i < sizeof(fs_names) / sizeof(fs_names[0]); i++)
		if (fs_names[i].magic == magic)
			return fs_names[i].name;
	return "other";
}

static json_object *place_json(const char *what, const char *path)
{
	json_object *o = json_object_new_object();
	struct statvfs sv;
	struct statfs sf;
	char err[128];

	json_object_object_add(o, GPUP_CTL_F_NAME, json_object_new_string(what));
	json_object_object_add(o, GPUP_CTL_F_PATH, json_object_new_string(path));
	if (statvfs(path, &sv) || statfs(path, &sf)) {
		snprintf(err, sizeof(err), "%s", strerror(errno));
		json_object_object_add(o, GPUP_CTL_F_ERROR, json_object_new_string(err));
		return o;
	}
	json_object_object_add(o, GPUP_CTL_F_FSTYPE,
			       json_object_new_string(fs_name((unsigned long)sf.f_type)));
	json_object_object_add(o, GPUP_CTL_F_SIZE,
			       json_object_new_int64((int64_t)(sv.f_blocks * sv.f_frsize)));
	json_object_object_add(o, GPUP_CTL_F_FREE,
			       json_object_new_int64((int64_t)(sv.f_bavail * sv.f_frsize)));
	return o;
}

static void add_ns(json_object *a, nvme_ns_t n)
{
	json_object *o = json_object_new_object();
	const char *model = nvme_ns_get_model(n);

	json_object_object_add(o, GPUP_CTL_F_NAME, json_object_new_string(nvme_ns_get_name(n)));
	json_object_object_add(o, GPUP_CTL_F_MODEL, json_object_new_string(model ? model : ""));
	json_object_object_add(o, GPUP_CTL_F_SIZE,
			       json_object_new_int64((int64_t)(nvme_ns_get_lba_count(n) *
							       (uint64_t)nvme_ns_get_lba_size(n))));
	json_object_array_add(a, o);
}

/* Every namespace, through its subsystem or its controller, once. */
static json_object *nvme_json(char *note, size_t len)
{
	json_object *a = json_object_new_array();
	nvme_root_t r = nvme_create_root(NULL, LOG_ERR);
	nvme_host_t h;
	nvme_subsystem_t s;
	nvme_ctrl_t c;
	nvme_ns_t n;

	if (!r) {
		snprintf(note, len, "libnvme cannot look at this host: %s", strerror(errno));
		return a;
	}
	nvme_scan_topology(r, NULL, NULL);
	nvme_for_each_host(r, h)
		nvme_for_each_subsystem(h, s) {
			nvme_subsystem_for_each_ns(s, n)
				add_ns(a, n);
			nvme_subsystem_for_each_ctrl(s, c)
				nvme_ctrl_for_each_ns(c, n)
					add_ns(a, n);
		}
	nvme_free_tree(r);
	if (!json_object_array_length(a))
		snprintf(note, len, "no NVMe namespaces on this host");
	return a;
}

json_object *dmn_ctl_storage(struct gpup_daemon *d, json_object *req)
{
	json_object *r = gpup_ctl_ok(), *a = json_object_new_array();
	char store[4200], note[160] = "";

	(void)req;
	if (d->pool.state_dir) {
		json_object_array_add(a, place_json("state directory", d->pool.state_dir));
		snprintf(store, sizeof(store), "%s/protect", d->pool.state_dir);
		if (access(store, F_OK) == 0)
			json_object_array_add(a, place_json("default protection store", store));
	}
	json_object_object_add(r, GPUP_CTL_F_PLACES, a);
	json_object_object_add(r, GPUP_CTL_F_NVME, nvme_json(note, sizeof(note)));
	json_object_object_add(r, GPUP_CTL_F_NVME_NOTE,
			       note[0] ? json_object_new_string(note) : NULL);
	return r;
}
