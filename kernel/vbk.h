/* SPDX-License-Identifier: GPL-2.0 */
/*
 * vbus_vrdma: the kernel backend of the vrdma device (docs/kernel.md).
 *
 * One struct vbk_guest per attachment (a guest descriptor). Its objects are kernel verbs
 * objects on the backing device, named by the guest with the handles of <vbus/vrdma.h>.
 *
 * Attachments form trees (docs/nesting.md): one made on the admin descriptor is a root;
 * VBK_IOC_CHILD on an attachment makes a child, whose objects are charged to it and to
 * every ancestor (t_objs, t_pinned), and which is revoked before its parent is.
 *
 * Locking, outermost first:
 *   vbk_owner.lock    (mutex)  an admin descriptor's attachments, or an attachment's
 *                              children (subclass: the attachment's depth, so that a
 *                              subtree's revocation nests them parent first)
 *   vbk_guest.ctl     (mutex)  control calls and revocation: one at a time per guest
 *   vbk_guest.tbl     (rwsem)  the object table: written to add or remove an object,
 *                              read by the data path (doorbell, poll) for its whole call
 *   vbk_queue.lock    (spin)   one ring's consumer or producer state, taken with BHs off
 *   vbk_guest.ev_lock (spin, irqsave) the async event queue
 *   vbk_guest.comp_lock (spin, irqsave) a foreign attachment's list of CQs with pending
 *                              completions; no lock of ours is taken under it
 * Real completion and event handlers run in softirq context and take only ev_lock, a
 * CQ ring's lock (a process guest's armed CQ) or comp_lock (a foreign attachment's CQ).
 * A foreign attachment's completion worker (vbk_foreign.c) takes tbl for reading, then
 * CQ (and SRQ) ring locks, and comp_lock alone; never ctl or an owner's lock, which
 * revocation holds when it cancels the worker.
 */
#ifndef VBK_H
#define VBK_H

#include <linux/types.h>
#include <linux/mutex.h>
#include <linux/rwsem.h>
#include <linux/spinlock.h>
#include <linux/wait.h>
#include <linux/xarray.h>
#include <linux/list.h>
#include <linux/kref.h>
#include <linux/eventfd.h>
#include <linux/workqueue.h>
#include <rdma/ib_verbs.h>
#include <vbus/vrdma.h>
#include <vbus/vrdma-kernel.h>

#define VBK_MAX_SGE		32
#define VBK_MAX_INLINE		256
#define VBK_MAX_QUEUE		32767
#define VBK_MAX_STRIDE		4096
#define VBK_MAX_RING_ENTRIES	65536
#define VBK_EVQ_LEN		64
#define VBK_GEN_BITS		(32 - VRDMA_HANDLE_INDEX_BITS)

enum vbk_obj_type {
	VBK_OBJ_FREE = 0,
	VBK_OBJ_PD,
	VBK_OBJ_MR,
	VBK_OBJ_CQ,
	VBK_OBJ_QP,
	VBK_OBJ_AH,
	VBK_OBJ_SRQ,
};

struct vbk_obj {
	u16 type;
	u16 gen;
	u32 users;			/* objects that depend on this one */
	void *p;
};

/* A ring in the guest's memory, pinned and mapped into the kernel. */
struct vbk_queue {
	struct vrdma_ring *ring;
	u8 *slots;
	u32 entries;			/* power of two */
	u32 stride;
	u32 idx;			/* our copy of the index we own (cons or prod) */
	bool broken;
	struct page **pages;
	unsigned int npages;
	void *vaddr;
	spinlock_t lock;
};

struct vbk_admin;

/* Attachments made through one descriptor: the admin one, or a parent attachment. */
struct vbk_owner {
	struct mutex lock;
	struct list_head guests;	/* vbk_guest.owner_node */
	u32 n;
	u32 depth;			/* lockdep subclass of lock */
	bool closed;			/* revoked or released: no more are made */
};

struct vbk_guest {
	struct kref ref;		/* the descriptor, and one per child */
	struct vbk_owner *owner;	/* the list it is on: its admin's, or its parent's kids */
	struct list_head owner_node;	/* owner->guests, under owner->lock */
	struct vbk_admin *admin;	/* a root: holds a reference; a child: NULL */
	struct vbk_guest *parent;	/* a child: holds a reference; a root: NULL */
	u32 depth;			/* 0: a root */
	struct vbk_owner kids;		/* its children */
	atomic_t t_objs;		/* its and its subtree's handles, against max_objects */
	atomic64_t t_pinned;		/* its and its subtree's bytes, against max_pinned */
	struct list_head all_node;	/* vbk_guests, under vbk_guests_lock */
	struct ib_device *dev;		/* referenced until revoked */
	u32 port;
	u32 gid_index;
	u32 max_objects;
	u32 qp_types;			/* the whitelist: VRDMA_QPT_BIT(IB_QPT_*) */
	u32 access;			/* the whitelist: IB_ACCESS_* */
	u32 guest_id;
	u64 tag;			/* vbusd's name for it (VBK_IOC_REVOKE) */
	u64 max_pinned;
	struct pid *user;		/* of its first control call (VBK_IOC_TREE), referenced */

