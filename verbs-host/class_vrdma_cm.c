// SPDX-License-Identifier: MIT
/*
 * rdma_cm for the guests of a vrdma device (docs/rdma-cm.md, include/vbus/vrdma-cm.h).
 *
 * Each guest instance of a vrdma device that uses the CM gets, in vbusd, one real
 * librdmacm event channel, a thread that reads it, and a table of handles naming its
 * real CM IDs and its channels. The real IDs have no QP: the guest's QP, on either
 * backend, is named by qp_num in CONNECT and ACCEPT (after checking that the guest owns
 * a QP of that number), and the guest library moves it through INIT, RTR and RTS with
 * the attributes INIT_QP_ATTR returns. So the same code serves the relay and the kernel
 * backend.
 *
 * Policy: the only local address a guest may bind, listen on or connect from is the
 * address of the device's GID index (`gid=`): a wildcard becomes that address, another
 * one is -EADDRNOTAVAIL, a port below 1024 is -EACCES for a guest that is not root, as
 * natively; an address resolution that lands elsewhere becomes ADDR_ERROR with
 * -EADDRNOTAVAIL.
 *
 * Locking: cm->lock guards the table and the queues. Real librdmacm calls are made with
 * it held, except rdma_destroy_id, which waits until the ID's events are acknowledged:
 * the event thread acknowledges each event after dropping the lock.
 */
#include <arpa/inet.h>
#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>
#include <rdma/rdma_cma.h>
#include <vbus/vrdma-cm.h>
#include <vbus/vrdma-cm-addr.h>
#include <vbus/vrdma-verbs.h>
#include <vbus/vrdma-kernel.h>
#include "vrdma/vrdma.h"
#include "vbusd.h"
#include "class_vrdma_cm.h"

#define CM_MAX_OBJS	1024		/* IDs and channels per guest instance */
#define CM_MAX_EVENTS	1024		/* queued per channel */
#define CM_IDX_BITS	20

enum { CM_FREE, CM_ID, CM_CHAN };

struct cm_ev {
	struct cm_ev *next;
	struct vrdma_cm_event e;
};

struct cm_chan {
	uint32_t sig;
	int fd;				/* the guest's eventfd (pinned DEVSIG) */
	uint32_t users;			/* IDs reporting to it */
	struct cm_ev *head, *tail;
	uint32_t n;
};

struct cm_id {
	struct rdma_cm_id *id;
	uint32_t chan;			/* handle */
	bool bound;			/* we bound it (or resolution did) */
	bool ud_valid;			/* ud holds a UD ID's last parameters */
	struct vrdma_cm_ud ud;
	const char *state;		/* what it last did or heard, for `vbusctl res show` */
};

struct cm_obj {
	uint16_t type, gen;
	void *p;
};

struct vbd_cm {
	struct vbd_guest *g;
	const struct vbd_cm_policy *pol;
	bool have_addr;
	struct sockaddr_storage addr;	/* the one local address (policy_addr) */
	struct vrdma_guest *vg;		/* relay: for the QP check; NULL on the kernel backend */
	pthread_mutex_t lock;
	struct cm_obj *objs;		/* index 0 unused */
	uint32_t nobjs;
	struct rdma_event_channel *ch;
	int stopfd;
	pthread_t thread;
	bool running;
};

/* ---- handles ---- */

static uint32_t obj_new(struct vbd_cm *cm, uint16_t type, void *p)
{
	uint32_t i;

	for (i = 1; i < cm->nobjs && cm->objs[i].type != CM_FREE; i++)
		;
	if (i >= cm->nobjs) {
		uint32_t n = cm->nobjs ? cm->nobjs * 2 : 16;
		struct cm_obj *t;

		if (n > CM_MAX_OBJS)
			n = CM_MAX_OBJS;
		if (i >= n)
			return 0;
		t = realloc(cm->objs, n * sizeof(*t));
		if (!t)
			return 0;
		memset(t + cm->nobjs, 0, (n - cm->nobjs) * sizeof(*t));
		cm->objs = t;
		cm->nobjs = n;
	}
	cm->objs[i].type = type;
	cm->objs[i].p = p;
	cm->objs[i].gen = (uint16_t)((cm->objs[i].gen + 1) & 0xfff);
	if (!cm->objs[i].gen)
		cm->objs[i].gen = 1;
	return (uint32_t)cm->objs[i].gen << CM_IDX_BITS | i;
}

/* The object a guest's handle names: NULL with *err -EINVAL (malformed, wrong type) or
 * -ENOENT (free or stale). */
static void *obj_get(struct vbd_cm *cm, uint32_t h, uint16_t type, int *err)
{
	uint32_t i = h & ((1u << CM_IDX_BITS) - 1);
	struct cm_obj *o;

	*err = -EINVAL;
	if (!h || i == 0 || i >= cm->nobjs)
		return NULL;
	o = &cm->objs[i];
	*err = -ENOENT;
	if (o->type == CM_FREE || o->gen != h >> CM_IDX_BITS)
		return NULL;
	*err = -EINVAL;
	if (o->type != type)
		return NULL;
	*err = 0;
	return o->p;
}

static void obj_free(struct vbd_cm *cm, uint32_t h)
{
	struct cm_obj *o = &cm->objs[h & ((1u << CM_IDX_BITS) - 1)];

	o->type = CM_FREE;
	o->p = NULL;
}

/* ---- addresses ---- */

static uint16_t sa_port(const struct sockaddr_storage *ss)
{
	return ss->ss_family == AF_INET ? ntohs(((const struct sockaddr_in *)ss)->sin_port)
					: ntohs(((const struct sockaddr_in6 *)ss)->sin6_port);
}

