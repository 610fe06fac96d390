// SPDX-License-Identifier: MIT
/*
 * vrdma-bus: the vrdma device through the whole bus, on soft-RoCE. A real vbusd with
 * `vrdma0` backed by rxe0; two guests (two connections of this process) that use only
 * libvbus: DEVSHM regions, DEVSIG signals, the call channel, vrdma DEVCALLs, and the
 * shared-memory queues with doorbells kicked only when the relay sleeps. Guest A speaks
 * vrdma ABI version 1 (an 8-byte HELLO, a 24-byte answer), B the newest. Checked: the
 * data of a SEND and an RDMA WRITE between guest A's two QPs; a completion event on A's
 * channel; guest B using A's lkey or rkey gets an error completion and A's memory is
 * untouched; guest B naming A's handles gets errors; `vbusctl -j guest show` counts the
 * work; a guest that disconnects leaves nothing behind.
 */
#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <infiniband/verbs.h>
#include <vbus/libvbus.h>
#include <vbus/vrdma.h>
#include "../lib/vt-time.h"

#define fail(...) do { printf("FAIL line %d: ", __LINE__); printf(__VA_ARGS__); printf("\n"); cleanup(); exit(1); } while (0)
#define check(c, ...) do { if (!(c)) fail(__VA_ARGS__); } while (0)

static char run_dir[64], bin[512];
static pid_t daemon_pid;

static void cleanup(void)
{
	char cmd[128];

	if (daemon_pid > 0) {
		kill(daemon_pid, SIGKILL);
		waitpid(daemon_pid, NULL, 0);
	}
	snprintf(cmd, sizeof(cmd), "rm -rf %s", run_dir);
	if (system(cmd))
		return;
}

static int sh(const char *fmt, ...)
{
	char cmd[1024];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(cmd, sizeof(cmd), fmt, ap);
	va_end(ap);
	return system(cmd);
}

#define DATA_LEN (64 * 1024)
#define Q_LEN (1024 * 1024)
#define ENTRIES 64
#define SQ_STRIDE 128
#define RQ_STRIDE 64

struct gqp {
	uint32_t handle, qpn;
	struct vrdma_ring *sq, *rq;
	uint32_t sprod, rprod;
};

struct guest {
	struct vbus_conn *c;
	uint32_t dev, data_id, q_id, db_id, ch_id;
	uint8_t *data, *q;
	int db, ch;
	uint32_t pd, cq, mr, lkey, rkey;
	struct vrdma_ring *cqr;
	uint32_t cq_cons;
	struct gqp qp[2];
};

static int call(struct guest *g, uint32_t fn, const void *in, size_t inlen, void *out, size_t outmax)
{
	size_t n;

	return vbus_devcall_flags(g->c, g->dev, fn, fn == VRDMA_FN_REG_MR ? VBUS_CALL_SLOW : 0,
				  in, inlen, out, outmax, &n);
}

static uint8_t *shm(struct guest *g, size_t len, uint32_t *id)
{
	int fd;
	uint8_t *p;

	check(!vbus_memfd_create("vrdma-bus", len, &fd), "memfd");
	p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	check(p != MAP_FAILED && !vbus_devshm(g->c, fd, len, id), "DEVSHM");
	close(fd);
	return p;
}

