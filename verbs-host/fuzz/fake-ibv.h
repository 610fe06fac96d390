/* SPDX-License-Identifier: MIT */
/*
 * fake-ibv: a libibverbs with a pretend device behind it (fake-ibv.c), linked into
 * fuzz-vrdma instead of the real library. What the fuzzer controls of it is here.
 */
#ifndef VBUS_FAKE_IBV_H
#define VBUS_FAKE_IBV_H

#include <stdint.h>
#include <infiniband/verbs.h>

/* How the pretend device rounds what it is asked for, as real ones do. */
#define FK_CQ_POW2	(1u << 0)	/* a CQ gets 2^n - 1 entries, at least those asked (mlx5) */
#define FK_QP_POW2	(1u << 1)	/* QP work requests and SGEs round up to powers of two */
#define FK_SRQ_POW2	(1u << 2)	/* an SRQ's max_wr rounds up to a power of two */
#define FK_TWO_VECTORS	(1u << 3)	/* two completion vectors instead of one */

/* The device's limits (query_device, and what create refuses beyond them). */
#define FK_MAX_WR	16384
#define FK_MAX_SGE	32
#define FK_MAX_CQE	32767
#define FK_MAX_INLINE	512
#define FK_GID_TBL_LEN	16
#define FK_PORTS	2

struct fk_config {
	uint8_t port;		/* the guest's backing port: a call naming another one is a
				 * broken promise of vrdma's policy (abort) */
	uint32_t gid_index;	/* the only source GID index an address vector may carry */
	uint32_t quirks;	/* FK_* above */
	uint32_t qp_types;	/* the guest's whitelist (VRDMA_WL_*): a QP of another type, */
	uint32_t access;	/* or an MR, QP or bind with another access flag, aborts */
};

/* Verbs that can be made to fail once, with ENOMEM (bits of fk_fail_next's mask). */
enum fk_verb {
	FK_ALLOC_PD, FK_DEALLOC_PD, FK_REG_MR, FK_CREATE_CQ, FK_RESIZE_CQ, FK_CREATE_QP,
	FK_MODIFY_QP, FK_QUERY_QP, FK_CREATE_SRQ, FK_MODIFY_SRQ, FK_QUERY_SRQ, FK_CREATE_AH,
	FK_ALLOC_MW, FK_DEALLOC_MW, FK_POST_SEND, FK_POST_RECV, FK_POST_SRQ_RECV, FK_POLL_CQ,
	FK_REQ_NOTIFY, FK_QUERY_DEVICE, FK_QUERY_PORT, FK_QUERY_GID, FK_QUERY_PKEY,
	FK_NVERBS
};

/* Forget everything (no object may be live: fk_check_closed) and take the new config. */
void fk_setup(const struct fk_config *c);
/* The next call of each verb in mask (1 << enum fk_verb) fails; 0 clears. */
void fk_fail_next(uint32_t mask);
/* Queue an asynchronous event on one of qp, cq, srq (or, all NULL, on port `port` or the
 * device); `sel` picks which event of those the element can have. */
void fk_async_event(struct ibv_qp *qp, struct ibv_cq *cq, struct ibv_srq *srq, uint8_t sel,
		    uint8_t port);
/* A message arrives for qp: its oldest receive (its own or its SRQ's) completes with
 * `status` (enum ibv_wc_status, 0..21) and byte_len. 0, or -EAGAIN if nothing is posted
 * or the QP cannot receive. */
int fk_arrive(struct ibv_qp *qp, uint32_t byte_len, uint8_t status);
/* After ibv_close_device: abort unless every object made was destroyed. */
void fk_check_closed(void);
/* Report a broken promise on a line of its own (fuzz.sh shows it) and abort. */
void fk_broken(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));

#endif /* VBUS_FAKE_IBV_H */
