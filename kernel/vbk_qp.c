// SPDX-License-Identifier: GPL-2.0
/*
 * Queue pairs: a kernel QP (RC, UC, UD) in the guest's PD, whose send and receive queues
 * the guest fills in its own memory and whose doorbell drains them (vbk_post.c). The QPN
 * is the real one. Modify is checked as uverbs checks a user's call, plus the bus's
 * policy (port 1 is the backing port; only the allowed source GID index).
 */
#include <linux/capability.h>
#include <linux/log2.h>
#include <linux/slab.h>
#include "vbk.h"

#define MASK_ALLOWED (IB_QP_STATE | IB_QP_CUR_STATE | IB_QP_EN_SQD_ASYNC_NOTIFY | \
		      IB_QP_ACCESS_FLAGS | IB_QP_PKEY_INDEX | IB_QP_PORT | IB_QP_QKEY | \
		      IB_QP_AV | IB_QP_PATH_MTU | IB_QP_TIMEOUT | IB_QP_RETRY_CNT | \
		      IB_QP_RNR_RETRY | IB_QP_RQ_PSN | IB_QP_MAX_QP_RD_ATOMIC | \
		      IB_QP_MIN_RNR_TIMER | IB_QP_SQ_PSN | IB_QP_MAX_DEST_RD_ATOMIC | \
		      IB_QP_DEST_QPN)
#define QP_ACCESS_ALLOWED (IB_ACCESS_LOCAL_WRITE | IB_ACCESS_REMOTE_WRITE | \
			   IB_ACCESS_REMOTE_READ | IB_ACCESS_REMOTE_ATOMIC)
#define QKEY_PRIVILEGED	0x80000000u

static void qp_event(struct ib_event *ev, void *ctx)
{
	struct vbk_qp *qp = ctx;

	switch (ev->event) {
	case IB_EVENT_QP_FATAL:
	case IB_EVENT_QP_REQ_ERR:
	case IB_EVENT_QP_ACCESS_ERR:
		WRITE_ONCE(qp->in_err, true);	/* the device moved it to ERR */
		break;
	default:
		break;
	}

	vbk_event(qp->g, ev->event, READ_ONCE(qp->handle), 0);
}

/* qp's receive completion was lost to an overrun of its CQ (vbk_poll.c): to ERR, as rxe's
 * responder moves a QP whose CQ overflowed. No event, as there. May sleep; tbl held.
 */
void vbk_qp_to_err(struct vbk_guest *g, struct vbk_qp *qp)
{
	struct ib_qp_attr a = { .qp_state = IB_QPS_ERR };

	WRITE_ONCE(qp->in_err, true);
	if (ib_modify_qp(qp->qp, &a, IB_QP_STATE))
		atomic64_inc(&g->n_error);
}

/* What a QP owns besides its real QP and rings: wr_id tables and the doorbell's scratch. */
static void qp_free_mem(struct vbk_qp *qp)
{
	kvfree(qp->swrid);
	kvfree(qp->rwrid);
	kfree(qp->sslot);
	kfree(qp->rslot);
	kfree(qp->ssge);
	kfree(qp->rsge);
	kfree(qp->inl);
	kfree(qp);
}

void vbk_qp_free(struct vbk_guest *g, struct vbk_qp *qp)
{
	if (qp->scq) {	/* out of the table: no move retires its WQEs any more */
		vbk_cq_retire(qp->scq, qp->sretired, qp->sposted);
		if (!qp->srq_h)
			vbk_cq_retire(qp->rcq, qp->rdone, qp->rposted);
		vbk_cq_shrink(qp->scq, qp->sneed);
		vbk_cq_shrink(qp->rcq, qp->rneed);
	}
	if (qp->srq_h) {
		down_write(&g->tbl);
		list_del(&qp->srq_node);
		up_write(&g->tbl);
		vbk_obj_use(g, qp->srq_h, -1);
	}
	if (qp->qp)
		ib_destroy_qp(qp->qp);
	vbk_queue_unmap(g, &qp->sq);
	vbk_queue_unmap(g, &qp->rq);
	vbk_obj_use(g, qp->pd, -1);
	vbk_obj_use(g, qp->send_cq, -1);
	vbk_obj_use(g, qp->recv_cq, -1);
	qp_free_mem(qp);
}

