// SPDX-License-Identifier: MIT
/*
 * guest/srq-cq: shared receive queues and CQ resizing, run by tests/device/guest-parity.sh
 * on the native device and as a guest with the same expectations (a plain libibverbs
 * program: the expectations are what rxe does natively).
 *
 *   srq-cq DEVICE GID_INDEX
 *
 * SRQ: create and query; two RC QPs on one SRQ fed by two senders on the same device
 * (loopback), every message's bytes checked against the buffer its wr_id names; posting
 * past max_wr is ENOMEM; ibv_post_recv on a QP with an SRQ fails; the SRQ limit fires
 * IBV_EVENT_SRQ_LIMIT_REACHED on the SRQ and disarms; max_wr grows with ibv_modify_srq;
 * destroying an SRQ in use is EBUSY. CQ: completions not yet polled survive
 * ibv_resize_cq, in order; a resize below them is EINVAL; an empty CQ shrinks. Churn:
 * 300 rounds of creating and destroying CQs, SRQs and QPs keep working.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <poll.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <infiniband/verbs.h>
#include "loopback.h"

#define MSG	64
#define NBUF	64

static struct lb lb;
#define ctx (lb.ctx)
#define pd (lb.pd)
static uint8_t *buf;		/* NBUF receive buffers, then NBUF send buffers */
static struct ibv_mr *mr;

static int srq_post(struct ibv_srq *srq, uint64_t id)
{
	struct ibv_sge s = { .addr = (uintptr_t)(buf + (id % NBUF) * MSG), .length = MSG,
			     .lkey = mr->lkey };
	struct ibv_recv_wr wr = { .wr_id = id, .sg_list = &s, .num_sge = 1 }, *bad;

	return ibv_post_srq_recv(srq, &wr, &bad);
}

/* Send message `seq` (its bytes: seq and the offset) from buffer slot seq on qp. */
static void send_msg(struct ibv_qp *qp, uint32_t seq, uint32_t len, bool signaled)
{
	uint8_t *p = buf + (NBUF + seq % NBUF) * MSG;
	struct ibv_sge s = { .addr = (uintptr_t)p, .length = len, .lkey = mr->lkey };
	struct ibv_send_wr wr = { .wr_id = seq, .sg_list = &s, .num_sge = 1,
		.opcode = IBV_WR_SEND_WITH_IMM, .imm_data = htonl(seq),
		.send_flags = signaled ? IBV_SEND_SIGNALED : 0 }, *bad;

	for (uint32_t k = 0; k < len; k++)
		p[k] = (uint8_t)(seq * 7 + k);
	check(!ibv_post_send(qp, &wr, &bad), "post_send %u: %s", seq, strerror(errno));
}

/* Wait until the device has had time to complete what was posted (nothing polls): a
 * limit, so scaled. */
static void settle(void)
{
	usleep((useconds_t)vt_ms(300) * 1000);
}

static void wait_event(enum ibv_event_type want, struct ibv_srq *srq)
{
	struct pollfd p = { .fd = ctx->async_fd, .events = POLLIN };
	struct ibv_async_event ev;

	for (int k = 0; k < 10; k++) {
		check(poll(&p, 1, vt_ms(5000)) == 1, "no %s within %.0f s", ibv_event_type_str(want),
		      vt_secs(5));
		check(!ibv_get_async_event(ctx, &ev), "get_async_event: %s", strerror(errno));
		ibv_ack_async_event(&ev);
		if (ev.event_type != want)
			continue;
		check(ev.element.srq == srq, "the event names another SRQ");
		return;
	}
	fail("no %s among 10 events", ibv_event_type_str(want));
}

