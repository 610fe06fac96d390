// SPDX-License-Identifier: MIT
/*
 * The `vrdma` device class: a virtual RDMA device backed by a real one (docs/vrdma.md).
 * Attributes: backing=DEVICE (required, e.g. rxe0), port=N (1), gid=INDEX (the only
 * source GID index guests may use; 0), max-pinned=BYTES (256M), max-objects=N (4096).
 * This file is the glue between the bus and verbs-host/vrdma/: each guest that opens
 * the device gets its own vrdma_guest; one relay thread serves them all.
 */
#include <endian.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "vrdma/vrdma.h"
#include "vbusd.h"

struct vrdma_dev {
	struct ibv_device **list;
	struct ibv_device *ibdev;
	struct vrdma_policy pol;
};

struct vrdma_inst {
	struct vrdma_guest *vg;
	struct vbd_guest *g;
	uint32_t handle;		/* the guest's DEVOPEN handle: events name it */
	bool relayed;
};

static pthread_mutex_t relay_lock = PTHREAD_MUTEX_INITIALIZER;
static struct vrdma_relay *relay;
static int relay_users;

static int num_attr(const struct vbd_dev *d, const char *k, uint64_t def, uint64_t max,
		    uint64_t *v)
{
	const char *s = vbd_dev_attr(d, k);
	char *end;

	*v = def;
	if (!s)
		return 0;
	*v = strtoull(s, &end, 0);
	if (*end == 'K' || *end == 'k') { *v <<= 10; end++; }
	else if (*end == 'M' || *end == 'm') { *v <<= 20; end++; }
	else if (*end == 'G' || *end == 'g') { *v <<= 30; end++; }
	return (*end || end == s || *v > max) ? -EINVAL : 0;
}

static int vrdma_init(struct vbd_dev *d)
{
	const char *backing = vbd_dev_attr(d, "backing");
	struct vrdma_dev *v;
	uint64_t port, gid, pinned, objs;
	int n;

	for (int i = 0; i < d->n_attrs; i++)
		if (strcmp(d->attr_key[i], "backing") && strcmp(d->attr_key[i], "port") &&
		    strcmp(d->attr_key[i], "gid") && strcmp(d->attr_key[i], "max-pinned") &&
		    strcmp(d->attr_key[i], "max-objects"))
			return -EINVAL;
	if (!backing || num_attr(d, "port", 1, 255, &port) || !port ||
	    num_attr(d, "gid", 0, 65535, &gid) ||
	    num_attr(d, "max-pinned", 256ull << 20, 1ull << 40, &pinned) ||
	    num_attr(d, "max-objects", 4096, 1u << VRDMA_HANDLE_INDEX_BITS, &objs))
		return -EINVAL;
	v = calloc(1, sizeof(*v));
	if (!v)
		return -ENOMEM;
	v->list = ibv_get_device_list(&n);
	for (int i = 0; v->list && i < n; i++)
		if (!strcmp(ibv_get_device_name(v->list[i]), backing))
			v->ibdev = v->list[i];
	if (!v->ibdev) {
		vbd_err("vrdma %s: no RDMA device '%s' on this host", d->name, backing);
		if (v->list)
			ibv_free_device_list(v->list);
		free(v);
		return -ENODEV;
	}
	v->pol = (struct vrdma_policy){ .port = (uint8_t)port, .gid_index = (uint32_t)gid,
					.max_objects = (uint32_t)objs, .max_pinned_bytes = pinned };
	d->priv = v;
	return 0;
}

static void vrdma_fini(struct vbd_dev *d)
{
	struct vrdma_dev *v = d->priv;

	ibv_free_device_list(v->list);
	free(v);
}

/*
 * The backing device was unregistered (`rdma link delete`, driver unload): its uverbs
 * character device is gone. A driver without disassociate_ucontext (rxe) keeps the
 * unregistration waiting until every open context is closed, and tells nobody; so vbusd
 * looks for itself, and removing the vrdma device then closes the guests' real contexts
 * (the unregistration completes) and gives them IBV_EVENT_DEVICE_FATAL, as a device that
 * disassociates its contexts does.
 */
static bool vrdma_gone(struct vbd_dev *d)
{
	struct vrdma_dev *v = d->priv;

	return access(v->ibdev->dev_path, F_OK) && errno == ENOENT;
}

static int env_region(void *priv, uint32_t shm, struct vrdma_region *out)
{
	struct vrdma_inst *in = priv;

	return vbd_guest_region(in->g, shm, &out->fd, &out->base, &out->size);
}

static void env_region_put(void *priv, uint32_t shm)
{
	struct vrdma_inst *in = priv;

	vbd_guest_region_put(in->g, shm);
}

static int env_kick(void *priv, uint32_t sig)
{
	struct vrdma_inst *in = priv;
	uint64_t one = 1;
	int fd, r = vbd_guest_signal(in->g, sig, VBUS_SIG_TO_GUEST, &fd);

	if (r)
		return r;
	return write(fd, &one, sizeof(one)) == sizeof(one) ? 0 : -errno;
}

/* An async event, as a VBUS_EV_DEVICE on the instance's handle (docs/vrdma.md, Events).
 * Sending never blocks; a send that finds the socket busy is retried a few times. */
