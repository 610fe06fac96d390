// SPDX-License-Identifier: MIT
/*
 * Runs inside a VM that vbusd started (tests/unit/vm-connector.sh), on /dev/vbus-vm0 of the
 * guest driver: the connector's messages (docs/abi.md) over the message channel
 * (docs/vm.md), as a process on the host speaks them over the bus's socket. The bus has an
 * echo device e0. Linked statically: the VM has only an initramfs.
 *
 * Prints "VBUS-VM ..." lines on stdout (the console), and VBUS-VM-CONN-OK or
 * VBUS-VM-CONN-FAIL reason at the end. Checked, in order:
 *   - read with nothing posted: ENOMSG; the event ioctls before a connection: ENOTCONN;
 *     HELLO: version 1, only VBUS_F_EVENTS granted though all were offered;
 *   - DEVENUM lists e0 of class echo; DEVOPEN e0; DEVCALL ECHO of 17 bytes and of 65536
 *     bytes (the largest message) give the same bytes back;
 *   - O_NONBLOCK: read right after posting echo's SLEEP of 5 s gets EAGAIN; poll says
 *     POLLIN once the answer is there; a second write before reading it gets EBUSY;
 *   - malformed messages, each refused and the channel still answering: 10 bytes
 *     (EPROTO), a header whose len disagrees (EPROTO), nfds 1 (EPROTO), an unknown op (the
 *     bus answers -EOPNOTSUPP), a write above VBUS_VM_MSG_MAX (EMSGSIZE, from the driver);
 *   - other files' connections at the same time (conns() below);
 *   - shared regions through the driver (regions() below);
 *   - signals through the driver (signals() below);
 *   - the bus's events through the event ring (events() below);
 *   - after all that the echo still works on the same connection; closing the file ends
 *     the connection (a new open's HELLO is accepted, not -EALREADY), and the handle of
 *     the old one is gone (DEVCALL on it: -ENOENT);
 *   - raw BAR2 with the driver unbound, mapped through sysfs (what a hostile root in the
 *     VM can do): req_len 0xffffffff (vbusd: -EMSGSIZE), an unknown req_kind (-EINVAL),
 *     req_len 10 (-EPROTO), req_conn 3 with `conns 3` (-EINVAL); the driver bound again,
 *     HELLO, DEVOPEN and echo work;
 *   - the device removed while a process sleeps in read(): ENODEV, no hang; a rescan
 *     brings it back.
 *
 * "connector beat" (tests/unit/vm-vbusd-death.sh): two files, each HELLO, DEVOPEN e0 and
 * the event eventfd bound (two connections); "VBUS-VM-BEAT-READY", then it waits for an
 * event on each: the host kills vbusd, and the driver, once vbusd's heartbeat has stopped,
 * queues a DISCONNECTED for both; their next requests then fail with ECONNRESET. Prints
 * VBUS-VM-BEAT-OK.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <vbus/proto.h>
#include <vbus/vm.h>

#define fail(...) do { printf("VBUS-VM-CONN-FAIL line %d: ", __LINE__); printf(__VA_ARGS__); \
	printf("\n"); fflush(stdout); exit(1); } while (0)
#define check(c, ...) do { if (!(c)) fail(__VA_ARGS__); } while (0)

static const char *path = "/dev/" VBUS_VM_DEV_NAME "0";
static uint8_t msg[VBUS_VM_MSG_MAX + 64], ans[VBUS_VM_MSG_MAX];
static uint64_t next_seq = 1;

/* Post one message: header fields, payload. */
static void post(int fd, uint32_t op, uint32_t handle, uint32_t arg, const void *p, size_t len)
{
	struct vbus_msg h = { .op = op, .len = (uint32_t)len, .seq = next_seq++,
			      .handle = handle, .arg = arg };

	memcpy(msg, &h, sizeof(h));
	memcpy(msg + sizeof(h), p, len);
	check(write(fd, msg, sizeof(h) + len) == (ssize_t)(sizeof(h) + len), "write op %u: %s",
	      op, strerror(errno));
}

/* Read the answer to what was posted last: its status; *len its payload's length. */
static int32_t answer(int fd, uint32_t op, size_t *len)
{
	ssize_t n = read(fd, ans, sizeof(ans));
	struct vbus_msg h;

	check(n >= (ssize_t)sizeof(h), "read the answer to op %u: %zd, %s", op, n, strerror(errno));
	memcpy(&h, ans, sizeof(h));
	check(h.op == op && h.seq == next_seq - 1 && h.len == n - sizeof(h),
	      "answer op %u seq %llu len %u of %zd bytes, asked op %u seq %llu", h.op,
	      (unsigned long long)h.seq, h.len, n, op, (unsigned long long)next_seq - 1);
	if (len)
		*len = h.len;
	return (int32_t)h.status;
}

static int32_t call(int fd, uint32_t op, uint32_t handle, uint32_t arg, const void *p,
		    size_t len, size_t *outlen)
{
	post(fd, op, handle, arg, p, len);
	return answer(fd, op, outlen);
}

/* A write the channel refuses: the read after it fails with want. */
static void refused(int fd, const void *p, size_t n, int want, const char *what)
{
	check(write(fd, p, n) == (ssize_t)n, "write %s: %s", what, strerror(errno));
	check(read(fd, ans, sizeof(ans)) < 0 && errno == want, "%s: read gave %s, not %s", what,
	      strerror(errno), strerror(want));
	printf("VBUS-VM refused %s: %s\n", what, strerror(want));
}

static void hello(int fd)
{
	struct vbus_hello_in in = { .version_min = 1, .version_max = 1,
				    .features = VBUS_F_ALL_V1, .bus = "b" };
	struct vbus_hello_out out;
	size_t len;
	int32_t st = call(fd, VBUS_OP_HELLO, 0, 0, &in, sizeof(in), &len);

	check(!st && len >= sizeof(out), "HELLO: status %d, %zu bytes", st, len);
	memcpy(&out, ans + sizeof(struct vbus_msg), sizeof(out));
	check(out.version == 1 && out.features == VBUS_F_EVENTS, "HELLO: version %u features %#llx",
	      out.version, (unsigned long long)out.features);
	printf("VBUS-VM hello: version %u guest %u features %#llx\n", out.version, out.guest_id,
	       (unsigned long long)out.features);
}

