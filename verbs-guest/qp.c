// SPDX-License-Identifier: MIT
/*
 * Queue pairs. A QP's send and receive rings live in one DEVSHM region of its own; the
 * host creates the real QP in this guest's PD and returns the real QPN, so the QP talks
 * on the wire to any peer. The rings are sized before the host answers: twice the
 * requested depth (devices round up; rxe to a power of two minus one), and slots for the
 * requested SGEs and inline data. The host reports no more than the rings hold.
 */
#include <endian.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include "vbg.h"

#define SEND_OPS_SUPPORTED (IBV_QP_EX_WITH_SEND | IBV_QP_EX_WITH_SEND_WITH_IMM | \
	IBV_QP_EX_WITH_RDMA_WRITE | IBV_QP_EX_WITH_RDMA_WRITE_WITH_IMM | \
	IBV_QP_EX_WITH_RDMA_READ | IBV_QP_EX_WITH_ATOMIC_CMP_AND_SWP | \
	IBV_QP_EX_WITH_ATOMIC_FETCH_AND_ADD | IBV_QP_EX_WITH_BIND_MW | \
	IBV_QP_EX_WITH_LOCAL_INV | IBV_QP_EX_WITH_SEND_WITH_INV)

static uint32_t max3(uint32_t a, uint32_t b, uint32_t c)
{
	uint32_t m = a > b ? a : b;

	return m > c ? m : c;
}

static int check_attr(struct vbg_context *ctx, const struct ibv_qp_init_attr_ex *a)
{
	uint32_t known = IBV_QP_INIT_ATTR_PD | IBV_QP_INIT_ATTR_SEND_OPS_FLAGS |
			 IBV_QP_INIT_ATTR_CREATE_FLAGS;

	if (a->comp_mask & ~known)
		return EOPNOTSUPP;
	if ((a->comp_mask & IBV_QP_INIT_ATTR_CREATE_FLAGS) && a->create_flags)
		return EOPNOTSUPP;
	if ((a->comp_mask & IBV_QP_INIT_ATTR_SEND_OPS_FLAGS) &&
	    (a->send_ops_flags & ~(uint64_t)SEND_OPS_SUPPORTED))
		return EOPNOTSUPP;
	if (!(a->comp_mask & IBV_QP_INIT_ATTR_PD) || !a->pd || a->pd->context != &ctx->vctx.context)
		return EINVAL;
	if (!a->send_cq || !a->recv_cq || a->send_cq->context != a->pd->context ||
	    a->recv_cq->context != a->pd->context)
		return EINVAL;
	if (a->srq && a->srq->context != a->pd->context)
		return EINVAL;
	if (a->qp_type != IBV_QPT_RC && a->qp_type != IBV_QPT_UC && a->qp_type != IBV_QPT_UD)
		return EOPNOTSUPP;	/* XRC, RAW_PACKET, DRIVER: refused */
	if (a->cap.max_send_wr > (uint32_t)le32toh(ctx->dev_attr.max_qp_wr) ||
	    a->cap.max_recv_wr > (uint32_t)le32toh(ctx->dev_attr.max_qp_wr) ||
	    a->cap.max_send_sge > le32toh(ctx->dev_attr.max_sge) ||
	    a->cap.max_recv_sge > le32toh(ctx->dev_attr.max_sge) ||
	    a->cap.max_inline_data > le32toh(ctx->dev_attr.max_inline_data))
		return EINVAL;
	return 0;
}

struct ibv_qp *vbg_create_qp_ex(struct ibv_context *c, struct ibv_qp_init_attr_ex *a)
{
	struct vbg_context *ctx = to_vctx(c);
	struct vrdma_create_qp_in in = { 0 };
	struct vrdma_create_qp_out o;
	uint32_t sq_entries, rq_entries, sstride, rstride;
	size_t sq_bytes, rq_off;
	struct vbg_qp *qp;
	int err = check_attr(ctx, a);

