// SPDX-License-Identifier: MIT
/*
 * The ivshmem-doorbell connector of a VM (docs/vm.md): BAR2 is a sealed memfd holding
 * struct vbus_vm_bar2 and the message channel (vm_chan.c), the doorbells and interrupts are the eventfds of vbusd's ivshmem
 * server for this VM (connector/ivshmem_server.c).
 */
#include <errno.h>
#include <endian.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>
#include <vbus/libvbus.h>
#include "vbusd.h"
#include "vm.h"

/* BAR2: the header, then the message channel (vm_chan.c). vbusd keeps it mapped. */
static int bar2_create(struct vbd_vm *vm)
{
	struct vbus_vm_bar2 *h;
	int err = vbus_memfd_create("vbus-vm-bar2", VBD_VM_BAR2_SIZE, &vm->bar2_fd);

	if (err)
		return err;
	h = mmap(NULL, VBD_VM_BAR2_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, vm->bar2_fd, 0);
	if (h == MAP_FAILED) {
		err = -errno;
		close(vm->bar2_fd);
		vm->bar2_fd = -1;
		return err;
	}
	vm->bar2 = h;
	h->magic = htole64(VBUS_VM_BAR2_MAGIC);
	h->version = htole32(VBUS_VM_VERSION);
	h->header_size = htole32(sizeof(*h));
	h->host_peer = htole32(VBUS_IVS_HOST_PEER);
	h->vm_peer = htole32(VBUS_IVS_VM_PEER);
	h->vectors = htole32(vm->vectors);
	h->features = htole32(VBUS_VM_F_CHAN | VBUS_VM_F_EVENTS | VBUS_VM_F_BEAT |
			      VBUS_VM_F_CONNS);
	snprintf(h->bus, sizeof(h->bus), "%s", vm->bus);
	h->chan_offset = htole32(VBD_VM_CHAN_OFF);
	h->msg_max = htole32(VBUS_VM_MSG_MAX);
	h->req_offset = htole32(VBD_VM_REQ_OFF);
	h->resp_offset = htole32(VBD_VM_RESP_OFF);
	h->ev_offset = htole32(VBD_VM_EV_OFF);
	h->ev_entries = htole32(VBD_VM_EV_ENTRIES);
	h->beat_ms = htole32(VBD_VM_BEAT_MS);
	h->max_conns = htole32(vm->conns);
	return 0;
}

static int ivs_init(struct vbd_vm *vm, char *err, size_t errn)
{
	int r = bar2_create(vm);

	if (r) {
		snprintf(err, errn, "cannot make the ivshmem BAR2 memfd: %s", strerror(-r));
		return r;
	}
	r = vbus_ivs_init(&vm->ivs, vm->bar2_fd, vm->vectors);
	if (r) {
		snprintf(err, errn, "cannot set up the ivshmem server: %s", strerror(-r));
		return r;
	}
	vm->sigs = vbd_vm_sigs_new(vm->vectors, vm->ivs.host_efd, vm->ivs.vm_efd);
	if (!vm->sigs) {
		snprintf(err, errn, "cannot copy the ivshmem eventfds: %s", strerror(errno));
		return -ENOMEM;
	}
	return 0;
}

static int ivs_qemu_args(struct vbd_vm *vm, int qemu_fd, struct vbd_argv *a, int *fd)
{
	*fd = vm->ivs.qemu_sock;
	if (vbd_argv_add(a, "-chardev") || vbd_argv_add(a, "socket,id=vbus-ivs,fd=%d", qemu_fd) ||
	    vbd_argv_add(a, "-device") ||
	    vbd_argv_add(a, "ivshmem-doorbell,chardev=vbus-ivs,vectors=%u", vm->vectors))
		return -E2BIG;
	return 0;
}

static void ivs_started(struct vbd_vm *vm)
{
	vbus_ivs_qemu_started(&vm->ivs);
}

static int ivs_doorbell_fd(struct vbd_vm *vm, uint32_t v)
{
	return vm->ivs.host_efd[v];
}

static uint64_t ivs_doorbell(struct vbd_vm *vm, uint32_t v)
{
	uint64_t n;

	return vbus_ivs_doorbells(&vm->ivs, v, &n) ? 0 : n;
}

static int ivs_interrupt(struct vbd_vm *vm, uint32_t v)
{
	return vbus_ivs_interrupt(&vm->ivs, v);
}

static void ivs_fini(struct vbd_vm *vm)
{
	vbd_vm_sigs_put(vm->sigs);
	vm->sigs = NULL;
	vbus_ivs_fini(&vm->ivs);
	if (vm->bar2)
		munmap(vm->bar2, VBD_VM_BAR2_SIZE);
	vm->bar2 = NULL;
	if (vm->bar2_fd >= 0)
		close(vm->bar2_fd);
	vm->bar2_fd = -1;
}

const struct vbd_vm_connector vbd_vm_ivshmem = {
	.name = "ivshmem",
	.init = ivs_init,
	.qemu_args = ivs_qemu_args,
	.started = ivs_started,
	.doorbell_fd = ivs_doorbell_fd,
	.doorbell = ivs_doorbell,
	.interrupt = ivs_interrupt,
	.fini = ivs_fini,
};
