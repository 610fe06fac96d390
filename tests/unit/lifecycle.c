// SPDX-License-Identifier: MIT
/*
 * lifecycle: objects coming and going under load, through libvbus and a real vbusd.
 *  0. an idle vbusd with idle guests on the call channel uses no CPU (2 s of /proc/PID/stat).
 *  1. hot remove and hot add, 15 times, while 4 guests (two on the socket, two on the
 *     call channel) call the device in a loop: every answer carries the right data, the
 *     only errors are ENODEV/ENOENT, each guest gets its DEV_REMOVED events and reopens;
 *     afterwards nothing is left open (vbusctl -j).
 *  2. a guest killed with SIGKILL in the middle of a slow call on the call channel: vbusd
 *     frees its handle, region, signals and channel (counts back to baseline).
 *  3. a device removed while a guest sleeps in a slow call on it: the call is abandoned
 *     (-ECANCELED) and the removal does not wait for it; the guest gets DEV_REMOVED.
 *  4. a guest that stops reading its socket while the bus has answers and events for it:
 *     the rest of the daemon goes on (vbusctl, hot remove of its device, other guests).
 *  5. vbusd killed while two guests sleep in slow calls (one on the socket, one on the call
 *     channel): both calls return -ENOTCONN within 1 s, each connection reports one
 *     VBUS_EV_DISCONNECTED, later calls fail at once, nothing hangs.
 */
#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <vbus/libvbus.h>
#include "../lib/vbusd-test.h"

enum { ECHO = 1, SLEEP = 2 };

static unsigned alarm_s;	/* the whole test's limit: 55 s, scaled (vt-time.h) */

static void on_alarm(int sig)
{
	(void)sig;
	printf("FAIL: lifecycle hung (%u s)\n", alarm_s);
	cleanup();
	_exit(1);
}

/* The sum of the numbers after every occurrence of key ("\"open\":") in a JSON text;
 * -1 if the key never occurs. */
static long long sum_key(const char *json, const char *key)
{
	long long sum = -1;

	for (const char *p = strstr(json, key); p; p = strstr(p + 1, key))
		sum = (sum < 0 ? 0 : sum) + strtoll(p + strlen(key), NULL, 10);
	return sum;
}

/* Nothing held on the bus: no guest, no open instance, no handle or byte counted. */
static bool baseline(char *why, size_t n)
{
	char out[8192];

	if (ctl(out, sizeof(out), "-j guest show") || strcmp(out, "[]\n")) {
		snprintf(why, n, "guests: %.4000s", out);
		return false;
	}
	if (ctl(out, sizeof(out), "-j dev show") || sum_key(out, "\"open\":") != 0) {
		snprintf(why, n, "devices: %.4000s", out);
		return false;
	}
	/* bus-wide counters, where this vbusd keeps them */
	if (ctl(out, sizeof(out), "-j bus show") || sum_key(out, "\"handles\":") > 0 ||
	    sum_key(out, "\"shm_bytes\":") > 0) {
		snprintf(why, n, "bus: %.4000s", out);
		return false;
	}
	return true;
}

/* Until nothing is held any more, at most secs (scaled). */
static bool wait_baseline(double secs, char *why, size_t n)
{
	double t0 = now();

	secs = vt_secs(secs);
	do {
		if (baseline(why, n))
			return true;
		usleep(20000);
	} while (now() - t0 < secs);
	return false;
}

/* ---- 0. idle ---- */

/* utime + stime of a process, in seconds. */
static void test_idle(void)
{
	struct vbus_conn *c[2];
	uint32_t h;
	double t0, used;
	char out[64];

	for (int i = 0; i < 2; i++) {
		check(!vbus_connect(run_dir, "A", &c[i]) && !vbus_callchan_open(c[i], 4) &&
		      !vbus_devopen(c[i], "e1", "echo", &h) &&
		      !vbus_devcall(c[i], h, ECHO, "i", 1, out, sizeof(out), NULL), "an idle guest");
	}
	usleep(100000);	/* past every spin budget */
	t0 = cpu_seconds(daemon_pid);
	sleep(2);
	used = cpu_seconds(daemon_pid) - t0;
	check(used < 0.05, "idle vbusd used %.2f s of CPU in 2 s", used);
	for (int i = 0; i < 2; i++)
		vbus_disconnect(c[i]);
	printf("ok   idle vbusd with 2 idle call-channel guests: %.2f s of CPU in 2 s\n", used);
}

