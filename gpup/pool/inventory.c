// SPDX-License-Identifier: MIT
/*
 * Inventory of the host's real GPUs: display-class PCI functions from
 * libpciaccess (identity, memory BARs), SR-IOV TotalVFs and the bound
 * driver from sysfs, and DRM nodes from libdrm.  Reported by `gpup gpus`
 * next to the pool; the daemon does not serve them yet (a VFIO backend
 * will).  A machine without PCI, sysfs or DRM (a container) simply has
 * nothing to report.
 */
#include <errno.h>
#include <json-c/json.h>
#include <limits.h>
#include <pciaccess.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <xf86drm.h>

#include "gpup/pool/pool.h"
#include "uapi/gpup_ctl.h"

#define PCI_CLASS_DISPLAY 0x030000u
#define MAX_DRM_DEVICES 32

static void pci_slot(const struct pci_device *p, char *buf, size_t len)
{
	snprintf(buf, len, "%04x:%02x:%02x.%u", p->domain, p->bus, p->dev, p->func);
}

static long sysfs_long(const char *slot, const char *attr)
{
	char path[PATH_MAX];
	long v = -1;
	FILE *f;

	snprintf(path, sizeof(path), "/sys/bus/pci/devices/%s/%s", slot, attr);
	f = fopen(path, "r");
	if (!f)
		return -1;
	if (fscanf(f, "%ld", &v) != 1)
		v = -1;
	fclose(f);
	return v;
}

static void sysfs_driver(const char *slot, char *buf, size_t len)
{
	char path[PATH_MAX], target[PATH_MAX];
	ssize_t n;

	snprintf(path, sizeof(path), "/sys/bus/pci/devices/%s/driver", slot);
	n = readlink(path, target, sizeof(target) - 1);
	if (n < 0) {
		snprintf(buf, len, "none");
		return;
	}
	target[n] = '\0';
	const char *base = strrchr(target, '/') ? strrchr(target, '/') + 1 : target;
	size_t k = strnlen(base, len - 1);

	memcpy(buf, base, k);
	buf[k] = '\0';
}

static json_object *bars_json(struct pci_device *p)
{
	json_object *a = json_object_new_array();

	for (int i = 0; i < 6; i++) {
		if (!p->regions[i].size)
			continue;
		json_object *b = json_object_new_object();

		json_object_object_add(b, "index", json_object_new_int(i));
		json_object_object_add(b, "size", json_object_new_int64((int64_t)p->regions[i].size));
		json_object_object_add(b, "prefetchable",
				       json_object_new_boolean(p->regions[i].is_prefetchable));
		json_object_array_add(a, b);
	}
	return a;
}

/* DRM nodes of the device at slot, from libdrm: "/dev/dri/card0", ... */
static json_object *drm_nodes(drmDevicePtr *devs, int ndevs, const struct pci_device *p)
{
	json_object *a = json_object_new_array();

	for (int i = 0; i < ndevs; i++) {
		drmPciBusInfoPtr b;

		if (devs[i]->bustype != DRM_BUS_PCI)
			continue;
		b = devs[i]->businfo.pci;
		if (b->domain != p->domain || b->bus != p->bus || b->dev != p->dev ||
		    b->func != p->func)
			continue;
		for (int n = 0; n < DRM_NODE_MAX; n++)
			if (devs[i]->available_nodes & (1 << n))
				json_object_array_add(a, json_object_new_string(devs[i]->nodes[n]));
	}
	return a;
}

static json_object *device_json(struct pci_device *p, drmDevicePtr *devs, int ndevs)
{
	json_object *o = json_object_new_object();
	const char *name = pci_device_get_device_name(p);
	char slot[32], drv[64];
	char id[16];

	pci_slot(p, slot, sizeof(slot));
	sysfs_driver(slot, drv, sizeof(drv));
	snprintf(id, sizeof(id), "%04x:%04x", p->vendor_id, p->device_id);
	pci_device_probe(p);
	json_object_object_add(o, GPUP_CTL_F_PCI, json_object_new_string(slot));
	json_object_object_add(o, "id", json_object_new_string(id));
	json_object_object_add(o, GPUP_CTL_F_MODEL, json_object_new_string(name ? name : id));
	json_object_object_add(o, GPUP_CTL_F_DRIVER, json_object_new_string(drv));
	json_object_object_add(o, GPUP_CTL_F_SRIOV_TOTALVFS,
			       json_object_new_int64(sysfs_long(slot, "sriov_totalvfs")));
	json_object_object_add(o, "bars", bars_json(p));
	json_object_object_add(o, GPUP_CTL_F_DRM_NODES, drm_nodes(devs, ndevs, p));
	json_object_object_add(o, GPUP_CTL_F_MANAGED, json_object_new_boolean(0));
	return o;
}

json_object *gpup_inventory_json(void)
{
	static const struct pci_id_match match = {
		PCI_MATCH_ANY, PCI_MATCH_ANY, PCI_MATCH_ANY, PCI_MATCH_ANY,
		PCI_CLASS_DISPLAY, 0xff0000u, 0,
	};
	json_object *a = json_object_new_array();
	drmDevicePtr devs[MAX_DRM_DEVICES];
	struct pci_device_iterator *it;
	struct pci_device *p;
	int ndevs;

	if (pci_system_init())
		return a;
	ndevs = drmGetDevices2(0, devs, MAX_DRM_DEVICES);
	if (ndevs < 0)
		ndevs = 0;
	it = pci_id_match_iterator_create(&match);
	while (it && (p = pci_device_next(it)))
		json_object_array_add(a, device_json(p, devs, ndevs));
	pci_iterator_destroy(it);
	if (ndevs)
		drmFreeDevices(devs, ndevs);
	pci_system_cleanup();
	return a;
}
