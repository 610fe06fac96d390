// SPDX-License-Identifier: MIT
/*
 * The decoder of a guest's DEVCALLs to a vrdma device. Sizes and flags come from the one
 * table in <vbus/vrdma-fns.h>, which the kernel backend reads too; the handlers are here.
 * Inputs follow the kernel's copy_struct_from_user(): a longer input than this version
 * knows is accepted when its extra bytes are zero (a newer guest that left a new field
 * unset), -E2BIG when not; a shorter one is -EINVAL. The handler sees a zero-padded copy
 * of exactly the known size, so it never reads past what the guest sent.
 */
#include <errno.h>
#include <string.h>
#include <vbus/vrdma-fns.h>
#include "vrdma.h"

typedef int vrdma_handler(struct vrdma_guest *g, const void *in, size_t inlen, void *out);

/* fn, handler: every function of VRDMA_FN_TABLE, and no other (checked below). */
#define VRDMA_HANDLERS(H) \
	H(VRDMA_FN_HELLO, vrdma_do_hello) \
	H(VRDMA_FN_QUERY_DEVICE, vrdma_do_query_device) \
	H(VRDMA_FN_QUERY_PORT, vrdma_do_query_port) \
	H(VRDMA_FN_QUERY_GID, vrdma_do_query_gid) \
	H(VRDMA_FN_QUERY_PKEY, vrdma_do_query_pkey) \
	H(VRDMA_FN_ALLOC_PD, vrdma_do_alloc_pd) \
	H(VRDMA_FN_DEALLOC_PD, vrdma_do_dealloc_pd) \
	H(VRDMA_FN_REG_MR, vrdma_do_reg_mr) \
	H(VRDMA_FN_DEREG_MR, vrdma_do_dereg_mr) \
	H(VRDMA_FN_CREATE_CQ, vrdma_do_create_cq) \
	H(VRDMA_FN_DESTROY_CQ, vrdma_do_destroy_cq) \
	H(VRDMA_FN_CREATE_QP, vrdma_do_create_qp) \
	H(VRDMA_FN_MODIFY_QP, vrdma_do_modify_qp) \
	H(VRDMA_FN_QUERY_QP, vrdma_do_query_qp) \
	H(VRDMA_FN_DESTROY_QP, vrdma_do_destroy_qp) \
	H(VRDMA_FN_ARM_CQ, vrdma_do_arm_cq) \
	H(VRDMA_FN_CREATE_AH, vrdma_do_create_ah) \
	H(VRDMA_FN_DESTROY_AH, vrdma_do_destroy_ah) \
	H(VRDMA_FN_CREATE_SRQ, vrdma_do_create_srq) \
	H(VRDMA_FN_MODIFY_SRQ, vrdma_do_modify_srq) \
	H(VRDMA_FN_QUERY_SRQ, vrdma_do_query_srq) \
	H(VRDMA_FN_DESTROY_SRQ, vrdma_do_destroy_srq) \
	H(VRDMA_FN_RESIZE_CQ, vrdma_do_resize_cq) \
	H(VRDMA_FN_ALLOC_MW, vrdma_do_alloc_mw) \
	H(VRDMA_FN_DEALLOC_MW, vrdma_do_dealloc_mw) \
	H(VRDMA_FN_QUERY_DEVICE_EX, vrdma_do_query_device_ex) \
	H(VRDMA_FN_QUERY_GID_TABLE, vrdma_do_query_gid_table)

/* The biggest fixed input and output of any function: the dispatcher's copies. */
#define MAX_IN	256
#define MAX_OUT	512

