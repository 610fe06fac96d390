// SPDX-License-Identifier: MIT
/*
 * Control commands, from vbusctl over the control socket (RUN_DIR/ctl.sock, root only)
 * or from the config file. A request is one packet: "j" or "t" (JSON or text), then the
 * words of the command, each NUL-terminated. The answer is one packet: "0\n" and the
 * output, or "-ERRNO\n" and a one-line message.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>
#include "strbuf.h"
#include "vbusd.h"
#include "vm.h"

#define CTL_MAX 65536

static void bus_show(struct strbuf *o, bool json, const char *only)
{
	bool first = true;

	if (json)
		strbuf_put(o, "[");
	for (struct vbd_bus *b = vbd.buses; b; b = b->next) {
		if (only && strcmp(only, b->name))
			continue;
		if (json) {
			strbuf_put(o, "%s{\"name\":\"%s\",\"socket\":\"%s\",\"guests\":%u,\"max_guests\":%u,"
			    "\"max_handles\":%u,\"max_regions\":%u,\"max_shm_bytes\":%llu,"
			    "\"handles\":%u,\"bus_max_handles\":%u,\"shm_bytes\":%llu,"
			    "\"bus_max_shm\":%llu,\"allow\":[",
			    first ? "" : ",", b->name, b->path, b->n_guests, b->max_guests,
			    b->max_handles, b->max_regions, (unsigned long long)b->max_shm_bytes,
			    __atomic_load_n(&b->n_handles, __ATOMIC_RELAXED), b->bus_max_handles,
			    (unsigned long long)__atomic_load_n(&b->shm_bytes, __ATOMIC_RELAXED),
			    (unsigned long long)b->bus_max_shm);
			strbuf_put(o, "\"uid 0\"%s", b->allow_all ? ",\"all\"" : "");
			for (int i = 0; i < b->n_uid; i++)
				strbuf_put(o, ",\"uid %u\"", (unsigned)b->allow_uid[i]);
			for (int i = 0; i < b->n_gid; i++)
				strbuf_put(o, ",\"gid %u\"", (unsigned)b->allow_gid[i]);
			strbuf_put(o, "]}");
		} else {
			strbuf_put(o, "bus %s socket %s guests %u/%u%s\n", b->name, b->path, b->n_guests,
			    b->max_guests, b->allow_all ? " allow all" : "");
		}
		first = false;
	}
	if (json)
		strbuf_put(o, "]\n");
}

static void dev_show(struct strbuf *o, bool json, const char *only)
{
	bool first = true;

	if (json)
		strbuf_put(o, "[");
	for (struct vbd_dev *d = vbd.devs; d; d = d->next) {
		if (only && strcmp(only, d->name))
			continue;
		strbuf_put(o, json ? "%s{\"name\":\"%s\",\"class\":\"%s\",\"open\":%u,\"attrs\":{" :
			      "%sdev %s class %s open %u", json && !first ? "," : "", d->name,
		    d->cls->name, d->n_open);
		for (int i = 0; i < d->n_attrs; i++)
			strbuf_put(o, json ? "%s\"%s\":\"%s\"" : "%s%s=%s", json ? (i ? "," : "") : " ",
			    d->attr_key[i], d->attr_val[i]);
		strbuf_put(o, json ? "},\"buses\":[" : " bus");
		for (int i = 0; i < d->n_buses; i++)
			strbuf_put(o, json ? "%s\"%s\"" : "%s%s", json ? (i ? "," : "") : " ",
			    d->buses[i]->name);
		strbuf_put(o, json ? "]}" : "\n");
		first = false;
	}
	if (json)
		strbuf_put(o, "]\n");
}

/*
 * The passthrough tree of a handle (the class's tree op: the child functions a middle level
 * made of it for its own guests). slot_tree_get runs the op into a static buffer and says
 * whether there is anything to print; slot_tree_put appends it, as a JSON member
 * ,"children":[...] or as text lines below the handle's.
 */
struct slot_tree {
	char t[CTL_MAX / 4];
	int r;
};
static struct slot_tree tree_buf;	/* commands run one at a time */

static bool slot_tree_get(struct slot_tree *st, struct vbd_slot *s, bool json)
{
	st->t[0] = 0;
	st->r = 0;
	if (!s->dev || !s->dev->cls->tree)
		return false;
	st->r = s->dev->cls->tree(s->inst, json, "    ", st->t, sizeof(st->t));
	return st->t[0] || (st->r && st->r != -ENOSPC);
}

