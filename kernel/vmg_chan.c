// SPDX-License-Identifier: GPL-2.0
/*
 * vbus_vmguest: the message channel (include/vbus/vm.h, docs/vm.md "The message channel").
 * write() posts one connector message in BAR2's request area and rings vector 0; vbusd
 * answers in the response area and interrupts vector 0; read() returns the answer.
 *
 * One request is outstanding at a time on the device, and the channel belongs to one open
 * file (its connection on the bus): the first that writes, until it is closed; closing it
 * posts a RESET so that vbusd ends that connection. Everything runs under dev->lock except
 * the sleeps, which wait on chan->wq without it (remove wakes them).
 */
#include <linux/delay.h>
#include <linux/fs.h>
#include <linux/io.h>
#include <linux/mm.h>
#include <linux/slab.h>
#include <linux/uaccess.h>
#include <vbus/proto.h>
#include "vmg.h"

/* Whether the range [off, off + len) lies in BAR2 after the header and misses [o2, o2 + l2). */
static bool vmg_range_ok(struct vmg_dev *dev, u64 off, u64 len, u64 o2, u64 l2)
{
	return off % PAGE_SIZE == 0 && off >= sizeof(struct vbus_vm_bar2) &&
	       off + len <= dev->bar2_size && (off + len <= o2 || o2 + l2 <= off);
}

/* Whether [off, off + len) lies in BAR2 after the header and misses the channel's three
 * areas (the event ring's check, vmg_ev.c). */
bool vmg_chan_range_free(struct vmg_dev *dev, u64 off, u64 len)
{
	struct vmg_chan *ch = &dev->chan;

	return vmg_range_ok(dev, off, len, ch->ctl_off, VBUS_VM_CHAN_SIZE) &&
	       vmg_range_ok(dev, off, len, ch->req_off, ch->msg_max) &&
	       vmg_range_ok(dev, off, len, ch->resp_off, ch->msg_max);
}

/**
 * vmg_chan_parse() - take the channel's geometry from the header vbusd wrote
 * @dev: the device, dev->bar2_size set
 * @h: the header, as read once from BAR2 (header_size covers the channel's fields)
 * @bar2: BAR2's mapping
 *
 * The host is not trusted to be right: a channel whose areas leave BAR2 or overlap is not
 * used (logged); the device still works without it.
 */
void vmg_chan_parse(struct vmg_dev *dev, const struct vbus_vm_bar2 *h, void __iomem *bar2)
{
	struct vmg_chan *ch = &dev->chan;
	u64 c = le32_to_cpu(h->chan_offset), rq = le32_to_cpu(h->req_offset);
	u64 rs = le32_to_cpu(h->resp_offset), max = le32_to_cpu(h->msg_max);

	if (!(le32_to_cpu(h->features) & VBUS_VM_F_CHAN))
		return;
	if (max < sizeof(struct vbus_msg) || max > VBUS_VM_MSG_MAX ||
	    !vmg_range_ok(dev, c, VBUS_VM_CHAN_SIZE, rq, max) ||
	    !vmg_range_ok(dev, rq, max, rs, max) ||
	    !vmg_range_ok(dev, rs, max, c, VBUS_VM_CHAN_SIZE)) {
		dev_err(&dev->pdev->dev,
			"bad message channel: chan %#llx req %#llx resp %#llx max %llu in %llu bytes: not used\n",
			c, rq, rs, max, (u64)dev->bar2_size);
		return;
	}
	ch->ctl = bar2 + c;
	ch->req = bar2 + rq;
	ch->resp = bar2 + rs;
	ch->msg_max = max;
	ch->ctl_off = c;
	ch->req_off = rq;
	ch->resp_off = rs;
	ch->present = true;
	vmg_ev_parse(dev, h, bar2);
	vmg_beat_parse(dev, h);
}

/* Under dev->lock: post a request of @kind (@n bytes of @buf for a message) and ring. */
static void vmg_chan_post(struct vmg_dev *dev, u32 kind, const void *buf, u32 n)
{
	struct vmg_chan *ch = &dev->chan;

	lockdep_assert_held(&dev->lock);
	if (n)
		memcpy_toio(ch->req, buf, n);
	writel(n, &ch->ctl->req_len);
	writel(kind, &ch->ctl->req_kind);
	/* The message and its fields are in BAR2 before the new req_seq: pairs with vbusd's
	 * acquire load of req_seq (verbs-host/vm_chan.c).
	 */
	wmb();
	ch->seq++;
	writel(ch->seq, &ch->ctl->req_seq);
	ch->pending = true;
	ch->reset = kind == VBUS_VM_CHAN_RESET;
	writel(dev->host_peer << 16 | 0, dev->regs + VMG_REG_DOORBELL);
	atomic64_inc(&dev->vec[0].doorbells);
}

