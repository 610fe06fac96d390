// SPDX-License-Identifier: MIT
/*
 * `vbusctl res show`: a guest's objects and the real objects behind them, in the style of
 * `rdma res show`. The relay's are read under g->lock from the host's own copies (never
 * from guest memory, never a call into the kernel); the kernel backend's come from the
 * module as the same records (struct vbk_res_obj, VBK_IOC_RES), and print alike.
 */
#include <errno.h>
#include <string.h>
#include "../strbuf.h"
#include <vbus/vrdma-kernel.h>
#include "vrdma.h"

struct res_out {
	struct strbuf b;
	bool json, first;
};

#define put(o, ...) strbuf_put(&(o)->b, __VA_ARGS__)

static const char *qp_type_str(uint8_t t)
{
	return t == IBV_QPT_RC ? "RC" : t == IBV_QPT_UC ? "UC" : t == IBV_QPT_UD ? "UD" : "?";
}

static const char *qp_state_str(unsigned s)
{
	static const char *const n[] = { "RESET", "INIT", "RTR", "RTS", "SQD", "SQE", "ERR" };

	return s < sizeof(n) / sizeof(n[0]) ? n[s] : "?";
}

/* One relay object as a record of the kernel backend's form, so that both backends are
 * shown by the same code (put_record). */
static void record(struct vbk_res_obj *r, uint32_t h, const struct vrdma_obj *x)
{
	memset(r, 0, sizeof(*r));
	r->handle = h;
	r->type = x->type;
	r->users = x->users;
	switch (x->type) {
	case VRDMA_OBJ_QP: {
		const struct vrdma_qp *q = x->p;

		r->real = q->qp->qp_num;
		r->pd = q->pd;
		r->qp_type = q->qp_type;
		r->state = (uint8_t)q->qp->state;
		r->v[0] = q->sposted;
		r->v[1] = q->sretired;
		r->v[2] = q->rposted;
		r->v[3] = q->rdone;
		r->flags = q->sq.broken || q->rq.broken ? VBK_RES_BROKEN : 0;
		break;
	}
	case VRDMA_OBJ_CQ: {
		const struct vrdma_cq *c = x->p;

		r->real = (uint32_t)c->cq->cqe;
		r->v[0] = c->q.entries;
		r->flags = c->channel ? VBK_RES_CHANNEL : 0;
		break;
	}
	case VRDMA_OBJ_MR: {
		const struct vrdma_mr *m = x->p;

		r->real = m->mr->lkey;
		r->v[0] = m->mr->rkey;
		r->iova = m->iova;
		r->length = m->mr->length;
		r->pd = m->pd;
		break;
	}
	case VRDMA_OBJ_PD:
		r->real = ((const struct vrdma_pd *)x->p)->pd->handle;
		break;
	case VRDMA_OBJ_AH:
		r->pd = ((const struct vrdma_ah *)x->p)->pd;
		break;
	case VRDMA_OBJ_MW: {
		const struct vrdma_mw *w = x->p;

		r->real = w->mw->rkey;
		r->v[0] = (uint32_t)w->mw->type;
		r->pd = w->pd;
		break;
	}
	case VRDMA_OBJ_SRQ: {
		const struct vrdma_srq *q = x->p;

		r->real = q->max_wr;
		r->v[0] = q->q.cons;
		r->v[1] = q->done;
		r->flags = q->q.broken ? VBK_RES_BROKEN : 0;
		break;
	}
	default:
		break;
	}
}

