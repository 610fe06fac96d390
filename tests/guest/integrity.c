// SPDX-License-Identifier: MIT
/*
 * guest/integrity: a data-integrity test of a verbs device, run as server and client
 * (tests/device/guest-integrity.sh runs it natively and under vbus-run, on every path).
 * A plain libibverbs program; QP information goes over a TCP socket, as ibv_rc_pingpong's.
 *
 * Many QPs of each type (RC, UC, UD) run in rounds. In each round one side is the sender
 * and the other the target; they swap every round, so each side does both. Every round
 * of every QP has a schedule that both sides compute from the seed (seed, type, QP, round):
 * 1..M operations with random opcodes allowed by the type (RC: SEND, SEND_WITH_IMM,
 * RDMA_WRITE, RDMA_WRITE_WITH_IMM, RDMA_READ, FETCH_AND_ADD, CMP_AND_SWP; UC: the first
 * four; UD: the first two, through an address handle), random sizes (0 bytes, 1..16, up to
 * 256, up to 4 KiB; UD up to the path MTU), unaligned offsets, 1..4 SGEs with gaps on both
 * sides, signaled or not, inline when small enough for the QP's max_inline_data, posted
 * in chains of 1..4 requests, the QPs interleaved.
 *  - Each byte of data is a function of (schedule key, byte index); every buffer slot
 *    around the data holds a guard pattern (function of round and slot offset).
 *  - The target pre-posts the receives the schedule needs and fills its slots (guards, the
 *    RDMA READ sources, the atomic words), says "ready" over TCP; the sender posts, waits
 *    for its signaled completions, checks READ data and atomic results against the schedule
 *    (atomics against a model of the remote words; several atomics hit one word), checks
 *    its sources were not changed (inline sources are overwritten right after posting: the
 *    target must still get the original bytes), says "done"; the target then takes every
 *    receive completion (status, order, opcode, immediate, byte_len, source QP for UD) and
 *    compares every slot of its receive, WRITE-target and atomic regions, byte for byte,
 *    with what the schedule says: data where data was sent, guards everywhere else.
 *  - UC and UD are unreliable in principle. Here the target posts all receives before the
 *    sender starts, and the last operation of a UC round always consumes a receive, so the
 *    test asserts that every message arrives (a missing one is counted as lost, and is a
 *    failure), in order and byte-exact. On soft-RoCE in one VM nothing is dropped.
 *  - -w USEC pauses between posting the receives and "ready", for devices whose receives
 *    reach the hardware after ibv_post_recv returns (vbus: when the relay drains the
 *    ring); -L posts the RC receives only after "ready", so that SENDs meet RNR NAKs.
 *  - Atomic words are modelled in host byte order (as rxe treats them).
 * Bounded: rounds stop after -i rounds or -T seconds (the sender of a round decides);
 * every wait has a limit. Exit 0 only if both sides saw no error.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <malloc.h>
#include <netdb.h>
#include <poll.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <infiniband/verbs.h>
#include "../lib/vt-time.h"

#define MAXQ	64		/* QPs per type */
#define MAXOPS	16		/* operations per QP per round */
#define MAXSGE	4
#define MAXLEN	4096
#define SLOT	4352		/* one operation's buffer: offset < 64, gaps, slack, GRH */
#define GRH	40
#define AT_WORDS 4		/* atomic target words per QP (16-byte stride, 8 bytes guard) */
#define AT_SIZE	(AT_WORDS * 16)
#define AR_SIZE	(MAXOPS * 16)	/* atomic results: 8 bytes each, 8 bytes guard */
#define QKEY	0x11111111u
#define MAGIC	0x696e7467u	/* "intg" */
/* Longest wait for a completion or the peer: 10 s times VBUS_TIME_SCALE (vt-time.h). */
#define WAIT_S	((int)vt_secs(10))

/* Per QP, local region: sources, receive slots, READ destinations, atomic results. */
#define L_SRC	0
#define L_RECV	(MAXOPS * SLOT)
#define L_RDST	(2 * MAXOPS * SLOT)
#define L_ARES	(3 * MAXOPS * SLOT)
#define L_SIZE	(L_ARES + AR_SIZE)
/* Per QP, remote region: WRITE targets and READ sources, atomic words. */
#define R_TGT	0
#define R_ATGT	(MAXOPS * SLOT)
#define R_SIZE	(R_ATGT + AT_SIZE)

enum { T_RC, T_UC, T_UD, NTYPES };
static const char *const tname[NTYPES] = { "rc", "uc", "ud" };
enum { OP_SEND, OP_SEND_IMM, OP_WRITE, OP_WRITE_IMM, OP_READ, OP_FADD, OP_CSWP, NOPS };
static const char *const opname[NOPS] = { "send", "send_imm", "write", "write_imm", "read",
					   "fetch_add", "cmp_swap" };
static const int nallowed[NTYPES] = { 7, 4, 2 };

struct opd {			/* one operation of a schedule */
	uint8_t op, nsge, rsge, sig, inl_coin, chain, aw, gap, rgap;
	uint32_t len, so, to, ro, rcap, imm;
	uint32_t sz[MAXSGE], rsz[MAXSGE];
	uint64_t key, add, swp, ret;
};

struct sched {
	int nops;
	struct opd o[MAXOPS];
	uint64_t ainit[AT_WORDS], afinal[AT_WORDS];
};

struct stats {
	uint64_t ops[NOPS], bytes, zero, inl, msge, unsig, chains;
	uint64_t recvs, wregions, rregions, awords, lost, errors;
};

struct cfg {			/* client to server */
	uint32_t magic, n, types, maxops, iters, secs, late, wait_us, ack_timeout, reserved;
	uint64_t seed;
};

struct info {			/* both ways */
	uint32_t magic, lid, mtu, rkey;
	uint8_t gid[16];
	uint64_t rbase;
	uint32_t qpn[NTYPES][MAXQ], psn[NTYPES][MAXQ];
};

struct msg {			/* per round, over TCP */
	uint32_t kind, round, more, errors;
};
enum { M_READY = 1, M_DONE, M_FINAL };

static struct cfg cfg = { .magic = MAGIC, .n = 4, .types = 7, .maxops = MAXOPS, .iters = 400,
			  .secs = 8, .ack_timeout = 14 };
static int verbose, sock = -1, gidx = -1, ib_port = 1;
static unsigned accept_wait_s = 60;	/* the server's wait for its client (-W), scaled */
static bool is_client, injected;
static const char *inject;
static struct ibv_context *ctx;
static struct ibv_pd *pd;
static struct ibv_cq *scq, *rcq;
static struct ibv_mr *lmr, *rmr;
static struct ibv_ah *ah;
static uint8_t *lbuf, *rbuf;
static struct ibv_qp *qps[NTYPES][MAXQ];
static uint32_t max_inline[NTYPES][MAXQ];
static struct info me, peer;
static uint32_t ud_max;		/* largest UD message: the path MTU */
static struct stats st[NTYPES];
static uint64_t errors_other;
static uint8_t guard[SLOT];	/* this round's guard pattern */
static struct sched sch[NTYPES][MAXQ];

