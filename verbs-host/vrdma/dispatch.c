// SPDX-License-Identifier: MIT
/*
 * The decoder of a guest's DEVCALLs to a vrdma device: one table row per function with
 * its exact input and output sizes, checked before any handler sees the payload.
 */
#include <errno.h>
#include <string.h>
#include "vrdma.h"

struct fn_desc {
	int (*fn)(struct vrdma_guest *g, const void *in, size_t inlen, void *out);
	uint32_t in;		/* exact input size; REG_MR: the header, pieces follow */
	uint32_t out;		/* output size */
	bool slow;		/* may block in the kernel: the caller should sleep */
	bool var_in;		/* input longer than `in` allowed (REG_MR) */
};

#define FN(n, f, i, o, s, v) [n] = { f, i, o, s, v }
static const struct fn_desc fns[VRDMA_FN__MAX] = {
	FN(VRDMA_FN_HELLO, vrdma_do_hello, sizeof(struct vrdma_hello_in),
	   sizeof(struct vrdma_hello_out), false, false),
	FN(VRDMA_FN_QUERY_DEVICE, vrdma_do_query_device, 0,
	   sizeof(struct vrdma_query_device_out), false, false),
	FN(VRDMA_FN_QUERY_PORT, vrdma_do_query_port, sizeof(struct vrdma_query_port_in),
	   sizeof(struct vrdma_query_port_out), false, false),
	FN(VRDMA_FN_QUERY_GID, vrdma_do_query_gid, sizeof(struct vrdma_query_gid_in),
	   sizeof(struct vrdma_query_gid_out), false, false),
	FN(VRDMA_FN_QUERY_PKEY, vrdma_do_query_pkey, sizeof(struct vrdma_query_pkey_in),
	   sizeof(struct vrdma_query_pkey_out), false, false),
	FN(VRDMA_FN_ALLOC_PD, vrdma_do_alloc_pd, 0, sizeof(struct vrdma_handle), false, false),
	FN(VRDMA_FN_DEALLOC_PD, vrdma_do_dealloc_pd, sizeof(struct vrdma_handle), 0, false,
	   false),
	FN(VRDMA_FN_REG_MR, vrdma_do_reg_mr, sizeof(struct vrdma_reg_mr_in),
	   sizeof(struct vrdma_reg_mr_out), true, true),
	FN(VRDMA_FN_DEREG_MR, vrdma_do_dereg_mr, sizeof(struct vrdma_handle), 0, true, false),
	FN(VRDMA_FN_CREATE_CQ, vrdma_do_create_cq, sizeof(struct vrdma_create_cq_in),
	   sizeof(struct vrdma_create_cq_out), false, false),
	FN(VRDMA_FN_DESTROY_CQ, vrdma_do_destroy_cq, sizeof(struct vrdma_handle), 0, false,
	   false),
	FN(VRDMA_FN_CREATE_QP, vrdma_do_create_qp, sizeof(struct vrdma_create_qp_in),
	   sizeof(struct vrdma_create_qp_out), false, false),
	FN(VRDMA_FN_MODIFY_QP, vrdma_do_modify_qp, sizeof(struct vrdma_modify_qp_in), 0,
	   false, false),
	FN(VRDMA_FN_QUERY_QP, vrdma_do_query_qp, sizeof(struct vrdma_query_qp_in),
	   sizeof(struct vrdma_query_qp_out), false, false),
	FN(VRDMA_FN_DESTROY_QP, vrdma_do_destroy_qp, sizeof(struct vrdma_handle), 0, false,
	   false),
	FN(VRDMA_FN_ARM_CQ, vrdma_do_arm_cq, sizeof(struct vrdma_arm_cq_in), 0, false, false),
	FN(VRDMA_FN_CREATE_AH, vrdma_do_create_ah, sizeof(struct vrdma_create_ah_in),
	   sizeof(struct vrdma_handle), false, false),
	FN(VRDMA_FN_DESTROY_AH, vrdma_do_destroy_ah, sizeof(struct vrdma_handle), 0, false,
	   false),
	FN(VRDMA_FN_CREATE_SRQ, vrdma_do_create_srq, sizeof(struct vrdma_create_srq_in),
	   sizeof(struct vrdma_create_srq_out), false, false),
	FN(VRDMA_FN_MODIFY_SRQ, vrdma_do_modify_srq, sizeof(struct vrdma_modify_srq_in), 0,
	   false, false),
	FN(VRDMA_FN_QUERY_SRQ, vrdma_do_query_srq, sizeof(struct vrdma_handle),
	   sizeof(struct vrdma_srq_attr), false, false),
	FN(VRDMA_FN_DESTROY_SRQ, vrdma_do_destroy_srq, sizeof(struct vrdma_handle), 0, false,
	   false),
	FN(VRDMA_FN_RESIZE_CQ, vrdma_do_resize_cq, sizeof(struct vrdma_resize_cq_in),
	   sizeof(struct vrdma_create_cq_out), false, false),
	FN(VRDMA_FN_ALLOC_MW, vrdma_do_alloc_mw, sizeof(struct vrdma_alloc_mw_in),
	   sizeof(struct vrdma_alloc_mw_out), false, false),
	FN(VRDMA_FN_DEALLOC_MW, vrdma_do_dealloc_mw, sizeof(struct vrdma_handle), 0, false,
	   false),
};

bool vrdma_fn_is_slow(uint32_t fn)
{
	return fn < VRDMA_FN__MAX && fns[fn].slow;
}

/*
 * Run DEVCALL `fn` for guest g. The input is copied out of shared memory by the caller;
 * here its size is checked exactly (a short or long input is -EINVAL, an unknown function
 * -EOPNOTSUPP) and out is zeroed so that no stale byte reaches the guest.
 */
int vrdma_dispatch(struct vrdma_guest *g, uint32_t fn, const void *in, size_t inlen,
		   void *out, size_t outmax, size_t *outlen)
{
	const struct fn_desc *d;
	int err;

	*outlen = 0;
	if (fn >= VRDMA_FN__MAX || !fns[fn].fn)
		return -EOPNOTSUPP;
	d = &fns[fn];
	if (d->var_in ? inlen < d->in : inlen != d->in)
		return -EINVAL;
	if (outmax < d->out)
		return -EMSGSIZE;
	memset(out, 0, d->out);
	pthread_mutex_lock(&g->lock);
	err = d->fn(g, in, inlen, out);
	pthread_mutex_unlock(&g->lock);
	if (!err)
		*outlen = d->out;
	return err;
}
