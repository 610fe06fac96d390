// SPDX-License-Identifier: MIT
/*
 * A VM's message channel (docs/vm.md, "The message channel"; struct vbus_vm_chan): the
 * connector's messages between a VM and its bus through a mailbox in BAR2, announced on
 * vector 0 both ways.
 *
 * Everything in BAR2 is the VM's to write at any time: each field is read once into a
 * private copy, the message is copied out once and only the copy is checked and used.
 * The bus's own decoder (guest.c) serves the message: each slot of the channel (req_conn,
 * VBUS_VM_F_CONNS) is a guest connection whose socket is one end of a socketpair, and this
 * file holds the other end. Requests of all slots take the one mailbox in turn.
 */
#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include "msg.h"
#include "vbusd.h"
#include "vm.h"

/* Requests served per ring at most, when the VM keeps moving req_seq while we copy. */
#define CHAN_RETRIES 4

#define cwarn(vm, fmt, ...) vbd_warn("vm %s: channel: " fmt, (vm)->name, __VA_ARGS__)

/* A field the VM writes: one load. Acquire for req_seq: the VM's fields and message are
 * read after it (pairs with the driver's wmb() before it writes req_seq). */
static uint32_t vm_load(const __le32 *p, int order)
{
	return le32toh(__atomic_load_n(p, order));
}

/* Interrupt the VM on vector 0 (an answer or an event is there), counting it. */
static void chan_interrupt(struct vbd_vm *vm, uint64_t *counter)
{
	pthread_mutex_lock(&vbd_vms.lock);
	if (counter)
		(*counter)++;
	if (!vm->conn->interrupt(vm, 0))
		vm->interrupts[0]++;
	pthread_mutex_unlock(&vbd_vms.lock);
}

/* The bus's EVENT in chan.rx into the event ring, as the next event of slot's connection. */
static void chan_event(struct vbd_vm *vm, uint32_t slot)
{
	struct vbus_vm_evring *r = (struct vbus_vm_evring *)((uint8_t *)vm->bar2 + VBD_VM_EV_OFF);
	struct vbus_vm_ev *e;
	uint32_t s = ++vm->chan.ev_seq;

	if (!s)
		s = ++vm->chan.ev_seq;	/* 0 is no event's number */
	e = (struct vbus_vm_ev *)(r + 1) + s % VBD_VM_EV_ENTRIES;
	/* seq 0 first: a VM reading the entry meanwhile sees it is being written. An exchange
	 * with acquire keeps the writes below after it (a fence would do, but TSan has none). */
	(void)__atomic_exchange_n(&e->seq, 0, __ATOMIC_ACQ_REL);
	e->conn = htole32(vm->chan.slot[slot].conn_seq);
	memset(e->event, 0, sizeof(e->event));
	memcpy(e->event, vm->chan.rx->payload,
	       vm->chan.rx->len < sizeof(e->event) ? vm->chan.rx->len : sizeof(e->event));
	__atomic_store_n(&e->seq, htole32(s), __ATOMIC_RELEASE);
	__atomic_store_n(&r->head, htole32(s), __ATOMIC_RELEASE);
	chan_interrupt(vm, &vm->chan.events);
}

/* Whether conn, the VM's word, names one of its slots: the one check before any index. */
static bool chan_named(const struct vbd_vm *vm, uint32_t conn)
{
	return conn < vm->conns && conn < VBUS_VM_MAX_CONNS;
}

int vbd_vm_chan_init(struct vbd_vm *vm)
{
	for (uint32_t i = 0; i < VBUS_VM_MAX_CONNS; i++)
		vm->chan.slot[i].sock = vm->chan.slot[i].done = -1;
	vm->chan.conns_open = 0;
	vm->chan.last_seq = 0;
	vm->chan.buf = malloc(VBUS_VM_MSG_MAX);
	vm->chan.rx = malloc(sizeof(*vm->chan.rx));
	return vm->chan.buf && vm->chan.rx ? 0 : -ENOMEM;
}