/* ---- 1. hot remove/add under load ---- */

struct worker {
	int idx;
	bool chan;
	struct vbus_conn *c;
	bool *stop;
	long ok, enodev, reopen, removed_events, bad;
	char why[160];
};

static void drain_events(struct worker *w)
{
	struct vbus_event ev;

	while (vbus_next_event(w->c, &ev) == 1)
		if (le32toh(ev.type) == VBUS_EV_DEV_REMOVED)
			w->removed_events++;
}

static void *worker_main(void *arg)
{
	struct worker *w = arg;
	uint32_t h = 0;
	bool open = false;
	long n = 0;

	while (!__atomic_load_n(w->stop, __ATOMIC_RELAXED)) {
		char in[64], out[64];
		size_t outlen = 0;
		int r;

		if (!open) {
			r = vbus_devopen(w->c, "hot", "echo", &h);
			if (r == -ENOENT) {	/* removed: wait for the hot add */
				usleep(2000);
				continue;
			}
			if (r) {
				snprintf(w->why, sizeof(w->why), "open: %s", strerror(-r));
				w->bad++;
				break;
			}
			open = true;
			w->reopen++;
		}
		snprintf(in, sizeof(in), "guest %d call %ld", w->idx, n++);
		r = vbus_devcall(w->c, h, ECHO, in, strlen(in) + 1, out, sizeof(out), &outlen);
		if (r == 0) {
			if (outlen != strlen(in) + 1 || memcmp(in, out, outlen)) {
				snprintf(w->why, sizeof(w->why), "wrong data: '%.*s' for '%s'",
					 (int)outlen, out, in);
				w->bad++;
				break;
			}
			w->ok++;
		} else if (r == -ENODEV) {
			/* removed while open: the handle is dead until we close it */
			w->enodev++;
			drain_events(w);
			r = vbus_devclose(w->c, h);
			if (r) {
				snprintf(w->why, sizeof(w->why), "close of a dead handle: %s",
					 strerror(-r));
				w->bad++;
				break;
			}
			open = false;
		} else {
			snprintf(w->why, sizeof(w->why), "call: %s", strerror(-r));
			w->bad++;
			break;
		}
	}
	drain_events(w);
	return NULL;
}

static void test_hotplug(void)
{
	bool stop = false;
	struct worker w[4];
	pthread_t t[4];
	char out[4096], why[8192];
	long ok = 0, enodev = 0, events = 0;

	check(!ctl(NULL, 0, "dev add hot class echo bus A"), "dev add hot");
	for (int i = 0; i < 4; i++) {
		int r;

		memset(&w[i], 0, sizeof(w[i]));
		w[i].idx = i;
		w[i].chan = i >= 2;
		w[i].stop = &stop;
		r = vbus_connect(run_dir, "A", &w[i].c);
		check(!r, "connect: %s", strerror(-r));
		if (w[i].chan)
			check(!vbus_callchan_open(w[i].c, 4), "call channel");
		check(!pthread_create(&t[i], NULL, worker_main, &w[i]), "thread");
	}
	for (int k = 0; k < 15; k++) {
		usleep(30000);
		check(!ctl(out, sizeof(out), "dev del hot"), "dev del: %s", out);
		usleep(10000);
		check(!ctl(out, sizeof(out), "dev add hot class echo bus A"), "dev add: %s", out);
	}
	usleep(50000);
	__atomic_store_n(&stop, true, __ATOMIC_RELAXED);
	for (int i = 0; i < 4; i++) {
		pthread_join(t[i], NULL);
		check(!w[i].bad, "guest %d: %s", i, w[i].why);
		check(w[i].ok > 0, "guest %d made no call", i);
		ok += w[i].ok;
		enodev += w[i].enodev;
		events += w[i].removed_events;
		vbus_disconnect(w[i].c);
	}
	check(enodev > 0 && events > 0, "removal was never seen (ENODEV %ld, events %ld)", enodev,
	      events);
	check(wait_baseline(3, why, sizeof(why)), "something is still held: %s", why);
	check(!ctl(NULL, 0, "dev del hot"), "dev del hot");
	printf("ok   15 hot remove/add cycles under 4 calling guests: %ld calls checked, "
	       "%ld ENODEV, %ld DEV_REMOVED events, nothing left\n", ok, enodev, events);
}

