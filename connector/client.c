// SPDX-License-Identifier: MIT
/*
 * libvbus client: one connection of a guest to a bus (docs/abi.md).
 *
 * Requests are synchronous and serialized by a mutex: send, then receive until the
 * response with the same seq; events that arrive meanwhile are queued. A closed socket
 * turns the connection dead: one VBUS_EV_DISCONNECTED event, then -ENOTCONN for all.
 *
 * Two transports carry the same messages (docs/vm.md, "The guest library in a VM"):
 *   socket  the bus's unix socket, RUN_DIR/bus/BUS.sock, with descriptors (SCM_RIGHTS);
 *   vm      a process in a vbus VM: the guest driver's /dev/vbus-vmN, one message per
 *           write() and its answer per read(), through the VM's message channel. No
 *           descriptor crosses (requests that need one fail with -EOPNOTSUPP here); the
 *           bus answers exactly one message per request, and its events come apart: the
 *           driver queues them and signals vm_evfd (VBUS_VM_IOC_EVENTFD), and
 *           vbus_next_event takes them (VBUS_VM_IOC_EVENT).
 */
#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdbool.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>
#include <vbus/libvbus.h>
#include "msg.h"
#include "ring.h"
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <vbus/vm.h>

#define EVQ_MAX 256

struct vbus_conn {
	int sock;			/* the unix socket, or the VM's /dev/vbus-vmN */
	bool vm;			/* the vm transport */
	int vm_evfd;			/* vm: readable while events are queued (vbus_event_fd);
					 * the driver signals it too (vm_events) */
	bool vm_events;			/* vm: the driver queues the bus's events for us */
	uint8_t *vm_buf;		/* vm: one message, header and payload */
	char bus[VBUS_NAME_MAX];
	pthread_mutex_t lock;
	uint64_t seq;
	bool dead;
	struct vbus_hello_out hello;
	struct vbus_event evq[EVQ_MAX];
	unsigned int ev_head, ev_n;
	struct vbus_rx rx;		/* big: kept here, not on the stack */
	/* the call channel, once set up */
	struct vbus_callchan chan;
	bool has_chan;
	void *chan_mem;
	size_t chan_len;
	int chan_fds[3];		/* memfd, to-bus eventfd, to-guest eventfd */
};

const char *vbus_run_dir(void)
{
	const char *d = getenv("VBUS_RUN_DIR");

	return d && *d ? d : "/run/vbus";
}

static void push_event(struct vbus_conn *c, const struct vbus_event *ev)
{
	if (c->ev_n == EVQ_MAX) {	/* drop the oldest rather than block the bus */
		c->ev_head = (c->ev_head + 1) % EVQ_MAX;
		c->ev_n--;
	}
	c->evq[(c->ev_head + c->ev_n++) % EVQ_MAX] = *ev;
	if (c->vm && c->ev_n == 1) {	/* vm: the event fd is readable while events wait */
		uint64_t one = 1;

		if (write(c->vm_evfd, &one, sizeof(one)) != sizeof(one))
			abort();	/* an eventfd of ours at count 0 cannot refuse 1 */
	}
}

static void mark_dead(struct vbus_conn *c)
{
	struct vbus_event ev = { .type = htole32(VBUS_EV_DISCONNECTED) };

	if (c->dead)
		return;
	c->dead = true;
	/* Dead for vbusd too: a connection given up on (a call timed out or answered nonsense)
	 * would otherwise keep its objects and pins in vbusd while the library, taking the
	 * device for gone, lets its destroys succeed. */
	if (!c->vm && c->sock >= 0)
		shutdown(c->sock, SHUT_RDWR);
	push_event(c, &ev);
}

/* An event from the bus: queued; SHUTDOWN also ends the connection. A VM's driver sends
 * DISCONNECTED itself when vbusd's heartbeat stops: the connection is dead, as when a
 * socket closes (mark_dead queues the one DISCONNECTED). */
