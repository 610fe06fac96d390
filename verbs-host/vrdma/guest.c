// SPDX-License-Identifier: MIT
/*
 * One guest of a vrdma device: its own ibv_context on the real device, so that the kernel
 * keeps guests apart and closing the context frees whatever a dead guest held.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <unistd.h>
#include "vrdma.h"

/* Open the real device for a new guest. 0 or -errno. */
int vrdma_guest_open(struct vrdma_guest **out, struct ibv_device *dev,
		     const struct vrdma_policy *pol, const struct vrdma_env_ops *env,
		     void *env_priv)
{
	struct vrdma_guest *g = calloc(1, sizeof(*g));
	int err;

	if (!g)
		return -ENOMEM;
	g->ctx = ibv_open_device(dev);
	if (!g->ctx) {
		err = errno ? -errno : -ENODEV;
		goto err_free;
	}
	g->chan = ibv_create_comp_channel(g->ctx);
	if (!g->chan) {
		err = errno ? -errno : -ENOMEM;
		goto err_close;
	}
	/* The relay reads events, completion and async ones, without blocking. */
	fcntl(g->chan->fd, F_SETFL, fcntl(g->chan->fd, F_GETFL) | O_NONBLOCK);
	fcntl(g->ctx->async_fd, F_SETFL, fcntl(g->ctx->async_fd, F_GETFL) | O_NONBLOCK);
	g->charge = vrdma_charge_new(pol->parent, pol->max_objects, pol->max_pinned_bytes);
	if (!g->charge) {
		err = -ENOMEM;
		goto err_chan;
	}
	g->doorbell = -1;
	g->pol = *pol;
	g->pol.parent = NULL;	/* held through g->charge */
	g->env = env;
	g->env_priv = env_priv;
	g->page = sysconf(_SC_PAGESIZE);
	for (int k = 0; k < VRDMA_QKINDS; k++) {
		vrdma_link_init(&g->active[k]);
		vrdma_link_init(&g->parked[k]);
	}
	g->park_ns = UINT64_MAX;	/* until a relay thread serves it (vrdma_relay_add) */
	pthread_mutex_init(&g->lock, NULL);
	*out = g;
	return 0;

err_chan:
	ibv_destroy_comp_channel(g->chan);
err_close:
	ibv_close_device(g->ctx);
err_free:
	free(g);
	return err;
}

/* Free every object in dependency order (QPs, SRQs, AHs, MWs, CQs, MRs, PDs), then the
 * context. */
void vrdma_guest_close(struct vrdma_guest *g)
{
	static const enum vrdma_obj_type order[] = {
		VRDMA_OBJ_QP, VRDMA_OBJ_SRQ, VRDMA_OBJ_AH, VRDMA_OBJ_MW, VRDMA_OBJ_CQ,
		VRDMA_OBJ_MR, VRDMA_OBJ_PD,
	};

	if (!g)
		return;
	pthread_mutex_lock(&g->lock);
	g->closing = true;	/* the guest's regions go with it: no puts */
	for (size_t k = 0; k < sizeof(order) / sizeof(order[0]); k++) {
		for (uint32_t i = 1; i < g->nobjs; i++) {
			struct vrdma_obj *o = &g->objs[i];

			if (o->type != order[k])
				continue;
			switch (o->type) {
			case VRDMA_OBJ_QP: vrdma_qp_free(g, o->p); break;
			case VRDMA_OBJ_SRQ: vrdma_srq_free(g, o->p); break;
			case VRDMA_OBJ_AH: vrdma_ah_free(o->p); break;
			case VRDMA_OBJ_MW: vrdma_mw_free(o->p); break;
			case VRDMA_OBJ_CQ: vrdma_cq_free(g, o->p); break;
			case VRDMA_OBJ_MR: vrdma_mr_free(g, o->p); break;
			case VRDMA_OBJ_PD:
				ibv_dealloc_pd(((struct vrdma_pd *)o->p)->pd);
				free(o->p);
				break;
			default: break;
			}
			o->type = VRDMA_OBJ_FREE;
			o->p = NULL;
		}
	}
	pthread_mutex_unlock(&g->lock);
	/* Objects freed here kept their count (MRs gave back their bytes). */
	vrdma_charge_add(g->charge, -(int32_t)g->live, 0, NULL, NULL);
	vrdma_charge_put(g->charge);
	if (g->poison_mr)
		ibv_dereg_mr(g->poison_mr);
	if (g->poison_pd)
		ibv_dealloc_pd(g->poison_pd);
	ibv_destroy_comp_channel(g->chan);
	ibv_close_device(g->ctx);
	pthread_mutex_destroy(&g->lock);
	free(g->objs);
	free(g->qpn);
	free(g);
}

/* The guest has a QP whose real number is qpn (the CM checks the QP a guest names). */
bool vrdma_guest_owns_qpn(struct vrdma_guest *g, uint32_t qpn)
{
	bool found = false;

	pthread_mutex_lock(&g->lock);
	for (uint32_t i = 1; i < g->nobjs && !found; i++)
		found = g->objs[i].type == VRDMA_OBJ_QP &&
			((struct vrdma_qp *)g->objs[i].p)->qp->qp_num == qpn;
	pthread_mutex_unlock(&g->lock);
	return found;
}
