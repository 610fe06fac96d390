// SPDX-License-Identifier: MIT
/*
 * Address handles, for UD sends: a real AH in the guest's own PD, made from an address
 * vector under the same policy as a QP's (port 1, the bus's source GID index only). The
 * relay resolves a send WQE's ud_ah handle to it.
 */
#include <endian.h>
#include <errno.h>
#include <stdlib.h>
#include "vrdma.h"

void vrdma_ah_free(struct vrdma_ah *ah)
{
	ibv_destroy_ah(ah->ah);
	free(ah);
}

int vrdma_do_create_ah(struct vrdma_guest *g, const void *in, size_t inlen, void *out)
{
	const struct vrdma_create_ah_in *i = in;
	struct vrdma_handle *o = out;
	uint32_t pdh = le32toh(i->pd), h;
	struct ibv_ah_attr a;
	struct vrdma_pd *pd;
	struct vrdma_ah *ah;
	int err = 0;

	if (i->reserved)
		return -EINVAL;
	pd = vrdma_handle_get(g, pdh, VRDMA_OBJ_PD, &err);
	if (!pd)
		return err;
	err = vrdma_ah_in(g, &a, &i->attr);
	if (err)
		return err;
	ah = calloc(1, sizeof(*ah));
	if (!ah)
		return -ENOMEM;
	ah->ah = ibv_create_ah(pd->pd, &a);
	if (!ah->ah) {
		err = errno ? -errno : -EINVAL;
		free(ah);
		return err;
	}
	err = vrdma_handle_new(g, VRDMA_OBJ_AH, ah, &h);
	if (err) {
		vrdma_ah_free(ah);
		return err;
	}
	ah->pd = pdh;
	vrdma_handle_obj(g, pdh)->users++;
	o->handle = htole32(h);
	return 0;
}

int vrdma_do_destroy_ah(struct vrdma_guest *g, const void *in, size_t inlen, void *out)
{
	const struct vrdma_handle *i = in;
	uint32_t h = le32toh(i->handle);
	struct vrdma_ah *ah;
	int err = 0;

	if (i->reserved)
		return -EINVAL;

	ah = vrdma_handle_get(g, h, VRDMA_OBJ_AH, &err);
	if (!ah)
		return err;
	vrdma_relay_drain_sends(g);	/* a posted WQE may name it (relay.c) */
	vrdma_handle_obj(g, ah->pd)->users--;
	vrdma_ah_free(ah);
	vrdma_handle_free(g, h);
	return 0;
}
