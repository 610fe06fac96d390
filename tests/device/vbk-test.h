/* SPDX-License-Identifier: MIT */
/*
 * What the device tests of the kernel backend's descriptors share (vrdma-kernel.c,
 * vrdma-foreign.c): checks, the call ioctl on the attachment `gfd`, rings as the guest
 * library lays them out, and an RC QP connected to a QPN through modify_qp.
 */
#ifndef VBUS_TESTS_VBK_TEST_H
#define VBUS_TESTS_VBK_TEST_H

#include <endian.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <infiniband/verbs.h>
#include <vbus/vrdma.h>
#include <vbus/vrdma-kernel.h>

#define fail(...) do { printf("FAIL line %d: ", __LINE__); printf(__VA_ARGS__); \
		       printf("\n"); exit(1); } while (0)
#define check(c, ...) do { if (!(c)) fail(__VA_ARGS__); } while (0)
#define ok(...) do { printf("ok   "); printf(__VA_ARGS__); printf("\n"); } while (0)

static int gfd;			/* the attachment the calls go to */
static uint32_t gid_index;

static inline long call(uint32_t fn, const void *in, size_t inlen, void *out, size_t outlen)
{
	struct vbk_call c = { .fn = fn, .in_len = (uint32_t)inlen, .out_len = (uint32_t)outlen,
			      .in = (uintptr_t)in, .out = (uintptr_t)out };
	long r = ioctl(gfd, VBK_IOC_CALL, &c);

	return r < 0 ? -errno : r;
}

static inline uint32_t handle_call(uint32_t fn, const void *in, size_t inlen)
{
	struct vrdma_handle h;
	long r = call(fn, in, inlen, &h, sizeof(h));

	check(r == sizeof(h), "call %u: %ld", fn, r);
	return le32toh(h.handle);
}

/* A ring: header, then entries of stride bytes. */
struct ring {
	struct vrdma_ring *r;
	uint8_t *slots;
	uint32_t entries, stride, idx;
};

static inline void *slot(struct ring *q, uint32_t i)
{
	return q->slots + (size_t)(i & (q->entries - 1)) * q->stride;
}

static inline void publish(struct ring *q)
{
	__atomic_store_n(&q->r->prod, htole32(q->idx), __ATOMIC_RELEASE);
}

struct qp {
	uint32_t h, qpn;
	struct ring sq, rq;
};

static inline long modify_r(uint32_t h, uint32_t mask, const struct vrdma_qp_attr *a)
{
	struct vrdma_modify_qp_in in = { .handle = htole32(h), .attr_mask = htole32(mask),
					 .attr = *a };

	return call(VRDMA_FN_MODIFY_QP, &in, sizeof(in), NULL, 0);
}

static inline void modify(uint32_t h, uint32_t mask, const struct vrdma_qp_attr *a)
{
	long r = modify_r(h, mask, a);

	check(r == 0, "modify_qp mask %#x: %ld", mask, r);
}

/* How many lines `rdma res show WHAT` prints (-1: it could not run). */
static inline int count_res(const char *what)
{
	char cmd[128], line[512];
	int n = 0;
	FILE *f;

	snprintf(cmd, sizeof(cmd), "rdma res show %s 2>/dev/null", what);
	f = popen(cmd, "r");
	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f))
		n++;
	pclose(f);
	return n;
}

/* qp to RTS, connected to QPN dest at GID gid (RC, our GID index). */
static inline void connect_qp(struct qp *qp, uint32_t dest, const uint8_t *gid)
{
	struct vrdma_qp_attr a = { 0 };

	a.qp_state = htole32(IBV_QPS_INIT);
	a.port_num = 1;
	a.qp_access_flags = htole32(IBV_ACCESS_LOCAL_WRITE | IBV_ACCESS_REMOTE_WRITE |
				    IBV_ACCESS_REMOTE_READ);
	modify(qp->h, IBV_QP_STATE | IBV_QP_PKEY_INDEX | IBV_QP_PORT | IBV_QP_ACCESS_FLAGS, &a);
	memset(&a, 0, sizeof(a));
	a.qp_state = htole32(IBV_QPS_RTR);
	a.path_mtu = htole32(IBV_MTU_1024);
	a.dest_qp_num = htole32(dest);
	a.rq_psn = htole32(100);
	a.max_dest_rd_atomic = 1;
	a.min_rnr_timer = 12;
	a.ah_attr.is_global = 1;
	a.ah_attr.port_num = 1;
	a.ah_attr.sgid_index = (uint8_t)gid_index;
	a.ah_attr.hop_limit = 1;
	memcpy(a.ah_attr.dgid, gid, 16);
	modify(qp->h, IBV_QP_STATE | IBV_QP_AV | IBV_QP_PATH_MTU | IBV_QP_DEST_QPN |
	       IBV_QP_RQ_PSN | IBV_QP_MAX_DEST_RD_ATOMIC | IBV_QP_MIN_RNR_TIMER, &a);
	memset(&a, 0, sizeof(a));
	a.qp_state = htole32(IBV_QPS_RTS);
	a.sq_psn = htole32(100);
	a.timeout = 14;
	a.retry_cnt = 7;
	a.rnr_retry = 7;
	a.max_rd_atomic = 1;
	modify(qp->h, IBV_QP_STATE | IBV_QP_SQ_PSN | IBV_QP_TIMEOUT | IBV_QP_RETRY_CNT |
	       IBV_QP_RNR_RETRY | IBV_QP_MAX_QP_RD_ATOMIC, &a);
}

#endif /* VBUS_TESTS_VBK_TEST_H */
