// SPDX-License-Identifier: GPL-2.0
/*
 * The doorbell: VBK_IOC_DOORBELL drains what the guest published on a QP's queues (or an
 * SRQ's ring) into the real queues, in the caller's own system call. Softirqs are off
 * while posting and come back on before the call returns: rxe's requester tasklet, which
 * the post schedules, runs inside local_bh_enable(), in this process, as native rxe's
 * doorbell runs it inside the poster's write(). No thread hop. A foreign attachment's
 * VBK_DOORBELL_ALL (vbusd, for a VM that rings one doorbell per context) drains every QP
 * and SRQ the same way, one after the other.
 *
 * Each slot is copied out of guest memory once and decoded (vbk_wqe.c); every AH must be
 * one of this guest's AHs and inline data is posted from the module's own copy. A WQE that
 * breaks the ABI's rules breaks its queue: the QP goes to the error state (its posted work
 * flushes) and the guest gets IBV_EVENT_QP_FATAL.
 *
 * What a native user QP takes and then fails, the guest's QP takes and fails the same
 * way, in order, through the device itself:
 *  - An lkey that is not one of this guest's MRs (g->mrs) is posted as the poison key:
 *    the PD's DMA MR's lkey with its key byte (IB's consumer key portion) changed. It names
 *    that MR's index with the wrong key, so the device refuses the SGE when it uses it, as
 *    it refuses an unknown lkey natively (IBV_WC_LOC_QP_OP_ERR, then the QP flushes). The
 *    DMA MR's own key, which rxe would take as a kernel address, is never posted.
 *  - An atomic at a misaligned address, or into fewer than 8 bytes, which rxe's kernel post
 *    refuses outright, is posted as a one-byte WRITE from the poison key: it fails locally
 *    before anything is sent, and its completion (VBK_WRID_REFUSED) carries the status the
 *    responder's NAK gives natively, IBV_WC_REM_INV_REQ_ERR (vbk_poll.c). What this cannot
 *    do is move the responder's QP to ERR as the NAK does natively (docs/kernel.md).
 */
#include "vbk.h"
#include "vbk_wqe.h"

/* The key a foreign lkey is posted as (above): never valid, never the DMA MR's. */
static u32 poison_lkey(const struct ib_pd *pd)
{
	return pd->local_dma_lkey ^ 0x80;
}

/* The n SGEs of a decoded WQE into sge[], each lkey the guest's own or the poison key. */
static void sges_in(struct vbk_guest *g, const struct ib_pd *pd, struct ib_sge *sge,
		    const struct vrdma_sge *v, u32 n)
{
	u32 k;

	for (k = 0; k < n; k++) {
		vbk_sge_get(&v[k], &sge[k].addr, &sge[k].length, &sge[k].lkey);
		if (!xa_load(&g->mrs, sge[k].lkey))
			sge[k].lkey = poison_lkey(pd);
	}
}

static int post_send_one(struct vbk_guest *g, struct vbk_qp *qp, const struct vbk_swqe *w)
{
	union {
		struct ib_send_wr send;
		struct ib_rdma_wr rdma;
		struct ib_atomic_wr atomic;
		struct ib_ud_wr ud;
	} u;
	const struct ib_send_wr *bad;
	int err;

	memset(&u, 0, sizeof(u));
	if (w->flags & IB_SEND_INLINE) {
		memcpy(qp->inl, w->inl, w->inline_len);
		qp->ssge[0].addr = (uintptr_t)qp->inl;
		qp->ssge[0].length = w->inline_len;
		qp->ssge[0].lkey = 0;
		u.send.num_sge = w->inline_len ? 1 : 0;
	} else {
		sges_in(g, qp->qp->pd, qp->ssge, w->sge, w->num_sge);
		u.send.num_sge = w->num_sge;
	}
	u.send.sg_list = qp->ssge;
	u.send.wr_id = VBK_WRID(VBK_WRID_SEND, qp->handle, qp->sposted);
	u.send.opcode = w->opcode;
	u.send.send_flags = w->flags;
	u.send.ex.imm_data = w->imm;
	if (vbk_swqe_refused_atomic(w)) {
		qp->ssge[0] = (struct ib_sge){ .length = 1, .lkey = poison_lkey(qp->qp->pd) };
		u.send.num_sge = 1;
		u.send.wr_id = VBK_WRID(VBK_WRID_REFUSED, qp->handle, qp->sposted);
		u.send.opcode = IB_WR_RDMA_WRITE;
		u.send.send_flags = w->flags & (IB_SEND_SIGNALED | IB_SEND_FENCE);
		return ib_post_send(qp->qp, &u.send, &bad);
	}
	switch (w->opcode) {
	case IB_WR_ATOMIC_CMP_AND_SWP:
	case IB_WR_ATOMIC_FETCH_AND_ADD:
		u.atomic.remote_addr = w->remote_addr;
		u.atomic.compare_add = w->compare_add;
		u.atomic.swap = w->swap;
		u.atomic.rkey = w->rkey;
		break;
	case IB_WR_RDMA_WRITE:
	case IB_WR_RDMA_WRITE_WITH_IMM:
	case IB_WR_RDMA_READ:
		u.rdma.remote_addr = w->remote_addr;
		u.rdma.rkey = w->rkey;
		break;
	default:
		if (qp->qp_type == IB_QPT_UD) {
			struct vbk_ah *ah = vbk_obj_get(g, w->ud_ah, VBK_OBJ_AH, &err);

			if (!ah)
				return err;
			u.ud.ah = ah->ah;
			u.ud.remote_qpn = w->ud_qpn;
			u.ud.remote_qkey = w->ud_qkey;
		}
		break;
	}
	return ib_post_send(qp->qp, &u.send, &bad);
}

