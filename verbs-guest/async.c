// SPDX-License-Identifier: MIT
/*
 * Asynchronous events. vbusd sends the real context's events (docs/vrdma.md, Events) as
 * bus events on the context's DEVOPEN handle; a thread of this library, started with the
 * first context, reads them from the bus connection and queues each on its context, whose
 * async_fd (an eventfd) becomes readable. ibv_get_async_event takes them from the queue.
 * A device removed from the bus, a bus shutting down and a dead vbusd become
 * IBV_EVENT_DEVICE_FATAL on every context concerned.
 */
#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <string.h>
#include <unistd.h>
#include <vbus/vrdma-kernel.h>
#include "vbg.h"

static pthread_once_t once = PTHREAD_ONCE_INIT;

/* Queue one event on ctx and make its async_fd readable. A device fatal event also marks
 * the context dead: posting then fails at once (post.c) instead of queueing work that no
 * relay will take. A context gets it once, as natively, though on the kernel backend both
 * the bus (DEV_REMOVED, a dead vbusd) and the module (its revoke) report the same end. */
static void push(struct vbg_context *ctx, uint32_t type, uint32_t handle, uint32_t port)
{
	uint64_t one = 1;

	if (type == IBV_EVENT_DEVICE_FATAL &&
	    __atomic_exchange_n(&ctx->dead, true, __ATOMIC_ACQ_REL))
		return;
	/* Before the program can see the event: its next GID query reads the table again. */
	if (type == IBV_EVENT_GID_CHANGE)
		vbg_gid_cache_stale(ctx);

	pthread_mutex_lock(&ctx->lock);
	if (ctx->nev == VBG_ASYNC_MAX) {	/* full: the oldest goes, as a bounded kernel queue */
		ctx->ev_head = (ctx->ev_head + 1) % VBG_ASYNC_MAX;
		ctx->nev--;
	}
	/* The fd is readable exactly while events are queued (its count is 1 then, 0 when the
	 * queue is empty; both change under ctx->lock): poll() saying readable means that
	 * ibv_get_async_event will not block, as natively. */
	if (!ctx->nev && write(ctx->vctx.context.async_fd, &one, sizeof(one)) != sizeof(one))
		vbg_dbg("async_fd: %m");
	ctx->ev[(ctx->ev_head + ctx->nev++) % VBG_ASYNC_MAX] =
		(struct vbg_async){ .type = type, .handle = handle, .port = port };
	/* A program blocked in ibv_get_cq_event wakes and gets EIO (cq.c), as on a device
	 * whose contexts are disassociated. */
	if (type == IBV_EVENT_DEVICE_FATAL)
		for (struct vbg_cq *cq = ctx->cqs; cq; cq = cq->ctx_next)
			if (cq->channel && write(cq->channel->ch.fd, &one, sizeof(one)) != sizeof(one))
				vbg_dbg("channel kick: %m");
	pthread_mutex_unlock(&ctx->lock);
}

static void dispatch(const struct vbus_event *ev)
{
	uint32_t type = le32toh(ev->type), h = le32toh(ev->handle);
	struct vrdma_event d;

	memcpy(&d, ev->data, sizeof(d));
	switch (type) {
	case VBUS_EV_DEVICE:
		vbg_for_each_context(ctx, if (ctx->handle == h)
			push(ctx, le32toh(ev->code), le32toh(d.handle), le32toh(d.port_num)));
		break;
	case VBUS_EV_DEV_REMOVED:
		vbg_for_each_context(ctx, if (ctx->handle == h)
			push(ctx, IBV_EVENT_DEVICE_FATAL, 0, 0));
		vbg_err("a vbus device was removed from the bus: its contexts are dead");
		break;
	case VBUS_EV_SHUTDOWN:
	case VBUS_EV_DISCONNECTED:
		vbg_for_each_context(ctx, push(ctx, IBV_EVENT_DEVICE_FATAL, 0, 0));
		vbg_err("the bus is gone (%s): every vbus context is dead",
			type == VBUS_EV_SHUTDOWN ? "vbusd shut down" : "connection lost");
		break;
	default:
		break;
	}
}

static void *event_thread(void *arg)
{
	struct vbus_conn *c = arg;
	struct vbus_event ev;

	for (;;) {
		struct pollfd p = { .fd = vbus_event_fd(c), .events = POLLIN };
		int n;

		if (poll(&p, 1, -1) < 0 && errno != EINTR)
			break;
		while ((n = vbus_next_event(c, &ev)) == 1) {
			dispatch(&ev);
			if (le32toh(ev.type) == VBUS_EV_DISCONNECTED)
				return NULL;
		}
		if (p.revents & (POLLHUP | POLLERR | POLLNVAL)) {
			/* the socket is closed: libvbus makes DISCONNECTED on the next take */
			if (vbus_next_event(c, &ev) == 1)
				dispatch(&ev);
			return NULL;
		}
	}
	return NULL;
}

static void start(void)
{
	struct vbus_conn *c = vbg_conn();
	pthread_attr_t a;
	pthread_t t;

	if (!c)
		return;
	pthread_attr_init(&a);
	pthread_attr_setdetachstate(&a, PTHREAD_CREATE_DETACHED);
	if (pthread_create(&t, &a, event_thread, c))
		vbg_err("no async event thread: ibv_get_async_event will not report events");
	else
		pthread_setname_np(t, "vbus-events");
	pthread_attr_destroy(&a);
}

