// SPDX-License-Identifier: MIT
/*
 * Devices and contexts: the device list (vbus devices first, real ones hidden unless
 * VBUS_SHOW_REAL=1), opening and closing a vbus device (DEVOPEN + the vrdma HELLO), and
 * the queries. Each function forwards untouched to the real libibverbs when the device or
 * context is not ours.
 */
#include <endian.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <unistd.h>
#include <vbus/vrdma-kernel.h>
#include <vbus/verbs-nest.h>
#include "vbg.h"

pthread_mutex_t vbg_ctx_lock = PTHREAD_MUTEX_INITIALIZER;
struct vbg_context *vbg_contexts;
#define ctx_lock vbg_ctx_lock
#define contexts vbg_contexts

/* The array handed to the program remembers the real list it includes, if any. */
struct dev_list {
	struct ibv_device **real;
	struct ibv_device *list[];
};

static bool show_real(void)
{
	const char *s = getenv("VBUS_SHOW_REAL");

	return s && *s && strcmp(s, "0");
}

VBG_EXPORT struct ibv_device **ibv_get_device_list(int *num)
{
	struct vbg_device *v[VBG_MAX_DEVICES];
	struct ibv_device **real = NULL;
	struct dev_list *l;
	int nv, nr = 0, k = 0;

	vbg_real_init();
	nv = vbg_devices(v);
	if (show_real() && vbg_real.get_device_list) {
		real = vbg_real.get_device_list(&nr);
		if (!real)
			nr = 0;	/* no RDMA in this kernel (ENOSYS): just ours */
	}
	l = calloc(1, sizeof(*l) + (size_t)(nv + nr + 1) * sizeof(l->list[0]));
	if (!l) {
		if (real)
			vbg_real.free_device_list(real);
		errno = ENOMEM;
		return NULL;
	}
	l->real = real;
	for (int i = 0; i < nv; i++)
		l->list[k++] = &v[i]->dev;
	for (int i = 0; i < nr; i++)
		l->list[k++] = real[i];
	if (num)
		*num = k;
	return l->list;
}

VBG_EXPORT void ibv_free_device_list(struct ibv_device **list)
{
	struct dev_list *l;

	if (!list)
		return;
	l = (struct dev_list *)((char *)list - offsetof(struct dev_list, list));
	if (l->real)
		vbg_real.free_device_list(l->real);
	free(l);
}

VBG_EXPORT __be64 ibv_get_device_guid(struct ibv_device *dev)
{
	if (!vbg_is_device(dev))
		return vbg_real.get_device_guid(dev);
	/* The node GUID is the real device's. Every context learns it (QUERY_DEVICE at open);
	 * before the first one, open one briefly. */
	struct vbg_device *d = (struct vbg_device *)dev;
	struct ibv_context *c;

	if (!__atomic_load_n(&d->guid_known, __ATOMIC_ACQUIRE) && (c = ibv_open_device(dev)))
		ibv_close_device(c);
	return __atomic_load_n(&d->guid_known, __ATOMIC_ACQUIRE) ?
		(__be64)le64toh(__atomic_load_n(&d->guid, __ATOMIC_RELAXED)) : 0;
}

VBG_EXPORT int ibv_get_device_index(struct ibv_device *dev)
{
	if (!vbg_is_device(dev))
		return vbg_real.get_device_index ? vbg_real.get_device_index(dev) : -1;
	return -1;	/* no kernel index: there is no kernel device */
}

bool vbg_is_context(const struct ibv_context *c)
{
	bool found = false;

	pthread_mutex_lock(&ctx_lock);
	for (struct vbg_context *x = contexts; x && !found; x = x->next)
		found = &x->vctx.context == c;
	pthread_mutex_unlock(&ctx_lock);
	return found;
}

/* A vbusd that runs as our guest asks what its own attachment allows, so that it hands
 * its guests nothing wider (docs/nesting.md). */
