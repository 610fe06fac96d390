// SPDX-License-Identifier: GPL-2.0
/* Protection domains: one kernel PD per guest PD. */
#include <linux/slab.h>
#include "vbk.h"

void vbk_pd_free(struct vbk_guest *g, struct vbk_pd *pd)
{
	ib_dealloc_pd(pd->pd);
	kfree(pd);
}

int vbk_do_alloc_pd(struct vbk_guest *g, const void *in, u32 inlen, void *out)
{
	struct vrdma_handle *o = out;
	struct vbk_pd *pd = kzalloc(sizeof(*pd), GFP_KERNEL);
	u32 h;
	int err;

	if (!pd)
		return -ENOMEM;
	pd->pd = ib_alloc_pd(g->dev, 0);
	if (IS_ERR(pd->pd)) {
		err = PTR_ERR(pd->pd);
		goto err_free;
	}
	err = vbk_obj_new(g, VBK_OBJ_PD, pd, &h);
	if (err)
		goto err_dealloc;
	o->handle = cpu_to_le32(h);
	return 0;

err_dealloc:
	ib_dealloc_pd(pd->pd);
err_free:
	kfree(pd);
	return err;
}

int vbk_do_dealloc_pd(struct vbk_guest *g, const void *in, u32 inlen, void *out)
{
	const struct vrdma_handle *i = in;
	u32 h = le32_to_cpu(i->handle);
	struct vbk_pd *pd;
	int err;

	if (i->reserved)
		return -EINVAL;
	pd = vbk_obj_get(g, h, VBK_OBJ_PD, &err);
	if (!pd)
		return err;
	if (vbk_obj_slot(g, h)->users)
		return -EBUSY;
	vbk_obj_free(g, h);
	vbk_pd_free(g, pd);
	return 0;
}

/* A dependent object takes (+1) or drops (-1) a use of the object behind handle h. */
void vbk_obj_use(struct vbk_guest *g, u32 h, int d)
{
	struct vbk_obj *o = vbk_obj_slot(g, h);

	if (o)
		o->users += d;
}