/* The granted caps, no more than the rings hold; -EINVAL if that is less than asked. */
static int clamp_caps(struct ib_qp_cap *c, const struct vrdma_create_qp_in *i, bool srq)
{
	u32 sst = le32_to_cpu(i->sq_stride), rst = le32_to_cpu(i->rq_stride);
	u32 sroom = sst > sizeof(struct vrdma_swqe) ? sst - sizeof(struct vrdma_swqe) : 0;
	u32 rroom = rst > sizeof(struct vrdma_rwqe) ? rst - sizeof(struct vrdma_rwqe) : 0;

	c->max_send_wr = min(c->max_send_wr, le32_to_cpu(i->sq_entries));
	c->max_send_sge = min_t(u32, c->max_send_sge,
				min_t(u32, sroom / sizeof(struct vrdma_sge), VBK_MAX_SGE));
	c->max_inline_data = min_t(u32, c->max_inline_data, min_t(u32, VBK_MAX_INLINE, sroom));
	if (srq) {
		c->max_recv_wr = 0;
		c->max_recv_sge = 0;
	} else {
		c->max_recv_wr = min(c->max_recv_wr, le32_to_cpu(i->rq_entries));
		c->max_recv_sge = min_t(u32, c->max_recv_sge,
					min_t(u32, rroom / sizeof(struct vrdma_sge), VBK_MAX_SGE));
	}
	if (c->max_send_wr < le32_to_cpu(i->cap.max_send_wr) ||
	    c->max_recv_wr < le32_to_cpu(i->cap.max_recv_wr) ||
	    c->max_send_sge < le32_to_cpu(i->cap.max_send_sge) ||
	    c->max_recv_sge < le32_to_cpu(i->cap.max_recv_sge) ||
	    c->max_inline_data < le32_to_cpu(i->cap.max_inline_data))
		return -EINVAL;
	return 0;
}

static int qp_scratch(struct vbk_qp *qp)
{
	u32 swr = max_t(u32, le32_to_cpu(qp->cap.max_send_wr), 1);
	u32 rwr = max_t(u32, le32_to_cpu(qp->cap.max_recv_wr), 1);

	qp->smask = roundup_pow_of_two(swr) - 1;
	qp->rmask = roundup_pow_of_two(rwr) - 1;
	qp->swrid = kvcalloc(qp->smask + 1, sizeof(u64), GFP_KERNEL);
	qp->rwrid = kvcalloc(qp->rmask + 1, sizeof(u64), GFP_KERNEL);
	qp->sslot = kmalloc(qp->sq.stride, GFP_KERNEL);
	qp->ssge = kcalloc(VBK_MAX_SGE, sizeof(*qp->ssge), GFP_KERNEL);
	qp->inl = kmalloc(VBK_MAX_INLINE, GFP_KERNEL);
	if (!qp->srq_h) {
		qp->rslot = kmalloc(qp->rq.stride, GFP_KERNEL);
		qp->rsge = kcalloc(VBK_MAX_SGE, sizeof(*qp->rsge), GFP_KERNEL);
		if (!qp->rslot || !qp->rsge)
			return -ENOMEM;
	}
	return qp->swrid && qp->rwrid && qp->sslot && qp->ssge && qp->inl ? 0 : -ENOMEM;
}

/* Every post rings the doorbell: the module runs only in the guest's system calls. */
static void need_wakeup(struct vbk_queue *q)
{
	WRITE_ONCE(q->ring->flags, cpu_to_le32(VRDMA_RING_NEED_WAKEUP));
	/* Release: the flag is set before the guest sees the queue's handle. */
	smp_store_release(&q->ring->cons, 0);
}

