// SPDX-License-Identifier: MIT
/*
 * setup-cost: what the control path costs. Times QP bring-up (create, then INIT, RTR,
 * RTS) for a batch of QPs, and memory registration at a few sizes, with plain libibverbs
 * calls: run it natively, or unchanged under vbus-run to measure the guest path.
 *
 *   setup-cost [-d DEV] [-x GID_INDEX] [--qps N[,N...]] [--mr SIZE[,SIZE...]]
 *              [--reps N] [--json]
 * Sizes take K, M, G suffixes. Defaults: the first device, --qps 1,256,
 * --mr 4K,1M,256M, --reps 5 (MR: the median of the repetitions is reported). A size that
 * cannot be registered is reported as such (an "error" row) and the rest still measured;
 * the exit status is then 1.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <infiniband/verbs.h>

static double now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e6 + ts.tv_nsec / 1e3;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

static unsigned long long parse_size(const char *s)
{
	char *end;
	unsigned long long v = strtoull(s, &end, 10);

	switch (*end) {
	case 'k': case 'K': v <<= 10; end++; break;
	case 'm': case 'M': v <<= 20; end++; break;
	case 'g': case 'G': v <<= 30; end++; break;
	}
	return (*end && *end != ',') || !v ? 0 : v;
}

/* Parse "a,b,c" into up to max values; returns the count, 0 on a bad list. */
static int parse_list(const char *s, unsigned long long *v, int max)
{
	int n = 0;

	while (*s && n < max) {
		if (!(v[n++] = parse_size(s)))
			return 0;
		s = strchr(s, ',');
		if (!s)
			break;
		s++;
	}
	return n;
}

static int bring_up(struct ibv_pd *pd, struct ibv_cq *cq, int gid_index, struct ibv_qp **qp)
{
	struct ibv_qp_init_attr ia = {
		.send_cq = cq, .recv_cq = cq, .qp_type = IBV_QPT_RC,
		.cap = { .max_send_wr = 64, .max_recv_wr = 64, .max_send_sge = 1, .max_recv_sge = 1 },
	};
	struct ibv_qp_attr a = { .qp_state = IBV_QPS_INIT, .port_num = 1 };
	union ibv_gid gid;

	*qp = ibv_create_qp(pd, &ia);
	if (!*qp)
		return errno ? errno : EINVAL;
	if (ibv_modify_qp(*qp, &a, IBV_QP_STATE | IBV_QP_PKEY_INDEX | IBV_QP_PORT |
			  IBV_QP_ACCESS_FLAGS))
		return EINVAL;
	if (ibv_query_gid(pd->context, 1, gid_index, &gid))
		return EINVAL;
	memset(&a, 0, sizeof(a));
	a.qp_state = IBV_QPS_RTR;
	a.path_mtu = IBV_MTU_1024;
	a.dest_qp_num = (*qp)->qp_num;	/* itself: the transitions are what is timed */
	a.max_dest_rd_atomic = 1;
	a.min_rnr_timer = 12;
	a.ah_attr.is_global = 1;
	a.ah_attr.port_num = 1;
	a.ah_attr.grh.dgid = gid;
	a.ah_attr.grh.sgid_index = (uint8_t)gid_index;
	a.ah_attr.grh.hop_limit = 1;
	if (ibv_modify_qp(*qp, &a, IBV_QP_STATE | IBV_QP_AV | IBV_QP_PATH_MTU |
			  IBV_QP_DEST_QPN | IBV_QP_RQ_PSN | IBV_QP_MAX_DEST_RD_ATOMIC |
			  IBV_QP_MIN_RNR_TIMER))
		return EINVAL;
	memset(&a, 0, sizeof(a));
	a.qp_state = IBV_QPS_RTS;
	a.timeout = 14;
	a.retry_cnt = 7;
	a.rnr_retry = 7;
	a.max_rd_atomic = 1;
	return ibv_modify_qp(*qp, &a, IBV_QP_STATE | IBV_QP_TIMEOUT | IBV_QP_RETRY_CNT |
			     IBV_QP_RNR_RETRY | IBV_QP_SQ_PSN | IBV_QP_MAX_QP_RD_ATOMIC);
}

