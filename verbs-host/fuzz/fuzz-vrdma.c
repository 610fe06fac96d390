// SPDX-License-Identifier: MIT
/*
 * fuzz-vrdma: the relay backend's DEVCALL decoder and handlers (verbs-host/vrdma/), driven
 * as a hostile guest drives them: one guest of a vrdma device per input, a sequence of
 * DEVCALLs to vrdma_dispatch() whose handles can name what earlier calls created, writes
 * into the guest's shared regions (its rings), and relay passes over those rings. The
 * device is fake-ibv.c, a pretend libibverbs that checks what reaches it (fake-ibv.h).
 *
 * The input: 4 bytes of set-up, then records.
 *   [0]  the handle quota: 0 = 4096 (vbusd's default), else [0]
 *   [1]  the pinned-bytes quota: < 0xf0: 4096 << ([1] % 16); else UINT64_MAX >> ([1] & 15)
 *   [2]  the fake device's quirks (FK_CQ_POW2 ...); bit 4: the backing port is 2, not 1
 *   [3]  the bus's source GID index, [3] % 16
 * A record: op (1 byte), len (le16, cut to what is left), then len bytes of body.
 *   op & 0x40  the body starts with n = byte & 3 patches (offset, k): the le32 at offset
 *              of the payload becomes the k-th handle created so far (k % 16)
 *   op & 0x80  then a byte: the output buffer's size (else 1024)
 *   op & 0x3f  what to do with the rest, the payload (on the heap, exactly its size):
 *     0..31  DEVCALL fn = op & 0x3f (0 and 26.. are unknown functions)
 *     32     write guest memory: region 1 + p[0] % 4, at offset le16 p[1..2], bytes p[3..]
 *     33     one relay pass (vrdma_relay_guest)
 *     34     vrdma_relay_need_wakeup(p[0] & 1)
 *     35     an async event on the object of handle le32 p[0..3] (selector p[4], port p[5]),
 *            read by vrdma_relay_async
 *     36     a message arrives for the QP of handle le32 p[0..3]: byte_len le32 p[4..7],
 *            status p[8] (fk_arrive)
 *     37     the verbs in the mask le32 p[0..3] fail once (fk_fail_next)
 *     38     `vbusctl res show`: kind p[0] % 8, JSON if p[1] & 1, into le16 p[2..3] % 4096 + 1
 *            bytes
 * The regions, DEVSHM memfds of 32, 8, 4 and 16 KiB with ids 1 to 4, are zeroed before
 * each input. Every DEVCALL must answer within its output buffer, with nothing on error
 * (but HELLO's refusal), and refuse a non-zero reserved field. After every record the
 * guest's object table is checked against what its objects say (users, pinned bytes, live
 * count, regions held by queues); at the end the relay makes one more pass, the guest is
 * closed (vrdma_guest_close) and every fake object must be gone. A broken promise aborts with a
 * line `fuzz-vrdma: broken promise: ...`.
 * The seeds in tests/fuzz-corpus/fuzz-vrdma/ come from verbs-host/fuzz/fuzz-vrdma-seeds.
 */
/* fuzz-sources: verbs-host/fuzz/fake-ibv.c verbs-host/vrdma/[a-z]*.c connector/vm_ram.c */
/* fuzz-libs: */
#include <endian.h>
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>
#include <vbus/vrdma-fns.h>
#include "vrdma/vrdma.h"
#include "fake-ibv.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define NREG		4
#define NHANDLES	16
#define OUT_DEFAULT	1024

static const uint32_t reg_size[NREG + 1] = { 0, 32768, 8192, 4096, 16384 };
static struct {
	int fd;
	uint8_t *base;
	uint32_t refs;		/* region() minus region_put() */
} reg[NREG + 1];

static bool trace;		/* $FUZZ_VRDMA_TRACE: one line per record on stderr */
static struct vrdma_guest *cur;	/* the guest of this input, for env_event's check */
static struct ibv_device fk_dev = { .name = "fake0", .node_type = IBV_NODE_CA,
				    .transport_type = IBV_TRANSPORT_IB };

