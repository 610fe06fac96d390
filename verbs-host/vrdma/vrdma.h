/* SPDX-License-Identifier: MIT */
/*
 * vrdma host side: what vbusd does for a guest of a vrdma device (docs/vrdma.md).
 *
 * One struct vrdma_guest per guest connection that opened the device: its own ibv_context
 * on the real device, its object table (handles), its quotas. Everything the guest sends
 * arrives through vrdma_dispatch(), which checks sizes, handles and reserved fields before
 * any handler runs. All functions return 0 or a negative errno.
 */
#ifndef VBUS_VRDMA_HOST_H
#define VBUS_VRDMA_HOST_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <infiniband/verbs.h>
#include <vbus/vrdma.h>
#include <vbus/vrdma-verbs.h>

/* A DEVSHM region of the guest, as the bus has mapped it in vbusd. */
/* What the relay carries per work request and queue (advertised by QUERY_DEVICE, enforced
 * at CREATE_QP): inline bytes, SGEs, and work requests or CQEs per queue. */
#define VRDMA_MAX_INLINE	256
#define VRDMA_MAX_SGE		32
#define VRDMA_MAX_QUEUE		32767

/* The relay's budget per guest and per pass, as vhost's weight: each kind of queue (SRQs,
 * receive queues, send queues, completion queues) of one guest moves at most this many
 * entries in one pass, a queue looked at without work counting as one; the rest waits
 * for the next pass, which starts where this one stopped. A guest that floods its queues
 * cannot hold the relay from the other guests for more than this. */
#define VRDMA_RELAY_WEIGHT	256
/* The real CQ events the relay thread keeps for a guest between two passes; more in
 * between and the pass looks at all its parked CQs once (relay.c). */
#define VRDMA_CQ_EVENTS		64

/* An intrusive doubly linked list (a circular one with a head, as Linux's list_head). */
struct vrdma_link {
	struct vrdma_link *next, *prev;
};

static inline void vrdma_link_init(struct vrdma_link *h)
{
	h->next = h->prev = h;
}

static inline bool vrdma_link_empty(const struct vrdma_link *h)
{
	return h->next == h;
}

static inline void vrdma_link_del(struct vrdma_link *l)
{
	l->prev->next = l->next;
	l->next->prev = l->prev;
	l->next = l->prev = l;
}

static inline void vrdma_link_add_tail(struct vrdma_link *h, struct vrdma_link *l)
{
	l->prev = h->prev;
	l->next = h;
	h->prev->next = l;
	h->prev = l;
}

#define vrdma_container_of(p, type, member) \
	((type *)(void *)((char *)(p) - offsetof(type, member)))

struct vrdma_region {
	int fd;			/* the sealed memfd, for mapping pieces into MR windows */
	void *base;		/* vbusd's mapping of the whole region */
	uint64_t size;
	/* A VM's region: each 4096-byte page's offset in fd (the VM's RAM); NULL: the
	 * region is fd itself from offset 0. */
	const uint64_t *pages;
};

/* What the bus provides to the device: the guest's regions and signals. */
/* A guest's privileges as uverbs checks a user process's (docs/verbs.md, Privileges). */
struct vrdma_caller {
	bool net_raw;			/* CAP_NET_RAW: a privileged Q_Key (bit 31) */
	bool ipc_lock;			/* CAP_IPC_LOCK: pins past memlock */
	uint64_t memlock;		/* RLIMIT_MEMLOCK, bytes */
};
/* What a call asks of its caller (env->caller's `what`): what it does not ask for stays
 * allowed (capabilities cost a read of /proc, the limit one system call). */
enum {
	VRDMA_ASK_CAPS = 1 << 0,	/* net_raw, ipc_lock */
	VRDMA_ASK_MEMLOCK = 1 << 1,	/* memlock */
};

