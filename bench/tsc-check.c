// SPDX-License-Identifier: MIT
/*
 * tsc-check: does perftest's cycle-to-microsecond conversion hold on this machine?
 *
 * perftest times each iteration with the TSC (rdtsc) and divides by the "cpu MHz" that
 * /proc/cpuinfo reports. Under an emulator (QEMU TCG) the two can disagree. This program
 * counts TSC ticks against CLOCK_MONOTONIC over a fixed interval and compares the measured
 * rate with /proc/cpuinfo's figure.
 *
 *   tsc-check [--ms N] [--json]
 * Exit status: 0 when they agree within 1 %, 1 when they do not, 2 on bad usage.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <x86intrin.h>

static double now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e9 + ts.tv_nsec;
}

/* The largest "cpu MHz" in /proc/cpuinfo, as perftest takes it; 0 if there is none. */
static double cpuinfo_mhz(int *ncpu, int *differ)
{
	FILE *f = fopen("/proc/cpuinfo", "r");
	char line[256];
	double mhz = 0, first = -1, v;

	*ncpu = 0;
	*differ = 0;
	if (!f)
		return 0;
	while (fgets(line, sizeof(line), f)) {
		if (sscanf(line, "cpu MHz : %lf", &v) != 1)
			continue;
		(*ncpu)++;
		if (first < 0)
			first = v;
		else if (v != first)
			*differ = 1;
		if (v > mhz)
			mhz = v;
	}
	fclose(f);
	return mhz;
}

int main(int argc, char **argv)
{
	int ms = 500, json = 0, ncpu, differ;
	double t0, t1, mhz, tsc_mhz, ratio;
	uint64_t c0, c1;

	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--ms") && i + 1 < argc) {
			ms = atoi(argv[++i]);
		} else if (!strcmp(argv[i], "--json")) {
			json = 1;
		} else if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
			printf("usage: tsc-check [--ms N] [--json]\n"
			       "Compare the TSC rate measured against CLOCK_MONOTONIC with /proc/cpuinfo's\n"
			       "\"cpu MHz\", which perftest uses to turn cycles into microseconds.\n");
			return 0;
		} else {
			fprintf(stderr, "tsc-check: unknown argument '%s' (see --help)\n", argv[i]);
			return 2;
		}
	}
	if (ms <= 0 || ms > 60000) {
		fprintf(stderr, "tsc-check: --ms must be 1..60000\n");
		return 2;
	}
	mhz = cpuinfo_mhz(&ncpu, &differ);
	t0 = now_ns();
	c0 = __rdtsc();
	while (now_ns() - t0 < ms * 1e6)
		;
	c1 = __rdtsc();
	t1 = now_ns();
	tsc_mhz = (double)(c1 - c0) / ((t1 - t0) / 1e3);
	ratio = mhz > 0 ? mhz / tsc_mhz : 0;
	if (json)
		printf("{\"cpuinfo_mhz\":%.3f,\"tsc_mhz\":%.3f,\"ratio\":%.5f,\"cpus\":%d,"
		       "\"cpuinfo_mhz_differ\":%s,\"interval_ms\":%d}\n",
		       mhz, tsc_mhz, ratio, ncpu, differ ? "true" : "false", ms);
	else
		printf("cpuinfo %.3f MHz (%d CPUs%s), TSC measured %.3f MHz over %d ms: "
		       "perftest's microseconds are x%.4f of real ones\n",
		       mhz, ncpu, differ ? ", values differ" : "", tsc_mhz, ms, ratio ? 1 / ratio : 0);
	return (ratio > 0.99 && ratio < 1.01) ? 0 : 1;
}