/* Under dev->lock: whether vbusd answered the last request. */
static bool vmg_chan_answered(struct vmg_chan *ch)
{
	return readl(&ch->ctl->resp_seq) == ch->seq;
}

/* Without the lock (a wait's condition): vector 0 interrupted since @snap was taken, or
 * the device went. An event count, not resp_seq: a host that moves resp_seq back after its
 * interrupt cannot make a waiter spin, and an interrupt after the snapshot is never lost.
 */
static bool vmg_chan_woken(struct vmg_dev *dev, int snap)
{
	return atomic_read(&dev->chan.irqs) != snap || READ_ONCE(dev->gone) ||
	       READ_ONCE(dev->chan.host_gone);
}

/* Under dev->lock: a RESET that was answered leaves the channel idle, and the regions of
 * the connection it ended are no longer mapped by vbusd: their pages are unpinned. */
static void vmg_chan_settle(struct vmg_chan *ch)
{
	if (ch->pending && ch->reset && vmg_chan_answered(ch)) {
		ch->pending = false;
		vmg_pins_free(&ch->dead);
	}
}

/* Under dev->lock: the connection ends; its regions wait for the RESET's answer. */
static void vmg_chan_bury(struct vmg_chan *ch)
{
	if (ch->inflight)
		list_add_tail(&ch->inflight->node, &ch->dead);
	ch->inflight = NULL;
	ch->driver = false;
	list_splice_tail_init(&ch->pins, &ch->dead);
}

/* Under dev->lock: 0 when the channel can be used. */
static int vmg_chan_usable(struct vmg_dev *dev)
{
	lockdep_assert_held(&dev->lock);
	if (dev->gone)
		return -ENODEV;
	if (!dev->chan.present)
		return -EOPNOTSUPP;
	return dev->chan.host_gone ? -ECONNRESET : 0;	/* vbusd died (vmg_beat.c) */
}

/* vbusd's heartbeat stopped: the owner's connection is dead, and so is every later one
 * (ECONNRESET); the owner gets a DISCONNECTED event, sleepers wake. */
void vmg_chan_host_gone(struct vmg_dev *dev)
{
	mutex_lock(&dev->lock);
	if (!dev->gone && !dev->chan.host_gone) {
		WRITE_ONCE(dev->chan.host_gone, true);
		vmg_ev_host_gone(dev);
	}
	mutex_unlock(&dev->lock);
	wake_up_all(&dev->chan.wq);
}

/* Probe, interrupts ready: end whatever connection an earlier driver left to vbusd. */
void vmg_chan_start(struct vmg_dev *dev)
{
	struct vmg_chan *ch = &dev->chan;

	if (!ch->present)
		return;
	mutex_lock(&dev->lock);
	ch->seq = readl(&ch->ctl->req_seq);
	vmg_chan_post(dev, VBUS_VM_CHAN_RESET, NULL, 0);
	mutex_unlock(&dev->lock);
}

/* Vector 0's interrupt (hard interrupt context): count it, wake the waiters. */
void vmg_chan_irq(struct vmg_dev *dev)
{
	struct vmg_chan *ch = &dev->chan;

	vmg_ev_irq(dev);
	atomic_inc(&ch->irqs);
	wake_up_all(&ch->wq);
}

/* Remove, under dev->lock, before gone is set: end the owner's connection. */
void vmg_chan_remove(struct vmg_dev *dev)
{
	struct vmg_chan *ch = &dev->chan;

	lockdep_assert_held(&dev->lock);
	if (ch->present && ch->owner) {
		vmg_ev_unbind(dev, ch->owner);
		vmg_sigs_free(dev, ch->owner);	/* no wake-up rings from now on */
		vmg_chan_bury(ch);
		vmg_chan_post(dev, VBUS_VM_CHAN_RESET, NULL, 0);
	}
	ch->owner = NULL;
	if (list_empty(&ch->dead))
		return;
	/* Pinned pages may be unpinned only once vbusd has unmapped them: give it a second
	 * to answer the RESET (the interrupt is not needed: resp_seq is read directly).
	 */
	for (int i = 0; i < 100 && !vmg_chan_answered(ch); i++)
		msleep(10);
	vmg_chan_settle(ch);
	if (!list_empty(&ch->dead)) {
		dev_warn(&dev->pdev->dev,
			 "vbusd did not answer the RESET: pinned regions stay pinned (leaked)\n");
		vmg_pins_leak(&ch->dead);
	}
}