static int env_region(void *priv, uint32_t shm, struct vrdma_region *out)
{
	(void)priv;
	if (shm < 1 || shm > NREG)
		return -ENOENT;
	reg[shm].refs++;
	*out = (struct vrdma_region){ .fd = reg[shm].fd, .base = reg[shm].base,
				      .size = reg_size[shm] };
	return 0;
}

static void env_region_put(void *priv, uint32_t shm)
{
	(void)priv;
	if (shm < 1 || shm > NREG || !reg[shm].refs)
		fk_broken("region_put(%u) of a region not held", shm);
	reg[shm].refs--;
}

static int env_kick(void *priv, uint32_t sig)
{
	(void)priv;
	return sig && sig < 8 ? 0 : -ENOENT;
}

/* An event names a live object of the guest of the kind the event is about, or nothing. */
static void env_event(void *priv, uint32_t type, uint32_t handle, uint32_t port)
{
	static const uint16_t want[] = {
		[VRDMA_EVENT_QP] = VRDMA_OBJ_QP, [VRDMA_EVENT_CQ] = VRDMA_OBJ_CQ,
		[VRDMA_EVENT_SRQ] = VRDMA_OBJ_SRQ,
	};
	enum vrdma_event_kind k = vrdma_event_kind((enum ibv_event_type)type);
	struct vrdma_obj *o;

	(void)priv;
	if (k == VRDMA_EVENT_PORT || k == VRDMA_EVENT_DEVICE) {
		if (handle || port != (k == VRDMA_EVENT_PORT))
			fk_broken("event %u with handle %#x port %u", type, handle, port);
		return;
	}
	if (k == VRDMA_EVENT_OTHER)
		fk_broken("event %u, which has no guest object, reached the guest", type);
	o = vrdma_handle_obj(cur, handle);
	if (!o || o->type != want[k] || port)
		fk_broken("event %u names handle %#x, not a live object of its kind", type, handle);
}

static const struct vrdma_env_ops env = { .region = env_region, .region_put = env_region_put,
					  .kick = env_kick, .event = env_event };

static void init_once(void)
{
	static bool done;

	if (done)
		return;
	trace = getenv("FUZZ_VRDMA_TRACE");
	for (int i = 1; i <= NREG; i++) {
		reg[i].fd = memfd_create("fuzz-vrdma", MFD_CLOEXEC);
		if (reg[i].fd < 0 || ftruncate(reg[i].fd, reg_size[i]))
			abort();
		reg[i].base = mmap(NULL, reg_size[i], PROT_READ | PROT_WRITE, MAP_SHARED,
				   reg[i].fd, 0);
		if (reg[i].base == MAP_FAILED)
			abort();
	}
	done = true;
}

struct rd {
	const uint8_t *p;
	size_t n;
};

static uint8_t u8(struct rd *r)
{
	if (!r->n)
		return 0;
	r->n--;
	return *r->p++;
}

static uint32_t le32_at(const uint8_t *p, size_t n, size_t off)
{
	uint32_t v = 0;

	for (size_t i = 0; i < 4 && off + i < n; i++)
		v |= (uint32_t)p[off + i] << (8 * i);
	return v;
}

/* The object behind handle h (any type), or NULL. */
static struct vrdma_obj *lookup(struct vrdma_guest *g, uint32_t h)
{
	return vrdma_handle_obj(g, h);
}

/* A user of handle h of type t: counted in users[], which must name a live object of t. */
static void use(struct vrdma_guest *g, uint32_t *users, uint32_t h, uint16_t t, const char *who)
{
	struct vrdma_obj *o = lookup(g, h);

	if (!o || o->type != t)
		fk_broken("%s names handle %#x, not a live object of type %u", who, h, t);
	users[h & ((1u << VRDMA_HANDLE_INDEX_BITS) - 1)]++;
}

