// SPDX-License-Identifier: MIT
/*
 * devlist: the device list as one running program sees it across hot add and removal
 * (docs/abi.md, "Hot add"; natively rdma-core reads sysfs again on each call).
 *
 *   devlist LIST...
 *
 * Each LIST is device names, sorted, separated by spaces ("k0 r0"). For each in turn it
 * calls ibv_get_device_list() every 100 ms until the sorted names are exactly LIST, then
 * prints "DEVLIST <i> <names>" (flushed: the caller acts on it) and goes on to the next.
 * After 600 calls without it: "DEVLIST-TIMEOUT <i> <names seen last>", exit 1. Exit 0
 * once every LIST was seen, 2 for bad usage.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <infiniband/verbs.h>

#define NAMES_MAX 1024

static int by_name(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The sorted names of the devices listed now, space-separated, into out. */
static void names_now(char *out, size_t n)
{
	struct ibv_device **l;
	const char *names[64];
	int k = 0, num = 0;
	size_t at = 0;

	out[0] = 0;
	l = ibv_get_device_list(&num);
	if (!l) {
		snprintf(out, n, "(ibv_get_device_list failed)");
		return;
	}
	for (int i = 0; i < num && k < 64; i++)
		names[k++] = ibv_get_device_name(l[i]);
	qsort(names, k, sizeof(names[0]), by_name);
	for (int i = 0; i < k && at < n; i++)
		at += snprintf(out + at, n - at, "%s%s", i ? " " : "", names[i]);
	ibv_free_device_list(l);
}

int main(int argc, char **argv)
{
	const struct timespec tick = { 0, 100 * 1000 * 1000 };
	char now[NAMES_MAX];

	if (argc < 2) {
		fprintf(stderr, "usage: devlist LIST... (each LIST: sorted device names, \"k0 r0\")\n");
		return 2;
	}
	for (int i = 1; i < argc; i++) {
		int tries = 0;

		for (;;) {
			names_now(now, sizeof(now));
			if (!strcmp(now, argv[i]))
				break;
			if (++tries == 600) {
				printf("DEVLIST-TIMEOUT %d %s\n", i, now);
				return 1;
			}
			nanosleep(&tick, NULL);
		}
		printf("DEVLIST %d %s\n", i, now);
		fflush(stdout);
	}
	return 0;
}