/* One echo of len bytes marked with tag: the same bytes back. */
static void echo_quiet(int fd, uint32_t h, size_t len, uint8_t tag)
{
	static uint8_t in[VBUS_MAX_PAYLOAD];
	size_t out;
	int32_t st;

	for (size_t i = 0; i < len; i++)
		in[i] = (uint8_t)(i * 31 + len + tag);
	st = call(fd, VBUS_OP_DEVCALL, h, 1, in, len, &out);
	check(!st && out == len && !memcmp(ans + sizeof(struct vbus_msg), in, len),
	      "echo of %zu bytes: status %d, %zu bytes back", len, st, out);
}

static void echo(int fd, uint32_t h, size_t len)
{
	echo_quiet(fd, h, len, 0);
	printf("VBUS-VM echo %zu bytes: same bytes back\n", len);
}

static long now_ms(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

static void write_file(const char *file, const char *text)
{
	int fd = open(file, O_WRONLY | O_CLOEXEC);

	check(fd >= 0, "open %s: %s", file, strerror(errno));
	check(write(fd, text, strlen(text)) == (ssize_t)strlen(text), "write %s: %s", file,
	      strerror(errno));
	close(fd);
}

/* Wait for path to come back after a PCI rescan or a bind. */
static void wait_device(const char *why)
{
	int fd = -1, tries;

	for (tries = 0; tries < 600 && (fd = open(path, O_RDWR | O_CLOEXEC)) < 0; tries++)
		usleep(100000);
	check(fd >= 0, "%s did not come back after %s: %s", path, why, strerror(errno));
	close(fd);
}

static void *map_resource(const char *pci, int bar, size_t size)
{
	char file[128];
	void *p;
	int fd;

	snprintf(file, sizeof(file), "/sys/bus/pci/devices/%s/resource%d", pci, bar);
	fd = open(file, O_RDWR | O_CLOEXEC);
	check(fd >= 0, "open %s: %s", file, strerror(errno));
	p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	check(p != MAP_FAILED, "mmap %s: %s", file, strerror(errno));
	close(fd);
	return p;
}

/* This process's pinned memory in kB (VmPin: what the driver charges for regions). */
static long vm_pin_kb(void)
{
	char line[256];
	long kb = -1;
	FILE *f = fopen("/proc/self/status", "r");

	check(f, "/proc/self/status: %s", strerror(errno));
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "VmPin: %ld kB", &kb) == 1)
			break;
	fclose(f);
	return kb;
}

/* echo's PEEK (4) or POKE (5) of [off, off + n) of region id; POKE writes data. */
static int32_t echo_at(int fd, uint32_t h, uint32_t fn, uint32_t id, uint64_t off, uint32_t n,
		       const void *data, size_t *outlen)
{
	static uint8_t in[16 + 16384];
	uint32_t hdr[2] = { id, n };

	memcpy(in, hdr, 8);
	memcpy(in + 8, &off, 8);
	if (fn == 5)
		memcpy(in + 16, data, n);
	return call(fd, VBUS_OP_DEVCALL, h, fn, in, 16 + (fn == 5 ? n : 0), outlen);
}

/* VBUS_VM_IOC_SHM with these fields; the ioctl's errno (0: the bus's answer in s). */
static int shm_ioctl(int fd, struct vbus_vm_shm *s, void *addr, uint64_t size)
{
	*s = (struct vbus_vm_shm){ .addr = (uintptr_t)addr, .size = size, .seq = next_seq++ };
	return ioctl(fd, VBUS_VM_IOC_SHM, s) ? errno : 0;
}

/*
 * Shared regions (docs/vm.md, "Shared regions"): a memfd of 16 pages mapped here, handed to
 * the bus by the driver (VBUS_VM_IOC_SHM): vbusd's mapping of those guest-physical pages
 * holds what this process wrote (echo's PEEK across page boundaries) and what the host
 * writes there (POKE) shows here; VmPin is 64 kB while the bus maps it and 0 after
 * VBUS_VM_IOC_SHMREVOKE, and the revoked id is gone. Refused by the driver: a DEVSHM
 * written with write() (EPERM), an address or size not page-aligned, size 0, more than
 * VBUS_VM_SHM_MAX_PAGES pages (EINVAL), unmapped or read-only memory (EFAULT). A region
 * left to the connection's end is left pinned (checked after the reopen below).
 */