static bool sa_is_any(const struct sockaddr_storage *ss)
{
	static const struct in6_addr any6 = IN6ADDR_ANY_INIT;

	if (ss->ss_family == AF_INET)
		return ((const struct sockaddr_in *)ss)->sin_addr.s_addr == htonl(INADDR_ANY);
	return !memcmp(&((const struct sockaddr_in6 *)ss)->sin6_addr, &any6, sizeof(any6));
}

static bool sa_same_host(const struct sockaddr *a, const struct sockaddr_storage *b)
{
	if (a->sa_family != b->ss_family)
		return false;
	if (a->sa_family == AF_INET)
		return ((const struct sockaddr_in *)a)->sin_addr.s_addr ==
		       ((const struct sockaddr_in *)b)->sin_addr.s_addr;
	return !memcmp(&((const struct sockaddr_in6 *)a)->sin6_addr,
		       &((const struct sockaddr_in6 *)b)->sin6_addr, sizeof(struct in6_addr));
}

/*
 * The local address a guest asked for, under the policy: a wildcard becomes the allowed
 * address (with the guest's port), the allowed address stays, anything else is
 * -EADDRNOTAVAIL; a privileged port needs a root guest (-EACCES, as natively).
 */
static int policy_local(struct vbd_cm *cm, struct sockaddr_storage *ss)
{
	uint16_t port = sa_port(ss);

	if (!cm->have_addr)
		return -EADDRNOTAVAIL;
	if (sa_is_any(ss)) {
		*ss = cm->addr;
		if (ss->ss_family == AF_INET)
			((struct sockaddr_in *)ss)->sin_port = htons(port);
		else
			((struct sockaddr_in6 *)ss)->sin6_port = htons(port);
	} else if (!sa_same_host((const struct sockaddr *)ss, &cm->addr)) {
		return -EADDRNOTAVAIL;
	}
	if (port && port < 1024 && cm->g->uid != 0)
		return -EACCES;
	return 0;
}

/* The real ID is on the device and port behind this vrdma device. */
static bool on_our_device(struct vbd_cm *cm, const struct rdma_cm_id *id)
{
	return id->verbs && !strcmp(ibv_get_device_name(id->verbs->device), cm->pol->ibdev) &&
	       id->port_num == cm->pol->port;
}

static void addr_snapshot(struct vrdma_cm_addr *a, const struct rdma_cm_id *id)
{
	memset(a, 0, sizeof(*a));
	vrdma_cm_sa_to_wire(&a->src, (const struct sockaddr *)&id->route.addr.src_storage);
	vrdma_cm_sa_to_wire(&a->dst, (const struct sockaddr *)&id->route.addr.dst_storage);
	memcpy(a->sgid, id->route.addr.addr.ibaddr.sgid.raw, 16);
	memcpy(a->dgid, id->route.addr.addr.ibaddr.dgid.raw, 16);
	a->pkey = id->route.addr.addr.ibaddr.pkey;
	a->port_num = id->port_num;
	a->bound = id->verbs != NULL;
}

/* ---- events ---- */

static void chan_push(struct vbd_cm *cm, struct cm_chan *c, struct cm_ev *ev)
{
	uint64_t one = 1;

	if (c->n >= CM_MAX_EVENTS) {
		vbd_warn("guest %u: CM channel full, event %u dropped", cm->g->id,
			 le32toh(ev->e.event));
		free(ev);
		return;
	}
	if (c->tail)
		c->tail->next = ev;
	else
		c->head = ev;
	c->tail = ev;
	c->n++;
	if (write(c->fd, &one, sizeof(one)) != sizeof(one))
		vbd_dbg("guest %u: CM channel kick: %s", cm->g->id, strerror(errno));
}

/* A UD ID's event: private data in the event, the address vector, QPN and Q_Key kept
 * for UD_PARAM (ESTABLISHED on the active side, CONNECT_REQUEST on the passive one). */
static void ud_event(struct cm_id *ci, struct vrdma_cm_event *e, const struct rdma_cm_event *re)
{
	const struct rdma_ud_param *p = &re->param.ud;
	uint8_t len;

	if (re->event != RDMA_CM_EVENT_ESTABLISHED && re->event != RDMA_CM_EVENT_CONNECT_REQUEST &&
	    re->event != RDMA_CM_EVENT_REJECTED && re->event != RDMA_CM_EVENT_UNREACHABLE)
		return;
	len = p->private_data && p->private_data_len ? p->private_data_len : 0;
	if (len > VRDMA_CM_PRIV_MAX)
		len = VRDMA_CM_PRIV_MAX;
	e->private_data_len = len;
	if (len)
		memcpy(e->private_data, p->private_data, len);
	if (re->event != RDMA_CM_EVENT_ESTABLISHED && re->event != RDMA_CM_EVENT_CONNECT_REQUEST)
		return;
	vrdma_ah_attr_from_ibv(&ci->ud.ah_attr, &p->ah_attr);
	ci->ud.qp_num = htole32(p->qp_num);
	ci->ud.qkey = htole32(p->qkey);
	e->qp_num = ci->ud.qp_num;
	ci->ud_valid = true;
}

/* One real event, under cm->lock. Returns a real ID to destroy after the ack (a
 * connection request the guest cannot take), or NULL. */
static struct rdma_cm_id *one_event(struct vbd_cm *cm, struct rdma_cm_event *re)
{
	uint32_t h = (uint32_t)(uintptr_t)re->id->context, lh = 0;
	struct cm_id *ci, *li = NULL;
	struct cm_chan *c;
	struct cm_ev *ev;
	int err;

