// SPDX-License-Identifier: MIT
/*
 * fuzz-cm: vbusd's rdma_cm for guests (verbs-host/class_vrdma_cm.c), its decoder of the
 * vrdma CM functions (include/vbus/vrdma-cm.h) and its event path, driven as a hostile
 * guest drives them: one guest instance per input, a sequence of CM DEVCALLs to
 * vbd_cm_call() whose handles can name what earlier calls returned, and events from the
 * pretend CM (fake-rdmacm.c) on the IDs it holds, taken by the CM's own thread.
 *
 * The input: 1 byte of set-up, then records.
 *   [0]  bit 0: the guest is root (else uid 1000); bits 1-2: the GID of the bus's index
 *        holds 0 an IPv4-mapped address (10.0.0.1), 1 an IPv6 one, 2 nothing (zeros)
 * A record: op (1 byte), len (le16, cut to what is left), then len bytes of body.
 *   op & 0x40  the body starts with n = byte & 3 patches (offset, k): the le32 at offset
 *              of the payload becomes the k-th handle returned so far (k % 16)
 *   op & 0x80  then a byte: the output buffer's size is twice it (else 512)
 *   op & 0x3f  what to do with the rest, the payload (on the heap, exactly its size):
 *     0..31  DEVCALL fn = 0x100 + (op & 0x3f) (past MIGRATE_ID: unknown functions)
 *     32     an event: on live real ID p[0] (fr_nth_id), type p[1] % 18, status le32
 *            p[2..5], private data of length p[6] from p[7..]
 *     33     the next call into the pretend CM fails (ENOMEM)
 *     34     `vbusctl res show cm_id`: JSON if p[0] & 1, into le16 p[1..2] % 2048 + 1 bytes
 * Promises checked (a broken one aborts with `fuzz-cm: broken promise: ...`): an answer is
 * exactly the function's output size, within the buffer, and nothing is written on error
 * or past it; an event the guest gets has a known type, at most 196 bytes of private data
 * and zeros past them and in its reserved bytes; the CM calls the pretend CM only on live
 * IDs; after vbd_cm_close every real ID and channel is gone and every event acknowledged.
 * The seeds in tests/fuzz-corpus/fuzz-cm/ come from verbs-host/fuzz/fuzz-cm-seeds.
 */
/* fuzz-sources: verbs-host/fuzz/fake-rdmacm.c verbs-host/class_vrdma_cm.c */
/* fuzz-libs: */
#include <endian.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <vbus/vrdma-cm.h>
#include "vbusd.h"
#include "class_vrdma_cm.h"
#include "fake-rdmacm.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define NHANDLES	16
#define OUT_MAX		512

static char gid_dir[64];
static uint32_t handles[NHANDLES];
static unsigned int nhandles;

static __attribute__((noreturn)) void broken(const char *what)
{
	fprintf(stderr, "fuzz-cm: broken promise: %s\n", what);
	abort();
}

/* A sysfs-like directory whose ports/1/gids/0 the CM reads for its one address. */
static void gid_set(unsigned int kind)
{
	static const char *gid[3] = {
		"0000:0000:0000:0000:0000:ffff:0a00:0001",
		"fe80:0000:0000:0000:0200:00ff:fe00:0001",
		"0000:0000:0000:0000:0000:0000:0000:0000",
	};
	char path[128];
	FILE *f;

	if (!gid_dir[0]) {
		snprintf(gid_dir, sizeof(gid_dir), "/tmp/fuzz-cm.XXXXXX");
		if (!mkdtemp(gid_dir))
			abort();
		snprintf(path, sizeof(path), "%s/ports", gid_dir);
		mkdir(path, 0700);
		snprintf(path, sizeof(path), "%s/ports/1", gid_dir);
		mkdir(path, 0700);
		snprintf(path, sizeof(path), "%s/ports/1/gids", gid_dir);
		mkdir(path, 0700);
	}
	snprintf(path, sizeof(path), "%s/ports/1/gids/0", gid_dir);
	f = fopen(path, "w");
	if (!f)
		abort();
	fprintf(f, "%s\n", gid[kind % 3]);
	fclose(f);
}

static size_t out_size(uint32_t fn)
{
	switch (fn) {
	case VRDMA_CM_FN_HELLO: return sizeof(struct vrdma_cm_hello);
	case VRDMA_CM_FN_CREATE_CHANNEL:
	case VRDMA_CM_FN_CREATE_ID: return sizeof(struct vrdma_cm_handle);
	case VRDMA_CM_FN_GET_EVENT: return sizeof(struct vrdma_cm_event);
	case VRDMA_CM_FN_BIND: return sizeof(struct vrdma_cm_addr);
	case VRDMA_CM_FN_INIT_QP_ATTR: return sizeof(struct vrdma_cm_qp_attr);
	case VRDMA_CM_FN_UD_PARAM: return sizeof(struct vrdma_cm_ud);
	default: return 0;
	}
}

static void keep_handle(uint32_t h)
{
	handles[nhandles++ % NHANDLES] = h;
}

