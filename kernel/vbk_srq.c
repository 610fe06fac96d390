// SPDX-License-Identifier: GPL-2.0
/*
 * Shared receive queues: a kernel SRQ and a receive ring in the guest's memory. Each real
 * WQE carries the SRQ's handle and a slot of `wrid` that holds the guest's wr_id, so a
 * completion finds it whichever QP consumed the WQE. The count of completed WQEs is
 * published in the ring's `retired` (the guest's depth check).
 */
#include <linux/slab.h>
#include "vbk.h"

static void srq_event(struct ib_event *ev, void *ctx)
{
	struct vbk_srq *srq = ctx;

	vbk_event(srq->g, ev->event, READ_ONCE(srq->handle), 0);
}

void vbk_srq_free(struct vbk_guest *g, struct vbk_srq *srq)
{
	if (srq->srq)
		ib_destroy_srq(srq->srq);
	vbk_queue_unmap(g, &srq->q);
	vbk_obj_use(g, srq->pd, -1);
	kvfree(srq->wrid);
	kvfree(srq->free);
	kfree(srq->sge);
	kfree(srq->slot);
	kfree(srq);
}

static void attr_out(struct vrdma_srq_attr *o, u32 max_wr, u32 max_sge, u32 limit)
{
	o->max_wr = cpu_to_le32(max_wr);
	o->max_sge = cpu_to_le32(max_sge);
	o->srq_limit = cpu_to_le32(limit);
	o->reserved = 0;
}

int vbk_do_create_srq(struct vbk_guest *g, const void *in, u32 inlen, void *out)
{
	const struct vrdma_create_srq_in *i = in;
	struct vrdma_create_srq_out *o = out;
	u32 pdh = le32_to_cpu(i->pd), entries = le32_to_cpu(i->entries);
	u32 stride = le32_to_cpu(i->stride), room, k, h;
	struct ib_srq_init_attr ia = {};
	struct vbk_srq *srq;
	struct vbk_pd *pd;
	int err;

	pd = vbk_obj_get(g, pdh, VBK_OBJ_PD, &err);
	if (!pd)
		return err;
	if (i->attr.reserved)
		return -EINVAL;
	room = stride > sizeof(struct vrdma_rwqe) ?
		(stride - sizeof(struct vrdma_rwqe)) / sizeof(struct vrdma_sge) : 0;
	ia.event_handler = srq_event;
	ia.srq_type = IB_SRQT_BASIC;
	ia.attr.max_wr = le32_to_cpu(i->attr.max_wr);
	ia.attr.max_sge = le32_to_cpu(i->attr.max_sge);
	ia.attr.srq_limit = le32_to_cpu(i->attr.srq_limit);
	if (!ia.attr.max_wr || ia.attr.max_wr > entries || ia.attr.max_sge > room ||
	    ia.attr.max_sge > VBK_MAX_SGE || ia.attr.max_wr > VBK_MAX_QUEUE)
		return -EINVAL;
	srq = kzalloc(sizeof(*srq), GFP_KERNEL);
	if (!srq)
		return -ENOMEM;
	srq->g = g;
	INIT_LIST_HEAD(&srq->qps);
	ia.srq_context = srq;
	err = vbk_queue_map(g, &srq->q, le32_to_cpu(i->shm), le64_to_cpu(i->offset), entries,
			    stride, sizeof(struct vrdma_rwqe));
	if (err)
		goto err_free;
	srq->wrid = kvcalloc(entries, sizeof(u64), GFP_KERNEL);
	srq->free = kvcalloc(entries, sizeof(u32), GFP_KERNEL);
	srq->sge = kcalloc(VBK_MAX_SGE, sizeof(*srq->sge), GFP_KERNEL);
	srq->slot = kmalloc(stride, GFP_KERNEL);
	err = -ENOMEM;
	if (!srq->wrid || !srq->free || !srq->sge || !srq->slot)
		goto err_srq;
	for (k = 0; k < entries; k++)
		srq->free[k] = entries - 1 - k;
	srq->nfree = entries;
	srq->srq = ib_create_srq(pd->pd, &ia);
	if (IS_ERR(srq->srq)) {
		err = PTR_ERR(srq->srq);
		srq->srq = NULL;
		goto err_srq;
	}
	srq->max_wr = min(ia.attr.max_wr, entries);
	srq->max_sge = min(ia.attr.max_sge, room);
	srq->pd = pdh;
	err = vbk_obj_new(g, VBK_OBJ_SRQ, srq, &h);
	if (err)
		goto err_srq;
	WRITE_ONCE(srq->handle, h);
	vbk_obj_use(g, pdh, 1);
	WRITE_ONCE(srq->q.ring->flags, cpu_to_le32(VRDMA_RING_NEED_WAKEUP));
	/* Release: the ring's state is set before the guest sees the SRQ's handle. */
	smp_store_release(&srq->q.ring->retired, 0);
	/* Release: as above, for the consumer index. */
	smp_store_release(&srq->q.ring->cons, 0);
	o->handle = cpu_to_le32(h);
	attr_out(&o->attr, srq->max_wr, srq->max_sge, ia.attr.srq_limit);
	return 0;

err_srq:
	srq->pd = 0;	/* no use taken yet */
	vbk_srq_free(g, srq);
	return err;
err_free:
	kfree(srq);
	return err;
}

