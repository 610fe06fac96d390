// SPDX-License-Identifier: MIT
/*
 * vrdma-foreign: the kernel backend's foreign attachment (VBK_ATTACH_F_FOREIGN,
 * docs/kernel.md "Foreign attachments") on the real soft-RoCE device. This process plays
 * vbusd serving a VM: a memfd is the VM's RAM, mapped MAP_SHARED here, and every ring and
 * buffer is inside that mapping, the MR registered at another iova (the VM process's).
 *
 * Checked: an unknown flag is EINVAL, a bad ram_fd EBADF or EINVAL, and the older attach
 * sizes still make (non-foreign) attachments, whose doorbell 0 stays EINVAL; a ring or an
 * MR outside the RAM's shared mapping (anonymous memory, a private mapping of the memfd,
 * another memfd, a range running off the end) is EFAULT and charges nothing; a CQ and two
 * RC QPs with rings in the RAM, connected to each other; WRITE and SEND rung with
 * VBK_DOORBELL_ALL complete and their completions appear in the CQ ring with no
 * VBK_IOC_POLL_CQ at all (its counter stays 0), every byte compared; the channel eventfd
 * DEREG_MR right after a WRITE naming the MR, with no doorbell, posts the WRITE first (it
 * completes); the channel eventfd
 * is signalled when ring->armed is set (as the guest library sets it), ring->armed is
 * taken back, and it is not signalled when not armed; ARM_CQ and VBK_IOC_POLL_CQ still
 * answer; a privileged Q_Key is EPERM (though this process has CAP_NET_RAW); a forked
 * child's ioctls on the inherited descriptor are EPERM; VBK_IOC_CHILD is EPERM; objects
 * destroyed, then the admin descriptor's close revokes it (DEVICE_FATAL, -EIO) and
 * `rdma res show` is back to its baseline.
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
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <infiniband/verbs.h>
#include <vbus/vrdma.h>
#include <vbus/vrdma-kernel.h>
#include "../lib/vt-time.h"
#include "vbk-test.h"


/* The VM's RAM, as vbusd maps it: one MAP_SHARED mapping of a memfd, and right after it
 * TAIL_PAGES of anonymous memory (where the anonymous rings and MRs go, each wholly mapped,
 * and into which a range running off the RAM's end runs). */
#define RAM_LEN		(1u << 20)
#define TAIL_PAGES	16
#define CQ_OFF		0x00000u
#define QPA_OFF		0x10000u	/* send ring, then the receive ring at +0x4000 */
#define QPB_OFF		0x20000u
#define QPU_OFF		0x30000u	/* the UD QP of the Q_Key check */
#define MR_OFF		0x80000u
#define MR_LEN		0x10000u
#define IOVA		0x7e5500000000ull	/* the VM process's address of the RAM's start */
#define GUEST_ID	9

static int admin;
static uint8_t *ram;
static long page;


static void destroy(uint32_t fn, uint32_t h, const char *what)
{
	struct vrdma_handle in = { .handle = htole32(h) };
	long r = call(fn, &in, sizeof(in), NULL, 0);

	check(r == 0, "destroy %s %#x: %ld", what, h, r);
}

static long doorbell(uint32_t h)
{
	long r = ioctl(gfd, VBK_IOC_DOORBELL, (unsigned long)h);

	return r < 0 ? -errno : r;
}


static void ring_at(struct ring *q, void *p, uint32_t entries, uint32_t stride)
{
	*q = (struct ring){ .r = p, .slots = (uint8_t *)p + sizeof(struct vrdma_ring),
			    .entries = entries, .stride = stride };
}

/* The bytes the module pins (and charges) for a ring at p: the whole pages it touches. */
static uint64_t ring_pinned(const struct ring *q)
{
	uintptr_t a = (uintptr_t)q->r;
	uintptr_t end = a + sizeof(struct vrdma_ring) + (size_t)q->entries * q->stride;

	return ((end + page - 1) & ~(uintptr_t)(page - 1)) - (a & ~(uintptr_t)(page - 1));
}


static uint32_t pd, lkey, rkey, cqh, mrh;
static int doorbell_fd = -1;	/* the module's until the revocation */
static struct ring cq;
static uint32_t cq_cons;

static long create_qp_at(struct qp *qp, uint8_t type, void *sq, void *rq)
{
	struct vrdma_create_qp_in in = { 0 };
	struct vrdma_create_qp_out o;
	long r;

	ring_at(&qp->sq, sq, 64, 128);
	ring_at(&qp->rq, rq, 64, 64);
	in.pd = htole32(pd);
	in.send_cq = in.recv_cq = htole32(cqh);
	in.qp_type = type;
	in.cap = (struct vrdma_qp_cap){ .max_send_wr = htole32(16), .max_recv_wr = htole32(16),
					.max_send_sge = htole32(2), .max_recv_sge = htole32(2),
					.max_inline_data = htole32(32) };
	in.sq_offset = htole64((uintptr_t)sq);
	in.rq_offset = htole64((uintptr_t)rq);
	in.sq_entries = htole32(64);
	in.sq_stride = htole32(128);
	in.rq_entries = htole32(64);
	in.rq_stride = htole32(64);
	r = call(VRDMA_FN_CREATE_QP, &in, sizeof(in), &o, sizeof(o));
	if (r == sizeof(o)) {
		qp->h = le32toh(o.handle);
		qp->qpn = le32toh(o.qp_num);
	}
	return r;
}

