// SPDX-License-Identifier: MIT
/*
 * vbusd's ivshmem server (connector/ivshmem_server.c), played against by a client that
 * reads what QEMU would, as docs/specs/ivshmem-spec.rst words it: version 0; the VM's ID;
 * -1 with the shared memory; the host's ID once per vector, each with an eventfd; the VM's
 * ID once per vector, each with an eventfd; nothing more. Then both directions: what the
 * client writes to the host's descriptors is counted per vector by vbus_ivs_doorbells,
 * and vbus_ivs_interrupt reaches the VM's descriptor of that vector and no other. Bad
 * vector numbers are refused; fini leaves no descriptor open.
 */
#include <dirent.h>
#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>
#include <vbus/libvbus.h>
#include "../../connector/ivshmem_server.h"

#define fail(...) do { printf("FAIL line %d: ", __LINE__); printf(__VA_ARGS__); printf("\n"); exit(1); } while (0)
#define check(c, ...) do { if (!(c)) fail(__VA_ARGS__); } while (0)

static int open_fds(void)
{
	DIR *d = opendir("/proc/self/fd");
	int n = 0;

	while (d && readdir(d))
		n++;
	closedir(d);
	return n;
}

/* One message as QEMU reads it: the value, and the descriptor or -1. 0, or -1 at the end. */
static int recv_msg(int sock, int64_t *value, int *fd)
{
	union {
		struct cmsghdr h;
		char buf[CMSG_SPACE(sizeof(int))];
	} c;
	uint64_t le;
	struct iovec iov = { .iov_base = &le, .iov_len = sizeof(le) };
	struct msghdr m = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = c.buf,
			    .msg_controllen = sizeof(c.buf) };
	ssize_t n = recvmsg(sock, &m, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
	struct cmsghdr *h;

	if (n == 0 || (n < 0 && errno == EAGAIN))
		return -1;
	check(n == sizeof(le), "a message of %zd bytes, not 8", n);
	check(!(m.msg_flags & MSG_CTRUNC), "descriptors truncated");
	*value = (int64_t)le64toh(le);
	*fd = -1;
	h = CMSG_FIRSTHDR(&m);
	if (h) {
		check(h->cmsg_level == SOL_SOCKET && h->cmsg_type == SCM_RIGHTS &&
		      h->cmsg_len == CMSG_LEN(sizeof(int)), "one descriptor per message");
		memcpy(fd, CMSG_DATA(h), sizeof(int));
	}
	return 0;
}

static void is_eventfd(int fd)
{
	char link[64], path[64];
	ssize_t n;

	snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	n = readlink(path, link, sizeof(link) - 1);
	check(n > 0, "readlink %s", path);
	link[n] = 0;
	check(!strcmp(link, "anon_inode:[eventfd]"), "fd %d is %s, not an eventfd", fd, link);
}

static void run(uint32_t vectors)
{
	int host[VBUS_VM_MAX_VECTORS], vm[VBUS_VM_MAX_VECTORS], shm, qsock, fd, before;
	struct vbus_ivs s;
	struct stat st, st2;
	uint64_t n, one = 1;
	int64_t v;

	before = open_fds();
	check(!vbus_memfd_create("ivs-test", 4096, &shm), "memfd");
	check(!vbus_ivs_init(&s, shm, vectors), "init with %u vectors", vectors);
	qsock = dup(s.qemu_sock);
	vbus_ivs_qemu_started(&s);
	check(s.qemu_sock == -1, "QEMU's end still open after started");

	check(!recv_msg(qsock, &v, &fd) && v == 0 && fd < 0, "1: version 0, got %lld", (long long)v);
	check(!recv_msg(qsock, &v, &fd) && v == VBUS_IVS_VM_PEER && fd < 0, "2: the VM's ID");
	check(!recv_msg(qsock, &v, &fd) && v == -1 && fd >= 0, "3: -1 with the shared memory");
	check(!fstat(fd, &st) && !fstat(shm, &st2) && st.st_ino == st2.st_ino,
	      "3: the descriptor is not the shared memory's");
	close(fd);
	for (uint32_t i = 0; i < vectors; i++) {
		check(!recv_msg(qsock, &v, &host[i]) && v == VBUS_IVS_HOST_PEER && host[i] >= 0,
		      "4: host peer vector %u", i);
		is_eventfd(host[i]);
	}
	for (uint32_t i = 0; i < vectors; i++) {
		check(!recv_msg(qsock, &v, &vm[i]) && v == VBUS_IVS_VM_PEER && vm[i] >= 0,
		      "5: own vector %u", i);
		is_eventfd(vm[i]);
	}
	check(recv_msg(qsock, &v, &fd) == -1, "a message after the setup: %lld", (long long)v);

	/* The VM rings the host: vector i rung i + 1 times. */
	for (uint32_t i = 0; i < vectors; i++)
		for (uint32_t k = 0; k <= i; k++)
			check(write(host[i], &one, 8) == 8, "ring %u", i);
	for (uint32_t i = 0; i < vectors; i++) {
		check(!vbus_ivs_doorbells(&s, i, &n) && n == i + 1, "vector %u: %llu doorbells, not %u",
		      i, (unsigned long long)n, i + 1);
		check(!vbus_ivs_doorbells(&s, i, &n) && n == 0, "vector %u counted twice", i);
	}
	/* The host interrupts the VM on the last vector only. */
	check(!vbus_ivs_interrupt(&s, vectors - 1), "interrupt");
	check(!vbus_ivs_interrupt(&s, vectors - 1), "interrupt");
	for (uint32_t i = 0; i < vectors; i++) {
		int fl = fcntl(vm[i], F_GETFL);

		fcntl(vm[i], F_SETFL, fl | O_NONBLOCK);
		if (i == vectors - 1)
			check(read(vm[i], &n, 8) == 8 && n == 2, "the interrupts did not arrive");
		else
			check(read(vm[i], &n, 8) < 0 && errno == EAGAIN, "vector %u interrupted", i);
	}
	check(vbus_ivs_interrupt(&s, vectors) == -EINVAL, "vector %u accepted", vectors);
	check(vbus_ivs_doorbells(&s, vectors, &n) == -EINVAL, "vector %u accepted", vectors);

	vbus_ivs_fini(&s);
	check(recv_msg(qsock, &v, &fd) == -1, "the socket is not closed after fini");
	for (uint32_t i = 0; i < vectors; i++) {
		close(host[i]);
		close(vm[i]);
	}
	close(qsock);
	close(shm);
	check(open_fds() == before, "%d descriptors before, %d after", before, open_fds());
}

int main(void)
{
	struct vbus_ivs s;
	int shm;

	run(1);
	run(4);
	run(VBUS_VM_MAX_VECTORS);
	check(!vbus_memfd_create("ivs-test", 4096, &shm), "memfd");
	check(vbus_ivs_init(&s, shm, 0) == -EINVAL, "0 vectors accepted");
	check(vbus_ivs_init(&s, shm, VBUS_VM_MAX_VECTORS + 1) == -EINVAL, "too many vectors");
	vbus_ivs_fini(&s);	/* after a failed init: harmless */
	close(shm);
	printf("ivshmem server: setup sequence and both directions for 1, 4 and %d vectors\n",
	       VBUS_VM_MAX_VECTORS);
	return 0;
}