static void slot_tree_put(struct strbuf *o, const struct slot_tree *st, bool json)
{
	if (st->r && st->r != -ENOSPC)
		strbuf_put(o, json ? ",\"children_error\":\"%s\"" : "    (children: %s)\n",
			   strerror(-st->r));
	else if (st->t[0])
		strbuf_put(o, json ? ",\"children\":%s%s" : "%s%s", st->t,
			   !st->r ? "" : json ? ",\"children_truncated\":true" : "    (truncated)\n");
}

static void slot_tree(struct strbuf *o, struct vbd_slot *s, bool json)
{
	if (slot_tree_get(&tree_buf, s, json))
		slot_tree_put(o, &tree_buf, json);
}

/* The guest's quota refusals: vbusd's own and those its devices' models counted (the
 * class's quota_hits: the kernel module's); which (sizeof g->quota_hit) names vbusd's last,
 * else a device's. Under the guest's slots_lock. */
static unsigned long long guest_quota_hits(struct vbd_guest *g, char *which)
{
	unsigned long long n, own;
	const char *w;
	uint64_t h;

	pthread_mutex_lock(&g->quota_lock);
	n = own = g->n_quota_hits;
	memcpy(which, g->quota_hit, sizeof(g->quota_hit));
	pthread_mutex_unlock(&g->quota_lock);
	for (uint32_t i = 1; i < g->slots_end; i++) {
		struct vbd_slot *s = vbd_slot(g, i);

		if (s->type != VBD_HANDLE || !s->dev || !s->dev->cls->quota_hits ||
		    s->dev->cls->quota_hits(s->inst, &h, &w) || !h)
			continue;
		n += h;
		if (!own)
			snprintf(which, sizeof(g->quota_hit), "%s", w);
	}
	return n;
}

static void guest_show(struct strbuf *o, bool json)
{
	bool first = true;

	if (json)
		strbuf_put(o, "[");
	for (struct vbd_guest *g = vbd.guests; g; g = g->next) {
		uint32_t regions = 0, signals = 0;
		unsigned long long quota_hits;
		char quota_hit[sizeof(g->quota_hit)];

		pthread_mutex_lock(&g->slots_lock);
		for (uint32_t i = 1; i < g->slots_end; i++) {
			regions += vbd_slot(g, i)->type == VBD_REGION;
			signals += vbd_slot(g, i)->type == VBD_SIGNAL;
		}
		quota_hits = guest_quota_hits(g, quota_hit);
		if (json) {
			strbuf_put(o, "%s{\"id\":%u,\"pid\":%d,\"uid\":%u,\"bus\":\"%s\",\"handles\":%u,"
			    "\"regions\":%u,\"signals\":%u,\"shm_bytes\":%llu,\"calls\":%llu,"
			    "\"errors\":%llu,\"quota_hits\":%llu,\"quota_hit\":\"%s\",",
			    first ? "" : ",", g->id, (int)g->pid,
			    (unsigned)g->uid, g->bus->name, g->n_handles, regions, signals,
			    (unsigned long long)g->shm_bytes,
			    (unsigned long long)__atomic_load_n(&g->n_calls, __ATOMIC_RELAXED),
			    (unsigned long long)__atomic_load_n(&g->n_errors, __ATOMIC_RELAXED),
			    quota_hits, quota_hit);
			if (g->child.cls)	/* a child connection (VBUS_OP_CHILD) */
				strbuf_put(o, "\"child_of\":{\"guest\":%u,\"handle\":%u},",
					   g->child.parent_id, g->child.parent_handle);
			strbuf_put(o, "\"devices\":[");
			bool f2 = true;
			for (uint32_t i = 1; i < g->slots_end; i++) {
				struct vbd_slot *s = vbd_slot(g, i);
				char res[512] = "null";

				if (s->type != VBD_HANDLE)
					continue;
				if (s->dev && s->dev->cls->show)
					s->dev->cls->show(s->inst, res, sizeof(res));
				strbuf_put(o, "%s{\"handle\":%u,\"device\":\"%s\",\"resources\":%s", f2 ? "" : ",",
				    vbd_slot_id(g, i), s->dev ? s->dev->name : "(removed)", res);
				if (s->label) {	/* a middle level's: for which guest of its own */
					strbuf_put(o, ",\"for\":");
					vbd_label_show(o, s->label, true);
				}
				slot_tree(o, s, true);
				strbuf_put(o, "}");
				f2 = false;
			}
			strbuf_put(o, "]}");
		} else {
			strbuf_put(o, "guest %u pid %d uid %u bus %s handles %u regions %u signals %u "
			    "shm %llu calls %llu errors %llu", g->id, (int)g->pid, (unsigned)g->uid,
			    g->bus->name, g->n_handles, regions, signals,
			    (unsigned long long)g->shm_bytes,
			    (unsigned long long)__atomic_load_n(&g->n_calls, __ATOMIC_RELAXED),
			    (unsigned long long)__atomic_load_n(&g->n_errors, __ATOMIC_RELAXED));
			if (quota_hits)
				strbuf_put(o, " quota-hits %llu last %s", quota_hits, quota_hit);
			if (g->child.cls)
				strbuf_put(o, " child-of guest %u handle %#x", g->child.parent_id,
					   g->child.parent_handle);
			strbuf_put(o, "\n");
			/* a middle level of nesting: its handles, each for a guest of its own
			 * (relay mode), or the child functions made of it (passthrough) */
			for (uint32_t i = 1; i < g->slots_end; i++) {
				struct vbd_slot *s = vbd_slot(g, i);

				if (s->type != VBD_HANDLE)
					continue;
				if (!slot_tree_get(&tree_buf, s, false) && !s->label)
					continue;	/* neither: no line */
				strbuf_put(o, "  handle %#x dev %s", vbd_slot_id(g, i),
					   s->dev ? s->dev->name : "(removed)");
				if (s->label) {
					strbuf_put(o, " for ");
					vbd_label_show(o, s->label, false);
				}
				strbuf_put(o, "\n");
				slot_tree_put(o, &tree_buf, false);
			}
		}
		pthread_mutex_unlock(&g->slots_lock);
		first = false;
	}
	if (json)
		strbuf_put(o, "]\n");
}