VBG_EXPORT int vbus_verbs_query_limits(struct ibv_context *c, struct vbus_verbs_limits *out)
{
	struct vbg_context *ctx;

	if (!c || !vbg_is_context(c))
		return -ENODEV;
	ctx = to_vctx(c);
	memset(out, 0, sizeof(*out));
	out->max_objects = le32toh(ctx->hello.max_objects);
	out->gid_index = le32toh(ctx->hello.gid_index);
	out->max_pinned_bytes = le64toh(ctx->hello.max_pinned_bytes);
	out->abi_version = le32toh(ctx->hello.abi_version);
	out->kernel = ctx->kfd >= 0;
	out->dead = __atomic_load_n(&ctx->dead, __ATOMIC_ACQUIRE);
	out->child = ctx->kfd < 0 && vbg_conn() &&
		     (le64toh(vbus_hello_info(vbg_conn())->features) & VBUS_F_CHILD);
	return 0;
}

VBG_EXPORT int vbus_verbs_query_whitelist(struct ibv_context *c, uint32_t *qp_types,
					  uint32_t *access)
{
	if (!c || !vbg_is_context(c))
		return -ENODEV;
	*qp_types = to_vctx(c)->qp_types;
	*access = to_vctx(c)->access;
	return 0;
}

/* A middle vbusd's passthrough on a relay-backend device: a child connection of our
 * attachment, for one guest of its own (docs/nesting.md). The whitelist travels only when
 * it is narrower than our own (a bus of stop 33 takes none: -EOPNOTSUPP then). */
VBG_EXPORT int vbus_verbs_child2(struct ibv_context *c, const struct vbus_verbs_child_req *req,
				 int *fd, char *bus, char *dev, size_t n)
{
	struct vbus_child_in in = { .max_objects = htole32(req->max_objects),
				    .max_pinned_bytes = htole64(req->max_pinned_bytes) };
	struct vbus_conn *conn = vbg_conn();
	struct vbus_child_out o;
	struct vbg_context *ctx;
	int err;

	if (!c || !vbg_is_context(c) || !conn)
		return -ENODEV;
	ctx = to_vctx(c);
	if (req->reserved)
		return -EINVAL;
	if (req->qp_types != ctx->qp_types || req->access != ctx->access) {
		in.flags = htole32(VBUS_CHILD_F_WHITELIST);
		in.qp_types = htole32(req->qp_types);
		in.access = htole32(req->access);
	}
	err = vbus_child(conn, ctx->handle, &in, fd, &o);
	if (!err && ((size_t)snprintf(bus, n, "%s", o.bus) >= n ||
		     (size_t)snprintf(dev, n, "%s", o.dev) >= n)) {
		close(*fd);
		err = -ENAMETOOLONG;
	}
	return err;
}

/* The first form (a vbusd of stop 33): our own whitelist, no device name. */
VBG_EXPORT int vbus_verbs_child(struct ibv_context *c, uint32_t max_objects,
				uint64_t max_pinned_bytes, int *fd, char *bus, size_t busn)
{
	struct vbus_verbs_child_req req = { .max_objects = max_objects,
					    .max_pinned_bytes = max_pinned_bytes };
	char dev[VBUS_NAME_MAX];

	if (!c || !vbg_is_context(c))
		return -ENODEV;
	req.qp_types = to_vctx(c)->qp_types;
	req.access = to_vctx(c)->access;
	return vbus_verbs_child2(c, &req, fd, bus, dev, busn < sizeof(dev) ? busn : sizeof(dev));
}

/* The label this thread's next DEVOPENs carry (a middle vbusd sets it around an open). */
static __thread char open_label[VBUS_LABEL_MAX];

VBG_EXPORT int vbus_verbs_open_label(const char *label)
{
	if (label && strlen(label) >= sizeof(open_label))
		return -EINVAL;
	memset(open_label, 0, sizeof(open_label));
	if (label)
		memcpy(open_label, label, strlen(label));
	return 0;
}

