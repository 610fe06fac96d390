// SPDX-License-Identifier: MIT
/*
 * The relay thread: one for all guests of a vbusd.
 *
 * While there is work it passes over the guests back to back. When a pass finds nothing
 * it keeps passing for a bounded budget (spin_ns: a busy guest gets sub-microsecond
 * hand-off), then it parks every queue (NEED_WAKEUP on the rings, the real CQs armed),
 * passes once more (closing the race with a guest that posted meanwhile), and sleeps in
 * epoll on the guests' doorbell eventfds and their real completion channels. An idle
 * vbusd uses no CPU.
 * A pass looks only at each guest's active queues, within its budget (relay.c,
 * "Scheduling"): queues idle for spin_ns are parked, and a doorbell or a real CQ's event
 * makes them active again. Awake, the thread reads those at least every
 * RELAY_EVENTS_NS, so that a parked queue of one guest waits no longer than that while
 * others keep the relay busy.
 */
#include <errno.h>
#include <sched.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>
#include "vrdma.h"

/* While awake, the doorbells and CQ events are read at least this often. */
#define RELAY_EVENTS_NS	20000

struct vrdma_relay {
	pthread_t thread;
	pid_t tid;
	int epfd;
	int stopfd;
	uint64_t spin_ns;
	pthread_mutex_t lock;		/* guests[] */
	struct vrdma_guest **guests;
	size_t n, cap;
	struct vrdma_relay_stats st;	/* written by the thread, read under lock */
	bool stop;
};

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* One pass over every guest; *busy when a guest was skipped (a control call holds it). */
static int pass(struct vrdma_relay *r, bool *busy)
{
	int work = 0;

	pthread_mutex_lock(&r->lock);
	for (size_t i = 0; i < r->n; i++) {
		int w = vrdma_relay_guest(r->guests[i]);

		if (w < 0)
			*busy = true;
		else
			work += w;
	}
	r->st.passes++;
	r->st.work += (uint64_t)work;
	pthread_mutex_unlock(&r->lock);
	return work;
}

static void need_wakeup(struct vrdma_relay *r, bool on, bool *busy)
{
	pthread_mutex_lock(&r->lock);
	for (size_t i = 0; i < r->n; i++)
		if (!vrdma_relay_need_wakeup(r->guests[i], on))
			*busy = true;
	pthread_mutex_unlock(&r->lock);
}

static bool served(struct vrdma_relay *r, struct vrdma_guest *g)
{
	for (size_t i = 0; i < r->n; i++)
		if (r->guests[i] == g)
			return true;
	return false;
}

/* Consume what woke us: doorbell counts (the guest's next pass looks at its parked rings)
 * and real CQ events (acknowledged at once; their CQs become active). Under r->lock, and
 * only for guests still served: one removed since epoll_wait returned may be gone. */
static void drain_wakeups(struct vrdma_relay *r, struct epoll_event *ev, int n)
{
	pthread_mutex_lock(&r->lock);
	for (int k = 0; k < n; k++) {
		struct vrdma_guest *g = ev[k].data.ptr;
		uint64_t v;

		if (!g) {	/* stopfd: a new guest, or stop (the loop checks r->stop) */
			if (read(r->stopfd, &v, sizeof(v)) < 0 && errno != EAGAIN)
				abort();
			continue;
		}
		if (!served(r, g))
			continue;
		if (g->doorbell >= 0) {
			if (read(g->doorbell, &v, sizeof(v)) == sizeof(v)) {
				__atomic_fetch_add(&g->n_kicks, v, __ATOMIC_RELAXED);
				vrdma_relay_kick(g);
			} else if (errno != EAGAIN) {
				g->n_relay_errors++;
			}
		}
		vrdma_relay_async(g);
		vrdma_relay_cq_events(g);
	}
	pthread_mutex_unlock(&r->lock);
}

/* Awake: whatever woke parked queues since the last look, without waiting. */
static void poll_wakeups(struct vrdma_relay *r)
{
	struct epoll_event ev[32];
	int n = epoll_wait(r->epfd, ev, 32, 0);

	if (n > 0)
		drain_wakeups(r, ev, n);
}

