// SPDX-License-Identifier: GPL-2.0
/*
 * VBK_IOC_TREE: the descendants of an attachment (its child functions, theirs, ...), so
 * that vbusd at depth 0 shows which process each nested guest is and under which middle
 * level (docs/nesting.md, "What each level sees"). The walk holds each children list's
 * lock while it reads that list, parent before child as a revocation takes them (lockdep
 * subclass: the depth), so no attachment listed can go while it is read; the records go
 * to a kernel buffer that the caller copies out after every lock is dropped.
 */
#include <linux/pid.h>
#include <linux/uaccess.h>
#include "vbk.h"

#define TREE_ROOM_MAX	4096	/* records per call; a deeper count is still counted */

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

/* VBK_IOC_TREE on the descriptor whose list o is (include/vbus/vrdma-kernel.h). */
int vbk_owner_tree(struct vbk_owner *o, struct vbk_tree __user *up)
{
	struct vbk_tree_node *buf = NULL;
	struct vbk_guest *g;
	struct vbk_tree t;
	int err = 0;
	u32 n = 0;

	if (copy_from_user(&t, up, sizeof(t)))
		return -EFAULT;
	t.count = min_t(u32, t.count, TREE_ROOM_MAX);
	if (t.count) {
		buf = kvcalloc(t.count, sizeof(*buf), GFP_KERNEL);
		if (!buf)
			return -ENOMEM;
	}
	mutex_lock_nested(&o->lock, o->depth);
	g = vbk_owner_guest(o, t.guest_id);
	if (g)
		tree_walk(g, 1, buf, t.count, &n);
	else
		err = -ENOENT;
	mutex_unlock(&o->lock);
	if (!err && copy_to_user(u64_to_user_ptr(t.nodes), buf,
				 (size_t)min(n, t.count) * sizeof(*buf)))
		err = -EFAULT;
	if (!err && put_user(n, &up->count))
		err = -EFAULT;
	kvfree(buf);
	return err;
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