static void die(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	printf("integrity %s: FATAL: ", is_client ? "client" : "server");
	vprintf(fmt, ap);
	printf("\n");
	va_end(ap);
	exit(1);
}

/* An integrity error: counted for the type; the first 20 are printed. */
static void err(int t, const char *fmt, ...)
{
	static int shown;
	va_list ap;

	if (t >= 0)
		st[t].errors++;
	else
		errors_other++;
	if (shown++ >= 20)
		return;
	va_start(ap, fmt);
	printf("integrity %s: ERROR %s: ", is_client ? "client" : "server", t >= 0 ? tname[t] : "-");
	vprintf(fmt, ap);
	printf("\n");
	va_end(ap);
}

static uint64_t mix64(uint64_t x)
{
	x += 0x9e3779b97f4a7c15ull;
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
	x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
	return x ^ (x >> 31);
}

static uint64_t rnd(uint64_t *s)
{
	*s += 0x9e3779b97f4a7c15ull;
	return mix64(*s);
}

static uint32_t below(uint64_t *s, uint32_t n)
{
	return n ? (uint32_t)(rnd(s) % n) : 0;
}

/* Byte i of the data whose key is key. */
static inline uint8_t dbyte(uint64_t key, uint32_t i)
{
	uint64_t x = key + i * 0x9e3779b97f4a7c15ull;

	x = (x ^ (x >> 31)) * 0xbf58476d1ce4e5b9ull;
	return (uint8_t)(x >> 56);
}

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* Split len bytes into n pieces of at least one byte each (n <= len). */
static void split(uint64_t *s, uint32_t len, int n, uint32_t *sz)
{
	uint32_t extra = len - n;

	for (int k = 0; k < n - 1; k++) {
		uint32_t e = below(s, extra + 1);

		sz[k] = 1 + e;
		extra -= e;
	}
	sz[n - 1] = 1 + extra;
}

static uint32_t pick_len(uint64_t *s, uint32_t max)
{
	switch (below(s, 8)) {
	case 0: return 0;
	case 1: return 1 + below(s, 16);
	case 2: case 3: return below(s, 257);
	default: return below(s, max + 1);
	}
}

/*
 * The schedule of QP (t, q) in round r: the same on both sides. Atomics run through a
 * model of the target's words, in posting order (an RC QP executes them in order).
 */
static void make_sched(int t, int q, uint32_t r, struct sched *sc)
{
	uint64_t s = mix64(cfg.seed ^ mix64(((uint64_t)t << 56) | ((uint64_t)q << 40) | r));
	uint32_t max = t == T_UD ? ud_max : MAXLEN;
	uint64_t val[AT_WORDS];

	sc->nops = 1 + below(&s, cfg.maxops);
	for (int a = 0; a < AT_WORDS; a++)
		val[a] = sc->ainit[a] = rnd(&s);
	for (int j = 0; j < sc->nops; j++) {
		struct opd *o = &sc->o[j];

		memset(o, 0, sizeof(*o));
		o->op = below(&s, nallowed[t]);
		/* A UC round ends with a message that consumes a receive: its arrival says that
		 * the plain WRITEs before it have landed (UC gives no other sign). */
		if (t == T_UC && j == sc->nops - 1 && o->op == OP_WRITE)
			o->op = OP_WRITE_IMM;
		o->key = rnd(&s);
		o->imm = (uint32_t)rnd(&s);
		o->sig = j == sc->nops - 1 || below(&s, 2);
		o->inl_coin = below(&s, 2);
		o->chain = 1 + below(&s, 4);
		o->so = below(&s, 64);
		o->to = below(&s, 64);
		o->ro = below(&s, 64);
		o->gap = below(&s, 17);
		o->rgap = below(&s, 17);
		if (o->op == OP_FADD || o->op == OP_CSWP) {
			o->len = 8;
			o->nsge = 1;
			o->sz[0] = 8;
			o->aw = below(&s, AT_WORDS);
			o->ret = val[o->aw];
			if (o->op == OP_FADD) {
				o->add = rnd(&s);
				val[o->aw] += o->add;
			} else {
				o->add = below(&s, 2) ? val[o->aw] : rnd(&s);	/* compare */
				o->swp = rnd(&s);
				if (o->add == val[o->aw])
					val[o->aw] = o->swp;
			}
			continue;
		}
		o->len = pick_len(&s, max);
		if (o->len == 0) {
			o->nsge = below(&s, 2);	/* no SGE, or one of 0 bytes */
			o->sz[0] = 0;
		} else {
			o->nsge = 1 + below(&s, MAXSGE);
			if (o->nsge > o->len)
				o->nsge = o->len;
			split(&s, o->len, o->nsge, o->sz);
		}
		/* Receive: room for the GRH (UD) and the data, plus up to 64 bytes more. */
		o->rcap = (t == T_UD ? GRH : 0) + o->len + below(&s, 65);
		if (o->rcap == 0) {
			o->rsge = below(&s, 2);
			o->rsz[0] = 0;
		} else {
			o->rsge = 1 + below(&s, MAXSGE);
			if (o->rsge > o->rcap)
				o->rsge = o->rcap;
			split(&s, o->rcap, o->rsge, o->rsz);
		}
	}
	memcpy(sc->afinal, val, sizeof(val));
}

static bool consumes_recv(int op)
{
	return op == OP_SEND || op == OP_SEND_IMM || op == OP_WRITE_IMM;
}

static bool has_imm(int op)
{
	return op == OP_SEND_IMM || op == OP_WRITE_IMM;
}

static uint8_t *lreg(int t, int q)
{
	return lbuf + ((size_t)t * cfg.n + (size_t)q) * L_SIZE;
}

static uint8_t *rreg(int t, int q)
{
	return rbuf + ((size_t)t * cfg.n + (size_t)q) * R_SIZE;
}

static uint64_t peer_rreg(int t, int q)
{
	return peer.rbase + ((uint64_t)t * cfg.n + (uint64_t)q) * R_SIZE;
}

/*
 * Lay logical bytes [from, from + cnt) of a scatter/gather list (n pieces of sz[] bytes,
 * gap bytes apart, the first at off in img) as data(key, logical - from). Bytes before
 * `from` (a UD receive's GRH) are copied from act: their content is not judged.
 */
static void lay(uint8_t *img, const uint8_t *act, uint32_t off, uint32_t gap, int n,
		const uint32_t *sz, uint32_t from, uint32_t cnt, uint64_t key, uint8_t flip)
{
	uint32_t l = 0, p = off;

	for (int k = 0; k < n; k++) {
		for (uint32_t b = 0; b < sz[k]; b++, l++) {
			if (l < from)
				img[p + b] = act[p + b];
			else if (l < from + cnt)
				img[p + b] = dbyte(key, l - from) ^ flip;
		}
		p += sz[k] + gap;
	}
}