/* ---- 2. a guest killed mid-call on the call channel ---- */

static void test_guest_killed(void)
{
	char why[8192], out[8192];
	int pfd[2];
	pid_t p;
	double t0;
	char c;

	check(!pipe(pfd), "pipe");
	p = fork();
	if (p == 0) {
		struct vbus_conn *vc;
		uint32_t h, ms = htole32(3000), id;
		int fd;

		close(pfd[0]);
		if (vbus_connect(run_dir, "A", &vc) || vbus_callchan_open(vc, 4) ||
		    vbus_devopen(vc, "e1", "echo", &h) || vbus_memfd_create("x", 1 << 20, &fd) ||
		    vbus_devshm(vc, fd, 1 << 20, &id))
			_exit(1);
		if (write(pfd[1], "r", 1) != 1)
			_exit(1);
		vbus_devcall_flags(vc, h, SLEEP, VBUS_CALL_SLOW, &ms, sizeof(ms), NULL, 0, NULL);
		_exit(0);
	}
	close(pfd[1]);
	check(read(pfd[0], &c, 1) == 1, "the guest did not get ready");
	close(pfd[0]);
	usleep((useconds_t)(vt_secs_below(0.2, 1.0) * 1e6));	/* well inside its 3 s call */
	check(!ctl(out, sizeof(out), "-j guest show") &&
	      sum_key(out, "\"shm_bytes\":") >= 1 << 20 && sum_key(out, "\"handles\":") == 1,
	      "the guest's region and handle are not shown: %s", out);
	t0 = now();
	kill(p, SIGKILL);
	waitpid(p, NULL, 0);
	check(wait_baseline(6, why, sizeof(why)), "the killed guest's objects are still held: %s",
	      why);
	printf("ok   a guest killed during a 3 s slow call on the call channel: everything freed "
	       "%.2f s later\n", now() - t0);
}

/* ---- 3. removal under a slow call ---- */

struct slow {
	struct vbus_conn *c;
	uint32_t h, ms;
	bool chan;
	int r;
	double t_end;
};

static void *slow_main(void *arg)
{
	struct slow *s = arg;
	uint32_t ms = htole32(s->ms);

	s->r = vbus_devcall_flags(s->c, s->h, SLEEP, VBUS_CALL_SLOW, &ms, sizeof(ms), NULL, 0,
				  NULL);
	s->t_end = now();
	return NULL;
}

