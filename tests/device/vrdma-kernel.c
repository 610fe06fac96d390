// SPDX-License-Identifier: MIT
/*
 * vrdma-kernel: the kernel backend (kernel/, the vbus_vrdma module) on the real soft-RoCE
 * device, driven through its descriptors exactly as vbusd and a guest drive them, with no
 * bus in between: this process attaches itself on the admin node, then plays the guest.
 *
 * Checked: the queries; two RC QPs on rxe0 connected to each other through the module's
 * RoCE address resolution; RDMA WRITE, SEND into a posted receive and RDMA READ through the
 * rings and the doorbell, polled through VBK_IOC_POLL_CQ, every byte and wr_id compared;
 * then what a hostile guest gets: an lkey it never registered (the kernel PD's DMA key
 * among the candidates) completes with the device's error for an unknown lkey, as
 * natively, without touching memory,
 * a nonsense ring index breaks the ring, bad handles and sizes are refused, longer inputs
 * are accepted only with a zero tail, memory windows are EOPNOTSUPP; closing the admin
 * descriptor revokes the attachment (DEVICE_FATAL, then -EIO); and `rdma res show` is back
 * to its baseline afterwards.
 */
#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>
#include <infiniband/verbs.h>
#include <vbus/vrdma.h>
#include <vbus/vrdma-kernel.h>
#include "vbk-test.h"




/* A ring in our own memory. */

static void ring_new(struct ring *q, uint32_t entries, uint32_t stride)
{
	size_t len = sizeof(struct vrdma_ring) + (size_t)entries * stride;
	void *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	check(p != MAP_FAILED, "mmap ring");
	*q = (struct ring){ .r = p, .slots = (uint8_t *)p + sizeof(struct vrdma_ring),
			    .entries = entries, .stride = stride };
}


static uint32_t pd, mrh, lkey, rkey, cqh;
static struct ring cq;
static uint32_t cq_cons;
static uint8_t *buf;
#define BUF_LEN (64 * 1024)

static void create_qp(struct qp *qp)
{
	struct vrdma_create_qp_in in = { 0 };
	struct vrdma_create_qp_out o;
	long r;

	ring_new(&qp->sq, 64, 128);
	ring_new(&qp->rq, 64, 64);
	in.pd = htole32(pd);
	in.send_cq = in.recv_cq = htole32(cqh);
	in.qp_type = IBV_QPT_RC;
	in.cap = (struct vrdma_qp_cap){ .max_send_wr = htole32(16), .max_recv_wr = htole32(16),
					.max_send_sge = htole32(2), .max_recv_sge = htole32(2),
					.max_inline_data = htole32(32) };
	in.sq_offset = htole64((uintptr_t)qp->sq.r);
	in.rq_offset = htole64((uintptr_t)qp->rq.r);
	in.sq_entries = htole32(64);
	in.sq_stride = htole32(128);
	in.rq_entries = htole32(64);
	in.rq_stride = htole32(64);
	r = call(VRDMA_FN_CREATE_QP, &in, sizeof(in), &o, sizeof(o));
	check(r == sizeof(o), "create_qp: %ld", r);
	qp->h = le32toh(o.handle);
	qp->qpn = le32toh(o.qp_num);
	check(le32toh(o.cap.max_send_wr) >= 16 && le32toh(o.cap.max_inline_data) >= 32,
	      "granted caps");
	check(__atomic_load_n(&qp->sq.r->flags, __ATOMIC_RELAXED) & htole32(VRDMA_RING_NEED_WAKEUP),
	      "the module keeps NEED_WAKEUP set");
}



/* A one-SGE WQE whose SGE is at laddr, any address: a hostile guest names what it likes. */
static void post_send_at(struct qp *qp, uint64_t wr_id, uint8_t op, uint64_t laddr, uint32_t len,
			 uint32_t key, uint64_t raddr)
{
	struct vrdma_swqe *w = slot(&qp->sq, qp->sq.idx++);
	struct vrdma_sge *s = (struct vrdma_sge *)(w + 1);

	memset(w, 0, qp->sq.stride);
	w->wr_id = htole64(wr_id);
	w->opcode = op;
	w->num_sge = 1;
	w->send_flags = htole32(IBV_SEND_SIGNALED);
	w->rkey = htole32(rkey);
	w->remote_addr = htole64(raddr);
	s->addr = htole64(laddr);
	s->length = htole32(len);
	s->lkey = htole32(key);
	publish(&qp->sq);
}

