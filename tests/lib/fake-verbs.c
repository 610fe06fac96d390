// SPDX-License-Identifier: MIT
/*
 * fake-verbs: preloaded into a vbusd by unit tests (LD_PRELOAD), so that vrdma devices of
 * both backends can be added and opened on a host with no RDMA device and no module.
 *
 *   libibverbs   ibv_get_device_list() lists one device, named and placed by
 *                $VBUS_FAKE_IBDEV ("NAME:DIR"; DIR stands for its uverbs node: remove it
 *                and vbusd finds the device gone). Opening it gives a context and
 *                completion channels with real eventfds and nothing behind them: enough
 *                for DEVOPEN and DEVCLOSE of a relay device and for the queries (device,
 *                port 1, two GIDs, one P_Key: fixed values shaped like soft-RoCE's, so
 *                that ibv_devinfo -v in a guest has something to print), PDs, CQs and
 *                MRs (counted in vbusd's log; a CQ never completes anything, an MR is a
 *                key and its range), not for other verbs (SRQs: EOPNOTSUPP).
 *   the module   VBK_IOC_ATTACH, VBK_IOC_STATS, VBK_IOC_RES and VBK_IOC_TREE (a fixed
 *                passthrough tree) on a regular file (vbusd opens one as
 *                its admin descriptor when $VBUS_VRDMA_ADMIN names it): ATTACH checks the
 *                request and returns a memfd named "vbk-attach" holding it, so that the
 *                guest that receives it can read what vbusd asked for; a foreign one (a
 *                VM's, flags set) is refused as a module older than them refuses it
 *                (E2BIG), so that a VM is served by the relay; STATS answers the
 *                guest ids attached so far with counters derived from the id.
 * Every other ioctl goes to the real one.
 */
#include <dlfcn.h>
#include <endian.h>
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include <infiniband/verbs.h>
#include <vbus/vrdma-kernel.h>

#define FAKE_API __attribute__((visibility("default")))

/* ---- libibverbs ---- */

FAKE_API struct ibv_device **ibv_get_device_list(int *num)
{
	const char *e = getenv("VBUS_FAKE_IBDEV"), *colon = e ? strchr(e, ':') : NULL;
	struct ibv_device **l = calloc(2, sizeof(*l));

	if (num)
		*num = 0;
	if (!l)
		return NULL;
	if (!colon || colon == e || (size_t)(colon - e) >= sizeof(l[0]->name) ||
	    strlen(colon + 1) >= sizeof(l[0]->dev_path))
		return l;
	l[0] = calloc(1, sizeof(*l[0]));
	if (!l[0])
		return l;
	memcpy(l[0]->name, e, (size_t)(colon - e));
	strcpy(l[0]->dev_path, colon + 1);
	strcpy(l[0]->dev_name, "uverbs-fake");
	l[0]->node_type = IBV_NODE_CA;
	l[0]->transport_type = IBV_TRANSPORT_IB;
	if (num)
		*num = 1;
	return l;
}

FAKE_API void ibv_free_device_list(struct ibv_device **list)
{
	if (!list)
		return;
	free(list[0]);
	free(list);
}

FAKE_API const char *ibv_get_device_name(struct ibv_device *dev)
{
	return dev->name;
}

static int fake_poll_cq(struct ibv_cq *cq, int n, struct ibv_wc *wc)
{
	(void)cq, (void)n, (void)wc;
	return 0;
}

static int fake_req_notify_cq(struct ibv_cq *cq, int solicited)
{
	(void)cq, (void)solicited;
	return 0;
}

FAKE_API struct ibv_context *ibv_open_device(struct ibv_device *dev)
{
	struct ibv_context *c = calloc(1, sizeof(*c));

	if (!c)
		return NULL;
	c->device = dev;
	c->cmd_fd = -1;
	c->num_comp_vectors = 1;
	c->ops.poll_cq = fake_poll_cq;		/* what libibverbs' inline wrappers call */
	c->ops.req_notify_cq = fake_req_notify_cq;
	c->async_fd = eventfd(0, EFD_CLOEXEC);
	if (c->async_fd < 0) {
		free(c);
		return NULL;
	}
	return c;
}

FAKE_API int ibv_close_device(struct ibv_context *c)
{
	close(c->async_fd);
	free(c);
	return 0;
}

FAKE_API struct ibv_comp_channel *ibv_create_comp_channel(struct ibv_context *c)
{
	struct ibv_comp_channel *ch = calloc(1, sizeof(*ch));

	if (!ch)
		return NULL;
	ch->context = c;
	ch->fd = eventfd(0, EFD_CLOEXEC);
	if (ch->fd < 0) {
		free(ch);
		return NULL;
	}
	return ch;
}