	struct mutex ctl;
	struct rw_semaphore tbl;
	struct vbk_obj *objs;
	u32 nobjs, live;
	u64 pinned;			/* MR and ring bytes */
	struct xarray mrs;		/* lkey -> struct vbk_mr, under tbl */
	bool dead;			/* revoked: every call is -EIO */

	spinlock_t ev_lock;
	wait_queue_head_t ev_wait;
	struct vbk_event evq[VBK_EVQ_LEN];
	u32 ev_head, nev;
	bool fatal_sent;

	struct ib_event_handler ib_ev;	/* port events of the backing device */
	bool ib_ev_registered;

	/* VBK_ATTACH_F_FOREIGN (vbk_foreign.c): vbusd's attachment for a VM. mm and ram are
	 * referenced from attach to the last put; comp_* serve the pushed completions.
	 */
	bool foreign;
	struct mm_struct *mm;		/* the only address space whose ioctls are taken */
	struct file *ram;		/* the VM's RAM: every pinned range is a mapping of it */
	spinlock_t comp_lock;
	struct list_head comp_pending;	/* vbk_cq.comp_node: CQs the worker must look at */
	struct delayed_work comp_work;
	/* its doorbell eventfd (vbk_dbfd.c): db_ctx and the wait entry under ctl */
	struct eventfd_ctx *db_ctx;	/* NULL: none */
	wait_queue_entry_t db_wait;
	poll_table db_pt;
	atomic_t db_queued;		/* a drain is queued and has not started */
	struct callback_head db_task;
	struct work_struct db_work;
	atomic64_t n_db_wake, n_db_worker;

	/* counters (atomic64 where the data path updates them) */
	atomic64_t n_wqe, n_cqe, n_cqe_lost, n_doorbell, n_poll, n_event, n_error;
	/* charges refused by a max-objects or max-pinned quota (its own or an ancestor's) */
	atomic64_t n_quota_objects, n_quota_pinned;
};

struct vbk_pd {
	struct ib_pd *pd;
};

struct vbk_mr {
	struct ib_mr *mr;
	u32 pd;				/* handle */
	u64 length;
};

struct vbk_ah {
	struct ib_ah *ah;
	u32 pd;
};

struct vbk_cq {
	struct ib_cq *cq;
	struct vbk_guest *g;
	u32 handle;
	struct vbk_queue q;		/* we produce */
	u32 cqe;			/* the guest's CQ holds this many (what rxe gave) */
	u32 need;			/* its queues' depths: the real CQ holds cqe + need */
	atomic_t pending;		/* WQEs posted on its queues, not retired (a bound) */
	atomic_t push;			/* its completions are pushed while it may overrun */
	struct eventfd_ctx *channel;	/* NULL: none */
	/* pushed completions (a foreign attachment's CQs always, vbk_foreign.c): on
	 * g->comp_pending (under comp_lock; only while in the table) */
	struct list_head comp_node;
	bool comp_dead;			/* being freed: never listed again */
};

struct vbk_srq {
	struct ib_srq *srq;
	struct vbk_guest *g;
	u32 handle;
	u32 pd;
	struct vbk_queue q;		/* we consume */
	u32 max_wr, max_sge;
	u64 *wrid;			/* q.entries slots */
	u32 *free;			/* stack of free slots */
	u32 nfree;
	u32 done;
	bool need_event;		/* broken: SRQ_ERR after the doorbell */
	struct list_head qps;		/* QPs using it, for completions (under tbl) */
	struct ib_sge *sge;		/* scratch, under q.lock */
	u8 *slot;
};

struct vbk_qp {
	struct ib_qp *qp;
	struct vbk_guest *g;
	u32 handle;
	u32 pd, send_cq, recv_cq, srq_h;
	struct vbk_cq *scq, *rcq;	/* send_cq's and recv_cq's (held: vbk_obj_use) */
	u32 sneed, rneed;		/* what their real CQs grew by for it */
	u8 qp_type;			/* IB_QPT_* */
	struct vbk_queue sq, rq;	/* we consume */
	struct vrdma_qp_cap cap;	/* granted */
	u64 *swrid, *rwrid;
	u32 smask, rmask;
	u32 sposted, sretired;		/* send WQEs posted to the real QP and completed */
	u32 rposted, rdone;
	u32 qkey;			/* the QP's Q_Key, for UD sends with a privileged one */
	bool need_err;			/* a broken queue: to ERR after the doorbell */
	bool in_err;			/* the QP is in ERR: receives are dropped, as natively */
	struct list_head srq_node;	/* srq->qps */
	/* scratch for the doorbell, under sq.lock / rq.lock */
	u8 *sslot, *rslot;
	struct ib_sge *ssge, *rsge;
	u8 *inl;
};

