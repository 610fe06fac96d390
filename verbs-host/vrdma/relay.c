// SPDX-License-Identifier: MIT
/*
 * The relay: moves a guest's work requests from its shared-memory queues to the real QPs,
 * and real completions into its completion rings (docs/vrdma.md, "Data path").
 *
 * Every index read from guest memory is checked (prod - cons <= entries) and every slot is
 * copied out once before it is looked at, so a guest that scribbles on its queues only
 * breaks its own queue. The real QPs get wr_id = the relay's own sequence number (bit 63
 * set for receives, since flushed completions carry no valid opcode); the guest's wr_id
 * waits in a table until the completion comes. An SRQ's receives carry the SRQ's handle
 * and a slot of its table instead (vrdma.h, VRDMA_SRQ_WRID).
 */
#include <endian.h>
#include <errno.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include "vrdma.h"

#define BATCH 16

/* Acquire pairs with the guest's release store of `prod` after it wrote the slots. */
static uint32_t load_peer(const __le32 *p)
{
	return le32toh(__atomic_load_n(p, __ATOMIC_ACQUIRE));
}

/* Release orders our slot reads (or writes) before the index the guest will read. */
static void store_own(__le32 *p, uint32_t v)
{
	__atomic_store_n(p, htole32(v), __ATOMIC_RELEASE);
}

static void break_queue(struct vrdma_guest *g, struct vrdma_hq *q)
{
	q->broken = true;
	__atomic_fetch_or(&q->ring->flags, htole32(VRDMA_RING_BROKEN), __ATOMIC_RELEASE);
	g->n_relay_errors++;
}

/* A work queue broken by its guest, or whose real post failed: its real QP goes to the
 * error state, so that what was posted completes with flush errors instead of never, as
 * a device does with a QP whose WQE it cannot execute. */
static void break_wq(struct vrdma_guest *g, struct vrdma_qp *qp, struct vrdma_hq *q)
{
	struct ibv_qp_attr a = { .qp_state = IBV_QPS_ERR };

	if (q->broken)
		return;
	if (ibv_modify_qp(qp->qp, &a, IBV_QP_STATE))
		g->n_relay_errors++;
	break_queue(g, q);
	/* As a device reports a WQE it could not execute: the QP is in error, asynchronously. */
	if (g->env->event)
		g->env->event(g->env_priv, IBV_EVENT_QP_FATAL, qp->handle, 0);
}

/* The number of slots the guest has published, or -1 if its index is nonsense. Finding
 * work means the relay is awake: a NEED_WAKEUP left from creation is cleared. */
static int64_t pending(struct vrdma_hq *q)
{
	uint32_t avail = load_peer(&q->ring->prod) - q->cons;

	if (avail > q->entries)
		return -1;
	if (avail && (__atomic_load_n(&q->ring->flags, __ATOMIC_RELAXED) &
		      htole32(VRDMA_RING_NEED_WAKEUP)))
		__atomic_fetch_and(&q->ring->flags, htole32(~VRDMA_RING_NEED_WAKEUP),
				   __ATOMIC_RELAXED);
	return (int64_t)avail;
}

static bool sge_ok(uint32_t n, uint32_t max, size_t hdr, uint32_t stride)
{
	return n <= max && hdr + (size_t)n * sizeof(struct vrdma_sge) <= stride;
}

static void sges_in(struct ibv_sge *s, const struct vrdma_sge *v, uint32_t n)
{
	for (uint32_t k = 0; k < n; k++) {
		s[k].addr = le64toh(v[k].addr);
		s[k].length = le32toh(v[k].length);
		s[k].lkey = le32toh(v[k].lkey);
	}
}

/* The receive WQE in q's next slot, copied out once: its SGEs into sge, its wr_id into
 * *wr_id. The number of SGEs, or -1 if the WQE breaks the queue's rules. */
static int rwqe_in(struct vrdma_hq *q, uint32_t maxsge, struct ibv_sge *sge, uint64_t *wr_id)
{
	uint8_t slot[4096];
	struct vrdma_rwqe w;
	uint32_t ns;

	if (maxsge > VRDMA_MAX_SGE)
		maxsge = VRDMA_MAX_SGE;
	memcpy(slot, q->slots + (size_t)(q->cons & (q->entries - 1)) * q->stride, q->stride);
	memcpy(&w, slot, sizeof(w));
	ns = le32toh(w.num_sge);
	if (!sge_ok(ns, maxsge, sizeof(w), q->stride))
		return -1;
	sges_in(sge, (const struct vrdma_sge *)(slot + sizeof(w)), ns);
	*wr_id = le64toh(w.wr_id);
	return (int)ns;
}

static int drain_rq(struct vrdma_guest *g, struct vrdma_qp *qp, uint32_t max)
{
	struct vrdma_hq *q = &qp->rq;
	struct ibv_recv_wr wr[BATCH], *bad;
	struct ibv_sge sge[BATCH][VRDMA_MAX_SGE];
	uint32_t n = 0, moved = 0;
	int64_t avail = q->broken ? 0 : pending(q);

	if (avail < 0) {
		break_wq(g, qp, q);
		return 0;
	}
	while (avail > 0 && moved + n < max && qp->rposted - qp->rdone <= qp->rmask) {
		uint64_t wr_id;
		int ns = rwqe_in(q, le32toh(qp->cap.max_recv_sge), sge[n], &wr_id);

		if (ns < 0) {
			break_wq(g, qp, q);
			break;
		}
		wr[n] = (struct ibv_recv_wr){
			.wr_id = VRDMA_WRID_RECV | qp->rposted, .sg_list = sge[n], .num_sge = ns,
		};
		if (n)
			wr[n - 1].next = &wr[n];
		qp->rwrid[qp->rposted & qp->rmask] = wr_id;
		qp->rposted++;
		q->cons++;
		avail--;
		if (++n == BATCH || !avail || moved + n == max) {
			if (ibv_post_recv(qp->qp, wr, &bad))
				break_wq(g, qp, q);
			moved += n;
			n = 0;
		}
	}
	if (n && ibv_post_recv(qp->qp, wr, &bad))
		break_wq(g, qp, q);
	moved += n;
	store_own(&q->ring->cons, q->cons);
	return (int)moved;
}

