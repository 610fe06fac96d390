// SPDX-License-Identifier: MIT
/*
 * A guest's QPs by real QP number: a completion names its QP by number only (an SRQ's
 * receive may complete on any QP of the SRQ), and the relay finds the guest's QP in O(1)
 * instead of scanning the object table. Open addressing with linear probing, at most half
 * full, deletion by backward shift (no tombstones). The caller holds g->lock.
 */
#include <errno.h>
#include <stdlib.h>
#include "vrdma.h"

static uint32_t slot_of(const struct vrdma_guest *g, uint32_t qpn)
{
	return (qpn * 2654435761u) & g->qpn_mask;	/* Knuth's multiplicative hash */
}

static int grow(struct vrdma_guest *g)
{
	uint32_t n = g->qpn ? (g->qpn_mask + 1) * 2 : 16;
	struct vrdma_qp **t = calloc(n, sizeof(*t)), **old = g->qpn;
	uint32_t oldn = g->qpn ? g->qpn_mask + 1 : 0;

	if (!t)
		return -ENOMEM;
	g->qpn = t;
	g->qpn_mask = n - 1;
	for (uint32_t i = 0; i < oldn; i++) {
		uint32_t s;

		if (!old[i])
			continue;
		for (s = slot_of(g, old[i]->qp->qp_num); t[s]; s = (s + 1) & g->qpn_mask)
			;
		t[s] = old[i];
	}
	free(old);
	return 0;
}

/* 0 or -ENOMEM. A QP number is in the table at most once (the device gives each live QP
 * its own). */
int vrdma_qpn_add(struct vrdma_guest *g, struct vrdma_qp *qp)
{
	uint32_t s;

	if ((!g->qpn || 2 * (g->qpn_used + 1) > g->qpn_mask + 1) && grow(g))
		return -ENOMEM;
	for (s = slot_of(g, qp->qp->qp_num); g->qpn[s]; s = (s + 1) & g->qpn_mask)
		;
	g->qpn[s] = qp;
	g->qpn_used++;
	return 0;
}

struct vrdma_qp *vrdma_qpn_find(struct vrdma_guest *g, uint32_t qpn)
{
	if (!g->qpn)
		return NULL;
	for (uint32_t s = slot_of(g, qpn); g->qpn[s]; s = (s + 1) & g->qpn_mask)
		if (g->qpn[s]->qp->qp_num == qpn)
			return g->qpn[s];
	return NULL;
}

/* Remove qp if it is there (before its real QP is destroyed: the number is read). */
void vrdma_qpn_del(struct vrdma_guest *g, struct vrdma_qp *qp)
{
	uint32_t s, j;

	if (!g->qpn || !qp->qp)
		return;
	for (s = slot_of(g, qp->qp->qp_num); g->qpn[s] != qp; s = (s + 1) & g->qpn_mask)
		if (!g->qpn[s])
			return;
	/* Backward shift: move up each later entry of the run that may sit at s. */
	for (j = (s + 1) & g->qpn_mask; g->qpn[j]; j = (j + 1) & g->qpn_mask) {
		uint32_t home = slot_of(g, g->qpn[j]->qp->qp_num);

		/* j's entry may move to s when its home is not cyclically in (s, j]. */
		if (((j - home) & g->qpn_mask) >= ((j - s) & g->qpn_mask)) {
			g->qpn[s] = g->qpn[j];
			s = j;
		}
	}
	g->qpn[s] = NULL;
	g->qpn_used--;
}
