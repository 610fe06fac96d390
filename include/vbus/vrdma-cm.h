/* SPDX-License-Identifier: (GPL-2.0 WITH Linux-syscall-note) OR MIT */
/*
 * The vrdma connection manager (rdma_cm in guests, docs/rdma-cm.md): DEVCALL functions
 * on a vrdma device's handle, numbered from VRDMA_CM_FN_BASE so that they never meet the
 * device's own functions (vrdma-fns.h). vbusd serves them for both backends: the CM IDs
 * are real librdmacm IDs in vbusd, without QPs; the guest's QP (relay or kernel backend)
 * rides in the connection parameters (qp_num) and is moved through its states with the
 * attributes CM_INIT_QP_ATTR returns.
 *
 * Versioned on its own: CM_HELLO answers the newest CM version both speak; a host
 * without the CM answers -EOPNOTSUPP. Version 2 adds MIGRATE_ID (synchronous IDs,
 * rdma_migrate_id), UD IDs (RDMA_PS_UDP) and UD_PARAM; a version 1 host answers those
 * -EOPNOTSUPP. Version 3 adds NOTIFY (rdma_notify). Inputs follow the vrdma
 * rule (shorter: -EINVAL; longer with a non-zero tail: -E2BIG; non-zero reserved:
 * -EINVAL). Every id and channel is a handle of this guest (index and generation, as the
 * device's), checked on every use (-ENOENT stale, -EINVAL malformed).
 *
 * Wire rules as everywhere: fixed-width little-endian fields, no pointers, sizes a
 * multiple of 8, asserted below.
 */
#ifndef VBUS_VRDMA_CM_H
#define VBUS_VRDMA_CM_H

#include <linux/types.h>
#include <vbus/vrdma.h>

#define VRDMA_CM_VERSION	3
#define VRDMA_CM_FN_BASE	0x100
#define VRDMA_CM_PRIV_MAX	196	/* the largest private data (a REP's) */

enum vrdma_cm_fn {
	VRDMA_CM_FN_HELLO = VRDMA_CM_FN_BASE,	/* vrdma_cm_hello -> vrdma_cm_hello */
	VRDMA_CM_FN_CREATE_CHANNEL,	/* vrdma_cm_chan_in -> vrdma_cm_handle */
	VRDMA_CM_FN_DESTROY_CHANNEL,	/* vrdma_cm_handle; -EBUSY while IDs report to it */
	VRDMA_CM_FN_GET_EVENT,		/* vrdma_cm_handle -> vrdma_cm_event; -EAGAIN: none */
	VRDMA_CM_FN_CREATE_ID,		/* vrdma_cm_create_id_in -> vrdma_cm_handle */
	VRDMA_CM_FN_DESTROY_ID,		/* vrdma_cm_handle */
	VRDMA_CM_FN_BIND,		/* vrdma_cm_addr_in -> vrdma_cm_addr */
	VRDMA_CM_FN_RESOLVE_ADDR,	/* vrdma_cm_addr_in (src, dst, timeout) */
	VRDMA_CM_FN_RESOLVE_ROUTE,	/* vrdma_cm_id_arg (arg: timeout ms) */
	VRDMA_CM_FN_LISTEN,		/* vrdma_cm_id_arg (arg: backlog) */
	VRDMA_CM_FN_CONNECT,		/* vrdma_cm_conn_in */
	VRDMA_CM_FN_ACCEPT,		/* vrdma_cm_conn_in */
	VRDMA_CM_FN_REJECT,		/* vrdma_cm_conn_in (private data only) */
	VRDMA_CM_FN_DISCONNECT,		/* vrdma_cm_id_arg */
	VRDMA_CM_FN_ESTABLISH,		/* vrdma_cm_id_arg */
	VRDMA_CM_FN_INIT_QP_ATTR,	/* vrdma_cm_id_arg (arg: qp_state) -> vrdma_cm_qp_attr */
	VRDMA_CM_FN_SET_OPTION,		/* vrdma_cm_option_in */
	VRDMA_CM_FN_MIGRATE_ID,		/* vrdma_cm_id_arg (arg: the new channel); version 2 */
	VRDMA_CM_FN_UD_PARAM,		/* vrdma_cm_handle -> vrdma_cm_ud; version 2 */
	VRDMA_CM_FN_NOTIFY,		/* vrdma_cm_id_arg (arg: ibv_event_type); version 3 */
	VRDMA_CM_FN__END
};

struct vrdma_cm_hello {
	__le32 version;			/* in: the newest the guest speaks; out: this connection's */
	__le32 reserved;
};

struct vrdma_cm_handle {
	__le32 handle;
	__le32 reserved;
};

/* CREATE_CHANNEL: sig is a DEVSIG id (to guest), an eventfd the host writes whenever it
 * queues an event for the channel. */
struct vrdma_cm_chan_in {
	__le32 sig;
	__le32 reserved;
};