static uint32_t regions(int fd, uint32_t h)
{
	enum { PAGES = 16, SZ = PAGES * 4096 };
	struct vbus_vm_shmrevoke r;
	struct vbus_vm_shm s;
	struct vbus_devshm_in shm = { .size = 4096 };
	uint8_t *m, *ro, want[8192];
	size_t len;
	int32_t st;
	int mfd;

	check(write(fd, (struct vbus_msg[]){ { .op = VBUS_OP_DEVSHM, .len = sizeof(shm),
					      .seq = next_seq } }, sizeof(struct vbus_msg)) < 0 &&
	      errno == EPERM, "DEVSHM written with write(): %s", strerror(errno));
	printf("VBUS-VM DEVSHM written by a process: the driver refused it (EPERM)\n");

	mfd = memfd_create("vbus-vm-region", MFD_CLOEXEC);
	check(mfd >= 0 && ftruncate(mfd, SZ) == 0, "memfd: %s", strerror(errno));
	m = mmap(NULL, SZ, PROT_READ | PROT_WRITE, MAP_SHARED, mfd, 0);
	check(m != MAP_FAILED, "mmap: %s", strerror(errno));
	for (int i = 0; i < SZ; i++)
		m[i] = (uint8_t)(i * 7 + i / 4096);
	check(vm_pin_kb() == 0, "VmPin before: %ld kB", vm_pin_kb());
	check(!shm_ioctl(fd, &s, m, SZ) && s.status == 0 && s.id, "VBUS_VM_IOC_SHM: %s, status %d",
	      strerror(errno), s.status);
	check(vm_pin_kb() == SZ / 1024, "VmPin with the region: %ld kB", vm_pin_kb());
	/* Across page boundaries: each page may be anywhere in the VM's RAM. */
	for (uint64_t off = 0; off + 8192 <= SZ; off += 4096 + 1000) {
		st = echo_at(fd, h, 4, s.id, off, 8192, NULL, &len);
		check(!st && len == 8192 && !memcmp(ans + sizeof(struct vbus_msg), m + off, 8192),
		      "PEEK of 8192 bytes at %llu: status %d, %zu bytes, %s", (unsigned long long)off,
		      st, len, st ? "-" : "different bytes");
	}
	for (size_t i = 0; i < sizeof(want); i++)
		want[i] = (uint8_t)(i * 13 + 5);
	st = echo_at(fd, h, 5, s.id, 3 * 4096 + 100, sizeof(want), want, &len);
	check(!st && !memcmp(m + 3 * 4096 + 100, want, sizeof(want)),
	      "POKE of 8192 bytes: status %d, %s", st, st ? "-" : "not seen here");
	st = echo_at(fd, h, 4, s.id, SZ - 100, 101, NULL, &len);
	check(st == -EINVAL, "PEEK past the region's end: %d", st);
	printf("VBUS-VM region of %d pages: the host read what was written here and wrote what is read here; VmPin %d kB\n",
	       PAGES, SZ / 1024);
	r = (struct vbus_vm_shmrevoke){ .id = s.id, .seq = next_seq++ };
	check(!ioctl(fd, VBUS_VM_IOC_SHMREVOKE, &r) && r.status == 0, "SHMREVOKE: %s, status %d",
	      strerror(errno), r.status);
	check(vm_pin_kb() == 0, "VmPin after SHMREVOKE: %ld kB", vm_pin_kb());
	st = echo_at(fd, h, 4, s.id, 0, 16, NULL, &len);
	check(st == -ENOENT, "PEEK of the revoked region: %d", st);
	r = (struct vbus_vm_shmrevoke){ .id = s.id, .seq = next_seq++ };
	check(!ioctl(fd, VBUS_VM_IOC_SHMREVOKE, &r) && r.status == -ENOENT,
	      "SHMREVOKE again: %s, status %d", strerror(errno), r.status);
	printf("VBUS-VM SHMREVOKE: VmPin 0 kB, the id gone (PEEK and a second SHMREVOKE: ENOENT)\n");

	check(shm_ioctl(fd, &s, m + 1, 4096) == EINVAL, "unaligned address: %s", strerror(errno));
	check(shm_ioctl(fd, &s, m, 4095) == EINVAL, "unaligned size: %s", strerror(errno));
	check(shm_ioctl(fd, &s, m, 0) == EINVAL, "size 0: %s", strerror(errno));
	check(shm_ioctl(fd, &s, m, (VBUS_VM_SHM_MAX_PAGES + 1ull) * 4096) == EINVAL,
	      "%d pages: %s", VBUS_VM_SHM_MAX_PAGES + 1, strerror(errno));
	munmap(m + SZ - 4096, 4096);
	check(shm_ioctl(fd, &s, m, SZ) == EFAULT, "a hole in the range: %s", strerror(errno));
	ro = mmap(NULL, 4096, PROT_READ, MAP_SHARED, mfd, 0);
	check(ro != MAP_FAILED, "mmap read-only: %s", strerror(errno));
	check(shm_ioctl(fd, &s, ro, 4096) == EFAULT, "read-only memory: %s", strerror(errno));
	munmap(ro, 4096);
	check(vm_pin_kb() == 0, "VmPin after the refusals: %ld kB", vm_pin_kb());
	printf("VBUS-VM VBUS_VM_IOC_SHM refused: unaligned address or size, size 0, %d pages (EINVAL), a hole, read-only memory (EFAULT); nothing left pinned\n",
	       VBUS_VM_SHM_MAX_PAGES + 1);

	/* One region left for the connection's end (checked after the reopen). */
	check(!shm_ioctl(fd, &s, m, 4096) && s.status == 0, "the region left: %s, status %d",
	      strerror(errno), s.status);
	check(vm_pin_kb() == 4, "VmPin with the region left: %ld kB", vm_pin_kb());
	echo(fd, h, 17);
	return s.id;
}

/* VBUS_VM_IOC_SIG for eventfd efd; the ioctl's errno (0: the bus's answer in g). */
static int sig_ioctl(int fd, struct vbus_vm_sig *g, int efd, uint32_t direction)
{
	*g = (struct vbus_vm_sig){ .fd = efd, .direction = direction, .seq = next_seq++ };
	return ioctl(fd, VBUS_VM_IOC_SIG, g) ? errno : 0;
}

static int32_t sig_revoke(int fd, uint32_t id)
{
	struct vbus_vm_sigrevoke r = { .id = id, .seq = next_seq++ };

	check(!ioctl(fd, VBUS_VM_IOC_SIGREVOKE, &r), "SIGREVOKE %#x: %s", id, strerror(errno));
	return r.status;
}

/* echo's WAIT (7) for signal id, ms milliseconds: its status; *rung the count read. */
static int32_t echo_wait(int fd, uint32_t h, uint32_t id, uint32_t ms, uint64_t *rung)
{
	uint32_t in[2] = { id, ms };
	size_t len;
	int32_t st = call(fd, VBUS_OP_DEVCALL, h, 7, in, sizeof(in), &len);

	*rung = 0;
	if (!st && len == 8)
		memcpy(rung, ans + sizeof(struct vbus_msg), 8);
	return st;
}

static int32_t echo_kick(int fd, uint32_t h, uint32_t id)
{
	size_t len;

	return call(fd, VBUS_OP_DEVCALL, h, 6, &id, sizeof(id), &len);
}

static uint64_t interrupts(int fd, uint32_t vector)
{
	struct vbus_vm_counts c = { .vector = vector };

	check(!ioctl(fd, VBUS_VM_IOC_COUNTS, &c), "COUNTS: %s", strerror(errno));
	return c.interrupts;
}

/*
 * Signals (docs/vm.md, "Signals"), the VM having 2 vectors (vector 1 for each direction):
 * a TO_HOST signal's eventfd, written 3 times here, is read 3 on the host (echo's WAIT),
 * and its count here stays 0 (the driver read it in its wake-up); a WAIT with nothing rung
 * times out. A TO_GUEST signal kicked by the host (echo's KICK) makes vector 1 interrupt
 * and this eventfd readable. A second signal of a direction: the bus's -ENOSPC. After
 * SIGREVOKE a write stays in the eventfd and echo no longer finds the id (ENOENT).
 * Refused by the driver: DEVSIG and SIGREVOKE written with write() (EPERM), a bad
 * direction, a reserved field, a pipe (EINVAL), a closed descriptor (EBADF). One signal
 * is left to the connection's end: the next connection gets vector 1 again.
 */
