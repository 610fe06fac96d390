// SPDX-License-Identifier: MIT
/* vbusd's one log function: stderr (default) or syslog, filtered by verbosity. */
#include <stdarg.h>
#include <stdio.h>
#include <syslog.h>
#include <time.h>
#include "vbusd.h"

int vbd_verbosity = VBD_INFO;
bool vbd_syslog;

void vbd_log(int level, const char *fmt, ...)
{
	static const char *const names[] = { "error", "warning", "info", "debug" };
	static const int prio[] = { LOG_ERR, LOG_WARNING, LOG_INFO, LOG_DEBUG };
	va_list ap;

	if (level > vbd_verbosity)
		return;
	va_start(ap, fmt);
	if (vbd_syslog) {
		vsyslog(prio[level], fmt, ap);
	} else {
		struct timespec ts;

		clock_gettime(CLOCK_REALTIME, &ts);
		fprintf(stderr, "vbusd[%ld.%03ld] %s: ", (long)ts.tv_sec, ts.tv_nsec / 1000000,
			names[level]);
		vfprintf(stderr, fmt, ap);
		fputc('\n', stderr);
	}
	va_end(ap);
}