static void post_send(struct qp *qp, uint64_t wr_id, uint8_t op, uint32_t off, uint32_t len,
		      uint32_t key, uint64_t raddr)
{
	post_send_at(qp, wr_id, op, (uintptr_t)buf + off, len, key, raddr);
}

static void post_recv(struct qp *qp, uint64_t wr_id, uint32_t off, uint32_t len)
{
	struct vrdma_rwqe *w = slot(&qp->rq, qp->rq.idx++);
	struct vrdma_sge *s = (struct vrdma_sge *)(w + 1);

	w->wr_id = htole64(wr_id);
	w->num_sge = htole32(1);
	w->reserved = 0;
	s->addr = htole64((uintptr_t)buf + off);
	s->length = htole32(len);
	s->lkey = htole32(lkey);
	publish(&qp->rq);
}

static long doorbell(uint32_t h)
{
	long r = ioctl(gfd, VBK_IOC_DOORBELL, (unsigned long)h);

	return r < 0 ? -errno : r;
}

/* The next completion, polling through the module; bounded by a generous deadline. */
/* A kernel symbol's address from /proc/kallsyms, 0 if not there or hidden (kptr_restrict). */
static uint64_t ksym(const char *name)
{
	FILE *f = fopen("/proc/kallsyms", "re");
	unsigned long long a;
	char t, n[128];
	uint64_t r = 0;

	while (f && fscanf(f, "%llx %c %127s%*[^\n]", &a, &t, n) == 3)
		if (!strcmp(n, name)) {
			r = a;
			break;
		}
	if (f)
		fclose(f);
	return r;
}

static char waiting[96] = "a completion";	/* what next_cqe waits for, if it says */

static struct vrdma_cqe next_cqe(void)
{
	struct timespec t0, t;
	struct vrdma_cqe e;

	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (;;) {
		uint32_t prod = le32toh(__atomic_load_n(&cq.r->prod, __ATOMIC_ACQUIRE));

		if (prod != cq_cons) {
			memcpy(&e, slot(&cq, cq_cons++), sizeof(e));
			__atomic_store_n(&cq.r->cons, htole32(cq_cons), __ATOMIC_RELEASE);
			return e;
		}
		check(ioctl(gfd, VBK_IOC_POLL_CQ, (unsigned long)cqh) >= 0, "poll_cq: %m");
		clock_gettime(CLOCK_MONOTONIC, &t);
		check(t.tv_sec - t0.tv_sec < 60, "no completion within 60 s (%s)", waiting);
	}
}

static void expect_cqe(uint64_t wr_id, uint32_t status, int is_send)
{
	struct vrdma_cqe e = next_cqe();

	check(le64toh(e.wr_id) == wr_id && le32toh(e.status) == status && e.is_send == is_send,
	      "completion: wr_id %llu status %u send %u, wanted %llu %u %d",
	      (unsigned long long)le64toh(e.wr_id), le32toh(e.status), e.is_send,
	      (unsigned long long)wr_id, status, is_send);
}

static int next_event(struct vbk_event *ev)
{
	struct pollfd p = { .fd = gfd, .events = POLLIN };

	if (poll(&p, 1, 30000) != 1)
		return -1;
	return read(gfd, ev, sizeof(*ev)) == sizeof(*ev) ? 0 : -1;
}

