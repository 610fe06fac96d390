/* SPDX-License-Identifier: MIT */
/*
 * Internal to libvbus and vbusd: the shared-memory mechanics of include/vbus/shm.h.
 * Each side holds a private struct that points into shared memory and keeps its own
 * index and the ring's geometry, so nothing the peer writes can change them.
 * Functions return 0, a count, or a negative errno.
 */
#ifndef VBUS_CONNECTOR_RING_H
#define VBUS_CONNECTOR_RING_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <vbus/shm.h>

/* ---- shm-signal ---- */
struct vbus_signal {
	struct vbus_shm_signal *shm;
	int efd;			/* the eventfd behind it */
};

/* Producer: after publishing work, wake the consumer if it asked to be woken.
 * Returns 1 if it kicked the eventfd, 0 if not needed, -errno. */
int vbus_signal_notify(struct vbus_signal *s);
/* Consumer: announce a sleep. Then check for work once more; only if there is none,
 * vbus_signal_wait(). Finally vbus_signal_disable(). */
void vbus_signal_enable(struct vbus_signal *s);
void vbus_signal_disable(struct vbus_signal *s);
/* Consumer: sleep until kicked or timeout_ms passes (-1: forever). 1 kicked, 0 timeout,
 * -ENOTCONN if watch_fd (a socket to the peer, or -1) hangs up meanwhile. */
int vbus_signal_wait(struct vbus_signal *s, int timeout_ms, int watch_fd);

/* ---- ioq ---- */
struct vbus_ioq {
	struct vbus_ioq_hdr *hdr;
	uint8_t *descs;
	uint32_t entries;		/* private copies: never re-read from shared memory */
	uint32_t desc_size;
	uint32_t mine;			/* producer: next prod; consumer: next cons */
	bool producer;
	bool broken;
};

/* Lay out a new ring at mem (the creating side), or attach to one; both sides pass the
 * geometry they agreed on out of band, never read it from the ring. */
int vbus_ioq_init(struct vbus_ioq *q, void *mem, uint32_t entries, uint32_t desc_size,
		  bool producer, bool create);
/* Producer: copy one descriptor in. -ENOSPC when full, -EPIPE when broken. */
int vbus_ioq_push(struct vbus_ioq *q, const void *desc);
/* Consumer: copy one descriptor out. 1 taken, 0 empty, -EPIPE broken (now or before). */
int vbus_ioq_pop(struct vbus_ioq *q, void *desc);
/* The same with only the first len bytes of the descriptor copied in. */
int vbus_ioq_push_n(struct vbus_ioq *q, const void *desc, size_t len);
/* Consumer, in two steps, for a caller that copies out only the part it needs (each byte
 * once): the next slot in shared memory (NULL if empty or broken, *err says), then
 * vbus_ioq_consume() when the copy is done. */
const void *vbus_ioq_peek(struct vbus_ioq *q, int *err);
void vbus_ioq_consume(struct vbus_ioq *q);
/* Descriptors waiting (consumer) or free slots (producer); -EPIPE when broken. */
int vbus_ioq_pending(struct vbus_ioq *q);

/* ---- call channel ---- */
struct vbus_callchan {
	struct vbus_call_area *area;
	struct vbus_ioq req, resp;
	struct vbus_signal to_bus, to_guest;
	uint64_t spin_ns;		/* how long a waiter spins before it sleeps */
	uint64_t tag;
	uint64_t spins, sleeps;		/* statistics: waits ended spinning / sleeping */
	int watch_fd;			/* guest: the bus socket, so a dead bus ends a wait */
};

/* Guest side: lay out a channel at mem (VBUS_CALL_SIZE(entries) bytes). */
int vbus_callchan_guest_init(struct vbus_callchan *c, void *mem, uint32_t entries,
			     int efd_to_bus, int efd_to_guest);
/* One call: the response's status, or -errno for the channel itself (-EPIPE: broken,
 * -ETIMEDOUT: no answer within timeout_ms). Not thread-safe: callers serialize. */
int vbus_callchan_call(struct vbus_callchan *c, uint32_t handle, uint32_t fn, uint32_t flags,
		       const void *in, size_t inlen, void *out, size_t outmax, size_t *outlen,
		       int timeout_ms);

/* Bus side: attach to a channel the guest laid out. */
int vbus_callchan_bus_init(struct vbus_callchan *c, void *mem, uint32_t entries,
			   int efd_to_bus, int efd_to_guest);
/* Wait for the next request (spinning spin_ns, then sleeping; *stop ends the wait):
 * 1 with *req filled, 0 stopped, -EPIPE broken. */
int vbus_callchan_next(struct vbus_callchan *c, struct vbus_call_req *req, const bool *stop);
/* Answer a request. */
int vbus_callchan_reply(struct vbus_callchan *c, uint64_t tag, int32_t status,
			const void *out, size_t outlen);

/* The spin budget: $VBUS_SPIN_NS, else def. */
uint64_t vbus_spin_ns(uint64_t def);

#endif
