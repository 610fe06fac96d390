// SPDX-License-Identifier: GPL-2.0 OR MIT
/*
 * fuzz-wqe: the kernel backend's WQE decoder (kernel/vbk_wqe.c, the very file the module
 * builds) on hostile slots under hostile limits. It must never read past the slot (which
 * is exactly `stride` bytes on the heap, so ASan sees one byte too far), and what it
 * accepts must keep its promises (vbk_wqe.h); a broken promise is an abort().
 *
 * The input: 16 bytes of limits, then the slot's first bytes (the rest of it is zero).
 *   [0]    QP type: & 3 = 0 RC, 1 UC, 2 UD, 3 the raw byte [1] (junk, or by chance valid)
 *   [2]    stride: < 0x80: 16 << ([2] % 9) (the powers of two 16..4096); else the le16 at
 *          [3] modulo 4097 (any size 0..4096)
 *   [5]    max_sge: < 0xf0: the le32 at [6] modulo 257; else that le32 as it is
 *   [10]   max_inline: < 0xf0: the le32 at [11] modulo 4097; else that le32 as it is
 * The seeds in tests/fuzz-corpus/fuzz-wqe/ come from kernel/fuzz/fuzz-wqe-seeds.
 *
 * The rules are restated here from libibverbs' enums (IBV_WR_*, IBV_SEND_*, IBV_QPT_*),
 * not from the decoder's own table, so that a wrong entry there is a finding.
 */
/* fuzz-sources: kernel/vbk_wqe.c */
#include <endian.h>
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <infiniband/verbs.h>
#include "../vbk_wqe.h"

#define HDR		16
#define MAX_STRIDE	4096u

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static uint32_t get_le32(const uint8_t *p)
{
	uint32_t v;

	memcpy(&v, p, sizeof(v));
	return le32toh(v);
}

/* What each QP type may post on the kernel backend (issue 11): never LOCAL_INV, BIND_MW,
 * TSO or anything past SEND_WITH_INV. */
static bool allowed(uint8_t qpt, uint32_t op)
{
	switch (op) {
	case IBV_WR_SEND:
	case IBV_WR_SEND_WITH_IMM:
		return qpt == IBV_QPT_RC || qpt == IBV_QPT_UC || qpt == IBV_QPT_UD;
	case IBV_WR_RDMA_WRITE:
	case IBV_WR_RDMA_WRITE_WITH_IMM:
		return qpt == IBV_QPT_RC || qpt == IBV_QPT_UC;
	case IBV_WR_RDMA_READ:
	case IBV_WR_ATOMIC_CMP_AND_SWP:
	case IBV_WR_ATOMIC_FETCH_AND_ADD:
	case IBV_WR_SEND_WITH_INV:
		return qpt == IBV_QPT_RC;
	default:
		return false;
	}
}

/* A broken promise: say which (fuzz.sh copies lines that start with the target's name
 * into the crash note), then abort for libFuzzer. */
