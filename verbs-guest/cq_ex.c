// SPDX-License-Identifier: MIT
/*
 * Extended CQs: ibv_create_cq_ex and the ibv_start_poll / ibv_next_poll / ibv_end_poll
 * iteration with the ibv_wc_read_* accessors, over the same completion ring as
 * ibv_poll_cq. start_poll takes the CQ's lock and the first completion (or returns ENOENT
 * and holds nothing), next_poll takes the next, end_poll publishes what was consumed and
 * unlocks. The current completion is a private copy: accessors never read shared memory.
 */
#include <endian.h>
#include <errno.h>
#include "vbg.h"

#define WC_FLAGS_OK (IBV_WC_STANDARD_FLAGS)

static inline struct vbg_cq *xcq(struct ibv_cq_ex *c)
{
	return (struct vbg_cq *)c;
}

static void set_current(struct vbg_cq *cq)
{
	cq->cqx.wr_id = le64toh(cq->cur.wr_id);
	cq->cqx.status = le32toh(cq->cur.status);
}

static int start_poll(struct ibv_cq_ex *c, struct ibv_poll_cq_attr *attr)
{
	struct vbg_cq *cq = xcq(c);
	int64_t avail;

	if (attr && attr->comp_mask)
		return EINVAL;
	pthread_spin_lock(&cq->lock);
	avail = vbg_cq_avail(cq);
	if (avail <= 0) {
		pthread_spin_unlock(&cq->lock);
		return avail < 0 ? EIO : ENOENT;
	}
	vbg_cq_take(cq, &cq->cur);
	set_current(cq);
	return 0;
}

static int next_poll(struct ibv_cq_ex *c)
{
	struct vbg_cq *cq = xcq(c);
	int64_t avail = vbg_cq_avail(cq);

	if (avail <= 0)
		return avail < 0 ? EIO : ENOENT;
	vbg_cq_take(cq, &cq->cur);
	set_current(cq);
	return 0;
}

static void end_poll(struct ibv_cq_ex *c)
{
	struct vbg_cq *cq = xcq(c);

	vbg_cq_publish(cq);
	pthread_spin_unlock(&cq->lock);
}

static enum ibv_wc_opcode read_opcode(struct ibv_cq_ex *c)
{ return le32toh(xcq(c)->cur.opcode); }
static uint32_t read_vendor_err(struct ibv_cq_ex *c)
{ return le32toh(xcq(c)->cur.vendor_err); }
static uint32_t read_byte_len(struct ibv_cq_ex *c)
{ return le32toh(xcq(c)->cur.byte_len); }
static __be32 read_imm_data(struct ibv_cq_ex *c)
{ return xcq(c)->cur.imm_data; }
static uint32_t read_qp_num(struct ibv_cq_ex *c)
{ return le32toh(xcq(c)->cur.qp_num); }
static uint32_t read_src_qp(struct ibv_cq_ex *c)
{ return le32toh(xcq(c)->cur.src_qp); }
static unsigned int read_wc_flags(struct ibv_cq_ex *c)
{ return le32toh(xcq(c)->cur.wc_flags); }
static uint32_t read_slid(struct ibv_cq_ex *c)
{ return le16toh(xcq(c)->cur.slid); }
static uint8_t read_sl(struct ibv_cq_ex *c)
{ return xcq(c)->cur.sl; }
static uint8_t read_dlid_path_bits(struct ibv_cq_ex *c)
{ return xcq(c)->cur.dlid_path_bits; }
/* Not offered (creation refuses the flags); defined so that no slot is NULL. */
static uint64_t read_zero64(struct ibv_cq_ex *c)
{ return 0; }
static uint16_t read_cvlan(struct ibv_cq_ex *c)
{ return 0; }
static uint32_t read_flow_tag(struct ibv_cq_ex *c)
{ return 0; }
static void read_tm_info(struct ibv_cq_ex *c, struct ibv_wc_tm_info *t)
{ t->tag = 0; t->priv = 0; }

struct ibv_cq_ex *vbg_create_cq_ex(struct ibv_context *c, struct ibv_cq_init_attr_ex *a)
{
	struct vbg_cq *cq;
	struct ibv_cq_ex *x;

	if (a->comp_mask & ~(uint32_t)IBV_CQ_INIT_ATTR_MASK_FLAGS ||
	    ((a->comp_mask & IBV_CQ_INIT_ATTR_MASK_FLAGS) &&
	     (a->flags & ~(uint32_t)IBV_CREATE_CQ_ATTR_SINGLE_THREADED)) ||
	    (a->wc_flags & ~(uint64_t)WC_FLAGS_OK)) {
		vbg_info("ibv_create_cq_ex: comp_mask %#x flags %#x wc_flags %#llx: only the "
			 "standard wc_flags (no timestamps) are supported", a->comp_mask, a->flags,
			 (unsigned long long)a->wc_flags);
		errno = EOPNOTSUPP;
		return NULL;
	}
	cq = vbg_cq_create(c, (int)a->cqe, a->cq_context, a->channel, (int)a->comp_vector);
	if (!cq)
		return NULL;
	x = &cq->cqx;
	x->comp_mask = 0;
	x->start_poll = start_poll;
	x->next_poll = next_poll;
	x->end_poll = end_poll;
	x->read_opcode = read_opcode;
	x->read_vendor_err = read_vendor_err;
	x->read_byte_len = read_byte_len;
	x->read_imm_data = read_imm_data;
	x->read_qp_num = read_qp_num;
	x->read_src_qp = read_src_qp;
	x->read_wc_flags = read_wc_flags;
	x->read_slid = read_slid;
	x->read_sl = read_sl;
	x->read_dlid_path_bits = read_dlid_path_bits;
	x->read_completion_ts = read_zero64;
	x->read_cvlan = read_cvlan;
	x->read_flow_tag = read_flow_tag;
	x->read_tm_info = read_tm_info;
	x->read_completion_wallclock_ns = read_zero64;
	return x;
}