/* An SRQ's ring broken by its guest, or whose real post failed: it takes no more work,
 * and the guest hears of it as of a device's SRQ error. */
static void break_srq(struct vrdma_guest *g, struct vrdma_srq *srq)
{
	if (srq->q.broken)
		return;
	break_queue(g, &srq->q);
	if (g->env->event)
		g->env->event(g->env_priv, IBV_EVENT_SRQ_ERR, srq->handle, 0);
}

/* An SRQ's WQEs go to the real SRQ while it has room (max_wr) and we have free slots
 * for their wr_ids; each real wr_id names the SRQ and the slot. */
static int drain_srq(struct vrdma_guest *g, struct vrdma_srq *srq, uint32_t max)
{
	struct vrdma_hq *q = &srq->q;
	struct ibv_recv_wr wr[BATCH], *bad;
	struct ibv_sge sge[BATCH][VRDMA_MAX_SGE];
	uint32_t n = 0, moved = 0;
	int64_t avail = q->broken ? 0 : pending(q);

	if (avail < 0) {
		break_srq(g, srq);
		return 0;
	}
	while (avail > 0 && moved + n < max && srq->nfree &&
	       q->entries - srq->nfree < srq->max_wr) {
		uint64_t wr_id;
		uint32_t slot;
		int ns = rwqe_in(q, srq->max_sge, sge[n], &wr_id);

		if (ns < 0) {
			break_srq(g, srq);
			break;
		}
		slot = srq->free[--srq->nfree];
		srq->wrid[slot] = wr_id;
		wr[n] = (struct ibv_recv_wr){
			.wr_id = VRDMA_SRQ_WRID(srq->handle, slot), .sg_list = sge[n], .num_sge = ns,
		};
		if (n)
			wr[n - 1].next = &wr[n];
		q->cons++;
		avail--;
		if (++n == BATCH || !avail || moved + n == max) {
			if (ibv_post_srq_recv(srq->srq, wr, &bad))
				break_srq(g, srq);
			moved += n;
			n = 0;
		}
	}
	if (n && ibv_post_srq_recv(srq->srq, wr, &bad))
		break_srq(g, srq);
	moved += n;
	store_own(&q->ring->cons, q->cons);
	return (int)moved;
}

/* A bind WQE: the window and the MR must be the guest's own (the kernel checks the rest:
 * PD, keys, access, range). Unbinding names no MR and a length of 0: rxe's provider reads
 * the MR's lkey all the same, so it gets a key-0 stand-in (the kernel reads the key only
 * for a length). The window goes to *bound: its rkey moves on once the WQE is posted. */
static bool bind_in(struct vrdma_guest *g, struct ibv_send_wr *r, const struct vrdma_swqe *w,
		    struct vrdma_mw **bound)
{
	static struct ibv_mr no_mr;	/* lkey 0, never written */
	uint32_t mrh = le32toh(w->bind_mr);
	struct vrdma_mw *mw;
	struct vrdma_mr *mr = NULL;
	int err;

	mw = vrdma_handle_get(g, le32toh(w->bind_mw), VRDMA_OBJ_MW, &err);
	if (!mw || (mrh && !(mr = vrdma_handle_get(g, mrh, VRDMA_OBJ_MR, &err))))
		return false;
	if (vrdma_wl_lacks(g, le32toh(w->bind_access))) {
		vrdma_refuse(g, "a bind's access flags", vrdma_wl_lacks(g, le32toh(w->bind_access)));
		return false;	/* what the whitelist lacks, as one that is not its own */
	}
	r->bind_mw.mw = mw->mw;
	r->bind_mw.rkey = le32toh(w->rkey);
	r->bind_mw.bind_info.mr = mr ? mr->mr : &no_mr;
	r->bind_mw.bind_info.addr = le64toh(w->remote_addr);
	r->bind_mw.bind_info.length = le64toh(w->compare_add);
	r->bind_mw.bind_info.mw_access_flags = le32toh(w->bind_access);
	*bound = mw;
	return true;
}

/* An atomic rxe's ibv_post_send refuses: misaligned, or into fewer than 8 bytes. */
static bool atomic_odd(const struct ibv_send_wr *r)
{
	uint64_t len = 0;

	if (r->opcode != IBV_WR_ATOMIC_CMP_AND_SWP && r->opcode != IBV_WR_ATOMIC_FETCH_AND_ADD)
		return false;
	for (int k = 0; k < r->num_sge; k++)
		len += r->sg_list[k].length;
	return (r->wr.atomic.remote_addr & 7) || len < 8;
}

/* Such an atomic, through the QP's ibv_wr_* interface, alone: onto the wire as a native
 * program's, whose responder NAKs it (IBV_WC_REM_INV_REQ_ERR, both QPs to ERR). */
static bool atomic_wr_api(struct ibv_qp_ex *x, const struct ibv_send_wr *r)
{
	ibv_wr_start(x);
	x->wr_id = r->wr_id;
	x->wr_flags = r->send_flags;
	if (r->opcode == IBV_WR_ATOMIC_CMP_AND_SWP)
		ibv_wr_atomic_cmp_swp(x, r->wr.atomic.rkey, r->wr.atomic.remote_addr,
				      r->wr.atomic.compare_add, r->wr.atomic.swap);
	else
		ibv_wr_atomic_fetch_add(x, r->wr.atomic.rkey, r->wr.atomic.remote_addr,
					r->wr.atomic.compare_add);
	ibv_wr_set_sge_list(x, (size_t)r->num_sge, r->sg_list);
	return !ibv_wr_complete(x);
}

