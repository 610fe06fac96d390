/* SPDX-License-Identifier: MIT */
/*
 * Where a VM's guest-physical addresses are in its RAM memfd (docs/vm.md, "Address
 * translation"). QEMU's q35 machine (7.2) maps the RAM backend in two blocks:
 *   [0, below_4g)                  at offset 0
 *   [4 GiB, 4 GiB + above_4g)      at offset below_4g
 * below_4g is the whole RAM up to 2.75 GiB; from 2.75 GiB of RAM on it is 2 GiB. (QEMU
 * moves the high block to 1 TiB only for AMD CPUs with RAM reaching near 1 TiB: vbusd
 * allows at most 64 GiB.)
 */
#ifndef VBUS_VM_RAM_H
#define VBUS_VM_RAM_H

#include <stdint.h>

struct vbus_vm_ram_layout {
	uint64_t size;			/* the memfd's */
	uint64_t below_4g;		/* bytes mapped from guest-physical 0 */
	uint64_t above_4g;		/* bytes mapped from guest-physical 4 GiB */
};

/* The layout of a q35 VM with size bytes of RAM. */
void vbus_vm_ram_layout_q35(uint64_t size, struct vbus_vm_ram_layout *l);
/* The memfd offset of [gpa, gpa + len), which must lie whole in one RAM block: 0, -EINVAL
 * (len 0), or -EFAULT (any byte outside RAM, in the hole below 4 GiB, or wrapping). */
int vbus_vm_gpa_to_offset(const struct vbus_vm_ram_layout *l, uint64_t gpa, uint64_t len,
			  uint64_t *offset);

/*
 * A region a VM handed over as a page list (DEVSHM with VBUS_SHM_F_GPA): n guest-physical
 * addresses (little-endian, as the message carries them), each of one 4096-byte page, of
 * the VM's RAM (layout l).
 * - vbus_vm_region_pages: the memfd offset of each page in *offsets (malloc'd, n entries).
 *   0, -EINVAL (n 0, an address not page-aligned), -EFAULT (a page outside RAM), -ENOMEM.
 * - vbus_vm_region_map: those pages from ram_fd into one fresh read-write shared mapping
 *   of n pages in *base, one mmap per run of pages that follow each other in the memfd.
 *   0, -EINVAL (n 0) or -ENOMEM, with nothing left mapped.
 * - vbus_vm_region_remap: [pos, pos + len) of such a region (pos, len page multiples) at dst
 *   (MAP_FIXED, shared, read-write), one mmap per run: for a window over part of a region
 *   (an MR). 0 or -errno.
 * - vbus_vm_runs: how many mmaps that takes (the runs in [pos, pos + len)), which each cost
 *   the mapping process one of its vm.max_map_count.
 */
int vbus_vm_region_pages(const struct vbus_vm_ram_layout *l, const void *gpa_le, uint32_t n,
			 uint64_t **offsets);
int vbus_vm_region_map(int ram_fd, const uint64_t *offsets, uint32_t n, void **base);
int vbus_vm_region_remap(int ram_fd, const uint64_t *offsets, uint64_t pos, uint64_t len,
			 void *dst);
uint64_t vbus_vm_runs(const uint64_t *offsets, uint64_t pos, uint64_t len);

#endif /* VBUS_VM_RAM_H */
