/* SPDX-License-Identifier: MIT */
/*
 * vbus vrdma device class: the DEVCALL payloads and the shared-memory queues of a virtual
 * RDMA device. The specification is docs/vrdma.md; this header follows it field by field.
 *
 * Rules (rdma-core's kernel ABI rules): fixed-width little-endian fields, no pointers
 * (guest addresses are u64), explicit reserved fields that senders zero and receivers
 * ignore unless stated, every size a multiple of 8, a static assertion on every size.
 * Enumerated values (opcodes, statuses, flags, QP states, MTUs, access flags) are those of
 * rdma-core's <infiniband/verbs.h>, whose values are a stable ABI.
 */
#ifndef VBUS_VRDMA_H
#define VBUS_VRDMA_H

#include <linux/types.h>

#define VRDMA_CLASS_NAME	"vrdma"
/* The versions this header describes. Versions 2 and 3 only grew HELLO (2: a version range
 * and feature bits; 3: the whitelist in hello_out), each by appended fields; every other
 * call is the same as in version 1, so a host or guest of this header still speaks 1 and 2.
 * HELLO picks the highest version both speak. */
#define VRDMA_ABI_VERSION	3
#define VRDMA_ABI_MIN_VERSION	1

/* Optional features, negotiated in HELLO: the guest offers, the host grants the subset it
 * has. No feature is defined yet; unknown bits are not an error, just not granted. */
#define VRDMA_F_ALL		0ull

/*
 * The whitelist of an attachment (docs/vrdma.md, "Isolation"; docs/nesting.md): the QP
 * types (a bit 1 << IBV_QPT_* each) and the access flags (IBV_ACCESS_*) its guest may use.
 * A host never allows more than VRDMA_WL_QP_TYPES and VRDMA_WL_ACCESS; a policy (vbusctl's
 * qp-types= and access=, a level of nesting) can only take bits away. What it took away is
 * refused with -EPERM: CREATE_QP of another type; REG_MR, MODIFY_QP's qp_access_flags and
 * a bind's access with another flag; ALLOC_MW without IBV_ACCESS_MW_BIND.
 * IBV_ACCESS_RELAXED_ORDERING is a hint, never refused by a whitelist.
 */
#define VRDMA_QPT_BIT(t)	(1u << (t))
#define VRDMA_WL_QP_TYPES	(VRDMA_QPT_BIT(2) | VRDMA_QPT_BIT(3) | VRDMA_QPT_BIT(4)) /* RC UC UD */
#define VRDMA_WL_ACCESS		0x1fu	/* LOCAL_WRITE REMOTE_WRITE REMOTE_READ REMOTE_ATOMIC MW_BIND */

/* An object handle: bits 0..19 index the guest's table, bits 20..31 a generation. */
#define VRDMA_HANDLE_INDEX_BITS	20
#define VRDMA_HANDLE_NONE	0u	/* never a valid handle */

/* DEVCALL function numbers. "slow" ones may block in the kernel: the caller sleeps. */
enum vrdma_fn {
	VRDMA_FN_HELLO		= 1,	/* version and features, limits */
	VRDMA_FN_QUERY_DEVICE	= 2,
	VRDMA_FN_QUERY_PORT	= 3,
	VRDMA_FN_QUERY_GID	= 4,
	VRDMA_FN_QUERY_PKEY	= 5,
	VRDMA_FN_ALLOC_PD	= 6,
	VRDMA_FN_DEALLOC_PD	= 7,
	VRDMA_FN_REG_MR		= 8,	/* slow: pins memory */
	VRDMA_FN_DEREG_MR	= 9,	/* slow */
	VRDMA_FN_CREATE_CQ	= 10,
	VRDMA_FN_DESTROY_CQ	= 11,
	VRDMA_FN_CREATE_QP	= 12,
	VRDMA_FN_MODIFY_QP	= 13,
	VRDMA_FN_QUERY_QP	= 14,
	VRDMA_FN_DESTROY_QP	= 15,
	VRDMA_FN_ARM_CQ		= 16,	/* ibv_req_notify_cq when the relay must see it now */
	VRDMA_FN_CREATE_AH	= 17,	/* an address handle, for UD sends */
	VRDMA_FN_DESTROY_AH	= 18,
	VRDMA_FN_CREATE_SRQ	= 19,	/* a shared receive queue, its ring in a DEVSHM region */
	VRDMA_FN_MODIFY_SRQ	= 20,
	VRDMA_FN_QUERY_SRQ	= 21,
	VRDMA_FN_DESTROY_SRQ	= 22,
	VRDMA_FN_RESIZE_CQ	= 23,	/* a bigger or smaller real CQ and a new ring */
	VRDMA_FN_ALLOC_MW	= 24,	/* a memory window, type 1 or 2 */
	VRDMA_FN_DEALLOC_MW	= 25,
	VRDMA_FN_QUERY_DEVICE_EX = 26,	/* what ibv_query_device_ex and the context add */
	VRDMA_FN_QUERY_GID_TABLE = 27,	/* the port's valid GIDs, up to 16 per call */
	VRDMA_FN__MAX
};

