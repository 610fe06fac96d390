// SPDX-License-Identifier: MIT
/*
 * shm-signal: wake the other side only when it sleeps.
 *
 * The race it closes: the consumer checks for work, finds none and goes to sleep while
 * the producer, at the same moment, publishes work and sees no sleeper. Both sides use
 * sequentially consistent operations so that at least one sees the other:
 *   consumer: enabled = 1 (seq_cst); check for work again; sleep only if none.
 *   producer: publish work (seq_cst store of its ring index); load enabled (seq_cst);
 *             if set, and pending was 0, kick.
 * Model-checked in tests/model/signal.pml, with the broken variant (no re-check).
 */
#include <errno.h>
#include <endian.h>
#include <poll.h>
#include <stdlib.h>
#include <unistd.h>
#include "ring.h"

int vbus_signal_notify(struct vbus_signal *s)
{
	uint64_t one = 1;

	/* Pairs with the seq_cst store in vbus_signal_enable(). */
	if (!__atomic_load_n(&s->shm->enabled, __ATOMIC_SEQ_CST))
		return 0;
	/* One kick per sleep: the consumer clears pending when it wakes. */
	if (__atomic_exchange_n(&s->shm->pending, htole32(1), __ATOMIC_SEQ_CST))
		return 0;
	__atomic_fetch_add(&s->shm->count, 1, __ATOMIC_RELAXED);
	if (write(s->efd, &one, sizeof(one)) != sizeof(one))
		return -errno;
	return 1;
}

void vbus_signal_enable(struct vbus_signal *s)
{
	/* Pairs with the producer's seq_cst load of enabled after its publish. */
	__atomic_store_n(&s->shm->enabled, htole32(1), __ATOMIC_SEQ_CST);
}

void vbus_signal_disable(struct vbus_signal *s)
{
	__atomic_store_n(&s->shm->enabled, 0, __ATOMIC_RELAXED);
}

int vbus_signal_wait(struct vbus_signal *s, int timeout_ms, int watch_fd)
{
	struct pollfd p[2] = { { .fd = s->efd, .events = POLLIN },
			       { .fd = watch_fd, .events = POLLRDHUP } };
	uint64_t v;
	int r;

	do
		r = poll(p, watch_fd >= 0 ? 2 : 1, timeout_ms);
	while (r < 0 && errno == EINTR);
	if (r < 0)
		return -errno;
	if (r > 0 && !(p[0].revents & POLLIN))
		return -ENOTCONN;	/* the peer's socket hung up */
	if (r > 0 && read(s->efd, &v, sizeof(v)) < 0 && errno != EAGAIN)
		return -errno;
	/* Cleared before the caller re-checks for work, so a later kick is not lost; after a
	 * timeout too: a pending word the producer set without a kick (only a peer scribbling
	 * over it does) must not silence every later one. */
	__atomic_store_n(&s->shm->pending, 0, __ATOMIC_SEQ_CST);
	return r > 0;
}
