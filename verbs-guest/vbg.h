/* SPDX-License-Identifier: MIT */
/*
 * The guest verbs library (libvbus-verbs.so): presents the vrdma devices of a vbus to
 * unmodified libibverbs programs (docs/verbs-guest.md). Loaded with LD_PRELOAD by
 * vbus-run; every ibv_* function that touches a device's objects is defined here and
 * forwards to the real libibverbs when the object is not one of ours.
 *
 * Objects embed the public rdma-core structure first and are recovered with to_*().
 * Internal functions return 0 or -errno; the verbs conventions (NULL + errno, positive
 * errno) are applied only in the exported functions.
 */
#ifndef VBG_H
#define VBG_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <infiniband/verbs.h>
#include <vbus/libvbus.h>
#include <vbus/vrdma.h>
#include <vbus/vrdma-verbs.h>

#define VBG_MAX_DEVICES	8	/* listed at once */
#define VBG_MAX_KNOWN	64	/* known by name over the process's life (conn.c) */
/* The 48-byte struct the exported ibv_query_port@1.1 fills (rdma-core's compat struct,
 * which the public header only declares). */
#define VBG_COMPAT_PORT_ATTR_SIZE 48
/* rdma-core's private enum ibv_gid_type_sysfs (ibv_query_gid_type@IBVERBS_PRIVATE_34). */
#define VBG_GID_TYPE_SYSFS_IB_ROCE_V1	0
#define VBG_GID_TYPE_SYSFS_ROCE_V2	1
#define VBG_EXPORT	__attribute__((visibility("default")))

/* ---- logging (VBUS_VERBS_LOG: 0 quiet, 1 errors (default), 2 info, 3 debug) ---- */
extern int vbg_log_level;
void vbg_log(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
#define vbg_err(...)	vbg_log(1, __VA_ARGS__)
#define vbg_info(...)	vbg_log(2, __VA_ARGS__)
#define vbg_dbg(...)	vbg_log(3, __VA_ARGS__)
/* An unsupported verb: EOPNOTSUPP, and one log line per verb. */
#define vbg_unsupported(name) ({ static int _once; \
	if (!_once++) { vbg_err("%s is not supported on vbus devices (EOPNOTSUPP)", name); } \
	EOPNOTSUPP; })