/* Every call's output starts with nothing but its own fields; errors travel as the
 * DEVCALL status (a negative errno), never inside the payload. */

/* HELLO. Frozen for every version: the first 8 bytes of hello_in and the first 24 of
 * hello_out. A version-1 guest sends only those 8 bytes (abi_version is then the one
 * version it speaks) and gets the 24-byte answer; later versions append fields, and the
 * host answers a longer hello_in with its whole hello_out. */
struct vrdma_hello_in {
	__le32 abi_version;		/* the newest version the guest speaks */
	__le32 doorbell;		/* a DEVSIG id (to host) the guest kicks; 0: none */
	/* version 2 */
	__le32 abi_min;			/* the oldest version it speaks; 0: abi_version only */
	__le32 reserved;		/* ignored: a later version may give it a meaning */
	__le64 features;		/* VRDMA_F_* offered */
};

#define VRDMA_HELLO_IN_V1_SIZE	8	/* abi_version, doorbell */
#define VRDMA_HELLO_OUT_V1_SIZE	24	/* abi_version .. reserved */

struct vrdma_hello_out {
	__le32 abi_version;		/* the version of this connection: the newest both speak;
					 * 0 in a refusal (-EPROTONOSUPPORT) */
	__le32 max_objects;		/* per-guest quota of handles */
	__le64 max_pinned_bytes;	/* per-guest quota of registered bytes */
	__le32 gid_index;		/* the only source GID index this guest may use */
	__le32 reserved;
	/* version 2: not in the answer to a version-1 (8-byte) hello_in */
	__le32 abi_min;			/* the host's range of versions */
	__le32 abi_max;
	__le64 features;		/* granted: the offered ones the host has */
	/* version 3: an older host's answer ends before them; its guests have the whole
	 * whitelist, VRDMA_WL_QP_TYPES and VRDMA_WL_ACCESS */
	__le32 qp_types;		/* the whitelist: VRDMA_QPT_BIT(IBV_QPT_*) allowed */
	__le32 access;			/* the whitelist: IBV_ACCESS_* allowed */
};

#define VRDMA_HELLO_OUT_V2_SIZE	40	/* abi_version .. features */

struct vrdma_query_device_out {
	char fw_ver[64];
	__le64 node_guid;		/* big-endian value as the device reports it */
	__le64 sys_image_guid;
	__le64 max_mr_size;
	__le64 page_size_cap;
	__le32 vendor_id;		/* the backing device's */
	__le32 vendor_part_id;		/* the backing device's */
	__le32 hw_ver;
	__le32 max_qp;
	__le32 max_qp_wr;
	__le32 device_cap_flags;	/* masked by the host's whitelist */
	__le32 max_sge;
	__le32 max_sge_rd;
	__le32 max_cq;
	__le32 max_cqe;
	__le32 max_mr;
	__le32 max_pd;
	__le32 max_qp_rd_atom;
	__le32 max_qp_init_rd_atom;
	__le32 max_res_rd_atom;
	__le32 atomic_cap;
	__le32 max_mw;
	__le32 max_mcast_grp;
	__le32 max_mcast_qp_attach;
	__le32 max_total_mcast_qp_attach;
	__le32 max_ah;
	__le32 max_srq;
	__le32 max_srq_wr;
	__le32 max_srq_sge;
	__le16 max_pkeys;
	__u8 local_ca_ack_delay;
	__u8 phys_port_cnt;
	__le32 max_inline_data;		/* what create_qp will grant at most */
};

