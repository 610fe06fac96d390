// SPDX-License-Identifier: MIT
/*
 * The lifecycle of a VM guest (vm.h, docs/vm.md): its RAM memfd and vbusd's mapping of it,
 * its connector, its QEMU, and the thread that watches them until `vm del`.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>
#include <vbus/libvbus.h>
#include "vbusd.h"
#include "vm.h"

struct vbd_vms vbd_vms = { .lock = PTHREAD_MUTEX_INITIALIZER };

/* How long QEMU gets to end on SIGTERM before SIGKILL. */
#define VM_TERM_GRACE_MS 10000

static void vm_set_failed(struct vbd_vm *vm, const char *why)
{
	pthread_mutex_lock(&vbd_vms.lock);
	vm->state = VBD_VM_FAILED;
	snprintf(vm->why, sizeof(vm->why), "%s", why);
	pthread_mutex_unlock(&vbd_vms.lock);
	vbd_warn("vm %s: %s", vm->name, why);
}

/* The last line QEMU wrote to its log (its error, when it failed), into out. */
static void last_log_line(const char *path, char *out, size_t n)
{
	char buf[512], *line, *end;
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	off_t size = fd >= 0 ? lseek(fd, 0, SEEK_END) : -1;
	ssize_t got;

	out[0] = 0;
	if (size > 0) {
		off_t from = size > (off_t)sizeof(buf) - 1 ? size - (off_t)sizeof(buf) + 1 : 0;

		got = pread(fd, buf, sizeof(buf) - 1, from);
		if (got > 0) {
			buf[got] = 0;
			while (got > 0 && (buf[got - 1] == '\n' || buf[got - 1] == '\r'))
				buf[--got] = 0;
			line = strrchr(buf, '\n');
			line = line ? line + 1 : buf;
			for (end = line; *end; end++)	/* for JSON: no quotes, no controls */
				if (*end == '"' || *end == '\\' || (unsigned char)*end < 0x20)
					*end = '\'';
			got = (ssize_t)strnlen(line, n - 1);	/* the end of a long line goes */
			memcpy(out, line, (size_t)got);
			out[got] = 0;
		}
	}
	if (fd >= 0)
		close(fd);
}

/* QEMU ended by itself (the guest powered off, or QEMU failed): reap it. */
static void vm_reap(struct vbd_vm *vm)
{
	char why[sizeof(vm->why)] = "";
	int st = 0;

	waitpid(vm->pid, &st, 0);
	close(vm->pidfd);
	vm->pidfd = -1;
	if (!WIFEXITED(st) || WEXITSTATUS(st))
		last_log_line(vm->log, why, sizeof(why));
	pthread_mutex_lock(&vbd_vms.lock);
	vm->state = VBD_VM_EXITED;
	vm->exit_status = st;
	memcpy(vm->why, why, sizeof(why));
	pthread_mutex_unlock(&vbd_vms.lock);
	vbd_info("vm %s: QEMU pid %d ended (%s %d)", vm->name, (int)vm->pid,
		 WIFEXITED(st) ? "status" : "signal", WIFEXITED(st) ? WEXITSTATUS(st) : WTERMSIG(st));
}

/* The doorbells the VM's thread reads: every vector's but those whose doorbell is a
 * signal's (vm_sig.c: the backend reads those). Their vectors into vec[]. */
static uint32_t vm_doorbells(struct vbd_vm *vm, struct pollfd *p, uint32_t *vec)
{
	uint32_t n = 0;

	if (vm->state != VBD_VM_RUNNING)
		return 0;
	for (uint32_t v = 0; v < vm->vectors; v++) {
		if (vbd_vm_sig_taken(vm->sigs, VBUS_SIG_TO_HOST, v))
			continue;
		p[n] = (struct pollfd){ .fd = vm->conn->doorbell_fd(vm, v), .events = POLLIN };
		vec[n++] = v;
	}
	return n;
}

