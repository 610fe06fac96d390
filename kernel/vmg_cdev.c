// SPDX-License-Identifier: GPL-2.0
/*
 * vbus_vmguest: /dev/vbus-vmN and its ioctls (include/vbus/vm.h). Every ioctl runs under
 * dev->lock and fails with -ENODEV once the device is gone. read(), write() and poll() are
 * the message channel's (vmg_chan.c).
 */
#include <linux/fs.h>
#include <linux/io.h>
#include <linux/slab.h>
#include <linux/uaccess.h>
#include "vmg.h"

static int vmg_open(struct inode *inode, struct file *f)
{
	/* misc_open set private_data to our miscdevice; misc_deregister waits for us. */
	struct vmg_dev *dev = container_of(f->private_data, struct vmg_dev, misc);
	struct vmg_file *fl = kzalloc(sizeof(*fl), GFP_KERNEL);

	if (!fl)
		return -ENOMEM;
	kref_get(&dev->ref);
	fl->dev = dev;
	fl->file = f;
	fl->slot = -1;
	INIT_LIST_HEAD(&fl->node);
	INIT_LIST_HEAD(&fl->pins);
	INIT_LIST_HEAD(&fl->sigs);
	INIT_LIST_HEAD(&fl->ev_node);
	f->private_data = fl;
	return 0;
}

static int vmg_release(struct inode *inode, struct file *f)
{
	struct vmg_file *fl = f->private_data;
	struct vmg_dev *dev = fl->dev;

	mutex_lock(&dev->lock);
	if (!dev->gone) {
		vmg_irq_unbind_file(dev, f);
		vmg_chan_release(fl);
	}
	mutex_unlock(&dev->lock);
	kvfree(fl->ans);	/* an answer it never read */
	kfree(fl);
	vmg_dev_put(dev);
	return 0;
}

/* A vector argument: below the usable vectors, its reserved field zero. */
static bool vmg_vector_ok(struct vmg_dev *dev, u32 vector, u32 reserved)
{
	return !reserved && vector < dev->nvectors;
}

static long vmg_info(struct vmg_dev *dev, void __user *arg)
{
	struct vbus_vm_info info = {
		.version = dev->version,
		.vm_peer = dev->vm_peer,
		.host_peer = dev->host_peer,
		.vectors = dev->nvectors,
		.bar2_size = dev->bar2_size,
	};

	memcpy(info.bus, dev->bus, sizeof(info.bus));
	return copy_to_user(arg, &info, sizeof(info)) ? -EFAULT : 0;
}

/* The host's doorbell: the peer is always the host's, a process cannot address another. */
static long vmg_ring(struct vmg_dev *dev, void __user *arg)
{
	struct vbus_vm_ring r;

	if (copy_from_user(&r, arg, sizeof(r)))
		return -EFAULT;
	if (!vmg_vector_ok(dev, r.vector, r.reserved))
		return -EINVAL;
	vmg_ring_vector(dev, r.vector);
	return 0;
}

static long vmg_irqfd(struct vmg_dev *dev, struct file *f, void __user *arg)
{
	struct vbus_vm_irqfd b;

	if (copy_from_user(&b, arg, sizeof(b)))
		return -EFAULT;
	if (b.flags || !vmg_vector_ok(dev, b.vector, b.reserved) || b.fd < -1)
		return -EINVAL;
	return vmg_irq_bind(dev, f, b.vector, b.fd);
}

static long vmg_counts(struct vmg_dev *dev, void __user *arg)
{
	struct vbus_vm_counts c;

	if (copy_from_user(&c, arg, sizeof(c)))
		return -EFAULT;
	if (!vmg_vector_ok(dev, c.vector, c.reserved))
		return -EINVAL;
	c.interrupts = atomic64_read(&dev->vec[c.vector].interrupts);
	c.doorbells = atomic64_read(&dev->vec[c.vector].doorbells);
	return copy_to_user(arg, &c, sizeof(c)) ? -EFAULT : 0;
}

static long vmg_ioctl(struct file *f, unsigned int cmd, unsigned long arg)
{
	struct vmg_file *fl = f->private_data;
	struct vmg_dev *dev = fl->dev;
	void __user *uarg = (void __user *)arg;
	long ret;

	/* These wait for the bus without dev->lock (the channel takes it). */
	switch (cmd) {
	case VBUS_VM_IOC_SHM:
		return vmg_shm_ioctl(fl, uarg);
	case VBUS_VM_IOC_SHMREVOKE:
		return vmg_shmrevoke_ioctl(fl, uarg);
	case VBUS_VM_IOC_SIG:
		return vmg_sig_ioctl(fl, uarg);
	case VBUS_VM_IOC_SIGREVOKE:
		return vmg_sigrevoke_ioctl(fl, uarg);
	}
	mutex_lock(&dev->lock);
	if (dev->gone) {
		ret = -ENODEV;
		goto out;
	}
	switch (cmd) {
	case VBUS_VM_IOC_INFO:
		ret = vmg_info(dev, uarg);
		break;
	case VBUS_VM_IOC_RING:
		ret = vmg_ring(dev, uarg);
		break;
	case VBUS_VM_IOC_IRQFD:
		ret = vmg_irqfd(dev, f, uarg);
		break;
	case VBUS_VM_IOC_COUNTS:
		ret = vmg_counts(dev, uarg);
		break;
	case VBUS_VM_IOC_EVENTFD:
		ret = vmg_ev_bind_ioctl(fl, uarg);
		break;
	case VBUS_VM_IOC_EVENT:
		ret = vmg_ev_take_ioctl(fl, uarg);
		break;
	default:
		ret = -ENOTTY;
	}
out:
	mutex_unlock(&dev->lock);
	return ret;
}

static const struct file_operations vmg_fops = {
	.owner = THIS_MODULE,
	.open = vmg_open,
	.release = vmg_release,
	.write = vmg_chan_write,
	.read = vmg_chan_read,
	.poll = vmg_chan_poll,
	.unlocked_ioctl = vmg_ioctl,
	.compat_ioctl = compat_ptr_ioctl,
	.llseek = noop_llseek,
};

int vmg_cdev_register(struct vmg_dev *dev)
{
	dev->misc.minor = MISC_DYNAMIC_MINOR;
	dev->misc.name = dev->name;
	dev->misc.fops = &vmg_fops;
	dev->misc.parent = &dev->pdev->dev;
	dev->misc.mode = 0600;
	return misc_register(&dev->misc);
}

void vmg_cdev_unregister(struct vmg_dev *dev)
{
	misc_deregister(&dev->misc);
}
