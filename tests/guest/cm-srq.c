// SPDX-License-Identifier: MIT
/*
 * guest/cm-srq: rdma_create_srq on a CM ID and rdma_notify, run by
 * tests/device/guest-cm-ep.sh natively and as a guest on either side (a plain librdmacm
 * program: the expectations are what the native run prints).
 *
 *   cm-srq -s ADDR PORT     server: listens on ADDR:PORT, one connection
 *   cm-srq -c ADDR PORT     client: connects to ADDR:PORT
 *
 * The server makes an SRQ on the connection's ID (rdma_create_srq, the program's PD), then
 * the QP with no SRQ named (rdma_create_qp must take the ID's), posts NMSG receives on the
 * SRQ, accepts. The client sends NMSG messages; the server checks every byte of each (its
 * number and a pattern from it), that each came on its QP, once, then answers with one
 * message that the client checks. Each ID on the device must have a PD (librdmacm gives
 * it the device's), as natively. Both call rdma_notify once connected: COMM_EST (the
 * kernel CM's answer for an established connection) and an event the CM does not take.
 * Then the client disconnects, both get DISCONNECTED, rdma_destroy_srq clears id->srq.
 * "outcome:" lines are what the test compares with the native run; exit 0 when every
 * check held, 1 otherwise.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <poll.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <rdma/rdma_cma.h>
#include <rdma/rdma_verbs.h>

#define MSG	64
#define NMSG	16
#define WAIT_MS	15000

static int failed;

#define FAIL(...) do { printf("FAIL: " __VA_ARGS__); printf("\n"); failed = 1; } while (0)

static const char *err_name(int r)
{
	if (!r)
		return "0";
	switch (errno) {
	case EISCONN: return "EISCONN";
	case EINVAL: return "EINVAL";
	case ENOTCONN: return "ENOTCONN";
	case EOPNOTSUPP: return "EOPNOTSUPP";
	case ENOSYS: return "ENOSYS";
	default: return strerror(errno);
	}
}

/* The next event on ch, which must be `want` (status 0); NULL after printing otherwise. */
static struct rdma_cm_event *expect(struct rdma_event_channel *ch, enum rdma_cm_event_type want)
{
	struct pollfd p = { .fd = ch->fd, .events = POLLIN };
	struct rdma_cm_event *ev;

	if (poll(&p, 1, WAIT_MS) != 1) {
		FAIL("no %s within %d ms", rdma_event_str(want), WAIT_MS);
		return NULL;
	}
	if (rdma_get_cm_event(ch, &ev)) {
		FAIL("rdma_get_cm_event: %s", strerror(errno));
		return NULL;
	}
	if (ev->event != want || ev->status) {
		FAIL("%s (status %d) instead of %s", rdma_event_str(ev->event), ev->status,
		     rdma_event_str(want));
		rdma_ack_cm_event(ev);
		return NULL;
	}
	return ev;
}

static bool wait_ok(struct rdma_event_channel *ch, enum rdma_cm_event_type want)
{
	struct rdma_cm_event *ev = expect(ch, want);

	if (ev)
		rdma_ack_cm_event(ev);
	return ev != NULL;
}

/* Poll cq for n completions into wc (busy, WAIT_MS at most). */
static int poll_n(struct ibv_cq *cq, struct ibv_wc *wc, int n)
{
	struct timespec t0, t;
	int got = 0, r;

	clock_gettime(CLOCK_MONOTONIC, &t0);
	while (got < n) {
		r = ibv_poll_cq(cq, n - got, wc + got);
		if (r < 0)
			return got;
		got += r;
		clock_gettime(CLOCK_MONOTONIC, &t);
		if ((t.tv_sec - t0.tv_sec) * 1000 + (t.tv_nsec - t0.tv_nsec) / 1000000 > WAIT_MS)
			break;
	}
	return got;
}

static void fill(uint8_t *m, int k)
{
	m[0] = (uint8_t)k;
	for (int j = 1; j < MSG; j++)
		m[j] = (uint8_t)(k * 31 + j * 7);
}

static bool filled(const uint8_t *m, int k)
{
	uint8_t want[MSG];

	fill(want, k);
	return !memcmp(m, want, MSG);
}

static void notify(struct rdma_cm_id *id, const char *side)
{
	int r;

	r = rdma_notify(id, IBV_EVENT_COMM_EST);
	printf("outcome: %s rdma_notify COMM_EST once established: %s\n", side, err_name(r));
	r = rdma_notify(id, IBV_EVENT_SQ_DRAINED);
	printf("outcome: %s rdma_notify SQ_DRAINED: %s\n", side, err_name(r));
}

static struct ibv_qp_init_attr qp_attr(struct ibv_cq *cq)
{
	struct ibv_qp_init_attr a = {
		.send_cq = cq, .recv_cq = cq, .qp_type = IBV_QPT_RC,
		.cap = { .max_send_wr = NMSG, .max_recv_wr = 1, .max_send_sge = 1,
			 .max_recv_sge = 1 },
	};
	return a;
}

