// SPDX-License-Identifier: MIT
/*
 * The `echo` device class: a device with no hardware behind it, so that tests exercise
 * the whole bus. Functions:
 *   1 ECHO   out = in
 *   2 SLEEP  in: u32 milliseconds (at most 5000); a slow call, cancelled (-ECANCELED)
 *            when the device, the guest or the daemon goes
 *   3 EVENT  in: u32 code; the device sends itself a VBUS_EV_DEVICE event with that code
 *   4 PEEK   in: struct echo_at (region id, len, offset); out: those len bytes of the
 *            guest's region, as vbusd's mapping of it holds them
 *   5 POKE   in: struct echo_at, then len bytes written there
 *   PEEK and POKE check the region's id and bounds (-ENOENT, -EINVAL, -EMSGSIZE): they let
 *   tests see a region from the host's side (a VM's pages: docs/vm.md, "Shared regions").
 *   6 KICK   in: u32 signal id (TO_GUEST); the device writes 1 to it
 *   7 WAIT   in: u32 signal id (TO_HOST), u32 milliseconds (at most 5000); out: u64, the
 *            doorbells rung on it, read once it rang (-ETIMEDOUT when it did not)
 *   KICK and WAIT let tests see a signal from the host's side (a VM's vectors: docs/vm.md,
 *   "Signals"); the id must be a signal of that direction (-ENOENT).
 */
#include <endian.h>
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include "vbusd.h"

enum { ECHO_FN_ECHO = 1, ECHO_FN_SLEEP = 2, ECHO_FN_EVENT = 3, ECHO_FN_PEEK = 4,
       ECHO_FN_POKE = 5, ECHO_FN_KICK = 6, ECHO_FN_WAIT = 7 };

struct echo_at {
	__le32 shm;
	__le32 len;
	__le64 offset;
};

struct echo_inst {
	struct vbd_guest *g;
	uint32_t handle;
	uint64_t calls;
	bool cancelled;		/* set by echo_cancel, from another thread */
};

static int echo_init(struct vbd_dev *d, char *err, size_t errn)
{
	if (!d->n_attrs)
		return 0;
	snprintf(err, errn, "echo takes no attributes ('%s')", d->attr_key[0]);
	return -EINVAL;
}

static void echo_fini(struct vbd_dev *d)
{
}

static int echo_open(struct vbd_dev *d, struct vbd_guest *g, uint32_t handle, void **inst)
{
	struct echo_inst *e = calloc(1, sizeof(*e));

	if (!e)
		return -ENOMEM;
	e->g = g;
	e->handle = handle;
	*inst = e;
	return 0;
}

static void echo_close(void *inst)
{
	free(inst);
}

/* PEEK and POKE (under the guest's lock, as every call): the bytes [offset, offset + len)
 * of region `shm`, bounds checked, into out or from the data after the header. */
static int echo_at(struct echo_inst *e, uint32_t fn, const void *in, size_t inlen, void *out,
		   size_t outmax, size_t *outlen)
{
	struct echo_at a;
	const uint64_t *pages;
	uint64_t off, size;
	uint32_t len, shm;
	void *base;
	int fd, err;

	if (inlen < sizeof(a))
		return -EINVAL;
	memcpy(&a, in, sizeof(a));
	shm = le32toh(a.shm);
	len = le32toh(a.len);
	off = le64toh(a.offset);
	if (fn == ECHO_FN_PEEK ? inlen != sizeof(a) : inlen - sizeof(a) != len)
		return -EINVAL;
	if (fn == ECHO_FN_PEEK && len > outmax)
		return -EMSGSIZE;
	err = vbd_guest_region(e->g, shm, &fd, &base, &size, &pages);
	if (err)
		return err;
	if (off > size || len > size - off)
		err = -EINVAL;
	else if (fn == ECHO_FN_PEEK)
		memcpy(out, (const uint8_t *)base + off, len);
	else
		memcpy((uint8_t *)base + off, (const uint8_t *)in + sizeof(a), len);
	vbd_guest_region_put(e->g, shm);
	*outlen = !err && fn == ECHO_FN_PEEK ? len : 0;
	return err;
}

