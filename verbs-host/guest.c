// SPDX-License-Identifier: MIT
/*
 * Guest connections. Each guest that connects to a bus gets a thread that reads its
 * requests one at a time, so that a guest's slow call stalls only that guest. Everything
 * the guest sends is checked here before a device sees it: message sizes, handles and ids
 * (per connection, so another guest's are meaningless), names, memfds, quotas.
 */
#include <endian.h>
#include <errno.h>
#include <time.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <poll.h>
#include <sys/epoll.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>
#include <vbus/vm.h>
#include "msg.h"
#include "vbusd.h"

#define gwarn(g, fmt, ...) vbd_warn("guest %u (pid %d): " fmt, (g)->id, (int)(g)->pid, __VA_ARGS__)

int vbd_guest_send_event(struct vbd_guest *g, uint32_t type, uint32_t handle, uint32_t code,
			 const void *data, size_t len)
{
	struct vbus_event ev = { .type = htole32(type), .handle = htole32(handle),
				 .code = htole32(code) };
	int r;

	if (len > sizeof(ev.data))
		return -EINVAL;
	if (!(g->features & VBUS_F_EVENTS) && type != VBUS_EV_SHUTDOWN)
		return 0;	/* not negotiated */
	if (len)
		memcpy(ev.data, data, len);
	/* Best effort, never blocking for long: the send itself never blocks, so the lock is
	 * only held by another non-blocking send (a reply, usually); waiting up to 50 ms for
	 * it keeps an event from being lost to a concurrent reply. A guest that does not read
	 * its socket loses the event rather than stalling the daemon. */
	struct timespec until;

	clock_gettime(CLOCK_REALTIME, &until);
	until.tv_nsec += 50 * 1000 * 1000;
	if (until.tv_nsec >= 1000000000L) {
		until.tv_sec++;
		until.tv_nsec -= 1000000000L;
	}
	if (pthread_mutex_timedlock(&g->send_lock, &until))
		return -EAGAIN;
	r = vbus_msg_send_nowait(g->sock, VBUS_OP_EVENT, 0, handle, 0, 0, &ev, sizeof(ev));
	pthread_mutex_unlock(&g->send_lock);
	if (r)
		__atomic_fetch_add(&g->n_errors, 1, __ATOMIC_RELAXED);
	return r;
}

/* A response. An error carries no payload, except HELLO's -EPROTONOSUPPORT (docs/abi.md).
 * fd >= 0: the descriptor a successful DEVFD answer carries. */
static int reply(struct vbd_guest *g, const struct vbus_msg *req, int32_t status,
		 const void *p, size_t len, int fd)
{
	bool with = !status || (le32toh(req->op) == VBUS_OP_HELLO && status == -EPROTONOSUPPORT);
	int r;

	pthread_mutex_lock(&g->send_lock);
	r = vbus_msg_send(g->sock, le32toh(req->op), le64toh(req->seq), le32toh(req->handle),
			  le32toh(req->arg), status, with ? p : NULL, with ? len : 0,
			  &fd, !status && fd >= 0 ? 1 : 0);
	pthread_mutex_unlock(&g->send_lock);
	return r;
}

#define INDEX_MASK (VBD_MAX_SLOTS - 1)

uint32_t vbd_slot_id(const struct vbd_guest *g, uint32_t i)
{
	return vbd_slot(g, i)->gen << VBUS_ID_INDEX_BITS | i;
}

/*
 * A quota refused guest g something: say which one, in the log and in `vbusctl guest show`
 * (the last one hit and how many refusals). Returns -EDQUOT.
 */
int vbd_quota_hit(struct vbd_guest *g, const char *quota, uint64_t limit)
{
	pthread_mutex_lock(&g->quota_lock);
	snprintf(g->quota_hit, sizeof(g->quota_hit), "%s", quota);
	g->n_quota_hits++;
	pthread_mutex_unlock(&g->quota_lock);
	gwarn(g, "quota %s (%llu) reached: refused", quota, (unsigned long long)limit);
	return -EDQUOT;
}

/* A free slot of the given type, filled in from *fill under slots_lock; its index, or 0.
 * The generation moves on each time a slot is reused, so an old number is refused. */
static uint32_t slot_new(struct vbd_guest *g, enum vbd_obj type, const struct vbd_slot *fill)
{
	uint32_t id = 0;

	pthread_mutex_lock(&g->slots_lock);
	for (uint32_t i = 1; i < VBD_MAX_SLOTS; i++) {
		struct vbd_slot **chunk = &g->slot_chunks[i / VBD_SLOT_CHUNK];

		/* The table grows a chunk at a time; pointers into it stay valid. */
		if (!*chunk && !(*chunk = calloc(VBD_SLOT_CHUNK, sizeof(**chunk))))
			break;
		if (vbd_slot(g, i)->type == VBD_FREE) {
			uint32_t gen = (vbd_slot(g, i)->gen + 1) & ((1u << (32 - VBUS_ID_INDEX_BITS)) - 1);

			*vbd_slot(g, i) = *fill;
			vbd_slot(g, i)->type = type;
			vbd_slot(g, i)->gen = gen ? gen : 1;
			id = i;
			/* Its chunk is in place before the new end is seen (slot_get). */
			if (i >= g->slots_end)
				__atomic_store_n(&g->slots_end, i + 1, __ATOMIC_RELEASE);
			break;
		}
	}
	if (id && type == VBD_HANDLE) {
		g->n_handles++;
		__atomic_add_fetch(&g->bus->n_handles, 1, __ATOMIC_RELAXED);
	}
	if (id && type != VBD_HANDLE)
		g->n_regions++;
	if (id && type == VBD_REGION)
		g->shm_bytes += fill->size;
	pthread_mutex_unlock(&g->slots_lock);
	return id;
}

/* The slot a guest's number names, if it is live, of this type and this generation. */
static struct vbd_slot *slot_get(struct vbd_guest *g, uint32_t id, enum vbd_obj type)
{
	uint32_t i = id & INDEX_MASK;

	if (i == 0 || i >= __atomic_load_n(&g->slots_end, __ATOMIC_ACQUIRE) ||
	    vbd_slot(g, i)->type != type || vbd_slot(g, i)->gen != id >> VBUS_ID_INDEX_BITS)
		return NULL;
	return vbd_slot(g, i);
}

int vbd_guest_region(struct vbd_guest *g, uint32_t id, int *fd, void **base, uint64_t *size,
		     const uint64_t **pages)
{
	struct vbd_slot *s = slot_get(g, id, VBD_REGION);

	if (!s)
		return -ENOENT;
	s->pins++;	/* a device keeps pointers into it until vbd_guest_region_put */
	*fd = s->fd;
	*base = s->base;
	*size = s->size;
	*pages = s->pages;
	return 0;
}