/* QUERY_DEVICE_EX: what a program reads beyond struct ibv_device_attr. A host without it
 * answers -EOPNOTSUPP; the guest then takes device_cap_flags and one completion vector. */
struct vrdma_query_device_ex_out {
	__le64 device_cap_flags_ex;	/* the 64-bit flags, masked as device_cap_flags */
	__le32 num_comp_vectors;	/* the backing device's: CREATE_CQ takes 0 .. this - 1 */
	__le32 reserved;
};

struct vrdma_query_port_in {
	__u8 port_num;
	__u8 reserved[7];
};

struct vrdma_query_port_out {
	__le32 state;			/* enum ibv_port_state */
	__le32 max_mtu;			/* enum ibv_mtu */
	__le32 active_mtu;
	__le32 gid_tbl_len;
	__le32 port_cap_flags;
	__le32 max_msg_sz;
	__le32 bad_pkey_cntr;
	__le32 qkey_viol_cntr;
	__le16 pkey_tbl_len;
	__le16 lid;
	__le16 sm_lid;
	__u8 lmc;
	__u8 max_vl_num;
	__u8 sm_sl;
	__u8 subnet_timeout;
	__u8 init_type_reply;
	__u8 active_width;
	__u8 active_speed;
	__u8 phys_state;
	__u8 link_layer;		/* IBV_LINK_LAYER_* */
	__u8 flags;
	__le16 port_cap_flags2;
	__le16 reserved;
	__le32 active_speed_ex;
};

struct vrdma_query_gid_in {
	__u8 port_num;
	__u8 reserved[3];
	__le32 index;
};

struct vrdma_query_gid_out {
	__u8 gid[16];			/* network order, as in union ibv_gid */
	__le32 gid_type;		/* enum ibv_gid_type */
	__le32 ndev_ifindex;		/* the entry's netdev, as the host's kernel numbers it
					 * (uverbs' ndev_ifindex); 0: none. Was reserved (0). */
};

/* QUERY_GID_TABLE: the valid entries of port port_num's GID table from index start on, in
 * index order, at most VRDMA_GID_BATCH of them; `next` is where the next call starts
 * (gid_tbl_len when no entry is left). One call reads a RoCE port's whole table. */
#define VRDMA_GID_BATCH		16

struct vrdma_query_gid_table_in {
	__u8 port_num;
	__u8 reserved[3];
	__le32 start;
};

struct vrdma_gid_entry {
	__u8 gid[16];			/* network order */
	__le32 index;
	__le32 gid_type;		/* enum ibv_gid_type */
};

struct vrdma_query_gid_table_out {
	__le32 gid_tbl_len;		/* the port's table length (ibv_port_attr.gid_tbl_len) */
	__le32 count;			/* entries below that are valid */
	__le32 next;
	__le32 reserved;
	struct vrdma_gid_entry e[VRDMA_GID_BATCH];
};

struct vrdma_query_pkey_in {
	__u8 port_num;
	__u8 reserved[3];
	__le32 index;
};

struct vrdma_query_pkey_out {
	__le16 pkey;			/* network order, as ibv_query_pkey returns it */
	__le16 reserved[3];
};

/* A handle in, nothing or a handle out: DEALLOC_PD, DEREG_MR, DESTROY_CQ, DESTROY_QP. */
struct vrdma_handle {
	__le32 handle;
	__le32 reserved;
};

/* REG_MR: [iova, iova + length) is backed by shared regions the guest has handed to the
 * device with DEVSHM, described by `npieces` struct vrdma_mr_piece that follow this header:
 * page-aligned, in address order, the first starting at the page that holds `iova`, together
 * covering the range. The host maps the pieces side by side into one window and registers
 * it with ibv_reg_mr_iova(window + iova % page, length, iova, access). */
struct vrdma_reg_mr_in {
	__le32 pd;
	__le32 access;			/* IBV_ACCESS_*; refused: ON_DEMAND, anything unknown */
	__le64 iova;			/* the guest's virtual address of the first byte */
	__le64 length;
	__le32 npieces;			/* 1 .. VRDMA_MR_MAX_PIECES */
	__le32 reserved;
};

