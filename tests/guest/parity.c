// SPDX-License-Identifier: MIT
/*
 * What a program sees of the device and what the verbs that fail natively answer (issue 12):
 * run natively on rxe0 first (the specification), then as a guest on vrdma0; the script
 * (tests/device/guest-parity.sh) compares the "outcome:" lines of both runs, and checks the
 * "limit:" lines (a guest's limit is the device's, or the bus's where that is lower, never 0).
 *   attrs    vendor IDs, capability flags (64-bit and 32-bit agree), completion vectors (a CQ
 *            on the last one works), port counts (phys_port_cnt_ex = phys_port_cnt)
 *   gid      the GID table: ibv_query_gid_table with room for one entry fewer than the
 *            valid ones is EINVAL, with room for all gives each entry (its netdev's
 *            ndev_ifindex too) as query_gid_ex does
 *   rereg    ibv_rereg_mr with bad input and with each change: the return and errno
 *   import   ibv_import_device on the context's cmd_fd, ibv_import_pd, ibv_import_mr
 *   solicited  a receive CQ armed for solicited completions only: an event for a SEND with
 *            IBV_SEND_SOLICITED, none for one without (compared but on the relay, which
 *            wakes for any receive: docs/verbs.md); the sender's CQ armed so too: no event
 *            for the sends' completions (rxe never fires that for a send's)
 *   ah-gone  a UD QP sending to itself, each SEND's AH destroyed right after its post: all
 *            sends and receives complete with success
 *   contexts many contexts open at once with a PD, CQ and MR each, then closed; again (each
 *            round must leave no more descriptors than one context opened and freed);
 *            the descriptors each context after the first holds
 *   refresh  (only when PARITY_ONLY names it) prints "ready", waits for the script to add
 *            the address PARITY_GID_ADDR to the device's netdev, then for
 *            IBV_EVENT_GID_CHANGE, until the GID table holds that address
 * Usage: parity DEVICE GID_INDEX
 */
#include <arpa/inet.h>
#include <dirent.h>
#include <fcntl.h>
#include <poll.h>
#include <stdbool.h>
#include <stdint.h>
#include <unistd.h>
#include "loopback.h"

static struct lb lb;

#define outcome(...) do { printf("outcome: "); printf(__VA_ARGS__); printf("\n"); } while (0)
#define limit(name, v) printf("limit: %s %llu\n", name, (unsigned long long)(v))

/* The memory-window capability bits: the kernel backend has none on purpose (Linux 6.1 has
 * no memory windows for kernel QPs); compared without them, printed apart. */
#define MW_BITS ((uint64_t)(IBV_DEVICE_MEM_WINDOW | IBV_DEVICE_MEM_WINDOW_TYPE_2A | \
			    IBV_DEVICE_MEM_WINDOW_TYPE_2B))

static void attrs(void)
{
	struct ibv_device_attr_ex x;
	struct ibv_cq *cq;
	int n;

	check(!ibv_query_device_ex(lb.ctx, NULL, &x), "query_device_ex");
	outcome("vendor_id %#x vendor_part_id %#x hw_ver %#x", x.orig_attr.vendor_id,
		x.orig_attr.vendor_part_id, x.orig_attr.hw_ver);
	outcome("vendor_id is non-zero: %s", x.orig_attr.vendor_id ? "yes" : "no");
	outcome("device_cap_flags_ex without MW bits %#llx",
		(unsigned long long)(x.device_cap_flags_ex & ~MW_BITS));
	outcome("device_cap_flags is the low half of device_cap_flags_ex: %s",
		x.orig_attr.device_cap_flags == (uint32_t)x.device_cap_flags_ex ? "yes" : "no");
	printf("info: MW bits %#llx, max_mw %d\n",
	       (unsigned long long)(x.device_cap_flags_ex & MW_BITS), x.orig_attr.max_mw);
	outcome("phys_port_cnt %u phys_port_cnt_ex %u", x.orig_attr.phys_port_cnt,
		x.phys_port_cnt_ex);
	n = lb.ctx->num_comp_vectors;
	outcome("num_comp_vectors %d", n);
	cq = ibv_create_cq(lb.ctx, 4, NULL, NULL, n - 1);
	outcome("a CQ on the last completion vector: %s", cq ? "yes" : strerror(errno));
	if (cq)
		check(!ibv_destroy_cq(cq), "destroy_cq");
	limit("max_qp_wr", x.orig_attr.max_qp_wr);
	limit("max_srq_wr", x.orig_attr.max_srq_wr);
	limit("max_cqe", x.orig_attr.max_cqe);
	limit("max_sge", x.orig_attr.max_sge);
	limit("max_qp", x.orig_attr.max_qp);
	limit("max_cq", x.orig_attr.max_cq);
	limit("max_mr", x.orig_attr.max_mr);
	limit("max_pd", x.orig_attr.max_pd);
	limit("max_srq", x.orig_attr.max_srq);
	limit("max_ah", x.orig_attr.max_ah);
	limit("max_mr_size", x.orig_attr.max_mr_size);
}