struct vrdma_env_ops {
	/* Look up the guest's region `shm` and keep it mapped (the guest cannot revoke it)
	 * until region_put; -ENOENT if it has none by that handle. */
	int (*region)(void *priv, uint32_t shm, struct vrdma_region *out);
	void (*region_put)(void *priv, uint32_t shm);	/* may be NULL */
	/* Keep the guest's signal `sig` (a CQ's completion channel) until signal_put: the
	 * guest cannot revoke it meanwhile; -ENOENT if it has none by that number. Both may
	 * be NULL: any number is taken, and kick says whether it is known. */
	int (*signal_hold)(void *priv, uint32_t sig);
	void (*signal_put)(void *priv, uint32_t sig);
	/* Kick the guest's signal `sig` (held); -ENOENT if unknown. */
	int (*kick)(void *priv, uint32_t sig);
	/* Tell the guest about an asynchronous event (enum ibv_event_type) of its object
	 * `handle` (0: port or device) or port `port`. Never blocks; may drop. */
	void (*event)(void *priv, uint32_t type, uint32_t handle, uint32_t port);
	/* A quota of the device refused the guest (its name and limit): logged and shown by
	 * the bus. May be NULL. */
	void (*quota)(void *priv, const char *quota, uint64_t limit);
	/* The guest's whitelist refused a call (what, the value refused, how many refusals
	 * so far): the 1st, 2nd, 4th ... are told, for a log. May be NULL. */
	void (*refused)(void *priv, const char *what, uint32_t value, uint64_t count);
	/* What the guest's process may do, asked where uverbs asks the kernel of a user
	 * caller (a privileged Q_Key, pins past RLIMIT_MEMLOCK): the VRDMA_ASK_* of `what`
	 * are set in *out, the rest left as they are. May be NULL: no limit. */
	void (*caller)(void *priv, unsigned int what, struct vrdma_caller *out);
	/* A VM's region costs vbusd one mapping per run of its pages, in an MR window too
	 * (docs/vm.md, "Mappings"): take n of the VM's budget (0, or -errno with the quota
	 * told; REG_MR then fails with ENOMEM), give them back. May be NULL: not counted (a process's piece is one mapping,
	 * its count bounded by the handle quota). */
	int (*maps_take)(void *priv, uint64_t n);
	void (*maps_give)(void *priv, uint64_t n);
	/* A VM's MR pins `bytes` (its window's span) of the VM's max-pinned, whichever of its
	 * connections registers it (0, or -errno with the quota told: ENOMEM), given back at
	 * its deregistration. May be NULL: not a VM's. */
	int (*pins_take)(void *priv, uint64_t bytes);
	void (*pins_give)(void *priv, uint64_t bytes);
};

/* Policy for one guest, set from the bus and device attributes. */
struct vrdma_policy {
	uint8_t port;			/* the backing port */
	uint32_t gid_index;		/* the only source GID index the guest may use */
	uint32_t max_objects;		/* handle quota */
	uint64_t max_pinned_bytes;	/* registered-memory quota */
	uint32_t qp_types;		/* the whitelist (VRDMA_WL_*): VRDMA_QPT_BIT(IBV_QPT_*) */
	uint32_t access;		/* the whitelist: IBV_ACCESS_* */
	bool vm;			/* the guest is a VM's: told nothing of the host's netdevs */
	/* A child connection's guest (VBUS_OP_CHILD): its parent attachment's charges,
	 * which its own objects count against too (charge.c); NULL: a root */
	struct vrdma_charge *parent;
};

/* charge.c: what a guest and the children below it hold, counted up the tree. */
struct vrdma_charge;
struct vrdma_charge *vrdma_charge_new(struct vrdma_charge *parent, uint32_t max_objects,
				      uint64_t max_pinned);
struct vrdma_charge *vrdma_charge_get(struct vrdma_charge *c);
void vrdma_charge_put(struct vrdma_charge *c);
int vrdma_charge_add(struct vrdma_charge *c, int32_t objects, int64_t pinned,
		     const char **what, uint64_t *limit);
void vrdma_charge_read(struct vrdma_charge *c, uint32_t *objects, uint64_t *pinned);

