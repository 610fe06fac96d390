/* SPDX-License-Identifier: MIT */
/* rdma_cm for the guests of a vrdma device (class_vrdma_cm.c, docs/rdma-cm.md). */
#ifndef VBD_CLASS_VRDMA_CM_H
#define VBD_CLASS_VRDMA_CM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <infiniband/verbs.h>

/* What a device's guests may use as a local address (per device, set at dev add). */
struct vbd_cm_policy {
	char ibdev[64];			/* the backing device */
	uint8_t port;
	bool have_addr;
	struct sockaddr_storage addr;	/* the address of the bus's GID index; port 0 */
};

struct vbd_cm;
struct vbd_guest;
struct vrdma_guest;

int vbd_cm_policy_init(struct vbd_cm_policy *pol, struct ibv_device *dev, uint8_t port,
		       uint32_t gid_index);
/* A guest instance's CM (vg: the relay's guest, NULL on the kernel backend). 0 or -errno. */
int vbd_cm_open(struct vbd_cm **out, struct vbd_guest *g, const struct vbd_cm_policy *pol,
		struct vrdma_guest *vg);
void vbd_cm_close(struct vbd_cm *cm);
bool vbd_cm_is_fn(uint32_t fn);
int vbd_cm_call(struct vbd_cm *cm, uint32_t fn, const void *in, size_t inlen, void *out,
		size_t outmax, size_t *outlen);

#endif