static void gid(void)
{
	struct ibv_gid_entry e[64], one;
	struct ibv_port_attr pa;
	ssize_t n, r;

	check(!ibv_query_port(lb.ctx, 1, &pa), "query_port");
	n = ibv_query_gid_table(lb.ctx, e, 64, 0);
	check(n > 0, "query_gid_table: %zd", n);
	outcome("gid table: %zd valid entries (gid_tbl_len %d)", n, pa.gid_tbl_len);
	for (ssize_t k = 0; k < n; k++) {
		char s[40];

		for (int b = 0; b < 16; b++)
			sprintf(s + 2 * b, "%02x", e[k].gid.raw[b]);
		/* ndev_ifindex: the same number natively and in a process guest, which shares
		 * the host's kernel (a VM guest would see 0). */
		outcome("gid %u port %u type %u ndev_ifindex %u %s", e[k].gid_index,
			e[k].port_num, e[k].gid_type, e[k].ndev_ifindex, s);
		check(!ibv_query_gid_ex(lb.ctx, 1, e[k].gid_index, &one, 0), "query_gid_ex %u",
		      e[k].gid_index);
		check(!memcmp(&one.gid, &e[k].gid, 16) && one.gid_type == e[k].gid_type &&
		      one.ndev_ifindex == e[k].ndev_ifindex,
		      "query_gid_ex %u differs from the table", e[k].gid_index);
	}
	errno = 0;
	r = ibv_query_gid_table(lb.ctx, e, (size_t)n - 1, 0);
	outcome("query_gid_table with room for %zd of %zd: %zd, errno %s", n - 1, n, r,
		strerrorname_np(errno) ? strerrorname_np(errno) : "0");
	errno = 0;
	r = ibv_query_gid_ex(lb.ctx, 1, (uint32_t)pa.gid_tbl_len, &one, 0);
	outcome("query_gid_ex past the table: %zd, errno %s", r,
		strerrorname_np(errno) ? strerrorname_np(errno) : "0");
	errno = 0;
	r = ibv_query_gid(lb.ctx, 1, pa.gid_tbl_len, &one.gid);
	outcome("query_gid past the table: %zd", r);
	errno = 0;
	r = ibv_query_gid_ex(lb.ctx, 1, (uint32_t)pa.gid_tbl_len - 1, &one, 0);
	outcome("query_gid_ex of the last (empty) entry: %zd, errno %s", r,
		strerrorname_np(errno) ? strerrorname_np(errno) : "0");
}

static const char *en(void)
{
	return errno ? strerrorname_np(errno) : "0";
}

static void rereg(void)
{
	static const struct { const char *what; int flags, access; int null_addr; } c[] = {
		{ "unknown flag", 1 << 8, 0, 0 },
		{ "translation without an address", IBV_REREG_MR_CHANGE_TRANSLATION, 0, 1 },
		{ "access without CHANGE_ACCESS", 0, IBV_ACCESS_LOCAL_WRITE, 0 },
		{ "no change", 0, 0, 0 },
		{ "CHANGE_ACCESS", IBV_REREG_MR_CHANGE_ACCESS, IBV_ACCESS_LOCAL_WRITE, 0 },
		{ "CHANGE_PD", IBV_REREG_MR_CHANGE_PD, 0, 0 },
		{ "CHANGE_TRANSLATION", IBV_REREG_MR_CHANGE_TRANSLATION, 0, 0 },
	};
	char *buf = aligned_alloc(4096, 8192);
	struct ibv_mr *mr;

	check(buf, "buffer");
	mr = ibv_reg_mr(lb.pd, buf, 4096, IBV_ACCESS_LOCAL_WRITE | IBV_ACCESS_REMOTE_READ);
	check(mr, "reg_mr: %s", strerror(errno));
	for (size_t i = 0; i < sizeof(c) / sizeof(c[0]); i++) {
		int r;

		errno = 0;
		r = ibv_rereg_mr(mr, c[i].flags, lb.pd, c[i].null_addr ? NULL : buf + 4096,
				 c[i].null_addr || !(c[i].flags & IBV_REREG_MR_CHANGE_TRANSLATION) ?
				 0 : 4096, c[i].access);
		outcome("rereg_mr %s: %d, errno %s", c[i].what, r, en());
	}
	outcome("rereg_mr left the MR as it was: %s",
		mr->addr == buf && mr->length == 4096 && mr->pd == lb.pd ? "yes" : "no");
	check(!ibv_dereg_mr(mr), "dereg_mr after rereg");
	free(buf);
}