/* Every function in the table has a handler, none twice, and its sizes fit the copies. */
#define TABLE_BIT(fn, i, o, f)	| (1ull << (fn))
#define HANDLER_BIT(fn, h)	| (1ull << (fn))
#define ONE(...)		+ 1
#define FITS(fn, i, o, f) \
	_Static_assert((i) <= MAX_IN && (o) <= MAX_OUT, #fn ": sizes fit the copies");
_Static_assert(VRDMA_FN__MAX <= 64, "function bits");
_Static_assert((0 VRDMA_FN_TABLE(TABLE_BIT)) == (0 VRDMA_HANDLERS(HANDLER_BIT)),
	       "every function of vrdma-fns.h has a handler, and every handler a row");
_Static_assert((0 VRDMA_FN_TABLE(ONE)) == (0 VRDMA_HANDLERS(ONE)) &&
	       (0 VRDMA_FN_TABLE(ONE)) == VRDMA_FN__MAX - 1, "one row per function");
VRDMA_FN_TABLE(FITS)

struct fn_desc {
	vrdma_handler *fn;
	uint32_t in;		/* input size this version knows; VAR_IN: the header */
	uint32_t out;		/* output size */
	uint32_t flags;		/* VRDMA_FNF_* */
};

#define SIZES(fn, i, o, f)	[fn] = { .in = (i), .out = (o), .flags = (f) },
static const struct fn_desc sizes[VRDMA_FN__MAX] = { VRDMA_FN_TABLE(SIZES) };
#define HANDLER(fn, h)		[fn] = h,
static vrdma_handler *const handlers[VRDMA_FN__MAX] = { VRDMA_HANDLERS(HANDLER) };

bool vrdma_fn_is_slow(uint32_t fn)
{
	return fn < VRDMA_FN__MAX && (sizes[fn].flags & VRDMA_FNF_SLOW);
}

/*
 * The checks before any handler runs, as a pure function of fn and inlen: the bytes of in
 * the handler may use (*known, zero-padded up to the size the handler reads), the output
 * size (*outlen), or -EOPNOTSUPP (unknown function), -EINVAL (short), -E2BIG (a longer
 * input whose extra bytes are not zero). Only HELLO, which must reach every guest version,
 * is special: it accepts its 8-byte version-1 form (answered with the 24-byte version-1
 * hello_out), and ignores what follows the fields it knows, as the bus's HELLO does.
 */
static int check_input(uint32_t fn, const void *in, size_t inlen, size_t *known,
		       size_t *outlen)
{
	const struct fn_desc *d;

	if (fn >= VRDMA_FN__MAX || !handlers[fn])
		return -EOPNOTSUPP;
	d = &sizes[fn];
	*outlen = d->out;
	if (fn == VRDMA_FN_HELLO && inlen == VRDMA_HELLO_IN_V1_SIZE) {
		*known = inlen;
		*outlen = VRDMA_HELLO_OUT_V1_SIZE;
		return 0;
	}
	if (inlen < d->in)
		return -EINVAL;
	if (d->flags & VRDMA_FNF_VAR_IN) {
		*known = inlen;	/* the records follow the header; the handler checks them */
		return 0;
	}
	*known = d->in;
	if (fn != VRDMA_FN_HELLO && !vrdma_zero((const uint8_t *)in + d->in, inlen - d->in))
		return -E2BIG;
	return 0;
}

/*
 * Run DEVCALL `fn` for guest g. The input is copied out of shared memory by the caller;
 * its size is checked here (check_input), and the handler writes into a zeroed buffer of
 * the whole output size, of which the guest gets *outlen bytes (no stale byte reaches it).
 * 0 or -errno. *outlen is 0 on error, except for HELLO's -EPROTONOSUPPORT, whose answer
 * says which versions the host speaks.
 */
int vrdma_dispatch(struct vrdma_guest *g, uint32_t fn, const void *in, size_t inlen,
		   void *out, size_t outmax, size_t *outlen)
{
	_Alignas(8) uint8_t inbuf[MAX_IN], outbuf[MAX_OUT];
	const void *arg = inbuf;
	size_t known, n;
	int err;

	*outlen = 0;
	err = check_input(fn, in, inlen, &known, &n);
	if (err)
		return err;
	if (outmax < n)
		return -EMSGSIZE;
	if (sizes[fn].flags & VRDMA_FNF_VAR_IN) {
		arg = in;
	} else {
		memset(inbuf, 0, sizes[fn].in);
		if (known)
			memcpy(inbuf, in, known);
		known = sizes[fn].in;
	}
	memset(outbuf, 0, sizes[fn].out);
	pthread_mutex_lock(&g->lock);
	err = handlers[fn](g, arg, known, outbuf);
	pthread_mutex_unlock(&g->lock);
	if (!err || (fn == VRDMA_FN_HELLO && err == -EPROTONOSUPPORT)) {
		memcpy(out, outbuf, n);
		*outlen = n;
	}
	return err;
}