int vbd_guest_maps_take(struct vbd_guest *g, uint64_t n)
{
	const char *quota;
	uint64_t limit;

	if (!vbd_vm_maps_take(g->vm.maps, n, &quota, &limit))
		return 0;
	return vbd_quota_hit(g, quota, limit);
}

void vbd_guest_maps_give(struct vbd_guest *g, uint64_t n)
{
	vbd_vm_maps_give(g->vm.maps, n);
}

int vbd_guest_pins_take(struct vbd_guest *g, uint64_t bytes)
{
	const char *quota;
	uint64_t limit;

	if (!vbd_vm_pins_take(g->vm.maps, bytes, &quota, &limit))
		return 0;
	return vbd_quota_hit(g, quota, limit);
}

void vbd_guest_pins_give(struct vbd_guest *g, uint64_t bytes)
{
	vbd_vm_pins_give(g->vm.maps, bytes);
}

/* A device is done with region `id` (the object whose queue it held is gone): the guest
 * may revoke it once nothing else uses it. */
static void slot_put(struct vbd_guest *g, uint32_t id, enum vbd_obj type)
{
	struct vbd_slot *s = slot_get(g, id, type);

	if (s && s->pins)
		s->pins--;
}

void vbd_guest_region_put(struct vbd_guest *g, uint32_t id)
{
	slot_put(g, id, VBD_REGION);
}

void vbd_guest_signal_put(struct vbd_guest *g, uint32_t id)
{
	slot_put(g, id, VBD_SIGNAL);
}

int vbd_guest_signal(struct vbd_guest *g, uint32_t id, uint32_t direction, int *fd)
{
	struct vbd_slot *s = slot_get(g, id, VBD_SIGNAL);

	if (!s || s->direction != direction)
		return -ENOENT;
	s->pins++;	/* a device or the call channel may keep using it */
	*fd = s->fd;
	return 0;
}

int vbd_guest_signal_fd(struct vbd_guest *g, uint32_t id, uint32_t direction)
{
	struct vbd_slot *s = slot_get(g, id, VBD_SIGNAL);

	return !s || s->direction != direction ? -ENOENT : s->fd;
}

void vbd_slot_end_kids(struct vbd_slot *s)
{
	for (uint32_t i = 0; i < s->nkids; i++) {
		shutdown(s->kids[i], SHUT_RDWR);	/* the child's thread and its holder see EOF */
		close(s->kids[i]);
	}
	free(s->kids);
	s->kids = NULL;
	s->nkids = 0;
}

/* Forget the child connections of s that have ended (their holder closed them). */
static void kids_prune(struct vbd_slot *s)
{
	uint32_t k = 0;

	for (uint32_t i = 0; i < s->nkids; i++) {
		struct pollfd p = { .fd = s->kids[i], .events = POLLRDHUP };

		if (poll(&p, 1, 0) == 1 && (p.revents & (POLLHUP | POLLRDHUP)))
			close(s->kids[i]);
		else
			s->kids[k++] = s->kids[i];
	}
	s->nkids = k;
}

static void slot_free(struct vbd_guest *g, uint32_t id)
{
	struct vbd_slot *s = vbd_slot(g, id);

	pthread_mutex_lock(&g->slots_lock);
	switch (s->type) {
	case VBD_HANDLE:
		vbd_slot_end_kids(s);
		if (s->dev) {
			s->dev->cls->close(s->inst);
			__atomic_fetch_sub(&s->dev->n_open, 1, __ATOMIC_RELAXED);
		}
		g->n_handles--;
		__atomic_sub_fetch(&g->bus->n_handles, 1, __ATOMIC_RELAXED);
		free(s->label);
		s->label = NULL;
		break;
	case VBD_REGION:
		munmap(s->base, s->size);
		free(s->pages);
		s->pages = NULL;
		vbd_guest_maps_give(g, s->nmaps);
		s->nmaps = 0;
		g->shm_bytes -= s->size;
		__atomic_sub_fetch(&g->bus->shm_bytes, s->size, __ATOMIC_RELAXED);
		/* fall through */
	case VBD_SIGNAL:
		close(s->fd);
		if (s->vector)
			vbd_vm_sig_give(g->vm.sigs, s->direction, s->vector);
		s->vector = 0;
		g->n_regions--;
		break;
	default:
		break;
	}
	s->type = VBD_FREE;
	pthread_mutex_unlock(&g->slots_lock);
}

static int do_hello(struct vbd_guest *g, const struct vbus_rx *rx, struct vbus_hello_out *o)
{
	struct vbus_hello_in in;
	uint32_t lo, hi;
	char bus[VBUS_NAME_MAX];

	/* A later version may append fields: take the 48 bytes we know. */
	if (rx->len < sizeof(in))
		return -EINVAL;
	memcpy(&in, rx->payload, sizeof(in));
	lo = le32toh(in.version_min);
	hi = le32toh(in.version_max);
	o->bus_version_min = htole32(VBUS_PROTO_MIN_VERSION);
	o->bus_version_max = htole32(VBUS_PROTO_VERSION);
	if (!lo || lo > hi || hi < VBUS_PROTO_MIN_VERSION || lo > VBUS_PROTO_VERSION) {
		gwarn(g, "speaks protocol %u..%u, this vbusd %u..%u: refused", lo, hi,
		      VBUS_PROTO_MIN_VERSION, VBUS_PROTO_VERSION);
		return -EPROTONOSUPPORT;	/* the answer still carries the bus's range */
	}
	if (vbus_name_get(bus, in.bus, sizeof(in.bus)) || strcmp(bus, g->bus->name))
		return -EINVAL;
	g->features = le64toh(in.features) & VBUS_F_ALL_V1;
	o->version = htole32(hi < VBUS_PROTO_VERSION ? hi : VBUS_PROTO_VERSION);
	o->guest_id = htole32(g->id);
	o->features = htole64(g->features);
	o->max_handles = htole32(g->bus->max_handles);
	o->max_regions = htole32(g->bus->max_regions);
	o->max_shm_bytes = htole64(g->bus->max_shm_bytes);
	g->hello_done = true;
	return 0;
}