/* `res show [KIND]`: every guest's device objects (classes with a res op), and the relay. */
static void res_show(struct strbuf *o, bool json, const char *kind)
{
	static char res[CTL_MAX / 2];
	bool first = true;

	if (json)
		strbuf_put(o, "[");
	for (struct vbd_guest *g = vbd.guests; g; g = g->next) {
		pthread_mutex_lock(&g->slots_lock);
		for (uint32_t i = 1; i < g->slots_end; i++) {
			struct vbd_slot *s = vbd_slot(g, i);

			if (s->type != VBD_HANDLE || !s->dev || !s->dev->cls->res)
				continue;
			if (s->dev->cls->res(s->inst, kind, json, res, sizeof(res)))
				strbuf_put(o, json ? "" : "(truncated)\n");
			strbuf_put(o, json ? "%s{\"guest\":%u,\"pid\":%d,\"bus\":\"%s\",\"device\":\"%s\","
			    "\"handle\":%u," : "%sguest %u pid %d bus %s dev %s handle %#x",
			    json && !first ? "," : "", g->id, (int)g->pid, g->bus->name, s->dev->name,
			    vbd_slot_id(g, i));
			if (g->child.cls)	/* a child connection's: the tree of passthrough */
				strbuf_put(o, json ? "\"child_of\":{\"guest\":%u,\"handle\":%u}," :
					   " child-of guest %u handle %#x", g->child.parent_id,
					   g->child.parent_handle);
			if (s->label) {
				strbuf_put(o, json ? "\"for\":" : " for ");
				vbd_label_show(o, s->label, json);
				strbuf_put(o, json ? "," : "");
			}
			strbuf_put(o, "%s", res);
			slot_tree(o, s, json);
			strbuf_put(o, json ? "}" : "");
			first = false;
		}
		pthread_mutex_unlock(&g->slots_lock);
	}
	if (json)
		strbuf_put(o, "]\n");
}

