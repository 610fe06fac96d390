// SPDX-License-Identifier: MIT
/* vbusd: the vbus host daemon. Command line only; the work is in the other files. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/inotify.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <syslog.h>
#include <unistd.h>
#include "vbusd.h"
#include "vm.h"

static const char usage[] =
	"usage: vbusd [-c FILE] [--run-dir DIR] [--kvm-probe FILE] [--syslog] [-v|-q] [--help]\n"
	"The vbus host daemon: serves guests on buses, owns the devices behind them.\n"
	"  -c, --config FILE   commands to run at start (vbusctl syntax, one per line)\n"
	"  --run-dir DIR       sockets go here (default $VBUS_RUN_DIR or /run/vbus):\n"
	"                      DIR/ctl.sock for vbusctl, DIR/bus/NAME.sock per bus\n"
	"  --kvm-probe FILE    keep whether KVM works (a VM's accel auto) in FILE for this\n"
	"                      host boot (default $VBUS_KVM_PROBE; none: once per vbusd)\n"
	"  --syslog            log to syslog instead of stderr\n"
	"  -v, -q              more, less logging\n"
	"SIGTERM or SIGINT: tell every guest, close, exit 0.\n";

static char ctl_tag, sig_tag, dev_tag;

/* Drain the inotify events of /dev/infiniband (which node went does not matter: every
 * device is checked). false when the watch ended (the directory went: IN_IGNORED). */
static bool dev_events(int fd)
{
	char b[4096] __attribute__((aligned(__alignof__(struct inotify_event))));
	bool alive = true;
	ssize_t n;

	while ((n = read(fd, b, sizeof(b))) > 0)
		for (char *p = b; p < b + n; p += sizeof(struct inotify_event) +
						 ((struct inotify_event *)p)->len)
			if (((struct inotify_event *)p)->mask & IN_IGNORED)
				alive = false;
	return alive;
}

/* vbusd holds a descriptor for every region and signal of every guest: take the whole
 * hard limit of open files, so that the bus's quotas, not this, are what a guest meets. */
static void raise_nofile(void)
{
	struct rlimit r;

	if (!getrlimit(RLIMIT_NOFILE, &r) && r.rlim_cur < r.rlim_max) {
		r.rlim_cur = r.rlim_max;
		if (setrlimit(RLIMIT_NOFILE, &r))
			vbd_warn("cannot raise the open-file limit to %llu: %s",
				 (unsigned long long)r.rlim_max, strerror(errno));
	}
}

int main(int argc, char **argv)
{
	const char *config = NULL, *run_dir = getenv("VBUS_RUN_DIR");
	struct epoll_event e;
	sigset_t ss;
	int ctl, sfd, dev_fd;
	bool dev_watched = false;

	vbd_kvm_probe_file = getenv("VBUS_KVM_PROBE");
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];

		if ((!strcmp(a, "-c") || !strcmp(a, "--config")) && i + 1 < argc)
			config = argv[++i];
		else if (!strcmp(a, "--run-dir") && i + 1 < argc)
			run_dir = argv[++i];
		else if (!strcmp(a, "--kvm-probe") && i + 1 < argc)
			vbd_kvm_probe_file = argv[++i];
		else if (!strcmp(a, "--syslog"))
			vbd_syslog = true;
		else if (!strcmp(a, "-v"))
			vbd_verbosity++;
		else if (!strcmp(a, "-q"))
			vbd_verbosity--;
		else if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
			fputs(usage, stdout);
			return 0;
		} else {
			fprintf(stderr, "vbusd: bad argument '%s'\n%s", a, usage);
			return 2;
		}
	}
	if (vbd_syslog)
		openlog("vbusd", LOG_PID, LOG_DAEMON);
	raise_nofile();
	snprintf(vbd.run_dir, sizeof(vbd.run_dir), "%s", run_dir && *run_dir ? run_dir : "/run/vbus");
	if (mkdir(vbd.run_dir, 0755) && errno != EEXIST) {
		vbd_err("cannot create %s: %s", vbd.run_dir, strerror(errno));
		return 1;
	}
	signal(SIGPIPE, SIG_IGN);
	sigemptyset(&ss);
	sigaddset(&ss, SIGTERM);
	sigaddset(&ss, SIGINT);
	pthread_sigmask(SIG_BLOCK, &ss, NULL);	/* threads started later inherit it */
	sfd = signalfd(-1, &ss, SFD_CLOEXEC);
	vbd_epfd = epoll_create1(EPOLL_CLOEXEC);
	ctl = vbd_ctl_open();
	if (sfd < 0 || vbd_epfd < 0 || ctl < 0) {
		vbd_err("cannot set up (%s/ctl.sock): %s", vbd.run_dir,
			strerror(ctl < 0 ? -ctl : errno));
		return 1;
	}
	e = (struct epoll_event){ .events = EPOLLIN, .data.ptr = &ctl_tag };
	epoll_ctl(vbd_epfd, EPOLL_CTL_ADD, ctl, &e);
	e = (struct epoll_event){ .events = EPOLLIN, .data.ptr = &sig_tag };
	epoll_ctl(vbd_epfd, EPOLL_CTL_ADD, sfd, &e);
	/* A backing device's uverbs node leaving /dev/infiniband (`rdma link delete`) wakes
	 * the loop at once, and vbd_dev_check finds it; the 1 s timeout stays for what this
	 * cannot see (nested devices). The watch itself is made in the loop. */
	dev_fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
	if (dev_fd >= 0) {
		e = (struct epoll_event){ .events = EPOLLIN, .data.ptr = &dev_tag };
		epoll_ctl(vbd_epfd, EPOLL_CTL_ADD, dev_fd, &e);
	}
	if (config && vbd_config_load(config)) {
		char p[128];

		vbd_shutdown();	/* what the config made so far: its sockets go too */
		snprintf(p, sizeof(p), "%s/ctl.sock", vbd.run_dir);
		unlink(p);
		return 1;
	}
	vbd_info("ready: %s/ctl.sock", vbd.run_dir);
	for (;;) {
		struct epoll_event ev[16];
		int n;

		/* The first time, and again when devtmpfs removed an empty /dev/infiniband
		 * (IN_IGNORED) and may have made it again. */
		if (dev_fd >= 0 && !dev_watched)
			dev_watched = inotify_add_watch(dev_fd, "/dev/infiniband", IN_DELETE) >= 0;
		/* Wakes once a second to notice devices whose backing has gone (model.c). */
		n = epoll_wait(vbd_epfd, ev, 16, 1000);

		for (int k = 0; k < n; k++) {
			if (ev[k].data.ptr == &ctl_tag) {
				vbd_ctl_serve(ctl);
			} else if (ev[k].data.ptr == &dev_tag) {
				dev_watched = dev_events(dev_fd) && dev_watched;
			} else if (ev[k].data.ptr == &sig_tag) {
				vbd_info("shutting down");
				vbd_shutdown();
				close(ctl);
				{
					char p[128];

					snprintf(p, sizeof(p), "%s/ctl.sock", vbd.run_dir);
					unlink(p);
				}
				return 0;
			} else {
				vbd_guest_accept(ev[k].data.ptr);
			}
		}
		vbd_dev_check();
	}
}
