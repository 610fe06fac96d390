// SPDX-License-Identifier: MIT
/*
 * guest/whitelist DEV QP_TYPES ACCESS: what a device's whitelist lets a program do
 * (docs/vrdma.md, "Isolation"; docs/nesting.md), run natively and as a guest at any depth by
 * tests/device/guest-whitelist.sh. QP_TYPES (rc,uc,ud) and ACCESS (local-write,
 * remote-write, remote-read, remote-atomic, mw-bind) are the words of vbusctl's qp-types=
 * and access=, "all" or "none": what the device should allow. Each QP type is created, an
 * MR is registered with each access flag (remote write and atomic with local write, as
 * verbs needs), a QP goes to INIT with each remote access flag: what is allowed must work,
 * what is not must fail with EPERM (policy, not an error of the program's). Without
 * mw-bind, memory windows are refused and the device reports none.
 * Exit 0 pass, 1 fail.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <infiniband/verbs.h>

static int failed;

#define fail(...) do { printf("FAIL line %d: ", __LINE__); printf(__VA_ARGS__); printf("\n"); \
			exit(1); } while (0)
#define check(c, ...) do { if (!(c)) fail(__VA_ARGS__); } while (0)

struct word {
	const char *name;
	unsigned int bits;
};

static const struct word qp_words[] = {
	{ "rc", 1u << IBV_QPT_RC }, { "uc", 1u << IBV_QPT_UC }, { "ud", 1u << IBV_QPT_UD },
};

static const struct word access_words[] = {
	{ "local-write", IBV_ACCESS_LOCAL_WRITE },
	{ "remote-read", IBV_ACCESS_REMOTE_READ },
	{ "remote-write", IBV_ACCESS_REMOTE_WRITE },
	{ "remote-atomic", IBV_ACCESS_REMOTE_ATOMIC },
	{ "mw-bind", IBV_ACCESS_MW_BIND },
};

#define N(a) (sizeof(a) / sizeof((a)[0]))

static unsigned int parse(const char *s, const struct word *w, size_t n)
{
	unsigned int bits = 0;
	char *copy = strdup(s), *save = NULL;

	check(copy, "strdup");
	if (!strcmp(s, "all")) {
		for (size_t i = 0; i < n; i++)
			bits |= w[i].bits;
		free(copy);
		return bits;
	}
	for (char *t = strtok_r(copy, ",", &save); t && strcmp(s, "none");
	     t = strtok_r(NULL, ",", &save)) {
		size_t i = 0;

		while (i < n && strcmp(t, w[i].name))
			i++;
		check(i < n, "unknown word '%s'", t);
		bits |= w[i].bits;
	}
	free(copy);
	return bits;
}

/* ok when the call went as the whitelist says: done when allowed, EPERM when not. */
static void expect(const char *what, bool allowed, bool done, int err)
{
	if (allowed && done)
		printf("ok   %s: allowed, done\n", what);
	else if (!allowed && !done && err == EPERM)
		printf("ok   %s: refused, EPERM\n", what);
	else {
		printf("FAIL %s: %s, but %s (%s)\n", what, allowed ? "allowed" : "not allowed",
		       done ? "done" : "refused", done ? "-" : strerror(err));
		failed = 1;
	}
}