/* Close slot's socket: its guest's thread sees it closed and frees all it held. */
static void chan_close(struct vbd_vm *vm, uint32_t slot)
{
	struct vbd_vm_slot *s = &vm->chan.slot[slot];

	if (s->sock < 0)
		return;
	close(s->sock);
	s->sock = -1;
	pthread_mutex_lock(&vbd_vms.lock);
	vm->chan.conns_open--;
	pthread_mutex_unlock(&vbd_vms.lock);
}

/*
 * Wait until the connection of a closed slot has freed all it held: the RESET's answer
 * tells the driver that it may unpin the connection's pages and that its vectors are free
 * again (docs/vm.md, "Shared regions"), so vbusd must no longer map or use any of them.
 * Only stopping (stop_efd) cuts the wait short: the VM is being killed.
 */
static void chan_wait_done(struct vbd_vm *vm, uint32_t slot)
{
	struct vbd_vm_slot *s = &vm->chan.slot[slot];
	struct pollfd p[2] = { { .fd = s->done, .events = POLLIN },
			       { .fd = vm->stop_efd, .events = POLLIN } };
	int r, waited = 0;

	if (s->done < 0)
		return;
	for (;;) {
		r = poll(p, 2, 1000);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0 || p[0].revents || p[1].revents)
			break;
		if (++waited == 5)
			cwarn(vm, "connection %u's end has taken %d s so far: the RESET waits", slot,
			      waited);
	}
	close(s->done);
	s->done = -1;
	vbd_info("vm %s: channel: connection %u closed", vm->name, slot);
}

/* End slot's connection, and return only once it has freed all it held. */
static void chan_disconnect(struct vbd_vm *vm, uint32_t slot)
{
	chan_close(vm, slot);
	chan_wait_done(vm, slot);
}

/* End every slot's connection: all closed first, so that their guests free in parallel. */
static void chan_disconnect_all(struct vbd_vm *vm)
{
	for (uint32_t i = 0; i < VBUS_VM_MAX_CONNS; i++)
		chan_close(vm, i);
	for (uint32_t i = 0; i < VBUS_VM_MAX_CONNS; i++)
		chan_wait_done(vm, i);
}

void vbd_vm_chan_fini(struct vbd_vm *vm)
{
	chan_disconnect_all(vm);
	free(vm->chan.buf);
	free(vm->chan.rx);
	vm->chan.buf = NULL;
	vm->chan.rx = NULL;
}

/* Slot's new guest connection of the bus: 0 or -errno. */
static int chan_connect(struct vbd_vm *vm, uint32_t slot)
{
	int sv[2], done[2], r;

	if (pipe2(done, O_CLOEXEC))
		return -errno;
	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv)) {
		r = -errno;
		close(done[0]);
		close(done[1]);
		return r;
	}
	r = vbd_guest_connect(vm->bus, sv[1], vm->pid,	/* takes sv[1] */
			      &(struct vbd_guest_vm){ .ram_fd = vm->ram_fd,
						      .ram_layout = vm->layout,
						      .sigs = vm->sigs,
						      .maps = vm->maps,
						      .done_fd = done[1] });
	close(done[1]);	/* the connection holds its own copy */
	if (r && r != -EACCES && r != -EUSERS && r != -ESHUTDOWN) {
		close(sv[0]);
		close(done[0]);
		return r;
	}
	/* A refusal waits on sv[0] as a HELLO answer: the request gets it. */
	vm->chan.slot[slot].sock = sv[0];
	vm->chan.slot[slot].done = done[0];
	pthread_mutex_lock(&vbd_vms.lock);
	vm->chan.conns_open++;
	pthread_mutex_unlock(&vbd_vms.lock);
	return 0;
}

/* The bus's answer to what was sent on slot: 0 with it in chan.rx, 1 when stop_efd fired,
 * or -errno (the connection is gone). The slot's events meanwhile go into the event ring. */
static int chan_wait_answer(struct vbd_vm *vm, uint32_t slot, bool nowait)
{
	int sock = vm->chan.slot[slot].sock;

	for (;;) {
		struct pollfd p[2] = { { .fd = sock, .events = POLLIN },
				       { .fd = vm->stop_efd, .events = POLLIN } };
		int r = poll(p, 2, nowait ? 0 : -1);

		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return -errno;
		if (p[1].revents)
			return 1;
		if (!r)
			return -ECONNRESET;
		r = vbus_msg_recv(sock, vm->chan.rx);
		if (r)
			return r;
		if (vm->chan.rx->nfds) {
			vbus_rx_close_fds(vm->chan.rx);	/* nothing of the bus's crosses */
			vm->chan.rx->hdr.nfds = 0;
		}
		if (le32toh(vm->chan.rx->hdr.op) != VBUS_OP_EVENT)
			return 0;
		chan_event(vm, slot);
	}
}

