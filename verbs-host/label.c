// SPDX-License-Identifier: MIT
/*
 * DEVOPEN labels (include/vbus/proto.h, struct vbus_devopen_label_in): whom a guest opens a
 * device for, "ID:PID" pairs joined by '/', outermost first. A middle level of nesting
 * sends one for each guest of its own it serves; vbusd checks the form and shows it.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include "strbuf.h"
#include "vbusd.h"

/* One "ID:PID" pair at s: its length, or 0 when s does not start with one. Each number is
 * 1 to 10 digits and fits 32 bits. */
static size_t pair_len(const char *s, uint32_t *id, uint32_t *pid)
{
	uint32_t *v[2] = { id, pid };
	size_t i = 0;

	for (int k = 0; k < 2; k++) {
		uint64_t x = 0;
		size_t d = 0;

		if (k && s[i++] != ':')
			return 0;
		while (s[i] >= '0' && s[i] <= '9' && d < 11) {
			x = x * 10 + (uint64_t)(s[i++] - '0');
			d++;
		}
		if (!d || d > 10 || x > UINT32_MAX)
			return 0;
		*v[k] = (uint32_t)x;
	}
	return i;
}

int vbd_label_check(const char *s, size_t n)
{
	const char *end = memchr(s, 0, n);
	size_t i = 0;
	int depth = 0;
	uint32_t id, pid;

	if (!end)
		return -EINVAL;
	for (const char *p = end; p < s + n; p++)	/* the rest NUL: nothing hidden there */
		if (*p)
			return -EINVAL;
	if (end == s)
		return 0;			/* an empty label: none */
	for (;;) {
		size_t l = pair_len(s + i, &id, &pid);

		if (!l || ++depth > VBUS_LABEL_DEPTH)
			return -EINVAL;
		i += l;
		if (!s[i])
			return 0;
		if (s[i++] != '/')
			return -EINVAL;
	}
}

int vbd_label_compose(char out[VBUS_LABEL_MAX], uint32_t id, int pid, const char *sub)
{
	int r = sub && *sub ? snprintf(out, VBUS_LABEL_MAX, "%u:%d/%s", id, pid, sub) :
			      snprintf(out, VBUS_LABEL_MAX, "%u:%d", id, pid);

	if (r < 0 || r >= VBUS_LABEL_MAX || vbd_label_check(out, VBUS_LABEL_MAX)) {
		/* deeper than a label holds: our own guest only */
		snprintf(out, VBUS_LABEL_MAX, "%u:%d", id, pid);
		return -E2BIG;
	}
	return 0;
}

void vbd_label_show(struct strbuf *o, const char *label, bool json)
{
	size_t i = 0;
	uint32_t id, pid;

	strbuf_put(o, json ? "[" : "");
	for (int k = 0; label && label[i]; k++) {
		size_t l = pair_len(label + i, &id, &pid);

		if (!l)
			break;			/* (checked when it was stored) */
		strbuf_put(o, json ? "%s{\"guest\":%u,\"pid\":%u}" : "%sguest %u pid %u",
			   k ? (json ? "," : " / ") : "", id, pid);
		i += l;
		if (label[i] == '/')
			i++;
	}
	strbuf_put(o, json ? "]" : "");
}
