// SPDX-License-Identifier: MIT
/*
 * vm-pd: the control path of a vrdma device from a process in a VM (tests/unit/vm-verbs.sh,
 * docs/vm.md), a plain libibverbs program run under vbus-run:
 *   - device r0 opens; port 1 answers;
 *   - a PD is allocated and deallocated (a call through the VM's message channel each);
 *   - a CQ of 16 (its ring a region the driver pinned, its context's doorbell a vector) and
 *     one on a completion channel (a TO_GUEST vector) are made on the host's device, polled
 *     (nothing) and destroyed; an SRQ is refused by the device (tests/lib/fake-verbs.c has
 *     none: EOPNOTSUPP from the host); an MR of 8192 bytes is registered on the host's
 *     device with the buffer's address as iova ("MR iova" line: the test finds it in
 *     vbusd's log), the buffer's bytes intact, then deregistered;
 *   - a second PD is left allocated at exit: the host frees it when the connection ends.
 * Prints "VM-PD-OK" and exits 0, else one "VM-PD-FAIL" line and 1. With the argument
 * "hold" it then waits for a signal, holding its connection. VM_PD_DEV names another
 * device than r0.
 *
 * "vm-pd events": the bus's events in a VM (docs/vm.md, "Events"): r0 opens, "VM-EV-READY"
 * is printed, then it waits in ibv_get_async_event (the test removes r0 on the host: the
 * bus's DEV_REMOVED comes through BAR2's event ring) and prints the event as "VM-EV NAME".
 *
 * "vm-pd maps": a VM's budget of vbusd's mappings (docs/vm.md, "Mappings"; the test's VM
 * has `max-maps 256`): MRs of 8 KiB, each buffer a mapping of its own, are registered and
 * held until one is refused (each costs vbusd at least two mappings: its region's and its
 * window's); the refusal's errno is printed; all are deregistered and the first registered
 * again, which must succeed (the windows' mappings were given back): "VM-MAPS registered K,
 * then ERRNO_NAME".
 *
 * "vm-pd pin": a VM's max-pinned (the test's VM has `max-pinned 768K`): one buffer of 64
 * KiB registered again and again (each registration pins its span, as natively) until one
 * is refused; then all deregistered and one registered again: "VM-PIN registered K, then
 * ERRNO_NAME".
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/mman.h>
#include <infiniband/verbs.h>

#define FAIL(...) do { printf("VM-PD-FAIL "); printf(__VA_ARGS__); printf("\n"); return 1; } while (0)

static int events(struct ibv_context *c)
{
	struct ibv_async_event e;

	printf("VM-EV-READY\n");
	fflush(stdout);
	if (ibv_get_async_event(c, &e))
		FAIL("ibv_get_async_event: %s", strerror(errno));
	printf("VM-EV %s\n", ibv_event_type_str(e.event_type));
	ibv_ack_async_event(&e);
	printf("VM-PD-OK\n");
	return 0;	/* the context is dead: left to the exit */
}

static int maps(struct ibv_context *c)
{
	enum { N = 600, PG = 4096 };
	static struct ibv_mr *mr[N];
	static char *buf[N];
	struct ibv_pd *pd = ibv_alloc_pd(c);
	int k, err;

	if (!pd)
		FAIL("ibv_alloc_pd: %s", strerror(errno));
	/* Each buffer a mapping of its own (two pages and a PROT_NONE guard, so that the
	 * kernel merges none): the library moves a buffer's whole mapping into its region,
	 * so each region is small, and costs 1 or 2 mappings as its MR's window does. */
	for (k = 0; k < N; k++) {
		buf[k] = mmap(NULL, 3 * PG, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
			      -1, 0);
		if (buf[k] == MAP_FAILED || mprotect(buf[k] + 2 * PG, PG, PROT_NONE))
			FAIL("mmap: %s", strerror(errno));
		memset(buf[k], 1, 2 * PG);
	}
	for (k = 0; k < N; k++) {
		mr[k] = ibv_reg_mr(pd, buf[k], 2 * PG, IBV_ACCESS_LOCAL_WRITE);
		if (!mr[k])
			break;
	}
	err = errno;
	if (k == N)
		FAIL("%d MRs registered and none refused: no mapping budget", N);
	printf("VM-MAPS registered %d, then %s\n", k, strerrorname_np(err));
	while (k--)
		if (ibv_dereg_mr(mr[k]))
			FAIL("ibv_dereg_mr: %s", strerror(errno));
	mr[0] = ibv_reg_mr(pd, buf[0], 2 * PG, IBV_ACCESS_LOCAL_WRITE);
	if (!mr[0])
		FAIL("the first buffer again, all deregistered: %s", strerror(errno));
	if (ibv_dereg_mr(mr[0]) || ibv_dealloc_pd(pd))
		FAIL("ibv_dereg_mr, ibv_dealloc_pd: %s", strerror(errno));
	printf("VM-PD-OK\n");
	return 0;
}