uint32_t vbd_vm_chan_fds(const struct vbd_vm *vm, struct pollfd *p, uint32_t *slots)
{
	uint32_t n = 0;

	for (uint32_t i = 0; i < VBUS_VM_MAX_CONNS; i++) {
		if (vm->chan.slot[i].sock < 0)
			continue;
		p[n] = (struct pollfd){ .fd = vm->chan.slot[i].sock, .events = POLLIN };
		slots[n++] = i;
	}
	return n;
}

/* A slot's socket is readable while no request is out: the bus's events, or its end (the
 * bus closed it: the slot's next message starts a new connection). */
void vbd_vm_chan_events(struct vbd_vm *vm, uint32_t slot)
{
	struct vbd_vm_slot *s;

	if (slot >= VBUS_VM_MAX_CONNS)
		return;
	s = &vm->chan.slot[slot];
	for (uint32_t i = 0; i < VBD_VM_EV_ENTRIES && s->sock >= 0; i++) {
		struct pollfd p = { .fd = s->sock, .events = POLLIN };

		if (poll(&p, 1, 0) <= 0)
			return;
		if (vbus_msg_recv(s->sock, vm->chan.rx)) {
			chan_disconnect(vm, slot);
			return;
		}
		vbus_rx_close_fds(vm->chan.rx);
		if (le32toh(vm->chan.rx->hdr.op) == VBUS_OP_EVENT)
			chan_event(vm, slot);
		else
			cwarn(vm, "op %u from the bus on connection %u with no request out: dropped",
			      le32toh(vm->chan.rx->hdr.op), slot);
	}
}

/* Serve the checked copy of n bytes in chan.buf, request seq, on slot: 0 with the answer
 * in chan.rx, 1 when stopping, or the channel's refusal. */
static int chan_serve(struct vbd_vm *vm, uint32_t slot, size_t n, uint32_t seq)
{
	struct vbd_vm_slot *s = &vm->chan.slot[slot];
	struct vbus_msg *h = (struct vbus_msg *)vm->chan.buf;
	ssize_t sent;
	int r;

	/* EVENT is the bus's own op: the decoder answers it with EOPNOTSUPP under the same op,
	 * which chan_wait_answer could not tell from an event (it would wait for ever; found by
	 * fuzz-vmchan). Refused here. */
	if (le32toh(h->op) == VBUS_OP_EVENT)
		return -EINVAL;
	/* Of the features, only events cross into a VM (through the event ring). */
	if (le32toh(h->op) == VBUS_OP_HELLO && n >= sizeof(*h) + sizeof(struct vbus_hello_in))
		((struct vbus_hello_in *)(h + 1))->features &= htole64(VBUS_F_EVENTS);
	if (s->sock < 0) {
		r = chan_connect(vm, slot);
		if (r)
			return r;
		s->conn_seq = seq;	/* the ring's events of this connection */
	}
	do
		sent = send(s->sock, vm->chan.buf, n, MSG_NOSIGNAL);
	while (sent < 0 && errno == EINTR);
	/* A connection refused at connect has closed: its refusal is still queued. */
	r = chan_wait_answer(vm, slot, sent < 0);
	if (r < 0) {
		chan_disconnect(vm, slot);
		return -ECONNRESET;
	}
	if (sent < 0 && !r)
		chan_disconnect(vm, slot);	/* its refusal: the next message starts anew */
	return r;
}