	if ((unsigned int)re->event > RDMA_CM_EVENT_TIMEWAIT_EXIT) {
		vbd_warn("guest %u: CM event %d is not one of version %u's: dropped", cm->g->id,
			 re->event, VRDMA_CM_VERSION);
		return NULL;
	}
	if (re->event == RDMA_CM_EVENT_CONNECT_REQUEST) {
		lh = (uint32_t)(uintptr_t)re->listen_id->context;
		li = obj_get(cm, lh, CM_ID, &err);
		if (!li)
			return re->id;	/* the listener is gone */
		ci = calloc(1, sizeof(*ci));
		h = ci ? obj_new(cm, CM_ID, ci) : 0;
		if (!h) {
			vbd_warn("guest %u: CM: no room for a connection request", cm->g->id);
			free(ci);
			rdma_reject(re->id, NULL, 0);
			return re->id;
		}
		ci->id = re->id;
		ci->chan = li->chan;
		ci->bound = true;
		re->id->context = (void *)(uintptr_t)h;
		c = obj_get(cm, ci->chan, CM_CHAN, &err);
		if (c)
			c->users++;
	} else {
		ci = obj_get(cm, h, CM_ID, &err);
		if (!ci || ci->id != re->id)
			return NULL;	/* destroyed meanwhile */
	}
	c = obj_get(cm, ci->chan, CM_CHAN, &err);
	ev = c ? calloc(1, sizeof(*ev)) : NULL;
	if (!ev)
		return NULL;
	ev->e.event = htole32(re->event);
	ev->e.status = htole32((uint32_t)re->status);
	if (re->event == RDMA_CM_EVENT_ADDR_RESOLVED && !on_our_device(cm, re->id)) {
		vbd_warn("guest %u: CM: address resolved off the bus's device: ADDR_ERROR",
			 cm->g->id);
		ev->e.event = htole32(RDMA_CM_EVENT_ADDR_ERROR);
		ev->e.status = htole32((uint32_t)-EADDRNOTAVAIL);
	}
	if (re->event == RDMA_CM_EVENT_ADDR_RESOLVED || re->event == RDMA_CM_EVENT_CONNECT_REQUEST)
		ci->bound = true;
	ev->e.id = htole32(h);
	ev->e.listen_id = htole32(lh);
	if (re->id->ps == RDMA_PS_UDP) {
		ud_event(ci, &ev->e, re);
	} else if (re->event != RDMA_CM_EVENT_ADDR_RESOLVED &&
		   re->event != RDMA_CM_EVENT_ADDR_ERROR &&
		   re->event != RDMA_CM_EVENT_ROUTE_RESOLVED &&
		   re->event != RDMA_CM_EVENT_ROUTE_ERROR) {
		const struct rdma_conn_param *p = &re->param.conn;
		uint8_t len = p->private_data && p->private_data_len ? p->private_data_len : 0;

		if (len > VRDMA_CM_PRIV_MAX)
			len = VRDMA_CM_PRIV_MAX;
		ev->e.private_data_len = len;
		if (len)
			memcpy(ev->e.private_data, p->private_data, len);
		ev->e.responder_resources = p->responder_resources;
		ev->e.initiator_depth = p->initiator_depth;
		ev->e.flow_control = p->flow_control;
		ev->e.retry_count = p->retry_count;
		ev->e.rnr_retry_count = p->rnr_retry_count;
		ev->e.srq = p->srq;
		ev->e.qp_num = htole32(p->qp_num);
	}
	addr_snapshot(&ev->e.addr, re->id);
	ci->state = rdma_event_str((enum rdma_cm_event_type)le32toh(ev->e.event));
	chan_push(cm, c, ev);
	return NULL;
}

static void *cm_thread(void *arg)
{
	struct vbd_cm *cm = arg;
	struct pollfd p[2] = { { .fd = cm->ch->fd, .events = POLLIN },
			       { .fd = cm->stopfd, .events = POLLIN } };

	for (;;) {
		struct rdma_cm_event *re;
		struct rdma_cm_id *drop;

		if (poll(p, 2, -1) < 0 && errno != EINTR)
			break;
		if (p[1].revents)
			break;
		while (!rdma_get_cm_event(cm->ch, &re)) {
			pthread_mutex_lock(&cm->lock);
			drop = one_event(cm, re);
			pthread_mutex_unlock(&cm->lock);
			rdma_ack_cm_event(re);
			if (drop)
				rdma_destroy_id(drop);
		}
	}
	return NULL;
}

/* The real channel and its thread, at the guest's first channel. 0 or -errno. */
static int cm_start(struct vbd_cm *cm)
{
	int err;

	if (cm->running)
		return 0;
	cm->ch = rdma_create_event_channel();
	if (!cm->ch)
		return errno ? -errno : -ENODEV;
	fcntl(cm->ch->fd, F_SETFL, fcntl(cm->ch->fd, F_GETFL) | O_NONBLOCK);
	cm->stopfd = eventfd(0, EFD_CLOEXEC);
	if (cm->stopfd < 0) {
		err = -errno;
		goto err_chan;
	}
	err = -pthread_create(&cm->thread, NULL, cm_thread, cm);
	if (err)
		goto err_stop;
	cm->running = true;
	return 0;

err_stop:
	close(cm->stopfd);
err_chan:
	rdma_destroy_event_channel(cm->ch);
	cm->ch = NULL;
	return err;
}

/* ---- the guest owns the QP it names ---- */

static bool owns_qpn(struct vbd_cm *cm, uint32_t qpn)
{
	bool found = false;

	if (cm->vg)
		return vrdma_guest_owns_qpn(cm->vg, qpn);
	{
		struct vbk_res_obj *objs = NULL;
		uint32_t n = 0;

		if (vbd_kernel_res(cm->g->id, &objs, &n))
			return false;
		for (uint32_t i = 0; i < n && !found; i++)
			found = objs[i].type == VRDMA_OBJ_QP && objs[i].real == qpn;
		free(objs);
	}
	return found;
}

