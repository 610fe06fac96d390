// SPDX-License-Identifier: GPL-2.0
/*
 * Address vectors and address handles. A guest's address vector names port 1 (its one
 * port) and, with a GRH, only the source GID index its bus allows (-EPERM otherwise), as
 * on the relay backend. RoCE needs the destination MAC, which the core resolves only for
 * user callers: AHs are made with rdma_create_user_ah (no udata: a kernel AH, its MAC
 * resolved), connected QPs are modified with an empty udata (vbk_qp.c).
 */
#include <linux/slab.h>
#include "vbk.h"

int vbk_ah_attr_in(struct vbk_guest *g, struct rdma_ah_attr *a, const struct vrdma_ah_attr *v)
{
	union ib_gid dgid;

	if (v->reserved)
		return -EINVAL;
	if (v->port_num != 1)
		return -EINVAL;
	if (v->is_global && v->sgid_index != g->gid_index)
		return -EPERM;
	memset(a, 0, sizeof(*a));
	a->type = rdma_ah_find_type(g->dev, g->port);
	rdma_ah_set_port_num(a, g->port);
	rdma_ah_set_sl(a, v->sl);
	rdma_ah_set_static_rate(a, v->static_rate);
	rdma_ah_set_path_bits(a, v->src_path_bits);
	rdma_ah_set_dlid(a, le16_to_cpu(v->dlid));
	if (v->is_global) {
		memcpy(dgid.raw, v->dgid, sizeof(dgid.raw));
		rdma_ah_set_grh(a, &dgid, le32_to_cpu(v->flow_label), v->sgid_index,
				v->hop_limit, v->traffic_class);
	}
	return 0;
}

void vbk_ah_attr_out(struct vrdma_ah_attr *v, const struct rdma_ah_attr *a)
{
	const struct ib_global_route *grh = rdma_ah_read_grh(a);

	memset(v, 0, sizeof(*v));
	v->port_num = 1;
	v->sl = rdma_ah_get_sl(a);
	v->static_rate = rdma_ah_get_static_rate(a);
	v->src_path_bits = rdma_ah_get_path_bits(a);
	v->dlid = cpu_to_le16(rdma_ah_get_dlid(a));
	if (rdma_ah_get_ah_flags(a) & IB_AH_GRH) {
		v->is_global = 1;
		memcpy(v->dgid, grh->dgid.raw, sizeof(v->dgid));
		v->flow_label = cpu_to_le32(grh->flow_label);
		v->sgid_index = grh->sgid_index;
		v->hop_limit = grh->hop_limit;
		v->traffic_class = grh->traffic_class;
	}
}

void vbk_ah_free(struct vbk_guest *g, struct vbk_ah *ah)
{
	rdma_destroy_ah(ah->ah, RDMA_DESTROY_AH_SLEEPABLE);
	vbk_obj_use(g, ah->pd, -1);
	kfree(ah);
}

int vbk_do_create_ah(struct vbk_guest *g, const void *in, u32 inlen, void *out)
{
	const struct vrdma_create_ah_in *i = in;
	struct vrdma_handle *o = out;
	u32 pdh = le32_to_cpu(i->pd), h;
	struct rdma_ah_attr a;
	struct vbk_pd *pd;
	struct vbk_ah *ah;
	int err;

	if (i->reserved)
		return -EINVAL;
	pd = vbk_obj_get(g, pdh, VBK_OBJ_PD, &err);
	if (!pd)
		return err;
	err = vbk_ah_attr_in(g, &a, &i->attr);
	if (err)
		return err;
	ah = kzalloc(sizeof(*ah), GFP_KERNEL);
	if (!ah)
		return -ENOMEM;
	ah->ah = rdma_create_user_ah(pd->pd, &a, NULL);
	if (IS_ERR(ah->ah)) {
		err = PTR_ERR(ah->ah);
		goto err_free;
	}
	ah->pd = pdh;
	err = vbk_obj_new(g, VBK_OBJ_AH, ah, &h);
	if (err)
		goto err_destroy;
	vbk_obj_use(g, pdh, 1);
	o->handle = cpu_to_le32(h);
	return 0;

err_destroy:
	rdma_destroy_ah(ah->ah, RDMA_DESTROY_AH_SLEEPABLE);
err_free:
	kfree(ah);
	return err;
}

int vbk_do_destroy_ah(struct vbk_guest *g, const void *in, u32 inlen, void *out)
{
	const struct vrdma_handle *i = in;
	u32 h = le32_to_cpu(i->handle);
	struct vbk_ah *ah;
	int err;

	if (i->reserved)
		return -EINVAL;
	ah = vbk_obj_get(g, h, VBK_OBJ_AH, &err);
	if (!ah)
		return err;
	vbk_drain_before_destroy(g);	/* the sends that name it first */
	vbk_obj_free(g, h);
	vbk_ah_free(g, ah);
	return 0;
}
