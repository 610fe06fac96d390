// SPDX-License-Identifier: MIT
/* Address handles, for UD sends: a real AH in this guest's PD on the host (CREATE_AH). */
#include <endian.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include "vbg.h"

VBG_EXPORT struct ibv_ah *ibv_create_ah(struct ibv_pd *pd, struct ibv_ah_attr *a)
{
	struct vrdma_create_ah_in in = { 0 };
	struct vrdma_handle o;
	struct vbg_ah *ah;
	int err;

	if (!vbg_is_context(pd->context))
		return vbg_real.create_ah(pd, a);
	in.pd = htole32(((struct vbg_pd *)pd)->handle);
	vrdma_ah_attr_from_ibv(&in.attr, a);
	in.attr.port_num = a->port_num;	/* the host checks it is 1 */
	ah = calloc(1, sizeof(*ah));
	if (!ah) {
		errno = ENOMEM;
		return NULL;
	}
	err = vbg_call(to_vctx(pd->context), VRDMA_FN_CREATE_AH, &in, sizeof(in), &o, sizeof(o));
	if (err) {
		free(ah);
		errno = -err;
		return NULL;
	}
	ah->handle = le32toh(o.handle);
	ah->ah.context = pd->context;
	ah->ah.pd = pd;
	ah->ah.handle = ah->handle;
	return &ah->ah;
}

VBG_EXPORT int ibv_destroy_ah(struct ibv_ah *a)
{
	struct vbg_ah *ah = (struct vbg_ah *)a;
	struct vrdma_handle h;
	int err;

	if (!vbg_is_context(a->context))
		return vbg_real.destroy_ah(a);
	h = (struct vrdma_handle){ .handle = htole32(ah->handle) };
	err = vbg_call(to_vctx(a->context), VRDMA_FN_DESTROY_AH, &h, sizeof(h), NULL, 0);
	if (err)
		return -err;
	free(ah);
	return 0;
}
