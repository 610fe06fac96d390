// SPDX-License-Identifier: MIT
/*
 * ioq: empty and full rings, wrap-around of the free-running indices at 2^32, a peer
 * that writes nonsense indices (the ring is marked broken and refused from then on), and
 * two processes moving a million descriptors through a MAP_SHARED memfd with every
 * sequence number and payload checked.
 */
#include <endian.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>
#include "../../connector/ring.h"

#define fail(...) do { printf("FAIL line %d: ", __LINE__); printf(__VA_ARGS__); printf("\n"); exit(1); } while (0)
#define check(c, ...) do { if (!(c)) fail(__VA_ARGS__); } while (0)

struct desc { uint64_t seq; uint64_t sum; uint8_t data[48]; };

static void fill(struct desc *d, uint64_t seq)
{
	d->seq = seq;
	d->sum = 0;
	for (size_t i = 0; i < sizeof(d->data); i++) {
		d->data[i] = (uint8_t)(seq * 7 + i);
		d->sum += d->data[i];
	}
}

static int good(const struct desc *d, uint64_t seq)
{
	uint64_t sum = 0;

	for (size_t i = 0; i < sizeof(d->data); i++)
		sum += d->data[i];
	return d->seq == seq && d->sum == sum && d->data[5] == (uint8_t)(seq * 7 + 5);
}

static void *ring_mem(size_t n)
{
	void *m = mmap(NULL, n, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);

	check(m != MAP_FAILED, "mmap");
	return m;
}

/* A ring whose both indices start at `start`, as if 2^32 - a few had gone through. */
static void pair_at(void *mem, uint32_t entries, uint32_t start, struct vbus_ioq *p,
		    struct vbus_ioq *c)
{
	check(!vbus_ioq_init(p, mem, entries, sizeof(struct desc), true, true), "init p");
	((struct vbus_ioq_hdr *)mem)->prod = htole32(start);
	((struct vbus_ioq_hdr *)mem)->cons = htole32(start);
	check(!vbus_ioq_init(p, mem, entries, sizeof(struct desc), true, false), "attach p");
	check(!vbus_ioq_init(c, mem, entries, sizeof(struct desc), false, false), "attach c");
}

int main(void)
{
	size_t sz = VBUS_IOQ_SIZE(8, sizeof(struct desc));
	void *mem = ring_mem(1 << 20);
	struct vbus_ioq p, c;
	struct desc d;

	check(vbus_ioq_init(&p, mem, 6, sizeof(d), true, true) == -EINVAL, "entries must be 2^n");
	check(vbus_ioq_init(&p, mem, 8, 12, true, true) == -EINVAL, "desc size multiple of 8");

	/* Empty, full, and the wrap of the indices at 2^32. */
	pair_at(mem, 8, UINT32_MAX - 3, &p, &c);
	check(vbus_ioq_pop(&c, &d) == 0, "empty ring pops nothing");
	for (uint64_t s = 0; s < 8; s++) {
		fill(&d, s);
		check(!vbus_ioq_push(&p, &d), "push %llu", (unsigned long long)s);
	}
	fill(&d, 99);
	check(vbus_ioq_push(&p, &d) == -ENOSPC, "a full ring refuses");
	for (uint64_t s = 0; s < 8; s++)
		check(vbus_ioq_pop(&c, &d) == 1 && good(&d, s), "pop %llu across the wrap", (unsigned long long)s);
	check(vbus_ioq_pop(&c, &d) == 0, "empty again");
	check(le32toh(((struct vbus_ioq_hdr *)mem)->prod) == 4, "prod wrapped to 4");
	for (uint64_t s = 100; s < 1000; s++) {	/* many laps past the wrap */
		fill(&d, s);
		check(!vbus_ioq_push(&p, &d), "push");
		check(vbus_ioq_pop(&c, &d) == 1 && good(&d, s), "lap %llu", (unsigned long long)s);
	}
	printf("ok   empty, full (ENOSPC), wrap-around of the indices at 2^32, 900 laps\n");

	/* A hostile producer: prod jumps more than a ring ahead. */
	pair_at(mem, 8, 1000, &p, &c);
	((struct vbus_ioq_hdr *)mem)->prod = htole32(1000 + 9);
	check(vbus_ioq_pop(&c, &d) == -EPIPE, "a prod 9 ahead in an 8-ring breaks it");
	((struct vbus_ioq_hdr *)mem)->prod = htole32(1001);
	check(vbus_ioq_pop(&c, &d) == -EPIPE, "broken stays broken");
	check(le32toh(((struct vbus_ioq_hdr *)mem)->flags) & VBUS_IOQ_BROKEN, "flag published");
	check(vbus_ioq_push(&p, &d) == -EPIPE, "the producer sees it broken too");
	/* A hostile consumer: cons moves backwards (or past prod). */
	pair_at(mem, 8, 50, &p, &c);
	fill(&d, 1);
	check(!vbus_ioq_push(&p, &d), "push");
	((struct vbus_ioq_hdr *)mem)->cons = htole32(60);
	check(vbus_ioq_push(&p, &d) == -EPIPE, "a cons ahead of prod breaks it");
	pair_at(mem, 8, 50, &p, &c);
	((struct vbus_ioq_hdr *)mem)->prod = htole32(40);
	check(vbus_ioq_pop(&c, &d) == -EPIPE, "a prod that moved backwards breaks it");
	/* The geometry in the header is not trusted. */
	pair_at(mem, 8, 0, &p, &c);
	((struct vbus_ioq_hdr *)mem)->entries = htole32(1u << 30);
	fill(&d, 5);
	check(!vbus_ioq_push(&p, &d) && vbus_ioq_pop(&c, &d) == 1 && good(&d, 5),
	      "a scribbled header size changes nothing");
	printf("ok   corrupt indices (ahead, backwards) mark the ring broken for good\n");

	/* Two processes, a million descriptors. */
	{
		const uint64_t n = 1000000;
		pid_t pid;
		int st;

		check(!vbus_ioq_init(&p, mem, 64, sizeof(d), true, true), "init");
		pid = fork();
		if (pid == 0) {
			check(!vbus_ioq_init(&c, mem, 64, sizeof(d), false, false), "attach");
			for (uint64_t s = 0; s < n;) {
				int r = vbus_ioq_pop(&c, &d);

				if (r < 0 || (r == 1 && !good(&d, s)))
					_exit(1);
				s += (uint64_t)r;
			}
			_exit(0);
		}
		for (uint64_t s = 0; s < n;) {
			fill(&d, s);
			int r = vbus_ioq_push(&p, &d);

			check(r == 0 || r == -ENOSPC, "push %d", r);
			s += r == 0;
		}
		check(waitpid(pid, &st, 0) == pid && WIFEXITED(st) && !WEXITSTATUS(st),
		      "the consumer process saw a bad descriptor");
		printf("ok   two processes: %llu descriptors, every sequence number and byte checked\n",
		       (unsigned long long)n);
	}
	(void)sz;
	return 0;
}