/* One request the VM posted as seq: answer it in BAR2. 1 when stopping, else 0. */
static int chan_request(struct vbd_vm *vm, uint32_t seq)
{
	struct vbus_vm_chan *c = vbd_vm_chan_ctl(vm);
	uint32_t kind = vm_load(&c->req_kind, __ATOMIC_RELAXED);
	uint32_t n = vm_load(&c->req_len, __ATOMIC_RELAXED);
	uint32_t conn = vm_load(&c->req_conn, __ATOMIC_RELAXED);
	bool named = chan_named(vm, conn);
	size_t len = 0;
	int r = 0;

	if (kind == VBUS_VM_CHAN_RESET) {
		if (conn == VBUS_VM_CONN_ALL)
			chan_disconnect_all(vm);
		else if (named)
			chan_disconnect(vm, conn);
		else
			r = -EINVAL;
	} else if (kind != VBUS_VM_CHAN_MSG) {
		r = -EINVAL;
	} else if (!named) {
		r = -EINVAL;
	} else if (n > VBUS_VM_MSG_MAX) {
		r = -EMSGSIZE;
	} else if (n < sizeof(struct vbus_msg)) {
		r = -EPROTO;
	} else {
		memcpy(vm->chan.buf, (uint8_t *)vm->bar2 + VBD_VM_REQ_OFF, n);
		/* A request the VM replaced while we copied (the driver does, with a RESET, when
		 * its file closes) is not served: the caller serves the newer one. Best effort
		 * only: nothing depends on the copy being whole, since only the copy is checked
		 * and used, and the newer request's ring always follows. */
		if (vm_load(&c->req_seq, __ATOMIC_ACQUIRE) != seq)
			return 0;
		/* The unix socket's framing check, on our copy: length agrees, no descriptor. */
		r = vbus_msg_check(vm->chan.rx, vm->chan.buf, n, 0) ? -EPROTO : 0;
		if (!r) {
			r = chan_serve(vm, conn, n, seq);
			if (r == 1)
				return 1;
		}
		if (!r) {
			len = sizeof(vm->chan.rx->hdr) + vm->chan.rx->len;
			memcpy((uint8_t *)vm->bar2 + VBD_VM_RESP_OFF, &vm->chan.rx->hdr,
			       sizeof(vm->chan.rx->hdr));
			memcpy((uint8_t *)vm->bar2 + VBD_VM_RESP_OFF + sizeof(vm->chan.rx->hdr),
			       vm->chan.rx->payload, vm->chan.rx->len);
		}
	}
	/* A VM may ring bad requests as fast as it likes: the first 16 refusals are logged,
	 * then only every power of two (`vm show` counts them all). Only this thread writes
	 * the counter. */
	if (r && (vm->chan.refused < 16 || !(vm->chan.refused & (vm->chan.refused + 1))))
		cwarn(vm, "request %u (kind %u, conn %u, %u bytes) refused: %s (refusal %llu)", seq,
		      kind, conn, n, strerror(-r), (unsigned long long)vm->chan.refused + 1);
	c->resp_status = (int32_t)htole32((uint32_t)r);
	c->resp_len = htole32((uint32_t)len);
	/* Which connection served it: a slot reconnects after the bus closed it or refused
	 * it, and the driver follows, for the event ring's conn. */
	c->resp_conn = htole32(!r && kind == VBUS_VM_CHAN_MSG && vm->chan.slot[conn].sock >= 0 ?
			       vm->chan.slot[conn].conn_seq : 0);
	/* The answer is in place before the VM can see resp_seq (pairs with the driver's
	 * rmb() after it read resp_seq). */
	__atomic_store_n(&c->resp_seq, htole32(seq), __ATOMIC_RELEASE);
	vm->chan.last_seq = seq;
	chan_interrupt(vm, r ? &vm->chan.refused :
			   kind == VBUS_VM_CHAN_MSG ? &vm->chan.messages : NULL);
	return 0;
}

void vbd_vm_chan_doorbell(struct vbd_vm *vm)
{
	struct vbus_vm_chan *c = vbd_vm_chan_ctl(vm);

	if (!vm->chan.buf)
		return;	/* QEMU exited in the same poll as the ring: the channel is gone */
	for (int i = 0; i < CHAN_RETRIES; i++) {
		uint32_t seq = vm_load(&c->req_seq, __ATOMIC_ACQUIRE);

		if (seq == vm->chan.last_seq)
			return;	/* answered already: a spurious or repeated ring */
		if (chan_request(vm, seq))
			return;
	}
}
