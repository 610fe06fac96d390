// SPDX-License-Identifier: MIT
/*
 * guest/nest-child-relay DEV: run as a guest of a relay-backend vrdma device (under
 * vbus-run) by tests/device/guest-nest-pt.sh. Drives VBUS_OP_CHILD (docs/abi.md, CHILD) on
 * its own attachment, as a hostile or careless middle level would: children wider than
 * their parent are refused (EPERM), zero objects too (EINVAL); a child connection opens its
 * parent's device only (ENOENT for another name); a grandchild, and its objects, are
 * charged to its parent too (EDQUOT in both); a child's whitelist is the one asked for, and
 * a grandchild's wider than it is refused (EPERM); closing a child's handle ends the
 * grandchild made of it, while the guest's own attachment keeps working. Exit 0 pass, 1 fail, 77 skip (not the
 * relay backend, or a bus that makes no children).
 */
#include <dlfcn.h>
#include <endian.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <infiniband/verbs.h>
#include <vbus/libvbus.h>
#include <vbus/verbs-nest.h>
#include <vbus/vrdma.h>

#define fail(...) do { printf("FAIL line %d: ", __LINE__); printf(__VA_ARGS__); printf("\n"); \
			exit(1); } while (0)
#define check(c, ...) do { if (!(c)) fail(__VA_ARGS__); } while (0)

struct child {
	struct vbus_conn *conn;
	uint32_t h;
};

/* The child asked of child `of` (VBUS_OP_CHILD on its connection) with these limits and
 * whitelist: 0 or -errno. */
static int vchild(const struct child *of, uint32_t objs, uint64_t pinned, uint32_t qpt,
		  uint32_t acc, int *fd, char bus[VBUS_NAME_MAX])
{
	struct vbus_child_in in = { .max_objects = htole32(objs),
				    .flags = htole32(VBUS_CHILD_F_WHITELIST),
				    .max_pinned_bytes = htole64(pinned), .qp_types = htole32(qpt),
				    .access = htole32(acc) };
	struct vbus_child_out o;
	int r = vbus_child(of->conn, of->h, &in, fd, &o);

	if (!r)
		memcpy(bus, o.bus, VBUS_NAME_MAX);
	return r;
}

/* The child asked through the guest library (of our own attachment): 0 or -errno. */
static int lchild(vbus_verbs_child2_fn *fn, struct ibv_context *ctx, uint32_t objs,
		  uint64_t pinned, uint32_t qpt, uint32_t acc, int *fd, char bus[VBUS_NAME_MAX])
{
	struct vbus_verbs_child_req req = { .max_objects = objs, .max_pinned_bytes = pinned,
					    .qp_types = qpt, .access = acc };
	char dev[VBUS_NAME_MAX];

	return fn(ctx, &req, fd, bus, dev, VBUS_NAME_MAX);
}

/* A child connection (of our attachment, or of child `of`, with the whitelist qpt, acc),
 * with the device open on it and HELLO done: 0 or -errno (-ERANGE: HELLO's limits or
 * whitelist are not the ones asked for). */
static int child(vbus_verbs_child2_fn *fn, struct ibv_context *ctx, const struct child *of,
		 const char *dev, uint32_t objs, uint64_t pinned, uint32_t qpt, uint32_t acc,
		 struct child *out)
{
	struct vrdma_hello_in hi = { .abi_version = VRDMA_ABI_VERSION,
				     .abi_min = VRDMA_ABI_MIN_VERSION };
	struct vrdma_hello_out ho;
	char bus[VBUS_NAME_MAX];
	size_t n;
	int r, fd;

	if (of)
		r = vchild(of, objs, pinned, qpt, acc, &fd, bus);
	else
		r = lchild(fn, ctx, objs, pinned, qpt, acc, &fd, bus);
	if (r)
		return r;
	r = vbus_connect_fd(fd, bus, &out->conn);
	if (r)
		return r;
	r = vbus_devopen(out->conn, dev, VRDMA_CLASS_NAME, &out->h);
	if (!r)
		r = vbus_devcall(out->conn, out->h, VRDMA_FN_HELLO, &hi, sizeof(hi), &ho,
				 sizeof(ho), &n);
	if (!r && (le32toh(ho.max_objects) != objs || le32toh(ho.qp_types) != qpt ||
		   le32toh(ho.access) != acc))
		r = -ERANGE;
	return r;
}

