// SPDX-License-Identifier: MIT
/*
 * guest/port-events: run under vbus-run by tests/device/guest-port-events.sh, which takes
 * the netdev under rxe0 down and up after this program prints "ready". Checks that the
 * guest's context reports IBV_EVENT_PORT_ERR then IBV_EVENT_PORT_ACTIVE for port 1 through
 * ibv_get_async_event, that its async_fd works with poll(), and that ibv_query_port follows.
 */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <infiniband/verbs.h>

#define fail(...) do { printf("FAIL line %d: ", __LINE__); printf(__VA_ARGS__); printf("\n"); \
			exit(1); } while (0)
#define check(c, ...) do { if (!(c)) fail(__VA_ARGS__); } while (0)

static void expect(struct ibv_context *ctx, enum ibv_event_type want, int timeout_ms)
{
	struct pollfd p = { .fd = ctx->async_fd, .events = POLLIN };
	struct ibv_async_event ev;

	for (;;) {
		int n = poll(&p, 1, timeout_ms);

		check(n == 1, "no %s within %d ms (poll %d)", ibv_event_type_str(want), timeout_ms, n);
		check(!ibv_get_async_event(ctx, &ev), "ibv_get_async_event: %s", strerror(errno));
		printf("event: %s port %d\n", ibv_event_type_str(ev.event_type), ev.element.port_num);
		ibv_ack_async_event(&ev);
		if (ev.event_type == want) {
			check(ev.element.port_num == 1, "port %d, wanted 1", ev.element.port_num);
			return;
		}
	}
}

int main(void)
{
	struct ibv_device **list = ibv_get_device_list(NULL);
	struct ibv_context *ctx;
	struct ibv_port_attr pa;

	check(list && list[0], "no device");
	ctx = ibv_open_device(list[0]);
	check(ctx, "open %s", ibv_get_device_name(list[0]));
	check(!ibv_query_port(ctx, 1, &pa) && pa.state == IBV_PORT_ACTIVE, "port 1 not active");
	printf("ready\n");
	fflush(stdout);
	expect(ctx, IBV_EVENT_PORT_ERR, 20000);
	check(!ibv_query_port(ctx, 1, &pa) && pa.state != IBV_PORT_ACTIVE, "port still ACTIVE");
	printf("ok   IBV_EVENT_PORT_ERR, port state %s\n", ibv_port_state_str(pa.state));
	expect(ctx, IBV_EVENT_PORT_ACTIVE, 20000);
	check(!ibv_query_port(ctx, 1, &pa) && pa.state == IBV_PORT_ACTIVE, "port not ACTIVE again");
	printf("ok   IBV_EVENT_PORT_ACTIVE, port state ACTIVE\n");
	ibv_close_device(ctx);
	ibv_free_device_list(list);
	return 0;
}