#define check(c)								\
	do {									\
		if (!(c)) {							\
			fprintf(stderr, "fuzz-wqe: broken promise: %s (line %d)\n", \
				#c, __LINE__);					\
			abort();						\
		}								\
	} while (0)

/* Inside [slot, slot + stride): p and the n bytes after it. */
static bool inside(const uint8_t *slot, uint32_t stride, const void *p, uint64_t n)
{
	const uint8_t *b = p;

	return b >= slot && (uint64_t)(b - slot) + n <= stride;
}

static void check_swqe(const uint8_t *slot, const struct vbk_wq_limits *lim)
{
	const uint32_t flags_ok = IBV_SEND_FENCE | IBV_SEND_SIGNALED | IBV_SEND_SOLICITED |
				  IBV_SEND_INLINE;
	struct vbk_swqe w, again;
	volatile uint8_t sink = 0;

	if (vbk_swqe_decode(slot, lim, &w))
		return;
	/* Pure: the same bytes decode the same way. */
	memset(&again, 0xa5, sizeof(again));
	check(vbk_swqe_decode(slot, lim, &again) == 0 && !memcmp(&w, &again, sizeof(w)));

	check(lim->stride >= sizeof(struct vrdma_swqe));
	check(allowed(lim->qp_type, w.opcode));
	check(!(w.flags & ~flags_ok));
	check(w.wr_id == le64toh(((const struct vrdma_swqe *)slot)->wr_id));
	if (w.flags & IBV_SEND_INLINE) {
		check(w.num_sge == 0 && !w.sge && w.inl);
		check(w.inline_len <= lim->max_inline);
		check(inside(slot, lim->stride, w.inl, w.inline_len));
		for (uint32_t i = 0; i < w.inline_len; i++)
			sink ^= w.inl[i];
	} else {
		check(w.inline_len == 0 && !w.inl && w.sge);
		check(w.num_sge <= lim->max_sge);
		check(inside(slot, lim->stride, w.sge,
			     (uint64_t)w.num_sge * sizeof(struct vrdma_sge)));
		for (uint32_t i = 0; i < w.num_sge; i++) {
			__u64 addr;
			__u32 len, lkey;

			vbk_sge_get(&w.sge[i], &addr, &len, &lkey);
			sink ^= (uint8_t)(addr ^ len ^ lkey);
		}
	}
	if (lim->qp_type != IBV_QPT_UD)
		check(!w.ud_ah && !w.ud_qpn && !w.ud_qkey);
	/* Only atomics stand in as refused, and an aligned atomic into 8 bytes never does. */
	if (vbk_swqe_refused_atomic(&w))
		check(w.opcode == IBV_WR_ATOMIC_CMP_AND_SWP ||
		      w.opcode == IBV_WR_ATOMIC_FETCH_AND_ADD);
	(void)sink;
}

static void check_rwqe(const uint8_t *slot, const struct vbk_wq_limits *lim)
{
	const struct vrdma_sge *sge = (const struct vrdma_sge *)(slot + sizeof(struct vrdma_rwqe));
	__u64 wr_id = 0, wr_id2 = 0;
	int n = vbk_rwqe_decode(slot, lim->stride, lim->max_sge, &wr_id);

	if (n < 0) {
		check(n == -EINVAL);
		return;
	}
	check(vbk_rwqe_decode(slot, lim->stride, lim->max_sge, &wr_id2) == n && wr_id2 == wr_id);
	check(lim->stride >= sizeof(struct vrdma_rwqe));
	check((uint32_t)n <= lim->max_sge);
	check((uint32_t)n == get_le32(slot + 8));
	check(wr_id == le64toh(((const struct vrdma_rwqe *)slot)->wr_id));
	check(inside(slot, lim->stride, sge, (uint64_t)n * sizeof(struct vrdma_sge)));
	for (int i = 0; i < n; i++) {
		__u64 addr;
		__u32 len, lkey;

		vbk_sge_get(&sge[i], &addr, &len, &lkey);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const uint8_t qpts[3] = { IBV_QPT_RC, IBV_QPT_UC, IBV_QPT_UD };
	struct vbk_wq_limits lim;
	uint8_t *slot;

	if (size < HDR)
		return 0;
	memset(&lim, 0, sizeof(lim));
	lim.qp_type = (data[0] & 3) == 3 ? data[1] : qpts[data[0] & 3];
	if (data[2] < 0x80)
		lim.stride = 16u << (data[2] % 9);
	else
		lim.stride = (data[3] | (uint32_t)data[4] << 8) % (MAX_STRIDE + 1);
	lim.max_sge = get_le32(data + 6);
	if (data[5] < 0xf0)
		lim.max_sge %= 257;
	lim.max_inline = get_le32(data + 11);
	if (data[10] < 0xf0)
		lim.max_inline %= MAX_STRIDE + 1;

	/* Exactly stride bytes: ASan reports any read past the slot. */
	slot = malloc(lim.stride);
	if (!slot && lim.stride)
		abort();
	data += HDR;
	size -= HDR;
	if (lim.stride) {
		memset(slot, 0, lim.stride);
		memcpy(slot, data, size < lim.stride ? size : lim.stride);
	}
	check_swqe(slot, &lim);
	check_rwqe(slot, &lim);
	free(slot);
	return 0;
}
