// SPDX-License-Identifier: GPL-2.0
/*
 * vbus_vmguest: the bus's events (include/vbus/vm.h struct vbus_vm_evring, docs/vm.md
 * "Events"). vbusd writes the EVENT messages of the VM's connections into BAR2's event ring
 * and interrupts vector 0; vector 0's interrupt takes each new entry into the queue (of
 * VBUS_VM_EVQ_MAX) of the file whose connection it is, when that file bound an eventfd
 * (VBUS_VM_IOC_EVENTFD), and signals it; VBUS_VM_IOC_EVENT takes them one at a time.
 *
 * The host writes the ring, so nothing in it is followed: the walk is bounded by the
 * ring's size whatever head says, and an entry is taken only when its seq is the expected
 * number before and after the copy. ev->lock guards all of struct vmg_ev but the geometry,
 * and the bound files' event fields; the interrupt takes it, so process context takes it
 * with interrupts off, and the eventfd's own lock nests inside it.
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

/* Under ev->lock: queue one event for @fl, dropping the oldest when full. */
static void vmg_ev_queue(struct vmg_file *fl, const u8 *event)
{
	if (fl->qn == VBUS_VM_EVQ_MAX) {
		fl->qhead = (fl->qhead + 1) % VBUS_VM_EVQ_MAX;
		fl->qn--;
		fl->lost++;
	}
	memcpy(fl->q[(fl->qhead + fl->qn++) % VBUS_VM_EVQ_MAX], event, sizeof(fl->q[0]));
	fl->ev_new = true;
}

/* Under ev->lock: entry @s of connection @conn goes to its file, if one listens. */
static void vmg_ev_deliver(struct vmg_ev *ev, u32 s, u32 conn, const u8 *event)
{
	struct vmg_file *fl;

	list_for_each_entry(fl, &ev->files, ev_node) {
		if (fl->conn == conn) {
			if ((s32)(s - fl->ev_from) >= 0)	/* not from before it bound */
				vmg_ev_queue(fl, event);
			return;
		}
	}
}

/* Under ev->lock: a ring's entry that more than one lap overwrote is lost to every file
 * that listens (whose it was cannot be known). */
static void vmg_ev_lost(struct vmg_ev *ev, u32 n)
{
	struct vmg_file *fl;

	list_for_each_entry(fl, &ev->files, ev_node)
		fl->lost += n;
}

/* Vector 0's interrupt (hard interrupt context): take the ring's new entries. */
void vmg_ev_irq(struct vmg_dev *dev)
{
	struct vmg_ev *ev = &dev->ev;
	u8 event[sizeof(((struct vmg_file *)NULL)->q[0])];
	struct vmg_file *fl;
	u32 h, s, d;

	if (!ev->present)
		return;
	spin_lock(&ev->lock);
	h = vmg_ev_head(ev);
	if (list_empty(&ev->files))
		goto out;	/* nobody listens: what is there now is not theirs */
	d = h - ev->next + 1;	/* the new entries, when head moved forward */
	if (d > U32_MAX / 2)
		d = 0;		/* head went back: nothing is new */
	if (d > ev->entries) {	/* more than one lap: the oldest were overwritten */
		vmg_ev_lost(ev, d - ev->entries);
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
			vmg_ev_lost(ev, 1);	/* being rewritten: a lap behind */
			continue;
		}
		vmg_ev_deliver(ev, s, conn, event);
	}
	list_for_each_entry(fl, &ev->files, ev_node) {
		if (fl->ev_new)
			eventfd_signal(fl->ev_ctx, 1);
		fl->ev_new = false;
	}
out:
	ev->next = h + 1;
	spin_unlock(&ev->lock);
}

/* Under dev->lock: 0 when @fl's connection can use events. */
static int vmg_ev_usable(struct vmg_file *fl)
{
	lockdep_assert_held(&fl->dev->lock);
	if (!fl->dev->ev.present)
		return -EOPNOTSUPP;
	return fl->live ? 0 : -ENOTCONN;
}

/* Under dev->lock: @fl's connection is @conn: the events that carry it are @fl's. */
void vmg_ev_set_conn(struct vmg_file *fl, u32 conn)
{
	unsigned long flags;

	lockdep_assert_held(&fl->dev->lock);
	spin_lock_irqsave(&fl->dev->ev.lock, flags);
	fl->conn = conn;
	spin_unlock_irqrestore(&fl->dev->ev.lock, flags);
}

