// SPDX-License-Identifier: MIT
/*
 * churn: a guest that does a bit of everything, over and over, for tests/device/guest-churn.sh
 * to kill with SIGKILL at random points. Each cycle opens the device, allocates a PD,
 * registers an MR of a random size (1 page to 1 MiB), creates a CQ and two RC QPs connected
 * to each other on the one device, keeps RDMA WRITEs and SENDs in flight (receives
 * posted), checks the data of the last write, and tears it all down. A kill lands in a
 * control call, in ibv_reg_mr, while posting or with traffic in flight.
 *
 *   churn DEVICE GID_INDEX [CYCLES [open]]   CYCLES 0 (default): until killed; prints "cycle N"
 * "open": each cycle only opens the device (context and PD) and closes it, so that a kill
 * lands in device open or close (where vbusd's relay thread starts and stops).
 * Exit 0 after CYCLES cycles, 1 on any failure (with a FAIL line).
 */
#include <stdint.h>
#include <unistd.h>
#include "loopback.h"

#define DEPTH	16

static void cycle(const char *dev, int gid_index, unsigned seed)
{
	struct lb l;
	struct ibv_cq *cq;
	struct ibv_qp *a, *b;
	struct ibv_mr *mr;
	struct ibv_wc wc[DEPTH];
	size_t len = (size_t)4096 << (seed % 9), half = len / 2;
	uint8_t *buf;
	int outstanding = 0, rounds = 4 + (int)(seed % 8);

	printf("phase open\n");	/* the test counts where each kill landed */
	lb_open(&l, dev, gid_index);
	buf = aligned_alloc(4096, len);
	check(buf, "aligned_alloc");
	memset(buf, (int)(seed & 0xff), half);
	memset(buf + half, 0, half);
	printf("phase reg_mr\n");
	mr = ibv_reg_mr(l.pd, buf, len, IBV_ACCESS_LOCAL_WRITE | IBV_ACCESS_REMOTE_WRITE);
	check(mr, "ibv_reg_mr %zu: %s", len, strerror(errno));
	printf("phase create\n");
	cq = ibv_create_cq(l.ctx, 4 * DEPTH, NULL, NULL, 0);
	check(cq, "ibv_create_cq: %s", strerror(errno));
	a = lb_qp(&l, cq, cq, NULL);
	b = lb_qp(&l, cq, cq, NULL);
	lb_connect(&l, a, b->qp_num);
	lb_connect(&l, b, a->qp_num);
	printf("phase traffic\n");
	for (int r = 0; r < rounds; r++) {
		/* A receive on b for each send of a; writes from a's first half to its second. */
		for (int k = 0; k < DEPTH / 2; k++) {
			struct ibv_sge rs = { (uintptr_t)(buf + half), 64, mr->lkey };
			struct ibv_recv_wr rw = { .wr_id = 1, .sg_list = &rs, .num_sge = 1 }, *rb;
			struct ibv_sge s = { (uintptr_t)buf, (uint32_t)(half < 65536 ? half : 65536),
					     mr->lkey };
			struct ibv_send_wr w = {
				.wr_id = 2, .sg_list = &s, .num_sge = 1,
				.opcode = k & 1 ? IBV_WR_SEND : IBV_WR_RDMA_WRITE,
				.send_flags = IBV_SEND_SIGNALED,
				.wr.rdma = { (uintptr_t)(buf + half), mr->rkey },
			}, *sb;

			if (k & 1) {
				s.length = 64;
				check(!ibv_post_recv(b, &rw, &rb), "post_recv");
				outstanding++;
			}
			check(!ibv_post_send(a, &w, &sb), "post_send");
			outstanding++;
		}
		/* Leave some in flight from one round to the next. */
		while (outstanding > DEPTH / 2) {
			int n = DEPTH / 4;

			lb_poll(cq, wc, n);
			for (int k = 0; k < n; k++)
				check(wc[k].status == IBV_WC_SUCCESS, "completion status %d",
				      wc[k].status);
			outstanding -= n;
		}
	}
	lb_poll(cq, wc, outstanding);
	printf("phase teardown\n");
	check(buf[half + half / 2] == (uint8_t)(seed & 0xff) || half / 2 >= 65536,
	      "the written data is not there");
	check(!ibv_destroy_qp(a) && !ibv_destroy_qp(b), "destroy_qp");
	check(!ibv_destroy_cq(cq), "destroy_cq");
	check(!ibv_dereg_mr(mr), "dereg_mr");
	free(buf);
	lb_close(&l);
}

int main(int argc, char **argv)
{
	unsigned long cycles = argc > 3 ? strtoul(argv[3], NULL, 0) : 0;
	unsigned seed = (unsigned)getpid();
	int open_only = argc > 4 && !strcmp(argv[4], "open");

	if (argc < 3 || (argc > 4 && !open_only)) {
		fprintf(stderr, "usage: churn DEVICE GID_INDEX [CYCLES [open]]\n");
		return 2;
	}
	setvbuf(stdout, NULL, _IOLBF, 0);
	for (unsigned long n = 1; !cycles || n <= cycles; n++) {
		if (open_only) {
			struct lb l;

			printf("phase open\n");
			lb_open(&l, argv[1], atoi(argv[2]));
			lb_close(&l);
		} else {
			cycle(argv[1], atoi(argv[2]), seed);
		}
		seed = seed * 1103515245u + 12345u;
		printf("cycle %lu\n", n);
	}
	return 0;
}