static void create_qp(struct qp *qp, uint8_t type, uint32_t off)
{
	long r = create_qp_at(qp, type, ram + off, ram + off + 0x4000);

	check(r == sizeof(struct vrdma_create_qp_out), "create_qp (type %u) in the RAM: %ld",
	      type, r);
}



/* A signalled one-SGE send WQE; off and roff are offsets in the MR, posted as iovas. */
static void post_send(struct qp *qp, uint64_t wr_id, uint8_t op, uint32_t off, uint32_t len,
		      uint32_t roff)
{
	struct vrdma_swqe *w = slot(&qp->sq, qp->sq.idx++);
	struct vrdma_sge *s = (struct vrdma_sge *)(w + 1);

	memset(w, 0, qp->sq.stride);
	w->wr_id = htole64(wr_id);
	w->opcode = op;
	w->num_sge = 1;
	w->send_flags = htole32(IBV_SEND_SIGNALED);
	w->rkey = htole32(rkey);
	w->remote_addr = htole64(IOVA + MR_OFF + roff);
	s->addr = htole64(IOVA + MR_OFF + off);
	s->length = htole32(len);
	s->lkey = htole32(lkey);
	publish(&qp->sq);
}

static void post_recv(struct qp *qp, uint64_t wr_id, uint32_t off, uint32_t len)
{
	struct vrdma_rwqe *w = slot(&qp->rq, qp->rq.idx++);
	struct vrdma_sge *s = (struct vrdma_sge *)(w + 1);

	memset(w, 0, qp->rq.stride);
	w->wr_id = htole64(wr_id);
	w->num_sge = htole32(1);
	s->addr = htole64(IOVA + MR_OFF + off);
	s->length = htole32(len);
	s->lkey = htole32(lkey);
	publish(&qp->rq);
}

static double now(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return t.tv_sec + t.tv_nsec / 1e9;
}

/*
 * The next n completions, as the VM's library takes them: from the CQ ring alone, never
 * asking the module to poll. Each must appear within 5 s (scaled: vt-time.h).
 */
static void take_cqes(struct vrdma_cqe *e, int n, const char *what)
{
	double limit = vt_secs(5), t0 = now();

	for (int k = 0; k < n;) {
		uint32_t prod = le32toh(__atomic_load_n(&cq.r->prod, __ATOMIC_ACQUIRE));

		check(!(__atomic_load_n(&cq.r->flags, __ATOMIC_ACQUIRE) & htole32(VRDMA_RING_BROKEN)),
		      "the CQ ring is broken (%s)", what);
		check(prod - cq_cons <= cq.entries, "CQ ring prod %u, cons %u (%s)", prod, cq_cons,
		      what);
		if (prod != cq_cons) {
			memcpy(&e[k++], slot(&cq, cq_cons++), sizeof(*e));
			__atomic_store_n(&cq.r->cons, htole32(cq_cons), __ATOMIC_RELEASE);
			continue;
		}
		check(now() - t0 < limit, "%s: %d of %d completions in the CQ ring within %.0f s, "
		      "with no VBK_IOC_POLL_CQ", what, k, n, limit);
		usleep(200);
	}
}

/* One completion: wr_id, success, send or receive. */
static void expect_cqe(uint64_t wr_id, int is_send, const char *what)
{
	struct vrdma_cqe e;

	take_cqes(&e, 1, what);
	check(le64toh(e.wr_id) == wr_id && le32toh(e.status) == IBV_WC_SUCCESS &&
	      e.is_send == is_send, "%s: completion wr_id %llu status %u send %u, wanted %llu "
	      "success send %d", what, (unsigned long long)le64toh(e.wr_id), le32toh(e.status),
	      e.is_send, (unsigned long long)wr_id, is_send);
}

static struct vbk_stats stats(void)
{
	struct vbk_stats s = { .guest_id = GUEST_ID };

	check(!ioctl(admin, VBK_IOC_STATS, &s), "VBK_IOC_STATS: %m");
	return s;
}

/* Whether the eventfd has a count, within ms (not scaled when it must not come). */
static int signalled(int efd, int ms)
{
	struct pollfd p = { .fd = efd, .events = POLLIN };
	uint64_t v;

	if (poll(&p, 1, ms) != 1)
		return 0;
	return read(efd, &v, sizeof(v)) == sizeof(v) && v > 0;
}