/* ---- the functions ---- */

static int do_hello(struct vbd_cm *cm, const void *in, void *out)
{
	const struct vrdma_cm_hello *h = in;
	struct vrdma_cm_hello *o = out;

	(void)cm;
	if (!le32toh(h->version) || h->reserved)
		return -EINVAL;
	/* The newest both speak: every version up to ours is served. */
	o->version = htole32(le32toh(h->version) < VRDMA_CM_VERSION ? le32toh(h->version)
								      : VRDMA_CM_VERSION);
	return 0;
}

/* The channel and its queued events; the guest may revoke its signal again. */
static void chan_free(struct vbd_cm *cm, struct cm_chan *c)
{
	vbd_guest_signal_put(cm->g, c->sig);
	while (c->head) {
		struct cm_ev *e = c->head;

		c->head = e->next;
		free(e);
	}
	free(c);
}

static int do_create_channel(struct vbd_cm *cm, const void *in, void *out)
{
	const struct vrdma_cm_chan_in *a = in;
	struct vrdma_cm_handle *o = out;
	struct cm_chan *c;
	int err, fd;

	if (a->reserved)
		return -EINVAL;
	err = cm_start(cm);
	if (err)
		return err;
	c = calloc(1, sizeof(*c));
	if (!c)
		return -ENOMEM;
	err = vbd_guest_signal(cm->g, le32toh(a->sig), VBUS_SIG_TO_GUEST, &fd);
	if (err) {
		free(c);
		return err;
	}
	c->sig = le32toh(a->sig);
	c->fd = fd;
	o->handle = htole32(obj_new(cm, CM_CHAN, c));
	if (!o->handle) {
		chan_free(cm, c);
		return -EDQUOT;
	}
	return 0;
}

static int do_destroy_channel(struct vbd_cm *cm, const void *in, void *out)
{
	const struct vrdma_cm_handle *a = in;
	struct cm_chan *c;
	int err;

	(void)out;
	c = obj_get(cm, le32toh(a->handle), CM_CHAN, &err);
	if (!c)
		return err;
	if (c->users)
		return -EBUSY;
	obj_free(cm, le32toh(a->handle));
	chan_free(cm, c);
	return 0;
}

static int do_get_event(struct vbd_cm *cm, const void *in, void *out)
{
	const struct vrdma_cm_handle *a = in;
	struct vrdma_cm_event *o = out;
	struct cm_chan *c;
	struct cm_ev *e;
	int err;

	c = obj_get(cm, le32toh(a->handle), CM_CHAN, &err);
	if (!c)
		return err;
	e = c->head;
	if (!e)
		return -EAGAIN;
	c->head = e->next;
	if (!c->head)
		c->tail = NULL;
	c->n--;
	*o = e->e;
	o->remaining = htole32(c->n);
	free(e);
	return 0;
}

static int do_create_id(struct vbd_cm *cm, const void *in, void *out)
{
	const struct vrdma_cm_create_id_in *a = in;
	struct vrdma_cm_handle *o = out;
	struct cm_chan *c;
	struct cm_id *ci;
	uint32_t h;
	int err;

	if (a->reserved)
		return -EINVAL;
	c = obj_get(cm, le32toh(a->channel), CM_CHAN, &err);
	if (!c)
		return err;
	if (!(le32toh(a->ps) == RDMA_PS_TCP && le32toh(a->qp_type) == IBV_QPT_RC) &&
	    !(le32toh(a->ps) == RDMA_PS_UDP && le32toh(a->qp_type) == IBV_QPT_UD))
		return -EOPNOTSUPP;	/* RC over RDMA_PS_TCP, UD over RDMA_PS_UDP */
	ci = calloc(1, sizeof(*ci));
	if (!ci)
		return -ENOMEM;
	h = obj_new(cm, CM_ID, ci);
	if (!h) {
		free(ci);
		return -EDQUOT;
	}
	if (rdma_create_id(cm->ch, &ci->id, (void *)(uintptr_t)h,
			   (enum rdma_port_space)le32toh(a->ps))) {
		err = errno ? -errno : -ENOMEM;
		obj_free(cm, h);
		free(ci);
		return err;
	}
	ci->chan = le32toh(a->channel);
	ci->state = "created";
	c->users++;
	o->handle = htole32(h);
	return 0;
}

/* Called without cm->lock: rdma_destroy_id waits for the ID's events to be acked. */
static int destroy_id(struct vbd_cm *cm, uint32_t h)
{
	struct cm_chan *c;
	struct cm_id *ci;
	int err;

	pthread_mutex_lock(&cm->lock);
	ci = obj_get(cm, h, CM_ID, &err);
	if (ci) {
		obj_free(cm, h);
		c = obj_get(cm, ci->chan, CM_CHAN, &err);
		if (c)
			c->users--;
		err = 0;
	}
	pthread_mutex_unlock(&cm->lock);
	if (!ci)
		return err;
	rdma_destroy_id(ci->id);
	free(ci);
	return 0;
}

static int real_err(void)
{
	return errno ? -errno : -EINVAL;
}

/* Bind to the allowed address when the guest has not bound. */
static int bind_default(struct vbd_cm *cm, struct cm_id *ci)
{
	struct sockaddr_storage ss = { .ss_family = AF_INET };
	int err;

	if (ci->bound)
		return 0;
	err = policy_local(cm, &ss);
	if (err)
		return err;
	if (rdma_bind_addr(ci->id, (struct sockaddr *)&ss))
		return real_err();
	ci->bound = true;
	return 0;
}