/* @f is being released, under dev->lock, the device not gone: end its connection. */
void vmg_chan_release(struct vmg_dev *dev, struct file *f)
{
	struct vmg_chan *ch = &dev->chan;

	lockdep_assert_held(&dev->lock);
	if (!ch->present || ch->owner != f)
		return;
	ch->owner = NULL;
	vmg_ev_unbind(dev, f);
	vmg_sigs_free(dev, f);
	vmg_chan_bury(ch);
	/* An unanswered request of f's is overwritten: vbusd serves the newest one. */
	vmg_chan_post(dev, VBUS_VM_CHAN_RESET, NULL, 0);
}

/* Sleep until vector 0 interrupts after @snap (taken under dev->lock before looking at
 * resp_seq) or remove wakes us; 0, -EAGAIN or -ERESTARTSYS.
 */
static int vmg_chan_wait(struct vmg_dev *dev, struct file *f, int snap)
{
	if (f->f_flags & O_NONBLOCK)
		return -EAGAIN;
	return wait_event_interruptible(dev->chan.wq, vmg_chan_woken(dev, snap));
}

/* The driver's own requests wait whatever O_NONBLOCK says, and only a fatal signal stops
 * them: the request stays posted and the file's release ends the connection. */
static int vmg_chan_wait_killable(struct vmg_dev *dev, int snap)
{
	return wait_event_killable(dev->chan.wq, vmg_chan_woken(dev, snap)) ? -EINTR : 0;
}

/* Under dev->lock, before reading resp_seq: the event count to wait on if it is stale. */
static int vmg_chan_snap(struct vmg_chan *ch)
{
	int snap = atomic_read(&ch->irqs);

	/* The count before resp_seq: pairs with the interrupt's increment, which comes after
	 * vbusd wrote resp_seq.
	 */
	smp_rmb();
	return snap;
}

/*
 * Post @n bytes of @buf as @f's request: 0 with dev->lock held, or -errno without it.
 * @driver: the driver's own request (waits killable, whatever O_NONBLOCK says).
 */
static int vmg_chan_send(struct vmg_dev *dev, struct file *f, const void *buf, u32 n,
			 bool driver)
{
	struct vmg_chan *ch = &dev->chan;
	int ret, snap;

	for (;;) {
		mutex_lock(&dev->lock);
		ret = vmg_chan_usable(dev);
		if (ret)
			break;
		snap = vmg_chan_snap(ch);
		vmg_chan_settle(ch);
		if (n > ch->msg_max) {
			ret = -EMSGSIZE;
		} else if ((ch->owner && ch->owner != f) || (ch->pending && !ch->reset)) {
			ret = -EBUSY;	/* another file's channel, or our answer is unread */
		} else if (!ch->pending) {
			vmg_chan_post(dev, VBUS_VM_CHAN_MSG, buf, n);
			if (ch->owner != f)
				ch->conn = ch->seq;	/* a new connection (vbusd's conn_seq) */
			ch->owner = f;
			ch->driver = driver;
			return 0;
		} else {
			/* A previous owner's RESET is in flight: wait for its answer. */
			mutex_unlock(&dev->lock);
			ret = driver ? vmg_chan_wait_killable(dev, snap) : vmg_chan_wait(dev, f, snap);
			if (ret)
				return ret;
			continue;
		}
		break;
	}
	mutex_unlock(&dev->lock);
	return ret;
}

static bool vmg_chan_driver_op(__le32 op)
{
	switch (le32_to_cpu(op)) {
	case VBUS_OP_DEVSHM:
	case VBUS_OP_DEVSIG:
	case VBUS_OP_SIGREVOKE:
		return true;
	}
	return false;
}

