// SPDX-License-Identifier: MIT
/*
 * guest/revoke DEV GO: run as a guest of a kernel-backend vrdma device (under vbus-run) by
 * tests/device/guest-kernel-lifecycle.sh, which deletes the device (`vbusctl dev del`)
 * while this guest holds objects on its attachment (a PD, an MR, a CQ and an RC QP) and a
 * subtree below it: a child (VBK_IOC_CHILD, as a passthrough middle level makes) and the
 * child's own child, each with a PD.
 *
 * The guest library turns the bus's DEV_REMOVED into IBV_EVENT_DEVICE_FATAL and fails
 * every later verb on its own, so its answers prove nothing about the module. This program
 * therefore also asks the module directly, as a guest that ignores its library could:
 * every call on its own descriptor and on both children's is -EIO, and both children got
 * the module's DEVICE_FATAL on their descriptors. It then prints "revoked" and keeps every
 * descriptor open until the file GO exists, so that the script sees `rdma res show` at its
 * baseline while the descriptors are still held: the objects went with the revocation, not
 * with a close.
 *
 * A second thread registers and deregisters 16 MiB in a loop from "ready" on, so that a
 * REG_MR (pinning in the module, under the attachment's ctl mutex) is in flight when the
 * revocation comes: it prints when its last successful registration began and ended and
 * how the next failed (the script puts them beside the delete's start), and the MR count
 * of `rdma res show` at its baseline shows that the registration the revocation waited for
 * went with it. Exit 0 pass, 1 fail, 77 skip (not the kernel backend).
 */
#include <dlfcn.h>
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <time.h>
#include <unistd.h>
#include <infiniband/verbs.h>
#include <vbus/verbs-nest.h>
#include <vbus/vrdma.h>
#include <vbus/vrdma-kernel.h>
#include "../lib/vt-time.h"

#define fail(...) do { printf("FAIL line %d: ", __LINE__); printf(__VA_ARGS__); printf("\n"); \
			exit(1); } while (0)
#define check(c, ...) do { if (!(c)) fail(__VA_ARGS__); } while (0)

static long call(int fd, uint32_t fn, const void *in, uint32_t inlen, void *out, uint32_t outlen)
{
	struct vbk_call c = { .fn = fn, .in_len = inlen, .out_len = outlen,
			      .in = (uintptr_t)in, .out = (uintptr_t)out };
	long r = ioctl(fd, VBK_IOC_CALL, &c);

	return r < 0 ? -errno : r;
}

static long hello(int fd)
{
	struct vrdma_hello_in hi = { .abi_version = VRDMA_ABI_VERSION,
				     .abi_min = VRDMA_ABI_MIN_VERSION };
	struct vrdma_hello_out ho;

	return call(fd, VRDMA_FN_HELLO, &hi, sizeof(hi), &ho, sizeof(ho));
}

/* ALLOC_PD: its handle (> 0), or -errno. */
static long alloc_pd(int fd)
{
	struct vrdma_handle o;
	long r = call(fd, VRDMA_FN_ALLOC_PD, NULL, 0, &o, sizeof(o));

	return r < 0 ? r : (long)o.handle;
}

/* A child of fd: its descriptor, or -errno. */
static int child(int fd, uint32_t objs, uint64_t pinned, uint32_t gid, uint64_t tag)
{
	struct vbk_child c = { .max_objects = objs, .max_pinned_bytes = pinned,
			       .gid_index = gid, .guest_id = (uint32_t)tag, .tag = tag };
	int r = ioctl(fd, VBK_IOC_CHILD, &c);

	return r < 0 ? -errno : r;
}

/* The module queued DEVICE_FATAL on fd (it is queued before the parent's: no wait). */
static int got_fatal(int fd)
{
	struct pollfd p = { .fd = fd, .events = POLLIN };
	struct vbk_event ev[8];
	ssize_t n;

	while (poll(&p, 1, vt_ms(1000)) == 1) {
		n = read(fd, ev, sizeof(ev));
		if (n <= 0)
			return 0;
		for (ssize_t i = 0; i < n / (ssize_t)sizeof(ev[0]); i++)
			if (ev[i].type == IBV_EVENT_DEVICE_FATAL)
				return 1;
	}
	return 0;
}

