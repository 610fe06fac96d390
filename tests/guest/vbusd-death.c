// SPDX-License-Identifier: MIT
/*
 * guest/vbusd-death: a guest's view of vbusd dying under it (tests/device/guest-vbusd-death.sh).
 *
 *   vbusd-death traffic DEV GID_INDEX   RC WRITEs between two QPs of its own until
 *                                       IBV_EVENT_DEVICE_FATAL, then its next verbs
 *   vbusd-death blocked DEV GID_INDEX   blocked in ibv_get_cq_event on an armed CQ when vbusd
 *                                       dies: the call must return (EIO), as on a device
 *                                       whose contexts are disassociated
 *   vbusd-death calls DEV GID_INDEX     control calls in a loop (ibv_reg_mr and ibv_dereg_mr
 *                                       of 1 MiB, the slow ones) when vbusd dies, so that
 *                                       it dies during one: the call must return (EIO)
 *   vbusd-death short DEV GID_INDEX     1000 WRITEs, then exit 0 (a restarted vbusd serves)
 *
 * Prints "ready" once traffic flows, "fatal_ns: N" (CLOCK_REALTIME when the guest learnt
 * of the death) and "after: ..." (what its next verbs returned: the script compares these
 * lines between guests and backends). Then it keeps its objects open until killed (at
 * most 120 s, scaled), so that the script can check that vbusd's death released the real
 * objects without the guests' help.
 */
#include <poll.h>
#include <stdbool.h>
#include <unistd.h>
#include "loopback.h"

#define MSG 4096

static uint64_t realtime_ns(void)
{
	struct timespec t;

	clock_gettime(CLOCK_REALTIME, &t);
	return (uint64_t)t.tv_sec * 1000000000u + (uint64_t)t.tv_nsec;
}

/* The next async event if one is queued; DEVICE_FATAL returns true. */
static bool fatal_seen(struct ibv_context *ctx, int wait_ms)
{
	struct pollfd p = { .fd = ctx->async_fd, .events = POLLIN };
	struct ibv_async_event ev;
	bool fatal;

	if (poll(&p, 1, wait_ms) != 1)
		return false;
	check(!ibv_get_async_event(ctx, &ev), "ibv_get_async_event: %s", strerror(errno));
	fatal = ev.event_type == IBV_EVENT_DEVICE_FATAL;
	if (!fatal)
		printf("event: %s\n", ibv_event_type_str(ev.event_type));
	ibv_ack_async_event(&ev);
	return fatal;
}

static const char *err_name(int e)
{
	switch (e) {
	case 0: return "0";
	case EIO: return "EIO";
	case ENODEV: return "ENODEV";
	case ENOTCONN: return "ENOTCONN";
	case EPIPE: return "EPIPE";
	case ECONNRESET: return "ECONNRESET";
	case EINVAL: return "EINVAL";
	default: return strerror(e);
	}
}

/* The verbs a program calls next: posting, a control verb, polling. */
static void after(struct lb *l, struct ibv_qp *qp, struct ibv_cq *cq, struct ibv_mr *mr,
		  uint8_t *buf)
{
	struct ibv_sge sge = { .addr = (uintptr_t)buf, .length = 8, .lkey = mr->lkey };
	struct ibv_send_wr wr = { .sg_list = &sge, .num_sge = 1, .opcode = IBV_WR_RDMA_WRITE,
				  .send_flags = IBV_SEND_SIGNALED }, *bad;
	struct ibv_pd *pd;
	struct ibv_wc wc;
	int post, pd_err, n;

	wr.wr.rdma.remote_addr = (uintptr_t)buf + MSG;
	wr.wr.rdma.rkey = mr->rkey;
	post = ibv_post_send(qp, &wr, &bad);
	errno = 0;
	pd = ibv_alloc_pd(l->ctx);
	pd_err = pd ? 0 : errno;
	n = ibv_poll_cq(cq, 1, &wc);
	printf("after: post_send %s, alloc_pd %s, poll_cq %s\n", err_name(post),
	       pd ? "succeeds" : err_name(pd_err), n <= 0 ? "returns at once, empty" : "a CQE");
}

static void hold(void)
{
	double limit = vt_secs(120);

	printf("holding\n");
	fflush(stdout);
	for (int i = 0; i < (int)limit; i++)
		sleep(1);
}