/* v1: HELLO as a version-1 guest does, 8 bytes in and room for the 24 it knows out. */
static void guest_up(struct guest *g, uint32_t gid_index, bool v1)
{
	struct vrdma_hello_in hi = { .abi_version = htole32(v1 ? 1 : VRDMA_ABI_VERSION),
				     .abi_min = htole32(v1 ? 0 : VRDMA_ABI_MIN_VERSION) };
	struct vrdma_hello_out ho;
	size_t n = 0;
	struct vbus_dev_entry e[4];
	struct vrdma_handle h;

	memset(g, 0, sizeof(*g));
	check(!vbus_connect(run_dir, "t", &g->c), "connect");
	check(!vbus_callchan_open(g->c, 8), "call channel");
	check(vbus_devenum(g->c, e, 4) == 1 && !strcmp(e[0].devclass, "vrdma"), "DEVENUM");
	check(!vbus_devopen(g->c, "vrdma0", "vrdma", &g->dev), "DEVOPEN");
	g->data = shm(g, DATA_LEN, &g->data_id);
	g->q = shm(g, Q_LEN, &g->q_id);
	g->db = eventfd(0, EFD_CLOEXEC);
	g->ch = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	check(!vbus_devsig(g->c, g->db, VBUS_SIG_TO_HOST, &g->db_id) &&
	      !vbus_devsig(g->c, g->ch, VBUS_SIG_TO_GUEST, &g->ch_id), "DEVSIG");
	hi.doorbell = htole32(g->db_id);
	check(!vbus_devcall(g->c, g->dev, VRDMA_FN_HELLO, &hi,
			    v1 ? VRDMA_HELLO_IN_V1_SIZE : sizeof(hi), &ho,
			    v1 ? VRDMA_HELLO_OUT_V1_SIZE : sizeof(ho), &n), "HELLO");
	check(n == (v1 ? VRDMA_HELLO_OUT_V1_SIZE : sizeof(ho)) &&
	      le32toh(ho.abi_version) == (v1 ? 1 : VRDMA_ABI_VERSION),
	      "HELLO: %zu bytes, ABI %u", n, le32toh(ho.abi_version));
	check(le32toh(ho.gid_index) == gid_index, "HELLO's GID index");
	check(!call(g, VRDMA_FN_ALLOC_PD, NULL, 0, &h, sizeof(h)), "ALLOC_PD");
	g->pd = le32toh(h.handle);
	{	/* the data region, one piece, iova = where the guest maps it */
		uint8_t buf[sizeof(struct vrdma_reg_mr_in) + sizeof(struct vrdma_mr_piece)];
		struct vrdma_reg_mr_in *i = (void *)buf;
		struct vrdma_mr_piece *p = (void *)(i + 1);
		struct vrdma_reg_mr_out o;
		int r;

		*i = (struct vrdma_reg_mr_in){ .pd = htole32(g->pd), .iova = htole64((uintptr_t)g->data),
			.length = htole64(DATA_LEN), .npieces = htole32(1),
			.access = htole32(IBV_ACCESS_LOCAL_WRITE | IBV_ACCESS_REMOTE_WRITE |
					  IBV_ACCESS_REMOTE_READ) };
		*p = (struct vrdma_mr_piece){ .shm = htole32(g->data_id), .length = htole64(DATA_LEN) };
		r = call(g, VRDMA_FN_REG_MR, buf, sizeof(buf), &o, sizeof(o));
		check(!r, "REG_MR: %d", r);
		g->mr = le32toh(o.handle);
		g->lkey = le32toh(o.lkey);
		g->rkey = le32toh(o.rkey);
	}
	{
		struct vrdma_create_cq_in i = { .cqe = htole32(32), .shm = htole32(g->q_id),
			.entries = htole32(ENTRIES), .channel = htole32(g->ch_id) };
		struct vrdma_create_cq_out o;

		check(!call(g, VRDMA_FN_CREATE_CQ, &i, sizeof(i), &o, sizeof(o)), "CREATE_CQ");
		g->cq = le32toh(o.handle);
		g->cqr = (void *)g->q;
	}
	for (int k = 0; k < 2; k++) {
		uint64_t off = 64 * 1024 + (uint64_t)k * 128 * 1024;
		struct vrdma_create_qp_in i = {
			.pd = htole32(g->pd), .send_cq = htole32(g->cq), .recv_cq = htole32(g->cq),
			.qp_type = IBV_QPT_RC, .shm = htole32(g->q_id),
			.cap = { .max_send_wr = htole32(16), .max_recv_wr = htole32(16),
				 .max_send_sge = htole32(1), .max_recv_sge = htole32(1) },
			.sq_offset = htole64(off), .rq_offset = htole64(off + 64 * 1024),
			.sq_entries = htole32(ENTRIES), .sq_stride = htole32(SQ_STRIDE),
			.rq_entries = htole32(ENTRIES), .rq_stride = htole32(RQ_STRIDE),
		};
		struct vrdma_create_qp_out o;

		check(!call(g, VRDMA_FN_CREATE_QP, &i, sizeof(i), &o, sizeof(o)), "CREATE_QP");
		g->qp[k].handle = le32toh(o.handle);
		g->qp[k].qpn = le32toh(o.qp_num);
		g->qp[k].sq = (void *)(g->q + off);
		g->qp[k].rq = (void *)(g->q + off + 64 * 1024);
	}
}