/* DEVENUM and DEVOPEN look at the model: vbd.lock, taken before g->lock. */
static int do_devenum(struct vbd_guest *g, uint8_t *out, size_t *outlen)
{
	struct vbus_devenum_out *o = (void *)out;
	struct vbus_dev_entry *e = (void *)(o + 1);
	uint32_t n = 0, max = (VBUS_MAX_PAYLOAD - sizeof(*o)) / sizeof(*e);

	pthread_mutex_lock(&vbd.lock);
	for (struct vbd_dev *d = vbd.devs; d && n < max; d = d->next) {
		bool on = false;
		size_t pos = 0;

		for (int i = 0; i < d->n_buses; i++)
			on |= d->buses[i] == g->bus;
		if (!on)
			continue;	/* a guest sees only the devices of its own bus */
		memset(&e[n], 0, sizeof(e[n]));
		snprintf(e[n].name, sizeof(e[n].name), "%s", d->name);
		snprintf(e[n].devclass, sizeof(e[n].devclass), "%s", d->cls->name);
		for (int i = 0; i < d->n_attrs && pos < sizeof(e[n].attrs); i++)
			pos += (size_t)snprintf(e[n].attrs + pos, sizeof(e[n].attrs) - pos, "%s%s=%s",
						i ? " " : "", d->attr_key[i], d->attr_val[i]);
		n++;
	}
	pthread_mutex_unlock(&vbd.lock);
	o->count = htole32(n);
	o->reserved = 0;
	*outlen = sizeof(*o) + n * sizeof(*e);
	return 0;
}

const char *vbd_handle_label(struct vbd_guest *g, uint32_t handle)
{
	struct vbd_slot *s = slot_get(g, handle, VBD_HANDLE);

	return s ? s->label : NULL;
}

static int do_devopen(struct vbd_guest *g, const struct vbus_rx *rx, struct vbus_devopen_out *o)
{
	struct vbus_devopen_label_in in;
	char name[VBUS_NAME_MAX], cls[VBUS_NAME_MAX];
	char *label = NULL;
	struct vbd_dev *d;
	void *inst;
	uint32_t h;
	int err = -ENOENT;

	/* the plain payload, or one with a label (struct vbus_devopen_label_in) */
	if (rx->len != sizeof(in.open) && rx->len != sizeof(in))
		return -EINVAL;
	memset(&in, 0, sizeof(in));
	memcpy(&in, rx->payload, rx->len);
	if (vbus_name_get(name, in.open.name, sizeof(in.open.name)) ||
	    vbus_name_get(cls, in.open.devclass, sizeof(in.open.devclass)) ||
	    vbd_label_check(in.label, sizeof(in.label)))
		return -EINVAL;
	if (in.label[0] && !(label = strdup(in.label)))
		return -ENOMEM;
	pthread_mutex_lock(&vbd.lock);
	for (d = vbd.devs; d; d = d->next) {
		if (strcmp(d->name, name))
			continue;
		for (int i = 0; i < d->n_buses; i++)
			if (d->buses[i] == g->bus)
				err = 0;
		break;
	}
	/* A device of another bus answers exactly like one that does not exist; on a child
	 * connection, so does any device but its parent's. */
	if (!err && g->child.cls && strcmp(g->child.dev, name))
		err = -ENOENT;
	if (err)
		goto out;
	err = -ENODEV;
	if (strcmp(d->cls->name, cls))
		goto out;
	pthread_mutex_lock(&g->lock);
	if (g->n_handles >= g->bus->max_handles)
		err = vbd_quota_hit(g, "max-handles", g->bus->max_handles);
	else if (__atomic_load_n(&g->bus->n_handles, __ATOMIC_RELAXED) >= g->bus->bus_max_handles)
		err = vbd_quota_hit(g, "bus-max-handles", g->bus->bus_max_handles);
	else if (!(h = slot_new(g, VBD_HANDLE, &(struct vbd_slot){ .fd = -1, .label = label })))
		err = vbd_quota_hit(g, "slots", VBD_MAX_SLOTS - 1);
	else
		err = 0, label = NULL;	/* the slot's now */
	if (err) {
		pthread_mutex_unlock(&g->lock);
		goto out;
	}
	/* The slot is taken but has no device yet: show prints it as removed meanwhile. */
	err = d->cls->open(d, g, vbd_slot_id(g, h), &inst);
	if (err) {
		slot_free(g, h);
	} else {
		pthread_mutex_lock(&g->slots_lock);
		vbd_slot(g, h)->inst = inst;
		vbd_slot(g, h)->dev = d;
		pthread_mutex_unlock(&g->slots_lock);
		d->n_open++;
		o->handle = htole32(vbd_slot_id(g, h));
		o->reserved = 0;
	}
	pthread_mutex_unlock(&g->lock);
out:
	pthread_mutex_unlock(&vbd.lock);
	free(label);
	if (err)
		gwarn(g, "open of device '%s' refused: %s", name, strerror(-err));
	return err;
}

/* The guest's region quotas for `size` more bytes: 0 or -EDQUOT. */
static int region_quota(struct vbd_guest *g, uint64_t size)
{
	if (g->n_regions >= g->bus->max_regions)
		return vbd_quota_hit(g, "max-regions", g->bus->max_regions);
	if (size > g->bus->max_shm_bytes - g->shm_bytes)
		return vbd_quota_hit(g, "max-shm", g->bus->max_shm_bytes);
	return 0;
}

/* A region mapped at base (size bytes, fd and pages as struct vbd_slot says) becomes the
 * guest's: its id in *o, or -errno with nothing taken (the caller unmaps and closes). */
static int region_add(struct vbd_guest *g, int fd, void *base, uint64_t size, uint64_t *pages,
		      uint64_t nmaps, struct vbus_id_out *o)
{
	uint32_t id;
	int err = 0;

	madvise(base, size, MADV_DONTFORK);
	if (__atomic_add_fetch(&g->bus->shm_bytes, size, __ATOMIC_RELAXED) > g->bus->bus_max_shm)
		err = vbd_quota_hit(g, "bus-max-shm", g->bus->bus_max_shm);
	else if (!(id = slot_new(g, VBD_REGION, &(struct vbd_slot){ .fd = fd, .base = base,
								     .size = size, .pages = pages,
								     .nmaps = nmaps })))
		err = vbd_quota_hit(g, "slots", VBD_MAX_SLOTS - 1);
	if (err) {
		__atomic_sub_fetch(&g->bus->shm_bytes, size, __ATOMIC_RELAXED);
		return err;
	}
	o->id = htole32(vbd_slot_id(g, id));
	return 0;
}

/* DEVSHM with VBUS_SHM_F_GPA, from a VM's connection: the pages of the VM's RAM that the
 * payload lists after `in` (docs/vm.md, "Shared regions"). Every address is the VM's word:
 * each must be a whole page of its RAM. */
static int do_devshm_gpa(struct vbd_guest *g, const struct vbus_rx *rx, uint64_t size,
			 struct vbus_id_out *o)
{
	uint64_t n = size / VBUS_VM_PAGE_SIZE, *pages, nmaps;
	void *base;
	int fd, err;

