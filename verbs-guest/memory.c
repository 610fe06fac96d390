// SPDX-License-Identifier: MIT
/*
 * Making a program's buffers visible to the host, without copies on the data path.
 *
 * At registration, the page range of the buffer is described as pieces of DEVSHM regions.
 * Pages that are not on a memfd yet are moved there: a sealed memfd is handed to the bus
 * first, then the pages are copied into it (write-protected meanwhile) and the memfd is
 * mapped MAP_SHARED|MAP_FIXED over the same addresses, with the same protection. A page
 * is moved once; later registrations of it reuse its piece. Only private memory is moved:
 * anonymous (heap, anonymous mmap) and a file's private writable pages (a program's data
 * and bss); other file mappings, shared memory (SysV, shared anonymous), hugetlb and the
 * stack are refused with EFAULT (docs/verbs-guest.md, "Memory").
 *
 * Before a piece is reused, /proc/self/maps must still show its memfd at its addresses:
 * a program that unmapped the buffer and mapped something else there gets new pieces.
 */
#include <endian.h>
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/vfs.h>
#include <linux/magic.h>
#include <unistd.h>
#include <vbus/verbs-nest.h>
#include <vbus/vm.h>
#include "vbg.h"

/* In a VM, the largest region the driver takes: one message of page addresses. */
#define VM_REGION_MAX	((size_t)VBUS_VM_SHM_MAX_PAGES * VBUS_VM_PAGE_SIZE)

struct piece {
	uintptr_t start, end;
	uint32_t shm;			/* DEVSHM id; 0 while not handed over yet (fd >= 0) */
	uint32_t seq;			/* the memfd is named vbus-mr-SEQ */
	int fd;				/* an arena chunk's memfd until it is handed over */
	uint64_t off;			/* where `start` is in the region (foreign pieces) */
	uint64_t foff;			/* where `start` is in the memfd (a VM's split chunk) */
	uint64_t size;			/* the region's size to hand over (foreign pieces) */
	bool foreign;			/* told by vbus_verbs_shm_add: a nested guest's memfd */
};

struct seg {				/* one line of /proc/self/maps */
	uintptr_t start, end;
	uint64_t off;
	int prot;
	bool priv;
	char path[128];
};

static pthread_mutex_t mem_lock = PTHREAD_MUTEX_INITIALIZER;	/* all of the below */
static struct piece *pieces;		/* sorted by start, never overlapping */
static uint32_t npieces, cap;
static uint32_t next_seq = 1;

static uintptr_t page_size(void)
{
	return (uintptr_t)sysconf(_SC_PAGESIZE);
}

/* The maps lines that intersect [lo, hi); returns how many, or -errno. */
static int read_maps(uintptr_t lo, uintptr_t hi, struct seg **out)
{
	FILE *f = fopen("/proc/self/maps", "re");
	struct seg *v = NULL;
	int n = 0, cap_ = 0;
	char line[512];

	if (!f)
		return -errno;
	while (fgets(line, sizeof(line), f)) {
		unsigned long s, e, off;
		char perms[8], path[256] = "";

		if (sscanf(line, "%lx-%lx %7s %lx %*s %*s %255[^\n]", &s, &e, perms, &off, path) < 4)
			continue;
		if (e <= lo || s >= hi)
			continue;
		if (n == cap_) {
			struct seg *t = realloc(v, (size_t)(cap_ = cap_ ? 2 * cap_ : 8) * sizeof(*t));

			if (!t) {
				free(v);
				fclose(f);
				return -ENOMEM;
			}
			v = t;
		}
		v[n] = (struct seg){ .start = s, .end = e, .off = off, .priv = perms[3] == 'p',
			.prot = (perms[0] == 'r' ? PROT_READ : 0) | (perms[1] == 'w' ? PROT_WRITE : 0) |
				(perms[2] == 'x' ? PROT_EXEC : 0) };
		snprintf(v[n].path, sizeof(v[n].path), "%s", path + strspn(path, " "));
		n++;
	}
	fclose(f);
	*out = v;
	return n;
}

static void piece_name(uint32_t seq, char *buf, size_t len)
{
	snprintf(buf, len, "vbus-mr-%u", seq);
}

