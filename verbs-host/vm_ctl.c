// SPDX-License-Identifier: MIT
/*
 * `vbusctl vm ...` (docs/vm.md): add, del, show, notify. Every word is checked here, before
 * anything is made: a bad one is a one-line error and no VM.
 *   vm add NAME bus BUS kernel FILE [initrd FILE] [append CMDLINE] [mem SIZE] [cpus N]
 *          [vectors N] [conns N] [max-maps N] [max-pinned SIZE] [accel auto|kvm|tcg]
 *          [net none|user|tap:IFNAME]
 *   vm del NAME
 *   vm show [NAME]
 *   vm notify NAME VECTOR      interrupt the VM on VECTOR (its driver's eventfd for it)
 *   vm peek NAME GPA LEN       LEN (1 to 256) bytes of the VM's RAM at guest-physical GPA,
 *                              in hex: what vbusd's mapping of the RAM memfd holds there
 */
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include "strbuf.h"
#include "vbusd.h"
#include "vm.h"

#define VM_MAX		16
#define VM_MEM_MIN	(32ull << 20)
#define VM_MEM_MAX	(64ull << 30)
#define VM_MEM_DEFAULT	(256ull << 20)
#define VM_CPUS_MAX	64
#define VM_VECTORS_DEFAULT 16	/* 0: the channel; a context takes 1 doorbell, a completion channel 1 interrupt */
#define VM_CONNS_DEFAULT 8	/* the channel's slots: processes of the VM on the bus at once */
#define VM_APPEND_MAX	1024
#define VM_PEEK_MAX	256

/* A decimal number in [min, max]: 0 or -EINVAL. */
static int parse_u32(const char *s, uint32_t min, uint32_t max, uint32_t *out)
{
	char *end;
	unsigned long v;

	errno = 0;
	v = strtoul(s, &end, 10);
	if (errno || end == s || *end || s[0] == '-' || v < min || v > max)
		return -EINVAL;
	*out = (uint32_t)v;
	return 0;
}

/* A size in bytes with an optional K, M or G suffix (powers of 1024), from min to max. */
static int parse_size(const char *s, uint64_t min, uint64_t max, uint64_t *out)
{
	unsigned long long v;
	unsigned shift = 0;
	char *end;

	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno || end == s || s[0] == '-')
		return -EINVAL;
	switch (*end) {
	case 0: break;
	case 'K': case 'k': shift = 10; end++; break;
	case 'M': case 'm': shift = 20; end++; break;
	case 'G': case 'g': shift = 30; end++; break;
	default: return -EINVAL;
	}
	if (*end || v > (max >> shift) || (v << shift) < min)
		return -EINVAL;
	*out = v << shift;
	return 0;
}

/* mem SIZE: whole MiB. */
static int parse_mem(const char *s, uint64_t *out)
{
	uint64_t v;

	if (parse_size(s, VM_MEM_MIN, VM_MEM_MAX, &v) || v % (1u << 20))
		return -EINVAL;
	*out = v;
	return 0;
}

/* A network interface's name as QEMU's tap takes it: no comma (QEMU's option syntax), no '/'. */
static bool valid_ifname(const char *s)
{
	size_t n = strlen(s);

	if (n == 0 || n >= 16 || s[0] == '.' || s[0] == '-')
		return false;
	for (; *s; s++)
		if (!isalnum((unsigned char)*s) && !strchr("_.-", *s))
			return false;
	return true;
}

/* A VM's NIC address: QEMU's prefix 52:54:00, then 24 bits of FNV-1a of its name, so that two
 * VMs on one bridge do not both take QEMU's default 52:54:00:12:34:56. */
static void vm_mac_of(const char *name, uint8_t mac[6])
{
	uint32_t h = 2166136261u;

	for (; *name; name++)
		h = (h ^ (uint8_t)*name) * 16777619u;
	mac[0] = 0x52, mac[1] = 0x54, mac[2] = 0x00;
	mac[3] = h >> 16, mac[4] = h >> 8, mac[5] = h;
}

static bool valid_name(const char *s)
{
	size_t n = strlen(s);

	if (!n || n >= VBUS_NAME_MAX)
		return false;
	for (size_t i = 0; i < n; i++)
		if (!strchr("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-", s[i]))
			return false;
	return s[0] != '.' && s[0] != '-';
}

