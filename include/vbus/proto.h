/* SPDX-License-Identifier: MIT */
/*
 * vbus connection protocol: what a guest and the bus (vbusd) say to each other over the
 * bus's socket. The specification is docs/abi.md; this header follows it field by field.
 *
 * Transport: an AF_UNIX SOCK_SEQPACKET connection per guest, one message per packet:
 * struct vbus_msg, then `len` bytes of payload, and up to VBUS_MAX_FDS descriptors
 * (SCM_RIGHTS). Fixed-width little-endian fields, no pointers, reserved fields zero,
 * sizes multiples of 8, a static assertion on every size.
 */
#ifndef VBUS_PROTO_H
#define VBUS_PROTO_H

#include <linux/types.h>

#define VBUS_PROTO_VERSION	1	/* what this header describes */
#define VBUS_PROTO_MIN_VERSION	1	/* the oldest version still spoken */
#define VBUS_MAX_PAYLOAD	65536	/* payload bytes of one message, at most */
#define VBUS_MAX_FDS		2
#define VBUS_NAME_MAX		32	/* bus, device and class names, NUL included */

/* Operations. A request from the guest gets exactly one response with the same op and
 * seq; VBUS_OP_EVENT comes from the bus unasked, with seq 0. */
enum vbus_op {
	VBUS_OP_HELLO		= 1,	/* must come first */
	VBUS_OP_DEVENUM		= 2,
	VBUS_OP_DEVOPEN		= 3,
	VBUS_OP_DEVCLOSE	= 4,
	VBUS_OP_DEVSHM		= 5,	/* fd: a sealed memfd */
	VBUS_OP_SHMREVOKE	= 6,
	VBUS_OP_DEVSIG		= 7,	/* fd: an eventfd */
	VBUS_OP_SIGREVOKE	= 8,
	VBUS_OP_DEVCALL		= 9,
	VBUS_OP_CALLCHAN	= 10,	/* DEVCALLs from now on also over shared memory */
	VBUS_OP_SHMSIGNAL	= 11,	/* kick a to-host signal through the socket */
	VBUS_OP_DEVFD		= 12,	/* the device's kernel descriptor (response: 1 fd) */
	VBUS_OP_CHILD		= 13,	/* a child connection of an open device (response: 1 fd) */
	VBUS_OP_EVENT		= 64,	/* bus -> guest */
};

struct vbus_msg {
	__le32 op;			/* enum vbus_op */
	__le32 len;			/* payload bytes after this header */
	__le64 seq;			/* chosen by the guest, echoed in the response */
	__le32 handle;			/* a device handle, where the op names one */
	__le32 arg;			/* DEVCALL: the function; SHMREVOKE/SIGREVOKE: the id */
	__le32 status;			/* responses: 0 or a negative errno (two's complement) */
	__le32 nfds;			/* descriptors attached */
};

/* Feature bits, negotiated in HELLO: the guest offers, the bus answers the subset. */
#define VBUS_F_EVENTS		(1ull << 0)	/* the bus may send VBUS_OP_EVENT */
#define VBUS_F_CALLCHAN		(1ull << 1)	/* VBUS_OP_CALLCHAN may be used */
#define VBUS_F_SHMSIGNAL	(1ull << 2)	/* VBUS_OP_SHMSIGNAL may be used */
/* VBUS_OP_DEVFD may be used: a device whose model runs in a host kernel module hands
 * the guest a descriptor on it (handle: the DEVOPEN handle; no payload either way; the
 * response carries one descriptor, or -EOPNOTSUPP when the device has none). */
#define VBUS_F_DEVFD		(1ull << 3)
/* VBUS_OP_CHILD may be used: a child function of an open device, as a new connection
 * (docs/abi.md, CHILD; docs/nesting.md, passthrough on the relay backend). */
#define VBUS_F_CHILD		(1ull << 4)
/* CHILD takes the child's whitelist (a 24-byte vbus_child_in with VBUS_CHILD_F_WHITELIST)
 * and answers a 64-byte vbus_child_out, the device's name in it; without it, 16 bytes in and
 * 32 out (the bus only, before the device's name). */
#define VBUS_F_CHILD_WL		(1ull << 5)
#define VBUS_F_ALL_V1		(VBUS_F_EVENTS | VBUS_F_CALLCHAN | VBUS_F_SHMSIGNAL | \
				 VBUS_F_DEVFD | VBUS_F_CHILD | VBUS_F_CHILD_WL)

/*
 * HELLO. Frozen for every version: the header above, this operation, the first 48 bytes
 * of vbus_hello_in and the first 40 of vbus_hello_out. A later version may append fields;
 * the bus accepts a longer hello_in, the guest a longer hello_out.
 * Before HELLO's answer the bus may instead send a refusal: op HELLO, seq 0, status
 * -EACCES, -EUSERS or -ESHUTDOWN, then it closes the connection.
 */