enum vrdma_obj_type {
	VRDMA_OBJ_FREE = 0,
	VRDMA_OBJ_PD,
	VRDMA_OBJ_MR,
	VRDMA_OBJ_CQ,
	VRDMA_OBJ_QP,
	VRDMA_OBJ_AH,
	VRDMA_OBJ_SRQ,
	VRDMA_OBJ_MW,
};

struct vrdma_obj {
	uint16_t type;			/* enum vrdma_obj_type */
	uint16_t gen;			/* generation, VRDMA_GEN_BITS wide */
	uint32_t users;			/* objects that depend on this one */
	void *p;
};

struct vrdma_guest;

struct vrdma_pd {
	struct ibv_pd *pd;
};

struct vrdma_ah {
	struct ibv_ah *ah;
	uint32_t pd;			/* handle */
};

struct vrdma_mw {
	struct ibv_mw *mw;
	uint32_t pd;			/* handle */
};

struct vrdma_mr {
	struct ibv_mr *mr;
	uint32_t pd;			/* handle */
	void *window;			/* reserved span holding the mapped pieces */
	size_t window_len;
	uint64_t iova;			/* the guest's address of the first byte */
	uint64_t nmaps;			/* a VM's: its mappings in the window (maps_take) */
	uint64_t vm_pinned;		/* a VM's: the bytes it holds of the VM's (pins_take) */
};

/* The kinds of queue the relay serves, in the order a pass serves them: receives first, so
 * that a send answering a receive finds it posted, completions last. */
enum vrdma_qkind {
	VRDMA_QK_SRQ,
	VRDMA_QK_RQ,
	VRDMA_QK_SQ,
	VRDMA_QK_CQ,
	VRDMA_QKINDS
};

enum vrdma_qstate {
	VRDMA_QS_OFF = 0,		/* not scheduled (not yet, or no more) */
	VRDMA_QS_ACTIVE,		/* on g->active[kind]: each pass looks at it */
	VRDMA_QS_PARKED,		/* on g->parked[kind]: a kick or a CQ event wakes it */
};

/* A queue in guest shared memory, as the host sees it. */
struct vrdma_hq {
	struct vrdma_ring *ring;
	uint8_t *slots;
	uint32_t entries;		/* power of two */
	uint32_t stride;
	uint32_t cons;			/* host-private copy of the index it consumes or produces */
	bool broken;
	bool mapped;			/* holds region `shm` until vrdma_hq_unmap */
	uint32_t shm;
	/* The relay's schedule (relay.c, under the guest's lock) */
	struct vrdma_link link;		/* on g->active[kind] or g->parked[kind] */
	uint64_t last_work_ns;		/* when the relay last found work on it */
	uint8_t kind;			/* enum vrdma_qkind */
	uint8_t state;			/* enum vrdma_qstate */
};

struct vrdma_cq {
	struct ibv_cq *cq;
	struct vrdma_hq q;		/* completion ring: the host produces */
	uint32_t channel;		/* guest signal to kick on events, 0: none */
	bool channel_held;		/* env->signal_hold took it: signal_put at the end */
	uint32_t handle;
	bool overrun;			/* CQ_ERR sent; cleared once the ring has room again */
};

/* A shared receive queue. The relay posts its WQEs to the real SRQ with wr_id =
 * VRDMA_SRQ_WRID(handle, slot): the completion names the SRQ and a slot of `wrid` that
 * holds the guest's wr_id, whichever QP consumed it and even after that QP is gone. */
struct vrdma_srq {
	struct ibv_srq *srq;
	uint32_t handle;
	uint32_t pd;			/* handle */
	struct vrdma_hq q;		/* the host consumes */
	uint32_t max_wr, max_sge;	/* granted (max_wr no more than the ring holds) */
	uint64_t *wrid;			/* q.entries slots */
	uint32_t *free;			/* stack of free slots */
	uint32_t nfree;
	uint32_t done;			/* completed, published in the ring's `retired` */
};

#define VRDMA_WRID_RECV		(1ull << 63)
#define VRDMA_WRID_SRQ		(1ull << 62)
#define VRDMA_WRID_REFUSED	(1ull << 61)	/* a send standing in for a refused atomic */
#define VRDMA_SRQ_WRID(h, slot)	(VRDMA_WRID_RECV | VRDMA_WRID_SRQ | (uint64_t)(h) << 24 | (slot))

