// SPDX-License-Identifier: GPL-2.0
/*
 * Guest attachments: one anonymous-inode descriptor per guest, made by vbusd on its admin
 * descriptor and handed to the guest. The descriptor carries the guest's control calls,
 * doorbells and busy polls (ioctl) and its async events (read, poll). Objects live until
 * the last close of the descriptor (fork and SCM_RIGHTS share it, as a uverbs file), or
 * until the attachment is revoked: vbusd's admin descriptor closed, or the backing
 * device unregistered. A revoked attachment has no objects left; its calls get -EIO and
 * its guest gets one IBV_EVENT_DEVICE_FATAL. A foreign attachment (VBK_ATTACH_F_FOREIGN,
 * vbk_foreign.c) is never handed over: vbusd keeps it for a VM, and it takes ioctls only
 * from vbusd's address space.
 */
#include <linux/anon_inodes.h>
#include <linux/file.h>
#include <linux/fs.h>
#include <linux/poll.h>
#include <linux/sched/mm.h>
#include <linux/slab.h>
#include <linux/uaccess.h>
#include "vbk.h"


/* Queue an async event for the guest; never blocks, any context. A full queue drops the
 * event and counts it as an error (the guest is not reading).
 */
void vbk_event(struct vbk_guest *g, u32 type, u32 handle, u32 port)
{
	unsigned long flags;

	spin_lock_irqsave(&g->ev_lock, flags);
	if (type == IB_EVENT_DEVICE_FATAL) {
		if (g->fatal_sent)
			goto out;
		g->fatal_sent = true;
	}
	if (g->nev < VBK_EVQ_LEN) {
		struct vbk_event *e = &g->evq[(g->ev_head + g->nev) % VBK_EVQ_LEN];

		*e = (struct vbk_event){ .type = type, .handle = handle, .port = port };
		g->nev++;
		atomic64_inc(&g->n_event);
	} else {
		atomic64_inc(&g->n_error);
	}
out:
	spin_unlock_irqrestore(&g->ev_lock, flags);
	wake_up_interruptible(&g->ev_wait);
}

/* Port events of the backing device for its one port, as the guest numbers it (1);
 * device-wide events as they are.
 */
static void port_event(struct ib_event_handler *h, struct ib_event *ev)
{
	struct vbk_guest *g = container_of(h, struct vbk_guest, ib_ev);

	switch (ev->event) {
	case IB_EVENT_PORT_ACTIVE:
	case IB_EVENT_PORT_ERR:
	case IB_EVENT_LID_CHANGE:
	case IB_EVENT_PKEY_CHANGE:
	case IB_EVENT_SM_CHANGE:
	case IB_EVENT_CLIENT_REREGISTER:
	case IB_EVENT_GID_CHANGE:
		if (ev->element.port_num == g->port)
			vbk_event(g, ev->event, 0, 1);
		break;
	case IB_EVENT_DEVICE_FATAL:
		vbk_event(g, ev->event, 0, 0);
		break;
	default:
		break;
	}
}

/*
 * Revoke: the children first (each with its own subtree), then destroy every object and
 * let go of the device. Idempotent; takes ctl, so it waits for a control call in flight,
 * and tbl (inside vbk_obj_free) so that no doorbell or poll is inside the table while it
 * goes. No child is made after it (kids.closed).
 */
void vbk_guest_revoke(struct vbk_guest *g)
{
	struct vbk_guest *c;

	mutex_lock_nested(&g->kids.lock, g->kids.depth);
	g->kids.closed = true;
	list_for_each_entry(c, &g->kids.guests, owner_node)
		vbk_guest_revoke(c);
	mutex_unlock(&g->kids.lock);

	mutex_lock(&g->ctl);
	if (!g->dead) {
		down_write(&g->tbl);
		g->dead = true;
		up_write(&g->tbl);
		vbk_dbfd_stop(g);	/* a drain still queued finds it dead */
		vbk_obj_destroy_all(g);
		vbk_foreign_stop(g);	/* no CQ is left to queue its worker */
		if (g->ib_ev_registered)
			ib_unregister_event_handler(&g->ib_ev);
		g->ib_ev_registered = false;
		ib_device_put(g->dev);
		WRITE_ONCE(g->dev, NULL);
		vbk_event(g, IB_EVENT_DEVICE_FATAL, 0, 0);
	}
	mutex_unlock(&g->ctl);
}

