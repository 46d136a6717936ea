// SPDX-License-Identifier: MIT
/*
 * Serving one partition: its IOMMU domain, its vGPU over the GPU's VRAM
 * slice, its vfio-user server, and its listening socket RUN_DIR/UUID.sock.
 * Started on create and on restore, stopped on destroy and on shutdown, in
 * the reverse order: the server first (its client's DMA unmapped), then
 * the device, then the address space.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "gpup/daemon/daemon_int.h"
#include "gpup/vgpu/vgpu.h"
#include "iommu/iommu.h"
#include "vfu/vfu.h"

static void part_free(struct dmn_part *dp)
{
	vfu_server_destroy(dp->vfu);
	if (dp->vgpu)
		vgpu_destroy(dp->vgpu);
	if (dp->dom)
		iommu_domain_destroy(dp->dom);
	free(dp);
}

static int part_devices(struct gpup_daemon *d, struct dmn_part *dp)
{
	struct gpup_partition *p = dp->part;
	struct gpup_gpu *gpu = d->pool.gpus[p->gpu].priv;
	struct iommu_domain_cfg dc = { .name = p->uuid,
				       .max_table_bytes = VGPU_IOMMU_TABLE_BYTES };

	dp->dom = iommu_domain_create(&dc);
	if (!dp->dom)
		return -ENOMEM;
	struct vgpu_cfg vc = { .gpu = gpu, .vram_offset = p->vram_offset, .vram_size = p->vram_size,
			       .iommu = dp->dom, .name = p->uuid, .type = p->type,
			       .kernels = gpup_pool_part_kernels(&d->pool, p) };

	dp->vgpu = vgpu_create(&vc);
	if (!dp->vgpu)
		return errno ? -errno : -ENOMEM;
	/* Restored settings: every queue the guest enables gets them. */
	if (p->sched_set && vgpu_set_sched(dp->vgpu, &p->sched))
		gpup_daemon_log("partition %s: its saved scheduler settings were refused",
				p->uuid);
	dp->vfu = vgpu_serve(dp->vgpu, gpup_daemon_log, dmn_jail_hook(d, GPUP_JAIL_SERVING));
	return dp->vfu ? 0 : -errno;
}

int dmn_part_start(struct gpup_daemon *d, struct gpup_partition *p)
{
	struct dmn_part *dp = calloc(1, sizeof(*dp));
	struct epoll_event ev = { .events = EPOLLIN };
	int rc;

	if (!dp)
		return -ENOMEM;
	dp->part = p;
	dp->listen_fd = -1;
	dp->src = (struct dmn_src){ DMN_SRC_PART, dp };
	if (snprintf(dp->path, sizeof(dp->path), "%s/%s.sock", d->cfg.run_dir, p->uuid) >=
	    (int)sizeof(dp->path)) {
		free(dp);
		return -ENAMETOOLONG;
	}
	rc = part_devices(d, dp);
	if (!rc)
		rc = dmn_listen(dp->path, &dp->listen_fd);
	ev.data.ptr = &dp->src;
	if (!rc && epoll_ctl(d->epfd, EPOLL_CTL_ADD, dp->listen_fd, &ev))
		rc = -errno;
	if (rc) {
		if (dp->listen_fd >= 0) {
			close(dp->listen_fd);
			unlink(dp->path);
		}
		part_free(dp);
		return rc;
	}
	p->priv = dp;
	dmn_protect_resume_saved(d, dp);
	return 0;
}

void dmn_part_stop(struct gpup_daemon *d, struct gpup_partition *p)
{
	struct dmn_part *dp = p->priv;

	if (!dp)
		return;
	dmn_protect_stop(dp);
	epoll_ctl(d->epfd, EPOLL_CTL_DEL, dp->listen_fd, NULL);
	close(dp->listen_fd);
	unlink(dp->path);
	part_free(dp);
	p->priv = NULL;
}

void dmn_part_accept(struct gpup_daemon *d, struct dmn_part *dp)
{
	int fd = accept4(dp->listen_fd, NULL, NULL, SOCK_CLOEXEC);
	int rc;

	(void)d;
	if (fd < 0)
		return;
	if (!dmn_peer_allowed(fd)) {
		gpup_daemon_log("partition %s: refused a client of another user", dp->part->uuid);
		close(fd);
		return;
	}
	rc = vfu_server_attach(dp->vfu, fd);
	if (rc == -EBUSY)
		gpup_daemon_log("partition %s: refused a second client", dp->part->uuid);
	else if (rc)
		gpup_daemon_log("partition %s: cannot serve a client: %s", dp->part->uuid,
				strerror(-rc));
}
