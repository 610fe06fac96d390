// SPDX-License-Identifier: MIT
/*
 * guest/memory: run under vbus-run (tests/device/guest-memory.sh). A plain libibverbs
 * program that checks what the guest library does to memory and to the synchronous
 * semantics of posting, with every byte compared:
 *  - large memalign/posix_memalign buffers come from the memfd arena before registration
 *    (nothing moves), small ones and malloc from glibc; free and realloc work on both;
 *  - registering heap and mmap buffers keeps their contents (pages are moved, not lost);
 *  - RDMA WRITE, SEND and RDMA READ between two RC QPs on the vbus device carry the data
 *    at unaligned offsets, and nothing outside the target changes;
 *  - the stack, a file mapping and shared memory are refused with EFAULT;
 *  - a buffer registered twice works through both MRs; a buffer unmapped and mapped
 *    again at the same address is registered anew and carries data;
 *  - a full send queue gives ENOMEM with bad_wr, too many SGEs EINVAL, posting in INIT
 *    EINVAL;
 *  - an extended CQ (ibv_create_cq_ex) reports completions through ibv_start_poll,
 *    ibv_next_poll, ibv_end_poll and the ibv_wc_read_* accessors; timestamps are refused.
 */
#include <errno.h>
#include <fcntl.h>
#include <malloc.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>
#include <linux/capability.h>
#include <infiniband/verbs.h>
#include "loopback.h"

#define DEPTH 16

static struct ibv_context *ctx;
static struct ibv_pd *pd;
static struct ibv_cq *cq;
static struct ibv_qp *qp[2];

static void fill(uint8_t *p, size_t n, unsigned seed)
{
	for (size_t i = 0; i < n; i++)
		p[i] = (uint8_t)(seed * 31 + i * 7 + (i >> 8));
}

static int same(const uint8_t *p, size_t n, unsigned seed)
{
	for (size_t i = 0; i < n; i++)
		if (p[i] != (uint8_t)(seed * 31 + i * 7 + (i >> 8)))
			return 0;
	return 1;
}

static void wait_wc(uint64_t wr_id, enum ibv_wc_opcode op)
{
	struct ibv_wc wc;
	time_t end = time(NULL) + (time_t)vt_secs(10);
	int n;

	while ((n = ibv_poll_cq(cq, 1, &wc)) == 0)
		check(time(NULL) < end, "no completion for wr_id %llu", (unsigned long long)wr_id);
	check(n == 1, "poll_cq: %d", n);
	check(wc.status == IBV_WC_SUCCESS, "wr_id %llu: %s", (unsigned long long)wc.wr_id,
	      ibv_wc_status_str(wc.status));
	check(wc.wr_id == wr_id && wc.opcode == op, "wr_id %llu opcode %d, wanted %llu %d",
	      (unsigned long long)wc.wr_id, wc.opcode, (unsigned long long)wr_id, op);
}

/* Both QPs are on this one device: lb_connect with its GID. */
static void to_rts(struct ibv_qp *q, uint32_t remote_qpn, union ibv_gid *gid, int gi)
{
	struct lb l = { .gid = *gid, .gid_index = gi };

	lb_connect(&l, q, remote_qpn);
}

static void post(struct ibv_qp *q, uint64_t id, enum ibv_wr_opcode op, void *buf, uint32_t len,
		 uint32_t lkey, void *raddr, uint32_t rkey)
{
	struct ibv_sge s = { .addr = (uintptr_t)buf, .length = len, .lkey = lkey };
	struct ibv_send_wr wr = { .wr_id = id, .sg_list = &s, .num_sge = 1, .opcode = op,
		.send_flags = IBV_SEND_SIGNALED }, *bad;

	wr.wr.rdma.remote_addr = (uintptr_t)raddr;
	wr.wr.rdma.rkey = rkey;
	check(!ibv_post_send(q, &wr, &bad), "post_send opcode %d", op);
}