static long guest_ioctl(struct file *f, unsigned int cmd, unsigned long arg)
{
	struct vbk_guest *g = f->private_data;

	/* A foreign attachment serves only the address space that made it (vbusd's threads):
	 * not a forked child, nor a process it was passed to.
	 */
	if (g->foreign && current->mm != g->mm)
		return -EPERM;
	switch (cmd) {
	case VBK_IOC_DOORBELL:
		return vbk_doorbell(g, (u32)arg);
	case VBK_IOC_DOORBELL_FD:
		return vbk_dbfd_set(g, (int)arg);
	case VBK_IOC_POLL_CQ:
		return vbk_poll_cq(g, (u32)arg);
	case VBK_IOC_CALL: {
		struct vbk_call c;

		if (copy_from_user(&c, (void __user *)arg, sizeof(c)))
			return -EFAULT;
		vbk_guest_note_user(g);
		return vbk_call(g, &c);
	}
	case VBK_IOC_CHILD:
		if (g->foreign)
			return -EPERM;	/* its memory is a VM's: nobody else's to share */
		return vbk_guest_child(g, (const struct vbk_child __user *)arg);
	default:	/* REVOKE, STATS, RES of its children */
		return vbk_owner_ioctl(&g->kids, cmd, (void __user *)arg);
	}
}

static ssize_t guest_read(struct file *f, char __user *buf, size_t len, loff_t *pos)
{
	struct vbk_guest *g = f->private_data;
	struct vbk_event e;
	size_t done = 0;
	int err;

	if (len < sizeof(e))
		return -EINVAL;
	for (;;) {
		spin_lock_irq(&g->ev_lock);
		if (g->nev)
			break;
		spin_unlock_irq(&g->ev_lock);
		if (f->f_flags & O_NONBLOCK)
			return -EAGAIN;
		err = wait_event_interruptible(g->ev_wait, READ_ONCE(g->nev));
		if (err)
			return err;
	}
	while (g->nev && len - done >= sizeof(e)) {
		e = g->evq[g->ev_head];
		g->ev_head = (g->ev_head + 1) % VBK_EVQ_LEN;
		g->nev--;
		spin_unlock_irq(&g->ev_lock);
		if (copy_to_user(buf + done, &e, sizeof(e)))
			return done ? done : -EFAULT;
		done += sizeof(e);
		spin_lock_irq(&g->ev_lock);
	}
	spin_unlock_irq(&g->ev_lock);
	return done;
}

static __poll_t guest_poll(struct file *f, struct poll_table_struct *pt)
{
	struct vbk_guest *g = f->private_data;

	poll_wait(f, &g->ev_wait, pt);
	return READ_ONCE(g->nev) ? EPOLLIN | EPOLLRDNORM : 0;
}

static void guest_free(struct kref *ref)
{
	struct vbk_guest *g = container_of(ref, struct vbk_guest, ref);

	if (g->parent)
		vbk_guest_put(g->parent);
	vbk_foreign_put(g);
	put_pid(g->user);
	xa_destroy(&g->mrs);
	kvfree(g->objs);
	kfree(g);
}

/* The last reference: the descriptor's, or the last child's. */
void vbk_guest_put(struct vbk_guest *g)
{
	kref_put(&g->ref, guest_free);
}

/* The last close: the guest's objects go, as a uverbs file's do, and its children are
 * revoked; the structure lives on while they exist (each holds a reference).
 */
static int guest_release(struct inode *inode, struct file *f)
{
	struct vbk_guest *g = f->private_data;

	mutex_lock(&vbk_guests_lock);
	list_del(&g->all_node);
	mutex_unlock(&vbk_guests_lock);
	vbk_owner_del(g);
	if (g->admin)
		vbk_admin_put(g->admin);
	vbk_guest_revoke(g);
	vbk_guest_put(g);
	return 0;
}

static const struct file_operations guest_fops = {
	.owner = THIS_MODULE,
	.release = guest_release,
	.unlocked_ioctl = guest_ioctl,
	.compat_ioctl = compat_ptr_ioctl,
	.read = guest_read,
	.poll = guest_poll,
	.llseek = noop_llseek,
};

/*
 * A new attachment on dev (whose reference it takes over) and port, its limits set by the
 * caller; then vbk_guest_publish. NULL: no memory.
 */
struct vbk_guest *vbk_guest_new(struct ib_device *dev, u32 port, u32 depth)
{
	struct vbk_guest *g = kzalloc(sizeof(*g), GFP_KERNEL);

