/* SPDX-License-Identifier: MIT */
/*
 * vbus shared-memory structures: the signal, the ring (ioq) and the call channel built
 * from them. The specification is docs/abi.md ("Shared memory"); this header follows it.
 *
 * Everything here lives in a DEVSHM region that both sides map, so everything here can
 * be written by a hostile peer at any time: each side keeps its own index privately and
 * only reads the other's, masks and bounds-checks it, and copies a descriptor out once
 * before looking at it.
 */
#ifndef VBUS_SHM_H
#define VBUS_SHM_H

#include <linux/types.h>

/*
 * shm-signal: "wake me if you give me work". The consumer (the side that may sleep)
 * writes `enabled`; the producer writes `pending` and `count`. Out-of-band wake-up: an
 * eventfd (DEVSIG). See docs/abi.md for the handshake.
 */
struct vbus_shm_signal {
	__le32 enabled;		/* consumer: 1 while it is (about to be) asleep */
	__le32 pending;		/* producer sets 1 when it kicks; consumer clears on wake */
	__le64 count;		/* producer: kicks sent (statistics) */
};

/*
 * ioq: a single-producer single-consumer ring of fixed-size descriptors.
 *
 *   +--------------+ 0     prod: free-running u32, written by the producer only
 *   | prod         |
 *   +--------------+ 64    cons: free-running u32, written by the consumer only
 *   | cons         |
 *   +--------------+ 128   flags: VBUS_IOQ_BROKEN, set by whichever side saw a rule
 *   | flags        |       broken; entries/desc_size as the creator set them
 *   +--------------+ 192
 *   | descriptors  |       entries x desc_size bytes; slot = index & (entries - 1)
 *   +--------------+
 */
struct vbus_ioq_hdr {
	__le32 prod;
	__le32 reserved0[15];
	__le32 cons;
	__le32 reserved1[15];
	__le32 flags;
	__le32 entries;		/* power of two (informative: each side uses its own copy) */
	__le32 desc_size;	/* multiple of 8 */
	__le32 reserved2[13];
};

#define VBUS_IOQ_BROKEN (1u << 0)

/*
 * The call channel: a synchronous request/response between a guest and the bus, in one
 * DEVSHM region. Layout (offsets from the channel's start, all 64-byte aligned):
 *   0                        struct vbus_call_area (the two signals)
 *   64                       request ioq (guest -> bus), entries x VBUS_CALL_DESC
 *   64 + ioq_size(entries)   response ioq (bus -> guest), same size
 */
#define VBUS_CALL_DESC		512	/* bytes per request or response descriptor */
#define VBUS_CALL_INLINE	(VBUS_CALL_DESC - 32)	/* payload bytes in one */

struct vbus_call_area {
	struct vbus_shm_signal to_bus;		/* the bus sleeps on it; the guest kicks */
	struct vbus_shm_signal to_guest;	/* the guest sleeps on it; the bus kicks */
	__le64 reserved[4];
};

struct vbus_call_req {
	__le64 tag;		/* chosen by the guest, echoed */
	__le32 handle;		/* device handle on this connection */
	__le32 fn;
	__le32 inlen;		/* <= VBUS_CALL_INLINE */
	__le32 outmax;		/* <= VBUS_CALL_INLINE */
	__le32 flags;		/* VBUS_CALL_SLOW: the guest will sleep at once */
	__le32 reserved;
	__u8 payload[VBUS_CALL_INLINE];
};

#define VBUS_CALL_SLOW (1u << 0)

struct vbus_call_resp {
	__le64 tag;
	__le32 status;		/* 0 or a negative errno */
	__le32 outlen;
	__le64 reserved[2];
	__u8 payload[VBUS_CALL_INLINE];
};

/* CALLCHAN request payload (docs/abi.md): where the channel is and its two eventfds. */
struct vbus_callchan_in {
	__le32 shm;		/* DEVSHM region id */
	__le32 entries;		/* per ioq, power of two, 1..64 */
	__le64 offset;		/* of the channel in the region, 64-byte aligned */
	__le32 sig_to_bus;	/* DEVSIG id, VBUS_SIG_TO_HOST */
	__le32 sig_to_guest;	/* DEVSIG id, VBUS_SIG_TO_GUEST */
};

#define VBUS_IOQ_SIZE(entries, desc) (sizeof(struct vbus_ioq_hdr) + (size_t)(entries) * (desc))
#define VBUS_CALL_SIZE(entries) (sizeof(struct vbus_call_area) + \
				 2 * VBUS_IOQ_SIZE(entries, VBUS_CALL_DESC))

_Static_assert(sizeof(struct vbus_shm_signal) == 16, "signal size");
_Static_assert(sizeof(struct vbus_ioq_hdr) == 192, "ioq header size");
_Static_assert(__builtin_offsetof(struct vbus_ioq_hdr, cons) == 64, "cons on its own line");
_Static_assert(__builtin_offsetof(struct vbus_ioq_hdr, flags) == 128, "flags on its own line");
_Static_assert(sizeof(struct vbus_call_area) == 64, "call area size");
_Static_assert(sizeof(struct vbus_call_req) == VBUS_CALL_DESC, "request size");
_Static_assert(sizeof(struct vbus_call_resp) == VBUS_CALL_DESC, "response size");
_Static_assert(sizeof(struct vbus_callchan_in) == 24, "callchan size");

#endif /* VBUS_SHM_H */