struct vrdma_qp {
	struct ibv_qp *qp;
	/* An RC QP's ibv_wr_* interface, where the device has it: an atomic rxe's
	 * ibv_post_send refuses (misaligned, short) goes to the wire through it, as a native
	 * program's does (relay.c); NULL: the stand-in. */
	struct ibv_qp_ex *qpx;
	uint32_t handle;
	uint32_t pd, send_cq, recv_cq;	/* handles */
	uint32_t srq_h;			/* handle, 0: none (then rq is not mapped) */
	struct vrdma_cq *scq, *rcq;
	struct vrdma_hq sq, rq;		/* the host consumes */
	struct vrdma_qp_cap cap;	/* granted */
	uint8_t qp_type;
	uint8_t sq_sig_all;
	/* The relay posts real WQEs with wr_id = its own sequence number and keeps the
	 * guest's wr_id here, at seq & mask; the real queue never holds more than its depth. */
	uint64_t *swrid, *rwrid;
	uint32_t smask, rmask;
	uint32_t sposted, sretired;	/* send WQEs posted to the real QP, and completed */
	uint32_t rposted, rdone;	/* the same for receives */
};

struct vrdma_guest {
	struct ibv_context *ctx;
	struct ibv_comp_channel *chan;	/* the real CQs' events: wakes a sleeping relay */
	struct vrdma_policy pol;
	const struct vrdma_env_ops *env;
	void *env_priv;
	pthread_mutex_t lock;		/* the object table, against the relay */
	struct vrdma_obj *objs;
	uint32_t nobjs;			/* slots allocated */
	uint32_t live;			/* slots in use */
	uint64_t pinned;
	struct vrdma_charge *charge;	/* live and pinned, counted up the tree (charge.c) */
	long page;
	uint32_t abi_version;		/* negotiated in HELLO; 0 before */
	uint64_t features;		/* VRDMA_F_* granted in HELLO */
	/* counters, for `vbusctl res show` */
	uint64_t n_wqe, n_cqe, n_relay_errors;
	uint64_t n_cqe_lost;		/* completions lost to CQ overrun (relay.c) */
	uint64_t n_refused;		/* calls the whitelist refused (vrdma_refuse) */
	uint64_t n_kicks;		/* doorbells read by the relay (atomic) */
	bool closing;			/* vrdma_guest_close: the regions go with the guest */
	/* A byte registered in a PD of its own, made at the first refused atomic: its lkey is
	 * valid but never in the guest's PDs, so a device refuses it in use (relay.c). */
	struct ibv_pd *poison_pd;
	struct ibv_mr *poison_mr;
	uint8_t poison;
	/* The relay's schedule of the guest's queues (relay.c, "Scheduling"), under lock */
	struct vrdma_link active[VRDMA_QKINDS], parked[VRDMA_QKINDS];
	uint64_t park_ns;		/* a queue idle this long is parked (the relay's spin) */
	uint64_t n_visits;		/* queues the passes looked at */
	/* Its QPs by real QP number, for completions (qpn.c), under lock */
	struct vrdma_qp **qpn;
	uint32_t qpn_mask, qpn_used;
	/* owned by the relay thread */
	int doorbell;			/* eventfd the guest kicks, -1: none */
	bool in_relay;
	bool kicked;			/* the doorbell rang since the last pass */
	bool cq_ev_lost;		/* more CQ events than cq_ev holds came */
	uint32_t ncq_ev;
	uint32_t cq_ev[VRDMA_CQ_EVENTS];	/* handles of the CQs whose real CQ had an event */
};

#define VRDMA_GEN_BITS (32 - VRDMA_HANDLE_INDEX_BITS)

/* guest.c */
int vrdma_guest_open(struct vrdma_guest **out, struct ibv_device *dev,
		     const struct vrdma_policy *pol, const struct vrdma_env_ops *env,
		     void *env_priv);
