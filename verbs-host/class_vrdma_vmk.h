/* SPDX-License-Identifier: MIT */
/*
 * The kernel backend for a VM's connection (class_vrdma_vmk.c, docs/vm.md "The kernel
 * backend for VM guests"): vbusd holds the module's foreign attachment for the VM's process
 * and makes its calls, rewritten from the relay's DEVCALL format the VM's library speaks.
 */
#ifndef VBD_CLASS_VRDMA_VMK_H
#define VBD_CLASS_VRDMA_VMK_H

#include <stddef.h>
#include <stdint.h>

struct vbd_guest;
struct vbd_vmk;

/* The VM connection g's open (its DEVOPEN handle) of a kernel-backend device, served
 * through afd, a VBK_ATTACH_F_FOREIGN attachment over g's RAM (the caller keeps afd and
 * closes it after vbd_vmk_close). Starts the thread that rings the module's doorbell and
 * forwards its events. 0 or -errno. */
int vbd_vmk_open(struct vbd_vmk **out, struct vbd_guest *g, uint32_t handle, int afd,
		 bool db_thread);
/* Stops the thread and lets go of the regions and signals the objects held. */
void vbd_vmk_close(struct vbd_vmk *k);
/* A vrdma call of the VM's process (relay format), made on the module. */
int vbd_vmk_call(struct vbd_vmk *k, uint32_t fn, const void *in, size_t inlen, void *out,
		 size_t outmax, size_t *outlen);
/* For `guest show`: our thread's doorbells and events forwarded; who drains on the doorbell. */
const char *vbd_vmk_counts(const struct vbd_vmk *k, uint64_t *doorbells, uint64_t *events);

#endif /* VBD_CLASS_VRDMA_VMK_H */
