// SPDX-License-Identifier: MIT
/*
 * HELLO and the device, port, GID and P_Key queries: the backing device's values (its
 * vendor IDs and capability flags too), with the bus's limits where they are lower: the
 * rings carry VRDMA_MAX_QUEUE work requests or CQEs, VRDMA_MAX_SGE SGEs and
 * VRDMA_MAX_INLINE inline bytes (docs/vrdma.md, QUERY_DEVICE).
 */
#include <endian.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "vrdma.h"

/* What create_qp grants at most as inline data, whatever the device could do. */

/*
 * HELLO: the newest version both sides speak, the features both have, the guest's limits.
 * A version-1 guest's 8-byte hello_in arrives zero-padded: abi_min 0 (it speaks only
 * abi_version), no features. -EPROTONOSUPPORT when the ranges do not meet (or the guest's
 * is empty); the answer then has abi_version 0 and the host's range.
 */
int vrdma_do_hello(struct vrdma_guest *g, const void *in, size_t inlen, void *out)
{
	const struct vrdma_hello_in *h = in;
	struct vrdma_hello_out *o = out;
	uint32_t hi = le32toh(h->abi_version), lo = le32toh(h->abi_min);

	/* h->doorbell is the bus adapter's business: it hands the signal to the relay. */
	if (!lo)
		lo = hi;
	o->abi_min = htole32(VRDMA_ABI_MIN_VERSION);
	o->abi_max = htole32(VRDMA_ABI_VERSION);
	if (!lo || lo > hi || hi < VRDMA_ABI_MIN_VERSION || lo > VRDMA_ABI_VERSION)
		return -EPROTONOSUPPORT;
	g->abi_version = hi < VRDMA_ABI_VERSION ? hi : VRDMA_ABI_VERSION;
	g->features = le64toh(h->features) & VRDMA_F_ALL;
	o->abi_version = htole32(g->abi_version);
	o->features = htole64(g->features);
	o->max_objects = htole32(g->pol.max_objects);
	o->max_pinned_bytes = htole64(g->pol.max_pinned_bytes);
	o->gid_index = htole32(g->pol.gid_index);
	o->qp_types = htole32(g->pol.qp_types);
	o->access = htole32(g->pol.access);
	return 0;
}

int vrdma_do_query_device(struct vrdma_guest *g, const void *in, size_t inlen, void *out)
{
	struct vrdma_query_device_out *o = out;
	struct ibv_device_attr a;
	int r = ibv_query_device(g->ctx, &a);

	if (r)
		return -r;
	snprintf(o->fw_ver, sizeof(o->fw_ver), "%s", a.fw_ver);
	o->node_guid = a.node_guid;
	o->sys_image_guid = a.sys_image_guid;
	o->max_mr_size = htole64(a.max_mr_size);
	o->page_size_cap = htole64(a.page_size_cap);
	o->vendor_id = htole32(a.vendor_id);
	o->vendor_part_id = htole32(a.vendor_part_id);
	o->hw_ver = htole32(a.hw_ver);
	o->max_qp = htole32(a.max_qp);
	/* What the shared rings and the relay can carry: 32767 work requests or CQEs (a guest
	 * ring has twice that, at most 65536 entries) and 32 SGEs. */
	o->max_qp_wr = htole32(a.max_qp_wr < VRDMA_MAX_QUEUE ? a.max_qp_wr : VRDMA_MAX_QUEUE);
	o->device_cap_flags = htole32(a.device_cap_flags);
	o->max_sge = htole32(a.max_sge < VRDMA_MAX_SGE ? a.max_sge : VRDMA_MAX_SGE);
	o->max_sge_rd = htole32(a.max_sge_rd);
	o->max_cq = htole32(a.max_cq);
	o->max_cqe = htole32(a.max_cqe < VRDMA_MAX_QUEUE ? a.max_cqe : VRDMA_MAX_QUEUE);
	o->max_mr = htole32(a.max_mr);
	o->max_pd = htole32(a.max_pd);
	o->max_qp_rd_atom = htole32(a.max_qp_rd_atom);
	o->max_qp_init_rd_atom = htole32(a.max_qp_init_rd_atom);
	o->max_res_rd_atom = htole32(a.max_res_rd_atom);
	o->atomic_cap = htole32(a.atomic_cap);
	o->max_mw = htole32(a.max_mw);
	o->max_mcast_grp = htole32(a.max_mcast_grp);
	o->max_mcast_qp_attach = htole32(a.max_mcast_qp_attach);
	o->max_total_mcast_qp_attach = htole32(a.max_total_mcast_qp_attach);
	o->max_ah = htole32(a.max_ah);
	o->max_srq = htole32(a.max_srq);
	o->max_srq_wr = htole32(a.max_srq_wr < VRDMA_MAX_QUEUE ? a.max_srq_wr : VRDMA_MAX_QUEUE);
	o->max_srq_sge = htole32(a.max_srq_sge < VRDMA_MAX_SGE ? a.max_srq_sge : VRDMA_MAX_SGE);
	o->max_pkeys = htole16(a.max_pkeys);
	o->local_ca_ack_delay = a.local_ca_ack_delay;
	o->phys_port_cnt = 1;	/* the guest sees the one backing port, as port 1 */
	o->max_inline_data = htole32(VRDMA_MAX_INLINE);
	return 0;
}

