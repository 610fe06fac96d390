// SPDX-License-Identifier: MIT
/*
 * A process guest's privileges, as uverbs checks a user caller's: CAP_NET_RAW for a
 * privileged Q_Key, CAP_IPC_LOCK and RLIMIT_MEMLOCK for pinned memory. On the kernel
 * backend the module asks the kernel in the guest's own system call; on the relay,
 * vbusd makes the calls, so it reads the guest's from /proc at the call (docs/verbs.md,
 * Privileges).
 *
 * The process is the one that connected (SO_PEERCRED). Its pidfd, taken when it opened
 * the device, tells whether that process still lives: a pid read after it exited may name
 * another process, so then nothing is read and the guest has no capability (a forked
 * child holding the connection) and the RLIMIT_MEMLOCK it had at the open.
 */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <linux/capability.h>
#include "vbusd.h"

int vbd_caller_open(pid_t pid, uint64_t *memlock)
{
	struct rlimit rl;

	*memlock = 0;
	if (!prlimit(pid, RLIMIT_MEMLOCK, NULL, &rl))
		*memlock = rl.rlim_cur == RLIM_INFINITY ? UINT64_MAX : rl.rlim_cur;
	return (int)syscall(SYS_pidfd_open, pid, 0);
}

static bool alive(int pidfd)
{
	struct pollfd p = { .fd = pidfd, .events = POLLIN };

	return pidfd >= 0 && poll(&p, 1, 0) == 0;	/* readable once it exited */
}

/* The process's user namespace is ours: its capabilities are capabilities here. */
static bool our_userns(pid_t pid)
{
	char path[64];
	struct stat a, b;

	snprintf(path, sizeof(path), "/proc/%d/ns/user", (int)pid);
	return !stat(path, &a) && !stat("/proc/self/ns/user", &b) && a.st_ino == b.st_ino &&
	       a.st_dev == b.st_dev;
}

static uint64_t cap_eff(pid_t pid)
{
	unsigned long long v = 0;
	char path[64], line[128];
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
	f = fopen(path, "re");
	if (!f)
		return 0;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "CapEff: %llx", &v) == 1)
			break;
	fclose(f);
	return v;
}

void vbd_caller_privs(pid_t pid, int pidfd, uint64_t memlock0, bool *net_raw, bool *ipc_lock,
		      uint64_t *memlock)
{
	struct rlimit rl;
	uint64_t caps = 0, lim = memlock0;

	if (alive(pidfd)) {
		if (our_userns(pid))
			caps = cap_eff(pid);
		if (!prlimit(pid, RLIMIT_MEMLOCK, NULL, &rl))
			lim = rl.rlim_cur == RLIM_INFINITY ? UINT64_MAX : rl.rlim_cur;
		if (!alive(pidfd))	/* it went while we read: nothing read counts */
			caps = 0, lim = memlock0;
	}
	*net_raw = caps & (1ULL << CAP_NET_RAW);
	*ipc_lock = caps & (1ULL << CAP_IPC_LOCK);
	*memlock = lim;
}
