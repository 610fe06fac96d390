// SPDX-License-Identifier: MIT
/*
 * vrdma-abi: the vrdma DEVCALL decoder (verbs-host/vrdma/dispatch.c) without a device,
 * driven by a fake guest whose calls never reach the real context. Checked for every
 * function of <vbus/vrdma-fns.h>: a short input is -EINVAL, a longer one with a non-zero
 * extra byte -E2BIG, an output buffer too small -EMSGSIZE. A longer input whose extra bytes
 * are zero reaches the handler (MODIFY_QP, DEALLOC_PD: their handle lookup answers),
 * REG_MR's pieces still follow its header exactly. HELLO: a version-1 guest's 8-byte form
 * gets the 24-byte answer and version 1; ranges and features negotiate; a guest with no
 * version in common is refused with -EPROTONOSUPPORT and an answer saying the host's
 * range. Inputs are heap buffers of exactly the length sent, so that ASan catches a
 * handler that reads past what the guest sent.
 */
#include <endian.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <vbus/vrdma-fns.h>
#include "../../verbs-host/vrdma/vrdma.h"

#define fail(...) do { printf("FAIL line %d: ", __LINE__); printf(__VA_ARGS__); printf("\n"); exit(1); } while (0)
#define check(c, ...) do { if (!(c)) fail(__VA_ARGS__); } while (0)

static struct vrdma_guest g;
static size_t outlen;
static uint8_t out[4096];

/* One call with `len` bytes of `in`, copied to a heap buffer of exactly that size. */
static int call(uint32_t fn, const void *in, size_t len, size_t outmax)
{
	uint8_t *p = malloc(len ? len : 1);
	int r;

	check(p, "malloc");
	if (len)
		memcpy(p, in, len);
	memset(out, 0xa5, sizeof(out));
	r = vrdma_dispatch(&g, fn, p, len, out, outmax, &outlen);
	free(p);
	return r;
}

struct fn_row { uint32_t fn, in, out, flags; };
#define ROW(fn, i, o, f) { fn, i, o, f },
static const struct fn_row rows[] = { VRDMA_FN_TABLE(ROW) };

/* The size rules for every function, all decided before any handler runs. */
static void sizes_of_every_function(void)
{
	uint8_t in[4096] = { 0 };

	for (size_t k = 0; k < sizeof(rows) / sizeof(rows[0]); k++) {
		const struct fn_row *r = &rows[k];
		bool hello = r->fn == VRDMA_FN_HELLO;

		if (r->in && !hello)
			check(call(r->fn, in, r->in - 1, sizeof(out)) == -EINVAL,
			      "fn %u: a short input", r->fn);
		in[r->in + 7] = 1;	/* a newer guest's field this host does not know */
		if (!hello && !(r->flags & VRDMA_FNF_VAR_IN))
			check(call(r->fn, in, r->in + 8, sizeof(out)) == -E2BIG && !outlen,
			      "fn %u: a longer input with a non-zero extra byte", r->fn);
		in[r->in + 7] = 0;
		if (r->out && !(r->flags & VRDMA_FNF_VAR_IN))
			check(call(r->fn, in, r->in + 8, r->out - 1) == -EMSGSIZE,
			      "fn %u: an output buffer of %u bytes", r->fn, r->out - 1);
	}
	check(call(0, NULL, 0, sizeof(out)) == -EOPNOTSUPP, "function 0");
	check(call(VRDMA_FN__MAX, NULL, 0, sizeof(out)) == -EOPNOTSUPP, "past the last");
	printf("ok   %zu functions: short -EINVAL, non-zero extra bytes -E2BIG, "
	       "small output -EMSGSIZE\n", sizeof(rows) / sizeof(rows[0]));
}

