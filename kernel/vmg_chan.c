// SPDX-License-Identifier: GPL-2.0
/*
 * vbus_vmguest: the message channel (include/vbus/vm.h, docs/vm.md "The message channel").
 * write() posts one connector message in BAR2's request area and rings vector 0; vbusd
 * answers in the response area and interrupts vector 0; read() returns the answer.
 *
 * Each open file that writes takes a slot of the channel: its own connection on the bus
 * (VBUS_VM_F_CONNS; one slot with a vbusd that does not offer it). The one mailbox serves
 * the slots in turn: a file posts when it is free, and the answer is taken out of BAR2
 * into its file at once (vmg_chan_pump, also run by a work item after each interrupt of
 * vector 0), so a file that does not read holds up no other. Releasing a file queues a
 * RESET of its slot; the slot is free again, and its regions unpinned, once vbusd has
 * answered it. Everything runs under dev->lock except the sleeps, which wait on chan->wq
 * without it (remove wakes them).
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
	ch->max_conns = 1;
	if (le32_to_cpu(h->features) & VBUS_VM_F_CONNS) {
		u32 mc = le32_to_cpu(h->max_conns);

		if (mc >= 1 && mc <= VBUS_VM_MAX_CONNS) {
			ch->conns = true;
			ch->max_conns = mc;
		} else {
			dev_err(&dev->pdev->dev, "bad max_conns %u: one connection\n", mc);
		}
	}
	ch->present = true;
	vmg_ev_parse(dev, h, bar2);
	vmg_beat_parse(dev, h);
}


static void vmg_chan_pump_work(struct work_struct *w);

/* Probe, before the interrupts: the channel's state and its pump. */
void vmg_chan_init(struct vmg_dev *dev)
{
	struct vmg_chan *ch = &dev->chan;

	init_waitqueue_head(&ch->wq);
	INIT_LIST_HEAD(&ch->files);
	INIT_LIST_HEAD(&ch->dead);
	INIT_WORK(&ch->pump, vmg_chan_pump_work);
}

/* Under dev->lock: the mailbox changed; waiters look again. */
static void vmg_chan_kick(struct vmg_chan *ch)
{
	atomic_inc(&ch->irqs);
	wake_up_all(&ch->wq);
}

/* Under dev->lock, the mailbox free: post a request of @kind on slot @conn (@n bytes of
 * @buf for a message) and ring. */
static void vmg_chan_post(struct vmg_dev *dev, u32 kind, u32 conn, const void *buf, u32 n)
{
	struct vmg_chan *ch = &dev->chan;

	lockdep_assert_held(&dev->lock);
	if (n)
		memcpy_toio(ch->req, buf, n);
	writel(n, &ch->ctl->req_len);
	writel(kind, &ch->ctl->req_kind);
	writel(ch->conns ? conn : 0, &ch->ctl->req_conn);
	/* The message and its fields are in BAR2 before the new req_seq: pairs with vbusd's
	 * acquire load of req_seq (verbs-host/vm_chan.c).
	 */
	wmb();
	ch->seq++;
	writel(ch->seq, &ch->ctl->req_seq);
	ch->busy = true;
	ch->busy_file = NULL;
	ch->busy_reset = kind == VBUS_VM_CHAN_RESET;
	ch->reset_slot = conn;
	writel(dev->host_peer << 16 | 0, dev->regs + VMG_REG_DOORBELL);
	atomic64_inc(&dev->vec[0].doorbells);
}

/* Under dev->lock: whether vbusd answered the last request. */
static bool vmg_chan_answered(struct vmg_chan *ch)
{
	return readl(&ch->ctl->resp_seq) == ch->seq;
}

/* Without the lock (a wait's condition): vector 0 interrupted or the mailbox changed since
 * @snap was taken, or the device went. An event count, not resp_seq: a host that moves
 * resp_seq back after its interrupt cannot make a waiter spin, and an interrupt after the
 * snapshot is never lost.
 */