/* The 64-bit capability flags (ibv_query_device_ex, with device_cap_flags as its low
 * half, as uverbs reports them) and the completion vectors of the backing device. */
int vrdma_do_query_device_ex(struct vrdma_guest *g, const void *in, size_t inlen, void *out)
{
	struct vrdma_query_device_ex_out *o = out;
	struct ibv_device_attr_ex a;
	int r = ibv_query_device_ex(g->ctx, NULL, &a);

	if (r)
		return -r;
	o->device_cap_flags_ex = htole64(a.device_cap_flags_ex);
	o->num_comp_vectors = htole32(g->ctx->num_comp_vectors > 0 ?
				      (uint32_t)g->ctx->num_comp_vectors : 1);
	return 0;
}

/* The guest's port 1 is the backing port; there is no other. */
static int guest_port(struct vrdma_guest *g, uint8_t port)
{
	return port == 1 ? g->pol.port : -EINVAL;
}

int vrdma_do_query_port(struct vrdma_guest *g, const void *in, size_t inlen, void *out)
{
	const struct vrdma_query_port_in *i = in;
	struct vrdma_query_port_out *o = out;
	struct ibv_port_attr a;
	int port = guest_port(g, i->port_num), r;

	if (port < 0 || !vrdma_zero(i->reserved, sizeof(i->reserved)))
		return -EINVAL;
	r = ibv_query_port(g->ctx, port, &a);
	if (r)
		return -r;
	o->state = htole32(a.state);
	o->max_mtu = htole32(a.max_mtu);
	o->active_mtu = htole32(a.active_mtu);
	o->gid_tbl_len = htole32(a.gid_tbl_len);
	o->port_cap_flags = htole32(a.port_cap_flags);
	o->max_msg_sz = htole32(a.max_msg_sz);
	o->bad_pkey_cntr = htole32(a.bad_pkey_cntr);
	o->qkey_viol_cntr = htole32(a.qkey_viol_cntr);
	o->pkey_tbl_len = htole16(a.pkey_tbl_len);
	o->lid = htole16(a.lid);
	o->sm_lid = htole16(a.sm_lid);
	o->lmc = a.lmc;
	o->max_vl_num = a.max_vl_num;
	o->sm_sl = a.sm_sl;
	o->subnet_timeout = a.subnet_timeout;
	o->init_type_reply = a.init_type_reply;
	o->active_width = a.active_width;
	o->active_speed = a.active_speed;
	o->phys_state = a.phys_state;
	o->link_layer = a.link_layer;
	o->flags = a.flags;
	o->port_cap_flags2 = htole16(a.port_cap_flags2);
	o->active_speed_ex = 0;	/* not in rdma-core 44 */
	return 0;
}

