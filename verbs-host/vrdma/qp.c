// SPDX-License-Identifier: MIT
/*
 * Queue pairs: a real QP in the guest's own PD, whose send and receive queues the guest
 * fills in shared memory and the relay drains. The QPN is the real one, so the guest's QP
 * talks on the wire to any peer. Modify is checked against the bus's policy: the guest
 * uses its port as port 1 and only the source GID index its bus allows.
 */
#include <endian.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include "vrdma.h"

#define QKEY_PRIVILEGED	0x80000000u	/* Q_Keys with bit 31: IBTA 10.2.4 */
#define MASK_ALLOWED (IBV_QP_STATE | IBV_QP_CUR_STATE | IBV_QP_EN_SQD_ASYNC_NOTIFY | \
		      IBV_QP_ACCESS_FLAGS | IBV_QP_PKEY_INDEX | IBV_QP_PORT | IBV_QP_QKEY | \
		      IBV_QP_AV | IBV_QP_PATH_MTU | IBV_QP_TIMEOUT | IBV_QP_RETRY_CNT | \
		      IBV_QP_RNR_RETRY | IBV_QP_RQ_PSN | IBV_QP_MAX_QP_RD_ATOMIC | \
		      IBV_QP_MIN_RNR_TIMER | IBV_QP_SQ_PSN | IBV_QP_MAX_DEST_RD_ATOMIC | \
		      IBV_QP_CAP | IBV_QP_DEST_QPN)

static uint32_t pow2_at_least(uint32_t x)
{
	uint32_t p = 1;

	while (p < x && p < (1u << 30))
		p <<= 1;
	return p;
}

void vrdma_qp_free(struct vrdma_guest *g, struct vrdma_qp *qp)
{
	vrdma_qpn_del(g, qp);
	ibv_destroy_qp(qp->qp);
	vrdma_hq_unmap(g, &qp->sq);
	vrdma_hq_unmap(g, &qp->rq);
	free(qp->swrid);
	free(qp->rwrid);
	free(qp);
}

static uint32_t min_u32(uint32_t a, uint32_t b)
{
	return a < b ? a : b;
}

/* Clamp the granted caps c to the guest's ring geometry; -EINVAL if that is less than the
 * guest asked for. */
static int clamp_caps(struct ibv_qp_cap *c, const struct vrdma_create_qp_in *i)
{
	uint32_t sst = le32toh(i->sq_stride), rst = le32toh(i->rq_stride);
	uint32_t sroom = sst > sizeof(struct vrdma_swqe) ? sst - sizeof(struct vrdma_swqe) : 0;
	uint32_t rroom = rst > sizeof(struct vrdma_rwqe) ? rst - sizeof(struct vrdma_rwqe) : 0;

	c->max_send_wr = min_u32(c->max_send_wr, le32toh(i->sq_entries));
	c->max_recv_wr = min_u32(c->max_recv_wr, le32toh(i->rq_entries));
	c->max_send_sge = min_u32(min_u32(c->max_send_sge, sroom / sizeof(struct vrdma_sge)),
				  VRDMA_MAX_SGE);
	c->max_recv_sge = min_u32(min_u32(c->max_recv_sge, rroom / sizeof(struct vrdma_sge)),
				  VRDMA_MAX_SGE);
	c->max_inline_data = min_u32(min_u32(c->max_inline_data, VRDMA_MAX_INLINE), sroom);
	if (c->max_send_wr < le32toh(i->cap.max_send_wr) ||
	    c->max_recv_wr < le32toh(i->cap.max_recv_wr) ||
	    c->max_send_sge < le32toh(i->cap.max_send_sge) ||
	    c->max_recv_sge < le32toh(i->cap.max_recv_sge) ||
	    c->max_inline_data < le32toh(i->cap.max_inline_data))
		return -EINVAL;
	return 0;
}

/* An RC QP with the ibv_wr_* atomics, for those rxe's ibv_post_send refuses but a native
 * program can put on the wire through the ibv_wr_* API (relay.c, drain_sq); NULL when the
 * device has no such interface (then ibv_create_qp, and the stand-in). ia->cap is
 * updated with what the device granted, as ibv_create_qp does. */
