// SPDX-License-Identifier: MIT
/*
 * relay-sched: the relay's work per pass follows the work done, not the number of objects
 * a guest holds (issue 13, point 3; docs/vrdma.md, "Scheduling").
 *
 * One guest of the relay backend on fake-ibv (verbs-host/fuzz/fake-ibv.c, the pretend
 * device of fuzz-vrdma), driven through vrdma_dispatch() and its rings as vbusd's relay
 * thread drives it, with no thread: the test makes the passes. It runs the same scenario
 * twice, with 1 and with 1000 idle RC QPs (each with its own CQ) beside one busy QP:
 *   - idle passes: nothing posted anywhere;
 *   - rounds: the busy QP posts 8 signaled sends, the guest kicks its doorbell if its
 *     ring asks for it, passes run until the 8 completions are in its CQ ring.
 * It asserts on the queues each pass looks at (g->n_visits): an idle pass, once the idle
 * queues are parked, looks at none, and a round looks at as many with 1000 idle QPs as
 * with 1; every completion carries the busy QP's handle and wr_id. It prints the time
 * per idle pass and per round for both, which are figures, not checked.
 * A flooding QP's pass stops at the guest's budget (VRDMA_RELAY_WEIGHT).
 * Last, the relay thread itself (vrdma_relay_start) serves the guest while this thread
 * plays the guest library, with pauses that let the relay park every queue and sleep:
 * every completion must come (no lost wake-up); the TSan build checks the threads. Every
 * fourth round after a pause the sends are drained by a control call's
 * vrdma_relay_drain_sends (DESTROY_AH, DEALLOC_MW, DEREG_MR) under the guest's lock, right
 * after they were published on a parked ring: the ring must still ask for the next kick.
 */
#include <endian.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>
#include <vbus/vrdma-fns.h>
#include "../../verbs-host/vrdma/vrdma.h"
#include "../../verbs-host/fuzz/fake-ibv.h"
#include "../lib/vt-time.h"

#define REGION		(8u << 20)
#define SQ_ENTRIES	1024	/* the busy QP's; an idle one has 4 */
#define RQ_ENTRIES	4
#define ROUND		8
#define SQ_STRIDE	128

static int fail(const char *what)
{
	fprintf(stderr, "FAIL: %s\n", what);
	exit(1);
}

static uint8_t *base;
static int mfd;
static uint64_t used;		/* bytes of the region handed out */

static int env_region(void *priv, uint32_t shm, struct vrdma_region *out)
{
	(void)priv;
	if (shm != 1)
		return -ENOENT;
	*out = (struct vrdma_region){ .fd = mfd, .base = base, .size = REGION };
	return 0;
}

static void env_region_put(void *priv, uint32_t shm)
{
	(void)priv, (void)shm;
}

static int env_kick(void *priv, uint32_t sig)
{
	(void)priv, (void)sig;
	return 0;
}

static void env_event(void *priv, uint32_t type, uint32_t handle, uint32_t port)
{
	(void)priv, (void)handle, (void)port;
	fprintf(stderr, "FAIL: async event %u\n", type);
	exit(1);
}

static const struct vrdma_env_ops env = { .region = env_region, .region_put = env_region_put,
					  .kick = env_kick, .event = env_event };

static uint64_t carve(uint64_t n)
{
	uint64_t off = used;

	used += (n + 63) & ~63ull;
	if (used > REGION)
		fail("region too small");
	return off;
}

static void call(struct vrdma_guest *g, uint32_t fn, const void *in, size_t inlen, void *out,
		 size_t outmax)
{
	size_t outlen;

	if (vrdma_dispatch(g, fn, in, inlen, out, outmax, &outlen))
		fail("a control call");
}

struct tqp {
	uint32_t qp, cq, sq_entries, cq_entries;
	struct vrdma_ring *sq, *cqr;
	uint32_t sq_prod, cq_cons;
};

static void make_qp(struct vrdma_guest *g, uint32_t pd, struct tqp *t, uint32_t n)
{
	struct vrdma_create_cq_in ci = { .cqe = htole32(n - 1), .shm = htole32(1),
					  .entries = htole32(n) };
	struct vrdma_create_cq_out co;
	struct vrdma_create_qp_in qi = {
		.pd = htole32(pd), .qp_type = IBV_QPT_RC, .shm = htole32(1),
		.cap = { .max_send_wr = htole32(n - 1), .max_recv_wr = htole32(1),
			 .max_send_sge = htole32(1), .max_recv_sge = htole32(1) },
		.sq_entries = htole32(n), .sq_stride = htole32(SQ_STRIDE),
		.rq_entries = htole32(RQ_ENTRIES), .rq_stride = htole32(32),
	};
	struct vrdma_create_qp_out qo;

	ci.offset = htole64(carve(sizeof(struct vrdma_ring) + n * 64));
	call(g, VRDMA_FN_CREATE_CQ, &ci, sizeof(ci), &co, sizeof(co));
	t->cq = le32toh(co.handle);
	t->cqr = (struct vrdma_ring *)(base + le64toh(ci.offset));
	qi.send_cq = qi.recv_cq = co.handle;
	qi.sq_offset = htole64(carve(sizeof(struct vrdma_ring) + n * SQ_STRIDE));
	qi.rq_offset = htole64(carve(sizeof(struct vrdma_ring) + RQ_ENTRIES * 32));
	call(g, VRDMA_FN_CREATE_QP, &qi, sizeof(qi), &qo, sizeof(qo));
	t->qp = le32toh(qo.handle);
	t->sq = (struct vrdma_ring *)(base + le64toh(qi.sq_offset));
	t->sq_prod = t->cq_cons = 0;
	t->sq_entries = t->cq_entries = n;
}

