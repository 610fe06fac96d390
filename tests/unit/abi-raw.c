// SPDX-License-Identifier: MIT
/*
 * abi-raw: a second guest, written from docs/abi.md alone, that speaks the protocol on
 * raw sockets (no libvbus) to a real vbusd and checks every rule the document states:
 * the handshake (HELLO before all, version ranges and the -EPROTONOSUPPORT payload, the
 * feature subset, a longer hello_in, a second HELLO), refusals at the door (EACCES,
 * EUSERS), DEVENUM's layout and isolation, DEVOPEN's errors, DEVCALL on guessed and
 * foreign handles, DEVFD (feature, a device with no kernel descriptor, malformed
 * requests), reserved fields, descriptors where none belong, DEVSHM's descriptor
 * checks, DEVSIG and SHMSIGNAL, events (device, added, removed; none without the
 * feature), CALLCHAN without the feature, per-guest and per-bus quotas, and a framing
 * error closing only that connection.
 */
#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <vbus/proto.h>
#include "../lib/vbusd-test.h"

/* A rule of docs/abi.md that the bus broke: reported, counted, and the test goes on. */
#define expect(c, ...) do { if (!(c)) { printf("FAIL line %d: ", __LINE__); \
			printf(__VA_ARGS__); printf("\n"); n_fail++; } } while (0)

static int n_fail, n_fail_mark;

/* The end of a group of checks: "ok" only if none of them failed since the last. */
static void group_done(const char *fmt, ...)
{
	va_list ap;

	printf(n_fail == n_fail_mark ? "ok   " : "BAD  ");
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	n_fail_mark = n_fail;
}

static unsigned alarm_s;	/* the whole test's limit: 30 s, scaled (vt-time.h) */

static void on_alarm(int sig)
{
	(void)sig;
	printf("FAIL: abi-raw took longer than %u s\n", alarm_s);
	cleanup();
	_exit(1);
}

/* ---- the wire, as docs/abi.md section 2 and 3 describe it ---- */

struct msg {
	uint32_t op, handle, arg, nfds;
	int32_t status;
	uint64_t seq;
	uint8_t payload[VBUS_MAX_PAYLOAD];
	size_t len;
	int fds[VBUS_MAX_FDS];
};

static int conn(const char *bus)
{
	struct sockaddr_un a = { .sun_family = AF_UNIX };
	int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);

	snprintf(a.sun_path, sizeof(a.sun_path), "%s/bus/%s.sock", run_dir, bus);
	check(fd >= 0 && !connect(fd, (struct sockaddr *)&a, sizeof(a)), "connect to %s: %s",
	      bus, strerror(errno));
	return fd;
}

/* One packet: header (little-endian), payload, descriptors. 0 or -errno. */
static int xsend(int fd, uint32_t op, uint64_t seq, uint32_t handle, uint32_t arg,
		 const void *p, size_t len, const int *fds, int nfds)
{
	struct vbus_msg h = { .op = htole32(op), .len = htole32((uint32_t)len),
			      .seq = htole64(seq), .handle = htole32(handle),
			      .arg = htole32(arg), .nfds = htole32((uint32_t)nfds) };
	struct iovec iov[2] = { { &h, sizeof(h) }, { (void *)p, len } };
	union {
		char b[CMSG_SPACE(sizeof(int) * VBUS_MAX_FDS)];
		struct cmsghdr align;
	} u;
	struct msghdr m = { .msg_iov = iov, .msg_iovlen = len ? 2 : 1 };

	if (nfds) {
		struct cmsghdr *c;

		memset(&u, 0, sizeof(u));
		m.msg_control = u.b;
		m.msg_controllen = CMSG_SPACE(sizeof(int) * (size_t)nfds);
		c = CMSG_FIRSTHDR(&m);
		c->cmsg_level = SOL_SOCKET;
		c->cmsg_type = SCM_RIGHTS;
		c->cmsg_len = CMSG_LEN(sizeof(int) * (size_t)nfds);
		memcpy(CMSG_DATA(c), fds, sizeof(int) * (size_t)nfds);
	}
	return sendmsg(fd, &m, MSG_NOSIGNAL) == (ssize_t)(sizeof(h) + len) ? 0 : -errno;
}

/* One packet within ms: 0, -ETIMEDOUT, -ECONNRESET (closed), -EPROTO (bad framing). */
static int xrecv(int fd, struct msg *m, int ms)
{
	static uint8_t buf[sizeof(struct vbus_msg) + VBUS_MAX_PAYLOAD];
	union {
		char b[CMSG_SPACE(sizeof(int) * VBUS_MAX_FDS)];
		struct cmsghdr align;
	} u;
	struct iovec iov = { buf, sizeof(buf) };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = u.b,
			     .msg_controllen = sizeof(u.b) };
	struct pollfd p = { .fd = fd, .events = POLLIN };
	struct vbus_msg h;
	ssize_t n;

	if (poll(&p, 1, ms) == 0)
		return -ETIMEDOUT;
	n = recvmsg(fd, &mh, MSG_CMSG_CLOEXEC);
	/* A bus that closed with one of our packets unread makes the kernel report
	 * ECONNRESET once, before what the bus sent last (a refusal): read again. */
	if (n < 0 && errno == ECONNRESET)
		n = recvmsg(fd, &mh, MSG_CMSG_CLOEXEC | MSG_DONTWAIT);
	if (n <= 0)
		return -ECONNRESET;
	if (n < (ssize_t)sizeof(h))
		return -EPROTO;
	memcpy(&h, buf, sizeof(h));
	m->op = le32toh(h.op);
	m->seq = le64toh(h.seq);
	m->handle = le32toh(h.handle);
	m->arg = le32toh(h.arg);
	m->status = (int32_t)le32toh(h.status);
	m->nfds = le32toh(h.nfds);
	m->len = (size_t)n - sizeof(h);
	if (le32toh(h.len) != m->len || m->nfds != 0)
		return -EPROTO;	/* the bus never sends descriptors */
	memcpy(m->payload, buf + sizeof(h), m->len);
	return 0;
}

