/* SPDX-License-Identifier: (GPL-2.0 WITH Linux-syscall-note) OR MIT */
/*
 * The kernel backend of the vrdma device: the descriptors of the host module vbus_vrdma
 * (kernel/) and their ioctls. The specification is docs/kernel.md.
 *
 * Two kinds of descriptor:
 *   admin   open("/dev/vbus-vrdma") by vbusd (root only). VBK_IOC_ATTACH makes one
 *           attachment per guest and returns its descriptor; VBK_IOC_REVOKE ends one
 *           whose guest still holds its descriptor. Closing the admin descriptor
 *           (vbusd's death) revokes every attachment made through it: their objects are
 *           destroyed, their calls get -EIO, their guests get IBV_EVENT_DEVICE_FATAL.
 *   guest   an attachment, handed to the guest by the bus (VBUS_OP_DEVFD, docs/abi.md),
 *           or, made with VBK_ATTACH_F_FOREIGN, kept by vbusd to serve a VM's process from
 *           its own mappings of the VM's RAM (below).
 *           Control verbs are VBK_IOC_CALL with the DEVCALL payloads of <vbus/vrdma.h>;
 *           doorbells and busy polls are VBK_IOC_DOORBELL and VBK_IOC_POLL_CQ; async
 *           events are read() as struct vbk_event records (poll() for POLLIN).
 *           VBK_IOC_CHILD makes a child attachment of it (a nested vbusd hands it to its
 *           own guest, docs/nesting.md); VBK_IOC_REVOKE, VBK_IOC_STATS, VBK_IOC_RES and
 *           VBK_IOC_TREE then act on the children made through it, as on the admin
 *           descriptor.
 *
 * Differences of the DEVCALL payloads on this backend (everything else is as in vrdma.h):
 *   - a queue's `shm` is 0 and its `offset` is the guest's own virtual address of the ring
 *     (struct vrdma_ring then the entries); the module pins those pages;
 *   - REG_MR has npieces 0 and no pieces: [iova, iova + length) of the caller's own
 *     address space is pinned and registered in the call (ib_reg_user_mr, iova = address);
 *     or npieces 1 and one piece with shm 0, `offset` the caller's address of the buffer
 *     and `length` the MR's: pinned there, registered at iova (the same offset in the
 *     page; a nested vbusd's window, docs/nesting.md);
 *   - CREATE_CQ's `channel` is an eventfd descriptor of the caller plus one (0: none): the
 *     module signals it when the armed CQ gets a completion;
 *   - the module keeps VRDMA_RING_NEED_WAKEUP set on every queue the guest produces into:
 *     each post rings the doorbell, which drains the queue in the caller's own system call;
 *   - on a foreign attachment (VBK_ATTACH_F_FOREIGN) every such address is the caller's
 *     (vbusd's) address inside its MAP_SHARED mapping of the VM's RAM, and ARM_CQ only
 *     asks the module to look at the CQ again (its real CQ is always armed).
 *
 * Fixed-width fields, sizes multiples of 8, reserved fields zero, as in vrdma.h. This
 * header is shared by the module and userspace: it uses only <linux/types.h> and
 * <linux/ioctl.h>.
 */
#ifndef VBUS_VRDMA_KERNEL_H
#define VBUS_VRDMA_KERNEL_H

#include <linux/types.h>
#include <linux/ioctl.h>

#define VBK_DEV_NAME		"vbus-vrdma"	/* /dev/vbus-vrdma, the admin node */
#define VBK_IBDEV_NAME_MAX	64		/* IB_DEVICE_NAME_MAX */

/* ---- admin descriptor ---- */

/* VBK_IOC_ATTACH: a new attachment for one guest on the real device `ibdev`, port `port`,
 * under these limits. Returns the new descriptor (O_CLOEXEC) or -errno. The struct may grow
 * at its end: the module takes the ioctl of any size from VBK_ATTACH_SIZE_V1 up (the size
 * is in the command), reads what both know and refuses (E2BIG) a longer one whose extra
 * bytes are not zero; a field the caller's size leaves out has its default. */