	if (!g)
		return NULL;
	kref_init(&g->ref);
	g->dev = dev;
	g->port = port;
	g->depth = depth;
	mutex_init(&g->kids.lock);
	INIT_LIST_HEAD(&g->kids.guests);
	g->kids.depth = depth;
	mutex_init(&g->ctl);
	init_rwsem(&g->tbl);
	xa_init(&g->mrs);
	spin_lock_init(&g->ev_lock);
	init_waitqueue_head(&g->ev_wait);
	vbk_foreign_init(g);
	vbk_dbfd_init(g);
	INIT_IB_EVENT_HANDLER(&g->ib_ev, dev, port_event);
	ib_register_event_handler(&g->ib_ev);
	g->ib_ev_registered = true;
	return g;
}

/* A new attachment that never had a descriptor: freed with what it holds. */
static void guest_discard(struct vbk_guest *g)
{
	ib_unregister_event_handler(&g->ib_ev);
	ib_device_put(g->dev);
	vbk_foreign_put(g);
	kfree(g);
}

/*
 * Put g on owner o's list (at most max there, 0: no bound) and the global one, and make
 * its descriptor. The new descriptor, or -errno with g freed (its device reference
 * dropped; the caller drops what it holds for g->admin or g->parent).
 */
int vbk_guest_publish(struct vbk_guest *g, struct vbk_owner *o, u32 max)
{
	int fd, err;

	err = vbk_owner_add(o, g, max);
	if (err)
		goto err_free;
	mutex_lock(&vbk_guests_lock);
	list_add(&g->all_node, &vbk_guests);
	mutex_unlock(&vbk_guests_lock);
	fd = anon_inode_getfd("[vbus-vrdma]", &guest_fops, g, O_RDWR | O_CLOEXEC);
	if (fd >= 0)
		return fd;
	err = fd;
	mutex_lock(&vbk_guests_lock);
	list_del(&g->all_node);
	mutex_unlock(&vbk_guests_lock);
	vbk_owner_del(g);
err_free:
	guest_discard(g);
	return err;
}

/*
 * What g's whitelist lacks (docs/nesting.md): -EPERM, and a line in the kernel log naming
 * the call's kind and the value refused (rate-limited: a guest can ask as fast as it likes).
 */
int vbk_refuse(struct vbk_guest *g, const char *what, u32 value)
{
	pr_info_ratelimited("vbus_vrdma: guest %u: %s %#x not in its whitelist (QP types %#x, access %#x): EPERM\n",
			    g->guest_id, what, value, g->qp_types, g->access);
	return -EPERM;
}

/* VBK_IOC_ATTACH: returns the new descriptor, or -errno. */
int vbk_guest_attach(struct vbk_admin *a, const struct vbk_attach *at)
{
	struct vbk_owner *o;
	struct vbk_guest *g;
	struct ib_device *dev;
	int fd, err;

	if (memchr(at->ibdev, 0, sizeof(at->ibdev)) == NULL || !at->ibdev[0] ||
	    !vbk_zero(at->reserved0, sizeof(at->reserved0)) ||
	    !at->max_objects || (at->qp_types & ~VRDMA_WL_QP_TYPES) ||
	    (at->access & ~VRDMA_WL_ACCESS) || (at->flags & ~VBK_ATTACH_F_FOREIGN))
		return -EINVAL;
	dev = ib_device_get_by_name(at->ibdev, RDMA_DRIVER_UNKNOWN);
	if (!dev)
		return -ENODEV;
	if (!rdma_is_port_valid(dev, at->port)) {
		ib_device_put(dev);
		return -EINVAL;
	}
	g = vbk_guest_new(dev, at->port, 0);
	if (!g) {
		ib_device_put(dev);
		return -ENOMEM;
	}
	if (at->flags & VBK_ATTACH_F_FOREIGN) {
		err = vbk_foreign_attach(g, at->ram_fd);
		if (err) {
			guest_discard(g);
			return err;
		}
	}
	g->gid_index = at->gid_index;
	g->max_objects = at->max_objects;
	g->max_pinned = at->max_pinned_bytes;
	g->qp_types = at->qp_types;
	g->access = at->access;
	g->guest_id = at->guest_id;
	g->tag = at->tag;
	o = vbk_admin_get(a);
	g->admin = a;
	fd = vbk_guest_publish(g, o, 0);
	if (fd < 0)
		vbk_admin_put(a);
	return fd;
}