/* ---- the real libibverbs, resolved once (real.c) ---- */
struct vbg_real {
	struct ibv_device **(*get_device_list)(int *);
	void (*free_device_list)(struct ibv_device **);
	__be64 (*get_device_guid)(struct ibv_device *);
	int (*get_device_index)(struct ibv_device *);
	struct ibv_context *(*open_device)(struct ibv_device *);
	int (*close_device)(struct ibv_context *);
	int (*query_device)(struct ibv_context *, struct ibv_device_attr *);
	int (*query_port)(struct ibv_context *, uint8_t, struct _compat_ibv_port_attr *);
	int (*query_gid)(struct ibv_context *, uint8_t, int, union ibv_gid *);
	int (*query_gid_ex)(struct ibv_context *, uint32_t, uint32_t, struct ibv_gid_entry *,
			    uint32_t, size_t);
	ssize_t (*query_gid_table)(struct ibv_context *, struct ibv_gid_entry *, size_t,
				   uint32_t, size_t);
	int (*query_gid_type)(struct ibv_context *, uint8_t, unsigned int, int *);
	int (*query_pkey)(struct ibv_context *, uint8_t, int, __be16 *);
	struct ibv_pd *(*alloc_pd)(struct ibv_context *);
	int (*dealloc_pd)(struct ibv_pd *);
	struct ibv_mr *(*reg_mr)(struct ibv_pd *, void *, size_t, int);
	struct ibv_mr *(*reg_mr_iova)(struct ibv_pd *, void *, size_t, uint64_t, int);
	struct ibv_mr *(*reg_mr_iova2)(struct ibv_pd *, void *, size_t, uint64_t, unsigned int);
	int (*rereg_mr)(struct ibv_mr *, int, struct ibv_pd *, void *, size_t, int);
	int (*dereg_mr)(struct ibv_mr *);
	struct ibv_comp_channel *(*create_comp_channel)(struct ibv_context *);
	int (*destroy_comp_channel)(struct ibv_comp_channel *);
	struct ibv_cq *(*create_cq)(struct ibv_context *, int, void *, struct ibv_comp_channel *,
				    int);
	int (*resize_cq)(struct ibv_cq *, int);
	int (*destroy_cq)(struct ibv_cq *);
	int (*get_cq_event)(struct ibv_comp_channel *, struct ibv_cq **, void **);
	void (*ack_cq_events)(struct ibv_cq *, unsigned int);
	int (*get_async_event)(struct ibv_context *, struct ibv_async_event *);
	void (*ack_async_event)(struct ibv_async_event *);
	struct ibv_srq *(*create_srq)(struct ibv_pd *, struct ibv_srq_init_attr *);
	int (*modify_srq)(struct ibv_srq *, struct ibv_srq_attr *, int);
	int (*query_srq)(struct ibv_srq *, struct ibv_srq_attr *);
	int (*destroy_srq)(struct ibv_srq *);
	struct ibv_qp *(*create_qp)(struct ibv_pd *, struct ibv_qp_init_attr *);
	int (*modify_qp)(struct ibv_qp *, struct ibv_qp_attr *, int);
	int (*query_qp)(struct ibv_qp *, struct ibv_qp_attr *, int, struct ibv_qp_init_attr *);
	int (*destroy_qp)(struct ibv_qp *);
	struct ibv_qp_ex *(*qp_to_qp_ex)(struct ibv_qp *);
	struct ibv_ah *(*create_ah)(struct ibv_pd *, struct ibv_ah_attr *);
	int (*destroy_ah)(struct ibv_ah *);
	int (*attach_mcast)(struct ibv_qp *, const union ibv_gid *, uint16_t);
	int (*detach_mcast)(struct ibv_qp *, const union ibv_gid *, uint16_t);
	int (*query_ece)(struct ibv_qp *, struct ibv_ece *);
	int (*set_ece)(struct ibv_qp *, struct ibv_ece *);
	int (*query_qp_data_in_order)(struct ibv_qp *, enum ibv_wr_opcode, uint32_t);
	struct ibv_mr *(*reg_dmabuf_mr)(struct ibv_pd *, uint64_t, size_t, uint64_t, int, int);
	struct ibv_context *(*import_device)(int);
	struct ibv_pd *(*import_pd)(struct ibv_context *, uint32_t);
	void (*unimport_pd)(struct ibv_pd *);
	struct ibv_mr *(*import_mr)(struct ibv_pd *, uint32_t);
	void (*unimport_mr)(struct ibv_mr *);
	struct ibv_dm *(*import_dm)(struct ibv_context *, uint32_t);
	void (*unimport_dm)(struct ibv_dm *);
};
extern struct vbg_real vbg_real;
void vbg_real_init(void);

/* ---- the bus connection and the devices on it (conn.c) ---- */
struct vbg_device {
	struct ibv_device dev;		/* first: what the program sees */
	char pad[1024];			/* zeroed: code such as mlx5dv_is_supported reads past */
	char bus_name[32];		/* the vbus device name (vrdma0) */
	uint64_t guid;			/* node GUID as the host sent it, once a context saw it */
	bool guid_known;
	bool listed;			/* in the last enumeration (conn.c, under its lock) */
};

struct vbus_conn *vbg_conn(void);	/* NULL if the bus is not reachable */
/* devnode.c: /dev/infiniband/<dev_name> placeholders in vbus-run's private tmpfs */
void vbg_devnodes_make(struct vbg_device **devs, int n);
/* The vbus devices, connecting on first use; returns how many. */
int vbg_devices(struct vbg_device **devs);
bool vbg_is_device(const struct ibv_device *dev);

/* ---- shared memory (shm.c): a memfd handed to the device with DEVSHM ---- */
struct vbg_shm {
	void *base;
	size_t size;
	uint32_t id;			/* 0: plain memory of ours (kernel backend) */
};
struct vbg_context;
/* Memory for a context's queues: a DEVSHM region (relay backend) or, on the kernel
 * backend, anonymous memory that the module pins. 0 or -errno. */
int vbg_shm_new(struct vbg_context *ctx, size_t size, const char *name, struct vbg_shm *s);
void vbg_shm_free(struct vbg_shm *s);
/* What a payload's (shm, offset) says for byte `off` of s: the region's offset, or on the
 * kernel backend (shm 0) our own address. */
