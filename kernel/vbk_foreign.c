// SPDX-License-Identifier: GPL-2.0
/*
 * Foreign attachments (VBK_ATTACH_F_FOREIGN, docs/kernel.md "Foreign attachments"): vbusd
 * keeps the descriptor and serves a VM's process through it. The guest's rings and buffers
 * are in the VM's RAM, a memfd that vbusd maps MAP_SHARED, and vbusd passes the module its
 * own addresses inside those mappings. What this adds to an attachment:
 *
 *  - at attach, a reference to the RAM's file and one to the caller's mm: only that
 *    address space's ioctls are taken (vbk_guest.c);
 *  - the memory check: every range pinned for the guest lies in MAP_SHARED mappings of the
 *    RAM's file in the caller's mm, or the call is EFAULT. vbusd translates the VM's
 *    addresses; this makes sure a bug there never pins vbusd's own memory for the VM;
 *  - pushed completions: nobody polls the real CQs for a VM, so each real CQ is kept
 *    armed. Its completion handler (any context) lists the CQ and queues the attachment's
 *    worker, which moves the completions into the guest's ring, re-arms the real CQ, and
 *    then signals the channel of each CQ whose ring the guest armed (ring->armed). Any
 *    attachment's CQ that may overrun is pushed the same way while it may (vbk_cq.c).
 *
 * The worker's lifetime. It does all it does under tbl read. A CQ is on comp_pending only
 * while it is in the object table: before it is freed, with tbl written (so no worker is
 * inside), it is taken off the list and marked so that neither the handler nor the worker
 * lists it again (vbk_foreign_cq_unlist). Revocation marks the attachment dead under tbl
 * written (a worker that starts after that does nothing), destroys every CQ, and then
 * cancels the work (vbk_foreign_stop) holding ctl alone, a lock the worker never takes.
 */
#include <linux/file.h>
#include <linux/fs.h>
#include <linux/mm.h>
#include <linux/sched/mm.h>
#include <linux/shmem_fs.h>
#include "vbk.h"

#define COMP_ROUNDS	64	/* poll and re-arm rounds of one CQ per run of the worker */

static void comp_work(struct work_struct *w);

void vbk_foreign_init(struct vbk_guest *g)
{
	spin_lock_init(&g->comp_lock);
	INIT_LIST_HEAD(&g->comp_pending);
	INIT_DELAYED_WORK(&g->comp_work, comp_work);
}

/*
 * g becomes foreign: it keeps the file of the caller's ram_fd, which must be a memfd or
 * another tmpfs file, and the caller's mm. 0, -EBADF (ram_fd is not open) or -EINVAL.
 */
int vbk_foreign_attach(struct vbk_guest *g, int ram_fd)
{
	struct file *ram;

	if (ram_fd < 0)
		return -EBADF;
	ram = fget(ram_fd);
	if (!ram)
		return -EBADF;
	if (!shmem_file(ram) || !current->mm) {
		fput(ram);
		return -EINVAL;
	}
	g->ram = ram;
	g->mm = current->mm;
	mmgrab(g->mm);
	g->foreign = true;
	return 0;
}

/* The references vbk_foreign_attach took (g is being freed). */
void vbk_foreign_put(struct vbk_guest *g)
{
	if (g->ram)
		fput(g->ram);
	if (g->mm)
		mmdrop(g->mm);
	g->ram = NULL;
	g->mm = NULL;
}

/*
 * No worker runs after this returns. Revocation calls it once every CQ is gone (none can
 * queue the work again), holding ctl: the worker takes tbl and spinlocks, never ctl.
 */
void vbk_foreign_stop(struct vbk_guest *g)
{
	cancel_delayed_work_sync(&g->comp_work);	/* any attachment's: pushed CQs */
}