int vbk_do_create_qp(struct vbk_guest *g, const void *in, u32 inlen, void *out)
{
	const struct vrdma_create_qp_in *i = in;
	struct vrdma_create_qp_out *o = out;
	struct ib_qp_init_attr ia = {};
	u32 pdh = le32_to_cpu(i->pd), sch = le32_to_cpu(i->send_cq);
	u32 rch = le32_to_cpu(i->recv_cq), srqh = le32_to_cpu(i->srq), shm = le32_to_cpu(i->shm);
	struct vbk_srq *srq = NULL;
	struct vbk_cq *scq, *rcq;
	struct vbk_pd *pd;
	struct vbk_qp *qp;
	u32 h;
	int err;

	if (i->reserved || i->cap.reserved || i->sq_sig_all > 1)
		return -EINVAL;
	if (i->qp_type != IB_QPT_RC && i->qp_type != IB_QPT_UC && i->qp_type != IB_QPT_UD)
		return -EOPNOTSUPP;
	if (!(g->qp_types & VRDMA_QPT_BIT(i->qp_type)))
		return vbk_refuse(g, "a QP type", i->qp_type);
	pd = vbk_obj_get(g, pdh, VBK_OBJ_PD, &err);
	scq = pd ? vbk_obj_get(g, sch, VBK_OBJ_CQ, &err) : NULL;
	rcq = scq ? vbk_obj_get(g, rch, VBK_OBJ_CQ, &err) : NULL;
	if (!rcq)
		return err;
	if (srqh) {
		srq = vbk_obj_get(g, srqh, VBK_OBJ_SRQ, &err);
		if (!srq)
			return err;
		if (i->rq_offset || i->rq_entries || i->rq_stride || i->cap.max_recv_wr ||
		    i->cap.max_recv_sge)
			return -EINVAL;
	}
	if (le32_to_cpu(i->cap.max_inline_data) > VBK_MAX_INLINE ||
	    le32_to_cpu(i->cap.max_send_wr) > VBK_MAX_QUEUE ||
	    le32_to_cpu(i->cap.max_recv_wr) > VBK_MAX_QUEUE)
		return -EINVAL;

	qp = kzalloc(sizeof(*qp), GFP_KERNEL);
	if (!qp)
		return -ENOMEM;
	qp->g = g;
	qp->qp_type = i->qp_type;
	err = vbk_queue_map(g, &qp->sq, shm, le64_to_cpu(i->sq_offset),
			    le32_to_cpu(i->sq_entries), le32_to_cpu(i->sq_stride),
			    sizeof(struct vrdma_swqe));
	if (err)
		goto err_free;
	if (!srq) {
		err = vbk_queue_map(g, &qp->rq, shm, le64_to_cpu(i->rq_offset),
				    le32_to_cpu(i->rq_entries), le32_to_cpu(i->rq_stride),
				    sizeof(struct vrdma_rwqe));
		if (err)
			goto err_unmap;
	}
	ia.event_handler = qp_event;
	ia.qp_context = qp;
	ia.send_cq = scq->cq;
	ia.recv_cq = rcq->cq;
	ia.srq = srq ? srq->srq : NULL;
	ia.qp_type = i->qp_type;
	ia.sq_sig_type = i->sq_sig_all ? IB_SIGNAL_ALL_WR : IB_SIGNAL_REQ_WR;
	ia.cap.max_send_wr = max_t(u32, le32_to_cpu(i->cap.max_send_wr), 1);
	ia.cap.max_recv_wr = srq ? 0 : max_t(u32, le32_to_cpu(i->cap.max_recv_wr), 1);
	ia.cap.max_send_sge = max_t(u32, le32_to_cpu(i->cap.max_send_sge), 1);
	ia.cap.max_recv_sge = srq ? 0 : max_t(u32, le32_to_cpu(i->cap.max_recv_sge), 1);
	ia.cap.max_inline_data = le32_to_cpu(i->cap.max_inline_data);
	qp->qp = ib_create_qp(pd->pd, &ia);
	if (IS_ERR(qp->qp)) {
		err = PTR_ERR(qp->qp);
		qp->qp = NULL;
		goto err_unmap;
	}
	err = clamp_caps(&ia.cap, i, srq);
	if (err)
		goto err_destroy;
	qp->cap.max_send_wr = cpu_to_le32(ia.cap.max_send_wr);
	qp->cap.max_recv_wr = cpu_to_le32(ia.cap.max_recv_wr);
	qp->cap.max_send_sge = cpu_to_le32(ia.cap.max_send_sge);
	qp->cap.max_recv_sge = cpu_to_le32(ia.cap.max_recv_sge);
	qp->cap.max_inline_data = cpu_to_le32(ia.cap.max_inline_data);
	qp->srq_h = srqh;
	err = qp_scratch(qp);
	if (err)
		goto err_destroy;
	/* Set before the QP is in the table: a VM's doorbell drains every QP it finds. */
	qp->scq = scq;
	qp->rcq = rcq;
	/* Their real CQs hold whatever this QP's queues can complete (vbk_cq.c), each
	 * queue's ring charged to the guest. Not an SRQ's receives: one SRQ may feed any
	 * number of CQs, which would multiply its depth.
	 */
	qp->sneed = ia.cap.max_send_wr;
	qp->rneed = srq ? 0 : ia.cap.max_recv_wr;
	err = vbk_obj_new(g, VBK_OBJ_QP, qp, &h);
	if (err)
		goto err_destroy;
	WRITE_ONCE(qp->handle, h);	/* at once: a VM's doorbell may drain the QP now */
	vbk_cq_grow(g, scq, qp->sneed);
	vbk_cq_grow(g, rcq, qp->rneed);
	qp->pd = pdh;
	qp->send_cq = sch;
	qp->recv_cq = rch;
	vbk_obj_use(g, pdh, 1);
	vbk_obj_use(g, sch, 1);
	vbk_obj_use(g, rch, 1);
	if (srq) {
		vbk_obj_use(g, srqh, 1);
		down_write(&g->tbl);
		list_add(&qp->srq_node, &srq->qps);
		up_write(&g->tbl);
	}
	need_wakeup(&qp->sq);
	if (!srq)
		need_wakeup(&qp->rq);
	o->handle = cpu_to_le32(h);
	o->qp_num = cpu_to_le32(qp->qp->qp_num);
	o->cap = qp->cap;
	return 0;

err_destroy:
	ib_destroy_qp(qp->qp);
	qp->qp = NULL;
err_unmap:
	vbk_queue_unmap(g, &qp->sq);
	vbk_queue_unmap(g, &qp->rq);
err_free:
	qp_free_mem(qp);
	return err;
}