static inline uint64_t vbg_shm_off(const struct vbg_shm *s, size_t off)
{
	return s->id ? off : (uint64_t)(uintptr_t)s->base + off;
}

/* ---- contexts (device.c) ---- */
struct vbg_qp;
struct vbg_cq;
struct vbg_srq;

/* An async event queued on a context (async.c). */
struct vbg_async {
	uint32_t type;			/* enum ibv_event_type */
	uint32_t handle;		/* QP or CQ handle, 0 for port and device events */
	uint32_t port;
};
#define VBG_ASYNC_MAX	64

/* The port's GID table, read at open and again after IBV_EVENT_GID_CHANGE (gid.c). */
struct vbg_gid_cache {
	pthread_mutex_t lock;
	bool stale;			/* a GID_CHANGE event came: read it again first */
	bool per_call;			/* the host has no QUERY_GID_TABLE: one QUERY_GID each */
	uint32_t tbl_len;		/* the port's gid_tbl_len */
	uint32_t n;			/* valid entries, by index */
	struct vrdma_gid_entry *e;
	int64_t *ndev;			/* e[k]'s ndev_ifindex, asked once; -1: not yet */
};

struct vbg_context {
	struct verbs_context vctx;	/* ends with the struct ibv_context the program gets */
	uint32_t handle;		/* the DEVOPEN instance */
	int doorbell;			/* eventfd: kicks the relay (DEVSIG to host) */
	int kfd;			/* kernel backend: the module's descriptor; else -1 */
	bool kthread_on;		/* kernel backend: kthread runs (stopped by cancel) */
	pthread_t kthread;		/* kernel backend: reads the module's async events */
	struct vrdma_hello_out hello;
	uint32_t qp_types, access;	/* the whitelist: hello's, or all of it (version 2) */
	struct vrdma_query_device_out dev_attr;
	struct vrdma_query_device_ex_out dev_ex;
	struct vbg_gid_cache gids;	/* the port's GID table (gid.c) */
	pthread_mutex_t lock;		/* the tables below */
	struct vbg_qp **qps;		/* by handle index, for retiring send WQEs */
	uint32_t nqps;
	struct vbg_cq *cqs;		/* all CQs, for async events */
	struct vbg_srq *srqs;		/* all SRQs, for async events */
	struct vbg_async ev[VBG_ASYNC_MAX];	/* queued async events */
	uint32_t ev_head, nev;
	bool dead;			/* IBV_EVENT_DEVICE_FATAL was queued: no more posting */
	struct vbg_context *next;	/* the list of open contexts */
};

static inline struct vbg_context *to_vctx(struct ibv_context *c)
{
	return (struct vbg_context *)((char *)c - offsetof(struct vbg_context, vctx.context));
}

bool vbg_is_context(const struct ibv_context *c);
/* Run STMT with `ctx` bound to each open context, under the list's lock. */
extern pthread_mutex_t vbg_ctx_lock;
extern struct vbg_context *vbg_contexts;
#define vbg_for_each_context(ctx, stmt) do { \
	pthread_mutex_lock(&vbg_ctx_lock); \
	for (struct vbg_context *ctx = vbg_contexts; ctx; ctx = ctx->next) { stmt; } \
	pthread_mutex_unlock(&vbg_ctx_lock); } while (0)
/* async.c: start the event thread (once). */
void vbg_async_start(void);
/* async.c, kernel backend: a thread that reads the module's events for ctx; 0 or -errno.
 * Stopped and joined before the descriptor closes. */
int vbg_async_kernel_start(struct vbg_context *ctx);
void vbg_async_kernel_stop(struct vbg_context *ctx);
/* A DEVCALL on the context's device instance; 0 or -errno. */
int vbg_call(struct vbg_context *ctx, uint32_t fn, const void *in, size_t inlen, void *out,
	     size_t outmax);
/* The same, with an answer of any length up to outmax (*n bytes). */
int vbg_call_n(struct vbg_context *ctx, uint32_t fn, const void *in, size_t inlen, void *out,
	       size_t outmax, size_t *n);
/* Ring the doorbell of queue owner `db` (a QP or SRQ handle): the relay's eventfd, or on
 * the kernel backend the module's doorbell, which posts in this call. */
