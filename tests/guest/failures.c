// SPDX-License-Identifier: MIT
/*
 * guest/failures: failure behaviour, the same program natively (on rxe0) and as a guest
 * (on vrdma0 under vbus-run), run by tests/device/guest-fail-*.sh, which compare the two.
 *
 *   failures MODE DEVICE
 *
 * Lines starting with "outcome:" are what a native device and a guest must agree on (the
 * scripts compare them); "info:" lines are printed for the log only (sizes, timings).
 * A check that must hold on any device fails the program (exit 1). Every wait is bounded;
 * a wait for something that must come is scaled (VBUS_TIME_SCALE, ../lib/vt-time.h), one
 * that shows that something does not come is not.
 *
 * Modes:
 *  flush     outstanding receives and sends (signaled and not) of RC QPs that cannot make
 *            progress, then IBV_QPS_ERR: each completes exactly once with its wr_id and
 *            IBV_WC_WR_FLUSH_ERR; then what posting in ERR gives; then a SEND posted in
 *            ERR, RESET, a new connection and a WRITE: the completions that come.
 *  overrun   more completions than a small CQ holds, never polled (half of them one at a
 *            time, half at once): the async event, how many completions remain (exactly
 *            the CQ's cqe), the QP's state, and whether the CQ still works; then the
 *            same on a receive CQ (SENDs one at a time), where the receiving QP goes to
 *            ERR.
 *  noack     a CQ event taken and never acknowledged (the CQ never polled): ibv_destroy_cq
 *            (in a thread) blocks until the event is acknowledged. "holding pid N" is
 *            printed while it blocks; SIGUSR1 (or 60 s, scaled) makes it acknowledge, and the
 *            destroy must then return 0. The script may instead kill it while it holds.
 *  refused   work requests that rxe's kernel path refuses at post time but a user QP may take
 *            (misaligned or short atomics, unregistered lkeys, and for comparison a bad rkey,
 *            oversize inline data, too many SGEs), each between two good ones, through
 *            ibv_post_send, the ibv_wr_* API and ibv_post_recv: what posting returns, then
 *            each QP's completions in order and both QPs' states.
 *  fatal     a context with a PD, CQ, MR and connected QPs that carried traffic prints
 *            "ready", then waits up to $FAIL_WAIT seconds (10 s scaled) for IBV_EVENT_DEVICE_FATAL
 *            (printing "fatal-at-ns: NS", CLOCK_REALTIME, when it comes) while the script
 *            deletes the device under it; then verbs must fail or return,
 *            never hang.
 */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <infiniband/verbs.h>
#include "loopback.h"

#define outcome(...) do { printf("outcome: " __VA_ARGS__); printf("\n"); fflush(stdout); } while (0)
#define info(...) do { printf("info: " __VA_ARGS__); printf("\n"); fflush(stdout); } while (0)

static struct ibv_context *ctx;
static struct ibv_pd *pd;
static struct ibv_cq *cq;
static struct ibv_qp *qp[2];
static struct ibv_mr *mr;
static uint8_t *buf;
static struct lb lb;

static double now(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec + t.tv_nsec / 1e9;
}

static void open_dev(const char *name)
{
	const char *gis = getenv("VBUS_GID_INDEX");

	lb_open(&lb, name, gis ? atoi(gis) : 0);
	ctx = lb.ctx;
	pd = lb.pd;
	buf = calloc(1, 1 << 16);
	check(buf, "buffer");
	mr = ibv_reg_mr(pd, buf, 1 << 16, IBV_ACCESS_LOCAL_WRITE | IBV_ACCESS_REMOTE_WRITE);
	check(mr, "MR: %s", strerror(errno));
}

static struct ibv_qp *new_qp(uint32_t depth)
{
	struct ibv_qp_init_attr ia = { .send_cq = cq, .recv_cq = cq, .qp_type = IBV_QPT_RC,
		.cap = { .max_send_wr = depth, .max_recv_wr = depth, .max_send_sge = 1,
			 .max_recv_sge = 1 } };
	struct ibv_qp *q = ibv_create_qp(pd, &ia);

	check(q, "create QP: %s", strerror(errno));
	return q;
}

/* qp[0] and qp[1], of the given depth, connected to each other (ACK timeout 14). */
static void pair_rts(uint32_t depth)
{
	qp[0] = new_qp(depth);
	qp[1] = new_qp(depth);
	lb_connect_timeout(&lb, qp[0], qp[1]->qp_num, 14);
	lb_connect_timeout(&lb, qp[1], qp[0]->qp_num, 14);
}

static int post_send(struct ibv_qp *q, uint64_t id, enum ibv_wr_opcode op, unsigned flags,
		     uint32_t off)
{
	struct ibv_sge s = { .addr = (uintptr_t)buf + off, .length = 8, .lkey = mr->lkey };
	struct ibv_send_wr wr = { .wr_id = id, .sg_list = &s, .num_sge = 1, .opcode = op,
		.send_flags = flags }, *bad;

	wr.wr.rdma.remote_addr = (uintptr_t)buf + 32768 + off;
	wr.wr.rdma.rkey = mr->rkey;
	return ibv_post_send(q, &wr, &bad);
}

