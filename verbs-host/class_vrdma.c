// SPDX-License-Identifier: MIT
/*
 * The `vrdma` device class: a virtual RDMA device backed by a real one (docs/vrdma.md).
 * Attributes: backing=DEVICE (required, e.g. rxe0), port=N (1), gid=INDEX (the only
 * source GID index guests may use; 0), max-pinned=BYTES (256M), max-objects=N (4096),
 * qp-types=rc,uc,ud and access=local-write,remote-write,remote-read,remote-atomic,mw-bind
 * (the whitelist; all of it, or a nested device's parent's), backend=kernel|relay|auto
 * (auto). The two backends (docs/vrdma.md, Backends):
 *   relay   vbusd runs the device: each guest that opens it gets its own vrdma_guest
 *           (verbs-host/vrdma/); one relay thread serves them all;
 *   kernel  the host module vbus_vrdma runs it: each open makes the guest's attachment
 *           in the module (kernel_admin.c), whose descriptor the guest takes with
 *           VBUS_OP_DEVFD; vbusd opens no ibv_context and runs no relay for it.
 * auto is kernel when the module's admin descriptor opens, else relay. The resolved
 * backend replaces the attribute, so that DEVENUM and `vbusctl dev show` say which.
 * A device backed by a vbus device (this vbusd runs as a guest, docs/nesting.md) also takes
 * mode=relay|passthrough (relay): relay runs the relay backend on it; passthrough, when the
 * vbusd below runs it on the kernel backend, gives each guest a child of our own
 * attachment in the module (VBK_IOC_CHILD), handed over with DEVFD as a kernel-backend
 * attachment is: the nested guest then talks to the module directly, and this vbusd is on
 * no path of its verbs; when the vbusd below runs it on the relay backend, a child
 * connection of our attachment there (VBUS_OP_CHILD, class_vrdma_fwd.c), whose relay then
 * serves the nested guest's own rings: this vbusd forwards its control calls only.
 */
#include <dlfcn.h>
#include <endian.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <vbus/verbs-nest.h>
#include <vbus/vrdma-kernel.h>
#include "vrdma/vrdma.h"
#include "vbusd.h"
#include "class_vrdma_cm.h"
#include "class_vrdma_fwd.h"
#include "class_vrdma_vmk.h"

struct vrdma_dev {
	struct ibv_device **list;
	struct ibv_device *ibdev;
	struct vrdma_policy pol;
	struct vbd_cm_policy cm_pol;	/* rdma_cm: the local address guests may use */
	bool kernel;			/* the resolved backend: kernel, else relay */
	bool vm_relay;			/* vm=relay: VMs' connections on the relay anyway */
	bool vm_db_thread;		/* vm=kernel-thread: vbusd's thread rings the doorbell */
	bool vm_told;			/* the relay serves VMs: the module is too old (logged) */
	/* Nested (docs/nesting.md): the backing device is a vbus device of the bus this vbusd
	 * is a guest of. nest_ctx is a context on it, kept to ask whether the parent revoked
	 * it; nest_query is the guest library's vbus_verbs_query_limits. */
	struct ibv_context *nest_ctx;
	vbus_verbs_query_limits_fn *nest_query;
	/* mode=passthrough: our own attachment's descriptor (nest_ctx's, held by the guest
	 * library), whose children our guests get; -1 otherwise */
	int pt_fd;
	/* mode=passthrough over a relay-backend parent: child connections (class_vrdma_fwd.c) */
	bool fwd;
	/* Nested: our own attachment's whitelist (qp_types, access), as its HELLO said */
	struct vrdma_policy nest_wl;
	uint64_t gen;			/* this device, not another added later under its name */
	/* The backing device's /dev node, when it had one at `dev add` (`gone` watches it;
	 * empty: only its sysfs link is watched) */
	char node[sizeof("/dev/infiniband/") + IBV_SYSFS_NAME_MAX];
};

struct vrdma_inst {
	struct vbd_guest *g;
	uint32_t handle;		/* the guest's DEVOPEN handle: events name it */
	bool kernel;			/* the device's backend when it was opened */
	const struct vrdma_dev *dev;
	struct vbd_cm *cm;		/* rdma_cm, made at the guest's first CM call */
	/* relay */
	struct vrdma_guest *vg;
	bool relayed;
	/* passthrough over a relay-backend parent */
	struct vbd_fwd *fwd;
	/* kernel: vbusd's copy of the attachment until DEVFD hands it to the guest, then -1 */
	int attach_fd;
	int owner_fd;			/* what it was made through: -1 admin, else pt_fd */
	/* kernel, a VM's connection: vbusd makes its calls (class_vrdma_vmk.c) */
	struct vbd_vmk *vmk;
};

#define KERNEL_NOTE "the objects are in the kernel module, which did not list them"

static pthread_mutex_t relay_lock = PTHREAD_MUTEX_INITIALIZER;
static uint64_t dev_gen;	/* the last vrdma_dev's gen */
static struct vrdma_relay *relay;
static int relay_users;

static int num_attr(const struct vbd_dev *d, const char *k, uint64_t def, uint64_t min,
		    uint64_t max, uint64_t *v, char *err, size_t errn)
{
	const char *s = vbd_dev_attr(d, k);
	char *end;

	*v = def;
	if (!s)
		return 0;
	*v = strtoull(s, &end, 0);
	if (*end == 'K' || *end == 'k') { *v <<= 10; end++; }
	else if (*end == 'M' || *end == 'm') { *v <<= 20; end++; }
	else if (*end == 'G' || *end == 'g') { *v <<= 30; end++; }
	if (!*end && end != s && *v >= min && *v <= max)
		return 0;
	snprintf(err, errn, "bad %s=%s (%llu..%llu)", k, s, (unsigned long long)min,
		 (unsigned long long)max);
	return -EINVAL;
}

/* backend=kernel|relay|auto: *kernel says which it resolves to. kernel needs the module's
 * admin descriptor (opened once, kept); auto takes it when it opens. 0 or -errno. */
static int resolve_backend(const struct vbd_dev *d, bool *kernel, char *err, size_t errn)
{
	const char *b = vbd_dev_attr(d, "backend");
	char why[128];
	int r;

	if (!b || !strcmp(b, "auto")) {
		*kernel = !vbd_kernel_admin_open(why, sizeof(why));
		if (!*kernel)
			vbd_info("vrdma %s: backend auto is relay: %s", d->name, why);
		return 0;
	}
	if (!strcmp(b, "relay")) {
		*kernel = false;
		return 0;
	}
	if (!strcmp(b, "kernel")) {
		*kernel = true;
		r = vbd_kernel_admin_open(why, sizeof(why));
		if (r)
			snprintf(err, errn, "backend=kernel: %s", why);
		return r;
	}
	snprintf(err, errn, "backend=%s: want kernel, relay or auto", b);
	return -EINVAL;
}

/*
 * Is `ibdev` a vbus device (this vbusd runs as a guest, under vbus-run)? Then *ctx is a
 * context on it and *lim what our own attachment allows. 0: nested; 1: a real device;
 * -errno when it looks nested but cannot be asked.
 */
