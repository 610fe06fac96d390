// SPDX-License-Identifier: GPL-2.0
/*
 * HELLO and the queries: the real device's values, as uverbs reports them to a native
 * program, with the guest's view applied: one port (the backing port, as port 1), the
 * backing device's vendor IDs and capability flags, no memory windows, and the limits of
 * the shared rings where they are lower than the device's.
 */
#include <rdma/ib_cache.h>
#include "vbk.h"

#define MW_CAPS (IB_DEVICE_MEM_WINDOW | IB_DEVICE_MEM_WINDOW_TYPE_2A | \
		 IB_DEVICE_MEM_WINDOW_TYPE_2B)

/* The newest version both speak (docs/vrdma.md, "HELLO"); a version-1 hello_in has no
 * abi_min (0: abi_version only). No feature is defined yet.
 */
int vbk_do_hello(struct vbk_guest *g, const void *in, u32 inlen, void *out)
{
	const struct vrdma_hello_in *h = in;
	struct vrdma_hello_out *o = out;
	u32 hi = le32_to_cpu(h->abi_version), lo = le32_to_cpu(h->abi_min);

	if (!lo)
		lo = hi;
	o->abi_min = cpu_to_le32(VRDMA_ABI_MIN_VERSION);
	o->abi_max = cpu_to_le32(VRDMA_ABI_VERSION);
	if (!lo || lo > hi || hi < VRDMA_ABI_MIN_VERSION || lo > VRDMA_ABI_VERSION)
		return -EPROTONOSUPPORT;
	o->abi_version = cpu_to_le32(min_t(u32, hi, VRDMA_ABI_VERSION));
	o->features = cpu_to_le64(le64_to_cpu(h->features) & VRDMA_F_ALL);
	o->max_objects = cpu_to_le32(g->max_objects);
	o->max_pinned_bytes = cpu_to_le64(g->max_pinned);
	o->gid_index = cpu_to_le32(g->gid_index);
	o->qp_types = cpu_to_le32(g->qp_types);
	o->access = cpu_to_le32(g->access);
	return 0;
}

int vbk_do_query_device(struct vbk_guest *g, const void *in, u32 inlen, void *out)
{
	struct vrdma_query_device_out *o = out;
	const struct ib_device_attr *a = &g->dev->attrs;

	ib_get_device_fw_str(g->dev, o->fw_ver);
	o->node_guid = (__force __le64)g->dev->node_guid;
	o->sys_image_guid = (__force __le64)a->sys_image_guid;
	o->max_mr_size = cpu_to_le64(a->max_mr_size);
	o->page_size_cap = cpu_to_le64(a->page_size_cap);
	o->vendor_id = cpu_to_le32(a->vendor_id);
	o->vendor_part_id = cpu_to_le32(a->vendor_part_id);
	o->hw_ver = cpu_to_le32(a->hw_ver);
	o->max_qp = cpu_to_le32(a->max_qp);
	o->max_qp_wr = cpu_to_le32(min_t(u32, a->max_qp_wr, VBK_MAX_QUEUE));
	o->device_cap_flags = cpu_to_le32(lower_32_bits(a->device_cap_flags) & ~MW_CAPS);
	o->max_sge = cpu_to_le32(min_t(u32, a->max_send_sge, min_t(u32, a->max_recv_sge, VBK_MAX_SGE)));
	o->max_sge_rd = cpu_to_le32(a->max_sge_rd);
	o->max_cq = cpu_to_le32(a->max_cq);
	o->max_cqe = cpu_to_le32(min_t(u32, a->max_cqe, VBK_MAX_QUEUE));
	o->max_mr = cpu_to_le32(a->max_mr);
	o->max_pd = cpu_to_le32(a->max_pd);
	o->max_qp_rd_atom = cpu_to_le32(a->max_qp_rd_atom);
	o->max_qp_init_rd_atom = cpu_to_le32(a->max_qp_init_rd_atom);
	o->max_res_rd_atom = cpu_to_le32(a->max_res_rd_atom);
	o->atomic_cap = cpu_to_le32(a->atomic_cap);
	o->max_mw = 0;		/* no memory windows for kernel QPs (docs/kernel.md) */
	o->max_mcast_grp = cpu_to_le32(a->max_mcast_grp);
	o->max_mcast_qp_attach = cpu_to_le32(a->max_mcast_qp_attach);
	o->max_total_mcast_qp_attach = cpu_to_le32(a->max_total_mcast_qp_attach);
	o->max_ah = cpu_to_le32(a->max_ah);
	o->max_srq = cpu_to_le32(a->max_srq);
	o->max_srq_wr = cpu_to_le32(min_t(u32, a->max_srq_wr, VBK_MAX_QUEUE));
	o->max_srq_sge = cpu_to_le32(min_t(u32, a->max_srq_sge, VBK_MAX_SGE));
	o->max_pkeys = cpu_to_le16(a->max_pkeys);
	o->local_ca_ack_delay = a->local_ca_ack_delay;
	o->phys_port_cnt = 1;
	o->max_inline_data = cpu_to_le32(VBK_MAX_INLINE);
	return 0;
}

/* The 64-bit capability flags as uverbs reports them to ibv_query_device_ex (without the
 * memory windows), and the device's completion vectors.
 */
int vbk_do_query_device_ex(struct vbk_guest *g, const void *in, u32 inlen, void *out)
{
	struct vrdma_query_device_ex_out *o = out;

	o->device_cap_flags_ex = cpu_to_le64(g->dev->attrs.device_cap_flags & ~(u64)MW_CAPS);
	o->num_comp_vectors = cpu_to_le32(max(g->dev->num_comp_vectors, 1));
	return 0;
}

