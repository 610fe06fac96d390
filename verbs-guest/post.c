// SPDX-License-Identifier: MIT
/*
 * Posting work: ibv_post_send, ibv_post_recv and the ibv_wr_* API write WQEs into the
 * QP's rings in shared memory, publish the producer index, and kick the relay's doorbell
 * only when the ring says it sleeps (VRDMA_RING_NEED_WAKEUP): no system call otherwise.
 * The kernel backend's doorbell (VBK_IOC_DOORBELL) is rung on every post.
 *
 * The relay posts asynchronously, so the synchronous errors of a native provider are
 * decided here: a full queue is ENOMEM, too many SGEs or too much inline data EINVAL
 * (ENOSPC from ibv_wr_complete for inline data, as rxe's provider), a misaligned or short
 * atomic EINVAL in ibv_post_send (the ibv_wr_* API posts it: the host answers it as the
 * responder would), a QP in a state that cannot post EINVAL, each with *bad_wr at the
 * first refused request.
 * The send queue's depth counts WQEs until a send completion retires them (poll.c).
 */
#include <endian.h>
#include <errno.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <time.h>
#include <vbus/vrdma-kernel.h>
#include "vbg.h"

#define SEND_FLAGS_OK (IBV_SEND_FENCE | IBV_SEND_SIGNALED | IBV_SEND_SOLICITED | IBV_SEND_INLINE)

static bool opcode_ok(const struct vbg_qp *qp, enum ibv_wr_opcode op)
{
	return vrdma_opcode_ok((uint8_t)qp->qpx.qp_base.qp_type, (uint8_t)op);
}

/* Inline data goes with SEND and RDMA WRITE only (a device refuses it on READ and atomics). */
static bool inline_ok(enum ibv_wr_opcode op)
{
	return op == IBV_WR_SEND || op == IBV_WR_SEND_WITH_IMM || op == IBV_WR_RDMA_WRITE ||
	       op == IBV_WR_RDMA_WRITE_WITH_IMM;
}

/* A context whose device is gone (IBV_EVENT_DEVICE_FATAL) takes no more work: EIO. */
static bool dead(struct ibv_context *c)
{
	return __atomic_load_n(&to_vctx(c)->dead, __ATOMIC_ACQUIRE);
}

/* A queue the host found broken (VRDMA_RING_BROKEN) takes no more work: EIO. */
static bool broken(const struct vbg_queue *q)
{
	return __atomic_load_n(&q->ring->flags, __ATOMIC_RELAXED) & htole32(VRDMA_RING_BROKEN);
}

static bool can_send(enum ibv_qp_state s)
{
	return s == IBV_QPS_RTS || s == IBV_QPS_SQD || s == IBV_QPS_SQE || s == IBV_QPS_ERR;
}

/* The kernel backend never polls a ring: its doorbell is the only way work gets posted, so
 * it is rung whatever the flags word says (the module sets NEED_WAKEUP once; a program
 * that overwrote it would otherwise post nothing and wait in ibv_post_recv, guest-scribble). */
static void kick_if_asleep(struct vbg_context *ctx, struct vbg_queue *q, uint32_t prod)
{
	if (vbg_publish(q->ring, htole32(prod)) || ctx->kfd >= 0)
		vbg_kick(ctx, q->db);
}

/* Send WQEs retired, for the depth check: those of the completions we polled, or more when
 * the host says so in the ring's `retired` (a completion our CQ lost to an overrun still
 * frees its slot, as natively). The host's value counts only if it lies between ours and
 * prod. */
static uint32_t sq_retired(struct vbg_qp *qp, uint32_t prod)
{
	uint32_t mine = __atomic_load_n(&qp->sretired, __ATOMIC_ACQUIRE);
	uint32_t host = le32toh(__atomic_load_n(&qp->sq.ring->retired, __ATOMIC_ACQUIRE));

	return host - mine <= prod - mine ? host : mine;
}

/* Whether the send queue is full at prod. On the kernel backend, before saying so, the
 * module moves what the real CQ holds (the completions we have not asked for yet, and
 * those our CQ has no room for, lost as natively): each retires its WQE, and a slot whose
 * WQE rxe has completed is free, as natively, even if nobody polls. */