static struct ibv_qp *create_rc_ex(struct vrdma_guest *g, struct ibv_pd *pd,
				   struct ibv_qp_init_attr *ia, struct ibv_qp_ex **qpx)
{
	struct ibv_qp_init_attr_ex x = {
		.qp_context = ia->qp_context, .send_cq = ia->send_cq, .recv_cq = ia->recv_cq,
		.srq = ia->srq, .cap = ia->cap, .qp_type = ia->qp_type,
		.sq_sig_all = ia->sq_sig_all, .pd = pd,
		.comp_mask = IBV_QP_INIT_ATTR_PD | IBV_QP_INIT_ATTR_SEND_OPS_FLAGS,
		.send_ops_flags = IBV_QP_EX_WITH_ATOMIC_CMP_AND_SWP |
				  IBV_QP_EX_WITH_ATOMIC_FETCH_AND_ADD,
	};
	struct ibv_qp *qp = ibv_create_qp_ex(g->ctx, &x);

	if (!qp)
		return NULL;
	*qpx = ibv_qp_to_qp_ex(qp);
	if (!*qpx) {
		ibv_destroy_qp(qp);
		return NULL;
	}
	ia->cap = x.cap;
	return qp;
}

int vrdma_do_create_qp(struct vrdma_guest *g, const void *in, size_t inlen, void *out)
{
	const struct vrdma_create_qp_in *i = in;
	struct vrdma_create_qp_out *o = out;
	struct ibv_qp_init_attr ia = { 0 };
	uint32_t pdh = le32toh(i->pd), sch = le32toh(i->send_cq), rch = le32toh(i->recv_cq);
	uint32_t shm = le32toh(i->shm), inl;
	uint32_t srqh = le32toh(i->srq);
	struct vrdma_srq *srq = NULL;
	struct vrdma_pd *pd;
	struct vrdma_cq *scq, *rcq;
	struct vrdma_qp *qp;
	uint32_t h;
	int err = 0;

	if (i->reserved || i->cap.reserved || i->sq_sig_all > 1)
		return -EINVAL;
	if (i->qp_type != IBV_QPT_RC && i->qp_type != IBV_QPT_UC && i->qp_type != IBV_QPT_UD)
		return -EOPNOTSUPP;	/* RAW_PACKET, XRC: not in v1 */
	if (!(g->pol.qp_types & VRDMA_QPT_BIT(i->qp_type)))
		return vrdma_refuse(g, "a QP type", i->qp_type);
	pd = vrdma_handle_get(g, pdh, VRDMA_OBJ_PD, &err);
	scq = pd ? vrdma_handle_get(g, sch, VRDMA_OBJ_CQ, &err) : NULL;
	rcq = scq ? vrdma_handle_get(g, rch, VRDMA_OBJ_CQ, &err) : NULL;
	if (!rcq)
		return err;
	if (srqh) {
		/* The SRQ's ring replaces the receive queue: none is described. */
		srq = vrdma_handle_get(g, srqh, VRDMA_OBJ_SRQ, &err);
		if (!srq)
			return err;
		if (i->rq_offset || i->rq_entries || i->rq_stride || i->cap.max_recv_wr ||
		    i->cap.max_recv_sge)
			return -EINVAL;
	}
	inl = le32toh(i->cap.max_inline_data);
	if (inl > VRDMA_MAX_INLINE)
		return -EINVAL;

	qp = calloc(1, sizeof(*qp));
	if (!qp)
		return -ENOMEM;
	ia.qp_context = qp;	/* async events find the QP through it */
	ia.send_cq = scq->cq;
	ia.recv_cq = rcq->cq;
	ia.srq = srq ? srq->srq : NULL;
	ia.qp_type = i->qp_type;
	ia.sq_sig_all = i->sq_sig_all;
	vrdma_cap_to_ibv(&ia.cap, &i->cap);
	if (ia.qp_type == IBV_QPT_RC)
		qp->qp = create_rc_ex(g, pd->pd, &ia, &qp->qpx);
	if (!qp->qp)
		qp->qp = ibv_create_qp(pd->pd, &ia);
	if (!qp->qp) {
		err = errno ? -errno : -EINVAL;
		goto err_free;
	}
	/* ia.cap holds what the device granted. The guest sized its rings before it knew:
	 * report no more than they hold (a device may round up; the guest gets at least
	 * what it asked for, as ibv_create_qp promises), and refuse rings too small for
	 * the request itself. */
	err = clamp_caps(&ia.cap, i);
	if (err)
		goto err_destroy;
	err = vrdma_hq_map(g, &qp->sq, shm, le64toh(i->sq_offset), le32toh(i->sq_entries),
			   le32toh(i->sq_stride), sizeof(struct vrdma_swqe));
	if (!err && !srq)
		err = vrdma_hq_map(g, &qp->rq, shm, le64toh(i->rq_offset),
				   le32toh(i->rq_entries), le32toh(i->rq_stride),
				   sizeof(struct vrdma_rwqe));
	if (err)
		goto err_destroy;
	qp->smask = pow2_at_least(ia.cap.max_send_wr ? ia.cap.max_send_wr : 1) - 1;
	qp->rmask = pow2_at_least(ia.cap.max_recv_wr ? ia.cap.max_recv_wr : 1) - 1;
	qp->swrid = calloc(qp->smask + 1, sizeof(*qp->swrid));
	qp->rwrid = calloc(qp->rmask + 1, sizeof(*qp->rwrid));
	err = -ENOMEM;
	if (!qp->swrid || !qp->rwrid)
		goto err_destroy;
	err = vrdma_qpn_add(g, qp);
	if (err)
		goto err_destroy;
	err = vrdma_handle_new(g, VRDMA_OBJ_QP, qp, &h);
	if (err)
		goto err_destroy;
	qp->handle = h;
	qp->pd = pdh;
	qp->send_cq = sch;
	qp->recv_cq = rch;
	qp->scq = scq;
	qp->rcq = rcq;
	qp->qp_type = i->qp_type;
	qp->sq_sig_all = i->sq_sig_all;
	vrdma_cap_from_ibv(&qp->cap, &ia.cap);
	vrdma_handle_obj(g, pdh)->users++;
	vrdma_handle_obj(g, sch)->users++;
	vrdma_handle_obj(g, rch)->users++;
	if (srq) {
		qp->srq_h = srqh;
		vrdma_handle_obj(g, srqh)->users++;
	}
	/* New queues start with NEED_WAKEUP set: the relay may be asleep, and it only flags
	 * the queues it knew of when it went to sleep. The first pass that finds work on a
	 * queue clears it. So they start parked: the guest's first post kicks. */
	__atomic_store_n(&qp->sq.ring->cons, 0, __ATOMIC_RELEASE);
	__atomic_store_n(&qp->sq.ring->flags, htole32(VRDMA_RING_NEED_WAKEUP), __ATOMIC_SEQ_CST);
	vrdma_sched_add(g, &qp->sq, VRDMA_QK_SQ, true);
	if (!srq) {
		__atomic_store_n(&qp->rq.ring->cons, 0, __ATOMIC_RELEASE);
		__atomic_store_n(&qp->rq.ring->flags, htole32(VRDMA_RING_NEED_WAKEUP),
				 __ATOMIC_SEQ_CST);
		vrdma_sched_add(g, &qp->rq, VRDMA_QK_RQ, true);
	}
	o->handle = htole32(h);
	o->qp_num = htole32(qp->qp->qp_num);
	o->cap = qp->cap;
	return 0;

err_destroy:
	vrdma_qpn_del(g, qp);
	ibv_destroy_qp(qp->qp);
	vrdma_hq_unmap(g, &qp->sq);
	vrdma_hq_unmap(g, &qp->rq);
err_free:
	free(qp->swrid);
	free(qp->rwrid);
	free(qp);
	return err;
}

