// SPDX-License-Identifier: MIT
/*
 * fake-ibv: the libibverbs calls of verbs-host/vrdma/, answered by a pretend device, so
 * that fuzz-vrdma drives the relay backend's handlers with no RDMA device (it links this
 * file instead of -libverbs: its `fuzz-libs:` line).
 *
 * The device behaves as a kernel would: objects are plain heap objects (the public struct
 * first, then the fake's own fields) that are freed by their destroy, so ASan sees any use
 * after it; a destroy of an object that others still use is -EBUSY; limits are checked
 * (FK_MAX_*) and caps rounded as fake-ibv.h's quirks say. Posted sends complete at once
 * (when signaled, or in error), posted receives wait for fk_arrive() or a flush, and
 * completions go to the CQ, which overruns (IBV_EVENT_CQ_ERR) as a real one does.
 *
 * What vrdma promises to check before a call reaches the device is restated here and is an
 * abort (fk_broken) when broken: the QP types, access flags and attribute masks of the
 * whitelist, the backing port and the source GID index of the bus, and, for what the relay
 * posts, the opcode for the QP type, the send flags, SGE counts and inline sizes within the
 * caps it granted, and AH, MW and MR pointers that are live objects of this context.
 */
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>
#include <infiniband/verbs.h>
#include <vbus/vrdma.h>
#include "fake-ibv.h"

/* verbs.h turns these into inline wrappers; the fake defines the functions behind them. */
#undef ibv_query_port
#undef ibv_reg_mr_iova
#undef ibv_reg_mr

#define FAKE_API __attribute__((visibility("default")))

enum fk_kind { K_CTX, K_CHAN, K_PD, K_MR, K_CQ, K_QP, K_SRQ, K_AH, K_MW, K_N };
static const char *const kind_name[K_N] = {
	"context", "channel", "pd", "mr", "cq", "qp", "srq", "ah", "mw",
};
#define MAGIC(k)	(0xfa4e0000u | (k))

struct fk_wr {				/* a posted receive */
	uint64_t wr_id;
	uint32_t len;			/* the sum of its SGEs' lengths */
};

struct fk_wrq {				/* posted receives, oldest first */
	struct fk_wr *v;
	uint32_t n, cap;
};

struct fk_ctx {
	struct ibv_context c;
	uint32_t magic;
	uint32_t next_qpn, next_key, next_handle;
};

struct fk_pd {
	struct ibv_pd pd;
	uint32_t magic, users;
};

struct fk_mr {
	struct ibv_mr mr;
	uint32_t magic;
};

struct fk_cq {
	struct ibv_cq cq;
	uint32_t magic, users;
	struct ibv_wc *wc;		/* completions, oldest first */
	uint32_t n, cap;
	bool overrun;
	bool armed;			/* req_notify_cq: the next completion is an event */
};

struct fk_srq {
	struct ibv_srq srq;
	uint32_t magic, users;
	struct ibv_srq_attr attr;
	struct fk_wrq q;
};

struct fk_qp {
	struct ibv_qp qp;
	uint32_t magic;
	struct ibv_qp_cap cap;		/* granted */
	bool sig_all;
	struct fk_wrq rq;
};

struct fk_ah {
	struct ibv_ah ah;
	uint32_t magic;
};

struct fk_mw {
	struct ibv_mw mw;
	uint32_t magic;
};

static struct fk_config cfg = { .port = 1 };
static volatile uint8_t fk_sink;		/* what the device "read" of inline data */
static uint32_t fail_mask;
static unsigned long live[K_N];
static struct ibv_async_event events[64];
static unsigned n_events;
/* Completion events not yet read (ibv_get_cq_event), oldest first; more are dropped. */
static struct ibv_cq *cq_events[256];
static unsigned n_cq_events;
/* The events, as a channel's are in the kernel: read by the relay thread while a control
 * call (under the guest's lock only) may post, and so complete (relay-sched). */
static pthread_mutex_t cq_events_lock = PTHREAD_MUTEX_INITIALIZER;
/* Objects whose destroy was made to fail: vrdma may forget them (a destroy in an error
 * path), and the kernel frees them when the context closes, as it frees whatever a
 * context still holds. Only these may be live at ibv_close_device. */
static struct fk_orphan {
	void *p;
	enum fk_kind k;
} *orphans;
static unsigned n_orphans, cap_orphans;

void fk_broken(const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "fuzz-vrdma: broken promise: ");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	abort();
}

/* Where each kind keeps its magic (the channel has none: vrdma only creates and destroys it). */
static const size_t magic_at[K_N] = {
	[K_CTX] = offsetof(struct fk_ctx, magic), [K_PD] = offsetof(struct fk_pd, magic),
	[K_MR] = offsetof(struct fk_mr, magic), [K_CQ] = offsetof(struct fk_cq, magic),
	[K_QP] = offsetof(struct fk_qp, magic), [K_SRQ] = offsetof(struct fk_srq, magic),
	[K_AH] = offsetof(struct fk_ah, magic), [K_MW] = offsetof(struct fk_mw, magic),
};

/* p must be a live object of kind k: anything else is a pointer vrdma should not hold. */
static void *obj(void *p, enum fk_kind k)
{
	uint32_t m;

	if (!p)
		fk_broken("a NULL %s reached the device", kind_name[k]);
	memcpy(&m, (uint8_t *)p + magic_at[k], sizeof(m));
	if (m != MAGIC(k))
		fk_broken("a %s that is not one reached the device", kind_name[k]);
	return p;
}

static void *new_obj(size_t size, enum fk_kind k)
{
	void *p = calloc(1, size);

	if (p)
		live[k]++;
	else
		errno = ENOMEM;
	return p;
}

static void free_obj(void *p, uint32_t *magic, enum fk_kind k)
{
	for (unsigned i = 0; i < n_orphans; i++)
		if (orphans[i].p == p)
			orphans[i] = orphans[--n_orphans];
	*magic = 0;
	live[k]--;
	free(p);
}

/* The verb fails once if it was asked to (fk_fail_next). */
static bool fails(enum fk_verb v)
{
	if (!(fail_mask & (1u << v)))
		return false;
	fail_mask &= ~(1u << v);
	errno = ENOMEM;
	return true;
}

static uint32_t pow2_at_least(uint32_t x)
{
	uint32_t p = 1;

	while (p < x)
		p <<= 1;
	return p;
}

/* A destroy of p was made to fail: p may stay live until the context closes. */
static void orphan(void *p, enum fk_kind k)
{
	for (unsigned i = 0; i < n_orphans; i++)
		if (orphans[i].p == p)
			return;
	if (n_orphans == cap_orphans) {
		unsigned c = cap_orphans ? 2 * cap_orphans : 16;
		struct fk_orphan *o = realloc(orphans, c * sizeof(*o));

		if (!o)
			abort();
		orphans = o;
		cap_orphans = c;
	}
	orphans[n_orphans].p = p;
	orphans[n_orphans++].k = k;
}

