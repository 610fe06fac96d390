/* SPDX-License-Identifier: MIT */
/* rdma_cm for the guests of a vrdma device (class_vrdma_cm.c, docs/rdma-cm.md). */
#ifndef VBD_CLASS_VRDMA_CM_H
#define VBD_CLASS_VRDMA_CM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <infiniband/verbs.h>

/* Where a device's guests get their one local address: the GID index of the bus. */
struct vbd_cm_policy {
	char ibdev[64];			/* the backing device */
	char ibdev_path[256];		/* its sysfs directory */
	uint8_t port;
	uint32_t gid_index;
};

struct vbd_cm;
struct vbd_guest;
struct vrdma_guest;

/* A guest instance's CM (vg: the relay's guest, NULL on the kernel backend). 0 or -errno. */
int vbd_cm_open(struct vbd_cm **out, struct vbd_guest *g, const struct vbd_cm_policy *pol,
		struct vrdma_guest *vg);
void vbd_cm_close(struct vbd_cm *cm);
bool vbd_cm_is_fn(uint32_t fn);
/* `vbusctl res show cm_id`: the instance's CM IDs (cm may be NULL: none). 0 or -ENOSPC. */
int vbd_cm_res(struct vbd_cm *cm, bool json, char *buf, size_t n);
int vbd_cm_call(struct vbd_cm *cm, uint32_t fn, const void *in, size_t inlen, void *out,
		size_t outmax, size_t *outlen);

#endif