static void import(void)
{
	struct ibv_context *c;
	struct ibv_pd *pd;
	struct ibv_mr *mr;
	char *buf = malloc(64);	/* heap: a guest cannot register its stack (verbs-guest.md) */

	check(buf, "buffer");
	errno = 0;
	c = ibv_import_device(lb.ctx->cmd_fd);
	outcome("import_device(cmd_fd): %s, errno %s", c ? "a context" : "NULL", en());
	if (c)
		ibv_close_device(c);
	errno = 0;
	pd = ibv_import_pd(lb.ctx, lb.pd->handle);
	outcome("import_pd: %s, errno %s", pd ? "a PD" : "NULL", en());
	if (pd)
		ibv_unimport_pd(pd);
	mr = ibv_reg_mr(lb.pd, buf, 64, IBV_ACCESS_LOCAL_WRITE);
	check(mr, "reg_mr: %s", strerror(errno));
	errno = 0;
	struct ibv_mr *imr = ibv_import_mr(lb.pd, mr->handle);

	outcome("import_mr: %s, errno %s", imr ? "an MR" : "NULL", en());
	if (imr)
		ibv_unimport_mr(imr);
	check(!ibv_dereg_mr(mr), "dereg_mr");
	free(buf);
}

/* The process's open descriptors. */
static int fds(void)
{
	DIR *d = opendir("/proc/self/fd");
	int k = 0;

	check(d, "opendir /proc/self/fd");
	while (readdir(d))
		k++;
	closedir(d);
	return k;
}

/* N contexts open at once, each with a PD, a CQ and a registered buffer (a program that
 * leaves freeing to its end), then all closed; then the same again: nothing held by the
 * first round may count against the second. The descriptors each context after the first
 * holds (what is opened once per process aside) are native's: RLIMIT_NOFILE then allows a
 * guest as many contexts as a native program. */
static void contexts(struct ibv_device *dev, int n)
{
	struct ibv_context **c = calloc((size_t)n, sizeof(*c));
	struct ibv_pd **pd = calloc((size_t)n, sizeof(*pd));
	struct ibv_cq **cq = calloc((size_t)n, sizeof(*cq));
	struct ibv_mr **mr = calloc((size_t)n, sizeof(*mr));
	char *buf = aligned_alloc(4096, 4096);
	int fd0, fd1 = 0, after[2];

	check(c && pd && cq && mr && buf, "arrays");
	/* The baseline: one context with a PD and an MR opened and freed, so that what a
	 * library keeps once per process (a connection, an arena) is in it. */
	c[0] = ibv_open_device(dev);
	check(c[0] && (pd[0] = ibv_alloc_pd(c[0])), "warm-up context: %s", strerror(errno));
	mr[0] = ibv_reg_mr(pd[0], buf, 4096, IBV_ACCESS_LOCAL_WRITE);
	check(mr[0] && !ibv_dereg_mr(mr[0]) && !ibv_dealloc_pd(pd[0]) && !ibv_close_device(c[0]),
	      "warm-up context: %s", strerror(errno));
	fd0 = fds();
	for (int round = 0; round < 2; round++) {
		for (int i = 0; i < n; i++) {
			c[i] = ibv_open_device(dev);
			check(c[i], "round %d: open_device %d of %d: %s", round, i + 1, n,
			      strerror(errno));
			pd[i] = ibv_alloc_pd(c[i]);
			check(pd[i], "round %d: alloc_pd %d: %s", round, i + 1, strerror(errno));
			cq[i] = ibv_create_cq(c[i], 16, NULL, NULL, 0);
			check(cq[i], "round %d: create_cq %d: %s", round, i + 1, strerror(errno));
			mr[i] = ibv_reg_mr(pd[i], buf, 4096, IBV_ACCESS_LOCAL_WRITE);
			check(mr[i], "round %d: reg_mr %d: %s", round, i + 1, strerror(errno));
			if (!round && !i)
				fd1 = fds();
		}
		if (!round && n > 1)
			outcome("each context after the first holds %.2f descriptors",
				(double)(fds() - fd1) / (n - 1));
		for (int i = 0; i < n; i++) {
			/* The first round closes the context with its objects left in it. */
			if (round) {
				check(!ibv_dereg_mr(mr[i]) && !ibv_destroy_cq(cq[i]) &&
				      !ibv_dealloc_pd(pd[i]), "round %d: free %d", round, i + 1);
			}
			check(!ibv_close_device(c[i]), "round %d: close %d", round, i + 1);
		}
		after[round] = fds();
	}
	outcome("%d contexts with a PD, CQ and MR each, twice: all opened and closed", n);
	/* A context that leaves a descriptor behind (a region, a signal, a socket) shows here
	 * n times over: round 0 closes its contexts with their objects in them, round 1 frees
	 * them first. */
	outcome("descriptors after each round, over the warm-up's: %+d, %+d", after[0] - fd0,
		after[1] - fd0);
	free(c);
	free(pd);
	free(cq);
	free(mr);
	free(buf);
}