/*
 * An atomic at a misaligned address, or into fewer than 8 bytes: a native program posting
 * it through the ibv_wr_* API gets it onto the wire and the responder's invalid-request NAK
 * back (IBV_WC_REM_INV_REQ_ERR, in order, the QP to ERR), but rxe's provider refuses it in
 * ibv_post_send. Where the real QP has an ibv_wr_* interface it goes through that
 * (atomic_wr_api); otherwise it goes as a one-byte WRITE from the poison byte
 * (vrdma.h), which the device refuses locally, in order, before anything is sent; its
 * completion reports native's status (cqe_out). The responder's QP stays as it was, where
 * natively the NAK moves it to ERR too (docs/verbs.md). True: r can be posted (as it
 * was, or as its stand-in); false: no poison byte to be had, or the QP was granted no SGE.
 */
static bool atomic_stand_in(struct vrdma_guest *g, struct ibv_send_wr *r, uint32_t maxsge)
{
	if (!atomic_odd(r))
		return true;
	if (!maxsge)
		return false;	/* the stand-in's one SGE is past what the QP was granted */
	if (!g->poison_mr) {
		g->poison_pd = g->poison_pd ? g->poison_pd : ibv_alloc_pd(g->ctx);
		g->poison_mr = g->poison_pd ? ibv_reg_mr(g->poison_pd, &g->poison, 1, 0) : NULL;
		if (!g->poison_mr)
			return false;
	}
	r->sg_list[0] = (struct ibv_sge){ .addr = (uintptr_t)&g->poison, .length = 1,
					  .lkey = g->poison_mr->lkey };
	r->num_sge = 1;
	r->opcode = IBV_WR_RDMA_WRITE;
	r->send_flags &= IBV_SEND_SIGNALED | IBV_SEND_FENCE;
	r->wr.rdma.remote_addr = 0;
	r->wr.rdma.rkey = 0;
	r->wr_id |= VRDMA_WRID_REFUSED;
	return true;
}

/*
 * Post a batch the relay has checked. Should the real post still fail part-way (the
 * device out of something), the WRs before the failing one are posted and the rest are
 * not: the QP goes to the error state (break_wq) and the rest are posted again there,
 * where the device completes each with a flush error, so that every WQE the guest posted
 * gets its completion (issue 12). True: all posted as they were.
 */
static bool post_sends(struct vrdma_guest *g, struct vrdma_qp *qp, struct ibv_send_wr *wr)
{
	struct ibv_send_wr *bad = NULL, *again = NULL;

	if (!ibv_post_send(qp->qp, wr, &bad))
		return true;
	break_wq(g, qp, &qp->sq);
	if (!bad || ibv_post_send(qp->qp, bad, &again))
		g->n_relay_errors++;	/* those from `again` on are lost: counted */
	return false;
}

#define FLAGS_ALLOWED (IBV_SEND_FENCE | IBV_SEND_SIGNALED | IBV_SEND_SOLICITED | IBV_SEND_INLINE)

/* The send WQE at the ring's cons is taken, posted as the real WR qp->sposted, which
 * names the guest's wr_id in swrid. */
static void sq_take(struct vrdma_qp *qp, uint64_t wr_id)
{
	qp->swrid[qp->sposted & qp->smask] = wr_id;
	qp->sposted++;
	qp->sq.cons++;
}

