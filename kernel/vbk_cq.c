// SPDX-License-Identifier: GPL-2.0
/*
 * Completion queues: a kernel CQ and a completion ring in the guest's memory that the
 * module fills (vbk_poll.c). The guest's CQ holds cqe completions, what rxe gave the real
 * CQ when it was made that size; the ring holds at least that many. The real CQ then grows
 * by the depth of each queue that completes into it (vbk_cq_grow), so that rxe never loses
 * a completion there: what the guest's CQ has no room for is lost by the module, which
 * retires its WQE as rxe does (the slot is free again) and does what rxe does on an
 * overrun (vbk_poll.c).
 *
 * When an overrun happens matters (IBV_EVENT_CQ_ERR comes then, a receive's QP goes to
 * ERR then), so a CQ that may overrun is pushed: while what waits in its ring and what its
 * QPs' posted WQEs can still bring exceed cqe (pending, counted by the doorbell and the
 * move), its real CQ is armed and its completions are moved as they come, by the
 * attachment's completion worker (vbk_foreign.c), as a foreign attachment's always are.
 * Otherwise the guest polls: an armed CQ's completion handler only signals the guest's
 * completion channel (an eventfd of the guest); it runs in softirq context and touches
 * nothing else.
 */
#include <linux/eventfd.h>
#include <linux/slab.h>
#include "vbk.h"

static void cq_event(struct ib_event *ev, void *ctx)
{
	struct vbk_cq *cq = ctx;

	vbk_event(cq->g, ev->event, READ_ONCE(cq->handle), 0);
}

/*
 * The real CQ got a completion while armed. The guest armed its ring too (ring->armed,
 * set before its ARM_CQ call); taking that flag back says "fired" to the guest library, as
 * the relay does, and the channel is kicked. Softirq context; q.lock keeps a resize from
 * swapping the ring meanwhile.
 */
void vbk_cq_comp(struct ib_cq *ibcq, void *ctx)
{
	struct vbk_cq *cq = ctx;
	bool fire;

	if (cq->g->foreign) {
		vbk_foreign_cq_kick(cq);
		return;
	}
	/* Pushed: the worker moves it; the channel is signalled here all the same (a poll
	 * may move it first, and the worker then moves nothing and signals nothing).
	 */
	if (atomic_read(&cq->push))
		vbk_foreign_cq_kick(cq);
	if (!cq->channel)
		return;
	spin_lock(&cq->q.lock);
	fire = cq->q.ring && xchg(&cq->q.ring->armed, 0);
	spin_unlock(&cq->q.lock);
	if (fire)
		eventfd_signal(cq->channel, 1);
}

/* The guest armed the ring (ring->armed, any value) and a completion came: take the flag
 * back (which says "fired" to the guest library, as vbk_cq_comp does) and signal.
 */
void vbk_cq_fire(struct vbk_cq *cq)
{
	bool fire;

	spin_lock_bh(&cq->q.lock);
	/* A full barrier: pairs with the guest's seq_cst exchange of armed before it reads
	 * prod again; our release of prod (vbk_cq_move) came before it.
	 */
	fire = cq->q.ring && xchg(&cq->q.ring->armed, 0);
	spin_unlock_bh(&cq->q.lock);
	if (fire)
		eventfd_signal(cq->channel, 1);
}

/* Whether cq's guest CQ may overrun: what waits in its ring and what its queues' posted
 * WQEs can still bring exceed cqe. Read without the ring's lock: a hint.
 */
static bool at_risk(struct vbk_cq *cq)
{
	u32 used = READ_ONCE(cq->q.idx) - le32_to_cpu(READ_ONCE(cq->q.ring->cons));
	int pending = atomic_read(&cq->pending);

	return used > cq->cqe || (pending > 0 && (u64)used + (u32)pending > cq->cqe);
}

/* After a doorbell posted on cq's queues (or a resize): pushed from now on if it may
 * overrun. Under tbl read or ctl (the ring stays put).
 */
void vbk_cq_watch(struct vbk_cq *cq)
{
	if (cq->g->foreign || atomic_read(&cq->push) || !at_risk(cq) ||
	    atomic_xchg(&cq->push, 1))
		return;
	if (vbk_foreign_cq_arm(cq))
		atomic64_inc(&cq->g->n_error);
}

/* The worker moved cq's completions: whether it stays pushed (its real CQ re-armed).
 * Cleared first and looked at again, so that a doorbell racing with it either sees push
 * clear and arms, or is seen here.
 */
bool vbk_cq_keep_push(struct vbk_cq *cq)
{
	if (at_risk(cq))
		return true;
	atomic_xchg(&cq->push, 0);	/* a full barrier: pairs with the doorbell's */
	return at_risk(cq) && !atomic_xchg(&cq->push, 1);
}

/* WQEs of cq's queues retired: a queue's count went from before to now (in order). */
void vbk_cq_retire(struct vbk_cq *cq, u32 before, u32 now)
{
	if ((s32)(now - before) > 0)
		atomic_sub((int)(now - before), &cq->pending);
}