/* Whether the table holds the IPv4-mapped GID of address a; the number of entries in *n. */
static bool table_has(const struct in_addr *a, ssize_t *n)
{
	struct ibv_gid_entry e[64];
	uint8_t want[16] = { [10] = 0xff, [11] = 0xff };

	memcpy(want + 12, &a->s_addr, 4);
	*n = ibv_query_gid_table(lb.ctx, e, 64, 0);
	check(*n > 0, "query_gid_table: %zd", *n);
	for (ssize_t k = 0; k < *n; k++)
		if (!memcmp(e[k].gid.raw, want, 16))
			return true;
	return false;
}

static void gidchange(void)
{
	const char *addr = getenv("PARITY_GID_ADDR");
	struct pollfd p = { .fd = lb.ctx->async_fd, .events = POLLIN };
	struct timespec t0, t;
	struct in_addr a;
	ssize_t before, after;
	int events = 0;

	check(addr && inet_pton(AF_INET, addr, &a) == 1, "PARITY_GID_ADDR");
	check(!table_has(&a, &before), "%s is in the table already", addr);
	printf("ready: %zd GIDs\n", before);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (;;) {
		struct ibv_async_event ev;

		clock_gettime(CLOCK_MONOTONIC, &t);
		check(t.tv_sec - t0.tv_sec < vt_secs(20), "no GID_CHANGE with %s after %d events",
		      addr, events);
		if (poll(&p, 1, 200) != 1)
			continue;
		check(!ibv_get_async_event(lb.ctx, &ev), "get_async_event");
		ibv_ack_async_event(&ev);
		if (ev.event_type != IBV_EVENT_GID_CHANGE)
			continue;
		events++;
		if (table_has(&a, &after))
			break;
	}
	outcome("after IBV_EVENT_GID_CHANGE the table holds the new address: %zd entries, "
		"%zd more", after, after - before);
}

/* The channel's next event within ms (not scaled when it shows that none comes). */
static bool cq_event(struct ibv_comp_channel *ch, int ms)
{
	struct pollfd p = { .fd = ch->fd, .events = POLLIN };
	struct ibv_cq *cq;
	void *cq_ctx;

	if (poll(&p, 1, ms) != 1)
		return false;
	check(!ibv_get_cq_event(ch, &cq, &cq_ctx), "get_cq_event: %s", strerror(errno));
	ibv_ack_cq_events(cq, 1);
	return true;
}

/* A receive CQ armed for solicited completions only: a SEND without IBV_SEND_SOLICITED
 * makes no event, one with it does. The relay cannot tell them apart (docs/verbs.md): with
 * VD_BACKEND=relay the first line is printed as info, on both sides. The sender's CQ, armed
 * for solicited completions only too, gets no event for the sends' completions. */
