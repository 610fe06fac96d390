// SPDX-License-Identifier: MIT
/*
 * rdma_cm in guests (docs/rdma-cm.md): the librdmacm API, defined here for programs run
 * under vbus-run, over the vrdma CM functions (include/vbus/vrdma-cm.h). vbusd owns a
 * real CM ID for each of ours, without a QP; our QP (a vbus QP on the CM's context) is
 * named by its number in CONNECT/ACCEPT and moved through INIT, RTR and RTS here with
 * the attributes the host's rdma_init_qp_attr gives, where librdmacm would do the same
 * with its own QP.
 *
 * The CM uses the bus's first vrdma device: one context on it, opened at the first CM
 * call, is every ID's `verbs` (as librdmacm's one context per device), and its DEVOPEN
 * handle carries the CM calls on both backends.
 *
 * Nothing from the host is trusted: every event is checked (its type, its IDs, lengths,
 * address families) before it becomes a struct rdma_cm_event.
 */
#include <endian.h>
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>
#include <rdma/rdma_cma.h>
#include <rdma/rdma_verbs.h>
#include <vbus/vrdma-cm.h>
#include <vbus/vrdma-cm-addr.h>
#include "vbg.h"
#include "cm.h"

struct vbg_cm_event {
	struct rdma_cm_event ev;	/* first */
	uint8_t priv[VRDMA_CM_PRIV_MAX];
};

static pthread_mutex_t cm_lock = PTHREAD_MUTEX_INITIALIZER;
static struct ibv_context *cm_ctx;	/* the CM's context on the first vrdma device */
static struct vbg_cm_id *cm_ids;	/* every live ID, under cm_lock */
static int cm_err;			/* why cm_ctx could not be made */
static uint32_t cm_version;		/* agreed with the host at HELLO */
static bool cm_tried;

/* ---- the connection to the host's CM ---- */

/* The CM's context, opened and greeted once. NULL with errno set. */
static struct vbg_context *cm_context(void)
{
	pthread_mutex_lock(&cm_lock);
	if (!cm_tried) {
		struct vbg_device *devs[VBG_MAX_DEVICES];
		struct vrdma_cm_hello h = { .version = htole32(VRDMA_CM_VERSION) }, o;
		int n = vbg_devices(devs);
		size_t got;

		cm_tried = true;
		cm_err = ENODEV;
		if (n > 0)
			cm_ctx = ibv_open_device(&devs[0]->dev);
		if (cm_ctx) {
			int r = vbus_devcall(vbg_conn(), to_vctx(cm_ctx)->handle,
					     VRDMA_CM_FN_HELLO, &h, sizeof(h), &o, sizeof(o), &got);

			if (!r && (got != sizeof(o) || !le32toh(o.version) ||
				   le32toh(o.version) > VRDMA_CM_VERSION))
				r = -EPROTO;
			if (!r)
				cm_version = le32toh(o.version);
			if (r) {
				vbg_err("rdma_cm: the host has no CM for %s (%s)",
					devs[0]->bus_name, strerror(-r));
				ibv_close_device(cm_ctx);
				cm_ctx = NULL;
				cm_err = -r == EOPNOTSUPP ? ENOSYS : -r;
			}
		} else if (n <= 0) {
			vbg_err("rdma_cm: no vrdma device on the bus");
		}
	}
	pthread_mutex_unlock(&cm_lock);
	if (!cm_ctx)
		errno = cm_err;
	return cm_ctx ? to_vctx(cm_ctx) : NULL;
}

uint32_t vbg_cm_version(void)
{
	return cm_context() ? cm_version : 0;
}

/* One CM call; its answer must be exactly outlen bytes. 0 or -errno (errno set too). */
int vbg_cm_call(uint32_t fn, const void *in, size_t inlen, void *out, size_t outlen)
{
	struct vbg_context *ctx = cm_context();
	size_t n = 0;
	int err;

	if (!ctx)
		return -errno;
	err = vbus_devcall_flags(vbg_conn(), ctx->handle, fn, 0, in, inlen, out, outlen, &n);
	if (!err && n != outlen) {
		vbg_err("rdma_cm: call %#x: the host answered %zu bytes, not %zu", fn, n, outlen);
		err = -EPROTO;
	}
	if (err)
		errno = -err;
	return err;
}

/* librdmacm's convention at the boundary: 0, or -1 with errno. */
static int ret(int err)
{
	if (!err)
		return 0;
	errno = -err;
	return -1;
}

bool vbg_cm_is_ours(struct rdma_cm_id *id)
{
	bool found = false;

	pthread_mutex_lock(&cm_lock);
	for (struct vbg_cm_id *c = cm_ids; c && !found; c = c->next)
		found = &c->id == id;
	pthread_mutex_unlock(&cm_lock);
	return found;
}

#define CHECK_ID(id) do { if (!(id) || !vbg_cm_is_ours(id)) { errno = EINVAL; return -1; } } while (0)

/* ---- addresses ---- */

static struct ibv_pd *cm_pd(void);

/* What the host says of an ID's addresses, into the public struct. An ID on the device
 * gets its context and, as librdmacm gives every ID the device's PD, the CM's PD. */
static void addr_update(struct vbg_cm_id *c, const struct vrdma_cm_addr *a)
{
	struct rdma_addr *ra = &c->id.route.addr;

	if (a->src.family)
		vrdma_cm_sa_from_wire(&ra->src_storage, &a->src);
	if (a->dst.family)
		vrdma_cm_sa_from_wire(&ra->dst_storage, &a->dst);
	memcpy(ra->addr.ibaddr.sgid.raw, a->sgid, 16);
	memcpy(ra->addr.ibaddr.dgid.raw, a->dgid, 16);
	ra->addr.ibaddr.pkey = a->pkey;
	if (a->bound) {
		c->id.verbs = cm_ctx;
		c->id.port_num = 1;	/* the vrdma device has one port */
		if (!c->id.pd) {
			int err = errno;

			c->id.pd = cm_pd();	/* NULL if it cannot be had, as before */
			errno = err;
		}
	}
}

