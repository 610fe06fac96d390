// SPDX-License-Identifier: MIT
/* Guest-physical addresses to offsets in a VM's RAM memfd (vm_ram.h). A pure function of
 * its inputs: every address comes from the guest and is checked here. */
#include <errno.h>
#include "vm_ram.h"

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
