// SPDX-License-Identifier: MIT
/*
 * call: what a null DEVCALL costs, against the floor of the machine.
 *
 * Starts a private vbusd with an `echo` device, attaches as a guest, and times null calls
 * (ECHO, no payload) over the shared-memory call channel and over the socket; then runs
 * bench/pingpong (a raw cache-line ping-pong and an eventfd round trip) on the same two
 * CPUs. Prints p50/p99 of each and the ratio call/ping-pong.
 *
 *   call [--iters N] [--cpus A,B] [--json] [--bin DIR]
 *   --cpus A,B   the guest on CPU A, vbusd on CPU B (default 0,1)
 *   --bin DIR    where vbusd, vbusctl and pingpong are (default: this program's build)
 */
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <vbus/libvbus.h>

static char run_dir[64];
static pid_t vbusd;

static void stop(void)
{
	char cmd[128];

	if (vbusd > 0) {
		kill(vbusd, SIGTERM);
		waitpid(vbusd, NULL, 0);
	}
	snprintf(cmd, sizeof(cmd), "rm -rf %s", run_dir);
	if (run_dir[0] && system(cmd))
		fprintf(stderr, "call: could not remove %s\n", run_dir);
}

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static int cmp(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return (x > y) - (x < y);
}

static void pin(pid_t pid, int cpu)
{
	cpu_set_t s;

	CPU_ZERO(&s);
	CPU_SET(cpu, &s);
	if (sched_setaffinity(pid, sizeof(s), &s))
		fprintf(stderr, "call: cannot pin to CPU %d: %s\n", cpu, strerror(errno));
}

/* Time n null calls; p50/p99 in microseconds. */
static int measure(struct vbus_conn *c, uint32_t h, long n, double *p50, double *p99)
{
	uint64_t *lat = calloc((size_t)n, sizeof(*lat));
	char out[8];
	size_t outlen;

	if (!lat)
		return -ENOMEM;
	for (long i = -n / 10; i < n; i++) {
		uint64_t t0 = now_ns();
		int r = vbus_devcall(c, h, 1, NULL, 0, out, sizeof(out), &outlen);

		if (r) {
			free(lat);
			return r;
		}
		if (i >= 0)
			lat[i] = now_ns() - t0;
	}
	qsort(lat, (size_t)n, sizeof(*lat), cmp);
	*p50 = lat[n / 2] / 1e3;
	*p99 = lat[n * 99 / 100] / 1e3;
	free(lat);
	return 0;
}

/* Run bench/pingpong --json and pick its p50/p99. */
static int pingpong(const char *bin, const char *mode, long n, int a, int b, double *p50,
		    double *p99)
{
	char cmd[1024], line[512];
	FILE *p;
	int ok = 0;

	snprintf(cmd, sizeof(cmd), "%s/../bench/pingpong --json --mode %s --iters %ld --cpus %d,%d",
		 bin, mode, n, a, b);
	p = popen(cmd, "r");
	if (!p)
		return -errno;
	if (fgets(line, sizeof(line), p)) {
		char *x = strstr(line, "\"p50_us\":"), *y = strstr(line, "\"p99_us\":");

		if (x && y) {
			*p50 = atof(x + 9);
			*p99 = atof(y + 9);
			ok = 1;
		}
	}
	pclose(p);
	return ok ? 0 : -EIO;
}

