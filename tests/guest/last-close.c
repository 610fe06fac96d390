// SPDX-License-Identifier: MIT
/*
 * guest/last-close: verbs objects live until the last close of the descriptors that hold
 * them, a forked child's among them, as a uverbs file's do; run by
 * tests/device/guest-parity.sh natively and as a guest.
 *
 *   last-close DEVICE GID_INDEX
 *
 * The program (a child subreaper, which opens nothing itself) counts the QPs of
 * `rdma res show qp`, then:
 *   fork   starts an owner that opens DEVICE, creates a CQ and three QPs, forks a holder
 *          (which keeps every descriptor and waits on a pipe) and exits without closing
 *          anything. Checked: with the owner gone, the three QPs are still there (looked
 *          at every 100 ms for 0.3 s, scaled); when the holder exits, the count is back
 *          where it was.
 *   scm    starts an owner that makes the same objects and sends its context's cmd_fd
 *          (the uverbs file natively, the module's descriptor on the kernel backend) to
 *          this process with SCM_RIGHTS, then exits. Checked: the QPs live on in the
 *          received descriptor (looked at as above), and go at its close. On the relay
 *          backend the objects are vbusd's and cmd_fd holds none of them: said, not
 *          checked (docs/kernel.md).
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dlfcn.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>
#include <infiniband/verbs.h>
#include <vbus/verbs-nest.h>
#include "loopback.h"

#define NQP	3

static int count_qps(void)
{
	FILE *f = popen("rdma res show qp", "r");
	char line[512];
	int n = 0;

	check(f, "popen rdma: %s", strerror(errno));
	while (fgets(line, sizeof(line), f))
		n += strstr(line, "lqpn") != NULL;
	check(pclose(f) == 0, "rdma res show qp failed");
	return n;
}

/* A context on DEVICE with a CQ and NQP QPs, never freed. */
static void objects(struct lb *l, const char *dev, int gid_index)
{
	struct ibv_cq *cq;
	int i;

	lb_open(l, dev, gid_index);
	cq = ibv_create_cq(l->ctx, 16, NULL, NULL, 0);
	check(cq, "create_cq: %s", strerror(errno));
	for (i = 0; i < NQP; i++)
		lb_qp(l, cq, cq, NULL);
}

/* The owner: objects on DEVICE, then a holder that inherits them, then _exit. */
static void owner(const char *dev, int gid_index, int hold_rd, int ready_wr)
{
	struct lb l;
	char c;
	pid_t h;

	objects(&l, dev, gid_index);
	h = fork();
	check(h >= 0, "fork: %s", strerror(errno));
	if (h == 0) {	/* the holder: every descriptor, until the pipe closes */
		if (write(ready_wr, "h", 1) != 1)
			_exit(1);
		while (read(hold_rd, &c, 1) > 0)
			;
		_exit(0);
	}
	_exit(0);	/* nothing closed, nothing destroyed */
}

/* The count back at base within a scaled 10 s (each try also runs rdma). */
static int settle(int base)
{
	int n, tries;

	for (tries = vt_ms(10000) / 50; (n = count_qps()) != base && tries > 0; tries--)
		usleep(50000);
	return n;
}

/* The count stays at want for 0.3 s (scaled), looked at every 100 ms: time for vbusd to see
 * the gone process's connection close (and, were it to revoke, for the QPs to go). */
static void stays(int want, const char *what)
{
	int n;

	for (int i = 0; i < vt_ms(300) / 100; i++) {
		usleep(100000);
		n = count_qps();
		check(n == want, "%s: %d ms later, %d QPs, expected %d", what, 100 * (i + 1), n,
		      want);
	}
}

/* The SCM_RIGHTS owner: objects, then cmd_fd to the receiver over sock, with one byte:
 * 'r' on the relay backend (cmd_fd holds nothing there), 'h' otherwise. */