static void signals(int fd, uint32_t h)
{
	struct vbus_devsig_in in = { .direction = VBUS_SIG_TO_HOST, .flags = VBUS_SIG_F_VECTOR };
	struct vbus_vm_sig db, tg, x;
	uint64_t n = 1, rung;
	int efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	int gfd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK), pfd[2];
	struct pollfd p = { .fd = gfd, .events = POLLIN };
	uint64_t before;
	int32_t st;

	check(efd >= 0 && gfd >= 0 && !pipe(pfd), "eventfd: %s", strerror(errno));
	memcpy(msg, &(struct vbus_msg){ .op = VBUS_OP_DEVSIG, .len = sizeof(in), .seq = next_seq },
	       sizeof(struct vbus_msg));
	memcpy(msg + sizeof(struct vbus_msg), &in, sizeof(in));
	check(write(fd, msg, sizeof(struct vbus_msg) + sizeof(in)) < 0 && errno == EPERM,
	      "DEVSIG written with write(): %s", strerror(errno));
	check(write(fd, (struct vbus_msg[]){ { .op = VBUS_OP_SIGREVOKE, .seq = next_seq, .arg = 1 } },
		    sizeof(struct vbus_msg)) < 0 && errno == EPERM,
	      "SIGREVOKE written with write(): %s", strerror(errno));
	check(sig_ioctl(fd, &x, efd, 3) == EINVAL, "direction 3: %s", strerror(errno));
	x = (struct vbus_vm_sig){ .fd = efd, .direction = VBUS_SIG_TO_HOST, .reserved = 1 };
	check(ioctl(fd, VBUS_VM_IOC_SIG, &x) < 0 && errno == EINVAL, "reserved 1: %s",
	      strerror(errno));
	check(sig_ioctl(fd, &x, pfd[0], VBUS_SIG_TO_HOST) == EINVAL, "a pipe: %s", strerror(errno));
	check(sig_ioctl(fd, &x, 999, VBUS_SIG_TO_HOST) == EBADF, "a closed descriptor: %s",
	      strerror(errno));
	close(pfd[0]);
	close(pfd[1]);
	printf("VBUS-VM DEVSIG and SIGREVOKE written by a process: EPERM; VBUS_VM_IOC_SIG refused: direction 3, reserved, a pipe (EINVAL), a closed descriptor (EBADF)\n");

	check(!sig_ioctl(fd, &db, efd, VBUS_SIG_TO_HOST) && !db.status && db.id && db.vector == 1,
	      "TO_HOST signal: %s, status %d, id %#x, vector %u", strerror(errno), db.status,
	      db.id, db.vector);
	for (int i = 0; i < 3; i++)
		check(write(efd, &n, sizeof(n)) == sizeof(n), "ring: %s", strerror(errno));
	check(read(efd, &n, sizeof(n)) < 0 && errno == EAGAIN, "the eventfd kept a count: %s",
	      strerror(errno));
	st = echo_wait(fd, h, db.id, 5000, &rung);
	check(!st && rung == 3, "WAIT on the doorbell: status %d, %llu rung", st,
	      (unsigned long long)rung);
	st = echo_wait(fd, h, db.id, 100, &rung);
	check(st == -ETIMEDOUT, "WAIT with nothing rung: %d", st);
	printf("VBUS-VM TO_HOST signal on vector %u: 3 writes here, 3 doorbells read by the host; none more (ETIMEDOUT)\n",
	       db.vector);

	check(!sig_ioctl(fd, &tg, gfd, VBUS_SIG_TO_GUEST) && !tg.status && tg.vector == 1 &&
	      tg.id != db.id, "TO_GUEST signal: %s, status %d, id %#x, vector %u", strerror(errno),
	      tg.status, tg.id, tg.vector);
	before = interrupts(fd, 1);
	st = echo_kick(fd, h, tg.id);
	check(!st, "KICK: %d", st);
	check(poll(&p, 1, 10000) == 1 && read(gfd, &n, sizeof(n)) == sizeof(n) && n == 1,
	      "the eventfd after KICK: %s", strerror(errno));
	check(interrupts(fd, 1) == before + 1, "vector 1 interrupts: %llu, %llu before",
	      (unsigned long long)interrupts(fd, 1), (unsigned long long)before);
	st = echo_kick(fd, h, db.id);
	check(st == -ENOENT, "KICK of a TO_HOST signal: %d", st);
	printf("VBUS-VM TO_GUEST signal on vector %u: the host's KICK interrupted once and the eventfd read 1\n",
	       tg.vector);

	check(!sig_ioctl(fd, &x, efd, VBUS_SIG_TO_HOST) && x.status == -ENOSPC && !x.id,
	      "a second TO_HOST signal: %s, status %d", strerror(errno), x.status);
	check(!sig_ioctl(fd, &x, gfd, VBUS_SIG_TO_GUEST) && x.status == -ENOSPC,
	      "a second TO_GUEST signal: %s, status %d", strerror(errno), x.status);
	printf("VBUS-VM a second signal of each direction: the bus's ENOSPC (2 vectors)\n");

	check(!sig_revoke(fd, db.id), "SIGREVOKE of the doorbell");
	check(write(efd, &n, sizeof(n)) == sizeof(n) && read(efd, &n, sizeof(n)) == sizeof(n),
	      "a write after SIGREVOKE stays in the eventfd: %s", strerror(errno));
	st = echo_wait(fd, h, db.id, 100, &rung);
	check(st == -ENOENT, "WAIT on the revoked signal: %d", st);
	check(sig_revoke(fd, db.id) == -ENOENT, "SIGREVOKE again");
	check(!sig_revoke(fd, tg.id), "SIGREVOKE of the TO_GUEST signal");
	check(echo_kick(fd, h, tg.id) == -ENOENT, "KICK of the revoked signal");
	printf("VBUS-VM SIGREVOKE: the eventfd no longer rings, the ids are gone (ENOENT)\n");

	/* One left for the connection's end (its vector is free for the next one). */
	check(!sig_ioctl(fd, &db, efd, VBUS_SIG_TO_HOST) && !db.status && db.vector == 1,
	      "the signal left: %s, status %d, vector %u", strerror(errno), db.status, db.vector);
	close(gfd);
	close(efd);	/* the binding holds it */
}

