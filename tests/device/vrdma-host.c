// SPDX-License-Identifier: MIT
/*
 * vrdma-host: the host side of the vrdma device (verbs-host/vrdma) on the real soft-RoCE
 * device, driven the way a guest drives it, without the bus in between.
 *
 * This process plays the guest: it maps its memfds at its own ("guest") addresses and
 * writes DEVCALL payloads and ring entries there; the host side sees the same memfds at
 * other addresses (the region table below stands for what DEVSHM gives vbusd). Checked:
 * real values from the queries; two RC QPs connected through their real QPNs; SEND into a
 * posted receive, RDMA WRITE and RDMA READ through the rings and the relay, on an MR made
 * of two memfd pieces at an unaligned iova, every byte compared; and the refusals a
 * hostile guest must get (bad, stale and foreign-type handles, wrong sizes, reserved bits,
 * the whitelist, the GID policy, quotas, a corrupt ring index), with the host still working.
 */
#include <endian.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>
#include <sys/eventfd.h>
#include "../../verbs-host/vrdma/vrdma.h"
#include "../lib/vt-time.h"

#define fail(...) do { printf("FAIL line %d: ", __LINE__); printf(__VA_ARGS__); printf("\n"); exit(1); } while (0)
#define check(c, ...) do { if (!(c)) fail(__VA_ARGS__); } while (0)

enum { R_DATA1 = 1, R_DATA2, R_QUEUES, R_SMALL, NREG };
#define DATA_LEN (32 * 1024)
#define QUEUES_LEN (1024 * 1024)

struct reg { int fd; void *host; void *guest; uint64_t size; };
static struct reg regs[NREG];
static int kicks;

static int env_region(void *priv, uint32_t shm, struct vrdma_region *out)
{
	if (shm == 0 || shm >= NREG)
		return -ENOENT;
	*out = (struct vrdma_region){ .fd = regs[shm].fd, .base = regs[shm].host,
				      .size = regs[shm].size };
	return 0;
}

static int env_kick(void *priv, uint32_t sig)
{
	kicks++;
	return 0;
}

static const struct vrdma_env_ops env = { .region = env_region, .kick = env_kick };

/* A memfd mapped twice: the host's mapping, and the guest's at `at` (or anywhere). */
static void make_region(int id, uint64_t size, void *at)
{
	struct reg *r = &regs[id];

	r->fd = memfd_create("vrdma-host-test", MFD_CLOEXEC);
	check(r->fd >= 0 && !ftruncate(r->fd, (off_t)size), "memfd");
	r->size = size;
	r->host = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, r->fd, 0);
	r->guest = mmap(at, size, PROT_READ | PROT_WRITE, MAP_SHARED | (at ? MAP_FIXED : 0),
			r->fd, 0);
	check(r->host != MAP_FAILED && r->guest != MAP_FAILED, "mmap");
}

static struct vrdma_guest *g;

static int call(uint32_t fn, const void *in, size_t inlen, void *out, size_t outmax)
{
	uint8_t buf[4096];
	size_t outlen;
	int r = vrdma_dispatch(g, fn, in, inlen, out ? out : buf, out ? outmax : sizeof(buf),
			       &outlen);

	return r;
}

static uint32_t alloc_pd(void)
{
	struct vrdma_handle o;

	check(!call(VRDMA_FN_ALLOC_PD, NULL, 0, &o, sizeof(o)), "ALLOC_PD");
	return le32toh(o.handle);
}

/* Queue layout in R_QUEUES (guest offsets). */
#define CQ_OFF 0
#define CQ_ENTRIES 256
#define QP_OFF(k) (256 * 1024 + (k) * 256 * 1024)
#define SQ_STRIDE 128
#define RQ_STRIDE 64
#define WR_DEPTH 64

struct gqp {
	uint32_t handle, qpn;
	struct vrdma_ring *sq, *rq;
	uint32_t sprod, rprod;
};

static int doorbell = -1;	/* the guest's kick, once the relay thread serves it */
static int manual_relay = 1;	/* before that, the test runs the relay passes itself */
static uint64_t kicks_sent;

/* Guest side of a doorbell: prod was published with a sequentially consistent store;
 * the seq_cst load of flags after it pairs with the relay's seq_cst flag store and its
 * re-check of prod, so one of the two sides sees the other. Kick only if it sleeps. */
