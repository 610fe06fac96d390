// SPDX-License-Identifier: MIT
/*
 * Completion queues and completion channels. A CQ's ring lives in its own DEVSHM region;
 * the relay writes completions into it and the program polls them with no system call
 * (poll.c). A channel is an eventfd the relay kicks when an armed CQ gets a completion.
 */
#include <endian.h>
#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>
#include "vbg.h"

VBG_EXPORT struct ibv_comp_channel *ibv_create_comp_channel(struct ibv_context *c)
{
	struct vbus_conn *conn;
	struct vbg_channel *ch;
	int err;

	if (!vbg_is_context(c))
		return vbg_real.create_comp_channel(c);
	conn = vbg_conn();
	ch = calloc(1, sizeof(*ch));
	if (!ch || !conn) {
		free(ch);
		errno = ENOMEM;
		return NULL;
	}
	ch->ch.context = c;
	ch->ch.fd = eventfd(0, EFD_CLOEXEC);
	if (ch->ch.fd < 0) {
		err = -errno;
		goto err_free;
	}
	/* The kernel backend signals the eventfd itself (CREATE_CQ names it). */
	if (to_vctx(c)->kfd < 0) {
		err = vbus_devsig(conn, ch->ch.fd, VBUS_SIG_TO_GUEST, &ch->sig);
		if (err)
			goto err_close;
	}
	return &ch->ch;

err_close:
	close(ch->ch.fd);
err_free:
	free(ch);
	errno = -err;
	return NULL;
}

VBG_EXPORT int ibv_destroy_comp_channel(struct ibv_comp_channel *c)
{
	struct vbg_channel *ch = (struct vbg_channel *)c;
	struct vbus_conn *conn;

	if (!vbg_is_context(c->context))
		return vbg_real.destroy_comp_channel(c);
	if (__atomic_load_n(&c->refcnt, __ATOMIC_ACQUIRE))
		return EBUSY;
	conn = vbg_conn();
	if (conn && ch->sig)
		vbus_sig_revoke(conn, ch->sig);
	close(c->fd);
	free(ch);
	return 0;
}

VBG_EXPORT struct ibv_cq *ibv_create_cq(struct ibv_context *c, int cqe, void *cq_context,
					struct ibv_comp_channel *channel, int comp_vector)
{
	struct vbg_cq *cq;

	if (!vbg_is_context(c))
		return vbg_real.create_cq(c, cqe, cq_context, channel, comp_vector);
	cq = vbg_cq_create(c, cqe, cq_context, channel, comp_vector);
	return cq ? &cq->cq : NULL;
}

struct vbg_cq *vbg_cq_create(struct ibv_context *c, int cqe, void *cq_context,
			     struct ibv_comp_channel *channel, int comp_vector)
{
	struct vbg_context *ctx = to_vctx(c);
	struct vrdma_create_cq_in in = { 0 };
	struct vrdma_create_cq_out o;
	struct vbg_cq *cq;
	uint32_t entries;
	int err;

	if (cqe < 1 || cqe > (int)le32toh(ctx->dev_attr.max_cqe) || comp_vector < 0 ||
	    comp_vector >= c->num_comp_vectors ||
	    (channel && channel->context != c)) {
		errno = EINVAL;
		return NULL;
	}
	cq = calloc(1, sizeof(*cq));
	if (!cq) {
		errno = ENOMEM;
		return NULL;
	}
	/* Devices round the CQ up (rxe: to a power of two, minus one): twice the request
	 * always holds what the host's real CQ can. */
	entries = vbg_pow2(2 * ((uint32_t)cqe + 1));
	err = vbg_shm_new(ctx, sizeof(struct vrdma_ring) + (size_t)entries * sizeof(struct vrdma_cqe),
			  "vbus-cq", &cq->shm);
	if (err)
		goto err_free;
	in.cqe = htole32((uint32_t)cqe);
	in.shm = htole32(cq->shm.id);
	in.offset = htole64(vbg_shm_off(&cq->shm, 0));
	in.entries = htole32(entries);
	in.comp_vector = htole32((uint32_t)comp_vector);
	/* The relay kicks a DEVSIG signal; the module an eventfd of ours (its number + 1). */
	if (channel)
		in.channel = htole32(ctx->kfd >= 0 ? (uint32_t)channel->fd + 1 :
				     ((struct vbg_channel *)channel)->sig);
	err = vbg_call(ctx, VRDMA_FN_CREATE_CQ, &in, sizeof(in), &o, sizeof(o));
	if (err)
		goto err_shm;
	cq->handle = le32toh(o.handle);
	cq->q.ring = cq->shm.base;
	cq->q.slots = (uint8_t *)(cq->q.ring + 1);
	cq->q.entries = entries;
	cq->q.stride = sizeof(struct vrdma_cqe);
	pthread_spin_init(&cq->lock, PTHREAD_PROCESS_PRIVATE);
	cq->cq.context = c;
	cq->cq.channel = channel;
	cq->cq.cq_context = cq_context;
	cq->cq.handle = cq->handle;
	cq->cq.cqe = (int)le32toh(o.cqe);
	pthread_mutex_init(&cq->cq.mutex, NULL);
	pthread_cond_init(&cq->cq.cond, NULL);
	pthread_mutex_lock(&ctx->lock);
	cq->ctx_next = ctx->cqs;
	ctx->cqs = cq;
	if (channel) {
		cq->channel = (struct vbg_channel *)channel;
		cq->chan_next = cq->channel->cqs;
		cq->channel->cqs = cq;
		__atomic_add_fetch(&channel->refcnt, 1, __ATOMIC_RELEASE);
	}
	pthread_mutex_unlock(&ctx->lock);
	return cq;

err_shm:
	vbg_shm_free(&cq->shm);
err_free:
	free(cq);
	errno = -err;
	return NULL;
}

