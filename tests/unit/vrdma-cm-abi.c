// SPDX-License-Identifier: MIT
/*
 * vrdma-cm-abi: vbusd's decoder of the vrdma CM functions (verbs-host/class_vrdma_cm.c,
 * include/vbus/vrdma-cm.h) and its address policy, without a device: the file is included
 * here with the few vbusd functions it calls played by stubs.
 * - every function: a short input is -EINVAL, a longer one with a non-zero extra byte
 *   -E2BIG, an output buffer too small -EMSGSIZE; functions outside the table -EOPNOTSUPP;
 * - HELLO answers the guest's version up to ours (2), refuses version 0 and a non-zero
 *   reserved field;
 * - handles never issued (0, an index past the table, a guessed generation) are refused
 *   before anything reaches librdmacm; private data longer than 196 bytes is -EINVAL;
 * - the policy: the allowed address is read from the GID's sysfs file (an IPv4-mapped GID
 *   gives IPv4); a wildcard becomes it with the port kept; another address is
 *   -EADDRNOTAVAIL; a port below 1024 is -EACCES for a guest that is not root; a GID
 *   of zeroes or no file gives no address, and every bind is refused.
 * Inputs are heap buffers of exactly the length sent, so that ASan catches an overread.
 */
#include "../../verbs-host/class_vrdma_cm.c"
#include <stdarg.h>
#include <sys/stat.h>

#define fail(...) do { printf("FAIL line %d: ", __LINE__); printf(__VA_ARGS__); printf("\n"); exit(1); } while (0)
#define check(c, ...) do { if (!(c)) fail(__VA_ARGS__); } while (0)

/* ---- the vbusd functions class_vrdma_cm.c calls ---- */
void vbd_log(int level, const char *fmt, ...)
{
	(void)level; (void)fmt;
}

int vbd_guest_signal(struct vbd_guest *g, uint32_t id, uint32_t direction, int *fd)
{
	(void)g; (void)id; (void)direction; (void)fd;
	return -ENOENT;
}

void vbd_guest_signal_put(struct vbd_guest *g, uint32_t id)
{
	(void)g; (void)id;
}

int vbd_kernel_res(uint32_t guest_id, struct vbk_res_obj **objs, uint32_t *n)
{
	(void)guest_id; (void)objs; (void)n;
	return -ENODEV;
}

static struct vbd_guest guest = { .id = 7, .uid = 1000 };
static struct vbd_cm_policy pol = { .ibdev = "rxe0", .port = 1, .gid_index = 1 };
static struct vbd_cm *cm;
static uint8_t out[1024];
static size_t outlen;

static int call(uint32_t fn, const void *in, size_t len, size_t outmax)
{
	uint8_t *p = malloc(len ? len : 1);
	int r;

	check(p, "malloc");
	if (len)
		memcpy(p, in, len);
	memset(out, 0xa5, sizeof(out));
	r = vbd_cm_call(cm, fn, p, len, out, outmax, &outlen);
	free(p);
	return r;
}

static void sizes(void)
{
	uint8_t in[512] = { 0 };

	for (uint32_t fn = VRDMA_CM_FN_BASE; fn < VRDMA_CM_FN__END; fn++) {
		const struct cm_fn *d = &fns[fn - VRDMA_CM_FN_BASE];

		check(d->in, "fn %#x has an input size", fn);
		check(call(fn, in, d->in - 1, sizeof(out)) == -EINVAL, "fn %#x short input", fn);
		in[d->in + 3] = 1;
		check(call(fn, in, d->in + 8, sizeof(out)) == -E2BIG, "fn %#x non-zero tail", fn);
		in[d->in + 3] = 0;
		if (d->out)
			check(call(fn, in, d->in, d->out - 1) == -EMSGSIZE, "fn %#x small output", fn);
	}
	check(call(VRDMA_CM_FN__END, in, 8, sizeof(out)) == -EOPNOTSUPP, "past the table");
	check(call(VRDMA_CM_FN_BASE - 1, in, 8, sizeof(out)) == -EOPNOTSUPP, "before the table");
	check(vbd_cm_is_fn(VRDMA_CM_FN_HELLO) && !vbd_cm_is_fn(27), "the CM's range");
}