static void solicited(void)
{
	struct ibv_comp_channel *ch = ibv_create_comp_channel(lb.ctx);
	struct ibv_comp_channel *sch = ibv_create_comp_channel(lb.ctx);
	struct ibv_cq *scq, *rcq;
	struct ibv_qp *a, *b;
	struct ibv_mr *mr;
	struct ibv_wc wc[2];
	static char buf[64];
	const char *be = getenv("VD_BACKEND");
	bool relay = be && !strcmp(be, "relay"), ev;
	int n;

	check(ch && sch, "comp channels: %s", strerror(errno));
	scq = ibv_create_cq(lb.ctx, 8, NULL, sch, 0);
	rcq = ibv_create_cq(lb.ctx, 8, NULL, ch, 0);
	mr = ibv_reg_mr(lb.pd, buf, sizeof(buf), IBV_ACCESS_LOCAL_WRITE);
	check(scq && rcq && mr, "CQs and MR: %s", strerror(errno));
	a = lb_qp(&lb, scq, scq, NULL);
	b = lb_qp(&lb, rcq, rcq, NULL);
	lb_connect(&lb, a, b->qp_num);
	lb_connect(&lb, b, a->qp_num);
	for (int i = 0; i < 2; i++) {
		struct ibv_sge sge = { .addr = (uintptr_t)buf + 32, .length = 32, .lkey = mr->lkey };
		struct ibv_recv_wr rw = { .wr_id = (uint64_t)i, .sg_list = &sge, .num_sge = 1 }, *rbad;

		check(!ibv_post_recv(b, &rw, &rbad), "post_recv: %s", strerror(errno));
	}
	check(!ibv_req_notify_cq(rcq, 1) && !ibv_req_notify_cq(scq, 1),
	      "req_notify_cq(solicited only)");
	for (int i = 0; i < 2; i++) {
		struct ibv_sge sge = { .addr = (uintptr_t)buf, .length = 8, .lkey = mr->lkey };
		struct ibv_send_wr sw = { .wr_id = (uint64_t)i, .sg_list = &sge, .num_sge = 1,
			.opcode = IBV_WR_SEND,
			.send_flags = IBV_SEND_SIGNALED | (i ? IBV_SEND_SOLICITED : 0) }, *bad;

		check(!ibv_post_send(a, &sw, &bad), "post_send: %s", strerror(errno));
		/* The sender's completion: the receive has completed at b by then (RC). */
		lb_poll(scq, wc, 1);
		check(wc[0].status == IBV_WC_SUCCESS, "send %d: %s", i, ibv_wc_status_str(wc[0].status));
		ev = cq_event(ch, i ? (int)vt_ms(10000) : 300);
		if (!i && relay)
			printf("info: relay: a SEND without IBV_SEND_SOLICITED: %s\n",
			       ev ? "event (a spurious wake-up)" : "no event");
		else
			outcome("a SEND %s IBV_SEND_SOLICITED on a CQ armed for solicited only: %s",
				i ? "with" : "without", ev ? "event" : "no event");
		if (ev && !i)
			check(!ibv_req_notify_cq(rcq, 1), "re-arm");
	}
	n = ibv_poll_cq(rcq, 2, wc);
	outcome("receive completions then polled: %d", n);
	outcome("the sends' completions on a CQ armed for solicited only: %s",
		cq_event(sch, 300) ? "event" : "no event");
	check(!ibv_destroy_qp(a) && !ibv_destroy_qp(b), "destroy QPs");
	check(!ibv_dereg_mr(mr) && !ibv_destroy_cq(scq) && !ibv_destroy_cq(rcq), "destroy");
	check(!ibv_destroy_comp_channel(ch) && !ibv_destroy_comp_channel(sch),
	      "destroy channels");
}

/* A UD QP sending to itself, each SEND's AH destroyed right after its post: natively the
 * post hands the WQE to the device (rxe sends a user QP's WQE within the post), so every
 * send completes, and arrives. A guest whose host looked the AH up only later would lose the
 * WQE (issue 12: no work request without its completion). */
