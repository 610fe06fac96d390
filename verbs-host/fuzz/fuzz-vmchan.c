// SPDX-License-Identifier: MIT
/*
 * fuzz-vmchan: vbusd's side of a VM's message channel (vm_chan.c, docs/vm.md "The message
 * channel"), fed what a hostile VM can write into BAR2. Each input is a sequence of
 * requests, each 7 bytes (req_kind, req_len as the VM writes them: u8 and LE u32; then the
 * number d of bytes that follow, LE u16), then when req_kind's top bit is set 4 more bytes
 * (req_conn, LE u32, raw; req_kind is the other 7 bits), and d bytes written into the
 * request area; then req_seq moves on and the doorbell is served, as when the VM rings
 * vector 0. A request without req_conn leaves the field as it was (0 at first: an input
 * written before VBUS_VM_F_CONNS means what it meant). The VM has FUZZ_CONNS slots, each a
 * real guest connection of a bus with an echo device. Checked besides the sanitizers: every
 * request is answered (resp_seq) with a status the ABI lists; a MSG of no slot is refused
 * with -EINVAL; a RESET of a slot (or of all) is answered 0 and leaves it unconnected; an
 * answer's length stays inside the response area; `vm show`'s count of connected slots is
 * the slots' own. The bus's events between answers (echo's EVENT call makes them) go into
 * the event ring as the VM's thread takes them: its head is the last event's number, and
 * that entry carries it.
 */
/* fuzz-sources: verbs-host/guest.c verbs-host/label.c verbs-host/model.c verbs-host/ctl.c verbs-host/vm*.c connector/ivshmem_server.c connector/vm_ram.c verbs-host/class.c verbs-host/class_echo.c verbs-host/class_vrdma.c verbs-host/class_vrdma_cm.c verbs-host/class_vrdma_fwd.c verbs-host/class_vrdma_vmk.c connector/client.c verbs-host/kernel_*.c verbs-host/caller.c verbs-host/log.c verbs-host/vrdma/[a-z]*.c connector/msg.c connector/memfd.c connector/ioq.c connector/call.c connector/shm_signal.c */
/* fuzz-libs: -libverbs -lrdmacm */
/* fuzz-rss-mb: 6144: each input connects a guest, and so starts a thread (guest.c), and
 * ASan keeps about 250 bytes for every thread ever started (1 M threads of a bare test
 * program: 263 to 513 MB): at 3,200 inputs a second an hour is 11.5 M threads, 2.9 GB.
 * With the default 1024 MB the first hour ran out after 25 minutes (4.7 M runs), its live
 * heap 25 MB. */
#include <endian.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>
#include "../vbusd.h"
#include "../vm.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* As many slots as the bus takes guests: a slot's connection is never refused as one too
 * many, which would depend on how soon a closed one's thread ends (not reproducible). */
#define FUZZ_CONNS 4

static struct vbd_bus bus = { .name = "fuzz", .max_guests = FUZZ_CONNS, .max_handles = 8,
			      .max_regions = 8, .max_shm_bytes = 1 << 20 };
static struct vbd_dev dev = { .name = "e0", .cls = &vbd_class_echo, .buses = { &bus },
			      .n_buses = 1 };

static int fake_interrupt(struct vbd_vm *vm, uint32_t v)
{
	(void)vm;
	(void)v;
	return 0;
}

static const struct vbd_vm_connector fake = { .name = "fuzz", .interrupt = fake_interrupt };

static void broken(const char *what, long v)
{
	fprintf(stderr, "fuzz-vmchan: broken promise: %s (%ld)\n", what, v);
	abort();
}

/* The bus's events of every connected slot, as the VM's thread takes them between answers;
 * the slots' count against conns_open. */
static void take_events(struct vbd_vm *vm)
{
	struct pollfd p[VBUS_VM_MAX_CONNS];
	uint32_t slots[VBUS_VM_MAX_CONNS], n = vbd_vm_chan_fds(vm, p, slots);

	if (n != vm->chan.conns_open)
		broken("conns_open is not the slots connected", (long)vm->chan.conns_open);
	for (uint32_t i = 0; i < n; i++) {
		if (slots[i] >= vm->conns)
			broken("a slot beyond conns is connected", (long)slots[i]);
		vbd_vm_chan_events(vm, slots[i]);
	}
}