static bool vmg_chan_woken(struct vmg_dev *dev, int snap)
{
	return atomic_read(&dev->chan.irqs) != snap || READ_ONCE(dev->gone) ||
	       READ_ONCE(dev->chan.host_gone);
}

/* Under dev->lock: vbusd answered the RESET of @slot (or of all): it no longer maps the
 * regions of the connections it ended, and the slots are free. */
static void vmg_chan_reset_done(struct vmg_chan *ch, u32 slot)
{
	struct vmg_pin *p, *n;

	list_for_each_entry_safe(p, n, &ch->dead, node) {
		if (slot == VBUS_VM_CONN_ALL || p->slot == slot) {
			list_del(&p->node);
			vmg_pin_free(p, true);
		}
	}
	if (slot < VBUS_VM_MAX_CONNS) {
		clear_bit(slot, ch->used);
	} else if (slot == VBUS_VM_CONN_ALL) {
		/* The probe's: files may have taken slots meanwhile (their requests wait). */
		struct vmg_file *fl;

		bitmap_copy(ch->used, ch->reset_due, VBUS_VM_MAX_CONNS);
		list_for_each_entry(fl, &ch->files, node)
			set_bit(fl->slot, ch->used);
	}
}

/* Under dev->lock: the answer in the response area is @fl's: keep it in the file. */
static void vmg_chan_keep(struct vmg_dev *dev, struct vmg_file *fl)
{
	struct vmg_chan *ch = &dev->chan;
	s32 st = (s32)readl(&ch->ctl->resp_status);
	u32 len = readl(&ch->ctl->resp_len);
	u32 conn = readl(&ch->ctl->resp_conn);

	if (ch->conns && conn)
		vmg_ev_set_conn(fl, conn);	/* vbusd's connection that served it */
	if (fl->abandoned) {	/* the driver's caller left: nobody takes it */
		fl->posted = fl->driver = fl->abandoned = false;
		return;
	}
	fl->answered = true;
	fl->ans_len = 0;
	if (st) {
		fl->ans_status = st < 0 && st >= -MAX_ERRNO ? st : -EIO;
	} else if (len < sizeof(struct vbus_msg) || len > ch->msg_max) {
		dev_warn_ratelimited(&dev->pdev->dev, "vbusd answered %u bytes: dropped\n", len);
		fl->ans_status = -EIO;
	} else {
		fl->ans = kvmalloc(len, GFP_KERNEL);
		fl->ans_status = fl->ans ? 0 : -ENOMEM;
		fl->dropped = !fl->ans;	/* served: what it handed over is the bus's */
		if (fl->ans) {
			memcpy_fromio(fl->ans, ch->resp, len);
			fl->ans_len = len;
		}
	}
}

/*
 * Under dev->lock: move the channel on. An answer that came is taken out of the mailbox
 * (into its file; a RESET's ends its slots), then a released file's RESET is posted when
 * the mailbox is free. Every path that waits for the mailbox runs it, and so does a work
 * item after each interrupt of vector 0, for the answers nobody waits for.
 */
static void vmg_chan_pump(struct vmg_dev *dev)
{
	struct vmg_chan *ch = &dev->chan;
	u32 s;

	lockdep_assert_held(&dev->lock);
	if (!ch->present || dev->gone)
		return;
	if (ch->busy && vmg_chan_answered(ch)) {
		rmb();	/* resp_seq before the answer: pairs with vbusd's release store */
		ch->busy = false;
		if (ch->busy_reset)
			vmg_chan_reset_done(ch, ch->reset_slot);
		else if (ch->busy_file)
			vmg_chan_keep(dev, ch->busy_file);
		ch->busy_file = NULL;
		vmg_chan_kick(ch);
	}
	if (ch->busy || ch->host_gone)
		return;
	s = find_first_bit(ch->reset_due, VBUS_VM_MAX_CONNS);
	if (s < VBUS_VM_MAX_CONNS) {
		clear_bit(s, ch->reset_due);
		vmg_chan_post(dev, VBUS_VM_CHAN_RESET, s, NULL, 0);
	}
}