void fk_setup(const struct fk_config *c)
{
	cfg = *c;
	fail_mask = 0;
	n_events = 0;
	n_cq_events = 0;
	n_orphans = 0;
	for (int k = 0; k < K_N; k++)
		live[k] = 0;
}

void fk_fail_next(uint32_t mask)
{
	fail_mask = mask & ((1u << FK_NVERBS) - 1);
}

void fk_check_closed(void)
{
	for (int k = 0; k < K_N; k++)
		if (live[k])
			fk_broken("%lu %s(s) left after the guest was closed", live[k],
				  kind_name[k]);
	n_events = 0;
}

/* ---- asynchronous events: queued here, read by vrdma_relay_async ---- */

static void push_event(enum ibv_event_type t, void *element, int port)
{
	struct ibv_async_event *e;

	if (n_events == sizeof(events) / sizeof(events[0]))
		return;	/* as the kernel's queue, a full one loses events */
	e = &events[n_events++];
	memset(e, 0, sizeof(*e));
	e->event_type = t;
	switch (t) {
	case IBV_EVENT_CQ_ERR:
		e->element.cq = element;
		break;
	case IBV_EVENT_SRQ_ERR:
	case IBV_EVENT_SRQ_LIMIT_REACHED:
		e->element.srq = element;
		break;
	case IBV_EVENT_DEVICE_FATAL:
	case IBV_EVENT_WQ_FATAL:
		break;
	case IBV_EVENT_PORT_ACTIVE:
	case IBV_EVENT_PORT_ERR:
	case IBV_EVENT_LID_CHANGE:
	case IBV_EVENT_PKEY_CHANGE:
	case IBV_EVENT_SM_CHANGE:
	case IBV_EVENT_CLIENT_REREGISTER:
	case IBV_EVENT_GID_CHANGE:
		e->element.port_num = port;
		break;
	default:
		e->element.qp = element;
		break;
	}
}

/* An object is destroyed: its events go (libibverbs' destroy waits until they are
 * acknowledged, so the relay never reads one after the destroy returned). */
static void drop_events(const void *element)
{
	unsigned k = 0;

	for (unsigned i = 0; i < n_events; i++)
		if (events[i].element.qp != element)
			events[k++] = events[i];
	n_events = k;
}

void fk_async_event(struct ibv_qp *qp, struct ibv_cq *cq, struct ibv_srq *srq, uint8_t sel,
		    uint8_t port)
{
	static const enum ibv_event_type qp_ev[] = {
		IBV_EVENT_QP_FATAL, IBV_EVENT_QP_REQ_ERR, IBV_EVENT_QP_ACCESS_ERR,
		IBV_EVENT_COMM_EST, IBV_EVENT_SQ_DRAINED, IBV_EVENT_PATH_MIG,
		IBV_EVENT_PATH_MIG_ERR, IBV_EVENT_QP_LAST_WQE_REACHED,
	};
	static const enum ibv_event_type srq_ev[] = {
		IBV_EVENT_SRQ_ERR, IBV_EVENT_SRQ_LIMIT_REACHED,
	};
	static const enum ibv_event_type dev_ev[] = {
		IBV_EVENT_PORT_ACTIVE, IBV_EVENT_PORT_ERR, IBV_EVENT_LID_CHANGE,
		IBV_EVENT_PKEY_CHANGE, IBV_EVENT_SM_CHANGE, IBV_EVENT_CLIENT_REREGISTER,
		IBV_EVENT_GID_CHANGE, IBV_EVENT_DEVICE_FATAL, IBV_EVENT_WQ_FATAL,
	};

	if (qp)
		push_event(qp_ev[sel % 8], obj(qp, K_QP), 0);
	else if (cq)
		push_event(IBV_EVENT_CQ_ERR, obj(cq, K_CQ), 0);
	else if (srq)
		push_event(srq_ev[sel % 2], obj(srq, K_SRQ), 0);
	else
		push_event(dev_ev[sel % 9], NULL, 1 + port % FK_PORTS);
}

FAKE_API int ibv_get_async_event(struct ibv_context *c, struct ibv_async_event *ev)
{
	obj(c, K_CTX);
	if (!n_events) {
		errno = EAGAIN;
		return -1;
	}
	*ev = events[0];
	memmove(events, events + 1, --n_events * sizeof(events[0]));
	return 0;
}

FAKE_API void ibv_ack_async_event(struct ibv_async_event *ev)
{
	(void)ev;
}

/* ---- context, channel, queries ---- */

static int fk_poll_cq(struct ibv_cq *cq, int n, struct ibv_wc *wc);
static int fk_req_notify_cq(struct ibv_cq *cq, int solicited_only);
static int fk_post_send(struct ibv_qp *qp, struct ibv_send_wr *wr, struct ibv_send_wr **bad);
static int fk_post_recv(struct ibv_qp *qp, struct ibv_recv_wr *wr, struct ibv_recv_wr **bad);
static int fk_post_srq_recv(struct ibv_srq *srq, struct ibv_recv_wr *wr,
			    struct ibv_recv_wr **bad);
static struct ibv_mw *fk_alloc_mw(struct ibv_pd *pd, enum ibv_mw_type type);
static int fk_dealloc_mw(struct ibv_mw *mw);

FAKE_API struct ibv_context *ibv_open_device(struct ibv_device *dev)
{
	struct fk_ctx *x = new_obj(sizeof(*x), K_CTX);

	if (!x)
		return NULL;
	x->magic = MAGIC(K_CTX);
	x->c.device = dev;
	x->c.cmd_fd = -1;
	/* Never readable: the fuzzer calls vrdma_relay_async itself; a relay thread polls it. */
	x->c.async_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	x->c.num_comp_vectors = cfg.quirks & FK_TWO_VECTORS ? 2 : 1;
	x->c.ops.poll_cq = fk_poll_cq;
	x->c.ops.req_notify_cq = fk_req_notify_cq;
	x->c.ops.post_send = fk_post_send;
	x->c.ops.post_recv = fk_post_recv;
	x->c.ops.post_srq_recv = fk_post_srq_recv;
	x->c.ops.alloc_mw = fk_alloc_mw;
	x->c.ops.dealloc_mw = fk_dealloc_mw;
	x->next_qpn = 0x11;
	x->next_key = 0x100;
	x->next_handle = 1;
	return &x->c;
}