static int nest_probe(struct ibv_device *ibdev, vbus_verbs_query_limits_fn **q,
		      struct ibv_context **ctx, struct vbus_verbs_limits *lim, char *err,
		      size_t errn)
{
	int r;

	*q = (vbus_verbs_query_limits_fn *)dlsym(RTLD_DEFAULT, VBUS_VERBS_QUERY_LIMITS);
	if (!*q)
		return 1;
	*ctx = ibv_open_device(ibdev);
	if (!*ctx) {
		r = errno ? -errno : -EIO;
		snprintf(err, errn, "cannot open %s: %s", ibv_get_device_name(ibdev), strerror(-r));
		return r;
	}
	r = (*q)(*ctx, lim);
	if (r == -ENODEV) {		/* a real device beside the vbus ones (--show-real) */
		ibv_close_device(*ctx);
		*ctx = NULL;
		return 1;
	}
	if (r) {
		snprintf(err, errn, "%s: cannot read its limits: %s", ibv_get_device_name(ibdev),
			 strerror(-r));
		ibv_close_device(*ctx);
		*ctx = NULL;
	}
	return r;
}

/* qp-types= or access= (the whitelist): its bits in *bits, all of them when unset.
 * 0 or -EINVAL. */
static int wl_attr(const struct vbd_dev *d, const char *k, bool qp_types, uint32_t *bits,
		   char *err, size_t errn)
{
	const char *s = vbd_dev_attr(d, k);

	*bits = qp_types ? VRDMA_WL_QP_TYPES : VRDMA_WL_ACCESS;
	return s ? vrdma_wl_parse(s, qp_types, bits, err, errn) : 0;
}

/* A nested device's qp-types= or access=: unset, the parent's; set, only bits the parent
 * has (else -EPERM, naming the ones it lacks). */
static int wl_narrow(const struct vbd_dev *d, const char *k, bool qp_types, uint32_t parent,
		     uint32_t *bits, char *err, size_t errn)
{
	char extra[96], has[96];

	if (!vbd_dev_attr(d, k)) {
		*bits = parent;
		return 0;
	}
	if (!(*bits & ~parent))
		return 0;
	vrdma_wl_format(*bits & ~parent, qp_types, extra, sizeof(extra));
	vrdma_wl_format(parent, qp_types, has, sizeof(has));
	snprintf(err, errn, "%s=%s is wider than this vbusd's own attachment: %s allows %s "
		 "(not %s)", k, vbd_dev_attr(d, k), vbd_dev_attr(d, "backing"), has, extra);
	return -EPERM;
}

/*
 * A nested device's policy is no wider than our own attachment: a limit left unset is the
 * parent's (or the usual default when that is smaller), one set wider is refused with the
 * parent's value in the message. The kernel backend needs a real device. 0 or -EPERM.
 */
static int nest_narrow(const struct vbd_dev *d, const struct vbus_verbs_limits *lim,
		       const struct vrdma_policy *lim_wl, bool pt, uint64_t *port, uint64_t *gid,
		       uint64_t *pinned, uint64_t *objs, struct vrdma_policy *wl, char *err,
		       size_t errn)
{
	const char *backing = vbd_dev_attr(d, "backing"), *b = vbd_dev_attr(d, "backend");

	if (pt && !lim->kernel && !lim->child) {
		snprintf(err, errn, "mode=passthrough: the vbusd below runs %s on the relay "
			 "backend and makes no child connections (an older vbusd)", backing);
		return -EOPNOTSUPP;
	}
	if (pt && lim->kernel && b && !strcmp(b, "relay")) {
		snprintf(err, errn, "mode=passthrough: backend=relay contradicts it (the module "
			 "below runs the device)");
		return -EINVAL;
	}
	if (!pt && b && !strcmp(b, "kernel")) {
		snprintf(err, errn, "backend=kernel: %s is a vbus device of the bus this vbusd is "
			 "a guest of (nested); the kernel backend needs a real RDMA device",
			 backing);
		return -EPERM;
	}
	if (*port != 1) {
		snprintf(err, errn, "port=%llu: %s (nested) has port 1 only",
			 (unsigned long long)*port, backing);
		return -EPERM;
	}
	if (!vbd_dev_attr(d, "gid"))
		*gid = lim->gid_index;
	else if (*gid != lim->gid_index) {
		snprintf(err, errn, "gid=%llu is wider than this vbusd's own attachment: %s "
			 "allows GID index %u only", (unsigned long long)*gid, backing,
			 lim->gid_index);
		return -EPERM;
	}
	if (!vbd_dev_attr(d, "max-objects")) {
		if (*objs > lim->max_objects)
			*objs = lim->max_objects;
	} else if (*objs > lim->max_objects) {
		snprintf(err, errn, "max-objects=%llu is wider than this vbusd's own attachment: "
			 "%s allows %u", (unsigned long long)*objs, backing, lim->max_objects);
		return -EPERM;
	}
	if (!vbd_dev_attr(d, "max-pinned")) {
		if (*pinned > lim->max_pinned_bytes)
			*pinned = lim->max_pinned_bytes;
	} else if (*pinned > lim->max_pinned_bytes) {
		snprintf(err, errn, "max-pinned=%llu is wider than this vbusd's own attachment: "
			 "%s allows %llu bytes", (unsigned long long)*pinned, backing,
			 (unsigned long long)lim->max_pinned_bytes);
		return -EPERM;
	}
	if (wl_narrow(d, "qp-types", true, lim_wl->qp_types, &wl->qp_types, err, errn) ||
	    wl_narrow(d, "access", false, lim_wl->access, &wl->access, err, errn))
		return -EPERM;
	return 0;
}

/* A whitelist narrower than all of it is recorded as attributes in its words (a nested
 * device's inherited one too), so that DEVENUM and `vbusctl dev show` say what it is. */
static int wl_record(struct vbd_dev *d, const struct vrdma_policy *wl, char *err, size_t errn)
{
	char w[64];

	if (wl->qp_types != VRDMA_WL_QP_TYPES) {
		vrdma_wl_format(wl->qp_types, true, w, sizeof(w));
		if (vbd_dev_set_attr(d, "qp-types", w))
			goto full;
	}
	if (wl->access != VRDMA_WL_ACCESS) {
		vrdma_wl_format(wl->access, false, w, sizeof(w));
		if (vbd_dev_set_attr(d, "access", w))
			goto full;
	}
	return 0;
full:
	snprintf(err, errn, "too many attributes to record the whitelist");
	return -E2BIG;
}

/* Our own attachment's whitelist: the guest library's answer, all of it from a library
 * (or a host) before the whitelist, never more than all of it. */
static void nest_whitelist(struct vrdma_dev *v)
{
	vbus_verbs_query_whitelist_fn *q = (vbus_verbs_query_whitelist_fn *)
		dlsym(RTLD_DEFAULT, VBUS_VERBS_QUERY_WHITELIST);
	uint32_t qpt, acc;

	v->nest_wl.qp_types = VRDMA_WL_QP_TYPES;
	v->nest_wl.access = VRDMA_WL_ACCESS;
	if (q && !q(v->nest_ctx, &qpt, &acc)) {
		v->nest_wl.qp_types = qpt & VRDMA_WL_QP_TYPES;
		v->nest_wl.access = acc & VRDMA_WL_ACCESS;
	}
}

