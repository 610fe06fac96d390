// SPDX-License-Identifier: MIT
/*
 * The kernel backend for a VM's connection (docs/vm.md, "The kernel backend for VM
 * guests"). A process in a VM makes no system call on the host, so vbusd holds the module's
 * attachment for it (VBK_ATTACH_F_FOREIGN, over the VM's RAM memfd) and makes its calls.
 * The VM's library speaks the relay's DEVCALL format; this file rewrites what names memory
 * into the module's format, and passes the rest as it is:
 *   - a queue's region and offset become the ring's address in vbusd's mapping of that
 *     region (guest RAM, mapped from the memfd at DEVSHM), checked by the ring rules
 *     against the region's size; the region stays held while the queue lives;
 *   - an MR's pieces become one window of vbusd's address space over the same pages,
 *     registered as one piece at the guest's iova; the window goes after the call, the
 *     module's pins hold the pages;
 *   - a CQ's channel becomes vbusd's descriptor of the vector's interrupt eventfd, which
 *     the module signals itself (QEMU turns it into the vector's MSI-X interrupt).
 * What the guest sends is never passed where the module takes an address: a queue's shm 0
 * or an MR of no pieces would name vbusd's own memory. The module also refuses any range
 * outside a shared mapping of the RAM memfd.
 * The connection's thread (one per open) waits on the doorbell the VM rings (the vector's
 * doorbell eventfd, written by QEMU), then has the module drain every queue
 * (VBK_DOORBELL_ALL); it also forwards the module's async events. Completions need no
 * one here: the module moves them into the CQ rings itself.
 */
#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <unistd.h>
#include <vbus/vrdma.h>
#include <vbus/vrdma-kernel.h>
#include "vrdma/vrdma.h"
#include "vbusd.h"
#include "class_vrdma_vmk.h"

/* What a module object holds of the connection: its region (pins times) and signal. */
struct vmk_obj {
	uint32_t handle;
	uint32_t shm;
	uint32_t pins;
	uint32_t sig;
	uint64_t vm_pinned;		/* an MR: the bytes it holds of the VM's max-pinned */
};

struct vbd_vmk {
	struct vbd_guest *g;
	uint32_t devh;			/* the DEVOPEN handle: events name it */
	int afd;
	int ctl_fd;			/* eventfd: wakes the thread to stop */
	int db_fd;			/* the doorbell (HELLO's signal), -1 before */
	uint32_t db_sig;
	bool db_thread;			/* vm=kernel-thread: never VBK_IOC_DOORBELL_FD */
	bool db_module;			/* the module listens on db_fd: the thread does not */
	bool stopping;
	pthread_t thread;
	long page;
	struct vmk_obj *objs;
	uint32_t nobjs, room;
	uint64_t doorbells, events;
};

static int vmk_region(void *priv, uint32_t shm, struct vrdma_region *r)
{
	struct vbd_vmk *k = priv;
	int err = vbd_guest_region(k->g, shm, &r->fd, &r->base, &r->size, &r->pages);

	if (!err && !r->pages) {	/* not the VM's RAM: the module would refuse it */
		vbd_guest_region_put(k->g, shm);
		err = -EINVAL;
	}
	return err;
}

static void vmk_region_put(void *priv, uint32_t shm)
{
	struct vbd_vmk *k = priv;

	vbd_guest_region_put(k->g, shm);
}

static int vmk_maps_take(void *priv, uint64_t n)
{
	return vbd_guest_maps_take(((struct vbd_vmk *)priv)->g, n);
}

static void vmk_maps_give(void *priv, uint64_t n)
{
	vbd_guest_maps_give(((struct vbd_vmk *)priv)->g, n);
}

static const struct vrdma_env_ops vmk_env = { .region = vmk_region,
					      .region_put = vmk_region_put,
					      .maps_take = vmk_maps_take,
					      .maps_give = vmk_maps_give };

/* The guest's input as a structure of n bytes: shorter is -EINVAL, a longer one's tail
 * must be zero (-E2BIG), as the module's own rule. */
static int fixed_in(const void *in, size_t inlen, void *s, size_t n)
{
	if (inlen < n)
		return -EINVAL;
	for (size_t i = n; i < inlen; i++)
		if (((const uint8_t *)in)[i])
			return -E2BIG;
	memcpy(s, in, n);
	return 0;
}