static bool sq_full(struct vbg_qp *qp, uint32_t prod)
{
	struct ibv_qp *q = &qp->qpx.qp_base;
	struct vbg_context *ctx = to_vctx(q->context);

	if (prod - sq_retired(qp, prod) < qp->cap.max_send_wr)
		return false;
	if (ctx->kfd < 0)
		return true;
	if (ioctl(ctx->kfd, VBK_IOC_POLL_CQ, (unsigned long)to_vcq(q->send_cq)->handle) < 0)
		vbg_dbg("poll CQ %#x: %m", to_vcq(q->send_cq)->handle);
	return prod - sq_retired(qp, prod) >= qp->cap.max_send_wr;
}

static inline uint8_t *slot(struct vbg_queue *q, uint32_t idx)
{
	return q->slots + (size_t)(idx & (q->entries - 1)) * q->stride;
}

static void sges_out(struct vrdma_sge *o, const struct ibv_sge *s, int n)
{
	for (int i = 0; i < n; i++) {
		o[i].addr = htole64(s[i].addr);
		o[i].length = htole32(s[i].length);
		o[i].lkey = htole32(s[i].lkey);
	}
}

/* A bind WQE's fields: the window and MR by handle (both of this context), the range,
 * the window's access and its new rkey. 0 or EINVAL. */
static int bind_out(struct vbg_qp *qp, struct vrdma_swqe *w, struct ibv_mw *mw, uint32_t rkey,
		    const struct ibv_mw_bind_info *b)
{
	struct ibv_context *c = qp->qpx.qp_base.context;

	if (!mw || mw->context != c || (b->mr && b->mr->context != c) || (!b->mr && b->length))
		return EINVAL;
	w->bind_mw = htole32(to_vmw(mw)->handle);
	w->bind_mr = htole32(b->mr ? ((struct vbg_mr *)b->mr)->handle : 0);
	w->bind_access = htole32(b->mw_access_flags);
	w->rkey = htole32(rkey);
	w->remote_addr = htole64(b->addr);
	w->compare_add = htole64(b->length);
	return 0;
}

/* One send WR into slot p; 0 or a positive errno. */
static int swqe(struct vbg_qp *qp, uint8_t *p, const struct ibv_send_wr *wr)
{
	struct vrdma_swqe *w = (struct vrdma_swqe *)p;

	if (!opcode_ok(qp, wr->opcode) || (wr->send_flags & ~SEND_FLAGS_OK) || wr->num_sge < 0)
		return EINVAL;
	memset(w, 0, sizeof(*w));
	w->wr_id = htole64(wr->wr_id);
	w->opcode = (uint8_t)wr->opcode;
	w->send_flags = htole32(wr->send_flags);
	w->imm_data = wr->imm_data;
	if (wr->opcode == IBV_WR_BIND_MW) {
		int err = bind_out(qp, w, wr->bind_mw.mw, wr->bind_mw.rkey, &wr->bind_mw.bind_info);

		if (err)
			return err;
	} else if (qp->qpx.qp_base.qp_type == IBV_QPT_UD) {
		struct ibv_ah *ah = wr->wr.ud.ah;

		if (!ah || ah->context != qp->qpx.qp_base.context)
			return EINVAL;
		w->ud_ah = htole32(((struct vbg_ah *)ah)->handle);
		w->ud_remote_qpn = htole32(wr->wr.ud.remote_qpn);
		w->ud_remote_qkey = htole32(wr->wr.ud.remote_qkey);
	} else if (wr->opcode == IBV_WR_ATOMIC_CMP_AND_SWP ||
		   wr->opcode == IBV_WR_ATOMIC_FETCH_AND_ADD) {
		uint64_t len = 0;

		/* rxe's provider refuses these here (its ibv_wr_* API posts them, and the
		 * responder NAKs them: the host keeps that, docs/verbs.md) */
		for (int i = 0; i < wr->num_sge; i++)
			len += wr->sg_list[i].length;
		if ((wr->wr.atomic.remote_addr & 7) || len < 8)
			return EINVAL;
		w->remote_addr = htole64(wr->wr.atomic.remote_addr);
		w->rkey = htole32(wr->wr.atomic.rkey);
		w->compare_add = htole64(wr->wr.atomic.compare_add);
		w->swap = htole64(wr->wr.atomic.swap);
	} else {
		w->remote_addr = htole64(wr->wr.rdma.remote_addr);
		w->rkey = htole32(wr->wr.rdma.rkey);
	}
	if (wr->send_flags & IBV_SEND_INLINE) {
		uint8_t *d = p + sizeof(*w);

		if (!inline_ok(wr->opcode))
			return EINVAL;
		size_t len = 0;

		for (int i = 0; i < wr->num_sge; i++)
			len += wr->sg_list[i].length;
		if (len > qp->cap.max_inline_data)
			return EINVAL;
		for (int i = 0; i < wr->num_sge; i++) {
			memcpy(d, (void *)(uintptr_t)wr->sg_list[i].addr, wr->sg_list[i].length);
			d += wr->sg_list[i].length;
		}
		w->inline_len = htole16((uint16_t)len);
	} else {
		if ((uint32_t)wr->num_sge > qp->cap.max_send_sge)
			return EINVAL;
		w->num_sge = (uint8_t)wr->num_sge;
		sges_out((struct vrdma_sge *)(p + sizeof(*w)), wr->sg_list, wr->num_sge);
	}
	return 0;
}

