// SPDX-License-Identifier: MIT
/*
 * Object handles of one guest: an index into the guest's table plus a generation that
 * changes each time a slot is reused, so a stale or guessed handle is refused.
 * The caller holds g->lock.
 */
#include <errno.h>
#include <stdlib.h>
#include "vrdma.h"

#define INDEX_MASK ((1u << VRDMA_HANDLE_INDEX_BITS) - 1)
#define GEN_MASK ((1u << VRDMA_GEN_BITS) - 1)

static uint32_t make_handle(uint32_t idx, uint16_t gen)
{
	return ((uint32_t)gen << VRDMA_HANDLE_INDEX_BITS) | idx;
}

/* Quota `name` (limit `limit`) refused guest g: tell the bus, which logs it. Returns err. */
int vrdma_quota(struct vrdma_guest *g, const char *name, uint64_t limit, int err)
{
	if (g->env && g->env->quota)
		g->env->quota(g->env_priv, name, limit);
	return err;
}

/* What the guest's whitelist lacks (include/vbus/vrdma.h, VRDMA_WL_*): -EPERM, told to the
 * environment for its log (a guest can ask as fast as it likes: the 1st, 2nd, 4th ...). */
int vrdma_refuse(struct vrdma_guest *g, const char *what, uint32_t value)
{
	uint64_t n = ++g->n_refused;

	if (g->env && g->env->refused && !(n & (n - 1)))
		g->env->refused(g->env_priv, what, value, n);
	return -EPERM;
}

/* WHAT (VRDMA_ASK_*) of the guest's process; the rest, and everything without
 * env->caller (the fuzz target's and the unit tests' guests, where no process stands
 * behind the calls), allowed. vbusd always sets it. */
void vrdma_caller(struct vrdma_guest *g, unsigned int what, struct vrdma_caller *out)
{
	*out = (struct vrdma_caller){ .net_raw = true, .ipc_lock = true, .memlock = UINT64_MAX };
	if (g->env && g->env->caller)
		g->env->caller(g->env_priv, what, out);
}

/* Allocate a handle for p. -EDQUOT past the guest's quota. */
int vrdma_handle_new(struct vrdma_guest *g, enum vrdma_obj_type type, void *p, uint32_t *h)
{
	const char *what;
	uint64_t limit;
	uint32_t i;
	int depth;

	if (g->live >= g->pol.max_objects)
		return vrdma_quota(g, "max-objects", g->pol.max_objects, -EDQUOT);
	depth = vrdma_charge_add(g->charge, 1, 0, &what, &limit);
	if (depth)
		return vrdma_quota(g, depth > 1 ? "parent max-objects" :
				   "subtree max-objects", limit, -EDQUOT);
	/* Slot 0 is never used, so that handle 0 is never valid. */
	for (i = 1; i < g->nobjs; i++)
		if (g->objs[i].type == VRDMA_OBJ_FREE)
			break;
	if (i >= g->nobjs) {
		uint32_t n = g->nobjs ? g->nobjs * 2 : 64;
		struct vrdma_obj *o;

		if (n > INDEX_MASK + 1)
			n = INDEX_MASK + 1;
		if (i >= n) {
			vrdma_charge_add(g->charge, -1, 0, NULL, NULL);
			return vrdma_quota(g, "handle table", INDEX_MASK, -EDQUOT);
		}
		o = realloc(g->objs, n * sizeof(*o));
		if (!o) {
			vrdma_charge_add(g->charge, -1, 0, NULL, NULL);
			return -ENOMEM;
		}
		for (uint32_t j = g->nobjs; j < n; j++)
			o[j] = (struct vrdma_obj){ .gen = 1 };
		g->objs = o;
		g->nobjs = n;
	}
	g->objs[i].type = type;
	g->objs[i].users = 0;
	g->objs[i].p = p;
	g->live++;
	*h = make_handle(i, g->objs[i].gen);
	return 0;
}

struct vrdma_obj *vrdma_handle_obj(struct vrdma_guest *g, uint32_t h)
{
	uint32_t i = h & INDEX_MASK;

	if (i == 0 || i >= g->nobjs)
		return NULL;
	if (g->objs[i].type == VRDMA_OBJ_FREE || g->objs[i].gen != (h >> VRDMA_HANDLE_INDEX_BITS))
		return NULL;
	return &g->objs[i];
}

/* The object behind h if it is the guest's and of the type wanted; else NULL and *err:
 * -EINVAL for a handle that never was, or of the wrong type; -ENOENT for a stale one. */
void *vrdma_handle_get(struct vrdma_guest *g, uint32_t h, enum vrdma_obj_type type, int *err)
{
	uint32_t i = h & INDEX_MASK;
	struct vrdma_obj *o = vrdma_handle_obj(g, h);

	if (o && o->type == type)
		return o->p;
	*err = (!o && i && i < g->nobjs) ? -ENOENT : -EINVAL;
	return NULL;
}

void vrdma_handle_free(struct vrdma_guest *g, uint32_t h)
{
	struct vrdma_obj *o = vrdma_handle_obj(g, h);

	if (!o)
		return;
	o->type = VRDMA_OBJ_FREE;
	o->p = NULL;
	o->gen = (uint16_t)((o->gen + 1) & GEN_MASK);
	if (!o->gen)
		o->gen = 1;
	g->live--;
	vrdma_charge_add(g->charge, -1, 0, NULL, NULL);
}