static int do_bind(struct vbd_cm *cm, const void *in, void *out)
{
	const struct vrdma_cm_addr_in *a = in;
	struct sockaddr_storage ss;
	struct cm_id *ci;
	int err;

	ci = obj_get(cm, le32toh(a->id), CM_ID, &err);
	if (!ci)
		return err;
	err = vrdma_cm_sa_from_wire(&ss, &a->src);
	if (!err)
		err = policy_local(cm, &ss);
	if (err) {
		vbd_info("guest %u: CM bind refused: %s", cm->g->id, strerror(-err));
		return err;
	}
	if (rdma_bind_addr(ci->id, (struct sockaddr *)&ss))
		return real_err();
	ci->bound = true;
	if (ci->id->verbs && !on_our_device(cm, ci->id))
		return -EADDRNOTAVAIL;	/* cannot happen with the address of our GID */
	addr_snapshot(out, ci->id);
	return 0;
}

static int do_resolve_addr(struct vbd_cm *cm, const void *in, void *out)
{
	const struct vrdma_cm_addr_in *a = in;
	struct sockaddr_storage src, dst;
	struct cm_id *ci;
	int err;

	(void)out;
	ci = obj_get(cm, le32toh(a->id), CM_ID, &err);
	if (!ci)
		return err;
	err = vrdma_cm_sa_from_wire(&dst, &a->dst);
	if (err)
		return err;
	if (!ci->bound) {
		if (a->src.family) {
			err = vrdma_cm_sa_from_wire(&src, &a->src);
		} else {
			memset(&src, 0, sizeof(src));
			src.ss_family = dst.ss_family;
		}
		if (!err)
			err = policy_local(cm, &src);
		if (err) {
			vbd_info("guest %u: CM resolve_addr source refused: %s", cm->g->id,
				 strerror(-err));
			return err;
		}
		if (rdma_resolve_addr(ci->id, (struct sockaddr *)&src, (struct sockaddr *)&dst,
				      (int)le32toh(a->timeout_ms)))
			return real_err();
	} else if (rdma_resolve_addr(ci->id, NULL, (struct sockaddr *)&dst,
				     (int)le32toh(a->timeout_ms))) {
		return real_err();
	}
	return 0;
}

/* MIGRATE_ID: the ID reports to channel `to` from now on; its events still queued on
 * the old channel move with it, in order (rdma_migrate_id). Under cm->lock. */
static int migrate_id(struct vbd_cm *cm, uint32_t h, struct cm_id *ci, uint32_t to)
{
	struct cm_chan *from, *dst;
	struct cm_ev **pp, *moved = NULL, **mt = &moved;
	uint32_t n = 0;
	uint64_t one = 1;
	int err;

	dst = obj_get(cm, to, CM_CHAN, &err);
	if (!dst)
		return err;
	from = obj_get(cm, ci->chan, CM_CHAN, &err);
	if (!from || from == dst)
		return from ? 0 : err;
	for (pp = &from->head; *pp;) {
		struct cm_ev *e = *pp;

		if (le32toh(e->e.id) != h) {
			pp = &e->next;
			continue;
		}
		*pp = e->next;
		e->next = NULL;
		*mt = e;
		mt = &e->next;
		from->n--;
		n++;
	}
	from->tail = NULL;
	for (struct cm_ev *e = from->head; e; e = e->next)
		from->tail = e;
	if (dst->n + n > CM_MAX_EVENTS) {
		vbd_warn("guest %u: CM migrate: the new channel is full, %u events dropped",
			 cm->g->id, n);
		while (moved) {
			struct cm_ev *e = moved;

			moved = e->next;
			free(e);
		}
		n = 0;
	}
	if (moved) {
		if (dst->tail)
			dst->tail->next = moved;
		else
			dst->head = moved;
		for (dst->tail = moved; dst->tail->next;)
			dst->tail = dst->tail->next;
		dst->n += n;
		if (write(dst->fd, &one, sizeof(one)) != sizeof(one))
			vbd_dbg("guest %u: CM channel kick: %s", cm->g->id, strerror(errno));
	}
	from->users--;
	dst->users++;
	ci->chan = to;
	return 0;
}

static int do_id_arg(struct vbd_cm *cm, uint32_t fn, const void *in, void *out)
{
	const struct vrdma_cm_id_arg *a = in;
	uint32_t arg = le32toh(a->arg);
	struct cm_id *ci;
	int err, r = 0;

	ci = obj_get(cm, le32toh(a->id), CM_ID, &err);
	if (!ci)
		return err;
	switch (fn) {
	case VRDMA_CM_FN_RESOLVE_ROUTE:
		r = rdma_resolve_route(ci->id, (int)arg);
		break;
	case VRDMA_CM_FN_LISTEN:
		err = bind_default(cm, ci);
		if (err)
			return err;
		r = rdma_listen(ci->id, arg > 1024 ? 1024 : (int)arg);
		if (!r)
			ci->state = "listening";
		break;
	case VRDMA_CM_FN_DISCONNECT:
		r = rdma_disconnect(ci->id);
		break;
	case VRDMA_CM_FN_ESTABLISH:
		r = rdma_establish(ci->id);
		break;
	case VRDMA_CM_FN_MIGRATE_ID:
		return migrate_id(cm, le32toh(a->id), ci, arg);
	case VRDMA_CM_FN_NOTIFY:
		/* The kernel CM acts on COMM_EST (and path migration) and refuses the rest with
		 * -EINVAL; a value that is no ibv_event_type at all never reaches it. */
		if (arg > IBV_EVENT_WQ_FATAL)
			return -EINVAL;
		r = rdma_notify(ci->id, (enum ibv_event_type)arg);
		break;
	case VRDMA_CM_FN_INIT_QP_ATTR: {
		struct vrdma_cm_qp_attr *o = out;
		struct ibv_qp_attr qa = { .qp_state = arg };
		int mask = 0;

		if (arg > IBV_QPS_RTS)
			return -EINVAL;
		r = rdma_init_qp_attr(ci->id, &qa, &mask);
		if (!r) {
			vrdma_qp_attr_from_ibv(&o->attr, &qa);
			o->attr_mask = htole32((uint32_t)mask);
		}
		break;
	}
	default:
		return -EOPNOTSUPP;
	}
	return r ? real_err() : 0;
}