static void got_event(struct vbus_conn *c, const struct vbus_event *ev)
{
	if (le32toh(ev->type) == VBUS_EV_DISCONNECTED) {
		mark_dead(c);
		return;
	}
	push_event(c, ev);
	if (le32toh(ev->type) == VBUS_EV_SHUTDOWN)
		mark_dead(c);
}

/*
 * The vm transport: one message per write() on /dev/vbus-vmN, its answer per read()
 * (docs/vm.md, section 5). The driver's errors mean: ENODEV the device is gone,
 * ECONNRESET the bus closed the connection (both: the connection is dead); EPROTO,
 * EMSGSIZE, EINVAL the channel refused the message; EIO a malformed answer.
 */
static int vm_send(struct vbus_conn *c, uint32_t op, uint64_t seq, uint32_t handle,
		   uint32_t arg, const void *payload, size_t len, int nfds)
{
	struct vbus_msg h = {
		.op = htole32(op), .len = htole32((uint32_t)len), .seq = htole64(seq),
		.handle = htole32(handle), .arg = htole32(arg),
	};
	ssize_t r;

	if (nfds)
		return -EOPNOTSUPP;	/* a descriptor cannot cross into a VM (docs/vm.md) */
	if (len > VBUS_MAX_PAYLOAD)
		return -EINVAL;
	memcpy(c->vm_buf, &h, sizeof(h));
	if (len)
		memcpy(c->vm_buf + sizeof(h), payload, len);
	do
		r = write(c->sock, c->vm_buf, sizeof(h) + len);
	while (r < 0 && errno == EINTR);
	if (r < 0)
		return errno == ENODEV ? -ECONNRESET : -errno;
	return (size_t)r == sizeof(h) + len ? 0 : -EMSGSIZE;
}

static int vm_recv(struct vbus_conn *c)
{
	ssize_t r;
	int err;

	c->rx.nfds = 0;
	do
		r = read(c->sock, c->vm_buf, VBUS_VM_MSG_MAX);
	while (r < 0 && errno == EINTR);
	if (r < 0)
		return errno == ENODEV ? -ECONNRESET : -errno;
	err = vbus_msg_check(&c->rx, c->vm_buf, (size_t)r, 0);
	if (err)
		return err;
	memcpy(c->rx.payload, c->vm_buf + sizeof(c->rx.hdr), c->rx.len);
	return 0;
}

static int conn_send(struct vbus_conn *c, uint32_t op, uint64_t seq, uint32_t handle,
		     uint32_t arg, const void *in, size_t inlen, const int *fds, int nfds)
{
	if (c->vm)
		return vm_send(c, op, seq, handle, arg, in, inlen, nfds);
	return vbus_msg_send(c->sock, op, seq, handle, arg, 0, in, inlen, fds, nfds);
}

/* Take one message from the socket: queue an event, or leave a response in c->rx.
 * Returns 1 for a response, 0 for an event, -errno. */
static int take(struct vbus_conn *c, int flags)
{
	int err;

	if (flags && c->vm)
		return -EAGAIN;	/* nothing but answers comes, and only to a request */
	if (flags) {
		struct pollfd p = { .fd = c->sock, .events = POLLIN };

		if (poll(&p, 1, 0) <= 0)
			return -EAGAIN;
	}
	err = c->vm ? vm_recv(c) : vbus_msg_recv(c->sock, &c->rx);
	if (err == -ECONNRESET || err == -EPIPE) {
		mark_dead(c);
		return -ENOTCONN;
	}
	if (err)
		return err;
	if (le32toh(c->rx.hdr.op) == VBUS_OP_EVENT) {
		struct vbus_event ev = { 0 };

		memcpy(&ev, c->rx.payload, c->rx.len < sizeof(ev) ? c->rx.len : sizeof(ev));
		vbus_rx_close_fds(&c->rx);
		got_event(c, &ev);
		return 0;
	}
	return 1;
}

/*
 * vm: the events the driver queued (VBUS_VM_IOC_EVENT until EAGAIN). vm_evfd is cleared
 * first, so that an event queued meanwhile leaves it readable (the driver signals it, or
 * push_event does): a wake-up is never lost, at worst one comes with nothing to take.
 */