static void vmg_chan_pump_work(struct work_struct *w)
{
	struct vmg_dev *dev = container_of(w, struct vmg_dev, chan.pump);

	mutex_lock(&dev->lock);
	vmg_chan_pump(dev);
	mutex_unlock(&dev->lock);
}

/* Under dev->lock: @fl's connection ends; its regions wait for its slot's RESET. */
static void vmg_chan_bury(struct vmg_chan *ch, struct vmg_file *fl)
{
	struct vmg_pin *p;

	if (fl->inflight)
		list_add_tail(&fl->inflight->node, &fl->pins);
	fl->inflight = NULL;
	list_for_each_entry(p, &fl->pins, node)
		p->slot = fl->slot;
	list_splice_tail_init(&fl->pins, &ch->dead);
}

/* Under dev->lock: everything of @fl's connection goes (its events, signals and regions),
 * and so does its claim on the mailbox; the slot stays used until its RESET. */
static void vmg_chan_end(struct vmg_dev *dev, struct vmg_file *fl)
{
	struct vmg_chan *ch = &dev->chan;

	vmg_ev_unbind(fl);
	vmg_sigs_free(fl);	/* no wake-up rings from now on */
	vmg_chan_bury(ch, fl);
	if (ch->busy_file == fl)
		ch->busy_file = NULL;	/* its answer is nobody's */
	list_del_init(&fl->node);
	fl->live = false;
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

/* vbusd's heartbeat stopped: every connection is dead, and so is every later one
 * (ECONNRESET); files with an eventfd bound get a DISCONNECTED event, sleepers wake. */
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

/* Probe, interrupts ready: end whatever connections an earlier driver left to vbusd. */
void vmg_chan_start(struct vmg_dev *dev)
{
	struct vmg_chan *ch = &dev->chan;

	if (!ch->present)
		return;
	mutex_lock(&dev->lock);
	ch->seq = readl(&ch->ctl->req_seq);
	vmg_chan_post(dev, VBUS_VM_CHAN_RESET, VBUS_VM_CONN_ALL, NULL, 0);
	mutex_unlock(&dev->lock);
}

/* Vector 0's interrupt (hard interrupt context): count it, wake the waiters, and let the
 * pump take an answer nobody waits for. */
void vmg_chan_irq(struct vmg_dev *dev)
{
	struct vmg_chan *ch = &dev->chan;

	vmg_ev_irq(dev);
	atomic_inc(&ch->irqs);
	wake_up_all(&ch->wq);
	if (ch->present)
		schedule_work(&ch->pump);
}

/* Remove, after the interrupts are freed: the pump is not scheduled again. */
void vmg_chan_stop(struct vmg_dev *dev)
{
	cancel_work_sync(&dev->chan.pump);
}

/* Remove, under dev->lock, before gone is set: end every file's connection. */
void vmg_chan_remove(struct vmg_dev *dev)
{
	struct vmg_chan *ch = &dev->chan;
	struct vmg_file *fl, *n;
	bool live;
	int i;

	lockdep_assert_held(&dev->lock);
	if (!ch->present)
		return;
	/* A connection, or a request, vbusd may still hold. */
	live = !bitmap_empty(ch->used, VBUS_VM_MAX_CONNS) || (ch->busy && !ch->busy_reset);
	list_for_each_entry_safe(fl, n, &ch->files, node) {
		vmg_chan_end(dev, fl);
		fl->slot = -1;
	}
	bitmap_zero(ch->reset_due, VBUS_VM_MAX_CONNS);
	/* A RESET of all in place of what the mailbox holds: vbusd serves the newest request.
	 * Pinned pages may be unpinned only once vbusd has unmapped them: give it a second to
	 * answer (the interrupt is not needed: resp_seq is read directly).
	 */
	if (live && !ch->host_gone) {
		vmg_chan_post(dev, VBUS_VM_CHAN_RESET, VBUS_VM_CONN_ALL, NULL, 0);
		for (i = 0; i < 100 && !vmg_chan_answered(ch); i++)
			msleep(10);
		if (vmg_chan_answered(ch)) {
			ch->busy = false;
			vmg_chan_reset_done(ch, VBUS_VM_CONN_ALL);
		}
	}
	if (!list_empty(&ch->dead)) {
		dev_warn(&dev->pdev->dev,
			 "vbusd did not answer the RESET: pinned regions stay pinned (leaked)\n");
		vmg_pins_leak(&ch->dead);
	}
}

/* @fl is being released, under dev->lock, the device not gone: end its connection; its
 * RESET goes when the mailbox is free. */
void vmg_chan_release(struct vmg_file *fl)
{
	struct vmg_dev *dev = fl->dev;
	struct vmg_chan *ch = &dev->chan;

	lockdep_assert_held(&dev->lock);
	if (!ch->present || fl->slot < 0)
		return;
	vmg_chan_end(dev, fl);
	set_bit(fl->slot, ch->reset_due);
	fl->slot = -1;
	vmg_chan_pump(dev);
}

/* Sleep until vector 0 interrupts or the mailbox changes after @snap (taken under
 * dev->lock before looking at the channel) or remove wakes us; 0, -EAGAIN or
 * -ERESTARTSYS. The driver's own requests (@driver) wait whatever O_NONBLOCK says, and
 * only a fatal signal stops them (-EINTR).
 */
static int vmg_chan_wait(struct vmg_file *fl, int snap, bool driver)
{
	struct vmg_dev *dev = fl->dev;

	if (driver)
		return wait_event_killable(dev->chan.wq, vmg_chan_woken(dev, snap)) ? -EINTR : 0;
	if (fl->file->f_flags & O_NONBLOCK)
		return -EAGAIN;
	return wait_event_interruptible(dev->chan.wq, vmg_chan_woken(dev, snap));
}

/* Under dev->lock, before looking at the channel: the event count to wait on. */
static int vmg_chan_snap(struct vmg_chan *ch)
{
	int snap = atomic_read(&ch->irqs);

	/* The count before resp_seq: pairs with the interrupt's increment, which comes after
	 * vbusd wrote resp_seq.
	 */
	smp_rmb();
	return snap;
}

/* Under dev->lock: give @fl a free slot, or -EBUSY when every one is taken. */
static int vmg_chan_take_slot(struct vmg_chan *ch, struct vmg_file *fl)
{
	u32 s = find_first_zero_bit(ch->used, ch->max_conns);

	if (s >= ch->max_conns)
		return -EBUSY;
	set_bit(s, ch->used);
	fl->slot = s;
	list_add_tail(&fl->node, &ch->files);
	return 0;
}

/* Under dev->lock: whether a slot is being freed (a released file's RESET is due or in
 * the mailbox). */
static bool vmg_chan_freeing(struct vmg_chan *ch)
{
	return (ch->busy && ch->busy_reset) ||
	       find_first_bit(ch->reset_due, VBUS_VM_MAX_CONNS) < VBUS_VM_MAX_CONNS;
}

/*
 * Post @n bytes of @buf as @fl's request: 0 with dev->lock held, or -errno without it.
 * @driver: the driver's own request (waits killable, whatever O_NONBLOCK says).
 */
static int vmg_chan_send(struct vmg_file *fl, const void *buf, u32 n, bool driver)
{
	struct vmg_dev *dev = fl->dev;
	struct vmg_chan *ch = &dev->chan;
	int ret, snap;

	for (;;) {
		mutex_lock(&dev->lock);
		ret = vmg_chan_usable(dev);
		if (ret)
			break;
		snap = vmg_chan_snap(ch);
		vmg_chan_pump(dev);
		if (n > ch->msg_max) {
			ret = -EMSGSIZE;
		} else if (fl->posted) {
			ret = -EBUSY;	/* its answer is not taken yet */
		} else if (fl->slot < 0 && vmg_chan_take_slot(ch, fl) && !vmg_chan_freeing(ch)) {
			ret = -EBUSY;	/* every slot has a file */
		} else if (fl->slot >= 0 && !ch->busy) {
			vmg_chan_post(dev, VBUS_VM_CHAN_MSG, fl->slot, buf, n);
			ch->busy_file = fl;
			if (!fl->live)	/* a new connection (vbusd's conn_seq) */
				vmg_ev_set_conn(fl, ch->seq);
			fl->live = true;
			fl->posted = true;
			fl->answered = false;
			fl->driver = driver;
			return 0;
		} else {
			/* Another file's request or a RESET is out, or every slot is taken but
			 * one whose RESET goes next: wait for the answer. */
			mutex_unlock(&dev->lock);
			ret = vmg_chan_wait(fl, snap, driver);
			if (ret)
				return ret;
			continue;
		}
		break;
	}
	mutex_unlock(&dev->lock);
	return ret;
}

/* Under dev->lock: the region of @fl's driver request whose answer is lost stays pinned
 * with the connection's regions, with no id: only the connection's end frees it. */
static void vmg_chan_orphan(struct vmg_file *fl)
{
	if (!fl->inflight)
		return;
	fl->inflight->orphan = true;
	list_add_tail(&fl->inflight->node, &fl->pins);
	fl->inflight = NULL;
}

/* Under dev->lock: @fl's kept answer is taken; it may post again. */
static void vmg_chan_taken(struct vmg_file *fl)
{
	fl->posted = fl->answered = fl->driver = fl->abandoned = fl->dropped = false;
	fl->ans = NULL;	/* the taker frees it */
	fl->ans_len = 0;
}

/* Under dev->lock: wait until @fl's answer is kept: 0 with the lock held, or -errno
 * (the lock still held). */
static int vmg_chan_await(struct vmg_file *fl, bool driver)
{
	struct vmg_dev *dev = fl->dev;
	int ret, snap;

	for (;;) {
		snap = vmg_chan_snap(&dev->chan);
		vmg_chan_pump(dev);
		/* Another thread of the file may have taken the answer meanwhile, or posted
		 * the driver's own request. */
		if (!fl->posted)
			return -ENOMSG;
		if (fl->driver != driver)
			return -EBUSY;
		if (fl->answered)
			return 0;
		mutex_unlock(&dev->lock);
		ret = vmg_chan_wait(fl, snap, driver);
		mutex_lock(&dev->lock);
		if (!ret)
			ret = vmg_chan_usable(dev);
		if (ret)
			return ret;
	}
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
	struct vmg_file *fl = f->private_data;
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
	ret = vmg_chan_send(fl, buf, n, false);
	if (!ret) {
		mutex_unlock(&fl->dev->lock);
		ret = n;
	}
	kvfree(buf);
	return ret;
}

/**
 * vmg_chan_call() - the driver's own request and its answer (vmg_shm.c, vmg_sig.c)
 * @fl: the file whose connection it is
 * @req: the message
 * @n: its length
 * @pin: the pinned region the message hands over, or NULL
 * @kept: set when the file keeps @pin (the request was posted but its answer not taken:
 *        the connection's end unpins it once vbusd answered the RESET); the caller must
 *        then forget it
 * @status: the bus's answer (the message's status)
 * @out: the first @outlen bytes of the answer's payload (zeroed where shorter)
 * @outlen: their number
 *
 * Return: 0 when the bus answered, or -errno (ENODEV, EOPNOTSUPP, EMSGSIZE, EBUSY, EINTR
 * from a fatal signal, EIO for a malformed answer, or the channel's refusal).
 */
int vmg_chan_call(struct vmg_file *fl, const void *req, u32 n,
		  struct vmg_pin *pin, bool *kept, s32 *status, void *out, u32 outlen)
{
	struct vmg_dev *dev = fl->dev;
	struct vbus_msg *h;
	int ret;

	*kept = false;
	ret = vmg_chan_send(fl, req, n, true);
	if (ret)
		return ret;
	fl->inflight = pin;
	*kept = pin != NULL;
	ret = vmg_chan_await(fl, true);
	if (!ret && fl->dropped)
		ret = -ENOMEM;	/* served, but its answer could not be kept */
	if (ret) {
		/* Killed, the device gone, or the answer lost: the answer is dropped (now, or
		 * when it comes), and the file keeps the region until its connection ends,
		 * since the bus may map it under an id the driver never learns. */
		if (fl->answered) {
			kvfree(fl->ans);
			vmg_chan_taken(fl);
		} else {
			fl->abandoned = true;
		}
		vmg_chan_orphan(fl);
		goto out;
	}
	fl->inflight = NULL;
	*kept = false;
	h = fl->ans;
	ret = fl->ans_status;
	if (!ret) {
		*status = (s32)le32_to_cpu(h->status);
		memset(out, 0, outlen);
		memcpy(out, h + 1, min(outlen, fl->ans_len - (u32)sizeof(*h)));
	}
	vmg_chan_taken(fl);
	kvfree(h);
out:
	mutex_unlock(&dev->lock);
	return ret;
}

/* The driver's own SHMREVOKE or SIGREVOKE (@op) of @id: 0 with the bus's answer in
 * *status, or -errno as vmg_chan_call's. */
int vmg_chan_revoke(struct vmg_file *fl, u32 op, u64 seq, u32 id, s32 *status)
{
	struct vbus_msg h = {
		.op = cpu_to_le32(op),
		.seq = cpu_to_le64(seq),
		.arg = cpu_to_le32(id),
	};
	bool kept;

	return vmg_chan_call(fl, &h, sizeof(h), NULL, &kept, status, NULL, 0);
}

/* VBUS_VM_IOC_SHMREVOKE and VBUS_VM_IOC_SIGREVOKE (one layout): the driver's own revoke
 * (@op) of the id the caller names; once the bus said 0, @drop lets the driver's hold on
 * it go. The bus's answer goes back in status. */
long vmg_chan_revoke_ioctl(struct vmg_file *fl, void __user *arg, u32 op,
			   void (*drop)(struct vmg_file *fl, u32 id))
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
	ret = vmg_chan_revoke(fl, op, r.seq, r.id, &status);
	if (ret)
		return ret;
	if (!status)
		drop(fl, r.id);
	r.status = status;
	return copy_to_user(arg, &r, sizeof(r)) ? -EFAULT : 0;
}