static int drain_sq(struct vrdma_guest *g, struct vrdma_qp *qp, uint32_t max)
{
	struct vrdma_hq *q = &qp->sq;
	struct ibv_send_wr wr[BATCH];
	struct ibv_sge sge[BATCH][VRDMA_MAX_SGE];
	uint8_t inl[BATCH][256];
	uint32_t maxsge = le32toh(qp->cap.max_send_sge), depth = le32toh(qp->cap.max_send_wr);
	uint32_t maxinl = le32toh(qp->cap.max_inline_data), n = 0, moved = 0;
	int64_t avail = q->broken ? 0 : pending(q);

	if (avail < 0) {
		break_wq(g, qp, q);
		return 0;
	}
	if (maxsge > VRDMA_MAX_SGE)
		maxsge = VRDMA_MAX_SGE;
	while (avail > 0 && moved + n < max && qp->sposted - qp->sretired < depth) {
		uint8_t slot[4096];
		struct vrdma_swqe w;
		uint32_t flags, ns;
		struct ibv_send_wr *r = &wr[n];
		struct vrdma_mw *bound = NULL;

		memcpy(slot, q->slots + (size_t)(q->cons & (q->entries - 1)) * q->stride, q->stride);
		memcpy(&w, slot, sizeof(w));
		flags = le32toh(w.send_flags);
		ns = w.num_sge;
		if (!vrdma_opcode_ok(qp->qp_type, w.opcode) || (flags & ~FLAGS_ALLOWED)) {
			break_wq(g, qp, q);
			break;
		}
		memset(r, 0, sizeof(*r));
		if (flags & IBV_SEND_INLINE) {
			uint32_t len = le16toh(w.inline_len);

			/* (inline data travels as one SGE: not on a QP granted none) */
			if (len > maxinl || sizeof(w) + len > q->stride || (len && !maxsge)) {
				break_wq(g, qp, q);
				break;
			}
			memcpy(inl[n], slot + sizeof(w), len);
			sge[n][0] = (struct ibv_sge){ .addr = (uintptr_t)inl[n], .length = len };
			r->num_sge = len ? 1 : 0;
		} else {
			if (!sge_ok(ns, maxsge, sizeof(w), q->stride)) {
				break_wq(g, qp, q);
				break;
			}
			sges_in(sge[n], (const struct vrdma_sge *)(slot + sizeof(w)), ns);
			r->num_sge = (int)ns;
		}
		r->wr_id = qp->sposted;
		r->sg_list = sge[n];
		r->opcode = w.opcode;
		r->send_flags = flags;
		r->imm_data = w.imm_data;
		if (w.opcode == IBV_WR_ATOMIC_CMP_AND_SWP || w.opcode == IBV_WR_ATOMIC_FETCH_AND_ADD) {
			r->wr.atomic.remote_addr = le64toh(w.remote_addr);
			r->wr.atomic.compare_add = le64toh(w.compare_add);
			r->wr.atomic.swap = le64toh(w.swap);
			r->wr.atomic.rkey = le32toh(w.rkey);
			if (qp->qpx && atomic_odd(r)) {
				/* after the batch before it, alone, through ibv_wr_* */
				bool ok = !n || post_sends(g, qp, wr);

				moved += n;
				n = 0;
				if (!ok)
					break;	/* the queue broke: nothing more is taken */
				sq_take(qp, le64toh(w.wr_id));
				avail--;
				moved++;
				r->send_flags &= IBV_SEND_SIGNALED | IBV_SEND_FENCE;
				if (!atomic_wr_api(qp->qpx, r)) {
					break_wq(g, qp, q);
					break;
				}
				continue;
			}
			if (!atomic_stand_in(g, r, maxsge)) {	/* no poison byte, or no SGE for it */
				break_wq(g, qp, q);
				break;
			}
		} else if (w.opcode == IBV_WR_BIND_MW) {
			if (!bind_in(g, r, &w, &bound)) {	/* not this guest's MW or MR */
				break_wq(g, qp, q);
				break;
			}
		} else if (qp->qp_type == IBV_QPT_UD) {
			int err = 0;
			struct vrdma_ah *ah = vrdma_handle_get(g, le32toh(w.ud_ah), VRDMA_OBJ_AH,
							       &err);

			if (!ah) {	/* not this guest's AH: the WQE cannot be executed */
				break_wq(g, qp, q);
				break;
			}
			r->wr.ud.ah = ah->ah;
			r->wr.ud.remote_qpn = le32toh(w.ud_remote_qpn);
			r->wr.ud.remote_qkey = le32toh(w.ud_remote_qkey);
		} else {
			r->wr.rdma.remote_addr = le64toh(w.remote_addr);
			r->wr.rdma.rkey = le32toh(w.rkey);
		}
		if (n)
			wr[n - 1].next = r;
		sq_take(qp, le64toh(w.wr_id));
		avail--;
		/* A bind goes at once: the provider reads the window's current rkey when it
		 * posts, and the window's next one is its new one (as ibv_bind_mw keeps it). */
		if (++n == BATCH || !avail || moved + n == max || bound) {
			if (post_sends(g, qp, wr) && bound)
				bound->mw->rkey = r->bind_mw.rkey;
			moved += n;
			n = 0;
		}
	}
	if (n)
		post_sends(g, qp, wr);
	moved += n;
	store_own(&q->ring->cons, q->cons);
	g->n_wqe += moved;
	return (int)moved;
}

/* An SRQ receive's completion: the guest's wr_id from the SRQ's slot, which is free again,
 * and one more of the SRQ's WQEs retired. The SRQ outlives its QPs (destroy is -EBUSY
 * while they use it); if the guest destroyed it since, the completion keeps no wr_id. */
static uint64_t srq_done(struct vrdma_guest *g, uint64_t real_wr_id)
{
	int err;
	uint32_t slot = real_wr_id & 0xffffff;
	struct vrdma_srq *srq = vrdma_handle_get(g, (uint32_t)(real_wr_id >> 24), VRDMA_OBJ_SRQ,
						 &err);

	if (!srq || slot >= srq->q.entries || srq->nfree >= srq->q.entries)
		return 0;
	srq->free[srq->nfree++] = slot;
	srq->done++;
	/* Release: the guest may reuse the depth once it sees this. */
	store_own(&srq->q.ring->retired, srq->done);
	return srq->wrid[slot];
}

static void cqe_out(struct vrdma_guest *g, struct vrdma_cqe *c, const struct ibv_wc *wc,
		    struct vrdma_qp *qp)
{
	bool recv = wc->wr_id & VRDMA_WRID_RECV;
	uint32_t seq = (uint32_t)wc->wr_id;

	memset(c, 0, sizeof(*c));
	c->status = htole32(wc->status);
	if ((wc->wr_id & VRDMA_WRID_REFUSED) && wc->status != IBV_WC_WR_FLUSH_ERR)
		c->status = htole32(IBV_WC_REM_INV_REQ_ERR);	/* native's NAK (atomic_stand_in) */
	c->opcode = htole32(wc->opcode);
	c->vendor_err = htole32(wc->vendor_err);
	c->byte_len = htole32(wc->byte_len);
	c->imm_data = wc->imm_data;
	c->qp_num = htole32(wc->qp_num);
	c->src_qp = htole32(wc->src_qp);
	c->wc_flags = htole32(wc->wc_flags);
	c->pkey_index = htole16(wc->pkey_index);
	c->slid = htole16(wc->slid);
	c->sl = wc->sl;
	c->dlid_path_bits = wc->dlid_path_bits;
	if (recv && (wc->wr_id & VRDMA_WRID_SRQ))
		c->wr_id = htole64(srq_done(g, wc->wr_id));
	if (!qp)
		return;
	c->qp_handle = htole32(qp->handle);
	if (recv) {
		if (wc->wr_id & VRDMA_WRID_SRQ)
			return;
		c->wr_id = htole64(qp->rwrid[seq & qp->rmask]);
		qp->rdone = seq + 1;
	} else {
		c->wr_id = htole64(qp->swrid[seq & qp->smask]);
		c->is_send = 1;
		/* The guest's depth check reads it too: a completion the guest's CQ loses to
		 * an overrun (overrun below) still frees its slot, as rxe frees it. Only a
		 * WQE this QP posted: a QP number rxe reused may still meet an old QP's. */
		if (seq - qp->sretired < qp->sposted - qp->sretired) {
			store_own(&qp->sq.ring->retired, seq + 1);
			qp->sretired = seq + 1;
		}
		c->sq_retired = htole32(seq + 1);
	}
}

