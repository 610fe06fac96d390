/* SPDX-License-Identifier: MIT */
/*
 * What the single-process guest test programs share (tests/guest/srq-cq.c, mw.c, fork.c,
 * memory.c, failures.c): checks that print and exit, opening a device by name, RC QPs connected to
 * each other on that one device (loopback through its GID), and bounded polling (limits
 * times VBUS_TIME_SCALE, ../lib/vt-time.h).
 */
#ifndef VBUS_TESTS_LOOPBACK_H
#define VBUS_TESTS_LOOPBACK_H

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <infiniband/verbs.h>
#include "../lib/vt-time.h"

#define fail(...) do { printf("FAIL line %d: ", __LINE__); printf(__VA_ARGS__); printf("\n"); \
			fflush(stdout); exit(1); } while (0)
#define check(c, ...) do { if (!(c)) fail(__VA_ARGS__); } while (0)
#define ok(...) do { printf("ok   "); printf(__VA_ARGS__); printf("\n"); } while (0)

struct lb {
	struct ibv_device **list;
	struct ibv_context *ctx;
	struct ibv_pd *pd;
	union ibv_gid gid;
	int gid_index;
};

/* Open device `name`, read GID `gid_index` of port 1, allocate a PD. */
static inline void lb_open(struct lb *l, const char *name, int gid_index)
{
	int i;

	l->list = ibv_get_device_list(NULL);
	check(l->list, "no device list");
	for (i = 0; l->list[i] && strcmp(ibv_get_device_name(l->list[i]), name); i++)
		;
	check(l->list[i], "no device %s", name);
	l->ctx = ibv_open_device(l->list[i]);
	check(l->ctx, "open %s", name);
	l->gid_index = gid_index;
	check(!ibv_query_gid(l->ctx, 1, gid_index, &l->gid), "query_gid %d", gid_index);
	l->pd = ibv_alloc_pd(l->ctx);
	check(l->pd, "alloc_pd: %s", strerror(errno));
}

static inline void lb_close(struct lb *l)
{
	check(!ibv_dealloc_pd(l->pd), "dealloc_pd");
	check(!ibv_close_device(l->ctx), "close_device");
	ibv_free_device_list(l->list);
}

/* An RC QP of depth 32 (no receive queue of its own with an SRQ). */
static inline struct ibv_qp *lb_qp(struct lb *l, struct ibv_cq *scq, struct ibv_cq *rcq,
				   struct ibv_srq *srq)
{
	struct ibv_qp_init_attr ia = {
		.send_cq = scq, .recv_cq = rcq, .srq = srq, .qp_type = IBV_QPT_RC,
		.cap = { .max_send_wr = 32, .max_recv_wr = srq ? 0 : 32, .max_send_sge = 1,
			 .max_recv_sge = srq ? 0 : 1 },
	};
	struct ibv_qp *qp = ibv_create_qp(l->pd, &ia);

	check(qp, "ibv_create_qp: %s", strerror(errno));
	return qp;
}

/* RESET -> INIT, port 1, remote writes and reads allowed. */
static inline void lb_to_init(struct ibv_qp *qp)
{
	struct ibv_qp_attr a = { .qp_state = IBV_QPS_INIT, .port_num = 1,
		.qp_access_flags = IBV_ACCESS_REMOTE_WRITE | IBV_ACCESS_REMOTE_READ };

	check(!ibv_modify_qp(qp, &a, IBV_QP_STATE | IBV_QP_PKEY_INDEX | IBV_QP_PORT |
			     IBV_QP_ACCESS_FLAGS), "to INIT");
}

/* RESET -> INIT -> RTR -> RTS, talking to QP number `peer` on this same device, with ACK
 * timeout exponent `timeout`. */
static inline void lb_connect_timeout(struct lb *l, struct ibv_qp *qp, uint32_t peer,
				      uint8_t timeout)
{
	struct ibv_qp_attr a = { 0 };

	lb_to_init(qp);
	a.qp_state = IBV_QPS_RTR;
	a.path_mtu = IBV_MTU_1024;
	a.dest_qp_num = peer;
	a.max_dest_rd_atomic = 1;
	a.min_rnr_timer = 12;
	a.ah_attr.is_global = 1;
	a.ah_attr.grh.dgid = l->gid;
	a.ah_attr.grh.sgid_index = (uint8_t)l->gid_index;
	a.ah_attr.grh.hop_limit = 1;
	a.ah_attr.port_num = 1;
	check(!ibv_modify_qp(qp, &a, IBV_QP_STATE | IBV_QP_AV | IBV_QP_PATH_MTU |
			     IBV_QP_DEST_QPN | IBV_QP_RQ_PSN | IBV_QP_MAX_DEST_RD_ATOMIC |
			     IBV_QP_MIN_RNR_TIMER), "to RTR");
	memset(&a, 0, sizeof(a));
	a.qp_state = IBV_QPS_RTS;
	a.timeout = timeout;
	a.retry_cnt = 7;
	a.rnr_retry = 7;
	a.max_rd_atomic = 1;
	check(!ibv_modify_qp(qp, &a, IBV_QP_STATE | IBV_QP_TIMEOUT | IBV_QP_RETRY_CNT |
			     IBV_QP_RNR_RETRY | IBV_QP_SQ_PSN | IBV_QP_MAX_QP_RD_ATOMIC), "to RTS");
}

static inline void lb_connect(struct lb *l, struct ibv_qp *qp, uint32_t peer)
{
	lb_connect_timeout(l, qp, peer, 14);
}

/* Poll n completions from cq within 10 s (scaled). */
static inline void lb_poll(struct ibv_cq *cq, struct ibv_wc *wc, int n)
{
	struct timespec t0, t;
	double limit = vt_secs(10);
	int got = 0;

	clock_gettime(CLOCK_MONOTONIC, &t0);
	while (got < n) {
		int r = ibv_poll_cq(cq, n - got, wc + got);

		check(r >= 0, "poll_cq: %d", r);
		got += r;
		clock_gettime(CLOCK_MONOTONIC, &t);
		check((t.tv_sec - t0.tv_sec) + (t.tv_nsec - t0.tv_nsec) / 1e9 < limit,
		      "only %d of %d completions in %.0f s", got, n, limit);
	}
}

#endif /* VBUS_TESTS_LOOPBACK_H */