static int post_recv(struct ibv_qp *q, uint64_t id)
{
	struct ibv_sge s = { .addr = (uintptr_t)buf + 16384 + (id % 64) * 64, .length = 64,
			     .lkey = mr->lkey };
	struct ibv_recv_wr wr = { .wr_id = id, .sg_list = &s, .num_sge = 1 }, *bad;

	return ibv_post_recv(q, &wr, &bad);
}

static const char *qp_state(struct ibv_qp *q)
{
	static const char *names[] = { "RESET", "INIT", "RTR", "RTS", "SQD", "SQE", "ERR" };
	struct ibv_qp_attr a;
	struct ibv_qp_init_attr ia;

	if (ibv_query_qp(q, &a, IBV_QP_STATE, &ia))
		return "query failed";
	return a.qp_state <= IBV_QPS_ERR ? names[a.qp_state] : "?";
}

/* Poll until `quiet_s` pass without a completion (at most max_s in all); returns the count. */
static int collect(struct ibv_wc *wc, int max, double quiet_s, double max_s)
{
	double start = now(), last = start;
	int n = 0, r;

	while (n < max && now() - last < quiet_s && now() - start < max_s) {
		r = ibv_poll_cq(cq, max - n, wc + n);
		check(r >= 0, "ibv_poll_cq: %d", r);
		if (r) {
			n += r;
			last = now();
		} else {
			usleep(1000);
		}
	}
	return n;
}

/* The next async event within timeout_ms, acknowledged; false if none came. */
static bool next_event(struct ibv_async_event *ev, int timeout_ms)
{
	struct pollfd p = { .fd = ctx->async_fd, .events = POLLIN };

	if (poll(&p, 1, timeout_ms) != 1)
		return false;
	check(!ibv_get_async_event(ctx, ev), "ibv_get_async_event: %s", strerror(errno));
	ibv_ack_async_event(ev);
	return true;
}

/*
 * qp[0] is RTS towards qp[1], which stays in INIT: rxe drops what qp[0] sends, and with a
 * 4 s ACK timeout the sends stay outstanding. Receives wait on both QPs.
 */
#define NR 6	/* receives per QP */
#define NS 6	/* signaled sends */
#define NU 2	/* unsignaled sends */
/* After flush's ERR: one more SEND posted in ERR, then RESET and a new connection, and a
 * WRITE on it. RESET discards what is outstanding; what was posted before it never runs
 * on the new connection (a guest's host posts the ring's WQEs before RESET: each
 * completes, in ERR, with a flush error, as natively, and no stale one is left to run). */
static void flush_reset(void)
{
	struct ibv_qp_attr rst = { .qp_state = IBV_QPS_RESET };
	struct ibv_wc wc[16];
	char list[256] = "";
	int rs, n;

	rs = post_send(qp[0], 4100, IBV_WR_SEND, IBV_SEND_SIGNALED, 0);
	check(!ibv_modify_qp(qp[0], &rst, IBV_QP_STATE) && !ibv_modify_qp(qp[1], &rst, IBV_QP_STATE),
	      "modify to RESET");
	lb_connect_timeout(&lb, qp[0], qp[1]->qp_num, 14);
	lb_connect_timeout(&lb, qp[1], qp[0]->qp_num, 14);
	check(!post_send(qp[0], 4200, IBV_WR_RDMA_WRITE, IBV_SEND_SIGNALED, 0), "WRITE after RESET");
	n = collect(wc, 16, vt_secs(1.0), vt_secs(10.0));
	for (int i = 0; i < n; i++)
		snprintf(list + strlen(list), sizeof(list) - strlen(list), " %llu %s",
			 (unsigned long long)wc[i].wr_id, ibv_wc_status_str(wc[i].status));
	outcome("a SEND posted in ERR (%s), RESET, a new connection and a WRITE: completions%s; qp0 %s",
		rs ? strerror(rs) : "0", n ? list : " none", qp_state(qp[0]));
}