static int vrdma_init(struct vbd_dev *d, char *err, size_t errn)
{
	static const char *const known[] = { "backing", "port", "gid", "max-pinned",
					     "max-objects", "qp-types", "access", "backend",
					     "mode", "vm" };
	const char *backing = vbd_dev_attr(d, "backing"), *b, *mode = vbd_dev_attr(d, "mode");
	const char *vm = vbd_dev_attr(d, "vm");
	struct vbus_verbs_limits lim;
	struct vrdma_policy wl;
	struct vrdma_dev *v;
	uint64_t port, gid, pinned, objs;
	bool kernel = false, nested, pt;
	int n, r;

	for (int i = 0; i < d->n_attrs; i++) {
		size_t k = 0;

		while (k < sizeof(known) / sizeof(known[0]) && strcmp(d->attr_key[i], known[k]))
			k++;
		if (k == sizeof(known) / sizeof(known[0])) {
			snprintf(err, errn, "unknown attribute '%s' (backing, port, gid, max-pinned, "
				 "max-objects, qp-types, access, backend, mode, vm)", d->attr_key[i]);
			return -EINVAL;
		}
	}
	if (!backing) {
		snprintf(err, errn, "backing=DEVICE (the RDMA device behind it) is required");
		return -EINVAL;
	}
	if (num_attr(d, "port", 1, 1, 255, &port, err, errn) ||
	    num_attr(d, "gid", 0, 0, 65535, &gid, err, errn) ||
	    num_attr(d, "max-pinned", 256ull << 20, 0, 1ull << 40, &pinned, err, errn) ||
	    num_attr(d, "max-objects", 4096, 0, 1u << VRDMA_HANDLE_INDEX_BITS, &objs, err, errn) ||
	    wl_attr(d, "qp-types", true, &wl.qp_types, err, errn) ||
	    wl_attr(d, "access", false, &wl.access, err, errn))
		return -EINVAL;
	if (mode && strcmp(mode, "relay") && strcmp(mode, "passthrough")) {
		snprintf(err, errn, "mode=%s: want relay or passthrough", mode);
		return -EINVAL;
	}
	pt = mode && !strcmp(mode, "passthrough");
	if (vm && strcmp(vm, "kernel") && strcmp(vm, "kernel-thread") && strcmp(vm, "relay")) {
		snprintf(err, errn, "vm=%s: want kernel, kernel-thread or relay (how a VM's "
			 "processes are served on a kernel-backend device)", vm);
		return -EINVAL;
	}
	/* An explicit backend first (backend=kernel without the module says so whatever the
	 * backing device); auto waits until we know whether the device is a vbus one. */
	b = vbd_dev_attr(d, "backend");
	if (b && strcmp(b, "auto") && !pt) {
		r = resolve_backend(d, &kernel, err, errn);
		if (r)
			return r;
	}
	v = calloc(1, sizeof(*v));
	if (!v)
		return -ENOMEM;
	v->pt_fd = -1;
	v->vm_relay = vm && !strcmp(vm, "relay");
	v->vm_db_thread = vm && !strcmp(vm, "kernel-thread");
	v->gen = __atomic_add_fetch(&dev_gen, 1, __ATOMIC_RELAXED);
	/* Both backends: the device must be there, and `gone` watches its uverbs node. Only
	 * the relay opens contexts on it (one per guest, in vrdma_open). */
	v->list = ibv_get_device_list(&n);
	for (int i = 0; v->list && i < n; i++)
		if (!strcmp(ibv_get_device_name(v->list[i]), backing))
			v->ibdev = v->list[i];
	if (!v->ibdev) {
		snprintf(err, errn, "no RDMA device '%s' on this host", backing);
		r = -ENODEV;
		goto err_free;
	}
	snprintf(v->node, sizeof(v->node), "/dev/infiniband/%s", v->ibdev->dev_name);
	if (access(v->node, F_OK))
		v->node[0] = 0;
	r = nest_probe(v->ibdev, &v->nest_query, &v->nest_ctx, &lim, err, errn);
	if (r < 0)
		goto err_free;
	nested = r == 0;
	if (pt && !nested) {
		snprintf(err, errn, "mode=passthrough: %s is a real device; passthrough is for a "
			 "device backed by a vbus device (a vbusd run as a guest, docs/nesting.md)",
			 backing);
		r = -EINVAL;
		goto err_free;
	}
	if (nested) {
		nest_whitelist(v);
		r = nest_narrow(d, &lim, &v->nest_wl, pt, &port, &gid, &pinned, &objs, &wl, err,
				errn);
		if (r)
			goto err_free;
		/* relay mode: the relay backend; passthrough: children in the module below,
		 * through the descriptor the guest library holds for our own attachment. */
		kernel = pt && lim.kernel;
		if (kernel)
			v->pt_fd = v->nest_ctx->cmd_fd;
		v->fwd = pt && !lim.kernel;
		if (vbd_dev_set_attr(d, "mode", pt ? "passthrough" : "relay")) {
			snprintf(err, errn, "too many attributes to record mode=");
			r = -E2BIG;
			goto err_free;
		}
	} else if (!b || !strcmp(b, "auto")) {
		r = resolve_backend(d, &kernel, err, errn);
		if (r)
			goto err_free;
	}
	if (vbd_dev_set_attr(d, "backend", kernel ? "kernel" : "relay")) {
		snprintf(err, errn, "too many attributes to record backend=");
		r = -E2BIG;
		goto err_free;
	}
	r = wl_record(d, &wl, err, errn);
	if (r)
		goto err_free;
	if (kernel && !nested && (wl.qp_types != VRDMA_WL_QP_TYPES ||
				  wl.access != VRDMA_WL_ACCESS) && !vbd_kernel_has_whitelist()) {
		snprintf(err, errn, "qp-types=/access=: the loaded vbus_vrdma module predates the "
			 "whitelist; load this build's module, or use backend=relay");
		r = -EOPNOTSUPP;
		goto err_free;
	}
	v->pol = (struct vrdma_policy){ .port = (uint8_t)port, .gid_index = (uint32_t)gid,
					.max_objects = (uint32_t)objs, .max_pinned_bytes = pinned,
					.qp_types = wl.qp_types, .access = wl.access };
	v->kernel = kernel;
	snprintf(v->cm_pol.ibdev, sizeof(v->cm_pol.ibdev), "%s", backing);
	snprintf(v->cm_pol.ibdev_path, sizeof(v->cm_pol.ibdev_path), "%s", v->ibdev->ibdev_path);
	v->cm_pol.port = (uint8_t)port;
	v->cm_pol.gid_index = (uint32_t)gid;
	d->priv = v;
	vbd_info("vrdma %s: backing %s port %u, backend %s%s", d->name, backing,
		 (unsigned)port, kernel ? "kernel" : "relay",
		 pt ? " (nested, passthrough)" : nested ? " (nested)" : "");
	if (nested)
		vbd_info("vrdma %s: nested in our own attachment: max-objects %u of %u, "
			 "max-pinned %llu of %llu, gid %u", d->name, v->pol.max_objects,
			 lim.max_objects, (unsigned long long)pinned,
			 (unsigned long long)lim.max_pinned_bytes, lim.gid_index);
	return 0;

err_free:
	if (v->nest_ctx)
		ibv_close_device(v->nest_ctx);
	if (v->list)
		ibv_free_device_list(v->list);
	free(v);
	return r;
}

