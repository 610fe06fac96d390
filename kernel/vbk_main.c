// SPDX-License-Identifier: GPL-2.0
/*
 * vbus_vrdma: module init, the admin node /dev/vbus-vrdma and the ib_client that lets go
 * of a backing device when it is unregistered (rdma link delete, rmmod rdma_rxe).
 *
 * The admin descriptor belongs to vbusd. Each VBK_IOC_ATTACH makes a guest attachment on
 * it; closing it (vbusd's exit or death) revokes them all. The module cannot be unloaded
 * while any descriptor is open (the file operations hold it).
 */
#include <linux/module.h>
#include <linux/miscdevice.h>
#include <linux/fs.h>
#include <linux/slab.h>
#include <linux/uaccess.h>
#include "vbk.h"

struct vbk_admin {
	struct kref ref;
	struct vbk_owner o;		/* attachments made here and not yet released */
};

DEFINE_MUTEX(vbk_guests_lock);
LIST_HEAD(vbk_guests);

static void admin_release_ref(struct kref *ref)
{
	kfree(container_of(ref, struct vbk_admin, ref));
}

void vbk_admin_put(struct vbk_admin *a)
{
	kref_put(&a->ref, admin_release_ref);
}

/* A reference to a for a root attachment, and the list it goes on. */
struct vbk_owner *vbk_admin_get(struct vbk_admin *a)
{
	kref_get(&a->ref);
	return &a->o;
}

static int admin_open(struct inode *inode, struct file *f)
{
	struct vbk_admin *a;

	if (!capable(CAP_SYS_ADMIN))
		return -EPERM;
	a = kzalloc(sizeof(*a), GFP_KERNEL);
	if (!a)
		return -ENOMEM;
	kref_init(&a->ref);
	mutex_init(&a->o.lock);
	INIT_LIST_HEAD(&a->o.guests);
	f->private_data = a;
	return 0;
}

/* vbusd is gone: every attachment it made is revoked (with its subtree); the guests keep
 * their descriptors, which now fail every call with -EIO after one IBV_EVENT_DEVICE_FATAL.
 */
static int admin_release(struct inode *inode, struct file *f)
{
	struct vbk_admin *a = f->private_data;
	struct vbk_guest *g;

	mutex_lock(&a->o.lock);
	a->o.closed = true;
	list_for_each_entry(g, &a->o.guests, owner_node)
		vbk_guest_revoke(g);
	mutex_unlock(&a->o.lock);
	vbk_admin_put(a);
	return 0;
}

/* The attachment guest_id made through o, with o->lock held; NULL: none. */
struct vbk_guest *vbk_owner_guest(struct vbk_owner *o, u32 guest_id)
{
	struct vbk_guest *g;

	lockdep_assert_held(&o->lock);
	list_for_each_entry(g, &o->guests, owner_node)
		if (g->guest_id == guest_id)
			return g;
	return NULL;
}

static int guest_stats(struct vbk_owner *o, struct vbk_stats *s)
{
	struct vbk_guest *g;
	int err = -ENOENT;

	mutex_lock_nested(&o->lock, o->depth);
	g = vbk_owner_guest(o, s->guest_id);
	if (g) {
		memset(s, 0, sizeof(*s));
		s->guest_id = g->guest_id;
		s->objects = READ_ONCE(g->live);
		s->pinned_bytes = READ_ONCE(g->pinned);
		s->wqes = atomic64_read(&g->n_wqe);
		s->cqes = atomic64_read(&g->n_cqe);
		s->doorbells = atomic64_read(&g->n_doorbell);
		s->polls = atomic64_read(&g->n_poll);
		s->events = atomic64_read(&g->n_event);
		s->errors = atomic64_read(&g->n_error);
		s->quota_objects = atomic64_read(&g->n_quota_objects);
		s->quota_pinned = atomic64_read(&g->n_quota_pinned);
		s->db_wakes = atomic64_read(&g->n_db_wake);
		s->db_worker = atomic64_read(&g->n_db_worker);
		s->cqes_lost = atomic64_read(&g->n_cqe_lost);
		err = 0;
	}
	mutex_unlock(&o->lock);
	return err;
}

/* VBK_IOC_STATS of any size from VBK_STATS_SIZE_V1 up (its command carries the size): an
 * older caller gets the fields it knows, a newer one zeroes past ours.
 */
