// SPDX-License-Identifier: MIT
/*
 * iova-mr: the memory model vbusd relies on, checked on the real soft-RoCE device.
 *
 * A guest's buffer lives in a memfd that the guest maps at GVA and vbusd maps at HVA.
 * vbusd registers it with ibv_reg_mr_iova(HVA, len, iova = GVA), so that the guest's work
 * requests, which name GVAs, can go to the device untranslated. This test maps each memfd
 * twice in one process, registers it that way, and moves data between two RC QPs using
 * only GVAs in the work requests: SEND into a posted receive, RDMA WRITE, RDMA READ, at
 * offsets that are not page aligned and lengths that cross pages. Every byte is checked
 * through the *other* mapping (HVA), the one the device was given.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>
#include <infiniband/verbs.h>
#include "../lib/vt-time.h"

#define BUF_LEN (64 * 1024)

struct side {
	int fd;
	uint8_t *gva; /* the "guest" mapping: only this address goes into work requests */
	uint8_t *hva; /* the "host" mapping: given to ibv_reg_mr_iova, used to check bytes */
	struct ibv_mr *mr;
	struct ibv_qp *qp;
};

static struct ibv_context *ctx;
static struct ibv_pd *pd;
static struct ibv_cq *cq;
static int gid_index;

#define fail(...) do { printf("FAIL: " __VA_ARGS__); printf("\n"); exit(1); } while (0)

static void map_side(struct side *s)
{
	s->fd = memfd_create("iova-mr", MFD_CLOEXEC);
	if (s->fd < 0 || ftruncate(s->fd, BUF_LEN))
		fail("memfd: %s", strerror(errno));
	s->gva = mmap(NULL, BUF_LEN, PROT_READ | PROT_WRITE, MAP_SHARED, s->fd, 0);
	s->hva = mmap(NULL, BUF_LEN, PROT_READ | PROT_WRITE, MAP_SHARED, s->fd, 0);
	if (s->gva == MAP_FAILED || s->hva == MAP_FAILED)
		fail("mmap: %s", strerror(errno));
	s->mr = ibv_reg_mr_iova(pd, s->hva, BUF_LEN, (uintptr_t)s->gva,
				IBV_ACCESS_LOCAL_WRITE | IBV_ACCESS_REMOTE_WRITE |
				IBV_ACCESS_REMOTE_READ);
	if (!s->mr)
		fail("ibv_reg_mr_iova: %s", strerror(errno));
}

static void make_qp(struct side *s)
{
	struct ibv_qp_init_attr ia = {
		.send_cq = cq, .recv_cq = cq, .qp_type = IBV_QPT_RC,
		.cap = { .max_send_wr = 16, .max_recv_wr = 16, .max_send_sge = 1, .max_recv_sge = 1 },
	};
	struct ibv_qp_attr a = {
		.qp_state = IBV_QPS_INIT, .port_num = 1,
		.qp_access_flags = IBV_ACCESS_REMOTE_WRITE | IBV_ACCESS_REMOTE_READ,
	};

	s->qp = ibv_create_qp(pd, &ia);
	if (!s->qp)
		fail("ibv_create_qp: %s", strerror(errno));
	if (ibv_modify_qp(s->qp, &a, IBV_QP_STATE | IBV_QP_PKEY_INDEX | IBV_QP_PORT |
			  IBV_QP_ACCESS_FLAGS))
		fail("modify to INIT");
}