static void held(uint32_t *refs, const struct vrdma_hq *q, const char *who)
{
	if (!q->mapped)
		fk_broken("a live %s without its ring", who);
	if (q->shm < 1 || q->shm > NREG)
		fk_broken("a %s ring in region %u, which does not exist", who, q->shm);
	refs[q->shm]++;
}

/* The guest's object table agrees with its objects: live count, users of each PD, CQ and
 * SRQ, pinned bytes within the quota, and each region held exactly by the rings in it. */
static void check_guest(struct vrdma_guest *g)
{
	uint32_t *users = calloc(g->nobjs ? g->nobjs : 1, sizeof(*users));
	uint32_t live = 0, refs[NREG + 1] = { 0 };
	uint64_t pinned = 0;

	if (!users)
		abort();
	for (uint32_t i = 1; i < g->nobjs; i++) {
		struct vrdma_obj *o = &g->objs[i];
		uint32_t h = i | (uint32_t)o->gen << VRDMA_HANDLE_INDEX_BITS;

		if (o->type == VRDMA_OBJ_FREE)
			continue;
		live++;
		switch (o->type) {
		case VRDMA_OBJ_PD:
			break;
		case VRDMA_OBJ_MR: {
			struct vrdma_mr *mr = o->p;

			use(g, users, mr->pd, VRDMA_OBJ_PD, "an MR");
			pinned += mr->mr->length;
			break;
		}
		case VRDMA_OBJ_CQ: {
			struct vrdma_cq *cq = o->p;

			if (cq->handle != h)
				fk_broken("CQ %#x thinks it is %#x", h, cq->handle);
			held(refs, &cq->q, "CQ");
			break;
		}
		case VRDMA_OBJ_QP: {
			struct vrdma_qp *qp = o->p;

			if (qp->handle != h)
				fk_broken("QP %#x thinks it is %#x", h, qp->handle);
			use(g, users, qp->pd, VRDMA_OBJ_PD, "a QP");
			use(g, users, qp->send_cq, VRDMA_OBJ_CQ, "a QP");
			use(g, users, qp->recv_cq, VRDMA_OBJ_CQ, "a QP");
			if (lookup(g, qp->send_cq)->p != qp->scq || lookup(g, qp->recv_cq)->p != qp->rcq)
				fk_broken("QP %#x's CQ pointers are not its CQ handles'", h);
			held(refs, &qp->sq, "QP's send queue");
			if (qp->srq_h) {
				use(g, users, qp->srq_h, VRDMA_OBJ_SRQ, "a QP");
				if (qp->rq.mapped)
					fk_broken("QP %#x has an SRQ and a receive ring", h);
			} else {
				held(refs, &qp->rq, "QP's receive queue");
			}
			break;
		}
		case VRDMA_OBJ_AH:
			use(g, users, ((struct vrdma_ah *)o->p)->pd, VRDMA_OBJ_PD, "an AH");
			break;
		case VRDMA_OBJ_MW:
			use(g, users, ((struct vrdma_mw *)o->p)->pd, VRDMA_OBJ_PD, "an MW");
			break;
		case VRDMA_OBJ_SRQ: {
			struct vrdma_srq *srq = o->p;

			if (srq->handle != h)
				fk_broken("SRQ %#x thinks it is %#x", h, srq->handle);
			use(g, users, srq->pd, VRDMA_OBJ_PD, "an SRQ");
			held(refs, &srq->q, "SRQ");
			if (srq->nfree > srq->q.entries || srq->max_wr > srq->q.entries)
				fk_broken("SRQ %#x: %u free slots, max_wr %u, %u entries", h,
					  srq->nfree, srq->max_wr, srq->q.entries);
			break;
		}
		default:
			fk_broken("object %#x of unknown type %u", h, o->type);
		}
	}
	for (uint32_t i = 1; i < g->nobjs; i++)
		if (g->objs[i].type != VRDMA_OBJ_FREE && g->objs[i].users != users[i])
			fk_broken("object %u (type %u) has %u users, %u use it", i, g->objs[i].type,
				  g->objs[i].users, users[i]);
	free(users);
	if (live != g->live)
		fk_broken("%u objects live, the guest counts %u", live, g->live);
	if (live > g->pol.max_objects)
		fk_broken("%u objects live, the quota is %u", live, g->pol.max_objects);
	if (pinned != g->pinned)
		fk_broken("MRs of %llu bytes, the guest counts %llu pinned",
			  (unsigned long long)pinned, (unsigned long long)g->pinned);
	if (pinned > g->pol.max_pinned_bytes)
		fk_broken("%llu bytes pinned, the quota is %llu", (unsigned long long)pinned,
			  (unsigned long long)g->pol.max_pinned_bytes);
	for (int s = 1; s <= NREG; s++)
		if (refs[s] != reg[s].refs)
			fk_broken("region %d is held %u times, by %u rings", s, reg[s].refs, refs[s]);
}

