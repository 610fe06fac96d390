// SPDX-License-Identifier: MIT
/*
 * The GID queries, answered from a copy of the port's GID table that the context reads at
 * open (QUERY_GID_TABLE: one call for a RoCE port's valid entries) and again after an
 * IBV_EVENT_GID_CHANGE, as natively they are sysfs or ioctl reads that cost no round trip
 * to anyone. A host without QUERY_GID_TABLE gets one QUERY_GID per question, as before.
 * Each answer is libibverbs': ibv_query_gid gives an empty entry as zeroes and success,
 * ibv_query_gid_ex ENODATA for it and EINVAL past the table, ibv_query_gid_table EINVAL
 * when the caller's array cannot hold every valid entry. An entry's ndev_ifindex is asked
 * of the host the first time a program wants it (QUERY_GID), then kept with the table.
 */
#include <endian.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include "vbg.h"

/* Read the whole table into a new array; 0 or -errno (-EPROTO: the host's answer does not
 * add up). Called with the cache's lock held, or before the context is published. */
static int load(struct vbg_context *ctx)
{
	struct vbg_gid_cache *gc = &ctx->gids;
	struct vrdma_query_gid_table_in in = { .port_num = 1 };
	struct vrdma_query_gid_table_out o;
	struct vrdma_gid_entry *e = NULL, *t;
	uint32_t start = 0, n = 0, len = 0;
	int64_t *nd;
	int err;

	do {
		in.start = htole32(start);
		err = vbg_call(ctx, VRDMA_FN_QUERY_GID_TABLE, &in, sizeof(in), &o, sizeof(o));
		if (err)
			goto err_free;
		uint32_t count = le32toh(o.count), next = le32toh(o.next);

		if (!start)
			len = le32toh(o.gid_tbl_len);
		err = -EPROTO;
		if (le32toh(o.gid_tbl_len) != len || count > VRDMA_GID_BATCH || next > len ||
		    (next <= start && next < len) || n + count > len)
			goto err_free;
		t = realloc(e, (n + count + 1) * sizeof(*e));
		if (!t) {
			err = -ENOMEM;
			goto err_free;
		}
		e = t;
		for (uint32_t k = 0; k < count; k++) {
			uint32_t idx = le32toh(o.e[k].index);

			/* In index order, inside [start, next). */
			if (idx < start || idx >= next || (n && idx <= le32toh(e[n - 1].index)))
				goto err_free;
			e[n++] = o.e[k];
		}
		start = next;
	} while (start < len);
	nd = malloc((n + 1) * sizeof(*nd));
	if (!nd) {
		err = -ENOMEM;
		goto err_free;
	}
	for (uint32_t k = 0; k < n; k++)
		nd[k] = -1;
	free(gc->e);
	free(gc->ndev);
	gc->e = e;
	gc->ndev = nd;
	gc->n = n;
	gc->tbl_len = len;
	gc->stale = false;
	return 0;

err_free:
	free(e);
	if (err == -EPROTO)
		vbg_err("vrdma QUERY_GID_TABLE: an answer that does not add up");
	return err;
}

int vbg_gid_cache_init(struct vbg_context *ctx)
{
	int err;

	pthread_mutex_init(&ctx->gids.lock, NULL);
	err = load(ctx);
	if (err == -EOPNOTSUPP) {
		ctx->gids.per_call = true;
		err = 0;
	}
	return err;
}

void vbg_gid_cache_free(struct vbg_context *ctx)
{
	free(ctx->gids.e);
	free(ctx->gids.ndev);
	ctx->gids.e = NULL;
	ctx->gids.ndev = NULL;
	pthread_mutex_destroy(&ctx->gids.lock);
}

void vbg_gid_cache_stale(struct vbg_context *ctx)
{
	__atomic_store_n(&ctx->gids.stale, true, __ATOMIC_RELEASE);
}

/* A process in a vbus VM (its bus through the VM's device). */
static bool in_vm(void)
{
	return vbus_conn_is_vm(vbg_conn());
}

/* A VM has none of the host's netdevs: its entries' ndev_ifindex is 0, as a kernel with no
 * netdev for an entry answers. A process guest shares the host's kernel, and gets its
 * number, as uverbs gives it natively. */
static uint32_t ndev_seen(uint32_t host_ifindex)
{
	return in_vm() ? 0 : host_ifindex;
}

/* Cached entry k's ndev_ifindex, asked of the host once; under the cache's lock. A host
 * that predates the field answers 0, as does a failed call. */
static uint32_t ndev_of(struct vbg_context *ctx, uint32_t k)
{
	struct vbg_gid_cache *gc = &ctx->gids;

	if (gc->ndev[k] < 0) {
		struct vrdma_query_gid_in i = { .port_num = 1, .index = gc->e[k].index };
		struct vrdma_query_gid_out o;

		gc->ndev[k] = 0;
		if (!in_vm() &&
		    !vbg_call(ctx, VRDMA_FN_QUERY_GID, &i, sizeof(i), &o, sizeof(o)))
			gc->ndev[k] = ndev_seen(le32toh(o.ndev_ifindex));
	}
	return (uint32_t)gc->ndev[k];
}

/*
 * Entry `index` of port `port`: 0 and *out (and its ndev_ifindex in *ifx, if asked),
 * -ENODATA for an empty entry, -EINVAL for a port or index outside the table (what the
 * kernel answers natively), or the call's error.
 */
static int lookup(struct ibv_context *c, uint32_t port, uint32_t index,
		  struct vrdma_gid_entry *out, uint32_t *ifx)
{
	struct vbg_context *ctx = to_vctx(c);
	struct vbg_gid_cache *gc = &ctx->gids;
	int err = 0;