/* The path of the mapping that holds p, from /proc/self/maps ("" for anonymous). */
static const char *mapping_of(const void *p)
{
	static char path[256];
	char line[512];
	FILE *f = fopen("/proc/self/maps", "r");

	path[0] = 0;
	while (f && fgets(line, sizeof(line), f)) {
		unsigned long s, e;
		char pth[256] = "";

		if (sscanf(line, "%lx-%lx %*s %*s %*s %*s %255[^\n]", &s, &e, pth) >= 2 &&
		    (uintptr_t)p >= s && (uintptr_t)p < e) {
			snprintf(path, sizeof(path), "%s", pth);
			break;
		}
	}
	if (f)
		fclose(f);
	return path;
}

static void arena(void)
{
	uint8_t *big = memalign(4096, 1 << 20), *small = memalign(64, 1000), *pm = NULL, *r;
	struct ibv_mr *mr;

	check(big && small && !posix_memalign((void **)&pm, 65536, 300000), "allocations");
	check(!((uintptr_t)pm & 65535), "posix_memalign alignment");
	const char *be = getenv("VD_BACKEND"), *ae = getenv("VBUS_ARENA");

	if (ae && !strcmp(ae, "0")) {
		check(!strstr(mapping_of(big), "vbus-mr"), "VBUS_ARENA=0 still used the arena");
		printf("ok   VBUS_ARENA=0: memalign goes to glibc\n");
	} else if (!ae && be && !strcmp(be, "kernel")) {
		/* vrdma0 opened first, on the kernel backend, which pins buffers in place */
		check(!strstr(mapping_of(big), "vbus-mr") && !strstr(mapping_of(pm), "vbus-mr"),
		      "the arena served a program whose first device is on the kernel backend");
		printf("ok   kernel backend opened first: the arena stays off, memalign goes to glibc\n");
	} else {
		check(strstr(mapping_of(big), "/memfd:vbus-mr-"), "1 MiB memalign not in the arena: '%s'",
		      mapping_of(big));
		check(strstr(mapping_of(pm), "/memfd:vbus-mr-"), "posix_memalign not in the arena");
		check(!strstr(mapping_of(small), "vbus-mr"), "a small memalign went to the arena");
		printf("ok   large memalign/posix_memalign come from the arena, small ones from glibc\n");
	}
	fill(big, 1 << 20, 9);
	mr = ibv_reg_mr(pd, big + 100, (1 << 20) - 100, IBV_ACCESS_LOCAL_WRITE);
	check(mr && same(big, 1 << 20, 9), "registering an arena buffer");
	check(!ibv_dereg_mr(mr), "dereg arena MR");
	fill(pm, 300000, 10);
	r = realloc(pm, 400000);	/* out of the arena, contents kept */
	check(r && same(r, 300000, 10), "realloc of an arena block");
	free(r);
	free(big);
	free(small);
	big = memalign(4096, 1 << 20);	/* the freed block is reused */
	check(big, "memalign after free");
	free(big);
	printf("ok   arena buffers register, realloc keeps contents, free and reuse work\n");
}

