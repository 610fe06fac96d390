// SPDX-License-Identifier: GPL-2.0
/*
 * VBK_IOC_POLL_CQ: a guest whose completion ring is empty polls the real CQ through its
 * descriptor, and what is there moves into the ring (busy polling, as NAPI does; the
 * completion handler is kept for CQs armed for events). Each real completion names, in
 * its wr_id, the guest's QP or SRQ by handle and the sequence or slot that holds the
 * guest's wr_id. A completion whose QP is gone (destroyed while it waited in the CQ) is
 * dropped: the QP's kernel pointer is compared, never followed, unless the handle still
 * names that QP. The move (vbk_cq_move) also runs in a foreign attachment's completion
 * worker (vbk_foreign.c), which nobody's poll has to ask for, and when a guest's post finds
 * its send queue full (the guest library asks: a completion that frees a slot may wait in
 * the real CQ).
 *
 * Overrun. The guest's CQ holds cq->cqe completions, what the real CQ holds natively:
 * those in its ring that it has not consumed, then what the move brings. A completion past
 * that is lost, as rxe loses one its CQ has no room for, but its WQE is retired all the
 * same (its slot free again, as natively), the CQ gets IBV_EVENT_CQ_ERR, and a receive's
 * QP goes to the error state, as rxe's responder moves it (RESPST_ERR_CQ_OVERFLOW).
 */
#include "vbk.h"

#define IDX_MASK	((1u << VRDMA_HANDLE_INDEX_BITS) - 1)
#define POLL_BATCH	16
#define ERR_MAX		POLL_BATCH	/* QPs sent to ERR by one move */

/* The live object of `type` whose handle's low 30 bits are h30 (as VBK_WRID kept them). */
static void *obj_by_h30(struct vbk_guest *g, u32 h30, enum vbk_obj_type type)
{
	u32 i = h30 & IDX_MASK;
	struct vbk_obj *o;

	if (!i || i >= g->nobjs)
		return NULL;
	o = &g->objs[i];
	if (o->type != type ||
	    vbk_h30((u32)o->gen << VRDMA_HANDLE_INDEX_BITS | i) != h30)
		return NULL;
	return o->p;
}

/* An SRQ receive: its slot is free again, one more WQE retired. Returns the guest's
 * wr_id, and the QP that consumed it through *qpp (NULL if it is gone).
 */
static bool srq_done(struct vbk_guest *g, const struct ib_wc *wc, struct vrdma_cqe *c,
		     struct vbk_qp **qpp)
{
	struct vbk_srq *srq = obj_by_h30(g, VBK_WRID_H(wc->wr_id), VBK_OBJ_SRQ);
	u32 slot = VBK_WRID_SEQ(wc->wr_id);
	struct vbk_qp *qp;

	if (!srq || slot >= srq->q.entries)
		return false;
	/* Inside the CQ ring's lock, which is of the same lock class (vbk_queue_map): the
	 * order is always CQ, then SRQ (a doorbell takes an SRQ's lock alone).
	 */
	spin_lock_nested(&srq->q.lock, SINGLE_DEPTH_NESTING);
	/* The wr_id before the slot is free: a doorbell may reuse it at once. */
	c->wr_id = cpu_to_le64(srq->wrid[slot]);
	if (srq->nfree < srq->q.entries) {
		srq->free[srq->nfree++] = slot;
		srq->done++;
		/* Release: the guest may reuse the depth once it sees this. */
		smp_store_release(&srq->q.ring->retired, cpu_to_le32(srq->done));
	}
	spin_unlock(&srq->q.lock);
	list_for_each_entry(qp, &srq->qps, srq_node) {
		if (qp->qp == wc->qp) {
			c->qp_num = cpu_to_le32(qp->qp->qp_num);
			c->qp_handle = cpu_to_le32(qp->handle);
			*qpp = qp;
			break;
		}
	}
	return true;
}

/*
 * A queue's retired count (sretired, rdone) moves forward to `to`, never back (a flush
 * completion of before a RESET, which retired everything, comes after it), and each WQE is
 * retired once, so that cq's pending count is taken down once: the move (under the CQ
 * ring's lock) and a RESET (under the queue's) may race. Whether it moved.
 */
bool vbk_qp_retire(u32 *count, u32 to, struct vbk_cq *cq)
{
	u32 old = READ_ONCE(*count);

	do {
		if ((s32)(to - old) <= 0)
			return false;
	} while (!try_cmpxchg(count, &old, to));
	if (cq)
		vbk_cq_retire(cq, old, to);
	return true;
}

/* One real completion into the guest's form, its WQE retired; false: it has no guest any
 * more. *qpp: the guest's QP it names (NULL: an SRQ's whose QP is gone).
 */
static bool cqe_out(struct vbk_guest *g, struct vrdma_cqe *c, const struct ib_wc *wc,
		    struct vbk_qp **qpp)
{
	u64 kind = VBK_WRID_KIND(wc->wr_id);
	u32 seq = VBK_WRID_SEQ(wc->wr_id);
	struct vbk_qp *qp;

