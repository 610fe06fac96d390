// SPDX-License-Identifier: GPL-2.0 OR MIT
/*
 * The send and receive WQE decoder of the kernel backend (vbk_wqe.h). Built into the
 * module and into the userspace fuzzer (kernel/fuzz/fuzz-wqe.c): only <linux/types.h>,
 * <rdma/ib_user_verbs.h> and the byte-order helpers below.
 */
#ifdef __KERNEL__
#include <linux/errno.h>
#include <linux/string.h>
#include <linux/kernel.h>
#define vbk_le16(x)	le16_to_cpu(x)
#define vbk_le32(x)	le32_to_cpu(x)
#define vbk_le64(x)	le64_to_cpu(x)
#else
#include <endian.h>
#include <errno.h>
#include <stdbool.h>
#include <string.h>
#define vbk_le16(x)	le16toh(x)
#define vbk_le32(x)	le32toh(x)
#define vbk_le64(x)	le64toh(x)
#endif
#include <rdma/ib_user_verbs.h>
#include "vbk_wqe.h"

#define QPT_RC	2
#define QPT_UC	3
#define QPT_UD	4
#define SEND_FENCE	1u
#define SEND_SIGNALED	2u
#define SEND_SOLICITED	4u
#define SEND_INLINE	8u
#define FLAGS_ALLOWED	(SEND_FENCE | SEND_SIGNALED | SEND_SOLICITED | SEND_INLINE)

/* The opcodes a QP type may post here. Not on the kernel backend: LOCAL_INV and BIND_MW
 * (they would act on kernel MRs, and 6.1 has no kernel memory windows), and the rest of
 * the extended opcodes (TSO, masked atomics, driver-specific).
 */
static bool opcode_ok(__u8 qpt, __u32 op)
{
	switch (op) {
	case IB_UVERBS_WR_SEND:
	case IB_UVERBS_WR_SEND_WITH_IMM:
		return qpt == QPT_RC || qpt == QPT_UC || qpt == QPT_UD;
	case IB_UVERBS_WR_RDMA_WRITE:
	case IB_UVERBS_WR_RDMA_WRITE_WITH_IMM:
		return qpt == QPT_RC || qpt == QPT_UC;
	case IB_UVERBS_WR_RDMA_READ:
	case IB_UVERBS_WR_ATOMIC_CMP_AND_SWP:
	case IB_UVERBS_WR_ATOMIC_FETCH_AND_ADD:
	case IB_UVERBS_WR_SEND_WITH_INV:
		return qpt == QPT_RC;
	default:
		return false;
	}
}

int vbk_swqe_decode(const __u8 *slot, const struct vbk_wq_limits *lim, struct vbk_swqe *w)
{
	struct vrdma_swqe h;
	__u32 room;

	if (lim->stride < sizeof(h))
		return -EINVAL;
	memcpy(&h, slot, sizeof(h));
	room = lim->stride - (__u32)sizeof(h);
	memset(w, 0, sizeof(*w));
	w->wr_id = vbk_le64(h.wr_id);
	w->opcode = h.opcode;
	w->flags = vbk_le32(h.send_flags);
	if (!opcode_ok(lim->qp_type, w->opcode) || (w->flags & ~FLAGS_ALLOWED) || h.reserved)
		return -EINVAL;
	if (w->flags & SEND_INLINE) {
		w->inline_len = vbk_le16(h.inline_len);
		if (w->inline_len > lim->max_inline || w->inline_len > room || h.num_sge)
			return -EINVAL;
		w->inl = slot + sizeof(h);
	} else {
		w->num_sge = h.num_sge;
		if (w->num_sge > lim->max_sge || w->num_sge * sizeof(struct vrdma_sge) > room ||
		    h.inline_len)
			return -EINVAL;
		w->sge = (const struct vrdma_sge *)(slot + sizeof(h));
	}
	w->imm = h.imm_data;
	w->rkey = vbk_le32(h.rkey);
	w->remote_addr = vbk_le64(h.remote_addr);
	w->compare_add = vbk_le64(h.compare_add);
	w->swap = vbk_le64(h.swap);
	if (lim->qp_type == QPT_UD) {
		w->ud_ah = vbk_le32(h.ud_ah);
		w->ud_qpn = vbk_le32(h.ud_remote_qpn);
		w->ud_qkey = vbk_le32(h.ud_remote_qkey);
	}
	return 0;
}

bool vbk_swqe_refused_atomic(const struct vbk_swqe *w)
{
	__u64 len = 0;
	__u32 k;

	if (w->opcode != IB_UVERBS_WR_ATOMIC_CMP_AND_SWP &&
	    w->opcode != IB_UVERBS_WR_ATOMIC_FETCH_AND_ADD)
		return false;
	if (w->flags & SEND_INLINE) {
		len = w->inline_len;
	} else {
		for (k = 0; k < w->num_sge; k++) {
			struct vrdma_sge c;

			memcpy(&c, &w->sge[k], sizeof(c));
			len += vbk_le32(c.length);
		}
	}
	return (w->remote_addr & 7) || len < 8;
}

int vbk_rwqe_decode(const __u8 *slot, __u32 stride, __u32 max_sge, __u64 *wr_id)
{
	struct vrdma_rwqe h;
	__u32 n;

	if (stride < sizeof(h))
		return -EINVAL;
	memcpy(&h, slot, sizeof(h));
	n = vbk_le32(h.num_sge);
	if (n > max_sge || n > (stride - sizeof(h)) / sizeof(struct vrdma_sge) || h.reserved)
		return -EINVAL;
	*wr_id = vbk_le64(h.wr_id);
	return (int)n;
}

void vbk_sge_get(const struct vrdma_sge *s, __u64 *addr, __u32 *len, __u32 *lkey)
{
	struct vrdma_sge c;

	memcpy(&c, s, sizeof(c));
	*addr = vbk_le64(c.addr);
	*len = vbk_le32(c.length);
	*lkey = vbk_le32(c.lkey);
}