static void env_event(void *priv, uint32_t type, uint32_t h, uint32_t port)
{
	struct vrdma_inst *in = priv;
	struct vrdma_event ev = { .handle = htole32(h), .port_num = htole32(port) };

	for (int i = 0; i < 100; i++)
		if (vbd_guest_send_event(in->g, VBUS_EV_DEVICE, in->handle, type, &ev,
					 sizeof(ev)) != -EAGAIN)
			return;
	vbd_warn("guest %u: async event %u dropped (its socket stays busy)", in->g->id, type);
}

static const struct vrdma_env_ops env = { .region = env_region,
					  .region_put = env_region_put, .kick = env_kick,
					  .event = env_event };

static int vrdma_open(struct vbd_dev *d, struct vbd_guest *g, uint32_t handle, void **out)
{
	struct vrdma_dev *v = d->priv;
	struct vrdma_inst *in = calloc(1, sizeof(*in));
	int err;

	if (!in)
		return -ENOMEM;
	in->g = g;
	in->handle = handle;
	err = vrdma_guest_open(&in->vg, v->ibdev, &v->pol, &env, in);
	if (err) {
		free(in);
		return err;
	}
	pthread_mutex_lock(&relay_lock);
	if (!relay) {
		const char *s = getenv("VBUS_RELAY_SPIN_US");
		uint64_t us = s ? strtoull(s, NULL, 10) : 100;

		const char *rt = getenv("VBUS_RELAY_RT");

		err = vrdma_relay_start(&relay, us * 1000);
		if (!err && rt && atoi(rt) > 0) {
			int e = vrdma_relay_set_priority(relay, atoi(rt));

			if (e)
				vbd_err("relay: SCHED_FIFO priority %s: %s", rt, strerror(-e));
		}
	}
	if (!err)
		relay_users++;
	pthread_mutex_unlock(&relay_lock);
	if (err) {
		vrdma_guest_close(in->vg);
		free(in);
		return err;
	}
	*out = in;
	return 0;
}

static void vrdma_close(void *inst)
{
	struct vrdma_inst *in = inst;

	if (in->relayed)
		vrdma_relay_remove(relay, in->vg);
	vrdma_guest_close(in->vg);
	pthread_mutex_lock(&relay_lock);
	if (--relay_users == 0) {
		vrdma_relay_stop(relay);
		relay = NULL;
	}
	pthread_mutex_unlock(&relay_lock);
	free(in);
}

static int vrdma_call(void *inst, uint32_t fn, const void *inp, size_t inlen, void *out,
		      size_t outmax, size_t *outlen)
{
	struct vrdma_inst *in = inst;
	int err = vrdma_dispatch(in->vg, fn, inp, inlen, out, outmax, outlen);

	/* HELLO names the doorbell the guest will kick: from now on the relay serves it. */
	if (!err && fn == VRDMA_FN_HELLO && !in->relayed) {
		struct vrdma_hello_in h;
		int fd;

		memcpy(&h, inp, VRDMA_HELLO_IN_V1_SIZE);	/* doorbell: in every version */
		if (h.doorbell) {
			err = vbd_guest_signal(in->g, le32toh(h.doorbell), VBUS_SIG_TO_HOST, &fd);
			if (!err)
				err = vrdma_relay_add(relay, in->vg, fd);
			in->relayed = !err;
			if (err)
				*outlen = 0;
		}
	}
	return err;
}

static int vrdma_show(void *inst, char *buf, size_t n)
{
	struct vrdma_inst *in = inst;
	struct vrdma_guest *vg = in->vg;
	int r;

	pthread_mutex_lock(&vg->lock);
	r = snprintf(buf, n, "{\"objects\":%u,\"pinned_bytes\":%llu,\"wqes\":%llu,\"cqes\":%llu,"
		     "\"relay_errors\":%llu}", vg->live, (unsigned long long)vg->pinned,
		     (unsigned long long)vg->n_wqe, (unsigned long long)vg->n_cqe,
		     (unsigned long long)vg->n_relay_errors);
	pthread_mutex_unlock(&vg->lock);
	return r;
}

/* The guest's objects and counters, then the relay's (shared by every guest of vrdma
 * devices): passes, sleeps, wake-ups, time spent spinning, work moved. */
static int vrdma_res(void *inst, const char *kind, bool json, char *buf, size_t n)
{
	struct vrdma_relay_stats st = { 0 };
	size_t len;
	int r = vrdma_guest_res(((struct vrdma_inst *)inst)->vg, kind, json, buf, n);

	if (r)
		return r;
	pthread_mutex_lock(&relay_lock);
	if (relay)
		vrdma_relay_get_stats(relay, &st);
	pthread_mutex_unlock(&relay_lock);
	len = strlen(buf);
	r = snprintf(buf + len, n - len, json ?
		     ",\"relay\":{\"passes\":%llu,\"sleeps\":%llu,\"wakeups\":%llu,"
		     "\"spin_us\":%llu,\"work\":%llu}" :
		     "  relay (all guests): passes %llu sleeps %llu wakeups %llu spin %llu us "
		     "work %llu\n", (unsigned long long)st.passes, (unsigned long long)st.sleeps,
		     (unsigned long long)st.wakeups, (unsigned long long)(st.spin_ns / 1000),
		     (unsigned long long)st.work);
	return r < 0 || (size_t)r >= n - len ? -ENOSPC : 0;
}

const struct vbd_class vbd_class_vrdma = {
	.name = VRDMA_CLASS_NAME,
	.dev_init = vrdma_init,
	.dev_fini = vrdma_fini,
	.open = vrdma_open,
	.close = vrdma_close,
	.call = vrdma_call,
	.show = vrdma_show,
	.res = vrdma_res,
	.gone = vrdma_gone,
};