	if (err) {
		errno = err;
		return NULL;
	}
	qp = calloc(1, sizeof(*qp));
	if (!qp) {
		errno = ENOMEM;
		return NULL;
	}
	if (a->srq) {	/* receives come from the SRQ: the QP has no receive queue */
		a->cap.max_recv_wr = 0;
		a->cap.max_recv_sge = 0;
	}
	sq_entries = vbg_pow2(2 * (a->cap.max_send_wr + 1));
	rq_entries = vbg_pow2(2 * (a->cap.max_recv_wr + 1));
	sstride = vbg_pow2(sizeof(struct vrdma_swqe) +
			   max3(a->cap.max_send_sge * sizeof(struct vrdma_sge),
				a->cap.max_inline_data, sizeof(struct vrdma_sge)));
	rstride = vbg_pow2(sizeof(struct vrdma_rwqe) +
			   max3(a->cap.max_recv_sge, 1, 0) * sizeof(struct vrdma_sge));
	sq_bytes = (sizeof(struct vrdma_ring) + (size_t)sq_entries * sstride + 63) & ~(size_t)63;
	rq_off = sq_bytes;
	err = -vbg_shm_new(ctx, rq_off + (a->srq ? 0 : sizeof(struct vrdma_ring) +
					       (size_t)rq_entries * rstride), "vbus-qp", &qp->shm);
	if (err)
		goto err_free;
	in.pd = htole32(((struct vbg_pd *)a->pd)->handle);
	in.send_cq = htole32(to_vcq(a->send_cq)->handle);
	in.recv_cq = htole32(to_vcq(a->recv_cq)->handle);
	in.qp_type = (uint8_t)a->qp_type;
	in.sq_sig_all = a->sq_sig_all ? 1 : 0;
	in.shm = htole32(qp->shm.id);
	vrdma_cap_from_ibv(&in.cap, &a->cap);
	in.sq_offset = htole64(vbg_shm_off(&qp->shm, 0));
	in.sq_entries = htole32(sq_entries);
	in.sq_stride = htole32(sstride);
	if (a->srq) {
		in.srq = htole32(to_vsrq(a->srq)->handle);
	} else {
		in.rq_offset = htole64(vbg_shm_off(&qp->shm, rq_off));
		in.rq_entries = htole32(rq_entries);
		in.rq_stride = htole32(rstride);
	}
	err = -vbg_call(ctx, VRDMA_FN_CREATE_QP, &in, sizeof(in), &o, sizeof(o));
	if (err)
		goto err_shm;
	qp->handle = le32toh(o.handle);
	vrdma_cap_to_ibv(&qp->cap, &o.cap);
	qp->sq = (struct vbg_queue){ .ring = qp->shm.base, .entries = sq_entries, .stride = sstride,
				     .db = qp->handle };
	qp->sq.slots = (uint8_t *)(qp->sq.ring + 1);
	if (a->srq) {
		qp->srq = to_vsrq(a->srq);
	} else {
		qp->rq = (struct vbg_queue){ .ring = (void *)((uint8_t *)qp->shm.base + rq_off),
			.entries = rq_entries, .stride = rstride, .db = qp->handle };
		qp->rq.slots = (uint8_t *)(qp->rq.ring + 1);
	}
	qp->send_ops = (a->comp_mask & IBV_QP_INIT_ATTR_SEND_OPS_FLAGS) ? a->send_ops_flags :
		SEND_OPS_SUPPORTED;
	qp->scq = to_vcq(a->send_cq);
	qp->rcq = to_vcq(a->recv_cq);
	qp->state = IBV_QPS_RESET;
	qp->sq_sig_all = a->sq_sig_all;
	pthread_spin_init(&qp->lock, PTHREAD_PROCESS_PRIVATE);

	struct ibv_qp *q = &qp->qpx.qp_base;
	q->context = c;
	q->qp_context = a->qp_context;
	q->pd = a->pd;
	q->send_cq = a->send_cq;
	q->recv_cq = a->recv_cq;
	q->srq = a->srq;
	q->handle = qp->handle;
	q->qp_num = le32toh(o.qp_num);
	q->state = IBV_QPS_RESET;
	q->qp_type = a->qp_type;
	pthread_mutex_init(&q->mutex, NULL);
	pthread_cond_init(&q->cond, NULL);
	vbg_wr_ops_init(qp);
	err = -vbg_qp_table_set(ctx, qp->handle, qp);
	if (err) {
		struct vrdma_handle h = { .handle = htole32(qp->handle) };

		vbg_call(ctx, VRDMA_FN_DESTROY_QP, &h, sizeof(h), NULL, 0);
		goto err_shm;
	}
	a->cap = qp->cap;	/* as ibv_create_qp: what was granted */
	return q;

err_shm:
	vbg_shm_free(&qp->shm);
err_free:
	free(qp);
	errno = err;
	return NULL;
}

VBG_EXPORT struct ibv_qp *ibv_create_qp(struct ibv_pd *pd, struct ibv_qp_init_attr *attr)
{
	struct ibv_qp_init_attr_ex ax;
	struct ibv_qp *qp;

	if (!vbg_is_context(pd->context))
		return vbg_real.create_qp(pd, attr);
	memset(&ax, 0, sizeof(ax));
	memcpy(&ax, attr, sizeof(*attr));
	ax.comp_mask = IBV_QP_INIT_ATTR_PD;
	ax.pd = pd;
	qp = vbg_create_qp_ex(pd->context, &ax);
	if (qp)
		attr->cap = ax.cap;
	return qp;
}

