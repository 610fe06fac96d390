// SPDX-License-Identifier: MIT
/*
 * guest/nest-child DEV: run as a guest of a kernel-backend vrdma device (under vbus-run) by
 * tests/device/guest-nest-pt.sh. Drives VBK_IOC_CHILD (docs/kernel.md, "Child
 * attachments") on the descriptor its guest library holds, as a hostile or careless
 * middle level would: children wider than their parent are refused (EPERM), bad fields
 * too (EINVAL), a child wider than what is left (EDQUOT); a grandchild's objects are
 * charged to its parent too; depth and children are bounded (ELOOP, EMLINK); closing or
 * revoking a parent revokes its subtree (DEVICE_FATAL, then EIO), while the guest's own
 * attachment keeps working. Exit 0 pass, 1 fail, 77 skip (not the kernel backend).
 */
#include <dlfcn.h>
#include <endian.h>
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>
#include <infiniband/verbs.h>
#include <vbus/verbs-nest.h>
#include <vbus/vrdma.h>
#include <vbus/vrdma-kernel.h>

#define fail(...) do { printf("FAIL line %d: ", __LINE__); printf(__VA_ARGS__); printf("\n"); \
			exit(1); } while (0)
#define check(c, ...) do { if (!(c)) fail(__VA_ARGS__); } while (0)

static struct vbus_verbs_limits lim;

/* A child of fd: its descriptor, or -errno. */
static int child(int fd, uint32_t objs, uint64_t pinned, uint32_t gid, uint64_t tag)
{
	struct vbk_child c = { .max_objects = objs, .max_pinned_bytes = pinned,
			       .gid_index = gid, .guest_id = (uint32_t)tag, .tag = tag };
	int r = ioctl(fd, VBK_IOC_CHILD, &c);

	return r < 0 ? -errno : r;
}

static int child_raw(int fd, struct vbk_child *c)
{
	return ioctl(fd, VBK_IOC_CHILD, c) < 0 ? -errno : 0;
}

static long call(int fd, uint32_t fn, const void *in, uint32_t inlen, void *out, uint32_t outlen)
{
	struct vbk_call c = { .fn = fn, .in_len = inlen, .out_len = outlen,
			      .in = (uintptr_t)in, .out = (uintptr_t)out };
	long r = ioctl(fd, VBK_IOC_CALL, &c);

	return r < 0 ? -errno : r;
}

/* HELLO on an attachment: its max_objects, or -errno. */
static long hello(int fd)
{
	struct vrdma_hello_in hi = { .abi_version = VRDMA_ABI_VERSION,
				     .abi_min = VRDMA_ABI_MIN_VERSION };
	struct vrdma_hello_out ho;
	long r = call(fd, VRDMA_FN_HELLO, &hi, sizeof(hi), &ho, sizeof(ho));

	return r < 0 ? r : (long)ho.max_objects;
}

/* A child of fd with a whitelist (VBK_CHILD_F_WHITELIST): its descriptor, or -errno. */
static int child_wl(int fd, uint32_t gid, uint32_t qpt, uint32_t acc)
{
	struct vbk_child c = { .max_objects = 2, .gid_index = gid, .guest_id = 50, .tag = 50,
			       .flags = VBK_CHILD_F_WHITELIST, .qp_types = qpt, .access = acc };
	int r = ioctl(fd, VBK_IOC_CHILD, &c);

	return r < 0 ? -errno : r;
}

/* HELLO's whitelist on an attachment: 0, or -errno (-ERANGE: not qpt, acc). */
static long hello_wl(int fd, uint32_t qpt, uint32_t acc)
{
	struct vrdma_hello_in hi = { .abi_version = VRDMA_ABI_VERSION,
				     .abi_min = VRDMA_ABI_MIN_VERSION };
	struct vrdma_hello_out ho;
	long r = call(fd, VRDMA_FN_HELLO, &hi, sizeof(hi), &ho, sizeof(ho));

	return r < 0 ? r : le32toh(ho.qp_types) == qpt && le32toh(ho.access) == acc ? 0 : -ERANGE;
}

