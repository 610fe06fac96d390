// SPDX-License-Identifier: MIT
/*
 * guest/port-events: run under vbus-run by tests/device/guest-port-events.sh, which takes
 * the netdev under rxe0 down and up after this program prints "ready". Checks that the
 * guest's context reports IBV_EVENT_PORT_ERR then IBV_EVENT_PORT_ACTIVE for port 1 through
 * ibv_get_async_event, that its async_fd works with poll(), and that ibv_query_port follows.
 * With the argument "fatal" the script kills vbusd instead: the context must report
 * IBV_EVENT_DEVICE_FATAL, and verbs must then fail or return at once, never hang. With
 * "gid N" it also waits, after PORT_ACTIVE, until GID index N is set again. It opens the
 * first device, or the one $VBUS_PE_DEVICE names.
 */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <infiniband/verbs.h>
#include "../lib/vt-time.h"

#define fail(...) do { printf("FAIL line %d: ", __LINE__); printf(__VA_ARGS__); printf("\n"); \
			exit(1); } while (0)
#define check(c, ...) do { if (!(c)) fail(__VA_ARGS__); } while (0)

/* Wait for event `want` (reporting the others on the way); port events must name port 1.
 * The limit is scaled (VBUS_TIME_SCALE). */
static void expect(struct ibv_context *ctx, enum ibv_event_type want, int timeout_ms)
{
	struct pollfd p = { .fd = ctx->async_fd, .events = POLLIN };
	struct ibv_async_event ev;

	timeout_ms = vt_ms(timeout_ms);
	for (;;) {
		int n = poll(&p, 1, timeout_ms);

		check(n == 1, "no %s within %d ms (poll %d)", ibv_event_type_str(want), timeout_ms, n);
		check(!ibv_get_async_event(ctx, &ev), "ibv_get_async_event: %s", strerror(errno));
		printf("event: %s\n", ibv_event_type_str(ev.event_type));
		ibv_ack_async_event(&ev);
		if (ev.event_type != want)
			continue;
		if (want == IBV_EVENT_PORT_ERR || want == IBV_EVENT_PORT_ACTIVE)
			check(ev.element.port_num == 1, "port %d, wanted 1", ev.element.port_num);
		return;
	}
}

/* Natively a context gets DEVICE_FATAL once. On the kernel backend both the bus and the
 * module report the end: the library must pass on one. Waits 500 ms (scaled) for another. */
static void once(struct ibv_context *ctx)
{
	struct pollfd p = { .fd = ctx->async_fd, .events = POLLIN };
	struct ibv_async_event ev;

	while (poll(&p, 1, vt_ms(500)) == 1) {
		check(!ibv_get_async_event(ctx, &ev), "ibv_get_async_event: %s", strerror(errno));
		printf("event: %s\n", ibv_event_type_str(ev.event_type));
		ibv_ack_async_event(&ev);
		check(ev.event_type != IBV_EVENT_DEVICE_FATAL, "a second IBV_EVENT_DEVICE_FATAL");
	}
	printf("ok   no second IBV_EVENT_DEVICE_FATAL\n");
}

static void fatal(struct ibv_context *ctx, struct ibv_pd *pd, struct ibv_cq *cq)
{
	struct ibv_wc wc;
	struct ibv_pd *pd2;
	int n;

	printf("ready\n");
	fflush(stdout);
	struct timespec t;

	expect(ctx, IBV_EVENT_DEVICE_FATAL, 20000);
	/* when, for the script (as date +%s%N); flushed: the checks below take a while */
	clock_gettime(CLOCK_REALTIME, &t);
	printf("ok   IBV_EVENT_DEVICE_FATAL at %lld ns\n", t.tv_sec * 1000000000LL + t.tv_nsec);
	fflush(stdout);
	once(ctx);
	pd2 = ibv_alloc_pd(ctx);
	check(!pd2, "ibv_alloc_pd succeeded with vbusd gone");
	printf("ok   ibv_alloc_pd fails: %s\n", strerror(errno));
	n = ibv_poll_cq(cq, 1, &wc);
	check(n == 0 || n < 0, "poll_cq: %d", n);
	printf("ok   ibv_poll_cq returns %d at once\n", n);
	ibv_dealloc_pd(pd);	/* errors are fine; hanging is not */
	ibv_destroy_cq(cq);
	ibv_close_device(ctx);
}

/* "gid N": the link's address comes back after the port: wait (scaled) until GID index N of
 * port 1 is set again, so that whatever runs next can use it. */
static void gid_back(struct ibv_context *ctx, int index)
{
	const struct timespec tick = { 0, 100 * 1000 * 1000 };
	int tries = vt_ms(10000) / 100;
	union ibv_gid g;

	for (int i = 0; i < tries; i++) {
		static const union ibv_gid zero;

		if (!ibv_query_gid(ctx, 1, index, &g) && memcmp(&g, &zero, sizeof(g))) {
			printf("ok   GID index %d set again\n", index);
			return;
		}
		nanosleep(&tick, NULL);
	}
	fail("GID index %d still unset after %d ms", index, tries * 100);
}

int main(int argc, char **argv)
{
	struct ibv_device **list = ibv_get_device_list(NULL);
	const char *want = getenv("VBUS_PE_DEVICE");	/* else the first device */
	struct ibv_context *ctx;
	struct ibv_port_attr pa;
	int d = 0;

	check(list && list[0], "no device");
	while (want && list[d] && strcmp(ibv_get_device_name(list[d]), want))
		d++;
	check(list[d], "no device %s", want);
	ctx = ibv_open_device(list[d]);
	check(ctx, "open %s", ibv_get_device_name(list[d]));
	check(!ibv_query_port(ctx, 1, &pa) && pa.state == IBV_PORT_ACTIVE, "port 1 not active");
	if (argc > 1 && !strcmp(argv[1], "fatal")) {
		struct ibv_pd *pd = ibv_alloc_pd(ctx);
		struct ibv_cq *cq = ibv_create_cq(ctx, 16, NULL, NULL, 0);
		struct ibv_qp_init_attr ia = { .send_cq = cq, .recv_cq = cq, .qp_type = IBV_QPT_RC,
			.cap = { .max_send_wr = 4, .max_recv_wr = 4, .max_send_sge = 1, .max_recv_sge = 1 } };

		check(pd && cq && ibv_create_qp(pd, &ia), "PD, CQ, QP (for vbusctl res show)");
		fatal(ctx, pd, cq);
		ibv_free_device_list(list);
		return 0;
	}
	printf("ready\n");
	fflush(stdout);
	expect(ctx, IBV_EVENT_PORT_ERR, 20000);
	check(!ibv_query_port(ctx, 1, &pa) && pa.state != IBV_PORT_ACTIVE, "port still ACTIVE");
	printf("ok   IBV_EVENT_PORT_ERR, port state %s\n", ibv_port_state_str(pa.state));
	expect(ctx, IBV_EVENT_PORT_ACTIVE, 20000);
	check(!ibv_query_port(ctx, 1, &pa) && pa.state == IBV_PORT_ACTIVE, "port not ACTIVE again");
	printf("ok   IBV_EVENT_PORT_ACTIVE, port state ACTIVE\n");
	if (argc > 2 && !strcmp(argv[1], "gid"))
		gid_back(ctx, atoi(argv[2]));
	ibv_close_device(ctx);
	ibv_free_device_list(list);
	return 0;
}