	if (g->vm.ram_fd < 0 || rx->nfds)
		return -EINVAL;		/* a process's region comes as a memfd */
	if (!size || size % VBUS_VM_PAGE_SIZE || n > VBUS_VM_SHM_MAX_PAGES ||
	    rx->len != sizeof(struct vbus_devshm_in) + n * sizeof(uint64_t))
		return -EINVAL;
	err = region_quota(g, size);
	if (err)
		return err;
	err = vbus_vm_region_pages(&g->vm.ram_layout,
				   (const uint8_t *)rx->payload + sizeof(struct vbus_devshm_in),
				   (uint32_t)n, &pages);
	if (err) {
		gwarn(g, "region of %llu pages refused: %s", (unsigned long long)n,
		      err == -EFAULT ? "a page outside the VM's RAM" :
		      err == -EINVAL ? "an address not page-aligned" : strerror(-err));
		return err;
	}
	/* Each run of pages costs vbusd a mapping: the VM's budget pays (vm_maps.c). */
	nmaps = vbus_vm_runs(pages, 0, size);
	err = vbd_guest_maps_take(g, nmaps);
	if (err) {
		free(pages);
		return err;
	}
	err = vbus_vm_region_map(g->vm.ram_fd, pages, (uint32_t)n, &base);
	if (err)
		goto err_maps;
	/* The region's own descriptor of the RAM: an MR window maps its pages from it. */
	fd = fcntl(g->vm.ram_fd, F_DUPFD_CLOEXEC, 0);
	err = fd < 0 ? -errno : region_add(g, fd, base, size, pages, nmaps, o);
	if (!err)
		return 0;
	if (fd >= 0)
		close(fd);
	munmap(base, size);
err_maps:
	vbd_guest_maps_give(g, nmaps);
	free(pages);
	return err;
}

static int do_devshm(struct vbd_guest *g, const struct vbus_rx *rx, struct vbus_id_out *o)
{
	struct vbus_devshm_in in;
	uint64_t size;
	void *base;
	int err;

	if (rx->len < sizeof(in))
		return -EINVAL;
	memcpy(&in, rx->payload, sizeof(in));
	size = le64toh(in.size);
	if (in.reserved)
		return -EINVAL;
	if (le32toh(in.flags) == VBUS_SHM_F_GPA)
		return do_devshm_gpa(g, rx, size, o);
	if (rx->len != sizeof(in) || rx->nfds != 1 || in.flags)
		return -EINVAL;
	err = vbus_memfd_check(rx->fds[0], size);
	if (err) {
		gwarn(g, "region of %llu bytes refused: %s", (unsigned long long)size,
		      err == -EPERM ? "memfd not sealed (F_SEAL_SHRINK|F_SEAL_SEAL needed)" :
		      err == -EBADF ? "not a memfd" : "not tmpfs, or the size does not match");
		return err;
	}
	err = region_quota(g, size);
	if (err)
		return err;
	base = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, rx->fds[0], 0);
	if (base == MAP_FAILED)
		return -errno;
	err = region_add(g, rx->fds[0], base, size, NULL, 0, o);
	if (err) {
		munmap(base, size);
		return err;
	}
	return 1;	/* the fd is kept */
}

/* A VM's DEVSIG (VBUS_SIG_F_VECTOR): the signal is one of the VM's vectors, chosen here. */
static int devsig_vector(struct vbd_guest *g, uint32_t dir, struct vbd_slot *s,
			 struct vbus_id_out *o)
{
	int err;

	if (!g->vm.sigs)
		return -EINVAL;	/* a process has no vectors */
	err = vbd_vm_sig_take(g->vm.sigs, dir, &s->vector, &s->fd);
	if (err == -ENOSPC)
		vbd_warn("guest %u: DEVSIG: every vector of the VM has a signal (vm add ... vectors N)",
			 g->id);
	o->vector = htole32(s->vector);
	return err;
}

static int do_devsig(struct vbd_guest *g, const struct vbus_rx *rx, struct vbus_id_out *o)
{
	struct vbus_devsig_in in;
	struct vbd_slot s = { .fd = -1 };
	char link[64], target[64];
	uint32_t dir, flags, id;
	ssize_t n;
	int err;

	if (rx->len != sizeof(in))
		return -EINVAL;
	memcpy(&in, rx->payload, sizeof(in));
	dir = le32toh(in.direction);
	flags = le32toh(in.flags);
	if ((flags & ~VBUS_SIG_F_VECTOR) || (dir != VBUS_SIG_TO_HOST && dir != VBUS_SIG_TO_GUEST) ||
	    rx->nfds != (flags ? 0 : 1))
		return -EINVAL;
	if (g->n_regions >= g->bus->max_regions)
		return vbd_quota_hit(g, "max-regions", g->bus->max_regions);
	if (flags) {
		err = devsig_vector(g, dir, &s, o);
		if (err)
			return err;
	} else {
		snprintf(link, sizeof(link), "/proc/self/fd/%d", rx->fds[0]);
		n = readlink(link, target, sizeof(target) - 1);
		if (n < 0 || (target[n] = 0, strcmp(target, "anon_inode:[eventfd]")))
			return -EBADF;	/* only an eventfd will do */
		s.fd = rx->fds[0];
	}
	s.direction = dir;
	if (!(id = slot_new(g, VBD_SIGNAL, &s))) {
		if (flags) {
			close(s.fd);
			vbd_vm_sig_give(g->vm.sigs, dir, s.vector);
		}
		return vbd_quota_hit(g, "slots", VBD_MAX_SLOTS - 1);
	}
	o->id = htole32(vbd_slot_id(g, id));
	return flags ? 0 : 1;	/* 1: the fd is kept */
}

static int do_revoke(struct vbd_guest *g, uint32_t id, enum vbd_obj type)
{
	struct vbd_slot *s = slot_get(g, id, type);

	if (!s)
		return -ENOENT;
	/* An instance that only passes it on (a middle level's passthrough) lets it go when
	 * the level below does. */
	for (uint32_t i = 1; s->pins && i < g->slots_end; i++) {
		struct vbd_slot *h = vbd_slot(g, i);

		if (h->type == VBD_HANDLE && h->dev && h->dev->cls->release &&
		    h->dev->cls->release(h->inst, type, id) == -EBUSY)
			return -EBUSY;
	}
	if (s->pins)
		return -EBUSY;	/* a device uses it; it goes when that is done, or the guest */
	slot_free(g, id & INDEX_MASK);
	return 0;
}

/* The open device instance behind handle h, or NULL with *r -ENOENT (no such handle) or
 * -ENODEV (its device was removed while open). Under g->lock. */
