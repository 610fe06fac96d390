// SPDX-License-Identifier: MIT
/*
 * The whitelist's words (docs/vrdma.md, "Isolation"): the device attributes qp-types= and
 * access= name the QP types and access flags a device's guests may use, as a list of
 * words separated by commas, or "none"; they become the bits of include/vbus/vrdma.h's
 * VRDMA_WL_* and back.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include "vrdma.h"

struct wl_word {
	const char *name;
	uint32_t bit;
};

static const struct wl_word qp_words[] = {
	{ "rc", VRDMA_QPT_BIT(IBV_QPT_RC) },
	{ "uc", VRDMA_QPT_BIT(IBV_QPT_UC) },
	{ "ud", VRDMA_QPT_BIT(IBV_QPT_UD) },
};

static const struct wl_word access_words[] = {
	{ "local-write", IBV_ACCESS_LOCAL_WRITE },
	{ "remote-write", IBV_ACCESS_REMOTE_WRITE },
	{ "remote-read", IBV_ACCESS_REMOTE_READ },
	{ "remote-atomic", IBV_ACCESS_REMOTE_ATOMIC },
	{ "mw-bind", IBV_ACCESS_MW_BIND },
};

_Static_assert((VRDMA_QPT_BIT(IBV_QPT_RC) | VRDMA_QPT_BIT(IBV_QPT_UC) |
		VRDMA_QPT_BIT(IBV_QPT_UD)) == VRDMA_WL_QP_TYPES, "the QP types' words");
_Static_assert((IBV_ACCESS_LOCAL_WRITE | IBV_ACCESS_REMOTE_WRITE | IBV_ACCESS_REMOTE_READ |
		IBV_ACCESS_REMOTE_ATOMIC | IBV_ACCESS_MW_BIND) == VRDMA_WL_ACCESS,
	       "the access flags' words");

static const struct wl_word *words(bool qp_types, size_t *n)
{
	*n = qp_types ? sizeof(qp_words) / sizeof(qp_words[0]) :
			sizeof(access_words) / sizeof(access_words[0]);
	return qp_types ? qp_words : access_words;
}

int vrdma_wl_parse(const char *s, bool qp_types, uint32_t *out, char *err, size_t errn)
{
	size_t n, len;
	const struct wl_word *w = words(qp_types, &n);

	*out = 0;
	if (!strcmp(s, "none"))
		return 0;
	for (;;) {
		size_t i;

		len = strcspn(s, ",");
		for (i = 0; i < n; i++)
			if (strlen(w[i].name) == len && !strncmp(s, w[i].name, len))
				break;
		if (i == n) {
			char all[96];

			vrdma_wl_format(qp_types ? VRDMA_WL_QP_TYPES : VRDMA_WL_ACCESS, qp_types,
					all, sizeof(all));
			snprintf(err, errn, "%s: unknown word '%.*s' (a list of %s, or none)",
				 qp_types ? "qp-types" : "access", (int)len, s, all);
			return -EINVAL;
		}
		*out |= w[i].bit;
		if (!s[len])
			return 0;
		s += len + 1;
	}
}

void vrdma_wl_format(uint32_t bits, bool qp_types, char *buf, size_t bufn)
{
	size_t n, pos = 0;
	const struct wl_word *w = words(qp_types, &n);

	snprintf(buf, bufn, "none");
	for (size_t i = 0; i < n; i++) {
		int r;

		if (!(bits & w[i].bit))
			continue;
		r = snprintf(buf + pos, pos < bufn ? bufn - pos : 0, "%s%s", pos ? "," : "",
			     w[i].name);
		if (r > 0)
			pos += (size_t)r;
	}
}