ssize_t vmg_chan_write(struct file *f, const char __user *ubuf, size_t n, loff_t *pos)
{
	struct vmg_dev *dev = f->private_data;
	ssize_t ret;
	void *buf;

	if (!n || n > VBUS_VM_MSG_MAX)
		return -EMSGSIZE;
	buf = vmemdup_user(ubuf, n);	/* copied before any lock: it may fault */
	if (IS_ERR(buf))
		return PTR_ERR(buf);
	/* A region's guest-physical pages are named only by the driver (vmg_shm.c): a DEVSHM
	 * written here could name any page of the VM, another process's or the kernel's.
	 * Signals too (vmg_sig.c): the driver keeps the binding of each vector the bus gives.
	 */
	if (n >= sizeof(struct vbus_msg) && vmg_chan_driver_op(((struct vbus_msg *)buf)->op)) {
		kvfree(buf);
		return -EPERM;
	}
	ret = vmg_chan_send(dev, f, buf, n, false);
	if (!ret) {
		mutex_unlock(&dev->lock);
		ret = n;
	}
	kvfree(buf);
	return ret;
}

/**
 * vmg_chan_call() - the driver's own request and its answer (vmg_shm.c)
 * @dev: the device
 * @f: the file whose connection it is
 * @req: the message
 * @n: its length
 * @pin: the pinned region the message hands over, or NULL
 * @kept: set when the channel keeps @pin (the request was posted but its answer not read:
 *        the connection's end unpins it once vbusd answered the RESET); the caller must
 *        then forget it
 * @status: the bus's answer (the message's status)
 * @out: the first @outlen bytes of the answer's payload (zeroed where shorter)
 * @outlen: their number
 *
 * Return: 0 when the bus answered, or -errno (ENODEV, EOPNOTSUPP, EMSGSIZE, EBUSY, EINTR
 * from a fatal signal, EIO for a malformed answer, or the channel's refusal).
 */
int vmg_chan_call(struct vmg_dev *dev, struct file *f, const void *req, u32 n,
		  struct vmg_pin *pin, bool *kept, s32 *status, void *out, u32 outlen)
{
	struct vmg_chan *ch = &dev->chan;
	struct vbus_msg h;
	u32 len;
	s32 st;
	int ret, snap;

	*kept = false;
	ret = vmg_chan_send(dev, f, req, n, true);
	if (ret)
		return ret;
	ch->inflight = pin;
	*kept = pin != NULL;
	for (;;) {
		snap = vmg_chan_snap(ch);
		if (vmg_chan_answered(ch))
			break;
		mutex_unlock(&dev->lock);
		ret = vmg_chan_wait_killable(dev, snap);
		mutex_lock(&dev->lock);
		if (!ret)
			ret = vmg_chan_usable(dev);
		/* Killed, the device gone, or the file released meanwhile: the channel keeps
		 * the region (vmg_chan_bury, vmg_chan_remove). */
		if (!ret && (ch->owner != f || !ch->driver))
			ret = -ENODEV;
		if (ret)
			goto out;
	}
	rmb();	/* resp_seq before the answer, as in read() */
	st = (s32)readl(&ch->ctl->resp_status);
	len = readl(&ch->ctl->resp_len);
	ch->pending = false;
	ch->driver = false;
	ch->inflight = NULL;
	*kept = false;
	if (st) {
		ret = st < 0 && st >= -MAX_ERRNO ? st : -EIO;
	} else if (len < sizeof(h) || len > ch->msg_max) {
		ret = -EIO;
	} else {
		memcpy_fromio(&h, ch->resp, sizeof(h));
		*status = (s32)le32_to_cpu(h.status);
		memset(out, 0, outlen);
		memcpy_fromio(out, ch->resp + sizeof(h), min(outlen, len - (u32)sizeof(h)));
	}
out:
	mutex_unlock(&dev->lock);
	return ret;
}

/* The driver's own SHMREVOKE or SIGREVOKE (@op) of @id: 0 with the bus's answer in
 * *status, or -errno as vmg_chan_call's. */
int vmg_chan_revoke(struct vmg_dev *dev, struct file *f, u32 op, u64 seq, u32 id, s32 *status)
{
	struct vbus_msg h = {
		.op = cpu_to_le32(op),
		.seq = cpu_to_le64(seq),
		.arg = cpu_to_le32(id),
	};
	bool kept;

	return vmg_chan_call(dev, f, &h, sizeof(h), NULL, &kept, status, NULL, 0);
}