static void flush(void)
{
	struct ibv_qp_attr err = { .qp_state = IBV_QPS_ERR };
	struct ibv_wc wc[64];
	int seen[6000] = { 0 }, n, dup = 0, rs, rr;

	cq = ibv_create_cq(ctx, 64, NULL, NULL, 0);
	check(cq, "CQ");
	qp[0] = new_qp(16);
	qp[1] = new_qp(16);
	lb_to_init(qp[1]);
	lb_connect_timeout(&lb, qp[0], qp[1]->qp_num, 20);
	for (int i = 0; i < NR; i++)
		check(!post_recv(qp[0], 1000 + i) && !post_recv(qp[1], 2000 + i), "post_recv");
	for (int i = 0; i < NS + NU; i++)
		check(!post_send(qp[0], 3000 + i, IBV_WR_SEND, i < NS ? IBV_SEND_SIGNALED : 0, 8 * i),
		      "post_send %d", i);
	n = collect(wc, 64, 0.3, 0.3);
	outcome("before ERR: %d completions (the peer is not ready)", n);
	check(!ibv_modify_qp(qp[0], &err, IBV_QP_STATE) && !ibv_modify_qp(qp[1], &err, IBV_QP_STATE),
	      "modify to ERR");
	outcome("after modify: qp0 %s, qp1 %s", qp_state(qp[0]), qp_state(qp[1]));
	rs = post_send(qp[0], 4000, IBV_WR_SEND, IBV_SEND_SIGNALED, 0);
	rr = post_recv(qp[0], 5000);
	outcome("posting in ERR: ibv_post_send %s, ibv_post_recv %s", rs ? strerror(rs) : "0",
		rr ? strerror(rr) : "0");
	n = collect(wc, 64, vt_secs(1.0), vt_secs(10.0));
	for (int i = 0; i < n; i++) {
		uint64_t id = wc[i].wr_id;
		int q = wc[i].qp_num == qp[0]->qp_num ? 0 : wc[i].qp_num == qp[1]->qp_num ? 1 : -1;

		check(id < 6000 && q >= 0, "completion of wr_id %llu qp_num %u", (unsigned long long)id,
		      wc[i].qp_num);
		check(wc[i].status == IBV_WC_WR_FLUSH_ERR, "wr_id %llu: %s", (unsigned long long)id,
		      ibv_wc_status_str(wc[i].status));
		dup += seen[id]++ > 0;
	}
	check(!dup, "%d completions came twice", dup);
	/* Every WR posted before ERR completes, once, flushed; unsignaled sends too (an error
	 * completion is always generated). Then the same for what was posted in ERR. */
	for (int i = 0; i < NR; i++)
		check(seen[1000 + i] && seen[2000 + i], "receive %d not flushed", i);
	for (int i = 0; i < NS + NU; i++)
		check(seen[3000 + i], "send %d (%s) not flushed", i, i < NS ? "signaled" : "unsignaled");
	outcome("flushed before ERR: qp0 %d recv + %d signaled + %d unsignaled send, qp1 %d recv, "
		"each once, IBV_WC_WR_FLUSH_ERR", NR, NS, NU, NR);
	outcome("posted in ERR: send %s, recv %s", !rs ? seen[4000] ? "flushed" : "lost" : "refused",
		!rr ? seen[5000] ? "flushed" : "lost" : "refused");
	outcome("completions in all: %d, duplicates 0", n);
	flush_reset();
	check(!ibv_destroy_qp(qp[0]) && !ibv_destroy_qp(qp[1]) && !ibv_destroy_cq(cq), "teardown");
}

/* The receive side: SENDs into a receive CQ of 4 that nobody polls. rxe's responder moves
 * the receiving QP to the error state when its CQ overflows (a send CQ's overflow leaves
 * the QP alone, above); what the sender then sees (retries, timing) is printed as info. */
/* Two RC QPs of depth `depth` connected to each other, *a on cq[0] (send) and cq[1]
 * (receive), *b on cq[2] and cq[3]. */
static void rc_pair(uint32_t depth, struct ibv_cq *const cq4[4], struct ibv_qp **a,
		    struct ibv_qp **b)
{
	struct ibv_qp_init_attr ia = { .qp_type = IBV_QPT_RC,
		.cap = { .max_send_wr = depth, .max_recv_wr = depth, .max_send_sge = 1,
			 .max_recv_sge = 1 } };

	ia.send_cq = cq4[0];
	ia.recv_cq = cq4[1];
	*a = ibv_create_qp(pd, &ia);
	ia.send_cq = cq4[2];
	ia.recv_cq = cq4[3];
	*b = ibv_create_qp(pd, &ia);
	check(*a && *b, "QPs: %s", strerror(errno));
	lb_connect_timeout(&lb, *a, (*b)->qp_num, 14);
	lb_connect_timeout(&lb, *b, (*a)->qp_num, 14);
}

static void overrun_recv(void)
{
	struct ibv_cq *scq = ibv_create_cq(ctx, 64, NULL, NULL, 0);
	struct ibv_cq *rcq = ibv_create_cq(ctx, 4, NULL, NULL, 0);
	struct ibv_async_event ev;
	struct ibv_qp *a, *b;
	struct ibv_wc wc[64];
	int n, got_err = 0;
	double t0;

	check(scq && rcq, "CQs: %s", strerror(errno));
	rc_pair(32, (struct ibv_cq *[]){ scq, scq, scq, rcq }, &a, &b);
	for (int i = 0; i < 16; i++)
		check(!post_recv(b, 500 + i), "post_recv %d", i);
	/* One at a time: in a burst the real CQ would overflow by itself before a relay had
	 * moved anything, and the check would not see whether the relay does rxe's part. */
	for (int i = 0; i < 16; i++) {
		check(!post_send(a, 600 + i, IBV_WR_SEND, IBV_SEND_SIGNALED, 0), "send %d", i);
		usleep((useconds_t)vt_ms(20) * 1000);
	}
	t0 = now();
	while (now() - t0 < vt_secs(5) && next_event(&ev, vt_ms(5000))) {
		info("receive side: event %s after %.2f s", ibv_event_type_str(ev.event_type),
		     now() - t0);
		if (ev.event_type == IBV_EVENT_CQ_ERR && ev.element.cq == rcq) {
			got_err = 1;
			break;
		}
	}
	outcome("receive side: async event: %s",
		got_err ? "IBV_EVENT_CQ_ERR on the overrun CQ" : "none");
	usleep((useconds_t)vt_ms(500) * 1000);
	n = ibv_poll_cq(rcq, 64, wc);
	outcome("receive side: completions kept: %d", n);
	outcome("receive side: the receiving QP after the overrun: %s", qp_state(b));
	n = ibv_poll_cq(scq, 64, wc);
	info("receive side: the sender's QP %s, %d send completions so far, the first %s",
	     qp_state(a), n, n > 0 ? ibv_wc_status_str(wc[0].status) : "-");
	ibv_destroy_qp(a);
	ibv_destroy_qp(b);
	check(!ibv_destroy_cq(scq) && !ibv_destroy_cq(rcq), "destroy CQs");
}

