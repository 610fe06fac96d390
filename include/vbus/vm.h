/* SPDX-License-Identifier: (GPL-2.0 WITH Linux-syscall-note) OR MIT */
/*
 * VM guests over QEMU's ivshmem-doorbell device (docs/vm.md is the specification).
 *
 * Two parts, both shared by vbusd, the guest driver vbus_vmguest.ko and userspace in the VM:
 *
 *   BAR2 header  struct vbus_vm_bar2 at offset 0 of the ivshmem device's BAR2, a small
 *                memfd vbusd creates per VM. vbusd writes it before QEMU starts and never
 *                changes it; the guest driver reads it once at probe and checks it. It tells
 *                the guest which ivshmem peer ID is the host (the Doorbell register's upper
 *                16 bits) and the bus the VM sits on.
 *
 *   /dev/vbus-vmN  the guest driver's character device (one per ivshmem device), and its
 *                ioctls below. A process rings the host's doorbell for a vector and binds an
 *                eventfd to a vector to be told of the host's interrupts.
 *
 * Fixed-width little-endian fields, sizes multiples of 8, reserved fields zero. Only
 * <linux/types.h> and <linux/ioctl.h>.
 */
#ifndef VBUS_VM_H
#define VBUS_VM_H

#include <linux/types.h>
#include <linux/ioctl.h>

#define VBUS_VM_BAR2_MAGIC	0x314d56535542560aULL	/* "\nVBUSVM1" read as LE u64 */
#define VBUS_VM_VERSION		1
#define VBUS_VM_MAX_VECTORS	64			/* what vbusd offers at most */
#define VBUS_VM_NAME_MAX	32			/* = VBUS_NAME_MAX of proto.h */
#define VBUS_VM_DEV_NAME	"vbus-vm"		/* /dev/vbus-vm0, vbus-vm1, ... */

/* Written by vbusd, read by the guest driver (at probe, once). */
struct vbus_vm_bar2 {
	__le64 magic;			/* VBUS_VM_BAR2_MAGIC */
	__le32 version;			/* VBUS_VM_VERSION */
	__le32 header_size;		/* sizeof(struct vbus_vm_bar2) at this version, or more */
	__le32 host_peer;		/* the ivshmem peer ID vbusd serves doorbells on */
	__le32 vm_peer;			/* this VM's own ID (also the IVPosition register) */
	__le32 vectors;			/* interrupt vectors in each direction */
	__le32 reserved0;
	char bus[VBUS_VM_NAME_MAX];	/* the bus the VM sits on, NUL terminated */
};

/* VBUS_VM_IOC_INFO: what the driver read from the device and the BAR2 header. */
struct vbus_vm_info {
	__u32 version;			/* the header's */
	__u32 vm_peer;
	__u32 host_peer;
	__u32 vectors;			/* usable: min(header's, MSI-X vectors granted) */
	__u64 bar2_size;
	char bus[VBUS_VM_NAME_MAX];
};

/* VBUS_VM_IOC_RING: ring the host's doorbell for `vector` (< vectors). */
struct vbus_vm_ring {
	__u32 vector;
	__u32 reserved;			/* 0 */
};

/* VBUS_VM_IOC_IRQFD: deliver the host's interrupts on `vector` to eventfd `fd` (the
 * caller's descriptor), or stop when fd is -1. One binding per vector on the whole device:
 * -EBUSY when another open file holds it. Closing the file unbinds what it bound. */
struct vbus_vm_irqfd {
	__s32 fd;
	__u32 vector;
	__u32 flags;			/* 0 */
	__u32 reserved;			/* 0 */
};

/* VBUS_VM_IOC_COUNTS: in: vector; out: interrupts received and doorbells rung on it. */
struct vbus_vm_counts {
	__u32 vector;
	__u32 reserved;			/* 0 */
	__u64 interrupts;
	__u64 doorbells;
};

#define VBUS_VM_IOC_MAGIC	0xbc
#define VBUS_VM_IOC_INFO	_IOR(VBUS_VM_IOC_MAGIC, 0x01, struct vbus_vm_info)
#define VBUS_VM_IOC_RING	_IOW(VBUS_VM_IOC_MAGIC, 0x02, struct vbus_vm_ring)
#define VBUS_VM_IOC_IRQFD	_IOW(VBUS_VM_IOC_MAGIC, 0x03, struct vbus_vm_irqfd)
#define VBUS_VM_IOC_COUNTS	_IOWR(VBUS_VM_IOC_MAGIC, 0x04, struct vbus_vm_counts)

#define VBUS_VM_ASSERT_SIZE(t, n) _Static_assert(sizeof(struct t) == (n), #t " size")
VBUS_VM_ASSERT_SIZE(vbus_vm_bar2, 64);
VBUS_VM_ASSERT_SIZE(vbus_vm_info, 56);
VBUS_VM_ASSERT_SIZE(vbus_vm_ring, 8);
VBUS_VM_ASSERT_SIZE(vbus_vm_irqfd, 16);
VBUS_VM_ASSERT_SIZE(vbus_vm_counts, 24);
#undef VBUS_VM_ASSERT_SIZE

#endif /* VBUS_VM_H */
