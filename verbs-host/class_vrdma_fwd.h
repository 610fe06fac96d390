/* SPDX-License-Identifier: MIT */
/*
 * Passthrough over a relay-backend parent (class_vrdma_fwd.c, docs/nesting.md): a guest of
 * a middle vbusd gets a child connection of the middle's own attachment at the level below,
 * where that level's relay serves the guest's own rings and doorbells; the middle only
 * forwards the guest's control calls and events.
 */
#ifndef VBD_CLASS_VRDMA_FWD_H
#define VBD_CLASS_VRDMA_FWD_H

#include <stddef.h>
#include <stdint.h>
#include <vbus/proto.h>

struct ibv_context;
struct vbd_guest;
struct vbd_fwd;

/* The guest g's open (its handle) of a passthrough device whose attachment below is
 * nest_ctx: a child connection of it with req's limits and whitelist, and the device it
 * is a child of opened on it with `label` (its name as the level below gives it, else
 * devname). 0 or -errno. */
struct vbus_verbs_child_req;
int vbd_fwd_open(struct vbd_fwd **out, struct ibv_context *nest_ctx, const char *devname,
		 struct vbd_guest *g, uint32_t handle, const struct vbus_verbs_child_req *req,
		 const char *label);
void vbd_fwd_close(struct vbd_fwd *f);
/* The instance is going: end the connection below, so that a call waiting there returns. */
void vbd_fwd_cancel(struct vbd_fwd *f);
/* A vrdma call of the guest, its regions and signals named as the level below knows them. */
int vbd_fwd_call(struct vbd_fwd *f, uint32_t fn, const void *in, size_t inlen, void *out,
		 size_t outmax, size_t *outlen);
/* The class's release and child operations (verbs-host/vbusd.h). */
int vbd_fwd_release(struct vbd_fwd *f, int type, uint32_t id);
int vbd_fwd_child(struct vbd_fwd *f, const struct vbus_child_in *in, int *fd,
		  struct vbus_child_out *o);
/* `guest show` (a JSON object) and `res show` (JSON members or a text line). */
int vbd_fwd_show(struct vbd_fwd *f, char *buf, size_t n);
int vbd_fwd_res(struct vbd_fwd *f, bool json, char *buf, size_t n);

#endif