void vbg_kick(struct vbg_context *ctx, uint32_t db);
int vbg_qp_table_set(struct vbg_context *ctx, uint32_t handle, struct vbg_qp *qp);
struct vbg_qp *vbg_qp_lookup(struct vbg_context *ctx, uint32_t handle);

/* ---- objects ---- */
struct vbg_pd {
	struct ibv_pd pd;
	uint32_t handle;
};

struct vbg_ah {
	struct ibv_ah ah;
	uint32_t handle;
};

struct vbg_mr {
	struct ibv_mr mr;
	uint32_t handle;
};

struct vbg_mw {
	struct ibv_mw mw;
	uint32_t handle;
};

static inline struct vbg_mw *to_vmw(struct ibv_mw *m) { return (struct vbg_mw *)m; }
/* mw.c: the context ops. */
struct ibv_mw *vbg_alloc_mw(struct ibv_pd *pd, enum ibv_mw_type type);
int vbg_dealloc_mw(struct ibv_mw *mw);
int vbg_bind_mw(struct ibv_qp *qp, struct ibv_mw *mw, struct ibv_mw_bind *b);

struct vbg_cq;

struct vbg_channel {
	struct ibv_comp_channel ch;	/* ch.fd is an eventfd the relay kicks */
	uint32_t sig;			/* its DEVSIG id */
	struct vbg_cq *cqs;		/* the CQs that report to it, under the context lock */
};

/* A queue in shared memory: the ring header, then entries slots of stride bytes. */
struct vbg_queue {
	struct vrdma_ring *ring;
	uint8_t *slots;
	uint32_t entries, stride;
	uint32_t db;			/* the QP or SRQ handle its doorbell names */
};

struct vbg_cq {
	union {				/* first: ibv_cq is a prefix of ibv_cq_ex */
		struct ibv_cq cq;
		struct ibv_cq_ex cqx;	/* for CQs made by ibv_create_cq_ex */
	};
	uint32_t handle;
	struct vbg_shm shm;
	struct vbg_queue q;
	uint32_t cons;			/* our consumer index */
	pthread_spinlock_t lock;
	bool armed;			/* armed by the program; the relay clears ring->armed */
	bool pending;			/* fired, then re-armed before ibv_get_cq_event took it */
	uint32_t events_reported;	/* by ibv_get_cq_event, under cq.mutex */
	struct vrdma_cqe cur;		/* ibv_start_poll/next_poll: the current completion */
	struct vbg_channel *channel;
	struct vbg_cq *chan_next;	/* the channel's list of CQs */
	struct vbg_cq *ctx_next;	/* the context's list of CQs, under the context lock */
};

static inline struct vbg_cq *to_vcq(struct ibv_cq *c) { return (struct vbg_cq *)c; }

struct vbg_qp {
	struct ibv_qp_ex qpx;		/* qpx.qp_base is the struct ibv_qp */
	uint32_t handle;
	struct vbg_shm shm;
	struct vbg_queue sq, rq;
	struct ibv_qp_cap cap;		/* granted (what the rings hold) */
	uint64_t send_ops;		/* IBV_QP_EX_WITH_* allowed on the ibv_wr_* API */
	pthread_spinlock_t lock;
	/* send queue, guarded by lock */
	uint32_t sprod;			/* WQEs published */
	uint32_t sretired;		/* retired, from sq_retired of send completions */
	uint32_t wr_prod;		/* ibv_wr_*: WQEs built since wr_start, not published */
	uint8_t *wr_cur;		/* ibv_wr_*: the WQE being built, or NULL */
	int wr_err;			/* ibv_wr_*: first error since wr_start */
	enum ibv_qp_state state;	/* as the host last confirmed it */
	/* receive queue (none with an SRQ) */
	uint32_t rprod, rdone;
	struct vbg_srq *srq;
	struct vbg_cq *scq, *rcq;
	bool sq_sig_all;
};

static inline struct vbg_qp *to_vqp(struct ibv_qp *q) { return (struct vbg_qp *)q; }

