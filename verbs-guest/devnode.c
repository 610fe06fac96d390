// SPDX-License-Identifier: MIT
/*
 * Placeholder device nodes for programs that look for /dev/infiniband/<dev_name>
 * (docs/verbs-guest.md, "Device nodes").
 *
 * UCX lists an IB device only when /dev/infiniband/<ibv_device.dev_name> is a character
 * device it may read and write (stat and access, never open). vbus-run hides the real
 * nodes behind an empty tmpfs, mounted nodev, in the guest's own mount namespace, and
 * names it in VBUS_RUN_HIDDEN. Each vrdma device gets a node there with /dev/null's
 * numbers: it passes stat and access, and cannot be opened at all (nodev), so it reaches
 * no device, real or not. Anywhere else nothing is created.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/magic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/statvfs.h>	/* ST_NODEV, as statfs() gives f_flags */
#include <sys/sysmacros.h>
#include <unistd.h>

#include "vbg.h"

void vbg_devnodes_make(struct vbg_device **devs, int n)
{
	const char *dir = getenv("VBUS_RUN_HIDDEN");
	struct statfs fs;
	char path[256];

	if (!dir || !*dir || n <= 0)
		return;
	/* Only vbus-run's own tmpfs: never a real /dev/infiniband (or anything else). */
	if (statfs(dir, &fs) || fs.f_type != TMPFS_MAGIC || !(fs.f_flags & ST_NODEV)) {
		vbg_dbg("VBUS_RUN_HIDDEN=%s is not a nodev tmpfs: no placeholder nodes", dir);
		return;
	}
	for (int i = 0; i < n; i++) {
		const char *name = devs[i]->dev.dev_name;

		/* A name from the bus: one path component in that directory, nothing else. */
		if (strchr(name, '/') || name[0] == '.' ||
		    snprintf(path, sizeof(path), "%s/%s", dir, name) >= (int)sizeof(path))
			continue;
		if (mknod(path, S_IFCHR | 0666, makedev(1, 3)) && errno != EEXIST) {
			vbg_dbg("placeholder node %s: %s", path, strerror(errno));
			continue;
		}
		(void)chmod(path, 0666);	/* the umask's bits back: access(R_OK | W_OK) */
	}
}
