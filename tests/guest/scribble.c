// SPDX-License-Identifier: MIT
/*
 * guest/scribble: a hostile guest (tests/device/guest-scribble.sh). It runs RC traffic
 * between two QPs of its own and, all the while, writes random values over the memory it
 * shares with the host: its rings' producer, consumer, flag and retired words, its work
 * queue entries (send and receive) and its completion ring; then, once SECONDS are over,
 * its connection's call channel (signal words, ring headers and descriptors, at most 32
 * times, each followed by a call through it: ibv_reg_mr and ibv_dereg_mr, which on the
 * relay backend go over it), and last, unless the connection has ended already, the
 * channel broken on purpose: DEVICE_FATAL must come, then EIO from a call.
 * It reaches them through the guest library's own structures (verbs-guest/vbg.h) and
 * /proc/self/maps, as a program that knows the layout would.
 *
 *   scribble DEV GID_INDEX SECONDS SEED
 *
 * Each scribble is printed ("scribble: TARGET"), then what came of it: async events
 * ("event: ..."), completions with errors, post errors. The loop never blocks (polls are
 * non-blocking, the async fd is polled with 0) and ends after SECONDS (scaled), or early
 * once IBV_EVENT_DEVICE_FATAL came. The last line: "summary: N scribbles, events ...".
 * The host's side is judged by the script: vbusd, the module and the other guests.
 */
#include <poll.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <stdbool.h>
#include <unistd.h>
#include "loopback.h"
#include "../../verbs-guest/vbg.h"
#include <vbus/vrdma-kernel.h>

#define MSG 1024

enum target { T_SQ_IDX, T_SQ_WQE, T_RQ_IDX, T_RQ_WQE, T_CQ_IDX, T_CQ_SLOT, T_CALL, T_N };
static const char *const names[T_N] = {
	"send ring index", "send WQE", "receive ring index", "receive WQE",
	"completion ring index", "completion slot", "call channel",
};

/* The connection's call channel (connector/client.c: a memfd named "vbus-call", shared
 * with vbusd), found as any program of the process could find it. */
static uint32_t *call_area;
static size_t call_words;

static uint64_t rnd_state;
/* Which verb the loop is in: a watchdog names it if the loop stops (the script's
 * timeout would say only that it hung). */
static volatile sig_atomic_t stage;
static const char *const stages[] = { "loop", "ibv_post_recv", "ibv_post_send", "ibv_poll_cq",
				      "async events", "scribbling", "a call (ibv_reg_mr)",
				      "the call channel broken on purpose" };

static void watchdog(int sig)
{
	char m[96];
	int n = snprintf(m, sizeof(m), "watchdog: stuck in %s\n", stages[stage]);

	(void)sig;
	if (write(1, m, (size_t)n) < 0)
		_exit(3);
	_exit(3);
}

static uint32_t rnd(void)
{
	rnd_state = rnd_state * 6364136223846793005ull + 1442695040888963407ull;
	return (uint32_t)(rnd_state >> 33);
}

/* A random word of the ring's header: prod, cons, flags, armed or retired. */
static void scribble_ring(struct vrdma_ring *r)
{
	volatile __le32 *w[] = { &r->prod, &r->cons, &r->flags, &r->armed, &r->retired };
	uint32_t v = rnd();

	/* Small steps as well as nonsense: an index a little ahead is the subtle case. */
	*w[rnd() % 5] = (rnd() & 1) ? v : v % 8;
}

static void scribble_slots(uint8_t *slots, uint32_t entries, uint32_t stride)
{
	uint32_t *p = (uint32_t *)(slots + (size_t)(rnd() % entries) * stride);

	for (uint32_t i = 0, n = 1 + rnd() % 8; i < n; i++)
		p[rnd() % (stride / 4)] = rnd();
}

static void find_call_area(void)
{
	FILE *f = fopen("/proc/self/maps", "r");
	char line[512];

	while (f && fgets(line, sizeof(line), f)) {
		unsigned long lo, hi;

		if (strstr(line, "/memfd:vbus-call") && sscanf(line, "%lx-%lx", &lo, &hi) == 2) {
			call_area = (uint32_t *)lo;
			call_words = (hi - lo) / 4;
			break;
		}
	}
	if (f)
		fclose(f);
	printf("call channel: %s\n", call_area ? "found" : "none (calls go over the socket)");
}