void vrdma_guest_close(struct vrdma_guest *g);
/* guest.c: the guest has a QP whose real number is qpn. */
bool vrdma_guest_owns_qpn(struct vrdma_guest *g, uint32_t qpn);
/* relay.c: forward the real context's pending async events to the guest (relay thread). */
void vrdma_relay_async(struct vrdma_guest *g);
/* res.c: the guest's objects for `vbusctl res show` (kind: qp, cq, mr, pd, ah or NULL),
 * as JSON members ("counters":{...},"objects":[...]) or text lines. 0 or -ENOSPC. */
int vrdma_guest_res(struct vrdma_guest *g, const char *kind, bool json, char *buf, size_t n);
/* The kernel backend's records (VBK_IOC_RES) printed as the relay's objects are, without
 * the brackets. 0 or -ENOSPC. */
struct vbk_res_obj;
int vrdma_res_records(const struct vbk_res_obj *r, uint32_t nr, const char *kind, bool json,
		      char *buf, size_t n);

/* tree.c: the kernel backend's passthrough tree (VBK_IOC_TREE: n nodes, parent before
 * child) as a JSON array of nested nodes, or text lines, each starting with indent and
 * indented by depth. 0, -ENOSPC or -EPROTO (nodes not in the module's order). */
struct vbk_tree_node;
int vrdma_tree_show(const struct vbk_tree_node *t, uint32_t n, bool json, const char *indent,
		    char *buf, size_t len);

/* handle.c: the caller holds g->lock */
/* A quota refused the guest: the bus is told (env->quota); returns err. */
int vrdma_quota(struct vrdma_guest *g, const char *name, uint64_t limit, int err);
int vrdma_refuse(struct vrdma_guest *g, const char *what, uint32_t value);
/* The access flags of `access` that the whitelist knows and g's policy took away. */
static inline uint32_t vrdma_wl_lacks(const struct vrdma_guest *g, uint32_t access)
{
	return access & VRDMA_WL_ACCESS & ~g->pol.access;
}
/* whitelist.c: qp-types= (qp_types) or access= words to VRDMA_WL_* bits: 0, or -EINVAL and
 * why in err; and bits back to words ("none" for 0). */
int vrdma_wl_parse(const char *s, bool qp_types, uint32_t *out, char *err, size_t errn);
void vrdma_wl_format(uint32_t bits, bool qp_types, char *buf, size_t bufn);
/* handle.c: the guest's privileges (env->caller; everything allowed without one). */
void vrdma_caller(struct vrdma_guest *g, unsigned int what, struct vrdma_caller *out);
int vrdma_handle_new(struct vrdma_guest *g, enum vrdma_obj_type type, void *p, uint32_t *h);
void *vrdma_handle_get(struct vrdma_guest *g, uint32_t h, enum vrdma_obj_type type, int *err);
void vrdma_handle_free(struct vrdma_guest *g, uint32_t h);
struct vrdma_obj *vrdma_handle_obj(struct vrdma_guest *g, uint32_t h);

/* dispatch.c: one DEVCALL. *outlen is set to the bytes written to out. */
int vrdma_dispatch(struct vrdma_guest *g, uint32_t fn, const void *in, size_t inlen,
		   void *out, size_t outmax, size_t *outlen);
bool vrdma_fn_is_slow(uint32_t fn);

/* The handlers, one file per object. The dispatcher checks the sizes: `in` holds exactly
 * the input size of vrdma-fns.h (zero-padded; REG_MR: inlen bytes), `out` the output's. */