/* Compare n bytes with the expected image; say where they differ. */
static void cmp(int t, int q, uint32_t r, int j, const char *what, const uint8_t *act,
		const uint8_t *exp, size_t n)
{
	size_t first = 0, bad = 0;

	if (!memcmp(act, exp, n))
		return;
	for (size_t i = 0; i < n; i++)
		if (act[i] != exp[i] && !bad++)
			first = i;
	err(t, "qp %d round %u op %d (%s) %s: %zu bytes differ, first at offset %zu (0x%02x, want 0x%02x)",
	    q, r, j, j >= 0 ? opname[sch[t][q].o[j].op] : "-", what, bad, first, act[first], exp[first]);
}

static void make_guard(uint32_t r)
{
	for (uint32_t i = 0; i < SLOT; i++)
		guard[i] = (uint8_t)(0xa5 ^ i ^ ((i >> 8) * 7) ^ (r * 29));
}

static void put_at(uint8_t *p, uint64_t v)
{
	memcpy(p, &v, 8);
}

/* ---- TCP ---- */

static void xfer(bool out, void *buf, size_t n)
{
	uint8_t *p = buf;

	while (n) {
		ssize_t k = out ? write(sock, p, n) : read(sock, p, n);

		if (k <= 0)
			die("the peer's socket: %s", k ? strerror(errno) : "closed");
		p += k;
		n -= k;
	}
}

static void say(uint32_t kind, uint32_t r, uint32_t more, uint32_t errs)
{
	struct msg m = { kind, r, more, errs };

	xfer(true, &m, sizeof(m));
}

static struct msg hear(uint32_t kind, uint32_t r)
{
	struct msg m;

	xfer(false, &m, sizeof(m));
	if (m.kind != kind || m.round != r)
		die("protocol: got message %u round %u, wanted %u round %u", m.kind, m.round, kind, r);
	return m;
}

static void connect_peer(const char *host, int port)
{
	struct timeval tv = { .tv_sec = 3 * WAIT_S };
	char ps[16];
	int fd = -1;

	snprintf(ps, sizeof(ps), "%d", port);
	if (host) {
		struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM }, *res, *a;
		int rc = getaddrinfo(host, ps, &hints, &res);

		if (rc)
			die("%s: %s", host, gai_strerror(rc));
		for (a = res; a; a = a->ai_next) {
			fd = socket(a->ai_family, a->ai_socktype, a->ai_protocol);
			if (fd >= 0 && !connect(fd, a->ai_addr, a->ai_addrlen))
				break;
			if (fd >= 0)
				close(fd);
			fd = -1;
		}
		freeaddrinfo(res);
		if (fd < 0)
			die("could not connect to %s:%d", host, port);
		sock = fd;
	} else {
		struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons(port) };
		struct pollfd p;
		int one = 1;

		fd = socket(AF_INET, SOCK_STREAM, 0);
		if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) ||
		    bind(fd, (struct sockaddr *)&sa, sizeof(sa)) || listen(fd, 1))
			die("listen on port %d: %s", port, strerror(errno));
		p = (struct pollfd){ .fd = fd, .events = POLLIN };
		if (poll(&p, 1, vt_ms(accept_wait_s * 1000)) != 1)
			die("no client within %.0f s", vt_secs(accept_wait_s));
		sock = accept(fd, NULL, NULL);
		close(fd);
		if (sock < 0)
			die("accept: %s", strerror(errno));
	}
	/* Each round waits for the peer; never forever. */
	setsockopt(sock, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
}

/* ---- set-up ---- */

static void open_dev(const char *name)
{
	struct ibv_device **list = ibv_get_device_list(NULL);
	struct ibv_port_attr pa;
	union ibv_gid gid;

	if (!list || !list[0])
		die("no RDMA device");
	for (int i = 0; list[i]; i++)
		if (!name || !strcmp(ibv_get_device_name(list[i]), name)) {
			ctx = ibv_open_device(list[i]);
			break;
		}
	ibv_free_device_list(list);
	if (!ctx)
		die("cannot open device %s", name ? name : "(first)");
	if (ibv_query_port(ctx, ib_port, &pa))
		die("ibv_query_port");
	if (pa.state != IBV_PORT_ACTIVE)
		die("port %d is not active", ib_port);
	memset(&gid, 0, sizeof(gid));
	if (gidx >= 0 && ibv_query_gid(ctx, ib_port, gidx, &gid))
		die("ibv_query_gid %d", gidx);
	me.magic = MAGIC;
	me.lid = pa.lid;
	me.mtu = pa.active_mtu;
	memcpy(me.gid, gid.raw, 16);
	if (!(pd = ibv_alloc_pd(ctx)))
		die("ibv_alloc_pd");
}

static void make_qps(void)
{
	struct ibv_device_attr da;
	/* Sized for the QPs asked for (both sides have the client's cfg): with room for
	 * MAXQ each, 53 MB were cleared and registered, most of a client's set-up in a VM. */
	size_t lsz = (size_t)NTYPES * cfg.n * L_SIZE, rsz = (size_t)NTYPES * cfg.n * R_SIZE;
	int nq = 0, cqe;

	if (ibv_query_device(ctx, &da))
		die("ibv_query_device");
	lbuf = memalign(4096, lsz);
	rbuf = memalign(4096, rsz);
	if (!lbuf || !rbuf)
		die("no memory");
	memset(lbuf, 0, lsz);
	memset(rbuf, 0, rsz);
	lmr = ibv_reg_mr(pd, lbuf, lsz, IBV_ACCESS_LOCAL_WRITE);
	rmr = ibv_reg_mr(pd, rbuf, rsz, IBV_ACCESS_LOCAL_WRITE | IBV_ACCESS_REMOTE_WRITE |
			 IBV_ACCESS_REMOTE_READ | IBV_ACCESS_REMOTE_ATOMIC);
	if (!lmr || !rmr)
		die("ibv_reg_mr: %s", strerror(errno));
	me.rbase = (uintptr_t)rbuf;
	me.rkey = rmr->rkey;
	for (int t = 0; t < NTYPES; t++)
		if (cfg.types & (1u << t))
			nq += cfg.n;
	cqe = nq * (MAXOPS + 4) + 16;
	if (cqe > da.max_cqe)
		die("%d CQEs needed, the device has %d", cqe, da.max_cqe);
	scq = ibv_create_cq(ctx, cqe, NULL, NULL, 0);
	rcq = ibv_create_cq(ctx, cqe, NULL, NULL, 0);
	if (!scq || !rcq)
		die("ibv_create_cq: %s", strerror(errno));
	srand48(cfg.seed ^ (is_client ? 1 : 2));
	for (int t = 0; t < NTYPES; t++) {
		static const enum ibv_qp_type qt[NTYPES] = { IBV_QPT_RC, IBV_QPT_UC, IBV_QPT_UD };

		if (!(cfg.types & (1u << t)))
			continue;
		for (uint32_t q = 0; q < cfg.n; q++) {
			struct ibv_qp_init_attr ia = { .send_cq = scq, .recv_cq = rcq, .qp_type = qt[t],
				.cap = { .max_send_wr = MAXOPS + 4, .max_recv_wr = MAXOPS + 4,
					 .max_send_sge = MAXSGE, .max_recv_sge = MAXSGE,
					 .max_inline_data = 128 } };
			struct ibv_qp_attr a = { .qp_state = IBV_QPS_INIT, .port_num = ib_port };
			int mask = IBV_QP_STATE | IBV_QP_PKEY_INDEX | IBV_QP_PORT;

			qps[t][q] = ibv_create_qp(pd, &ia);
			if (!qps[t][q])
				die("ibv_create_qp %s %u: %s", tname[t], q, strerror(errno));
			max_inline[t][q] = ia.cap.max_inline_data;
			if (t == T_UD) {
				a.qkey = QKEY;
				mask |= IBV_QP_QKEY;
			} else {
				a.qp_access_flags = IBV_ACCESS_REMOTE_WRITE |
					(t == T_RC ? IBV_ACCESS_REMOTE_READ | IBV_ACCESS_REMOTE_ATOMIC : 0);
				mask |= IBV_QP_ACCESS_FLAGS;
			}
			if (ibv_modify_qp(qps[t][q], &a, mask))
				die("%s QP %u to INIT", tname[t], q);
			me.qpn[t][q] = qps[t][q]->qp_num;
			me.psn[t][q] = lrand48() & 0xffffff;
		}
	}
}