/* WR id of a real work request: kind, a guest handle (30 bits) and a sequence or slot. */
#define VBK_WRID_SEND		0ull
#define VBK_WRID_RECV		1ull
#define VBK_WRID_SRQ		2ull
#define VBK_WRID_REFUSED	3ull	/* a send standing in for a refused atomic (vbk_post.c) */
#define VBK_WRID(kind, h, seq)	((kind) << 62 | ((u64)(h) & 0x3fffffff) << 32 | (u32)(seq))
#define VBK_WRID_KIND(w)	((w) >> 62)
#define VBK_WRID_H(w)		((u32)((w) >> 32) & 0x3fffffff)
#define VBK_WRID_SEQ(w)		((u32)(w))

/* vbk_main.c */
extern struct mutex vbk_guests_lock;
extern struct list_head vbk_guests;
void vbk_admin_put(struct vbk_admin *a);
struct vbk_owner *vbk_admin_get(struct vbk_admin *a);
long vbk_owner_ioctl(struct vbk_owner *o, unsigned int cmd, void __user *up);
struct vbk_guest *vbk_owner_guest(struct vbk_owner *o, u32 guest_id);
#define VBK_TREE_ROOM_MAX	4096	/* VBK_IOC_TREE records per call (all are counted) */
u32 vbk_guest_tree(struct vbk_guest *g, struct vbk_tree_node *out, u32 room);
void vbk_guest_note_user(struct vbk_guest *g);
int vbk_owner_add(struct vbk_owner *o, struct vbk_guest *g, u32 max);
void vbk_owner_del(struct vbk_guest *g);

/* vbk_guest.c */
int vbk_guest_attach(struct vbk_admin *a, const struct vbk_attach *at);
int vbk_refuse(struct vbk_guest *g, const char *what, u32 value);
/* The access flags of @access that the whitelist knows and g's policy took away. */
static inline u32 vbk_wl_lacks(const struct vbk_guest *g, u32 access)
{
	return access & VRDMA_WL_ACCESS & ~g->access;
}
void vbk_guest_revoke(struct vbk_guest *g);
void vbk_guest_put(struct vbk_guest *g);
struct vbk_guest *vbk_guest_new(struct ib_device *dev, u32 port, u32 depth);
int vbk_guest_publish(struct vbk_guest *g, struct vbk_owner *o, u32 max);
void vbk_event(struct vbk_guest *g, u32 type, u32 handle, u32 port);

/* vbk_child.c: VBK_IOC_CHILD, and the charges of a subtree to its ancestors */
int vbk_guest_child(struct vbk_guest *parent, const struct vbk_child __user *up);
int vbk_charge(struct vbk_guest *g, int objs, u64 bytes);
void vbk_uncharge(struct vbk_guest *g, int objs, u64 bytes);

/* vbk_res.c: up to room records of g's objects into out; the number of live objects. */
u32 vbk_guest_res(struct vbk_guest *g, struct vbk_res_obj *out, u32 room);

/* vbk_call.c */
long vbk_call(struct vbk_guest *g, const struct vbk_call *c);

/* vbk_obj.c: the caller holds ctl; new/free take tbl for writing */
int vbk_obj_new(struct vbk_guest *g, enum vbk_obj_type type, void *p, u32 *h);
void *vbk_obj_get(struct vbk_guest *g, u32 h, enum vbk_obj_type type, int *err);
struct vbk_obj *vbk_obj_slot(struct vbk_guest *g, u32 h);
void vbk_obj_free(struct vbk_guest *g, u32 h);
void vbk_obj_destroy_all(struct vbk_guest *g);
void vbk_obj_use(struct vbk_guest *g, u32 h, int d);
static inline u32 vbk_h30(u32 h) { return h & 0x3fffffff; }

/* Reserved fields must be zero. */
static inline bool vbk_zero(const void *p, size_t n)
{
	return !memchr_inv(p, 0, n);
}

/* Handlers, one per DEVCALL function: in and out are kernel copies of checked size. */
#define VBK_HANDLER(name) \
	int vbk_do_##name(struct vbk_guest *g, const void *in, u32 inlen, void *out)