struct vbg_srq {
	struct ibv_srq srq;		/* first: what the program sees */
	uint32_t handle;
	struct vbg_shm shm;
	struct vbg_queue q;		/* ring->retired: WQEs completed, written by the host */
	pthread_spinlock_t lock;	/* posting */
	uint32_t prod;			/* WQEs published */
	uint32_t max_wr, max_sge;	/* granted */
	struct vbg_srq *ctx_next;	/* the context's list of SRQs, under the context lock */
};

static inline struct vbg_srq *to_vsrq(struct ibv_srq *s) { return (struct vbg_srq *)s; }
/* srq.c */
struct ibv_srq *vbg_create_srq_ex(struct ibv_context *c, struct ibv_srq_init_attr_ex *a);
struct vbg_srq *vbg_srq_lookup(struct vbg_context *ctx, uint32_t handle);

/* Memory registration support (memory.c): describe [addr, addr + len) as pieces of
 * DEVSHM regions, moving pages onto memfds where they are not yet. */
int vbg_mem_pieces(void *addr, size_t len, struct vrdma_mr_piece *p, uint32_t max,
		   uint32_t *n);
/* A new memfd chunk of `size` bytes for the arena (arena.c), mapped at *base: a piece from
 * the start, handed to the bus at its first registration. 0 or -errno. */
int vbg_mem_chunk(size_t size, void **base);
/* A kernel-backed device opened: the arena goes off if it has served nothing (arena.c). */
void vbg_arena_kernel_backend(void);

/* The legacy and extended operation tables (ops.c). */
void vbg_fill_ops(struct vbg_context *ctx);
int vbg_poll_cq(struct ibv_cq *cq, int n, struct ibv_wc *wc);
/* poll.c, under cq->lock: completions available (-1: the ring is broken), and taking the
 * next one (copied to *e, its work retired, our index advanced, not yet published). */
int64_t vbg_cq_avail(struct vbg_cq *cq);
void vbg_cq_take(struct vbg_cq *cq, struct vrdma_cqe *e);
void vbg_cq_publish(struct vbg_cq *cq);
/* cq.c: a CQ on ctx, or NULL with errno. */
struct vbg_cq *vbg_cq_create(struct ibv_context *c, int cqe, void *cq_context,
			     struct ibv_comp_channel *channel, int comp_vector);
struct ibv_cq_ex *vbg_create_cq_ex(struct ibv_context *c, struct ibv_cq_init_attr_ex *a);
int vbg_req_notify_cq(struct ibv_cq *cq, int solicited_only);
int vbg_post_send(struct ibv_qp *qp, struct ibv_send_wr *wr, struct ibv_send_wr **bad);
int vbg_post_recv(struct ibv_qp *qp, struct ibv_recv_wr *wr, struct ibv_recv_wr **bad);
int vbg_post_srq_recv(struct ibv_srq *srq, struct ibv_recv_wr *wr, struct ibv_recv_wr **bad);
/* cq.c: ibv_resize_cq on a vbus CQ. */
int vbg_resize_cq(struct vbg_cq *cq, int cqe);
void vbg_wr_ops_init(struct vbg_qp *qp);
struct ibv_qp *vbg_create_qp_ex(struct ibv_context *c, struct ibv_qp_init_attr_ex *a);
/* gid.c: read the table at open (0 or -errno), free it at close, mark it stale. */
int vbg_gid_cache_init(struct vbg_context *ctx);
void vbg_gid_cache_free(struct vbg_context *ctx);
void vbg_gid_cache_stale(struct vbg_context *ctx);
int vbg_query_port_ex(struct ibv_context *c, uint8_t port, struct ibv_port_attr *a, size_t len);
int vbg_query_device_ex(struct ibv_context *c, const struct ibv_query_device_ex_input *in,
			struct ibv_device_attr_ex *a, size_t len);

/* Ring helpers: the guest publishes prod (seq_cst, pairs with the relay's seq_cst store of
 * NEED_WAKEUP before its last pass) and then reads the flags. */
static inline bool vbg_publish(struct vrdma_ring *r, uint32_t prod)
{
	__atomic_store_n(&r->prod, prod, __ATOMIC_SEQ_CST);
	return __atomic_load_n(&r->flags, __ATOMIC_SEQ_CST) & VRDMA_RING_NEED_WAKEUP;
}

uint32_t vbg_pow2(uint32_t x);

#endif /* VBG_H */