/* Room in the completion ring, or -1 when the guest's index is nonsense. */
static int64_t cq_room(struct vrdma_hq *q)
{
	/* Acquire pairs with the guest's release of `cons` after it copied the CQEs out. */
	uint32_t used = q->cons - load_peer(&q->ring->cons);

	return used > q->entries ? -1 : (int64_t)(q->entries - used);
}

static int move_cqes(struct vrdma_guest *g, struct vrdma_cq *cq, uint32_t max, bool sweep);

/*
 * Before a guest's completion channel fires, every completion its device made earlier is
 * in the guest's rings, as with a device, whose CQs fill as it works. A program woken for
 * its receive CQ finds the send completion that came before (the peer's ACK precedes its
 * reply): perftest -e polls its send CQ once per answer and otherwise drifts until its send
 * queue is full. Parked CQs are polled too (their real CQs stay armed). This costs one
 * ibv_poll_cq per CQ of the guest per event delivered, the slow path.
 */
static void sweep_cqs(struct vrdma_guest *g, struct vrdma_cq *firing)
{
	static const enum vrdma_qstate lists[] = { VRDMA_QS_ACTIVE, VRDMA_QS_PARKED };

	for (size_t i = 0; i < sizeof(lists) / sizeof(lists[0]); i++) {
		struct vrdma_link *h = lists[i] == VRDMA_QS_ACTIVE ? &g->active[VRDMA_QK_CQ] :
								     &g->parked[VRDMA_QK_CQ];

		for (struct vrdma_link *l = h->next; l != h; l = l->next) {
			struct vrdma_hq *q = vrdma_container_of(l, struct vrdma_hq, link);

			if (q != &firing->q)
				move_cqes(g, vrdma_container_of(q, struct vrdma_cq, q),
					  VRDMA_RELAY_WEIGHT, false);
		}
	}
}

/*
 * The guest holds as many unpolled completions as its CQ has entries (cqe): natively the
 * next one overruns the CQ. So here: left in the real CQ, they would be lost only once it
 * filled too, a second CQ's worth later. As rxe does, the completion is lost, the CQ goes
 * on working, and a receive's QP goes to the error state (rxe's responder does that on a
 * receive CQ overflow; a send's QP stays as it is), with no QP event. IBV_EVENT_CQ_ERR:
 * rxe raises one per lost completion; here one per overrun, until the ring has room again
 * (a guest that neither polls nor reads its events must not have the relay, which serves
 * every guest, send it one event per completion). Each is still retired (its QP's or SRQ's
 * slot).
 */
static int overrun(struct vrdma_guest *g, struct vrdma_cq *cq, uint32_t max)
{
	struct ibv_wc wc[BATCH];
	struct vrdma_cqe lost;
	int n = ibv_poll_cq(cq->cq, max < BATCH ? (int)max : BATCH, wc);

	for (int k = 0; k < n; k++) {
		struct vrdma_qp *qp = vrdma_qpn_find(g, wc[k].qp_num);

		cqe_out(g, &lost, &wc[k], qp);
		g->n_cqe_lost++;
		if (qp && (wc[k].wr_id & VRDMA_WRID_RECV) && wc[k].status == IBV_WC_SUCCESS) {
			struct ibv_qp_attr a = { .qp_state = IBV_QPS_ERR };

			if (ibv_modify_qp(qp->qp, &a, IBV_QP_STATE))
				g->n_relay_errors++;
		}
	}
	if (n > 0 && !cq->overrun && g->env->event)
		g->env->event(g->env_priv, IBV_EVENT_CQ_ERR, cq->handle, 0);
	if (n > 0)
		cq->overrun = true;
	return n < 0 ? 0 : n;
}

static int move_cqes(struct vrdma_guest *g, struct vrdma_cq *cq, uint32_t max, bool sweep)
{
	struct vrdma_hq *q = &cq->q;
	uint32_t cqe = (uint32_t)cq->cq->cqe, used, armed;
	struct ibv_wc wc[BATCH];
	bool solicited = false;	/* a receive or an error among them */
	int64_t room;
	int n;

	if (q->broken)
		return 0;
	room = cq_room(q);
	if (room < 0) {
		break_queue(g, q);
		return 0;
	}
	/* The ring may have more entries than the CQ (a power of two, the CQ's size when it
	 * was larger): what the guest sees is the CQ's. */
	used = q->entries - (uint32_t)room;
	if (used >= cqe)
		return overrun(g, cq, max);
	cq->overrun = false;
	if (room > cqe - used)
		room = cqe - used;
	if (room > max)
		room = max;
	n = ibv_poll_cq(cq->cq, room < BATCH ? (int)room : BATCH, wc);
	if (n <= 0)
		return 0;
	for (int k = 0; k < n; k++) {
		struct vrdma_cqe *slot = (struct vrdma_cqe *)(q->slots +
			(size_t)(q->cons & (q->entries - 1)) * q->stride);

		cqe_out(g, slot, &wc[k], vrdma_qpn_find(g, wc[k].qp_num));
		solicited |= (wc[k].wr_id & VRDMA_WRID_RECV) || wc[k].status != IBV_WC_SUCCESS;
		q->cons++;
	}
	/* Release: the CQEs above are visible before the guest sees the new prod. */
	store_own(&q->ring->prod, q->cons);
	g->n_cqe += (uint64_t)n;
	/* Then the event: armed is read after prod is published (seq_cst pairs with the
	 * guest's store of armed followed by its re-check of prod). Armed for solicited
	 * completions only (2): rxe never fires that for a successful send's completion, and
	 * fires it for a receive that carried SE or was flushed; an ibv_wc does not say which
	 * receives carried SE, so any receive fires it, and any error completion too, as
	 * ibv_req_notify_cq(3) defines solicited (rxe does not for a send's: a spurious
	 * wake-up at most, which a program must take anyway). */
	armed = le32toh(__atomic_load_n(&q->ring->armed, __ATOMIC_SEQ_CST));
	if (!cq->channel || !armed || (armed == VRDMA_ARMED_SOLICITED && !solicited))
		return n;
	if (sweep)
		sweep_cqs(g, cq);
	if (__atomic_exchange_n(&q->ring->armed, 0, __ATOMIC_SEQ_CST))
		g->env->kick(g->env_priv, cq->channel);
	return n;
}