int vbg_post_send(struct ibv_qp *q, struct ibv_send_wr *wr, struct ibv_send_wr **bad)
{
	struct vbg_qp *qp = to_vqp(q);
	uint32_t start;
	int err = 0;

	pthread_spin_lock(&qp->lock);
	start = qp->sprod;
	if (!can_send(qp->state))
		err = EINVAL;
	else if (broken(&qp->sq) || dead(q->context))
		err = EIO;
	for (; wr && !err; wr = wr->next) {
		if (sq_full(qp, qp->sprod)) {
			err = ENOMEM;
			break;
		}
		err = swqe(qp, slot(&qp->sq, qp->sprod), wr);
		if (err)
			break;
		qp->sprod++;
	}
	if (err && bad)
		*bad = wr;
	if (qp->sprod != start)
		kick_if_asleep(to_vctx(qp->qpx.qp_base.context), &qp->sq, qp->sprod);
	pthread_spin_unlock(&qp->lock);
	return err;
}

/*
 * Natively a receive is on the device when ibv_post_recv returns, and programs rely on it:
 * they post receives, then tell the peer "ready" over TCP, and the peer sends at once. Here
 * the relay posts it a little later; a message arriving first would be dropped (UC, UD) or
 * RNR-NAKed (RC). So ibv_post_recv and ibv_post_srq_recv return only when the relay has
 * taken the ring up to `prod` (its `cons`), waiting at most VBUS_RECV_WAIT_US (default
 * 2000000: 100 ms was too short with 32 busy guests on 2 vCPUs, guest-load; 0: do not
 * wait, the old asynchronous behaviour), yielding the CPU and then sleeping meanwhile,
 * since on a small machine the relay may need it. A broken ring ends the wait at once.
 * After the first millisecond the doorbell is rung once more, whatever the flags say.
 */
static uint64_t recv_wait_ns(void)
{
	static int64_t ns = -1;

	if (__atomic_load_n(&ns, __ATOMIC_RELAXED) < 0) {
		const char *e = getenv("VBUS_RECV_WAIT_US");

		__atomic_store_n(&ns, e ? (int64_t)strtoull(e, NULL, 10) * 1000 : 2000000000,
				 __ATOMIC_RELAXED);
	}
	return (uint64_t)__atomic_load_n(&ns, __ATOMIC_RELAXED);
}

static uint64_t now_ns(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (uint64_t)t.tv_sec * 1000000000u + (uint64_t)t.tv_nsec;
}

