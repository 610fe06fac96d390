// SPDX-License-Identifier: MIT
/*
 * ibv_poll_cq on a vbus CQ: completions are read from the CQ's ring in shared memory with
 * no system call. Each slot is copied out once before it is looked at; an index that
 * breaks the ring's rule marks the ring broken and fails the poll.
 */
#include <endian.h>
#include <errno.h>
#include <string.h>
#include <sys/ioctl.h>
#include <vbus/vrdma-kernel.h>
#include "vbg.h"

static void wc_out(struct ibv_wc *wc, const struct vrdma_cqe *e)
{
	wc->wr_id = le64toh(e->wr_id);
	wc->status = le32toh(e->status);
	wc->opcode = le32toh(e->opcode);
	wc->vendor_err = le32toh(e->vendor_err);
	wc->byte_len = le32toh(e->byte_len);
	wc->imm_data = e->imm_data;
	wc->qp_num = le32toh(e->qp_num);
	wc->src_qp = le32toh(e->src_qp);
	wc->wc_flags = le32toh(e->wc_flags);
	wc->pkey_index = le16toh(e->pkey_index);
	wc->slid = le16toh(e->slid);
	wc->sl = e->sl;
	wc->dlid_path_bits = e->dlid_path_bits;
}

/* A completion retires work of its QP: every send WQE up to sq_retired (unsignaled ones
 * included), or one receive (an SRQ's receives are counted by the host: srq.c). */
static void retire(struct vbg_context *ctx, const struct vrdma_cqe *e)
{
	struct vbg_qp *qp = vbg_qp_lookup(ctx, le32toh(e->qp_handle));

	if (!qp)
		return;
	if (e->is_send)
		__atomic_store_n(&qp->sretired, le32toh(e->sq_retired), __ATOMIC_RELEASE);
	else if (!qp->srq)
		__atomic_add_fetch(&qp->rdone, 1, __ATOMIC_RELEASE);
}

/* Kernel backend, the ring is empty: the module polls the real CQ into it, in this
 * call (busy polling). Our consumer index is published first: it is the ring's room. */
static void poll_real(struct vbg_cq *cq)
{
	struct vbg_context *ctx = to_vctx(cq->cq.context);

	vbg_cq_publish(cq);
	if (ioctl(ctx->kfd, VBK_IOC_POLL_CQ, (unsigned long)cq->handle) < 0)
		vbg_dbg("poll CQ %#x: %m", cq->handle);
}

int64_t vbg_cq_avail(struct vbg_cq *cq)
{
	/* Acquire pairs with the relay's release store of prod after it wrote the CQEs. */
	uint32_t prod = le32toh(__atomic_load_n(&cq->q.ring->prod, __ATOMIC_ACQUIRE));
	uint32_t avail = prod - cq->cons;

	if (!avail && to_vctx(cq->cq.context)->kfd >= 0) {
		poll_real(cq);
		prod = le32toh(__atomic_load_n(&cq->q.ring->prod, __ATOMIC_ACQUIRE));
		avail = prod - cq->cons;
	}

	if (avail > cq->q.entries) {
		__atomic_fetch_or(&cq->q.ring->flags, htole32(VRDMA_RING_BROKEN), __ATOMIC_RELAXED);
		vbg_err("CQ %#x: the host broke its ring (prod %u, cons %u)", cq->handle, prod,
			cq->cons);
		return -1;
	}
	return avail;
}

void vbg_cq_take(struct vbg_cq *cq, struct vrdma_cqe *e)
{
	memcpy(e, cq->q.slots + (size_t)(cq->cons & (cq->q.entries - 1)) * sizeof(*e), sizeof(*e));
	retire(to_vctx(cq->cq.context), e);
	cq->cons++;
}

/* Release: our copies are done before the relay may overwrite the slots. */
void vbg_cq_publish(struct vbg_cq *cq)
{
	__atomic_store_n(&cq->q.ring->cons, htole32(cq->cons), __ATOMIC_RELEASE);
}

int vbg_poll_cq(struct ibv_cq *c, int n, struct ibv_wc *wc)
{
	struct vbg_cq *cq = to_vcq(c);
	int64_t avail;
	int k = 0;

	if (n <= 0)
		return 0;
	pthread_spin_lock(&cq->lock);
	avail = vbg_cq_avail(cq);
	if (avail < 0) {
		pthread_spin_unlock(&cq->lock);
		return -1;
	}
	for (; k < n && avail; k++, avail--) {
		struct vrdma_cqe e;

		vbg_cq_take(cq, &e);
		wc_out(&wc[k], &e);
	}
	if (k)
		vbg_cq_publish(cq);
	pthread_spin_unlock(&cq->lock);
	return k;
}
