// SPDX-License-Identifier: MIT
/*
 * Passthrough over a relay-backend parent (docs/nesting.md, "Passthrough on the relay
 * backend"). A guest's open of a passthrough device asks the level below for a child
 * connection of our own attachment (VBUS_OP_CHILD, with the device's limits) and opens the
 * device on it. Its vrdma calls are forwarded there, each region and signal it names handed
 * down (DEVSHM, DEVSIG: its own memfd and eventfd) the first time, so that the relay below
 * reads the guest's rings and doorbells itself: we are on its control path only. The
 * connection's events come back to the guest; its end (a revocation below, the device
 * gone) is the guest's DEV_REMOVED. Handles and keys pass unchanged: they are the level
 * below's, and whatever the guest sends reaches only what that child connection holds.
 */
#include <dlfcn.h>
#include <endian.h>
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>
#include <vbus/libvbus.h>
#include <vbus/shm.h>
#include <vbus/verbs-nest.h>
#include <vbus/vrdma.h>
#include "vbusd.h"
#include "class_vrdma_fwd.h"

/* A region or signal of the guest, handed down: its id here and below. */
struct fwd_id {
	int type;			/* VBD_REGION or VBD_SIGNAL */
	uint32_t id, below;
};

struct vbd_fwd {
	struct vbd_guest *g;
	uint32_t handle;		/* the guest's DEVOPEN handle here */
	struct vbus_conn *conn;		/* the child connection below */
	uint32_t below;			/* the device's handle on it */
	struct fwd_id *ids;		/* under the guest's lock, as its calls are */
	uint32_t nids, capids;
	uint32_t nregions, nsignals;	/* of ids (atomic: `guest show` reads them) */
	uint64_t calls;			/* atomic */
	bool dead;			/* the connection below ended */
	bool cancelled;			/* ended by us (vbd_fwd_cancel): no word to the guest */
	int stop;			/* eventfd: the events thread ends */
	int wake;			/* eventfd: a request may have queued events */
	pthread_t thread;
};

static struct fwd_id *fwd_find(struct vbd_fwd *f, int type, uint32_t id)
{
	for (uint32_t i = 0; i < f->nids; i++)
		if (f->ids[i].type == type && f->ids[i].id == id)
			return &f->ids[i];
	return NULL;
}

static void fwd_put(struct vbd_fwd *f, const struct fwd_id *x)
{
	if (x->type == VBD_REGION)
		vbd_guest_region_put(f->g, x->id);
	else
		vbd_guest_signal_put(f->g, x->id);
}

/* The guest's region or signal `id` as the level below names it, handed down the first
 * time (it stays held here until the guest revokes it: vbd_fwd_release). 0 stays 0. */
static int fwd_id(struct vbd_fwd *f, int type, uint32_t dir, uint32_t id, uint32_t *below)
{
	const struct fwd_id *x = fwd_find(f, type, id);
	const uint64_t *pages;
	uint64_t size;
	void *base;
	int r, fd;

	*below = 0;
	if (!id || x) {
		*below = x ? x->below : 0;
		return 0;
	}
	if (f->nids == f->capids) {
		uint32_t n = f->capids ? f->capids * 2 : 16;
		struct fwd_id *ids = realloc(f->ids, n * sizeof(*ids));

		if (!ids)
			return -ENOMEM;
		f->ids = ids;
		f->capids = n;
	}
	if (type == VBD_REGION) {
		r = vbd_guest_region(f->g, id, &fd, &base, &size, &pages);
		if (r)
			return r;
		/* a VM's region is pages of its RAM, no memfd of its own to hand down */
		r = pages ? -EOPNOTSUPP : vbus_devshm(f->conn, fd, size, below);
	} else {
		r = vbd_guest_signal(f->g, id, dir, &fd);
		if (r)
			return r;
		r = vbus_devsig(f->conn, fd, dir, below);
	}
	f->ids[f->nids] = (struct fwd_id){ .type = type, .id = id, .below = *below };
	if (r) {
		fwd_put(f, &f->ids[f->nids]);
		return r;
	}
	f->nids++;
	__atomic_add_fetch(type == VBD_REGION ? &f->nregions : &f->nsignals, 1, __ATOMIC_RELAXED);
	return 0;
}