static void connect_pair(struct guest *g, uint32_t gid_index)
{
	struct vrdma_query_gid_in gi = { .port_num = 1, .index = htole32(gid_index) };
	struct vrdma_query_gid_out go;

	check(!call(g, VRDMA_FN_QUERY_GID, &gi, sizeof(gi), &go, sizeof(go)), "QUERY_GID");
	for (int k = 0; k < 2; k++) {
		struct vrdma_modify_qp_in m = { .handle = htole32(g->qp[k].handle) };

		m.attr_mask = htole32(IBV_QP_STATE | IBV_QP_PKEY_INDEX | IBV_QP_PORT | IBV_QP_ACCESS_FLAGS);
		m.attr.qp_state = htole32(IBV_QPS_INIT);
		m.attr.port_num = 1;
		m.attr.qp_access_flags = htole32(IBV_ACCESS_REMOTE_WRITE | IBV_ACCESS_REMOTE_READ);
		check(!call(g, VRDMA_FN_MODIFY_QP, &m, sizeof(m), NULL, 0), "INIT");
		memset(&m.attr, 0, sizeof(m.attr));
		m.attr_mask = htole32(IBV_QP_STATE | IBV_QP_AV | IBV_QP_PATH_MTU | IBV_QP_DEST_QPN |
				      IBV_QP_RQ_PSN | IBV_QP_MAX_DEST_RD_ATOMIC | IBV_QP_MIN_RNR_TIMER);
		m.attr.qp_state = htole32(IBV_QPS_RTR);
		m.attr.path_mtu = htole32(IBV_MTU_1024);
		m.attr.dest_qp_num = htole32(g->qp[1 - k].qpn);
		m.attr.max_dest_rd_atomic = 1;
		m.attr.min_rnr_timer = 12;
		m.attr.ah_attr.is_global = 1;
		m.attr.ah_attr.port_num = 1;
		m.attr.ah_attr.hop_limit = 1;
		m.attr.ah_attr.sgid_index = (uint8_t)gid_index;
		memcpy(m.attr.ah_attr.dgid, go.gid, 16);
		check(!call(g, VRDMA_FN_MODIFY_QP, &m, sizeof(m), NULL, 0), "RTR");
		memset(&m.attr, 0, sizeof(m.attr));
		m.attr_mask = htole32(IBV_QP_STATE | IBV_QP_TIMEOUT | IBV_QP_RETRY_CNT |
				      IBV_QP_RNR_RETRY | IBV_QP_SQ_PSN | IBV_QP_MAX_QP_RD_ATOMIC);
		m.attr.qp_state = htole32(IBV_QPS_RTS);
		m.attr.timeout = 14;
		m.attr.retry_cnt = 1;
		m.attr.rnr_retry = 7;
		m.attr.max_rd_atomic = 1;
		check(!call(g, VRDMA_FN_MODIFY_QP, &m, sizeof(m), NULL, 0), "RTS");
	}
}

/* Publish a WQE (seq_cst), then kick only if the relay said it sleeps. */
static void publish(struct guest *g, struct vrdma_ring *r, uint32_t prod)
{
	uint64_t one = 1;

	__atomic_store_n(&r->prod, htole32(prod), __ATOMIC_SEQ_CST);
	if (le32toh(__atomic_load_n(&r->flags, __ATOMIC_SEQ_CST)) & VRDMA_RING_NEED_WAKEUP)
		check(write(g->db, &one, sizeof(one)) == sizeof(one), "kick");
}

static void post_recv(struct guest *g, struct gqp *q, uint64_t wr_id, void *addr, uint32_t len)
{
	uint8_t *slot = (uint8_t *)(q->rq + 1) + (q->rprod & (ENTRIES - 1)) * RQ_STRIDE;
	struct vrdma_rwqe w = { .wr_id = htole64(wr_id), .num_sge = htole32(1) };
	struct vrdma_sge s = { .addr = htole64((uintptr_t)addr), .length = htole32(len),
			       .lkey = htole32(g->lkey) };

	memcpy(slot, &w, sizeof(w));
	memcpy(slot + sizeof(w), &s, sizeof(s));
	publish(g, q->rq, ++q->rprod);
}