static void fill_ah(struct ibv_ah_attr *ah_attr)
{
	memset(ah_attr, 0, sizeof(*ah_attr));
	ah_attr->dlid = peer.lid;
	ah_attr->port_num = ib_port;
	if (gidx >= 0) {
		ah_attr->is_global = 1;
		ah_attr->grh.hop_limit = 1;
		ah_attr->grh.sgid_index = gidx;
		memcpy(ah_attr->grh.dgid.raw, peer.gid, 16);
	}
}

static void connect_qps(void)
{
	struct ibv_device_attr da;
	enum ibv_mtu mtu = me.mtu < peer.mtu ? me.mtu : peer.mtu;
	int rd;

	if (ibv_query_device(ctx, &da))
		die("ibv_query_device");
	rd = da.max_qp_rd_atom < 16 ? da.max_qp_rd_atom : 16;
	ud_max = 128u << mtu;
	if (ud_max > MAXLEN)
		ud_max = MAXLEN;
	for (int t = 0; t < NTYPES; t++) {
		if (!(cfg.types & (1u << t)))
			continue;
		for (uint32_t q = 0; q < cfg.n; q++) {
			struct ibv_qp_attr a = { .qp_state = IBV_QPS_RTR };
			int mask = IBV_QP_STATE;

			if (t != T_UD) {
				a.path_mtu = mtu;
				a.dest_qp_num = peer.qpn[t][q];
				a.rq_psn = peer.psn[t][q];
				fill_ah(&a.ah_attr);
				mask |= IBV_QP_AV | IBV_QP_PATH_MTU | IBV_QP_DEST_QPN | IBV_QP_RQ_PSN;
				if (t == T_RC) {
					a.max_dest_rd_atomic = rd;
					a.min_rnr_timer = 12;
					mask |= IBV_QP_MAX_DEST_RD_ATOMIC | IBV_QP_MIN_RNR_TIMER;
				}
			}
			if (ibv_modify_qp(qps[t][q], &a, mask))
				die("%s QP %u to RTR: %s", tname[t], q, strerror(errno));
			memset(&a, 0, sizeof(a));
			a.qp_state = IBV_QPS_RTS;
			a.sq_psn = me.psn[t][q];
			mask = IBV_QP_STATE | IBV_QP_SQ_PSN;
			if (t == T_RC) {
				a.timeout = (uint8_t)cfg.ack_timeout;
				a.retry_cnt = 7;
				a.rnr_retry = 7;
				a.max_rd_atomic = rd;
				mask |= IBV_QP_TIMEOUT | IBV_QP_RETRY_CNT | IBV_QP_RNR_RETRY |
					IBV_QP_MAX_QP_RD_ATOMIC;
			}
			if (ibv_modify_qp(qps[t][q], &a, mask))
				die("%s QP %u to RTS: %s", tname[t], q, strerror(errno));
		}
	}
	if (cfg.types & (1u << T_UD)) {
		struct ibv_ah_attr aa;

		fill_ah(&aa);
		if (!(ah = ibv_create_ah(pd, &aa)))
			die("ibv_create_ah: %s", strerror(errno));
	}
}

/* ---- a round ---- */

static uint64_t wrid(int t, int q, uint32_t r, int j)
{
	return (uint64_t)t << 60 | (uint64_t)q << 48 | (uint64_t)(r & 0xffffffff) << 16 | j;
}

#define FOR_QPS(t, q) \
	for (int t = 0; t < NTYPES; t++) \
		if (cfg.types & (1u << t)) \
			for (int q = 0; q < (int)cfg.n; q++)

static void sges(struct ibv_sge *sg, uint8_t *base, uint32_t off, uint32_t gap, int n,
		 const uint32_t *sz, uint32_t lkey)
{
	for (int k = 0; k < n; k++) {
		sg[k] = (struct ibv_sge){ .addr = (uintptr_t)base + off, .length = sz[k], .lkey = lkey };
		off += sz[k] + gap;
	}
}

/* Post the receives the schedule of (t, q) needs, in one chain. */
static void post_recvs(int t, int q, uint32_t r)
{
	struct sched *sc = &sch[t][q];
	uint8_t *l = lreg(t, q);
	struct ibv_recv_wr wr[MAXOPS], *bad;
	struct ibv_sge sg[MAXOPS][MAXSGE];
	int n = 0;

	for (int j = 0; j < sc->nops; j++) {
		struct opd *o = &sc->o[j];

		if (!consumes_recv(o->op))
			continue;
		sges(sg[n], l + L_RECV + j * SLOT, o->ro, o->rgap, o->rsge, o->rsz, lmr->lkey);
		wr[n] = (struct ibv_recv_wr){ .wr_id = wrid(t, q, r, j), .sg_list = sg[n],
					      .num_sge = o->rsge };
		if (n)
			wr[n - 1].next = &wr[n];
		n++;
	}
	if (n && ibv_post_recv(qps[t][q], wr, &bad))
		die("ibv_post_recv %s qp %d: %s", tname[t], q, strerror(errno));
}

/*
 * The target: fill the slots, post the receives. With -L (late receives) the RC ones are
 * posted only after "ready" and a pause, so that SENDs meet RNR NAKs and are retried
 * (UC and UD would drop them, as they may).
 */
