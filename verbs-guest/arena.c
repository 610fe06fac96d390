// SPDX-License-Identifier: MIT
/*
 * The memory arena: large aligned allocations (memalign, posix_memalign, aligned_alloc,
 * valloc, pvalloc of at least $VBUS_ARENA_MIN bytes, default 64 KiB) are served from
 * memfd chunks from the start, so that registering them later moves nothing: the chunk is
 * already a piece (memory.c) and is handed to the bus at its first registration. This is
 * where RDMA programs allocate their buffers (perftest and the rdma-core examples use
 * memalign). Everything else goes to glibc (__libc_*), and so does free() of a pointer
 * that is not ours. VBUS_ARENA=0 turns the arena off.
 *
 * Chunks are 64 MiB (or one allocation's size, if larger), sparse until touched, and stay
 * mapped for the life of the process: freed blocks are reused, not returned, since the
 * host may hold a registration over them. Allocation is first fit over each chunk's
 * sorted list of free extents, under one lock.
 *
 * The kernel backend pins the program's own pages where they are, as native rxe does: there
 * the arena only costs (shmem's 4 KiB pages, where anonymous memory may get transparent huge
 * pages). So when a kernel-backed device opens before the arena has served anything, and
 * VBUS_ARENA is not set, the arena stays off for the rest of the process (a relay-backed
 * device opened later moves its buffers at registration instead).
 */
#include <dlfcn.h>
#include <errno.h>
#include <malloc.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "vbg.h"

void *__libc_memalign(size_t align, size_t size);
void *__libc_malloc(size_t size);
void *__libc_realloc(void *p, size_t size);
void __libc_free(void *p);
void *__libc_valloc(size_t size);
void *__libc_pvalloc(size_t size);

#define CHUNK_SIZE	(64ul << 20)
#define MAX_ALIGN	(1ul << 30)

struct ext { uintptr_t start, end; };
struct chunk {
	uintptr_t base, end;
	struct ext *free;		/* sorted, disjoint, coalesced */
	uint32_t nfree, capfree;
};
struct block { uintptr_t start, end; };

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static struct chunk *chunks;
static uint32_t nchunks, capchunks;
static struct block *blocks;		/* sorted by start */
static uint32_t nblocks, capblocks;
static int enabled = -1;		/* -1: not decided yet */
static size_t min_size = 64 << 10;
static uintptr_t lo = UINTPTR_MAX, hi;	/* span of all chunks: a quick "not ours" */

static bool arena_on(void)
{
	int on = __atomic_load_n(&enabled, __ATOMIC_RELAXED);

	if (on < 0) {
		const char *e = getenv("VBUS_ARENA"), *m = getenv("VBUS_ARENA_MIN");

		if (m && *m)
			min_size = strtoul(m, NULL, 0);
		on = !(e && !strcmp(e, "0"));
		__atomic_store_n(&enabled, on, __ATOMIC_RELAXED);
	}
	return on;
}

void vbg_arena_kernel_backend(void)
{
	const char *e = getenv("VBUS_ARENA");

	pthread_mutex_lock(&lock);
	if (arena_on() && !nchunks && !(e && *e)) {
		__atomic_store_n(&enabled, 0, __ATOMIC_RELAXED);
		vbg_dbg("arena: off (a kernel-backed device opened before any arena allocation)");
	}
	pthread_mutex_unlock(&lock);
}

static int grow(void **arr, uint32_t *cap, uint32_t n, size_t elem)
{
	uint32_t c = *cap ? *cap * 2 : 16;
	void *t;

	if (n < *cap)
		return 0;
	t = __libc_realloc(*arr, c * elem);
	if (!t)
		return -ENOMEM;
	*arr = t;
	*cap = c;
	return 0;
}

static int ext_insert(struct chunk *c, uint32_t at, uintptr_t s, uintptr_t e)
{
	if (grow((void **)&c->free, &c->capfree, c->nfree, sizeof(*c->free)))
		return -ENOMEM;
	memmove(&c->free[at + 1], &c->free[at], (c->nfree - at) * sizeof(*c->free));
	c->free[at] = (struct ext){ s, e };
	c->nfree++;
	return 0;
}