/* Inputs that reach their handler: a free slot's handle answers -ENOENT from it. */
static void longer_inputs_reach_the_handler(void)
{
	uint32_t free_slot = 1u << VRDMA_HANDLE_INDEX_BITS | 2;	/* gen 1, index 2 */
	struct { struct vrdma_modify_qp_in m; uint8_t extra[24]; } mq = {
		.m = { .handle = htole32(free_slot) } };
	struct { struct vrdma_handle h; uint8_t extra[8]; } h = {
		.h = { .handle = htole32(free_slot) } };
	struct { struct vrdma_reg_mr_in i; struct vrdma_mr_piece p; uint64_t extra; } mr = {
		.i = { .pd = htole32(free_slot), .iova = htole64(4096), .length = htole64(4096),
		       .npieces = htole32(1) },
		.p = { .shm = htole32(1), .length = htole64(4096) } };

	check(call(VRDMA_FN_MODIFY_QP, &mq, sizeof(mq.m), 0) == -ENOENT, "MODIFY_QP, exact");
	check(call(VRDMA_FN_MODIFY_QP, &mq, sizeof(mq), 0) == -ENOENT,
	      "MODIFY_QP with 24 zero bytes more reaches the handler");
	check(call(VRDMA_FN_DEALLOC_PD, &h, sizeof(h), 0) == -ENOENT,
	      "DEALLOC_PD with 8 zero bytes more reaches the handler");
	h.extra[7] = 0x80;
	check(call(VRDMA_FN_DEALLOC_PD, &h, sizeof(h), 0) == -E2BIG, "... but not a non-zero one");
	mq.m.handle = 0;
	check(call(VRDMA_FN_MODIFY_QP, &mq, sizeof(mq), 0) == -EINVAL, "handle 0, padded");
	check(call(VRDMA_FN_REG_MR, &mr, sizeof(mr.i) + sizeof(mr.p), sizeof(out)) == -ENOENT,
	      "REG_MR, header and one piece");
	check(call(VRDMA_FN_REG_MR, &mr, sizeof(mr), sizeof(out)) == -EINVAL,
	      "REG_MR: the pieces follow the header exactly, even with zero bytes after");
	check(call(VRDMA_FN_REG_MR, &mr, sizeof(mr.i) - 8, sizeof(out)) == -EINVAL,
	      "REG_MR shorter than its header");
	printf("ok   zero extra bytes accepted (MODIFY_QP, DEALLOC_PD), non-zero -E2BIG, "
	       "REG_MR's pieces exact\n");
}

static void hello_v2(uint32_t lo, uint32_t hi, uint64_t feat, struct vrdma_hello_out *o,
		     int want)
{
	struct vrdma_hello_in h = { .abi_version = htole32(hi), .abi_min = htole32(lo),
				    .features = htole64(feat) };
	int r = call(VRDMA_FN_HELLO, &h, sizeof(h), sizeof(out));

	check(r == want, "HELLO %u..%u: %d, not %d", lo, hi, r, want);
	check(outlen == sizeof(*o), "HELLO %u..%u: a %zu-byte answer", lo, hi, outlen);
	memcpy(o, out, sizeof(*o));
	check(le32toh(o->abi_min) == VRDMA_ABI_MIN_VERSION &&
	      le32toh(o->abi_max) == VRDMA_ABI_VERSION, "HELLO %u..%u: the host's range", lo, hi);
}

