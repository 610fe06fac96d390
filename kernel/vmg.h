/* SPDX-License-Identifier: GPL-2.0 */
/*
 * vbus_vmguest: the guest driver of a VM on a vbus (docs/vm.md). It drives QEMU's
 * ivshmem-doorbell device (1af4:1110) that vbusd serves, and gives processes in the VM
 * /dev/vbus-vmN (include/vbus/vm.h).
 *
 * Lifetime: struct vmg_dev is counted (kref): the PCI device holds one reference until
 * remove, each open file one until release. Remove marks it gone under dev->lock, so
 * that no ioctl touches the registers after they are unmapped, and frees the interrupts.
 */
#ifndef VMG_H
#define VMG_H

#include <linux/eventfd.h>
#include <linux/kref.h>
#include <linux/miscdevice.h>
#include <linux/mutex.h>
#include <linux/pci.h>
#include <linux/poll.h>
#include <linux/wait.h>
#include <linux/workqueue.h>
#include <linux/spinlock.h>
#include <vbus/vm.h>

/* ivshmem's BAR0 registers (QEMU docs/specs/ivshmem-spec.rst). */
#define VMG_REG_IVPOSITION	8
#define VMG_REG_DOORBELL	12

struct vmg_dev;

/* A region of a process's pages pinned for vbusd (vmg_shm.c). */
struct vmg_pin {
	struct list_head node;		/* on its file's pins, or on chan.dead */
	u32 id;				/* the bus's region id, once answered */
	u32 slot;			/* on chan.dead: the connection whose RESET frees it */
	bool orphan;			/* its id was never learnt: the connection's end frees it */
	u32 npages;
	struct page **pages;
	struct mm_struct *mm;		/* charged: pinned_vm */
};

/* A signal the bus gave one of the VM's vectors (vmg_sig.c). */
struct vmg_sig {
	struct list_head node;		/* on its file's sigs */
	struct vmg_dev *dev;
	u32 id, vector, direction;
	struct eventfd_ctx *ctx;	/* TO_HOST: the eventfd whose writes ring */
	wait_queue_entry_t wait;	/* TO_HOST: on ctx's wait queue once armed */
	poll_table pt;
	bool armed;			/* TO_HOST: wait is queued */
	bool bound;			/* TO_GUEST: the vector's interrupt signals it */
};

/* One interrupt vector: the MSI-X vector from the host, and the doorbell to it. */
struct vmg_vector {
	struct vmg_dev *dev;
	u32 index;
	spinlock_t lock;		/* guards ctx and owner; taken in the interrupt */
	struct eventfd_ctx *ctx;	/* signalled on each interrupt, or NULL */
	struct file *owner;		/* the open file that bound ctx */
	atomic64_t interrupts;
	atomic64_t doorbells;
	bool irq_requested;
};

/*
 * One open file of /dev/vbus-vmN (vmg_cdev.c): its connection on the bus, a slot of the
 * channel it takes at its first write and gives back, through a RESET, when it is
 * released (vmg_chan.c); its request and the answer kept for it until read; and what its
 * connection holds. dev->lock guards it but for the event fields, which dev->ev.lock
 * guards.
 */
struct vmg_file {
	struct vmg_dev *dev;
	struct file *file;
	struct list_head node;		/* on chan.files while it has a slot */
	int slot;			/* the channel's slot, or -1 */
	bool live;			/* its connection has begun: conn is set */
	u32 conn;			/* vbusd's conn_seq of its connection (vmg_ev_set_conn) */
	bool posted;			/* its request was posted, its answer not taken */
	bool answered;			/* with posted: the answer is kept below */
	bool driver;			/* with posted: the driver's own (vmg_chan_call) */
	bool abandoned;			/* with driver: its caller left (fatal signal) */
	bool dropped;			/* answered: served, but the answer could not be kept */
	s32 ans_status;			/* answered: the channel's verdict, or -errno */
	u32 ans_len;
	void *ans;			/* answered, status 0: the message, ans_len bytes */
	struct vmg_pin *inflight;	/* the region the driver's request hands over */
	struct list_head pins;		/* regions the bus maps (vmg_shm.c) */
	struct list_head sigs;		/* signals the bus gave (vmg_sig.c) */
	/* Events (vmg_ev.c), under dev->ev.lock. */
	struct list_head ev_node;	/* on ev.files while bound */
	struct eventfd_ctx *ev_ctx;
	u32 ev_from;			/* events from this number on are queued */
	bool ev_new;			/* queued in this interrupt: signal ev_ctx */
	u32 qhead, qn, lost;
	u8 q[VBUS_VM_EVQ_MAX][48];	/* struct vbus_event each */
};