static void hello(void)
{
	struct vrdma_cm_hello h = { .version = htole32(1) };

	check(call(VRDMA_CM_FN_HELLO, &h, sizeof(h), sizeof(out)) == 0 && outlen == sizeof(h) &&
	      le32toh(((struct vrdma_cm_hello *)out)->version) == 1, "hello 1");
	h.version = htole32(2);
	check(call(VRDMA_CM_FN_HELLO, &h, sizeof(h), sizeof(out)) == 0 &&
	      le32toh(((struct vrdma_cm_hello *)out)->version) == 2, "hello 2 (MIGRATE_ID)");
	h.version = htole32(5);
	check(call(VRDMA_CM_FN_HELLO, &h, sizeof(h), sizeof(out)) == 0 &&
	      le32toh(((struct vrdma_cm_hello *)out)->version) == VRDMA_CM_VERSION,
	      "a newer guest gets ours");
	h.version = 0;
	check(call(VRDMA_CM_FN_HELLO, &h, sizeof(h), sizeof(out)) == -EINVAL, "version 0");
	h.version = htole32(1);
	h.reserved = 1;
	check(call(VRDMA_CM_FN_HELLO, &h, sizeof(h), sizeof(out)) == -EINVAL, "reserved");
}

static void handles(void)
{
	struct vrdma_cm_handle hd = { 0 };
	struct vrdma_cm_id_arg ia = { 0 };
	struct vrdma_cm_conn_in ci = { 0 };
	struct vrdma_cm_addr_in ai = { 0 };

	check(call(VRDMA_CM_FN_GET_EVENT, &hd, sizeof(hd), sizeof(out)) == -EINVAL, "handle 0");
	hd.handle = htole32(1u << CM_IDX_BITS | 5);
	check(call(VRDMA_CM_FN_GET_EVENT, &hd, sizeof(hd), sizeof(out)) == -EINVAL,
	      "an index never issued");
	check(call(VRDMA_CM_FN_DESTROY_ID, &hd, sizeof(hd), 0) == -EINVAL, "destroy: not issued");
	check(call(VRDMA_CM_FN_DESTROY_CHANNEL, &hd, sizeof(hd), 0) == -EINVAL, "channel");
	ia.id = htole32(3);
	for (uint32_t fn = VRDMA_CM_FN_RESOLVE_ROUTE; fn < VRDMA_CM_FN__END; fn++)
		if (fns[fn - VRDMA_CM_FN_BASE].in == sizeof(ia))
			check(call(fn, &ia, sizeof(ia), sizeof(out)) == -EINVAL, "fn %#x bad id", fn);
	ai.id = htole32(9);
	check(call(VRDMA_CM_FN_BIND, &ai, sizeof(ai), sizeof(out)) == -EINVAL, "bind bad id");
	check(call(VRDMA_CM_FN_RESOLVE_ADDR, &ai, sizeof(ai), 0) == -EINVAL, "resolve bad id");
	ci.id = htole32(1);
	ci.private_data_len = VRDMA_CM_PRIV_MAX + 1;
	check(call(VRDMA_CM_FN_CONNECT, &ci, sizeof(ci), 0) == -EINVAL, "private data > 196");
	ci.private_data_len = 0;
	ci.private_data[VRDMA_CM_PRIV_MAX] = 1;
	check(call(VRDMA_CM_FN_ACCEPT, &ci, sizeof(ci), 0) == -EINVAL, "padding must be zero");
	ci.private_data[VRDMA_CM_PRIV_MAX] = 0;
	ci.reserved = 1;
	check(call(VRDMA_CM_FN_REJECT, &ci, sizeof(ci), 0) == -EINVAL, "reserved");
}