/* How long the level below may take to answer each step of an open (seconds). */
#define FWD_SETUP_S 60

#define FWD_LE32(p, off) ((__le32 *)((uint8_t *)(p) + (off)))

/* Rename the id at byte `off` of buf (when the payload holds it). */
static int fwd_field(struct vbd_fwd *f, void *buf, size_t len, size_t off, int type,
		     uint32_t dir)
{
	uint32_t below;
	int r;

	if (len < off + 4)
		return 0;	/* too short: the level below refuses it */
	r = fwd_id(f, type, dir, le32toh(*FWD_LE32(buf, off)), &below);
	if (!r)
		*FWD_LE32(buf, off) = htole32(below);
	return r;
}

/* The ids of a call's payload (in buf, a copy), renamed for the level below. */
static int fwd_rename(struct vbd_fwd *f, uint32_t fn, void *buf, size_t len)
{
	const struct vrdma_reg_mr_in *mr = buf;
	int r;

	switch (fn) {
	case VRDMA_FN_HELLO:
		return fwd_field(f, buf, len, offsetof(struct vrdma_hello_in, doorbell),
				 VBD_SIGNAL, VBUS_SIG_TO_HOST);
	case VRDMA_FN_CREATE_CQ:
		r = fwd_field(f, buf, len, offsetof(struct vrdma_create_cq_in, shm), VBD_REGION, 0);
		return r ? r : fwd_field(f, buf, len, offsetof(struct vrdma_create_cq_in, channel),
					 VBD_SIGNAL, VBUS_SIG_TO_GUEST);
	case VRDMA_FN_RESIZE_CQ:
		return fwd_field(f, buf, len, offsetof(struct vrdma_resize_cq_in, shm), VBD_REGION, 0);
	case VRDMA_FN_CREATE_QP:
		return fwd_field(f, buf, len, offsetof(struct vrdma_create_qp_in, shm), VBD_REGION, 0);
	case VRDMA_FN_CREATE_SRQ:
		return fwd_field(f, buf, len, offsetof(struct vrdma_create_srq_in, shm), VBD_REGION, 0);
	case VRDMA_FN_REG_MR:
		if (len < sizeof(*mr) || le32toh(mr->npieces) > VRDMA_MR_MAX_PIECES ||
		    len != sizeof(*mr) + le32toh(mr->npieces) * sizeof(struct vrdma_mr_piece))
			return 0;	/* malformed: the level below refuses it */
		for (uint32_t i = 0; i < le32toh(mr->npieces); i++) {
			r = fwd_field(f, buf, len, sizeof(*mr) + i * sizeof(struct vrdma_mr_piece) +
				      offsetof(struct vrdma_mr_piece, shm), VBD_REGION, 0);
			if (r)
				return r;
		}
		return 0;
	default:
		return 0;	/* no region or signal in it */
	}
}

/* Events that came while a request waited for its answer are queued in the connection, with
 * its socket then empty: the events thread looks now. */
static void fwd_wake(struct vbd_fwd *f)
{
	uint64_t one = 1;

	if (write(f->wake, &one, sizeof(one)) != sizeof(one))
		vbd_dbg("passthrough: events thread not woken: %s", strerror(errno));
}

int vbd_fwd_call(struct vbd_fwd *f, uint32_t fn, const void *in, size_t inlen, void *out,
		 size_t outmax, size_t *outlen)
{
	uint32_t flags = fn == VRDMA_FN_REG_MR || fn == VRDMA_FN_DEREG_MR ? VBUS_CALL_SLOW : 0;
	void *buf = NULL;
	int r;

	*outlen = 0;
	if (__atomic_load_n(&f->dead, __ATOMIC_ACQUIRE))
		return -EIO;	/* revoked below, as the kernel backend's descriptor answers */
	__atomic_add_fetch(&f->calls, 1, __ATOMIC_RELAXED);
	if (inlen) {
		buf = malloc(inlen);
		if (!buf)
			return -ENOMEM;
		memcpy(buf, in, inlen);
		r = fwd_rename(f, fn, buf, inlen);
		if (r) {
			free(buf);
			return r;
		}
	}
	r = vbus_devcall_flags(f->conn, f->below, fn, flags, buf, inlen, out, outmax, outlen);
	fwd_wake(f);
	free(buf);
	if (r == -ENOTCONN)
		r = -EIO;
	return r;
}