/* One object, as a line or a JSON object. */
static void put_record(struct res_out *o, const struct vbk_res_obj *r)
{
	const char *sep = o->json && !o->first ? "," : "";
	bool broken = r->flags & VBK_RES_BROKEN, chan = r->flags & VBK_RES_CHANNEL;

	switch (r->type) {
	case VRDMA_OBJ_QP:
		put(o, o->json ? "%s{\"type\":\"qp\",\"handle\":%u,\"real_qpn\":%u,\"qp_type\":\"%s\","
			"\"state\":\"%s\",\"sq_posted\":%u,\"sq_completed\":%u,\"rq_posted\":%u,"
			"\"rq_completed\":%u,\"broken\":%s}" :
			"%s  qp %#x real qpn %u %s %s sq posted %u completed %u rq posted %u "
			"completed %u%s\n", sep, r->handle, r->real, qp_type_str(r->qp_type),
			qp_state_str(r->state), r->v[0], r->v[1], r->v[2], r->v[3],
			o->json ? (broken ? "true" : "false") : (broken ? " broken" : ""));
		break;
	case VRDMA_OBJ_CQ:
		put(o, o->json ? "%s{\"type\":\"cq\",\"handle\":%u,\"real_cqe\":%d,\"ring_entries\":%u,"
			"\"channel\":%s}" : "%s  cq %#x real cqe %d ring entries %u%s\n", sep, r->handle,
			(int)r->real, r->v[0],
			o->json ? (chan ? "true" : "false") : (chan ? " channel" : ""));
		break;
	case VRDMA_OBJ_MR:
		put(o, o->json ? "%s{\"type\":\"mr\",\"handle\":%u,\"lkey\":%u,\"rkey\":%u,"
			"\"iova\":%llu,\"length\":%llu,\"pd\":%u}" :
			"%s  mr %#x lkey %#x rkey %#x iova %#llx length %llu pd %#x\n", sep, r->handle,
			r->real, r->v[0], (unsigned long long)r->iova, (unsigned long long)r->length,
			r->pd);
		break;
	case VRDMA_OBJ_PD:
		put(o, o->json ? "%s{\"type\":\"pd\",\"handle\":%u,\"real_handle\":%u,\"users\":%u}" :
			"%s  pd %#x real handle %u users %u\n", sep, r->handle, r->real, r->users);
		break;
	case VRDMA_OBJ_AH:
		put(o, o->json ? "%s{\"type\":\"ah\",\"handle\":%u,\"pd\":%u}" :
			"%s  ah %#x pd %#x\n", sep, r->handle, r->pd);
		break;
	case VRDMA_OBJ_MW:
		put(o, o->json ? "%s{\"type\":\"mw\",\"handle\":%u,\"mw_type\":%u,\"rkey\":%u,"
			"\"pd\":%u}" : "%s  mw %#x type %u rkey %#x pd %#x\n", sep, r->handle, r->v[0],
			r->real, r->pd);
		break;
	case VRDMA_OBJ_SRQ:
		put(o, o->json ? "%s{\"type\":\"srq\",\"handle\":%u,\"max_wr\":%u,\"posted\":%u,"
			"\"completed\":%u,\"broken\":%s}" :
			"%s  srq %#x max_wr %u posted %u completed %u%s\n", sep, r->handle, r->real,
			r->v[0], r->v[1], o->json ? (broken ? "true" : "false") :
						    (broken ? " broken" : ""));
		break;
	default:
		return;
	}
	o->first = false;
}

static bool wanted(uint16_t type, const char *kind)
{
	static const char *const names[] = {
		[VRDMA_OBJ_PD] = "pd", [VRDMA_OBJ_MR] = "mr", [VRDMA_OBJ_CQ] = "cq",
		[VRDMA_OBJ_QP] = "qp", [VRDMA_OBJ_AH] = "ah", [VRDMA_OBJ_SRQ] = "srq",
		[VRDMA_OBJ_MW] = "mw",
	};

	if (type == VRDMA_OBJ_FREE || type >= sizeof(names) / sizeof(names[0]))
		return false;
	return !kind || !*kind || !strcmp(kind, names[type]);
}

int vrdma_guest_res(struct vrdma_guest *g, const char *kind, bool json, char *buf, size_t n)
{
	struct res_out o = { .b = { .p = buf, .n = n }, .json = json, .first = true };
	struct vbk_res_obj r;

	buf[0] = 0;
	pthread_mutex_lock(&g->lock);
	put(&o, json ? "\"counters\":{\"wqes\":%llu,\"cqes\":%llu,\"cqes_lost\":%llu,\"kicks\":%llu,"
		"\"relay_errors\":%llu,\"pinned_bytes\":%llu},\"objects\":[" :
		" wqes %llu cqes %llu cqes_lost %llu kicks %llu relay_errors %llu pinned %llu\n",
		(unsigned long long)g->n_wqe, (unsigned long long)g->n_cqe,
		(unsigned long long)g->n_cqe_lost,
		(unsigned long long)__atomic_load_n(&g->n_kicks, __ATOMIC_RELAXED),
		(unsigned long long)g->n_relay_errors, (unsigned long long)g->pinned);
	for (uint32_t i = 1; i < g->nobjs; i++) {
		if (!wanted(g->objs[i].type, kind))
			continue;
		record(&r, i | ((uint32_t)g->objs[i].gen << VRDMA_HANDLE_INDEX_BITS), &g->objs[i]);
		put_record(&o, &r);
	}
	pthread_mutex_unlock(&g->lock);
	if (json)
		put(&o, "]");
	return o.b.pos >= n ? -ENOSPC : 0;
}

int vrdma_res_records(const struct vbk_res_obj *r, uint32_t nr, const char *kind, bool json,
		      char *buf, size_t n)
{
	struct res_out o = { .b = { .p = buf, .n = n }, .json = json, .first = true };

	buf[0] = 0;
	for (uint32_t i = 0; i < nr; i++)
		if (wanted(r[i].type, kind))
			put_record(&o, &r[i]);
	return o.b.pos >= n ? -ENOSPC : 0;
}
