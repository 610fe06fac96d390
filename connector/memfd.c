// SPDX-License-Identifier: MIT
/* Shared regions: memfds sealed so that the side that maps them can trust their size. */
#include <errno.h>
#include <fcntl.h>
#include <linux/magic.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <unistd.h>
#include <vbus/libvbus.h>
#include "msg.h"

#define SEALS_NEEDED (F_SEAL_SHRINK | F_SEAL_SEAL)

int vbus_memfd_check(int fd, uint64_t size)
{
	struct statfs fs;
	struct stat st;
	int seals = fcntl(fd, F_GET_SEALS);

	if (seals < 0)
		return -EBADF;		/* not a memfd (or not sealable) */
	if ((seals & SEALS_NEEDED) != SEALS_NEEDED)
		return -EPERM;		/* could shrink under a mapping: SIGBUS in the daemon */
	if (fstatfs(fd, &fs) || fs.f_type != TMPFS_MAGIC)
		return -EINVAL;		/* hugetlbfs, FUSE or anything but tmpfs */
	if (fstat(fd, &st) || !S_ISREG(st.st_mode) || (uint64_t)st.st_size != size || !size)
		return -EINVAL;
	return 0;
}

int vbus_memfd_create(const char *name, uint64_t size, int *out)
{
	int fd = memfd_create(name, MFD_CLOEXEC | MFD_ALLOW_SEALING), err;

	if (fd < 0)
		return -errno;
	if (ftruncate(fd, (off_t)size) || fcntl(fd, F_ADD_SEALS, SEALS_NEEDED)) {
		err = -errno;
		close(fd);
		return err;
	}
	*out = fd;
	return 0;
}