static void post_send(struct guest *g, struct gqp *q, uint64_t wr_id, uint8_t op, void *addr,
		      uint32_t len, uint32_t lkey, uint64_t raddr, uint32_t rkey)
{
	uint8_t *slot = (uint8_t *)(q->sq + 1) + (q->sprod & (ENTRIES - 1)) * SQ_STRIDE;
	struct vrdma_swqe w = { .wr_id = htole64(wr_id), .opcode = op, .num_sge = 1,
				.send_flags = htole32(IBV_SEND_SIGNALED),
				.remote_addr = htole64(raddr), .rkey = htole32(rkey) };
	struct vrdma_sge s = { .addr = htole64((uintptr_t)addr), .length = htole32(len),
			       .lkey = htole32(lkey) };

	memcpy(slot, &w, sizeof(w));
	memcpy(slot + sizeof(w), &s, sizeof(s));
	publish(g, q->sq, ++q->sprod);
}

/* n completions from the ring within 5 s (scaled: vt-time.h); *status of the last one. */
static void reap(struct guest *g, int n, uint32_t *status, const char *what)
{
	struct timespec t0, t;
	double limit = vt_secs(5);

	clock_gettime(CLOCK_MONOTONIC, &t0);
	while (n > 0) {
		uint32_t prod = le32toh(__atomic_load_n(&g->cqr->prod, __ATOMIC_ACQUIRE));

		while (g->cq_cons != prod && n > 0) {
			struct vrdma_cqe c;

			memcpy(&c, (uint8_t *)(g->cqr + 1) + (g->cq_cons & (ENTRIES - 1)) * sizeof(c), sizeof(c));
			g->cq_cons++;
			n--;
			if (status)
				*status = le32toh(c.status);
			else if (c.status)
				fail("%s: %s", what, ibv_wc_status_str(le32toh(c.status)));
		}
		__atomic_store_n(&g->cqr->cons, htole32(g->cq_cons), __ATOMIC_RELEASE);
		clock_gettime(CLOCK_MONOTONIC, &t);
		if (t.tv_sec - t0.tv_sec > limit) {
			for (int k = 0; k < 2; k++)
				printf("qp%d sq prod %u cons %u flags %x; rq prod %u cons %u flags %x\n", k,
				       g->qp[k].sq->prod, g->qp[k].sq->cons, g->qp[k].sq->flags,
				       g->qp[k].rq->prod, g->qp[k].rq->cons, g->qp[k].rq->flags);
			printf("cq prod %u cons %u\n", g->cqr->prod, g->cqr->cons);
			fail("%s: completions missing after %.0f s", what, limit);
		}
	}
}