int main(int argc, char **argv)
{
	struct ibv_comp_channel *ch = NULL;
	struct ibv_qp *a, *b;
	struct ibv_cq *cq;
	struct ibv_mr *mr;
	struct lb l;
	uint8_t *buf;
	uint64_t done = 0, posted = 0;
	bool fatal = false, ready = false;
	const char *mode;

	if (argc != 4) {
		fprintf(stderr, "usage: vbusd-death traffic|blocked|calls|short DEV GID_INDEX\n");
		return 2;
	}
	mode = argv[1];
	lb_open(&l, argv[2], atoi(argv[3]));
	if (!strcmp(mode, "blocked"))
		check((ch = ibv_create_comp_channel(l.ctx)), "comp channel");
	cq = ibv_create_cq(l.ctx, 64, NULL, ch, 0);
	check(cq, "create_cq: %s", strerror(errno));
	buf = calloc(1, 2 * MSG);
	mr = ibv_reg_mr(l.pd, buf, 2 * MSG, IBV_ACCESS_LOCAL_WRITE | IBV_ACCESS_REMOTE_WRITE);
	check(buf && mr, "reg_mr: %s", strerror(errno));
	a = lb_qp(&l, cq, cq, NULL);
	b = lb_qp(&l, cq, cq, NULL);
	lb_connect(&l, a, b->qp_num);
	lb_connect(&l, b, a->qp_num);

	if (!strcmp(mode, "blocked")) {
		struct ibv_cq *ev_cq;
		void *ev_ctx;
		int r;

		check(!ibv_req_notify_cq(cq, 0), "req_notify_cq");
		printf("ready\n");
		fflush(stdout);
		r = ibv_get_cq_event(ch, &ev_cq, &ev_ctx);
		printf("fatal_ns: %llu\n", (unsigned long long)realtime_ns());
		check(r == -1, "ibv_get_cq_event returned %d with vbusd gone", r);
		printf("after: get_cq_event %s\n", err_name(errno));
		fflush(stdout);
		hold();
		return 0;
	}
	if (!strcmp(mode, "calls")) {
		size_t len = 1 << 20;
		uint8_t *big = malloc(len);
		struct ibv_mr *m;
		unsigned long k;

		check(big, "malloc");
		memset(big, 1, len);
		for (k = 0;; k++) {
			m = ibv_reg_mr(l.pd, big, len, IBV_ACCESS_LOCAL_WRITE);
			if (!m)
				break;
			/* As on a disassociated device, dereg succeeds once the device is gone. */
			check(!ibv_dereg_mr(m), "dereg_mr: %s", strerror(errno));
			if (k == 10) {
				printf("ready\n");
				fflush(stdout);
			}
		}
		printf("fatal_ns: %llu\n", (unsigned long long)realtime_ns());
		printf("calls: %lu pairs before the death\n", k);
		printf("after: reg_mr %s\n", err_name(errno));
		fflush(stdout);
		hold();
		return 0;
	}
	/* Two WRITEs in flight at most; a third of the completions are checked for errors. */
	while (!fatal) {
		struct ibv_sge sge = { .addr = (uintptr_t)buf, .length = MSG, .lkey = mr->lkey };
		struct ibv_send_wr wr = { .wr_id = posted, .sg_list = &sge, .num_sge = 1,
					  .opcode = IBV_WR_RDMA_WRITE,
					  .send_flags = IBV_SEND_SIGNALED }, *bad;
		struct ibv_wc wc[4];
		int n;

		wr.wr.rdma.remote_addr = (uintptr_t)buf + MSG;
		wr.wr.rdma.rkey = mr->rkey;
		if (posted - done < 2) {
			memset(buf, (int)(posted & 0xff), 8);
			if (!ibv_post_send(a, &wr, &bad))
				posted++;
		}
		n = ibv_poll_cq(cq, 4, wc);
		for (int i = 0; i < n; i++)
			if (wc[i].status != IBV_WC_SUCCESS) {
				printf("completion %llu: %s\n", (unsigned long long)wc[i].wr_id,
				       ibv_wc_status_str(wc[i].status));
				break;
			}
		done += n > 0 ? (uint64_t)n : 0;
		if (!ready && done >= 100) {
			ready = true;
			printf("ready\n");
			fflush(stdout);
		}
		if (!strcmp(mode, "short") && done >= 1000)
			break;
		fatal = fatal_seen(l.ctx, 0);
	}
	if (!fatal) {
		printf("ok   %llu WRITEs\n", (unsigned long long)done);
		ibv_destroy_qp(a);
		ibv_destroy_qp(b);
		ibv_dereg_mr(mr);
		ibv_destroy_cq(cq);
		lb_close(&l);
		return 0;
	}
	printf("fatal_ns: %llu\n", (unsigned long long)realtime_ns());
	printf("completed: %llu WRITEs\n", (unsigned long long)done);
	after(&l, a, cq, mr, buf);
	fflush(stdout);
	hold();
	return 0;
}
