// SPDX-License-Identifier: MIT
/*
 * rdma_cm in guests (docs/rdma-cm.md): synchronous IDs and what is built on them, as
 * librdmacm does it (cma.c): an ID made without a channel gets its own, and each call that
 * natively ends in an event (resolve_addr, resolve_route, connect, accept, disconnect)
 * waits for that event here and turns its status into the call's error. rdma_create_ep
 * and rdma_get_request (rdma_server, rdma_client) use them; a connection request on a
 * synchronous listener moves to a channel of its own (CM_MIGRATE_ID, CM version 2).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <rdma/rdma_cma.h>
#include <rdma/rdma_verbs.h>
#include <vbus/vrdma-cm.h>
#include "vbg.h"
#include "cm.h"

int vbg_cm_complete(struct rdma_cm_id *id)
{
	struct rdma_cm_event *ev;

	if (!to_cid(id)->sync)
		return 0;
	if (id->event) {
		rdma_ack_cm_event(id->event);
		id->event = NULL;
	}
	if (rdma_get_cm_event(id->channel, &ev))
		return -1;
	id->event = ev;
	if (!ev->status)
		return 0;
	errno = ev->event == RDMA_CM_EVENT_REJECTED ? ECONNREFUSED :
		ev->status < 0 ? -ev->status : ev->status;
	return -1;
}

/* ID c reports to channel ch from now on (the host moves its queued events). 0 or -errno. */
static int migrate(struct vbg_cm_id *c, struct rdma_event_channel *ch)
{
	struct vrdma_cm_id_arg in = {
		.id = htole32(c->handle),
		.arg = htole32(((struct vbg_cm_chan *)ch)->handle),
	};

	if (vbg_cm_version() < 2)
		return -EOPNOTSUPP;
	return vbg_cm_call(VRDMA_CM_FN_MIGRATE_ID, &in, sizeof(in), NULL, 0);
}

int vbg_cm_sync_request(struct vbg_cm_id *c)
{
	struct rdma_event_channel *ch = rdma_create_event_channel();
	int err;

	if (!ch)
		return -errno;
	err = migrate(c, ch);
	if (err) {
		rdma_destroy_event_channel(ch);
		return err;
	}
	c->id.channel = ch;
	c->sync = true;
	return 0;
}

/*
 * As librdmacm: the host moves the ID's events still queued on its old channel to the new
 * one, so none is read on the old channel after this returns (librdmacm waits for the
 * program to ack them instead; with our copy of each event, nothing waits).
 */
VBG_EXPORT int rdma_migrate_id(struct rdma_cm_id *id, struct rdma_event_channel *channel)
{
	struct vbg_cm_id *c;
	bool sync = !channel;
	int err;

	if (!id || !vbg_cm_is_ours(id)) {
		errno = EINVAL;
		return -1;
	}
	c = to_cid(id);
	if (c->sync && !channel) {
		errno = EINVAL;
		return -1;
	}
	if (sync) {
		channel = rdma_create_event_channel();
		if (!channel)
			return -1;
	}
	err = migrate(c, channel);
	if (err) {
		if (sync)
			rdma_destroy_event_channel(channel);
		errno = -err;
		return -1;
	}
	if (c->sync) {
		if (id->event) {
			rdma_ack_cm_event(id->event);
			id->event = NULL;
		}
		rdma_destroy_event_channel(id->channel);
	}
	c->sync = sync;
	id->channel = channel;
	return 0;
}

/* The passive side of rdma_create_ep: bind, keep the PD and QP attributes for requests. */
static int passive_ep(struct rdma_cm_id *id, struct rdma_addrinfo *res, struct ibv_pd *pd,
		      struct ibv_qp_init_attr *qp_init_attr)
{
	struct vbg_cm_id *c = to_cid(id);

	if (rdma_bind_addr(id, res->ai_src_addr))
		return -1;
	if (pd)
		id->pd = pd;
	if (qp_init_attr) {
		c->qp_init_attr = malloc(sizeof(*c->qp_init_attr));
		if (!c->qp_init_attr) {
			errno = ENOMEM;
			return -1;
		}
		*c->qp_init_attr = *qp_init_attr;
		c->qp_init_attr->qp_type = (enum ibv_qp_type)res->ai_qp_type;
	}
	return 0;
}

VBG_EXPORT int rdma_create_ep(struct rdma_cm_id **id, struct rdma_addrinfo *res,
			      struct ibv_pd *pd, struct ibv_qp_init_attr *qp_init_attr)
{
	struct rdma_cm_id *cm_id;
	int err;

	if (!id || !res) {
		errno = EINVAL;
		return -1;
	}
	if (rdma_create_id(NULL, &cm_id, NULL, (enum rdma_port_space)res->ai_port_space))
		return -1;
	if (res->ai_flags & RAI_PASSIVE) {
		if (passive_ep(cm_id, res, pd, qp_init_attr))
			goto err;
		*id = cm_id;
		return 0;
	}
	if (rdma_resolve_addr(cm_id, res->ai_src_addr, res->ai_dst_addr, 2000) ||
	    rdma_resolve_route(cm_id, 2000))
		goto err;
	if (qp_init_attr) {
		qp_init_attr->qp_type = (enum ibv_qp_type)res->ai_qp_type;
		if (rdma_create_qp(cm_id, pd, qp_init_attr))
			goto err;
	}
	/* res->ai_connect (private data for rdma_connect) comes only from IB path
	 * resolution (AF_IB), which vbus does not do. */
	*id = cm_id;
	return 0;

err:
	err = errno;
	rdma_destroy_ep(cm_id);
	errno = err;
	return -1;
}

VBG_EXPORT void rdma_destroy_ep(struct rdma_cm_id *id)
{
	if (!id || !vbg_cm_is_ours(id))
		return;
	rdma_destroy_qp(id);
	rdma_destroy_srq(id);
	rdma_destroy_id(id);	/* frees the kept QP attributes too */
}

VBG_EXPORT int rdma_get_request(struct rdma_cm_id *listen, struct rdma_cm_id **id)
{
	struct rdma_cm_event *ev;
	int err;

	if (!listen || !id || !vbg_cm_is_ours(listen) || !to_cid(listen)->sync) {
		errno = EINVAL;
		return -1;
	}
	if (listen->event) {
		rdma_ack_cm_event(listen->event);
		listen->event = NULL;
	}
	if (rdma_get_cm_event(listen->channel, &ev))
		return -1;
	if (ev->event == RDMA_CM_EVENT_REJECTED)
		err = ECONNREFUSED;
	else if (ev->status)
		err = ev->status < 0 ? -ev->status : ev->status;
	else if (ev->event != RDMA_CM_EVENT_CONNECT_REQUEST)
		err = EINVAL;
	else
		err = 0;
	if (!err && to_cid(listen)->qp_init_attr) {
		struct ibv_qp_init_attr attr = *to_cid(listen)->qp_init_attr;

		if (rdma_create_qp(ev->id, listen->pd, &attr))
			err = errno;
	}
	if (err) {
		listen->event = ev;
		errno = err;
		return -1;
	}
	*id = ev->id;
	(*id)->event = ev;
	return 0;
}