static struct vbd_slot *open_slot(struct vbd_guest *g, uint32_t h, int *r)
{
	struct vbd_slot *s = slot_get(g, h, VBD_HANDLE);

	*r = !s ? -ENOENT : !s->dev ? -ENODEV : 0;
	return *r ? NULL : s;
}

/* A DEVCALL, from the socket or the call channel: the guest's requests run one at a time. */
static int devcall(struct vbd_guest *g, uint32_t h, uint32_t fn, const void *in, size_t inlen,
		   void *out, size_t outmax, size_t *outlen)
{
	struct vbd_slot *s;
	int r;

	*outlen = 0;
	pthread_mutex_lock(&g->lock);
	s = open_slot(g, h, &r);
	if (s)
		r = s->dev->cls->call(s->inst, fn, in, inlen, out, outmax, outlen);
	__atomic_fetch_add(&g->n_calls, 1, __ATOMIC_RELAXED);
	pthread_mutex_unlock(&g->lock);
	if (r)
		__atomic_fetch_add(&g->n_errors, 1, __ATOMIC_RELAXED);
	return r;
}

/* DEVFD: the kernel descriptor of the device instance behind handle h. The class hands
 * over its only copy: the caller sends it with the answer, then closes it. */
static int do_devfd(struct vbd_guest *g, uint32_t h, int *fd)
{
	struct vbd_slot *s;
	int r;

	pthread_mutex_lock(&g->lock);
	s = open_slot(g, h, &r);
	if (s && !s->dev->cls->devfd)
		r = -EOPNOTSUPP;	/* a class with no kernel model */
	else if (s)
		r = s->dev->cls->devfd(s->inst, fd);
	pthread_mutex_unlock(&g->lock);
	return r;
}

static int guest_attach(struct vbd_bus *b, int fd, const struct ucred *cr, bool placed,
			const struct vbd_guest_vm *vm, const struct vbd_guest_child *child);

/*
 * CHILD: a child function of the open device behind handle h, as a new connection whose
 * socket goes back with the answer (*fd). The class checks the limits and gives a token
 * for the child connection's open, or a connection made elsewhere (a middle level hands
 * on the one the bus below made). Our end is kept in the handle's slot: closing the handle
 * (or the connection, or the device going) ends the child, and so its own children.
 */
static int do_child(struct vbd_guest *g, uint32_t h, const struct vbus_rx *rx, int *fd,
		    struct vbus_child_out *o)
{
	struct vbd_guest_child c = { .parent_id = g->id, .parent_handle = h };
	struct ucred cr = { .pid = g->pid, .uid = g->uid, .gid = g->gid };
	struct vbus_child_in in;
	struct vbd_slot *s;
	int r, sv[2], kid, *kids;
	bool attached;

	/* 16 bytes, or 24 with the whitelist (VBUS_CHILD_F_WHITELIST, VBUS_F_CHILD_WL) */
	memset(&in, 0, sizeof(in));
	if (rx->len != VBUS_CHILD_IN_V1_SIZE &&
	    (rx->len != sizeof(in) || !(g->features & VBUS_F_CHILD_WL)))
		return -EINVAL;
	memcpy(&in, rx->payload, rx->len);
	if ((le32toh(in.flags) & ~VBUS_CHILD_F_WHITELIST) ||
	    (rx->len == sizeof(in)) != !!(le32toh(in.flags) & VBUS_CHILD_F_WHITELIST))
		return -EINVAL;
	pthread_mutex_lock(&g->lock);
	s = open_slot(g, h, &r);
	if (s && !s->dev->cls->child)
		r = -EOPNOTSUPP;	/* a class that makes no children (echo) */
	if (s && !r) {
		kids_prune(s);
		if (s->nkids >= VBD_MAX_KIDS)
			r = -EMLINK;
	}
	if (s && !r) {
		r = s->dev->cls->child(s->inst, &in, fd, o, &c.token);
		c.cls = s->dev->cls;
		snprintf(c.dev, sizeof(c.dev), "%s", s->dev->name);
	}
	pthread_mutex_unlock(&g->lock);
	if (r || !c.token)
		return r;	/* refused, or *fd made below us */
	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv)) {
		r = -errno;
		goto err_put;
	}
	kid = fcntl(sv[0], F_DUPFD_CLOEXEC, 0);
	if (kid < 0 || setsockopt(sv[0], SOL_SOCKET, SO_SNDTIMEO,
				  &(struct timeval){ .tv_sec = 2 }, sizeof(struct timeval))) {
		r = -errno;
		if (kid >= 0)
			close(kid);
		close(sv[0]);
		close(sv[1]);
		goto err_put;
	}
	pthread_mutex_lock(&vbd.lock);
	r = guest_attach(g->bus, sv[0], &cr, true, NULL, &c);	/* sv[0] is its now */
	attached = !r;
	if (attached) {
		/* vbd.lock, then g->lock: the order of the model. The handle may have gone
		 * meanwhile (its device removed): the child ends at once then. */
		pthread_mutex_lock(&g->lock);
		s = open_slot(g, h, &r);
		kids = s ? realloc(s->kids, (s->nkids + 1) * sizeof(*kids)) : NULL;
		if (kids) {
			s->kids = kids;
			s->kids[s->nkids++] = kid;
		} else {
			shutdown(kid, SHUT_RDWR);
			close(kid);
			r = s ? -ENOMEM : r;
		}
		pthread_mutex_unlock(&g->lock);
	} else {
		close(kid);
	}
	pthread_mutex_unlock(&vbd.lock);
	if (r) {
		close(sv[1]);
		if (attached)
			return r;	/* the child ends on its own and puts the token */
		goto err_put;
	}
	*fd = sv[1];
	snprintf(o->bus, sizeof(o->bus), "%s", g->bus->name);
	snprintf(o->dev, sizeof(o->dev), "%s", c.dev);
	return 0;

err_put:
	c.cls->child_put(c.token);
	return r;
}

