// SPDX-License-Identifier: MIT
/*
 * call(): a synchronous request/response over two ioqs and two shm-signals
 * (include/vbus/shm.h, docs/abi.md "Call channel").
 *
 * Both sides wait adaptively: spin for a bounded budget (spin_ns, $VBUS_SPIN_NS), then
 * announce a sleep on their signal, re-check, and sleep on the eventfd. A busy pair hands
 * off through the cache line; an idle side costs no CPU. A call flagged VBUS_CALL_SLOW
 * sleeps at once: its spinning would steal the CPU the bus needs to do the work.
 */
#include <endian.h>
#include <errno.h>
#include <stddef.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "ring.h"

uint64_t vbus_spin_ns(uint64_t def)
{
	const char *s = getenv("VBUS_SPIN_NS");
	char *end;
	unsigned long long v;

	if (!s || !*s)
		return def;
	v = strtoull(s, &end, 10);
	return *end ? def : v;
}

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static int chan_init(struct vbus_callchan *c, void *mem, uint32_t entries, int efd_to_bus,
		     int efd_to_guest, bool guest)
{
	uint8_t *m = mem;
	size_t q = VBUS_IOQ_SIZE(entries, VBUS_CALL_DESC);
	int err;

	if (!entries || entries > 64)
		return -EINVAL;
	memset(c, 0, sizeof(*c));
	c->area = mem;
	if (guest)
		memset(c->area, 0, sizeof(*c->area));
	err = vbus_ioq_init(&c->req, m + sizeof(*c->area), entries, VBUS_CALL_DESC, guest, guest);
	if (!err)
		err = vbus_ioq_init(&c->resp, m + sizeof(*c->area) + q, entries, VBUS_CALL_DESC,
				    !guest, guest);
	if (err)
		return err;
	c->to_bus = (struct vbus_signal){ &c->area->to_bus, efd_to_bus };
	c->to_guest = (struct vbus_signal){ &c->area->to_guest, efd_to_guest };
	c->spin_ns = vbus_spin_ns(20000);
	c->watch_fd = -1;
	return 0;
}

int vbus_callchan_guest_init(struct vbus_callchan *c, void *mem, uint32_t entries,
			     int efd_to_bus, int efd_to_guest)
{
	return chan_init(c, mem, entries, efd_to_bus, efd_to_guest, true);
}

int vbus_callchan_bus_init(struct vbus_callchan *c, void *mem, uint32_t entries,
			   int efd_to_bus, int efd_to_guest)
{
	return chan_init(c, mem, entries, efd_to_bus, efd_to_guest, false);
}

#define WAKE_MS 200

static uint64_t min_u64(uint64_t a, uint64_t b)
{
	return a < b ? a : b;
}

/*
 * Wait until q has something to pop: spin (unless slow), then sleep on sig.
 * 1 ready, 0 stopped or timed out, -EPIPE broken.
 */
static int wait_ready(struct vbus_callchan *c, struct vbus_ioq *q, struct vbus_signal *sig,
		      bool slow, int timeout_ms, const bool *stop)
{
	uint64_t t0 = now_ns(), deadline = timeout_ms < 0 ? UINT64_MAX :
					   t0 + (uint64_t)timeout_ms * 1000000u;
	int r;

	while (!slow && now_ns() - t0 < c->spin_ns) {
		r = vbus_ioq_pending(q);
		if (r > 0)
			c->spins++;
		if (r)
			return r < 0 ? r : 1;
		/* The first microseconds on the cache line; after that, yield each turn, so
		 * that a peer sharing this CPU gets to run (with the peer on another CPU the
		 * yield returns at once). */
		if (now_ns() - t0 < 2000)
			__builtin_ia32_pause();
		else
			sched_yield();
	}
	for (;;) {
		uint64_t now;

		vbus_signal_enable(sig);
		r = vbus_ioq_pending(q);	/* the re-check after announcing the sleep */
		if (r) {
			vbus_signal_disable(sig);
			return r < 0 ? r : 1;
		}
		if (stop && __atomic_load_n(stop, __ATOMIC_ACQUIRE)) {
			vbus_signal_disable(sig);
			return 0;
		}
		now = now_ns();
		if (now >= deadline) {
			vbus_signal_disable(sig);
			return 0;
		}
		/* At most WAKE_MS at a time when bounded: the signal's words are shared, and a
		 * peer that scribbles over them (a hostile guest's own channel) must cost its
		 * calls a late answer, never a lost one. */
		r = vbus_signal_wait(sig, deadline == UINT64_MAX ? (stop ? WAKE_MS : -1) :
				     (int)min_u64((deadline - now) / 1000000u + 1, WAKE_MS),
				     c->watch_fd);
		vbus_signal_disable(sig);
		if (r < 0)
			return r;
		c->sleeps++;
		r = vbus_ioq_pending(q);
		if (r)
			return r < 0 ? r : 1;
	}
}