static void vrdma_fini(struct vbd_dev *d)
{
	struct vrdma_dev *v = d->priv;

	vbd_kernel_linger_end(v);	/* before the passthrough descriptor closes */
	if (v->nest_ctx)
		ibv_close_device(v->nest_ctx);
	ibv_free_device_list(v->list);
	free(v);
}

/*
 * The backing device was unregistered (`rdma link delete`, driver unload): its uverbs
 * character device is gone. A driver without disassociate_ucontext (rxe) keeps the
 * unregistration waiting until every open context is closed, and tells nobody; so vbusd
 * looks for itself, and removing the vrdma device then closes the guests' real contexts
 * (the unregistration completes) and gives them IBV_EVENT_DEVICE_FATAL, as a device that
 * disassociates its contexts does.
 */
static bool vrdma_gone(struct vbd_dev *d)
{
	struct vrdma_dev *v = d->priv;
	struct vbus_verbs_limits lim;

	/* Nested: no uverbs node; gone when our own parent revoked the device we run on
	 * (its DEVICE_FATAL), which then reaches our guests the same way. */
	if (v->nest_ctx)
		return v->nest_query(v->nest_ctx, &lim) || lim.dead;
	/* Its /dev node goes first (inotify wakes vbusd then: main.c), its sysfs link
	 * after; either missing is gone. */
	return (v->node[0] && access(v->node, F_OK) && errno == ENOENT) ||
	       (access(v->ibdev->dev_path, F_OK) && errno == ENOENT);
}

static int env_region(void *priv, uint32_t shm, struct vrdma_region *out)
{
	struct vrdma_inst *in = priv;

	return vbd_guest_region(in->g, shm, &out->fd, &out->base, &out->size, &out->pages);
}

static void env_region_put(void *priv, uint32_t shm)
{
	struct vrdma_inst *in = priv;

	vbd_guest_region_put(in->g, shm);
}

/* A CQ's channel is held while the CQ lives (the guest cannot revoke it under a kick). */
static int env_signal_hold(void *priv, uint32_t sig)
{
	struct vrdma_inst *in = priv;
	int fd;

	return vbd_guest_signal(in->g, sig, VBUS_SIG_TO_GUEST, &fd);
}

static void env_signal_put(void *priv, uint32_t sig)
{
	struct vrdma_inst *in = priv;

	vbd_guest_signal_put(in->g, sig);
}

static int env_kick(void *priv, uint32_t sig)
{
	struct vrdma_inst *in = priv;
	uint64_t one = 1;
	int fd = vbd_guest_signal_fd(in->g, sig, VBUS_SIG_TO_GUEST);

	if (fd < 0)
		return fd;
	return write(fd, &one, sizeof(one)) == sizeof(one) ? 0 : -errno;
}

/* An async event, as a VBUS_EV_DEVICE on the instance's handle (docs/vrdma.md, Events).
 * Sending never blocks; a send that finds the socket busy is retried a few times. */
static void env_event(void *priv, uint32_t type, uint32_t h, uint32_t port)
{
	struct vrdma_inst *in = priv;
	struct vrdma_event ev = { .handle = htole32(h), .port_num = htole32(port) };

	for (int i = 0; i < 100; i++)
		if (vbd_guest_send_event(in->g, VBUS_EV_DEVICE, in->handle, type, &ev,
					 sizeof(ev)) != -EAGAIN)
			return;
	vbd_warn("guest %u: async event %u dropped (its socket stays busy)", in->g->id, type);
}

static void env_quota(void *priv, const char *quota, uint64_t limit)
{
	struct vrdma_inst *in = priv;

	vbd_quota_hit(in->g, quota, limit);
}

static void env_refused(void *priv, const char *what, uint32_t value, uint64_t count)
{
	struct vrdma_inst *in = priv;
	char qpt[64], acc[96];

	vrdma_wl_format(in->vg->pol.qp_types, true, qpt, sizeof(qpt));
	vrdma_wl_format(in->vg->pol.access, false, acc, sizeof(acc));
	vbd_warn("guest %u (pid %d): %s %#x refused: not in its whitelist (qp-types=%s "
		 "access=%s), EPERM (%llu so far)", in->g->id, (int)in->g->pid, what, value,
		 qpt, acc, (unsigned long long)count);
}

/* A VM's process is known only to the VM's kernel: its driver charged the pins to it
 * (docs/vm.md); a privileged Q_Key is refused to it. */
static void env_caller(void *priv, unsigned int what, struct vrdma_caller *c)
{
	struct vrdma_inst *in = priv;

	if (in->g->vm.ram_fd >= 0) {
		if (what & VRDMA_ASK_CAPS)
			c->net_raw = false, c->ipc_lock = true;
		if (what & VRDMA_ASK_MEMLOCK)
			c->memlock = UINT64_MAX;
		return;
	}
	if (what & VRDMA_ASK_CAPS)
		vbd_caller_caps(&in->g->caller, &c->net_raw, &c->ipc_lock);
	if (what & VRDMA_ASK_MEMLOCK)
		c->memlock = vbd_caller_memlock(&in->g->caller);
}

static int env_maps_take(void *priv, uint64_t n)
{
	return vbd_guest_maps_take(((struct vrdma_inst *)priv)->g, n);
}

static void env_maps_give(void *priv, uint64_t n)
{
	vbd_guest_maps_give(((struct vrdma_inst *)priv)->g, n);
}

static int env_pins_take(void *priv, uint64_t bytes)
{
	return vbd_guest_pins_take(((struct vrdma_inst *)priv)->g, bytes);
}

static void env_pins_give(void *priv, uint64_t bytes)
{
	vbd_guest_pins_give(((struct vrdma_inst *)priv)->g, bytes);
}

static const struct vrdma_env_ops env = { .region = env_region,
					  .region_put = env_region_put, .signal_hold = env_signal_hold,
					  .signal_put = env_signal_put, .kick = env_kick,
					  .event = env_event, .quota = env_quota,
					  .refused = env_refused,
					  .caller = env_caller, .maps_take = env_maps_take,
					  .maps_give = env_maps_give, .pins_take = env_pins_take,
					  .pins_give = env_pins_give };

/* The attachment's tag in the module: which guest and which open of the device. */
static uint64_t attach_tag(const struct vrdma_inst *in)
{
	return (uint64_t)in->g->id << 32 | in->handle;
}