struct vrdma_mr_piece {
	__le32 shm;			/* DEVSHM region handle */
	__le32 reserved;
	__le64 offset;			/* in that region, page aligned */
	__le64 length;			/* page multiple */
};

#define VRDMA_MR_MAX_PIECES	64

struct vrdma_reg_mr_out {
	__le32 handle;
	__le32 lkey;
	__le32 rkey;
	__le32 reserved;
};

/* CREATE_CQ: the completion queue lives in the DEVSHM region `shm` at `offset`; its
 * layout is struct vrdma_cq_ring followed by `entries` struct vrdma_cqe. `entries` is a
 * power of two and at least the real CQ's size, which the host reports. */
struct vrdma_create_cq_in {
	__le32 cqe;			/* what the application asked for */
	__le32 shm;			/* DEVSHM region handle */
	__le64 offset;			/* of the ring in that region, 64-byte aligned */
	__le32 entries;			/* ring entries, power of two, >= the real CQ's cqe */
	__le32 comp_vector;
	__le32 channel;			/* 0: none; else a DEVSIG signal to the guest, held
					 * while the CQ lives (ENOENT if not the guest's) */
	__le32 reserved;
};

struct vrdma_create_cq_out {
	__le32 handle;
	__le32 cqe;			/* the real CQ's size, what ibv_create_cq reports */
};

struct vrdma_qp_cap {
	__le32 max_send_wr;
	__le32 max_recv_wr;
	__le32 max_send_sge;
	__le32 max_recv_sge;
	__le32 max_inline_data;
	__le32 reserved;
};

/* CREATE_QP: the send queue and receive queue live in DEVSHM region `shm` at the given
 * offsets (struct vrdma_wq_ring followed by entries of the given stride). */
struct vrdma_create_qp_in {
	__le32 pd;
	__le32 send_cq;
	__le32 recv_cq;
	__le32 srq;			/* 0: none; else a CREATE_SRQ handle, and the
					 * rq_* fields and cap.max_recv_* are zero */
	__u8 qp_type;			/* IBV_QPT_RC, IBV_QPT_UC, IBV_QPT_UD; others refused */
	__u8 sq_sig_all;
	__le16 reserved;
	__le32 shm;			/* DEVSHM region holding both queues */
	struct vrdma_qp_cap cap;	/* as the application asked */
	__le64 sq_offset;
	__le64 rq_offset;
	__le32 sq_entries;		/* power of two, >= max_send_wr granted */
	__le32 sq_stride;		/* bytes per send WQE, power of two >= 64 */
	__le32 rq_entries;
	__le32 rq_stride;		/* bytes per receive WQE, power of two >= 32 */
};

struct vrdma_create_qp_out {
	__le32 handle;
	__le32 qp_num;			/* the real QPN: peers on the wire see this */
	struct vrdma_qp_cap cap;	/* what was granted, as ibv_create_qp reports */
};

struct vrdma_ah_attr {
	__u8 dgid[16];
	__le32 flow_label;
	__u8 sgid_index;
	__u8 hop_limit;
	__u8 traffic_class;
	__u8 is_global;
	__le16 dlid;
	__u8 sl;
	__u8 src_path_bits;
	__u8 static_rate;
	__u8 port_num;
	__le16 reserved;
};

struct vrdma_qp_attr {
	__le32 qp_state;
	__le32 cur_qp_state;
	__le32 path_mtu;
	__le32 path_mig_state;
	__le32 qkey;
	__le32 rq_psn;
	__le32 sq_psn;
	__le32 dest_qp_num;
	__le32 qp_access_flags;
	__le16 pkey_index;
	__le16 alt_pkey_index;
	struct vrdma_qp_cap cap;
	struct vrdma_ah_attr ah_attr;
	struct vrdma_ah_attr alt_ah_attr;
	__u8 en_sqd_async_notify;
	__u8 sq_draining;
	__u8 max_rd_atomic;
	__u8 max_dest_rd_atomic;
	__u8 min_rnr_timer;
	__u8 port_num;
	__u8 timeout;
	__u8 retry_cnt;
	__u8 rnr_retry;
	__u8 alt_port_num;
	__u8 alt_timeout;
	__u8 reserved1;
	__le32 rate_limit;
};