static int do_conn(struct vbd_cm *cm, uint32_t fn, const void *in, void *out)
{
	const struct vrdma_cm_conn_in *a = in;
	struct rdma_conn_param p = {
		.private_data = a->private_data_len ? a->private_data : NULL,
		.private_data_len = a->private_data_len,
		.responder_resources = a->responder_resources,
		.initiator_depth = a->initiator_depth,
		.flow_control = a->flow_control,
		.retry_count = a->retry_count,
		.rnr_retry_count = a->rnr_retry_count,
		.srq = a->srq,
		.qp_num = le32toh(a->qp_num),
	};
	struct cm_id *ci;
	int err, r;

	(void)out;
	if (a->reserved || a->private_data_len > VRDMA_CM_PRIV_MAX ||
	    !vrdma_zero(a->private_data + VRDMA_CM_PRIV_MAX,
			sizeof(a->private_data) - VRDMA_CM_PRIV_MAX))
		return -EINVAL;
	ci = obj_get(cm, le32toh(a->id), CM_ID, &err);
	if (!ci)
		return err;
	if (fn == VRDMA_CM_FN_REJECT) {
		r = rdma_reject(ci->id, p.private_data, p.private_data_len);
		return r ? real_err() : 0;
	}
	if (!owns_qpn(cm, p.qp_num)) {
		vbd_warn("guest %u: CM %s with QP %u, which is not the guest's", cm->g->id,
			 fn == VRDMA_CM_FN_CONNECT ? "connect" : "accept", p.qp_num);
		return -EPERM;
	}
	r = fn == VRDMA_CM_FN_CONNECT ? rdma_connect(ci->id, &p) : rdma_accept(ci->id, &p);
	if (r)
		return real_err();
	ci->state = fn == VRDMA_CM_FN_CONNECT ? "connecting" : "accepted";
	return 0;
}

static int do_ud_param(struct vbd_cm *cm, const void *in, void *out)
{
	const struct vrdma_cm_handle *a = in;
	struct cm_id *ci;
	int err;

	if (a->reserved)
		return -EINVAL;
	ci = obj_get(cm, le32toh(a->handle), CM_ID, &err);
	if (!ci)
		return err;
	if (!ci->ud_valid)
		return -ENOENT;
	memcpy(out, &ci->ud, sizeof(ci->ud));
	return 0;
}

static int do_set_option(struct vbd_cm *cm, const void *in, void *out)
{
	const struct vrdma_cm_option_in *a = in;
	uint32_t name = le32toh(a->optname);
	uint64_t v = le64toh(a->value);
	struct cm_id *ci;
	uint8_t u8 = (uint8_t)v;
	int i = (int)v, err, r;

	(void)out;
	if (a->reserved)
		return -EINVAL;
	ci = obj_get(cm, le32toh(a->id), CM_ID, &err);
	if (!ci)
		return err;
	if (le32toh(a->level) != RDMA_OPTION_ID)
		return -ENOSYS;
	switch (name) {
	case RDMA_OPTION_ID_TOS:
	case RDMA_OPTION_ID_ACK_TIMEOUT:
		if (v > 0xff)
			return -EINVAL;
		r = rdma_set_option(ci->id, RDMA_OPTION_ID, (int)name, &u8, sizeof(u8));
		break;
	case RDMA_OPTION_ID_REUSEADDR:
	case RDMA_OPTION_ID_AFONLY:
		if (v > 1)
			return -EINVAL;
		r = rdma_set_option(ci->id, RDMA_OPTION_ID, (int)name, &i, sizeof(i));
		break;
	default:
		return -ENOSYS;
	}
	return r ? real_err() : 0;
}

struct cm_fn {
	uint32_t in, out;
};