/* After a request conn of kind was answered st: what the ABI promises of it. */
static void check_slots(struct vbd_vm *vm, uint32_t kind, uint32_t conn, int32_t st)
{
	bool named = conn < vm->conns;

	if (kind == VBUS_VM_CHAN_MSG && !named && st != -EINVAL)
		broken("a MSG of no slot was not refused with EINVAL", st);
	if (kind != VBUS_VM_CHAN_RESET)
		return;
	if ((named || conn == VBUS_VM_CONN_ALL) != !st)
		broken("a RESET's answer", st);
	for (uint32_t i = 0; i < VBUS_VM_MAX_CONNS; i++)
		if ((conn == VBUS_VM_CONN_ALL || i == conn) && vm->chan.slot[i].sock >= 0)
			broken("a slot is connected after its RESET", (long)i);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static uint8_t *bar2;
	static struct vbd_vm vm;
	struct vbus_vm_chan *c;
	uint32_t seq = 0, conn = 0;

	vbd_verbosity = -1;	/* quiet: the fuzzer makes every request go wrong */
	vbd.devs = &dev;
	vbd.buses = &bus;
	if (!bar2 && !(bar2 = calloc(1, VBD_VM_BAR2_SIZE)))
		abort();
	memset(bar2, 0, VBD_VM_BAR2_SIZE);
	memset(&vm, 0, sizeof(vm));
	snprintf(vm.name, sizeof(vm.name), "fuzz");
	snprintf(vm.bus, sizeof(vm.bus), "fuzz");
	vm.pid = getpid();
	vm.vectors = 1;
	vm.conns = FUZZ_CONNS;
	vm.conn = &fake;
	vm.bar2 = bar2;
	vm.stop_efd = eventfd(0, EFD_CLOEXEC);
	if (vm.stop_efd < 0 || vbd_vm_chan_init(&vm))
		abort();
	c = (struct vbus_vm_chan *)(bar2 + VBD_VM_CHAN_OFF);
	while (size >= 7) {
		uint32_t kind = data[0], len, d = (uint32_t)data[5] | (uint32_t)data[6] << 8, head;
		struct vbus_vm_evring *ev;
		int32_t st;

		memcpy(&len, data + 1, 4);
		data += 7;
		size -= 7;
		if (kind & 0x80) {
			if (size < 4)
				break;
			kind &= 0x7f;
			memcpy(&conn, data, 4);
			data += 4;
			size -= 4;
		}
		if (d > size)
			d = (uint32_t)size;
		if (d > VBUS_VM_MSG_MAX)
			d = VBUS_VM_MSG_MAX;
		memcpy(bar2 + VBD_VM_REQ_OFF, data, d);
		data += d;
		size -= d;
		c->req_kind = htole32(kind);
		c->req_len = len;	/* raw: as hostile as it comes */
		c->req_conn = conn;
		c->req_seq = htole32(++seq);
		vbd_vm_chan_doorbell(&vm);
		if (le32toh(c->resp_seq) != seq)
			broken("a request was not answered", (long)seq);
		st = (int32_t)le32toh((uint32_t)c->resp_status);
		if (st && st != -EPROTO && st != -EMSGSIZE && st != -EINVAL && st != -ECONNRESET)
			broken("a status the ABI does not list", st);
		if (!st && kind == VBUS_VM_CHAN_MSG &&
		    (le32toh(c->resp_len) < sizeof(struct vbus_msg) ||
		     le32toh(c->resp_len) > VBUS_VM_MSG_MAX))
			broken("an answer's length", (long)le32toh(c->resp_len));
		check_slots(&vm, kind, le32toh(conn), st);
		take_events(&vm);
		ev = (struct vbus_vm_evring *)(bar2 + VBD_VM_EV_OFF);
		head = le32toh(ev->head);
		if (head != vm.chan.ev_seq)
			broken("the event ring's head is not the last event", (long)head);
		if (head && le32toh(((struct vbus_vm_ev *)(ev + 1))[head % VBD_VM_EV_ENTRIES].seq) != head)
			broken("the last event's entry does not carry its number", (long)head);
	}
	vbd_vm_chan_fini(&vm);
	close(vm.stop_efd);
	/* The guest connection's thread sees its socket closed and frees it: wait for it. */
	for (int i = 0; i < 5000; i++) {
		struct vbd_guest *g;

		pthread_mutex_lock(&vbd.lock);
		g = vbd.guests;
		pthread_mutex_unlock(&vbd.lock);
		if (!g)
			break;
		usleep(1000);
	}
	return 0;
}