struct vbus_hello_in {
	__le32 version_min;		/* the guest speaks versions min..max */
	__le32 version_max;
	__le64 features;
	char bus[VBUS_NAME_MAX];	/* the bus the guest expects to be on */
};

/* Also the payload of a -EPROTONOSUPPORT answer: version 0, the bus's range filled. */
struct vbus_hello_out {
	__le32 version;			/* chosen: the highest both speak; 0 on refusal */
	__le32 guest_id;		/* this connection, as vbusctl shows it */
	__le64 features;		/* the granted subset */
	__le32 max_handles;		/* quotas of this guest on this bus */
	__le32 max_regions;		/* regions plus signals */
	__le64 max_shm_bytes;
	__le32 bus_version_min;		/* what the bus speaks */
	__le32 bus_version_max;
};

/* DEVENUM response: a vbus_devenum_out, then `count` entries. */
struct vbus_devenum_out {
	__le32 count;
	__le32 reserved;
};

struct vbus_dev_entry {
	char name[VBUS_NAME_MAX];
	char devclass[VBUS_NAME_MAX];
	char attrs[128];		/* "key=value key=value", NUL terminated */
};

struct vbus_devopen_in {
	char name[VBUS_NAME_MAX];
	char devclass[VBUS_NAME_MAX];	/* must match the device's class */
};

struct vbus_devopen_out {
	__le32 handle;			/* valid on this connection only */
	__le32 reserved;
};

/* DEVOPEN with a label: the payload is this struct instead (docs/abi.md, DEVOPEN). The label
 * says whom the caller opens the device for; a middle level of nesting names the guest of
 * its own that it serves with this handle as "ID:PID" (its guest id and pid, in decimal),
 * followed by that guest's own label after a '/' when the guest is itself a middle:
 * "3:1234/5:1240" is guest 5 (pid 1240) of the middle's guest 3 (pid 1234). At most
 * VBUS_LABEL_DEPTH such pairs, NUL-terminated, the rest of the array NUL. Any other form is
 * refused (EINVAL). vbusd only shows it (`guest show`, `res show`): no policy depends on
 * what a guest claims here. */
#define VBUS_LABEL_MAX		128
#define VBUS_LABEL_DEPTH	8
struct vbus_devopen_label_in {
	struct vbus_devopen_in open;
	char label[VBUS_LABEL_MAX];
};

/* DEVSHM: hand the bus a shared region (the memfd travels as the one descriptor). The
 * memfd must be sealed with at least F_SEAL_SHRINK and F_SEAL_SEAL, live on tmpfs, and
 * be exactly `size` bytes. The region is the connection's (header handle 0), usable by
 * any device it opened. Nothing here is per connection, so a middle level (nesting) can
 * forward the same memfd and the same payload to its own bus. */
struct vbus_devshm_in {
	__le64 size;
	__le32 flags;			/* 0, or VBUS_SHM_F_GPA */
	__le32 reserved;
};
/* DEVSHM flag: no descriptor; the payload goes on with one __le64 guest-physical address
 * per 4096-byte page of the region (size / 4096 of them). Only a VM's connection may send
 * it: vbusd maps those pages of the VM's RAM (docs/vm.md, "Shared regions"). */
#define VBUS_SHM_F_GPA		1u

/* DEVSIG: hand the bus an eventfd. Direction says who writes it. */
#define VBUS_SIG_TO_HOST	1	/* a doorbell the guest kicks */
#define VBUS_SIG_TO_GUEST	2	/* the bus kicks it (completion events) */

struct vbus_devsig_in {
	__le32 direction;
	__le32 flags;			/* 0, or VBUS_SIG_F_VECTOR */
};
/* DEVSIG flag: no descriptor; the bus gives the signal an interrupt vector of the VM's
 * own (not 0: the message channel's), and answers it in vbus_id_out.vector. TO_HOST: the
 * VM rings that vector's doorbell; TO_GUEST: the bus raises that vector's interrupt. Only
 * a VM's connection may send it (docs/vm.md, "Signals"). */
#define VBUS_SIG_F_VECTOR	1u

/* DEVSHM and DEVSIG responses: the id, per connection, that device payloads name. */
/* CHILD: handle = an open device; the answer carries one descriptor, a connection socket
 * to the bus named in vbus_child_out (HELLO still to be sent: the bus of the device's
 * level, which for a middle level's forwarded child is the bus below), on which only that
 * device can be opened, with
 * these limits, each no wider than the open device's own; what the child holds counts
 * against the open device too, and closing the handle (or the connection) ends the child
 * connection and every child made from it. */
struct vbus_child_in {
	__le32 max_objects;		/* device objects (handles), 1.. the parent's */
	__le32 flags;			/* VBUS_CHILD_F_* */
	__le64 max_pinned_bytes;	/* registered memory, 0.. the parent's */
	/* VBUS_CHILD_F_WHITELIST: these 8 bytes are sent (24 in all; without it 16): the
	 * child's whitelist (include/vbus/vrdma.h, VRDMA_WL_*), each bit one the parent has
	 * (else EPERM); without it the child has its parent's */
	__le32 qp_types;
	__le32 access;
};