/* Does the mapping at [s, e) of piece p still show its memfd? */
static bool piece_intact(const struct piece *p, const struct seg *v, int n)
{
	char want[96], name[48];

	if (p->foreign)		/* the nested host tells when it unmaps it */
		return true;
	piece_name(p->seq, name, sizeof(name));
	snprintf(want, sizeof(want), "/memfd:%s (deleted)", name);
	for (uintptr_t a = p->start; a < p->end;) {
		const struct seg *s = NULL;

		for (int i = 0; i < n; i++)
			if (v[i].start <= a && a < v[i].end)
				s = &v[i];
		if (!s || strcmp(s->path, want) || s->off + (a - s->start) != p->foff + (a - p->start))
			return false;
		a = s->end;
	}
	return true;
}

static void piece_drop(uint32_t i)
{
	struct vbus_conn *c = vbg_conn();

	if (pieces[i].fd >= 0)
		close(pieces[i].fd);
	else if (c)
		vbus_shm_revoke(c, pieces[i].shm);
	memmove(&pieces[i], &pieces[i + 1], (npieces - i - 1) * sizeof(*pieces));
	npieces--;
}

/* Room for one more piece, made before pages move (so that inserting cannot fail). */
static int piece_reserve(void)
{
	uint32_t n = cap ? 2 * cap : 64;
	struct piece *t;

	if (npieces < cap)
		return 0;
	t = realloc(pieces, n * sizeof(*t));
	if (!t)
		return -ENOMEM;
	pieces = t;
	cap = n;
	return 0;
}

static void piece_insert(const struct piece *p)
{
	uint32_t i = 0;

	while (i < npieces && pieces[i].start < p->start)
		i++;
	memmove(&pieces[i + 1], &pieces[i], (npieces - i) * sizeof(*pieces));
	pieces[i] = *p;
	npieces++;
}

/* The mapping that starts at `start` is hugetlb ("ht" in its VmFlags, /proc/self/smaps). */
static bool hugetlb_vma(uintptr_t start)
{
	FILE *f = fopen("/proc/self/smaps", "re");
	char line[512], want[32];
	bool in = false, ht = false;

	if (!f)
		return false;
	snprintf(want, sizeof(want), "%lx-", (unsigned long)start);
	while (fgets(line, sizeof(line), f)) {
		if (!in) {
			in = !strncmp(line, want, strlen(want));
			continue;
		}
		if (!strncmp(line, "VmFlags:", 8)) {
			ht = strstr(line, " ht") != NULL;
			break;
		}
	}
	fclose(f);
	return ht;
}

static bool movable(const struct seg *s)
{
	if (!s->priv || !(s->prot & PROT_READ))
		return false;		/* shared (SysV, MAP_SHARED), or unreadable */
	if (!s->path[0] || !strcmp(s->path, "[heap]"))
		return true;		/* anonymous: not the stack, vdso */
	/* Huge pages (MAP_HUGETLB shows as /anon_hugepage, or a file on hugetlbfs) stay
	 * where they are: a memfd of small pages over part of one cannot be mapped. */
	if (!strncmp(s->path, "/anon_hugepage", 14))
		return false;
	/* A file's private writable, non-executable pages: a program's or library's data
	 * and bss (rdma_server's static buffers). The process sees the same bytes after the
	 * move; the file never had them (copy on write). */
	if (s->path[0] != '/' || !(s->prot & PROT_WRITE) || (s->prot & PROT_EXEC))
		return false;
	/* The mapped file itself, through /proc/self/map_files: also a memfd's ("/memfd:NAME
	 * (deleted)", which MFD_HUGETLB puts on hugetlbfs) and a deleted file's. Following
	 * those links needs CAP_CHECKPOINT_RESTORE; without it, the path, and for a memfd or a
	 * deleted file (no path to look at) the mapping's flags in smaps. */
	struct statfs fs;
	char mf[64];

	snprintf(mf, sizeof(mf), "/proc/self/map_files/%lx-%lx", (unsigned long)s->start,
		 (unsigned long)s->end);
	if (!statfs(mf, &fs) || !statfs(s->path, &fs))
		return fs.f_type != HUGETLBFS_MAGIC;
	return !hugetlb_vma(s->start);
}

/*
 * Copy whole pages: they hold the program's other objects too (heap neighbours, malloc's
 * own headers), so this is not an access to any one object. Word by word, without
 * AddressSanitizer's checks (its redzones are part of the pages) and without letting the
 * compiler turn the loop into a memcpy call that ASan would intercept.
 */
__attribute__((no_sanitize_address, optimize("no-tree-loop-distribute-patterns")))
static void copy_pages(void *dst, const void *src, size_t len)
{
	const volatile uint64_t *s = src;
	uint64_t *d = dst;

	for (size_t i = 0; i < len / sizeof(*d); i++)
		d[i] = s[i];
}

