// SPDX-License-Identifier: MIT
/*
 * The bus model: buses (named containers with an access list and quotas) and devices
 * (a class, attributes, membership of buses), added and removed at run time. Removing a
 * device that guests hold open closes their instances and tells them (hot remove).
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>
#include "msg.h"
#include "vbusd.h"
#include "vm.h"

struct vbd vbd = { .lock = PTHREAD_MUTEX_INITIALIZER, .next_guest_id = 1 };
int vbd_epfd = -1;

static int fail(char *err, size_t n, int code, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(err, n, fmt, ap);
	va_end(ap);
	return code;
}

static struct vbd_bus *bus_find(const char *name)
{
	for (struct vbd_bus *b = vbd.buses; b; b = b->next)
		if (!strcmp(b->name, name))
			return b;
	return NULL;
}

static struct vbd_dev *dev_find(const char *name)
{
	for (struct vbd_dev *d = vbd.devs; d; d = d->next)
		if (!strcmp(d->name, name))
			return d;
	return NULL;
}

static int valid_name(const char *s)
{
	char tmp[VBUS_NAME_MAX];

	return strlen(s) < VBUS_NAME_MAX && !vbus_name_get(tmp, s, VBUS_NAME_MAX);
}

/* Parse a non-negative number with an optional K/M/G suffix. */
static int parse_num(const char *s, uint64_t *v)
{
	char *end;
	unsigned long long x;

	errno = 0;
	x = strtoull(s, &end, 0);
	if (errno || end == s || *s == '-')
		return -EINVAL;
	switch (*end) {
	case 'K': case 'k': x <<= 10; end++; break;
	case 'M': case 'm': x <<= 20; end++; break;
	case 'G': case 'g': x <<= 30; end++; break;
	}
	if (*end)
		return -EINVAL;
	*v = x;
	return 0;
}

static int bus_listen(struct vbd_bus *b)
{
	char dir[128];
	int fd;

	snprintf(dir, sizeof(dir), "%s/bus", vbd.run_dir);
	mkdir(dir, 0755);
	if (snprintf(b->path, sizeof(b->path), "%s/%s.sock", dir, b->name) >= (int)sizeof(b->path))
		return -ENAMETOOLONG;
	/* Anyone may connect; the access list is checked on the peer's credentials. */
	fd = vbd_listen(b->path, 0666, 64);
	if (fd < 0)
		return fd;
	b->listen_fd = fd;
	return 0;
}

int vbd_bus_add(const char *name, char **o, int n, char *err, size_t errn)
{
	struct vbd_bus *b;
	uint64_t v;
	int r;

	if (!valid_name(name))
		return fail(err, errn, -EINVAL, "bad bus name '%s'", name);
	b = calloc(1, sizeof(*b));
	if (!b)
		return -ENOMEM;
	snprintf(b->name, sizeof(b->name), "%s", name);
	b->max_guests = 64;
	/* Enough for what a native process can hold within its default 1024 open files:
	 * about 500 contexts (a handle each), each with a doorbell and a few rings. */
	b->max_handles = 1024;
	b->max_regions = 4096;
	b->max_shm_bytes = 1ull << 30;
	b->bus_max_handles = 16384;
	b->bus_max_shm = 16ull << 30;
	for (int i = 0; i < n; i++) {
		const char *k = o[i], *val = i + 1 < n ? o[i + 1] : NULL;

		if (!strcmp(k, "allow") && val && !strcmp(val, "all")) {
			b->allow_all = true;
			i++;
			continue;
		}
		if (!strcmp(k, "allow") && val && i + 2 < n &&
		    (!strcmp(val, "uid") || !strcmp(val, "gid"))) {
			if (parse_num(o[i + 2], &v) || v > UINT32_MAX) {
				r = fail(err, errn, -EINVAL, "bad %s '%s'", val, o[i + 2]);
				goto err_free;
			}
			if (val[0] == 'u' && b->n_uid < 8)
				b->allow_uid[b->n_uid++] = (uid_t)v;
			else if (val[0] == 'g' && b->n_gid < 8)
				b->allow_gid[b->n_gid++] = (gid_t)v;
			else {
				r = fail(err, errn, -E2BIG, "at most 8 uids and 8 gids");
				goto err_free;
			}
			i += 2;
			continue;
		}
		if (!val || parse_num(val, &v)) {
			r = fail(err, errn, -EINVAL, "bus option '%s' needs a value", k);
			goto err_free;
		}
		if (!strcmp(k, "max-guests") && v <= 4096)
			b->max_guests = (uint32_t)v;
		else if (!strcmp(k, "max-handles") && v < VBD_MAX_SLOTS)
			b->max_handles = (uint32_t)v;
		else if (!strcmp(k, "max-regions") && v < VBD_MAX_SLOTS)
			b->max_regions = (uint32_t)v;
		else if (!strcmp(k, "max-shm"))
			b->max_shm_bytes = v;
		else if (!strcmp(k, "bus-max-handles") && v <= UINT32_MAX)
			b->bus_max_handles = (uint32_t)v;
		else if (!strcmp(k, "bus-max-shm"))
			b->bus_max_shm = v;
		else {
			r = fail(err, errn, -EINVAL, "unknown or out-of-range bus option '%s %s'", k, val);
			goto err_free;
		}
		i++;
	}
	pthread_mutex_lock(&vbd.lock);
	if (bus_find(name)) {
		pthread_mutex_unlock(&vbd.lock);
		r = fail(err, errn, -EEXIST, "bus '%s' exists", name);
		goto err_free;
	}
	r = bus_listen(b);
	if (!r) {
		struct epoll_event e = { .events = EPOLLIN, .data.ptr = b };

		if (epoll_ctl(vbd_epfd, EPOLL_CTL_ADD, b->listen_fd, &e))
			r = -errno;
	}
	if (r) {
		pthread_mutex_unlock(&vbd.lock);
		fail(err, errn, r, "cannot listen for bus '%s': %s", name, strerror(-r));
		goto err_free;
	}
	b->next = vbd.buses;
	vbd.buses = b;
	pthread_mutex_unlock(&vbd.lock);
	vbd_info("bus %s added (%s)", name, b->path);
	return 0;

err_free:
	free(b);
	return r;
}

