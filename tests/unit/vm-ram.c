// SPDX-License-Identifier: MIT
/*
 * Guest-physical to RAM-memfd offsets of a q35 VM (connector/vm_ram.c): the two blocks for
 * RAM sizes on both sides of QEMU's 2.75 GiB split, the first and last byte of each block,
 * ranges crossing a block's end or lying in the hole below 4 GiB, wrapping ranges, len 0.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include "../../connector/vm_ram.h"

#define fail(...) do { printf("FAIL line %d: ", __LINE__); printf(__VA_ARGS__); printf("\n"); exit(1); } while (0)
#define check(c, ...) do { if (!(c)) fail(__VA_ARGS__); } while (0)

#define MIB (1ull << 20)
#define GIB (1ull << 30)

static void ok(const struct vbus_vm_ram_layout *l, uint64_t gpa, uint64_t len, uint64_t want)
{
	uint64_t off = ~0ull;
	int r = vbus_vm_gpa_to_offset(l, gpa, len, &off);

	check(!r && off == want, "RAM %llu: gpa %#llx len %llu gave %d offset %#llx, want %#llx",
	      (unsigned long long)l->size, (unsigned long long)gpa, (unsigned long long)len, r,
	      (unsigned long long)off, (unsigned long long)want);
	check(off + len <= l->size, "offset past the memfd");
}

static void bad(const struct vbus_vm_ram_layout *l, uint64_t gpa, uint64_t len, int want)
{
	uint64_t off = 12345;
	int r = vbus_vm_gpa_to_offset(l, gpa, len, &off);

	check(r == want && off == 12345, "RAM %llu: gpa %#llx len %llu gave %d, want %d",
	      (unsigned long long)l->size, (unsigned long long)gpa, (unsigned long long)len, r, want);
}

int main(void)
{
	struct vbus_vm_ram_layout l;

	/* 128 MiB: one block from 0. */
	vbus_vm_ram_layout_q35(128 * MIB, &l);
	check(l.below_4g == 128 * MIB && l.above_4g == 0, "128 MiB layout");
	ok(&l, 0, 1, 0);
	ok(&l, 0x1000, 4096, 0x1000);
	ok(&l, 128 * MIB - 1, 1, 128 * MIB - 1);
	ok(&l, 0, 128 * MIB, 0);
	bad(&l, 128 * MIB - 1, 2, -EFAULT);
	bad(&l, 128 * MIB, 1, -EFAULT);
	bad(&l, 4 * GIB, 1, -EFAULT);		/* no high block */
	bad(&l, 0x1000, 0, -EINVAL);
	bad(&l, ~0ull, 2, -EFAULT);		/* wraps */
	bad(&l, 0x1000, ~0ull, -EFAULT);

	/* Just below the split: all of it below 4 GiB. */
	vbus_vm_ram_layout_q35(0xb0000000ull - MIB, &l);
	check(l.below_4g == 0xb0000000ull - MIB && l.above_4g == 0, "2.75 GiB - 1 MiB layout");
	ok(&l, 0xb0000000ull - MIB - 8, 8, 0xb0000000ull - MIB - 8);

	/* At the split: 2 GiB low, the rest from 4 GiB. */
	vbus_vm_ram_layout_q35(0xb0000000ull, &l);
	check(l.below_4g == 2 * GIB && l.above_4g == 0x30000000ull, "2.75 GiB layout");
	ok(&l, 2 * GIB - 4096, 4096, 2 * GIB - 4096);
	bad(&l, 2 * GIB - 4096, 4097, -EFAULT);	/* into the hole */
	bad(&l, 3 * GIB, 4096, -EFAULT);	/* in the hole */
	ok(&l, 4 * GIB, 4096, 2 * GIB);
	ok(&l, 4 * GIB + 0x30000000ull - 1, 1, 0xb0000000ull - 1);
	bad(&l, 4 * GIB + 0x30000000ull - 1, 2, -EFAULT);
	bad(&l, 4 * GIB - 1, 2, -EFAULT);	/* across 4 GiB from the hole */

	/* 64 GiB, vbusd's largest. */
	vbus_vm_ram_layout_q35(64 * GIB, &l);
	check(l.below_4g == 2 * GIB && l.above_4g == 62 * GIB, "64 GiB layout");
	ok(&l, 66 * GIB - MIB, MIB, 64 * GIB - MIB);
	bad(&l, 66 * GIB, 1, -EFAULT);
	printf("vm-ram: q35 layouts of 128 MiB, 2.75 GiB +- 1 MiB and 64 GiB, edges and refusals\n");
	return 0;
}
