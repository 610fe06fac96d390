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
	memcpy(in.attr.dgid, a->grh.dgid.raw, 16);
	in.attr.flow_label = htole32(a->grh.flow_label);
	in.attr.sgid_index = a->grh.sgid_index;
	in.attr.hop_limit = a->grh.hop_limit;
	in.attr.traffic_class = a->grh.traffic_class;
	in.attr.is_global = a->is_global;
	in.attr.dlid = htole16(a->dlid);
	in.attr.sl = a->sl;
	in.attr.src_path_bits = a->src_path_bits;
	in.attr.static_rate = a->static_rate;
	in.attr.port_num = a->port_num;
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
