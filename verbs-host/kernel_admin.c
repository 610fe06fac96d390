// SPDX-License-Identifier: MIT
/*
 * The admin descriptor of the kernel backend's module (/dev/vbus-vrdma,
 * include/vbus/vrdma-kernel.h). vbusd opens it once, when the first device asks for the
 * kernel backend, and keeps it until it exits: closing it (vbusd's death) makes the
 * module revoke every attachment made through it. Attachments are made here, one per
 * guest open, and their counters read back for `vbusctl res show`.
 *
 * A nested vbusd in passthrough mode (docs/nesting.md) has no admin descriptor: its
 * guests' attachments are children of its own (VBK_IOC_CHILD on the descriptor its guest
 * library holds), and the *_on functions take that descriptor (-1: the admin one).
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>
#include <vbus/vrdma.h>
#include <vbus/vrdma-kernel.h>
#include "vbusd.h"

static pthread_mutex_t admin_lock = PTHREAD_MUTEX_INITIALIZER;
static int admin_fd = -1;	/* set once, never closed */

/* $VBUS_VRDMA_ADMIN (tests, a /dev mounted elsewhere), else /dev/vbus-vrdma. */
const char *vbd_kernel_admin_path(void)
{
	const char *p = getenv("VBUS_VRDMA_ADMIN");

	return p && *p ? p : "/dev/" VBK_DEV_NAME;
}

/* Open the admin descriptor if it is not open yet. 0, or -errno with the reason in err. */
int vbd_kernel_admin_open(char *err, size_t errn)
{
	const char *path = vbd_kernel_admin_path();
	int fd, r = 0;

	pthread_mutex_lock(&admin_lock);
	if (admin_fd >= 0)
		goto out;
	fd = open(path, O_RDWR | O_CLOEXEC);
	if (fd < 0) {
		r = -errno;
		snprintf(err, errn, "cannot open %s: %s%s", path, strerror(-r),
			 r == -ENOENT ? " (the vbus_vrdma kernel module is not loaded)" :
			 r == -EACCES || r == -EPERM ? " (vbusd must run as root)" : "");
		goto out;
	}
	__atomic_store_n(&admin_fd, fd, __ATOMIC_RELEASE);
	vbd_info("kernel backend: %s open (kept until vbusd exits)", path);
out:
	pthread_mutex_unlock(&admin_lock);
	return r;
}

static int admin(void)
{
	return __atomic_load_n(&admin_fd, __ATOMIC_ACQUIRE);
}

/* A new attachment (VBK_IOC_ATTACH): its descriptor in *fd, or -errno. A module older
 * than the whitelist takes only VBK_ATTACH_SIZE_V1 bytes: asked again so when a's
 * whitelist is the whole one, else -EOPNOTSUPP (it could not narrow it). A module older
 * than foreign attachments refuses a's flags (E2BIG: a tail it does not know, not zero):
 * -EOPNOTSUPP too. */
int vbd_kernel_attach(const struct vbk_attach *a, int *fd)
{
	int r;

	if (admin() < 0)
		return -ENODEV;	/* no device resolved to the kernel backend */
	r = ioctl(admin(), VBK_IOC_ATTACH, a);
	if (r < 0 && a->flags && (errno == E2BIG || errno == ENOTTY))
		return -EOPNOTSUPP;
	if (r < 0 && errno == ENOTTY) {
		if (a->qp_types != VRDMA_WL_QP_TYPES || a->access != VRDMA_WL_ACCESS)
			return -EOPNOTSUPP;
		r = ioctl(admin(), _IOC(_IOC_WRITE, VBK_IOC_MAGIC, _IOC_NR(VBK_IOC_ATTACH),
					VBK_ATTACH_SIZE_V1), a);
	}
	if (r < 0)
		return -errno;
	*fd = r;
	return 0;
}

/* Whether the loaded module takes the whitelist (VBK_ATTACH_SIZE_V2): an ATTACH naming no
 * device is EINVAL to one that knows the size, ENOTTY to an older one. */
bool vbd_kernel_has_whitelist(void)
{
	struct vbk_attach a = { .max_objects = 1 };

	return admin() >= 0 && ioctl(admin(), VBK_IOC_ATTACH, &a) < 0 && errno != ENOTTY;
}

