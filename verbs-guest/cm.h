/* SPDX-License-Identifier: MIT */
/*
 * rdma_cm in guests (docs/rdma-cm.md): what cm.c (asynchronous IDs, events, QPs) and
 * cm_sync.c (synchronous IDs, rdma_create_ep, rdma_get_request, rdma_migrate_id) share.
 */
#ifndef VBG_CM_H
#define VBG_CM_H

#include <stdbool.h>
#include <stdint.h>
#include <rdma/rdma_cma.h>
#include <vbus/vrdma-cm.h>

struct vbg_cm_chan {
	struct rdma_event_channel ch;	/* first: ch.fd is an eventfd the host kicks */
	uint32_t handle;
	uint32_t sig;
};

struct vbg_cm_id {
	struct rdma_cm_id id;		/* first: what the program sees */
	uint32_t handle;
	uint8_t resp_res, init_depth;	/* for RTR and RTS, as librdmacm keeps them */
	bool own_cqs;			/* rdma_create_qp made the CQs (and their channels) */
	bool sync;			/* made without a channel: its own, calls complete */
	struct ibv_qp_init_attr *qp_init_attr;	/* rdma_create_ep passive: for requests */
	struct vbg_cm_id *next;
};

static inline struct vbg_cm_id *to_cid(struct rdma_cm_id *id)
{
	return (struct vbg_cm_id *)id;
}

/* One CM call; its answer must be exactly outlen bytes. 0 or -errno (errno set too). */
int vbg_cm_call(uint32_t fn, const void *in, size_t inlen, void *out, size_t outlen);
/* The CM version the host and we agreed on (0: no CM). */
uint32_t vbg_cm_version(void);
bool vbg_cm_is_ours(struct rdma_cm_id *id);
/* A synchronous ID's call has been made: wait for its event, as librdmacm's
 * ucma_complete (0 for an asynchronous ID). 0 or -1 with errno. */
int vbg_cm_complete(struct rdma_cm_id *id);
/* A connection request on a synchronous listener: the new ID gets its own channel.
 * 0 or -errno. */
int vbg_cm_sync_request(struct vbg_cm_id *c);

#endif