#define SZ(t) ((uint32_t)sizeof(struct t))
static const struct cm_fn fns[VRDMA_CM_FN__END - VRDMA_CM_FN_BASE] = {
	[VRDMA_CM_FN_HELLO - VRDMA_CM_FN_BASE] = { SZ(vrdma_cm_hello), SZ(vrdma_cm_hello) },
	[VRDMA_CM_FN_CREATE_CHANNEL - VRDMA_CM_FN_BASE] = { SZ(vrdma_cm_chan_in), SZ(vrdma_cm_handle) },
	[VRDMA_CM_FN_DESTROY_CHANNEL - VRDMA_CM_FN_BASE] = { SZ(vrdma_cm_handle), 0 },
	[VRDMA_CM_FN_GET_EVENT - VRDMA_CM_FN_BASE] = { SZ(vrdma_cm_handle), SZ(vrdma_cm_event) },
	[VRDMA_CM_FN_CREATE_ID - VRDMA_CM_FN_BASE] = { SZ(vrdma_cm_create_id_in), SZ(vrdma_cm_handle) },
	[VRDMA_CM_FN_DESTROY_ID - VRDMA_CM_FN_BASE] = { SZ(vrdma_cm_handle), 0 },
	[VRDMA_CM_FN_BIND - VRDMA_CM_FN_BASE] = { SZ(vrdma_cm_addr_in), SZ(vrdma_cm_addr) },
	[VRDMA_CM_FN_RESOLVE_ADDR - VRDMA_CM_FN_BASE] = { SZ(vrdma_cm_addr_in), 0 },
	[VRDMA_CM_FN_RESOLVE_ROUTE - VRDMA_CM_FN_BASE] = { SZ(vrdma_cm_id_arg), 0 },
	[VRDMA_CM_FN_LISTEN - VRDMA_CM_FN_BASE] = { SZ(vrdma_cm_id_arg), 0 },
	[VRDMA_CM_FN_CONNECT - VRDMA_CM_FN_BASE] = { SZ(vrdma_cm_conn_in), 0 },
	[VRDMA_CM_FN_ACCEPT - VRDMA_CM_FN_BASE] = { SZ(vrdma_cm_conn_in), 0 },
	[VRDMA_CM_FN_REJECT - VRDMA_CM_FN_BASE] = { SZ(vrdma_cm_conn_in), 0 },
	[VRDMA_CM_FN_DISCONNECT - VRDMA_CM_FN_BASE] = { SZ(vrdma_cm_id_arg), 0 },
	[VRDMA_CM_FN_ESTABLISH - VRDMA_CM_FN_BASE] = { SZ(vrdma_cm_id_arg), 0 },
	[VRDMA_CM_FN_INIT_QP_ATTR - VRDMA_CM_FN_BASE] = { SZ(vrdma_cm_id_arg), SZ(vrdma_cm_qp_attr) },
	[VRDMA_CM_FN_SET_OPTION - VRDMA_CM_FN_BASE] = { SZ(vrdma_cm_option_in), 0 },
	[VRDMA_CM_FN_MIGRATE_ID - VRDMA_CM_FN_BASE] = { SZ(vrdma_cm_id_arg), 0 },
	[VRDMA_CM_FN_UD_PARAM - VRDMA_CM_FN_BASE] = { SZ(vrdma_cm_handle), SZ(vrdma_cm_ud) },
	[VRDMA_CM_FN_NOTIFY - VRDMA_CM_FN_BASE] = { SZ(vrdma_cm_id_arg), 0 },
};

/*
 * The allowed local address: the address in the GID at pol->gid_index of the port (an
 * IPv4-mapped GID gives an IPv4 address), read from sysfs when the guest's CM starts, so
 * that an address added later counts. false when the entry holds none (the CM then
 * refuses every bind with -EADDRNOTAVAIL).
 */
static bool policy_addr(const struct vbd_cm_policy *pol, struct sockaddr_storage *ss)
{
	static const uint8_t v4mapped[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff };
	static const uint8_t zero[16];
	char path[512], line[64];
	uint8_t gid[16];
	unsigned int w[8];
	FILE *f;
	bool ok;

	memset(ss, 0, sizeof(*ss));
	snprintf(path, sizeof(path), "%s/ports/%u/gids/%u", pol->ibdev_path, pol->port,
		 pol->gid_index);
	f = fopen(path, "re");
	if (!f)
		return false;
	ok = fgets(line, sizeof(line), f) &&
	     sscanf(line, "%x:%x:%x:%x:%x:%x:%x:%x", &w[0], &w[1], &w[2], &w[3], &w[4], &w[5],
		    &w[6], &w[7]) == 8;
	fclose(f);
	if (!ok)
		return false;
	for (int i = 0; i < 8; i++) {
		gid[2 * i] = (uint8_t)(w[i] >> 8);
		gid[2 * i + 1] = (uint8_t)w[i];
	}
	if (!memcmp(gid, zero, 16))
		return false;
	if (!memcmp(gid, v4mapped, 12)) {
		struct sockaddr_in *s = (void *)ss;

		s->sin_family = AF_INET;
		memcpy(&s->sin_addr, gid + 12, 4);
	} else {
		struct sockaddr_in6 *s = (void *)ss;

		s->sin6_family = AF_INET6;
		memcpy(&s->sin6_addr, gid, 16);
	}
	return true;
}

static void put_sa(char *b, size_t n, const struct sockaddr_storage *ss)
{
	char a[INET6_ADDRSTRLEN] = "-";

	if (ss->ss_family == AF_INET)
		inet_ntop(AF_INET, &((const struct sockaddr_in *)ss)->sin_addr, a, sizeof(a));
	else if (ss->ss_family == AF_INET6)
		inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)ss)->sin6_addr, a, sizeof(a));
	snprintf(b, n, ss->ss_family == AF_INET6 ? "[%s]:%u" : "%s:%u", a,
		 ss->ss_family ? sa_port(ss) : 0);
}

/* The guest's CM IDs for `vbusctl res show cm_id`: JSON members or lines. 0 or -ENOSPC. */
int vbd_cm_res(struct vbd_cm *cm, bool json, char *buf, size_t n)
{
	size_t len = 0;
	bool first = true;
	int r;

	r = snprintf(buf, n, json ? "\"cm_ids\":[" : "");
	if (r < 0 || (size_t)r >= n)
		return -ENOSPC;
	len = (size_t)r;
	if (cm) {
		pthread_mutex_lock(&cm->lock);
		for (uint32_t i = 1; i < cm->nobjs; i++) {
			struct cm_id *ci = cm->objs[i].p;
			char src[64], dst[64];

			if (cm->objs[i].type != CM_ID)
				continue;
			put_sa(src, sizeof(src), &ci->id->route.addr.src_storage);
			put_sa(dst, sizeof(dst), &ci->id->route.addr.dst_storage);
			r = snprintf(buf + len, n - len, json ?
				     "%s{\"handle\":%u,\"state\":\"%s\",\"src\":\"%s\",\"dst\":\"%s\"}" :
				     "%s  cm_id %#x %s src %s dst %s\n", json && !first ? "," : "",
				     (uint32_t)cm->objs[i].gen << CM_IDX_BITS | i, ci->state, src, dst);
			if (r < 0 || (size_t)r >= n - len) {
				pthread_mutex_unlock(&cm->lock);
				return -ENOSPC;
			}
			len += (size_t)r;
			first = false;
		}
		pthread_mutex_unlock(&cm->lock);
	}
	r = snprintf(buf + len, n - len, json ? "]" : "");
	return r < 0 || (size_t)r >= n - len ? -ENOSPC : 0;
}