/* The reserved fields of this ABI version that no call may accept non-zero (docs/vrdma.md):
 * the rule restated from the structures, not taken from the handlers. */
static const struct {
	uint32_t fn;
	uint16_t off, len;
} reserved[] = {
#define RSV(fn, t, f) { VRDMA_FN_##fn, offsetof(struct t, f), sizeof(((struct t *)0)->f) }
	RSV(QUERY_PORT, vrdma_query_port_in, reserved),
	RSV(QUERY_GID, vrdma_query_gid_in, reserved),
	RSV(QUERY_PKEY, vrdma_query_pkey_in, reserved),
	RSV(DEALLOC_PD, vrdma_handle, reserved),
	RSV(REG_MR, vrdma_reg_mr_in, reserved),
	RSV(DEREG_MR, vrdma_handle, reserved),
	RSV(CREATE_CQ, vrdma_create_cq_in, reserved),
	RSV(DESTROY_CQ, vrdma_handle, reserved),
	RSV(CREATE_QP, vrdma_create_qp_in, reserved),
	RSV(CREATE_QP, vrdma_create_qp_in, cap.reserved),
	RSV(MODIFY_QP, vrdma_modify_qp_in, attr.reserved1),
	RSV(MODIFY_QP, vrdma_modify_qp_in, attr.cap.reserved),
	RSV(DESTROY_QP, vrdma_handle, reserved),
	RSV(CREATE_AH, vrdma_create_ah_in, reserved),
	RSV(CREATE_AH, vrdma_create_ah_in, attr.reserved),
	RSV(DESTROY_AH, vrdma_handle, reserved),
	RSV(CREATE_SRQ, vrdma_create_srq_in, attr.reserved),
	RSV(MODIFY_SRQ, vrdma_modify_srq_in, attr.reserved),
	RSV(QUERY_SRQ, vrdma_handle, reserved),
	RSV(DESTROY_SRQ, vrdma_handle, reserved),
	RSV(DEALLOC_MW, vrdma_handle, reserved),
#undef RSV
};

/* Does the input of fn carry a non-zero reserved byte? */
static bool reserved_set(uint32_t fn, const uint8_t *in, size_t inlen)
{
	for (size_t k = 0; k < sizeof(reserved) / sizeof(reserved[0]); k++)
		if (reserved[k].fn == fn && reserved[k].off + reserved[k].len <= inlen &&
		    !vrdma_zero(in + reserved[k].off, reserved[k].len))
			return true;
	return false;
}

static bool creates(uint32_t fn)
{
	return fn == VRDMA_FN_ALLOC_PD || fn == VRDMA_FN_REG_MR || fn == VRDMA_FN_CREATE_CQ ||
	       fn == VRDMA_FN_CREATE_QP || fn == VRDMA_FN_CREATE_AH ||
	       fn == VRDMA_FN_CREATE_SRQ || fn == VRDMA_FN_ALLOC_MW;
}