static void vm_take_events(struct vbus_conn *c)
{
	struct vbus_vm_event e;
	uint64_t n;

	if (read(c->vm_evfd, &n, sizeof(n)) < 0 && errno != EAGAIN)
		abort();	/* our own non-blocking eventfd */
	while (c->vm_events && !c->dead && !ioctl(c->sock, VBUS_VM_IOC_EVENT, &e)) {
		struct vbus_event ev;

		memcpy(&ev, e.event, sizeof(ev));
		got_event(c, &ev);
	}
}

/*
 * One request; on success the response payload is in c->rx. Caller locks. Descriptors
 * that come with a response are closed, except the one a successful DEVFD answer carries:
 * with fd_out, a status 0 answer must carry exactly one, which goes to *fd_out (it arrived
 * close-on-exec); any other answer to such a request leaves *fd_out alone.
 */
static int request_fd(struct vbus_conn *c, uint32_t op, uint32_t handle, uint32_t arg,
		      const void *in, size_t inlen, const int *fds, int nfds, int *fd_out)
{
	uint64_t seq = ++c->seq;
	int32_t status;
	int err;

	if (c->dead)
		return -ENOTCONN;
	err = conn_send(c, op, seq, handle, arg, in, inlen, fds, nfds);
	if (err && op == VBUS_OP_HELLO && !c->vm && !vbus_msg_recv(c->sock, &c->rx)) {
		/* The bus refused us and closed before our HELLO went: its word is queued. */
		vbus_rx_close_fds(&c->rx);
		if (le32toh(c->rx.hdr.op) == VBUS_OP_HELLO && (int32_t)le32toh(c->rx.hdr.status) < 0) {
			mark_dead(c);
			return (int32_t)le32toh(c->rx.hdr.status);
		}
	}
	if (err) {
		if (err == -ECONNRESET)
			mark_dead(c);
		return c->dead ? -ENOTCONN : err;
	}
	for (;;) {
		err = take(c, 0);
		/* A refused guest: the bus closed with our HELLO unread, so the kernel reports
		 * ECONNRESET first; the refusal itself is still queued behind it. */
		if (err == -ENOTCONN && op == VBUS_OP_HELLO && !c->vm &&
		    !vbus_msg_recv(c->sock, &c->rx))
			err = 1;
		if (err < 0)
			return err;
		if (err == 0)
			continue;
		status = (int32_t)le32toh(c->rx.hdr.status);
		if (op == VBUS_OP_HELLO && le32toh(c->rx.hdr.op) == VBUS_OP_HELLO &&
		    le64toh(c->rx.hdr.seq) == 0 && status < 0) {
			vbus_rx_close_fds(&c->rx);
			mark_dead(c);	/* refused at the door: -EACCES, -EUSERS, -ESHUTDOWN */
			return status;
		}
		if (le32toh(c->rx.hdr.op) != op || le64toh(c->rx.hdr.seq) != seq) {
			vbus_rx_close_fds(&c->rx);
			return -EPROTO;
		}
		if (fd_out && status == 0) {
			if (c->rx.nfds != 1) {
				vbus_rx_close_fds(&c->rx);
				return -EPROTO;	/* a DEVFD answer without its descriptor */
			}
			*fd_out = c->rx.fds[0];
			c->rx.nfds = 0;
		}
		vbus_rx_close_fds(&c->rx);	/* other responses carry none */
		return status;
	}
}

static int request(struct vbus_conn *c, uint32_t op, uint32_t handle, uint32_t arg,
		   const void *in, size_t inlen, const int *fds, int nfds)
{
	return request_fd(c, op, handle, arg, in, inlen, fds, nfds, NULL);
}