/* An absolute path to a readable regular file, with no comma (QEMU option syntax). */
static int check_file(const char *what, const char *path, char *err, size_t errn)
{
	struct stat st;

	if (path[0] != '/' || strchr(path, ',') || strlen(path) >= PATH_MAX) {
		snprintf(err, errn, "vm add: %s must be an absolute path without commas", what);
		return -EINVAL;
	}
	if (stat(path, &st) || !S_ISREG(st.st_mode) || access(path, R_OK)) {
		snprintf(err, errn, "vm add: %s %s: %s", what, path,
			 errno ? strerror(errno) : "not a regular file");
		return -EINVAL;
	}
	return 0;
}

static bool bus_exists(const char *name)
{
	bool found = false;

	pthread_mutex_lock(&vbd.lock);
	for (struct vbd_bus *b = vbd.buses; b && !found; b = b->next)
		found = !strcmp(b->name, name);
	pthread_mutex_unlock(&vbd.lock);
	return found;
}

static int vm_count(void)
{
	int n = 0;

	pthread_mutex_lock(&vbd_vms.lock);
	for (struct vbd_vm *v = vbd_vms.list; v; v = v->next)
		n++;
	pthread_mutex_unlock(&vbd_vms.lock);
	return n;
}

#define BAD(...) do { snprintf(err, errn, __VA_ARGS__); r = -EINVAL; goto err_free; } while (0)

static int vm_add(char **argv, int argc, char *err, size_t errn)
{
	struct vbd_vm *vm = calloc(1, sizeof(*vm));
	uint32_t max_maps = (uint32_t)vbd_vm_maps_all_max();
	uint64_t max_pinned = 0;	/* 0: the VM's RAM */
	char dir[128];
	int r;

	if (!vm) {
		snprintf(err, errn, "out of memory");
		return -ENOMEM;
	}
	if (!valid_name(argv[0]))
		BAD("vm add: bad name '%s' (letters, digits, '_', '.', '-'; at most %d)", argv[0],
		    VBUS_NAME_MAX - 1);
	snprintf(vm->name, sizeof(vm->name), "%s", argv[0]);
	vm_mac_of(vm->name, vm->mac);
	vm->mem = VM_MEM_DEFAULT;
	vm->cpus = 1;
	vm->vectors = VM_VECTORS_DEFAULT;
	vm->conns = VM_CONNS_DEFAULT;
	snprintf(vm->accel, sizeof(vm->accel), "auto");
	snprintf(vm->net, sizeof(vm->net), "none");
	for (int i = 1; i < argc; i += 2) {
		const char *k = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;

		if (!v)
			BAD("vm add: '%s' needs a value", k);
		if (!strcmp(k, "bus")) {
			if (!valid_name(v) || !bus_exists(v))
				BAD("vm add: no bus '%s'", v);
			snprintf(vm->bus, sizeof(vm->bus), "%s", v);
		} else if (!strcmp(k, "mem")) {
			if (parse_mem(v, &vm->mem))
				BAD("vm add: mem '%s': whole MiB from 32M to 64G (K, M, G suffixes)", v);
		} else if (!strcmp(k, "cpus")) {
			if (parse_u32(v, 1, VM_CPUS_MAX, &vm->cpus))
				BAD("vm add: cpus '%s': 1 to %d", v, VM_CPUS_MAX);
		} else if (!strcmp(k, "vectors")) {
			if (parse_u32(v, 1, VBUS_VM_MAX_VECTORS, &vm->vectors))
				BAD("vm add: vectors '%s': 1 to %d", v, VBUS_VM_MAX_VECTORS);
		} else if (!strcmp(k, "conns")) {
			if (parse_u32(v, 1, VBUS_VM_MAX_CONNS, &vm->conns))
				BAD("vm add: conns '%s': 1 to %d", v, VBUS_VM_MAX_CONNS);
		} else if (!strcmp(k, "max-maps")) {
			if (parse_u32(v, 1, (uint32_t)vbd_vm_maps_all_max(), &max_maps))
				BAD("vm add: max-maps '%s': 1 to %llu (half of vm.max_map_count)", v,
				    (unsigned long long)vbd_vm_maps_all_max());
		} else if (!strcmp(k, "max-pinned")) {
			if (parse_size(v, VBUS_VM_PAGE_SIZE, VM_MEM_MAX, &max_pinned))
				BAD("vm add: max-pinned '%s': bytes from 4K to 64G (K, M, G suffixes)", v);
		} else if (!strcmp(k, "accel")) {
			if (strcmp(v, "auto") && strcmp(v, "kvm") && strcmp(v, "tcg"))
				BAD("vm add: accel '%s': auto, kvm or tcg", v);
			snprintf(vm->accel, sizeof(vm->accel), "%s", v);
		} else if (!strcmp(k, "net")) {
			if (strcmp(v, "none") && strcmp(v, "user") &&
			    (strncmp(v, "tap:", 4) || !valid_ifname(v + 4)))
				BAD("vm add: net '%s': none, user or tap:IFNAME (an interface name: 1 to "
				    "15 letters, digits, '_ . -')", v);
			snprintf(vm->net, sizeof(vm->net), "%s", v);
		} else if (!strcmp(k, "kernel") || !strcmp(k, "initrd")) {
			char **slot = k[0] == 'k' ? &vm->kernel : &vm->initrd;

			r = check_file(k, v, err, errn);
			if (r)
				goto err_free;
			free(*slot);
			*slot = strdup(v);
		} else if (!strcmp(k, "append")) {
			if (strlen(v) > VM_APPEND_MAX)
				BAD("vm add: append: at most %d characters", VM_APPEND_MAX);
			free(vm->append);
			vm->append = strdup(v);
		} else {
			BAD("vm add: unknown option '%s' (bus, kernel, initrd, append, mem, cpus, "
			    "vectors, conns, max-maps, max-pinned, accel, net)", k);
		}
	}
	if (!vm->bus[0])
		BAD("vm add: which bus? (vm add NAME bus BUS kernel FILE ...)");
	if (!vm->kernel)
		BAD("vm add: a kernel is needed (kernel FILE): VMs boot only that way so far");
	if (vm_count() >= VM_MAX) {
		snprintf(err, errn, "vm add: already %d VMs", VM_MAX);
		r = -ENOSPC;
		goto err_free;
	}
	snprintf(dir, sizeof(dir), "%s/vm", vbd.run_dir);
	if (mkdir(dir, 0700) && errno != EEXIST)
		BAD("vm add: cannot create %s: %s", dir, strerror(errno));
	if (snprintf(vm->console, sizeof(vm->console), "%s/%s.console", dir, vm->name) >=
	    (int)sizeof(vm->console) ||
	    snprintf(vm->log, sizeof(vm->log), "%s/%s.qemu.log", dir, vm->name) >=
	    (int)sizeof(vm->log))
		BAD("vm add: the run directory's path is too long");
	vm->maps = vbd_vm_maps_new(max_maps, max_pinned ? max_pinned : vm->mem);
	if (!vm->maps) {
		snprintf(err, errn, "out of memory");
		r = -ENOMEM;
		goto err_free;
	}
	return vbd_vm_start(vm, err, errn);

err_free:
	free(vm->kernel);
	free(vm->initrd);
	free(vm->append);
	free(vm);
	return r;
}