static void devcall(struct vrdma_guest *g, uint32_t fn, const uint8_t *in, size_t inlen,
		    size_t outmax, uint32_t *handles, uint32_t *nh)
{
	uint8_t *out = malloc(outmax ? outmax : 1);	/* exactly outmax: ASan sees past it */
	size_t outlen = 12345;
	int err;

	if (!out)
		abort();
	err = vrdma_dispatch(g, fn, in, inlen, out, outmax, &outlen);
	if (trace)
		fprintf(stderr, "  DEVCALL %2u in %3zu: %4d (%s), out %zu%s%#x\n", fn, inlen, err,
			strerror(-err), outlen, outlen >= 4 ? " first word " : "",
			outlen >= 4 ? le32_at(out, outlen, 0) : 0);
	if (err > 0 || err < -4095)
		fk_broken("DEVCALL %u returned %d", fn, err);
	if (outlen > outmax)
		fk_broken("DEVCALL %u wrote %zu bytes into %zu", fn, outlen, outmax);
	if (err && outlen && !(fn == VRDMA_FN_HELLO && err == -EPROTONOSUPPORT))
		fk_broken("DEVCALL %u failed (%d) with %zu bytes of answer", fn, err, outlen);
	if (!err && reserved_set(fn, in, inlen))
		fk_broken("DEVCALL %u accepted a non-zero reserved field", fn);
	if (!err && creates(fn) && outlen >= 4)
		handles[(*nh)++ % NHANDLES] = le32_at(out, outlen, 0);
	free(out);
}

static void event(struct vrdma_guest *g, const uint8_t *p, size_t n)
{
	struct vrdma_obj *o = lookup(g, le32_at(p, n, 0));
	uint8_t sel = n > 4 ? p[4] : 0, port = n > 5 ? p[5] : 0;

	if (o && o->type == VRDMA_OBJ_QP)
		fk_async_event(((struct vrdma_qp *)o->p)->qp, NULL, NULL, sel, port);
	else if (o && o->type == VRDMA_OBJ_CQ)
		fk_async_event(NULL, ((struct vrdma_cq *)o->p)->cq, NULL, sel, port);
	else if (o && o->type == VRDMA_OBJ_SRQ)
		fk_async_event(NULL, NULL, ((struct vrdma_srq *)o->p)->srq, sel, port);
	else
		fk_async_event(NULL, NULL, NULL, sel, port);
	vrdma_relay_async(g);
}

static void res_show(struct vrdma_guest *g, const uint8_t *p, size_t n)
{
	static const char *const kinds[8] = { NULL, "qp", "cq", "mr", "pd", "ah", "srq", "mw" };
	size_t len = (le32_at(p, n, 2) & 0xffff) % 4096 + 1;
	char *buf = malloc(len);
	int r;

	if (!buf)
		abort();
	r = vrdma_guest_res(g, kinds[(n ? p[0] : 0) % 8], n > 1 && (p[1] & 1), buf, len);
	if (strnlen(buf, len) == len || (r && r != -ENOSPC))
		fk_broken("res show: %d, or no terminating NUL in %zu bytes", r, len);
	free(buf);
}