int vbk_do_modify_srq(struct vbk_guest *g, const void *in, u32 inlen, void *out)
{
	const struct vrdma_modify_srq_in *i = in;
	u32 mask = le32_to_cpu(i->attr_mask);
	struct ib_srq_attr a = {
		.max_wr = le32_to_cpu(i->attr.max_wr),
		.srq_limit = le32_to_cpu(i->attr.srq_limit),
	};
	struct vbk_srq *srq;
	int err;

	srq = vbk_obj_get(g, le32_to_cpu(i->handle), VBK_OBJ_SRQ, &err);
	if (!srq)
		return err;
	if (i->attr.reserved || (mask & ~(u32)(IB_SRQ_MAX_WR | IB_SRQ_LIMIT)))
		return -EINVAL;
	if ((mask & IB_SRQ_MAX_WR) && (!a.max_wr || a.max_wr > srq->q.entries))
		return -EINVAL;
	err = ib_modify_srq(srq->srq, &a, mask);
	if (err)
		return err;
	if (mask & IB_SRQ_MAX_WR) {
		spin_lock_bh(&srq->q.lock);
		srq->max_wr = a.max_wr;
		spin_unlock_bh(&srq->q.lock);
	}
	return 0;
}

int vbk_do_query_srq(struct vbk_guest *g, const void *in, u32 inlen, void *out)
{
	const struct vrdma_handle *i = in;
	struct ib_srq_attr a;
	struct vbk_srq *srq;
	int err;

	srq = vbk_obj_get(g, le32_to_cpu(i->handle), VBK_OBJ_SRQ, &err);
	if (!srq)
		return err;
	err = ib_query_srq(srq->srq, &a);
	if (err)
		return err;
	attr_out(out, srq->max_wr, srq->max_sge, a.srq_limit);
	return 0;
}

int vbk_do_destroy_srq(struct vbk_guest *g, const void *in, u32 inlen, void *out)
{
	const struct vrdma_handle *i = in;
	u32 h = le32_to_cpu(i->handle);
	struct vbk_srq *srq;
	int err;

	if (i->reserved)
		return -EINVAL;
	srq = vbk_obj_get(g, h, VBK_OBJ_SRQ, &err);
	if (!srq)
		return err;
	if (vbk_obj_slot(g, h)->users)
		return -EBUSY;	/* QPs use it, as a device says */
	vbk_obj_free(g, h);
	vbk_srq_free(g, srq);
	return 0;
}