static void wait_taken(struct vbg_context *ctx, struct vbg_queue *q, uint32_t prod)
{
	uint64_t limit = recv_wait_ns(), end = 0, start = 0, t;
	bool nudged = false;

	/* Acquire pairs with the relay's release store of cons after it posted them. */
	for (unsigned int spins = 0;; spins++) {
		uint32_t cons = le32toh(__atomic_load_n(&q->ring->cons, __ATOMIC_ACQUIRE));

		if ((int32_t)(prod - cons) <= 0 || !limit || broken(q))
			return;
		if (spins < 64)
			continue;
		t = now_ns();
		if (!end) {
			end = t + limit;
			start = t;
		} else if (t > end) {
			return;
		}
		/* Yield for the first millisecond (the relay usually takes them by then);
		 * after that sleep, so that many waiting guests leave the CPU to the relay. */
		if (t - start < 1000000) {
			sched_yield();
			continue;
		}
		/* Not taken in a millisecond: ring once whatever the flags say, in case the
		 * NEED_WAKEUP the relay left was overwritten (the ring is the guest's memory). */
		if (!nudged) {
			nudged = true;
			vbg_kick(ctx, q->db);
		} else {
			struct timespec d = { .tv_nsec = 50000 };

			nanosleep(&d, NULL);
		}
	}
}

/* One receive WR into slot p of a ring of max_sge SGEs; 0 or EINVAL. */
static int rwqe(uint8_t *p, const struct ibv_recv_wr *wr, uint32_t max_sge)
{
	struct vrdma_rwqe *w = (struct vrdma_rwqe *)p;

	if (wr->num_sge < 0 || (uint32_t)wr->num_sge > max_sge)
		return EINVAL;
	w->wr_id = htole64(wr->wr_id);
	w->num_sge = htole32((uint32_t)wr->num_sge);
	w->reserved = 0;
	sges_out((struct vrdma_sge *)(p + sizeof(*w)), wr->sg_list, wr->num_sge);
	return 0;
}

int vbg_post_recv(struct ibv_qp *q, struct ibv_recv_wr *wr, struct ibv_recv_wr **bad)
{
	struct vbg_qp *qp = to_vqp(q);
	uint32_t start;
	bool posted;
	int err = 0;

	pthread_spin_lock(&qp->lock);
	start = qp->rprod;
	if (qp->state == IBV_QPS_RESET || qp->srq)
		err = EINVAL;	/* a QP with an SRQ has no receive queue of its own */
	else if (broken(&qp->rq) || dead(q->context))
		err = EIO;
	for (; wr && !err; wr = wr->next) {
		uint32_t done = __atomic_load_n(&qp->rdone, __ATOMIC_ACQUIRE);

		if (qp->rprod - done >= qp->cap.max_recv_wr) {
			err = ENOMEM;
			break;
		}
		err = rwqe(slot(&qp->rq, qp->rprod), wr, qp->cap.max_recv_sge);
		if (err)
			break;
		qp->rprod++;
	}
	if (err && bad)
		*bad = wr;
	posted = qp->rprod != start;
	if (posted)
		kick_if_asleep(to_vctx(q->context), &qp->rq, qp->rprod);
	start = qp->rprod;
	pthread_spin_unlock(&qp->lock);
	if (posted)
		wait_taken(to_vctx(q->context), &qp->rq, start);
	return err;
}

/* The SRQ's depth: WQEs published and not yet completed, as the host counts them. */
int vbg_post_srq_recv(struct ibv_srq *s, struct ibv_recv_wr *wr, struct ibv_recv_wr **bad)
{
	struct vbg_srq *srq = to_vsrq(s);
	uint32_t start, max_wr = __atomic_load_n(&srq->max_wr, __ATOMIC_RELAXED);
	bool posted;
	int err = 0;

	pthread_spin_lock(&srq->lock);
	start = srq->prod;
	if (broken(&srq->q) || dead(s->context))
		err = EIO;
	for (; wr && !err; wr = wr->next) {
		/* Acquire pairs with the relay's release store after it freed the WQE. */
		uint32_t done = le32toh(__atomic_load_n(&srq->q.ring->retired, __ATOMIC_ACQUIRE));

		if (srq->prod - done >= max_wr) {
			err = ENOMEM;
			break;
		}
		err = rwqe(slot(&srq->q, srq->prod), wr, srq->max_sge);
		if (err)
			break;
		srq->prod++;
	}
	if (err && bad)
		*bad = wr;
	posted = srq->prod != start;
	if (posted)
		kick_if_asleep(to_vctx(s->context), &srq->q, srq->prod);
	start = srq->prod;
	pthread_spin_unlock(&srq->lock);
	if (posted)
		wait_taken(to_vctx(s->context), &srq->q, start);
	return err;
}