/* ALLOC_PD: its handle (> 0), or -errno. */
static long alloc_pd(const struct child *c)
{
	struct vrdma_handle o;
	size_t n;
	int r = vbus_devcall(c->conn, c->h, VRDMA_FN_ALLOC_PD, NULL, 0, &o, sizeof(o), &n);

	return r < 0 ? r : (long)o.handle;
}

static int dealloc_pd(const struct child *c, uint32_t h)
{
	struct vrdma_handle i = { .handle = h };
	size_t n;

	return vbus_devcall(c->conn, c->h, VRDMA_FN_DEALLOC_PD, &i, sizeof(i), NULL, 0, &n);
}

int main(int argc, char **argv)
{
	vbus_verbs_query_limits_fn *q;
	vbus_verbs_child2_fn *fn;
	struct vbus_verbs_limits lim;
	struct ibv_device **list;
	struct ibv_context *ctx = NULL;
	struct child c, gc, x, y;
	struct ibv_pd *pd;
	long gpd[8], cpd[8];
	char bus[VBUS_NAME_MAX];
	int n, fd;
	uint32_t h;

	check(argc == 2, "usage: nest-child-relay DEV");
	list = ibv_get_device_list(&n);
	for (int i = 0; list && i < n; i++)
		if (!strcmp(ibv_get_device_name(list[i]), argv[1]))
			ctx = ibv_open_device(list[i]);
	check(ctx, "cannot open %s", argv[1]);
	q = (vbus_verbs_query_limits_fn *)dlsym(RTLD_DEFAULT, VBUS_VERBS_QUERY_LIMITS);
	fn = (vbus_verbs_child2_fn *)dlsym(RTLD_DEFAULT, VBUS_VERBS_CHILD2);
	check(q && fn && !q(ctx, &lim), "not a vbus device (run under vbus-run)");
	if (lim.kernel || !lim.child) {
		printf("SKIP: %s is not on the relay backend, or its bus makes no children\n",
		       argv[1]);
		return 77;
	}
	check(lim.max_objects > 16 && lim.max_pinned_bytes >= (1 << 20),
	      "the device's limits (%u objects) are too small for this test", lim.max_objects);

	/* Wider than the parent, or nonsense: refused, nothing made. */
	check(lchild(fn, ctx, lim.max_objects + 1, 0, VRDMA_WL_QP_TYPES, VRDMA_WL_ACCESS, &fd, bus) == -EPERM,
	      "a child with more objects than its parent");
	check(lchild(fn, ctx, 8, lim.max_pinned_bytes + 1, VRDMA_WL_QP_TYPES, VRDMA_WL_ACCESS,
		     &fd, bus) == -EPERM,
	      "a child with more pinned bytes than its parent");
	check(lchild(fn, ctx, 0, 0, VRDMA_WL_QP_TYPES, VRDMA_WL_ACCESS, &fd, bus) == -EINVAL, "a child with no objects");
	printf("ok   wider than the parent: EPERM (objects, pinned bytes); 0 objects: EINVAL\n");

	/* A child of 8 objects; on it only the parent's device opens. */
	check(!child(fn, ctx, NULL, argv[1], 8, 1 << 20, VRDMA_WL_QP_TYPES, VRDMA_WL_ACCESS, &c),
	      "a child of 8 objects");
	check(vbus_devopen(c.conn, "no-such-dev", VRDMA_CLASS_NAME, &h) == -ENOENT,
	      "another device opened on a child connection");
	check(vchild(&c, 9, 0, VRDMA_WL_QP_TYPES, VRDMA_WL_ACCESS, &fd, bus) == -EPERM,
	      "a grandchild wider than its child");
	printf("ok   a child connection of 8 objects: HELLO says 8; another device ENOENT; a "
	       "grandchild of 9 EPERM\n");

	/* Its child of 8 too: the grandchild itself, 4 PDs there and 3 in the child fill the
	 * child's 8. */
	check(!child(fn, ctx, &c, argv[1], 8, 0, VRDMA_WL_QP_TYPES, VRDMA_WL_ACCESS, &gc),
	      "a grandchild of 8 objects");
	for (int i = 0; i < 4; i++)
		check((gpd[i] = alloc_pd(&gc)) > 0, "grandchild PD %d: %s", i, strerror((int)-gpd[i]));
	for (int i = 0; i < 3; i++)
		check((cpd[i] = alloc_pd(&c)) > 0, "child PD %d: %s", i, strerror((int)-cpd[i]));
	check(alloc_pd(&c) == -EDQUOT, "a 9th object in the child's subtree, in the child");
	check(alloc_pd(&gc) == -EDQUOT, "a 9th object in the child's subtree, in the grandchild");
	check(!dealloc_pd(&gc, (uint32_t)gpd[3]), "dealloc of a grandchild PD");
	check((cpd[3] = alloc_pd(&c)) > 0, "the child's PD after the grandchild gave one back");
	printf("ok   the grandchild + its 4 PDs + the child's 3 PDs fill the child's 8, then "
	       "EDQUOT in both; one given back, one taken\n");

	/* Closing the child's handle ends the grandchild's connection; the child's other
	 * handles and our own attachment go on. */
	check(!vbus_devclose(c.conn, c.h), "close of the child's handle");
	check(alloc_pd(&gc) < 0, "the grandchild still works after its parent's handle closed");
	vbus_disconnect(gc.conn);
	vbus_disconnect(c.conn);
	pd = ibv_alloc_pd(ctx);
	check(pd, "our own attachment after its children ended: %s", strerror(errno));
	ibv_dealloc_pd(pd);
	/* What they held is given back: a new child fills 8 again. */
	check(!child(fn, ctx, NULL, argv[1], 8, 0, VRDMA_WL_QP_TYPES, VRDMA_WL_ACCESS, &x),
	      "a new child of 8 objects");
	check(!child(fn, ctx, &x, argv[1], 8, 0, VRDMA_WL_QP_TYPES, VRDMA_WL_ACCESS, &y),
	      "a new grandchild of 8 objects");
	for (int i = 0; i < 7; i++)
		check(alloc_pd(&y) > 0, "the new grandchild's PD %d", i);
	check(alloc_pd(&x) == -EDQUOT, "past 8 in the new child");
	check(alloc_pd(&y) == -EDQUOT, "past 8 in the new grandchild");
	vbus_disconnect(y.conn);
	vbus_disconnect(x.conn);
	printf("ok   closing the child's handle ended the grandchild (its call failed); our own "
	       "attachment works; a new child and grandchild hold 8 again (the grandchild and 7 PDs)\n");
	/* A child's whitelist: the one asked for (HELLO says it), and a grandchild's wider
	 * than it refused. */
	check(!child(fn, ctx, NULL, argv[1], 2, 0, VRDMA_QPT_BIT(IBV_QPT_RC),
		     IBV_ACCESS_LOCAL_WRITE, &x), "a child with RC and local write only");
	check(vchild(&x, 1, 0, VRDMA_QPT_BIT(IBV_QPT_RC) | VRDMA_QPT_BIT(IBV_QPT_UD),
		     IBV_ACCESS_LOCAL_WRITE, &fd, bus) == -EPERM, "a child of it with UD too");
	check(vchild(&x, 1, 0, VRDMA_QPT_BIT(IBV_QPT_RC),
		     IBV_ACCESS_LOCAL_WRITE | IBV_ACCESS_REMOTE_READ, &fd, bus) == -EPERM,
	      "a child of it with remote read too");
	check(lchild(fn, ctx, 1, 0, VRDMA_WL_QP_TYPES | VRDMA_QPT_BIT(IBV_QPT_RAW_PACKET),
		     VRDMA_WL_ACCESS, &fd, bus) == -EPERM, "a child with RAW_PACKET");
	vbus_disconnect(x.conn);
	printf("ok   a child's whitelist (RC, local write) is the one asked for; wider than its "
	       "parent's (UD, remote read; RAW_PACKET of ours): EPERM\n");

	ibv_close_device(ctx);
	ibv_free_device_list(list);
	return 0;
}
