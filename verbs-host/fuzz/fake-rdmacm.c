// SPDX-License-Identifier: MIT
/*
 * fake-rdmacm: a pretend librdmacm for fuzz-cm (fake-rdmacm.h), and the vbusd functions
 * class_vrdma_cm.c calls (the guest's signals, the QPs it owns, the log). IDs and channels
 * are counted so that the fuzzer can check that the CM frees all of them; the events the
 * fuzzer makes go through the CM's own thread, as real ones do.
 */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>
#include "fake-rdmacm.h"
#include "vbusd.h"
#include "vrdma/vrdma.h"

bool fr_fail_next;

struct fr_id {
	struct rdma_cm_id id;		/* first */
	struct fr_id *next;
};

struct fr_ev {
	struct rdma_cm_event ev;	/* first */
	uint8_t priv[256];
	struct fr_ev *next;
};

static pthread_mutex_t fr_lock = PTHREAD_MUTEX_INITIALIZER;
static struct fr_id *ids;
static struct fr_ev *queue;		/* events not yet taken, oldest first */
static int n_ids, n_channels, n_unacked;
static struct ibv_device fr_dev = { .name = FR_DEV_NAME };
static struct ibv_context fr_ctx = { .device = &fr_dev };
static int sig_fds[64];
static int n_sig_fds;

static __attribute__((noreturn)) void broken(const char *what)
{
	fprintf(stderr, "fuzz-cm: broken promise: %s\n", what);
	abort();
}

static int fail_once(void)
{
	if (!fr_fail_next)
		return 0;
	fr_fail_next = false;
	errno = ENOMEM;
	return -1;
}

static bool live(struct rdma_cm_id *id)
{
	for (struct fr_id *f = ids; f; f = f->next)
		if (&f->id == id)
			return true;
	return false;
}

/* Every call on an ID must name a live one. */
static void check_id(struct rdma_cm_id *id, const char *fn)
{
	pthread_mutex_lock(&fr_lock);
	if (!live(id)) {
		fprintf(stderr, "fuzz-cm: %s on an ID that is not alive\n", fn);
		broken("a CM call on a dead ID");
	}
	pthread_mutex_unlock(&fr_lock);
}

static struct fr_id *id_alloc(struct rdma_event_channel *ch, void *ctx)
{
	struct fr_id *f = calloc(1, sizeof(*f));

	if (!f)
		abort();
	f->id.channel = ch;
	f->id.context = ctx;
	f->id.ps = RDMA_PS_TCP;
	f->next = ids;
	ids = f;
	n_ids++;
	return f;
}

int fr_live_ids(void) { return n_ids; }
int fr_live_channels(void) { return n_channels; }
int fr_unacked(void) { return n_unacked; }

struct rdma_cm_id *fr_nth_id(unsigned int k)
{
	struct fr_id *f;

	if (!n_ids)
		return NULL;
	k %= (unsigned int)n_ids;
	for (f = ids; k--; f = f->next)
		;
	return &f->id;
}

void fr_event(struct rdma_cm_id *id, enum rdma_cm_event_type type, int status,
	      const uint8_t *priv, uint8_t priv_len)
{
	struct fr_ev *e = calloc(1, sizeof(*e)), **pp;
	struct timespec t0, t;
	uint64_t one = 1;

	if (!e)
		abort();
	e->ev.id = id;
	e->ev.event = type;
	e->ev.status = status;
	memcpy(e->priv, priv, priv_len);
	e->ev.param.conn.private_data = priv_len ? e->priv : NULL;
	e->ev.param.conn.private_data_len = priv_len;
	e->ev.param.conn.qp_num = 0x42;
	pthread_mutex_lock(&fr_lock);
	if (type == RDMA_CM_EVENT_CONNECT_REQUEST) {
		e->ev.listen_id = id;
		e->ev.id = &id_alloc(id->channel, id->context)->id;
		e->ev.id->verbs = &fr_ctx;
		e->ev.id->port_num = 1;
		e->ev.id->ps = id->ps;
	}
	for (pp = &queue; *pp; pp = &(*pp)->next)
		;
	*pp = e;
	n_unacked++;
	if (write(id->channel->fd, &one, sizeof(one)) != sizeof(one))
		abort();
	pthread_mutex_unlock(&fr_lock);
	/* The CM's thread takes it, and acknowledges it after dropping its lock. */
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (;;) {
		pthread_mutex_lock(&fr_lock);
		bool done = !queue && !n_unacked;

		pthread_mutex_unlock(&fr_lock);
		if (done)
			break;
		clock_gettime(CLOCK_MONOTONIC, &t);
		if (t.tv_sec - t0.tv_sec > 10)
			broken("the CM's thread did not take an event within 10 s");
		sched_yield();
	}
}

void fr_reset(void)
{
	for (int i = 0; i < n_sig_fds; i++)
		close(sig_fds[i]);
	n_sig_fds = 0;
}

/* ---- librdmacm ---- */

struct rdma_event_channel *rdma_create_event_channel(void)
{
	struct rdma_event_channel *ch;

	if (fail_once())
		return NULL;
	ch = calloc(1, sizeof(*ch));
	if (!ch)
		abort();
	ch->fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (ch->fd < 0)
		abort();
	n_channels++;
	return ch;
}

void rdma_destroy_event_channel(struct rdma_event_channel *ch)
{
	close(ch->fd);
	free(ch);
	n_channels--;
}