int vrdma_do_hello(struct vrdma_guest *g, const void *in, size_t inlen, void *out);
int vrdma_do_query_device(struct vrdma_guest *g, const void *in, size_t inlen, void *out);
int vrdma_do_query_port(struct vrdma_guest *g, const void *in, size_t inlen, void *out);
int vrdma_do_query_gid(struct vrdma_guest *g, const void *in, size_t inlen, void *out);
int vrdma_do_query_device_ex(struct vrdma_guest *g, const void *in, size_t inlen, void *out);
int vrdma_do_query_gid_table(struct vrdma_guest *g, const void *in, size_t inlen, void *out);
int vrdma_do_query_pkey(struct vrdma_guest *g, const void *in, size_t inlen, void *out);
int vrdma_do_alloc_pd(struct vrdma_guest *g, const void *in, size_t inlen, void *out);
int vrdma_do_dealloc_pd(struct vrdma_guest *g, const void *in, size_t inlen, void *out);
int vrdma_do_reg_mr(struct vrdma_guest *g, const void *in, size_t inlen, void *out);
int vrdma_do_dereg_mr(struct vrdma_guest *g, const void *in, size_t inlen, void *out);
int vrdma_do_create_cq(struct vrdma_guest *g, const void *in, size_t inlen, void *out);
int vrdma_do_destroy_cq(struct vrdma_guest *g, const void *in, size_t inlen, void *out);
int vrdma_do_create_qp(struct vrdma_guest *g, const void *in, size_t inlen, void *out);
int vrdma_do_modify_qp(struct vrdma_guest *g, const void *in, size_t inlen, void *out);
int vrdma_do_query_qp(struct vrdma_guest *g, const void *in, size_t inlen, void *out);
int vrdma_do_destroy_qp(struct vrdma_guest *g, const void *in, size_t inlen, void *out);
int vrdma_do_arm_cq(struct vrdma_guest *g, const void *in, size_t inlen, void *out);
int vrdma_do_create_ah(struct vrdma_guest *g, const void *in, size_t inlen, void *out);
int vrdma_do_destroy_ah(struct vrdma_guest *g, const void *in, size_t inlen, void *out);
int vrdma_do_create_srq(struct vrdma_guest *g, const void *in, size_t inlen, void *out);
int vrdma_do_modify_srq(struct vrdma_guest *g, const void *in, size_t inlen, void *out);
int vrdma_do_query_srq(struct vrdma_guest *g, const void *in, size_t inlen, void *out);
int vrdma_do_destroy_srq(struct vrdma_guest *g, const void *in, size_t inlen, void *out);
int vrdma_do_resize_cq(struct vrdma_guest *g, const void *in, size_t inlen, void *out);
int vrdma_do_alloc_mw(struct vrdma_guest *g, const void *in, size_t inlen, void *out);
int vrdma_do_dealloc_mw(struct vrdma_guest *g, const void *in, size_t inlen, void *out);
/* qp.c: a guest address vector to a real one, under the bus's policy. 0 or -errno. */
int vrdma_ah_in(struct vrdma_guest *g, struct ibv_ah_attr *a, const struct vrdma_ah_attr *v);
void vrdma_ah_free(struct vrdma_ah *ah);

/* Object teardown used by the handlers and by vrdma_guest_close(). */
void vrdma_mr_free(struct vrdma_guest *g, struct vrdma_mr *mr);
void vrdma_cq_free(struct vrdma_guest *g, struct vrdma_cq *cq);
void vrdma_qp_free(struct vrdma_guest *g, struct vrdma_qp *qp);
void vrdma_srq_free(struct vrdma_guest *g, struct vrdma_srq *srq);
void vrdma_mw_free(struct vrdma_mw *mw);

/* mr.c: REG_MR's header, as both backends check it: its pieces (1 to VRDMA_MR_MAX_PIECES,
 * exactly inlen's worth); the window of [iova, iova + length): *head, iova's offset in
 * its page, and *total, the whole pages from there (-EINVAL: empty or wrapping). */
bool vrdma_mr_pieces_ok(const struct vrdma_reg_mr_in *i, size_t inlen);
int vrdma_mr_span(uint64_t iova, uint64_t length, uint64_t page, uint64_t *head,
		  uint64_t *total);
/* mr.c: an MR's window, its pieces mapped side by side (also the VM kernel backend's,
 * class_vrdma_vmk.c). 0 or -errno. *nmaps: the VM's mappings it took (env->maps_take), to
 * give back once it is unmapped. */
