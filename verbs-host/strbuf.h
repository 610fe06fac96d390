/* SPDX-License-Identifier: MIT */
/* Appending formatted text to a fixed buffer (vbusctl answers), truncating at its end. */
#ifndef VBD_STRBUF_H
#define VBD_STRBUF_H

#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>

struct strbuf {
	char *p;
	size_t n, pos;			/* pos >= n: full (truncated) */
};

static inline __attribute__((format(printf, 2, 3)))
void strbuf_put(struct strbuf *o, const char *fmt, ...)
{
	va_list ap;
	int r;

	if (o->pos >= o->n)
		return;
	va_start(ap, fmt);
	r = vsnprintf(o->p + o->pos, o->n - o->pos, fmt, ap);
	va_end(ap);
	if (r > 0)
		o->pos += (size_t)r;
}

#endif /* VBD_STRBUF_H */
