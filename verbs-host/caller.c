// SPDX-License-Identifier: MIT
/*
 * A process guest's privileges, as uverbs checks a user caller's: CAP_NET_RAW for a
 * privileged Q_Key, CAP_IPC_LOCK and RLIMIT_MEMLOCK for pinned memory. On the kernel
 * backend the module asks the kernel in the guest's own system call; on the relay vbusd
 * makes the calls, so it asks them of the guest's process (docs/verbs.md, Privileges).
 *
 * The process is the one that connected (SO_PEERCRED), held by a pidfd taken at the
 * connection, when its capabilities and RLIMIT_MEMLOCK are also read. At a call its
 * capabilities are those of the connection ANDed with its live ones (a process that
 * execs a setuid program after connecting gains nothing here), its limit the live one.
 * Once it has exited (a forked child holds the connection) it has no capability and the
 * limit it had at the connection: a pid read then may name another process. Left open: a
 * process that exits between connect() and vbusd's accept, its pid taken by another
 * before the pidfd is (Linux 6.1 has no SO_PEERPIDFD).
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

	if (!our_userns(pid))
		return 0;
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

/* RLIMIT_MEMLOCK's soft limit in bytes; UINT64_MAX when it cannot be read. */
static uint64_t memlock(pid_t pid)
{
	struct rlimit rl;

	if (prlimit(pid, RLIMIT_MEMLOCK, NULL, &rl) || rl.rlim_cur == RLIM_INFINITY)
		return UINT64_MAX;
	return rl.rlim_cur;
}

void vbd_caller_init(struct vbd_caller *c, pid_t pid)
{
	/* No process to ask (a VM's connection; a peer whose pid this namespace cannot see):
	 * no capability, and the bus's max-pinned alone bounds its pins. */
	*c = (struct vbd_caller){ .pidfd = -1, .memlock0 = UINT64_MAX };
	if (pid <= 0)
		return;
	c->pid = pid;
	c->pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
	if (c->pidfd < 0)
		return;
	c->caps0 = cap_eff(pid);
	c->memlock0 = memlock(pid);
	if (!alive(c->pidfd))
		c->caps0 = 0;	/* it went while we read: nothing read counts */
}

void vbd_caller_fini(struct vbd_caller *c)
{
	if (c->pidfd >= 0)
		close(c->pidfd);
	c->pidfd = -1;
}

void vbd_caller_caps(const struct vbd_caller *c, bool *net_raw, bool *ipc_lock)
{
	uint64_t caps = 0;

	if (alive(c->pidfd)) {
		caps = c->caps0 & cap_eff(c->pid);
		if (!alive(c->pidfd))	/* it went while we read */
			caps = 0;
	}
	*net_raw = caps & (1ULL << CAP_NET_RAW);
	*ipc_lock = caps & (1ULL << CAP_IPC_LOCK);
}

uint64_t vbd_caller_memlock(const struct vbd_caller *c)
{
	uint64_t lim;

	if (!alive(c->pidfd))
		return c->memlock0;
	lim = memlock(c->pid);
	return alive(c->pidfd) ? lim : c->memlock0;	/* it went while we read */
}