static void target_prepare(uint32_t r)
{
	FOR_QPS(t, q) {
		struct sched *sc = &sch[t][q];
		uint8_t *l = lreg(t, q), *rr = rreg(t, q);

		for (int j = 0; j < MAXOPS; j++) {
			memcpy(l + L_RECV + j * SLOT, guard, SLOT);
			memcpy(rr + R_TGT + j * SLOT, guard, SLOT);
		}
		memcpy(rr + R_ATGT, guard, AT_SIZE);
		for (int a = 0; a < AT_WORDS; a++)
			put_at(rr + R_ATGT + a * 16, sc->ainit[a]);
		for (int j = 0; j < sc->nops; j++) {
			struct opd *o = &sc->o[j];

			if (o->op == OP_READ)	/* the whole slot is the READ's source */
				for (uint32_t i = 0; i < SLOT; i++)
					rr[R_TGT + j * SLOT + i] = dbyte(o->key, i);
		}
		if (!(cfg.late && t == T_RC))
			post_recvs(t, q, r);
	}
}

static void target_post_late(uint32_t r)
{
	if (!cfg.late || !(cfg.types & (1u << T_RC)))
		return;
	usleep(20000);	/* longer than the sender takes to post */
	for (int q = 0; q < (int)cfg.n; q++)
		post_recvs(T_RC, q, r);
}

/* Take completions from cq until want[] of each QP are in; check order and status. */
static bool drain(struct ibv_cq *cq, uint32_t r, bool recv,
		  int want[NTYPES][MAXQ][MAXOPS], int nwant[NTYPES][MAXQ])
{
	static int got[NTYPES][MAXQ];
	double end = now() + WAIT_S;
	int left = 0;
	bool ok = true;

	FOR_QPS(t, q) {
		left += nwant[t][q];
		got[t][q] = 0;
	}
	while (left > 0) {
		struct ibv_wc wc[16];
		int n = ibv_poll_cq(cq, 16, wc);

		if (n < 0)
			die("ibv_poll_cq: %d", n);
		if (n == 0 && now() > end)
			break;
		for (int i = 0; i < n; i++) {
			int t = wc[i].wr_id >> 60, q = (wc[i].wr_id >> 48) & 0xfff, j = wc[i].wr_id & 0xffff;
			struct opd *o;

			if (t >= NTYPES || q >= (int)cfg.n || (uint32_t)(wc[i].wr_id >> 16) != r ||
			    got[t][q] >= nwant[t][q]) {
				err(-1, "unexpected completion wr_id 0x%llx status %s in round %u",
				    (unsigned long long)wc[i].wr_id, ibv_wc_status_str(wc[i].status), r);
				ok = false;
				continue;
			}
			left--;
			if (wc[i].status != IBV_WC_SUCCESS) {
				err(t, "qp %d round %u op %d: %s completion status %s (vendor 0x%x)", q, r, j,
				    recv ? "receive" : "send", ibv_wc_status_str(wc[i].status), wc[i].vendor_err);
				ok = false;
				got[t][q]++;
				continue;
			}
			if (j != want[t][q][got[t][q]]) {
				err(t, "qp %d round %u: completion of op %d, wanted op %d (out of order)", q, r,
				    j, want[t][q][got[t][q]]);
				ok = false;
			}
			got[t][q]++;
			o = &sch[t][q].o[j];
			if (wc[i].qp_num != qps[t][q]->qp_num)
				err(t, "qp %d round %u op %d: completion names QP %u, not %u", q, r, j,
				    wc[i].qp_num, qps[t][q]->qp_num);
			if (recv) {
				uint32_t blen = o->len + (t == T_UD ? GRH : 0);
				enum ibv_wc_opcode wop = o->op == OP_WRITE_IMM ? IBV_WC_RECV_RDMA_WITH_IMM : IBV_WC_RECV;

				if (wc[i].opcode != wop)
					err(t, "qp %d round %u op %d: receive opcode %d, want %d", q, r, j, wc[i].opcode, wop);
				if (wc[i].byte_len != blen)
					err(t, "qp %d round %u op %d (%s): byte_len %u, want %u", q, r, j,
					    opname[o->op], wc[i].byte_len, blen);
				if (!!(wc[i].wc_flags & IBV_WC_WITH_IMM) != has_imm(o->op) ||
				    (has_imm(o->op) && ntohl(wc[i].imm_data) != o->imm))
					err(t, "qp %d round %u op %d (%s): immediate flag %d data 0x%x, want 0x%x", q, r,
					    j, opname[o->op], !!(wc[i].wc_flags & IBV_WC_WITH_IMM),
					    ntohl(wc[i].imm_data), o->imm);
				if (t == T_UD && (!(wc[i].wc_flags & IBV_WC_GRH) || wc[i].src_qp != peer.qpn[t][q]))
					err(t, "qp %d round %u op %d: UD source QP %u (want %u), GRH flag %d", q, r, j,
					    wc[i].src_qp, peer.qpn[t][q], !!(wc[i].wc_flags & IBV_WC_GRH));
				st[t].recvs++;
			} else {
				static const enum ibv_wc_opcode sop[NOPS] = { IBV_WC_SEND, IBV_WC_SEND,
					IBV_WC_RDMA_WRITE, IBV_WC_RDMA_WRITE, IBV_WC_RDMA_READ,
					IBV_WC_FETCH_ADD, IBV_WC_COMP_SWAP };

				if (wc[i].opcode != sop[o->op])
					err(t, "qp %d round %u op %d (%s): send opcode %d, want %d", q, r, j,
					    opname[o->op], wc[i].opcode, sop[o->op]);
			}
		}
	}
	if (left > 0) {
		FOR_QPS(t, q)
			if (got[t][q] < nwant[t][q]) {
				err(t, "qp %d round %u: %d of %d %s completions within %d s", q, r, got[t][q],
				    nwant[t][q], recv ? "receive" : "send", WAIT_S);
				if (recv)
					st[t].lost += nwant[t][q] - got[t][q];
			}
		ok = false;
	}
	return ok;
}

