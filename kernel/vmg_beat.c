// SPDX-License-Identifier: GPL-2.0
/*
 * vbus_vmguest: vbusd's death (docs/vm.md, "vbusd's death"; VBUS_VM_F_BEAT). vbusd bumps
 * chan.beat in BAR2 every beat_ms while it lives; nothing else tells a VM that it died (QEMU
 * runs on without its ivshmem server). A work item looks at the beat every second: one that
 * has not moved for host_timeout_ms means the bus is gone, and the channel's owner gets a
 * DISCONNECTED event (its library then reports IBV_EVENT_DEVICE_FATAL on every context, as
 * for a process guest whose socket closed); every request from then on, and every sleeper,
 * fails with ECONNRESET. Only a new probe (the device removed and found again) undoes it.
 */
#include <linux/io.h>
#include <linux/jiffies.h>
#include <linux/module.h>
#include <vbus/proto.h>
#include "vmg.h"

static unsigned int host_timeout_ms = 5000;
module_param(host_timeout_ms, uint, 0644);
MODULE_PARM_DESC(host_timeout_ms,
		 "vbusd is taken for dead once its heartbeat stops for this long (ms; 0: never)");

/* Whether to look: the host offers a heartbeat, and the module parameter allows it. */
static bool vmg_beat_on(struct vmg_dev *dev)
{
	return dev->beat.ms && READ_ONCE(host_timeout_ms);
}

static void vmg_beat_work(struct work_struct *w)
{
	struct vmg_beat *b = container_of(to_delayed_work(w), struct vmg_beat, work);
	struct vmg_dev *dev = container_of(b, struct vmg_dev, beat);
	u32 now = readl(&dev->chan.ctl->beat);
	unsigned int limit = READ_ONCE(host_timeout_ms);

	if (now != b->last || !limit) {
		b->last = now;
		b->seen = jiffies;
	} else if (time_after(jiffies, b->seen + msecs_to_jiffies(limit))) {
		dev_warn(&dev->pdev->dev,
			 "vbusd's heartbeat stopped %u ms ago (beat %u): the bus is gone\n",
			 jiffies_to_msecs(jiffies - b->seen), now);
		vmg_chan_host_gone(dev);
		return;		/* nothing more to look for */
	}
	schedule_delayed_work(&b->work, HZ);
}

void vmg_beat_init(struct vmg_dev *dev)
{
	INIT_DELAYED_WORK(&dev->beat.work, vmg_beat_work);
}

/* Probe, with the channel's geometry (vmg_chan_parse): the header's period. */
void vmg_beat_parse(struct vmg_dev *dev, const struct vbus_vm_bar2 *h)
{
	u32 ms = le32_to_cpu(h->beat_ms);

	if (!(le32_to_cpu(h->features) & VBUS_VM_F_BEAT))
		return;
	if (ms < 10 || ms > 60000) {
		dev_err(&dev->pdev->dev, "bad heartbeat period %u ms: not watched\n", ms);
		return;
	}
	dev->beat.ms = ms;
}

/* Probe, the channel started: look at the beat from now on. */
void vmg_beat_start(struct vmg_dev *dev)
{
	struct vmg_beat *b = &dev->beat;

	if (!vmg_beat_on(dev))
		return;
	b->last = readl(&dev->chan.ctl->beat);
	b->seen = jiffies;
	schedule_delayed_work(&b->work, HZ);
}

/* Remove, before dev->lock is taken (the work takes it). */
void vmg_beat_stop(struct vmg_dev *dev)
{
	cancel_delayed_work_sync(&dev->beat.work);
}