/* A send queue whose CQ (of 4) is never polled: natively rxe frees a WQE's slot when it
 * completes the WQE, whether or not its completion found room in the CQ, so signalled
 * writes, each given time to complete, all post. A guest that freed slots only from the
 * completions it polls got ENOMEM once the queue was full. The relay publishes each send
 * completion's retirement in the ring (docs/vrdma.md); on the kernel backend the guest
 * library asks the module to move the real CQ's completions when the queue looks full,
 * and those past the CQ's room are lost but retire their WQEs (since stop 40). Then a
 * queue of 16 over the same CQ, its first 16 writes at once (rxe loses 9 of their
 * completions in the real CQ on the kernel backend, as natively), then 32 one at a time. */
static void overrun_sq(uint32_t depth, int burst, int total)
{
	struct ibv_cq *scq = ibv_create_cq(ctx, 4, NULL, NULL, 0);
	struct ibv_cq *rcq = ibv_create_cq(ctx, 64, NULL, NULL, 0);
	struct ibv_qp *a, *b;
	int i, r = 0;

	check(scq && rcq, "CQs: %s", strerror(errno));
	rc_pair(depth, (struct ibv_cq *[]){ scq, rcq, rcq, rcq }, &a, &b);
	for (i = 0; i < total && !r; i++) {
		double t0 = now();

		/* ENOMEM only if it lasts: a slow machine may not have completed the last ones. */
		while ((r = post_send(a, 700 + (uint64_t)i, IBV_WR_RDMA_WRITE, IBV_SEND_SIGNALED,
				      8 * (uint32_t)(i % 64))) == ENOMEM && now() - t0 < vt_secs(2))
			usleep(10000);
		if (i >= burst - 1)
			usleep((useconds_t)vt_ms(i < burst + 4 ? 200 : 30) * 1000);
	}
	outcome("a send queue of %u, its CQ of 4 never polled, %d at once then one at a time: "
		"%d of %d signalled writes posted%s%s", depth, burst, r ? i - 1 : i, total,
		r ? ", then " : "", r ? strerror(r) : "");
	ibv_destroy_qp(a);
	ibv_destroy_qp(b);
	check(!ibv_destroy_cq(scq) && !ibv_destroy_cq(rcq), "destroy CQs");
}

/* Two QPs sending into one CQ of 4 that is never polled: the first fills it (16 writes
 * at once: 7 kept, 9 lost), then each of the second's 4 writes is lost, and natively its
 * queue of 4 is free again all the same: 4 more post. On the kernel backend rxe would lose
 * them in the real CQ before the module saw them, keeping their slots (the guest's
 * queue full for good: ENOMEM); the real CQ now holds what its queues can complete and
 * the module loses what the guest's CQ has no room for (since stop 40). */
static void overrun_shared(void)
{
	struct ibv_cq *scq = ibv_create_cq(ctx, 4, NULL, NULL, 0);
	struct ibv_cq *rcq = ibv_create_cq(ctx, 64, NULL, NULL, 0);
	struct ibv_qp *a1, *b1, *a2, *b2;
	int i, r = 0;

	check(scq && rcq, "CQs: %s", strerror(errno));
	rc_pair(16, (struct ibv_cq *[]){ scq, rcq, rcq, rcq }, &a1, &b1);
	rc_pair(4, (struct ibv_cq *[]){ scq, rcq, rcq, rcq }, &a2, &b2);
	for (i = 0; i < 16; i++)
		check(!post_send(a1, 800 + (uint64_t)i, IBV_WR_RDMA_WRITE, IBV_SEND_SIGNALED,
				 8 * (uint32_t)i), "first QP: write %d", i);
	usleep((useconds_t)vt_ms(300) * 1000);
	for (i = 0; i < 4; i++)
		check(!post_send(a2, 900 + (uint64_t)i, IBV_WR_RDMA_WRITE, IBV_SEND_SIGNALED,
				 8 * (uint32_t)i), "second QP: write %d", i);
	usleep((useconds_t)vt_ms(300) * 1000);
	for (i = 0; i < 4 && !r; i++) {
		double t0 = now();

		/* ENOMEM only if it lasts: a slow machine may not have completed them yet. */
		while ((r = post_send(a2, 904 + (uint64_t)i, IBV_WR_RDMA_WRITE, IBV_SEND_SIGNALED,
				      8 * (uint32_t)i)) == ENOMEM && now() - t0 < vt_secs(2))
			usleep(10000);
	}
	outcome("two QPs on one CQ of 4 never polled, the first's 16 writes filling it: the "
		"second's queue of 4, its 4 writes lost, then %d of 4 more posted%s%s",
		r ? i - 1 : i, r ? ", then " : "", r ? strerror(r) : "");
	ibv_destroy_qp(a1);
	ibv_destroy_qp(b1);
	ibv_destroy_qp(a2);
	ibv_destroy_qp(b2);
	check(!ibv_destroy_cq(scq) && !ibv_destroy_cq(rcq), "destroy CQs");
}

