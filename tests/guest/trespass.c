// SPDX-License-Identifier: MIT
/*
 * guest/trespass: a program that reaches for memory that is not its own through the verbs
 * it is allowed to use, and must fail every time (tests/device/guest-vm.sh runs it natively
 * as the control, as a process guest, and in a VM guest, where "not its own" includes the
 * rest of the VM's RAM, the other VMs' and the host's).
 *
 *   trespass DEVICE [GID_INDEX]
 *
 * Registration: an address range that is not mapped (below mmap_min_addr), a range that
 * runs from a page of its own into one it may not access, a kernel address: ibv_reg_mr
 * fails, and the page of its own keeps its bytes.
 * Work requests, each on a fresh pair of RC QPs connected to each other on DEVICE (one
 * bad request each, as the first request fails the QP):
 *  - a SEND whose SGE runs one byte past the end of its MR; one whose SGE names a kernel
 *    address with a valid lkey; one whose lkey is an MR of another PD;
 *  - an RDMA WRITE to the page after the target MR (mapped, not registered); one to a
 *    kernel address; one with the rkey of an MR of another PD;
 *  - an RDMA READ from the page before the target MR.
 * Each must fail at post time or complete with an error status; the bytes the request
 * aimed at (the peer's receive buffer, the guard pages around the target, the READ's
 * local buffer) keep their pattern. Then a good RDMA WRITE on a fresh pair lands, byte for
 * byte: the device still serves this program.
 * Prints one "ok" line per case and "TRESPASS-OK", exit 0; else a "FAIL" line, exit 1.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>
#include <infiniband/verbs.h>
#include "loopback.h"

#define PAGE 4096
#define KADDR 0xffff888000100000ull	/* in the kernel's direct map on x86-64 */
#define ACC (IBV_ACCESS_LOCAL_WRITE | IBV_ACCESS_REMOTE_WRITE | IBV_ACCESS_REMOTE_READ)

static struct lb lb;
static struct ibv_pd *other_pd;
/* Three pages: guard, target (registered as `mr`), guard. */
static uint8_t *area;
static struct ibv_mr *mr, *other_mr;

static uint8_t pattern(size_t i) { return (uint8_t)(i * 131 + 7); }

static void fill(void)
{
	for (size_t i = 0; i < 3 * PAGE; i++)
		area[i] = pattern(i);
}

/* The first byte of area that is not its pattern, or -1. */
static long spoilt(void)
{
	for (size_t i = 0; i < 3 * PAGE; i++)
		if (area[i] != pattern(i))
			return (long)i;
	return -1;
}

static void reg_refused(const char *what, void *addr, size_t len)
{
	struct ibv_mr *m = ibv_reg_mr(lb.pd, addr, len, ACC);

	if (m) {
		ibv_dereg_mr(m);
		fail("ibv_reg_mr of %s succeeded", what);
	}
	ok("ibv_reg_mr of %s refused (%s)", what, strerror(errno));
}

/* One bad work request on a fresh connected pair: posted on qp[0] (a receive waits on
 * qp[1] for a SEND). It must fail at post or complete with an error; area unchanged. */
static void wr_refused(const char *what, struct ibv_send_wr *wr)
{
	struct ibv_cq *cq = ibv_create_cq(lb.ctx, 8, NULL, NULL, 0);
	struct ibv_qp *qp[2];
	struct ibv_send_wr *bad;
	struct ibv_wc wc;
	long at;
	int r;

	check(cq, "create_cq: %s", strerror(errno));
	qp[0] = lb_qp(&lb, cq, cq, NULL);
	qp[1] = lb_qp(&lb, cq, cq, NULL);
	lb_connect(&lb, qp[0], qp[1]->qp_num);
	lb_connect(&lb, qp[1], qp[0]->qp_num);
	if (wr->opcode == IBV_WR_SEND) {
		struct ibv_sge s = { .addr = (uintptr_t)area + PAGE, .length = PAGE,
				     .lkey = mr->lkey };
		struct ibv_recv_wr rw = { .wr_id = 2, .sg_list = &s, .num_sge = 1 }, *rbad;

		check(!ibv_post_recv(qp[1], &rw, &rbad), "post_recv");
	}
	fill();
	wr->wr_id = 1;
	wr->send_flags = IBV_SEND_SIGNALED;
	r = ibv_post_send(qp[0], wr, &bad);
	if (r) {
		ok("%s: refused at post (%s)", what, strerror(r));
	} else {
		lb_poll(cq, &wc, 1);
		check(wc.wr_id == 1 && wc.status != IBV_WC_SUCCESS,
		      "%s: completed with %s (wr_id %llu)", what, ibv_wc_status_str(wc.status),
		      (unsigned long long)wc.wr_id);
		ok("%s: completion %s", what, ibv_wc_status_str(wc.status));
	}
	at = spoilt();
	check(at < 0, "%s: byte %ld of the area changed (0x%02x, was 0x%02x)", what, at,
	      area[at], pattern((size_t)at));
	check(!ibv_destroy_qp(qp[0]) && !ibv_destroy_qp(qp[1]) && !ibv_destroy_cq(cq),
	      "%s: destroy", what);
}

static void rdma(const char *what, enum ibv_wr_opcode op, uint64_t local, uint32_t lkey,
		 uint64_t remote, uint32_t rkey)
{
	struct ibv_sge s = { .addr = local, .length = 64, .lkey = lkey };
	struct ibv_send_wr wr = { .sg_list = &s, .num_sge = 1, .opcode = op,
				  .wr.rdma = { .remote_addr = remote, .rkey = rkey } };

	wr_refused(what, &wr);
}