/* The device side of the busy QP: RESET -> INIT -> RTR -> RTS, so that sends complete. */
static void to_rts(struct vrdma_guest *g, struct tqp *t)
{
	static const enum ibv_qp_state st[] = { IBV_QPS_INIT, IBV_QPS_RTR, IBV_QPS_RTS };
	int err;
	struct vrdma_qp *qp = vrdma_handle_get(g, t->qp, VRDMA_OBJ_QP, &err);

	for (int k = 0; k < 3; k++) {
		struct ibv_qp_attr a = { .qp_state = st[k] };

		if (!qp || ibv_modify_qp(qp->qp, &a, IBV_QP_STATE))
			fail("modify the busy QP");
	}
}

/* As the guest library posts: slots, then prod (release), then a kick if the ring asks:
 * on the doorbell eventfd db, or (-1: no relay thread) as the relay thread would read it. */
static void post(struct vrdma_guest *g, int db, struct tqp *t, uint32_t n, uint64_t first)
{
	for (uint32_t k = 0; k < n; k++) {
		struct vrdma_swqe *w = (struct vrdma_swqe *)((uint8_t *)(t->sq + 1) +
			(size_t)((t->sq_prod + k) & (t->sq_entries - 1)) * SQ_STRIDE);

		memset(w, 0, sizeof(*w));
		w->wr_id = htole64(first + k);
		w->opcode = IBV_WR_SEND;
		w->send_flags = htole32(IBV_SEND_SIGNALED);
	}
	t->sq_prod += n;
	__atomic_store_n(&t->sq->prod, htole32(t->sq_prod), __ATOMIC_SEQ_CST);
	if (__atomic_load_n(&t->sq->flags, __ATOMIC_SEQ_CST) & htole32(VRDMA_RING_NEED_WAKEUP)) {
		uint64_t one = 1;

		if (db < 0)
			vrdma_relay_kick(g);
		else if (write(db, &one, sizeof(one)) != sizeof(one))
			fail("doorbell");
	}
}

/* What the relay thread does after reading its epoll: the real CQs' events. */
static int pass(struct vrdma_guest *g)
{
	int w;

	vrdma_relay_cq_events(g);
	w = vrdma_relay_guest(g);
	if (w < 0)
		fail("a pass found the guest busy");
	return w;
}

/* Poll the busy CQ ring: every completion is one of the busy QP's sends, in order. */
static uint32_t reap(struct tqp *t, uint64_t *next)
{
	uint32_t prod = le32toh(__atomic_load_n(&t->cqr->prod, __ATOMIC_ACQUIRE)), n = 0;

	for (; t->cq_cons != prod; t->cq_cons++, n++) {
		const struct vrdma_cqe *c = (const struct vrdma_cqe *)((uint8_t *)(t->cqr + 1) +
			(size_t)(t->cq_cons & (t->cq_entries - 1)) * 64);

		if (le32toh(c->qp_handle) != t->qp || le64toh(c->wr_id) != (*next)++ ||
		    c->status || !c->is_send)
			fail("a completion with the wrong QP handle, wr_id or status");
	}
	__atomic_store_n(&t->cqr->cons, htole32(t->cq_cons), __ATOMIC_RELEASE);
	return n;
}

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

struct figures {
	double idle_ns, round_ns;	/* per idle pass, per round of ROUND sends */
	double wake_ns;			/* per round on the busy QP once it was parked */
	uint64_t idle_visits, round_visits;	/* queues looked at, per idle pass and round */
};

