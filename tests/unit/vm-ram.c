// SPDX-License-Identifier: MIT
/*
 * Guest-physical to RAM-memfd offsets of a q35 VM (connector/vm_ram.c): the two blocks for
 * RAM sizes on both sides of QEMU's 2.75 GiB split, the first and last byte of each block,
 * ranges crossing a block's end or lying in the hole below 4 GiB, wrapping ranges, len 0.
 * Then a region from a page list (vbus_vm_region_pages and _map, what DEVSHM with
 * VBUS_SHM_F_GPA maps) over a RAM memfd of 4 MiB: each page of the mapping is the page of
 * RAM its address named, in runs and out of order, both ways; a window over part of it
 * (vbus_vm_region_remap, an MR's); vbus_vm_runs, what a VM pays of vbusd's mappings, is the
 * number of mappings the kernel shows in /proc/self/maps for each; refusals of an unaligned
 * address, a page outside RAM or across its end, and no page at all.
 */
#include <endian.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>
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

/* The mappings /proc/self/maps shows inside [a, a + len). */
static unsigned int maps_in(const void *a, size_t len)
{
	uintptr_t lo = (uintptr_t)a, hi = lo + len;
	unsigned long long s, e;
	unsigned int n = 0;
	char line[512];
	FILE *f = fopen("/proc/self/maps", "re");

	check(f, "/proc/self/maps: %m");
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "%llx-%llx", &s, &e) == 2 && s >= lo && e <= hi)
			n++;
	fclose(f);
	return n;
}

static void region_map(void)
{
	enum { RAM = 4 << 20, PG = 4096 };
	/* Guest-physical pages: a run of three, one out of order, one repeated, the last. */
	static const uint64_t gpas[] = { 5, 6, 7, 2, 900, 5, RAM / PG - 1 };
	uint32_t n = sizeof(gpas) / sizeof(gpas[0]);
	struct vbus_vm_ram_layout l;
	uint64_t le[8], *off = NULL;
	uint8_t *ram, *base = NULL, *w;
	int fd = memfd_create("vm-ram-test", MFD_CLOEXEC);

	check(fd >= 0 && ftruncate(fd, RAM) == 0, "memfd: %m");
	ram = mmap(NULL, RAM, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	check(ram != MAP_FAILED, "mmap: %m");
	for (uint32_t p = 0; p < RAM / PG; p++)
		memset(ram + (size_t)p * PG, (int)(p * 37 % 251), PG);
	vbus_vm_ram_layout_q35(RAM, &l);
	for (uint32_t i = 0; i < n; i++)
		le[i] = htole64(gpas[i] * PG);
	check(!vbus_vm_region_pages(&l, le, n, &off), "%u pages", n);
	check(!vbus_vm_region_map(fd, off, n, (void **)&base), "map %u pages", n);
	/* Runs: 5 6 7 | 2 | 900 | 5 | last. */
	check(vbus_vm_runs(off, 0, (uint64_t)n * PG) == 5 && maps_in(base, (size_t)n * PG) == 5,
	      "runs %llu, mappings %u, want 5", (unsigned long long)vbus_vm_runs(off, 0, n * PG),
	      maps_in(base, (size_t)n * PG));
	for (uint32_t i = 0; i < n; i++) {
		check(off[i] == gpas[i] * PG, "page %u at offset %#llx", i, (unsigned long long)off[i]);
		check(base[(size_t)i * PG] == (uint8_t)(gpas[i] * 37 % 251) &&
		      base[(size_t)i * PG + PG - 1] == (uint8_t)(gpas[i] * 37 % 251),
		      "page %u does not show RAM page %llu", i, (unsigned long long)gpas[i]);
	}
	base[4 * PG + 10] = 0xab;	/* the region's page 4 is RAM page 900 */
	check(ram[900 * PG + 10] == 0xab, "a write through the region is not in RAM");
	check(base[0] == base[5 * PG], "RAM page 5, mapped twice, differs");
	/* A window over pages 2..4 of the region, as an MR's. */
	w = mmap(NULL, 3 * PG, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	check(w != MAP_FAILED && !vbus_vm_region_remap(fd, off, 2 * PG, 3 * PG, w), "remap");
	check(w[0] == base[2 * PG] && w[PG] == base[3 * PG] && w[2 * PG + 10] == 0xab, "window");
	check(vbus_vm_runs(off, 2 * PG, 3 * PG) == 3 && maps_in(w, 3 * PG) == 3,
	      "window: runs %llu, mappings %u, want 3",
	      (unsigned long long)vbus_vm_runs(off, 2 * PG, 3 * PG), maps_in(w, 3 * PG));
	check(vbus_vm_runs(off, 0, 3 * PG) == 1, "one run of three pages");
	check(vbus_vm_region_remap(fd, off, 100, PG, w) == -EINVAL, "remap unaligned");
	munmap(w, 3 * PG);
	munmap(base, (size_t)n * PG);
	free(off);

	off = (uint64_t *)1;
	le[0] = htole64(5 * PG + 8);
	check(vbus_vm_region_pages(&l, le, 1, &off) == -EINVAL, "unaligned");
	le[0] = htole64(RAM);
	check(vbus_vm_region_pages(&l, le, 1, &off) == -EFAULT, "past RAM");
	le[0] = htole64(0xfffffffffffff000ull);
	check(vbus_vm_region_pages(&l, le, 1, &off) == -EFAULT, "wrapping");
	check(vbus_vm_region_pages(&l, le, 0, &off) == -EINVAL, "no page");
	check(off == (uint64_t *)1, "a refusal set *offsets");
	base = (uint8_t *)1;
	check(vbus_vm_region_map(fd, off, 0, (void **)&base) == -EINVAL, "map no page");
	check(base == (uint8_t *)1, "a refused map set *base");
	munmap(ram, RAM);
	close(fd);
	printf("vm-ram: a region of %u pages from a page list (runs, out of order, a page twice: 5 mappings), a window over it (3), 5 refusals\n",
	       n);
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
	region_map();
	return 0;
}