static const u8 *slot_at(const struct vbk_queue *q, u32 i)
{
	return q->slots + (size_t)(i & (q->entries - 1)) * q->stride;
}

static u32 drain_sq(struct vbk_guest *g, struct vbk_qp *qp)
{
	struct vbk_queue *q = &qp->sq;
	struct vbk_wq_limits lim = {
		.qp_type = qp->qp_type, .stride = q->stride,
		.max_sge = le32_to_cpu(qp->cap.max_send_sge),
		.max_inline = le32_to_cpu(qp->cap.max_inline_data),
	};
	u32 depth = le32_to_cpu(qp->cap.max_send_wr), n = 0;
	struct vbk_swqe w;
	s64 avail;

	spin_lock(&q->lock);
	avail = q->broken ? 0 : vbk_queue_pending(q);
	if (avail < 0)
		goto broken;
	while (avail > 0 && qp->sposted - READ_ONCE(qp->sretired) < depth) {
		memcpy(qp->sslot, slot_at(q, q->idx), q->stride);
		if (vbk_swqe_decode(qp->sslot, &lim, &w))
			goto broken;
		qp->swrid[qp->sposted & qp->smask] = w.wr_id;
		if (post_send_one(g, qp, &w))
			goto broken;
		qp->sposted++;
		q->idx++;
		avail--;
		n++;
	}
	goto out;
broken:
	vbk_queue_break(g, q);
	qp->need_err = true;
out:
	/* Release: our slot reads are done before the guest may reuse the slots. */
	smp_store_release(&q->ring->cons, cpu_to_le32(q->idx));
	spin_unlock(&q->lock);
	/* WQEs the CQ may still get (a move may have retired some already: below 0 a
	 * moment); the barrier pairs with vbk_cq_keep_push's (vbk_cq_watch reads push).
	 */
	atomic_add(n, &qp->scq->pending);
	smp_mb__after_atomic();
	return n;
}

/* A batch of receives is validated whole before any of it is posted: the next n slots
 * are each a receive WQE the ABI allows (vbk_rwqe_decode reads a slot's header once), or
 * none of them is posted and the queue breaks. Each slot is then copied once and decoded
 * again as it is posted; a guest that rewrites its own slots between the two breaks its
 * queue there, with what came before it posted (its own loss).
 */
static bool recv_batch_ok(const struct vbk_queue *q, u32 n, u32 max_sge)
{
	u64 wr_id;
	u32 i;

	for (i = 0; i < n; i++)
		if (vbk_rwqe_decode(slot_at(q, q->idx + i), q->stride, max_sge, &wr_id) < 0)
			return false;
	return true;
}