/*
 * Scheduling (docs/vrdma.md, "Scheduling"). A pass looks only at the guest's active
 * queues, so that its cost follows the work, not the objects the guest holds:
 *   - A queue found without work for park_ns (the relay's spin budget) is parked: a ring
 *     the guest produces into gets NEED_WAKEUP, so the guest kicks the doorbell when it
 *     next posts; a CQ gets its real CQ armed, so its next completion is an event on the
 *     guest's completion channel, which names the CQ. Both look once more after that
 *     (the classic race): work found keeps the queue active.
 *   - A kick makes the next pass look once at each parked ring of that guest (one load of
 *     its producer index; the doorbell does not say which ring), and those with work
 *     become active. A CQ event makes that CQ active. Neither costs the guest's budget.
 *   - Each kind of queue gets VRDMA_RELAY_WEIGHT per pass and guest (vrdma.h); a queue
 *     looked at goes to the tail of its list, so the next pass starts where this stopped.
 * Only a guest served by the relay thread (which reads its doorbell and CQ events) and,
 * for rings, with a doorbell parks by itself; vrdma_relay_need_wakeup parks any.
 */

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* Move entries of queue q, at most max (>= 1). */
static int visit(struct vrdma_guest *g, struct vrdma_hq *q, uint32_t max)
{
	switch (q->kind) {
	case VRDMA_QK_SRQ:
		return drain_srq(g, vrdma_container_of(q, struct vrdma_srq, q), max);
	case VRDMA_QK_RQ:
		return drain_rq(g, vrdma_container_of(q, struct vrdma_qp, rq), max);
	case VRDMA_QK_SQ:
		return drain_sq(g, vrdma_container_of(q, struct vrdma_qp, sq), max);
	default:
		return move_cqes(g, vrdma_container_of(q, struct vrdma_cq, q), max, true);
	}
}

static void set_state(struct vrdma_guest *g, struct vrdma_hq *q, enum vrdma_qstate st)
{
	vrdma_link_del(&q->link);
	vrdma_link_add_tail(st == VRDMA_QS_ACTIVE ? &g->active[q->kind] : &g->parked[q->kind],
			    &q->link);
	q->state = st;
}

void vrdma_sched_add(struct vrdma_guest *g, struct vrdma_hq *q, enum vrdma_qkind kind,
		     bool parked)
{
	q->kind = kind;
	q->last_work_ns = now_ns();
	vrdma_link_init(&q->link);
	set_state(g, q, parked ? VRDMA_QS_PARKED : VRDMA_QS_ACTIVE);
}

static void ring_flag(struct vrdma_hq *q, bool on)
{
	if (on)
		__atomic_fetch_or(&q->ring->flags, htole32(VRDMA_RING_NEED_WAKEUP), __ATOMIC_SEQ_CST);
	else
		__atomic_fetch_and(&q->ring->flags, htole32(~VRDMA_RING_NEED_WAKEUP), __ATOMIC_RELAXED);
}

/*
 * Park active queue q, unless it has work after all: returns the entries moved meanwhile,
 * or -1 when parked. A ring: NEED_WAKEUP is stored (seq_cst) before prod is read again;
 * it pairs with the guest's seq_cst store of prod followed by its seq_cst load of flags:
 * either the guest sees the flag and kicks, or we see its prod. A CQ: the real CQ is armed
 * before it is polled again, so a completion either is polled now or raises an event. A
 * CQ whose ring is full stays active: the guest frees room by polling, which tells no one;
 * before the relay sleeps (sleeping) its real CQ is armed all the same, so that a new
 * completion wakes the relay as before.
 */
static int park(struct vrdma_guest *g, struct vrdma_hq *q, bool sleeping)
{
	if (q->kind == VRDMA_QK_CQ) {
		struct vrdma_cq *cq = vrdma_container_of(q, struct vrdma_cq, q);
		bool full = !q->broken && cq_room(q) <= 0;
		int n;

		if (full && !sleeping)
			return 0;
		if (ibv_req_notify_cq(cq->cq, 0) || full)
			return 0;	/* cannot be woken, or full: stays active */
		n = move_cqes(g, cq, VRDMA_RELAY_WEIGHT, true);
		if (n)
			return n;
	} else {
		ring_flag(q, true);
		if (!q->broken && pending(q))	/* work (pending cleared the flag), or nonsense
						 * that the next visit breaks the queue for */
			return 0;
	}
	set_state(g, q, VRDMA_QS_PARKED);
	return -1;
}

static bool may_park(const struct vrdma_guest *g, const struct vrdma_hq *q)
{
	return g->in_relay && (q->kind == VRDMA_QK_CQ || g->doorbell >= 0);
}

