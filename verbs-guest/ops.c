// SPDX-License-Identifier: MIT
/*
 * The operation tables of a vbus context. rdma-core's inline verbs call through them
 * (ibv_post_send, ibv_poll_cq, ibv_create_qp_ex, ibv_query_port, ...), some with no NULL
 * check, so every slot is filled: a verb vbus does not carry returns EOPNOTSUPP (or NULL
 * with errno EOPNOTSUPP) and logs once.
 */
#include <errno.h>
#include "vbg.h"

#define UNSUP_NULL(name) ({ errno = vbg_unsupported(name); NULL; })

static void *compat_null(void)
{ return UNSUP_NULL("a libibverbs 1.0 compatibility verb"); }
static int compat_query_device(struct ibv_context *c, struct ibv_device_attr *a)
{ return ibv_query_device(c, a); }
static int compat_query_port(struct ibv_context *c, uint8_t port, struct _compat_ibv_port_attr *a)
{ return vbg_query_port_ex(c, port, (struct ibv_port_attr *)a, VBG_COMPAT_PORT_ATTR_SIZE); }

/* verbs_context ops */
static int advise_mr(struct ibv_pd *pd, enum ibv_advise_mr_advice a, uint32_t f,
		     struct ibv_sge *s, uint32_t n)
{ return vbg_unsupported("ibv_advise_mr"); }
static struct ibv_mr *alloc_null_mr(struct ibv_pd *pd)
{ return UNSUP_NULL("ibv_alloc_null_mr"); }
static int read_counters(struct ibv_counters *c, uint64_t *v, uint32_t n, uint32_t f)
{ return vbg_unsupported("ibv_read_counters"); }
static int attach_counters_point_flow(struct ibv_counters *c, struct ibv_counter_attach_attr *a,
				      struct ibv_flow *f)
{ return vbg_unsupported("ibv_attach_counters_point_flow"); }
static struct ibv_counters *create_counters(struct ibv_context *c,
					    struct ibv_counters_init_attr *a)
{ return UNSUP_NULL("ibv_create_counters"); }
static int destroy_counters(struct ibv_counters *c)
{ return vbg_unsupported("ibv_destroy_counters"); }
static struct ibv_mr *reg_dm_mr(struct ibv_pd *pd, struct ibv_dm *dm, uint64_t off, size_t len,
				unsigned int access)
{ return UNSUP_NULL("ibv_reg_dm_mr"); }
static struct ibv_dm *alloc_dm(struct ibv_context *c, struct ibv_alloc_dm_attr *a)
{ return UNSUP_NULL("ibv_alloc_dm"); }
static int free_dm(struct ibv_dm *dm)
{ return vbg_unsupported("ibv_free_dm"); }
static int modify_flow_action_esp(struct ibv_flow_action *a, struct ibv_flow_action_esp_attr *e)
{ return vbg_unsupported("ibv_modify_flow_action_esp"); }
static int destroy_flow_action(struct ibv_flow_action *a)
{ return vbg_unsupported("ibv_destroy_flow_action"); }
static struct ibv_flow_action *create_flow_action_esp(struct ibv_context *c,
						      struct ibv_flow_action_esp_attr *a)
{ return UNSUP_NULL("ibv_create_flow_action_esp"); }
static int modify_qp_rate_limit(struct ibv_qp *qp, struct ibv_qp_rate_limit_attr *a)
{ return vbg_unsupported("ibv_modify_qp_rate_limit"); }
static struct ibv_pd *alloc_parent_domain(struct ibv_context *c,
					  struct ibv_parent_domain_init_attr *a)
{ return UNSUP_NULL("ibv_alloc_parent_domain"); }
static int dealloc_td(struct ibv_td *td)
{ return vbg_unsupported("ibv_dealloc_td"); }
static struct ibv_td *alloc_td(struct ibv_context *c, struct ibv_td_init_attr *a)
{ return UNSUP_NULL("ibv_alloc_td"); }
static int modify_cq(struct ibv_cq *cq, struct ibv_modify_cq_attr *a)
{ return vbg_unsupported("ibv_modify_cq"); }
static int post_srq_ops(struct ibv_srq *srq, struct ibv_ops_wr *op, struct ibv_ops_wr **bad)
{ if (bad) *bad = op; return vbg_unsupported("ibv_post_srq_ops"); }
static int destroy_rwq_ind_table(struct ibv_rwq_ind_table *t)
{ return vbg_unsupported("ibv_destroy_rwq_ind_table"); }
static struct ibv_rwq_ind_table *create_rwq_ind_table(struct ibv_context *c,
						      struct ibv_rwq_ind_table_init_attr *a)
{ return UNSUP_NULL("ibv_create_rwq_ind_table"); }
static int destroy_wq(struct ibv_wq *wq)
{ return vbg_unsupported("ibv_destroy_wq"); }
static int modify_wq(struct ibv_wq *wq, struct ibv_wq_attr *a)
{ return vbg_unsupported("ibv_modify_wq"); }
static struct ibv_wq *create_wq(struct ibv_context *c, struct ibv_wq_init_attr *a)
{ return UNSUP_NULL("ibv_create_wq"); }
static int query_rt_values(struct ibv_context *c, struct ibv_values_ex *v)
{ return vbg_unsupported("ibv_query_rt_values_ex"); }
static int destroy_flow(struct ibv_flow *f)
{ return vbg_unsupported("ibv_destroy_flow"); }
static struct ibv_flow *create_flow(struct ibv_qp *qp, struct ibv_flow_attr *a)
{ return UNSUP_NULL("ibv_create_flow"); }
static void placeholder(void) { }
static struct ibv_qp *open_qp(struct ibv_context *c, struct ibv_qp_open_attr *a)
{ return UNSUP_NULL("ibv_open_qp"); }
static int get_srq_num(struct ibv_srq *srq, uint32_t *n)
{ return vbg_unsupported("ibv_get_srq_num"); }
static struct ibv_xrcd *open_xrcd(struct ibv_context *c, struct ibv_xrcd_init_attr *a)
{ return UNSUP_NULL("ibv_open_xrcd"); }
static int close_xrcd(struct ibv_xrcd *x)
{ return vbg_unsupported("ibv_close_xrcd"); }