/* A word of the channel: its signals' and rings' index words (the first 64 bytes and
 * each ring's header) half of the time, anywhere in it otherwise. */
static void scribble_call(void)
{
	/* 8 entries: verbs-guest/conn.c opens the channel so. */
	size_t ring = (sizeof(struct vbus_call_area) +
		       (size_t)VBUS_IOQ_SIZE(8, VBUS_CALL_DESC) * (rnd() % 2)) / 4;
	size_t w = (rnd() & 1) ? (rnd() % 2 ? rnd() % 16 : ring + 16 * (rnd() % 3))
			       : rnd() % call_words;
	uint32_t v = rnd();

	if (w < call_words)
		call_area[w] = (rnd() & 1) ? v : v % 8;
}

static void scribble(struct vbg_qp *qp, struct vbg_cq *cq, enum target t)
{
	switch (t) {
	case T_CALL:
		if (call_area)
			scribble_call();
		break;
	case T_SQ_IDX: scribble_ring(qp->sq.ring); break;
	case T_SQ_WQE: scribble_slots(qp->sq.slots, qp->sq.entries, qp->sq.stride); break;
	case T_RQ_IDX: scribble_ring(qp->rq.ring); break;
	case T_RQ_WQE: scribble_slots(qp->rq.slots, qp->rq.entries, qp->rq.stride); break;
	case T_CQ_IDX: scribble_ring(cq->q.ring); break;
	default: scribble_slots(cq->q.slots, cq->q.entries, cq->q.stride); break;
	}
}

/* Ring the doorbell whatever the ring's flags say, as a hostile guest would: the host must
 * look at what was scribbled (the kernel backend looks at a ring only when rung). */
static void ring(struct ibv_context *c, struct vbg_qp *qp)
{
	struct vbg_context *ctx = to_vctx(c);
	uint64_t one = 1;

	if (ctx->kfd >= 0) {
		if (ioctl(ctx->kfd, VBK_IOC_DOORBELL, (unsigned long)qp->sq.db) < 0)
			return;	/* refused: that is the host's business */
	} else if (write(ctx->doorbell, &one, sizeof(one)) != sizeof(one)) {
		return;
	}
}

/* First, one deterministic case: the receive ring's flags word cleared (no NEED_WAKEUP), then
 * a receive posted. The guest library must still get it taken: the kernel backend's doorbell
 * is rung on every post, the relay's once the wait passes a millisecond. Before that fix the
 * kernel backend never saw it and every ibv_post_recv waited its full 2 s (CI, stop 17). */
static void flags_cleared(struct ibv_qp *b, struct ibv_mr *mr, uint8_t *rbuf)
{
	struct vbg_qp *qp = (struct vbg_qp *)b;
	struct ibv_sge sge = { .addr = (uintptr_t)rbuf, .length = MSG, .lkey = mr->lkey };
	struct ibv_recv_wr wr = { .sg_list = &sge, .num_sge = 1 }, *bad;
	uint32_t cons;

	__atomic_store_n(&qp->rq.ring->flags, 0, __ATOMIC_SEQ_CST);
	check(!ibv_post_recv(b, &wr, &bad), "post_recv with the flags cleared: %s", strerror(errno));
	cons = le32toh(__atomic_load_n(&qp->rq.ring->cons, __ATOMIC_ACQUIRE));
	check((int32_t)(qp->rprod - cons) <= 0,
	      "a receive posted with the ring's flags word cleared was not taken (cons %u, prod %u)",
	      cons, qp->rprod);
	printf("ok: a receive posted with the ring's flags word cleared was taken\n");
}

static double now(void);

/* The last, deterministic case: the request ring's producer index set to nonsense. vbusd
 * looks at the channel at least every 200 ms, breaks it and ends the connection: the guest
 * gets DEVICE_FATAL within a bounded (scaled) time, on both backends, and its next call
 * fails with EIO at once. */