/* A destroying command: on a device that is gone it succeeds (the host has freed the real
 * object, or will when the attachment is revoked), as rdma-core's destroy commands take
 * the EIO of a disassociated context for success. */
static bool destroys(uint32_t fn)
{
	switch (fn) {
	case VRDMA_FN_DEALLOC_PD: case VRDMA_FN_DEREG_MR: case VRDMA_FN_DESTROY_CQ:
	case VRDMA_FN_DESTROY_QP: case VRDMA_FN_DESTROY_AH: case VRDMA_FN_DESTROY_SRQ:
	case VRDMA_FN_DEALLOC_MW:
		return true;
	default:
		return false;
	}
}

int vbg_call_n(struct vbg_context *ctx, uint32_t fn, const void *in, size_t inlen, void *out,
	       size_t outmax, size_t *n)
{
	struct vbus_conn *c = vbg_conn();
	uint32_t flags = (fn == VRDMA_FN_REG_MR || fn == VRDMA_FN_DEREG_MR) ? VBUS_CALL_SLOW : 0;
	int err;

	*n = 0;
	if (__atomic_load_n(&ctx->dead, __ATOMIC_ACQUIRE)) {
		/* As rdma-core on a disassociated device: destroying succeeds, anything else
		 * is EIO, on both backends, whichever of vbusd's exit and the module's revocation
		 * came first. */
		if (destroys(fn))
			return 0;
		errno = EIO;
		return -EIO;
	}
	if (ctx->kfd >= 0) {	/* the kernel backend: one system call into the module */
		struct vbk_call k = {
			.fn = fn, .in_len = (uint32_t)inlen, .out_len = (uint32_t)outmax,
			.in = (uintptr_t)in, .out = (uintptr_t)out,
		};
		long r = ioctl(ctx->kfd, VBK_IOC_CALL, &k);

		err = r < 0 ? -errno : 0;
		*n = r < 0 ? 0 : (size_t)r;
	} else if (!c) {
		err = -ENOTCONN;
	} else {
		err = vbus_devcall_flags(c, ctx->handle, fn, flags, in, inlen, out, outmax, n);
	}
	/* A device that is gone (vbusd dead, the device unplugged, the attachment revoked)
	 * fails every command with EIO, on both backends, as uverbs does for a disassociated
	 * context. */
	if (err < 0 && (__atomic_load_n(&ctx->dead, __ATOMIC_ACQUIRE) || err == -ENOTCONN ||
			err == -ECONNRESET || err == -EPIPE || err == -ENODEV ||
			/* the module's answer for a revoked attachment, before its
			 * DEVICE_FATAL has reached ctx->dead through the event thread */
			(ctx->kfd >= 0 && err == -EIO)))
		err = destroys(fn) ? 0 : -EIO;	/* gone during the call: as gone before it */
	/* A provider's failed command leaves errno set (the write or ioctl failed) as well as
	 * returning it; programs print errno after ibv_modify_qp and the like (qperf does). */
	if (err < 0)
		errno = -err;
	return err;
}

int vbg_call(struct vbg_context *ctx, uint32_t fn, const void *in, size_t inlen, void *out,
	     size_t outmax)
{
	size_t n;
	int err = vbg_call_n(ctx, fn, in, inlen, out, outmax, &n);

	if (!err && out && n != outmax) {
		vbg_err("vrdma call %u: the host answered %zu bytes, not %zu", fn, n, outmax);
		errno = EPROTO;
		err = -EPROTO;
	}
	return err;
}