static void sender(const char *dev, int gid_index, int sock)
{
	vbus_verbs_query_limits_fn *q;
	struct vbus_verbs_limits lim;
	char buf[CMSG_SPACE(sizeof(int))] = { 0 }, what = 'h';
	struct iovec iov = { .iov_base = &what, .iov_len = 1 };
	struct msghdr m = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = buf,
			    .msg_controllen = sizeof(buf) };
	struct cmsghdr *cm = CMSG_FIRSTHDR(&m);
	struct lb l;

	objects(&l, dev, gid_index);
	q = (vbus_verbs_query_limits_fn *)dlsym(RTLD_DEFAULT, VBUS_VERBS_QUERY_LIMITS);
	if (q && !q(l.ctx, &lim) && !lim.kernel)
		what = 'r';
	cm->cmsg_level = SOL_SOCKET;
	cm->cmsg_type = SCM_RIGHTS;
	cm->cmsg_len = CMSG_LEN(sizeof(int));
	memcpy(CMSG_DATA(cm), &l.ctx->cmd_fd, sizeof(int));
	check(sendmsg(sock, &m, 0) == 1, "sendmsg: %s", strerror(errno));
	_exit(0);	/* nothing closed: the receiver's copy is the last */
}

static void scm(const char *dev, int gid_index, int base)
{
	char buf[CMSG_SPACE(sizeof(int))], what = 0;
	struct iovec iov = { .iov_base = &what, .iov_len = 1 };
	struct msghdr m = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = buf,
			    .msg_controllen = sizeof(buf) };
	struct cmsghdr *cm;
	int sv[2], fd = -1, n, st;
	pid_t o;

	check(!socketpair(AF_UNIX, SOCK_SEQPACKET, 0, sv), "socketpair: %s", strerror(errno));
	o = fork();
	check(o >= 0, "fork: %s", strerror(errno));
	if (o == 0) {
		close(sv[0]);
		sender(dev, gid_index, sv[1]);
	}
	close(sv[1]);
	check(recvmsg(sv[0], &m, 0) == 1, "recvmsg: %s (the sender failed)", strerror(errno));
	cm = CMSG_FIRSTHDR(&m);
	check(cm && cm->cmsg_type == SCM_RIGHTS, "no descriptor came");
	memcpy(&fd, CMSG_DATA(cm), sizeof(int));
	check(waitpid(o, &st, 0) == o && WIFEXITED(st) && !WEXITSTATUS(st), "the sender failed");
	close(sv[0]);
	if (what == 'r') {
		n = settle(base);
		ok("scm: not checked on the relay backend: its objects are vbusd's and went with "
		   "the sender's connection (%d QPs, as before); cmd_fd holds none", n);
		close(fd);
		return;
	}
	stays(base + NQP, "the sender exited, its cmd_fd is here");
	ok("scm: the sender exited: its %d QPs live on in the descriptor it passed", NQP);
	close(fd);
	n = settle(base);
	check(n == base, "the received descriptor closed: %d QPs, expected %d", n, base);
	ok("scm: the received descriptor closed: the QPs are gone (%d, as before)", base);
}

int main(int argc, char **argv)
{
	int hold[2], ready[2], base, n, st;
	pid_t o, w;
	char c;

	if (argc != 3) {
		fprintf(stderr, "usage: %s DEVICE GID_INDEX\n", argv[0]);
		return 2;
	}
	setvbuf(stdout, NULL, _IOLBF, 0);
	check(!prctl(PR_SET_CHILD_SUBREAPER, 1), "subreaper: %s", strerror(errno));
	base = count_qps();
	check(!pipe(hold) && !pipe(ready), "pipe");
	o = fork();
	check(o >= 0, "fork: %s", strerror(errno));
	if (o == 0) {
		close(hold[1]);
		close(ready[0]);
		owner(argv[1], atoi(argv[2]), hold[0], ready[1]);
	}
	close(hold[0]);
	close(ready[1]);
	check(read(ready[0], &c, 1) == 1, "the holder never started (the owner failed)");
	check(waitpid(o, &st, 0) == o && WIFEXITED(st) && !WEXITSTATUS(st), "the owner failed");
	n = count_qps();
	check(n == base + NQP, "the owner exited, the holder holds its descriptors: %d QPs, "
	      "expected %d", n, base + NQP);
	stays(base + NQP, "the owner exited, the holder holds its descriptors");
	ok("fork: the owner exited: its %d QPs live on in the forked holder's descriptors", NQP);
	close(hold[1]);		/* the holder's last close */
	w = wait(&st);
	check(w > 0 && WIFEXITED(st) && !WEXITSTATUS(st), "the holder failed");
	n = settle(base);
	check(n == base, "the holder exited: %d QPs, expected %d", n, base);
	ok("fork: the holder exited: the QPs are gone (%d, as before)", base);
	scm(argv[1], atoi(argv[2]), base);
	return 0;
}