static void maybe_kick(struct vrdma_ring *ring)
{
	uint64_t one = 1;

	if (doorbell >= 0 && (le32toh(__atomic_load_n(&ring->flags, __ATOMIC_SEQ_CST)) &
			      VRDMA_RING_NEED_WAKEUP)) {
		check(write(doorbell, &one, sizeof(one)) == sizeof(one), "kick");
		kicks_sent++;
	}
}

static uint32_t cq_handle;
static struct vrdma_ring *cq_ring;
static uint32_t cq_cons;

static void create_qp(struct gqp *q, uint32_t pd, int k)
{
	struct vrdma_create_qp_in i = {
		.pd = htole32(pd), .send_cq = htole32(cq_handle), .recv_cq = htole32(cq_handle),
		.qp_type = IBV_QPT_RC, .shm = htole32(R_QUEUES),
		.cap = { .max_send_wr = htole32(WR_DEPTH), .max_recv_wr = htole32(WR_DEPTH),
			 .max_send_sge = htole32(2), .max_recv_sge = htole32(2),
			 .max_inline_data = htole32(32) },
		.sq_offset = htole64(QP_OFF(k)), .rq_offset = htole64(QP_OFF(k) + 128 * 1024),
		.sq_entries = htole32(WR_DEPTH), .sq_stride = htole32(SQ_STRIDE),
		.rq_entries = htole32(WR_DEPTH), .rq_stride = htole32(RQ_STRIDE),
	};
	struct vrdma_create_qp_out o;
	int r = call(VRDMA_FN_CREATE_QP, &i, sizeof(i), &o, sizeof(o));

	check(!r, "CREATE_QP: %d", r);
	q->handle = le32toh(o.handle);
	q->qpn = le32toh(o.qp_num);
	check(le32toh(o.cap.max_send_wr) >= WR_DEPTH, "granted depth");
	q->sq = (void *)((uint8_t *)regs[R_QUEUES].guest + QP_OFF(k));
	q->rq = (void *)((uint8_t *)regs[R_QUEUES].guest + QP_OFF(k) + 128 * 1024);
}

static int modify(struct gqp *q, uint32_t mask, struct vrdma_qp_attr *a)
{
	struct vrdma_modify_qp_in i = { .handle = htole32(q->handle), .attr_mask = htole32(mask) };

	i.attr = *a;
	return call(VRDMA_FN_MODIFY_QP, &i, sizeof(i), NULL, 0);
}

static void connect_qp(struct gqp *q, uint32_t dqpn, const uint8_t *dgid, int gid_index)
{
	struct vrdma_qp_attr a = { .qp_state = htole32(IBV_QPS_INIT), .port_num = 1,
		.qp_access_flags = htole32(IBV_ACCESS_REMOTE_WRITE | IBV_ACCESS_REMOTE_READ) };
	int r;

	r = modify(q, IBV_QP_STATE | IBV_QP_PKEY_INDEX | IBV_QP_PORT | IBV_QP_ACCESS_FLAGS, &a);
	check(!r, "INIT: %d", r);
	memset(&a, 0, sizeof(a));
	a.qp_state = htole32(IBV_QPS_RTR);
	a.path_mtu = htole32(IBV_MTU_1024);
	a.dest_qp_num = htole32(dqpn);
	a.max_dest_rd_atomic = 1;
	a.min_rnr_timer = 12;
	a.ah_attr.is_global = 1;
	a.ah_attr.port_num = 1;
	a.ah_attr.hop_limit = 1;
	a.ah_attr.sgid_index = (uint8_t)(gid_index + 1);	/* not the bus's: refused */
	memcpy(a.ah_attr.dgid, dgid, 16);
	uint32_t rtr = IBV_QP_STATE | IBV_QP_AV | IBV_QP_PATH_MTU | IBV_QP_DEST_QPN |
		       IBV_QP_RQ_PSN | IBV_QP_MAX_DEST_RD_ATOMIC | IBV_QP_MIN_RNR_TIMER;
	check(modify(q, rtr, &a) == -EPERM, "a foreign source GID index is refused");
	a.ah_attr.sgid_index = (uint8_t)gid_index;
	check(modify(q, rtr | IBV_QP_ALT_PATH, &a) == -EOPNOTSUPP, "ALT_PATH refused");
	check(modify(q, rtr | (1u << 30), &a) == -EINVAL, "unknown mask bit refused");
	r = modify(q, rtr, &a);
	check(!r, "RTR: %d", r);
	memset(&a, 0, sizeof(a));
	a.qp_state = htole32(IBV_QPS_RTS);
	a.timeout = 14;
	a.retry_cnt = 7;
	a.rnr_retry = 7;
	a.max_rd_atomic = 1;
	r = modify(q, IBV_QP_STATE | IBV_QP_TIMEOUT | IBV_QP_RETRY_CNT | IBV_QP_RNR_RETRY |
		   IBV_QP_SQ_PSN | IBV_QP_MAX_QP_RD_ATOMIC, &a);
	check(!r, "RTS: %d", r);
}

