// SPDX-License-Identifier: MIT
/*
 * A VM's budget of vbusd's memory mappings (docs/vm.md, "Mappings").
 *
 * vbusd maps a VM's pages one mmap per run of pages that follow each other in the VM's RAM:
 * once for a shared region (DEVSHM with VBUS_SHM_F_GPA) and again for each MR window over
 * it. The kernel refuses a process's mmap past vm.max_map_count, whatever it maps, so a VM
 * handing over scattered pages could otherwise leave vbusd unable to map anything: every
 * other guest's regions, MRs and even vbusd's thread stacks would fail. So each VM may hold
 * at most its own max-maps, and all VMs together at most half of vm.max_map_count (read
 * once); the other half is for vbusd itself and its process guests.
 *
 * The same budget holds the bytes a VM's MRs pin (each MR window's span, as the kernel
 * charges each registration): at most the VM's max-pinned (by default its RAM), whatever
 * the device's per-connection max-pinned allows each of its connections.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <pthread.h>

#include "vbusd.h"

#define MAX_MAP_COUNT_FALLBACK 65530	/* the kernel's default */

struct vbd_vm_maps {
	uint64_t used, max;		/* atomics: mappings held, the VM's limit */
	uint64_t pinned, max_pinned;	/* atomics: bytes its MRs pin, the VM's limit */
	uint32_t refs;
};

static uint64_t all_used, all_max;	/* all VMs' mappings; half of vm.max_map_count */
static pthread_once_t all_once = PTHREAD_ONCE_INIT;

static void all_init(void)
{
	unsigned long long n = MAX_MAP_COUNT_FALLBACK;
	FILE *f = fopen("/proc/sys/vm/max_map_count", "re");

	if (f) {
		if (fscanf(f, "%llu", &n) != 1 || n < 1024)
			n = MAX_MAP_COUNT_FALLBACK;
		fclose(f);
	}
	all_max = n / 2;
}

uint64_t vbd_vm_maps_all_max(void)
{
	pthread_once(&all_once, all_init);
	return all_max;
}

struct vbd_vm_maps *vbd_vm_maps_new(uint64_t max, uint64_t max_pinned)
{
	struct vbd_vm_maps *m = calloc(1, sizeof(*m));

	if (m) {
		m->max = max;
		m->max_pinned = max_pinned;
		m->refs = 1;
	}
	return m;
}

struct vbd_vm_maps *vbd_vm_maps_get(struct vbd_vm_maps *m)
{
	if (m)
		__atomic_add_fetch(&m->refs, 1, __ATOMIC_RELAXED);
	return m;
}

void vbd_vm_maps_put(struct vbd_vm_maps *m)
{
	if (m && !__atomic_sub_fetch(&m->refs, 1, __ATOMIC_ACQ_REL))
		free(m);
}

/* Add n to *used unless that passes max: true if added. */
static bool add_below(uint64_t *used, uint64_t n, uint64_t max)
{
	uint64_t u = __atomic_load_n(used, __ATOMIC_RELAXED);

	do {
		if (n > max || u > max - n)
			return false;
	} while (!__atomic_compare_exchange_n(used, &u, u + n, true, __ATOMIC_RELAXED,
					      __ATOMIC_RELAXED));
	return true;
}

int vbd_vm_maps_take(struct vbd_vm_maps *m, uint64_t n, const char **quota, uint64_t *limit)
{
	if (!m)
		return 0;	/* not a VM's */
	pthread_once(&all_once, all_init);
	if (!add_below(&m->used, n, __atomic_load_n(&m->max, __ATOMIC_RELAXED))) {
		*quota = "vm max-maps";
		*limit = m->max;
		return -EDQUOT;
	}
	if (!add_below(&all_used, n, all_max)) {
		__atomic_sub_fetch(&m->used, n, __ATOMIC_RELAXED);
		*quota = "all-vms max-maps";	/* half of vm.max_map_count */
		*limit = all_max;
		return -EDQUOT;
	}
	return 0;
}

void vbd_vm_maps_give(struct vbd_vm_maps *m, uint64_t n)
{
	if (!m || !n)
		return;
	__atomic_sub_fetch(&m->used, n, __ATOMIC_RELAXED);
	__atomic_sub_fetch(&all_used, n, __ATOMIC_RELAXED);
}

void vbd_vm_maps_read(const struct vbd_vm_maps *m, uint64_t *used, uint64_t *max)
{
	*used = m ? __atomic_load_n(&m->used, __ATOMIC_RELAXED) : 0;
	*max = m ? __atomic_load_n(&m->max, __ATOMIC_RELAXED) : 0;
}

int vbd_vm_pins_take(struct vbd_vm_maps *m, uint64_t bytes, const char **quota,
		     uint64_t *limit)
{
	if (!m)
		return 0;	/* not a VM's */
	if (!add_below(&m->pinned, bytes, m->max_pinned)) {
		*quota = "vm max-pinned";
		*limit = m->max_pinned;
		return -EDQUOT;
	}
	return 0;
}

void vbd_vm_pins_give(struct vbd_vm_maps *m, uint64_t bytes)
{
	if (m && bytes)
		__atomic_sub_fetch(&m->pinned, bytes, __ATOMIC_RELAXED);
}

void vbd_vm_pins_read(const struct vbd_vm_maps *m, uint64_t *pinned, uint64_t *max)
{
	*pinned = m ? __atomic_load_n(&m->pinned, __ATOMIC_RELAXED) : 0;
	*max = m ? m->max_pinned : 0;
}
