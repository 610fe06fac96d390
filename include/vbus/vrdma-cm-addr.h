/* SPDX-License-Identifier: MIT */
/*
 * Socket addresses to and from the vrdma CM wire form (vrdma-cm.h), for the guest library
 * and vbusd alike. To the wire: NULL gives all zeros; a family other than IPv4 and IPv6
 * keeps only its number, which the host refuses. From the wire: 0, or -EINVAL (reserved
 * bits set) or -EAFNOSUPPORT, with the sockaddr left all zeros.
 */
#ifndef VBUS_VRDMA_CM_ADDR_H
#define VBUS_VRDMA_CM_ADDR_H

#include <endian.h>
#include <errno.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>
#include <vbus/vrdma-cm.h>

static inline void vrdma_cm_sa_to_wire(struct vrdma_sockaddr *w, const struct sockaddr *sa)
{
	memset(w, 0, sizeof(*w));
	if (!sa)
		return;
	if (sa->sa_family == AF_INET) {
		const struct sockaddr_in *s = (const void *)sa;

		w->family = htole16(AF_INET);
		w->port = s->sin_port;
		memcpy(w->addr, &s->sin_addr, 4);
	} else if (sa->sa_family == AF_INET6) {
		const struct sockaddr_in6 *s = (const void *)sa;

		w->family = htole16(AF_INET6);
		w->port = s->sin6_port;
		w->flowinfo = s->sin6_flowinfo;
		memcpy(w->addr, &s->sin6_addr, 16);
		w->scope_id = htole32(s->sin6_scope_id);
	} else {
		w->family = htole16(sa->sa_family);
	}
}

static inline int vrdma_cm_sa_from_wire(struct sockaddr_storage *ss,
					const struct vrdma_sockaddr *w)
{
	memset(ss, 0, sizeof(*ss));
	if (w->reserved)
		return -EINVAL;
	if (le16toh(w->family) == AF_INET) {
		struct sockaddr_in *s = (void *)ss;

		s->sin_family = AF_INET;
		s->sin_port = w->port;
		memcpy(&s->sin_addr, w->addr, 4);
		return 0;
	}
	if (le16toh(w->family) == AF_INET6) {
		struct sockaddr_in6 *s = (void *)ss;

		s->sin6_family = AF_INET6;
		s->sin6_port = w->port;
		s->sin6_flowinfo = w->flowinfo;
		memcpy(&s->sin6_addr, w->addr, 16);
		s->sin6_scope_id = le32toh(w->scope_id);
		return 0;
	}
	return -EAFNOSUPPORT;
}

#endif /* VBUS_VRDMA_CM_ADDR_H */