static const char *state_name(enum vbd_vm_state s)
{
	static const char *const names[] = { "starting", "running", "exited", "failed" };

	return names[s];
}

static void put_counts(struct strbuf *o, bool json, const char *key, const uint64_t *c,
		       uint32_t n)
{
	strbuf_put(o, json ? ",\"%s\":[" : " %s ", key);
	for (uint32_t v = 0; v < n; v++)
		strbuf_put(o, json ? "%s%llu" : "%s%llu", v ? (json ? "," : "/") : "",
			   (unsigned long long)c[v]);
	strbuf_put(o, json ? "]" : "");
}

static void vm_show(struct strbuf *o, bool json, const char *only)
{
	bool first = true;

	if (json)
		strbuf_put(o, "[");
	pthread_mutex_lock(&vbd_vms.lock);
	for (struct vbd_vm *vm = vbd_vms.list; vm; vm = vm->next) {
		char mac[VBD_VM_MAC_STR];
		uint64_t maps, max_maps, pinned, max_pinned;

		if (only && strcmp(only, vm->name))
			continue;
		vbd_vm_mac_str(vm, mac);
		strbuf_put(o, json ? "%s{\"name\":\"%s\",\"bus\":\"%s\",\"state\":\"%s\",\"pid\":%d,"
			   "\"accel\":\"%s\",\"mem\":%llu,\"cpus\":%u,\"vectors\":%u,"
			   "\"net\":\"%s\",\"mac\":\"%s\",\"connector\":\"%s\",\"console\":\"%s\",\"log\":\"%s\"" :
			   "%svm %s bus %s state %s pid %d accel %s mem %llu cpus %u vectors %u "
			   "net %s mac %s connector %s console %s log %s",
			   json && !first ? "," : "", vm->name, vm->bus, state_name(vm->state),
			   (int)vm->pid, vm->accel, (unsigned long long)vm->mem, vm->cpus, vm->vectors,
			   vm->net, mac, vm->conn->name, vm->console, vm->log);
		if (vm->state == VBD_VM_EXITED)
			strbuf_put(o, json ? ",\"exit\":%d" : " exit %d",
				   WIFEXITED(vm->exit_status) ? WEXITSTATUS(vm->exit_status) :
				   128 + WTERMSIG(vm->exit_status));
		if (vm->state == VBD_VM_FAILED || (vm->state == VBD_VM_EXITED && vm->why[0]))
			strbuf_put(o, json ? ",\"why\":\"%s\"" : " why \"%s\"", vm->why);
		put_counts(o, json, "doorbells", vm->doorbells, vm->vectors);
		put_counts(o, json, "interrupts", vm->interrupts, vm->vectors);
		strbuf_put(o, json ? ",\"messages\":%llu,\"refused\":%llu,\"events\":%llu" :
			   " messages %llu refused %llu events %llu",
			   (unsigned long long)vm->chan.messages, (unsigned long long)vm->chan.refused,
			   (unsigned long long)vm->chan.events);
		strbuf_put(o, json ? ",\"max_conns\":%u,\"conns\":%u" : " max_conns %u conns %u",
			   vm->conns, vm->chan.conns_open);
		vbd_vm_maps_read(vm->maps, &maps, &max_maps);
		strbuf_put(o, json ? ",\"max_maps\":%llu,\"maps\":%llu" : " max_maps %llu maps %llu",
			   (unsigned long long)max_maps, (unsigned long long)maps);
		vbd_vm_pins_read(vm->maps, &pinned, &max_pinned);
		strbuf_put(o, json ? ",\"max_pinned\":%llu,\"pinned\":%llu" :
			   " max_pinned %llu pinned %llu",
			   (unsigned long long)max_pinned, (unsigned long long)pinned);
		strbuf_put(o, json ? "}" : "\n");
		first = false;
	}
	pthread_mutex_unlock(&vbd_vms.lock);
	if (json)
		strbuf_put(o, "]\n");
}