/*
 * What a hostile root in the VM can do, bypassing the driver: unbind it, map BAR0 and BAR2
 * through sysfs, write raw channel fields and ring vector 0 by hand; vbusd answers the
 * channel's refusals. Then bind the driver again (its probe resets the channel). No file
 * of the device may be open (the device's number would change).
 */
static void raw_bar2(void)
{
	char link[256], pci[256], *base;
	volatile struct vbus_vm_chan *c;
	volatile uint32_t *regs;
	struct vbus_vm_bar2 h;
	uint8_t *bar2;
	ssize_t n;

	n = readlink("/sys/class/misc/" VBUS_VM_DEV_NAME "0/device", link, sizeof(link) - 1);
	check(n > 0, "the device's PCI address: %s", strerror(errno));
	link[n] = 0;
	base = strrchr(link, '/');
	snprintf(pci, sizeof(pci), "%s", base ? base + 1 : link);
	write_file("/sys/bus/pci/drivers/vbus_vmguest/unbind", pci);
	regs = map_resource(pci, 0, 4096);
	bar2 = map_resource(pci, 2, 256 << 10);
	memcpy(&h, bar2, sizeof(h));
	c = (volatile struct vbus_vm_chan *)(bar2 + h.chan_offset);
	for (int k = 0; k < 4; k++) {
		/* Far from the driver's own numbers, which go on from its last one. */
		uint32_t seq = c->req_seq + 1000;
		static const char *what[] = { "req_len 0xffffffff", "req_kind 7", "req_len 10",
					      "req_conn 3 of 3" };
		static const int want[] = { -EMSGSIZE, -EINVAL, -EPROTO, -EINVAL };

		c->req_len = k == 0 ? 0xffffffffu : k == 1 || k == 3 ? 40 : 10;
		c->req_kind = k == 1 ? 7 : VBUS_VM_CHAN_MSG;
		c->req_conn = k == 3 ? 3 : 0;	/* the driver's removal left VBUS_VM_CONN_ALL */
		__sync_synchronize();
		c->req_seq = seq;
		__sync_synchronize();
		regs[3] = h.host_peer << 16 | 0;	/* Doorbell: the host, vector 0 */
		while (c->resp_seq != seq)	/* the host test's limit applies */
			usleep(10000);
		__sync_synchronize();
		check(c->resp_status == want[k], "raw %s: resp_status %d, not %d", what[k],
		      c->resp_status, want[k]);
		printf("VBUS-VM raw BAR2 %s: vbusd answered %s\n", what[k], strerror(-want[k]));
	}
	munmap(bar2, 256 << 10);
	munmap((void *)regs, 4096);
	write_file("/sys/bus/pci/drivers/vbus_vmguest/bind", pci);
	wait_device("bind");
}

/*
 * The device removed (PCI remove through sysfs) while a process sleeps in read() waiting
 * for the answer to echo's SLEEP: it wakes with ENODEV; the driver's remove posts a RESET
 * over the unanswered request. A rescan probes the device again.
 */
static void remove_while_reading(void)
{
	struct vbus_devopen_in op = { .name = "e0", .devclass = "echo" };
	uint32_t ms = 1000, h;
	size_t len;
	int fd, st;
	pid_t pid;

	fd = open(path, O_RDWR | O_CLOEXEC);
	check(fd >= 0, "open: %s", strerror(errno));
	hello(fd);
	check(!call(fd, VBUS_OP_DEVOPEN, 0, 0, &op, sizeof(op), &len), "DEVOPEN");
	memcpy(&h, ans + sizeof(struct vbus_msg), 4);
	post(fd, VBUS_OP_DEVCALL, h, 2, &ms, sizeof(ms));
	pid = fork();
	check(pid >= 0, "fork: %s", strerror(errno));
	if (!pid) {	/* before or after the removal, the answer is ENODEV */
		ssize_t n = read(fd, ans, sizeof(ans));

		_exit(n < 0 && errno == ENODEV ? 0 : 1);
	}
	close(fd);	/* the child's copy keeps the file open */
	write_file("/sys/class/misc/" VBUS_VM_DEV_NAME "0/device/remove", "1");
	check(waitpid(pid, &st, 0) == pid && WIFEXITED(st) && !WEXITSTATUS(st),
	      "the reader did not get ENODEV (wait status %#x)", st);
	write_file("/sys/bus/pci/rescan", "1");
	wait_device("a rescan");
	printf("VBUS-VM removed under a sleeping read: ENODEV; rescan: back\n");
}

/* echo's EVENT (3): the device sends this connection a VBUS_EV_DEVICE with code. */
static void echo_event(int fd, uint32_t h, uint32_t code)
{
	size_t len;
	int32_t st = call(fd, VBUS_OP_DEVCALL, h, 3, &code, sizeof(code), &len);

	check(!st, "echo EVENT %u: %d", code, st);
}

/* VBUS_VM_IOC_EVENT: 0 with the event in *ev and *lost, or the errno. */
static int take_event(int fd, struct vbus_event *ev, uint32_t *lost)
{
	struct vbus_vm_event e;

	if (ioctl(fd, VBUS_VM_IOC_EVENT, &e))
		return errno;
	memcpy(ev, e.event, sizeof(*ev));
	*lost = e.lost;
	return 0;
}

/*
 * The bus's events (docs/vm.md, "Events"): the binding's refusals (flags, a descriptor
 * that is no eventfd, another file); nothing queued before a binding (EAGAIN); echo's EVENT
 * comes back through the ring as VBUS_EV_DEVICE with its handle and code, signals the
 * bound eventfd, and is taken once; of 100 events not taken meanwhile (the driver queues
 * VBUS_VM_EVQ_MAX), each is either taken, in order, or counted lost in the `lost` of the
 * next one taken, none twice, and the newest is taken.
 */