/*
 * Move [s, e) (inside one maps line of protection prot) onto a new memfd. In a VM the
 * driver pins the pages where they are mapped (vbus_devshm_at): the memfd is handed over
 * by hand_over once it is in place, in regions of at most VBUS_VM_SHM_MAX_PAGES pages.
 */
static int move(uintptr_t s, uintptr_t e, int prot)
{
	struct vbus_conn *c = vbg_conn();
	size_t len = e - s;
	struct piece p = { .start = s, .end = e, .seq = next_seq++, .fd = -1 };
	bool vm = c && vbus_conn_is_vm(c);
	char name[48];
	void *tmp;
	int fd, err;

	if (!c)
		return -ENOTCONN;
	if (vm && len > VM_REGION_MAX) {
		for (uintptr_t a = s; a < e; a += VM_REGION_MAX)
			if ((err = move(a, e - a > VM_REGION_MAX ? a + VM_REGION_MAX : e, prot)))
				return err;
		return 0;
	}
	err = piece_reserve();
	if (err)
		return err;
	piece_name(p.seq, name, sizeof(name));
	err = vbus_memfd_create(name, len, &fd);
	if (err)
		return err;
	/* Handed over first: if the bus refuses it (quota), nothing has moved. */
	err = vm ? 0 : vbus_devshm(c, fd, len, &p.shm);
	if (err)
		goto err_close;
	tmp = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (tmp == MAP_FAILED) {
		err = -errno;
		goto err_revoke;
	}
	/* A thread that writes the range while it is copied faults instead of losing data. */
	if ((prot & PROT_WRITE) && mprotect((void *)s, len, prot & ~PROT_WRITE)) {
		err = -errno;
		goto err_unmap;
	}
	copy_pages(tmp, (void *)s, len);
	if (mmap((void *)s, len, prot, MAP_SHARED | MAP_FIXED, fd, 0) == MAP_FAILED) {
		err = -errno;
		mprotect((void *)s, len, prot);
		goto err_unmap;
	}
	munmap(tmp, len);
	if (vm)
		p.fd = fd;	/* hand_over pins it where it is now */
	else
		close(fd);
	/* As ibv_fork_init() does for registered memory: a child does not inherit it. */
	madvise((void *)s, len, MADV_DONTFORK);
	vbg_dbg("moved %#lx-%#lx onto memfd %s (region %#x)", (unsigned long)s,
		(unsigned long)e, name, p.shm);
	piece_insert(&p);
	return 0;

err_unmap:
	munmap(tmp, len);
err_revoke:
	if (p.shm)
		vbus_shm_revoke(c, p.shm);
err_close:
	close(fd);
	return err;
}

/* Move what no piece covers in [lo, hi) (page aligned). */
static int move_gaps(uintptr_t lo, uintptr_t hi, const struct seg *v, int n)
{
	uintptr_t a = lo;

	while (a < hi) {
		uintptr_t gap_end = hi;
		const struct seg *s = NULL;
		bool covered = false;
		int err;

		for (uint32_t i = 0; i < npieces && !covered; i++) {
			if (pieces[i].start <= a && a < pieces[i].end) {
				a = pieces[i].end;
				covered = true;
			} else if (pieces[i].start > a && pieces[i].start < gap_end) {
				gap_end = pieces[i].start;
			}
		}
		if (covered)
			continue;
		for (int i = 0; i < n; i++)
			if (v[i].start <= a && a < v[i].end)
				s = &v[i];
		if (!s) {
			vbg_err("reg_mr: %#lx is not mapped", (unsigned long)a);
			return -EFAULT;
		}
		if (!movable(s)) {
			vbg_err("reg_mr: %#lx is in %s%s memory (%s): only private anonymous "
				"memory (heap, malloc, anonymous mmap) and a file's private "
				"writable data can be registered",
				(unsigned long)a, s->priv ? "private" : "shared",
				s->prot & PROT_READ ? "" : " unreadable",
				s->path[0] ? s->path : "anonymous");
			return -EFAULT;
		}
		if (s->end < gap_end)
			gap_end = s->end;
		err = move(a, gap_end, s->prot);
		if (err)
			return err;
		a = gap_end;
	}
	return 0;
}