/* The real CQ's size for a guest's CQ of cqe whose queues can complete need more. */
static int real_size(struct vbk_guest *g, u32 cqe, u32 need)
{
	return (int)min_t(u64, (u64)cqe + need, (u32)g->dev->attrs.max_cqe);
}

/*
 * A queue of depth WQEs completes into cq: the real CQ grows to hold its completions
 * beside the guest's cqe, up to the device's max_cqe (kernel memory, not charged to the
 * guest: a few times what the queue's ring is charged). A resize that fails leaves it as
 * it was (rxe may then lose completions there, and their WQEs' slots, as before stop 40).
 * Under ctl.
 */
void vbk_cq_grow(struct vbk_guest *g, struct vbk_cq *cq, u32 depth)
{
	int want;

	cq->need += depth;
	want = real_size(g, cq->cqe, cq->need);
	if (want > cq->cq->cqe && ib_resize_cq(cq->cq, want))
		atomic64_inc(&g->n_error);
}

/* A queue of depth WQEs is gone: the real CQ keeps its size (the next growth or resize
 * counts without it). Under ctl.
 */
void vbk_cq_shrink(struct vbk_cq *cq, u32 depth)
{
	cq->need -= min(depth, cq->need);
}

void vbk_cq_free(struct vbk_guest *g, struct vbk_cq *cq)
{
	vbk_foreign_cq_unlist(cq);	/* the worker never sees it again */
	if (cq->cq)
		ib_destroy_cq(cq->cq);
	if (cq->channel)
		eventfd_ctx_put(cq->channel);
	vbk_queue_unmap(g, &cq->q);
	kfree(cq);
}

int vbk_do_create_cq(struct vbk_guest *g, const void *in, u32 inlen, void *out)
{
	const struct vrdma_create_cq_in *i = in;
	struct vrdma_create_cq_out *o = out;
	u32 cqe = le32_to_cpu(i->cqe), entries = le32_to_cpu(i->entries);
	u32 vec = le32_to_cpu(i->comp_vector), chan = le32_to_cpu(i->channel), h;
	struct ib_cq_init_attr ca = { .cqe = cqe, .comp_vector = vec };
	struct vbk_cq *cq;
	int err;

	if (i->reserved || !cqe || cqe > VBK_MAX_QUEUE || entries < cqe ||
	    vec >= g->dev->num_comp_vectors)
		return -EINVAL;
	cq = kzalloc(sizeof(*cq), GFP_KERNEL);
	if (!cq)
		return -ENOMEM;
	cq->g = g;
	INIT_LIST_HEAD(&cq->comp_node);
	err = vbk_queue_map(g, &cq->q, le32_to_cpu(i->shm), le64_to_cpu(i->offset), entries,
			    sizeof(struct vrdma_cqe), sizeof(struct vrdma_cqe));
	if (err)
		goto err_free;
	if (chan) {
		cq->channel = eventfd_ctx_fdget((int)(chan - 1));
		if (IS_ERR(cq->channel)) {
			err = PTR_ERR(cq->channel);
			cq->channel = NULL;
			goto err_destroy;
		}
	}
	cq->cq = ib_create_cq(g->dev, vbk_cq_comp, cq_event, cq, &ca);
	if (IS_ERR(cq->cq)) {
		err = PTR_ERR(cq->cq);
		cq->cq = NULL;
		goto err_destroy;
	}
	err = -EINVAL;	/* the ring must hold whatever the real CQ can */
	if ((u32)cq->cq->cqe > entries)
		goto err_destroy;
	cq->cqe = cq->cq->cqe;
	/* Release: an empty ring before the guest sees the CQ's handle. */
	smp_store_release(&cq->q.ring->prod, 0);
	if (g->foreign) {	/* completions are pushed: armed from the start */
		err = vbk_foreign_cq_arm(cq);
		if (err)
			goto err_destroy;
	}
	err = vbk_obj_new(g, VBK_OBJ_CQ, cq, &h);
	if (err)
		goto err_destroy;
	WRITE_ONCE(cq->handle, h);
	o->handle = cpu_to_le32(h);
	o->cqe = cpu_to_le32(cq->cqe);
	return 0;

err_destroy:
	vbk_cq_free(g, cq);
	return err;
err_free:
	kfree(cq);
	return err;
}

int vbk_do_destroy_cq(struct vbk_guest *g, const void *in, u32 inlen, void *out)
{
	const struct vrdma_handle *i = in;
	u32 h = le32_to_cpu(i->handle);
	struct vbk_cq *cq;
	int err;

	if (i->reserved)
		return -EINVAL;
	cq = vbk_obj_get(g, h, VBK_OBJ_CQ, &err);
	if (!cq)
		return err;
	if (vbk_obj_slot(g, h)->users)
		return -EBUSY;
	vbk_obj_free(g, h);
	vbk_cq_free(g, cq);
	return 0;
}

/* The new ring takes the completions the guest has not consumed, at its start. The data
 * path is held off (tbl) for the whole call, so no poll moves completions meanwhile.
 */
