// SPDX-License-Identifier: MIT
/*
 * Memory regions. The guest's range [iova, iova + length) is backed by pieces of its
 * DEVSHM regions; they are mapped side by side into one window of vbusd's address space
 * and registered with ibv_reg_mr_iova(window + iova % page, length, iova), so the guest's
 * work requests carry guest addresses straight to the device (docs/vrdma.md, "Memory").
 */
#include <endian.h>
#include <errno.h>
#include <stdlib.h>
#include <dlfcn.h>
#include <pthread.h>
#include <sys/mman.h>
#include <vbus/verbs-nest.h>
#include "../../connector/vm_ram.h"
#include "vrdma.h"

#define ACCESS_ALLOWED (IBV_ACCESS_LOCAL_WRITE | IBV_ACCESS_REMOTE_WRITE | \
			IBV_ACCESS_REMOTE_READ | IBV_ACCESS_REMOTE_ATOMIC | \
			IBV_ACCESS_MW_BIND | IBV_ACCESS_RELAXED_ORDERING)

/*
 * Nesting (docs/nesting.md): when this vbusd is itself a guest (libvbus-verbs.so
 * preloaded), the device below is a vbus device, and the pages of a window are our
 * guest's memfd: the library must hand that memfd down to our bus rather than move the
 * pages. Its functions are looked up once; without them this is a vbusd on a real device.
 */
static pthread_once_t nest_once = PTHREAD_ONCE_INIT;
static vbus_verbs_shm_add_fn *nest_add;
static vbus_verbs_shm_forget_fn *nest_forget;

static void nest_lookup(void)
{
	nest_add = (vbus_verbs_shm_add_fn *)dlsym(RTLD_DEFAULT, VBUS_VERBS_SHM_ADD);
	nest_forget = (vbus_verbs_shm_forget_fn *)dlsym(RTLD_DEFAULT, VBUS_VERBS_SHM_FORGET);
}

void vrdma_window_unmap(void *w, size_t len)
{
	pthread_once(&nest_once, nest_lookup);
	if (nest_forget)
		nest_forget(w, len);
	munmap(w, len);
}

void vrdma_mr_free(struct vrdma_guest *g, struct vrdma_mr *mr)
{
	g->pinned -= mr->mr->length;
	vrdma_charge_add(g->charge, 0, -(int64_t)mr->mr->length, NULL, NULL);
	ibv_dereg_mr(mr->mr);
	vrdma_window_unmap(mr->window, mr->window_len);
	if (mr->nmaps)
		g->env->maps_give(g->env_priv, mr->nmaps);
	if (mr->vm_pinned)
		g->env->pins_give(g->env_priv, mr->vm_pinned);
	free(mr);
}

/* A piece [off, off + len) of a VM's region r at dst, its runs of pages paid for from the
 * VM's budget first (added to *taken); past the budget -ENOMEM, as a pin past a limit. */
static int window_vm_piece(const struct vrdma_env_ops *env, void *priv,
			   const struct vrdma_region *r, uint64_t off, uint64_t len, void *dst,
			   uint64_t *taken)
{
	uint64_t runs = vbus_vm_runs(r->pages, off, len);

	if (env->maps_take) {
		if (env->maps_take(priv, runs))
			return -ENOMEM;
		*taken += runs;
	}
	return vbus_vm_region_remap(r->fd, r->pages, off, len, dst);
}

/* Map the pieces into a fresh window of `total` bytes, the regions looked up through
 * env (with priv) and `page` the page size. 0 or -errno. Each region is held only while its
 * piece is mapped: the window maps the memfd itself, so the MR does not need the bus's
 * mapping, and the guest may revoke the region while the MR lives. */