struct vbk_attach {
	char ibdev[VBK_IBDEV_NAME_MAX];	/* the backing device, NUL terminated */
	__u8 port;
	__u8 reserved0[3];
	__u32 gid_index;		/* the only source GID index the guest may use */
	__u32 max_objects;		/* handle quota */
	__u32 guest_id;			/* vbusd's id of the guest, for VBK_IOC_STATS */
	__u64 max_pinned_bytes;		/* registered-memory quota (and RLIMIT_MEMLOCK) */
	__u64 tag;			/* vbusd's name for this attachment (VBK_IOC_REVOKE) */
	/* since VBK_ATTACH_SIZE_V2: the whitelist (include/vbus/vrdma.h, VRDMA_WL_*), within
	 * the module's own (EINVAL); left out: all of the module's */
	__u32 qp_types;			/* VRDMA_QPT_BIT(IB_QPT_*) the guest may create */
	__u32 access;			/* IB_ACCESS_* its MRs and QPs may carry */
	/* since VBK_ATTACH_SIZE_V3 (left out: 0, a process guest's attachment) */
	__u32 flags;			/* VBK_ATTACH_F_*; an unknown bit: EINVAL */
	__s32 ram_fd;			/* FOREIGN: the caller's descriptor of the VM's RAM (a
					 * memfd); ignored without the flag */
};
#define VBK_ATTACH_SIZE_V1	96	/* up to tag */
#define VBK_ATTACH_SIZE_V2	104	/* up to access */
#define VBK_ATTACH_SIZE_V3	112	/* up to ram_fd */

/*
 * VBK_ATTACH_F_FOREIGN: an attachment that the caller (vbusd) keeps and uses itself, for a
 * guest whose memory is not the caller's own: a VM, whose RAM the caller maps MAP_SHARED
 * from the memfd `ram_fd` (docs/kernel.md, "Foreign attachments"). The module takes a
 * reference to that file and to the caller's address space at attach, and then:
 *   - every ioctl on the descriptor from another address space is EPERM (a forked child or
 *     a process it was passed to), and VBK_IOC_CHILD is EPERM;
 *   - every ring and MR address must lie wholly in MAP_SHARED mappings of that file in the
 *     caller's address space (EFAULT otherwise);
 *   - a privileged Q_Key is EPERM whatever the caller's capabilities;
 *   - VBK_IOC_DOORBELL(VBK_DOORBELL_ALL) drains every QP and SRQ;
 *   - completions are pushed: the module moves them into the guest's CQ ring as they come
 *     (no VBK_IOC_POLL_CQ needed, though it still works) and signals the CQ's channel when
 *     the guest has set ring->armed (any value: solicited-only is taken as any).
 * Refused: ram_fd not open (EBADF) or not a memfd or tmpfs file (EINVAL).
 */
#define VBK_ATTACH_F_FOREIGN	(1u << 0)

/* VBK_IOC_STATS: in: guest_id; out: the counters of that attachment (-ENOENT: none).
 * The struct may grow at its end: the module takes the ioctl with any size from
 * VBK_STATS_SIZE_V1 up (the size is in the command), fills what both know and zeroes the
 * rest, as the kernel's copy_struct_to_user does.
 */
struct vbk_stats {
	__u32 guest_id;
	__u32 objects;			/* live handles */
	__u64 pinned_bytes;
	__u64 wqes;			/* WQEs posted to real queues */
	__u64 cqes;			/* completions moved to guest rings */
	__u64 doorbells;		/* VBK_IOC_DOORBELL calls */
	__u64 polls;			/* VBK_IOC_POLL_CQ calls */
	__u64 events;			/* async events queued */
	__u64 errors;			/* WQEs refused, broken rings */
	/* since VBK_STATS_SIZE_V2: charges refused by a quota, this attachment's own or an
	 * ancestor's (docs/nesting.md) */
	__u64 quota_objects;		/* max-objects: EDQUOT */
	__u64 quota_pinned;		/* max-pinned: ENOMEM */
	/* since VBK_STATS_SIZE_V3: a foreign attachment's doorbell eventfd
	 * (VBK_IOC_DOORBELL_FD): the drains its writes queued, and of those the ones that ran
	 * on a worker instead of in the writer's context */
	__u64 db_wakes;
	__u64 db_worker;
	/* since VBK_STATS_SIZE_V4: completions lost to a CQ overrun (the guest's CQ full) */
	__u64 cqes_lost;
};
#define VBK_STATS_SIZE_V1	64	/* up to errors */
#define VBK_STATS_SIZE_V2	80	/* up to quota_pinned */
#define VBK_STATS_SIZE_V3	96	/* up to db_worker */
#define VBK_STATS_SIZE_V4	104	/* up to cqes_lost */

/* ---- guest descriptor ---- */