/* CREATE_AH: out is a struct vrdma_handle. The same policy as a QP's address vector: port
 * 1, and the bus's source GID index only. */
struct vrdma_create_ah_in {
	__le32 pd;
	__le32 reserved;
	struct vrdma_ah_attr attr;
};

struct vrdma_modify_qp_in {
	__le32 handle;
	__le32 attr_mask;		/* IBV_QP_* */
	struct vrdma_qp_attr attr;
};

struct vrdma_query_qp_in {
	__le32 handle;
	__le32 attr_mask;
};

struct vrdma_query_qp_out {
	struct vrdma_qp_attr attr;
	struct vrdma_qp_attr init_caps;	/* only .cap is meaningful */
};

/* RESIZE_CQ: the CQ's new ring, in the same layout as CREATE_CQ's. The guest stops
 * polling during the call; the host moves the completions the guest has not consumed
 * (prod - cons of the old ring) to the start of the new one and publishes the new ring's
 * prod; the old ring is not touched afterwards. -EINVAL if they do not fit. */
struct vrdma_resize_cq_in {
	__le32 handle;
	__le32 cqe;			/* what the application asked for */
	__le32 shm;
	__le32 entries;			/* power of two, >= the real CQ's new cqe */
	__le64 offset;
};

struct vrdma_arm_cq_in {
	__le32 handle;
	__le32 solicited_only;
};

/* SRQ attributes, as struct ibv_srq_attr. */
struct vrdma_srq_attr {
	__le32 max_wr;
	__le32 max_sge;
	__le32 srq_limit;
	__le32 reserved;
};

/* CREATE_SRQ: the receive ring lives in the DEVSHM region `shm` at `offset` (a struct
 * vrdma_ring followed by `entries` struct vrdma_rwqe slots of `stride` bytes), produced by
 * the guest like a QP's receive queue. The host publishes in the ring's `retired` the
 * number of the SRQ's WQEs that have completed (received or flushed), so that the guest
 * knows the SRQ's depth without a call. */
struct vrdma_create_srq_in {
	__le32 pd;
	__le32 shm;
	__le64 offset;
	__le32 entries;			/* power of two, >= attr.max_wr */
	__le32 stride;			/* power of two, >= 16 + 16 * attr.max_sge */
	struct vrdma_srq_attr attr;	/* as the application asked */
};

struct vrdma_create_srq_out {
	__le32 handle;
	__le32 reserved;
	struct vrdma_srq_attr attr;	/* granted: no more than the ring holds */
};

/* MODIFY_SRQ: attr_mask is IBV_SRQ_MAX_WR and/or IBV_SRQ_LIMIT; a max_wr past what the
 * ring holds is -EINVAL. QUERY_SRQ: in struct vrdma_handle, out struct vrdma_srq_attr. */
struct vrdma_modify_srq_in {
	__le32 handle;
	__le32 attr_mask;
	struct vrdma_srq_attr attr;
};

/* ALLOC_MW: a memory window in the guest's PD. Binding it is a send WQE (IBV_WR_BIND_MW,
 * see struct vrdma_swqe), for type 1 (ibv_bind_mw) as for type 2. */
struct vrdma_alloc_mw_in {
	__le32 pd;
	__le32 type;			/* IBV_MW_TYPE_1 or IBV_MW_TYPE_2 */
};

struct vrdma_alloc_mw_out {
	__le32 handle;
	__le32 rkey;			/* the window's initial rkey */
};

/* Device events (the bus's VBUS_EV_DEVICE on the DEVOPEN handle, docs/abi.md): `code` is
 * the enum ibv_event_type, the event's 32 data bytes start with this structure. */
struct vrdma_event {
	__le32 handle;			/* the QP, CQ or SRQ concerned; 0: port, device */
	__le32 port_num;		/* port events: the port (1) */
};

/* ---- Shared-memory queues -------------------------------------------------------------
 *
 * Each queue is a ring header followed by its entries. Indices are free-running u32
 * counters (the slot is index & (entries - 1)); the producer writes `prod`, the consumer
 * writes `cons`, each on its own cache line. Who produces:
 *   send queue, receive queue:   the guest produces, the host's relay consumes
 *   completion queue:            the host's relay produces, the guest consumes
 * The consumer checks prod - cons <= entries on every read and treats anything else as a
 * broken queue (the host moves the QP or CQ to error; the guest library fails the call).
 */
