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
 *   message channel  struct vbus_vm_chan and two message areas further in BAR2: a mailbox
 *                that carries one connector message (include/vbus/proto.h, docs/abi.md) from
 *                the VM to vbusd and one back, announced by vector 0 both ways.
 *
 *   /dev/vbus-vmN  the guest driver's character device (one per ivshmem device), and its
 *                ioctls below. A process rings the host's doorbell for a vector and binds an
 *                eventfd to a vector to be told of the host's interrupts. write() and read()
 *                carry connector messages over the message channel.
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

/* Features of the BAR2 header (vbus_vm_bar2.features). */
#define VBUS_VM_F_CHAN		(1u << 0)	/* the message channel is there (chan_*) */
#define VBUS_VM_F_EVENTS	(1u << 1)	/* with F_CHAN: the event ring is there (ev_*) */
#define VBUS_VM_F_BEAT		(1u << 2)	/* with F_CHAN: vbusd bumps chan.beat every beat_ms */
#define VBUS_VM_F_CONNS		(1u << 3)	/* with F_CHAN: the channel carries max_conns
						 * connections, named by req_conn */
#define VBUS_VM_MAX_CONNS	64		/* max_conns at most */
#define VBUS_VM_CONN_ALL	0xffffffffu	/* req_conn of a RESET: every connection */

/* The first 64 bytes of the header, all a header must have (the channel is optional). */
#define VBUS_VM_BAR2_MIN_SIZE	64

/* Written by vbusd, read by the guest driver (at probe, once). vbusd never reads it back. */
struct vbus_vm_bar2 {
	__le64 magic;			/* VBUS_VM_BAR2_MAGIC */
	__le32 version;			/* VBUS_VM_VERSION */
	__le32 header_size;		/* sizeof(struct vbus_vm_bar2) at this version, or more;
					 * at least VBUS_VM_BAR2_MIN_SIZE */
	__le32 host_peer;		/* the ivshmem peer ID vbusd serves doorbells on */
	__le32 vm_peer;			/* this VM's own ID (also the IVPosition register) */
	__le32 vectors;			/* interrupt vectors in each direction */
	__le32 features;		/* VBUS_VM_F_*; only read when header_size >= 128 */
	char bus[VBUS_VM_NAME_MAX];	/* the bus the VM sits on, NUL terminated */
	/* From here on, with VBUS_VM_F_CHAN: where the message channel is. Offsets from the
	 * start of BAR2, each 4096-aligned; the three ranges inside BAR2, not overlapping. */
	__le32 chan_offset;		/* struct vbus_vm_chan (VBUS_VM_CHAN_SIZE bytes) */
	__le32 msg_max;			/* the largest message either way, header included */
	__le32 req_offset;		/* the request area: msg_max bytes, the VM writes */
	__le32 resp_offset;		/* the response area: msg_max bytes, vbusd writes */
	/* With VBUS_VM_F_EVENTS: the event ring, 4096-aligned, inside BAR2, overlapping none
	 * of the three above: VBUS_VM_EVRING_SIZE(ev_entries) bytes. */
	__le32 ev_offset;
	__le32 ev_entries;		/* a power of two, 1..VBUS_VM_EV_MAX */
	/* With VBUS_VM_F_BEAT: vbusd's heartbeat period (docs/vm.md, "vbusd's death"). */
	__le32 beat_ms;			/* 10..60000 */
	/* With VBUS_VM_F_CONNS: how many connections the channel carries at once. */
	__le32 max_conns;		/* 1..VBUS_VM_MAX_CONNS */
	__le32 reserved1[8];		/* 0 */
};

/*
 * The message channel: a mailbox for one connector message each way (docs/vm.md, "The
 * message channel"). Two cache lines: each written by one side only.
 *
 *      VM (guest driver)                                 vbusd (the VM's thread)
 *  1.  write the message at req_offset,
 *      req_len, req_kind;
 *      then req_seq = seq + 1 (release)
 *  2.  ring the host's doorbell, vector 0   ───────►     req_seq differs from the last it
 *                                                        answered: read req_kind, req_len
 *                                                        once, check, copy the message out
 *                                                        once, check it, serve it
 *  3.                                       ◄───────     response at resp_offset, resp_len,
 *                                                        resp_status; then resp_seq = req_seq
 *                                                        (release); interrupt vector 0
 *  4.  resp_seq == seq: read resp_status, resp_len (bounded by msg_max), the response.
 *
 * One request is outstanding at a time, of any connection. With VBUS_VM_F_CONNS the VM
 * runs up to max_conns connections over the one mailbox, each a guest connection of the
 * bus of its own (its handles, quotas, regions, signals and events), named by req_conn:
 * the driver gives each open file that writes a free slot and a RESET of that slot when
 * it closes. Without the feature there is one connection, slot 0. vbusd treats every byte
 * of BAR2 as the VM's: it reads the VM's fields once into private copies, copies the
 * message out before looking at it, and never follows anything in it. resp_status is the
 * channel's verdict: 0 (the response area holds a connector message of resp_len bytes,
 * whose own status is the bus's answer) or a negative errno with no message
 * (VBUS_VM_CHAN_* below).
 */
