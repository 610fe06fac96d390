// SPDX-License-Identifier: MIT
/*
 * Charges of nested attachments on the relay backend (docs/nesting.md, "Passthrough on the
 * relay backend"). Each guest of a device has a node with its own limits; a child
 * connection's guest (VBUS_OP_CHILD) has its parent's node above its own. What a guest
 * holds (objects, pinned bytes) counts in its node and in every node above, so that no
 * subtree holds more than its root was given. A node lives as long as a guest or a child
 * below it does (references), so a parent may close before its children.
 */
#include <errno.h>
#include <stdlib.h>
#include "vrdma.h"

struct vrdma_charge {
	struct vrdma_charge *parent;	/* a reference; NULL at the root */
	uint32_t refs;
	uint32_t max_objects, objects;
	uint64_t max_pinned, pinned;
};

/* One lock for every tree: charges come at object creation and destruction only. */
static pthread_mutex_t charge_lock = PTHREAD_MUTEX_INITIALIZER;

struct vrdma_charge *vrdma_charge_new(struct vrdma_charge *parent, uint32_t max_objects,
				      uint64_t max_pinned)
{
	struct vrdma_charge *c = calloc(1, sizeof(*c));

	if (!c)
		return NULL;
	c->refs = 1;
	c->max_objects = max_objects;
	c->max_pinned = max_pinned;
	c->parent = parent ? vrdma_charge_get(parent) : NULL;
	return c;
}

struct vrdma_charge *vrdma_charge_get(struct vrdma_charge *c)
{
	pthread_mutex_lock(&charge_lock);
	c->refs++;
	pthread_mutex_unlock(&charge_lock);
	return c;
}

void vrdma_charge_put(struct vrdma_charge *c)
{
	while (c) {
		struct vrdma_charge *up = c->parent;
		bool last;

		pthread_mutex_lock(&charge_lock);
		last = !--c->refs;
		pthread_mutex_unlock(&charge_lock);
		if (!last)
			return;
		free(c);
		c = up;		/* the reference the freed node held */
	}
}

/*
 * Add objects and pinned bytes (negative: give back) to c and every node above it; each
 * node's limits bound what it and its children hold together. A refusal adds nothing:
 * 0, or 1 + how many levels above c the node that refused is, with its limit in *limit and
 * *what "max-objects" or "max-pinned".
 */
int vrdma_charge_add(struct vrdma_charge *c, int32_t objects, int64_t pinned,
		     const char **what, uint64_t *limit)
{
	int depth = 0;

	if (!c)
		return 0;
	pthread_mutex_lock(&charge_lock);
	if (objects > 0 || pinned > 0) {
		for (struct vrdma_charge *x = c; x; x = x->parent) {
			depth++;
			if (objects > 0 && x->objects + (uint32_t)objects > x->max_objects) {
				*what = "max-objects", *limit = x->max_objects;
				goto refused;
			}
			if (pinned > 0 && (uint64_t)pinned > x->max_pinned - x->pinned) {
				*what = "max-pinned", *limit = x->max_pinned;
				goto refused;
			}
		}
	}
	for (struct vrdma_charge *x = c; x; x = x->parent) {
		x->objects += (uint32_t)objects;
		x->pinned += (uint64_t)pinned;
	}
	pthread_mutex_unlock(&charge_lock);
	return 0;

refused:
	pthread_mutex_unlock(&charge_lock);
	return depth;
}

/* What c and the children under it hold now. */
void vrdma_charge_read(struct vrdma_charge *c, uint32_t *objects, uint64_t *pinned)
{
	pthread_mutex_lock(&charge_lock);
	*objects = c ? c->objects : 0;
	*pinned = c ? c->pinned : 0;
	pthread_mutex_unlock(&charge_lock);
}