static void ah_gone(void)
{
	enum { N = 8, LEN = 16, GRH = 40 };
	static char buf[N * (GRH + LEN) + LEN];
	struct ibv_qp_init_attr ia = { .qp_type = IBV_QPT_UD,
		.cap = { .max_send_wr = N, .max_recv_wr = N, .max_send_sge = 1, .max_recv_sge = 1 } };
	struct ibv_ah_attr aa = { .is_global = 1, .port_num = 1,
		.grh = { .dgid = lb.gid, .sgid_index = (uint8_t)lb.gid_index, .hop_limit = 1 } };
	struct ibv_qp_attr a = { .qp_state = IBV_QPS_INIT, .port_num = 1, .qkey = 0x11 };
	struct ibv_cq *scq = ibv_create_cq(lb.ctx, N, NULL, NULL, 0);
	struct ibv_cq *rcq = ibv_create_cq(lb.ctx, N, NULL, NULL, 0);
	struct ibv_mr *mr = ibv_reg_mr(lb.pd, buf, sizeof(buf), IBV_ACCESS_LOCAL_WRITE);
	struct ibv_wc wc[N];
	struct ibv_qp *q;
	int sent = 0, ok_s = 0, ok_r = 0, destroyed = 0;

	check(scq && rcq && mr, "CQs and MR: %s", strerror(errno));
	ia.send_cq = scq;
	ia.recv_cq = rcq;
	q = ibv_create_qp(lb.pd, &ia);
	check(q, "UD QP: %s", strerror(errno));
	check(!ibv_modify_qp(q, &a, IBV_QP_STATE | IBV_QP_PKEY_INDEX | IBV_QP_PORT | IBV_QP_QKEY),
	      "UD to INIT");
	a.qp_state = IBV_QPS_RTR;
	check(!ibv_modify_qp(q, &a, IBV_QP_STATE), "UD to RTR");
	a.qp_state = IBV_QPS_RTS;
	a.sq_psn = 1;
	check(!ibv_modify_qp(q, &a, IBV_QP_STATE | IBV_QP_SQ_PSN), "UD to RTS");
	for (int i = 0; i < N; i++) {
		struct ibv_sge sge = { .addr = (uintptr_t)buf + (size_t)i * (GRH + LEN),
				       .length = GRH + LEN, .lkey = mr->lkey };
		struct ibv_recv_wr rw = { .wr_id = (uint64_t)i, .sg_list = &sge, .num_sge = 1 }, *rbad;

		check(!ibv_post_recv(q, &rw, &rbad), "UD post_recv: %s", strerror(errno));
	}
	for (int i = 0; i < N; i++) {
		struct ibv_sge sge = { .addr = (uintptr_t)buf + N * (GRH + LEN), .length = LEN,
				       .lkey = mr->lkey };
		struct ibv_ah *ah = ibv_create_ah(lb.pd, &aa);
		struct ibv_send_wr sw = { .wr_id = (uint64_t)i, .sg_list = &sge, .num_sge = 1,
			.opcode = IBV_WR_SEND, .send_flags = IBV_SEND_SIGNALED }, *bad;

		check(ah, "create_ah: %s", strerror(errno));
		sw.wr.ud.ah = ah;
		sw.wr.ud.remote_qpn = q->qp_num;
		sw.wr.ud.remote_qkey = 0x11;
		sent += !ibv_post_send(q, &sw, &bad);
		destroyed += !ibv_destroy_ah(ah);
	}
	lb_poll(scq, wc, sent);
	for (int i = 0; i < sent; i++)
		ok_s += wc[i].status == IBV_WC_SUCCESS && wc[i].wr_id == (uint64_t)i;
	lb_poll(rcq, wc, sent);
	for (int i = 0; i < sent; i++)
		ok_r += wc[i].status == IBV_WC_SUCCESS && wc[i].byte_len == GRH + LEN;
	outcome("UD sends, each AH destroyed right after its post: %d of %d posted, %d AHs destroyed, %d sends and %d receives completed in order with success",
		sent, N, destroyed, ok_s, ok_r);
	check(!ibv_destroy_qp(q) && !ibv_dereg_mr(mr), "destroy QP, MR");
	check(!ibv_destroy_cq(scq) && !ibv_destroy_cq(rcq), "destroy CQs");
}

int main(int argc, char **argv)
{
	const char *only = getenv("PARITY_ONLY");
	int i;

	if (argc != 3) {
		fprintf(stderr, "usage: parity DEVICE GID_INDEX\n");
		return 2;
	}
	setvbuf(stdout, NULL, _IOLBF, 0);
	lb_open(&lb, argv[1], atoi(argv[2]));
	if (!only || strstr(only, "attrs"))
		attrs();
	if (!only || strstr(only, "gid"))
		gid();
	if (!only || strstr(only, "rereg"))
		rereg();
	if (!only || strstr(only, "import"))
		import();
	if (!only || strstr(only, "solicited"))
		solicited();
	if (!only || strstr(only, "ah-gone"))
		ah_gone();
	for (i = 0; lb.list[i] && strcmp(ibv_get_device_name(lb.list[i]), argv[1]); i++)
		;
	if (!only || strstr(only, "contexts"))
		contexts(lb.list[i], getenv("PARITY_CONTEXTS") ? atoi(getenv("PARITY_CONTEXTS")) :
			 100);
	if (only && strstr(only, "refresh"))
		gidchange();
	lb_close(&lb);
	printf("parity: done on %s\n", argv[1]);
	return 0;
}
