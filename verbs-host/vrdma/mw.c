// SPDX-License-Identifier: MIT
/*
 * Memory windows: a real MW in the guest's own PD. Binding and invalidating are send
 * WQEs that the relay posts (relay.c); the kernel checks the window's keys, PD and the MR
 * it is bound to against the guest's own context, as for any guest key.
 */
#include <endian.h>
#include <errno.h>
#include <stdlib.h>
#include "vrdma.h"

void vrdma_mw_free(struct vrdma_mw *mw)
{
	ibv_dealloc_mw(mw->mw);
	free(mw);
}

int vrdma_do_alloc_mw(struct vrdma_guest *g, const void *in, size_t inlen, void *out)
{
	const struct vrdma_alloc_mw_in *i = in;
	struct vrdma_alloc_mw_out *o = out;
	uint32_t pdh = le32toh(i->pd), type = le32toh(i->type), h;
	struct vrdma_pd *pd;
	struct vrdma_mw *mw;
	int err = 0;

	if (type != IBV_MW_TYPE_1 && type != IBV_MW_TYPE_2)
		return -EINVAL;
	if (!(g->pol.access & IBV_ACCESS_MW_BIND))
		return vrdma_refuse(g, "a memory window (no MW_BIND)", type);
	pd = vrdma_handle_get(g, pdh, VRDMA_OBJ_PD, &err);
	if (!pd)
		return err;
	mw = calloc(1, sizeof(*mw));
	if (!mw)
		return -ENOMEM;
	mw->mw = ibv_alloc_mw(pd->pd, (enum ibv_mw_type)type);
	if (!mw->mw) {
		err = errno ? -errno : -EOPNOTSUPP;
		free(mw);
		return err;
	}
	err = vrdma_handle_new(g, VRDMA_OBJ_MW, mw, &h);
	if (err) {
		vrdma_mw_free(mw);
		return err;
	}
	mw->pd = pdh;
	vrdma_handle_obj(g, pdh)->users++;
	o->handle = htole32(h);
	o->rkey = htole32(mw->mw->rkey);
	return 0;
}

int vrdma_do_dealloc_mw(struct vrdma_guest *g, const void *in, size_t inlen, void *out)
{
	const struct vrdma_handle *i = in;
	uint32_t h = le32toh(i->handle);
	struct vrdma_mw *mw;
	int err = 0, r;

	if (i->reserved)
		return -EINVAL;

	mw = vrdma_handle_get(g, h, VRDMA_OBJ_MW, &err);
	if (!mw)
		return err;
	vrdma_relay_drain_sends(g);	/* a posted WQE may name it (relay.c) */
	r = ibv_dealloc_mw(mw->mw);
	if (r)
		return -r;
	vrdma_handle_obj(g, mw->pd)->users--;
	free(mw);
	vrdma_handle_free(g, h);
	return 0;
}
