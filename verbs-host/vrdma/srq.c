// SPDX-License-Identifier: MIT
/*
 * Shared receive queues: a real SRQ in the guest's own PD, fed by the relay from a receive
 * ring in guest memory (docs/vrdma.md, "Shared receive queues"). The ring is sized by the
 * guest before the host answers; the host grants no more WQEs than it holds, and keeps
 * the guest's wr_ids in a slot table of its own, one slot per WQE the real SRQ holds.
 */
#include <endian.h>
#include <errno.h>
#include <stdlib.h>
#include "vrdma.h"

void vrdma_srq_free(struct vrdma_guest *g, struct vrdma_srq *srq)
{
	ibv_destroy_srq(srq->srq);
	vrdma_hq_unmap(g, &srq->q);
	free(srq->wrid);
	free(srq->free);
	free(srq);
}

static void attr_out(struct vrdma_srq_attr *o, uint32_t max_wr, uint32_t max_sge,
		     uint32_t limit)
{
	o->max_wr = htole32(max_wr);
	o->max_sge = htole32(max_sge);
	o->srq_limit = htole32(limit);
	o->reserved = 0;
}

int vrdma_do_create_srq(struct vrdma_guest *g, const void *in, size_t inlen, void *out)
{
	const struct vrdma_create_srq_in *i = in;
	struct vrdma_create_srq_out *o = out;
	struct ibv_srq_init_attr ia = { 0 };
	uint32_t pdh = le32toh(i->pd), entries = le32toh(i->entries);
	uint32_t stride = le32toh(i->stride), room, h;
	struct vrdma_srq *srq;
	struct vrdma_pd *pd;
	int err = 0;

	if (i->attr.reserved)
		return -EINVAL;
	pd = vrdma_handle_get(g, pdh, VRDMA_OBJ_PD, &err);
	if (!pd)
		return err;
	ia.attr.max_wr = le32toh(i->attr.max_wr);
	ia.attr.max_sge = le32toh(i->attr.max_sge);
	ia.attr.srq_limit = le32toh(i->attr.srq_limit);
	room = stride > sizeof(struct vrdma_rwqe) ?
		(stride - sizeof(struct vrdma_rwqe)) / sizeof(struct vrdma_sge) : 0;
	if (!ia.attr.max_wr || ia.attr.max_wr > entries || ia.attr.max_sge > room ||
	    ia.attr.max_sge > VRDMA_MAX_SGE || ia.attr.max_wr > VRDMA_MAX_QUEUE)
		return -EINVAL;
	srq = calloc(1, sizeof(*srq));
	if (!srq)
		return -ENOMEM;
	err = vrdma_hq_map(g, &srq->q, le32toh(i->shm), le64toh(i->offset), entries, stride,
			   sizeof(struct vrdma_rwqe));
	if (err)
		goto err_free;
	ia.srq_context = srq;	/* async events find the SRQ through it */
	srq->srq = ibv_create_srq(pd->pd, &ia);
	if (!srq->srq) {
		err = errno ? -errno : -EINVAL;
		goto err_free;
	}
	/* What the device granted (a query tells: rxe rounds up, and create does not say),
	 * no more than the ring holds. */
	ibv_query_srq(srq->srq, &ia.attr);
	srq->max_wr = ia.attr.max_wr < entries ? ia.attr.max_wr : entries;
	srq->max_sge = ia.attr.max_sge < room ? ia.attr.max_sge : room;
	srq->wrid = calloc(entries, sizeof(*srq->wrid));
	srq->free = calloc(entries, sizeof(*srq->free));
	err = -ENOMEM;
	if (!srq->wrid || !srq->free)
		goto err_destroy;
	for (uint32_t k = 0; k < entries; k++)
		srq->free[k] = entries - 1 - k;
	srq->nfree = entries;
	err = vrdma_handle_new(g, VRDMA_OBJ_SRQ, srq, &h);
	if (err)
		goto err_destroy;
	srq->handle = h;
	srq->pd = pdh;
	vrdma_handle_obj(g, pdh)->users++;
	__atomic_store_n(&srq->q.ring->cons, 0, __ATOMIC_RELEASE);
	__atomic_store_n(&srq->q.ring->retired, 0, __ATOMIC_RELEASE);
	/* As a new QP's queues: the relay may be asleep and does not know this ring yet. */
	__atomic_store_n(&srq->q.ring->flags, htole32(VRDMA_RING_NEED_WAKEUP), __ATOMIC_SEQ_CST);
	vrdma_sched_add(g, &srq->q, VRDMA_QK_SRQ, true);
	o->handle = htole32(h);
	attr_out(&o->attr, srq->max_wr, srq->max_sge, ia.attr.srq_limit);
	return 0;

err_destroy:
	ibv_destroy_srq(srq->srq);
err_free:
	vrdma_hq_unmap(g, &srq->q);
	free(srq->wrid);
	free(srq->free);
	free(srq);
	return err;
}

int vrdma_do_modify_srq(struct vrdma_guest *g, const void *in, size_t inlen, void *out)
{
	const struct vrdma_modify_srq_in *i = in;
	uint32_t mask = le32toh(i->attr_mask);
	struct ibv_srq_attr a = {
		.max_wr = le32toh(i->attr.max_wr), .srq_limit = le32toh(i->attr.srq_limit),
	};
	struct vrdma_srq *srq;
	int err = 0, r;

	srq = vrdma_handle_get(g, le32toh(i->handle), VRDMA_OBJ_SRQ, &err);
	if (!srq)
		return err;
	if (i->attr.reserved || (mask & ~(uint32_t)(IBV_SRQ_MAX_WR | IBV_SRQ_LIMIT)))
		return -EINVAL;
	/* A deeper SRQ needs a bigger ring than the guest made at creation. */
	if ((mask & IBV_SRQ_MAX_WR) && (!a.max_wr || a.max_wr > srq->q.entries))
		return -EINVAL;
	r = ibv_modify_srq(srq->srq, &a, (int)mask);
	if (r)
		return -r;
	if (mask & IBV_SRQ_MAX_WR)
		srq->max_wr = a.max_wr;
	return 0;
}

int vrdma_do_query_srq(struct vrdma_guest *g, const void *in, size_t inlen, void *out)
{
	const struct vrdma_handle *i = in;
	struct ibv_srq_attr a;
	struct vrdma_srq *srq;
	int err = 0, r;

	if (i->reserved)
		return -EINVAL;

	srq = vrdma_handle_get(g, le32toh(i->handle), VRDMA_OBJ_SRQ, &err);
	if (!srq)
		return err;
	r = ibv_query_srq(srq->srq, &a);
	if (r)
		return -r;
	attr_out(out, srq->max_wr, srq->max_sge, a.srq_limit);
	return 0;
}

int vrdma_do_destroy_srq(struct vrdma_guest *g, const void *in, size_t inlen, void *out)
{
	const struct vrdma_handle *i = in;
	uint32_t h = le32toh(i->handle);
	struct vrdma_srq *srq;
	int err = 0;

	if (i->reserved)
		return -EINVAL;

	srq = vrdma_handle_get(g, h, VRDMA_OBJ_SRQ, &err);
	if (!srq)
		return err;
	if (vrdma_handle_obj(g, h)->users)
		return -EBUSY;	/* QPs use it, as a device says */
	vrdma_handle_obj(g, srq->pd)->users--;
	vrdma_srq_free(g, srq);
	vrdma_handle_free(g, h);
	return 0;
}
