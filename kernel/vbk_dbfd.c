// SPDX-License-Identifier: GPL-2.0
/*
 * A foreign attachment's doorbell eventfd (VBK_IOC_DOORBELL_FD, docs/kernel.md "The VM's
 * doorbell"). vbusd hands the module the eventfd that a VM's ivshmem doorbell writes, and
 * the module drains the VM's queues in the writer's own context, as it does a process
 * guest's in that guest's ioctl: no vbusd thread wakes up in between.
 *
 * The eventfd's wake callback runs under the eventfd's wait-queue lock with interrupts
 * off, where nothing may sleep and local_bh_enable (rxe's requester runs there) would turn
 * interrupts back on under that lock. So it only takes the counter and queues the drain:
 * as task work on the writer (QEMU's vCPU thread under TCG, or KVM's ioeventfd in that
 * thread's KVM_RUN), run at its return to user mode, or on a worker when the writer is a
 * kernel thread, an exiting task, or an interrupt.
 *
 * Lifetime. One drain is pending at most (db_queued); it holds a reference to the
 * attachment and one to this module, and drops both when done. (A task-work drain returns
 * through this module's text after its module_put: an rmmod in that window of a few
 * instructions is the one race left; worker drains are waited for by the module's exit.)
 * The eventfd must be this attachment's alone and not EFD_SEMAPHORE: the wake callback
 * takes its whole count. A count it held when given is drained at once but left there
 * (only the callback, under the eventfd's lock, may take it); the next write takes it. The wait entry goes (under
 * the eventfd's lock, so no callback is running after) at VBK_IOC_DOORBELL_FD -1, at
 * revocation, and before a new eventfd replaces it; a drain that runs after revocation
 * finds the attachment dead and does nothing.
 */
#include <linux/file.h>
#include <linux/module.h>
#include <linux/poll.h>
#include <linux/sched.h>
#include <linux/task_work.h>
#include <linux/workqueue.h>
#include "vbk.h"

/* The drains whose writer is no user task: the module's own queue, so that its exit waits
 * for them (destroy_workqueue) and a writer in interrupt context cannot crowd a shared one. */
static struct workqueue_struct *dbfd_wq;

int vbk_dbfd_module_init(void)
{
	dbfd_wq = alloc_workqueue("vbus_vrdma_db", WQ_HIGHPRI, 0);
	return dbfd_wq ? 0 : -ENOMEM;
}

void vbk_dbfd_module_exit(void)
{
	destroy_workqueue(dbfd_wq);
}

static void dbfd_drain(struct vbk_guest *g)
{
	/* Cleared before the rings are read (xchg: a full barrier), so a write that found the
	 * flag set is seen by this drain, and one that comes after queues another. */
	atomic_xchg(&g->db_queued, 0);
	vbk_doorbell(g, VBK_DOORBELL_ALL);	/* -EIO once revoked: nothing to do */
	vbk_guest_put(g);
	module_put(THIS_MODULE);
}

static void dbfd_task(struct callback_head *cb)
{
	dbfd_drain(container_of(cb, struct vbk_guest, db_task));
}

static void dbfd_work(struct work_struct *w)
{
	dbfd_drain(container_of(w, struct vbk_guest, db_work));
}

/* Any context, the eventfd's lock possibly held: queue one drain unless one is pending. */
static void dbfd_queue(struct vbk_guest *g)
{
	if (atomic_xchg(&g->db_queued, 1))
		return;
	kref_get(&g->ref);
	__module_get(THIS_MODULE);
	atomic64_inc(&g->n_db_wake);
	if (in_task() && !(current->flags & (PF_KTHREAD | PF_EXITING)) &&
	    !task_work_add(current, &g->db_task, TWA_RESUME))
		return;
	atomic64_inc(&g->n_db_worker);
	queue_work(dbfd_wq, &g->db_work);
}

static int dbfd_wake(wait_queue_entry_t *wait, unsigned int mode, int sync, void *key)
{
	struct vbk_guest *g = container_of(wait, struct vbk_guest, db_wait);
	u64 cnt;

	if (!(key_to_poll(key) & EPOLLIN))
		return 0;	/* EPOLLHUP: the eventfd's last file closed; our ctx lives on */
	eventfd_ctx_do_read(g->db_ctx, &cnt);	/* under its lock: the counter restarts */
	dbfd_queue(g);
	return 0;
}

static void dbfd_ptable(struct file *f, wait_queue_head_t *wqh, poll_table *pt)
{
	struct vbk_guest *g = container_of(pt, struct vbk_guest, db_pt);

	add_wait_queue(wqh, &g->db_wait);
}

void vbk_dbfd_init(struct vbk_guest *g)
{
	atomic_set(&g->db_queued, 0);
	init_task_work(&g->db_task, dbfd_task);
	INIT_WORK(&g->db_work, dbfd_work);
	init_waitqueue_func_entry(&g->db_wait, dbfd_wake);
	init_poll_funcptr(&g->db_pt, dbfd_ptable);
}

/* Stop listening (under ctl). No callback runs after this; a queued drain may. */
void vbk_dbfd_stop(struct vbk_guest *g)
{
	u64 cnt;

	if (!g->db_ctx)
		return;
	eventfd_ctx_remove_wait_queue(g->db_ctx, &g->db_wait, &cnt);
	eventfd_ctx_put(g->db_ctx);
	g->db_ctx = NULL;
}

/*
 * VBK_IOC_DOORBELL_FD: fd an eventfd (its writes ring VBK_DOORBELL_ALL), or -1 (no longer).
 * Foreign attachments only (EINVAL); EBADF or EINVAL for an fd that is not an eventfd.
 */
long vbk_dbfd_set(struct vbk_guest *g, int fd)
{
	struct eventfd_ctx *ctx = NULL;
	struct fd f = { NULL, 0 };
	__poll_t ready;
	long err = 0;

	if (!g->foreign)
		return -EINVAL;
	if (fd >= 0) {
		f = fdget(fd);
		if (!f.file)
			return -EBADF;
		ctx = eventfd_ctx_fileget(f.file);
		if (IS_ERR(ctx)) {
			fdput(f);
			return PTR_ERR(ctx);
		}
	} else if (fd != -1) {
		return -EBADF;
	}
	mutex_lock(&g->ctl);
	if (g->dead) {
		err = -EIO;
		goto out;
	}
	vbk_dbfd_stop(g);
	if (ctx) {
		g->db_ctx = ctx;
		ctx = NULL;
		ready = vfs_poll(f.file, &g->db_pt);
		if (ready & EPOLLIN)	/* rung before we listened */
			dbfd_queue(g);
	}
out:
	mutex_unlock(&g->ctl);
	if (ctx)
		eventfd_ctx_put(ctx);
	if (f.file)
		fdput(f);
	return err;
}
