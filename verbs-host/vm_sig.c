// SPDX-License-Identifier: MIT
/*
 * A VM's signals (docs/vm.md, "Signals"): DEVSIG with VBUS_SIG_F_VECTOR gives a signal one
 * of the VM's interrupt vectors. TO_HOST: the signal's descriptor is the vector's doorbell
 * eventfd, which QEMU writes when the VM rings it, so the backend that polls it is woken
 * by the VM directly; the VM's thread stops polling that vector meanwhile (vm.c).
 * TO_GUEST: the descriptor is the vector's interrupt eventfd, which QEMU turns into the
 * vector's MSI-X interrupt. Vector 0 is the message channel's and never given.
 *
 * The table is counted: the VM holds one reference, each of its guest connections one,
 * since a connection's thread may outlive the VM (`vm del`). It holds its own copies of
 * the eventfds for that reason.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <unistd.h>
#include <vbus/vm.h>
#include "vbusd.h"

struct vbd_vm_sigs {
	unsigned refs;
	uint32_t vectors;
	int efd[2][VBUS_VM_MAX_VECTORS];	/* [0] doorbells (TO_HOST), [1] interrupts */
	uint64_t taken[2];			/* bit v: vector v has a signal */
};

static int side(uint32_t direction)
{
	return direction == VBUS_SIG_TO_HOST ? 0 : 1;
}

struct vbd_vm_sigs *vbd_vm_sigs_new(uint32_t vectors, const int *doorbell, const int *interrupt)
{
	struct vbd_vm_sigs *s;

	if (!vectors || vectors > VBUS_VM_MAX_VECTORS)
		return NULL;
	s = calloc(1, sizeof(*s));
	if (!s)
		return NULL;
	s->refs = 1;
	s->vectors = vectors;
	for (uint32_t v = 0; v < VBUS_VM_MAX_VECTORS; v++)
		s->efd[0][v] = s->efd[1][v] = -1;
	for (uint32_t v = 0; v < vectors; v++) {
		s->efd[0][v] = fcntl(doorbell[v], F_DUPFD_CLOEXEC, 0);
		s->efd[1][v] = fcntl(interrupt[v], F_DUPFD_CLOEXEC, 0);
		if (s->efd[0][v] < 0 || s->efd[1][v] < 0) {
			vbd_vm_sigs_put(s);
			return NULL;
		}
	}
	return s;
}

struct vbd_vm_sigs *vbd_vm_sigs_get(struct vbd_vm_sigs *s)
{
	if (s)
		__atomic_add_fetch(&s->refs, 1, __ATOMIC_RELAXED);
	return s;
}

void vbd_vm_sigs_put(struct vbd_vm_sigs *s)
{
	if (!s || __atomic_sub_fetch(&s->refs, 1, __ATOMIC_ACQ_REL))
		return;
	for (uint32_t v = 0; v < VBUS_VM_MAX_VECTORS; v++)
		for (int d = 0; d < 2; d++)
			if (s->efd[d][v] >= 0)
				close(s->efd[d][v]);
	free(s);
}

int vbd_vm_sig_take(struct vbd_vm_sigs *s, uint32_t direction, uint32_t *vector, int *fd)
{
	uint64_t *taken = &s->taken[side(direction)];
	uint64_t old = __atomic_load_n(taken, __ATOMIC_RELAXED);
	uint32_t v;

	do {
		for (v = 1; v < s->vectors && (old >> v & 1); v++)
			;
		if (v == s->vectors)
			return -ENOSPC;
	} while (!__atomic_compare_exchange_n(taken, &old, old | 1ull << v, false,
					      __ATOMIC_ACQ_REL, __ATOMIC_RELAXED));
	*fd = fcntl(s->efd[side(direction)][v], F_DUPFD_CLOEXEC, 0);
	if (*fd < 0) {
		int err = -errno;

		vbd_vm_sig_give(s, direction, v);
		return err;
	}
	*vector = v;
	return 0;
}

void vbd_vm_sig_give(struct vbd_vm_sigs *s, uint32_t direction, uint32_t vector)
{
	__atomic_and_fetch(&s->taken[side(direction)], ~(1ull << vector), __ATOMIC_RELEASE);
}

bool vbd_vm_sig_taken(const struct vbd_vm_sigs *s, uint32_t direction, uint32_t vector)
{
	return s && vector < VBUS_VM_MAX_VECTORS &&
	       (__atomic_load_n(&s->taken[side(direction)], __ATOMIC_ACQUIRE) >> vector & 1);
}
