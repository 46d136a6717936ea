// SPDX-License-Identifier: MIT
/*
 * A partition's scheduler settings (`gpup sched --partition`): kept in the
 * vgpu, because its queues come and go (a guest enables them, a reset
 * drops them) and every queue enabled later must get them too, and pushed
 * to the time-slice scheduler of each engine a queue is attached to.  An
 * engine given a fresh scheduler (gpup_engine_set_sched) starts from the
 * queues' weights; vgpu_sched_reapply pushes the settings again, as the
 * daemon does after a policy change.  Also tells a listing which
 * partition an engine context belongs to.
 */
#include <errno.h>

#include "gpup/gpu/gpu.h"
#include "gpup/vgpu/vgpu_int.h"

/* cfg_lock held, like queue enable and disable: q stays attached. */
void vgpu_sched_apply_queue(struct vgpu *v, struct gpup_engine *e, struct vgpu_queue *q)
{
	struct sched_ctx_cfg cfg;

	if (!v->sched_set)
		return;
	cfg = v->sched;
	if (!cfg.weight)
		cfg.weight = q->ectx.weight ? q->ectx.weight : 1;
	/* -EINVAL: another scheduler was swapped in; nothing to apply to */
	(void)gpup_tsched_set_ctx(e, &q->ectx, &cfg);
}

static void apply_all(struct vgpu *v)
{
	for (unsigned int i = 0; i < GPUP_MAX_QUEUES; i++) {
		struct vgpu_queue *q = &v->q[i];

		if (!q->attached)
			continue;
		/* ectx.engine: the engine the queue is attached to */
		vgpu_sched_apply_queue(v, q->ectx.engine, q);
	}
}

int vgpu_set_sched(struct vgpu *v, const struct sched_ctx_cfg *cfg)
{
	if (sched_ctx_cfg_check(cfg))
		return -EINVAL;
	pthread_mutex_lock(&v->cfg_lock);
	v->sched = *cfg;
	v->sched.priv = NULL;
	v->sched_set = true;
	apply_all(v);
	pthread_mutex_unlock(&v->cfg_lock);
	return 0;
}

void vgpu_sched_reapply(struct vgpu *v)
{
	pthread_mutex_lock(&v->cfg_lock);
	apply_all(v);
	pthread_mutex_unlock(&v->cfg_lock);
}

int vgpu_ectx_owner(const struct gpup_ectx *c, const char **name, unsigned int *queue)
{
	const struct vgpu_queue *q;

	if (!c || c->ops != &vgpu_queue_ops)
		return -ENOENT;
	q = c->opaque;
	*name = q->v->name;
	*queue = q->idx;
	return 0;
}