static int module_call(struct vbd_vmk *k, uint32_t fn, const void *in, size_t inlen,
		       void *out, size_t outmax, size_t *outlen)
{
	struct vbk_call c = { .fn = fn, .in_len = (uint32_t)inlen, .out_len = (uint32_t)outmax,
			      .in = (uintptr_t)in, .out = (uintptr_t)out };
	long r = ioctl(k->afd, VBK_IOC_CALL, &c);

	*outlen = 0;
	if (r < 0)
		return -errno;
	*outlen = (size_t)r;
	return 0;
}

/* ---- objects and what they hold ---- */

/* Room for one more object, made before the call that makes it: once the module has
 * made an object, recording what it holds cannot fail. 0 or -ENOMEM. */
static int obj_room(struct vbd_vmk *k)
{
	uint32_t room = k->room ? k->room * 2 : 16;
	struct vmk_obj *o;

	if (k->nobjs < k->room)
		return 0;
	o = realloc(k->objs, room * sizeof(*o));
	if (!o)
		return -ENOMEM;
	k->objs = o;
	k->room = room;
	return 0;
}

/* What the object holds until its destroy: regions, a signal, bytes of max-pinned. */
static void obj_add(struct vbd_vmk *k, uint32_t handle, uint32_t shm, uint32_t pins,
		    uint32_t sig, uint64_t vm_pinned)
{
	/* obj_room'd */
	k->objs[k->nobjs++] = (struct vmk_obj){ handle, shm, pins, sig, vm_pinned };
}

static struct vmk_obj *obj_find(struct vbd_vmk *k, uint32_t handle)
{
	for (uint32_t i = 0; i < k->nobjs; i++)
		if (k->objs[i].handle == handle)
			return &k->objs[i];
	return NULL;
}

static void hold_put(struct vbd_vmk *k, uint32_t shm, uint32_t pins, uint32_t sig)
{
	while (pins--)
		vbd_guest_region_put(k->g, shm);
	if (sig)
		vbd_guest_signal_put(k->g, sig);
}

static void obj_del(struct vbd_vmk *k, uint32_t handle)
{
	struct vmk_obj *o = obj_find(k, handle);

	if (!o)
		return;
	hold_put(k, o->shm, o->pins, o->sig);
	vbd_guest_pins_give(k->g, o->vm_pinned);
	*o = k->objs[--k->nobjs];
}

/* The address in vbusd of a ring at `offset` of region shm, by the ring rules; the region
 * is held (one pin) on success, and there is room to record the object it is for. */
static int ring_at(struct vbd_vmk *k, uint32_t shm, uint64_t offset, uint32_t entries,
		   uint32_t stride, uint32_t min_stride, uint64_t *addr)
{
	struct vrdma_region r;
	int err = obj_room(k);

	if (err)
		return err;
	err = vmk_region(k, shm, &r);

	if (err)
		return err;
	if (!vrdma_hq_fits(r.size, offset, entries, stride, min_stride)) {
		vbd_guest_region_put(k->g, shm);
		return -EINVAL;
	}
	*addr = (uint64_t)(uintptr_t)r.base + offset;
	return 0;
}

/* A call that made an object of handle (at the start of out) holding shm (pins) and sig:
 * recorded, or everything let go when the call failed. */
static int made(struct vbd_vmk *k, int err, const void *out, uint32_t shm, uint32_t pins,
		uint32_t sig)
{
	uint32_t h;

	if (err) {
		hold_put(k, shm, pins, sig);
		return err;
	}
	memcpy(&h, out, sizeof(h));
	obj_add(k, le32toh(h), shm, pins, sig, 0);
	return 0;
}

/* ---- the calls that name memory ---- */

