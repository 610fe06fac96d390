// SPDX-License-Identifier: MIT
/*
 * pingpong: the machine's floor for a hand-off between two processes, the figures that
 * every vbus path is compared with.
 *
 *   pingpong [--mode spin|eventfd] [--iters N] [--cpus A,B] [--json]
 *
 *   spin     a shared cache line: the parent writes a sequence number, the child echoes it
 *            (each side spins; with both on one CPU it calls sched_yield() while waiting)
 *   eventfd  two eventfds: write, then a blocking read on the other side
 * Prints the round trip's p50, p99 and mean in microseconds over N iterations (after
 * N/10 warm-up ones). --cpus pins the parent to A and the child to B (A == B: one CPU).
 */
#include <errno.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

struct shared {
	_Alignas(64) uint64_t ping;	/* written by the parent only */
	_Alignas(64) uint64_t pong;	/* written by the child only */
};

static int one_cpu;

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void pin(int cpu)
{
	cpu_set_t s;

	if (cpu < 0)
		return;
	CPU_ZERO(&s);
	CPU_SET(cpu, &s);
	if (sched_setaffinity(0, sizeof(s), &s)) {
		fprintf(stderr, "pingpong: cannot pin to CPU %d: %s\n", cpu, strerror(errno));
		exit(2);
	}
}

/* Wait until *p == v. Acquire pairs with the other side's release store. */
static void wait_for(uint64_t *p, uint64_t v)
{
	while (__atomic_load_n(p, __ATOMIC_ACQUIRE) != v) {
		if (one_cpu)
			sched_yield();
		else
			__builtin_ia32_pause();
	}
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return (x > y) - (x < y);
}

int main(int argc, char **argv)
{
	const char *mode = "spin";
	long iters = 100000;
	int cpu_a = -1, cpu_b = -1, json = 0, efd[2];
	struct shared *sh;
	uint64_t *lat, v, sum = 0;
	pid_t child;
	long warm, total;

	for (int i = 1; i < argc; i++) {
		const char *a = argv[i], *n = i + 1 < argc ? argv[i + 1] : NULL;

		if (!strcmp(a, "--mode") && n) { mode = n; i++; }
		else if (!strcmp(a, "--iters") && n) { iters = atol(n); i++; }
		else if (!strcmp(a, "--cpus") && n) {
			if (sscanf(n, "%d,%d", &cpu_a, &cpu_b) != 2) {
				fprintf(stderr, "pingpong: --cpus takes A,B\n");
				return 2;
			}
			i++;
		} else if (!strcmp(a, "--json")) json = 1;
		else if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
			printf("usage: pingpong [--mode spin|eventfd] [--iters N] [--cpus A,B] [--json]\n"
			       "Round trip between two processes through a shared cache line (spin)\n"
			       "or a pair of eventfds; p50/p99/mean in microseconds.\n");
			return 0;
		} else {
			fprintf(stderr, "pingpong: bad argument '%s' (see --help)\n", a);
			return 2;
		}
	}
	if (strcmp(mode, "spin") && strcmp(mode, "eventfd")) {
		fprintf(stderr, "pingpong: --mode is spin or eventfd\n");
		return 2;
	}
	if (iters < 10 || iters > 100000000) {
		fprintf(stderr, "pingpong: --iters must be 10..100000000\n");
		return 2;
	}
	one_cpu = cpu_a >= 0 && cpu_a == cpu_b;
	warm = iters / 10;
	total = warm + iters;
	sh = mmap(NULL, sizeof(*sh), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	lat = calloc((size_t)iters, sizeof(*lat));
	efd[0] = eventfd(0, EFD_CLOEXEC);
	efd[1] = eventfd(0, EFD_CLOEXEC);
	if (sh == MAP_FAILED || !lat || efd[0] < 0 || efd[1] < 0) {
		perror("pingpong: setup");
		return 1;
	}
	child = fork();
	if (child < 0) {
		perror("pingpong: fork");
		return 1;
	}
	if (child == 0) {
		pin(cpu_b);
		for (long i = 1; i <= total; i++) {
			if (!strcmp(mode, "spin")) {
				wait_for(&sh->ping, (uint64_t)i);
				__atomic_store_n(&sh->pong, (uint64_t)i, __ATOMIC_RELEASE);
			} else if (read(efd[0], &v, sizeof(v)) != sizeof(v) ||
				   write(efd[1], &v, sizeof(v)) != sizeof(v)) {
				_exit(1);
			}
		}
		_exit(0);
	}
	pin(cpu_a);
	for (long i = 1; i <= total; i++) {
		uint64_t t0 = now_ns();

		if (!strcmp(mode, "spin")) {
			/* Release: pairs with the child's acquire in wait_for(). */
			__atomic_store_n(&sh->ping, (uint64_t)i, __ATOMIC_RELEASE);
			wait_for(&sh->pong, (uint64_t)i);
		} else {
			v = 1;
			if (write(efd[0], &v, sizeof(v)) != sizeof(v) ||
			    read(efd[1], &v, sizeof(v)) != sizeof(v)) {
				perror("pingpong: eventfd");
				kill(child, SIGKILL);
				return 1;
			}
		}
		if (i > warm)
			lat[i - warm - 1] = now_ns() - t0;
	}
	if (waitpid(child, NULL, 0) < 0)
		perror("pingpong: waitpid");
	qsort(lat, (size_t)iters, sizeof(*lat), cmp_u64);
	for (long i = 0; i < iters; i++)
		sum += lat[i];
	{
		double p50 = lat[iters / 2] / 1e3, p99 = lat[iters * 99 / 100] / 1e3;
		double mean = (double)sum / (double)iters / 1e3;

		if (json)
			printf("{\"case\":\"pingpong-%s\",\"cpus\":\"%d,%d\",\"iters\":%ld,"
			       "\"p50_us\":%.3f,\"p99_us\":%.3f,\"mean_us\":%.3f}\n",
			       mode, cpu_a, cpu_b, iters, p50, p99, mean);
		else
			printf("%-8s round trip, CPUs %d,%d: p50 %.3f us  p99 %.3f us  mean %.3f us  (%ld iterations)\n",
			       mode, cpu_a, cpu_b, p50, p99, mean, iters);
	}
	return 0;
}