/* Pick the accelerator, start QEMU, then count doorbells until stopped. The set of
 * doorbells is made again on every turn: a DEVSIG or the end of a signal changes it, and
 * both happen while this thread serves the channel (vbd_vm_chan_doorbell) or in between. */
static void *vm_thread(void *arg)
{
	struct vbd_vm *vm = arg;
	/* stop, QEMU, then each connected slot's socket (the bus's events), then doorbells */
	struct pollfd p[2 + VBUS_VM_MAX_CONNS + VBUS_VM_MAX_VECTORS];
	uint32_t slots[VBUS_VM_MAX_CONNS], vec[VBUS_VM_MAX_VECTORS];
	char err[160];

	vbd_vm_pick_accel(vm);
	pthread_mutex_lock(&vbd_vms.lock);
	if (vbd_vm_spawn(vm, err, sizeof(err))) {
		pthread_mutex_unlock(&vbd_vms.lock);
		vm_set_failed(vm, err);
	} else {
		vm->state = VBD_VM_RUNNING;
		pthread_mutex_unlock(&vbd_vms.lock);
	}
	p[0] = (struct pollfd){ .fd = vm->stop_efd, .events = POLLIN };
	p[1] = (struct pollfd){ .fd = vm->pidfd, .events = POLLIN };
	for (;;) {
		struct pollfd *ps = p + 2, *pd;
		uint32_t ns = vbd_vm_chan_fds(vm, ps, slots), nd;

		pd = ps + ns;
		nd = vm_doorbells(vm, pd, vec);
		if (poll(p, 2 + ns + nd, -1) < 0) {
			if (errno == EINTR)
				continue;
			vbd_err("vm %s: poll: %s", vm->name, strerror(errno));
			break;
		}
		if (p[0].revents)
			break;
		if (p[1].revents) {
			vm_reap(vm);
			p[1].fd = -1;	/* poll ignores it from now on */
			/* Its processes are gone with it: every slot's connection ends now and
			 * the backend frees its real objects, not at `vm del`. Nothing
			 * reconnects: an exited VM's doorbells are not read. */
			vbd_vm_chan_fini(vm);
		}
		for (uint32_t i = 0; i < ns; i++)
			if (ps[i].revents)	/* the bus's events, between answers */
				vbd_vm_chan_events(vm, slots[i]);
		for (uint32_t i = 0; i < nd; i++) {
			uint32_t v = vec[i];
			uint64_t n;

			if (!pd[i].revents)
				continue;
			n = vm->conn->doorbell(vm, v);
			pthread_mutex_lock(&vbd_vms.lock);
			vm->doorbells[v] += n;
			pthread_mutex_unlock(&vbd_vms.lock);
			vbd_dbg("vm %s: doorbell %u rung %llu times", vm->name, v, (unsigned long long)n);
			if (v == 0 && n)
				vbd_vm_chan_doorbell(vm);	/* the message channel */
		}
	}
	if (vm->pidfd >= 0) {
		int st = vbd_vm_kill(vm->pid, vm->pidfd, VM_TERM_GRACE_MS);

		vm->pidfd = -1;
		vbd_info("vm %s: QEMU pid %d stopped (wait status %#x)", vm->name, (int)vm->pid, st);
	}
	vbd_vm_chan_fini(vm);	/* the VM's guest connection ends */
	return NULL;
}

static void vm_free(struct vbd_vm *vm)
{
	vbd_vm_chan_fini(vm);	/* again: a VM whose thread never started */
	if (vm->conn)
		vm->conn->fini(vm);
	if (vm->ram && vm->ram != MAP_FAILED)
		munmap(vm->ram, vm->mem);
	if (vm->ram_fd >= 0)
		close(vm->ram_fd);
	if (vm->stop_efd >= 0)
		close(vm->stop_efd);
	free(vm->kernel);
	free(vm->initrd);
	free(vm->append);
	vbd_vm_maps_put(vm->maps);
	free(vm);
}

/* Under vbd.lock and vbd_vms.lock: check the name and the bus, start the VM's thread and
 * link the VM. */