/* ---- event channels ---- */

/*
 * Natively the first rdma_create_event_channel initializes librdmacm (ucma_init: the ABI
 * check, the device list); ours replaces it, so the program's first call of librdmacm's own
 * (rdma_getaddrinfo) would pay that later, e.g. between perftest -R's exchange and its
 * rdma_listen, where a native peer does not wait. One passive rdma_getaddrinfo of port 0
 * here does it where native programs do. librdmacm may not be loaded: then nothing.
 */
static void librdmacm_init(void)
{
	static bool done;
	struct rdma_addrinfo hints = { .ai_flags = RAI_PASSIVE, .ai_port_space = RDMA_PS_TCP };
	int (*gai)(const char *, const char *, const struct rdma_addrinfo *,
		   struct rdma_addrinfo **);
	void (*fai)(struct rdma_addrinfo *);
	struct rdma_addrinfo *res;

	if (__atomic_exchange_n(&done, true, __ATOMIC_ACQ_REL))
		return;
	gai = (int (*)(const char *, const char *, const struct rdma_addrinfo *,
		       struct rdma_addrinfo **))dlsym(RTLD_DEFAULT, "rdma_getaddrinfo");
	fai = (void (*)(struct rdma_addrinfo *))dlsym(RTLD_DEFAULT, "rdma_freeaddrinfo");
	if (gai && fai && !gai(NULL, "0", &hints, &res))
		fai(res);
}

VBG_EXPORT struct rdma_event_channel *rdma_create_event_channel(void)
{
	struct vbg_context *ctx = cm_context();
	struct vbg_cm_chan *c;
	struct vrdma_cm_chan_in in = { 0 };
	struct vrdma_cm_handle out;
	int err;

	if (!ctx)
		return NULL;
	c = calloc(1, sizeof(*c));
	if (!c) {
		errno = ENOMEM;
		return NULL;
	}
	c->ch.fd = eventfd(0, EFD_CLOEXEC);
	if (c->ch.fd < 0)
		goto err_free;
	err = vbus_devsig(vbg_conn(), c->ch.fd, VBUS_SIG_TO_GUEST, &c->sig);
	if (err) {
		errno = -err;
		goto err_close;
	}
	in.sig = htole32(c->sig);
	if (vbg_cm_call(VRDMA_CM_FN_CREATE_CHANNEL, &in, sizeof(in), &out, sizeof(out)))
		goto err_sig;
	c->handle = le32toh(out.handle);
	librdmacm_init();
	return &c->ch;

err_sig:
	err = errno;
	vbus_sig_revoke(vbg_conn(), c->sig);
	errno = err;
err_close:
	err = errno;
	close(c->ch.fd);
	errno = err;
err_free:
	free(c);
	return NULL;
}

VBG_EXPORT void rdma_destroy_event_channel(struct rdma_event_channel *channel)
{
	struct vbg_cm_chan *c = (struct vbg_cm_chan *)channel;
	struct vrdma_cm_handle in = { .handle = htole32(c->handle) };

	if (vbg_cm_call(VRDMA_CM_FN_DESTROY_CHANNEL, &in, sizeof(in), NULL, 0))
		vbg_err("rdma_destroy_event_channel: %m");
	vbus_sig_revoke(vbg_conn(), c->sig);	/* pinned by the host while it lives */
	close(c->ch.fd);
	free(c);
}

/* ---- IDs ---- */

static struct vbg_cm_id *id_new(struct rdma_event_channel *ch, void *context,
				enum rdma_port_space ps, uint32_t handle)
{
	struct vbg_cm_id *c = calloc(1, sizeof(*c));

	if (!c)
		return NULL;
	c->id.channel = ch;
	c->id.context = context;
	c->id.ps = ps;
	c->id.qp_type = ps == RDMA_PS_UDP ? IBV_QPT_UD : IBV_QPT_RC;
	c->handle = handle;
	pthread_mutex_lock(&cm_lock);
	c->next = cm_ids;
	cm_ids = c;
	pthread_mutex_unlock(&cm_lock);
	return c;
}

static void id_unlink(struct vbg_cm_id *c)
{
	pthread_mutex_lock(&cm_lock);
	for (struct vbg_cm_id **p = &cm_ids; *p; p = &(*p)->next)
		if (*p == c) {
			*p = c->next;
			break;
		}
	pthread_mutex_unlock(&cm_lock);
}

VBG_EXPORT int rdma_create_id(struct rdma_event_channel *channel, struct rdma_cm_id **id,
			      void *context, enum rdma_port_space ps)
{
	struct vbg_cm_chan *ch = (struct vbg_cm_chan *)channel;
	struct vrdma_cm_create_id_in in = {
		.ps = htole32(ps),
		.qp_type = htole32(ps == RDMA_PS_UDP ? IBV_QPT_UD : IBV_QPT_RC),
	};
	struct vrdma_cm_handle out;
	struct vbg_cm_id *c;
	bool sync = !channel;

	if (!id) {
		errno = EINVAL;
		return -1;
	}
	if (ps == RDMA_PS_IB) {
		/* librdmacm's own ucma_init probes AF_IB support this way (rdma_getaddrinfo
		 * reaches it): not an error line of every program. */
		vbg_info("rdma_create_id: RDMA_PS_IB (AF_IB) is not supported on vbus "
			 "(EOPNOTSUPP)");
		errno = EOPNOTSUPP;
		return -1;
	}
	if (ps != RDMA_PS_TCP && ps != RDMA_PS_UDP) {
		vbg_err("rdma_create_id: port space %#x is not supported on vbus (RDMA_PS_TCP "
			"and RDMA_PS_UDP only; EOPNOTSUPP)", ps);
		errno = EOPNOTSUPP;
		return -1;
	}
	if (ps == RDMA_PS_UDP && vbg_cm_version() < 2) {
		vbg_err("rdma_create_id: the host's CM has no UD (RDMA_PS_UDP; EOPNOTSUPP)");
		errno = EOPNOTSUPP;
		return -1;
	}
	/* A synchronous ID (no channel): its own, as librdmacm makes one. */
	if (!channel) {
		channel = rdma_create_event_channel();
		if (!channel)
			return -1;
		ch = (struct vbg_cm_chan *)channel;
	}
	in.channel = htole32(ch->handle);
	if (vbg_cm_call(VRDMA_CM_FN_CREATE_ID, &in, sizeof(in), &out, sizeof(out)))
		goto err_chan;
	c = id_new(channel, context, ps, le32toh(out.handle));
	if (!c) {
		struct vrdma_cm_handle d = out;

		vbg_cm_call(VRDMA_CM_FN_DESTROY_ID, &d, sizeof(d), NULL, 0);
		errno = ENOMEM;
		goto err_chan;
	}
	c->sync = sync;
	*id = &c->id;
	return 0;

err_chan:
	if (sync) {
		int e = errno;

		rdma_destroy_event_channel(channel);
		errno = e;
	}
	return -1;
}