int vbk_do_resize_cq(struct vbk_guest *g, const void *in, u32 inlen, void *out)
{
	const struct vrdma_resize_cq_in *i = in;
	struct vrdma_create_cq_out *o = out;
	u32 cqe = le32_to_cpu(i->cqe), entries = le32_to_cpu(i->entries), used, k;
	struct vbk_queue nq;
	struct vbk_cq *cq;
	struct ib_cq_init_attr ca = { .cqe = cqe };
	int err, new_cqe;
	long moved = 0;
	struct ib_cq *tmp;

	cq = vbk_obj_get(g, le32_to_cpu(i->handle), VBK_OBJ_CQ, &err);
	if (!cq)
		return err;
	if (!cqe || cqe > VBK_MAX_QUEUE || entries < cqe || cq->q.broken)
		return -EINVAL;
	err = vbk_queue_map(g, &nq, le32_to_cpu(i->shm), le64_to_cpu(i->offset), entries,
			    sizeof(struct vrdma_cqe), sizeof(struct vrdma_cqe));
	if (err)
		return err;
	down_write(&g->tbl);
	/* What the real CQ holds first (natively in the CQ too: rxe refuses a size below
	 * what it holds), then what waits in the ring. A pushed CQ's worker, kicked for
	 * those, then finds nothing to move: the channel is signalled below instead.
	 */
	moved = vbk_cq_move(g, cq);
	/* Acquire pairs with the guest's release of cons after its last copy. */
	used = cq->q.idx - le32_to_cpu(smp_load_acquire(&cq->q.ring->cons));
	err = -EINVAL;	/* a broken index, or more completions than the new size */
	if (used > cq->q.entries || used > cqe)
		goto err_unlock;
	/* What rxe gives a CQ of cqe, learnt from one made for that (the guest's CQ holds
	 * it, as natively); the real CQ is resized once, to it and its queues' room.
	 */
	tmp = ib_create_cq(g->dev, NULL, NULL, NULL, &ca);
	if (IS_ERR(tmp)) {
		err = PTR_ERR(tmp);
		goto err_unlock;
	}
	new_cqe = tmp->cqe;
	ib_destroy_cq(tmp);
	err = -EINVAL;
	if (new_cqe <= 0 || (u32)new_cqe > entries)
		goto err_unlock;
	err = ib_resize_cq(cq->cq, real_size(g, new_cqe, cq->need));
	if (err)
		goto err_unlock;
	cq->cqe = new_cqe;	/* no move runs: tbl is ours */
	for (k = 0; k < used; k++) {
		u32 from = cq->q.idx - used + k;

		memcpy(nq.slots + (size_t)k * nq.stride,
		       cq->q.slots + (size_t)(from & (cq->q.entries - 1)) * cq->q.stride,
		       sizeof(struct vrdma_cqe));
	}
	nq.idx = used;
	WRITE_ONCE(nq.ring->cons, 0);
	WRITE_ONCE(nq.ring->armed, READ_ONCE(cq->q.ring->armed));
	/* Release: the completions are in place before the guest reads prod. */
	smp_store_release(&nq.ring->prod, cpu_to_le32(used));
	spin_lock_bh(&cq->q.lock);	/* against the completion handler */
	swap(cq->q.ring, nq.ring);
	swap(cq->q.slots, nq.slots);
	swap(cq->q.entries, nq.entries);
	swap(cq->q.pages, nq.pages);
	swap(cq->q.npages, nq.npages);
	swap(cq->q.vaddr, nq.vaddr);
	cq->q.idx = nq.idx;
	spin_unlock_bh(&cq->q.lock);
	up_write(&g->tbl);
	vbk_queue_unmap(g, &nq);	/* now the old ring */
	vbk_cq_watch(cq);	/* a smaller cqe may overrun sooner (ctl: no other resize) */
	if (moved && cq->channel)
		vbk_cq_fire(cq);	/* the guest's arming, on the new ring */
	o->handle = cpu_to_le32(cq->handle);
	o->cqe = cpu_to_le32(cq->cqe);
	return 0;

err_unlock:
	up_write(&g->tbl);
	vbk_queue_unmap(g, &nq);
	if (moved > 0 && cq->channel)
		vbk_cq_fire(cq);	/* what the move brought, in the old ring */
	return err;
}

int vbk_do_arm_cq(struct vbk_guest *g, const void *in, u32 inlen, void *out)
{
	const struct vrdma_arm_cq_in *i = in;
	u32 so = le32_to_cpu(i->solicited_only);
	struct vbk_cq *cq;
	int err;

	if (so > 1)
		return -EINVAL;
	cq = vbk_obj_get(g, le32_to_cpu(i->handle), VBK_OBJ_CQ, &err);
	if (!cq)
		return err;
	/* Foreign: the real CQ is armed already, and re-arming it solicited-only would lose
	 * the completions nobody polls for; the worker looks at the CQ again instead.
	 */
	if (g->foreign) {
		vbk_foreign_cq_kick(cq);
		return 0;
	}
	err = ib_req_notify_cq(cq->cq, so ? IB_CQ_SOLICITED : IB_CQ_NEXT_COMP);
	return err < 0 ? err : 0;
}
