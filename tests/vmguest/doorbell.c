// SPDX-License-Identifier: MIT
/*
 * Runs inside a VM that vbusd started (tests/unit/vm-doorbell.sh), on /dev/vbus-vm0 of the
 * guest driver vbus_vmguest.ko. Linked statically: the VM has only an initramfs.
 *
 *   doorbell [DEVICE]
 *   doorbell --unplug [DEVICE]
 *
 * Prints "VBUS-VM ..." lines on stdout (the VM's console), which the host side reads:
 *   VBUS-VM info vm-peer P host-peer H vectors V bus B
 *   VBUS-VM ram gpa G hex X       a locked page of this process at guest-physical G
 *                                 (from /proc/self/pagemap) begins with the 32 bytes X
 *   VBUS-VM rang 1x5 2x2          after ringing the host's doorbells: 5 on vector 1, 2 on 2
 *   VBUS-VM irq vector 1 eventfd E interrupts I    once the host's interrupt arrived
 *   VBUS-VM-OK | VBUS-VM-FAIL reason
 * Also checked: the ioctls refuse bad vectors, non-zero reserved fields and a second
 * binding of a bound vector; the interrupt reaches the bound eventfd once and no other
 * vector counts one (but vector 0, the message channel's: the driver's probe rang it).
 *
 * --unplug: the driver's remove with a file open and a vector bound. The PCI device is
 * removed through sysfs: every ioctl on the open file then fails with ENODEV and closing it
 * is clean. A PCI rescan probes the device again: /dev/vbus-vm0 comes back and rings the
 * host once on vector 3. Prints VBUS-VM-UNPLUG-OK.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>
#include <vbus/vm.h>

#define fail(...) do { printf("VBUS-VM-FAIL line %d: ", __LINE__); printf(__VA_ARGS__); \
	printf("\n"); fflush(stdout); exit(1); } while (0)
#define check(c, ...) do { if (!(c)) fail(__VA_ARGS__); } while (0)

static void ring(int fd, uint32_t vector, int times)
{
	struct vbus_vm_ring r = { .vector = vector };

	for (int i = 0; i < times; i++)
		check(!ioctl(fd, VBUS_VM_IOC_RING, &r), "ring vector %u: %s", vector, strerror(errno));
}

static void ring_expect_enodev(int fd)
{
	struct vbus_vm_ring r = { .vector = 0 };

	check(ioctl(fd, VBUS_VM_IOC_RING, &r) && errno == ENODEV, "ring after remove: %s",
	      strerror(errno));
}

static uint64_t interrupts(int fd, uint32_t vector)
{
	struct vbus_vm_counts c = { .vector = vector };

	check(!ioctl(fd, VBUS_VM_IOC_COUNTS, &c), "counts of vector %u: %s", vector, strerror(errno));
	return c.interrupts;
}

/* A page of this process, filled with a pattern and locked; print where it is in the
 * VM's guest-physical memory and its first 32 bytes, for the host to read there. */
static void publish_page(void)
{
	uint8_t *p = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	uint64_t entry, vpn = (uintptr_t)p / 4096;
	int fd = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);

	check(p != MAP_FAILED && fd >= 0, "mmap or pagemap: %s", strerror(errno));
	for (int i = 0; i < 4096; i++)
		p[i] = (uint8_t)(i * 7 + 13 + getpid());
	check(!mlock(p, 4096), "mlock: %s", strerror(errno));
	check(pread(fd, &entry, 8, (off_t)(vpn * 8)) == 8, "pagemap: %s", strerror(errno));
	close(fd);
	check(entry >> 63 && (entry & ((1ull << 55) - 1)), "page not present or no PFN (root?)");
	printf("VBUS-VM ram gpa %#llx hex ", (unsigned long long)((entry & ((1ull << 55) - 1)) * 4096));
	for (int i = 0; i < 32; i++)
		printf("%02x", p[i]);
	printf("\n");
}

static void write_file(const char *path, const char *text)
{
	int fd = open(path, O_WRONLY | O_CLOEXEC);

	check(fd >= 0, "open %s: %s", path, strerror(errno));
	check(write(fd, text, strlen(text)) == (ssize_t)strlen(text), "write %s: %s", path,
	      strerror(errno));
	close(fd);
}

static int unplug(const char *path)
{
	struct vbus_vm_irqfd b;
	struct vbus_vm_info info;
	int fd, efd, rm, tries;

	fd = open(path, O_RDWR | O_CLOEXEC);
	efd = eventfd(0, EFD_CLOEXEC);
	check(fd >= 0 && efd >= 0, "open %s: %s", path, strerror(errno));
	b = (struct vbus_vm_irqfd){ .fd = efd, .vector = 0 };
	check(!ioctl(fd, VBUS_VM_IOC_IRQFD, &b), "bind: %s", strerror(errno));
	rm = open("/sys/class/misc/" VBUS_VM_DEV_NAME "0/device/remove", O_WRONLY | O_CLOEXEC);
	check(rm >= 0, "the device's sysfs remove: %s", strerror(errno));
	check(write(rm, "1", 1) == 1, "remove: %s", strerror(errno));
	close(rm);
	check(ioctl(fd, VBUS_VM_IOC_INFO, &info) && errno == ENODEV, "info after remove: %s",
	      strerror(errno));
	ring_expect_enodev(fd);
	close(fd);
	close(efd);
	printf("VBUS-VM removed with a file open: ENODEV, closed\n");

	write_file("/sys/bus/pci/rescan", "1");
	for (tries = 0; tries < 600 && (fd = open(path, O_RDWR | O_CLOEXEC)) < 0; tries++)
		usleep(100000);
	check(fd >= 0, "%s did not come back after a rescan: %s", path, strerror(errno));
	check(!ioctl(fd, VBUS_VM_IOC_INFO, &info) && info.vectors >= 4, "info after rescan: %s",
	      strerror(errno));
	ring(fd, 3, 1);
	close(fd);
	printf("VBUS-VM-UNPLUG-OK\n");
	return 0;
}