VBK_HANDLER(hello);
VBK_HANDLER(query_device);
VBK_HANDLER(query_port);
VBK_HANDLER(query_gid);
VBK_HANDLER(query_device_ex);
VBK_HANDLER(query_gid_table);
VBK_HANDLER(query_pkey);
VBK_HANDLER(alloc_pd);
VBK_HANDLER(dealloc_pd);
VBK_HANDLER(reg_mr);
VBK_HANDLER(dereg_mr);
VBK_HANDLER(create_cq);
VBK_HANDLER(destroy_cq);
VBK_HANDLER(resize_cq);
VBK_HANDLER(arm_cq);
VBK_HANDLER(create_qp);
VBK_HANDLER(modify_qp);
VBK_HANDLER(query_qp);
VBK_HANDLER(destroy_qp);
VBK_HANDLER(create_ah);
VBK_HANDLER(destroy_ah);
VBK_HANDLER(create_srq);
VBK_HANDLER(modify_srq);
VBK_HANDLER(query_srq);
VBK_HANDLER(destroy_srq);
VBK_HANDLER(alloc_mw);
VBK_HANDLER(dealloc_mw);

/* Object teardown (the object is already out of the table). */
void vbk_pd_free(struct vbk_guest *g, struct vbk_pd *pd);
void vbk_mr_free(struct vbk_guest *g, struct vbk_mr *mr);
void vbk_cq_free(struct vbk_guest *g, struct vbk_cq *cq);
void vbk_qp_free(struct vbk_guest *g, struct vbk_qp *qp);
void vbk_srq_free(struct vbk_guest *g, struct vbk_srq *srq);
void vbk_ah_free(struct vbk_guest *g, struct vbk_ah *ah);

/* vbk_ah.c: a guest address vector to a kernel one under the guest's policy. */
int vbk_ah_attr_in(struct vbk_guest *g, struct rdma_ah_attr *a, const struct vrdma_ah_attr *v);
void vbk_ah_attr_out(struct vrdma_ah_attr *v, const struct rdma_ah_attr *a);

/* vbk_ring.c */
int vbk_queue_map(struct vbk_guest *g, struct vbk_queue *q, u32 shm, u64 uaddr, u32 entries,
		  u32 stride, u32 min_stride);
void vbk_queue_unmap(struct vbk_guest *g, struct vbk_queue *q);
void vbk_queue_break(struct vbk_guest *g, struct vbk_queue *q);
s64 vbk_queue_pending(struct vbk_queue *q);

/* vbk_post.c: the doorbell */
void vbk_drain_before_destroy(struct vbk_guest *g);
long vbk_doorbell(struct vbk_guest *g, u32 handle);
/* vbk_poll.c */
long vbk_poll_cq(struct vbk_guest *g, u32 handle);
long vbk_cq_move(struct vbk_guest *g, struct vbk_cq *cq);
void vbk_qp_to_err(struct vbk_guest *g, struct vbk_qp *qp);
void vbk_cq_comp(struct ib_cq *cq, void *ctx);
void vbk_cq_fire(struct vbk_cq *cq);
void vbk_cq_grow(struct vbk_guest *g, struct vbk_cq *cq, u32 depth);
void vbk_cq_shrink(struct vbk_cq *cq, u32 depth);
void vbk_cq_retire(struct vbk_cq *cq, u32 before, u32 now);
bool vbk_qp_retire(u32 *count, u32 to, struct vbk_cq *cq);
void vbk_cq_watch(struct vbk_cq *cq);
bool vbk_cq_keep_push(struct vbk_cq *cq);

/* vbk_foreign.c: VBK_ATTACH_F_FOREIGN */
void vbk_foreign_init(struct vbk_guest *g);
int vbk_foreign_attach(struct vbk_guest *g, int ram_fd);
void vbk_foreign_put(struct vbk_guest *g);
void vbk_foreign_stop(struct vbk_guest *g);
int vbk_foreign_range_ok(struct vbk_guest *g, u64 addr, u64 len);
long vbk_foreign_pin(struct vbk_guest *g, u64 first, unsigned int npages, struct page **pages);
int vbk_foreign_cq_arm(struct vbk_cq *cq);
/* vbk_dbfd.c: VBK_IOC_DOORBELL_FD */
void vbk_dbfd_init(struct vbk_guest *g);
void vbk_dbfd_stop(struct vbk_guest *g);
long vbk_dbfd_set(struct vbk_guest *g, int fd);
int vbk_dbfd_module_init(void);
void vbk_dbfd_module_exit(void);
void vbk_foreign_cq_kick(struct vbk_cq *cq);
void vbk_foreign_cq_unlist(struct vbk_cq *cq);

#endif /* VBK_H */