ssize_t vmg_chan_read(struct file *f, char __user *ubuf, size_t n, loff_t *pos)
{
	struct vmg_file *fl = f->private_data;
	struct vmg_dev *dev = fl->dev;
	void *buf;
	ssize_t ret;
	u32 len;

	mutex_lock(&dev->lock);
	ret = vmg_chan_usable(dev);
	if (ret)
		goto out_unlock;
	if (!fl->posted) {
		ret = -ENOMSG;	/* no request of ours outstanding */
		goto out_unlock;
	}
	if (fl->driver) {
		ret = -EBUSY;	/* the driver's own request (vmg_chan_call) */
		goto out_unlock;
	}
	ret = vmg_chan_await(fl, false);
	if (ret)
		goto out_unlock;
	if (fl->ans_status) {
		ret = fl->ans_status;
		vmg_chan_taken(fl);
		goto out_unlock;
	}
	if (n < fl->ans_len) {
		ret = -EMSGSIZE;	/* kept for a bigger buffer */
		goto out_unlock;
	}
	buf = fl->ans;
	len = fl->ans_len;
	vmg_chan_taken(fl);
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
	struct vmg_file *fl = f->private_data;
	struct vmg_dev *dev = fl->dev;
	struct vmg_chan *ch = &dev->chan;
	__poll_t mask = 0;

	poll_wait(f, &ch->wq, pt);
	mutex_lock(&dev->lock);
	if (vmg_chan_usable(dev)) {
		mask = EPOLLERR | EPOLLHUP;
	} else {
		vmg_chan_pump(dev);
		if (fl->posted && fl->answered && !fl->driver)
			mask |= EPOLLIN | EPOLLRDNORM;
		if (!fl->posted && !ch->busy &&
		    (fl->slot >= 0 || find_first_zero_bit(ch->used, ch->max_conns) < ch->max_conns))
			mask |= EPOLLOUT | EPOLLWRNORM;
	}
	mutex_unlock(&dev->lock);
	return mask;
}