/*
 * The kernel backend: the guest's attachment in the module, on the backing device and
 * port, with the device's policy (GID index, handle and pinned-memory quotas) and the
 * guest's id (for its counters). vbusd keeps the descriptor only until the guest takes it
 * with DEVFD (vrdma_devfd). 0 or -errno.
 */
static int kernel_open(const struct vbd_dev *d, struct vrdma_inst *in, bool foreign)
{
	const struct vrdma_dev *v = d->priv;
	struct vbk_attach a = {
		.port = v->pol.port,
		.gid_index = v->pol.gid_index,
		.max_objects = v->pol.max_objects,
		.guest_id = in->g->id,
		.max_pinned_bytes = v->pol.max_pinned_bytes,
		.tag = attach_tag(in),
		.qp_types = v->pol.qp_types,
		.access = v->pol.access,
		.flags = foreign ? VBK_ATTACH_F_FOREIGN : 0,
		.ram_fd = foreign ? in->g->vm.ram_fd : 0,
	};
	int err;

	if (snprintf(a.ibdev, sizeof(a.ibdev), "%s", ibv_get_device_name(v->ibdev)) >=
	    (int)sizeof(a.ibdev))
		return -ENAMETOOLONG;
	in->owner_fd = -1;
	err = vbd_kernel_attach(&a, &in->attach_fd);
	if (err == -EOPNOTSUPP && foreign)
		return err;	/* a module without foreign attachments: the relay serves */
	if (err) {
		vbd_warn("vrdma %s: guest %u: the module refused the attachment: %s", d->name,
			 in->g->id, strerror(-err));
		return err;
	}
	vbd_dbg("vrdma %s: guest %u attached (kernel backend)", d->name, in->g->id);
	return 0;
}

/*
 * A VM's connection on the kernel backend (class_vrdma_vmk.c): a foreign attachment over
 * the VM's RAM, which vbusd keeps and calls through. 0, -EOPNOTSUPP when the module has
 * no foreign attachments, or -errno.
 */
static int vm_open(const struct vbd_dev *d, struct vrdma_inst *in)
{
	int err = kernel_open(d, in, true);

	if (err)
		return err;
	err = vbd_vmk_open(&in->vmk, in->g, in->handle, in->attach_fd,
			   ((const struct vrdma_dev *)d->priv)->vm_db_thread);
	if (err) {
		close(in->attach_fd);
		vbd_kernel_revoke_on(in->owner_fd, attach_tag(in));
		return err;
	}
	in->kernel = true;
	return 0;
}

/*
 * Passthrough: the guest's attachment is a child of our own (VBK_IOC_CHILD), with the
 * device's limits; the module checks them against what is left of ours. vbusd keeps the
 * descriptor only until DEVFD, as for kernel_open. 0 or -errno.
 */
static int child_open(const struct vbd_dev *d, struct vrdma_inst *in)
{
	const struct vrdma_dev *v = d->priv;
	struct vbk_child c = {
		.max_objects = v->pol.max_objects,
		.gid_index = v->pol.gid_index,
		.max_pinned_bytes = v->pol.max_pinned_bytes,
		.guest_id = in->g->id,
		.tag = attach_tag(in),
	};
	int err;

	/* The whitelist travels only when it is narrower than our own attachment's (so that
	 * a module before it serves the rest) */
	if (v->pol.qp_types != v->nest_wl.qp_types || v->pol.access != v->nest_wl.access) {
		c.flags = VBK_CHILD_F_WHITELIST;
		c.qp_types = v->pol.qp_types;
		c.access = v->pol.access;
	}
	in->owner_fd = v->pt_fd;
	err = vbd_kernel_child(v->pt_fd, &c, &in->attach_fd);
	if (err) {
		vbd_warn("vrdma %s: guest %u: the module refused a child of our attachment "
			 "(max-objects %u, max-pinned %llu, gid %u): %s%s", d->name, in->g->id,
			 c.max_objects, (unsigned long long)c.max_pinned_bytes, c.gid_index,
			 strerror(-err), err == -EDQUOT ? " (less than that is left of our own "
			 "attachment: other guests hold the rest)" : "");
		return err;
	}
	vbd_dbg("vrdma %s: guest %u attached (passthrough: a child of our attachment)",
		d->name, in->g->id);
	return 0;
}

/* The relay backend: the guest's own context on the real device; the relay thread
 * starts with the first guest. 0 or -errno. */
/* The label an open below made for instance in carries (label.c): its guest, and that
 * guest's own label when it is a middle too. */
static void inst_label(const struct vrdma_inst *in, char label[VBUS_LABEL_MAX])
{
	if (vbd_label_compose(label, in->g->id, (int)in->g->pid, vbd_handle_label(in->g, in->handle)))
		vbd_dbg("vrdma: guest %u: its own label is too deep to pass on whole", in->g->id);
}

/*
 * Nested: the context below is opened for one of our guests; its DEVOPEN there says which
 * (label.c), so that the level below can show the tree. Only this thread's open carries it.
 */
static void nest_label(const struct vrdma_dev *v, const struct vrdma_inst *in, bool on)
{
	static vbus_verbs_open_label_fn *set_fn;
	vbus_verbs_open_label_fn *set = __atomic_load_n(&set_fn, __ATOMIC_RELAXED);
	char label[VBUS_LABEL_MAX];

	if (!v->nest_query)
		return;
	if (!set) {
		set = (vbus_verbs_open_label_fn *)dlsym(RTLD_DEFAULT, VBUS_VERBS_OPEN_LABEL);
		__atomic_store_n(&set_fn, set, __ATOMIC_RELAXED);
	}
	if (!set)
		return;			/* an older library: no label */
	if (!on) {
		set(NULL);
		return;
	}
	inst_label(in, label);
	set(label);
}

static int relay_open(struct vrdma_dev *v, struct vrdma_inst *in, const struct vrdma_policy *pol)
{
	int err;

	nest_label(v, in, true);
	err = vrdma_guest_open(&in->vg, v->ibdev, pol, &env, in);
	nest_label(v, in, false);
	if (err)
		return err;
	pthread_mutex_lock(&relay_lock);
	if (!relay) {
		const char *s = getenv("VBUS_RELAY_SPIN_US");
		uint64_t us = s ? strtoull(s, NULL, 10) : 100;

		const char *rt = getenv("VBUS_RELAY_RT");

		err = vrdma_relay_start(&relay, us * 1000);
		if (!err && rt && atoi(rt) > 0) {
			int e = vrdma_relay_set_priority(relay, atoi(rt));

			if (e)
				vbd_err("relay: SCHED_FIFO priority %s: %s", rt, strerror(-e));
		}
	}
	if (!err)
		relay_users++;
	pthread_mutex_unlock(&relay_lock);
	if (err)
		vrdma_guest_close(in->vg);
	return err;
}

/* A child connection's function (VBUS_OP_CHILD): its limits and its parent's charges. */
struct child_token {
	struct vrdma_charge *charge;	/* the child's own node, under its parent's */
	struct vrdma_charge *parent;	/* charged one object for the child itself */
	uint64_t dev_gen;		/* the device it is a child of (vrdma_dev.gen) */
	uint32_t max_objects;
	uint64_t max_pinned;
	uint32_t qp_types, access;	/* its whitelist */
};

