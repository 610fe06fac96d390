// SPDX-License-Identifier: GPL-2.0
/*
 * Child attachments (docs/nesting.md, "Passthrough"): VBK_IOC_CHILD on an attachment's
 * descriptor makes a new attachment on the same device and port, with limits no wider than
 * what is left of its parent's, and the charges that keep a subtree within its root.
 *
 * A middle vbusd (itself a guest on this backend) hands a child of its own attachment to
 * its guest, so that the nested guest's calls, doorbells and polls come here in its own
 * system calls: no middle level is on its data path.
 *
 * Charges: every attachment counts its own and its subtree's handles and pinned bytes
 * (t_objs, t_pinned) against its own limits; an object's charge goes to its attachment and
 * every ancestor, all or none. The counters are atomics, so that a child's control call
 * (under the child's ctl only) never waits for an ancestor's lock.
 */
#include <linux/uaccess.h>
#include "vbk.h"

/* Charge objs handles and bytes pinned bytes to g and its ancestors, each within its own
 * limits. 0, -EDQUOT (handles) or -ENOMEM (bytes, as the relay's max-pinned); nothing is
 * charged then.
 */
int vbk_charge(struct vbk_guest *g, int objs, u64 bytes)
{
	struct vbk_guest *x, *y;
	int err = 0;

	for (x = g; x; x = x->parent) {
		bool over_o = objs && (u32)atomic_add_return(objs, &x->t_objs) > x->max_objects;
		bool over_p = bytes &&
			      (u64)atomic64_add_return(bytes, &x->t_pinned) > x->max_pinned;

		if (!over_o && !over_p)
			continue;
		err = over_o ? -EDQUOT : -ENOMEM;
		atomic64_inc(over_o ? &g->n_quota_objects : &g->n_quota_pinned);
		if (x == g)
			pr_info_ratelimited("vbus_vrdma: guest %u: quota %s (%llu) reached: %s\n",
					    g->guest_id, over_o ? "max-objects" : "max-pinned",
					    over_o ? (u64)x->max_objects : x->max_pinned,
					    over_o ? "EDQUOT" : "ENOMEM");
		else
			pr_info_ratelimited("vbus_vrdma: guest %u: its ancestor's (guest %u, depth %u) quota %s (%llu) reached: %s\n",
					    g->guest_id, x->guest_id, x->depth,
					    over_o ? "max-objects" : "max-pinned",
					    over_o ? (u64)x->max_objects : x->max_pinned,
					    over_o ? "EDQUOT" : "ENOMEM");
		x = x->parent;
		break;
	}
	if (!err)
		return 0;
	for (y = g; y != x; y = y->parent) {	/* up to the one that refused, included */
		atomic_sub(objs, &y->t_objs);
		atomic64_sub(bytes, &y->t_pinned);
	}
	return err;
}

void vbk_uncharge(struct vbk_guest *g, int objs, u64 bytes)
{
	for (; g; g = g->parent) {
		atomic_sub(objs, &g->t_objs);
		atomic64_sub(bytes, &g->t_pinned);
	}
}

/*
 * The checks of a child's limits against its parent's: wider than the parent's limits is
 * -EPERM, within them but above what is left (its subtree's charges now) -EDQUOT.
 */
static int child_check(struct vbk_guest *p, const struct vbk_child *c)
{
	u32 objs_used = (u32)atomic_read(&p->t_objs);
	u64 pinned_used = (u64)atomic64_read(&p->t_pinned);

	if ((c->flags & ~VBK_CHILD_F_WHITELIST) || c->reserved || !c->max_objects ||
	    (!(c->flags & VBK_CHILD_F_WHITELIST) && (c->qp_types || c->access)))
		return -EINVAL;
	if (c->max_objects > p->max_objects || c->max_pinned_bytes > p->max_pinned ||
	    c->gid_index != p->gid_index) {
		pr_info_ratelimited("vbus_vrdma: guest %u: child %u refused: wider than its parent (max-objects %u > %u, max-pinned %llu > %llu or gid %u != %u): EPERM\n",
				    p->guest_id, c->guest_id, c->max_objects, p->max_objects,
				    c->max_pinned_bytes, p->max_pinned, c->gid_index,
				    p->gid_index);
		return -EPERM;
	}
	if ((c->flags & VBK_CHILD_F_WHITELIST) &&
	    ((c->qp_types & ~p->qp_types) || (c->access & ~p->access))) {
		pr_info_ratelimited("vbus_vrdma: guest %u: child %u refused: a whitelist wider than its parent's (QP types %#x of %#x, access %#x of %#x): EPERM\n",
				    p->guest_id, c->guest_id, c->qp_types, p->qp_types,
				    c->access, p->access);
		return -EPERM;
	}
	if (c->max_objects > p->max_objects - min(objs_used, p->max_objects) ||
	    c->max_pinned_bytes > p->max_pinned - min(pinned_used, p->max_pinned)) {
		pr_info_ratelimited("vbus_vrdma: guest %u: child %u refused: its parent has %u objects and %llu bytes left: EDQUOT\n",
				    p->guest_id, c->guest_id,
				    p->max_objects - min(objs_used, p->max_objects),
				    p->max_pinned - min(pinned_used, p->max_pinned));
		return -EDQUOT;
	}
	return 0;
}

/* VBK_IOC_CHILD: the child's descriptor, or -errno (include/vbus/vrdma-kernel.h). */
int vbk_guest_child(struct vbk_guest *p, const struct vbk_child __user *up)
{
	struct ib_device *dev;
	struct vbk_guest *g;
	struct vbk_child c;
	int err;

	if (copy_from_user(&c, up, sizeof(c)))
		return -EFAULT;
	err = child_check(p, &c);
	if (err)
		return err;
	if (p->depth >= VBK_MAX_DEPTH)
		return -ELOOP;
	/* The parent's device, while it holds it (a revoked parent has none: -EIO). */
	mutex_lock(&p->ctl);
	dev = p->dead ? NULL : p->dev;
	if (dev && !ib_device_try_get(dev))
		dev = NULL;
	mutex_unlock(&p->ctl);
	if (!dev)
		return -EIO;
	g = vbk_guest_new(dev, p->port, p->depth + 1);
	if (!g) {
		ib_device_put(dev);
		return -ENOMEM;
	}
	g->gid_index = c.gid_index;
	g->max_objects = c.max_objects;
	g->max_pinned = c.max_pinned_bytes;
	g->qp_types = c.flags & VBK_CHILD_F_WHITELIST ? c.qp_types : p->qp_types;
	g->access = c.flags & VBK_CHILD_F_WHITELIST ? c.access : p->access;
	g->guest_id = c.guest_id;
	g->tag = c.tag;
	kref_get(&p->ref);
	g->parent = p;
	err = vbk_guest_publish(g, &p->kids, VBK_MAX_CHILDREN);
	if (err < 0)
		vbk_guest_put(p);
	return err;
}