static void srq_tests(void)
{
	struct ibv_srq_init_attr sa = { .attr = { .max_wr = 16, .max_sge = 1 } };
	struct ibv_cq *scq = ibv_create_cq(ctx, 64, NULL, NULL, 0);
	struct ibv_cq *rcq = ibv_create_cq(ctx, 64, NULL, NULL, 0);
	struct ibv_srq *srq = ibv_create_srq(pd, &sa);
	struct ibv_qp *tx[2], *rx[2];
	struct ibv_srq_attr q;
	struct ibv_wc wc[64];
	struct ibv_recv_wr rwr = { .wr_id = 1 }, *bad;
	uint32_t granted, seq = 0, posted = 0;

	check(scq && rcq && srq, "CQs and SRQ: %s", strerror(errno));
	granted = sa.attr.max_wr;
	check(granted >= 16, "granted max_wr %u < 16", granted);
	check(!ibv_query_srq(srq, &q) && q.max_wr >= 16 && q.max_sge >= 1 && q.srq_limit == 0,
	      "query_srq: max_wr %u max_sge %u limit %u", q.max_wr, q.max_sge, q.srq_limit);
	ok("SRQ created and queried (max_wr >= 16, max_sge >= 1, limit 0)");
	for (int k = 0; k < 2; k++) {
		tx[k] = lb_qp(&lb, scq, scq, NULL);
		rx[k] = lb_qp(&lb, scq, rcq, srq);
	}
	for (int k = 0; k < 2; k++) {
		lb_connect(&lb, tx[k], rx[k]->qp_num);
		lb_connect(&lb, rx[k], tx[k]->qp_num);
	}
	check(ibv_post_recv(rx[0], &rwr, &bad), "post_recv on a QP with an SRQ succeeded");
	ok("ibv_post_recv on a QP with an SRQ fails");

	/* Depth: the granted number of WQEs fits, one more does not. */
	for (; posted < q.max_wr; posted++)
		check(!srq_post(srq, posted), "srq post %u of %u: %s", posted, q.max_wr,
		      strerror(errno));
	check(srq_post(srq, posted) == ENOMEM, "WQE past max_wr was not ENOMEM");
	ok("%u WQEs fill the SRQ, one more is ENOMEM", q.max_wr);

	/* Both QPs draw from the SRQ: every message lands in the buffer its wr_id names. */
	for (int r = 0; r < 3; r++) {
		int n = 8;

		for (int k = 0; k < n; k++)
			send_msg(tx[k % 2], seq + k, 1 + (seq + k) % MSG, true);
		lb_poll(rcq, wc, n);
		for (int k = 0; k < n; k++) {
			uint32_t s = ntohl(wc[k].imm_data);
			const uint8_t *p = buf + (wc[k].wr_id % NBUF) * MSG;

			check(wc[k].status == IBV_WC_SUCCESS, "recv status %s",
			      ibv_wc_status_str(wc[k].status));
			check(wc[k].opcode == IBV_WC_RECV && (wc[k].wc_flags & IBV_WC_WITH_IMM),
			      "recv opcode %d flags %#x", wc[k].opcode, wc[k].wc_flags);
			check(wc[k].qp_num == rx[s % 2]->qp_num, "message %u arrived on QP %u", s,
			      wc[k].qp_num);
			check(wc[k].byte_len == 1 + s % MSG, "message %u: %u bytes", s,
			      wc[k].byte_len);
			for (uint32_t b = 0; b < wc[k].byte_len; b++)
				check(p[b] == (uint8_t)(s * 7 + b), "message %u byte %u", s, b);
			check(!srq_post(srq, posted++), "repost: %s", strerror(errno));
		}
		lb_poll(scq, wc, n);
		seq += n;
	}
	ok("24 messages from 2 QPs into one SRQ, every byte checked, WQEs reposted");

	/* The limit: armed at 4, it fires when fewer than 4 WQEs are left, then disarms. */
	q.srq_limit = 4;
	check(!ibv_modify_srq(srq, &q, IBV_SRQ_LIMIT), "modify_srq limit: %s", strerror(errno));
	{
		int n = (int)q.max_wr - 3;

		for (int k = 0; k < n; k++)
			send_msg(tx[k % 2], seq + k, 8, true);
		lb_poll(rcq, wc, n);
		lb_poll(scq, wc, n);
		seq += n;
	}
	wait_event(IBV_EVENT_SRQ_LIMIT_REACHED, srq);
	check(!ibv_query_srq(srq, &q) && q.srq_limit == 0, "limit after the event: %u",
	      q.srq_limit);
	ok("IBV_EVENT_SRQ_LIMIT_REACHED on the SRQ, limit disarmed");

	/* Deeper: max_wr grows (the completions above freed their WQEs). */
	q.max_wr = granted + 8;
	check(!ibv_modify_srq(srq, &q, IBV_SRQ_MAX_WR), "modify_srq max_wr %u: %s", q.max_wr,
	      strerror(errno));
	check(!ibv_query_srq(srq, &q) && q.max_wr >= granted + 8, "max_wr now %u", q.max_wr);
	ok("ibv_modify_srq(IBV_SRQ_MAX_WR) to %u", granted + 8);

	check(ibv_destroy_srq(srq) == EBUSY, "destroying an SRQ in use was not EBUSY");
	ok("ibv_destroy_srq while QPs use it: EBUSY");
	for (int k = 0; k < 2; k++)
		check(!ibv_destroy_qp(tx[k]) && !ibv_destroy_qp(rx[k]), "destroy QPs");
	check(!ibv_destroy_srq(srq), "destroy_srq: %s", strerror(errno));
	check(!ibv_destroy_cq(scq) && !ibv_destroy_cq(rcq), "destroy CQs");
	ok("SRQ destroyed after its QPs");
}

static void post_recvs(struct ibv_qp *qp, int n)
{
	for (int k = 0; k < n; k++) {
		struct ibv_sge s = { .addr = (uintptr_t)(buf + (k % NBUF) * MSG), .length = MSG,
				     .lkey = mr->lkey };
		struct ibv_recv_wr wr = { .wr_id = (uint64_t)k, .sg_list = &s, .num_sge = 1 }, *bad;

		check(!ibv_post_recv(qp, &wr, &bad), "post_recv: %s", strerror(errno));
	}
}