VBG_EXPORT int rdma_destroy_id(struct rdma_cm_id *id)
{
	struct vbg_cm_id *c;
	struct vrdma_cm_handle in;
	int err;

	CHECK_ID(id);
	c = to_cid(id);
	in = (struct vrdma_cm_handle){ .handle = htole32(c->handle) };
	if (id->event) {		/* a synchronous ID's last event */
		rdma_ack_cm_event(id->event);
		id->event = NULL;
	}
	err = vbg_cm_call(VRDMA_CM_FN_DESTROY_ID, &in, sizeof(in), NULL, 0);
	id_unlink(c);
	if (c->sync)
		rdma_destroy_event_channel(id->channel);
	free(c->qp_init_attr);
	free(c->id.route.path_rec);
	free(c);
	return ret(err);
}

VBG_EXPORT int rdma_bind_addr(struct rdma_cm_id *id, struct sockaddr *addr)
{
	struct vrdma_cm_addr_in in = { 0 };
	struct vrdma_cm_addr out;
	int err;

	CHECK_ID(id);
	if (!addr) {
		errno = EINVAL;
		return -1;
	}
	in.id = htole32(to_cid(id)->handle);
	vrdma_cm_sa_to_wire(&in.src, addr);
	err = vbg_cm_call(VRDMA_CM_FN_BIND, &in, sizeof(in), &out, sizeof(out));
	if (!err)
		addr_update(to_cid(id), &out);
	return ret(err);
}

VBG_EXPORT int rdma_resolve_addr(struct rdma_cm_id *id, struct sockaddr *src_addr,
				 struct sockaddr *dst_addr, int timeout_ms)
{
	struct vrdma_cm_addr_in in = { 0 };

	CHECK_ID(id);
	if (!dst_addr) {
		errno = EINVAL;
		return -1;
	}
	in.id = htole32(to_cid(id)->handle);
	in.timeout_ms = htole32((uint32_t)timeout_ms);
	vrdma_cm_sa_to_wire(&in.src, src_addr);
	vrdma_cm_sa_to_wire(&in.dst, dst_addr);
	if (dst_addr->sa_family == AF_INET)
		memcpy(&id->route.addr.dst_sin, dst_addr, sizeof(struct sockaddr_in));
	else if (dst_addr->sa_family == AF_INET6)
		memcpy(&id->route.addr.dst_sin6, dst_addr, sizeof(struct sockaddr_in6));
	if (vbg_cm_call(VRDMA_CM_FN_RESOLVE_ADDR, &in, sizeof(in), NULL, 0))
		return -1;
	return vbg_cm_complete(id);
}

static int id_arg(struct rdma_cm_id *id, uint32_t fn, uint32_t arg)
{
	struct vrdma_cm_id_arg in = { .id = htole32(to_cid(id)->handle), .arg = htole32(arg) };

	return vbg_cm_call(fn, &in, sizeof(in), NULL, 0);
}

VBG_EXPORT int rdma_resolve_route(struct rdma_cm_id *id, int timeout_ms)
{
	CHECK_ID(id);
	if (id_arg(id, VRDMA_CM_FN_RESOLVE_ROUTE, (uint32_t)timeout_ms))
		return -1;
	return vbg_cm_complete(id);
}

VBG_EXPORT int rdma_listen(struct rdma_cm_id *id, int backlog)
{
	CHECK_ID(id);
	return ret(id_arg(id, VRDMA_CM_FN_LISTEN, backlog < 0 ? 0 : (uint32_t)backlog));
}

VBG_EXPORT int rdma_init_qp_attr(struct rdma_cm_id *id, struct ibv_qp_attr *qp_attr,
				 int *qp_attr_mask)
{
	struct vrdma_cm_id_arg in;
	struct vrdma_cm_qp_attr out;
	int err;

	CHECK_ID(id);
	if (!qp_attr || !qp_attr_mask || qp_attr->qp_state > IBV_QPS_RTS) {
		errno = EINVAL;
		return -1;
	}
	in = (struct vrdma_cm_id_arg){ .id = htole32(to_cid(id)->handle),
				       .arg = htole32(qp_attr->qp_state) };
	err = vbg_cm_call(VRDMA_CM_FN_INIT_QP_ATTR, &in, sizeof(in), &out, sizeof(out));
	if (err)
		return ret(err);
	vrdma_qp_attr_to_ibv(qp_attr, &out.attr);
	*qp_attr_mask = (int)le32toh(out.attr_mask);
	/* The vrdma device has one port; its number in the guest is 1. */
	if (*qp_attr_mask & IBV_QP_PORT)
		qp_attr->port_num = 1;
	qp_attr->ah_attr.port_num = 1;
	return 0;
}