/* Guest side of the data path: write a WQE, then publish prod (release). */
static void post_recv(struct gqp *q, uint64_t wr_id, uint64_t addr, uint32_t len, uint32_t lkey)
{
	uint8_t *slot = (uint8_t *)(q->rq + 1) + (q->rprod & (WR_DEPTH - 1)) * RQ_STRIDE;
	struct vrdma_rwqe w = { .wr_id = htole64(wr_id), .num_sge = htole32(1) };
	struct vrdma_sge s = { .addr = htole64(addr), .length = htole32(len), .lkey = htole32(lkey) };

	memcpy(slot, &w, sizeof(w));
	memcpy(slot + sizeof(w), &s, sizeof(s));
	__atomic_store_n(&q->rq->prod, htole32(++q->rprod), __ATOMIC_SEQ_CST);
	maybe_kick(q->rq);
}

static void post_send(struct gqp *q, uint64_t wr_id, uint8_t op, uint64_t addr, uint32_t len,
		      uint32_t lkey, uint64_t raddr, uint32_t rkey)
{
	uint8_t *slot = (uint8_t *)(q->sq + 1) + (q->sprod & (WR_DEPTH - 1)) * SQ_STRIDE;
	struct vrdma_swqe w = { .wr_id = htole64(wr_id), .opcode = op, .num_sge = 1,
				.send_flags = htole32(IBV_SEND_SIGNALED),
				.remote_addr = htole64(raddr), .rkey = htole32(rkey) };
	struct vrdma_sge s = { .addr = htole64(addr), .length = htole32(len), .lkey = htole32(lkey) };

	memcpy(slot, &w, sizeof(w));
	memcpy(slot + sizeof(w), &s, sizeof(s));
	__atomic_store_n(&q->sq->prod, htole32(++q->sprod), __ATOMIC_SEQ_CST);
	maybe_kick(q->sq);
}

/* Run the relay until n completions are in the ring (5 s at most, scaled: vt-time.h);
 * return them. */
static void reap(struct vrdma_cqe *out, int n, const char *what)
{
	struct timespec t0, t;
	double limit = vt_secs(5);
	int got = 0;

	clock_gettime(CLOCK_MONOTONIC, &t0);
	while (got < n) {
		uint32_t prod;

		if (manual_relay)
			vrdma_relay_guest(g);
		prod = le32toh(__atomic_load_n(&cq_ring->prod, __ATOMIC_ACQUIRE));
		while (cq_cons != prod && got < n) {
			memcpy(&out[got++], (uint8_t *)(cq_ring + 1) +
			       (cq_cons & (CQ_ENTRIES - 1)) * sizeof(struct vrdma_cqe),
			       sizeof(struct vrdma_cqe));
			cq_cons++;
		}
		__atomic_store_n(&cq_ring->cons, htole32(cq_cons), __ATOMIC_RELEASE);
		clock_gettime(CLOCK_MONOTONIC, &t);
		if (t.tv_sec - t0.tv_sec > limit)
			fail("%s: %d of %d completions within %.0f s", what, got, n, limit);
	}
	for (int k = 0; k < n; k++)
		check(le32toh(out[k].status) == IBV_WC_SUCCESS, "%s: completion %d status %s",
		      what, k, ibv_wc_status_str(le32toh(out[k].status)));
}

static void fill(uint8_t *p, size_t n, unsigned seed)
{
	for (size_t i = 0; i < n; i++)
		p[i] = (uint8_t)(seed + i * 13 + (i >> 9));
}