/* Run one command. 0 with output in out, or -errno with a message in out. */
int vbd_command(int argc, char **argv, bool json, char *buf, size_t n)
{
	struct strbuf o = { buf, n, 0 };
	const char *obj = argc > 0 ? argv[0] : "", *verb = argc > 1 ? argv[1] : "show";

	buf[0] = 0;
	if (!strcmp(obj, "vm"))
		return vbd_vm_command(argc, argv, json, buf, n);
	if (!strcmp(obj, "bus") && !strcmp(verb, "add") && argc >= 3)
		return vbd_bus_add(argv[2], argv + 3, argc - 3, buf, n);
	if (!strcmp(obj, "bus") && !strcmp(verb, "del") && argc == 3)
		return vbd_bus_del(argv[2], buf, n);
	if (!strcmp(obj, "dev") && !strcmp(verb, "add") && argc >= 5 && !strcmp(argv[3], "class"))
		return vbd_dev_add(argv[2], argv[4], argv + 5, argc - 5, buf, n);
	if (!strcmp(obj, "dev") && !strcmp(verb, "del") && argc == 3)
		return vbd_dev_del(argv[2], buf, n);
	if (!strcmp(verb, "show") && argc <= 3 &&
	    (!strcmp(obj, "bus") || !strcmp(obj, "dev") || !strcmp(obj, "guest"))) {
		pthread_mutex_lock(&vbd.lock);
		if (obj[0] == 'b')
			bus_show(&o, json, argc == 3 ? argv[2] : NULL);
		else if (obj[0] == 'd')
			dev_show(&o, json, argc == 3 ? argv[2] : NULL);
		else
			guest_show(&o, json);
		pthread_mutex_unlock(&vbd.lock);
		return 0;
	}
	if (!strcmp(obj, "res") && !strcmp(verb, "show") && argc <= 3) {
		const char *kind = argc == 3 ? argv[2] : NULL;

		if (kind && strcmp(kind, "qp") && strcmp(kind, "cq") && strcmp(kind, "mr") &&
		    strcmp(kind, "pd") && strcmp(kind, "ah") && strcmp(kind, "srq") &&
		    strcmp(kind, "mw") && strcmp(kind, "cm_id")) {
			snprintf(buf, n, "res show: unknown kind '%s' (qp, cq, mr, pd, ah, srq, mw, cm_id)",
				 kind);
			return -EINVAL;
		}
		pthread_mutex_lock(&vbd.lock);
		res_show(&o, json, kind);
		pthread_mutex_unlock(&vbd.lock);
		return 0;
	}
	snprintf(buf, n, "unknown command '%s %s' (see vbusctl --help)", obj, verb);
	return -EINVAL;
}

/* A listening SEQPACKET socket at path with the given mode: the fd, or -errno. It is
 * bound under a temporary name and renamed into place once it listens, so that whoever
 * sees the path can connect (no ECONNREFUSED between bind and listen). */
int vbd_listen(const char *path, mode_t mode, int backlog)
{
	struct sockaddr_un a = { .sun_family = AF_UNIX };
	int fd, err;

	if (snprintf(a.sun_path, sizeof(a.sun_path), "%s.new", path) >= (int)sizeof(a.sun_path))
		return -ENAMETOOLONG;
	fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return -errno;
	unlink(a.sun_path);
	if (bind(fd, (struct sockaddr *)&a, sizeof(a)) || chmod(a.sun_path, mode) ||
	    listen(fd, backlog) || rename(a.sun_path, path)) {
		err = -errno;
		unlink(a.sun_path);
		close(fd);
		return err;
	}
	return fd;
}

int vbd_ctl_open(void)
{
	char p[128];

	snprintf(p, sizeof(p), "%s/ctl.sock", vbd.run_dir);
	return vbd_listen(p, 0600, 8);	/* root only */
}

/* Serve one vbusctl connection (short: one request, one answer). */
void vbd_ctl_serve(int lfd)
{
	static char req[CTL_MAX], ans[CTL_MAX];
	struct ucred cr;
	socklen_t cl = sizeof(cr);
	char *argv[64], *p;
	int fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC), argc = 0, r;
	ssize_t n;

	if (fd < 0)
		return;
	struct timeval tv = { .tv_sec = 2 };
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cr, &cl) || cr.uid != 0) {
		close(fd);	/* root only (the socket is 0600 too) */
		return;
	}
	n = recv(fd, req, sizeof(req) - 1, 0);
	if (n < 2) {
		close(fd);
		return;
	}
	req[n] = 0;
	for (p = req + 2; p < req + n && argc < 64; p += strlen(p) + 1)
		argv[argc++] = p;
	r = vbd_command(argc, argv, req[0] == 'j', ans + 16, sizeof(ans) - 16);
	{
		char head[16];	/* not in req: argv points there */

		n = snprintf(head, sizeof(head), "%d\n", r);
		memmove(ans + 16 - n, head, (size_t)n);
	}
	send(fd, ans + 16 - n, (size_t)n + strlen(ans + 16), MSG_NOSIGNAL);
	if (r)
		vbd_warn("control: '%s %s' failed: %s", argc ? argv[0] : "", argc > 1 ? argv[1] : "",
			 ans + 16);
	close(fd);
}