int vbg_mem_chunk(size_t size, void **base)
{
	struct piece p = { .fd = -1 };
	char name[48];
	void *m;
	int err;

	pthread_mutex_lock(&mem_lock);
	p.seq = next_seq++;
	err = piece_reserve();
	if (err)
		goto out;
	piece_name(p.seq, name, sizeof(name));
	err = vbus_memfd_create(name, size, &p.fd);
	if (err)
		goto out;
	m = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, p.fd, 0);
	if (m == MAP_FAILED) {
		err = -errno;
		close(p.fd);
		goto out;
	}
	p.start = (uintptr_t)m;
	p.end = p.start + size;
	piece_insert(&p);
	*base = m;
	vbg_dbg("arena chunk %s at %p, %zu bytes", name, m, size);
out:
	pthread_mutex_unlock(&mem_lock);
	return err;
}

/*
 * In a VM a region is at most VBUS_VM_SHM_MAX_PAGES pages (one message of page addresses),
 * and the driver pins all of it: an arena chunk above that is cut, before it is handed over,
 * into pieces of that size over the same memfd (each with a duplicate descriptor until it
 * is handed over). Each piece becomes a region of its own when a registration first
 * touches it, so only the parts of a chunk that are registered are pinned.
 */
static int piece_split_vm(uint32_t i)
{

	while (pieces[i].end - pieces[i].start > VM_REGION_MAX) {
		struct piece tail;
		int err = piece_reserve();

		if (err)
			return err;
		tail = pieces[i];
		tail.fd = fcntl(pieces[i].fd, F_DUPFD_CLOEXEC, 0);
		if (tail.fd < 0)
			return -errno;
		tail.start = pieces[i].start + VM_REGION_MAX;
		tail.foff = pieces[i].foff + VM_REGION_MAX;
		pieces[i].end = tail.start;
		piece_insert(&tail);	/* sorted by start: at i + 1 */
		i++;
	}
	return 0;
}

/* Hand the arena chunks that [lo, hi) touches to the bus, once. */
static int hand_over(uintptr_t lo, uintptr_t hi)
{
	struct vbus_conn *c = vbg_conn();
	bool vm = c && vbus_conn_is_vm(c);
	int err;

	for (uint32_t i = 0; i < npieces; i++) {
		struct piece *p = &pieces[i];

		if (p->fd < 0 || p->end <= lo || p->start >= hi)
			continue;
		if (!c)
			return -ENOTCONN;
		if (vm && (err = piece_split_vm(i)))	/* a foreign window too: pinned */
			return err;
		p = &pieces[i];		/* the split may have moved the array */
		if (p->end <= lo)	/* its first part is not touched */
			continue;
		/* A VM's driver pins the pages where they are mapped: an arena chunk or a moved
		 * range always is. So is a nested guest's foreign memfd in a VM (a vbusd run in
		 * the VM maps it into its window): the region is the window's range, pinned
		 * there, and starts at its first byte; elsewhere the memfd itself is handed. */
		if (p->foreign && !vm) {
			err = vbus_devshm(c, p->fd, p->size, &p->shm);
		} else {
			err = vbus_devshm_at(c, p->fd, (void *)p->start, p->end - p->start,
					     &p->shm);
			if (!err && p->foreign)
				p->off = 0;
		}
		if (err)
			return err;
		close(p->fd);
		p->fd = -1;
	}
	return 0;
}

/* Is [lo, hi) on the calling thread's stack? (Other threads' stacks look like any
 * anonymous mapping: registering them is the program's risk, as docs/verbs-guest.md says.) */
static bool on_my_stack(uintptr_t lo, uintptr_t hi)
{
	pthread_attr_t a;
	void *base;
	size_t size;
	bool on = false;

	if (pthread_getattr_np(pthread_self(), &a))
		return false;
	if (!pthread_attr_getstack(&a, &base, &size))
		on = lo < (uintptr_t)base + size && hi > (uintptr_t)base;
	pthread_attr_destroy(&a);
	return on;
}

static int mem_pieces(void *addr, size_t len, struct vrdma_mr_piece *out, uint32_t max,
		      uint32_t *n);

int vbg_mem_pieces(void *addr, size_t len, struct vrdma_mr_piece *out, uint32_t max,
		   uint32_t *n)
{
	int err;

	pthread_mutex_lock(&mem_lock);
	err = mem_pieces(addr, len, out, max, n);
	pthread_mutex_unlock(&mem_lock);
	return err;
}