static u32 drain_rq(struct vbk_guest *g, struct vbk_qp *qp)
{
	struct vbk_queue *q = &qp->rq;
	u32 maxsge = le32_to_cpu(qp->cap.max_recv_sge), n = 0;
	u32 depth = le32_to_cpu(qp->cap.max_recv_wr), used, room;
	struct ib_recv_wr wr = {};
	const struct ib_recv_wr *bad;
	s64 avail;
	u64 wr_id;
	int ns;

	spin_lock(&q->lock);
	avail = q->broken ? 0 : vbk_queue_pending(q);
	if (avail < 0)
		goto broken;
	/* The batch: what is published and fits (room only grows while we post); a QP in
	 * ERR takes all (below).
	 */
	used = qp->rposted - READ_ONCE(qp->rdone);
	room = used < depth ? depth - used : 0;
	if (avail > room && !READ_ONCE(qp->in_err))
		avail = room;
	if (!recv_batch_ok(q, avail, maxsge))
		goto broken;
	while (avail > 0) {
		if (READ_ONCE(qp->in_err)) {
			/* A native rxe QP in ERR takes a receive into its queue and never
			 * completes it (its provider posts without the kernel); a kernel QP
			 * would flush it. The guest sees what a native program sees.
			 */
			q->idx++;
			avail--;
			continue;
		}
		if (qp->rposted - READ_ONCE(qp->rdone) >= depth)
			break;	/* in ERR when the batch was cut, out of it now */
		memcpy(qp->rslot, slot_at(q, q->idx), q->stride);
		ns = vbk_rwqe_decode(qp->rslot, q->stride, maxsge, &wr_id);
		if (ns < 0)
			goto broken;
		sges_in(g, qp->qp->pd, qp->rsge,
			(const struct vrdma_sge *)(qp->rslot + sizeof(struct vrdma_rwqe)), ns);
		qp->rwrid[qp->rposted & qp->rmask] = wr_id;
		wr.wr_id = VBK_WRID(VBK_WRID_RECV, qp->handle, qp->rposted);
		wr.sg_list = qp->rsge;
		wr.num_sge = ns;
		if (ib_post_recv(qp->qp, &wr, &bad))
			goto broken;
		qp->rposted++;
		q->idx++;
		avail--;
		n++;
	}
	goto out;
broken:
	vbk_queue_break(g, q);
	qp->need_err = true;
out:
	/* Release: our slot reads are done before the guest may reuse the slots. */
	smp_store_release(&q->ring->cons, cpu_to_le32(q->idx));
	spin_unlock(&q->lock);
	atomic_add(n, &qp->rcq->pending);
	smp_mb__after_atomic();
	return n;
}

static u32 drain_srq(struct vbk_guest *g, struct vbk_srq *srq)
{
	struct vbk_queue *q = &srq->q;
	struct ib_recv_wr wr = {};
	const struct ib_recv_wr *bad;
	u32 n = 0, slot, room;
	s64 avail;
	u64 wr_id;
	int ns;

	spin_lock(&q->lock);
	avail = q->broken ? 0 : vbk_queue_pending(q);
	if (avail < 0)
		goto broken;
	/* The batch: what is published and fits, in free slots and within max_wr (both
	 * change only under q->lock, which we hold: the loop needs no check of its own).
	 */
	room = q->entries - srq->nfree < srq->max_wr ? srq->max_wr - (q->entries - srq->nfree) : 0;
	if (room > srq->nfree)
		room = srq->nfree;
	if (avail > room)
		avail = room;
	if (!recv_batch_ok(q, avail, srq->max_sge))
		goto broken;
	while (avail > 0) {
		memcpy(srq->slot, slot_at(q, q->idx), q->stride);
		ns = vbk_rwqe_decode(srq->slot, q->stride, srq->max_sge, &wr_id);
		if (ns < 0)
			goto broken;
		sges_in(g, srq->srq->pd, srq->sge,
			(const struct vrdma_sge *)(srq->slot + sizeof(struct vrdma_rwqe)), ns);
		slot = srq->free[--srq->nfree];
		srq->wrid[slot] = wr_id;
		wr.wr_id = VBK_WRID(VBK_WRID_SRQ, srq->handle, slot);
		wr.sg_list = srq->sge;
		wr.num_sge = ns;
		if (ib_post_srq_recv(srq->srq, &wr, &bad)) {
			srq->free[srq->nfree++] = slot;
			goto broken;
		}
		q->idx++;
		avail--;
		n++;
	}
	goto out;
broken:
	vbk_queue_break(g, q);
	srq->need_event = true;
out:
	/* Release: our slot reads are done before the guest may reuse the slots. */
	smp_store_release(&q->ring->cons, cpu_to_le32(q->idx));
	spin_unlock(&q->lock);
	return n;
}

