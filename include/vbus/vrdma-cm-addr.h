/* SPDX-License-Identifier: MIT */
/*
 * A socket address into the vrdma CM wire form (vrdma-cm.h), for the guest library and
 * vbusd alike. NULL gives all zeros; a family other than IPv4 and IPv6 keeps only its
 * number, which the host refuses.
 */
#ifndef VBUS_VRDMA_CM_ADDR_H
#define VBUS_VRDMA_CM_ADDR_H

#include <endian.h>
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

#endif /* VBUS_VRDMA_CM_ADDR_H */
