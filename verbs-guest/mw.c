// SPDX-License-Identifier: MIT
/*
 * Memory windows. A window is a real MW in the host (ALLOC_MW); binding it is a send WQE
 * in the QP's ring (IBV_WR_BIND_MW, post.c), for type 1 through ibv_bind_mw as for type 2
 * through ibv_post_send or ibv_wr_bind_mw. As rdma-core's providers do, ibv_bind_mw gives
 * the window its next rkey when the bind is posted; a bind that then fails leaves the
 * program to undo that, as natively.
 */
#include <endian.h>
#include <errno.h>
#include <stdlib.h>
#include "vbg.h"

struct ibv_mw *vbg_alloc_mw(struct ibv_pd *pd, enum ibv_mw_type type)
{
	struct vrdma_alloc_mw_in in = { .pd = htole32(((struct vbg_pd *)pd)->handle),
					.type = htole32((uint32_t)type) };
	struct vrdma_alloc_mw_out o;
	struct vbg_mw *mw = calloc(1, sizeof(*mw));
	int err;

	if (!mw) {
		errno = ENOMEM;
		return NULL;
	}
	err = vbg_call(to_vctx(pd->context), VRDMA_FN_ALLOC_MW, &in, sizeof(in), &o, sizeof(o));
	if (err) {
		free(mw);
		errno = -err;
		return NULL;
	}
	mw->handle = le32toh(o.handle);
	mw->mw.context = pd->context;
	mw->mw.pd = pd;
	mw->mw.rkey = le32toh(o.rkey);
	mw->mw.handle = mw->handle;
	mw->mw.type = type;
	return &mw->mw;
}

int vbg_dealloc_mw(struct ibv_mw *m)
{
	struct vrdma_handle h = { .handle = htole32(to_vmw(m)->handle) };
	int err = vbg_call(to_vctx(m->context), VRDMA_FN_DEALLOC_MW, &h, sizeof(h), NULL, 0);

	if (err)
		return -err;
	free(to_vmw(m));
	return 0;
}

/* ibv_bind_mw (type 1): a bind WQE with the window's next rkey. */
int vbg_bind_mw(struct ibv_qp *qp, struct ibv_mw *mw, struct ibv_mw_bind *b)
{
	struct ibv_send_wr wr = {
		.wr_id = b->wr_id, .opcode = IBV_WR_BIND_MW, .send_flags = b->send_flags,
		.bind_mw = { .mw = mw, .rkey = ibv_inc_rkey(mw->rkey), .bind_info = b->bind_info },
	}, *bad;
	int err;

	if (mw->type != IBV_MW_TYPE_1 || mw->context != qp->context)
		return EINVAL;
	err = vbg_post_send(qp, &wr, &bad);
	if (!err)
		mw->rkey = wr.bind_mw.rkey;
	return err;
}