static int create_cq(struct vbd_vmk *k, const void *in, size_t inlen, void *out,
		     size_t outmax, size_t *outlen)
{
	struct vrdma_create_cq_in i;
	uint32_t shm, ch, entries;
	uint64_t addr;
	int fd, err = fixed_in(in, inlen, &i, sizeof(i));

	if (err)
		return err;
	shm = le32toh(i.shm);
	ch = le32toh(i.channel);
	entries = le32toh(i.entries);
	err = ring_at(k, shm, le64toh(i.offset), entries, sizeof(struct vrdma_cqe),
		      sizeof(struct vrdma_cqe), &addr);
	if (err)
		return err;
	if (ch) {
		err = vbd_guest_signal(k->g, ch, VBUS_SIG_TO_GUEST, &fd);
		if (err) {
			hold_put(k, shm, 1, 0);
			return err;
		}
		i.channel = htole32((uint32_t)fd + 1);
	}
	i.shm = 0;
	i.offset = htole64(addr);
	err = module_call(k, VRDMA_FN_CREATE_CQ, &i, sizeof(i), out, outmax, outlen);
	return made(k, err, out, shm, 1, ch);
}

static int resize_cq(struct vbd_vmk *k, const void *in, size_t inlen, void *out,
		     size_t outmax, size_t *outlen)
{
	struct vrdma_resize_cq_in i;
	struct vmk_obj *o;
	uint32_t shm;
	uint64_t addr;
	int err = fixed_in(in, inlen, &i, sizeof(i));

	if (err)
		return err;
	shm = le32toh(i.shm);
	err = ring_at(k, shm, le64toh(i.offset), le32toh(i.entries), sizeof(struct vrdma_cqe),
		      sizeof(struct vrdma_cqe), &addr);
	if (err)
		return err;
	i.shm = 0;
	i.offset = htole64(addr);
	err = module_call(k, VRDMA_FN_RESIZE_CQ, &i, sizeof(i), out, outmax, outlen);
	if (err) {
		hold_put(k, shm, 1, 0);
		return err;
	}
	o = obj_find(k, le32toh(i.handle));
	if (!o) {	/* not ours to know (cannot be: every CQ is recorded); held till the end */
		obj_add(k, le32toh(i.handle), shm, 1, 0, 0);
		return 0;
	}
	hold_put(k, o->shm, o->pins, 0);	/* the old ring is not touched again */
	o->shm = shm;
	o->pins = 1;
	return 0;
}

static int create_qp(struct vbd_vmk *k, const void *in, size_t inlen, void *out,
		     size_t outmax, size_t *outlen)
{
	struct vrdma_create_qp_in i;
	uint64_t sq, rq = 0;
	uint32_t shm, pins = 1;
	int err = fixed_in(in, inlen, &i, sizeof(i));

	if (err)
		return err;
	shm = le32toh(i.shm);
	err = ring_at(k, shm, le64toh(i.sq_offset), le32toh(i.sq_entries), le32toh(i.sq_stride),
		      sizeof(struct vrdma_swqe), &sq);
	if (err)
		return err;
	if (!i.srq) {
		err = ring_at(k, shm, le64toh(i.rq_offset), le32toh(i.rq_entries),
			      le32toh(i.rq_stride), sizeof(struct vrdma_rwqe), &rq);
		if (err) {
			hold_put(k, shm, 1, 0);
			return err;
		}
		pins = 2;
	} else if (i.rq_offset || i.rq_entries || i.rq_stride) {
		hold_put(k, shm, 1, 0);
		return -EINVAL;
	}
	i.shm = 0;
	i.sq_offset = htole64(sq);
	i.rq_offset = htole64(rq);
	err = module_call(k, VRDMA_FN_CREATE_QP, &i, sizeof(i), out, outmax, outlen);
	return made(k, err, out, shm, pins, 0);
}

static int create_srq(struct vbd_vmk *k, const void *in, size_t inlen, void *out,
		      size_t outmax, size_t *outlen)
{
	struct vrdma_create_srq_in i;
	uint32_t shm;
	uint64_t addr;
	int err = fixed_in(in, inlen, &i, sizeof(i));

	if (err)
		return err;
	shm = le32toh(i.shm);
	err = ring_at(k, shm, le64toh(i.offset), le32toh(i.entries), le32toh(i.stride),
		      sizeof(struct vrdma_rwqe), &addr);
	if (err)
		return err;
	i.shm = 0;
	i.offset = htole64(addr);
	err = module_call(k, VRDMA_FN_CREATE_SRQ, &i, sizeof(i), out, outmax, outlen);
	return made(k, err, out, shm, 1, 0);
}

/* REG_MR: the pieces mapped side by side into a window of ours, registered as the one
 * piece the module takes (the window's address, at the guest's iova). The MR is recorded:
 * it holds its span of the VM's max-pinned until DEREG_MR or the connection's end. */