/* The PD of QPs made without one: one for the CM's context, as librdmacm keeps one per
 * device. NULL with errno set. */
static struct ibv_pd *cm_pd(void)
{
	static struct ibv_pd *pd;

	pthread_mutex_lock(&cm_lock);
	if (!pd && cm_ctx)
		pd = ibv_alloc_pd(cm_ctx);
	pthread_mutex_unlock(&cm_lock);
	if (!pd && !errno)
		errno = ENODEV;
	return pd;
}

/* Move our QP to `state` with the CM's attributes; rd: the responder resources (RTR) or
 * initiator depth (RTS) to use, RDMA_MAX_* for the CM's own. 0 or -errno. */
static int qp_to(struct rdma_cm_id *id, enum ibv_qp_state state, uint8_t rd)
{
	struct ibv_qp_attr a = { .qp_state = state };
	int mask, err;

	/* As librdmacm before RTR: INIT again, now that the connection's CM ID gives the
	 * access flags it negotiated (at rdma_create_qp on the active side it had none). */
	if (state == IBV_QPS_RTR) {
		struct ibv_qp_attr i = { .qp_state = IBV_QPS_INIT };

		if (rdma_init_qp_attr(id, &i, &mask))
			return -errno;
		err = ibv_modify_qp(id->qp, &i, mask);
		if (err)
			return -err;
	}
	if (rdma_init_qp_attr(id, &a, &mask))
		return -errno;
	if (state == IBV_QPS_RTR && rd != RDMA_MAX_RESP_RES)
		a.max_dest_rd_atomic = rd;
	if (state == IBV_QPS_RTS && rd != RDMA_MAX_INIT_DEPTH)
		a.max_rd_atomic = rd;
	return -ibv_modify_qp(id->qp, &a, mask);
}

/* A new QP on an ID: INIT with the CM's attributes (RC); a UD QP then goes on to RTR and
 * RTS, as librdmacm's ucma_init_ud_qp (the Q_Key is INIT's). 0 or -errno. */
static int qp_init(struct rdma_cm_id *id)
{
	struct ibv_qp_attr a = { .qp_state = IBV_QPS_RTR };
	int err = qp_to(id, IBV_QPS_INIT, 0);

	if (err || id->qp_type != IBV_QPT_UD)
		return err;
	err = ibv_modify_qp(id->qp, &a, IBV_QP_STATE);
	if (!err) {
		a.qp_state = IBV_QPS_RTS;
		a.sq_psn = 0;
		err = ibv_modify_qp(id->qp, &a, IBV_QP_STATE | IBV_QP_SQ_PSN);
	}
	return -err;
}

static int qp_err(struct rdma_cm_id *id)
{
	struct ibv_qp_attr a = { .qp_state = IBV_QPS_ERR };

	return id->qp ? -ibv_modify_qp(id->qp, &a, IBV_QP_STATE) : 0;
}

static void own_cqs_free(struct rdma_cm_id *id)
{
	if (id->send_cq)
		ibv_destroy_cq(id->send_cq);
	if (id->recv_cq)
		ibv_destroy_cq(id->recv_cq);
	if (id->send_cq_channel)
		ibv_destroy_comp_channel(id->send_cq_channel);
	if (id->recv_cq_channel)
		ibv_destroy_comp_channel(id->recv_cq_channel);
	id->send_cq = id->recv_cq = NULL;
	id->send_cq_channel = id->recv_cq_channel = NULL;
}

/* The ID's own CQs, each with a completion channel, as librdmacm's ucma_create_cqs (the
 * rdma_get_send_comp/rdma_get_recv_comp helpers wait on those channels). 0 or -1. */
static int own_cqs(struct rdma_cm_id *id, uint32_t send_wr, uint32_t recv_wr)
{
	id->send_cq_channel = ibv_create_comp_channel(id->verbs);
	id->recv_cq_channel = id->send_cq_channel ? ibv_create_comp_channel(id->verbs) : NULL;
	if (id->recv_cq_channel) {
		id->send_cq = ibv_create_cq(id->verbs, (int)send_wr + 1, id,
					    id->send_cq_channel, 0);
		id->recv_cq = id->send_cq ? ibv_create_cq(id->verbs, (int)recv_wr + 1, id,
							  id->recv_cq_channel, 0) : NULL;
	}
	if (!id->recv_cq) {
		int err = errno;

		own_cqs_free(id);
		errno = err;
		return -1;
	}
	return 0;
}

VBG_EXPORT int rdma_create_qp(struct rdma_cm_id *id, struct ibv_pd *pd,
			      struct ibv_qp_init_attr *attr)
{
	struct vbg_cm_id *c;
	struct ibv_qp *qp;
	int err;

	CHECK_ID(id);
	c = to_cid(id);
	if (!attr || !id->verbs || (pd && pd->context != id->verbs)) {
		errno = EINVAL;
		return -1;
	}
	if (!pd) {
		if (!id->pd)
			id->pd = cm_pd();
		pd = id->pd;
		if (!pd)
			return -1;
	}
	if (attr->qp_type != id->qp_type) {
		errno = attr->qp_type == IBV_QPT_RC || attr->qp_type == IBV_QPT_UD ? EINVAL
										      : EOPNOTSUPP;
		return -1;
	}
	if (!attr->send_cq || !attr->recv_cq) {
		if (attr->send_cq || attr->recv_cq) {
			errno = EINVAL;
			return -1;
		}
		if (own_cqs(id, attr->cap.max_send_wr, attr->cap.max_recv_wr))
			return -1;
		attr->send_cq = id->send_cq;
		attr->recv_cq = id->recv_cq;
		c->own_cqs = true;
	}
	if (id->srq && !attr->srq)
		attr->srq = id->srq;
	qp = ibv_create_qp(pd, attr);
	if (!qp)
		goto err_cqs;
	id->qp = qp;
	err = qp_init(id);
	if (err) {
		ibv_destroy_qp(qp);
		id->qp = NULL;
		errno = -err;
		goto err_cqs;
	}
	id->pd = pd;
	return 0;

err_cqs:
	if (c->own_cqs) {
		err = errno;
		own_cqs_free(id);
		c->own_cqs = false;
		errno = err;
	}
	return -1;
}