int main(void)
{
	const char *dev = getenv("VBUS_RXE"), *gi = getenv("VBUS_GID_INDEX"), *b = getenv("VBUS_BUILD");
	struct guest ga, gb;
	uint32_t gid_index, st = 0;
	char out[4096];
	FILE *p;

	if (!dev || !gi) {
		printf("no soft-RoCE device: run this under tests/vm/run\n");
		return 77;
	}
	gid_index = (uint32_t)atoi(gi);
	snprintf(bin, sizeof(bin), "%s/bin", b ? b : "build/default");
	snprintf(run_dir, sizeof(run_dir), "/tmp/vbus-vrdma-bus.XXXXXX");
	check(mkdtemp(run_dir), "mkdtemp");
	daemon_pid = fork();
	if (daemon_pid == 0) {
		char path[600];

		snprintf(path, sizeof(path), "%s/vbusd", bin);
		execl(path, "vbusd", "--run-dir", run_dir, "-q", (char *)NULL);
		_exit(127);
	}
	check(!sh("for i in $(seq %d); do [ -S %s/ctl.sock ] && break; sleep 0.05; done; "
		  "%s/vbusctl --run-dir %s bus add t && %s/vbusctl --run-dir %s dev add vrdma0 class "
		  "vrdma backing=%s port=1 gid=%u max-pinned=1M backend=relay bus t",
		  (int)vt_secs(100), run_dir, bin, run_dir, bin, run_dir, dev, gid_index),
	      "vbusd with vrdma0 (relay backend: these guests speak DEVCALL and rings)");
	check(sh("%s/vbusctl --run-dir %s dev add bad class vrdma backing=nosuch bus t 2>/dev/null",
		 bin, run_dir), "a vrdma device on a missing backing device is refused");

	guest_up(&ga, gid_index, true);	/* A speaks ABI version 1 */
	connect_pair(&ga, gid_index);
	printf("ok   guest A (ABI 1): call channel, regions, doorbell, PD, MR, CQ, two RC QPs to RTS\n");

	/* SEND and RDMA WRITE between A's two QPs, with sleeping-relay kicks. */
	for (int i = 0; i < 50; i++) {
		uint8_t *src = ga.data + 1000, *dst = ga.data + 20001;

		for (int k = 0; k < 3000; k++)
			src[k] = (uint8_t)(i * 31 + k);
		memset(dst, 0, 3000);
		post_recv(&ga, &ga.qp[1], 100 + i, dst, 3000);
		post_send(&ga, &ga.qp[0], 200 + i, IBV_WR_SEND, src, 3000, ga.lkey, 0, 0);
		reap(&ga, 2, NULL, "SEND");
		check(!memcmp(src, dst, 3000), "SEND %d data", i);
		post_send(&ga, &ga.qp[1], 300 + i, IBV_WR_RDMA_WRITE, src, 777, ga.lkey,
			  (uintptr_t)(ga.data + 40003), ga.rkey);
		reap(&ga, 1, NULL, "WRITE");
		check(!memcmp(src, ga.data + 40003, 777), "WRITE %d data", i);
		if (i % 10 == 9)
			usleep(30000);	/* the relay falls asleep: the next post must kick it */
	}
	printf("ok   50 SENDs and 50 RDMA WRITEs through the relay, every byte checked\n");

	/* A completion event on the CQ's channel. */
	{
		struct pollfd pf = { .fd = ga.ch, .events = POLLIN };
		uint64_t v;

		__atomic_store_n(&ga.cqr->armed, htole32(1), __ATOMIC_SEQ_CST);
		post_send(&ga, &ga.qp[0], 7, IBV_WR_RDMA_WRITE, ga.data, 8, ga.lkey,
			  (uintptr_t)(ga.data + 100), ga.rkey);
		check(poll(&pf, 1, vt_ms(3000)) == 1 && read(ga.ch, &v, sizeof(v)) == sizeof(v),
		      "no completion event");
		reap(&ga, 1, NULL, "event WRITE");
		printf("ok   armed CQ: the completion kicked the guest's channel eventfd\n");
	}

	/* Guest B: A's handles and keys are not B's. */
	guest_up(&gb, gid_index, false);
	connect_pair(&gb, gid_index);
	{
		/* The foreign lkey: B's send naming A's lkey fails locally. */
		post_send(&gb, &gb.qp[1], 10, IBV_WR_RDMA_WRITE, ga.data, 64, ga.lkey,
			  (uintptr_t)(gb.data + 100), gb.rkey);
		reap(&gb, 1, &st, "foreign lkey");
		check(st != IBV_WC_SUCCESS, "a WRITE from A's lkey succeeded");
		printf("ok   guest B: a foreign lkey gives %s\n", ibv_wc_status_str(st));
	}

	{
		struct vrdma_handle h = { .handle = htole32(ga.qp[0].handle) };
		size_t n;

		check(vbus_devcall(gb.c, ga.dev + 1, VRDMA_FN_ALLOC_PD, NULL, 0, out, sizeof(out), &n) ==
		      -ENOENT, "B cannot use a guessed device handle");
		memset(ga.data + 50000, 0x5a, 4096);
		/* A's rkey: B's RDMA WRITE into A's memory fails; A's bytes stay. */
		post_send(&gb, &gb.qp[0], 9, IBV_WR_RDMA_WRITE, gb.data, 512, gb.lkey,
			  (uintptr_t)(ga.data + 50000), ga.rkey);
		reap(&gb, 1, &st, "foreign rkey");
		check(st != IBV_WC_SUCCESS, "a WRITE with A's rkey succeeded");
		for (int k = 0; k < 4096; k++)
			check(ga.data[50000 + k] == 0x5a, "A's memory changed at %d", k);
		/* B's handle numbers name only B's objects: destroying "A's QP" by number either
		 * fails or hits B's own QP, never A's. */
		call(&gb, VRDMA_FN_DESTROY_QP, &h, sizeof(h), NULL, 0);
		post_recv(&ga, &ga.qp[1], 1, ga.data + 9000, 16);
		post_send(&ga, &ga.qp[0], 2, IBV_WR_SEND, ga.data, 16, ga.lkey, 0, 0);
		reap(&ga, 2, NULL, "A after B's attempts");
		printf("ok   guest B: a foreign rkey gives %s and A's bytes stay; A's QPs unharmed\n",
		       ibv_wc_status_str(st));
	}
	/* What vbusctl shows, then B leaves and its objects go. */
	{
		char cmd[700];
		size_t n;

		snprintf(cmd, sizeof(cmd), "%s/vbusctl --run-dir %s -j guest show", bin, run_dir);
		p = popen(cmd, "r");
		n = p ? fread(out, 1, sizeof(out) - 1, p) : 0;
		out[n] = 0;
		if (p)
			pclose(p);
		check(strstr(out, "\"wqes\":") && strstr(out, "\"pinned_bytes\":65536"),
		      "guest show: %s", out);
		vbus_disconnect(gb.c);
		usleep((useconds_t)vt_ms(300) * 1000);	/* vbusd notices B has gone */
		p = popen(cmd, "r");
		n = p ? fread(out, 1, sizeof(out) - 1, p) : 0;
		out[n] = 0;
		if (p)
			pclose(p);
		check(!strstr(out, "},{\"id\""), "B is still listed: %s", out);
		printf("ok   vbusctl guest show reports the vrdma resources; B's are gone when it leaves\n");
	}
	{	/* REG_MR holds a region only while it maps it: once the MR is deregistered, or
		 * when REG_MR fails, the guest can revoke the region (issue 12, point 9). */
		uint8_t buf[sizeof(struct vrdma_reg_mr_in) + sizeof(struct vrdma_mr_piece)];
		struct vrdma_reg_mr_in *i = (void *)buf;
		struct vrdma_mr_piece *pc = (void *)(i + 1);
		struct vrdma_reg_mr_out o;
		struct vrdma_handle h;
		uint32_t id;
		uint8_t *m = shm(&ga, 2 * 4096, &id);
		int r;

		*i = (struct vrdma_reg_mr_in){ .pd = htole32(ga.pd), .iova = htole64((uintptr_t)m),
			.length = htole64(2 * 4096), .npieces = htole32(1),
			.access = htole32(IBV_ACCESS_LOCAL_WRITE) };
		*pc = (struct vrdma_mr_piece){ .shm = htole32(id), .length = htole64(2 * 4096) };
		check(!call(&ga, VRDMA_FN_REG_MR, buf, sizeof(buf), &o, sizeof(o)), "REG_MR");
		h = (struct vrdma_handle){ .handle = o.handle };
		check(!call(&ga, VRDMA_FN_DEREG_MR, &h, sizeof(h), NULL, 0), "DEREG_MR");
		r = vbus_shm_revoke(ga.c, id);
		check(!r, "SHMREVOKE after REG_MR and DEREG_MR: %d", r);
		munmap(m, 2 * 4096);
		m = shm(&ga, 2 * 4096, &id);
		i->iova = htole64((uintptr_t)m);
		pc->shm = htole32(id);
		i->access = htole32(IBV_ACCESS_REMOTE_WRITE);	/* without LOCAL_WRITE: refused */
		check(call(&ga, VRDMA_FN_REG_MR, buf, sizeof(buf), &o, sizeof(o)) < 0,
		      "REG_MR with REMOTE_WRITE alone succeeded");
		r = vbus_shm_revoke(ga.c, id);
		check(!r, "SHMREVOKE after a refused REG_MR: %d", r);
		munmap(m, 2 * 4096);
		printf("ok   REG_MR then DEREG_MR, and a refused REG_MR, leave the region revocable\n");
	}
	{	/* The GID table in one call, as QUERY_GID answers each entry. */
		struct vrdma_query_gid_table_in ti = { .port_num = 1 };
		struct vrdma_query_gid_table_out to;
		struct vrdma_query_device_ex_out dx;
		uint32_t cnt;

		check(!call(&ga, VRDMA_FN_QUERY_GID_TABLE, &ti, sizeof(ti), &to, sizeof(to)),
		      "QUERY_GID_TABLE");
		cnt = le32toh(to.count);
		check(cnt > 0 && cnt <= VRDMA_GID_BATCH && le32toh(to.next) == le32toh(to.gid_tbl_len),
		      "QUERY_GID_TABLE: %u entries, next %u of %u", cnt, le32toh(to.next),
		      le32toh(to.gid_tbl_len));
		for (uint32_t k = 0; k < cnt; k++) {
			struct vrdma_query_gid_in gq = { .port_num = 1, .index = to.e[k].index };
			struct vrdma_query_gid_out go;

			check(!call(&ga, VRDMA_FN_QUERY_GID, &gq, sizeof(gq), &go, sizeof(go)) &&
			      !memcmp(go.gid, to.e[k].gid, 16) && go.gid_type == to.e[k].gid_type,
			      "GID %u: the table and QUERY_GID differ", le32toh(to.e[k].index));
		}
		ti.port_num = 2;
		check(call(&ga, VRDMA_FN_QUERY_GID_TABLE, &ti, sizeof(ti), &to, sizeof(to)) == -EINVAL,
		      "QUERY_GID_TABLE of port 2");
		check(!call(&ga, VRDMA_FN_QUERY_DEVICE_EX, NULL, 0, &dx, sizeof(dx)) &&
		      le32toh(dx.num_comp_vectors) >= 1 && !dx.reserved, "QUERY_DEVICE_EX");
		printf("ok   QUERY_GID_TABLE: %u valid GIDs in one call, as QUERY_GID gives them; "
		       "QUERY_DEVICE_EX: %u completion vectors, flags %#llx\n", cnt,
		       le32toh(dx.num_comp_vectors), (unsigned long long)le64toh(dx.device_cap_flags_ex));
	}
	{	/* A CQ holds its channel's signal while it lives, and only then: the kicks of the
		 * armed CQ above took no hold of their own; a channel the guest does not have is
		 * refused. */
		struct vrdma_create_cq_in ci = { .cqe = htole32(8), .shm = htole32(ga.q_id),
			.offset = htole64(Q_LEN - 4096), .entries = htole32(16),
			.channel = htole32(ga.db_id) };
		struct vrdma_create_cq_out co;
		struct vrdma_handle h;
		int r;

		r = call(&ga, VRDMA_FN_CREATE_CQ, &ci, sizeof(ci), &co, sizeof(co));
		check(r == -ENOENT, "CREATE_CQ with the doorbell (a signal to the host) as its "
		      "channel: %d", r);
		r = vbus_sig_revoke(ga.c, ga.ch_id);
		check(r == -EBUSY, "SIGREVOKE of a live CQ's channel: %d", r);
		for (int k = 0; k < 2; k++) {
			h = (struct vrdma_handle){ .handle = htole32(ga.qp[k].handle) };
			check(!call(&ga, VRDMA_FN_DESTROY_QP, &h, sizeof(h), NULL, 0), "DESTROY_QP");
		}
		h = (struct vrdma_handle){ .handle = htole32(ga.cq) };
		check(!call(&ga, VRDMA_FN_DESTROY_CQ, &h, sizeof(h), NULL, 0), "DESTROY_CQ");
		r = vbus_sig_revoke(ga.c, ga.ch_id);
		check(!r, "SIGREVOKE of a kicked channel once its CQ is gone: %d", r);
		printf("ok   a CQ's channel: held while the CQ lives (EBUSY), revocable after it, "
		       "kicks or not; a signal that is not the guest's refused (ENOENT)\n");
	}
	vbus_disconnect(ga.c);
	cleanup();
	return 0;
}