/* The target, after the sender's "done": receives, then every slot byte for byte. */
static bool target_check(uint32_t r)
{
	static int want[NTYPES][MAXQ][MAXOPS], nwant[NTYPES][MAXQ];
	uint8_t img[SLOT];
	bool ok;

	FOR_QPS(t, q) {
		nwant[t][q] = 0;
		for (int j = 0; j < sch[t][q].nops; j++)
			if (consumes_recv(sch[t][q].o[j].op))
				want[t][q][nwant[t][q]++] = j;
	}
	ok = drain(rcq, r, true, want, nwant);
	FOR_QPS(t, q) {
		struct sched *sc = &sch[t][q];
		uint8_t *l = lreg(t, q), *rr = rreg(t, q);

		for (int j = 0; j < MAXOPS; j++) {
			struct opd *o = j < sc->nops ? &sc->o[j] : NULL;
			uint8_t *rs = l + L_RECV + j * SLOT, *ts = rr + R_TGT + j * SLOT;

			memcpy(img, guard, SLOT);
			if (o && (o->op == OP_SEND || o->op == OP_SEND_IMM)) {
				uint32_t skip = t == T_UD ? GRH : 0;

				lay(img, rs, o->ro, o->rgap, o->rsge, o->rsz, skip, o->len, o->key, 0);
			}
			cmp(t, q, r, o ? j : -1, "receive slot", rs, img, SLOT);
			memcpy(img, guard, SLOT);
			if (o && (o->op == OP_WRITE || o->op == OP_WRITE_IMM)) {
				lay(img, NULL, o->to, 0, 1, &o->len, 0, o->len, o->key, 0);
				st[t].wregions++;
			}
			if (o && o->op == OP_READ) {	/* a READ must leave its source alone */
				for (uint32_t i = 0; i < SLOT; i++)
					img[i] = dbyte(o->key, i);
				st[t].rregions++;
			}
			cmp(t, q, r, o ? j : -1, "target slot", ts, img, SLOT);
		}
		memcpy(img, guard, AT_SIZE);
		for (int a = 0; a < AT_WORDS; a++)
			put_at(img + a * 16, sc->afinal[a]);
		if (t == T_RC)
			st[t].awords += AT_WORDS;
		cmp(t, q, r, -1, "atomic words", rr + R_ATGT, img, AT_SIZE);
	}
	return ok;
}

static void sender_prepare(uint32_t r)
{
	FOR_QPS(t, q) {
		struct sched *sc = &sch[t][q];
		uint8_t *l = lreg(t, q);

		for (int j = 0; j < MAXOPS; j++) {
			memcpy(l + L_SRC + j * SLOT, guard, SLOT);
			memcpy(l + L_RDST + j * SLOT, guard, SLOT);
		}
		memcpy(l + L_ARES, guard, AR_SIZE);
		for (int j = 0; j < sc->nops; j++) {
			struct opd *o = &sc->o[j];

			if (o->op <= OP_WRITE_IMM)
				lay(l + L_SRC + j * SLOT, NULL, o->so, o->gap, o->nsge, o->sz, 0, o->len,
				    o->key, 0);
		}
	}
}

static bool is_inline(int t, int q, const struct opd *o)
{
	return o->op <= OP_WRITE_IMM && o->inl_coin && o->len <= max_inline[t][q] && o->len;
}

/*
 * -X KIND: the client spoils the first request that fits KIND, in whichever round, so
 * that a run shows the checks catch it (the run must then fail): "data" sends from one byte
 * further on, "length" sends one byte less, "write" and "read" (of 4 bytes or more, so that
 * the shifted bytes cannot match by chance) hit the remote slot one byte further on,
 * "atomic" adds one more, "imm" flips a bit of the immediate.
 */
static void inject_fault(int t, int q, uint32_t r, int j, const struct opd *o,
			 struct ibv_send_wr *wr)
{
	bool send = o->op == OP_SEND || o->op == OP_SEND_IMM;

	if (!strcmp(inject, "data") && send && o->len >= 2)
		wr->sg_list[0].addr++;
	else if (!strcmp(inject, "length") && send && o->len >= 2 && o->sz[o->nsge - 1] >= 1)
		wr->sg_list[o->nsge - 1].length--;
	else if (!strcmp(inject, "write") && o->op == OP_WRITE && o->len >= 4)
		wr->wr.rdma.remote_addr++;
	else if (!strcmp(inject, "read") && o->op == OP_READ && o->len >= 4)
		wr->wr.rdma.remote_addr++;
	else if (!strcmp(inject, "atomic") && o->op == OP_FADD)
		wr->wr.atomic.compare_add++;
	else if (!strcmp(inject, "imm") && has_imm(o->op))
		wr->imm_data ^= htonl(1);
	else
		return;
	injected = true;
	printf("integrity client: injected a fault (%s) into %s qp %d round %u op %d (%s)\n",
	       inject, tname[t], q, r, j, opname[o->op]);
}

/* Build the send request of op j. */
static void build(int t, int q, uint32_t r, int j, struct ibv_send_wr *wr, struct ibv_sge *sg)
{
	static const enum ibv_wr_opcode wop[NOPS] = { IBV_WR_SEND, IBV_WR_SEND_WITH_IMM,
		IBV_WR_RDMA_WRITE, IBV_WR_RDMA_WRITE_WITH_IMM, IBV_WR_RDMA_READ,
		IBV_WR_ATOMIC_FETCH_AND_ADD, IBV_WR_ATOMIC_CMP_AND_SWP };
	struct opd *o = &sch[t][q].o[j];
	uint8_t *l = lreg(t, q);
	uint64_t remote = peer_rreg(t, q);

	memset(wr, 0, sizeof(*wr));
	wr->wr_id = wrid(t, q, r, j);
	wr->opcode = wop[o->op];
	wr->sg_list = sg;
	wr->num_sge = o->nsge;
	wr->send_flags = o->sig ? IBV_SEND_SIGNALED : 0;
	if (is_inline(t, q, o))
		wr->send_flags |= IBV_SEND_INLINE;
	if (has_imm(o->op))
		wr->imm_data = htonl(o->imm);
	switch (o->op) {
	case OP_SEND: case OP_SEND_IMM:
	case OP_WRITE: case OP_WRITE_IMM:
		sges(sg, l + L_SRC + j * SLOT, o->so, o->gap, o->nsge, o->sz, lmr->lkey);
		break;
	case OP_READ:
		sges(sg, l + L_RDST + j * SLOT, o->so, o->gap, o->nsge, o->sz, lmr->lkey);
		break;
	default:
		sges(sg, l + L_ARES + j * 16, 0, 0, 1, o->sz, lmr->lkey);
		wr->wr.atomic.remote_addr = remote + R_ATGT + o->aw * 16;
		wr->wr.atomic.rkey = peer.rkey;
		wr->wr.atomic.compare_add = o->add;
		wr->wr.atomic.swap = o->swp;
		/* A fence only orders; on every other atomic it must change no result. */
		wr->send_flags |= IBV_SEND_FENCE * (j & 1);
		break;
	}
	if (o->op == OP_WRITE || o->op == OP_WRITE_IMM || o->op == OP_READ) {
		wr->wr.rdma.remote_addr = remote + R_TGT + (uint64_t)j * SLOT + o->to;
		wr->wr.rdma.rkey = peer.rkey;
	}
	if (t == T_UD) {
		wr->wr.ud.ah = ah;
		wr->wr.ud.remote_qpn = peer.qpn[t][q];
		wr->wr.ud.remote_qkey = QKEY;
	}
	if (inject && !injected && is_client)
		inject_fault(t, q, r, j, o, wr);
}

