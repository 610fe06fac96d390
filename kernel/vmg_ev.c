// SPDX-License-Identifier: GPL-2.0
/*
 * vbus_vmguest: the bus's events (include/vbus/vm.h struct vbus_vm_evring, docs/vm.md
 * "Events"). vbusd writes the EVENT messages of the VM's connection into BAR2's event ring
 * and interrupts vector 0; vector 0's interrupt takes the new entries of the channel
 * owner's connection into a queue of VBUS_VM_EVQ_MAX and signals the eventfd the owner
 * bound (VBUS_VM_IOC_EVENTFD); VBUS_VM_IOC_EVENT takes them one at a time.
 *
 * The host writes the ring, so nothing in it is followed: the walk is bounded by the
 * ring's size whatever head says, and an entry is taken only when its seq is the expected
 * number before and after the copy. ev->lock guards all of struct vmg_ev but the geometry;
 * the interrupt takes it, so process context takes it with interrupts off, and the
 * eventfd's own lock nests inside it.
 */
#include <linux/file.h>
#include <linux/io.h>
#include <linux/uaccess.h>
#include <vbus/proto.h>
#include "vmg.h"

/**
 * vmg_ev_parse() - take the event ring's geometry from the header vbusd wrote
 * @dev: the device, its channel parsed and present
 * @h: the header as read once
 * @bar2: BAR2's mapping
 */
void vmg_ev_parse(struct vmg_dev *dev, const struct vbus_vm_bar2 *h, void __iomem *bar2)
{
	struct vmg_ev *ev = &dev->ev;
	u64 off = le32_to_cpu(h->ev_offset), n = le32_to_cpu(h->ev_entries);

	if (!(le32_to_cpu(h->features) & VBUS_VM_F_EVENTS))
		return;
	if (!n || n > VBUS_VM_EV_MAX || (n & (n - 1)) ||
	    !vmg_chan_range_free(dev, off, VBUS_VM_EVRING_SIZE(n))) {
		dev_err(&dev->pdev->dev,
			"bad event ring: offset %#llx entries %llu in %llu bytes: no events\n",
			off, n, (u64)dev->bar2_size);
		return;
	}
	ev->ring = bar2 + off;
	ev->entries = n;
	ev->present = true;
}

static struct vbus_vm_ev __iomem *vmg_ev_entry(struct vmg_ev *ev, u32 s)
{
	return (struct vbus_vm_ev __iomem *)(ev->ring + sizeof(struct vbus_vm_evring)) +
	       (s & (ev->entries - 1));
}

static u32 vmg_ev_head(struct vmg_ev *ev)
{
	u32 h = readl(&((struct vbus_vm_evring __iomem *)ev->ring)->head);

	rmb();	/* head before the entries: pairs with vbusd's release store of head */
	return h;
}

/* Under ev->lock: queue one event, dropping the oldest when full. */
static void vmg_ev_queue(struct vmg_ev *ev, const u8 *event)
{
	if (ev->qn == VBUS_VM_EVQ_MAX) {
		ev->qhead = (ev->qhead + 1) % VBUS_VM_EVQ_MAX;
		ev->qn--;
		ev->lost++;
	}
	memcpy(ev->q[(ev->qhead + ev->qn++) % VBUS_VM_EVQ_MAX], event, sizeof(ev->q[0]));
}

/* Vector 0's interrupt (hard interrupt context): take the ring's new entries. */
void vmg_ev_irq(struct vmg_dev *dev)
{
	struct vmg_ev *ev = &dev->ev;
	u8 event[sizeof(ev->q[0])];
	bool queued = false;
	u32 h, s, d;

	if (!ev->present)
		return;
	spin_lock(&ev->lock);
	h = vmg_ev_head(ev);
	if (!ev->ctx)
		goto out;	/* nobody listens: what is there now is not theirs */
	d = h - ev->next + 1;	/* the new entries, when head moved forward */
	if (d > U32_MAX / 2)
		d = 0;		/* head went back: nothing is new */
	if (d > ev->entries) {	/* more than one lap: the oldest were overwritten */
		ev->lost += d - ev->entries;
		ev->next += d - ev->entries;
		d = ev->entries;
	}
	for (s = ev->next; d--; s++) {
		struct vbus_vm_ev __iomem *e = vmg_ev_entry(ev, s);
		u32 q1, q2, conn;

		if (!s)
			continue;	/* no event's number */
		q1 = readl(&e->seq);
		rmb();
		conn = readl(&e->conn);
		memcpy_fromio(event, e->event, sizeof(event));
		rmb();
		q2 = readl(&e->seq);
		if (q1 != s || q2 != s) {
			ev->lost++;	/* being rewritten: a lap behind */
			continue;
		}
		if (conn != ev->conn)
			continue;	/* an earlier connection's */
		vmg_ev_queue(ev, event);
		queued = true;
	}
	if (queued)
		eventfd_signal(ev->ctx, 1);
out:
	ev->next = h + 1;
	spin_unlock(&ev->lock);
}