FAKE_API int ibv_close_device(struct ibv_context *c)
{
	struct fk_ctx *x = obj(c, K_CTX);

	if (c->async_fd >= 0)
		close(c->async_fd);
	/* What the kernel frees at close: orphaned MWs first (they use their PD), then PDs. */
	for (int pass = 0; pass < 2; pass++)
		for (unsigned i = n_orphans; i-- > 0;)
			if (orphans[i].k == (pass ? K_PD : K_MW)) {
				struct fk_mw *w = orphans[i].p;
				struct fk_pd *p = orphans[i].p;

				if (pass) {
					free_obj(p, &p->magic, K_PD);
				} else {
					((struct fk_pd *)obj(w->mw.pd, K_PD))->users--;
					free_obj(w, &w->magic, K_MW);
				}
			}
	for (int k = K_PD; k < K_N; k++)
		if (live[k])
			fk_broken("the context closed with %lu %s(s) still live", live[k],
				  kind_name[k]);
	free_obj(x, &x->magic, K_CTX);
	return 0;
}

FAKE_API struct ibv_comp_channel *ibv_create_comp_channel(struct ibv_context *c)
{
	struct ibv_comp_channel *ch = new_obj(sizeof(*ch), K_CHAN);

	if (!ch)
		return NULL;
	ch->context = obj(c, K_CTX);
	/* Readable while it holds unread events (complete(), ibv_get_cq_event), as the
	 * kernel's channel is: a relay thread can wait on it. */
	ch->fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	return ch;
}

FAKE_API int ibv_destroy_comp_channel(struct ibv_comp_channel *ch)
{
	if (ch->fd >= 0)
		close(ch->fd);
	live[K_CHAN]--;
	free(ch);
	return 0;
}

/* Channel ch holds no more unread events: it stops being readable. */
static void chan_drained(struct ibv_comp_channel *ch)
{
	uint64_t v;

	for (unsigned i = 0; i < n_cq_events; i++)
		if (cq_events[i]->channel == ch)
			return;
	if (ch->fd >= 0 && read(ch->fd, &v, sizeof(v)) < 0 && errno != EAGAIN)
		abort();
}

/* The oldest unread completion event of a CQ on channel ch. */
FAKE_API int ibv_get_cq_event(struct ibv_comp_channel *ch, struct ibv_cq **cq, void **ctx)
{
	pthread_mutex_lock(&cq_events_lock);
	for (unsigned i = 0; i < n_cq_events; i++) {
		if (cq_events[i]->channel != ch)
			continue;
		*cq = cq_events[i];
		*ctx = cq_events[i]->cq_context;
		memmove(cq_events + i, cq_events + i + 1, (n_cq_events - i - 1) * sizeof(*cq_events));
		n_cq_events--;
		chan_drained(ch);
		pthread_mutex_unlock(&cq_events_lock);
		return 0;
	}
	pthread_mutex_unlock(&cq_events_lock);
	errno = EAGAIN;
	return -1;
}

/* Unread events of a CQ go with it, as the kernel drops them at destroy. */
static void drop_cq_events(const struct ibv_cq *cq)
{
	unsigned k = 0;

	pthread_mutex_lock(&cq_events_lock);
	for (unsigned i = 0; i < n_cq_events; i++)
		if (cq_events[i] != cq)
			cq_events[k++] = cq_events[i];
	if (k != n_cq_events) {
		n_cq_events = k;
		chan_drained(cq->channel);
	}
	pthread_mutex_unlock(&cq_events_lock);
}

/* No ibv_wr_* interface here (ibv_create_qp_ex finds no extended context either): the
 * relay keeps its stand-in for an atomic rxe's ibv_post_send refuses. */
FAKE_API struct ibv_qp_ex *ibv_qp_to_qp_ex(struct ibv_qp *qp)
{
	(void)qp;
	return NULL;
}

FAKE_API void ibv_ack_cq_events(struct ibv_cq *cq, unsigned int n)
{
	(void)cq, (void)n;
}

FAKE_API int ibv_query_device(struct ibv_context *c, struct ibv_device_attr *a)
{
	obj(c, K_CTX);
	if (fails(FK_QUERY_DEVICE))
		return ENOMEM;
	memset(a, 0, sizeof(*a));
	snprintf(a->fw_ver, sizeof(a->fw_ver), "fake-ibv 1.0");
	a->node_guid = 0x0102030405060708ull;
	a->sys_image_guid = a->node_guid;
	a->max_mr_size = ~0ull;
	a->page_size_cap = 0xfffff000;
	a->vendor_id = 0xffffff;
	a->max_qp = 1024;
	a->max_qp_wr = FK_MAX_WR;
	a->device_cap_flags = IBV_DEVICE_MEM_WINDOW | IBV_DEVICE_MEM_WINDOW_TYPE_2B;
	a->max_sge = FK_MAX_SGE;
	a->max_sge_rd = FK_MAX_SGE;
	a->max_cq = 1024;
	a->max_cqe = FK_MAX_CQE;
	a->max_mr = 1024;
	a->max_pd = 1024;
	a->max_qp_rd_atom = 128;
	a->max_qp_init_rd_atom = 128;
	a->atomic_cap = IBV_ATOMIC_HCA;
	a->max_mw = 1024;
	a->max_ah = 1024;
	a->max_srq = 1024;
	a->max_srq_wr = FK_MAX_WR;
	a->max_srq_sge = FK_MAX_SGE;
	a->max_pkeys = 1;
	a->local_ca_ack_delay = 15;
	a->phys_port_cnt = FK_PORTS;
	return 0;
}

/* A port query from vrdma names the guest's backing port, never another. */
static void check_port(uint8_t port, const char *what)
{
	if (port != cfg.port)
		fk_broken("%s on port %u, not the backing port %u", what, port, cfg.port);
}

/* libibverbs' wrapper passes a whole struct ibv_port_attr (zeroed) to this entry. */
FAKE_API int ibv_query_port(struct ibv_context *c, uint8_t port,
			    struct _compat_ibv_port_attr *compat)
{
	struct ibv_port_attr *a = (struct ibv_port_attr *)compat;

	obj(c, K_CTX);
	check_port(port, "query_port");
	if (fails(FK_QUERY_PORT))
		return ENOMEM;
	a->state = IBV_PORT_ACTIVE;
	a->max_mtu = IBV_MTU_4096;
	a->active_mtu = IBV_MTU_1024;
	a->gid_tbl_len = FK_GID_TBL_LEN;
	a->max_msg_sz = 0x80000000u;
	a->pkey_tbl_len = 1;
	a->active_width = 2;
	a->active_speed = 32;
	a->phys_state = 5;
	a->link_layer = IBV_LINK_LAYER_ETHERNET;
	return 0;
}