int rdma_create_id(struct rdma_event_channel *ch, struct rdma_cm_id **id, void *ctx,
		   enum rdma_port_space ps)
{
	if (!ch)
		broken("rdma_create_id without a channel");
	if (fail_once())
		return -1;
	pthread_mutex_lock(&fr_lock);
	*id = &id_alloc(ch, ctx)->id;
	(*id)->ps = ps;
	pthread_mutex_unlock(&fr_lock);
	return 0;
}

int rdma_destroy_id(struct rdma_cm_id *id)
{
	pthread_mutex_lock(&fr_lock);
	for (struct fr_id **pp = &ids; *pp; pp = &(*pp)->next) {
		if (&(*pp)->id == id) {
			struct fr_id *f = *pp;

			*pp = f->next;
			free(f);
			n_ids--;
			pthread_mutex_unlock(&fr_lock);
			return 0;
		}
	}
	broken("rdma_destroy_id of an ID that is not alive");
}

int rdma_bind_addr(struct rdma_cm_id *id, struct sockaddr *addr)
{
	check_id(id, "rdma_bind_addr");
	if (addr->sa_family != AF_INET && addr->sa_family != AF_INET6)
		broken("rdma_bind_addr with a family the CM should have refused");
	if (fail_once())
		return -1;
	memcpy(&id->route.addr.src_storage, addr, addr->sa_family == AF_INET ?
	       sizeof(struct sockaddr_in) : sizeof(struct sockaddr_in6));
	id->verbs = &fr_ctx;
	id->port_num = 1;
	return 0;
}

int rdma_resolve_addr(struct rdma_cm_id *id, struct sockaddr *src, struct sockaddr *dst,
		      int timeout_ms)
{
	check_id(id, "rdma_resolve_addr");
	if (fail_once())
		return -1;
	if (src)
		rdma_bind_addr(id, src);
	memcpy(&id->route.addr.dst_storage, dst, dst->sa_family == AF_INET ?
	       sizeof(struct sockaddr_in) : sizeof(struct sockaddr_in6));
	return 0;
}

#define FR_SIMPLE(name, ...) \
int name(struct rdma_cm_id *id, ##__VA_ARGS__) \
{ \
	check_id(id, #name); \
	return fail_once(); \
}
FR_SIMPLE(rdma_resolve_route, int timeout_ms)
FR_SIMPLE(rdma_listen, int backlog)
FR_SIMPLE(rdma_connect, struct rdma_conn_param *p)
FR_SIMPLE(rdma_accept, struct rdma_conn_param *p)
FR_SIMPLE(rdma_reject, const void *priv, uint8_t len)
FR_SIMPLE(rdma_disconnect)
FR_SIMPLE(rdma_establish)
FR_SIMPLE(rdma_notify, enum ibv_event_type event)
FR_SIMPLE(rdma_set_option, int level, int optname, void *optval, size_t optlen)

int rdma_init_qp_attr(struct rdma_cm_id *id, struct ibv_qp_attr *a, int *mask)
{
	check_id(id, "rdma_init_qp_attr");
	if (fail_once())
		return -1;
	a->qp_access_flags = IBV_ACCESS_REMOTE_READ;
	a->pkey_index = 0;
	a->port_num = 1;
	a->dest_qp_num = 0x42;
	*mask = IBV_QP_STATE | IBV_QP_ACCESS_FLAGS | IBV_QP_PORT | IBV_QP_PKEY_INDEX;
	return 0;
}

int rdma_get_cm_event(struct rdma_event_channel *ch, struct rdma_cm_event **ev)
{
	struct fr_ev *e;
	uint64_t v;

	pthread_mutex_lock(&fr_lock);
	e = queue;
	if (!e) {	/* empty: the kick is used up (under the lock fr_event kicks under) */
		if (read(ch->fd, &v, sizeof(v)) < 0 && errno != EAGAIN)
			abort();
		pthread_mutex_unlock(&fr_lock);
		errno = EAGAIN;
		return -1;
	}
	queue = e->next;
	pthread_mutex_unlock(&fr_lock);
	*ev = &e->ev;
	return 0;
}

int rdma_ack_cm_event(struct rdma_cm_event *ev)
{
	pthread_mutex_lock(&fr_lock);
	n_unacked--;
	pthread_mutex_unlock(&fr_lock);
	free(ev);
	return 0;
}

const char *rdma_event_str(enum rdma_cm_event_type event)
{
	(void)event;
	return "EVENT";
}

const char *ibv_get_device_name(struct ibv_device *device)
{
	return device->name;
}

/* ---- vbusd ---- */

int vbd_guest_signal(struct vbd_guest *g, uint32_t id, uint32_t direction, int *fd)
{
	(void)g; (void)direction;
	if (id == 0 || id > 1000 || n_sig_fds == 64)
		return -ENOENT;
	*fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (*fd < 0)
		abort();
	sig_fds[n_sig_fds++] = *fd;
	return 0;
}

void vbd_guest_signal_put(struct vbd_guest *g, uint32_t id)
{
	(void)g; (void)id;	/* the fds above live until the run's end */
}

bool vrdma_guest_owns_qpn(struct vrdma_guest *g, uint32_t qpn)
{
	(void)g;
	return !(qpn & FR_FOREIGN_QPN);
}

int vbd_kernel_res(uint32_t guest_id, struct vbk_res_obj **objs, uint32_t *n)
{
	(void)guest_id; (void)objs; (void)n;
	broken("vbd_kernel_res: fuzz-cm is a relay guest");
}

void vbd_log(int level, const char *fmt, ...)
{
	(void)level; (void)fmt;
}