static void cq_ex(union ibv_gid *gid, int gi, struct ibv_mr *mr, uint8_t *buf)
{
	struct ibv_cq_init_attr_ex ca = { .cqe = 16, .wc_flags = IBV_WC_EX_WITH_BYTE_LEN |
					  IBV_WC_EX_WITH_QP_NUM };
	struct ibv_cq_init_attr_ex ts = { .cqe = 16, .wc_flags = IBV_WC_EX_WITH_COMPLETION_TIMESTAMP };
	struct ibv_poll_cq_attr pa = { 0 };
	struct ibv_cq_ex *x;
	struct ibv_qp *q[2];
	int n = 0, r;

	check(!ibv_create_cq_ex(ctx, &ts) && errno == EOPNOTSUPP, "timestamps: not EOPNOTSUPP");
	x = ibv_create_cq_ex(ctx, &ca);
	check(x, "ibv_create_cq_ex: %s", strerror(errno));
	check(ibv_start_poll(x, &pa) == ENOENT, "start_poll on an empty CQ");
	for (int k = 0; k < 2; k++) {
		struct ibv_qp_init_attr ia = { .send_cq = ibv_cq_ex_to_cq(x),
			.recv_cq = ibv_cq_ex_to_cq(x), .qp_type = IBV_QPT_RC,
			.cap = { .max_send_wr = 4, .max_recv_wr = 4, .max_send_sge = 1, .max_recv_sge = 1 } };

		q[k] = ibv_create_qp(pd, &ia);
		check(q[k], "QP on the extended CQ");
	}
	to_rts(q[0], q[1]->qp_num, gid, gi);
	to_rts(q[1], q[0]->qp_num, gid, gi);
	for (int k = 0; k < 3; k++)
		post(q[0], 70 + k, IBV_WR_RDMA_WRITE, buf + 64 * k, 64, mr->lkey, buf + 4096 + 64 * k,
		     mr->rkey);
	for (time_t end = time(NULL) + (time_t)vt_secs(10); n < 3;) {
		check(time(NULL) < end, "extended CQ: %d of 3 completions", n);
		r = ibv_start_poll(x, &pa);
		if (r == ENOENT)
			continue;
		check(!r, "start_poll: %d", r);
		do {
			check(x->status == IBV_WC_SUCCESS && x->wr_id == (uint64_t)(70 + n) &&
			      ibv_wc_read_opcode(x) == IBV_WC_RDMA_WRITE &&
			      ibv_wc_read_qp_num(x) == q[0]->qp_num,
			      "completion %d: status %d wr_id %llu opcode %d", n, x->status,
			      (unsigned long long)x->wr_id, ibv_wc_read_opcode(x));
			n++;
		} while (!(r = ibv_next_poll(x)));
		check(r == ENOENT, "next_poll: %d", r);
		ibv_end_poll(x);
	}
	check(!ibv_destroy_qp(q[0]) && !ibv_destroy_qp(q[1]) && !ibv_destroy_cq(ibv_cq_ex_to_cq(x)),
	      "extended CQ teardown");
	printf("ok   extended CQ: 3 completions through start/next/end_poll and wc_read_*\n");
}

/* CAP_SYS_ADMIN and CAP_CHECKPOINT_RESTORE in or out of the effective set (the permitted
 * set keeps them, so they can come back). */
static void effective(bool on)
{
	struct __user_cap_header_struct h = { .version = _LINUX_CAPABILITY_VERSION_3 };
	struct __user_cap_data_struct d[2];
	uint32_t lo = 1u << CAP_SYS_ADMIN, hi = 1u << (CAP_CHECKPOINT_RESTORE - 32);

	check(!syscall(SYS_capget, &h, d), "capget: %s", strerror(errno));
	d[0].effective = on ? d[0].effective | (d[0].permitted & lo) : d[0].effective & ~lo;
	d[1].effective = on ? d[1].effective | (d[1].permitted & hi) : d[1].effective & ~hi;
	check(!syscall(SYS_capset, &h, d), "capset: %s", strerror(errno));
}

/* The kernel backend pins a buffer where it is, as native rxe does: what the relay must
 * refuse registers there (VD_BACKEND is the test runner's). Read-only access, since the
 * file mapping is read-only (local write would be EFAULT natively too). */
static void in_place(void *p, size_t len, const char *what)
{
	struct ibv_mr *mr = ibv_reg_mr(pd, p, len, 0);

	check(mr, "%s: not registered on the kernel backend: %s", what, strerror(errno));
	check(!ibv_dereg_mr(mr), "%s: dereg", what);
	printf("ok   %s registers in place (kernel backend, as natively)\n", what);
}