static void resize_tests(void)
{
	struct ibv_cq *scq = ibv_create_cq(ctx, 8, NULL, NULL, 0);
	struct ibv_cq *rcq = ibv_create_cq(ctx, 64, NULL, NULL, 0);
	struct ibv_qp *a, *b;
	struct ibv_wc wc[64];
	int r;

	check(scq && rcq, "CQs: %s", strerror(errno));
	a = lb_qp(&lb, scq, rcq, NULL);
	b = lb_qp(&lb, scq, rcq, NULL);
	lb_connect(&lb, a, b->qp_num);
	lb_connect(&lb, b, a->qp_num);
	post_recvs(b, 32);

	/* Six completions wait, unpolled, while the CQ grows. */
	for (uint32_t k = 0; k < 6; k++)
		send_msg(a, k, 16, true);
	settle();
	check(!ibv_resize_cq(scq, 64), "resize_cq to 64: %s", strerror(errno));
	check(scq->cqe >= 64, "cqe %d after resize to 64", scq->cqe);
	lb_poll(scq, wc, 6);
	for (int k = 0; k < 6; k++)
		check(wc[k].status == IBV_WC_SUCCESS && wc[k].wr_id == (uint64_t)k,
		      "completion %d: wr_id %llu status %s", k, (unsigned long long)wc[k].wr_id,
		      ibv_wc_status_str(wc[k].status));
	check(ibv_poll_cq(scq, 1, wc) == 0, "an extra completion after the resize");
	ok("ibv_resize_cq 8 -> 64 keeps 6 unpolled completions, in order (cqe %d)", scq->cqe);

	/* Below what waits: EINVAL, and nothing lost. */
	for (uint32_t k = 6; k < 12; k++)
		send_msg(a, k, 16, true);
	settle();
	r = ibv_resize_cq(scq, 2);
	check(r == EINVAL, "resize below 6 waiting completions: %d (%s)", r, strerror(r));
	lb_poll(scq, wc, 6);
	for (int k = 0; k < 6; k++)
		check(wc[k].wr_id == (uint64_t)(6 + k), "completion %d: wr_id %llu", k,
		      (unsigned long long)wc[k].wr_id);
	ok("ibv_resize_cq below the waiting completions: EINVAL, none lost");

	/* Empty: it shrinks, and still works. */
	check(!ibv_resize_cq(scq, 4) && scq->cqe >= 4, "resize_cq to 4: %s", strerror(errno));
	for (uint32_t k = 12; k < 15; k++)
		send_msg(a, k, 16, true);
	lb_poll(scq, wc, 3);
	check(wc[2].wr_id == 14, "after the shrink: wr_id %llu", (unsigned long long)wc[2].wr_id);
	lb_poll(rcq, wc, 15);
	ok("ibv_resize_cq 64 -> 4 when empty (cqe %d), completions flow", scq->cqe);
	check(!ibv_destroy_qp(a) && !ibv_destroy_qp(b) && !ibv_destroy_cq(scq) &&
	      !ibv_destroy_cq(rcq), "teardown");
}

/* Objects come and go for as long as a program runs: 300 CQ + QP + SRQ lifetimes (more
 * than a bus's default quota of 256 shared regions per guest, which queues live in). */
static void churn(void)
{
	for (int k = 0; k < 300; k++) {
		struct ibv_srq_init_attr sa = { .attr = { .max_wr = 4, .max_sge = 1 } };
		struct ibv_cq *cq = ibv_create_cq(ctx, 4, NULL, NULL, 0);
		struct ibv_srq *srq = ibv_create_srq(pd, &sa);
		struct ibv_qp *qp;

		check(cq && srq, "round %d: CQ, SRQ: %s", k, strerror(errno));
		qp = lb_qp(&lb, cq, cq, k % 2 ? srq : NULL);
		check(!ibv_resize_cq(cq, 8), "round %d: resize_cq: %s", k, strerror(errno));
		check(!ibv_destroy_qp(qp) && !ibv_destroy_srq(srq) && !ibv_destroy_cq(cq),
		      "round %d: destroy", k);
	}
	ok("300 rounds of CQ, SRQ and QP creation, CQ resize, destruction");
}

int main(int argc, char **argv)
{
	if (argc != 3) {
		fprintf(stderr, "usage: srq-cq DEVICE GID_INDEX\n");
		return 2;
	}
	lb_open(&lb, argv[1], atoi(argv[2]));
	buf = aligned_alloc(4096, 2 * NBUF * MSG);
	check(buf, "buffer");
	memset(buf, 0, 2 * NBUF * MSG);
	mr = ibv_reg_mr(pd, buf, 2 * NBUF * MSG, IBV_ACCESS_LOCAL_WRITE);
	check(mr, "reg_mr: %s", strerror(errno));
	srq_tests();
	resize_tests();
	churn();
	check(!ibv_dereg_mr(mr), "dereg_mr");
	lb_close(&lb);
	printf("srq-cq: all checks passed on %s\n", argv[1]);
	return 0;
}
