// SPDX-License-Identifier: MIT
/*
 * Exported verbs that read libibverbs' private state and so must not reach the real
 * library with a vbus object, but that vrdma ABI 1 does not carry: multicast, ECE,
 * dmabuf MRs, imported objects. On a vbus object each returns EOPNOTSUPP (logged once); on a real one it forwards.
 * docs/verbs-guest.md lists them.
 */
#include <errno.h>
#include <unistd.h>
#include "vbg.h"

#define UNSUP_NULL(name) ({ errno = vbg_unsupported(name); NULL; })

VBG_EXPORT int ibv_attach_mcast(struct ibv_qp *qp, const union ibv_gid *gid, uint16_t lid)
{
	if (!vbg_is_context(qp->context))
		return vbg_real.attach_mcast(qp, gid, lid);
	return vbg_unsupported("ibv_attach_mcast");
}

VBG_EXPORT int ibv_detach_mcast(struct ibv_qp *qp, const union ibv_gid *gid, uint16_t lid)
{
	if (!vbg_is_context(qp->context))
		return vbg_real.detach_mcast(qp, gid, lid);
	return vbg_unsupported("ibv_detach_mcast");
}

VBG_EXPORT int ibv_query_ece(struct ibv_qp *qp, struct ibv_ece *ece)
{
	if (!vbg_is_context(qp->context))
		return vbg_real.query_ece ? vbg_real.query_ece(qp, ece) : EOPNOTSUPP;
	return vbg_unsupported("ibv_query_ece");
}

VBG_EXPORT int ibv_set_ece(struct ibv_qp *qp, struct ibv_ece *ece)
{
	if (!vbg_is_context(qp->context))
		return vbg_real.set_ece ? vbg_real.set_ece(qp, ece) : EOPNOTSUPP;
	return vbg_unsupported("ibv_set_ece");
}

VBG_EXPORT int ibv_query_qp_data_in_order(struct ibv_qp *qp, enum ibv_wr_opcode op,
					  uint32_t flags)
{
	if (!vbg_is_context(qp->context))
		return vbg_real.query_qp_data_in_order ?
			vbg_real.query_qp_data_in_order(qp, op, flags) : 0;
	return 0;	/* "not guaranteed in order": always a correct answer */
}

/* Importing a context and its objects into another process: soft-RoCE in Linux 6.1 has
 * none of it, so a guest gets what a native program gets there, and skips the feature as
 * it would natively. A guest context's cmd_fd is one of its own descriptors (device.c). */
#define IMPORT_ERRNO	EOPNOTSUPP

VBG_EXPORT struct ibv_context *ibv_import_device(int fd)
{
	bool ours = false;

	vbg_for_each_context(ctx, ours |= fd >= 0 && ctx->vctx.context.cmd_fd == fd);
	if (!ours)
		return vbg_real.import_device(fd);
	vbg_unsupported("ibv_import_device");
	errno = IMPORT_ERRNO;
	return NULL;
}

/* dmabuf MRs: never for a guest. */
VBG_EXPORT struct ibv_mr *ibv_reg_dmabuf_mr(struct ibv_pd *pd, uint64_t offset, size_t len,
					    uint64_t iova, int fd, int access)
{
	if (!vbg_is_context(pd->context))
		return vbg_real.reg_dmabuf_mr(pd, offset, len, iova, fd, access);
	return UNSUP_NULL("ibv_reg_dmabuf_mr");
}

VBG_EXPORT struct ibv_pd *ibv_import_pd(struct ibv_context *c, uint32_t handle)
{
	if (!vbg_is_context(c))
		return vbg_real.import_pd(c, handle);
	vbg_unsupported("ibv_import_pd");
	errno = IMPORT_ERRNO;
	return NULL;
}

VBG_EXPORT void ibv_unimport_pd(struct ibv_pd *pd)
{
	if (!vbg_is_context(pd->context))
		vbg_real.unimport_pd(pd);
}

VBG_EXPORT struct ibv_mr *ibv_import_mr(struct ibv_pd *pd, uint32_t handle)
{
	if (!vbg_is_context(pd->context))
		return vbg_real.import_mr(pd, handle);
	vbg_unsupported("ibv_import_mr");
	errno = IMPORT_ERRNO;
	return NULL;
}

VBG_EXPORT void ibv_unimport_mr(struct ibv_mr *mr)
{
	if (!vbg_is_context(mr->context))
		vbg_real.unimport_mr(mr);
}

VBG_EXPORT struct ibv_dm *ibv_import_dm(struct ibv_context *c, uint32_t handle)
{
	if (!vbg_is_context(c))
		return vbg_real.import_dm(c, handle);
	return UNSUP_NULL("ibv_import_dm");
}

VBG_EXPORT void ibv_unimport_dm(struct ibv_dm *dm)
{
	if (!vbg_is_context(dm->context))
		vbg_real.unimport_dm(dm);
}
