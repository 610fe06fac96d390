// SPDX-License-Identifier: MIT
/*
 * The host's view of a queue that lives in guest shared memory (docs/vrdma.md,
 * "Data path"): bounds-checked once at creation, then used through host-private indices.
 */
#include <errno.h>
#include "vrdma.h"

#define MAX_ENTRIES (1u << 16)
#define MAX_STRIDE 4096u

static bool pow2(uint32_t x)
{
	return x && !(x & (x - 1));
}

/* Whether a queue of `entries` slots of `stride` bytes (at least min_stride) after its
 * struct vrdma_ring fits at `offset` of a region of `size` bytes, by the ring rules. */
bool vrdma_hq_fits(uint64_t size, uint64_t offset, uint32_t entries, uint32_t stride,
		   uint32_t min_stride)
{
	uint64_t need = sizeof(struct vrdma_ring) + (uint64_t)entries * stride;

	return pow2(entries) && entries <= MAX_ENTRIES && pow2(stride) && stride >= min_stride &&
	       stride <= MAX_STRIDE && !(offset % 64) && offset <= size && need <= size - offset;
}

/* Map queue q at [offset, offset + ring + entries * stride) of guest region shm.
 * The host's index starts at 0 and is published at once; the guest zeroed the ring. */
int vrdma_hq_map(struct vrdma_guest *g, struct vrdma_hq *q, uint32_t shm, uint64_t offset,
		 uint32_t entries, uint32_t stride, uint32_t min_stride)
{
	struct vrdma_region r;
	int err = g->env->region(g->env_priv, shm, &r);

	if (err)
		return err;
	if (!vrdma_hq_fits(r.size, offset, entries, stride, min_stride)) {
		if (g->env->region_put)
			g->env->region_put(g->env_priv, shm);
		return -EINVAL;
	}
	q->ring = (struct vrdma_ring *)((uint8_t *)r.base + offset);
	q->slots = (uint8_t *)(q->ring + 1);
	q->entries = entries;
	q->stride = stride;
	q->cons = 0;
	q->broken = false;
	q->mapped = true;
	q->shm = shm;
	q->state = VRDMA_QS_OFF;
	vrdma_link_init(&q->link);
	return 0;
}

void vrdma_hq_unmap(struct vrdma_guest *g, struct vrdma_hq *q)
{
	if (q->state != VRDMA_QS_OFF) {	/* the relay no longer looks at it */
		vrdma_link_del(&q->link);
		q->state = VRDMA_QS_OFF;
	}
	if (!q->mapped)
		return;
	q->mapped = false;
	if (!g->closing && g->env->region_put)
		g->env->region_put(g->env_priv, q->shm);
}
