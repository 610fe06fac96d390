/* SPDX-License-Identifier: MIT */
/*
 * The host side of one VM's ivshmem-doorbell device: vbusd is the ivshmem server
 * (QEMU docs/specs/ivshmem-spec.rst, "The ivshmem Client-Server Protocol"), one per VM.
 *
 * There is no listening socket: vbus_ivs_init makes a socket pair and QEMU gets one end as
 * its chardev (`-chardev socket,id=..,fd=N`), so no other process can become a peer. The
 * VM is peer VBUS_IVS_VM_PEER and vbusd is peer VBUS_IVS_HOST_PEER, with `vectors` eventfds
 * in each direction:
 *   host_efd[v]  the VM rings it (Doorbell register = host_peer << 16 | v), vbusd reads it
 *   vm_efd[v]    vbusd writes it (vbus_ivs_interrupt), QEMU raises the VM's MSI-X vector v
 * Functions return 0 or -errno.
 */
#ifndef VBUS_IVSHMEM_SERVER_H
#define VBUS_IVSHMEM_SERVER_H

#include <stdint.h>
#include <vbus/vm.h>

#define VBUS_IVS_HOST_PEER	0
#define VBUS_IVS_VM_PEER	1

struct vbus_ivs {
	int sock;			/* our end; -1 once closed */
	int qemu_sock;			/* QEMU's end, until vbus_ivs_qemu_started */
	uint32_t vectors;
	int host_efd[VBUS_VM_MAX_VECTORS];
	int vm_efd[VBUS_VM_MAX_VECTORS];
};

/* Make the socket pair and the eventfds, and queue the whole setup sequence on our end
 * (version, the VM's ID, BAR2's descriptor shm_fd, the host's doorbells, the VM's
 * interrupts): QEMU reads it when it starts. shm_fd stays the caller's. */
int vbus_ivs_init(struct vbus_ivs *s, int shm_fd, uint32_t vectors);
/* QEMU has its end (it was passed at exec): close ours of it. */
void vbus_ivs_qemu_started(struct vbus_ivs *s);
/* Doorbells the VM rang on vector v since the last call (0 if none): read host_efd[v]. */
int vbus_ivs_doorbells(struct vbus_ivs *s, uint32_t v, uint64_t *n);
/* Interrupt the VM on vector v. */
int vbus_ivs_interrupt(struct vbus_ivs *s, uint32_t v);
/* Close everything; QEMU sees its chardev hang up. */
void vbus_ivs_fini(struct vbus_ivs *s);

#endif /* VBUS_IVSHMEM_SERVER_H */