int vbd_fwd_release(struct vbd_fwd *f, int type, uint32_t id)
{
	struct fwd_id *x = fwd_find(f, type, id);
	int r;

	if (!x)
		return -ENOENT;
	r = type == VBD_REGION ? vbus_shm_revoke(f->conn, x->below) :
	    vbus_sig_revoke(f->conn, x->below);
	fwd_wake(f);
	if (r == -EBUSY)
		return r;	/* an object below still uses it */
	fwd_put(f, x);		/* revoked below, or the connection is gone with it */
	__atomic_sub_fetch(type == VBD_REGION ? &f->nregions : &f->nsignals, 1, __ATOMIC_RELAXED);
	*x = f->ids[--f->nids];
	return 0;
}

int vbd_fwd_child(struct vbd_fwd *f, const struct vbus_child_in *in, int *fd,
		  struct vbus_child_out *o)
{
	if (__atomic_load_n(&f->dead, __ATOMIC_ACQUIRE))
		return -EIO;
	int r;

	/* Made below, of our child connection's open: it is checked and charged there. */
	r = vbus_child(f->conn, f->below, in, fd, o);
	fwd_wake(f);
	return r;
}

/* The child connection's events, to the guest; its end, once, as DEV_REMOVED. */
static void *fwd_events(void *arg)
{
	struct vbd_fwd *f = arg;
	struct vbus_event ev;

	for (;;) {
		struct pollfd p[3] = { { .fd = f->stop, .events = POLLIN },
				       { .fd = f->wake, .events = POLLIN },
				       { .fd = vbus_event_fd(f->conn), .events = POLLIN } };
		uint64_t n;

		poll(p, f->dead ? 2 : 3, -1);
		if (p[0].revents)
			break;
		if (p[1].revents && read(f->wake, &n, sizeof(n)) != sizeof(n))
			vbd_dbg("passthrough: %s", strerror(errno));
		while (!f->dead && vbus_next_event(f->conn, &ev) == 1) {
			uint32_t type = le32toh(ev.type);

			if (type == VBUS_EV_DEVICE && le32toh(ev.handle) == f->below) {
				vbd_guest_send_event(f->g, VBUS_EV_DEVICE, f->handle, le32toh(ev.code),
						     ev.data, sizeof(ev.data));
			} else if ((type == VBUS_EV_DEV_REMOVED && le32toh(ev.handle) == f->below) ||
				   type == VBUS_EV_SHUTDOWN || type == VBUS_EV_DISCONNECTED) {
				__atomic_store_n(&f->dead, true, __ATOMIC_RELEASE);
				if (__atomic_load_n(&f->cancelled, __ATOMIC_ACQUIRE))
					continue;	/* the instance is going: whoever ends it says so */
				vbd_info("guest %u: its passthrough connection below ended: "
					 "the device is gone for it", f->g->id);
				vbd_guest_send_event(f->g, VBUS_EV_DEV_REMOVED, f->handle, 0, NULL, 0);
			}
		}
	}
	return NULL;
}