/* Every entry of the backing port is valid (a GID per index); too small an array is
 * EINVAL, as the kernel answers. */
FAKE_API ssize_t _ibv_query_gid_table(struct ibv_context *c, struct ibv_gid_entry *e,
				      size_t max, uint32_t flags, size_t size)
{
	obj(c, K_CTX);
	if (flags || size != sizeof(*e))
		fk_broken("query_gid_table with flags %u, entry size %zu", flags, size);
	if (fails(FK_QUERY_GID))
		return -ENOMEM;
	if (max < FK_GID_TBL_LEN)
		return -EINVAL;
	for (uint32_t i = 0; i < FK_GID_TBL_LEN; i++) {
		memset(&e[i], 0, sizeof(e[i]));
		e[i].gid.raw[0] = 0xfe;
		e[i].gid.raw[1] = 0x80;
		e[i].gid.raw[15] = (uint8_t)i;
		e[i].gid_index = i;
		e[i].port_num = cfg.port;
		e[i].gid_type = IBV_GID_TYPE_ROCE_V2;
	}
	return FK_GID_TBL_LEN;
}

FAKE_API int _ibv_query_gid_ex(struct ibv_context *c, uint32_t port, uint32_t index,
			       struct ibv_gid_entry *e, uint32_t flags, size_t size)
{
	obj(c, K_CTX);
	check_port((uint8_t)port, "query_gid");
	if (port > 255 || flags || size != sizeof(*e))
		fk_broken("query_gid with port %u, flags %u, entry size %zu", port, flags, size);
	if (fails(FK_QUERY_GID))
		return ENOMEM;
	if (index >= FK_GID_TBL_LEN)
		return EINVAL;
	memset(e, 0, sizeof(*e));
	e->gid.raw[0] = 0xfe;
	e->gid.raw[1] = 0x80;
	e->gid.raw[15] = (uint8_t)index;
	e->gid_index = index;
	e->port_num = port;
	e->gid_type = IBV_GID_TYPE_ROCE_V2;
	return 0;
}

FAKE_API int ibv_query_pkey(struct ibv_context *c, uint8_t port, int index, __be16 *pkey)
{
	obj(c, K_CTX);
	check_port(port, "query_pkey");
	if (fails(FK_QUERY_PKEY))
		return ENOMEM;
	if (index != 0)
		return EINVAL;
	*pkey = 0xffff;
	return 0;
}

/* ---- PD, MR, MW, AH ---- */

FAKE_API struct ibv_pd *ibv_alloc_pd(struct ibv_context *c)
{
	struct fk_ctx *x = obj(c, K_CTX);
	struct fk_pd *p;

	if (fails(FK_ALLOC_PD) || !(p = new_obj(sizeof(*p), K_PD)))
		return NULL;
	p->magic = MAGIC(K_PD);
	p->pd.context = c;
	p->pd.handle = x->next_handle++;
	return &p->pd;
}

FAKE_API int ibv_dealloc_pd(struct ibv_pd *pd)
{
	struct fk_pd *p = obj(pd, K_PD);

	if (fails(FK_DEALLOC_PD)) {
		orphan(p, K_PD);
		return ENOMEM;
	}
	/* In use (an MR, or an MW whose dealloc was made to fail and that vrdma forgot): the
	 * kernel refuses, and frees it with the context as it frees what holds it. Were a
	 * live MR or MW still on it at the close, that one is still caught there. */
	if (p->users) {
		orphan(p, K_PD);
		return EBUSY;
	}
	free_obj(p, &p->magic, K_PD);
	return 0;
}

#define ACCESS_WHITELIST (IBV_ACCESS_LOCAL_WRITE | IBV_ACCESS_REMOTE_WRITE | \
			  IBV_ACCESS_REMOTE_READ | IBV_ACCESS_REMOTE_ATOMIC | \
			  IBV_ACCESS_MW_BIND | IBV_ACCESS_RELAXED_ORDERING)

FAKE_API struct ibv_mr *ibv_reg_mr_iova2(struct ibv_pd *pd, void *addr, size_t length,
					 uint64_t iova, unsigned int access)
{
	struct fk_pd *p = obj(pd, K_PD);
	struct fk_ctx *x = obj(pd->context, K_CTX);
	volatile const uint8_t *b = addr;
	struct fk_mr *m;

	if (access & ~(unsigned)ACCESS_WHITELIST)
		fk_broken("reg_mr with access %#x outside the whitelist", access);
	if (access & VRDMA_WL_ACCESS & ~cfg.access)
		fk_broken("reg_mr with access %#x outside the guest's whitelist %#x", access,
			  cfg.access);
	if (fails(FK_REG_MR))
		return NULL;
	if (!length || !addr) {
		errno = EINVAL;
		return NULL;
	}
	/* The kernel pins every page: each must be mapped (a hole is a SEGV here). */
	for (size_t off = 0; off < length; off += 4096)
		(void)b[off];
	(void)b[length - 1];
	if (!(m = new_obj(sizeof(*m), K_MR)))
		return NULL;
	m->magic = MAGIC(K_MR);
	m->mr.context = pd->context;
	m->mr.pd = pd;
	m->mr.addr = addr;
	m->mr.length = length;
	m->mr.handle = x->next_handle++;
	m->mr.lkey = x->next_key++;
	m->mr.rkey = m->mr.lkey;
	(void)iova;
	p->users++;
	return &m->mr;
}

FAKE_API struct ibv_mr *ibv_reg_mr_iova(struct ibv_pd *pd, void *addr, size_t length,
					uint64_t iova, int access)
{
	return ibv_reg_mr_iova2(pd, addr, length, iova, (unsigned)access);
}

FAKE_API struct ibv_mr *ibv_reg_mr(struct ibv_pd *pd, void *addr, size_t length, int access)
{
	return ibv_reg_mr_iova2(pd, addr, length, (uintptr_t)addr, (unsigned)access);
}

FAKE_API int ibv_dereg_mr(struct ibv_mr *mr)
{
	struct fk_mr *m = obj(mr, K_MR);

	((struct fk_pd *)obj(mr->pd, K_PD))->users--;
	free_obj(m, &m->magic, K_MR);
	return 0;
}

static struct ibv_mw *fk_alloc_mw(struct ibv_pd *pd, enum ibv_mw_type type)
{
	struct fk_pd *p = obj(pd, K_PD);
	struct fk_ctx *x = obj(pd->context, K_CTX);
	struct fk_mw *w;