/* ALLOC_PD: its handle (> 0), or -errno. */
static long alloc_pd(int fd)
{
	struct vrdma_handle o;
	long r = call(fd, VRDMA_FN_ALLOC_PD, NULL, 0, &o, sizeof(o));

	return r < 0 ? r : (long)o.handle;
}

static long dealloc_pd(int fd, uint32_t h)
{
	struct vrdma_handle i = { .handle = h };

	return call(fd, VRDMA_FN_DEALLOC_PD, &i, sizeof(i), NULL, 0);
}

/* DEVICE_FATAL queued on fd within a second. */
static int got_fatal(int fd)
{
	struct pollfd p = { .fd = fd, .events = POLLIN };
	struct vbk_event ev[8];
	ssize_t n;

	while (poll(&p, 1, 1000) == 1) {
		n = read(fd, ev, sizeof(ev));
		if (n <= 0)
			return 0;
		for (ssize_t i = 0; i < n / (ssize_t)sizeof(ev[0]); i++)
			if (ev[i].type == IBV_EVENT_DEVICE_FATAL)
				return 1;
	}
	return 0;
}

int main(int argc, char **argv)
{
	vbus_verbs_query_limits_fn *q;
	vbus_verbs_query_whitelist_fn *wq;
	uint32_t qpt, acc;
	struct ibv_device **list;
	struct ibv_context *ctx = NULL;
	struct vbk_child bad;
	struct ibv_pd *pd;
	int n, p, c, g, x, kids[VBK_MAX_CHILDREN + 1], chain[VBK_MAX_DEPTH + 2], depth = 0, nk;
	long h, gpd[8], cpd[8];
	uint64_t mib = 1 << 20;
	uint32_t gid;

	check(argc == 2, "usage: nest-child DEV");
	list = ibv_get_device_list(&n);
	for (int i = 0; list && i < n; i++)
		if (!strcmp(ibv_get_device_name(list[i]), argv[1]))
			ctx = ibv_open_device(list[i]);
	check(ctx, "cannot open %s", argv[1]);
	q = (vbus_verbs_query_limits_fn *)dlsym(RTLD_DEFAULT, VBUS_VERBS_QUERY_LIMITS);
	check(q && !q(ctx, &lim), "not a vbus device (run under vbus-run)");
	if (!lim.kernel) {
		printf("SKIP: %s is not on the kernel backend\n", argv[1]);
		return 77;
	}
	p = ctx->cmd_fd;	/* the guest library's descriptor of our attachment */
	gid = lim.gid_index;
	check(lim.max_objects > 64 && lim.max_pinned_bytes >= 8 * mib,
	      "the device's limits (%u objects, %llu bytes) are too small for this test",
	      lim.max_objects, (unsigned long long)lim.max_pinned_bytes);

	/* Wider than the parent, or nonsense: refused, nothing made. */
	check(child(p, lim.max_objects + 1, mib, gid, 1) == -EPERM, "max_objects+1 not EPERM");
	check(child(p, 1, lim.max_pinned_bytes + 1, gid, 1) == -EPERM, "max_pinned+1 not EPERM");
	check(child(p, 1, mib, gid + 1, 1) == -EPERM, "another GID index not EPERM");
	check(child(p, 0, mib, gid, 1) == -EINVAL, "max_objects 0 not EINVAL");
	bad = (struct vbk_child){ .max_objects = 1, .gid_index = gid, .flags = 2 };
	check(child_raw(p, &bad) == -EINVAL, "an unknown flag not EINVAL");
	bad = (struct vbk_child){ .max_objects = 1, .gid_index = gid, .reserved = 1 };
	check(child_raw(p, &bad) == -EINVAL, "reserved not EINVAL");
	bad = (struct vbk_child){ .max_objects = 1, .gid_index = gid, .qp_types = 4 };
	check(child_raw(p, &bad) == -EINVAL, "a whitelist without VBK_CHILD_F_WHITELIST not EINVAL");
	check(ioctl(p, _IOW(VBK_IOC_MAGIC, 0x13, uint64_t), &bad) < 0 && errno == ENOTTY,
	      "a CHILD of another size not ENOTTY");
	check(ioctl(p, VBK_IOC_CHILD, (void *)8) < 0 && errno == EFAULT, "bad pointer not EFAULT");
	printf("ok   wider than the parent: EPERM (objects, pinned bytes, GID index); bad fields: EINVAL\n");

	/* A child's whitelist: the one asked for; a grandchild's wider than it, EPERM. */
	wq = (vbus_verbs_query_whitelist_fn *)dlsym(RTLD_DEFAULT, VBUS_VERBS_QUERY_WHITELIST);
	check(wq && !wq(ctx, &qpt, &acc) && !hello_wl(p, qpt, acc),
	      "our own HELLO's whitelist is not the library's");
	check(child_wl(p, gid, VRDMA_WL_QP_TYPES | VRDMA_QPT_BIT(IBV_QPT_RAW_PACKET),
		       acc) == -EPERM, "a child with RAW_PACKET not EPERM");
	c = child_wl(p, gid, VRDMA_QPT_BIT(IBV_QPT_RC), IBV_ACCESS_LOCAL_WRITE);
	check(c >= 0, "a child with RC and local write only: %s", strerror(-c));
	check(!hello_wl(c, VRDMA_QPT_BIT(IBV_QPT_RC), IBV_ACCESS_LOCAL_WRITE),
	      "the child's HELLO does not say RC, local write");
	check(child_wl(c, gid, VRDMA_QPT_BIT(IBV_QPT_RC) | VRDMA_QPT_BIT(IBV_QPT_UD),
		       IBV_ACCESS_LOCAL_WRITE) == -EPERM, "a grandchild with UD too not EPERM");
	check(child_wl(c, gid, VRDMA_QPT_BIT(IBV_QPT_RC),
		       IBV_ACCESS_LOCAL_WRITE | IBV_ACCESS_REMOTE_READ) == -EPERM,
	      "a grandchild with remote read too not EPERM");
	x = child(c, 1, 0, gid, 51);
	check(x >= 0 && !hello_wl(x, VRDMA_QPT_BIT(IBV_QPT_RC), IBV_ACCESS_LOCAL_WRITE),
	      "a grandchild without VBK_CHILD_F_WHITELIST does not have its parent's whitelist");
	close(x);
	close(c);
	printf("ok   a child's whitelist (RC, local write) is the one asked for, a grandchild "
	       "without one has it too; wider (UD, remote read; RAW_PACKET of ours): EPERM\n");

	/* C under us, G under C: a grandchild no wider than C, charged to C too. */
	c = child(p, 8, 4 * mib, gid, 10);
	check(c >= 0, "child of 8 objects: %s", strerror(-c));
	check(hello(c) == 8, "the child's HELLO says %ld objects, want 8", hello(c));
	check(child(c, 9, mib, gid, 11) == -EPERM, "grandchild wider than its parent not EPERM");
	check(child(c, 8, 5 * mib, gid, 11) == -EPERM, "grandchild's pinned wider not EPERM");
	g = child(c, 8, 4 * mib, gid, 11);
	check(g >= 0, "grandchild: %s", strerror(-g));
	check(hello(g) == 8, "grandchild HELLO");
	for (int i = 0; i < 5; i++)
		check((gpd[i] = alloc_pd(g)) > 0, "grandchild PD %d: %s", i, strerror((int)-gpd[i]));
	for (int i = 0; i < 3; i++)
		check((cpd[i] = alloc_pd(c)) > 0, "child PD %d: %s", i, strerror((int)-cpd[i]));
	check((h = alloc_pd(g)) == -EDQUOT, "grandchild's 6th PD past its parent's 8: %ld", h);
	check((h = alloc_pd(c)) == -EDQUOT, "child's 9th object (with its child's): %ld", h);
	check(child(c, 1, 0, gid, 12) == -EDQUOT, "a child of a full parent not EDQUOT");
	check(dealloc_pd(g, (uint32_t)gpd[4]) == 0, "dealloc");
	check((cpd[3] = alloc_pd(c)) > 0, "a PD once the grandchild freed one: %ld", cpd[3]);
	printf("ok   a grandchild's objects count against its parent: 5 + 3 of 8, then EDQUOT in both\n");

	/* Depth: a chain of children until ELOOP. */
	chain[0] = p;
	for (depth = 1; depth <= VBK_MAX_DEPTH + 1; depth++) {
		chain[depth] = child(chain[depth - 1], 1, 0, gid, 100 + depth);
		if (chain[depth] < 0)
			break;
	}
	check(depth <= VBK_MAX_DEPTH + 1 && chain[depth] == -ELOOP,
	      "a chain of %d children, then %s", depth - 1, strerror(-chain[depth]));
	printf("ok   %d levels of children below ours, then ELOOP\n", depth - 1);
	while (--depth > 0)
		close(chain[depth]);

	/* Children of one attachment: at most VBK_MAX_CHILDREN. */
	x = child(p, VBK_MAX_CHILDREN + 2, 0, gid, 200);
	check(x >= 0, "child for the fan-out: %s", strerror(-x));
	for (nk = 0; nk <= VBK_MAX_CHILDREN; nk++) {
		kids[nk] = child(x, 1, 0, gid, 300 + nk);
		if (kids[nk] < 0)
			break;
	}
	check(nk == VBK_MAX_CHILDREN && kids[nk] == -EMLINK, "%d children, then %s", nk,
	      strerror(-kids[nk]));
	printf("ok   %d children of one attachment, then EMLINK\n", nk);
	/* Revoking x by its tag revokes its 64 children. */
	check(ioctl(p, VBK_IOC_REVOKE, &(uint64_t){ 200 }) == 0, "REVOKE by tag: %s", strerror(errno));
	for (int i = 0; i < nk; i++) {
		check(got_fatal(kids[i]), "child %d of a revoked parent: no DEVICE_FATAL", i);
		check(hello(kids[i]) == -EIO, "child %d of a revoked parent: HELLO not EIO", i);
		close(kids[i]);
	}
	check(got_fatal(x) && alloc_pd(x) == -EIO, "the revoked child itself");
	check(child(x, 1, 0, gid, 400) == -EIO, "a child of a revoked attachment not EIO");
	close(x);
	check(ioctl(p, VBK_IOC_REVOKE, &(uint64_t){ 200 }) == -1 && errno == ENOENT,
	      "REVOKE of a closed child's tag not ENOENT");
	printf("ok   REVOKE by tag: the child and its %d children got DEVICE_FATAL, then EIO\n", nk);

	/* Closing C revokes G first (its PDs go, DEVICE_FATAL, EIO); C lives on until G goes. */
	{
		struct vbk_stats st = { .guest_id = 11 };

		check(ioctl(c, VBK_IOC_STATS, &st) == 0 && st.objects == 4,
		      "STATS of the grandchild through its parent: %s, %u objects",
		      strerror(errno), st.objects);
	}
	close(c);
	check(got_fatal(g), "grandchild: no DEVICE_FATAL after its parent's close");
	check(alloc_pd(g) == -EIO && hello(g) == -EIO, "grandchild calls after revocation not EIO");
	check(child(g, 1, 0, gid, 13) == -EIO, "a child of a revoked grandchild not EIO");
	close(g);
	printf("ok   closing a parent revokes its child: DEVICE_FATAL, then EIO\n");

	/* Our own attachment is untouched, and nothing is left charged to it: a child with
	 * all of our limits fits again. */
	check((pd = ibv_alloc_pd(ctx)) != NULL, "our own PD after it all: %s", strerror(errno));
	ibv_dealloc_pd(pd);
	x = child(p, lim.max_objects, lim.max_pinned_bytes, gid, 500);
	check(x >= 0, "a child with all of our limits after it all: %s (charges left over?)",
	      strerror(-x));
	close(x);
	printf("ok   our own attachment works, and all of its limits are free again\n");
	ibv_close_device(ctx);
	ibv_free_device_list(list);
	return 0;
}