static int mem_pieces(void *addr, size_t len, struct vrdma_mr_piece *out, uint32_t max,
		      uint32_t *n)
{
	uintptr_t pg = page_size(), lo = (uintptr_t)addr & ~(pg - 1);
	uintptr_t hi = ((uintptr_t)addr + len + pg - 1) & ~(pg - 1);
	struct seg *v = NULL;
	uint32_t k = 0;
	int nv, err;

	if (on_my_stack(lo, hi)) {
		vbg_err("reg_mr: %p is on this thread's stack: only private anonymous memory "
			"(heap, malloc, anonymous mmap) can be registered", addr);
		return -EFAULT;
	}
	/* All of the map: a piece reused here may extend beyond [lo, hi). */
	nv = read_maps(0, UINTPTR_MAX, &v);
	if (nv < 0)
		return nv;
	/* Pieces whose mapping the program replaced are forgotten. */
	for (uint32_t i = 0; i < npieces;) {
		if (pieces[i].end > lo && pieces[i].start < hi && !piece_intact(&pieces[i], v, nv))
			piece_drop(i);
		else
			i++;
	}
	err = move_gaps(lo, hi, v, nv);
	free(v);
	if (!err)
		err = hand_over(lo, hi);
	if (err)
		return err;
	/* Registered memory is not inherited by a child, as with ibv_fork_init(). */
	madvise((void *)lo, hi - lo, MADV_DONTFORK);
	/* Now every page of [lo, hi) is in a piece: describe them in address order, merging
	 * neighbours of the same region. */
	for (uint32_t i = 0; i < npieces; i++) {
		uintptr_t s = pieces[i].start > lo ? pieces[i].start : lo;
		uintptr_t e = pieces[i].end < hi ? pieces[i].end : hi;

		if (s >= e)
			continue;
		if (k && le32toh(out[k - 1].shm) == pieces[i].shm &&
		    le64toh(out[k - 1].offset) + le64toh(out[k - 1].length) ==
		    pieces[i].off + (s - pieces[i].start)) {
			out[k - 1].length = htole64(le64toh(out[k - 1].length) + (e - s));
			continue;
		}
		if (k == max) {
			vbg_err("reg_mr: the buffer spans more than %u separate mappings", max);
			return -E2BIG;
		}
		out[k++] = (struct vrdma_mr_piece){ .shm = htole32(pieces[i].shm),
			.offset = htole64(pieces[i].off + (s - pieces[i].start)),
			.length = htole64(e - s) };
	}
	*n = k;
	return 0;
}

/*
 * Nesting (docs/nesting.md): a vbusd running as a guest maps its own guests' memfds into
 * windows and registers them on the vbus device it sees. Moving those pages would cut them
 * off from the nested guest; instead the vbusd says what they are, and the memfd itself is
 * handed to the parent bus, which maps it as any region of ours.
 */
VBG_EXPORT int vbus_verbs_shm_add(void *addr, size_t len, int fd, uint64_t fd_size,
				  uint64_t offset)
{
	uintptr_t pg = page_size(), lo = (uintptr_t)addr, hi = lo + len;
	struct piece p = { .start = lo, .end = hi, .off = offset, .size = fd_size,
			   .foreign = true };
	int err;

	if (!len || lo % pg || len % pg || offset % pg || hi < lo || offset > fd_size ||
	    len > fd_size - offset)
		return -EINVAL;
	pthread_mutex_lock(&mem_lock);
	err = -EEXIST;
	for (uint32_t i = 0; i < npieces; i++)
		if (pieces[i].start < hi && pieces[i].end > lo)
			goto out;
	err = piece_reserve();
	if (err)
		goto out;
	/* Our own copy, handed to the bus at the first relay registration (hand_over); the
	 * kernel backend pins the pages where they are and never needs it. */
	p.fd = fcntl(fd, F_DUPFD_CLOEXEC, 0);
	if (p.fd < 0) {
		err = -errno;
		goto out;
	}
	piece_insert(&p);
out:
	pthread_mutex_unlock(&mem_lock);
	if (err)
		vbg_info("nested region at %p+%zu: %s", addr, len, strerror(-err));
	return err;
}

VBG_EXPORT void vbus_verbs_shm_forget(void *addr, size_t len)
{
	uintptr_t lo = (uintptr_t)addr, hi = lo + len;

	pthread_mutex_lock(&mem_lock);
	for (uint32_t i = 0; i < npieces;) {
		if (pieces[i].foreign && pieces[i].start >= lo && pieces[i].end <= hi)
			piece_drop(i);
		else
			i++;
	}
	pthread_mutex_unlock(&mem_lock);
}