/* rdma_create_qp_ex: an RC QP made by ibv_create_qp_ex on the ID's context (the program
 * gives the PD and CQs; librdmacm would make missing CQs, not supported here), then INIT. */
VBG_EXPORT int rdma_create_qp_ex(struct rdma_cm_id *id, struct ibv_qp_init_attr_ex *attr)
{
	struct ibv_qp *qp;
	int err;

	CHECK_ID(id);
	if (!attr || !id->verbs || id->qp) {
		errno = EINVAL;
		return -1;
	}
	if (!(attr->comp_mask & IBV_QP_INIT_ATTR_PD)) {
		if (!id->pd)
			id->pd = cm_pd();
		if (!id->pd)
			return -1;
		attr->pd = id->pd;
		attr->comp_mask |= IBV_QP_INIT_ATTR_PD;
	}
	if (attr->pd->context != id->verbs || attr->qp_type != id->qp_type ||
	    !attr->send_cq || !attr->recv_cq) {
		errno = attr->qp_type != IBV_QPT_RC && attr->qp_type != IBV_QPT_UD ? EOPNOTSUPP
										     : EINVAL;
		return -1;
	}
	if (id->srq && !attr->srq)
		attr->srq = id->srq;
	qp = ibv_create_qp_ex(id->verbs, attr);
	if (!qp)
		return -1;
	id->qp = qp;
	err = qp_init(id);
	if (err) {
		ibv_destroy_qp(qp);
		id->qp = NULL;
		return ret(err);
	}
	id->pd = attr->pd;
	return 0;
}

VBG_EXPORT void rdma_destroy_qp(struct rdma_cm_id *id)
{
	struct vbg_cm_id *c;

	if (!id || !vbg_cm_is_ours(id))
		return;
	c = to_cid(id);
	if (id->qp)
		ibv_destroy_qp(id->qp);
	id->qp = NULL;
	if (c->own_cqs) {
		own_cqs_free(id);
		c->own_cqs = false;
	}
}

/* The connection parameters for the host: our QP's number where we have one. */
static int conn_in(struct rdma_cm_id *id, const struct rdma_conn_param *p,
		   struct vrdma_cm_conn_in *in)
{
	memset(in, 0, sizeof(*in));
	in->id = htole32(to_cid(id)->handle);
	if (p) {
		if (p->private_data_len > VRDMA_CM_PRIV_MAX ||
		    (p->private_data_len && !p->private_data))
			return -EINVAL;
		in->private_data_len = p->private_data_len;
		if (p->private_data_len)
			memcpy(in->private_data, p->private_data, p->private_data_len);
		in->responder_resources = p->responder_resources;
		in->initiator_depth = p->initiator_depth;
		in->flow_control = p->flow_control;
		in->retry_count = p->retry_count;
		in->rnr_retry_count = p->rnr_retry_count;
		in->srq = p->srq;
		in->qp_num = htole32(p->qp_num);
	} else {
		in->retry_count = 7;
		in->rnr_retry_count = 7;
		in->flow_control = 1;
	}
	if (id->qp) {
		in->qp_num = htole32(id->qp->qp_num);
		in->srq = id->qp->srq != NULL;
	}
	return 0;
}

/* The device's limits stand for RDMA_MAX_*, as librdmacm's cma_dev does. */
static uint8_t dev_max_resp(void)
{
	return cm_ctx ? (uint8_t)to_vctx(cm_ctx)->dev_attr.max_qp_rd_atom : 0;
}

static uint8_t dev_max_init(void)
{
	return cm_ctx ? (uint8_t)to_vctx(cm_ctx)->dev_attr.max_qp_init_rd_atom : 0;
}

VBG_EXPORT int rdma_connect(struct rdma_cm_id *id, struct rdma_conn_param *conn_param)
{
	struct vrdma_cm_conn_in in;
	struct vbg_cm_id *c;
	int err;

	CHECK_ID(id);
	c = to_cid(id);
	if (!id->qp && !conn_param) {
		errno = EINVAL;
		return -1;
	}
	err = conn_in(id, conn_param, &in);
	if (err)
		return ret(err);
	c->init_depth = conn_param && conn_param->initiator_depth != RDMA_MAX_INIT_DEPTH ?
			conn_param->initiator_depth : dev_max_init();
	c->resp_res = conn_param && conn_param->responder_resources != RDMA_MAX_RESP_RES ?
		      conn_param->responder_resources : dev_max_resp();
	in.initiator_depth = c->init_depth;
	in.responder_resources = c->resp_res;
	if (vbg_cm_call(VRDMA_CM_FN_CONNECT, &in, sizeof(in), NULL, 0))
		return -1;
	return vbg_cm_complete(id);
}

VBG_EXPORT int rdma_accept(struct rdma_cm_id *id, struct rdma_conn_param *conn_param)
{
	struct vrdma_cm_conn_in in;
	struct vbg_cm_id *c;
	int err;

	CHECK_ID(id);
	c = to_cid(id);
	if (!id->qp && !conn_param) {
		errno = EINVAL;
		return -1;
	}
	/* As librdmacm: no more than the request offered, the device's limits for MAX. */
	if (conn_param) {
		if (conn_param->initiator_depth != RDMA_MAX_INIT_DEPTH &&
		    conn_param->initiator_depth < c->init_depth)
			c->init_depth = conn_param->initiator_depth;
		if (conn_param->responder_resources != RDMA_MAX_RESP_RES &&
		    conn_param->responder_resources < c->resp_res)
			c->resp_res = conn_param->responder_resources;
	}
	if (id->qp && id->qp_type != IBV_QPT_UD) {
		err = qp_to(id, IBV_QPS_RTR, c->resp_res);
		if (!err)
			err = qp_to(id, IBV_QPS_RTS, c->init_depth);
		if (err)
			return ret(err);
	}
	err = conn_in(id, conn_param, &in);
	if (err)
		return ret(err);
	in.initiator_depth = c->init_depth;
	in.responder_resources = c->resp_res;
	err = vbg_cm_call(VRDMA_CM_FN_ACCEPT, &in, sizeof(in), NULL, 0);
	if (err) {
		qp_err(id);
		return ret(err);
	}
	/* As librdmacm: a UD accept (SIDR REP) has no event to wait for. */
	return id->qp_type == IBV_QPT_UD ? 0 : vbg_cm_complete(id);
}