/* The message channel in BAR2 (vmg_chan.c, struct vbus_vm_chan): one mailbox that the
 * files' connections take in turn. dev->lock guards all but irqs, which vector 0's
 * interrupt increments.
 */
struct vmg_chan {
	bool present;			/* vbusd offers it and its geometry is sound */
	bool conns;			/* VBUS_VM_F_CONNS: req_conn names the slot */
	u32 max_conns;			/* slots: the header's with VBUS_VM_F_CONNS, else 1 */
	struct vbus_vm_chan __iomem *ctl;
	void __iomem *req, *resp;	/* msg_max bytes each */
	u32 msg_max;
	u64 ctl_off, req_off, resp_off;	/* where the three are in BAR2 */
	u32 seq;			/* req_seq of the last request posted */
	bool busy;			/* a request is posted, its answer not taken */
	struct vmg_file *busy_file;	/* whose; NULL: a RESET's, or its file was released */
	bool busy_reset;		/* it is a RESET, of slot reset_slot */
	u32 reset_slot;			/* or VBUS_VM_CONN_ALL */
	DECLARE_BITMAP(used, VBUS_VM_MAX_CONNS);	/* a file's, or its RESET is not answered */
	DECLARE_BITMAP(reset_due, VBUS_VM_MAX_CONNS);	/* released: the RESET waits its turn */
	struct list_head files;		/* files with a slot */
	struct list_head dead;		/* ended connections' regions, freed by their RESET */
	atomic_t irqs;			/* vector 0's interrupts and the mailbox's changes: the
					 * waiters' event count */
	wait_queue_head_t wq;		/* woken with irqs and by remove */
	struct work_struct pump;	/* after vector 0's interrupt: take the answer, post a
					 * due RESET (vmg_chan_pump) */
	bool host_gone;			/* vbusd's heartbeat stopped (vmg_beat.c) */
};

/* Watching vbusd's heartbeat (vmg_beat.c); only its work item touches last and seen. */
struct vmg_beat {
	u32 ms;				/* the header's beat_ms; 0: not offered */
	struct delayed_work work;
	u32 last;			/* chan.beat when last looked at */
	unsigned long seen;		/* jiffies when it last moved */
};

/* The bus's events (vmg_ev.c, struct vbus_vm_evring). lock guards all but the geometry,
 * and the bound files' event fields; vector 0's interrupt takes it. */
struct vmg_ev {
	bool present;			/* vbusd offers a ring and its geometry is sound */
	void __iomem *ring;
	u32 entries;
	spinlock_t lock;
	u32 next;			/* the number of the next event to take from the ring */
	struct list_head files;		/* files with an eventfd bound (vmg_file.ev_node) */
};

struct vmg_dev {
	struct kref ref;
	struct pci_dev *pdev;
	void __iomem *regs;		/* BAR0 */
	resource_size_t bar2_size;
	struct mutex lock;		/* guards gone against the register writes */
	bool gone;
	int id;				/* N of /dev/vbus-vmN */
	char name[16];
	struct miscdevice misc;
	u32 version, vm_peer, host_peer, nvectors;
	char bus[VBUS_VM_NAME_MAX];
	struct vmg_vector vec[VBUS_VM_MAX_VECTORS];
	struct vmg_chan chan;
	struct vmg_ev ev;
	struct vmg_beat beat;
};