static void events(int fd, uint32_t h)
{
	struct vbus_vm_eventfd b = { .fd = fd, .flags = 0 };
	struct pollfd p;
	struct vbus_event ev;
	uint32_t lost, taken = 0, sum = 0, last = 0;
	uint64_t n;
	int efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK), fd2;

	check(efd >= 0, "eventfd: %s", strerror(errno));
	check(ioctl(fd, VBUS_VM_IOC_EVENTFD, &b) < 0 && errno == EINVAL,
	      "EVENTFD of a descriptor that is no eventfd: %s", strerror(errno));
	b = (struct vbus_vm_eventfd){ .fd = efd, .flags = 1 };
	check(ioctl(fd, VBUS_VM_IOC_EVENTFD, &b) < 0 && errno == EINVAL, "EVENTFD flags 1: %s",
	      strerror(errno));
	fd2 = open(path, O_RDWR | O_CLOEXEC);
	b.flags = 0;
	check(fd2 >= 0 && ioctl(fd2, VBUS_VM_IOC_EVENTFD, &b) < 0 && errno == ENOTCONN &&
	      take_event(fd2, &ev, &lost) == ENOTCONN, "another file's EVENTFD and EVENT: %s",
	      strerror(errno));
	close(fd2);
	echo_event(fd, h, 7);	/* before the binding: never queued */
	check(!ioctl(fd, VBUS_VM_IOC_EVENTFD, &b), "EVENTFD: %s", strerror(errno));
	check(take_event(fd, &ev, &lost) == EAGAIN, "an event from before the binding was queued");
	printf("VBUS-VM events: EINVAL for flags and a non-eventfd, ENOTCONN for another file, none from before the binding\n");

	echo_event(fd, h, 0x1234);
	p = (struct pollfd){ .fd = efd, .events = POLLIN };
	check(poll(&p, 1, -1) == 1, "poll the event eventfd: %s", strerror(errno));
	check(!take_event(fd, &ev, &lost), "EVENT: %s", strerror(errno));
	check(ev.type == VBUS_EV_DEVICE && ev.handle == h && ev.code == 0x1234 && !lost,
	      "event type %u handle %#x code %#x lost %u", ev.type, ev.handle, ev.code, lost);
	check(take_event(fd, &ev, &lost) == EAGAIN, "a second event");
	printf("VBUS-VM events: echo's EVENT came back through the ring: VBUS_EV_DEVICE on handle %#x, code %#x, the eventfd signalled\n",
	       h, ev.code);

	for (uint32_t i = 1; i <= 100; i++)
		echo_event(fd, h, i);
	/* Every event is taken or counted lost, eventually: the interrupts may still come. */
	while (sum < 100) {
		check(read(efd, &n, sizeof(n)) == sizeof(n) || errno == EAGAIN, "read eventfd");
		while (!take_event(fd, &ev, &lost)) {
			check(ev.type == VBUS_EV_DEVICE && ev.code > last && ev.code <= 100,
			      "event %u after %u", ev.code, last);
			check(ev.code - last - 1 == lost, "event %u after %u: %u lost", ev.code,
			      last, lost);
			last = ev.code;
			taken++;
			sum += 1 + lost;
		}
		if (sum < 100)
			check(poll(&p, 1, -1) == 1, "poll: %s", strerror(errno));
	}
	check(sum == 100 && last == 100,
	      "100 events: %u taken, the last %u, %u in all", taken, last, sum);
	printf("VBUS-VM events: 100 not taken meanwhile: %u taken in order, the last the newest, %u counted lost\n",
	       taken, 100 - taken);
	close(efd);
}

/* Read @fd's answer to request @seq: an echo of @len bytes of @p. */
static void echoed(int fd, uint64_t seq, const void *p, size_t len)
{
	ssize_t n = read(fd, ans, sizeof(ans));
	struct vbus_msg h;

	check(n == (ssize_t)(sizeof(h) + len), "read the kept answer: %zd, %s", n, strerror(errno));
	memcpy(&h, ans, sizeof(h));
	check(h.seq == seq && !h.status && !memcmp(ans + sizeof(h), p, len),
	      "the kept answer: seq %llu status %d", (unsigned long long)h.seq, (int32_t)h.status);
}

/* Take one event of @fd: echo's with @code, and nothing after it. */
static void one_event(int fd, int efd, uint32_t code)
{
	struct pollfd p = { .fd = efd, .events = POLLIN };
	struct vbus_event ev;
	uint32_t lost;
	uint64_t n;

	check(poll(&p, 1, -1) == 1 && read(efd, &n, sizeof(n)) == sizeof(n), "poll the eventfd");
	check(!take_event(fd, &ev, &lost) && ev.type == VBUS_EV_DEVICE && ev.code == code &&
	      !lost, "the event: %s, type %u code %#x lost %u", strerror(errno), ev.type, ev.code,
	      lost);
	check(take_event(fd, &ev, &lost) == EAGAIN, "an event after code %#x", code);
}

/*
 * Other files' connections (VBUS_VM_F_CONNS; vm-connector.sh gives the VM `conns 3`):
 *   - a second file's HELLO is accepted and starts a connection of its own: the first's
 *     handle is not its (-ENOENT), its own DEVOPEN and echo work;
 *   - the mailbox is shared, the answers are not: the first file posts and does not read,
 *     the second's echo is answered meanwhile, then the first reads its own answer;
 *   - each file's events reach that file only;
 *   - a third file connects; a fourth gets EBUSY (every slot taken) until one closes.
 *   - two processes do 100 echoes each at once, every answer their own;
 * 310 messages answered by the bus, 2 events, 3 connections.
 */