	*qpp = NULL;
	memset(c, 0, sizeof(*c));
	c->status = cpu_to_le32(wc->status);
	c->opcode = cpu_to_le32(wc->opcode);
	c->vendor_err = cpu_to_le32(wc->vendor_err);
	c->byte_len = cpu_to_le32(wc->byte_len);
	c->imm_data = wc->ex.imm_data;		/* or the invalidated rkey, as uverbs copies */
	c->src_qp = cpu_to_le32(wc->src_qp);
	c->wc_flags = cpu_to_le32(wc->wc_flags);
	c->pkey_index = cpu_to_le16(wc->pkey_index);
	c->slid = cpu_to_le16(wc->slid);
	c->sl = wc->sl;
	c->dlid_path_bits = wc->dlid_path_bits;
	if (kind == VBK_WRID_SRQ)
		return srq_done(g, wc, c, qpp);
	if (kind == VBK_WRID_REFUSED && wc->status != IB_WC_WR_FLUSH_ERR)
		c->status = cpu_to_le32(IB_WC_REM_INV_REQ_ERR);	/* native's NAK (vbk_post.c) */
	qp = obj_by_h30(g, VBK_WRID_H(wc->wr_id), VBK_OBJ_QP);
	if (!qp || qp->qp != wc->qp)
		return false;
	*qpp = qp;
	c->qp_num = cpu_to_le32(qp->qp->qp_num);
	c->qp_handle = cpu_to_le32(qp->handle);
	if (kind == VBK_WRID_RECV) {
		c->wr_id = cpu_to_le64(qp->rwrid[seq & qp->rmask]);
		vbk_qp_retire(&qp->rdone, seq + 1, qp->rcq);
	} else {	/* VBK_WRID_SEND or VBK_WRID_REFUSED */
		c->wr_id = cpu_to_le64(qp->swrid[seq & qp->smask]);
		c->is_send = 1;
		c->sq_retired = cpu_to_le32(seq + 1);
		/* The guest's depth check reads it too (the relay's rule, vrdma.h). */
		if (vbk_qp_retire(&qp->sretired, seq + 1, qp->scq))
			smp_store_release(&qp->sq.ring->retired, cpu_to_le32(seq + 1));
	}
	return true;
}

/* A receive lost to the overrun: its QP goes to ERR, once (to_err holds ERR_MAX at most;
 * past that a QP stays in its state, the completion lost all the same).
 */
static u32 note_err(struct vbk_qp **to_err, u32 nerr, struct vbk_qp *qp)
{
	u32 k;

	for (k = 0; k < nerr; k++)
		if (to_err[k] == qp)
			return nerr;
	if (nerr < ERR_MAX)
		to_err[nerr++] = qp;
	return nerr;
}

/*
 * Move what cq's real CQ holds into the guest's ring, as much as the guest's CQ has room
 * for, and lose the rest (the overrun, above); the caller holds tbl (for reading; RESIZE_CQ
 * for writing: the QPs and SRQs the completions name stay put) and may sleep (a QP to
 * ERR). Returns the completions moved. A ring whose consumer index is nonsense is
 * broken, and takes nothing more.
 */
long vbk_cq_move(struct vbk_guest *g, struct vbk_cq *cq)
{
	struct vbk_queue *q = &cq->q;
	struct vbk_qp *to_err[ERR_MAX], *qp;
	struct ib_wc wc[POLL_BATCH];
	struct vrdma_cqe gone;
	u32 used, room, lost = 0, nerr = 0, k;
	long moved = 0;
	int n;

	lockdep_assert_held(&g->tbl);
	might_sleep();
	spin_lock_bh(&q->lock);
	if (q->broken)
		goto unlock;
	/* Acquire pairs with the guest's release of cons after it copied the CQEs out. */
	used = q->idx - le32_to_cpu(smp_load_acquire(&q->ring->cons));
	if (used > q->entries) {
		vbk_queue_break(g, q);
		goto unlock;
	}
	room = used < cq->cqe ? cq->cqe - used : 0;
	while ((n = ib_poll_cq(cq->cq, POLL_BATCH, wc)) > 0) {
		for (k = 0; k < (u32)n; k++) {
			if (!room) {
				if (!cqe_out(g, &gone, &wc[k], &qp))
					continue;
				lost++;
				if (qp && !gone.is_send && wc[k].status != IB_WC_WR_FLUSH_ERR &&
				    !READ_ONCE(qp->in_err))
					nerr = note_err(to_err, nerr, qp);
				continue;
			}
			if (!cqe_out(g, (struct vrdma_cqe *)(q->slots +
				     (size_t)(q->idx & (q->entries - 1)) * q->stride), &wc[k], &qp))
				continue;
			q->idx++;
			room--;
			moved++;
		}
		if (n < POLL_BATCH)
			break;
	}
	/* Release: the CQEs above are visible before the guest sees the new prod. */
	smp_store_release(&q->ring->prod, cpu_to_le32(q->idx));
unlock:
	spin_unlock_bh(&q->lock);
	atomic64_add(moved, &g->n_cqe);
	if (lost) {
		atomic64_add(lost, &g->n_cqe_lost);
		vbk_event(g, IB_EVENT_CQ_ERR, cq->handle, 0);
	}
	for (k = 0; k < nerr; k++)
		vbk_qp_to_err(g, to_err[k]);
	return moved;
}

long vbk_poll_cq(struct vbk_guest *g, u32 h)
{
	struct vbk_cq *cq;
	long moved;
	int err;

	down_read(&g->tbl);
	if (g->dead) {
		moved = -EIO;
		goto out;
	}
	cq = vbk_obj_get(g, h, VBK_OBJ_CQ, &err);
	if (!cq) {
		moved = err;
		goto out;
	}
	atomic64_inc(&g->n_poll);
	moved = vbk_cq_move(g, cq);
out:
	up_read(&g->tbl);
	return moved;
}