bool vbd_cm_is_fn(uint32_t fn)
{
	return fn >= VRDMA_CM_FN_BASE && fn < 0x200;
}

int vbd_cm_open(struct vbd_cm **out, struct vbd_guest *g, const struct vbd_cm_policy *pol,
		struct vrdma_guest *vg)
{
	struct vbd_cm *cm = calloc(1, sizeof(*cm));

	if (!cm)
		return -ENOMEM;
	cm->g = g;
	cm->pol = pol;
	cm->vg = vg;
	cm->have_addr = policy_addr(pol, &cm->addr);
	if (!cm->have_addr)
		vbd_warn("guest %u: CM: GID %u of %s port %u holds no address: every bind is "
			 "refused", g->id, pol->gid_index, pol->ibdev, pol->port);
	pthread_mutex_init(&cm->lock, NULL);
	*out = cm;
	return 0;
}

/*
 * One CM DEVCALL of the guest. The input is checked as every vrdma input is (short:
 * -EINVAL; a longer one with a non-zero tail: -E2BIG), copied into a zeroed buffer of the
 * exact size, and the output buffer is zeroed: no stale byte reaches the guest.
 */
int vbd_cm_call(struct vbd_cm *cm, uint32_t fn, const void *in, size_t inlen, void *out,
		size_t outmax, size_t *outlen)
{
	_Alignas(8) uint8_t ib[sizeof(struct vrdma_cm_conn_in)], ob[sizeof(struct vrdma_cm_event)];
	const struct cm_fn *d;
	int err;

	*outlen = 0;
	if (fn < VRDMA_CM_FN_BASE || fn >= VRDMA_CM_FN__END)
		return -EOPNOTSUPP;
	d = &fns[fn - VRDMA_CM_FN_BASE];
	if (inlen < d->in)
		return -EINVAL;
	if (!vrdma_zero((const uint8_t *)in + d->in, inlen - d->in))
		return -E2BIG;
	if (outmax < d->out)
		return -EMSGSIZE;
	memset(ib, 0, sizeof(ib));
	memcpy(ib, in, d->in);
	memset(ob, 0, sizeof(ob));
	if (fn == VRDMA_CM_FN_DESTROY_ID) {
		err = destroy_id(cm, le32toh(((const struct vrdma_cm_handle *)ib)->handle));
		if (!err && ((const struct vrdma_cm_handle *)ib)->reserved)
			err = -EINVAL;
		return err;
	}
	errno = 0;
	pthread_mutex_lock(&cm->lock);
	switch (fn) {
	case VRDMA_CM_FN_HELLO: err = do_hello(cm, ib, ob); break;
	case VRDMA_CM_FN_CREATE_CHANNEL: err = do_create_channel(cm, ib, ob); break;
	case VRDMA_CM_FN_DESTROY_CHANNEL: err = do_destroy_channel(cm, ib, ob); break;
	case VRDMA_CM_FN_GET_EVENT: err = do_get_event(cm, ib, ob); break;
	case VRDMA_CM_FN_CREATE_ID: err = do_create_id(cm, ib, ob); break;
	case VRDMA_CM_FN_BIND: err = do_bind(cm, ib, ob); break;
	case VRDMA_CM_FN_RESOLVE_ADDR: err = do_resolve_addr(cm, ib, ob); break;
	case VRDMA_CM_FN_CONNECT:
	case VRDMA_CM_FN_ACCEPT:
	case VRDMA_CM_FN_REJECT: err = do_conn(cm, fn, ib, ob); break;
	case VRDMA_CM_FN_SET_OPTION: err = do_set_option(cm, ib, ob); break;
	case VRDMA_CM_FN_UD_PARAM: err = do_ud_param(cm, ib, ob); break;
	default: err = do_id_arg(cm, fn, ib, ob); break;
	}
	pthread_mutex_unlock(&cm->lock);
	if (err)
		return err;
	memcpy(out, ob, d->out);
	*outlen = d->out;
	return 0;
}

/* The guest closed the device or went away: stop the thread, destroy every real ID (the
 * kernel CM sends DREQs or REJs for connections), free the channels. */
void vbd_cm_close(struct vbd_cm *cm)
{
	uint64_t one = 1;

	if (!cm)
		return;
	if (cm->running) {
		if (write(cm->stopfd, &one, sizeof(one)) != sizeof(one))
			vbd_err("CM: cannot stop the event thread: %s", strerror(errno));
		pthread_join(cm->thread, NULL);
		close(cm->stopfd);
	}
	for (uint32_t i = 1; i < cm->nobjs; i++) {
		struct cm_obj *o = &cm->objs[i];

		if (o->type == CM_ID) {
			struct cm_id *ci = o->p;

			rdma_destroy_id(ci->id);
			free(ci);
		}
	}
	for (uint32_t i = 1; i < cm->nobjs; i++)
		if (cm->objs[i].type == CM_CHAN)
			chan_free(cm, cm->objs[i].p);
	if (cm->ch)
		rdma_destroy_event_channel(cm->ch);
	pthread_mutex_destroy(&cm->lock);
	free(cm->objs);
	free(cm);
}