/* After a sleep: a guest with no doorbell cannot say it posted; its queues are all
 * looked at again (as before parking existed; it is bounded by its budget per pass). */
static void wake_silent(struct vrdma_relay *r, bool *busy)
{
	pthread_mutex_lock(&r->lock);
	for (size_t i = 0; i < r->n; i++)
		if (r->guests[i]->doorbell < 0 && !vrdma_relay_need_wakeup(r->guests[i], false))
			*busy = true;
	pthread_mutex_unlock(&r->lock);
}

static void *relay_main(void *arg)
{
	struct vrdma_relay *r = arg;
	uint64_t last = now_ns(), t0, looked = last;
	struct epoll_event ev[32];
	int n;

	__atomic_store_n(&r->tid, (pid_t)syscall(SYS_gettid), __ATOMIC_RELEASE);
	while (!__atomic_load_n(&r->stop, __ATOMIC_ACQUIRE)) {
		bool busy = false;
		uint64_t t = now_ns();

		if (t - looked >= RELAY_EVENTS_NS) {
			poll_wakeups(r);
			looked = t;
		}
		if (pass(r, &busy)) {
			last = now_ns();
			continue;
		}
		if (now_ns() - last < r->spin_ns) {
			__builtin_ia32_pause();
			continue;
		}
		need_wakeup(r, true, &busy);
		if (pass(r, &busy)) {	/* a guest posted before it could see the flag */
			last = now_ns();
			continue;
		}
		t0 = now_ns();
		pthread_mutex_lock(&r->lock);
		r->st.sleeps++;
		r->st.spin_ns += t0 > last ? t0 - last : 0;
		pthread_mutex_unlock(&r->lock);
		/* The stop flag again, last thing before sleeping: poll_wakeups or a drain above
		 * may have consumed the stop's write to stopfd after the loop's check, and then
		 * nothing would wake this sleep (vrdma_relay_stop's join hung so, under vbd's
		 * lock, with guests SIGKILLed while opening the device: guest-churn). The flag is
		 * stored before the write, so a consumed write means the flag reads true here. */
		if (__atomic_load_n(&r->stop, __ATOMIC_ACQUIRE))
			break;
		/* A skipped guest may have work and no NEED_WAKEUP flag: look again in 1 ms. */
		n = epoll_wait(r->epfd, ev, 32, busy ? 1 : -1);
		if (n > 0)
			drain_wakeups(r, ev, n);
		busy = false;
		wake_silent(r, &busy);
		pthread_mutex_lock(&r->lock);
		r->st.wakeups++;
		pthread_mutex_unlock(&r->lock);
		last = now_ns();
	}
	return NULL;
}

/* Run the relay thread under SCHED_FIFO at priority prio (0: back to SCHED_OTHER), so
 * that a kicked relay runs at once instead of waiting behind busy-polling programs for a
 * time slice. Its spinning is bounded (spin_ns), then it sleeps: it cannot starve the
 * CPU. 0 or -errno (EPERM without CAP_SYS_NICE). */
int vrdma_relay_set_priority(struct vrdma_relay *r, int prio)
{
	struct sched_param sp = { .sched_priority = prio };

	return -pthread_setschedparam(r->thread, prio ? SCHED_FIFO : SCHED_OTHER, &sp);
}

/* Start the relay. spin_ns: how long it keeps looking after the last work. */
int vrdma_relay_start(struct vrdma_relay **out, uint64_t spin_ns)
{
	struct vrdma_relay *r = calloc(1, sizeof(*r));
	struct epoll_event e = { .events = EPOLLIN, .data.ptr = NULL };
	int err;

	if (!r)
		return -ENOMEM;
	r->spin_ns = spin_ns;
	pthread_mutex_init(&r->lock, NULL);
	r->epfd = epoll_create1(EPOLL_CLOEXEC);
	r->stopfd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	err = -errno;
	if (r->epfd < 0 || r->stopfd < 0)
		goto err_close;
	if (epoll_ctl(r->epfd, EPOLL_CTL_ADD, r->stopfd, &e)) {
		err = -errno;
		goto err_close;
	}
	err = -pthread_create(&r->thread, NULL, relay_main, r);
	if (err)
		goto err_close;
	*out = r;
	return 0;

err_close:
	if (r->epfd >= 0)
		close(r->epfd);
	if (r->stopfd >= 0)
		close(r->stopfd);
	free(r);
	return err;
}