FAKE_API int ibv_destroy_comp_channel(struct ibv_comp_channel *ch)
{
	close(ch->fd);
	free(ch);
	return 0;
}

/* The queries: a soft-RoCE-like device with one Ethernet port (legacy entry points: the
 * fake context is not an extended one, so libibverbs' inline wrappers call these). */
FAKE_API int ibv_query_device(struct ibv_context *c, struct ibv_device_attr *a)
{
	(void)c;
	memset(a, 0, sizeof(*a));
	strcpy(a->fw_ver, "0.0.0");
	a->node_guid = htobe64(0x505400fffe123456ull);
	a->sys_image_guid = a->node_guid;
	a->max_mr_size = ~0ull;
	a->page_size_cap = 0xfffff000;
	a->vendor_id = 0xffffff;
	a->max_qp = 1048560;
	a->max_qp_wr = 1048576;
	a->device_cap_flags = 0x21217c76;
	a->max_sge = 32;
	a->max_sge_rd = 32;
	a->max_cq = 1048576;
	a->max_cqe = 32767;
	a->max_mr = 524287;
	a->max_pd = 1048576;
	a->max_qp_rd_atom = 128;
	a->max_res_rd_atom = 258048;
	a->max_qp_init_rd_atom = 128;
	a->atomic_cap = IBV_ATOMIC_HCA;
	a->max_mw = 524287;
	a->max_mcast_grp = 8192;
	a->max_mcast_qp_attach = 56;
	a->max_total_mcast_qp_attach = 458752;
	a->max_ah = 32768;
	a->max_srq = 917503;
	a->max_srq_wr = 1048576;
	a->max_srq_sge = 27;
	a->max_pkeys = 64;
	a->local_ca_ack_delay = 15;
	a->phys_port_cnt = 1;
	return 0;
}

#define FAKE_GIDS 2
#define FAKE_GID_TBL_LEN 16

/* The exported one writes the 48-byte compat structure (what verbs.h's wrapper passes). */
FAKE_API int (ibv_query_port)(struct ibv_context *c, uint8_t port,
			      struct _compat_ibv_port_attr *a)
{
	struct ibv_port_attr p = {
		.state = IBV_PORT_ACTIVE, .max_mtu = IBV_MTU_4096, .active_mtu = IBV_MTU_1024,
		.gid_tbl_len = FAKE_GID_TBL_LEN, .port_cap_flags = 0x00010000,
		.max_msg_sz = 0x800000, .pkey_tbl_len = 1, .active_width = 1, .active_speed = 1,
		.phys_state = 5, .link_layer = IBV_LINK_LAYER_ETHERNET,
	};

	(void)c;
	if (port != 1)
		return EINVAL;
	memcpy((void *)a, &p, 48);
	return 0;
}

static void fake_gid(uint32_t index, struct ibv_gid_entry *e)
{
	static const uint8_t gids[FAKE_GIDS][16] = {
		{ 0xfe, 0x80, 0, 0, 0, 0, 0, 0, 0x52, 0x54, 0x00, 0xff, 0xfe, 0x12, 0x34, 0x56 },
		{ 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 192, 0, 2, 1 },
	};

	memset(e, 0, sizeof(*e));
	memcpy(e->gid.raw, gids[index], 16);
	e->gid_index = index;
	e->port_num = 1;
	e->gid_type = IBV_GID_TYPE_ROCE_V2;
	e->ndev_ifindex = 2;
}

FAKE_API int _ibv_query_gid_ex(struct ibv_context *c, uint32_t port, uint32_t index,
			       struct ibv_gid_entry *e, uint32_t flags, size_t size)
{
	(void)c;
	if (port != 1 || flags || size < sizeof(*e) || index >= FAKE_GID_TBL_LEN)
		return EINVAL;
	if (index >= FAKE_GIDS)
		return ENODATA;
	fake_gid(index, e);
	return 0;
}

FAKE_API ssize_t _ibv_query_gid_table(struct ibv_context *c, struct ibv_gid_entry *e,
				      size_t max, uint32_t flags, size_t size)
{
	(void)c;
	if (flags || size != sizeof(*e))
		return -EINVAL;
	if (max < FAKE_GIDS)
		return -EINVAL;
	for (uint32_t i = 0; i < FAKE_GIDS; i++)
		fake_gid(i, &e[i]);
	return FAKE_GIDS;
}