/* A QP whose queue broke goes to the error state, as a device does with a WQE it cannot
 * execute; this may sleep, so it runs after the posting section.
 */
static void qp_error(struct vbk_guest *g, struct vbk_qp *qp)
{
	struct ib_qp_attr a = { .qp_state = IB_QPS_ERR };

	qp->need_err = false;
	WRITE_ONCE(qp->in_err, true);
	if (ib_modify_qp(qp->qp, &a, IB_QP_STATE))
		atomic64_inc(&g->n_error);
	vbk_event(g, IB_EVENT_QP_FATAL, qp->handle, 0);
}

/* One QP's receive then send queue, or one SRQ's ring; then what a broken queue needs
 * (this may sleep). The caller holds tbl for reading. The WQEs posted.
 */
static u32 drain_obj(struct vbk_guest *g, struct vbk_obj *o)
{
	u32 n = 0;

	local_bh_disable();
	if (o->type == VBK_OBJ_QP) {
		struct vbk_qp *qp = o->p;

		if (!qp->srq_h)
			n += drain_rq(g, qp);	/* receives first: a send may answer them */
		n += drain_sq(g, qp);
	} else {
		n += drain_srq(g, o->p);
	}
	local_bh_enable();	/* rxe's requester runs here, in this process */
	if (o->type == VBK_OBJ_QP) {
		struct vbk_qp *qp = o->p;

		vbk_cq_watch(qp->scq);	/* pushed if it may overrun now */
		if (qp->rcq != qp->scq && !qp->srq_h)
			vbk_cq_watch(qp->rcq);
		if (qp->need_err)
			qp_error(g, qp);
	}
	if (o->type == VBK_OBJ_SRQ && ((struct vbk_srq *)o->p)->need_event) {
		struct vbk_srq *srq = o->p;

		srq->need_event = false;
		vbk_event(g, IB_EVENT_SRQ_ERR, srq->handle, 0);
	}
	return n;
}

/* VBK_DOORBELL_ALL on a foreign attachment: every QP and SRQ, in table order (the table
 * does not change under tbl read). The WQEs posted.
 */
static long drain_all(struct vbk_guest *g)
{
	long n = 0;
	u32 i;

	for (i = 1; i < g->nobjs; i++) {
		struct vbk_obj *o = &g->objs[i];

		if (o->type == VBK_OBJ_QP || o->type == VBK_OBJ_SRQ)
			n += drain_obj(g, o);
	}
	return n;
}

/*
 * A control call is about to destroy what published sends may name (an AH, an MR): on a
 * foreign attachment they are posted first. A VM's doorbell is asynchronous (an eventfd,
 * vbk_dbfd.c), and natively a WQE is on the device when the post returns, so a program may
 * destroy an AH right after posting a send that names it. A process guest's doorbell runs
 * in its post, before it returns: nothing to do. The caller holds ctl, not tbl.
 */
void vbk_drain_before_destroy(struct vbk_guest *g)
{
	long n;

	if (!g->foreign)
		return;
	down_read(&g->tbl);
	n = g->dead ? 0 : drain_all(g);
	up_read(&g->tbl);
	atomic64_add(n, &g->n_wqe);
}

long vbk_doorbell(struct vbk_guest *g, u32 h)
{
	struct vbk_obj *o;
	long n = 0;

	down_read(&g->tbl);
	if (g->dead) {
		n = -EIO;
		goto out;
	}
	if (h == VBK_DOORBELL_ALL && g->foreign) {
		atomic64_inc(&g->n_doorbell);
		n = drain_all(g);
		atomic64_add(n, &g->n_wqe);
		goto out;
	}
	o = vbk_obj_slot(g, h);	/* handle 0 (VBK_DOORBELL_ALL) is none: -EINVAL */
	if (!o || (o->type != VBK_OBJ_QP && o->type != VBK_OBJ_SRQ)) {
		n = -EINVAL;
		goto out;
	}
	atomic64_inc(&g->n_doorbell);
	n = drain_obj(g, o);
	atomic64_add(n, &g->n_wqe);
out:
	up_read(&g->tbl);
	return n;
}