void vbg_kick(struct vbg_context *ctx, uint32_t db)
{
	uint64_t one = 1;

	if (ctx->kfd >= 0) {
		/* Posts what was published, in this call; a broken queue shows in its ring. */
		if (ioctl(ctx->kfd, VBK_IOC_DOORBELL, (unsigned long)db) < 0)
			vbg_dbg("doorbell %#x: %m", db);
		return;
	}
	if (ctx->doorbell < 0)
		return;	/* a VM's context has none, and no queue to post to (context_open) */
	if (write(ctx->doorbell, &one, sizeof(one)) != sizeof(one))
		vbg_dbg("doorbell: %m");
}

int vbg_qp_table_set(struct vbg_context *ctx, uint32_t handle, struct vbg_qp *qp)
{
	uint32_t i = handle & ((1u << VRDMA_HANDLE_INDEX_BITS) - 1);
	int err = 0;

	pthread_mutex_lock(&ctx->lock);
	if (i >= ctx->nqps) {
		uint32_t n = vbg_pow2(i + 1 < 64 ? 64 : i + 1);
		struct vbg_qp **t = calloc(n, sizeof(*t));

		if (!t) {
			err = -ENOMEM;
			goto out;
		}
		if (ctx->nqps)
			memcpy(t, ctx->qps, ctx->nqps * sizeof(*t));
		/* Readers (poll) look the table up without the lock: publish the new one and
		 * keep the old one (it may still be read; tables only double, so what is kept
		 * is less than the live one). */
		__atomic_store_n(&ctx->qps, t, __ATOMIC_RELEASE);
		__atomic_store_n(&ctx->nqps, n, __ATOMIC_RELEASE);
	}
	__atomic_store_n(&ctx->qps[i], qp, __ATOMIC_RELEASE);
out:
	pthread_mutex_unlock(&ctx->lock);
	return err;
}

struct vbg_qp *vbg_qp_lookup(struct vbg_context *ctx, uint32_t handle)
{
	uint32_t i = handle & ((1u << VRDMA_HANDLE_INDEX_BITS) - 1);
	uint32_t n = __atomic_load_n(&ctx->nqps, __ATOMIC_ACQUIRE);
	struct vbg_qp **t = __atomic_load_n(&ctx->qps, __ATOMIC_ACQUIRE);
	struct vbg_qp *qp;

	if (i >= n || !t)
		return NULL;
	qp = __atomic_load_n(&t[i], __ATOMIC_ACQUIRE);
	return qp && qp->handle == handle ? qp : NULL;
}