/* Passthrough over a relay-backend parent: a child connection below for this guest. */
static int fwd_open(struct vrdma_dev *v, struct vrdma_inst *in)
{
	struct vbus_verbs_child_req req = { .max_objects = v->pol.max_objects,
					    .max_pinned_bytes = v->pol.max_pinned_bytes,
					    .qp_types = v->pol.qp_types, .access = v->pol.access };
	char label[VBUS_LABEL_MAX];

	if (in->g->vm.ram_fd >= 0)
		return -EOPNOTSUPP;	/* a VM's regions have no memfd to hand down */
	inst_label(in, label);
	return vbd_fwd_open(&in->fwd, v->nest_ctx, ibv_get_device_name(v->ibdev), in->g,
			    in->handle, &req, label);
}

static int vrdma_open(struct vbd_dev *d, struct vbd_guest *g, uint32_t handle, void **out)
{
	struct vrdma_dev *v = d->priv;
	struct vrdma_inst *in = calloc(1, sizeof(*in));
	struct vrdma_policy pol = v->pol;
	int err;

	if (!in)
		return -ENOMEM;
	in->g = g;
	in->handle = handle;
	/* A guest that cannot take the module's descriptor (it did not negotiate
	 * VBUS_F_DEVFD: a VM's connection, docs/vm.md) gets no attachment of its own: a VM's
	 * is served through vbusd's foreign attachment (vm_open, below), or by the relay on
	 * a context of vbusd's own. */
	in->kernel = v->kernel && (g->features & VBUS_F_DEVFD);
	in->dev = v;
	in->attach_fd = -1;
	in->owner_fd = -1;
	pol.vm = g->vm.ram_fd >= 0;
	if (g->child.cls == &vbd_class_vrdma) {
		/* a child connection: its limits, charged to its parent's attachment too */
		const struct child_token *t = g->child.token;

		pol.max_objects = t->max_objects < pol.max_objects ? t->max_objects : pol.max_objects;
		pol.max_pinned_bytes = t->max_pinned < pol.max_pinned_bytes ? t->max_pinned :
				       pol.max_pinned_bytes;
		pol.parent = t->charge;
		pol.qp_types &= t->qp_types;
		pol.access &= t->access;
		if (in->kernel || v->fwd || t->dev_gen != v->gen) {
			free(in);
			return -EPERM;	/* the device was replaced by one that makes no children */
		}
	}
	/* A VM's connection on a kernel-backend device: the module serves it too, through
	 * a foreign attachment vbusd holds (vm_open); the relay does with vm=relay, or with a
	 * module that has no foreign attachments. */
	if (pol.vm && v->kernel && !v->vm_relay && v->pt_fd < 0 && !v->fwd &&
	    g->child.cls != &vbd_class_vrdma) {
		err = vm_open(d, in);
		if (err != -EOPNOTSUPP)
			goto out;
		if (!__atomic_exchange_n(&v->vm_told, true, __ATOMIC_RELAXED))
			vbd_info("vrdma %s: the loaded module has no foreign attachments: VMs are "
				 "served by the relay (load this build's vbus_vrdma)", d->name);
	}
	err = v->fwd ? fwd_open(v, in) : !in->kernel ? relay_open(v, in, &pol) :
	      v->pt_fd >= 0 ? child_open(d, in) : kernel_open(d, in, false);
out:
	if (err) {
		free(in);
		return err;
	}
	*out = in;
	return 0;
}

static void vrdma_close(void *inst)
{
	struct vrdma_inst *in = inst;

	vbd_cm_close(in->cm);	/* before the QPs its IDs name go */
	if (in->fwd) {
		vbd_fwd_close(in->fwd);
		free(in);
		return;
	}
	if (in->kernel) {
		uint64_t tag = attach_tag(in);
		bool linger = in->attach_fd < 0 && in->g->left;

		/* The guest closed the device or the device goes: the attachment ends (the
		 * module revokes it) though its descriptor may live on in the guest. The
		 * guest left the bus (its connection closed): its descriptor, if it took it,
		 * may live on in a forked child or an SCM_RIGHTS receiver, and the objects
		 * with it until its last close, as a uverbs file's (docs/kernel.md). */
		if (in->vmk)
			vbd_vmk_close(in->vmk);	/* its thread uses the descriptor */
		if (in->attach_fd >= 0)
			close(in->attach_fd);
		if (linger)
			vbd_kernel_linger(in->dev, in->g->bus, in->owner_fd, tag, in->g->id);
		else
			vbd_kernel_revoke_on(in->owner_fd, tag);
		free(in);
		return;
	}
	if (in->relayed)
		vrdma_relay_remove(relay, in->vg);
	vrdma_guest_close(in->vg);
	pthread_mutex_lock(&relay_lock);
	if (--relay_users == 0) {
		vrdma_relay_stop(relay);
		relay = NULL;
	}
	pthread_mutex_unlock(&relay_lock);
	free(in);
}

static int vrdma_call(void *inst, uint32_t fn, const void *inp, size_t inlen, void *out,
		      size_t outmax, size_t *outlen)
{
	struct vrdma_inst *in = inst;
	int err;

	if (vbd_cm_is_fn(fn)) {		/* rdma_cm: vbusd's, on both backends */
		if (in->owner_fd >= 0 || in->fwd)
			return -EOPNOTSUPP;	/* not in passthrough mode yet */
		if (!in->cm) {
			err = vbd_cm_open(&in->cm, in->g, &in->dev->cm_pol, in->vg);
			if (err)
				return err;
		}
		return vbd_cm_call(in->cm, fn, inp, inlen, out, outmax, outlen);
	}
	if (in->vmk)
		return vbd_vmk_call(in->vmk, fn, inp, inlen, out, outmax, outlen);
	if (in->kernel)
		return -EOPNOTSUPP;	/* its functions are ioctls on the DEVFD descriptor */
	if (in->fwd)
		return vbd_fwd_call(in->fwd, fn, inp, inlen, out, outmax, outlen);
	err = vrdma_dispatch(in->vg, fn, inp, inlen, out, outmax, outlen);

	/* HELLO names the doorbell the guest will kick: from now on the relay serves it. */
	if (!err && fn == VRDMA_FN_HELLO && !in->relayed) {
		struct vrdma_hello_in h;
		int fd;

		memcpy(&h, inp, VRDMA_HELLO_IN_V1_SIZE);	/* doorbell: in every version */
		if (h.doorbell) {
			err = vbd_guest_signal(in->g, le32toh(h.doorbell), VBUS_SIG_TO_HOST, &fd);
			if (!err)
				err = vrdma_relay_add(relay, in->vg, fd);
			in->relayed = !err;
			if (err)
				*outlen = 0;
		}
	}
	return err;
}