/* HELLO on a connection whose transport is set up; frees c on failure. */
static int conn_hello(struct vbus_conn *c, struct vbus_conn **out)
{
	struct vbus_hello_in h = {
		.version_min = htole32(VBUS_PROTO_MIN_VERSION),
		.version_max = htole32(VBUS_PROTO_VERSION),
		.features = htole64(VBUS_F_ALL_V1),
	};
	int err;

	memcpy(h.bus, c->bus, strlen(c->bus));
	err = request(c, VBUS_OP_HELLO, 0, 0, &h, sizeof(h), NULL, 0);
	if (err == -ENOTCONN)
		err = -ECONNREFUSED;	/* closed with no word */
	if (!err && c->rx.len < sizeof(c->hello))
		err = -EPROTO;
	if (err) {
		vbus_disconnect(c);
		return err;
	}
	memcpy(&c->hello, c->rx.payload, sizeof(c->hello));
	/* vm: the driver queues the bus's events and signals vm_evfd (docs/vm.md, "Events");
	 * a driver without an event ring leaves the connection without events. */
	if (c->vm && (le64toh(c->hello.features) & VBUS_F_EVENTS)) {
		struct vbus_vm_eventfd b = { .fd = c->vm_evfd };

		c->vm_events = !ioctl(c->sock, VBUS_VM_IOC_EVENTFD, &b);
	}
	*out = c;
	return 0;
}

static struct vbus_conn *conn_new(const char *bus)
{
	struct vbus_conn *c = calloc(1, sizeof(*c));

	if (!c)
		return NULL;
	pthread_mutex_init(&c->lock, NULL);
	c->sock = -1;
	c->vm_evfd = -1;
	if (bus)
		memcpy(c->bus, bus, strlen(bus) + 1);
	return c;
}

/* A VM's bus: the device named by $VBUS_VM_DEV, else the first /dev/vbus-vmN whose bus is
 * `bus` (any bus when bus is NULL). -ENOENT: none; -ENOTTY: not a vbus VM device. */
static int vm_open(const char *bus, struct vbus_conn *c)
{
	const char *dev = getenv("VBUS_VM_DEV");
	bool named = dev && *dev;
	int err = -ENOENT;

	for (int i = 0; i < (named ? 1 : 16); i++) {
		struct vbus_vm_info info;
		char path[64];
		int fd;

		if (named)
			snprintf(path, sizeof(path), "%.63s", dev);
		else
			snprintf(path, sizeof(path), "/dev/vbus-vm%d", i);
		fd = open(path, O_RDWR | O_CLOEXEC);
		if (fd < 0 && errno == ENOENT && !named)
			break;	/* the driver numbers them from 0 */
		if (fd < 0) {
			err = -errno;
			continue;
		}
		if (ioctl(fd, VBUS_VM_IOC_INFO, &info) || !memchr(info.bus, 0, sizeof(info.bus))) {
			err = -ENOTTY;
			close(fd);
			continue;
		}
		if (bus && strcmp(bus, info.bus)) {
			close(fd);
			continue;	/* another bus's device */
		}
		c->sock = fd;
		c->vm = true;
		memcpy(c->bus, info.bus, strlen(info.bus) + 1);
		c->vm_buf = malloc(VBUS_VM_MSG_MAX);
		c->vm_evfd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
		return c->vm_buf && c->vm_evfd >= 0 ? 0 : -ENOMEM;	/* the caller frees */
	}
	return err;
}

/*
 * Which transport: $VBUS_VM_DEV names a VM's character device; else the bus's socket,
 * unless neither run_dir nor $VBUS_RUN_DIR was given, the default socket does not exist
 * and this system has /dev/vbus-vm0: a process in a vbus VM (docs/vm.md).
 */
static bool want_vm(const char *run_dir, const char *path)
{
	const char *dev = getenv("VBUS_VM_DEV"), *rd = getenv("VBUS_RUN_DIR");

	if (dev && *dev)
		return true;
	if (run_dir || (rd && *rd))
		return false;
	return access(path, F_OK) && errno == ENOENT && !access("/dev/vbus-vm0", F_OK);
}

