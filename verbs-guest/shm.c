// SPDX-License-Identifier: MIT
/*
 * Shared regions for queues: a sealed memfd, mapped here and handed to the bus with
 * DEVSHM. Never inherited across fork (MADV_DONTFORK), as rdma-core's queues are not.
 */
#include <errno.h>
#include <sys/mman.h>
#include <unistd.h>
#include "vbg.h"

/* 0 or -errno. */
int vbg_shm_new(struct vbg_context *ctx, size_t size, const char *name, struct vbg_shm *s)
{
	struct vbus_conn *c = vbg_conn();
	long page = sysconf(_SC_PAGESIZE);
	int fd, err;

	size = (size + (size_t)page - 1) & ~((size_t)page - 1);
	if (ctx->kfd >= 0) {	/* the module pins our own pages: no region to hand over */
		s->base = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
			       -1, 0);
		if (s->base == MAP_FAILED)
			return -errno;
		madvise(s->base, size, MADV_DONTFORK);
		s->size = size;
		s->id = 0;
		return 0;
	}
	if (!c)
		return -ENOTCONN;
	if (ctx->doorbell < 0)
		return -EOPNOTSUPP;	/* a VM's context: no doorbell, no ring served (device.c) */
	err = vbus_memfd_create(name, size, &fd);
	if (err)
		return err;
	s->base = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (s->base == MAP_FAILED) {
		err = -errno;
		goto err_close;
	}
	madvise(s->base, size, MADV_DONTFORK);
	err = vbus_devshm_at(c, fd, s->base, size, &s->id);
	if (err)
		goto err_unmap;
	close(fd);
	s->size = size;
	return 0;

err_unmap:
	munmap(s->base, size);
err_close:
	close(fd);
	return err;
}

void vbg_shm_free(struct vbg_shm *s)
{
	struct vbus_conn *c = vbg_conn();

	if (!s->base)
		return;
	if (c && s->id)
		vbus_shm_revoke(c, s->id);
	munmap(s->base, s->size);
	s->base = NULL;
}
