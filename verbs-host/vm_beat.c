// SPDX-License-Identifier: MIT
/*
 * vbusd's heartbeat to its VMs (docs/vm.md, "vbusd's death"; VBUS_VM_F_BEAT): one thread
 * bumps every running VM's chan.beat in BAR2 each VBD_VM_BEAT_MS. The guest driver takes a
 * beat that stops moving for its host_timeout_ms as vbusd's death and ends its connection
 * with a DISCONNECTED event, as a closed socket does for a process guest. A thread of its
 * own: a VM's thread may wait on the bus for seconds (a slow DEVCALL), and its VM must not
 * take that for a death. vbusd writes its own count and never reads the VM's BAR2 back.
 */
#include <endian.h>
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>
#include "vbusd.h"
#include "vm.h"

static struct {
	pthread_t thread;
	int stop_efd;		/* -1: not running */
} beat = { .stop_efd = -1 };

static void *beat_thread(void *arg)
{
	struct pollfd p = { .fd = beat.stop_efd, .events = POLLIN };

	(void)arg;
	while (poll(&p, 1, VBD_VM_BEAT_MS) <= 0 || !p.revents) {
		pthread_mutex_lock(&vbd_vms.lock);
		for (struct vbd_vm *vm = vbd_vms.list; vm; vm = vm->next)
			if (vm->state == VBD_VM_RUNNING && vm->bar2)
				__atomic_store_n(&vbd_vm_chan_ctl(vm)->beat, htole32(++vm->beat),
						 __ATOMIC_RELEASE);
		pthread_mutex_unlock(&vbd_vms.lock);
	}
	return NULL;
}

/* Under vbd_vms.lock: start the thread with the first VM. */
int vbd_vm_beat_start(void)
{
	int r;

	if (beat.stop_efd >= 0)
		return 0;
	beat.stop_efd = eventfd(0, EFD_CLOEXEC);
	if (beat.stop_efd < 0)
		return -errno;
	r = pthread_create(&beat.thread, NULL, beat_thread, NULL);
	if (r) {
		close(beat.stop_efd);
		beat.stop_efd = -1;
		return -r;
	}
	return 0;
}

/* vbusd's exit, every VM stopped: end the thread. */
void vbd_vm_beat_stop(void)
{
	uint64_t one = 1;

	if (beat.stop_efd < 0)
		return;
	if (write(beat.stop_efd, &one, sizeof(one)) != sizeof(one))
		vbd_err("vm heartbeat: cannot stop its thread: %s", strerror(errno));
	else
		pthread_join(beat.thread, NULL);
	close(beat.stop_efd);
	beat.stop_efd = -1;
}