VBG_EXPORT int ibv_resize_cq(struct ibv_cq *cq, int cqe)
{
	if (!vbg_is_context(cq->context))
		return vbg_real.resize_cq(cq, cqe);
	return vbg_resize_cq(to_vcq(cq), cqe);
}

/*
 * A new ring for the resized real CQ. Nothing may read the ring meanwhile: the context
 * lock keeps arming and events away, the CQ's lock polling. The host moves the completions
 * not yet polled to the start of the new ring, so none is lost; the old region goes.
 * Positive errno.
 */
int vbg_resize_cq(struct vbg_cq *cq, int cqe)
{
	struct vbg_context *ctx = to_vctx(cq->cq.context);
	struct vrdma_resize_cq_in in = { 0 };
	struct vrdma_create_cq_out o;
	struct vbg_shm shm, old;
	uint32_t entries;
	int err;

	if (cqe < 1 || cqe > (int)le32toh(ctx->dev_attr.max_cqe))
		return EINVAL;
	entries = vbg_pow2(2 * ((uint32_t)cqe + 1));
	err = -vbg_shm_new(ctx, sizeof(struct vrdma_ring) + (size_t)entries * sizeof(struct vrdma_cqe),
			   "vbus-cq", &shm);
	if (err)
		return err;
	in.handle = htole32(cq->handle);
	in.cqe = htole32((uint32_t)cqe);
	in.shm = htole32(shm.id);
	in.offset = htole64(vbg_shm_off(&shm, 0));
	in.entries = htole32(entries);
	pthread_mutex_lock(&ctx->lock);
	pthread_spin_lock(&cq->lock);
	vbg_cq_publish(cq);	/* the host copies from our published consumer index on */
	err = -vbg_call(ctx, VRDMA_FN_RESIZE_CQ, &in, sizeof(in), &o, sizeof(o));
	if (!err) {
		old = cq->shm;
		cq->shm = shm;
		cq->q.ring = shm.base;
		cq->q.slots = (uint8_t *)(cq->q.ring + 1);
		cq->q.entries = entries;
		cq->cons = 0;
		cq->cq.cqe = (int)le32toh(o.cqe);
		shm = old;
	}
	pthread_spin_unlock(&cq->lock);
	pthread_mutex_unlock(&ctx->lock);
	vbg_shm_free(&shm);	/* the old ring, or the new one if the host said no */
	return err;
}

VBG_EXPORT int ibv_destroy_cq(struct ibv_cq *c)
{
	struct vbg_cq *cq = to_vcq(c);
	struct vbg_context *ctx;
	struct vrdma_handle h;
	int err;

	if (!vbg_is_context(c->context))
		return vbg_real.destroy_cq(c);
	ctx = to_vctx(c->context);
	h = (struct vrdma_handle){ .handle = htole32(cq->handle) };
	err = vbg_call(ctx, VRDMA_FN_DESTROY_CQ, &h, sizeof(h), NULL, 0);
	if (err)
		return -err;
	pthread_mutex_lock(&ctx->lock);
	for (struct vbg_cq **pp = &ctx->cqs; *pp; pp = &(*pp)->ctx_next)
		if (*pp == cq) {
			*pp = cq->ctx_next;
			break;
		}
	if (cq->channel) {
		for (struct vbg_cq **pp = &cq->channel->cqs; *pp; pp = &(*pp)->chan_next)
			if (*pp == cq) {
				*pp = cq->chan_next;
				break;
			}
		__atomic_sub_fetch(&cq->channel->ch.refcnt, 1, __ATOMIC_RELEASE);
	}
	pthread_mutex_unlock(&ctx->lock);
	/* As libibverbs: wait until every event reported has been acknowledged. */
	pthread_mutex_lock(&c->mutex);
	while (c->comp_events_completed != cq->events_reported)
		pthread_cond_wait(&c->cond, &c->mutex);
	pthread_mutex_unlock(&c->mutex);
	vbg_shm_free(&cq->shm);
	pthread_spin_destroy(&cq->lock);
	free(cq);
	return 0;
}

