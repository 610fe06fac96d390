// SPDX-License-Identifier: MIT
/*
 * fuzz-proto: vbusd's decoder of guest messages. Each input is a sequence of packets
 * (2-byte length, then the packet) fed to one guest connection of a bus that has an echo
 * device, as if they had come off its socket: header checks, HELLO, DEVENUM, DEVOPEN with
 * hostile names, DEVCALL on guessed handles, revokes, CALLCHAN with bad ids, and DEVSHM
 * with VBUS_SHM_F_GPA page lists into a VM's RAM of 1 MiB.
 */
/* fuzz-sources: verbs-host/guest.c verbs-host/label.c verbs-host/model.c verbs-host/ctl.c verbs-host/vm*.c connector/ivshmem_server.c connector/vm_ram.c verbs-host/class.c verbs-host/class_echo.c verbs-host/class_vrdma.c verbs-host/class_vrdma_cm.c verbs-host/class_vrdma_fwd.c verbs-host/class_vrdma_vmk.c connector/client.c verbs-host/kernel_*.c verbs-host/caller.c verbs-host/log.c verbs-host/vrdma/[a-z]*.c connector/msg.c connector/memfd.c connector/ioq.c connector/call.c connector/shm_signal.c */
/* fuzz-libs: -libverbs -lrdmacm */
#include <endian.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>
#include <vbus/libvbus.h>
#include "../vbusd.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct vbd_bus bus = { .name = "fuzz", .max_guests = 4, .max_handles = 8,
			      .max_regions = 8, .max_shm_bytes = 1 << 20 };
static struct vbd_dev dev = { .name = "echo0", .cls = &vbd_class_echo, .buses = { &bus },
			      .n_buses = 1 };

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct vbd_guest *g;
	static int peer;
	int sv[2];

	vbd_verbosity = -1;	/* quiet: the fuzzer makes every request go wrong */
	vbd.devs = &dev;
	g = calloc(1, sizeof(*g));
	if (!g || socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_NONBLOCK, 0, sv))
		abort();
	g->sock = sv[0];
	peer = sv[1];
	g->bus = &bus;
	g->id = 1;
	/* A VM's RAM of 1 MiB: DEVSHM with VBUS_SHM_F_GPA maps pages of it; and 4 vectors of
	 * eventfds: DEVSIG with VBUS_SIG_F_VECTOR takes them. */
	static int ram_fd = -1;
	static struct vbd_vm_sigs *sigs;
	static struct vbd_vm_maps *maps;
	if (ram_fd < 0 && vbus_memfd_create("fuzz-ram", 1 << 20, &ram_fd))
		abort();
	if (!sigs) {
		int efd[4];

		for (int i = 0; i < 4; i++)
			if ((efd[i] = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)) < 0)
				abort();
		sigs = vbd_vm_sigs_new(4, efd, efd);
		if (!sigs)
			abort();
	}
	g->vm.ram_fd = ram_fd;
	g->vm.done_fd = -1;
	g->vm.sigs = sigs;
	/* A budget of 64 mappings (one per run of pages): a scattered region is refused. */
	if (!maps && !(maps = vbd_vm_maps_new(64, 1u << 20)))
		abort();
	g->vm.maps = maps;
	vbus_vm_ram_layout_q35(1 << 20, &g->vm.ram_layout);
	pthread_mutex_init(&g->lock, NULL);
	pthread_mutex_init(&g->send_lock, NULL);
	pthread_mutex_init(&g->slots_lock, NULL);
	pthread_mutex_init(&g->quota_lock, NULL);
	while (size >= 2) {
		size_t n = (size_t)data[0] | (size_t)data[1] << 8;
		char sink[256];

		data += 2;
		size -= 2;
		if (n > size)
			n = size;
		vbd_guest_request(g, data, n, NULL, 0);
		while (recv(peer, sink, sizeof(sink), MSG_DONTWAIT) > 0)
			;	/* the replies: only that nothing broke */
		data += n;
		size -= n;
	}
	for (uint32_t i = 1; i < g->slots_end; i++) {
		struct vbd_slot *s = vbd_slot(g, i);

		if (s->type == VBD_HANDLE && s->dev)
			s->dev->cls->close(s->inst);
		if (s->type == VBD_REGION) {	/* only VM regions can come: no descriptors */
			munmap(s->base, s->size);
			free(s->pages);
			close(s->fd);
			vbd_vm_maps_give(maps, s->nmaps);
		}
		if (s->type == VBD_SIGNAL) {	/* only VM signals: their vectors go back */
			close(s->fd);
			vbd_vm_sig_give(sigs, s->direction, s->vector);
		}
	}
	uint64_t used, max;

	vbd_vm_maps_read(maps, &used, &max);
	if (used)
		abort();	/* a region's mappings not given back */
	close(sv[0]);
	close(sv[1]);
	for (uint32_t i = 0; i < VBD_MAX_SLOTS / VBD_SLOT_CHUNK; i++)
		free(g->slot_chunks[i]);
	free(g);
	return 0;
}