static int sock_path(const char *run_dir, const char *bus, struct sockaddr_un *a)
{
	if (bus && (!*bus || strlen(bus) >= VBUS_NAME_MAX || strchr(bus, '/')))
		return -EINVAL;
	if (snprintf(a->sun_path, sizeof(a->sun_path), "%s/bus/%s.sock",
		     run_dir ? run_dir : vbus_run_dir(), bus ? bus : "default") >=
	    (int)sizeof(a->sun_path))
		return -ENAMETOOLONG;
	return 0;
}

bool vbus_connect_uses_vm(const char *run_dir, const char *bus)
{
	struct sockaddr_un a = { .sun_family = AF_UNIX };

	return !sock_path(run_dir, bus, &a) && want_vm(run_dir, a.sun_path);
}

int vbus_connect(const char *run_dir, const char *bus, struct vbus_conn **out)
{
	struct sockaddr_un a = { .sun_family = AF_UNIX };
	struct vbus_conn *c;
	int err = sock_path(run_dir, bus, &a);

	if (err)
		return err;
	c = conn_new(bus ? bus : "default");
	if (!c)
		return -ENOMEM;
	if (want_vm(run_dir, a.sun_path)) {
		err = vm_open(bus, c);
		if (err) {
			vbus_disconnect(c);
			return err;
		}
		return conn_hello(c, out);
	}
	c->sock = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
	if (c->sock < 0 || connect(c->sock, (struct sockaddr *)&a, sizeof(a))) {
		err = -errno;
		vbus_disconnect(c);
		return err;
	}
	return conn_hello(c, out);
}

void vbus_disconnect(struct vbus_conn *c)
{
	if (!c)
		return;
	if (c->has_chan) {
		munmap(c->chan_mem, c->chan_len);
		for (int i = 0; i < 3; i++)
			close(c->chan_fds[i]);
	}
	if (c->sock >= 0)
		close(c->sock);
	if (c->vm_evfd >= 0)
		close(c->vm_evfd);
	free(c->vm_buf);
	pthread_mutex_destroy(&c->lock);
	free(c);
}

const char *vbus_conn_bus(const struct vbus_conn *c)
{
	return c->bus;
}

bool vbus_conn_is_vm(const struct vbus_conn *c)
{
	return c->vm;
}

const struct vbus_hello_out *vbus_hello_info(const struct vbus_conn *c)
{
	return &c->hello;
}

int vbus_devenum(struct vbus_conn *c, struct vbus_dev_entry *e, int max)
{
	struct vbus_devenum_out o;
	int err, n;

	pthread_mutex_lock(&c->lock);
	err = request(c, VBUS_OP_DEVENUM, 0, 0, NULL, 0, NULL, 0);
	if (err)
		goto out;
	err = -EPROTO;
	if (c->rx.len < sizeof(o))
		goto out;
	memcpy(&o, c->rx.payload, sizeof(o));
	n = (int)le32toh(o.count);
	if (n < 0 || c->rx.len != sizeof(o) + (size_t)n * sizeof(*e))
		goto out;
	if (n > max)
		n = max;
	memcpy(e, c->rx.payload + sizeof(o), (size_t)n * sizeof(*e));
	err = n;
out:
	pthread_mutex_unlock(&c->lock);
	return err;
}

/* A request whose response is one vbus_id_out (or a devopen_out, same layout). */
static int request_id(struct vbus_conn *c, uint32_t op, uint32_t handle, const void *in,
		      size_t inlen, const int *fds, int nfds, uint32_t *id)
{
	struct vbus_id_out o;
	int err;

	pthread_mutex_lock(&c->lock);
	err = request(c, op, handle, 0, in, inlen, fds, nfds);
	if (!err && c->rx.len != sizeof(o))
		err = -EPROTO;
	if (!err) {
		memcpy(&o, c->rx.payload, sizeof(o));
		*id = le32toh(o.id);
	}
	pthread_mutex_unlock(&c->lock);
	return err;
}