/* The guest's port 1 is the backing port. */
static int guest_port(struct vbk_guest *g, u8 port, const u8 *reserved, size_t n)
{
	return port == 1 && vbk_zero(reserved, n) ? (int)g->port : -EINVAL;
}

int vbk_do_query_port(struct vbk_guest *g, const void *in, u32 inlen, void *out)
{
	const struct vrdma_query_port_in *i = in;
	struct vrdma_query_port_out *o = out;
	struct ib_port_attr a;
	int port = guest_port(g, i->port_num, i->reserved, sizeof(i->reserved));
	int err;

	if (port < 0)
		return port;
	err = ib_query_port(g->dev, port, &a);
	if (err)
		return err;
	o->state = cpu_to_le32(a.state);
	o->max_mtu = cpu_to_le32(a.max_mtu);
	o->active_mtu = cpu_to_le32(a.active_mtu);
	o->gid_tbl_len = cpu_to_le32(a.gid_tbl_len);
	o->port_cap_flags = cpu_to_le32(a.port_cap_flags);
	o->max_msg_sz = cpu_to_le32(a.max_msg_sz);
	o->bad_pkey_cntr = cpu_to_le32(a.bad_pkey_cntr);
	o->qkey_viol_cntr = cpu_to_le32(a.qkey_viol_cntr);
	o->pkey_tbl_len = cpu_to_le16(a.pkey_tbl_len);
	o->lid = cpu_to_le16(a.lid);
	o->sm_lid = cpu_to_le16(a.sm_lid);
	o->lmc = a.lmc;
	o->max_vl_num = a.max_vl_num;
	o->sm_sl = a.sm_sl;
	o->subnet_timeout = a.subnet_timeout;
	o->init_type_reply = a.init_type_reply;
	o->active_width = a.active_width;
	o->active_speed = a.active_speed;
	o->phys_state = a.phys_state;
	o->link_layer = rdma_port_get_link_layer(g->dev, port);
	o->flags = rdma_is_grh_required(g->dev, port) ? IB_UVERBS_QPF_GRH_REQUIRED : 0;
	o->port_cap_flags2 = cpu_to_le16(a.port_cap_flags2);
	return 0;
}

int vbk_do_query_gid(struct vbk_guest *g, const void *in, u32 inlen, void *out)
{
	const struct vrdma_query_gid_in *i = in;
	struct vrdma_query_gid_out *o = out;
	const struct ib_gid_attr *ga;
	struct net_device *ndev;
	int port = guest_port(g, i->port_num, i->reserved, sizeof(i->reserved));

	if (port < 0)
		return port;
	ga = rdma_get_gid_attr(g->dev, port, le32_to_cpu(i->index));
	if (IS_ERR(ga))
		return PTR_ERR(ga);
	memcpy(o->gid, ga->gid.raw, sizeof(o->gid));
	o->gid_type = cpu_to_le32(ga->gid_type);
	/* As uverbs' QUERY_GID_ENTRY answers a process natively. */
	rcu_read_lock();
	ndev = rdma_read_gid_attr_ndev_rcu(ga);
	o->ndev_ifindex = cpu_to_le32(IS_ERR(ndev) ? 0 : ndev->ifindex);
	rcu_read_unlock();
	rdma_put_gid_attr(ga);
	return 0;
}

int vbk_do_query_pkey(struct vbk_guest *g, const void *in, u32 inlen, void *out)
{
	const struct vrdma_query_pkey_in *i = in;
	struct vrdma_query_pkey_out *o = out;
	int port = guest_port(g, i->port_num, i->reserved, sizeof(i->reserved));
	u16 pkey;
	int err;

	if (port < 0)
		return port;
	err = ib_query_pkey(g->dev, port, le32_to_cpu(i->index), &pkey);
	if (err)
		return -EINVAL;
	o->pkey = (__force __le16)cpu_to_be16(pkey);
	return 0;
}

/* The backing port's valid GIDs from index start on, at most VRDMA_GID_BATCH of them
 * (docs/vrdma.md, QUERY_GID_TABLE); an empty or invalid entry is skipped.
 */
int vbk_do_query_gid_table(struct vbk_guest *g, const void *in, u32 inlen, void *out)
{
	const struct vrdma_query_gid_table_in *i = in;
	struct vrdma_query_gid_table_out *o = out;
	int port = guest_port(g, i->port_num, i->reserved, sizeof(i->reserved));
	u32 idx, len, count = 0;

	if (port < 0)
		return port;
	len = g->dev->port_data[port].immutable.gid_tbl_len;
	o->gid_tbl_len = cpu_to_le32(len);
	for (idx = le32_to_cpu(i->start); idx < len && count < VRDMA_GID_BATCH; idx++) {
		const struct ib_gid_attr *ga = rdma_get_gid_attr(g->dev, port, idx);

		if (IS_ERR(ga))
			continue;
		memcpy(o->e[count].gid, ga->gid.raw, sizeof(o->e[count].gid));
		o->e[count].index = cpu_to_le32(idx);
		o->e[count].gid_type = cpu_to_le32(ga->gid_type);
		rdma_put_gid_attr(ga);
		count++;
	}
	o->count = cpu_to_le32(count);
	o->next = cpu_to_le32(min(idx, len));
	return 0;
}