int main(int argc, char **argv)
{
	const char *path;

	if (argc > 1 && !strcmp(argv[1], "--unplug"))
		return unplug(argc > 2 ? argv[2] : "/dev/" VBUS_VM_DEV_NAME "0");
	path = argc > 1 ? argv[1] : "/dev/" VBUS_VM_DEV_NAME "0";
	struct vbus_vm_info info;
	struct vbus_vm_irqfd b;
	struct vbus_vm_ring r;
	struct pollfd p;
	uint64_t n;
	int fd, fd2, efd;

	setvbuf(stdout, NULL, _IOLBF, 0);
	fd = open(path, O_RDWR | O_CLOEXEC);
	check(fd >= 0, "open %s: %s", path, strerror(errno));
	check(!ioctl(fd, VBUS_VM_IOC_INFO, &info), "info: %s", strerror(errno));
	printf("VBUS-VM info vm-peer %u host-peer %u vectors %u bus %.*s\n", info.vm_peer,
	       info.host_peer, info.vectors, (int)sizeof(info.bus), info.bus);
	check(info.vectors >= 3, "%u vectors, the test needs 3", info.vectors);

	/* Refusals. */
	r = (struct vbus_vm_ring){ .vector = info.vectors };
	check(ioctl(fd, VBUS_VM_IOC_RING, &r) && errno == EINVAL, "vector %u rung", info.vectors);
	r = (struct vbus_vm_ring){ .vector = 1, .reserved = 1 };
	check(ioctl(fd, VBUS_VM_IOC_RING, &r) && errno == EINVAL, "reserved field accepted");
	efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	check(efd >= 0, "eventfd");
	b = (struct vbus_vm_irqfd){ .fd = efd, .vector = info.vectors };
	check(ioctl(fd, VBUS_VM_IOC_IRQFD, &b) && errno == EINVAL, "bound vector %u", info.vectors);
	b = (struct vbus_vm_irqfd){ .fd = fd, .vector = 1 };
	check(ioctl(fd, VBUS_VM_IOC_IRQFD, &b) && errno == EINVAL, "bound a non-eventfd");
	b = (struct vbus_vm_irqfd){ .fd = -1, .vector = 1 };
	check(ioctl(fd, VBUS_VM_IOC_IRQFD, &b) && errno == ENOENT, "unbound what was not bound");
	check(ioctl(fd, _IO(VBUS_VM_IOC_MAGIC, 0x7f)) && errno == ENOTTY, "unknown ioctl accepted");

	/* Bind vector 1; another open file cannot take it. */
	b = (struct vbus_vm_irqfd){ .fd = efd, .vector = 1 };
	check(!ioctl(fd, VBUS_VM_IOC_IRQFD, &b), "bind vector 1: %s", strerror(errno));
	fd2 = open(path, O_RDWR | O_CLOEXEC);
	check(fd2 >= 0, "second open: %s", strerror(errno));
	check(ioctl(fd2, VBUS_VM_IOC_IRQFD, &b) && errno == EBUSY, "vector 1 bound twice");
	close(fd2);

	publish_page();
	ring(fd, 1, 5);
	ring(fd, 2, 2);
	printf("VBUS-VM rang 1x5 2x2\n");

	/* The host answers with one interrupt on vector 1; the host side's limits apply. */
	p = (struct pollfd){ .fd = efd, .events = POLLIN };
	check(poll(&p, 1, -1) == 1, "poll: %s", strerror(errno));
	check(read(efd, &n, sizeof(n)) == sizeof(n), "read the eventfd: %s", strerror(errno));
	check(n == 1, "the eventfd counted %llu, not 1", (unsigned long long)n);
	check(interrupts(fd, 1) == 1, "vector 1 counted %llu interrupts",
	      (unsigned long long)interrupts(fd, 1));
	/* Vector 0 is the message channel's: the driver's probe posted a RESET, answered there. */
	for (uint32_t v = 2; v < info.vectors; v++)
		check(interrupts(fd, v) == 0, "an interrupt on vector %u", v);
	printf("VBUS-VM irq vector 1 eventfd %llu interrupts %llu\n", (unsigned long long)n,
	       (unsigned long long)interrupts(fd, 1));
	b = (struct vbus_vm_irqfd){ .fd = -1, .vector = 1 };
	check(!ioctl(fd, VBUS_VM_IOC_IRQFD, &b), "unbind: %s", strerror(errno));
	close(efd);
	close(fd);
	printf("VBUS-VM-OK\n");
	return 0;
}