VBG_EXPORT int rdma_reject(struct rdma_cm_id *id, const void *private_data,
			   uint8_t private_data_len)
{
	struct rdma_conn_param p = { .private_data = private_data,
				     .private_data_len = private_data_len };
	struct vrdma_cm_conn_in in;
	int err;

	CHECK_ID(id);
	err = conn_in(id, &p, &in);
	in.qp_num = 0;
	in.srq = 0;
	return ret(err ? err : vbg_cm_call(VRDMA_CM_FN_REJECT, &in, sizeof(in), NULL, 0));
}

VBG_EXPORT int rdma_disconnect(struct rdma_cm_id *id)
{
	int err;

	CHECK_ID(id);
	err = qp_err(id);	/* as librdmacm: the QP flushes, then the DREQ goes */
	if (!err)
		err = id_arg(id, VRDMA_CM_FN_DISCONNECT, 0);
	return err ? ret(err) : vbg_cm_complete(id);
}

VBG_EXPORT int rdma_establish(struct rdma_cm_id *id)
{
	CHECK_ID(id);
	return ret(id_arg(id, VRDMA_CM_FN_ESTABLISH, 0));
}

/* ---- events ---- */

static struct vbg_cm_id *id_by_handle(uint32_t h)
{
	struct vbg_cm_id *c;

	pthread_mutex_lock(&cm_lock);
	for (c = cm_ids; c && c->handle != h; c = c->next)
		;
	pthread_mutex_unlock(&cm_lock);
	return c;
}

/* A UD ID's event carries param.ud instead (same private data); the address vector,
 * QPN and Q_Key of ESTABLISHED and CONNECT_REQUEST come from UD_PARAM. */
static void event_ud(struct vbg_cm_id *c, struct vbg_cm_event *e)
{
	struct rdma_ud_param *u = &e->ev.param.ud;
	const void *priv = e->ev.param.conn.private_data;
	uint8_t len = e->ev.param.conn.private_data_len;
	struct vrdma_cm_handle in = { .handle = htole32(c->handle) };
	struct vrdma_cm_ud w;

	memset(&e->ev.param, 0, sizeof(e->ev.param));
	u->private_data = priv;
	u->private_data_len = len;
	if (e->ev.event != RDMA_CM_EVENT_ESTABLISHED &&
	    e->ev.event != RDMA_CM_EVENT_CONNECT_REQUEST)
		return;
	if (vbg_cm_call(VRDMA_CM_FN_UD_PARAM, &in, sizeof(in), &w, sizeof(w))) {
		vbg_err("rdma_cm: the UD parameters of an event: %m");
		return;
	}
	vrdma_ah_attr_to_ibv(&u->ah_attr, &w.ah_attr);
	u->ah_attr.port_num = 1;	/* the vrdma device's one port */
	u->qp_num = le32toh(w.qp_num);
	u->qkey = le32toh(w.qkey);
}

/* The host's event into *e, checked. 0, or -EPROTO for an event that names IDs we do not
 * have or breaks a length (dropped, with a log line). */
static int event_in(struct vbg_cm_chan *ch, const struct vrdma_cm_event *w,
		    struct vbg_cm_event *e)
{
	uint32_t type = le32toh(w->event);
	struct vbg_cm_id *c, *l = NULL;

	if (type > RDMA_CM_EVENT_TIMEWAIT_EXIT || w->private_data_len > VRDMA_CM_PRIV_MAX)
		return -EPROTO;
	if (type == RDMA_CM_EVENT_CONNECT_REQUEST) {
		l = id_by_handle(le32toh(w->listen_id));
		if (!l || id_by_handle(le32toh(w->id)) || !w->id)
			return -EPROTO;
		c = id_new(&ch->ch, l->id.context, l->id.ps, le32toh(w->id));
		if (!c)
			return -ENOMEM;
		/* As librdmacm: at most what the peer offers, at most the device's. */
		c->resp_res = w->initiator_depth < dev_max_resp() ? w->initiator_depth
								   : dev_max_resp();
		c->init_depth = w->responder_resources < dev_max_init() ?
				w->responder_resources : dev_max_init();
	} else {
		c = id_by_handle(le32toh(w->id));
		if (!c || c->id.channel != &ch->ch)
			return -EPROTO;
	}
	addr_update(c, &w->addr);
	memset(e, 0, sizeof(*e));
	e->ev.id = &c->id;
	e->ev.listen_id = l ? &l->id : NULL;
	e->ev.event = type;
	e->ev.status = (int)le32toh(w->status);
	memcpy(e->priv, w->private_data, w->private_data_len);
	e->ev.param.conn.private_data = w->private_data_len ? e->priv : NULL;
	e->ev.param.conn.private_data_len = w->private_data_len;
	e->ev.param.conn.responder_resources = w->responder_resources;
	e->ev.param.conn.initiator_depth = w->initiator_depth;
	e->ev.param.conn.flow_control = w->flow_control;
	e->ev.param.conn.retry_count = w->retry_count;
	e->ev.param.conn.rnr_retry_count = w->rnr_retry_count;
	e->ev.param.conn.srq = w->srq;
	e->ev.param.conn.qp_num = le32toh(w->qp_num);
	if (c->id.qp_type == IBV_QPT_UD)
		event_ud(c, e);
	return 0;
}

