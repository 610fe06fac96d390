// SPDX-License-Identifier: MIT
/*
 * The real libibverbs, resolved once when the library loads. This library links
 * libibverbs itself (--no-as-needed), so RTLD_NEXT finds it even for callers that
 * reached us through dlopen(RTLD_LOCAL) (shared/notes/interposer.md).
 */
#include <dlfcn.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>
#include "vbg.h"

struct vbg_real vbg_real;
int vbg_log_level = 1;

void vbg_log(int level, const char *fmt, ...)
{
	char buf[512];
	va_list ap;
	int n;

	if (level > vbg_log_level)
		return;
	n = snprintf(buf, sizeof(buf), "vbus-verbs[%d]: ", (int)getpid());
	va_start(ap, fmt);
	vsnprintf(buf + n, sizeof(buf) - (size_t)n - 1, fmt, ap);
	va_end(ap);
	fprintf(stderr, "%s\n", buf);
}

static void *sym(const char *name, const char *version)
{
	void *p = version ? dlvsym(RTLD_NEXT, name, version) : NULL;

	if (!p)
		p = dlsym(RTLD_NEXT, name);
	if (!p)
		vbg_dbg("real %s not found", name);
	return p;
}

#define R(field, name) vbg_real.field = sym(name, NULL)
#define RV(field, name, ver) vbg_real.field = sym(name, ver)

__attribute__((constructor)) void vbg_real_init(void)
{
	const char *l = getenv("VBUS_VERBS_LOG");

	if (vbg_real.get_device_list)
		return;
	if (l)
		vbg_log_level = atoi(l);
	RV(get_device_list, "ibv_get_device_list", "IBVERBS_1.1");
	RV(free_device_list, "ibv_free_device_list", "IBVERBS_1.1");
	RV(get_device_guid, "ibv_get_device_guid", "IBVERBS_1.1");
	R(get_device_index, "ibv_get_device_index");
	RV(open_device, "ibv_open_device", "IBVERBS_1.1");
	RV(close_device, "ibv_close_device", "IBVERBS_1.1");
	RV(query_device, "ibv_query_device", "IBVERBS_1.1");
	RV(query_port, "ibv_query_port", "IBVERBS_1.1");
	RV(query_gid, "ibv_query_gid", "IBVERBS_1.1");
	R(query_gid_ex, "_ibv_query_gid_ex");
	R(query_gid_table, "_ibv_query_gid_table");
	R(query_gid_type, "ibv_query_gid_type");
	RV(query_pkey, "ibv_query_pkey", "IBVERBS_1.1");
	RV(alloc_pd, "ibv_alloc_pd", "IBVERBS_1.1");
	RV(dealloc_pd, "ibv_dealloc_pd", "IBVERBS_1.1");
	RV(reg_mr, "ibv_reg_mr", "IBVERBS_1.1");
	R(reg_mr_iova, "ibv_reg_mr_iova");
	R(reg_mr_iova2, "ibv_reg_mr_iova2");
	RV(rereg_mr, "ibv_rereg_mr", "IBVERBS_1.1");
	RV(dereg_mr, "ibv_dereg_mr", "IBVERBS_1.1");
	RV(create_comp_channel, "ibv_create_comp_channel", "IBVERBS_1.0");
	RV(destroy_comp_channel, "ibv_destroy_comp_channel", "IBVERBS_1.0");
	RV(create_cq, "ibv_create_cq", "IBVERBS_1.1");
	RV(resize_cq, "ibv_resize_cq", "IBVERBS_1.1");
	RV(destroy_cq, "ibv_destroy_cq", "IBVERBS_1.1");
	RV(get_cq_event, "ibv_get_cq_event", "IBVERBS_1.1");
	RV(ack_cq_events, "ibv_ack_cq_events", "IBVERBS_1.1");
	RV(get_async_event, "ibv_get_async_event", "IBVERBS_1.1");
	RV(ack_async_event, "ibv_ack_async_event", "IBVERBS_1.1");
	RV(create_srq, "ibv_create_srq", "IBVERBS_1.1");
	RV(modify_srq, "ibv_modify_srq", "IBVERBS_1.1");
	RV(query_srq, "ibv_query_srq", "IBVERBS_1.1");
	RV(destroy_srq, "ibv_destroy_srq", "IBVERBS_1.1");
	RV(create_qp, "ibv_create_qp", "IBVERBS_1.1");
	RV(modify_qp, "ibv_modify_qp", "IBVERBS_1.1");
	RV(query_qp, "ibv_query_qp", "IBVERBS_1.1");
	RV(destroy_qp, "ibv_destroy_qp", "IBVERBS_1.1");
	R(qp_to_qp_ex, "ibv_qp_to_qp_ex");
	RV(create_ah, "ibv_create_ah", "IBVERBS_1.1");
	RV(destroy_ah, "ibv_destroy_ah", "IBVERBS_1.1");
	RV(attach_mcast, "ibv_attach_mcast", "IBVERBS_1.1");
	RV(detach_mcast, "ibv_detach_mcast", "IBVERBS_1.1");
	R(query_ece, "ibv_query_ece");
	R(set_ece, "ibv_set_ece");
	R(query_qp_data_in_order, "ibv_query_qp_data_in_order");
	R(reg_dmabuf_mr, "ibv_reg_dmabuf_mr");
	R(import_device, "ibv_import_device");
	R(import_pd, "ibv_import_pd");
	R(unimport_pd, "ibv_unimport_pd");
	R(import_mr, "ibv_import_mr");
	R(unimport_mr, "ibv_unimport_mr");
	R(import_dm, "ibv_import_dm");
	R(unimport_dm, "ibv_unimport_dm");
}
