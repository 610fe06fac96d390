// SPDX-License-Identifier: MIT
/*
 * guest/fork: fork() with registered memory, run by tests/device/guest-parity.sh natively
 * and as a guest. libibverbs documents that after ibv_fork_init() (or on a kernel where it
 * is unneeded) a parent may fork while it has registered memory and keep using it; the
 * child must not use the parent's verbs objects, and does not see registered memory
 * change under it.
 *
 *   fork DEVICE GID_INDEX
 *
 * Checked: ibv_fork_init succeeds before any resource exists; the parent RDMA-writes
 * between two registered buffers, forks a child that writes its own copy of the heap and
 * of a non-registered buffer and exits; the parent's registered memory is untouched by the
 * child and the parent's data path keeps working, byte for byte, after the child is gone.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
#include <infiniband/verbs.h>
#include "loopback.h"

#define LEN	8192

static struct lb lb;
static struct ibv_cq *cq;
static struct ibv_qp *a, *b;
static uint8_t *from, *to;
static struct ibv_mr *from_mr, *to_mr;

static void write_round(uint8_t seed, uint64_t id)
{
	struct ibv_sge s = { .addr = (uintptr_t)from, .length = LEN, .lkey = from_mr->lkey };
	struct ibv_send_wr wr = { .wr_id = id, .sg_list = &s, .num_sge = 1,
		.opcode = IBV_WR_RDMA_WRITE, .send_flags = IBV_SEND_SIGNALED,
		.wr.rdma = { .remote_addr = (uintptr_t)to, .rkey = to_mr->rkey } }, *bad;
	struct ibv_wc wc;

	for (int k = 0; k < LEN; k++)
		from[k] = (uint8_t)(seed + k * 7);
	check(!ibv_post_send(a, &wr, &bad), "post_send: %s", strerror(errno));
	lb_poll(cq, &wc, 1);
	check(wc.status == IBV_WC_SUCCESS && wc.wr_id == id, "write %llu: %s",
	      (unsigned long long)id, ibv_wc_status_str(wc.status));
	for (int k = 0; k < LEN; k++)
		check(to[k] == (uint8_t)(seed + k * 7), "round %llu byte %d",
		      (unsigned long long)id, k);
}

int main(int argc, char **argv)
{
	int acc = IBV_ACCESS_LOCAL_WRITE | IBV_ACCESS_REMOTE_WRITE;
	uint8_t *plain;
	int st, r;
	pid_t pid;

	if (argc != 3) {
		fprintf(stderr, "usage: fork DEVICE GID_INDEX\n");
		return 2;
	}
	r = ibv_fork_init();
	check(!r, "ibv_fork_init: %s", strerror(r));
	ok("ibv_fork_init (fork support: %s)",
	   ibv_is_fork_initialized() == IBV_FORK_UNNEEDED ? "unneeded, the kernel copes" :
	   ibv_is_fork_initialized() == IBV_FORK_ENABLED ? "enabled" : "disabled");
	lb_open(&lb, argv[1], atoi(argv[2]));
	cq = ibv_create_cq(lb.ctx, 16, NULL, NULL, 0);
	from = aligned_alloc(4096, LEN);
	to = aligned_alloc(4096, LEN);
	plain = malloc(LEN);
	check(cq && from && to && plain, "CQ, buffers");
	from_mr = ibv_reg_mr(lb.pd, from, LEN, acc);
	to_mr = ibv_reg_mr(lb.pd, to, LEN, acc);
	check(from_mr && to_mr, "reg_mr: %s", strerror(errno));
	a = lb_qp(&lb, cq, cq, NULL);
	b = lb_qp(&lb, cq, cq, NULL);
	lb_connect(&lb, a, b->qp_num);
	lb_connect(&lb, b, a->qp_num);
	write_round(1, 1);
	memset(plain, 0x5a, LEN);
	ok("RDMA WRITE between registered buffers before fork");

	fflush(stdout);
	pid = fork();
	check(pid >= 0, "fork: %s", strerror(errno));
	if (!pid) {	/* the child: its own memory only, no verbs */
		memset(plain, 0xa5, LEN);
		_exit(plain[LEN - 1] == 0xa5 ? 0 : 3);
	}
	check(waitpid(pid, &st, 0) == pid, "waitpid");
	check(WIFEXITED(st) && !WEXITSTATUS(st), "the child failed (status %#x)", st);
	check(plain[0] == 0x5a, "the child's write reached the parent's heap");
	for (int k = 0; k < LEN; k++)
		check(to[k] == (uint8_t)(1 + k * 7), "registered memory changed across fork");
	ok("a forked child ran and exited; the parent's memory is its own");
	for (int r2 = 0; r2 < 8; r2++)
		write_round((uint8_t)(r2 * 3 + 2), (uint64_t)(2 + r2));
	ok("8 RDMA WRITEs after fork, every byte checked");
	check(!ibv_destroy_qp(a) && !ibv_destroy_qp(b) && !ibv_dereg_mr(from_mr) &&
	      !ibv_dereg_mr(to_mr) && !ibv_destroy_cq(cq), "teardown");
	lb_close(&lb);
	printf("fork: all checks passed on %s\n", argv[1]);
	return 0;
}