int main(void)
{
	const char *dev = getenv("VBUS_RXE") ? getenv("VBUS_RXE") : "rxe0";
	struct vbk_attach at = { .port = 1, .max_objects = 64, .guest_id = 7,
				 .max_pinned_bytes = 64 << 20, .qp_types = VRDMA_WL_QP_TYPES,
				 .access = VRDMA_WL_ACCESS };
	struct vrdma_query_device_out da;
	struct vrdma_query_port_out pa;
	struct vrdma_query_gid_in gi = { .port_num = 1 };
	struct vrdma_query_gid_out go;
	struct vrdma_hello_in hi = { .abi_version = htole32(VRDMA_ABI_VERSION),
				     .abi_min = htole32(VRDMA_ABI_MIN_VERSION) };
	struct vrdma_hello_out ho;
	int base_qp = count_res("qp"), base_mr = count_res("mr"), admin;
	struct qp a, b;
	struct vbk_event ev;
	long r;

	setvbuf(stdout, NULL, _IONBF, 0);
	gid_index = getenv("VBUS_GID_INDEX") ? (uint32_t)atoi(getenv("VBUS_GID_INDEX")) : 1;
	admin = open("/dev/" VBK_DEV_NAME, O_RDWR | O_CLOEXEC);
	if (admin < 0) {
		printf("SKIP: /dev/%s: %m (the vbus_vrdma module is not loaded: VBUS_KMOD=%s)\n",
		       VBK_DEV_NAME, getenv("VBUS_KMOD") ? getenv("VBUS_KMOD") : "unset");
		return 77;
	}
	/* Attach: a bad device and reserved bits are refused. */
	snprintf(at.ibdev, sizeof(at.ibdev), "no-such-dev");
	check(ioctl(admin, VBK_IOC_ATTACH, &at) < 0 && errno == ENODEV, "attach to nothing");
	snprintf(at.ibdev, sizeof(at.ibdev), "%s", dev);
	at.reserved0[1] = 1;
	check(ioctl(admin, VBK_IOC_ATTACH, &at) < 0 && errno == EINVAL, "reserved bits");
	at.reserved0[1] = 0;
	at.tag = 0x1234;
	at.gid_index = gid_index;
	gfd = ioctl(admin, VBK_IOC_ATTACH, &at);
	check(gfd >= 0, "attach %s: %m", dev);
	{	/* the doorbell eventfd is a foreign attachment's (vbusd's for a VM) */
		int dfd = eventfd(0, EFD_CLOEXEC);

		check(dfd >= 0 && ioctl(gfd, VBK_IOC_DOORBELL_FD, (unsigned long)dfd) < 0 &&
		      errno == EINVAL, "VBK_IOC_DOORBELL_FD on a process guest's attachment: "
		      "not EINVAL (%m)");
		close(dfd);
	}
	ok("attached to %s (VBK_IOC_DOORBELL_FD EINVAL: not a foreign attachment)", dev);

	r = call(VRDMA_FN_HELLO, &hi, sizeof(hi), &ho, sizeof(ho));
	check(r == sizeof(ho) && le32toh(ho.gid_index) == gid_index &&
	      le32toh(ho.max_objects) == 64, "hello: %ld", r);
	r = call(VRDMA_FN_QUERY_DEVICE, NULL, 0, &da, sizeof(da));
	check(r == sizeof(da) && da.phys_port_cnt == 1 && !da.max_mw && da.max_qp,
	      "query_device: %ld", r);
	{
		struct vrdma_query_port_in pi = { .port_num = 1 };

		r = call(VRDMA_FN_QUERY_PORT, &pi, sizeof(pi), &pa, sizeof(pa));
		check(r == sizeof(pa) && le32toh(pa.state) == IBV_PORT_ACTIVE,
		      "query_port: %ld state %u", r, le32toh(pa.state));
		pi.port_num = 2;
		check(call(VRDMA_FN_QUERY_PORT, &pi, sizeof(pi), &pa, sizeof(pa)) == -EINVAL,
		      "port 2 is not the guest's");
	}
	gi.index = htole32(gid_index);
	r = call(VRDMA_FN_QUERY_GID, &gi, sizeof(gi), &go, sizeof(go));
	check(r == sizeof(go), "query_gid: %ld", r);
	ok("queries: port active, max_mw 0, GID %u", gid_index);

	/* HELLO: a version-1 guest (8 bytes in) gets the 24-byte answer; a range we do not
	 * speak is refused with our range. */
	{
		struct vrdma_hello_in old = { .abi_version = htole32(1) };
		struct vrdma_hello_in future = { .abi_version = htole32(99), .abi_min = htole32(90) };

		memset(&ho, 0, sizeof(ho));
		check(call(VRDMA_FN_HELLO, &old, VRDMA_HELLO_IN_V1_SIZE, &ho, sizeof(ho)) ==
		      VRDMA_HELLO_OUT_V1_SIZE && le32toh(ho.abi_version) == 1, "a version-1 HELLO");
		check(call(VRDMA_FN_HELLO, &future, sizeof(future), &ho, sizeof(ho)) ==
		      -EPROTONOSUPPORT && le32toh(ho.abi_max) == VRDMA_ABI_VERSION,
		      "a range we do not speak");
	}
	/* Inputs: longer with a zero tail is fine, a non-zero tail is -E2BIG, short -EINVAL. */
	{
		struct vrdma_query_port_in pi = { .port_num = 1 };
		uint8_t big[sizeof(pi) + 16] = { 0 };

		memcpy(big, &pi, sizeof(pi));
		check(call(VRDMA_FN_QUERY_PORT, big, sizeof(big), &pa, sizeof(pa)) == sizeof(pa),
		      "a longer input with a zero tail");
		big[sizeof(pi) + 3] = 1;
		check(call(VRDMA_FN_QUERY_PORT, big, sizeof(big), &pa, sizeof(pa)) == -E2BIG,
		      "a non-zero tail");
		check(call(VRDMA_FN_QUERY_PORT, big, 4, &pa, sizeof(pa)) == -EINVAL,
		      "a short input");
		check(call(999, NULL, 0, NULL, 0) == -EOPNOTSUPP, "an unknown function");
		check(call(VRDMA_FN_QUERY_DEVICE, NULL, 0, &da, 8) == -EMSGSIZE, "a short output");
	}
	ok("input sizes: zero tail accepted, non-zero tail, short and unknown refused");

	pd = handle_call(VRDMA_FN_ALLOC_PD, NULL, 0);
	ok("PD %#x", pd);
	buf = aligned_alloc(4096, BUF_LEN);
	check(buf, "buffer");
	memset(buf, 0, BUF_LEN);
	{
		struct vrdma_reg_mr_in in = {
			.pd = htole32(pd), .iova = htole64((uintptr_t)buf),
			.length = htole64(BUF_LEN),
			.access = htole32(IBV_ACCESS_LOCAL_WRITE | IBV_ACCESS_REMOTE_WRITE |
					  IBV_ACCESS_REMOTE_READ),
		};
		struct vrdma_reg_mr_out o;

		in.access = htole32(IBV_ACCESS_ON_DEMAND | IBV_ACCESS_LOCAL_WRITE);
		check(call(VRDMA_FN_REG_MR, &in, sizeof(in), &o, sizeof(o)) == -EOPNOTSUPP, "ODP");
		in.access = htole32(IBV_ACCESS_REMOTE_WRITE);
		check(call(VRDMA_FN_REG_MR, &in, sizeof(in), &o, sizeof(o)) == -EINVAL,
		      "remote write without local write");
		in.access = htole32(IBV_ACCESS_LOCAL_WRITE | IBV_ACCESS_REMOTE_WRITE |
				    IBV_ACCESS_REMOTE_READ);
		in.npieces = htole32(1);
		check(call(VRDMA_FN_REG_MR, &in, sizeof(in), &o, sizeof(o)) == -EINVAL,
		      "pieces are the relay's");
		in.npieces = 0;
		r = call(VRDMA_FN_REG_MR, &in, sizeof(in), &o, sizeof(o));
		check(r == sizeof(o), "reg_mr: %ld", r);
		mrh = le32toh(o.handle);
		lkey = le32toh(o.lkey);
		rkey = le32toh(o.rkey);
		ok("MR lkey %#x", lkey);
	}
	{
		struct vrdma_alloc_mw_in in = { .pd = htole32(pd), .type = htole32(IBV_MW_TYPE_2) };
		struct vrdma_alloc_mw_out o;

		check(call(VRDMA_FN_ALLOC_MW, &in, sizeof(in), &o, sizeof(o)) == -EOPNOTSUPP,
		      "memory windows");
	}
	{
		struct vrdma_create_cq_in in = { .cqe = htole32(63), .entries = htole32(128) };
		struct vrdma_create_cq_out o;

		ring_new(&cq, 128, sizeof(struct vrdma_cqe));
		in.offset = htole64((uintptr_t)cq.r + 8);
		check(call(VRDMA_FN_CREATE_CQ, &in, sizeof(in), &o, sizeof(o)) == -EINVAL,
		      "a misaligned ring");
		in.offset = htole64((uintptr_t)cq.r);
		in.shm = htole32(1);
		check(call(VRDMA_FN_CREATE_CQ, &in, sizeof(in), &o, sizeof(o)) == -EINVAL,
		      "a DEVSHM region on the kernel backend");
		in.shm = 0;
		r = call(VRDMA_FN_CREATE_CQ, &in, sizeof(in), &o, sizeof(o));
		check(r == sizeof(o) && le32toh(o.cqe) >= 63 && le32toh(o.cqe) <= 128,
		      "create_cq: %ld", r);
		cqh = le32toh(o.handle);
		ok("CQ %#x", cqh);
	}
	create_qp(&a);
	create_qp(&b);
	connect_qp(&a, b.qpn, go.gid);
	connect_qp(&b, a.qpn, go.gid);
	ok("PD, MR, CQ, two RC QPs connected (QPN %u <-> %u)", a.qpn, b.qpn);

	/* RDMA WRITE: buf[0..4K) -> buf[8K..12K), through A's ring and doorbell. */
	for (int i = 0; i < 4096; i++)
		buf[i] = (uint8_t)(i * 7 + 3);
	post_send(&a, 11, IBV_WR_RDMA_WRITE, 0, 4096, lkey, (uintptr_t)buf + 8192);
	check(doorbell(a.h) == 1, "doorbell posts one WQE");
	expect_cqe(11, IBV_WC_SUCCESS, 1);
	check(!memcmp(buf, buf + 8192, 4096), "RDMA WRITE data");
	ok("RDMA WRITE 4 KiB: completed, every byte arrived");

	/* SEND into B's posted receive. */
	for (int i = 0; i < 1000; i++)
		buf[16384 + i] = (uint8_t)(i ^ 0x5a);
	post_recv(&b, 21, 20480, 2048);
	check(doorbell(b.h) == 1, "receive doorbell");
	post_send(&a, 12, IBV_WR_SEND, 16384, 1000, lkey, 0);
	check(doorbell(a.h) == 1, "send doorbell");
	for (int k = 0; k < 2; k++) {
		struct vrdma_cqe e = next_cqe();

		check(le32toh(e.status) == IBV_WC_SUCCESS, "send/recv status %u", le32toh(e.status));
		if (e.is_send) {
			check(le64toh(e.wr_id) == 12 && le32toh(e.qp_handle) == a.h &&
			      le32toh(e.sq_retired) == 2, "send completion");
		} else {
			check(le64toh(e.wr_id) == 21 && le32toh(e.byte_len) == 1000 &&
			      le32toh(e.qp_num) == b.qpn && le32toh(e.opcode) == IBV_WC_RECV,
			      "receive completion");
		}
	}
	check(!memcmp(buf + 16384, buf + 20480, 1000), "SEND data");
	ok("SEND 1000 B into a posted receive: both completions, data intact");

	/* RDMA READ: buf[8K..9K) -> buf[24K..25K). */
	post_send(&a, 13, IBV_WR_RDMA_READ, 24576, 1024, lkey, (uintptr_t)buf + 8192);
	check(doorbell(a.h) == 1, "read doorbell");
	expect_cqe(13, IBV_WC_SUCCESS, 1);
	check(!memcmp(buf + 8192, buf + 24576, 1024), "RDMA READ data");
	ok("RDMA READ 1 KiB");

	/* Hostile: handles and sizes on the data path. */
	check(doorbell(0) == -EINVAL && doorbell(cqh) == -EINVAL, "doorbell on a bad handle");
	check(ioctl(gfd, VBK_IOC_POLL_CQ, (unsigned long)a.h) < 0 && errno == EINVAL,
	      "poll on a QP handle");

	/* Hostile: an lkey this guest never registered. Every key of our MR's index but
	 * ours, and of the indexes next to it (the PD's DMA MR was made just before ours:
	 * rxe takes its lkey's SGE address as a kernel pointer), each as a WRITE on A freshly
	 * back in RTS, once from our buffer and once from kernel memory (init_task's address
	 * from /proc/kallsyms, mapped for sure): the module posts it as its poison key, and
	 * each completes with rxe's error for an unknown lkey, as natively, the target
	 * untouched (no kernel byte read), no QP_FATAL (a native QP gets none). Then each as
	 * an RDMA READ into a kernel address (the unrandomised direct map's base, unmapped
	 * under KASLR: were the key taken, rxe's copy would oops, which the harness's kernel
	 * log check fails): refused the same way. */
	{
		const uint64_t kaddr = 0xffff888000100000ull;
		uint64_t ksrc = ksym("init_task");
		struct vrdma_qp_attr rst = { .qp_state = htole32(IBV_QPS_RESET) };
		struct vrdma_cqe e;
		uint32_t n = 0, k;

		if (!ksrc)
			ksrc = kaddr;	/* kallsyms hidden (kptr_restrict) */
		memset(buf + 32768, 0xee, 64);
		for (uint32_t idx = (lkey >> 8) - 2; idx <= (lkey >> 8) + 2; idx++) {
			for (uint32_t key = 0; key < 256; key++) {
				k = idx << 8 | key;
				if (k == lkey)
					continue;
				for (int way = 0; way < 3; way++) {
					modify(a.h, IBV_QP_STATE, &rst);
					connect_qp(&a, b.qpn, go.gid);
					if (way == 2) {
						/* A READ reaches B: B starts again at A's
						 * first PSN too, or it takes the READ for a
						 * duplicate it has no response for and drops
						 * it. */
						modify(b.h, IBV_QP_STATE, &rst);
						connect_qp(&b, a.qpn, go.gid);
					}
					if (way == 0)
						post_send(&a, 14, IBV_WR_RDMA_WRITE, 0, 64, k,
							  (uintptr_t)buf + 32768);
					else
						post_send_at(&a, 14, way == 1 ? IBV_WR_RDMA_WRITE :
							     IBV_WR_RDMA_READ, way == 1 ? ksrc : kaddr,
							     64, k, (uintptr_t)buf + 32768);
					check(doorbell(a.h) == 1, "a WQE with lkey %#x (%d): posted",
					      k, way);
					snprintf(waiting, sizeof(waiting), "lkey %#x, %s", k,
						 (const char *[]){ "WRITE from our buffer",
						 "WRITE from a kernel address",
						 "READ into a kernel address" }[way]);
					if (way < 2) {
						expect_cqe(14, IBV_WC_LOC_QP_OP_ERR, 1);
						continue;
					}
					/* A READ's response fails where it lands: rxe's
					 * completer says LOC_PROT_ERR, natively too. */
					e = next_cqe();
					check(le64toh(e.wr_id) == 14 && e.is_send &&
					      (le32toh(e.status) == IBV_WC_LOC_PROT_ERR ||
					       le32toh(e.status) == IBV_WC_LOC_QP_OP_ERR),
					      "READ into %#llx with lkey %#x: status %u",
					      (unsigned long long)kaddr, k, le32toh(e.status));
				}
				n++;
			}
		}
		snprintf(waiting, sizeof(waiting), "a completion");
		for (int i = 0; i < 64; i++)
			check(buf[32768 + i] == 0xee, "memory untouched");
		check(!(__atomic_load_n(&a.sq.r->flags, __ATOMIC_ACQUIRE) & htole32(VRDMA_RING_BROKEN)),
		      "the ring is not broken");
		check(poll(&(struct pollfd){ .fd = gfd, .events = POLLIN }, 1, 0) == 0,
		      "no async event");
		modify(a.h, IBV_QP_STATE, &rst);
		connect_qp(&a, b.qpn, go.gid);
		ok("%u foreign lkeys, the DMA MR's among them: each IBV_WC_LOC_QP_OP_ERR as "
		   "natively, from our buffer, from kernel memory (%#llx%s) and into a kernel "
		   "address; target untouched", n, (unsigned long long)ksrc,
		   ksrc == kaddr ? ", kallsyms hidden" : ", init_task");
	}

	/* Hostile: a batch of receives with a bad one last (more SGEs than the QP's 2). The
	 * batch is validated whole before any of it is posted: the doorbell posts none, the
	 * ring is broken where it stood, the QP gets QP_FATAL. */
	{
		uint32_t cons0 = le32toh(__atomic_load_n(&a.rq.r->cons, __ATOMIC_ACQUIRE));
		struct vrdma_rwqe *w;

		post_recv(&a, 31, 40960, 64);
		post_recv(&a, 32, 41024, 64);
		w = slot(&a.rq, a.rq.idx++);
		w->wr_id = htole64(33);
		w->num_sge = htole32(3);
		w->reserved = 0;
		publish(&a.rq);
		r = doorbell(a.h);
		check(r == 0, "a batch with a bad receive last: doorbell %ld, wanted 0 posted", r);
		check(le32toh(__atomic_load_n(&a.rq.r->cons, __ATOMIC_ACQUIRE)) == cons0,
		      "the ring's consumer index moved");
		check(__atomic_load_n(&a.rq.r->flags, __ATOMIC_ACQUIRE) & htole32(VRDMA_RING_BROKEN),
		      "the receive ring is broken");
		check(!next_event(&ev) && ev.type == IBV_EVENT_QP_FATAL && ev.handle == a.h,
		      "QP_FATAL");
		ok("a receive batch with a bad WQE last: none posted, ring broken, QP_FATAL");
	}

	/* Hostile: a producer index past the ring. */
	b.sq.idx = 1000;
	publish(&b.sq);
	r = doorbell(b.h);
	check(r == 0, "nonsense index: doorbell %ld", r);
	check(__atomic_load_n(&b.sq.r->flags, __ATOMIC_ACQUIRE) & htole32(VRDMA_RING_BROKEN),
	      "broken by its index");
	check(!next_event(&ev) && ev.type == IBV_EVENT_QP_FATAL && ev.handle == b.h, "QP_FATAL");
	ok("a nonsense ring index breaks that ring only");

	/* The objects are real: rdma res shows two more QPs. */
	check(count_res("qp") == base_qp + 2, "rdma res show qp: %d, baseline %d", count_res("qp"),
	      base_qp);

	/* The whitelist (VBK_ATTACH_SIZE_V2): bits the module lacks are EINVAL; an attachment
	 * of RC and local write only says so in HELLO and refuses a UD QP and an MR with
	 * remote read (EPERM, before any handle is looked at); an older vbusd's attach
	 * (VBK_ATTACH_SIZE_V1) gets all of the module's; a longer one with a non-zero tail,
	 * E2BIG. */
	{
		struct { struct vbk_attach a; uint64_t tail; } w = { .a = at };
		struct vrdma_create_qp_in qi = { .qp_type = IBV_QPT_UD };
		struct vrdma_create_qp_out qo;
		struct vrdma_reg_mr_in mi = { .iova = htole64((uintptr_t)buf),
					      .length = htole64(BUF_LEN),
					      .access = htole32(IBV_ACCESS_LOCAL_WRITE |
								IBV_ACCESS_REMOTE_READ) };
		struct vrdma_reg_mr_out mo;
		int keep = gfd, g3;

		w.a.tag = 0x9abc;
		w.a.qp_types = VRDMA_WL_QP_TYPES | VRDMA_QPT_BIT(IBV_QPT_RAW_PACKET);
		check(ioctl(admin, VBK_IOC_ATTACH, &w.a) < 0 && errno == EINVAL,
		      "an attach with RAW_PACKET: not EINVAL (%m)");
		w.a.qp_types = VRDMA_WL_QP_TYPES;
		w.a.access = VRDMA_WL_ACCESS | IBV_ACCESS_ON_DEMAND;
		check(ioctl(admin, VBK_IOC_ATTACH, &w.a) < 0 && errno == EINVAL,
		      "an attach with ON_DEMAND: not EINVAL (%m)");
		w.a.qp_types = VRDMA_QPT_BIT(IBV_QPT_RC);
		w.a.access = IBV_ACCESS_LOCAL_WRITE;
		w.tail = 1;
		check(ioctl(admin, _IOC(_IOC_WRITE, VBK_IOC_MAGIC, _IOC_NR(VBK_IOC_ATTACH),
					sizeof(w)), &w) < 0 && errno == E2BIG,
		      "a longer attach with a non-zero tail: not E2BIG (%m)");
		g3 = ioctl(admin, VBK_IOC_ATTACH, &w.a);
		check(g3 >= 0, "an attachment of RC and local write: %m");
		gfd = g3;
		check(call(VRDMA_FN_HELLO, &hi, sizeof(hi), &ho, sizeof(ho)) == sizeof(ho) &&
		      le32toh(ho.qp_types) == VRDMA_QPT_BIT(IBV_QPT_RC) &&
		      le32toh(ho.access) == IBV_ACCESS_LOCAL_WRITE, "its HELLO's whitelist");
		check(call(VRDMA_FN_CREATE_QP, &qi, sizeof(qi), &qo, sizeof(qo)) == -EPERM,
		      "a UD QP: not EPERM");
		check(call(VRDMA_FN_REG_MR, &mi, sizeof(mi), &mo, sizeof(mo)) == -EPERM,
		      "an MR with remote read: not EPERM");
		close(g3);
		w.a.tag = 0x9abd;
		g3 = ioctl(admin, _IOC(_IOC_WRITE, VBK_IOC_MAGIC, _IOC_NR(VBK_IOC_ATTACH),
				       VBK_ATTACH_SIZE_V1), &w.a);
		check(g3 >= 0, "an attach of the first size: %m");
		gfd = g3;
		check(call(VRDMA_FN_HELLO, &hi, sizeof(hi), &ho, sizeof(ho)) == sizeof(ho) &&
		      le32toh(ho.qp_types) == VRDMA_WL_QP_TYPES &&
		      le32toh(ho.access) == VRDMA_WL_ACCESS,
		      "an attach of the first size: not the whole whitelist");
		close(g3);
		gfd = keep;
	}
	ok("the whitelist: unknown bits EINVAL; RC and local write only: HELLO says so, a UD "
	   "QP and a remote-read MR EPERM; the first size's attach has all of it; a non-zero "
	   "tail E2BIG");

	/* vbusd ends one attachment (the guest left the bus): a second one, with objects, is
	 * revoked by its tag; the first one is untouched. */
	{
		int keep = gfd, g2;
		uint64_t tag = 0x5678;

		at.tag = tag;
		g2 = ioctl(admin, VBK_IOC_ATTACH, &at);
		check(g2 >= 0, "a second attachment: %m");
		gfd = g2;
		check(call(VRDMA_FN_HELLO, &hi, sizeof(hi), &ho, sizeof(ho)) == sizeof(ho), "hello 2");
		handle_call(VRDMA_FN_ALLOC_PD, NULL, 0);
		check(!ioctl(admin, VBK_IOC_REVOKE, &tag), "revoke by tag: %m");
		tag = 0xdead;
		check(ioctl(admin, VBK_IOC_REVOKE, &tag) < 0 && errno == ENOENT, "an unknown tag");
		check(!next_event(&ev) && ev.type == IBV_EVENT_DEVICE_FATAL, "DEVICE_FATAL on revoke");
		check(call(VRDMA_FN_ALLOC_PD, NULL, 0, &ho, 8) == -EIO, "revoked: -EIO");
		tag = 0x5678;
		check(!ioctl(admin, VBK_IOC_REVOKE, &tag), "revoking it again (still open): %m");
		check(ioctl(admin, VBK_IOC_REVOKE, (void *)8) < 0 && errno == EFAULT,
		      "REVOKE from a bad pointer: not EFAULT (%m)");
		check(ioctl(admin, _IOW(VBK_IOC_MAGIC, 0x03, uint32_t), &tag) < 0 && errno == ENOTTY,
		      "a REVOKE of another size: not ENOTTY (%m)");
		close(g2);
		check(ioctl(admin, VBK_IOC_REVOKE, &tag) < 0 && errno == ENOENT,
		      "REVOKE once its descriptor is closed: not ENOENT (%m)");
		gfd = keep;
		check(call(VRDMA_FN_QUERY_DEVICE, NULL, 0, &da, sizeof(da)) == sizeof(da),
		      "the other attachment still works");
	}
	ok("VBK_IOC_REVOKE ends one attachment by its tag, DEVICE_FATAL, -EIO; the other works; "
	   "again 0, unknown or closed ENOENT, bad pointer EFAULT, another size ENOTTY");

	/* vbusd's death: the admin descriptor closes, the attachment is revoked. */
	close(admin);
	check(!next_event(&ev) && ev.type == IBV_EVENT_DEVICE_FATAL, "DEVICE_FATAL on revoke");
	check(call(VRDMA_FN_QUERY_DEVICE, NULL, 0, &da, sizeof(da)) == -EIO, "calls: -EIO");
	check(doorbell(a.h) == -EIO, "doorbell: -EIO");
	check(count_res("qp") == base_qp && count_res("mr") == base_mr,
	      "rdma res back to its baseline after revoke (qp %d/%d, mr %d/%d)",
	      count_res("qp"), base_qp, count_res("mr"), base_mr);
	close(gfd);
	ok("revoked on the admin descriptor's close: DEVICE_FATAL, -EIO, no real object left");
	return 0;
}