#define NW 40
static void overrun(void)
{
	struct ibv_async_event ev;
	struct ibv_wc wc[64];
	int n, good = 0, got_err = 0, r;
	double t0;

	cq = ibv_create_cq(ctx, 4, NULL, NULL, 0);
	check(cq, "CQ");
	info("CQ of 4 asked, cqe %d", cq->cqe);
	pair_rts(64);
	/* Half of them one at a time, each given time to complete (a relay that moves
	 * completions into the guest's ring as they come must still overrun where the device
	 * does), then the rest at once. */
	for (int i = 0; i < NW; i++) {
		check(!post_send(qp[0], 100 + i, IBV_WR_RDMA_WRITE, IBV_SEND_SIGNALED, 8 * i),
		      "post %d", i);
		if (i < NW / 2)
			usleep((useconds_t)vt_ms(20) * 1000);
	}
	t0 = now();
	while (now() - t0 < vt_secs(5) && next_event(&ev, vt_ms(5000))) {
		info("event %s after %.2f s", ibv_event_type_str(ev.event_type), now() - t0);
		if (ev.event_type == IBV_EVENT_CQ_ERR) {
			check(ev.element.cq == cq, "IBV_EVENT_CQ_ERR names another CQ");
			got_err = 1;
			break;
		}
	}
	if (got_err)
		outcome("async event: IBV_EVENT_CQ_ERR on the overrun CQ");
	else
		outcome("async event: none in %.0f s", vt_secs(5));
	usleep((useconds_t)vt_ms(500) * 1000);
	n = collect(wc, 64, vt_secs(0.5), vt_secs(5));
	for (int i = 0; i < n; i++)
		good += wc[i].status == IBV_WC_SUCCESS;
	info("polled %d completions of %d (%d successful), cqe %d", n, NW, good, cq->cqe);
	check(n <= NW, "more completions than work requests");
	outcome("completions kept: %d of %d", n, NW);
	outcome("qp0 state after the overrun: %s", qp_state(qp[0]));
	r = post_send(qp[0], 999, IBV_WR_RDMA_WRITE, IBV_SEND_SIGNALED, 0);
	n = r ? 0 : collect(wc, 1, vt_secs(1), vt_secs(3));
	outcome("a write after the overrun: post %s, %s", r ? strerror(r) : "0",
		n ? ibv_wc_status_str(wc[0].status) : "no completion");
	ibv_destroy_qp(qp[0]);
	ibv_destroy_qp(qp[1]);
	check(!ibv_destroy_cq(cq), "destroy CQ");
	overrun_recv();
	overrun_sq(4, 1, 16);
	overrun_sq(16, 16, 48);
	overrun_shared();
}

static volatile sig_atomic_t usr1;
static volatile int destroyed = -1;

static void on_usr1(int s)
{
	(void)s;
	usr1 = 1;
}

static void *destroy_cq(void *arg)
{
	destroyed = ibv_destroy_cq(arg);
	return NULL;
}

static void noack(void)
{
	struct ibv_comp_channel *ch = ibv_create_comp_channel(ctx);
	struct pollfd p;
	struct ibv_cq *ecq;
	void *ectx;
	pthread_t t;
	double t0;

	check(ch, "comp channel");
	cq = ibv_create_cq(ctx, 16, NULL, ch, 0);
	check(cq, "CQ");
	pair_rts(16);
	check(!ibv_req_notify_cq(cq, 0), "arm");
	check(!post_send(qp[0], 1, IBV_WR_RDMA_WRITE, IBV_SEND_SIGNALED, 0), "post");
	p = (struct pollfd){ .fd = ch->fd, .events = POLLIN };
	check(poll(&p, 1, vt_ms(5000)) == 1, "no CQ event in %.0f s", vt_secs(5));
	check(!ibv_get_cq_event(ch, &ecq, &ectx) && ecq == cq, "ibv_get_cq_event");
	outcome("CQ event taken, never acknowledged, CQ never polled");
	check(!ibv_destroy_qp(qp[0]) && !ibv_destroy_qp(qp[1]), "destroy QPs");
	check(!pthread_create(&t, NULL, destroy_cq, cq), "thread");
	usleep(2000000);
	outcome("ibv_destroy_cq with the event unacknowledged: %s",
		destroyed < 0 ? "still blocked after 2 s" : destroyed ? "failed" : "returned");
	signal(SIGUSR1, on_usr1);
	printf("holding pid %d\n", (int)getpid());
	fflush(stdout);
	for (t0 = now(); !usr1 && now() - t0 < vt_secs(60);)
		usleep(10000);
	info("%s after %.1f s", usr1 ? "SIGUSR1" : "no SIGUSR1", now() - t0);
	outcome("ibv_destroy_cq while held: %s", destroyed < 0 ? "still blocked" : "returned");
	if (destroyed < 0)
		ibv_ack_cq_events(cq, 1);
	for (t0 = now(); destroyed < 0 && now() - t0 < vt_secs(5);)
		usleep(1000);
	outcome("after ibv_ack_cq_events: ibv_destroy_cq %s",
		destroyed < 0 ? "still blocked" : destroyed ? "failed" : "returned 0");
	check(destroyed == 0, "destroy_cq did not return 0 after the acknowledgement");
	pthread_join(t, NULL);
	check(!ibv_destroy_comp_channel(ch), "destroy channel");
}

