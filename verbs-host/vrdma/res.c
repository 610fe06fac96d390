// SPDX-License-Identifier: MIT
/*
 * `vbusctl res show`: a guest's objects and the real objects behind them, in the style of
 * `rdma res show`. Read under g->lock from the host's own copies (never from guest memory,
 * never a call into the kernel).
 */
#include <errno.h>
#include <string.h>
#include "../strbuf.h"
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

static const char *qp_state_str(enum ibv_qp_state s)
{
	static const char *const n[] = { "RESET", "INIT", "RTR", "RTS", "SQD", "SQE", "ERR" };

	return (unsigned)s < sizeof(n) / sizeof(n[0]) ? n[s] : "?";
}

/* One object (the start of its line or JSON object is written by the caller). */
static void obj(struct res_out *o, uint32_t h, const struct vrdma_obj *x)
{
	const char *sep = o->json && !o->first ? "," : "";

	switch (x->type) {
	case VRDMA_OBJ_QP: {
		const struct vrdma_qp *q = x->p;

		put(o, o->json ? "%s{\"type\":\"qp\",\"handle\":%u,\"real_qpn\":%u,\"qp_type\":\"%s\","
			"\"state\":\"%s\",\"sq_posted\":%u,\"sq_completed\":%u,\"rq_posted\":%u,"
			"\"rq_completed\":%u,\"broken\":%s}" :
			"%s  qp %#x real qpn %u %s %s sq posted %u completed %u rq posted %u "
			"completed %u%s\n", sep, h, q->qp->qp_num, qp_type_str(q->qp_type),
			qp_state_str(q->qp->state), q->sposted, q->sretired, q->rposted, q->rdone,
			o->json ? (q->sq.broken || q->rq.broken ? "true" : "false") :
				  (q->sq.broken || q->rq.broken ? " broken" : ""));
		break;
	}
	case VRDMA_OBJ_CQ: {
		const struct vrdma_cq *c = x->p;

		put(o, o->json ? "%s{\"type\":\"cq\",\"handle\":%u,\"real_cqe\":%d,\"ring_entries\":%u,"
			"\"channel\":%s}" : "%s  cq %#x real cqe %d ring entries %u%s\n", sep, h,
			c->cq->cqe, c->q.entries,
			o->json ? (c->channel ? "true" : "false") : (c->channel ? " channel" : ""));
		break;
	}
	case VRDMA_OBJ_MR: {
		const struct vrdma_mr *m = x->p;

		put(o, o->json ? "%s{\"type\":\"mr\",\"handle\":%u,\"lkey\":%u,\"rkey\":%u,"
			"\"iova\":%llu,\"length\":%zu,\"pd\":%u}" :
			"%s  mr %#x lkey %#x rkey %#x iova %#llx length %zu pd %#x\n", sep, h,
			m->mr->lkey, m->mr->rkey, (unsigned long long)m->iova, m->mr->length, m->pd);
		break;
	}
	case VRDMA_OBJ_PD: {
		const struct vrdma_pd *p = x->p;

		put(o, o->json ? "%s{\"type\":\"pd\",\"handle\":%u,\"real_handle\":%u,\"users\":%u}" :
			"%s  pd %#x real handle %u users %u\n", sep, h, p->pd->handle, x->users);
		break;
	}
	case VRDMA_OBJ_AH: {
		const struct vrdma_ah *a = x->p;

		put(o, o->json ? "%s{\"type\":\"ah\",\"handle\":%u,\"pd\":%u}" :
			"%s  ah %#x pd %#x\n", sep, h, a->pd);
		break;
	}
	case VRDMA_OBJ_MW: {
		const struct vrdma_mw *w = x->p;

		put(o, o->json ? "%s{\"type\":\"mw\",\"handle\":%u,\"mw_type\":%d,\"rkey\":%u,"
			"\"pd\":%u}" : "%s  mw %#x type %d rkey %#x pd %#x\n", sep, h, (int)w->mw->type,
			w->mw->rkey, w->pd);
		break;
	}
	case VRDMA_OBJ_SRQ: {
		const struct vrdma_srq *q = x->p;

		put(o, o->json ? "%s{\"type\":\"srq\",\"handle\":%u,\"max_wr\":%u,\"posted\":%u,"
			"\"completed\":%u,\"broken\":%s}" :
			"%s  srq %#x max_wr %u posted %u completed %u%s\n", sep, h, q->max_wr,
			q->q.cons, q->done, o->json ? (q->q.broken ? "true" : "false") :
						      (q->q.broken ? " broken" : ""));
		break;
	}
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

	buf[0] = 0;
	pthread_mutex_lock(&g->lock);
	put(&o, json ? "\"counters\":{\"wqes\":%llu,\"cqes\":%llu,\"kicks\":%llu,"
		"\"relay_errors\":%llu,\"pinned_bytes\":%llu},\"objects\":[" :
		" wqes %llu cqes %llu kicks %llu relay_errors %llu pinned %llu\n",
		(unsigned long long)g->n_wqe, (unsigned long long)g->n_cqe,
		(unsigned long long)__atomic_load_n(&g->n_kicks, __ATOMIC_RELAXED),
		(unsigned long long)g->n_relay_errors, (unsigned long long)g->pinned);
	for (uint32_t i = 1; i < g->nobjs; i++)
		if (wanted(g->objs[i].type, kind))
			obj(&o, i | ((uint32_t)g->objs[i].gen << VRDMA_HANDLE_INDEX_BITS), &g->objs[i]);
	pthread_mutex_unlock(&g->lock);
	if (json)
		put(&o, "]");
	return o.b.pos >= n ? -ENOSPC : 0;
}