static int context_open(struct vbg_device *d, struct vbg_context *ctx)
{
	struct vbus_conn *c = vbg_conn();
	struct vrdma_hello_in hi = { .abi_version = htole32(VRDMA_ABI_VERSION),
				     .abi_min = htole32(VRDMA_ABI_MIN_VERSION),
				     .features = htole64(VRDMA_F_ALL) };
	uint8_t ho[256];	/* a newer host may answer a longer hello_out */
	uint32_t db, v;
	size_t n = 0;
	int err, kfd = -1;

	if (!c)
		return -ENODEV;
	err = vbus_devopen_label(c, d->bus_name, VRDMA_CLASS_NAME, open_label, &ctx->handle);
	if (err)
		return err;
	ctx->vctx.context.async_fd = eventfd(0, EFD_CLOEXEC);
	if (ctx->vctx.context.async_fd < 0) {
		err = -errno;
		goto err_close;
	}
	/* A device whose model runs in the host kernel hands us a descriptor on it: calls,
	 * doorbells and polls then go there, and no relay is involved. */
	err = vbus_devfd(c, ctx->handle, &kfd);
	if (err && err != -EOPNOTSUPP)
		goto err_close;
	ctx->kfd = err ? -1 : kfd;
	if (ctx->kfd < 0) {
		ctx->doorbell = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
		if (ctx->doorbell < 0) {
			err = -errno;
			goto err_close;
		}
		/* In a VM the driver binds it to a vector's doorbell (docs/vm.md, "Signals"). */
		err = vbus_devsig(c, ctx->doorbell, VBUS_SIG_TO_HOST, &db);
		if (err == -ENOSPC && vbus_conn_is_vm(c)) {
			/* Every vector has a signal: the context opens with doorbell 0 for the
			 * control path (queries, PDs); the relay serves no rings for it, so CQs,
			 * QPs and SRQs fail with EOPNOTSUPP before any region is made (shm.c). */
			vbg_err("%s: no free interrupt vector in this VM for a doorbell (vbusctl vm add ... vectors N): control path only",
				d->bus_name);
			close(ctx->doorbell);
			ctx->doorbell = -1;
			err = 0;
		} else if (err) {
			goto err_close;
		} else {
			hi.doorbell = htole32(db);
		}
	}
	/* Our range and features; the host answers the version and features of this context,
	 * in a hello_out of at least the version-2 size (appended fields are a later host's),
	 * of the version-3 size when it chose 3 (the whitelist). */
	err = vbg_call_n(ctx, VRDMA_FN_HELLO, &hi, sizeof(hi), ho, sizeof(ho), &n);
	if (err == -EPROTONOSUPPORT)
		vbg_err("%s: the host speaks no vrdma ABI of %u..%u", d->bus_name,
			VRDMA_ABI_MIN_VERSION, VRDMA_ABI_VERSION);
	v = n >= VRDMA_HELLO_OUT_V2_SIZE ? le32toh(((struct vrdma_hello_out *)ho)->abi_version) : 0;
	if (!err && (n < VRDMA_HELLO_OUT_V2_SIZE || (v >= 3 && n < sizeof(ctx->hello)))) {
		vbg_err("%s: a vrdma HELLO answer of %zu bytes", d->bus_name, n);
		err = -EPROTO;
	}
	if (!err) {
		memcpy(&ctx->hello, ho, n < sizeof(ctx->hello) ? n : sizeof(ctx->hello));
		ctx->qp_types = v >= 3 ? le32toh(ctx->hello.qp_types) : VRDMA_WL_QP_TYPES;
		ctx->access = v >= 3 ? le32toh(ctx->hello.access) : VRDMA_WL_ACCESS;
		if (v < VRDMA_ABI_MIN_VERSION || v > VRDMA_ABI_VERSION ||
		    (le64toh(ctx->hello.features) & ~VRDMA_F_ALL)) {
			vbg_err("%s: the host chose vrdma ABI %u, features %#llx: not offered",
				d->bus_name, v, (unsigned long long)le64toh(ctx->hello.features));
			err = -EPROTO;
		}
	}
	if (!err)
		err = vbg_call(ctx, VRDMA_FN_QUERY_DEVICE, NULL, 0, &ctx->dev_attr,
			       sizeof(ctx->dev_attr));
	if (!err) {
		/* A host without QUERY_DEVICE_EX: the 32-bit flags and one vector. */
		err = vbg_call(ctx, VRDMA_FN_QUERY_DEVICE_EX, NULL, 0, &ctx->dev_ex,
			       sizeof(ctx->dev_ex));
		if (err == -EOPNOTSUPP || (!err && !ctx->dev_ex.num_comp_vectors)) {
			ctx->dev_ex.device_cap_flags_ex = htole64(le32toh(ctx->dev_attr.device_cap_flags));
			ctx->dev_ex.num_comp_vectors = htole32(1);
			err = 0;
		}
	}
	if (!err && !(ctx->access & IBV_ACCESS_MW_BIND)) {
		/* a whitelist without MW_BIND: no memory windows, as the device says */
		uint32_t mw = IBV_DEVICE_MEM_WINDOW | IBV_DEVICE_MEM_WINDOW_TYPE_2A |
			      IBV_DEVICE_MEM_WINDOW_TYPE_2B;

		ctx->dev_attr.device_cap_flags &= htole32(~mw);
		ctx->dev_ex.device_cap_flags_ex &= htole64(~(uint64_t)mw);
		ctx->dev_attr.max_mw = 0;
	}
	if (!err)
		err = vbg_gid_cache_init(ctx);
	if (err)
		goto err_close;
	__atomic_store_n(&d->guid, ctx->dev_attr.node_guid, __ATOMIC_RELAXED);
	__atomic_store_n(&d->guid_known, true, __ATOMIC_RELEASE);
	return 0;

err_close:
	vbus_devclose(c, ctx->handle);
	if (ctx->kfd >= 0)
		close(ctx->kfd);
	ctx->kfd = -1;
	if (ctx->doorbell >= 0)
		close(ctx->doorbell);
	if (ctx->vctx.context.async_fd >= 0)
		close(ctx->vctx.context.async_fd);
	return err;
}

