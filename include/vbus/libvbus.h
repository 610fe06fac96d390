/* SPDX-License-Identifier: MIT */
/*
 * libvbus: the guest side of a vbus connection (docs/abi.md).
 *
 * All functions return 0 (or a count) on success and a negative errno on failure. A
 * connection whose daemon went away fails every call with -ENOTCONN and reports one
 * VBUS_EV_DISCONNECTED event. Calls on one connection may come from many threads: they
 * are serialized.
 */
#ifndef VBUS_LIBVBUS_H
#define VBUS_LIBVBUS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <vbus/proto.h>
#include <vbus/shm.h>

#ifdef __cplusplus
extern "C" {
#endif

struct vbus_conn;

/* The directory holding the buses' sockets: $VBUS_RUN_DIR, else /run/vbus. */
const char *vbus_run_dir(void);

/*
 * Attach to bus `bus` (NULL: "default", or in a VM the VM's bus). The transport:
 *   - $VBUS_VM_DEV set: that VM character device (/dev/vbus-vmN, docs/vm.md);
 *   - else the socket RUN_DIR/bus/BUS.sock (run_dir NULL: vbus_run_dir()), except that
 *     with neither run_dir nor $VBUS_RUN_DIR given, no such socket and a /dev/vbus-vm0,
 *     the first /dev/vbus-vmN of that bus: a process in a vbus VM.
 * Over a VM's device no descriptor crosses: DEVSHM, DEVSIG, DEVFD and the call channel
 * fail with -EOPNOTSUPP, and no event arrives; only one process of the VM at a time can
 * be connected (the driver's one channel: -EBUSY for the others).
 */
int vbus_connect(const char *run_dir, const char *bus, struct vbus_conn **out);
/* Whether vbus_connect(run_dir, bus) would go through a VM's device (for messages). */
bool vbus_connect_uses_vm(const char *run_dir, const char *bus);
void vbus_disconnect(struct vbus_conn *c);
/* The bus connected to, and whether over a VM's device (no descriptors cross). */
const char *vbus_conn_bus(const struct vbus_conn *c);
bool vbus_conn_is_vm(const struct vbus_conn *c);
/* What HELLO negotiated. */
const struct vbus_hello_out *vbus_hello_info(const struct vbus_conn *c);

/* The devices of the bus; returns how many were written to e (at most max). */
int vbus_devenum(struct vbus_conn *c, struct vbus_dev_entry *e, int max);
int vbus_devopen(struct vbus_conn *c, const char *name, const char *devclass, uint32_t *handle);
/* The same with a label (include/vbus/proto.h, struct vbus_devopen_label_in); NULL or "":
 * none. -EINVAL when it is longer than a label holds (vbusd checks its form). */
int vbus_devopen_label(struct vbus_conn *c, const char *name, const char *devclass,
		       const char *label, uint32_t *handle);
int vbus_devclose(struct vbus_conn *c, uint32_t handle);

/* Hand a sealed memfd of `size` bytes to the bus; *id names it in device payloads. */
int vbus_devshm(struct vbus_conn *c, int memfd, uint64_t size, uint32_t *id);
/* The same for a memfd this process has mapped whole at addr (page-aligned): in a VM, where
 * no descriptor crosses, the guest driver pins those pages and hands the bus their
 * guest-physical addresses (docs/vm.md, "Shared regions"); over a socket, the memfd goes. */
int vbus_devshm_at(struct vbus_conn *c, int memfd, void *addr, uint64_t size, uint32_t *id);
/* Revoke a region; in a VM the driver unpins its pages once the bus said yes. */
int vbus_shm_revoke(struct vbus_conn *c, uint32_t id);
/* Hand an eventfd to the bus, VBUS_SIG_TO_HOST (a doorbell) or VBUS_SIG_TO_GUEST. In a VM
 * the driver binds it to an interrupt vector the bus picks (-ENOSPC: none left): each
 * write rings that vector's doorbell, or its interrupts signal the eventfd. */
int vbus_devsig(struct vbus_conn *c, int efd, uint32_t direction, uint32_t *id);
int vbus_sig_revoke(struct vbus_conn *c, uint32_t id);
/* Have the bus kick the to-host signal `id` for us (SHMSIGNAL, docs/abi.md). */
int vbus_shmsignal(struct vbus_conn *c, uint32_t id);

/* A synchronous call into a device: the device's status (0 or -errno) comes back. */
int vbus_devcall(struct vbus_conn *c, uint32_t handle, uint32_t fn, const void *in,
		 size_t inlen, void *out, size_t outmax, size_t *outlen);

/* The same, with VBUS_CALL_SLOW in flags for a call the device does slowly (the caller
 * sleeps at once instead of spinning). */
int vbus_devcall_flags(struct vbus_conn *c, uint32_t handle, uint32_t fn, uint32_t flags,
		       const void *in, size_t inlen, void *out, size_t outmax, size_t *outlen);

/* The kernel descriptor of the open device `handle` (VBUS_OP_DEVFD, docs/abi.md): a device
 * whose model runs in a host kernel module (a vrdma device with backend=kernel) hands its
 * guest a descriptor on that module, once per handle. *fd is close-on-exec and the caller's
 * to close. -EOPNOTSUPP when the bus did not grant VBUS_F_DEVFD or the device has no kernel
 * descriptor (echo, a relay vrdma device); -EALREADY when this handle's was handed out. */
int vbus_devfd(struct vbus_conn *c, uint32_t handle, int *fd);

/* A child connection of the open device `handle` (VBUS_OP_CHILD, docs/abi.md): *fd, a
 * socket to bus out->bus (the device's level's) on which only device out->dev opens (""
 * from a bus without VBUS_F_CHILD_WL: the device's name there is the caller's to know),
 * with at most the limits of `in` (its 16 bytes, or 24 with VBUS_CHILD_F_WHITELIST in its
 * flags; the socket close-on-exec, the caller's). -EOPNOTSUPP when the bus did not grant
 * VBUS_F_CHILD (or VBUS_F_CHILD_WL, for a whitelist) or the device makes no children. */
int vbus_child(struct vbus_conn *c, uint32_t handle, const struct vbus_child_in *in, int *fd,
	       struct vbus_child_out *out);
/* A connection over socket fd (ours from now on, closed on failure), e.g. vbus_child's, to
 * bus `bus`: HELLO is sent on it. */
int vbus_connect_fd(int fd, const char *bus, struct vbus_conn **out);

/* Set up the call channel (docs/abi.md): from then on DEVCALLs whose input fits
 * VBUS_CALL_INLINE bytes go over shared memory, spinning up to $VBUS_SPIN_NS before
 * sleeping, instead of over the socket. entries: 1..64, a power of two. */
int vbus_callchan_open(struct vbus_conn *c, uint32_t entries);

/* Events: poll() vbus_event_fd() for POLLIN, then take them with vbus_next_event()
 * (1: one event written, 0: none pending). */
int vbus_event_fd(const struct vbus_conn *c);
int vbus_next_event(struct vbus_conn *c, struct vbus_event *ev);

/* A memfd of `size` bytes sealed as the bus wants it (CLOEXEC; grow, shrink, seal). */
int vbus_memfd_create(const char *name, uint64_t size, int *fd);

#ifdef __cplusplus
}
#endif
#endif /* VBUS_LIBVBUS_H */
