/* SPDX-License-Identifier: (GPL-2.0 WITH Linux-syscall-note) OR MIT */
/*
 * The vrdma DEVCALL functions and their payload sizes: one table, read by every decoder
 * (vbusd's relay backend, verbs-host/vrdma/dispatch.c, and the kernel backend,
 * kernel/vbk_call.c), so that both check the same sizes.
 *
 * VRDMA_FN_TABLE(X) expands X(fn, input size, output size, flags) once per function.
 * Input sizes are what this ABI version defines; a decoder accepts a longer input whose
 * extra bytes are all zero (as the kernel's copy_struct_from_user does) and, for
 * VRDMA_FNF_VAR_IN, trailing records (REG_MR's pieces) and nothing after them. HELLO is
 * the exception that lets every version meet: it also accepts its 8-byte version-1 form
 * (VRDMA_HELLO_IN_V1_SIZE, answered with VRDMA_HELLO_OUT_V1_SIZE bytes), and ignores any
 * tail past the fields it knows (docs/vrdma.md, "HELLO").
 */
#ifndef VBUS_VRDMA_FNS_H
#define VBUS_VRDMA_FNS_H

#include <vbus/vrdma.h>

#define VRDMA_FNF_SLOW		(1u << 0)	/* may block in the kernel: the caller sleeps */
#define VRDMA_FNF_VAR_IN	(1u << 1)	/* records follow the input structure */

#define VRDMA_SZ(t)	((__u32)sizeof(struct t))
#define VRDMA_FN_TABLE(X) \
	X(VRDMA_FN_HELLO, VRDMA_SZ(vrdma_hello_in), VRDMA_SZ(vrdma_hello_out), 0) \
	X(VRDMA_FN_QUERY_DEVICE, 0, VRDMA_SZ(vrdma_query_device_out), 0) \
	X(VRDMA_FN_QUERY_PORT, VRDMA_SZ(vrdma_query_port_in), VRDMA_SZ(vrdma_query_port_out), 0) \
	X(VRDMA_FN_QUERY_GID, VRDMA_SZ(vrdma_query_gid_in), VRDMA_SZ(vrdma_query_gid_out), 0) \
	X(VRDMA_FN_QUERY_PKEY, VRDMA_SZ(vrdma_query_pkey_in), VRDMA_SZ(vrdma_query_pkey_out), 0) \
	X(VRDMA_FN_ALLOC_PD, 0, VRDMA_SZ(vrdma_handle), 0) \
	X(VRDMA_FN_DEALLOC_PD, VRDMA_SZ(vrdma_handle), 0, 0) \
	X(VRDMA_FN_REG_MR, VRDMA_SZ(vrdma_reg_mr_in), VRDMA_SZ(vrdma_reg_mr_out), \
	  VRDMA_FNF_SLOW | VRDMA_FNF_VAR_IN) \
	X(VRDMA_FN_DEREG_MR, VRDMA_SZ(vrdma_handle), 0, VRDMA_FNF_SLOW) \
	X(VRDMA_FN_CREATE_CQ, VRDMA_SZ(vrdma_create_cq_in), VRDMA_SZ(vrdma_create_cq_out), 0) \
	X(VRDMA_FN_DESTROY_CQ, VRDMA_SZ(vrdma_handle), 0, 0) \
	X(VRDMA_FN_CREATE_QP, VRDMA_SZ(vrdma_create_qp_in), VRDMA_SZ(vrdma_create_qp_out), 0) \
	X(VRDMA_FN_MODIFY_QP, VRDMA_SZ(vrdma_modify_qp_in), 0, 0) \
	X(VRDMA_FN_QUERY_QP, VRDMA_SZ(vrdma_query_qp_in), VRDMA_SZ(vrdma_query_qp_out), 0) \
	X(VRDMA_FN_DESTROY_QP, VRDMA_SZ(vrdma_handle), 0, 0) \
	X(VRDMA_FN_ARM_CQ, VRDMA_SZ(vrdma_arm_cq_in), 0, 0) \
	X(VRDMA_FN_CREATE_AH, VRDMA_SZ(vrdma_create_ah_in), VRDMA_SZ(vrdma_handle), 0) \
	X(VRDMA_FN_DESTROY_AH, VRDMA_SZ(vrdma_handle), 0, 0) \
	X(VRDMA_FN_CREATE_SRQ, VRDMA_SZ(vrdma_create_srq_in), VRDMA_SZ(vrdma_create_srq_out), 0) \
	X(VRDMA_FN_MODIFY_SRQ, VRDMA_SZ(vrdma_modify_srq_in), 0, 0) \
	X(VRDMA_FN_QUERY_SRQ, VRDMA_SZ(vrdma_handle), VRDMA_SZ(vrdma_srq_attr), 0) \
	X(VRDMA_FN_DESTROY_SRQ, VRDMA_SZ(vrdma_handle), 0, 0) \
	X(VRDMA_FN_RESIZE_CQ, VRDMA_SZ(vrdma_resize_cq_in), VRDMA_SZ(vrdma_create_cq_out), 0) \
	X(VRDMA_FN_ALLOC_MW, VRDMA_SZ(vrdma_alloc_mw_in), VRDMA_SZ(vrdma_alloc_mw_out), 0) \
	X(VRDMA_FN_DEALLOC_MW, VRDMA_SZ(vrdma_handle), 0, 0) \
	X(VRDMA_FN_QUERY_DEVICE_EX, 0, VRDMA_SZ(vrdma_query_device_ex_out), 0) \
	X(VRDMA_FN_QUERY_GID_TABLE, VRDMA_SZ(vrdma_query_gid_table_in), \
	  VRDMA_SZ(vrdma_query_gid_table_out), 0)

#endif /* VBUS_VRDMA_FNS_H */