VBG_EXPORT struct ibv_context *ibv_open_device(struct ibv_device *dev)
{
	struct vbg_context *ctx;
	int err;

	if (!vbg_is_device(dev))
		return vbg_real.open_device(dev);
	ctx = calloc(1, sizeof(*ctx));
	if (!ctx) {
		errno = ENOMEM;
		return NULL;
	}
	ctx->doorbell = -1;
	ctx->kfd = -1;
	ctx->vctx.context.async_fd = -1;
	err = context_open((struct vbg_device *)dev, ctx);
	if (err) {
		vbg_err("open %s: %s", dev->name, strerror(-err));
		free(ctx);
		errno = -err;
		return NULL;
	}
	ctx->vctx.sz = sizeof(ctx->vctx);
	ctx->vctx.context.device = dev;
	/* A descriptor the context already holds (a native one has its uverbs node here):
	 * ibv_import_device on it answers as natively (unsupported.c). */
	ctx->vctx.context.cmd_fd = ctx->kfd >= 0 ? ctx->kfd : ctx->doorbell >= 0 ?
				   ctx->doorbell : ctx->vctx.context.async_fd;
	ctx->vctx.context.num_comp_vectors = (int)le32toh(ctx->dev_ex.num_comp_vectors);
	ctx->vctx.context.abi_compat = __VERBS_ABI_IS_EXTENDED;
	pthread_mutex_init(&ctx->vctx.context.mutex, NULL);
	pthread_mutex_init(&ctx->lock, NULL);
	vbg_fill_ops(ctx);
	pthread_mutex_lock(&ctx_lock);
	ctx->next = contexts;
	contexts = ctx;
	pthread_mutex_unlock(&ctx_lock);
	vbg_async_start();
	if (ctx->kfd >= 0 && (err = vbg_async_kernel_start(ctx)))
		vbg_err("%s: no kernel event thread (%s): async events will not be reported",
			dev->name, strerror(-err));
	if (ctx->kfd >= 0)
		vbg_arena_kernel_backend();
	vbg_info("opened %s (instance %#x, %s backend)", dev->name, ctx->handle,
		 ctx->kfd >= 0 ? "kernel" : "relay");
	return &ctx->vctx.context;
}

VBG_EXPORT int ibv_close_device(struct ibv_context *c)
{
	struct vbg_context *ctx, **pp;
	struct vbus_conn *conn;

	if (!vbg_is_context(c))
		return vbg_real.close_device(c);
	ctx = to_vctx(c);
	pthread_mutex_lock(&ctx_lock);
	for (pp = &contexts; *pp; pp = &(*pp)->next)
		if (*pp == ctx) {
			*pp = ctx->next;
			break;
		}
	pthread_mutex_unlock(&ctx_lock);
	/* The kernel backend: our descriptor first (its last close destroys what the module
	 * holds for us), so that DEVCLOSE's revocation finds nothing left to report. */
	if (ctx->kfd >= 0) {
		vbg_async_kernel_stop(ctx);
		close(ctx->kfd);
	}
	/* DEVCLOSE: the host destroys whatever this instance still holds. */
	conn = vbg_conn();
	if (conn)
		vbus_devclose(conn, ctx->handle);
	if (ctx->doorbell >= 0)
		close(ctx->doorbell);
	close(c->async_fd);
	vbg_gid_cache_free(ctx);
	free(ctx->qps);
	free(ctx);
	return 0;
}