static int vm_peek(char **argv, bool json, struct strbuf *o)
{
	uint8_t bytes[VM_PEEK_MAX];
	unsigned long long gpa;
	uint32_t len;
	char *end;
	int r;

	errno = 0;
	gpa = strtoull(argv[1], &end, 0);
	if (errno || end == argv[1] || *end || argv[1][0] == '-') {
		snprintf(o->p, o->n, "vm peek: bad address '%s'", argv[1]);
		return -EINVAL;
	}
	if (parse_u32(argv[2], 1, VM_PEEK_MAX, &len)) {
		snprintf(o->p, o->n, "vm peek: length '%s': 1 to %d", argv[2], VM_PEEK_MAX);
		return -EINVAL;
	}
	r = vbd_vm_peek(argv[0], gpa, len, bytes, o->p, o->n);
	if (r)
		return r;
	if (json)
		strbuf_put(o, "{\"gpa\":%llu,\"bytes\":\"", gpa);
	for (uint32_t i = 0; i < len; i++)
		strbuf_put(o, "%02x", bytes[i]);
	strbuf_put(o, json ? "\"}\n" : "\n");
	return 0;
}

int vbd_vm_command(int argc, char **argv, bool json, char *out, size_t outn)
{
	const char *verb = argc > 1 ? argv[1] : "show";
	struct strbuf o = { out, outn, 0 };
	uint32_t vector;

	out[0] = 0;
	if (!strcmp(verb, "add") && argc >= 3)
		return vm_add(argv + 2, argc - 2, out, outn);
	if (!strcmp(verb, "del") && argc == 3)
		return vbd_vm_del(argv[2], out, outn);
	if (!strcmp(verb, "show") && argc <= 3) {
		vm_show(&o, json, argc == 3 ? argv[2] : NULL);
		return 0;
	}
	if (!strcmp(verb, "notify") && argc == 4) {
		if (parse_u32(argv[3], 0, VBUS_VM_MAX_VECTORS - 1, &vector)) {
			snprintf(out, outn, "vm notify: bad vector '%s'", argv[3]);
			return -EINVAL;
		}
		return vbd_vm_notify(argv[2], vector, out, outn);
	}
	if (!strcmp(verb, "peek") && argc == 5)
		return vm_peek(argv + 2, json, &o);
	snprintf(out, outn, "usage: vm add NAME bus BUS kernel FILE [initrd FILE] [append CMDLINE] "
		 "[mem SIZE] [cpus N] [vectors N] [conns N] [max-maps N] [max-pinned SIZE] [accel auto|kvm|tcg] [net none|user|tap:IFNAME] | vm del NAME | "
		 "vm show [NAME] | vm notify NAME VECTOR | vm peek NAME GPA LEN");
	return -EINVAL;
}