static uint32_t armed(void)
{
	return le32toh(__atomic_load_n(&cq.r->armed, __ATOMIC_ACQUIRE));
}

static void fill(uint32_t off, uint32_t len, uint8_t seed)
{
	for (uint32_t i = 0; i < len; i++)
		ram[MR_OFF + off + i] = (uint8_t)(i * 13 + seed);
}

/* An attach of the given size (the command carries it); the descriptor or -errno. */
static int attach(struct vbk_attach *at, size_t size)
{
	int r = ioctl(admin, _IOC(_IOC_WRITE, VBK_IOC_MAGIC, _IOC_NR(VBK_IOC_ATTACH), size), at);

	return r < 0 ? -errno : r;
}

/* A CREATE_CQ whose ring is at p; the result of the call. */
static long create_cq_at(void *p, uint32_t channel, struct vrdma_create_cq_out *o)
{
	struct vrdma_create_cq_in in = { .cqe = htole32(63), .entries = htole32(128),
					 .channel = htole32(channel),
					 .offset = htole64((uintptr_t)p) };

	return call(VRDMA_FN_CREATE_CQ, &in, sizeof(in), o, sizeof(*o));
}

/* A REG_MR of one piece: len bytes at our address p, registered at iova. */
static long reg_mr_at(void *p, uint64_t iova, uint64_t len, struct vrdma_reg_mr_out *o)
{
	uint8_t buf[sizeof(struct vrdma_reg_mr_in) + sizeof(struct vrdma_mr_piece)];
	struct vrdma_reg_mr_in *i = (void *)buf;
	struct vrdma_mr_piece *pc = (void *)(i + 1);

	*i = (struct vrdma_reg_mr_in){ .pd = htole32(pd), .iova = htole64(iova),
				       .length = htole64(len), .npieces = htole32(1),
				       .access = htole32(IBV_ACCESS_LOCAL_WRITE |
							 IBV_ACCESS_REMOTE_WRITE |
							 IBV_ACCESS_REMOTE_READ) };
	*pc = (struct vrdma_mr_piece){ .offset = htole64((uintptr_t)p), .length = htole64(len) };
	return call(VRDMA_FN_REG_MR, buf, sizeof(buf), o, sizeof(*o));
}

