// SPDX-License-Identifier: GPL-2.0
/*
 * VBK_IOC_RES: an attachment's objects for vbusd's `vbusctl res show`, as the relay lists
 * its own (struct vbk_res_obj). Read under the guest's table lock (and the admin's, which
 * keeps the attachment), into a kernel buffer that vbk_main.c copies out after both are
 * dropped. A QP's state is asked of the device (rxe moves a QP to ERR on an error
 * completion without telling anyone).
 */
#include "vbk.h"

static void res_qp(struct vbk_res_obj *r, const struct vbk_qp *qp)
{
	struct ib_qp_init_attr init;
	struct ib_qp_attr a;

	r->real = qp->qp->qp_num;
	r->pd = qp->pd;
	r->qp_type = qp->qp_type;
	r->state = ib_query_qp(qp->qp, &a, IB_QP_STATE, &init) ? VBK_RES_STATE_UNKNOWN :
								  a.qp_state;
	r->v[0] = READ_ONCE(qp->sposted);
	r->v[1] = READ_ONCE(qp->sretired);
	r->v[2] = READ_ONCE(qp->rposted);
	r->v[3] = READ_ONCE(qp->rdone);
	if (READ_ONCE(qp->sq.broken) || READ_ONCE(qp->rq.broken))
		r->flags |= VBK_RES_BROKEN;
}

static void res_one(struct vbk_res_obj *r, const struct vbk_obj *o)
{
	switch (o->type) {
	case VBK_OBJ_MR: {
		const struct vbk_mr *mr = o->p;

		r->real = mr->mr->lkey;
		r->v[0] = mr->mr->rkey;
		r->iova = mr->mr->iova;
		r->length = mr->length;
		r->pd = mr->pd;
		break;
	}
	case VBK_OBJ_CQ: {
		const struct vbk_cq *cq = o->p;

		r->real = cq->cq->cqe;
		r->v[0] = cq->q.entries;
		if (cq->channel)
			r->flags |= VBK_RES_CHANNEL;
		break;
	}
	case VBK_OBJ_QP:
		res_qp(r, o->p);
		break;
	case VBK_OBJ_AH:
		r->pd = ((const struct vbk_ah *)o->p)->pd;
		break;
	case VBK_OBJ_SRQ: {
		const struct vbk_srq *srq = o->p;

		r->real = srq->max_wr;
		r->v[0] = READ_ONCE(srq->q.idx);
		r->v[1] = READ_ONCE(srq->done);
		r->pd = srq->pd;
		if (READ_ONCE(srq->q.broken))
			r->flags |= VBK_RES_BROKEN;
		break;
	}
	default:	/* PD: nothing more */
		break;
	}
}

u32 vbk_guest_res(struct vbk_guest *g, struct vbk_res_obj *out, u32 room)
{
	u32 i, n = 0;

	down_read(&g->tbl);
	for (i = 1; !g->dead && i < g->nobjs; i++) {
		const struct vbk_obj *o = &g->objs[i];

		if (o->type == VBK_OBJ_FREE)
			continue;
		if (n < room) {
			struct vbk_res_obj *r = &out[n];

			memset(r, 0, sizeof(*r));
			r->handle = (u32)o->gen << VRDMA_HANDLE_INDEX_BITS | i;
			r->type = o->type;
			r->users = o->users;
			res_one(r, o);
		}
		n++;
	}
	up_read(&g->tbl);
	return n;
}