/* Events seen while waiting for responses. */
static struct vbus_event evq[64];
static int n_ev;

static void take_event(const struct msg *m)
{
	check(m->seq == 0 && m->status == 0 && m->len == sizeof(struct vbus_event),
	      "event framing (seq %llu status %d len %zu)", (unsigned long long)m->seq,
	      m->status, m->len);
	check(n_ev < 64, "too many events");
	memcpy(&evq[n_ev++], m->payload, sizeof(struct vbus_event));
	check(le32toh(evq[n_ev - 1].handle) == m->handle, "event handle in the header too");
}

static uint64_t next_seq = 100;

/* A request and its response (events on the way are queued). Returns the status. */
static int rpc(int fd, struct msg *m, uint32_t op, uint32_t handle, uint32_t arg,
	       const void *p, size_t len, const int *fds, int nfds)
{
	uint64_t seq = next_seq++;
	int r = xsend(fd, op, seq, handle, arg, p, len, fds, nfds);

	check(!r, "send op %u: %s", op, strerror(-r));
	for (;;) {
		r = xrecv(fd, m, vt_ms(2000));
		check(!r, "response to op %u: %s", op, strerror(-r));
		if (m->op == VBUS_OP_EVENT) {
			take_event(m);
			continue;
		}
		check(m->op == op && m->seq == seq && m->handle == handle && m->arg == arg,
		      "response matches its request (op %u/%u seq %llu/%llu)", m->op, op,
		      (unsigned long long)m->seq, (unsigned long long)seq);
		if (m->status && !(op == VBUS_OP_HELLO && m->status == -EPROTONOSUPPORT))
			check(m->len == 0, "an error carries no payload (op %u)", op);
		return m->status;
	}
}

/* Wait up to ms for an event of this type (already queued or arriving). */
static struct vbus_event *wait_event(int fd, uint32_t type, int ms)
{
	static struct msg m;
	struct timespec t0, t;

	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (;;) {
		for (int i = 0; i < n_ev; i++)
			if (le32toh(evq[i].type) == type) {
				static struct vbus_event ev;

				ev = evq[i];
				memmove(&evq[i], &evq[i + 1], sizeof(evq[0]) * (size_t)(n_ev - i - 1));
				n_ev--;
				return &ev;
			}
		clock_gettime(CLOCK_MONOTONIC, &t);
		int left = ms - (int)((t.tv_sec - t0.tv_sec) * 1000 + (t.tv_nsec - t0.tv_nsec) / 1000000);

		if (left <= 0 || xrecv(fd, &m, left))
			return NULL;
		check(m.op == VBUS_OP_EVENT, "unasked message op %u", m.op);
		take_event(&m);
	}
}

static void hello_in(struct vbus_hello_in *h, uint32_t lo, uint32_t hi, uint64_t feat,
		     const char *bus)
{
	memset(h, 0, sizeof(*h));
	h->version_min = htole32(lo);
	h->version_max = htole32(hi);
	h->features = htole64(feat);
	snprintf(h->bus, sizeof(h->bus), "%s", bus);
}

/* A connection past HELLO with these features; the granted ones in *granted. */
static int attach(const char *bus, uint64_t feat, uint64_t *granted)
{
	static struct msg m;
	struct vbus_hello_in h;
	struct vbus_hello_out o;
	int fd = conn(bus), r;

	hello_in(&h, 1, 1, feat, bus);
	r = rpc(fd, &m, VBUS_OP_HELLO, 0, 0, &h, sizeof(h), NULL, 0);
	check(!r && m.len >= sizeof(o), "HELLO on %s: %s (len %zu)", bus, strerror(-r), m.len);
	memcpy(&o, m.payload, sizeof(o));
	check(le32toh(o.version) == 1 && o.guest_id, "version 1 and a guest id");
	if (granted)
		*granted = le64toh(o.features);
	return fd;
}

static uint32_t id_of(const struct msg *m)
{
	struct vbus_id_out o;

	check(m->len == sizeof(o), "an id answer is 8 bytes (%zu)", m->len);
	memcpy(&o, m->payload, sizeof(o));
	check(o.id, "id non-zero");
	expect(!o.vector, "id_out.vector zero for a process (%#x)", le32toh(o.vector));
	return le32toh(o.id);
}

static int sealed_memfd(uint64_t size, unsigned int extra_flags, int seals)
{
	int fd = memfd_create("abi-raw", MFD_CLOEXEC | MFD_ALLOW_SEALING | extra_flags);

	if (fd < 0)
		return -1;
	if (ftruncate(fd, (off_t)size) || (seals && fcntl(fd, F_ADD_SEALS, seals))) {
		close(fd);
		return -1;
	}
	return fd;
}