/* A child of the attachment `parent` (VBK_IOC_CHILD): its descriptor in *fd, or -errno
 * (vrdma-kernel.h says which refusal is which). */
int vbd_kernel_child(int parent, const struct vbk_child *c, int *fd)
{
	int r = ioctl(parent, VBK_IOC_CHILD, c);

	if (r < 0)
		return -errno;
	*fd = r;
	return 0;
}

/* The descriptor the attachments were made through: `fd`, or the admin one when -1. */
static int owner(int fd)
{
	return fd >= 0 ? fd : admin();
}

/* End the attachment tagged `tag` (VBK_IOC_REVOKE): its guest's descriptor fails from now
 * on. 0 or -errno (-ENOENT: the guest had closed it already). */
int vbd_kernel_revoke_on(int fd, uint64_t tag)
{
	if (owner(fd) < 0)
		return -ENODEV;
	return ioctl(owner(fd), VBK_IOC_REVOKE, &tag) < 0 ? -errno : 0;
}

int vbd_kernel_revoke(uint64_t tag)
{
	return vbd_kernel_revoke_on(-1, tag);
}

/* The counters of guest_id's attachment (VBK_IOC_STATS). 0 or -errno. A module older than
 * the quota counters takes only VBK_STATS_SIZE_V1 bytes: asked again so, they read 0. */
int vbd_kernel_stats_on(int fd, uint32_t guest_id, struct vbk_stats *st)
{
	memset(st, 0, sizeof(*st));
	st->guest_id = guest_id;
	if (owner(fd) < 0)
		return -ENODEV;
	if (!ioctl(owner(fd), VBK_IOC_STATS, st))
		return 0;
	if (errno != ENOTTY)
		return -errno;
	return ioctl(owner(fd), _IOC(_IOC_READ | _IOC_WRITE, VBK_IOC_MAGIC,
				     _IOC_NR(VBK_IOC_STATS), VBK_STATS_SIZE_V1), st) < 0 ? -errno : 0;
}

int vbd_kernel_stats(uint32_t guest_id, struct vbk_stats *st)
{
	return vbd_kernel_stats_on(-1, guest_id, st);
}

int vbd_kernel_res(uint32_t guest_id, struct vbk_res_obj **objs, uint32_t *n)
{
	return vbd_kernel_res_on(-1, guest_id, objs, n);
}

/*
 * VBK_IOC_RES and VBK_IOC_TREE share their shape (guest_id, count, a user pointer to count
 * records, count set to how many there are): the records of guest_id's attachment, asked
 * again with more room while they do not fit. *recs is malloc'ed (the caller frees).
 */
struct owner_list {
	uint32_t guest_id;
	uint32_t count;
	uint64_t recs;
};
_Static_assert(sizeof(struct owner_list) == sizeof(struct vbk_res) &&
	       sizeof(struct owner_list) == sizeof(struct vbk_tree), "VBK_IOC_RES/TREE shape");

static int owner_list(int fd, unsigned long cmd, uint32_t guest_id, size_t size, void **recs,
		      uint32_t *n)
{
	uint32_t room = 64;

	if (owner(fd) < 0)
		return -ENODEV;
	for (;;) {
		struct owner_list l = { .guest_id = guest_id, .count = room };
		void *p = calloc(room, size);

		if (!p)
			return -ENOMEM;
		l.recs = (uintptr_t)p;
		if (ioctl(owner(fd), cmd, &l) < 0) {
			int err = -errno;

			free(p);
			return err;
		}
		if (l.count <= room) {
			*recs = p;
			*n = l.count;
			return 0;
		}
		free(p);
		room = l.count + 16;	/* it grew: ask again with room to spare */
	}
}

int vbd_kernel_res_on(int fd, uint32_t guest_id, struct vbk_res_obj **objs, uint32_t *n)
{
	return owner_list(fd, VBK_IOC_RES, guest_id, sizeof(**objs), (void **)objs, n);
}

int vbd_kernel_tree_on(int fd, uint32_t guest_id, struct vbk_tree_node **nodes, uint32_t *n)
{
	return owner_list(fd, VBK_IOC_TREE, guest_id, sizeof(**nodes), (void **)nodes, n);
}