/* DEVFD: the kernel backend's attachment, handed over once; the relay has none. */
static int vrdma_devfd(void *inst, int *fd)
{
	struct vrdma_inst *in = inst;

	if (!in->kernel || in->vmk)
		return -EOPNOTSUPP;	/* relay, or a VM's: the guest uses DEVCALL */
	if (in->attach_fd < 0)
		return -EALREADY;	/* handed out, and vbusd kept no copy */
	*fd = in->attach_fd;
	in->attach_fd = -1;
	return 0;
}

/*
 * CHILD: a child function of the guest's relay attachment for a connection of its own
 * (docs/nesting.md): no wider than this one, charged to it as well. Through a passthrough
 * instance, the level below makes it of our child connection there.
 */
static int vrdma_child(void *inst, const struct vbus_child_in *ci, int *fd,
		       struct vbus_child_out *o, void **token)
{
	struct vrdma_inst *in = inst;
	uint32_t mo = le32toh(ci->max_objects);
	uint64_t mp = le64toh(ci->max_pinned_bytes);
	bool wl = le32toh(ci->flags) & VBUS_CHILD_F_WHITELIST;
	uint32_t qpt = wl ? le32toh(ci->qp_types) : in->vg ? in->vg->pol.qp_types : 0;
	uint32_t acc = wl ? le32toh(ci->access) : in->vg ? in->vg->pol.access : 0;
	struct child_token *t;
	const char *what;
	uint64_t limit;
	int depth;

	if (in->fwd)
		return vbd_fwd_child(in->fwd, ci, fd, o);
	if (in->kernel)
		return -EOPNOTSUPP;	/* the module's: VBK_IOC_CHILD on the guest's descriptor */
	if (!mo)
		return -EINVAL;
	if (mo > in->vg->pol.max_objects || mp > in->vg->pol.max_pinned_bytes) {
		vbd_warn("guest %u: a child wider than its attachment refused (max-objects %u of "
			 "%u, max-pinned %llu of %llu)", in->g->id, mo, in->vg->pol.max_objects,
			 (unsigned long long)mp, (unsigned long long)in->vg->pol.max_pinned_bytes);
		return -EPERM;
	}
	if ((qpt & ~in->vg->pol.qp_types) || (acc & ~in->vg->pol.access)) {
		vbd_warn("guest %u: a child with a wider whitelist refused (QP types %#x of %#x, "
			 "access %#x of %#x)", in->g->id, qpt, in->vg->pol.qp_types, acc,
			 in->vg->pol.access);
		return -EPERM;
	}
	/* The child itself is one object of its parent's (so a parent's max-objects bounds
	 * how many connections its subtree holds); its opens count in its own node, whose
	 * limits bound them all together. */
	depth = vrdma_charge_add(in->vg->charge, 1, 0, &what, &limit);
	if (depth)
		return vbd_quota_hit(in->g, depth > 1 ? "parent max-objects" :
				     "subtree max-objects", limit);
	t = malloc(sizeof(*t));
	if (t)
		t->charge = vrdma_charge_new(in->vg->charge, mo, mp);
	if (!t || !t->charge) {
		free(t);
		vrdma_charge_add(in->vg->charge, -1, 0, NULL, NULL);
		return -ENOMEM;
	}
	t->parent = vrdma_charge_get(in->vg->charge);
	t->dev_gen = in->dev->gen;
	t->max_objects = mo;
	t->max_pinned = mp;
	t->qp_types = qpt;
	t->access = acc;
	*token = t;
	return 0;
}

static void vrdma_child_put(void *token)
{
	struct child_token *t = token;

	vrdma_charge_put(t->charge);
	vrdma_charge_add(t->parent, -1, 0, NULL, NULL);
	vrdma_charge_put(t->parent);
	free(t);
}

/* The instance is going (its device, its guest or vbusd): a forwarded call waiting on the
 * level below ends now. */
static void vrdma_cancel(void *inst)
{
	struct vrdma_inst *in = inst;

	if (in->fwd)
		vbd_fwd_cancel(in->fwd);
}

static int vrdma_release(void *inst, int type, uint32_t id)
{
	struct vrdma_inst *in = inst;

	return in->fwd ? vbd_fwd_release(in->fwd, type, id) : -ENOENT;
}

static int kernel_show(const struct vrdma_inst *in, char *buf, size_t n)
{
	struct vbk_stats st;
	int r = vbd_kernel_stats_on(in->owner_fd, in->g->id, &st);
	char vm[160] = "";

	if (in->vmk) {	/* a VM's: the module (or our thread) drains on its doorbell */
		uint64_t db, ev;
		const char *how = vbd_vmk_counts(in->vmk, &db, &ev);

		if (!r)
			db += st.db_wakes;
		snprintf(vm, sizeof(vm), ",\"vm\":{\"doorbell\":\"%s\",\"doorbells\":%llu,"
			 "\"doorbells_on_worker\":%llu,\"events\":%llu}", how,
			 (unsigned long long)db, (unsigned long long)(r ? 0 : st.db_worker),
			 (unsigned long long)ev);
	}
	if (r)
		return snprintf(buf, n, "{\"backend\":\"kernel\",\"stats_error\":\"%s\"%s}",
				strerror(-r), vm);
	return snprintf(buf, n, "{\"backend\":\"kernel\",\"objects\":%u,\"pinned_bytes\":%llu,"
			"\"wqes\":%llu,\"cqes\":%llu,\"cqes_lost\":%llu,\"errors\":%llu,"
			"\"quota_hits\":{\"max-objects\":%llu,\"max-pinned\":%llu}%s}", st.objects,
			(unsigned long long)st.pinned_bytes, (unsigned long long)st.wqes,
			(unsigned long long)st.cqes, (unsigned long long)st.cqes_lost,
			(unsigned long long)st.errors,
			(unsigned long long)st.quota_objects, (unsigned long long)st.quota_pinned, vm);
}

/* The kernel backend's quotas are the module's to refuse (the relay's call
 * vbd_quota_hit themselves): its counters, named as the relay names them. */
static int vrdma_quota_hits(void *inst, uint64_t *hits, const char **which)
{
	struct vrdma_inst *in = inst;
	struct vbk_stats st;
	int r;

	*hits = 0;
	*which = "";
	if (!in->kernel)
		return 0;
	r = vbd_kernel_stats_on(in->owner_fd, in->g->id, &st);
	if (r)
		return r;
	*hits = st.quota_objects + st.quota_pinned;
	*which = st.quota_objects && st.quota_pinned ? "max-objects,max-pinned" :
		 st.quota_objects ? "max-objects" : st.quota_pinned ? "max-pinned" : "";
	return 0;
}

