// SPDX-License-Identifier: MIT
/*
 * Shared receive queues. An SRQ's receive ring lives in a DEVSHM region of its own; the
 * program's ibv_post_srq_recv writes WQEs into it with no system call (kick only when
 * the relay sleeps) and the relay feeds the real SRQ. The host publishes in the ring's
 * `retired` how many of the SRQ's WQEs have completed, which gives the depth check its
 * answer whichever QP consumed them. QPs name the SRQ at creation (qp.c).
 */
#include <endian.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include "vbg.h"

static int check_attr(struct vbg_context *ctx, const struct ibv_srq_attr *a)
{
	if (!a->max_wr || a->max_wr > le32toh(ctx->dev_attr.max_srq_wr) ||
	    a->max_sge > le32toh(ctx->dev_attr.max_srq_sge))
		return EINVAL;
	return 0;
}

static struct ibv_srq *srq_create(struct ibv_pd *pd, struct ibv_srq_attr *attr, void *srq_ctx)
{
	struct vbg_context *ctx = to_vctx(pd->context);
	struct vrdma_create_srq_in in = { 0 };
	struct vrdma_create_srq_out o;
	uint32_t entries, stride;
	struct vbg_srq *srq;
	int err = check_attr(ctx, attr);

	if (err) {
		errno = err;
		return NULL;
	}
	srq = calloc(1, sizeof(*srq));
	if (!srq) {
		errno = ENOMEM;
		return NULL;
	}
	/* Room to grow (ibv_modify_srq with IBV_SRQ_MAX_WR) up to twice the request. */
	entries = vbg_pow2(2 * (attr->max_wr + 1));
	stride = vbg_pow2(sizeof(struct vrdma_rwqe) +
			  (attr->max_sge ? attr->max_sge : 1) * sizeof(struct vrdma_sge));
	err = -vbg_shm_new(ctx, sizeof(struct vrdma_ring) + (size_t)entries * stride, "vbus-srq",
			   &srq->shm);
	if (err)
		goto err_free;
	in.pd = htole32(((struct vbg_pd *)pd)->handle);
	in.shm = htole32(srq->shm.id);
	in.offset = htole64(vbg_shm_off(&srq->shm, 0));
	in.entries = htole32(entries);
	in.stride = htole32(stride);
	in.attr.max_wr = htole32(attr->max_wr);
	in.attr.max_sge = htole32(attr->max_sge);
	in.attr.srq_limit = htole32(attr->srq_limit);
	err = -vbg_call(ctx, VRDMA_FN_CREATE_SRQ, &in, sizeof(in), &o, sizeof(o));
	if (err)
		goto err_shm;
	srq->handle = le32toh(o.handle);
	srq->q = (struct vbg_queue){ .ring = srq->shm.base, .entries = entries, .stride = stride,
				     .db = srq->handle };
	srq->q.slots = (uint8_t *)(srq->q.ring + 1);
	srq->max_wr = le32toh(o.attr.max_wr);
	srq->max_sge = le32toh(o.attr.max_sge);
	pthread_spin_init(&srq->lock, PTHREAD_PROCESS_PRIVATE);
	srq->srq.context = pd->context;
	srq->srq.srq_context = srq_ctx;
	srq->srq.pd = pd;
	srq->srq.handle = srq->handle;
	pthread_mutex_init(&srq->srq.mutex, NULL);
	pthread_cond_init(&srq->srq.cond, NULL);
	pthread_mutex_lock(&ctx->lock);
	srq->ctx_next = ctx->srqs;
	ctx->srqs = srq;
	pthread_mutex_unlock(&ctx->lock);
	/* As rdma-core: the attributes say what was granted. */
	attr->max_wr = srq->max_wr;
	attr->max_sge = srq->max_sge;
	return &srq->srq;

err_shm:
	vbg_shm_free(&srq->shm);
err_free:
	free(srq);
	errno = err;
	return NULL;
}

VBG_EXPORT struct ibv_srq *ibv_create_srq(struct ibv_pd *pd, struct ibv_srq_init_attr *a)
{
	if (!vbg_is_context(pd->context))
		return vbg_real.create_srq(pd, a);
	return srq_create(pd, &a->attr, a->srq_context);
}