void vbg_fill_ops(struct vbg_context *ctx)
{
	struct ibv_context_ops *o = &ctx->vctx.context.ops;
	struct verbs_context *v = &ctx->vctx;

	o->_compat_query_device = compat_query_device;
	o->_compat_query_port = compat_query_port;
	o->_compat_alloc_pd = compat_null;
	o->_compat_dealloc_pd = compat_null;
	o->_compat_reg_mr = compat_null;
	o->_compat_rereg_mr = compat_null;
	o->_compat_dereg_mr = compat_null;
	o->alloc_mw = vbg_alloc_mw;
	o->bind_mw = vbg_bind_mw;
	o->dealloc_mw = vbg_dealloc_mw;
	o->_compat_create_cq = compat_null;
	o->poll_cq = vbg_poll_cq;
	o->req_notify_cq = vbg_req_notify_cq;
	o->_compat_cq_event = compat_null;
	o->_compat_resize_cq = compat_null;
	o->_compat_destroy_cq = compat_null;
	o->_compat_create_srq = compat_null;
	o->_compat_modify_srq = compat_null;
	o->_compat_query_srq = compat_null;
	o->_compat_destroy_srq = compat_null;
	o->post_srq_recv = vbg_post_srq_recv;
	o->_compat_create_qp = compat_null;
	o->_compat_query_qp = compat_null;
	o->_compat_modify_qp = compat_null;
	o->_compat_destroy_qp = compat_null;
	o->post_send = vbg_post_send;
	o->post_recv = vbg_post_recv;
	o->_compat_create_ah = compat_null;
	o->_compat_destroy_ah = compat_null;
	o->_compat_attach_mcast = compat_null;
	o->_compat_detach_mcast = compat_null;
	o->_compat_async_event = compat_null;

	v->query_port = vbg_query_port_ex;
	v->advise_mr = advise_mr;
	v->alloc_null_mr = alloc_null_mr;
	v->read_counters = read_counters;
	v->attach_counters_point_flow = attach_counters_point_flow;
	v->create_counters = create_counters;
	v->destroy_counters = destroy_counters;
	v->reg_dm_mr = reg_dm_mr;
	v->alloc_dm = alloc_dm;
	v->free_dm = free_dm;
	v->modify_flow_action_esp = modify_flow_action_esp;
	v->destroy_flow_action = destroy_flow_action;
	v->create_flow_action_esp = create_flow_action_esp;
	v->modify_qp_rate_limit = modify_qp_rate_limit;
	v->alloc_parent_domain = alloc_parent_domain;
	v->dealloc_td = dealloc_td;
	v->alloc_td = alloc_td;
	v->modify_cq = modify_cq;
	v->post_srq_ops = post_srq_ops;
	v->destroy_rwq_ind_table = destroy_rwq_ind_table;
	v->create_rwq_ind_table = create_rwq_ind_table;
	v->destroy_wq = destroy_wq;
	v->modify_wq = modify_wq;
	v->create_wq = create_wq;
	v->query_rt_values = query_rt_values;
	v->create_cq_ex = vbg_create_cq_ex;
	v->priv = NULL;
	v->query_device_ex = vbg_query_device_ex;
	v->ibv_destroy_flow = destroy_flow;
	v->ABI_placeholder2 = placeholder;
	v->ibv_create_flow = create_flow;
	v->ABI_placeholder1 = placeholder;
	v->open_qp = open_qp;
	v->create_qp_ex = vbg_create_qp_ex;
	v->get_srq_num = get_srq_num;
	v->create_srq_ex = vbg_create_srq_ex;
	v->open_xrcd = open_xrcd;
	v->close_xrcd = close_xrcd;
}