static long long now_ns(void)
{
	struct timespec t;

	clock_gettime(CLOCK_REALTIME, &t);
	return t.tv_sec * 1000000000LL + t.tv_nsec;
}

/* The registering thread: REG_MR and DEREG_MR of `len` bytes until one fails. */
static struct {
	struct ibv_pd *pd;
	void *buf;
	size_t len;
	long n;
	long long begin_ns, end_ns;	/* of the last successful REG_MR */
	int err;
} pin = { .len = 16 << 20 };

static void *pinner(void *arg)
{
	(void)arg;
	for (;;) {
		long long t = now_ns();
		struct ibv_mr *m = ibv_reg_mr(pin.pd, pin.buf, pin.len, IBV_ACCESS_LOCAL_WRITE);

		if (!m) {
			pin.err = errno;
			return NULL;
		}
		pin.begin_ns = t;
		pin.end_ns = now_ns();
		pin.n++;
		if (ibv_dereg_mr(m)) {
			pin.err = errno;
			return NULL;
		}
	}
}

/* IBV_EVENT_DEVICE_FATAL on the context (the other events are reported on the way). */
static void wait_fatal(struct ibv_context *ctx, int timeout_ms)
{
	struct pollfd p = { .fd = ctx->async_fd, .events = POLLIN };
	struct ibv_async_event ev;

	for (;;) {
		int n = poll(&p, 1, timeout_ms);

		check(n == 1, "no IBV_EVENT_DEVICE_FATAL within %d ms (poll %d)", timeout_ms, n);
		check(!ibv_get_async_event(ctx, &ev), "ibv_get_async_event: %s", strerror(errno));
		ibv_ack_async_event(&ev);
		if (ev.event_type == IBV_EVENT_DEVICE_FATAL)
			return;
		printf("event: %s\n", ibv_event_type_str(ev.event_type));
	}
}