static int server(struct rdma_event_channel *ch, struct sockaddr *addr)
{
	struct rdma_conn_param cp = { .responder_resources = 1, .initiator_depth = 1,
				      .rnr_retry_count = 7 };
	struct ibv_srq_init_attr sa = { .attr = { .max_wr = NMSG, .max_sge = 1 } };
	static uint8_t buf[(NMSG + 1) * MSG];
	struct ibv_wc wc[NMSG];
	struct rdma_cm_id *lid, *id;
	struct rdma_cm_event *ev;
	struct ibv_qp_init_attr qa;
	struct ibv_mr *mr;
	struct ibv_cq *cq;
	struct ibv_pd *pd;
	bool seen[NMSG] = { false };
	int n;

	if (rdma_create_id(ch, &lid, NULL, RDMA_PS_TCP) || rdma_bind_addr(lid, addr) ||
	    rdma_listen(lid, 1)) {
		FAIL("listen: %s", strerror(errno));
		return 1;
	}
	printf("listening\n");
	fflush(stdout);
	ev = expect(ch, RDMA_CM_EVENT_CONNECT_REQUEST);
	if (!ev)
		return 1;
	id = ev->id;
	rdma_ack_cm_event(ev);
	/* librdmacm gives every ID on a device the device's PD (rdma_reg_msgs before a QP) */
	printf("outcome: the request's ID has a PD: %s\n", id->pd ? "yes" : "no");

	pd = ibv_alloc_pd(id->verbs);
	cq = pd ? ibv_create_cq(id->verbs, 2 * NMSG + 2, NULL, NULL, 0) : NULL;
	if (!cq) {
		FAIL("pd or cq: %s", strerror(errno));
		return 1;
	}
	n = rdma_create_srq(id, pd, &sa);
	printf("outcome: rdma_create_srq: %s, id->srq %s, id->pd %s\n", err_name(n),
	       id->srq ? "set" : "NULL", id->pd == pd ? "the program's" : "other");
	if (n)
		return 1;
	qa = qp_attr(cq);
	if (rdma_create_qp(id, pd, &qa)) {
		FAIL("rdma_create_qp: %s", strerror(errno));
		return 1;
	}
	printf("outcome: the QP is on the ID's SRQ: %s\n", id->qp->srq == id->srq ? "yes" : "no");
	mr = rdma_reg_msgs(id, buf, sizeof(buf));
	if (!mr) {
		FAIL("rdma_reg_msgs: %s", strerror(errno));
		return 1;
	}
	memset(buf, 0xee, sizeof(buf));
	for (int i = 0; i < NMSG; i++) {
		struct ibv_sge s = { .addr = (uintptr_t)(buf + i * MSG), .length = MSG,
				     .lkey = mr->lkey };
		struct ibv_recv_wr w = { .wr_id = (uint64_t)i, .sg_list = &s, .num_sge = 1 }, *bad;

		if (ibv_post_srq_recv(id->srq, &w, &bad)) {
			FAIL("ibv_post_srq_recv %d", i);
			return 1;
		}
	}
	if (rdma_accept(id, &cp)) {
		FAIL("rdma_accept: %s", strerror(errno));
		return 1;
	}
	if (!wait_ok(ch, RDMA_CM_EVENT_ESTABLISHED))
		return 1;
	notify(id, "server");

	n = poll_n(cq, wc, NMSG);
	if (n != NMSG)
		FAIL("%d receives of %d", n, NMSG);
	for (int i = 0; i < n; i++) {
		const uint8_t *m = buf + wc[i].wr_id * MSG;

		if (wc[i].status || wc[i].opcode != IBV_WC_RECV || wc[i].byte_len != MSG ||
		    wc[i].wr_id >= NMSG || wc[i].qp_num != id->qp->qp_num) {
			FAIL("receive %d: status %d opcode %d len %u wr_id %llu qp %u", i,
			     wc[i].status, wc[i].opcode, wc[i].byte_len,
			     (unsigned long long)wc[i].wr_id, wc[i].qp_num);
			continue;
		}
		if (m[0] >= NMSG || seen[m[0]] || !filled(m, m[0])) {
			FAIL("receive %d: message %u wrong or twice", i, m[0]);
			continue;
		}
		seen[m[0]] = true;
	}
	if (!failed)
		printf("outcome: %d messages through the SRQ, every byte as sent\n", NMSG);

	fill(buf + NMSG * MSG, 200);
	if (rdma_post_send(id, NULL, buf + NMSG * MSG, MSG, mr, IBV_SEND_SIGNALED) ||
	    poll_n(cq, wc, 1) != 1 || wc[0].status) {
		FAIL("the answer's SEND");
		return 1;
	}
	if (!wait_ok(ch, RDMA_CM_EVENT_DISCONNECTED))
		return 1;
	rdma_dereg_mr(mr);
	rdma_destroy_qp(id);
	rdma_destroy_srq(id);
	printf("outcome: rdma_destroy_srq: id->srq %s\n", id->srq ? "set" : "NULL");
	ibv_destroy_cq(cq);
	rdma_destroy_id(id);
	ibv_dealloc_pd(pd);
	rdma_destroy_id(lid);
	return failed;
}