/* Whether [start, end) of mm is wholly in MAP_SHARED mappings of g's RAM. */
static bool range_in_ram(struct vbk_guest *g, struct mm_struct *mm, u64 start, u64 end)
{
	struct inode *ram = file_inode(g->ram);
	struct vm_area_struct *vma;

	mmap_assert_locked(mm);
	while (start < end) {
		vma = vma_lookup(mm, start);
		if (!vma || !(vma->vm_flags & VM_SHARED) || !vma->vm_file ||
		    file_inode(vma->vm_file) != ram)
			return false;
		start = vma->vm_end;
	}
	return true;
}

static int refuse_range(struct vbk_guest *g, const char *what, u64 addr, u64 len)
{
	pr_info_ratelimited("vbus_vrdma: guest %u: %s at %#llx (%llu bytes) is not in a shared mapping of the VM's RAM: EFAULT\n",
			    g->guest_id, what, addr, len);
	atomic64_inc(&g->n_error);
	return -EFAULT;
}

/*
 * An MR's range [addr, addr + len), the whole pages it touches, lies in shared mappings of
 * g's RAM in the caller's address space. 0 or -EFAULT. The pages are pinned after the
 * check (ib_reg_user_mr): only vbusd itself could change its mappings in between.
 */
int vbk_foreign_range_ok(struct vbk_guest *g, u64 addr, u64 len)
{
	struct mm_struct *mm = current->mm;
	u64 first = addr & PAGE_MASK, last = PAGE_ALIGN(addr + len);
	bool ok;

	if (mm != g->mm)
		return -EPERM;
	if (!len || addr + len < addr || last < addr)
		return refuse_range(g, "an MR", addr, len);
	mmap_read_lock(mm);
	ok = range_in_ram(g, mm, first, last);
	mmap_read_unlock(mm);
	return ok ? 0 : refuse_range(g, "an MR", addr, len);
}

/*
 * Pin npages pages from the page-aligned address first for a ring, as pin_user_pages_fast
 * does for a process guest, once they are found in shared mappings of g's RAM (checked and
 * pinned under one mmap lock). The pages pinned or -errno (-EFAULT: not in the RAM).
 */
long vbk_foreign_pin(struct vbk_guest *g, u64 first, unsigned int npages, struct page **pages)
{
	struct mm_struct *mm = current->mm;
	u64 len = (u64)npages << PAGE_SHIFT;
	long got;
	bool ok;

	if (mm != g->mm)
		return -EPERM;
	mmap_read_lock(mm);
	ok = range_in_ram(g, mm, first, first + len);
	got = ok ? pin_user_pages(first, npages, FOLL_WRITE | FOLL_LONGTERM, pages, NULL) :
		   -EFAULT;
	mmap_read_unlock(mm);
	return ok ? got : refuse_range(g, "a ring", first, len);
}

/*
 * Put cq on the worker's list (unless it is on one, or going) and have the worker run now.
 * Any context: the real CQ's completion handler, ARM_CQ. The work is queued under
 * comp_lock, so that once vbk_foreign_cq_unlist has passed, no kick of this CQ queues it.
 */
void vbk_foreign_cq_kick(struct vbk_cq *cq)
{
	struct vbk_guest *g = cq->g;
	unsigned long flags;

	spin_lock_irqsave(&g->comp_lock, flags);
	if (!cq->comp_dead) {
		if (list_empty(&cq->comp_node))
			list_add_tail(&cq->comp_node, &g->comp_pending);
		mod_delayed_work(system_highpri_wq, &g->comp_work, 0);
	}
	spin_unlock_irqrestore(&g->comp_lock, flags);
}

/* A new CQ: its real CQ armed for the first completion. 0 or -errno. */
int vbk_foreign_cq_arm(struct vbk_cq *cq)
{
	int r = ib_req_notify_cq(cq->cq, IB_CQ_NEXT_COMP | IB_CQ_REPORT_MISSED_EVENTS);

	if (r < 0)
		return r;
	if (r > 0)
		vbk_foreign_cq_kick(cq);
	return 0;
}