static int vm_link(struct vbd_vm *vm, char *err, size_t errn)
{
	bool bus = false;
	int r;

	for (struct vbd_bus *b = vbd.buses; b && !bus; b = b->next)
		bus = !strcmp(b->name, vm->bus);
	if (!bus) {
		snprintf(err, errn, "no bus '%s'", vm->bus);
		return -ENOENT;
	}
	for (struct vbd_vm *o = vbd_vms.list; o; o = o->next) {
		if (!strcmp(o->name, vm->name)) {
			snprintf(err, errn, "vm %s exists", vm->name);
			return -EEXIST;
		}
	}
	r = vbd_vm_beat_start();
	if (r) {
		snprintf(err, errn, "cannot start vbusd's heartbeat: %s", strerror(-r));
		return r;
	}
	r = pthread_create(&vm->thread, NULL, vm_thread, vm);
	if (r) {
		snprintf(err, errn, "cannot start the VM's thread: %s", strerror(r));
		return -r;
	}
	vm->next = vbd_vms.list;
	vbd_vms.list = vm;
	return 0;
}

bool vbd_vm_on_bus(const char *bus, char vm[VBUS_NAME_MAX])
{
	bool on = false;

	pthread_mutex_lock(&vbd_vms.lock);
	for (struct vbd_vm *o = vbd_vms.list; o && !on; o = o->next) {
		on = !strcmp(o->bus, bus);
		if (on)
			memcpy(vm, o->name, VBUS_NAME_MAX);
	}
	pthread_mutex_unlock(&vbd_vms.lock);
	return on;
}

/* Make the VM's RAM and connector, link it and start its thread; vm is ours either way. */
int vbd_vm_start(struct vbd_vm *vm, char *err, size_t errn)
{
	int r;

	vm->ram_fd = vm->pidfd = vm->bar2_fd = -1;
	r = vbd_vm_chan_init(vm);
	if (r) {
		snprintf(err, errn, "cannot make the message channel: %s", strerror(-r));
		vm->stop_efd = -1;
		goto err_free;
	}
	vm->stop_efd = eventfd(0, EFD_CLOEXEC);
	if (vm->stop_efd < 0) {
		r = -errno;
		snprintf(err, errn, "eventfd: %s", strerror(errno));
		goto err_free;
	}
	/* Sealed against shrinking: QEMU cannot truncate it under vbusd's mapping. */
	r = vbus_memfd_create("vbus-vm-ram", vm->mem, &vm->ram_fd);
	if (r) {
		snprintf(err, errn, "cannot make a %llu-byte RAM memfd: %s",
			 (unsigned long long)vm->mem, strerror(-r));
		goto err_free;
	}
	vm->ram = mmap(NULL, vm->mem, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_NORESERVE,
		       vm->ram_fd, 0);
	if (vm->ram == MAP_FAILED) {
		r = -errno;
		snprintf(err, errn, "cannot map the VM's RAM: %s", strerror(errno));
		goto err_free;
	}
	vbus_vm_ram_layout_q35(vm->mem, &vm->layout);
	vm->conn = &vbd_vm_ivshmem;
	r = vm->conn->init(vm, err, errn);
	if (r) {
		vm->conn = NULL;
		goto err_free;
	}
	pthread_mutex_lock(&vbd.lock);
	pthread_mutex_lock(&vbd_vms.lock);
	r = vm_link(vm, err, errn);
	pthread_mutex_unlock(&vbd_vms.lock);
	pthread_mutex_unlock(&vbd.lock);
	if (r)
		goto err_free;
	return 0;

err_free:
	vm_free(vm);
	return r;
}

/* Unlink the VM called name: it, or NULL. */
static struct vbd_vm *vm_unlink(const char *name)
{
	struct vbd_vm **pp, *vm = NULL;

