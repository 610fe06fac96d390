// SPDX-License-Identifier: MIT
/*
 * vbusd as one VM's ivshmem server (ivshmem_server.h). Written from QEMU's
 * docs/specs/ivshmem-spec.rst: each message is one little-endian int64, with at most one
 * descriptor (SCM_RIGHTS); the connection only goes from server to client.
 */
#include <errno.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>
#include <endian.h>
#include "ivshmem_server.h"

#define IVS_PROTOCOL_VERSION	0
#define IVS_SHM_MESSAGE		(-1)	/* "here is the shared memory" */

/* One message: value, plus descriptor fd unless fd < 0. The pair's buffer is far larger
 * than the whole setup sequence, so that it is queued before QEMU runs. */
static int ivs_send(int sock, int64_t value, int fd)
{
	union {
		struct cmsghdr h;
		char buf[CMSG_SPACE(sizeof(int))];
	} c;
	uint64_t le = htole64((uint64_t)value);
	struct iovec iov = { .iov_base = &le, .iov_len = sizeof(le) };
	struct msghdr m = { .msg_iov = &iov, .msg_iovlen = 1 };
	ssize_t n;

	if (fd >= 0) {
		memset(&c, 0, sizeof(c));
		m.msg_control = c.buf;
		m.msg_controllen = sizeof(c.buf);
		c.h.cmsg_level = SOL_SOCKET;
		c.h.cmsg_type = SCM_RIGHTS;
		c.h.cmsg_len = CMSG_LEN(sizeof(int));
		memcpy(CMSG_DATA(&c.h), &fd, sizeof(int));
	}
	n = sendmsg(sock, &m, MSG_NOSIGNAL | MSG_DONTWAIT);
	if (n < 0)
		return -errno;
	return n == (ssize_t)sizeof(le) ? 0 : -EIO;
}

/* The numbered sequence of the spec's "On connect": 1 version, 2 the client's ID, 3 the
 * shared memory, 4 the other peers (here only the host), 5 the client's own vectors. */
static int ivs_send_setup(struct vbus_ivs *s, int shm_fd)
{
	int err;

	err = ivs_send(s->sock, IVS_PROTOCOL_VERSION, -1);
	if (!err)
		err = ivs_send(s->sock, VBUS_IVS_VM_PEER, -1);
	if (!err)
		err = ivs_send(s->sock, IVS_SHM_MESSAGE, shm_fd);
	for (uint32_t v = 0; v < s->vectors && !err; v++)
		err = ivs_send(s->sock, VBUS_IVS_HOST_PEER, s->host_efd[v]);
	for (uint32_t v = 0; v < s->vectors && !err; v++)
		err = ivs_send(s->sock, VBUS_IVS_VM_PEER, s->vm_efd[v]);
	return err;
}

int vbus_ivs_init(struct vbus_ivs *s, int shm_fd, uint32_t vectors)
{
	int sv[2], err;

	memset(s, 0, sizeof(*s));
	s->sock = s->qemu_sock = -1;
	for (int v = 0; v < VBUS_VM_MAX_VECTORS; v++)
		s->host_efd[v] = s->vm_efd[v] = -1;
	if (!vectors || vectors > VBUS_VM_MAX_VECTORS)
		return -EINVAL;
	s->vectors = vectors;
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv))
		return -errno;
	s->sock = sv[0];
	s->qemu_sock = sv[1];
	for (uint32_t v = 0; v < vectors; v++) {
		s->host_efd[v] = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
		s->vm_efd[v] = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
		if (s->host_efd[v] < 0 || s->vm_efd[v] < 0) {
			err = -errno;
			goto err_fini;
		}
	}
	err = ivs_send_setup(s, shm_fd);
	if (err)
		goto err_fini;
	return 0;

err_fini:
	vbus_ivs_fini(s);
	return err;
}

void vbus_ivs_qemu_started(struct vbus_ivs *s)
{
	if (s->qemu_sock >= 0)
		close(s->qemu_sock);
	s->qemu_sock = -1;
}

int vbus_ivs_doorbells(struct vbus_ivs *s, uint32_t v, uint64_t *n)
{
	uint64_t c;

	*n = 0;
	if (v >= s->vectors)
		return -EINVAL;
	if (read(s->host_efd[v], &c, sizeof(c)) == (ssize_t)sizeof(c))
		*n = c;
	else if (errno != EAGAIN)
		return -errno;
	return 0;
}

int vbus_ivs_interrupt(struct vbus_ivs *s, uint32_t v)
{
	uint64_t one = 1;

	if (v >= s->vectors)
		return -EINVAL;
	/* EAGAIN only when the counter is about to overflow: QEMU has not read it for 2^64
	 * kicks, and the VM has an interrupt pending anyway. */
	if (write(s->vm_efd[v], &one, sizeof(one)) != (ssize_t)sizeof(one) && errno != EAGAIN)
		return -errno;
	return 0;
}

void vbus_ivs_fini(struct vbus_ivs *s)
{
	for (int v = 0; v < VBUS_VM_MAX_VECTORS; v++) {
		if (s->host_efd[v] >= 0)
			close(s->host_efd[v]);
		if (s->vm_efd[v] >= 0)
			close(s->vm_efd[v]);
		s->host_efd[v] = s->vm_efd[v] = -1;
	}
	vbus_ivs_qemu_started(s);
	if (s->sock >= 0)
		close(s->sock);
	s->sock = -1;
	s->vectors = 0;
}