int vrdma_do_query_gid(struct vrdma_guest *g, const void *in, size_t inlen, void *out)
{
	const struct vrdma_query_gid_in *i = in;
	struct vrdma_query_gid_out *o = out;
	struct ibv_gid_entry e;
	int port = guest_port(g, i->port_num), r;

	if (port < 0 || !vrdma_zero(i->reserved, sizeof(i->reserved)))
		return -EINVAL;
	r = ibv_query_gid_ex(g->ctx, port, le32toh(i->index), &e, 0);
	if (r)
		return r > 0 ? -r : r;
	memcpy(o->gid, e.gid.raw, sizeof(o->gid));
	o->gid_type = htole32(e.gid_type);
	/* a VM has none of the host's netdevs: their numbers are not its business */
	o->ndev_ifindex = htole32(g->pol.vm ? 0 : e.ndev_ifindex);
	return 0;
}

int vrdma_do_query_pkey(struct vrdma_guest *g, const void *in, size_t inlen, void *out)
{
	const struct vrdma_query_pkey_in *i = in;
	struct vrdma_query_pkey_out *o = out;
	__be16 pkey;
	int port = guest_port(g, i->port_num);

	if (port < 0 || !vrdma_zero(i->reserved, sizeof(i->reserved)))
		return -EINVAL;
	if (ibv_query_pkey(g->ctx, port, le32toh(i->index), &pkey))
		return -EINVAL;
	o->pkey = pkey;
	return 0;
}

/*
 * The backing port's valid GIDs from index `start` on (docs/vrdma.md, QUERY_GID_TABLE): one
 * ibv_query_gid_table of the whole device, the backing port's entries kept. The guest
 * reads its table once at open and after IBV_EVENT_GID_CHANGE, instead of one QUERY_GID
 * per index.
 */
int vrdma_do_query_gid_table(struct vrdma_guest *g, const void *in, size_t inlen, void *out)
{
	const struct vrdma_query_gid_table_in *i = in;
	struct vrdma_query_gid_table_out *o = out;
	uint32_t start = le32toh(i->start), count = 0, next;
	struct ibv_device_attr da;
	struct ibv_gid_entry *e;
	struct ibv_port_attr pa;
	ssize_t n;
	int port = guest_port(g, i->port_num), r;

	if (port < 0 || !vrdma_zero(i->reserved, sizeof(i->reserved)))
		return -EINVAL;
	r = ibv_query_port(g->ctx, port, &pa);
	if (!r)
		r = ibv_query_device(g->ctx, &da);
	if (r)
		return -r;
	next = pa.gid_tbl_len > 0 ? (uint32_t)pa.gid_tbl_len : 0;
	o->gid_tbl_len = htole32(next);
	if (start >= next)
		goto out;
	/* Room for every port's table: the call fails rather than truncate. */
	e = calloc((size_t)next * (da.phys_port_cnt ? da.phys_port_cnt : 1), sizeof(*e));
	if (!e)
		return -ENOMEM;
	n = ibv_query_gid_table(g->ctx, e, (size_t)next * (da.phys_port_cnt ? da.phys_port_cnt : 1),
				0);
	if (n < 0) {
		free(e);
		return (int)n;
	}
	/* The kernel lists entries by port, then index. */
	for (ssize_t k = 0; k < n; k++) {
		if (e[k].port_num != (uint32_t)port || e[k].gid_index < start)
			continue;
		if (count == VRDMA_GID_BATCH) {
			next = e[k].gid_index;
			break;
		}
		memcpy(o->e[count].gid, e[k].gid.raw, sizeof(o->e[count].gid));
		o->e[count].index = htole32(e[k].gid_index);
		o->e[count].gid_type = htole32(e[k].gid_type);
		count++;
	}
	free(e);
out:
	o->count = htole32(count);
	o->next = htole32(next);
	return 0;
}
