// SPDX-License-Identifier: GPL-2.0
/*
 * vbus_vmguest: the PCI driver of the ivshmem-doorbell device vbusd serves (docs/vm.md).
 * Probe maps BAR0 (registers) and BAR2 (vbusd's struct vbus_vm_bar2 and the message
 * channel), checks the header, sets up one MSI-X interrupt per vector, ends any connection
 * an earlier driver left on the channel and registers /dev/vbus-vmN.
 */
#include <linux/idr.h>
#include <linux/io.h>
#include <linux/module.h>
#include <linux/slab.h>
#include "vmg.h"

#define VMG_VENDOR_ID	0x1af4	/* Red Hat, Inc. (QEMU's ivshmem) */
#define VMG_DEVICE_ID	0x1110

static DEFINE_IDA(vmg_ida);

static void vmg_dev_free(struct kref *ref)
{
	struct vmg_dev *dev = container_of(ref, struct vmg_dev, ref);

	ida_free(&vmg_ida, dev->id);
	kfree(dev);
}

void vmg_dev_put(struct vmg_dev *dev)
{
	kref_put(&dev->ref, vmg_dev_free);
}

/* Read and check the header vbusd wrote at the start of BAR2: 0 or -errno. The host is
 * not trusted to be right: every field is checked before use.
 */
static int vmg_read_header(struct vmg_dev *dev, void __iomem *bar2)
{
	struct vbus_vm_bar2 h = { 0 };
	u32 ivpos = readl(dev->regs + VMG_REG_IVPOSITION);
	u32 hsize;

	if (dev->bar2_size < VBUS_VM_BAR2_MIN_SIZE)
		return -ENODEV;
	/* Once: the host could change it under us. */
	memcpy_fromio(&h, bar2, min_t(resource_size_t, dev->bar2_size, sizeof(h)));
	hsize = le32_to_cpu(h.header_size);
	if (le64_to_cpu(h.magic) != VBUS_VM_BAR2_MAGIC) {
		dev_err(&dev->pdev->dev, "BAR2 has no vbus header: not a vbus ivshmem device\n");
		return -ENODEV;
	}
	dev->version = le32_to_cpu(h.version);
	dev->host_peer = le32_to_cpu(h.host_peer);
	dev->vm_peer = le32_to_cpu(h.vm_peer);
	dev->nvectors = le32_to_cpu(h.vectors);
	if (dev->version != VBUS_VM_VERSION || hsize < VBUS_VM_BAR2_MIN_SIZE ||
	    hsize > dev->bar2_size ||
	    dev->host_peer > 0xffff || dev->vm_peer != ivpos || dev->host_peer == dev->vm_peer ||
	    !dev->nvectors || dev->nvectors > VBUS_VM_MAX_VECTORS ||
	    !memchr(h.bus, 0, sizeof(h.bus))) {
		dev_err(&dev->pdev->dev,
			"bad vbus header: version %u host %u vm %u (IVPosition %u) vectors %u\n",
			dev->version, dev->host_peer, dev->vm_peer, ivpos, dev->nvectors);
		return -EINVAL;
	}
	memcpy(dev->bus, h.bus, sizeof(dev->bus));
	if (hsize >= sizeof(h))	/* a header with the channel's fields */
		vmg_chan_parse(dev, &h, bar2);
	return 0;
}

static int vmg_probe(struct pci_dev *pdev, const struct pci_device_id *id)
{
	struct vmg_dev *dev;
	int err;

	err = pcim_enable_device(pdev);
	if (err)
		return err;
	err = pcim_iomap_regions(pdev, BIT(0) | BIT(2), KBUILD_MODNAME);
	if (err)
		return err;
	/* An MSI-X message is a memory write by the device: without bus mastering QEMU
	 * drops it, and no interrupt arrives.
	 */
	pci_set_master(pdev);
	dev = kzalloc(sizeof(*dev), GFP_KERNEL);
	if (!dev)
		return -ENOMEM;
	kref_init(&dev->ref);
	mutex_init(&dev->lock);
	vmg_chan_init(dev);
	spin_lock_init(&dev->ev.lock);
	INIT_LIST_HEAD(&dev->ev.files);
	vmg_beat_init(dev);
	dev->pdev = pdev;
	dev->regs = pcim_iomap_table(pdev)[0];
	dev->bar2_size = pci_resource_len(pdev, 2);
	dev->id = ida_alloc(&vmg_ida, GFP_KERNEL);
	if (dev->id < 0) {
		err = dev->id;
		kfree(dev);
		return err;
	}
	snprintf(dev->name, sizeof(dev->name), VBUS_VM_DEV_NAME "%d", dev->id);
	err = vmg_read_header(dev, pcim_iomap_table(pdev)[2]);
	if (err)
		goto err_put;
	err = vmg_irq_setup(dev);
	if (err)
		goto err_put;
	pci_set_drvdata(pdev, dev);
	vmg_chan_start(dev);
	vmg_beat_start(dev);
	err = vmg_cdev_register(dev);
	if (err)
		goto err_irq;
	dev_info(&pdev->dev, "/dev/%s: bus %s, peer %u, host peer %u, %u vectors, %s, %u connections\n",
		 dev->name, dev->bus, dev->vm_peer, dev->host_peer, dev->nvectors,
		 dev->chan.present ? dev->ev.present ? "message channel, events" :
		 "message channel" : "no message channel",
		 dev->chan.present ? dev->chan.max_conns : 0);
	return 0;

err_irq:
	vmg_beat_stop(dev);
	vmg_irq_teardown(dev);
err_put:
	vmg_chan_stop(dev);	/* vector 0 may have interrupted before a later one failed */
	vmg_dev_put(dev);
	return err;
}

static void vmg_remove(struct pci_dev *pdev)
{
	struct vmg_dev *dev = pci_get_drvdata(pdev);

	vmg_cdev_unregister(dev);	/* no new opens */
	vmg_beat_stop(dev);		/* its work takes dev->lock */
	mutex_lock(&dev->lock);
	vmg_chan_remove(dev);		/* vbusd ends every file's connection */
	WRITE_ONCE(dev->gone, true);	/* open files: -ENODEV from now on */
	mutex_unlock(&dev->lock);
	wake_up_all(&dev->chan.wq);	/* sleepers in read() and write() see gone */
	vmg_irq_teardown(dev);
	vmg_chan_stop(dev);		/* the pump's work, after the last interrupt */
	vmg_dev_put(dev);		/* the last open file may hold it longer */
}

static const struct pci_device_id vmg_ids[] = {
	{ PCI_DEVICE(VMG_VENDOR_ID, VMG_DEVICE_ID) },
	{ }
};
MODULE_DEVICE_TABLE(pci, vmg_ids);

static struct pci_driver vmg_driver = {
	.name = KBUILD_MODNAME,
	.id_table = vmg_ids,
	.probe = vmg_probe,
	.remove = vmg_remove,
};
module_pci_driver(vmg_driver);

MODULE_DESCRIPTION("vbus VM guest driver: the bus over QEMU's ivshmem-doorbell device");
MODULE_LICENSE("GPL");