static void fatal(void)
{
	const char *w = getenv("FAIL_WAIT");
	int wait_s = w ? atoi(w) : (int)vt_secs(10), fatal_seen = 0, n, r;
	struct ibv_async_event ev;
	struct ibv_port_attr pa;
	struct ibv_wc wc[4];
	struct ibv_pd *pd2;
	double t0;

	cq = ibv_create_cq(ctx, 16, NULL, NULL, 0);
	check(cq, "CQ");
	pair_rts(16);
	check(!post_send(qp[0], 1, IBV_WR_RDMA_WRITE, IBV_SEND_SIGNALED, 0), "post");
	check(collect(wc, 1, vt_secs(5), vt_secs(5)) == 1 && wc[0].status == IBV_WC_SUCCESS, "a write before");
	printf("ready\n");
	fflush(stdout);
	for (t0 = now(); !fatal_seen && now() - t0 < wait_s;) {
		if (!next_event(&ev, (int)((wait_s - (now() - t0)) * 1000) + 1))
			break;
		info("event %s after %.2f s", ibv_event_type_str(ev.event_type), now() - t0);
		fatal_seen = ev.event_type == IBV_EVENT_DEVICE_FATAL;
		if (fatal_seen) {	/* wall clock: the script times it from the delete */
			struct timespec ts;

			clock_gettime(CLOCK_REALTIME, &ts);
			printf("fatal-at-ns: %lld\n", (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec);
		}
	}
	outcome("IBV_EVENT_DEVICE_FATAL: %s", fatal_seen ? "yes" : "no");
	info("waited %.2f s", now() - t0);
	t0 = now();
	r = ibv_query_port(ctx, 1, &pa);
	outcome("ibv_query_port: %s", r ? "fails" : "works");
	pd2 = ibv_alloc_pd(ctx);
	outcome("ibv_alloc_pd: %s", pd2 ? "works" : "fails");
	info("ibv_alloc_pd: %s", pd2 ? "ok" : strerror(errno));
	if (pd2)
		ibv_dealloc_pd(pd2);
	r = post_send(qp[0], 2, IBV_WR_RDMA_WRITE, IBV_SEND_SIGNALED, 0);
	/* (a refused post has nothing to wait for: one poll shows what the CQ holds) */
	n = r ? ibv_poll_cq(cq, 1, wc) : collect(wc, 1, vt_secs(2), vt_secs(2));
	outcome("a write: post %s, %s", r ? "fails" : "0",
		n > 0 ? ibv_wc_status_str(wc[0].status) : n < 0 ? "poll fails" : "no completion");
	info("post_send %s", r ? strerror(r) : "0");
	ibv_destroy_qp(qp[0]);	/* errors are fine; hanging is not */
	ibv_destroy_qp(qp[1]);
	ibv_destroy_cq(cq);
	ibv_dereg_mr(mr);
	ibv_dealloc_pd(pd);
	ibv_close_device(ctx);
	info("verbs after the wait and teardown took %.2f s", now() - t0);
}

/* The refused-WR cases: each posts good, bad, good on qp[0] of a fresh pair. */
enum bad { BAD_ATOMIC_ALIGN, BAD_ATOMIC_SHORT, BAD_LKEY, BAD_RKEY, BAD_INLINE, BAD_SGES, NBAD };
static const char *const bad_name[NBAD] = {
	"atomic at a misaligned address", "atomic into 4 bytes", "an unregistered lkey",
	"a bad rkey", "inline data over max_inline_data", "more SGEs than max_send_sge",
};

static void bad_send(struct ibv_send_wr *w, struct ibv_sge *s, enum bad b)
{
	w->opcode = IBV_WR_RDMA_WRITE;
	w->wr.rdma.remote_addr = (uintptr_t)buf + 32768;
	w->wr.rdma.rkey = mr->rkey;
	switch (b) {
	case BAD_ATOMIC_ALIGN:
	case BAD_ATOMIC_SHORT:
		w->opcode = IBV_WR_ATOMIC_FETCH_AND_ADD;
		w->wr.atomic.remote_addr = (uintptr_t)buf + 32768 + (b == BAD_ATOMIC_ALIGN ? 4 : 0);
		w->wr.atomic.rkey = mr->rkey;
		w->wr.atomic.compare_add = 1;
		s->length = b == BAD_ATOMIC_SHORT ? 4 : 8;
		break;
	case BAD_LKEY:
		s->lkey = mr->lkey ^ 0x5a5a00;
		break;
	case BAD_RKEY:
		w->wr.rdma.rkey = mr->rkey ^ 0x5a5a00;
		break;
	case BAD_INLINE:
		s->length = 4096;
		w->send_flags |= IBV_SEND_INLINE;
		break;
	case BAD_SGES:
		w->num_sge = 2;
		break;
	default:
		break;
	}
}

/* qp's completions among wc[0..n), in order, as "id:status" words. */
static void list_wc(char *out, size_t len, const struct ibv_wc *wc, int n, struct ibv_qp *q)
{
	size_t o = 0;

	out[0] = 0;
	for (int i = 0; i < n && o < len; i++)
		if (wc[i].qp_num == q->qp_num)
			o += (size_t)snprintf(out + o, len - o, " %llu:%s",
					      (unsigned long long)wc[i].wr_id,
					      ibv_wc_status_str(wc[i].status));
	if (!out[0])
		snprintf(out, len, " none");
}

/* What posting returned, each QP's completions and the QPs' states, then teardown. The
 * responder's state is an info line where `peer_differs`: a refused atomic's NAK moves it
 * to ERR natively, and a guest's host refuses the atomic before the wire (docs/verbs.md). */
static void refused_report(const char *what, int ret, int bad_at, bool peer_differs)
{
	struct ibv_wc wc[64];
	char l0[512], l1[512];
	int n = collect(wc, 64, vt_secs(0.2), vt_secs(10.0));

	list_wc(l0, sizeof(l0), wc, n, qp[0]);
	list_wc(l1, sizeof(l1), wc, n, qp[1]);
	outcome("%s: post %s%s; qp0 completions%s; qp1 completions%s; qp0 %s%s%s", what,
		ret ? strerror(ret) : "0", bad_at >= 0 ? (const char *[]){ " at wr 0", " at wr 1",
		" at wr 2" }[bad_at] : "", l0, l1, qp_state(qp[0]), peer_differs ? "" : ", qp1 ",
		peer_differs ? "" : qp_state(qp[1]));
	/* The relay puts such an atomic on the wire through ibv_wr_*, as natively; the kernel
	 * backend refuses it before the wire (Linux's kernel verbs take no such atomic). */
	if (peer_differs)
		printf("outcome-except-kernel: %s: the responder's QP is %s\n", what,
		       qp_state(qp[1]));
	ibv_destroy_qp(qp[0]);
	ibv_destroy_qp(qp[1]);
	check(!ibv_destroy_cq(cq), "destroy CQ");
}

/* A fresh CQ and connected pair for one case, and three one-SGE lists of len bytes at
 * buf + base + 64 i (each with room for a second SGE). */
static void refused_setup(struct ibv_sge s[3][2], uint32_t base, uint32_t len)
{
	cq = ibv_create_cq(ctx, 64, NULL, NULL, 0);
	check(cq, "CQ");
	pair_rts(16);
	for (int i = 0; i < 3; i++) {
		s[i][0] = (struct ibv_sge){ .addr = (uintptr_t)buf + base + 64 * i, .length = len,
					    .lkey = mr->lkey };
		s[i][1] = s[i][0];
	}
}

static void refused_send(enum bad b)
{
	struct ibv_sge s[3][2];
	struct ibv_send_wr w[3], *badwr = NULL;
	char what[96];
	int ret;

	refused_setup(s, 0, 8);
	for (int i = 0; i < 3; i++) {
		w[i] = (struct ibv_send_wr){ .wr_id = 1 + i, .sg_list = s[i], .num_sge = 1,
			.opcode = IBV_WR_RDMA_WRITE, .send_flags = IBV_SEND_SIGNALED,
			.next = i < 2 ? &w[i + 1] : NULL };
		w[i].wr.rdma.remote_addr = (uintptr_t)buf + 32768 + 64 * i;
		w[i].wr.rdma.rkey = mr->rkey;
	}
	bad_send(&w[1], s[1], b);
	ret = ibv_post_send(qp[0], w, &badwr);
	snprintf(what, sizeof(what), "ibv_post_send, %s", bad_name[b]);
	refused_report(what, ret, ret && badwr ? (int)(badwr - w) : -1, false);
}

/* The same through the ibv_wr_* API, where the provider may check nothing at post time. */
static void refused_wr_api(enum bad b)
{
	struct ibv_qp_init_attr_ex ia = { .qp_type = IBV_QPT_RC, .pd = pd,
		.comp_mask = IBV_QP_INIT_ATTR_PD | IBV_QP_INIT_ATTR_SEND_OPS_FLAGS,
		.send_ops_flags = IBV_QP_EX_WITH_RDMA_WRITE | IBV_QP_EX_WITH_ATOMIC_FETCH_AND_ADD,
		.cap = { .max_send_wr = 16, .max_recv_wr = 16, .max_send_sge = 1, .max_recv_sge = 1,
			 .max_inline_data = 64 } };
	struct ibv_qp_ex *x;
	char what[96];
	int ret;

	cq = ibv_create_cq(ctx, 64, NULL, NULL, 0);
	check(cq, "CQ");
	ia.send_cq = ia.recv_cq = cq;
	qp[0] = ibv_create_qp_ex(ctx, &ia);
	check(qp[0], "ibv_create_qp_ex: %s", strerror(errno));
	qp[1] = new_qp(16);
	lb_connect_timeout(&lb, qp[0], qp[1]->qp_num, 14);
	lb_connect_timeout(&lb, qp[1], qp[0]->qp_num, 14);
	x = ibv_qp_to_qp_ex(qp[0]);
	check(x, "ibv_qp_to_qp_ex");
	ibv_wr_start(x);
	for (int i = 0; i < 3; i++) {
		uint64_t raddr = (uintptr_t)buf + 32768 + 64 * i;

		x->wr_id = 1 + i;
		x->wr_flags = IBV_SEND_SIGNALED;
		if (i == 1 && (b == BAD_ATOMIC_ALIGN || b == BAD_ATOMIC_SHORT)) {
			ibv_wr_atomic_fetch_add(x, mr->rkey, raddr + (b == BAD_ATOMIC_ALIGN ? 4 : 0), 1);
			ibv_wr_set_sge(x, mr->lkey, (uintptr_t)buf + 64 * i,
				       b == BAD_ATOMIC_SHORT ? 4 : 8);
		} else if (i == 1 && b == BAD_INLINE) {
			x->wr_flags |= IBV_SEND_INLINE;
			ibv_wr_rdma_write(x, mr->rkey, raddr);
			ibv_wr_set_inline_data(x, buf, 4096);
		} else {
			ibv_wr_rdma_write(x, mr->rkey, raddr);
			ibv_wr_set_sge(x, i == 1 && b == BAD_LKEY ? mr->lkey ^ 0x5a5a00 : mr->lkey,
				       (uintptr_t)buf + 64 * i, 8);
		}
	}
	ret = ibv_wr_complete(x);
	snprintf(what, sizeof(what), "ibv_wr_*, %s", bad_name[b]);
	refused_report(what, ret, -1, b == BAD_ATOMIC_ALIGN || b == BAD_ATOMIC_SHORT);
}

/* Receives good, bad, good on qp[1]; then qp[0] sends three messages. */
static void refused_recv(enum bad b)
{
	struct ibv_sge s[3][2];
	struct ibv_recv_wr w[3], *badwr = NULL;
	char what[96];
	int ret;

	refused_setup(s, 16384, 64);
	for (int i = 0; i < 3; i++) {
		w[i] = (struct ibv_recv_wr){ .wr_id = 11 + i, .sg_list = s[i], .num_sge = 1,
			.next = i < 2 ? &w[i + 1] : NULL };
	}
	if (b == BAD_LKEY)
		s[1][0].lkey = mr->lkey ^ 0x5a5a00;
	else
		w[1].num_sge = 2;
	ret = ibv_post_recv(qp[1], w, &badwr);
	for (int i = 0; i < 3; i++)
		check(!post_send(qp[0], 1 + i, IBV_WR_SEND, IBV_SEND_SIGNALED, 64 * i), "send %d", i);
	snprintf(what, sizeof(what), "ibv_post_recv, %s", b == BAD_LKEY ? bad_name[b] :
		 "more SGEs than max_recv_sge");
	refused_report(what, ret, ret && badwr ? (int)(badwr - w) : -1, false);
}

static void refused(void)
{
	for (enum bad b = 0; b < NBAD; b++)
		refused_send(b);
	refused_wr_api(BAD_ATOMIC_ALIGN);
	refused_wr_api(BAD_ATOMIC_SHORT);
	refused_wr_api(BAD_LKEY);
	refused_wr_api(BAD_INLINE);
	refused_recv(BAD_LKEY);
	refused_recv(BAD_SGES);
}

int main(int argc, char **argv)
{
	check(argc == 3, "usage: failures flush|overrun|noack|refused|fatal DEVICE");
	setvbuf(stdout, NULL, _IOLBF, 0);
	open_dev(argv[2]);
	if (!strcmp(argv[1], "flush"))
		flush();
	else if (!strcmp(argv[1], "overrun"))
		overrun();
	else if (!strcmp(argv[1], "noack"))
		noack();
	else if (!strcmp(argv[1], "fatal"))
		fatal();
	else if (!strcmp(argv[1], "refused"))
		refused();
	else
		fail("unknown mode %s", argv[1]);
	if (strcmp(argv[1], "fatal")) {
		check(!ibv_dereg_mr(mr) && !ibv_dealloc_pd(pd), "MR, PD teardown");
		check(!ibv_close_device(ctx), "close");
	}
	printf("done\n");
	return 0;
}