struct vrdma_ring {
	__le32 prod;			/* written by the producer only */
	__le32 reserved0[15];
	__le32 cons;			/* written by the consumer only */
	__le32 reserved1[15];
	__le32 flags;			/* VRDMA_RING_* : see docs/vrdma.md for who writes */
	__le32 armed;			/* CQ only: guest's ibv_req_notify_cq (1 any, 2 solicited) */
	__le32 retired;			/* SQ, SRQ: host: WQEs completed or flushed */
	__le32 reserved2[13];
};

#define VRDMA_ARMED_ANY		1	/* ring->armed: the next completion fires */
#define VRDMA_ARMED_SOLICITED	2	/* the next solicited or error receive fires */
#define VRDMA_RING_NEED_WAKEUP	(1u << 0)	/* the relay sleeps: kick the doorbell */
#define VRDMA_RING_BROKEN	(1u << 1)	/* set by whichever side found a rule broken */

struct vrdma_sge {
	__le64 addr;			/* guest virtual address (the MR's iova space) */
	__le32 length;
	__le32 lkey;
};

/* A send WQE: this header, then num_sge struct vrdma_sge, or inline_len bytes of data
 * when send_flags has IBV_SEND_INLINE. */
struct vrdma_swqe {
	__le64 wr_id;
	__u8 opcode;			/* enum ibv_wr_opcode */
	__u8 num_sge;
	__le16 inline_len;
	__le32 send_flags;		/* IBV_SEND_* */
	__be32 imm_data;		/* or invalidate_rkey (LOCAL_INV, SEND_WITH_INV) */
	__le32 rkey;
	__le64 remote_addr;
	__le64 compare_add;
	__le64 swap;
	union {
		struct {		/* UD sends */
			__le32 ud_ah;	/* an AH handle of this guest (CREATE_AH) */
			__le32 ud_remote_qpn;
			__le32 ud_remote_qkey;
		};
		struct {		/* IBV_WR_BIND_MW: rkey is the new rkey, remote_addr
					 * and compare_add the window's address and length */
			__le32 bind_mw;	/* an ALLOC_MW handle of this guest */
			__le32 bind_mr;	/* a REG_MR handle; 0: unbind (length 0) */
			__le32 bind_access;	/* IBV_ACCESS_* of the window */
		};
	};
	__le32 reserved;
};

/* A receive WQE: this header, then num_sge struct vrdma_sge. */
struct vrdma_rwqe {
	__le64 wr_id;
	__le32 num_sge;
	__le32 reserved;
};

/* A completion, ibv_wc's fields plus what the guest needs to retire send WQEs. */
struct vrdma_cqe {
	__le64 wr_id;
	__le32 status;			/* enum ibv_wc_status */
	__le32 opcode;			/* enum ibv_wc_opcode */
	__le32 vendor_err;
	__le32 byte_len;
	__be32 imm_data;
	__le32 qp_num;
	__le32 src_qp;
	__le32 wc_flags;
	__le16 pkey_index;
	__le16 slid;
	__u8 sl;
	__u8 dlid_path_bits;
	__u8 is_send;			/* 1: a send-queue completion */
	__u8 reserved0;
	__le32 qp_handle;		/* the guest's QP, for retiring send WQEs */
	__le32 sq_retired;		/* send WQEs of that QP retired up to this completion */
	__le64 reserved1;
};