/* ibv_create_srq_ex: basic SRQs only (XRC and tag matching have no vrdma objects). */
struct ibv_srq *vbg_create_srq_ex(struct ibv_context *c, struct ibv_srq_init_attr_ex *a)
{
	uint32_t known = IBV_SRQ_INIT_ATTR_PD | IBV_SRQ_INIT_ATTR_TYPE;

	if ((a->comp_mask & ~known) ||
	    ((a->comp_mask & IBV_SRQ_INIT_ATTR_TYPE) && a->srq_type != IBV_SRQT_BASIC)) {
		errno = EOPNOTSUPP;
		return NULL;
	}
	if (!(a->comp_mask & IBV_SRQ_INIT_ATTR_PD) || !a->pd || a->pd->context != c) {
		errno = EINVAL;
		return NULL;
	}
	return srq_create(a->pd, &a->attr, a->srq_context);
}

VBG_EXPORT int ibv_modify_srq(struct ibv_srq *s, struct ibv_srq_attr *a, int mask)
{
	struct vbg_srq *srq = to_vsrq(s);
	struct vrdma_modify_srq_in in = { 0 };
	int err;

	if (!vbg_is_context(s->context))
		return vbg_real.modify_srq(s, a, mask);
	if (mask & ~(IBV_SRQ_MAX_WR | IBV_SRQ_LIMIT))
		return EINVAL;
	in.handle = htole32(srq->handle);
	in.attr_mask = htole32((uint32_t)mask);
	if (mask & IBV_SRQ_MAX_WR)
		in.attr.max_wr = htole32(a->max_wr);
	if (mask & IBV_SRQ_LIMIT)
		in.attr.srq_limit = htole32(a->srq_limit);
	err = vbg_call(to_vctx(s->context), VRDMA_FN_MODIFY_SRQ, &in, sizeof(in), NULL, 0);
	if (err)
		return -err;
	if (mask & IBV_SRQ_MAX_WR)
		__atomic_store_n(&srq->max_wr, a->max_wr, __ATOMIC_RELAXED);
	return 0;
}

VBG_EXPORT int ibv_query_srq(struct ibv_srq *s, struct ibv_srq_attr *a)
{
	struct vbg_srq *srq = to_vsrq(s);
	struct vrdma_handle h;
	struct vrdma_srq_attr o;
	int err;

	if (!vbg_is_context(s->context))
		return vbg_real.query_srq(s, a);
	h = (struct vrdma_handle){ .handle = htole32(srq->handle) };
	err = vbg_call(to_vctx(s->context), VRDMA_FN_QUERY_SRQ, &h, sizeof(h), &o, sizeof(o));
	if (err)
		return -err;
	a->max_wr = le32toh(o.max_wr);
	a->max_sge = le32toh(o.max_sge);
	a->srq_limit = le32toh(o.srq_limit);
	return 0;
}

VBG_EXPORT int ibv_destroy_srq(struct ibv_srq *s)
{
	struct vbg_srq *srq = to_vsrq(s);
	struct vbg_context *ctx;
	struct vrdma_handle h;
	int err;

	if (!vbg_is_context(s->context))
		return vbg_real.destroy_srq(s);
	ctx = to_vctx(s->context);
	h = (struct vrdma_handle){ .handle = htole32(srq->handle) };
	err = vbg_call(ctx, VRDMA_FN_DESTROY_SRQ, &h, sizeof(h), NULL, 0);
	if (err)
		return -err;	/* EBUSY while QPs use it, as a device */
	pthread_mutex_lock(&ctx->lock);
	for (struct vbg_srq **pp = &ctx->srqs; *pp; pp = &(*pp)->ctx_next)
		if (*pp == srq) {
			*pp = srq->ctx_next;
			break;
		}
	pthread_mutex_unlock(&ctx->lock);
	vbg_shm_free(&srq->shm);
	pthread_spin_destroy(&srq->lock);
	free(srq);
	return 0;
}

/* The SRQ of handle h on ctx, or NULL. Under ctx->lock. */
struct vbg_srq *vbg_srq_lookup(struct vbg_context *ctx, uint32_t h)
{
	for (struct vbg_srq *srq = ctx->srqs; srq; srq = srq->ctx_next)
		if (srq->handle == h)
			return srq;
	return NULL;
}