static void hello(void)
{
	struct vrdma_hello_in v1 = { .abi_version = htole32(1), .doorbell = htole32(7) };
	struct vrdma_hello_out o;
	uint8_t longer[sizeof(struct vrdma_hello_in) + 16] = { 0 };

	/* A version-1 guest: 8 bytes in, exactly the 24 bytes it knows out. */
	check(!call(VRDMA_FN_HELLO, &v1, VRDMA_HELLO_IN_V1_SIZE, VRDMA_HELLO_OUT_V1_SIZE),
	      "a version-1 HELLO");
	check(outlen == VRDMA_HELLO_OUT_V1_SIZE && out[outlen] == 0xa5, "a 24-byte answer");
	memcpy(&o, out, VRDMA_HELLO_OUT_V1_SIZE);
	check(le32toh(o.abi_version) == 1 && g.abi_version == 1 && !g.features &&
	      le32toh(o.gid_index) == 3 && le32toh(o.max_objects) == 16 &&
	      le64toh(o.max_pinned_bytes) == 1 << 20 && !o.reserved,
	      "version 1, the guest's limits (%u)", le32toh(o.abi_version));
	v1.abi_version = htole32(VRDMA_ABI_VERSION + 1);
	check(call(VRDMA_FN_HELLO, &v1, VRDMA_HELLO_IN_V1_SIZE, sizeof(out)) == -EPROTONOSUPPORT &&
	      outlen == VRDMA_HELLO_OUT_V1_SIZE && !((struct vrdma_hello_out *)out)->abi_version,
	      "an 8-byte HELLO of a newer version: refused, version 0 in the answer");
	v1.abi_version = 0;
	check(call(VRDMA_FN_HELLO, &v1, VRDMA_HELLO_IN_V1_SIZE, sizeof(out)) == -EPROTONOSUPPORT,
	      "version 0 does not exist");
	check(call(VRDMA_FN_HELLO, &v1, 12, sizeof(out)) == -EINVAL, "a 12-byte HELLO");
	check(call(VRDMA_FN_HELLO, &v1, 4, sizeof(out)) == -EINVAL, "a 4-byte HELLO");

	/* Version 2: ranges and features. */
	hello_v2(1, VRDMA_ABI_VERSION, ~0ull, &o, 0);
	check(le32toh(o.abi_version) == VRDMA_ABI_VERSION && g.abi_version == VRDMA_ABI_VERSION &&
	      le64toh(o.features) == (~0ull & VRDMA_F_ALL) && le32toh(o.gid_index) == 3,
	      "the newest both speak, the features the host has");
	check(le32toh(o.qp_types) == VRDMA_QPT_BIT(2) && le32toh(o.access) == 3,
	      "version 3: the guest's whitelist (QP types %#x, access %#x)", le32toh(o.qp_types),
	      le32toh(o.access));
	hello_v2(1, 1, 0, &o, 0);
	check(le32toh(o.abi_version) == 1, "a guest of 1..1 gets 1");
	hello_v2(0, 1, 0, &o, 0);
	check(le32toh(o.abi_version) == 1, "abi_min 0 means abi_version only");
	hello_v2(2, 9, 0, &o, 0);
	check(le32toh(o.abi_version) == VRDMA_ABI_VERSION, "a wider range gets the host's newest");
	hello_v2(VRDMA_ABI_VERSION + 1, VRDMA_ABI_VERSION + 3, 0, &o, -EPROTONOSUPPORT);
	check(!o.abi_version && !o.max_objects, "a newer-only guest: refused, the host's range");
	hello_v2(2, 1, 0, &o, -EPROTONOSUPPORT);
	check(call(VRDMA_FN_HELLO, &v1, sizeof(struct vrdma_hello_in), VRDMA_HELLO_OUT_V1_SIZE) ==
	      -EMSGSIZE, "a version-2 HELLO needs room for the whole answer");

	/* A later guest appends fields: HELLO ignores what it does not know. */
	((struct vrdma_hello_in *)longer)->abi_version = htole32(VRDMA_ABI_VERSION + 1);
	((struct vrdma_hello_in *)longer)->abi_min = htole32(1);
	((struct vrdma_hello_in *)longer)->reserved = htole32(5);
	memset(longer + sizeof(struct vrdma_hello_in), 0xff, 16);
	check(!call(VRDMA_FN_HELLO, longer, sizeof(longer), sizeof(out)) &&
	      outlen == sizeof(o) && le32toh(((struct vrdma_hello_out *)out)->abi_version) ==
	      VRDMA_ABI_VERSION, "a longer hello_in: its tail and reserved field ignored");
	printf("ok   HELLO: version 1's 8-byte form (24-byte answer), ranges, features, "
	       "the whitelist, refusals with the host's range %u..%u\n", VRDMA_ABI_MIN_VERSION, VRDMA_ABI_VERSION);
}

int main(void)
{
	g.pol = (struct vrdma_policy){ .port = 1, .gid_index = 3, .max_objects = 16,
				       .max_pinned_bytes = 1 << 20, .qp_types = VRDMA_QPT_BIT(2),
				       .access = 3 };
	g.page = 4096;
	g.nobjs = 4;	/* slots 1..3 free, generation 1: their handles are stale, -ENOENT */
	g.objs = calloc(g.nobjs, sizeof(*g.objs));
	check(g.objs, "calloc");
	for (uint32_t i = 0; i < g.nobjs; i++)
		g.objs[i].gen = 1;
	pthread_mutex_init(&g.lock, NULL);

	hello();
	sizes_of_every_function();
	longer_inputs_reach_the_handler();
	free(g.objs);
	return 0;
}