static void write_gid(const char *dir, const char *gid)
{
	char p[512];
	FILE *f;

	snprintf(p, sizeof(p), "%s/ports/1/gids", dir);
	for (char *s = p + strlen(dir) + 1; (s = strchr(s, '/')); s++) {
		*s = 0;
		mkdir(p, 0700);
		*s = '/';
	}
	mkdir(p, 0700);
	strcat(p, "/1");
	f = fopen(p, "w");
	check(f, "open %s", p);
	fprintf(f, "%s\n", gid);
	fclose(f);
}

static struct sockaddr_storage v4(const char *a, uint16_t port)
{
	struct sockaddr_storage ss = { .ss_family = AF_INET };

	inet_pton(AF_INET, a, &((struct sockaddr_in *)&ss)->sin_addr);
	((struct sockaddr_in *)&ss)->sin_port = htons(port);
	return ss;
}

static void policy(void)
{
	char dir[] = "/tmp/vrdma-cm-abi.XXXXXX";
	struct sockaddr_storage ss, ss6 = { .ss_family = AF_INET6 };
	char cmd[64];

	check(mkdtemp(dir), "mkdtemp");
	snprintf(pol.ibdev_path, sizeof(pol.ibdev_path), "%s", dir);
	write_gid(dir, "0000:0000:0000:0000:0000:ffff:0a63:0001");
	check(policy_addr(&pol, &cm->addr) && cm->addr.ss_family == AF_INET &&
	      ((struct sockaddr_in *)&cm->addr)->sin_addr.s_addr == inet_addr("10.99.0.1"),
	      "an IPv4-mapped GID gives 10.99.0.1");
	cm->have_addr = true;
	ss = v4("0.0.0.0", 7000);
	check(policy_local(cm, &ss) == 0 && sa_same_host((struct sockaddr *)&ss, &cm->addr) &&
	      sa_port(&ss) == 7000, "a wildcard becomes the address, port kept");
	((struct sockaddr_in6 *)&ss6)->sin6_port = htons(7001);
	check(policy_local(cm, &ss6) == 0 && ss6.ss_family == AF_INET && sa_port(&ss6) == 7001,
	      "an IPv6 wildcard too");
	ss = v4("10.99.0.1", 7002);
	check(policy_local(cm, &ss) == 0, "the address itself");
	ss = v4("127.0.0.1", 7002);
	check(policy_local(cm, &ss) == -EADDRNOTAVAIL, "another address");
	ss = v4("10.99.0.2", 0);
	check(policy_local(cm, &ss) == -EADDRNOTAVAIL, "a neighbour");
	ss = v4("10.99.0.1", 80);
	check(policy_local(cm, &ss) == -EACCES, "a privileged port, not root");
	guest.uid = 0;
	ss = v4("10.99.0.1", 80);
	check(policy_local(cm, &ss) == 0, "a privileged port, root");
	guest.uid = 1000;
	write_gid(dir, "fe80:0000:0000:0000:5054:00ff:fe12:3456");
	check(policy_addr(&pol, &cm->addr) && cm->addr.ss_family == AF_INET6, "an IPv6 GID");
	write_gid(dir, "0000:0000:0000:0000:0000:0000:0000:0000");
	check(!policy_addr(&pol, &cm->addr), "an empty GID gives no address");
	cm->have_addr = false;
	ss = v4("0.0.0.0", 7003);
	check(policy_local(cm, &ss) == -EADDRNOTAVAIL, "no address: every bind refused");
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	check(system(cmd) == 0, "clean up");
	pol.ibdev_path[0] = 0;
	check(!policy_addr(&pol, &cm->addr), "no sysfs file: no address");
}

int main(void)
{
	check(vbd_cm_open(&cm, &guest, &pol, NULL) == 0, "open");
	sizes();
	hello();
	handles();
	policy();
	vbd_cm_close(cm);
	printf("ok   vrdma CM decoder: sizes, HELLO, handles, private data, address policy\n");
	return 0;
}