/* Under dev->lock: @fl's binding and queue go (its connection ends, or it unbinds). */
void vmg_ev_unbind(struct vmg_file *fl)
{
	struct vmg_ev *ev = &fl->dev->ev;
	struct eventfd_ctx *ctx;
	unsigned long flags;

	lockdep_assert_held(&fl->dev->lock);
	spin_lock_irqsave(&ev->lock, flags);
	ctx = fl->ev_ctx;
	if (ctx)
		list_del_init(&fl->ev_node);
	fl->ev_ctx = NULL;
	fl->qn = 0;
	fl->lost = 0;
	spin_unlock_irqrestore(&ev->lock, flags);
	if (ctx)
		eventfd_ctx_put(ctx);
}

/* Under dev->lock: vbusd is dead (vmg_beat.c): every bound file gets a DISCONNECTED
 * event, the one its library makes itself when a socket closes. */
void vmg_ev_host_gone(struct vmg_dev *dev)
{
	struct vmg_ev *ev = &dev->ev;
	struct vbus_event e = { .type = cpu_to_le32(VBUS_EV_DISCONNECTED) };
	struct vmg_file *fl;
	unsigned long flags;

	lockdep_assert_held(&dev->lock);
	spin_lock_irqsave(&ev->lock, flags);
	list_for_each_entry(fl, &ev->files, ev_node) {
		vmg_ev_queue(fl, (const u8 *)&e);
		fl->ev_new = false;
		eventfd_signal(fl->ev_ctx, 1);
	}
	spin_unlock_irqrestore(&ev->lock, flags);
}

/* VBUS_VM_IOC_EVENTFD, under dev->lock. */
long vmg_ev_bind_ioctl(struct vmg_file *fl, void __user *arg)
{
	struct vmg_ev *ev = &fl->dev->ev;
	struct vbus_vm_eventfd b;
	struct eventfd_ctx *ctx, *old;
	unsigned long flags;
	int ret;

	if (copy_from_user(&b, arg, sizeof(b)))
		return -EFAULT;
	if (b.flags || b.fd < -1)
		return -EINVAL;
	ret = vmg_ev_usable(fl);
	if (ret)
		return ret;
	if (b.fd == -1) {
		vmg_ev_unbind(fl);
		return 0;
	}
	ctx = eventfd_ctx_fdget(b.fd);
	if (IS_ERR(ctx))
		return PTR_ERR(ctx);
	spin_lock_irqsave(&ev->lock, flags);
	old = fl->ev_ctx;
	fl->ev_ctx = ctx;
	if (!old) {	/* events from now on: what the ring holds is not queued */
		u32 h = vmg_ev_head(ev);

		if (list_empty(&ev->files))
			ev->next = h + 1;
		fl->ev_from = h + 1;
		fl->qn = 0;
		fl->lost = 0;
		list_add_tail(&fl->ev_node, &ev->files);
	}
	spin_unlock_irqrestore(&ev->lock, flags);
	if (old)
		eventfd_ctx_put(old);
	return 0;
}

/* VBUS_VM_IOC_EVENT, under dev->lock. */
long vmg_ev_take_ioctl(struct vmg_file *fl, void __user *arg)
{
	struct vmg_ev *ev = &fl->dev->ev;
	struct vbus_vm_event out = { 0 };
	unsigned long flags;
	int ret;

	ret = vmg_ev_usable(fl);
	if (ret)
		return ret;
	spin_lock_irqsave(&ev->lock, flags);
	if (!fl->ev_ctx || !fl->qn) {
		ret = -EAGAIN;
	} else {
		memcpy(out.event, fl->q[fl->qhead], sizeof(out.event));
		fl->qhead = (fl->qhead + 1) % VBUS_VM_EVQ_MAX;
		fl->qn--;
		out.lost = fl->lost;
		fl->lost = 0;
	}
	spin_unlock_irqrestore(&ev->lock, flags);
	if (ret)
		return ret;
	return copy_to_user(arg, &out, sizeof(out)) ? -EFAULT : 0;
}