static void connect_qp(struct side *s, uint32_t remote_qpn, const union ibv_gid *gid)
{
	struct ibv_qp_attr a = {
		.qp_state = IBV_QPS_RTR, .path_mtu = IBV_MTU_1024, .dest_qp_num = remote_qpn,
		.rq_psn = 0, .max_dest_rd_atomic = 1, .min_rnr_timer = 12,
		.ah_attr = { .is_global = 1, .port_num = 1,
			     .grh = { .dgid = *gid, .sgid_index = gid_index, .hop_limit = 1 } },
	};
	int r;

	r = ibv_modify_qp(s->qp, &a, IBV_QP_STATE | IBV_QP_AV | IBV_QP_PATH_MTU |
			  IBV_QP_DEST_QPN | IBV_QP_RQ_PSN | IBV_QP_MAX_DEST_RD_ATOMIC |
			  IBV_QP_MIN_RNR_TIMER);
	if (r)
		fail("modify to RTR: %s", strerror(r));
	a.qp_state = IBV_QPS_RTS;
	a.timeout = 14;
	a.retry_cnt = 7;
	a.rnr_retry = 7;
	a.sq_psn = 0;
	a.max_rd_atomic = 1;
	r = ibv_modify_qp(s->qp, &a, IBV_QP_STATE | IBV_QP_TIMEOUT | IBV_QP_RETRY_CNT |
			  IBV_QP_RNR_RETRY | IBV_QP_SQ_PSN | IBV_QP_MAX_QP_RD_ATOMIC);
	if (r)
		fail("modify to RTS: %s", strerror(r));
}

/* Wait for n completions (5 s at most, scaled: vt-time.h); each must be successful. */
static void wait_cqes(int n, const char *what)
{
	struct ibv_wc wc;
	struct timespec t0, t;
	double limit = vt_secs(5);

	clock_gettime(CLOCK_MONOTONIC, &t0);
	while (n > 0) {
		int r = ibv_poll_cq(cq, 1, &wc);

		if (r < 0)
			fail("%s: ibv_poll_cq %d", what, r);
		if (r == 1) {
			if (wc.status != IBV_WC_SUCCESS)
				fail("%s: completion %s (opcode %d)", what,
				     ibv_wc_status_str(wc.status), wc.opcode);
			n--;
			continue;
		}
		clock_gettime(CLOCK_MONOTONIC, &t);
		if (t.tv_sec - t0.tv_sec > limit)
			fail("%s: no completion within %.0f s", what, limit);
	}
}

static void fill(uint8_t *p, size_t len, unsigned seed)
{
	for (size_t i = 0; i < len; i++)
		p[i] = (uint8_t)(seed * 31 + i * 7 + (i >> 8));
}

static void expect_same(const uint8_t *got, const uint8_t *want, size_t len, const char *what)
{
	for (size_t i = 0; i < len; i++)
		if (got[i] != want[i])
			fail("%s: byte %zu is 0x%02x, expected 0x%02x", what, i, got[i], want[i]);
}

static void post_send(struct side *s, enum ibv_wr_opcode op, uint8_t *laddr, uint32_t len,
		      uint64_t raddr, uint32_t rkey)
{
	struct ibv_sge sge = { .addr = (uintptr_t)laddr, .length = len, .lkey = s->mr->lkey };
	struct ibv_send_wr wr = {
		.sg_list = &sge, .num_sge = 1, .opcode = op, .send_flags = IBV_SEND_SIGNALED,
		.wr.rdma = { .remote_addr = raddr, .rkey = rkey },
	}, *bad;
	int r = ibv_post_send(s->qp, &wr, &bad);

	if (r)
		fail("ibv_post_send: %s", strerror(r));
}

