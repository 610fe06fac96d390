// SPDX-License-Identifier: MIT
/*
 * fake-verbs: preloaded into a vbusd by unit tests (LD_PRELOAD), so that vrdma devices of
 * both backends can be added and opened on a host with no RDMA device and no module.
 *
 *   libibverbs   ibv_get_device_list() lists one device, named and placed by
 *                $VBUS_FAKE_IBDEV ("NAME:DIR"; DIR stands for its uverbs node: remove it
 *                and vbusd finds the device gone). Opening it gives a context and
 *                completion channels with real eventfds and nothing behind them: enough
 *                for DEVOPEN and DEVCLOSE of a relay device, not for verbs.
 *   the module   VBK_IOC_ATTACH, VBK_IOC_STATS and VBK_IOC_RES on a regular file (vbusd opens one as
 *                its admin descriptor when $VBUS_VRDMA_ADMIN names it): ATTACH checks the
 *                request and returns a memfd named "vbk-attach" holding it, so that the
 *                guest that receives it can read what vbusd asked for; STATS answers the
 *                guest ids attached so far with counters derived from the id.
 * Every other ioctl goes to the real one.
 */
#include <dlfcn.h>
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include <infiniband/verbs.h>
#include <vbus/vrdma-kernel.h>

#define FAKE_API __attribute__((visibility("default")))

/* ---- libibverbs ---- */

FAKE_API struct ibv_device **ibv_get_device_list(int *num)
{
	const char *e = getenv("VBUS_FAKE_IBDEV"), *colon = e ? strchr(e, ':') : NULL;
	struct ibv_device **l = calloc(2, sizeof(*l));

	if (num)
		*num = 0;
	if (!l)
		return NULL;
	if (!colon || colon == e || (size_t)(colon - e) >= sizeof(l[0]->name) ||
	    strlen(colon + 1) >= sizeof(l[0]->dev_path))
		return l;
	l[0] = calloc(1, sizeof(*l[0]));
	if (!l[0])
		return l;
	memcpy(l[0]->name, e, (size_t)(colon - e));
	strcpy(l[0]->dev_path, colon + 1);
	strcpy(l[0]->dev_name, "uverbs-fake");
	l[0]->node_type = IBV_NODE_CA;
	l[0]->transport_type = IBV_TRANSPORT_IB;
	if (num)
		*num = 1;
	return l;
}

FAKE_API void ibv_free_device_list(struct ibv_device **list)
{
	if (!list)
		return;
	free(list[0]);
	free(list);
}

FAKE_API const char *ibv_get_device_name(struct ibv_device *dev)
{
	return dev->name;
}

FAKE_API struct ibv_context *ibv_open_device(struct ibv_device *dev)
{
	struct ibv_context *c = calloc(1, sizeof(*c));

	if (!c)
		return NULL;
	c->device = dev;
	c->cmd_fd = -1;
	c->async_fd = eventfd(0, EFD_CLOEXEC);
	if (c->async_fd < 0) {
		free(c);
		return NULL;
	}
	return c;
}

FAKE_API int ibv_close_device(struct ibv_context *c)
{
	close(c->async_fd);
	free(c);
	return 0;
}

FAKE_API struct ibv_comp_channel *ibv_create_comp_channel(struct ibv_context *c)
{
	struct ibv_comp_channel *ch = calloc(1, sizeof(*ch));

	if (!ch)
		return NULL;
	ch->context = c;
	ch->fd = eventfd(0, EFD_CLOEXEC);
	if (ch->fd < 0) {
		free(ch);
		return NULL;
	}
	return ch;
}

FAKE_API int ibv_destroy_comp_channel(struct ibv_comp_channel *ch)
{
	close(ch->fd);
	free(ch);
	return 0;
}

/* ---- the module's admin descriptor ---- */

static unsigned int attached[256];	/* guest ids, as ATTACH saw them */
static int n_attached;
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;

static int fake_attach(const struct vbk_attach *a)
{
	static const uint8_t zero[8];
	int fd;

	if (!memchr(a->ibdev, 0, sizeof(a->ibdev)) || !a->port || memcmp(a->reserved0, zero, 3) ||
	    !a->guest_id || a->tag >> 32 != a->guest_id) {
		errno = EINVAL;
		return -1;
	}
	fd = memfd_create("vbk-attach", MFD_CLOEXEC);
	if (fd < 0)
		return -1;
	if (write(fd, a, sizeof(*a)) != (ssize_t)sizeof(*a)) {
		close(fd);
		errno = EIO;
		return -1;
	}
	pthread_mutex_lock(&lock);
	if (n_attached < 256)
		attached[n_attached++] = a->guest_id;
	pthread_mutex_unlock(&lock);
	return fd;
}

static int fake_stats(struct vbk_stats *st)
{
	int found = 0;
	uint32_t id = st->guest_id;

	pthread_mutex_lock(&lock);
	for (int i = 0; i < n_attached; i++)
		found |= attached[i] == id;
	pthread_mutex_unlock(&lock);
	if (!found) {
		errno = ENOENT;
		return -1;
	}
	*st = (struct vbk_stats){ .guest_id = id, .objects = 3, .pinned_bytes = 4096,
				  .wqes = 1000 + id, .cqes = 2000 + id, .doorbells = 30,
				  .polls = 40, .events = 5, .errors = 0 };
	return 0;
}

/* Three objects, as the module lists a guest's PD, CQ and QP (VBK_IOC_RES), in two calls
 * when the caller's room is short, as the module's count says. */
static int fake_res(struct vbk_res *r)
{
	const struct vbk_res_obj objs[3] = {
		{ .handle = 1, .type = 1, .users = 2 },
		{ .handle = 2, .type = 3, .real = 63, .v = { 64 } },
		{ .handle = 3, .type = 4, .real = 17 + r->guest_id, .pd = 1, .qp_type = 2,
		  .state = 3, .v = { 5, 4, 7, 6 } },
	};
	struct vbk_stats st = { .guest_id = r->guest_id };

	if (fake_stats(&st))
		return -1;
	memcpy((void *)(uintptr_t)r->objs, objs, (r->count < 3 ? r->count : 3) * sizeof(objs[0]));
	r->count = 3;
	return 0;
}

FAKE_API int ioctl(int fd, unsigned long req, ...)
{
	typedef int (*ioctl_fn)(int, unsigned long, ...);
	static ioctl_fn real;	/* threads may look it up at once: the same value */
	ioctl_fn f;
	struct stat sb;
	va_list ap;
	void *arg;

	va_start(ap, req);
	arg = va_arg(ap, void *);
	va_end(ap);
	if ((req == VBK_IOC_ATTACH || req == VBK_IOC_STATS || req == VBK_IOC_REVOKE ||
	     req == VBK_IOC_RES) && !fstat(fd, &sb) && S_ISREG(sb.st_mode))
		return req == VBK_IOC_ATTACH ? fake_attach(arg) :
		       req == VBK_IOC_STATS ? fake_stats(arg) :
		       req == VBK_IOC_RES ? fake_res(arg) : 0;
	f = __atomic_load_n(&real, __ATOMIC_ACQUIRE);
	if (!f) {
		f = (ioctl_fn)dlsym(RTLD_NEXT, "ioctl");
		__atomic_store_n(&real, f, __ATOMIC_RELEASE);
	}
	return f(fd, req, arg);
}