/* VBK_IOC_CHILD: a child attachment of this one (docs/nesting.md, "Passthrough"), on the
 * same device and port. Returns its descriptor (O_CLOEXEC) or -errno:
 *   EINVAL  a reserved field or an unknown flag not zero, max_objects 0
 *   EPERM   wider than this attachment: max_objects or max_pinned_bytes above its own
 *           limit, gid_index not its one GID index, or (VBK_CHILD_F_WHITELIST) a QP type
 *           or access flag its whitelist lacks
 *   EDQUOT  within its limits but above what is left of them (its own and its other
 *           children's objects and pinned bytes are charged to it)
 *   ELOOP   this attachment is at depth VBK_MAX_DEPTH already
 *   EMLINK  it has VBK_MAX_CHILDREN children already
 *   EIO     it is revoked
 * The child's objects and pinned bytes are charged to it and to every ancestor, each
 * against its own limits. Revoking or closing an attachment revokes its children first;
 * it lives on (without objects) while they exist. */
struct vbk_child {
	__u32 max_objects;		/* handle quota */
	__u32 gid_index;		/* must be the parent's */
	__u64 max_pinned_bytes;		/* registered-memory quota */
	__u32 guest_id;			/* the caller's id of its guest (VBK_IOC_STATS, _RES) */
	__u32 flags;			/* VBK_CHILD_F_* */
	__u64 tag;			/* the caller's name for it (VBK_IOC_REVOKE) */
	/* VBK_CHILD_F_WHITELIST: the child's whitelist, within this attachment's; without
	 * the flag both 0 and the child has this attachment's */
	__u32 qp_types;			/* VRDMA_QPT_BIT(IB_QPT_*) */
	__u32 access;			/* IB_ACCESS_* */
	__u64 reserved;
};
#define VBK_CHILD_F_WHITELIST	1u

#define VBK_MAX_DEPTH		7	/* attachments below a root one (VBK_IOC_ATTACH's) */
#define VBK_MAX_CHILDREN	64	/* direct children of one attachment */

/* VBK_IOC_CALL: a control verb. Returns the bytes written to `out` (>= 0) or -errno.
 * Inputs longer than the module knows are accepted when the extra bytes are zero. */
struct vbk_call {
	__u32 fn;			/* enum vrdma_fn */
	__u32 in_len;
	__u32 out_len;			/* room at `out` */
	__u32 reserved;
	__u64 in;			/* user pointers */
	__u64 out;
};

/* read(): async events, whole records only. `type` is the enum ibv_event_type. */
struct vbk_event {
	__u32 type;
	__u32 handle;			/* the QP, CQ or SRQ; 0: port or device */
	__u32 port;
	__u32 reserved;
};

/* VBK_IOC_RES: in: guest_id, room for `count` records at `objs`; out: up to `count` of that
 * attachment's objects, and `count` set to how many it has (more than fit: ask again with
 * more room). -ENOENT: no such attachment. */
struct vbk_res {
	__u32 guest_id;
	__u32 count;
	__u64 objs;			/* user pointer to struct vbk_res_obj[count] */
};

/* One object, for `vbusctl res show`. `type` numbers as the vrdma ABI's objects: 1 PD,
 * 2 MR, 3 CQ, 4 QP, 5 AH, 6 SRQ (7 MW, relay only). What `real` and `v` hold depends on it:
 *   PD   real: the device's PD handle (0 on the kernel backend)
 *   MR   real: lkey, v[0]: rkey, iova, length, pd
 *   CQ   real: the device's cqe, v[0]: ring entries, flag CHANNEL
 *   QP   real: qp_num, v[0..3]: send posted, completed, receive posted, completed,
 *        qp_type (IBV_QPT_*), state (IBV_QPS_*, VBK_RES_STATE_UNKNOWN: not kept), pd
 *   AH   pd
 *   SRQ  real: max_wr, v[0..1]: posted, completed, pd
 *   MW   real: rkey, v[0]: MW type, pd
 */
struct vbk_res_obj {
	__u32 handle;
	__u16 type;
	__u16 flags;			/* VBK_RES_* */
	__u32 real;
	__u32 pd;			/* the PD's handle, where the object has one */
	__u32 users;			/* objects that depend on this one */
	__u8 qp_type;
	__u8 state;
	__u16 reserved;
	__u32 v[4];
	__u64 iova;
	__u64 length;
};

/* VBK_IOC_TREE: in: guest_id (an attachment made through this descriptor), room for `count`
 * records at `nodes`; out: up to `count` records of its descendants, each parent before its
 * children (depth first: a record of depth d + 1 after one of depth d is a child of it), and
 * `count` set to how many there are (more than fit: ask again with more room). For
 * `vbusctl guest show` at depth 0 (docs/nesting.md, "What each level sees"). -ENOENT: no
 * such attachment. */
struct vbk_tree {
	__u32 guest_id;
	__u32 count;
	__u64 nodes;			/* user pointer to struct vbk_tree_node[count] */
};