	if (!(cfg.access & IBV_ACCESS_MW_BIND))
		fk_broken("alloc_mw for a guest whose whitelist has no MW_BIND");
	if (fails(FK_ALLOC_MW))
		return NULL;
	if (type != IBV_MW_TYPE_1 && type != IBV_MW_TYPE_2) {
		errno = EINVAL;
		return NULL;
	}
	if (!(w = new_obj(sizeof(*w), K_MW)))
		return NULL;
	w->magic = MAGIC(K_MW);
	w->mw.context = pd->context;
	w->mw.pd = pd;
	w->mw.type = type;
	w->mw.handle = x->next_handle++;
	w->mw.rkey = x->next_key++ << 8;
	p->users++;
	return &w->mw;
}

static int fk_dealloc_mw(struct ibv_mw *mw)
{
	struct fk_mw *w = obj(mw, K_MW);

	if (fails(FK_DEALLOC_MW)) {
		orphan(w, K_MW);
		return ENOMEM;
	}
	((struct fk_pd *)obj(mw->pd, K_PD))->users--;
	free_obj(w, &w->magic, K_MW);
	return 0;
}

/* An address vector that reaches the device: the backing port, the bus's GID index. */
static void check_av(const struct ibv_ah_attr *a, const char *what)
{
	check_port(a->port_num, what);
	if (a->is_global && a->grh.sgid_index != cfg.gid_index)
		fk_broken("%s with source GID index %u, the bus allows %u", what,
			  a->grh.sgid_index, cfg.gid_index);
}

FAKE_API struct ibv_ah *ibv_create_ah(struct ibv_pd *pd, struct ibv_ah_attr *attr)
{
	struct fk_pd *p = obj(pd, K_PD);
	struct fk_ctx *x = obj(pd->context, K_CTX);
	struct fk_ah *a;

	check_av(attr, "create_ah");
	if (fails(FK_CREATE_AH) || !(a = new_obj(sizeof(*a), K_AH)))
		return NULL;
	a->magic = MAGIC(K_AH);
	a->ah.context = pd->context;
	a->ah.pd = pd;
	a->ah.handle = x->next_handle++;
	p->users++;
	return &a->ah;
}

FAKE_API int ibv_destroy_ah(struct ibv_ah *ah)
{
	struct fk_ah *a = obj(ah, K_AH);

	((struct fk_pd *)obj(ah->pd, K_PD))->users--;
	free_obj(a, &a->magic, K_AH);
	return 0;
}

/* ---- CQ ---- */

static uint32_t cq_size(int cqe)
{
	return cfg.quirks & FK_CQ_POW2 ? pow2_at_least((uint32_t)cqe + 1) - 1 : (uint32_t)cqe;
}

/* A completion into cq; a full CQ overruns: the completion is lost, CQ_ERR once. */
static void complete(struct ibv_cq *cq, const struct ibv_wc *wc)
{
	struct fk_cq *q = obj(cq, K_CQ);

	if (q->armed && cq->channel) {	/* an event on its channel, once per arming */
		q->armed = false;
		pthread_mutex_lock(&cq_events_lock);
		if (n_cq_events < sizeof(cq_events) / sizeof(cq_events[0])) {
			uint64_t one = 1;

			cq_events[n_cq_events++] = cq;
			if (cq->channel->fd >= 0 && write(cq->channel->fd, &one, sizeof(one)) < 0)
				abort();
		}
		pthread_mutex_unlock(&cq_events_lock);
	}
	if (q->n >= (uint32_t)cq->cqe) {
		if (!q->overrun)
			push_event(IBV_EVENT_CQ_ERR, cq, 0);
		q->overrun = true;
		return;
	}
	if (q->n == q->cap) {
		uint32_t c = q->cap ? q->cap * 2 : 16;
		struct ibv_wc *v = realloc(q->wc, c * sizeof(*v));

		if (!v)
			abort();
		q->wc = v;
		q->cap = c;
	}
	q->wc[q->n++] = *wc;
}

FAKE_API struct ibv_cq *ibv_create_cq(struct ibv_context *c, int cqe, void *cq_context,
				      struct ibv_comp_channel *ch, int vec)
{
	struct fk_ctx *x = obj(c, K_CTX);
	struct fk_cq *q;

	if (fails(FK_CREATE_CQ))
		return NULL;
	if (cqe < 1 || cqe > FK_MAX_CQE || vec < 0 || vec >= c->num_comp_vectors ||
	    (ch && ch->context != c)) {
		errno = EINVAL;
		return NULL;
	}
	if (!(q = new_obj(sizeof(*q), K_CQ)))
		return NULL;
	q->magic = MAGIC(K_CQ);
	q->cq.context = c;
	q->cq.channel = ch;
	q->cq.cq_context = cq_context;
	q->cq.handle = x->next_handle++;
	q->cq.cqe = (int)cq_size(cqe);
	return &q->cq;
}

FAKE_API int ibv_resize_cq(struct ibv_cq *cq, int cqe)
{
	struct fk_cq *q = obj(cq, K_CQ);

	if (fails(FK_RESIZE_CQ))
		return ENOMEM;
	if (cqe < 1 || cqe > FK_MAX_CQE || cq_size(cqe) < q->n)
		return EINVAL;
	cq->cqe = (int)cq_size(cqe);
	return 0;
}

FAKE_API int ibv_destroy_cq(struct ibv_cq *cq)
{
	struct fk_cq *q = obj(cq, K_CQ);

	if (q->users)
		return EBUSY;
	drop_events(cq);
	drop_cq_events(cq);
	free(q->wc);
	free_obj(q, &q->magic, K_CQ);
	return 0;
}

static int fk_poll_cq(struct ibv_cq *cq, int n, struct ibv_wc *wc)
{
	struct fk_cq *q = obj(cq, K_CQ);
	uint32_t k;

	if (fails(FK_POLL_CQ))
		return -ENOMEM;
	if (n < 0)
		fk_broken("poll_cq for %d completions", n);
	k = (uint32_t)n < q->n ? (uint32_t)n : q->n;
	if (!k)
		return 0;
	memcpy(wc, q->wc, k * sizeof(*wc));
	memmove(q->wc, q->wc + k, (q->n - k) * sizeof(*wc));
	q->n -= k;
	return (int)k;
}

static int fk_req_notify_cq(struct ibv_cq *cq, int solicited_only)
{
	struct fk_cq *q = obj(cq, K_CQ);

	if (solicited_only != 0 && solicited_only != 1)
		fk_broken("req_notify_cq(%d)", solicited_only);
	if (fails(FK_REQ_NOTIFY))
		return ENOMEM;
	q->armed = true;
	return 0;
}

/* ---- SRQ ---- */