static void conns(int fd, uint32_t h)
{
	struct vbus_devopen_in op = { .name = "e0", .devclass = "echo" };
	int f2 = open(path, O_RDWR | O_CLOEXEC), f3 = open(path, O_RDWR | O_CLOEXEC);
	int f4 = open(path, O_RDWR | O_CLOEXEC);
	int e1 = eventfd(0, EFD_CLOEXEC), e2 = eventfd(0, EFD_CLOEXEC);
	struct vbus_vm_eventfd b;
	struct vbus_event ev;
	struct pollfd p;
	uint32_t h2, lost;
	uint64_t seq;
	size_t len;

	check(f2 >= 0 && f3 >= 0 && f4 >= 0 && e1 >= 0 && e2 >= 0, "open: %s", strerror(errno));
	hello(f2);
	check(call(f2, VBUS_OP_DEVCALL, h, 1, "x", 1, &len) == -ENOENT,
	      "the first file's handle on the second's connection");
	check(!call(f2, VBUS_OP_DEVOPEN, 0, 0, &op, sizeof(op), &len), "DEVOPEN on the second");
	memcpy(&h2, ans + sizeof(struct vbus_msg), 4);
	echo(f2, h2, 100);
	printf("VBUS-VM conns: a second file has a connection of its own (handle %#x; the first's: ENOENT)\n",
	       h2);

	post(fd, VBUS_OP_DEVCALL, h, 1, "abc", 3);
	seq = next_seq - 1;
	echo(f2, h2, 200);
	p = (struct pollfd){ .fd = fd, .events = POLLIN };
	check(poll(&p, 1, 0) == 1 && (p.revents & POLLIN), "the first's answer is not kept");
	echoed(fd, seq, "abc", 3);
	printf("VBUS-VM conns: the second served while the first's answer waited, kept for it\n");

	b = (struct vbus_vm_eventfd){ .fd = e1 };
	check(!ioctl(fd, VBUS_VM_IOC_EVENTFD, &b), "EVENTFD on the first: %s", strerror(errno));
	b.fd = e2;
	check(!ioctl(f2, VBUS_VM_IOC_EVENTFD, &b), "EVENTFD on the second: %s", strerror(errno));
	echo_event(fd, h, 0x51);
	one_event(fd, e1, 0x51);
	echo_event(f2, h2, 0x52);
	one_event(f2, e2, 0x52);
	check(take_event(fd, &ev, &lost) == EAGAIN, "the second's event reached the first");
	b.fd = -1;
	check(!ioctl(fd, VBUS_VM_IOC_EVENTFD, &b), "EVENTFD -1: %s", strerror(errno));
	printf("VBUS-VM conns: each file's events reach that file only\n");

	/* Two processes at once on their own files, each its echoes in turn with the other's
	 * through the one mailbox: every answer its own (the bytes carry the process), none
	 * lost (no hang), against one process alone for scale. */
	{
		long t0 = now_ms(), t1, t2;
		pid_t pid;
		int st;

		for (int i = 0; i < 100; i++)
			echo_quiet(fd, h, 64 + i, 1);
		t1 = now_ms();
		pid = fork();
		check(pid >= 0, "fork: %s", strerror(errno));
		if (!pid) {
			for (int i = 0; i < 100; i++)
				echo_quiet(f2, h2, 64 + i, 2);
			_exit(0);
		}
		for (int i = 0; i < 100; i++)
			echo_quiet(fd, h, 64 + i, 1);
		check(waitpid(pid, &st, 0) == pid && WIFEXITED(st) && !WEXITSTATUS(st),
		      "the second process's echoes (wait status %#x)", st);
		t2 = now_ms();
		printf("VBUS-VM conns: 2 processes x 100 echoes at once in %ld ms, 1 x 100 alone in %ld ms\n",
		       t2 - t1, t1 - t0);
	}
	hello(f3);
	check(write(f4, msg, sizeof(struct vbus_msg)) < 0 && errno == EBUSY,
	      "a fourth file with 3 slots: %s", strerror(errno));
	close(f3);	/* its slot is free once vbusd answered its RESET: f4 waits for it */
	hello(f4);
	printf("VBUS-VM conns: a fourth file: EBUSY with 3 slots taken, connected once one closed\n");
	close(f2);
	close(f4);
	close(e1);
	close(e2);
}

static int beat(void)
{
	struct vbus_devopen_in op = { .name = "e0", .devclass = "echo" };
	struct vbus_event ev;
	struct vbus_vm_eventfd b;
	struct pollfd p;
	uint32_t lost;
	size_t len;
	int fd[2], efd[2];

	/* Two files: two connections of the VM, each told of vbusd's death. */
	for (int i = 0; i < 2; i++) {
		fd[i] = open(path, O_RDWR | O_CLOEXEC);
		efd[i] = eventfd(0, EFD_CLOEXEC);
		check(fd[i] >= 0 && efd[i] >= 0, "open %s, eventfd: %s", path, strerror(errno));
		hello(fd[i]);
		check(!call(fd[i], VBUS_OP_DEVOPEN, 0, 0, &op, sizeof(op), &len), "DEVOPEN e0");
		b = (struct vbus_vm_eventfd){ .fd = efd[i] };
		check(!ioctl(fd[i], VBUS_VM_IOC_EVENTFD, &b), "EVENTFD: %s", strerror(errno));
	}
	printf("VBUS-VM-BEAT-READY\n");
	for (int i = 0; i < 2; i++) {
		p = (struct pollfd){ .fd = efd[i], .events = POLLIN };
		check(poll(&p, 1, -1) == 1, "poll the event eventfd: %s", strerror(errno));
		check(!take_event(fd[i], &ev, &lost), "EVENT: %s", strerror(errno));
		check(ev.type == VBUS_EV_DISCONNECTED,
		      "the event after vbusd's death: type %u code %u", ev.type, ev.code);
		check(write(fd[i], msg, sizeof(struct vbus_msg)) < 0 && errno == ECONNRESET,
		      "a request after vbusd's death: %s", strerror(errno));
		close(fd[i]);
		close(efd[i]);
	}
	printf("VBUS-VM beat: both connections got DISCONNECTED once vbusd's heartbeat stopped\n");
	printf("VBUS-VM beat: the next request fails with ECONNRESET\n");
	printf("VBUS-VM-BEAT-OK\n");
	return 0;
}

