// SPDX-License-Identifier: GPL-2.0
/*
 * Rings in the guest's own memory: a struct vrdma_ring then `entries` slots, at a user
 * address of the attaching process (on a foreign attachment, vbusd's address inside its
 * shared mapping of the VM's RAM, and nowhere else). The pages are pinned (FOLL_LONGTERM)
 * and mapped into the kernel once, at create; the ring's geometry is kept here and never
 * re-read from guest memory, and every index the guest writes is checked against it.
 */
#include <linux/mm.h>
#include <linux/sched/mm.h>
#include <linux/slab.h>
#include <linux/vmalloc.h>
#include "vbk.h"

int vbk_queue_map(struct vbk_guest *g, struct vbk_queue *q, u32 shm, u64 uaddr, u32 entries,
		  u32 stride, u32 min_stride)
{
	u64 size, first, last;
	unsigned int npages;
	long got;
	int err;

	memset(q, 0, sizeof(*q));
	spin_lock_init(&q->lock);
	if (shm)
		return -EINVAL;	/* regions are the relay's: here rings are the caller's memory */
	if (!entries || (entries & (entries - 1)) || entries > VBK_MAX_RING_ENTRIES ||
	    stride < min_stride || (stride & (stride - 1)) || stride > VBK_MAX_STRIDE ||
	    (uaddr & 63))
		return -EINVAL;
	size = sizeof(struct vrdma_ring) + (u64)entries * stride;
	if (uaddr + size < uaddr || !access_ok((void __user *)(uintptr_t)uaddr, size))
		return -EFAULT;
	first = uaddr & PAGE_MASK;
	last = PAGE_ALIGN(uaddr + size);
	npages = (last - first) >> PAGE_SHIFT;
	err = vbk_charge(g, 0, last - first);	/* g's and its ancestors' max-pinned */
	if (err)
		return err;
	q->pages = kvcalloc(npages, sizeof(*q->pages), GFP_KERNEL);
	if (!q->pages) {
		err = -ENOMEM;
		goto err_uncharge;
	}
	if (g->foreign)	/* only within the VM's RAM (vbk_foreign.c) */
		got = vbk_foreign_pin(g, first, npages, q->pages);
	else
		got = pin_user_pages_fast(first, npages, FOLL_WRITE | FOLL_LONGTERM, q->pages);
	if (got < 0) {
		err = got;
		goto err_free;
	}
	q->npages = got;
	if (got != npages) {
		err = -EFAULT;
		goto err_unpin;
	}
	q->vaddr = vmap(q->pages, npages, VM_MAP, PAGE_KERNEL);
	if (!q->vaddr) {
		err = -ENOMEM;
		goto err_unpin;
	}
	q->ring = q->vaddr + (uaddr - first);
	q->slots = (u8 *)(q->ring + 1);
	q->entries = entries;
	q->stride = stride;
	g->pinned += last - first;
	return 0;

err_unpin:
	unpin_user_pages(q->pages, q->npages);
err_free:
	kvfree(q->pages);
	q->pages = NULL;
err_uncharge:
	vbk_uncharge(g, 0, last - first);
	return err;
}

void vbk_queue_unmap(struct vbk_guest *g, struct vbk_queue *q)
{
	if (!q->pages)
		return;
	vunmap(q->vaddr);
	unpin_user_pages_dirty_lock(q->pages, q->npages, true);
	kvfree(q->pages);
	g->pinned -= (u64)q->npages << PAGE_SHIFT;
	vbk_uncharge(g, 0, (u64)q->npages << PAGE_SHIFT);
	q->pages = NULL;
	q->ring = NULL;
}

/* A ring whose guest broke its rules: no more work is taken from it, and the guest sees
 * VRDMA_RING_BROKEN.
 */
void vbk_queue_break(struct vbk_guest *g, struct vbk_queue *q)
{
	if (q->broken)
		return;
	q->broken = true;
	atomic_or(VRDMA_RING_BROKEN, (atomic_t *)&q->ring->flags);	/* x86: little-endian */
	atomic64_inc(&g->n_error);
}

/*
 * Slots the guest has published past our index, or -1 if its index is nonsense. The
 * acquire load pairs with the guest's store of `prod` after it wrote the slots.
 */
s64 vbk_queue_pending(struct vbk_queue *q)
{
	/* Acquire: pairs with the guest's release of prod after its slot writes. */
	u32 avail = le32_to_cpu(smp_load_acquire(&q->ring->prod)) - q->idx;

	if (avail > q->entries)
		return -1;
	return avail;
}