static bool wrq_push(struct fk_wrq *q, uint64_t wr_id, uint32_t len)
{
	if (q->n == q->cap) {
		uint32_t c = q->cap ? q->cap * 2 : 16;
		struct fk_wr *v = realloc(q->v, c * sizeof(*v));

		if (!v)
			return false;
		q->v = v;
		q->cap = c;
	}
	q->v[q->n++] = (struct fk_wr){ .wr_id = wr_id, .len = len };
	return true;
}

static struct fk_wr wrq_pop(struct fk_wrq *q)
{
	struct fk_wr w = q->v[0];

	memmove(q->v, q->v + 1, --q->n * sizeof(*q->v));
	return w;
}

static uint32_t sge_len(const struct ibv_sge *s, int n)
{
	uint32_t len = 0;

	for (int k = 0; k < n; k++)
		len += s[k].length;
	return len;
}

FAKE_API struct ibv_srq *ibv_create_srq(struct ibv_pd *pd, struct ibv_srq_init_attr *ia)
{
	struct fk_pd *p = obj(pd, K_PD);
	struct fk_ctx *x = obj(pd->context, K_CTX);
	struct ibv_srq_attr *a = &ia->attr;
	struct fk_srq *s;

	if (fails(FK_CREATE_SRQ))
		return NULL;
	if (!a->max_wr || a->max_wr > FK_MAX_WR || a->max_sge > FK_MAX_SGE ||
	    a->srq_limit > a->max_wr) {
		errno = EINVAL;
		return NULL;
	}
	if (!(s = new_obj(sizeof(*s), K_SRQ)))
		return NULL;
	s->magic = MAGIC(K_SRQ);
	s->srq.context = pd->context;
	s->srq.srq_context = ia->srq_context;
	s->srq.pd = pd;
	s->srq.handle = x->next_handle++;
	if (cfg.quirks & FK_SRQ_POW2)
		a->max_wr = pow2_at_least(a->max_wr);
	s->attr = *a;
	p->users++;
	return &s->srq;
}

FAKE_API int ibv_modify_srq(struct ibv_srq *srq, struct ibv_srq_attr *a, int mask)
{
	struct fk_srq *s = obj(srq, K_SRQ);
	uint32_t max_wr = s->attr.max_wr;

	if (fails(FK_MODIFY_SRQ))
		return ENOMEM;
	if (mask & ~(IBV_SRQ_MAX_WR | IBV_SRQ_LIMIT))
		fk_broken("modify_srq with mask %#x", mask);
	if (mask & IBV_SRQ_MAX_WR) {
		if (!a->max_wr || a->max_wr > FK_MAX_WR || a->max_wr < s->q.n)
			return EINVAL;
		max_wr = cfg.quirks & FK_SRQ_POW2 ? pow2_at_least(a->max_wr) : a->max_wr;
	}
	if ((mask & IBV_SRQ_LIMIT) && a->srq_limit > max_wr)
		return EINVAL;
	s->attr.max_wr = max_wr;
	if (mask & IBV_SRQ_LIMIT)
		s->attr.srq_limit = a->srq_limit;
	return 0;
}

FAKE_API int ibv_query_srq(struct ibv_srq *srq, struct ibv_srq_attr *a)
{
	struct fk_srq *s = obj(srq, K_SRQ);

	if (fails(FK_QUERY_SRQ))
		return ENOMEM;
	*a = s->attr;
	return 0;
}

FAKE_API int ibv_destroy_srq(struct ibv_srq *srq)
{
	struct fk_srq *s = obj(srq, K_SRQ);

	if (s->users)
		return EBUSY;
	drop_events(srq);
	((struct fk_pd *)obj(srq->pd, K_PD))->users--;
	free(s->q.v);
	free_obj(s, &s->magic, K_SRQ);
	return 0;
}

static int fk_post_srq_recv(struct ibv_srq *srq, struct ibv_recv_wr *wr,
			    struct ibv_recv_wr **bad)
{
	struct fk_srq *s = obj(srq, K_SRQ);

	for (; wr; wr = wr->next) {
		if (wr->num_sge < 0 || (uint32_t)wr->num_sge > s->attr.max_sge)
			fk_broken("SRQ receive with %d SGEs, the SRQ has %u", wr->num_sge,
				  s->attr.max_sge);
		if (fails(FK_POST_SRQ_RECV) || s->q.n >= s->attr.max_wr ||
		    !wrq_push(&s->q, wr->wr_id, sge_len(wr->sg_list, wr->num_sge))) {
			*bad = wr;
			return ENOMEM;
		}
	}
	return 0;
}

/* ---- QP ---- */

static bool qpt_allows(enum ibv_qp_type t, enum ibv_wr_opcode op)
{
	switch (op) {
	case IBV_WR_SEND:
	case IBV_WR_SEND_WITH_IMM:
		return true;
	case IBV_WR_RDMA_WRITE:
	case IBV_WR_RDMA_WRITE_WITH_IMM:
		return t == IBV_QPT_RC || t == IBV_QPT_UC;
	case IBV_WR_RDMA_READ:
	case IBV_WR_ATOMIC_CMP_AND_SWP:
	case IBV_WR_ATOMIC_FETCH_AND_ADD:
		return t == IBV_QPT_RC;
	case IBV_WR_LOCAL_INV:
	case IBV_WR_BIND_MW:
	case IBV_WR_SEND_WITH_INV:
		return t == IBV_QPT_RC || t == IBV_QPT_UC;
	default:
		return false;
	}
}

static enum ibv_wc_opcode wc_opcode(enum ibv_wr_opcode op)
{
	switch (op) {
	case IBV_WR_RDMA_WRITE:
	case IBV_WR_RDMA_WRITE_WITH_IMM:
		return IBV_WC_RDMA_WRITE;
	case IBV_WR_RDMA_READ:
		return IBV_WC_RDMA_READ;
	case IBV_WR_ATOMIC_CMP_AND_SWP:
		return IBV_WC_COMP_SWAP;
	case IBV_WR_ATOMIC_FETCH_AND_ADD:
		return IBV_WC_FETCH_ADD;
	case IBV_WR_BIND_MW:
		return IBV_WC_BIND_MW;
	case IBV_WR_LOCAL_INV:
		return IBV_WC_LOCAL_INV;
	default:
		return IBV_WC_SEND;
	}
}

static void flush_rq(struct fk_qp *q)
{
	while (q->rq.n) {
		struct fk_wr w = wrq_pop(&q->rq);

		complete(q->qp.recv_cq, &(struct ibv_wc){ .wr_id = w.wr_id,
			 .status = IBV_WC_WR_FLUSH_ERR, .qp_num = q->qp.qp_num });
	}
}