int vbd_bus_del(const char *name, char *err, size_t errn)
{
	struct vbd_bus **pp, *b;

	pthread_mutex_lock(&vbd.lock);
	for (pp = &vbd.buses; (b = *pp); pp = &b->next)
		if (!strcmp(b->name, name))
			break;
	if (!b) {
		pthread_mutex_unlock(&vbd.lock);
		return fail(err, errn, -ENOENT, "no bus '%s'", name);
	}
	for (struct vbd_dev *d = vbd.devs; d; d = d->next)
		for (int i = 0; i < d->n_buses; i++)
			if (d->buses[i] == b) {
				pthread_mutex_unlock(&vbd.lock);
				return fail(err, errn, -EBUSY, "device '%s' is on bus '%s'", d->name, name);
			}
	if (b->n_guests) {
		pthread_mutex_unlock(&vbd.lock);
		return fail(err, errn, -EBUSY, "bus '%s' has %u guests", name, b->n_guests);
	}
	{
		char vm[VBUS_NAME_MAX];

		if (vbd_vm_on_bus(name, vm)) {
			pthread_mutex_unlock(&vbd.lock);
			return fail(err, errn, -EBUSY, "vm '%s' is on bus '%s'", vm, name);
		}
	}
	*pp = b->next;
	epoll_ctl(vbd_epfd, EPOLL_CTL_DEL, b->listen_fd, NULL);
	close(b->listen_fd);
	unlink(b->path);
	pthread_mutex_unlock(&vbd.lock);
	vbd_info("bus %s removed", name);
	free(b);
	return 0;
}

int vbd_dev_add(const char *name, const char *cls, char **o, int n, char *err, size_t errn)
{
	char why[160] = "";
	struct vbd_dev *d;
	int r;

	if (!valid_name(name))
		return fail(err, errn, -EINVAL, "bad device name '%s'", name);
	d = calloc(1, sizeof(*d));
	if (!d)
		return -ENOMEM;
	snprintf(d->name, sizeof(d->name), "%s", name);
	d->cls = vbd_class_find(cls);
	if (!d->cls) {
		r = fail(err, errn, -ENOENT, "no device class '%s' (known: echo, vrdma)", cls);
		goto err_free;
	}
	pthread_mutex_lock(&vbd.lock);
	for (int i = 0; i < n; i++) {
		const char *k = o[i], *eq;

		if (!strcmp(k, "bus") && i + 1 < n) {
			struct vbd_bus *b = bus_find(o[++i]);

			if (!b || d->n_buses == VBD_MAX_DEV_BUSES) {
				r = fail(err, errn, b ? -E2BIG : -ENOENT, b ? "too many buses" :
					 "no bus '%s'", o[i]);
				goto err_unlock;
			}
			d->buses[d->n_buses++] = b;
			continue;
		}
		if (!strcmp(k, "attr") && i + 1 < n)
			k = o[++i];
		eq = strchr(k, '=');
		if (!eq || eq == k || (size_t)(eq - k) >= sizeof(d->attr_key[0]) ||
		    strlen(eq + 1) >= sizeof(d->attr_val[0]) || d->n_attrs == VBD_MAX_ATTRS) {
			r = fail(err, errn, -EINVAL, "bad attribute '%s' (want key=value)", k);
			goto err_unlock;
		}
		memcpy(d->attr_key[d->n_attrs], k, (size_t)(eq - k));
		snprintf(d->attr_val[d->n_attrs++], sizeof(d->attr_val[0]), "%s", eq + 1);
	}
	if (!d->n_buses) {
		r = fail(err, errn, -EINVAL, "a device needs 'bus NAME'");
		goto err_unlock;
	}
	if (dev_find(name)) {
		r = fail(err, errn, -EEXIST, "device '%s' exists", name);
		goto err_unlock;
	}
	r = d->cls->dev_init(d, why, sizeof(why));
	if (r) {
		fail(err, errn, r, "class %s refused device '%s': %s", cls, name,
		     why[0] ? why : strerror(-r));
		goto err_unlock;
	}
	d->next = vbd.devs;
	vbd.devs = d;
	for (int i = 0; i < d->n_buses; i++)
		vbd_guests_dev_added(d->buses[i], d->name);
	pthread_mutex_unlock(&vbd.lock);
	vbd_info("device %s (class %s) added", name, cls);
	return 0;

err_unlock:
	pthread_mutex_unlock(&vbd.lock);
err_free:
	free(d);
	return r;
}