static void qp_attr_in(struct ib_qp_attr *a, const struct vrdma_qp_attr *v)
{
	memset(a, 0, sizeof(*a));
	a->qp_state = le32_to_cpu(v->qp_state);
	a->cur_qp_state = le32_to_cpu(v->cur_qp_state);
	a->path_mtu = le32_to_cpu(v->path_mtu);
	a->path_mig_state = le32_to_cpu(v->path_mig_state);
	a->qkey = le32_to_cpu(v->qkey);
	a->rq_psn = le32_to_cpu(v->rq_psn);
	a->sq_psn = le32_to_cpu(v->sq_psn);
	a->dest_qp_num = le32_to_cpu(v->dest_qp_num);
	a->qp_access_flags = le32_to_cpu(v->qp_access_flags);
	a->pkey_index = le16_to_cpu(v->pkey_index);
	a->en_sqd_async_notify = v->en_sqd_async_notify;
	a->max_rd_atomic = v->max_rd_atomic;
	a->max_dest_rd_atomic = v->max_dest_rd_atomic;
	a->min_rnr_timer = v->min_rnr_timer;
	a->timeout = v->timeout;
	a->retry_cnt = v->retry_cnt;
	a->rnr_retry = v->rnr_retry;
}

int vbk_do_modify_qp(struct vbk_guest *g, const void *in, u32 inlen, void *out)
{
	const struct vrdma_modify_qp_in *i = in;
	const struct vrdma_qp_attr *v = &i->attr;
	u32 mask = le32_to_cpu(i->attr_mask);
	struct ib_udata udata = {};	/* a user's call: the core resolves the RoCE MAC */
	struct ib_qp_attr a;
	struct vbk_qp *qp;
	int err;

	qp = vbk_obj_get(g, le32_to_cpu(i->handle), VBK_OBJ_QP, &err);
	if (!qp)
		return err;
	if (mask & ~MASK_ALLOWED)
		return (mask & (IB_QP_ALT_PATH | IB_QP_PATH_MIG_STATE | IB_QP_CAP)) ?
			-EOPNOTSUPP : -EINVAL;
	if (v->reserved1 || v->cap.reserved)
		return -EINVAL;
	if ((mask & IB_QP_PORT) && v->port_num != 1)
		return -EINVAL;
	qp_attr_in(&a, v);
	a.port_num = g->port;
	if ((mask & IB_QP_ACCESS_FLAGS) && (a.qp_access_flags & ~QP_ACCESS_ALLOWED))
		return -EINVAL;
	if ((mask & IB_QP_ACCESS_FLAGS) && vbk_wl_lacks(g, a.qp_access_flags))
		return vbk_refuse(g, "QP access flags", vbk_wl_lacks(g, a.qp_access_flags));
	/* As uverbs: a privileged Q_Key only for CAP_NET_RAW; never on a foreign attachment,
	 * whose caller is vbusd acting for a VM (its capability is not the VM's).
	 */
	if ((mask & IB_QP_QKEY) && (a.qkey & QKEY_PRIVILEGED) &&
	    (g->foreign || !capable(CAP_NET_RAW)))
		return -EPERM;
	if (mask & IB_QP_AV) {
		err = vbk_ah_attr_in(g, &a.ah_attr, &v->ah_attr);
		if (err)
			return err;
	}
	err = ib_modify_qp_with_udata(qp->qp, &a, mask, &udata);
	if (!err && (mask & IB_QP_STATE))
		WRITE_ONCE(qp->in_err, a.qp_state == IB_QPS_ERR);
	/* RESET discards outstanding work without completions (the guest forgets it too).
	 * The doorbell reads these under the queues' locks.
	 */
	if (!err && (mask & IB_QP_STATE) && a.qp_state == IB_QPS_RESET) {
		spin_lock_bh(&qp->sq.lock);
		vbk_qp_retire(&qp->sretired, qp->sposted, qp->scq);	/* once: vbk_poll.c */
		if (qp->sq.ring)
			smp_store_release(&qp->sq.ring->retired, cpu_to_le32(qp->sretired));
		spin_unlock_bh(&qp->sq.lock);
		spin_lock_bh(&qp->rq.lock);
		vbk_qp_retire(&qp->rdone, qp->rposted, qp->srq_h ? NULL : qp->rcq);
		spin_unlock_bh(&qp->rq.lock);
	}
	return err;
}