#define VRDMA_ASSERT_SIZE(t, n) _Static_assert(sizeof(struct t) == (n), #t " size")
VRDMA_ASSERT_SIZE(vrdma_hello_in, 24);
VRDMA_ASSERT_SIZE(vrdma_hello_out, 48);
VRDMA_ASSERT_SIZE(vrdma_query_device_out, 200);
VRDMA_ASSERT_SIZE(vrdma_query_device_ex_out, 16);
VRDMA_ASSERT_SIZE(vrdma_query_gid_table_in, 8);
VRDMA_ASSERT_SIZE(vrdma_gid_entry, 24);
VRDMA_ASSERT_SIZE(vrdma_query_gid_table_out, 400);
VRDMA_ASSERT_SIZE(vrdma_query_port_in, 8);
VRDMA_ASSERT_SIZE(vrdma_query_port_out, 56);
VRDMA_ASSERT_SIZE(vrdma_query_gid_in, 8);
VRDMA_ASSERT_SIZE(vrdma_query_gid_out, 24);
VRDMA_ASSERT_SIZE(vrdma_query_pkey_in, 8);
VRDMA_ASSERT_SIZE(vrdma_query_pkey_out, 8);
VRDMA_ASSERT_SIZE(vrdma_handle, 8);
VRDMA_ASSERT_SIZE(vrdma_reg_mr_in, 32);
VRDMA_ASSERT_SIZE(vrdma_mr_piece, 24);
VRDMA_ASSERT_SIZE(vrdma_reg_mr_out, 16);
VRDMA_ASSERT_SIZE(vrdma_create_cq_in, 32);
VRDMA_ASSERT_SIZE(vrdma_create_cq_out, 8);
VRDMA_ASSERT_SIZE(vrdma_qp_cap, 24);
VRDMA_ASSERT_SIZE(vrdma_create_qp_in, 80);
VRDMA_ASSERT_SIZE(vrdma_create_qp_out, 32);
VRDMA_ASSERT_SIZE(vrdma_ah_attr, 32);
VRDMA_ASSERT_SIZE(vrdma_qp_attr, 144);
VRDMA_ASSERT_SIZE(vrdma_modify_qp_in, 152);
VRDMA_ASSERT_SIZE(vrdma_query_qp_in, 8);
VRDMA_ASSERT_SIZE(vrdma_query_qp_out, 288);
VRDMA_ASSERT_SIZE(vrdma_arm_cq_in, 8);
VRDMA_ASSERT_SIZE(vrdma_create_ah_in, 40);
VRDMA_ASSERT_SIZE(vrdma_resize_cq_in, 24);
VRDMA_ASSERT_SIZE(vrdma_srq_attr, 16);
VRDMA_ASSERT_SIZE(vrdma_create_srq_in, 40);
VRDMA_ASSERT_SIZE(vrdma_create_srq_out, 24);
VRDMA_ASSERT_SIZE(vrdma_modify_srq_in, 24);
VRDMA_ASSERT_SIZE(vrdma_alloc_mw_in, 8);
VRDMA_ASSERT_SIZE(vrdma_alloc_mw_out, 8);
VRDMA_ASSERT_SIZE(vrdma_event, 8);
VRDMA_ASSERT_SIZE(vrdma_ring, 192);
VRDMA_ASSERT_SIZE(vrdma_sge, 16);
VRDMA_ASSERT_SIZE(vrdma_swqe, 64);
VRDMA_ASSERT_SIZE(vrdma_rwqe, 16);
VRDMA_ASSERT_SIZE(vrdma_cqe, 64);
_Static_assert(__builtin_offsetof(struct vrdma_hello_in, abi_min) == VRDMA_HELLO_IN_V1_SIZE,
	       "hello_in: version 2 appends");
_Static_assert(__builtin_offsetof(struct vrdma_hello_out, abi_min) == VRDMA_HELLO_OUT_V1_SIZE,
	       "hello_out: version 2 appends");
_Static_assert(__builtin_offsetof(struct vrdma_hello_in, features) == 16, "hello_in layout");
_Static_assert(__builtin_offsetof(struct vrdma_hello_out, features) == 32, "hello_out layout");
_Static_assert(__builtin_offsetof(struct vrdma_hello_out, qp_types) == VRDMA_HELLO_OUT_V2_SIZE,
	       "hello_out: version 3 appends");
_Static_assert(__builtin_offsetof(struct vrdma_ring, cons) == 64, "cons on its own line");
_Static_assert(__builtin_offsetof(struct vrdma_ring, flags) == 128, "flags on its own line");
_Static_assert(__builtin_offsetof(struct vrdma_swqe, remote_addr) == 24, "swqe layout");
_Static_assert(__builtin_offsetof(struct vrdma_cqe, qp_handle) == 48, "cqe layout");
#undef VRDMA_ASSERT_SIZE

#endif /* VBUS_VRDMA_H */