static void send_(const char *what, uint64_t local, uint32_t len, uint32_t lkey)
{
	struct ibv_sge s = { .addr = local, .length = len, .lkey = lkey };
	struct ibv_send_wr wr = { .sg_list = &s, .num_sge = 1, .opcode = IBV_WR_SEND };

	wr_refused(what, &wr);
}

/* The good case: 64 bytes from the end of the target page WRITTEN to its start. */
static void good_write(void)
{
	struct ibv_cq *cq = ibv_create_cq(lb.ctx, 8, NULL, NULL, 0);
	uint64_t t = (uintptr_t)area + PAGE;
	struct ibv_sge s = { .addr = t + PAGE - 64, .length = 64, .lkey = mr->lkey };
	struct ibv_send_wr wr = { .wr_id = 9, .sg_list = &s, .num_sge = 1,
				  .opcode = IBV_WR_RDMA_WRITE, .send_flags = IBV_SEND_SIGNALED,
				  .wr.rdma = { .remote_addr = t, .rkey = mr->rkey } }, *bad;
	struct ibv_qp *qp[2];
	struct ibv_wc wc;

	check(cq, "create_cq: %s", strerror(errno));
	qp[0] = lb_qp(&lb, cq, cq, NULL);
	qp[1] = lb_qp(&lb, cq, cq, NULL);
	lb_connect(&lb, qp[0], qp[1]->qp_num);
	lb_connect(&lb, qp[1], qp[0]->qp_num);
	fill();
	check(!ibv_post_send(qp[0], &wr, &bad), "good WRITE: post");
	lb_poll(cq, &wc, 1);
	check(wc.status == IBV_WC_SUCCESS, "good WRITE: %s", ibv_wc_status_str(wc.status));
	for (size_t i = 0; i < 3 * PAGE; i++) {
		uint8_t want = i >= PAGE && i < PAGE + 64 ? pattern(2 * PAGE - 64 + i - PAGE) :
				pattern(i);

		check(area[i] == want, "good WRITE: byte %zu is 0x%02x, not 0x%02x", i, area[i], want);
	}
	ok("a good RDMA WRITE after all of them: 64 bytes land, nothing else changes");
	check(!ibv_destroy_qp(qp[0]) && !ibv_destroy_qp(qp[1]) && !ibv_destroy_cq(cq),
	      "good WRITE: destroy");
}

int main(int argc, char **argv)
{
	uint8_t *edge;
	uint64_t t;

	setvbuf(stdout, NULL, _IOLBF, 0);
	if (argc < 2) {
		fprintf(stderr, "usage: %s DEVICE [GID_INDEX]\n", argv[0]);
		return 2;
	}
	lb_open(&lb, argv[1], argc > 2 ? atoi(argv[2]) : 0);

	/* Registration of memory this process does not have: below mmap_min_addr nothing can
	 * ever be mapped; the page after `edge` is mapped with no access. */
	reg_refused("an unmapped range", (void *)(uintptr_t)PAGE, 4 * PAGE);
	edge = mmap(NULL, 2 * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	check(edge != MAP_FAILED, "mmap");
	check(!mprotect(edge + PAGE, PAGE, PROT_NONE), "mprotect");
	memset(edge, 1, PAGE);
	reg_refused("a range that runs into a page with no access", edge, 2 * PAGE);
	for (size_t i = 0; i < PAGE; i++)
		check(edge[i] == 1, "the refused registration changed byte %zu of its mapped page", i);
	reg_refused("a kernel address", (void *)(uintptr_t)KADDR, PAGE);
	check(!munmap(edge, 2 * PAGE), "munmap");

	area = mmap(NULL, 3 * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	check(area != MAP_FAILED, "mmap");
	t = (uintptr_t)area + PAGE;
	fill();
	mr = ibv_reg_mr(lb.pd, area + PAGE, PAGE, ACC);
	check(mr, "reg_mr of the target page: %s", strerror(errno));
	check(spoilt() < 0, "registration changed the area");
	other_pd = ibv_alloc_pd(lb.ctx);
	check(other_pd, "alloc_pd: %s", strerror(errno));
	other_mr = ibv_reg_mr(other_pd, area + PAGE, PAGE, ACC);
	check(other_mr, "reg_mr in the other PD: %s", strerror(errno));

	send_("SEND, its SGE one byte past its MR", t + PAGE - 63, 64, mr->lkey);
	send_("SEND from a kernel address with a valid lkey", KADDR, 64, mr->lkey);
	send_("SEND with the lkey of another PD's MR", t, 64, other_mr->lkey);
	rdma("RDMA WRITE to the page after the target MR", IBV_WR_RDMA_WRITE, t, mr->lkey,
	     t + PAGE, mr->rkey);
	rdma("RDMA WRITE to a kernel address", IBV_WR_RDMA_WRITE, t, mr->lkey, KADDR, mr->rkey);
	rdma("RDMA WRITE with the rkey of another PD's MR", IBV_WR_RDMA_WRITE, t, mr->lkey,
	     t + 128, other_mr->rkey);
	rdma("RDMA READ from the page before the target MR", IBV_WR_RDMA_READ, t + 256,
	     mr->lkey, t - PAGE, mr->rkey);
	good_write();

	check(!ibv_dereg_mr(other_mr) && !ibv_dereg_mr(mr), "dereg_mr");
	check(!ibv_dealloc_pd(other_pd), "dealloc_pd");
	lb_close(&lb);
	printf("TRESPASS-OK\n");
	return 0;
}