	pthread_mutex_lock(&vbd_vms.lock);
	for (pp = &vbd_vms.list; *pp; pp = &(*pp)->next) {
		if (!strcmp((*pp)->name, name)) {
			vm = *pp;
			*pp = vm->next;
			break;
		}
	}
	pthread_mutex_unlock(&vbd_vms.lock);
	return vm;
}

static void vm_stop(struct vbd_vm *vm)
{
	uint64_t one = 1;
	bool last;

	if (write(vm->stop_efd, &one, sizeof(one)) != sizeof(one))
		vbd_err("vm %s: cannot stop its thread: %s", vm->name, strerror(errno));
	pthread_join(vm->thread, NULL);
	vbd_info("vm %s: removed", vm->name);
	vm_free(vm);
	/* The last VM gone: so is the heartbeat (no descriptor or thread outlives the VMs).
	 * Commands run one at a time, so no `vm add` starts it meanwhile. */
	pthread_mutex_lock(&vbd_vms.lock);
	last = !vbd_vms.list;
	pthread_mutex_unlock(&vbd_vms.lock);
	if (last)
		vbd_vm_beat_stop();
}

int vbd_vm_del(const char *name, char *err, size_t errn)
{
	struct vbd_vm *vm = vm_unlink(name);

	if (!vm) {
		snprintf(err, errn, "no vm %s", name);
		return -ENOENT;
	}
	vm_stop(vm);
	return 0;
}

int vbd_vm_notify(const char *name, uint32_t vector, char *err, size_t errn)
{
	struct vbd_vm *vm;
	int r = -ENOENT;

	pthread_mutex_lock(&vbd_vms.lock);
	for (vm = vbd_vms.list; vm && strcmp(vm->name, name); vm = vm->next)
		;
	if (!vm) {
		snprintf(err, errn, "no vm %s", name);
	} else if (vector >= vm->vectors) {
		snprintf(err, errn, "vm %s has vectors 0 to %u", name, vm->vectors - 1);
		r = -EINVAL;
	} else if (vm->state != VBD_VM_RUNNING) {
		snprintf(err, errn, "vm %s is not running", name);
		r = -ESRCH;
	} else {
		r = vm->conn->interrupt(vm, vector);
		if (r)
			snprintf(err, errn, "cannot interrupt vm %s: %s", name, strerror(-r));
		else
			vm->interrupts[vector]++;
	}
	pthread_mutex_unlock(&vbd_vms.lock);
	return r;
}

void *vbd_vm_ram_at(struct vbd_vm *vm, uint64_t gpa, uint64_t len)
{
	uint64_t off;

	if (vbus_vm_gpa_to_offset(&vm->layout, gpa, len, &off))
		return NULL;
	return (char *)vm->ram + off;
}

int vbd_vm_peek(const char *name, uint64_t gpa, uint32_t len, void *out, char *err,
		size_t errn)
{
	struct vbd_vm *vm;
	void *p = NULL;

	pthread_mutex_lock(&vbd_vms.lock);
	for (vm = vbd_vms.list; vm && strcmp(vm->name, name); vm = vm->next)
		;
	if (vm)
		p = vbd_vm_ram_at(vm, gpa, len);
	if (p)
		memcpy(out, p, len);
	pthread_mutex_unlock(&vbd_vms.lock);
	if (!vm) {
		snprintf(err, errn, "no vm %s", name);
		return -ENOENT;
	}
	if (!p) {
		snprintf(err, errn, "vm %s: [%#llx, +%u) is not all RAM", name,
			 (unsigned long long)gpa, len);
		return -EFAULT;
	}
	return 0;
}

void vbd_vm_shutdown(void)
{
	for (;;) {
		struct vbd_vm *vm;

		pthread_mutex_lock(&vbd_vms.lock);
		vm = vbd_vms.list;
		if (vm)
			vbd_vms.list = vm->next;
		pthread_mutex_unlock(&vbd_vms.lock);
		if (!vm)
			break;
		vm_stop(vm);
	}
	vbd_vm_beat_stop();	/* a VM that failed to link may have started it */
}