struct vrdma_cm_create_id_in {
	__le32 channel;
	__le32 ps;			/* enum rdma_port_space: RDMA_PS_TCP (RC); version 2: */
	__le32 qp_type;			/* also RDMA_PS_UDP (IBV_QPT_UD) */
	__le32 reserved;
};

/* A socket address: AF_INET or AF_INET6 (the Linux values), port in network order. */
struct vrdma_sockaddr {
	__le16 family;
	__be16 port;
	__be32 flowinfo;
	__u8 addr[16];			/* AF_INET: the first 4 bytes */
	__le32 scope_id;
	__le32 reserved;
};

/* What the guest learns of an ID's addresses: after BIND, and with every event. */
struct vrdma_cm_addr {
	struct vrdma_sockaddr src, dst;
	__u8 sgid[16], dgid[16];
	__be16 pkey;
	__u8 port_num;
	__u8 bound;			/* 1: the ID is on the device (src, sgid, port valid) */
	__le32 reserved;
};

struct vrdma_cm_addr_in {
	__le32 id;
	__le32 timeout_ms;		/* RESOLVE_ADDR */
	struct vrdma_sockaddr src;	/* BIND: the address; RESOLVE_ADDR: family 0 = none */
	struct vrdma_sockaddr dst;	/* RESOLVE_ADDR */
};

struct vrdma_cm_id_arg {
	__le32 id;
	__le32 arg;
};

/* CONNECT, ACCEPT, REJECT: the connection parameters of rdma_conn_param. qp_num must be a
 * QP of this guest (-EPERM otherwise). */
struct vrdma_cm_conn_in {
	__le32 id;
	__le32 qp_num;
	__u8 private_data_len;		/* <= VRDMA_CM_PRIV_MAX */
	__u8 responder_resources;
	__u8 initiator_depth;
	__u8 flow_control;
	__u8 retry_count;
	__u8 rnr_retry_count;
	__u8 srq;
	__u8 reserved;
	__u8 private_data[200];		/* VRDMA_CM_PRIV_MAX used, padded to 8 */
};

/* An event, as struct rdma_cm_event. For CONNECT_REQUEST `id` is a new ID (on the
 * listener's channel) and listen_id the listener. remaining: events still queued on the
 * channel after this one. */
struct vrdma_cm_event {
	__le32 event;			/* enum rdma_cm_event_type */
	__le32 status;			/* s32: 0 or -errno, or the REJ reason (REJECTED) */
	__le32 id;
	__le32 listen_id;
	__u8 private_data_len;
	__u8 responder_resources;
	__u8 initiator_depth;
	__u8 flow_control;
	__u8 retry_count;
	__u8 rnr_retry_count;
	__u8 srq;
	__u8 reserved;
	__le32 qp_num;
	__le32 remaining;
	struct vrdma_cm_addr addr;	/* of `id`, after the event */
	__u8 private_data[200];
};

/* INIT_QP_ATTR: rdma_init_qp_attr's answer, the mask and the attributes. */
struct vrdma_cm_qp_attr {
	__le32 attr_mask;
	__le32 reserved;
	struct vrdma_qp_attr attr;
};

/* UD_PARAM: the UD parameters of a UD ID's last ESTABLISHED or CONNECT_REQUEST (the
 * event's param.ud but its private data, which the event carries); -ENOENT before one. */
struct vrdma_cm_ud {
	struct vrdma_ah_attr ah_attr;	/* port_num 1 */
	__le32 qp_num;
	__le32 qkey;
};

/* SET_OPTION: RDMA_OPTION_ID with TOS, REUSEADDR, AFONLY or ACK_TIMEOUT (the value's
 * type is the option's: u8 or int); anything else -ENOSYS, as librdmacm answers. */
struct vrdma_cm_option_in {
	__le32 id;
	__le32 level;
	__le32 optname;
	__le32 reserved;
	__le64 value;
};

#define VRDMA_CM_ASSERT(t, n) _Static_assert(sizeof(struct t) == (n), #t " size")
VRDMA_CM_ASSERT(vrdma_cm_hello, 8);
VRDMA_CM_ASSERT(vrdma_cm_handle, 8);
VRDMA_CM_ASSERT(vrdma_cm_chan_in, 8);
VRDMA_CM_ASSERT(vrdma_cm_create_id_in, 16);
VRDMA_CM_ASSERT(vrdma_sockaddr, 32);
VRDMA_CM_ASSERT(vrdma_cm_addr, 104);
VRDMA_CM_ASSERT(vrdma_cm_addr_in, 72);
VRDMA_CM_ASSERT(vrdma_cm_id_arg, 8);
VRDMA_CM_ASSERT(vrdma_cm_conn_in, 216);
VRDMA_CM_ASSERT(vrdma_cm_option_in, 24);
VRDMA_CM_ASSERT(vrdma_cm_ud, 40);
VRDMA_CM_ASSERT(vrdma_cm_event, 336);
_Static_assert(__builtin_offsetof(struct vrdma_cm_event, addr) == 32, "event addr");

#endif /* VBUS_VRDMA_CM_H */