static void test_remove_under_slow_call(void)
{
	for (int chan = 0; chan < 2; chan++) {
		struct slow s = { .ms = 4000, .chan = chan };
		struct vbus_event ev;
		pthread_t t;
		char out[4096];
		double t0, t_ctl;
		int removed = 0;

		check(!ctl(NULL, 0, "dev add slow class echo bus A"), "dev add slow");
		check(!vbus_connect(run_dir, "A", &s.c), "connect");
		if (chan)
			check(!vbus_callchan_open(s.c, 4), "call channel");
		check(!vbus_devopen(s.c, "slow", "echo", &s.h), "open");
		check(!pthread_create(&t, NULL, slow_main, &s), "thread");
		usleep((useconds_t)(vt_secs_below(0.2, 1.0) * 1e6));	/* it is in its 4 s call */
		t0 = now();
		check(!ctl(out, sizeof(out), "dev del slow"), "dev del: %s", out);
		t_ctl = now() - t0;
		pthread_join(t, NULL);
		check(s.r == -ECANCELED || s.r == -ENODEV, "the slow call ended with %d", s.r);
		/* limits, but well below the 4 s call on any machine */
		check(s.t_end - t0 < vt_secs_below(1, 2) && t_ctl < vt_secs_below(1, 2), "removal took %.2f s, the call ended %.2f s "
		      "after it (a 4 s call)", t_ctl, s.t_end - t0);
		for (int i = 0; i < (int)vt_secs(50) && !removed; i++) {	/* 0.5 s, scaled */
			while (vbus_next_event(s.c, &ev) == 1)
				removed += le32toh(ev.type) == VBUS_EV_DEV_REMOVED &&
					   le32toh(ev.handle) == s.h;
			if (!removed)
				usleep(10000);
		}
		check(removed == 1, "DEV_REMOVED for the handle (%d)", removed);
		check(vbus_devcall(s.c, s.h, ECHO, "x", 1, NULL, 0, NULL) == -ENODEV, "then ENODEV");
		vbus_disconnect(s.c);
		printf("ok   device removed under a 4 s call on the %s: removal %.2f s, call ended "
		       "(%s) %.2f s later\n", chan ? "call channel" : "socket", t_ctl,
		       strerror(-s.r), s.t_end - t0);
	}
}

/* ---- 4. a guest that does not read ---- */

static void test_stuck_guest(void)
{
	struct vbus_conn *stuck, *other;
	char out[8192], why[8192];
	uint32_t h, h2;
	int fd, sent = 0;
	double t0;

	check(!ctl(NULL, 0, "dev add e2 class echo bus A"), "dev add e2");
	check(!vbus_connect(run_dir, "A", &stuck) && !vbus_devopen(stuck, "e1", "echo", &h),
	      "the stuck guest");
	fd = vbus_event_fd(stuck);	/* the connection's socket */
	/* Pipeline EVENT calls and never read: answers and events pile up on our side, then
	 * the guest's thread in vbusd blocks, then our own sends do. */
	for (int i = 0; i < 20000; i++) {
		uint32_t code = htole32((uint32_t)i);
		struct vbus_msg m = { .op = htole32(VBUS_OP_DEVCALL), .len = htole32(sizeof(code)),
				      .seq = htole64(1000000 + (uint64_t)i), .handle = htole32(h),
				      .arg = htole32(3) };
		char pkt[sizeof(m) + sizeof(code)];

		memcpy(pkt, &m, sizeof(m));
		memcpy(pkt + sizeof(m), &code, sizeof(code));
		if (send(fd, pkt, sizeof(pkt), MSG_DONTWAIT) != (ssize_t)sizeof(pkt))
			break;
		sent++;
	}
	usleep(200000);
	t0 = now();
	check(!ctl(out, sizeof(out), "-j guest show"), "guest show with a stuck guest: %s", out);
	check(!ctl(out, sizeof(out), "dev del e1"), "hot remove of the stuck guest's device: %s",
	      out);
	check(now() - t0 < vt_secs(2), "vbusctl waited %.2f s behind a guest that does not read",
	      now() - t0);
	check(!vbus_connect(run_dir, "A", &other) && !vbus_devopen(other, "e2", "echo", &h2) &&
	      !vbus_devcall(other, h2, ECHO, "x", 1, out, sizeof(out), NULL) && out[0] == 'x',
	      "another guest works beside a stuck one");
	vbus_disconnect(other);
	vbus_disconnect(stuck);
	check(wait_baseline(3, why, sizeof(why)), "the stuck guest's objects are still held: %s",
	      why);
	check(!ctl(NULL, 0, "dev add e1 class echo bus A") && !ctl(NULL, 0, "dev del e2"), "restore");
	printf("ok   a guest that stopped reading (%d requests queued) stalls nobody: vbusctl and "
	       "hot remove took %.2f s\n", sent, now() - t0);
}