int main(int argc, char **argv)
{
	vbus_verbs_query_limits_fn *q;
	struct vbus_verbs_limits lim;
	struct ibv_context *ctx = NULL;
	struct ibv_device **list;
	struct ibv_send_wr wr = { .opcode = IBV_WR_SEND }, *bad;
	struct ibv_qp_init_attr ia = { .qp_type = IBV_QPT_RC,
		.cap = { .max_send_wr = 4, .max_recv_wr = 4, .max_send_sge = 1, .max_recv_sge = 1 } };
	struct ibv_pd *pd;
	struct ibv_mr *mr;
	struct ibv_cq *cq;
	struct ibv_qp *qp;
	struct ibv_wc wc;
	static char buf[65536];
	pthread_t pt;
	int n, p, c, g;
	long r;

	check(argc == 3, "usage: revoke DEV GO-FILE");
	list = ibv_get_device_list(&n);
	for (int i = 0; list && i < n; i++)
		if (!strcmp(ibv_get_device_name(list[i]), argv[1]))
			ctx = ibv_open_device(list[i]);
	check(ctx, "cannot open %s", argv[1]);
	q = (vbus_verbs_query_limits_fn *)dlsym(RTLD_DEFAULT, VBUS_VERBS_QUERY_LIMITS);
	check(q && !q(ctx, &lim), "not a vbus device (run under vbus-run)");
	if (!lim.kernel) {
		printf("SKIP: %s is not on the kernel backend\n", argv[1]);
		return 77;
	}
	p = ctx->cmd_fd;	/* the guest library's descriptor of our attachment */

	pd = ibv_alloc_pd(ctx);
	mr = pd ? ibv_reg_mr(pd, buf, sizeof(buf), IBV_ACCESS_LOCAL_WRITE) : NULL;
	cq = ibv_create_cq(ctx, 16, NULL, NULL, 0);
	ia.send_cq = ia.recv_cq = cq;
	qp = pd && cq ? ibv_create_qp(pd, &ia) : NULL;
	check(pd && mr && cq && qp, "PD, MR, CQ, QP: %s", strerror(errno));
	c = child(p, 8, 1 << 20, lim.gid_index, 1);
	check(c >= 0, "a child: %s", strerror(-c));
	g = child(c, 4, 0, lim.gid_index, 2);
	check(g >= 0, "a grandchild: %s", strerror(-g));
	check(hello(c) >= 0 && alloc_pd(c) > 0, "the child's PD: %s", strerror(errno));
	check(hello(g) >= 0 && alloc_pd(g) > 0, "the grandchild's PD: %s", strerror(errno));
	pin.pd = pd;
	pin.buf = calloc(1, pin.len);
	check(pin.buf && !pthread_create(&pt, NULL, pinner, NULL), "the registering thread");
	printf("ready: PD, MR, CQ, QP; a child and a grandchild with a PD each; REG_MR looping\n");
	fflush(stdout);

	wait_fatal(ctx, vt_ms(60000));
	printf("ok   IBV_EVENT_DEVICE_FATAL at %lld ns\n", now_ns());
	fflush(stdout);
	check(!pthread_join(pt, NULL), "join");	/* every call fails now: it ends */
	check(pin.n > 0, "the registering thread never registered (%s)", strerror(pin.err));
	printf("ok   REG_MR loop: %ld registrations of %zu MiB, the last from %lld to %lld ns, "
	       "then %s\n", pin.n, pin.len >> 20, pin.begin_ns, pin.end_ns, strerror(pin.err));
	fflush(stdout);

	/* The module's own answers. */
	check(got_fatal(g), "the grandchild: no DEVICE_FATAL from the module");
	check(got_fatal(c), "the child: no DEVICE_FATAL from the module");
	check((r = alloc_pd(p)) == -EIO, "ALLOC_PD on our descriptor: %ld, not -EIO", r);
	check((r = hello(p)) == -EIO, "HELLO on our descriptor: %ld, not -EIO", r);
	check(ioctl(p, VBK_IOC_DOORBELL, qp->handle) < 0 && errno == EIO,
	      "DOORBELL on our QP: not EIO (%s)", strerror(errno));
	check(ioctl(p, VBK_IOC_POLL_CQ, cq->handle) < 0 && errno == EIO,
	      "POLL_CQ on our CQ: not EIO (%s)", strerror(errno));
	check((r = child(p, 1, 0, lim.gid_index, 3)) == -EIO, "a new child: %ld, not -EIO", r);
	check((r = alloc_pd(c)) == -EIO, "ALLOC_PD on the child: %ld, not -EIO", r);
	check((r = alloc_pd(g)) == -EIO, "ALLOC_PD on the grandchild: %ld, not -EIO", r);
	printf("ok   the module: DEVICE_FATAL on the child and grandchild, every call -EIO "
	       "(CALL, DOORBELL, POLL_CQ, CHILD) on all three\n");

	/* What a library user sees. */
	check(!ibv_alloc_pd(ctx) && errno == EIO, "ibv_alloc_pd after the revocation: %s",
	      strerror(errno));
	wr.sg_list = &(struct ibv_sge){ .addr = (uintptr_t)buf, .length = 8, .lkey = mr->lkey };
	wr.num_sge = 1;
	check(ibv_post_send(qp, &wr, &bad) != 0, "ibv_post_send succeeded after the revocation");
	n = ibv_poll_cq(cq, 1, &wc);
	check(n <= 0, "ibv_poll_cq: %d completions after the revocation", n);
	printf("ok   ibv_alloc_pd EIO, ibv_post_send fails, ibv_poll_cq %d\n", n);
	printf("revoked\n");
	fflush(stdout);

	/* Hold every descriptor until the script has looked at rdma res show. */
	for (int i = 0; access(argv[2], F_OK); i++) {
		check(i < vt_ms(60000) / 10, "%s never appeared", argv[2]);
		usleep(10000);
	}
	check(!ibv_destroy_qp(qp) && !ibv_destroy_cq(cq) && !ibv_dereg_mr(mr) &&
	      !ibv_dealloc_pd(pd), "destroying after the revocation: %s", strerror(errno));
	close(g);
	close(c);
	check(!ibv_close_device(ctx), "ibv_close_device");
	ibv_free_device_list(list);
	printf("ok   destroying and closing after the revocation succeed\n");
	return 0;
}