int main(void)
{
	static struct msg m;
	struct vbus_hello_in h;
	struct vbus_hello_out ho;
	uint64_t granted;
	uint32_t ha;
	int a, r;

	setvbuf(stdout, NULL, _IONBF, 0);
	signal(SIGALRM, on_alarm);
	alarm_s = vt_alarm_secs(30);
	alarm(alarm_s);
	if ((r = vt_setup("abi-raw")))
		return r;
	start_daemon();
	check(!ctl(NULL, 0, "bus add A") && !ctl(NULL, 0, "bus add B allow all") && !ctl(NULL, 0, "bus add C") &&
	      !ctl(NULL, 0, "bus add D allow all max-guests 1"), "buses");
	check(!ctl(NULL, 0, "dev add e1 class echo bus A") && !ctl(NULL, 0, "dev add e2 class echo bus B") &&
	      !ctl(NULL, 0, "dev add eAB class echo bus A bus B"), "devices");

	/* ---- 5. the handshake ---- */
	a = conn("A");
	expect(rpc(a, &m, VBUS_OP_DEVENUM, 0, 0, NULL, 0, NULL, 0) == -EPROTO, "nothing before HELLO");
	hello_in(&h, 1, 1, 0, "B");
	expect(rpc(a, &m, VBUS_OP_HELLO, 0, 0, &h, sizeof(h), NULL, 0) == -EINVAL, "HELLO names its bus");
	hello_in(&h, 2, 5, 0, "A");
	expect(rpc(a, &m, VBUS_OP_HELLO, 0, 0, &h, sizeof(h), NULL, 0) == -EPROTONOSUPPORT,
	      "a newer-only guest is refused");
	expect(m.len >= sizeof(ho), "the refusal carries a hello_out (len %zu)", m.len);
	memcpy(&ho, m.payload, sizeof(ho));
	expect(ho.version == 0 && le32toh(ho.bus_version_min) == VBUS_PROTO_MIN_VERSION &&
	      le32toh(ho.bus_version_max) == VBUS_PROTO_VERSION, "the refusal gives the bus's range "
	      "(%u..%u)", le32toh(ho.bus_version_min), le32toh(ho.bus_version_max));
	hello_in(&h, 0, 0, 0, "A");
	expect(rpc(a, &m, VBUS_OP_HELLO, 0, 0, &h, sizeof(h), NULL, 0) == -EPROTONOSUPPORT,
	      "version 0 does not exist");
	hello_in(&h, 1, 7, ~0ull, "A");
	expect(!rpc(a, &m, VBUS_OP_HELLO, 0, 0, &h, sizeof(h), NULL, 0) && m.len >= sizeof(ho),
	      "the connection stays open for another HELLO; a wider range is accepted");
	memcpy(&ho, m.payload, sizeof(ho));
	granted = le64toh(ho.features);
	expect(le32toh(ho.version) == 1 && ho.guest_id && ho.max_handles && ho.max_shm_bytes,
	      "version 1 chosen, guest id and quotas");
	expect(!(granted & ~VBUS_F_ALL_V1) && (granted & VBUS_F_EVENTS) &&
	      (granted & VBUS_F_SHMSIGNAL), "the granted features are a known subset (%#llx)",
	      (unsigned long long)granted);
	expect(rpc(a, &m, VBUS_OP_HELLO, 0, 0, &h, sizeof(h), NULL, 0) == -EALREADY, "one HELLO");
	{	/* A newer guest's longer hello_in: its tail is ignored. */
		uint8_t longer[sizeof(h) + 16] = { 0 };
		int b = conn("A");

		hello_in(&h, 1, 2, VBUS_F_EVENTS, "A");
		memcpy(longer, &h, sizeof(h));
		expect(!rpc(b, &m, VBUS_OP_HELLO, 0, 0, longer, sizeof(longer), NULL, 0),
		      "a longer hello_in is accepted");
		close(b);
	}
	group_done("handshake: HELLO first, bus name, version skew (range in the refusal), "
	       "feature subset %#llx, one HELLO\n", (unsigned long long)granted);

	/* ---- refusals at the door ---- */
	{
		pid_t p = fork();

		if (p == 0) {
			int fd, st;

			if (setgid(65534) || setuid(65534))
				_exit(77);
			fd = conn("C");
			hello_in(&h, 1, 1, 0, "C");
			xsend(fd, VBUS_OP_HELLO, 1, 0, 0, &h, sizeof(h), NULL, 0);	/* may fail: EPIPE */
			st = xrecv(fd, &m, vt_ms(2000));
			_exit(!st && m.op == VBUS_OP_HELLO && m.seq == 0 && m.status == -EACCES &&
			      xrecv(fd, &m, vt_ms(2000)) == -ECONNRESET ? 0 : 1);
		}
		expect(waitpid(p, &r, 0) == p && WIFEXITED(r), "child");
		if (WEXITSTATUS(r) == 77)
			printf("skip access list: cannot become uid 65534\n");
		else
			expect(WEXITSTATUS(r) == 0, "uid 65534 refused on C with EACCES, then closed");
	}
	{
		int d1 = attach("D", 0, NULL), d2 = conn("D");

		hello_in(&h, 1, 1, 0, "D");
		xsend(d2, VBUS_OP_HELLO, 1, 0, 0, &h, sizeof(h), NULL, 0);
		expect(!xrecv(d2, &m, vt_ms(2000)) && m.op == VBUS_OP_HELLO && m.seq == 0 &&
		      m.status == -EUSERS, "the 2nd guest of a max-guests 1 bus gets EUSERS (%d)",
		      m.status);
		close(d2);
		close(d1);
	}
	group_done("refusals: EACCES off the access list, EUSERS on a full bus (seq 0, then closed)\n");

	/* ---- DEVENUM and DEVOPEN ---- */
	{
		struct vbus_devenum_out o;
		struct vbus_dev_entry e;
		struct vbus_devopen_in in;
		int seen = 0;

		expect(rpc(a, &m, VBUS_OP_DEVENUM, 0, 5, NULL, 0, NULL, 0) == -EINVAL, "arg must be 0");
		expect(!rpc(a, &m, VBUS_OP_DEVENUM, 0, 0, NULL, 0, NULL, 0), "DEVENUM");
		memcpy(&o, m.payload, sizeof(o));
		expect(!o.reserved && m.len == sizeof(o) + le32toh(o.count) * sizeof(e),
		      "DEVENUM length %zu for %u entries", m.len, le32toh(o.count));
		for (uint32_t i = 0; i < le32toh(o.count); i++) {
			memcpy(&e, m.payload + sizeof(o) + i * sizeof(e), sizeof(e));
			expect(memchr(e.name, 0, sizeof(e.name)) && memchr(e.attrs, 0, sizeof(e.attrs)),
			      "entries NUL-terminated");
			expect(!strcmp(e.devclass, "echo"), "class echo");
			seen |= !strcmp(e.name, "e1") ? 1 : !strcmp(e.name, "eAB") ? 2 : 4;
		}
		expect(seen == 3, "A lists e1 and eAB, not B's e2 (%d)", seen);

		memset(&in, 0, sizeof(in));
		strcpy(in.name, "e2");
		strcpy(in.devclass, "echo");
		expect(rpc(a, &m, VBUS_OP_DEVOPEN, 0, 0, &in, sizeof(in), NULL, 0) == -ENOENT,
		      "B's device is not there for A");
		strcpy(in.name, "nosuch");
		expect(rpc(a, &m, VBUS_OP_DEVOPEN, 0, 0, &in, sizeof(in), NULL, 0) == -ENOENT, "no such");
		strcpy(in.name, "e1");
		strcpy(in.devclass, "vrdma");
		expect(rpc(a, &m, VBUS_OP_DEVOPEN, 0, 0, &in, sizeof(in), NULL, 0) == -ENODEV,
		      "class mismatch");
		memset(in.name, 'x', sizeof(in.name));
		strcpy(in.devclass, "echo");
		expect(rpc(a, &m, VBUS_OP_DEVOPEN, 0, 0, &in, sizeof(in), NULL, 0) == -EINVAL,
		      "an unterminated name");
		strcpy(in.name, "e1");
		expect(rpc(a, &m, VBUS_OP_DEVOPEN, 0, 0, &in, sizeof(in) - 8, NULL, 0) == -EINVAL,
		      "a short payload");
		expect(!rpc(a, &m, VBUS_OP_DEVOPEN, 0, 0, &in, sizeof(in), NULL, 0), "open e1");
		expect(m.len == sizeof(struct vbus_devopen_out), "devopen_out is 8 bytes");
		ha = id_of(&m);
	}
	group_done("DEVENUM layout and isolation; DEVOPEN: ENOENT across buses, ENODEV, EINVAL\n");

	/* ---- DEVOPEN with a label (a middle level's: for which guest of its own) ---- */
	{
		static const char *const bad[] = {
			"3", "3:", ":3", "x:1", "1:2/", "/1:2", "1:2//3:4", "1:2 ", "1:-2",
			"12345678901:1", "4294967296:1", "1:2/3:4/5:6/7:8/9:10/11:12/13:14/15:16/17:18",
		};
		struct vbus_devopen_label_in in;
		char out[16384];
		uint32_t hl, hn;

		memset(&in, 0, sizeof(in));
		strcpy(in.open.name, "e1");
		strcpy(in.open.devclass, "echo");
		strcpy(in.label, "3:1234/5:99");
		expect(!rpc(a, &m, VBUS_OP_DEVOPEN, 0, 0, &in, sizeof(in), NULL, 0) &&
		       m.len == sizeof(struct vbus_devopen_out), "open e1 with a label");
		hl = id_of(&m);
		expect(!ctl(out, sizeof(out), "-j guest show") &&
		       strstr(out, "\"for\":[{\"guest\":3,\"pid\":1234},{\"guest\":5,\"pid\":99}]"),
		       "guest show -j names the label's guests: %s", out);
		expect(!ctl(out, sizeof(out), "guest show") &&
		       strstr(out, "dev e1 for guest 3 pid 1234 / guest 5 pid 99"),
		       "guest show (text) too: %s", out);
		memset(in.label, 0, sizeof(in.label));
		expect(!rpc(a, &m, VBUS_OP_DEVOPEN, 0, 0, &in, sizeof(in), NULL, 0),
		       "an empty label is none");
		hn = id_of(&m);
		{
			const char *f = (ctl(out, sizeof(out), "-j guest show"), strstr(out, "\"for\""));

			expect(f && !strstr(f + 1, "\"for\""), "only the labeled handle has \"for\": %s", out);
		}
		for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
			memset(in.label, 0, sizeof(in.label));
			memcpy(in.label, bad[i], strlen(bad[i]));
			expect(rpc(a, &m, VBUS_OP_DEVOPEN, 0, 0, &in, sizeof(in), NULL, 0) == -EINVAL,
			       "label '%s': EINVAL", bad[i]);
		}
		memset(in.label, '1', sizeof(in.label));
		expect(rpc(a, &m, VBUS_OP_DEVOPEN, 0, 0, &in, sizeof(in), NULL, 0) == -EINVAL,
		       "an unterminated label: EINVAL");
		memset(in.label, 0, sizeof(in.label));
		strcpy(in.label, "1:2");
		in.label[sizeof(in.label) - 1] = 'x';
		expect(rpc(a, &m, VBUS_OP_DEVOPEN, 0, 0, &in, sizeof(in), NULL, 0) == -EINVAL,
		       "bytes after the label's NUL: EINVAL");
		in.label[sizeof(in.label) - 1] = 0;
		expect(rpc(a, &m, VBUS_OP_DEVOPEN, 0, 0, &in, sizeof(in) - 1, NULL, 0) == -EINVAL &&
		       rpc(a, &m, VBUS_OP_DEVOPEN, 0, 0, &in, sizeof(in.open) + 1, NULL, 0) == -EINVAL,
		       "a payload of neither length: EINVAL");
		expect(!rpc(a, &m, VBUS_OP_DEVCLOSE, hl, 0, NULL, 0, NULL, 0) &&
		       !rpc(a, &m, VBUS_OP_DEVCLOSE, hn, 0, NULL, 0, NULL, 0), "close both");
		expect(!ctl(out, sizeof(out), "-j guest show") && !strstr(out, "\"for\""),
		       "the label goes with its handle: %s", out);
	}
	group_done("DEVOPEN with a label: shown by guest show (JSON and text), every malformed one "
		   "refused, gone with the handle\n");

	/* ---- DEVCALL, handles ---- */
	{
		const char s[] = "hello, bus";
		int b = attach("A", VBUS_F_EVENTS, NULL), bad = 0;

		expect(!rpc(a, &m, VBUS_OP_DEVCALL, ha, 1, s, sizeof(s), NULL, 0) &&
		      m.len == sizeof(s) && !memcmp(m.payload, s, sizeof(s)), "echo");
		expect(!rpc(a, &m, VBUS_OP_DEVCALL, ha, 1, NULL, 0, NULL, 0) && m.len == 0, "empty echo");
		expect(rpc(a, &m, VBUS_OP_DEVCALL, ha, 99, NULL, 0, NULL, 0) == -EOPNOTSUPP, "no fn 99");
		/* Every index with small generations, and the extremes. */
		for (uint32_t gen = 0; gen < 4; gen++)
			for (uint32_t i = 0; i < (1u << VBUS_ID_INDEX_BITS); i++) {
				uint32_t g = gen << VBUS_ID_INDEX_BITS | i;

				if (g != ha && rpc(a, &m, VBUS_OP_DEVCALL, g, 1, "x", 1, NULL, 0) != -ENOENT)
					bad++;
			}
		expect(!bad, "%d guessed handles were not ENOENT", bad);
		expect(rpc(a, &m, VBUS_OP_DEVCALL, 0xffffffff, 1, "x", 1, NULL, 0) == -ENOENT, "~0");
		/* The same number on another connection names nothing there. */
		expect(rpc(b, &m, VBUS_OP_DEVCALL, ha, 1, "x", 1, NULL, 0) == -ENOENT,
		      "A's handle on another connection");
		expect(rpc(b, &m, VBUS_OP_DEVCLOSE, ha, 0, NULL, 0, NULL, 0) == -ENOENT,
		      "nor can it be closed there");
		expect(!rpc(a, &m, VBUS_OP_DEVCALL, ha, 1, "y", 1, NULL, 0), "still open on A");
		close(b);
	}
	group_done("DEVCALL: data echoed; 4096 guessed handles and a foreign one ENOENT\n");

	/* ---- DEVFD: echo has no kernel descriptor; the request is checked first ---- */
	{
		struct vbus_devopen_in in = { .name = "e1", .devclass = "echo" };
		uint64_t got;
		int b = attach("A", VBUS_F_EVENTS, NULL), c = attach("A", VBUS_F_DEVFD, &got);
		int efd = eventfd(0, EFD_CLOEXEC);
		uint32_t hb, hc;

		expect(got & VBUS_F_DEVFD, "VBUS_F_DEVFD granted (%#llx)", (unsigned long long)got);
		expect(!rpc(b, &m, VBUS_OP_DEVOPEN, 0, 0, &in, sizeof(in), NULL, 0), "open e1");
		hb = id_of(&m);
		expect(!rpc(c, &m, VBUS_OP_DEVOPEN, 0, 0, &in, sizeof(in), NULL, 0), "open e1");
		hc = id_of(&m);
		expect(rpc(b, &m, VBUS_OP_DEVFD, hb, 0, NULL, 0, NULL, 0) == -EOPNOTSUPP,
		       "DEVFD without the feature");
		expect(rpc(c, &m, VBUS_OP_DEVFD, hc, 0, NULL, 0, NULL, 0) == -EOPNOTSUPP,
		       "DEVFD on echo: no kernel descriptor");
		expect(rpc(c, &m, VBUS_OP_DEVFD, hc, 0, "x", 1, NULL, 0) == -EINVAL, "with a payload");
		expect(rpc(c, &m, VBUS_OP_DEVFD, hc, 3, NULL, 0, NULL, 0) == -EINVAL, "with an arg");
		expect(rpc(c, &m, VBUS_OP_DEVFD, hc, 0, NULL, 0, &efd, 1) == -EINVAL,
		       "with a descriptor");
		expect(rpc(c, &m, VBUS_OP_DEVFD, hc + (1u << VBUS_ID_INDEX_BITS), 0, NULL, 0, NULL, 0) ==
		       -ENOENT, "on a guessed handle");
		close(efd);
		close(b);
		close(c);
	}
	group_done("DEVFD: -EOPNOTSUPP without the feature and on echo; payload, arg, descriptor "
		   "refused; a guessed handle ENOENT\n");

	/* ---- malformed requests: the connection lives on ---- */
	{
		int efd = eventfd(0, EFD_CLOEXEC);

		expect(rpc(a, &m, 77, 0, 0, NULL, 0, NULL, 0) == -EOPNOTSUPP, "an unknown op");
		expect(rpc(a, &m, VBUS_OP_DEVCALL, ha, 1, "z", 1, &efd, 1) == -EINVAL,
		      "a descriptor where none belongs");
		{	/* on a second handle, so that a bus that wrongly closes it spoils nothing */
			struct vbus_devopen_in in = { .name = "eAB", .devclass = "echo" };
			uint32_t hx;

			expect(!rpc(a, &m, VBUS_OP_DEVOPEN, 0, 0, &in, sizeof(in), NULL, 0), "open eAB");
			hx = id_of(&m);
			expect(rpc(a, &m, VBUS_OP_DEVCLOSE, hx, 0, "z", 1, NULL, 0) == -EINVAL,
			       "DEVCLOSE takes no payload");
			expect(rpc(a, &m, VBUS_OP_DEVCLOSE, hx, 7, NULL, 0, NULL, 0) == -EINVAL,
			       "DEVCLOSE's arg must be 0");
			expect(!rpc(a, &m, VBUS_OP_DEVCALL, hx, 1, "z", 1, NULL, 0),
			       "the handle survives a malformed DEVCLOSE");
			expect(!rpc(a, &m, VBUS_OP_DEVCLOSE, hx, 0, NULL, 0, NULL, 0) ||
			       rpc(a, &m, VBUS_OP_DEVCLOSE, hx, 0, NULL, 0, NULL, 0) == -ENOENT, "close");
		}
		expect(!rpc(a, &m, VBUS_OP_DEVCALL, ha, 1, "z", 1, NULL, 0), "the connection lives on");
		close(efd);
	}
	group_done("unknown op EOPNOTSUPP; stray descriptor and payload EINVAL\n");

	/* ---- DEVSHM ---- */
	{
		struct vbus_devshm_in in = { .size = htole64(8192) };
		int good = sealed_memfd(8192, 0, F_SEAL_SHRINK | F_SEAL_SEAL);
		int unsealed = sealed_memfd(8192, 0, 0), shrink_only = sealed_memfd(8192, 0, F_SEAL_SHRINK);
		int huge = sealed_memfd(2 << 20, MFD_HUGETLB, F_SEAL_SHRINK | F_SEAL_SEAL);
		int pfd[2];
		char tmpl[] = "/var/tmp/vbus-abi-raw.XXXXXX";
		int file = mkstemp(tmpl);
		uint32_t id;

		expect(good >= 0 && unsealed >= 0 && shrink_only >= 0 && !pipe(pfd) && file >= 0 &&
		      !ftruncate(file, 8192), "descriptors");
		unlink(tmpl);
		expect(rpc(a, &m, VBUS_OP_DEVSHM, 0, 0, &in, sizeof(in), NULL, 0) == -EINVAL,
		      "DEVSHM without its descriptor");
		expect(rpc(a, &m, VBUS_OP_DEVSHM, 0, 0, &in, sizeof(in), &unsealed, 1) == -EPERM,
		      "an unsealed memfd: EPERM");
		expect(rpc(a, &m, VBUS_OP_DEVSHM, 0, 0, &in, sizeof(in), &shrink_only, 1) == -EPERM,
		      "a memfd without F_SEAL_SEAL: EPERM");
		expect(rpc(a, &m, VBUS_OP_DEVSHM, 0, 0, &in, sizeof(in), &pfd[0], 1) == -EBADF,
		      "a pipe: EBADF");
		r = rpc(a, &m, VBUS_OP_DEVSHM, 0, 0, &in, sizeof(in), &file, 1);
		expect(r == -EBADF || r == -EPERM || r == -EINVAL, "a plain file refused (%d)", r);
		if (huge >= 0) {
			struct vbus_devshm_in hin = { .size = htole64(2 << 20) };

			expect(rpc(a, &m, VBUS_OP_DEVSHM, 0, 0, &hin, sizeof(hin), &huge, 1) == -EINVAL,
			      "a hugetlbfs memfd: EINVAL");
			close(huge);
		}
		in.size = htole64(4096);
		expect(rpc(a, &m, VBUS_OP_DEVSHM, 0, 0, &in, sizeof(in), &good, 1) == -EINVAL,
		      "a size that does not match: EINVAL");
		in.size = htole64(8192);
		in.flags = htole32(1);
		expect(rpc(a, &m, VBUS_OP_DEVSHM, 0, 0, &in, sizeof(in), &good, 1) == -EINVAL,
		      "flags must be 0");
		in.flags = 0;
		in.reserved = htole32(1);
		expect(rpc(a, &m, VBUS_OP_DEVSHM, 0, 0, &in, sizeof(in), &good, 1) == -EINVAL,
		      "reserved must be 0");
		in.reserved = 0;
		expect(rpc(a, &m, VBUS_OP_DEVSHM, ha, 0, &in, sizeof(in), &good, 1) == -EINVAL,
		      "the handle must be 0");
		expect(!rpc(a, &m, VBUS_OP_DEVSHM, 0, 0, &in, sizeof(in), &good, 1), "a good region");
		id = id_of(&m);
		expect(!rpc(a, &m, VBUS_OP_SHMREVOKE, 0, id, NULL, 0, NULL, 0), "revoke");
		expect(rpc(a, &m, VBUS_OP_SHMREVOKE, 0, id, NULL, 0, NULL, 0) == -ENOENT, "revoke once");
		expect(!rpc(a, &m, VBUS_OP_DEVCALL, ha, 1, "w", 1, NULL, 0), "vbusd lives on");
		close(good);
		close(unsealed);
		close(shrink_only);
		close(pfd[0]);
		close(pfd[1]);
		close(file);
	}
	group_done("DEVSHM: unsealed, half-sealed, pipe, plain file%s, wrong size, flags, "
	       "reserved refused; revoke once\n", " (and hugetlbfs if available)");

	/* ---- DEVSIG and SHMSIGNAL ---- */
	{
		struct vbus_devsig_in in = { .direction = htole32(VBUS_SIG_TO_HOST) };
		int db = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK), tg = eventfd(0, EFD_CLOEXEC), pfd[2];
		uint32_t sid, gid;
		uint64_t cnt = 0;

		expect(db >= 0 && tg >= 0 && !pipe(pfd), "descriptors");
		expect(rpc(a, &m, VBUS_OP_DEVSIG, 0, 0, &in, sizeof(in), &pfd[1], 1) == -EBADF,
		      "a pipe is not an eventfd");
		in.direction = htole32(3);
		expect(rpc(a, &m, VBUS_OP_DEVSIG, 0, 0, &in, sizeof(in), &db, 1) == -EINVAL, "direction");
		in.direction = htole32(VBUS_SIG_TO_HOST);
		in.flags = htole32(VBUS_SIG_F_VECTOR);	/* a VM's: a process has no vectors */
		expect(rpc(a, &m, VBUS_OP_DEVSIG, 0, 0, &in, sizeof(in), NULL, 0) == -EINVAL,
		       "a process's DEVSIG with VBUS_SIG_F_VECTOR");
		expect(rpc(a, &m, VBUS_OP_DEVSIG, 0, 0, &in, sizeof(in), &db, 1) == -EINVAL,
		       "VBUS_SIG_F_VECTOR with a descriptor");
		in.flags = htole32(2);
		expect(rpc(a, &m, VBUS_OP_DEVSIG, 0, 0, &in, sizeof(in), &db, 1) == -EINVAL,
		       "an unknown DEVSIG flag");
		in.flags = 0;
		expect(!rpc(a, &m, VBUS_OP_DEVSIG, 0, 0, &in, sizeof(in), &db, 1), "doorbell");
		sid = id_of(&m);
		in.direction = htole32(VBUS_SIG_TO_GUEST);
		expect(!rpc(a, &m, VBUS_OP_DEVSIG, 0, 0, &in, sizeof(in), &tg, 1), "to-guest signal");
		gid = id_of(&m);
		expect(sid != gid, "ids from one space");
		expect(!rpc(a, &m, VBUS_OP_SHMSIGNAL, 0, sid, NULL, 0, NULL, 0), "SHMSIGNAL");
		expect(read(db, &cnt, sizeof(cnt)) == sizeof(cnt) && cnt == 1, "the doorbell rang once");
		expect(rpc(a, &m, VBUS_OP_SHMSIGNAL, 0, gid, NULL, 0, NULL, 0) == -ENOENT,
		      "SHMSIGNAL only kicks to-host signals");
		expect(!rpc(a, &m, VBUS_OP_SIGREVOKE, 0, gid, NULL, 0, NULL, 0) &&
		      rpc(a, &m, VBUS_OP_SIGREVOKE, 0, gid, NULL, 0, NULL, 0) == -ENOENT, "revoke once");
		close(db);
		close(tg);
		close(pfd[0]);
		close(pfd[1]);
	}
	group_done("DEVSIG (eventfds only, direction checked); SHMSIGNAL rings the doorbell\n");

	/* ---- events ---- */
	{
		uint64_t g2;
		int quiet = attach("A", 0, &g2), b = attach("B", VBUS_F_EVENTS, NULL);
		uint32_t code = htole32(42), hq, hb;
		struct vbus_devopen_in in;
		struct vbus_event *ev;

		expect(!(g2 & VBUS_F_EVENTS), "not offered, not granted");
		memset(&in, 0, sizeof(in));
		strcpy(in.name, "e1");
		strcpy(in.devclass, "echo");
		expect(!rpc(quiet, &m, VBUS_OP_DEVOPEN, 0, 0, &in, sizeof(in), NULL, 0), "open");
		hq = id_of(&m);
		strcpy(in.name, "eAB");
		expect(!rpc(b, &m, VBUS_OP_DEVOPEN, 0, 0, &in, sizeof(in), NULL, 0), "open eAB on B");
		hb = id_of(&m);

		expect(!rpc(a, &m, VBUS_OP_DEVCALL, ha, 3, &code, sizeof(code), NULL, 0), "EVENT fn");
		ev = wait_event(a, VBUS_EV_DEVICE, vt_ms(1000));
		expect(ev && le32toh(ev->handle) == ha && le32toh(ev->code) == 42, "the device's event");
		expect(!rpc(quiet, &m, VBUS_OP_DEVCALL, hq, 3, &code, sizeof(code), NULL, 0), "EVENT fn");
		expect(!wait_event(quiet, VBUS_EV_DEVICE, 200), "no events without VBUS_F_EVENTS");
		expect(rpc(quiet, &m, VBUS_OP_CALLCHAN, 0, 0, NULL, 0, NULL, 0) == -EOPNOTSUPP ||
		      (g2 & VBUS_F_CALLCHAN), "CALLCHAN needs its feature");

		expect(!ctl(NULL, 0, "dev add e3 class echo bus A"), "hot add");
		ev = wait_event(a, VBUS_EV_DEV_ADDED, vt_ms(1000));
		expect(ev && !strcmp((char *)ev->data, "e3"), "DEV_ADDED names e3");
		expect(!wait_event(b, VBUS_EV_DEV_ADDED, 200), "B is not told about A's device");

		expect(!ctl(NULL, 0, "dev del e1"), "hot remove");
		ev = wait_event(a, VBUS_EV_DEV_REMOVED, vt_ms(1000));
		expect(ev && le32toh(ev->handle) == ha, "DEV_REMOVED for our handle");
		expect(rpc(a, &m, VBUS_OP_DEVCALL, ha, 1, "v", 1, NULL, 0) == -ENODEV, "then ENODEV");
		expect(rpc(quiet, &m, VBUS_OP_DEVCALL, hq, 1, "v", 1, NULL, 0) == -ENODEV,
		      "ENODEV without events too");
		expect(!rpc(a, &m, VBUS_OP_DEVCLOSE, ha, 0, NULL, 0, NULL, 0), "close the dead handle");
		expect(rpc(a, &m, VBUS_OP_DEVCALL, ha, 1, "v", 1, NULL, 0) == -ENOENT, "then ENOENT");
		expect(!rpc(b, &m, VBUS_OP_DEVCALL, hb, 1, "u", 1, NULL, 0), "B's eAB unaffected");
		expect(!ctl(NULL, 0, "dev del eAB"), "remove a device of two buses");
		ev = wait_event(b, VBUS_EV_DEV_REMOVED, vt_ms(1000));
		expect(ev && le32toh(ev->handle) == hb, "B told");
		close(quiet);
		close(b);
	}
	group_done("events: DEVICE, DEV_ADDED (own bus only), DEV_REMOVED then ENODEV; "
	       "none without the feature\n");

	/* ---- quotas: per guest and per bus ---- */
	{
		struct vbus_devopen_in in = { .name = "eq", .devclass = "echo" };
		struct vbus_devshm_in sh;
		int q1, q2, fd64 = sealed_memfd(64 << 10, 0, F_SEAL_SHRINK | F_SEAL_SEAL);
		int fd32 = sealed_memfd(32 << 10, 0, F_SEAL_SHRINK | F_SEAL_SEAL);
		int fd4 = sealed_memfd(4 << 10, 0, F_SEAL_SHRINK | F_SEAL_SEAL);
		uint32_t hq[3];
		int x;

		check(fd64 >= 0 && fd32 >= 0 && fd4 >= 0, "memfds");
		expect(!ctl(NULL, 0, "bus add Q allow all max-handles 2 bus-max-handles 3 max-shm 64K "
			    "bus-max-shm 96K") && !ctl(NULL, 0, "dev add eq class echo bus Q"), "bus Q");
		q1 = conn("Q");
		hello_in(&h, 1, 1, 0, "Q");
		expect(!rpc(q1, &m, VBUS_OP_HELLO, 0, 0, &h, sizeof(h), NULL, 0), "HELLO on Q");
		memcpy(&ho, m.payload, sizeof(ho));
		expect(le32toh(ho.max_handles) == 2 && le64toh(ho.max_shm_bytes) == 64 << 10,
		       "HELLO reports the guest's quotas (%u handles, %llu bytes)",
		       le32toh(ho.max_handles), (unsigned long long)le64toh(ho.max_shm_bytes));
		q2 = attach("Q", 0, NULL);
		for (x = 0; x < 2; x++) {
			expect(!rpc(q1, &m, VBUS_OP_DEVOPEN, 0, 0, &in, sizeof(in), NULL, 0), "open %d", x);
			hq[x] = id_of(&m);
		}
		expect(rpc(q1, &m, VBUS_OP_DEVOPEN, 0, 0, &in, sizeof(in), NULL, 0) == -EDQUOT,
		       "a 3rd handle for one guest: EDQUOT (max-handles 2)");
		{	/* the quota is named, in guest show (and in vbusd's log) */
			char out[16384];

			expect(!ctl(out, sizeof(out), "-j guest show") &&
			       strstr(out, "\"quota_hits\":1,\"quota_hit\":\"max-handles\""),
			       "guest show names the quota hit: %s", out);
			expect(!ctl(out, sizeof(out), "guest show") &&
			       strstr(out, "quota-hits 1 last max-handles"),
			       "guest show (text) names the quota hit: %s", out);
		}
		expect(!rpc(q2, &m, VBUS_OP_DEVOPEN, 0, 0, &in, sizeof(in), NULL, 0), "the bus's 3rd");
		hq[2] = id_of(&m);
		expect(rpc(q2, &m, VBUS_OP_DEVOPEN, 0, 0, &in, sizeof(in), NULL, 0) == -EDQUOT,
		       "a 4th handle on the bus: EDQUOT (bus-max-handles 3)");
		{
			char out[16384];

			expect(!ctl(out, sizeof(out), "-j guest show") &&
			       strstr(out, "\"quota_hit\":\"bus-max-handles\""),
			       "guest show names the bus's quota: %s", out);
		}
		expect(!rpc(q1, &m, VBUS_OP_DEVCLOSE, hq[0], 0, NULL, 0, NULL, 0), "close one");
		expect(!rpc(q2, &m, VBUS_OP_DEVOPEN, 0, 0, &in, sizeof(in), NULL, 0),
		       "a closed handle gives its place back");
		sh = (struct vbus_devshm_in){ .size = htole64(64 << 10) };
		expect(!rpc(q1, &m, VBUS_OP_DEVSHM, 0, 0, &sh, sizeof(sh), &fd64, 1), "64K region");
		sh.size = htole64(4 << 10);
		expect(rpc(q1, &m, VBUS_OP_DEVSHM, 0, 0, &sh, sizeof(sh), &fd4, 1) == -EDQUOT,
		       "past the guest's max-shm: EDQUOT");
		sh.size = htole64(32 << 10);
		expect(!rpc(q2, &m, VBUS_OP_DEVSHM, 0, 0, &sh, sizeof(sh), &fd32, 1), "32K region");
		sh.size = htole64(4 << 10);
		expect(rpc(q2, &m, VBUS_OP_DEVSHM, 0, 0, &sh, sizeof(sh), &fd4, 1) == -EDQUOT,
		       "past the bus's bus-max-shm (96K): EDQUOT");
		close(q1);	/* its handle and 64K go back to the bus */
		for (x = 0; x < (int)vt_secs(100); x++) {	/* 1 s, scaled */
			sh.size = htole64(4 << 10);
			if (!rpc(q2, &m, VBUS_OP_DEVSHM, 0, 0, &sh, sizeof(sh), &fd4, 1))
				break;
			usleep(10000);
		}
		expect(x < (int)vt_secs(100), "a departed guest's bytes go back to the bus");
		(void)hq;
		close(q2);
		close(fd64);
		close(fd32);
		close(fd4);
	}
	group_done("quotas: per-guest handles and bytes, per-bus handles and bytes (EDQUOT); "
		   "given back on close and on departure\n");

	/* ---- framing: a broken packet closes that connection, and only it ---- */
	{
		int b = attach("A", VBUS_F_EVENTS, NULL);
		struct vbus_msg bad = { .op = htole32(VBUS_OP_DEVENUM), .len = htole32(100) };

		expect(send(b, "junk", 4, 0) == 4, "junk");
		expect(xrecv(b, &m, vt_ms(1000)) == -ECONNRESET, "junk closes the connection");
		close(b);
		b = attach("A", 0, NULL);
		expect(send(b, &bad, sizeof(bad), 0) == sizeof(bad), "lying len");
		expect(xrecv(b, &m, vt_ms(1000)) == -ECONNRESET, "a lying len closes the connection");
		close(b);
		expect(!rpc(a, &m, VBUS_OP_DEVENUM, 0, 0, NULL, 0, NULL, 0), "A's other guest lives on");
	}
	group_done("framing errors close only the offending connection\n");
	close(a);
	kill(daemon_pid, SIGTERM);
	waitpid(daemon_pid, NULL, 0);
	daemon_pid = 0;
	n_fail += daemon_log_bad();
	cleanup();
	if (n_fail)
		printf("%d rule(s) of docs/abi.md broken\n", n_fail);
	return n_fail ? 1 : 0;
}