struct vbk_tree_node {
	__u32 depth;			/* 1: a child of the attachment asked about */
	__u32 guest_id;			/* what its maker named it (vbk_child.guest_id): claimed */
	__s32 pid;			/* the process of its first VBK_IOC_CALL, in the asker's pid
					 * namespace (0: no call yet, or not visible there) */
	__u32 objects;			/* its own live handles */
	__u64 pinned_bytes;		/* its own */
	__u64 tag;			/* its maker's tag */
	__u32 flags;			/* VBK_TREE_* */
	__u32 reserved;
};

#define VBK_TREE_REVOKED	0x1

#define VBK_RES_BROKEN		0x1	/* a queue the guest broke */
#define VBK_RES_CHANNEL		0x2	/* a CQ with a completion channel */
#define VBK_RES_STATE_UNKNOWN	0xff

#define VBK_IOC_MAGIC		0xbb
#define VBK_IOC_ATTACH		_IOW(VBK_IOC_MAGIC, 0x01, struct vbk_attach)
#define VBK_IOC_STATS		_IOWR(VBK_IOC_MAGIC, 0x02, struct vbk_stats)
#define VBK_IOC_RES		_IOWR(VBK_IOC_MAGIC, 0x04, struct vbk_res)
/* VBK_IOC_REVOKE: in: a tag (u64). Revoke the attachments made through this descriptor with
 * that tag (vbusd: the guest closed the device on the bus, left the bus, or `dev del`), as
 * the admin descriptor's close revokes all of them: their children first (the deepest
 * first), then, once a control call in flight has finished and no doorbell or poll is
 * inside, their objects are destroyed and one IBV_EVENT_DEVICE_FATAL is queued; every later
 * call on their descriptors is -EIO. Returns when done:
 *   0       revoked (or already revoked, its descriptor still open)
 *   ENOENT  no attachment made here has the tag (never made, or its last close is done)
 *   EFAULT  the tag cannot be read
 * docs/kernel.md, "Revoking one attachment". */
#define VBK_IOC_REVOKE		_IOW(VBK_IOC_MAGIC, 0x03, __u64)
#define VBK_IOC_TREE		_IOWR(VBK_IOC_MAGIC, 0x05, struct vbk_tree)
#define VBK_IOC_CALL		_IOW(VBK_IOC_MAGIC, 0x10, struct vbk_call)
/* arg: a QP handle (its send and receive queues) or an SRQ handle: post what the guest
 * has published, in the caller's context. Returns the WQEs posted or -errno (EINVAL: not a
 * QP or SRQ). On a foreign attachment, VBK_DOORBELL_ALL drains every QP's queues and every
 * SRQ (a VM rings one doorbell for its context); elsewhere it is EINVAL, as handle 0 is. */
#define VBK_IOC_DOORBELL	_IO(VBK_IOC_MAGIC, 0x11)
#define VBK_DOORBELL_ALL	0
/* arg: a CQ handle: move what the real CQ holds into the guest's ring (as much as fits).
 * Returns the completions moved or -errno. */
#define VBK_IOC_POLL_CQ		_IO(VBK_IOC_MAGIC, 0x12)
#define VBK_IOC_CHILD		_IOW(VBK_IOC_MAGIC, 0x13, struct vbk_child)
/* arg: an eventfd, or -1. A foreign attachment only (EINVAL otherwise): each write to the
 * eventfd rings VBK_DOORBELL_ALL, run by the module in the writer's context (its return to
 * user mode) or, when the writer is not a user task, on a worker; no caller thread is
 * involved (docs/kernel.md, "The VM's doorbell"). A new eventfd replaces the old; -1 stops.
 * EBADF or EINVAL: not an eventfd; EIO: revoked. An older module: ENOTTY. */
#define VBK_IOC_DOORBELL_FD	_IO(VBK_IOC_MAGIC, 0x14)

#define VBK_ASSERT_SIZE(t, n) _Static_assert(sizeof(struct t) == (n), #t " size")
VBK_ASSERT_SIZE(vbk_attach, VBK_ATTACH_SIZE_V3);
VBK_ASSERT_SIZE(vbk_stats, VBK_STATS_SIZE_V4);
VBK_ASSERT_SIZE(vbk_call, 32);
VBK_ASSERT_SIZE(vbk_event, 16);
VBK_ASSERT_SIZE(vbk_child, 48);
VBK_ASSERT_SIZE(vbk_tree, 16);
VBK_ASSERT_SIZE(vbk_tree_node, 40);
#undef VBK_ASSERT_SIZE

#endif /* VBUS_VRDMA_KERNEL_H */
