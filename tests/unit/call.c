// SPDX-License-Identifier: MIT
/*
 * call(): a guest process and a bus process over a call channel in a memfd. Checked:
 * every answer matches its question (8 threads of the guest calling at once, serialized
 * by the caller's lock); a slow call sleeps at once and the sleeping guest uses no CPU;
 * an idle bus side uses no CPU; both sides fall asleep and are woken by the signal
 * (no lost wake-up over thousands of sleep/wake cycles); a guest that scribbled its own
 * signal word gets its answer late, never lost; a bad request gets an error, not a crash;
 * a bus that does not answer gives -ETIMEDOUT.
 */
#include <endian.h>
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include "../../connector/ring.h"

#define fail(...) do { printf("FAIL line %d: ", __LINE__); printf(__VA_ARGS__); printf("\n"); exit(1); } while (0)
#define check(c, ...) do { if (!(c)) fail(__VA_ARGS__); } while (0)

enum { FN_ECHO = 1, FN_SLEEP = 2, FN_QUIET = 3, FN_EXIT = 99 };

static struct vbus_callchan gc;
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;

static double cpu_now(int who)
{
	struct rusage ru;

	getrusage(who, &ru);
	return ru.ru_utime.tv_sec + ru.ru_stime.tv_sec + (ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

static double proc_cpu(pid_t pid)
{
	char path[64], buf[1024];
	unsigned long u, s;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	f = fopen(path, "r");
	check(f && fgets(buf, sizeof(buf), f), "stat");
	fclose(f);
	check(sscanf(strrchr(buf, ')') + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu",
		     &u, &s) == 2, "parse");
	return (double)(u + s) / (double)sysconf(_SC_CLK_TCK);
}

static void bus_side(void *mem, int to_bus, int to_guest)
{
	struct vbus_callchan c;
	struct vbus_call_req req;
	bool stop = false;

	if (vbus_callchan_bus_init(&c, mem, 4, to_bus, to_guest))
		_exit(2);
	for (;;) {
		int r = vbus_callchan_next(&c, &req, &stop);
		uint32_t fn = le32toh(req.fn), ms;

		if (r == -EBADMSG) {
			vbus_callchan_reply(&c, le64toh(req.tag), -EINVAL, NULL, 0);
			continue;
		}
		if (r <= 0)
			_exit(3);
		switch (fn) {
		case FN_ECHO:
			vbus_callchan_reply(&c, le64toh(req.tag), (int32_t)le32toh(req.handle),
					    req.payload, le32toh(req.inlen));
			break;
		case FN_SLEEP:
			memcpy(&ms, req.payload, 4);
			usleep(ms * 1000);
			vbus_callchan_reply(&c, le64toh(req.tag), 0, NULL, 0);
			break;
		case FN_QUIET:
			break;	/* never answers */
		case FN_EXIT:
			vbus_callchan_reply(&c, le64toh(req.tag), 0, NULL, 0);
			_exit(0);
		default:
			vbus_callchan_reply(&c, le64toh(req.tag), -EOPNOTSUPP, NULL, 0);
		}
	}
}

static int echo_call(uint32_t h, const char *s)
{
	char out[VBUS_CALL_INLINE];
	size_t n = 0;
	int r;

	pthread_mutex_lock(&lock);
	r = vbus_callchan_call(&gc, h, FN_ECHO, 0, s, strlen(s) + 1, out, sizeof(out), &n, 5000);
	pthread_mutex_unlock(&lock);
	if (r != (int)h)
		return -1;
	return n == strlen(s) + 1 && !memcmp(out, s, n) ? 0 : -1;
}

static void *caller(void *arg)
{
	long id = (long)arg, bad = 0;
	char s[64];

	for (int i = 0; i < 2000; i++) {
		snprintf(s, sizeof(s), "thread %ld call %d", id, i);
		bad += echo_call((uint32_t)(id * 10000 + i), s) != 0;
	}
	return (void *)bad;
}

int main(void)
{
	size_t sz = VBUS_CALL_SIZE(4);
	int memfd = memfd_create("call-test", MFD_CLOEXEC), tb, tg, st;
	void *mem;
	pid_t bus, parent;
	pthread_t t[8];
	long bad = 0;

	check(memfd >= 0 && !ftruncate(memfd, (off_t)sz), "memfd");
	mem = mmap(NULL, sz, PROT_READ | PROT_WRITE, MAP_SHARED, memfd, 0);
	tb = eventfd(0, EFD_CLOEXEC);
	tg = eventfd(0, EFD_CLOEXEC);
	check(mem != MAP_FAILED && tb >= 0 && tg >= 0, "setup");
	check(!vbus_callchan_guest_init(&gc, mem, 4, tb, tg), "guest init");
	parent = getpid();
	bus = fork();
	if (bus == 0) {
		void *m2 = mmap(NULL, sz, PROT_READ | PROT_WRITE, MAP_SHARED, memfd, 0);

		/* A failing check exits the guest side: the bus side must not outlive it
		 * (it holds the test's stdout). */
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		if (getppid() != parent)
			_exit(4);

		bus_side(m2, tb, tg);
	}

	for (long i = 0; i < 8; i++)
		pthread_create(&t[i], NULL, caller, (void *)i);
	for (int i = 0; i < 8; i++) {
		void *r;

		pthread_join(t[i], &r);
		bad += (long)r;
	}
	check(!bad, "%ld of 16000 answers were wrong", bad);
	printf("ok   8 threads x 2000 calls: every answer matched (spun %llu, slept %llu)\n",
	       (unsigned long long)gc.spins, (unsigned long long)gc.sleeps);

	/* Sleep/wake cycles: each call after the other side fell asleep must still wake it. */
	gc.spin_ns = 0;
	for (int i = 0; i < 300; i++) {
		check(!echo_call(7, "wake up"), "call %d after a pause", i);
		if (i % 30 == 0)
			usleep(2000);
	}
	printf("ok   300 calls with no spinning at all: every wake-up arrived (slept %llu)\n",
	       (unsigned long long)gc.sleeps);

	/* A slow call sleeps at once: the guest uses no CPU while the bus works. */
	{
		uint32_t ms = 600;
		double c0 = cpu_now(RUSAGE_SELF), c1;
		size_t n;

		gc.spin_ns = 20000000;	/* a long spin budget that SLOW must skip */
		check(!vbus_callchan_call(&gc, 1, FN_SLEEP, VBUS_CALL_SLOW, &ms, 4, NULL, 0, &n, 5000),
		      "slow call");
		c1 = cpu_now(RUSAGE_SELF);
		check(c1 - c0 < 0.06, "a guest in a 600 ms slow call used %.3f s CPU", c1 - c0);
		printf("ok   a 600 ms SLOW call: the waiting guest used %.3f s of CPU\n", c1 - c0);
	}

	/* The guest's own signal word scribbled (pending set, so the bus's answer to a
	 * sleeping guest kicks nobody): the call is answered late, never lost; and the next
	 * sleeping call is woken by a kick again. */
	for (int i = 0; i < 2; i++) {
		uint32_t ms = 300;
		size_t n;
		uint64_t s0 = gc.sleeps, k0 = le64toh(gc.to_guest.shm->count);

		if (!i) {
			struct pollfd p = { .fd = gc.to_guest.efd, .events = POLLIN };
			uint64_t v;

			/* A kick left from an earlier call would wake the guest at once. */
			if (poll(&p, 1, 0) == 1)
				check(read(gc.to_guest.efd, &v, sizeof(v)) == sizeof(v), "drain");
			__atomic_store_n(&gc.to_guest.shm->pending, htole32(1), __ATOMIC_SEQ_CST);
		}
		struct timespec t0, t1;
		double dt;

		clock_gettime(CLOCK_MONOTONIC, &t0);
		check(!vbus_callchan_call(&gc, 1, FN_SLEEP, VBUS_CALL_SLOW, &ms, 4, NULL, 0, &n, 20000),
		      "a slow call with the guest's pending word %s", i ? "healed" : "scribbled");
		clock_gettime(CLOCK_MONOTONIC, &t1);
		dt = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
		check(gc.sleeps > s0, "the slow call did not sleep");
		/* A lost wake-up shows as an answer found only at the call's 20 s deadline. */
		check(dt < 10, "a 300 ms call with the pending word %s took %.1f s: a lost wake-up",
		      i ? "healed" : "scribbled", dt);
		/* Healed: the wake cleared it, and the next answer came with a kick again. */
		check(!__atomic_load_n(&gc.to_guest.shm->pending, __ATOMIC_SEQ_CST) || i,
		      "the pending word is still set after the call");
		check(!i || le64toh(gc.to_guest.shm->count) > k0,
		      "the call after the healing was answered without a kick");
	}
	printf("ok   a scribbled pending word: the call answered all the same, the next one too\n");

	/* An idle bus side sleeps. */
	{
		double c0 = proc_cpu(bus), c1;

		sleep(1);
		c1 = proc_cpu(bus);
		check(c1 - c0 < 0.05, "an idle bus side used %.2f s of CPU in 1 s", c1 - c0);
		printf("ok   idle bus side: %.2f s of CPU in 1 s\n", c1 - c0);
	}

	/* Bad requests and a silent bus. */
	{
		char out[16];
		size_t n;

		gc.spin_ns = 20000;
		check(vbus_callchan_call(&gc, 1, FN_ECHO, 0, out, VBUS_CALL_INLINE + 1, out, 16, &n, 1000) ==
		      -EINVAL, "an oversized input is refused locally");
		check(vbus_callchan_call(&gc, 1, 42, 0, NULL, 0, out, 16, &n, 1000) == -EOPNOTSUPP,
		      "an unknown function gets the bus's error");
		check(vbus_callchan_call(&gc, 1, FN_QUIET, 0, NULL, 0, out, 16, &n, 200) == -ETIMEDOUT,
		      "a silent bus times out");
		printf("ok   bad requests refused; a silent bus gives ETIMEDOUT\n");
	}
	kill(bus, SIGKILL);
	check(waitpid(bus, &st, 0) == bus, "wait");
	return 0;
}
