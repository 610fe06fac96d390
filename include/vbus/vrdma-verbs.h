/* SPDX-License-Identifier: MIT */
/*
 * The vrdma ABI (vrdma.h) against rdma-core's own structures: the conversions and rules
 * that the guest verbs library and the host (vbusd) must apply alike, defined once here.
 * Userspace only: it needs <infiniband/verbs.h>.
 */
#ifndef VBUS_VRDMA_VERBS_H
#define VBUS_VRDMA_VERBS_H

#include <endian.h>
#include <stdbool.h>
#include <string.h>
#include <infiniband/verbs.h>
#include <vbus/vrdma.h>

/* An address vector to the ABI; the port is the guest's (1). */
static inline void vrdma_ah_attr_from_ibv(struct vrdma_ah_attr *v, const struct ibv_ah_attr *a)
{
	memset(v, 0, sizeof(*v));
	memcpy(v->dgid, a->grh.dgid.raw, sizeof(v->dgid));
	v->flow_label = htole32(a->grh.flow_label);
	v->sgid_index = a->grh.sgid_index;
	v->hop_limit = a->grh.hop_limit;
	v->traffic_class = a->grh.traffic_class;
	v->is_global = a->is_global;
	v->dlid = htole16(a->dlid);
	v->sl = a->sl;
	v->src_path_bits = a->src_path_bits;
	v->static_rate = a->static_rate;
	v->port_num = 1;
}

/* The ABI's address vector to rdma-core's, port as given (the host puts its own). */
static inline void vrdma_ah_attr_to_ibv(struct ibv_ah_attr *a, const struct vrdma_ah_attr *v)
{
	memset(a, 0, sizeof(*a));
	memcpy(a->grh.dgid.raw, v->dgid, sizeof(v->dgid));
	a->grh.flow_label = le32toh(v->flow_label);
	a->grh.sgid_index = v->sgid_index;
	a->grh.hop_limit = v->hop_limit;
	a->grh.traffic_class = v->traffic_class;
	a->is_global = v->is_global;
	a->dlid = le16toh(v->dlid);
	a->sl = v->sl;
	a->src_path_bits = v->src_path_bits;
	a->static_rate = v->static_rate;
	a->port_num = v->port_num;
}

static inline void vrdma_cap_from_ibv(struct vrdma_qp_cap *o, const struct ibv_qp_cap *c)
{
	o->max_send_wr = htole32(c->max_send_wr);
	o->max_recv_wr = htole32(c->max_recv_wr);
	o->max_send_sge = htole32(c->max_send_sge);
	o->max_recv_sge = htole32(c->max_recv_sge);
	o->max_inline_data = htole32(c->max_inline_data);
	o->reserved = 0;
}

static inline void vrdma_cap_to_ibv(struct ibv_qp_cap *c, const struct vrdma_qp_cap *o)
{
	c->max_send_wr = le32toh(o->max_send_wr);
	c->max_recv_wr = le32toh(o->max_recv_wr);
	c->max_send_sge = le32toh(o->max_send_sge);
	c->max_recv_sge = le32toh(o->max_recv_sge);
	c->max_inline_data = le32toh(o->max_inline_data);
}

/* All of a QP's attributes to the ABI, whatever the mask (the receiver reads only what the
 * mask names); address vectors as vrdma_ah_attr_from_ibv gives them (port 1). */
static inline void vrdma_qp_attr_from_ibv(struct vrdma_qp_attr *o, const struct ibv_qp_attr *a)
{
	memset(o, 0, sizeof(*o));
	o->qp_state = htole32(a->qp_state);
	o->cur_qp_state = htole32(a->cur_qp_state);
	o->path_mtu = htole32(a->path_mtu);
	o->path_mig_state = htole32(a->path_mig_state);
	o->qkey = htole32(a->qkey);
	o->rq_psn = htole32(a->rq_psn);
	o->sq_psn = htole32(a->sq_psn);
	o->dest_qp_num = htole32(a->dest_qp_num);
	o->qp_access_flags = htole32((uint32_t)a->qp_access_flags);
	o->pkey_index = htole16(a->pkey_index);
	o->alt_pkey_index = htole16(a->alt_pkey_index);
	vrdma_cap_from_ibv(&o->cap, &a->cap);
	vrdma_ah_attr_from_ibv(&o->ah_attr, &a->ah_attr);
	vrdma_ah_attr_from_ibv(&o->alt_ah_attr, &a->alt_ah_attr);
	o->en_sqd_async_notify = a->en_sqd_async_notify;
	o->sq_draining = a->sq_draining;
	o->max_rd_atomic = a->max_rd_atomic;
	o->max_dest_rd_atomic = a->max_dest_rd_atomic;
	o->min_rnr_timer = a->min_rnr_timer;
	o->port_num = a->port_num;
	o->timeout = a->timeout;
	o->retry_cnt = a->retry_cnt;
	o->rnr_retry = a->rnr_retry;
	o->alt_port_num = a->alt_port_num;
	o->alt_timeout = a->alt_timeout;
	o->rate_limit = htole32(a->rate_limit);
}