static int reg_mr(struct vbd_vmk *k, const void *in, size_t inlen, void *out, size_t outmax,
		  size_t *outlen)
{
	struct {
		struct vrdma_reg_mr_in h;
		struct vrdma_mr_piece p;
	} m;
	const struct vrdma_reg_mr_in *i = in;	/* the bus's buffer, as the relay reads it */
	uint64_t head, total, nmaps;
	uint32_t h;
	void *w;
	int err;

	if (inlen < sizeof(*i) || !vrdma_mr_pieces_ok(i, inlen) ||
	    vrdma_mr_span(le64toh(i->iova), le64toh(i->length), (uint64_t)k->page, &head, &total))
		return -EINVAL;
	err = obj_room(k);
	if (err)
		return err;
	if (vbd_guest_pins_take(k->g, total))
		return -ENOMEM;	/* as a pin past a limit natively */
	err = vrdma_map_window(&vmk_env, k, k->page, (const void *)(i + 1), le32toh(i->npieces),
			       total, &w, &nmaps);
	if (err) {
		vbd_guest_pins_give(k->g, total);
		return err;
	}
	m.h = *i;
	m.h.npieces = htole32(1);
	m.p = (struct vrdma_mr_piece){ .offset = htole64((uint64_t)(uintptr_t)w + head),
				       .length = i->length };
	err = module_call(k, VRDMA_FN_REG_MR, &m, sizeof(m), out, outmax, outlen);
	vrdma_window_unmap(w, total);	/* the module pinned the pages */
	vmk_maps_give(k, nmaps);
	if (err) {
		vbd_guest_pins_give(k->g, total);
		return err;
	}
	memcpy(&h, out, sizeof(h));
	obj_add(k, le32toh(h), 0, 0, 0, total);
	return 0;
}

/* A destroy: the object's holds go once the module destroyed it. */
static int destroy(struct vbd_vmk *k, uint32_t fn, const void *in, size_t inlen, void *out,
		   size_t outmax, size_t *outlen)
{
	struct vrdma_handle h;
	int err = fixed_in(in, inlen, &h, sizeof(h));

	if (err)
		return err;
	err = module_call(k, fn, &h, sizeof(h), out, outmax, outlen);
	if (!err)
		obj_del(k, le32toh(h.handle));
	return err;
}

/* HELLO names the doorbell the VM will ring: from now on the thread waits on it. */
static int hello(struct vbd_vmk *k, const void *in, size_t inlen, void *out, size_t outmax,
		 size_t *outlen)
{
	struct vrdma_hello_in h = { 0 };
	uint32_t db;
	uint64_t one = 1;
	int fd, err;

	if (inlen < VRDMA_HELLO_IN_V1_SIZE)
		return -EINVAL;
	memcpy(&h, in, inlen < sizeof(h) ? inlen : sizeof(h));
	db = le32toh(h.doorbell);
	h.doorbell = 0;		/* ours to serve, not the module's */
	err = module_call(k, VRDMA_FN_HELLO, &h, inlen < sizeof(h) ? inlen : sizeof(h), out,
			  outmax, outlen);
	if (err == -EPROTONOSUPPORT)	/* the refusal still says which versions */
		*outlen = inlen == VRDMA_HELLO_IN_V1_SIZE ? VRDMA_HELLO_OUT_V1_SIZE :
			  sizeof(struct vrdma_hello_out);
	if (err || !db || __atomic_load_n(&k->db_fd, __ATOMIC_ACQUIRE) >= 0)
		return err;
	err = vbd_guest_signal(k->g, db, VBUS_SIG_TO_HOST, &fd);
	if (err) {
		*outlen = 0;
		return err;
	}
	k->db_sig = db;
	/* The module drains on the doorbell's writes itself, in the writer's context (QEMU's
	 * thread); an older module (ENOTTY), or vm=kernel-thread, leaves it to our thread. */
	if (!k->db_thread) {
		if (!ioctl(k->afd, VBK_IOC_DOORBELL_FD, fd))
			__atomic_store_n(&k->db_module, true, __ATOMIC_RELEASE);
		else
			vbd_dbg("guest %u: VM kernel backend: the module takes no doorbell eventfd "
				"(%m): vbusd's thread rings it", k->g->id);
	}
	__atomic_store_n(&k->db_fd, fd, __ATOMIC_RELEASE);
	if (write(k->ctl_fd, &one, sizeof(one)) != sizeof(one))
		vbd_warn("guest %u: VM kernel backend: the thread was not told of the doorbell",
			 k->g->id);
	return 0;
}