int main(int argc, char **argv)
{
	static char buf[65536] __attribute__((aligned(4096)));
	struct ibv_device **list;
	struct ibv_context *ctx = NULL;
	struct ibv_device_attr da;
	unsigned int qpt, acc, modq;
	struct ibv_pd *pd;
	struct ibv_cq *cq;
	int n;

	check(argc == 4, "usage: whitelist DEV QP_TYPES ACCESS");
	qpt = parse(argv[2], qp_words, N(qp_words));
	acc = parse(argv[3], access_words, N(access_words));
	list = ibv_get_device_list(&n);
	for (int i = 0; list && i < n; i++)
		if (!strcmp(ibv_get_device_name(list[i]), argv[1]))
			ctx = ibv_open_device(list[i]);
	check(ctx, "cannot open %s", argv[1]);
	pd = ibv_alloc_pd(ctx);
	cq = pd ? ibv_create_cq(ctx, 16, NULL, NULL, 0) : NULL;
	check(cq, "PD and CQ: %s", strerror(errno));

	for (size_t i = 0; i < N(qp_words); i++) {
		struct ibv_qp_init_attr a = {
			.send_cq = cq, .recv_cq = cq, .qp_type = __builtin_ctz(qp_words[i].bits),
			.cap = { .max_send_wr = 4, .max_recv_wr = 4, .max_send_sge = 1,
				 .max_recv_sge = 1 } };
		struct ibv_qp *qp;
		char what[64];

		errno = 0;
		qp = ibv_create_qp(pd, &a);
		snprintf(what, sizeof(what), "create a %s QP", qp_words[i].name);
		expect(what, qpt & qp_words[i].bits, qp, errno);
		if (qp)
			ibv_destroy_qp(qp);
	}
	for (size_t i = 0; i < N(access_words); i++) {
		unsigned int f = access_words[i].bits;
		struct ibv_mr *mr;
		char what[80];

		if (f & (IBV_ACCESS_REMOTE_WRITE | IBV_ACCESS_REMOTE_ATOMIC))
			f |= IBV_ACCESS_LOCAL_WRITE;	/* as verbs needs */
		errno = 0;
		mr = ibv_reg_mr(pd, buf, sizeof(buf), (int)f);
		snprintf(what, sizeof(what), "register an MR with access %#x", f);
		expect(what, !(f & ~acc), mr, errno);
		if (mr)
			ibv_dereg_mr(mr);
	}
	/* A QP to INIT with each remote access flag, on an RC QP (else UC) if one is allowed. */
	modq = qpt & (1u << IBV_QPT_RC) ? IBV_QPT_RC : qpt & (1u << IBV_QPT_UC) ? IBV_QPT_UC : 0;
	for (size_t i = 1; modq && i < 4; i++) {
		struct ibv_qp_init_attr a = {
			.send_cq = cq, .recv_cq = cq, .qp_type = modq,
			.cap = { .max_send_wr = 4, .max_recv_wr = 4, .max_send_sge = 1,
				 .max_recv_sge = 1 } };
		struct ibv_qp_attr m = { .qp_state = IBV_QPS_INIT, .port_num = 1,
					 .qp_access_flags = access_words[i].bits };
		struct ibv_qp *qp = ibv_create_qp(pd, &a);
		char what[80];
		int r;

		check(qp, "a QP for modify: %s", strerror(errno));
		r = ibv_modify_qp(qp, &m, IBV_QP_STATE | IBV_QP_PKEY_INDEX | IBV_QP_PORT |
				  IBV_QP_ACCESS_FLAGS);
		snprintf(what, sizeof(what), "a %s QP to INIT with access %s",
			 modq == IBV_QPT_RC ? "RC" : "UC", access_words[i].name);
		expect(what, access_words[i].bits & acc, !r, r);
		ibv_destroy_qp(qp);
	}
	if (!(acc & IBV_ACCESS_MW_BIND)) {
		struct ibv_mw *mw = ibv_alloc_mw(pd, IBV_MW_TYPE_1);

		check(!ibv_query_device(ctx, &da), "query_device");
		if (mw || da.max_mw || (da.device_cap_flags & (IBV_DEVICE_MEM_WINDOW |
							       IBV_DEVICE_MEM_WINDOW_TYPE_2A |
							       IBV_DEVICE_MEM_WINDOW_TYPE_2B))) {
			printf("FAIL without mw-bind: a memory window %s, device flags %#x, "
			       "max_mw %d\n", mw ? "allocated" : "refused", da.device_cap_flags,
			       da.max_mw);
			failed = 1;
		} else {
			printf("ok   without mw-bind: no memory window, none in the device's "
			       "flags or max_mw\n");
		}
		if (mw)
			ibv_dealloc_mw(mw);
	}
	ibv_destroy_cq(cq);
	ibv_dealloc_pd(pd);
	ibv_close_device(ctx);
	ibv_free_device_list(list);
	return failed;
}