void vmg_dev_put(struct vmg_dev *dev);
/* vmg_cdev.c */
int vmg_cdev_register(struct vmg_dev *dev);
void vmg_cdev_unregister(struct vmg_dev *dev);
/* vmg_chan.c */
void vmg_chan_parse(struct vmg_dev *dev, const struct vbus_vm_bar2 *h, void __iomem *bar2);
bool vmg_chan_range_free(struct vmg_dev *dev, u64 off, u64 len);
void vmg_chan_start(struct vmg_dev *dev);
void vmg_chan_irq(struct vmg_dev *dev);
void vmg_chan_remove(struct vmg_dev *dev);
void vmg_chan_release(struct vmg_file *fl);
void vmg_chan_init(struct vmg_dev *dev);
void vmg_chan_stop(struct vmg_dev *dev);
ssize_t vmg_chan_write(struct file *f, const char __user *ubuf, size_t n, loff_t *pos);
ssize_t vmg_chan_read(struct file *f, char __user *ubuf, size_t n, loff_t *pos);
__poll_t vmg_chan_poll(struct file *f, poll_table *pt);
int vmg_chan_call(struct vmg_file *fl, const void *req, u32 n,
		  struct vmg_pin *pin, bool *kept, s32 *status, void *out, u32 outlen);
int vmg_chan_revoke(struct vmg_file *fl, u32 op, u64 seq, u32 id, s32 *status);
long vmg_chan_revoke_ioctl(struct vmg_file *fl, void __user *arg, u32 op,
			   void (*drop)(struct vmg_file *fl, u32 id));
/* vmg_beat.c */
void vmg_beat_init(struct vmg_dev *dev);
void vmg_beat_parse(struct vmg_dev *dev, const struct vbus_vm_bar2 *h);
void vmg_beat_start(struct vmg_dev *dev);
void vmg_beat_stop(struct vmg_dev *dev);
void vmg_chan_host_gone(struct vmg_dev *dev);	/* vmg_chan.c */
/* vmg_ev.c */
void vmg_ev_parse(struct vmg_dev *dev, const struct vbus_vm_bar2 *h, void __iomem *bar2);
void vmg_ev_irq(struct vmg_dev *dev);
void vmg_ev_unbind(struct vmg_file *fl);
void vmg_ev_set_conn(struct vmg_file *fl, u32 conn);
void vmg_ev_host_gone(struct vmg_dev *dev);
long vmg_ev_bind_ioctl(struct vmg_file *fl, void __user *arg);
long vmg_ev_take_ioctl(struct vmg_file *fl, void __user *arg);
/* vmg_shm.c */
long vmg_shm_ioctl(struct vmg_file *fl, void __user *arg);
long vmg_shmrevoke_ioctl(struct vmg_file *fl, void __user *arg);
void vmg_pin_free(struct vmg_pin *p, bool unpin);
void vmg_pins_free(struct list_head *l);
void vmg_pins_leak(struct list_head *l);
/* vmg_sig.c */
long vmg_sig_ioctl(struct vmg_file *fl, void __user *arg);
long vmg_sigrevoke_ioctl(struct vmg_file *fl, void __user *arg);
void vmg_sigs_free(struct vmg_file *fl);
/* vmg_irq.c */
int vmg_irq_setup(struct vmg_dev *dev);
void vmg_irq_teardown(struct vmg_dev *dev);
void vmg_ring_vector(struct vmg_dev *dev, u32 vector);
int vmg_irq_bind(struct vmg_dev *dev, struct file *f, u32 vector, int fd);
int vmg_irq_bind_ctx(struct vmg_dev *dev, struct file *f, u32 vector, struct eventfd_ctx *ctx);
void vmg_irq_unbind_file(struct vmg_dev *dev, struct file *f);

#endif /* VMG_H */