#define VBUS_VM_CHAN_MSG	1	/* req_kind: a connector message of req_len bytes */
#define VBUS_VM_CHAN_RESET	2	/* req_kind: end connection req_conn (its handles
					 * are closed; VBUS_VM_CONN_ALL: all of them); the
					 * slot's next message starts a new one */
#define VBUS_VM_CHAN_SIZE	128
#define VBUS_VM_MSG_MAX		(32 + 65536)	/* sizeof(struct vbus_msg) + VBUS_MAX_PAYLOAD */

struct vbus_vm_chan {
	/* Written by the VM, read by vbusd. */
	__le32 req_seq;			/* bumped for each request: the last one posted */
	__le32 req_kind;		/* VBUS_VM_CHAN_MSG or VBUS_VM_CHAN_RESET */
	__le32 req_len;			/* MSG: bytes at req_offset, 1..msg_max */
	__le32 req_conn;		/* VBUS_VM_F_CONNS: the connection, 0..max_conns - 1
					 * (a RESET: also VBUS_VM_CONN_ALL); else 0 */
	__le32 req_reserved[12];	/* 0 */
	/* Written by vbusd, read by the VM. */
	__le32 resp_seq;		/* req_seq of the request answered last */
	__s32 resp_status;		/* 0, or the channel refused the request: -EPROTO (not
					 * one well-framed message with no descriptor), -EMSGSIZE
					 * (req_len above msg_max), -EINVAL (unknown req_kind),
					 * -ECONNRESET (the bus closed the connection) */
	__le32 resp_len;		/* resp_status 0: bytes at resp_offset, 32..msg_max */
	__le32 beat;			/* VBUS_VM_F_BEAT: bumped every beat_ms while vbusd lives */
	__le32 resp_conn;		/* VBUS_VM_F_CONNS, a MSG answered: conn (the event
					 * ring's) of the connection that served it; 0: none */
	__le32 resp_reserved[11];	/* 0 */
};

/*
 * The event ring (docs/vm.md, "Events"): the bus's EVENT messages (docs/abi.md) to the VM's
 * connection, which arrive at any time, between answers. vbusd writes, the VM only reads;
 * vbusd never reads it back. Event number s (1, 2, ...: 0 is skipped when the count wraps)
 * goes in entry s % ev_entries:
 *
 *   vbusd: seq = 0; write barrier; conn, event; seq = s (release); head = s (release);
 *          interrupt vector 0
 *   VM:    from the entry after the last it took up to head (acquire): an entry more than
 *          ev_entries behind head, or whose seq is not s before and after the copy, was
 *          overwritten: lost (counted, not delivered)
 *
 * conn is the req_seq of the request that started the connection the event belongs to (the
 * first message after a RESET): the driver delivers only its current connection's events.
 * Events are best effort, as on the unix socket: a VM that does not keep up loses the
 * oldest, and knows how many.
 */
#define VBUS_VM_EV_MAX		1024
#define VBUS_VM_EVRING_SIZE(n)	(64 + 64 * (n))

struct vbus_vm_evring {
	__le32 head;			/* the number of the event written last; 0: none yet */
	__le32 reserved[15];
	/* then ev_entries of struct vbus_vm_ev */
};

