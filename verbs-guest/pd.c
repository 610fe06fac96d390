// SPDX-License-Identifier: MIT
/* Protection domains: each is a real PD in this guest's own context on the host. */
#include <endian.h>
#include <errno.h>
#include <stdlib.h>
#include "vbg.h"

VBG_EXPORT struct ibv_pd *ibv_alloc_pd(struct ibv_context *c)
{
	struct vrdma_handle h;
	struct vbg_pd *pd;
	int err;

	if (!vbg_is_context(c))
		return vbg_real.alloc_pd(c);
	pd = calloc(1, sizeof(*pd));
	if (!pd) {
		errno = ENOMEM;
		return NULL;
	}
	err = vbg_call(to_vctx(c), VRDMA_FN_ALLOC_PD, NULL, 0, &h, sizeof(h));
	if (err) {
		free(pd);
		errno = -err;
		return NULL;
	}
	pd->handle = le32toh(h.handle);
	pd->pd.context = c;
	pd->pd.handle = pd->handle;
	return &pd->pd;
}

VBG_EXPORT int ibv_dealloc_pd(struct ibv_pd *p)
{
	struct vbg_pd *pd = (struct vbg_pd *)p;
	struct vrdma_handle h;
	int err;

	if (!vbg_is_context(p->context))
		return vbg_real.dealloc_pd(p);
	h = (struct vrdma_handle){ .handle = htole32(pd->handle) };
	err = vbg_call(to_vctx(p->context), VRDMA_FN_DEALLOC_PD, &h, sizeof(h), NULL, 0);
	if (err)
		return -err;
	free(pd);
	return 0;
}