static long owner_stats(struct vbk_owner *o, void __user *up, size_t size)
{
	struct vbk_stats s = {};
	int err;

	if (size < VBK_STATS_SIZE_V1)
		return -ENOTTY;
	if (copy_from_user(&s.guest_id, up, sizeof(s.guest_id)))
		return -EFAULT;
	err = guest_stats(o, &s);
	if (err)
		return err;
	if (copy_to_user(up, &s, min(size, sizeof(s))))
		return -EFAULT;
	if (size > sizeof(s) && clear_user((u8 __user *)up + sizeof(s), size - sizeof(s)))
		return -EFAULT;
	return 0;
}

/*
 * VBK_IOC_RES and VBK_IOC_TREE: { guest_id, count, a user pointer to count records }; fill
 * makes the records of guest_id's attachment under the locks (at most room of them,
 * returning how many there are), copied out after. At most max records a call.
 */
struct owner_list {
	u32 guest_id;
	u32 count;
	u64 recs;
};
static_assert(sizeof(struct owner_list) == sizeof(struct vbk_res) &&
	      sizeof(struct owner_list) == sizeof(struct vbk_tree));

static int owner_list(struct vbk_owner *o, struct owner_list __user *up, size_t size, u32 max,
		      u32 (*fill)(struct vbk_guest *g, void *buf, u32 room))
{
	struct owner_list l;
	struct vbk_guest *g;
	void *buf = NULL;
	int err = 0;
	u32 n = 0;

	if (copy_from_user(&l, up, sizeof(l)))
		return -EFAULT;
	l.count = min(l.count, max);
	if (l.count) {
		buf = kvcalloc(l.count, size, GFP_KERNEL);
		if (!buf)
			return -ENOMEM;
	}
	mutex_lock_nested(&o->lock, o->depth);
	g = vbk_owner_guest(o, l.guest_id);
	if (g)
		n = fill(g, buf, l.count);
	else
		err = -ENOENT;
	mutex_unlock(&o->lock);
	if (!err && copy_to_user(u64_to_user_ptr(l.recs), buf, (size_t)min(n, l.count) * size))
		err = -EFAULT;
	if (!err && put_user(n, &up->count))
		err = -EFAULT;
	kvfree(buf);
	return err;
}

static u32 res_fill(struct vbk_guest *g, void *buf, u32 room)
{
	return vbk_guest_res(g, buf, room);
}

static u32 tree_fill(struct vbk_guest *g, void *buf, u32 room)
{
	return vbk_guest_tree(g, buf, room);
}

/* VBK_IOC_REVOKE: the attachments made through o with this tag. 0 or -ENOENT. */
static int owner_revoke(struct vbk_owner *o, u64 tag)
{
	struct vbk_guest *g;
	int err = -ENOENT;

	mutex_lock_nested(&o->lock, o->depth);
	list_for_each_entry(g, &o->guests, owner_node) {
		if (g->tag != tag)
			continue;
		vbk_guest_revoke(g);
		err = 0;
	}
	mutex_unlock(&o->lock);
	return err;
}

/* The ioctls of a descriptor that makes attachments (admin, or a parent attachment) on
 * the ones it made: REVOKE, STATS, RES, TREE. -ENOTTY for any other.
 */
long vbk_owner_ioctl(struct vbk_owner *o, unsigned int cmd, void __user *up)
{
	switch (cmd) {
	case VBK_IOC_REVOKE: {
		u64 tag;

		if (copy_from_user(&tag, up, sizeof(tag)))
			return -EFAULT;
		return owner_revoke(o, tag);
	}

	case VBK_IOC_RES:	/* no table is longer than the handle index allows */
		return owner_list(o, up, sizeof(struct vbk_res_obj), 1u << VRDMA_HANDLE_INDEX_BITS,
				  res_fill);
	case VBK_IOC_TREE:
		return owner_list(o, up, sizeof(struct vbk_tree_node), VBK_TREE_ROOM_MAX,
				  tree_fill);
	default:
		if (_IOC_TYPE(cmd) == VBK_IOC_MAGIC && _IOC_NR(cmd) == _IOC_NR(VBK_IOC_STATS) &&
		    _IOC_DIR(cmd) == (_IOC_READ | _IOC_WRITE))
			return owner_stats(o, up, _IOC_SIZE(cmd));
		return -ENOTTY;
	}
}