/* ---- queries ---- */

/* A count of objects: the device's, or the guest's quota of handles where that is lower
 * (policy's minimum, docs/verbs.md: a program sizing itself on max_qp meets no EDQUOT
 * before it). */
static int objects(uint32_t dev, uint32_t quota)
{
	return (int)(quota && dev > quota ? quota : dev);
}

static void device_attr(const struct vbg_context *ctx, struct ibv_device_attr *a)
{
	const struct vrdma_query_device_out *o = &ctx->dev_attr;
	uint32_t q = le32toh(ctx->hello.max_objects);

	memset(a, 0, sizeof(*a));
	memcpy(a->fw_ver, o->fw_ver, sizeof(a->fw_ver));
	a->fw_ver[sizeof(a->fw_ver) - 1] = 0;
	a->node_guid = le64toh(o->node_guid);
	a->sys_image_guid = le64toh(o->sys_image_guid);
	a->max_mr_size = le64toh(o->max_mr_size);
	a->page_size_cap = le64toh(o->page_size_cap);
	a->vendor_id = le32toh(o->vendor_id);
	a->vendor_part_id = le32toh(o->vendor_part_id);
	a->hw_ver = le32toh(o->hw_ver);
	a->max_qp = objects(le32toh(o->max_qp), q);
	a->max_qp_wr = (int)le32toh(o->max_qp_wr);
	a->device_cap_flags = le32toh(o->device_cap_flags);
	a->max_sge = (int)le32toh(o->max_sge);
	a->max_sge_rd = (int)le32toh(o->max_sge_rd);
	a->max_cq = objects(le32toh(o->max_cq), q);
	a->max_cqe = (int)le32toh(o->max_cqe);
	a->max_mr = objects(le32toh(o->max_mr), q);
	a->max_pd = objects(le32toh(o->max_pd), q);
	a->max_qp_rd_atom = (int)le32toh(o->max_qp_rd_atom);
	a->max_ee_rd_atom = 0;
	a->max_res_rd_atom = (int)le32toh(o->max_res_rd_atom);
	a->max_qp_init_rd_atom = (int)le32toh(o->max_qp_init_rd_atom);
	a->atomic_cap = le32toh(o->atomic_cap);
	a->max_mw = objects(le32toh(o->max_mw), q);
	a->max_mcast_grp = (int)le32toh(o->max_mcast_grp);
	a->max_mcast_qp_attach = (int)le32toh(o->max_mcast_qp_attach);
	a->max_total_mcast_qp_attach = (int)le32toh(o->max_total_mcast_qp_attach);
	a->max_ah = objects(le32toh(o->max_ah), q);
	a->max_srq = objects(le32toh(o->max_srq), q);
	a->max_srq_wr = (int)le32toh(o->max_srq_wr);
	a->max_srq_sge = (int)le32toh(o->max_srq_sge);
	a->max_pkeys = le16toh(o->max_pkeys);
	a->local_ca_ack_delay = o->local_ca_ack_delay;
	a->phys_port_cnt = o->phys_port_cnt;
}

VBG_EXPORT int ibv_query_device(struct ibv_context *c, struct ibv_device_attr *a)
{
	if (!vbg_is_context(c))
		return vbg_real.query_device(c, a);
	device_attr(to_vctx(c), a);
	return 0;
}