int main(int argc, char **argv)
{
	const char *devname = NULL;
	unsigned long long qps[8] = { 1, 256 }, mrs[8] = { 4096, 1 << 20, 256ull << 20 };
	int nqps = 2, nmrs = 3, reps = 5, json = 0, gid_index = 0, n, first = 1, failed = 0;
	struct ibv_device **list;
	struct ibv_context *ctx = NULL;
	struct ibv_pd *pd;
	struct ibv_cq *cq;

	for (int i = 1; i < argc; i++) {
		const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;

		if (!strcmp(a, "-d") && v) { devname = v; i++; }
		else if (!strcmp(a, "-x") && v) { gid_index = atoi(v); i++; }
		else if (!strcmp(a, "--qps") && v) { nqps = parse_list(v, qps, 8); i++; }
		else if (!strcmp(a, "--mr") && v) { nmrs = parse_list(v, mrs, 8); i++; }
		else if (!strcmp(a, "--reps") && v) { reps = atoi(v); i++; }
		else if (!strcmp(a, "--json")) json = 1;
		else if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
			printf("usage: setup-cost [-d DEV] [-x GID_INDEX] [--qps N,..] [--mr SIZE,..] "
			       "[--reps N] [--json]\nTimes QP bring-up (create+INIT+RTR+RTS) and "
			       "ibv_reg_mr/ibv_dereg_mr.\n");
			return 0;
		} else {
			fprintf(stderr, "setup-cost: bad argument '%s' (see --help)\n", a);
			return 2;
		}
	}
	if (!nqps || !nmrs || reps < 1 || reps > 1000) {
		fprintf(stderr, "setup-cost: bad --qps, --mr or --reps\n");
		return 2;
	}
	list = ibv_get_device_list(&n);
	for (int i = 0; list && i < n && !ctx; i++)
		if (!devname || !strcmp(ibv_get_device_name(list[i]), devname))
			ctx = ibv_open_device(list[i]);
	if (!ctx) {
		fprintf(stderr, "setup-cost: no device %s\n", devname ? devname : "at all");
		return 1;
	}
	pd = ibv_alloc_pd(ctx);
	cq = pd ? ibv_create_cq(ctx, 4096, NULL, NULL, 0) : NULL;
	if (!cq) {
		fprintf(stderr, "setup-cost: pd/cq: %s\n", strerror(errno));
		return 1;
	}
	if (json)
		printf("[");
	for (int k = 0; k < nqps; k++) {
		unsigned long long q = qps[k];
		struct ibv_qp **v = calloc(q, sizeof(*v));
		double t0 = now_us(), t;
		int err = 0;

		for (unsigned long long i = 0; i < q && !err; i++)
			err = bring_up(pd, cq, gid_index, &v[i]);
		t = now_us() - t0;
		for (unsigned long long i = 0; i < q; i++)
			if (v[i])
				ibv_destroy_qp(v[i]);
		free(v);
		if (err) {
			fprintf(stderr, "setup-cost: QP bring-up: %s\n", strerror(err));
			return 1;
		}
		if (json)
			printf("%s{\"case\":\"qp_bringup\",\"qps\":%llu,\"total_us\":%.1f,\"per_qp_us\":%.2f}",
			       first ? "" : ",", q, t, t / (double)q);
		else
			printf("QP bring-up   %6llu QPs  %10.1f us total  %8.2f us per QP\n", q, t, t / (double)q);
		first = 0;
	}
	for (int k = 0; k < nmrs; k++) {
		size_t len = mrs[k];
		char *buf = aligned_alloc(4096, (len + 4095) / 4096 * 4096);
		int mr_err = 0;
		double *reg = calloc((size_t)reps, sizeof(double)), *dereg = calloc((size_t)reps, sizeof(double));

		if (!buf || !reg || !dereg) {
			fprintf(stderr, "setup-cost: cannot allocate %zu bytes\n", len);
			return 1;
		}
		memset(buf, 1, len);
		for (int r = 0; r < reps; r++) {
			double t0 = now_us();
			struct ibv_mr *mr = ibv_reg_mr(pd, buf, len, IBV_ACCESS_LOCAL_WRITE |
						      IBV_ACCESS_REMOTE_WRITE | IBV_ACCESS_REMOTE_READ);

			reg[r] = now_us() - t0;
			if (!mr) {
				/* Said, in the output too, and the other sizes still measured. */
				mr_err = errno;
				fprintf(stderr, "setup-cost: ibv_reg_mr %zu: %s\n", len, strerror(mr_err));
				break;
			}
			t0 = now_us();
			ibv_dereg_mr(mr);
			dereg[r] = now_us() - t0;
		}
		if (mr_err) {
			if (json)
				printf("%s{\"case\":\"reg_mr\",\"size\":%zu,\"error\":\"%s\"}",
				       first ? "" : ",", len, strerror(mr_err));
			else
				printf("reg_mr   %12zu B  failed: %s\n", len, strerror(mr_err));
			first = 0;
			failed = 1;
			free(buf);
			free(reg);
			free(dereg);
			continue;
		}
		qsort(reg, (size_t)reps, sizeof(double), cmp_double);
		qsort(dereg, (size_t)reps, sizeof(double), cmp_double);
		if (json)
			printf("%s{\"case\":\"reg_mr\",\"size\":%zu,\"reg_us\":%.1f,\"dereg_us\":%.1f,"
			       "\"reg_min_us\":%.1f,\"reg_max_us\":%.1f,\"reps\":%d}",
			       first ? "" : ",", len, reg[reps / 2], dereg[reps / 2], reg[0],
			       reg[reps - 1], reps);
		else
			printf("reg_mr   %12zu B  %10.1f us (min %.1f, max %.1f)  dereg %8.1f us\n",
			       len, reg[reps / 2], reg[0], reg[reps - 1], dereg[reps / 2]);
		first = 0;
		free(buf);
		free(reg);
		free(dereg);
	}
	if (json)
		printf("]\n");
	ibv_destroy_cq(cq);
	ibv_dealloc_pd(pd);
	ibv_close_device(ctx);
	ibv_free_device_list(list);
	return failed;
}