/* One case: a SEND, WRITE or READ of len bytes at offsets off_a (in a) and off_b (in b). */
static void run_case(struct side *a, struct side *b, enum ibv_wr_opcode op, size_t off_a,
		     size_t off_b, uint32_t len, const char *name)
{
	static unsigned seed = 1;
	uint8_t *want = malloc(len);

	memset(a->hva, 0, BUF_LEN);
	memset(b->hva, 0, BUF_LEN);
	fill(want, len, seed++);
	if (op == IBV_WR_RDMA_READ) {
		memcpy(b->hva + off_b, want, len); /* a reads from b */
		post_send(a, op, a->gva + off_a, len, (uintptr_t)(b->gva + off_b), b->mr->rkey);
		wait_cqes(1, name);
		expect_same(a->hva + off_a, want, len, name);
	} else {
		memcpy(a->hva + off_a, want, len); /* a writes or sends to b */
		if (op == IBV_WR_SEND) {
			struct ibv_sge sge = { .addr = (uintptr_t)(b->gva + off_b), .length = len,
					       .lkey = b->mr->lkey };
			struct ibv_recv_wr rwr = { .sg_list = &sge, .num_sge = 1 }, *bad;

			if (ibv_post_recv(b->qp, &rwr, &bad))
				fail("%s: ibv_post_recv", name);
		}
		post_send(a, op, a->gva + off_a, len, (uintptr_t)(b->gva + off_b), b->mr->rkey);
		wait_cqes(op == IBV_WR_SEND ? 2 : 1, name);
		expect_same(b->hva + off_b, want, len, name);
	}
	/* Nothing outside the target range was touched. */
	{
		struct side *t = op == IBV_WR_RDMA_READ ? a : b;
		size_t off = op == IBV_WR_RDMA_READ ? off_a : off_b;

		for (size_t i = 0; i < BUF_LEN; i++)
			if ((i < off || i >= off + len) && t->hva[i])
				fail("%s: byte %zu outside the target was written", name, i);
	}
	printf("ok   %-34s %6u bytes, offsets %zu -> %zu\n", name, len, off_a, off_b);
	free(want);
}

int main(void)
{
	const char *dev = getenv("VBUS_RXE"), *gi = getenv("VBUS_GID_INDEX");
	struct ibv_device **list;
	union ibv_gid gid;
	struct side a, b;
	int n;

	if (!dev || !gi) {
		printf("no soft-RoCE device: run this under tests/vm/run\n");
		return 77;
	}
	gid_index = atoi(gi);
	list = ibv_get_device_list(&n);
	for (int i = 0; list && i < n && !ctx; i++)
		if (!strcmp(ibv_get_device_name(list[i]), dev))
			ctx = ibv_open_device(list[i]);
	if (!ctx)
		fail("cannot open %s", dev);
	ibv_free_device_list(list);
	pd = ibv_alloc_pd(ctx);
	cq = ibv_create_cq(ctx, 64, NULL, NULL, 0);
	if (!pd || !cq)
		fail("pd/cq: %s", strerror(errno));
	if (ibv_query_gid(ctx, 1, gid_index, &gid))
		fail("ibv_query_gid");
	map_side(&a);
	map_side(&b);
	if ((void *)a.gva == (void *)a.hva)
		fail("the two mappings share an address");
	make_qp(&a);
	make_qp(&b);
	connect_qp(&a, b.qp->qp_num, &gid);
	connect_qp(&b, a.qp->qp_num, &gid);

	run_case(&a, &b, IBV_WR_SEND, 0, 0, 256, "SEND, page aligned");
	run_case(&a, &b, IBV_WR_SEND, 13, 4091, 1000, "SEND into a receive, unaligned");
	run_case(&a, &b, IBV_WR_RDMA_WRITE, 100, 333, 9000, "RDMA WRITE, unaligned, 3 pages");
	run_case(&a, &b, IBV_WR_RDMA_WRITE, 4095, 1, 1, "RDMA WRITE, 1 byte");
	run_case(&a, &b, IBV_WR_RDMA_READ, 5, 4097, 12000, "RDMA READ, unaligned, 4 pages");
	run_case(&a, &b, IBV_WR_RDMA_READ, 0, BUF_LEN - 4096, 4096, "RDMA READ, last page");

	ibv_destroy_qp(a.qp);
	ibv_destroy_qp(b.qp);
	ibv_dereg_mr(a.mr);
	ibv_dereg_mr(b.mr);
	ibv_destroy_cq(cq);
	ibv_dealloc_pd(pd);
	ibv_close_device(ctx);
	return 0;
}