FAKE_API struct ibv_qp *ibv_create_qp(struct ibv_pd *pd, struct ibv_qp_init_attr *ia)
{
	struct fk_pd *p = obj(pd, K_PD);
	struct fk_ctx *x = obj(pd->context, K_CTX);
	struct ibv_qp_cap *c = &ia->cap;
	struct fk_cq *scq = obj(ia->send_cq, K_CQ), *rcq = obj(ia->recv_cq, K_CQ);
	struct fk_srq *srq = ia->srq ? obj(ia->srq, K_SRQ) : NULL;
	struct fk_qp *q;

	if (ia->qp_type != IBV_QPT_RC && ia->qp_type != IBV_QPT_UC && ia->qp_type != IBV_QPT_UD)
		fk_broken("create_qp of type %d, outside the whitelist", ia->qp_type);
	if (!(cfg.qp_types & (1u << ia->qp_type)))
		fk_broken("create_qp of type %d, outside the guest's whitelist %#x", ia->qp_type,
			  cfg.qp_types);
	if (ia->send_cq->context != pd->context || ia->recv_cq->context != pd->context ||
	    (srq && ia->srq->context != pd->context))
		fk_broken("create_qp with objects of another context");
	if (ia->sq_sig_all != 0 && ia->sq_sig_all != 1)
		fk_broken("create_qp with sq_sig_all %d", ia->sq_sig_all);
	if (fails(FK_CREATE_QP))
		return NULL;
	if (srq)
		c->max_recv_wr = c->max_recv_sge = 0;
	if (c->max_send_wr > FK_MAX_WR || c->max_recv_wr > FK_MAX_WR ||
	    c->max_send_sge > FK_MAX_SGE || c->max_recv_sge > FK_MAX_SGE ||
	    c->max_inline_data > FK_MAX_INLINE) {
		errno = EINVAL;
		return NULL;
	}
	if (!(q = new_obj(sizeof(*q), K_QP)))
		return NULL;
	if (cfg.quirks & FK_QP_POW2) {
		c->max_send_wr = pow2_at_least(c->max_send_wr);
		c->max_send_sge = pow2_at_least(c->max_send_sge);
		if (!srq) {
			c->max_recv_wr = pow2_at_least(c->max_recv_wr);
			c->max_recv_sge = pow2_at_least(c->max_recv_sge);
		}
	}
	q->magic = MAGIC(K_QP);
	q->qp.context = pd->context;
	q->qp.qp_context = ia->qp_context;
	q->qp.pd = pd;
	q->qp.send_cq = ia->send_cq;
	q->qp.recv_cq = ia->recv_cq;
	q->qp.srq = ia->srq;
	q->qp.handle = x->next_handle++;
	q->qp.qp_num = x->next_qpn++;
	q->qp.state = IBV_QPS_RESET;
	q->qp.qp_type = ia->qp_type;
	q->cap = *c;
	q->sig_all = ia->sq_sig_all;
	p->users++;
	scq->users++;
	rcq->users++;
	if (srq)
		srq->users++;
	return &q->qp;
}

#define QP_MASK_WHITELIST (IBV_QP_STATE | IBV_QP_CUR_STATE | IBV_QP_EN_SQD_ASYNC_NOTIFY | \
			   IBV_QP_ACCESS_FLAGS | IBV_QP_PKEY_INDEX | IBV_QP_PORT | IBV_QP_QKEY | \
			   IBV_QP_AV | IBV_QP_PATH_MTU | IBV_QP_TIMEOUT | IBV_QP_RETRY_CNT | \
			   IBV_QP_RNR_RETRY | IBV_QP_RQ_PSN | IBV_QP_MAX_QP_RD_ATOMIC | \
			   IBV_QP_MIN_RNR_TIMER | IBV_QP_SQ_PSN | IBV_QP_MAX_DEST_RD_ATOMIC | \
			   IBV_QP_DEST_QPN)

/* The transitions of IBA 10.3.1, loosely: what a kernel accepts. */
static bool transition_ok(enum ibv_qp_state from, enum ibv_qp_state to)
{
	switch (to) {
	case IBV_QPS_RESET:
	case IBV_QPS_ERR:
		return true;
	case IBV_QPS_INIT:
		return from == IBV_QPS_RESET || from == IBV_QPS_INIT;
	case IBV_QPS_RTR:
		return from == IBV_QPS_INIT;
	case IBV_QPS_RTS:
		return from == IBV_QPS_RTR || from == IBV_QPS_RTS || from == IBV_QPS_SQD ||
		       from == IBV_QPS_SQE;
	case IBV_QPS_SQD:
		return from == IBV_QPS_RTS || from == IBV_QPS_SQD;
	default:
		return false;
	}
}

FAKE_API int ibv_modify_qp(struct ibv_qp *qp, struct ibv_qp_attr *a, int mask)
{
	struct fk_qp *q = obj(qp, K_QP);

	if (mask & ~QP_MASK_WHITELIST)
		fk_broken("modify_qp with mask %#x outside the whitelist", mask);
	if ((mask & IBV_QP_ACCESS_FLAGS) && (a->qp_access_flags & VRDMA_WL_ACCESS & ~cfg.access))
		fk_broken("modify_qp with access %#x outside the guest's whitelist %#x",
			  a->qp_access_flags, cfg.access);
	if (mask & IBV_QP_PORT)
		check_port(a->port_num, "modify_qp");
	if (mask & IBV_QP_AV)
		check_av(&a->ah_attr, "modify_qp");
	if (fails(FK_MODIFY_QP))
		return ENOMEM;
	if ((mask & IBV_QP_CUR_STATE) && a->cur_qp_state != qp->state)
		return EINVAL;
	if (!(mask & IBV_QP_STATE))
		return 0;
	if ((unsigned)a->qp_state > IBV_QPS_ERR || !transition_ok(qp->state, a->qp_state))
		return EINVAL;
	qp->state = a->qp_state;
	if (qp->state == IBV_QPS_ERR)
		flush_rq(q);
	else if (qp->state == IBV_QPS_RESET)
		q->rq.n = 0;
	return 0;
}

FAKE_API int ibv_query_qp(struct ibv_qp *qp, struct ibv_qp_attr *a, int mask,
			  struct ibv_qp_init_attr *ia)
{
	struct fk_qp *q = obj(qp, K_QP);

	(void)mask;
	if (fails(FK_QUERY_QP))
		return ENOMEM;
	memset(a, 0, sizeof(*a));
	memset(ia, 0, sizeof(*ia));
	a->qp_state = qp->state;
	a->cur_qp_state = qp->state;
	a->path_mtu = IBV_MTU_1024;
	a->cap = q->cap;
	a->port_num = cfg.port;
	a->ah_attr.port_num = cfg.port;
	ia->cap = q->cap;
	ia->qp_type = qp->qp_type;
	ia->send_cq = qp->send_cq;
	ia->recv_cq = qp->recv_cq;
	ia->srq = qp->srq;
	ia->sq_sig_all = q->sig_all;
	return 0;
}