/* ---- the ibv_wr_* API: wr_start, builders, wr_complete / wr_abort ---- */

static inline struct vbg_qp *xqp(struct ibv_qp_ex *x)
{
	return (struct vbg_qp *)x;
}

static void wr_fail(struct vbg_qp *qp, int err)
{
	if (!qp->wr_err)
		qp->wr_err = err;
	qp->wr_cur = NULL;
}

/* Start a new WQE of opcode op from the QP's wr_id and wr_flags. */
static struct vrdma_swqe *wr_new(struct ibv_qp_ex *x, enum ibv_wr_opcode op, uint64_t bit)
{
	struct vbg_qp *qp = xqp(x);
	struct vrdma_swqe *w;

	if (qp->wr_err)
		return NULL;
	if (!(qp->send_ops & bit) || !opcode_ok(qp, op) ||
	    (x->wr_flags & ~(unsigned int)SEND_FLAGS_OK)) {
		wr_fail(qp, EINVAL);
		return NULL;
	}
	if (sq_full(qp, qp->wr_prod)) {
		wr_fail(qp, ENOMEM);
		return NULL;
	}
	w = (struct vrdma_swqe *)slot(&qp->sq, qp->wr_prod++);
	memset(w, 0, sizeof(*w));
	w->wr_id = htole64(x->wr_id);
	w->opcode = (uint8_t)op;
	/* Inline is decided by wr_set_inline_data, not by the flag. */
	w->send_flags = htole32(x->wr_flags & ~(unsigned int)IBV_SEND_INLINE);
	qp->wr_cur = (uint8_t *)w;
	return w;
}

static void wr_start(struct ibv_qp_ex *x)
{
	struct vbg_qp *qp = xqp(x);

	pthread_spin_lock(&qp->lock);
	qp->wr_prod = qp->sprod;
	qp->wr_err = !can_send(qp->state) ? EINVAL :
		     broken(&qp->sq) || dead(x->qp_base.context) ? EIO : 0;
	qp->wr_cur = NULL;
}

static int wr_complete(struct ibv_qp_ex *x)
{
	struct vbg_qp *qp = xqp(x);
	int err = qp->wr_err;

	if (!err && qp->wr_prod != qp->sprod) {
		qp->sprod = qp->wr_prod;
		kick_if_asleep(to_vctx(qp->qpx.qp_base.context), &qp->sq, qp->sprod);
	}
	qp->wr_cur = NULL;
	pthread_spin_unlock(&qp->lock);
	return err;
}

static void wr_abort(struct ibv_qp_ex *x)
{
	struct vbg_qp *qp = xqp(x);

	qp->wr_cur = NULL;
	pthread_spin_unlock(&qp->lock);
}

static void wr_send(struct ibv_qp_ex *x)
{
	wr_new(x, IBV_WR_SEND, IBV_QP_EX_WITH_SEND);
}

static void wr_send_imm(struct ibv_qp_ex *x, __be32 imm)
{
	struct vrdma_swqe *w = wr_new(x, IBV_WR_SEND_WITH_IMM, IBV_QP_EX_WITH_SEND_WITH_IMM);

	if (w)
		w->imm_data = imm;
}

static void rdma(struct vrdma_swqe *w, uint32_t rkey, uint64_t addr)
{
	if (!w)
		return;
	w->rkey = htole32(rkey);
	w->remote_addr = htole64(addr);
}

