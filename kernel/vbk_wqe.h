/* SPDX-License-Identifier: GPL-2.0 OR MIT */
/*
 * Decoding a guest's work requests: a pure function of the bytes the guest wrote (copied
 * once by the caller) and the queue's limits, with no kernel state. The same C file is
 * built into the module and into a userspace libFuzzer target
 * (kernel/fuzz/fuzz-wqe.c).
 *
 * What it checks: the opcode is one this QP type may post on the kernel backend, the
 * flags are known, the SGE count and the inline length fit both the QP's caps and the
 * slot, reserved fields are zero. What it leaves to the caller: that every lkey and AH
 * handle is the guest's own (they need the guest's tables).
 */
#ifndef VBK_WQE_H
#define VBK_WQE_H

#include <linux/types.h>
#include <vbus/vrdma.h>

struct vbk_wq_limits {
	__u8 qp_type;			/* IB_QPT_RC (2), IB_QPT_UC (3), IB_QPT_UD (4) */
	__u32 stride;			/* bytes per slot */
	__u32 max_sge;
	__u32 max_inline;
};

struct vbk_swqe {
	__u64 wr_id;
	__u32 opcode;			/* enum ib_uverbs_wr_opcode (= ibv_wr_opcode) */
	__u32 flags;			/* IB_SEND_* (= IBV_SEND_*) */
	__u32 num_sge;			/* SGEs at sge[], or 0 with inline data */
	__u32 inline_len;		/* flags has INLINE: bytes at inl */
	const struct vrdma_sge *sge;	/* in the caller's copy of the slot */
	const __u8 *inl;
	__be32 imm;			/* or the rkey to invalidate (SEND_WITH_INV) */
	__u32 rkey;
	__u64 remote_addr;
	__u64 compare_add;
	__u64 swap;
	__u32 ud_ah, ud_qpn, ud_qkey;
};

/* Decode the send WQE in slot (lim->stride bytes). 0, or -EINVAL: the WQE breaks the
 * queue's rules (the QP goes to error).
 */
int vbk_swqe_decode(const __u8 *slot, const struct vbk_wq_limits *lim, struct vbk_swqe *w);

/* A decoded atomic that a user QP takes and its responder refuses (an invalid-request NAK)
 * but that rxe's kernel post refuses at once: a remote address not 8-byte aligned, or less
 * than 8 bytes to hold the result.
 */
bool vbk_swqe_refused_atomic(const struct vbk_swqe *w);

/* Decode the receive WQE in slot: its wr_id and SGEs (at slot + sizeof(vrdma_rwqe)).
 * The SGE count, or -EINVAL.
 */
int vbk_rwqe_decode(const __u8 *slot, __u32 stride, __u32 max_sge, __u64 *wr_id);

/* The SGE k of a decoded WQE, in host order. */
void vbk_sge_get(const struct vrdma_sge *s, __u64 *addr, __u32 *len, __u32 *lkey);

#endif /* VBK_WQE_H */