FAKE_API int ibv_query_pkey(struct ibv_context *c, uint8_t port, int index, __be16 *pkey)
{
	(void)c;
	if (port != 1 || index != 0)
		return EINVAL;
	*pkey = htobe16(0xffff);
	return 0;
}

/* PDs: nothing behind them; each allocation and deallocation logs the number alive on
 * stderr (vbusd's log), so a test can see that none outlives its guest. */
static int pds_alive;

/* One more or one fewer of an object (delta 1 or -1): the number alive into vbusd's log. */
static void count(const char *fn, int *alive, int delta)
{
	fprintf(stderr, "fake-verbs: %s: %d alive\n", fn,
		__atomic_add_fetch(alive, delta, __ATOMIC_RELAXED));
}

FAKE_API struct ibv_pd *ibv_alloc_pd(struct ibv_context *c)
{
	struct ibv_pd *pd = calloc(1, sizeof(*pd));

	if (!pd)
		return NULL;
	pd->context = c;
	count("ibv_alloc_pd", &pds_alive, 1);
	return pd;
}

FAKE_API int ibv_dealloc_pd(struct ibv_pd *pd)
{
	free(pd);
	count("ibv_dealloc_pd", &pds_alive, -1);
	return 0;
}

/* CQs and MRs, counted as PDs are. */
static int cqs_alive, mrs_alive;

FAKE_API struct ibv_cq *ibv_create_cq(struct ibv_context *c, int cqe, void *cq_context,
				      struct ibv_comp_channel *ch, int vector)
{
	struct ibv_cq *cq = calloc(1, sizeof(*cq));

	if (!cq)
		return NULL;
	if (vector) {
		free(cq);
		errno = EINVAL;
		return NULL;
	}
	cq->context = c;
	cq->channel = ch;
	cq->cq_context = cq_context;
	cq->cqe = cqe;
	pthread_mutex_init(&cq->mutex, NULL);
	pthread_cond_init(&cq->cond, NULL);
	count("ibv_create_cq", &cqs_alive, 1);
	return cq;
}

FAKE_API int ibv_destroy_cq(struct ibv_cq *cq)
{
	free(cq);
	count("ibv_destroy_cq", &cqs_alive, -1);
	return 0;
}

static struct ibv_mr *fake_reg_mr(struct ibv_pd *pd, void *addr, size_t length, uint64_t iova)
{
	static uint32_t next_key = 0x100;
	struct ibv_mr *mr = calloc(1, sizeof(*mr));
	int n;

	if (!mr)
		return NULL;
	mr->context = pd->context;
	mr->pd = pd;
	mr->addr = addr;
	mr->length = length;
	mr->lkey = mr->rkey = __atomic_add_fetch(&next_key, 0x100, __ATOMIC_RELAXED);
	n = __atomic_add_fetch(&mrs_alive, 1, __ATOMIC_RELAXED);
	fprintf(stderr, "fake-verbs: ibv_reg_mr: %d alive, length %zu, iova %#llx\n", n, length,
		(unsigned long long)iova);
	return mr;
}

#undef ibv_reg_mr
#undef ibv_reg_mr_iova
FAKE_API struct ibv_mr *ibv_reg_mr(struct ibv_pd *pd, void *addr, size_t length, int access)
{
	(void)access;
	return fake_reg_mr(pd, addr, length, (uintptr_t)addr);
}

FAKE_API struct ibv_mr *ibv_reg_mr_iova(struct ibv_pd *pd, void *addr, size_t length,
					uint64_t iova, int access)
{
	(void)access;
	return fake_reg_mr(pd, addr, length, iova);
}

FAKE_API struct ibv_mr *ibv_reg_mr_iova2(struct ibv_pd *pd, void *addr, size_t length,
					 uint64_t iova, unsigned int access)
{
	(void)access;
	return fake_reg_mr(pd, addr, length, iova);
}

FAKE_API int ibv_dereg_mr(struct ibv_mr *mr)
{
	free(mr);
	count("ibv_dereg_mr", &mrs_alive, -1);
	return 0;
}

FAKE_API struct ibv_srq *ibv_create_srq(struct ibv_pd *pd, struct ibv_srq_init_attr *a)
{
	(void)pd, (void)a;
	errno = EOPNOTSUPP;
	return NULL;
}

/* ---- the module's admin descriptor ---- */

static unsigned int attached[256];	/* guest ids, as ATTACH saw them */
static int n_attached;
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;