static void wr_rdma_write(struct ibv_qp_ex *x, uint32_t rkey, uint64_t addr)
{
	rdma(wr_new(x, IBV_WR_RDMA_WRITE, IBV_QP_EX_WITH_RDMA_WRITE), rkey, addr);
}

static void wr_rdma_write_imm(struct ibv_qp_ex *x, uint32_t rkey, uint64_t addr, __be32 imm)
{
	struct vrdma_swqe *w = wr_new(x, IBV_WR_RDMA_WRITE_WITH_IMM,
				      IBV_QP_EX_WITH_RDMA_WRITE_WITH_IMM);

	rdma(w, rkey, addr);
	if (w)
		w->imm_data = imm;
}

static void wr_rdma_read(struct ibv_qp_ex *x, uint32_t rkey, uint64_t addr)
{
	rdma(wr_new(x, IBV_WR_RDMA_READ, IBV_QP_EX_WITH_RDMA_READ), rkey, addr);
}

static void wr_atomic_cmp_swp(struct ibv_qp_ex *x, uint32_t rkey, uint64_t addr,
			      uint64_t compare, uint64_t swap)
{
	struct vrdma_swqe *w = wr_new(x, IBV_WR_ATOMIC_CMP_AND_SWP,
				      IBV_QP_EX_WITH_ATOMIC_CMP_AND_SWP);

	rdma(w, rkey, addr);
	if (w) {
		w->compare_add = htole64(compare);
		w->swap = htole64(swap);
	}
}

static void wr_atomic_fetch_add(struct ibv_qp_ex *x, uint32_t rkey, uint64_t addr, uint64_t add)
{
	struct vrdma_swqe *w = wr_new(x, IBV_WR_ATOMIC_FETCH_AND_ADD,
				      IBV_QP_EX_WITH_ATOMIC_FETCH_AND_ADD);

	rdma(w, rkey, addr);
	if (w)
		w->compare_add = htole64(add);
}

static void wr_set_sge_list(struct ibv_qp_ex *x, size_t n, const struct ibv_sge *s)
{
	struct vbg_qp *qp = xqp(x);
	struct vrdma_swqe *w = (struct vrdma_swqe *)qp->wr_cur;

	if (!w)
		return;
	if (n > qp->cap.max_send_sge) {
		wr_fail(qp, EINVAL);
		return;
	}
	w->num_sge = (uint8_t)n;
	sges_out((struct vrdma_sge *)(w + 1), s, (int)n);
}

static void wr_set_sge(struct ibv_qp_ex *x, uint32_t lkey, uint64_t addr, uint32_t len)
{
	struct ibv_sge s = { .addr = addr, .length = len, .lkey = lkey };

	wr_set_sge_list(x, 1, &s);
}

static void wr_set_inline_data_list(struct ibv_qp_ex *x, size_t n, const struct ibv_data_buf *b)
{
	struct vbg_qp *qp = xqp(x);
	struct vrdma_swqe *w = (struct vrdma_swqe *)qp->wr_cur;
	size_t len = 0;
	uint8_t *d;

	if (!w)
		return;
	if (!inline_ok(w->opcode)) {
		wr_fail(qp, EINVAL);
		return;
	}
	for (size_t i = 0; i < n; i++)
		len += b[i].length;
	if (len > qp->cap.max_inline_data) {
		wr_fail(qp, ENOSPC);	/* ibv_wr_complete's error, as rxe's provider */
		return;
	}
	d = (uint8_t *)(w + 1);
	for (size_t i = 0; i < n; i++) {
		memcpy(d, b[i].addr, b[i].length);
		d += b[i].length;
	}
	w->inline_len = htole16((uint16_t)len);
	w->num_sge = 0;
	w->send_flags |= htole32(IBV_SEND_INLINE);
}

static void wr_set_inline_data(struct ibv_qp_ex *x, void *addr, size_t len)
{
	struct ibv_data_buf b = { .addr = addr, .length = len };

	wr_set_inline_data_list(x, 1, &b);
}

/* Builders vbus does not carry in ABI 1: the batch fails at wr_complete. */
static void wr_unsupported(struct ibv_qp_ex *x, const char *name)
{
	static int once;

	if (!once++)
		vbg_err("%s is not supported on vbus QPs (EOPNOTSUPP)", name);
	wr_fail(xqp(x), EOPNOTSUPP);
}