int vbg_query_device_ex(struct ibv_context *c, const struct ibv_query_device_ex_input *in,
			struct ibv_device_attr_ex *a, size_t len)
{
	if (in && in->comp_mask)
		return EINVAL;
	if (len < sizeof(a->orig_attr))
		return EINVAL;
	memset(a, 0, len < sizeof(*a) ? len : sizeof(*a));
	device_attr(to_vctx(c), &a->orig_attr);
	/* The fields past orig_attr a caller built against older headers may not have. */
	if (len >= offsetof(struct ibv_device_attr_ex, device_cap_flags_ex) +
		   sizeof(a->device_cap_flags_ex))
		a->device_cap_flags_ex = le64toh(to_vctx(c)->dev_ex.device_cap_flags_ex);
	if (len >= offsetof(struct ibv_device_attr_ex, phys_port_cnt_ex) +
		   sizeof(a->phys_port_cnt_ex))
		a->phys_port_cnt_ex = a->orig_attr.phys_port_cnt;
	return 0;
}

int vbg_query_port_ex(struct ibv_context *c, uint8_t port, struct ibv_port_attr *a, size_t len)
{
	struct vrdma_query_port_in i = { .port_num = port };
	struct vrdma_query_port_out o;
	struct ibv_port_attr p = { 0 };
	int err = vbg_call(to_vctx(c), VRDMA_FN_QUERY_PORT, &i, sizeof(i), &o, sizeof(o));

	if (err)
		return -err;
	p.state = le32toh(o.state);
	p.max_mtu = le32toh(o.max_mtu);
	p.active_mtu = le32toh(o.active_mtu);
	p.gid_tbl_len = (int)le32toh(o.gid_tbl_len);
	p.port_cap_flags = le32toh(o.port_cap_flags);
	p.max_msg_sz = le32toh(o.max_msg_sz);
	p.bad_pkey_cntr = le32toh(o.bad_pkey_cntr);
	p.qkey_viol_cntr = le32toh(o.qkey_viol_cntr);
	p.pkey_tbl_len = le16toh(o.pkey_tbl_len);
	p.lid = le16toh(o.lid);
	p.sm_lid = le16toh(o.sm_lid);
	p.lmc = o.lmc;
	p.max_vl_num = o.max_vl_num;
	p.sm_sl = o.sm_sl;
	p.subnet_timeout = o.subnet_timeout;
	p.init_type_reply = o.init_type_reply;
	p.active_width = o.active_width;
	p.active_speed = o.active_speed;
	p.phys_state = o.phys_state;
	p.link_layer = o.link_layer;
	p.flags = o.flags;
	p.port_cap_flags2 = le16toh(o.port_cap_flags2);
	/* Callers built against older headers pass a smaller struct: write only that. */
	memcpy(a, &p, len < sizeof(p) ? len : sizeof(p));
	return 0;
}

/* The exported ibv_query_port writes the 48-byte compat struct; the macro of the same
 * name goes through the query_port op with the caller's size. */
VBG_EXPORT int (ibv_query_port)(struct ibv_context *c, uint8_t port,
				struct _compat_ibv_port_attr *a)
{
	if (!vbg_is_context(c))
		return vbg_real.query_port(c, port, a);
	return vbg_query_port_ex(c, port, (struct ibv_port_attr *)a,
				 VBG_COMPAT_PORT_ATTR_SIZE);
}

VBG_EXPORT int ibv_query_pkey(struct ibv_context *c, uint8_t port, int index, __be16 *pkey)
{
	struct vrdma_query_pkey_in i = { .port_num = port, .index = htole32((uint32_t)index) };
	struct vrdma_query_pkey_out o;

	if (!vbg_is_context(c))
		return vbg_real.query_pkey(c, port, index, pkey);
	if (index < 0 || vbg_call(to_vctx(c), VRDMA_FN_QUERY_PKEY, &i, sizeof(i), &o, sizeof(o)))
		return -1;
	*pkey = (__be16)le16toh(o.pkey);
	return 0;
}

uint32_t vbg_pow2(uint32_t x)
{
	uint32_t p = 1;

	while (p < x && p < (1u << 31))
		p <<= 1;
	return p;
}
