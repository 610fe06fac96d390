// SPDX-License-Identifier: GPL-2.0
/*
 * vbus_vmguest: shared regions (include/vbus/vm.h VBUS_VM_IOC_SHM, docs/vm.md "Shared
 * regions"). A process hands the bus a range of its own memory: the driver pins the pages
 * (FOLL_LONGTERM: they cannot move while vbusd maps their guest-physical frames), sends
 * DEVSHM with VBUS_SHM_F_GPA and the page list over the message channel, and keeps the pin
 * while the bus may map them: until SHMREVOKE of the region succeeds through the driver,
 * or until vbusd answered the RESET that ends the file's connection (vmg_chan.c). A physical
 * address never comes from userspace: only the caller's own virtual range.
 */
#include <linux/mm.h>
#include <linux/sched/mm.h>
#include <linux/sched/signal.h>
#include <linux/slab.h>
#include <linux/uaccess.h>
#include <vbus/proto.h>
#include "vmg.h"

void vmg_pin_free(struct vmg_pin *p, bool unpin)
{
	if (unpin) {
		unpin_user_pages_dirty_lock(p->pages, p->npages, true);
		atomic64_sub(p->npages, &p->mm->pinned_vm);
	}
	mmdrop(p->mm);
	kvfree(p->pages);
	kfree(p);
}

/* Every region on @l: vbusd no longer maps them. */
void vmg_pins_free(struct list_head *l)
{
	struct vmg_pin *p, *n;

	list_for_each_entry_safe(p, n, l, node) {
		list_del(&p->node);
		vmg_pin_free(p, true);
	}
}

/* Every region on @l stays pinned for good: vbusd may still map them. */
void vmg_pins_leak(struct list_head *l)
{
	struct vmg_pin *p, *n;

	list_for_each_entry_safe(p, n, l, node) {
		list_del(&p->node);
		vmg_pin_free(p, false);
	}
}

/* Pin [addr, addr + npages pages) of the caller for writing, charged to RLIMIT_MEMLOCK. */
static struct vmg_pin *vmg_pin_user(u64 addr, u32 npages)
{
	unsigned long limit = rlimit(RLIMIT_MEMLOCK) >> PAGE_SHIFT;
	struct mm_struct *mm = current->mm;
	struct vmg_pin *p;
	int got;

	p = kzalloc(sizeof(*p), GFP_KERNEL);
	if (!p)
		return ERR_PTR(-ENOMEM);
	p->pages = kvcalloc(npages, sizeof(*p->pages), GFP_KERNEL);
	if (!p->pages) {
		kfree(p);
		return ERR_PTR(-ENOMEM);
	}
	mmgrab(mm);
	p->mm = mm;
	if (atomic64_add_return(npages, &mm->pinned_vm) > limit && !capable(CAP_IPC_LOCK)) {
		atomic64_sub(npages, &mm->pinned_vm);
		got = -ENOMEM;
		goto err;
	}
	got = pin_user_pages_fast(addr, npages, FOLL_WRITE | FOLL_LONGTERM, p->pages);
	if (got != npages) {
		if (got > 0)
			unpin_user_pages(p->pages, got);
		atomic64_sub(npages, &mm->pinned_vm);
		got = got < 0 ? got : -EFAULT;
		goto err;
	}
	p->npages = npages;
	return p;

err:
	mmdrop(mm);
	kvfree(p->pages);
	kfree(p);
	return ERR_PTR(got);
}

long vmg_shm_ioctl(struct vmg_file *fl, void __user *arg)
{
	struct vmg_dev *dev = fl->dev;
	struct vbus_devshm_in *in;
	struct vbus_id_out id;
	struct vbus_vm_shm s;
	struct vbus_msg *h;
	struct vmg_pin *p;
	__le64 *gpa;
	bool kept;
	s32 status = 0;
	u32 npages, n;
	long ret;

	if (copy_from_user(&s, arg, sizeof(s)))
		return -EFAULT;
	if (s.addr % VBUS_VM_PAGE_SIZE || s.size % VBUS_VM_PAGE_SIZE || !s.size ||
	    s.size / VBUS_VM_PAGE_SIZE > VBUS_VM_SHM_MAX_PAGES || s.id || s.status ||
	    s.addr + s.size < s.addr)
		return -EINVAL;
	BUILD_BUG_ON(PAGE_SIZE != VBUS_VM_PAGE_SIZE);
	npages = s.size / VBUS_VM_PAGE_SIZE;
	n = sizeof(*h) + sizeof(*in) + npages * sizeof(*gpa);
	h = kvzalloc(n, GFP_KERNEL);
	if (!h)
		return -ENOMEM;
	p = vmg_pin_user(s.addr, npages);
	if (IS_ERR(p)) {
		kvfree(h);
		return PTR_ERR(p);
	}
	h->op = cpu_to_le32(VBUS_OP_DEVSHM);
	h->len = cpu_to_le32(n - sizeof(*h));
	h->seq = cpu_to_le64(s.seq);
	in = (struct vbus_devshm_in *)(h + 1);
	in->size = cpu_to_le64(s.size);
	in->flags = cpu_to_le32(VBUS_SHM_F_GPA);
	gpa = (__le64 *)(in + 1);
	for (u32 i = 0; i < npages; i++)
		gpa[i] = cpu_to_le64(page_to_phys(p->pages[i]));
	ret = vmg_chan_call(fl, h, n, p, &kept, &status, &id, sizeof(id));
	kvfree(h);
	if (kept)
		return ret;	/* the channel unpins it when the connection ends */
	if (ret || status) {
		vmg_pin_free(p, true);	/* not mapped by vbusd */
		if (ret)
			return ret;
	} else {
		p->id = le32_to_cpu(id.id);
		mutex_lock(&dev->lock);
		if (!dev->gone) {
			list_add_tail(&p->node, &fl->pins);
		} else {	/* the device went meanwhile: leave it pinned */
			dev_warn(&dev->pdev->dev, "region %u left pinned (device removed)\n",
				 p->id);
			vmg_pin_free(p, false);
		}
		mutex_unlock(&dev->lock);
	}
	s.id = status ? 0 : p->id;
	s.status = status;
	return copy_to_user(arg, &s, sizeof(s)) ? -EFAULT : 0;
}

/* The bus unmapped region @id: its pages may go. The oldest region of that id goes: two
 * of one id means the older was revoked with write() before the bus gave its id again (it
 * keeps ids unique among live regions), so the older is unmapped either way. Unpinned
 * outside the lock. */
static void vmg_shm_drop(struct vmg_file *fl, u32 id)
{
	struct vmg_pin *p, *found = NULL;

	mutex_lock(&fl->dev->lock);
	list_for_each_entry(p, &fl->pins, node) {
		if (p->id == id && !p->orphan) {
			found = p;
			list_del(&p->node);
			break;
		}
	}
	mutex_unlock(&fl->dev->lock);
	if (found)
		vmg_pin_free(found, true);
}

long vmg_shmrevoke_ioctl(struct vmg_file *fl, void __user *arg)
{
	return vmg_chan_revoke_ioctl(fl, arg, VBUS_OP_SHMREVOKE, vmg_shm_drop);
}