/* Arming and taking events run under the context lock, so that a CQ's state is one of:
 * not armed; armed (ring->armed set); fired (armed, ring->armed cleared by the relay, its
 * kick on the channel); and, if the program arms again before taking the event, pending:
 * the event is kept, as a native provider keeps a queued event across re-arming. */
int vbg_req_notify_cq(struct ibv_cq *c, int solicited_only)
{
	struct vbg_cq *cq = to_vcq(c);
	struct vbg_context *ctx = to_vctx(c->context);

	if (!cq->channel)
		return 0;	/* as natively: nothing will ever be reported */
	pthread_mutex_lock(&ctx->lock);
	if (cq->armed && !__atomic_load_n(&cq->q.ring->armed, __ATOMIC_ACQUIRE))
		cq->pending = true;
	cq->armed = true;
	/* A seq_cst read-modify-write (a full barrier): pairs with the relay's release store
	 * of prod followed by its seq_cst exchange of armed; a completion after this point
	 * fires the channel. */
	__atomic_exchange_n(&cq->q.ring->armed, htole32(solicited_only ? VRDMA_ARMED_SOLICITED : VRDMA_ARMED_ANY), __ATOMIC_SEQ_CST);
	/* The kernel backend arms the real CQ now; its handler takes ring->armed back. */
	if (ctx->kfd >= 0) {
		struct vrdma_arm_cq_in a = { .handle = htole32(cq->handle),
					     .solicited_only = htole32(solicited_only ? 1 : 0) };
		int err = vbg_call(ctx, VRDMA_FN_ARM_CQ, &a, sizeof(a), NULL, 0);

		pthread_mutex_unlock(&ctx->lock);
		return -err;
	}
	pthread_mutex_unlock(&ctx->lock);
	return 0;
}

/* A CQ of the channel with an event to report, or NULL; *more if another one has one
 * too. Under ctx->lock. */
static struct vbg_cq *fired(struct vbg_channel *ch, bool *more)
{
	struct vbg_cq *found = NULL;

	*more = false;
	for (struct vbg_cq *cq = ch->cqs; cq; cq = cq->chan_next) {
		bool ev = cq->pending ||
			  (cq->armed && !__atomic_load_n(&cq->q.ring->armed, __ATOMIC_ACQUIRE));

		if (!ev)
			continue;
		if (found) {
			*more = true;
			break;
		}
		found = cq;
	}
	if (found) {
		if (found->pending)
			found->pending = false;	/* still armed: ring->armed was set again */
		else
			found->armed = false;
	}
	return found;
}

VBG_EXPORT int ibv_get_cq_event(struct ibv_comp_channel *c, struct ibv_cq **out, void **cq_ctx)
{
	struct vbg_channel *ch = (struct vbg_channel *)c;
	struct vbg_context *ctx;

	if (!vbg_is_context(c->context))
		return vbg_real.get_cq_event(c, out, cq_ctx);
	ctx = to_vctx(c->context);
	for (;;) {
		bool dead = __atomic_load_n(&ctx->dead, __ATOMIC_ACQUIRE);
		struct vbg_cq *cq;
		uint64_t v;
		bool more;

		/* Blocks unless the program made the fd non-blocking (then EAGAIN). A dead
		 * context's events already reported are still taken, then EIO. */
		if (!dead && read(c->fd, &v, sizeof(v)) != sizeof(v))
			return -1;
		pthread_mutex_lock(&ctx->lock);
		cq = fired(ch, &more);
		if (cq) {	/* counted before the CQ can be destroyed (it waits for acks) */
			*out = &cq->cq;
			*cq_ctx = cq->cq.cq_context;
			pthread_mutex_lock(&cq->cq.mutex);
			cq->events_reported++;
			pthread_mutex_unlock(&cq->cq.mutex);
		}
		pthread_mutex_unlock(&ctx->lock);
		if (more) {	/* keep the fd readable for the next one */
			v = 1;
			if (write(c->fd, &v, sizeof(v)) != sizeof(v))
				vbg_dbg("channel re-kick: %m");
		}
		if (cq)
			return 0;
		if (dead || __atomic_load_n(&ctx->dead, __ATOMIC_ACQUIRE)) {
			errno = EIO;
			return -1;
		}
		/* a kick for a CQ destroyed since, or re-armed: wait for the next one */
	}
}