int vbus_callchan_call(struct vbus_callchan *c, uint32_t handle, uint32_t fn, uint32_t flags,
		       const void *in, size_t inlen, void *out, size_t outmax, size_t *outlen,
		       int timeout_ms)
{
	struct vbus_call_req req;
	struct vbus_call_resp resp;
	uint64_t tag = ++c->tag;
	int r;

	if (inlen > VBUS_CALL_INLINE || flags & ~VBUS_CALL_SLOW)
		return -EINVAL;
	memset(&req, 0, offsetof(struct vbus_call_req, payload));
	req.tag = htole64(tag);
	req.handle = htole32(handle);
	req.fn = htole32(fn);
	req.inlen = htole32((uint32_t)inlen);
	req.outmax = htole32((uint32_t)(outmax < VBUS_CALL_INLINE ? outmax : VBUS_CALL_INLINE));
	req.flags = htole32(flags);
	if (inlen)
		memcpy(req.payload, in, inlen);
	r = vbus_ioq_push_n(&c->req, &req, offsetof(struct vbus_call_req, payload) + inlen);
	if (r)
		return r == -ENOSPC ? -EBUSY : r;	/* never: callers serialize */
	r = vbus_signal_notify(&c->to_bus);
	if (r < 0)
		return r;
	r = wait_ready(c, &c->resp, &c->to_guest, flags & VBUS_CALL_SLOW, timeout_ms, NULL);
	if (r <= 0)
		return r ? r : -ETIMEDOUT;
	{
		const struct vbus_call_resp *slot = vbus_ioq_peek(&c->resp, &r);
		uint32_t n;

		if (!slot)
			return r ? r : -EPROTO;
		/* The header is copied out once and checked; then exactly outlen bytes. */
		memcpy(&resp, slot, offsetof(struct vbus_call_resp, payload));
		n = le32toh(resp.outlen);
		if (le64toh(resp.tag) != tag || n > outmax || n > VBUS_CALL_INLINE) {
			c->resp.broken = true;
			return -EPROTO;	/* a bus that answers nonsense is not trusted again */
		}
		if (n)
			memcpy(out, slot->payload, n);
		vbus_ioq_consume(&c->resp);
		if (outlen)
			*outlen = n;
	}
	return (int32_t)le32toh(resp.status);
}

int vbus_callchan_next(struct vbus_callchan *c, struct vbus_call_req *req, const bool *stop)
{
	int r = wait_ready(c, &c->req, &c->to_bus, false, -1, stop);

	if (r <= 0)
		return r;
	{
		const struct vbus_call_req *slot = vbus_ioq_peek(&c->req, &r);
		uint32_t n;

		if (!slot)
			return r ? r : -EPROTO;
		/* Copy the header out once, check the copy, then copy exactly inlen bytes. */
		memcpy(req, slot, offsetof(struct vbus_call_req, payload));
		n = le32toh(req->inlen);
		if (n <= VBUS_CALL_INLINE)
			memcpy(req->payload, slot->payload, n);
		vbus_ioq_consume(&c->req);
		if (n > VBUS_CALL_INLINE || le32toh(req->outmax) > VBUS_CALL_INLINE ||
		    le32toh(req->flags) & ~VBUS_CALL_SLOW || req->reserved)
			return -EBADMSG;
	}
	return 1;
}

int vbus_callchan_reply(struct vbus_callchan *c, uint64_t tag, int32_t status, const void *out,
			size_t outlen)
{
	struct vbus_call_resp resp;
	int r;

	if (outlen > VBUS_CALL_INLINE)
		return -EINVAL;
	memset(&resp, 0, offsetof(struct vbus_call_resp, payload));
	resp.tag = htole64(tag);
	resp.status = htole32((uint32_t)status);
	resp.outlen = htole32((uint32_t)outlen);
	if (outlen)
		memcpy(resp.payload, out, outlen);
	r = vbus_ioq_push_n(&c->resp, &resp, offsetof(struct vbus_call_resp, payload) + outlen);
	if (r)
		return r;
	r = vbus_signal_notify(&c->to_guest);
	return r < 0 ? r : 0;
}
