// SPDX-License-Identifier: GPL-2.0
/*
 * vbus_vmguest: signals (include/vbus/vm.h VBUS_VM_IOC_SIG, docs/vm.md "Signals"). A
 * process hands the bus one of its eventfds; the driver sends DEVSIG with
 * VBUS_SIG_F_VECTOR, the bus picks an interrupt vector of the VM for it, and the driver
 * binds the eventfd to that vector:
 *   TO_HOST   a wait-queue entry on the eventfd: each write rings the vector's doorbell
 *             (in the writer's own system call, no thread in between);
 *   TO_GUEST  the vector's interrupt signals the eventfd (vmg_irq_bind).
 * The library writes and reads its eventfds as it does in a process guest on the host.
 * Bindings belong to the file whose connection asked: they go with it (vmg_chan_end).
 */
#include <linux/file.h>
#include <linux/slab.h>
#include <linux/uaccess.h>
#include <vbus/proto.h>
#include "vmg.h"

/* The eventfd's wake-up, under its wait-queue lock with interrupts off: a write rang. Its
 * count is read here, so the writer never blocks on a full counter. */
static int vmg_sig_wake(wait_queue_entry_t *wait, unsigned int mode, int sync, void *key)
{
	struct vmg_sig *s = container_of(wait, struct vmg_sig, wait);
	u64 cnt;

	if (!(key_to_poll(key) & EPOLLIN))
		return 0;	/* a read (EPOLLOUT) or the eventfd's release (EPOLLHUP) */
	eventfd_ctx_do_read(s->ctx, &cnt);
	vmg_ring_vector(s->dev, s->vector);
	return 0;
}

static void vmg_sig_queue(struct file *file, wait_queue_head_t *wqh, poll_table *pt)
{
	struct vmg_sig *s = container_of(pt, struct vmg_sig, pt);

	add_wait_queue(wqh, &s->wait);
}

/* Under dev->lock, the registers mapped: @s starts ringing for @file's writes. */
static void vmg_sig_arm(struct vmg_sig *s, struct file *file)
{
	init_waitqueue_func_entry(&s->wait, vmg_sig_wake);
	init_poll_funcptr(&s->pt, vmg_sig_queue);
	s->armed = true;
	if (vfs_poll(file, &s->pt) & EPOLLIN)
		vmg_ring_vector(s->dev, s->vector);	/* written before it was bound */
}

/* Under dev->lock: undo @s's binding and free it. */
static void vmg_sig_free(struct vmg_sig *s, struct file *owner)
{
	u64 cnt;

	if (s->armed)
		eventfd_ctx_remove_wait_queue(s->ctx, &s->wait, &cnt);	/* waits out a wake */
	else if (s->direction == VBUS_SIG_TO_GUEST && s->bound)
		vmg_irq_bind(s->dev, owner, s->vector, -1);
	if (s->ctx)
		eventfd_ctx_put(s->ctx);
	kfree(s);
}

/* Under dev->lock: the connection of @fl ends; every binding goes. */
void vmg_sigs_free(struct vmg_file *fl)
{
	struct vmg_sig *s, *n;

	lockdep_assert_held(&fl->dev->lock);
	list_for_each_entry_safe(s, n, &fl->sigs, node) {
		list_del(&s->node);
		vmg_sig_free(s, fl->file);
	}
}

/* The driver's own DEVSIG: the bus's status, and the id and vector it gave. */
static long vmg_sig_send(struct vmg_file *fl, struct vbus_vm_sig *a)
{
	struct {
		struct vbus_msg h;
		struct vbus_devsig_in in;
	} req = {
		.h.op = cpu_to_le32(VBUS_OP_DEVSIG),
		.h.len = cpu_to_le32(sizeof(struct vbus_devsig_in)),
		.h.seq = cpu_to_le64(a->seq),
		.in.direction = cpu_to_le32(a->direction),
		.in.flags = cpu_to_le32(VBUS_SIG_F_VECTOR),
	};
	struct vbus_id_out out;
	bool kept;
	long ret;

	ret = vmg_chan_call(fl, &req, sizeof(req), NULL, &kept, &a->status, &out, sizeof(out));
	if (ret || a->status)
		return ret;
	a->id = le32_to_cpu(out.id);
	a->vector = le32_to_cpu(out.vector);
	/* vbusd chose it: a vector the VM does not have, or the channel's, is its bug. */
	if (!a->vector || a->vector >= fl->dev->nvectors)
		return -EIO;
	return 0;
}

long vmg_sig_ioctl(struct vmg_file *fl, void __user *arg)
{
	struct vmg_dev *dev = fl->dev;
	struct vbus_vm_sig a;
	struct file *efile;
	struct vmg_sig *s;
	s32 undo;
	long ret;

	if (copy_from_user(&a, arg, sizeof(a)))
		return -EFAULT;
	if ((a.direction != VBUS_SIG_TO_HOST && a.direction != VBUS_SIG_TO_GUEST) ||
	    a.id || a.vector || a.status || a.reserved || a.fd < 0)
		return -EINVAL;
	efile = eventfd_fget(a.fd);
	if (IS_ERR(efile))
		return PTR_ERR(efile);
	s = kzalloc(sizeof(*s), GFP_KERNEL);
	if (!s) {
		ret = -ENOMEM;
		goto out_fput;
	}
	s->dev = dev;
	s->direction = a.direction;
	s->ctx = eventfd_ctx_fileget(efile);
	ret = vmg_sig_send(fl, &a);
	if (ret || a.status)
		goto out_free;
	s->id = a.id;
	s->vector = a.vector;
	mutex_lock(&dev->lock);
	if (dev->gone) {
		ret = -ENODEV;	/* the connection ended meanwhile: the bus freed the signal */
	} else if (a.direction == VBUS_SIG_TO_HOST) {
		vmg_sig_arm(s, efile);
	} else {
		ret = vmg_irq_bind_ctx(dev, fl->file, a.vector, s->ctx);	/* takes the reference */
		s->ctx = NULL;
		s->bound = !ret;
	}
	if (!ret)
		list_add_tail(&s->node, &fl->sigs);
	mutex_unlock(&dev->lock);
	if (ret) {
		if (ret != -ENODEV)	/* bound nowhere: take it back from the bus */
			vmg_chan_revoke(fl, VBUS_OP_SIGREVOKE, a.seq, a.id, &undo);
		goto out_free;
	}
	fput(efile);
	return copy_to_user(arg, &a, sizeof(a)) ? -EFAULT : 0;

out_free:
	if (s->ctx)
		eventfd_ctx_put(s->ctx);
	kfree(s);
	if (!ret)	/* the bus refused: its answer is the result */
		ret = copy_to_user(arg, &a, sizeof(a)) ? -EFAULT : 0;
out_fput:
	fput(efile);
	return ret;
}

/* The bus dropped signal @id: so does the driver (its binding and vector use). */
static void vmg_sig_drop(struct vmg_file *fl, u32 id)
{
	struct vmg_sig *s;

	mutex_lock(&fl->dev->lock);
	list_for_each_entry(s, &fl->sigs, node) {
		if (s->id == id) {
			list_del(&s->node);
			vmg_sig_free(s, fl->file);
			break;
		}
	}
	mutex_unlock(&fl->dev->lock);
}

long vmg_sigrevoke_ioctl(struct vmg_file *fl, void __user *arg)
{
	return vmg_chan_revoke_ioctl(fl, arg, VBUS_OP_SIGREVOKE, vmg_sig_drop);
}
