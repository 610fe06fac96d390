// SPDX-License-Identifier: GPL-2.0
/*
 * VBK_IOC_TREE: the descendants of an attachment (its child functions, theirs, ...), so
 * that vbusd at depth 0 shows which process each nested guest is and under which middle
 * level (docs/nesting.md, "What each level sees"). The walk holds each children list's
 * lock while it reads that list, parent before child as a revocation takes them (lockdep
 * subclass: the depth), so no attachment listed can go while it is read; the records go
 * to a kernel buffer that vbk_main.c copies out after every lock is dropped.
 */
#include <linux/pid.h>
#include "vbk.h"

static void tree_walk(struct vbk_guest *p, u32 depth, struct vbk_tree_node *out, u32 room,
		      u32 *n)
{
	struct vbk_guest *c;

	mutex_lock_nested(&p->kids.lock, p->kids.depth);
	list_for_each_entry(c, &p->kids.guests, owner_node) {
		if (*n < room) {
			struct vbk_tree_node *r = &out[*n];
			struct pid *user = READ_ONCE(c->user);

			memset(r, 0, sizeof(*r));
			r->depth = depth;
			r->guest_id = c->guest_id;
			r->pid = user ? pid_vnr(user) : 0;
			r->objects = READ_ONCE(c->live);
			r->pinned_bytes = READ_ONCE(c->pinned);
			r->tag = c->tag;
			r->flags = READ_ONCE(c->dead) ? VBK_TREE_REVOKED : 0;
		}
		(*n)++;
		tree_walk(c, depth + 1, out, room, n);
	}
	mutex_unlock(&p->kids.lock);
}

/* VBK_IOC_TREE's records of g's descendants (at most room), with the owner's lock held:
 * how many there are. */
u32 vbk_guest_tree(struct vbk_guest *g, struct vbk_tree_node *out, u32 room)
{
	u32 n = 0;

	tree_walk(g, 1, out, room, &n);
	return n;
}

/* The process of the attachment's first control call, kept for VBK_IOC_TREE. */
void vbk_guest_note_user(struct vbk_guest *g)
{
	struct pid *p;

	if (READ_ONCE(g->user))
		return;
	p = get_pid(task_tgid(current));
	if (cmpxchg(&g->user, NULL, p))
		put_pid(p);
}