void vbg_async_start(void)
{
	pthread_once(&once, start);
}

/* Kernel backend: the module queues the context's events (its objects', the port's, and
 * DEVICE_FATAL when vbusd dies or the device goes) on its descriptor; enum ib_event_type
 * has the values of enum ibv_event_type. */
static void *kernel_event_thread(void *arg)
{
	struct vbg_context *ctx = arg;
	int old;

	/* Stopped by pthread_cancel (vbg_async_kernel_stop), in its poll only: it never leaves
	 * ctx->lock held, and a context costs no descriptor for stopping it (a native one has
	 * two: the command and the async event descriptors; so has this one). */
	pthread_setcancelstate(PTHREAD_CANCEL_DISABLE, &old);
	for (;;) {
		struct pollfd p = { .fd = ctx->kfd, .events = POLLIN };
		struct vbk_event ev[16];
		ssize_t n;
		int r;

		pthread_setcancelstate(PTHREAD_CANCEL_ENABLE, &old);
		r = poll(&p, 1, -1);
		pthread_setcancelstate(PTHREAD_CANCEL_DISABLE, &old);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			break;
		}
		n = read(ctx->kfd, ev, sizeof(ev));
		if (n < 0 && errno != EAGAIN && errno != EINTR)
			break;
		for (ssize_t k = 0; n > 0 && k < n / (ssize_t)sizeof(ev[0]); k++)
			push(ctx, ev[k].type, ev[k].handle, ev[k].port);
	}
	return NULL;
}

int vbg_async_kernel_start(struct vbg_context *ctx)
{
	int fl = fcntl(ctx->kfd, F_GETFL);

	if (fl < 0 || fcntl(ctx->kfd, F_SETFL, fl | O_NONBLOCK) < 0)
		return -errno;
	if (pthread_create(&ctx->kthread, NULL, kernel_event_thread, ctx))
		return -EAGAIN;
	ctx->kthread_on = true;
	pthread_setname_np(ctx->kthread, "vbus-kevents");
	return 0;
}

void vbg_async_kernel_stop(struct vbg_context *ctx)
{
	if (!ctx->kthread_on)
		return;
	pthread_cancel(ctx->kthread);
	pthread_join(ctx->kthread, NULL);
	ctx->kthread_on = false;
}

/* The element of event e, or false if its object is gone. Under ctx->lock. */
static bool element(struct vbg_context *ctx, const struct vbg_async *e, struct ibv_async_event *ev)
{
	switch (vrdma_event_kind(e->type)) {
	case VRDMA_EVENT_CQ:
		for (struct vbg_cq *cq = ctx->cqs; cq; cq = cq->ctx_next)
			if (cq->handle == e->handle) {
				ev->element.cq = &cq->cq;
				return true;
			}
		return false;
	case VRDMA_EVENT_QP: {
		struct vbg_qp *qp = vbg_qp_lookup(ctx, e->handle);

		if (!qp)
			return false;
		ev->element.qp = &qp->qpx.qp_base;
		return true;
	}
	case VRDMA_EVENT_SRQ: {
		struct vbg_srq *srq = vbg_srq_lookup(ctx, e->handle);

		if (!srq)
			return false;
		ev->element.srq = &srq->srq;
		return true;
	}
	case VRDMA_EVENT_PORT:
		ev->element.port_num = (int)e->port;
		return true;
	case VRDMA_EVENT_DEVICE:
		return true;
	default:
		return false;
	}
}

VBG_EXPORT int ibv_get_async_event(struct ibv_context *c, struct ibv_async_event *ev)
{
	struct vbg_context *ctx;

	if (!vbg_is_context(c))
		return vbg_real.get_async_event(c, ev);
	ctx = to_vctx(c);
	for (;;) {
		struct pollfd p = { .fd = c->async_fd, .events = POLLIN };
		bool got = false;
		uint64_t v;
		int fl;

		pthread_mutex_lock(&ctx->lock);
		while (ctx->nev && !got) {
			struct vbg_async e = ctx->ev[ctx->ev_head];

			ctx->ev_head = (ctx->ev_head + 1) % VBG_ASYNC_MAX;
			ctx->nev--;
			memset(ev, 0, sizeof(*ev));
			ev->event_type = e.type;
			got = element(ctx, &e, ev);	/* an event of a destroyed object is dropped */
			/* The last one taken: the fd's count (1, push()) goes back to 0. */
			if (!ctx->nev && read(c->async_fd, &v, sizeof(v)) != sizeof(v))
				vbg_dbg("async_fd: %m");
		}
		pthread_mutex_unlock(&ctx->lock);
		if (got)
			return 0;
		/* Nothing queued: wait for the fd without reading it (push() and the reads
		 * above keep its count), unless the program made it non-blocking. */
		fl = fcntl(c->async_fd, F_GETFL);
		if (fl >= 0 && (fl & O_NONBLOCK)) {
			errno = EAGAIN;
			return -1;
		}
		if (poll(&p, 1, -1) < 0 && errno != EINTR)
			return -1;
	}
}