/* The sender: post every QP's operations in chains, the QPs interleaved. */
static bool sender_run(uint32_t r)
{
	static int want[NTYPES][MAXQ][MAXOPS], nwant[NTYPES][MAXQ], next[NTYPES][MAXQ];
	struct ibv_send_wr wr[4], *bad;
	struct ibv_sge sg[4][MAXSGE];
	uint8_t img[SLOT];
	bool busy = true, ok;

	FOR_QPS(t, q) {
		next[t][q] = nwant[t][q] = 0;
		for (int j = 0; j < sch[t][q].nops; j++)
			if (sch[t][q].o[j].sig)
				want[t][q][nwant[t][q]++] = j;
	}
	while (busy) {
		busy = false;
		FOR_QPS(t, q) {
			struct sched *sc = &sch[t][q];
			int j0 = next[t][q], n;

			if (j0 >= sc->nops)
				continue;
			busy = true;
			n = sc->o[j0].chain;
			if (j0 + n > sc->nops)
				n = sc->nops - j0;
			for (int k = 0; k < n; k++) {
				build(t, q, r, j0 + k, &wr[k], sg[k]);
				if (k)
					wr[k - 1].next = &wr[k];
			}
			if (ibv_post_send(qps[t][q], wr, &bad))
				die("ibv_post_send %s qp %d round %u op %d: %s", tname[t], q, r,
				    (int)(bad - wr) + j0, strerror(errno));
			st[t].chains++;
			for (int k = 0; k < n; k++) {
				struct opd *o = &sc->o[j0 + k];
				uint8_t *src = lreg(t, q) + L_SRC + (j0 + k) * SLOT;

				st[t].ops[o->op]++;
				st[t].bytes += o->len;
				st[t].zero += !o->len;
				st[t].msge += o->nsge > 1;
				st[t].unsig += !o->sig;
				if (!is_inline(t, q, o))
					continue;
				/* The data was copied at posting: change the source at once. */
				st[t].inl++;
				lay(src, NULL, o->so, o->gap, o->nsge, o->sz, 0, o->len, o->key, 0xff);
			}
			next[t][q] = j0 + n;
		}
	}
	ok = drain(scq, r, false, want, nwant);
	/* Sources unchanged (inline ones as changed), READ data, atomic results, guards. */
	FOR_QPS(t, q) {
		struct sched *sc = &sch[t][q];
		uint8_t *l = lreg(t, q);

		for (int j = 0; j < MAXOPS; j++) {
			struct opd *o = j < sc->nops ? &sc->o[j] : NULL;

			memcpy(img, guard, SLOT);
			if (o && o->op <= OP_WRITE_IMM)
				lay(img, NULL, o->so, o->gap, o->nsge, o->sz, 0, o->len, o->key,
				    is_inline(t, q, o) ? 0xff : 0);
			cmp(t, q, r, o ? j : -1, "source slot", l + L_SRC + j * SLOT, img, SLOT);
			memcpy(img, guard, SLOT);
			if (o && o->op == OP_READ) {
				uint8_t tmp[MAXLEN];

				/* The READ source is data(key, slot offset); it lands at to.. */
				for (uint32_t i = 0; i < o->len; i++)
					tmp[i] = dbyte(o->key, o->to + i);
				{
					uint32_t p = o->so, x = 0;

					for (int k = 0; k < o->nsge; k++) {
						memcpy(img + p, tmp + x, o->sz[k]);
						x += o->sz[k];
						p += o->sz[k] + o->gap;
					}
				}
			}
			cmp(t, q, r, o ? j : -1, "READ destination", l + L_RDST + j * SLOT, img, SLOT);
		}
		memcpy(img, guard, AR_SIZE);
		for (int j = 0; j < sc->nops; j++)
			if (sc->o[j].op == OP_FADD || sc->o[j].op == OP_CSWP)
				put_at(img + j * 16, sc->o[j].ret);
		cmp(t, q, r, -1, "atomic results", l + L_ARES, img, AR_SIZE);
	}
	return ok;
}

static uint64_t total_errors(void)
{
	uint64_t e = errors_other;

	for (int t = 0; t < NTYPES; t++)
		e += st[t].errors;
	return e;
}

/* Round r: the client sends in even rounds, the server in odd ones. Returns "more". */
static bool round_run(uint32_t r, double t0)
{
	bool sender = (r % 2 == 0) == is_client, more, ok;

	make_guard(r);
	FOR_QPS(t, q)
		make_sched(t, q, r, &sch[t][q]);
	if (!sender) {
		target_prepare(r);
		if (cfg.wait_us)
			usleep(cfg.wait_us);
		say(M_READY, r, 0, 0);
		target_post_late(r);
		more = hear(M_DONE, r).more;
		ok = target_check(r);
	} else {
		sender_prepare(r);
		hear(M_READY, r);
		ok = sender_run(r);
		more = ok && r + 1 < cfg.iters && now() - t0 < cfg.secs;
		say(M_DONE, r, more, 0);
	}
	if (verbose)
		printf("round %u: %s, %llu errors so far\n", r, sender ? "sender" : "target",
		       (unsigned long long)total_errors());
	/* A completion that did not come leaves work in flight: stop here. */
	return more && ok;
}

static void destroy_all(void)
{
	int bad = 0;

	FOR_QPS(t, q)
		bad |= ibv_destroy_qp(qps[t][q]);
	if (ah)
		bad |= ibv_destroy_ah(ah);
	bad |= ibv_destroy_cq(scq) | ibv_destroy_cq(rcq);
	bad |= ibv_dereg_mr(lmr) | ibv_dereg_mr(rmr);
	bad |= ibv_dealloc_pd(pd);
	bad |= ibv_close_device(ctx);
	if (bad)
		err(-1, "destroying the verbs objects failed");
}

static void usage(const char *argv0)
{
	printf("Usage: %s [options] [server host]   (without a host: the server)\n"
	       "  -d, --ib-dev=DEV      device (default: the first)\n"
	       "  -P, --ib-port=PORT    port of the device (default 1)\n"
	       "  -g, --gid-idx=N       GID index (needed on RoCE)\n"
	       "  -p, --port=PORT       TCP port (default 18600)\n"
	       "  -n, --qps=N           QPs of each type (default %u, at most %d)\n"
	       "  -t, --types=LIST      QP types, of rc,uc,ud (default all)\n"
	       "  -i, --iters=N         rounds at most (default %u)\n"
	       "  -T, --seconds=S       seconds at most (default %u; the last round finishes)\n"
	       "  -m, --max-ops=N       operations per QP per round, 1..%d (default %d)\n"
	       "  -s, --seed=N          seed (default: from the time; printed)\n"
	       "  -w, --recv-wait=USEC  pause between posting receives and \"ready\" (default 0)\n"
	       "  -L, --late-recv       RC receives posted after \"ready\": RNR NAKs and retries\n"
	       "  -A, --ack-timeout=N   RC local ACK timeout exponent (default 14: 67 ms; 20 under\n"
	       "                        load: soft-RoCE 6.1 can repeat a retried atomic)\n"
	       "  -X, --inject=KIND     spoil one request on purpose (data, length, write, read,\n"
	       "                        atomic, imm): the run must fail (client only)\n"
	       "  -W, --accept-wait=S   the server's wait for its client (default 60 s, scaled)\n"
	       "  -v, --verbose         one line per round\n"
	       "The client's -n, -t, -i, -T, -m, -w, -L, -A and -s hold for both sides.\n",
	       argv0, cfg.n, MAXQ, cfg.iters, cfg.secs, MAXOPS, MAXOPS);
}

