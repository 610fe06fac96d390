// SPDX-License-Identifier: MIT
/*
 * ioq: a single-producer single-consumer ring in shared memory (include/vbus/shm.h).
 *
 * Each side keeps its own index privately (q->mine) and publishes it; it only reads the
 * peer's. The consumer reads prod with acquire (pairs with the producer's release after
 * it wrote the slot), copies the slot out once, then publishes cons with release (pairs
 * with the producer's acquire before it reuses the slot). A peer index that moves
 * backwards or further than the ring allows marks the ring broken, for good.
 */
#include <endian.h>
#include <errno.h>
#include <string.h>
#include "ring.h"

static bool pow2(uint32_t x)
{
	return x && !(x & (x - 1));
}

int vbus_ioq_init(struct vbus_ioq *q, void *mem, uint32_t entries, uint32_t desc_size,
		  bool producer, bool create)
{
	if (!pow2(entries) || entries > (1u << 16) || !desc_size || desc_size % 8 ||
	    desc_size > 65536 || (uintptr_t)mem % 64)
		return -EINVAL;
	q->hdr = mem;
	q->descs = (uint8_t *)mem + sizeof(struct vbus_ioq_hdr);
	q->entries = entries;
	q->desc_size = desc_size;
	q->producer = producer;
	q->broken = false;
	if (create) {
		memset(q->hdr, 0, sizeof(*q->hdr));
		q->hdr->entries = htole32(entries);
		q->hdr->desc_size = htole32(desc_size);
	}
	/* Attaching: start from what the creator published; the first bad move breaks it. */
	q->mine = le32toh(__atomic_load_n(producer ? &q->hdr->prod : &q->hdr->cons,
					  __ATOMIC_ACQUIRE));
	return 0;
}

static int mark_broken(struct vbus_ioq *q)
{
	q->broken = true;
	__atomic_fetch_or(&q->hdr->flags, htole32(VBUS_IOQ_BROKEN), __ATOMIC_RELEASE);
	return -EPIPE;
}

int vbus_ioq_pending(struct vbus_ioq *q)
{
	uint32_t peer, used;

	if (q->broken || (le32toh(__atomic_load_n(&q->hdr->flags, __ATOMIC_ACQUIRE)) &
			  VBUS_IOQ_BROKEN))
		return mark_broken(q);
	if (q->producer) {
		/* Acquire pairs with the consumer's release of cons after its copy-out. */
		peer = le32toh(__atomic_load_n(&q->hdr->cons, __ATOMIC_ACQUIRE));
		used = q->mine - peer;
		return used > q->entries ? mark_broken(q) : (int)(q->entries - used);
	}
	/* Acquire pairs with the producer's release of prod after it wrote the slot; seq_cst
	 * because a sleeper re-checks here right after its seq_cst store of `enabled`. */
	peer = le32toh(__atomic_load_n(&q->hdr->prod, __ATOMIC_SEQ_CST));
	used = peer - q->mine;
	return used > q->entries ? mark_broken(q) : (int)used;
}

int vbus_ioq_push(struct vbus_ioq *q, const void *desc)
{
	return vbus_ioq_push_n(q, desc, q->desc_size);
}

int vbus_ioq_push_n(struct vbus_ioq *q, const void *desc, size_t len)
{
	int room = vbus_ioq_pending(q);

	if (room < 0)
		return room;
	if (!room)
		return -ENOSPC;
	if (len > q->desc_size)
		return -EINVAL;
	memcpy(q->descs + (size_t)(q->mine & (q->entries - 1)) * q->desc_size, desc, len);
	q->mine++;
	/* seq_cst (a release, and ordered before a later seq_cst load of the peer's signal
	 * `enabled`): the slot is visible before prod moves. */
	__atomic_store_n(&q->hdr->prod, htole32(q->mine), __ATOMIC_SEQ_CST);
	return 0;
}

const void *vbus_ioq_peek(struct vbus_ioq *q, int *err)
{
	int avail = vbus_ioq_pending(q);

	*err = avail < 0 ? avail : 0;
	if (avail <= 0)
		return NULL;
	return q->descs + (size_t)(q->mine & (q->entries - 1)) * q->desc_size;
}

void vbus_ioq_consume(struct vbus_ioq *q)
{
	q->mine++;
	/* Release: the caller's copy is done before the producer may reuse the slot. */
	__atomic_store_n(&q->hdr->cons, htole32(q->mine), __ATOMIC_RELEASE);
}

int vbus_ioq_pop(struct vbus_ioq *q, void *desc)
{
	int err;
	const void *slot = vbus_ioq_peek(q, &err);

	if (!slot)
		return err;
	memcpy(desc, slot, q->desc_size);
	vbus_ioq_consume(q);
	return 1;
}