static void ext_remove(struct chunk *c, uint32_t at)
{
	memmove(&c->free[at], &c->free[at + 1], (c->nfree - at - 1) * sizeof(*c->free));
	c->nfree--;
}

/* Take [s, s + size) out of free extent k of chunk c. 0 or -ENOMEM. */
static int carve(struct chunk *c, uint32_t k, uintptr_t s, size_t size)
{
	struct ext x = c->free[k];

	ext_remove(c, k);
	if (x.end > s + size && ext_insert(c, k, s + size, x.end))
		return -ENOMEM;
	if (s > x.start && ext_insert(c, k, x.start, s))
		return -ENOMEM;
	return 0;
}

static void *alloc_in(struct chunk *c, size_t size, size_t align)
{
	for (uint32_t k = 0; k < c->nfree; k++) {
		uintptr_t s = (c->free[k].start + align - 1) & ~(align - 1);

		if (s + size <= c->free[k].end && s >= c->free[k].start)
			return carve(c, k, s, size) ? NULL : (void *)s;
	}
	return NULL;
}

/* Add a chunk of at least `need` bytes. Called without the lock: memory.c takes its own
 * lock and may call realloc/free, which take ours (so the order is always theirs, ours). */
static struct chunk *chunk_new(size_t need)
{
	size_t size = need > CHUNK_SIZE ? need : CHUNK_SIZE;
	struct chunk *c = NULL;
	void *base;

	if (vbg_mem_chunk(size, &base))
		return NULL;
	pthread_mutex_lock(&lock);
	if (grow((void **)&chunks, &capchunks, nchunks, sizeof(*chunks)))
		goto out;	/* the chunk stays a piece in memory.c, unused */
	c = &chunks[nchunks];
	*c = (struct chunk){ .base = (uintptr_t)base, .end = (uintptr_t)base + size };
	if (ext_insert(c, 0, c->base, c->end)) {
		c = NULL;
		goto out;
	}
	nchunks++;
	if (c->base < lo)
		__atomic_store_n(&lo, c->base, __ATOMIC_RELAXED);
	if (c->end > hi)
		__atomic_store_n(&hi, c->end, __ATOMIC_RELAXED);
out:
	pthread_mutex_unlock(&lock);
	return c;
}

static void *arena_alloc(size_t size, size_t align)
{
	long pg = sysconf(_SC_PAGESIZE);
	void *p = NULL;
	uint32_t i;

	if (align < (size_t)pg)
		align = (size_t)pg;
	size = (size + (size_t)pg - 1) & ~((size_t)pg - 1);
	for (int attempt = 0; attempt < 2 && !p; attempt++) {
		if (attempt && !chunk_new(size + (align > (size_t)pg ? align : 0)))
			return NULL;
		pthread_mutex_lock(&lock);
		if (!grow((void **)&blocks, &capblocks, nblocks, sizeof(*blocks)))
			for (i = nchunks; i > 0 && !p; i--)	/* newest chunk first */
				p = alloc_in(&chunks[i - 1], size, align);
		if (p) {
			for (i = nblocks; i > 0 && blocks[i - 1].start > (uintptr_t)p; i--)
				blocks[i] = blocks[i - 1];
			blocks[i] = (struct block){ (uintptr_t)p, (uintptr_t)p + size };
			nblocks++;
		}
		pthread_mutex_unlock(&lock);
	}
	return p;
}

/* The block starting at p, or -1. Under the lock. */
static int64_t block_find(uintptr_t p)
{
	uint32_t a = 0, b = nblocks;

	while (a < b) {
		uint32_t m = (a + b) / 2;

		if (blocks[m].start < p)
			a = m + 1;
		else
			b = m;
	}
	return a < nblocks && blocks[a].start == p ? (int64_t)a : -1;
}