/* ---- 5. vbusd killed under sleeping callers ---- */

struct sleeper {
	struct vbus_conn *c;
	uint32_t h;
	int r;
	double t_end;
};

static void *sleeper_main(void *arg)
{
	struct sleeper *s = arg;
	uint32_t ms = htole32(5000);

	s->r = vbus_devcall_flags(s->c, s->h, SLEEP, VBUS_CALL_SLOW, &ms, sizeof(ms), NULL, 0,
				  NULL);
	s->t_end = now();
	return NULL;
}

static void test_daemon_killed(void)
{
	struct sleeper s[2];
	pthread_t t[2];
	double t0;

	for (int i = 0; i < 2; i++) {
		memset(&s[i], 0, sizeof(s[i]));
		check(!vbus_connect(run_dir, "A", &s[i].c), "connect");
		if (i == 1)
			check(!vbus_callchan_open(s[i].c, 4), "call channel");
		check(!vbus_devopen(s[i].c, "e1", "echo", &s[i].h), "open");
		check(!pthread_create(&t[i], NULL, sleeper_main, &s[i]), "thread");
	}
	usleep((useconds_t)(vt_secs_below(0.3, 1.0) * 1e6));	/* both are asleep in their calls */
	t0 = now();
	kill(daemon_pid, SIGKILL);
	waitpid(daemon_pid, NULL, 0);
	daemon_pid = 0;
	for (int i = 0; i < 2; i++) {
		struct vbus_event ev;
		struct pollfd p = { .fd = vbus_event_fd(s[i].c), .events = POLLIN };
		int n = 0, r;
		double t1;
		uint32_t h;

		pthread_join(t[i], NULL);
		check(s[i].r == -ENOTCONN, "%s caller got %d, not -ENOTCONN",
		      i ? "call-channel" : "socket", s[i].r);
		/* a limit, but well below their 5 s calls */
		check(s[i].t_end - t0 < vt_secs_below(1, 2.5), "%s caller woke %.2f s after the daemon died",
		      i ? "call-channel" : "socket", s[i].t_end - t0);
		check(poll(&p, 1, vt_ms(1000)) == 1, "the event fd is readable");
		while (vbus_next_event(s[i].c, &ev) == 1)
			n += le32toh(ev.type) == VBUS_EV_DISCONNECTED;
		check(n == 1, "one DISCONNECTED event (%d)", n);
		t1 = now();
		r = vbus_devcall(s[i].c, s[i].h, ECHO, "x", 1, NULL, 0, NULL);
		check(r == -ENOTCONN, "a later call: %d", r);
		check(vbus_devopen(s[i].c, "e1", "echo", &h) == -ENOTCONN, "a later open");
		check(now() - t1 < vt_secs(0.1), "later calls fail at once");
		vbus_disconnect(s[i].c);
	}
	printf("ok   vbusd killed under a socket and a call-channel sleeper: both -ENOTCONN after "
	       "%.3f / %.3f s, one DISCONNECTED event each\n", s[0].t_end - t0, s[1].t_end - t0);
}

int main(void)
{
	int r;

	setvbuf(stdout, NULL, _IONBF, 0);
	signal(SIGALRM, on_alarm);
	alarm_s = vt_alarm_secs(55);
	alarm(alarm_s);
	if ((r = vt_setup("lifecycle")))
		return r;
	start_daemon();
	check(!ctl(NULL, 0, "bus add A") && !ctl(NULL, 0, "dev add e1 class echo bus A"), "setup");

	test_idle();
	test_hotplug();
	test_guest_killed();
	test_remove_under_slow_call();
	test_stuck_guest();
	test_daemon_killed();
	if (daemon_log_bad())
		return 1;
	cleanup();
	return 0;
}