static int client(struct rdma_event_channel *ch, struct sockaddr *addr)
{
	struct rdma_conn_param cp = { .responder_resources = 1, .initiator_depth = 1,
				      .retry_count = 7, .rnr_retry_count = 7 };
	static uint8_t buf[(NMSG + 1) * MSG];
	struct ibv_wc wc[NMSG + 1];
	struct ibv_qp_init_attr qa;
	struct rdma_cm_id *id;
	struct ibv_mr *mr;
	struct ibv_cq *cq;
	int n, sends = 0, recvs = 0;

	if (rdma_create_id(ch, &id, NULL, RDMA_PS_TCP) ||
	    rdma_resolve_addr(id, NULL, addr, 2000) ||
	    !wait_ok(ch, RDMA_CM_EVENT_ADDR_RESOLVED) || rdma_resolve_route(id, 2000) ||
	    !wait_ok(ch, RDMA_CM_EVENT_ROUTE_RESOLVED)) {
		FAIL("resolve: %s", strerror(errno));
		return 1;
	}
	printf("outcome: the resolved ID has a PD: %s\n", id->pd ? "yes" : "no");
	cq = ibv_create_cq(id->verbs, NMSG + 2, NULL, NULL, 0);
	qa = qp_attr(cq);
	if (!cq || rdma_create_qp(id, NULL, &qa)) {
		FAIL("cq or qp: %s", strerror(errno));
		return 1;
	}
	mr = rdma_reg_msgs(id, buf, sizeof(buf));
	if (!mr || rdma_post_recv(id, NULL, buf + NMSG * MSG, MSG, mr)) {
		FAIL("mr or recv: %s", strerror(errno));
		return 1;
	}
	if (rdma_connect(id, &cp) || !wait_ok(ch, RDMA_CM_EVENT_ESTABLISHED)) {
		FAIL("connect: %s", strerror(errno));
		return 1;
	}
	notify(id, "client");
	for (int i = 0; i < NMSG; i++) {
		fill(buf + i * MSG, i);
		if (rdma_post_send(id, NULL, buf + i * MSG, MSG, mr, IBV_SEND_SIGNALED)) {
			FAIL("send %d: %s", i, strerror(errno));
			return 1;
		}
	}
	n = poll_n(cq, wc, NMSG + 1);
	for (int i = 0; i < n; i++) {
		if (wc[i].status)
			FAIL("completion %d: status %d", i, wc[i].status);
		else if (wc[i].opcode == IBV_WC_SEND)
			sends++;
		else if (wc[i].opcode == IBV_WC_RECV && wc[i].byte_len == MSG &&
			 filled(buf + NMSG * MSG, 200))
			recvs++;
		else
			FAIL("completion %d: opcode %d len %u, or the answer is wrong", i,
			     wc[i].opcode, wc[i].byte_len);
	}
	if (sends == NMSG && recvs == 1)
		printf("outcome: %d messages sent, the server's answer as sent\n", NMSG);
	else
		FAIL("%d sends, %d answers", sends, recvs);
	if (rdma_disconnect(id) || !wait_ok(ch, RDMA_CM_EVENT_DISCONNECTED))
		FAIL("disconnect: %s", strerror(errno));
	rdma_dereg_mr(mr);
	rdma_destroy_qp(id);
	ibv_destroy_cq(cq);
	rdma_destroy_id(id);
	return failed;
}

int main(int argc, char **argv)
{
	struct sockaddr_in a = { .sin_family = AF_INET };
	struct rdma_event_channel *ch;
	int r;

	setvbuf(stdout, NULL, _IOLBF, 0);
	if (argc != 4 || (strcmp(argv[1], "-s") && strcmp(argv[1], "-c")) ||
	    inet_pton(AF_INET, argv[2], &a.sin_addr) != 1) {
		fprintf(stderr, "usage: cm-srq -s|-c IPV4 PORT\n");
		return 2;
	}
	a.sin_port = htons((uint16_t)atoi(argv[3]));
	ch = rdma_create_event_channel();
	if (!ch) {
		perror("rdma_create_event_channel");
		return 1;
	}
	r = argv[1][1] == 's' ? server(ch, (struct sockaddr *)&a) : client(ch, (struct sockaddr *)&a);
	rdma_destroy_event_channel(ch);
	printf("%s: %s\n", argv[1][1] == 's' ? "server" : "client", r ? "FAIL" : "ok");
	return r ? 1 : 0;
}