static int vrdma_show(void *inst, char *buf, size_t n)
{
	struct vrdma_inst *in = inst;
	struct vrdma_guest *vg = in->vg;
	uint64_t sub_pinned;
	uint32_t sub_objects;
	int r;

	if (in->kernel)
		return kernel_show(in, buf, n);
	if (in->fwd)
		return vbd_fwd_show(in->fwd, buf, n);
	/* with the child connections made of it (VBUS_OP_CHILD) and theirs */
	vrdma_charge_read(vg->charge, &sub_objects, &sub_pinned);
	pthread_mutex_lock(&vg->lock);
	r = snprintf(buf, n, "{\"backend\":\"relay\",\"objects\":%u,\"pinned_bytes\":%llu,\"wqes\":%llu,\"cqes\":%llu,"
		     "\"cqes_lost\":%llu,\"relay_errors\":%llu,\"subtree\":{\"objects\":%u,"
		     "\"pinned_bytes\":%llu}}", vg->live, (unsigned long long)vg->pinned,
		     (unsigned long long)vg->n_wqe, (unsigned long long)vg->n_cqe,
		     (unsigned long long)vg->n_cqe_lost,
		     (unsigned long long)vg->n_relay_errors, sub_objects,
		     (unsigned long long)sub_pinned);
	pthread_mutex_unlock(&vg->lock);
	return r;
}

/* The kernel backend: the child functions made of the guest's attachment (a middle level
 * in passthrough), and theirs (VBK_IOC_TREE). */
static int vrdma_tree(void *inst, bool json, const char *indent, char *buf, size_t n)
{
	struct vrdma_inst *in = inst;
	struct vbk_tree_node *t = NULL;
	uint32_t nt = 0;
	int r;

	if (n)
		buf[0] = 0;
	if (!in->kernel)
		return 0;
	r = vbd_kernel_tree_on(in->owner_fd, in->g->id, &t, &nt);
	if (!r && nt)
		r = vrdma_tree_show(t, nt, json, indent, buf, n);
	free(t);
	return r;
}

/* The kernel backend: the module's counters of the guest's attachment (VBK_IOC_STATS) and
 * its objects (VBK_IOC_RES), shown as the relay's are. */
static int kernel_res(const struct vrdma_inst *in, const char *kind, bool json, char *buf,
		      size_t n)
{
	struct vbk_res_obj *objs = NULL;
	struct vbk_stats st;
	uint32_t nobj = 0;
	size_t len;
	int r = vbd_kernel_stats_on(in->owner_fd, in->g->id, &st), rr;

	if (r)
		r = snprintf(buf, n, json ? "\"backend\":\"kernel\",\"counters\":null,"
			     "\"stats_error\":\"%s\"," :
			     " backend kernel (the module's counters: %s)\n", strerror(-r));
	else
		r = snprintf(buf, n, json ? "\"backend\":\"kernel\",\"counters\":{\"objects\":%u,"
			     "\"pinned_bytes\":%llu,\"wqes\":%llu,\"cqes\":%llu,\"doorbells\":%llu,"
			     "\"polls\":%llu,\"events\":%llu,\"errors\":%llu,\"quota_objects\":%llu,"
			     "\"quota_pinned\":%llu}," :
			     " backend kernel objects %u pinned %llu wqes %llu cqes %llu doorbells %llu "
			     "polls %llu events %llu errors %llu quota-hits max-objects %llu "
			     "max-pinned %llu\n", st.objects,
			     (unsigned long long)st.pinned_bytes, (unsigned long long)st.wqes,
			     (unsigned long long)st.cqes, (unsigned long long)st.doorbells,
			     (unsigned long long)st.polls, (unsigned long long)st.events,
			     (unsigned long long)st.errors, (unsigned long long)st.quota_objects,
			     (unsigned long long)st.quota_pinned);
	if (r < 0 || (size_t)r >= n)
		return -ENOSPC;
	len = (size_t)r;
	rr = vbd_kernel_res_on(in->owner_fd, in->g->id, &objs, &nobj);
	if (rr) {
		r = snprintf(buf + len, n - len, json ? "\"objects\":[],\"objects_error\":\"%s\","
			     "\"note\":\"%s\"" : "  (%s: %s)\n", strerror(-rr), KERNEL_NOTE);
		return r < 0 || (size_t)r >= n - len ? -ENOSPC : 0;
	}
	r = snprintf(buf + len, n - len, json ? "\"objects\":[" : "");
	if (r < 0 || (size_t)r >= n - len) {
		free(objs);
		return -ENOSPC;
	}
	len += (size_t)r;
	r = vrdma_res_records(objs, nobj, kind, json, buf + len, n - len);
	free(objs);
	if (r || !json)
		return r;
	len += strlen(buf + len);
	return len + 1 < n ? (strcpy(buf + len, "]"), 0) : -ENOSPC;
}

/* The guest's objects and counters, then the relay's (shared by every guest of vrdma
 * devices): passes, sleeps, wake-ups, time spent spinning, work moved. */
static int vrdma_res(void *inst, const char *kind, bool json, char *buf, size_t n)
{
	struct vrdma_inst *in = inst;
	struct vrdma_relay_stats st = { 0 };
	size_t len;
	int r;

	if (kind && !strcmp(kind, "cm_id")) {	/* vbusd's own, on both backends */
		r = snprintf(buf, n, json ? "\"backend\":\"%s\"," : " backend %s\n",
			     in->kernel ? "kernel" : "relay");
		if (r < 0 || (size_t)r >= n)
			return -ENOSPC;
		return vbd_cm_res(in->cm, json, buf + r, n - (size_t)r);
	}
	if (in->kernel)
		return kernel_res(in, kind, json, buf, n);
	if (in->fwd)
		return vbd_fwd_res(in->fwd, json, buf, n);
	r = snprintf(buf, n, json ? "\"backend\":\"relay\"," : " backend relay");
	if (r < 0 || (size_t)r >= n)
		return -ENOSPC;
	len = (size_t)r;
	r = vrdma_guest_res(in->vg, kind, json, buf + len, n - len);
	if (r)
		return r;
	pthread_mutex_lock(&relay_lock);
	if (relay)
		vrdma_relay_get_stats(relay, &st);
	pthread_mutex_unlock(&relay_lock);
	len = strlen(buf);
	r = snprintf(buf + len, n - len, json ?
		     ",\"relay\":{\"passes\":%llu,\"sleeps\":%llu,\"wakeups\":%llu,"
		     "\"spin_us\":%llu,\"work\":%llu}" :
		     "  relay (all guests): passes %llu sleeps %llu wakeups %llu spin %llu us "
		     "work %llu\n", (unsigned long long)st.passes, (unsigned long long)st.sleeps,
		     (unsigned long long)st.wakeups, (unsigned long long)(st.spin_ns / 1000),
		     (unsigned long long)st.work);
	return r < 0 || (size_t)r >= n - len ? -ENOSPC : 0;
}

const struct vbd_class vbd_class_vrdma = {
	.name = VRDMA_CLASS_NAME,
	.dev_init = vrdma_init,
	.dev_fini = vrdma_fini,
	.open = vrdma_open,
	.close = vrdma_close,
	.call = vrdma_call,
	.devfd = vrdma_devfd,
	.show = vrdma_show,
	.quota_hits = vrdma_quota_hits,
	.res = vrdma_res,
	.tree = vrdma_tree,
	.cancel = vrdma_cancel,
	.child = vrdma_child,
	.child_put = vrdma_child_put,
	.release = vrdma_release,
	.gone = vrdma_gone,
};
