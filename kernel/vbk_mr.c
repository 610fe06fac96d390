// SPDX-License-Identifier: GPL-2.0
/*
 * Memory regions: the guest's own pages, pinned in the guest's own call with
 * ib_reg_user_mr (iova = the guest's address), charged to its RLIMIT_MEMLOCK by the core
 * and to its quota here. No memfd, no moved pages. On a foreign attachment the caller is
 * vbusd and the pages must be in its shared mapping of the VM's RAM (vbk_foreign.c).
 * Every lkey the guest registers is kept in g->mrs, the only keys its work requests may
 * name (a kernel PD's DMA lkey is not one).
 *
 * Memory windows: Linux 6.1 has no kernel API for them (no ib_alloc_mw export, no bind in
 * the kernel send WR): ALLOC_MW is -EOPNOTSUPP on this backend and max_mw is 0.
 */
#include <linux/slab.h>
#include "vbk.h"

#define ACCESS_ALLOWED (IB_ACCESS_LOCAL_WRITE | IB_ACCESS_REMOTE_WRITE | \
			IB_ACCESS_REMOTE_READ | IB_ACCESS_REMOTE_ATOMIC)
#define ACCESS_IGNORED (IB_ACCESS_MW_BIND | IB_UVERBS_ACCESS_HUGETLB | \
			IB_ACCESS_RELAXED_ORDERING)

void vbk_mr_free(struct vbk_guest *g, struct vbk_mr *mr)
{
	/* Out of the key table under tbl: no doorbell holds a checked key of it afterwards. */
	down_write(&g->tbl);
	xa_erase(&g->mrs, mr->mr->lkey);
	up_write(&g->tbl);
	ib_dereg_mr(mr->mr);
	g->pinned -= mr->length;
	vbk_uncharge(g, 0, mr->length);
	vbk_obj_use(g, mr->pd, -1);
	kfree(mr);
}

int vbk_do_reg_mr(struct vbk_guest *g, const void *in, u32 inlen, void *out)
{
	const struct vrdma_reg_mr_in *i = in;
	struct vrdma_reg_mr_out *o = out;
	u32 pdh = le32_to_cpu(i->pd), access = le32_to_cpu(i->access), h;
	u64 iova = le64_to_cpu(i->iova), len = le64_to_cpu(i->length), addr = iova;
	const struct vrdma_mr_piece *p = (const void *)(i + 1);
	struct vbk_pd *pd;
	struct vbk_mr *mr;
	int err;

	if (i->reserved)
		return -EINVAL;
	/*
	 * No piece: [iova, iova + len) of the caller's own address space. One piece with shm
	 * 0: its offset is the caller's address of the buffer, registered at iova (a nested
	 * vbusd registers its guest's buffer, mapped in a window of its own, at the guest's
	 * address; docs/nesting.md); same offset in the page, as the relay requires.
	 */
	if (le32_to_cpu(i->npieces) == 1 && inlen == sizeof(*i) + sizeof(*p)) {
		addr = le64_to_cpu(p->offset);
		if (p->shm || p->reserved || le64_to_cpu(p->length) != len ||
		    (addr ^ iova) & ~PAGE_MASK || addr + len < addr)
			return -EINVAL;
	} else if (i->npieces || inlen != sizeof(*i)) {
		return -EINVAL;	/* pieces of regions are the relay's */
	}
	if (access & ~(ACCESS_ALLOWED | ACCESS_IGNORED))
		return -EOPNOTSUPP;	/* ON_DEMAND, ZERO_BASED, unknown bits */
	if (vbk_wl_lacks(g, access))
		return vbk_refuse(g, "MR access flags", vbk_wl_lacks(g, access));
	access &= ACCESS_ALLOWED;
	/* As uverbs (ib_check_mr_access): remote write or atomic needs local write. */
	if ((access & (IB_ACCESS_REMOTE_WRITE | IB_ACCESS_REMOTE_ATOMIC)) &&
	    !(access & IB_ACCESS_LOCAL_WRITE))
		return -EINVAL;
	if (!len || iova + len < iova)
		return -EINVAL;
	pd = vbk_obj_get(g, pdh, VBK_OBJ_PD, &err);
	if (!pd)
		return err;
	if (g->foreign) {	/* only within the VM's RAM (vbk_foreign.c) */
		err = vbk_foreign_range_ok(g, addr, len);
		if (err)
			return err;
	}
	/* Charged to g and its ancestors (vbk_child.c); -ENOMEM past a quota. */
	err = vbk_charge(g, 0, len);
	if (err)
		return err;
	mr = kzalloc(sizeof(*mr), GFP_KERNEL);
	if (!mr) {
		err = -ENOMEM;
		goto err_uncharge;
	}
	mr->mr = ib_reg_user_mr(pd->pd, addr, len, iova, access);
	if (IS_ERR(mr->mr)) {
		err = PTR_ERR(mr->mr);
		goto err_free;
	}
	mr->pd = pdh;
	mr->length = len;
	err = vbk_obj_new(g, VBK_OBJ_MR, mr, &h);
	if (err)
		goto err_dereg;
	down_write(&g->tbl);
	err = xa_insert(&g->mrs, mr->mr->lkey, mr, GFP_KERNEL);
	up_write(&g->tbl);
	if (err) {
		vbk_obj_free(g, h);
		goto err_dereg;
	}
	g->pinned += len;
	vbk_obj_use(g, pdh, 1);
	o->handle = cpu_to_le32(h);
	o->lkey = cpu_to_le32(mr->mr->lkey);
	o->rkey = cpu_to_le32(mr->mr->rkey);
	return 0;

err_dereg:
	ib_dereg_mr(mr->mr);
err_free:
	kfree(mr);
err_uncharge:
	vbk_uncharge(g, 0, len);
	return err;
}

int vbk_do_dereg_mr(struct vbk_guest *g, const void *in, u32 inlen, void *out)
{
	const struct vrdma_handle *i = in;
	u32 h = le32_to_cpu(i->handle);
	struct vbk_mr *mr;
	int err;

	if (i->reserved)
		return -EINVAL;
	mr = vbk_obj_get(g, h, VBK_OBJ_MR, &err);
	if (!mr)
		return err;
	vbk_drain_before_destroy(g);	/* the sends that name it first */
	vbk_obj_free(g, h);
	vbk_mr_free(g, mr);
	return 0;
}

int vbk_do_alloc_mw(struct vbk_guest *g, const void *in, u32 inlen, void *out)
{
	return -EOPNOTSUPP;
}

int vbk_do_dealloc_mw(struct vbk_guest *g, const void *in, u32 inlen, void *out)
{
	return -EOPNOTSUPP;
}