/* The ABI's QP attributes to rdma-core's, all fields (ports as given). */
static inline void vrdma_qp_attr_to_ibv(struct ibv_qp_attr *a, const struct vrdma_qp_attr *o)
{
	memset(a, 0, sizeof(*a));
	a->qp_state = le32toh(o->qp_state);
	a->cur_qp_state = le32toh(o->cur_qp_state);
	a->path_mtu = le32toh(o->path_mtu);
	a->path_mig_state = le32toh(o->path_mig_state);
	a->qkey = le32toh(o->qkey);
	a->rq_psn = le32toh(o->rq_psn);
	a->sq_psn = le32toh(o->sq_psn);
	a->dest_qp_num = le32toh(o->dest_qp_num);
	a->qp_access_flags = (int)le32toh(o->qp_access_flags);
	a->pkey_index = le16toh(o->pkey_index);
	a->alt_pkey_index = le16toh(o->alt_pkey_index);
	vrdma_cap_to_ibv(&a->cap, &o->cap);
	vrdma_ah_attr_to_ibv(&a->ah_attr, &o->ah_attr);
	vrdma_ah_attr_to_ibv(&a->alt_ah_attr, &o->alt_ah_attr);
	a->en_sqd_async_notify = o->en_sqd_async_notify;
	a->sq_draining = o->sq_draining;
	a->max_rd_atomic = o->max_rd_atomic;
	a->max_dest_rd_atomic = o->max_dest_rd_atomic;
	a->min_rnr_timer = o->min_rnr_timer;
	a->port_num = o->port_num;
	a->timeout = o->timeout;
	a->retry_cnt = o->retry_cnt;
	a->rnr_retry = o->rnr_retry;
	a->alt_port_num = o->alt_port_num;
	a->alt_timeout = o->alt_timeout;
	a->rate_limit = le32toh(o->rate_limit);
}

/* May a QP of this type carry this send opcode? (What the guest refuses at post time with
 * EINVAL, the host refuses again when it drains the queue.) */
static inline bool vrdma_opcode_ok(uint8_t qp_type, uint8_t op)
{
	switch (op) {
	case IBV_WR_SEND:
	case IBV_WR_SEND_WITH_IMM:
		return true;
	case IBV_WR_RDMA_WRITE:
	case IBV_WR_RDMA_WRITE_WITH_IMM:
		return qp_type != IBV_QPT_UD;
	case IBV_WR_RDMA_READ:
	case IBV_WR_ATOMIC_CMP_AND_SWP:
	case IBV_WR_ATOMIC_FETCH_AND_ADD:
		return qp_type == IBV_QPT_RC;
	case IBV_WR_LOCAL_INV:
	case IBV_WR_BIND_MW:
	case IBV_WR_SEND_WITH_INV:
		return qp_type == IBV_QPT_RC || qp_type == IBV_QPT_UC;
	default:
		return false;
	}
}

/* What an async event is about: which element of struct ibv_async_event it names. */
enum vrdma_event_kind {
	VRDMA_EVENT_QP,
	VRDMA_EVENT_CQ,
	VRDMA_EVENT_PORT,
	VRDMA_EVENT_DEVICE,
	VRDMA_EVENT_SRQ,
	VRDMA_EVENT_OTHER,		/* WQ events: no such objects in ABI 1 */
};

static inline enum vrdma_event_kind vrdma_event_kind(enum ibv_event_type t)
{
	switch (t) {
	case IBV_EVENT_CQ_ERR:
		return VRDMA_EVENT_CQ;
	case IBV_EVENT_QP_FATAL:
	case IBV_EVENT_QP_REQ_ERR:
	case IBV_EVENT_QP_ACCESS_ERR:
	case IBV_EVENT_COMM_EST:
	case IBV_EVENT_SQ_DRAINED:
	case IBV_EVENT_PATH_MIG:
	case IBV_EVENT_PATH_MIG_ERR:
	case IBV_EVENT_QP_LAST_WQE_REACHED:
		return VRDMA_EVENT_QP;
	case IBV_EVENT_PORT_ACTIVE:
	case IBV_EVENT_PORT_ERR:
	case IBV_EVENT_LID_CHANGE:
	case IBV_EVENT_PKEY_CHANGE:
	case IBV_EVENT_SM_CHANGE:
	case IBV_EVENT_CLIENT_REREGISTER:
	case IBV_EVENT_GID_CHANGE:
		return VRDMA_EVENT_PORT;
	case IBV_EVENT_DEVICE_FATAL:
		return VRDMA_EVENT_DEVICE;
	case IBV_EVENT_SRQ_ERR:
	case IBV_EVENT_SRQ_LIMIT_REACHED:
		return VRDMA_EVENT_SRQ;
	default:
		return VRDMA_EVENT_OTHER;
	}
}

#endif /* VBUS_VRDMA_VERBS_H */
