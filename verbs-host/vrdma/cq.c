// SPDX-License-Identifier: MIT
/* Completion queues: a real CQ in the guest's context and a completion ring in guest
 * memory that the relay fills, never with more than the ring has room for. */
#include <endian.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include "vrdma.h"

void vrdma_cq_free(struct vrdma_guest *g, struct vrdma_cq *cq)
{
	if (cq->cq)
		ibv_destroy_cq(cq->cq);
	vrdma_hq_unmap(g, &cq->q);
	if (cq->channel_held)
		g->env->signal_put(g->env_priv, cq->channel);
	free(cq);
}

int vrdma_do_create_cq(struct vrdma_guest *g, const void *in, size_t inlen, void *out)
{
	const struct vrdma_create_cq_in *i = in;
	struct vrdma_create_cq_out *o = out;
	uint32_t cqe = le32toh(i->cqe), entries = le32toh(i->entries);
	uint32_t vec = le32toh(i->comp_vector);
	struct vrdma_cq *cq;
	uint32_t h;
	int err;

	if (i->reserved || !cqe || entries < cqe || vec >= (uint32_t)g->ctx->num_comp_vectors)
		return -EINVAL;
	cq = calloc(1, sizeof(*cq));
	if (!cq)
		return -ENOMEM;
	err = vrdma_hq_map(g, &cq->q, le32toh(i->shm), le64toh(i->offset), entries,
			   sizeof(struct vrdma_cqe), sizeof(struct vrdma_cqe));
	if (err)
		goto err_free;
	cq->channel = le32toh(i->channel);
	if (cq->channel && g->env->signal_hold) {
		err = g->env->signal_hold(g->env_priv, cq->channel);
		if (err)
			goto err_destroy;
		cq->channel_held = true;
	}
	cq->cq = ibv_create_cq(g->ctx, (int)cqe, cq, g->chan, (int)vec);
	if (!cq->cq) {
		err = errno ? -errno : -EINVAL;
		goto err_destroy;
	}
	/* The ring must hold whatever the real CQ can: overrun then behaves as natively. */
	err = -EINVAL;
	if ((uint32_t)cq->cq->cqe > entries)
		goto err_destroy;
	err = vrdma_handle_new(g, VRDMA_OBJ_CQ, cq, &h);
	if (err)
		goto err_destroy;
	cq->handle = h;
	__atomic_store_n(&cq->q.ring->prod, 0, __ATOMIC_RELEASE);
	vrdma_sched_add(g, &cq->q, VRDMA_QK_CQ, false);
	o->handle = htole32(h);
	o->cqe = htole32((uint32_t)cq->cq->cqe);
	return 0;

err_destroy:
	vrdma_cq_free(g, cq);
	return err;
err_free:
	free(cq);
	return err;
}

int vrdma_do_destroy_cq(struct vrdma_guest *g, const void *in, size_t inlen, void *out)
{
	const struct vrdma_handle *i = in;
	uint32_t h = le32toh(i->handle);
	struct vrdma_cq *cq;
	int err = 0;

	if (i->reserved)
		return -EINVAL;

	cq = vrdma_handle_get(g, h, VRDMA_OBJ_CQ, &err);
	if (!cq)
		return err;
	if (vrdma_handle_obj(g, h)->users)
		return -EBUSY;
	vrdma_cq_free(g, cq);
	vrdma_handle_free(g, h);
	return 0;
}

/* The new ring takes the completions the guest has not consumed, at its start; the old
 * one is forgotten. The guest does not poll meanwhile (it holds its CQ's lock). */
int vrdma_do_resize_cq(struct vrdma_guest *g, const void *in, size_t inlen, void *out)
{
	const struct vrdma_resize_cq_in *i = in;
	struct vrdma_create_cq_out *o = out;
	uint32_t cqe = le32toh(i->cqe), entries = le32toh(i->entries), used, old_cqe;
	struct vrdma_hq nq;
	struct vrdma_cq *cq;
	int err = 0, r;

	cq = vrdma_handle_get(g, le32toh(i->handle), VRDMA_OBJ_CQ, &err);
	if (!cq)
		return err;
	if (!cqe || entries < cqe || cq->q.broken)
		return -EINVAL;
	err = vrdma_hq_map(g, &nq, le32toh(i->shm), le64toh(i->offset), entries,
			   sizeof(struct vrdma_cqe), sizeof(struct vrdma_cqe));
	if (err)
		return err;
	/* Acquire pairs with the guest's release of cons after its last copy. */
	used = cq->q.cons - le32toh(__atomic_load_n(&cq->q.ring->cons, __ATOMIC_ACQUIRE));
	err = -EINVAL;	/* a broken index, or more completions than the new size */
	if (used > cq->q.entries || used > cqe)
		goto err_unmap;
	old_cqe = (uint32_t)cq->cq->cqe;
	r = ibv_resize_cq(cq->cq, (int)cqe);
	err = -r;
	if (r)
		goto err_unmap;
	if ((uint32_t)cq->cq->cqe > entries) {	/* the ring must hold the real CQ */
		ibv_resize_cq(cq->cq, (int)old_cqe);
		err = -EINVAL;
		goto err_unmap;
	}
	for (uint32_t k = 0; k < used; k++) {
		uint32_t from = cq->q.cons - used + k;

		memcpy(nq.slots + (size_t)k * nq.stride,
		       cq->q.slots + (size_t)(from & (cq->q.entries - 1)) * cq->q.stride,
		       sizeof(struct vrdma_cqe));
	}
	nq.cons = used;
	__atomic_store_n(&nq.ring->cons, 0, __ATOMIC_RELAXED);
	__atomic_store_n(&nq.ring->armed, __atomic_load_n(&cq->q.ring->armed, __ATOMIC_RELAXED),
			 __ATOMIC_RELAXED);
	/* Release: the completions are in place before the guest reads prod. */
	__atomic_store_n(&nq.ring->prod, htole32(used), __ATOMIC_RELEASE);
	vrdma_hq_unmap(g, &cq->q);	/* off the relay's schedule too */
	cq->q = nq;
	vrdma_sched_add(g, &cq->q, VRDMA_QK_CQ, false);
	o->handle = htole32(cq->handle);
	o->cqe = htole32((uint32_t)cq->cq->cqe);
	return 0;

err_unmap:
	vrdma_hq_unmap(g, &nq);
	return err;
}

int vrdma_do_arm_cq(struct vrdma_guest *g, const void *in, size_t inlen, void *out)
{
	const struct vrdma_arm_cq_in *i = in;
	uint32_t so = le32toh(i->solicited_only);
	struct vrdma_cq *cq;
	int err = 0;

	if (so > 1)
		return -EINVAL;
	cq = vrdma_handle_get(g, le32toh(i->handle), VRDMA_OBJ_CQ, &err);
	if (!cq)
		return err;
	return -ibv_req_notify_cq(cq->cq, (int)so);
}