/* A guest with one busy QP in RTS and nidle idle QPs. */
static struct vrdma_guest *guest(uint32_t nidle, struct tqp *busy, struct tqp *idle)
{
	static struct ibv_device dev = { .name = "fake0", .node_type = IBV_NODE_CA,
					 .transport_type = IBV_TRANSPORT_IB };
	struct vrdma_policy pol = { .port = 1, .max_objects = 4096, .max_pinned_bytes = 1 << 20,
				    .qp_types = VRDMA_WL_QP_TYPES, .access = VRDMA_WL_ACCESS };
	struct fk_config fc = { .port = 1, .qp_types = VRDMA_WL_QP_TYPES, .access = VRDMA_WL_ACCESS };
	struct vrdma_hello_in hi = { .abi_version = htole32(VRDMA_ABI_VERSION),
				     .doorbell = htole32(1) };
	struct vrdma_hello_out ho;
	struct vrdma_handle pd;
	struct vrdma_guest *g;

	fk_setup(&fc);
	used = 0;
	memset(base, 0, REGION);
	if (vrdma_guest_open(&g, &dev, &pol, &env, NULL))
		fail("guest open");
	call(g, VRDMA_FN_HELLO, &hi, sizeof(hi), &ho, sizeof(ho));
	call(g, VRDMA_FN_ALLOC_PD, NULL, 0, &pd, sizeof(pd));
	make_qp(g, le32toh(pd.handle), busy, SQ_ENTRIES);
	for (uint32_t i = 0; i < nidle; i++)
		make_qp(g, le32toh(pd.handle), &idle[i], 4);
	to_rts(g, busy);
	return g;
}

/* n idle passes (a function of its own, for callgrind's inclusive counts). */
static __attribute__((noinline)) void run_idle(struct vrdma_guest *g, int n)
{
	for (int k = 0; k < n; k++)
		if (pass(g))
			fail("work in an idle pass");
}

/* One round on the busy QP: post, kick if asked, pass until all completions are in. */
static __attribute__((noinline)) void run_round(struct vrdma_guest *g, struct tqp *busy,
						uint64_t wr, uint64_t *next)
{
	uint32_t got = 0;

	post(g, -1, busy, ROUND, wr);
	for (int k = 0; got < ROUND; k++) {
		if (k > 100)
			fail("the round's completions did not come within 100 passes");
		pass(g);
		got += reap(busy, next);
	}
}

/* A round on the parked busy QP (a function of its own for callgrind). */
static __attribute__((noinline)) void run_wake(struct vrdma_guest *g, struct tqp *busy,
					       uint64_t wr, uint64_t *next)
{
	run_round(g, busy, wr, next);
}

/* fixed: that many rounds and ten times as many idle passes, not 0.2 s of each. */
static void scenario(uint32_t nidle, uint32_t fixed, struct figures *f)
{
	struct tqp busy, *idle = calloc(nidle, sizeof(*idle));
	uint64_t next = 0, wr = 0, v0;
	uint32_t rounds = 0, idle_passes = 0;
	struct vrdma_guest *g;
	double t0;

	if (!idle)
		fail("calloc");
	g = guest(nidle, &busy, idle);
	/* As vrdma_relay_add: served by a relay thread that reads events, with a doorbell. */
	g->in_relay = true;
	g->doorbell = eventfd(0, EFD_CLOEXEC);
	g->park_ns = 0;		/* park what is idle at once: the worst case for parking */

	/* Idle: the first passes park what is idle, then a pass looks at nothing. */
	for (int k = 0; k < 4; k++)
		pass(g);
	v0 = g->n_visits;
	t0 = now_s();
	do {
		run_idle(g, 1000);
		idle_passes += 1000;
	} while (fixed ? idle_passes < fixed * 10 : now_s() - t0 < 0.2);
	f->idle_ns = (now_s() - t0) * 1e9 / idle_passes;
	f->idle_visits = (g->n_visits - v0) / idle_passes;

	/* Rounds on the busy QP. */
	v0 = g->n_visits;
	t0 = now_s();
	do {
		run_round(g, &busy, wr, &next);
		wr += ROUND;
		rounds++;
	} while (fixed ? rounds < fixed : now_s() - t0 < 0.2);
	f->round_ns = (now_s() - t0) * 1e9 / rounds;
	f->round_visits = (g->n_visits - v0) / rounds;

	/* Rounds on the busy QP after it was parked: the kick makes the pass look at every
	 * parked ring of the guest once (the doorbell does not say which). */
	{
		double spent = 0;

		for (uint32_t k = 0; k < 200; k++) {
			run_idle(g, 2);	/* the busy QP's queues park */
			t0 = now_s();
			run_wake(g, &busy, wr, &next);
			spent += now_s() - t0;
			wr += ROUND;
		}
		f->wake_ns = spent * 1e9 / 200;
	}

	/* A flood: one pass moves no more than the guest's budget of WQEs. */
	{
		int w1;

		g->park_ns = UINT64_MAX;
		post(g, -1, &busy, SQ_ENTRIES - 1, wr);
		wr += SQ_ENTRIES - 1;
		vrdma_relay_cq_events(g);
		w1 = vrdma_relay_guest(g);
		if (w1 > 2 * VRDMA_RELAY_WEIGHT)
			fail("one pass moved more than the guest's budget");
		while (reap(&busy, &next) + (uint32_t)pass(g))
			;
		if (next != wr)
			fail("the flood's completions did not all come");
	}
	close(g->doorbell);
	g->doorbell = -1;
	vrdma_guest_close(g);
	fk_check_closed();
	free(idle);
}