struct vbus_vm_ev {
	__le32 seq;			/* the event's number; 0 while vbusd writes the entry */
	__le32 conn;			/* the connection's first req_seq */
	__u8 event[48];			/* struct vbus_event (include/vbus/proto.h) */
	__le64 reserved;
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

/* VBUS_VM_IOC_SHM: hand the bus the caller's pages [addr, addr + size) as a DEVSHM region
 * (docs/vm.md, "Shared regions"). The driver pins them (FOLL_LONGTERM, FOLL_WRITE, charged
 * to RLIMIT_MEMLOCK as pinned memory), sends DEVSHM with VBUS_SHM_F_GPA and their
 * guest-physical addresses over the channel as this file's request (seq: the message's),
 * waits for the bus's answer (only a fatal signal interrupts it) and returns it: status 0
 * and the region's id, or the bus's -errno in status (the pages then unpinned). The pages
 * stay pinned until VBUS_VM_IOC_SHMREVOKE of that id succeeds, or until vbusd has answered
 * the RESET that ends the file's connection. The ioctl's own errors: EINVAL (addr or size
 * not page-aligned, size 0 or above VBUS_VM_SHM_MAX_PAGES pages, reserved not 0), EFAULT
 * (a page that cannot be pinned for writing), ENOMEM (RLIMIT_MEMLOCK), EBUSY (as write),
 * EINTR, and the channel's errors as read's. */
#define VBUS_VM_PAGE_SIZE	4096
#define VBUS_VM_SHM_MAX_PAGES	8190	/* (VBUS_VM_MSG_MAX - 32 - 16) / 8 */
struct vbus_vm_shm {
	__u64 addr;
	__u64 size;
	__u64 seq;
	__u32 id;			/* out */
	__s32 status;			/* out: the bus's answer */
};

/* VBUS_VM_IOC_SHMREVOKE: SHMREVOKE of region `id` sent by the driver, which unpins the
 * region's pages once the bus said 0. A SHMREVOKE written with write() is served too, but
 * the pages then stay pinned until the connection ends. */
struct vbus_vm_shmrevoke {
	__u64 seq;
	__u32 id;
	__s32 status;			/* out: the bus's answer */
};

/* VBUS_VM_IOC_SIG: hand the bus the caller's eventfd `fd` as a DEVSIG signal (docs/vm.md,
 * "Signals"). The driver sends DEVSIG with VBUS_SIG_F_VECTOR as this file's request (seq:
 * the message's); the bus picks one of the VM's interrupt vectors for it. Then, on status 0:
 *   VBUS_SIG_TO_HOST   every write to fd rings that vector's doorbell (the driver reads
 *                      the eventfd in its wake-up: its count stays 0);
 *   VBUS_SIG_TO_GUEST  that vector's interrupts signal fd (as VBUS_VM_IOC_IRQFD binds).
 * Out: the signal's id and its vector, or the bus's -errno in status (then nothing is
 * bound). The binding lasts until VBUS_VM_IOC_SIGREVOKE of that id succeeds or the file's
 * connection ends. The ioctl's own errors: EINVAL (direction, reserved or out fields not
 * 0), EBADF or EINVAL (fd is no eventfd), EIO (the bus answered a vector out of range),
 * ENOMEM, EBUSY (as write), EINTR, and the channel's errors as read's. */
struct vbus_vm_sig {
	__u64 seq;
	__s32 fd;
	__u32 direction;		/* VBUS_SIG_TO_HOST or VBUS_SIG_TO_GUEST */
	__u32 id;			/* out */
	__u32 vector;			/* out */
	__s32 status;			/* out: the bus's answer */
	__u32 reserved;			/* 0 */
};

/* VBUS_VM_IOC_SIGREVOKE: SIGREVOKE of signal `id` sent by the driver, which drops the
 * signal's binding once the bus said 0. */
struct vbus_vm_sigrevoke {
	__u64 seq;
	__u32 id;
	__s32 status;			/* out: the bus's answer */
};

/* VBUS_VM_IOC_EVENTFD: signal eventfd `fd` (the caller's) whenever an event of this file's
 * connection is queued for it, or stop when fd is -1; events are queued only while one is
 * bound. ENOTCONN when the file has no connection (it has not written a message yet, or
 * its connection ended), EOPNOTSUPP without an event ring. Events written before the
 * binding are not queued. The binding ends with the connection. */
struct vbus_vm_eventfd {
	__s32 fd;
	__u32 flags;			/* 0 */
};

/* VBUS_VM_IOC_EVENT: take the oldest queued event: EAGAIN when there is none. lost: events
 * of this connection lost (overwritten in the ring, or the driver's queue of
 * VBUS_VM_EVQ_MAX full) since the last one taken. ENOTCONN, EOPNOTSUPP as EVENTFD. */
#define VBUS_VM_EVQ_MAX		64
struct vbus_vm_event {
	__u8 event[48];			/* struct vbus_event */
	__u32 lost;
	__u32 reserved;
};

/*
 * write() and read() on /dev/vbus-vmN: the connector's messages (docs/abi.md), one per call,
 * as the unix socket carries them (struct vbus_msg then len bytes; no descriptors, so no
 * DEVFD; DEVSHM, DEVSIG and SIGREVOKE only through the ioctls above: written, EPERM). The
 * connection is the open file's: each file that writes gets a connection of its own (a
 * slot of VBUS_VM_F_CONNS) until it is closed (then vbusd closes the connection and frees
 * what it held). Files take the one mailbox in turn; the driver keeps each answer for its
 * file until read, so a file that does not read holds up no other.
 *
 *   write(buf, n)  posts one request of n bytes (1..VBUS_VM_MSG_MAX, else EMSGSIZE; the
 *                  driver does not look inside: vbusd checks it). EBUSY when this file's
 *                  previous answer is not read yet, or when every slot is taken (max_conns
 *                  files have connections; 1 when vbusd does not offer VBUS_VM_F_CONNS);
 *                  while another file's request or a closed file's RESET is in the mailbox
 *                  it waits (EAGAIN with O_NONBLOCK).
 *   read(buf, n)   the answer to the request posted: blocks until it comes (EAGAIN with
 *                  O_NONBLOCK), returns its length; EMSGSIZE (answer kept) when n is
 *                  smaller; the channel's refusal as the error (EPROTO, EMSGSIZE, EINVAL,
 *                  ECONNRESET: see resp_status); ENOMSG when no request is outstanding;
 *                  EBUSY while the driver's own request (VBUS_VM_IOC_SHM) is out.
 *   poll()         POLLIN: the answer is there; POLLOUT: write() would not block or fail
 *                  with EBUSY.
 * ENODEV once the device is gone; EOPNOTSUPP when vbusd offers no channel.
 */

#define VBUS_VM_IOC_MAGIC	0xbc
#define VBUS_VM_IOC_INFO	_IOR(VBUS_VM_IOC_MAGIC, 0x01, struct vbus_vm_info)
#define VBUS_VM_IOC_RING	_IOW(VBUS_VM_IOC_MAGIC, 0x02, struct vbus_vm_ring)
#define VBUS_VM_IOC_IRQFD	_IOW(VBUS_VM_IOC_MAGIC, 0x03, struct vbus_vm_irqfd)
#define VBUS_VM_IOC_COUNTS	_IOWR(VBUS_VM_IOC_MAGIC, 0x04, struct vbus_vm_counts)
#define VBUS_VM_IOC_SHM		_IOWR(VBUS_VM_IOC_MAGIC, 0x05, struct vbus_vm_shm)
#define VBUS_VM_IOC_SHMREVOKE	_IOWR(VBUS_VM_IOC_MAGIC, 0x06, struct vbus_vm_shmrevoke)
#define VBUS_VM_IOC_SIG		_IOWR(VBUS_VM_IOC_MAGIC, 0x07, struct vbus_vm_sig)
#define VBUS_VM_IOC_SIGREVOKE	_IOWR(VBUS_VM_IOC_MAGIC, 0x08, struct vbus_vm_sigrevoke)
#define VBUS_VM_IOC_EVENTFD	_IOW(VBUS_VM_IOC_MAGIC, 0x09, struct vbus_vm_eventfd)
#define VBUS_VM_IOC_EVENT	_IOR(VBUS_VM_IOC_MAGIC, 0x0a, struct vbus_vm_event)

#define VBUS_VM_ASSERT_SIZE(t, n) _Static_assert(sizeof(struct t) == (n), #t " size")
VBUS_VM_ASSERT_SIZE(vbus_vm_bar2, 128);
VBUS_VM_ASSERT_SIZE(vbus_vm_chan, VBUS_VM_CHAN_SIZE);
VBUS_VM_ASSERT_SIZE(vbus_vm_shm, 32);
VBUS_VM_ASSERT_SIZE(vbus_vm_shmrevoke, 16);
VBUS_VM_ASSERT_SIZE(vbus_vm_sig, 32);
VBUS_VM_ASSERT_SIZE(vbus_vm_sigrevoke, 16);
_Static_assert(__builtin_offsetof(struct vbus_vm_bar2, chan_offset) == VBUS_VM_BAR2_MIN_SIZE,
	       "vbus_vm_bar2.chan_offset offset");
_Static_assert(__builtin_offsetof(struct vbus_vm_chan, resp_seq) == 64,
	       "vbus_vm_chan.resp_seq offset");
VBUS_VM_ASSERT_SIZE(vbus_vm_info, 56);
VBUS_VM_ASSERT_SIZE(vbus_vm_ring, 8);
VBUS_VM_ASSERT_SIZE(vbus_vm_irqfd, 16);
VBUS_VM_ASSERT_SIZE(vbus_vm_counts, 24);
VBUS_VM_ASSERT_SIZE(vbus_vm_evring, 64);
VBUS_VM_ASSERT_SIZE(vbus_vm_ev, 64);
VBUS_VM_ASSERT_SIZE(vbus_vm_eventfd, 8);
VBUS_VM_ASSERT_SIZE(vbus_vm_event, 56);
_Static_assert(__builtin_offsetof(struct vbus_vm_bar2, ev_offset) == 80,
	       "vbus_vm_bar2.ev_offset offset");
#undef VBUS_VM_ASSERT_SIZE

#endif /* VBUS_VM_H */
