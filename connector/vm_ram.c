// SPDX-License-Identifier: MIT
/* Guest-physical addresses to offsets in a VM's RAM memfd (vm_ram.h). A pure function of
 * its inputs: every address comes from the guest and is checked here. */
#include <endian.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include "vm_ram.h"

#define PAGE 4096ull

#define GIB (1ull << 30)
#define Q35_LOWMEM_SPLIT	0xb0000000ull	/* RAM from this size on: 2 GiB below 4 GiB */
#define Q35_LOWMEM_SMALL	(2 * GIB)
#define HIGH_START		(4 * GIB)

void vbus_vm_ram_layout_q35(uint64_t size, struct vbus_vm_ram_layout *l)
{
	uint64_t low = size >= Q35_LOWMEM_SPLIT ? Q35_LOWMEM_SMALL : Q35_LOWMEM_SPLIT;

	l->size = size;
	l->below_4g = size < low ? size : low;
	l->above_4g = size - l->below_4g;
}

/* [start, start + n) inside [0, limit), without overflow. */
static int within(uint64_t start, uint64_t n, uint64_t limit)
{
	return start < limit && n <= limit - start;
}

int vbus_vm_gpa_to_offset(const struct vbus_vm_ram_layout *l, uint64_t gpa, uint64_t len,
			  uint64_t *offset)
{
	if (!len)
		return -EINVAL;
	if (within(gpa, len, l->below_4g)) {
		*offset = gpa;
		return 0;
	}
	if (gpa >= HIGH_START && within(gpa - HIGH_START, len, l->above_4g)) {
		*offset = l->below_4g + (gpa - HIGH_START);
		return 0;
	}
	return -EFAULT;
}

uint64_t vbus_vm_runs(const uint64_t *offsets, uint64_t pos, uint64_t len)
{
	uint64_t first = pos / PAGE, end = (pos + len) / PAGE, runs = 0;

	for (uint64_t i = first; i < end; i++)
		runs += i == first || offsets[i] != offsets[i - 1] + PAGE;
	return runs;
}

int vbus_vm_region_remap(int ram_fd, const uint64_t *offsets, uint64_t pos, uint64_t len,
			 void *dst)
{
	uint64_t first = pos / PAGE, end = (pos + len) / PAGE;

	if (pos % PAGE || len % PAGE || !len)
		return -EINVAL;
	for (uint64_t i = first, run; i < end; i += run) {
		for (run = 1; i + run < end && offsets[i + run] == offsets[i] + run * PAGE; run++)
			;
		if (mmap((uint8_t *)dst + (i - first) * PAGE, run * PAGE, PROT_READ | PROT_WRITE,
			 MAP_SHARED | MAP_FIXED, ram_fd, (off_t)offsets[i]) == MAP_FAILED)
			return -ENOMEM;
	}
	return 0;
}

int vbus_vm_region_pages(const struct vbus_vm_ram_layout *l, const void *gpa_le, uint32_t n,
			 uint64_t **offsets)
{
	uint64_t *off;
	int err;

	if (!n)
		return -EINVAL;
	off = calloc(n, sizeof(*off));
	if (!off)
		return -ENOMEM;
	for (uint32_t i = 0; i < n; i++) {
		uint64_t gpa;

		memcpy(&gpa, (const uint8_t *)gpa_le + i * sizeof(gpa), sizeof(gpa));
		gpa = le64toh(gpa);
		err = gpa % PAGE ? -EINVAL : vbus_vm_gpa_to_offset(l, gpa, PAGE, &off[i]);
		if (err) {
			free(off);
			return err;
		}
	}
	*offsets = off;
	return 0;
}

int vbus_vm_region_map(int ram_fd, const uint64_t *offsets, uint32_t n, void **base)
{
	void *b;
	int err;

	if (!n)
		return -EINVAL;
	/* Reserve the whole range first, then fill it: no other mapping can land inside. */
	b = mmap(NULL, (size_t)n * PAGE, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE,
		 -1, 0);
	if (b == MAP_FAILED)
		return -ENOMEM;
	err = vbus_vm_region_remap(ram_fd, offsets, 0, (uint64_t)n * PAGE, b);
	if (err) {
		munmap(b, (size_t)n * PAGE);
		return err;
	}
	*base = b;
	return 0;
}