void vrdma_relay_stop(struct vrdma_relay *r)
{
	uint64_t one = 1;

	if (!r)
		return;
	__atomic_store_n(&r->stop, true, __ATOMIC_RELEASE);
	if (write(r->stopfd, &one, sizeof(one)) < 0)
		abort();	/* an eventfd write of 1 cannot fail */
	pthread_join(r->thread, NULL);
	close(r->epfd);
	close(r->stopfd);
	free(r->guests);
	pthread_mutex_destroy(&r->lock);
	free(r);
}

/* Serve g; doorbell_fd (an eventfd the guest kicks, or -1) stays owned by the caller. */
int vrdma_relay_add(struct vrdma_relay *r, struct vrdma_guest *g, int doorbell_fd)
{
	struct epoll_event e = { .events = EPOLLIN, .data.ptr = g };
	int err = 0;

	pthread_mutex_lock(&r->lock);
	if (r->n == r->cap) {
		size_t c = r->cap ? r->cap * 2 : 8;
		struct vrdma_guest **p = realloc(r->guests, c * sizeof(*p));

		if (!p) {
			err = -ENOMEM;
			goto out;
		}
		r->guests = p;
		r->cap = c;
	}
	g->doorbell = doorbell_fd;
	/* Both of g's fds wake the relay with g as data: each read must not block. */
	if (doorbell_fd >= 0)
		fcntl(doorbell_fd, F_SETFL, fcntl(doorbell_fd, F_GETFL) | O_NONBLOCK);
	if (epoll_ctl(r->epfd, EPOLL_CTL_ADD, g->chan->fd, &e) ||
	    epoll_ctl(r->epfd, EPOLL_CTL_ADD, g->ctx->async_fd, &e) ||
	    (doorbell_fd >= 0 && epoll_ctl(r->epfd, EPOLL_CTL_ADD, doorbell_fd, &e))) {
		err = -errno;
		epoll_ctl(r->epfd, EPOLL_CTL_DEL, g->chan->fd, NULL);
		epoll_ctl(r->epfd, EPOLL_CTL_DEL, g->ctx->async_fd, NULL);
		goto out;
	}
	r->guests[r->n++] = g;
	g->in_relay = true;
	/* The relay now reads g's events: its queues may park once idle as long as the
	 * relay spins (relay.c, "Scheduling"). Passes read it under r->lock, as here. */
	g->park_ns = r->spin_ns;
out:
	pthread_mutex_unlock(&r->lock);
	if (!err) {
		uint64_t one = 1;

		/* Wake the thread: the new guest may already have work. */
		if (write(r->stopfd, &one, sizeof(one)) < 0)
			abort();
	}
	return err;
}

/* Stop serving g. When this returns the relay no longer touches g. */
void vrdma_relay_remove(struct vrdma_relay *r, struct vrdma_guest *g)
{
	pthread_mutex_lock(&r->lock);
	for (size_t i = 0; i < r->n; i++) {
		if (r->guests[i] != g)
			continue;
		r->guests[i] = r->guests[--r->n];
		epoll_ctl(r->epfd, EPOLL_CTL_DEL, g->chan->fd, NULL);
		epoll_ctl(r->epfd, EPOLL_CTL_DEL, g->ctx->async_fd, NULL);
		if (g->doorbell >= 0)
			epoll_ctl(r->epfd, EPOLL_CTL_DEL, g->doorbell, NULL);
		g->in_relay = false;
		break;
	}
	pthread_mutex_unlock(&r->lock);
}

void vrdma_relay_get_stats(struct vrdma_relay *r, struct vrdma_relay_stats *s)
{
	pthread_mutex_lock(&r->lock);
	*s = r->st;
	pthread_mutex_unlock(&r->lock);
}

pid_t vrdma_relay_tid(struct vrdma_relay *r)
{
	return __atomic_load_n(&r->tid, __ATOMIC_ACQUIRE);
}