static void wr_bind_mw(struct ibv_qp_ex *x, struct ibv_mw *mw, uint32_t rkey,
		       const struct ibv_mw_bind_info *info)
{
	struct vrdma_swqe *w = wr_new(x, IBV_WR_BIND_MW, IBV_QP_EX_WITH_BIND_MW);
	int err;

	if (!w)
		return;
	err = bind_out(xqp(x), w, mw, rkey, info);
	if (err)
		wr_fail(xqp(x), err);
}

/* The rkey to invalidate travels where immediate data does (a union in ibv_send_wr). */
static void wr_local_inv(struct ibv_qp_ex *x, uint32_t rkey)
{
	struct vrdma_swqe *w = wr_new(x, IBV_WR_LOCAL_INV, IBV_QP_EX_WITH_LOCAL_INV);

	if (w)
		memcpy(&w->imm_data, &rkey, sizeof(rkey));
}

static void wr_send_inv(struct ibv_qp_ex *x, uint32_t rkey)
{
	struct vrdma_swqe *w = wr_new(x, IBV_WR_SEND_WITH_INV, IBV_QP_EX_WITH_SEND_WITH_INV);

	if (w)
		memcpy(&w->imm_data, &rkey, sizeof(rkey));
}

static void wr_send_tso(struct ibv_qp_ex *x, void *hdr, uint16_t hdr_sz, uint16_t mss)
{
	wr_unsupported(x, "ibv_wr_send_tso");
}

static void wr_set_ud_addr(struct ibv_qp_ex *x, struct ibv_ah *ah, uint32_t qpn, uint32_t qkey)
{
	struct vbg_qp *qp = xqp(x);
	struct vrdma_swqe *w = (struct vrdma_swqe *)qp->wr_cur;

	if (!w)
		return;
	if (qp->qpx.qp_base.qp_type != IBV_QPT_UD || !ah ||
	    ah->context != qp->qpx.qp_base.context) {
		wr_fail(qp, EINVAL);
		return;
	}
	w->ud_ah = htole32(((struct vbg_ah *)ah)->handle);
	w->ud_remote_qpn = htole32(qpn);
	w->ud_remote_qkey = htole32(qkey);
}

static void wr_set_xrc_srqn(struct ibv_qp_ex *x, uint32_t srqn)
{
	wr_unsupported(x, "ibv_wr_set_xrc_srqn");
}

static void wr_atomic_write(struct ibv_qp_ex *x, uint32_t rkey, uint64_t addr, const void *v)
{
	wr_unsupported(x, "ibv_wr_atomic_write");
}

void vbg_wr_ops_init(struct vbg_qp *qp)
{
	struct ibv_qp_ex *x = &qp->qpx;

	x->comp_mask = 0;
	x->wr_start = wr_start;
	x->wr_complete = wr_complete;
	x->wr_abort = wr_abort;
	x->wr_send = wr_send;
	x->wr_send_imm = wr_send_imm;
	x->wr_rdma_write = wr_rdma_write;
	x->wr_rdma_write_imm = wr_rdma_write_imm;
	x->wr_rdma_read = wr_rdma_read;
	x->wr_atomic_cmp_swp = wr_atomic_cmp_swp;
	x->wr_atomic_fetch_add = wr_atomic_fetch_add;
	x->wr_set_sge = wr_set_sge;
	x->wr_set_sge_list = wr_set_sge_list;
	x->wr_set_inline_data = wr_set_inline_data;
	x->wr_set_inline_data_list = wr_set_inline_data_list;
	x->wr_bind_mw = wr_bind_mw;
	x->wr_local_inv = wr_local_inv;
	x->wr_send_inv = wr_send_inv;
	x->wr_send_tso = wr_send_tso;
	x->wr_set_ud_addr = wr_set_ud_addr;
	x->wr_set_xrc_srqn = wr_set_xrc_srqn;
	x->wr_atomic_write = wr_atomic_write;
}