static void channel_broken(struct ibv_context *c, struct ibv_pd *pd, uint8_t *buf)
{
	volatile uint32_t *prod = call_area + sizeof(struct vbus_call_area) / 4;
	struct pollfd p = { .fd = c->async_fd, .events = POLLIN };
	double t0 = now(), limit = vt_secs(10);
	bool fatal = false;

	*prod += 0x10000;
	while (!fatal && now() - t0 < limit) {
		struct ibv_async_event ev;

		if (poll(&p, 1, 100) != 1 || ibv_get_async_event(c, &ev))
			continue;
		fatal = ev.event_type == IBV_EVENT_DEVICE_FATAL;
		ibv_ack_async_event(&ev);
	}
	check(fatal, "no DEVICE_FATAL within %.0f s of breaking the call channel", limit);
	printf("ok: the call channel broken on purpose: DEVICE_FATAL after %.0f ms",
	       (now() - t0) * 1e3);
	errno = 0;
	check(!ibv_reg_mr(pd, buf, MSG, IBV_ACCESS_LOCAL_WRITE) && errno == EIO,
	      "ibv_reg_mr after it: %s, not EIO", strerror(errno));
	printf(", then ibv_reg_mr EIO\n");
}

static double now(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
	unsigned nev[IBV_EVENT_WQ_FATAL + 2] = { 0 }, nscr = 0, nbad = 0, nposterr = 0;
	unsigned nbadcall = 0, ncall = 0;
	struct ibv_qp *a, *b;
	struct ibv_cq *cq;
	struct ibv_mr *mr;
	struct lb l;
	uint8_t *buf;
	double end;
	bool fatal = false;

	if (argc != 5) {
		fprintf(stderr, "usage: scribble DEV GID_INDEX SECONDS SEED\n");
		return 2;
	}
	setvbuf(stdout, NULL, _IOLBF, 0);
	/* The LCG takes any state: the seed as it is (an "| 1" here once made seeds 2k and
	 * 2k+1 the same run). */
	rnd_state = strtoull(argv[4], NULL, 0);
	lb_open(&l, argv[1], atoi(argv[2]));
	/* The casts below hold for vbus contexts only (libvbus-verbs under vbus-run). */
	check(!strncmp(ibv_get_device_name(l.ctx->device), "vrdma", 5),
	      "%s is not a vrdma device: run under vbus-run", argv[1]);
	cq = ibv_create_cq(l.ctx, 64, NULL, NULL, 0);
	buf = calloc(1, 2 * MSG);
	check(cq && buf, "create_cq: %s", strerror(errno));
	mr = ibv_reg_mr(l.pd, buf, 2 * MSG, IBV_ACCESS_LOCAL_WRITE | IBV_ACCESS_REMOTE_WRITE);
	check(mr, "reg_mr: %s", strerror(errno));
	a = lb_qp(&l, cq, cq, NULL);
	b = lb_qp(&l, cq, cq, NULL);
	lb_connect(&l, a, b->qp_num);
	lb_connect(&l, b, a->qp_num);
	find_call_area();
	printf("ready\n");
	fflush(stdout);
	flags_cleared(b, mr, buf + MSG);

	end = now() + vt_secs(atof(argv[3]));
	signal(SIGALRM, watchdog);
	/* Beyond a call's own 30 s limit (connector/client.c), and the last case's 10 s. */
	alarm((unsigned)vt_secs(atof(argv[3])) + (unsigned)vt_secs(10) + 40);
	for (unsigned long it = 0; now() < end && !fatal; it++) {
		struct ibv_sge sge = { .addr = (uintptr_t)buf, .length = MSG, .lkey = mr->lkey };
		struct ibv_sge rsge = { .addr = (uintptr_t)buf + MSG, .length = MSG, .lkey = mr->lkey };
		struct ibv_send_wr wr = { .sg_list = &sge, .num_sge = 1,
					  .opcode = (it & 1) ? IBV_WR_SEND : IBV_WR_RDMA_WRITE,
					  .send_flags = IBV_SEND_SIGNALED }, *bad;
		struct ibv_recv_wr rwr = { .sg_list = &rsge, .num_sge = 1 }, *rbad;
		struct pollfd p = { .fd = l.ctx->async_fd, .events = POLLIN };
		struct ibv_wc wc[8];
		int n;

		wr.wr.rdma.remote_addr = (uintptr_t)buf + MSG;
		wr.wr.rdma.rkey = mr->rkey;
		stage = 1;
		if (ibv_post_recv(b, &rwr, &rbad))
			nposterr++;
		stage = 2;
		if (ibv_post_send(a, &wr, &bad))
			nposterr++;
		stage = 3;
		n = ibv_poll_cq(cq, 8, wc);
		stage = 4;
		for (int i = 0; i < n; i++)
			nbad += wc[i].status != IBV_WC_SUCCESS;
		if (n < 0)
			nbad++;
		while (poll(&p, 1, 0) == 1) {
			struct ibv_async_event ev;

			if (ibv_get_async_event(l.ctx, &ev))
				break;
			printf("event: %s\n", ibv_event_type_str(ev.event_type));
			nev[ev.event_type <= IBV_EVENT_WQ_FATAL ? ev.event_type : IBV_EVENT_WQ_FATAL + 1]++;
			fatal |= ev.event_type == IBV_EVENT_DEVICE_FATAL;
			ibv_ack_async_event(&ev);
		}
		stage = 5;
		if (it % 64 == 63) {
			/* The rings only: a spoiled call channel ends the connection. */
			enum target t = (enum target)(rnd() % T_CALL);

			scribble((struct vbg_qp *)a, (struct vbg_cq *)cq, t);
			if (rnd() & 1)
				scribble((struct vbg_qp *)b, (struct vbg_cq *)cq, t);
			ring(l.ctx, (struct vbg_qp *)a);
			ring(l.ctx, (struct vbg_qp *)b);
			nscr++;
			if (nscr <= 20)
				printf("scribble: %s\n", names[t]);
		}
		stage = 0;
	}
	/* Then the call channel, which the rings' loop left alone: random words of it, each
	 * followed by a call through it, until the connection ends or 32 were made. */
	for (unsigned i = 0; i < 32 && call_area && !fatal; i++) {
		struct pollfd p = { .fd = l.ctx->async_fd, .events = POLLIN };
		struct ibv_async_event ev;
		struct ibv_mr *m;

		stage = 5;
		scribble(NULL, NULL, T_CALL);
		nscr++;
		ncall++;
		stage = 6;
		m = ibv_reg_mr(l.pd, buf, MSG, IBV_ACCESS_LOCAL_WRITE);
		if (!m || ibv_dereg_mr(m))
			nbadcall++;
		stage = 4;
		while (poll(&p, 1, 0) == 1 && !ibv_get_async_event(l.ctx, &ev)) {
			nev[ev.event_type <= IBV_EVENT_WQ_FATAL ? ev.event_type : IBV_EVENT_WQ_FATAL + 1]++;
			fatal |= ev.event_type == IBV_EVENT_DEVICE_FATAL;
			ibv_ack_async_event(&ev);
		}
	}
	printf("info: call channel: %u scribbles, each with a call: %u failed%s\n", ncall,
	       nbadcall, fatal ? "; the connection ended (DEVICE_FATAL)" : "");
	stage = 7;
	if (!fatal && call_area)
		channel_broken(l.ctx, l.pd, buf);
	else
		printf("info: the last case not run: %s\n",
		       fatal ? "the connection had ended already (DEVICE_FATAL)" : "no call channel");
	alarm(0);
	printf("summary: %u scribbles, %u failed completions, %u post errors, %u failed calls, "
	       "events: QP_FATAL %u, CQ_ERR %u, DEVICE_FATAL %u, others %u\n", nscr, nbad,
	       nposterr, nbadcall,
	       nev[IBV_EVENT_QP_FATAL], nev[IBV_EVENT_CQ_ERR], nev[IBV_EVENT_DEVICE_FATAL],
	       nev[IBV_EVENT_QP_REQ_ERR] + nev[IBV_EVENT_QP_ACCESS_ERR] + nev[IBV_EVENT_WQ_FATAL + 1]);
	fflush(stdout);
	/* No teardown: the host cleans up after a guest that exits in any state. */
	return 0;
}