/* Close every instance of d that guests hold, and tell them. Called with vbd.lock. */
static void hot_remove(struct vbd_dev *d)
{
	for (struct vbd_guest *g = vbd.guests; g; g = g->next) {
		/* A call running on d ends soon (-ECANCELED): g->lock is then free. */
		vbd_guest_cancel(g, d);
		pthread_mutex_lock(&g->lock);
		for (uint32_t h = 1; h < g->slots_end; h++) {
			struct vbd_slot *s = vbd_slot(g, h);

			if (s->type != VBD_HANDLE || s->dev != d)
				continue;
			pthread_mutex_lock(&g->slots_lock);
			vbd_slot_end_kids(s);
			d->cls->close(s->inst);
			s->inst = NULL;
			s->dev = NULL;	/* the handle stays, dead: calls get -ENODEV */
			pthread_mutex_unlock(&g->slots_lock);
			d->n_open--;
			vbd_guest_send_event(g, VBUS_EV_DEV_REMOVED, vbd_slot_id(g, h), 0, NULL, 0);
		}
		pthread_mutex_unlock(&g->lock);
	}
}

int vbd_dev_del(const char *name, char *err, size_t errn)
{
	struct vbd_dev **pp, *d;

	pthread_mutex_lock(&vbd.lock);
	for (pp = &vbd.devs; (d = *pp); pp = &d->next)
		if (!strcmp(d->name, name))
			break;
	if (!d) {
		pthread_mutex_unlock(&vbd.lock);
		return fail(err, errn, -ENOENT, "no device '%s'", name);
	}
	*pp = d->next;
	hot_remove(d);
	d->cls->dev_fini(d);
	pthread_mutex_unlock(&vbd.lock);
	vbd_info("device %s removed", name);
	free(d);
	return 0;
}

/* Remove the devices whose class says they are gone (vbd_class.gone), one at a time, as
 * `dev del` would. Main loop only, like the control socket, so no command races it. */
void vbd_dev_check(void)
{
	char name[VBUS_NAME_MAX], err[160];

	pthread_mutex_lock(&vbd.lock);
	vbd_kernel_linger_prune();	/* attachments left to a closed descriptor: gone */
	pthread_mutex_unlock(&vbd.lock);
	for (int n = 0; n < 64; n++) {
		struct vbd_dev *d;

		name[0] = 0;
		pthread_mutex_lock(&vbd.lock);
		for (d = vbd.devs; d; d = d->next)
			if (d->cls->gone && d->cls->gone(d)) {
				snprintf(name, sizeof(name), "%s", d->name);
				break;
			}
		pthread_mutex_unlock(&vbd.lock);
		if (!name[0])
			return;
		vbd_warn("device %s: the device behind it is gone: removing it from the bus", name);
		if (vbd_dev_del(name, err, sizeof(err)))
			return;
	}
}

/* SIGTERM: tell every guest, close every connection, remove every socket. */
void vbd_shutdown(void)
{
	struct vbd_guest *g;

	vbd_vm_shutdown();	/* their QEMUs first: nothing of a VM outlives vbusd's exit */
	pthread_mutex_lock(&vbd.lock);
	__atomic_store_n(&vbd.stopping, true, __ATOMIC_RELAXED);
	for (g = vbd.guests; g; g = g->next) {
		vbd_guest_send_event(g, VBUS_EV_SHUTDOWN, 0, 0, NULL, 0);
		vbd_guest_cancel(g, NULL);
		shutdown(g->sock, SHUT_RDWR);
	}
	pthread_mutex_unlock(&vbd.lock);
	/* Guest threads unlink themselves; wait for them. */
	for (int i = 0; i < 500; i++) {
		pthread_mutex_lock(&vbd.lock);
		g = vbd.guests;
		pthread_mutex_unlock(&vbd.lock);
		if (!g)
			break;
		usleep(10000);
	}
	while (vbd.devs) {
		struct vbd_dev *d = vbd.devs;

		vbd.devs = d->next;
		d->cls->dev_fini(d);
		free(d);
	}
	while (vbd.buses) {
		struct vbd_bus *b = vbd.buses;

		vbd.buses = b->next;
		close(b->listen_fd);
		unlink(b->path);
		free(b);
	}
}
