// SPDX-License-Identifier: GPL-2.0
/*
 * A guest's object table: handles are an index (VRDMA_HANDLE_INDEX_BITS) and a generation
 * that changes each time a slot is reused, as on the relay backend (docs/vrdma.md). Slot 0
 * is never used, so handle 0 is never valid. Lookups need ctl or tbl held; changes take
 * tbl for writing, so the data path never sees an object half made or half gone.
 */
#include <linux/slab.h>
#include "vbk.h"

#define IDX_MASK	((1u << VRDMA_HANDLE_INDEX_BITS) - 1)

static u32 mkhandle(u32 idx, u16 gen)
{
	return (u32)gen << VRDMA_HANDLE_INDEX_BITS | idx;
}

int vbk_obj_new(struct vbk_guest *g, enum vbk_obj_type type, void *p, u32 *h)
{
	u32 i;
	int err;

	lockdep_assert_held(&g->ctl);
	/* One handle, charged to g and its ancestors (vbk_child.c); -EDQUOT past a quota. */
	err = vbk_charge(g, 1, 0);
	if (err)
		return err;
	for (i = 1; i < g->nobjs; i++)
		if (g->objs[i].type == VBK_OBJ_FREE)
			break;
	if (i >= g->nobjs) {
		u32 n = g->nobjs ? g->nobjs * 2 : 64;
		struct vbk_obj *o;

		if (n > IDX_MASK + 1)
			n = IDX_MASK + 1;
		if (i >= n) {
			err = -EDQUOT;
			goto err_uncharge;
		}
		o = kvcalloc(n, sizeof(*o), GFP_KERNEL);
		if (!o) {
			err = -ENOMEM;
			goto err_uncharge;
		}
		down_write(&g->tbl);
		if (g->nobjs)
			memcpy(o, g->objs, g->nobjs * sizeof(*o));
		swap(o, g->objs);
		g->nobjs = n;
		up_write(&g->tbl);
		kvfree(o);
	}
	down_write(&g->tbl);
	g->objs[i].type = type;
	g->objs[i].gen = (g->objs[i].gen + 1) & ((1u << VBK_GEN_BITS) - 1);
	if (!g->objs[i].gen)
		g->objs[i].gen = 1;
	g->objs[i].users = 0;
	g->objs[i].p = p;
	g->live++;
	up_write(&g->tbl);
	*h = mkhandle(i, g->objs[i].gen);
	return 0;

err_uncharge:
	vbk_uncharge(g, 1, 0);
	return err;
}

struct vbk_obj *vbk_obj_slot(struct vbk_guest *g, u32 h)
{
	u32 i = h & IDX_MASK;

	if (!i || i >= g->nobjs || g->objs[i].type == VBK_OBJ_FREE ||
	    g->objs[i].gen != h >> VRDMA_HANDLE_INDEX_BITS)
		return NULL;
	return &g->objs[i];
}

/* The object behind handle h if it is of `type`; NULL with *err -ENOENT (stale or free)
 * or -EINVAL (0, out of range, another type).
 */
void *vbk_obj_get(struct vbk_guest *g, u32 h, enum vbk_obj_type type, int *err)
{
	u32 i = h & IDX_MASK;
	struct vbk_obj *o;

	if (!i || i >= g->nobjs) {
		*err = -EINVAL;
		return NULL;
	}
	o = vbk_obj_slot(g, h);
	if (!o) {
		*err = -ENOENT;
		return NULL;
	}
	if (o->type != type) {
		*err = -EINVAL;
		return NULL;
	}
	return o->p;
}

void vbk_obj_free(struct vbk_guest *g, u32 h)
{
	struct vbk_obj *o;

	lockdep_assert_held(&g->ctl);
	down_write(&g->tbl);
	o = vbk_obj_slot(g, h);
	if (o) {
		o->type = VBK_OBJ_FREE;
		o->p = NULL;
		g->live--;
	}
	up_write(&g->tbl);
	if (o)
		vbk_uncharge(g, 1, 0);
}

/* Destroy every object, dependents first: QPs, then SRQs, AHs, MRs, CQs, PDs. */
void vbk_obj_destroy_all(struct vbk_guest *g)
{
	static const u16 order[] = { VBK_OBJ_QP, VBK_OBJ_SRQ, VBK_OBJ_AH, VBK_OBJ_MR,
				     VBK_OBJ_CQ, VBK_OBJ_PD };
	unsigned int k;
	u32 i;

	lockdep_assert_held(&g->ctl);
	for (k = 0; k < ARRAY_SIZE(order); k++) {
		for (i = 1; i < g->nobjs; i++) {
			struct vbk_obj *o = &g->objs[i];
			void *p = o->p;

			if (o->type != order[k])
				continue;
			vbk_obj_free(g, mkhandle(i, o->gen));
			switch (order[k]) {
			case VBK_OBJ_QP:
				vbk_qp_free(g, p);
				break;
			case VBK_OBJ_SRQ:
				vbk_srq_free(g, p);
				break;
			case VBK_OBJ_AH:
				vbk_ah_free(g, p);
				break;
			case VBK_OBJ_MR:
				vbk_mr_free(g, p);
				break;
			case VBK_OBJ_CQ:
				vbk_cq_free(g, p);
				break;
			case VBK_OBJ_PD:
				vbk_pd_free(g, p);
				break;
			}
		}
	}
}
