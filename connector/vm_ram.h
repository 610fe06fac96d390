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

#endif /* VBUS_VM_RAM_H */
