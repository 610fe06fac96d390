// SPDX-License-Identifier: MIT
/*
 * vbus-hide: run a command in a private mount namespace whose /dev/infiniband is an empty
 * tmpfs, so that a guest run as root cannot reach the real RDMA device around vbus
 * (vbus devices need no device node). vbus-run execs it; before, it ran unshare, sh and
 * mount for this, three programs for every guest started as root.
 *
 *   vbus-hide CMD [ARGS...]
 *
 * Exits 125 when the namespace cannot be set up, 127 when CMD is not found, 126 when it
 * cannot be run; otherwise CMD replaces it.
 */
#include <errno.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>
#include <sys/mount.h>
#include <unistd.h>

#define HIDDEN "/dev/infiniband"

static int fail(const char *what)
{
	fprintf(stderr, "vbus-hide: %s: %s\n", what, strerror(errno));
	return 125;
}

int main(int argc, char **argv)
{
	if (argc < 2 || argv[1][0] == '-') {
		fprintf(stderr, "usage: vbus-hide CMD [ARGS...] (run by vbus-run)\n");
		return 2;
	}
	if (unshare(CLONE_NEWNS))
		return fail("unshare(CLONE_NEWNS)");
	/* nothing mounted here may propagate back to the host's namespace */
	if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL))
		return fail("making / private");
	if (mount("vbus-hide", HIDDEN, "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC,
		  "size=4k,mode=0755"))
		return fail("mounting an empty tmpfs on " HIDDEN);
	execvp(argv[1], argv + 1);
	fprintf(stderr, "vbus-hide: %s: %s\n", argv[1], strerror(errno));
	return errno == ENOENT ? 127 : 126;
}