int main(int argc, char **argv)
{
	static const struct option lo[] = {
		{ "ib-dev", 1, NULL, 'd' }, { "ib-port", 1, NULL, 'P' }, { "gid-idx", 1, NULL, 'g' },
		{ "port", 1, NULL, 'p' }, { "qps", 1, NULL, 'n' }, { "types", 1, NULL, 't' },
		{ "iters", 1, NULL, 'i' }, { "seconds", 1, NULL, 'T' }, { "max-ops", 1, NULL, 'm' },
		{ "seed", 1, NULL, 's' }, { "inject", 1, NULL, 'X' }, { "late-recv", 0, NULL, 'L' },
		{ "recv-wait", 1, NULL, 'w' }, { "ack-timeout", 1, NULL, 'A' }, { "verbose", 0, NULL, 'v' },
		{ "accept-wait", 1, NULL, 'W' }, { "help", 0, NULL, 'h' }, {}
	};
	const char *dev = NULL;
	char kind[32];
	int port = 18600, c;
	uint32_t r = 0;
	double t0;
	uint64_t mine, theirs;
	struct msg fin;

	cfg.seed = (uint64_t)time(NULL) ^ ((uint64_t)getpid() << 32);
	while ((c = getopt_long(argc, argv, "d:P:g:p:n:t:i:T:m:s:X:Lw:A:W:vh", lo, NULL)) != -1) {
		switch (c) {
		case 'd': dev = optarg; break;
		case 'P': ib_port = atoi(optarg); break;
		case 'g': gidx = atoi(optarg); break;
		case 'p': port = atoi(optarg); break;
		case 'n': cfg.n = strtoul(optarg, NULL, 0); break;
		case 'i': cfg.iters = strtoul(optarg, NULL, 0); break;
		case 'T': cfg.secs = strtoul(optarg, NULL, 0); break;
		case 'm': cfg.maxops = strtoul(optarg, NULL, 0); break;
		case 's': cfg.seed = strtoull(optarg, NULL, 0); break;
		case 'v': verbose = 1; break;
		case 'X': inject = optarg; break;
		case 'L': cfg.late = 1; break;
		case 'w': cfg.wait_us = strtoul(optarg, NULL, 0); break;
		case 'A': cfg.ack_timeout = strtoul(optarg, NULL, 0); break;
		case 'W': accept_wait_s = strtoul(optarg, NULL, 0); break;
		case 't':
			cfg.types = 0;
			for (char *s = strtok(optarg, ","); s; s = strtok(NULL, ",")) {
				int t;

				for (t = 0; t < NTYPES && strcmp(s, tname[t]); t++)
					;
				if (t == NTYPES) {
					fprintf(stderr, "unknown QP type '%s'\n", s);
					return 2;
				}
				cfg.types |= 1u << t;
			}
			break;
		case 'h': usage(argv[0]); return 0;
		default: usage(argv[0]); return 2;
		}
	}
	snprintf(kind, sizeof(kind), ",%s,", inject ? inject : "");
	if (inject && !strstr(",data,length,write,read,atomic,imm,", kind)) {
		fprintf(stderr, "unknown fault '%s'\n", inject);
		return 2;
	}
	if (optind < argc - 1 || !cfg.n || cfg.n > MAXQ || !cfg.maxops || cfg.maxops > MAXOPS ||
	    !cfg.types || !cfg.iters || cfg.ack_timeout > 31) {
		usage(argv[0]);
		return 2;
	}
	is_client = optind == argc - 1;
	setvbuf(stdout, NULL, _IOLBF, 0);
	connect_peer(is_client ? argv[optind] : NULL, port);
	if (is_client) {
		xfer(true, &cfg, sizeof(cfg));
	} else {
		xfer(false, &cfg, sizeof(cfg));
		if (cfg.magic != MAGIC || !cfg.n || cfg.n > MAXQ || !cfg.maxops || cfg.maxops > MAXOPS ||
		    cfg.ack_timeout > 31)
			die("bad configuration from the client");
	}
	/* A last resort; every wait has its own limit. */
	alarm(cfg.secs + 4 * WAIT_S + vt_alarm_secs(60));
	open_dev(dev);
	make_qps();
	xfer(true, &me, sizeof(me));
	xfer(false, &peer, sizeof(peer));
	if (peer.magic != MAGIC)
		die("bad information from the peer");
	connect_qps();
	printf("integrity %s: seed 0x%llx, %u QPs per type, up to %u ops per round, UD up to %u bytes\n",
	       is_client ? "client" : "server", (unsigned long long)cfg.seed, cfg.n, cfg.maxops, ud_max);
	t0 = now();
	while (round_run(r, t0))
		r++;
	mine = total_errors();
	say(M_FINAL, 0, 0, mine > 0xffffffff ? 0xffffffff : (uint32_t)mine);
	fin = hear(M_FINAL, 0);
	theirs = fin.errors;
	destroy_all();
	for (int t = 0; t < NTYPES; t++) {
		struct stats *s = &st[t];
		char mix[256] = "";
		size_t p = 0;

		if (!(cfg.types & (1u << t)))
			continue;
		for (int o = 0; o < nallowed[t]; o++)
			p += snprintf(mix + p, sizeof(mix) - p, "%s%s %llu", o ? " " : "", opname[o],
				      (unsigned long long)s->ops[o]);
		printf("integrity %s: %s: %u QPs, %u rounds, sent %llu ops (%s), %llu bytes, "
		       "0-byte %llu, inline %llu, multi-SGE %llu, unsignaled %llu, chains %llu; "
		       "checked %llu receives, %llu WRITE targets, %llu READ sources, %llu atomic words; "
		       "lost %llu, errors %llu\n",
		       is_client ? "client" : "server", tname[t], cfg.n, r + 1,
		       (unsigned long long)(s->ops[0] + s->ops[1] + s->ops[2] + s->ops[3] + s->ops[4] +
					    s->ops[5] + s->ops[6]), mix,
		       (unsigned long long)s->bytes, (unsigned long long)s->zero,
		       (unsigned long long)s->inl, (unsigned long long)s->msge,
		       (unsigned long long)s->unsig, (unsigned long long)s->chains,
		       (unsigned long long)s->recvs, (unsigned long long)s->wregions,
		       (unsigned long long)s->rregions, (unsigned long long)s->awords,
		       (unsigned long long)s->lost, (unsigned long long)s->errors);
	}
	printf("integrity %s: %s: %u rounds in %.1f s, errors here %llu, at the peer %llu\n",
	       is_client ? "client" : "server", mine || theirs ? "FAIL" : "ok", r + 1, now() - t0,
	       (unsigned long long)mine, (unsigned long long)theirs);
	return mine || theirs ? 1 : 0;
}