#define VBUS_CHILD_F_WHITELIST	1u
#define VBUS_CHILD_IN_V1_SIZE	16	/* up to max_pinned_bytes */
#define VBUS_CHILD_OUT_V1_SIZE	32	/* the bus only */

struct vbus_child_out {
	char bus[VBUS_NAME_MAX];	/* the bus to name in the child connection's HELLO */
	char dev[VBUS_NAME_MAX];	/* the one device that opens on it (its name there) */
};

struct vbus_id_out {
	__le32 id;			/* never 0 */
	__le32 vector;			/* DEVSIG with VBUS_SIG_F_VECTOR: its vector; else 0 */
};

/* EVENT payload. */
enum vbus_event_type {
	VBUS_EV_DEV_REMOVED	= 1,	/* handle: the device is gone; calls get -ENODEV */
	VBUS_EV_SHUTDOWN	= 2,	/* the bus is going away; the connection will close */
	VBUS_EV_DEVICE		= 3,	/* a device's own event: code and data are its own */
	VBUS_EV_DISCONNECTED	= 4,	/* made by the guest library when the socket closes */
	VBUS_EV_DEV_ADDED	= 5,	/* data: the name of a device now on this bus */
};

struct vbus_event {
	__le32 type;			/* enum vbus_event_type */
	__le32 handle;
	__le32 code;
	__le32 reserved;
	__u8 data[32];
};

/* Handles and ids: the low bits index the connection's table, the rest is a generation. */
#define VBUS_ID_INDEX_BITS	14

#define VBUS_ASSERT_SIZE(t, n) _Static_assert(sizeof(struct t) == (n), #t " size")
#define VBUS_ASSERT_OFF(t, f, n) \
	_Static_assert(__builtin_offsetof(struct t, f) == (n), #t "." #f " offset")
VBUS_ASSERT_SIZE(vbus_msg, 32);
VBUS_ASSERT_SIZE(vbus_hello_in, 48);
VBUS_ASSERT_SIZE(vbus_hello_out, 40);
VBUS_ASSERT_SIZE(vbus_devenum_out, 8);
VBUS_ASSERT_SIZE(vbus_dev_entry, 192);
VBUS_ASSERT_SIZE(vbus_devopen_in, 64);
VBUS_ASSERT_SIZE(vbus_devopen_out, 8);
VBUS_ASSERT_SIZE(vbus_devopen_label_in, 192);
VBUS_ASSERT_SIZE(vbus_devshm_in, 16);
VBUS_ASSERT_SIZE(vbus_devsig_in, 8);
VBUS_ASSERT_SIZE(vbus_child_in, 24);
VBUS_ASSERT_SIZE(vbus_child_out, 64);
VBUS_ASSERT_SIZE(vbus_id_out, 8);
VBUS_ASSERT_SIZE(vbus_event, 48);
VBUS_ASSERT_OFF(vbus_msg, len, 4);
VBUS_ASSERT_OFF(vbus_msg, seq, 8);
VBUS_ASSERT_OFF(vbus_msg, handle, 16);
VBUS_ASSERT_OFF(vbus_msg, arg, 20);
VBUS_ASSERT_OFF(vbus_msg, status, 24);
VBUS_ASSERT_OFF(vbus_msg, nfds, 28);
VBUS_ASSERT_OFF(vbus_hello_in, version_max, 4);
VBUS_ASSERT_OFF(vbus_hello_in, features, 8);
VBUS_ASSERT_OFF(vbus_hello_in, bus, 16);
VBUS_ASSERT_OFF(vbus_hello_out, guest_id, 4);
VBUS_ASSERT_OFF(vbus_hello_out, features, 8);
VBUS_ASSERT_OFF(vbus_hello_out, max_handles, 16);
VBUS_ASSERT_OFF(vbus_hello_out, max_regions, 20);
VBUS_ASSERT_OFF(vbus_hello_out, max_shm_bytes, 24);
VBUS_ASSERT_OFF(vbus_hello_out, bus_version_min, 32);
VBUS_ASSERT_OFF(vbus_hello_out, bus_version_max, 36);
VBUS_ASSERT_OFF(vbus_dev_entry, devclass, 32);
VBUS_ASSERT_OFF(vbus_dev_entry, attrs, 64);
VBUS_ASSERT_OFF(vbus_devopen_in, devclass, 32);
VBUS_ASSERT_OFF(vbus_devshm_in, flags, 8);
VBUS_ASSERT_OFF(vbus_event, handle, 4);
VBUS_ASSERT_OFF(vbus_event, code, 8);
VBUS_ASSERT_OFF(vbus_event, data, 16);
#undef VBUS_ASSERT_SIZE
#undef VBUS_ASSERT_OFF

#endif /* VBUS_PROTO_H */
