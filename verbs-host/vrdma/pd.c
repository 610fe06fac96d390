// SPDX-License-Identifier: MIT
/* Protection domains: each a real PD in the guest's own context. */
#include <endian.h>
#include <errno.h>
#include <stdlib.h>
#include "vrdma.h"

int vrdma_do_alloc_pd(struct vrdma_guest *g, const void *in, size_t inlen, void *out)
{
	struct vrdma_handle *o = out;
	struct vrdma_pd *pd = calloc(1, sizeof(*pd));
	uint32_t h;
	int err;

	if (!pd)
		return -ENOMEM;
	pd->pd = ibv_alloc_pd(g->ctx);
	if (!pd->pd) {
		err = errno ? -errno : -ENOMEM;
		goto err_free;
	}
	err = vrdma_handle_new(g, VRDMA_OBJ_PD, pd, &h);
	if (err)
		goto err_dealloc;
	o->handle = htole32(h);
	return 0;

err_dealloc:
	ibv_dealloc_pd(pd->pd);
err_free:
	free(pd);
	return err;
}

int vrdma_do_dealloc_pd(struct vrdma_guest *g, const void *in, size_t inlen, void *out)
{
	const struct vrdma_handle *i = in;
	uint32_t h = le32toh(i->handle);
	struct vrdma_pd *pd;
	int err = 0, r;

	if (i->reserved)
		return -EINVAL;

	pd = vrdma_handle_get(g, h, VRDMA_OBJ_PD, &err);
	if (!pd)
		return err;
	if (vrdma_handle_obj(g, h)->users)
		return -EBUSY;
	r = ibv_dealloc_pd(pd->pd);
	if (r)
		return -r;
	free(pd);
	vrdma_handle_free(g, h);
	return 0;
}