/* The call channel's server: one thread per guest, spinning then sleeping (call.c). */
static void *chan_main(void *arg)
{
	struct vbd_guest *g = arg;
	struct vbus_call_req *req = malloc(sizeof(*req));
	uint8_t *out = malloc(VBUS_CALL_INLINE);
	uint64_t bad = 0;

	while (req && out) {
		size_t outlen = 0;
		int r = vbus_callchan_next(g->chan, req, &g->chan_stop);

		if (r == -EBADMSG) {
			/* A scribbling guest can send these as fast as it likes: the 1st, 2nd,
			 * 4th, 8th ... are logged, each with the count. */
			bad++;
			if (!(bad & (bad - 1)))
				gwarn(g, "bad call descriptor (%llu so far)", (unsigned long long)bad);
			vbus_callchan_reply(g->chan, le64toh(req->tag), -EINVAL, NULL, 0);
			continue;
		}
		if (r == 0)
			break;	/* stopped: the guest is going */
		if (r > 0) {
			r = devcall(g, le32toh(req->handle), le32toh(req->fn), req->payload,
				    le32toh(req->inlen), out, le32toh(req->outmax), &outlen);
			r = vbus_callchan_reply(g->chan, le64toh(req->tag), r, out, r ? 0 : outlen);
			if (!r)
				continue;
		}
		/* Only the guest writes its channel's shared words out of turn: it broke the
		 * protocol, and its connection ends as with any other protocol error (its
		 * devices go, the guest gets DEVICE_FATAL). The main loop frees it; g->sock is
		 * closed only after this thread is joined. */
		gwarn(g, "call channel broken (%s): closing the connection", strerror(-r));
		shutdown(g->sock, SHUT_RDWR);
		break;
	}
	free(req);
	free(out);
	return NULL;
}

static int do_callchan(struct vbd_guest *g, const struct vbus_rx *rx)
{
	struct vbus_callchan_in in;
	uint32_t entries;
	uint64_t off;
	const uint64_t *pages;
	int fd, tb, tg, err;
	void *base;
	uint64_t size;

	if (rx->len != sizeof(in))
		return -EINVAL;
	memcpy(&in, rx->payload, sizeof(in));
	entries = le32toh(in.entries);
	off = le64toh(in.offset);
	if (g->chan)
		return -EALREADY;
	if (!entries || entries > 64 || (entries & (entries - 1)) || off % 64)
		return -EINVAL;
	pthread_mutex_lock(&g->lock);
	err = vbd_guest_region(g, le32toh(in.shm), &fd, &base, &size, &pages);
	if (!err)
		err = vbd_guest_signal(g, le32toh(in.sig_to_bus), VBUS_SIG_TO_HOST, &tb);
	if (!err)
		err = vbd_guest_signal(g, le32toh(in.sig_to_guest), VBUS_SIG_TO_GUEST, &tg);
	if (!err && (off > size || VBUS_CALL_SIZE(entries) > size - off))
		err = -EINVAL;
	if (!err) {
		g->chan = calloc(1, sizeof(*g->chan));
		err = g->chan ? vbus_callchan_bus_init(g->chan, (uint8_t *)base + off, entries, tb, tg)
			      : -ENOMEM;
	}
	if (!err)
		err = -pthread_create(&g->chan_thread, NULL, chan_main, g);
	if (err) {
		free(g->chan);
		g->chan = NULL;
	}
	pthread_mutex_unlock(&g->lock);
	return err;
}

/*
 * One request. Returns the status sent back; the response is sent here. Descriptors in
 * rx are closed unless the request keeps them.
 */
static int handle(struct vbd_guest *g, struct vbus_rx *rx, uint8_t *out)
{
	uint32_t op = le32toh(rx->hdr.op), h = le32toh(rx->hdr.handle);
	size_t outlen = 0;
	int r, fd = -1;	/* fd: a descriptor the answer carries (DEVFD) */

	/* The fixed-size answers are built in place: no stale byte of an earlier one. */
	memset(out, 0, 64);
	if (!g->hello_done && op != VBUS_OP_HELLO) {
		r = -EPROTO;
		goto done;
	}
	if (op < VBUS_OP_HELLO || op > VBUS_OP_CHILD) {
		r = -EOPNOTSUPP;	/* whatever the rest of the header says */
		goto done;
	}
	if (rx->nfds && op != VBUS_OP_DEVSHM && op != VBUS_OP_DEVSIG) {
		r = -EINVAL;
		goto done;
	}
	/* Header fields an operation does not use must be zero (docs/abi.md, section 3). */
	{
		uint32_t arg = le32toh(rx->hdr.arg);
		bool uses_handle = op == VBUS_OP_DEVCLOSE || op == VBUS_OP_DEVCALL ||
				   op == VBUS_OP_DEVFD || op == VBUS_OP_CHILD;
		bool uses_arg = op == VBUS_OP_DEVCALL || op == VBUS_OP_SHMREVOKE ||
				op == VBUS_OP_SIGREVOKE || op == VBUS_OP_SHMSIGNAL;
		bool no_payload = op == VBUS_OP_DEVENUM || op == VBUS_OP_DEVCLOSE ||
				  op == VBUS_OP_SHMREVOKE || op == VBUS_OP_SIGREVOKE ||
				  op == VBUS_OP_SHMSIGNAL || op == VBUS_OP_DEVFD;

		if ((!uses_handle && h) || (!uses_arg && arg) || (no_payload && rx->len)) {
			r = -EINVAL;
			goto done;
		}
	}
	switch (op) {
	case VBUS_OP_HELLO:
		r = g->hello_done ? -EALREADY : do_hello(g, rx, (void *)out);
		outlen = sizeof(struct vbus_hello_out);
		break;
	case VBUS_OP_DEVENUM:
		r = rx->len ? -EINVAL : do_devenum(g, out, &outlen);
		break;
	case VBUS_OP_DEVOPEN:
		r = do_devopen(g, rx, (void *)out);
		outlen = sizeof(struct vbus_devopen_out);
		break;
	case VBUS_OP_DEVCLOSE:
		pthread_mutex_lock(&g->lock);
		r = slot_get(g, h, VBD_HANDLE) ? (slot_free(g, h & INDEX_MASK), 0) : -ENOENT;
		pthread_mutex_unlock(&g->lock);
		break;
	case VBUS_OP_DEVSHM:
	case VBUS_OP_DEVSIG:
		if (h) {
			r = -EINVAL;	/* regions and signals are the connection's */
			break;
		}
		pthread_mutex_lock(&g->lock);
		r = op == VBUS_OP_DEVSHM ? do_devshm(g, rx, (void *)out) : do_devsig(g, rx, (void *)out);
		pthread_mutex_unlock(&g->lock);
		if (r == 1) {
			rx->nfds = 0;	/* kept */
			r = 0;
		}
		outlen = sizeof(struct vbus_id_out);
		break;
	case VBUS_OP_SHMREVOKE:
	case VBUS_OP_SIGREVOKE:
		pthread_mutex_lock(&g->lock);
		r = do_revoke(g, le32toh(rx->hdr.arg), op == VBUS_OP_SHMREVOKE ? VBD_REGION : VBD_SIGNAL);
		pthread_mutex_unlock(&g->lock);
		break;
	case VBUS_OP_DEVCALL:
		r = devcall(g, h, le32toh(rx->hdr.arg), rx->payload, rx->len, out, VBUS_MAX_PAYLOAD,
			    &outlen);
		break;
	case VBUS_OP_CALLCHAN:
		r = g->features & VBUS_F_CALLCHAN ? do_callchan(g, rx) : -EOPNOTSUPP;
		break;
	case VBUS_OP_SHMSIGNAL: {
		struct vbd_slot *s;
		uint64_t one = 1;

		r = -EOPNOTSUPP;
		if (!(g->features & VBUS_F_SHMSIGNAL))
			break;
		pthread_mutex_lock(&g->slots_lock);
		s = slot_get(g, le32toh(rx->hdr.arg), VBD_SIGNAL);
		r = !s || s->direction != VBUS_SIG_TO_HOST ? -ENOENT :
		    write(s->fd, &one, sizeof(one)) == sizeof(one) ? 0 : -errno;
		pthread_mutex_unlock(&g->slots_lock);
		break;
	}
	case VBUS_OP_DEVFD:
		r = g->features & VBUS_F_DEVFD ? do_devfd(g, h, &fd) : -EOPNOTSUPP;
		break;
	case VBUS_OP_CHILD:
		r = g->features & VBUS_F_CHILD ? do_child(g, h, rx, &fd, (void *)out) :
		    -EOPNOTSUPP;
		/* the device's name too to a guest that knows the whitelist's form */
		outlen = g->features & VBUS_F_CHILD_WL ? sizeof(struct vbus_child_out) :
			 VBUS_CHILD_OUT_V1_SIZE;
		break;
	default:
		r = -EOPNOTSUPP;
	}
done:
	vbus_rx_close_fds(rx);
	if (r) {
		__atomic_fetch_add(&g->n_errors, 1, __ATOMIC_RELAXED);
		vbd_dbg("guest %u: op %u handle %u: %s", g->id, op, h, strerror(-r));
	}
	/* A guest that leaves its answers unread (the send times out after 2 s) is cut off. */
	r = reply(g, &rx->hdr, r, out, outlen, r ? -1 : fd);
	/* vbusd keeps no copy of a descriptor it handed over: the guest's keeps what it
	 * names alive (a kernel attachment), and it goes when the guest closes it. */
	if (fd >= 0)
		close(fd);
	return r;
}