static long admin_ioctl(struct file *f, unsigned int cmd, unsigned long arg)
{
	struct vbk_admin *a = f->private_data;
	void __user *up = (void __user *)arg;

	/* VBK_IOC_ATTACH of any size from VBK_ATTACH_SIZE_V1 up (its command carries it); what
	 * a shorter one leaves out is zero: below VBK_ATTACH_SIZE_V3, flags 0 (not foreign).
	 */
	if (_IOC_TYPE(cmd) == VBK_IOC_MAGIC && _IOC_NR(cmd) == _IOC_NR(VBK_IOC_ATTACH) &&
	    _IOC_DIR(cmd) == _IOC_WRITE && _IOC_SIZE(cmd) >= VBK_ATTACH_SIZE_V1) {
		struct vbk_attach at;
		int err = copy_struct_from_user(&at, sizeof(at), up, _IOC_SIZE(cmd));

		if (err)
			return err;
		if (_IOC_SIZE(cmd) < VBK_ATTACH_SIZE_V2) {	/* an older vbusd: all of ours */
			at.qp_types = VRDMA_WL_QP_TYPES;
			at.access = VRDMA_WL_ACCESS;
		}
		return vbk_guest_attach(a, &at);
	}
	return vbk_owner_ioctl(&a->o, cmd, up);
}

/* An attachment joins the list of what o made; max: at most that many (0: no bound).
 * 0, -EIO (o is closed: its descriptor is gone or its attachment revoked) or -EMLINK.
 */
int vbk_owner_add(struct vbk_owner *o, struct vbk_guest *g, u32 max)
{
	int err = 0;

	mutex_lock_nested(&o->lock, o->depth);
	if (o->closed)
		err = -EIO;
	else if (max && o->n >= max)
		err = -EMLINK;
	if (!err) {
		g->owner = o;
		list_add(&g->owner_node, &o->guests);
		o->n++;
	}
	mutex_unlock(&o->lock);
	return err;
}

void vbk_owner_del(struct vbk_guest *g)
{
	struct vbk_owner *o = g->owner;

	mutex_lock_nested(&o->lock, o->depth);
	list_del(&g->owner_node);
	o->n--;
	mutex_unlock(&o->lock);
}

static const struct file_operations admin_fops = {
	.owner = THIS_MODULE,
	.open = admin_open,
	.release = admin_release,
	.unlocked_ioctl = admin_ioctl,
	.compat_ioctl = compat_ptr_ioctl,
	.llseek = noop_llseek,
};

static struct miscdevice admin_dev = {
	.minor = MISC_DYNAMIC_MINOR,
	.name = VBK_DEV_NAME,
	.fops = &admin_fops,
	.mode = 0600,
};

/* A backing device is going away: revoke the attachments on it before the core waits for
 * our references.
 */
static void client_remove(struct ib_device *dev, void *data)
{
	struct vbk_guest *g;

	mutex_lock(&vbk_guests_lock);
	list_for_each_entry(g, &vbk_guests, all_node)
		if (READ_ONCE(g->dev) == dev)
			vbk_guest_revoke(g);
	mutex_unlock(&vbk_guests_lock);
}

static int client_add(struct ib_device *dev)
{
	return 0;
}

static struct ib_client vbk_client = {
	.name = "vbus_vrdma",
	.add = client_add,
	.remove = client_remove,
};

static int __init vbk_init(void)
{
	int err = vbk_dbfd_module_init();

	if (err)
		return err;
	err = ib_register_client(&vbk_client);
	if (err)
		goto err_wq;
	err = misc_register(&admin_dev);
	if (err)
		goto err_client;
	return 0;

err_client:
	ib_unregister_client(&vbk_client);
err_wq:
	vbk_dbfd_module_exit();
	return err;
}

static void __exit vbk_exit(void)
{
	misc_deregister(&admin_dev);
	ib_unregister_client(&vbk_client);
	vbk_dbfd_module_exit();
}

module_init(vbk_init);
module_exit(vbk_exit);
MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("vbus vrdma: guests' RDMA verbs executed in the host kernel");
MODULE_AUTHOR("vbus developers");
