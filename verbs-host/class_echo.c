// SPDX-License-Identifier: MIT
/*
 * The `echo` device class: a device with no hardware behind it, so that tests exercise
 * the whole bus. Functions:
 *   1 ECHO   out = in
 *   2 SLEEP  in: u32 milliseconds (at most 5000); a slow call, cancelled (-ECANCELED)
 *            when the device, the guest or the daemon goes
 *   3 EVENT  in: u32 code; the device sends itself a VBUS_EV_DEVICE event with that code
 */
#include <endian.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "vbusd.h"

enum { ECHO_FN_ECHO = 1, ECHO_FN_SLEEP = 2, ECHO_FN_EVENT = 3 };

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