/* One packet as it came off g's socket: checked, then handled (the fuzzing entry). */
int vbd_guest_request(struct vbd_guest *g, const void *buf, size_t n, int *fds, int nfds)
{
	static __thread struct vbus_rx rx;
	static __thread uint8_t out[VBUS_MAX_PAYLOAD];
	int err = vbus_msg_check(&rx, buf, n, nfds);

	rx.nfds = 0;
	for (int i = 0; i < nfds && i < VBUS_MAX_FDS; i++)
		rx.fds[rx.nfds++] = fds[i];
	if (err) {
		vbus_rx_close_fds(&rx);
		return err;
	}
	memcpy(rx.payload, (const uint8_t *)buf + sizeof(rx.hdr), rx.len);
	handle(g, &rx, out);
	return 0;
}

void vbd_guest_cancel(struct vbd_guest *g, const struct vbd_dev *d)
{
	pthread_mutex_lock(&g->slots_lock);
	for (uint32_t i = 1; i < g->slots_end; i++) {
		struct vbd_slot *s = vbd_slot(g, i);

		if (s->type == VBD_HANDLE && s->dev && (!d || s->dev == d) && s->dev->cls->cancel)
			s->dev->cls->cancel(s->inst);
	}
	pthread_mutex_unlock(&g->slots_lock);
}

void vbd_guests_dev_added(struct vbd_bus *b, const char *name)
{
	for (struct vbd_guest *g = vbd.guests; g; g = g->next)
		if (g->bus == b)
			vbd_guest_send_event(g, VBUS_EV_DEV_ADDED, 0, 0, name, strlen(name) + 1);
}

/* A VM connection's hold on its VM (g->vm): the RAM, the signal vectors, and last the
 * done pipe, whose closing tells vm_chan.c that everything the connection held is freed
 * (it answers the VM's RESET then). Each part may be absent. */
static void guest_vm_release(struct vbd_guest *g)
{
	if (g->vm.ram_fd >= 0)
		close(g->vm.ram_fd);
	vbd_vm_sigs_put(g->vm.sigs);
	vbd_vm_maps_put(g->vm.maps);
	if (g->vm.done_fd >= 0)
		close(g->vm.done_fd);
	g->vm.ram_fd = g->vm.done_fd = -1;
	g->vm.sigs = NULL;
	g->vm.maps = NULL;
}

static void guest_free(struct vbd_guest *g)
{
	struct vbd_guest **pp;

	vbd_guest_cancel(g, NULL);	/* a call still running on the channel ends soon */
	if (g->chan) {
		uint64_t one = 1;

		__atomic_store_n(&g->chan_stop, true, __ATOMIC_RELEASE);
		if (write(g->chan->to_bus.efd, &one, sizeof(one)) < 0)
			gwarn(g, "%s", "cannot wake the call thread");
		pthread_join(g->chan_thread, NULL);
		free(g->chan);
	}

	pthread_mutex_lock(&vbd.lock);
	for (pp = &vbd.guests; *pp; pp = &(*pp)->next)
		if (*pp == g) {
			*pp = g->next;
			break;
		}
	if (!g->child.cls)
		g->bus->n_guests--;
	pthread_mutex_lock(&g->lock);
	/* Devices first (they may map regions and use signals), then the rest. */
	for (uint32_t i = 1; i < g->slots_end; i++)
		if (vbd_slot(g, i)->type == VBD_HANDLE)
			slot_free(g, i);
	for (uint32_t i = 1; i < g->slots_end; i++)
		if (vbd_slot(g, i)->type != VBD_FREE)
			slot_free(g, i);
	pthread_mutex_unlock(&g->lock);
	pthread_mutex_unlock(&vbd.lock);
	vbd_info("guest %u (pid %d) gone: %llu calls, %llu errors", g->id, (int)g->pid,
		 (unsigned long long)g->n_calls, (unsigned long long)g->n_errors);
	/* Shut down, not only closed: a child connection's socket has another copy (its
	 * parent handle's), and its holder must see the end now. */
	shutdown(g->sock, SHUT_RDWR);
	close(g->sock);
	vbd_caller_fini(&g->caller);
	guest_vm_release(g);
	if (g->child.cls)
		g->child.cls->child_put(g->child.token);
	pthread_mutex_destroy(&g->lock);
	pthread_mutex_destroy(&g->send_lock);
	pthread_mutex_destroy(&g->slots_lock);
	pthread_mutex_destroy(&g->quota_lock);
	for (uint32_t i = 0; i < VBD_MAX_SLOTS / VBD_SLOT_CHUNK; i++)
		free(g->slot_chunks[i]);
	free(g);
}