int vrdma_map_window(const struct vrdma_env_ops *env, void *priv, long page,
		     const struct vrdma_mr_piece *pieces, uint32_t n, uint64_t total,
		     void **window, uint64_t *nmaps)
{
	uint64_t pos = 0, taken = 0;
	uint8_t *w;
	int err;

	pthread_once(&nest_once, nest_lookup);
	w = mmap(NULL, total, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (w == MAP_FAILED)
		return -ENOMEM;
	for (uint32_t k = 0; k < n; k++) {
		uint64_t off = le64toh(pieces[k].offset), len = le64toh(pieces[k].length);
		uint32_t shm = le32toh(pieces[k].shm);
		struct vrdma_region r;

		err = env->region(priv, shm, &r);
		if (err)
			goto err_unmap;
		if (pieces[k].reserved || !len || off % page || len % page ||
		    off > r.size || len > r.size - off || len > total - pos)
			err = -EINVAL;
		else if (r.pages && nest_add)
			err = -EOPNOTSUPP;	/* a VM's pages cannot be handed to a lower bus */
		else if (r.pages)	/* a VM's region: its pages where they are in its RAM */
			err = window_vm_piece(env, priv, &r, off, len, w + pos, &taken);
		else if (mmap(w + pos, len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_FIXED, r.fd,
			      (off_t)off) == MAP_FAILED)
			err = -ENOMEM;
		else if (nest_add)
			err = nest_add(w + pos, len, r.fd, r.size, off);
		/* Mapped or refused, the piece needs the region no more. */
		if (env->region_put)
			env->region_put(priv, shm);
		if (err)
			goto err_unmap;
		pos += len;
	}
	err = -EINVAL;
	if (pos != total)
		goto err_unmap;
	madvise(w, total, MADV_DONTFORK);
	*window = w;
	*nmaps = taken;
	return 0;

err_unmap:
	vrdma_window_unmap(w, total);
	if (taken)
		env->maps_give(priv, taken);
	return err;
}

bool vrdma_mr_pieces_ok(const struct vrdma_reg_mr_in *i, size_t inlen)
{
	uint32_t n = le32toh(i->npieces);

	return !i->reserved && n >= 1 && n <= VRDMA_MR_MAX_PIECES &&
	       inlen == sizeof(*i) + n * sizeof(struct vrdma_mr_piece);
}

int vrdma_mr_span(uint64_t iova, uint64_t length, uint64_t page, uint64_t *head,
		  uint64_t *total)
{
	*head = iova % page;
	if (!length || length > UINT64_MAX - *head - page || iova > UINT64_MAX - length)
		return -EINVAL;
	*total = (*head + length + page - 1) / page * page;
	return 0;
}

int vrdma_do_reg_mr(struct vrdma_guest *g, const void *in, size_t inlen, void *out)
{
	const struct vrdma_reg_mr_in *i = in;
	const struct vrdma_mr_piece *pieces = (const void *)(i + 1);
	struct vrdma_reg_mr_out *o = out;
	uint32_t pdh = le32toh(i->pd), access = le32toh(i->access), n = le32toh(i->npieces);
	uint64_t iova = le64toh(i->iova), length = le64toh(i->length), head, total;
	struct vrdma_caller c;
	struct vrdma_mr *mr;
	struct vrdma_pd *pd;
	const char *what;
	uint64_t limit;
	uint32_t h;
	int err = 0, depth;

	if (!vrdma_mr_pieces_ok(i, inlen))
		return -EINVAL;
	if (access & ~ACCESS_ALLOWED)
		return -EOPNOTSUPP;	/* ON_DEMAND, ZERO_BASED, HUGETLB, unknown bits */
	if (vrdma_wl_lacks(g, access))
		return vrdma_refuse(g, "MR access flags", vrdma_wl_lacks(g, access));
	pd = vrdma_handle_get(g, pdh, VRDMA_OBJ_PD, &err);
	if (!pd)
		return err;
	if (vrdma_mr_span(iova, length, (uint64_t)g->page, &head, &total))
		return -EINVAL;
	if (length > g->pol.max_pinned_bytes || g->pinned > g->pol.max_pinned_bytes - length)
		return vrdma_quota(g, "max-pinned", g->pol.max_pinned_bytes, -ENOMEM);
	/* As uverbs: pins count against RLIMIT_MEMLOCK, unless CAP_IPC_LOCK (asked only of a
	 * call past the limit: reading it costs more than the limit). */
	vrdma_caller(g, VRDMA_ASK_MEMLOCK, &c);
	if (total > c.memlock || g->pinned > c.memlock - total) {
		vrdma_caller(g, VRDMA_ASK_CAPS, &c);
		if (!c.ipc_lock)
			return -ENOMEM;
	}

	depth = vrdma_charge_add(g->charge, 0, (int64_t)length, &what, &limit);
	if (depth)
		return vrdma_quota(g, depth > 1 ? "parent max-pinned" :
				   "subtree max-pinned", limit, -ENOMEM);
	err = -ENOMEM;
	mr = calloc(1, sizeof(*mr));
	if (!mr)
		goto err_charge;
	if (g->env->pins_take) {	/* a VM's: all its connections' MRs together */
		if (g->env->pins_take(g->env_priv, total))
			goto err_free;
		mr->vm_pinned = total;
	}
	err = vrdma_map_window(g->env, g->env_priv, g->page, pieces, n, total, &mr->window,
			       &mr->nmaps);
	if (err)
		goto err_free;
	mr->window_len = total;
	mr->mr = ibv_reg_mr_iova(pd->pd, (uint8_t *)mr->window + head, length, iova, (int)access);
	if (!mr->mr) {
		err = errno ? -errno : -EINVAL;
		goto err_unmap;
	}
	err = vrdma_handle_new(g, VRDMA_OBJ_MR, mr, &h);
	if (err)
		goto err_dereg;
	mr->pd = pdh;
	mr->iova = iova;
	vrdma_handle_obj(g, pdh)->users++;
	g->pinned += length;	/* charged up the tree above */
	o->handle = htole32(h);
	o->lkey = htole32(mr->mr->lkey);
	o->rkey = htole32(mr->mr->rkey);
	return 0;

err_dereg:
	ibv_dereg_mr(mr->mr);
err_unmap:
	vrdma_window_unmap(mr->window, total);
	if (mr->nmaps)
		g->env->maps_give(g->env_priv, mr->nmaps);
err_free:
	if (mr->vm_pinned)
		g->env->pins_give(g->env_priv, mr->vm_pinned);
	free(mr);
err_charge:
	vrdma_charge_add(g->charge, 0, -(int64_t)length, NULL, NULL);
	return err;
}

int vrdma_do_dereg_mr(struct vrdma_guest *g, const void *in, size_t inlen, void *out)
{
	const struct vrdma_handle *i = in;
	uint32_t h = le32toh(i->handle);
	struct vrdma_mr *mr;
	struct vrdma_obj *pd;
	int err = 0;

	if (i->reserved)
		return -EINVAL;

	mr = vrdma_handle_get(g, h, VRDMA_OBJ_MR, &err);
	if (!mr)
		return err;
	vrdma_relay_drain_sends(g);	/* a posted WQE may name it (relay.c) */
	pd = vrdma_handle_obj(g, mr->pd);
	if (pd)
		pd->users--;
	vrdma_mr_free(g, mr);
	vrdma_handle_free(g, h);
	return 0;
}