/* Guest address vector -> real one, under the bus's policy. */
int vrdma_ah_in(struct vrdma_guest *g, struct ibv_ah_attr *a, const struct vrdma_ah_attr *v)
{
	if (v->reserved)
		return -EINVAL;
	if (v->port_num != 1)
		return -EINVAL;
	if (v->is_global && v->sgid_index != g->pol.gid_index)
		return -EPERM;
	vrdma_ah_attr_to_ibv(a, v);
	a->port_num = g->pol.port;
	return 0;
}

int vrdma_do_modify_qp(struct vrdma_guest *g, const void *in, size_t inlen, void *out)
{
	const struct vrdma_modify_qp_in *i = in;
	const struct vrdma_qp_attr *v = &i->attr;
	uint32_t mask = le32toh(i->attr_mask);
	struct ibv_qp_attr a;
	struct vrdma_qp *qp;
	int err = 0, r;

	qp = vrdma_handle_get(g, le32toh(i->handle), VRDMA_OBJ_QP, &err);
	if (!qp)
		return err;
	if (mask & ~MASK_ALLOWED)
		return (mask & (IBV_QP_ALT_PATH | IBV_QP_PATH_MIG_STATE)) ? -EOPNOTSUPP : -EINVAL;
	if (v->reserved1 || v->cap.reserved)
		return -EINVAL;
	if ((mask & IBV_QP_PORT) && v->port_num != 1)
		return -EINVAL;
	vrdma_qp_attr_to_ibv(&a, v);
	if ((mask & IBV_QP_ACCESS_FLAGS) && vrdma_wl_lacks(g, a.qp_access_flags))
		return vrdma_refuse(g, "QP access flags", vrdma_wl_lacks(g, a.qp_access_flags));
	if ((mask & IBV_QP_QKEY) && (a.qkey & QKEY_PRIVILEGED)) {
		struct vrdma_caller c;

		vrdma_caller(g, VRDMA_ASK_CAPS, &c);	/* as uverbs: a privileged Q_Key needs CAP_NET_RAW */
		if (!c.net_raw)
			return -EPERM;
	}
	a.port_num = g->pol.port;	/* the guest's port 1 is the backing port */
	if (mask & IBV_QP_AV) {
		err = vrdma_ah_in(g, &a.ah_attr, &v->ah_attr);
		if (err)
			return err;
	}
	if (mask & IBV_QP_CAP)
		return -EOPNOTSUPP;	/* resizing the queues would resize the rings */
	if ((mask & IBV_QP_STATE) && a.qp_state == IBV_QPS_RESET)
		vrdma_relay_qp_reset(g, qp, false);	/* what was posted is on the device */
	r = ibv_modify_qp(qp->qp, &a, (int)mask);
	/* RESET discards outstanding work without completions (the guest forgets it too). */
	if (!r && (mask & IBV_QP_STATE) && a.qp_state == IBV_QPS_RESET) {
		vrdma_relay_qp_reset(g, qp, true);
		qp->sretired = qp->sposted;
		qp->rdone = qp->rposted;
		if (qp->sq.ring)
			__atomic_store_n(&qp->sq.ring->retired, htole32(qp->sretired),
					 __ATOMIC_RELEASE);
	}
	return -r;
}

