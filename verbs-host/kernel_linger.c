// SPDX-License-Identifier: MIT
/*
 * Kernel-backend attachments whose guest left the bus while a descriptor of theirs lives
 * on elsewhere (a forked child, an SCM_RIGHTS receiver): as a uverbs file's objects, they
 * live until that descriptor's last close, which the module sees itself. vbusd keeps only
 * their names here, to revoke them with their device (`vbusctl dev del`); the admin
 * descriptor's close (vbusd's exit) and the backing device's unregistration revoke them in
 * the module as every other. Each counts as a guest of its bus (max-guests) while it lives,
 * so that a guest cannot leave attachments behind without bound by reconnecting;
 * vbd_kernel_linger_prune (each pass of vbusd's loop, and before a full bus refuses a
 * connection) drops those whose descriptor has closed. Called under vbd.lock, which also
 * guards the buses' counts.
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <vbus/vrdma-kernel.h>
#include "vbusd.h"

struct linger {
	const void *dev;		/* the device's private data, only compared */
	struct vbd_bus *bus;		/* whose n_guests it counts in */
	int owner_fd;			/* what it was made through: -1 admin */
	uint32_t guest_id;
	uint64_t tag;
};

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static struct linger *list;
static size_t n, cap;

static bool open_still(const struct linger *l)
{
	struct vbk_stats st;

	return vbd_kernel_stats_on(l->owner_fd, l->guest_id, &st) != -ENOENT;
}

/* Drop the entries whose attachment has closed (all of dev's, revoked first, when dev is
 * not NULL). */
static void prune(const void *dev)
{
	size_t i, k = 0;

	for (i = 0; i < n; i++) {
		if (dev && list[i].dev == dev)
			vbd_kernel_revoke_on(list[i].owner_fd, list[i].tag);
		else if (open_still(&list[i])) {
			list[k++] = list[i];
			continue;
		}
		list[i].bus->n_guests--;
	}
	n = k;
}

void vbd_kernel_linger_prune(void)
{
	pthread_mutex_lock(&lock);
	prune(NULL);
	pthread_mutex_unlock(&lock);
}

void vbd_kernel_linger(const void *dev, struct vbd_bus *bus, int owner_fd, uint64_t tag,
		       uint32_t guest_id)
{
	pthread_mutex_lock(&lock);
	prune(NULL);
	if (n == cap) {
		size_t c = cap ? 2 * cap : 16;
		struct linger *p = realloc(list, c * sizeof(*p));

		if (!p) {	/* cannot remember it: end it now, as before the guest left */
			pthread_mutex_unlock(&lock);
			vbd_kernel_revoke_on(owner_fd, tag);
			return;
		}
		list = p;
		cap = c;
	}
	list[n++] = (struct linger){ dev, bus, owner_fd, guest_id, tag };
	bus->n_guests++;
	pthread_mutex_unlock(&lock);
}

void vbd_kernel_linger_end(const void *dev)
{
	pthread_mutex_lock(&lock);
	prune(dev);
	pthread_mutex_unlock(&lock);
}