/* The active queues of one kind, each at most once, within the budget. */
static int serve(struct vrdma_guest *g, enum vrdma_qkind k, uint64_t now)
{
	struct vrdma_link *h = &g->active[k], *last = h->prev;
	int budget = VRDMA_RELAY_WEIGHT, work = 0;

	while (!vrdma_link_empty(h) && budget > 0) {
		struct vrdma_hq *q = vrdma_container_of(h->next, struct vrdma_hq, link);
		bool end = h->next == last;
		int w = visit(g, q, (uint32_t)budget);

		g->n_visits++;
		if (w > 0)
			q->last_work_ns = now;
		else if (may_park(g, q) && now - q->last_work_ns >= g->park_ns)
			w = park(g, q, false);
		if (q->state == VRDMA_QS_ACTIVE)	/* next pass: after the others */
			set_state(g, q, VRDMA_QS_ACTIVE);
		if (w > 0) {
			work += w;
			budget -= w;
		} else {
			budget--;
		}
		if (end)
			break;
	}
	return work;
}

static void unpark(struct vrdma_guest *g, struct vrdma_hq *q, uint64_t now)
{
	q->last_work_ns = now;
	set_state(g, q, VRDMA_QS_ACTIVE);
}

/* The guest's doorbell rung by us: the relay, asleep or not, looks at its parked rings. */
static void kick_self(struct vrdma_guest *g)
{
	uint64_t one = 1;

	if (g->doorbell >= 0 && write(g->doorbell, &one, sizeof(one)) != sizeof(one))
		g->n_relay_errors++;
}

/* A parked ring asks for the guest's next kick again (NEED_WAKEUP, seq_cst) and is looked
 * at once more, as park() does: true if the guest published work meanwhile. */
static bool rearm(struct vrdma_hq *q)
{
	ring_flag(q, true);
	return load_peer(&q->ring->prod) != q->cons;
}

/*
 * Drain a QP's ring q now, outside a pass (a control call that must see its WQEs posted
 * first). Finding work clears NEED_WAKEUP (pending), so a parked ring gets it back, and
 * then is looked at once more, as park() does: either the guest sees the flag and kicks,
 * or its newer WQEs are drained here. A ring left with work it could not post (its real
 * queue full) is left to the relay: we ring the guest's doorbell ourselves, so that the
 * relay, asleep or not, looks at its parked rings.
 */
static void drain_now(struct vrdma_guest *g, struct vrdma_qp *qp, struct vrdma_hq *q)
{
	for (;;) {
		int moved = q == &qp->sq ? drain_sq(g, qp, UINT32_MAX) :
					   drain_rq(g, qp, UINT32_MAX);

		if (q->broken || q->state != VRDMA_QS_PARKED || !rearm(q))
			return;		/* active, or parked as before: the guest kicks for its next */
		if (moved <= 0) {	/* work left that cannot be posted yet */
			kick_self(g);
			return;
		}
	}
}

/*
 * Before a control call destroys what a send WQE names (an AH, a memory window, an MR):
 * the guest's published sends go to the real QPs first. Natively a post hands the WQE to
 * the device at once (rxe copies the AH's address vector into it), so destroying the AH
 * right after the post is fine; here the relay, not the post, looks the handle up, and
 * a WQE it could not resolve any more would break its queue with no completion (issue 12).
 * The caller holds g->lock (no pass runs meanwhile).
 */
void vrdma_relay_drain_sends(struct vrdma_guest *g)
{
	struct vrdma_link *lists[2] = { &g->active[VRDMA_QK_SQ], &g->parked[VRDMA_QK_SQ] };

	for (int i = 0; i < 2; i++)
		for (struct vrdma_link *l = lists[i]->next, *next; l != lists[i]; l = next) {
			struct vrdma_hq *q = vrdma_container_of(l, struct vrdma_hq, link);

			next = l->next;	/* drain_now may move q to the active list */
			if (!q->broken && load_peer(&q->ring->prod) != q->cons)
				drain_now(g, vrdma_container_of(q, struct vrdma_qp, sq), q);
		}
}

/*
 * A QP going to RESET. Before: what the guest published goes to the real QP, as natively
 * it was on the device when the post returned (rxe runs a user QP's sends within the post;
 * posted in ERR, they complete with flush errors), and RESET then discards what is left
 * there. After: whatever the rings still hold (the real queue was full) is discarded, as
 * RESET discards it natively, so that nothing stale runs on the QP's next connection.
 * The caller holds g->lock.
 */
void vrdma_relay_qp_reset(struct vrdma_guest *g, struct vrdma_qp *qp, bool after)
{
	struct vrdma_hq *qs[2] = { &qp->rq, &qp->sq };

	for (int k = 0; k < 2; k++) {
		struct vrdma_hq *q = qs[k];
		int64_t avail;

		if (!q->ring || q->broken)
			continue;
		avail = pending(q);
		if (avail <= 0)
			continue;	/* nothing, or nonsense that the next visit breaks it for */
		if (!after) {
			drain_now(g, qp, q);
			continue;
		}
		/* Discarded: the send counts move with the ring (completions carry them in
		 * ring units), and a parked ring asks for the next kick again. A post racing
		 * its own RESET is left to the relay (kick_self). */
		q->cons += (uint32_t)avail;
		if (q == &qp->sq)
			qp->sposted += (uint32_t)avail;
		store_own(&q->ring->cons, q->cons);
		if (q->state == VRDMA_QS_PARKED && rearm(q))
			kick_self(g);
	}
}

/* What woke the guest's queues since the last pass: a kick (its parked rings with work),
 * CQ events (those CQs; all parked CQs if some were not kept). */
