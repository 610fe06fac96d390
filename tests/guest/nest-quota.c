// SPDX-License-Identifier: MIT
/*
 * guest/nest-quota DEV MAX_OBJECTS MAX_PINNED GID_INDEX: run as a nested guest by
 * tests/device/guest-nest.sh, on a device whose vbusd gives it MAX_OBJECTS handles and
 * MAX_PINNED registered bytes (narrower than that vbusd's own attachment). Asks for more:
 * QPs past the handle quota fail with EDQUOT, a registration past the pinned bytes with
 * ENOMEM, an AH naming another source GID index with EPERM; and what it holds already
 * keeps working (a QP created before is queried, a buffer registered before is deregistered).
 *
 * NEST_QUOTA_HOLD=FILE (tests/device/guest-quota.sh): after the two refusals (EDQUOT,
 * ENOMEM) print "holding", wait until FILE exists (at most 120 s), then tear down and exit:
 * the script reads `vbusctl guest show` while the guest lives. The rest is skipped (on the
 * kernel backend the rings' pages count against the same max-pinned).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <infiniband/verbs.h>

#define fail(...) do { printf("FAIL line %d: ", __LINE__); printf(__VA_ARGS__); printf("\n"); \
			exit(1); } while (0)
#define check(c, ...) do { if (!(c)) fail(__VA_ARGS__); } while (0)

int main(int argc, char **argv)
{
	struct ibv_qp_init_attr qa = { .qp_type = IBV_QPT_RC,
		.cap = { .max_send_wr = 4, .max_recv_wr = 4, .max_send_sge = 1, .max_recv_sge = 1 } };
	struct ibv_qp *qps[64];
	struct ibv_device **list;
	struct ibv_context *ctx = NULL;
	struct ibv_qp_attr attr;
	struct ibv_qp_init_attr init;
	struct ibv_mr *mr, *mr2;
	struct ibv_ah_attr ah = { .is_global = 1, .port_num = 1 };
	unsigned long max_obj, max_pinned;
	const char *hold = getenv("NEST_QUOTA_HOLD");
	int n, nqp = 0, gid;
	char *buf;
	struct ibv_pd *pd;
	struct ibv_cq *cq;

	check(argc == 5, "usage: nest-quota DEV MAX_OBJECTS MAX_PINNED GID_INDEX");
	max_obj = strtoul(argv[2], NULL, 0);
	max_pinned = strtoul(argv[3], NULL, 0);
	gid = atoi(argv[4]);
	check(max_obj < 60, "MAX_OBJECTS %lu: this program allows fewer than 60", max_obj);
	list = ibv_get_device_list(&n);
	for (int i = 0; list && i < n; i++)
		if (!strcmp(ibv_get_device_name(list[i]), argv[1]))
			ctx = ibv_open_device(list[i]);
	check(ctx, "cannot open %s", argv[1]);
	check((pd = ibv_alloc_pd(ctx)), "alloc_pd: %s", strerror(errno));
	check((cq = ibv_create_cq(ctx, 16, NULL, NULL, 0)), "create_cq: %s", strerror(errno));
	qa.send_cq = qa.recv_cq = cq;

	/* QPs until the handle quota refuses one: PD and CQ hold two handles already. */
	for (;;) {
		check(nqp < 60, "%d QPs created: no quota of %lu objects", nqp, max_obj);
		qps[nqp] = ibv_create_qp(pd, &qa);
		if (!qps[nqp])
			break;
		nqp++;
	}
	check(errno == EDQUOT, "QP %d refused with %s, want EDQUOT", nqp + 1, strerror(errno));
	check((unsigned long)nqp + 2 == max_obj, "%d QPs + PD + CQ before the refusal, quota %lu",
	      nqp, max_obj);
	printf("ok   QP %d refused: %s (quota %lu objects, PD, CQ and %d QPs held)\n", nqp + 1,
	       strerror(errno), max_obj, nqp);
	check(!ibv_query_qp(qps[0], &attr, IBV_QP_STATE, &init), "query_qp after: %s",
	      strerror(errno));
	check(attr.qp_state == IBV_QPS_RESET, "QP state %d after the refusal", attr.qp_state);
	printf("ok   the first QP still answers (state RESET)\n");
	/* Free one QP for the MRs below. */
	check(!ibv_destroy_qp(qps[--nqp]), "destroy_qp: %s", strerror(errno));
	check(!ibv_destroy_qp(qps[--nqp]), "destroy_qp: %s", strerror(errno));

	/* Pinned bytes: half fits, half plus a page more does not. */
	buf = malloc(max_pinned + (1ul << 20));
	check(buf, "malloc");
	memset(buf, 0x5a, max_pinned + (1ul << 20));
	check((mr = ibv_reg_mr(pd, buf, max_pinned / 2, IBV_ACCESS_LOCAL_WRITE)),
	      "reg_mr of half the quota: %s", strerror(errno));
	mr2 = ibv_reg_mr(pd, buf + max_pinned / 2, max_pinned / 2 + 4096, IBV_ACCESS_LOCAL_WRITE);
	check(!mr2, "reg_mr past %lu pinned bytes succeeded", max_pinned);
	check(errno == ENOMEM, "reg_mr past the quota: %s, want ENOMEM", strerror(errno));
	printf("ok   reg_mr of %lu more bytes refused: %s (quota %lu bytes, %lu held)\n",
	       max_pinned / 2 + 4096, strerror(errno), max_pinned, max_pinned / 2);
	check(buf[0] == 0x5a && buf[max_pinned] == 0x5a, "the buffer changed");
	if (hold) {
		printf("holding\n");
		fflush(stdout);
		for (int i = 0; i < 120 * 20 && access(hold, F_OK); i++)
			usleep(50000);
		check(!ibv_dereg_mr(mr), "dereg_mr after: %s", strerror(errno));
		goto out;
	}
	check(!ibv_dereg_mr(mr), "dereg_mr after: %s", strerror(errno));
	check((mr = ibv_reg_mr(pd, buf, max_pinned, IBV_ACCESS_LOCAL_WRITE)),
	      "reg_mr of the whole quota once the half is back: %s", strerror(errno));
	check(!ibv_dereg_mr(mr), "dereg_mr: %s", strerror(errno));
	printf("ok   the whole quota registers once the half is freed\n");

	/* Another source GID index than the bus allows. */
	ah.grh.sgid_index = (uint8_t)(gid + 1);
	ah.grh.hop_limit = 1;
	ah.grh.dgid.raw[10] = ah.grh.dgid.raw[11] = 0xff;
	ah.grh.dgid.raw[12] = 10;
	ah.grh.dgid.raw[15] = 1;
	check(!ibv_create_ah(pd, &ah), "AH with source GID index %d created", gid + 1);
	check(errno == EPERM, "AH with GID index %d: %s, want EPERM", gid + 1, strerror(errno));
	printf("ok   AH with source GID index %d refused: %s\n", gid + 1, strerror(errno));

out:
	while (nqp)
		check(!ibv_destroy_qp(qps[--nqp]), "destroy_qp: %s", strerror(errno));
	check(!ibv_destroy_cq(cq) && !ibv_dealloc_pd(pd), "teardown: %s", strerror(errno));
	ibv_close_device(ctx);
	ibv_free_device_list(list);
	free(buf);
	return 0;
}