int vbd_fwd_open(struct vbd_fwd **out, struct ibv_context *nest_ctx, const char *devname,
		 struct vbd_guest *g, uint32_t handle, const struct vbus_verbs_child_req *req,
		 const char *label)
{
	vbus_verbs_child2_fn *child = (vbus_verbs_child2_fn *)dlsym(RTLD_DEFAULT,
								   VBUS_VERBS_CHILD2);
	struct vbd_fwd *f;
	char bus[VBUS_NAME_MAX], dev[VBUS_NAME_MAX];
	int r, fd;

	if (!child)
		return -EOPNOTSUPP;	/* an older guest library */
	f = calloc(1, sizeof(*f));
	if (!f)
		return -ENOMEM;
	f->g = g;
	f->handle = handle;
	f->stop = f->wake = -1;
	r = child(nest_ctx, req, &fd, bus, dev, sizeof(bus));
	if (r)
		goto err_free;
	if (!dev[0])	/* a bus below of stop 33 names no device: ours has its name */
		snprintf(dev, sizeof(dev), "%s", devname);
	/* The open runs under the model's lock: a level below that does not answer fails it
	 * rather than stalling us for good (the calls after it may take their time). */
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &(struct timeval){ .tv_sec = FWD_SETUP_S },
		   sizeof(struct timeval));
	r = vbus_connect_fd(fd, bus, &f->conn);
	if (r)
		goto err_free;
	r = vbus_callchan_open(f->conn, 8);
	if (r)
		vbd_dbg("guest %u: no call channel below (%s): calls go over the socket", g->id,
			strerror(-r));
	r = vbus_devopen_label(f->conn, dev, VRDMA_CLASS_NAME, label, &f->below);
	if (r)
		goto err_conn;
	setsockopt(vbus_event_fd(f->conn), SOL_SOCKET, SO_RCVTIMEO, &(struct timeval){ 0 },
		   sizeof(struct timeval));
	f->stop = eventfd(0, EFD_CLOEXEC);
	f->wake = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (f->stop < 0 || f->wake < 0) {
		r = -errno;
		goto err_conn;
	}
	r = -pthread_create(&f->thread, NULL, fwd_events, f);
	if (r)
		goto err_conn;
	vbd_dbg("guest %u: passthrough: child connection below, guest %u there, handle 0x%x",
		g->id, le32toh(vbus_hello_info(f->conn)->guest_id), f->below);
	*out = f;
	return 0;

err_conn:
	if (f->stop >= 0)
		close(f->stop);
	if (f->wake >= 0)
		close(f->wake);
	vbus_disconnect(f->conn);
err_free:
	free(f);
	return r;
}

/* Ending the child connection frees below all it held, and its own children. */
void vbd_fwd_close(struct vbd_fwd *f)
{
	uint64_t one = 1;

	if (write(f->stop, &one, sizeof(one)) != sizeof(one))
		vbd_err("passthrough: cannot stop the events thread: %s", strerror(errno));
	pthread_join(f->thread, NULL);
	close(f->stop);
	close(f->wake);
	vbus_disconnect(f->conn);
	for (uint32_t i = 0; i < f->nids; i++)
		fwd_put(f, &f->ids[i]);
	free(f->ids);
	free(f);
}

void vbd_fwd_cancel(struct vbd_fwd *f)
{
	__atomic_store_n(&f->cancelled, true, __ATOMIC_RELEASE);
	/* the connection's socket (libvbus polls it for events) */
	shutdown(vbus_event_fd(f->conn), SHUT_RDWR);
}

static uint32_t fwd_count(const struct vbd_fwd *f, int type)
{
	return __atomic_load_n(type == VBD_REGION ? &f->nregions : &f->nsignals,
			       __ATOMIC_RELAXED);
}

int vbd_fwd_show(struct vbd_fwd *f, char *buf, size_t n)
{
	return snprintf(buf, n, "{\"backend\":\"relay\",\"mode\":\"passthrough\",\"below\":"
			"{\"guest\":%u,\"handle\":%u},\"regions\":%u,\"signals\":%u,\"calls\":%llu,"
			"\"dead\":%s}", le32toh(vbus_hello_info(f->conn)->guest_id), f->below,
			fwd_count(f, VBD_REGION), fwd_count(f, VBD_SIGNAL),
			(unsigned long long)__atomic_load_n(&f->calls, __ATOMIC_RELAXED),
			__atomic_load_n(&f->dead, __ATOMIC_ACQUIRE) ? "true" : "false");
}

int vbd_fwd_res(struct vbd_fwd *f, bool json, char *buf, size_t n)
{
	int r = snprintf(buf, n, json ? "\"backend\":\"relay\",\"mode\":\"passthrough\","
			 "\"below\":{\"guest\":%u,\"handle\":%u},\"counters\":{\"regions\":%u,"
			 "\"signals\":%u,\"calls\":%llu},\"objects\":[]" :
			 " backend relay passthrough: guest %u handle 0x%x below holds its objects;"
			 " regions %u signals %u calls %llu\n",
			 le32toh(vbus_hello_info(f->conn)->guest_id), f->below,
			 fwd_count(f, VBD_REGION), fwd_count(f, VBD_SIGNAL),
			 (unsigned long long)__atomic_load_n(&f->calls, __ATOMIC_RELAXED));

	return r < 0 || (size_t)r >= n ? -ENOSPC : 0;
}