static void wake(struct vrdma_guest *g, uint64_t now)
{
	if (g->kicked) {
		g->kicked = false;
		for (int k = VRDMA_QK_SRQ; k <= VRDMA_QK_SQ; k++) {
			struct vrdma_link *h = &g->parked[k], *l, *next;

			for (l = h->next; l != h; l = next) {
				struct vrdma_hq *q = vrdma_container_of(l, struct vrdma_hq, link);

				next = l->next;
				if (!q->broken && load_peer(&q->ring->prod) != q->cons)
					unpark(g, q, now);
			}
		}
	}
	for (uint32_t i = 0; i < g->ncq_ev; i++) {
		int err;
		struct vrdma_cq *cq = vrdma_handle_get(g, g->cq_ev[i], VRDMA_OBJ_CQ, &err);

		if (cq && cq->q.state == VRDMA_QS_PARKED)
			unpark(g, &cq->q, now);
	}
	g->ncq_ev = 0;
	if (g->cq_ev_lost) {
		g->cq_ev_lost = false;
		while (!vrdma_link_empty(&g->parked[VRDMA_QK_CQ]))
			unpark(g, vrdma_container_of(g->parked[VRDMA_QK_CQ].next,
						     struct vrdma_hq, link), now);
	}
}

/* A guest that no relay thread serves (a test driving passes itself, or one removed from
 * its relay) has no doorbell or CQ event to wake a parked queue: all are active. */
static void wake_all(struct vrdma_guest *g, uint64_t now)
{
	for (int k = 0; k < VRDMA_QKINDS; k++)
		while (!vrdma_link_empty(&g->parked[k])) {
			struct vrdma_hq *q = vrdma_container_of(g->parked[k].next, struct vrdma_hq,
								link);

			if (k != VRDMA_QK_CQ)
				ring_flag(q, false);
			unpark(g, q, now);
		}
}

/* One pass over the guest's active queues: receives first (so that a send that answers
 * a receive finds it posted), then sends, then completions. A guest whose lock is held (a
 * control call of its own that the kernel makes wait, e.g. destroying a QP) is skipped:
 * -EBUSY, so that one guest's slow call never stalls the relay for the others. */
int vrdma_relay_guest(struct vrdma_guest *g)
{
	uint64_t now;
	int work = 0;

	if (pthread_mutex_trylock(&g->lock))
		return -EBUSY;
	now = now_ns();
	if (!g->in_relay)
		wake_all(g, now);
	wake(g, now);
	for (int k = 0; k < VRDMA_QKINDS; k++)
		work += serve(g, k, now);
	pthread_mutex_unlock(&g->lock);
	return work;
}

/*
 * on: the relay is about to sleep: park every active queue (park() says how the race with
 * the guest is closed); those that still have work stay active, and the caller makes one
 * more pass. off: every parked queue becomes active, its NEED_WAKEUP cleared.
 */
bool vrdma_relay_need_wakeup(struct vrdma_guest *g, bool on)
{
	uint64_t now;

	if (pthread_mutex_trylock(&g->lock))
		return false;
	now = now_ns();
	for (int k = 0; k < VRDMA_QKINDS; k++) {
		struct vrdma_link *h = on ? &g->active[k] : &g->parked[k], *l, *next;

		for (l = h->next; l != h; l = next) {
			struct vrdma_hq *q = vrdma_container_of(l, struct vrdma_hq, link);

			next = l->next;
			if (on) {
				park(g, q, true);
			} else {
				if (k != VRDMA_QK_CQ)
					ring_flag(q, false);
				unpark(g, q, now);
			}
		}
	}
	pthread_mutex_unlock(&g->lock);
	return true;
}

void vrdma_relay_kick(struct vrdma_guest *g)
{
	g->kicked = true;
}

/* The real CQs' events: each names its CQ, whose handle we keep for the next pass. The CQ
 * is alive until the event is acknowledged (ibv_destroy_cq waits for that), so its handle
 * can be read here without the guest's lock, which a DEVCALL destroying a CQ holds while
 * it waits for our acknowledgement. */
void vrdma_relay_cq_events(struct vrdma_guest *g)
{
	struct ibv_cq *cq;
	void *ctx;

	while (!ibv_get_cq_event(g->chan, &cq, &ctx)) {
		if (g->ncq_ev < VRDMA_CQ_EVENTS)
			g->cq_ev[g->ncq_ev++] = ((struct vrdma_cq *)ctx)->handle;
		else
			g->cq_ev_lost = true;
		ibv_ack_cq_events(cq, 1);
	}
}

/*
 * Async events of the guest's real context, to the guest: QP, CQ and SRQ events name the
 * guest's handle (found through the object's context pointer, which stays valid until the
 * event is acknowledged: libibverbs' destroy waits for that), port events the port as the
 * guest numbers it (1), device events nothing. Runs on the relay thread without g->lock,
 * since a DEVCALL that destroys a QP holds it while it waits for our acknowledgement.
 */
void vrdma_relay_async(struct vrdma_guest *g)
{
	struct ibv_async_event ev;

	while (!ibv_get_async_event(g->ctx, &ev)) {
		uint32_t h = 0, port = 0;

		switch (vrdma_event_kind(ev.event_type)) {
		case VRDMA_EVENT_CQ:
			h = ((struct vrdma_cq *)ev.element.cq->cq_context)->handle;
			break;
		case VRDMA_EVENT_QP:
			h = ((struct vrdma_qp *)ev.element.qp->qp_context)->handle;
			break;
		case VRDMA_EVENT_SRQ:
			h = ((struct vrdma_srq *)ev.element.srq->srq_context)->handle;
			break;
		case VRDMA_EVENT_PORT:
			if (ev.element.port_num != g->pol.port)
				goto ack;	/* another port of the device: not this guest's */
			port = 1;
			break;
		case VRDMA_EVENT_DEVICE:
			break;
		case VRDMA_EVENT_OTHER:
			goto ack;
		}
		if (g->env->event)
			g->env->event(g->env_priv, ev.event_type, h, port);
ack:
		ibv_ack_async_event(&ev);
	}
}