static void chunk_release(uintptr_t s, uintptr_t e)
{
	for (uint32_t i = 0; i < nchunks; i++) {
		struct chunk *c = &chunks[i];
		uint32_t k = 0;

		if (s < c->base || e > c->end)
			continue;
		while (k < c->nfree && c->free[k].start < s)
			k++;
		/* coalesce with the neighbours, else insert */
		if (k > 0 && c->free[k - 1].end == s) {
			c->free[k - 1].end = e;
			if (k < c->nfree && c->free[k].start == e) {
				c->free[k - 1].end = c->free[k].end;
				ext_remove(c, k);
			}
		} else if (k < c->nfree && c->free[k].start == e) {
			c->free[k].start = s;
		} else if (ext_insert(c, k, s, e)) {
			vbg_dbg("arena: lost %zu bytes (no memory for the free list)", e - s);
		}
		return;
	}
}

/* Free p if it is an arena block: true if it was. */
static bool arena_free(void *p, size_t *size)
{
	uintptr_t a = (uintptr_t)p;
	int64_t k;

	if (!p || a < __atomic_load_n(&lo, __ATOMIC_RELAXED) ||
	    a >= __atomic_load_n(&hi, __ATOMIC_RELAXED))
		return false;
	pthread_mutex_lock(&lock);
	k = block_find(a);
	if (k >= 0) {
		struct block b = blocks[k];

		if (size)
			*size = b.end - b.start;
		memmove(&blocks[k], &blocks[k + 1], (nblocks - (uint32_t)k - 1) * sizeof(*blocks));
		nblocks--;
		chunk_release(b.start, b.end);
	}
	pthread_mutex_unlock(&lock);
	return k >= 0;
}

static size_t arena_size(void *p)
{
	uintptr_t a = (uintptr_t)p;
	size_t n = 0;
	int64_t k;

	if (!p || a < lo || a >= hi)
		return 0;
	pthread_mutex_lock(&lock);
	k = block_find(a);
	if (k >= 0)
		n = blocks[k].end - blocks[k].start;
	pthread_mutex_unlock(&lock);
	return n;
}

static bool wanted(size_t size, size_t align)
{
	return size >= min_size && align <= MAX_ALIGN && arena_on();
}

VBG_EXPORT void *memalign(size_t align, size_t size)
{
	void *p;

	if (!align || (align & (align - 1)))
		return __libc_memalign(align, size);	/* glibc's own answer to bad input */
	if (wanted(size, align) && (p = arena_alloc(size, align)))
		return p;
	return __libc_memalign(align, size);
}

VBG_EXPORT int posix_memalign(void **out, size_t align, size_t size)
{
	void *p;

	if (!align || (align & (align - 1)) || align % sizeof(void *))
		return EINVAL;
	p = memalign(align, size);
	if (!p)
		return ENOMEM;
	*out = p;
	return 0;
}

VBG_EXPORT void *aligned_alloc(size_t align, size_t size)
{
	return memalign(align, size);
}

VBG_EXPORT void *valloc(size_t size)
{
	return memalign((size_t)sysconf(_SC_PAGESIZE), size);
}

VBG_EXPORT void *pvalloc(size_t size)
{
	size_t pg = (size_t)sysconf(_SC_PAGESIZE);

	return memalign(pg, (size + pg - 1) & ~(pg - 1));
}

VBG_EXPORT void free(void *p)
{
	if (!arena_free(p, NULL))
		__libc_free(p);
}

VBG_EXPORT void *realloc(void *p, size_t n)
{
	size_t old = arena_size(p);
	void *q;

	if (!old)
		return __libc_realloc(p, n);
	if (!n) {
		free(p);
		return NULL;
	}
	q = __libc_malloc(n);
	if (!q)
		return NULL;
	memcpy(q, p, old < n ? old : n);
	free(p);
	return q;
}

VBG_EXPORT size_t malloc_usable_size(void *p)
{
	static size_t (*libc_usable)(void *);
	size_t n = arena_size(p);

	if (n || !p)
		return n;
	if (!libc_usable)
		libc_usable = (size_t (*)(void *))dlsym(RTLD_NEXT, "malloc_usable_size");
	return libc_usable ? libc_usable(p) : 0;
}