VBG_EXPORT struct ibv_qp_ex *ibv_qp_to_qp_ex(struct ibv_qp *qp)
{
	if (!vbg_is_context(qp->context))
		return vbg_real.qp_to_qp_ex(qp);
	return &to_vqp(qp)->qpx;
}

VBG_EXPORT int ibv_modify_qp(struct ibv_qp *q, struct ibv_qp_attr *a, int mask)
{
	struct vbg_qp *qp = to_vqp(q);
	struct vrdma_modify_qp_in in;
	struct vrdma_qp_attr *o = &in.attr;
	int err;

	if (!vbg_is_context(q->context))
		return vbg_real.modify_qp(q, a, mask);
	memset(&in, 0, sizeof(in));
	in.handle = htole32(qp->handle);
	in.attr_mask = htole32((uint32_t)mask);
	vrdma_qp_attr_from_ibv(o, a);
	/* Only what the mask names is sent (the rest stays zero); the ports as the program
	 * gave them, for the host to check. */
	if (!(mask & IBV_QP_CAP))
		memset(&o->cap, 0, sizeof(o->cap));
	if (mask & IBV_QP_AV)
		o->ah_attr.port_num = a->ah_attr.port_num;
	else
		memset(&o->ah_attr, 0, sizeof(o->ah_attr));
	if (mask & IBV_QP_ALT_PATH)
		o->alt_ah_attr.port_num = a->alt_ah_attr.port_num;
	else
		memset(&o->alt_ah_attr, 0, sizeof(o->alt_ah_attr));
	err = vbg_call(to_vctx(q->context), VRDMA_FN_MODIFY_QP, &in, sizeof(in), NULL, 0);
	if (err)
		return -err;
	if (mask & IBV_QP_STATE) {
		pthread_spin_lock(&qp->lock);
		qp->state = a->qp_state;
		/* RESET discards outstanding work without completions: nothing is in flight. */
		if (a->qp_state == IBV_QPS_RESET) {
			__atomic_store_n(&qp->sretired, qp->sprod, __ATOMIC_RELEASE);
			__atomic_store_n(&qp->rdone, qp->rprod, __ATOMIC_RELEASE);
		}
		pthread_spin_unlock(&qp->lock);
		q->state = a->qp_state;
	}
	return 0;
}

VBG_EXPORT int ibv_query_qp(struct ibv_qp *q, struct ibv_qp_attr *a, int mask,
			    struct ibv_qp_init_attr *init)
{
	struct vbg_qp *qp = to_vqp(q);
	struct vrdma_query_qp_in in;
	struct vrdma_query_qp_out o;
	int err;

	if (!vbg_is_context(q->context))
		return vbg_real.query_qp(q, a, mask, init);
	in = (struct vrdma_query_qp_in){ .handle = htole32(qp->handle),
					 .attr_mask = htole32((uint32_t)mask) };
	err = vbg_call(to_vctx(q->context), VRDMA_FN_QUERY_QP, &in, sizeof(in), &o, sizeof(o));
	if (err)
		return -err;
	vrdma_qp_attr_to_ibv(a, &o.attr);
	a->cap = qp->cap;	/* what this QP's rings hold */
	if (mask & IBV_QP_STATE)
		q->state = a->qp_state;	/* as libibverbs does */
	if (init) {
		memset(init, 0, sizeof(*init));
		init->qp_context = q->qp_context;
		init->send_cq = q->send_cq;
		init->recv_cq = q->recv_cq;
		init->srq = q->srq;
		init->qp_type = q->qp_type;
		init->sq_sig_all = qp->sq_sig_all;
		init->cap = qp->cap;
	}
	return 0;
}

VBG_EXPORT int ibv_destroy_qp(struct ibv_qp *q)
{
	struct vbg_qp *qp = to_vqp(q);
	struct vbg_context *ctx;
	struct vrdma_handle h;
	int err;

	if (!vbg_is_context(q->context))
		return vbg_real.destroy_qp(q);
	ctx = to_vctx(q->context);
	h = (struct vrdma_handle){ .handle = htole32(qp->handle) };
	err = vbg_call(ctx, VRDMA_FN_DESTROY_QP, &h, sizeof(h), NULL, 0);
	if (err)
		return -err;
	vbg_qp_table_set(ctx, qp->handle, NULL);
	/* A poll of either CQ that looked the QP up before it left the table is done once it
	 * releases the CQ's lock: after that nobody touches the QP. */
	pthread_spin_lock(&qp->scq->lock);
	pthread_spin_unlock(&qp->scq->lock);
	pthread_spin_lock(&qp->rcq->lock);
	pthread_spin_unlock(&qp->rcq->lock);
	vbg_shm_free(&qp->shm);
	pthread_spin_destroy(&qp->lock);
	free(qp);
	return 0;
}