	if (gc->per_call) {
		struct vrdma_query_gid_in i = { .port_num = (uint8_t)port, .index = htole32(index) };
		struct vrdma_query_gid_out o;

		if (port > 255)
			return -EINVAL;
		err = vbg_call(ctx, VRDMA_FN_QUERY_GID, &i, sizeof(i), &o, sizeof(o));
		if (!err) {
			memcpy(out->gid, o.gid, sizeof(out->gid));
			out->index = htole32(index);
			out->gid_type = o.gid_type;
			if (ifx)
				*ifx = ndev_seen(le32toh(o.ndev_ifindex));
		}
		return err;
	}
	if (port != 1)
		return -EINVAL;
	pthread_mutex_lock(&gc->lock);
	if (__atomic_load_n(&gc->stale, __ATOMIC_ACQUIRE))
		err = load(ctx);
	if (!err)
		err = index < gc->tbl_len ? -ENODATA : -EINVAL;
	for (uint32_t k = 0; err == -ENODATA && k < gc->n; k++)
		if (le32toh(gc->e[k].index) == index) {
			*out = gc->e[k];
			if (ifx)
				*ifx = ndev_of(ctx, k);
			err = 0;
		}
	pthread_mutex_unlock(&gc->lock);
	return err;
}

VBG_EXPORT int ibv_query_gid(struct ibv_context *c, uint8_t port, int index, union ibv_gid *gid)
{
	struct vrdma_gid_entry e;
	int err;

	if (!vbg_is_context(c))
		return vbg_real.query_gid(c, port, index, gid);
	if (index < 0) {
		errno = EINVAL;
		return -1;
	}
	err = lookup(c, port, (uint32_t)index, &e, NULL);
	if (err == -ENODATA) {
		/* An empty entry: libibverbs answers a zero GID and success here (only the _ex
		 * form reports ENODATA); UCX walks the table this way and stops at an error. */
		memset(gid->raw, 0, 16);
		return 0;
	}
	if (err) {
		errno = -err;
		return -1;	/* as libibverbs: -1 on any other failure */
	}
	memcpy(gid->raw, e.gid, 16);
	return 0;
}

static void fill_entry(struct ibv_gid_entry *x, const struct vrdma_gid_entry *e, uint32_t port,
		       uint32_t ifx)
{
	memcpy(x->gid.raw, e->gid, 16);
	x->gid_index = le32toh(e->index);
	x->port_num = port;
	x->gid_type = le32toh(e->gid_type);
	x->ndev_ifindex = ifx;
}

VBG_EXPORT int _ibv_query_gid_ex(struct ibv_context *c, uint32_t port, uint32_t index,
				 struct ibv_gid_entry *x, uint32_t flags, size_t entry_size)
{
	struct vrdma_gid_entry e;
	uint32_t ifx = 0;
	int err;

	if (!vbg_is_context(c))
		return vbg_real.query_gid_ex(c, port, index, x, flags, entry_size);
	if (flags || entry_size < sizeof(*x))
		return EINVAL;
	err = lookup(c, port, index, &e, &ifx);
	if (err) {
		errno = -err;
		return -err;
	}
	memset(x, 0, entry_size);
	fill_entry(x, &e, port, ifx);
	return 0;
}

VBG_EXPORT ssize_t _ibv_query_gid_table(struct ibv_context *c, struct ibv_gid_entry *x,
					size_t max, uint32_t flags, size_t entry_size)
{
	struct vbg_context *ctx;
	struct vbg_gid_cache *gc;
	ssize_t n;
	int err = 0;

	if (!vbg_is_context(c))
		return vbg_real.query_gid_table(c, x, max, flags, entry_size);
	ctx = to_vctx(c);
	gc = &ctx->gids;
	if (flags || entry_size < sizeof(*x) || gc->per_call) {
		/* per_call: a host too old to read the table from; not worth a slow walk. */
		errno = gc->per_call ? EOPNOTSUPP : EINVAL;
		return -errno;
	}
	pthread_mutex_lock(&gc->lock);
	if (__atomic_load_n(&gc->stale, __ATOMIC_ACQUIRE))
		err = load(ctx);
	/* As the kernel: every valid entry of every port, or EINVAL if they do not fit. */
	if (!err && gc->n > max)
		err = -EINVAL;
	for (uint32_t k = 0; !err && k < gc->n; k++) {
		struct ibv_gid_entry *y = (void *)((char *)x + k * entry_size);

		memset(y, 0, entry_size);
		fill_entry(y, &gc->e[k], 1, ndev_of(ctx, k));
	}
	n = err ? err : (ssize_t)gc->n;
	pthread_mutex_unlock(&gc->lock);
	if (n < 0)
		errno = (int)-n;
	return n;
}

int ibv_query_gid_type(struct ibv_context *c, uint8_t port, unsigned int index, int *type);
VBG_EXPORT int ibv_query_gid_type(struct ibv_context *c, uint8_t port, unsigned int index,
				  int *type)
{
	struct vrdma_gid_entry e;
	int err;

	if (!vbg_is_context(c))
		return vbg_real.query_gid_type(c, port, index, type);
	err = lookup(c, port, index, &e, NULL);
	if (err == -ENODATA) {	/* an empty entry: as libibverbs, RoCE v1 and success */
		*type = VBG_GID_TYPE_SYSFS_IB_ROCE_V1;
		return 0;
	}
	if (err) {
		errno = -err;
		return -1;
	}
	*type = le32toh(e.gid_type) == IBV_GID_TYPE_ROCE_V2 ? VBG_GID_TYPE_SYSFS_ROCE_V2 :
		VBG_GID_TYPE_SYSFS_IB_ROCE_V1;
	return 0;
}