int vrdma_map_window(const struct vrdma_env_ops *env, void *priv, long page,
		     const struct vrdma_mr_piece *pieces, uint32_t n, uint64_t total,
		     void **window, uint64_t *nmaps);
void vrdma_window_unmap(void *w, size_t len);

/* queue.c: map and check a ring that lives in a guest region. */
bool vrdma_hq_fits(uint64_t size, uint64_t offset, uint32_t entries, uint32_t stride,
		   uint32_t min_stride);
int vrdma_hq_map(struct vrdma_guest *g, struct vrdma_hq *q, uint32_t shm, uint64_t offset,
		 uint32_t entries, uint32_t stride, uint32_t min_stride);
/* The queue's object is gone: its region may go when the guest revokes it. */
void vrdma_hq_unmap(struct vrdma_guest *g, struct vrdma_hq *q);

/* qpn.c: the guest's QPs by real QP number; the caller holds g->lock. */
int vrdma_qpn_add(struct vrdma_guest *g, struct vrdma_qp *qp);	/* 0 or -ENOMEM */
void vrdma_qpn_del(struct vrdma_guest *g, struct vrdma_qp *qp);
struct vrdma_qp *vrdma_qpn_find(struct vrdma_guest *g, uint32_t qpn);

/* relay.c: one pass over a guest's active queues, within its budget; returns the work
 * done (WQEs + CQEs moved), or -EBUSY when a control call holds the guest (try again
 * soon). */
int vrdma_relay_guest(struct vrdma_guest *g);
/* on: before the relay sleeps, park every queue of the guest (NEED_WAKEUP on the rings it
 * produces into, the real CQs armed), each looked at once more afterwards. off: make every
 * queue active again (a guest with no doorbell, after the relay woke up). */
bool vrdma_relay_need_wakeup(struct vrdma_guest *g, bool on);	/* false: busy, not done */
/* Relay thread only: the guest's doorbell rang (its next pass looks at its parked rings);
 * read the real CQs' completion events (their CQs become active on the next pass). */
void vrdma_relay_kick(struct vrdma_guest *g);
/* Post the guest's published sends before a control call destroys an object a WQE may
 * name (AH, MW, MR); caller holds g->lock. */
void vrdma_relay_drain_sends(struct vrdma_guest *g);
/* A QP going to RESET: its published WQEs posted before (after false), what is left in its
 * rings discarded after (after true); caller holds g->lock. */
void vrdma_relay_qp_reset(struct vrdma_guest *g, struct vrdma_qp *qp, bool after);
void vrdma_relay_cq_events(struct vrdma_guest *g);
/* Schedule queue q of the guest (the caller holds g->lock) as active or parked; queue.c
 * takes it off the schedule when it unmaps it. */
void vrdma_sched_add(struct vrdma_guest *g, struct vrdma_hq *q, enum vrdma_qkind kind,
		     bool parked);

/* relay_thread.c: one thread serving many guests, spinning for a bounded budget after
 * the last work, then sleeping until a guest kicks or a real CQ has an event. */
struct vrdma_relay;
struct vrdma_relay_stats {
	uint64_t passes, sleeps, wakeups, spin_ns, work;
};
int vrdma_relay_start(struct vrdma_relay **out, uint64_t spin_ns);
int vrdma_relay_set_priority(struct vrdma_relay *r, int prio);
void vrdma_relay_stop(struct vrdma_relay *r);
int vrdma_relay_add(struct vrdma_relay *r, struct vrdma_guest *g, int doorbell_fd);
void vrdma_relay_remove(struct vrdma_relay *r, struct vrdma_guest *g);
void vrdma_relay_get_stats(struct vrdma_relay *r, struct vrdma_relay_stats *s);
pid_t vrdma_relay_tid(struct vrdma_relay *r);

/* Reserved fields must be zero in this ABI version. */
static inline bool vrdma_zero(const void *p, size_t n)
{
	const uint8_t *b = p;

	for (size_t i = 0; i < n; i++)
		if (b[i])
			return false;
	return true;
}

#endif /* VBUS_VRDMA_HOST_H */