FAKE_API int ibv_destroy_qp(struct ibv_qp *qp)
{
	struct fk_qp *q = obj(qp, K_QP);

	drop_events(qp);
	((struct fk_pd *)obj(qp->pd, K_PD))->users--;
	((struct fk_cq *)obj(qp->send_cq, K_CQ))->users--;
	((struct fk_cq *)obj(qp->recv_cq, K_CQ))->users--;
	if (qp->srq)
		((struct fk_srq *)obj(qp->srq, K_SRQ))->users--;
	free(q->rq.v);
	free_obj(q, &q->magic, K_QP);
	return 0;
}

#define SEND_FLAGS (IBV_SEND_FENCE | IBV_SEND_SIGNALED | IBV_SEND_SOLICITED | IBV_SEND_INLINE)

/* What the relay promises about a send WR before it posts it. */
static void check_send(struct fk_qp *q, const struct ibv_send_wr *wr)
{
	if (!qpt_allows(q->qp.qp_type, wr->opcode))
		fk_broken("opcode %d posted to a QP of type %d", wr->opcode, q->qp.qp_type);
	if (wr->send_flags & ~(unsigned)SEND_FLAGS)
		fk_broken("send flags %#x", wr->send_flags);
	if (wr->num_sge < 0 || (uint32_t)wr->num_sge > q->cap.max_send_sge)
		fk_broken("a send with %d SGEs, the QP has %u", wr->num_sge, q->cap.max_send_sge);
	if (wr->send_flags & IBV_SEND_INLINE) {
		uint32_t len = sge_len(wr->sg_list, wr->num_sge);
		uint8_t sum = 0;

		if (len > q->cap.max_inline_data)
			fk_broken("%u bytes inline, the QP has %u", len, q->cap.max_inline_data);
		for (int k = 0; k < wr->num_sge; k++)	/* inline: the device copies them now */
			for (uint32_t i = 0; i < wr->sg_list[k].length; i++)
				sum ^= ((const uint8_t *)(uintptr_t)wr->sg_list[k].addr)[i];
		fk_sink = sum;
	}
	if (wr->opcode == IBV_WR_BIND_MW) {
		obj(wr->bind_mw.mw, K_MW);
		if (wr->bind_mw.mw->context != q->qp.context)
			fk_broken("bind of another context's MW");
		if (wr->bind_mw.bind_info.mw_access_flags & VRDMA_WL_ACCESS & ~cfg.access)
			fk_broken("bind with access %#x outside the guest's whitelist %#x",
				  wr->bind_mw.bind_info.mw_access_flags, cfg.access);
		if (wr->bind_mw.bind_info.mr && obj(wr->bind_mw.bind_info.mr, K_MR) &&
		    wr->bind_mw.bind_info.mr->context != q->qp.context)
			fk_broken("bind to another context's MR");
	} else if (q->qp.qp_type == IBV_QPT_UD) {
		obj(wr->wr.ud.ah, K_AH);
		if (wr->wr.ud.ah->context != q->qp.context)
			fk_broken("UD send through another context's AH");
	}
}

static int fk_post_send(struct ibv_qp *qp, struct ibv_send_wr *wr, struct ibv_send_wr **bad)
{
	struct fk_qp *q = obj(qp, K_QP);

	for (; wr; wr = wr->next) {
		bool ok = qp->state == IBV_QPS_RTS || qp->state == IBV_QPS_SQD;

		check_send(q, wr);
		if (fails(FK_POST_SEND)) {
			*bad = wr;
			return ENOMEM;
		}
		if (qp->state < IBV_QPS_RTS) {	/* RESET, INIT, RTR: nothing may be sent yet */
			*bad = wr;
			return EINVAL;
		}
		/* Executed at once; in SQE or ERR, flushed. Unsignaled: no completion. */
		if (ok && !(wr->send_flags & IBV_SEND_SIGNALED) && !q->sig_all)
			continue;
		complete(qp->send_cq, &(struct ibv_wc){
			.wr_id = wr->wr_id, .qp_num = qp->qp_num, .opcode = wc_opcode(wr->opcode),
			.status = ok ? IBV_WC_SUCCESS : IBV_WC_WR_FLUSH_ERR,
			.byte_len = sge_len(wr->sg_list, wr->num_sge) });
	}
	return 0;
}

static int fk_post_recv(struct ibv_qp *qp, struct ibv_recv_wr *wr, struct ibv_recv_wr **bad)
{
	struct fk_qp *q = obj(qp, K_QP);

	if (qp->srq)
		fk_broken("post_recv to a QP with an SRQ");
	for (; wr; wr = wr->next) {
		if (wr->num_sge < 0 || (uint32_t)wr->num_sge > q->cap.max_recv_sge)
			fk_broken("a receive with %d SGEs, the QP has %u", wr->num_sge,
				  q->cap.max_recv_sge);
		if (fails(FK_POST_RECV) || qp->state == IBV_QPS_RESET || q->rq.n >= q->cap.max_recv_wr ||
		    !wrq_push(&q->rq, wr->wr_id, sge_len(wr->sg_list, wr->num_sge))) {
			*bad = wr;
			return ENOMEM;
		}
		if (qp->state == IBV_QPS_ERR)
			flush_rq(q);
	}
	return 0;
}

int fk_arrive(struct ibv_qp *qp, uint32_t byte_len, uint8_t status)
{
	struct fk_qp *q = obj(qp, K_QP);
	struct fk_wrq *rq = qp->srq ? &((struct fk_srq *)obj(qp->srq, K_SRQ))->q : &q->rq;
	struct fk_wr w;

	if (!rq->n || (qp->state != IBV_QPS_RTR && qp->state != IBV_QPS_RTS))
		return -EAGAIN;
	w = wrq_pop(rq);
	complete(qp->recv_cq, &(struct ibv_wc){
		.wr_id = w.wr_id, .status = status % (IBV_WC_TM_RNDV_INCOMPLETE + 1),
		.opcode = IBV_WC_RECV, .byte_len = byte_len < w.len ? byte_len : w.len,
		.qp_num = qp->qp_num, .src_qp = 0x99 });
	if (qp->srq) {
		struct fk_srq *s = (struct fk_srq *)qp->srq;

		if (s->attr.srq_limit && s->q.n < s->attr.srq_limit) {
			s->attr.srq_limit = 0;	/* the limit event disarms it */
			push_event(IBV_EVENT_SRQ_LIMIT_REACHED, qp->srq, 0);
		}
	}
	return 0;
}