static void qp_attr_out(struct vrdma_qp_attr *o, const struct ib_qp_attr *a)
{
	o->qp_state = cpu_to_le32(a->qp_state);
	o->cur_qp_state = cpu_to_le32(a->cur_qp_state);
	o->path_mtu = cpu_to_le32(a->path_mtu);
	o->path_mig_state = cpu_to_le32(a->path_mig_state);
	o->qkey = cpu_to_le32(a->qkey);
	o->rq_psn = cpu_to_le32(a->rq_psn);
	o->sq_psn = cpu_to_le32(a->sq_psn);
	o->dest_qp_num = cpu_to_le32(a->dest_qp_num);
	o->qp_access_flags = cpu_to_le32(a->qp_access_flags);
	o->pkey_index = cpu_to_le16(a->pkey_index);
	o->alt_pkey_index = cpu_to_le16(a->alt_pkey_index);
	vbk_ah_attr_out(&o->ah_attr, &a->ah_attr);
	vbk_ah_attr_out(&o->alt_ah_attr, &a->alt_ah_attr);
	o->en_sqd_async_notify = a->en_sqd_async_notify;
	o->sq_draining = a->sq_draining;
	o->max_rd_atomic = a->max_rd_atomic;
	o->max_dest_rd_atomic = a->max_dest_rd_atomic;
	o->min_rnr_timer = a->min_rnr_timer;
	o->port_num = 1;
	o->timeout = a->timeout;
	o->retry_cnt = a->retry_cnt;
	o->rnr_retry = a->rnr_retry;
	o->alt_port_num = a->alt_port_num ? 1 : 0;
	o->alt_timeout = a->alt_timeout;
}

int vbk_do_query_qp(struct vbk_guest *g, const void *in, u32 inlen, void *out)
{
	const struct vrdma_query_qp_in *i = in;
	struct vrdma_query_qp_out *o = out;
	struct ib_qp_init_attr init;
	struct ib_qp_attr a;
	struct vbk_qp *qp;
	int err;

	qp = vbk_obj_get(g, le32_to_cpu(i->handle), VBK_OBJ_QP, &err);
	if (!qp)
		return err;
	memset(&a, 0, sizeof(a));
	err = ib_query_qp(qp->qp, &a, le32_to_cpu(i->attr_mask), &init);
	if (err)
		return err;
	qp_attr_out(&o->attr, &a);
	o->attr.cap = qp->cap;
	o->init_caps.cap = qp->cap;
	return 0;
}

int vbk_do_destroy_qp(struct vbk_guest *g, const void *in, u32 inlen, void *out)
{
	const struct vrdma_handle *i = in;
	u32 h = le32_to_cpu(i->handle);
	struct vbk_qp *qp;
	int err;

	if (i->reserved)
		return -EINVAL;
	qp = vbk_obj_get(g, h, VBK_OBJ_QP, &err);
	if (!qp)
		return err;
	vbk_obj_free(g, h);
	vbk_qp_free(g, qp);
	return 0;
}