int main(void)
{
	const char *dev = getenv("VBUS_RXE") ? getenv("VBUS_RXE") : "rxe0";
	struct vbk_attach at = { .port = 1, .max_objects = 64, .guest_id = GUEST_ID,
				 .max_pinned_bytes = 64 << 20, .qp_types = VRDMA_WL_QP_TYPES,
				 .access = VRDMA_WL_ACCESS, .tag = 0xf0 };
	struct vrdma_hello_in hi = { .abi_version = htole32(VRDMA_ABI_VERSION),
				     .abi_min = htole32(VRDMA_ABI_MIN_VERSION) };
	struct vrdma_query_gid_in gi = { .port_num = 1 };
	struct vrdma_query_gid_out go;
	struct vrdma_hello_out ho;
	int base_qp = count_res("qp"), base_mr = count_res("mr"), base_cq = count_res("cq");
	int memfd, efd, fds[2];
	uint64_t pinned = 0;
	uint8_t *anon;
	struct qp a, b, u;
	struct vbk_event ev;
	struct vbk_stats s;
	long r;

	setvbuf(stdout, NULL, _IONBF, 0);
	page = sysconf(_SC_PAGESIZE);
	gid_index = getenv("VBUS_GID_INDEX") ? (uint32_t)atoi(getenv("VBUS_GID_INDEX")) : 1;
	admin = open("/dev/" VBK_DEV_NAME, O_RDWR | O_CLOEXEC);
	if (admin < 0) {
		printf("SKIP: /dev/%s: %m (the vbus_vrdma module is not loaded: VBUS_KMOD=%s)\n",
		       VBK_DEV_NAME, getenv("VBUS_KMOD") ? getenv("VBUS_KMOD") : "unset");
		return 77;
	}
	snprintf(at.ibdev, sizeof(at.ibdev), "%s", dev);
	at.gid_index = gid_index;

	/* The VM's RAM: a memfd, mapped shared, with anonymous memory right after it. */
	memfd = memfd_create("vrdma-foreign-ram", MFD_CLOEXEC);
	check(memfd >= 0 && !ftruncate(memfd, RAM_LEN), "memfd: %m");
	anon = mmap(NULL, RAM_LEN + TAIL_PAGES * page, PROT_READ | PROT_WRITE,
		    MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	check(anon != MAP_FAILED, "mmap: %m");
	ram = mmap(anon, RAM_LEN, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_FIXED, memfd, 0);
	check(ram == anon, "mmap the RAM: %m");
	anon = ram + RAM_LEN;	/* the anonymous tail, present (a pin would succeed) */
	memset(anon, 0, TAIL_PAGES * page);

	/* Attach: flags and ram_fd checked; the older sizes are process guests' attaches. */
	at.flags = 1u << 1;
	check(attach(&at, sizeof(at)) == -EINVAL, "an unknown flag (1 << 1): not EINVAL");
	at.flags = VBK_ATTACH_F_FOREIGN | 1u << 31;
	check(attach(&at, sizeof(at)) == -EINVAL, "an unknown flag (1 << 31): not EINVAL");
	at.flags = VBK_ATTACH_F_FOREIGN;
	at.ram_fd = -1;
	r = attach(&at, sizeof(at));
	check(r == -EBADF, "FOREIGN with ram_fd -1: %ld, not EBADF", r);
	check(pipe2(fds, O_CLOEXEC) == 0, "pipe: %m");
	at.ram_fd = fds[0];
	r = attach(&at, sizeof(at));
	check(r == -EINVAL, "FOREIGN with a pipe for RAM: %ld, not EINVAL", r);
	close(fds[1]);
	at.ram_fd = fds[0];	/* closed now */
	close(fds[0]);
	r = attach(&at, sizeof(at));
	check(r == -EBADF, "FOREIGN with a closed ram_fd: %ld, not EBADF", r);
	at.ram_fd = memfd;
	for (size_t size = VBK_ATTACH_SIZE_V2; size >= VBK_ATTACH_SIZE_V1;
	     size -= VBK_ATTACH_SIZE_V2 - VBK_ATTACH_SIZE_V1) {
		/* flags and ram_fd lie past this size: not read, a process guest's attachment */
		gfd = attach(&at, size);
		check(gfd >= 0, "an attach of %zu bytes: %s", size, strerror(-gfd));
		check(call(VRDMA_FN_HELLO, &hi, sizeof(hi), &ho, sizeof(ho)) == sizeof(ho),
		      "HELLO on the %zu-byte attach", size);
		check(doorbell(VBK_DOORBELL_ALL) == -EINVAL,
		      "doorbell 0 on a non-foreign attachment: not EINVAL");
		close(gfd);
	}
	ok("attach: unknown flags EINVAL, ram_fd -1 or closed EBADF, a pipe EINVAL; the %d- and "
	   "%d-byte attaches still work (doorbell 0 there: EINVAL)", VBK_ATTACH_SIZE_V2,
	   VBK_ATTACH_SIZE_V1);

	gfd = attach(&at, sizeof(at));
	check(gfd >= 0, "a FOREIGN attach of %s with the memfd: %s", dev, strerror(-gfd));
	r = call(VRDMA_FN_HELLO, &hi, sizeof(hi), &ho, sizeof(ho));
	check(r == sizeof(ho) && le32toh(ho.gid_index) == gid_index, "hello: %ld", r);
	gi.index = htole32(gid_index);
	r = call(VRDMA_FN_QUERY_GID, &gi, sizeof(gi), &go, sizeof(go));
	check(r == sizeof(go), "query_gid: %ld", r);
	pd = handle_call(VRDMA_FN_ALLOC_PD, NULL, 0);
	ok("a FOREIGN attachment on %s, its RAM a %u KiB memfd", dev, RAM_LEN >> 10);

	/* Rings outside the RAM's shared mapping. */
	{
		struct vrdma_create_cq_out o;
		uint8_t *priv = mmap(NULL, RAM_LEN, PROT_READ | PROT_WRITE, MAP_PRIVATE, memfd, 0);
		int other_fd = memfd_create("vrdma-foreign-other", MFD_CLOEXEC);
		uint8_t *other;
		struct qp x;

		check(priv != MAP_FAILED, "a private mapping of the memfd: %m");
		check(other_fd >= 0 && !ftruncate(other_fd, RAM_LEN), "another memfd: %m");
		other = mmap(NULL, RAM_LEN, PROT_READ | PROT_WRITE, MAP_SHARED, other_fd, 0);
		check(other != MAP_FAILED, "mmap another memfd: %m");
		r = create_cq_at(anon, 0, &o);
		check(r == -EFAULT, "a CQ ring in anonymous memory: %ld, not EFAULT", r);
		r = create_cq_at(priv, 0, &o);
		check(r == -EFAULT, "a CQ ring in a private mapping of the RAM: %ld, not EFAULT", r);
		r = create_cq_at(other, 0, &o);
		check(r == -EFAULT, "a CQ ring in another memfd: %ld, not EFAULT", r);
		r = create_cq_at(ram + RAM_LEN - page, 0, &o);	/* 3 pages: 1 RAM, 2 tail */
		check(r == -EFAULT, "a CQ ring running off the RAM: %ld, not EFAULT", r);
		efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
		check(efd >= 0, "eventfd: %m");
		ring_at(&cq, ram + CQ_OFF, 128, sizeof(struct vrdma_cqe));
		r = create_cq_at(cq.r, (uint32_t)efd + 1, &o);
		check(r == sizeof(o) && le32toh(o.cqe) >= 63 && le32toh(o.cqe) <= 128,
		      "a CQ in the RAM: %ld", r);
		cqh = le32toh(o.handle);
		pinned += ring_pinned(&cq);
		r = create_qp_at(&x, IBV_QPT_RC, ram + QPU_OFF, anon);
		check(r == -EFAULT, "a QP with its receive ring in anonymous memory: %ld", r);
		munmap(priv, RAM_LEN);
		munmap(other, RAM_LEN);
		close(other_fd);
	}
	create_qp(&a, IBV_QPT_RC, QPA_OFF);
	create_qp(&b, IBV_QPT_RC, QPB_OFF);
	pinned += ring_pinned(&a.sq) + ring_pinned(&a.rq) + ring_pinned(&b.sq) +
		  ring_pinned(&b.rq);
	connect_qp(&a, b.qpn, go.gid);
	connect_qp(&b, a.qpn, go.gid);
	ok("rings outside the RAM's shared mapping EFAULT (anonymous, private, another memfd, "
	   "off its end); a CQ and two RC QPs in it, connected (QPN %u <-> %u)", a.qpn, b.qpn);

	/* MRs: outside the RAM EFAULT; inside it, at the VM process's iova. */
	{
		struct vrdma_reg_mr_in in0 = { .pd = htole32(pd), .iova = htole64((uintptr_t)anon),
					       .length = htole64(page),
					       .access = htole32(IBV_ACCESS_LOCAL_WRITE) };
		struct vrdma_reg_mr_out o;

		r = reg_mr_at(anon, IOVA, page, &o);
		check(r == -EFAULT, "an MR piece in anonymous memory: %ld, not EFAULT", r);
		r = call(VRDMA_FN_REG_MR, &in0, sizeof(in0), &o, sizeof(o));
		check(r == -EFAULT, "an MR of anonymous memory without a piece: %ld, not EFAULT", r);
		r = reg_mr_at(ram + RAM_LEN - page, IOVA, 2 * page, &o);
		check(r == -EFAULT, "an MR running off the RAM: %ld, not EFAULT", r);
		r = reg_mr_at(ram + MR_OFF, IOVA + MR_OFF, MR_LEN, &o);
		check(r == sizeof(o), "an MR in the RAM at iova %#llx: %ld",
		      (unsigned long long)IOVA + MR_OFF, r);
		mrh = le32toh(o.handle);
		lkey = le32toh(o.lkey);
		rkey = le32toh(o.rkey);
		pinned += MR_LEN;
	}
	s = stats();
	check(s.pinned_bytes == pinned, "pinned bytes %llu, wanted %llu (rings and the MR; the "
	      "refused ones none)", (unsigned long long)s.pinned_bytes,
	      (unsigned long long)pinned);
	ok("MRs outside the RAM EFAULT; one in it at iova %#llx; %llu bytes pinned, as charged",
	   (unsigned long long)IOVA + MR_OFF, (unsigned long long)pinned);

	/* RDMA WRITE rung with VBK_DOORBELL_ALL; the completion is pushed into the ring. */
	fill(0, 4096, 3);
	post_send(&a, 11, IBV_WR_RDMA_WRITE, 0, 4096, 8192);
	r = doorbell(VBK_DOORBELL_ALL);
	check(r == 1, "VBK_DOORBELL_ALL with one WRITE published: %ld, wanted 1", r);
	expect_cqe(11, 1, "RDMA WRITE");
	check(!memcmp(ram + MR_OFF, ram + MR_OFF + 8192, 4096), "RDMA WRITE data");
	ok("RDMA WRITE 4 KiB rung with VBK_DOORBELL_ALL: its completion in the CQ ring unpolled, "
	   "every byte arrived");

	/* SEND into B's receive, and B's WRITE back, rung together. */
	fill(16384, 1000, 5);
	fill(24576, 2048, 7);
	post_recv(&b, 21, 20480, 2048);
	r = doorbell(VBK_DOORBELL_ALL);
	check(r == 1, "VBK_DOORBELL_ALL with one receive: %ld", r);
	post_send(&a, 12, IBV_WR_SEND, 16384, 1000, 0);
	post_send(&b, 22, IBV_WR_RDMA_WRITE, 24576, 2048, 28672);
	r = doorbell(VBK_DOORBELL_ALL);
	check(r == 2, "VBK_DOORBELL_ALL with sends on two QPs: %ld, wanted 2", r);
	{
		struct vrdma_cqe e[3];
		unsigned seen = 0;

		take_cqes(e, 3, "SEND, its receive and a WRITE");
		for (int k = 0; k < 3; k++) {
			uint64_t id = le64toh(e[k].wr_id);

			check(le32toh(e[k].status) == IBV_WC_SUCCESS, "wr_id %llu: status %u",
			      (unsigned long long)id, le32toh(e[k].status));
			if (id == 12)
				check(e[k].is_send && le32toh(e[k].qp_handle) == a.h, "the SEND's");
			else if (id == 21)
				check(!e[k].is_send && le32toh(e[k].byte_len) == 1000 &&
				      le32toh(e[k].qp_num) == b.qpn, "the receive's");
			else if (id == 22)
				check(e[k].is_send && le32toh(e[k].qp_handle) == b.h, "B's WRITE's");
			else
				fail("an unexpected completion, wr_id %llu", (unsigned long long)id);
			seen |= id == 12 ? 1 : id == 21 ? 2 : 4;
		}
		check(seen == 7, "each of the three once (seen %#x)", seen);
	}
	check(!memcmp(ram + MR_OFF + 16384, ram + MR_OFF + 20480, 1000), "SEND data");
	check(!memcmp(ram + MR_OFF + 24576, ram + MR_OFF + 28672, 2048), "B's WRITE data");
	s = stats();
	check(s.polls == 0 && s.cqes == 4 && s.wqes == 4,
	      "counters: polls %llu (want 0), cqes %llu (want 4), wqes %llu (want 4)",
	      (unsigned long long)s.polls, (unsigned long long)s.cqes,
	      (unsigned long long)s.wqes);
	check(!signalled(efd, 0), "the channel signalled while the ring was not armed");
	ok("SEND 1000 B into a receive and a WRITE on the other QP, one doorbell: the three "
	   "completions pushed, data intact; no poll was asked, no channel signal");

	/* DEREG_MR right after a post that names the MR, with no doorbell between (a VM's
	 * doorbell is asynchronous): the module posts the published sends first, as natively
	 * the WQE was on the device when the post returned (the same before DESTROY_AH). */
	{
		struct vrdma_reg_mr_out o;
		uint32_t keep = lkey;

		r = reg_mr_at(ram + MR_OFF, IOVA + MR_OFF, MR_LEN, &o);
		check(r == sizeof(o), "a second MR over the same pages: %ld", r);
		fill(32768, 512, 9);
		lkey = le32toh(o.lkey);
		post_send(&a, 13, IBV_WR_RDMA_WRITE, 32768, 512, 36864);
		lkey = keep;
		destroy(VRDMA_FN_DEREG_MR, le32toh(o.handle), "the second MR");
		expect_cqe(13, 1, "a WRITE through an MR deregistered before any doorbell");
		check(!memcmp(ram + MR_OFF + 32768, ram + MR_OFF + 36864, 512), "its data");
	}
	ok("DEREG_MR right after a WRITE that names the MR, no doorbell rung: the WRITE was "
	   "posted first and completes, data intact");

	/* Armed, as the guest library arms it (ring->armed, a seq_cst exchange): a completion
	 * signals the channel and takes the flag back. 2 (solicited only) is taken as any. */
	for (uint32_t v = 1; v <= 2; v++) {
		check(armed() == 0, "ring->armed is %u before arming", armed());
		__atomic_exchange_n(&cq.r->armed, htole32(v), __ATOMIC_SEQ_CST);
		fill(32768, 512, (uint8_t)v);
		post_send(&a, 30 + v, IBV_WR_RDMA_WRITE, 32768, 512, 36864);
		r = doorbell(VBK_DOORBELL_ALL);
		check(r == 1, "armed %u: VBK_DOORBELL_ALL: %ld", v, r);
		check(signalled(efd, vt_ms(5000)), "armed %u: the channel eventfd was not "
		      "signalled within %d ms", v, vt_ms(5000));
		check(armed() == 0, "armed %u: ring->armed not taken back (%u)", v, armed());
		expect_cqe(30 + v, 1, "a WRITE with the ring armed");
		check(!memcmp(ram + MR_OFF + 32768, ram + MR_OFF + 36864, 512), "its data");
	}
	/* Not armed again: the next completion comes with no signal. */
	post_send(&a, 33, IBV_WR_RDMA_WRITE, 0, 64, 40960);
	check(doorbell(a.h) == 1, "a doorbell on A's handle");
	expect_cqe(33, 1, "a WRITE rung on its QP's handle");
	check(!signalled(efd, 200), "the channel signalled with the ring no longer armed");
	{
		struct vrdma_arm_cq_in ai = { .handle = htole32(cqh) };

		check(call(VRDMA_FN_ARM_CQ, &ai, sizeof(ai), NULL, 0) == 0, "ARM_CQ");
		ai.solicited_only = htole32(1);
		check(call(VRDMA_FN_ARM_CQ, &ai, sizeof(ai), NULL, 0) == 0, "ARM_CQ solicited");
		r = ioctl(gfd, VBK_IOC_POLL_CQ, (unsigned long)cqh);
		check(r == 0, "VBK_IOC_POLL_CQ on an empty CQ: %ld (%m)", r);
		check(doorbell(VBK_DOORBELL_ALL) == 0, "VBK_DOORBELL_ALL with nothing published");
		check(!signalled(efd, 100), "ARM_CQ with nothing new signalled the channel");
	}
	ok("ring->armed (1, and 2 as any): the channel signalled, armed taken back; not armed: "
	   "no signal; ARM_CQ, VBK_IOC_POLL_CQ and an empty VBK_DOORBELL_ALL answer");

	/* The doorbell eventfd (VBK_IOC_DOORBELL_FD), as vbusd hands it the VM's: each write
	 * drains every queue in the writer's own context (task work at its return to user
	 * mode), so the WQE is posted before write() returns here, and on no worker. */
	{
		int dfd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
		uint64_t one = 1, v;
		struct vbk_stats s0, s1;

		check(dfd >= 0, "eventfd: %m");
		check(ioctl(gfd, VBK_IOC_DOORBELL_FD, (unsigned long)memfd) < 0 && errno == EINVAL,
		      "the RAM's memfd as the doorbell: not EINVAL (%m)");
		check(ioctl(gfd, VBK_IOC_DOORBELL_FD, (unsigned long)-2) < 0 && errno == EBADF,
		      "descriptor -2 as the doorbell: not EBADF (%m)");
		check(!ioctl(gfd, VBK_IOC_DOORBELL_FD, (unsigned long)dfd), "VBK_IOC_DOORBELL_FD: %m");
		s0 = stats();
		fill(32768, 512, 9);
		post_send(&a, 41, IBV_WR_RDMA_WRITE, 32768, 512, 36864);
		check(write(dfd, &one, sizeof(one)) == sizeof(one), "the doorbell's write: %m");
		s1 = stats();
		check(s1.wqes == s0.wqes + 1 && s1.db_wakes == s0.db_wakes + 1 &&
		      s1.db_worker == s0.db_worker && s1.doorbells == s0.doorbells + 1,
		      "after the doorbell's write returned: wqes +%llu, drains queued +%llu, on a "
		      "worker +%llu, doorbells +%llu; wanted 1, 1, 0, 1",
		      (unsigned long long)(s1.wqes - s0.wqes),
		      (unsigned long long)(s1.db_wakes - s0.db_wakes),
		      (unsigned long long)(s1.db_worker - s0.db_worker),
		      (unsigned long long)(s1.doorbells - s0.doorbells));
		expect_cqe(41, 1, "a WRITE rung through the doorbell eventfd");
		check(!memcmp(ram + MR_OFF + 32768, ram + MR_OFF + 36864, 512), "its data");
		check(read(dfd, &v, sizeof(v)) < 0 && errno == EAGAIN,
		      "the eventfd kept a count the module took");
		ok("VBK_IOC_DOORBELL_FD: a write to the eventfd posted the WRITE before it returned, "
		   "in the writer's context (no worker); a memfd EINVAL, -2 EBADF");

		/* -1: the eventfd is no longer the module's; a write then only counts. */
		check(!ioctl(gfd, VBK_IOC_DOORBELL_FD, (unsigned long)-1), "DOORBELL_FD -1: %m");
		post_send(&a, 42, IBV_WR_RDMA_WRITE, 0, 64, 40960);
		check(write(dfd, &one, sizeof(one)) == sizeof(one), "write: %m");
		s0 = stats();
		check(s0.wqes == s1.wqes, "a write after DOORBELL_FD -1 posted (%llu WQEs more)",
		      (unsigned long long)(s0.wqes - s1.wqes));
		/* Given again while it holds a count: the module drains at once. */
		check(!ioctl(gfd, VBK_IOC_DOORBELL_FD, (unsigned long)dfd), "DOORBELL_FD again: %m");
		expect_cqe(42, 1, "a WRITE rung before the eventfd was given again");
		s1 = stats();
		check(s1.wqes == s0.wqes + 1, "given again: %llu WQEs posted, wanted 1",
		      (unsigned long long)(s1.wqes - s0.wqes));
		ok("DOORBELL_FD -1: a write no longer drains; the eventfd given again with a count "
		   "drains at once");
		/* It stays the module's until the revocation below, which must let it go. */
		doorbell_fd = dfd;
	}

	/* A privileged Q_Key: EPERM on a foreign attachment, though we have CAP_NET_RAW. */
	{
		struct vrdma_qp_attr qa = { .qp_state = htole32(IBV_QPS_INIT), .port_num = 1,
					    .qkey = htole32(0x80000001u) };
		uint32_t mask = IBV_QP_STATE | IBV_QP_PKEY_INDEX | IBV_QP_PORT | IBV_QP_QKEY;

		create_qp(&u, IBV_QPT_UD, QPU_OFF);
		r = modify_r(u.h, mask, &qa);
		check(r == -EPERM, "a privileged Q_Key: %ld, not EPERM", r);
		qa.qkey = htole32(0x11111111u);
		modify(u.h, mask, &qa);
	}
	ok("a privileged Q_Key EPERM, an ordinary one taken");

	/* Another address space: a forked child's ioctls on the inherited descriptor. */
	{
		pid_t pid = fork();
		int st;

		check(pid >= 0, "fork: %m");
		if (pid == 0) {
			struct vbk_child c = { .max_objects = 1, .gid_index = gid_index };
			long e1 = call(VRDMA_FN_HELLO, &hi, sizeof(hi), &ho, sizeof(ho));
			long e2 = doorbell(VBK_DOORBELL_ALL);
			long e3 = ioctl(gfd, VBK_IOC_POLL_CQ, (unsigned long)cqh) < 0 ? -errno : 0;
			long e4 = ioctl(gfd, VBK_IOC_CHILD, &c) < 0 ? -errno : 0;

			if (e1 != -EPERM || e2 != -EPERM || e3 != -EPERM || e4 != -EPERM) {
				printf("FAIL: in a forked child: CALL %ld, DOORBELL %ld, POLL_CQ %ld, "
				       "CHILD %ld; wanted %d (EPERM) each\n", e1, e2, e3, e4, -EPERM);
				_exit(1);
			}
			_exit(0);
		}
		check(waitpid(pid, &st, 0) == pid, "waitpid: %m");
		check(WIFEXITED(st) && WEXITSTATUS(st) == 0, "the forked child (status %#x)", st);
		check(call(VRDMA_FN_HELLO, &hi, sizeof(hi), &ho, sizeof(ho)) == sizeof(ho),
		      "HELLO from the attaching process after the fork");
	}
	{
		struct vbk_child c = { .max_objects = 1, .gid_index = gid_index };

		check(ioctl(gfd, VBK_IOC_CHILD, &c) < 0 && errno == EPERM,
		      "VBK_IOC_CHILD on a foreign attachment: not EPERM (%m)");
	}
	ok("a forked child's CALL, DOORBELL, POLL_CQ and CHILD EPERM; VBK_IOC_CHILD EPERM");

	/* The objects go (the CQ last, off the completion worker's list), then a completion
	 * with the CQ gone cannot be; the real objects are there until then. */
	check(count_res("qp") == base_qp + 3, "rdma res show qp: %d, baseline %d",
	      count_res("qp"), base_qp);
	destroy(VRDMA_FN_DESTROY_QP, u.h, "UD QP");
	destroy(VRDMA_FN_DESTROY_QP, a.h, "QP A");
	destroy(VRDMA_FN_DESTROY_QP, b.h, "QP B");
	destroy(VRDMA_FN_DEREG_MR, mrh, "MR");
	destroy(VRDMA_FN_DESTROY_CQ, cqh, "CQ");
	s = stats();
	check(s.pinned_bytes == 0 && s.objects == 1, "after the destroys: %llu bytes pinned, %u "
	      "objects (the PD)", (unsigned long long)s.pinned_bytes, s.objects);
	ok("QPs, MR and CQ destroyed: nothing pinned");

	/* vbusd's death: the admin descriptor closes, the attachment is revoked. */
	close(admin);
	{
		struct pollfd p = { .fd = gfd, .events = POLLIN };

		check(poll(&p, 1, vt_ms(10000)) == 1 && read(gfd, &ev, sizeof(ev)) == sizeof(ev) &&
		      ev.type == IBV_EVENT_DEVICE_FATAL, "DEVICE_FATAL on revoke");
	}
	check(call(VRDMA_FN_ALLOC_PD, NULL, 0, &ho, 8) == -EIO, "calls after revoke: not -EIO");
	check(doorbell(VBK_DOORBELL_ALL) == -EIO, "VBK_DOORBELL_ALL after revoke: not -EIO");
	{	/* the revocation took the doorbell eventfd back: a write is only a count */
		uint64_t one = 1;

		check(write(doorbell_fd, &one, sizeof(one)) == sizeof(one), "write: %m");
		check(ioctl(gfd, VBK_IOC_DOORBELL_FD, (unsigned long)doorbell_fd) < 0 &&
		      errno == EIO, "VBK_IOC_DOORBELL_FD after revoke: not EIO (%m)");
		close(doorbell_fd);
	}
	close(gfd);
	check(count_res("qp") == base_qp && count_res("mr") == base_mr &&
	      count_res("cq") == base_cq,
	      "rdma res back to its baseline (qp %d/%d, mr %d/%d, cq %d/%d)", count_res("qp"),
	      base_qp, count_res("mr"), base_mr, count_res("cq"), base_cq);
	munmap(ram, RAM_LEN + TAIL_PAGES * page);
	close(memfd);
	close(efd);
	ok("revoked on the admin descriptor's close: DEVICE_FATAL, -EIO; rdma res at its "
	   "baseline");
	return 0;
}
