// SPDX-License-Identifier: MIT
/*
 * guest/nest-child-relay DEV: run as a guest of a relay-backend vrdma device (under
 * vbus-run) by tests/device/guest-nest-pt.sh. Drives VBUS_OP_CHILD (docs/abi.md, CHILD) on
 * its own attachment, as a hostile or careless middle level would: children wider than
 * their parent are refused (EPERM), zero objects too (EINVAL); a child connection opens its
 * parent's device only (ENOENT for another name); a grandchild, and its objects, are
 * charged to its parent too (EDQUOT in both); closing a child's handle ends the grandchild made of it,
 * while the guest's own attachment keeps working. Exit 0 pass, 1 fail, 77 skip (not the
 * relay backend, or a bus that makes no children).
 */
#include <dlfcn.h>
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

/* A child connection (of our attachment, or of child `of`), with the device open on it
 * and HELLO done: 0 or -errno. */
static int child(vbus_verbs_child_fn *fn, struct ibv_context *ctx, const struct child *of,
		 const char *dev, uint32_t objs, uint64_t pinned, struct child *out)
{
	struct vrdma_hello_in hi = { .abi_version = VRDMA_ABI_VERSION,
				     .abi_min = VRDMA_ABI_MIN_VERSION };
	struct vrdma_hello_out ho;
	char bus[VBUS_NAME_MAX];
	size_t n;
	int r, fd;

	if (of) {
		r = vbus_child(of->conn, of->h, objs, pinned, &fd, bus);
	} else {
		r = fn(ctx, objs, pinned, &fd, bus, sizeof(bus));
	}
	if (r)
		return r;
	r = vbus_connect_fd(fd, bus, &out->conn);
	if (r)
		return r;
	r = vbus_devopen(out->conn, dev, VRDMA_CLASS_NAME, &out->h);
	if (!r)
		r = vbus_devcall(out->conn, out->h, VRDMA_FN_HELLO, &hi, sizeof(hi), &ho,
				 sizeof(ho), &n);
	if (!r && ho.max_objects != objs)
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
	vbus_verbs_child_fn *fn;
	struct vbus_verbs_limits lim;
	struct ibv_device **list;
	struct ibv_context *ctx = NULL;
	struct child c, gc, x, y;
	struct ibv_pd *pd;
	long gpd[8], cpd[8];
	int n, fd;
	uint32_t h;

	check(argc == 2, "usage: nest-child-relay DEV");
	list = ibv_get_device_list(&n);
	for (int i = 0; list && i < n; i++)
		if (!strcmp(ibv_get_device_name(list[i]), argv[1]))
			ctx = ibv_open_device(list[i]);
	check(ctx, "cannot open %s", argv[1]);
	q = (vbus_verbs_query_limits_fn *)dlsym(RTLD_DEFAULT, VBUS_VERBS_QUERY_LIMITS);
	fn = (vbus_verbs_child_fn *)dlsym(RTLD_DEFAULT, VBUS_VERBS_CHILD);
	check(q && fn && !q(ctx, &lim), "not a vbus device (run under vbus-run)");
	if (lim.kernel || !lim.child) {
		printf("SKIP: %s is not on the relay backend, or its bus makes no children\n",
		       argv[1]);
		return 77;
	}
	check(lim.max_objects > 16 && lim.max_pinned_bytes >= (1 << 20),
	      "the device's limits (%u objects) are too small for this test", lim.max_objects);

	/* Wider than the parent, or nonsense: refused, nothing made. */
	check(fn(ctx, lim.max_objects + 1, 0, &fd, (char[32]){ 0 }, 32) == -EPERM,
	      "a child with more objects than its parent");
	check(fn(ctx, 8, lim.max_pinned_bytes + 1, &fd, (char[32]){ 0 }, 32) == -EPERM,
	      "a child with more pinned bytes than its parent");
	check(fn(ctx, 0, 0, &fd, (char[32]){ 0 }, 32) == -EINVAL, "a child with no objects");
	printf("ok   wider than the parent: EPERM (objects, pinned bytes); 0 objects: EINVAL\n");

	/* A child of 8 objects; on it only the parent's device opens. */
	check(!child(fn, ctx, NULL, argv[1], 8, 1 << 20, &c), "a child of 8 objects");
	check(vbus_devopen(c.conn, "no-such-dev", VRDMA_CLASS_NAME, &h) == -ENOENT,
	      "another device opened on a child connection");
	check(vbus_child(c.conn, c.h, 9, 0, &fd, (char[VBUS_NAME_MAX]){ 0 }) == -EPERM, "a grandchild wider than its child");
	printf("ok   a child connection of 8 objects: HELLO says 8; another device ENOENT; a "
	       "grandchild of 9 EPERM\n");

	/* Its child of 8 too: the grandchild itself, 4 PDs there and 3 in the child fill the
	 * child's 8. */
	check(!child(fn, ctx, &c, argv[1], 8, 0, &gc), "a grandchild of 8 objects");
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
	check(!child(fn, ctx, NULL, argv[1], 8, 0, &x), "a new child of 8 objects");
	check(!child(fn, ctx, &x, argv[1], 8, 0, &y), "a new grandchild of 8 objects");
	for (int i = 0; i < 7; i++)
		check(alloc_pd(&y) > 0, "the new grandchild's PD %d", i);
	check(alloc_pd(&x) == -EDQUOT, "past 8 in the new child");
	check(alloc_pd(&y) == -EDQUOT, "past 8 in the new grandchild");
	vbus_disconnect(y.conn);
	vbus_disconnect(x.conn);
	printf("ok   closing the child's handle ended the grandchild (its call failed); our own "
	       "attachment works; a new child and grandchild hold 8 again (the grandchild and 7 PDs)\n");
	ibv_close_device(ctx);
	ibv_free_device_list(list);
	return 0;
}