int vrdma_do_query_qp(struct vrdma_guest *g, const void *in, size_t inlen, void *out)
{
	const struct vrdma_query_qp_in *i = in;
	struct vrdma_query_qp_out *o = out;
	struct ibv_qp_attr a;
	struct ibv_qp_init_attr ia;
	struct vrdma_qp *qp;
	int err = 0, r;

	qp = vrdma_handle_get(g, le32toh(i->handle), VRDMA_OBJ_QP, &err);
	if (!qp)
		return err;
	r = ibv_query_qp(qp->qp, &a, (int)le32toh(i->attr_mask), &ia);
	if (r)
		return -r;
	memset(o, 0, sizeof(*o));
	vrdma_qp_attr_from_ibv(&o->attr, &a);
	o->attr.cap = qp->cap;		/* what the rings hold */
	o->attr.port_num = 1;		/* the guest's numbering */
	o->init_caps.cap = qp->cap;
	return 0;
}

int vrdma_do_destroy_qp(struct vrdma_guest *g, const void *in, size_t inlen, void *out)
{
	const struct vrdma_handle *i = in;
	uint32_t h = le32toh(i->handle);
	struct vrdma_obj *o;
	struct vrdma_qp *qp;
	int err = 0;

	if (i->reserved)
		return -EINVAL;

	qp = vrdma_handle_get(g, h, VRDMA_OBJ_QP, &err);
	if (!qp)
		return err;
	if ((o = vrdma_handle_obj(g, qp->pd)))
		o->users--;
	if ((o = vrdma_handle_obj(g, qp->send_cq)))
		o->users--;
	if ((o = vrdma_handle_obj(g, qp->recv_cq)))
		o->users--;
	if (qp->srq_h && (o = vrdma_handle_obj(g, qp->srq_h)))
		o->users--;
	vrdma_qp_free(g, qp);
	vrdma_handle_free(g, h);
	return 0;
}
