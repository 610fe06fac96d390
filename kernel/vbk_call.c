// SPDX-License-Identifier: GPL-2.0
/*
 * VBK_IOC_CALL: the decoder of a guest's control calls. The sizes come from the one table
 * in <vbus/vrdma-fns.h>, which the relay backend's decoder reads too. An input is copied
 * with copy_struct_from_user's rule: shorter than the structure is -EINVAL here (every
 * field matters), longer is accepted when the extra bytes are zero (-E2BIG otherwise);
 * HELLO alone also takes its version-1 form and ignores a tail, as the relay's decoder
 * does. The handler sees a kernel copy of exactly the known size and writes into a zeroed
 * output.
 */
#include <linux/uaccess.h>
#include <vbus/vrdma-fns.h>
#include "vbk.h"

typedef int (*vbk_handler_t)(struct vbk_guest *g, const void *in, u32 inlen, void *out);

static const vbk_handler_t handlers[VRDMA_FN__MAX] = {
	[VRDMA_FN_HELLO] = vbk_do_hello,
	[VRDMA_FN_QUERY_DEVICE] = vbk_do_query_device,
	[VRDMA_FN_QUERY_PORT] = vbk_do_query_port,
	[VRDMA_FN_QUERY_GID] = vbk_do_query_gid,
	[VRDMA_FN_QUERY_PKEY] = vbk_do_query_pkey,
	[VRDMA_FN_ALLOC_PD] = vbk_do_alloc_pd,
	[VRDMA_FN_DEALLOC_PD] = vbk_do_dealloc_pd,
	[VRDMA_FN_REG_MR] = vbk_do_reg_mr,
	[VRDMA_FN_DEREG_MR] = vbk_do_dereg_mr,
	[VRDMA_FN_CREATE_CQ] = vbk_do_create_cq,
	[VRDMA_FN_DESTROY_CQ] = vbk_do_destroy_cq,
	[VRDMA_FN_CREATE_QP] = vbk_do_create_qp,
	[VRDMA_FN_MODIFY_QP] = vbk_do_modify_qp,
	[VRDMA_FN_QUERY_QP] = vbk_do_query_qp,
	[VRDMA_FN_DESTROY_QP] = vbk_do_destroy_qp,
	[VRDMA_FN_ARM_CQ] = vbk_do_arm_cq,
	[VRDMA_FN_CREATE_AH] = vbk_do_create_ah,
	[VRDMA_FN_DESTROY_AH] = vbk_do_destroy_ah,
	[VRDMA_FN_CREATE_SRQ] = vbk_do_create_srq,
	[VRDMA_FN_MODIFY_SRQ] = vbk_do_modify_srq,
	[VRDMA_FN_QUERY_SRQ] = vbk_do_query_srq,
	[VRDMA_FN_DESTROY_SRQ] = vbk_do_destroy_srq,
	[VRDMA_FN_RESIZE_CQ] = vbk_do_resize_cq,
	[VRDMA_FN_ALLOC_MW] = vbk_do_alloc_mw,
	[VRDMA_FN_DEALLOC_MW] = vbk_do_dealloc_mw,
	[VRDMA_FN_QUERY_DEVICE_EX] = vbk_do_query_device_ex,
	[VRDMA_FN_QUERY_GID_TABLE] = vbk_do_query_gid_table,
};

struct fn_size {
	u32 in, out;
};

#define VBK_FN_SIZE(fn, i, o, f) \
	[fn] = { i, o },
static const struct fn_size sizes[VRDMA_FN__MAX] = { VRDMA_FN_TABLE(VBK_FN_SIZE) };
#undef VBK_FN_SIZE

#define VBK_CALL_BUF	512

long vbk_call(struct vbk_guest *g, const struct vbk_call *c)
{
	u8 in[VBK_CALL_BUF], out[VBK_CALL_BUF];
	const struct fn_size *d;
	u32 outlen, inlen;
	int err;

	BUILD_BUG_ON(sizeof(struct vrdma_query_qp_out) > VBK_CALL_BUF);
	BUILD_BUG_ON(sizeof(struct vrdma_modify_qp_in) > VBK_CALL_BUF);
	BUILD_BUG_ON(sizeof(struct vrdma_query_gid_table_out) > VBK_CALL_BUF);
	BUILD_BUG_ON(sizeof(struct vrdma_reg_mr_in) + sizeof(struct vrdma_mr_piece) > VBK_CALL_BUF);
	if (c->reserved || c->fn >= VRDMA_FN__MAX || !handlers[c->fn])
		return -EOPNOTSUPP;
	d = &sizes[c->fn];
	outlen = d->out;
	inlen = d->in;
	if (c->fn == VRDMA_FN_HELLO) {
		/* HELLO meets every version: its 8-byte version-1 form gets the version-1
		 * answer, and a tail past what we know is a later version's, ignored.
		 */
		if (c->in_len == VRDMA_HELLO_IN_V1_SIZE)
			outlen = VRDMA_HELLO_OUT_V1_SIZE;
		else if (c->in_len < d->in)
			return -EINVAL;
		memset(in, 0, d->in);
		if (copy_from_user(in, u64_to_user_ptr(c->in), min(c->in_len, d->in)))
			return -EFAULT;
	} else if (c->fn == VRDMA_FN_REG_MR &&
		   c->in_len == d->in + sizeof(struct vrdma_mr_piece)) {
		/* REG_MR's one piece: the caller's address of a buffer registered at another
		 * iova (a nested vbusd's window, docs/nesting.md); vbk_do_reg_mr checks it. */
		inlen = c->in_len;
		if (copy_from_user(in, u64_to_user_ptr(c->in), inlen))
			return -EFAULT;
	} else {
		if (c->in_len < d->in)
			return -EINVAL;
		err = copy_struct_from_user(in, d->in, u64_to_user_ptr(c->in), c->in_len);
		if (err)
			return err;
	}
	if (c->out_len < outlen)
		return -EMSGSIZE;
	memset(out, 0, d->out);
	mutex_lock(&g->ctl);
	err = g->dead ? -EIO : handlers[c->fn](g, in, inlen, out);
	mutex_unlock(&g->ctl);
	/* A refused HELLO still says which versions we speak. */
	if (err && !(c->fn == VRDMA_FN_HELLO && err == -EPROTONOSUPPORT))
		return err;
	if (copy_to_user(u64_to_user_ptr(c->out), out, outlen))
		return -EFAULT;
	return err ? err : outlen;
}
