// SPDX-License-Identifier: MIT
/*
 * Memory regions: the buffer is described as pieces of DEVSHM regions (memory.c moves
 * pages onto memfds where needed) and registered by the host with iova = the guest's own
 * address, so lkeys, rkeys and addresses in work requests need no translation. On the
 * kernel backend there are no pieces: the module pins the buffer where it is.
 */
#include <endian.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "vbg.h"

/* Optional access bits a device may ignore (relaxed ordering): dropped quietly, as
 * libibverbs does for devices that do not support them. */
#define ACCESS_OPTIONAL (IBV_ACCESS_OPTIONAL_RANGE)

static pthread_mutex_t reg_lock = PTHREAD_MUTEX_INITIALIZER;

static struct ibv_mr *reg(struct ibv_pd *p, void *addr, size_t len, uint64_t iova,
			  unsigned int access)
{
	struct {
		struct vrdma_reg_mr_in in;
		struct vrdma_mr_piece pieces[VRDMA_MR_MAX_PIECES];
	} req;
	struct vrdma_reg_mr_out o;
	struct vbg_mr *mr;
	uint32_t n;
	int err;

	/* Both hosts register at any iova whose offset in the page is the buffer's (a nested
	 * vbusd registers its guests' buffers so, docs/nesting.md): the relay maps the pieces
	 * into a window, the module pins the buffer where it is (one piece naming it). */
	if ((iova ^ (uintptr_t)addr) & ((uint64_t)sysconf(_SC_PAGESIZE) - 1)) {
		vbg_err("ibv_reg_mr_iova: iova and addr differ in their offset in the page (EOPNOTSUPP)");
		errno = EOPNOTSUPP;
		return NULL;
	}
	if (!len || (uintptr_t)addr + len < (uintptr_t)addr) {
		errno = EINVAL;
		return NULL;
	}
	access &= ~ACCESS_OPTIONAL;
	mr = calloc(1, sizeof(*mr));
	if (!mr) {
		errno = ENOMEM;
		return NULL;
	}
	/* One registration at a time: pages are moved at most once, and the pieces stay
	 * what they were described as until the host has them. */
	pthread_mutex_lock(&reg_lock);
	if (to_vctx(p->context)->kfd >= 0) {
		/* The module pins our own pages in the call: nothing moves. */
		n = 0, err = 0;
		if (iova != (uintptr_t)addr)
			req.pieces[n++] = (struct vrdma_mr_piece){
				.offset = htole64((uintptr_t)addr), .length = htole64(len) };
	} else
		err = vbg_mem_pieces(addr, len, req.pieces, VRDMA_MR_MAX_PIECES, &n);
	if (!err) {
		req.in = (struct vrdma_reg_mr_in){
			.pd = htole32(((struct vbg_pd *)p)->handle), .access = htole32(access),
			.iova = htole64(iova), .length = htole64(len), .npieces = htole32(n),
		};
		err = vbg_call(to_vctx(p->context), VRDMA_FN_REG_MR, &req,
			       sizeof(req.in) + n * sizeof(req.pieces[0]), &o, sizeof(o));
	}
	pthread_mutex_unlock(&reg_lock);
	if (err) {
		vbg_info("reg_mr %p+%zu: %s", addr, len, strerror(-err));
		free(mr);
		errno = -err;
		return NULL;
	}
	mr->handle = le32toh(o.handle);
	mr->mr.context = p->context;
	mr->mr.pd = p;
	mr->mr.addr = addr;
	mr->mr.length = len;
	mr->mr.handle = mr->handle;
	mr->mr.lkey = le32toh(o.lkey);
	mr->mr.rkey = le32toh(o.rkey);
	return &mr->mr;
}

VBG_EXPORT struct ibv_mr *(ibv_reg_mr)(struct ibv_pd *pd, void *addr, size_t len, int access)
{
	if (!vbg_is_context(pd->context))
		return vbg_real.reg_mr(pd, addr, len, access);
	return reg(pd, addr, len, (uintptr_t)addr, (unsigned int)access);
}

VBG_EXPORT struct ibv_mr *(ibv_reg_mr_iova)(struct ibv_pd *pd, void *addr, size_t len,
					  uint64_t iova, int access)
{
	if (!vbg_is_context(pd->context))
		return vbg_real.reg_mr_iova(pd, addr, len, iova, access);
	return reg(pd, addr, len, iova, (unsigned int)access);
}

VBG_EXPORT struct ibv_mr *ibv_reg_mr_iova2(struct ibv_pd *pd, void *addr, size_t len,
					   uint64_t iova, unsigned int access)
{
	if (!vbg_is_context(pd->context))
		return vbg_real.reg_mr_iova2(pd, addr, len, iova, access);
	return reg(pd, addr, len, iova, access);
}

VBG_EXPORT int ibv_rereg_mr(struct ibv_mr *mr, int flags, struct ibv_pd *pd, void *addr,
			    size_t len, int access)
{
	if (!vbg_is_context(mr->context))
		return vbg_real.rereg_mr(mr, flags, pd, addr, len, access);
	/* libibverbs' own checks of the input first, with its answers. */
	if ((flags & ~IBV_REREG_MR_FLAGS_SUPPORTED) ||
	    ((flags & IBV_REREG_MR_CHANGE_TRANSLATION) && (!len || !addr)) ||
	    (access && !(flags & IBV_REREG_MR_CHANGE_ACCESS))) {
		errno = EINVAL;
		return IBV_REREG_MR_ERR_INPUT;
	}
	/* Then the command, which soft-RoCE in Linux 6.1 does not have: the MR is unchanged. */
	vbg_unsupported("ibv_rereg_mr");
	errno = EOPNOTSUPP;
	return IBV_REREG_MR_ERR_CMD;
}

VBG_EXPORT int ibv_dereg_mr(struct ibv_mr *m)
{
	struct vbg_mr *mr = (struct vbg_mr *)m;
	struct vrdma_handle h;
	int err;

	if (!vbg_is_context(m->context))
		return vbg_real.dereg_mr(m);
	h = (struct vrdma_handle){ .handle = htole32(mr->handle) };
	err = vbg_call(to_vctx(m->context), VRDMA_FN_DEREG_MR, &h, sizeof(h), NULL, 0);
	if (err)
		return -err;
	free(mr);
	return 0;
}