static void check_event(const struct vrdma_cm_event *e)
{
	static const uint8_t zero[200];

	if (le32toh(e->event) > RDMA_CM_EVENT_TIMEWAIT_EXIT)
		broken("an event of an unknown type");
	if (e->private_data_len > VRDMA_CM_PRIV_MAX)
		broken("an event with more private data than fits");
	if (memcmp(e->private_data + e->private_data_len, zero,
		   sizeof(e->private_data) - e->private_data_len))
		broken("an event's bytes past its private data are not zero");
	if (e->reserved || e->addr.reserved || e->addr.src.reserved || e->addr.dst.reserved)
		broken("an event's reserved bytes are not zero");
	keep_handle(le32toh(e->id));
}

static void devcall(struct vbd_cm *cm, uint32_t fn, const uint8_t *in, size_t inlen,
		    size_t outmax)
{
	uint8_t out[OUT_MAX];
	size_t outlen = 12345, want = out_size(fn);
	int err;

	memset(out, 0xa5, sizeof(out));
	err = vbd_cm_call(cm, fn, in, inlen, out, outmax, &outlen);
	for (size_t i = err ? 0 : outlen; i < sizeof(out); i++)
		if (out[i] != 0xa5)
			broken("the CM wrote past its answer (or on an error)");
	if (err) {
		if (err > 0 || outlen)
			broken("an error with an answer, or not a -errno");
		return;
	}
	if (outlen != want || outlen > outmax)
		broken("an answer of the wrong size");
	if (fn == VRDMA_CM_FN_CREATE_CHANNEL || fn == VRDMA_CM_FN_CREATE_ID)
		keep_handle(le32toh(((const struct vrdma_cm_handle *)out)->handle));
	if (fn == VRDMA_CM_FN_GET_EVENT)
		check_event((const struct vrdma_cm_event *)out);
}

static void event(const uint8_t *p, size_t n)
{
	struct rdma_cm_id *id;
	uint8_t len;
	int32_t status;

	if (n < 7)
		return;
	id = fr_nth_id(p[0]);
	/* Only IDs with a channel the CM made: all of them (the CM makes every one). */
	if (!id)
		return;
	memcpy(&status, p + 2, 4);
	len = p[6];
	if (len > n - 7)
		len = (uint8_t)(n - 7);
	fr_event(id, (enum rdma_cm_event_type)(p[1] % 18), (int)le32toh((uint32_t)status),
		 p + 7, len);
}

static void res_show(struct vbd_cm *cm, const uint8_t *p, size_t n)
{
	char *buf;
	size_t len;

	if (n < 3)
		return;
	len = (size_t)((p[1] | p[2] << 8) % 2048) + 1;
	buf = malloc(len);
	if (!buf)
		abort();
	if (!vbd_cm_res(cm, p[0] & 1, buf, len) && strnlen(buf, len) == len)
		broken("vbd_cm_res: no terminating NUL");
	free(buf);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct vbd_guest g;
	static struct vbd_cm_policy pol = { .ibdev = FR_DEV_NAME, .port = 1 };
	static char vg_dummy;
	struct vbd_cm *cm;
	size_t pos = 1;

	if (size < 1)
		return 0;
	gid_set((data[0] >> 1) & 3);
	snprintf(pol.ibdev_path, sizeof(pol.ibdev_path), "%s", gid_dir);
	g.id = 7;
	g.uid = data[0] & 1 ? 0 : 1000;
	nhandles = 0;
	memset(handles, 0, sizeof(handles));
	fr_fail_next = false;
	if (vbd_cm_open(&cm, &g, &pol, (struct vrdma_guest *)&vg_dummy))
		return 0;
	while (pos + 3 <= size) {
		uint8_t op = data[pos];
		size_t len = (size_t)(data[pos + 1] | data[pos + 2] << 8), outmax = OUT_MAX;
		const uint8_t *body;
		uint8_t *p;
		unsigned int npatch = 0;

		pos += 3;
		if (len > size - pos)
			len = size - pos;
		body = data + pos;
		pos += len;
		if (op & 0x40 && len) {
			npatch = body[0] & 3;
			body++, len--;
		}
		const uint8_t *patches = body;

		if (len < 2 * npatch)
			npatch = (unsigned int)(len / 2);
		body += 2 * npatch, len -= 2 * npatch;
		if (op & 0x80 && len) {
			outmax = (size_t)body[0] * 2;
			body++, len--;
		}
		p = malloc(len ? len : 1);
		if (!p)
			abort();
		memcpy(p, body, len);
		for (unsigned int i = 0; i < npatch; i++) {
			size_t off = patches[2 * i];
			uint32_t h = htole32(handles[patches[2 * i + 1] % NHANDLES]);

			if (off + 4 <= len)
				memcpy(p + off, &h, 4);
		}
		switch (op & 0x3f) {
		case 32: event(p, len); break;
		case 33: fr_fail_next = true; break;
		case 34: res_show(cm, p, len); break;
		default:
			if ((op & 0x3f) < 32)
				devcall(cm, VRDMA_CM_FN_BASE + (op & 0x3f), p, len, outmax);
			break;
		}
		free(p);
	}
	vbd_cm_close(cm);
	if (fr_live_ids() || fr_live_channels() || fr_unacked())
		broken("real IDs, channels or events left after vbd_cm_close");
	fr_reset();
	return 0;
}