int vbus_devopen_label(struct vbus_conn *c, const char *name, const char *devclass,
		       const char *label, uint32_t *handle)
{
	struct vbus_devopen_label_in in = { 0 };

	if (!name || strlen(name) >= VBUS_NAME_MAX || !devclass ||
	    strlen(devclass) >= VBUS_NAME_MAX || (label && strlen(label) >= VBUS_LABEL_MAX))
		return -EINVAL;
	memcpy(in.open.name, name, strlen(name));
	memcpy(in.open.devclass, devclass, strlen(devclass));
	if (!label || !*label)	/* the plain payload: any vbusd takes it */
		return request_id(c, VBUS_OP_DEVOPEN, 0, &in.open, sizeof(in.open), NULL, 0, handle);
	memcpy(in.label, label, strlen(label));
	return request_id(c, VBUS_OP_DEVOPEN, 0, &in, sizeof(in), NULL, 0, handle);
}

int vbus_devopen(struct vbus_conn *c, const char *name, const char *devclass, uint32_t *handle)
{
	return vbus_devopen_label(c, name, devclass, NULL, handle);
}

static int request_simple(struct vbus_conn *c, uint32_t op, uint32_t handle, uint32_t arg)
{
	int err;

	pthread_mutex_lock(&c->lock);
	err = request(c, op, handle, arg, NULL, 0, NULL, 0);
	pthread_mutex_unlock(&c->lock);
	return err;
}

int vbus_devclose(struct vbus_conn *c, uint32_t handle)
{
	return request_simple(c, VBUS_OP_DEVCLOSE, handle, 0);
}

int vbus_devshm(struct vbus_conn *c, int memfd, uint64_t size, uint32_t *id)
{
	struct vbus_devshm_in in = { .size = htole64(size) };

	return request_id(c, VBUS_OP_DEVSHM, 0, &in, sizeof(in), &memfd, 1, id);
}

/*
 * A VM's regions go through the driver's ioctls (include/vbus/vm.h): it pins the pages and
 * sends the DEVSHM itself, and unpins them after a successful SHMREVOKE. The ioctl returns
 * the bus's answer in its status; its own failure is as the channel's (vm_send, vm_recv).
 */
static int vm_ioctl(struct vbus_conn *c, unsigned long cmd, void *arg, __u64 *seq,
		    const __s32 *status)
{
	int r;

	pthread_mutex_lock(&c->lock);
	if (c->dead) {
		pthread_mutex_unlock(&c->lock);
		return -ENOTCONN;
	}
	*seq = ++c->seq;
	do
		r = ioctl(c->sock, cmd, arg) ? -errno : 0;
	while (r == -EINTR);
	if (r == -ENODEV || r == -ECONNRESET)
		mark_dead(c);
	pthread_mutex_unlock(&c->lock);
	if (r)
		return c->dead ? -ENOTCONN : r;
	return *status;
}

int vbus_devshm_at(struct vbus_conn *c, int memfd, void *addr, uint64_t size, uint32_t *id)
{
	struct vbus_vm_shm s = { .addr = (uintptr_t)addr, .size = size };
	int r;

	if (!c->vm)
		return vbus_devshm(c, memfd, size, id);
	r = vm_ioctl(c, VBUS_VM_IOC_SHM, &s, &s.seq, &s.status);
	if (!r)
		*id = s.id;
	return r;
}

int vbus_shm_revoke(struct vbus_conn *c, uint32_t id)
{
	struct vbus_vm_shmrevoke r = { .id = id };

	if (c->vm)
		return vm_ioctl(c, VBUS_VM_IOC_SHMREVOKE, &r, &r.seq, &r.status);
	return request_simple(c, VBUS_OP_SHMREVOKE, 0, id);
}

/* A VM's signal is one of its interrupt vectors, which the driver binds to efd. */
int vbus_devsig(struct vbus_conn *c, int efd, uint32_t direction, uint32_t *id)
{
	struct vbus_devsig_in in = { .direction = htole32(direction) };
	struct vbus_vm_sig s = { .fd = efd, .direction = direction };
	int r;

	if (!c->vm)
		return request_id(c, VBUS_OP_DEVSIG, 0, &in, sizeof(in), &efd, 1, id);
	r = vm_ioctl(c, VBUS_VM_IOC_SIG, &s, &s.seq, &s.status);
	if (!r)
		*id = s.id;
	return r;
}