/* What librdmacm does with its QP on an event (cma.c's rdma_get_cm_event). */
static void event_qp(struct vbg_cm_event *e)
{
	struct rdma_cm_id *id = e->ev.id;
	int err;

	switch (e->ev.event) {
	case RDMA_CM_EVENT_CONNECT_RESPONSE:
		if (!id->qp)
			return;	/* the program completes it: rdma_establish */
		err = qp_to(id, IBV_QPS_RTR, RDMA_MAX_RESP_RES);
		if (!err)
			err = qp_to(id, IBV_QPS_RTS, to_cid(id)->init_depth);
		if (!err)
			err = id_arg(id, VRDMA_CM_FN_ESTABLISH, 0);
		if (err) {
			qp_err(id);
			rdma_reject(id, NULL, 0);
			e->ev.event = RDMA_CM_EVENT_CONNECT_ERROR;
			e->ev.status = err;
			return;
		}
		e->ev.event = RDMA_CM_EVENT_ESTABLISHED;
		return;
	case RDMA_CM_EVENT_REJECTED:
	case RDMA_CM_EVENT_UNREACHABLE:
	case RDMA_CM_EVENT_CONNECT_ERROR:
		qp_err(id);
		return;
	default:
		return;
	}
}

/* Empty the channel's eventfd without blocking. */
static void chan_drain(struct vbg_cm_chan *ch)
{
	struct pollfd p = { .fd = ch->ch.fd, .events = POLLIN };
	uint64_t v;

	if (poll(&p, 1, 0) == 1 && (p.revents & POLLIN) &&
	    read(ch->ch.fd, &v, sizeof(v)) != sizeof(v))
		vbg_dbg("rdma_cm: channel read: %m");
}

/*
 * The next event: empty the eventfd, then ask the host; an event with more behind it
 * writes the eventfd again, so that the fd is readable exactly while events wait (the
 * host writes it for every event queued after our call). Without one: EAGAIN on a
 * non-blocking fd, else wait for the host's kick and ask again.
 */
VBG_EXPORT int rdma_get_cm_event(struct rdma_event_channel *channel,
				 struct rdma_cm_event **event)
{
	struct vbg_cm_chan *ch = (struct vbg_cm_chan *)channel;
	struct vrdma_cm_handle in;
	struct vrdma_cm_event w;
	struct vbg_cm_event *e;
	uint64_t one = 1;
	int err;

	if (!channel || !event) {
		errno = EINVAL;
		return -1;
	}
	in = (struct vrdma_cm_handle){ .handle = htole32(ch->handle) };
	for (;;) {
		chan_drain(ch);
		err = vbg_cm_call(VRDMA_CM_FN_GET_EVENT, &in, sizeof(in), &w, sizeof(w));
		if (err == -EAGAIN) {
			struct pollfd p = { .fd = ch->ch.fd, .events = POLLIN };

			if (fcntl(ch->ch.fd, F_GETFL) & O_NONBLOCK) {
				errno = EAGAIN;
				return -1;
			}
			if (poll(&p, 1, -1) < 0 && errno != EINTR)
				return -1;
			continue;
		}
		if (err)
			return -1;
		if (le32toh(w.remaining) &&
		    write(ch->ch.fd, &one, sizeof(one)) != sizeof(one))
			vbg_dbg("rdma_cm: channel re-arm: %m");
		e = malloc(sizeof(*e));
		if (!e) {
			errno = ENOMEM;
			return -1;
		}
		err = event_in(ch, &w, e);
		if (err) {
			vbg_err("rdma_cm: an event from the host (type %u, id %#x) does not fit "
				"our IDs: dropped", le32toh(w.event), le32toh(w.id));
			free(e);
			continue;
		}
		event_qp(e);
		/* As librdmacm: a request on a synchronous listener gets its own channel. */
		if (e->ev.event == RDMA_CM_EVENT_CONNECT_REQUEST && to_cid(e->ev.listen_id)->sync) {
			err = vbg_cm_sync_request(to_cid(e->ev.id));
			if (err) {
				vbg_err("rdma_cm: a request on a synchronous listener: %s: rejected",
					strerror(-err));
				rdma_reject(e->ev.id, NULL, 0);
				rdma_destroy_id(e->ev.id);
				free(e);
				continue;
			}
		}
		*event = &e->ev;
		return 0;
	}
}

VBG_EXPORT int rdma_ack_cm_event(struct rdma_cm_event *event)
{
	if (!event) {
		errno = EINVAL;
		return -1;
	}
	free(event);
	return 0;
}

/* ---- devices ---- */

VBG_EXPORT struct ibv_context **rdma_get_devices(int *num_devices)
{
	struct ibv_context **list = calloc(2, sizeof(*list));

	if (!list) {
		errno = ENOMEM;
		return NULL;
	}
	if (cm_context())
		list[0] = cm_ctx;
	if (num_devices)
		*num_devices = list[0] ? 1 : 0;
	return list;
}

VBG_EXPORT void rdma_free_devices(struct ibv_context **list)
{
	free(list);
}

/* ---- not yet (docs/rdma-cm.md): a clear error, never the real library with our IDs ---- */

#define CM_UNSUPPORTED(name) do { \
	static int _once; \
	if (!_once++) \
		vbg_err("%s is not supported on vbus devices yet (EOPNOTSUPP)", name); \
	errno = EOPNOTSUPP; } while (0)

/* The ID options librdmacm passes to the kernel (TOS, REUSEADDR, AFONLY, ACK_TIMEOUT);
 * path records (RDMA_OPTION_IB) are not carried: ENOSYS, librdmacm's answer to an
 * unknown option. */
