/* SPDX-License-Identifier: MIT */
/* Internal to libvbus and vbusd: sending and receiving protocol messages, and checking
 * what arrives. 0 or a negative errno everywhere. */
#ifndef VBUS_CONNECTOR_MSG_H
#define VBUS_CONNECTOR_MSG_H

#include <stddef.h>
#include <stdint.h>
#include <vbus/proto.h>

/* A message as received: header, payload, descriptors (owned by the receiver). */
struct vbus_rx {
	struct vbus_msg hdr;
	uint8_t payload[VBUS_MAX_PAYLOAD];
	size_t len;
	int fds[VBUS_MAX_FDS];
	int nfds;
};

int vbus_msg_send(int sock, uint32_t op, uint64_t seq, uint32_t handle, uint32_t arg,
		  int32_t status, const void *payload, size_t len, const int *fds, int nfds);
/* The same without blocking: -EAGAIN when the peer's socket is full. */
int vbus_msg_send_nowait(int sock, uint32_t op, uint64_t seq, uint32_t handle, uint32_t arg,
			 int32_t status, const void *payload, size_t len);
/* Receive one message. -ECONNRESET when the peer has closed. */
int vbus_msg_recv(int sock, struct vbus_rx *rx);
/* Check a received packet of n bytes with nfds descriptors: the header's length and
 * descriptor count agree with what arrived. Fills rx->hdr and rx->len. */
int vbus_msg_check(struct vbus_rx *rx, const void *buf, size_t n, int nfds);
void vbus_rx_close_fds(struct vbus_rx *rx);

/* The fd is a memfd the bus may map: sealed against shrinking and resealing, on tmpfs,
 * exactly `size` bytes. */
int vbus_memfd_check(int fd, uint64_t size);

/* Copy a NUL-terminated name out of a fixed field; -EINVAL if unterminated or empty. */
int vbus_name_get(char *dst, const char *field, size_t n);

#endif