int vbd_vmk_call(struct vbd_vmk *k, uint32_t fn, const void *in, size_t inlen, void *out,
		 size_t outmax, size_t *outlen)
{
	switch (fn) {
	case VRDMA_FN_HELLO:
		return hello(k, in, inlen, out, outmax, outlen);
	case VRDMA_FN_CREATE_CQ:
		return create_cq(k, in, inlen, out, outmax, outlen);
	case VRDMA_FN_RESIZE_CQ:
		return resize_cq(k, in, inlen, out, outmax, outlen);
	case VRDMA_FN_CREATE_QP:
		return create_qp(k, in, inlen, out, outmax, outlen);
	case VRDMA_FN_CREATE_SRQ:
		return create_srq(k, in, inlen, out, outmax, outlen);
	case VRDMA_FN_REG_MR:
		return reg_mr(k, in, inlen, out, outmax, outlen);
	case VRDMA_FN_DESTROY_CQ:
	case VRDMA_FN_DESTROY_QP:
	case VRDMA_FN_DESTROY_SRQ:
	case VRDMA_FN_DEREG_MR:		/* its share of the VM's max-pinned */
		return destroy(k, fn, in, inlen, out, outmax, outlen);
	case VRDMA_FN_QUERY_DEVICE:
	case VRDMA_FN_QUERY_PORT:
	case VRDMA_FN_QUERY_GID:
	case VRDMA_FN_QUERY_PKEY:
	case VRDMA_FN_ALLOC_PD:
	case VRDMA_FN_DEALLOC_PD:
	case VRDMA_FN_MODIFY_QP:
	case VRDMA_FN_QUERY_QP:
	case VRDMA_FN_ARM_CQ:
	case VRDMA_FN_CREATE_AH:
	case VRDMA_FN_DESTROY_AH:
	case VRDMA_FN_MODIFY_SRQ:
	case VRDMA_FN_QUERY_SRQ:
	case VRDMA_FN_ALLOC_MW:
	case VRDMA_FN_DEALLOC_MW:
	case VRDMA_FN_QUERY_DEVICE_EX:
	case VRDMA_FN_QUERY_GID_TABLE:
		/* No memory named: the module checks them as a process guest's. */
		return module_call(k, fn, in, inlen, out, outmax, outlen);
	}
	return -EOPNOTSUPP;
}

/* ---- the connection's thread ---- */

/* The module's events for this attachment, as the relay's (VBUS_EV_DEVICE). */
static void forward_events(struct vbd_vmk *k)
{
	struct vbk_event ev[16];
	ssize_t n = read(k->afd, ev, sizeof(ev));

	for (ssize_t i = 0; n > 0 && i < n / (ssize_t)sizeof(ev[0]); i++) {
		struct vrdma_event e = { .handle = htole32(ev[i].handle),
					 .port_num = htole32(ev[i].port) };
		int r = -EAGAIN;

		for (int t = 0; t < 100 && r == -EAGAIN &&
				!__atomic_load_n(&k->stopping, __ATOMIC_ACQUIRE); t++)
			r = vbd_guest_send_event(k->g, VBUS_EV_DEVICE, k->devh, ev[i].type, &e,
						 sizeof(e));
		if (r)
			vbd_warn("guest %u: VM kernel backend: event %u dropped: %s", k->g->id,
				 ev[i].type, strerror(-r));
		else
			__atomic_add_fetch(&k->events, 1, __ATOMIC_RELAXED);
	}
}