static void *guest_main(void *arg)
{
	struct vbd_guest *g = arg;
	struct vbus_rx *rx = malloc(sizeof(*rx));
	uint8_t *out = malloc(VBUS_MAX_PAYLOAD);

	while (rx && out) {
		int r = vbus_msg_recv(g->sock, rx);

		if (r == -ECONNRESET || r == -EBADF || r == -ENOTCONN) {
			g->left = !__atomic_load_n(&vbd.stopping, __ATOMIC_RELAXED);
			break;
		}
		if (r) {
			gwarn(g, "bad message: %s; closing the connection", strerror(-r));
			break;
		}
		if (handle(g, rx, out)) {
			gwarn(g, "%s", "does not read its answers: disconnected");
			break;
		}
	}
	free(rx);
	free(out);
	guest_free(g);
	return NULL;
}

static bool allowed(const struct vbd_bus *b, uid_t uid, gid_t gid)
{
	if (b->allow_all || uid == 0)
		return true;
	for (int i = 0; i < b->n_uid; i++)
		if (b->allow_uid[i] == uid)
			return true;
	for (int i = 0; i < b->n_gid; i++)
		if (b->allow_gid[i] == gid)
			return true;
	return false;
}

/*
 * Under vbd.lock: make guest connection fd (ours from now on) on bus b, with credentials
 * cr, and give it a thread. placed: the administrator put it on the bus (a VM), so the
 * access list does not apply. On a refusal the connection gets it as a HELLO answer and is
 * closed. Returns 0 or -errno.
 */
static int guest_attach(struct vbd_bus *b, int fd, const struct ucred *cr, bool placed,
			const struct vbd_guest_vm *vm, const struct vbd_guest_child *child)
{
	struct vbd_guest *g;
	pthread_attr_t at;
	bool ok = placed || allowed(b, cr->uid, cr->gid), full;

	/* A child connection counts in its root's objects (class_vrdma.c), not in the bus's
	 * guests: a middle level's guests cannot fill the bus for its other tenants. */
	if (!child && b->n_guests >= b->max_guests)
		vbd_kernel_linger_prune();	/* the bus may be full of closed ones */
	full = !child && b->n_guests >= b->max_guests;
	if (vbd.stopping || !ok || full) {
		int why = vbd.stopping ? -ESHUTDOWN : !ok ? -EACCES : -EUSERS;

		vbd_warn("bus %s: connection of pid %d uid %u refused: %s", b->name, (int)cr->pid,
			 (unsigned)cr->uid, strerror(-why));
		/* The refusal, as a HELLO answer with seq 0 (docs/abi.md, handshake step 3). */
		vbus_msg_send(fd, VBUS_OP_HELLO, 0, 0, 0, why, NULL, 0, NULL, 0);
		close(fd);
		return why;
	}
	g = calloc(1, sizeof(*g));
	if (!g) {
		close(fd);
		return -ENOMEM;
	}
	g->vm.ram_fd = g->vm.done_fd = -1;
	if (vm) {
		g->vm.ram_fd = fcntl(vm->ram_fd, F_DUPFD_CLOEXEC, 0);
		g->vm.done_fd = fcntl(vm->done_fd, F_DUPFD_CLOEXEC, 0);
		g->vm.ram_layout = vm->ram_layout;
		if (g->vm.ram_fd < 0 || g->vm.done_fd < 0) {
			int err = -errno;

			guest_vm_release(g);
			close(fd);
			free(g);
			return err;
		}
		g->vm.sigs = vbd_vm_sigs_get(vm->sigs);
		g->vm.maps = vbd_vm_maps_get(vm->maps);
	}
	if (child)
		g->child = *child;
	g->id = vbd.next_guest_id++;
	g->sock = fd;
	vbd_caller_init(&g->caller, vm ? 0 : cr->pid);
	g->pid = cr->pid;
	g->uid = cr->uid;
	g->gid = cr->gid;
	g->bus = b;
	pthread_mutex_init(&g->lock, NULL);
	pthread_mutex_init(&g->send_lock, NULL);
	pthread_mutex_init(&g->slots_lock, NULL);
	pthread_mutex_init(&g->quota_lock, NULL);
	pthread_attr_init(&at);
	pthread_attr_setdetachstate(&at, PTHREAD_CREATE_DETACHED);
	if (pthread_create(&g->thread, &at, guest_main, g)) {
		close(fd);
		vbd_caller_fini(&g->caller);
		guest_vm_release(g);
		free(g);
		return -EAGAIN;
	}
	g->next = vbd.guests;
	vbd.guests = g;
	if (!child)
		b->n_guests++;
	/* Logged under the lock: once it is released the guest may already be gone. */
	if (child)
		vbd_info("bus %s: guest %u connected (pid %d uid %u, a child of guest %u's "
			 "handle 0x%x on %s)", b->name, g->id, (int)cr->pid, (unsigned)cr->uid,
			 child->parent_id, child->parent_handle, child->dev);
	else
		vbd_info("bus %s: guest %u connected (%s %d uid %u)", b->name, g->id,
			 placed ? "VM, QEMU pid" : "pid", (int)cr->pid, (unsigned)cr->uid);
	return 0;
}

/* A connection on bus b's socket: check who it is, then give it a thread. */
void vbd_guest_accept(struct vbd_bus *b)
{
	struct ucred cr;
	socklen_t len = sizeof(cr);
	int fd = accept4(b->listen_fd, NULL, NULL, SOCK_CLOEXEC);

	if (fd < 0)
		return;
	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cr, &len) ||
	    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &(struct timeval){ .tv_sec = 2 },
		       sizeof(struct timeval))) {
		close(fd);
		return;
	}
	pthread_mutex_lock(&vbd.lock);
	guest_attach(b, fd, &cr, false, NULL, NULL);
	pthread_mutex_unlock(&vbd.lock);
}

int vbd_guest_connect(const char *bus, int fd, pid_t pid, const struct vbd_guest_vm *vm)
{
	struct ucred cr = { .pid = pid, .uid = getuid(), .gid = getgid() };
	struct vbd_bus *b;
	int r = -ENOENT;

	if (setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &(struct timeval){ .tv_sec = 2 },
		       sizeof(struct timeval))) {
		r = -errno;
		close(fd);
		return r;
	}
	pthread_mutex_lock(&vbd.lock);
	for (b = vbd.buses; b && strcmp(b->name, bus); b = b->next)
		;
	if (b)
		r = guest_attach(b, fd, &cr, true, vm, NULL);
	else
		close(fd);
	pthread_mutex_unlock(&vbd.lock);
	return r;
}
