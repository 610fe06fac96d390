// SPDX-License-Identifier: GPL-2.0
/*
 * vbus_vmguest: the host's interrupts. One MSI-X vector per ivshmem vector; each is
 * delivered to the eventfd a process bound to it (VBUS_VM_IOC_IRQFD), one binding per
 * vector on the device.
 */
#include <linux/interrupt.h>
#include <linux/file.h>
#include "vmg.h"

/* Hard interrupt context: eventfd_signal takes the eventfd's wait-queue lock with
 * interrupts saved, nested inside v->lock (never the other way round).
 */
static irqreturn_t vmg_irq(int irq, void *data)
{
	struct vmg_vector *v = data;

	atomic64_inc(&v->interrupts);
	spin_lock(&v->lock);
	if (v->ctx)
		eventfd_signal(v->ctx, 1);
	spin_unlock(&v->lock);
	if (v->index == 0)
		vmg_chan_irq(v->dev);	/* the message channel's answer */
	return IRQ_HANDLED;
}

/**
 * vmg_irq_setup() - allocate MSI-X vectors and request their interrupts
 * @dev: the device; dev->nvectors is what the host offers, lowered to what PCI grants
 *
 * Return: 0 or -errno (nothing left allocated).
 */
int vmg_irq_setup(struct vmg_dev *dev)
{
	int n, err;
	u32 i;

	for (i = 0; i < VBUS_VM_MAX_VECTORS; i++) {
		dev->vec[i].dev = dev;
		dev->vec[i].index = i;
		spin_lock_init(&dev->vec[i].lock);
	}
	n = pci_alloc_irq_vectors(dev->pdev, 1, dev->nvectors, PCI_IRQ_MSIX);
	if (n < 0)
		return n;
	dev->nvectors = n;
	for (i = 0; i < dev->nvectors; i++) {
		err = request_irq(pci_irq_vector(dev->pdev, i), vmg_irq, 0, dev->name,
				  &dev->vec[i]);
		if (err)
			goto err_free;
		dev->vec[i].irq_requested = true;
	}
	return 0;

err_free:
	vmg_irq_teardown(dev);
	return err;
}

/* Free the interrupts (waiting for running handlers), then drop every binding. */
void vmg_irq_teardown(struct vmg_dev *dev)
{
	u32 i;

	for (i = 0; i < dev->nvectors; i++) {
		struct vmg_vector *v = &dev->vec[i];

		if (v->irq_requested)
			free_irq(pci_irq_vector(dev->pdev, i), v);
		v->irq_requested = false;
		if (v->ctx)
			eventfd_ctx_put(v->ctx);
		v->ctx = NULL;
		v->owner = NULL;
	}
	pci_free_irq_vectors(dev->pdev);
}

/* The host's doorbell on @vector (below dev->nvectors), registers mapped: the host's peer
 * ID in the upper 16 bits, the vector below. Any context: a signal's eventfd wake-up rings
 * it with interrupts off.
 */
void vmg_ring_vector(struct vmg_dev *dev, u32 vector)
{
	writel(dev->host_peer << 16 | vector, dev->regs + VMG_REG_DOORBELL);
	atomic64_inc(&dev->vec[vector].doorbells);
}

/**
 * vmg_irq_bind_ctx() - deliver @vector's interrupts to @ctx
 * @dev: the device
 * @f: the open file that binds (and alone may rebind or unbind)
 * @vector: below dev->nvectors
 * @ctx: an eventfd context whose reference this takes (put on failure), or NULL to unbind
 *
 * Return: 0, -EBUSY (another file holds the vector) or -ENOENT (unbinding what @f does
 * not hold).
 */
int vmg_irq_bind_ctx(struct vmg_dev *dev, struct file *f, u32 vector, struct eventfd_ctx *ctx)
{
	struct vmg_vector *v = &dev->vec[vector];
	struct eventfd_ctx *old = NULL;
	int err = 0;

	spin_lock_irq(&v->lock);
	if (v->owner && v->owner != f) {
		err = -EBUSY;
	} else if (!ctx && v->owner != f) {
		err = -ENOENT;
	} else {
		old = v->ctx;
		v->ctx = ctx;
		v->owner = ctx ? f : NULL;
		ctx = NULL;
	}
	spin_unlock_irq(&v->lock);
	if (ctx)
		eventfd_ctx_put(ctx);
	if (old)
		eventfd_ctx_put(old);
	return err;
}

/* As vmg_irq_bind_ctx, for the caller's eventfd descriptor @fd, or -1 to unbind. */
int vmg_irq_bind(struct vmg_dev *dev, struct file *f, u32 vector, int fd)
{
	struct eventfd_ctx *ctx = NULL;

	if (fd != -1) {
		ctx = eventfd_ctx_fdget(fd);
		if (IS_ERR(ctx))
			return PTR_ERR(ctx);
	}
	return vmg_irq_bind_ctx(dev, f, vector, ctx);
}

/* @f is being released: drop what it bound. */
void vmg_irq_unbind_file(struct vmg_dev *dev, struct file *f)
{
	u32 i;

	for (i = 0; i < dev->nvectors; i++) {
		struct vmg_vector *v = &dev->vec[i];
		struct eventfd_ctx *old = NULL;

		spin_lock_irq(&v->lock);
		if (v->owner == f) {
			old = v->ctx;
			v->ctx = NULL;
			v->owner = NULL;
		}
		spin_unlock_irq(&v->lock);
		if (old)
			eventfd_ctx_put(old);
	}
}