/* The relay thread serves the guest; this thread posts rounds and waits for them, with
 * pauses long enough for the relay to park everything and sleep. */
static void threaded(void)
{
	struct tqp busy, idle[16];
	struct vrdma_relay *r;
	struct vrdma_relay_stats st;
	struct vrdma_guest *g = guest(16, &busy, idle);
	int db = eventfd(0, EFD_CLOEXEC);
	uint64_t next = 0, wr = 0;
	double t0 = now_s();
	uint32_t rounds = 0, drained = 0;

	if (db < 0 || vrdma_relay_start(&r, 50000) || vrdma_relay_add(r, g, db))
		fail("relay start");
	while (now_s() - t0 < 0.5 || rounds < 50) {
		double d = now_s();
		uint32_t got = 0;

		if (rounds % 4 == 0 && rounds) {
			/* After a sleep (the rings parked): a control call that posts the sends
			 * itself (DESTROY_AH's vrdma_relay_drain_sends) right after the guest
			 * published them. The ring must still ask for the next kick. */
			pthread_mutex_lock(&g->lock);
			post(g, db, &busy, ROUND, wr);
			vrdma_relay_drain_sends(g);
			pthread_mutex_unlock(&g->lock);
			drained++;
		} else {
			post(g, db, &busy, ROUND, wr);
		}
		wr += ROUND;
		while (got < ROUND) {
			got += reap(&busy, &next);
			if (now_s() - d > vt_secs(10))
				fail("a round's completions did not come: a lost wake-up");
		}
		if (++rounds % 4 == 0)
			usleep(2000);	/* the relay parks everything and sleeps */
	}
	vrdma_relay_get_stats(r, &st);
	vrdma_relay_remove(r, g);
	vrdma_relay_stop(r);
	printf("relay thread:   %u rounds of %d sends (%u posted by a control call's drain), "
	       "the relay slept %llu times\n", rounds, ROUND, drained,
	       (unsigned long long)st.sleeps);
	if (!st.sleeps)
		fail("the relay never slept: its wake-ups were not exercised");
	close(db);
	vrdma_guest_close(g);
	fk_check_closed();
}

/* relay-sched [NIDLE ROUNDS]: with arguments, only the scenario with NIDLE idle QPs,
 * ROUNDS rounds and 10 * ROUNDS idle passes, for a measurement under callgrind:
 *   valgrind --tool=callgrind relay-sched 1000 200; callgrind_annotate --inclusive=yes
 * (the inclusive counts of run_idle() and run_round(), over 2000 passes and 200 rounds). */
int main(int argc, char **argv)
{
	struct figures one, many;

	mfd = memfd_create("relay-sched", MFD_CLOEXEC);
	if (mfd < 0 || ftruncate(mfd, REGION))
		fail("memfd");
	base = mmap(NULL, REGION, PROT_READ | PROT_WRITE, MAP_SHARED, mfd, 0);
	if (base == MAP_FAILED)
		fail("mmap");
	if (argc > 2) {
		scenario((uint32_t)atoi(argv[1]), (uint32_t)atoi(argv[2]), &one);
		printf("%s idle QPs: idle pass %.0f ns, round %.0f ns, round after parking %.0f ns\n",
		       argv[1], one.idle_ns, one.round_ns, one.wake_ns);
		return 0;
	}
	scenario(1, 0, &one);
	scenario(1000, 0, &many);
	printf("idle pass:      1 idle QP %7.0f ns, %llu queues looked at; "
	       "1000 idle QPs %7.0f ns, %llu\n", one.idle_ns,
	       (unsigned long long)one.idle_visits, many.idle_ns,
	       (unsigned long long)many.idle_visits);
	printf("round of %d:    1 idle QP %7.0f ns, %llu queues looked at; "
	       "1000 idle QPs %7.0f ns, %llu\n", ROUND, one.round_ns,
	       (unsigned long long)one.round_visits, many.round_ns,
	       (unsigned long long)many.round_visits);
	printf("round of %d on the parked QP: 1 idle QP %7.0f ns; 1000 idle QPs %7.0f ns "
	       "(a kick looks at each parked ring once)\n", ROUND, one.wake_ns, many.wake_ns);
	if (one.idle_visits || many.idle_visits)
		fail("an idle pass looked at a queue");
	if (many.round_visits > one.round_visits)
		fail("a round looked at more queues with 1000 idle QPs than with 1");
	threaded();
	printf("PASS\n");
	return 0;
}