int main(int argc, char **argv)
{
	long iters = 20000;
	int a = 0, b = 1, json = 0, r;
	char bin[512] = "", path[600], cmd[1400];
	struct vbus_conn *c;
	uint32_t h;
	double cp50, cp99, sp50, sp99, pp50, pp99, ep50, ep99;

	for (int i = 1; i < argc; i++) {
		const char *o = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;

		if (!strcmp(o, "--iters") && v) { iters = atol(v); i++; }
		else if (!strcmp(o, "--cpus") && v && sscanf(v, "%d,%d", &a, &b) == 2) i++;
		else if (!strcmp(o, "--bin") && v) { snprintf(bin, sizeof(bin), "%s", v); i++; }
		else if (!strcmp(o, "--json")) json = 1;
		else if (!strcmp(o, "-h") || !strcmp(o, "--help")) {
			printf("usage: call [--iters N] [--cpus A,B] [--json] [--bin DIR]\n"
			       "Null DEVCALL round trip through vbusd (call channel and socket) against a\n"
			       "raw cache-line ping-pong and an eventfd round trip on the same CPUs.\n");
			return 0;
		} else {
			fprintf(stderr, "call: bad argument '%s' (see --help)\n", o);
			return 2;
		}
	}
	if (iters < 100) {
		fprintf(stderr, "call: --iters must be at least 100\n");
		return 2;
	}
	if (!bin[0]) {	/* build/VARIANT/bench/call -> build/VARIANT/bin */
		char self[512];
		ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);

		if (n <= 0)
			return 1;
		self[n] = 0;
		snprintf(bin, sizeof(bin), "%s/../bin", dirname(self));
	}
	snprintf(run_dir, sizeof(run_dir), "/tmp/vbus-bench-call.XXXXXX");
	if (!mkdtemp(run_dir))
		return 1;
	snprintf(path, sizeof(path), "%s/vbusd", bin);
	vbusd = fork();
	if (vbusd == 0) {
		int fd = open("/dev/null", O_WRONLY);

		dup2(fd, 2);
		execl(path, "vbusd", "--run-dir", run_dir, "-q", (char *)NULL);
		_exit(127);
	}
	pin(vbusd, b);
	pin(0, a);
	snprintf(cmd, sizeof(cmd), "for i in $(seq 100); do [ -S %s/ctl.sock ] && break; sleep 0.05; done;"
		 " %s/vbusctl --run-dir %s bus add bench >/dev/null && "
		 "%s/vbusctl --run-dir %s dev add echo0 class echo bus bench >/dev/null",
		 run_dir, bin, run_dir, bin, run_dir);
	if (system(cmd) || vbus_connect(run_dir, "bench", &c) || vbus_devopen(c, "echo0", "echo", &h)) {
		fprintf(stderr, "call: cannot start vbusd (%s) with an echo device\n", path);
		stop();
		return 1;
	}
	r = measure(c, h, iters, &sp50, &sp99);
	if (!r)
		r = vbus_callchan_open(c, 8);
	if (!r)
		r = measure(c, h, iters, &cp50, &cp99);
	vbus_disconnect(c);
	stop();
	if (r) {
		fprintf(stderr, "call: calls failed: %s\n", strerror(-r));
		return 1;
	}
	if (pingpong(bin, "spin", iters, a, b, &pp50, &pp99) ||
	    pingpong(bin, "eventfd", iters / 4, a, b, &ep50, &ep99)) {
		fprintf(stderr, "call: bench/pingpong failed\n");
		return 1;
	}
	if (json)
		printf("{\"case\":\"call\",\"cpus\":\"%d,%d\",\"iters\":%ld,\"call_p50_us\":%.3f,"
		       "\"call_p99_us\":%.3f,\"socket_p50_us\":%.3f,\"socket_p99_us\":%.3f,"
		       "\"pingpong_p50_us\":%.3f,\"pingpong_p99_us\":%.3f,\"eventfd_p50_us\":%.3f,"
		       "\"eventfd_p99_us\":%.3f,\"ratio_p50\":%.2f}\n", a, b, iters, cp50, cp99,
		       sp50, sp99, pp50, pp99, ep50, ep99, cp50 / pp50);
	else
		printf("CPUs %d,%d, %ld iterations, round trip p50 / p99 (us):\n"
		       "  null call(), call channel  %9.3f / %9.3f\n"
		       "  null call(), socket        %9.3f / %9.3f\n"
		       "  cache-line ping-pong       %9.3f / %9.3f\n"
		       "  eventfd round trip         %9.3f / %9.3f\n"
		       "  call / ping-pong at p50:   %.2fx\n",
		       a, b, iters, cp50, cp99, sp50, sp99, pp50, pp99, ep50, ep99, cp50 / pp50);
	return 0;
}