int main(void)
{
	const char *dev = getenv("VBUS_RXE"), *gi = getenv("VBUS_GID_INDEX");
	struct vrdma_policy pol = { .port = 1, .max_objects = 16, .max_pinned_bytes = 1 << 20,
				    .qp_types = VRDMA_WL_QP_TYPES, .access = VRDMA_WL_ACCESS };
	struct ibv_device **list;
	struct ibv_device *d = NULL;
	uint8_t *gbuf;
	int n, r;

	if (!dev || !gi) {
		printf("no soft-RoCE device: run this under tests/vm/run\n");
		return 77;
	}
	pol.gid_index = (uint32_t)atoi(gi);
	list = ibv_get_device_list(&n);
	for (int i = 0; list && i < n; i++)
		if (!strcmp(ibv_get_device_name(list[i]), dev))
			d = list[i];
	check(d, "no device %s", dev);
	check(!vrdma_guest_open(&g, d, &pol, &env, NULL), "guest open");

	/* Two data memfds side by side at the guest's addresses: one MR over both. */
	gbuf = mmap(NULL, 2 * DATA_LEN, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	make_region(R_DATA1, DATA_LEN, gbuf);
	make_region(R_DATA2, DATA_LEN, gbuf + DATA_LEN);
	make_region(R_QUEUES, QUEUES_LEN, NULL);
	make_region(R_SMALL, 4096, NULL);

	/* HELLO and queries. */
	{
		struct vrdma_hello_in hi = { .abi_version = htole32(VRDMA_ABI_VERSION),
					     .abi_min = htole32(VRDMA_ABI_MIN_VERSION) };
		struct vrdma_hello_out ho;
		size_t len;
		struct vrdma_query_device_out qd;
		struct vrdma_query_port_in pi = { .port_num = 1 };
		struct vrdma_query_port_out po;

		check(!call(VRDMA_FN_HELLO, &hi, sizeof(hi), &ho, sizeof(ho)), "HELLO");
		check(le32toh(ho.gid_index) == pol.gid_index, "HELLO gid index");
		check(le32toh(ho.abi_version) == VRDMA_ABI_VERSION && !ho.features &&
		      le32toh(ho.abi_min) == VRDMA_ABI_MIN_VERSION &&
		      le32toh(ho.abi_max) == VRDMA_ABI_VERSION, "HELLO: the newest version");
		hi.abi_min = htole32(VRDMA_ABI_VERSION + 1);
		hi.abi_version = htole32(VRDMA_ABI_VERSION + 1);
		memset(&ho, 0xff, sizeof(ho));
		check(vrdma_dispatch(g, VRDMA_FN_HELLO, &hi, sizeof(hi), &ho, sizeof(ho), &len) ==
		      -EPROTONOSUPPORT && len == sizeof(ho) && !ho.abi_version &&
		      le32toh(ho.abi_min) == VRDMA_ABI_MIN_VERSION &&
		      le32toh(ho.abi_max) == VRDMA_ABI_VERSION,
		      "a newer-only guest is refused, told the host's range");
		/* An ABI-1 guest: the 8-byte hello_in, the 24-byte answer; it stays version 1
		 * for the rest of this test, which is the whole of ABI 1. */
		hi.abi_version = htole32(1);
		memset(&ho, 0xff, sizeof(ho));
		check(!vrdma_dispatch(g, VRDMA_FN_HELLO, &hi, VRDMA_HELLO_IN_V1_SIZE, &ho,
				      VRDMA_HELLO_OUT_V1_SIZE, &len) && len == VRDMA_HELLO_OUT_V1_SIZE &&
		      le32toh(ho.abi_version) == 1 && ho.abi_min == 0xffffffff &&
		      le32toh(ho.gid_index) == pol.gid_index, "HELLO of an ABI-1 guest");
		check(!call(VRDMA_FN_QUERY_DEVICE, NULL, 0, &qd, sizeof(qd)), "QUERY_DEVICE");
		{
			struct ibv_context *c = ibv_open_device(d);
			struct ibv_device_attr a;

			check(c && !ibv_query_device(c, &a), "native QUERY_DEVICE");
			check(le32toh(qd.vendor_id) == a.vendor_id &&
			      le32toh(qd.vendor_part_id) == a.vendor_part_id &&
			      qd.phys_port_cnt == 1 && le32toh(qd.max_qp) > 0 &&
			      le32toh(qd.max_qp) <= (uint32_t)a.max_qp,
			      "the device's identity, limits no higher than its own");
			ibv_close_device(c);
		}
		check(!call(VRDMA_FN_QUERY_PORT, &pi, sizeof(pi), &po, sizeof(po)), "QUERY_PORT");
		check(le32toh(po.state) == IBV_PORT_ACTIVE && po.link_layer == IBV_LINK_LAYER_ETHERNET,
		      "port 1 ACTIVE, Ethernet");
		pi.port_num = 2;
		check(call(VRDMA_FN_QUERY_PORT, &pi, sizeof(pi), &po, sizeof(po)) == -EINVAL,
		      "port 2 does not exist");
		check(call(VRDMA_FN_QUERY_PORT, &pi, sizeof(pi) - 1, &po, sizeof(po)) == -EINVAL,
		      "a short input is refused");
		check(call(999, NULL, 0, NULL, 0) == -EOPNOTSUPP, "an unknown function");
		check(call(0, NULL, 0, NULL, 0) == -EOPNOTSUPP, "function 0");
		pi.port_num = 1;
		{
			uint8_t longer[sizeof(pi) + 8] = { 0 };

			memcpy(longer, &pi, sizeof(pi));
			check(!call(VRDMA_FN_QUERY_PORT, longer, sizeof(longer), &po, sizeof(po)) &&
			      le32toh(po.state) == IBV_PORT_ACTIVE, "QUERY_PORT, 8 zero bytes more");
			longer[sizeof(pi)] = 1;
			check(call(VRDMA_FN_QUERY_PORT, longer, sizeof(longer), &po, sizeof(po)) ==
			      -E2BIG, "QUERY_PORT, a non-zero extra byte");
		}
		printf("ok   HELLO (ABI 1 and %u, a refusal with the host's range), QUERY_DEVICE, "
		       "QUERY_PORT, longer inputs, and their refusals\n", VRDMA_ABI_VERSION);
	}
	uint8_t gid[16];
	{
		struct vrdma_query_gid_in i = { .port_num = 1, .index = htole32(pol.gid_index) };
		struct vrdma_query_gid_out o;
		union ibv_gid real;
		struct ibv_context *c = ibv_open_device(d);

		check(!call(VRDMA_FN_QUERY_GID, &i, sizeof(i), &o, sizeof(o)), "QUERY_GID");
		check(c && !ibv_query_gid(c, 1, (int)pol.gid_index, &real), "real gid");
		check(!memcmp(real.raw, o.gid, 16) && le32toh(o.gid_type) == IBV_GID_TYPE_ROCE_V2,
		      "the real RoCEv2 GID");
		memcpy(gid, o.gid, 16);
		i.index = htole32(100000);
		check(call(VRDMA_FN_QUERY_GID, &i, sizeof(i), &o, sizeof(o)) < 0, "GID index bound");
		ibv_close_device(c);
		printf("ok   QUERY_GID returns the real GID\n");
	}

	/* PD, MR over two pieces at an unaligned iova. */
	uint32_t pd = alloc_pd(), mrh, lkey, rkey;
	uint64_t iova = (uintptr_t)gbuf + 100, mrlen = 2 * DATA_LEN - 200;
	{
		uint8_t buf[sizeof(struct vrdma_reg_mr_in) + 2 * sizeof(struct vrdma_mr_piece)];
		struct vrdma_reg_mr_in *i = (void *)buf;
		struct vrdma_mr_piece *p = (void *)(i + 1);
		struct vrdma_reg_mr_out o;
		uint32_t access = IBV_ACCESS_LOCAL_WRITE | IBV_ACCESS_REMOTE_WRITE |
				  IBV_ACCESS_REMOTE_READ;

		*i = (struct vrdma_reg_mr_in){ .pd = htole32(pd), .access = htole32(access),
			.iova = htole64(iova), .length = htole64(mrlen), .npieces = htole32(2) };
		p[0] = (struct vrdma_mr_piece){ .shm = htole32(R_DATA1), .length = htole64(DATA_LEN) };
		p[1] = (struct vrdma_mr_piece){ .shm = htole32(R_DATA2), .length = htole64(DATA_LEN) };
		i->access = htole32(access | IBV_ACCESS_ON_DEMAND);
		check(call(VRDMA_FN_REG_MR, buf, sizeof(buf), &o, sizeof(o)) == -EOPNOTSUPP,
		      "ODP refused");
		i->access = htole32(access);
		p[1].offset = htole64(4096);
		check(call(VRDMA_FN_REG_MR, buf, sizeof(buf), &o, sizeof(o)) == -EINVAL,
		      "a piece past its region is refused");
		p[1].offset = 0;
		p[1].shm = htole32(77);
		check(call(VRDMA_FN_REG_MR, buf, sizeof(buf), &o, sizeof(o)) == -ENOENT,
		      "a region the guest does not have is refused");
		p[1].shm = htole32(R_DATA2);
		check(call(VRDMA_FN_REG_MR, buf, sizeof(buf) - 8, &o, sizeof(o)) == -EINVAL,
		      "a length that does not match npieces is refused");
		i->length = htole64(4ull << 20);
		check(call(VRDMA_FN_REG_MR, buf, sizeof(buf), &o, sizeof(o)) == -ENOMEM,
		      "more than the pinned-bytes quota is refused");
		i->length = htole64(mrlen);
		i->pd = htole32(pd + 1);
		check(call(VRDMA_FN_REG_MR, buf, sizeof(buf), &o, sizeof(o)) == -ENOENT,
		      "a handle that was never given is refused");
		i->pd = htole32(0);
		check(call(VRDMA_FN_REG_MR, buf, sizeof(buf), &o, sizeof(o)) == -EINVAL,
		      "handle 0 is refused");
		i->pd = htole32(0xfffff);
		check(call(VRDMA_FN_REG_MR, buf, sizeof(buf), &o, sizeof(o)) == -EINVAL,
		      "an index past the table is refused");
		i->pd = htole32(pd);
		r = call(VRDMA_FN_REG_MR, buf, sizeof(buf), &o, sizeof(o));
		check(!r, "REG_MR: %d", r);
		mrh = le32toh(o.handle);
		lkey = le32toh(o.lkey);
		rkey = le32toh(o.rkey);
		struct vrdma_handle hp = { .handle = htole32(mrh) };
		check(call(VRDMA_FN_DEALLOC_PD, &hp, sizeof(hp), NULL, 0) == -EINVAL,
		      "an MR handle is not a PD handle");
		hp.handle = htole32(pd);
		check(call(VRDMA_FN_DEALLOC_PD, &hp, sizeof(hp), NULL, 0) == -EBUSY,
		      "a PD in use cannot go");
		printf("ok   REG_MR over two pieces, and its refusals\n");
	}

	/* CQ and two QPs; a UD QP and an ODP-free whitelist. */
	struct gqp a = { 0 }, b = { 0 };
	{
		struct vrdma_create_cq_in i = { .cqe = htole32(64), .shm = htole32(R_QUEUES),
			.offset = htole64(CQ_OFF), .entries = htole32(CQ_ENTRIES), .channel = htole32(9) };
		struct vrdma_create_cq_out o;

		i.offset = htole64(QUEUES_LEN - 64);
		check(call(VRDMA_FN_CREATE_CQ, &i, sizeof(i), &o, sizeof(o)) == -EINVAL,
		      "a ring past its region is refused");
		i.offset = htole64(CQ_OFF);
		i.entries = htole32(100);
		check(call(VRDMA_FN_CREATE_CQ, &i, sizeof(i), &o, sizeof(o)) == -EINVAL,
		      "ring entries must be a power of two");
		i.entries = htole32(CQ_ENTRIES);
		r = call(VRDMA_FN_CREATE_CQ, &i, sizeof(i), &o, sizeof(o));
		check(!r, "CREATE_CQ: %d", r);
		cq_handle = le32toh(o.handle);
		cq_ring = (void *)((uint8_t *)regs[R_QUEUES].guest + CQ_OFF);
	}
	create_qp(&a, pd, 0);
	create_qp(&b, pd, 1);
	{
		struct vrdma_create_qp_in i = { .pd = htole32(pd), .send_cq = htole32(cq_handle),
			.recv_cq = htole32(cq_handle), .qp_type = IBV_QPT_RAW_PACKET };
		struct vrdma_create_qp_out o;

		check(call(VRDMA_FN_CREATE_QP, &i, sizeof(i), &o, sizeof(o)) == -EOPNOTSUPP,
		      "RAW_PACKET QPs are refused");
		i.qp_type = IBV_QPT_RC;
		i.send_cq = htole32(pd);
		check(call(VRDMA_FN_CREATE_QP, &i, sizeof(i), &o, sizeof(o)) == -EINVAL,
		      "a PD handle is not a CQ handle");
	}
	connect_qp(&a, b.qpn, gid, (int)pol.gid_index);
	connect_qp(&b, a.qpn, gid, (int)pol.gid_index);
	printf("ok   CREATE_CQ, CREATE_QP, MODIFY_QP to RTS through the real QPNs\n");

	/* The data path: guest addresses in every work request. */
	{
		struct vrdma_cqe c[2];
		uint8_t want[5000];
		uint8_t *src = gbuf + 200, *dst = gbuf + DATA_LEN - 1000; /* crosses the pieces */

		fill(want, sizeof(want), 1);
		memcpy(src, want, sizeof(want));
		memset(dst, 0, sizeof(want));
		post_recv(&b, 0xb0b, (uintptr_t)dst, sizeof(want), lkey);
		post_send(&a, 0xa11, IBV_WR_SEND, (uintptr_t)src, sizeof(want), lkey, 0, 0);
		reap(c, 2, "SEND");
		for (int k = 0; k < 2; k++) {
			if (c[k].is_send)
				check(le64toh(c[k].wr_id) == 0xa11 && le32toh(c[k].sq_retired) == 1 &&
				      le32toh(c[k].qp_handle) == a.handle, "send CQE");
			else
				check(le64toh(c[k].wr_id) == 0xb0b && le32toh(c[k].byte_len) == sizeof(want) &&
				      le32toh(c[k].qp_num) == b.qpn, "receive CQE");
		}
		check(!memcmp(dst, want, sizeof(want)), "SEND data across the two pieces");
		printf("ok   SEND into a posted receive, across two memfd pieces\n");

		fill(want, sizeof(want), 2);
		memcpy(src, want, sizeof(want));
		post_send(&a, 7, IBV_WR_RDMA_WRITE, (uintptr_t)src, 3333, lkey, (uintptr_t)gbuf + 40001, rkey);
		reap(c, 1, "RDMA WRITE");
		check(!memcmp(gbuf + 40001, want, 3333) && le32toh(c[0].sq_retired) == 2, "WRITE data");
		printf("ok   RDMA WRITE to an unaligned guest address\n");

		fill(want, sizeof(want), 3);
		memcpy(gbuf + 20000, want, 4500);
		post_send(&b, 8, IBV_WR_RDMA_READ, (uintptr_t)gbuf + 50003, 4500, lkey, (uintptr_t)gbuf + 20000, rkey);
		reap(c, 1, "RDMA READ");
		check(!memcmp(gbuf + 50003, want, 4500), "READ data");
		printf("ok   RDMA READ into an unaligned guest address\n");
	}

	/* The relay thread: it spins briefly after work, then sleeps; the guest kicks only
	 * when told to; an idle relay uses no CPU. */
	{
		struct vrdma_relay *relay;
		struct vrdma_relay_stats st;
		struct vrdma_cqe c[2];
		uint8_t want[128];
		double cpu;

		doorbell = eventfd(0, EFD_CLOEXEC);
		check(doorbell >= 0, "eventfd");
		check(!vrdma_relay_start(&relay, 50000), "relay start");
		check(!vrdma_relay_add(relay, g, doorbell), "relay add");
		manual_relay = 0;
		for (int k = 0; k < 100; k++) {
			fill(want, sizeof(want), (unsigned)k);
			memcpy(gbuf + 1000, want, sizeof(want));
			post_recv(&a, 100 + k, (uintptr_t)gbuf + 30000, sizeof(want), lkey);
			post_send(&b, 200 + k, IBV_WR_SEND, (uintptr_t)gbuf + 1000, sizeof(want), lkey, 0, 0);
			reap(c, 2, "SEND through the relay thread");
			check(!memcmp(gbuf + 30000, want, sizeof(want)), "data through the relay thread");
			if (k % 10 == 9)
				usleep(20000);	/* let it fall asleep: the next post must kick */
		}
		usleep(200000);
		{
			char path[64], buf[512];
			unsigned long u0, s0, u1, s1;
			FILE *f;

			snprintf(path, sizeof(path), "/proc/self/task/%d/stat", (int)vrdma_relay_tid(relay));
			f = fopen(path, "r");
			check(f && fgets(buf, sizeof(buf), f), "relay stat");
			fclose(f);
			check(sscanf(strrchr(buf, ')') + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu",
				     &u0, &s0) == 2, "parse stat");
			sleep(1);
			f = fopen(path, "r");
			check(f && fgets(buf, sizeof(buf), f), "relay stat");
			fclose(f);
			check(sscanf(strrchr(buf, ')') + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu",
				     &u1, &s1) == 2, "parse stat");
			cpu = (double)(u1 + s1 - u0 - s0) / (double)sysconf(_SC_CLK_TCK);
		}
		vrdma_relay_get_stats(relay, &st);
		check(cpu < 0.05, "the idle relay used %.2f s of CPU in 1 s", cpu);
		check(kicks_sent > 0 && kicks_sent < 2 * 100 * 2, "kicks only when asleep (%llu)",
		      (unsigned long long)kicks_sent);
		check(st.sleeps >= 10, "the relay slept (%llu times)", (unsigned long long)st.sleeps);
		vrdma_relay_remove(relay, g);
		vrdma_relay_stop(relay);
		manual_relay = 1;
		close(doorbell);
		doorbell = -1;
		printf("ok   relay thread: 100 round trips, %llu kicks, %llu sleeps, idle CPU %.3f s/s\n",
		       (unsigned long long)kicks_sent, (unsigned long long)st.sleeps, cpu);
	}

	/* (Last of the data tests: it leaves QP a in error.) A guest that corrupts its own
	 * send queue's index breaks that queue, and its QP goes to the error state as a
	 * device's does with a WQE it cannot execute; the guest's other QP is untouched. */
	{
		struct ibv_qp_attr qa;
		struct ibv_qp_init_attr qi;
		struct vrdma_qp *qa_, *qb_;
		int err = 0;

		__atomic_store_n(&a.sq->prod, htole32(a.sprod + 100000), __ATOMIC_RELEASE);
		vrdma_relay_guest(g);
		check(le32toh(a.sq->flags) & VRDMA_RING_BROKEN, "a corrupt index marks the ring broken");
		pthread_mutex_lock(&g->lock);
		qa_ = vrdma_handle_get(g, a.handle, VRDMA_OBJ_QP, &err);
		qb_ = vrdma_handle_get(g, b.handle, VRDMA_OBJ_QP, &err);
		pthread_mutex_unlock(&g->lock);
		check(qa_ && qb_, "QP objects");
		check(!ibv_query_qp(qa_->qp, &qa, IBV_QP_STATE, &qi) && qa.qp_state == IBV_QPS_ERR,
		      "the broken QP is in the error state (%d)", qa.qp_state);
		check(!ibv_query_qp(qb_->qp, &qa, IBV_QP_STATE, &qi) && qa.qp_state == IBV_QPS_RTS,
		      "the other QP is still RTS (%d)", qa.qp_state);
		check(!(le32toh(b.sq->flags) & VRDMA_RING_BROKEN), "the other QP's ring is not broken");
		printf("ok   a corrupt ring index breaks that ring and moves its QP to error, nothing else\n");
	}

	/* Destroy in the wrong order is refused, the right order works, handles go stale. */
	{
		struct vrdma_handle h = { .handle = htole32(cq_handle) };

		check(call(VRDMA_FN_DESTROY_CQ, &h, sizeof(h), NULL, 0) == -EBUSY, "CQ in use");
		h.handle = htole32(a.handle);
		check(!call(VRDMA_FN_DESTROY_QP, &h, sizeof(h), NULL, 0), "DESTROY_QP");
		check(call(VRDMA_FN_DESTROY_QP, &h, sizeof(h), NULL, 0) == -ENOENT, "a stale handle");
		h.handle = htole32(mrh);
		check(!call(VRDMA_FN_DEREG_MR, &h, sizeof(h), NULL, 0), "DEREG_MR");
		printf("ok   destroy order, stale handles\n");
	}

	/* The handle quota. */
	{
		int made = 0;
		struct vrdma_handle o;

		while (!(r = call(VRDMA_FN_ALLOC_PD, NULL, 0, &o, sizeof(o))))
			made++;
		check(r == -EDQUOT && made < (int)pol.max_objects, "the handle quota holds (%d)", r);
		printf("ok   handle quota: %d more PDs, then EDQUOT\n", made);
	}
	vrdma_guest_close(g);	/* frees b, the CQ, the PDs, then the context */
	printf("ok   guest closed with objects still open\n");
	ibv_free_device_list(list);
	return 0;
}