static void record(struct vrdma_guest *g, uint8_t op, struct rd *body, uint32_t *handles,
		   uint32_t *nh)
{
	uint8_t patch[4][2], npatch = 0, code = op & 0x3f;
	size_t outmax = OUT_DEFAULT;
	uint8_t *p;
	size_t n;

	if (op & 0x40) {
		npatch = u8(body) & 3;
		for (int k = 0; k < npatch; k++) {
			patch[k][0] = u8(body);
			patch[k][1] = u8(body);
		}
	}
	if (op & 0x80)
		outmax = u8(body);
	n = body->n;
	p = malloc(n ? n : 1);	/* exactly n bytes: ASan sees a read past what came */
	if (!p)
		abort();
	memcpy(p, body->p, n);
	for (int k = 0; k < npatch; k++) {
		uint32_t h = htole32(handles[patch[k][1] % NHANDLES]);

		if ((size_t)patch[k][0] + 4 <= n)
			memcpy(p + patch[k][0], &h, 4);
	}
	if (trace && code >= 32)
		fprintf(stderr, "  op %u, %zu bytes\n", code, n);
	switch (code) {
	case 32: {
		int r = 1 + (n ? p[0] : 0) % NREG;
		size_t off = (le32_at(p, n, 1) & 0xffff) % reg_size[r], len = n > 3 ? n - 3 : 0;

		if (len > reg_size[r] - off)
			len = reg_size[r] - off;
		if (len)
			memcpy(reg[r].base + off, p + 3, len);
		break;
	}
	case 33: {
		int w = vrdma_relay_guest(g);

		if (w < 0)
			fk_broken("the relay found its own guest busy");
		if (trace)
			fprintf(stderr, "  relay: %d moved, %llu errors\n", w,
				(unsigned long long)g->n_relay_errors);
		break;
	}
	case 34:
		if (!vrdma_relay_need_wakeup(g, n && (p[0] & 1)))
			fk_broken("need_wakeup found its own guest busy");
		break;
	case 35:
		event(g, p, n);
		break;
	case 36: {
		struct vrdma_obj *o = lookup(g, le32_at(p, n, 0));

		if (o && o->type == VRDMA_OBJ_QP)
			fk_arrive(((struct vrdma_qp *)o->p)->qp, le32_at(p, n, 4),
				  n > 8 ? p[8] : 0);
		break;
	}
	case 37:
		fk_fail_next(le32_at(p, n, 0));
		break;
	case 38:
		res_show(g, p, n);
		break;
	default:
		if (code < 32)
			devcall(g, code, p, n, outmax, handles, nh);
		break;
	}
	free(p);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct rd in = { data, size };
	uint32_t handles[NHANDLES] = { 0 }, nh = 0;
	struct vrdma_policy pol;
	struct fk_config fc;
	struct vrdma_guest *g;
	uint8_t h0, h1, h2, h3;

	init_once();
	for (int i = 1; i <= NREG; i++) {
		memset(reg[i].base, 0, reg_size[i]);
		reg[i].refs = 0;
	}
	h0 = u8(&in);
	h1 = u8(&in);
	h2 = u8(&in);
	h3 = u8(&in);
	pol = (struct vrdma_policy){
		.port = h2 & 0x10 ? 2 : 1, .gid_index = h3 % 16, .max_objects = h0 ? h0 : 4096,
		.max_pinned_bytes = h1 < 0xf0 ? 4096ull << (h1 % 16) : UINT64_MAX >> (h1 & 15),
		/* a narrowed whitelist: one QP type or one access flag less */
		.qp_types = VRDMA_WL_QP_TYPES & ~(h3 & 0x40 ? VRDMA_QPT_BIT(2 + h3 % 3) : 0),
		.access = VRDMA_WL_ACCESS & ~(h3 & 0x80 ? 1u << (h3 >> 4 & 7) % 5 : 0),
	};
	fc = (struct fk_config){ .port = pol.port, .gid_index = pol.gid_index, .quirks = h2,
				 .qp_types = pol.qp_types, .access = pol.access };
	fk_setup(&fc);
	if (vrdma_guest_open(&g, &fk_dev, &pol, &env, NULL))
		abort();
	cur = g;
	while (in.n) {
		uint8_t op = u8(&in);
		size_t len = u8(&in);
		struct rd body;

		len |= (size_t)u8(&in) << 8;
		if (len > in.n)
			len = in.n;
		body = (struct rd){ in.p, len };
		in.p += len;
		in.n -= len;
		record(g, op, &body, handles, &nh);
		check_guest(g);
	}
	if (vrdma_relay_guest(g) < 0)	/* a last pass over whatever the rings hold */
		fk_broken("the relay found its own guest busy");
	check_guest(g);
	fk_fail_next(0);	/* what the guest left armed must not fail the close */
	vrdma_guest_close(g);
	cur = NULL;
	fk_check_closed();
	return 0;
}
