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
 *            IBV_WC_WR_FLUSH_ERR; then what posting in ERR gives.
 *  overrun   more completions than a small CQ holds, never polled: the async event, how
 *            many completions remain, the QP's state, and whether the CQ still works.
 *  noack     a CQ event taken and never acknowledged (the CQ never polled): ibv_destroy_cq
 *            (in a thread) blocks until the event is acknowledged. "holding pid N" is
 *            printed while it blocks; SIGUSR1 (or 60 s, scaled) makes it acknowledge, and the
 *            destroy must then return 0. The script may instead kill it while it holds.
 *  fatal     a context with a PD, CQ, MR and connected QPs that carried traffic prints
 *            "ready", then waits up to $FAIL_WAIT seconds (10 s scaled) for IBV_EVENT_DEVICE_FATAL
 *            while the script deletes the device under it; then verbs must fail or return,
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
	check(!ibv_destroy_qp(qp[0]) && !ibv_destroy_qp(qp[1]) && !ibv_destroy_cq(cq), "teardown");
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
	for (int i = 0; i < NW; i++)
		check(!post_send(qp[0], 100 + i, IBV_WR_RDMA_WRITE, IBV_SEND_SIGNALED, 8 * i),
		      "post %d", i);
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
	outcome("completions: %s", n < NW ? "some lost (fewer than posted)" : "none lost");
	outcome("qp0 state after the overrun: %s", qp_state(qp[0]));
	r = post_send(qp[0], 999, IBV_WR_RDMA_WRITE, IBV_SEND_SIGNALED, 0);
	n = r ? 0 : collect(wc, 4, vt_secs(1), vt_secs(3));
	outcome("a write after the overrun: post %s, %s", r ? strerror(r) : "0",
		n ? ibv_wc_status_str(wc[0].status) : "no completion");
	ibv_destroy_qp(qp[0]);
	ibv_destroy_qp(qp[1]);
	check(!ibv_destroy_cq(cq), "destroy CQ");
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
	n = collect(wc, 1, vt_secs(2), vt_secs(2));
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

int main(int argc, char **argv)
{
	check(argc == 3, "usage: failures flush|overrun|noack|fatal DEVICE");
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
	else
		fail("unknown mode %s", argv[1]);
	if (strcmp(argv[1], "fatal")) {
		check(!ibv_dereg_mr(mr) && !ibv_dealloc_pd(pd), "MR, PD teardown");
		check(!ibv_close_device(ctx), "close");
	}
	printf("done\n");
	return 0;
}