int vbus_sig_revoke(struct vbus_conn *c, uint32_t id)
{
	struct vbus_vm_sigrevoke r = { .id = id };

	if (c->vm)
		return vm_ioctl(c, VBUS_VM_IOC_SIGREVOKE, &r, &r.seq, &r.status);
	return request_simple(c, VBUS_OP_SIGREVOKE, 0, id);
}

int vbus_shmsignal(struct vbus_conn *c, uint32_t id)
{
	return request_simple(c, VBUS_OP_SHMSIGNAL, 0, id);
}

int vbus_devcall(struct vbus_conn *c, uint32_t handle, uint32_t fn, const void *in,
		 size_t inlen, void *out, size_t outmax, size_t *outlen)
{
	return vbus_devcall_flags(c, handle, fn, 0, in, inlen, out, outmax, outlen);
}

int vbus_devcall_flags(struct vbus_conn *c, uint32_t handle, uint32_t fn, uint32_t flags,
		       const void *in, size_t inlen, void *out, size_t outmax, size_t *outlen)
{
	int err;

	pthread_mutex_lock(&c->lock);
	if (c->has_chan && !c->dead && inlen <= VBUS_CALL_INLINE) {
		/* The fast path. A broken or silent channel means a dead or hostile bus. */
		err = vbus_callchan_call(&c->chan, handle, fn, flags, in, inlen, out,
					 outmax < VBUS_CALL_INLINE ? outmax : VBUS_CALL_INLINE,
					 outlen, 30000);
		if (err != -EMSGSIZE || outmax <= VBUS_CALL_INLINE) {
			if (err == -EPIPE || err == -ETIMEDOUT || err == -EPROTO || err == -ENOTCONN) {
				mark_dead(c);
				err = -ENOTCONN;
			}
			pthread_mutex_unlock(&c->lock);
			return err;
		}
		/* A bigger answer than the channel carries: ask again over the socket. */
	}
	err = request(c, VBUS_OP_DEVCALL, handle, fn, in, inlen, NULL, 0);
	if (!err && c->rx.len > outmax)
		err = -EMSGSIZE;
	if (!err) {
		if (c->rx.len)
			memcpy(out, c->rx.payload, c->rx.len);
		if (outlen)
			*outlen = c->rx.len;
	}
	pthread_mutex_unlock(&c->lock);
	return err;
}

int vbus_devfd(struct vbus_conn *c, uint32_t handle, int *fd)
{
	int err;

	if (!(le64toh(c->hello.features) & VBUS_F_DEVFD))
		return -EOPNOTSUPP;
	pthread_mutex_lock(&c->lock);
	err = request_fd(c, VBUS_OP_DEVFD, handle, 0, NULL, 0, NULL, 0, fd);
	pthread_mutex_unlock(&c->lock);
	return err;
}

int vbus_child(struct vbus_conn *c, uint32_t handle, const struct vbus_child_in *in, int *fd,
	       struct vbus_child_out *out)
{
	struct vbus_child_out o = { .dev = "" };
	bool wl = le64toh(c->hello.features) & VBUS_F_CHILD_WL;
	size_t len = wl ? sizeof(o) : VBUS_CHILD_OUT_V1_SIZE;
	int err;

	if (!(le64toh(c->hello.features) & VBUS_F_CHILD))
		return -EOPNOTSUPP;
	if ((le32toh(in->flags) & VBUS_CHILD_F_WHITELIST) && !wl)
		return -EOPNOTSUPP;	/* a bus of stop 33: the child has its parent's */
	pthread_mutex_lock(&c->lock);
	err = request_fd(c, VBUS_OP_CHILD, handle, 0, in,
			 le32toh(in->flags) & VBUS_CHILD_F_WHITELIST ? sizeof(*in) :
			 VBUS_CHILD_IN_V1_SIZE, NULL, 0, fd);
	if (!err && c->rx.len == len)
		memcpy(&o, c->rx.payload, len);
	out->dev[0] = 0;
	if (!err && (c->rx.len != len || vbus_name_get(out->bus, o.bus, sizeof(o.bus)) ||
		     (wl && vbus_name_get(out->dev, o.dev, sizeof(o.dev))))) {
		close(*fd);
		err = -EPROTO;	/* no bus or device named where they must be */
	}
	pthread_mutex_unlock(&c->lock);
	return err;
}