/* Under dev->lock: 0 when @f's connection can use events. */
static int vmg_ev_usable(struct vmg_dev *dev, struct file *f)
{
	lockdep_assert_held(&dev->lock);
	if (!dev->ev.present)
		return -EOPNOTSUPP;
	return dev->chan.owner == f ? 0 : -ENOTCONN;
}

/* Under dev->lock: @owner's connection ends; its binding and queue go. */
void vmg_ev_unbind(struct vmg_dev *dev, struct file *owner)
{
	struct vmg_ev *ev = &dev->ev;
	struct eventfd_ctx *ctx = NULL;
	unsigned long flags;

	lockdep_assert_held(&dev->lock);
	spin_lock_irqsave(&ev->lock, flags);
	if (ev->owner == owner) {
		ctx = ev->ctx;
		ev->ctx = NULL;
		ev->owner = NULL;
		ev->qn = 0;
		ev->lost = 0;
	}
	spin_unlock_irqrestore(&ev->lock, flags);
	if (ctx)
		eventfd_ctx_put(ctx);
}

/* Under dev->lock: vbusd is dead (vmg_beat.c): the bound owner gets a DISCONNECTED event,
 * the one its library makes itself when a socket closes. */
void vmg_ev_host_gone(struct vmg_dev *dev)
{
	struct vmg_ev *ev = &dev->ev;
	struct vbus_event e = { .type = cpu_to_le32(VBUS_EV_DISCONNECTED) };
	unsigned long flags;

	lockdep_assert_held(&dev->lock);
	spin_lock_irqsave(&ev->lock, flags);
	if (ev->ctx) {
		vmg_ev_queue(ev, (const u8 *)&e);
		eventfd_signal(ev->ctx, 1);
	}
	spin_unlock_irqrestore(&ev->lock, flags);
}

/* VBUS_VM_IOC_EVENTFD, under dev->lock. */
long vmg_ev_bind_ioctl(struct vmg_dev *dev, struct file *f, void __user *arg)
{
	struct vmg_ev *ev = &dev->ev;
	struct vbus_vm_eventfd b;
	struct eventfd_ctx *ctx, *old;
	unsigned long flags;
	int ret;

	if (copy_from_user(&b, arg, sizeof(b)))
		return -EFAULT;
	if (b.flags || b.fd < -1)
		return -EINVAL;
	ret = vmg_ev_usable(dev, f);
	if (ret)
		return ret;
	if (b.fd == -1) {
		vmg_ev_unbind(dev, f);
		return 0;
	}
	ctx = eventfd_ctx_fdget(b.fd);
	if (IS_ERR(ctx))
		return PTR_ERR(ctx);
	spin_lock_irqsave(&ev->lock, flags);
	old = ev->ctx;
	ev->ctx = ctx;
	if (!old) {	/* events from now on: what the ring holds is not queued */
		ev->owner = f;
		ev->conn = dev->chan.conn;
		ev->next = vmg_ev_head(ev) + 1;
		ev->qn = 0;
		ev->lost = 0;
	}
	spin_unlock_irqrestore(&ev->lock, flags);
	if (old)
		eventfd_ctx_put(old);
	return 0;
}

/* VBUS_VM_IOC_EVENT, under dev->lock. */
long vmg_ev_take_ioctl(struct vmg_dev *dev, struct file *f, void __user *arg)
{
	struct vmg_ev *ev = &dev->ev;
	struct vbus_vm_event out = { 0 };
	unsigned long flags;
	int ret;

	ret = vmg_ev_usable(dev, f);
	if (ret)
		return ret;
	spin_lock_irqsave(&ev->lock, flags);
	if (ev->owner != f || !ev->qn) {
		ret = -EAGAIN;
	} else {
		memcpy(out.event, ev->q[ev->qhead], sizeof(out.event));
		ev->qhead = (ev->qhead + 1) % VBUS_VM_EVQ_MAX;
		ev->qn--;
		out.lost = ev->lost;
		ev->lost = 0;
	}
	spin_unlock_irqrestore(&ev->lock, flags);
	if (ret)
		return ret;
	return copy_to_user(arg, &out, sizeof(out)) ? -EFAULT : 0;
}