static int pin(struct ibv_context *c)
{
	enum { N = 64, LEN = 64 << 10 };
	static struct ibv_mr *mr[N];
	struct ibv_pd *pd = ibv_alloc_pd(c);
	char *buf;
	int k, err;

	if (!pd)
		FAIL("ibv_alloc_pd: %s", strerror(errno));
	buf = mmap(NULL, LEN, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (buf == MAP_FAILED)
		FAIL("mmap: %s", strerror(errno));
	memset(buf, 1, LEN);
	for (k = 0; k < N; k++) {
		mr[k] = ibv_reg_mr(pd, buf, LEN, IBV_ACCESS_LOCAL_WRITE);
		if (!mr[k])
			break;
	}
	err = errno;
	if (k == N)
		FAIL("%d MRs of %d KiB registered and none refused: no pinned budget", N, LEN >> 10);
	printf("VM-PIN registered %d, then %s\n", k, strerrorname_np(err));
	while (k--)
		if (ibv_dereg_mr(mr[k]))
			FAIL("ibv_dereg_mr: %s", strerror(errno));
	mr[0] = ibv_reg_mr(pd, buf, LEN, IBV_ACCESS_LOCAL_WRITE);
	if (!mr[0])
		FAIL("the buffer again, all deregistered: %s", strerror(errno));
	if (ibv_dereg_mr(mr[0]) || ibv_dealloc_pd(pd))
		FAIL("ibv_dereg_mr, ibv_dealloc_pd: %s", strerror(errno));
	printf("VM-PD-OK\n");
	return 0;
}

int main(int argc, char **argv)
{
	struct ibv_device **l = ibv_get_device_list(NULL);
	struct ibv_device *dev = NULL;
	struct ibv_port_attr pa;
	struct ibv_context *c;
	struct ibv_pd *pd, *kept;
	struct ibv_comp_channel *ch;
	struct ibv_cq *cq;
	struct ibv_srq *srq;
	struct ibv_wc wc;
	struct ibv_mr *mr;
	static char buf[8192];
	const char *name = getenv("VM_PD_DEV") ? getenv("VM_PD_DEV") : "r0";

	for (int i = 0; l && l[i]; i++)
		if (!strcmp(ibv_get_device_name(l[i]), name))
			dev = l[i];
	if (!dev)
		FAIL("no device %s", name);
	c = ibv_open_device(dev);
	if (!c)
		FAIL("ibv_open_device %s: %s", name, strerror(errno));
	if (argc > 1 && !strcmp(argv[1], "events"))
		return events(c);
	if (argc > 1 && !strcmp(argv[1], "maps"))
		return maps(c);
	if (argc > 1 && !strcmp(argv[1], "pin"))
		return pin(c);
	if (ibv_query_port(c, 1, &pa) || pa.state != IBV_PORT_ACTIVE)
		FAIL("ibv_query_port 1: %s, state %d", strerror(errno), pa.state);
	pd = ibv_alloc_pd(c);
	if (!pd)
		FAIL("ibv_alloc_pd: %s", strerror(errno));
	printf("PD handle %u\n", pd->handle);
	if (ibv_dealloc_pd(pd))
		FAIL("ibv_dealloc_pd: %s", strerror(errno));
	cq = ibv_create_cq(c, 16, NULL, NULL, 0);
	if (!cq)
		FAIL("ibv_create_cq: %s", strerror(errno));
	if (ibv_poll_cq(cq, 1, &wc) != 0 || ibv_req_notify_cq(cq, 0))
		FAIL("ibv_poll_cq or ibv_req_notify_cq on a new CQ: %s", strerror(errno));
	if (ibv_destroy_cq(cq))
		FAIL("ibv_destroy_cq: %s", strerror(errno));
	ch = ibv_create_comp_channel(c);
	cq = ch ? ibv_create_cq(c, 16, NULL, ch, 0) : NULL;
	if (!cq)
		FAIL("a CQ on a completion channel: %s", strerror(errno));
	if (ibv_destroy_cq(cq) || ibv_destroy_comp_channel(ch))
		FAIL("ibv_destroy_cq, ibv_destroy_comp_channel: %s", strerror(errno));
	printf("CQ made, polled, destroyed; on a completion channel too\n");
	pd = ibv_alloc_pd(c);
	if (!pd)
		FAIL("ibv_alloc_pd: %s", strerror(errno));
	errno = 0;
	srq = ibv_create_srq(pd, &(struct ibv_srq_init_attr){ .attr = { .max_wr = 4, .max_sge = 1 } });
	if (srq || errno != EOPNOTSUPP)
		FAIL("ibv_create_srq: %p, errno %d (%s), want NULL and EOPNOTSUPP (the device has none)",
		     (void *)srq, errno, strerror(errno));
	printf("SRQ refused by the device: %s\n", strerror(errno));
	for (size_t i = 0; i < sizeof(buf); i++)
		buf[i] = (char)(i * 7 + 3);
	mr = ibv_reg_mr(pd, buf, sizeof(buf), IBV_ACCESS_LOCAL_WRITE);
	if (!mr || !mr->lkey)
		FAIL("ibv_reg_mr: %s", strerror(errno));
	for (size_t i = 0; i < sizeof(buf); i++)
		if (buf[i] != (char)(i * 7 + 3))
			FAIL("the registered buffer changed at byte %zu", i);
	printf("MR iova %#llx length %zu lkey %#x\n", (unsigned long long)(uintptr_t)buf,
	       sizeof(buf), mr->lkey);
	if (ibv_dereg_mr(mr))
		FAIL("ibv_dereg_mr: %s", strerror(errno));
	if (ibv_dealloc_pd(pd))
		FAIL("ibv_dealloc_pd: %s", strerror(errno));
	kept = ibv_alloc_pd(c);
	if (!kept)
		FAIL("the second ibv_alloc_pd: %s", strerror(errno));
	printf("VM-PD-OK\n");
	fflush(stdout);
	if (argc > 1 && !strcmp(argv[1], "hold"))
		pause();	/* until killed: the exit frees everything */
	return 0;	/* kept, c and l left to the exit: the host frees the PD */
}