int main(int argc, char **argv)
{
	struct vbus_devopen_in op = { .name = "e0", .devclass = "echo" };
	struct vbus_devenum_out en;
	struct vbus_dev_entry e;
	struct vbus_msg bad;
	struct pollfd p;
	uint32_t ms = 5000, h, handle, left;	/* echo's longest SLEEP: the read comes long before */
	size_t len;
	int fd, fl;
	int32_t st;

	setvbuf(stdout, NULL, _IOLBF, 0);
	if (argc > 1 && !strcmp(argv[1], "beat"))
		return beat();
	fd = open(path, O_RDWR | O_CLOEXEC);
	check(fd >= 0, "open %s: %s", path, strerror(errno));
	check(read(fd, ans, sizeof(ans)) < 0 && errno == ENOMSG, "read with nothing posted: %s",
	      strerror(errno));
	{
		struct vbus_vm_eventfd b = { .fd = -1 };
		struct vbus_event ev;
		uint32_t lost;

		check(ioctl(fd, VBUS_VM_IOC_EVENTFD, &b) < 0 && errno == ENOTCONN &&
		      take_event(fd, &ev, &lost) == ENOTCONN,
		      "the event ioctls before a connection: %s", strerror(errno));
	}
	hello(fd);

	st = call(fd, VBUS_OP_DEVENUM, 0, 0, NULL, 0, &len);
	check(!st && len >= sizeof(en), "DEVENUM: %d", st);
	memcpy(&en, ans + sizeof(struct vbus_msg), sizeof(en));
	check(en.count == 1 && len == sizeof(en) + sizeof(e), "DEVENUM: %u devices", en.count);
	memcpy(&e, ans + sizeof(struct vbus_msg) + sizeof(en), sizeof(e));
	check(!strcmp(e.name, "e0") && !strcmp(e.devclass, "echo"), "DEVENUM: %s of %s", e.name,
	      e.devclass);
	printf("VBUS-VM devenum: %s class %s\n", e.name, e.devclass);
	st = call(fd, VBUS_OP_DEVOPEN, 0, 0, &op, sizeof(op), &len);
	check(!st && len == 8, "DEVOPEN e0: %d", st);
	memcpy(&handle, ans + sizeof(struct vbus_msg), 4);
	printf("VBUS-VM devopen e0: handle %#x\n", handle);
	echo(fd, handle, 17);
	echo(fd, handle, VBUS_MAX_PAYLOAD);

	/* Non-blocking: echo's SLEEP holds the answer back. */
	fl = fcntl(fd, F_GETFL);
	check(fcntl(fd, F_SETFL, fl | O_NONBLOCK) == 0, "O_NONBLOCK");
	post(fd, VBUS_OP_DEVCALL, handle, 2, &ms, sizeof(ms));
	check(read(fd, ans, sizeof(ans)) < 0 && errno == EAGAIN, "O_NONBLOCK read: %s",
	      strerror(errno));
	check(write(fd, msg, sizeof(struct vbus_msg)) < 0 && errno == EBUSY,
	      "a second request before reading: %s", strerror(errno));
	p = (struct pollfd){ .fd = fd, .events = POLLIN };
	check(poll(&p, 1, -1) == 1 && (p.revents & POLLIN), "poll: %s %#x", strerror(errno),
	      p.revents);
	st = answer(fd, VBUS_OP_DEVCALL, &len);
	check(!st && !len, "SLEEP: %d", st);
	check(fcntl(fd, F_SETFL, fl) == 0, "blocking again");
	printf("VBUS-VM O_NONBLOCK: EAGAIN, EBUSY, then POLLIN and the answer\n");

	/* Malformed messages. */
	memset(msg, 0, 10);
	refused(fd, msg, 10, EPROTO, "10 bytes");
	bad = (struct vbus_msg){ .op = VBUS_OP_DEVCALL, .len = 100, .seq = 1, .handle = handle,
				 .arg = 1 };
	memcpy(msg, &bad, sizeof(bad));
	refused(fd, msg, sizeof(bad) + 4, EPROTO, "header len 100 with 4 bytes");
	bad = (struct vbus_msg){ .op = VBUS_OP_DEVENUM, .seq = 1, .nfds = 1 };
	memcpy(msg, &bad, sizeof(bad));
	refused(fd, msg, sizeof(bad), EPROTO, "nfds 1");
	st = call(fd, 99, 0, 0, NULL, 0, &len);
	check(st == -EOPNOTSUPP, "op 99: %d", st);
	printf("VBUS-VM op 99: the bus answered %s\n", strerror(-st));
	check(write(fd, msg, VBUS_VM_MSG_MAX + 1) < 0 && errno == EMSGSIZE,
	      "a write above VBUS_VM_MSG_MAX: %s", strerror(errno));
	echo(fd, handle, 17);
	conns(fd, handle);
	left = regions(fd, handle);
	signals(fd, handle);
	events(fd, handle);

	/* Closing ends the connection: a new one says HELLO afresh, the old handle is gone. */
	close(fd);
	fd = open(path, O_RDWR | O_CLOEXEC);
	check(fd >= 0, "reopen: %s", strerror(errno));
	hello(fd);
	/* vbusd answered the RESET of the old connection before this HELLO: the driver has
	 * unpinned the region that connection left. */
	check(vm_pin_kb() == 0, "VmPin after the connection ended: %ld kB", vm_pin_kb());
	printf("VBUS-VM the region left to the connection's end (id %#x): unpinned once vbusd answered the RESET\n",
	       left);
	{
		struct vbus_vm_sig g;
		int sfd = eventfd(0, EFD_CLOEXEC);

		check(!sig_ioctl(fd, &g, sfd, VBUS_SIG_TO_HOST) && !g.status && g.vector == 1,
		      "a signal after the connection's end: %s, status %d, vector %u",
		      strerror(errno), g.status, g.vector);
		close(sfd);
		printf("VBUS-VM the signal left to the connection's end: its vector was free for the next connection\n");
	}
	st = call(fd, VBUS_OP_DEVCALL, handle, 1, "x", 1, &len);
	check(st == -ENOENT, "the old connection's handle: %d", st);
	st = call(fd, VBUS_OP_DEVOPEN, 0, 0, &op, sizeof(op), &len);
	check(!st, "DEVOPEN again: %d", st);
	memcpy(&h, ans + sizeof(struct vbus_msg), 4);
	echo(fd, h, 100);
	close(fd);
	printf("VBUS-VM reopen: a new connection\n");

	raw_bar2();
	fd = open(path, O_RDWR | O_CLOEXEC);
	check(fd >= 0, "open after bind: %s", strerror(errno));
	hello(fd);
	st = call(fd, VBUS_OP_DEVOPEN, 0, 0, &op, sizeof(op), &len);
	check(!st, "DEVOPEN after bind: %d", st);
	memcpy(&h, ans + sizeof(struct vbus_msg), 4);
	echo(fd, h, 100);
	close(fd);
	remove_while_reading();
	printf("VBUS-VM-CONN-OK\n");
	return 0;
}