int vbus_connect_fd(int fd, const char *bus, struct vbus_conn **out)
{
	struct vbus_conn *c;

	if (!bus || strlen(bus) >= VBUS_NAME_MAX) {
		close(fd);
		return -EINVAL;
	}
	c = conn_new(bus);
	if (!c) {
		close(fd);
		return -ENOMEM;
	}
	c->sock = fd;
	return conn_hello(c, out);
}

int vbus_event_fd(const struct vbus_conn *c)
{
	return c->vm ? c->vm_evfd : c->sock;
}

int vbus_next_event(struct vbus_conn *c, struct vbus_event *ev)
{
	int r = 0;

	pthread_mutex_lock(&c->lock);
	if (c->vm && !c->ev_n)
		vm_take_events(c);
	while (!c->ev_n && !c->dead && take(c, 1) == 0)
		;
	if (c->ev_n) {
		*ev = c->evq[c->ev_head];
		c->ev_head = (c->ev_head + 1) % EVQ_MAX;
		c->ev_n--;
		r = 1;
	}
	pthread_mutex_unlock(&c->lock);
	return r;
}

int vbus_callchan_open(struct vbus_conn *c, uint32_t entries)
{
	size_t len = (VBUS_CALL_SIZE(entries) + 4095) & ~(size_t)4095;
	struct vbus_callchan_in in = { .entries = htole32(entries) };
	uint32_t shm, to_bus, to_guest;
	int fds[3] = { -1, -1, -1 }, err;
	void *mem = MAP_FAILED;

	if (!entries || entries > 64 || (entries & (entries - 1)))
		return -EINVAL;
	if (c->has_chan)
		return -EALREADY;
	if (!(le64toh(c->hello.features) & VBUS_F_CALLCHAN))
		return -EOPNOTSUPP;
	err = vbus_memfd_create("vbus-call", len, &fds[0]);
	if (err)
		return err;
	fds[1] = eventfd(0, EFD_CLOEXEC);
	fds[2] = eventfd(0, EFD_CLOEXEC);
	mem = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, fds[0], 0);
	err = -ENOMEM;
	if (fds[1] < 0 || fds[2] < 0 || mem == MAP_FAILED)
		goto err_close;
	madvise(mem, len, MADV_DONTFORK);
	err = vbus_callchan_guest_init(&c->chan, mem, entries, fds[1], fds[2]);
	c->chan.watch_fd = c->sock;
	if (!err)
		err = vbus_devshm(c, fds[0], len, &shm);
	if (!err)
		err = vbus_devsig(c, fds[1], VBUS_SIG_TO_HOST, &to_bus);
	if (!err)
		err = vbus_devsig(c, fds[2], VBUS_SIG_TO_GUEST, &to_guest);
	if (err)
		goto err_close;
	in.shm = htole32(shm);
	in.sig_to_bus = htole32(to_bus);
	in.sig_to_guest = htole32(to_guest);
	pthread_mutex_lock(&c->lock);
	err = request(c, VBUS_OP_CALLCHAN, 0, 0, &in, sizeof(in), NULL, 0);
	if (!err) {
		c->has_chan = true;
		c->chan_mem = mem;
		c->chan_len = len;
		memcpy(c->chan_fds, fds, sizeof(fds));
	}
	pthread_mutex_unlock(&c->lock);
	if (!err)
		return 0;
err_close:
	if (mem != MAP_FAILED)
		munmap(mem, len);
	for (int i = 0; i < 3; i++)
		if (fds[i] >= 0)
			close(fds[i]);
	return err;
}