VBG_EXPORT int rdma_set_option(struct rdma_cm_id *id, int level, int optname, void *optval,
			       size_t optlen)
{
	struct vrdma_cm_option_in in = { 0 };
	uint64_t v;

	CHECK_ID(id);
	if (!optval) {
		errno = EINVAL;
		return -1;
	}
	if (level == RDMA_OPTION_ID && (optname == RDMA_OPTION_ID_TOS ||
					 optname == RDMA_OPTION_ID_ACK_TIMEOUT)) {
		if (optlen != sizeof(uint8_t)) {
			errno = EINVAL;
			return -1;
		}
		v = *(uint8_t *)optval;
	} else if (level == RDMA_OPTION_ID && (optname == RDMA_OPTION_ID_REUSEADDR ||
						optname == RDMA_OPTION_ID_AFONLY)) {
		if (optlen != sizeof(int)) {
			errno = EINVAL;
			return -1;
		}
		v = *(int *)optval ? 1 : 0;
	} else {
		vbg_info("rdma_set_option level %d option %d is not supported on vbus (ENOSYS)",
			 level, optname);
		errno = ENOSYS;
		return -1;
	}
	in.id = htole32(to_cid(id)->handle);
	in.level = htole32((uint32_t)level);
	in.optname = htole32((uint32_t)optname);
	in.value = htole64(v);
	return ret(vbg_cm_call(VRDMA_CM_FN_SET_OPTION, &in, sizeof(in), NULL, 0));
}

VBG_EXPORT int rdma_join_multicast(struct rdma_cm_id *id, struct sockaddr *addr,
				   void *context)
{
	(void)id; (void)addr; (void)context;
	CM_UNSUPPORTED("rdma_join_multicast (multicast)");
	return -1;
}

VBG_EXPORT int rdma_join_multicast_ex(struct rdma_cm_id *id,
				      struct rdma_cm_join_mc_attr_ex *mc_join_attr,
				      void *context)
{
	(void)id; (void)mc_join_attr; (void)context;
	CM_UNSUPPORTED("rdma_join_multicast_ex (multicast)");
	return -1;
}

VBG_EXPORT int rdma_leave_multicast(struct rdma_cm_id *id, struct sockaddr *addr)
{
	(void)id; (void)addr;
	CM_UNSUPPORTED("rdma_leave_multicast (multicast)");
	return -1;
}

/* rdma_notify: the real ID in vbusd is told (CM version 3); the kernel CM acts on
 * IBV_EVENT_COMM_EST (a passive side whose QP got data before the RTU: ESTABLISHED) and
 * answers the rest as natively. */
VBG_EXPORT int rdma_notify(struct rdma_cm_id *id, enum ibv_event_type event)
{
	struct vrdma_cm_id_arg in = { 0 };

	CHECK_ID(id);
	if (vbg_cm_version() < 3) {
		CM_UNSUPPORTED("rdma_notify (the host's CM is older than version 3)");
		return -1;
	}
	in.id = htole32(to_cid(id)->handle);
	in.arg = htole32((uint32_t)event);
	return ret(vbg_cm_call(VRDMA_CM_FN_NOTIFY, &in, sizeof(in), NULL, 0));
}

/* rdma_create_srq_ex: a basic SRQ on the ID's context, as librdmacm: the ID's PD when the
 * program names none (the CM's shared PD when the ID has none either), kept in id->srq for
 * the ID's next rdma_create_qp. XRC SRQs: EOPNOTSUPP (no XRC on vbus devices). */
VBG_EXPORT int rdma_create_srq_ex(struct rdma_cm_id *id, struct ibv_srq_init_attr_ex *attr)
{
	struct ibv_srq *srq;

	CHECK_ID(id);
	if (!attr || !id->verbs || id->srq || !(attr->comp_mask & IBV_SRQ_INIT_ATTR_TYPE)) {
		errno = EINVAL;
		return -1;
	}
	if (attr->srq_type != IBV_SRQT_BASIC) {
		errno = EOPNOTSUPP;
		return -1;
	}
	if (!(attr->comp_mask & IBV_SRQ_INIT_ATTR_PD) || !attr->pd) {
		if (!id->pd)
			id->pd = cm_pd();
		if (!id->pd)
			return -1;
		attr->pd = id->pd;
		attr->comp_mask |= IBV_SRQ_INIT_ATTR_PD;
	}
	srq = ibv_create_srq_ex(id->verbs, attr);
	if (!srq)
		return -1;
	if (!id->pd)
		id->pd = attr->pd;
	id->srq = srq;
	return 0;
}

VBG_EXPORT int rdma_create_srq(struct rdma_cm_id *id, struct ibv_pd *pd,
			       struct ibv_srq_init_attr *attr)
{
	struct ibv_srq_init_attr_ex ex;
	int r;

	CHECK_ID(id);
	if (!attr) {
		errno = EINVAL;
		return -1;
	}
	memset(&ex, 0, sizeof(ex));
	memcpy(&ex, attr, sizeof(*attr));
	ex.comp_mask = IBV_SRQ_INIT_ATTR_TYPE | IBV_SRQ_INIT_ATTR_PD;
	ex.srq_type = IBV_SRQT_BASIC;
	ex.pd = pd;
	r = rdma_create_srq_ex(id, &ex);
	memcpy(attr, &ex, sizeof(*attr));
	return r;
}

VBG_EXPORT void rdma_destroy_srq(struct rdma_cm_id *id)
{
	if (!id || !vbg_cm_is_ours(id) || !id->srq)
		return;
	ibv_destroy_srq(id->srq);
	id->srq = NULL;
}

VBG_EXPORT int rdma_set_local_ece(struct rdma_cm_id *id, struct ibv_ece *ece)
{
	(void)id; (void)ece;
	CM_UNSUPPORTED("rdma_set_local_ece (ECE)");
	return -1;
}

VBG_EXPORT int rdma_get_remote_ece(struct rdma_cm_id *id, struct ibv_ece *ece)
{
	(void)id; (void)ece;
	CM_UNSUPPORTED("rdma_get_remote_ece (ECE)");
	return -1;
}
