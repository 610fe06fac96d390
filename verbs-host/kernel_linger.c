// SPDX-License-Identifier: MIT
/*
 * Kernel-backend attachments whose guest left the bus while a descriptor of theirs lives
 * on elsewhere (a forked child, an SCM_RIGHTS receiver): as a uverbs file's objects, they
 * live until that descriptor's last close, which the module sees itself. vbusd keeps only
 * their names here, to revoke them with their device (`vbusctl dev del`); the admin
 * descriptor's close (vbusd's exit) and the backing device's unregistration revoke them in
 * the module as every other. An entry whose attachment has closed is dropped when the next
 * is added, so the list holds what is still open.
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <vbus/vrdma-kernel.h>
#include "vbusd.h"

struct linger {
	const void *dev;		/* the device's private data, only compared */
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

void vbd_kernel_linger(const void *dev, int owner_fd, uint64_t tag, uint32_t guest_id)
{
	size_t i, k = 0;

	pthread_mutex_lock(&lock);
	for (i = 0; i < n; i++)
		if (open_still(&list[i]))
			list[k++] = list[i];
	n = k;
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
	list[n++] = (struct linger){ dev, owner_fd, guest_id, tag };
	pthread_mutex_unlock(&lock);
}

void vbd_kernel_linger_end(const void *dev)
{
	size_t i, k = 0;

	pthread_mutex_lock(&lock);
	for (i = 0; i < n; i++)
		if (list[i].dev == dev)
			vbd_kernel_revoke_on(list[i].owner_fd, list[i].tag);
		else
			list[k++] = list[i];
	n = k;
	pthread_mutex_unlock(&lock);
}