static void refused(void *p, size_t len, const char *what)
{
	const char *b = getenv("VD_BACKEND");

	if (b && !strcmp(b, "kernel")) {
		in_place(p, len, what);
		return;
	}
	struct ibv_mr *mr = ibv_reg_mr(pd, p, len, IBV_ACCESS_LOCAL_WRITE);

	check(!mr && errno == EFAULT, "%s: registered or wrong errno (%d)", what, errno);
	printf("ok   %s is refused with EFAULT\n", what);
}

int main(void)
{
	const int access = IBV_ACCESS_LOCAL_WRITE | IBV_ACCESS_REMOTE_WRITE | IBV_ACCESS_REMOTE_READ;
	const char *gis = getenv("VBUS_GID_INDEX");
	struct ibv_device **list;
	struct ibv_mr *ma, *mb, *ma2, *mc = NULL;
	union ibv_gid gid;
	size_t alen = 100000, blen = 1 << 20;
	uint8_t *a, *b, *c;
	int n, gi = gis ? atoi(gis) : 0;

	list = ibv_get_device_list(&n);
	check(list && n >= 1 && !strcmp(ibv_get_device_name(list[0]), "vrdma0"),
	      "vrdma0 is not the first device (%d devices)", n);
	ctx = ibv_open_device(list[0]);
	check(ctx, "open vrdma0: %s", strerror(errno));
	pd = ibv_alloc_pd(ctx);
	cq = ibv_create_cq(ctx, 64, NULL, NULL, 0);
	check(pd && cq, "PD, CQ");
	check(!ibv_query_gid(ctx, 1, gi, &gid), "GID %d", gi);
	for (int k = 0; k < 2; k++) {
		struct ibv_qp_init_attr ia = { .send_cq = cq, .recv_cq = cq, .qp_type = IBV_QPT_RC,
			.cap = { .max_send_wr = DEPTH, .max_recv_wr = DEPTH, .max_send_sge = 2,
				 .max_recv_sge = 1 } };

		qp[k] = ibv_create_qp(pd, &ia);
		check(qp[k], "create QP: %s", strerror(errno));
		check(ia.cap.max_send_wr >= DEPTH && ia.cap.max_send_sge >= 2, "caps written back");
	}

	arena();

	/* Heap and mmap buffers keep their contents across registration. */
	a = malloc(alen);
	b = mmap(NULL, blen, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	check(a && b != MAP_FAILED, "buffers");
	fill(a, alen, 1);
	fill(b, blen, 2);
	ma = ibv_reg_mr(pd, a, alen, access);
	mb = ibv_reg_mr(pd, b + 123, blen - 123, access);
	check(ma && mb, "reg_mr heap/mmap: %s", strerror(errno));
	check(same(a, alen, 1) && same(b, blen, 2), "registration changed the buffers' contents");
	printf("ok   heap (%p) and mmap (%p) buffers registered, contents intact\n", (void *)a, (void *)b);

	/* Posting in INIT is refused. */
	{
		struct ibv_qp_attr at = { .qp_state = IBV_QPS_INIT, .port_num = 1 };
		struct ibv_sge s = { .addr = (uintptr_t)a, .length = 8, .lkey = ma->lkey };
		struct ibv_send_wr wr = { .sg_list = &s, .num_sge = 1, .opcode = IBV_WR_SEND }, *bad = NULL;
		struct ibv_qp_init_attr ia = { .send_cq = cq, .recv_cq = cq, .qp_type = IBV_QPT_RC,
			.cap = { .max_send_wr = 1, .max_recv_wr = 1, .max_send_sge = 1, .max_recv_sge = 1 } };
		struct ibv_qp *q = ibv_create_qp(pd, &ia);

		check(q && !ibv_modify_qp(q, &at, IBV_QP_STATE | IBV_QP_PKEY_INDEX | IBV_QP_PORT |
					  IBV_QP_ACCESS_FLAGS), "spare QP");
		check(ibv_post_send(q, &wr, &bad) == EINVAL && bad == &wr, "post_send in INIT");
		check(!ibv_destroy_qp(q), "destroy spare QP");
		printf("ok   post_send in INIT: EINVAL\n");
	}
	to_rts(qp[0], qp[1]->qp_num, &gid, gi);
	to_rts(qp[1], qp[0]->qp_num, &gid, gi);

	/* RDMA WRITE a+7 -> b+1000 (unaligned, across pages), nothing else in b changes. */
	fill(a + 7, 50000, 3);
	post(qp[0], 1, IBV_WR_RDMA_WRITE, a + 7, 50000, ma->lkey, b + 1000, mb->rkey);
	wait_wc(1, IBV_WC_RDMA_WRITE);
	check(same(b + 1000, 50000, 3), "RDMA WRITE data");
	fill(b + 1000, 50000, 2 * 0);	/* re-check the rest against the original pattern */
	check(same(b, 1000, 2), "RDMA WRITE wrote before its target");
	{
		uint8_t ref[4096];

		for (size_t off = 51000; off < blen; off += sizeof(ref)) {
			size_t n2 = blen - off < sizeof(ref) ? blen - off : sizeof(ref);

			/* the pattern of seed 2 at offset off */
			for (size_t i = 0; i < n2; i++)
				ref[i] = (uint8_t)(2 * 31 + (off + i) * 7 + ((off + i) >> 8));
			check(!memcmp(b + off, ref, n2), "RDMA WRITE wrote past its target at %zu", off);
		}
	}
	printf("ok   RDMA WRITE of 50000 B at unaligned offsets: every byte, nothing outside\n");

	/* SEND b+5000 -> receive into a+3 (qp[1] receives). */
	{
		struct ibv_sge s = { .addr = (uintptr_t)(a + 3), .length = 30000, .lkey = ma->lkey };
		struct ibv_recv_wr rw = { .wr_id = 9, .sg_list = &s, .num_sge = 1 }, *bad;

		check(!ibv_post_recv(qp[1], &rw, &bad), "post_recv");
		fill(b + 5000, 30000, 4);
		post(qp[0], 2, IBV_WR_SEND, b + 5000, 30000, mb->lkey, NULL, 0);
		for (int k = 0; k < 2; k++) {
			struct ibv_wc wc;
			time_t end = time(NULL) + (time_t)vt_secs(10);

			while (ibv_poll_cq(cq, 1, &wc) == 0)
				check(time(NULL) < end, "SEND completions");
			check(wc.status == IBV_WC_SUCCESS, "SEND: %s", ibv_wc_status_str(wc.status));
			if (wc.wr_id == 9)
				check(wc.opcode == IBV_WC_RECV && wc.byte_len == 30000 &&
				      wc.qp_num == qp[1]->qp_num, "receive completion fields");
		}
		check(same(a + 3, 30000, 4), "SEND data");
		printf("ok   SEND of 30000 B into a posted receive: every byte, wc fields\n");
	}

	/* RDMA READ b+70000 <- a+20000. */
	fill(a + 20000, 40000, 5);
	post(qp[1], 3, IBV_WR_RDMA_READ, b + 70000, 40000, mb->lkey, a + 20000, ma->rkey);
	wait_wc(3, IBV_WC_RDMA_READ);
	check(same(b + 70000, 40000, 5), "RDMA READ data");
	printf("ok   RDMA READ of 40000 B: every byte\n");

	/* The same range registered twice: both MRs work. */
	ma2 = ibv_reg_mr(pd, a, alen, access);
	check(ma2 && ma2->lkey != ma->lkey, "second registration of the heap buffer");
	fill(b + 200000, 1000, 6);
	post(qp[0], 4, IBV_WR_RDMA_WRITE, b + 200000, 1000, mb->lkey, a + 50, ma2->rkey);
	wait_wc(4, IBV_WC_RDMA_WRITE);
	check(same(a + 50, 1000, 6), "RDMA WRITE through the second MR");
	printf("ok   a buffer registered twice works through both MRs\n");

	/* Unmapped and mapped again at the same address: registered anew, carries data. */
	check(!ibv_dereg_mr(mb), "dereg");
	check(!munmap(b, blen), "munmap");
	c = mmap(b, blen, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
	if (c == b) {
		fill(c, blen, 7);
		mc = ibv_reg_mr(pd, c, blen, access);
		check(mc && same(c, blen, 7), "re-registration after remap: %s", strerror(errno));
		fill(a + 60000, 3000, 8);
		post(qp[0], 5, IBV_WR_RDMA_WRITE, a + 60000, 3000, ma->lkey, c + 9999, mc->rkey);
		wait_wc(5, IBV_WC_RDMA_WRITE);
		check(same(c + 9999, 3000, 8), "RDMA WRITE into the remapped buffer");
		printf("ok   a buffer unmapped and mapped again at the same address works\n");
	} else {
		printf("note: could not map again at %p; remap case not run\n", (void *)b);
	}

	cq_ex(&gid, gi, ma, a);

	/* Address handles follow the bus's policy: its source GID index only. */
	{
		struct ibv_ah_attr aa = { .is_global = 1, .port_num = 1,
			.grh = { .dgid = gid, .sgid_index = (uint8_t)(gi + 1), .hop_limit = 1 } };
		struct ibv_ah *ah = ibv_create_ah(pd, &aa);

		check(!ah && errno == EPERM, "an AH with another source GID index: %p errno %d",
		      (void *)ah, errno);
		aa.grh.sgid_index = (uint8_t)gi;
		ah = ibv_create_ah(pd, &aa);
		check(ah && !ibv_destroy_ah(ah), "an AH with the bus's GID index: %s", strerror(errno));
		printf("ok   ibv_create_ah: the bus's GID index only (EPERM otherwise)\n");
	}

	/* Refusals. */
	{
		uint8_t stackbuf[8192];
		int fd = open("/proc/self/exe", O_RDONLY);
		void *f = fd >= 0 ? mmap(NULL, 4096, PROT_READ, MAP_PRIVATE, fd, 0) : MAP_FAILED;
		void *sh = mmap(NULL, 65536, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);

		memset(stackbuf, 1, sizeof(stackbuf));
		refused(stackbuf, sizeof(stackbuf), "a stack buffer");
		check(f != MAP_FAILED && sh != MAP_FAILED, "mappings for refusals");
		refused(f, 4096, "a file mapping");
		refused(sh, 65536, "shared anonymous memory");
	}
	/* A huge page (MAP_HUGETLB; guest-memory.sh reserves two): in place on the kernel
	 * backend as natively; the relay cannot move it into a memfd and refuses it. */
	{
		size_t hl = 2u << 20;
		void *h = mmap(NULL, hl, PROT_READ | PROT_WRITE,
			       MAP_PRIVATE | MAP_ANONYMOUS | MAP_HUGETLB, -1, 0);

		check(h != MAP_FAILED || !getenv("VBUS_WANT_HUGETLB"),
		      "mmap MAP_HUGETLB with huge pages reserved: %s", strerror(errno));
		if (h == MAP_FAILED) {
			printf("SKIP a hugetlb page: mmap MAP_HUGETLB: %s (vm.nr_hugepages is 0?)\n",
			       strerror(errno));
		} else {
			memset(h, 2, hl);
			refused(h, hl, "a hugetlb page (2 MiB)");
			munmap(h, hl);
		}
		/* The same page from a memfd made with MFD_HUGETLB, mapped private: its path
		 * is "/memfd:... (deleted)", its file on hugetlbfs. */
		int hfd = memfd_create("vbus-test-huge", MFD_HUGETLB);

		h = hfd >= 0 && !ftruncate(hfd, (off_t)hl) ?
		    mmap(NULL, hl, PROT_READ | PROT_WRITE, MAP_PRIVATE, hfd, 0) : MAP_FAILED;
		check(h != MAP_FAILED || !getenv("VBUS_WANT_HUGETLB"),
		      "a private mapping of an MFD_HUGETLB memfd with huge pages reserved: %s",
		      strerror(errno));
		if (h != MAP_FAILED) {
			memset(h, 3, hl);
			refused(h, hl, "a private mapping of an MFD_HUGETLB memfd (2 MiB)");
			/* Again without CAP_SYS_ADMIN and CAP_CHECKPOINT_RESTORE in the effective
			 * set, as an unprivileged guest (the library cannot follow
			 * /proc/self/map_files then); raised again after it. */
			effective(false);
			refused(h, hl, "the same, without CAP_SYS_ADMIN and CAP_CHECKPOINT_RESTORE");
			effective(true);
			munmap(h, hl);
		}
		if (hfd >= 0)
			close(hfd);
	}

	/* Synchronous posting errors. */
	{
		struct ibv_sge s[3] = { { .addr = (uintptr_t)a, .length = 8, .lkey = ma->lkey },
					{ .addr = (uintptr_t)a + 8, .length = 8, .lkey = ma->lkey },
					{ .addr = (uintptr_t)a + 16, .length = 8, .lkey = ma->lkey } };
		struct ibv_send_wr wr[DEPTH * 4], *bad = NULL;
		struct ibv_qp_attr qa;
		struct ibv_qp_init_attr qi;
		uint32_t depth;
		int r;

		check(!ibv_query_qp(qp[0], &qa, IBV_QP_CAP, &qi), "query_qp");
		depth = qa.cap.max_send_wr;
		check(depth >= DEPTH && depth < DEPTH * 4, "max_send_wr %u", depth);
		memset(wr, 0, sizeof(wr));
		for (uint32_t i = 0; i <= depth; i++) {
			wr[i] = (struct ibv_send_wr){ .wr_id = 100 + i, .sg_list = s, .num_sge = 3,
				.opcode = IBV_WR_RDMA_WRITE };
			wr[i].wr.rdma.remote_addr = (uintptr_t)a + 4096;
			wr[i].wr.rdma.rkey = ma->rkey;
			wr[i].next = i < depth ? &wr[i + 1] : NULL;
		}
		r = ibv_post_send(qp[0], wr, &bad);
		check(r == EINVAL && bad == &wr[0], "3 SGEs on a 2-SGE QP: %d", r);
		for (uint32_t i = 0; i <= depth; i++)
			wr[i].num_sge = 1;
		wr[depth - 1].send_flags = IBV_SEND_SIGNALED;
		r = ibv_post_send(qp[0], wr, &bad);
		check(r == ENOMEM && bad == &wr[depth], "queue of %u full: %d, bad at %td", depth, r,
		      bad - wr);
		wait_wc(100 + depth - 1, IBV_WC_RDMA_WRITE);
		wr[depth].send_flags = IBV_SEND_SIGNALED;
		wr[depth].next = NULL;
		check(!ibv_post_send(qp[0], &wr[depth], &bad), "a retired queue takes work again");
		wait_wc(100 + depth, IBV_WC_RDMA_WRITE);
		printf("ok   too many SGEs: EINVAL; %u unsignaled + 1: ENOMEM at the last; retired by "
		       "one signaled completion\n", depth);
	}

	check(!ibv_destroy_qp(qp[0]) && !ibv_destroy_qp(qp[1]), "destroy QPs");
	check(!ibv_dereg_mr(ma) && !ibv_dereg_mr(ma2) && (!mc || !ibv_dereg_mr(mc)), "dereg");
	check(!ibv_destroy_cq(cq) && !ibv_dealloc_pd(pd) && !ibv_close_device(ctx), "tear down");
	ibv_free_device_list(list);
	printf("ok   everything torn down\n");
	return 0;
}