/* cq is about to be freed: off the worker's list for good. Takes tbl for writing, so no
 * worker is inside and none finds it afterwards; the caller holds ctl, not tbl.
 */
void vbk_foreign_cq_unlist(struct vbk_cq *cq)
{
	struct vbk_guest *g = cq->g;

	down_write(&g->tbl);
	spin_lock_irq(&g->comp_lock);
	cq->comp_dead = true;
	list_del_init(&cq->comp_node);
	spin_unlock_irq(&g->comp_lock);
	up_write(&g->tbl);
}

/*
 * A process guest's CQ is no longer pushed: the guest polls it again. If the guest armed
 * it, the real CQ stays armed as it asked; and if completions came meanwhile, the channel
 * is signalled (the guest's poll moves them).
 */
static void unpush(struct vbk_guest *g, struct vbk_cq *cq)
{
	u32 armed = le32_to_cpu(READ_ONCE(cq->q.ring->armed));
	int r;

	if (!armed || !cq->channel)
		return;
	r = ib_req_notify_cq(cq->cq, (armed == VRDMA_ARMED_SOLICITED ? IB_CQ_SOLICITED :
				      IB_CQ_NEXT_COMP) | IB_CQ_REPORT_MISSED_EVENTS);
	if (r < 0)
		atomic64_inc(&g->n_error);
	else if (r > 0)
		vbk_cq_fire(cq);
}

/*
 * Move what cq's real CQ holds into the guest's ring (what the guest's CQ has no room for
 * is lost, as natively: vbk_poll.c), re-arm it, and again while the re-arm says
 * completions may have been missed. Returns the completions moved; *again: the rounds ran
 * out with completions still coming, look at cq again. A broken ring takes nothing more
 * and its real CQ stays unarmed.
 */
static long comp_cq(struct vbk_guest *g, struct vbk_cq *cq, bool *again)
{
	long moved = 0;
	int k, r;

	for (k = 0; k < COMP_ROUNDS; k++) {
		moved += vbk_cq_move(g, cq);
		if (READ_ONCE(cq->q.broken))
			return moved;
		if (!g->foreign && !vbk_cq_keep_push(cq)) {
			unpush(g, cq);
			return moved;
		}
		r = ib_req_notify_cq(cq->cq, IB_CQ_NEXT_COMP | IB_CQ_REPORT_MISSED_EVENTS);
		if (r < 0)
			atomic64_inc(&g->n_error);
		if (r <= 0)
			return moved;
	}
	*again = true;
	return moved;
}

static void comp_work(struct work_struct *w)
{
	struct vbk_guest *g = container_of(to_delayed_work(w), struct vbk_guest, comp_work);
	bool again, next = false;
	struct vbk_cq *cq;
	LIST_HEAD(todo);
	long moved;

	down_read(&g->tbl);
	if (g->dead)
		goto out;
	spin_lock_irq(&g->comp_lock);
	list_splice_init(&g->comp_pending, &todo);
	spin_unlock_irq(&g->comp_lock);
	for (;;) {
		/* Off the list before it is looked at: a completion after this lists it again. */
		spin_lock_irq(&g->comp_lock);
		cq = list_first_entry_or_null(&todo, struct vbk_cq, comp_node);
		if (cq)
			list_del_init(&cq->comp_node);
		spin_unlock_irq(&g->comp_lock);
		if (!cq)
			break;
		again = false;
		moved = comp_cq(g, cq, &again);
		if (moved && cq->channel)
			vbk_cq_fire(cq);
		if (!again)
			continue;
		spin_lock_irq(&g->comp_lock);
		if (!cq->comp_dead && list_empty(&cq->comp_node))
			list_add_tail(&cq->comp_node, &g->comp_pending);
		spin_unlock_irq(&g->comp_lock);
		next = true;
	}
	/* Not dead under tbl: revocation, which cancels the work, has not begun its part. */
	if (next)
		mod_delayed_work(system_highpri_wq, &g->comp_work, 0);
out:
	up_read(&g->tbl);
}