static void *vmk_thread(void *arg)
{
	struct vbd_vmk *k = arg;
	bool watch_afd = true;
	unsigned int warned = 0;

	for (;;) {
		/* db_fd first: hello() sets db_module before it publishes db_fd */
		int db = __atomic_load_n(&k->db_fd, __ATOMIC_ACQUIRE);
		bool ours = db >= 0 && !__atomic_load_n(&k->db_module, __ATOMIC_ACQUIRE);
		struct pollfd p[3] = { { .fd = k->ctl_fd, .events = POLLIN },
				       { .fd = watch_afd ? k->afd : -1, .events = POLLIN },
				       { .fd = ours ? db : -1, .events = POLLIN } };
		uint64_t v;

		if (poll(p, 3, -1) < 0) {
			/* EINTR; ENOMEM: the VM's doorbells must not stop, try again soon */
			if (errno != EINTR && !warned++)
				vbd_warn("guest %u: VM kernel backend: poll: %m (retried)", k->g->id);
			if (errno != EINTR)
				usleep(10000);
			continue;
		}
		if (p[0].revents) {
			if (read(k->ctl_fd, &v, sizeof(v)) < 0 && errno != EAGAIN)
				break;
			if (__atomic_load_n(&k->stopping, __ATOMIC_ACQUIRE))
				break;
		}
		if (p[2].revents & POLLIN) {
			if (read(db, &v, sizeof(v)) < 0 && errno != EAGAIN)
				vbd_dbg("guest %u: doorbell read: %m", k->g->id);
			/* Every queue with work: the VM rings one doorbell per context. */
			if (ioctl(k->afd, VBK_IOC_DOORBELL, VBK_DOORBELL_ALL) < 0 && errno != EIO)
				vbd_dbg("guest %u: VM kernel backend: doorbell: %m", k->g->id);
			__atomic_add_fetch(&k->doorbells, 1, __ATOMIC_RELAXED);
		}
		if (p[1].revents & POLLIN)
			forward_events(k);
		if (p[1].revents & (POLLERR | POLLHUP | POLLNVAL))
			watch_afd = false;	/* revoked: its last events were read */
	}
	return NULL;
}

int vbd_vmk_open(struct vbd_vmk **out, struct vbd_guest *g, uint32_t handle, int afd,
		 bool db_thread)
{
	struct vbd_vmk *k = calloc(1, sizeof(*k));
	int fl = fcntl(afd, F_GETFL), err;

	if (!k)
		return -ENOMEM;
	k->g = g;
	k->devh = handle;
	k->afd = afd;
	k->db_fd = -1;
	k->db_thread = db_thread;
	k->page = sysconf(_SC_PAGESIZE);
	k->ctl_fd = -1;
	if (fl < 0 || fcntl(afd, F_SETFL, fl | O_NONBLOCK) < 0 ||
	    (k->ctl_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)) < 0) {
		err = -errno;
		goto err_free;
	}
	err = pthread_create(&k->thread, NULL, vmk_thread, k);
	if (err) {
		err = -err;
		goto err_free;
	}
	*out = k;
	return 0;

err_free:
	if (k->ctl_fd >= 0)
		close(k->ctl_fd);
	free(k);
	return err;
}

void vbd_vmk_close(struct vbd_vmk *k)
{
	uint64_t one = 1;

	__atomic_store_n(&k->stopping, true, __ATOMIC_RELEASE);
	if (write(k->ctl_fd, &one, sizeof(one)) != sizeof(one))
		vbd_warn("guest %u: VM kernel backend: the thread's stop: %m", k->g->id);
	pthread_join(k->thread, NULL);
	close(k->ctl_fd);
	for (uint32_t i = 0; i < k->nobjs; i++) {
		hold_put(k, k->objs[i].shm, k->objs[i].pins, k->objs[i].sig);
		vbd_guest_pins_give(k->g, k->objs[i].vm_pinned);
	}
	if (k->db_fd >= 0)
		vbd_guest_signal_put(k->g, k->db_sig);
	free(k->objs);
	free(k);
}

/* Our thread's doorbells and forwarded events; returns who drains on the doorbell:
 * "module" (VBK_IOC_DOORBELL_FD), "thread" (ours) or "none" (no HELLO yet). */
const char *vbd_vmk_counts(const struct vbd_vmk *k, uint64_t *doorbells, uint64_t *events)
{
	*doorbells = __atomic_load_n(&k->doorbells, __ATOMIC_RELAXED);
	*events = __atomic_load_n(&k->events, __ATOMIC_RELAXED);
	if (__atomic_load_n(&k->db_module, __ATOMIC_ACQUIRE))
		return "module";
	return __atomic_load_n(&k->db_fd, __ATOMIC_ACQUIRE) >= 0 ? "thread" : "none";
}