static int fake_attach(const struct vbk_attach *a)
{
	static const uint8_t zero[8];
	int fd;

	if (!memchr(a->ibdev, 0, sizeof(a->ibdev)) || !a->port || memcmp(a->reserved0, zero, 3) ||
	    !a->guest_id || a->tag >> 32 != a->guest_id) {
		errno = EINVAL;
		return -1;
	}
	if (a->flags || a->ram_fd) {	/* as a module older than foreign attachments */
		errno = E2BIG;
		return -1;
	}
	fd = memfd_create("vbk-attach", MFD_CLOEXEC);
	if (fd < 0)
		return -1;
	if (write(fd, a, sizeof(*a)) != (ssize_t)sizeof(*a)) {
		close(fd);
		errno = EIO;
		return -1;
	}
	pthread_mutex_lock(&lock);
	if (n_attached < 256)
		attached[n_attached++] = a->guest_id;
	pthread_mutex_unlock(&lock);
	return fd;
}

static int fake_stats(struct vbk_stats *st)
{
	int found = 0;
	uint32_t id = st->guest_id;

	pthread_mutex_lock(&lock);
	for (int i = 0; i < n_attached; i++)
		found |= attached[i] == id;
	pthread_mutex_unlock(&lock);
	if (!found) {
		errno = ENOENT;
		return -1;
	}
	*st = (struct vbk_stats){ .guest_id = id, .objects = 3, .pinned_bytes = 4096,
				  .wqes = 1000 + id, .cqes = 2000 + id, .doorbells = 30,
				  .polls = 40, .events = 5, .errors = 0 };
	return 0;
}

/* Three objects, as the module lists a guest's PD, CQ and QP (VBK_IOC_RES), in two calls
 * when the caller's room is short, as the module's count says. */
static int fake_res(struct vbk_res *r)
{
	const struct vbk_res_obj objs[3] = {
		{ .handle = 1, .type = 1, .users = 2 },
		{ .handle = 2, .type = 3, .real = 63, .v = { 64 } },
		{ .handle = 3, .type = 4, .real = 17 + r->guest_id, .pd = 1, .qp_type = 2,
		  .state = 3, .v = { 5, 4, 7, 6 } },
	};
	struct vbk_stats st = { .guest_id = r->guest_id };

	if (fake_stats(&st))
		return -1;
	memcpy((void *)(uintptr_t)r->objs, objs, (r->count < 3 ? r->count : 3) * sizeof(objs[0]));
	r->count = 3;
	return 0;
}

/* A passthrough tree under every attachment (VBK_IOC_TREE): child 7 (pid 4242) with its own
 * child 9 (pid 4343), and child 8, revoked; in two calls when the room is short. */
static int fake_tree(struct vbk_tree *t)
{
	const struct vbk_tree_node nodes[3] = {
		{ .depth = 1, .guest_id = 7, .pid = 4242, .objects = 4, .pinned_bytes = 8192 },
		{ .depth = 2, .guest_id = 9, .pid = 4343, .objects = 1 },
		{ .depth = 1, .guest_id = 8, .flags = VBK_TREE_REVOKED },
	};
	struct vbk_stats st = { .guest_id = t->guest_id };

	if (fake_stats(&st))
		return -1;
	memcpy((void *)(uintptr_t)t->nodes, nodes, (t->count < 3 ? t->count : 3) * sizeof(nodes[0]));
	t->count = 3;
	return 0;
}

FAKE_API int ioctl(int fd, unsigned long req, ...)
{
	typedef int (*ioctl_fn)(int, unsigned long, ...);
	static ioctl_fn real;	/* threads may look it up at once: the same value */
	ioctl_fn f;
	struct stat sb;
	va_list ap;
	void *arg;

	va_start(ap, req);
	arg = va_arg(ap, void *);
	va_end(ap);
	if ((req == VBK_IOC_ATTACH || req == VBK_IOC_STATS || req == VBK_IOC_REVOKE ||
	     req == VBK_IOC_RES || req == VBK_IOC_TREE) && !fstat(fd, &sb) && S_ISREG(sb.st_mode))
		return req == VBK_IOC_ATTACH ? fake_attach(arg) :
		       req == VBK_IOC_STATS ? fake_stats(arg) :
		       req == VBK_IOC_RES ? fake_res(arg) :
		       req == VBK_IOC_TREE ? fake_tree(arg) : 0;
	f = __atomic_load_n(&real, __ATOMIC_ACQUIRE);
	if (!f) {
		f = (ioctl_fn)dlsym(RTLD_NEXT, "ioctl");
		__atomic_store_n(&real, f, __ATOMIC_RELEASE);
	}
	return f(fd, req, arg);
}
