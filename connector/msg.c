// SPDX-License-Identifier: MIT
/* Protocol messages over a SOCK_SEQPACKET socket, with descriptors (SCM_RIGHTS). */
#include <endian.h>
#include <errno.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include "msg.h"

static int msg_send(int sock, uint32_t op, uint64_t seq, uint32_t handle, uint32_t arg,
		    int32_t status, const void *payload, size_t len, const int *fds, int nfds,
		    int flags)
{
	struct vbus_msg h = {
		.op = htole32(op), .len = htole32((uint32_t)len), .seq = htole64(seq),
		.handle = htole32(handle), .arg = htole32(arg), .status = htole32((uint32_t)status),
		.nfds = htole32((uint32_t)nfds),
	};
	struct iovec iov[2] = { { &h, sizeof(h) }, { (void *)payload, len } };
	union {
		char buf[CMSG_SPACE(sizeof(int) * VBUS_MAX_FDS)];
		struct cmsghdr align;
	} u;
	struct msghdr m = { .msg_iov = iov, .msg_iovlen = len ? 2 : 1 };

	if (len > VBUS_MAX_PAYLOAD || nfds < 0 || nfds > VBUS_MAX_FDS)
		return -EINVAL;
	if (nfds) {
		struct cmsghdr *c;

		memset(&u, 0, sizeof(u));
		m.msg_control = u.buf;
		m.msg_controllen = CMSG_SPACE(sizeof(int) * (size_t)nfds);
		c = CMSG_FIRSTHDR(&m);
		c->cmsg_level = SOL_SOCKET;
		c->cmsg_type = SCM_RIGHTS;
		c->cmsg_len = CMSG_LEN(sizeof(int) * (size_t)nfds);
		memcpy(CMSG_DATA(c), fds, sizeof(int) * (size_t)nfds);
	}
	for (;;) {
		ssize_t r = sendmsg(sock, &m, MSG_NOSIGNAL | flags);

		if (r >= 0)
			return (size_t)r == sizeof(h) + len ? 0 : -EMSGSIZE;
		if (errno != EINTR)
			return errno == EPIPE ? -ECONNRESET : -errno;
	}
}

int vbus_msg_send(int sock, uint32_t op, uint64_t seq, uint32_t handle, uint32_t arg,
		  int32_t status, const void *payload, size_t len, const int *fds, int nfds)
{
	return msg_send(sock, op, seq, handle, arg, status, payload, len, fds, nfds, 0);
}

int vbus_msg_send_nowait(int sock, uint32_t op, uint64_t seq, uint32_t handle, uint32_t arg,
			 int32_t status, const void *payload, size_t len)
{
	return msg_send(sock, op, seq, handle, arg, status, payload, len, NULL, 0, MSG_DONTWAIT);
}

void vbus_rx_close_fds(struct vbus_rx *rx)
{
	for (int i = 0; i < rx->nfds; i++)
		if (rx->fds[i] >= 0)
			close(rx->fds[i]);
	rx->nfds = 0;
}

int vbus_msg_check(struct vbus_rx *rx, const void *buf, size_t n, int nfds)
{
	if (n < sizeof(rx->hdr))
		return -EPROTO;
	memcpy(&rx->hdr, buf, sizeof(rx->hdr));
	if (le32toh(rx->hdr.len) != n - sizeof(rx->hdr) || n - sizeof(rx->hdr) > VBUS_MAX_PAYLOAD)
		return -EPROTO;
	if (le32toh(rx->hdr.nfds) != (uint32_t)nfds)
		return -EPROTO;
	rx->len = n - sizeof(rx->hdr);
	return 0;
}

int vbus_msg_recv(int sock, struct vbus_rx *rx)
{
	static __thread uint8_t buf[sizeof(struct vbus_msg) + VBUS_MAX_PAYLOAD];
	union {
		char b[CMSG_SPACE(sizeof(int) * VBUS_MAX_FDS)];
		struct cmsghdr align;
	} u;
	struct iovec iov = { buf, sizeof(buf) };
	struct msghdr m = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = u.b,
			    .msg_controllen = sizeof(u.b) };
	ssize_t r;
	int err;

	rx->nfds = 0;
	do
		r = recvmsg(sock, &m, MSG_CMSG_CLOEXEC);
	while (r < 0 && errno == EINTR);
	if (r < 0)
		return -errno;
	if (r == 0)
		return -ECONNRESET;
	for (struct cmsghdr *c = CMSG_FIRSTHDR(&m); c; c = CMSG_NXTHDR(&m, c)) {
		if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
			continue;
		for (size_t k = 0; k < (c->cmsg_len - CMSG_LEN(0)) / sizeof(int); k++) {
			int fd;

			memcpy(&fd, CMSG_DATA(c) + k * sizeof(int), sizeof(int));
			if (rx->nfds < VBUS_MAX_FDS)
				rx->fds[rx->nfds++] = fd;
			else
				close(fd);	/* more than the protocol allows */
		}
	}
	if (m.msg_flags & (MSG_TRUNC | MSG_CTRUNC)) {
		vbus_rx_close_fds(rx);
		return -EMSGSIZE;
	}
	err = vbus_msg_check(rx, buf, (size_t)r, rx->nfds);
	if (err) {
		vbus_rx_close_fds(rx);
		return err;
	}
	memcpy(rx->payload, buf + sizeof(rx->hdr), rx->len);
	return 0;
}

int vbus_name_get(char *dst, const char *field, size_t n)
{
	size_t len = strnlen(field, n);

	if (len == 0 || len == n)
		return -EINVAL;
	for (size_t i = 0; i < len; i++)
		if (field[i] <= ' ' || field[i] == '/' || field[i] > '~')
			return -EINVAL;
	memcpy(dst, field, len + 1);
	return 0;
}
