/* SPDX-License-Identifier: MIT */
/*
 * VM guests (docs/vm.md): vbusd launches QEMU with the VM's RAM on a memfd it keeps mapped,
 * and serves the VM's connector to the bus. One thread per VM (vm.c) watches QEMU and the
 * connector's doorbells. Functions return 0 or -errno.
 *
 * Locking: vbd_vms.lock guards the list and every VM's state and counters; it nests inside
 * vbd.lock (vbd_vm_start holds both to link a VM, so that its bus cannot go). The VM's thread
 * is the only one to reap QEMU; `vm del` stops the thread and joins it.
 */
#ifndef VBUSD_VM_H
#define VBUSD_VM_H

#include <poll.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>
#include <vbus/proto.h>
#include <vbus/vm.h>
#include "ivshmem_server.h"
#include "vm_ram.h"

struct vbd_vm;
struct vbus_rx;

/* A command line under construction: the words point into buf. */
struct vbd_argv {
	char *v[64];
	int n;
	size_t used;
	char buf[4096];
};
/* Append one word (printf format): 0 or -E2BIG. */
int vbd_argv_add(struct vbd_argv *a, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* How a VM reaches its bus. ivshmem-doorbell today (vm_ivshmem.c); vhost-user or
 * vfio-user would be other tables. */
struct vbd_vm_connector {
	const char *name;
	/* Make the host side before QEMU exists. */
	int (*init)(struct vbd_vm *vm, char *err, size_t errn);
	/* Append QEMU's arguments for the device; *fd is the descriptor QEMU must inherit
	 * (as number qemu_fd in its table). */
	int (*qemu_args)(struct vbd_vm *vm, int qemu_fd, struct vbd_argv *a, int *fd);
	/* QEMU has started (it inherited *fd). */
	void (*started)(struct vbd_vm *vm);
	/* The descriptor that becomes readable when the VM rings doorbell i (i < vectors). */
	int (*doorbell_fd)(struct vbd_vm *vm, uint32_t i);
	/* Doorbell i became readable: how many rings since the last call. */
	uint64_t (*doorbell)(struct vbd_vm *vm, uint32_t i);
	/* Interrupt the VM on vector v. */
	int (*interrupt)(struct vbd_vm *vm, uint32_t v);
	void (*fini)(struct vbd_vm *vm);
};
extern const struct vbd_vm_connector vbd_vm_ivshmem;

/*
 * The message channel in BAR2 (vm_chan.c, docs/vm.md "The message channel"): where vbusd
 * puts it. The VM is told these in the BAR2 header; vbusd uses its own constants, never
 * what it could read back from BAR2.
 */
#define VBD_VM_BAR2_SIZE	(256u << 10)	/* a power of two: QEMU maps it as a PCI BAR */
#define VBD_VM_CHAN_OFF		4096u
#define VBD_VM_AREA_SIZE	((VBUS_VM_MSG_MAX + 4095u) & ~4095u)
#define VBD_VM_REQ_OFF		8192u
#define VBD_VM_RESP_OFF		(VBD_VM_REQ_OFF + VBD_VM_AREA_SIZE)
#define VBD_VM_EV_OFF		(VBD_VM_RESP_OFF + VBD_VM_AREA_SIZE)
#define VBD_VM_EV_ENTRIES	64u
#define VBD_VM_BEAT_MS		250u	/* vm_beat.c: the heartbeat's period */
_Static_assert(VBD_VM_EV_OFF + VBUS_VM_EVRING_SIZE(VBD_VM_EV_ENTRIES) <= VBD_VM_BAR2_SIZE,
	       "BAR2 too small");

/* One connection of the channel (VBUS_VM_F_CONNS: the VM names it in req_conn). */
struct vbd_vm_slot {
	int sock;			/* our end of the slot's guest connection, or -1 */
	int done;			/* with sock: a pipe's read end, whose write end the
					 * connection closes once it has freed all it held */
	uint32_t conn_seq;		/* with sock: req_seq of the connection's first message */
};

/* vbusd's side of a VM's message channel. Only the VM's thread touches it, but for the
 * counters, which vbd_vms.lock guards (`vm show`). */
struct vbd_vm_chan {
	struct vbd_vm_slot slot[VBUS_VM_MAX_CONNS];	/* the first vm->conns are used */
	uint32_t last_seq;		/* req_seq of the request answered last */
	uint32_t ev_seq;		/* the number of the event written last (the ring's head) */
	uint8_t *buf;			/* VBUS_VM_MSG_MAX: the request as copied out of BAR2 */
	struct vbus_rx *rx;		/* the bus's answer */
	uint64_t messages, refused;	/* answered by the bus; refused by the channel */
	uint64_t events;		/* written into the event ring */
	uint32_t conns_open;		/* slots with a connection: the array's count, kept
					 * under vbd_vms.lock for `vm show` */
};

enum vbd_vm_state { VBD_VM_STARTING, VBD_VM_RUNNING, VBD_VM_EXITED, VBD_VM_FAILED };

struct vbd_vm {
	struct vbd_vm *next;
	char name[VBUS_NAME_MAX];
	char bus[VBUS_NAME_MAX];
	uint64_t mem;			/* bytes */
	uint32_t cpus, vectors;
	uint32_t conns;			/* the channel's slots: 1..VBUS_VM_MAX_CONNS */
	struct vbd_vm_maps *maps;	/* vbusd's mappings it holds and may hold (vm_maps.c),
					 * shared with its connections */
	char accel[8];			/* "auto" until chosen, then "kvm" or "tcg" */
	char net[24];			/* "none"; "user": QEMU's user-mode network (a
					 * virtio-net NIC; the VM reaches the host as 10.0.2.2);
					 * "tap:IFNAME": a virtio-net NIC on the host's tap IFNAME */
	uint8_t mac[6];			/* its NIC's: 52:54:00 and three bytes of its name's hash */
	char *kernel, *initrd, *append;
	char console[160], log[160];	/* files: the serial console, QEMU's own output */
	const struct vbd_vm_connector *conn;
	struct vbus_ivs ivs;		/* the ivshmem connector's state */
	struct vbd_vm_sigs *sigs;	/* its vectors as signals (vm_sig.c), made by init */
	int bar2_fd;			/* the ivshmem device's BAR2 (struct vbus_vm_bar2) */
	void *bar2;			/* vbusd's mapping of it, VBD_VM_BAR2_SIZE bytes: the
					 * VM writes there at any time */
	struct vbd_vm_chan chan;
	int ram_fd;			/* the VM's RAM, a sealed memfd, and vbusd's mapping */
	void *ram;
	struct vbus_vm_ram_layout layout;	/* where guest-physical addresses are in it */
	pid_t pid;			/* QEMU, 0 before it starts */
	int pidfd;
	int stop_efd;			/* `vm del`: the thread kills QEMU and ends */
	pthread_t thread;
	enum vbd_vm_state state;
	int exit_status;		/* VBD_VM_EXITED: as from waitpid */
	char why[160];			/* FAILED: the reason; EXITED with an error: QEMU's
					 * last line of log */
	uint64_t doorbells[VBUS_VM_MAX_VECTORS], interrupts[VBUS_VM_MAX_VECTORS];
	uint32_t beat;			/* the heartbeat's count (vm_beat.c's thread only) */
};

#define VBD_VM_MAC_STR 18	/* "52:54:00:xx:xx:xx" and its NUL */
static inline void vbd_vm_mac_str(const struct vbd_vm *vm, char out[VBD_VM_MAC_STR])
{
	snprintf(out, VBD_VM_MAC_STR, "%02x:%02x:%02x:%02x:%02x:%02x", vm->mac[0], vm->mac[1],
		 vm->mac[2], vm->mac[3], vm->mac[4], vm->mac[5]);
}

struct vbd_vms {
	pthread_mutex_t lock;
	struct vbd_vm *list;
};
extern struct vbd_vms vbd_vms;

/* vm_ctl.c: `vm add|del|show|notify`, argv[0] == "vm". */
int vbd_vm_command(int argc, char **argv, bool json, char *out, size_t outn);
/* vm.c */
int vbd_vm_start(struct vbd_vm *vm, char *err, size_t errn);	/* takes vm */
int vbd_vm_del(const char *name, char *err, size_t errn);
int vbd_vm_notify(const char *name, uint32_t vector, char *err, size_t errn);
void vbd_vm_shutdown(void);
/* Whether a VM sits on bus (its name into vm); the caller holds vbd.lock, which also
 * keeps a VM from being added meanwhile (vbd_vm_start links under it). */
bool vbd_vm_on_bus(const char *bus, char vm[VBUS_NAME_MAX]);
/* vbusd's view of the VM's guest-physical range [gpa, gpa + len), or NULL when any of it
 * is outside the VM's RAM. The VM writes there at any time: copy before checking. */
void *vbd_vm_ram_at(struct vbd_vm *vm, uint64_t gpa, uint64_t len);
/* Copy len bytes of VM name's RAM at gpa into out (`vm peek`). Under vbd_vms.lock. */
int vbd_vm_peek(const char *name, uint64_t gpa, uint32_t len, void *out, char *err,
		size_t errn);
/* vm_chan.c: the message channel. init before the VM's thread starts, fini after it ended;
 * doorbell when the VM rang vector 0 (on the VM's thread; returns early when stop_efd is
 * readable). */
int vbd_vm_chan_init(struct vbd_vm *vm);
void vbd_vm_chan_doorbell(struct vbd_vm *vm);
/* The channel's control lines in vbusd's mapping of BAR2 (the VM writes there too). */
static inline struct vbus_vm_chan *vbd_vm_chan_ctl(struct vbd_vm *vm)
{
	return (struct vbus_vm_chan *)((uint8_t *)vm->bar2 + VBD_VM_CHAN_OFF);
}
/* One pollfd (POLLIN) per slot with a connection into p (VBUS_VM_MAX_CONNS at most), its
 * slot into slots[]: how many. */
uint32_t vbd_vm_chan_fds(const struct vbd_vm *vm, struct pollfd *p, uint32_t *slots);
/* Slot's socket was readable: the bus's events into the ring, or its end. */
void vbd_vm_chan_events(struct vbd_vm *vm, uint32_t slot);
/* vm_beat.c */
int vbd_vm_beat_start(void);	/* under vbd_vms.lock */
void vbd_vm_beat_stop(void);
void vbd_vm_chan_fini(struct vbd_vm *vm);
/* vm_qemu.c */
int vbd_vm_spawn(struct vbd_vm *vm, char *err, size_t errn);
int vbd_vm_pick_accel(struct vbd_vm *vm);
extern const char *vbd_kvm_probe_file;	/* --kvm-probe: the probe's answer per host boot */
/* SIGTERM, then SIGKILL after grace_ms; reaps, closes pidfd: the wait status. */
int vbd_vm_kill(pid_t pid, int pidfd, int grace_ms);

#endif /* VBUSD_VM_H */
