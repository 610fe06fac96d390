/* SPDX-License-Identifier: MIT */
/*
 * fake-rdmacm: a librdmacm (and the few vbusd functions class_vrdma_cm.c calls) with a
 * pretend CM behind it (fake-rdmacm.c), linked into fuzz-cm instead of the real ones. What
 * the fuzzer controls of it is here.
 */
#ifndef VBUS_FAKE_RDMACM_H
#define VBUS_FAKE_RDMACM_H

#include <stdbool.h>
#include <stdint.h>
#include <rdma/rdma_cma.h>

#define FR_DEV_NAME	"fake0"

/* Every call into the pretend CM fails once with ENOMEM while set (cleared by the call). */
extern bool fr_fail_next;
/* The QP numbers the guest owns: those with this bit clear (vrdma_guest_owns_qpn). */
#define FR_FOREIGN_QPN	0x800000u

/* The real IDs and channels alive now (each must be gone after vbd_cm_close). */
int fr_live_ids(void);
int fr_live_channels(void);
/* Events handed out and not yet acknowledged. */
int fr_unacked(void);
/* The k-th live real ID (k modulo their number), or NULL when none lives. */
struct rdma_cm_id *fr_nth_id(unsigned int k);
/*
 * Queue an event of `type` on the ID's channel and wait until the CM's thread has taken
 * and acknowledged it. A CONNECT_REQUEST gets a new ID, `id` being its listener. A private
 * data length beyond what fits is given as is: the CM must cut it.
 */
void fr_event(struct rdma_cm_id *id, enum rdma_cm_event_type type, int status,
	      const uint8_t *priv, uint8_t priv_len);
/* Close the signal fds vbd_guest_signal handed out. */
void fr_reset(void);

#endif