/* VBUS_VM_IOC_SHMREVOKE and VBUS_VM_IOC_SIGREVOKE (one layout): the driver's own revoke
 * (@op) of the id the caller names; once the bus said 0, @drop lets the driver's hold on
 * it go. The bus's answer goes back in status. */
long vmg_chan_revoke_ioctl(struct vmg_dev *dev, struct file *f, void __user *arg, u32 op,
			   void (*drop)(struct vmg_dev *dev, struct file *f, u32 id))
{
	struct vbus_vm_shmrevoke r;
	s32 status = 0;
	long ret;

	BUILD_BUG_ON(sizeof(struct vbus_vm_sigrevoke) != sizeof(r) ||
		     offsetof(struct vbus_vm_sigrevoke, id) != offsetof(struct vbus_vm_shmrevoke, id) ||
		     offsetof(struct vbus_vm_sigrevoke, status) !=
			     offsetof(struct vbus_vm_shmrevoke, status));
	if (copy_from_user(&r, arg, sizeof(r)))
		return -EFAULT;
	if (r.status)
		return -EINVAL;
	ret = vmg_chan_revoke(dev, f, op, r.seq, r.id, &status);
	if (ret)
		return ret;
	if (!status)
		drop(dev, f, r.id);
	r.status = status;
	return copy_to_user(arg, &r, sizeof(r)) ? -EFAULT : 0;
}

ssize_t vmg_chan_read(struct file *f, char __user *ubuf, size_t n, loff_t *pos)
{
	struct vmg_dev *dev = f->private_data;
	struct vmg_chan *ch = &dev->chan;
	void *buf = NULL;
	ssize_t ret;
	s32 status;
	u32 len;
	int snap;

	for (;;) {
		mutex_lock(&dev->lock);
		ret = vmg_chan_usable(dev);
		if (ret)
			goto out_unlock;
		if (ch->owner != f || !ch->pending || ch->reset) {
			ret = -ENOMSG;	/* no request of ours outstanding */
			goto out_unlock;
		}
		if (ch->driver) {
			ret = -EBUSY;	/* the driver's own request (vmg_chan_call) */
			goto out_unlock;
		}
		snap = vmg_chan_snap(ch);
		if (vmg_chan_answered(ch))
			break;
		mutex_unlock(&dev->lock);
		ret = vmg_chan_wait(dev, f, snap);
		if (ret)
			return ret;
	}
	/* resp_seq before the answer: pairs with vbusd's release store of resp_seq. */
	rmb();
	status = (s32)readl(&ch->ctl->resp_status);
	len = readl(&ch->ctl->resp_len);
	if (status) {
		ch->pending = false;
		ret = status < 0 && status >= -MAX_ERRNO ? status : -EIO;
		goto out_unlock;
	}
	if (len < sizeof(struct vbus_msg) || len > ch->msg_max) {
		ch->pending = false;
		dev_warn_ratelimited(&dev->pdev->dev, "vbusd answered %u bytes: dropped\n", len);
		ret = -EIO;
		goto out_unlock;
	}
	if (n < len) {
		ret = -EMSGSIZE;	/* kept for a bigger buffer */
		goto out_unlock;
	}
	buf = kvmalloc(len, GFP_KERNEL);
	if (!buf) {
		ret = -ENOMEM;
		goto out_unlock;
	}
	memcpy_fromio(buf, ch->resp, len);
	ch->pending = false;
	mutex_unlock(&dev->lock);
	ret = copy_to_user(ubuf, buf, len) ? -EFAULT : len;
	kvfree(buf);
	return ret;

out_unlock:
	mutex_unlock(&dev->lock);
	return ret;
}

__poll_t vmg_chan_poll(struct file *f, poll_table *pt)
{
	struct vmg_dev *dev = f->private_data;
	struct vmg_chan *ch = &dev->chan;
	__poll_t mask = 0;

	poll_wait(f, &ch->wq, pt);
	mutex_lock(&dev->lock);
	if (vmg_chan_usable(dev)) {
		mask = EPOLLERR | EPOLLHUP;
	} else {
		vmg_chan_settle(ch);
		if (ch->owner == f && ch->pending && !ch->reset && !ch->driver &&
		    vmg_chan_answered(ch))
			mask |= EPOLLIN | EPOLLRDNORM;
		if (!ch->pending && (!ch->owner || ch->owner == f))
			mask |= EPOLLOUT | EPOLLWRNORM;
	}
	mutex_unlock(&dev->lock);
	return mask;
}