/* KICK and WAIT (under the guest's lock). */
static int echo_signal(struct echo_inst *e, uint32_t fn, const void *in, size_t inlen,
		       void *out, size_t outmax, size_t *outlen)
{
	uint32_t a[2] = { 0, 0 };
	uint64_t n = 1;
	int fd, err;

	if (inlen != (fn == ECHO_FN_KICK ? 4 : 8) || (fn == ECHO_FN_WAIT && outmax < sizeof(n)))
		return -EINVAL;
	memcpy(a, in, inlen);
	a[0] = le32toh(a[0]);
	a[1] = le32toh(a[1]);
	if (fn == ECHO_FN_WAIT && a[1] > 5000)
		return -EINVAL;
	err = vbd_guest_signal(e->g, a[0], fn == ECHO_FN_KICK ? VBUS_SIG_TO_GUEST : VBUS_SIG_TO_HOST,
			       &fd);
	if (err)
		return err;
	if (fn == ECHO_FN_KICK) {
		err = write(fd, &n, sizeof(n)) == sizeof(n) ? 0 : -errno;
	} else {
		struct pollfd p = { .fd = fd, .events = POLLIN };
		int r = poll(&p, 1, (int)a[1]);

		if (r < 0)
			err = -errno;
		else if (!r)
			err = -ETIMEDOUT;
		else
			err = read(fd, &n, sizeof(n)) == sizeof(n) ? 0 : -errno;
		if (!err) {
			n = htole64(n);
			memcpy(out, &n, sizeof(n));
			*outlen = sizeof(n);
		}
	}
	vbd_guest_signal_put(e->g, a[0]);
	return err;
}

static int echo_call(void *inst, uint32_t fn, const void *in, size_t inlen, void *out,
		     size_t outmax, size_t *outlen)
{
	struct echo_inst *e = inst;
	uint32_t v;

	__atomic_fetch_add(&e->calls, 1, __ATOMIC_RELAXED);
	switch (fn) {
	case ECHO_FN_ECHO:
		if (inlen > outmax)
			return -EMSGSIZE;
		memcpy(out, in, inlen);
		*outlen = inlen;
		return 0;
	case ECHO_FN_SLEEP:
	case ECHO_FN_EVENT:
		if (inlen != sizeof(v))
			return -EINVAL;
		memcpy(&v, in, sizeof(v));
		v = le32toh(v);
		if (fn == ECHO_FN_EVENT)
			return vbd_guest_send_event(e->g, VBUS_EV_DEVICE, e->handle, v, NULL, 0);
		if (v > 5000)
			return -EINVAL;
		/* Sleep in 10 ms steps, so that a cancel ends the call soon. */
		for (uint32_t t = 0; t < v; t += 10) {
			if (__atomic_load_n(&e->cancelled, __ATOMIC_ACQUIRE))
				return -ECANCELED;
			nanosleep(&(struct timespec){ .tv_nsec = (v - t < 10 ? v - t : 10) * 1000000L },
				  NULL);
		}
		return 0;
	case ECHO_FN_PEEK:
	case ECHO_FN_POKE:
		return echo_at(e, fn, in, inlen, out, outmax, outlen);
	case ECHO_FN_KICK:
	case ECHO_FN_WAIT:
		return echo_signal(e, fn, in, inlen, out, outmax, outlen);
	default:
		return -EOPNOTSUPP;
	}
}

static void echo_cancel(void *inst)
{
	struct echo_inst *e = inst;

	__atomic_store_n(&e->cancelled, true, __ATOMIC_RELEASE);
}

static int echo_show(void *inst, char *buf, size_t n)
{
	struct echo_inst *e = inst;

	return snprintf(buf, n, "{\"calls\":%llu}",
			(unsigned long long)__atomic_load_n(&e->calls, __ATOMIC_RELAXED));
}

const struct vbd_class vbd_class_echo = {
	.name = "echo",
	.dev_init = echo_init,
	.dev_fini = echo_fini,
	.open = echo_open,
	.close = echo_close,
	.call = echo_call,
	.cancel = echo_cancel,
	.show = echo_show,
};
